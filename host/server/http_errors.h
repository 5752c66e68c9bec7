/* http_errors.h — the host's own error replies (see http_errors.c): the
 * API's JSON error body, the reason phrases evhttp lacks, request ids. */
#ifndef MOONKEEP_HTTP_ERRORS_H
#define MOONKEEP_HTTP_ERRORS_H

#include <stddef.h>

struct evbuffer;

/* Room for a request id the host makes (32 hex digits and a NUL). */
#define HOST_REQUEST_ID_LEN 33

/* A new request id into out: 32 hex digits, unique across workers and
 * restarts. Request ids label log lines; they are not secrets. */
void host_http_request_id(char out[HOST_REQUEST_ID_LEN]);

/* The reason phrase for `status` where evhttp 2.1 has none (it would say
 * "Client Error"), else NULL: evhttp's own. */
const char *host_http_reason(int status);

/* Appends {"error":{"code":..,"message":..}} to out: `code` and `message`,
 * or, when they are NULL, the host's own for `status`. */
void host_http_error_body(struct evbuffer *out, int status, const char *code, const char *message);

/* Formats a complete HTTP/1.1 reply (status line, headers with
 * "Connection: close", the JSON error body) into out. Returns its length,
 * or 0 when it does not fit in cap. */
size_t host_http_error_raw(int status, const char *request_id, char *out, size_t cap);

#endif
