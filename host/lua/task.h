/* task.h — a Lua coroutine run by the host, and the protocol bindings use to
 * suspend it while slow work (a query, a hash, a mail) happens off the loop.
 *
 * A binding that waits does, from the coroutine's own C function:
 *
 *     struct host_task *task = host_task_waitable(L, "db.query"); // raises unless it can wait
 *     ... start the work, remember `task` ...
 *     return host_task_suspend(task, cancel_fn, op);  // == lua_yield(L, 0)
 *
 * and later, from an event-loop callback (never from inside the binding
 * call itself: LuaJIT has no lua_yieldk, so the C function is not
 * re-entered; results travel as the values of the yield):
 *
 *     lua_State *co = host_task_thread(task);
 *     lua_pushxxx(co, ...);                           // the binding's results
 *     host_task_resume(task, nresults);
 *
 * If the task is aborted (client gone, shutdown), `cancel_fn(op)` is called
 * instead, and the binding must then never resume the task. `cancel_fn`
 * is required (it is how the host knows the yield came from a binding). */
#ifndef MOONKEEP_TASK_H
#define MOONKEEP_TASK_H

#include <lua.h>

struct generation;
struct host_task;

#define HOST_TASK_ROUTE_MAX 64

typedef void (*host_task_cancel_fn)(void *op);
/* Called once when the coroutine returns or raises. On success the
 * coroutine's results are on its stack; on error (status != 0) the message
 * is there and `traceback` (owned by the task, valid during the call) holds
 * the formatted traceback. */
typedef void (*host_task_done_fn)(struct host_task *task, int status, const char *traceback);

struct host_task {
    struct generation *gen;     /* referenced while the task lives */
    lua_State *co;
    int co_ref;                 /* keeps the coroutine alive in gen's registry */
    host_task_cancel_fn cancel; /* set while suspended in a binding */
    void *op;
    host_task_done_fn done;
    void *owner;                /* the request (or other owner) of the task */
    char request_id[129];
    /* The route pattern the script matched ("/users/{id}"), set through
     * host.metrics.route; "" when none matched. Labels the request's
     * metrics. The owner zeroes it (with the rest) before the task starts. */
    char route[HOST_TASK_ROUTE_MAX];
};

/* Creates the coroutine in `gen` and pushes the function stored at registry
 * reference `fn_ref` on it; the caller pushes the arguments on task->co and
 * calls host_task_resume(task, nargs). Returns 0 or -1 (out of memory). */
int host_task_start(struct host_task *task, struct generation *gen, int fn_ref,
                    host_task_done_fn done, void *owner);

/* Runs the coroutine until it suspends in a binding (returns 1) or finishes
 * (returns 0, after `done` ran: the task may be freed by then). */
int host_task_resume(struct host_task *task, int nargs);

/* For bindings: the task the coroutine L runs, or a Lua error when L is not
 * a task (the main chunk, a plain coroutine.create, a spec without a host). */
struct host_task *host_task_check(lua_State *L);
/* The same without raising: NULL when L is not a task. */
struct host_task *host_task_of(lua_State *L);
/* For bindings that wait: the task L runs, when it can wait at this point,
 * else a Lua error naming `what`: outside a task (the main chunk, a
 * coroutine the script made itself: its yields would go to the script, not
 * to the host) or where the coroutine cannot yield (inside a metamethod, a
 * table.sort comparator, an iterator: a C call boundary). Every waiting
 * binding calls this before it starts any work, so no work outlives a task
 * that could not wait for it. */
struct host_task *host_task_waitable(lua_State *L, const char *what);
/* True where a host runs tasks on L's VM (a worker, once it has served a
 * request); false in the spec module host.so, where a binding may do its
 * work at once instead of waiting. */
int host_task_runs_here(lua_State *L);
int host_task_suspend(struct host_task *task, host_task_cancel_fn cancel, void *op);
lua_State *host_task_thread(struct host_task *task);

/* Aborts a suspended task: cancels its pending work; the coroutine is never
 * resumed. The owner still calls host_task_release. */
void host_task_abort(struct host_task *task);

/* Drops the coroutine and the generation reference. Idempotent. */
void host_task_release(struct host_task *task);

/* The request id of the task that L runs, or NULL. */
const char *host_task_request_id(lua_State *L);

#endif
