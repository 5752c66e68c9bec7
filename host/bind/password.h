/* password.h — host.password: argon2id password hashing (libsodium), run on
 * a per-worker thread pool while the calling coroutine waits. */
#ifndef MOONKEEP_PASSWORD_H
#define MOONKEEP_PASSWORD_H

#include <stddef.h>
#include <lua.h>

#include "base/service.h"

struct event_base;

/* The OWASP minimum for argon2id, refused below unless
 * MOONKEEP_INSECURE_FAST_HASH=1. */
#define HOST_PASSWORD_MIN_OPSLIMIT 2
#define HOST_PASSWORD_MIN_MEMLIMIT_KIB 19456

/* The service record (base/service.h). */
extern const struct host_service host_password_service;

/* check_config: are ARGON2_OPSLIMIT / ARGON2_MEMLIMIT_KIB acceptable, and
 * HASH_THREADS / HASH_QUEUE_MAX numbers in range? Returns 0, or -1 with the
 * reason in err. (Malformed numbers exit like every config_env_long
 * setting.) For the master to refuse to start; the worker checks again. */
int host_password_check_config(char *err, size_t errlen);

/* Per-worker service: starts HASH_THREADS threads and watches
 * their results on `base` through an eventfd. Returns 0, or -1 after
 * logging why (and after undoing what it had started). */
int host_password_init(struct event_base *base);

/* Stops and joins the threads, frees jobs still queued or done, closes the
 * eventfd. Idempotent; safe when init never ran or failed half-way. Call
 * only when no task waits on a hash (the worker drains first). */
void host_password_shutdown(void);

/* The hashing pool of this worker now (zeros before init): threads, jobs
 * waiting and running, jobs refused as "busy" (queue full) since init, and
 * the argon2id memory its threads keep mapped (pwhash_memory.c). Loop
 * thread. For /metrics. */
struct host_password_stats {
    unsigned long threads;
    unsigned long queued;
    unsigned long running;
    unsigned long rejected;
    size_t memory_kept;
};
void host_password_stats(struct host_password_stats *out);

/* Pushes the host.password module table with the argon2id parameters read
 * from the environment now. Raises when they are below the minimum without
 * MOONKEEP_INSECURE_FAST_HASH=1. Stack: +1. */
int host_password_open(lua_State *L);

#endif
