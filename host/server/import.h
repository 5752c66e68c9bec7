/* import.h — `moonkeep import`: the Flask service's database into moonkeep,
 * run by scripts/tools/import.lua on the host's bindings (docs/import.md). */
#ifndef MOONKEEP_IMPORT_H
#define MOONKEEP_IMPORT_H

#include "base/config.h"

/* Runs `moonkeep import --from <libpq URL> [--dry-run]`; `argc`/`argv` are
 * the arguments after "import". Applies pending migrations (as serve does,
 * unless MIGRATE_ON_START=false), reads the source tables named by the
 * script in one read-only snapshot, then runs the script in a task on an
 * event loop with the db and password services. The report goes to stdout,
 * log lines to stderr. Returns the exit status: 0 done, 3 done with rows
 * refused, 1 failed, 2 usage. */
int host_import_run(const struct config *cfg, int argc, char **argv);

#endif
