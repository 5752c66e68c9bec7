/* transfer.h — the transfer thread: runs libcurl transfers off the worker's
 * event loop (mail over SMTP, Firehose batches over HTTPS, any later client).
 *
 * Why a thread: libcurl 7.88's SMTP blocks inside curl_multi_* while it
 * waits for the reply to the end of DATA and to QUIT (curl issue #8555), so
 * a curl multi handle driven by the loop can stall every request of the
 * worker for a server's reply. Here one thread per worker owns one multi
 * handle (curl_multi_poll / curl_multi_wakeup) and the loop only hands
 * transfers over and takes the results back. See docs/architecture.md,
 * "Transfers off the loop".
 *
 * Threads. Everything below is called on the event-loop thread, and every
 * done callback runs there (from an eventfd event, or from
 * host_transfer_shutdown). The transfer thread touches only the curl handles
 * it was given and this module's mutex-protected lists; it never calls
 * libevent, never logs, never touches Lua.
 *
 * Ownership of an easy handle:
 *   owner builds it (curl_easy_init, setopt) on the loop thread
 *   -> host_transfer_submit returns 0: the easy handle, and everything its
 *      options point to (read/write callbacks and their data, the error
 *      buffer, slists), belong to the transfer thread: the owner must not
 *      touch them, nor free them, until done_cb runs
 *   -> done_cb(easy, rc, response_code, arg) on the loop thread: the handle
 *      is out of the multi handle and is the owner's again, to read
 *      (curl_easy_getinfo), resubmit, or curl_easy_cleanup.
 * done_cb runs exactly once per accepted submit, whatever happens: success,
 * failure, host_transfer_cancel, or the service shutting down (then rc is
 * HOST_TRANSFER_ABORTED), so an owner can always free its memory there.
 * It never runs from inside host_transfer_submit or host_transfer_cancel.
 *
 * Options the service sets on every submitted handle (the owner's values
 * are replaced): CURLOPT_NOSIGNAL, CURLOPT_SOCKOPTFUNCTION/DATA,
 * CURLOPT_CLOSESOCKETFUNCTION/DATA, CURLOPT_PREREQFUNCTION/DATA. They track
 * which socket each transfer uses, so a cancelled transfer's connection can
 * be cut (shutdown(2)) before its handle is removed: removing an SMTP
 * transfer mid-DATA would otherwise make curl send the end-of-data mark
 * (delivering half a message) and wait for the reply. */
#ifndef MOONKEEP_TRANSFER_H
#define MOONKEEP_TRANSFER_H

#include <stddef.h>
#include <curl/curl.h>

#include "base/service.h"

struct event_base;

/* The rc a done callback gets for a transfer that was cancelled or cut at
 * shutdown. (curl also returns it when one of the owner's own callbacks
 * aborts a transfer.) */
#define HOST_TRANSFER_ABORTED CURLE_ABORTED_BY_CALLBACK

/* Runs on the loop thread when a transfer ends. `rc` is curl's result (or
 * HOST_TRANSFER_ABORTED, or CURLE_FAILED_INIT when curl refused the
 * handle); `response_code` is CURLINFO_RESPONSE_CODE (the last SMTP or HTTP
 * reply code, 0 when there was none). The callback owns `easy` again. It may
 * call host_transfer_submit (with this or another handle) and
 * host_transfer_cancel. */
typedef void (*host_transfer_done_fn)(CURL *easy, CURLcode rc, long response_code, void *arg);

/* The service record (base/service.h). */
extern const struct host_service host_transfer_service;

/* check_config: TRANSFER_SHUTDOWN_S (a malformed number exits). 0. */
int host_transfer_check_config(char *err, size_t cap);

/* Per-worker service. Makes the eventfd and its event on
 * `base`; reads TRANSFER_SHUTDOWN_S. The thread and the multi handle are
 * started by the first submit, so a worker that never transfers anything
 * runs no thread. Returns 0, or -1 after logging why. Idempotent. */
int host_transfer_init(struct event_base *base);

/* Stops accepting; waits up to TRANSFER_SHUTDOWN_S seconds (default 1) for
 * the transfers in flight, running their done callbacks as they finish;
 * then cuts every socket curl holds, aborts what is left (done_cb with
 * HOST_TRANSFER_ABORTED), joins the thread and frees everything. Runs done
 * callbacks directly, without the event loop. Idempotent; does nothing when
 * init never ran. */
void host_transfer_shutdown(void);

/* Hands `easy` (configured, not in any multi handle) to the transfer thread.
 * Returns 0: the service owns it until done_cb(easy, ..., arg) runs on the
 * loop thread. Returns -1 when the service is not running, is shutting down,
 * or cannot start its thread: the caller keeps `easy`, and done_cb will not
 * run. */
int host_transfer_submit(CURL *easy, host_transfer_done_fn done_cb, void *arg);

/* Asks for `easy`'s transfer to stop: its sockets are cut at once (from the
 * calling thread: no waiting for the transfer thread), and its done_cb runs
 * later on the loop with HOST_TRANSFER_ABORTED, or with the real result if
 * the transfer had already finished. Returns at once. Does nothing if `easy`
 * is not a transfer in flight (done_cb already ran, or it was never
 * submitted). The connection is not reused; on a multiplexed (HTTP/2)
 * connection the other transfers on it fail too. */
void host_transfer_cancel(const CURL *easy);

#endif
