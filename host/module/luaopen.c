/* luaopen.c — the host's bindings as a Lua C module (build/lua/host.so), so
 * that specs under plain luajit `require "host.json"` and exercise the real
 * code. Each line of HOST_BINDINGS becomes luaopen_host_<id>, which
 * LuaJIT's all-in-one loader finds in host.so. Modules that need a running
 * request (host.db, host.mail) load, and raise when used outside one. */
#include <sodium.h>
#include <lua.h>

#include "bind/bindings.h"

#define HOST_LUAOPEN(id, open)                   \
    int luaopen_host_##id(lua_State *L);         \
    int luaopen_host_##id(lua_State *L)          \
    {                                            \
        if (sodium_init() < 0) return 0;         \
        return open(L);                          \
    }
HOST_BINDINGS(HOST_LUAOPEN)
#undef HOST_LUAOPEN
