/* supervisor.c — the master: owns the listening socket and the worker
 * processes. It runs no event loop of its own (a libevent base would be
 * inherited by every fork); signals arrive through a signalfd and poll(2)
 * doubles as the restart-backoff timer.
 *
 * A worker that dies is restarted; one that dies again within
 * FAST_DEATH_S of its start waits twice as long as last time (0.1 s up to
 * 10 s) so a crash loop cannot spin the machine. */
#include "server/supervisor.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/service.h"
#include "server/metrics.h"
#include "server/migrate.h"
#include "server/snapshot.h"
#include "server/worker.h"

#define FAST_DEATH_S 5.0
#define BACKOFF_MIN_S 0.1
#define BACKOFF_MAX_S 10.0
#define KILL_MARGIN_S 5.0
#define RELOAD_DEBOUNCE_S 0.15

struct slot {
    pid_t pid;          /* 0 when not running */
    double started;
    double restart_at;  /* when pid == 0 and not draining */
    double backoff;
};

struct master {
    const struct config *cfg;
    int listen_fd;
    int metrics_fd;     /* METRICS_PORT listener, -1 when unset */
    int signal_fd;
    struct slot *slots;
    int draining;
    double kill_at;
    int failed;         /* a worker exited badly during the drain */
    int watch_fd;       /* inotify on SCRIPTS_DIR, -1 when unavailable */
    double reload_at;   /* debounced reload after file changes; 0 = none */
};

static int bind_listener(const char *host, int port_number)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char port[16];
    int fd = -1;
    snprintf(port, sizeof port, "%d", port_number);
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        struct log_line *line = host_log_begin(LOG_ERROR, "cannot resolve HOST");
        host_log_str(line, "error", gai_strerror(rc));
        host_log_end(line);
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        struct log_line *line = host_log_begin(LOG_ERROR, "cannot listen");
        host_log_str(line, "host", host);
        host_log_int(line, "port", port_number);
        host_log_str(line, "error", strerror(errno));
        host_log_end(line);
    }
    return fd;
}

static void spawn(struct master *m, struct slot *s)
{
    pid_t pid = fork();
    if (pid < 0) {
        s->restart_at = host_now() + BACKOFF_MAX_S;
        host_log(LOG_ERROR, "fork failed; retrying later");
        return;
    }
    if (pid == 0) {
        close(m->signal_fd);
        if (m->watch_fd >= 0) close(m->watch_fd);
        /* The signals stay blocked until the worker's own handlers are in
         * place (host_worker_run): a SIGTERM sent right after the fork then
         * drains the worker instead of killing it. */
        host_log_init(m->cfg->log_level, "worker");
        host_metrics_attach((int)(s - m->slots));
        /* exit, not _exit: the sanitizer build checks the worker for leaks */
        exit(host_worker_run(m->cfg, m->listen_fd));
    }
    s->pid = pid;
    s->started = host_now();
}

static void describe_exit(struct log_line *line, int wstatus)
{
    if (WIFEXITED(wstatus)) {
        host_log_int(line, "exit_status", WEXITSTATUS(wstatus));
    } else if (WIFSIGNALED(wstatus)) {
        host_log_int(line, "signal", WTERMSIG(wstatus));
        host_log_str(line, "signal_name", strsignal(WTERMSIG(wstatus)));
    }
}

static void reap(struct master *m)
{
    int wstatus;
    pid_t pid;
    while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
        for (int i = 0; i < m->cfg->workers; i++) {
            struct slot *s = &m->slots[i];
            if (s->pid != pid) continue;
            s->pid = 0;
            int clean = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
            host_metrics_worker_exited(i, !m->draining);
            if (m->draining) {
                if (!clean) m->failed = 1;
                struct log_line *line = host_log_begin(clean ? LOG_INFO : LOG_WARN, "worker exited");
                host_log_int(line, "worker_pid", pid);
                describe_exit(line, wstatus);
                host_log_end(line);
                break;
            }
            double lived = host_now() - s->started;
            s->backoff = lived < FAST_DEATH_S
                ? (s->backoff < BACKOFF_MIN_S ? BACKOFF_MIN_S : s->backoff * 2)
                : 0;
            if (s->backoff > BACKOFF_MAX_S) s->backoff = BACKOFF_MAX_S;
            s->restart_at = host_now() + s->backoff;
            struct log_line *line = host_log_begin(LOG_ERROR, "worker died; restarting");
            host_log_int(line, "worker_pid", pid);
            describe_exit(line, wstatus);
            host_log_num(line, "lived_s", lived);
            host_log_num(line, "restart_in_s", s->backoff);
            host_log_end(line);
            break;
        }
    }
}

static void signal_workers(struct master *m, int sig)
{
    for (int i = 0; i < m->cfg->workers; i++)
        if (m->slots[i].pid > 0) kill(m->slots[i].pid, sig);
}

/* Stops new connections from arriving without resetting the ones already
 * in the accept queue: closing the socket would reset those (the client sees
 * a dropped request), so a socket filter that drops new SYNs is attached
 * instead. Handshakes already under way complete (their ACK passes), the
 * workers accept what is queued, and the socket closes when the master
 * exits (late clients, retrying their SYN, then get a refusal). The filter
 * sees the TCP header at offset 0; byte 13 holds the flags. */
static void refuse_new_connections(int fd)
{
    struct sock_filter drop_syn[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),      /* SYN | ACK */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 1, 0), /* a bare SYN? */
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog prog = {.len = 5, .filter = drop_syn};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) == 0) return;
    /* Some kernels want CAP_NET_ADMIN for this (seen in containers). Then
     * the accept queue is cut to its least instead: once one connection
     * waits in it, the kernel drops further SYNs as the filter would, so at
     * most that one is reset when the socket closes, not a whole backlog. */
    int saved = errno;
    (void)listen(fd, 0);
    struct log_line *line = host_log_begin(LOG_WARN, "cannot filter the listening socket; its accept queue is cut instead");
    host_log_str(line, "error", strerror(saved));
    host_log_end(line);
}

static void begin_drain(struct master *m)
{
    if (m->draining) return;
    m->draining = 1;
    m->kill_at = host_now() + m->cfg->shutdown_grace_s + KILL_MARGIN_S;
    refuse_new_connections(m->listen_fd);
    host_log(LOG_INFO, "draining: refusing new connections, waiting for workers");
    signal_workers(m, SIGTERM);
}

static int workers_alive(const struct master *m)
{
    int n = 0;
    for (int i = 0; i < m->cfg->workers; i++) n += m->slots[i].pid > 0;
    return n;
}

/* Milliseconds until the next thing the master must do by itself. */
static int next_timeout_ms(const struct master *m)
{
    double now = host_now(), next = now + 1.0;
    if (m->draining) {
        if (m->kill_at < next) next = m->kill_at;
    } else {
        for (int i = 0; i < m->cfg->workers; i++)
            if (m->slots[i].pid == 0 && m->slots[i].restart_at < next) next = m->slots[i].restart_at;
        if (m->reload_at > 0 && m->reload_at < next) next = m->reload_at;
    }
    double ms = (next - now) * 1000.0;
    return ms < 0 ? 0 : (int)ms + 1;
}

/* Snapshots the scripts; workers are told only when a checked snapshot
 * was published. */
static void reload(struct master *m)
{
    m->reload_at = 0;
    if (m->draining) return;
    int outcome = host_snapshot_refresh(m->cfg);
    host_metrics_scripts_refreshed(outcome);
    if (outcome == 1) signal_workers(m, SIGHUP);
}

/* ---- watching SCRIPTS_DIR ----------------------------------------------- */

static int watch_fd_for_walk; /* nftw has no user pointer */

static int add_watch_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_D)
        inotify_add_watch(watch_fd_for_walk, path,
            IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB);
    return 0;
}

/* (Re)adds a watch on every folder of the tree; inotify is not recursive,
 * and a folder created later needs its own. Adding twice is harmless. */
static void watch_tree(struct master *m)
{
    if (m->watch_fd < 0) return;
    watch_fd_for_walk = m->watch_fd;
    nftw(m->cfg->scripts_dir, add_watch_cb, 16, FTW_PHYS);
}

static void handle_watch(struct master *m)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int changed = 0;
    ssize_t n;
    while ((n = read(m->watch_fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->mask & IN_ISDIR) watch_tree(m);
            changed = 1;
            p += sizeof *ev + ev->len;
        }
    }
    /* Editors save in bursts (temp file, rename, chmod): wait for quiet. */
    if (changed) m->reload_at = host_now() + RELOAD_DEBOUNCE_S;
}

static void handle_signal(struct master *m)
{
    struct signalfd_siginfo si;
    while (read(m->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap(m);
            break;
        case SIGHUP:
            host_log(LOG_INFO, "reload requested");
            reload(m);
            break;
        default: /* SIGTERM, SIGINT */
            begin_drain(m);
        }
    }
}

/* PID_FILE, when set, names the master for `moonkeep reload`. */
static void write_pid_file(void)
{
    const char *path = config_env_str("PID_FILE", NULL);
    FILE *f = path ? fopen(path, "w") : NULL;
    if (path && f == NULL) {
        struct log_line *line = host_log_begin(LOG_WARN, "cannot write PID_FILE");
        host_log_str(line, "error", strerror(errno));
        host_log_end(line);
        return;
    }
    if (f) {
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
}

static void remove_pid_file(void)
{
    const char *path = config_env_str("PID_FILE", NULL);
    if (path) unlink(path);
}

/* Binds the listening socket and, with METRICS_PORT, the metrics one, and
 * maps the shared metrics block: all before the first fork, so that every
 * worker inherits them. Returns 0, or -1 after logging why. */
static int open_listeners(struct master *m)
{
    const struct config *cfg = m->cfg;
    if ((m->listen_fd = bind_listener(cfg->host, cfg->port)) < 0) return -1;
    if (cfg->metrics_port > 0 && (m->metrics_fd = bind_listener(cfg->metrics_host, cfg->metrics_port)) < 0)
        return -1;
    if (host_metrics_setup(cfg->workers, m->metrics_fd) != 0) return -1;
    struct log_line *line = host_log_begin(LOG_INFO, "listening");
    host_log_str(line, "host", cfg->host);
    host_log_int(line, "port", cfg->port);
    host_log_int(line, "workers", cfg->workers);
    if (cfg->metrics_port > 0) host_log_int(line, "metrics_port", cfg->metrics_port);
    host_log_end(line);
    return 0;
}

static void close_listeners(struct master *m)
{
    if (m->listen_fd >= 0) close(m->listen_fd);
    if (m->metrics_fd >= 0) close(m->metrics_fd);
}

/* Settings that would make every worker fail are refused before forking:
 * every service checks its own (base/service.h). */
static int check_settings(void)
{
    char err[512];
    for (const struct host_service *const *s = host_services; *s; s++) {
        if ((*s)->check_config == NULL) continue;
        err[0] = '\0';
        if ((*s)->check_config(err, sizeof err) != 0) {
            struct log_line *line = host_log_begin(LOG_ERROR, "configuration refused; not starting");
            host_log_str(line, "service", (*s)->name);
            host_log_str(line, "error", err);
            host_log_end(line);
            return -1;
        }
    }
    return 0;
}

/* One pass of the drain: -1 while workers remain, else the exit status. */
static int drain_step(struct master *m, double now)
{
    if (workers_alive(m) == 0) return m->failed ? 1 : 0;
    if (now >= m->kill_at) {
        host_log(LOG_ERROR, "workers did not stop in time; killing them");
        signal_workers(m, SIGKILL);
        m->failed = 1;
        m->kill_at = now + 3600;
    }
    return -1;
}

/* The master's loop: signals, file changes, restarts, until drained.
 * Returns the process exit status. */
static int supervise(struct master *m)
{
    for (;;) {
        struct pollfd pfd[2] = {{.fd = m->signal_fd, .events = POLLIN}, {.fd = m->watch_fd, .events = POLLIN}};
        int n = poll(pfd, m->watch_fd >= 0 ? 2 : 1, next_timeout_ms(m));
        if (n < 0 && errno != EINTR) return 1;
        if (n > 0 && (pfd[0].revents & POLLIN)) handle_signal(m);
        if (n > 0 && m->watch_fd >= 0 && (pfd[1].revents & POLLIN)) handle_watch(m);
        double now = host_now();
        if (m->reload_at > 0 && now >= m->reload_at) reload(m);
        if (m->draining) {
            int status = drain_step(m, now);
            if (status >= 0) return status;
            continue;
        }
        for (int i = 0; i < m->cfg->workers; i++)
            if (m->slots[i].pid == 0 && now >= m->slots[i].restart_at) spawn(m, &m->slots[i]);
    }
}

int host_supervisor_run(const struct config *cfg)
{
    struct master m = {.cfg = cfg, .listen_fd = -1, .metrics_fd = -1, .signal_fd = -1, .watch_fd = -1};
    sigset_t mask;
    int status = 1;

    if (check_settings() != 0 || host_snapshot_init(cfg) != 0) {
        host_snapshot_cleanup();
        return 1;
    }
    if (cfg->migrate_on_start && host_migrate(cfg, 30) != 0) return 1;

    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    m.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    m.slots = calloc((size_t)cfg->workers, sizeof *m.slots);
    if (m.signal_fd < 0 || m.slots == NULL) goto done;
    if (open_listeners(&m) != 0) goto done;
    m.watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (m.watch_fd < 0) host_log(LOG_WARN, "inotify unavailable: scripts reload on SIGHUP only");
    watch_tree(&m);
    write_pid_file();

    for (int i = 0; i < cfg->workers; i++) spawn(&m, &m.slots[i]);
    status = supervise(&m);
    host_log(LOG_INFO, status == 0 ? "stopped" : "stopped with errors");

done:
    close_listeners(&m);
    if (m.signal_fd >= 0) close(m.signal_fd);
    if (m.watch_fd >= 0) close(m.watch_fd);
    free(m.slots);
    host_metrics_teardown();
    host_snapshot_cleanup();
    remove_pid_file();
    return status;
}
