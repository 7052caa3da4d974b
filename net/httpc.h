/* The connection core of ocigate's two HTTP clients: the registry side
 * (proxy/upstream.c, proxy/fetch.c) and the API-server side
 * (k8s/client.c). One way to open a connection (DNS through evdns, TLS with
 * a dirty shutdown allowed), to set it up once connected, to end it, to
 * decide whether a request may go again after a kept-alive connection
 * turned out stale, and to explain a failure. Idle connections are kept in
 * net/httpc_pool.h and responses read with net/httpc_response.h; how many
 * connections may be open and the request framing stay with each client. */
#ifndef OCIGATE_NET_HTTPC_H
#define OCIGATE_NET_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "util/common.h"
#include "util/tls.h"

struct event_base;
struct evdns_base;
struct timeval;

/* Where a connection goes. */
struct httpc_peer {
	struct event_base *base;
	struct evdns_base *dns;
	const char *host;        /* to resolve and connect to */
	uint16_t port;
	struct tls_client *tls;  /* NULL: plain http */
	const char *tls_name;    /* SNI and the name the certificate must hold */
	const char *name;        /* for messages: "https://host:port", "API server host" */
	int bev_options;         /* added to BEV_OPT_CLOSE_ON_FREE */
};

/* Starts a connection: cb receives BEV_EVENT_CONNECTED once it is ready
 * (after the TLS handshake); connect_tv bounds that. Returns NULL with a
 * reason in err on immediate failure. */
struct bufferevent *httpc_connect(const struct httpc_peer *p, const struct timeval *connect_tv,
				  bufferevent_data_cb read_cb, bufferevent_data_cb write_cb,
				  bufferevent_event_cb event_cb, void *arg, char *err, size_t cap);

/* Once BEV_EVENT_CONNECTED arrived: requests go out without delay. */
void httpc_connected(struct bufferevent *bev);

/* bufferevent_enable for a connection made here, for the events not on
 * yet (it does not restart a timeout: bufferevent_set_timeouts does); it
 * also hands the bufferevent what OpenSSL read ahead while reading was
 * off. */
void httpc_enable(struct bufferevent *bev, short events);

/* Ends a connection without waiting for a TLS close_notify exchange. */
void httpc_close(struct bufferevent *bev);

/* A kept-alive connection the server closed just as a request went out
 * on it: the request never reached the server and may go once more, on a
 * new connection. reused: the connection carried a request before;
 * got_bytes: any byte of the response arrived; retried: this request
 * already went twice; events: the error event. */
bool httpc_may_retry(bool reused, bool got_bytes, bool retried, short events);

/* Explains an error event on bev for logs and messages. */
void httpc_describe_error(const struct httpc_peer *p, struct bufferevent *bev, bool connected,
			  short events, char *buf, size_t cap);

#endif
