/* log.c — the JSON line writer behind every log line of the process, and
 * the host.log binding. Owns one reusable evbuffer for the line being built,
 * and the list of sinks that see every line written.
 *
 * Script fields whose names look secret (password, token, secret,
 * authorization, cookie), at any depth, are replaced by "[redacted]" here,
 * so a careless log call in a script cannot leak them. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <lauxlib.h>

#include "json.h"
#include "task.h"

struct log_line {
    struct evbuffer *buf;
    enum log_level level;
};

struct log_sink {
    host_log_sink_fn fn;
    void *arg;
};

static enum log_level threshold = LOG_INFO;
static const char *process_role = "cli";
static long process_pid;
static struct log_line current;
static const char *const level_names[] = {"debug", "info", "warn", "error"};
static struct log_sink sinks[HOST_LOG_SINKS_MAX];
static int nsinks;

int host_log_parse_level(const char *name, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (name && !strcasecmp(name, level_names[i])) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *host_log_level_name(enum log_level level)
{
    return level_names[level];
}

void host_log_init(const char *level, const char *role)
{
    threshold = LOG_INFO;
    host_log_parse_level(level, &threshold);
    process_role = role;
    process_pid = (long)getpid(); /* called again after fork, in the worker */
}

int host_log_add_sink(host_log_sink_fn fn, void *arg)
{
    if (nsinks == HOST_LOG_SINKS_MAX) return -1;
    sinks[nsinks].fn = fn;
    sinks[nsinks].arg = arg;
    nsinks++;
    return 0;
}

static void append_time(struct evbuffer *out)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03ldZ", ts.tv_nsec / 1000000);
    host_json_string(out, buf, strlen(buf));
}

struct log_line *host_log_begin(enum log_level level, const char *msg)
{
    if (level < threshold) return NULL;
    if (current.buf == NULL && (current.buf = evbuffer_new()) == NULL) return NULL;
    evbuffer_drain(current.buf, evbuffer_get_length(current.buf));
    current.level = level;
    evbuffer_add(current.buf, "{\"time\":", 8);
    append_time(current.buf);
    evbuffer_add_printf(current.buf, ",\"level\":\"%s\",\"msg\":", level_names[level]);
    host_json_string(current.buf, msg, strlen(msg));
    evbuffer_add_printf(current.buf, ",\"pid\":%ld,\"role\":\"%s\"", process_pid, process_role);
    return &current;
}

static void append_key(struct log_line *line, const char *key)
{
    evbuffer_add(line->buf, ",", 1);
    host_json_string(line->buf, key, strlen(key));
    evbuffer_add(line->buf, ":", 1);
}

void host_log_strn(struct log_line *line, const char *key, const char *value, size_t len)
{
    if (line == NULL) return;
    append_key(line, key);
    if (value) host_json_string(line->buf, value, len);
    else evbuffer_add(line->buf, "null", 4);
}

void host_log_str(struct log_line *line, const char *key, const char *value)
{
    host_log_strn(line, key, value, value ? strlen(value) : 0);
}

void host_log_int(struct log_line *line, const char *key, int64_t value)
{
    if (line == NULL) return;
    append_key(line, key);
    evbuffer_add_printf(line->buf, "%lld", (long long)value);
}

void host_log_num(struct log_line *line, const char *key, double value)
{
    if (line == NULL) return;
    append_key(line, key);
    evbuffer_add_printf(line->buf, "%.3f", value);
}

void host_log_lua(struct log_line *line, const char *key, lua_State *L, int idx)
{
    const char *err = NULL;
    if (line == NULL) return;
    append_key(line, key);
    size_t before = evbuffer_get_length(line->buf);
    if (host_json_encode_redacting(L, idx, line->buf, host_log_is_secret_key, &err) != 0) {
        /* drop the partial value, keep the line valid */
        struct evbuffer *tail = evbuffer_new();
        if (tail) {
            evbuffer_remove_buffer(line->buf, tail, before);
            evbuffer_free(line->buf);
            line->buf = tail;
        }
        host_json_string(line->buf, err, strlen(err));
    }
}

void host_log_end(struct log_line *line)
{
    if (line == NULL) return;
    evbuffer_add(line->buf, "}\n", 2);
    size_t total = evbuffer_get_length(line->buf), len = total;
    const char *text = (const char *)evbuffer_pullup(line->buf, -1), *p = text;
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* stdout gone: nothing better to do */
        p += n;
        len -= (size_t)n;
    }
    for (int i = 0; i < nsinks; i++) sinks[i].fn(line->level, text, total, sinks[i].arg);
    evbuffer_drain(line->buf, evbuffer_get_length(line->buf));
}

void host_log(enum log_level level, const char *msg)
{
    host_log_end(host_log_begin(level, msg));
}

/* ---- host.log ---------------------------------------------------------- */

int host_log_is_secret_key(const char *key)
{
    static const char *const words[] = {"password", "token", "secret", "authorization", "cookie", NULL};
    for (int i = 0; words[i]; i++)
        if (strcasestr(key, words[i])) return 1;
    return 0;
}

/* log.<level>(msg, fields?): stack balanced; raises on misuse only. */
static int log_at(lua_State *L, enum log_level level)
{
    const char *msg = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    struct log_line *line = host_log_begin(level, msg);
    if (line == NULL) return 0;
    const char *request_id = host_task_request_id(L);
    if (request_id) host_log_str(line, "request_id", request_id);
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            /* stack: msg fields key value */
            if (lua_type(L, -2) == LUA_TSTRING) {
                const char *key = lua_tostring(L, -2);
                if (host_log_is_secret_key(key)) host_log_str(line, key, "[redacted]");
                else host_log_lua(line, key, L, -1);
            }
            lua_pop(L, 1);
        }
    }
    host_log_end(line);
    return 0;
}

static int l_log_debug(lua_State *L) { return log_at(L, LOG_DEBUG); }
static int l_log_info(lua_State *L) { return log_at(L, LOG_INFO); }
static int l_log_warn(lua_State *L) { return log_at(L, LOG_WARN); }
static int l_log_error(lua_State *L) { return log_at(L, LOG_ERROR); }

/* print(...) in a script generation: Lua's print would write plain text
 * into the JSON stream on stdout, so it becomes an info line instead:
 * {"msg": <the arguments, tostring'd and tab-separated>, "source": "print"}.
 * Stack: balanced. */
int host_log_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    lua_getglobal(L, "tostring");
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, n + 1); /* tostring */
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        if (!lua_isstring(L, -1)) return luaL_error(L, "'tostring' must return a string to 'print'");
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    struct log_line *line = host_log_begin(LOG_INFO, lua_tostring(L, -1));
    const char *request_id = host_task_request_id(L);
    if (request_id) host_log_str(line, "request_id", request_id);
    host_log_str(line, "source", "print");
    host_log_end(line);
    lua_settop(L, n);
    return 0;
}

static const luaL_Reg log_functions[] = {
    {"debug", l_log_debug},
    {"info", l_log_info},
    {"warn", l_log_warn},
    {"error", l_log_error},
    {NULL, NULL},
};

int host_log_open(lua_State *L)
{
    luaL_newlib(L, log_functions);
    return 1;
}
