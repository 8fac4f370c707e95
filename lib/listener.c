/*
 * listener.c — see listener.h.
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void fa_listener_name(const fa_listen_t *l, uint16_t port, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (l->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&l->addr;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, port);
    } else {
        const struct sockaddr_in *a = (const void *)&l->addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, port);
    }
}

int fa_listener_open(const fa_listen_t *l, int backlog, uint16_t *port, char *err, size_t errlen)
{
    struct sockaddr_storage addr = l->addr;
    in_port_t *pp = addr.ss_family == AF_INET6 ? &((struct sockaddr_in6 *)&addr)->sin6_port
                                               : &((struct sockaddr_in *)&addr)->sin_port;
    if (*port)
        *pp = htons(*port);
    char name[80];
    fa_listener_name(l, ntohs(*pp), name, sizeof(name));

    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket for %s: %s", name, strerror(errno));
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        (addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)) {
        snprintf(err, errlen, "setsockopt on %s: %s", name, strerror(errno));
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)&addr, l->addrlen) < 0) {
        snprintf(err, errlen, "bind to %s: %s", name, strerror(errno));
        goto fail;
    }
    if (listen(fd, backlog) < 0) {
        snprintf(err, errlen, "listen on %s: %s", name, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    return fd;
fail:
    close(fd);
    return -1;
}
