/* log.c — host.log, the scripts' side of the log writer (base/log.c): a
 * line per call, with the request id of the task that logs and the fields
 * a script passes, secret-looking ones redacted; and the print every
 * script generation gets instead of Lua's. Holds no state. */
#include "bind/log.h"

#include <lauxlib.h>

#include "base/log.h"
#include "lua/task.h"

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
