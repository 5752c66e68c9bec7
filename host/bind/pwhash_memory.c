/* pwhash_memory.c — keeps argon2id's working memory mapped between the
 * hashes of one hashing thread.
 *
 * libsodium maps the memlimit bytes (19 MiB by default) with mmap(2) at the
 * start of every hash and unmaps them at the end: ~4,900 page faults, the
 * kernel zeroing every page, and munmap's TLB shootdowns, half the time of a
 * verify, and the threads of one process contend on its memory map while
 * they fault. The executable defines mmap and munmap
 * (server/interpose_mmap.c), which interposes them for every library, and
 * asks this file first. On a thread between host_pwhash_memory_begin and
 * _end, the first anonymous private mapping requested is served from the
 * thread's kept region when the size matches, and its munmap keeps the
 * region instead of unmapping it. Every other call goes straight to the
 * system call. Without the interposer (the spec module host.so) nothing is
 * ever lent, and begin/end only mark the thread.
 *
 * What is kept is argon2's block memory: the next hash overwrites every
 * block before reading it, libsodium wipes it (or not) exactly as before,
 * and it is excluded from core dumps. A thread releases its region with
 * host_pwhash_memory_release (password.c does after HASH_MEMORY_IDLE_S
 * without work, and at exit), so an idle worker holds none.
 *
 * Owns: one region per thread (thread-local), nothing shared. */
#include "bind/pwhash_memory.h"

#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Thread_local struct {
    int hashing; /* between begin and end */
    int lent;    /* the region is libsodium's right now */
    void *base;
    size_t len;
} kept;

void *host_pwhash_system_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    /* the kernel returns the address as a long */
    return (void *)syscall(SYS_mmap, addr, len, (long)prot, (long)flags, (long)fd, (long)off); /* NOLINT(performance-no-int-to-ptr) */
}

int host_pwhash_system_munmap(void *addr, size_t len)
{
    return (int)syscall(SYS_munmap, addr, len);
}

void host_pwhash_memory_begin(void)
{
    kept.hashing = 1;
}

void host_pwhash_memory_end(void)
{
    kept.hashing = 0;
}

size_t host_pwhash_memory_held(void)
{
    return kept.base ? kept.len : 0;
}

void host_pwhash_memory_release(void)
{
    if (kept.base == NULL || kept.lent) return;
    host_pwhash_system_munmap(kept.base, kept.len);
    kept.base = NULL;
    kept.len = 0;
}

/* libsodium asks for MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE. */
static int is_argon2_request(const void *addr, int prot, int flags, int fd)
{
    const int needed = MAP_PRIVATE | MAP_ANONYMOUS, allowed = needed | MAP_POPULATE | MAP_NORESERVE;
    return kept.hashing && !kept.lent && addr == NULL && fd == -1 && prot == (PROT_READ | PROT_WRITE) &&
           (flags & needed) == needed && (flags & ~allowed) == 0;
}

void *host_pwhash_memory_map(void *addr, size_t len, int prot, int flags, int fd)
{
    if (!is_argon2_request(addr, prot, flags, fd)) return NULL;
    if (kept.base != NULL && kept.len != len) host_pwhash_memory_release(); /* other parameters */
    if (kept.base == NULL) {
        void *p = host_pwhash_system_mmap(NULL, len, prot, flags, -1, 0);
        if (p == MAP_FAILED) return p;
        (void)madvise(p, len, MADV_DONTDUMP);
        kept.base = p;
        kept.len = len;
    }
    kept.lent = 1;
    return kept.base;
}

int host_pwhash_memory_unmap(const void *addr, size_t len)
{
    if (kept.lent && addr == kept.base && len == kept.len) {
        kept.lent = 0;
        return 1;
    }
    return 0;
}
