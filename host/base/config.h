/* config.h — the process configuration, read once from the environment.
 * Every variable moonkeep reads is here (and in the README's table). */
#ifndef MOONKEEP_CONFIG_H
#define MOONKEEP_CONFIG_H

#include <stddef.h>

#include "base/client_addr.h"

struct config {
    const char *host;            /* HOST */
    int port;                    /* PORT */
    int workers;                 /* WORKERS */
    const char *scripts_dir;     /* SCRIPTS_DIR */
    const char *migrations_dir;  /* MIGRATIONS_DIR */
    int migrate_on_start;        /* MIGRATE_ON_START */
    char *database_conninfo;     /* DATABASE_URL or POSTGRES_*; owned */

    size_t max_body_bytes;       /* MAX_BODY_BYTES */
    size_t max_header_bytes;     /* MAX_HEADER_BYTES */
    int request_read_timeout_s;  /* REQUEST_READ_TIMEOUT_S */
    int keepalive_timeout_s;     /* KEEPALIVE_TIMEOUT_S */
    int max_connections;         /* MAX_CONNECTIONS, per worker */
    int shutdown_grace_s;        /* SHUTDOWN_GRACE_S */

    const char *log_level;       /* LOG_LEVEL */
    int metrics_port;            /* METRICS_PORT; 0: /metrics on the main port */
    const char *metrics_host;    /* METRICS_HOST */
    struct trusted_proxies trusted_proxies; /* TRUSTED_PROXIES */
};

/* Fills `cfg` from the environment. Returns 0, or -1 after logging what is
 * wrong; a malformed value logs and exits with status 2. The strings point into the environment except
 * database_conninfo, which config_free releases. */
int config_load(struct config *cfg);
void config_free(struct config *cfg);

/* Integer environment variable with a default and an allowed range; exits
 * the process with status 2 after an error log line when the value is
 * malformed. */
long config_env_long(const char *name, long fallback, long min, long max);
const char *config_env_str(const char *name, const char *fallback);
/* DATABASE_URL, or a conninfo built from POSTGRES_*; malloc'd, caller frees. */
char *database_conninfo(void);

#endif
