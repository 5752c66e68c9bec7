/* db.h — host.db: non-blocking PostgreSQL for scripts (a per-worker pool of
 * libpq connections driven by the worker's event loop). The Lua contract is
 * in docs/db.md. */
#ifndef MOONKEEP_DB_H
#define MOONKEEP_DB_H

#include <stddef.h>
#include <lua.h>

#include "base/service.h"

struct event_base;

/* Pushes the host.db module table (query, transaction, ready, null) for the
 * VM `L`. Also loads cjson into L for json/jsonb columns. Stack: +1. */
int host_db_open(lua_State *L);

/* Pushes a field's text value (`len` bytes at v, NUL-terminated as libpq
 * gives it) as the Lua value its column type `type` (an OID) maps to:
 * numbers for int2/4/8, oid, float4/8; a boolean for bool; RFC 3339 text for
 * timestamptz; the cjson.decode of json/jsonb (raises on bad JSON: call
 * under pcall); the text otherwise. Pure: push_rows uses it for every
 * field, and fuzz/db_value_fuzz.c drives it directly. Stack: +1. */
void host_db_push_text(lua_State *L, const char *v, size_t len, unsigned int type);

/* The service record (base/service.h): the pool's hooks and numbers. */
extern const struct host_service host_db_service;

/* check_config: DB_* and DATABASE_URL (or POSTGRES_*) parse. 0, or -1 with
 * why in err (no part of the connection string). */
int host_db_check_config(char *err, size_t cap);

/* Per-worker service. init reads DB_* from the environment and
 * starts the pool's connections without waiting for them: it never blocks
 * on the database. Returns 0, or -1 after logging why (bad DATABASE_URL,
 * out of memory). shutdown closes every connection and frees the pool; it
 * is idempotent and does nothing when init never ran (host.so). */
int host_db_init(struct event_base *base);
void host_db_shutdown(void);

/* The pool of this worker now (zeros before init): connections configured,
 * connected, busy (running a query, pinned by a transaction or doing
 * cleanup), and queries waiting for a connection. For /metrics. */
struct host_db_stats {
    long size;
    long connected;
    long in_use;
    long waiting;
};
void host_db_stats(struct host_db_stats *out);

#endif
