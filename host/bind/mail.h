/* mail.h — host.mail: outgoing email. mail.deliver builds the message and
 * makes one attempt while the task waits, over SMTP (libcurl, on the
 * worker's transfer thread: transfer.h) or into an outbox folder. Retries
 * live in the mail outbox table (scripts/lib/outbox.lua). See docs/mail.md. */
#ifndef MOONKEEP_MAIL_H
#define MOONKEEP_MAIL_H

#include <stddef.h>
#include <lua.h>

#include "base/service.h"

struct event_base;

/* Counters of this worker, as mail.stats() returns them. */
struct host_mail_stats {
    unsigned long sending;  /* SMTP attempts in flight now */
    unsigned long sent;     /* delivered (or written to the outbox) since start */
    unsigned long failed;   /* attempts that failed since start */
};

/* The service record (base/service.h), after the transfer service. */
extern const struct host_service host_mail_service;

/* check_config: MAIL_* and OUTBOX_DIR. 0, or -1 with why in err (a bad
 * MAIL_URL, MAIL_FROM or MAIL_TLS; never the URL's credentials). */
int host_mail_check_config(char *err, size_t cap);

/* Reads MAIL_* and OUTBOX_DIR. Returns 0, or -1 after logging why. */
int host_mail_init(struct event_base *base);

/* Cuts the SMTP attempts still in flight (their tasks were given up on)
 * and frees the settings; a cut attempt is freed by its done callback,
 * which host_transfer_shutdown runs next. Idempotent; does nothing when
 * init never ran. */
void host_mail_shutdown(void);

/* Fills `out` with this worker's counters (zeros before init). */
void host_mail_stats(struct host_mail_stats *out);

/* Pushes the host.mail module: deliver{id=, to=, subject=, text=, html=}, stats(). */
int host_mail_open(lua_State *L);

#endif
