/* config.c — environment parsing for struct config. Owns the one string it
 * builds (the PostgreSQL conninfo). */
#include "base/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* A setting that cannot be used: one JSON error line (the log is JSON lines
 * from the first byte), then exit 2. */
static void refuse(const char *name, const char *value, const char *error)
{
    struct log_line *line = host_log_begin(LOG_ERROR, "configuration refused; not starting");
    host_log_str(line, "variable", name);
    host_log_str(line, "value", value);
    host_log_str(line, "error", error);
    host_log_end(line);
    exit(2);
}

const char *config_env_str(const char *name, const char *fallback)
{
    const char *v = getenv(name); /* Flawfinder: ignore (configuration comes from the environment by design) */
    return (v && *v) ? v : fallback;
}

long config_env_long(const char *name, long fallback, long min, long max)
{
    const char *v = getenv(name); /* Flawfinder: ignore (configuration) */
    char *end = NULL;
    if (v == NULL || *v == '\0') return fallback;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end != '\0' || n < min || n > max) {
        char why[96];
        snprintf(why, sizeof why, "not a whole number in %ld..%ld", min, max);
        refuse(name, v, why);
    }
    return n;
}

static int env_bool(const char *name, int fallback)
{
    const char *v = getenv(name); /* Flawfinder: ignore (configuration) */
    if (v == NULL || *v == '\0') return fallback;
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) return 1;
    if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) return 0;
    refuse(name, v, "not a boolean (true/false)");
    return fallback;
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
    const char *url = getenv("DATABASE_URL"); /* Flawfinder: ignore (configuration) */
    if (url && *url) return strdup(url);
    char buf[2048] = "";
    conninfo_add(buf, sizeof buf, "host", getenv("POSTGRES_HOST")); /* Flawfinder: ignore (configuration) */
    conninfo_add(buf, sizeof buf, "port", getenv("POSTGRES_PORT")); /* Flawfinder: ignore (configuration) */
    conninfo_add(buf, sizeof buf, "dbname", getenv("POSTGRES_DB")); /* Flawfinder: ignore (configuration) */
    conninfo_add(buf, sizeof buf, "user", getenv("POSTGRES_USER")); /* Flawfinder: ignore (configuration) */
    conninfo_add(buf, sizeof buf, "password", getenv("POSTGRES_PASSWORD")); /* Flawfinder: ignore (configuration) */
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
    enum log_level level;
    if (host_log_parse_level(cfg->log_level, &level) != 0)
        refuse("LOG_LEVEL", cfg->log_level, "not one of debug, info, warn, error");
    cfg->metrics_port = (int)config_env_long("METRICS_PORT", 0, 0, 65535);
    cfg->metrics_host = config_env_str("METRICS_HOST", "127.0.0.1");
    const char *proxies = config_env_str("TRUSTED_PROXIES", "");
    char why[128];
    if (host_trusted_proxies_parse(proxies, &cfg->trusted_proxies, why, sizeof why) != 0)
        refuse("TRUSTED_PROXIES", proxies, why);
    if (cfg->database_conninfo == NULL) {
        host_log(LOG_ERROR, "out of memory");
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    free(cfg->database_conninfo);
    cfg->database_conninfo = NULL;
}
