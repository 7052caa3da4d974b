#include "proxy/tls_listener.h"

#include <stdlib.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "proxy/accept_guard.h"
#include "proxy/conn.h"
#include "proxy/listen.h"
#include "proxy/metrics.h"
#include "util/log.h"
#include "util/tls_server.h"
#include "util/xalloc.h"

/* How often the files are looked at: a stat() of two files. */
#define TLS_LISTENER_CHECK_S 5

struct tls_listener {
	struct proxy *px;
	struct evconnlistener *listener;
	struct accept_guard guard;
	struct tls_server server;
	struct event *check_timer;
	char text[128];
};

static void tls_listener_on_accept(struct evconnlistener *l, evutil_socket_t fd,
				   struct sockaddr *addr, int len, void *arg)
{
	struct tls_listener *t = arg;
	struct proxy *px = t->px;
	SSL *ssl = SSL_new(t->server.ctx);

	if (!ssl) {
		log_error("accept_failed", "listener=tls reason=out_of_resources");
		evutil_closesocket(fd);
		return;
	}
	(void)l;
	conn_accept_ssl(px, fd, addr, len, ssl);
	if (px->n_conns >= px->cfg->server.max_connections && !t->guard.full) {
		log_warn("max_connections", "listener=tls limit=%u", px->cfg->server.max_connections);
		accept_guard_set_full(&t->guard, true);
	}
}

static void tls_listener_on_accept_error(struct evconnlistener *l, void *arg)
{
	struct tls_listener *t = arg;

	(void)l;
	accept_guard_on_error(&t->guard, EVUTIL_SOCKET_ERROR());
}

static void tls_listener_apply(struct tls_listener *t, bool force)
{
	const struct config *cfg = t->px->cfg;
	char err[768];

	switch (tls_server_reload(&t->server, cfg->tls.cert_file, cfg->tls.key_file, force, err,
				  sizeof(err))) {
	case TLS_SERVER_RELOADED:
		metrics_count(METRICS_TLS_CERT_RELOAD_OK);
		log_info("tls_cert_reloaded", "cert_file=%s", t->server.cert_file);
		break;
	case TLS_SERVER_FAILED:
		metrics_count(METRICS_TLS_CERT_RELOAD_FAILED);
		log_error("tls_cert_reload_failed", "reason=\"%s\" keeping=previous", err);
		break;
	case TLS_SERVER_UNCHANGED:
	case TLS_SERVER_FAILED_AGAIN:
		break;
	}
}

static void tls_listener_on_check(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tls_listener_apply(arg, false);
}

int tls_listener_start(struct proxy *px)
{
	const struct config *cfg = px->cfg;
	struct tls_listener *t;
	struct timeval tv = { .tv_sec = TLS_LISTENER_CHECK_S };
	char err[768];

	if (!config_address_set(&cfg->tls.listen))
		return 0;
	t = x_new(struct tls_listener);
	t->px = px;
	if (tls_server_init(&t->server, cfg->tls.cert_file, cfg->tls.key_file, true, err,
			    sizeof(err)) != 0) {
		log_error("tls_failed", "reason=\"%s\"", err);
		free(t);
		return -1;
	}
	t->listener = listen_bind(px->base, &cfg->tls.listen, "tls", tls_listener_on_accept, t,
				  t->text, sizeof(t->text));
	if (!t->listener) {
		tls_listener_free(t);
		return -1;
	}
	evconnlistener_set_error_cb(t->listener, tls_listener_on_accept_error);
	accept_guard_init(&t->guard, px->base, t->listener, "tls");
	t->check_timer = event_new(px->base, -1, EV_PERSIST, tls_listener_on_check, t);
	event_add(t->check_timer, &tv);
	px->tls = t;
	log_info("listening", "listener=tls addr=%s cert_file=%s", t->text, t->server.cert_file);
	return 0;
}

void tls_listener_reload(struct proxy *px)
{
	if (px->tls)
		tls_listener_apply(px->tls, true);
}

void tls_listener_close(struct proxy *px)
{
	struct tls_listener *t = px->tls;

	if (t && t->listener) {
		accept_guard_free(&t->guard);
		evconnlistener_free(t->listener);
		t->listener = NULL;
	}
}

void tls_listener_conn_gone(struct proxy *px)
{
	struct tls_listener *t = px->tls;

	if (!t || !t->listener || px->shutting_down)
		return;
	if (px->n_conns < px->cfg->server.max_connections)
		accept_guard_set_full(&t->guard, false);
	accept_guard_slot_freed(&t->guard);
}

void tls_listener_free(struct tls_listener *t)
{
	if (!t)
		return;
	accept_guard_free(&t->guard);
	if (t->listener)
		evconnlistener_free(t->listener);
	if (t->check_timer)
		event_free(t->check_timer);
	tls_server_free(&t->server);
	free(t);
}
