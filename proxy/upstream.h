/* Connections to upstream registries, pooled per connector.
 *
 * A request borrows a connection: either an idle one from the pool or a new
 * one that is still connecting. While borrowed, the borrower owns the
 * bufferevent callbacks; upstream_release() gives it back for keep-alive. */
#ifndef OCIGATE_PROXY_UPSTREAM_H
#define OCIGATE_PROXY_UPSTREAM_H

#include <event2/bufferevent.h>

#include "auth/connector.h"
#include "proxy/proxy.h"
#include "proxy/tls.h"

struct upstream_pool;

struct upstream_conn {
	struct bufferevent *bev;
	struct upstream_pool *pool;
	struct upstream_conn *next, *prev; /* in the idle list */
	unsigned requests;                 /* served on this connection so far */
	bool connected;
};

/* The pool of connector c (created on first use). Returns NULL with a reason
 * in err when the connector's TLS settings cannot be used. */
struct upstream_pool *upstream_pool_get(struct proxy *px, struct connector *c, char *err, size_t cap);

/* An idle keep-alive connection, or NULL. */
struct upstream_conn *upstream_take_idle(struct upstream_pool *pool);

/* Starts a new connection (DNS through evdns, TLS when the connector is
 * https). BEV_EVENT_CONNECTED reaches event_cb when ready (after the TLS
 * handshake). Returns NULL with a reason in err on immediate failure. */
struct upstream_conn *upstream_connect(struct upstream_pool *pool, bufferevent_data_cb read_cb,
				       bufferevent_event_cb event_cb, void *arg, char *err, size_t cap);

/* Switches a connected connection from connect to read timeouts and sets
 * the borrower's callbacks. */
void upstream_attach(struct upstream_conn *u, bufferevent_data_cb read_cb,
		     bufferevent_event_cb event_cb, void *arg);

/* Returns a connection whose last response was read completely to the pool;
 * closes it when the pool is full. */
void upstream_release(struct upstream_conn *u);
void upstream_free(struct upstream_conn *u);

/* Explains an error event on u for logs and the client's error message. */
void upstream_describe_error(struct upstream_conn *u, short events, char *buf, size_t cap);

#endif
