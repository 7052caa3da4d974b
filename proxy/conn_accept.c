/* Where client connections come from and how they all end: accept (plain
 * and TLS), unparking (park.h), graceful shutdown and the shutdown
 * deadline. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "proxy/conn_priv.h"
#include "util/log.h"
#include "util/xalloc.h"

static void conn_format_peer(char *buf, size_t cap, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, cap, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, cap, "unix");
	}
}

void conn_accept(struct proxy *px, evutil_socket_t fd, const struct sockaddr *addr, int addrlen)
{
	conn_accept_ssl(px, fd, addr, addrlen, NULL);
}

static struct bufferevent *conn_new_bev(struct proxy *px, evutil_socket_t fd, SSL *ssl)
{
	struct bufferevent *bev;

	if (!ssl)
		return bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bev = bufferevent_openssl_socket_new(px->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return NULL; /* out of memory; whether ssl was freed differs between
			      * libevent versions, so a leak is the safe side */
	/* Runtimes often close without close_notify; the framing tells a
	 * complete request from a cut one. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static struct conn *conn_alloc(void)
{
	return x_calloc(1, sizeof(struct conn) + 2 * event_get_struct_event_size());
}

/* What a connection has while it is not parked: its timer, its
 * bufferevent and a place in px->conns. On failure (out of resources)
 * nothing is left of them, and fd is still the caller's. */
static int conn_start(struct conn *c, evutil_socket_t fd, SSL *ssl)
{
	struct proxy *px = c->px;
	size_t watermark = px->cfg->server.body_buffer;

	c->state = CONN_READ_HEAD;
	c->client_tls = ssl != NULL;
	c->timer = evtimer_new(px->base, conn_timer, c);
	if (!c->timer)
		return -1;
	c->bev = conn_new_bev(px, fd, ssl);
	if (!c->bev) {
		event_free(c->timer);
		return -1;
	}
	bufferevent_setcb(c->bev, conn_client_read, conn_client_write, conn_client_event, c);
	if (!ssl && conn_start_plain(c, fd) != 0) {
		bufferevent_setfd(c->bev, -1); /* fd stays the caller's */
		bufferevent_free(c->bev);
		event_free(c->timer);
		return -1;
	}
	c->out_low = watermark / 2;
	bufferevent_setwatermark(c->bev, EV_WRITE, c->out_low, 0);
	bufferevent_set_max_single_write(c->bev, watermark);
	bufferevent_set_timeouts(c->bev, NULL, &px->send_timeout);
	if (ssl)
		bufferevent_enable(c->bev, EV_WRITE);
	conn_set_read_limit(c, px->req_limits.max_head_bytes);
	conn_read_on(c);
	conn_link(c);
	return 0;
}

static void conn_set_peer(struct conn *c, const struct sockaddr *addr, int addrlen)
{
	size_t n = addrlen > 0 ? OG_MIN((size_t)addrlen, sizeof(c->peer_addr)) : 0;

	if (n)
		memcpy(&c->peer_addr, addr, n);
	conn_format_peer(c->peer, sizeof(c->peer), &c->peer_addr.sa);
}

void conn_accept_ssl(struct proxy *px, evutil_socket_t fd, const struct sockaddr *addr,
		     int addrlen, SSL *ssl)
{
	struct conn *c = conn_alloc();
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->px = px;
	c->id = ++px->next_conn_id;
	clock_gettime(CLOCK_MONOTONIC, &c->accepted_at);
	conn_set_peer(c, addr, addrlen);
	if (conn_start(c, fd, ssl) != 0) {
		log_error("accept_failed", "peer=%s reason=out_of_resources", c->peer);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	px->n_conns++;
	px->stats.accepted++;
	evtimer_add(c->timer, &px->idle_timeout);
}

int conn_unpark(struct proxy *px, evutil_socket_t fd, const struct park_ident *who,
		const char *bytes, size_t n)
{
	struct conn *c = conn_alloc();

	c->px = px;
	c->id = who->id;
	c->accepted_at = who->accepted_at;
	c->n_requests = who->n_requests;
	c->peer_addr = who->peer;
	conn_format_peer(c->peer, sizeof(c->peer), &c->peer_addr.sa);
	if (conn_start(c, fd, NULL) != 0) {
		log_error("unpark_failed", "conn=%" PRIu64 " peer=%s reason=out_of_resources", c->id,
			  c->peer);
		free(c);
		return -1;
	}
	/* The slot in n_conns passes from the parked record to c. */
	if (evbuffer_add(bufferevent_get_input(c->bev), bytes, n) != 0) {
		conn_close(c, "out_of_resources");
		return 0;
	}
	conn_process(c);
	return 0;
}

void conn_log_parked_close(const struct park_ident *who, const char *reason)
{
	char peer[48];

	if (!log_enabled(LOG_DEBUG))
		return;
	conn_format_peer(peer, sizeof(peer), &who->peer.sa);
	conn_log_close(who->id, peer, "parked", reason, who->n_requests, &who->accepted_at);
}

void conn_shutdown_all(struct proxy *px)
{
	struct conn *c = px->conns;

	park_close_all(px, "shutdown");
	while (c) {
		struct conn *next = c->next;
		if (c->state == CONN_READ_HEAD &&
		    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
			conn_close(c, "shutdown");
		else
			c->keep_alive = false;
		c = next;
	}
}

void conn_close_all(struct proxy *px, const char *reason)
{
	park_close_all(px, reason);
	while (px->conns)
		conn_close(px->conns, reason);
}
