/* http_errors.c — the host's error replies, in one place: the JSON error
 * body, the reason phrases and the request ids of the errors the host
 * answers before (or instead of) any script: evhttp's own replies (interpose_evhttp.c), the
 * read deadline (client_conn.c, 408, written as raw bytes), and a request the
 * worker cannot start (request.c); and the request ids of every request
 * without a usable X-Request-Id. Holds no state but the request-id prefix
 * and counter of its process. */
#include "server/http_errors.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "base/json.h"

/* The host's own errors: the status, the API's code for it and the
 * message. scripts/lib/http.lua knows the same codes (STATUS, MESSAGES)
 * with the same status and message: spec/unit/http_errors_spec.lua reads
 * this table and holds the two equal. */
static const struct host_error {
    int status;
    const char *code;
    const char *message;
} errors[] = {
    {400, "bad_request", "the request is not valid"},
    {404, "not_found", "no such resource"},
    {405, "method_not_allowed", "method not allowed on this resource"},
    {408, "request_timeout", "the request was not received in time"},
    {413, "payload_too_large", "the request body is larger than this server accepts"},
    {431, "headers_too_large", "the request line or headers are larger than this server accepts"},
    {500, "internal", "internal server error"},
    {503, "unavailable", "the service is temporarily unavailable"},
};

/* The reason phrases evhttp 2.1 lacks (it would say "Client Error"). */
static const struct {
    int status;
    const char *phrase;
} reasons[] = {
    {408, "Request Timeout"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
};

/* The entry for `status`: its own, else 500's for a 5xx and 400's for any
 * other status. */
static const struct host_error *error_for(int status)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].status == status) return &errors[i];
    return error_for(status >= 500 ? 500 : 400);
}

const char *host_http_reason(int status)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status) return reasons[i].phrase;
    return NULL; /* evhttp's own */
}

void host_http_error_body(struct evbuffer *out, int status, const char *code, const char *message)
{
    const struct host_error *e = error_for(status);
    if (message == NULL) message = e->message;
    evbuffer_add_printf(out, "{\"error\":{\"code\":\"%s\",\"message\":", code ? code : e->code);
    host_json_string(out, message, strlen(message));
    evbuffer_add(out, "}}", 2);
}

/* A random prefix drawn once per worker and a counter: unique across
 * workers and restarts, without a getrandom(2) per request. */
void host_http_request_id(char out[HOST_REQUEST_ID_LEN])
{
    static unsigned char prefix[8];
    static uint64_t counter; /* 0 in every new worker: the master serves none */
    unsigned char raw[16];
    if (counter++ == 0) randombytes_buf(prefix, sizeof prefix);
    memcpy(raw, prefix, sizeof prefix);
    for (int i = 0; i < 8; i++) raw[8 + i] = (unsigned char)(counter >> (56 - 8 * i));
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
