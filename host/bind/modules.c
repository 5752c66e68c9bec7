/* modules.c — the registries lua/modules.h declares: one entry per line of
 * HOST_BINDINGS and of HOST_GLOBALS (bind/bindings.h). Holds no state. */
#include "lua/modules.h"

#include "bind/bindings.h"

#define HOST_MODULE_ENTRY(id, open) {"host." #id, open},
#define HOST_GLOBAL_ENTRY(name, fn) {#name, fn},

const struct host_module host_modules[] = {
    HOST_BINDINGS(HOST_MODULE_ENTRY)
    {NULL, NULL},
};

const struct host_module host_globals[] = {
    HOST_GLOBALS(HOST_GLOBAL_ENTRY)
    {NULL, NULL},
};
