/* request_table.c — from request parts to the Lua table scripts see, and
 * the head checks that come before any script. Pure: no connection, no
 * event loop, so fuzz/request_fuzz.c drives it directly.
 * Owns nothing past a call: the log target it returns is the caller's. */
#include "server/request_table.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <lauxlib.h>

#define HEADER_NAME_MAX 255

int host_request_id_is_sane(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != ':' && c != '-') return 0;
    }
    return 1;
}

/* ---- head checks ------------------------------------------------------------ */

/* RFC 9110 tchar */
static int is_token(const char *s)
{
    if (*s == '\0') return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c)) return 0;
    }
    return 1;
}

static int value_is_clean(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7F) return 0;
    return 1;
}

static int all_digits(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

const char *host_request_refusal(const struct request_parts *p)
{
    int lengths = 0, codings = 0, hosts = 0;
    const char *length = NULL, *coding = NULL;
    for (const struct evkeyval *h = p->headers->tqh_first; h; h = h->next.tqe_next) {
        if (!value_is_clean(h->value)) return "a header contains control characters";
        if (!is_token(h->key) || strlen(h->key) > HEADER_NAME_MAX) return "a header name is not valid";
        if (!strcasecmp(h->key, "Content-Length")) lengths++, length = h->value;
        else if (!strcasecmp(h->key, "Transfer-Encoding")) codings++, coding = h->value;
        else if (!strcasecmp(h->key, "Host")) hosts++;
    }
    if (lengths > 1 || codings > 1 || hosts > 1)
        return "Content-Length, Transfer-Encoding and Host may appear once each";
    if (coding && length) return "Transfer-Encoding and Content-Length together";
    if (coding && strcasecmp(coding, "chunked") != 0) return "the only transfer coding accepted is chunked";
    if (length && !all_digits(length, 18)) return "Content-Length is not a number of bytes";
    if (!p->method_has_body && (coding || (length && strspn(length, "0") != strlen(length))))
        return "this method takes no body";
    return NULL;
}

/* ---- the table ---------------------------------------------------------------- */

static int query_key_is_secret(const char *key, size_t len)
{
    static const char *const words[] = {"token", "password", "secret", "key", "code", "signature", NULL};
    char lowered[64];
    if (len >= sizeof lowered) return 1; /* a key that long is redacted anyway */
    for (size_t i = 0; i < len; i++) lowered[i] = (char)tolower((unsigned char)key[i]);
    lowered[len] = '\0';
    for (int i = 0; words[i]; i++)
        if (strstr(lowered, words[i])) return 1;
    return 0;
}

/* Decodes one query component (%XX, '+' as space) and pushes it, NULs
 * included. Returns 0, or -1 when out of memory. Stack: +1 on success. */
static int push_decoded(lua_State *L, const char *s, size_t len)
{
    char *copy = malloc(len + 1), *dec;
    size_t n = 0;
    if (copy == NULL) return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    dec = evhttp_uridecode(copy, 1, &n);
    free(copy);
    if (dec == NULL) return -1;
    lua_pushlstring(L, dec, n);
    free(dec);
    return 0;
}

/* Fills the query table at the top of L from raw ("a=1&b=2"): first values
 * win; every piece must be key=value with a non-empty key (as evhttp's own
 * parser wants). Writes the redacted form ("?a=1&token=[redacted]") to
 * logged. Returns 0, or -1 when the query does not parse. Stack: balanced. */
static int parse_query(lua_State *L, const char *raw, struct evbuffer *logged)
{
    int top = lua_gettop(L);
    char sep = '?';
    const char *p = raw;
    for (;;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen, vlen, dklen;
        if (eq == NULL || eq == p) goto fail;
        klen = (size_t)(eq - p);
        vlen = len - klen - 1;
        if (push_decoded(L, p, klen) != 0) goto fail;           /* query, key */
        const char *key = lua_tolstring(L, -1, &dklen);
        int secret = query_key_is_secret(key, dklen);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);                                       /* query, key, old */
        int first = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (first) {
            if (push_decoded(L, eq + 1, vlen) != 0) goto fail;  /* query, key, value */
            lua_rawset(L, -3);
        } else {
            lua_pop(L, 1);
        }
        if (logged) {
            evbuffer_add(logged, &sep, 1);
            evbuffer_add(logged, p, klen);
            evbuffer_add(logged, "=", 1);
            if (secret) evbuffer_add(logged, "[redacted]", 10);
            else evbuffer_add(logged, eq + 1, vlen);
            sep = '&';
        }
        if (end == NULL) return 0;
        p = end + 1;
    }
fail:
    lua_settop(L, top);
    return -1;
}

/* Sets t.path, t.query (first values), t.query_error; builds the log
 * target. Stack: +0 (works on the table at -1). */
static void push_target(lua_State *L, const struct request_parts *p, char **log_target)
{
    const char *raw_path = p->uri ? evhttp_uri_get_path(p->uri) : NULL;
    const char *raw_query = p->uri ? evhttp_uri_get_query(p->uri) : NULL;
    if (raw_path == NULL || *raw_path == '\0') raw_path = "/";
    size_t path_len = 0;
    char *path = evhttp_uridecode(raw_path, 0, &path_len);

    lua_pushlstring(L, path ? path : "/", path ? path_len : 1);
    lua_setfield(L, -2, "path");
    free(path);

    struct evbuffer *target = evbuffer_new();
    if (target) evbuffer_add(target, raw_path, strlen(raw_path));
    lua_newtable(L);
    if (raw_query && *raw_query) {
        struct evbuffer *logged = evbuffer_new();
        if (parse_query(L, raw_query, logged) == 0) {
            if (target && logged) evbuffer_add_buffer(target, logged);
        } else {
            lua_pushboolean(L, 1);
            lua_setfield(L, -3, "query_error");
            if (target) evbuffer_add(target, "?[unparsed]", 11);
        }
        if (logged) evbuffer_free(logged);
    }
    lua_setfield(L, -2, "query");
    *log_target = NULL;
    if (target) {
        evbuffer_add(target, "", 1);
        *log_target = strdup((const char *)evbuffer_pullup(target, -1));
        evbuffer_free(target);
    }
}

void host_request_push_table(lua_State *L, const struct request_parts *p, char **log_target)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, p->method);
    lua_setfield(L, -2, "method");
    push_target(L, p, log_target);

    lua_newtable(L);
    for (const struct evkeyval *h = p->headers->tqh_first; h; h = h->next.tqe_next) {
        char name[HEADER_NAME_MAX + 1];
        size_t n = strlen(h->key);
        if (n >= sizeof name) continue;
        for (size_t i = 0; i <= n; i++) name[i] = (char)tolower((unsigned char)h->key[i]);
        lua_getfield(L, -1, name);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushstring(L, h->value);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, h->value);
            lua_concat(L, 3);
        }
        lua_setfield(L, -2, name);
    }
    lua_setfield(L, -2, "headers");

    if (p->body && p->body_len > 0) {
        lua_pushlstring(L, p->body, p->body_len);
        lua_setfield(L, -2, "body");
    }
    lua_pushstring(L, p->request_id);
    lua_setfield(L, -2, "id");
    if (p->client_addr && p->client_addr[0]) {
        lua_pushstring(L, p->client_addr);
        lua_setfield(L, -2, "client_addr");
    }
    if (p->remote_addr) {
        lua_pushstring(L, p->remote_addr);
        lua_setfield(L, -2, "remote_addr");
    }
}
