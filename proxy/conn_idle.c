/* An idle client connection (conn_priv.h): the wait after a response,
 * parking a plain one (park.h), lightening a TLS one, and the timer that
 * runs header_timeout, idle_timeout and a request body's timeout. */
#include <inttypes.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "proxy/conn_priv.h"
#include "util/log.h"

/* The connection has answered everything it was sent: idle_wait runs
 * from now. A keep-alive client's requests follow each other closely, so
 * the wait armed after an earlier response is usually still pending; it
 * is left to fire early and conn_timer re-arms it for the rest, which
 * costs a timer update per idle_wait instead of two per request. */
void conn_wait_idle(struct conn *c)
{
	clock_gettime(CLOCK_MONOTONIC, &c->idle_from);
	if (c->timer_use == CONN_TIMER_PARK && evtimer_pending(c->timer, NULL))
		return;
	c->timer_use = CONN_TIMER_PARK;
	evtimer_add(c->timer, &c->px->park_delay);
}

/* The idle wait's timer fired: true when it fired early (see
 * conn_wait_idle) and was re-armed for the rest of the wait. */
static bool conn_idle_wait_rearmed(struct conn *c)
{
	double left_ms = (double)c->px->park_delay.tv_sec * 1e3 + (double)c->px->park_delay.tv_usec / 1e3 -
			 conn_ms_since(&c->idle_from);
	struct timeval tv;

	if (left_ms < 1.0)
		return false;
	tv.tv_sec = (time_t)(left_ms / 1e3);
	tv.tv_usec = (suseconds_t)((left_ms - (double)tv.tv_sec * 1e3) * 1e3);
	evtimer_add(c->timer, &tv);
	return true;
}

/* No request in flight, none begun, none coming after an EOF, and nothing
 * unread: all that would be lost by parking is what is left to write. */
static bool conn_is_idle(struct conn *c)
{
	return c->state == CONN_READ_HEAD && !c->client_tls && !c->client_eof && !c->out_paused &&
	       !c->in_process && c->timer_use != CONN_TIMER_HEAD && !c->px->shutting_down &&
	       evbuffer_get_length(bufferevent_get_input(c->bev)) == 0;
}

/* A TLS connection cannot be parked (its session lives in the SSL), but
 * once idle it need not hold OpenSSL's read and write buffers (34 KiB
 * together); the next record allocates them again. OpenSSL keeps them
 * while they hold anything. */
static void conn_lighten_tls(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

	if (ssl && SSL_is_init_finished(ssl) && evbuffer_get_length(conn_out(c)) == 0 &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
		SSL_free_buffers(ssl);
}

/* Hands the socket to park.c and leaves the rest to the reaper. */
static void conn_park(struct conn *c)
{
	struct park_ident who = {
		.id = c->id,
		.accepted_at = c->accepted_at,
		.n_requests = c->n_requests,
		.peer = c->peer_addr,
	};

	/* park_add registers its read event on the socket before the
	 * bufferevent lets go of it (without closing it) and conn_retire
	 * deletes the conn's own: epoll's registration stays as it is. */
	park_add(c->px, bufferevent_getfd(c->bev), &who);
	bufferevent_setfd(c->bev, -1);
	c->parked = true;
	conn_retire(c);
}

/* The write callback of a connection that was idle for the park delay
 * while its last response was still being written: it is parked once the
 * client has read it, unless a request came in the meantime. */
static void conn_client_write_then_park(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->n_requests == c->park_after && conn_is_idle(c) &&
	    evbuffer_get_length(conn_out(c)) == 0) {
		conn_park(c);
		return;
	}
	if (c->n_requests != c->park_after)
		bufferevent_setcb(bev, conn_client_read, conn_client_write, conn_client_event, c);
	conn_client_write(bev, arg);
}

/* The client has said nothing for idle_wait since its last response. */
static void conn_idle_wait_over(struct conn *c)
{
	struct proxy *px = c->px;

	if (px->cfg->server.idle_timeout_ms <= PARK_DELAY_MS) {
		conn_close(c, "idle_timeout"); /* idle_wait was all of idle_timeout */
		return;
	}
	if (c->client_tls) {
		conn_lighten_tls(c);
		c->timer_use = CONN_TIMER_IDLE;
		evtimer_add(c->timer, &px->idle_after_park);
		return;
	}
	if (conn_is_idle(c) && evbuffer_get_length(conn_out(c)) == 0) {
		conn_park(c);
		return;
	}
	/* Not parked now: the rest of idle_timeout runs as it did before
	 * parking existed. A response still on its way is waited for, and
	 * the connection parked when it is out. */
	c->timer_use = CONN_TIMER_IDLE;
	evtimer_add(c->timer, &px->idle_after_park);
	if (conn_is_idle(c)) {
		c->park_after = c->n_requests;
		bufferevent_setcb(c->bev, conn_client_read, conn_client_write_then_park,
				  conn_client_event, c);
	}
}

void conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CONN_REQUEST_BODY) {
		conn_close(c, "request_body_timeout");
		return;
	}
	if (c->state != CONN_READ_HEAD)
		return;
	if (c->timer_use == CONN_TIMER_PARK) {
		if (!conn_idle_wait_rearmed(c))
			conn_idle_wait_over(c);
		return;
	}
	if (c->timer_use == CONN_TIMER_IDLE) {
		conn_close(c, "idle_timeout");
		return;
	}
	log_info("bad_request", "conn=%" PRIu64 " peer=%s reason=header_timeout", c->id, c->peer);
	c->keep_alive = false;
	conn_respond_error(c, 408, "UNSUPPORTED", "request head not received in time");
}
