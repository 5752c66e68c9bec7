/* http_errors.h — the host's own error replies (see http_errors.c). */
#ifndef MOONKEEP_HTTP_ERRORS_H
#define MOONKEEP_HTTP_ERRORS_H

#include <stddef.h>

/* Tells the error writer MAX_HEADER_BYTES, so that evhttp's 400 for an
 * oversized head is answered as 431. */
void host_http_errors_init(size_t header_limit);

/* Formats a complete HTTP/1.1 reply (status line, headers with
 * "Connection: close", the API.md JSON error body) into out. Returns its
 * length, or 0 when it does not fit in cap. */
size_t host_http_error_raw(int status, const char *request_id, char *out, size_t cap);

#endif
