/* log.c — host.log, the scripts' side of the log writer (base/log.c): a
 * line per call, with the request id of the task that logs and the fields
 * a script passes, secret-looking ones redacted. Holds no state. */
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
