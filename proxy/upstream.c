#include "proxy/upstream.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/challenge.h"
#include "proxy/token.h"
#include "util/log.h"
#include "util/url.h"
#include "util/xalloc.h"

/* Storage hosts a registry redirects to are few (one bucket, one CDN);
 * the bound keeps a hostile registry from making us keep many pools. */
#define UPSTREAM_MAX_POOLS 16
#define UPSTREAM_DOCKER_HUB_REGISTRY "registry-1.docker.io"

static void upstream_pool_free(struct upstream_pool *pool)
{
	struct httpc_idle *e;

	while ((e = httpc_pool_take(&pool->idle)))
		upstream_close(OG_CONTAINER_OF(e, struct upstream_conn, idle), "pool_closed");
	if (pool->https)
		tls_client_free(&pool->tls);
	free(pool->host);
	free(pool->host_header);
	free(pool->origin);
	free(pool);
}

static void upstream_site_free(void *data)
{
	struct upstream_site *s = data;

	token_cache_free(s->tokens);
	while (s->pools) {
		struct upstream_pool *p = s->pools;
		s->pools = p->next;
		upstream_pool_free(p);
	}
	free(s->realm);
	free(s->service);
	free(s);
}

static void upstream_idle_close(struct httpc_idle *e, const char *reason)
{
	upstream_close(OG_CONTAINER_OF(e, struct upstream_conn, idle), reason);
}

static struct upstream_pool *upstream_pool_new(struct upstream_site *s, bool https, const char *host,
					       uint16_t port, char *err, size_t cap)
{
	struct upstream_pool *pool = x_new(struct upstream_pool);
	size_t n;

	pool->site = s;
	pool->https = https;
	pool->host = x_strdup(host);
	pool->port = port;
	pool->host_header = url_host_header(host, port, https);
	n = strlen(pool->host_header) + sizeof("https://");
	pool->origin = x_malloc(n);
	snprintf(pool->origin, n, "%s://%s", https ? "https" : "http", pool->host_header);
	httpc_pool_init(&pool->idle, upstream_idle_close);
	if (https && (s->connector->ca_pem ?
		      tls_client_init_pem(&pool->tls, s->connector->ca_pem, s->connector->ca_pem_len,
					  false, err, cap) :
		      tls_client_init(&pool->tls, s->connector->ca_file, err, cap)) != 0) {
		pool->https = false;
		upstream_pool_free(pool);
		return NULL;
	}
	pool->peer = (struct httpc_peer){
		.base = s->px->base,
		.dns = s->px->dns,
		.host = pool->host,
		.port = port,
		.tls = https ? &pool->tls : NULL,
		.tls_name = pool->host,
		.name = pool->origin,
	};
	return pool;
}

static bool upstream_is_docker_hub(const char *host)
{
	return strcmp(host, "docker.io") == 0 || strcmp(host, "index.docker.io") == 0;
}

struct upstream_site *upstream_site_get(struct proxy *px, struct connector *c, char *err, size_t cap)
{
	struct upstream_site *s = c->proxy_data;

	if (s)
		return s;
	s = x_new(struct upstream_site);
	s->px = px;
	s->connector = c;
	s->docker_hub = c->https && upstream_is_docker_hub(c->host);
	s->pools = upstream_pool_new(s, c->https, s->docker_hub ? UPSTREAM_DOCKER_HUB_REGISTRY : c->host,
				     c->port, err, cap);
	if (!s->pools) {
		free(s);
		return NULL;
	}
	s->n_pools = 1;
	s->tokens = token_cache_new(s);
	c->proxy_data = s;
	c->proxy_data_free = upstream_site_free;
	return s;
}

struct upstream_pool *upstream_site_pool(struct upstream_site *s, bool https, const char *host,
					 uint16_t port, char *err, size_t cap)
{
	struct upstream_pool *last = NULL;

	for (struct upstream_pool *p = s->pools; p; p = p->next) {
		if (p->https == https && p->port == port && strcmp(p->host, host) == 0)
			return p;
		last = p;
	}
	if (s->n_pools >= UPSTREAM_MAX_POOLS) {
		snprintf(err, cap, "too many upstream hosts for one connector");
		return NULL;
	}
	struct upstream_pool *p = upstream_pool_new(s, https, host, port, err, cap);
	if (!p)
		return NULL;
	last->next = p;
	s->n_pools++;
	return p;
}

static void upstream_log_realm(const char *event, struct upstream_site *s, const char *realm,
			       const char *why)
{
	char from[300], to[300];

	log_quote(from, sizeof(from), s->realm ? s->realm : "-", strlen(s->realm ? s->realm : "-"));
	log_quote(to, sizeof(to), realm, strlen(realm));
	if (why)
		log_warn(event, "connector=%s realm=%s reason=\"%s\"", s->connector->id, to, why);
	else
		log_warn(event, "connector=%s from=%s to=%s", s->connector->id, from, to);
}

enum upstream_challenge upstream_site_learn_challenge(struct upstream_site *s,
						      const struct http1_header *h, size_t n,
						      char *err, size_t cap)
{
	struct challenge ch;

	memset(&ch, 0, sizeof(ch));
	/* A challenge with a syntax error still tells what it parsed before it. */
	for (size_t i = 0; i < n; i++)
		if (og_str_ieq(h[i].name, "WWW-Authenticate") && challenge_parse(h[i].value, &ch) != 0)
			log_debug("bad_challenge", "connector=%s", s->connector->id);
	if (ch.bearer && ch.realm[0]) {
		if (challenge_check_realm(ch.realm, s->connector->allow_insecure, err, cap) != 0) {
			upstream_log_realm("token_realm_refused", s, ch.realm, err);
			return UPSTREAM_CHALLENGE_REFUSED;
		}
		/* Legitimate on a registry migration, suspicious otherwise: say so. */
		if (s->realm && strcmp(s->realm, ch.realm) != 0)
			upstream_log_realm("token_realm_changed", s, ch.realm, NULL);
		s->auth_mode = UPSTREAM_AUTH_BEARER;
		free(s->realm);
		free(s->service);
		s->realm = x_strdup(ch.realm);
		s->service = ch.service[0] ? x_strdup(ch.service) : NULL;
		return UPSTREAM_CHALLENGE_BEARER;
	}
	if (ch.basic)
		s->auth_mode = UPSTREAM_AUTH_BASIC;
	return UPSTREAM_CHALLENGE_NONE;
}

void upstream_close(struct upstream_conn *u, const char *reason)
{
	if (!u)
		return;
	if (log_enabled(LOG_DEBUG)) {
		char conn[24] = "-";
		if (u->conn_id)
			snprintf(conn, sizeof(conn), "%" PRIu64, u->conn_id);
		log_debug("upstream_close", "conn=%s connector=%s origin=%s reason=%s requests=%u",
			  conn, u->pool->site->connector->id, u->pool->origin, reason, u->requests);
	}
	httpc_pool_remove(&u->idle);
	httpc_close(u->bev);
	free(u);
}

struct upstream_conn *upstream_take_idle(struct upstream_pool *pool)
{
	struct httpc_idle *e = httpc_pool_take(&pool->idle);

	if (!e)
		return NULL;
	pool->site->px->stats.upstream_reuses++;
	return OG_CONTAINER_OF(e, struct upstream_conn, idle);
}

struct upstream_conn *upstream_connect(struct upstream_pool *pool, bufferevent_data_cb read_cb,
				       bufferevent_data_cb write_cb, bufferevent_event_cb event_cb,
				       void *arg, char *err, size_t cap)
{
	struct proxy *px = pool->site->px;
	struct bufferevent *bev;

	px->stats.upstream_connects++;
	bev = httpc_connect(&pool->peer, &px->connect_timeout, read_cb, write_cb, event_cb, arg,
			    err, cap);
	if (!bev)
		return NULL;
	bufferevent_set_max_single_read(bev, px->cfg->server.body_buffer);
	bufferevent_set_max_single_write(bev, px->cfg->server.body_buffer);
	struct upstream_conn *u = x_new(struct upstream_conn);
	u->pool = pool;
	u->bev = bev;
	return u;
}

void upstream_attach(struct upstream_conn *u, bufferevent_data_cb read_cb,
		     bufferevent_data_cb write_cb, bufferevent_event_cb event_cb, void *arg)
{
	struct proxy *px = u->pool->site->px;

	if (!u->connected) {
		u->connected = true;
		httpc_connected(u->bev);
	}
	bufferevent_set_timeouts(u->bev, &px->read_timeout, &px->read_timeout);
	bufferevent_setcb(u->bev, read_cb, write_cb, event_cb, arg);
	httpc_enable(u->bev, EV_READ | EV_WRITE);
}

/* Records from the start of the output, as libevent would write them.
 * What SSL_write did not take stays first in the output, so libevent's
 * retry passes the same bytes (it sets SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)
 * and meets any error itself. Nothing here asks SSL_get_error, so the
 * error queue is cleared only after a failure (clearing it costs ~800
 * instructions, 2% of a request). */
static void upstream_ssl_write_now(SSL *ssl, struct evbuffer *out)
{
	struct evbuffer_iovec v;

	while (evbuffer_peek(out, -1, NULL, &v, 1) >= 1 && v.iov_len > 0) {
		int n = SSL_write(ssl, v.iov_base, (int)OG_MIN(v.iov_len, (size_t)INT_MAX));
		if (n <= 0 || evbuffer_drain(out, (size_t)n) != 0) {
			ERR_clear_error();
			return;
		}
	}
}

void upstream_write_now(struct upstream_conn *u, bool more_follows)
{
	struct evbuffer *out = bufferevent_get_output(u->bev);
	SSL *ssl = bufferevent_openssl_get_ssl(u->bev);

	if (ssl) {
		upstream_ssl_write_now(ssl, out);
	} else {
		/* A socket bufferevent keeps its output's start frozen and thaws
		 * it around its own writes; this is one of those. */
		evbuffer_unfreeze(out, 1);
		evbuffer_write(out, bufferevent_getfd(u->bev));
		evbuffer_freeze(out, 1);
	}
	/* The write event the bufferevent added is dropped before epoll sees
	 * it (the loop's change list, proxy.c). */
	if (!more_follows && evbuffer_get_length(out) == 0)
		bufferevent_disable(u->bev, EV_WRITE);
}

static void upstream_set_lean(struct upstream_conn *u, bool lean)
{
	SSL *ssl = bufferevent_openssl_get_ssl(u->bev);

	if (!ssl || u->lean == lean)
		return;
	u->lean = lean;
	if (lean) {
		SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
		/* The write buffer would wait for the next write to go; both go
		 * now unless OpenSSL holds bytes in one. */
		(void)SSL_free_buffers(ssl);
	} else {
		SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	}
}

void upstream_lean_buffers(struct upstream_conn *u)
{
	upstream_set_lean(u, true);
}

void upstream_release(struct upstream_conn *u)
{
	struct upstream_pool *pool = u->pool;
	struct proxy *px = pool->site->px;
	const char *why = "shutting_down";

	upstream_set_lean(u, false);
	u->requests++;
	if (px->shutting_down ||
	    httpc_pool_put(&pool->idle, &u->idle, u->bev, px->cfg->upstream.pool_max_idle,
			   &px->pool_idle_timeout, &why) != 0) {
		upstream_close(u, why);
		return;
	}
	u->conn_id = 0;
}

void upstream_describe_error(struct upstream_conn *u, short events, char *buf, size_t cap)
{
	httpc_describe_error(&u->pool->peer, u->bev, u->connected, events, buf, cap);
}
