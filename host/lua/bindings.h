/* bindings.h — the headers of every module listed in modules.h. */
#ifndef MOONKEEP_BINDINGS_H
#define MOONKEEP_BINDINGS_H

#include "bind/db.h"
#include "base/json.h"
#include "bind/log.h"

#include "bind/crypto.h"
#include "bind/jwt.h"
#include "bind/password.h"
#include "bind/mail.h"
#include "server/metrics.h"
#include "base/transfer.h"
#include "base/firehose.h"

#endif
