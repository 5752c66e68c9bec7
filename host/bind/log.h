/* log.h — host.log: scripts' log lines, written by the log writer
 * (base/log.h) with the request id of the task that logs. */
#ifndef MOONKEEP_BIND_LOG_H
#define MOONKEEP_BIND_LOG_H

#include <lua.h>

/* Pushes the host.log module: debug/info/warn/error(msg, fields?). */
int host_log_open(lua_State *L);

/* A replacement for Lua's print, installed in every script generation
 * (HOST_GLOBALS): the arguments become the msg of an info line (with the
 * request id), so the stdout stream stays JSON lines. */
int host_log_print(lua_State *L);

#endif
