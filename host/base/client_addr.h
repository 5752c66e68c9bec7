/* client_addr.h — who sent a request: the socket peer, or, when the peer is
 * a proxy the operator trusts (TRUSTED_PROXIES), the client the proxies
 * name in X-Forwarded-For. Keys the per-client hashing budget and the
 * access line's "client". */
#ifndef MOONKEEP_CLIENT_ADDR_H
#define MOONKEEP_CLIENT_ADDR_H

#include <stddef.h>

struct evkeyvalq;

#define HOST_TRUSTED_PROXIES_MAX 64
/* Room for any address host_client_addr writes (INET6_ADDRSTRLEN). */
#define HOST_CLIENT_ADDR_LEN 46

struct cidr_block {
    int family;              /* AF_INET or AF_INET6 */
    unsigned char addr[16];  /* network byte order; 4 bytes used for AF_INET */
    int bits;                /* prefix length */
};

struct trusted_proxies {
    int n;
    struct cidr_block blocks[HOST_TRUSTED_PROXIES_MAX];
};

/* Parses a list of CIDR blocks or bare addresses, separated by commas or
 * blanks ("10.0.0.0/8, 192.168.1.7, fd00::/8"); "" is the empty list.
 * Returns 0, or -1 with what is wrong in err. */
int host_trusted_proxies_parse(const char *list, struct trusted_proxies *out, char *err, size_t errlen);

/* The client's address, written into buf (HOST_CLIENT_ADDR_LEN bytes):
 * `peer` itself unless it is a trusted proxy; then, walking the request's
 * X-Forwarded-For headers right to left (the last header first), the first
 * address that is not a trusted proxy, or the left-most one when all are.
 * An entry that is not an address ends the walk at the last trusted hop.
 * The headers are not looked at unless the peer is trusted. Returns buf. */
const char *host_client_addr(const struct trusted_proxies *trusted, const char *peer,
                             const struct evkeyvalq *headers, char *buf);

#endif
