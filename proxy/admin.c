#include "proxy/admin.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "proxy/accept_guard.h"
#include "proxy/listen.h"
#include "proxy/metrics.h"
#include "proxy/respond.h"
#include "util/http1.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Scrapers and probes hold a connection or two each; more is a runaway. */
#define ADMIN_MAX_CONNS 64
#define ADMIN_TIMEOUT_S 10

struct admin_conn {
	struct admin *a;
	struct admin_conn *prev, *next;
	struct bufferevent *bev;
	bool answered;
};

struct admin {
	struct proxy *px;
	struct evconnlistener *listener;
	struct accept_guard guard;
	struct admin_conn *conns;
	size_t n_conns;
	char text[128];
};

int admin_health(const struct proxy *px, struct og_str target, const char **body)
{
	if (og_str_eq(target, "/healthz")) {
		*body = "ok\n";
		return 200;
	}
	if (!og_str_eq(target, "/readyz"))
		return 0;
	if (px->shutting_down) {
		*body = "shutting down\n";
		return 503;
	}
	if (!auth_backend_ready(px->auth)) {
		*body = "connectors not loaded yet\n";
		return 503;
	}
	*body = "ok\n";
	return 200;
}

static void admin_close(struct admin_conn *c)
{
	struct admin *a = c->a;

	if (c->prev)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->n_conns--;
	bufferevent_free(c->bev);
	free(c);
	if (a->listener) {
		accept_guard_set_full(&a->guard, a->n_conns >= ADMIN_MAX_CONNS);
		accept_guard_slot_freed(&a->guard);
	}
}

static void admin_metrics(struct admin_conn *c, const struct http1_request *req,
			  const struct respond_opts *o)
{
	struct evbuffer *body = evbuffer_new();

	metrics_render(c->a->px, body);
	size_t n = evbuffer_get_length(body);
	respond_body(bufferevent_get_output(c->bev), 200, "text/plain; version=0.0.4; charset=utf-8",
		     (const char *)evbuffer_pullup(body, -1), n, o);
	evbuffer_free(body);
	(void)req;
}

static void admin_answer(struct admin_conn *c, const struct http1_request *req)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct respond_opts o = { .head = req->method == HTTP_M_HEAD, .close = true };
	const char *body;
	int st;

	if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD) {
		respond_body(out, 405, "text/plain", "GET only\n", 9, &o);
		return;
	}
	if (og_str_eq(req->target, "/metrics")) {
		admin_metrics(c, req, &o);
		return;
	}
	st = admin_health(c->a->px, req->target, &body);
	if (st)
		respond_body(out, st, "text/plain", body, strlen(body), &o);
	else
		respond_body(out, 404, "text/plain", "not found: try /metrics, /healthz, /readyz\n",
			     43, &o);
}

static void admin_on_read(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;
	struct proxy *px = c->a->px;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct http1_request req = { .headers = px->scratch_headers };
	enum http1_error err = HTTP1_E_NONE;
	size_t n = OG_MIN(evbuffer_get_length(in), px->req_limits.max_head_bytes);
	const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	ssize_t r;

	if (c->answered)
		return;
	r = http1_parse_request(p, n, &px->req_limits, &req, &err);
	if (r == 0 && n < px->req_limits.max_head_bytes)
		return;
	c->answered = true;
	bufferevent_disable(bev, EV_READ);
	if (r <= 0) {
		struct respond_opts o = { .close = true };
		respond_body(bufferevent_get_output(bev), 400, "text/plain", "bad request\n", 12, &o);
		return;
	}
	admin_answer(c, &req);
}

static void admin_on_write(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;

	if (c->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		admin_close(c);
}

static void admin_on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	admin_close(arg);
}

static void admin_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
			    int len, void *arg)
{
	struct admin *a = arg;
	struct admin_conn *c = x_new(struct admin_conn);
	struct timeval tv = { .tv_sec = ADMIN_TIMEOUT_S };

	(void)addr;
	(void)len;
	c->a = a;
	c->bev = bufferevent_socket_new(a->px->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->next = a->conns;
	if (a->conns)
		a->conns->prev = c;
	a->conns = c;
	(void)l;
	if (++a->n_conns >= ADMIN_MAX_CONNS)
		accept_guard_set_full(&a->guard, true);
	bufferevent_setcb(c->bev, admin_on_read, admin_on_write, admin_on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void admin_on_accept_error(struct evconnlistener *l, void *arg)
{
	struct admin *a = arg;

	(void)l;
	accept_guard_on_error(&a->guard, EVUTIL_SOCKET_ERROR());
}

int admin_start(struct proxy *px)
{
	struct admin *a;

	if (!config_address_set(&px->cfg->server.admin_listen))
		return 0;
	a = x_new(struct admin);
	a->px = px;
	a->listener = listen_bind(px->base, &px->cfg->server.admin_listen, "admin",
				  admin_on_accept, a, a->text, sizeof(a->text));
	if (!a->listener) {
		free(a);
		return -1;
	}
	evconnlistener_set_error_cb(a->listener, admin_on_accept_error);
	accept_guard_init(&a->guard, px->base, a->listener, "admin");
	px->admin = a;
	log_info("listening", "listener=admin addr=%s paths=/metrics,/healthz,/readyz", a->text);
	return 0;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	accept_guard_free(&a->guard);
	if (a->listener)
		evconnlistener_free(a->listener);
	a->listener = NULL;
	while (a->conns)
		admin_close(a->conns);
	free(a);
}
