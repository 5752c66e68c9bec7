/* db.c — host.db: everything about PostgreSQL in a worker.
 *
 * Owns, per worker process (C statics: they hold no Lua references, so the
 * script generations alive in one worker share them):
 *   - the pool: DB_POOL_SIZE libpq connections, each driven by libevent
 *     events on its socket (PQconnectPoll, PQflush, PQconsumeInput) and
 *     re-made with backoff when it breaks;
 *   - the FIFO of script calls waiting for a connection (DB_QUEUE_MAX long,
 *     DB_QUEUE_TIMEOUT_MS at most);
 *   - the ops: one struct db_op per script call that waits (a query, BEGIN,
 *     COMMIT/ROLLBACK, a readiness ping). The binding mallocs it; this file
 *     frees it just before resuming its task, when the task is cancelled, or
 *     (cancelled while the server works on it) once its results are drained;
 *   - per connection: the prepared-statement cache and the query cancel in
 *     flight (a short-lived thread running the blocking PQcancel).
 * Per VM, in each VM's registry (keys at static addresses, never C globals):
 * cjson.decode, the result pusher, the metatables "host.db.tx" and
 * "host.db.error". A transaction handle (struct db_tx) is Lua userdata; the
 * connection it pins points back at it, and its __gc breaks that link.
 *
 * Resuming: a script call never resumes its coroutine from inside the call.
 * Outcomes travel through the op's event (op_event_cb -> op_resume), which
 * fires on a later turn of the loop, so pool code never runs Lua in the
 * middle of its own bookkeeping. */
#include "bind/db.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "base/config.h"
#include "base/log.h"
#include "lua/task.h"
#include "lua/vm.h"

/* Type OIDs (pg_type.dat): fixed across PostgreSQL versions. */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_TIMESTAMPTZ 1184
#define OID_JSONB 3802

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A server silent for statement_timeout plus this long is taken as gone
 * (a network partition gives no RST): the connection is dropped. */
#define ANSWER_GRACE_MS 5000
/* Prepared statements per connection. When the cache is full the next
 * idle moment runs DEALLOCATE ALL and it starts over (so dynamic SQL cannot
 * grow the server's memory without bound). Slots: a power of two, twice
 * the entries, so open addressing always finds a free slot. */
#define STMT_CACHE_MAX 256
#define STMT_CACHE_SLOTS 512
#define MAX_PARAMS 65535
#define MESSAGE_MAX 512

#define TX_MT "host.db.tx"
#define ERROR_MT "host.db.error"

/* ---- types ---------------------------------------------------------------- */

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_READY };
enum conn_chore { CHORE_NONE, CHORE_ROLLBACK, CHORE_DEALLOCATE };
enum op_kind { OP_QUERY, OP_BEGIN, OP_COMMIT, OP_ROLLBACK, OP_PING };
enum op_phase { OP_NEW, OP_QUEUED, OP_PREPARING, OP_RUNNING, OP_DONE };
enum tx_state { TX_NEW, TX_BEGINNING, TX_OPEN, TX_FINISHING, TX_DONE, TX_LOST };

/* A failure decided on this side (no server answer to report). */
struct db_failure {
    const char *code;           /* NULL: none; else a static string */
    char sqlstate[6];           /* "" when there is none */
    char message[MESSAGE_MAX];
};

struct db_conn;

/* A transaction handle: Lua userdata (TX_MT), owned by its VM. */
struct db_tx {
    struct db_conn *conn;       /* the pinned connection, while TX_OPEN/TX_FINISHING */
    enum tx_state state;
    const void *task;           /* the task that began it: compared, never followed */
};

struct db_op {
    TAILQ_ENTRY(db_op) queue_link;  /* in pool.waiters while OP_QUEUED */
    TAILQ_ENTRY(db_op) all_link;    /* in pool.ops while it exists */
    enum op_kind kind;
    enum op_phase phase;
    struct host_task *task;     /* NULL once cancelled: then nobody is resumed */
    struct db_tx *tx;           /* the transaction concerned; NULL once cancelled */
    struct db_conn *conn;       /* while OP_PREPARING / OP_RUNNING */
    struct event *ev;           /* queue timeout, answer deadline, deferred resume; owned */
    PGresult *res;              /* the server's answer; owned */
    struct db_failure fail;     /* when fail.code is set it wins over res */
    int prepared;               /* executed as a cached prepared statement */
    uint64_t hash;              /* of sql: names the prepared statement */
    char name[24];
    /* OP_QUERY: the text lives in the op's own allocation, after the struct */
    const char *sql;
    int nparams;
    const char **values;
};

struct db_stmt {
    uint64_t hash;
    char *sql;                  /* owned; NULL marks an empty slot */
};

struct db_conn {
    int index;
    enum conn_state state;
    PGconn *pg;                 /* owned; NULL when CONN_DOWN */
    evutil_socket_t fd;         /* the socket rd_ev/wr_ev were made for */
    struct event *rd_ev;        /* owned; remade when the socket changes */
    struct event *wr_ev;        /* owned; pending while a flush is unfinished */
    struct event *timer;        /* owned for the pool's life: backoff, connect deadline */
    int backoff_ms;             /* the next reconnect delay */
    int flushing;
    struct db_op *op;           /* the op running here */
    enum conn_chore chore;      /* or a cleanup command of our own, with no op */
    int chore_failed;
    struct db_tx *tx;           /* the transaction pinning it (Lua memory, see l_db_tx_gc) */
    int stale_statements;       /* DEALLOCATE ALL at the next idle moment */
    struct db_stmt *stmts;      /* STMT_CACHE_SLOTS; owned */
    int nstmts;
    int cancel_fd;              /* -1, or our end of the cancel thread's socketpair */
    struct event *cancel_ev;    /* owned; fires when the cancel thread is done */
};

TAILQ_HEAD(op_list, db_op);

/* The worker's pool. Zero (running == 0) until host_db_init, and in
 * host.so, where init never runs. */
static struct {
    int running;
    struct event_base *base;
    PQconninfoOption *parsed;   /* owned; keywords/values point into it */
    char *options;              /* owned: the merged "options" value */
    const char **keywords;      /* owned arrays, NULL-terminated */
    const char **values;
    long size, queue_max, queue_timeout_ms, statement_timeout_ms, connect_timeout_ms;
    struct db_conn *conns;      /* owned, `size` of them */
    struct op_list waiters;     /* FIFO of OP_QUEUED ops */
    long nwaiters;
    struct op_list ops;         /* every op, for shutdown */
    struct event *kick;         /* owned: deferred settle of every connection */
    int outage;                 /* no connection could be made: logged once */
    char last_error[MESSAGE_MAX];
} pool;

/* Registry keys (their addresses) of per-VM values. */
static const char json_decode_key = 0;
static const char push_outcome_key = 0;

static void conn_lost(struct db_conn *c, const char *code, const char *why);
static void conn_settle(struct db_conn *c);
static void conn_cancel_query(struct db_conn *c);
static void conn_start_op(struct db_conn *c, struct db_op *op);
static void pool_dispatch(void);
static void pool_check_outage(void);
static void pool_kick(void);
static void op_event_cb(evutil_socket_t fd, short what, void *arg);
static void conn_io_cb(evutil_socket_t fd, short what, void *arg);

/* ---- small helpers ---------------------------------------------------------- */

/* Copies a libpq message on one line: newlines and tabs become spaces,
 * trailing blanks go. */
static void copy_message(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; src && *src && n + 1 < cap; src++) {
        char ch = *src;
        if (ch == '\n' || ch == '\t' || ch == '\r') ch = ' ';
        if (ch == ' ' && (n == 0 || dst[n - 1] == ' ')) continue;
        dst[n++] = ch;
    }
    while (n > 0 && dst[n - 1] == ' ') n--;
    dst[n] = '\0';
}

static void fail_set(struct db_failure *f, const char *code, const char *sqlstate, const char *fmt, ...)
{
    char buf[MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    /* Flawfinder: ignore (fmt is always a literal at the call sites; checked by the format attribute) */
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    f->code = code;
    snprintf(f->sqlstate, sizeof f->sqlstate, "%s", sqlstate ? sqlstate : "");
    copy_message(f->message, sizeof f->message, buf);
}

/* The error code scripts see for a server (or libpq) error. */
static const char *code_for_sqlstate(const char *s)
{
    if (s == NULL || strlen(s) != 5) return "unavailable"; /* libpq's own: no answer */
    if (!strcmp(s, "57014")) return "timeout";              /* statement_timeout */
    if (!strncmp(s, "08", 2) || !strcmp(s, "57P01") || !strcmp(s, "57P02") ||
        !strcmp(s, "57P03") || !strcmp(s, "53300"))
        return "unavailable";
    return "query";
}

static int result_ok(const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

static const char *result_sqlstate(const PGresult *res)
{
    return res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
}

/* Query parameter text of a Lua number: integers without a fraction,
 * anything else with round-trip precision. buf: 32 bytes. */
static int format_number(lua_Number n, char *buf)
{
    if (n == floor(n) && n >= -9223372036854775808.0 && n < 9223372036854775808.0)
        return snprintf(buf, 32, "%lld", (long long)n);
    return snprintf(buf, 32, "%.17g", (double)n);
}

/* "2026-12-01 13:45:00.123456+00" (DateStyle ISO, TimeZone UTC) becomes
 * "2026-12-01T13:45:00.123456Z"; another offset becomes "+05:30" style.
 * What has no RFC 3339 form (infinity, BC dates) passes through. Returns the
 * length written to out (cap >= 64). */
static size_t format_timestamptz(const char *v, size_t len, char *out, size_t cap)
{
    const char *space = memchr(v, ' ', len);
    size_t sign = len;
    if (space == NULL || len + 4 > cap || (len > 3 && !memcmp(v + len - 3, " BC", 3))) goto as_is;
    while (sign > (size_t)(space - v) + 1 && v[sign - 1] != '+' && v[sign - 1] != '-') sign--;
    if (sign <= (size_t)(space - v) + 1) goto as_is;
    sign--; /* at the offset's sign */
    memcpy(out, v, sign);
    out[space - v] = 'T';
    size_t tz = len - sign;
    if (tz == 3 && v[sign + 1] == '0' && v[sign + 2] == '0') {
        out[sign] = 'Z';
        return sign + 1;
    }
    memcpy(out + sign, v + sign, tz);
    if (tz == 3) {
        memcpy(out + sign + 3, ":00", 3);
        return sign + 6;
    }
    return len;
as_is:
    if (len > cap) len = cap;
    memcpy(out, v, len);
    return len;
}

/* ---- prepared-statement cache (per connection) ------------------------------ */

static uint64_t sql_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The slot of `sql` (*found = 1) or the free slot where it would go
 * (*found = 0); -1 when another text has the same hash (then it runs
 * unprepared). */
static int stmt_find(struct db_conn *c, uint64_t hash, const char *sql, int *found)
{
    const size_t mask = STMT_CACHE_SLOTS - 1;
    size_t i = (size_t)hash & mask;
    for (size_t n = 0; n < STMT_CACHE_SLOTS; n++, i = (i + 1) & mask) {
        struct db_stmt *s = &c->stmts[i];
        if (s->sql == NULL) {
            *found = 0;
            return (int)i;
        }
        if (s->hash == hash) {
            *found = strcmp(s->sql, sql) == 0;
            return *found ? (int)i : -1;
        }
    }
    return -1;
}

/* Remembers that `sql` is prepared on c. Returns 0, or -1 (out of memory:
 * the caller flushes the server side too, so both agree again). */
static int stmt_add(struct db_conn *c, uint64_t hash, const char *sql)
{
    int found;
    int slot = stmt_find(c, hash, sql, &found);
    if (slot < 0) return -1;
    if (found) return 0;
    char *copy = strdup(sql);
    if (copy == NULL) return -1;
    c->stmts[slot].hash = hash;
    c->stmts[slot].sql = copy;
    c->nstmts++;
    return 0;
}

static void stmt_clear(struct db_conn *c)
{
    if (c->stmts == NULL) return;
    for (size_t i = 0; i < STMT_CACHE_SLOTS; i++) {
        free(c->stmts[i].sql);
        c->stmts[i].sql = NULL;
    }
    c->nstmts = 0;
}

/* ---- ops ---------------------------------------------------------------------- */

/* A new op for `task`, with `extra` bytes after the struct for the query
 * text. Owned by this file from here on (see the header). NULL when out of
 * memory. */
static struct db_op *op_new(enum op_kind kind, struct host_task *task, size_t extra)
{
    struct db_op *op = calloc(1, sizeof *op + extra);
    if (op == NULL) return NULL;
    op->ev = event_new(pool.base, -1, 0, op_event_cb, op);
    if (op->ev == NULL) {
        free(op);
        return NULL;
    }
    op->kind = kind;
    op->phase = OP_NEW;
    op->task = task;
    TAILQ_INSERT_TAIL(&pool.ops, op, all_link);
    return op;
}

/* Frees the op; the caller has taken it off the queue and its connection. */
static void op_free(struct db_op *op)
{
    TAILQ_REMOVE(&pool.ops, op, all_link);
    event_free(op->ev);
    PQclear(op->res);
    free(op);
}

static void op_dequeue(struct db_op *op)
{
    TAILQ_REMOVE(&pool.waiters, op, queue_link);
    pool.nwaiters--;
    event_del(op->ev);
}

/* The outcome is known (op->res or op->fail) and the op is off its
 * connection and the queue: resume its task on the next turn of the loop,
 * or free it when nobody waits any more. */
static void op_finish(struct db_op *op)
{
    op->phase = OP_DONE;
    op->conn = NULL;
    if (op->task == NULL) {
        op_free(op);
        return;
    }
    event_del(op->ev);
    event_active(op->ev, EV_TIMEOUT, 1);
}

/* A BEGIN that did not get its connection leaves the handle finished. */
static void op_settle_tx(struct db_op *op)
{
    if (op->tx && op->kind == OP_BEGIN && op->tx->state == TX_BEGINNING) op->tx->state = TX_DONE;
}

/* Unpins the handle's connection; the pool rolls it back before reuse. */
static void tx_release(struct db_tx *h)
{
    if (h->conn) {
        h->conn->tx = NULL;
        h->conn = NULL;
        pool_kick();
    }
    h->state = TX_DONE;
}

/* ---- results into Lua ------------------------------------------------------------ */

/* Stack: +2 (nil, err), with err = {code, message, sqlstate?}. */
static int push_failure(lua_State *L, const struct db_failure *f)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, f->code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, f->message);
    lua_setfield(L, -2, "message");
    if (f->sqlstate[0]) {
        lua_pushstring(L, f->sqlstate);
        lua_setfield(L, -2, "sqlstate");
    }
    luaL_getmetatable(L, ERROR_MT);
    lua_setmetatable(L, -2);
    return 2;
}

static void set_error_field(lua_State *L, const PGresult *res, int field, const char *name)
{
    const char *v = PQresultErrorField(res, field);
    if (v == NULL) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, name);
}

/* Stack: +2 (nil, err) for an error result of the server (or of libpq). */
static int push_server_error(lua_State *L, const PGresult *res)
{
    struct db_failure f;
    const char *sqlstate = result_sqlstate(res);
    if (res == NULL) {
        fail_set(&f, "unavailable", NULL, "no answer from the database");
        return push_failure(L, &f);
    }
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    fail_set(&f, code_for_sqlstate(sqlstate), sqlstate, "%s", primary ? primary : PQresultErrorMessage(res));
    push_failure(L, &f);
    set_error_field(L, res, PG_DIAG_MESSAGE_DETAIL, "detail");
    set_error_field(L, res, PG_DIAG_MESSAGE_HINT, "hint");
    set_error_field(L, res, PG_DIAG_CONSTRAINT_NAME, "constraint");
    set_error_field(L, res, PG_DIAG_SCHEMA_NAME, "schema");
    set_error_field(L, res, PG_DIAG_TABLE_NAME, "table");
    set_error_field(L, res, PG_DIAG_COLUMN_NAME, "column");
    return 2;
}

void host_db_push_text(lua_State *L, const char *v, size_t len, unsigned int type)
{
    switch (type) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        lua_pushnumber(L, (lua_Number)strtoll(v, NULL, 10));
        break;
    case OID_FLOAT4:
    case OID_FLOAT8:
        lua_pushnumber(L, (lua_Number)strtod(v, NULL));
        break;
    case OID_BOOL:
        lua_pushboolean(L, v[0] == 't');
        break;
    case OID_TIMESTAMPTZ: {
        char buf[80];
        lua_pushlstring(L, buf, format_timestamptz(v, len, buf, sizeof buf));
        break;
    }
    case OID_JSON:
    case OID_JSONB:
        lua_pushlightuserdata(L, (void *)&json_decode_key);
        lua_rawget(L, LUA_REGISTRYINDEX);
        if (lua_isfunction(L, -1)) {
            lua_pushlstring(L, v, len);
            lua_call(L, 1, 1);
        } else { /* no cjson in this VM: the text */
            lua_pop(L, 1);
            lua_pushlstring(L, v, len);
        }
        break;
    default:
        lua_pushlstring(L, v, len);
    }
}

/* Pushes the value of one field, typed by its column's OID. Stack: +1
 * (json columns use 2 more slots while cjson.decode runs; it raises on bad
 * input, caught by op_push's protected call). */
static void push_value(lua_State *L, const PGresult *res, int row, int col, Oid type)
{
    if (PQgetisnull(res, row, col)) {
        lua_pushlightuserdata(L, NULL); /* cjson.null */
        return;
    }
    host_db_push_text(L, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col), type);
}

/* Pushes the rows of a result. Stack: +1. While it works:
 *
 *   rows                    the array, returned
 *   name[1] .. name[ncols]  the column names, interned once
 *   row                     the row being filled
 *   value                   (transient)
 *
 * rows.affected is served by rows's metatable ({affected = n, __index =
 * itself}), so the table holds only 1..n and encodes as a JSON array. */
static int push_rows(lua_State *L, const PGresult *res)
{
    int nrows = PQntuples(res);
    int ncols = PQnfields(res);
    const char *affected = PQcmdTuples((PGresult *)res);
    luaL_checkstack(L, ncols + 8, "too many columns in a result");
    lua_createtable(L, nrows, 0);
    int rows = lua_gettop(L);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, (lua_Number)strtoll(affected, NULL, 10));
    lua_setfield(L, -2, "affected");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, rows);
    for (int c = 0; c < ncols; c++) lua_pushstring(L, PQfname(res, c));
    for (int r = 0; r < nrows; r++) {
        lua_createtable(L, 0, ncols);
        for (int c = 0; c < ncols; c++) {
            lua_pushvalue(L, rows + 1 + c);
            push_value(L, res, r, c, PQftype(res, c));
            lua_rawset(L, -3);
        }
        lua_rawseti(L, rows, r + 1);
    }
    lua_settop(L, rows); /* drops the names */
    return 1;
}

/* The protected half of op_push: arg 1 is the op (light userdata). Pushes
 * the script call's results: rows | true | nil, err. */
static int push_outcome_p(lua_State *L)
{
    struct db_op *op = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (op->fail.code) return push_failure(L, &op->fail);
    if (!result_ok(op->res)) return push_server_error(L, op->res);
    switch (op->kind) {
    case OP_QUERY:
        return push_rows(L, op->res);
    case OP_COMMIT:
        if (!strcmp(PQcmdStatus(op->res), "ROLLBACK")) {
            struct db_failure f;
            fail_set(&f, "query", "25P02", "the transaction was rolled back because a statement in it failed");
            return push_failure(L, &f);
        }
        /* fall through */
    default:
        lua_pushboolean(L, 1);
        return 1;
    }
}

/* Pushes op's results on the task's coroutine and returns how many. They
 * are built on the VM's main thread under lua_pcall (a suspended coroutine
 * cannot run code, and an error must not escape into libevent), then moved
 * over. The main thread is idle: we run from a loop callback. */
static int op_push(struct host_task *task, struct db_op *op)
{
    lua_State *L = task->gen->L;
    lua_State *co = host_task_thread(task);
    int top = lua_gettop(L);
    int n = 0;
    for (int attempt = 0; attempt < 2 && n == 0; attempt++) {
        if (!lua_checkstack(L, 4)) break;
        lua_pushlightuserdata(L, (void *)&push_outcome_key);
        lua_rawget(L, LUA_REGISTRYINDEX);
        lua_pushlightuserdata(L, op);
        if (lua_pcall(L, 1, LUA_MULTRET, 0) == 0) {
            n = lua_gettop(L) - top;
        } else {
            /* a json column cjson refused, or out of memory: report it */
            const char *msg = lua_tostring(L, -1);
            fail_set(&op->fail, "internal", NULL, "cannot convert the result: %s", msg ? msg : "?");
            lua_settop(L, top);
        }
    }
    if (n > 0 && lua_checkstack(co, n)) {
        lua_xmove(L, co, n);
    } else {
        n = 0;
    }
    lua_settop(L, top);
    return n;
}

/* Resumes the op's task with its outcome; the op is freed first (the task
 * may start new ops, or end and free everything it owns). */
static void op_resume(struct db_op *op)
{
    struct host_task *task = op->task;
    op_settle_tx(op);
    int n = op_push(task, op);
    op_free(op);
    host_task_resume(task, n);
}

static void op_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_op *op = arg;
    (void)fd;
    (void)what;
    switch (op->phase) {
    case OP_QUEUED: /* waited too long for a connection */
        op_dequeue(op);
        fail_set(&op->fail, "unavailable", NULL, "database pool exhausted");
        op->phase = OP_DONE;
        break;
    case OP_PREPARING:
    case OP_RUNNING: { /* the server did not answer in time: op_finish follows */
        char msg[96];
        snprintf(msg, sizeof msg, "the database did not answer within %ld ms",
                 pool.statement_timeout_ms + ANSWER_GRACE_MS);
        conn_lost(op->conn, "unavailable", msg);
        return;
    }
    case OP_DONE:
        break;
    case OP_NEW:
        return;
    }
    op_resume(op);
}

/* The task was aborted (client gone): forget it, never resume it. A queued
 * op goes at once; a running one stays on its connection until the server
 * has answered (a query is cancelled first), so the connection is drained
 * before reuse; a pinned transaction is rolled back before reuse. */
static void db_cancel(void *arg)
{
    struct db_op *op = arg;
    /* Transactions the task holds go back now, not when the collector
     * finds their handles (the task may wait here on db.query while its
     * transaction is open). */
    for (long i = 0; i < pool.size; i++)
        if (pool.conns[i].tx && pool.conns[i].tx->task == op->task) tx_release(pool.conns[i].tx);
    op->task = NULL;
    if (op->tx) {
        tx_release(op->tx);
        op->tx = NULL;
    }
    switch (op->phase) {
    case OP_QUEUED:
        op_dequeue(op);
        op_free(op);
        break;
    case OP_DONE:
        op_free(op);
        break;
    case OP_PREPARING:
    case OP_RUNNING:
        if (op->kind == OP_QUERY) conn_cancel_query(op->conn); /* may drop the connection, freeing op */
        break;
    case OP_NEW:
        break;
    }
}

/* ---- connections ------------------------------------------------------------------ */

/* libpq notices (WARNING, NOTICE...) go to the log instead of stderr. */
static void notice_cb(void *arg, const PGresult *res)
{
    struct db_conn *c = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    int warn = severity && strcmp(severity, "WARNING") == 0;
    struct log_line *line = host_log_begin(warn ? LOG_WARN : LOG_DEBUG, "database notice");
    char msg[MESSAGE_MAX];
    copy_message(msg, sizeof msg, PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    host_log_str(line, "severity", severity ? severity : "?");
    host_log_str(line, "notice", msg);
    if (c->op && c->op->task && c->op->task->request_id[0])
        host_log_str(line, "request_id", c->op->task->request_id);
    host_log_end(line);
}

/* Frees what belongs to the current libpq connection: its events, the
 * cancel in flight (the thread finishes on its own), the statement cache.
 * Leaves the op, the pin and the timer to the caller. */
static void conn_close(struct db_conn *c)
{
    if (c->rd_ev) event_free(c->rd_ev);
    if (c->wr_ev) event_free(c->wr_ev);
    c->rd_ev = c->wr_ev = NULL;
    if (c->cancel_ev) event_free(c->cancel_ev);
    c->cancel_ev = NULL;
    if (c->cancel_fd >= 0) close(c->cancel_fd);
    c->cancel_fd = -1;
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    c->fd = -1;
    c->flushing = 0;
    c->chore = CHORE_NONE;
    c->chore_failed = 0;
    c->stale_statements = 0;
    stmt_clear(c);
}

/* Arms the reconnect timer: 100 ms doubling to 5 s, with up to 25% jitter
 * so the workers of a fleet do not reconnect in step. */
static void conn_schedule_reconnect(struct db_conn *c)
{
    int delay = c->backoff_ms + (int)randombytes_uniform((uint32_t)c->backoff_ms / 4 + 1);
    struct timeval tv = {delay / 1000, (suseconds_t)(delay % 1000) * 1000};
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    event_add(c->timer, &tv);
}

static void conn_connect_failed(struct db_conn *c, const char *why)
{
    char msg[MESSAGE_MAX];
    copy_message(msg, sizeof msg, why); /* why may live in c->pg */
    snprintf(pool.last_error, sizeof pool.last_error, "%s", msg);
    /* the first failure of a streak is worth a warning, retries are not */
    struct log_line *line = host_log_begin(c->backoff_ms == BACKOFF_MIN_MS && !pool.outage ? LOG_WARN : LOG_DEBUG,
                                           "database connection attempt failed");
    host_log_int(line, "connection", c->index);
    host_log_str(line, "error", msg);
    host_log_end(line);
    event_del(c->timer);
    conn_close(c);
    c->state = CONN_DOWN;
    conn_schedule_reconnect(c);
    pool_check_outage();
}

/* A ready connection broke (or must be dropped): the op running on it
 * fails with `code`, a pinned transaction is lost, and it is re-made after
 * the backoff. */
static void conn_lost(struct db_conn *c, const char *code, const char *why)
{
    char msg[MESSAGE_MAX];
    if (c->state == CONN_CONNECTING) {
        conn_connect_failed(c, why);
        return;
    }
    if (c->state != CONN_READY) return;
    copy_message(msg, sizeof msg, why);
    snprintf(pool.last_error, sizeof pool.last_error, "%s", msg);
    struct log_line *line = host_log_begin(LOG_WARN, "database connection lost");
    host_log_int(line, "connection", c->index);
    host_log_str(line, "error", msg);
    host_log_end(line);

    struct db_op *op = c->op;
    c->op = NULL;
    if (c->tx) {
        c->tx->conn = NULL;
        c->tx->state = TX_LOST;
        c->tx = NULL;
    }
    conn_close(c);
    c->state = CONN_DOWN;
    conn_schedule_reconnect(c);
    if (op) {
        const char *sqlstate = result_sqlstate(op->res);
        fail_set(&op->fail, code, sqlstate && strlen(sqlstate) == 5 ? sqlstate : NULL,
                 "database connection lost: %s", msg);
        op_finish(op);
    }
    pool_check_outage();
}

/* Makes sure rd_ev/wr_ev watch the connection's current socket (libpq may
 * open a new one while connecting) and that exactly `what` is pending.
 * Returns 0, or -1 when there is no socket or no memory. */
static int conn_watch(struct db_conn *c, short what)
{
    evutil_socket_t fd = PQsocket(c->pg);
    if (fd < 0) return -1;
    if (fd != c->fd || c->rd_ev == NULL) {
        if (c->rd_ev) event_free(c->rd_ev);
        if (c->wr_ev) event_free(c->wr_ev);
        c->rd_ev = event_new(pool.base, fd, EV_READ | EV_PERSIST, conn_io_cb, c);
        c->wr_ev = event_new(pool.base, fd, EV_WRITE | EV_PERSIST, conn_io_cb, c);
        c->fd = fd;
        if (c->rd_ev == NULL || c->wr_ev == NULL) return -1;
    }
    if (what & EV_READ) event_add(c->rd_ev, NULL);
    else event_del(c->rd_ev);
    if (what & EV_WRITE) event_add(c->wr_ev, NULL);
    else event_del(c->wr_ev);
    return 0;
}

static void conn_connected(struct db_conn *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0 || conn_watch(c, EV_READ) != 0) {
        conn_connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    event_del(c->timer);
    c->state = CONN_READY;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->flushing = 0;
    if (pool.outage) {
        pool.outage = 0;
        host_log(LOG_INFO, "database reachable again");
    }
    struct log_line *line = host_log_begin(LOG_DEBUG, "database connection ready");
    host_log_int(line, "connection", c->index);
    host_log_int(line, "backend_pid", PQbackendPID(c->pg));
    host_log_end(line);
    conn_settle(c);
}

static void conn_poll(struct db_conn *c, PostgresPollingStatusType st)
{
    switch (st) {
    case PGRES_POLLING_OK:
        conn_connected(c);
        return;
    case PGRES_POLLING_READING:
        if (conn_watch(c, EV_READ) == 0) return;
        break;
    case PGRES_POLLING_WRITING:
        if (conn_watch(c, EV_WRITE) == 0) return;
        break;
    default:
        break;
    }
    conn_connect_failed(c, PQerrorMessage(c->pg));
}

/* Starts an asynchronous connect. Name resolution inside
 * PQconnectStartParams is the one blocking step (getaddrinfo); a hostaddr
 * or a unix socket avoids it. */
static void conn_connect(struct db_conn *c)
{
    struct timeval tv = {pool.connect_timeout_ms / 1000, (pool.connect_timeout_ms % 1000) * 1000};
    c->pg = PQconnectStartParams(pool.keywords, pool.values, 0);
    if (c->pg == NULL) {
        conn_connect_failed(c, "out of memory");
        return;
    }
    c->state = CONN_CONNECTING;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeReceiver(c->pg, notice_cb, c);
    event_add(c->timer, &tv); /* the connect deadline: libpq leaves it to us */
    conn_poll(c, PGRES_POLLING_WRITING);
}

/* Backoff over (DOWN: connect) or connect deadline (CONNECTING). */
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == CONN_DOWN) conn_connect(c);
    else if (c->state == CONN_CONNECTING) conn_connect_failed(c, "timed out while connecting");
}

/* Sends what libpq has buffered. Returns 0, or -1 when the connection was
 * lost (c is DOWN then). */
static int conn_flush(struct db_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_lost(c, "unavailable", PQerrorMessage(c->pg));
        return -1;
    }
    if (r == 1 && !c->flushing) event_add(c->wr_ev, NULL);
    if (r == 0 && c->flushing) event_del(c->wr_ev);
    c->flushing = r == 1;
    return 0;
}

/* Runs a cleanup command of our own (no op, no task). */
static void conn_chore(struct db_conn *c, enum conn_chore chore, const char *sql)
{
    c->chore = chore;
    c->chore_failed = 0;
    if (!PQsendQuery(c->pg, sql)) {
        conn_lost(c, "unavailable", PQerrorMessage(c->pg));
        return;
    }
    conn_flush(c);
}

/* Called whenever a connection may have become free. A connection goes
 * back to the pool only clean: no transaction open (else ROLLBACK first),
 * no cancel in flight, statement cache not flagged stale. */
static void conn_settle(struct db_conn *c)
{
    if (c->state != CONN_READY || c->op || c->chore != CHORE_NONE || c->cancel_fd >= 0 || c->tx) return;
    switch (PQtransactionStatus(c->pg)) {
    case PQTRANS_IDLE:
        break;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR:
        conn_chore(c, CHORE_ROLLBACK, "ROLLBACK");
        return;
    default:
        conn_lost(c, "unavailable", "connection in an unexpected state");
        return;
    }
    if (c->stale_statements) {
        c->stale_statements = 0;
        conn_chore(c, CHORE_DEALLOCATE, "DEALLOCATE ALL");
        return;
    }
    pool_dispatch();
}

/* Sends op's query: as the cached prepared statement, or prepares it first
 * (phase OP_PREPARING), or unprepared when the cache cannot take it. */
static int send_query(struct db_conn *c, struct db_op *op)
{
    int found = 0;
    int slot = stmt_find(c, op->hash, op->sql, &found);
    if (slot >= 0 && found) {
        op->prepared = 1;
        return PQsendQueryPrepared(c->pg, op->name, op->nparams, op->values, NULL, NULL, 0);
    }
    if (slot >= 0 && c->nstmts < STMT_CACHE_MAX) {
        op->phase = OP_PREPARING;
        return PQsendPrepare(c->pg, op->name, op->sql, 0, NULL);
    }
    if (c->nstmts >= STMT_CACHE_MAX) c->stale_statements = 1;
    return PQsendQueryParams(c->pg, op->sql, op->nparams, NULL, op->values, NULL, NULL, 0);
}

/* Runs op on c (free, or pinned by op's transaction). Failures go through
 * op_finish like any outcome. */
static void conn_start_op(struct db_conn *c, struct db_op *op)
{
    int ok = 0;
    c->op = op;
    op->conn = c;
    op->phase = OP_RUNNING;
    switch (op->kind) {
    case OP_QUERY: ok = send_query(c, op); break;
    case OP_BEGIN: ok = PQsendQuery(c->pg, "BEGIN"); break;
    case OP_COMMIT: ok = PQsendQuery(c->pg, "COMMIT"); break;
    case OP_ROLLBACK: ok = PQsendQuery(c->pg, "ROLLBACK"); break;
    case OP_PING: ok = PQsendQuery(c->pg, "SELECT 1"); break;
    }
    if (!ok) {
        conn_lost(c, "unavailable", PQerrorMessage(c->pg));
        return;
    }
    event_del(op->ev);
    if (pool.statement_timeout_ms > 0) {
        long ms = pool.statement_timeout_ms + ANSWER_GRACE_MS;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        event_add(op->ev, &tv);
    }
    conn_flush(c);
}

/* Keeps a result of the op (or chore) running on c. Returns 0, or -1 when
 * the connection was dropped. */
static int keep_result(struct db_conn *c, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
        PQclear(r);
        conn_lost(c, "query", "COPY is not supported by host.db");
        return -1;
    }
    if (c->op == NULL) { /* a chore: only success matters */
        if (!result_ok(r)) c->chore_failed = 1;
        PQclear(r);
        return 0;
    }
    struct db_op *op = c->op;
    if (op->res == NULL) {
        op->res = r;
    } else if (result_ok(op->res) && !result_ok(r)) { /* an error wins */
        PQclear(op->res);
        op->res = r;
    } else {
        PQclear(r);
    }
    return 0;
}

/* The command on c is complete (PQgetResult said NULL). */
static void conn_step_done(struct db_conn *c)
{
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_lost(c, "unavailable", PQerrorMessage(c->pg));
        return;
    }
    if (c->op == NULL) {
        enum conn_chore chore = c->chore;
        c->chore = CHORE_NONE;
        if (c->chore_failed) {
            conn_lost(c, "unavailable", chore == CHORE_ROLLBACK ? "ROLLBACK failed" : "DEALLOCATE failed");
            return;
        }
        if (chore == CHORE_DEALLOCATE) stmt_clear(c);
        conn_settle(c);
        return;
    }
    struct db_op *op = c->op;
    if (op->phase == OP_PREPARING && result_ok(op->res)) {
        PQclear(op->res);
        op->res = NULL;
        /* prepared on the server: remember it even if nobody waits now */
        if (stmt_add(c, op->hash, op->sql) != 0) c->stale_statements = 1;
        if (op->task != NULL) {
            op->phase = OP_RUNNING;
            op->prepared = 1;
            if (!PQsendQueryPrepared(c->pg, op->name, op->nparams, op->values, NULL, NULL, 0)) {
                conn_lost(c, "unavailable", PQerrorMessage(c->pg));
                return;
            }
            conn_flush(c);
            return;
        }
    }
    c->op = NULL;
    int ok = result_ok(op->res);
    if (op->kind == OP_BEGIN && op->tx) {
        if (ok) { /* pinned until COMMIT/ROLLBACK (or the handle's __gc) */
            op->tx->conn = c;
            op->tx->state = TX_OPEN;
            c->tx = op->tx;
        }
    } else if ((op->kind == OP_COMMIT || op->kind == OP_ROLLBACK) && op->tx) {
        op->tx->conn = NULL;
        op->tx->state = TX_DONE;
        c->tx = NULL;
    }
    if (op->prepared && !ok) {
        /* "prepared statement does not exist" (someone ran DEALLOCATE) or
         * "cached plan must not change result type" (the schema changed) */
        const char *s = result_sqlstate(op->res);
        if (s && (!strcmp(s, "26000") || !strcmp(s, "0A000"))) c->stale_statements = 1;
    }
    op_finish(op);
    conn_settle(c);
}

static void conn_read(struct db_conn *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_lost(c, "unavailable", PQerrorMessage(c->pg));
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL) PQfreemem(n);
    if (c->flushing && conn_flush(c) != 0) return;
    while (c->state == CONN_READY && (c->op || c->chore != CHORE_NONE) && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL) conn_step_done(c); /* may start the next step, or hand c to a waiter */
        else if (keep_result(c, r) != 0) return;
    }
    if (c->state == CONN_READY && PQstatus(c->pg) == CONNECTION_BAD)
        conn_lost(c, "unavailable", PQerrorMessage(c->pg));
}

static void conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    (void)fd;
    if (c->state == CONN_CONNECTING) {
        conn_poll(c, PQconnectPoll(c->pg));
        return;
    }
    if (c->state != CONN_READY) return;
    if ((what & EV_WRITE) && conn_flush(c) != 0) return;
    if (what & EV_READ) conn_read(c);
}

/* ---- query cancel ----------------------------------------------------------------- */

/* PQcancel blocks (it opens a connection to the server), so it runs on a
 * short-lived detached thread. The thread owns the job; it closes its end of
 * the socketpair when done, which wakes cancel_done_cb. The connection is
 * not reused before both the cancel is done and the query's results are
 * drained: a late cancel cannot hit the next query. */
struct cancel_job {
    PGcancel *cancel;
    int fd;
};

static void *cancel_thread(void *arg)
{
    struct cancel_job *job = arg;
    char err[256];
    PQcancel(job->cancel, err, sizeof err);
    PQfreeCancel(job->cancel);
    close(job->fd);
    free(job);
    return NULL;
}

static void cancel_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    (void)fd;
    (void)what;
    event_free(c->cancel_ev);
    c->cancel_ev = NULL;
    close(c->cancel_fd);
    c->cancel_fd = -1;
    conn_settle(c);
}

static void conn_cancel_query(struct db_conn *c)
{
    struct cancel_job *job = NULL;
    int sv[2] = {-1, -1};
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    int rc;
    if (c->cancel_fd >= 0) return;
    job = calloc(1, sizeof *job);
    if (job == NULL || (job->cancel = PQgetCancel(c->pg)) == NULL ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        goto fail;
    c->cancel_ev = event_new(pool.base, sv[0], EV_READ, cancel_done_cb, c);
    if (c->cancel_ev == NULL) goto fail;
    job->fd = sv[1];
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all); /* signals stay with the loop thread */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&thread, &attr, cancel_thread, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) goto fail;
    c->cancel_fd = sv[0];
    event_add(c->cancel_ev, NULL);
    return;
fail:
    if (c->cancel_ev) event_free(c->cancel_ev);
    c->cancel_ev = NULL;
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (job && job->cancel) PQfreeCancel(job->cancel);
    free(job);
    /* closing the connection abandons the query (statement_timeout ends it) */
    conn_lost(c, "unavailable", "cannot cancel the query; connection dropped");
}

/* ---- the pool --------------------------------------------------------------------- */

static struct db_conn *pool_free_conn(void)
{
    for (long i = 0; i < pool.size; i++) {
        struct db_conn *c = &pool.conns[i];
        if (c->state == CONN_READY && c->op == NULL && c->chore == CHORE_NONE && c->tx == NULL &&
            c->cancel_fd < 0 && !c->stale_statements && PQtransactionStatus(c->pg) == PQTRANS_IDLE)
            return c;
    }
    return NULL;
}

static int pool_count(enum conn_state state)
{
    int n = 0;
    for (long i = 0; i < pool.size; i++) n += pool.conns[i].state == state;
    return n;
}

/* Gives free connections to the oldest waiters. */
static void pool_dispatch(void)
{
    struct db_op *op;
    struct db_conn *c;
    while ((op = TAILQ_FIRST(&pool.waiters)) != NULL && (c = pool_free_conn()) != NULL) {
        op_dequeue(op);
        conn_start_op(c, op);
    }
}

/* When no connection is up or being made, the database is unreachable:
 * waiting is pointless, so every waiter fails now. */
static void pool_check_outage(void)
{
    struct db_op *op;
    if (pool_count(CONN_READY) + pool_count(CONN_CONNECTING) > 0) return;
    if (!pool.outage) {
        pool.outage = 1;
        struct log_line *line = host_log_begin(LOG_WARN, "database unreachable");
        host_log_str(line, "error", pool.last_error);
        host_log_end(line);
    }
    while ((op = TAILQ_FIRST(&pool.waiters)) != NULL) {
        op_dequeue(op);
        fail_set(&op->fail, "unavailable", NULL, "database unreachable: %s", pool.last_error);
        op_finish(op);
    }
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    for (long i = 0; i < pool.size; i++) conn_settle(&pool.conns[i]);
}

/* Settles every connection on the next turn of the loop: for callers that
 * may run inside Lua (a __gc) or inside pool bookkeeping. */
static void pool_kick(void)
{
    if (pool.running && pool.kick) event_active(pool.kick, EV_TIMEOUT, 1);
}

/* Starts `op`: on `pinned` (its transaction's connection), else on a free
 * connection, else at the end of the queue. Returns 0, or -1 with op->fail
 * set when it cannot even wait (unreachable, queue full). */
static int op_submit(struct db_op *op, struct db_conn *pinned)
{
    struct db_conn *c = pinned;
    if (c == NULL && TAILQ_EMPTY(&pool.waiters)) c = pool_free_conn();
    if (c) {
        conn_start_op(c, op);
        return 0;
    }
    if (pool_count(CONN_READY) + pool_count(CONN_CONNECTING) == 0) {
        fail_set(&op->fail, "unavailable", NULL, "database unreachable: %s", pool.last_error);
        return -1;
    }
    if (pool.nwaiters >= pool.queue_max) {
        fail_set(&op->fail, "unavailable", NULL, "database pool queue is full");
        return -1;
    }
    struct timeval tv = {pool.queue_timeout_ms / 1000, (pool.queue_timeout_ms % 1000) * 1000};
    op->phase = OP_QUEUED;
    TAILQ_INSERT_TAIL(&pool.waiters, op, queue_link);
    pool.nwaiters++;
    event_add(op->ev, &tv);
    return 0;
}

/* ---- Lua: db.query, db.ready, db.transaction ----------------------------------------- */

/* Checks the query arguments (sql at 1, parameters from 2) and returns the
 * bytes their text needs. Raises on misuse. A string parameter holding a
 * NUL byte is an expected failure (it comes from client data): *fail is set. */
static size_t query_args_measure(lua_State *L, struct db_failure *fail)
{
    size_t sql_len;
    const char *sql = luaL_checklstring(L, 1, &sql_len);
    int top = lua_gettop(L);
    size_t bytes = sql_len + 1;
    char num[32];
    if (memchr(sql, '\0', sql_len)) luaL_argerror(L, 1, "SQL text contains a NUL byte");
    if (top - 1 > MAX_PARAMS) luaL_error(L, "too many query parameters (%d, at most %d)", top - 1, MAX_PARAMS);
    for (int i = 2; i <= top; i++) {
        int type = lua_type(L, i);
        if (type == LUA_TNIL || (type == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == NULL)) continue;
        if (type == LUA_TBOOLEAN) {
            bytes += 2;
        } else if (type == LUA_TNUMBER) {
            bytes += (size_t)format_number(lua_tonumber(L, i), num) + 1;
        } else if (type == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, i, &n);
            if (memchr(s, '\0', n) && fail->code == NULL)
                fail_set(fail, "query", "22021", "parameter $%d contains a NUL byte, which PostgreSQL text cannot hold", i - 1);
            bytes += n + 1;
        } else {
            luaL_argerror(L, i, lua_pushfstring(L, "%s cannot be a query parameter (nil, boolean, number, string or cjson.null)",
                                               luaL_typename(L, i)));
        }
    }
    return bytes;
}

/* A query op holding copies of the SQL and the parameters' text (a Lua
 * string may be collected while the coroutine waits). NULL: out of memory. */
static struct db_op *query_op_new(lua_State *L, struct host_task *task, size_t bytes)
{
    int nparams = lua_gettop(L) - 1;
    struct db_op *op = op_new(OP_QUERY, task, (size_t)nparams * sizeof(char *) + bytes);
    if (op == NULL) return NULL;
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    op->nparams = nparams;
    op->values = (const char **)(void *)(op + 1);
    char *text = (char *)(op->values + nparams);
    memcpy(text, s, len + 1);
    op->sql = text;
    text += len + 1;
    for (int i = 0; i < nparams; i++) {
        int idx = i + 2;
        switch (lua_type(L, idx)) {
        case LUA_TBOOLEAN:
            op->values[i] = lua_toboolean(L, idx) ? "t" : "f";
            break;
        case LUA_TNUMBER:
            op->values[i] = text;
            text += format_number(lua_tonumber(L, idx), text) + 1;
            break;
        case LUA_TSTRING:
            s = lua_tolstring(L, idx, &len);
            memcpy(text, s, len);
            text[len] = '\0';
            op->values[i] = text;
            text += len + 1;
            break;
        default: /* nil, cjson.null */
            op->values[i] = NULL;
        }
    }
    op->hash = sql_hash(op->sql);
    /* Flawfinder: ignore (a literal format joined with PRIx64) */
    snprintf(op->name, sizeof op->name, "mk_%016" PRIx64, op->hash);
    return op;
}

/* Submits op and suspends the task, or returns nil, err at once when it
 * cannot even wait. */
static int op_start(lua_State *L, struct host_task *task, struct db_op *op, struct db_conn *pinned)
{
    if (op_submit(op, pinned) != 0) {
        struct db_failure fail = op->fail;
        op_settle_tx(op);
        op_free(op);
        return push_failure(L, &fail);
    }
    return host_task_suspend(task, db_cancel, op);
}

static int push_not_running(lua_State *L)
{
    struct db_failure f;
    fail_set(&f, "unavailable", NULL, "the database pool is not running");
    return push_failure(L, &f);
}

static int push_out_of_memory(lua_State *L)
{
    struct db_failure f;
    fail_set(&f, "unavailable", NULL, "out of memory");
    return push_failure(L, &f);
}

/* db.query(sql, ...) -> rows | nil, err */
static int l_db_query(lua_State *L)
{
    struct host_task *task = host_task_waitable(L, "db.query");
    struct db_failure fail = {0};
    size_t bytes = query_args_measure(L, &fail);
    if (!pool.running) return push_not_running(L);
    if (fail.code) return push_failure(L, &fail);
    struct db_op *op = query_op_new(L, task, bytes);
    if (op == NULL) return push_out_of_memory(L);
    return op_start(L, task, op, NULL);
}

/* db.ready() -> true | nil, err. True at once when a connection is up but
 * all are busy (they prove the server answers); a round trip on an idle
 * connection otherwise; waits for a connection being made; nil, err when
 * none is up or coming. */
static int l_db_ready(lua_State *L)
{
    struct host_task *task = host_task_waitable(L, "db.ready");
    if (!pool.running) return push_not_running(L);
    if (pool_free_conn() == NULL && pool_count(CONN_READY) > 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    struct db_op *op = op_new(OP_PING, task, 0);
    if (op == NULL) return push_out_of_memory(L);
    return op_start(L, task, op, NULL);
}

/* tx.query(sql, ...) -> rows | nil, err; upvalue 1: the handle. */
static int l_db_tx_query(lua_State *L)
{
    struct db_tx *h = lua_touserdata(L, lua_upvalueindex(1));
    struct host_task *task = host_task_waitable(L, "tx.query");
    struct db_failure fail = {0};
    size_t bytes = query_args_measure(L, &fail);
    if (h->state == TX_LOST) {
        fail_set(&fail, "unavailable", NULL, "the database connection was lost during the transaction");
        return push_failure(L, &fail);
    }
    if (h->state != TX_OPEN || h->conn == NULL) return luaL_error(L, "tx.query called outside its transaction");
    if (h->conn->op) return luaL_error(L, "tx.query called while another query of the same transaction runs");
    if (fail.code) return push_failure(L, &fail);
    struct db_op *op = query_op_new(L, task, bytes);
    if (op == NULL) return push_out_of_memory(L);
    op->tx = h;
    return op_start(L, task, op, h->conn);
}

/* new_tx() -> handle, tx   (for the transaction chunk) */
static int l_db_tx_new(lua_State *L)
{
    host_task_check(L);
    struct db_tx *h = lua_newuserdata(L, sizeof *h);
    h->conn = NULL;
    h->state = TX_NEW;
    h->task = NULL;
    luaL_getmetatable(L, TX_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, l_db_tx_query, 1);
    lua_setfield(L, -2, "query");
    return 2;
}

/* begin(handle) -> true | nil, err: a connection, pinned, with BEGIN run. */
static int l_db_tx_begin(lua_State *L)
{
    struct db_tx *h = luaL_checkudata(L, 1, TX_MT);
    struct host_task *task = host_task_waitable(L, "db.transaction");
    if (h->state != TX_NEW) luaL_error(L, "transaction already begun");
    h->state = TX_DONE;
    if (!pool.running) return push_not_running(L);
    struct db_op *op = op_new(OP_BEGIN, task, 0);
    if (op == NULL) return push_out_of_memory(L);
    op->tx = h;
    h->state = TX_BEGINNING;
    h->task = task;
    return op_start(L, task, op, NULL);
}

/* finish(handle, commit) -> true | nil, err: COMMIT or ROLLBACK, then the
 * connection goes back to the pool. */
static int l_db_tx_finish(lua_State *L)
{
    struct db_tx *h = luaL_checkudata(L, 1, TX_MT);
    int commit = lua_toboolean(L, 2);
    struct host_task *task = host_task_waitable(L, "db.transaction");
    if (h->state == TX_LOST) {
        struct db_failure f;
        h->state = TX_DONE;
        if (!commit) {
            lua_pushboolean(L, 1);
            return 1;
        }
        fail_set(&f, "unavailable", NULL, "the database connection was lost during the transaction; nothing was committed");
        return push_failure(L, &f);
    }
    if (h->state != TX_OPEN || h->conn == NULL) return luaL_error(L, "transaction already finished");
    if (h->conn->op) return luaL_error(L, "transaction finished while one of its queries runs");
    struct db_op *op = op_new(commit ? OP_COMMIT : OP_ROLLBACK, task, 0);
    if (op == NULL) {
        tx_release(h); /* rolled back by the pool */
        return push_out_of_memory(L);
    }
    op->tx = h;
    h->state = TX_FINISHING;
    return op_start(L, task, op, h->conn);
}

/* __gc of a handle whose transaction never finished (its task was aborted
 * while waiting in another binding, or its VM closed): the pool rolls the
 * connection back and reuses it. */
static int l_db_tx_gc(lua_State *L)
{
    struct db_tx *h = luaL_checkudata(L, 1, TX_MT);
    struct db_op *op;
    TAILQ_FOREACH(op, &pool.ops, all_link)
        if (op->tx == h) op->tx = NULL;
    tx_release(h);
    return 0;
}

/* tostring(err) -> "code: message (SQLSTATE xxxxx)" */
static int l_db_error_tostring(lua_State *L)
{
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "message");
    lua_getfield(L, 1, "sqlstate");
    const char *code = lua_tostring(L, -3);
    const char *message = lua_tostring(L, -2);
    const char *sqlstate = lua_tostring(L, -1);
    if (sqlstate)
        lua_pushfstring(L, "%s: %s (SQLSTATE %s)", code ? code : "?", message ? message : "?", sqlstate);
    else
        lua_pushfstring(L, "%s: %s", code ? code : "?", message ? message : "?");
    return 1;
}

/* db.transaction(fn): the part that calls fn is Lua, since LuaJIT yields
 * across pcall but a C function cannot be re-entered after a yield. */
static const char transaction_chunk[] =
    "local new_tx, begin, finish = ...\n"
    "local error, pcall, type = error, pcall, type\n"
    "local function close(h, ok, first, ...)\n"
    "  if not ok then\n"
    "    finish(h, false)\n"
    "    error(first, 0)\n"
    "  end\n"
    "  if first then\n"
    "    local committed, err = finish(h, true)\n"
    "    if not committed then return nil, err end\n"
    "    return first, ...\n"
    "  end\n"
    "  finish(h, false)\n"
    "  return first, ...\n"
    "end\n"
    "return function(fn)\n"
    "  if type(fn) ~= 'function' then\n"
    "    error(\"bad argument #1 to 'transaction' (function expected, got \" .. type(fn) .. \")\", 2)\n"
    "  end\n"
    "  local h, tx = new_tx()\n"
    "  local ok, err = begin(h)\n"
    "  if not ok then return nil, err end\n"
    "  return close(h, pcall(fn, tx))\n"
    "end\n";

static const luaL_Reg db_funcs[] = {
    {"query", l_db_query},
    {"ready", l_db_ready},
    {NULL, NULL},
};

int host_db_open(lua_State *L)
{
    int top = lua_gettop(L);
    luaL_checkstack(L, 8, "host.db");
    if (luaL_newmetatable(L, TX_MT)) {
        lua_pushcfunction(L, l_db_tx_gc);
        lua_setfield(L, -2, "__gc");
    }
    if (luaL_newmetatable(L, ERROR_MT)) {
        lua_pushcfunction(L, l_db_error_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    /* made now, so that resuming a task does not allocate outside pcall */
    lua_pushlightuserdata(L, (void *)&push_outcome_key);
    lua_pushcfunction(L, push_outcome_p);
    lua_rawset(L, LUA_REGISTRYINDEX);
    /* cjson.decode for json/jsonb columns; without cjson they stay text */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) == 0 && lua_istable(L, -1)) {
        lua_pushlightuserdata(L, (void *)&json_decode_key);
        lua_getfield(L, -2, "decode");
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_settop(L, top);

    lua_createtable(L, 0, 4);
    luaL_register(L, NULL, db_funcs);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    if (luaL_loadbuffer(L, transaction_chunk, sizeof transaction_chunk - 1, "=host.db.transaction") != 0)
        lua_error(L);
    lua_pushcfunction(L, l_db_tx_new);
    lua_pushcfunction(L, l_db_tx_begin);
    lua_pushcfunction(L, l_db_tx_finish);
    lua_call(L, 3, 1);
    lua_setfield(L, -2, "transaction");
    return 1;
}

/* ---- service: init and shutdown --------------------------------------------------------- */

#define CONNINFO_INVALID "DATABASE_URL (or POSTGRES_*) is not a valid connection string"

/* keywords/values for PQconnectStartParams: what the conninfo says, plus
 * our session settings merged into "options", UTF8, an application name. */
static int build_connect_params(const char *conninfo)
{
    char *err = NULL;
    size_t n = 0, k = 0;
    const char *user_options = NULL;
    int has_app_name = 0;
    pool.parsed = PQconninfoParse(conninfo, &err);
    if (pool.parsed == NULL) {
        /* err may quote part of the string, password included: not logged */
        host_log(LOG_ERROR, err ? CONNINFO_INVALID : "out of memory");
        PQfreemem(err);
        return -1;
    }
    for (PQconninfoOption *o = pool.parsed; o->keyword; o++) n++;
    pool.keywords = calloc(n + 4, sizeof *pool.keywords);
    pool.values = calloc(n + 4, sizeof *pool.values);
    if (pool.keywords == NULL || pool.values == NULL) goto oom;
    for (PQconninfoOption *o = pool.parsed; o->keyword; o++) {
        if (o->val == NULL) continue;
        if (!strcmp(o->keyword, "options")) {
            user_options = o->val;
            continue;
        }
        if (!strcmp(o->keyword, "client_encoding")) continue;
        if (!strcmp(o->keyword, "fallback_application_name")) has_app_name = 1;
        pool.keywords[k] = o->keyword;
        pool.values[k++] = o->val;
    }
    if (user_options == NULL) user_options = getenv("PGOPTIONS"); /* Flawfinder: ignore (libpq's own variable, read as libpq would) */
    size_t cap = (user_options ? strlen(user_options) : 0) + 96;
    pool.options = malloc(cap);
    if (pool.options == NULL) goto oom;
    snprintf(pool.options, cap, "%s%s-c statement_timeout=%ld -c TimeZone=UTC -c DateStyle=ISO",
             user_options ? user_options : "", user_options && *user_options ? " " : "",
             pool.statement_timeout_ms);
    pool.keywords[k] = "options";
    pool.values[k++] = pool.options;
    pool.keywords[k] = "client_encoding";
    pool.values[k++] = "UTF8";
    if (!has_app_name) {
        pool.keywords[k] = "fallback_application_name";
        pool.values[k++] = "moonkeep";
    }
    return 0;
oom:
    host_log(LOG_ERROR, "out of memory");
    return -1;
}

/* Frees whatever part of the pool exists. */
static void pool_free(void)
{
    struct db_op *op, *next;
    pool.running = 0;
    for (op = TAILQ_FIRST(&pool.ops); op; op = next) { /* none normally: no task waits at shutdown */
        next = TAILQ_NEXT(op, all_link);
        if (op->phase == OP_QUEUED) op_dequeue(op);
        op_free(op);
    }
    for (long i = 0; pool.conns && i < pool.size; i++) {
        struct db_conn *c = &pool.conns[i];
        c->op = NULL;
        if (c->tx) { /* the handle stays in its VM, unlinked */
            c->tx->conn = NULL;
            c->tx->state = TX_DONE;
            c->tx = NULL;
        }
        conn_close(c);
        if (c->timer) event_free(c->timer);
        free(c->stmts);
    }
    free(pool.conns);
    if (pool.kick) event_free(pool.kick);
    free(pool.keywords);
    free(pool.values);
    free(pool.options);
    if (pool.parsed) PQconninfoFree(pool.parsed);
    memset(&pool, 0, sizeof pool);
}

/* DB_* from the environment (a malformed number exits, as config_env_long
 * does): init keeps them in the pool, check_config only reads them. */
struct db_settings {
    long size, queue_max, queue_timeout_ms, statement_timeout_ms, connect_timeout_ms;
};

static void settings_read(struct db_settings *s)
{
    s->size = config_env_long("DB_POOL_SIZE", 4, 1, 1000);
    s->queue_max = config_env_long("DB_QUEUE_MAX", 1024, 0, 1000000);
    s->queue_timeout_ms = config_env_long("DB_QUEUE_TIMEOUT_MS", 5000, 1, 3600000);
    s->statement_timeout_ms = config_env_long("DB_STATEMENT_TIMEOUT_MS", 10000, 0, 86400000);
    s->connect_timeout_ms = config_env_long("DB_CONNECT_TIMEOUT_MS", 5000, 100, 600000);
}

int host_db_check_config(char *err, size_t cap)
{
    struct db_settings s;
    char *conninfo = database_conninfo(), *why = NULL;
    settings_read(&s);
    PQconninfoOption *parsed = conninfo ? PQconninfoParse(conninfo, &why) : NULL;
    /* why may quote part of the string, password included: not passed on */
    if (parsed == NULL) snprintf(err, cap, "%s", why ? CONNINFO_INVALID : "out of memory");
    PQfreemem(why);
    if (parsed) PQconninfoFree(parsed);
    free(conninfo);
    return parsed ? 0 : -1;
}

int host_db_init(struct event_base *base)
{
    char *conninfo = NULL;
    struct db_settings s;
    if (pool.running) return 0;
    memset(&pool, 0, sizeof pool);
    TAILQ_INIT(&pool.waiters);
    TAILQ_INIT(&pool.ops);
    pool.base = base;
    settings_read(&s);
    pool.size = s.size;
    pool.queue_max = s.queue_max;
    pool.queue_timeout_ms = s.queue_timeout_ms;
    pool.statement_timeout_ms = s.statement_timeout_ms;
    pool.connect_timeout_ms = s.connect_timeout_ms;
    snprintf(pool.last_error, sizeof pool.last_error, "no connection attempt yet");

    conninfo = database_conninfo();
    if (conninfo == NULL || build_connect_params(conninfo) != 0) goto fail;
    pool.conns = calloc((size_t)pool.size, sizeof *pool.conns);
    pool.kick = event_new(base, -1, 0, kick_cb, NULL);
    if (pool.conns == NULL || pool.kick == NULL) goto fail;
    for (long i = 0; i < pool.size; i++) { /* first, so that pool_free can run */
        pool.conns[i].fd = -1;
        pool.conns[i].cancel_fd = -1;
    }
    for (long i = 0; i < pool.size; i++) {
        struct db_conn *c = &pool.conns[i];
        c->index = (int)i;
        c->backoff_ms = BACKOFF_MIN_MS;
        c->stmts = calloc(STMT_CACHE_SLOTS, sizeof *c->stmts);
        c->timer = event_new(base, -1, 0, conn_timer_cb, c);
        if (c->stmts == NULL || c->timer == NULL) goto fail;
    }
    free(conninfo);
    pool.running = 1;
    for (long i = 0; i < pool.size; i++) conn_connect(&pool.conns[i]);
    struct log_line *line = host_log_begin(LOG_DEBUG, "database pool started");
    host_log_int(line, "size", pool.size);
    host_log_end(line);
    return 0;
fail:
    if (conninfo == NULL) host_log(LOG_ERROR, "out of memory");
    free(conninfo);
    pool_free();
    return -1;
}

void host_db_shutdown(void)
{
    if (pool.running) pool_free();
}

void host_db_stats(struct host_db_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!pool.running) return;
    out->size = pool.size;
    out->waiting = pool.nwaiters;
    for (long i = 0; i < pool.size; i++) {
        const struct db_conn *c = &pool.conns[i];
        if (c->state != CONN_READY) continue;
        out->connected++;
        if (c->op || c->chore != CHORE_NONE || c->tx || c->cancel_fd >= 0) out->in_use++;
    }
}

static const struct host_stat db_stat_list[] = {
    {"moonkeep_db_pool_connections", "PostgreSQL connections configured, over every worker (DB_POOL_SIZE each).", 0},
    {"moonkeep_db_pool_connections_up", "PostgreSQL connections established.", 0},
    {"moonkeep_db_pool_connections_in_use",
     "PostgreSQL connections running a query, held by a transaction or cleaning up.", 0},
    {"moonkeep_db_pool_waiting", "Queries waiting for a free connection.", 0},
    {NULL, NULL, 0},
};

static void db_stat_values(int64_t *v)
{
    struct host_db_stats s;
    host_db_stats(&s);
    v[0] = s.size;
    v[1] = s.connected;
    v[2] = s.in_use;
    v[3] = s.waiting;
}

const struct host_service host_db_service = {
    "db", host_db_check_config, host_db_init, host_db_shutdown, db_stat_values, db_stat_list,
};
