#include "proxy/fetch.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "net/httpc_response.h"
#include "util/xalloc.h"

struct fetch {
	struct upstream_pool *pool;
	struct upstream_conn *up;
	char *request;
	size_t max_body;
	fetch_done_fn done;
	void *arg;
	struct httpc_response resp;
	struct evbuffer *body;
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
	httpc_response_free(&f->resp);
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
	f->result.headers = f->resp.head.headers;
	f->result.n_headers = f->resp.head.n_headers;
	f->done(f->arg, &f->result);
	fetch_free(f);
}

/* Every outcome goes through here: the connection goes back to the pool
 * when the response was complete, and the caller hears on the next turn. */
static void fetch_finish(struct fetch *f, const char *error, bool reusable)
{
	if (error) {
		og_copy_cut(f->error, sizeof(f->error), error);
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

static void fetch_on_read(struct bufferevent *bev, void *arg)
{
	struct fetch *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char err[300];
	int rc = httpc_response_read(&f->resp, in, f->body, err, sizeof(err));

	if (f->resp.have_head)
		f->result.status = f->resp.head.status;
	if (rc < 0)
		fetch_finish(f, err, false);
	else if (rc > 0)
		fetch_finish(f, NULL, f->resp.head.keep_alive && evbuffer_get_length(in) == 0);
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
	if (httpc_response_ends_at_close(&f->resp) && (events & BEV_EVENT_EOF)) {
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
	httpc_response_init(&f->resp, &px->resp_limits, HTTP_M_GET, max_body, pool->origin);
	f->defer = event_new(px->base, -1, 0, fetch_report, f);
	f->request = x_malloc(n);
	snprintf(f->request, n, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%sAccept: application/json\r\n"
		 "User-Agent: ocigate/" OCIGATE_VERSION "\r\n\r\n", target, pool->host_header,
		 authorization ? "Authorization: " : "", authorization ? authorization : "",
		 authorization ? "\r\n" : "");
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
