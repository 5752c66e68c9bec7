/* bindings.h — the headers of every module listed in modules.h. */
#ifndef MOONKEEP_BINDINGS_H
#define MOONKEEP_BINDINGS_H

#include "db.h"
#include "json.h"
#include "log.h"

#include "crypto.h"
#include "jwt.h"
#include "password.h"
#include "mail.h"
#include "metrics.h"
#include "transfer.h"
#include "firehose.h"

#endif
