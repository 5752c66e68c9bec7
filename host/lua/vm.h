/* vm.h — script generations: one LuaJIT VM with the whole scripts/ tree
 * loaded and checked. Requests hold a reference on the generation they
 * started on, so an old generation lives until its last request ends. */
#ifndef MOONKEEP_VM_H
#define MOONKEEP_VM_H

#include <stddef.h>
#include <lua.h>

/* A coroutine that finished cleanly, kept for the next task (task.c). */
#define HOST_SPARE_COROUTINES 64
struct spare_coroutine {
    lua_State *co;
    int ref;               /* registry reference that keeps it alive */
};

/* A background job a generation lists in app.jobs (jobs.h). */
#define HOST_JOBS_MAX 8
#define HOST_JOB_NAME_MAX 32
struct host_job_spec {
    char name[HOST_JOB_NAME_MAX];
    double every_s;        /* seconds between the starts of two runs */
    int run_ref;           /* registry reference of the job's run function */
};

struct generation {
    lua_State *L;
    int handle_ref;        /* registry reference of app.handle */
    int njobs;
    struct host_job_spec jobs[HOST_JOBS_MAX];
    unsigned refs;         /* the worker's "current" pointer + live tasks */
    unsigned long id;      /* the snapshot's id (0 for `moonkeep check`) */
    char digest[65];       /* the snapshot's SHA-256, "" when unknown */
    int nspares;           /* lua_close frees them with the rest */
    struct spare_coroutine spares[HOST_SPARE_COROUTINES];
};

/* Builds a generation from `scripts_dir`: a fresh VM, the host modules in
 * package.preload, `require "app"`, app.handle checked, app.jobs read
 * (when present: a table of name = {every = seconds, run = function}),
 * app.self_check() run when present. `id` and `digest` (may be NULL) label it. Returns it
 * with one reference held by the caller, or NULL with the first error
 * (file:line: message) in err. */
struct generation *host_generation_load(const char *scripts_dir, unsigned long id, const char *digest,
                                        char *err, size_t errlen);

/* The job `name` of gen, or NULL when gen does not list it. */
const struct host_job_spec *host_generation_job(const struct generation *gen, const char *name);

void host_generation_ref(struct generation *gen);
/* Drops a reference; the last one closes the VM and frees the generation. */
void host_generation_unref(struct generation *gen);

/* The one door into Lua outside of tasks: calls the function below `nargs`
 * arguments under a traceback handler. Returns 0, or non-zero with the
 * traceback copied into err. The stack keeps `nres` results on success,
 * nothing on error. */
int host_vm_pcall(lua_State *L, int nargs, int nres, char *err, size_t errlen);

#endif
