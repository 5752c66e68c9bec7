/* log.h — host.log: scripts' log lines, written by the log writer
 * (base/log.h) with the request id of the task that logs. */
#ifndef MOONKEEP_BIND_LOG_H
#define MOONKEEP_BIND_LOG_H

#include <lua.h>

/* Pushes the host.log module: debug/info/warn/error(msg, fields?). */
int host_log_open(lua_State *L);

#endif
