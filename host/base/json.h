/* json.h — JSON text produced by the host (response bodies, log lines). */
#ifndef MOONKEEP_JSON_H
#define MOONKEEP_JSON_H

#include <stddef.h>
#include <event2/buffer.h>
#include <lua.h>

/* Appends `s` (len bytes) to `out` as a quoted JSON string. Control
 * characters are escaped and invalid UTF-8 becomes U+FFFD, so the output is
 * always valid JSON whatever bytes a client sent. */
void host_json_string(struct evbuffer *out, const char *s, size_t len);

/* The same into `out`, which has room for HOST_JSON_QUOTED_MAX(len) bytes;
 * returns the bytes written. */
#define HOST_JSON_QUOTED_MAX(len) (6 * (len) + 2)
size_t host_json_quote(char *out, const char *s, size_t len);

/* Writes the decimal digits of v, at least min_digits of them (zeros in
 * front), so that they end just before `end`; returns where they start.
 * The caller's buffer has room for 20 digits or min_digits. */
char *host_json_digits(char *end, unsigned long long v, int min_digits);

/* Appends the Lua value at `idx` to `out` as JSON. Tables that carry the
 * array metatable (host.json.array) are arrays even when empty; other tables
 * are arrays when their keys are exactly 1..n, objects otherwise. Returns 0,
 * or -1 with a static message in *err (cycles, depth, NaN, functions...).
 * Stack: balanced. */
int host_json_encode(lua_State *L, int idx, struct evbuffer *out, const char **err);

/* The same, but the value of every object key (at any depth) for which
 * `redact(key)` is true is written as "[redacted]" (log fields). */
typedef int (*host_json_redact_fn)(const char *key);
int host_json_encode_redacting(lua_State *L, int idx, struct evbuffer *out, host_json_redact_fn redact,
                               const char **err);

/* Pushes the host.json module: encode(v), array(t), null. */
int host_json_open(lua_State *L);

#endif
