/* pwhash_memory.h — argon2id's working memory, kept mapped per hashing
 * thread (pwhash_memory.c). */
#ifndef MOONKEEP_PWHASH_MEMORY_H
#define MOONKEEP_PWHASH_MEMORY_H

#include <stddef.h>

/* Around one crypto_pwhash* call on the calling thread. */
void host_pwhash_memory_begin(void);
void host_pwhash_memory_end(void);
/* Bytes the calling thread keeps mapped (0: none). */
size_t host_pwhash_memory_held(void);
/* Unmaps the calling thread's region (idle, or before the thread ends). */
void host_pwhash_memory_release(void);

#endif
