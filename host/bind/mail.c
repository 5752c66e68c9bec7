/* mail.c — host.mail: builds RFC 5322 messages and makes one delivery
 * attempt per call, over SMTP or into an outbox folder, while the calling
 * task waits. Queueing, retries and backoff are not here: the mail outbox
 * table holds them (scripts/lib/outbox.lua, docs/mail.md), so a message
 * outlives any worker. Owns, per worker process, everything in `mailer`:
 *
 *   - the attempts in flight (struct delivery), each holding only C data;
 *   - in SMTP mode (MAIL_URL set), their curl easy handles, each running
 *     on the worker's transfer thread (transfer.h) while it is in flight;
 *   - in outbox mode (no MAIL_URL), nothing more: the .eml file is written
 *     during the call, on the loop, and the call returns without waiting;
 *   - the transport settings read from the environment at init.
 *
 * An SMTP attempt's life: deliver -> the task suspends -> smtp_done_cb on
 * the loop resumes it with the outcome and frees the attempt. When the
 * task is aborted first (client gone, shutdown), cancel_delivery cuts the
 * transfer and leaves the attempt, as an orphan, to smtp_done_cb, which
 * frees it without resuming anything.
 *
 * Threads: everything here runs on the loop thread (building, stats, logs,
 * outbox writes) except the SMTP transfer itself, which runs on the
 * transfer thread: libcurl 7.88's SMTP blocks while it waits for the reply
 * to the end of data and to QUIT (curl issue #8555), and there it stalls
 * only other transfers, never the loop. While an attempt is in flight the
 * transfer thread owns its easy handle and reads d->data, d->len, d->pos
 * and d->errbuf (smtp_read_cb, curl's error buffer); the loop touches none
 * of these until smtp_done_cb hands the handle back. An outbox write is
 * one small local file (no fsync) and stays on the loop.
 *
 * Message bodies carry tokens: they are never logged. MAIL_URL carries
 * credentials: only its scheme, host and port are logged. */
#include "bind/mail.h"

#include <ctype.h>
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

#define MAIL_ID_MAX 64                       /* Message-ID left part, chosen by the caller */
#define ERR_PREFIX "invalid message: "

enum transport { TRANSPORT_OUTBOX, TRANSPORT_SMTP };

/* One delivery attempt; freed by whoever ends it (delivery_free). */
struct delivery {
    LIST_ENTRY(delivery) link;          /* in mailer.inflight_list while SMTP runs */
    char id[MAIL_ID_MAX + 1];
    char request_id[129];               /* of the task that asked, for the log */
    struct host_task *task;             /* waiting for the outcome; NULL once cancelled */
    char *rcpt;                         /* "<to>" for RCPT TO; owned */
    char *data;                         /* the whole message, CRLF lines; owned */
    size_t len;
    size_t pos;                         /* read position (transfer thread) */
    time_t created;
    double started;                     /* monotonic seconds */
    CURL *easy;                         /* in flight: the transfer thread's */
    struct curl_slist *rcpt_list;       /* in flight: read by the transfer thread */
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
};

static struct {
    int running;            /* host_mail_init succeeded, shutdown not run */
    int curl_ready;         /* curl_global_init done: cleanup owed */
    LIST_HEAD(, delivery) inflight_list;
    unsigned inflight;      /* SMTP attempts on the transfer thread */
    unsigned long sent;
    unsigned long failed;   /* attempts that failed */
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

/* Writes the whole message into `out`. `id` is the Message-ID's left part. */
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

/* ---- attempts in flight ------------------------------------------------- */

/* Frees an attempt whose easy handle is back (or was never handed over). */
static void delivery_free(struct delivery *d)
{
    if (d->easy) curl_easy_cleanup(d->easy);
    curl_slist_free_all(d->rcpt_list);
    free(d->rcpt);
    free(d->data);
    free(d);
}

/* Records the outcome of an attempt: one log line, and the count stats()
 * and /metrics report. `smtp_code` is the
 * server's last reply code (0 when there was none). */
static void record_outcome(const struct delivery *d, const char *path, const char *error, long smtp_code)
{
    struct log_line *line;
    if (error == NULL) {
        line = host_log_begin(LOG_INFO, path ? "mail written to outbox" : "mail sent");
        mailer.sent++;
    } else {
        line = host_log_begin(LOG_WARN, "mail delivery attempt failed");
        host_log_str(line, "error", error);
        if (smtp_code) host_log_int(line, "smtp_code", smtp_code);
        mailer.failed++;
    }
    host_log_str(line, "mail_id", d->id);
    if (d->request_id[0]) host_log_str(line, "request_id", d->request_id);
    if (path) host_log_str(line, "path", path);
    else if (mailer.cfg.transport == TRANSPORT_SMTP) host_log_str(line, "server", mailer.cfg.log_target);
    else host_log_str(line, "dir", mailer.cfg.outbox_dir);
    host_log_num(line, "duration_ms", (host_now() - d->started) * 1000.0);
    host_log_end(line);
}

/* Pushes deliver's results on `L`: true, or nil, error, permanent (a 5xx
 * reply: the server will refuse the message again). Returns their count. */
static int push_outcome(lua_State *L, const char *error, long smtp_code)
{
    if (error == NULL) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, error);
    lua_pushboolean(L, smtp_code >= 500 && smtp_code < 600);
    return 3;
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

/* Writes the message as <dir>/<UTC yyyymmddThhmmssZ>-<id>.eml through a
 * temporary dot-file and rename(2), so a reader never sees half a message;
 * a second attempt for the same id in the same second replaces the first
 * file (a later one writes a second file with the same Message-ID). Returns 0 with
 * the final path in `path`, or -1 with errno and the failed step. */
static int outbox_write(const struct delivery *d, char *path, size_t cap, const char **step)
{
    char tmp[PATH_MAX], stamp[32];
    struct tm tm;
    int fd = -1;
    const char *dir = mailer.cfg.outbox_dir;

    *step = "create the folder";
    if (ensure_dir(dir) != 0) return -1;
    gmtime_r(&d->created, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    *step = "name the file";
    if ((size_t)snprintf(path, cap, "%s/%s-%s.eml", dir, stamp, d->id) >= cap ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.eml.tmp", dir, d->id) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    *step = "open";
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    *step = "write";
    for (size_t off = 0; off < d->len;) {
        ssize_t n = write(fd, d->data + off, d->len - off);
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

/* One outbox attempt, during the call: pushes the results on L, frees d. */
static int outbox_deliver(lua_State *L, struct delivery *d)
{
    char path[PATH_MAX], error[256];
    const char *step = NULL;
    const char *failure = NULL;
    if (outbox_write(d, path, sizeof path, &step) != 0) {
        snprintf(error, sizeof error, "outbox %s: cannot %s: %s", mailer.cfg.outbox_dir, step, strerror(errno));
        failure = error;
    }
    record_outcome(d, failure ? NULL : path, failure, 0);
    delivery_free(d);
    return push_outcome(L, failure, 0);
}

/* ---- SMTP on the transfer thread ---------------------------------------- */

/* CURLOPT_READFUNCTION. Transfer thread: touches only data, len and pos,
 * which the loop leaves alone while the attempt is in flight. */
static size_t smtp_read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    struct delivery *d = userp;
    size_t room = size * nitems, left = d->len - d->pos;
    size_t n = left < room ? left : room;
    memcpy(buf, d->data + d->pos, n);
    d->pos += n;
    return n;
}

/* host_task_cancel_fn: the waiting task is gone. Cut the transfer (its
 * socket is shut down now, so it cannot end as half a message) and leave
 * the attempt to smtp_done_cb as an orphan. */
static void cancel_delivery(void *op)
{
    struct delivery *d = op;
    struct log_line *line = host_log_begin(LOG_WARN, "mail delivery attempt cut: its task was cancelled");
    host_log_str(line, "mail_id", d->id);
    if (d->request_id[0]) host_log_str(line, "request_id", d->request_id);
    host_log_end(line);
    d->task = NULL;
    host_transfer_cancel(d->easy);
}

/* host_transfer_done_fn: the attempt is over; the easy handle is ours
 * again. Resumes the waiting task with the outcome, unless it was
 * cancelled. */
static void smtp_done_cb(CURL *easy, CURLcode rc, long code, void *arg)
{
    struct delivery *d = arg;
    char error[CURL_ERROR_SIZE + 64];
    (void)easy; /* == d->easy */
    LIST_REMOVE(d, link);
    mailer.inflight--;
    struct host_task *task = d->task;
    if (task == NULL) {
        delivery_free(d);
        return;
    }
    snprintf(error, sizeof error, "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(rc));
    const char *failure = rc == CURLE_OK ? NULL : error;
    record_outcome(d, NULL, failure, code);
    delivery_free(d);
    host_task_resume(task, push_outcome(host_task_thread(task), failure, code));
}

/* Hands the attempt to the transfer thread and suspends `task`; on a local
 * failure (out of memory, no transfer thread) returns its outcome at once. */
static int smtp_deliver(lua_State *L, struct host_task *task, struct delivery *d)
{
    const struct mail_settings *cfg = &mailer.cfg;
    d->easy = curl_easy_init();
    d->rcpt_list = curl_slist_append(NULL, d->rcpt);
    if (d->easy == NULL || d->rcpt_list == NULL) {
        record_outcome(d, NULL, "out of memory", 0);
        delivery_free(d);
        return push_outcome(L, "out of memory", 0);
    }
    curl_easy_setopt(d->easy, CURLOPT_URL, cfg->url);
    curl_easy_setopt(d->easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(d->easy, CURLOPT_USE_SSL, cfg->use_ssl);
    curl_easy_setopt(d->easy, CURLOPT_MAIL_FROM, cfg->envelope_from);
    curl_easy_setopt(d->easy, CURLOPT_MAIL_RCPT, d->rcpt_list);
    curl_easy_setopt(d->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(d->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)d->len);
    curl_easy_setopt(d->easy, CURLOPT_READFUNCTION, smtp_read_cb);
    curl_easy_setopt(d->easy, CURLOPT_READDATA, d);
    curl_easy_setopt(d->easy, CURLOPT_TIMEOUT, cfg->timeout_s);
    /* caps curl's blocking waits (end of data, QUIT), which hold up the
     * transfer thread, and so every other transfer of the worker */
    curl_easy_setopt(d->easy, CURLOPT_SERVER_RESPONSE_TIMEOUT, cfg->timeout_s);
    curl_easy_setopt(d->easy, CURLOPT_ERRORBUFFER, d->errbuf);
    if (host_transfer_submit(d->easy, smtp_done_cb, d) != 0) {
        record_outcome(d, NULL, "the transfer thread is not available", 0);
        delivery_free(d);
        return push_outcome(L, "the transfer thread is not available", 0);
    }
    d->task = task;
    LIST_INSERT_HEAD(&mailer.inflight_list, d, link);
    mailer.inflight++;
    return host_task_suspend(task, cancel_delivery, d);
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
    const char *url = host_config_env_str("MAIL_URL", NULL);
    const char *tls = host_config_env_str("MAIL_TLS", "try");
    cfg->timeout_s = host_config_env_long("MAIL_TIMEOUT_S", 15, 1, 3600);
    cfg->tls = tls;
    if (!strcmp(tls, "try")) cfg->use_ssl = CURLUSESSL_TRY;
    else if (!strcmp(tls, "require")) cfg->use_ssl = CURLUSESSL_ALL;
    else if (!strcmp(tls, "off")) cfg->use_ssl = CURLUSESSL_NONE;
    else {
        config_error(err, cap, "MAIL_TLS must be try, require or off", tls);
        return -1;
    }
    if (parse_from(cfg, host_config_env_str("MAIL_FROM", "moonkeep <no-reply@localhost>"), err, cap) != 0) return -1;
    if ((cfg->outbox_dir = strdup(host_config_env_str("OUTBOX_DIR", "var/outbox"))) == NULL) {
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
    (void)base;
    if (mailer.running) return 0;
    memset(&mailer, 0, sizeof mailer);
    LIST_INIT(&mailer.inflight_list);
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

void host_mail_shutdown(void)
{
    struct delivery *d;
    if (!mailer.running) return;
    /* Services stop only after a complete drain (server/worker.c), and the
     * jobs' tasks are aborted before (host_jobs_shutdown, which cuts their
     * attempts through cancel_delivery), so nothing is normally left here.
     * Whatever is, is cut: its outbox row stays due, and the lease lets
     * another worker send it again, with the same Message-ID. smtp_done_cb
     * frees it when host_transfer_shutdown runs next. */
    LIST_FOREACH(d, &mailer.inflight_list, link) {
        d->task = NULL;
        host_transfer_cancel(d->easy);
    }
    if (mailer.curl_ready) curl_global_cleanup();
    settings_free(&mailer.cfg);
    mailer.running = 0;
}

void host_mail_stats(struct host_mail_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!mailer.running) return;
    out->sending = mailer.inflight;
    out->sent = mailer.sent;
    out->failed = mailer.failed;
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

static int invalid(lua_State *L, int top, const char *err)
{
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushboolean(L, 1); /* sending it again cannot help */
    return 3;
}

/* A Message-ID left part the caller chose: what an outbox row keeps so a
 * second attempt is recognisable as the same message. */
static int valid_id(const char *id, size_t len)
{
    if (len == 0 || len > MAIL_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '.' && id[i] != '_') return 0;
    return 1;
}

/* mail.deliver{id=, to=, subject=, text=, html=} -> true | nil, err, permanent.
 * One attempt; the calling task waits for it (an outbox write returns at
 * once). Raises on misuse (not a table, a field of the wrong type, no
 * server, not in a task that can wait); an invalid message is a permanent
 * failure. */
static int l_mail_deliver(lua_State *L)
{
    size_t id_len, to_len, subject_len, text_len, html_len;
    luaL_checktype(L, 1, LUA_TTABLE);
    int top = lua_gettop(L);
    if (!mailer.running)
        return luaL_error(L, "host.mail needs a running server: mail.deliver works in a worker, "
                             "not in a plain luajit (specs) or before the worker starts");
    struct host_task *task = host_task_waitable(L, "mail.deliver");
    /* stack: args.. id to subject text html (kept until the end: the strings live there) */
    const char *id = field_string(L, "id", &id_len);
    const char *to = field_string(L, "to", &to_len);
    const char *subject = field_string(L, "subject", &subject_len);
    const char *text = field_string(L, "text", &text_len);
    const char *html = field_string(L, "html", &html_len);
    if (subject == NULL) subject = "";

    if (id == NULL || !valid_id(id, id_len))
        return invalid(L, top, ERR_PREFIX "id must be 1 to 64 letters, digits, '.', '-' or '_'");
    if (to == NULL || to_len == 0) return invalid(L, top, ERR_PREFIX "to is required");
    if (has_crlf_nul(to, to_len)) return invalid(L, top, ERR_PREFIX "to must not contain CR, LF or NUL");
    if (!valid_address(to, to_len)) return invalid(L, top, ERR_PREFIX "to is not a valid email address");
    if (has_crlf_nul(subject, subject_len))
        return invalid(L, top, ERR_PREFIX "subject must not contain CR, LF or NUL");
    if (text == NULL) return invalid(L, top, ERR_PREFIX "text is required");

    struct delivery *d = calloc(1, sizeof *d);
    struct evbuffer *out = evbuffer_new();
    if (d == NULL || out == NULL) goto oom;
    memcpy(d->id, id, id_len);
    const char *request_id = host_task_request_id(L);
    if (request_id) snprintf(d->request_id, sizeof d->request_id, "%s", request_id);
    d->created = time(NULL);
    d->started = host_now();
    build_message(out, d->id, d->created, to, to_len, subject, subject_len, text, text_len, html, html_len);
    d->len = evbuffer_get_length(out);
    d->data = malloc(d->len);
    d->rcpt = malloc(to_len + 3);
    if (d->data == NULL || d->rcpt == NULL) goto oom;
    evbuffer_remove(out, d->data, d->len);
    evbuffer_free(out);
    snprintf(d->rcpt, to_len + 3, "<%.*s>", (int)to_len, to);
    lua_settop(L, top);
    if (mailer.cfg.transport == TRANSPORT_OUTBOX) return outbox_deliver(L, d);
    return smtp_deliver(L, task, d);

oom:
    if (out) evbuffer_free(out);
    if (d) delivery_free(d);
    return luaL_error(L, "host.mail: out of memory");
}

/* mail.stats() -> {sending=, sent=, failed=} for this worker. */
static int l_mail_stats(lua_State *L)
{
    struct host_mail_stats s;
    host_mail_stats(&s);
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, (lua_Number)s.sending);
    lua_setfield(L, -2, "sending");
    lua_pushnumber(L, (lua_Number)s.sent);
    lua_setfield(L, -2, "sent");
    lua_pushnumber(L, (lua_Number)s.failed);
    lua_setfield(L, -2, "failed");
    return 1;
}

static const luaL_Reg mail_functions[] = {
    {"deliver", l_mail_deliver},
    {"stats", l_mail_stats},
    {NULL, NULL},
};

int host_mail_open(lua_State *L)
{
    luaL_newlib(L, mail_functions);
    return 1;
}

static const struct host_stat mail_stat_list[] = {
    {"moonkeep_mail_sent_total", "Mails delivered (or written to the outbox folder).", 1},
    {"moonkeep_mail_failed_total", "Delivery attempts that failed (the outbox retries them up to MAIL_RETRY_MAX).",
     1},
    {"moonkeep_mail_sending", "SMTP delivery attempts in flight now.", 0},
    {NULL, NULL, 0},
};

static void mail_stat_values(int64_t *v)
{
    struct host_mail_stats s;
    host_mail_stats(&s);
    v[0] = (int64_t)s.sent;
    v[1] = (int64_t)s.failed;
    v[2] = (int64_t)s.sending;
}

const struct host_service host_mail_service = {
    "mail", host_mail_check_config, host_mail_init, host_mail_shutdown, mail_stat_values, mail_stat_list,
};
