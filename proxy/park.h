/* Parked client connections.
 *
 * An idle keep-alive client costs about 2 KiB while it waits: its struct
 * conn (which embeds the request and the upstream exchange), a bufferevent
 * with two evbuffers, and a timer. A plain-TCP client that has had its
 * answer and stays silent for PARK_DELAY_MS is reduced to a struct park of
 * about 220 bytes instead: its socket, one read event, and what the logs
 * and metrics need (id, peer, age, request count). When it sends again,
 * conn_unpark rebuilds the connection and parses what arrived in the same
 * callback. Silence until idle_timeout closes it from one timer shared by
 * all parked connections: they are kept in the order they were parked and
 * share one timeout, so only the oldest needs a deadline.
 *
 * Parked connections count in n_conns (max_connections, the
 * ocigate_connections gauge) like any other; n_parked counts them alone.
 * TLS clients are never parked: their SSL object is most of what they
 * hold, and it would have to stay. */
#ifndef OCIGATE_PROXY_PARK_H
#define OCIGATE_PROXY_PARK_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/util.h>

#include "proxy/proxy.h"

/* How long a client must stay silent after its last response before it is
 * parked. A client that sends requests back to back (a runtime pulling an
 * image's manifests and layers) is never parked: parking and unparking
 * cost two allocations and a bufferevent setup, which a request that
 * follows within a few milliseconds should not pay. 25 ms is far above a
 * client's turnaround on a LAN and far below any idle_timeout worth
 * setting (a shorter idle_timeout turns parking off). */
#define PARK_DELAY_MS 25

union park_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* What a parked connection keeps of its struct conn. */
struct park_ident {
	uint64_t id;
	struct timespec accepted_at;
	unsigned n_requests;
	union park_addr peer;
};

/* The shared idle timer (proxy_init), and its release (proxy_free, after
 * conn_close_all has closed every parked connection). */
void park_init(struct proxy *px);
void park_free(struct proxy *px);

/* Takes over fd, a plain-TCP client socket with no request in flight and
 * nothing buffered either way. Until it is readable again the connection
 * costs only its struct park. */
void park_add(struct proxy *px, evutil_socket_t fd, const struct park_ident *who);

/* Closes every parked connection (graceful shutdown, exit). */
void park_close_all(struct proxy *px, const char *reason);

/* idle_timeout may have changed (reload): the shared timer follows. */
void park_settings_changed(struct proxy *px);

#endif
