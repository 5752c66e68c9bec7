/* http_errors.c — JSON bodies for the errors evhttp answers by itself.
 *
 * evhttp replies on its own to what never reaches a script: a body over
 * MAX_BODY_BYTES (413), headers over MAX_HEADER_BYTES, a malformed request
 * line, a method it does not parse. It does so through evhttp_send_error,
 * which writes an HTML page. libevent calls that function through its PLT,
 * so this definition, exported by the executable (ENABLE_EXPORTS), takes its
 * place inside libevent as well and every such reply gets the API.md error
 * body, an X-Request-Id and an access line. Owns nothing beyond the reply
 * buffer it sends. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "json.h"
#include "log.h"

static const char *error_code(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 413: return "payload_too_large";
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
    case 413: return "the request body or headers are larger than this server accepts";
    case 503: return "the service is temporarily unavailable";
    default: return status >= 500 ? "internal server error" : "the request could not be served";
    }
}

void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
    struct evbuffer *body = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    unsigned char raw[16];
    char request_id[33];
    (void)reason;

    if (body == NULL) {
        evhttp_connection_free(evhttp_request_get_connection(req));
        return;
    }
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(request_id, sizeof request_id, raw, sizeof raw);
    evbuffer_add_printf(body, "{\"error\":{\"code\":\"%s\",\"message\":", error_code(error));
    host_json_string(body, error_message(error), strlen(error_message(error)));
    evbuffer_add(body, "}}", 2);

    /* A request whose first line did not parse has no version yet. */
    if (req->major == 0 && req->minor == 0) {
        req->major = 1;
        req->minor = 1;
    }
    evhttp_clear_headers(out);
    evhttp_add_header(out, "Content-Type", "application/json; charset=utf-8");
    evhttp_add_header(out, "Connection", "close");
    evhttp_add_header(out, "X-Request-Id", request_id);
    evhttp_send_reply(req, error, NULL, body);
    evbuffer_free(body);

    struct log_line *line = host_log_begin(LOG_INFO, "request refused by the HTTP layer");
    host_log_str(line, "request_id", request_id);
    host_log_int(line, "status", error);
    host_log_end(line);
}
