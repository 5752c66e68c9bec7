/* firehose.h — ships every log line of a worker to Amazon Data Firehose
 * (PutRecordBatch) when FIREHOSE_STREAM is set. See docs/architecture.md,
 * "Shipping logs to Firehose".
 *
 * A per-worker service (host_firehose_service), listed after the transfer service: it
 * sends over the worker's transfer thread (transfer.h), so it stops before
 * it. Lines reach it through a log sink (log.h) and wait in a bounded
 * buffer; batches of up to 500 records and 4 MB go out one at a time, signed
 * by libcurl's SigV4 (CURLOPT_AWS_SIGV4), and are retried with backoff and
 * jitter; only the failed entries of a partial failure are sent again. A
 * full buffer drops new lines and counts them. The master ships nothing: its
 * lines go to stdout only.
 *
 * Threads: everything here runs on the worker's loop thread. */
#ifndef MOONKEEP_FIREHOSE_H
#define MOONKEEP_FIREHOSE_H

#include <stddef.h>
#include <stdint.h>

#include "base/service.h"

struct event_base;

/* Counters of this worker process since its Firehose service started (all
 * zero when FIREHOSE_STREAM is not set, or outside a worker). */
struct host_firehose_stats {
    int enabled;            /* FIREHOSE_STREAM set and the service running */
    uint64_t sent;          /* records Firehose accepted */
    uint64_t failed;        /* records given up: refused by a non-retryable error, 3 times */
    uint64_t dropped;       /* lines never buffered: the buffer was full */
    uint64_t retried;       /* records sent again (throttling, errors, partial failures) */
    uint64_t buffered;      /* records held now: waiting, in backoff or in flight */
    uint64_t buffered_bytes;/* their size (the log lines' bytes) */
};

extern const struct host_service host_firehose_service;

/* Fills *out. Call it on the worker's loop thread (the metrics sampler runs
 * there): the counters are plain integers that the loop updates. */
void host_firehose_stats(struct host_firehose_stats *out);

/* Checks the FIREHOSE_* and AWS_* settings without starting anything, for a
 * process that wants to refuse a bad configuration before forking workers.
 * Returns 0 (also when FIREHOSE_STREAM is not set), or -1 with a message in
 * err (never a secret). */
int host_firehose_check_config(char *err, size_t cap);

/* Per-worker service. With FIREHOSE_STREAM unset, does nothing and returns
 * 0. Otherwise reads the settings (a bad one: logged, -1), installs the log
 * sink, and with container credentials starts fetching them. */
int host_firehose_init(struct event_base *base);

/* Sends what is buffered (and the lines logged meanwhile), running the
 * event loop, which no longer runs at this point, with EVLOOP_ONCE for at
 * most FIREHOSE_FLUSH_ON_EXIT_S seconds; then stops taking lines, cancels
 * what is still in flight (its done callback, run later by
 * host_transfer_shutdown, frees it), logs the totals to stdout only
 * ("firehose stopped": sent, failed, dropped, retried, unsent) and frees
 * everything. Idempotent. */
void host_firehose_shutdown(void);

#endif
