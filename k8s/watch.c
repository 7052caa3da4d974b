#include "k8s/watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "k8s/api.h"
#include "util/log.h"
#include "util/xalloc.h"

/* A watch that delivered nothing and lasted less than this counts as a
 * failure, so a server that closes every watch at once is not hammered. */
#define K8S_WATCH_MIN_HEALTHY_S 10

struct k8s_watch {
	struct event_base *base;
	struct k8s_watch_transport t;
	const struct k8s_watch_ops *ops;
	void *arg;
	char *path, *list_kind, *kind, *ns;
	unsigned watch_timeout_s, backoff_min_ms, backoff_max_ms, page_size;
	struct k8s_watch_stats own_stats, *stats;
	bool started, synced, need_list;
	char *rv;
	unsigned gen;
	struct k8s_request *req;
	struct event *timer;
	unsigned failures;
	uint64_t rng;
	time_t watch_started;
	bool watch_got_event;
};

static void k8s_watch_list(struct k8s_watch *w);
static void k8s_watch_open(struct k8s_watch *w);

/* ---- random numbers and backoff ---- */

uint64_t k8s_rand_seed(const void *salt)
{
	struct timeval tv;
	uint64_t s;

	gettimeofday(&tv, NULL);
	s = ((uint64_t)tv.tv_sec << 20) ^ (uint64_t)tv.tv_usec ^ ((uint64_t)getpid() << 40) ^
	    (uint64_t)(uintptr_t)salt;
	return s ? s : 88172645463325252ull;
}

uint64_t k8s_rand_next(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

unsigned k8s_backoff_ms(uint64_t *rng, unsigned min_ms, unsigned max_ms, unsigned *failures,
			unsigned retry_after_s)
{
	uint64_t d = (uint64_t)min_ms << OG_MIN(*failures, 16u);

	if (d > max_ms)
		d = max_ms;
	d = d / 2 + k8s_rand_next(rng) % (d / 2 + 1);
	if (retry_after_s && d < (uint64_t)retry_after_s * 1000)
		d = (uint64_t)retry_after_s * 1000;
	(*failures)++;
	return (unsigned)d;
}

/* ---- the default transport: the API client ---- */

static struct k8s_request *k8s_watch_client_get(void *ctx, const char *path, k8s_response_fn done,
						void *arg)
{
	return k8s_client_get(ctx, path, done, arg);
}

static struct k8s_request *k8s_watch_client_watch(void *ctx, const char *path, k8s_line_fn line,
						  k8s_response_fn end, void *arg)
{
	return k8s_client_watch(ctx, path, line, end, arg);
}

static void k8s_watch_client_cancel(void *ctx, struct k8s_request *r)
{
	(void)ctx;
	k8s_request_cancel(r);
}

/* ---- the loop ---- */

static void k8s_watch_cancel(struct k8s_watch *w)
{
	if (w->req)
		w->t.cancel(w->t.ctx, w->req);
	w->req = NULL;
}

static void k8s_watch_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct k8s_watch *w = arg;

	(void)fd;
	(void)what;
	if (w->need_list)
		k8s_watch_list(w);
	else
		k8s_watch_open(w);
}

static void k8s_watch_retry(struct k8s_watch *w, bool relist, unsigned retry_after)
{
	unsigned ms = k8s_backoff_ms(&w->rng, w->backoff_min_ms, w->backoff_max_ms, &w->failures,
				     retry_after);
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	w->stats->retries++;
	w->stats->last_backoff_ms = ms;
	w->need_list = relist || !w->rv;
	evtimer_add(w->timer, &tv);
}

/* detail, else the client's error, else the API server's Status. */
static void k8s_watch_log_failure(const struct k8s_watch *w, const char *op,
				  const struct k8s_response *r, const char *detail)
{
	char st[256] = "";
	struct k8s_status status = { 0 };

	if (!detail && !r->error && r->status && r->len &&
	    k8s_status_parse(r->body, r->len, &status, st, sizeof(st)) == 0)
		k8s_status_format(&status, st, sizeof(st));
	k8s_status_free(&status);
	log_error("k8s_watch_failed", "kind=%s ns=%s op=%s status=%d error=\"%s\"", w->kind,
		  w->ns ? w->ns : "*", op, r->status, detail ? detail : r->error ? r->error : st);
}

static char *k8s_watch_path(const struct k8s_watch *w, bool watch, const char *cont)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *p;

	evbuffer_add_printf(b, "%s?", w->path);
	if (watch) {
		evbuffer_add_printf(b, "watch=1&allowWatchBookmarks=true&timeoutSeconds=%u&resourceVersion=",
				    w->watch_timeout_s);
		k8s_client_escape(b, w->rv);
	} else {
		evbuffer_add_printf(b, "limit=%u", w->page_size);
		if (cont) {
			evbuffer_add_printf(b, "&continue=");
			k8s_client_escape(b, cont);
		}
	}
	n = evbuffer_get_length(b);
	p = x_malloc(n + 1);
	evbuffer_remove(b, p, n);
	p[n] = '\0';
	evbuffer_free(b);
	return p;
}

static void k8s_watch_on_list(void *arg, const struct k8s_response *r);

static void k8s_watch_get_page(struct k8s_watch *w, const char *cont)
{
	char *path = k8s_watch_path(w, false, cont);

	w->stats->lists++;
	w->req = w->t.get(w->t.ctx, path, k8s_watch_on_list, w);
	free(path);
}

static void k8s_watch_list(struct k8s_watch *w)
{
	if (w->started)
		w->stats->relists++;
	w->started = true;
	w->gen++;
	k8s_watch_get_page(w, NULL);
}

static void k8s_watch_listed(struct k8s_watch *w, const char *rv)
{
	free(w->rv);
	w->rv = x_strdup(rv);
	if (!w->synced)
		log_info("k8s_synced", "kind=%s ns=%s rv=%s", w->kind, w->ns ? w->ns : "*", rv);
	w->synced = true;
	w->failures = 0;
	k8s_watch_open(w);
	if (w->ops->listed)
		w->ops->listed(w->arg, w);
}

static void k8s_watch_on_list(void *arg, const struct k8s_response *r)
{
	struct k8s_watch *w = arg;
	struct k8s_list l = { 0 };
	char err[256];
	int rc;

	w->req = NULL;
	if (r->error || r->status != 200) {
		k8s_watch_log_failure(w, "list", r, NULL);
		k8s_watch_retry(w, true, r->retry_after);
		return;
	}
	rc = k8s_list_parse(&l, r->body, r->len, w->list_kind, err, sizeof(err));
	if (rc != 0 || !l.resource_version) {
		k8s_watch_log_failure(w, "list", r, rc != 0 ? err : "list without resourceVersion");
		k8s_list_free(&l);
		k8s_watch_retry(w, true, 0);
		return;
	}
	for (int it = json_array_first(&l.doc, l.items); it >= 0; it = json_next(&l.doc, it))
		w->ops->item(w->arg, w, &l.doc, it, false);
	if (l.continue_token && *l.continue_token)
		k8s_watch_get_page(w, l.continue_token);
	else
		k8s_watch_listed(w, l.resource_version);
	k8s_list_free(&l);
}

/* A line that is not an event, or an ERROR event: this watch is over. */
static void k8s_watch_on_bad_line(struct k8s_watch *w, const struct k8s_watch_event *ev,
				  const char *parse_err)
{
	struct k8s_response r = { .status = 200 };
	char st[256];
	bool gone = false;

	if (!parse_err) {
		r.status = ev->status.code;
		gone = k8s_status_is_expired(&ev->status);
		k8s_status_format(&ev->status, st, sizeof(st));
	}
	k8s_watch_log_failure(w, "watch", &r, parse_err ? parse_err : st);
	k8s_watch_cancel(w);
	if (gone)
		k8s_watch_list(w); /* the resourceVersion is too old */
	else
		k8s_watch_retry(w, false, 0);
}

static void k8s_watch_on_line(void *arg, const char *line, size_t n)
{
	struct k8s_watch *w = arg;
	struct k8s_watch_event ev = { 0 };
	char err[256];

	if (k8s_watch_event_parse(&ev, line, n, err, sizeof(err)) != 0) {
		k8s_watch_on_bad_line(w, &ev, err);
		goto out;
	}
	if (ev.type == K8S_WATCH_ERROR) {
		k8s_watch_on_bad_line(w, &ev, NULL);
		goto out;
	}
	w->stats->events++;
	w->watch_got_event = true;
	w->failures = 0;
	if (ev.type != K8S_WATCH_BOOKMARK)
		w->ops->item(w->arg, w, &ev.doc, ev.object, ev.type == K8S_WATCH_DELETED);
	free(w->rv);
	w->rv = x_strdup(ev.resource_version);
out:
	k8s_watch_event_free(&ev);
}

static void k8s_watch_on_end(void *arg, const struct k8s_response *r)
{
	struct k8s_watch *w = arg;
	struct timeval now;

	w->req = NULL;
	if (r->status == 410) {
		k8s_watch_log_failure(w, "watch", r, NULL);
		k8s_watch_list(w);
		return;
	}
	if (r->error || r->status != 200) {
		k8s_watch_log_failure(w, "watch", r, NULL);
		k8s_watch_retry(w, false, r->retry_after);
		return;
	}
	event_base_gettimeofday_cached(w->base, &now);
	if (!w->watch_got_event && now.tv_sec - w->watch_started < K8S_WATCH_MIN_HEALTHY_S) {
		k8s_watch_retry(w, false, 0);
		return;
	}
	k8s_watch_open(w); /* timeoutSeconds ran out: carry on from w->rv */
}

static void k8s_watch_open(struct k8s_watch *w)
{
	char *path = k8s_watch_path(w, true, NULL);
	struct timeval now;

	event_base_gettimeofday_cached(w->base, &now);
	w->watch_started = now.tv_sec;
	w->watch_got_event = false;
	w->stats->watches++;
	w->req = w->t.watch(w->t.ctx, path, k8s_watch_on_line, k8s_watch_on_end, w);
	free(path);
}

/* ---- life cycle ---- */

static unsigned k8s_watch_or(unsigned v, unsigned dflt)
{
	return v ? v : dflt;
}

struct k8s_watch *k8s_watch_new(struct event_base *base, const struct k8s_watch_opts *o,
				const struct k8s_watch_ops *ops, void *arg)
{
	static const struct k8s_watch_transport client_transport = {
		.get = k8s_watch_client_get,
		.watch = k8s_watch_client_watch,
		.cancel = k8s_watch_client_cancel,
	};
	struct k8s_watch *w = x_new(struct k8s_watch);

	w->base = base;
	w->t = o->transport ? *o->transport : client_transport;
	if (!o->transport)
		w->t.ctx = o->client;
	w->ops = ops;
	w->arg = arg;
	w->path = x_strdup(o->path);
	w->list_kind = x_strdup(o->list_kind);
	w->kind = x_strdup(o->kind);
	w->ns = o->ns ? x_strdup(o->ns) : NULL;
	w->watch_timeout_s = k8s_watch_or(o->watch_timeout_s, 300);
	w->backoff_min_ms = k8s_watch_or(o->backoff_min_ms, 500);
	w->backoff_max_ms = k8s_watch_or(o->backoff_max_ms, 30000);
	w->page_size = k8s_watch_or(o->page_size, 500);
	w->stats = o->stats ? o->stats : &w->own_stats;
	w->rng = k8s_rand_seed(w);
	w->timer = evtimer_new(base, k8s_watch_on_timer, w);
	if (!w->timer)
		abort();
	return w;
}

void k8s_watch_free(struct k8s_watch *w)
{
	if (!w)
		return;
	k8s_watch_cancel(w);
	event_free(w->timer);
	free(w->path);
	free(w->list_kind);
	free(w->kind);
	free(w->ns);
	free(w->rv);
	free(w);
}

void k8s_watch_start(struct k8s_watch *w)
{
	if (!w->started)
		k8s_watch_list(w);
}

bool k8s_watch_started(const struct k8s_watch *w)
{
	return w->started;
}

bool k8s_watch_synced(const struct k8s_watch *w)
{
	return w->synced;
}

unsigned k8s_watch_gen(const struct k8s_watch *w)
{
	return w->gen;
}

const struct k8s_watch_stats *k8s_watch_get_stats(const struct k8s_watch *w)
{
	return w->stats;
}
