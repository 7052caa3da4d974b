#include "k8s/client.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <zlib.h>

#include "k8s/api.h"
#include "net/httpc.h"
#include "net/httpc_pool.h"
#include "net/httpc_response.h"
#include "util/http1.h"
#include "util/log.h"
#include "util/tls.h"
#include "util/url.h"
#include "util/xalloc.h"

#ifndef OCIGATE_VERSION
#define OCIGATE_VERSION "dev"
#endif

#define K8S_MAX_HEAD 65536
#define K8S_MAX_HEADERS 100
#define K8S_MAX_TOKEN_FILE 65536
#define K8S_TOKEN_RECHECK_AFTER_401_S 5
#define K8S_MAX_RETRY_AFTER 3600

/* The body has no cap here: it is capped after inflating (k8s_body_cap). */
static const struct http1_limits k8s_head_limits = { K8S_MAX_HEAD, K8S_MAX_HEADERS };

struct k8s_conn {
	struct k8s_client *c;
	struct bufferevent *bev;
	struct k8s_conn *prev, *next; /* in c->conns */
	struct k8s_request *req;      /* NULL when idle or connecting */
	struct httpc_idle idle;       /* in c->pool while idle */
	bool connected;
	bool used;                    /* has carried a request before */
	bool watch;                   /* dedicated to one watch, never pooled */
};

enum k8s_phase { K8S_QUEUED, K8S_HEAD, K8S_BODY, K8S_FINISHED };

struct k8s_request {
	struct k8s_client *c;
	struct k8s_request *prev, *next; /* in c->queue while queued */
	enum k8s_phase phase;
	bool post, watch;
	bool patch;             /* a post sent as PATCH */
	bool put;               /* a post sent as PUT */
	char *content_type;     /* of a post's body; NULL: application/json */
	char *path;
	unsigned char *body;
	size_t body_len;
	k8s_response_fn done;
	k8s_line_fn line;
	void *arg;
	struct event *deadline;
	struct k8s_conn *conn;
	bool retried;
	bool got_bytes;
	bool in_cb, cancelled;

	struct httpc_response resp; /* framing; the body goes to raw */
	int status;
	bool keep_alive;
	unsigned retry_after;
	bool gzip, z_ready, z_end;
	z_stream z;
	struct evbuffer *raw; /* body bytes as sent (maybe compressed) */
	struct evbuffer *out; /* inflated body, or the watch's partial line */
	size_t out_total;
	size_t scanned;       /* bytes of out known to hold no newline */
};

struct k8s_client {
	struct event_base *base;
	struct evdns_base *dns;
	struct url_base url;
	char *host_header;
	char *tls_host;
	char *peer_name;           /* "API server host:port", for messages */
	struct httpc_peer peer;
	bool tls_ready;
	struct tls_client tls;
	struct k8s_client_opts o;
	char *token;
	char *token_file;
	struct stat token_st;
	struct event *token_timer;
	time_t token_checked;
	struct event *kick;
	struct k8s_request *queue, *queue_tail;
	struct k8s_conn *conns;
	struct httpc_pool pool;    /* the idle ones of conns */
	unsigned n_req_conns;
	struct k8s_client_stats stats;
	struct timeval connect_tv, watch_tv, idle_tv;
};

static void k8s_conn_free(struct k8s_conn *conn);
static void k8s_conn_on_read(struct bufferevent *bev, void *arg);
static void k8s_conn_on_event(struct bufferevent *bev, short what, void *arg);

static struct timeval k8s_ms_tv(unsigned ms)
{
	return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

/* ---- bearer token ---- */

static bool k8s_token_valid(const char *t, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
			return false;
	return true;
}

static void k8s_token_set(struct k8s_client *c, char *t)
{
	if (c->token) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	c->token = t;
}

/* Reads the token file when it changed since the last read. Returns -1
 * when it cannot be read or holds no usable token; the old token stays. */
static int k8s_token_load(struct k8s_client *c, char *err, size_t cap)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int fd, rc = -1;

	fd = open(c->token_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, cap, "cannot read token file %s: %s", c->token_file, strerror(errno));
		goto out;
	}
	if (c->token && st.st_mtim.tv_sec == c->token_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == c->token_st.st_mtim.tv_nsec && st.st_size == c->token_st.st_size &&
	    st.st_ino == c->token_st.st_ino) {
		rc = 0;
		goto out;
	}
	if (st.st_size > K8S_MAX_TOKEN_FILE) {
		snprintf(err, cap, "token file %s is larger than %d bytes", c->token_file,
			 K8S_MAX_TOKEN_FILE);
		goto out;
	}
	buf = x_malloc(K8S_MAX_TOKEN_FILE + 1);
	for (;;) {
		ssize_t r = read(fd, buf + n, K8S_MAX_TOKEN_FILE - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, cap, "cannot read token file %s: %s", c->token_file,
				 strerror(errno));
			goto out;
		}
		if (r == 0 || n + (size_t)r >= K8S_MAX_TOKEN_FILE) {
			n += (size_t)r;
			break;
		}
		n += (size_t)r;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
			 buf[n - 1] == '\t'))
		n--;
	if (!k8s_token_valid(buf, n)) {
		snprintf(err, cap, "token file %s holds no valid token", c->token_file);
		goto out;
	}
	buf[n] = '\0';
	k8s_token_set(c, x_strndup(buf, n));
	c->token_st = st;
	c->stats.token_reloads++;
	rc = 0;
out:
	if (buf) {
		OPENSSL_cleanse(buf, K8S_MAX_TOKEN_FILE + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static void k8s_token_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct k8s_client *c = arg;
	struct timeval now;
	char err[256];
	unsigned long before = c->stats.token_reloads;

	(void)fd;
	(void)what;
	event_base_gettimeofday_cached(c->base, &now);
	c->token_checked = now.tv_sec;
	if (k8s_token_load(c, err, sizeof(err)) != 0)
		log_warn("k8s_token_reload_failed", "error=\"%s\"", err);
	else if (c->stats.token_reloads != before)
		log_info("k8s_token_reloaded", "file=%s", c->token_file);
	struct timeval tv = k8s_ms_tv(c->o.token_check_ms);
	evtimer_add(c->token_timer, &tv);
}

/* A 401 may mean the token rotated before the periodic check saw it. */
static void k8s_token_recheck_soon(struct k8s_client *c)
{
	struct timeval now;

	if (!c->token_file)
		return;
	event_base_gettimeofday_cached(c->base, &now);
	if (now.tv_sec - c->token_checked < K8S_TOKEN_RECHECK_AFTER_401_S)
		return;
	c->token_checked = now.tv_sec;
	event_active(c->token_timer, EV_TIMEOUT, 0);
}

/* ---- requests: lifecycle ---- */

static void k8s_queue_unlink(struct k8s_client *c, struct k8s_request *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		c->queue = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		c->queue_tail = r->prev;
	r->prev = r->next = NULL;
	c->stats.queued--;
}

static void k8s_queue_push(struct k8s_client *c, struct k8s_request *r, bool front)
{
	r->phase = K8S_QUEUED;
	if (front) {
		r->next = c->queue;
		if (c->queue)
			c->queue->prev = r;
		else
			c->queue_tail = r;
		c->queue = r;
	} else {
		r->prev = c->queue_tail;
		if (c->queue_tail)
			c->queue_tail->next = r;
		else
			c->queue = r;
		c->queue_tail = r;
	}
	c->stats.queued++;
	event_active(c->kick, EV_TIMEOUT, 0);
}

static void k8s_response_reset(struct k8s_request *r)
{
	if (r->z_ready)
		inflateEnd(&r->z);
	r->z_ready = r->z_end = r->gzip = false;
	httpc_response_reset(&r->resp);
	r->status = 0;
	r->keep_alive = false;
	r->retry_after = 0;
	r->out_total = 0;
	r->scanned = 0;
	r->got_bytes = false;
	evbuffer_drain(r->raw, evbuffer_get_length(r->raw));
	evbuffer_drain(r->out, evbuffer_get_length(r->out));
}

static void k8s_request_free(struct k8s_request *r)
{
	if (r->z_ready)
		inflateEnd(&r->z);
	if (r->deadline)
		event_free(r->deadline);
	httpc_response_free(&r->resp);
	evbuffer_free(r->raw);
	evbuffer_free(r->out);
	if (r->body) {
		OPENSSL_cleanse(r->body, r->body_len);
		free(r->body);
	}
	free(r->content_type);
	free(r->path);
	free(r);
}

/* Detaches the request from its connection: a connection that ended the
 * response cleanly goes back to the pool, any other is closed. */
static void k8s_request_release_conn(struct k8s_request *r, bool reusable)
{
	struct k8s_conn *conn = r->conn;
	struct k8s_client *c = r->c;
	const char *why;

	if (!conn)
		return;
	r->conn = NULL;
	conn->req = NULL;
	if (!reusable || conn->watch ||
	    httpc_pool_put(&c->pool, &conn->idle, conn->bev, c->o.max_conns, &c->idle_tv, &why) != 0) {
		k8s_conn_free(conn);
		return;
	}
	conn->used = true;
	event_active(c->kick, EV_TIMEOUT, 0);
}

/* Ends the request: its callback runs once, then it is freed. */
static void k8s_request_finish(struct k8s_request *r, const char *error, bool timeout)
{
	struct k8s_response resp = { 0 };
	bool ok = !error;

	if (ok && r->status != 0 && !(r->watch && r->status == 200))
		evbuffer_add(r->out, "", 1); /* NUL terminator, not counted in len */
	k8s_request_release_conn(r, ok && r->keep_alive && r->phase == K8S_BODY);
	r->phase = K8S_FINISHED;
	evtimer_del(r->deadline);
	resp.status = r->status;
	resp.error = error;
	resp.timeout = timeout;
	resp.retry_after = r->retry_after;
	if (!r->watch || r->status != 200) {
		size_t n = evbuffer_get_length(r->out);
		resp.body = n ? (const char *)evbuffer_pullup(r->out, -1) : "";
		resp.len = ok && n ? n - 1 : 0;
		if (!ok) {
			resp.body = "";
			resp.len = 0;
		}
	}
	if (r->status == 401)
		k8s_token_recheck_soon(r->c);
	r->in_cb = true;
	r->done(r->arg, &resp);
	k8s_request_free(r);
}

static void k8s_request_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct k8s_request *r = arg;

	(void)fd;
	(void)what;
	if (r->phase == K8S_QUEUED)
		k8s_queue_unlink(r->c, r);
	k8s_request_finish(r, "request timed out", true);
}

static struct k8s_request *k8s_request_new(struct k8s_client *c, const char *path, k8s_response_fn done,
					   void *arg)
{
	struct k8s_request *r = x_new(struct k8s_request);
	struct timeval tv = k8s_ms_tv(c->o.request_timeout_ms);

	r->c = c;
	r->path = x_strdup(path);
	r->done = done;
	r->arg = arg;
	httpc_response_init(&r->resp, &k8s_head_limits, HTTP_M_GET, 0, "the API server");
	r->raw = evbuffer_new();
	r->out = evbuffer_new();
	r->deadline = evtimer_new(c->base, k8s_request_on_deadline, r);
	if (!r->raw || !r->out || !r->deadline)
		abort(); /* out of memory, as x_malloc would */
	evtimer_add(r->deadline, &tv);
	k8s_queue_push(c, r, false);
	return r;
}

struct k8s_request *k8s_client_post(struct k8s_client *c, const char *path, struct evbuffer *json_body,
				    k8s_response_fn done, void *arg)
{
	size_t n = evbuffer_get_length(json_body);
	unsigned char *src = n ? evbuffer_pullup(json_body, -1) : NULL;
	struct k8s_request *r;

	r = k8s_request_new(c, path, done, arg);
	r->post = true;
	r->resp.method = HTTP_M_POST; /* decides which responses have a body */
	r->body = x_malloc(n ? n : 1);
	r->body_len = n;
	if (n) {
		memcpy(r->body, src, n);
		OPENSSL_cleanse(src, n); /* a TokenReview body holds a token */
	}
	evbuffer_free(json_body);
	return r;
}

struct k8s_request *k8s_client_patch(struct k8s_client *c, const char *path,
				     const char *content_type, struct evbuffer *body,
				     k8s_response_fn done, void *arg)
{
	struct k8s_request *r = k8s_client_post(c, path, body, done, arg);

	r->patch = true;
	r->content_type = x_strdup(content_type);
	return r;
}

struct k8s_request *k8s_client_put(struct k8s_client *c, const char *path, struct evbuffer *json_body,
				   k8s_response_fn done, void *arg)
{
	struct k8s_request *r = k8s_client_post(c, path, json_body, done, arg);

	r->put = true;
	return r;
}

struct k8s_request *k8s_client_get(struct k8s_client *c, const char *path, k8s_response_fn done,
				   void *arg)
{
	return k8s_request_new(c, path, done, arg);
}

struct k8s_request *k8s_client_watch(struct k8s_client *c, const char *path, k8s_line_fn line,
				     k8s_response_fn end, void *arg)
{
	struct k8s_request *r = k8s_request_new(c, path, end, arg);

	r->watch = true;
	r->line = line;
	return r;
}

void k8s_request_cancel(struct k8s_request *r)
{
	if (!r || r->phase == K8S_FINISHED)
		return;
	if (r->in_cb) {
		r->cancelled = true; /* freed when the line callback returns */
		return;
	}
	if (r->phase == K8S_QUEUED)
		k8s_queue_unlink(r->c, r);
	k8s_request_release_conn(r, false);
	r->phase = K8S_FINISHED;
	k8s_request_free(r);
}

/* ---- connections ---- */

static void k8s_conn_free(struct k8s_conn *conn)
{
	struct k8s_client *c = conn->c;

	if (conn->prev)
		conn->prev->next = conn->next;
	else
		c->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	httpc_pool_remove(&conn->idle);
	if (!conn->watch)
		c->n_req_conns--;
	c->stats.open_conns--;
	httpc_close(conn->bev);
	free(conn);
	event_active(c->kick, EV_TIMEOUT, 0);
}

static void k8s_idle_close(struct httpc_idle *e, const char *reason)
{
	(void)reason;
	k8s_conn_free(OG_CONTAINER_OF(e, struct k8s_conn, idle));
}

static struct k8s_conn *k8s_conn_new(struct k8s_client *c, bool watch, char *err, size_t cap)
{
	struct k8s_conn *conn = x_new(struct k8s_conn);

	c->stats.connects++;
	conn->c = c;
	conn->watch = watch;
	conn->bev = httpc_connect(&c->peer, &c->connect_tv, k8s_conn_on_read, NULL, k8s_conn_on_event,
				  conn, err, cap);
	if (!conn->bev) {
		free(conn);
		return NULL;
	}
	conn->next = c->conns;
	if (c->conns)
		c->conns->prev = conn;
	c->conns = conn;
	if (!watch)
		c->n_req_conns++;
	c->stats.open_conns++;
	return conn;
}

static struct k8s_conn *k8s_conn_take_idle(struct k8s_client *c)
{
	struct httpc_idle *e = httpc_pool_take(&c->pool);

	if (!e)
		return NULL;
	c->stats.reuses++;
	return OG_CONTAINER_OF(e, struct k8s_conn, idle);
}

static void k8s_wipe_free(const void *data, size_t len, void *extra)
{
	(void)extra;
	OPENSSL_cleanse((void *)data, len);
	free((void *)data);
}

static void k8s_request_send(struct k8s_request *r, struct k8s_conn *conn)
{
	struct k8s_client *c = r->c;
	struct evbuffer *out = bufferevent_get_output(conn->bev);

	r->conn = conn;
	conn->req = r;
	r->phase = K8S_HEAD;
	k8s_response_reset(r);
	evbuffer_add_printf(out, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ocigate/%s\r\n"
			    "Accept: application/json\r\n",
			    r->patch ? "PATCH" : r->put ? "PUT" : r->post ? "POST" : "GET", c->url.path_prefix,
			    r->path, c->host_header,
			    OCIGATE_VERSION);
	if (!c->o.no_gzip)
		evbuffer_add_printf(out, "Accept-Encoding: gzip\r\n");
	if (c->token) {
		/* By reference with a wiping cleanup: the token must not linger
		 * in freed buffer chains. */
		size_t n = strlen(c->token) + sizeof("Authorization: Bearer \r\n") - 1;
		char *h = x_malloc(n + 1);
		snprintf(h, n + 1, "Authorization: Bearer %s\r\n", c->token);
		evbuffer_add_reference(out, h, n, k8s_wipe_free, NULL);
	}
	if (r->post) {
		evbuffer_add_printf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
				    r->content_type ? r->content_type : "application/json",
				    r->body_len);
		if (r->body_len) {
			unsigned char *copy = x_malloc(r->body_len);
			memcpy(copy, r->body, r->body_len);
			evbuffer_add_reference(out, copy, r->body_len, k8s_wipe_free, NULL);
		}
	} else {
		evbuffer_add(out, "\r\n", 2);
	}
	if (conn->connected)
		bufferevent_set_timeouts(conn->bev, NULL, NULL);
	bufferevent_setcb(conn->bev, k8s_conn_on_read, NULL, k8s_conn_on_event, conn);
	httpc_enable(conn->bev, EV_READ | EV_WRITE);
}

/* Starts what the pool allows. Requests can finish (with an error) from
 * here, and their callbacks can queue more, so the queue is walked from the
 * head again after every change. */
static void k8s_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct k8s_client *c = arg;
	char err[256];

	(void)fd;
	(void)what;
again:
	for (struct k8s_request *r = c->queue; r; r = r->next) {
		struct k8s_conn *conn = NULL;

		if (!r->watch) {
			conn = k8s_conn_take_idle(c);
			if (!conn && c->n_req_conns >= c->o.max_conns)
				continue;
		}
		k8s_queue_unlink(c, r);
		if (!conn)
			conn = k8s_conn_new(c, r->watch, err, sizeof(err));
		if (!conn) {
			k8s_request_finish(r, err, false);
			goto again;
		}
		k8s_request_send(r, conn);
		goto again;
	}
}

/* ---- responses ---- */

static unsigned k8s_parse_retry_after(struct og_str v)
{
	unsigned long n = 0;

	if (v.n == 0 || v.n > 9)
		return 0;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return 0; /* an HTTP-date: the caller uses its own backoff */
		n = n * 10 + (unsigned long)(v.p[i] - '0');
	}
	return n > K8S_MAX_RETRY_AFTER ? K8S_MAX_RETRY_AFTER : (unsigned)n;
}

/* Returns 1 when a head was consumed, 0 when more bytes are needed, -1
 * with err set. */
static int k8s_read_head(struct k8s_request *r, struct evbuffer *in, char *err, size_t cap)
{
	const struct http1_response *head = &r->resp.head;
	const struct http1_header *h;
	int rc = httpc_response_read_head(&r->resp, in, err, cap);

	if (rc <= 0)
		return rc;
	r->status = head->status;
	r->keep_alive = head->keep_alive;
	h = http1_find_header(head->headers, head->n_headers, "Content-Encoding");
	if (h && og_str_ieq(h->value, "gzip")) {
		r->gzip = true;
		memset(&r->z, 0, sizeof(r->z));
		if (inflateInit2(&r->z, 16 + MAX_WBITS) != Z_OK) {
			snprintf(err, cap, "cannot start gzip decoding");
			return -1;
		}
		r->z_ready = true;
	} else if (h && !og_str_ieq(h->value, "identity")) {
		snprintf(err, cap, "unsupported Content-Encoding %.*s from the API server",
			 (int)OG_MIN(h->value.n, (size_t)40), h->value.p);
		return -1;
	}
	if (r->status == 429 || r->status == 503) {
		h = http1_find_header(head->headers, head->n_headers, "Retry-After");
		if (h)
			r->retry_after = k8s_parse_retry_after(h->value);
	}
	r->phase = K8S_BODY;
	if (r->watch && r->status == 200) {
		/* From now on the stream lives as long as the server keeps it
		 * going; silence is the only timeout. */
		evtimer_del(r->deadline);
		bufferevent_set_timeouts(r->conn->bev, &r->c->watch_tv, NULL);
	}
	return 1;
}

static size_t k8s_body_cap(const struct k8s_request *r)
{
	if (r->watch && r->status == 200)
		return r->c->o.max_line;
	return r->post ? r->c->o.max_body : r->c->o.max_get_body;
}

static int k8s_append_out(struct k8s_request *r, const void *p, size_t n, char *err, size_t cap)
{
	bool streaming = r->watch && r->status == 200;

	/* A watch's lines are capped by the line scanner instead. */
	if (!streaming && r->out_total + n > k8s_body_cap(r)) {
		snprintf(err, cap, "response from the API server larger than %zu bytes",
			 k8s_body_cap(r));
		return -1;
	}
	r->out_total += n;
	evbuffer_add(r->out, p, n);
	return 0;
}

/* A watch's pending bytes already exceed a line: stop inflating so that a
 * small compressed input cannot grow memory without bound. */
static bool k8s_line_full(const struct k8s_request *r)
{
	return r->watch && r->status == 200 && evbuffer_get_length(r->out) > r->c->o.max_line;
}

/* Moves r->raw into r->out, inflating when the body is gzip; for a watch,
 * stops early once a line's worth is pending (see k8s_line_full). */
static int k8s_decode(struct k8s_request *r, char *err, size_t cap)
{
	unsigned char buf[16384];

	if (!r->gzip) {
		size_t n = evbuffer_get_length(r->raw);
		bool streaming = r->watch && r->status == 200;
		if (!streaming && r->out_total + n > k8s_body_cap(r)) {
			snprintf(err, cap, "response from the API server larger than %zu bytes",
				 k8s_body_cap(r));
			return -1;
		}
		r->out_total += n;
		evbuffer_add_buffer(r->out, r->raw);
		return 0;
	}
	while (evbuffer_get_length(r->raw) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(r->raw, -1, NULL, &v, 1) < 1)
			break;
		if (r->z_end) {
			snprintf(err, cap, "data after the end of the gzip stream");
			return -1;
		}
		r->z.next_in = v.iov_base;
		r->z.avail_in = (uInt)OG_MIN(v.iov_len, (size_t)UINT32_MAX);
		do {
			r->z.next_out = buf;
			r->z.avail_out = sizeof(buf);
			int zr = inflate(&r->z, Z_NO_FLUSH);
			if (zr == Z_STREAM_END) {
				r->z_end = true;
			} else if (zr != Z_OK && zr != Z_BUF_ERROR) {
				snprintf(err, cap, "bad gzip data from the API server: %s",
					 r->z.msg ? r->z.msg : "error");
				return -1;
			}
			if (k8s_append_out(r, buf, sizeof(buf) - r->z.avail_out, err, cap) != 0)
				return -1;
		} while (r->z.avail_out == 0 && !r->z_end && !k8s_line_full(r));
		size_t used = v.iov_len - r->z.avail_in;
		evbuffer_drain(r->raw, used);
		if (k8s_line_full(r))
			return 0; /* the line scanner runs before more is inflated */
		if (used == 0 && !r->z_end)
			break;
		if (r->z_end && evbuffer_get_length(r->raw) > 0) {
			snprintf(err, cap, "data after the end of the gzip stream");
			return -1;
		}
	}
	return 0;
}

/* Hands every complete line to the watch's callback. Returns -1 with err
 * on an over-long line, 1 when the request was cancelled from the
 * callback (and is freed), else 0. */
static int k8s_emit_lines(struct k8s_request *r, char *err, size_t cap)
{
	for (;;) {
		struct evbuffer_ptr start, pos;
		size_t eol_len = 0;
		size_t have = evbuffer_get_length(r->out);

		if (evbuffer_ptr_set(r->out, &start, r->scanned, EVBUFFER_PTR_SET) != 0)
			return 0;
		pos = evbuffer_search_eol(r->out, &start, &eol_len, EVBUFFER_EOL_LF);
		if (pos.pos < 0) {
			r->scanned = have;
			if (have > r->c->o.max_line) {
				snprintf(err, cap, "watch event longer than %zu bytes", r->c->o.max_line);
				return -1;
			}
			return 0;
		}
		size_t n = (size_t)pos.pos;
		if (n > r->c->o.max_line) {
			snprintf(err, cap, "watch event longer than %zu bytes", r->c->o.max_line);
			return -1;
		}
		const char *p = (const char *)evbuffer_pullup(r->out, (ssize_t)(n + 1));
		r->in_cb = true;
		r->line(r->arg, p, n);
		r->in_cb = false;
		evbuffer_drain(r->out, n + 1);
		r->scanned = 0;
		if (r->cancelled) {
			r->cancelled = false;
			k8s_request_cancel(r);
			return 1;
		}
	}
}

/* Processes what arrived. Returns true when the request is gone. */
static bool k8s_request_on_input(struct k8s_request *r, struct evbuffer *in)
{
	char err[256];
	int rc;

	if (evbuffer_get_length(in) > 0)
		r->got_bytes = true;
	if (r->phase == K8S_HEAD) {
		rc = k8s_read_head(r, in, err, sizeof(err));
		if (rc < 0)
			goto fail;
		if (rc == 0)
			return false;
	}
	rc = httpc_response_read_body(&r->resp, in, r->raw, err, sizeof(err));
	if (rc < 0)
		goto fail;
	size_t before;
	do {
		before = evbuffer_get_length(r->raw);
		if (k8s_decode(r, err, sizeof(err)) != 0)
			goto fail;
		if (r->watch && r->status == 200) {
			int lr = k8s_emit_lines(r, err, sizeof(err));
			if (lr < 0)
				goto fail;
			if (lr > 0)
				return true;
		}
	} while (evbuffer_get_length(r->raw) > 0 && evbuffer_get_length(r->raw) < before);
	if (rc == 0)
		return false;
	if (r->gzip && !r->z_end) {
		snprintf(err, sizeof(err), "gzip stream from the API server cut short");
		goto fail;
	}
	k8s_request_finish(r, NULL, false);
	return true;
fail:
	k8s_request_finish(r, err, false);
	return true;
}

static void k8s_conn_on_read(struct bufferevent *bev, void *arg)
{
	struct k8s_conn *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	assert(conn->req); /* an idle one has the pool's callbacks */
	k8s_request_on_input(conn->req, in);
}

static void k8s_conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct k8s_conn *conn = arg;
	struct k8s_request *r = conn->req;
	struct k8s_client *c = conn->c;
	char err[256];

	if (what & BEV_EVENT_CONNECTED) {
		conn->connected = true;
		httpc_connected(bev);
		bufferevent_set_timeouts(bev, NULL, NULL);
		return;
	}
	if (!r) {
		k8s_conn_free(conn);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* Bytes that arrived with the close come first. */
		if (k8s_request_on_input(r, bufferevent_get_input(bev)))
			return;
		if (r->phase == K8S_BODY && httpc_response_ends_at_close(&r->resp)) {
			if (r->gzip && !r->z_end) {
				k8s_request_finish(r, "gzip stream from the API server cut short", false);
				return;
			}
			r->keep_alive = false;
			k8s_request_finish(r, NULL, false);
			return;
		}
	}
	/* A kept-alive connection the server closed before answering: the
	 * request never reached it, send it once more on a new one. */
	if (r->phase == K8S_HEAD && httpc_may_retry(conn->used, r->got_bytes, r->retried, what)) {
		r->retried = true;
		r->conn = NULL;
		conn->req = NULL;
		k8s_conn_free(conn);
		k8s_queue_push(c, r, true);
		return;
	}
	httpc_describe_error(&c->peer, conn->bev, conn->connected, what, err, sizeof(err));
	if (r->phase == K8S_BODY && r->watch && r->status == 200 && (what & BEV_EVENT_EOF))
		snprintf(err, sizeof(err), "API server closed the watch stream without ending it");
	k8s_request_finish(r, err, (what & BEV_EVENT_TIMEOUT) != 0);
}

/* ---- the client ---- */

static int k8s_client_setup_tls(struct k8s_client *c, const struct k8s_client_opts *o, char *err,
				size_t cap)
{
	int rc;

	if (o->ca_pem && o->ca_pem_len)
		rc = tls_client_init_pem(&c->tls, o->ca_pem, o->ca_pem_len, true, err, cap);
	else
		rc = tls_client_init(&c->tls, NULL, err, cap);
	if (rc != 0)
		return -1;
	c->tls_ready = true;
	if (o->insecure)
		tls_client_set_insecure(&c->tls);
	if (o->cert_pem || o->key_pem) {
		if (!o->cert_pem || !o->key_pem) {
			snprintf(err, cap, "a client certificate needs both the certificate and the key");
			return -1;
		}
		if (tls_client_use_cert_pem(&c->tls, o->cert_pem, o->cert_pem_len, o->key_pem,
					    o->key_pem_len, err, cap) != 0)
			return -1;
	}
	return 0;
}

static void k8s_client_defaults(struct k8s_client_opts *o)
{
	if (!o->max_conns)
		o->max_conns = 4;
	if (!o->connect_timeout_ms)
		o->connect_timeout_ms = 5000;
	if (!o->request_timeout_ms)
		o->request_timeout_ms = 10000;
	if (!o->watch_idle_ms)
		o->watch_idle_ms = 330000;
	if (!o->idle_conn_ms)
		o->idle_conn_ms = 60000;
	if (!o->token_check_ms)
		o->token_check_ms = 60000;
	if (!o->max_body)
		o->max_body = K8S_API_MAX_BODY;
	if (!o->max_get_body)
		o->max_get_body = K8S_API_MAX_LIST_BODY;
	if (!o->max_line)
		o->max_line = K8S_API_MAX_BODY;
}

struct k8s_client *k8s_client_new(struct event_base *base, struct evdns_base *dns,
				   const struct k8s_client_opts *o, char *err, size_t cap)
{
	struct k8s_client *c = x_new(struct k8s_client);
	char why[200];
	size_t n;

	c->base = base;
	c->dns = dns;
	c->o = *o;
	k8s_client_defaults(&c->o);
	c->o.server = c->o.tls_server_name = c->o.token = c->o.token_file = NULL;
	c->o.ca_pem = c->o.cert_pem = c->o.key_pem = NULL;
	c->connect_tv = k8s_ms_tv(c->o.connect_timeout_ms);
	c->watch_tv = k8s_ms_tv(c->o.watch_idle_ms);
	c->idle_tv = k8s_ms_tv(c->o.idle_conn_ms);
	if (!o->server || url_base_parse(&c->url, o->server, strlen(o->server), why, sizeof(why)) != 0) {
		snprintf(err, cap, "server: %s", o->server ? why : "missing");
		goto fail;
	}
	c->host_header = url_host_header(c->url.host, c->url.port, c->url.https);
	c->tls_host = x_strdup(o->tls_server_name && *o->tls_server_name ? o->tls_server_name :
			       c->url.host);
	if (c->url.https && k8s_client_setup_tls(c, o, err, cap) != 0)
		goto fail;
	n = strlen(c->host_header) + sizeof("API server ");
	c->peer_name = x_malloc(n);
	snprintf(c->peer_name, n, "API server %s", c->host_header);
	c->peer = (struct httpc_peer){
		.base = base,
		.dns = dns,
		.host = c->url.host,
		.port = c->url.port,
		.tls = c->url.https ? &c->tls : NULL,
		.tls_name = c->tls_host,
		.name = c->peer_name,
		.bev_options = BEV_OPT_DEFER_CALLBACKS,
	};
	if (o->token && *o->token) {
		if (!k8s_token_valid(o->token, strlen(o->token))) {
			snprintf(err, cap, "token: not a valid bearer token");
			goto fail;
		}
		c->token = x_strdup(o->token);
	}
	httpc_pool_init(&c->pool, k8s_idle_close);
	c->kick = event_new(base, -1, 0, k8s_on_kick, c);
	c->token_timer = evtimer_new(base, k8s_token_on_timer, c);
	if (!c->kick || !c->token_timer)
		abort();
	if (o->token_file && *o->token_file) {
		c->token_file = x_strdup(o->token_file);
		k8s_token_set(c, NULL);
		if (k8s_token_load(c, err, cap) != 0)
			goto fail;
		struct timeval tv = k8s_ms_tv(c->o.token_check_ms);
		evtimer_add(c->token_timer, &tv);
	}
	return c;
fail:
	k8s_client_free(c);
	return NULL;
}

void k8s_client_free(struct k8s_client *c)
{
	if (!c)
		return;
	while (c->queue) {
		struct k8s_request *r = c->queue;
		k8s_queue_unlink(c, r);
		k8s_request_free(r);
	}
	while (c->conns) {
		struct k8s_request *r = c->conns->req;
		if (r) {
			r->conn = NULL;
			c->conns->req = NULL;
			k8s_request_free(r);
		}
		k8s_conn_free(c->conns);
	}
	if (c->kick)
		event_free(c->kick);
	if (c->token_timer)
		event_free(c->token_timer);
	if (c->tls_ready)
		tls_client_free(&c->tls);
	k8s_token_set(c, NULL);
	free(c->token_file);
	free(c->host_header);
	free(c->tls_host);
	free(c->peer_name);
	url_base_free(&c->url);
	free(c);
}

void k8s_client_escape(struct evbuffer *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			evbuffer_add(out, s, 1);
		} else {
			char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
			evbuffer_add(out, e, 3);
		}
	}
}

void k8s_client_get_stats(const struct k8s_client *c, struct k8s_client_stats *out)
{
	*out = c->stats;
	out->idle_conns = c->pool.n_idle;
}
