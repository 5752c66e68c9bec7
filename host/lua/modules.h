/* modules.h — the registry of native modules: every script generation gets
 * each one in package.preload under its name. The runtime (vm.c) walks the
 * table; the bindings define it (bind/modules.c), as nginx's core walks the
 * ngx_modules[] its build lists, so the runtime includes no binding. */
#ifndef MOONKEEP_MODULES_H
#define MOONKEEP_MODULES_H

#include <lua.h>

struct host_module {
    const char *name;       /* "host.db" */
    lua_CFunction open;     /* pushes the module table */
};

/* Every module, ending with {NULL, NULL}. */
extern const struct host_module host_modules[];

/* Globals set in every generation in place of Lua's own (print, which would
 * write plain text into the JSON log), ending with {NULL, NULL}. `name` is
 * the global's name; `open` the C function it becomes. */
extern const struct host_module host_globals[];

#endif
