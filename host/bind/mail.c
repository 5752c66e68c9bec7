/* mail.c — host.mail: builds RFC 5322 messages and delivers them in the
 * background. Owns, per worker process, everything in `mailer`:
 *
 *   - the queue: every message accepted by mail.send and not yet delivered
 *     or given up, each a struct mail_msg holding only C data, so any
 *     script generation may send and the queue outlives them all;
 *   - in SMTP mode (MAIL_URL set), up to MAIL_MAX_INFLIGHT curl easy
 *     handles at a time, each running on the worker's transfer thread
 *     (transfer.h) while its message is SENDING;
 *   - in outbox mode (no MAIL_URL), nothing more: each message becomes an
 *     .eml file in OUTBOX_DIR, written from a timer callback on the loop;
 *   - the transport settings read from the environment at init.
 *
 * A message's life: send -> WAITING (its timer armed at 0 s) -> an attempt
 * (READY while all MAIL_MAX_INFLIGHT SMTP slots are busy, then SENDING; an
 * outbox write is immediate) -> delivered and freed; or WAITING again after
 * an exponential backoff; or given up and freed (a 5xx reply, or
 * MAIL_RETRY_MAX attempts). Shutdown gives what is left one last attempt
 * within MAIL_FLUSH_S, then logs the ids it drops.
 *
 * Threads: everything here runs on the loop thread (building, the queue,
 * timers, stats, logs, outbox writes) except the SMTP transfer itself,
 * which runs on the transfer thread: libcurl 7.88's SMTP blocks while it
 * waits for the reply to the end of data and to QUIT (curl issue #8555),
 * and there it stalls only other transfers, never the loop. While a
 * message is SENDING, the transfer thread owns its easy handle and reads
 * msg->data, msg->len, msg->pos and msg->errbuf (smtp_read_cb, curl's error
 * buffer); the loop touches none of these until smtp_done_cb hands the
 * handle back. An outbox write is one small local file (no fsync) and stays
 * on the loop.
 *
 * Message bodies carry tokens: they are never logged. MAIL_URL carries
 * credentials: only its scheme, host and port are logged. */
#include "bind/mail.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <lauxlib.h>
#include <sodium.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/log.h"
#include "base/transfer.h"
#include "lua/task.h"

#define MAIL_ID_BYTES 16                     /* 128 random bits, 32 hex digits */
#define MAIL_MAX_INFLIGHT 4                  /* concurrent SMTP transfers per worker */
#define BACKOFF_FIRST_S 1.0
#define BACKOFF_MAX_S 300.0
#define ERR_PREFIX "invalid message: "

enum transport { TRANSPORT_OUTBOX, TRANSPORT_SMTP };

enum msg_state {
    MSG_WAITING,    /* its timer is armed: first attempt or a retry */
    MSG_READY,      /* due, waiting for an SMTP slot (in mailer.ready) */
    MSG_SENDING,    /* its easy handle is on the transfer thread */
    MSG_STOPPED,    /* shutdown: no further attempt; will be reported dropped */
};

struct mail_msg {
    TAILQ_ENTRY(mail_msg) link;         /* in mailer.queue */
    TAILQ_ENTRY(mail_msg) ready_link;   /* in mailer.ready while MSG_READY */
    char id[MAIL_ID_BYTES * 2 + 1];
    char *rcpt;                         /* "<to>" for RCPT TO; owned */
    char *data;                         /* the whole message, CRLF lines; owned */
    size_t len;
    size_t pos;                         /* read position of the current attempt */
    time_t created;
    int attempts;                       /* started so far */
    enum msg_state state;
    struct event *timer;                /* next attempt; owned */
    CURL *easy;                         /* while MSG_SENDING; on the transfer thread */
    struct curl_slist *rcpt_list;       /* while MSG_SENDING; read by the transfer thread */
    double attempt_started;             /* monotonic seconds */
    int orphan;                         /* shutdown: out of the queue, freed by smtp_done_cb */
    char errbuf[CURL_ERROR_SIZE];
};

struct mail_settings {
    enum transport transport;
    char *url;              /* MAIL_URL: carries credentials, never logged; owned */
    char *log_target;       /* "smtp://host:port" for logs; owned */
    long use_ssl;           /* CURLUSESSL_* from MAIL_TLS */
    const char *tls;        /* MAIL_TLS as given, for the log */
    char *from_header;      /* From: value, encoded when needed; owned */
    char *envelope_from;    /* "<addr>" for MAIL FROM; owned */
    char *domain;           /* right side of Message-ID; owned */
    char *outbox_dir;       /* OUTBOX_DIR; owned */
    long timeout_s;         /* MAIL_TIMEOUT_S */
    long retry_max;         /* MAIL_RETRY_MAX: attempts in all */
    long queue_max;         /* MAIL_QUEUE_MAX */
    long flush_s;           /* MAIL_FLUSH_S */
};

static struct {
    int running;            /* host_mail_init succeeded, shutdown not run */
    int curl_ready;         /* curl_global_init done: cleanup owed */
    int flushing;           /* inside host_mail_shutdown: no retries */
    struct event_base *base;    /* the worker's; not owned */
    struct event *flush_timer;  /* shutdown deadline; owned while flushing */
    TAILQ_HEAD(, mail_msg) queue;
    TAILQ_HEAD(, mail_msg) ready;
    unsigned long count;    /* messages in queue */
    unsigned inflight;      /* messages in MSG_SENDING */
    unsigned long sent;
    unsigned long failed;
    struct mail_settings cfg;
} mailer;

/* ---- message text ------------------------------------------------------- */

static const char *const weekdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int has_crlf_nul(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
    return 0;
}

static int is_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* A plain addr-spec: dot-atom local part, host name domain, ASCII only.
 * Quoted local parts, address literals and SMTPUTF8 are not supported. */
static int valid_address(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (len < 3 || len > 254 || at == NULL) return 0;
    size_t local_len = (size_t)(at - s), domain_len = len - local_len - 1;
    if (local_len == 0 || local_len > 64 || domain_len == 0) return 0;
    for (size_t i = 0; i < local_len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (i == 0 || i + 1 == local_len || s[i + 1] == '.') return 0;
        } else if (!is_atext(c)) {
            return 0;
        }
    }
    size_t label = 0;
    for (size_t i = 0; i < domain_len; i++) {
        unsigned char c = (unsigned char)at[1 + i];
        if (c == '.') {
            if (label == 0 || at[i] == '-') return 0; /* at[i] is the previous char */
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c == '-' && label > 0)) {
            if (++label > 63) return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && at[domain_len] != '-';
}

static void add_base64(struct evbuffer *out, const unsigned char *s, size_t len)
{
    char buf[128];
    /* callers pass at most 45 bytes: 60 characters and the NUL fit */
    sodium_bin2base64(buf, sizeof buf, s, len, sodium_base64_VARIANT_ORIGINAL);
    evbuffer_add(out, buf, strlen(buf));
}

/* An unstructured header value (Subject, a display name) as RFC 2047
 * encoded-words when it is not plain short ASCII: "=?UTF-8?B?...?=" words of
 * at most 39 bytes each (64 characters, so "Subject: " + a word stays under
 * 76), split on UTF-8 character boundaries, folded with CRLF SP. */
static void add_header_text(struct evbuffer *out, const char *s, size_t len, size_t used)
{
    int plain = used + len <= 78 && memmem(s, len, "=?", 2) == NULL;
    for (size_t i = 0; plain && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7F) plain = 0;
    }
    if (plain) {
        evbuffer_add(out, s, len);
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < 39 ? len - off : 39;
        /* back off so no multi-byte character is cut (unless it is not UTF-8) */
        while (n < len - off && n > 1 && (p[off + n] & 0xC0) == 0x80) n--;
        if (off > 0) evbuffer_add(out, "\r\n ", 3);
        evbuffer_add(out, "=?UTF-8?B?", 10);
        add_base64(out, p + off, n);
        evbuffer_add(out, "?=", 2);
        off += n;
    }
}

/* RFC 2045 quoted-printable. Line breaks (LF or CRLF) become CRLF hard
 * breaks; a bare CR, '=', controls and 8-bit bytes become =XX; a space or
 * tab before a break is encoded; lines are at most 76 characters with the
 * soft break. A '.' that starts a line is encoded as well, so no line of
 * the body can be mistaken for the SMTP end of data. */
static void add_quoted_printable(struct evbuffer *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || (c == '\r' && i + 1 < len && s[i + 1] == '\n')) {
            if (c == '\r') i++;
            evbuffer_add(out, "\r\n", 2);
            line = 0;
            continue;
        }
        int literal;
        if (c == ' ' || c == '\t') {
            int at_break = i + 1 == len || s[i + 1] == '\n' ||
                           (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n');
            literal = !at_break;
        } else {
            literal = c >= 33 && c <= 126 && c != '=' && !(c == '.' && line == 0);
        }
        size_t width = literal ? 1 : 3;
        if (line + width > 75) {
            evbuffer_add(out, "=\r\n", 3);
            line = 0;
            if (c == '.') {
                literal = 0;
                width = 3;
            }
        }
        if (literal) {
            evbuffer_add(out, &c, 1);
        } else {
            char enc[3] = {'=', hex[c >> 4], hex[c & 15]};
            evbuffer_add(out, enc, 3);
        }
        line += width;
    }
}

static void add_date(struct evbuffer *out, time_t now)
{
    struct tm tm;
    gmtime_r(&now, &tm);
    evbuffer_add_printf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
                        weekdays[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                        tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void add_part(struct evbuffer *out, const char *type, const char *body, size_t len)
{
    evbuffer_add_printf(out, "Content-Type: %s; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: quoted-printable\r\n\r\n", type);
    add_quoted_printable(out, body, len);
    evbuffer_add(out, "\r\n", 2);
}

/* Writes the whole message into `out`. `id` is the message id (hex). */
static void build_message(struct evbuffer *out, const char *id, time_t now,
                          const char *to, size_t to_len,
                          const char *subject, size_t subject_len,
                          const char *text, size_t text_len,
                          const char *html, size_t html_len)
{
    evbuffer_add_printf(out, "From: %s\r\nTo: ", mailer.cfg.from_header);
    evbuffer_add(out, to, to_len);
    evbuffer_add(out, "\r\nSubject: ", 11);
    add_header_text(out, subject, subject_len, 9);
    evbuffer_add(out, "\r\n", 2);
    add_date(out, now);
    evbuffer_add_printf(out, "Message-ID: <%s@%s>\r\n"
                             "MIME-Version: 1.0\r\n"
                             "Auto-Submitted: auto-generated\r\n", id, mailer.cfg.domain);
    if (html == NULL) {
        add_part(out, "text/plain", text, text_len);
        return;
    }
    /* "=_" can never occur in quoted-printable text: a safe boundary */
    unsigned char raw[12];
    char boundary[4 + sizeof raw * 2 + 1] = "=_mk";
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(boundary + 4, sizeof boundary - 4, raw, sizeof raw);
    evbuffer_add_printf(out, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n"
                             "This is a multi-part message in MIME format.\r\n"
                             "--%s\r\n", boundary, boundary);
    add_part(out, "text/plain", text, text_len);
    evbuffer_add_printf(out, "--%s\r\n", boundary);
    add_part(out, "text/html", html, html_len);
    evbuffer_add_printf(out, "--%s--\r\n", boundary);
}

/* ---- the queue ---------------------------------------------------------- */

/* Frees a message that is not SENDING (its easy handle is gone). */
static void msg_free(struct mail_msg *msg)
{
    TAILQ_REMOVE(&mailer.queue, msg, link);
    if (msg->state == MSG_READY) TAILQ_REMOVE(&mailer.ready, msg, ready_link);
    mailer.count--;
    if (msg->timer) event_free(msg->timer);
    free(msg->rcpt);
    free(msg->data);
    free(msg);
}

/* During the shutdown flush: stop the loop once no message has work left. */
static void flush_check(void)
{
    struct mail_msg *msg;
    if (!mailer.flushing) return;
    TAILQ_FOREACH(msg, &mailer.queue, link)
        if (msg->state != MSG_STOPPED) return;
    event_base_loopbreak(mailer.base);
}

/* Backoff before attempt n+1 after n failed: 1 s doubling, capped at 5 min,
 * times a random factor in [0.8, 1.2) so that many messages that failed
 * together (a server restart) do not all come back in the same second. */
static double backoff_s(int attempts)
{
    double d = BACKOFF_FIRST_S;
    for (int i = 1; i < attempts && d < BACKOFF_MAX_S; i++) d *= 2;
    d *= 0.8 + 0.4 * (double)randombytes_uniform(1000) / 1000.0;
    return d < BACKOFF_MAX_S ? d : BACKOFF_MAX_S;
}

static void delivered(struct mail_msg *msg, const char *path)
{
    struct log_line *line = host_log_begin(LOG_INFO, path ? "mail written to outbox" : "mail sent");
    host_log_str(line, "mail_id", msg->id);
    if (path) {
        host_log_str(line, "path", path);
    } else {
        host_log_str(line, "server", mailer.cfg.log_target);
        host_log_num(line, "duration_ms", (host_now() - msg->attempt_started) * 1000.0);
    }
    host_log_int(line, "attempts", msg->attempts);
    host_log_num(line, "queued_s", difftime(time(NULL), msg->created));
    host_log_end(line);
    mailer.sent++;
    msg_free(msg);
    flush_check();
}

/* An attempt failed: retry later, or give up. `smtp_code` is the server's
 * last reply code (0 when there was none); 5xx is permanent. */
static void attempt_failed(struct mail_msg *msg, const char *error, long smtp_code)
{
    int permanent = smtp_code >= 500 && smtp_code < 600;
    if (permanent || msg->attempts >= mailer.cfg.retry_max) {
        struct log_line *line = host_log_begin(LOG_ERROR, "mail delivery failed; giving up");
        host_log_str(line, "mail_id", msg->id);
        host_log_int(line, "attempts", msg->attempts);
        host_log_str(line, "error", error);
        if (smtp_code) host_log_int(line, "smtp_code", smtp_code);
        host_log_str(line, "reason", permanent ? "rejected by the server" : "out of attempts");
        host_log_end(line);
        mailer.failed++;
        msg_free(msg);
        flush_check();
        return;
    }
    if (mailer.flushing) {
        struct log_line *line = host_log_begin(LOG_WARN, "mail delivery failed during shutdown");
        host_log_str(line, "mail_id", msg->id);
        host_log_int(line, "attempts", msg->attempts);
        host_log_str(line, "error", error);
        host_log_end(line);
        msg->state = MSG_STOPPED;
        flush_check();
        return;
    }
    double delay = backoff_s(msg->attempts);
    struct timeval tv = {(time_t)delay, (suseconds_t)((delay - (double)(time_t)delay) * 1e6)};
    struct log_line *line = host_log_begin(LOG_WARN, "mail delivery failed; retrying");
    host_log_str(line, "mail_id", msg->id);
    host_log_int(line, "attempt", msg->attempts);
    host_log_int(line, "attempts_max", mailer.cfg.retry_max);
    host_log_num(line, "retry_in_s", delay);
    host_log_str(line, "error", error);
    if (smtp_code) host_log_int(line, "smtp_code", smtp_code);
    host_log_end(line);
    msg->state = MSG_WAITING;
    evtimer_add(msg->timer, &tv);
}

/* ---- outbox ------------------------------------------------------------- */

/* mkdir -p with mode 0700 for what it creates. 0, or -1 with errno. */
static int ensure_dir(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Writes msg as <dir>/<UTC yyyymmddThhmmssZ>-<id>.eml through a temporary
 * dot-file and rename(2), so a reader never sees half a message. Returns 0
 * with the final path in `path`, or -1 with errno and the failed step. */
static int outbox_write(const struct mail_msg *msg, char *path, size_t cap, const char **step)
{
    char tmp[PATH_MAX], stamp[32];
    struct tm tm;
    int fd = -1;
    const char *dir = mailer.cfg.outbox_dir;

    *step = "create the folder";
    if (ensure_dir(dir) != 0) return -1;
    gmtime_r(&msg->created, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    *step = "name the file";
    if ((size_t)snprintf(path, cap, "%s/%s-%s.eml", dir, stamp, msg->id) >= cap ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.eml.tmp", dir, msg->id) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    *step = "open";
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    *step = "write";
    for (size_t off = 0; off < msg->len;) {
        ssize_t n = write(fd, msg->data + off, msg->len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto fail;
        off += (size_t)n;
    }
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    *step = "rename";
    if (rename(tmp, path) != 0) goto fail;
    return 0;

fail: {
        int saved = errno ? errno : EIO;
        if (fd >= 0) close(fd);
        unlink(tmp);
        errno = saved;
        return -1;
    }
}

static void outbox_attempt(struct mail_msg *msg)
{
    char path[PATH_MAX], error[256];
    const char *step = NULL;
    msg->attempts++;
    if (outbox_write(msg, path, sizeof path, &step) == 0) {
        delivered(msg, path);
        return;
    }
    snprintf(error, sizeof error, "outbox %s: cannot %s: %s", mailer.cfg.outbox_dir, step, strerror(errno));
    attempt_failed(msg, error, 0);
}

/* ---- SMTP on the transfer thread ---------------------------------------- */

/* CURLOPT_READFUNCTION. Transfer thread: touches only data, len and pos,
 * which the loop leaves alone while the message is SENDING. */
static size_t smtp_read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    struct mail_msg *msg = userp;
    size_t room = size * nitems, left = msg->len - msg->pos;
    size_t n = left < room ? left : room;
    memcpy(buf, msg->data + msg->pos, n);
    msg->pos += n;
    return n;
}

/* Frees what one attempt made (the handle is back from the transfer
 * thread, or was never handed over). */
static void smtp_free_attempt(struct mail_msg *msg)
{
    if (msg->easy) curl_easy_cleanup(msg->easy);
    curl_slist_free_all(msg->rcpt_list);
    msg->easy = NULL;
    msg->rcpt_list = NULL;
}

static void start_ready(void);

/* host_transfer_done_fn: an attempt is over; the easy handle is ours again.
 * Delivered, or failed and rescheduled. An orphan (its message was dropped
 * by host_mail_shutdown while this transfer ran) is only freed: the mailer
 * is gone by then. */
static void smtp_done_cb(CURL *easy, CURLcode rc, long code, void *arg)
{
    struct mail_msg *msg = arg;
    char error[CURL_ERROR_SIZE + 64];
    (void)easy; /* == msg->easy */
    if (msg->orphan) {
        smtp_free_attempt(msg);
        free(msg->rcpt);
        free(msg->data);
        free(msg);
        return;
    }
    snprintf(error, sizeof error, "%s", msg->errbuf[0] ? msg->errbuf : curl_easy_strerror(rc));
    smtp_free_attempt(msg);
    mailer.inflight--;
    msg->state = MSG_WAITING;
    if (rc == CURLE_OK) delivered(msg, NULL);
    else attempt_failed(msg, error, code);
    start_ready();
}

/* Starts one attempt: builds the easy handle here, on the loop, and hands
 * it to the transfer thread. On a local failure (out of memory, no
 * transfer thread) the attempt is counted as failed at once. */
static void smtp_start(struct mail_msg *msg)
{
    const struct mail_settings *cfg = &mailer.cfg;
    msg->attempts++;
    msg->pos = 0;
    msg->errbuf[0] = '\0';
    msg->attempt_started = host_now();
    msg->easy = curl_easy_init();
    msg->rcpt_list = curl_slist_append(NULL, msg->rcpt);
    if (msg->easy == NULL || msg->rcpt_list == NULL) {
        smtp_free_attempt(msg);
        attempt_failed(msg, "out of memory", 0);
        return;
    }
    curl_easy_setopt(msg->easy, CURLOPT_URL, cfg->url);
    curl_easy_setopt(msg->easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(msg->easy, CURLOPT_USE_SSL, cfg->use_ssl);
    curl_easy_setopt(msg->easy, CURLOPT_MAIL_FROM, cfg->envelope_from);
    curl_easy_setopt(msg->easy, CURLOPT_MAIL_RCPT, msg->rcpt_list);
    curl_easy_setopt(msg->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(msg->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg->len);
    curl_easy_setopt(msg->easy, CURLOPT_READFUNCTION, smtp_read_cb);
    curl_easy_setopt(msg->easy, CURLOPT_READDATA, msg);
    curl_easy_setopt(msg->easy, CURLOPT_TIMEOUT, cfg->timeout_s);
    /* caps curl's blocking waits (end of data, QUIT), which hold up the
     * transfer thread, and so every other transfer of the worker */
    curl_easy_setopt(msg->easy, CURLOPT_SERVER_RESPONSE_TIMEOUT, cfg->timeout_s);
    curl_easy_setopt(msg->easy, CURLOPT_ERRORBUFFER, msg->errbuf);
    if (host_transfer_submit(msg->easy, smtp_done_cb, msg) != 0) {
        smtp_free_attempt(msg);
        attempt_failed(msg, "the transfer thread is not available", 0);
        return;
    }
    msg->state = MSG_SENDING;
    mailer.inflight++;
}

/* Starts due messages while SMTP slots are free. */
static void start_ready(void)
{
    struct mail_msg *msg;
    while (mailer.inflight < MAIL_MAX_INFLIGHT && (msg = TAILQ_FIRST(&mailer.ready)) != NULL) {
        TAILQ_REMOVE(&mailer.ready, msg, ready_link);
        msg->state = MSG_WAITING;
        smtp_start(msg);
    }
}

/* ---- attempts ----------------------------------------------------------- */

static void attempt_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mail_msg *msg = arg;
    (void)fd;
    (void)what;
    if (mailer.cfg.transport == TRANSPORT_OUTBOX) {
        outbox_attempt(msg);
        return;
    }
    msg->state = MSG_READY;
    TAILQ_INSERT_TAIL(&mailer.ready, msg, ready_link);
    start_ready();
}

/* ---- settings ----------------------------------------------------------- */

static void settings_free(struct mail_settings *cfg)
{
    free(cfg->url);
    free(cfg->log_target);
    free(cfg->from_header);
    free(cfg->envelope_from);
    free(cfg->domain);
    free(cfg->outbox_dir);
    memset(cfg, 0, sizeof *cfg);
}

/* Writes why a setting is refused into err: `msg` names the variable;
 * `detail` (may be NULL) is the part of the value that is wrong, never a
 * secret. */
static void config_error(char *err, size_t cap, const char *msg, const char *detail)
{
    if (detail) snprintf(err, cap, "%s; got \"%s\"", msg, detail);
    else snprintf(err, cap, "%s", msg);
}

/* Checks MAIL_URL and keeps "scheme://host:port" for logs. 0, or -1 with
 * why in err. */
static int parse_url(struct mail_settings *cfg, const char *url, char *err, size_t cap)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = -1;
    if (u == NULL) return -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        config_error(err, cap, "MAIL_URL is not a URL (smtp://user:pass@host:port or smtps://...)", NULL);
        goto done;
    }
    if (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0) {
        config_error(err, cap, "MAIL_URL must start with smtp:// or smtps://", scheme);
        goto done;
    }
    size_t n = strlen(scheme) + strlen(host) + strlen(port) + 5;
    if ((cfg->log_target = malloc(n)) == NULL || (cfg->url = strdup(url)) == NULL) goto done;
    snprintf(cfg->log_target, n, "%s://%s:%s", scheme, host, port);
    rc = 0;

done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* MAIL_FROM: "Name <addr>" or "addr". Builds the From: value (the name as
 * an encoded-word when it is not plain ASCII, quoted when it has specials),
 * the envelope sender and the Message-ID domain. 0, or -1 with why in err. */
static int parse_from(struct mail_settings *cfg, const char *from, char *err, size_t cap)
{
    const char *lt = strchr(from, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    const char *addr = lt ? lt + 1 : from;
    size_t addr_len = lt ? (gt ? (size_t)(gt - addr) : 0) : strlen(from);
    size_t name_len = lt ? (size_t)(lt - from) : 0;
    struct evbuffer *out = NULL;
    int rc = -1;

    while (name_len > 0 && (from[name_len - 1] == ' ' || from[name_len - 1] == '\t')) name_len--;
    if (has_crlf_nul(from, strlen(from)) || (lt && (gt == NULL || gt[1] != '\0')) ||
        !valid_address(addr, addr_len)) {
        config_error(err, cap, "MAIL_FROM is not an address (\"Name <user@host>\" or \"user@host\")", from);
        return -1;
    }
    if ((out = evbuffer_new()) == NULL) return -1;
    if (name_len > 0) {
        int ascii = 1, special = 0;
        for (size_t i = 0; i < name_len; i++) {
            unsigned char c = (unsigned char)from[i];
            if (c < 0x20 || c >= 0x7F) ascii = 0;
            else if (strchr("()<>[]:;@\\,.\"", c)) special = 1;
        }
        if (!ascii) {
            add_header_text(out, from, name_len, 1000); /* forces encoded-words */
        } else if (special) {
            evbuffer_add(out, "\"", 1);
            for (size_t i = 0; i < name_len; i++) {
                if (from[i] == '"' || from[i] == '\\') evbuffer_add(out, "\\", 1);
                evbuffer_add(out, &from[i], 1);
            }
            evbuffer_add(out, "\"", 1);
        } else {
            evbuffer_add(out, from, name_len);
        }
        evbuffer_add(out, " ", 1);
    }
    evbuffer_add(out, "<", 1);
    evbuffer_add(out, addr, addr_len);
    evbuffer_add(out, ">", 1);
    size_t n = evbuffer_get_length(out);
    cfg->from_header = malloc(n + 1);
    cfg->envelope_from = malloc(addr_len + 3);
    const char *at = memchr(addr, '@', addr_len);
    cfg->domain = strndup(at + 1, addr_len - (size_t)(at + 1 - addr));
    if (cfg->from_header == NULL || cfg->envelope_from == NULL || cfg->domain == NULL) goto done;
    evbuffer_remove(out, cfg->from_header, n);
    cfg->from_header[n] = '\0';
    snprintf(cfg->envelope_from, addr_len + 3, "<%.*s>", (int)addr_len, addr);
    rc = 0;

done:
    evbuffer_free(out);
    return rc;
}

/* MAIL_* and OUTBOX_DIR into cfg (settings_free frees it, also after a
 * failure). 0, or -1 with why in err. */
static int settings_load(struct mail_settings *cfg, char *err, size_t cap)
{
    const char *url = config_env_str("MAIL_URL", NULL);
    const char *tls = config_env_str("MAIL_TLS", "try");
    cfg->timeout_s = config_env_long("MAIL_TIMEOUT_S", 30, 1, 3600);
    cfg->retry_max = config_env_long("MAIL_RETRY_MAX", 8, 1, 100);
    cfg->queue_max = config_env_long("MAIL_QUEUE_MAX", 1000, 1, 1000000);
    cfg->flush_s = config_env_long("MAIL_FLUSH_S", 3, 0, 60);
    cfg->tls = tls;
    if (!strcmp(tls, "try")) cfg->use_ssl = CURLUSESSL_TRY;
    else if (!strcmp(tls, "require")) cfg->use_ssl = CURLUSESSL_ALL;
    else if (!strcmp(tls, "off")) cfg->use_ssl = CURLUSESSL_NONE;
    else {
        config_error(err, cap, "MAIL_TLS must be try, require or off", tls);
        return -1;
    }
    if (parse_from(cfg, config_env_str("MAIL_FROM", "moonkeep <no-reply@localhost>"), err, cap) != 0) return -1;
    if ((cfg->outbox_dir = strdup(config_env_str("OUTBOX_DIR", "var/outbox"))) == NULL) {
        config_error(err, cap, "out of memory", NULL);
        return -1;
    }
    if (url == NULL) {
        cfg->transport = TRANSPORT_OUTBOX;
        return 0;
    }
    cfg->transport = TRANSPORT_SMTP;
    if (parse_url(cfg, url, err, cap) != 0) return -1;
    if (!strncmp(url, "smtps:", 6) && cfg->use_ssl == CURLUSESSL_NONE) {
        config_error(err, cap, "MAIL_TLS=off contradicts smtps:// (implicit TLS)", NULL);
        return -1;
    }
    return 0;
}

/* ---- service ------------------------------------------------------------ */

int host_mail_check_config(char *err, size_t cap)
{
    struct mail_settings cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(err, cap, "out of memory");
    /* curl_url parses MAIL_URL: libcurl wants its global state first */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
    int rc = settings_load(&cfg, err, cap);
    settings_free(&cfg);
    curl_global_cleanup();
    return rc;
}

int host_mail_init(struct event_base *base)
{
    char err[256];
    if (mailer.running) return 0;
    memset(&mailer, 0, sizeof mailer);
    TAILQ_INIT(&mailer.queue);
    TAILQ_INIT(&mailer.ready);
    mailer.base = base;
    /* curl_url and curl_easy_init run here, on the loop; the transfer
     * service holds its own reference (curl_global_init counts) */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        host_log(LOG_ERROR, "mail: curl_global_init failed");
        return -1;
    }
    mailer.curl_ready = 1;
    snprintf(err, sizeof err, "out of memory");
    if (settings_load(&mailer.cfg, err, sizeof err) != 0) {
        struct log_line *line = host_log_begin(LOG_ERROR, "mail settings refused");
        host_log_str(line, "error", err);
        host_log_end(line);
        goto fail;
    }
    mailer.running = 1;
    struct log_line *line = host_log_begin(LOG_INFO, "mail transport");
    if (mailer.cfg.transport == TRANSPORT_SMTP) {
        host_log_str(line, "mode", "smtp");
        host_log_str(line, "server", mailer.cfg.log_target);
        host_log_str(line, "tls", mailer.cfg.tls);
    } else {
        host_log_str(line, "mode", "outbox");
        host_log_str(line, "dir", mailer.cfg.outbox_dir);
    }
    host_log_str(line, "from", mailer.cfg.from_header);
    host_log_end(line);
    return 0;

fail:
    curl_global_cleanup();
    settings_free(&mailer.cfg);
    memset(&mailer, 0, sizeof mailer);
    return -1;
}

static void flush_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_base_loopbreak(mailer.base);
}

/* Gives every held message one more immediate attempt (no retries after
 * it) and runs the loop until they are done or MAIL_FLUSH_S has passed. */
static void flush_queue(void)
{
    struct mail_msg *msg;
    static const struct timeval now = {0, 0};
    struct timeval bound = {mailer.cfg.flush_s, 0};
    mailer.flushing = 1;
    if (mailer.count == 0 || mailer.cfg.flush_s == 0) return;
    TAILQ_FOREACH(msg, &mailer.queue, link)
        if (msg->state == MSG_WAITING) evtimer_add(msg->timer, &now);
    mailer.flush_timer = evtimer_new(mailer.base, flush_deadline_cb, NULL);
    if (mailer.flush_timer == NULL) return;
    evtimer_add(mailer.flush_timer, &bound);
    struct log_line *line = host_log_begin(LOG_INFO, "mail: flushing the queue before exit");
    host_log_int(line, "queued", (int64_t)mailer.count);
    host_log_int(line, "bound_s", mailer.cfg.flush_s);
    host_log_end(line);
    event_base_dispatch(mailer.base);
    event_free(mailer.flush_timer);
    mailer.flush_timer = NULL;
}

void host_mail_shutdown(void)
{
    struct mail_msg *msg, *next;
    if (!mailer.running) return;
    flush_queue();

    if (mailer.count > 0) {
        struct evbuffer *ids = evbuffer_new();
        TAILQ_FOREACH(msg, &mailer.queue, link)
            if (ids) evbuffer_add_printf(ids, "%s%s", evbuffer_get_length(ids) ? "," : "", msg->id);
        struct log_line *line = host_log_begin(LOG_WARN, "mail dropped at shutdown: still queued");
        host_log_int(line, "dropped", (int64_t)mailer.count);
        if (ids) host_log_strn(line, "mail_ids", (const char *)evbuffer_pullup(ids, -1), evbuffer_get_length(ids));
        host_log_end(line);
        if (ids) evbuffer_free(ids);
    }
    /* A message still SENDING is the transfer thread's until its done
     * callback runs: cancel it (its socket is cut now, so it cannot end as
     * a half message, nor hang on a silent server) and leave it, as an
     * orphan, to smtp_done_cb, which host_transfer_shutdown runs next. */
    for (msg = TAILQ_FIRST(&mailer.queue); msg; msg = next) {
        next = TAILQ_NEXT(msg, link);
        if (msg->state != MSG_SENDING) {
            msg_free(msg);
            continue;
        }
        TAILQ_REMOVE(&mailer.queue, msg, link);
        mailer.count--;
        event_free(msg->timer);
        msg->timer = NULL;
        msg->orphan = 1;
        host_transfer_cancel(msg->easy);
    }
    if (mailer.curl_ready) curl_global_cleanup();
    settings_free(&mailer.cfg);
    memset(&mailer, 0, sizeof mailer);
}

void host_mail_stats(struct host_mail_stats *out)
{
    struct mail_msg *msg;
    memset(out, 0, sizeof *out);
    if (!mailer.running) return;
    out->queued = mailer.count;
    out->sent = mailer.sent;
    out->failed = mailer.failed;
    TAILQ_FOREACH(msg, &mailer.queue, link)
        if (msg->attempts > 0 && msg->state != MSG_SENDING) out->retrying++;
}

/* ---- host.mail ---------------------------------------------------------- */

/* Pushes t[name] (the table at index 1) and returns it as a string, or
 * NULL when absent. Raises when it is there but not a string. Stack: +1. */
static const char *field_string(lua_State *L, const char *name, size_t *len)
{
    lua_getfield(L, 1, name);
    *len = 0;
    if (lua_isnil(L, -1)) return NULL;
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pushfstring(L, "field '%s' must be a string, not %s", name, luaL_typename(L, -1));
        luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    return lua_tolstring(L, -1, len);
}

static int send_fail(lua_State *L, int top, const char *err)
{
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* mail.send{to=, subject=, text=, html=} -> id | nil, err.
 * Raises on misuse (not a table, a field of the wrong type, no server);
 * returns nil, err for an invalid message or a full queue. Queues the
 * message and returns at once: delivery is in the background. */
static int l_mail_send(lua_State *L)
{
    size_t to_len, subject_len, text_len, html_len;
    luaL_checktype(L, 1, LUA_TTABLE);
    int top = lua_gettop(L);
    if (!mailer.running)
        return luaL_error(L, "host.mail needs a running server: mail.send works in a worker, "
                             "not in a plain luajit (specs) or before the worker starts");
    /* stack: args.. to subject text html (kept until the end: the strings live there) */
    const char *to = field_string(L, "to", &to_len);
    const char *subject = field_string(L, "subject", &subject_len);
    const char *text = field_string(L, "text", &text_len);
    const char *html = field_string(L, "html", &html_len);
    if (subject == NULL) subject = "";

    if (to == NULL || to_len == 0) return send_fail(L, top, ERR_PREFIX "to is required");
    if (has_crlf_nul(to, to_len)) return send_fail(L, top, ERR_PREFIX "to must not contain CR, LF or NUL");
    if (!valid_address(to, to_len)) return send_fail(L, top, ERR_PREFIX "to is not a valid email address");
    if (has_crlf_nul(subject, subject_len))
        return send_fail(L, top, ERR_PREFIX "subject must not contain CR, LF or NUL");
    if (text == NULL) return send_fail(L, top, ERR_PREFIX "text is required");
    if (mailer.count >= (unsigned long)mailer.cfg.queue_max) {
        struct log_line *line = host_log_begin(LOG_WARN, "mail queue full; message refused");
        host_log_int(line, "queued", (int64_t)mailer.count);
        const char *request_id = host_task_request_id(L);
        if (request_id) host_log_str(line, "request_id", request_id);
        host_log_end(line);
        return send_fail(L, top, "mail queue full");
    }

    struct mail_msg *msg = calloc(1, sizeof *msg);
    struct evbuffer *out = evbuffer_new();
    unsigned char raw[MAIL_ID_BYTES];
    if (msg == NULL || out == NULL) goto oom;
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(msg->id, sizeof msg->id, raw, sizeof raw);
    msg->created = time(NULL);
    build_message(out, msg->id, msg->created, to, to_len, subject, subject_len,
                  text, text_len, html, html_len);
    msg->len = evbuffer_get_length(out);
    msg->data = malloc(msg->len);
    msg->rcpt = malloc(to_len + 3);
    msg->timer = evtimer_new(mailer.base, attempt_cb, msg);
    if (msg->data == NULL || msg->rcpt == NULL || msg->timer == NULL) goto oom;
    evbuffer_remove(out, msg->data, msg->len);
    evbuffer_free(out);
    out = NULL;
    snprintf(msg->rcpt, to_len + 3, "<%.*s>", (int)to_len, to);

    static const struct timeval now = {0, 0};
    msg->state = MSG_WAITING;
    evtimer_add(msg->timer, &now);
    TAILQ_INSERT_TAIL(&mailer.queue, msg, link);
    mailer.count++;

    struct log_line *line = host_log_begin(LOG_INFO, "mail queued");
    host_log_str(line, "mail_id", msg->id);
    const char *request_id = host_task_request_id(L);
    if (request_id) host_log_str(line, "request_id", request_id);
    host_log_str(line, "to_domain", (const char *)memchr(to, '@', to_len) + 1);
    host_log_str(line, "transport", mailer.cfg.transport == TRANSPORT_SMTP ? "smtp" : "outbox");
    host_log_int(line, "bytes", (int64_t)msg->len);
    host_log_end(line);

    lua_settop(L, top);
    lua_pushstring(L, msg->id);
    return 1;

oom:
    if (out) evbuffer_free(out);
    if (msg) {
        if (msg->timer) event_free(msg->timer);
        free(msg->data);
        free(msg->rcpt);
        free(msg);
    }
    return luaL_error(L, "host.mail: out of memory");
}

/* mail.stats() -> {queued=, sent=, failed=, retrying=} for this worker. */
static int l_mail_stats(lua_State *L)
{
    struct host_mail_stats s;
    host_mail_stats(&s);
    lua_createtable(L, 0, 4);
    lua_pushnumber(L, (lua_Number)s.queued);
    lua_setfield(L, -2, "queued");
    lua_pushnumber(L, (lua_Number)s.sent);
    lua_setfield(L, -2, "sent");
    lua_pushnumber(L, (lua_Number)s.failed);
    lua_setfield(L, -2, "failed");
    lua_pushnumber(L, (lua_Number)s.retrying);
    lua_setfield(L, -2, "retrying");
    return 1;
}

static const luaL_Reg mail_functions[] = {
    {"send", l_mail_send},
    {"stats", l_mail_stats},
    {NULL, NULL},
};

int host_mail_open(lua_State *L)
{
    luaL_newlib(L, mail_functions);
    return 1;
}

static const struct host_stat mail_stat_list[] = {
    {"moonkeep_mail_sent_total", "Mails delivered (or written to the outbox).", 1},
    {"moonkeep_mail_failed_total", "Mails given up (refused by the server, or out of attempts).", 1},
    {"moonkeep_mail_queued", "Mails held now: waiting, sending or retrying.", 0},
    {"moonkeep_mail_retrying", "Mails held now after at least one failed attempt.", 0},
    {NULL, NULL, 0},
};

static void mail_stat_values(int64_t *v)
{
    struct host_mail_stats s;
    host_mail_stats(&s);
    v[0] = (int64_t)s.sent;
    v[1] = (int64_t)s.failed;
    v[2] = (int64_t)s.queued;
    v[3] = (int64_t)s.retrying;
}

const struct host_service host_mail_service = {
    "mail", host_mail_check_config, host_mail_init, host_mail_shutdown, mail_stat_values, mail_stat_list,
};
