/* jobs.h — background jobs of a worker: the functions the current script
 * generation lists in app.jobs, each run in its own task on a timer (the
 * mail outbox sender, the retention sweeper). See docs/scripting.md, "Jobs". */
#ifndef MOONKEEP_JOBS_H
#define MOONKEEP_JOBS_H

struct event_base;
struct generation;

/* Arms a timer for each job of *current (the first run after a random part
 * of its period); every tick reads *current again, so a reload's new
 * generation is seen. Call once the worker's services run. */
void host_jobs_start(struct event_base *base, struct generation *const *current);
/* After a reload: schedules the jobs the new generation adds. */
void host_jobs_reload(void);
/* Drain: no new runs; running ones finish (host_jobs_running counts them). */
void host_jobs_stop(void);
int host_jobs_running(void);
/* Aborts runs still going (the grace period ran out) and frees the timers.
 * Before the services stop: an aborted run cancels work they own. */
void host_jobs_shutdown(void);

#endif
