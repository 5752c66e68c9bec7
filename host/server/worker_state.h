/* worker_state.h — what a worker process holds: struct worker, owned and
 * run by worker.c, read and updated by the request path (request.c counts
 * requests in flight and the time of the last reply, reads the drain flag,
 * the settings and the current generation). Apart from worker.h so that
 * the request path depends on the worker's state, not on worker.c, which
 * installs it (worker.c -> request.h -> worker_state.h). */
#ifndef MOONKEEP_WORKER_STATE_H
#define MOONKEEP_WORKER_STATE_H

#include "base/config.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct generation;

struct worker {
    const struct config *cfg;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct generation *current;
    unsigned inflight;          /* requests between dispatch and reply */
    int draining;               /* SIGTERM seen: no accepts, Connection: close */
    double drain_started;       /* monotonic seconds */
    double last_reply;          /* monotonic seconds of the latest reply */
    struct event *signals[3];
    struct event *drain_timer;
};

#endif
