/* clock.h — the monotonic clock every layer times things with. */
#ifndef MOONKEEP_CLOCK_H
#define MOONKEEP_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: for intervals and deadlines, never for dates
 * (it starts at boot, and does not jump when the wall clock is set). */
double host_now(void);

#endif
