#include "proxy/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "k8s/api.h"
#include "k8s/client.h"
#include "k8s/status.h"
#include "k8s/store.h"
#include "proxy/fetch.h"
#include "proxy/token.h"
#include "proxy/upstream.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define STATUS_CONNECTORS_API "/apis/connectors.alauda.io/v1alpha1/namespaces/"
#define STATUS_PROBE_MAX_BODY (64 * 1024)
#define STATUS_PROBE_BACKOFF_MIN_MS 5000u
#define STATUS_PROBE_BACKOFF_MAX_MS (10u * 60 * 1000)
#define STATUS_API_BACKOFF_MIN_MS 1000u
#define STATUS_API_BACKOFF_MAX_MS 60000u
/* Conflicts in a row answered by re-reading at once; after that, backoff. */
#define STATUS_QUICK_CONFLICTS 3
/* The version check needs no scope (distribution accepts a token without
 * any access); it is also the cache key of that token. */
#define STATUS_PROBE_SCOPE ""

enum status_phase {
	ST_IDLE,     /* the timer holds the next step */
	ST_PROBING,  /* a fetch or a token wait in flight */
	ST_WRITING,  /* a PATCH or a GET in flight */
};

struct status_entry {
	struct status_writer *w;
	struct status_entry *next, *prev;
	char *ns, *name;
	enum status_phase phase;
	struct event *timer;
	bool timer_decides;   /* the timer runs a decision, not a probe */
	bool dirty;           /* changed while busy: probe again when done */
	bool have_probe;      /* a probe result (or "cannot probe") is known */
	/* the probe */
	struct connector *conn;
	struct upstream_site *site;
	struct fetch *fetch;
	struct token_wait token_wait;
	bool with_token;
	enum k8s_probe_outcome outcome;
	int http_status;
	char detail[512];
	/* the object as a GET after a 409 found it (one decision only) */
	char *fresh_rv, *fresh_status;
	int64_t fresh_generation;
	bool have_fresh;
	struct k8s_request *req;
	unsigned probe_failures, api_failures, conflicts;
};

struct status_writer {
	struct proxy *px;
	struct k8s_client *client;
	struct k8s_store *store;
	uint64_t interval_ms;
	char *public_address;
	struct status_entry *entries;
	struct event *resync;
	uint64_t rng;
	struct status_writer_stats stats;
};

static void status_probe(struct status_entry *e);
static void status_decide(struct status_entry *e);

/* ---- timing ---- */

static uint64_t status_random(struct status_writer *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static void status_arm(struct status_entry *e, uint64_t ms, bool decide)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
			      .tv_usec = (suseconds_t)((ms % 1000) * 1000) };

	e->phase = ST_IDLE;
	e->timer_decides = decide;
	evtimer_add(e->timer, &tv);
}

/* Equal jitter: half fixed, half random, so replicas and connectors do
 * not probe in lockstep. */
static uint64_t status_jitter(struct status_writer *w, uint64_t ms)
{
	return ms / 2 + status_random(w) % (ms / 2 + 1);
}

static uint64_t status_backoff(struct status_writer *w, unsigned *failures, uint64_t min,
			       uint64_t max)
{
	unsigned shift = OG_MIN(*failures, 20u);
	uint64_t d = min << shift;

	(*failures)++;
	return status_jitter(w, OG_MIN(d, max));
}

/* The next periodic probe: the interval when the registry was fine (or
 * could not be probed), backoff while it fails. */
static void status_schedule_next(struct status_entry *e)
{
	struct status_writer *w = e->w;
	uint64_t min = OG_MIN(w->interval_ms, STATUS_PROBE_BACKOFF_MIN_MS);
	uint64_t max = OG_MIN(4 * w->interval_ms, STATUS_PROBE_BACKOFF_MAX_MS);
	bool failing = e->outcome != K8S_PROBE_OK && e->outcome != K8S_PROBE_NONE;

	if (e->dirty) {
		status_arm(e, 0, false);
		return;
	}
	if (!failing) {
		e->probe_failures = 0;
		status_arm(e, w->interval_ms - w->interval_ms / 10 +
				      status_random(w) % (w->interval_ms / 5 + 1), false);
		return;
	}
	status_arm(e, status_backoff(w, &e->probe_failures, min, OG_MAX(max, min)), false);
}

/* ---- entries ---- */

static struct status_entry *status_find(struct status_writer *w, const char *ns, const char *name)
{
	for (struct status_entry *e = w->entries; e; e = e->next)
		if (strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static void status_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct status_entry *e = arg;

	(void)fd;
	(void)what;
	if (e->timer_decides)
		status_decide(e);
	else
		status_probe(e);
}

static struct status_entry *status_entry_new(struct status_writer *w, const char *ns,
					     const char *name)
{
	struct status_entry *e = x_new(struct status_entry);

	e->w = w;
	e->ns = x_strdup(ns);
	e->name = x_strdup(name);
	e->timer = evtimer_new(w->px->base, status_on_timer, e);
	if (!e->timer)
		abort(); /* out of memory, as x_malloc would */
	e->next = w->entries;
	if (w->entries)
		w->entries->prev = e;
	w->entries = e;
	w->stats.connectors++;
	return e;
}

static void status_clear_fresh(struct status_entry *e)
{
	free(e->fresh_rv);
	free(e->fresh_status);
	e->fresh_rv = e->fresh_status = NULL;
	e->have_fresh = false;
}

/* Stops the probe in flight and lets go of the connector. */
static void status_stop_probe(struct status_entry *e)
{
	fetch_cancel(e->fetch);
	e->fetch = NULL;
	token_wait_cancel(&e->token_wait);
	connector_unref(e->conn);
	e->conn = NULL;
	e->site = NULL;
}

static void status_entry_free(struct status_entry *e)
{
	struct status_writer *w = e->w;

	status_stop_probe(e);
	if (e->req)
		k8s_request_cancel(e->req);
	event_free(e->timer);
	status_clear_fresh(e);
	if (e->prev)
		e->prev->next = e->next;
	else
		w->entries = e->next;
	if (e->next)
		e->next->prev = e->prev;
	w->stats.connectors--;
	free(e->ns);
	free(e->name);
	free(e);
}

/* ---- probing the registry ---- */

static void status_probe_done(struct status_entry *e, enum k8s_probe_outcome outcome, int http,
			      const char *detail)
{
	e->outcome = outcome;
	e->http_status = http;
	og_copy_cut(e->detail, sizeof(e->detail), detail ? detail : "");
	e->have_probe = true;
	log_debug("connector_probe", "ns=%s name=%s outcome=%d http_status=%d", e->ns, e->name,
		  (int)outcome, http);
	/* Not from here: this runs inside the fetch's or the token cache's
	 * callback, and dropping the connector may free both. */
	status_arm(e, 0, true);
}

static void status_fetch_v2(struct status_entry *e, const char *authorization);

static void status_on_token(void *arg, const char *authorization, const char *error,
			    enum token_failure failure)
{
	struct status_entry *e = arg;
	char why[600];

	if (authorization) {
		status_fetch_v2(e, authorization);
		return;
	}
	snprintf(why, sizeof(why), "registry token request %s: %s",
		 failure == TOKEN_REFUSED ? "refused the connector's credentials" :
		 failure == TOKEN_TIMEOUT ? "timed out" : "failed",
		 error ? error : "unknown error");
	status_probe_done(e, failure == TOKEN_REFUSED ? K8S_PROBE_DENIED : K8S_PROBE_TOKEN_FAILED,
			  e->http_status, why);
}

static void status_on_denied(struct status_entry *e, int http)
{
	char why[512];

	if (e->with_token)
		token_invalidate(e->site->tokens, STATUS_PROBE_SCOPE);
	snprintf(why, sizeof(why), "GET /v2/ answered HTTP %d %s", http,
		 e->conn->authorization || e->with_token ?
			 "to the connector's credentials" :
			 "without credentials (the connector has no secretRef)");
	status_probe_done(e, K8S_PROBE_DENIED, http, why);
}

static void status_on_v2(void *arg, const struct fetch_result *r)
{
	struct status_entry *e = arg;
	char why[600];

	e->fetch = NULL;
	if (r->error) {
		snprintf(why, sizeof(why), "%s%s", r->error, r->timeout ? " (timeout)" : "");
		status_probe_done(e, K8S_PROBE_UNREACHABLE, 0, why);
		return;
	}
	e->http_status = r->status;
	if (r->status == 200) {
		status_probe_done(e, K8S_PROBE_OK, 200, NULL);
		return;
	}
	if (r->status == 401 && !e->with_token) {
		enum upstream_challenge ch = upstream_site_learn_challenge(e->site, r->headers,
									   r->n_headers, why,
									   sizeof(why));
		if (ch == UPSTREAM_CHALLENGE_REFUSED) {
			status_probe_done(e, K8S_PROBE_TOKEN_FAILED, r->status, why);
			return;
		}
		if (ch == UPSTREAM_CHALLENGE_BEARER) {
			e->with_token = true;
			token_get(e->site->tokens, &e->token_wait, STATUS_PROBE_SCOPE,
				  status_on_token, e);
			return;
		}
	}
	if (r->status == 401 || r->status == 403) {
		status_on_denied(e, r->status);
		return;
	}
	snprintf(why, sizeof(why), "GET /v2/ answered HTTP %d, expected 200 (is %s an OCI registry?)",
		 r->status, e->conn->address);
	status_probe_done(e, K8S_PROBE_UNEXPECTED, r->status, why);
}

static void status_fetch_v2(struct status_entry *e, const char *authorization)
{
	char target[600];

	snprintf(target, sizeof(target), "%s/v2/", e->conn->path_prefix);
	e->fetch = fetch_get(upstream_site_registry(e->site), target, authorization,
			     STATUS_PROBE_MAX_BODY, status_on_v2, e);
}

static void status_probe(struct status_entry *e)
{
	struct status_writer *w = e->w;
	struct k8s_store_connector_info info;
	char err[300];

	status_stop_probe(e);
	e->dirty = false;
	e->with_token = false;
	e->http_status = 0;
	if (k8s_store_connector_info(w->store, e->ns, e->name, &info) != 0 || !info.class_name ||
	    strcmp(info.class_name, "oci") != 0) {
		status_entry_free(e);
		return;
	}
	e->phase = ST_PROBING;
	if (info.problem != K8S_STORE_OK) {
		status_probe_done(e, K8S_PROBE_NONE, 0, NULL);
		return;
	}
	e->conn = k8s_store_find_connector(w->store, og_str_make(e->ns, strlen(e->ns)),
					   og_str_make(e->name, strlen(e->name)));
	if (!e->conn || e->conn->unavailable) {
		status_probe_done(e, K8S_PROBE_NONE, 0, NULL);
		return;
	}
	e->site = upstream_site_get(w->px, e->conn, err, sizeof(err));
	if (!e->site) {
		status_probe_done(e, K8S_PROBE_UNREACHABLE, 0, err);
		return;
	}
	w->stats.probes++;
	/* Basic credentials (if any) first, as a client would; a Bearer
	 * challenge then sends us to the token service. */
	status_fetch_v2(e, e->conn->authorization);
}

/* ---- writing the status ---- */

static void status_on_patch(void *arg, const struct k8s_response *r);
static void status_on_get(void *arg, const struct k8s_response *r);

static char *status_object_path(const struct status_entry *e, bool subresource)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *p;

	evbuffer_add_printf(b, STATUS_CONNECTORS_API);
	k8s_client_escape(b, e->ns);
	evbuffer_add_printf(b, "/connectors/");
	k8s_client_escape(b, e->name);
	if (subresource)
		evbuffer_add_printf(b, "/status");
	n = evbuffer_get_length(b);
	p = x_malloc(n + 1);
	evbuffer_remove(b, p, n);
	p[n] = '\0';
	evbuffer_free(b);
	return p;
}

static void status_api_failed(struct status_entry *e, const char *op, const struct k8s_response *r)
{
	struct k8s_status st = { 0 };
	char msg[300] = "";

	if (!r->error && r->len && k8s_status_parse(r->body, r->len, &st, msg, sizeof(msg)) == 0)
		k8s_status_format(&st, msg, sizeof(msg));
	k8s_status_free(&st);
	e->w->stats.failures++;
	log_error("connector_status_failed", "ns=%s name=%s op=%s status=%d error=\"%s\"", e->ns,
		  e->name, op, r->status, r->error ? r->error : msg);
	status_arm(e, OG_MAX(status_backoff(e->w, &e->api_failures, STATUS_API_BACKOFF_MIN_MS,
					    STATUS_API_BACKOFF_MAX_MS),
			     (uint64_t)r->retry_after * 1000), true);
}

static void status_log_written(const struct status_entry *e, const struct k8s_conn_status *st)
{
	const struct k8s_condition *ready = k8s_conn_status_find(st, "Ready");
	char msg[300];

	log_info("connector_status", "ns=%s name=%s ready=%s reason=%s message=%s", e->ns, e->name,
		 ready ? ready->status : "", ready && ready->reason[0] ? ready->reason : "-",
		 log_quote(msg, sizeof(msg), ready ? ready->message : "",
			   ready ? strlen(ready->message) : 0));
}

static void status_send(struct status_entry *e, const struct k8s_conn_status *st, const char *rv)
{
	struct evbuffer *body = evbuffer_new();
	char *path = status_object_path(e, true);

	k8s_conn_status_patch(body, st, rv);
	e->phase = ST_WRITING;
	e->w->stats.patches++;
	status_log_written(e, st);
	e->req = k8s_client_patch(e->w->client, path, K8S_STATUS_CONTENT_TYPE, body, status_on_patch, e);
	free(path);
}

static void status_decide(struct status_entry *e)
{
	struct status_writer *w = e->w;
	struct k8s_store_connector_info info;
	struct k8s_conn_status cur, next;
	struct k8s_status_input in = { 0 };
	char now[32], err[300];
	char *url;
	const char *rv, *text;

	status_stop_probe(e); /* the probe is over: the connector can go */
	if (k8s_store_connector_info(w->store, e->ns, e->name, &info) != 0) {
		status_entry_free(e);
		return;
	}
	if (e->dirty) {
		status_probe(e);
		return;
	}
	if (info.problem == K8S_STORE_NOT_LOADED || !e->have_probe) {
		/* The store calls back once the Secret is there. */
		status_schedule_next(e);
		return;
	}
	rv = e->have_fresh ? e->fresh_rv : info.resource_version;
	text = e->have_fresh ? e->fresh_status : info.status_json;
	if (k8s_conn_status_parse(text, text ? strlen(text) : 0, &cur, err, sizeof(err)) != 0)
		log_warn("connector_status_unreadable", "ns=%s name=%s error=\"%s\"", e->ns, e->name,
			 err);
	k8s_status_time((int64_t)time(NULL), now);
	url = k8s_conn_status_url(w->public_address, e->ns, e->name);
	in.problem = info.problem;
	in.problem_message = info.message;
	in.has_secret_ref = info.has_secret_ref;
	in.probe = e->outcome;
	in.http_status = e->http_status;
	in.detail = e->detail;
	in.generation = e->have_fresh ? e->fresh_generation : info.generation;
	in.url = url;
	in.now = now;
	k8s_conn_status_compute(&cur, &in, &next);
	if (k8s_conn_status_equal(&cur, &next)) {
		w->stats.unchanged++;
		status_clear_fresh(e);
		status_schedule_next(e);
	} else {
		char *rv_copy = rv ? x_strdup(rv) : NULL;
		status_clear_fresh(e);
		status_send(e, &next, rv_copy);
		free(rv_copy);
	}
	free(url);
	k8s_conn_status_free(&cur);
	k8s_conn_status_free(&next);
}

static void status_on_patch(void *arg, const struct k8s_response *r)
{
	struct status_entry *e = arg;

	e->req = NULL;
	if (r->status == 200 || r->status == 201) {
		e->w->stats.written++;
		e->api_failures = 0;
		e->conflicts = 0;
		status_schedule_next(e);
		return;
	}
	if (r->status == 404) {
		/* Deleted meanwhile: the store says so too, soon. */
		status_entry_free(e);
		return;
	}
	if (r->status == 409) {
		char *path;
		e->w->stats.conflicts++;
		log_info("connector_status_conflict", "ns=%s name=%s conflicts=%u", e->ns, e->name,
			 e->conflicts + 1);
		if (++e->conflicts > STATUS_QUICK_CONFLICTS) {
			status_arm(e, status_backoff(e->w, &e->api_failures, STATUS_API_BACKOFF_MIN_MS,
						     STATUS_API_BACKOFF_MAX_MS), false);
			return;
		}
		/* Someone else wrote: decide again from what is there now. */
		path = status_object_path(e, false);
		e->req = k8s_client_get(e->w->client, path, status_on_get, e);
		free(path);
		return;
	}
	status_api_failed(e, "patch", r);
}

/* Takes resourceVersion, generation and status of the object a GET read. */
static int status_read_fresh(struct status_entry *e, const struct k8s_response *r, char *err,
			     size_t cap)
{
	struct json_doc d = { 0 };
	int st, rc = -1;

	if (json_parse(&d, r->body, r->len, K8S_API_MAX_TOKENS, err, cap) != 0)
		return -1;
	status_clear_fresh(e);
	e->fresh_rv = json_strdup(&d, json_path(&d, 0, "metadata.resourceVersion"));
	if (!e->fresh_rv) {
		snprintf(err, cap, "the Connector has no metadata.resourceVersion");
		goto out;
	}
	if (!json_int64(&d, json_path(&d, 0, "metadata.generation"), &e->fresh_generation))
		e->fresh_generation = 0;
	st = json_get(&d, 0, "status");
	if (json_is_object(&d, st)) {
		struct og_str raw = json_raw(&d, st);
		e->fresh_status = x_strndup(raw.p, raw.n);
	}
	e->have_fresh = true;
	rc = 0;
out:
	json_doc_free(&d);
	return rc;
}

static void status_on_get(void *arg, const struct k8s_response *r)
{
	struct status_entry *e = arg;
	char err[300];

	e->req = NULL;
	if (r->status == 404) {
		status_entry_free(e);
		return;
	}
	if (r->error || r->status != 200) {
		status_api_failed(e, "get", r);
		return;
	}
	if (status_read_fresh(e, r, err, sizeof(err)) != 0) {
		struct k8s_response bad = *r;
		bad.error = err;
		status_api_failed(e, "get", &bad);
		return;
	}
	status_decide(e);
}

/* ---- following the store ---- */

static void status_watch_connector(void *arg, const struct k8s_store_connector_info *ci)
{
	struct status_writer *w = arg;
	struct status_entry *e;

	if (!ci->class_name || strcmp(ci->class_name, "oci") != 0)
		return;
	e = status_find(w, ci->ns, ci->name);
	if (!e) {
		e = status_entry_new(w, ci->ns, ci->name);
		/* Spread the first round over a second or so. */
		status_arm(e, status_random(w) % 1000, false);
	} else if (e->phase == ST_IDLE) {
		status_arm(e, 0, false);
	} else {
		e->dirty = true;
	}
}

static void status_on_resync(evutil_socket_t fd, short what, void *arg)
{
	struct status_writer *w = arg;

	(void)fd;
	(void)what;
	if (k8s_store_synced(w->store))
		k8s_store_foreach_connector(w->store, status_watch_connector, w);
}

static void status_on_store(void *arg, enum k8s_store_change what, const char *ns, const char *name)
{
	struct status_writer *w = arg;
	struct status_entry *e = ns ? status_find(w, ns, name) : NULL;

	switch (what) {
	case K8S_STORE_RESYNCED:
		event_active(w->resync, EV_TIMEOUT, 0);
		return;
	case K8S_STORE_CONNECTOR_DELETED:
		if (e)
			status_entry_free(e);
		return;
	case K8S_STORE_CONNECTOR_STATUS:
		/* Nothing to probe; but someone may have changed the status:
		 * compare again (usually our own write coming back). */
		if (e && e->phase == ST_IDLE && e->have_probe)
			status_arm(e, 0, true);
		return;
	case K8S_STORE_CONNECTOR_CHANGED:
		if (!k8s_store_synced(w->store))
			return; /* the resync after the first lists starts everyone */
		if (!e)
			e = status_entry_new(w, ns, name);
		if (e->phase == ST_IDLE)
			status_arm(e, 0, false);
		else
			e->dirty = true;
		return;
	}
}

struct status_writer *status_writer_new(struct proxy *px, struct k8s_client *client,
					struct k8s_store *store, const struct status_settings *s)
{
	struct status_writer *w = x_new(struct status_writer);
	struct timeval tv;

	w->px = px;
	w->client = client;
	w->store = store;
	w->interval_ms = OG_MAX(s->probe_interval_ms, 100);
	w->public_address = x_strdup(s->public_address);
	gettimeofday(&tv, NULL);
	w->rng = ((uint64_t)tv.tv_sec << 20) ^ (uint64_t)tv.tv_usec ^ ((uint64_t)getpid() << 40) ^
		 (uint64_t)(uintptr_t)w;
	if (!w->rng)
		w->rng = 88172645463325252ull;
	w->resync = event_new(px->base, -1, 0, status_on_resync, w);
	if (!w->resync)
		abort();
	k8s_store_set_listener(store, status_on_store, w);
	if (k8s_store_synced(store))
		event_active(w->resync, EV_TIMEOUT, 0);
	log_info("status_writer", "probe_interval_ms=%llu public_address=%s",
		 (unsigned long long)w->interval_ms, w->public_address);
	return w;
}

void status_writer_free(struct status_writer *w)
{
	if (!w)
		return;
	k8s_store_set_listener(w->store, NULL, NULL);
	while (w->entries)
		status_entry_free(w->entries);
	event_free(w->resync);
	free(w->public_address);
	free(w);
}

void status_writer_get_stats(const struct status_writer *w, struct status_writer_stats *out)
{
	*out = w->stats;
}
