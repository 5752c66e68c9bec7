/* mail.h — host.mail: outgoing email. mail.send builds the message and
 * queues it in the worker; delivery happens in the background, over SMTP
 * (libcurl, on the worker's transfer thread: transfer.h) or into an outbox
 * folder. See docs/mail.md. */
#ifndef MOONKEEP_MAIL_H
#define MOONKEEP_MAIL_H

#include <stddef.h>
#include <lua.h>

#include "base/service.h"

struct event_base;

/* Counters of this worker, as mail.stats() returns them. */
struct host_mail_stats {
    unsigned long queued;   /* held now: waiting, sending or retrying */
    unsigned long sent;     /* delivered (or written to the outbox) since start */
    unsigned long failed;   /* given up since start (permanent error or out of attempts) */
    unsigned long retrying; /* held now after at least one failed attempt */
};

/* The service record (base/service.h), after the transfer service. */
extern const struct host_service host_mail_service;

/* check_config: MAIL_* and OUTBOX_DIR. 0, or -1 with why in err (a bad
 * MAIL_URL, MAIL_FROM or MAIL_TLS; never the URL's credentials). */
int host_mail_check_config(char *err, size_t cap);

/* Reads MAIL_* and OUTBOX_DIR. Returns 0, or -1 after logging why. */
int host_mail_init(struct event_base *base);

/* Tries to deliver what is queued for up to MAIL_FLUSH_S seconds (running
 * `base` again), logs the ids of what is still queued as dropped, cancels
 * the transfers still running (host_transfer_cancel cuts their sockets) and
 * frees everything else; a cancelled message is freed by its done callback,
 * which host_transfer_shutdown runs next. Idempotent; does nothing when init
 * never ran. */
void host_mail_shutdown(void);

/* Fills `out` with this worker's counters (zeros before init). */
void host_mail_stats(struct host_mail_stats *out);

/* Pushes the host.mail module: send{to=, subject=, text=, html=}, stats(). */
int host_mail_open(lua_State *L);

#endif
