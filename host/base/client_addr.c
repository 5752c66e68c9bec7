/* client_addr.c — the client address of a request (see client_addr.h):
 * parsing TRUSTED_PROXIES and walking X-Forwarded-For from the right, as a
 * chain of proxies appends to it, so that a client cannot name itself by
 * sending the header (only what trusted hops wrote is believed). */
#include "base/client_addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/keyvalq_struct.h>

/* An address (IPv4, IPv6, an IPv4-mapped IPv6 taken as IPv4), optionally
 * in brackets, of `len` bytes at s. Returns 1 and fills family/addr, or 0. */
static int parse_addr(const char *s, size_t len, int *family, unsigned char addr[16])
{
    char text[HOST_CLIENT_ADDR_LEN];
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') s++, len -= 2;
    if (len == 0 || len >= sizeof text) return 0;
    memcpy(text, s, len);
    text[len] = '\0';
    if (inet_pton(AF_INET, text, addr) == 1) {
        *family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, text, addr) != 1) return 0;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr, mapped, sizeof mapped) == 0) {
        memmove(addr, addr + 12, 4);
        *family = AF_INET;
    } else {
        *family = AF_INET6;
    }
    return 1;
}

static int in_block(const struct cidr_block *b, int family, const unsigned char addr[16])
{
    if (b->family != family) return 0;
    int full = b->bits / 8, rest = b->bits % 8;
    if (memcmp(b->addr, addr, (size_t)full) != 0) return 0;
    if (rest == 0) return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (b->addr[full] & mask) == (addr[full] & mask);
}

static int is_trusted(const struct trusted_proxies *t, int family, const unsigned char addr[16])
{
    for (int i = 0; i < t->n; i++)
        if (in_block(&t->blocks[i], family, addr)) return 1;
    return 0;
}

int host_trusted_proxies_parse(const char *list, struct trusted_proxies *out, char *err, size_t errlen)
{
    static const char separators[] = ", \t";
    memset(out, 0, sizeof *out);
    for (const char *p = list ? list : ""; *p;) {
        p += strspn(p, separators);
        size_t len = strcspn(p, separators);
        if (len == 0) break;
        if (out->n == HOST_TRUSTED_PROXIES_MAX) {
            snprintf(err, errlen, "more than %d blocks", HOST_TRUSTED_PROXIES_MAX);
            return -1;
        }
        struct cidr_block *b = &out->blocks[out->n];
        const char *slash = memchr(p, '/', len);
        size_t addr_len = slash ? (size_t)(slash - p) : len;
        if (!parse_addr(p, addr_len, &b->family, b->addr)) {
            snprintf(err, errlen, "\"%.*s\" is not an address or CIDR block", (int)len, p);
            return -1;
        }
        int max = b->family == AF_INET ? 32 : 128;
        b->bits = max;
        if (slash) {
            char *end;
            long bits = strtol(slash + 1, &end, 10);
            if (end != p + len || end == slash + 1 || bits < 0 || bits > max) {
                snprintf(err, errlen, "\"%.*s\" has a bad prefix length", (int)len, p);
                return -1;
            }
            b->bits = (int)bits;
        }
        out->n++;
        p += len;
    }
    return 0;
}

/* Writes the address in its usual text form into buf. */
static void format_addr(int family, const unsigned char addr[16], char *buf)
{
    if (inet_ntop(family, addr, buf, HOST_CLIENT_ADDR_LEN) == NULL) buf[0] = '\0';
}

const char *host_client_addr(const struct trusted_proxies *trusted, const char *peer,
                             const struct evkeyvalq *headers, char *buf)
{
    enum { MAX_FORWARDED = 8 };
    int family;
    unsigned char addr[16];
    /* no proxy trusted (the default): the peer as evhttp gives it */
    if (trusted->n == 0 || peer == NULL || !parse_addr(peer, strlen(peer), &family, addr)) {
        snprintf(buf, HOST_CLIENT_ADDR_LEN, "%s", peer ? peer : "");
        return buf;
    }
    format_addr(family, addr, buf);
    if (!is_trusted(trusted, family, addr)) return buf;
    const char *forwarded[MAX_FORWARDED]; /* the last MAX_FORWARDED headers */
    int n = 0;
    for (const struct evkeyval *h = headers->tqh_first; h; h = h->next.tqe_next)
        if (!strcasecmp(h->key, "X-Forwarded-For")) {
            if (n == MAX_FORWARDED) memmove(forwarded, forwarded + 1, sizeof forwarded[0] * --n);
            forwarded[n++] = h->value;
        }
    /* buf holds the last trusted hop; each entry to the left replaces it */
    for (int h = n - 1; h >= 0; h--) {
        const char *value = forwarded[h];
        for (size_t end = strlen(value); end > 0;) {
            size_t start = end;
            while (start > 0 && value[start - 1] != ',') start--;
            size_t from = start, to = end;
            while (from < to && (value[from] == ' ' || value[from] == '\t')) from++;
            while (to > from && (value[to - 1] == ' ' || value[to - 1] == '\t')) to--;
            end = start > 0 ? start - 1 : 0;
            if (from == to) continue;
            if (!parse_addr(value + from, to - from, &family, addr)) return buf;
            format_addr(family, addr, buf);
            if (!is_trusted(trusted, family, addr)) return buf;
        }
    }
    return buf;
}
