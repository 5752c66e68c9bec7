/* bindings.h — every host.* module: its header, and its line in
 * HOST_BINDINGS(X), X(id, open function), expanded by bind/modules.c (the
 * registry script generations preload) and by host/module/luaopen.c (the
 * spec module host.so). A new binding adds its header and one line here.
 * HOST_GLOBALS(X) lists the globals a generation gets in place of Lua's. */
#ifndef MOONKEEP_BINDINGS_H
#define MOONKEEP_BINDINGS_H

#include "base/json.h"
#include "bind/crypto.h"
#include "bind/db.h"
#include "bind/jwt.h"
#include "bind/log.h"
#include "bind/mail.h"
#include "bind/metrics.h"
#include "bind/password.h"

#define HOST_BINDINGS(X)            \
    X(log, host_log_open)           \
    X(json, host_json_open)         \
    X(jwt, host_jwt_open)           \
    X(crypto, host_crypto_open)     \
    X(password, host_password_open) \
    X(mail, host_mail_open)         \
    X(db, host_db_open)             \
    X(metrics, host_metrics_open)

#define HOST_GLOBALS(X) \
    X(print, host_log_print)

#endif
