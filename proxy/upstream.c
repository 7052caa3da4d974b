#include "proxy/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>

#include "util/log.h"
#include "util/xalloc.h"

struct upstream_pool {
	struct proxy *px;
	struct connector *connector; /* borrowed: the connector owns the pool */
	struct tls_client tls;
	bool https;
	struct upstream_conn *idle;
	unsigned n_idle;
};

static void upstream_pool_free(void *data)
{
	struct upstream_pool *pool = data;

	while (pool->idle)
		upstream_free(pool->idle);
	if (pool->https)
		tls_client_free(&pool->tls);
	free(pool);
}

struct upstream_pool *upstream_pool_get(struct proxy *px, struct connector *c, char *err, size_t cap)
{
	struct upstream_pool *pool = c->proxy_data;

	if (pool)
		return pool;
	pool = x_new(struct upstream_pool);
	pool->px = px;
	pool->connector = c;
	pool->https = c->https;
	if (c->https && tls_client_init(&pool->tls, c->ca_file, err, cap) != 0) {
		free(pool);
		return NULL;
	}
	c->proxy_data = pool;
	c->proxy_data_free = upstream_pool_free;
	return pool;
}

static void upstream_idle_unlink(struct upstream_conn *u)
{
	struct upstream_pool *pool = u->pool;

	if (u->prev)
		u->prev->next = u->next;
	else if (pool->idle == u)
		pool->idle = u->next;
	else
		return; /* not in the idle list */
	if (u->next)
		u->next->prev = u->prev;
	u->next = u->prev = NULL;
	pool->n_idle--;
}

void upstream_free(struct upstream_conn *u)
{
	if (!u)
		return;
	upstream_idle_unlink(u);
	if (u->bev) {
		SSL *ssl = bufferevent_openssl_get_ssl(u->bev);
		if (ssl)
			SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN);
		bufferevent_free(u->bev);
	}
	free(u);
}

struct upstream_conn *upstream_take_idle(struct upstream_pool *pool)
{
	struct upstream_conn *u = pool->idle;

	if (!u)
		return NULL;
	upstream_idle_unlink(u);
	pool->px->stats.upstream_reuses++;
	return u;
}

static void upstream_set_nodelay(struct bufferevent *bev)
{
	evutil_socket_t fd = bufferevent_getfd(bev);
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct upstream_conn *upstream_connect(struct upstream_pool *pool, bufferevent_data_cb read_cb,
				       bufferevent_event_cb event_cb, void *arg, char *err, size_t cap)
{
	struct proxy *px = pool->px;
	struct connector *c = pool->connector;
	struct upstream_conn *u = x_new(struct upstream_conn);
	int opts = BEV_OPT_CLOSE_ON_FREE;

	u->pool = pool;
	if (pool->https) {
		SSL *ssl = tls_client_new_ssl(&pool->tls, c->host);
		if (!ssl) {
			snprintf(err, cap, "cannot create a TLS session");
			free(u);
			return NULL;
		}
		u->bev = bufferevent_openssl_socket_new(px->base, -1, ssl,
							BUFFEREVENT_SSL_CONNECTING, opts);
		if (u->bev)
			bufferevent_openssl_set_allow_dirty_shutdown(u->bev, 1);
	} else {
		u->bev = bufferevent_socket_new(px->base, -1, opts);
	}
	if (!u->bev) {
		snprintf(err, cap, "cannot create a connection");
		free(u);
		return NULL;
	}
	bufferevent_set_max_single_read(u->bev, px->cfg->server.body_buffer);
	bufferevent_set_timeouts(u->bev, &px->connect_timeout, &px->connect_timeout);
	bufferevent_setcb(u->bev, read_cb, NULL, event_cb, arg);
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
	px->stats.upstream_connects++;
	if (bufferevent_socket_connect_hostname(u->bev, px->dns, AF_UNSPEC, c->host, c->port) != 0) {
		snprintf(err, cap, "cannot connect to %s: %s", c->address,
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		upstream_free(u);
		return NULL;
	}
	return u;
}

void upstream_attach(struct upstream_conn *u, bufferevent_data_cb read_cb,
		     bufferevent_event_cb event_cb, void *arg)
{
	struct proxy *px = u->pool->px;

	if (!u->connected) {
		u->connected = true;
		upstream_set_nodelay(u->bev);
	}
	bufferevent_set_timeouts(u->bev, &px->read_timeout, &px->read_timeout);
	bufferevent_setcb(u->bev, read_cb, NULL, event_cb, arg);
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
}

/* An idle connection that becomes readable was closed by the upstream (or
 * sent bytes nobody asked for): either way it cannot be reused. */
static void upstream_idle_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	upstream_free(arg);
}

static void upstream_idle_event(struct bufferevent *bev, short events, void *arg)
{
	(void)bev;
	(void)events;
	upstream_free(arg);
}

void upstream_release(struct upstream_conn *u)
{
	struct upstream_pool *pool = u->pool;
	struct proxy *px = pool->px;

	u->requests++;
	if (pool->n_idle >= px->cfg->upstream.pool_max_idle || px->shutting_down ||
	    evbuffer_get_length(bufferevent_get_input(u->bev)) > 0) {
		upstream_free(u);
		return;
	}
	bufferevent_setcb(u->bev, upstream_idle_read, NULL, upstream_idle_event, u);
	bufferevent_set_timeouts(u->bev, &px->pool_idle_timeout, NULL);
	bufferevent_enable(u->bev, EV_READ);
	u->next = pool->idle;
	u->prev = NULL;
	if (pool->idle)
		pool->idle->prev = u;
	pool->idle = u;
	pool->n_idle++;
}

void upstream_describe_error(struct upstream_conn *u, short events, char *buf, size_t cap)
{
	struct connector *c = u->pool->connector;
	int dns_err = bufferevent_socket_get_dns_error(u->bev);
	unsigned long ssl_err = u->pool->https ? bufferevent_get_openssl_error(u->bev) : 0;
	SSL *ssl = u->pool->https ? bufferevent_openssl_get_ssl(u->bev) : NULL;
	int sock_err = EVUTIL_SOCKET_ERROR();

	if (events & BEV_EVENT_TIMEOUT) {
		snprintf(buf, cap, "%s %s timed out", c->address,
			 u->connected ? "response" : "connect");
	} else if (dns_err) {
		snprintf(buf, cap, "cannot resolve %s: %s", c->host, evutil_gai_strerror(dns_err));
	} else if (ssl_err || (ssl && SSL_get_verify_result(ssl) != X509_V_OK)) {
		char tls[200];
		tls_describe_error(ssl, ssl_err, tls, sizeof(tls));
		snprintf(buf, cap, "%s: %s", c->address, tls);
		ERR_clear_error();
	} else if (events & BEV_EVENT_EOF) {
		snprintf(buf, cap, "%s closed the connection", c->address);
	} else {
		snprintf(buf, cap, "%s %s: %s", c->address,
			 u->connected ? "connection failed" : "unreachable",
			 sock_err ? evutil_socket_error_to_string(sock_err) : "connection error");
	}
}
