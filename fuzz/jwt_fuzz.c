/* jwt_fuzz.c — host.jwt's verify path (host/bind/jwt.c through its Lua API).
 *
 * Two kinds of input, told apart by the first byte:
 *   even  the rest is a token as a client would send it: verify must say
 *         nil, "invalid" or nil, "expired" (nothing without our key can be
 *         accepted);
 *   odd   the rest is "header JSON \n claims JSON": the harness encodes and
 *         signs them with the server's key (HMAC-SHA-256), so the fuzzer
 *         reaches libjwt's parser and the claim checks. If verify accepts,
 *         the claims must be what the checks promise: iss is the issuer,
 *         exp is in the future, typ is the one asked for.
 * Either way verify must not raise, and must leave the stack as documented. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <sodium.h>

#include "fuzz.h"

#define KEY "fuzz-secret-fuzz-secret-fuzz-secret-0123456789"

static lua_State *L;
static int verify_ref;

static void setup(void)
{
    setenv("JWT_SECRET", KEY, 1);
    setenv("JWT_ISSUER", "moonkeep", 1);
    L = fuzz_vm();
    lua_getglobal(L, "require");
    lua_pushliteral(L, "host.jwt");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        fprintf(stderr, "host.jwt: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_getfield(L, -1, "verify");
    verify_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
}

/* base64url without padding of [p, p+n) appended at out; returns its length. */
static size_t b64(char *out, size_t cap, const unsigned char *p, size_t n)
{
    sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return strlen(out);
}

/* header "." claims "." HMAC-SHA-256; malloc'd. */
static char *sign(const unsigned char *header, size_t hlen, const unsigned char *claims, size_t clen)
{
    size_t cap = sodium_base64_ENCODED_LEN(hlen, sodium_base64_VARIANT_URLSAFE_NO_PADDING) +
                 sodium_base64_ENCODED_LEN(clen, sodium_base64_VARIANT_URLSAFE_NO_PADDING) + 64;
    char *t = malloc(cap);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    FUZZ_CHECK(t != NULL, "oom");
    size_t n = b64(t, cap, header, hlen);
    t[n++] = '.';
    n += b64(t + n, cap - n, claims, clen);
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)KEY, strlen(KEY));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)t, n);
    crypto_auth_hmacsha256_final(&st, mac);
    t[n++] = '.';
    b64(t + n, cap - n, mac, sizeof mac);
    return t;
}

/* verify(token, typ) on the stack's top; checks the outcome. */
static void verify(const char *token, size_t len, const char *typ, int genuine)
{
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, verify_ref);
    lua_pushlstring(L, token, len);
    if (typ) lua_pushstring(L, typ);
    else lua_pushnil(L);
    int rc = lua_pcall(L, 2, 2, 0);
    FUZZ_CHECK(rc == 0, "verify raised: %s", lua_tostring(L, -1));
    if (lua_istable(L, -2)) {
        FUZZ_CHECK(genuine, "a token not signed with the key was accepted");
        lua_getfield(L, -2, "iss");
        FUZZ_CHECK(lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), "moonkeep"), "iss");
        lua_getfield(L, -3, "exp");
        FUZZ_CHECK(lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) > (double)time(NULL) - 1, "exp");
        if (typ) {
            lua_getfield(L, -4, "typ");
            FUZZ_CHECK(lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), typ), "typ");
        }
    } else {
        FUZZ_CHECK(lua_isnil(L, -2), "verify returned a %s", luaL_typename(L, -2));
        const char *why = lua_tostring(L, -1);
        FUZZ_CHECK(why && (!strcmp(why, "invalid") || !strcmp(why, "expired")), "reason %s", why ? why : "(none)");
    }
    lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (L == NULL) setup();
    if (size == 0) return 0;
    const char *typs[] = {NULL, "access", "refresh"};
    const char *typ = typs[(data[0] >> 1) % 3];
    if ((data[0] & 1) == 0) {
        verify((const char *)data + 1, size - 1, typ, 0);
    } else {
        const unsigned char *rest = data + 1, *nl = memchr(rest, '\n', size - 1);
        size_t hlen = nl ? (size_t)(nl - rest) : size - 1;
        const unsigned char *claims = nl ? nl + 1 : rest + size - 1;
        size_t clen = nl ? size - 1 - hlen - 1 : 0;
        char *token = sign(rest, hlen, claims, clen);
        verify(token, strlen(token), typ, 1);
        free(token);
    }
    static unsigned runs;
    if (++runs % 4096 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
