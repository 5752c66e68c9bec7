/* conn.h — the worker's own account of its client connections: a read
 * deadline per request (REQUEST_READ_TIMEOUT_S), a cap on open connections
 * (MAX_CONNECTIONS), and a look at the raw bytes of each request head.
 * evhttp owns the connections; conn.c watches them (see conn.c). */
#ifndef MOONKEEP_CONN_H
#define MOONKEEP_CONN_H

#include <stddef.h>

#include "base/config.h"

struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;

/* Set in what host_conn_request_started returns: the raw head of the
 * request had a NUL byte, a bare CR or LF, or an obsolete folded header
 * line. evhttp cuts a header line at a NUL and takes a bare LF for a line
 * end, so the parsed headers cannot tell; the bytes on the wire can. */
#define HOST_CONN_HEAD_BAD 0x1u
/* Set when the head has grown past MAX_HEADER_BYTES: evhttp refuses it with
 * a 400 that cannot say why (its parser's "too long" becomes "invalid"). */
#define HOST_CONN_HEAD_LONG 0x2u

/* Starts watching the connections of `http` (it installs evhttp's bufferevent
 * callback): call before the first accept. Raises RLIMIT_NOFILE towards
 * what MAX_CONNECTIONS needs, and lowers the cap (with a warning) when the
 * limit cannot be raised. Returns 0, or -1 when out of memory. */
int host_conn_init(struct event_base *base, struct evhttp *http, const struct config *cfg);

/* The bound socket whose listener is paused at the cap and resumed below
 * it. NULL before evhttp_del_accept_socket (drain): never touched again. */
void host_conn_set_listener(struct evhttp_bound_socket *bound);

/* A request reaches the application, or evhttp answers it by itself: its
 * read deadline stops until the reply is written, after which the
 * connection waits for its next request (keep-alive) or closes. Returns
 * the HOST_CONN_* flags of the request's head, 0 for a connection this
 * file does not know (the client already left). Idempotent per request. */
unsigned host_conn_request_started(struct evhttp_request *req);

/* Connections open now. */
unsigned host_conn_count(void);

/* Frees what is left after evhttp_free (which closes every connection).
 * Without evhttp_free (a worker leaving with requests in flight) it frees
 * nothing: evhttp still points at the buffers. */
void host_conn_shutdown(void);

/* ---- the head scanner (pure; exposed for the fuzz harness) -------------- */

struct head_scan {
    int scanning;       /* 1 from the first byte of a request to its blank line */
    int bad;            /* a NUL, a bare CR or LF, or a folded line was seen */
    unsigned char prev; /* the previous byte, 0 at the start */
    size_t line_len;    /* bytes in the current line, CR excluded */
    size_t lines;       /* complete lines so far */
    size_t bytes;       /* bytes of the head so far */
};

void host_head_scan_reset(struct head_scan *s);
/* Feeds bytes of a request head; stops (scanning = 0) at its blank line and
 * returns how many bytes it consumed. */
size_t host_head_scan(struct head_scan *s, const unsigned char *p, size_t n);

#endif
