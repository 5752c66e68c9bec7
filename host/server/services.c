/* services.c — the registry base/service.h declares: every service of a
 * worker, in start order (shutdown runs in reverse). Holds no state. */
#include "base/service.h"

#include "base/firehose.h"
#include "base/transfer.h"
#include "bind/db.h"
#include "bind/jwt.h"
#include "bind/mail.h"
#include "bind/password.h"
#include "server/metrics.h"

const struct host_service *const host_services[] = {
    /* JWT_SECRET is checked first, as before the registry; nothing starts */
    &host_jwt_service,
    /* metrics first: it samples the others every second until they have
     * all stopped (mail's shutdown flush included), and its port answers
     * meanwhile */
    &host_metrics_service,
    &host_password_service,
    &host_transfer_service,
    /* Firehose right after transfer: it sends over the transfer thread, so
     * it stops before it, and after mail and db, so their shutdown lines
     * ship */
    &host_firehose_service,
    /* mail after transfer, whose thread carries its SMTP transfers */
    &host_mail_service,
    &host_db_service,
    NULL,
};
