/* migrate.c — the migration runner. Blocking libpq is fine here: it runs in
 * the master before any worker exists, or in `moonkeep migrate`. Owns its
 * connection and the file list; both are freed on the single exit. */
#include "server/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/log.h"

/* Any constant both old and new replicas agree on. */
#define MIGRATION_LOCK_KEY "7885643992587920752" /* "moonkeep" read as an int8 */

static int is_migration_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 10 || strcmp(name + n - 4, ".sql") != 0) return 0;
    for (int i = 0; i < 4; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    return name[4] == '_';
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    if (f == NULL) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) != NULL) {
        if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        } else {
            buf[size] = '\0';
        }
    }
    fclose(f);
    return buf;
}

static void log_pq_error(const char *msg, const char *file, const char *detail)
{
    struct log_line *line = host_log_begin(LOG_ERROR, msg);
    if (file) host_log_str(line, "migration", file);
    host_log_str(line, "error", detail);
    host_log_end(line);
}

/* Runs one statement (or script) and reports failure. */
static int exec_ok(PGconn *conn, const char *sql, const char *file)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) log_pq_error("migration failed", file, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

static PGconn *connect_with_patience(const char *conninfo, int wait_s)
{
    for (int attempt = 0;; attempt++) {
        PGconn *conn = PQconnectdb(conninfo);
        if (PQstatus(conn) == CONNECTION_OK) return conn;
        if (attempt >= wait_s) {
            log_pq_error("cannot connect to the database", NULL, PQerrorMessage(conn));
            PQfinish(conn);
            return NULL;
        }
        if (attempt == 0) log_pq_error("database not reachable yet; retrying", NULL, PQerrorMessage(conn));
        PQfinish(conn);
        sleep(1);
    }
}

static int is_applied(PGconn *conn, const char *version)
{
    const char *params[1] = {version};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1",
                                 1, NULL, params, NULL, NULL, 0);
    int applied = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
    PQclear(res);
    return applied;
}

static int apply(PGconn *conn, const char *dir, const char *name)
{
    char path[4096];
    char version[5];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    memcpy(version, name, 4);
    version[4] = '\0';
    char *sql = read_file(path);
    if (sql == NULL) {
        log_pq_error("cannot read migration", name, strerror(errno));
        return -1;
    }
    int ok = exec_ok(conn, "BEGIN", name) && exec_ok(conn, sql, name);
    if (ok) {
        const char *params[2] = {version, name};
        PGresult *res = PQexecParams(conn,
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            2, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) log_pq_error("cannot record migration", name, PQresultErrorMessage(res));
        PQclear(res);
    }
    ok = ok && exec_ok(conn, "COMMIT", name);
    if (!ok) {
        PQclear(PQexec(conn, "ROLLBACK"));
    } else {
        struct log_line *line = host_log_begin(LOG_INFO, "migration applied");
        host_log_str(line, "migration", name);
        host_log_end(line);
    }
    free(sql);
    return ok ? 0 : -1;
}

int host_migrate(const struct config *cfg, int wait_s)
{
    PGconn *conn = NULL;
    DIR *d = NULL;
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = -1, locked = 0;

    d = opendir(cfg->migrations_dir);
    if (d == NULL) {
        log_pq_error("cannot open the migrations folder", cfg->migrations_dir, strerror(errno));
        goto done;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!is_migration_name(e->d_name)) continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (grown == NULL) goto done;
            names = grown;
        }
        if ((names[count] = strdup(e->d_name)) == NULL) goto done;
        count++;
    }
    if (count > 1) qsort(names, count, sizeof *names, compare_names);

    if ((conn = connect_with_patience(cfg->database_conninfo, wait_s)) == NULL) goto done;
    PQclear(PQexec(conn, "SET client_min_messages = warning"));
    if (!exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", NULL)) goto done;
    locked = 1;
    if (!exec_ok(conn,
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())", NULL))
        goto done;
    rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        char version[5];
        memcpy(version, names[i], 4);
        version[4] = '\0';
        if (!is_applied(conn, version)) rc = apply(conn, cfg->migrations_dir, names[i]);
    }

done:
    if (locked) PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")"));
    if (conn) PQfinish(conn);
    if (d) closedir(d);
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    return rc;
}
