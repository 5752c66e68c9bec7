/* info.h — the host.info module. */
#ifndef MOONKEEP_INFO_H
#define MOONKEEP_INFO_H

#include <lua.h>

/* Pushes host.info; upvalues 1 and 2 (optional): generation id, digest. */
int host_info_open(lua_State *L);

#endif
