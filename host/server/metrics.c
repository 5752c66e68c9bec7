/* metrics.c — the numbers behind /metrics, summed over every worker.
 *
 * A scrape reaches one worker, but each worker is a process with its own
 * memory, so the numbers live in a block the master maps (MAP_SHARED |
 * MAP_ANONYMOUS) before the first fork and every worker inherits: one slot
 * per worker index and one for the master. Each slot has a single writer at
 * a time: the worker running in it, or the master while that worker is
 * dead (it zeroes the gauges). Any process reads every slot to render.
 * Values are C11 atomics; counters are updated with relaxed operations
 * (each is its own number, no order between them is promised). A restarted
 * worker takes over the slot of the one that died and continues its
 * counters, so they only go down when the master restarts (which Prometheus
 * sees as a counter reset).
 *
 * Where each number comes from:
 *   requests, latency    one series per (method, route, status), appended by
 *                        the worker (host_metrics_request_end, called by
 *                        request.c) and published with a release store of
 *                        nseries; the key fields never change afterwards
 *   in flight            host_metrics_request_begin / _end
 *   services' numbers    sampled every second and before each render from
 *                        the stats hook of every service in the registry
 *                        (base/service.h: pools, hashing, mail, Firehose),
 *                        which also names and describes them. Their
 *                        counters start at 0 in each worker process, so the
 *                        slot adds what the previous worker had published,
 *                        and only ever raises a published counter. Up to a
 *                        second of them is lost when a worker dies.
 *   log lines            a log sink (log.h), in the slot of the process
 *   script values        host.metrics.count / .gauge (a job's numbers: the
 *                        mail outbox, the retention sweeper), appended to
 *                        the slot's `values` like series; a counter is
 *                        summed over the slots, a gauge is the value set
 *                        last by any worker (they report deployment-wide
 *                        numbers read from the database)
 *   restarts, reloads    the master, in the block's header
 *
 * Owns: the mapping (the master unmaps it), and in a worker the sample
 * timer and the evhttp of the METRICS_PORT listener (host_metrics_shutdown
 * frees them). Scripts render through host.metrics (bind/metrics.c), to
 * which host_metrics_setup hands host_metrics_render. */
#include "server/metrics.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "base/log.h"
#include "base/service.h"
#include "lua/task.h"
#include "bind/metrics.h"
#include "server/snapshot.h"

#define SERIES_MAX 256          /* (method, route, status) series per slot */
#define METHOD_MAX 12
#define UNMATCHED "(unmatched)"
#define SAMPLE_INTERVAL_US 1000000
#define VALUES_MAX 32           /* script values per slot */
#define VALUE_HELP_MAX 160

/* Upper bounds of the latency histogram's buckets, in seconds. */
static const double bucket_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBOUNDS (sizeof bucket_bounds / sizeof bucket_bounds[0])

typedef _Atomic uint64_t counter_t;
typedef _Atomic int64_t gauge_t;

struct series {
    char method[METHOD_MAX];
    char route[HOST_TASK_ROUTE_MAX];
    int status;
    counter_t count;                /* requests answered */
    counter_t observed[NBOUNDS + 1];/* timed requests per bucket, not cumulative; last: above every bound */
    counter_t sum_us;               /* their total latency, microseconds */
};

/* A number a script reports (host.metrics.count / .gauge). */
struct script_value {
    char key[HOST_METRICS_KEY_MAX];        /* name, with its labels when any: never change once published */
    char help[VALUE_HELP_MAX];
    int is_counter;
    _Atomic double value;
    _Atomic double set_at;          /* wall-clock seconds of the last gauge set */
};

struct slot {
    gauge_t pid;                    /* 0 while no worker runs in the slot */
    gauge_t in_flight;
    counter_t untracked;            /* requests answered while `series` was full */
    gauge_t stats[HOST_SERVICE_STATS_MAX]; /* the services' numbers, in registry order */
    counter_t log_lines[4];         /* by enum log_level */
    _Atomic uint32_t nseries;       /* published entries of `series` */
    struct series series[SERIES_MAX];
    _Atomic uint32_t nvalues;       /* published entries of `values` */
    struct script_value values[VALUES_MAX];
};

struct block {
    int workers;                    /* slots[0 .. workers-1]; slots[workers] is the master's */
    counter_t restarts;             /* workers replaced after dying */
    counter_t reloads;              /* script generations published after the first */
    counter_t reload_failures;      /* script changes refused */
    gauge_t generation;             /* the generation published last */
    struct slot slots[];
};

/* ---- process state ------------------------------------------------------ */

static struct block *block;         /* NULL outside a server (CLI, host.so) */
static size_t block_size;
static struct slot *self;           /* this process's slot */
static int is_worker;
static int metrics_listener = -1;   /* METRICS_PORT socket, the master's */
static int64_t carry[HOST_SERVICE_STATS_MAX]; /* the counters earlier workers of the slot published */
static struct event *sample_ev;
static struct evhttp *metrics_http;

#define ADD(c, n) atomic_fetch_add_explicit(&(c), (n), memory_order_relaxed)
#define SUB(c, n) atomic_fetch_sub_explicit(&(c), (n), memory_order_relaxed)
#define GET(c) atomic_load_explicit(&(c), memory_order_relaxed)
#define SET(c, v) atomic_store_explicit(&(c), (v), memory_order_relaxed)

/* A counter fed from a sampled total only ever goes up. Single writer. */
static void raise_to(gauge_t *c, int64_t v)
{
    if (v > atomic_load_explicit(c, memory_order_relaxed)) atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Walks the services' numbers in registry order: fn(service, stat, index
 * in the slot's stats, arg) for each that has room in HOST_SERVICE_STATS_MAX. */
static void each_stat(void (*fn)(const struct host_service *svc, const struct host_stat *st, size_t i, void *arg),
                      void *arg)
{
    size_t i = 0;
    for (const struct host_service *const *s = host_services; *s; s++) {
        for (const struct host_stat *st = (*s)->stat_list; st && st->name; st++) {
            if (i == HOST_SERVICE_STATS_MAX) return;
            fn(*s, st, i++, arg);
        }
    }
}

static void count_log_line(enum log_level level, const char *line, size_t len, void *arg)
{
    (void)line;
    (void)len;
    (void)arg;
    if (self) ADD(self->log_lines[level], 1);
}

/* ---- master ----------------------------------------------------------------- */

static int record_value(const char *key, int is_counter, double value, const char *help);

int host_metrics_setup(int workers, int metrics_fd)
{
    if (block) return 0;
    block_size = sizeof *block + (size_t)(workers + 1) * sizeof(struct slot);
    /* fd -1 is what MAP_ANONYMOUS wants (cppcheck's mmap model does not know) */
    // cppcheck-suppress invalidFunctionArg
    void *p = mmap(NULL, block_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        host_log(LOG_ERROR, "cannot map the shared metrics block");
        return -1;
    }
    block = p; /* zero-filled by mmap */
    block->workers = workers;
    self = &block->slots[workers];
    SET(self->pid, (int64_t)getpid());
    metrics_listener = metrics_fd;
    size_t nstats = 0;
    for (const struct host_service *const *sv = host_services; *sv; sv++)
        for (const struct host_stat *st = (*sv)->stat_list; st && st->name; st++) nstats++;
    if (nstats > HOST_SERVICE_STATS_MAX) host_log(LOG_WARN, "more service numbers than HOST_SERVICE_STATS_MAX: some are not exported");
    host_metrics_set_renderer(host_metrics_render, metrics_fd >= 0);
    host_metrics_set_recorder(record_value);
    host_metrics_scripts_refreshed(0);
    if (host_log_add_sink(count_log_line, NULL) != 0) host_log(LOG_WARN, "no log sink left: log lines are not counted");
    return 0;
}

void host_metrics_teardown(void)
{
    if (block && !is_worker) munmap(block, block_size);
    block = NULL;
    self = NULL;
}

static void zero_gauge(const struct host_service *svc, const struct host_stat *st, size_t i, void *arg)
{
    struct slot *s = arg;
    (void)svc;
    if (!st->counter) SET(s->stats[i], 0);
}

static void zero_gauges(struct slot *s)
{
    SET(s->in_flight, 0);
    each_stat(zero_gauge, s);
}

void host_metrics_attach(int index)
{
    if (block == NULL || index < 0 || index >= block->workers) return;
    is_worker = 1;
    self = &block->slots[index];
    zero_gauges(self);
    for (size_t i = 0; i < HOST_SERVICE_STATS_MAX; i++) carry[i] = GET(self->stats[i]);
    SET(self->pid, (int64_t)getpid());
}

void host_metrics_worker_exited(int index, int restarting)
{
    if (block == NULL || index < 0 || index >= block->workers) return;
    struct slot *s = &block->slots[index];
    SET(s->pid, 0);
    zero_gauges(s);
    if (restarting) ADD(block->restarts, 1);
}

void host_metrics_scripts_refreshed(int outcome)
{
    struct snapshot snap;
    if (block == NULL) return;
    if (outcome < 0) ADD(block->reload_failures, 1);
    if (outcome > 0) ADD(block->reloads, 1);
    if (host_snapshot_current(&snap) == 0) SET(block->generation, (int64_t)snap.id);
}

/* ---- worker: sampling the services ------------------------------------------ */

/* Asks each service for its numbers: gauges are set, counters raised to
 * what the earlier workers of the slot published plus this one's total. */
static void sample(void)
{
    size_t at = 0;
    for (const struct host_service *const *s = host_services; *s; s++) {
        int64_t values[HOST_SERVICE_STATS_MAX] = {0};
        size_t n = 0;
        for (const struct host_stat *st = (*s)->stat_list; st && st->name; st++) n++;
        if (n == 0 || (*s)->stats == NULL) continue;
        if (at + n > HOST_SERVICE_STATS_MAX) return; /* host_metrics_setup said so */
        (*s)->stats(values);
        for (size_t i = 0; i < n; i++, at++) {
            if ((*s)->stat_list[i].counter) raise_to(&self->stats[at], carry[at] + values[i]);
            else SET(self->stats[at], values[i]);
        }
    }
}

static void sample_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sample();
}

/* GET /metrics on the METRICS_PORT listener; anything else is 404. */
static void metrics_port_cb(struct evhttp_request *req, void *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();
    (void)arg;
    if (body == NULL) {
        evhttp_send_reply(req, 503, "Service Unavailable", NULL);
        return;
    }
    if (path && strcmp(path, "/metrics") == 0 && host_metrics_render(body) == 0) {
        evhttp_add_header(out, "Content-Type", HOST_METRICS_CONTENT_TYPE);
        evhttp_add_header(out, "Cache-Control", "no-store");
        evhttp_send_reply(req, 200, "OK", body);
    } else {
        evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
        evbuffer_add_printf(body, "not found: this port serves GET /metrics only\n");
        evhttp_send_reply(req, 404, "Not Found", body);
    }
    evbuffer_free(body);
}

int host_metrics_init(struct event_base *base)
{
    static const struct timeval every = {0, SAMPLE_INTERVAL_US};
    if (!is_worker) return 0;
    sample_ev = event_new(base, -1, EV_PERSIST, sample_cb, NULL);
    if (sample_ev == NULL || event_add(sample_ev, &every) != 0) goto fail;
    if (metrics_listener >= 0) {
        metrics_http = evhttp_new(base);
        if (metrics_http == NULL) goto fail;
        evhttp_set_gencb(metrics_http, metrics_port_cb, NULL);
        evhttp_set_allowed_methods(metrics_http, EVHTTP_REQ_GET);
        evhttp_set_max_headers_size(metrics_http, 8192);
        evhttp_set_max_body_size(metrics_http, 1024);
        evhttp_set_timeout(metrics_http, 10);
        if (evhttp_accept_socket_with_handle(metrics_http, metrics_listener) == NULL) goto fail;
    }
    return 0;
fail:
    host_log(LOG_ERROR, "metrics cannot start (timer or METRICS_PORT server)");
    host_metrics_shutdown();
    return -1;
}

void host_metrics_shutdown(void)
{
    if (metrics_http) evhttp_free(metrics_http);
    metrics_http = NULL;
    if (sample_ev) event_free(sample_ev);
    sample_ev = NULL;
}

/* ---- worker: requests ----------------------------------------------------------- */

/* The series of this slot for the key, appended when new; NULL when the
 * table is full. Only the slot's worker calls this. */
static struct series *series_for(const char *method, const char *route, int status)
{
    char m[METHOD_MAX], r[HOST_TASK_ROUTE_MAX];
    host_metrics_label(m, sizeof m, method && *method ? method : "UNKNOWN");
    host_metrics_label(r, sizeof r, route && *route ? route : UNMATCHED);
    uint32_t n = atomic_load_explicit(&self->nseries, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++) {
        struct series *s = &self->series[i];
        if (s->status == status && strcmp(s->route, r) == 0 && strcmp(s->method, m) == 0) return s;
    }
    if (n == SERIES_MAX) return NULL;
    struct series *s = &self->series[n];
    /* a worker killed half-way through an append may have left bytes here */
    memcpy(s->method, m, sizeof m);
    memcpy(s->route, r, sizeof r);
    s->status = status;
    SET(s->count, 0);
    SET(s->sum_us, 0);
    for (size_t b = 0; b <= NBOUNDS; b++) SET(s->observed[b], 0);
    atomic_store_explicit(&self->nseries, n + 1, memory_order_release);
    return s;
}

void host_metrics_request_begin(void)
{
    if (is_worker) ADD(self->in_flight, 1);
}

void host_metrics_request_end(const char *method, const char *route, int status, double seconds)
{
    if (!is_worker) return;
    SUB(self->in_flight, 1);
    struct series *s = series_for(method, route, status);
    if (s == NULL) {
        ADD(self->untracked, 1);
        return;
    }
    size_t b = 0;
    if (seconds < 0) seconds = 0;
    while (b < NBOUNDS && seconds > bucket_bounds[b]) b++;
    ADD(s->count, 1);
    ADD(s->observed[b], 1);
    ADD(s->sum_us, (uint64_t)(seconds * 1e6 + 0.5));
}

void host_metrics_request_refused(const char *method, int status)
{
    if (!is_worker) return;
    struct series *s = series_for(method, NULL, status);
    if (s) ADD(s->count, 1);
    else ADD(self->untracked, 1);
}

/* ---- rendering ------------------------------------------------------------------- */

/* A series summed over the slots. */
struct total {
    const char *method, *route;     /* point into the block: never change once published */
    int status;
    uint64_t count, sum_us, observed[NBOUNDS + 1];
};

static int total_cmp(const void *a, const void *b)
{
    const struct total *x = a, *y = b;
    int c = strcmp(x->route, y->route);
    if (c == 0) c = strcmp(x->method, y->method);
    if (c == 0) c = (x->status > y->status) - (x->status < y->status);
    return c;
}

/* Label values escaped as the text format wants: \ " and newline. */
static void add_label_value(struct evbuffer *out, const char *v)
{
    evbuffer_add(out, "\"", 1);
    for (; *v; v++) {
        if (*v == '\\') evbuffer_add(out, "\\\\", 2);
        else if (*v == '"') evbuffer_add(out, "\\\"", 2);
        else if (*v == '\n') evbuffer_add(out, "\\n", 2);
        else evbuffer_add(out, v, 1);
    }
    evbuffer_add(out, "\"", 1);
}

static void add_head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void add_int(struct evbuffer *out, const char *name, const char *type, const char *help, int64_t v)
{
    add_head(out, name, type, help);
    evbuffer_add_printf(out, "%s %lld\n", name, (long long)v);
}

/* Sums a gauge or a counter of struct slot (its offset) over the worker slots. */
static int64_t sum_gauge(size_t offset)
{
    int64_t sum = 0;
    for (int i = 0; i < block->workers; i++)
        sum += atomic_load_explicit((gauge_t *)((char *)&block->slots[i] + offset), memory_order_relaxed);
    return sum;
}

static int64_t sum_counter(size_t offset)
{
    uint64_t sum = 0;
    for (int i = 0; i < block->workers; i++)
        sum += atomic_load_explicit((counter_t *)((char *)&block->slots[i] + offset), memory_order_relaxed);
    return (int64_t)sum;
}

#define GAUGE(field) sum_gauge(offsetof(struct slot, field))

/* One number of a service, summed over the worker slots. */
static void render_stat(const struct host_service *svc, const struct host_stat *st, size_t i, void *arg)
{
    int64_t sum = 0;
    (void)svc;
    for (int w = 0; w < block->workers; w++) sum += GET(block->slots[w].stats[i]);
    add_int(arg, st->name, st->counter ? "counter" : "gauge", st->help, sum);
}
#define COUNTER(field) sum_counter(offsetof(struct slot, field))

/* Every series of every worker slot, summed by key and sorted by route,
 * method, status. Returns the count; *out is malloc'd (caller frees), NULL
 * when empty or out of memory. */
static size_t collect_series(struct total **out)
{
    size_t cap = 0, n = 0;
    uint32_t *published = calloc((size_t)block->workers, sizeof *published);
    struct total *t = NULL;
    *out = NULL;
    if (published == NULL) return 0;
    for (int i = 0; i < block->workers; i++) {
        published[i] = atomic_load_explicit(&block->slots[i].nseries, memory_order_acquire);
        cap += published[i];
    }
    if (cap == 0 || (t = calloc(cap, sizeof *t)) == NULL) {
        free(published);
        return 0;
    }
    for (int i = 0; i < block->workers; i++) {
        for (uint32_t j = 0; j < published[i]; j++) {
            struct series *s = &block->slots[i].series[j];
            struct total *x = &t[n++];
            x->method = s->method;
            x->route = s->route;
            x->status = s->status;
            x->count = GET(s->count);
            x->sum_us = GET(s->sum_us);
            for (size_t b = 0; b <= NBOUNDS; b++) x->observed[b] = GET(s->observed[b]);
        }
    }
    free(published);
    qsort(t, n, sizeof *t, total_cmp);
    size_t m = 0; /* merge equal keys in place */
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && total_cmp(&t[m - 1], &t[i]) == 0) {
            t[m - 1].count += t[i].count;
            t[m - 1].sum_us += t[i].sum_us;
            for (size_t b = 0; b <= NBOUNDS; b++) t[m - 1].observed[b] += t[i].observed[b];
        } else {
            t[m++] = t[i];
        }
    }
    *out = t;
    return m;
}

static void render_requests(struct evbuffer *out)
{
    struct total *t;
    size_t n = collect_series(&t);

    add_head(out, "moonkeep_http_requests_total", "counter",
             "HTTP requests answered, by route pattern, method and status.");
    for (size_t i = 0; i < n; i++) {
        evbuffer_add_printf(out, "moonkeep_http_requests_total{route=");
        add_label_value(out, t[i].route);
        evbuffer_add_printf(out, ",method=\"%s\",status=\"%d\"} %llu\n", t[i].method, t[i].status,
                            (unsigned long long)t[i].count);
    }

    add_head(out, "moonkeep_http_request_duration_seconds", "histogram",
             "Time from dispatching a request to sending its reply, by route pattern and method.");
    for (size_t i = 0; i < n;) {
        uint64_t observed[NBOUNDS + 1] = {0}, sum_us = 0, total = 0;
        size_t j = i;
        for (; j < n && strcmp(t[j].route, t[i].route) == 0 && strcmp(t[j].method, t[i].method) == 0; j++) {
            for (size_t b = 0; b <= NBOUNDS; b++) observed[b] += t[j].observed[b];
            sum_us += t[j].sum_us;
        }
        for (size_t b = 0; b <= NBOUNDS; b++) total += observed[b];
        if (total > 0) {
            uint64_t cumulative = 0;
            for (size_t b = 0; b <= NBOUNDS; b++) {
                cumulative += observed[b];
                evbuffer_add_printf(out, "moonkeep_http_request_duration_seconds_bucket{route=");
                add_label_value(out, t[i].route);
                if (b < NBOUNDS)
                    evbuffer_add_printf(out, ",method=\"%s\",le=\"%g\"} %llu\n", t[i].method, bucket_bounds[b],
                                        (unsigned long long)cumulative);
                else
                    evbuffer_add_printf(out, ",method=\"%s\",le=\"+Inf\"} %llu\n", t[i].method,
                                        (unsigned long long)cumulative);
            }
            evbuffer_add_printf(out, "moonkeep_http_request_duration_seconds_sum{route=");
            add_label_value(out, t[i].route);
            evbuffer_add_printf(out, ",method=\"%s\"} %.6f\n", t[i].method, (double)sum_us / 1e6);
            evbuffer_add_printf(out, "moonkeep_http_request_duration_seconds_count{route=");
            add_label_value(out, t[i].route);
            evbuffer_add_printf(out, ",method=\"%s\"} %llu\n", t[i].method, (unsigned long long)total);
        }
        i = j;
    }
    free(t);

    add_int(out, "moonkeep_http_requests_untracked_total", "counter",
            "Requests answered while a worker's table of route series was full (counted nowhere else).",
            COUNTER(untracked));
    add_int(out, "moonkeep_http_requests_in_flight", "gauge",
            "Requests dispatched and not yet answered.", GAUGE(in_flight));
}

static int value_cmp(const void *a, const void *b)
{
    const struct script_value *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

/* The metric name of a key: up to its labels. */
static size_t name_len(const char *key)
{
    return strcspn(key, "{");
}

/* Every script value of every slot, one line per key (counters summed, the
 * newest gauge), with a head per metric name. */
static void render_script_values(struct evbuffer *out)
{
    /* every slot's values, whatever WORKERS is (a fixed array would drop
     * the slots past its size without a word) */
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
    const struct script_value **all = calloc((size_t)(block->workers + 1) * VALUES_MAX, sizeof *all);
    size_t n = 0;
    if (all == NULL) return;
    for (int i = 0; i <= block->workers; i++) {
        uint32_t published = atomic_load_explicit(&block->slots[i].nvalues, memory_order_acquire);
        for (uint32_t j = 0; j < published && j < VALUES_MAX; j++) all[n++] = &block->slots[i].values[j];
    }
    qsort(all, n, sizeof all[0], value_cmp); /* NOLINT(bugprone-sizeof-expression): the elements are pointers */
    for (size_t i = 0; i < n;) {
        const struct script_value *first = all[i];
        double v = first->is_counter ? 0 : atomic_load(&first->value), newest = -1;
        size_t j = i;
        for (; j < n && strcmp(all[j]->key, first->key) == 0; j++) {
            if (first->is_counter) {
                v += atomic_load(&all[j]->value);
            } else if (atomic_load(&all[j]->set_at) > newest) {
                newest = atomic_load(&all[j]->set_at);
                v = atomic_load(&all[j]->value);
            }
        }
        size_t len = name_len(first->key);
        if (i == 0 || name_len(all[i - 1]->key) != len || strncmp(all[i - 1]->key, first->key, len) != 0)
            evbuffer_add_printf(out, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, first->key, first->help,
                                (int)len, first->key, first->is_counter ? "counter" : "gauge");
        evbuffer_add_printf(out, "%s %.17g\n", first->key, v);
        i = j;
    }
    free(all);
}

int host_metrics_render(struct evbuffer *out)
{
    if (block == NULL) return -1;
    if (is_worker) sample(); /* this worker's numbers are fresh; the others' at most a second old */

    add_head(out, "moonkeep_build_info", "gauge", "The running version and commit (always 1).");
    evbuffer_add_printf(out, "moonkeep_build_info{version=\"%s\",commit=\"%s\"} 1\n", MOONKEEP_VERSION,
                        MOONKEEP_COMMIT);
    add_int(out, "moonkeep_workers", "gauge", "Worker processes configured (WORKERS).", block->workers);
    int64_t running = 0;
    for (int i = 0; i < block->workers; i++) running += GET(block->slots[i].pid) != 0;
    add_int(out, "moonkeep_workers_running", "gauge", "Worker processes running now.", running);
    add_int(out, "moonkeep_worker_restarts_total", "counter",
            "Workers that died and were restarted by the master.", (int64_t)GET(block->restarts));
    add_int(out, "moonkeep_script_generation", "gauge",
            "Id of the script generation the master published last.", GET(block->generation));
    add_int(out, "moonkeep_script_reloads_total", "counter",
            "Script generations published after the first (reloads).", (int64_t)GET(block->reloads));
    add_int(out, "moonkeep_script_reload_failures_total", "counter",
            "Script changes refused by the self-check (the active generation kept serving).",
            (int64_t)GET(block->reload_failures));

    render_requests(out);

    each_stat(render_stat, out);

    add_head(out, "moonkeep_log_lines_total", "counter", "Log lines written (after LOG_LEVEL), by level.");
    for (int level = LOG_DEBUG; level <= LOG_ERROR; level++) {
        uint64_t sum = 0;
        for (int i = 0; i <= block->workers; i++) sum += GET(block->slots[i].log_lines[level]);
        evbuffer_add_printf(out, "moonkeep_log_lines_total{level=\"%s\"} %llu\n",
                            host_log_level_name((enum log_level)level), (unsigned long long)sum);
    }
    render_script_values(out);
    return 0;
}

/* This slot's value for the key, appended when new; NULL when the table is
 * full or outside a worker. Only the slot's worker calls this. */
static struct script_value *value_for(const char *key, int is_counter, const char *help)
{
    if (!is_worker) return NULL;
    uint32_t n = atomic_load_explicit(&self->nvalues, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(self->values[i].key, key) == 0) return &self->values[i];
    if (n == VALUES_MAX) return NULL;
    struct script_value *v = &self->values[n];
    host_metrics_label(v->key, sizeof v->key, key);
    host_metrics_label(v->help, sizeof v->help, help);
    v->is_counter = is_counter;
    atomic_store(&v->value, 0.0);
    atomic_store(&v->set_at, 0.0);
    atomic_store_explicit(&self->nvalues, n + 1, memory_order_release);
    return v;
}

/* host_metrics_record_fn (bind/metrics.h): a script's number, in this
 * worker's slot. */
static int record_value(const char *key, int is_counter, double value, const char *help)
{
    struct script_value *v = value_for(key, is_counter, help);
    if (v == NULL) return -1;
    if (v->is_counter != is_counter) return -2;
    if (is_counter) {
        atomic_store(&v->value, atomic_load(&v->value) + value); /* single writer */
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        atomic_store(&v->value, value);
        atomic_store(&v->set_at, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    }
    return 0;
}

/* metrics first in the registry: it samples the others every second until
 * they have all stopped (mail's shutdown flush included), and its port
 * answers meanwhile. */
const struct host_service host_metrics_service = {
    "metrics", NULL, host_metrics_init, host_metrics_shutdown, NULL, NULL,
};
