/* One client connection: an HTTP/1.1 state machine that reads a request,
 * authenticates and authorizes it, and either answers it locally or relays
 * it to the connector's upstream, streaming the body with backpressure. */
#ifndef OCIGATE_PROXY_CONN_H
#define OCIGATE_PROXY_CONN_H

#include <event2/util.h>

#include "proxy/proxy.h"

enum conn_state {
	CONN_READ_HEAD,        /* waiting for (the rest of) a request head */
	CONN_AUTH,             /* a token review or access check is in flight */
	CONN_UPSTREAM_AUTH,    /* waiting for an upstream token or the registry probe */
	CONN_UPSTREAM_CONNECT, /* a new upstream connection is being made */
	CONN_REQUEST_BODY,     /* relaying the client's request body upstream */
	CONN_UPSTREAM_HEAD,    /* request sent, waiting for the response head */
	CONN_STREAM_BODY,      /* relaying the response body */
	CONN_CLOSING,          /* flushing the last response, then close */
	CONN_CLOSED,           /* waiting to be freed by the reaper */
	CONN_N_STATES
};

const char *conn_state_name(enum conn_state s);
/* True when the state machine allows from -> to (tested by the unit tests). */
bool conn_transition_allowed(enum conn_state from, enum conn_state to);

/* Takes ownership of fd, an accepted client socket. */
void conn_accept(struct proxy *px, evutil_socket_t fd, const struct sockaddr *addr, int addrlen);
/* The same over TLS (the handshake runs first); takes ownership of ssl too. */
struct ssl_st;
void conn_accept_ssl(struct proxy *px, evutil_socket_t fd, const struct sockaddr *addr,
		     int addrlen, struct ssl_st *ssl);

/* park.c: a parked connection's client sent bytes (n > 0, read from fd):
 * rebuilds the connection around fd and processes them at once. Returns
 * -1 when it could not be rebuilt (out of resources; fd is still the
 * caller's). */
struct park_ident;
int conn_unpark(struct proxy *px, evutil_socket_t fd, const struct park_ident *who,
		const char *bytes, size_t n);
/* park.c: the conn_close log line of a parked connection. */
void conn_log_parked_close(const struct park_ident *who, const char *reason);

/* Closes idle keep-alive connections (parked ones too) and marks busy ones
 * to close after their current response (graceful shutdown). */
void conn_shutdown_all(struct proxy *px);
/* Closes every connection now, parked ones too (shutdown deadline). */
void conn_close_all(struct proxy *px, const char *reason);

/* Body bytes held in memory by the bodies being relayed now (the
 * ocigate_body_bytes_queued gauge; walks every connection). */
size_t conn_body_bytes_queued(const struct proxy *px);
/* Frees connections closed since the last call. */
void conn_reap(struct proxy *px);

#endif
