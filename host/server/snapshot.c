/* snapshot.c — copies SCRIPTS_DIR into RUNTIME_DIR/gen-N, checks the copy,
 * publishes it (RUNTIME_DIR/current) and records the outcome
 * (RUNTIME_DIR/status.json). The master owns the runtime folder; workers
 * only read `current` and `status.json`. Every buffer allocated here is
 * freed before the function that made it returns. */
#include "server/snapshot.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "base/json.h"
#include "base/log.h"
#include "lua/info.h"
#include "lua/vm.h"

/* Snapshots kept besides the current one, for modules a handler requires
 * lazily from an older generation still finishing its requests. */
#define KEEP_PREVIOUS 2

static char runtime_dir[PATH_MAX / 2]; /* room left for what goes inside */
static int runtime_dir_is_ours;
static unsigned long last_id;
static char active_digest[65];
static char active_published_at[32];
static char status_path[PATH_MAX + 16];

/* Writes "a/b" into out; -1 when it does not fit. */
static int join_path(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* ---- the file list ------------------------------------------------------ */

struct file_list {
    char **paths; /* relative to the scripts folder; owned */
    size_t count, cap;
    size_t root_len;
};

static struct file_list *walk_target; /* nftw has no user pointer */

static int collect_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type != FTW_F) return 0;
    struct file_list *list = walk_target;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 64;
        char **grown = realloc(list->paths, cap * sizeof *grown);
        if (grown == NULL) return -1;
        list->paths = grown;
        list->cap = cap;
    }
    const char *rel = path + list->root_len;
    while (*rel == '/') rel++;
    if ((list->paths[list->count] = strdup(rel)) == NULL) return -1;
    list->count++;
    return 0;
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(struct file_list *list)
{
    for (size_t i = 0; i < list->count; i++) free(list->paths[i]);
    free(list->paths);
}

static int collect(const char *root, struct file_list *list)
{
    memset(list, 0, sizeof *list);
    list->root_len = strlen(root);
    walk_target = list;
    int rc = nftw(root, collect_cb, 16, FTW_PHYS);
    walk_target = NULL;
    if (rc != 0) return -1;
    if (list->count > 1) qsort(list->paths, list->count, sizeof *list->paths, compare_paths);
    return 0;
}

/* ---- copying ------------------------------------------------------------ */

static int make_parents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST) return -1;
    }
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL) return NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) return -1;
    int ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : -1;
}

/* Copies the tree and computes its digest from the copied bytes, so the
 * digest always describes exactly what was copied. */
static int copy_tree(const char *from, const char *to, char digest[65], char *err, size_t errlen)
{
    struct file_list list;
    crypto_hash_sha256_state state;
    unsigned char hash[crypto_hash_sha256_BYTES];
    int rc = -1;

    if (collect(from, &list) != 0) {
        snprintf(err, errlen, "%s: cannot list the scripts: %s", from, strerror(errno));
        free_list(&list);
        return -1;
    }
    crypto_hash_sha256_init(&state);
    for (size_t i = 0; i < list.count; i++) {
        char src[PATH_MAX], dst[PATH_MAX];
        size_t len = 0;
        if (join_path(src, sizeof src, from, list.paths[i]) || join_path(dst, sizeof dst, to, list.paths[i])) {
            snprintf(err, errlen, "%.200s: path too long", list.paths[i]);
            goto done;
        }
        char *data = slurp(src, &len);
        if (data == NULL) {
            snprintf(err, errlen, "%.1000s: cannot read: %s", src, strerror(errno));
            goto done;
        }
        crypto_hash_sha256_update(&state, (const unsigned char *)list.paths[i], strlen(list.paths[i]) + 1);
        crypto_hash_sha256_update(&state, (const unsigned char *)data, len);
        int wrote = make_parents(dst) == 0 && write_file(dst, data, len) == 0;
        free(data);
        if (!wrote) {
            snprintf(err, errlen, "%.1000s: cannot copy: %s", dst, strerror(errno));
            goto done;
        }
    }
    crypto_hash_sha256_final(&state, hash);
    sodium_bin2hex(digest, 65, hash, sizeof hash);
    rc = 0;
done:
    free_list(&list);
    return rc;
}

static int remove_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *path)
{
    nftw(path, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- publishing --------------------------------------------------------- */

static int write_atomically(const char *path, const char *data, size_t len)
{
    char tmp[PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -1;
    if (write_file(tmp, data, len) != 0) return -1;
    return rename(tmp, path);
}

static void now_rfc3339(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Rewrites the status file; `refused_error` NULL keeps the last refusal. */
static void write_status(const char *refused_digest, const char *refused_error)
{
    static char *last_refused_json; /* owned; the refusal part of the file */
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL) return;
    if (refused_error) {
        char at[32];
        now_rfc3339(at);
        evbuffer_add_printf(buf, "{\"at\":\"%s\",\"digest\":\"%s\",\"error\":", at, refused_digest);
        host_json_string(buf, refused_error, strlen(refused_error));
        evbuffer_add(buf, "}", 1);
        size_t len = evbuffer_get_length(buf);
        char *json = malloc(len + 1);
        if (json) {
            evbuffer_remove(buf, json, len);
            json[len] = '\0';
            free(last_refused_json);
            last_refused_json = json;
        }
        evbuffer_drain(buf, evbuffer_get_length(buf));
    }
    evbuffer_add_printf(buf,
        "{\"active\":{\"id\":%lu,\"digest\":\"%s\",\"published_at\":\"%s\"},\"last_refused\":%s}\n",
        last_id, active_digest, active_published_at, last_refused_json ? last_refused_json : "null");
    size_t len = evbuffer_get_length(buf);
    write_atomically(status_path, (const char *)evbuffer_pullup(buf, -1), len);
    evbuffer_free(buf);
}

/* Replaces the staging folder's name by SCRIPTS_DIR in an error message,
 * so that file:line points at the file the author edits. */
static void map_paths(char *err, size_t errlen, const char *staging, const char *scripts_dir)
{
    char out[2048];
    size_t n = 0, slen = strlen(staging);
    for (const char *p = err; *p && n + 1 < sizeof out;) {
        if (strncmp(p, staging, slen) == 0) {
            n += (size_t)snprintf(out + n, sizeof out - n, "%s", scripts_dir);
            if (n >= sizeof out) n = sizeof out - 1;
            p += slen;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    snprintf(err, errlen, "%s", out);
}

static int publish(const char *staging, const char *digest)
{
    char final[PATH_MAX], line[PATH_MAX + 128], current[PATH_MAX + 16];
    unsigned long id = last_id + 1;
    if (snprintf(final, sizeof final, "%s/gen-%lu", runtime_dir, id) >= (int)sizeof final) return -1;
    if (rename(staging, final) != 0) return -1;
    int n = snprintf(line, sizeof line, "%lu %s %s\n", id, digest, final);
    snprintf(current, sizeof current, "%s/current", runtime_dir);
    if (write_atomically(current, line, (size_t)n) != 0) return -1;
    last_id = id;
    snprintf(active_digest, sizeof active_digest, "%s", digest);
    now_rfc3339(active_published_at);
    if (id > KEEP_PREVIOUS + 1) {
        char old[PATH_MAX];
        if (snprintf(old, sizeof old, "%s/gen-%lu", runtime_dir, id - KEEP_PREVIOUS - 1) < (int)sizeof old)
            remove_tree(old);
    }
    return 0;
}

int host_snapshot_refresh(const struct config *cfg)
{
    char staging[PATH_MAX], digest[65], err[2048] = "";
    if (join_path(staging, sizeof staging, runtime_dir, "staging") != 0) return -1;
    remove_tree(staging);
    if (mkdir(staging, 0755) != 0 || copy_tree(cfg->scripts_dir, staging, digest, err, sizeof err) != 0) {
        struct log_line *line = host_log_begin(LOG_ERROR, "cannot snapshot the scripts");
        host_log_str(line, "error", err[0] ? err : strerror(errno));
        host_log_end(line);
        remove_tree(staging);
        return -1;
    }
    if (strcmp(digest, active_digest) == 0) {
        remove_tree(staging);
        return 0;
    }
    struct generation *gen = host_generation_load(staging, last_id + 1, digest, err, sizeof err);
    if (gen == NULL) {
        map_paths(err, sizeof err, staging, cfg->scripts_dir);
        struct log_line *line = host_log_begin(LOG_ERROR, "script change refused; the active generation keeps serving");
        host_log_str(line, "error", err);
        host_log_str(line, "digest", digest);
        host_log_int(line, "active_generation", (int64_t)last_id);
        host_log_end(line);
        write_status(digest, err);
        remove_tree(staging);
        return -1;
    }
    host_generation_unref(gen);
    if (publish(staging, digest) != 0) {
        struct log_line *line = host_log_begin(LOG_ERROR, "cannot publish the script snapshot");
        host_log_str(line, "error", strerror(errno));
        host_log_end(line);
        remove_tree(staging);
        return -1;
    }
    write_status(NULL, NULL);
    struct log_line *line = host_log_begin(LOG_INFO, "script generation published");
    host_log_int(line, "generation", (int64_t)last_id);
    host_log_str(line, "digest", digest);
    host_log_end(line);
    return 1;
}

int host_snapshot_init(const struct config *cfg)
{
    const char *dir = config_env_str("RUNTIME_DIR", NULL);
    if (dir) {
        if (snprintf(runtime_dir, sizeof runtime_dir, "%s", dir) >= (int)sizeof runtime_dir) {
            host_log(LOG_ERROR, "RUNTIME_DIR is too long");
            return -1;
        }
        if (mkdir(runtime_dir, 0700) != 0 && errno != EEXIST) {
            struct log_line *line = host_log_begin(LOG_ERROR, "cannot create RUNTIME_DIR");
            host_log_str(line, "error", strerror(errno));
            host_log_end(line);
            return -1;
        }
    } else {
        snprintf(runtime_dir, sizeof runtime_dir, "/tmp/moonkeep-%ld-XXXXXX", (long)getpid());
        if (mkdtemp(runtime_dir) == NULL) {
            host_log(LOG_ERROR, "cannot create a runtime folder under /tmp");
            return -1;
        }
        runtime_dir_is_ours = 1;
    }
    snprintf(status_path, sizeof status_path, "%s/status.json", runtime_dir);
    host_info_set_scripts_status(status_path);
    return host_snapshot_refresh(cfg) == 1 ? 0 : -1;
}

int host_snapshot_current(struct snapshot *out)
{
    char current[PATH_MAX + 16], line[PATH_MAX + 128];
    snprintf(current, sizeof current, "%s/current", runtime_dir);
    FILE *f = fopen(current, "r");
    if (f == NULL) return -1;
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    if (got == NULL) return -1;
    line[strcspn(line, "\n")] = '\0';
    char *digest = strchr(line, ' ');
    char *path = digest ? strchr(digest + 1, ' ') : NULL;
    if (path == NULL) return -1;
    *digest++ = '\0';
    *path++ = '\0';
    out->id = strtoul(line, NULL, 10);
    snprintf(out->digest, sizeof out->digest, "%s", digest);
    snprintf(out->path, sizeof out->path, "%s", path);
    return 0;
}

void host_snapshot_cleanup(void)
{
    if (runtime_dir_is_ours && runtime_dir[0]) remove_tree(runtime_dir);
}
