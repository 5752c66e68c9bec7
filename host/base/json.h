/* json.h — JSON text produced by the host (response bodies, log lines),
 * and a small reader for the JSON it receives from services it calls. */
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

/* ---- reading ------------------------------------------------------------------
 * A small reader for the JSON documents the host itself receives (Firehose's
 * responses, the container credentials endpoint): objects, arrays, strings,
 * numbers, literals, over a byte range, without building a tree. Scripts
 * decode with lua-cjson. */

struct host_json_reader {
    const char *p, *end;    /* what is left to read */
};

/* Skips blanks. */
void host_json_read_blank(struct host_json_reader *j);
/* The next byte after blanks, or -1 at the end. */
int host_json_read_peek(struct host_json_reader *j);
/* Consumes `c` (after blanks) when it is next: 1, else 0. */
int host_json_read_eat(struct host_json_reader *j, char c);
/* Reads a string; with `out` (room for the rest of the input plus one),
 * writes it there NUL-terminated. \u escapes outside ASCII become '?'.
 * 0, or -1 when it is not a string. */
int host_json_read_string(struct host_json_reader *j, char *out);
/* A malloc'd copy of the string at j, or NULL (not a string, no memory). */
char *host_json_read_strdup(struct host_json_reader *j);
/* Skips one value, nested at most 32 deep below `depth`. 0 or -1. */
int host_json_read_skip(struct host_json_reader *j, int depth);
/* Walks the members of the object at j: for each, reads the key (cut to 63
 * bytes; keys with escapes are cut at the escape) and calls member(key, j,
 * arg), which must consume the value (host_json_read_skip it when it does
 * not want it). 0, or -1 on malformed JSON or when member fails. */
int host_json_read_object(struct host_json_reader *j,
                          int (*member)(const char *key, struct host_json_reader *j, void *arg), void *arg);

/* Pushes the host.json module: encode(v), array(t), null. */
int host_json_open(lua_State *L);

#endif
