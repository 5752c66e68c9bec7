/* jobs.c — background jobs: each function a script generation lists in
 * app.jobs runs in a task of its own every `every` seconds, in every
 * worker (the scripts coordinate across workers and replicas through the
 * database: SKIP LOCKED, advisory locks). At most one run of a job at a
 * time per worker: a tick that finds the last run still going is skipped.
 *
 * Each run starts on the worker's current generation, looked up by name at
 * every tick, so a reload changes a job's code and period at its next run;
 * a job the new generation no longer lists stops after its running task.
 * The first tick of each job comes after a random part of its period, so
 * workers and replicas started together do not all run at once.
 *
 * Owns, per worker: a timer and a task per job name (struct job). A running
 * task holds its generation like a request does, and counts in
 * host_jobs_running(), which the drain waits for. */
#include "server/jobs.h"

#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "base/log.h"
#include "lua/task.h"
#include "lua/vm.h"

struct job {
    char name[HOST_JOB_NAME_MAX];
    struct event *timer;        /* owned; armed while the job is listed */
    struct host_task task;      /* valid while running */
    int running;
};

static struct {
    struct event_base *base;    /* the worker's; not owned */
    struct generation *const *current; /* the worker's current generation */
    struct job jobs[HOST_JOBS_MAX * 2]; /* names seen since start (a reload may add some) */
    int n;
    int stopped;                /* draining: no new runs */
} jobs;

static void arm(struct job *job, double seconds)
{
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    evtimer_add(job->timer, &tv);
}

/* A random fraction of `seconds` in [0, 1): spreads first runs. */
static double spread(double seconds)
{
    return seconds * (double)randombytes_uniform(1000) / 1000.0;
}

static void job_done(struct host_task *task, int status, const char *traceback)
{
    struct job *job = task->owner;
    if (status != 0) {
        struct log_line *line = host_log_begin(LOG_ERROR, "job failed");
        host_log_str(line, "job", job->name);
        host_log_str(line, "error", traceback);
        host_log_end(line);
    }
    job->running = 0;
    host_task_release(task);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct job *job = arg;
    struct generation *gen = *jobs.current;
    const struct host_job_spec *spec = host_generation_job(gen, job->name);
    (void)fd;
    (void)what;
    if (jobs.stopped || spec == NULL) return; /* not re-armed: a reload lists it again */
    arm(job, spec->every_s);
    if (job->running) return;
    memset(&job->task, 0, sizeof job->task);
    if (host_task_start(&job->task, gen, spec->run_ref, job_done, job) != 0) {
        host_log(LOG_ERROR, "job not started: out of memory");
        return;
    }
    job->running = 1;
    host_task_resume(&job->task, 0);
}

/* Arms a timer for every job of the current generation that has none. */
static void arm_listed(void)
{
    const struct generation *gen = *jobs.current;
    for (int i = 0; i < gen->njobs; i++) {
        const struct host_job_spec *spec = &gen->jobs[i];
        struct job *job = NULL;
        for (int j = 0; j < jobs.n && job == NULL; j++)
            if (strcmp(jobs.jobs[j].name, spec->name) == 0) job = &jobs.jobs[j];
        if (job == NULL) {
            if (jobs.n == (int)(sizeof jobs.jobs / sizeof jobs.jobs[0])) {
                host_log(LOG_ERROR, "job not scheduled: too many job names since the worker started");
                continue;
            }
            job = &jobs.jobs[jobs.n];
            snprintf(job->name, sizeof job->name, "%s", spec->name);
            job->timer = evtimer_new(jobs.base, tick_cb, job);
            if (job->timer == NULL) {
                host_log(LOG_ERROR, "job not scheduled: out of memory");
                continue;
            }
            jobs.n++;
        }
        if (!evtimer_pending(job->timer, NULL)) arm(job, spread(spec->every_s));
    }
}

void host_jobs_start(struct event_base *base, struct generation *const *current)
{
    memset(&jobs, 0, sizeof jobs);
    jobs.base = base;
    jobs.current = current;
    arm_listed();
}

void host_jobs_reload(void)
{
    if (jobs.current && !jobs.stopped) arm_listed();
}

void host_jobs_stop(void)
{
    jobs.stopped = 1;
    for (int i = 0; i < jobs.n; i++) evtimer_del(jobs.jobs[i].timer);
}

int host_jobs_running(void)
{
    int n = 0;
    for (int i = 0; i < jobs.n; i++) n += jobs.jobs[i].running;
    return n;
}

void host_jobs_shutdown(void)
{
    for (int i = 0; i < jobs.n; i++) {
        struct job *job = &jobs.jobs[i];
        if (job->running) {
            struct log_line *line = host_log_begin(LOG_WARN, "job cut short at shutdown");
            host_log_str(line, "job", job->name);
            host_log_end(line);
            host_task_abort(&job->task);
            host_task_release(&job->task);
            job->running = 0;
        }
        event_free(job->timer);
    }
    memset(&jobs, 0, sizeof jobs);
}
