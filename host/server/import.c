/* import.c — `moonkeep import --from <libpq URL> [--dry-run]`
 * (docs/import.md). What an import means is scripts/tools/import.lua; this
 * file gives it what a request has: a script generation, a task on an
 * event loop with the db service (DATABASE_URL: the target) and the
 * password service, so the script checks, hashes and writes with the very
 * code and bindings the API uses. The source database's rows are its
 * arguments: they are read here with blocking libpq before the loop
 * starts, as migrate.c does (nothing else runs yet, and host.db has one
 * pool, the target's).
 *
 * Ownership: host_import_run makes everything and frees it on its single
 * exit (the generation, whose VM holds the source rows and the report; the
 * services; the event base; the source connection). */
#include "server/import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "base/log.h"
#include "bind/db.h"
#include "bind/password.h"
#include "lua/task.h"
#include "lua/vm.h"
#include "server/migrate.h"

static const char import_usage[] =
    "usage: moonkeep import --from <libpq URL of the Flask database> [--dry-run]\n";

struct import_run {
    struct event_base *base;
    struct host_task task;
    int status;        /* the exit status: 1 until the script says otherwise */
    int report_ref;    /* registry reference of the script's report, or LUA_NOREF */
};

static void log_failure(const char *msg, const char *detail)
{
    struct log_line *line = host_log_begin(LOG_ERROR, msg);
    host_log_str(line, "error", detail);
    host_log_end(line);
}

/* The task returned (report, status) or raised: keeps the status, and the
 * report in the VM's registry (written out once the loop has stopped),
 * releases the task and stops the loop. */
static void import_done(struct host_task *task, int status, const char *traceback)
{
    struct import_run *run = task->owner;
    lua_State *co = task->co;
    if (status != 0) {
        log_failure("import failed", traceback);
    } else if (lua_type(co, 1) != LUA_TSTRING || lua_type(co, 2) != LUA_TNUMBER) {
        log_failure("import failed", "tools/import.lua's run returned no report and status");
    } else {
        run->status = (int)lua_tointeger(co, 2);
        lua_pushvalue(co, 1);
        run->report_ref = luaL_ref(co, LUA_REGISTRYINDEX); /* pops the copy */
    }
    host_task_release(task);
    event_base_loopbreak(run->base);
}

/* Pushes the rows of `res` as a list of {column = text or cjson.null}.
 * Returns 0 with the list pushed (stack +1), or -1 (stack unchanged) when
 * the stack cannot grow. */
static int push_rows(lua_State *L, const PGresult *res)
{
    int nrows = PQntuples(res), ncols = PQnfields(res);
    if (!lua_checkstack(L, 4)) return -1;
    lua_createtable(L, nrows, 0);
    for (int r = 0; r < nrows; r++) {
        lua_createtable(L, 0, ncols);
        for (int c = 0; c < ncols; c++) {
            if (PQgetisnull(res, r, c)) lua_pushlightuserdata(L, NULL); /* cjson.null */
            else lua_pushlstring(L, PQgetvalue(res, r, c), (size_t)PQgetlength(res, r, c));
            lua_setfield(L, -2, PQfname(res, c));
        }
        lua_rawseti(L, -2, r + 1);
    }
    return 0;
}

/* Pushes source = {<name> = rows, ...}: for each {name, sql} of the
 * module's SOURCES (the module table at `module_idx`), the rows of `sql`
 * on `src`. The statements run in one read-only repeatable-read
 * transaction, so every table comes from one snapshot. Returns 0 with the
 * table pushed (stack +1), or -1 after logging why (stack unchanged). */
static int push_source(lua_State *L, int module_idx, PGconn *src)
{
    int top = lua_gettop(L);
    PGresult *res = PQexec(src, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_failure("cannot read the source database", PQresultErrorMessage(res));
        goto fail;
    }
    PQclear(res);
    res = NULL;
    lua_newtable(L);                          /* source */
    lua_getfield(L, module_idx, "SOURCES");   /* source SOURCES */
    if (!lua_istable(L, -1)) {
        log_failure("cannot read the source database", "tools/import.lua has no SOURCES list");
        goto fail;
    }
    for (int i = 1;; i++) {
        lua_rawgeti(L, top + 2, i);           /* source SOURCES spec */
        if (!lua_istable(L, -1)) break;
        lua_rawgeti(L, -1, 1);                /* source SOURCES spec name */
        lua_rawgeti(L, -2, 2);                /* source SOURCES spec name sql */
        const char *name = lua_tostring(L, -2), *sql = lua_tostring(L, -1);
        if (name == NULL || sql == NULL) {
            log_failure("cannot read the source database", "a SOURCES entry is not {name, sql}");
            goto fail;
        }
        res = PQexecParams(src, sql, 0, NULL, NULL, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            struct log_line *line = host_log_begin(LOG_ERROR, "cannot read the source database");
            host_log_str(line, "table", name);
            host_log_str(line, "error", PQresultErrorMessage(res));
            host_log_end(line);
            goto fail;
        }
        if (push_rows(L, res) != 0) {         /* source SOURCES spec name sql rows */
            log_failure("cannot read the source database", "out of memory");
            goto fail;
        }
        PQclear(res);
        res = NULL;
        lua_setfield(L, top + 1, name);       /* source[name] = rows (name stays on the stack) */
        lua_pop(L, 3);                        /* source SOURCES */
    }
    lua_settop(L, top + 1);                   /* source */
    PQclear(PQexec(src, "COMMIT"));
    return 0;

fail:
    PQclear(res);
    lua_settop(L, top);
    return -1;
}

/* Writes all of p to fd. Returns 0, or -1 (stdout closed, disk full). */
static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* "import-" and 16 hex digits: the request id of the run's log lines and
 * the request_id of its audit events. */
static void make_run_id(char *out, size_t size)
{
    unsigned char raw[8];
    char hex[17];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    snprintf(out, size, "import-%s", hex);
}

/* Loads tools/import.lua in `gen` and reads the source: on success, sets
 * *run_ref to the registry reference of its run function and *source_ref
 * to the source table's, and returns 0; else -1 after logging why. The
 * references go with the VM. Stack: balanced. */
static int prepare(struct generation *gen, const char *from, int *run_ref, int *source_ref)
{
    lua_State *L = gen->L;
    int top = lua_gettop(L);
    int rc = -1;
    char err[2048];
    PGconn *src = NULL;

    lua_getglobal(L, "require");
    lua_pushliteral(L, "tools.import");
    if (host_vm_pcall(L, 1, 1, err, sizeof err) != 0) {   /* module */
        log_failure("cannot load tools/import.lua", err);
        goto done;
    }
    lua_getfield(L, top + 1, "run");                       /* module run */
    if (!lua_isfunction(L, -1)) {
        log_failure("cannot load tools/import.lua", "it has no run function");
        goto done;
    }
    *run_ref = luaL_ref(L, LUA_REGISTRYINDEX);             /* module */
    src = PQconnectdb(from);
    if (PQstatus(src) != CONNECTION_OK) {
        log_failure("cannot connect to the source database", PQerrorMessage(src));
        goto done;
    }
    if (push_source(L, top + 1, src) != 0) goto done;      /* module source */
    *source_ref = luaL_ref(L, LUA_REGISTRYINDEX);          /* module */
    rc = 0;

done:
    if (src) PQfinish(src);
    lua_settop(L, top);
    return rc;
}

int host_import_run(const struct config *cfg, int argc, char **argv)
{
    const char *from = NULL;
    int dry_run = 0, bad = 0;
    int run_ref = LUA_NOREF, source_ref = LUA_NOREF;
    int report_fd = -1;
    struct generation *gen = NULL;
    struct import_run run;
    char err[2048];

    memset(&run, 0, sizeof run);
    run.status = 1;
    run.report_ref = LUA_NOREF;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--dry-run")) dry_run = 1;
        else if (!strcmp(argv[i], "--from") && i + 1 < argc) from = argv[++i];
        else if (!strncmp(argv[i], "--from=", 7)) from = argv[i] + 7;
        else bad = 1;
    }
    if (bad || from == NULL || from[0] == '\0') {
        fputs(import_usage, stderr);
        return 2;
    }
    /* The report is all that goes to stdout; the log, which the host
     * writes to descriptor 1, goes to stderr for this command. */
    fflush(stdout);
    report_fd = dup(STDOUT_FILENO);
    if (report_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        perror("moonkeep import");
        if (report_fd >= 0) close(report_fd);
        return 1;
    }

    if (cfg->migrate_on_start && host_migrate(cfg, 30) != 0) goto done;
    gen = host_generation_load(cfg->scripts_dir, 0, NULL, err, sizeof err);
    if (gen == NULL) {
        log_failure("cannot load the scripts", err);
        goto done;
    }
    if (prepare(gen, from, &run_ref, &source_ref) != 0) goto done;

    run.base = event_base_new();
    if (run.base == NULL || host_password_init(run.base) != 0 || host_db_init(run.base) != 0) {
        log_failure("import cannot start", "event loop, password hashing or database pool");
        goto done;
    }
    if (host_task_start(&run.task, gen, run_ref, import_done, &run) != 0) goto done;
    make_run_id(run.task.request_id, sizeof run.task.request_id);
    lua_State *co = host_task_thread(&run.task);
    lua_rawgeti(co, LUA_REGISTRYINDEX, source_ref);        /* run source */
    lua_createtable(co, 0, 2);                             /* run source options */
    lua_pushboolean(co, dry_run);
    lua_setfield(co, -2, "dry_run");
    lua_pushstring(co, run.task.request_id);
    lua_setfield(co, -2, "run_id");
    /* import_done releases the task and stops the loop */
    if (host_task_resume(&run.task, 2)) event_base_dispatch(run.base);
    if (run.task.gen != NULL) { /* the loop stopped with the task still waiting */
        log_failure("import failed", "the event loop stopped before the import finished");
        host_task_abort(&run.task);
        host_task_release(&run.task);
    }

done:
    if (gen && run.report_ref != LUA_NOREF) {
        size_t len = 0;
        lua_rawgeti(gen->L, LUA_REGISTRYINDEX, run.report_ref);   /* report */
        const char *report = lua_tolstring(gen->L, -1, &len);
        if (write_all(report_fd, report, len) != 0) run.status = 1;
        lua_pop(gen->L, 1);
    }
    if (gen) host_generation_unref(gen);
    host_db_shutdown();
    host_password_shutdown();
    if (run.base) event_base_free(run.base);
    (void)dup2(report_fd, STDOUT_FILENO); /* the process ends next: nothing to do if it fails */
    close(report_fd);
    return run.status;
}
