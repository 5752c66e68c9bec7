/* interpose_evhttp.c — evhttp's own error replies, with the API's JSON body.
 *
 * evhttp replies on its own to what never reaches a script: a body over
 * MAX_BODY_BYTES (413), headers over MAX_HEADER_BYTES, a malformed request
 * line, a method it does not parse. It does so through evhttp_send_error,
 * which writes an HTML page. libevent calls that function through its PLT,
 * so this definition, exported by the executable (ENABLE_EXPORTS), takes its
 * place inside libevent as well and every such reply gets the error body
 * (http_errors.c), an X-Request-Id and a log line. Oversized heads come to
 * it as a 400 and leave as 431 (conn.c counted the bytes). Linked into the
 * server only, never into the spec module host.so. Owns nothing beyond the
 * reply buffer it sends. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "base/log.h"
#include "server/conn.h"
#include "server/http_errors.h"
#include "server/metrics.h"

void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
    struct evbuffer *body = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    char request_id[HOST_REQUEST_ID_LEN];
    (void)reason;

    if (body == NULL) {
        evhttp_connection_free(evhttp_request_get_connection(req));
        return;
    }
    /* no read deadline while the reply goes out; conn.c saw the raw head */
    unsigned head = host_conn_request_started(req);
    if (error == 400 && (head & HOST_CONN_HEAD_LONG)) error = 431;
    host_http_request_id(request_id);
    host_http_error_body(body, error, NULL, NULL);

    /* A request whose first line did not parse has no version yet. */
    if (req->major == 0 && req->minor == 0) {
        req->major = 1;
        req->minor = 1;
    }
    evhttp_clear_headers(out);
    evhttp_add_header(out, "Content-Type", "application/json; charset=utf-8");
    evhttp_add_header(out, "Connection", "close");
    evhttp_add_header(out, "X-Request-Id", request_id);
    evhttp_send_reply(req, error, host_http_reason(error), body);
    evbuffer_free(body);

    host_metrics_request_refused(NULL, error);
    struct log_line *line = host_log_begin(LOG_INFO, "request refused by the HTTP layer");
    host_log_str(line, "request_id", request_id);
    host_log_int(line, "status", error);
    host_log_end(line);
}
