/* vm.c — the VM the harnesses run scripts and bindings in. Owns nothing
 * past fuzz_vm's return: the state is the caller's. */
#include "fuzz.h"

#include <lauxlib.h>
#include <lualib.h>
#include <sodium.h>

#include "lua/modules.h"

#ifndef MOONKEEP_ROOT
#define MOONKEEP_ROOT "."
#endif

static int panic(lua_State *L)
{
    fprintf(stderr, "lua panic: %s\n", lua_tostring(L, -1));
    abort();
}

/* LuaJIT's own allocator (mmap'd arenas). A malloc-backed lua_newstate
 * would let AddressSanitizer see the Lua heap, but GC64 keeps type tags in
 * the upper bits of its references, so LeakSanitizer would take every Lua
 * object for a leak. What C code mallocs and only Lua objects point to
 * (lua-cjson's buffers) is listed in fuzz/lsan.supp instead. */
lua_State *fuzz_vm(void)
{
    lua_State *L = luaL_newstate();
    if (L) lua_atpanic(L, panic);
    if (L == NULL || sodium_init() < 0) abort();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushliteral(L, MOONKEEP_ROOT "/scripts/?.lua;" MOONKEEP_ROOT "/scripts/?/init.lua");
    lua_setfield(L, -2, "path");
    lua_getfield(L, -1, "preload");
    for (const struct host_module *m = host_modules; m->name; m++) {
        lua_pushcfunction(L, m->open);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 2);
    return L;
}
