/* info.h — the host.info module. */
#ifndef MOONKEEP_INFO_H
#define MOONKEEP_INFO_H

#include <lua.h>

/* Pushes host.info; upvalues 1 and 2 (optional): generation id, digest. */
int host_info_open(lua_State *L);

/* The master's status file (JSON: the active snapshot, the last refused
 * change), which info.scripts_status() reads; `path` must outlive the
 * process's VMs. Set before the workers fork, so they inherit it. */
void host_info_set_scripts_status(const char *path);

#endif
