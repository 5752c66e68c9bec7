/* metrics.h — the numbers behind /metrics, summed over every worker, in
 * the Prometheus text format.
 *
 * The master maps a shared-memory block before the first fork: one slot per
 * worker index plus one for itself. A worker writes only its own slot; any
 * process reads them all to render. A restarted worker takes over its
 * slot and continues its counters. See docs/observability.md. The
 * host.metrics binding is bind/metrics.h. */
#ifndef MOONKEEP_METRICS_H
#define MOONKEEP_METRICS_H

#include "base/service.h"

struct event_base;
struct evbuffer;

/* ---- master -------------------------------------------------------------- */

/* Maps the block for `workers` worker slots, counts the master's log lines
 * through a log sink, and records the script generation published so far.
 * `metrics_fd` is the bound METRICS_PORT listener the workers will serve
 * /metrics on, or -1 (then /metrics is a route of the main port). Returns 0,
 * or -1 after logging why. */
int host_metrics_setup(int workers, int metrics_fd);

/* Unmaps the block (the master, at exit). Idempotent. */
void host_metrics_teardown(void);

/* In a freshly forked worker, before it starts: the worker runs in slot
 * `index` (0 .. workers-1). Zeroes the slot's gauges and keeps its counters. */
void host_metrics_attach(int index);

/* The worker in slot `index` exited; `restarting` when it will be replaced
 * (counted as a restart), 0 during a drain. Zeroes the slot's gauges. */
void host_metrics_worker_exited(int index, int restarting);

/* The outcome of host_snapshot_refresh: 1 published (a reload, the new
 * generation is read back), 0 nothing changed, -1 refused. */
void host_metrics_scripts_refreshed(int outcome);

/* ---- worker ---------------------------------------------------------------- */

/* The service record (base/service.h): samples every service's numbers
 * every second, and serves /metrics on the METRICS_PORT listener when there
 * is one. Does nothing outside a server. */
extern const struct host_service host_metrics_service;
int host_metrics_init(struct event_base *base);
void host_metrics_shutdown(void);

/* The request path (request.c). begin when a request is dispatched; end
 * once per begin, when its reply was sent (or the client went away: 499),
 * with the method, the route pattern the script matched ("" or NULL for
 * none: labelled "(unmatched)"), the status and the seconds since begin. */
void host_metrics_request_begin(void);
void host_metrics_request_end(const char *method, const char *route, int status, double seconds);

/* A request answered by the HTTP layer without a script (http_errors.c):
 * counted, not timed, not in flight. `method` may be NULL. */
void host_metrics_request_refused(const char *method, int status);

/* Appends the exposition of every slot to `out`. Returns 0, or -1 outside a
 * server (nothing appended). */
int host_metrics_render(struct evbuffer *out);

#endif
