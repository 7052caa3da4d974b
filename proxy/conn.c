#include "proxy/conn.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "auth/credentials.h"
#include "proxy/admin.h"
#include "proxy/conn_priv.h"
#include "proxy/metrics.h"
#include "proxy/respond.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Longest decoded Basic credential we accept (the token limit plus a user). */
#define CONN_CRED_BUF 8448

static const char *const conn_state_names[CONN_N_STATES] = {
	"read_head", "auth", "upstream_auth", "upstream_connect", "request_body", "upstream_head",
	"stream_body", "closing", "closed",
};

#define S(x) (1u << (x))
static const unsigned conn_transitions[CONN_N_STATES] = {
	[CONN_READ_HEAD] = S(CONN_AUTH) | S(CONN_READ_HEAD) | S(CONN_CLOSING) | S(CONN_CLOSED),
	[CONN_AUTH] = S(CONN_UPSTREAM_AUTH) | S(CONN_UPSTREAM_CONNECT) | S(CONN_REQUEST_BODY) |
		      S(CONN_UPSTREAM_HEAD) | S(CONN_READ_HEAD) | S(CONN_CLOSING) | S(CONN_CLOSED),
	[CONN_UPSTREAM_AUTH] = S(CONN_UPSTREAM_AUTH) | S(CONN_UPSTREAM_CONNECT) |
			       S(CONN_REQUEST_BODY) | S(CONN_UPSTREAM_HEAD) | S(CONN_READ_HEAD) |
			       S(CONN_CLOSING) | S(CONN_CLOSED),
	[CONN_UPSTREAM_CONNECT] = S(CONN_REQUEST_BODY) | S(CONN_UPSTREAM_HEAD) | S(CONN_READ_HEAD) |
				  S(CONN_CLOSING) | S(CONN_CLOSED),
	[CONN_REQUEST_BODY] = S(CONN_UPSTREAM_HEAD) | S(CONN_STREAM_BODY) | S(CONN_UPSTREAM_CONNECT) |
			      S(CONN_READ_HEAD) | S(CONN_CLOSING) | S(CONN_CLOSED),
	[CONN_UPSTREAM_HEAD] = S(CONN_STREAM_BODY) | S(CONN_UPSTREAM_AUTH) | S(CONN_UPSTREAM_CONNECT) |
			       S(CONN_UPSTREAM_HEAD) | S(CONN_READ_HEAD) | S(CONN_CLOSING) |
			       S(CONN_CLOSED),
	[CONN_STREAM_BODY] = S(CONN_READ_HEAD) | S(CONN_CLOSING) | S(CONN_CLOSED),
	[CONN_CLOSING] = S(CONN_CLOSED),
	[CONN_CLOSED] = 0,
};
#undef S

const char *conn_state_name(enum conn_state s)
{
	return s < CONN_N_STATES ? conn_state_names[s] : "invalid";
}

bool conn_transition_allowed(enum conn_state from, enum conn_state to)
{
	return from < CONN_N_STATES && to < CONN_N_STATES && (conn_transitions[from] & (1u << to));
}

void conn_set_state(struct conn *c, enum conn_state to)
{
	assert(conn_transition_allowed(c->state, to));
	c->state = to;
}

double conn_ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

struct evbuffer *conn_out(struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

/* ---- lifetime ---------------------------------------------------------- */

static void conn_end_request(struct conn *c)
{
	if (c->pending) {
		c->px->auth->ops->cancel(c->px->auth, c->pending);
		c->pending = NULL;
	}
	exchange_end(c);
	connector_unref(c->connector);
	c->connector = NULL;
	auth_identity_unref(c->identity);
	c->identity = NULL;
	free(c->head);
	c->head = NULL;
}

void conn_link(struct conn *c)
{
	struct proxy *px = c->px;

	c->next = px->conns;
	if (px->conns)
		px->conns->prev = c;
	px->conns = c;
}

static void conn_unlink(struct conn *c)
{
	struct proxy *px = c->px;

	if (c->prev)
		c->prev->next = c->next;
	else
		px->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

/* Detaches c from the loop and the list, and leaves the memory to the
 * reaper so callers up the stack stay safe. */
void conn_retire(struct conn *c)
{
	struct proxy *px = c->px;

	conn_set_state(c, CONN_CLOSED);
	conn_io_stop(c);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	evtimer_del(c->timer);
	conn_unlink(c);
	c->reap_next = px->reap_list;
	px->reap_list = c;
	event_active(px->reap_ev, EV_TIMEOUT, 0);
}

void conn_log_close(uint64_t id, const char *peer, const char *state, const char *reason,
			   unsigned requests, const struct timespec *accepted_at)
{
	log_debug("conn_close", "conn=%" PRIu64 " peer=%s state=%s reason=%s requests=%u age_ms=%.0f",
		  id, peer, state, reason, requests, conn_ms_since(accepted_at));
}

static void conn_log_access(struct conn *c, const char *aborted);
static void conn_count_request(struct conn *c, const char *aborted);

/* Every close goes through here (or, parked, through park.c): it logs
 * why and retires the connection. */
void conn_close(struct conn *c, const char *reason)
{
	if (c->state == CONN_CLOSED)
		return;
	conn_log_close(c->id, c->peer, conn_state_name(c->state), reason, c->n_requests,
		       &c->accepted_at);
	if (c->head) { /* a request cut short has its line and its count too */
		conn_log_access(c, reason);
		conn_count_request(c, reason);
	}
	conn_end_request(c);
	conn_retire(c);
	c->px->n_conns--;
}

void conn_reap(struct proxy *px)
{
	while (px->reap_list) {
		struct conn *c = px->reap_list;
		bool closed = !c->parked; /* a parked one lives on in park.c */
		px->reap_list = c->reap_next;
		bufferevent_free(c->bev);
		event_free(c->timer);
		cred_memo_free(c->auth_memo);
		free(c);
		if (closed)
			proxy_conn_gone(px);
	}
}

static void conn_start_closing(struct conn *c)
{
	conn_set_state(c, CONN_CLOSING);
	conn_read_off(c);
	evtimer_del(c->timer);
	if (evbuffer_get_length(conn_out(c)) == 0)
		conn_close(c, "done");
}

/* ---- finishing a request ----------------------------------------------- */

/* aborted: why a request ended without its whole response (the close
 * reason); its status is what went out, or 499 when nothing did (as
 * nginx logs a request its client gave up on). */
static int conn_status_sent(const struct conn *c, const char *aborted)
{
	return aborted && !c->status ? 499 : c->status;
}

/* A body cut mid-splice has not counted what the pipe moved yet. */
static uint64_t conn_body_sent(const struct conn *c)
{
	return c->body_bytes + (c->ex.splice ? splice_relay_moved(c->ex.splice) : 0);
}

static void conn_count_request(struct conn *c, const char *aborted)
{
	metrics_request_done(c->connector, c->head ? c->req.method : HTTP_M_OTHER,
			     conn_status_sent(c, aborted), conn_body_sent(c),
			     c->head ? conn_ms_since(&c->req_start) / 1e3 : 0.0);
}

static void conn_log_access(struct conn *c, const char *aborted)
{
	const char *who = c->identity ? c->identity->user : "-";
	struct log_line l;

	if (!c->px->cfg->log.access_log || !log_enabled(LOG_INFO))
		return;
	log_line_begin(&l, LOG_INFO, "access");
	log_line_u64(&l, "conn", c->id);
	log_line_str(&l, "peer", c->peer);
	log_line_str(&l, "method", c->head ? http1_method_name(c->req.method) : "-");
	if (c->head)
		log_line_quoted(&l, "path", c->req.target.p, c->req.target.n, 512);
	else
		log_line_str(&l, "path", "-");
	log_line_u64(&l, "status", (uint64_t)conn_status_sent(c, aborted));
	log_line_u64(&l, "bytes", conn_body_sent(c));
	log_line_tenths(&l, "ms", c->head ? conn_ms_since(&c->req_start) : 0.0);
	log_line_str(&l, "connector", c->connector ? c->connector->id : "-");
	/* TokenReview user names may hold quotes, spaces or newlines. */
	log_line_quoted(&l, "user", who, strlen(who), 300);
	if (aborted)
		log_line_str(&l, "aborted", aborted);
	log_line_end(&l);
}

/* The response is complete in the client's output buffer: log it, end the
 * request (exchange_end) and wait for the next request or close. */
void conn_finish_response(struct conn *c)
{
	conn_count_request(c, NULL);
	/* A client that has its response finds its line: the line is held
	 * (proxy.c) and the flush event writes it before the response. A
	 * body that went out directly (splice) has its line now. */
	conn_log_access(c, NULL);
	if (evbuffer_get_length(conn_out(c)) == 0)
		log_flush();
	conn_end_request(c);
	if (!c->keep_alive) {
		conn_start_closing(c);
		return;
	}
	conn_set_state(c, CONN_READ_HEAD);
	conn_process(c);
}

/* Answering without reading a request body leaves it in the stream: the
 * connection cannot carry another request. */
static void conn_drop_unread_body(struct conn *c)
{
	if (c->head && conn_has_body(&c->req) && !c->ex.req_body_done)
		c->keep_alive = false;
}

void conn_respond_error(struct conn *c, int status, const char *code, const char *message)
{
	struct respond_opts o = {
		.head = c->head && c->req.method == HTTP_M_HEAD,
		.close = !c->keep_alive,
		.realm = status == 401 ? c->px->cfg->auth.realm : NULL,
		.retry_after = status == 503 ? 5 : 0,
	};

	conn_drop_unread_body(c);
	o.close = !c->keep_alive;
	c->status = status;
	c->body_bytes = respond_error(conn_out(c), status, code, message,
				      c->connector ? c->connector->id : NULL, &o);
	conn_finish_response(c);
}

static void conn_respond_plain(struct conn *c, int status, const char *ctype, const char *body)
{
	struct respond_opts o = {
		.head = c->req.method == HTTP_M_HEAD,
		.close = !c->keep_alive,
	};

	c->status = status;
	c->body_bytes = respond_body(conn_out(c), status, ctype, body, strlen(body), &o);
	conn_finish_response(c);
}

/* ---- reading a request ------------------------------------------------- */

static struct og_str conn_rebase(struct og_str s, const char *from, char *to)
{
	return og_str_make(s.p ? to + (s.p - from) : NULL, s.n);
}

/* Copies a parsed head out of the input buffer (the header array lives in
 * the same allocation) so the buffer can be drained. */
static void conn_store_request(struct conn *c, const char *p, size_t n, const struct http1_request *req)
{
	size_t hdr_off = (n + 15) & ~(size_t)15;
	char *block = x_malloc(hdr_off + req->n_headers * sizeof(struct http1_header) + 1);
	struct http1_header *hdrs = (struct http1_header *)(void *)(block + hdr_off);

	memcpy(block, p, n);
	for (size_t i = 0; i < req->n_headers; i++) {
		hdrs[i].name = conn_rebase(req->headers[i].name, p, block);
		hdrs[i].value = conn_rebase(req->headers[i].value, p, block);
	}
	c->head = block;
	c->req = *req;
	c->req.headers = hdrs;
	c->req.method_str = conn_rebase(req->method_str, p, block);
	c->req.target = conn_rebase(req->target, p, block);
}

static void conn_reject_head(struct conn *c, enum http1_error err)
{
	char msg[128];
	int status = http1_error_status(err);

	log_info("bad_request", "conn=%" PRIu64 " peer=%s reason=%s", c->id, c->peer,
		 http1_error_str(err));
	snprintf(msg, sizeof(msg), "malformed HTTP request: %s", http1_error_str(err));
	c->keep_alive = false;
	conn_respond_error(c, status, status == 431 ? "SIZE_INVALID" : "UNSUPPORTED", msg);
}

/* Returns true when a complete request head was parsed and stored. */
static bool conn_read_request(struct conn *c)
{
	struct proxy *px = c->px;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in);
	struct http1_request req = { .headers = px->scratch_headers };
	enum http1_error err = HTTP1_E_NONE;

	if (avail == 0) {
		conn_wait_idle(c);
		return false;
	}
	size_t n = OG_MIN(avail, px->req_limits.max_head_bytes);
	const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	ssize_t r = http1_parse_request(p, n, &px->req_limits, &req, &err);
	/* header_timeout runs from the read that brought a head's first
	 * bytes; a head that came whole (nearly all) never needs it. */
	if (r == 0) {
		if (c->timer_use != CONN_TIMER_HEAD) {
			c->timer_use = CONN_TIMER_HEAD;
			evtimer_add(c->timer, &px->header_timeout);
		}
		return false;
	}
	/* A pending idle wait stays: conn_timer ignores it while a request
	 * is in flight, and conn_wait_idle moves it on afterwards. */
	if (c->timer_use != CONN_TIMER_PARK) {
		evtimer_del(c->timer);
		c->timer_use = CONN_TIMER_IDLE;
	}
	clock_gettime(CLOCK_MONOTONIC, &c->req_start);
	c->status = 0;
	c->body_bytes = 0;
	if (r < 0) {
		conn_reject_head(c, err);
		return false;
	}
	conn_store_request(c, p, (size_t)r, &req);
	evbuffer_drain(in, (size_t)r);
	return true;
}

/* ---- authentication and authorization ---------------------------------- */

static void conn_on_authz(void *arg, const struct auth_decision *d)
{
	struct conn *c = arg;

	c->pending = NULL;
	switch (d->status) {
	case AUTH_OK:
		exchange_start(c);
		break;
	case AUTH_UNAVAILABLE:
		conn_respond_error(c, 503, "UNAVAILABLE",
				   d->message ? d->message : "authorization is temporarily unavailable");
		break;
	default:
		conn_respond_error(c, 403, "DENIED", d->message ? d->message : "access denied");
		break;
	}
}

static void conn_authorize(struct conn *c)
{
	struct auth_backend *b = c->px->auth;
	char msg[400];

	c->connector = b->ops->find_connector(b, c->route.ns, c->route.connector);
	if (!c->connector) {
		snprintf(msg, sizeof(msg), "connector %.*s/%.*s not found", (int)c->route.ns.n,
			 c->route.ns.p, (int)c->route.connector.n, c->route.connector.p);
		conn_respond_error(c, 404, "NAME_UNKNOWN", msg);
		return;
	}
	struct auth_pending *p = b->ops->authorize(b, c->identity, c->connector, c->verb,
						   conn_on_authz, c);
	if (p)
		c->pending = p;
}

static void conn_on_authn(void *arg, const struct auth_decision *d)
{
	struct conn *c = arg;

	c->pending = NULL;
	if (d->status == AUTH_INVALID) {
		conn_respond_error(c, 401, "UNAUTHORIZED", d->message ? d->message : "invalid token");
		return;
	}
	if (d->status != AUTH_OK) {
		conn_respond_error(c, 503, "UNAVAILABLE",
				   d->message ? d->message : "authentication is temporarily unavailable");
		return;
	}
	c->identity = auth_identity_ref(d->identity);
	if (c->route.kind == ROUTE_BASE) {
		conn_respond_plain(c, 200, "application/json", "{}");
		return;
	}
	conn_authorize(c);
}

static const char *conn_cred_message(enum cred_result r)
{
	switch (r) {
	case CRED_MISSING: return "authentication required";
	case CRED_UNSUPPORTED_SCHEME: return "unsupported authorization scheme: use Basic or Bearer";
	default: return "malformed Authorization header";
	}
}

static void conn_authenticate(struct conn *c)
{
	struct auth_backend *b = c->px->auth;
	const struct http1_header *h =
		http1_find_header(c->req.headers, c->req.n_headers, "Authorization");
	char buf[CONN_CRED_BUF];
	unsigned char sha[SHA256_DIGEST_LENGTH];
	struct og_str token = { 0 };
	enum cred_result r = CRED_MISSING;

	/* Decoding never writes more bytes than the header value has, so only
	 * those need wiping (the whole buffer would cost 8 KiB per request). */
	size_t used = h ? OG_MIN(sizeof(buf), h->value.n) : 0;

	if (h)
		r = cred_parse_remembered(&c->auth_memo, h->value, buf, sizeof(buf), &token, sha);
	if (r != CRED_OK) {
		OPENSSL_cleanse(buf, used);
		conn_respond_error(c, 401, "UNAUTHORIZED", conn_cred_message(r));
		return;
	}
	conn_set_state(c, CONN_AUTH);
	struct auth_pending *p = b->ops->authenticate(b, token, sha, conn_on_authn, c);
	OPENSSL_cleanse(buf, used);
	if (p)
		c->pending = p;
}

/* ---- dispatch ------------------------------------------------------------ */

bool conn_has_body(const struct http1_request *req)
{
	return req->body == HTTP1_BODY_CHUNKED ||
	       (req->body == HTTP1_BODY_LENGTH && req->content_length > 0);
}

static bool conn_handle_health(struct conn *c)
{
	const char *body;
	int st = admin_health(c->px, c->req.target, &body);

	if (st)
		conn_respond_plain(c, st, "text/plain", body);
	return st != 0;
}

/* Which methods each route takes, and whether they read or write. Returns
 * false for a method the route does not serve. */
static bool conn_route_method(const struct conn *c, enum auth_verb *verb)
{
	enum http_method m = c->req.method;
	bool read = m == HTTP_M_GET || m == HTTP_M_HEAD;

	*verb = read ? AUTH_VERB_PULL : AUTH_VERB_PUSH;
	switch (c->route.kind) {
	case ROUTE_BASE:
	case ROUTE_TAGS_LIST:
	case ROUTE_REFERRERS:
		return read;
	case ROUTE_MANIFEST:
		return read || m == HTTP_M_PUT || m == HTTP_M_DELETE;
	case ROUTE_BLOB:
		return read || m == HTTP_M_DELETE;
	case ROUTE_BLOB_UPLOAD:
		/* Even reading an upload's status is part of pushing. */
		*verb = AUTH_VERB_PUSH;
		if (c->route.ref.n == 0)
			return m == HTTP_M_POST;
		return m == HTTP_M_GET || m == HTTP_M_PATCH || m == HTTP_M_PUT || m == HTTP_M_DELETE;
	}
	return false;
}

static void conn_handle_request(struct conn *c)
{
	enum route_error re;

	c->n_requests++;
	c->px->stats.requests++;
	c->keep_alive = c->req.keep_alive && !c->px->shutting_down;
	if ((c->req.method == HTTP_M_GET || c->req.method == HTTP_M_HEAD) && conn_handle_health(c))
		return;
	re = route_parse(c->req.target.p, c->req.target.n, &c->route);
	if (re != ROUTE_OK) {
		conn_respond_error(c, route_error_status(re), route_error_code(re),
				   route_error_message(re));
		return;
	}
	if (!conn_route_method(c, &c->verb)) {
		conn_respond_error(c, 405, "UNSUPPORTED", "this method is not supported on this path");
		return;
	}
	if (conn_has_body(&c->req) && (c->req.method == HTTP_M_GET || c->req.method == HTTP_M_HEAD)) {
		conn_respond_error(c, 400, "UNSUPPORTED", "GET and HEAD requests must not have a body");
		return;
	}
	conn_authenticate(c);
}

/* ---- client backpressure and half-close ------------------------------- */

/* A client that sends requests without reading the responses would make
 * every response pile up here: past the low watermark, stop taking
 * requests (the kernel's buffers then push back on the client) until the
 * write callback says the client took bytes. */
static bool conn_output_backlogged(struct conn *c)
{
	if (evbuffer_get_length(conn_out(c)) <= c->out_low)
		return false;
	if (!c->out_paused) {
		c->out_paused = true;
		conn_read_off(c);
	}
	return true;
}

static void conn_resume_requests(struct conn *c)
{
	c->out_paused = false;
	conn_resume_read(c);
	conn_process(c);
}

/* After the client's EOF nothing more can arrive: the requests it sent are
 * answered; once none is left, flush and close. */
static void conn_close_after_eof(struct conn *c)
{
	bool partial = evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;

	if (evbuffer_get_length(conn_out(c)) == 0)
		conn_close(c, partial ? "client_closed_mid_request" : "client_closed");
	else
		conn_start_closing(c);
}

void conn_process(struct conn *c)
{
	if (c->in_process)
		return;
	c->in_process = true;
	while (c->state == CONN_READ_HEAD && !conn_output_backlogged(c) && conn_read_request(c))
		conn_handle_request(c);
	if (c->state == CONN_READ_HEAD && c->client_eof && !c->out_paused)
		conn_close_after_eof(c);
	c->in_process = false;
}

/* EOF ends the client's requests, not the connection: a client may send
 * its last request and shutdown(SHUT_WR), and still gets the response. */
void conn_client_eof(struct conn *c)
{
	c->client_eof = true;
	if (c->state == CONN_READ_HEAD)
		conn_process(c);
	else if (c->state == CONN_REQUEST_BODY && !c->ex.req_body_done)
		conn_close(c, "client_closed_mid_request");
	/* Otherwise a request is in flight: conn_finish_response comes back
	 * to conn_process, which closes after it. A body that has not been
	 * relayed yet is checked by exchange.c when it reads it. */
}

/* ---- client callbacks ---------------------------------------------------- */

void conn_client_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	/* Bytes that arrive while a response is in flight wait in the input
	 * buffer (bounded by its read watermark) until it is done. */
	if (c->state == CONN_READ_HEAD)
		conn_process(c);
	else if (c->state == CONN_REQUEST_BODY)
		exchange_client_readable(c);
}

void conn_client_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (evbuffer_get_length(conn_out(c)) == 0)
		conn_writes_direct(c);
	if (c->state == CONN_STREAM_BODY)
		exchange_client_drained(c);
	else if (c->state == CONN_CLOSING && evbuffer_get_length(conn_out(c)) == 0)
		conn_close(c, "done");
	else if (c->state == CONN_READ_HEAD && c->out_paused)
		conn_resume_requests(c);
}

void conn_client_event(struct bufferevent *bev, short events, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (events & BEV_EVENT_CONNECTED)
		return; /* the TLS handshake is done; the request follows */
	if (events & BEV_EVENT_TIMEOUT)
		conn_close(c, "send_timeout");
	else if (events & BEV_EVENT_ERROR)
		conn_close(c, "client_error");
	else if (events & BEV_EVENT_EOF)
		conn_client_eof(c);
}
