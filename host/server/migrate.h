/* migrate.h — schema migrations, applied by the master with blocking libpq. */
#ifndef MOONKEEP_MIGRATE_H
#define MOONKEEP_MIGRATE_H

#include "base/config.h"

/* Applies every migrations/NNNN_name.sql not yet recorded in
 * schema_migrations, in order, each in its own transaction, under a
 * PostgreSQL advisory lock so that replicas starting together take turns.
 * Waits up to `wait_s` seconds for the database to accept connections.
 * Returns 0, or -1 after logging why. */
int host_migrate(const struct config *cfg, int wait_s);

#endif
