/* interpose_mmap.c — mmap and munmap, defined in the executable so that
 * they take the place of libc's for every library, libsodium included: a
 * call for argon2's memory on a hashing thread is served from the memory
 * the thread keeps (bind/pwhash_memory.c, which says why); every other
 * call goes straight to the system call. Linked into the server only, never
 * into the spec module host.so, whose busted process keeps libc's. Holds
 * no state. */
#include <sys/mman.h>

#include "bind/pwhash_memory.h"

/* The names differ from <sys/mman.h>'s reserved ones (__addr...). */
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) /* NOLINT(readability-inconsistent-declaration-parameter-name) */
{
    void *kept = host_pwhash_memory_map(addr, len, prot, flags, fd);
    return kept ? kept : host_pwhash_system_mmap(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len) /* NOLINT(readability-inconsistent-declaration-parameter-name) */
{
    return host_pwhash_memory_unmap(addr, len) ? 0 : host_pwhash_system_munmap(addr, len);
}
