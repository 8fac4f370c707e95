/*
 * listener.h — listening sockets: one SO_REUSEPORT socket per worker and address.
 *
 * The master opens them before forking and keeps them open for its whole life, so that neither a
 * worker respawn nor a reload closes a socket with connections queued in its backlog (closing a
 * reuseport socket resets the connections waiting in its queue).
 */
#ifndef FA_LISTENER_H
#define FA_LISTENER_H

#include "config.h"
#include "fa.h"

/**
 * Opens a non-blocking SO_REUSEPORT socket bound to l (IPV6_V6ONLY for IPv6) and listening with
 * backlog. If *port is non-zero it replaces l's port (so that the sockets of one address share the
 * port an ephemeral bind picked); on success *port holds the bound port. Returns the fd, or -1 with
 * a message naming the address in err.
 */
int fa_listener_open(const fa_listen_t *l, int backlog, uint16_t *port, char *err, size_t errlen);

/** "127.0.0.1:8080" / "[::1]:8080" for a listen entry with its port replaced by port. */
void fa_listener_name(const fa_listen_t *l, uint16_t port, char *buf, size_t len);

#endif
