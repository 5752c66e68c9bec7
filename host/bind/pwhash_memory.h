/* pwhash_memory.h — argon2id's working memory, kept mapped per hashing
 * thread (pwhash_memory.c). */
#ifndef MOONKEEP_PWHASH_MEMORY_H
#define MOONKEEP_PWHASH_MEMORY_H

#include <stddef.h>
#include <sys/types.h>

/* Around one crypto_pwhash* call on the calling thread. */
void host_pwhash_memory_begin(void);
void host_pwhash_memory_end(void);
/* Bytes the calling thread keeps mapped (0: none). */
size_t host_pwhash_memory_held(void);
/* Unmaps the calling thread's region (idle, or before the thread ends). */
void host_pwhash_memory_release(void);

/* ---- for the mmap/munmap interposer (server/interpose_mmap.c) ----------- */

/* An mmap(2) call: when it is libsodium's request for argon2's memory on a
 * thread inside a hash, returns the thread's kept region (mapped first when
 * there is none of that size; MAP_FAILED when that fails), now lent out.
 * NULL for any other call: the caller maps it itself. */
void *host_pwhash_memory_map(void *addr, size_t len, int prot, int flags, int fd);
/* A munmap(2) call: 1 when [addr, len) is the lent region, which is kept
 * (not unmapped); 0 for any other call. */
int host_pwhash_memory_unmap(const void *addr, size_t len);
/* The system calls themselves, for code that must not go through the
 * interposer (it is mmap and munmap). */
void *host_pwhash_system_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int host_pwhash_system_munmap(void *addr, size_t len);

#endif
