/* metrics.h — host.metrics: scripts label their request's metrics with the
 * route pattern they matched, and render the exposition when /metrics is a
 * route of the main port. The numbers are the server's (server/metrics.h),
 * which hands its renderer over (host_metrics_set_renderer); the spec
 * module host.so has none. */
#ifndef MOONKEEP_BIND_METRICS_H
#define MOONKEEP_BIND_METRICS_H

#include <stddef.h>
#include <lua.h>

struct evbuffer;

/* What a scrape answers with (Prometheus text exposition 0.0.4). */
#define HOST_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends the exposition of the whole server to `out`. 0, or -1 outside a
 * server (nothing appended). */
typedef int (*host_metrics_render_fn)(struct evbuffer *out);

/* Called by the master before it forks (workers inherit it): what
 * metrics.render() calls, and whether METRICS_PORT serves the numbers
 * instead (`elsewhere`: render() then answers nil, "served on
 * METRICS_PORT"). Without it render() answers nil, "not in a server". */
void host_metrics_set_renderer(host_metrics_render_fn render, int elsewhere);

/* The longest key (name{labels}) of a script's number, NUL included. */
#define HOST_METRICS_KEY_MAX 96

/* Stores a number a script reports in this worker's slot: `key` (checked:
 * moonkeep_..., labels optional) a counter to add `value` to, or a gauge to
 * set. Returns 0; -1 when it is dropped (the table is full, or not in a
 * worker); -2 when the key was reported as the other kind. */
typedef int (*host_metrics_record_fn)(const char *key, int is_counter, double value, const char *help);
/* Called by the master with the renderer (workers inherit it). */
void host_metrics_set_recorder(host_metrics_record_fn record);

/* Copies a label value into dst (cap bytes, NUL included), cut at a UTF-8
 * sequence boundary when it does not fit. */
void host_metrics_label(char *dst, size_t cap, const char *src);

/* Pushes the host.metrics module: route(pattern), count(key, n, help),
 * gauge(key, v, help), render(), CONTENT_TYPE. */
int host_metrics_open(lua_State *L);

#endif
