/* k8s/watch.c on a fake transport: paging, resourceVersion bookkeeping,
 * bookmarks, relist on 410 (HTTP and ERROR event), backoff with jitter and
 * Retry-After, the synced signal, sweeping, cancel on free. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "k8s/watch.h"
#include "test/unit/check.h"
#include "util/log.h"

static struct event_base *base;

/* ---- the fake API server side ---- */

struct fake_req {
	bool watch, cancelled, done;
	char path[512];
	k8s_response_fn done_fn;
	k8s_line_fn line_fn;
	void *arg;
};

#define MAX_REQS 64
static struct fake_req reqs[MAX_REQS];
static int n_reqs;

static struct fake_req *fake_new(const char *path, bool watch, k8s_response_fn done,
				 k8s_line_fn line, void *arg)
{
	struct fake_req *q;

	if (n_reqs >= MAX_REQS)
		abort();
	q = &reqs[n_reqs++];
	memset(q, 0, sizeof(*q));
	q->watch = watch;
	snprintf(q->path, sizeof(q->path), "%s", path);
	q->done_fn = done;
	q->line_fn = line;
	q->arg = arg;
	return q;
}

static struct k8s_request *fake_get(void *ctx, const char *path, k8s_response_fn done, void *arg)
{
	(void)ctx;
	return (struct k8s_request *)fake_new(path, false, done, NULL, arg);
}

static struct k8s_request *fake_watch(void *ctx, const char *path, k8s_line_fn line,
				      k8s_response_fn end, void *arg)
{
	(void)ctx;
	return (struct k8s_request *)fake_new(path, true, end, line, arg);
}

static void fake_cancel(void *ctx, struct k8s_request *r)
{
	struct fake_req *q = (struct fake_req *)r;

	(void)ctx;
	CHECK(!q->done && !q->cancelled);
	q->cancelled = true;
}

static const struct k8s_watch_transport fake_transport = {
	.get = fake_get, .watch = fake_watch, .cancel = fake_cancel,
};

static struct fake_req *last(void)
{
	if (!n_reqs)
		abort();
	return &reqs[n_reqs - 1];
}

static void reply(struct fake_req *q, int status, const char *body, const char *error,
		  unsigned retry_after)
{
	struct k8s_response r = {
		.status = status, .body = body, .len = body ? strlen(body) : 0, .error = error,
		.retry_after = retry_after,
	};

	CHECK(!q->done && !q->cancelled);
	q->done = true;
	q->done_fn(q->arg, &r);
}

static void line(struct fake_req *q, const char *text)
{
	CHECK(q->watch && !q->done && !q->cancelled);
	q->line_fn(q->arg, text, strlen(text));
}

/* Runs the loop until a new request arrives (a backoff timer fired). */
static bool wait_request(int n_before, int max_ms)
{
	for (int i = 0; i < max_ms / 5 && n_reqs == n_before; i++) {
		struct timeval tv = { 0, 5000 };
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return n_reqs > n_before;
}

static bool has(const char *s, const char *sub)
{
	return s && strstr(s, sub);
}

/* ---- what the user of the watch sees ---- */

struct obj {
	char name[32];
	unsigned gen;
};

struct user {
	struct obj objs[16];
	int n_objs;
	int items, deletes, listed;
	bool synced_at_listed;
	int swept;
};

static void u_item(void *arg, struct k8s_watch *w, const struct json_doc *d, int tok, bool deleted)
{
	struct user *u = arg;
	char name[32];
	int i;

	if (json_string(d, json_path(d, tok, "metadata.name"), name, sizeof(name)) <= 0)
		return;
	u->items++;
	for (i = 0; i < u->n_objs && strcmp(u->objs[i].name, name) != 0; i++)
		;
	if (deleted) {
		u->deletes++;
		if (i < u->n_objs)
			u->objs[i] = u->objs[--u->n_objs];
		return;
	}
	if (i == u->n_objs) {
		if (u->n_objs >= 16)
			abort();
		snprintf(u->objs[u->n_objs++].name, sizeof(u->objs[0].name), "%s", name);
	}
	u->objs[i].gen = k8s_watch_gen(w);
}

static void u_listed(void *arg, struct k8s_watch *w)
{
	struct user *u = arg;

	u->listed++;
	u->synced_at_listed = k8s_watch_synced(w);
	for (int i = 0; i < u->n_objs;) {
		if (u->objs[i].gen != k8s_watch_gen(w)) {
			u->objs[i] = u->objs[--u->n_objs];
			u->swept++;
		} else {
			i++;
		}
	}
}

static const struct k8s_watch_ops u_ops = { .item = u_item, .listed = u_listed };

static bool u_has(const struct user *u, const char *name)
{
	for (int i = 0; i < u->n_objs; i++)
		if (strcmp(u->objs[i].name, name) == 0)
			return true;
	return false;
}

static char *list_body(char *buf, size_t cap, const char *rv, const char *cont, const char *names)
{
	char items[512] = "";
	char one[128];
	const char *p = names;

	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		snprintf(one, sizeof(one), "%s{\"metadata\":{\"name\":\"%.*s\",\"resourceVersion\":\"1\"}}",
			 items[0] ? "," : "", (int)n, p);
		strncat(items, one, sizeof(items) - strlen(items) - 1);
		p = e ? e + 1 : NULL;
	}
	snprintf(buf, cap, "{\"kind\":\"ThingList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"%s\"%s%s%s},"
		 "\"items\":[%s]}", rv, cont ? ",\"continue\":\"" : "", cont ? cont : "", cont ? "\"" : "", items);
	return buf;
}

static char *event(char *buf, size_t cap, const char *type, const char *name, const char *rv)
{
	snprintf(buf, cap, "{\"type\":\"%s\",\"object\":{\"kind\":\"Thing\",\"metadata\":{\"name\":\"%s\","
		 "\"resourceVersion\":\"%s\"}}}", type, name, rv);
	return buf;
}

static struct k8s_watch *new_watch(struct user *u, struct k8s_watch_stats *stats)
{
	struct k8s_watch_opts o = {
		.transport = &fake_transport,
		.path = "/api/v1/namespaces/ns1/things",
		.list_kind = "Thing",
		.kind = "things",
		.ns = "ns1",
		.backoff_min_ms = 40,
		.backoff_max_ms = 160,
		.page_size = 2,
		.watch_timeout_s = 60,
		.stats = stats,
	};

	memset(u, 0, sizeof(*u));
	n_reqs = 0;
	return k8s_watch_new(base, &o, &u_ops, u);
}

/* Lists "a,b" then "c" in two pages at rv 10; returns the watch request. */
static struct fake_req *sync_abc(struct k8s_watch *w, struct user *u)
{
	char b[1024];

	CHECK(!k8s_watch_started(w));
	k8s_watch_start(w);
	k8s_watch_start(w); /* a second start does nothing */
	CHECK_INT(n_reqs, 1);
	CHECK(k8s_watch_started(w) && !k8s_watch_synced(w));
	CHECK(strcmp(reqs[0].path, "/api/v1/namespaces/ns1/things?limit=2") == 0);
	reply(&reqs[0], 200, list_body(b, sizeof(b), "9", "tok/1=", "a,b"), NULL, 0);
	CHECK_INT(n_reqs, 2);
	CHECK(strcmp(reqs[1].path, "/api/v1/namespaces/ns1/things?limit=2&continue=tok%2F1%3D") == 0);
	CHECK(!k8s_watch_synced(w) && u->listed == 0);
	reply(&reqs[1], 200, list_body(b, sizeof(b), "10", NULL, "c"), NULL, 0);
	CHECK(k8s_watch_synced(w));
	CHECK_INT(u->listed, 1);
	CHECK(u->synced_at_listed);
	CHECK_INT(u->n_objs, 3);
	CHECK_INT(n_reqs, 3);
	CHECK(last()->watch);
	CHECK(strcmp(last()->path, "/api/v1/namespaces/ns1/things?watch=1&allowWatchBookmarks=true"
		     "&timeoutSeconds=60&resourceVersion=10") == 0);
	return last();
}

static void test_paging_events_bookmarks(void)
{
	struct user u;
	struct k8s_watch *w = new_watch(&u, NULL);
	struct fake_req *q = sync_abc(w, &u);
	const struct k8s_watch_stats *st = k8s_watch_get_stats(w);
	char b[512];

	line(q, event(b, sizeof(b), "ADDED", "d", "11"));
	line(q, event(b, sizeof(b), "MODIFIED", "a", "12"));
	line(q, event(b, sizeof(b), "DELETED", "b", "13"));
	CHECK(u_has(&u, "d") && u_has(&u, "a") && !u_has(&u, "b"));
	CHECK_INT(u.deletes, 1);
	int items = u.items;
	line(q, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Thing\",\"metadata\":{\"resourceVersion\":\"20\"}}}");
	CHECK_INT(u.items, items); /* a bookmark is no object */
	CHECK_INT(st->events, 4);
	/* timeoutSeconds ran out after events: watch again at once, from the bookmark */
	reply(q, 200, NULL, NULL, 0);
	CHECK_INT(n_reqs, 4);
	CHECK(last()->watch && has(last()->path, "resourceVersion=20"));
	CHECK_INT(st->lists, 2);
	CHECK_INT(st->relists, 0);
	CHECK_INT(st->watches, 2);
	CHECK_INT(st->retries, 0);
	k8s_watch_free(w);
	CHECK(last()->cancelled); /* free cancels the open watch */
}

static void test_410(void)
{
	struct user u;
	struct k8s_watch_stats shared = { 0 };
	struct k8s_watch *w = new_watch(&u, &shared);
	struct fake_req *q = sync_abc(w, &u);
	unsigned gen = k8s_watch_gen(w);
	char b[1024];

	CHECK(k8s_watch_get_stats(w) == &shared);
	/* an ERROR event with code 410: the watch is cancelled, list at once */
	line(q, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	     "\"message\":\"too old resource version: 10 (15)\",\"reason\":\"Expired\",\"code\":410}}");
	CHECK(q->cancelled);
	CHECK_INT(n_reqs, 4);
	CHECK(!last()->watch && strcmp(last()->path, "/api/v1/namespaces/ns1/things?limit=2") == 0);
	CHECK_INT(k8s_watch_gen(w), gen + 1);
	CHECK_INT(shared.relists, 1);
	CHECK_INT(shared.retries, 0);
	CHECK(k8s_watch_synced(w)); /* stays synced while relisting */
	/* b and c are gone meanwhile: the listed callback sweeps them */
	reply(last(), 200, list_body(b, sizeof(b), "30", NULL, "a"), NULL, 0);
	CHECK_INT(u.listed, 2);
	CHECK_INT(u.n_objs, 1);
	CHECK(u_has(&u, "a"));
	CHECK_INT(u.swept, 2);
	CHECK(last()->watch && has(last()->path, "resourceVersion=30"));

	/* HTTP 410 for the watch: list again at once */
	reply(last(), 410, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	      "\"reason\":\"Expired\",\"code\":410}", "HTTP 410", 0);
	CHECK(!last()->watch && has(last()->path, "limit=2"));
	CHECK_INT(shared.relists, 2);
	reply(last(), 200, list_body(b, sizeof(b), "40", NULL, "a,e"), NULL, 0);
	CHECK(last()->watch && has(last()->path, "resourceVersion=40"));
	CHECK(u_has(&u, "e"));
	CHECK_INT(u.listed, 3);
	k8s_watch_free(w);
}

static void test_backoff(void)
{
	struct user u;
	struct k8s_watch *w = new_watch(&u, NULL);
	const struct k8s_watch_stats *st = k8s_watch_get_stats(w);
	char b[1024];
	int n;

	k8s_watch_start(w);
	/* a failed list: list again after 20-40 ms, then 40-80, 80-160, capped */
	unsigned lo[] = { 20, 40, 80, 80, 80 }, hi[] = { 40, 80, 160, 160, 160 };
	for (int i = 0; i < 5; i++) {
		n = n_reqs;
		reply(last(), 500, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
		      "\"message\":\"etcd is sad\",\"reason\":\"InternalError\",\"code\":500}", NULL, 0);
		CHECK_INT(st->retries, i + 1);
		CHECK(st->last_backoff_ms >= lo[i] && st->last_backoff_ms <= hi[i]);
		CHECK_INT(n_reqs, n); /* nothing before the timer */
		CHECK(wait_request(n, 5000));
		CHECK(!last()->watch && has(last()->path, "limit=2"));
	}
	CHECK(!k8s_watch_synced(w));
	CHECK_INT(st->relists, 5);
	/* a list that is not a list: retried the same way */
	n = n_reqs;
	reply(last(), 200, "{\"kind\":\"OtherList\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}", NULL, 0);
	CHECK_INT(st->retries, 6);
	CHECK(wait_request(n, 5000));
	reply(last(), 200, list_body(b, sizeof(b), "7", NULL, "a"), NULL, 0);
	CHECK(k8s_watch_synced(w));
	struct fake_req *q = last();
	CHECK(q->watch && has(q->path, "resourceVersion=7"));

	/* a watch that ends without an event at once counts as a failure, and
	 * success before reset the count: 20-40 ms, then watch from the same rv */
	n = n_reqs;
	reply(q, 200, NULL, NULL, 0);
	CHECK_INT(st->retries, 7);
	CHECK(st->last_backoff_ms >= 20 && st->last_backoff_ms <= 40);
	CHECK_INT(n_reqs, n);
	CHECK(wait_request(n, 5000));
	CHECK(last()->watch && has(last()->path, "resourceVersion=7"));

	/* a broken watch: watch again from the last rv, not list */
	char ev[512];
	line(last(), event(ev, sizeof(ev), "ADDED", "x", "8"));
	n = n_reqs;
	reply(last(), 200, NULL, "connection reset by peer", 0);
	CHECK_INT(st->retries, 8);
	CHECK(st->last_backoff_ms >= 20 && st->last_backoff_ms <= 40); /* the event reset it */
	CHECK(wait_request(n, 5000));
	CHECK(last()->watch && has(last()->path, "resourceVersion=8"));

	/* a line that is no event: cancel, watch again from the last rv */
	q = last();
	n = n_reqs;
	line(q, "this is not json");
	CHECK(q->cancelled);
	CHECK(wait_request(n, 5000));
	CHECK(last()->watch && has(last()->path, "resourceVersion=8"));

	/* an ERROR event other than 410: watch again after a backoff */
	q = last();
	n = n_reqs;
	line(q, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	     "\"message\":\"internal\",\"reason\":\"InternalError\",\"code\":500}}");
	CHECK(q->cancelled);
	CHECK_INT(n_reqs, n);
	CHECK(wait_request(n, 5000));
	CHECK(last()->watch && has(last()->path, "resourceVersion=8"));

	/* Retry-After is honoured; free cancels the timer (nothing runs after) */
	reply(last(), 429, NULL, NULL, 2);
	CHECK(st->last_backoff_ms >= 2000);
	n = n_reqs;
	k8s_watch_free(w);
	wait_request(n, 100);
	CHECK_INT(n_reqs, n);
}

static void test_backoff_fn(void)
{
	uint64_t rng = k8s_rand_seed(&rng);
	unsigned failures = 0, seen_lo = 0, seen_hi = 0;

	CHECK(rng != 0);
	for (int i = 0; i < 1000; i++) {
		unsigned f = 0;
		unsigned d = k8s_backoff_ms(&rng, 500, 30000, &f, 0);
		CHECK(d >= 250 && d <= 500);
		CHECK_INT(f, 1);
		seen_lo += d < 300;
		seen_hi += d > 450;
	}
	CHECK(seen_lo > 0 && seen_hi > 0); /* jitter spreads */
	failures = 40; /* no overflow past the cap */
	unsigned d = k8s_backoff_ms(&rng, 500, 30000, &failures, 0);
	CHECK(d >= 15000 && d <= 30000);
	CHECK_INT(failures, 41);
	failures = 0;
	CHECK_INT(k8s_backoff_ms(&rng, 500, 30000, &failures, 45), 45000);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	if (getenv("K8S_TEST_VERBOSE"))
		log_set_level(LOG_DEBUG);
	base = event_base_new();
	test_backoff_fn();
	test_paging_events_bookmarks();
	test_410();
	test_backoff();
	event_base_free(base);
	CHECK_DONE();
}
