/* transfer.c — the transfer thread (transfer.h): one pthread per worker
 * that owns one curl multi handle and runs every libcurl transfer of the
 * worker, so that nothing libcurl does (including the blocking waits of its
 * SMTP, curl issue #8555) can stall the event loop.
 *
 * Owns, per worker process, everything in `tx`:
 *   - the multi handle (made on the loop thread by the first submit, used
 *     only by the thread until it is joined; curl_multi_wakeup, which is
 *     thread-safe, is the loop's one call on it meanwhile);
 *   - every submitted transfer (struct xfer), in exactly one of three lists
 *     under tx.mu: queued (submitted, not yet picked up), running (picked up
 *     by the thread: its handle is, or is about to be, in the multi handle),
 *     done (out of the multi handle, waiting for the loop to run done_cb);
 *   - the table of every socket curl opened and has not closed, each with
 *     the transfer using it, so that a cancel or the shutdown can cut them;
 *   - the eventfd the thread writes after it puts a transfer on the done
 *     list, and the libevent event that reads it on the loop.
 *
 * Threads and locks. The loop thread calls the API and runs done callbacks.
 * The transfer thread runs curl (curl_multi_perform / curl_multi_poll) and
 * curl's callbacks: the owners' (read, write, ...) and this file's socket
 * callbacks. It holds tx.mu only for short list and table updates, never
 * while inside curl, so the loop can always take the lock at once; the
 * socket callbacks take it themselves. Fields marked "loop" are touched by
 * the loop thread only; "thread" by the transfer thread only; "mu" under
 * the lock. tx.running is changed (insert, remove) by the thread only, under
 * the lock, so the thread may walk it without the lock and the loop may walk
 * it with the lock.
 *
 * Cutting. curl_multi_remove_handle on an SMTP transfer that is still going
 * makes curl finish it politely: it sends the end-of-data mark (a half
 * message is delivered) and waits, blocking, for the reply; closing a
 * connection sends QUIT and waits again. With the socket shut down first
 * (shutdown(2), not close: curl still owns the descriptor) every such write
 * and wait fails at once. The table says which sockets a transfer uses:
 * CURLOPT_SOCKOPTFUNCTION names the transfer that opens a socket; for a
 * connection taken from curl's cache, CURLOPT_PREREQFUNCTION (called for
 * every transfer, just before its request) gives the ports, matched against
 * the table with getsockname/getpeername. Each entry also keeps the
 * socket's device and inode, checked before a cut, so that a descriptor
 * number reused behind curl's back is never cut. */
#include "base/transfer.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/log.h"

#define TRANSFER_MAX_FDS 128        /* sockets curl may hold at once; past it, a connect fails */
#define TRANSFER_MAX_CONNECTS 8L    /* curl's connection cache, for every user together */
#define TRANSFER_POLL_MS 1000       /* curl_multi_poll's bound; curl's own timers come sooner */

enum xfer_state { XFER_QUEUED, XFER_RUNNING, XFER_DONE };

struct xfer {
    TAILQ_ENTRY(xfer) link;             /* in tx.queued, tx.running or tx.done (mu) */
    CURL *easy;                         /* the owner's; ours until done_cb */
    host_transfer_done_fn done_cb;
    void *arg;
    enum xfer_state state;              /* mu */
    int cancel;                         /* mu: host_transfer_cancel asked */
    int added;                          /* thread: in the multi handle */
    CURLcode rc;                        /* set before XFER_DONE */
    long response_code;
};

TAILQ_HEAD(xfer_list, xfer);

struct tracked_fd {
    curl_socket_t fd;
    dev_t dev;                          /* identity when curl opened it */
    ino_t ino;
    struct xfer *owner;                 /* the transfer using it, NULL when idle in curl's cache */
};

static struct {
    pthread_mutex_t mu;
    /* loop */
    int initialized;                    /* init done, shutdown not run */
    int accepting;                      /* submit allowed */
    int started;                        /* the thread runs: join owed */
    int curl_ready;                     /* curl_global_init done: cleanup owed */
    long shutdown_s;                    /* TRANSFER_SHUTDOWN_S */
    struct event *done_ev;              /* owned */
    pthread_t thread;
    /* loop until the thread starts, then the thread's (wakeup excepted) */
    CURLM *multi;                       /* owned */
    /* set at init, then read-only */
    int efd;                            /* owned */
    /* mu */
    int stopping;                       /* the thread: leave now */
    struct xfer_list queued, running, done;
    struct tracked_fd fds[TRANSFER_MAX_FDS];
    unsigned nfds;
} tx = {.mu = PTHREAD_MUTEX_INITIALIZER, .efd = -1};

/* ---- under the lock ------------------------------------------------------ */

/* Shuts a tracked socket down if it is still the one curl opened. mu. */
static void cut(const struct tracked_fd *t)
{
    struct stat st;
    if (fstat(t->fd, &st) == 0 && st.st_dev == t->dev && st.st_ino == t->ino)
        shutdown(t->fd, SHUT_RDWR);
}

static void cut_owned(const struct xfer *x)
{
    for (unsigned i = 0; i < tx.nfds; i++)
        if (tx.fds[i].owner == x) cut(&tx.fds[i]);
}

static void cut_all(void)
{
    for (unsigned i = 0; i < tx.nfds; i++) cut(&tx.fds[i]);
}

/* Moves x (queued or running, no longer in the multi handle) to the done
 * list with result rc and wakes the loop. Its sockets, if curl keeps them,
 * now belong to no transfer. mu. */
static void post_done(struct xfer *x, CURLcode rc)
{
    uint64_t one = 1;
    TAILQ_REMOVE(x->state == XFER_QUEUED ? &tx.queued : &tx.running, x, link);
    for (unsigned i = 0; i < tx.nfds; i++)
        if (tx.fds[i].owner == x) tx.fds[i].owner = NULL;
    x->rc = rc;
    x->state = XFER_DONE;
    TAILQ_INSERT_TAIL(&tx.done, x, link);
    /* nonblocking; fails only past 2^64-1 pending wakeups */
    ssize_t w = write(tx.efd, &one, sizeof one);
    (void)w;
}

/* ---- curl's socket callbacks (transfer thread, inside curl) -------------- */

/* CURLOPT_SOCKOPTFUNCTION: a new socket for transfer `clientp`. Refused
 * (the connect fails, the owner sees an error) when the table is full: a
 * socket that could not be cut must not exist. */
static int sockopt_cb(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    struct stat st;
    int rc = CURL_SOCKOPT_ERROR;
    (void)purpose;
    if (fstat(fd, &st) != 0) return CURL_SOCKOPT_ERROR;
    pthread_mutex_lock(&tx.mu);
    if (tx.nfds < TRANSFER_MAX_FDS) {
        tx.fds[tx.nfds++] = (struct tracked_fd){fd, st.st_dev, st.st_ino, clientp};
        rc = CURL_SOCKOPT_OK;
    }
    pthread_mutex_unlock(&tx.mu);
    return rc;
}

/* CURLOPT_CLOSESOCKETFUNCTION: curl is done with fd. No clientp: curl keeps
 * this callback in the connection, which outlives the transfer. The entry
 * goes before the close, so no cut can reach the number once it is free. */
static int closesocket_cb(void *clientp, curl_socket_t fd)
{
    (void)clientp;
    pthread_mutex_lock(&tx.mu);
    for (unsigned i = 0; i < tx.nfds; i++) {
        if (tx.fds[i].fd != fd) continue;
        tx.fds[i] = tx.fds[--tx.nfds];
        break;
    }
    pthread_mutex_unlock(&tx.mu);
    return close(fd);
}

static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return -1;
}

/* CURLOPT_PREREQFUNCTION: transfer `clientp` is about to send its request
 * on a connection, new or from the cache: the tracked socket with these
 * local and remote ports is now its own. (Ports only: two sockets of one
 * process with the same local and remote port differ only in the remote
 * address, and a wrong owner costs a cut connection, not a hang.) */
/* NOLINTNEXTLINE(readability-non-const-parameter): curl's callback type */
static int prereq_cb(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    (void)primary_ip;
    (void)local_ip;
    pthread_mutex_lock(&tx.mu);
    for (unsigned i = 0; i < tx.nfds; i++) {
        struct sockaddr_storage local = {0}, peer = {0};
        socklen_t llen = sizeof local, plen = sizeof peer;
        if (getsockname(tx.fds[i].fd, (struct sockaddr *)&local, &llen) != 0 ||
            getpeername(tx.fds[i].fd, (struct sockaddr *)&peer, &plen) != 0)
            continue;
        if (port_of(&local) == local_port && port_of(&peer) == primary_port)
            tx.fds[i].owner = clientp;
    }
    pthread_mutex_unlock(&tx.mu);
    return CURL_PREREQFUNC_OK;
}

/* ---- the transfer thread ------------------------------------------------- */

/* Takes x's handle out of the multi handle and posts it done. Thread. */
static void finish(CURLM *multi, struct xfer *x, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (x->added) curl_multi_remove_handle(multi, x->easy);
    x->added = 0;
    pthread_mutex_lock(&tx.mu);
    x->response_code = code;
    post_done(x, rc);
    pthread_mutex_unlock(&tx.mu);
}

/* Adds what the thread picked up and has not added yet. Thread. */
static void add_new(CURLM *multi)
{
    struct xfer *x, *next;
    for (x = TAILQ_FIRST(&tx.running); x; x = next) {
        next = TAILQ_NEXT(x, link);
        if (x->added) continue;
        if (curl_multi_add_handle(multi, x->easy) == CURLM_OK) x->added = 1;
        else finish(multi, x, CURLE_FAILED_INIT);
    }
}

/* Ends the transfers host_transfer_cancel asked to stop: cut (again: a
 * socket may have been opened since the cancel), then removed. Thread. */
static void reap_cancelled(CURLM *multi)
{
    struct xfer *x, *next;
    for (x = TAILQ_FIRST(&tx.running); x; x = next) {
        next = TAILQ_NEXT(x, link);
        pthread_mutex_lock(&tx.mu);
        int cancel = x->cancel;
        if (cancel) cut_owned(x);
        pthread_mutex_unlock(&tx.mu);
        if (cancel) finish(multi, x, HOST_TRANSFER_ABORTED);
    }
}

/* Posts the transfers curl finished. A cancelled one that failed (most
 * likely on its cut socket) reports HOST_TRANSFER_ABORTED. Thread. */
static void collect_done(CURLM *multi)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result; /* m dies with the handle's removal */
        struct xfer *x;
        TAILQ_FOREACH(x, &tx.running, link)
            if (x->easy == easy) break;
        if (x == NULL) continue;
        pthread_mutex_lock(&tx.mu);
        if (x->cancel && rc != CURLE_OK) rc = HOST_TRANSFER_ABORTED;
        pthread_mutex_unlock(&tx.mu);
        finish(multi, x, rc);
    }
}

static void *transfer_thread(void *arg)
{
    CURLM *multi = arg;
    for (;;) {
        struct xfer *x;
        int running = 0;
        pthread_mutex_lock(&tx.mu);
        if (tx.stopping) {
            pthread_mutex_unlock(&tx.mu);
            break;
        }
        while ((x = TAILQ_FIRST(&tx.queued)) != NULL) {
            TAILQ_REMOVE(&tx.queued, x, link);
            x->state = XFER_RUNNING;
            TAILQ_INSERT_TAIL(&tx.running, x, link);
        }
        pthread_mutex_unlock(&tx.mu);

        add_new(multi);
        reap_cancelled(multi);
        curl_multi_perform(multi, &running);
        collect_done(multi);
        curl_multi_poll(multi, NULL, 0, TRANSFER_POLL_MS, NULL);
    }
    /* Shutdown has cut every socket: removing the handles cannot block.
     * What is still queued is the loop's to abort once we are joined. */
    struct xfer *x;
    while ((x = TAILQ_FIRST(&tx.running)) != NULL) finish(multi, x, HOST_TRANSFER_ABORTED);
    return NULL;
}

/* Makes the multi handle and starts the thread. Loop. 0 or -1 (logged). */
static int thread_start(void)
{
    sigset_t all, old;
    tx.multi = curl_multi_init();
    if (tx.multi == NULL) goto fail;
    curl_multi_setopt(tx.multi, CURLMOPT_MAXCONNECTS, TRANSFER_MAX_CONNECTS);
    /* Signals stay with the loop thread (libevent's evsignal). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&tx.thread, NULL, transfer_thread, tx.multi);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) goto fail;
    tx.started = 1;
    return 0;

fail:
    if (tx.multi) curl_multi_cleanup(tx.multi);
    tx.multi = NULL;
    host_log(LOG_ERROR, "transfer thread cannot start (curl multi handle or pthread)");
    return -1;
}

/* ---- the loop side ------------------------------------------------------- */

/* Runs the done callback of every finished transfer. Each xfer is freed
 * before its callback, which may submit again. Loop. */
static void deliver_done(void)
{
    struct xfer_list list;
    struct xfer *x;
    TAILQ_INIT(&list);
    pthread_mutex_lock(&tx.mu);
    TAILQ_CONCAT(&list, &tx.done, link);
    pthread_mutex_unlock(&tx.mu);
    while ((x = TAILQ_FIRST(&list)) != NULL) {
        TAILQ_REMOVE(&list, x, link);
        CURL *easy = x->easy;
        host_transfer_done_fn done_cb = x->done_cb;
        void *arg = x->arg;
        CURLcode rc = x->rc;
        long code = x->response_code;
        free(x);
        done_cb(easy, rc, code, arg);
    }
}

/* The eventfd is readable: transfers are done. Loop. */
static void done_event_cb(evutil_socket_t fd, short what, void *arg)
{
    uint64_t count;
    (void)what;
    (void)arg;
    ssize_t r = read(fd, &count, sizeof count); /* resets the counter */
    (void)r;
    deliver_done();
}

int host_transfer_submit(CURL *easy, host_transfer_done_fn done_cb, void *arg)
{
    if (!tx.accepting || easy == NULL || done_cb == NULL) return -1;
    if (!tx.started && thread_start() != 0) return -1;
    struct xfer *x = calloc(1, sizeof *x);     /* freed by deliver_done */
    if (x == NULL) return -1;
    x->easy = easy;
    x->done_cb = done_cb;
    x->arg = arg;
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
    curl_easy_setopt(easy, CURLOPT_SOCKOPTDATA, (void *)x);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, NULL);
    curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, prereq_cb);
    curl_easy_setopt(easy, CURLOPT_PREREQDATA, (void *)x);
    pthread_mutex_lock(&tx.mu);
    x->state = XFER_QUEUED;
    TAILQ_INSERT_TAIL(&tx.queued, x, link);
    pthread_mutex_unlock(&tx.mu);
    curl_multi_wakeup(tx.multi);
    return 0;
}

void host_transfer_cancel(const CURL *easy)
{
    struct xfer *x;
    int wake = 0;
    if (!tx.initialized || easy == NULL) return;
    pthread_mutex_lock(&tx.mu);
    TAILQ_FOREACH(x, &tx.queued, link)
        if (x->easy == easy) break;
    if (x) {
        post_done(x, HOST_TRANSFER_ABORTED); /* never reached curl */
    } else {
        TAILQ_FOREACH(x, &tx.running, link)
            if (x->easy == easy) break;
        if (x && !x->cancel) {
            x->cancel = 1;
            cut_owned(x);   /* now: curl may be blocked on this socket */
            wake = 1;
        }
    }
    pthread_mutex_unlock(&tx.mu);
    if (wake) curl_multi_wakeup(tx.multi);
}

/* ---- service ------------------------------------------------------------- */

/* TRANSFER_SHUTDOWN_S (a malformed number exits). */
static long shutdown_s_setting(void)
{
    return config_env_long("TRANSFER_SHUTDOWN_S", 1, 0, 60);
}

int host_transfer_check_config(char *err, size_t cap)
{
    (void)shutdown_s_setting(); /* a malformed number exits here, in the master */
    if (cap > 0) err[0] = '\0'; /* nothing else can be wrong */
    return 0;
}

int host_transfer_init(struct event_base *base)
{
    if (tx.initialized) return 0;
    tx.shutdown_s = shutdown_s_setting();
    TAILQ_INIT(&tx.queued);
    TAILQ_INIT(&tx.running);
    TAILQ_INIT(&tx.done);
    tx.nfds = 0;
    tx.stopping = 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        host_log(LOG_ERROR, "transfer: curl_global_init failed");
        return -1;
    }
    tx.curl_ready = 1;
    tx.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (tx.efd >= 0) tx.done_ev = event_new(base, tx.efd, EV_READ | EV_PERSIST, done_event_cb, NULL);
    if (tx.done_ev == NULL || event_add(tx.done_ev, NULL) != 0) {
        host_log(LOG_ERROR, "transfer: cannot watch its eventfd");
        tx.initialized = 1; /* so that shutdown frees what was made */
        host_transfer_shutdown();
        return -1;
    }
    tx.initialized = 1;
    tx.accepting = 1;
    return 0;
}

/* Waits up to tx.shutdown_s for the transfers in flight, running their
 * callbacks as they finish. Returns how many are left. Loop. */
static unsigned wait_in_flight(void)
{
    double deadline = host_now() + (double)tx.shutdown_s;
    for (;;) {
        unsigned busy = 0;
        struct xfer *x;
        deliver_done();
        pthread_mutex_lock(&tx.mu);
        TAILQ_FOREACH(x, &tx.queued, link) busy++;
        TAILQ_FOREACH(x, &tx.running, link) busy++;
        pthread_mutex_unlock(&tx.mu);
        double left = deadline - host_now();
        if (busy == 0 || left <= 0) return busy;
        struct pollfd p = {.fd = tx.efd, .events = POLLIN};
        if (poll(&p, 1, (int)(left * 1000.0) + 1) > 0) {
            uint64_t count;
            ssize_t r = read(tx.efd, &count, sizeof count);
            (void)r;
        }
    }
}

void host_transfer_shutdown(void)
{
    if (!tx.initialized) return;
    tx.accepting = 0;
    if (tx.started) {
        struct xfer *x;
        unsigned left = wait_in_flight();
        if (left > 0) {
            struct log_line *line = host_log_begin(LOG_WARN, "transfers aborted at shutdown");
            host_log_int(line, "aborted", (int64_t)left);
            host_log_int(line, "bound_s", tx.shutdown_s);
            host_log_end(line);
        }
        pthread_mutex_lock(&tx.mu);
        tx.stopping = 1;
        cut_all();
        pthread_mutex_unlock(&tx.mu);
        curl_multi_wakeup(tx.multi);
        pthread_join(tx.thread, NULL);
        tx.started = 0;
        /* The thread is gone: the lists and the multi handle are ours. */
        pthread_mutex_lock(&tx.mu);
        while ((x = TAILQ_FIRST(&tx.queued)) != NULL) post_done(x, HOST_TRANSFER_ABORTED);
        pthread_mutex_unlock(&tx.mu);
        deliver_done();
        /* closes curl's cached connections; their sockets are cut, so an
         * SMTP QUIT fails at once instead of waiting for a reply */
        curl_multi_cleanup(tx.multi);
        tx.multi = NULL;
    }
    if (tx.done_ev) event_free(tx.done_ev);
    tx.done_ev = NULL;
    if (tx.efd >= 0) close(tx.efd);
    tx.efd = -1;
    if (tx.curl_ready) curl_global_cleanup();
    tx.curl_ready = 0;
    tx.nfds = 0;
    tx.stopping = 0;
    tx.initialized = 0;
}

const struct host_service host_transfer_service = {
    "transfer", host_transfer_check_config, host_transfer_init, host_transfer_shutdown, NULL, NULL,
};
