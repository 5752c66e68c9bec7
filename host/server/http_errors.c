/* http_errors.c — JSON bodies for the errors the host answers before (or
 * instead of) any script: evhttp's own replies (interpose_evhttp.c), the
 * read deadline (conn.c, 408, written as raw bytes), and a request the
 * worker cannot start (request.c). Holds no state. */
#include "server/http_errors.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "base/json.h"

static const char *error_code(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 413: return "payload_too_large";
    case 431: return "headers_too_large";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal" : "bad_request";
    }
}

static const char *error_message(int status)
{
    switch (status) {
    case 400: return "the request could not be parsed";
    case 404: return "no such resource";
    case 405: return "method not allowed on this resource";
    case 408: return "the request was not received in time";
    case 413: return "the request body is larger than this server accepts";
    case 431: return "the request line or headers are larger than this server accepts";
    case 503: return "the service is temporarily unavailable";
    default: return status >= 500 ? "internal server error" : "the request could not be served";
    }
}

const char *host_http_reason(int status)
{
    switch (status) {
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    default: return NULL; /* evhttp's own */
    }
}

void host_http_error_body(struct evbuffer *out, int status, const char *code, const char *message)
{
    if (message == NULL) message = error_message(status);
    evbuffer_add_printf(out, "{\"error\":{\"code\":\"%s\",\"message\":", code ? code : error_code(status));
    host_json_string(out, message, strlen(message));
    evbuffer_add(out, "}}", 2);
}

void host_http_request_id(char out[HOST_REQUEST_ID_LEN])
{
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, HOST_REQUEST_ID_LEN, raw, sizeof raw);
}

size_t host_http_error_raw(int status, const char *request_id, char *out, size_t cap)
{
    struct evbuffer *body = evbuffer_new();
    size_t n = 0;
    if (body == NULL || cap == 0) goto done;
    host_http_error_body(body, status, NULL, NULL);
    size_t len = evbuffer_get_length(body);
    const char *reason = host_http_reason(status);
    int head = snprintf(out, cap,
        "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
        "Content-Length: %zu\r\nConnection: close\r\nX-Request-Id: %s\r\n\r\n",
        status, reason ? reason : "Error", len, request_id);
    if (head < 0 || (size_t)head + len > cap) goto done;
    evbuffer_remove(body, out + head, len);
    n = (size_t)head + len;
done:
    if (body) evbuffer_free(body);
    return n;
}
