/* request.c — from an evhttp request to a script task and back.
 *
 * Each request becomes a struct http_request that owns: its task (the
 * coroutine running app.handle), a watcher that notices the client leaving
 * while the task waits, and nothing else: the evhttp_request stays evhttp's
 * and is handed back by evhttp_send_reply (or evhttp_connection_free). The
 * struct is freed in finish_request, the single exit. What the scripts see
 * is built by request_table.c; the head checks that come first are there
 * and in conn.c (raw bytes). */
#include "server/request.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <lauxlib.h>
#include <sodium.h>

#include "base/client_addr.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "lua/task.h"
#include "lua/vm.h"
#include "server/conn.h"
#include "server/metrics.h"
#include "server/request_table.h"
#include "server/worker_state.h"

struct http_request {
    struct host_task task;
    struct evhttp_request *req;
    struct worker *worker;
    struct event *client_gone;  /* set once the task waits: a timer, then the watcher */
    double started;
    char method[8];
    int close;                  /* answer with Connection: close */
    char *log_target;           /* path and redacted query, for the access line */
    char client_addr[HOST_CLIENT_ADDR_LEN]; /* the peer, or whom trusted proxies name */
};

static const char internal_error_body[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"internal server error\"}}";

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "UNKNOWN";
}

/* A random prefix drawn once per worker and a counter: unique across
 * workers and restarts, without a getrandom(2) per request. Request ids
 * label log lines; they are not secrets. */
static void new_request_id(char out[33])
{
    static unsigned char prefix[8];
    static uint64_t counter; /* 0 in every new worker: the master serves none */
    unsigned char raw[16];
    if (counter++ == 0) randombytes_buf(prefix, sizeof prefix);
    memcpy(raw, prefix, sizeof prefix);
    for (int i = 0; i < 8; i++) raw[8 + i] = (unsigned char)(counter >> (56 - 8 * i));
    sodium_bin2hex(out, 33, raw, sizeof raw);
}

/* The methods evhttp reads a body for (evhttp_method_may_have_body). */
/* DELETE too: DELETE /auth/me carries {current_password}. */
static int method_has_body(enum evhttp_cmd_type cmd)
{
    return cmd == EVHTTP_REQ_POST || cmd == EVHTTP_REQ_PUT || cmd == EVHTTP_REQ_PATCH || cmd == EVHTTP_REQ_DELETE;
}

static void request_parts(struct http_request *hr, struct request_parts *p)
{
    struct evhttp_request *req = hr->req;
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (conn) evhttp_connection_get_peer(conn, &addr, &port);
    memset(p, 0, sizeof *p);
    p->method = hr->method;
    p->method_has_body = method_has_body(evhttp_request_get_command(req));
    p->uri = evhttp_request_get_evhttp_uri(req);
    p->headers = evhttp_request_get_input_headers(req);
    p->body_len = evbuffer_get_length(body);
    p->body = p->body_len ? (const char *)evbuffer_pullup(body, -1) : NULL;
    p->request_id = hr->task.request_id;
    p->remote_addr = addr;
    /* the access line and the scripts' budget use it (client_addr.h) */
    p->client_addr = host_client_addr(&hr->worker->cfg->trusted_proxies, addr, p->headers, hr->client_addr);
}

/* ---- replies ------------------------------------------------------------ */

static void access_log(struct http_request *hr, int status)
{
    struct log_line *line = host_log_begin(status >= 500 ? LOG_ERROR : LOG_INFO, "request");
    host_log_str(line, "request_id", hr->task.request_id);
    host_log_str(line, "client", hr->client_addr);
    host_log_str(line, "method", hr->method);
    host_log_str(line, "path", hr->log_target ? hr->log_target : "/");
    host_log_int(line, "status", status);
    host_log_num(line, "duration_ms", (host_now() - hr->started) * 1000.0);
    host_log_end(line);
}

/* The Date header's value (RFC 9110's IMF-fixdate), formatted once a second:
 * evhttp would format it (gmtime and printf) for every reply. */
static const char *http_date(void)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static time_t cached = -1;
    static char text[40];
    time_t now = time(NULL);
    struct tm tm;
    if (now != cached && gmtime_r(&now, &tm) != NULL) {
        snprintf(text, sizeof text, "%s, %02d %s %d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached = now;
    }
    return text;
}

static void add_common_headers(struct http_request *hr)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(hr->req);
    evhttp_add_header(out, "X-Request-Id", hr->task.request_id);
    if (evhttp_find_header(out, "Date") == NULL) evhttp_add_header(out, "Date", http_date());
    if (hr->worker->draining || hr->close) evhttp_add_header(out, "Connection", "close");
}

/* evhttp 2.1 knows no phrase for these and would say "Client Error". */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    default: return NULL; /* evhttp's own */
    }
}

/* The single exit of a request: reply, log, release. `body` may be NULL. */
static void finish_request(struct http_request *hr, int status, struct evbuffer *body)
{
    struct worker *w = hr->worker;
    add_common_headers(hr);
    evhttp_send_reply(hr->req, status, reason_phrase(status), body);
    access_log(hr, status);
    host_metrics_request_end(hr->method, hr->task.route, status, host_now() - hr->started);
    if (hr->client_gone) event_free(hr->client_gone);
    host_task_release(&hr->task);
    free(hr->log_target);
    free(hr);
    w->inflight--;
    w->last_reply = host_now();
}

static void reply_error(struct http_request *hr, int status, const char *code, const char *message)
{
    struct evbuffer *body = evbuffer_new();
    evbuffer_add_printf(body, "{\"error\":{\"code\":\"%s\",\"message\":", code);
    host_json_string(body, message, strlen(message));
    evbuffer_add(body, "}}", 2);
    evhttp_add_header(evhttp_request_get_output_headers(hr->req), "Content-Type", "application/json; charset=utf-8");
    finish_request(hr, status, body);
    evbuffer_free(body);
}

static void reply_internal_error(struct http_request *hr)
{
    struct evbuffer *body = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(hr->req);
    evhttp_clear_headers(out);
    evhttp_add_header(out, "Content-Type", "application/json; charset=utf-8");
    evbuffer_add(body, internal_error_body, sizeof internal_error_body - 1);
    finish_request(hr, 500, body);
    evbuffer_free(body);
}

static int header_value_is_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F) return 0;
    return 1;
}

/* Copies the script's headers table (at idx on co) to the reply. Returns
 * the number of refused entries. */
static int copy_headers(lua_State *co, int idx, struct evkeyvalq *out)
{
    int refused = 0;
    lua_pushnil(co);
    while (lua_next(co, idx)) {
        if (lua_type(co, -2) == LUA_TSTRING &&
            (lua_type(co, -1) == LUA_TSTRING || lua_type(co, -1) == LUA_TNUMBER)) {
            const char *name = lua_tostring(co, -2);
            const char *value = lua_tostring(co, -1); /* converts a number in place: fine, it is the value */
            if (header_value_is_safe(name) && header_value_is_safe(value) && *name)
                evhttp_add_header(out, name, value);
            else
                refused++;
        } else {
            refused++;
        }
        lua_pop(co, 1);
    }
    return refused;
}

static void log_script_failure(struct http_request *hr, const char *msg, const char *detail)
{
    struct log_line *line = host_log_begin(LOG_ERROR, msg);
    host_log_str(line, "request_id", hr->task.request_id);
    host_log_str(line, "path", hr->log_target);
    host_log_str(line, "error", detail);
    host_log_end(line);
}

/* The task finished: turn `status, body, headers` into the reply. */
static void task_done(struct host_task *task, int status, const char *traceback)
{
    struct http_request *hr = task->owner;
    lua_State *co = task->co;
    if (status != 0) {
        log_script_failure(hr, "script error", traceback);
        reply_internal_error(hr);
        return;
    }
    int code = (int)lua_tointeger(co, 1);
    if (lua_type(co, 1) != LUA_TNUMBER || code < 100 || code > 599) {
        log_script_failure(hr, "script returned no valid status", luaL_typename(co, 1));
        reply_internal_error(hr);
        return;
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(hr->req);
    struct evbuffer *body = evbuffer_new();
    const char *err = NULL;
    if (lua_istable(co, 3) && copy_headers(co, 3, out) > 0)
        log_script_failure(hr, "script returned unsafe headers", "dropped");
    switch (lua_type(co, 2)) {
    case LUA_TNIL:
    case LUA_TNONE:
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(co, 2, &len);
        evbuffer_add(body, s, len);
        if (!evhttp_find_header(out, "Content-Type"))
            evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
        break;
    }
    default:
        if (host_json_encode(co, 2, body, &err) != 0) {
            log_script_failure(hr, "response body is not encodable", err);
            evbuffer_free(body);
            reply_internal_error(hr);
            return;
        }
        if (!evhttp_find_header(out, "Content-Type"))
            evhttp_add_header(out, "Content-Type", "application/json; charset=utf-8");
    }
    if (code == 204 || code == 304) evbuffer_drain(body, evbuffer_get_length(body));
    finish_request(hr, code, body);
    evbuffer_free(body);
}

/* The client closed the connection while the task waited: cancel the work
 * and drop the connection (evhttp frees the request with it). */
static void client_gone_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_request *hr = arg;
    struct worker *w = hr->worker;
    struct evhttp_connection *conn = evhttp_request_get_connection(hr->req);
    (void)fd;
    (void)what;
    host_task_abort(&hr->task);
    struct log_line *line = host_log_begin(LOG_INFO, "client went away; work cancelled");
    host_log_str(line, "request_id", hr->task.request_id);
    host_log_str(line, "path", hr->log_target);
    host_log_end(line);
    access_log(hr, 499);
    host_metrics_request_end(hr->method, hr->task.route, 499, host_now() - hr->started);
    event_free(hr->client_gone);
    host_task_release(&hr->task);
    free(hr->log_target);
    free(hr);
    if (conn) evhttp_connection_free(conn);
    w->inflight--;
    w->last_reply = host_now();
}

/* The task has waited client_watch_delay (below): watch the connection for
 * the client leaving (the same event, now on the socket). */
static void watch_client_cb(evutil_socket_t fd_unused, short what, void *arg)
{
    struct http_request *hr = arg;
    struct evhttp_connection *conn = evhttp_request_get_connection(hr->req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    (void)fd_unused;
    (void)what;
    if (fd < 0) return;
    if (event_assign(hr->client_gone, hr->worker->base, fd, EV_CLOSED, client_gone_cb, hr) == 0)
        event_add(hr->client_gone, NULL);
}

/* Most waits (a query, a hash) end within milliseconds; watching the
 * socket costs two epoll_ctl calls, so it starts only once the task has
 * waited this long. A client that left earlier is noticed then. */
static const struct timeval client_watch_delay = {0, 50000};

static void watch_client(struct http_request *hr)
{
    hr->client_gone = evtimer_new(hr->worker->base, watch_client_cb, hr);
    if (hr->client_gone) evtimer_add(hr->client_gone, &client_watch_delay);
}

void host_request_cb(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;
    struct request_parts parts;
    unsigned head_flags = host_conn_request_started(req);
    struct http_request *hr = calloc(1, sizeof *hr);
    if (hr == NULL) {
        evhttp_send_error(req, 503, NULL);
        return;
    }
    w->inflight++;
    host_metrics_request_begin();
    hr->req = req;
    hr->worker = w;
    hr->started = host_now();
    snprintf(hr->method, sizeof hr->method, "%s", method_name(evhttp_request_get_command(req)));

    struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
    const char *given_id = evhttp_find_header(headers, "X-Request-Id");
    if (given_id && host_request_id_is_sane(given_id))
        snprintf(hr->task.request_id, sizeof hr->task.request_id, "%s", given_id);
    else
        new_request_id(hr->task.request_id);

    /* A head refused here says nothing trustworthy about where the next
     * request starts: the connection closes with the answer. */
    request_parts(hr, &parts);
    const char *refusal = (head_flags & HOST_CONN_HEAD_BAD)
        ? "the request head contains a NUL byte, a bare CR or LF, or a folded header line"
        : host_request_refusal(&parts);
    if (refusal) {
        hr->close = 1;
        hr->log_target = strdup("(refused before parsing)");
        reply_error(hr, 400, "bad_request", refusal);
        return;
    }
    if (host_task_start(&hr->task, w->current, w->current->handle_ref, task_done, hr) != 0) {
        reply_error(hr, 503, "unavailable", "out of memory");
        return;
    }
    lua_State *co = host_task_thread(&hr->task);
    host_request_push_table(co, &parts, &hr->log_target);
    /* When the task finished, task_done has freed hr already; when it waits
     * in a binding, hr lives on and the client is watched until the end. */
    if (host_task_resume(&hr->task, 1)) watch_client(hr);
}
