/* info.c — host.info: what the scripts may know about the host that runs
 * them (version, commit, worker pid, generation id). Holds no state; the
 * generation id is the module loader's upvalue (0 outside a server). */
#include "info.h"

#include <unistd.h>

#include <lauxlib.h>

int host_info_open(lua_State *L)
{
    lua_createtable(L, 0, 4);
    lua_pushliteral(L, MOONKEEP_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, MOONKEEP_COMMIT);
    lua_setfield(L, -2, "commit");
    lua_pushinteger(L, (lua_Integer)getpid());
    lua_setfield(L, -2, "pid");
    lua_pushvalue(L, lua_upvalueindex(1));
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushinteger(L, 0);
    }
    lua_setfield(L, -2, "generation");
    return 1;
}
