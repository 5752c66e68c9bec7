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

/* Copies a label value into dst (cap bytes, NUL included), cut at a UTF-8
 * sequence boundary when it does not fit. */
void host_metrics_label(char *dst, size_t cap, const char *src);

/* Pushes the host.metrics module: route(pattern), render(), CONTENT_TYPE. */
int host_metrics_open(lua_State *L);

#endif
