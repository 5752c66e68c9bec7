/* request_fuzz.c — from raw request bytes to the Lua table scripts see.
 *
 * The input is a request as it arrives: a request line, header lines, a
 * blank line, a body. The harness feeds the bytes to conn.c's head scanner,
 * parses them roughly as evhttp does (evkeyvalq headers, the target through
 * evhttp_uri_parse_with_flags), then runs host_request_refusal and
 * host_request_push_table (request_table.c), and checks:
 *   - the scanner consumes at most what it is given and counts it;
 *   - the table has the fields and types app.lua relies on, and the stack
 *     grows by exactly one;
 *   - the access-log target never shows the value of a secret-looking
 *     query parameter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <lauxlib.h>

#include "server/conn.h"
#include "fuzz.h"
#include "server/request_table.h"

static lua_State *L;

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};

/* Splits off the next line (CRLF or LF) of [*p, end); NUL-terminated copy
 * in buf (truncated to cap). Returns 0 at the end of input. */
static int next_line(const char **p, const char *end, char *buf, size_t cap)
{
    if (*p >= end) return 0;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    size_t n = (size_t)(stop - *p);
    if (n > 0 && (*p)[n - 1] == '\r') n--;
    if (n >= cap) n = cap - 1;
    memcpy(buf, *p, n);
    buf[n] = '\0';
    *p = nl ? nl + 1 : end;
    return 1;
}

static void check_table(void)
{
    FUZZ_CHECK(lua_istable(L, -1), "not a table");
    lua_getfield(L, -1, "method");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "method");
    lua_getfield(L, -2, "path");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "path");
    lua_getfield(L, -3, "query");
    FUZZ_CHECK(lua_istable(L, -1), "query");
    lua_getfield(L, -4, "headers");
    FUZZ_CHECK(lua_istable(L, -1), "headers");
    /* every header name is lower case, every value a string */
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        size_t n;
        const char *k = lua_tolstring(L, -2, &n);
        for (size_t i = 0; i < n; i++) FUZZ_CHECK(!(k[i] >= 'A' && k[i] <= 'Z'), "header %s", k);
        FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "header value");
        lua_pop(L, 1);
    }
    lua_getfield(L, -5, "id");
    FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "id");
    lua_pop(L, 5);
}

static int looks_secret(const char *raw_key, size_t len)
{
    char *copy = strndup(raw_key, len);
    size_t dlen = 0;
    char *key = copy ? evhttp_uridecode(copy, 1, &dlen) : NULL;
    int secret = 0;
    FUZZ_CHECK(key != NULL, "oom");
    for (const char *w = key; *w; w++)
        if (!strncasecmp(w, "token", 5) || !strncasecmp(w, "password", 8) || !strncasecmp(w, "secret", 6))
            secret = 1;
    free(key);
    free(copy);
    return secret;
}

/* The logged query has the raw query's pieces in order; the value of each
 * secret-looking one is "[redacted]". */
static void check_redaction(const char *query, const char *logged)
{
    const char *q = logged ? strchr(logged, '?') : NULL;
    if (query == NULL || *query == '\0' || q == NULL || !strcmp(q, "?[unparsed]")) return;
    q++;
    for (;;) {
        const char *end = strchr(query, '&'), *lend = strchr(q, '&');
        size_t len = end ? (size_t)(end - query) : strlen(query);
        size_t llen = lend ? (size_t)(lend - q) : strlen(q);
        const char *eq = memchr(query, '=', len);
        FUZZ_CHECK(eq != NULL, "a piece without '=' was logged: %s", logged);
        size_t klen = (size_t)(eq - query);
        FUZZ_CHECK(llen >= klen + 1 && !memcmp(q, query, klen + 1), "pieces differ: %s", logged);
        if (looks_secret(query, klen))
            FUZZ_CHECK(llen == klen + 11 && !memcmp(q + klen + 1, "[redacted]", 10),
                       "secret value logged: %s", logged);
        FUZZ_CHECK((end == NULL) == (lend == NULL), "piece count differs: %s", logged);
        if (end == NULL) return;
        query = end + 1;
        q = lend + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char line[8192];
    struct evkeyvalq headers;
    struct head_scan scan;
    struct evhttp_uri *uri = NULL;
    char *log_target = NULL, *target = NULL;
    const char *p = (const char *)data, *end = p + size;

    if (L == NULL) L = fuzz_vm();
    FUZZ_CHECK(L != NULL, "oom");

    host_head_scan_reset(&scan);
    size_t used = host_head_scan(&scan, data, size);
    FUZZ_CHECK(used <= size && scan.bytes == used, "scanner consumed %zu of %zu", used, size);
    FUZZ_CHECK(scan.scanning || used == 0 || data[used - 1] == '\n', "stopped mid-line");

    TAILQ_INIT(&headers);
    struct request_parts parts = {.method = "GET", .request_id = "fuzz"};
    if (next_line(&p, end, line, sizeof line)) {
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = '\0';
            for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
                if (!strcmp(line, methods[i])) parts.method = methods[i];
            char *t = sp + 1, *sp2 = strchr(t, ' ');
            if (sp2) *sp2 = '\0';
            target = strdup(t);
            uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
        }
    }
    while (next_line(&p, end, line, sizeof line) && line[0] != '\0') {
        char *colon = strchr(line, ':');
        if (colon == NULL) continue;
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ') value++;
        evhttp_add_header(&headers, line, value);
    }
    parts.method_has_body = !strcmp(parts.method, "POST") || !strcmp(parts.method, "PUT") ||
                            !strcmp(parts.method, "PATCH");
    parts.uri = uri;
    parts.headers = &headers;
    parts.body = p < end ? p : NULL;
    parts.body_len = (size_t)(end - p);
    const char *given = evhttp_find_header(&headers, "X-Request-Id");
    if (given) (void)host_request_id_is_sane(given);

    (void)host_request_refusal(&parts);

    int top = lua_gettop(L);
    host_request_push_table(L, &parts, &log_target);
    FUZZ_CHECK(lua_gettop(L) == top + 1, "stack %d -> %d", top, lua_gettop(L));
    check_table();
    lua_settop(L, top);
    check_redaction(uri ? evhttp_uri_get_query(uri) : NULL, log_target);

    free(log_target);
    free(target);
    if (uri) evhttp_uri_free(uri);
    evhttp_clear_headers(&headers);
    return 0;
}
