/* task.c — host tasks: coroutines the host resumes from event callbacks.
 * A task owns its coroutine (through a registry reference) and one reference
 * on its generation; the map thread -> task lives in the generation's
 * registry so bindings can find the task of the coroutine that called them.
 *
 * A coroutine whose function returned (status 0, nothing left on its
 * stack) is as good as new: Lua resumes it with the next function pushed.
 * Released tasks leave such coroutines in their generation's spares, and
 * new tasks take them from there, so a request does not allocate a Lua
 * thread (and the collector does not free one). A coroutine that raised or
 * was abandoned while suspended is dropped. */
#include "lua/task.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/log.h"
#include "lua/vm.h"

/* Registry key (its address) of the table { [thread] = lightuserdata task }. */
static const char task_map_key = 0;

/* Pushes the map, creating it when `create`; pushes nil when it does not
 * exist and is not to be created. */
static void push_task_map_if(lua_State *L, int create)
{
    lua_pushlightuserdata(L, (void *)&task_map_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1) && create) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushlightuserdata(L, (void *)&task_map_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
}

static void push_task_map(lua_State *L)
{
    push_task_map_if(L, 1);
}

int host_task_start(struct host_task *task, struct generation *gen, int fn_ref,
                    host_task_done_fn done, void *owner)
{
    lua_State *L = gen->L;
    int top = lua_gettop(L);
    task->gen = gen;
    task->cancel = NULL;
    task->op = NULL;
    task->done = done;
    task->owner = owner;
    if (gen->nspares > 0) {
        struct spare_coroutine *spare = &gen->spares[--gen->nspares];
        task->co = spare->co;
        task->co_ref = spare->ref;
        lua_rawgeti(L, LUA_REGISTRYINDEX, task->co_ref);
    } else {
        task->co = lua_newthread(L);
        lua_pushvalue(L, -1);
        task->co_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* keeps the thread alive */
    }
    /* map[thread] = task */
    push_task_map(L);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, task);
    lua_rawset(L, -3);
    host_generation_ref(gen);
    lua_rawgeti(task->co, LUA_REGISTRYINDEX, fn_ref);
    lua_settop(L, top);
    return 0;
}

int host_task_resume(struct host_task *task, int nargs)
{
    task->cancel = NULL;
    task->op = NULL;
    int status = lua_resume(task->co, nargs);
    if (status == LUA_YIELD) {
        if (task->cancel != NULL) return 1; /* suspended in a binding: wait */
        /* A bare coroutine.yield() from a script: nothing would ever resume
         * it, so it is an error rather than a hung request. */
        lua_settop(task->co, 0);
        lua_pushliteral(task->co, "coroutine.yield() called outside a host binding");
        task->done(task, LUA_ERRRUN, "coroutine.yield() called outside a host binding");
        return 0;
    }
    if (status == 0) {
        task->done(task, 0, NULL);
        return 0;
    }
    /* It raised while a binding's work was pending (a yield refused at a C
     * call boundary, had a binding not checked host_task_waitable): that
     * work must never resume this task. */
    host_task_abort(task);
    /* The coroutine's stack is kept after an error, so it can be walked.
     * The copy outlives the VM, which `done` may close. */
    lua_State *L = task->gen->L;
    const char *msg = lua_tostring(task->co, -1);
    luaL_traceback(L, task->co, msg ? msg : "(error object is not a string)", 0);
    char *traceback = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    task->done(task, status, traceback ? traceback : "out of memory");
    free(traceback);
    return 0;
}

struct host_task *host_task_of(lua_State *L)
{
    struct host_task *task = NULL;
    push_task_map_if(L, 0);
    if (!lua_isnil(L, -1)) {
        lua_pushthread(L);
        lua_rawget(L, -2);
        task = lua_touserdata(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return task;
}

struct host_task *host_task_check(lua_State *L)
{
    struct host_task *task = host_task_of(L);
    if (task == NULL) luaL_error(L, "this function can only be called while the host runs a request");
    return task;
}

struct host_task *host_task_waitable(lua_State *L, const char *what)
{
    struct host_task *task = host_task_of(L);
    if (task == NULL)
        luaL_error(L, "%s can only wait in the request's own coroutine (not in the main chunk, nor in a "
                      "coroutine the script made)", what);
    else if (!lua_isyieldable(L))
        luaL_error(L, "%s cannot wait here (inside a metamethod, a table.sort comparator, an iterator or "
                      "another C function)", what);
    return task;
}

int host_task_runs_here(lua_State *L)
{
    push_task_map_if(L, 0);
    int runs = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return runs;
}

int host_task_suspend(struct host_task *task, host_task_cancel_fn cancel, void *op)
{
    task->cancel = cancel;
    task->op = op;
    return lua_yield(task->co, 0);
}

lua_State *host_task_thread(struct host_task *task)
{
    return task->co;
}

void host_task_abort(struct host_task *task)
{
    host_task_cancel_fn cancel = task->cancel;
    void *op = task->op;
    task->cancel = NULL;
    task->op = NULL;
    if (cancel) cancel(op);
}

void host_task_release(struct host_task *task)
{
    if (task->gen == NULL) return;
    lua_State *L = task->gen->L;
    push_task_map(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, task->co_ref);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    struct generation *gen = task->gen;
    if (lua_status(task->co) == 0 && gen->nspares < HOST_SPARE_COROUTINES) {
        lua_settop(task->co, 0);
        gen->spares[gen->nspares].co = task->co;
        gen->spares[gen->nspares].ref = task->co_ref;
        gen->nspares++;
    } else {
        luaL_unref(L, LUA_REGISTRYINDEX, task->co_ref);
    }
    task->co = NULL;
    task->gen = NULL;
    host_generation_unref(gen);
}

const char *host_task_request_id(lua_State *L)
{
    struct host_task *task = host_task_of(L);
    return (task && task->request_id[0]) ? task->request_id : NULL;
}
