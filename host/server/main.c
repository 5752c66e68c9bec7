/* main.c — the command line: serve (default), migrate, check, import, version. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/config.h"
#include "base/log.h"
#include "lua/vm.h"
#include "server/import.h"
#include "server/migrate.h"
#include "server/supervisor.h"

static const char usage[] =
    "usage: moonkeep [command]\n"
    "\n"
    "commands:\n"
    "  serve     run the HTTP server: master + workers (the default)\n"
    "  migrate   apply pending database migrations and exit\n"
    "  check     load the scripts and run their self-check; exit 1 on error\n"
    "  import --from <libpq URL> [--dry-run]\n"
    "            copy the Flask service's admins and users in (docs/import.md)\n"
    "  reload    ask the running server (PID_FILE) to reload its scripts\n"
    "  version   print the version and commit\n"
    "  help      this text\n"
    "\n"
    "Configuration comes from the environment; see docs/configuration.md.\n";

/* SIGHUP to the master named by PID_FILE (default var/moonkeep.pid). */
static int run_reload(void)
{
    const char *path = host_config_env_str("PID_FILE", "var/moonkeep.pid");
    FILE *f = fopen(path, "r");
    char line[32] = "";
    char *end = NULL;
    if (f) {
        if (fgets(line, sizeof line, f) == NULL) line[0] = '\0';
        fclose(f);
    }
    long pid = strtol(line, &end, 10);
    if (end == line || pid <= 1) {
        fprintf(stderr, "moonkeep: no server pid in %s (set PID_FILE)\n", path);
        return 1;
    }
    if (kill((pid_t)pid, SIGHUP) != 0) {
        fprintf(stderr, "moonkeep: cannot signal %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    printf("reload requested from moonkeep %ld\n", pid);
    return 0;
}

static int run_check(const struct config *cfg)
{
    char err[1024];
    struct generation *gen = host_generation_load(cfg->scripts_dir, 0, NULL, err, sizeof err);
    if (gen == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    host_generation_unref(gen);
    printf("scripts in %s: ok\n", cfg->scripts_dir);
    return 0;
}

int main(int argc, char **argv)
{
    const char *command = argc > 1 ? argv[1] : "serve";
    struct config cfg;
    int status;

    if (!strcmp(command, "help") || !strcmp(command, "--help") || !strcmp(command, "-h")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(command, "version") || !strcmp(command, "--version")) {
        printf("moonkeep %s (%s)\n", MOONKEEP_VERSION, MOONKEEP_COMMIT);
        return 0;
    }
    if (!strcmp(command, "reload")) return run_reload();
    int import = !strcmp(command, "import"); /* the one command with arguments */
    if (!import && (argc > 2 || (strcmp(command, "serve") != 0 && strcmp(command, "migrate") != 0 &&
                                 strcmp(command, "check") != 0))) {
        fputs(usage, stderr);
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "moonkeep: libsodium failed to initialise\n");
        return 1;
    }
    if (host_config_load(&cfg) != 0) return 2;
    host_log_init(cfg.log_level, strcmp(command, "serve") ? "cli" : "master");

    if (!strcmp(command, "check")) status = run_check(&cfg);
    else if (import) status = host_import_run(&cfg, argc - 2, argv + 2);
    else if (!strcmp(command, "migrate")) status = host_migrate(&cfg, 30) == 0 ? 0 : 1;
    else status = host_supervisor_run(&cfg);
    host_config_free(&cfg);
    return status;
}
