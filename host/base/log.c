/* log.c — the JSON line writer behind every log line of the process. Owns
 * the buffer the line being built is written to (it grows to the longest
 * line and stays), the list of sinks that see every line written, and, in a
 * worker, the batch of lines not yet written to stdout.
 *
 * A worker batches (host_log_batch_on): lines collect in memory and go out
 * with one write(2) when the event loop has run the callbacks it woke up
 * for, when 64 KiB have collected, before any warn or error line (which is
 * written at once), and when batching stops. One write per loop iteration
 * instead of one per request; what a crash can lose is the lines of the
 * iteration it happened in. Sinks see every line at once, as before.
 *
 * Script fields whose names look secret (password, token, secret,
 * authorization, cookie), at any depth, are replaced by "[redacted]" here,
 * so a careless log call in a script cannot leak them.
 *
 * The writer knows nothing of tasks or scripts: the host.log binding is
 * bind/log.c, and the print that scripts see is lua/vm.c's. */
#include "base/log.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "base/json.h"

struct log_line {
    char *text;
    size_t len, cap;
    int broken;                     /* out of memory: the line is dropped */
    enum log_level level;
};

struct log_sink {
    host_log_sink_fn fn;
    void *arg;
};

/* Batched lines are written once this many bytes have collected. */
#define BATCH_MAX 65536

static enum log_level threshold = LOG_INFO;
static char process_fields[64];     /* ,"pid":N,"role":"R" */
static size_t process_fields_len;
static struct log_line current;
static struct evbuffer *lua_value;  /* a Lua value, encoded before it joins the line */
static struct {
    struct evbuffer *lines;         /* waiting for the write */
    struct event *flush;            /* made active when the first line waits */
} batch;
static const char *const level_names[] = {"debug", "info", "warn", "error"};
static struct log_sink sinks[HOST_LOG_SINKS_MAX];
static int nsinks;

int host_log_parse_level(const char *name, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (name && !strcasecmp(name, level_names[i])) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *host_log_level_name(enum log_level level)
{
    return level_names[level];
}

void host_log_init(const char *level, const char *role)
{
    threshold = LOG_INFO;
    host_log_parse_level(level, &threshold);
    /* called again after fork, in the worker: a new pid */
    int n = snprintf(process_fields, sizeof process_fields, ",\"pid\":%ld,\"role\":\"%s\"", (long)getpid(), role);
    process_fields_len = n > 0 && (size_t)n < sizeof process_fields ? (size_t)n : 0;
}

int host_log_add_sink(host_log_sink_fn fn, void *arg)
{
    if (nsinks == HOST_LOG_SINKS_MAX) return -1;
    sinks[nsinks].fn = fn;
    sinks[nsinks].arg = arg;
    nsinks++;
    return 0;
}

/* Makes room for `more` bytes. Returns the place to write them, or NULL
 * (and the line is dropped) when out of memory. */
static char *line_room(struct log_line *line, size_t more)
{
    if (line->broken) return NULL;
    if (more > SIZE_MAX / 4 - line->len) { /* no line is that long: a caller's mistake */
        line->broken = 1;
        return NULL;
    }
    if (line->cap - line->len < more) {
        size_t cap = line->cap ? line->cap : 512;
        while (cap - line->len < more) cap *= 2;
        char *text = realloc(line->text, cap);
        if (text == NULL) {
            line->broken = 1;
            return NULL;
        }
        line->text = text;
        line->cap = cap;
    }
    return line->text + line->len;
}

static void line_add(struct log_line *line, const char *p, size_t n)
{
    char *at = line_room(line, n);
    if (at == NULL) return;
    memcpy(at, p, n);
    line->len += n;
}

static void line_quote(struct log_line *line, const char *s, size_t n)
{
    char *at = line_room(line, HOST_JSON_QUOTED_MAX(n));
    if (at) line->len += host_json_quote(at, s, n);
}

/* "2026-12-01T18:15:56.123Z", quoted: the date and time part is formatted
 * once per second. */
static void append_time(struct log_line *line)
{
    static time_t cached_sec = -1;
    static char text[] = "\"YYYY-MM-DDTHH:MM:SS.mmmZ\"";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        char head[24];
        gmtime_r(&ts.tv_sec, &tm);
        if (strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm) == 19) {
            memcpy(text + 1, head, 19);
            cached_sec = ts.tv_sec;
        }
    }
    host_json_digits(text + 24, (unsigned long long)(ts.tv_nsec / 1000000), 3);
    line_add(line, text, sizeof text - 1);
}

struct log_line *host_log_begin(enum log_level level, const char *msg)
{
    static const char *const level_fields[] = {",\"level\":\"debug\",\"msg\":", ",\"level\":\"info\",\"msg\":",
                                               ",\"level\":\"warn\",\"msg\":", ",\"level\":\"error\",\"msg\":"};
    if (level < threshold) return NULL;
    current.len = 0;
    current.broken = 0;
    current.level = level;
    line_add(&current, "{\"time\":", 8);
    append_time(&current);
    line_add(&current, level_fields[level], strlen(level_fields[level]));
    line_quote(&current, msg, strlen(msg));
    line_add(&current, process_fields, process_fields_len);
    return &current;
}

static void append_key(struct log_line *line, const char *key)
{
    line_add(line, ",", 1);
    line_quote(line, key, strlen(key));
    line_add(line, ":", 1);
}

void host_log_strn(struct log_line *line, const char *key, const char *value, size_t len)
{
    if (line == NULL) return;
    append_key(line, key);
    if (value) line_quote(line, value, len);
    else line_add(line, "null", 4);
}

void host_log_str(struct log_line *line, const char *key, const char *value)
{
    host_log_strn(line, key, value, value ? strlen(value) : 0);
}

/* Appends the decimal form of v, then `decimals` digits of frac. */
static void append_decimal(struct log_line *line, int negative, unsigned long long v,
                           unsigned long long frac, int decimals)
{
    char text[48], *end = text + sizeof text, *p = end;
    if (decimals > 0) {
        p = host_json_digits(end, frac, decimals);
        *--p = '.';
    }
    p = host_json_digits(p, v, 1);
    if (negative) *--p = '-';
    line_add(line, p, (size_t)(end - p));
}

void host_log_int(struct log_line *line, const char *key, int64_t value)
{
    if (line == NULL) return;
    append_key(line, key);
    unsigned long long magnitude = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    append_decimal(line, value < 0, magnitude, 0, 0);
}

/* Three decimals; JSON has no NaN or infinity: null. */
void host_log_num(struct log_line *line, const char *key, double value)
{
    if (line == NULL) return;
    append_key(line, key);
    if (!isfinite(value) || fabs(value) >= 9e15) {
        line_add(line, "null", 4);
        return;
    }
    long long thousandths = llround(value * 1000.0);
    unsigned long long magnitude = thousandths < 0 ? 0ULL - (unsigned long long)thousandths
                                                   : (unsigned long long)thousandths;
    append_decimal(line, thousandths < 0, magnitude / 1000, magnitude % 1000, 3);
}

void host_log_lua(struct log_line *line, const char *key, lua_State *L, int idx)
{
    const char *err = NULL;
    if (line == NULL) return;
    append_key(line, key);
    if (lua_value == NULL && (lua_value = evbuffer_new()) == NULL) {
        line->broken = 1;
        return;
    }
    if (host_json_encode_redacting(L, idx, lua_value, host_log_is_secret_key, &err) != 0) {
        line_quote(line, err, strlen(err)); /* instead of the partial value */
    } else {
        size_t n = evbuffer_get_length(lua_value);
        line_add(line, (const char *)evbuffer_pullup(lua_value, -1), n);
    }
    evbuffer_drain(lua_value, evbuffer_get_length(lua_value));
}

static void write_stdout(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* stdout gone: nothing better to do */
        p += n;
        len -= (size_t)n;
    }
}

/* Writes whole lines in writes of at most PIPE_BUF bytes where it can: a
 * pipe (stdout under Docker) takes such a write in one piece, so the lines
 * of two workers never mix. A longer line goes alone, as it would unbatched. */
static void flush_batch(void)
{
    size_t len = batch.lines ? evbuffer_get_length(batch.lines) : 0;
    if (len == 0) return;
    const char *text = (const char *)evbuffer_pullup(batch.lines, -1), *end = text + len;
    while (text < end) {
        size_t room = (size_t)(end - text) < PIPE_BUF ? (size_t)(end - text) : PIPE_BUF;
        const char *cut = memrchr(text, '\n', room);
        if (cut == NULL) cut = memchr(text + room, '\n', (size_t)(end - text) - room);
        size_t n = cut ? (size_t)(cut - text) + 1 : (size_t)(end - text);
        write_stdout(text, n);
        text += n;
    }
    evbuffer_drain(batch.lines, len);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    flush_batch();
}

int host_log_batch_on(struct event_base *base)
{
    if (batch.flush) return 0;
    batch.lines = evbuffer_new();
    batch.flush = batch.lines ? event_new(base, -1, 0, flush_cb, NULL) : NULL;
    if (batch.flush == NULL) {
        host_log_batch_off();
        return -1;
    }
    return 0;
}

void host_log_batch_off(void)
{
    flush_batch();
    if (batch.flush) event_free(batch.flush);
    if (batch.lines) evbuffer_free(batch.lines);
    batch.flush = NULL;
    batch.lines = NULL;
}

void host_log_end(struct log_line *line)
{
    if (line == NULL) return;
    line_add(line, "}\n", 2);
    if (line->broken) return;
    size_t total = line->len;
    const char *text = line->text;
    if (batch.flush && line->level < LOG_WARN) {
        /* the first waiting line runs flush_cb after this iteration's callbacks */
        if (evbuffer_get_length(batch.lines) == 0) event_active(batch.flush, EV_TIMEOUT, 0);
        evbuffer_add(batch.lines, text, total);
        if (evbuffer_get_length(batch.lines) >= BATCH_MAX) flush_batch();
    } else {
        flush_batch(); /* keeps the order */
        write_stdout(text, total);
    }
    for (int i = 0; i < nsinks; i++) sinks[i].fn(line->level, text, total, sinks[i].arg);
    line->len = 0;
}

void host_log(enum log_level level, const char *msg)
{
    host_log_end(host_log_begin(level, msg));
}

int host_log_is_secret_key(const char *key)
{
    static const char *const words[] = {"password", "token", "secret", "authorization", "cookie", NULL};
    for (int i = 0; words[i]; i++)
        if (strcasestr(key, words[i])) return 1;
    return 0;
}
