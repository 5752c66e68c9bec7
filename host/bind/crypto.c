/* crypto.c — host.crypto: the small synchronous primitives scripts need
 * for tokens (random_token, sha256, hmac_sha256, equal, b64url_encode,
 * b64url_decode). Everything comes from libsodium, which main.c (server) or
 * luaopen.c (host.so) initialises before any module is opened.
 * Owns no process state; every buffer is either on the stack or a
 * luaL_Buffer/Lua string that Lua owns. */
#include "bind/crypto.h"

#include <string.h>

#include <lauxlib.h>
#include <sodium.h>

#define TOKEN_DEFAULT_BYTES 32
#define TOKEN_MIN_BYTES 16
#define TOKEN_MAX_BYTES 1024

/* ---- helpers ------------------------------------------------------------ */

int host_crypto_b64url_decode(const char *in, size_t inlen,
                              unsigned char *out, size_t cap, size_t *outlen)
{
    const char *end = NULL;
    size_t n = 0;
    if (inlen == 0) {
        *outlen = 0;
        return 0;
    }
    /* sodium stops at the first byte outside the alphabet; `end` tells
     * where, so a stray byte (or '=' padding) anywhere is a rejection. */
    if (sodium_base642bin(out, cap, in, inlen, NULL, &n, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    if (end != in + inlen) return -1;
    *outlen = n;
    return 0;
}

/* Pushes `len` bytes of `bin` as lowercase hex. Stack: +1. */
static void push_hex(lua_State *L, const unsigned char *bin, size_t len)
{
    char hex[2 * 64 + 1];
    sodium_bin2hex(hex, sizeof hex, bin, len);
    lua_pushlstring(L, hex, 2 * len);
}

/* Pushes `len` bytes of `bin` as unpadded base64url. Stack: +1. The text is
 * built in a temporary userdata: Lua owns it, so nothing leaks if the
 * allocation of the result string raises. */
static void push_b64url(lua_State *L, const unsigned char *bin, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *scratch = lua_newuserdata(L, cap);
    sodium_bin2base64(scratch, cap, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    lua_pushlstring(L, scratch, cap - 1);
    lua_remove(L, -2); /* the scratch userdata */
}

/* ---- Lua functions ------------------------------------------------------ */

/* crypto.random_token(nbytes?) -> base64url string of nbytes random bytes. */
static int l_crypto_random_token(lua_State *L)
{
    unsigned char bytes[TOKEN_MAX_BYTES];
    lua_Number n = luaL_optnumber(L, 1, TOKEN_DEFAULT_BYTES);
    /* written so that NaN fails too */
    if (!(n >= TOKEN_MIN_BYTES && n <= TOKEN_MAX_BYTES) || n != (lua_Number)(size_t)n)
        return luaL_argerror(L, 1, "must be a whole number of bytes in 16..1024");
    size_t len = (size_t)n;
    randombytes_buf(bytes, len);
    push_b64url(L, bytes, len);
    sodium_memzero(bytes, len);
    return 1;
}

/* crypto.sha256(s) -> lowercase hex digest. */
static int l_crypto_sha256(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)s, len);
    push_hex(L, digest, sizeof digest);
    return 1;
}

/* crypto.hmac_sha256(key, msg) -> lowercase hex HMAC. Any key length: the
 * streaming API hashes keys longer than the block size, as RFC 2104 says. */
static int l_crypto_hmac_sha256(lua_State *L)
{
    size_t keylen, msglen;
    const char *key = luaL_checklstring(L, 1, &keylen);
    const char *msg = luaL_checklstring(L, 2, &msglen);
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, keylen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, msglen);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
    push_hex(L, mac, sizeof mac);
    return 1;
}

/* crypto.equal(a, b) -> boolean. Constant time in the contents when the
 * lengths are equal; different lengths are false at once (the length of a
 * token or digest is not a secret). */
static int l_crypto_equal(lua_State *L)
{
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, alen == blen && sodium_memcmp(a, b, alen) == 0);
    return 1;
}

/* crypto.b64url_encode(s) -> unpadded base64url. */
static int l_crypto_b64url_encode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    push_b64url(L, (const unsigned char *)s, len);
    return 1;
}

/* crypto.b64url_decode(s) -> bytes | nil, "invalid base64url". */
static int l_crypto_b64url_decode(lua_State *L)
{
    size_t len, outlen = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    /* scratch owned by Lua (a userdata), so a raise cannot leak it */
    unsigned char *out = lua_newuserdata(L, len / 4 * 3 + 3);
    if (host_crypto_b64url_decode(s, len, out, len / 4 * 3 + 3, &outlen) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid base64url");
        return 2;
    }
    lua_pushlstring(L, (const char *)out, outlen);
    return 1;
}

static const luaL_Reg crypto_functions[] = {
    {"random_token", l_crypto_random_token},
    {"sha256", l_crypto_sha256},
    {"hmac_sha256", l_crypto_hmac_sha256},
    {"equal", l_crypto_equal},
    {"b64url_encode", l_crypto_b64url_encode},
    {"b64url_decode", l_crypto_b64url_decode},
    {NULL, NULL},
};

int host_crypto_open(lua_State *L)
{
    luaL_newlib(L, crypto_functions);
    return 1;
}
