/* info.h — the host.info module. */
#ifndef MOONKEEP_INFO_H
#define MOONKEEP_INFO_H

#include <lua.h>

/* Pushes host.info; upvalue 1 (optional) is the generation id. */
int host_info_open(lua_State *L);

#endif
