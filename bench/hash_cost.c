/* hash_cost.c — the crypto floor of a login for `make bench`: the time of
 * one argon2id verify with moonkeep's parameters (ARGON2_OPSLIMIT,
 * ARGON2_MEMLIMIT_KIB, defaults 2 and 19456 KiB, p=1: host/bind/password.c),
 * and how many verifies per second THREADS threads sustain together.
 *
 *   hash_cost [THREADS [SECONDS]]   prints one JSON object on stdout
 *
 * Linked with host/bind/pwhash_memory.c and host/server/interpose_mmap.c, so
 * it hashes the way moonkeep's hashing threads do, with argon2id's memory
 * kept mapped between hashes: that is
 * the floor (verify_ms, parallel_verifies_per_s). The *_fresh_mapping
 * figures are libsodium on its own (a new mapping per hash), for the record.
 * THREADS (2) verify together for SECONDS (2), each way. Also measures
 * libsodium's INTERACTIVE preset (t=2, 64 MiB) for orientation. Times are
 * medians of a few runs on one thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "../host/bind/pwhash_memory.h"

#define RUNS 7

static const char pw[] = "correct horse battery staple";
static char stored[crypto_pwhash_STRBYTES];
static int keep_memory; /* hash as moonkeep does (pwhash_memory.c) */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long env_long(const char *name, long fallback)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : fallback;
}

/* Median milliseconds of one verify against a hash made with (ops, mem). */
static int verify(const char *h)
{
    if (keep_memory) host_pwhash_memory_begin();
    int rc = crypto_pwhash_str_verify(h, pw, strlen(pw));
    if (keep_memory) host_pwhash_memory_end();
    return rc;
}

static double verify_ms(unsigned long long ops, size_t mem, int runs)
{
    char h[crypto_pwhash_STRBYTES];
    double t[RUNS];
    if (crypto_pwhash_str_alg(h, pw, strlen(pw), ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0) return -1;
    if (verify(h) != 0) return -1; /* a first one maps the kept memory */
    for (int i = 0; i < runs; i++) {
        double t0 = now();
        if (verify(h) != 0) return -1;
        t[i] = (now() - t0) * 1000.0;
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp);
    host_pwhash_memory_release();
    return t[runs / 2];
}

static double deadline;
static void *verifier(void *arg)
{
    long *count = arg;
    while (now() < deadline)
        if (verify(stored) == 0) (*count)++;
    host_pwhash_memory_release();
    return NULL;
}

/* Verifies per second of THREADS threads verifying together. */
static double parallel_per_s(int threads, double seconds)
{
    pthread_t tid[64];
    long counts[64] = {0};
    double t0 = now();
    deadline = t0 + seconds;
    for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, verifier, &counts[i]);
    long total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        total += counts[i];
    }
    return (double)total / (now() - t0);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    if (threads < 1 || threads > 64) threads = 2;
    if (seconds <= 0 || seconds > 60) seconds = 2.0;
    if (sodium_init() < 0) return 1;
    unsigned long long ops = (unsigned long long)env_long("ARGON2_OPSLIMIT", 2);
    size_t mem = (size_t)env_long("ARGON2_MEMLIMIT_KIB", 19456) * 1024;

    if (crypto_pwhash_str_alg(stored, pw, strlen(pw), ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0) return 1;
    keep_memory = 0;
    double fresh_ms = verify_ms(ops, mem, RUNS);
    double interactive_ms = verify_ms(crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE, 3);
    double fresh_per_s = parallel_per_s(threads, seconds);
    keep_memory = 1;
    double ms = verify_ms(ops, mem, RUNS);
    double per_s = parallel_per_s(threads, seconds);

    printf("{\"opslimit\":%llu,\"memlimit_kib\":%zu,\"verify_ms\":%.3f,\"verify_ms_fresh_mapping\":%.3f,"
           "\"interactive_verify_ms\":%.3f,\"threads\":%d,\"parallel_verifies_per_s\":%.1f,"
           "\"parallel_verifies_per_s_fresh_mapping\":%.1f}\n",
           ops, mem / 1024, ms, fresh_ms, interactive_ms, threads, per_s, fresh_per_s);
    return 0;
}
