/* snapshot.h — script snapshots: immutable, checked copies of SCRIPTS_DIR.
 *
 * Workers never load scripts from SCRIPTS_DIR itself. The master copies the
 * tree into RUNTIME_DIR/gen-N, loads the copy once to run its self-check,
 * and only then publishes it as the current snapshot. So a half-saved file
 * is never served, every worker (including one started later) loads the
 * same code, and a broken change is refused once, in one place. */
#ifndef MOONKEEP_SNAPSHOT_H
#define MOONKEEP_SNAPSHOT_H

#include <limits.h>

#include "base/config.h"

struct snapshot {
    unsigned long id;       /* 1, 2, ... in the life of the master */
    char digest[65];        /* SHA-256 of the sorted (path, content) pairs */
    char path[PATH_MAX];    /* the copy to load from */
};

/* Master: creates the runtime folder (RUNTIME_DIR, or a fresh one under
 * /tmp) and publishes the first snapshot. Returns 0, or -1 after logging
 * why (the scripts do not load: the server must not start). */
int host_snapshot_init(const struct config *cfg);

/* Master: snapshots SCRIPTS_DIR again. Returns 1 when a new snapshot was
 * published, 0 when nothing changed, -1 when the change was refused (logged,
 * and recorded in the status file with file:line of the error). */
int host_snapshot_refresh(const struct config *cfg);

/* Any process: the snapshot published last. Returns 0 or -1. */
int host_snapshot_current(struct snapshot *out);

/* Master: removes the runtime folder (when it created it). */
void host_snapshot_cleanup(void);

#endif
