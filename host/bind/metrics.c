/* metrics.c — host.metrics (metrics.h). The server's numbers and how to
 * render them are server/metrics.c's; this file holds the renderer the
 * master handed over, inherited by every worker. */
#include "bind/metrics.h"

#include <string.h>

#include <event2/buffer.h>
#include <lauxlib.h>

#include "lua/task.h"

static struct {
    host_metrics_render_fn render;  /* NULL outside a server */
    int elsewhere;                  /* METRICS_PORT serves the numbers */
} renderer;

void host_metrics_set_renderer(host_metrics_render_fn render, int elsewhere)
{
    renderer.render = render;
    renderer.elsewhere = elsewhere;
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
