/* json.c — the host's JSON encoder.
 *
 * Why not lua-cjson's encoder: Debian's lua-cjson 2.1.0 encodes every empty
 * table as {} and cannot be told that `"users": []` is a list. This encoder
 * honours an array metatable (host.json.array), and its string escaping is
 * shared with the log writer. Decoding Lua's JSON stays with lua-cjson;
 * the reader at the end serves the replies of services the host calls
 * (firehose.c). Owns nothing: callers own the evbuffers and strings. */
#include "base/json.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define MAX_DEPTH 64

/* Registry key (its address) of the metatable that marks a table as array. */
static const char array_mt_key = 0;

static size_t utf8_sequence_length(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t need;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { need = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; cp = c & 0x07; }
    else return 0;
    if (len < need) return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* overlong forms, surrogates and values past U+10FFFF are invalid */
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return need;
}

/* Escapes len bytes of p into out, which has room for 6 * len bytes.
 * Returns the bytes written. */
static size_t escape_into(char *out, const unsigned char *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_sequence_length(p + i, len - i);
            if (n == 0) {
                memcpy(o, "\\ufffd", 6);
                o += 6;
                n = 1;
            } else {
                memcpy(o, p + i, n);
                o += n;
            }
            i += n;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 0xF];
            o += 5;
        }
        i++;
    }
    return (size_t)(o - out);
}

size_t host_json_quote(char *out, const char *s, size_t len)
{
    out[0] = '"';
    size_t n = 1 + escape_into(out + 1, (const unsigned char *)s, len);
    out[n] = '"';
    return n + 1;
}

char *host_json_digits(char *end, unsigned long long v, int min_digits)
{
    int written = 0;
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
        written++;
    } while (v || written < min_digits);
    return end;
}

/* Long strings go into the buffer in pieces of this many input bytes. */
#define QUOTE_PIECE 4096

void host_json_string(struct evbuffer *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    struct evbuffer_iovec v;
    if (len <= QUOTE_PIECE && evbuffer_reserve_space(out, (ev_ssize_t)HOST_JSON_QUOTED_MAX(len), &v, 1) == 1) {
        v.iov_len = host_json_quote(v.iov_base, s, len);
        evbuffer_commit_space(out, &v, 1);
        return;
    }
    evbuffer_add(out, "\"", 1);
    for (size_t i = 0; i < len;) {
        size_t end = len - i > QUOTE_PIECE ? i + QUOTE_PIECE : len;
        /* a UTF-8 sequence cut in two would come out as two U+FFFD */
        for (int back = 0; end < len && back < 3 && end > i + 1 && (p[end] & 0xC0) == 0x80; back++) end--;
        if (evbuffer_reserve_space(out, (ev_ssize_t)(6 * (end - i)), &v, 1) != 1) return; /* out of memory */
        v.iov_len = escape_into(v.iov_base, p + i, end - i);
        evbuffer_commit_space(out, &v, 1);
        i = end;
    }
    evbuffer_add(out, "\"", 1);
}

static int encode_number(lua_Number x, struct evbuffer *out, const char **err)
{
    char buf[32];
    int n;
    if (!isfinite(x)) {
        *err = "cannot encode NaN or infinity";
        return -1;
    }
    if (x == floor(x) && fabs(x) < 1e15) {
        /* whole numbers (ids, counts) without printf: the common case */
        char *p = host_json_digits(buf + sizeof buf, (unsigned long long)fabs(x), 1);
        if (signbit(x)) *--p = '-';
        evbuffer_add(out, p, (size_t)(buf + sizeof buf - p));
        return 0;
    }
    n = snprintf(buf, sizeof buf, "%.17g", x);
    evbuffer_add(out, buf, (size_t)n);
    return 0;
}

static int is_array_marked(lua_State *L, int idx)
{
    int marked = 0;
    if (lua_getmetatable(L, idx)) {
        lua_pushlightuserdata(L, (void *)&array_mt_key);
        lua_rawget(L, LUA_REGISTRYINDEX);
        marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    return marked;
}

/* Returns n when the table's keys are exactly 1..n (n may be 0), else -1. */
static int sequence_length(lua_State *L, int idx)
{
    size_t n = lua_objlen(L, idx);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1); /* the value; keep the key for lua_next */
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return -1;
        }
        count++;
    }
    return count == n ? (int)n : -1;
}

/* How a value is encoded: `redact`, when set, names object keys whose
 * values are written as "[redacted]" at any depth (log fields). */
struct encoding {
    host_json_redact_fn redact;
};

static int encode_value(lua_State *L, int idx, struct evbuffer *out, const struct encoding *enc, int depth,
                        const char **err);

static int encode_table(lua_State *L, int idx, struct evbuffer *out, const struct encoding *enc, int depth,
                        const char **err)
{
    if (depth > MAX_DEPTH) {
        *err = "nesting too deep (or a cycle)";
        return -1;
    }
    if (!lua_checkstack(L, 4)) {
        *err = "out of Lua stack";
        return -1;
    }
    int n = sequence_length(L, idx);
    if (n > 0 || is_array_marked(L, idx)) {
        if (n < 0) {
            *err = "array has non-sequence keys";
            return -1;
        }
        evbuffer_add(out, "[", 1);
        for (int i = 1; i <= n; i++) {
            if (i > 1) evbuffer_add(out, ",", 1);
            lua_rawgeti(L, idx, i);
            int rc = encode_value(L, lua_gettop(L), out, enc, depth + 1, err);
            lua_pop(L, 1);
            if (rc) return rc;
        }
        evbuffer_add(out, "]", 1);
        return 0;
    }
    int first = 1;
    evbuffer_add(out, "{", 1);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        /* stack: ... key value */
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            *err = "object keys must be strings";
            return -1;
        }
        if (!first) evbuffer_add(out, ",", 1);
        first = 0;
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen);
        host_json_string(out, k, klen);
        evbuffer_add(out, ":", 1);
        int rc = 0;
        if (enc->redact && enc->redact(k)) evbuffer_add(out, "\"[redacted]\"", 12);
        else rc = encode_value(L, lua_gettop(L), out, enc, depth + 1, err);
        lua_pop(L, 1); /* the value; the key stays for lua_next */
        if (rc) {
            lua_pop(L, 1);
            return rc;
        }
    }
    evbuffer_add(out, "}", 1);
    return 0;
}

static int encode_value(lua_State *L, int idx, struct evbuffer *out, const struct encoding *enc, int depth,
                        const char **err)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        evbuffer_add(out, "null", 4);
        return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) evbuffer_add(out, "true", 4);
        else evbuffer_add(out, "false", 5);
        return 0;
    case LUA_TNUMBER:
        return encode_number(lua_tonumber(L, idx), out, err);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        host_json_string(out, s, len);
        return 0;
    }
    case LUA_TTABLE:
        return encode_table(L, idx, out, enc, depth, err);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { /* cjson.null */
            evbuffer_add(out, "null", 4);
            return 0;
        }
        /* fall through */
    default:
        *err = "cannot encode a value of this type";
        return -1;
    }
}

int host_json_encode_redacting(lua_State *L, int idx, struct evbuffer *out, host_json_redact_fn redact,
                               const char **err)
{
    struct encoding enc = {.redact = redact};
    int top = lua_gettop(L);
    idx = idx < 0 ? top + idx + 1 : idx;
    int rc = encode_value(L, idx, out, &enc, 0, err);
    lua_settop(L, top);
    return rc;
}

int host_json_encode(lua_State *L, int idx, struct evbuffer *out, const char **err)
{
    return host_json_encode_redacting(L, idx, out, NULL, err);
}

/* json.encode(value) -> string | nil, err */
static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    struct evbuffer *buf = evbuffer_new();
    const char *err = NULL;
    if (buf == NULL) return luaL_error(L, "out of memory");
    if (host_json_encode(L, 1, buf, &err) != 0) {
        evbuffer_free(buf);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    size_t len = evbuffer_get_length(buf);
    lua_pushlstring(L, (const char *)evbuffer_pullup(buf, -1), len);
    evbuffer_free(buf);
    return 1;
}

/* json.array(t?) -> t, marked so that it encodes as a JSON array */
static int l_json_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushlightuserdata(L, (void *)&array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, 1);
    return 1;
}

static const luaL_Reg json_functions[] = {
    {"encode", l_json_encode},
    {"array", l_json_array},
    {NULL, NULL},
};

int host_json_open(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlightuserdata(L, (void *)&array_mt_key);
        lua_newtable(L);
        lua_pushliteral(L, "array");
        lua_setfield(L, -2, "__name");
        lua_rawset(L, LUA_REGISTRYINDEX);
    } else {
        lua_pop(L, 1);
    }
    luaL_newlib(L, json_functions);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}

/* ---- reading (json.h) ------------------------------------------------------ */

void host_json_read_blank(struct host_json_reader *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n')) j->p++;
}

int host_json_read_eat(struct host_json_reader *j, char c)
{
    host_json_read_blank(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

int host_json_read_peek(struct host_json_reader *j)
{
    host_json_read_blank(j);
    return j->p < j->end ? (unsigned char)*j->p : -1;
}

/* Reads a string. With `out`, writes it there, NUL-terminated (cap must be
 * more than the string's length: callers pass the rest of the input plus
 * one). \u escapes outside ASCII become '?': every string read here is ASCII
 * in practice. 0, or -1 when it is not a string. */
int host_json_read_string(struct host_json_reader *j, char *out)
{
    size_t n = 0;
    if (!host_json_read_eat(j, '"')) return -1;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            if (j->p >= j->end) return -1;
            char e = *j->p++;
            switch (e) {
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                unsigned v = 0;
                if (j->end - j->p < 4) return -1;
                for (int i = 0; i < 4; i++) {
                    unsigned char h = (unsigned char)j->p[i];
                    v <<= 4;
                    if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
                    else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
                    else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
                    else return -1;
                }
                j->p += 4;
                if (v > 0 && v < 0x80) c = (char)v;
                else c = '?';
                break;
            }
            default: c = e; break;
            }
        }
        if (out) out[n++] = c;
    }
    if (j->p >= j->end) return -1;
    j->p++;
    if (out) out[n] = '\0';
    return 0;
}

/* A malloc'd copy of the string at j, or NULL (not a string, or no memory). */
char *host_json_read_strdup(struct host_json_reader *j)
{
    char *s = malloc((size_t)(j->end - j->p) + 1);
    if (s && host_json_read_string(j, s) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

int host_json_read_skip(struct host_json_reader *j, int depth)
{
    int c = host_json_read_peek(j);
    if (c < 0 || depth > 32) return -1;
    if (c == '"') return host_json_read_string(j, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (host_json_read_eat(j, close)) return 0;
        for (;;) {
            if (c == '{' && (host_json_read_string(j, NULL) != 0 || !host_json_read_eat(j, ':'))) return -1;
            if (host_json_read_skip(j, depth + 1) != 0) return -1;
            if (host_json_read_eat(j, ',')) continue;
            return host_json_read_eat(j, close) ? 0 : -1;
        }
    }
    const char *start = j->p;
    while (j->p < j->end && (isalnum((unsigned char)*j->p) || *j->p == '-' || *j->p == '+' || *j->p == '.')) j->p++;
    return j->p > start ? 0 : -1;
}

/* Walks the members of the object at j: for each, reads the key into `key`
 * (cut to 63 bytes) and calls member(key, j, arg), which must consume the
 * value (host_json_read_skip it when it does not want it). 0, or -1 on malformed JSON. */
int host_json_read_object(struct host_json_reader *j, int (*member)(const char *key, struct host_json_reader *j, void *arg), void *arg)
{
    if (!host_json_read_eat(j, '{')) return -1;
    if (host_json_read_eat(j, '}')) return 0;
    for (;;) {
        char key[64];
        host_json_read_blank(j);
        struct host_json_reader k = *j; /* at the key's opening quote */
        if (host_json_read_string(j, NULL) != 0 || !host_json_read_eat(j, ':')) return -1;
        /* read the key again, bounded */
        size_t n = 0;
        k.p++;
        while (k.p < k.end && *k.p != '"' && n < sizeof key - 1) {
            if (*k.p == '\\') break; /* keys we look for have no escapes */
            key[n++] = *k.p++;
        }
        key[n] = '\0';
        if (member(key, j, arg) != 0) return -1;
        if (host_json_read_eat(j, ',')) continue;
        return host_json_read_eat(j, '}') ? 0 : -1;
    }
}
