/* crypto.h — host.crypto: random tokens, SHA-256, HMAC-SHA-256,
 * constant-time compare and strict base64url, all from libsodium. */
#ifndef MOONKEEP_CRYPTO_H
#define MOONKEEP_CRYPTO_H

#include <stddef.h>
#include <lua.h>

/* Decodes unpadded base64url (RFC 4648 §5) strictly: only A-Z a-z 0-9 - _,
 * no padding, no whitespace, canonical trailing bits. Writes at most `cap`
 * bytes to `out` and the decoded length to *outlen. Returns 0 or -1.
 * Shared with jwt.c, which decodes token segments with it. */
int host_crypto_b64url_decode(const char *in, size_t inlen,
                              unsigned char *out, size_t cap, size_t *outlen);

/* Pushes the host.crypto module table. Stack: +1. */
int host_crypto_open(lua_State *L);

#endif
