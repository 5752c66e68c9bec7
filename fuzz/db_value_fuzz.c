/* db_value_fuzz.c — host/bind/db.c's conversion of a result field (its text and
 * its column type's OID) to a Lua value: host_db_push_text.
 *
 * The first byte picks the column type, the rest is the text as libpq
 * would hand it over (NUL-terminated). Checks: the call pushes exactly one
 * value of the type the mapping promises; only json/jsonb may raise (bad
 * JSON, caught as push_rows's caller does); a timestamptz comes back no
 * longer than the text plus 3 bytes (":00"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "bind/db.h"
#include "fuzz.h"

static lua_State *L;

static const unsigned int oids[] = {16, 20, 21, 23, 26, 114, 700, 701, 1184, 3802, 25, 1043, 0};

struct call {
    const char *v;
    size_t len;
    unsigned int oid;
};

static int push_p(lua_State *Ls)
{
    const struct call *c = lua_touserdata(Ls, 1);
    lua_settop(Ls, 0);
    host_db_push_text(Ls, c->v, c->len, c->oid);
    return lua_gettop(Ls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (L == NULL) {
        L = fuzz_vm();
        lua_getglobal(L, "require");
        lua_pushliteral(L, "host.db"); /* installs cjson.decode for json columns */
        FUZZ_CHECK(lua_pcall(L, 1, 0, 0) == 0, "host.db: %s", lua_tostring(L, -1));
    }
    if (size == 0) return 0;
    struct call c = {.oid = oids[data[0] % (sizeof oids / sizeof *oids)], .len = size - 1};
    char *text = malloc(size);
    FUZZ_CHECK(text != NULL, "oom");
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    c.v = text;

    int top = lua_gettop(L);
    lua_pushcfunction(L, push_p);
    lua_pushlightuserdata(L, &c);
    int rc = lua_pcall(L, 1, LUA_MULTRET, 0);
    if (rc != 0) {
        FUZZ_CHECK(c.oid == 114 || c.oid == 3802, "type %u raised: %s", c.oid, lua_tostring(L, -1));
    } else {
        FUZZ_CHECK(lua_gettop(L) == top + 1, "pushed %d values", lua_gettop(L) - top);
        int t = lua_type(L, -1);
        switch (c.oid) {
        case 16: FUZZ_CHECK(t == LUA_TBOOLEAN, "bool"); break;
        case 20: case 21: case 23: case 26: case 700: case 701:
            FUZZ_CHECK(t == LUA_TNUMBER, "number"); break;
        case 1184: {
            size_t n;
            FUZZ_CHECK(t == LUA_TSTRING, "timestamptz");
            lua_tolstring(L, -1, &n);
            FUZZ_CHECK(n <= c.len + 3, "timestamptz grew from %zu to %zu", c.len, n);
            break;
        }
        case 114: case 3802: break; /* any JSON value */
        default: {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            FUZZ_CHECK(t == LUA_TSTRING && n == c.len && !memcmp(s, text, n), "text changed");
        }
        }
    }
    lua_settop(L, top);
    free(text);
    static unsigned runs;
    if (++runs % 4096 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
