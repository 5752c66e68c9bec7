/* main.c — the command line: serve (default), migrate, check, version. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "log.h"
#include "migrate.h"
#include "supervisor.h"
#include "vm.h"

static const char usage[] =
    "usage: moonkeep [command]\n"
    "\n"
    "commands:\n"
    "  serve     run the HTTP server: master + workers (the default)\n"
    "  migrate   apply pending database migrations and exit\n"
    "  check     load the scripts and run their self-check; exit 1 on error\n"
    "  version   print the version and commit\n"
    "  help      this text\n"
    "\n"
    "Configuration comes from the environment; see README.md.\n";

static int run_check(const struct config *cfg)
{
    char err[1024];
    struct generation *gen = host_generation_load(cfg->scripts_dir, err, sizeof err);
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
    if (argc > 2 || (strcmp(command, "serve") && strcmp(command, "migrate") && strcmp(command, "check"))) {
        fputs(usage, stderr);
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "moonkeep: libsodium failed to initialise\n");
        return 1;
    }
    if (config_load(&cfg) != 0) return 2;
    host_log_init(cfg.log_level, strcmp(command, "serve") ? "cli" : "master");

    if (!strcmp(command, "check")) status = run_check(&cfg);
    else if (!strcmp(command, "migrate")) status = host_migrate(&cfg, 30) == 0 ? 0 : 1;
    else status = host_supervisor_run(&cfg);
    config_free(&cfg);
    return status;
}
