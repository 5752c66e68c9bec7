/* json_fuzz.c — the JSON body path: scripts/lib/http.lua's read_json
 * (lua-cjson with the service's settings, the UTF-8 check, the duplicate-key
 * check) in a LuaJIT VM, then host/base/json.c's encoder on what it decoded.
 *
 * Checks: read_json never raises (in a worker that would be a 500); it
 * returns a table, or nil and a 400 invalid_json/not-an-object error; what
 * it returns encodes (or fails only for the reasons the encoder documents:
 * nesting past 64, NaN or infinity), and the encoding decodes back to an
 * equal value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <lauxlib.h>

#include "fuzz.h"
#include "base/json.h"

static lua_State *L;
static int read_json_ref, equal_ref, decode_ref;

/* deep equality of decoded JSON values; cjson.null is one light userdata */
static const char equal_chunk[] =
    "local function eq(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) ~= 'table' then return a == b or (a ~= a and b ~= b) end\n"
    "  for k, v in pairs(a) do if not eq(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "return eq\n";

static void setup(void)
{
    L = fuzz_vm();
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lib.http");
    FUZZ_CHECK(lua_pcall(L, 1, 1, 0) == 0, "lib.http: %s", lua_tostring(L, -1));
    lua_getfield(L, -1, "read_json");
    read_json_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    FUZZ_CHECK(luaL_loadbuffer(L, equal_chunk, sizeof equal_chunk - 1, "=eq") == 0, "eq");
    lua_call(L, 0, 1);
    equal_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new"); /* a plain instance: no depth limit below ours */
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "decode");
    decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (L == NULL) setup();
    int top = lua_gettop(L);

    /* read_json({body = data, headers = {["content-type"] = "application/json"}}) */
    lua_rawgeti(L, LUA_REGISTRYINDEX, read_json_ref);
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, (const char *)data, size);
    lua_setfield(L, -2, "body");
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "application/json");
    lua_setfield(L, -2, "content-type");
    lua_setfield(L, -2, "headers");
    int rc = lua_pcall(L, 1, 2, 0);
    FUZZ_CHECK(rc == 0, "read_json raised: %s", lua_tostring(L, -1));
    int value = top + 1;
    if (!lua_istable(L, value)) {
        FUZZ_CHECK(lua_isnil(L, value) && lua_istable(L, value + 1), "read_json returned neither");
        lua_getfield(L, value + 1, "status");
        FUZZ_CHECK(lua_tointeger(L, -1) == 400, "status %d", (int)lua_tointeger(L, -1));
        lua_settop(L, top);
        return 0;
    }

    struct evbuffer *out = evbuffer_new();
    const char *err = NULL;
    FUZZ_CHECK(out != NULL, "oom");
    if (host_json_encode(L, value, out, &err) != 0) {
        FUZZ_CHECK(err && (strstr(err, "nesting") || strstr(err, "NaN")), "encode failed: %s", err ? err : "?");
    } else {
        FUZZ_CHECK(lua_gettop(L) == top + 2, "encode moved the stack");
        size_t len = evbuffer_get_length(out);
        lua_rawgeti(L, LUA_REGISTRYINDEX, equal_ref);
        lua_pushvalue(L, value);
        lua_rawgeti(L, LUA_REGISTRYINDEX, decode_ref);
        lua_pushlstring(L, (const char *)evbuffer_pullup(out, -1), len);
        rc = lua_pcall(L, 1, 1, 0);
        FUZZ_CHECK(rc == 0, "our own output does not decode: %s", lua_tostring(L, -1));
        lua_call(L, 2, 1);
        FUZZ_CHECK(lua_toboolean(L, -1), "round trip changed the value: %.*s", (int)(len < 400 ? len : 400),
                   (const char *)evbuffer_pullup(out, -1));
    }
    evbuffer_free(out);
    lua_settop(L, top);
    static unsigned runs;
    if (++runs % 4096 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
