/* conn.c — the worker's own account of its client connections.
 *
 * evhttp 2.1 has no limit on how long reading a request may take (its
 * timeout measures idleness, so one byte every few seconds keeps a
 * connection forever) and none on how many connections it holds. This file
 * adds both, and looks at the raw bytes of each request head, which evhttp
 * parses loosely (a NUL cuts a header line short, a bare LF ends a line).
 *
 * How it sees connections: evhttp_set_bevcb makes it create the bufferevent
 * of every accepted connection, so it knows each one from accept on, and a
 * callback on the bufferevent's input buffer sees every byte arriving.
 * evhttp creates its struct evhttp_connection only after that callback
 * returns, so a connection is "adopted" on the next loop turn (a 0 s timer):
 * the bufferevent's callback argument is then the evhttp_connection, and a
 * close callback on it tells when evhttp frees it.
 *
 * Phases of a connection, and the read deadline:
 *   READING  from accept, or from the first byte of a later request, until
 *            the request reaches the application: the deadline runs
 *            (REQUEST_READ_TIMEOUT_S); when it passes, the client gets a
 *            408 and the connection is closed.
 *   BUSY     from then until the reply is written (host_conn_request_started
 *            installs the request's on-complete callback).
 *   IDLE     keep-alive between requests: evhttp's own idle timeout
 *            (KEEPALIVE_TIMEOUT_S) applies, no deadline.
 *
 * The cap: at MAX_CONNECTIONS open connections the worker stops accepting
 * (evconnlistener_disable); new connections wait in the shared accept queue
 * for a worker with room, and the worker accepts again once one closes.
 * accept() failing for lack of descriptors pauses accepting for 100 ms
 * rather than spinning on a readable listener.
 *
 * Owns, per worker process (C statics, like db.c: one evhttp per worker):
 * one struct conn per connection, each holding a reference on its
 * bufferevent (so an un-adopted one is never freed under it), its timer and
 * its input-buffer callback; the tree that finds a conn by bufferevent; the
 * resume timer. A conn is released when evhttp closes the connection (close
 * callback), when adoption finds evhttp already freed it, or at shutdown. */
#include "server/conn.h"

#include <errno.h>
#include <search.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/log.h"
#include "server/http_errors.h"
#include "server/metrics.h"

/* Descriptors kept for everything but client connections (database pool,
 * mail, logs, scripts). */
#define FD_RESERVE 128
#define ACCEPT_BACKOFF_S 0.1
#define LIMIT_LOG_INTERVAL_S 1.0

enum phase { READING, BUSY, IDLE };

struct conn {
    struct bufferevent *bev;          /* our reference: bufferevent_decref at release */
    struct evbuffer_cb_entry *watch;  /* on bev's input buffer; removed at release */
    struct evhttp_connection *evcon;  /* evhttp's; NULL until adopted */
    struct event *timer;              /* adoption (0 s), then the read deadline */
    enum phase phase;
    double deadline;                  /* monotonic seconds; meaningful while READING */
    struct head_scan head;            /* of the request being read */
    unsigned flags;                   /* HOST_CONN_* of that head */
    LIST_ENTRY(conn) link;
};

static struct {
    struct event_base *base;
    double read_timeout_s;
    size_t max_head;                  /* MAX_HEADER_BYTES */
    unsigned max;                     /* the effective cap */
    unsigned count;
    struct evconnlistener *listener;  /* NULL once the worker let go of it */
    int listening;                    /* the listener is enabled */
    int at_cap;
    int backing_off;                  /* accept() ran out of descriptors */
    struct event *resume;             /* ends backing_off */
    double limit_logged;              /* when "limit reached" was last logged */
    void *tree;                       /* tsearch tree of struct conn, by bev */
    LIST_HEAD(, conn) all;
} conns;

static void release(struct conn *c);

/* ---- the head scanner ----------------------------------------------------- */

void host_head_scan_reset(struct head_scan *s)
{
    memset(s, 0, sizeof *s);
    s->scanning = 1;
}

/* The head is the request line and the header lines, each ending in CRLF,
 * then an empty line. Refused: NUL anywhere, CR not followed by LF, LF not
 * preceded by CR, a line starting with SP or HT after the request line
 * (obs-fold, which RFC 9112 lets a server refuse). */
size_t host_head_scan(struct head_scan *s, const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && s->scanning) {
        unsigned char b = p[i++];
        if (b == '\n') {
            if (s->prev != '\r') s->bad = 1;
            if (s->line_len == 0 && s->lines > 0) s->scanning = 0; /* the blank line */
            else s->lines++;
            s->line_len = 0;
        } else if (b != '\r') {
            if (b == 0 || s->prev == '\r') s->bad = 1;
            if (s->line_len == 0 && s->lines > 0 && (b == ' ' || b == '\t')) s->bad = 1;
            s->line_len++;
        } else if (s->prev == '\r') {
            s->bad = 1;
        }
        s->prev = b;
    }
    s->bytes += i;
    return i;
}

/* Scans len bytes of buf from offset off (as far as the head goes). */
static void scan_buffer(struct conn *c, struct evbuffer *buf, size_t off, size_t len)
{
    struct evbuffer_ptr at;
    struct evbuffer_iovec v[8];
    if (len == 0 || evbuffer_ptr_set(buf, &at, off, EVBUFFER_PTR_SET) != 0) return;
    while (len > 0 && c->head.scanning) {
        int n = evbuffer_peek(buf, (ev_ssize_t)len, &at, v, 8);
        size_t done = 0;
        if (n <= 0) break;
        for (int i = 0; i < n && i < 8 && done < len && c->head.scanning; i++) {
            size_t k = v[i].iov_len < len - done ? v[i].iov_len : len - done;
            done += host_head_scan(&c->head, v[i].iov_base, k);
        }
        if (done == 0 || done >= len) break;
        len -= done;
        if (evbuffer_ptr_set(buf, &at, done, EVBUFFER_PTR_ADD) != 0) break;
    }
    if (c->head.bad) c->flags |= HOST_CONN_HEAD_BAD;
    if (c->head.bytes > conns.max_head) c->flags |= HOST_CONN_HEAD_LONG;
}

/* ---- accepting ---------------------------------------------------------------- */

/* Enables or disables the listener to match the state. */
static void sync_listener(void)
{
    int want = conns.listener != NULL && !conns.at_cap && !conns.backing_off;
    if (conns.listener == NULL || want == conns.listening) return;
    if (want) evconnlistener_enable(conns.listener);
    else evconnlistener_disable(conns.listener);
    conns.listening = want;
}

static void update_cap(void)
{
    int at_cap = conns.count >= conns.max;
    if (at_cap && !conns.at_cap) {
        double now = host_now();
        if (now - conns.limit_logged >= LIMIT_LOG_INTERVAL_S) {
            struct log_line *line = host_log_begin(LOG_WARN, "connection limit reached; not accepting");
            host_log_int(line, "connections", conns.count);
            host_log_int(line, "max_connections", conns.max);
            host_log_end(line);
            conns.limit_logged = now;
        }
    }
    conns.at_cap = at_cap;
    sync_listener();
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    conns.backing_off = 0;
    sync_listener();
}

/* accept() failed. Out of descriptors (or memory), the listener would stay
 * readable and the loop would spin: pause accepting briefly instead. */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, (suseconds_t)(ACCEPT_BACKOFF_S * 1e6)};
    (void)lev;
    (void)arg;
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) return;
    double now = host_now();
    if (now - conns.limit_logged >= LIMIT_LOG_INTERVAL_S) {
        struct log_line *line = host_log_begin(LOG_WARN, "accept failed; pausing");
        host_log_str(line, "error", strerror(err));
        host_log_int(line, "connections", conns.count);
        host_log_end(line);
        conns.limit_logged = now;
    }
    conns.backing_off = 1;
    sync_listener();
    event_add(conns.resume, &tv);
}

void host_conn_set_listener(struct evhttp_bound_socket *bound)
{
    conns.listener = bound ? evhttp_bound_socket_get_listener(bound) : NULL;
    conns.listening = conns.listener != NULL;
    if (conns.listener) evconnlistener_set_error_cb(conns.listener, accept_error_cb);
    sync_listener();
}

/* ---- one connection ------------------------------------------------------------- */

static int by_bev(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct conn *)a)->bev;
    uintptr_t y = (uintptr_t)((const struct conn *)b)->bev;
    return x < y ? -1 : x > y;
}

static struct conn *find(struct bufferevent *bev)
{
    struct conn key = {.bev = bev};
    struct conn **found = tfind(&key, &conns.tree, by_bev);
    return found ? *found : NULL;
}

static void arm(struct conn *c, double seconds)
{
    struct timeval tv;
    if (seconds < 0) seconds = 0;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    event_add(c->timer, &tv);
}

static void start_reading(struct conn *c)
{
    c->phase = READING;
    c->deadline = host_now() + conns.read_timeout_s;
    c->flags = 0;
    host_head_scan_reset(&c->head);
    if (c->evcon) arm(c, conns.read_timeout_s); /* else the adoption timer arms it */
}

static void closed_cb(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    release(arg);
}

static void adopt(struct conn *c, struct evhttp_connection *evcon)
{
    c->evcon = evcon;
    evhttp_connection_set_closecb(evcon, closed_cb, c);
}

/* The deadline passed while the request was still being read: a 408,
 * written straight to the socket (nothing else is being written while
 * evhttp reads), then evhttp closes the connection and closed_cb releases c. */
static void expire(struct conn *c)
{
    unsigned char raw[16];
    char id[33], reply[512];
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(id, sizeof id, raw, sizeof raw);
    size_t n = host_http_error_raw(408, id, reply, sizeof reply);
    if (fd >= 0 && n > 0 && send(fd, reply, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the client is gone or not reading: closing is all that is left */
    }
    struct log_line *line = host_log_begin(LOG_INFO, "request read deadline passed");
    host_log_str(line, "request_id", id);
    host_log_int(line, "status", 408);
    host_log_num(line, "read_timeout_s", conns.read_timeout_s);
    host_log_end(line);
    host_metrics_request_refused(NULL, 408);
    evhttp_connection_free(c->evcon);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->evcon == NULL) {
        bufferevent_data_cb r, w;
        bufferevent_event_cb e;
        void *evcon = NULL;
        bufferevent_getcb(c->bev, &r, &w, &e, &evcon);
        if (e == NULL || evcon == NULL) { /* evhttp already let it go */
            release(c);
            return;
        }
        adopt(c, evcon);
    }
    if (c->phase != READING) return;
    double left = c->deadline - host_now();
    if (left > 0) arm(c, left);
    else expire(c);
}

/* Bytes arrived (or were drained: ignored). */
static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    if (info->n_added == 0 || c->phase == BUSY) return;
    if (c->phase == IDLE) start_reading(c);
    if (c->head.scanning) {
        size_t len = evbuffer_get_length(buf);
        size_t added = info->n_added < len ? info->n_added : len;
        scan_buffer(c, buf, len - added, added);
    }
}

/* The reply is written. If the connection stays open, what is already
 * buffered (a pipelined request) starts the next read; else it idles. */
static void reply_done_cb(struct evhttp_request *req, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t pending = evbuffer_get_length(in);
    (void)req;
    if (pending > 0) {
        start_reading(c);
        scan_buffer(c, in, 0, pending);
    } else {
        c->phase = IDLE;
    }
}

/* evhttp's bufferevent callback: a connection was just accepted. */
static struct bufferevent *bev_cb(struct event_base *base, void *arg)
{
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    struct conn *c = calloc(1, sizeof *c);
    (void)arg;
    if (bev == NULL || c == NULL) goto untracked;
    c->bev = bev;
    c->timer = evtimer_new(base, timer_cb, c);
    if (c->timer == NULL) goto untracked;
    c->watch = evbuffer_add_cb(bufferevent_get_input(bev), input_cb, c);
    if (c->watch == NULL) goto untracked;
    if (tsearch(c, &conns.tree, by_bev) == NULL) goto untracked;

    bufferevent_incref(bev);
    LIST_INSERT_HEAD(&conns.all, c, link);
    start_reading(c);
    arm(c, 0); /* adopt on the next turn */
    conns.count++;
    update_cap();
    return bev;

untracked: /* out of memory: evhttp serves it, uncounted and without deadline */
    if (c && c->watch) evbuffer_remove_cb_entry(bufferevent_get_input(bev), c->watch);
    if (c && c->timer) event_free(c->timer);
    free(c);
    return bev; /* NULL: evhttp makes its own */
}

static void release(struct conn *c)
{
    tdelete(c, &conns.tree, by_bev);
    LIST_REMOVE(c, link);
    evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
    event_free(c->timer);
    bufferevent_decref(c->bev);
    free(c);
    conns.count--;
    update_cap();
}

/* ---- the worker's side ---------------------------------------------------------- */

unsigned host_conn_request_started(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct conn *c = evcon ? find(evhttp_connection_get_bufferevent(evcon)) : NULL;
    if (c == NULL) return 0;
    if (c->evcon == NULL) adopt(c, evcon);
    unsigned flags = c->flags;
    c->phase = BUSY;
    c->flags = 0;
    event_del(c->timer);
    evhttp_request_set_on_complete_cb(req, reply_done_cb, c);
    return flags;
}

unsigned host_conn_count(void)
{
    return conns.count;
}

/* Raises the soft RLIMIT_NOFILE to what `max` connections need; returns
 * the cap the limit allows. */
static unsigned cap_for_descriptors(unsigned max)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max + FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return max;
    rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want) ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return max;
    unsigned allowed = rl.rlim_cur > (rlim_t)2 * FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE)
                                                    : (unsigned)(rl.rlim_cur / 2);
    struct log_line *line = host_log_begin(LOG_WARN, "MAX_CONNECTIONS lowered to fit the descriptor limit");
    host_log_int(line, "max_connections", max);
    host_log_int(line, "nofile", (int64_t)rl.rlim_cur);
    host_log_int(line, "effective", allowed);
    host_log_end(line);
    return allowed > 0 ? allowed : 1;
}

int host_conn_init(struct event_base *base, struct evhttp *http, const struct config *cfg)
{
    memset(&conns, 0, sizeof conns);
    LIST_INIT(&conns.all);
    conns.base = base;
    conns.read_timeout_s = cfg->request_read_timeout_s;
    conns.max_head = cfg->max_header_bytes;
    conns.max = cap_for_descriptors((unsigned)cfg->max_connections);
    conns.limit_logged = -LIMIT_LOG_INTERVAL_S;
    conns.resume = evtimer_new(base, resume_cb, NULL);
    if (conns.resume == NULL) return -1;
    evhttp_set_bevcb(http, bev_cb, NULL);
    return 0;
}

static void forget(void *node)
{
    (void)node; /* the conns themselves are freed by release */
}

void host_conn_shutdown(void)
{
    conns.listener = NULL;
    /* evhttp_free closed every adopted connection; the rest it freed
     * before they were adopted */
    while (!LIST_EMPTY(&conns.all)) release(LIST_FIRST(&conns.all));
    tdestroy(conns.tree, forget);
    conns.tree = NULL;
    if (conns.resume) event_free(conns.resume);
    conns.resume = NULL;
}
