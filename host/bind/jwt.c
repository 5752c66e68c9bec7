/* jwt.c — host.jwt: sign and verify HS256 JSON Web Tokens.
 *
 * libjwt 1.10.2 parses and serialises, but trusts the token's header for the
 * algorithm (an HS512 token signed with our key passes jwt_decode) and checks
 * no claim at all (an expired token passes). So verify does, in order:
 * size cap, exactly three base64url segments, our own constant-time
 * HMAC-SHA-256 check of the signature, jwt_decode with the key, alg pinned to
 * HS256 and no `crit` header, then exp/iat/nbf/iss/typ on the claims.
 *
 * A client sends the same access token with every request until it
 * expires, so verify remembers the tokens it has verified: a table from the
 * token (every byte of it, signature included) to its claims, at most
 * JWT_VERIFIED_MAX entries (then it starts over). A token found there has
 * passed every check above with this key; only what time changes (exp,
 * iat, nbf) and the typ asked for are checked again, and the caller gets a
 * copy of the claims. What is never remembered: a token that failed.
 * Revocation is not verify's business (lib/auth.lua asks the database).
 *
 * Owns, per VM: a struct jwt_config userdata (the key and the issuer, copied
 * from the environment when the module is opened; its __gc wipes the key),
 * a private lua-cjson instance's decode function, and the verified-token
 * table. They are upvalues of sign and verify, never C globals, since two
 * script generations can be alive at once. Every libjwt object and string
 * is freed before return. */
#include "bind/jwt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* <jwt.h> is libjwt's (host/ is not on the include path; "jwt.h" above is
 * ours, found next to this file). */
#include <jwt.h> /* NOLINT(readability-duplicate-include): libjwt's, not ours */
#include <event2/buffer.h>
#include <lauxlib.h>
#include <sodium.h>

#include "base/config.h"
#include "base/json.h"
#include "bind/crypto.h"

#define JWT_MAX_TOKEN_BYTES 4096   /* longer input is "invalid" unparsed */
#define JWT_SKEW_S 60              /* allowed clock skew for iat and nbf */
#define JWT_MAX_TTL_S 315360000    /* ten years */
#define JWT_DEFAULT_ISSUER "moonkeep"
#define JWT_CONFIG_MT "host.jwt.config"
#define JWT_VERIFIED_MAX 1024      /* tokens remembered per VM (see above) */

static const char not_configured[] = "JWT_SECRET is not set or shorter than 32 bytes";

/* Upvalue 1 of sign/verify. `bytes` holds the key (keylen bytes) and then
 * the issuer (NUL-terminated). */
struct jwt_config {
    int usable;
    int verified;           /* entries in the verified-token table */
    size_t keylen;
    const char *issuer;     /* points into bytes */
    unsigned char bytes[];
};

int host_jwt_check_config(char *err, size_t errlen)
{
    const char *secret = getenv("JWT_SECRET"); /* Flawfinder: ignore (the key is configuration) */
    if (secret == NULL || strlen(secret) < HOST_JWT_MIN_KEY_BYTES) {
        snprintf(err, errlen, "%s", not_configured);
        return -1;
    }
    return 0;
}

/* The VM's configuration; raises when there is no usable key. */
static struct jwt_config *config_check(lua_State *L)
{
    struct jwt_config *cfg = lua_touserdata(L, lua_upvalueindex(1));
    if (!cfg->usable) luaL_error(L, "%s", not_configured);
    return cfg;
}

static int l_jwt_config_gc(lua_State *L)
{
    struct jwt_config *cfg = luaL_checkudata(L, 1, JWT_CONFIG_MT);
    sodium_memzero(cfg->bytes, cfg->keylen); /* idempotent */
    cfg->usable = 0;
    return 0;
}

/* ---- sign --------------------------------------------------------------- */

static int reserved_claim(const char *name)
{
    return !strcmp(name, "iat") || !strcmp(name, "exp") || !strcmp(name, "iss");
}

/* Raises unless the table at index 1 is a flat map of non-empty string names
 * to strings, finite numbers or booleans, without NUL bytes. Checked before
 * any libjwt object exists, so a raise leaks nothing. Stack: balanced. */
static void check_claims(lua_State *L)
{
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        size_t klen, vlen;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, 1, "claim names must be strings");
        const char *name = lua_tolstring(L, -2, &klen);
        if (klen == 0 || strlen(name) != klen)
            luaL_argerror(L, 1, "claim names must be non-empty and without NUL bytes");
        switch (lua_type(L, -1)) {
        case LUA_TSTRING:
            if (strlen(lua_tolstring(L, -1, &vlen)) != vlen)
                luaL_argerror(L, 1, lua_pushfstring(L, "claim '%s' contains a NUL byte", name));
            break;
        case LUA_TNUMBER:
            if (!isfinite(lua_tonumber(L, -1)))
                luaL_argerror(L, 1, lua_pushfstring(L, "claim '%s' is not a finite number", name));
            break;
        case LUA_TBOOLEAN:
            break;
        default:
            luaL_argerror(L, 1, lua_pushfstring(L,
                "claim '%s' is a %s; claims must be strings, numbers or booleans",
                name, luaL_typename(L, -1)));
        }
        lua_pop(L, 1); /* the value; the name stays for lua_next */
    }
}

/* Adds a non-integral (or beyond 2^53) number as a JSON real: libjwt 1.10.2
 * has no jwt_add_grant_double, so it goes through jwt_add_grants_json. */
static int add_grant_real(jwt_t *jwt, const char *name, double value)
{
    struct evbuffer *buf = evbuffer_new();
    int rc = -1;
    if (buf == NULL) return -1;
    evbuffer_add(buf, "{", 1);
    host_json_string(buf, name, strlen(name));
    evbuffer_add_printf(buf, ":%.17g}", value);
    evbuffer_add(buf, "", 1);
    const char *json = (const char *)evbuffer_pullup(buf, -1);
    if (json) rc = jwt_add_grants_json(jwt, json);
    evbuffer_free(buf);
    return rc;
}

/* Adds the claim at (-2 name, -1 value), already checked. Returns libjwt's
 * error code (0 on success). */
static int add_grant(lua_State *L, jwt_t *jwt)
{
    const char *name = lua_tostring(L, -2);
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        return jwt_add_grant(jwt, name, lua_tostring(L, -1));
    case LUA_TBOOLEAN:
        return jwt_add_grant_bool(jwt, name, lua_toboolean(L, -1));
    default: {
        double n = lua_tonumber(L, -1);
        if (n == floor(n) && fabs(n) <= 9007199254740992.0)
            return jwt_add_grant_int(jwt, name, (long)n);
        return add_grant_real(jwt, name, n);
    }
    }
}

/* jwt.sign(claims, ttl) -> token. Sets iat = now, exp = now + ttl and
 * iss = JWT_ISSUER over whatever claims holds; HS256 with JWT_SECRET.
 * Raises on misuse (bad claims, bad ttl, no key). */
static int l_jwt_sign(lua_State *L)
{
    const struct jwt_config *cfg = config_check(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Number ttl = luaL_checknumber(L, 2);
    if (!(ttl >= 1 && ttl <= JWT_MAX_TTL_S) || ttl != floor(ttl))
        return luaL_argerror(L, 2, "ttl must be a whole number of seconds in 1..315360000");
    lua_settop(L, 2);
    check_claims(L);

    jwt_t *jwt = NULL;          /* ours: freed at done */
    char *token = NULL;         /* malloc'd by libjwt: freed at done */
    char failed[160] = "";      /* set when libjwt refuses something */
    long now = (long)time(NULL);

    if (jwt_new(&jwt) != 0) {
        snprintf(failed, sizeof failed, "out of memory");
        goto done;
    }
    if (jwt_add_grant_int(jwt, "iat", now) || jwt_add_grant_int(jwt, "exp", now + (long)ttl) ||
        jwt_add_grant(jwt, "iss", cfg->issuer)) {
        snprintf(failed, sizeof failed, "cannot set iat/exp/iss");
        goto done;
    }
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        const char *name = lua_tostring(L, -2);
        if (!reserved_claim(name) && add_grant(L, jwt) != 0) {
            /* jansson refuses strings that are not UTF-8, for one */
            snprintf(failed, sizeof failed, "claim '%.64s' cannot be encoded (not UTF-8?)", name);
            lua_pop(L, 2); /* value and name: the loop is left early */
            goto done;
        }
        lua_pop(L, 1); /* the value */
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, cfg->bytes, (int)cfg->keylen) != 0 ||
        (token = jwt_encode_str(jwt)) == NULL)
        snprintf(failed, sizeof failed, "libjwt cannot encode the token");

done:
    jwt_free(jwt);
    if (failed[0]) {
        free(token);
        return luaL_error(L, "jwt.sign: %s", failed);
    }
    lua_pushstring(L, token);
    free(token);
    return 1;
}

/* ---- verify ------------------------------------------------------------- */

static int b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Three non-empty segments of base64url characters separated by two dots.
 * On success *sig_at is the offset of the signature (after the 2nd dot). */
static int token_shape_ok(const char *t, size_t len, size_t *sig_at)
{
    size_t dots[2];
    int ndots = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '.') {
            if (ndots == 2) return 0;
            dots[ndots++] = i;
        } else if (!b64url_char((unsigned char)t[i])) {
            return 0;
        }
    }
    /* dots[] is set for every dot counted; ndots == 2 guards the reads */
    // cppcheck-suppress uninitvar
    if (ndots != 2 || dots[0] == 0 || dots[1] == dots[0] + 1 || dots[1] + 1 == len) return 0;
    *sig_at = dots[1] + 1;
    return 1;
}

/* HMAC-SHA-256 of t[0 .. sig_at-1) (header.payload) against the decoded
 * signature, compared in constant time. */
static int signature_ok(const struct jwt_config *cfg, const char *t, size_t len, size_t sig_at)
{
    unsigned char sig[64], mac[crypto_auth_hmacsha256_BYTES];
    size_t siglen = 0;
    crypto_auth_hmacsha256_state st;
    if (host_crypto_b64url_decode(t + sig_at, len - sig_at, sig, sizeof sig, &siglen) != 0 ||
        siglen != sizeof mac)
        return 0;
    crypto_auth_hmacsha256_init(&st, cfg->bytes, cfg->keylen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)t, sig_at - 1);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
    return crypto_verify_32(sig, mac) == 0;
}

/* The claims JSON of an HS256 token without `crit`, or NULL. The caller
 * frees the result (malloc'd by jansson through libjwt). */
static char *decode_claims_json(const struct jwt_config *cfg, const char *token)
{
    jwt_t *jwt = NULL;
    char *json = NULL;
    char *crit = NULL;
    if (jwt_decode(&jwt, token, cfg->bytes, (int)cfg->keylen) != 0) goto done;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) goto done;
    crit = jwt_get_headers_json(jwt, "crit");
    if (crit != NULL) goto done; /* we implement no extension */
    json = jwt_get_grants_json(jwt, NULL);
done:
    free(crit);
    jwt_free(jwt);
    return json;
}

/* Reads claims[name] (claims at idx) as a finite number. Stack: balanced. */
static int number_claim(lua_State *L, int idx, const char *name, double *out)
{
    lua_getfield(L, idx, name);
    int ok = lua_type(L, -1) == LUA_TNUMBER && isfinite(lua_tonumber(L, -1));
    if (ok) *out = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return ok;
}

/* claims[name] is the string `want`. Stack: balanced. */
static int string_claim_is(lua_State *L, int idx, const char *name, const char *want)
{
    lua_getfield(L, idx, name);
    int ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), want) == 0;
    lua_pop(L, 1);
    return ok;
}

static int verify_fail(lua_State *L, const char *err)
{
    lua_settop(L, 2);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* The checks that depend on the time and on the typ asked for, on the
 * claims at index 3. Returns NULL, or "invalid" / "expired". */
static const char *claims_refusal(lua_State *L, const struct jwt_config *cfg, const char *typ)
{
    double now = (double)time(NULL), exp, iat, nbf;
    if (!number_claim(L, 3, "exp", &exp) || !number_claim(L, 3, "iat", &iat) || iat > now + JWT_SKEW_S)
        return "invalid";
    lua_getfield(L, 3, "nbf");
    int nbf_present = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (nbf_present && (!number_claim(L, 3, "nbf", &nbf) || nbf > now + JWT_SKEW_S)) return "invalid";
    if (!string_claim_is(L, 3, "iss", cfg->issuer)) return "invalid";
    if (typ != NULL && !string_claim_is(L, 3, "typ", typ)) return "invalid";
    /* last, so that "expired" always means: genuine, and only too old */
    if (!(exp > now)) return "expired";
    return NULL;
}

/* Pushes a shallow copy of the table at idx. */
static void push_copy(lua_State *L, int idx)
{
    lua_createtable(L, 0, 8);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
}

/* verified[token] = claims (at index 3), emptying the table when full.
 * Stack: balanced. */
static void remember(lua_State *L, struct jwt_config *cfg)
{
    if (cfg->verified >= JWT_VERIFIED_MAX) {
        lua_pushnil(L);
        while (lua_next(L, lua_upvalueindex(3))) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, lua_upvalueindex(3)); /* clearing a field is allowed during lua_next */
        }
        cfg->verified = 0;
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_rawset(L, lua_upvalueindex(3));
    cfg->verified++;
}

/* jwt.verify(token, typ?) -> claims | nil, "expired" | nil, "invalid".
 * Stack while checking claims: 1 token, 2 typ, 3 claims table. */
static int l_jwt_verify(lua_State *L)
{
    struct jwt_config *cfg = config_check(L);
    size_t len, sig_at;
    const char *token = luaL_checklstring(L, 1, &len);
    const char *typ = luaL_optstring(L, 2, NULL);
    const char *refusal;
    lua_settop(L, 2);

    lua_pushvalue(L, 1);
    lua_rawget(L, lua_upvalueindex(3));
    if (lua_istable(L, 3)) {
        if ((refusal = claims_refusal(L, cfg, typ)) != NULL) return verify_fail(L, refusal);
        push_copy(L, 3);
        return 1;
    }
    lua_settop(L, 2);

    if (len > JWT_MAX_TOKEN_BYTES || !token_shape_ok(token, len, &sig_at) ||
        !signature_ok(cfg, token, len, sig_at))
        return verify_fail(L, "invalid");

    char *json = decode_claims_json(cfg, token);
    if (json == NULL) return verify_fail(L, "invalid");
    lua_pushvalue(L, lua_upvalueindex(2)); /* cjson decode */
    lua_pushstring(L, json);
    free(json);
    if (lua_pcall(L, 1, 1, 0) != 0 || !lua_istable(L, 3)) return verify_fail(L, "invalid");
    if ((refusal = claims_refusal(L, cfg, typ)) != NULL) return verify_fail(L, refusal);
    remember(L, cfg);
    push_copy(L, 3);
    return 1;
}

/* ---- module ------------------------------------------------------------- */

static const luaL_Reg jwt_functions[] = {
    {"sign", l_jwt_sign},
    {"verify", l_jwt_verify},
    {NULL, NULL},
};

int host_jwt_open(lua_State *L)
{
    const char *secret = getenv("JWT_SECRET"); /* Flawfinder: ignore (the key is configuration) */
    const char *issuer = config_env_str("JWT_ISSUER", JWT_DEFAULT_ISSUER);
    size_t keylen = secret ? strlen(secret) : 0;
    size_t isslen = strlen(issuer);
    int usable = keylen >= HOST_JWT_MIN_KEY_BYTES;
    if (!usable) keylen = 0; /* a short key is never kept */

    lua_newtable(L);                                         /* module */
    struct jwt_config *cfg = lua_newuserdata(L, sizeof *cfg + keylen + isslen + 1);
    cfg->usable = usable;
    cfg->keylen = keylen;
    if (keylen) memcpy(cfg->bytes, secret, keylen);
    memcpy(cfg->bytes + keylen, issuer, isslen + 1);
    cfg->issuer = (const char *)cfg->bytes + keylen;
    if (luaL_newmetatable(L, JWT_CONFIG_MT)) {
        lua_pushcfunction(L, l_jwt_config_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);                                 /* module, cfg */

    /* A private cjson instance: settings a script changes on the shared
     * cjson module (depth, number handling) cannot affect token parsing. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);                                       /* module, cfg, cjson */
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);                                       /* module, cfg, cjson, inst */
    lua_getfield(L, -1, "decode");
    lua_replace(L, -3);                                      /* module, cfg, decode, inst */
    lua_pop(L, 1);                                           /* module, cfg, decode */
    lua_createtable(L, 0, JWT_VERIFIED_MAX);                 /* module, cfg, decode, verified */
    luaL_setfuncs(L, jwt_functions, 3);                      /* module */
    return 1;
}

/* host.jwt starts nothing; its record is there so that the master checks
 * JWT_SECRET with every other setting before it forks. */
const struct host_service host_jwt_service = {"jwt", host_jwt_check_config, NULL, NULL, NULL, NULL};
