/* http_errors.c — JSON bodies for the errors the host answers before (or
 * instead of) any script.
 *
 * evhttp replies on its own to what never reaches a script: a body over
 * MAX_BODY_BYTES (413), headers over MAX_HEADER_BYTES, a malformed request
 * line, a method it does not parse. It does so through evhttp_send_error,
 * which writes an HTML page. libevent calls that function through its PLT,
 * so this definition, exported by the executable (ENABLE_EXPORTS), takes its
 * place inside libevent as well and every such reply gets the API.md error
 * body, an X-Request-Id and an access line. Oversized heads come to it as a
 * 400 and leave as 431 (conn.c counted the bytes).
 *
 * host_http_error_raw formats the same reply as bytes, for the one place
 * that answers outside evhttp (conn.c's read deadline, 408).
 * Owns nothing beyond the reply buffer it sends. */
#include "server/http_errors.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "server/conn.h"
#include "base/json.h"
#include "base/log.h"
#include "server/metrics.h"

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

static const char *reason_phrase(int status)
{
    switch (status) {
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    default: return NULL; /* evhttp's own */
    }
}

/* Appends {"error":{"code":..,"message":..}} for `status`. */
static void add_body(struct evbuffer *body, int status)
{
    const char *message = error_message(status);
    evbuffer_add_printf(body, "{\"error\":{\"code\":\"%s\",\"message\":", error_code(status));
    host_json_string(body, message, strlen(message));
    evbuffer_add(body, "}}", 2);
}

static void new_request_id(char out[33])
{
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, 33, raw, sizeof raw);
}

size_t host_http_error_raw(int status, const char *request_id, char *out, size_t cap)
{
    struct evbuffer *body = evbuffer_new();
    size_t n = 0;
    if (body == NULL || cap == 0) goto done;
    add_body(body, status);
    size_t len = evbuffer_get_length(body);
    const char *reason = reason_phrase(status);
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

void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
    struct evbuffer *body = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    char request_id[33];
    (void)reason;

    if (body == NULL) {
        evhttp_connection_free(evhttp_request_get_connection(req));
        return;
    }
    /* no read deadline while the reply goes out; conn.c saw the raw head */
    unsigned head = host_conn_request_started(req);
    if (error == 400 && (head & HOST_CONN_HEAD_LONG)) error = 431;
    new_request_id(request_id);
    add_body(body, error);

    /* A request whose first line did not parse has no version yet. */
    if (req->major == 0 && req->minor == 0) {
        req->major = 1;
        req->minor = 1;
    }
    evhttp_clear_headers(out);
    evhttp_add_header(out, "Content-Type", "application/json; charset=utf-8");
    evhttp_add_header(out, "Connection", "close");
    evhttp_add_header(out, "X-Request-Id", request_id);
    evhttp_send_reply(req, error, reason_phrase(error), body);
    evbuffer_free(body);

    host_metrics_request_refused(NULL, error);
    struct log_line *line = host_log_begin(LOG_INFO, "request refused by the HTTP layer");
    host_log_str(line, "request_id", request_id);
    host_log_int(line, "status", error);
    host_log_end(line);
}
