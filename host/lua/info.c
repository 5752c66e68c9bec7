/* info.c — host.info: what the scripts may know about the host that runs
 * them (version, commit, worker pid, generation id and digest, the script
 * status the master records). The generation's id and digest are the
 * module loader's upvalues (0 and "" outside a server); the status file's
 * path is the one state, set by the master (server/snapshot.c) before it
 * forks. */
#include "lua/info.h"

#include <stdio.h>
#include <unistd.h>

#include <lauxlib.h>


static const char *status_path; /* NULL outside a server */

void host_info_set_scripts_status(const char *path)
{
    status_path = path;
}

/* info.scripts_status() -> JSON text written by the master (the active
 * snapshot and the last refused change), or nil when there is none. */
static int l_info_scripts_status(lua_State *L)
{
    char buf[8192];
    FILE *f = status_path && *status_path ? fopen(status_path, "r") : NULL;
    if (f == NULL) {
        lua_pushnil(L);
        return 1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    lua_pushlstring(L, buf, n);
    return 1;
}

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
    lua_pushvalue(L, lua_upvalueindex(2));
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "");
    }
    lua_setfield(L, -2, "digest");
    lua_pushcfunction(L, l_info_scripts_status);
    lua_setfield(L, -2, "scripts_status");
    return 1;
}
