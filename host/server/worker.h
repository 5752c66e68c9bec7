/* worker.h — one worker process: an event loop, an evhttp server on the
 * shared listening socket, and the current script generation. */
#ifndef MOONKEEP_WORKER_H
#define MOONKEEP_WORKER_H

#include "base/config.h"
#include "server/worker_state.h"

/* Runs a worker until it has drained after SIGTERM/SIGINT. `listen_fd` is the
 * master's bound socket. Returns the process exit status. */
int host_worker_run(const struct config *cfg, int listen_fd);

/* Switches to the snapshot the master published last, when it is not the
 * current one; keeps the current generation when it does not load. */
void host_worker_reload(struct worker *w);

#endif
