/* service.h — a per-process service (a pool, a thread, a shipper) as one
 * record of hooks, and the registry of them, modelled on nginx's modules
 * (ngx_module_t: init_master, init_process, exit_process and a ctx per
 * module, walked by the core through ngx_modules[]).
 *
 *   master, before it forks   check_config of every service: a setting
 *                             that would make every worker fail stops the
 *                             server at start instead (server/supervisor.c)
 *   worker, after the fork    init of every service, in registry order;
 *                             shutdown of every one in reverse order after
 *                             draining (server/worker.c)
 *   worker, every second      stats of every service, into the shared
 *                             metrics block (server/metrics.c)
 *
 * Each service defines its record beside its code (host_db_service in
 * bind/db.c, ...) and reads its own settings from the environment
 * (base/config.h). The order of the registry is server/services.c's. */
#ifndef MOONKEEP_SERVICE_H
#define MOONKEEP_SERVICE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

/* One number a service reports for /metrics. */
struct host_stat {
    const char *name;       /* the Prometheus name: moonkeep_... */
    const char *help;
    int counter;            /* 1: a total since the service started, which
                               only goes up; 0: a gauge, the value now */
};

/* The most numbers all services together report (the metrics block has a
 * slot for each, per worker). */
#define HOST_SERVICE_STATS_MAX 32

struct host_service {
    const char *name;
    /* Reads and checks every setting the service will read in init. 0, or
     * -1 with why in err (never a secret). A malformed number exits with
     * status 2, as config_env_long does. NULL: nothing to check. */
    int (*check_config)(char *err, size_t cap);
    /* 0, or -1 after logging why. NULL: nothing to start. */
    int (*init)(struct event_base *base);
    /* Idempotent; frees what init made; safe when init never ran or failed
     * half-way. NULL: nothing to stop. */
    void (*shutdown)(void);
    /* Writes the value of each entry of stat_list, in order, into values
     * (zeros before init). Loop thread. NULL: no numbers. */
    void (*stats)(int64_t *values);
    const struct host_stat *stat_list; /* ends with {NULL, NULL, 0} */
};

/* Every service, in start order, ending with NULL. Defined by
 * server/services.c (the spec module host.so has none). */
extern const struct host_service *const host_services[];

#endif
