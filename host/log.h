/* log.h — structured logging: one JSON object per line on stdout. */
#ifndef MOONKEEP_LOG_H
#define MOONKEEP_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the threshold ("debug", "info", "warn", "error") and the process role
 * written into every line ("master", "worker", "cli"). Call again after fork. */
void host_log_init(const char *level, const char *role);

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
/* Adds `key` with the Lua value at idx encoded as JSON (tables included). */
void host_log_lua(struct log_line *line, const char *key, lua_State *L, int idx);
/* Closes the line and writes it with one write(2). */
void host_log_end(struct log_line *line);

/* One-call form for messages without fields. */
void host_log(enum log_level level, const char *msg);

/* Pushes the host.log module: debug/info/warn/error(msg, fields?). */
int host_log_open(lua_State *L);

#endif
