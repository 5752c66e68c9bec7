/* firehose.c — ships every log line of a worker to Amazon Data Firehose with
 * PutRecordBatch (firehose.h). Owns, per worker process, everything in `fh`:
 *
 *   - the buffer: every line the log sink took and Firehose has not
 *     accepted yet, each a struct record holding a copy of the line (with
 *     its newline, as written to stdout), in log order: `queue` (waiting or
 *     in backoff) and the batch in flight;
 *   - at most one batch in flight (struct batch: its records, the request
 *     body, the headers, the response), on the transfer thread (transfer.h)
 *     between host_transfer_submit and batch_done_cb; one at a time keeps
 *     each worker's lines in order;
 *   - the credentials: from the environment, or fetched from the ECS
 *     task-role endpoint (struct fetch, on the transfer thread too) and
 *     refreshed before they expire;
 *   - the timers: flush (FIREHOSE_FLUSH_MS after the oldest waiting line),
 *     retry (backoff with jitter), kick (send now: a batch is full), drop
 *     report, credentials refresh, and the exit deadline.
 *
 * Life of a line: host_log_end -> sink (copy appended to `queue`, or
 * counted as dropped when the buffer is full) -> a batch (taken from the
 * head of `queue`: at most 500 records and a 4,000,000-byte body) -> sent;
 * Firehose accepts it (freed, counted sent), or the batch failed (all its
 * records go back to the head of `queue`, in order, and wait for a retry),
 * or some entries failed (only those go back), or Firehose refused the
 * batch for good three times (freed, counted failed).
 *
 * The sink runs inside host_log_end, with log.c's line builder in use: it
 * must not log, so it only copies the line and arms timers or the kick
 * event; everything that may log (sending, results, reports) runs from
 * those callbacks. Lines logged here go through the sink like any other.
 *
 * Threads: everything runs on the loop thread, except the transfers
 * themselves. While a batch or a fetch is in flight the transfer thread
 * owns its easy handle and what its options point to (body, headers,
 * response buffer, error buffer); the loop touches none of it until the
 * done callback. At shutdown a transfer still in flight is cancelled and
 * becomes an orphan, which its done callback (run by host_transfer_shutdown)
 * frees without touching `fh`.
 *
 * Secrets: the credentials are never logged; they are wiped before they are
 * freed. */
#include "base/firehose.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/json.h"
#include "base/log.h"
#include "base/transfer.h"

#define FH_BATCH_RECORDS 500            /* PutRecordBatch: records per call */
#define FH_BATCH_BYTES 4000000          /* our bound on a request body (the limit is 4 MiB) */
#define FH_RECORD_MAX ((size_t)1000 * 1024) /* PutRecordBatch: bytes per record, before base64 */
#define FH_REFUSED_MAX 3                /* attempts of a batch refused with a non-retryable error */
#define FH_BACKOFF_FIRST_MS 100
#define FH_EXIT_BACKOFF_MAX_MS 250      /* retries during the exit flush */
#define FH_RESPONSE_MAX ((size_t)1024 * 1024) /* a bigger response is an error */
#define FH_CREDS_EARLY_S 300            /* refresh credentials this long before they expire */
#define FH_CREDS_RETRY_MAX_S 60
#define FH_CREDS_TIMEOUT_S 5
#define FH_ECS_HOST "http://169.254.170.2"

/* ---- types ---------------------------------------------------------------- */

struct record {
    TAILQ_ENTRY(record) link;
    double queued_at;                   /* monotonic seconds */
    size_t len;
    char data[];                        /* the line and its newline; not NUL-terminated */
};

TAILQ_HEAD(record_list, record);

/* A response body, written by the transfer thread while in flight. */
struct response {
    char *data;                         /* owned; NUL-terminated when len > 0 */
    size_t len, cap;
};

struct batch {
    struct record_list records;         /* owned, in log order */
    unsigned count;
    size_t bytes;                       /* sum of the records' len */
    CURL *easy;                         /* owned */
    char *body;                         /* owned; CURLOPT_POSTFIELDS */
    struct curl_slist *headers;         /* owned; CURLOPT_HTTPHEADER */
    struct response response;
    int orphan;                         /* shutdown: batch_done_cb only frees it */
    char errbuf[CURL_ERROR_SIZE];
};

/* A credentials request to the container endpoint. */
struct fetch {
    CURL *easy;                         /* owned */
    struct curl_slist *headers;         /* owned */
    struct response response;
    int orphan;
    char errbuf[CURL_ERROR_SIZE];
};

enum creds_source { CREDS_ENV, CREDS_CONTAINER };

struct settings {
    char stream[65];                    /* FIREHOSE_STREAM */
    char region[33];                    /* AWS_REGION or AWS_DEFAULT_REGION */
    char *url;                          /* FIREHOSE_ENDPOINT with a path; owned */
    char *sigv4;                        /* "aws:amz:<region>:firehose"; owned */
    long max_records;                   /* FIREHOSE_BUFFER_MAX_RECORDS */
    long max_bytes;                     /* FIREHOSE_BUFFER_MAX_BYTES */
    long flush_ms;                      /* FIREHOSE_FLUSH_MS */
    long exit_s;                        /* FIREHOSE_FLUSH_ON_EXIT_S */
    long timeout_s;                     /* FIREHOSE_TIMEOUT_S */
    long backoff_max_ms;                /* FIREHOSE_BACKOFF_MAX_MS */
    long drop_report_s;                 /* FIREHOSE_DROP_REPORT_S */
    enum creds_source source;
    char *creds_url;                    /* container endpoint; owned */
};

struct creds {
    char *access_key, *secret, *token;  /* owned (token may be NULL); wiped at free */
    time_t expires;                     /* wall clock; 0: never (environment) */
};

/* Set once per process: log.c has no way to remove a sink, so the sink
 * stays and checks fh.accepting. */
static int sink_added;

static struct {
    int running;                        /* init done, shutdown not finished */
    int accepting;                      /* the sink buffers lines */
    int flushing;                       /* exit flush: send at once, short backoff */
    int exit_expired;                   /* the exit deadline passed */
    int curl_ready;                     /* curl_global_init done: cleanup owed */
    struct event_base *base;            /* the worker's; not owned */
    pthread_t loop_thread;
    struct settings cfg;
    struct creds creds;
    /* the buffer */
    struct record_list queue;           /* waiting (and in backoff), in log order */
    unsigned long queued;
    size_t queued_bytes;                /* sum of len */
    size_t queued_cost;                 /* what they would add to a request body */
    struct batch *inflight;             /* NULL or the batch on the transfer thread */
    /* delivery state */
    unsigned attempts;                  /* failed attempts in a row (backoff exponent) */
    unsigned refused;                   /* non-retryable refusals of the head batch in a row */
    int failing;                        /* "delivery failing" logged, "recovered" owed */
    double failing_since;
    /* credentials state */
    struct fetch *fetching;             /* NULL or the fetch on the transfer thread */
    unsigned creds_attempts;            /* failed fetches in a row */
    int creds_failing;
    /* events, owned */
    struct event *flush_timer, *retry_timer, *kick, *report_timer, *creds_timer, *exit_timer;
    /* counters */
    uint64_t sent, failed, dropped, retried;
    uint64_t dropped_reported;          /* dropped as of the last report */
    int reporting;                      /* the drop report line is being logged */
    int report_dropped_itself;          /* ... and the full buffer dropped it */
} fh;

/* ---- small helpers ---------------------------------------------------------- */

static size_t b64_len(size_t n) { return 4 * ((n + 2) / 3); }

/* What a record adds to a request body: {"Data":"<base64>"} and a comma. */
static size_t record_cost(size_t len) { return 12 + b64_len(len); }

/* {"DeliveryStreamName":"<stream>","Records":[ ... ]} */
static size_t body_fixed(void) { return 23 + strlen(fh.cfg.stream) + 13 + 2; }

static void wipe_free(char *s)
{
    if (s == NULL) return;
    sodium_memzero(s, strlen(s));
    free(s);
}

static void creds_free(struct creds *c)
{
    wipe_free(c->access_key);
    wipe_free(c->secret);
    wipe_free(c->token);
    memset(c, 0, sizeof *c);
}

static int creds_usable(void)
{
    return fh.creds.access_key != NULL && (fh.creds.expires == 0 || time(NULL) < fh.creds.expires);
}

static void evtimer_in(struct event *ev, double seconds)
{
    if (seconds < 0) seconds = 0;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    evtimer_add(ev, &tv);
}

/* The next delay of the batch backoff: exponential from 100 ms up to
 * FIREHOSE_BACKOFF_MAX_MS, with jitter (half fixed, half random), so that
 * the workers of every task do not retry in step. */
static double backoff_s(unsigned attempt)
{
    double cap = (double)(fh.flushing ? FH_EXIT_BACKOFF_MAX_MS : fh.cfg.backoff_max_ms);
    double ms = FH_BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < attempt && ms < cap; i++) ms *= 2;
    if (ms > cap) ms = cap;
    ms = ms / 2 + (double)randombytes_uniform((uint32_t)(ms / 2) + 1);
    return ms / 1000.0;
}

/* Curl's write callback: appends to a struct response (transfer thread).
 * Past FH_RESPONSE_MAX the transfer fails (CURLE_WRITE_ERROR). */
static size_t response_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct response *r = arg;
    size_t n = size * nmemb;
    if (r->len + n + 1 > FH_RESPONSE_MAX) return 0;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1) cap *= 2;
        char *p = realloc(r->data, cap);
        if (p == NULL) return 0;
        r->data = p;
        r->cap = cap;
    }
    memcpy(r->data + r->len, ptr, n);
    r->len += n;
    r->data[r->len] = '\0';
    return n;
}

/* ---- the PutRecordBatch response ------------------------------------------- */

struct put_result {
    long failed_put_count;              /* -1 when absent */
    unsigned char *failed;              /* per record: ErrorCode set; caller's array */
    unsigned count;                     /* records in the batch */
    unsigned seen;                      /* RequestResponses entries read */
    char type[64];                      /* __type of an error body, after any '#' */
    char message[160];                  /* message of an error body */
};

static int entry_member(const char *key, struct host_json_reader *j, void *arg)
{
    int *has_error = arg;
    if (!strcmp(key, "ErrorCode") && host_json_read_peek(j) == '"') {
        const char *start = j->p;
        if (host_json_read_string(j, NULL) != 0) return -1;
        if (j->p - start > 2) *has_error = 1; /* a non-empty string */
        return 0;
    }
    return host_json_read_skip(j, 1);
}

static int result_member(const char *key, struct host_json_reader *j, void *arg)
{
    struct put_result *r = arg;
    if (!strcmp(key, "FailedPutCount") && host_json_read_peek(j) != '"') {
        char *endp;
        host_json_read_blank(j);
        r->failed_put_count = strtol(j->p, &endp, 10);
        return host_json_read_skip(j, 1);
    }
    if (!strcmp(key, "RequestResponses") && host_json_read_peek(j) == '[') {
        j->p++;
        if (host_json_read_eat(j, ']')) return 0;
        for (;;) {
            int has_error = 0;
            if (host_json_read_object(j, entry_member, &has_error) != 0) return -1;
            if (r->seen < r->count && r->failed) r->failed[r->seen] = (unsigned char)has_error;
            r->seen++;
            if (host_json_read_eat(j, ',')) continue;
            return host_json_read_eat(j, ']') ? 0 : -1;
        }
    }
    if ((!strcmp(key, "__type") || !strcmp(key, "message") || !strcmp(key, "Message")) && host_json_read_peek(j) == '"') {
        char *s = host_json_read_strdup(j);
        if (s == NULL) return -1;
        if (key[0] == '_') {
            const char *hash = strrchr(s, '#');
            snprintf(r->type, sizeof r->type, "%s", hash ? hash + 1 : s);
        } else {
            snprintf(r->message, sizeof r->message, "%s", s);
        }
        free(s);
        return 0;
    }
    return host_json_read_skip(j, 1);
}

/* Reads a response body into *r. 0, or -1 when it is not a JSON object. */
static int parse_put_result(const struct response *resp, struct put_result *r)
{
    struct host_json_reader j = {resp->data, resp->data + resp->len};
    r->failed_put_count = -1;
    r->seen = 0;
    r->type[0] = r->message[0] = '\0';
    if (resp->len == 0) return -1;
    return host_json_read_object(&j, result_member, r);
}

/* ---- the sink (inside host_log_end: must not log) --------------------------- */

/* A line over FH_RECORD_MAX becomes a shorter line that says so and keeps
 * the start of the original as a string:
 *   {"time":<the original's>,"level":..,"msg":"log line over the Firehose
 *    record limit; cut","pid":..,"role":"worker","original_bytes":N,
 *    "head":"<first ~500 KB of the original line, as a JSON string>"}
 * Escaping at most doubles the head (the line is already valid UTF-8 JSON:
 * only '"' and '\\' grow), so the result stays under the limit. NULL when
 * out of memory. */
static struct record *cut_record(enum log_level level, const char *line, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    struct record *rec = NULL;
    size_t head = (FH_RECORD_MAX - 1024) / 2;
    if (out == NULL) return NULL;
    while (head > 0 && ((unsigned char)line[head] & 0xC0) == 0x80) head--; /* not inside a character */
    evbuffer_add(out, "{", 1);
    if (len > 9 && !memcmp(line, "{\"time\":\"", 9)) {
        const char *q = memchr(line + 9, '"', len - 9 < 64 ? len - 9 : 64);
        if (q) {
            evbuffer_add(out, line + 1, (size_t)(q + 1 - (line + 1)));
            evbuffer_add(out, ",", 1);
        }
    }
    evbuffer_add_printf(out, "\"level\":\"%s\",\"msg\":\"log line over the Firehose record limit; cut\","
                             "\"pid\":%ld,\"role\":\"worker\",\"original_bytes\":%zu,\"head\":",
                        host_log_level_name(level), (long)getpid(), len);
    host_json_string(out, line, head);
    evbuffer_add(out, "}\n", 2);
    size_t n = evbuffer_get_length(out);
    if (n <= FH_RECORD_MAX && (rec = malloc(sizeof *rec + n)) != NULL) {
        evbuffer_remove(out, rec->data, n);
        rec->len = n;
    }
    evbuffer_free(out);
    return rec;
}

static void note_drop(void)
{
    fh.dropped++;
    if (fh.reporting) fh.report_dropped_itself = 1;
    if (!evtimer_pending(fh.report_timer, NULL)) evtimer_in(fh.report_timer, (double)fh.cfg.drop_report_s);
}

/* Arms what sends the queue: the kick when a batch is full, else the flush
 * timer FIREHOSE_FLUSH_MS after the oldest waiting line. Never logs. */
static void schedule(void)
{
    if (fh.queued == 0 || fh.inflight || evtimer_pending(fh.retry_timer, NULL)) return;
    if (fh.flushing || fh.queued >= FH_BATCH_RECORDS || body_fixed() + fh.queued_cost >= FH_BATCH_BYTES) {
        event_active(fh.kick, EV_TIMEOUT, 0);
        return;
    }
    if (evtimer_pending(fh.flush_timer, NULL)) return;
    double due = TAILQ_FIRST(&fh.queue)->queued_at + (double)fh.cfg.flush_ms / 1000.0;
    evtimer_in(fh.flush_timer, due - host_now());
}

static void sink(enum log_level level, const char *line, size_t len, void *arg)
{
    struct record *rec;
    (void)arg;
    /* log.h promises the loop thread; anything else would race with it */
    if (!fh.accepting || !pthread_equal(pthread_self(), fh.loop_thread)) return;
    size_t held = fh.queued + (fh.inflight ? fh.inflight->count : 0);
    size_t held_bytes = fh.queued_bytes + (fh.inflight ? fh.inflight->bytes : 0);
    size_t need = len > FH_RECORD_MAX ? FH_RECORD_MAX : len;
    if (held >= (size_t)fh.cfg.max_records || held_bytes + need > (size_t)fh.cfg.max_bytes) {
        note_drop();
        return;
    }
    if (len > FH_RECORD_MAX) {
        rec = cut_record(level, line, len);
    } else if ((rec = malloc(sizeof *rec + len)) != NULL) {
        memcpy(rec->data, line, len);
        rec->len = len;
    }
    if (rec == NULL) {
        note_drop();
        return;
    }
    rec->queued_at = host_now();
    TAILQ_INSERT_TAIL(&fh.queue, rec, link);
    fh.queued++;
    fh.queued_bytes += rec->len;
    fh.queued_cost += record_cost(rec->len);
    schedule();
}

/* ---- batches ----------------------------------------------------------------- */

static void response_free(struct response *r)
{
    free(r->data);
    memset(r, 0, sizeof *r);
}

static void records_free(struct record_list *list)
{
    struct record *rec;
    while ((rec = TAILQ_FIRST(list)) != NULL) {
        TAILQ_REMOVE(list, rec, link);
        free(rec);
    }
}

static void batch_free(struct batch *b)
{
    records_free(&b->records);
    if (b->easy) curl_easy_cleanup(b->easy);
    free(b->body);
    curl_slist_free_all(b->headers);
    response_free(&b->response);
    free(b);
}

/* Puts a batch's remaining records back at the head of the queue, in order. */
static void requeue(struct batch *b)
{
    struct record *rec;
    while ((rec = TAILQ_LAST(&b->records, record_list)) != NULL) {
        TAILQ_REMOVE(&b->records, rec, link);
        TAILQ_INSERT_HEAD(&fh.queue, rec, link);
        fh.queued++;
        fh.queued_bytes += rec->len;
        fh.queued_cost += record_cost(rec->len);
    }
    b->count = 0;
    b->bytes = 0;
}

/* Takes up to a batch's worth of records from the head of the queue. */
static struct batch *batch_take(void)
{
    struct batch *b = calloc(1, sizeof *b);
    struct record *rec;
    if (b == NULL) return NULL;
    TAILQ_INIT(&b->records);
    size_t cost = body_fixed();
    while ((rec = TAILQ_FIRST(&fh.queue)) != NULL && b->count < FH_BATCH_RECORDS) {
        size_t c = record_cost(rec->len);
        if (b->count > 0 && cost + c > FH_BATCH_BYTES) break;
        TAILQ_REMOVE(&fh.queue, rec, link);
        fh.queued--;
        fh.queued_bytes -= rec->len;
        fh.queued_cost -= c;
        TAILQ_INSERT_TAIL(&b->records, rec, link);
        b->count++;
        b->bytes += rec->len;
        cost += c;
    }
    return b;
}

/* Copies s and its NUL to p (room for both is the caller's); returns the
 * end of s, where the next piece overwrites the NUL. */
static char *put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n + 1);
    return p + n;
}

/* The request body: {"DeliveryStreamName":"..","Records":[{"Data":".."},..]}.
 * The stream name needs no escaping (checked at init). */
static int batch_body(struct batch *b, size_t *len)
{
    size_t cap = body_fixed() + 1;
    struct record *rec;
    TAILQ_FOREACH(rec, &b->records, link) cap += record_cost(rec->len);
    char *p = b->body = malloc(cap);
    if (p == NULL) return -1;
    p += snprintf(p, cap, "{\"DeliveryStreamName\":\"%s\",\"Records\":[", fh.cfg.stream);
    TAILQ_FOREACH(rec, &b->records, link) {
        if (rec != TAILQ_FIRST(&b->records)) *p++ = ',';
        p = put(p, "{\"Data\":\"");
        sodium_bin2base64(p, cap - (size_t)(p - b->body), (const unsigned char *)rec->data, rec->len,
                          sodium_base64_VARIANT_ORIGINAL);
        p += b64_len(rec->len);
        p = put(p, "\"}");
    }
    p = put(p, "]}");
    *len = (size_t)(p - b->body);
    return 0;
}

static void batch_done_cb(CURL *easy, CURLcode rc, long code, void *arg);

/* Builds the signed request for b. 0, or -1 (b keeps what was made). */
static int batch_request(struct batch *b)
{
    size_t len;
    if (batch_body(b, &len) != 0 || (b->easy = curl_easy_init()) == NULL) return -1;
    b->headers = curl_slist_append(b->headers, "Content-Type: application/x-amz-json-1.1");
    if (b->headers) b->headers = curl_slist_append(b->headers, "X-Amz-Target: Firehose_20150804.PutRecordBatch");
    if (b->headers == NULL) return -1;
    if (fh.creds.token) {
        /* signed by curl like every header of CURLOPT_HTTPHEADER */
        size_t n = strlen(fh.creds.token) + 32;
        char *h = malloc(n);
        if (h == NULL) return -1;
        snprintf(h, n, "X-Amz-Security-Token: %s", fh.creds.token);
        struct curl_slist *l = curl_slist_append(b->headers, h);
        sodium_memzero(h, n);
        free(h);
        if (l == NULL) return -1;
        b->headers = l;
    }
    CURL *e = b->easy;
    curl_easy_setopt(e, CURLOPT_URL, fh.cfg.url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* HTTP/1.1 also over TLS (no ALPN h2): one batch at a time gains nothing
     * from multiplexing, and it is what the local endpoint of the specs speaks */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, b->headers);
    /* SigV4 by libcurl: it hashes CURLOPT_POSTFIELDS and signs host,
     * x-amz-date and every header above. (Removing a header with "Name:"
     * would not do: curl 7.88 signs the empty header it does not send.) */
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, fh.cfg.sigv4);
    curl_easy_setopt(e, CURLOPT_USERNAME, fh.creds.access_key);
    curl_easy_setopt(e, CURLOPT_PASSWORD, fh.creds.secret);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, response_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)&b->response);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, b->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, fh.cfg.timeout_s < 5 ? fh.cfg.timeout_s : 5L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, fh.cfg.timeout_s);
    return 0;
}

static void retry_later(void)
{
    fh.attempts++;
    evtimer_in(fh.retry_timer, backoff_s(fh.attempts));
}

static void creds_fetch_start(void);

/* Sends the next batch when one is due. Runs from callbacks (may log). */
static void try_send(void)
{
    if (!fh.running || fh.inflight || fh.queued == 0 || evtimer_pending(fh.retry_timer, NULL)) return;
    if (!creds_usable()) {
        /* fetch_done_cb calls try_send again */
        if (fh.cfg.source == CREDS_CONTAINER && !fh.fetching && !evtimer_pending(fh.creds_timer, NULL))
            creds_fetch_start();
        return;
    }
    int full = fh.queued >= FH_BATCH_RECORDS || body_fixed() + fh.queued_cost >= FH_BATCH_BYTES;
    double due = TAILQ_FIRST(&fh.queue)->queued_at + (double)fh.cfg.flush_ms / 1000.0;
    if (!full && !fh.flushing && host_now() < due) {
        schedule();
        return;
    }
    evtimer_del(fh.flush_timer);
    struct batch *b = batch_take();
    if (b == NULL || batch_request(b) != 0 || host_transfer_submit(b->easy, batch_done_cb, b) != 0) {
        if (b) {
            requeue(b);
            batch_free(b);
        }
        retry_later(); /* armed first: the line below enters the buffer */
        host_log(LOG_ERROR, "firehose: cannot start a batch (no memory, or the transfer thread is down)");
        return;
    }
    fh.inflight = b;
}

static void mark_failing(long code, const char *what)
{
    if (fh.failing) return;
    fh.failing = 1;
    fh.failing_since = host_now();
    struct log_line *line = host_log_begin(LOG_WARN, "firehose delivery failing; retrying");
    host_log_int(line, "status", code);
    host_log_str(line, "error", what);
    host_log_int(line, "buffered", (int64_t)(fh.queued + (fh.inflight ? fh.inflight->count : 0)));
    host_log_end(line);
}

static void mark_ok(void)
{
    fh.attempts = 0;
    fh.refused = 0;
    if (!fh.failing) return;
    fh.failing = 0;
    struct log_line *line = host_log_begin(LOG_INFO, "firehose delivery recovered");
    host_log_num(line, "failing_for_s", host_now() - fh.failing_since);
    host_log_end(line);
}

/* Errors worth retrying when Firehose names them (any status). */
static int retryable_type(const char *type)
{
    static const char *const names[] = {
        "ThrottlingException", "ServiceUnavailableException", "ServiceUnavailable",
        "LimitExceededException", "InternalFailure", "InternalFailureException",
        "InternalServerError", "ExpiredTokenException", "RequestExpired", "RequestTimeout",
        "RequestTimeoutException", "TooManyRequestsException", "SlowDown",
        "ProvisionedThroughputExceededException", "PriorRequestNotComplete", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(type, names[i])) return 1;
    return 0;
}

static void creds_refresh_now(void);

/* A 200: the accepted entries are done, the failed ones (ErrorCode set) go
 * back to the head of the queue. Returns how many failed. */
static unsigned settle_partial(struct batch *b)
{
    struct put_result r = {.count = b->count};
    unsigned char *failed = calloc(b->count ? b->count : 1, 1);
    unsigned nfailed = 0;
    r.failed = failed;
    if (failed == NULL || parse_put_result(&b->response, &r) != 0 ||
        (r.failed_put_count != 0 && r.seen != b->count)) {
        /* cannot tell which entries failed: send all again (at least once) */
        free(failed);
        if (r.failed_put_count == 0) goto all_sent;
        fh.retried += b->count;
        nfailed = b->count;
        requeue(b);
        return nfailed;
    }
    if (r.failed_put_count == 0) {
        free(failed);
        goto all_sent;
    }
    struct record *rec, *next;
    unsigned i = 0;
    for (rec = TAILQ_FIRST(&b->records); rec; rec = next, i++) {
        next = TAILQ_NEXT(rec, link);
        if (failed[i]) {
            nfailed++;
            continue;
        }
        TAILQ_REMOVE(&b->records, rec, link);
        b->count--;
        b->bytes -= rec->len;
        fh.sent++;
        free(rec);
    }
    free(failed);
    fh.retried += nfailed;
    requeue(b);
    return nfailed;

all_sent:
    fh.sent += b->count;
    records_free(&b->records);
    b->count = 0;
    b->bytes = 0;
    return 0;
}

static void batch_done_cb(CURL *easy, CURLcode rc, long code, void *arg)
{
    struct batch *b = arg;
    (void)easy;
    if (b->orphan) {
        batch_free(b);
        return;
    }
    fh.inflight = NULL;
    if (rc == CURLE_OK && code == 200) {
        unsigned nfailed = settle_partial(b);
        if (nfailed > 0) {
            batch_free(b);
            retry_later();
            struct log_line *line = host_log_begin(LOG_DEBUG, "firehose: some records failed; resending them");
            host_log_int(line, "failed", nfailed);
            host_log_end(line);
            return;
        }
        batch_free(b);
        mark_ok();
        try_send();
        return;
    }

    struct put_result r = {0};
    char what[256];
    if (rc != CURLE_OK) {
        snprintf(what, sizeof what, "%s", b->errbuf[0] ? b->errbuf : curl_easy_strerror(rc));
    } else {
        parse_put_result(&b->response, &r);
        snprintf(what, sizeof what, "%s%s%s", r.type[0] ? r.type : "HTTP error", r.message[0] ? ": " : "",
                 r.message);
    }
    int retryable = rc != CURLE_OK || code >= 500 || code == 429 || retryable_type(r.type);
    if (fh.cfg.source == CREDS_CONTAINER && (code == 403 || !strcmp(r.type, "ExpiredTokenException")))
        creds_refresh_now();
    if (!retryable && ++fh.refused >= FH_REFUSED_MAX) {
        /* refused for good (a bad stream name, no permission...): give the
         * batch up rather than hold every later line behind it */
        unsigned count = b->count;
        fh.failed += count;
        fh.refused = 0;
        batch_free(b);
        retry_later();
        struct log_line *line = host_log_begin(LOG_ERROR, "firehose refused a batch; its records are dropped");
        host_log_int(line, "status", code);
        host_log_str(line, "error", what);
        host_log_int(line, "records", count);
        host_log_end(line);
        return;
    }
    fh.retried += b->count;
    requeue(b);
    batch_free(b);
    retry_later(); /* armed before the warning, which enters the buffer */
    mark_failing(code, what);
}

/* ---- credentials ------------------------------------------------------------- */

struct creds_doc {
    char *access_key, *secret, *token, *expiration;
};

static int creds_member(const char *key, struct host_json_reader *j, void *arg)
{
    struct creds_doc *d = arg;
    char **slot = !strcmp(key, "AccessKeyId")       ? &d->access_key
                  : !strcmp(key, "SecretAccessKey") ? &d->secret
                  : !strcmp(key, "Token")           ? &d->token
                  : !strcmp(key, "Expiration")      ? &d->expiration
                                                    : NULL;
    if (slot == NULL || host_json_read_peek(j) != '"') return host_json_read_skip(j, 1);
    wipe_free(*slot);
    return (*slot = host_json_read_strdup(j)) ? 0 : -1;
}

/* "2024-01-01T12:00:00Z" (fractions and offsets other than Z/+00:00 are not
 * expected from the endpoint) -> time_t, or 0. */
static time_t parse_expiration(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    return rest ? timegm(&tm) : 0;
}

static void creds_schedule_refresh(void)
{
    double left = difftime(fh.creds.expires, time(NULL));
    double delay = left - FH_CREDS_EARLY_S;
    if (delay < left / 2) delay = left / 2;
    if (delay < 1) delay = 1;
    evtimer_in(fh.creds_timer, delay);
}

static void creds_failed(long code, const char *what)
{
    fh.creds_attempts++;
    double delay = 1;
    for (unsigned i = 1; i < fh.creds_attempts && delay < FH_CREDS_RETRY_MAX_S; i++) delay *= 2;
    if (delay > FH_CREDS_RETRY_MAX_S) delay = FH_CREDS_RETRY_MAX_S;
    if (fh.flushing && delay > 0.25) delay = 0.25;
    evtimer_in(fh.creds_timer, delay);
    if (fh.creds_failing) return;
    fh.creds_failing = 1;
    struct log_line *line = host_log_begin(LOG_WARN, "firehose cannot fetch credentials; retrying");
    host_log_int(line, "status", code);
    host_log_str(line, "error", what);
    host_log_end(line);
}

static void fetch_free(struct fetch *f)
{
    if (f->easy) curl_easy_cleanup(f->easy);
    curl_slist_free_all(f->headers);
    if (f->response.data) sodium_memzero(f->response.data, f->response.len);
    response_free(&f->response);
    free(f);
}

static void fetch_done_cb(CURL *easy, CURLcode rc, long code, void *arg)
{
    struct fetch *f = arg;
    struct creds_doc d = {0};
    (void)easy;
    if (f->orphan) {
        fetch_free(f);
        return;
    }
    fh.fetching = NULL;
    if (rc != CURLE_OK || code != 200) {
        creds_failed(code, rc != CURLE_OK ? (f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc)) : "HTTP error");
        fetch_free(f);
        return;
    }
    struct host_json_reader j = {f->response.data, f->response.data + f->response.len};
    time_t expires;
    if (f->response.len == 0 || host_json_read_object(&j, creds_member, &d) != 0 || !d.access_key || !d.secret ||
        (expires = parse_expiration(d.expiration)) == 0) {
        creds_failed(code, "the answer has no AccessKeyId, SecretAccessKey and Expiration");
    } else {
        creds_free(&fh.creds);
        fh.creds.access_key = d.access_key;
        fh.creds.secret = d.secret;
        fh.creds.token = d.token;
        fh.creds.expires = expires;
        d.access_key = d.secret = d.token = NULL;
        fh.creds_attempts = 0;
        fh.creds_failing = 0;
        creds_schedule_refresh();
        struct log_line *line = host_log_begin(LOG_INFO, "firehose credentials fetched");
        host_log_int(line, "expires_in_s", (int64_t)difftime(expires, time(NULL)));
        host_log_end(line);
    }
    wipe_free(d.access_key);
    wipe_free(d.secret);
    wipe_free(d.token);
    free(d.expiration);
    fetch_free(f);
    try_send();
}

/* AWS_CONTAINER_AUTHORIZATION_TOKEN, or the first line of
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read at each fetch: it rotates).
 * Returns a malloc'd string or NULL. */
static char *container_auth_token(void)
{
    const char *token = config_env_str("AWS_CONTAINER_AUTHORIZATION_TOKEN", NULL);
    const char *path = config_env_str("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", NULL);
    if (token && *token) return strdup(token);
    if (path == NULL || *path == '\0') return NULL;
    FILE *fp = fopen(path, "r");
    char buf[4096];
    char *out = NULL;
    if (fp == NULL) return NULL;
    if (fgets(buf, sizeof buf, fp)) {
        buf[strcspn(buf, "\r\n")] = '\0';
        out = strdup(buf);
    }
    sodium_memzero(buf, sizeof buf);
    fclose(fp);
    return out;
}

static void creds_fetch_start(void)
{
    struct fetch *f = calloc(1, sizeof *f);
    char *token = NULL;
    if (f == NULL || (f->easy = curl_easy_init()) == NULL) goto fail;
    if ((token = container_auth_token()) != NULL) {
        size_t n = strlen(token) + 32;
        char *h = malloc(n);
        if (h == NULL) goto fail;
        snprintf(h, n, "Authorization: %s", token);
        f->headers = curl_slist_append(NULL, h);
        sodium_memzero(h, n);
        free(h);
        if (f->headers == NULL) goto fail;
    }
    curl_easy_setopt(f->easy, CURLOPT_URL, fh.cfg.creds_url);
    curl_easy_setopt(f->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(f->easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(f->easy, CURLOPT_NOPROXY, "*"); /* a link-local or loopback address */
    if (f->headers) curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, response_write_cb);
    curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, (void *)&f->response);
    curl_easy_setopt(f->easy, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(f->easy, CURLOPT_CONNECTTIMEOUT, 2L);
    curl_easy_setopt(f->easy, CURLOPT_TIMEOUT, (long)FH_CREDS_TIMEOUT_S);
    if (host_transfer_submit(f->easy, fetch_done_cb, f) != 0) goto fail;
    wipe_free(token);
    fh.fetching = f;
    return;

fail:
    wipe_free(token);
    if (f) fetch_free(f);
    creds_failed(0, "cannot start the request (no memory, or the transfer thread is down)");
}

/* A refusal that fresh credentials may cure: fetch now, unless a fetch is
 * running or was made moments ago. */
static void creds_refresh_now(void)
{
    if (fh.fetching) return;
    evtimer_del(fh.creds_timer);
    creds_fetch_start();
}

/* ---- timers ------------------------------------------------------------------ */

static void flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    try_send();
}

static void retry_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    try_send();
}

static void creds_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!fh.fetching) creds_fetch_start();
}

/* Every FIREHOSE_DROP_REPORT_S while lines are dropped. The report is a log
 * line like any other: when the buffer is still full it is dropped too,
 * and counted; a period whose only drop was the previous report logs
 * nothing (the totals are in the next report and in "firehose stopped"). */
static void report_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    uint64_t n = fh.dropped - fh.dropped_reported;
    if (n == 0 || (n == 1 && fh.report_dropped_itself)) {
        fh.report_dropped_itself = 0;
        return;
    }
    fh.dropped_reported = fh.dropped;
    fh.report_dropped_itself = 0;
    fh.reporting = 1;
    struct log_line *line = host_log_begin(LOG_WARN, "firehose records dropped");
    host_log_int(line, "dropped", (int64_t)n);
    host_log_int(line, "dropped_total", (int64_t)fh.dropped_reported);
    host_log_int(line, "buffered", (int64_t)(fh.queued + (fh.inflight ? fh.inflight->count : 0)));
    host_log_int(line, "buffer_max_records", fh.cfg.max_records);
    host_log_int(line, "buffer_max_bytes", fh.cfg.max_bytes);
    host_log_end(line);
    fh.reporting = 0;
}

static void exit_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    fh.exit_expired = 1;
}

/* ---- settings ------------------------------------------------------------------ */

static int valid_name(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i])) return 0;
    return 1;
}

static int is_http_url(const char *s)
{
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* Reads every setting into *cfg (strings owned by cfg). 0, or -1 with a
 * message in err. Credentials are only checked for presence here. */
static int settings_load(struct settings *cfg, char *err, size_t cap)
{
    const char *stream = config_env_str("FIREHOSE_STREAM", NULL);
    const char *region = config_env_str("AWS_REGION", config_env_str("AWS_DEFAULT_REGION", NULL));
    const char *endpoint = config_env_str("FIREHOSE_ENDPOINT", NULL);
    const char *key = config_env_str("AWS_ACCESS_KEY_ID", NULL);
    const char *secret = config_env_str("AWS_SECRET_ACCESS_KEY", NULL);
    const char *relative = config_env_str("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", NULL);
    const char *full = config_env_str("AWS_CONTAINER_CREDENTIALS_FULL_URI", NULL);
    memset(cfg, 0, sizeof *cfg);
    if (stream == NULL || !valid_name(stream, 64, "_.-")) {
        snprintf(err, cap, "FIREHOSE_STREAM must be a delivery stream name (1-64 of a-z A-Z 0-9 _ . -)");
        return -1;
    }
    if (region == NULL || !valid_name(region, 32, "-")) {
        snprintf(err, cap, "FIREHOSE_STREAM needs AWS_REGION (or AWS_DEFAULT_REGION), e.g. eu-west-1");
        return -1;
    }
    if (endpoint && !is_http_url(endpoint)) {
        snprintf(err, cap, "FIREHOSE_ENDPOINT must be an http:// or https:// URL");
        return -1;
    }
    snprintf(cfg->stream, sizeof cfg->stream, "%s", stream);
    snprintf(cfg->region, sizeof cfg->region, "%s", region);
    cfg->max_records = config_env_long("FIREHOSE_BUFFER_MAX_RECORDS", 10000, 1, 10000000);
    cfg->max_bytes = config_env_long("FIREHOSE_BUFFER_MAX_BYTES", 16L * 1024 * 1024, 2L * 1024 * 1024,
                                     4L * 1024 * 1024 * 1024);
    cfg->flush_ms = config_env_long("FIREHOSE_FLUSH_MS", 1000, 0, 60000);
    cfg->exit_s = config_env_long("FIREHOSE_FLUSH_ON_EXIT_S", 5, 0, 60);
    cfg->timeout_s = config_env_long("FIREHOSE_TIMEOUT_S", 10, 1, 300);
    cfg->backoff_max_ms = config_env_long("FIREHOSE_BACKOFF_MAX_MS", 20000, 100, 600000);
    cfg->drop_report_s = config_env_long("FIREHOSE_DROP_REPORT_S", 10, 1, 3600);

    if ((key && *key) || (secret && *secret)) {
        if (!key || !*key || !secret || !*secret) {
            snprintf(err, cap, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together");
            return -1;
        }
        cfg->source = CREDS_ENV;
    } else if (relative && *relative) {
        if (relative[0] != '/') {
            snprintf(err, cap, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with /");
            return -1;
        }
        cfg->source = CREDS_CONTAINER;
        size_t n = strlen(FH_ECS_HOST) + strlen(relative) + 1;
        if ((cfg->creds_url = malloc(n)) == NULL) goto oom;
        snprintf(cfg->creds_url, n, "%s%s", FH_ECS_HOST, relative);
    } else if (full && *full) {
        if (!is_http_url(full)) {
            snprintf(err, cap, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be an http:// or https:// URL");
            return -1;
        }
        cfg->source = CREDS_CONTAINER;
        if ((cfg->creds_url = strdup(full)) == NULL) goto oom;
    } else {
        snprintf(err, cap, "FIREHOSE_STREAM needs credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                           "or an ECS task role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)");
        return -1;
    }

    char def[128];
    snprintf(def, sizeof def, "https://firehose.%s.amazonaws.com", region);
    const char *base = endpoint ? endpoint : def;
    size_t blen = strlen(base);
    /* a bare origin gets the path "/" (SigV4 signs the path) */
    const char *after_scheme = strstr(base, "://") + 3;
    int has_path = strchr(after_scheme, '/') != NULL;
    if ((cfg->url = malloc(blen + 2)) == NULL) goto oom;
    snprintf(cfg->url, blen + 2, "%s%s", base, has_path ? "" : "/");
    size_t n = strlen(region) + 32;
    if ((cfg->sigv4 = malloc(n)) == NULL) goto oom;
    snprintf(cfg->sigv4, n, "aws:amz:%s:firehose", region);
    return 0;

oom:
    snprintf(err, cap, "out of memory");
    return -1;
}

static void settings_free(struct settings *cfg)
{
    free(cfg->url);
    free(cfg->sigv4);
    free(cfg->creds_url);
    memset(cfg, 0, sizeof *cfg);
}

int host_firehose_check_config(char *err, size_t cap)
{
    struct settings cfg;
    const char *stream = config_env_str("FIREHOSE_STREAM", NULL);
    if (stream == NULL || *stream == '\0') return 0;
    int rc = settings_load(&cfg, err, cap);
    settings_free(&cfg);
    return rc;
}

/* ---- service ----------------------------------------------------------------- */

static void event_release(struct event **ev)
{
    if (*ev) event_free(*ev);
    *ev = NULL;
}

static void free_events(void)
{
    event_release(&fh.flush_timer);
    event_release(&fh.retry_timer);
    event_release(&fh.kick);
    event_release(&fh.report_timer);
    event_release(&fh.creds_timer);
    event_release(&fh.exit_timer);
}

static void reset(void)
{
    free_events();
    records_free(&fh.queue);
    creds_free(&fh.creds);
    settings_free(&fh.cfg);
    if (fh.curl_ready) curl_global_cleanup();
    memset(&fh, 0, sizeof fh);
    TAILQ_INIT(&fh.queue);
}

int host_firehose_init(struct event_base *base)
{
    char err[256];
    const char *stream = config_env_str("FIREHOSE_STREAM", NULL);
    if (fh.running || stream == NULL || *stream == '\0') return 0;
    memset(&fh, 0, sizeof fh);
    TAILQ_INIT(&fh.queue);
    if (settings_load(&fh.cfg, err, sizeof err) != 0) {
        struct log_line *line = host_log_begin(LOG_ERROR, "firehose configuration refused");
        host_log_str(line, "error", err);
        host_log_end(line);
        settings_free(&fh.cfg);
        return -1;
    }
    /* curl_easy_init runs here, on the loop (the transfer service holds its
     * own reference; curl_global_init counts) */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        host_log(LOG_ERROR, "firehose: curl_global_init failed");
        reset();
        return -1;
    }
    fh.curl_ready = 1;
    fh.base = base;
    fh.loop_thread = pthread_self();
    fh.flush_timer = evtimer_new(base, flush_timer_cb, NULL);
    fh.retry_timer = evtimer_new(base, retry_timer_cb, NULL);
    fh.kick = event_new(base, -1, 0, flush_timer_cb, NULL);
    fh.report_timer = evtimer_new(base, report_timer_cb, NULL);
    fh.creds_timer = evtimer_new(base, creds_timer_cb, NULL);
    fh.exit_timer = evtimer_new(base, exit_timer_cb, NULL);
    if (!fh.flush_timer || !fh.retry_timer || !fh.kick || !fh.report_timer || !fh.creds_timer || !fh.exit_timer) {
        host_log(LOG_ERROR, "firehose: cannot make its timers");
        reset();
        return -1;
    }
    if (fh.cfg.source == CREDS_ENV) {
        const char *token = config_env_str("AWS_SESSION_TOKEN", NULL);
        fh.creds.access_key = strdup(config_env_str("AWS_ACCESS_KEY_ID", ""));
        fh.creds.secret = strdup(config_env_str("AWS_SECRET_ACCESS_KEY", ""));
        fh.creds.token = token && *token ? strdup(token) : NULL;
        if (!fh.creds.access_key || !fh.creds.secret || (token && *token && !fh.creds.token)) {
            host_log(LOG_ERROR, "firehose: out of memory");
            reset();
            return -1;
        }
    }
    if (!sink_added) {
        if (host_log_add_sink(sink, NULL) != 0) {
            host_log(LOG_ERROR, "firehose: no log sink left (HOST_LOG_SINKS_MAX)");
            reset();
            return -1;
        }
        sink_added = 1;
    }
    fh.running = 1;
    fh.accepting = 1;
    /* the first line shipped */
    struct log_line *line = host_log_begin(LOG_INFO, "firehose shipping");
    host_log_str(line, "stream", fh.cfg.stream);
    host_log_str(line, "region", fh.cfg.region);
    host_log_str(line, "endpoint", fh.cfg.url);
    host_log_str(line, "credentials", fh.cfg.source == CREDS_ENV ? "environment" : "container");
    host_log_int(line, "buffer_max_records", fh.cfg.max_records);
    host_log_int(line, "flush_ms", fh.cfg.flush_ms);
    host_log_end(line);
    if (fh.cfg.source == CREDS_CONTAINER) creds_fetch_start();
    return 0;
}

/* Sends everything buffered, running the loop until it is done or
 * FIREHOSE_FLUSH_ON_EXIT_S has passed. Lines logged meanwhile are shipped
 * too. */
static void flush_at_exit(void)
{
    if ((fh.queued == 0 && fh.inflight == NULL) || fh.cfg.exit_s == 0) return;
    fh.flushing = 1;
    struct log_line *line = host_log_begin(LOG_INFO, "firehose: flushing before exit");
    host_log_int(line, "buffered", (int64_t)(fh.queued + (fh.inflight ? fh.inflight->count : 0)));
    host_log_int(line, "bound_s", fh.cfg.exit_s);
    host_log_end(line);
    evtimer_in(fh.exit_timer, (double)fh.cfg.exit_s);
    /* a retry waiting out its backoff goes now */
    if (evtimer_pending(fh.retry_timer, NULL)) {
        evtimer_del(fh.retry_timer);
        fh.attempts = 0;
    }
    try_send();
    while (!fh.exit_expired && (fh.queued > 0 || fh.inflight)) {
        if (event_base_loop(fh.base, EVLOOP_ONCE) != 0) break;
        /* the kick and the timers run from the loop; make sure the next
         * batch goes once the previous one is done */
        if (!fh.inflight && !evtimer_pending(fh.retry_timer, NULL)) try_send();
    }
    evtimer_del(fh.exit_timer);
}

void host_firehose_shutdown(void)
{
    if (!fh.running) return;
    flush_at_exit();
    fh.accepting = 0; /* from here on, lines go to stdout only */
    uint64_t unsent = fh.queued;
    if (fh.inflight) {
        /* may have arrived; we cannot know. Its done callback frees it. */
        unsent += fh.inflight->count;
        fh.inflight->orphan = 1;
        host_transfer_cancel(fh.inflight->easy);
        fh.inflight = NULL;
    }
    if (fh.fetching) {
        fh.fetching->orphan = 1;
        host_transfer_cancel(fh.fetching->easy);
        fh.fetching = NULL;
    }
    struct log_line *line = host_log_begin(unsent > 0 || fh.dropped > 0 ? LOG_WARN : LOG_INFO, "firehose stopped");
    host_log_int(line, "sent", (int64_t)fh.sent);
    host_log_int(line, "failed", (int64_t)fh.failed);
    host_log_int(line, "dropped", (int64_t)fh.dropped);
    host_log_int(line, "retried", (int64_t)fh.retried);
    host_log_int(line, "unsent", (int64_t)unsent);
    host_log_end(line);
    reset();
}

void host_firehose_stats(struct host_firehose_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!fh.running) return;
    out->enabled = 1;
    out->sent = fh.sent;
    out->failed = fh.failed;
    out->dropped = fh.dropped;
    out->retried = fh.retried;
    out->buffered = fh.queued + (fh.inflight ? fh.inflight->count : 0);
    out->buffered_bytes = fh.queued_bytes + (fh.inflight ? fh.inflight->bytes : 0);
}

static const struct host_stat firehose_stat_list[] = {
    {"moonkeep_firehose_records_sent_total", "Log records Firehose accepted.", 1},
    {"moonkeep_firehose_records_failed_total", "Log records given up after Firehose refused them.", 1},
    {"moonkeep_firehose_records_dropped_total", "Log lines never sent because the shipper's buffer was full.", 1},
    {"moonkeep_firehose_records_buffered", "Log records held for Firehose now (waiting, in backoff or in flight).", 0},
    {NULL, NULL, 0},
};

static void firehose_stat_values(int64_t *v)
{
    struct host_firehose_stats s;
    host_firehose_stats(&s);
    v[0] = (int64_t)s.sent;
    v[1] = (int64_t)s.failed;
    v[2] = (int64_t)s.dropped;
    v[3] = (int64_t)s.buffered;
}

const struct host_service host_firehose_service = {
    "firehose", host_firehose_check_config, host_firehose_init, host_firehose_shutdown,
    firehose_stat_values, firehose_stat_list,
};
