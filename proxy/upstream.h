/* Connections to upstream origins, pooled per connector.
 *
 * Each connector has a site: one pool per origin it talks to (its registry,
 * the registry's token service, storage hosts that blobs redirect to), what
 * it learned about the registry's authentication, and its token cache.
 * A request borrows a connection: an idle one from the pool or a new one that
 * is still connecting. While borrowed, the borrower owns the bufferevent
 * callbacks; upstream_release() gives it back for keep-alive, and
 * upstream_close() is the only way a connection ends. */
#ifndef OCIGATE_PROXY_UPSTREAM_H
#define OCIGATE_PROXY_UPSTREAM_H

#include <event2/bufferevent.h>

#include "auth/connector.h"
#include "net/httpc.h"
#include "net/httpc_pool.h"
#include "proxy/proxy.h"
#include "util/http1.h"
#include "util/tls.h"

struct upstream_site;
struct token_cache;

struct upstream_pool {
	struct upstream_site *site;
	struct upstream_pool *next;
	bool https;
	char *host;
	uint16_t port;
	char *host_header;  /* "host" or "host:port" */
	char *origin;       /* "https://host:port", for messages and same-origin checks */
	struct tls_client tls;
	struct httpc_peer peer; /* how to connect (net/httpc.h) */
	struct httpc_pool idle; /* kept-alive connections (net/httpc_pool.h) */
};

enum upstream_auth_mode {
	UPSTREAM_AUTH_UNKNOWN, /* nothing refused yet: send Basic (if any) */
	UPSTREAM_AUTH_BASIC,
	UPSTREAM_AUTH_BEARER,  /* tokens from realm/service */
};

struct upstream_site {
	struct proxy *px;
	struct connector *connector; /* borrowed: the connector owns the site */
	struct upstream_pool *pools; /* the first one is the registry */
	unsigned n_pools;
	bool docker_hub;             /* one-segment names get library/ */
	enum upstream_auth_mode auth_mode;
	char *realm;                 /* token service URL (Bearer) */
	char *service;
	struct token_cache *tokens;
};

struct upstream_conn {
	struct bufferevent *bev;
	struct upstream_pool *pool;
	struct httpc_idle idle;            /* in pool->idle while idle */
	unsigned requests;                 /* served on this connection so far */
	uint64_t conn_id;                  /* the client connection borrowing it, for logs (0: none) */
	bool connected;
	bool lean;                         /* upstream_lean_buffers is on */
};

/* The site of connector c (created on first use). Returns NULL with a reason
 * in err when the connector's TLS settings cannot be used. */
struct upstream_site *upstream_site_get(struct proxy *px, struct connector *c, char *err, size_t cap);
static inline struct upstream_pool *upstream_site_registry(struct upstream_site *s)
{
	return s->pools;
}
/* The pool for another origin of this site (token service, blob storage). */
struct upstream_pool *upstream_site_pool(struct upstream_site *s, bool https, const char *host,
					 uint16_t port, char *err, size_t cap);

enum upstream_challenge {
	UPSTREAM_CHALLENGE_NONE,    /* no Bearer challenge (perhaps Basic) */
	UPSTREAM_CHALLENGE_BEARER,  /* a Bearer token from the realm is wanted */
	UPSTREAM_CHALLENGE_REFUSED, /* a Bearer realm we will not send credentials to */
};

/* Records what a 401's WWW-Authenticate fields say about the registry's
 * authentication (auth_mode, realm, service). Call it only for responses
 * from the registry's own origin to requests that carried our credential:
 * a storage host a blob redirects to must never choose where the
 * connector's credentials go. A refused realm (not an https URL, unless
 * allow_insecure) changes nothing and says why in err. */
enum upstream_challenge upstream_site_learn_challenge(struct upstream_site *s,
						      const struct http1_header *h, size_t n,
						      char *err, size_t cap);

/* An idle keep-alive connection, or NULL. */
struct upstream_conn *upstream_take_idle(struct upstream_pool *pool);

/* Starts a new connection (DNS through evdns, TLS for https). The borrower's
 * event_cb receives BEV_EVENT_CONNECTED when ready (after the handshake).
 * Returns NULL with a reason in err on immediate failure. */
struct upstream_conn *upstream_connect(struct upstream_pool *pool, bufferevent_data_cb read_cb,
				       bufferevent_data_cb write_cb, bufferevent_event_cb event_cb,
				       void *arg, char *err, size_t cap);

/* Switches a connected connection to read timeouts and the borrower's callbacks. */
void upstream_attach(struct upstream_conn *u, bufferevent_data_cb read_cb,
		     bufferevent_data_cb write_cb, bufferevent_event_cb event_cb, void *arg);

/* OpenSSL keeps a TLS connection's read and write buffers (~34 KiB)
 * between requests: freeing and allocating them again was 1,400
 * instructions of a manifest request. For a blob GET, and while any other
 * long body streams, they are freed whenever empty instead
 * (SSL_MODE_RELEASE_BUFFERS), so hundreds of concurrent blob pulls, mostly
 * waiting on the registry or on their clients, do not all hold them. Off
 * again when the connection is released. */
void upstream_lean_buffers(struct upstream_conn *u);

/* Writes what the borrower queued in the output now, where the
 * bufferevent would wait for epoll to report the socket writable (an
 * epoll_ctl to add write interest, a loop round, one to drop it). With
 * nothing more to send (no request body follows) and everything written,
 * write interest is dropped until the next upstream_attach. */
void upstream_write_now(struct upstream_conn *u, bool more_follows);

/* Returns a connection whose last response was read completely to the pool;
 * closes it when the pool is full. */
void upstream_release(struct upstream_conn *u);
/* Ends a connection (borrowed or idle): logs why (a short token, like
 * conn_close's) and frees it. NULL is ignored. */
void upstream_close(struct upstream_conn *u, const char *reason);

/* Explains an error event on u for logs and the client's error message. */
void upstream_describe_error(struct upstream_conn *u, short events, char *buf, size_t cap);

#endif
