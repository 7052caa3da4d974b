/* Leader election through a coordination.k8s.io/v1 Lease (see lease.h). */
#include "k8s/lease.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "k8s/api.h"
#include "k8s/client.h"
#include "k8s/kubeconfig.h"
#include "k8s/refresher.h"
#include "util/json.h"
#include "util/json_write.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- pure helpers ---- */

void k8s_lease_record_free(struct k8s_lease_record *r)
{
	free(r->resource_version);
	free(r->holder);
	memset(r, 0, sizeof(*r));
}

void k8s_lease_format_time(int64_t unix_us, char out[64])
{
	time_t s = (time_t)(unix_us / 1000000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(unix_us % 1000000));
}

int k8s_lease_parse_time(const char *s, int64_t *unix_us)
{
	int64_t sec, frac = 0;
	int digits = 0;

	/* The seconds, the offset and the checks come from the RFC 3339
	 * reader the refresher uses; only the fraction is read here. */
	if (k8s_refresher_parse_time(s, &sec) != 0)
		return -1;
	if (s[19] == '.')
		for (const char *p = s + 20; *p >= '0' && *p <= '9'; p++)
			if (digits < 6) {
				frac = frac * 10 + (*p - '0');
				digits++;
			}
	for (; digits < 6; digits++)
		frac *= 10;
	*unix_us = sec * 1000000 + frac;
	return 0;
}

static int k8s_lease_time_field(const struct json_doc *d, int spec, const char *key, int64_t *out,
				char *err, size_t err_cap)
{
	int t = json_get(d, spec, key);
	char ts[64];

	*out = 0;
	if (t < 0 || json_is_null(d, t))
		return 0;
	if (json_string(d, t, ts, sizeof(ts)) < 0 || k8s_lease_parse_time(ts, out) != 0) {
		snprintf(err, err_cap, "Lease: spec.%s is not an RFC 3339 time", key);
		return -1;
	}
	return 0;
}

static int k8s_lease_int_field(const struct json_doc *d, int spec, const char *key, int64_t *out,
			       char *err, size_t err_cap)
{
	int t = json_get(d, spec, key);

	*out = 0;
	if (t < 0 || json_is_null(d, t))
		return 0;
	if (!json_int64(d, t, out) || *out < 0) {
		snprintf(err, err_cap, "Lease: spec.%s is not a non-negative integer", key);
		return -1;
	}
	return 0;
}

int k8s_lease_parse(const char *text, size_t len, struct k8s_lease_record *out, char *err,
		    size_t err_cap)
{
	struct json_doc d = { 0 };
	char perr[200];
	int rc = -1, kind, av, rv, spec, holder;

	memset(out, 0, sizeof(*out));
	if (json_parse(&d, text, len, K8S_API_MAX_TOKENS, perr, sizeof(perr)) != 0) {
		snprintf(err, err_cap, "Lease: %s", perr);
		goto out;
	}
	kind = json_get(&d, 0, "kind");
	av = json_get(&d, 0, "apiVersion");
	if (!json_is_object(&d, 0) || !json_str_eq(&d, kind, "Lease") ||
	    !json_str_eq(&d, av, "coordination.k8s.io/v1")) {
		snprintf(err, err_cap, "Lease: not a coordination.k8s.io/v1 Lease");
		goto out;
	}
	rv = json_path(&d, 0, "metadata.resourceVersion");
	out->resource_version = rv >= 0 ? json_strdup(&d, rv) : NULL;
	if (!out->resource_version || !*out->resource_version) {
		snprintf(err, err_cap, "Lease: metadata.resourceVersion is missing");
		goto out;
	}
	spec = json_get(&d, 0, "spec");
	if (spec >= 0 && !json_is_object(&d, spec) && !json_is_null(&d, spec)) {
		snprintf(err, err_cap, "Lease: spec is not an object");
		goto out;
	}
	holder = json_get(&d, spec, "holderIdentity");
	out->holder = holder >= 0 && !json_is_null(&d, holder) ? json_strdup(&d, holder) : x_strdup("");
	if (!out->holder) {
		snprintf(err, err_cap, "Lease: spec.holderIdentity is not a string");
		goto out;
	}
	if (k8s_lease_int_field(&d, spec, "leaseDurationSeconds", &out->duration_s, err, err_cap) ||
	    k8s_lease_int_field(&d, spec, "leaseTransitions", &out->transitions, err, err_cap) ||
	    k8s_lease_time_field(&d, spec, "acquireTime", &out->acquire_us, err, err_cap) ||
	    k8s_lease_time_field(&d, spec, "renewTime", &out->renew_us, err, err_cap))
		goto out;
	rc = 0;
out:
	json_doc_free(&d);
	return rc;
}

static void k8s_lease_add_time(struct evbuffer *out, const char *key, int64_t us)
{
	char ts[64];

	if (!us)
		return;
	k8s_lease_format_time(us, ts);
	evbuffer_add_printf(out, ",\"%s\":\"%s\"", key, ts);
}

void k8s_lease_body(struct evbuffer *out, const char *ns, const char *name,
		    const struct k8s_lease_record *r)
{
	evbuffer_add_printf(out, "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
				 "\"metadata\":{\"name\":");
	jsonw_string(out, name, strlen(name));
	evbuffer_add_printf(out, ",\"namespace\":");
	jsonw_string(out, ns, strlen(ns));
	if (r->resource_version) {
		evbuffer_add_printf(out, ",\"resourceVersion\":");
		jsonw_string(out, r->resource_version, strlen(r->resource_version));
	}
	evbuffer_add_printf(out, "},\"spec\":{\"holderIdentity\":");
	jsonw_string(out, r->holder, strlen(r->holder));
	evbuffer_add_printf(out, ",\"leaseDurationSeconds\":%" PRId64, r->duration_s);
	k8s_lease_add_time(out, "acquireTime", r->acquire_us);
	k8s_lease_add_time(out, "renewTime", r->renew_us);
	evbuffer_add_printf(out, ",\"leaseTransitions\":%" PRId64 "}}", r->transitions);
}

bool k8s_lease_held(const struct k8s_lease_record *r, int64_t now_us)
{
	if (!r->holder || !*r->holder || !r->renew_us || r->duration_s <= 0)
		return false;
	return r->renew_us + r->duration_s * 1000000 > now_us;
}

char *k8s_lease_identity(void)
{
	char host[256] = "";
	unsigned char rnd[6];
	char *out;
	size_t n;

	if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
		snprintf(host, sizeof(host), "ocigate");
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		abort(); /* no randomness: two replicas could share an identity */
	n = strlen(host) + 2 + 2 * sizeof(rnd);
	out = x_malloc(n);
	snprintf(out, n, "%s_%02x%02x%02x%02x%02x%02x", host, rnd[0], rnd[1], rnd[2], rnd[3],
		 rnd[4], rnd[5]);
	return out;
}

char *k8s_lease_namespace(const char *configured, const char *kubeconfig, const char *context,
			  const char *sa_dir)
{
	char path[512], buf[256], err[256];
	struct k8s_kubeconfig kc;
	FILE *f;
	size_t n = 0, b = 0;

	if (configured && *configured)
		return x_strdup(configured);
	if (kubeconfig && *kubeconfig) {
		/* As kubectl does: the context's namespace. */
		if (k8s_kubeconfig_load(kubeconfig, context && *context ? context : NULL, &kc, err,
					sizeof(err)) != 0)
			return x_strdup("default");
		snprintf(buf, sizeof(buf), "%s", kc.ns && *kc.ns ? kc.ns : "default");
		k8s_kubeconfig_free(&kc);
		return x_strdup(buf);
	}
	snprintf(path, sizeof(path), "%s/namespace", sa_dir ? sa_dir : K8S_SERVICEACCOUNT_DIR);
	f = fopen(path, "r");
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	while (buf[b] == ' ')
		b++;
	return x_strdup(buf[b] ? buf + b : "default");
}

/* ---- the elector ---- */

struct k8s_lease {
	struct event_base *base;
	struct k8s_client *client;
	char *ns, *name, *identity;
	char *coll_path, *item_path;
	uint64_t duration_ms, deadline_ms, retry_ms;
	k8s_lease_fn on_start, on_stop;
	void *arg;

	bool leading;
	bool stopped;             /* released or being released: no more attempts */
	struct k8s_request *req;  /* at most one request at a time */
	struct k8s_lease_record ours; /* what we last wrote and the server accepted */
	bool have_ours;           /* ours.resource_version is current as far as we know */
	int64_t sent_mono_us;     /* when the request in flight was sent */
	char *seen_holder;        /* the holder last logged, to log changes only */

	struct event *tick;       /* the next attempt or renew */
	struct event *deadline;   /* leading: renew_deadline after the last renew was sent */
	k8s_lease_fn release_done;
	void *release_arg;
	struct k8s_lease_stats stats;
};

static int64_t k8s_lease_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t k8s_lease_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct timeval k8s_lease_tv(uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	return tv;
}

static void k8s_lease_schedule(struct k8s_lease *l, uint64_t ms)
{
	struct timeval tv = k8s_lease_tv(ms);

	if (!l->stopped)
		evtimer_add(l->tick, &tv);
}

/* The reason of a failed answer, for one log line. */
static void k8s_lease_describe(const struct k8s_response *resp, char *buf, size_t cap)
{
	struct k8s_status st = { 0 };
	char perr[64];

	snprintf(buf, cap, "%s", resp->error ? resp->error : "");
	if (!resp->error && resp->len &&
	    k8s_status_parse(resp->body, resp->len, &st, perr, sizeof(perr)) == 0)
		k8s_status_format(&st, buf, cap);
	else if (!resp->error)
		snprintf(buf, cap, "HTTP %d", resp->status);
	k8s_status_free(&st);
}

static void k8s_lease_observe(struct k8s_lease *l, const struct k8s_lease_record *r)
{
	l->stats.transitions = r->transitions;
	if (l->seen_holder && strcmp(l->seen_holder, r->holder) == 0)
		return;
	free(l->seen_holder);
	l->seen_holder = x_strdup(r->holder);
	log_info("lease_holder", "lease=%s/%s holder=\"%s\" transitions=%" PRId64 " identity=%s",
		 l->ns, l->name, r->holder, r->transitions, l->identity);
}

static void k8s_lease_stop_leading(struct k8s_lease *l, const char *why)
{
	if (!l->leading)
		return;
	l->leading = false;
	l->have_ours = false;
	evtimer_del(l->deadline);
	if (l->req) {
		k8s_request_cancel(l->req);
		l->req = NULL;
	}
	if (why) {
		l->stats.lost++;
		log_warn("leader_lost", "lease=%s/%s identity=%s reason=\"%s\"", l->ns, l->name,
			 l->identity, why);
	}
	if (l->on_stop)
		l->on_stop(l->arg);
}

static void k8s_lease_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct k8s_lease *l = arg;
	char why[96];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "no successful renew for renew_deadline=%llums",
		 (unsigned long long)l->deadline_ms);
	k8s_lease_stop_leading(l, why);
	k8s_lease_schedule(l, l->retry_ms);
}

/* A write the API server accepted: we hold the lease as of when it was sent. */
static void k8s_lease_won(struct k8s_lease *l, const struct k8s_response *resp)
{
	struct k8s_lease_record r;
	char err[160];
	int64_t now = k8s_lease_mono_us();
	int64_t left_us = l->sent_mono_us + (int64_t)l->deadline_ms * 1000 - now;
	struct timeval tv;

	if (k8s_lease_parse(resp->body, resp->len, &r, err, sizeof(err)) != 0) {
		l->stats.failures++;
		log_warn("lease_failed", "lease=%s/%s op=write error=\"%s\"", l->ns, l->name, err);
		k8s_lease_record_free(&r);
		l->have_ours = false;
		return;
	}
	free(l->ours.resource_version);
	l->ours.resource_version = x_strdup(r.resource_version);
	l->have_ours = true;
	k8s_lease_observe(l, &r);
	k8s_lease_record_free(&r);
	if (left_us <= 0)
		return; /* too late to act on: the next renew decides */
	tv.tv_sec = (time_t)(left_us / 1000000);
	tv.tv_usec = (suseconds_t)(left_us % 1000000);
	evtimer_add(l->deadline, &tv);
	if (l->leading) {
		l->stats.renewals++;
		return;
	}
	l->leading = true;
	l->stats.acquired++;
	log_info("leader_acquired", "lease=%s/%s identity=%s transitions=%" PRId64, l->ns, l->name,
		 l->identity, l->ours.transitions);
	if (l->on_start)
		l->on_start(l->arg);
}

static void k8s_lease_on_write(void *arg, const struct k8s_response *resp)
{
	struct k8s_lease *l = arg;
	char why[256];

	l->req = NULL;
	if (resp->status == 200 || resp->status == 201) {
		k8s_lease_won(l, resp);
	} else {
		l->have_ours = false; /* read it again before the next write */
		if (resp->status == 409)
			l->stats.conflicts++;
		else
			l->stats.failures++;
		k8s_lease_describe(resp, why, sizeof(why));
		if (resp->status == 409 && !l->leading)
			log_info("lease_conflict", "lease=%s/%s identity=%s reason=\"%s\"", l->ns,
				 l->name, l->identity, why);
		else
			log_warn("lease_failed", "lease=%s/%s identity=%s op=%s status=%d error=\"%s\"",
				 l->ns, l->name, l->identity, l->leading ? "renew" : "acquire",
				 resp->status, why);
	}
	k8s_lease_schedule(l, l->retry_ms);
}

/* Sends ours as a create (no resourceVersion) or an update. */
static void k8s_lease_write(struct k8s_lease *l)
{
	struct evbuffer *body = evbuffer_new();

	if (!body)
		abort();
	l->ours.renew_us = k8s_lease_wall_us();
	l->sent_mono_us = k8s_lease_mono_us();
	k8s_lease_body(body, l->ns, l->name, &l->ours);
	if (l->ours.resource_version)
		l->req = k8s_client_put(l->client, l->item_path, body, k8s_lease_on_write, l);
	else
		l->req = k8s_client_post(l->client, l->coll_path, body, k8s_lease_on_write, l);
}

static void k8s_lease_set_ours(struct k8s_lease *l, const char *rv, int64_t acquire_us,
			       int64_t transitions)
{
	free(l->ours.resource_version);
	l->ours.resource_version = rv ? x_strdup(rv) : NULL;
	l->ours.duration_s = (int64_t)((l->duration_ms + 999) / 1000);
	l->ours.acquire_us = acquire_us;
	l->ours.transitions = transitions;
}

static void k8s_lease_on_get(void *arg, const struct k8s_response *resp)
{
	struct k8s_lease *l = arg;
	struct k8s_lease_record r;
	char why[256];

	l->req = NULL;
	if (resp->status == 404) {
		k8s_lease_set_ours(l, NULL, k8s_lease_wall_us(), 0);
		k8s_lease_write(l);
		return;
	}
	if (resp->status != 200 || k8s_lease_parse(resp->body, resp->len, &r, why, sizeof(why)) != 0) {
		if (resp->status != 200) {
			memset(&r, 0, sizeof(r));
			k8s_lease_describe(resp, why, sizeof(why));
		}
		k8s_lease_record_free(&r);
		l->stats.failures++;
		log_warn("lease_failed", "lease=%s/%s identity=%s op=get status=%d error=\"%s\"",
			 l->ns, l->name, l->identity, resp->status, why);
		k8s_lease_schedule(l, l->retry_ms);
		return;
	}
	k8s_lease_observe(l, &r);
	if (strcmp(r.holder, l->identity) == 0)
		k8s_lease_set_ours(l, r.resource_version, r.acquire_us ? r.acquire_us : k8s_lease_wall_us(),
				   r.transitions);
	else if (!k8s_lease_held(&r, k8s_lease_wall_us()))
		k8s_lease_set_ours(l, r.resource_version, k8s_lease_wall_us(), r.transitions + 1);
	else {
		/* Someone else holds it; a holder that stopped leading counts
		 * as lost here too (its lease was taken away). */
		k8s_lease_stop_leading(l, "the lease has another holder");
		k8s_lease_record_free(&r);
		k8s_lease_schedule(l, l->retry_ms);
		return;
	}
	k8s_lease_record_free(&r);
	k8s_lease_write(l);
}

static void k8s_lease_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct k8s_lease *l = arg;

	(void)fd;
	(void)what;
	if (l->stopped)
		return;
	if (l->req) {
		k8s_lease_schedule(l, l->retry_ms);
		return;
	}
	/* The holder renews straight from the version it wrote; anyone
	 * else (or a holder whose write was refused) reads first. */
	if (l->leading && l->have_ours)
		k8s_lease_write(l);
	else
		l->req = k8s_client_get(l->client, l->item_path, k8s_lease_on_get, l);
}

struct k8s_lease *k8s_lease_new(struct event_base *base, struct k8s_client *client,
				const struct k8s_lease_opts *o)
{
	struct k8s_lease *l = x_new(struct k8s_lease);
	struct evbuffer *b = evbuffer_new();
	size_t n;

	if (!b)
		abort();
	l->base = base;
	l->client = client;
	l->ns = x_strdup(o->ns);
	l->name = x_strdup(o->name);
	l->identity = x_strdup(o->identity);
	l->duration_ms = o->duration_ms;
	l->deadline_ms = o->renew_deadline_ms;
	l->retry_ms = o->retry_period_ms;
	l->on_start = o->on_start;
	l->on_stop = o->on_stop;
	l->arg = o->arg;
	l->ours.holder = x_strdup(o->identity);
	evbuffer_add_printf(b, K8S_LEASE_API "/namespaces/");
	k8s_client_escape(b, o->ns);
	evbuffer_add_printf(b, "/leases");
	n = evbuffer_get_length(b);
	l->coll_path = x_malloc(n + 1);
	evbuffer_copyout(b, l->coll_path, n);
	l->coll_path[n] = '\0';
	evbuffer_add_printf(b, "/");
	k8s_client_escape(b, o->name);
	n = evbuffer_get_length(b);
	l->item_path = x_malloc(n + 1);
	evbuffer_remove(b, l->item_path, n);
	l->item_path[n] = '\0';
	evbuffer_free(b);
	l->tick = evtimer_new(base, k8s_lease_on_tick, l);
	l->deadline = evtimer_new(base, k8s_lease_on_deadline, l);
	if (!l->tick || !l->deadline)
		abort();
	log_info("lease_election", "lease=%s/%s identity=%s lease_duration_ms=%llu "
		 "renew_deadline_ms=%llu retry_period_ms=%llu", l->ns, l->name, l->identity,
		 (unsigned long long)l->duration_ms, (unsigned long long)l->deadline_ms,
		 (unsigned long long)l->retry_ms);
	event_active(l->tick, EV_TIMEOUT, 0);
	return l;
}

static void k8s_lease_on_released(void *arg, const struct k8s_response *resp)
{
	struct k8s_lease *l = arg;
	char why[256];

	l->req = NULL;
	if (resp->status == 200) {
		log_info("lease_released", "lease=%s/%s identity=%s", l->ns, l->name, l->identity);
	} else {
		k8s_lease_describe(resp, why, sizeof(why));
		log_warn("lease_release_failed", "lease=%s/%s identity=%s status=%d error=\"%s\"",
			 l->ns, l->name, l->identity, resp->status, why);
	}
	l->release_done(l->release_arg);
}

bool k8s_lease_release(struct k8s_lease *l, k8s_lease_fn done, void *arg)
{
	bool had = l->leading && l->have_ours;
	struct evbuffer *body;

	l->stopped = true;
	evtimer_del(l->tick);
	k8s_lease_stop_leading(l, NULL);
	if (l->req) {
		k8s_request_cancel(l->req);
		l->req = NULL;
	}
	if (!had)
		return false;
	/* What client-go writes: nobody, for one second, same transitions. */
	body = evbuffer_new();
	if (!body)
		abort();
	free(l->ours.holder);
	l->ours.holder = x_strdup("");
	l->ours.duration_s = 1;
	l->ours.acquire_us = l->ours.renew_us = k8s_lease_wall_us();
	k8s_lease_body(body, l->ns, l->name, &l->ours);
	l->release_done = done;
	l->release_arg = arg;
	l->req = k8s_client_put(l->client, l->item_path, body, k8s_lease_on_released, l);
	return true;
}

void k8s_lease_free(struct k8s_lease *l)
{
	if (!l)
		return;
	if (l->req)
		k8s_request_cancel(l->req);
	event_free(l->tick);
	event_free(l->deadline);
	k8s_lease_record_free(&l->ours);
	free(l->seen_holder);
	free(l->coll_path);
	free(l->item_path);
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l);
}

bool k8s_lease_leading(const struct k8s_lease *l)
{
	return l && l->leading;
}

void k8s_lease_get_stats(const struct k8s_lease *l, struct k8s_lease_stats *out)
{
	*out = l->stats;
}

const char *k8s_lease_own_identity(const struct k8s_lease *l)
{
	return l->identity;
}
