#include "proxy/fetch.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "util/http1_buf.h"
#include "util/xalloc.h"

struct fetch {
	struct upstream_pool *pool;
	struct upstream_conn *up;
	char *request;
	size_t max_body;
	fetch_done_fn done;
	void *arg;
	struct http1_response resp;
	struct http1_header *headers;
	char *head;          /* copy of the response head */
	struct evbuffer *body;
	struct http1_chunked chunk;
	bool have_head;
	struct event *defer; /* reports results outside bufferevent callbacks */
	struct fetch_result result;
	char error[300];
};

static void fetch_free(struct fetch *f)
{
	upstream_close(f->up, "fetch_cancelled");
	if (f->body)
		evbuffer_free(f->body);
	if (f->defer)
		event_free(f->defer);
	free(f->headers);
	free(f->head);
	OPENSSL_cleanse(f->request, strlen(f->request));
	free(f->request);
	free(f);
}

static void fetch_report(evutil_socket_t fd, short what, void *arg)
{
	struct fetch *f = arg;

	(void)fd;
	(void)what;
	if (f->result.status && f->body) {
		evbuffer_add(f->body, "", 1);
		f->result.body = (const char *)evbuffer_pullup(f->body, -1);
		f->result.body_len = evbuffer_get_length(f->body) - 1;
	} else {
		f->result.body = "";
	}
	f->result.headers = f->resp.headers;
	f->result.n_headers = f->resp.n_headers;
	f->done(f->arg, &f->result);
	fetch_free(f);
}

/* Every outcome goes through here: the connection goes back to the pool
 * when the response was complete, and the caller hears on the next turn. */
static void fetch_finish(struct fetch *f, const char *error, bool reusable)
{
	if (error) {
		snprintf(f->error, sizeof(f->error), "%s", error);
		f->result.error = f->error;
		f->result.status = 0;
	}
	if (f->up) {
		bufferevent_setcb(f->up->bev, NULL, NULL, NULL, NULL);
		if (reusable)
			upstream_release(f->up);
		else
			upstream_close(f->up, error ? "fetch_failed" : "not_reusable");
		f->up = NULL;
	}
	event_active(f->defer, EV_TIMEOUT, 0);
}

static int fetch_read_head(struct fetch *f, struct evbuffer *in)
{
	struct proxy *px = f->pool->site->px;
	enum http1_error err = HTTP1_E_NONE;
	size_t n = OG_MIN(evbuffer_get_length(in), px->resp_limits.max_head_bytes);
	const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);

	f->resp.headers = f->headers;
	ssize_t r = http1_parse_response(p, n, &px->resp_limits, HTTP_M_GET, &f->resp, &err);
	if (r <= 0)
		return (int)r;
	/* Keep the head: the headers point into it for the caller. */
	f->head = x_malloc((size_t)r);
	memcpy(f->head, p, (size_t)r);
	for (size_t i = 0; i < f->resp.n_headers; i++) {
		f->headers[i].name.p = f->head + (f->headers[i].name.p - p);
		f->headers[i].value.p = f->head + (f->headers[i].value.p - p);
	}
	evbuffer_drain(in, (size_t)r);
	f->result.status = f->resp.status;
	f->have_head = true;
	return 1;
}

/* Returns 1 when the body is complete, 0 for more, -1 on error. */
static int fetch_read_body(struct fetch *f, struct evbuffer *in)
{
	if (f->resp.body == HTTP1_BODY_NONE)
		return 1;
	if (f->resp.body == HTTP1_BODY_LENGTH) {
		size_t want = (size_t)f->resp.content_length - evbuffer_get_length(f->body);
		evbuffer_remove_buffer(in, f->body, OG_MIN(want, evbuffer_get_length(in)));
		return evbuffer_get_length(f->body) == f->resp.content_length;
	}
	if (f->resp.body == HTTP1_BODY_UNTIL_CLOSE) {
		evbuffer_add_buffer(f->body, in);
		return 0;
	}
	uint64_t moved = 0;
	return http1_buf_dechunk(&f->chunk, in, f->body, false, &moved);
}

static void fetch_on_read(struct bufferevent *bev, void *arg)
{
	struct fetch *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (!f->have_head) {
		int r = fetch_read_head(f, in);
		if (r < 0) {
			fetch_finish(f, "invalid HTTP response", false);
			return;
		}
		if (r == 0)
			return;
		if (f->resp.body == HTTP1_BODY_LENGTH && f->resp.content_length > f->max_body) {
			fetch_finish(f, "response too large", false);
			return;
		}
	}
	int done = fetch_read_body(f, in);
	if (done < 0)
		fetch_finish(f, "invalid chunked body", false);
	else if (evbuffer_get_length(f->body) > f->max_body)
		fetch_finish(f, "response too large", false);
	else if (done)
		fetch_finish(f, NULL, f->resp.keep_alive && evbuffer_get_length(in) == 0);
}

static void fetch_send(struct fetch *f)
{
	evbuffer_add(bufferevent_get_output(f->up->bev), f->request, strlen(f->request));
}

static void fetch_on_event(struct bufferevent *bev, short events, void *arg)
{
	struct fetch *f = arg;
	char why[400];

	(void)bev;
	if (events & BEV_EVENT_CONNECTED) {
		upstream_attach(f->up, fetch_on_read, NULL, fetch_on_event, f);
		fetch_send(f);
		return;
	}
	if (f->have_head && f->resp.body == HTTP1_BODY_UNTIL_CLOSE && (events & BEV_EVENT_EOF)) {
		fetch_finish(f, NULL, false);
		return;
	}
	f->result.timeout = (events & BEV_EVENT_TIMEOUT) != 0;
	upstream_describe_error(f->up, events, why, sizeof(why));
	fetch_finish(f, why, false);
}

struct fetch *fetch_get(struct upstream_pool *pool, const char *target, const char *authorization,
			size_t max_body, fetch_done_fn done, void *arg)
{
	struct proxy *px = pool->site->px;
	struct fetch *f = x_new(struct fetch);
	size_t n = strlen(target) + strlen(pool->host_header) + (authorization ? strlen(authorization) : 0) + 128;
	char err[300];

	f->pool = pool;
	f->max_body = max_body;
	f->done = done;
	f->arg = arg;
	f->body = evbuffer_new();
	f->headers = x_calloc(px->resp_limits.max_headers, sizeof(*f->headers));
	f->defer = event_new(px->base, -1, 0, fetch_report, f);
	f->request = x_malloc(n);
	snprintf(f->request, n, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%sAccept: application/json\r\n"
		 "User-Agent: ocigate/" OCIGATE_VERSION "\r\n\r\n", target, pool->host_header,
		 authorization ? "Authorization: " : "", authorization ? authorization : "",
		 authorization ? "\r\n" : "");
	http1_chunked_init(&f->chunk);
	/* A fresh connection: a pooled one may have been closed by the other
	 * side, and these requests are too rare to be worth a retry path. */
	f->up = upstream_connect(pool, fetch_on_read, NULL, fetch_on_event, f, err, sizeof(err));
	if (!f->up)
		fetch_finish(f, err, false);
	return f;
}

void fetch_cancel(struct fetch *f)
{
	if (f)
		fetch_free(f);
}
