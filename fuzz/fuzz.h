/* fuzz.h — what the libFuzzer harnesses share (see fuzz/README.md). */
#ifndef MOONKEEP_FUZZ_H
#define MOONKEEP_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#include <lua.h>

/* A LuaJIT VM like a worker's: the standard libraries, the repository's
 * scripts/ on package.path, and the host.* modules preloaded. The caller
 * owns it (harnesses keep one for the whole run). Aborts when out of
 * memory. */
lua_State *fuzz_vm(void);

/* A failed invariant: libFuzzer records the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                              \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "invariant failed at %s:%d: %s: ", __FILE__,   \
                    __LINE__, #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            abort();                                                       \
        }                                                                  \
    } while (0)

#endif
