/* password.c — host.password: argon2id hashes (libsodium crypto_pwhash,
 * ALG_ARGON2ID13) for hash, verify, verify_dummy and needs_rehash.
 *
 * Where the work runs: inside a host task (a request) hash/verify/
 * verify_dummy become a job for this worker's thread pool and the coroutine
 * suspends; a pool thread runs the job, puts it on the done list and writes
 * the eventfd; the loop thread's pool_done_cb takes the done list and
 * resumes each task (job_resume). The event loop never hashes. Outside a
 * task (the main chunk, plain luajit with build/lua/host.so) the same
 * functions run synchronously on the caller's thread.
 *
 * Owns: the pool (process-wide: one worker process has one event loop), its
 * threads, eventfd and event; every queued/running/done job; the lazily made
 * dummy hash. Per VM, only a small params userdata (upvalue 1 of each
 * function), read from the environment when the module is opened.
 *
 * A job is malloc'd by the loop thread, owned by the queue, then by the
 * thread that runs it, then by the done list, and freed by the loop thread
 * (job_free: the password copy is wiped first). A job whose task was aborted
 * is marked cancelled (or unlinked and freed at once if still queued) and is
 * freed when it comes back without touching Lua. Passwords are never logged. */
#include "bind/password.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <sodium.h>

#include "base/config.h"
#include "base/log.h"
#include "lua/task.h"
#include "bind/pwhash_memory.h"

/* Niceness of the hashing threads (see pool_thread). */
#define HASH_THREAD_NICE 10
/* A hashing thread idle this long gives its argon2id memory back
 * (pwhash_memory.c), so an idle worker is small again. */
#define HASH_MEMORY_IDLE_S 2

#define ARGON2ID_PREFIX "$argon2id$"
#define ARGON2I_PREFIX "$argon2i$"

/* ---- parameters --------------------------------------------------------- */

struct pw_params {
    unsigned long long opslimit;
    size_t memlimit;             /* bytes */
};

/* Reads ARGON2_OPSLIMIT and ARGON2_MEMLIMIT_KIB. Returns 0, or -1 with the
 * reason when they are below the OWASP minimum and the insecure switch is
 * not set. */
static int read_params(struct pw_params *p, char *err, size_t errlen)
{
    long ops = config_env_long("ARGON2_OPSLIMIT", HOST_PASSWORD_MIN_OPSLIMIT, 1, 64);
    long kib = config_env_long("ARGON2_MEMLIMIT_KIB", HOST_PASSWORD_MIN_MEMLIMIT_KIB, 8, 4L << 20);
    int insecure = strcmp(config_env_str("MOONKEEP_INSECURE_FAST_HASH", "0"), "1") == 0;
    if (!insecure && (ops < HOST_PASSWORD_MIN_OPSLIMIT || kib < HOST_PASSWORD_MIN_MEMLIMIT_KIB)) {
        snprintf(err, errlen,
                 "ARGON2_OPSLIMIT=%ld, ARGON2_MEMLIMIT_KIB=%ld is below the minimum (%d, %d); "
                 "MOONKEEP_INSECURE_FAST_HASH=1 allows it, for tests only",
                 ops, kib, HOST_PASSWORD_MIN_OPSLIMIT, HOST_PASSWORD_MIN_MEMLIMIT_KIB);
        return -1;
    }
    p->opslimit = (unsigned long long)ops;
    p->memlimit = (size_t)kib * 1024;
    return 0;
}

/* HASH_THREADS and HASH_QUEUE_MAX (a malformed number exits). */
static void read_pool_settings(int *nthreads, size_t *queue_max)
{
    *nthreads = (int)config_env_long("HASH_THREADS", 2, 1, 64);
    *queue_max = (size_t)config_env_long("HASH_QUEUE_MAX", 256, 1, 1000000);
}

int host_password_check_config(char *err, size_t errlen)
{
    struct pw_params p;
    int nthreads;
    size_t queue_max;
    read_pool_settings(&nthreads, &queue_max);
    return read_params(&p, err, errlen);
}

/* ---- jobs --------------------------------------------------------------- */

enum job_kind { JOB_HASH, JOB_VERIFY, JOB_VERIFY_DUMMY };
enum job_state { JOB_NEW, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct pw_job {
    struct pw_job *next;            /* queue or done list */
    enum job_kind kind;
    enum job_state state;           /* changed under pool.mu */
    int cancelled;                  /* its task was aborted: never resume */
    int owns_pw;                    /* pw is our malloc'd copy (async jobs) */
    struct host_task *task;         /* the waiting task (async jobs) */
    struct pw_params params;
    const char *pw;                 /* owned copy, or the caller's Lua string */
    size_t pwlen;
    char hash[crypto_pwhash_STRBYTES]; /* in: stored hash; out: new hash */
    int rc;                         /* 0: hashed / matched; -1 otherwise */
};

/* The dummy hash for verify_dummy: made once per process with the params of
 * its first use, remade only if a later job brings other params (specs that
 * reopen the module). Pool threads share it, hence the lock. */
static struct {
    pthread_mutex_t mu;
    int ready;
    struct pw_params params;
    char hash[crypto_pwhash_STRBYTES];
} dummy = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void dummy_hash_copy(const struct pw_params *p, char out[crypto_pwhash_STRBYTES])
{
    pthread_mutex_lock(&dummy.mu);
    if (!dummy.ready || dummy.params.opslimit != p->opslimit || dummy.params.memlimit != p->memlimit) {
        unsigned char random_pw[32];
        randombytes_buf(random_pw, sizeof random_pw);
        dummy.ready = crypto_pwhash_str_alg(dummy.hash, (const char *)random_pw, sizeof random_pw,
                                            p->opslimit, p->memlimit,
                                            crypto_pwhash_ALG_ARGON2ID13) == 0;
        dummy.params = *p;
        sodium_memzero(random_pw, sizeof random_pw);
    }
    memcpy(out, dummy.ready ? dummy.hash : "", dummy.ready ? crypto_pwhash_STRBYTES : 1);
    pthread_mutex_unlock(&dummy.mu);
}

/* The argon2id work itself; any thread. */
static void job_run(struct pw_job *job)
{
    switch (job->kind) {
    case JOB_HASH:
        job->rc = crypto_pwhash_str_alg(job->hash, job->pw, job->pwlen, job->params.opslimit,
                                        job->params.memlimit, crypto_pwhash_ALG_ARGON2ID13);
        break;
    case JOB_VERIFY:
        job->rc = crypto_pwhash_str_verify(job->hash, job->pw, job->pwlen);
        break;
    case JOB_VERIFY_DUMMY:
        dummy_hash_copy(&job->params, job->hash);
        /* Whatever the outcome (a match is next to impossible: the dummy's
         * password is random and forgotten), there is no such account. */
        job->rc = -1;
        if (crypto_pwhash_str_verify(job->hash, job->pw, job->pwlen) == 0) job->rc = -1;
        break;
    }
}

/* Pushes what the Lua function returns for a finished job. Stack: +1 or +2. */
static int job_push_result(lua_State *L, const struct pw_job *job)
{
    if (job->kind != JOB_HASH) {
        lua_pushboolean(L, job->rc == 0);
        return 1;
    }
    if (job->rc == 0) {
        lua_pushstring(L, job->hash);
        return 1;
    }
    lua_pushnil(L);
    lua_pushliteral(L, "hash failed (out of memory?)");
    return 2;
}

/* Wipes and frees an async job. Loop thread, or shutdown. */
static void job_free(struct pw_job *job)
{
    if (job->owns_pw) {
        sodium_memzero((void *)job->pw, job->pwlen);
        free((void *)job->pw);
    }
    sodium_memzero(job, sizeof *job);
    free(job);
}

/* ---- the pool ----------------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int accepting;                  /* init done, shutdown not begun */
    int stopping;                   /* threads: leave now */
    struct pw_job *queue_head, *queue_tail;
    size_t queued, queue_max;
    size_t running;                 /* jobs a thread is working on */
    size_t memory_kept;             /* bytes the threads keep mapped (pwhash_memory.c) */
    unsigned long rejected;         /* submits refused since init (loop thread) */
    struct pw_job *done_head, *done_tail;
    pthread_t *threads;
    int nthreads;                   /* started, to join */
    int efd;
    struct event *done_ev;
} pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
    .efd = -1,
};

/* Tells the pool how much memory this thread keeps now; it kept `*held`
 * before. Under pool.mu. */
static void account_kept_memory(size_t *held)
{
    size_t now = host_pwhash_memory_held();
    pool.memory_kept = pool.memory_kept - *held + now;
    *held = now;
}

static void *pool_thread(void *arg)
{
    size_t held = 0;
    (void)arg;
    /* Hashing yields the cores to the event loops: a login storm must not
     * slow every other request of the worker (Linux nices threads one by
     * one). */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), HASH_THREAD_NICE); /* may fail: then unchanged */
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (!pool.stopping && pool.queue_head == NULL) {
            if (host_pwhash_memory_held() == 0) {
                pthread_cond_wait(&pool.cv, &pool.mu);
                continue;
            }
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += HASH_MEMORY_IDLE_S;
            if (pthread_cond_clockwait(&pool.cv, &pool.mu, CLOCK_MONOTONIC, &until) == ETIMEDOUT) {
                host_pwhash_memory_release();
                account_kept_memory(&held);
            }
        }
        if (pool.stopping) break; /* shutdown frees what is still queued */
        struct pw_job *job = pool.queue_head;
        pool.queue_head = job->next;
        if (pool.queue_head == NULL) pool.queue_tail = NULL;
        pool.queued--;
        pool.running++;
        job->next = NULL;
        job->state = JOB_RUNNING;
        pthread_mutex_unlock(&pool.mu);

        host_pwhash_memory_begin();
        job_run(job); /* the job is this thread's until it is on the done list */
        host_pwhash_memory_end();

        pthread_mutex_lock(&pool.mu);
        account_kept_memory(&held);
        pool.running--;
        job->state = JOB_DONE;
        if (pool.done_tail) pool.done_tail->next = job;
        else pool.done_head = job;
        pool.done_tail = job;
        uint64_t one = 1;
        /* cannot fail short of 2^64-1 pending wakeups; nonblocking */
        ssize_t w = write(pool.efd, &one, sizeof one);
        (void)w;
    }
    host_pwhash_memory_release();
    account_kept_memory(&held);
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* Hands a job to the pool. Returns 0, or -1 when the pool is not running or
 * its queue is full (the caller keeps the job). Loop thread. */
static int pool_submit(struct pw_job *job)
{
    pthread_mutex_lock(&pool.mu);
    if (!pool.accepting || pool.queued >= pool.queue_max) {
        if (pool.accepting) pool.rejected++;
        pthread_mutex_unlock(&pool.mu);
        return -1;
    }
    job->state = JOB_QUEUED;
    job->next = NULL;
    if (pool.queue_tail) pool.queue_tail->next = job;
    else pool.queue_head = job;
    pool.queue_tail = job;
    pool.queued++;
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    return 0;
}

/* host_task cancel_fn: the task was aborted. A queued job is unlinked and
 * freed now; a running or done one is marked and freed when it comes back. */
static void job_cancel(void *op)
{
    struct pw_job *job = op;
    pthread_mutex_lock(&pool.mu);
    if (job->state == JOB_QUEUED) {
        struct pw_job **p = &pool.queue_head, *prev = NULL;
        while (*p != job) {
            prev = *p;
            p = &(*p)->next;
        }
        *p = job->next;
        if (pool.queue_tail == job) pool.queue_tail = prev;
        pool.queued--;
        pthread_mutex_unlock(&pool.mu);
        job_free(job);
        return;
    }
    job->cancelled = 1;
    pthread_mutex_unlock(&pool.mu);
}

/* Resumes the task of one finished job; frees the job first, since the
 * resumed script may run anything (including new jobs). */
static void job_resume(struct pw_job *job)
{
    if (job->cancelled) {
        job_free(job);
        return;
    }
    struct host_task *task = job->task;
    lua_State *co = host_task_thread(task);
    lua_checkstack(co, 2);
    int nresults = job_push_result(co, job);
    job_free(job);
    host_task_resume(task, nresults);
}

/* The eventfd is readable: some jobs are done. Loop thread. */
static void pool_done_cb(evutil_socket_t fd, short what, void *arg)
{
    uint64_t count;
    (void)what;
    (void)arg;
    ssize_t r = read(fd, &count, sizeof count); /* resets the counter */
    (void)r;
    pthread_mutex_lock(&pool.mu);
    struct pw_job *list = pool.done_head;
    pool.done_head = pool.done_tail = NULL;
    pthread_mutex_unlock(&pool.mu);
    while (list) {
        struct pw_job *job = list;
        list = job->next;
        job_resume(job);
    }
}

static void free_list(struct pw_job *job)
{
    while (job) {
        struct pw_job *next = job->next;
        job_free(job);
        job = next;
    }
}

int host_password_init(struct event_base *base)
{
    char err[256];
    struct pw_params params;
    sigset_t all, old;
    if (read_params(&params, err, sizeof err) != 0) {
        struct log_line *line = host_log_begin(LOG_ERROR, "password hashing refuses its parameters");
        host_log_str(line, "error", err);
        host_log_end(line);
        return -1;
    }
    int nthreads;
    read_pool_settings(&nthreads, &pool.queue_max);
    pool.stopping = 0;
    pool.rejected = 0;

    pool.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pool.efd < 0) goto fail;
    pool.done_ev = event_new(base, pool.efd, EV_READ | EV_PERSIST, pool_done_cb, NULL);
    if (pool.done_ev == NULL || event_add(pool.done_ev, NULL) != 0) goto fail;
    pool.threads = calloc((size_t)nthreads, sizeof *pool.threads);
    if (pool.threads == NULL) goto fail;

    /* Signals stay with the loop thread (libevent's evsignal). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&pool.threads[i], NULL, pool_thread, NULL) != 0) break;
        pool.nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pool.nthreads != nthreads) goto fail;

    pthread_mutex_lock(&pool.mu);
    pool.accepting = 1;
    pthread_mutex_unlock(&pool.mu);
    return 0;

fail:
    host_log(LOG_ERROR, "password hashing pool cannot start (eventfd, event or threads)");
    host_password_shutdown();
    return -1;
}

void host_password_shutdown(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.accepting = 0;
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.nthreads; i++)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pool.threads = NULL;
    pool.nthreads = 0;

    /* No thread is left: the lists are ours. No task waits on these jobs
     * (the worker drained), so they are freed without resuming anything. */
    free_list(pool.queue_head);
    free_list(pool.done_head);
    pool.queue_head = pool.queue_tail = pool.done_head = pool.done_tail = NULL;
    pool.queued = 0;
    if (pool.done_ev) event_free(pool.done_ev);
    pool.done_ev = NULL;
    if (pool.efd >= 0) close(pool.efd);
    pool.efd = -1;
}

void host_password_stats(struct host_password_stats *out)
{
    pthread_mutex_lock(&pool.mu);
    out->threads = pool.accepting ? (unsigned long)pool.nthreads : 0;
    out->queued = pool.accepting ? pool.queued : 0;
    out->running = pool.accepting ? pool.running : 0;
    out->rejected = pool.rejected;
    out->memory_kept = pool.accepting ? pool.memory_kept : 0;
    pthread_mutex_unlock(&pool.mu);
}

/* ---- Lua functions ------------------------------------------------------ */

static const struct pw_params *params_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* A string libsodium could take as a stored argon2 hash: shorter than
 * crypto_pwhash_STRBYTES, no NUL, an argon2i(d) prefix. */
static int hash_shape_ok(const char *hash, size_t len)
{
    return len < crypto_pwhash_STRBYTES && strlen(hash) == len &&
           (strncmp(hash, ARGON2ID_PREFIX, sizeof ARGON2ID_PREFIX - 1) == 0 ||
            strncmp(hash, ARGON2I_PREFIX, sizeof ARGON2I_PREFIX - 1) == 0);
}

/* Runs `proto` (prepared on the caller's stack, pw pointing into a Lua
 * string): synchronously where no host runs tasks (the spec module); else
 * as a pool job with its own copy of the password, suspending the task
 * (a Lua error, before any work, where it cannot wait). */
static int run(lua_State *L, struct pw_job *proto, const char *what)
{
    if (host_task_of(L) == NULL && !host_task_runs_here(L)) {
        job_run(proto);
        return job_push_result(L, proto);
    }
    struct host_task *task = host_task_waitable(L, what);
    struct pw_job *job = malloc(sizeof *job);   /* freed by job_free */
    char *pw = malloc(proto->pwlen ? proto->pwlen : 1);
    if (job == NULL || pw == NULL) {
        free(job);
        free(pw);
        return luaL_error(L, "out of memory");
    }
    *job = *proto;
    memcpy(pw, proto->pw, proto->pwlen);
    job->pw = pw;
    job->owns_pw = 1;
    job->task = task;
    if (pool_submit(job) != 0) {
        job_free(job);
        lua_pushnil(L);
        lua_pushliteral(L, "busy");
        return 2;
    }
    return host_task_suspend(task, job_cancel, job);
}

/* password.hash(pw) -> "$argon2id$..." | nil, "busy" | nil, "hash failed ...". */
static int l_password_hash(lua_State *L)
{
    struct pw_job job = {.kind = JOB_HASH, .params = *params_of(L)};
    job.pw = luaL_checklstring(L, 1, &job.pwlen);
    return run(L, &job, "password.hash");
}

/* password.verify(hash, pw) -> boolean | nil, "busy". A malformed hash is
 * false at once, without hashing. */
static int l_password_verify(lua_State *L)
{
    struct pw_job job = {.kind = JOB_VERIFY, .params = *params_of(L)};
    size_t hashlen;
    const char *hash = luaL_checklstring(L, 1, &hashlen);
    job.pw = luaL_checklstring(L, 2, &job.pwlen);
    if (!hash_shape_ok(hash, hashlen)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    memcpy(job.hash, hash, hashlen + 1);
    return run(L, &job, "password.verify");
}

/* password.verify_dummy(pw) -> false | nil, "busy", after the work of one
 * verify against a hash made with the current parameters. */
static int l_password_verify_dummy(lua_State *L)
{
    struct pw_job job = {.kind = JOB_VERIFY_DUMMY, .params = *params_of(L)};
    job.pw = luaL_checklstring(L, 1, &job.pwlen);
    return run(L, &job, "password.verify_dummy");
}

/* password.needs_rehash(hash) -> boolean: true unless an argon2id hash made
 * with exactly the current parameters. Synchronous (it only parses). */
static int l_password_needs_rehash(lua_State *L)
{
    const struct pw_params *p = params_of(L);
    size_t len;
    const char *hash = luaL_checklstring(L, 1, &len);
    int current = hash_shape_ok(hash, len) &&
                  strncmp(hash, ARGON2ID_PREFIX, sizeof ARGON2ID_PREFIX - 1) == 0 &&
                  crypto_pwhash_str_needs_rehash(hash, p->opslimit, p->memlimit) == 0;
    lua_pushboolean(L, !current);
    return 1;
}

static const luaL_Reg password_functions[] = {
    {"hash", l_password_hash},
    {"verify", l_password_verify},
    {"verify_dummy", l_password_verify_dummy},
    {"needs_rehash", l_password_needs_rehash},
    {NULL, NULL},
};

int host_password_open(lua_State *L)
{
    char err[256];
    struct pw_params params;
    if (read_params(&params, err, sizeof err) != 0) return luaL_error(L, "%s", err);
    lua_newtable(L);                                     /* module */
    struct pw_params *p = lua_newuserdata(L, sizeof *p); /* module, params */
    *p = params;
    luaL_setfuncs(L, password_functions, 1);             /* module */
    return 1;
}

static const struct host_stat password_stat_list[] = {
    {"moonkeep_hash_threads", "Password hashing threads (HASH_THREADS per worker).", 0},
    {"moonkeep_hash_jobs_queued", "Password hashing jobs waiting for a thread.", 0},
    {"moonkeep_hash_jobs_running", "Password hashing jobs being worked on.", 0},
    {"moonkeep_hash_memory_bytes",
     "argon2id memory the hashing threads keep mapped between hashes (released after 2 s idle).", 0},
    {"moonkeep_hash_jobs_rejected_total", "Password hashing jobs refused because the queue was full (HASH_QUEUE_MAX).",
     1},
    {NULL, NULL, 0},
};

static void password_stat_values(int64_t *v)
{
    struct host_password_stats s;
    host_password_stats(&s);
    v[0] = (int64_t)s.threads;
    v[1] = (int64_t)s.queued;
    v[2] = (int64_t)s.running;
    v[3] = (int64_t)s.memory_kept;
    v[4] = (int64_t)s.rejected;
}

const struct host_service host_password_service = {
    "password", host_password_check_config, host_password_init, host_password_shutdown,
    password_stat_values, password_stat_list,
};
