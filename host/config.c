/* config.c — environment parsing for struct config. Owns the one string it
 * builds (the PostgreSQL conninfo). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *config_env_str(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return (v && *v) ? v : fallback;
}

long config_env_long(const char *name, long fallback, long min, long max)
{
    const char *v = getenv(name);
    char *end = NULL;
    if (v == NULL || *v == '\0') return fallback;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end != '\0' || n < min || n > max) {
        fprintf(stderr, "moonkeep: %s=%s is not a whole number in %ld..%ld\n", name, v, min, max);
        exit(2);
    }
    return n;
}

static int env_bool(const char *name, int fallback)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') return fallback;
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) return 1;
    if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) return 0;
    fprintf(stderr, "moonkeep: %s=%s is not a boolean (true/false)\n", name, v);
    exit(2);
}

/* Appends key='value' to a libpq conninfo string, quoting as libpq wants. */
static void conninfo_add(char *buf, size_t cap, const char *key, const char *value)
{
    size_t n = strlen(buf);
    if (value == NULL || *value == '\0') return;
    n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s='", n ? " " : "", key);
    for (const char *p = value; *p && n + 3 < cap; p++) {
        if (*p == '\'' || *p == '\\') buf[n++] = '\\';
        buf[n++] = *p;
    }
    if (n + 2 < cap) {
        buf[n++] = '\'';
        buf[n] = '\0';
    }
}

char *database_conninfo(void)
{
    const char *url = getenv("DATABASE_URL");
    if (url && *url) return strdup(url);
    char buf[2048] = "";
    conninfo_add(buf, sizeof buf, "host", getenv("POSTGRES_HOST"));
    conninfo_add(buf, sizeof buf, "port", getenv("POSTGRES_PORT"));
    conninfo_add(buf, sizeof buf, "dbname", getenv("POSTGRES_DB"));
    conninfo_add(buf, sizeof buf, "user", getenv("POSTGRES_USER"));
    conninfo_add(buf, sizeof buf, "password", getenv("POSTGRES_PASSWORD"));
    return strdup(buf);
}

int config_load(struct config *cfg)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    memset(cfg, 0, sizeof *cfg);
    cfg->host = config_env_str("HOST", "0.0.0.0");
    cfg->port = (int)config_env_long("PORT", 5000, 1, 65535);
    cfg->workers = (int)config_env_long("WORKERS", cores > 0 ? cores : 1, 1, 256);
    cfg->scripts_dir = config_env_str("SCRIPTS_DIR", "scripts");
    cfg->migrations_dir = config_env_str("MIGRATIONS_DIR", "migrations");
    cfg->migrate_on_start = env_bool("MIGRATE_ON_START", 1);
    cfg->database_conninfo = database_conninfo();
    cfg->max_body_bytes = (size_t)config_env_long("MAX_BODY_BYTES", 65536, 1024, 64L << 20);
    cfg->max_header_bytes = (size_t)config_env_long("MAX_HEADER_BYTES", 16384, 1024, 1L << 20);
    cfg->request_read_timeout_s = (int)config_env_long("REQUEST_READ_TIMEOUT_S", 10, 1, 3600);
    cfg->keepalive_timeout_s = (int)config_env_long("KEEPALIVE_TIMEOUT_S", 75, 1, 3600);
    cfg->max_connections = (int)config_env_long("MAX_CONNECTIONS", 4096, 1, 1000000);
    cfg->shutdown_grace_s = (int)config_env_long("SHUTDOWN_GRACE_S", 20, 0, 3600);
    cfg->log_level = config_env_str("LOG_LEVEL", "info");
    if (cfg->database_conninfo == NULL) {
        fprintf(stderr, "moonkeep: out of memory\n");
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    free(cfg->database_conninfo);
    cfg->database_conninfo = NULL;
}
