/* vm.c — building, checking and closing script generations. Owns each
 * generation's lua_State; it is closed when the last reference goes. */
#include "lua/vm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "base/log.h"
#include "lua/info.h"
#include "lua/modules.h"

static int traceback_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

int host_vm_pcall(lua_State *L, int nargs, int nres, char *err, size_t errlen)
{
    int base = lua_gettop(L) - nargs; /* the function's slot */
    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nres, base);
    if (rc != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "unknown error");
        lua_pop(L, 1);
    }
    lua_remove(L, base); /* the handler */
    return rc;
}

static void register_preloads(lua_State *L, const struct generation *gen)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (const struct host_module *m = host_modules; m->name; m++) {
        lua_pushcfunction(L, m->open);
        lua_setfield(L, -2, m->name);
    }
    lua_pushinteger(L, (lua_Integer)gen->id);
    lua_pushstring(L, gen->digest);
    lua_pushcclosure(L, host_info_open, 2);
    lua_setfield(L, -2, "host.info");
    lua_pop(L, 2);
}

static void set_package_path(lua_State *L, const char *dir)
{
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

/* `make coverage`: MOONKEEP_LUA_COVERAGE names a Lua file (the line counter
 * spec/support/coverage.lua) that runs in every new VM before app.lua, given
 * the VM's scripts folder. Unset in production. Returns 0 or -1 with err. */
static int load_coverage_hook(lua_State *L, const char *scripts_dir, char *err, size_t errlen)
{
    const char *hook = getenv("MOONKEEP_LUA_COVERAGE"); /* Flawfinder: ignore (a path the operator sets, only read) */
    if (hook == NULL || hook[0] == '\0') return 0;
    if (luaL_loadfile(L, hook) != 0) {
        snprintf(err, errlen, "MOONKEEP_LUA_COVERAGE: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    lua_pushstring(L, scripts_dir);
    return host_vm_pcall(L, 1, 0, err, errlen) == 0 ? 0 : -1;
}

/* Keeps the error itself (file:line: message; a syntax error from require
 * spans two lines) and drops the traceback below it. */
static void drop_traceback(char *s)
{
    char *tb = strstr(s, "\nstack traceback:");
    if (tb) *tb = '\0';
}

/* Reads app.jobs (the table at the top of L's stack, may be nil) into
 * gen->jobs. Every job is checked: a bad one refuses the generation, like
 * any script error. Stack balanced. Returns 0, or -1 with err. */
static int read_jobs(lua_State *L, struct generation *gen, const char *scripts_dir, char *err, size_t errlen)
{
    if (lua_isnil(L, -1)) return 0;
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s/app.lua: app.jobs must be a table of name = {every =, run =}", scripts_dir);
        return -1;
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) { /* key at -2, job at -1 */
        size_t len = 0;
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
        lua_getfield(L, -1, "every");
        lua_getfield(L, -2, "run");
        double every = lua_tonumber(L, -2);
        const char *bad = NULL;
        if (name == NULL || len == 0 || len >= HOST_JOB_NAME_MAX) bad = "a name of 1 to 31 characters";
        else if (gen->njobs == HOST_JOBS_MAX) bad = "at most 8 jobs";
        else if (lua_type(L, -2) != LUA_TNUMBER || !(every >= 0.05 && every <= 86400)) bad = "every in [0.05, 86400] seconds";
        else if (!lua_isfunction(L, -1)) bad = "a run function";
        if (bad) {
            snprintf(err, errlen, "%s/app.lua: app.jobs.%s: needs %s", scripts_dir, name ? name : "?", bad);
            lua_pop(L, 4);
            return -1;
        }
        struct host_job_spec *job = &gen->jobs[gen->njobs++];
        memcpy(job->name, name, len + 1);
        job->every_s = every;
        job->run_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops run */
        lua_pop(L, 2); /* every, the job; the key stays for lua_next */
    }
    return 0;
}

const struct host_job_spec *host_generation_job(const struct generation *gen, const char *name)
{
    for (int i = 0; i < gen->njobs; i++)
        if (strcmp(gen->jobs[i].name, name) == 0) return &gen->jobs[i];
    return NULL;
}

struct generation *host_generation_load(const char *scripts_dir, unsigned long id, const char *digest,
                                        char *err, size_t errlen)
{
    struct generation *gen = calloc(1, sizeof *gen);
    lua_State *L = luaL_newstate();
    if (gen == NULL || L == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    gen->id = id;
    snprintf(gen->digest, sizeof gen->digest, "%s", digest ? digest : "");
    luaL_openlibs(L);
    /* print would write plain text into the JSON log stream */
    for (const struct host_module *g = host_globals; g->name; g++) {
        lua_pushcfunction(L, g->open);
        lua_setglobal(L, g->name);
    }
    set_package_path(L, scripts_dir);
    register_preloads(L, gen);
    if (load_coverage_hook(L, scripts_dir, err, errlen) != 0) goto fail;

    lua_getglobal(L, "require");
    lua_pushliteral(L, "app");
    if (host_vm_pcall(L, 1, 1, err, errlen) != 0) {
        drop_traceback(err);
        goto fail;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s/app.lua: must return a table with handle(req)", scripts_dir);
        goto fail;
    }
    lua_getfield(L, -1, "handle");
    if (!lua_isfunction(L, -1)) {
        snprintf(err, errlen, "%s/app.lua: app.handle is not a function", scripts_dir);
        goto fail;
    }
    gen->handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "jobs");
    int jobs_rc = read_jobs(L, gen, scripts_dir, err, errlen);
    lua_pop(L, 1);
    if (jobs_rc != 0) goto fail;
    lua_getfield(L, -1, "self_check");
    if (lua_isfunction(L, -1)) {
        if (host_vm_pcall(L, 0, 2, err, errlen) != 0) {
            drop_traceback(err);
            goto fail;
        }
        if (!lua_toboolean(L, -2)) {
            snprintf(err, errlen, "self-check failed: %s",
                     lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no reason given)");
            goto fail;
        }
        lua_pop(L, 2);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* app */
    gen->L = L;
    gen->refs = 1;
    return gen;

fail:
    if (L) lua_close(L);
    free(gen);
    return NULL;
}

void host_generation_ref(struct generation *gen)
{
    gen->refs++;
}

void host_generation_unref(struct generation *gen)
{
    if (--gen->refs > 0) return;
    struct log_line *line = host_log_begin(LOG_DEBUG, "script generation closed");
    host_log_int(line, "generation", (int64_t)gen->id);
    host_log_end(line);
    lua_close(gen->L);
    free(gen);
}
