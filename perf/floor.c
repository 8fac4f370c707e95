/*
 * floor.c — the least an HTTP/1.1 server can do on this kernel, as an anchor for perf/load.sh.
 *
 *   floor PORT [WORKERS]      (WORKERS defaults to the number of online CPUs)
 *
 * The parent forks WORKERS processes; each opens its own SO_REUSEPORT listener on
 * 127.0.0.1:PORT and runs one edge-triggered epoll loop. A worker reads everything a
 * connection has, and for every complete request in its buffer (headers up to "\r\n\r\n" plus
 * Content-Length body bytes — Content-Length is the only header looked at) owes the client one
 * fixed "200, Content-Length: 0" response. Everything owed for one read batch goes out in one
 * write(2), so pipelined requests are answered in one syscall. Connections are keep-alive
 * until the client closes them.
 *
 * No routing, no parsing beyond the above, no allocation after accept: whatever fasterapid
 * spends above this floor is the price of actually doing the work. It is a benchmark tool, not
 * a server: a request larger than the connection buffer closes the connection.
 *
 * SIGTERM or SIGINT to the parent stops the workers and exits; workers also die with the
 * parent (PR_SET_PDEATHSIG), so a killed load script never leaves them behind.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 256
#define CONN_BUF 16384      /* one connection's unparsed input */
#define OWED_LIMIT (1 << 20) /* stop reading while this many response bytes are unsent */

static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
#define RESP_LEN (sizeof(RESP) - 1)
#define RESP_BLOCK_COUNT 1024

/* RESP repeated RESP_BLOCK_COUNT times: what any number of owed responses is written from. */
static char resp_block[RESP_LEN * RESP_BLOCK_COUNT];

typedef struct {
    int fd;
    size_t len;  /* bytes of input held in buf */
    size_t owed; /* response bytes not yet written; always ends on a response boundary */
    char buf[CONN_BUF];
} conn_t;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/*
 * Returns the length of the complete request at the start of p[0..len), or 0 if it is not all
 * there yet, or -1 if it can never fit in CONN_BUF or its Content-Length is malformed.
 */
static long request_length(const char *p, size_t len)
{
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    if (!end)
        return len >= CONN_BUF ? -1 : 0;
    size_t head = (size_t)(end - p) + 4;
    size_t body = 0;
    /* Look at each header line for Content-Length; the request line never matches. */
    for (const char *line = memchr(p, '\n', head); line && line + 1 < end;
         line = memchr(line + 1, '\n', (size_t)(end - line - 1))) {
        const char *h = line + 1;
        if ((size_t)(end - h) > 15 && strncasecmp(h, "content-length:", 15) == 0) {
            const char *v = h + 15;
            while (*v == ' ' || *v == '\t')
                v++;
            if (*v < '0' || *v > '9')
                return -1;
            for (; *v >= '0' && *v <= '9'; v++) {
                body = body * 10 + (size_t)(*v - '0');
                if (body > CONN_BUF)
                    return -1;
            }
        }
    }
    if (head + body > CONN_BUF)
        return -1;
    return head + body <= len ? (long)(head + body) : 0;
}

/*
 * Writes as much of what c owes as the socket takes. Returns 0 when all is written or the
 * socket is full (EPOLLOUT will call again), -1 when the connection is dead.
 */
static int flush_owed(conn_t *c)
{
    while (c->owed > 0) {
        /* owed ends on a response boundary, so its first byte is this far into a response. */
        size_t start = (RESP_LEN - c->owed % RESP_LEN) % RESP_LEN;
        size_t n = sizeof(resp_block) - start;
        if (n > c->owed)
            n = c->owed;
        ssize_t w = write(c->fd, resp_block + start, n);
        if (w < 0)
            return errno == EAGAIN ? 0 : (errno == EINTR ? 0 : -1);
        c->owed -= (size_t)w;
    }
    return 0;
}

/*
 * Runs on EPOLLIN (and after a flush freed room): reads until EAGAIN, counting complete requests
 * as they arrive, then writes every owed response in one go. Returns -1 to close.
 */
static int on_readable(conn_t *c)
{
    for (;;) {
        if (c->owed >= OWED_LIMIT)
            break; /* a client that does not read: wait for EPOLLOUT to drain first */
        ssize_t n = read(c->fd, c->buf + c->len, CONN_BUF - c->len);
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        c->len += (size_t)n;
        size_t used = 0;
        long r;
        while ((r = request_length(c->buf + used, c->len - used)) > 0) {
            used += (size_t)r;
            c->owed += RESP_LEN;
        }
        if (r < 0)
            return -1;
        if (used > 0) {
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
        }
    }
    return flush_owed(c);
}

static int open_listener(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        die("setsockopt");
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("bind 127.0.0.1");
    if (listen(fd, 4096) < 0)
        die("listen");
    return fd;
}

/*
 * One worker: its own listener, its own epoll set, forever. The listener is level-triggered and
 * accepts in a loop; connections are edge-triggered for both directions, registered once.
 */
static void worker_run(int port)
{
    int lfd = open_listener(port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll_ctl listener");

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (!c) { /* the listener */
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int one = 1;
                    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    /* calloc: the buffer's pages are only touched once data arrives. */
                    conn_t *nc = calloc(1, sizeof(*nc));
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                              .data.ptr = nc};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) {
                        close(fd);
                        free(nc);
                    }
                }
                continue;
            }
            int rc = 0;
            if (events[i].events & (EPOLLERR | EPOLLHUP))
                rc = -1;
            if (rc == 0 && (events[i].events & EPOLLOUT)) {
                size_t was = c->owed;
                rc = flush_owed(c);
                /* Reading may have stopped at OWED_LIMIT; with edge triggering, resume it now. */
                if (rc == 0 && was >= OWED_LIMIT && c->owed < OWED_LIMIT)
                    rc = on_readable(c);
            }
            if (rc == 0 && (events[i].events & (EPOLLIN | EPOLLRDHUP)))
                rc = on_readable(c);
            if (rc < 0) {
                close(c->fd); /* also removes it from the epoll set */
                free(c);
            }
        }
    }
}

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PORT [WORKERS]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    long workers = argc == 3 ? atol(argv[2]) : sysconf(_SC_NPROCESSORS_ONLN);
    if (port <= 0 || port > 65535 || workers < 1 || workers > MAX_WORKERS) {
        fprintf(stderr, "floor: bad PORT or WORKERS\n");
        return 2;
    }
    for (size_t i = 0; i < RESP_BLOCK_COUNT; i++)
        memcpy(resp_block + i * RESP_LEN, RESP, RESP_LEN);
    signal(SIGPIPE, SIG_IGN);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    pid_t pids[MAX_WORKERS];
    for (long i = 0; i < workers; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            die("fork");
        if (pids[i] == 0) {
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() == 1) /* the parent died before prctl */
                _exit(1);
            worker_run(port);
        }
    }
    fprintf(stderr, "floor: %ld workers on 127.0.0.1:%d\n", workers, port);

    /* Wait for a stop signal or for a worker to die (a bind error, say), then stop them all. */
    int status = 0;
    while (!stopping) {
        pid_t p = wait(&status);
        if (p > 0) {
            fprintf(stderr, "floor: worker %d exited\n", (int)p);
            break;
        }
    }
    for (long i = 0; i < workers; i++)
        kill(pids[i], SIGTERM);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    return stopping ? 0 : 1;
}
