/* bare_evhttp.c — the floor `make bench` compares moonkeep's trivial routes
 * with: libevent's evhttp answering every request with a fixed JSON body, no
 * Lua, no logging, from N forked processes.
 *
 *   bare_evhttp PORT NPROC [shared|reuseport]
 *
 * shared (the default) is moonkeep's model: the parent binds one listening
 * socket (backlog 1024) and every child accepts on it
 * (evhttp_accept_socket_with_handle), one accept queue. reuseport gives each
 * child its own SO_REUSEPORT socket, so the kernel spreads connections.
 * The parent waits for its children; SIGTERM to the parent stops them all. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

static const char body[] = "{\"status\":\"ok\"}"; /* 15 bytes: moonkeep's /healthz body */
static pid_t kids[256];
static int nkids;

static int listener(int port, int reuseport)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(fd, SOL_SOCKET, reuseport ? SO_REUSEPORT : SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0) {
        perror("bare_evhttp: listen");
        exit(1);
    }
    return fd;
}

static void reply_cb(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = arg;
    evbuffer_add_reference(out, body, sizeof body - 1, NULL, NULL);
    evhttp_send_reply(req, 200, "OK", out);
}

static int serve(int fd)
{
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    struct evbuffer *out = evbuffer_new();
    evhttp_set_default_content_type(http, "application/json; charset=utf-8");
    evhttp_set_timeout(http, 75); /* moonkeep's keep-alive default */
    evhttp_set_gencb(http, reply_cb, out);
    if (!evhttp_accept_socket_with_handle(http, fd)) return 1;
    return event_base_dispatch(base) == 0 ? 0 : 1;
}

static void stop_cb(int sig)
{
    for (int i = 0; i < nkids; i++) kill(kids[i], sig);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bare_evhttp PORT NPROC [shared|reuseport]\n");
        return 2;
    }
    int port = atoi(argv[1]), n = atoi(argv[2]);
    int reuseport = argc > 3 && strcmp(argv[3], "reuseport") == 0;
    int fd = reuseport ? -1 : listener(port, 0);
    if (n < 1 || n > 256) n = 1;
    signal(SIGPIPE, SIG_IGN);
    for (nkids = 0; nkids < n; nkids++) {
        pid_t pid = fork();
        if (pid == 0) return serve(reuseport ? listener(port, 1) : fd);
        kids[nkids] = pid;
    }
    signal(SIGTERM, stop_cb);
    signal(SIGINT, stop_cb);
    while (wait(NULL) > 0 || errno == EINTR) {}
    return 0;
}
