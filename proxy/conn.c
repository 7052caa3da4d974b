#include "proxy/conn.h"

#include <assert.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "auth/credentials.h"
#include "proxy/admin.h"
#include "proxy/conn_priv.h"
#include "proxy/metrics.h"
#include "proxy/respond.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Longest decoded Basic credential we accept (the token limit plus a user). */
#define CONN_CRED_BUF 8448
/* What one readv of a plain client reserves in its input buffer: 4 KiB
 * for a request head (nearly every head fits; a slow or idle client holds
 * no more), 64 KiB for a request body. libevent rounds a chain up to a
 * power of two with its header included, so the header's room is left
 * out: the allocations are 4 and 64 KiB (below malloc's mmap threshold). */
#define CONN_CHAIN_HEADER_ROOM 128
#define CONN_HEAD_READ (4 * 1024 - CONN_CHAIN_HEADER_ROOM)
#define CONN_BODY_READ (64 * 1024 - CONN_CHAIN_HEADER_ROOM)

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

static void conn_process(struct conn *c);

static double conn_ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

struct evbuffer *conn_out(struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

/* ---- reading from the client ------------------------------------------ */

static struct event *conn_rd_event(struct conn *c)
{
	return (struct event *)(void *)c->ev_space;
}

static struct event *conn_flush_event(struct conn *c)
{
	return (struct event *)(void *)((char *)c->ev_space + event_get_struct_event_size());
}

/* rd_event is added while reading is wanted and the input is below its
 * limit; a drain of the input (conn_in_changed) can lift the limit. */
static void conn_rd_sync(struct conn *c)
{
	bool add = c->rd_wanted && evbuffer_get_length(bufferevent_get_input(c->bev)) < c->in_limit;

	if (add == c->rd_added)
		return;
	c->rd_added = add;
	if (add)
		event_add(conn_rd_event(c), NULL);
	else
		event_del(conn_rd_event(c));
}

static void conn_read_on(struct conn *c)
{
	if (c->client_tls) {
		bufferevent_enable(c->bev, EV_READ);
		return;
	}
	c->rd_wanted = true;
	conn_rd_sync(c);
}

void conn_read_off(struct conn *c)
{
	if (c->client_tls) {
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	c->rd_wanted = false;
	conn_rd_sync(c);
}

void conn_set_read_limit(struct conn *c, size_t limit)
{
	if (c->client_tls) {
		bufferevent_setwatermark(c->bev, EV_READ, 0, limit);
		return;
	}
	c->in_limit = limit;
	conn_rd_sync(c);
}

void conn_resume_read(struct conn *c)
{
	if (c->client_eof || c->out_paused || c->state == CONN_CLOSING || c->state == CONN_CLOSED)
		return;
	conn_read_on(c);
}

static void conn_in_changed(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	(void)in;
	if (info->n_deleted)
		conn_rd_sync(arg);
}

static void conn_client_read(struct bufferevent *bev, void *arg);
static void conn_client_eof(struct conn *c);

/* One readv into reserved input space, up to room bytes. Returns what
 * readv returned. */
static ssize_t conn_read_socket(struct conn *c, evutil_socket_t fd, size_t room)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	ssize_t n, left;
	size_t most = c->state == CONN_REQUEST_BODY ? CONN_BODY_READ : CONN_HEAD_READ;
	int nv = evbuffer_reserve_space(in, (ev_ssize_t)OG_MIN(room, most), v, 2);

	if (nv <= 0) {
		errno = ENOMEM;
		return -1;
	}
	for (int i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	n = readv(fd, iov, nv);
	if (n <= 0)
		return n; /* errno is readv's; the reservation lapses */
	left = n;
	for (int i = 0; i < nv; i++) {
		v[i].iov_len = OG_MIN(v[i].iov_len, (size_t)left);
		left -= (ssize_t)v[i].iov_len;
	}
	evbuffer_commit_space(in, v, nv);
	return n;
}

/* rd_event's callback: it is added only while there is room in the
 * input, but a callback before this one may have lowered the limit. */
static void conn_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	size_t have = evbuffer_get_length(bufferevent_get_input(c->bev));
	ssize_t n;

	(void)what;
	if (have >= c->in_limit) {
		conn_rd_sync(c);
		return;
	}
	n = conn_read_socket(c, fd, c->in_limit - have);
	if (n > 0) {
		conn_client_read(c->bev, c);
		conn_rd_sync(c); /* the input may have reached its limit */
	} else if (n == 0) {
		c->rd_wanted = false;
		conn_rd_sync(c);
		conn_client_eof(c);
	} else if (errno == ENOMEM) {
		conn_close(c, "out_of_resources");
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		conn_close(c, "client_error");
	}
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

static void conn_link(struct conn *c)
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
static void conn_retire(struct conn *c)
{
	struct proxy *px = c->px;

	conn_set_state(c, CONN_CLOSED);
	conn_read_off(c);
	if (!c->client_tls)
		event_del(conn_flush_event(c));
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	evtimer_del(c->timer);
	conn_unlink(c);
	c->reap_next = px->reap_list;
	px->reap_list = c;
	event_active(px->reap_ev, EV_TIMEOUT, 0);
}

static void conn_log_close(uint64_t id, const char *peer, const char *state, const char *reason,
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

/* Writes a plain client's output straight to the socket. What the socket
 * does not take is left to the bufferevent, with write interest; once it
 * has all gone, write interest is off again (with epoll's change list,
 * proxy.c, an interest switched on and off in one loop round never reaches
 * the kernel). */
static void conn_flush(struct conn *c)
{
	struct evbuffer *out = conn_out(c);

	if (c->client_tls)
		return;
	if (evbuffer_get_length(out) > 0) {
		/* A socket bufferevent keeps its output's start frozen and thaws
		 * it around its own writes; this write is one of those. */
		evbuffer_unfreeze(out, 1);
		(void)evbuffer_write(out, bufferevent_getfd(c->bev));
		evbuffer_freeze(out, 1);
	}
	if (evbuffer_get_length(out) == 0) {
		conn_writes_direct(c);
	} else if (c->write_off) {
		/* A socket error shows on the bufferevent's own write. */
		c->write_off = false;
		bufferevent_enable(c->bev, EV_WRITE);
	}
}

void conn_writes_direct(struct conn *c)
{
	if (c->client_tls || c->write_off)
		return;
	c->write_off = true;
	bufferevent_disable(c->bev, EV_WRITE);
}

/* The flush event: bytes were queued in this loop round while the
 * bufferevent was not writing. After the write, the connection hears
 * what the bufferevent's write callback would have told it. */
static void conn_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	bufferevent_data_cb write_cb = NULL;
	size_t low = 0;

	(void)fd;
	(void)what;
	c->flush_queued = false;
	/* Nothing left: the bufferevent calls its write callback only
	 * after a write of its own. */
	if (!c->write_off || evbuffer_get_length(conn_out(c)) == 0)
		return;
	log_flush();
	conn_flush(c);
	bufferevent_getwatermark(c->bev, EV_WRITE, &low, NULL);
	bufferevent_getcb(c->bev, NULL, &write_cb, NULL, NULL);
	if (c->write_off && write_cb && evbuffer_get_length(conn_out(c)) <= low)
		write_cb(c->bev, c);
}

static void conn_out_changed(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	(void)out;
	if (info->n_added && c->write_off && !c->flush_queued) {
		c->flush_queued = true;
		event_active(conn_flush_event(c), EV_TIMEOUT, 0);
	}
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

/* The connection has answered everything it was sent: idle_wait runs
 * from now. A keep-alive client's requests follow each other closely, so
 * the wait armed after an earlier response is usually still pending; it
 * is left to fire early and conn_timer re-arms it for the rest, which
 * costs a timer update per idle_wait instead of two per request. */
static void conn_wait_idle(struct conn *c)
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

static void conn_process(struct conn *c)
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
static void conn_client_eof(struct conn *c)
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

static void conn_client_read(struct bufferevent *bev, void *arg)
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

static void conn_client_write(struct bufferevent *bev, void *arg)
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

static void conn_client_event(struct bufferevent *bev, short events, void *arg)
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

/* ---- parking (park.h) ------------------------------------------------- */

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

static void conn_timer(evutil_socket_t fd, short what, void *arg)
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

/* ---- accept and shutdown ------------------------------------------------- */

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

/* A plain client's reads (rd_event) and direct writes (write_off) are
 * the conn's own; the bufferevent only writes what the socket did not
 * take at once. */
static int conn_start_plain(struct conn *c, evutil_socket_t fd)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	/* Cannot fail: the base and the flags are valid. */
	(void)event_assign(conn_rd_event(c), c->px->base, fd, EV_READ | EV_PERSIST,
			   conn_on_readable, c);
	(void)event_assign(conn_flush_event(c), c->px->base, -1, 0, conn_on_flush, c);
	/* The socket bufferevent freezes the input's end for its own reads,
	 * which never happen here. */
	evbuffer_unfreeze(in, 0);
	/* A new bufferevent has write interest enabled (it adds the event on
	 * the first queued byte); here the flush event writes first. */
	c->write_off = true;
	bufferevent_disable(c->bev, EV_WRITE);
	if (!evbuffer_add_cb(bufferevent_get_output(c->bev), conn_out_changed, c) ||
	    !evbuffer_add_cb(in, conn_in_changed, c))
		return -1;
	return 0;
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
