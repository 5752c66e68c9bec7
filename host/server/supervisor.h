/* supervisor.h — the master process of `moonkeep serve`. */
#ifndef MOONKEEP_SUPERVISOR_H
#define MOONKEEP_SUPERVISOR_H

#include "base/config.h"

/* Checks the scripts, runs migrations (when configured), binds the socket,
 * forks and supervises the workers until SIGTERM/SIGINT has drained them.
 * Returns the process exit status. */
int host_supervisor_run(const struct config *cfg);

#endif
