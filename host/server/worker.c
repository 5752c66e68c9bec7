/* worker.c — a worker process: event loop, evhttp server, script
 * generation, reload on SIGHUP and drain on SIGTERM. Owns everything in
 * struct worker; host_worker_run frees it all before returning. The read
 * deadline and the connection cap live in conn.c, which it starts here and
 * tells when the listening socket goes away. */
#include "server/worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/service.h"
#include "lua/vm.h"
#include "server/conn.h"
#include "server/jobs.h"
#include "server/request.h"
#include "server/snapshot.h"

/* How long a draining worker waits after its last reply before it closes
 * idle keep-alive connections: long enough for a busy client to send its
 * next request and get "Connection: close" instead of a dropped socket. */
#define DRAIN_QUIET_S 0.25
/* How long a draining worker keeps accepting: the master has stopped new
 * connections from arriving, and what is already queued is served. */
#define DRAIN_ACCEPT_S 0.1

/* Loads the snapshot the master published last. Returns the generation,
 * or NULL after logging why. */
static struct generation *load_current(struct worker *w)
{
    struct snapshot snap;
    char err[2048];
    if (host_snapshot_current(&snap) != 0) {
        host_log(LOG_ERROR, "no published script snapshot");
        return NULL;
    }
    if (w->current && w->current->id == snap.id) return NULL;
    struct generation *gen = host_generation_load(snap.path, snap.id, snap.digest, err, sizeof err);
    if (gen == NULL) {
        struct log_line *line = host_log_begin(LOG_ERROR, "worker cannot load the published scripts");
        host_log_int(line, "generation", (int64_t)snap.id);
        host_log_str(line, "error", err);
        host_log_end(line);
    }
    return gen;
}

void host_worker_reload(struct worker *w)
{
    struct generation *next = load_current(w);
    if (next == NULL) return;
    struct generation *old = w->current;
    w->current = next;
    struct log_line *line = host_log_begin(LOG_INFO, "scripts reloaded");
    host_log_int(line, "generation", (int64_t)next->id);
    host_log_str(line, "digest", next->digest);
    /* requests still running on the old generation finish there */
    host_log_int(line, "previous_generation_inflight", (int64_t)old->refs - 1);
    host_log_end(line);
    host_generation_unref(old);
    host_jobs_reload();
}

static void drain_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    double now = host_now();
    (void)fd;
    (void)what;
    if (w->bound && now - w->drain_started >= DRAIN_ACCEPT_S) {
        host_conn_set_listener(NULL);
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
    double quiet_since = w->last_reply > w->drain_started ? w->last_reply : w->drain_started;
    if (w->bound == NULL && w->inflight == 0 && host_jobs_running() == 0 && now - quiet_since >= DRAIN_QUIET_S) {
        event_base_loopbreak(w->base);
        return;
    }
    if (now - w->drain_started >= w->cfg->shutdown_grace_s) {
        struct log_line *line = host_log_begin(LOG_WARN, "grace period over with requests in flight");
        host_log_int(line, "inflight", w->inflight);
        host_log_int(line, "jobs_running", host_jobs_running());
        host_log_end(line);
        event_base_loopbreak(w->base);
    }
}

static void begin_drain(struct worker *w)
{
    if (w->draining) return;
    w->draining = 1;
    w->drain_started = host_now();
    host_jobs_stop();
    struct log_line *line = host_log_begin(LOG_INFO, "worker draining");
    host_log_int(line, "inflight", w->inflight);
    host_log_end(line);
    struct timeval tick = {0, 50000};
    w->drain_timer = event_new(w->base, -1, EV_PERSIST, drain_timer_cb, w);
    event_add(w->drain_timer, &tick);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    (void)what;
    if (sig == SIGHUP) host_worker_reload(w);
    else begin_drain(w);
}

/* ---- per-worker services (base/service.h) ------------------------------ */

static int start_services(struct event_base *base)
{
    for (const struct host_service *const *s = host_services; *s; s++)
        if ((*s)->init && (*s)->init(base) != 0) return -1;
    return 0;
}

/* Every shutdown, in reverse order: each is idempotent and safe when its
 * init never ran. */
static void stop_services(void)
{
    size_t n = 0;
    while (host_services[n]) n++;
    while (n-- > 0)
        if (host_services[n]->shutdown) host_services[n]->shutdown();
}

static int setup_http(struct worker *w, int listen_fd)
{
    const struct config *cfg = w->cfg;
    w->http = evhttp_new(w->base);
    if (w->http == NULL || host_conn_init(w->base, w->http, cfg) != 0) return -1;
    evhttp_set_gencb(w->http, host_request_cb, w);
    evhttp_set_max_body_size(w->http, (ev_ssize_t)cfg->max_body_bytes);
    evhttp_set_max_headers_size(w->http, (ev_ssize_t)cfg->max_header_bytes);
    evhttp_set_timeout(w->http, cfg->keepalive_timeout_s);
    evhttp_set_allowed_methods(w->http,
        EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
        EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(w->http, "application/json; charset=utf-8");
    w->bound = evhttp_accept_socket_with_handle(w->http, listen_fd);
    if (w->bound == NULL) return -1;
    host_conn_set_listener(w->bound);
    return 0;
}

int host_worker_run(const struct config *cfg, int listen_fd)
{
    static const int handled[3] = {SIGTERM, SIGINT, SIGHUP};
    struct worker w = {.cfg = cfg};
    int status = 1;

    signal(SIGPIPE, SIG_IGN);
    w.current = load_current(&w);
    if (w.current == NULL) return 3;
    w.base = event_base_new();
    if (w.base != NULL) (void)host_log_batch_on(w.base); /* else: line by line */
    if (w.base == NULL || start_services(w.base) != 0 || setup_http(&w, listen_fd) != 0) {
        host_log(LOG_ERROR, "worker cannot start its event loop or HTTP server");
        goto done;
    }
    sigset_t unblock;
    sigemptyset(&unblock);
    for (int i = 0; i < 3; i++) {
        w.signals[i] = evsignal_new(w.base, handled[i], signal_cb, &w);
        event_add(w.signals[i], NULL);
        sigaddset(&unblock, handled[i]);
    }
    /* inherited blocked from the master; pending ones arrive now */
    sigaddset(&unblock, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &unblock, NULL);
    struct log_line *line = host_log_begin(LOG_INFO, "worker ready");
    host_log_int(line, "generation", (int64_t)w.current->id);
    host_log_end(line);
    host_jobs_start(w.base, &w.current);

    event_base_dispatch(w.base);
    status = w.inflight == 0 ? 0 : 1;
    host_log(LOG_INFO, "worker stopped");

done:
    host_log_batch_off();
    for (int i = 0; i < 3; i++)
        if (w.signals[i]) event_free(w.signals[i]);
    if (w.drain_timer) event_free(w.drain_timer);
    /* evhttp_free would free requests still owned by tasks: only when none */
    host_conn_set_listener(NULL);
    if (w.http && w.inflight == 0) {
        evhttp_free(w.http);
        host_conn_shutdown();
    }
    if (w.inflight == 0) {
        host_jobs_shutdown();
        host_generation_unref(w.current);
        stop_services();
        if (w.base) event_base_free(w.base);
    }
    return status;
}
