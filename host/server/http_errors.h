/* http_errors.h — the host's own error replies (see http_errors.c). */
#ifndef MOONKEEP_HTTP_ERRORS_H
#define MOONKEEP_HTTP_ERRORS_H

#include <stddef.h>

/* Formats a complete HTTP/1.1 reply (status line, headers with
 * "Connection: close", the API.md JSON error body) into out. Returns its
 * length, or 0 when it does not fit in cap. */
size_t host_http_error_raw(int status, const char *request_id, char *out, size_t cap);

#endif
