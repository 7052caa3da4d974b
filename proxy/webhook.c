/* The admission webhook's HTTPS server: see webhook.h. */
#include "proxy/webhook.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "k8s/api.h"
#include "k8s/runtime.h"
#include "k8s/store.h"
#include "proxy/accept_guard.h"
#include "proxy/proxy.h"
#include "util/config.h"
#include "util/http1.h"
#include "util/http1_buf.h"
#include "util/log.h"
#include "util/tls_server.h"
#include "util/xalloc.h"

#define WH_MAX_HEAD 16384
#define WH_MAX_HEADERS 64
#define WH_MAX_CONNS 512
#define WH_CERT_CHECK_MS 2000
/* After a closing answer, how long the rest of the request is read and
 * dropped: closing with unread bytes would reset the connection before the
 * peer reads the answer. */
#define WH_LINGER_MS 1000
/* Answers queued for a peer beyond which no further request is read until
 * it takes them (a peer that pipelines without reading). */
#define WH_MAX_OUTPUT (64 * 1024)

struct wh_conn;

struct webhook {
	struct event_base *base;
	struct webhook_opts o;
	char *listen_host, *cert_file, *key_file, *public_address;
	struct evconnlistener *listener;
	struct accept_guard accept_guard;
	uint16_t port;
	struct tls_server tls;
	struct event *cert_timer;
	struct wh_conn *conns;
	size_t n_conns;
	uint64_t next_id;
	/* Lookups backed by the proxy (webhook_start). */
	struct proxy *px;
	char scratch_host[256], scratch_class[64], scratch_invalid[512];
};

/* CLOSING: the last answer is being sent; LINGER: it was, input is
 * dropped until the peer closes or WH_LINGER_MS pass. */
enum wh_state { WH_HEAD, WH_BODY, WH_CLOSING, WH_LINGER };

struct wh_conn {
	struct webhook *w;
	struct wh_conn *prev, *next;
	uint64_t id;
	struct bufferevent *bev;
	struct event *timer;
	enum wh_state state;
	bool in_request;   /* the timer is the request deadline, not the idle one */
	bool got_bytes;    /* some of the current request arrived */
	bool keep_alive;
	bool chunked;
	bool out_paused;   /* reading stopped until the peer takes its answers */
	uint64_t body_left; /* Content-Length bodies */
	struct http1_chunked dec;
	struct evbuffer *body;
};

/* ---- certificates ---- */

/* Connections already open keep the context they started with (each SSL
 * holds a reference), so the old one can go at once. */
static void wh_check_cert(evutil_socket_t fd, short what, void *arg)
{
	struct webhook *w = arg;
	char err[512];

	(void)fd;
	(void)what;
	switch (tls_server_reload(&w->tls, NULL, NULL, false, err, sizeof(err))) {
	case TLS_SERVER_RELOADED:
		log_info("webhook_cert_reloaded", "cert_file=%s", w->cert_file);
		break;
	case TLS_SERVER_FAILED:
		log_warn("webhook_cert_reload_failed", "reason=\"%s\" keeping=previous", err);
		break;
	case TLS_SERVER_UNCHANGED:
	case TLS_SERVER_FAILED_AGAIN:
		break;
	}
}

/* ---- connections ---- */

static void wh_ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static void wh_arm(struct wh_conn *c, uint64_t ms)
{
	struct timeval tv;

	wh_ms_to_tv(ms, &tv);
	evtimer_add(c->timer, &tv);
}

/* Frees the connection: callers return right after. */
static void wh_close(struct wh_conn *c, const char *reason)
{
	struct webhook *w = c->w;

	log_debug("webhook_close", "conn=%llu reason=%s", (unsigned long long)c->id, reason);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_conns--;
	accept_guard_slot_freed(&w->accept_guard);
	event_free(c->timer);
	bufferevent_free(c->bev);
	evbuffer_free(c->body);
	free(c);
}

static void wh_respond(struct wh_conn *c, int status, const char *type, const void *body,
		       size_t len, bool close)
{
	static const struct {
		int status;
		const char *text;
	} reasons[] = {
		{ 200, "OK" }, { 400, "Bad Request" }, { 404, "Not Found" },
		{ 405, "Method Not Allowed" }, { 408, "Request Timeout" },
		{ 413, "Content Too Large" }, { 415, "Unsupported Media Type" },
		{ 431, "Request Header Fields Too Large" }, { 501, "Not Implemented" },
		{ 505, "HTTP Version Not Supported" },
	};
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const char *reason = "Error";

	for (size_t i = 0; i < OG_ARRAY_LEN(reasons); i++)
		if (reasons[i].status == status)
			reason = reasons[i].text;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
			    status, reason, type, len, close ? "Connection: close\r\n" : "");
	evbuffer_add(out, body, len);
	if (close) {
		c->state = WH_CLOSING;
		evtimer_del(c->timer);
	}
}

/* An error answer, after which the connection closes: the rest of the
 * request is not read. */
static void wh_fail(struct wh_conn *c, int status, const char *msg)
{
	char body[512];
	int n = snprintf(body, sizeof(body), "%s\n", msg);

	log_info("webhook_request_refused", "conn=%llu status=%d reason=\"%s\"",
		 (unsigned long long)c->id, status, msg);
	wh_respond(c, status, "text/plain; charset=utf-8", body,
		   (size_t)OG_MIN(n, (int)sizeof(body) - 1), true);
}

static bool wh_is_json(const struct http1_request *req)
{
	const struct http1_header *h = http1_find_header(req->headers, req->n_headers,
							 "Content-Type");
	static const char json[] = "application/json";
	size_t n = sizeof(json) - 1;

	return h && h->value.n >= n && strncasecmp(h->value.p, json, n) == 0 &&
	       (h->value.n == n || h->value.p[n] == ';' || h->value.p[n] == ' ');
}

/* The path without the query (the API server adds ?timeout=10s). */
static bool wh_path_is(struct og_str target, const char *path)
{
	const char *q = memchr(target.p, '?', target.n);
	size_t n = q ? (size_t)(q - target.p) : target.n;

	return og_str_eq(og_str_make(target.p, n), path);
}

static void wh_log_review(struct wh_conn *c, const struct k8s_admission_result *res)
{
	char uid[160], msg[600];

	log_quote(uid, sizeof(uid), res->uid, strlen(res->uid));
	log_quote(msg, sizeof(msg), res->message, strlen(res->message));
	if (!res->opted_in) {
		log_debug("admission", "conn=%llu uid=%s allowed=yes opted_in=no",
			  (unsigned long long)c->id, uid);
		return;
	}
	log_info("admission", "conn=%llu uid=%s allowed=%s images_rewritten=%u%s%s",
		 (unsigned long long)c->id, uid, res->allowed ? "yes" : "no", res->patched,
		 res->allowed ? "" : " message=", res->allowed ? "" : msg);
}

static void wh_review(struct wh_conn *c)
{
	struct webhook *w = c->w;
	struct k8s_admission_opts ao = {
		.inject = w->o.inject, .public_address = w->public_address,
		.lookup = w->o.lookup, .lookup_ctx = w->o.lookup_ctx,
	};
	struct k8s_admission_result res;
	struct evbuffer *resp = evbuffer_new();
	size_t len = evbuffer_get_length(c->body);
	const char *text = (const char *)evbuffer_pullup(c->body, -1);
	char err[512];

	if (k8s_admission_review(text ? text : "", len, &ao, resp, &res, err, sizeof(err)) != 0) {
		wh_fail(c, 400, err);
	} else {
		size_t n = evbuffer_get_length(resp);

		wh_log_review(c, &res);
		wh_respond(c, 200, "application/json", evbuffer_pullup(resp, -1), n, !c->keep_alive);
	}
	evbuffer_free(resp);
	evbuffer_drain(c->body, len);
	if (c->state != WH_CLOSING) {
		c->state = WH_HEAD;
		c->in_request = c->got_bytes = false;
		wh_arm(c, w->o.idle_timeout_ms);
	}
}

/* A complete head: decides what happens to the request. Returns -1 when
 * the connection is closing. */
static int wh_on_head(struct wh_conn *c, const struct http1_request *req)
{
	struct webhook *w = c->w;

	c->keep_alive = req->keep_alive;
	if (req->method == HTTP_M_GET && wh_path_is(req->target, "/healthz") &&
	    req->body == HTTP1_BODY_NONE) {
		wh_respond(c, 200, "text/plain; charset=utf-8", "ok\n", 3, !c->keep_alive);
		c->in_request = c->got_bytes = false;
		if (c->state != WH_CLOSING)
			wh_arm(c, w->o.idle_timeout_ms);
		return c->state == WH_CLOSING ? -1 : 0;
	}
	if (!wh_path_is(req->target, "/mutate")) {
		wh_fail(c, 404, "unknown path: the webhook serves POST /mutate");
		return -1;
	}
	if (req->method != HTTP_M_POST) {
		wh_fail(c, 405, "POST /mutate takes an AdmissionReview");
		return -1;
	}
	if (!wh_is_json(req)) {
		wh_fail(c, 415, "Content-Type must be application/json");
		return -1;
	}
	if (req->body == HTTP1_BODY_NONE) {
		wh_fail(c, 400, "an AdmissionReview body is required");
		return -1;
	}
	if (req->body == HTTP1_BODY_LENGTH && req->content_length > w->o.max_body) {
		wh_fail(c, 413, "the AdmissionReview is larger than [webhook] max_body");
		return -1;
	}
	if (req->expect_continue)
		evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	c->chunked = req->body == HTTP1_BODY_CHUNKED;
	c->body_left = req->content_length;
	http1_chunked_init(&c->dec);
	c->state = WH_BODY;
	return 0;
}

/* Returns 1 when a head was consumed, 0 when more bytes are needed, -1
 * when the connection is closing. */
static int wh_read_head(struct wh_conn *c, struct evbuffer *in)
{
	struct http1_header headers[WH_MAX_HEADERS];
	struct http1_request req = { .headers = headers };
	const struct http1_limits limits = { WH_MAX_HEAD, WH_MAX_HEADERS };
	size_t n = OG_MIN(evbuffer_get_length(in), (size_t)WH_MAX_HEAD);
	enum http1_error herr = HTTP1_E_NONE;
	const char *p;
	ssize_t r;
	int rc;

	if (!n)
		return 0;
	c->got_bytes = true;
	if (!c->in_request) {
		c->in_request = true;
		wh_arm(c, c->w->o.header_timeout_ms);
	}
	p = (const char *)evbuffer_pullup(in, (ssize_t)n);
	r = http1_parse_request(p, n, &limits, &req, &herr);
	if (r == 0)
		return 0;
	if (r < 0) {
		wh_fail(c, http1_error_status(herr), http1_error_str(herr));
		return -1;
	}
	rc = wh_on_head(c, &req); /* before the drain: req points into the buffer */
	evbuffer_drain(in, (size_t)r);
	return rc < 0 ? -1 : 1;
}

/* Returns 1 when the body is complete, 0 when more is needed, -1 when the
 * connection is closing. */
static int wh_read_body(struct wh_conn *c, struct evbuffer *in)
{
	size_t max = c->w->o.max_body;
	uint64_t moved = 0;
	int r;

	if (!c->chunked) {
		size_t take = (size_t)OG_MIN((uint64_t)evbuffer_get_length(in), c->body_left);

		evbuffer_remove_buffer(in, c->body, take);
		c->body_left -= take;
		return c->body_left == 0;
	}
	r = http1_buf_dechunk(&c->dec, in, c->body, false, &moved);
	if (r < 0) {
		wh_fail(c, 400, "bad chunked framing");
		return -1;
	}
	if (evbuffer_get_length(c->body) > max) {
		wh_fail(c, 413, "the AdmissionReview is larger than [webhook] max_body");
		return -1;
	}
	return r;
}

static bool wh_output_backlogged(struct wh_conn *c)
{
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) <= WH_MAX_OUTPUT)
		return false;
	c->out_paused = true;
	bufferevent_disable(c->bev, EV_READ);
	return true;
}

static void wh_on_read(struct bufferevent *bev, void *arg)
{
	struct wh_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	int r = 1;

	if (c->state == WH_CLOSING || c->state == WH_LINGER) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while (r > 0 && c->state != WH_CLOSING && !wh_output_backlogged(c)) {
		if (c->state == WH_HEAD) {
			r = wh_read_head(c, in);
		} else {
			r = wh_read_body(c, in);
			if (r > 0)
				wh_review(c);
		}
	}
}

static void wh_on_write(struct bufferevent *bev, void *arg)
{
	struct wh_conn *c = arg;

	if (c->out_paused) {
		c->out_paused = false;
		bufferevent_enable(bev, EV_READ);
		wh_on_read(bev, c);
		return;
	}
	if (c->state != WH_CLOSING)
		return;
	c->state = WH_LINGER;
	wh_arm(c, WH_LINGER_MS);
}

static void wh_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct wh_conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	wh_close(c, (what & BEV_EVENT_TIMEOUT) ? "send_timeout" :
		    (what & BEV_EVENT_EOF) ? "peer_closed" : "tls_or_socket_error");
}

static void wh_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct wh_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == WH_LINGER) {
		wh_close(c, "done");
		return;
	}
	if (!c->in_request) {
		wh_close(c, "idle_timeout");
		return;
	}
	if (!c->got_bytes) {
		wh_close(c, "handshake_or_request_timeout");
		return;
	}
	/* Mid-request: say so before closing (send_timeout bounds the send). */
	wh_fail(c, 408, "the request did not arrive in time");
}

static void wh_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
			 int len, void *arg)
{
	struct webhook *w = arg;
	struct wh_conn *c;
	struct timeval tv;
	SSL *ssl;

	(void)l;
	(void)addr;
	(void)len;
	if (w->n_conns >= WH_MAX_CONNS || !(ssl = SSL_new(w->tls.ctx))) {
		log_warn("webhook_refused", "reason=%s", w->n_conns >= WH_MAX_CONNS ?
			 "too_many_connections" : "tls");
		evutil_closesocket(fd);
		return;
	}
	c = x_new(struct wh_conn);
	c->w = w;
	c->id = ++w->next_id;
	c->bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	c->timer = evtimer_new(w->base, wh_on_timer, c);
	c->body = evbuffer_new();
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
	/* The handshake and the first request share the request deadline. */
	c->in_request = true;
	wh_arm(c, w->o.header_timeout_ms);
	wh_ms_to_tv(w->o.send_timeout_ms, &tv);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	bufferevent_setcb(c->bev, wh_on_read, wh_on_write, wh_on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- the listener ---- */

static void wh_on_accept_error(struct evconnlistener *l, void *arg)
{
	struct webhook *w = arg;

	(void)l;
	accept_guard_on_error(&w->accept_guard, EVUTIL_SOCKET_ERROR());
}

static int wh_listen(struct webhook *w, char *err, size_t cap)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", (unsigned)w->o.listen_port);
	rc = getaddrinfo(*w->listen_host ? w->listen_host : NULL, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, cap, "[webhook] listen %s: %s", w->listen_host, gai_strerror(rc));
		return -1;
	}
	w->listener = evconnlistener_new_bind(w->base, wh_on_accept, w,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
					      LEV_OPT_CLOSE_ON_EXEC, 128, res->ai_addr,
					      (int)res->ai_addrlen);
	freeaddrinfo(res);
	if (!w->listener) {
		snprintf(err, cap, "[webhook] listen %s:%s: %s", w->listen_host, port,
			 strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(w->listener, wh_on_accept_error);
	accept_guard_init(&w->accept_guard, w->base, w->listener, "webhook");
	if (getsockname(evconnlistener_get_fd(w->listener), (struct sockaddr *)&ss, &sl) == 0)
		w->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
				((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

struct webhook *webhook_new(struct event_base *base, const struct webhook_opts *o, char *err,
			    size_t err_cap)
{
	struct webhook *w = x_new(struct webhook);
	struct timeval tv;

	w->base = base;
	w->o = *o;
	w->listen_host = x_strdup(o->listen_host ? o->listen_host : "");
	w->cert_file = x_strdup(o->cert_file);
	w->key_file = x_strdup(o->key_file);
	w->public_address = x_strdup(o->public_address);
	if (!w->o.cert_check_ms)
		w->o.cert_check_ms = WH_CERT_CHECK_MS;
	if (tls_server_init(&w->tls, w->cert_file, w->key_file, false, err, err_cap) != 0 ||
	    wh_listen(w, err, err_cap) != 0) {
		webhook_free(w);
		return NULL;
	}
	w->cert_timer = event_new(base, -1, EV_PERSIST, wh_check_cert, w);
	wh_ms_to_tv(w->o.cert_check_ms, &tv);
	event_add(w->cert_timer, &tv);
	log_info("webhook_listening", "address=%s%s%s:%u inject=%s", strchr(w->listen_host, ':') ?
		 "[" : "", w->listen_host, strchr(w->listen_host, ':') ? "]" : "",
		 (unsigned)w->port, w->o.inject ? "yes" : "no");
	return w;
}

void webhook_free(struct webhook *w)
{
	if (!w)
		return;
	while (w->conns)
		wh_close(w->conns, "shutdown");
	accept_guard_free(&w->accept_guard);
	if (w->listener)
		evconnlistener_free(w->listener);
	if (w->cert_timer)
		event_free(w->cert_timer);
	tls_server_free(&w->tls);
	free(w->listen_host);
	free(w->cert_file);
	free(w->key_file);
	free(w->public_address);
	free(w);
}

uint16_t webhook_port(const struct webhook *w)
{
	return w->port;
}

/* ---- connectors for the review ---- */

static void wh_copy(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* Standalone mode: every [connector] is an oci one. */
static void wh_lookup_config(void *ctx, const char *ns, const char *name,
			     struct k8s_admission_connector *out)
{
	struct webhook *w = ctx;
	const struct config_connector *c = config_find_connector(w->px->cfg, ns, name);

	memset(out, 0, sizeof(*out));
	out->found = c ? K8S_ADMISSION_FOUND : K8S_ADMISSION_MISSING;
	if (!c)
		return;
	out->class_name = "oci";
	out->https = c->address.https;
	wh_copy(w->scratch_host, sizeof(w->scratch_host), c->address.host);
	out->host = w->scratch_host;
	out->port = c->address.port;
}

/* The address of an oci connector: the built connector has it unless it
 * is unavailable (a Secret missing, say), and then its text does. */
static void wh_store_address(struct webhook *w, struct k8s_store *s, const char *ns,
			     const char *name, struct k8s_admission_connector *out)
{
	struct connector *c = k8s_store_find_connector(s, og_str_make(ns, strlen(ns)),
						       og_str_make(name, strlen(name)));
	struct url_base u;
	char err[256];

	if (c && c->host && *c->host) {
		wh_copy(w->scratch_host, sizeof(w->scratch_host), c->host);
		out->https = c->https;
		out->port = c->port;
	} else if (c && c->address && *c->address &&
		   url_base_parse(&u, c->address, strlen(c->address), err, sizeof(err)) == 0) {
		wh_copy(w->scratch_host, sizeof(w->scratch_host), u.host);
		out->https = u.https;
		out->port = u.port;
		url_base_free(&u);
	} else {
		wh_copy(w->scratch_invalid, sizeof(w->scratch_invalid),
			c && c->unavailable ? c->unavailable : "spec.address is not usable");
		out->invalid = w->scratch_invalid;
	}
	out->host = w->scratch_host;
	if (c)
		connector_unref(c);
}

static void wh_lookup_store(void *ctx, const char *ns, const char *name,
			    struct k8s_admission_connector *out)
{
	struct webhook *w = ctx;
	struct k8s_store *s = w->px->k8s ? w->px->k8s->store : NULL;
	struct k8s_store_connector_info ci;

	memset(out, 0, sizeof(*out));
	w->scratch_host[0] = w->scratch_class[0] = w->scratch_invalid[0] = '\0';
	if (!s || !k8s_store_synced(s)) {
		out->found = K8S_ADMISSION_NOT_LOADED;
		return;
	}
	if (k8s_store_connector_info(s, ns, name, &ci) != 0) {
		out->found = K8S_ADMISSION_MISSING;
		return;
	}
	out->found = K8S_ADMISSION_FOUND;
	if (ci.class_name) {
		wh_copy(w->scratch_class, sizeof(w->scratch_class), ci.class_name);
		out->class_name = w->scratch_class;
	}
	if (!ci.class_name || strcmp(ci.class_name, "oci") != 0)
		return;
	if (ci.problem == K8S_STORE_INVALID) {
		wh_copy(w->scratch_invalid, sizeof(w->scratch_invalid),
			ci.message ? ci.message : "its spec cannot be used");
		out->invalid = w->scratch_invalid;
		return;
	}
	wh_store_address(w, s, ns, name, out);
}

struct webhook *webhook_start(struct proxy *px, char *err, size_t err_cap)
{
	const struct config *cfg = px->cfg;
	struct webhook_opts o = {
		.listen_host = cfg->webhook.listen.host,
		.listen_port = cfg->webhook.listen.port,
		.cert_file = cfg->webhook.cert_file,
		.key_file = cfg->webhook.key_file,
		.inject = cfg->webhook.inject,
		.public_address = cfg->server.public_address,
		.max_body = cfg->webhook.max_body,
		.header_timeout_ms = cfg->server.header_timeout_ms,
		.idle_timeout_ms = cfg->server.idle_timeout_ms,
		.send_timeout_ms = cfg->server.send_timeout_ms,
		.lookup = cfg->kubernetes.enabled ? wh_lookup_store : wh_lookup_config,
	};
	struct webhook *w;

	if (err_cap)
		err[0] = '\0';
	if (!cfg->webhook.enabled)
		return NULL;
	w = webhook_new(px->base, &o, err, err_cap);
	if (!w)
		return NULL;
	w->px = px;
	w->o.lookup_ctx = w;
	return w;
}
