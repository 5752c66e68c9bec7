/* metrics.c — host.metrics (metrics.h). The server's numbers and how to
 * render them are server/metrics.c's; this file holds the renderer and the
 * recorder of scripts' numbers the master handed over, inherited by every
 * worker, and checks what scripts pass them. */
#include "bind/metrics.h"

#include <string.h>

#include <event2/buffer.h>
#include <lauxlib.h>

#include "lua/task.h"

static struct {
    host_metrics_render_fn render;  /* NULL outside a server */
    int elsewhere;                  /* METRICS_PORT serves the numbers */
    host_metrics_record_fn record;  /* NULL outside a server */
} renderer;

void host_metrics_set_renderer(host_metrics_render_fn render, int elsewhere)
{
    renderer.render = render;
    renderer.elsewhere = elsewhere;
}

void host_metrics_set_recorder(host_metrics_record_fn record)
{
    renderer.record = record;
}

void host_metrics_label(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--; /* not inside a UTF-8 sequence */
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* metrics.route(pattern): labels the current request's metrics with the
 * route pattern it matched. Raises outside a request. */
static int l_metrics_route(lua_State *L)
{
    const char *pattern = luaL_checkstring(L, 1);
    struct host_task *task = host_task_check(L);
    host_metrics_label(task->route, sizeof task->route, pattern);
    return 0;
}

/* A key a script may report: moonkeep_<name>, then optionally labels
 * {k="v",...} with plain label values (letters, digits, _ . -). Counter
 * names end in _total. */
static int valid_key(const char *key, size_t len, int is_counter)
{
    size_t n = strcspn(key, "{");
    if (len >= HOST_METRICS_KEY_MAX || n <= 9 || strncmp(key, "moonkeep_", 9) != 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9') || key[i] == '_')) return 0;
    if (is_counter && strncmp(key + n - 6, "_total", 6) != 0) return 0; /* n > 9 here */
    if (n == len) return 1;
    if (key[len - 1] != '}') return 0;
    int in_value = 0;
    for (size_t i = n + 1; i < len - 1; i++) {
        char c = key[i];
        if (c == '"') in_value = !in_value;
        else if (in_value ? !(c == '_' || c == '.' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9'))
                          : !(c == '_' || c == '=' || c == ',' || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return !in_value;
}

/* count and gauge: checks the key, hands the number to the server. Raises
 * on a bad key or a kind that changed; does nothing outside a server or
 * when the worker's table of script values is full. */
static int record(lua_State *L, int is_counter)
{
    size_t len;
    const char *key = luaL_checklstring(L, 1, &len);
    double value = luaL_checknumber(L, 2);
    const char *help = luaL_checkstring(L, 3);
    if (!valid_key(key, len, is_counter))
        return luaL_argerror(L, 1, is_counter ? "a name moonkeep_..._total, labels {k=\"v\"} optional"
                                              : "a name moonkeep_..., labels {k=\"v\"} optional");
    if (renderer.record && renderer.record(key, is_counter, value, help) == -2)
        return luaL_argerror(L, 1, "already reported as the other kind");
    return 0;
}

/* metrics.count(key, n, help): adds n to a counter of this worker. */
static int l_metrics_count(lua_State *L)
{
    return record(L, 1);
}

/* metrics.gauge(key, value, help): the deployment's current value, as this
 * worker read it now; /metrics shows the value set last by any worker. */
static int l_metrics_gauge(lua_State *L)
{
    return record(L, 0);
}

/* metrics.render() -> text | nil, err: the exposition of the whole server;
 * nil, "served on METRICS_PORT" when a separate port serves it, nil, "not
 * in a server" outside one. */
static int l_metrics_render(lua_State *L)
{
    if (renderer.elsewhere) {
        lua_pushnil(L);
        lua_pushliteral(L, "served on METRICS_PORT");
        return 2;
    }
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL) return luaL_error(L, "out of memory");
    if (renderer.render == NULL || renderer.render(buf) != 0) {
        evbuffer_free(buf);
        lua_pushnil(L);
        lua_pushliteral(L, "not in a server");
        return 2;
    }
    lua_pushlstring(L, (const char *)evbuffer_pullup(buf, -1), evbuffer_get_length(buf));
    evbuffer_free(buf);
    return 1;
}

static const luaL_Reg metrics_functions[] = {
    {"route", l_metrics_route},
    {"count", l_metrics_count},
    {"gauge", l_metrics_gauge},
    {"render", l_metrics_render},
    {NULL, NULL},
};

int host_metrics_open(lua_State *L)
{
    luaL_newlib(L, metrics_functions);
    lua_pushliteral(L, HOST_METRICS_CONTENT_TYPE);
    lua_setfield(L, -2, "CONTENT_TYPE");
    return 1;
}
