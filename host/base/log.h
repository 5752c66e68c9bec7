/* log.h — structured logging: one JSON object per line on stdout. The
 * writer only: scripts log through host.log (bind/log.h). */
#ifndef MOONKEEP_LOG_H
#define MOONKEEP_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the threshold ("debug", "info", "warn", "error") and the process role
 * written into every line ("master", "worker", "cli"). Call again after fork. */
void host_log_init(const char *level, const char *role);

/* "debug", "info", "warn", "error" (any case) -> *out. Returns 0, or -1
 * for anything else (config_load refuses such a LOG_LEVEL). */
int host_log_parse_level(const char *name, enum log_level *out);
const char *host_log_level_name(enum log_level level);

/* A sink sees every line written (that passed LOG_LEVEL), right after the
 * write to stdout: `line` is the JSON object and its trailing newline, `len`
 * bytes, valid only during the call. Sinks run on the thread that logs (a
 * worker's loop thread), in the order added; they must not log and must
 * not block. host/metrics.c counts lines by level through one; the Firehose
 * shipper is meant to batch them through another. Processes forked later
 * inherit the sinks. Returns 0, or -1 when HOST_LOG_SINKS_MAX are set. */
#define HOST_LOG_SINKS_MAX 4
typedef void (*host_log_sink_fn)(enum log_level level, const char *line, size_t len, void *arg);
int host_log_add_sink(host_log_sink_fn fn, void *arg);

/* A line under construction. Lines are built and written on the thread that
 * runs the event loop; the builder is process-wide, so only one line can be
 * open at a time (begin ... end with no other logging in between). */
struct log_line;

/* Starts a line with time, level, msg, pid and role. Returns NULL when the
 * level is filtered out; every other call accepts NULL and does nothing. */
struct log_line *host_log_begin(enum log_level level, const char *msg);
void host_log_str(struct log_line *line, const char *key, const char *value);
void host_log_strn(struct log_line *line, const char *key, const char *value, size_t len);
void host_log_int(struct log_line *line, const char *key, int64_t value);
void host_log_num(struct log_line *line, const char *key, double value);
/* Adds `key` with the Lua value at idx encoded as JSON (tables included);
 * inside tables, values under secret-looking keys become "[redacted]". */
void host_log_lua(struct log_line *line, const char *key, lua_State *L, int idx);
/* Closes the line and writes it with one write(2), or adds it to the batch. */
void host_log_end(struct log_line *line);

/* Batching for a worker's event loop (see log.c): on from the loop's start,
 * off (which writes what waits) before the loop is freed. Returns 0, or -1
 * when out of memory (lines are then written one by one). */
struct event_base;
int host_log_batch_on(struct event_base *base);
void host_log_batch_off(void);

/* One-call form for messages without fields. */
void host_log(enum log_level level, const char *msg);

/* Does a field name look secret (password, token, secret, authorization,
 * cookie; any case, anywhere in the name)? Such fields are logged as
 * "[redacted]". */
int host_log_is_secret_key(const char *key);

#endif
