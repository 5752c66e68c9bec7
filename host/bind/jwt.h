/* jwt.h — host.jwt: HS256 JSON Web Tokens signed and verified with the key
 * in JWT_SECRET (libjwt 1.10.2 underneath, with the checks it lacks:
 * algorithm pinning, exp/nbf/iat/iss/typ, size and shape limits). */
#ifndef MOONKEEP_JWT_H
#define MOONKEEP_JWT_H

#include <stddef.h>
#include <lua.h>

#include "base/service.h"

/* Minimum length of JWT_SECRET, in bytes (the HS256 output size). */
#define HOST_JWT_MIN_KEY_BYTES 32

/* The service record (base/service.h): check_config only. */
extern const struct host_service host_jwt_service;

/* For the master, before it forks: is JWT_SECRET usable? Returns 0, or -1
 * with a message (no secret material in it) written to err. */
int host_jwt_check_config(char *err, size_t errlen);

/* Pushes the host.jwt module table, reading JWT_SECRET and JWT_ISSUER now
 * (so each VM, and each reopen, sees the environment of that moment).
 * Raises when lua-cjson cannot be loaded. Stack: +1. */
int host_jwt_open(lua_State *L);

#endif
