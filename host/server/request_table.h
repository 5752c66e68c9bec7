/* request_table.h — the request as scripts see it, built from plain parts,
 * and the checks a request head must pass before any script runs. Pure
 * functions (no evhttp_request, no connection): request.c feeds them from
 * evhttp, fuzz/request_fuzz.c from bytes. */
#ifndef MOONKEEP_REQUEST_TABLE_H
#define MOONKEEP_REQUEST_TABLE_H

#include <stddef.h>

#include <lua.h>

struct evhttp_uri;
struct evkeyvalq;

struct request_parts {
    const char *method;               /* "GET", ... */
    int method_has_body;              /* evhttp reads a body for this method */
    const struct evhttp_uri *uri;     /* the parsed target; NULL reads as "/" */
    const struct evkeyvalq *headers;
    const char *body;                 /* NULL when empty */
    size_t body_len;
    const char *request_id;
    const char *remote_addr;          /* NULL when unknown */
    const char *client_addr;          /* the peer, or whom trusted proxies name; "" when unknown */
};

/* X-Request-Id is taken from the client when it is 1 to 128 of letters,
 * digits, '.', '_', ':', '-'. */
int host_request_id_is_sane(const char *id);

/* Why the head must be refused with a 400 (and the connection closed, since
 * its framing cannot be trusted), or NULL when it is acceptable:
 * control characters in a header value, a header name that is not a token,
 * more than one Content-Length, Transfer-Encoding or Host, Transfer-Encoding
 * with Content-Length, a transfer coding other than "chunked", a
 * Content-Length that is not plain digits, or a body declared on a method
 * for which evhttp reads none. */
const char *host_request_refusal(const struct request_parts *p);

/* Pushes the request table {method, path, query, query_error?, headers,
 * body?, id, client_addr?, remote_addr?} on L (stack +1). Header names are lower-cased
 * and repeated headers joined with ", "; query values keep every byte
 * (a %00 stays a NUL for the scripts to refuse); a query that does not
 * parse sets query_error. *log_target receives the path and the query with
 * secret-looking parameters redacted (malloc'd; the caller frees it; NULL
 * when out of memory). */
void host_request_push_table(lua_State *L, const struct request_parts *p, char **log_target);

#endif
