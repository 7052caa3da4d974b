#include "k8s/refresher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "k8s/api.h"
#include "k8s/client.h"
#include "k8s/watch.h"
#include "util/base64.h"
#include "util/json_write.h"
#include "util/log.h"
#include "util/xalloc.h"

#define K8S_REFRESHER_MAX_TOKEN 16384

/* ---- pure helpers ---- */

bool k8s_refresher_name_ok(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!alnum && c != '-')
			return false;
		if (c == '-' && label == 0)
			return false;
		label++;
	}
	return label > 0 && s[n - 1] != '-';
}

void k8s_refresher_sa_free(struct k8s_refresher_sa *sa)
{
	free(sa->ns);
	free(sa->name);
	free(sa->uid);
	free(sa->secret);
	memset(sa, 0, sizeof(*sa));
}

static char *k8s_refresher_opt_str(const struct json_doc *d, int tok, const char *path, bool *bad)
{
	int t = json_path(d, tok, path);
	char *s;

	if (t < 0 || json_is_null(d, t))
		return NULL;
	s = json_strdup(d, t);
	if (!s)
		*bad = true;
	return s;
}

int k8s_refresher_sa_parse(const struct json_doc *d, int tok, struct k8s_refresher_sa *out,
			   char *err, size_t err_cap)
{
	int anns, v;
	bool bad = false;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(d, tok)) {
		snprintf(err, err_cap, "ServiceAccount: not an object");
		return -1;
	}
	v = json_get(d, tok, "kind");
	if (v >= 0 && !json_str_eq(d, v, "ServiceAccount")) {
		snprintf(err, err_cap, "ServiceAccount: kind is not ServiceAccount");
		return -1;
	}
	out->ns = k8s_refresher_opt_str(d, tok, "metadata.namespace", &bad);
	out->name = k8s_refresher_opt_str(d, tok, "metadata.name", &bad);
	out->uid = k8s_refresher_opt_str(d, tok, "metadata.uid", &bad);
	if (bad || !out->ns || !out->name || !*out->ns || !*out->name) {
		snprintf(err, err_cap, "ServiceAccount: metadata.namespace and metadata.name must be non-empty strings");
		return -1;
	}
	anns = json_path(d, tok, "metadata.annotations");
	if (anns < 0 || json_is_null(d, anns))
		return 0;
	if (!json_is_object(d, anns)) {
		snprintf(err, err_cap, "ServiceAccount %s/%s: metadata.annotations is not an object",
			 out->ns, out->name);
		return -1;
	}
	v = json_get(d, anns, K8S_REFRESHER_ANNOTATION);
	if (v < 0)
		return 0;
	out->secret = json_strdup(d, v);
	if (!out->secret || !k8s_refresher_name_ok(out->secret)) {
		snprintf(err, err_cap, "ServiceAccount %s/%s: annotation " K8S_REFRESHER_ANNOTATION
			 " is not a Secret name (a DNS-1123 subdomain)", out->ns, out->name);
		free(out->secret);
		out->secret = NULL;
		return -1;
	}
	return 0;
}

void k8s_refresher_tokenrequest_body(struct evbuffer *out, int64_t expiration_s,
				     char *const *audiences, size_t n_audiences)
{
	evbuffer_add_printf(out, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",\"spec\":{");
	if (n_audiences) {
		evbuffer_add_printf(out, "\"audiences\":[");
		for (size_t i = 0; i < n_audiences; i++) {
			if (i)
				evbuffer_add(out, ",", 1);
			jsonw_string(out, audiences[i], strlen(audiences[i]));
		}
		evbuffer_add_printf(out, "],");
	}
	evbuffer_add_printf(out, "\"expirationSeconds\":%lld}}", (long long)expiration_s);
}

void k8s_refresher_token_free(struct k8s_refresher_token *t)
{
	if (t->token) {
		OPENSSL_cleanse(t->token, strlen(t->token));
		free(t->token);
	}
	memset(t, 0, sizeof(*t));
}

static bool k8s_refresher_token_ok(const char *t)
{
	if (!*t || strlen(t) > K8S_REFRESHER_MAX_TOKEN)
		return false;
	for (; *t; t++)
		if (*t <= 0x20 || *t >= 0x7f)
			return false;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so no timegm (not POSIX) is needed. */
static int64_t k8s_refresher_days(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool k8s_refresher_digits(const char *s, int n, int *out)
{
	*out = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*out = *out * 10 + (s[i] - '0');
	}
	return true;
}

int k8s_refresher_parse_time(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0;
	int64_t t;
	const char *p;

	if (strlen(s) < 20 || !k8s_refresher_digits(s, 4, &y) || s[4] != '-' ||
	    !k8s_refresher_digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !k8s_refresher_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    !k8s_refresher_digits(s + 11, 2, &h) || s[13] != ':' ||
	    !k8s_refresher_digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !k8s_refresher_digits(s + 17, 2, &sec))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -1;
	p = s + 19;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -1;
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (p - (s + 20) >= 9)
				return -1; /* beyond nanoseconds */
	}
	if (*p == '+' || *p == '-') {
		if (strlen(p) != 6 || !k8s_refresher_digits(p + 1, 2, &oh) || p[3] != ':' ||
		    !k8s_refresher_digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		if (*p == '+') {
			oh = -oh;
			om = -om;
		}
	} else if ((*p != 'Z' && *p != 'z') || p[1]) {
		return -1;
	}
	t = k8s_refresher_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	*out = t + oh * 3600 + om * 60;
	return 0;
}

int k8s_refresher_token_parse(const char *text, size_t len, struct k8s_refresher_token *out,
			      char *err, size_t err_cap)
{
	struct json_doc d = { 0 };
	char perr[200], ts[64];
	int rc = -1, t, kind;

	memset(out, 0, sizeof(*out));
	if (json_parse(&d, text, len, K8S_API_MAX_TOKENS, perr, sizeof(perr)) != 0) {
		snprintf(err, err_cap, "TokenRequest response: %s", perr);
		goto out;
	}
	kind = json_get(&d, 0, "kind");
	if (!json_is_object(&d, 0) || (kind >= 0 && !json_str_eq(&d, kind, "TokenRequest"))) {
		snprintf(err, err_cap, "TokenRequest response: not a TokenRequest");
		goto out;
	}
	t = json_path(&d, 0, "status.token");
	out->token = t >= 0 ? json_strdup(&d, t) : NULL;
	if (!out->token || !k8s_refresher_token_ok(out->token)) {
		snprintf(err, err_cap, "TokenRequest response: status.token is missing or not a token");
		goto out;
	}
	t = json_path(&d, 0, "status.expirationTimestamp");
	if (t < 0 || json_string(&d, t, ts, sizeof(ts)) < 0 ||
	    k8s_refresher_parse_time(ts, &out->expires_at) != 0) {
		snprintf(err, err_cap, "TokenRequest response: status.expirationTimestamp is missing or not RFC 3339");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		k8s_refresher_token_free(out);
	json_doc_free(&d);
	return rc;
}

static char *k8s_refresher_take(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = x_malloc(n + 1);

	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

/* Wipes what the buffer held (it carried a token) and frees it. */
static void k8s_refresher_buffer_wipe(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	unsigned char *p = n ? evbuffer_pullup(b, -1) : NULL;

	if (p)
		OPENSSL_cleanse(p, n);
	evbuffer_free(b);
}

char *k8s_refresher_dockerconfig(const char *public_address, const char *token)
{
	struct evbuffer *b = evbuffer_new();
	static const char user[] = K8S_REFRESHER_USERNAME ":";
	size_t tlen = strlen(token), ulen = sizeof(user) - 1 + tlen;
	char *userpass = x_malloc(ulen + 1);
	char *b64 = x_malloc(base64_encoded_len(ulen) + 1);
	char *s;

	memcpy(userpass, user, sizeof(user) - 1);
	memcpy(userpass + sizeof(user) - 1, token, tlen + 1);
	base64_encode(userpass, ulen, b64);
	evbuffer_add_printf(b, "{\"auths\":{");
	jsonw_string(b, public_address, strlen(public_address));
	evbuffer_add_printf(b, ":{\"username\":\"" K8S_REFRESHER_USERNAME "\",\"password\":");
	jsonw_string(b, token, strlen(token));
	evbuffer_add_printf(b, ",\"auth\":\"%s\"}}}", b64);
	s = k8s_refresher_take(b);
	OPENSSL_cleanse(userpass, ulen);
	OPENSSL_cleanse(b64, strlen(b64));
	free(userpass);
	free(b64);
	k8s_refresher_buffer_wipe(b);
	return s;
}

/* "metadata":{...},"type":...,"data":{".dockerconfigjson":...} without
 * the outer braces; resource_version and ns/name as given (NULL: left out). */
static void k8s_refresher_secret_fields(struct evbuffer *out, const char *ns, const char *name,
					const char *resource_version, const char *owner,
					const char *public_address, const char *token)
{
	char *cfg = k8s_refresher_dockerconfig(public_address, token);
	size_t n = strlen(cfg);
	char *b64 = x_malloc(base64_encoded_len(n) + 1);

	base64_encode(cfg, n, b64);
	evbuffer_add_printf(out, "\"metadata\":{");
	if (name) {
		evbuffer_add_printf(out, "\"name\":");
		jsonw_string(out, name, strlen(name));
		evbuffer_add_printf(out, ",\"namespace\":");
		jsonw_string(out, ns, strlen(ns));
		evbuffer_add(out, ",", 1);
	}
	if (resource_version) {
		evbuffer_add_printf(out, "\"resourceVersion\":");
		jsonw_string(out, resource_version, strlen(resource_version));
		evbuffer_add(out, ",", 1);
	}
	evbuffer_add_printf(out, "\"annotations\":{\"" K8S_REFRESHER_OWNER_ANNOTATION "\":");
	jsonw_string(out, owner, strlen(owner));
	evbuffer_add_printf(out, "}},\"type\":\"" K8S_REFRESHER_SECRET_TYPE "\","
			    "\"data\":{\".dockerconfigjson\":\"%s\"}", b64);
	OPENSSL_cleanse(cfg, n);
	OPENSSL_cleanse(b64, strlen(b64));
	free(cfg);
	free(b64);
}

void k8s_refresher_secret_body(struct evbuffer *out, const char *ns, const char *name,
			       const char *owner, const char *public_address, const char *token)
{
	evbuffer_add_printf(out, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",");
	k8s_refresher_secret_fields(out, ns, name, NULL, owner, public_address, token);
	evbuffer_add(out, "}", 1);
}

void k8s_refresher_secret_patch(struct evbuffer *out, const char *resource_version,
				const char *owner, const char *public_address, const char *token)
{
	evbuffer_add(out, "{", 1);
	k8s_refresher_secret_fields(out, NULL, NULL, resource_version, owner, public_address, token);
	evbuffer_add(out, "}", 1);
}

void k8s_refresher_secret_info_free(struct k8s_refresher_secret_info *s)
{
	free(s->resource_version);
	free(s->owner);
	free(s->type);
	memset(s, 0, sizeof(*s));
}

int k8s_refresher_secret_info_parse(const char *text, size_t len,
				    struct k8s_refresher_secret_info *out, char *err, size_t err_cap)
{
	struct json_doc d = { 0 };
	char perr[200];
	bool bad = false;
	int rc = -1, anns, kind;

	memset(out, 0, sizeof(*out));
	if (json_parse(&d, text, len, K8S_API_MAX_TOKENS, perr, sizeof(perr)) != 0) {
		snprintf(err, err_cap, "Secret: %s", perr);
		goto out;
	}
	kind = json_get(&d, 0, "kind");
	if (!json_is_object(&d, 0) || (kind >= 0 && !json_str_eq(&d, kind, "Secret"))) {
		snprintf(err, err_cap, "Secret: not a Secret");
		goto out;
	}
	out->resource_version = k8s_refresher_opt_str(&d, 0, "metadata.resourceVersion", &bad);
	out->type = k8s_refresher_opt_str(&d, 0, "type", &bad);
	anns = json_path(&d, 0, "metadata.annotations");
	if (anns >= 0 && !json_is_null(&d, anns)) {
		int v = json_get(&d, anns, K8S_REFRESHER_OWNER_ANNOTATION);
		if (!json_is_object(&d, anns))
			bad = true;
		else if (v >= 0 && !(out->owner = json_strdup(&d, v)))
			bad = true;
	}
	if (bad || !out->resource_version || !*out->resource_version) {
		snprintf(err, err_cap, "Secret: malformed metadata or type");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		k8s_refresher_secret_info_free(out);
	json_doc_free(&d);
	return rc;
}

uint64_t k8s_refresher_delay_ms(int64_t now, int64_t expires_at, uint64_t rnd)
{
	uint64_t left, d;

	if (expires_at <= now)
		return 1000;
	left = (uint64_t)(expires_at - now) * 1000;
	/* 50% + rnd mod 30%, in tenths of a percent */
	d = left / 1000 * (500 + rnd % 301);
	return d < 1000 ? 1000 : d;
}

/* ---- the controller ---- */

struct k8s_refresher;

enum k8s_sa_step { SA_IDLE, SA_GET_SECRET, SA_TOKEN, SA_WRITE };

/* One opted-in ServiceAccount. */
struct k8s_sa_ent {
	struct k8s_sa_ent *next;
	struct k8s_refresher *r;
	struct k8s_refresher_feed *feed;
	char *ns, *name, *uid, *secret;
	unsigned seen_gen;
	enum k8s_sa_step step;
	struct k8s_request *req;
	struct event *timer;
	unsigned failures;
	char *secret_rv;   /* NULL: the Secret does not exist */
	struct k8s_refresher_token tok;
};

/* The ServiceAccounts of one scope (all namespaces, or one). */
struct k8s_refresher_feed {
	struct k8s_refresher *r;
	struct k8s_watch *w;
};

struct k8s_refresher {
	struct event_base *base;
	struct k8s_client *client;
	char *public_address;
	int64_t expiration_s;
	char **audiences;
	size_t n_audiences;
	unsigned backoff_min_ms, backoff_max_ms, watch_timeout_s;
	struct k8s_refresher_feed *feeds;
	size_t n_feeds;
	struct k8s_sa_ent *sas; /* few enough for a list */
	uint64_t rng;
	struct k8s_refresher_stats stats;
};

static unsigned k8s_refresher_backoff(struct k8s_refresher *r, unsigned *failures,
				      unsigned retry_after_s)
{
	return k8s_backoff_ms(&r->rng, r->backoff_min_ms, r->backoff_max_ms, failures,
			      retry_after_s);
}

static void k8s_refresher_after(struct event *ev, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

static int64_t k8s_refresher_now(void)
{
	return (int64_t)time(NULL);
}

static char *k8s_refresher_path(const char *ns, const char *what, const char *name,
				const char *sub)
{
	struct evbuffer *b = evbuffer_new();
	char *p;

	evbuffer_add_printf(b, "/api/v1/namespaces/");
	k8s_client_escape(b, ns);
	evbuffer_add_printf(b, "/%s", what);
	if (name) {
		evbuffer_add(b, "/", 1);
		k8s_client_escape(b, name);
	}
	if (sub)
		evbuffer_add_printf(b, "/%s", sub);
	p = k8s_refresher_take(b);
	evbuffer_free(b);
	return p;
}

static void k8s_refresher_log_failure(const struct k8s_sa_ent *e, const char *op,
				      const struct k8s_response *resp)
{
	char st[256] = "";
	struct k8s_status status = { 0 };

	if (!resp->error && resp->status && resp->len &&
	    k8s_status_parse(resp->body, resp->len, &status, st, sizeof(st)) == 0)
		k8s_status_format(&status, st, sizeof(st));
	k8s_status_free(&status);
	log_error("pull_secret_failed", "ns=%s sa=%s secret=%s op=%s status=%d error=\"%s\"", e->ns,
		  e->name, e->secret, op, resp->status, resp->error ? resp->error : st);
}

static void k8s_sa_get_secret(struct k8s_sa_ent *e);

static void k8s_sa_stop_request(struct k8s_sa_ent *e)
{
	if (e->req)
		k8s_request_cancel(e->req);
	e->req = NULL;
	evtimer_del(e->timer);
	e->step = SA_IDLE;
	k8s_refresher_token_free(&e->tok);
}

static void k8s_sa_retry(struct k8s_sa_ent *e, unsigned retry_after)
{
	k8s_sa_stop_request(e);
	k8s_refresher_after(e->timer, k8s_refresher_backoff(e->r, &e->failures, retry_after));
}

static void k8s_sa_free(struct k8s_sa_ent *e)
{
	k8s_sa_stop_request(e);
	event_free(e->timer);
	free(e->ns);
	free(e->name);
	free(e->uid);
	free(e->secret);
	free(e->secret_rv);
	free(e);
}

static void k8s_sa_remove(struct k8s_sa_ent *e, const char *why)
{
	struct k8s_refresher *r = e->r;

	log_info("pull_secret_stopped", "ns=%s sa=%s secret=%s reason=%s", e->ns, e->name,
		 e->secret, why);
	for (struct k8s_sa_ent **pp = &r->sas; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	r->stats.service_accounts--;
	k8s_sa_free(e);
}

static void k8s_sa_on_written(void *arg, const struct k8s_response *resp)
{
	struct k8s_sa_ent *e = arg;
	struct k8s_refresher *r = e->r;
	uint64_t ms;

	e->req = NULL;
	if (resp->status == 409) {
		/* Someone wrote it since we read it (or created it first). */
		r->stats.conflicts++;
		log_info("pull_secret_conflict", "ns=%s sa=%s secret=%s action=reread", e->ns,
			 e->name, e->secret);
		e->step = SA_GET_SECRET;
		k8s_sa_get_secret(e);
		return;
	}
	if (resp->error || (resp->status != 200 && resp->status != 201)) {
		r->stats.failures++;
		k8s_refresher_log_failure(e, e->secret_rv ? "patch" : "create", resp);
		k8s_sa_retry(e, resp->retry_after);
		return;
	}
	r->stats.secrets_written++;
	e->failures = 0;
	ms = k8s_refresher_delay_ms(k8s_refresher_now(), e->tok.expires_at, k8s_rand_next(&r->rng));
	log_info("pull_secret_written", "ns=%s sa=%s secret=%s expires_in_s=%lld next_refresh_ms=%llu",
		 e->ns, e->name, e->secret, (long long)(e->tok.expires_at - k8s_refresher_now()),
		 (unsigned long long)ms);
	k8s_sa_stop_request(e);
	k8s_refresher_after(e->timer, ms);
}

static void k8s_sa_write(struct k8s_sa_ent *e)
{
	struct k8s_refresher *r = e->r;
	struct evbuffer *b = evbuffer_new();
	char *path;

	e->step = SA_WRITE;
	if (e->secret_rv) {
		k8s_refresher_secret_patch(b, e->secret_rv, e->name, r->public_address, e->tok.token);
		path = k8s_refresher_path(e->ns, "secrets", e->secret, NULL);
		e->req = k8s_client_patch(r->client, path, "application/merge-patch+json", b,
					  k8s_sa_on_written, e);
	} else {
		k8s_refresher_secret_body(b, e->ns, e->secret, e->name, r->public_address,
					  e->tok.token);
		path = k8s_refresher_path(e->ns, "secrets", NULL, NULL);
		e->req = k8s_client_post(r->client, path, b, k8s_sa_on_written, e);
	}
	free(path);
}

static void k8s_sa_on_token(void *arg, const struct k8s_response *resp)
{
	struct k8s_sa_ent *e = arg;
	struct k8s_refresher *r = e->r;
	char err[256];

	e->req = NULL;
	if (resp->status == 404) {
		k8s_sa_remove(e, "serviceaccount_not_found");
		return;
	}
	if (resp->error || (resp->status != 200 && resp->status != 201)) {
		r->stats.failures++;
		k8s_refresher_log_failure(e, "tokenrequest", resp);
		k8s_sa_retry(e, resp->retry_after);
		return;
	}
	if (k8s_refresher_token_parse(resp->body, resp->len, &e->tok, err, sizeof(err)) != 0) {
		r->stats.failures++;
		log_error("pull_secret_failed", "ns=%s sa=%s secret=%s op=tokenrequest error=\"%s\"",
			  e->ns, e->name, e->secret, err);
		k8s_sa_retry(e, 0);
		return;
	}
	k8s_sa_write(e);
}

static void k8s_sa_request_token(struct k8s_sa_ent *e)
{
	struct k8s_refresher *r = e->r;
	struct evbuffer *b = evbuffer_new();
	char *path = k8s_refresher_path(e->ns, "serviceaccounts", e->name, "token");

	e->step = SA_TOKEN;
	k8s_refresher_tokenrequest_body(b, r->expiration_s, r->audiences, r->n_audiences);
	r->stats.token_requests++;
	e->req = k8s_client_post(r->client, path, b, k8s_sa_on_token, e);
	free(path);
}

/* The Secret as it is now decides between create and patch, and whether
 * it is ours to write at all. */
static void k8s_sa_on_secret(void *arg, const struct k8s_response *resp)
{
	struct k8s_sa_ent *e = arg;
	struct k8s_refresher *r = e->r;
	struct k8s_refresher_secret_info info = { 0 };
	char err[256];

	e->req = NULL;
	free(e->secret_rv);
	e->secret_rv = NULL;
	if (resp->status == 404)
		goto next;
	if (resp->error || resp->status != 200) {
		r->stats.failures++;
		k8s_refresher_log_failure(e, "get_secret", resp);
		k8s_sa_retry(e, resp->retry_after);
		return;
	}
	if (k8s_refresher_secret_info_parse(resp->body, resp->len, &info, err, sizeof(err)) != 0) {
		r->stats.failures++;
		log_error("pull_secret_failed", "ns=%s sa=%s secret=%s op=get_secret error=\"%s\"",
			  e->ns, e->name, e->secret, err);
		k8s_sa_retry(e, 0);
		return;
	}
	if (!info.owner || strcmp(info.owner, e->name) != 0) {
		r->stats.conflicts++;
		log_warn("pull_secret_conflict", "ns=%s sa=%s secret=%s owner=%s action=left_alone",
			 e->ns, e->name, e->secret, info.owner ? info.owner : "(none)");
		k8s_refresher_secret_info_free(&info);
		e->failures = OG_MAX(e->failures, 6u); /* nothing will change soon */
		k8s_sa_retry(e, 0);
		return;
	}
	e->secret_rv = info.resource_version;
	info.resource_version = NULL;
	k8s_refresher_secret_info_free(&info);
next:
	if (e->tok.token)
		k8s_sa_write(e); /* a 409 retry: the token minted is still good */
	else
		k8s_sa_request_token(e);
}

static void k8s_sa_get_secret(struct k8s_sa_ent *e)
{
	char *path = k8s_refresher_path(e->ns, "secrets", e->secret, NULL);

	e->step = SA_GET_SECRET;
	e->req = k8s_client_get(e->r->client, path, k8s_sa_on_secret, e);
	free(path);
}

static void k8s_sa_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct k8s_sa_ent *e = arg;

	(void)fd;
	(void)what;
	k8s_refresher_token_free(&e->tok);
	k8s_sa_get_secret(e);
}

static struct k8s_sa_ent *k8s_sa_find(struct k8s_refresher *r, const char *ns, const char *name)
{
	for (struct k8s_sa_ent *e = r->sas; e; e = e->next)
		if (strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

/* Starts following sa, or starts over when what it asks for changed. */
static void k8s_sa_follow(struct k8s_refresher *r, struct k8s_refresher_feed *f,
			  struct k8s_refresher_sa *sa)
{
	struct k8s_sa_ent *e = k8s_sa_find(r, sa->ns, sa->name);

	if (e) {
		e->seen_gen = k8s_watch_gen(f->w);
		if (strcmp(e->secret, sa->secret) == 0 &&
		    ((!e->uid && !sa->uid) || (e->uid && sa->uid && strcmp(e->uid, sa->uid) == 0)))
			return;
		k8s_sa_remove(e, "changed");
	}
	e = x_new(struct k8s_sa_ent);
	e->r = r;
	e->feed = f;
	e->seen_gen = k8s_watch_gen(f->w);
	e->ns = x_strdup(sa->ns);
	e->name = x_strdup(sa->name);
	e->uid = sa->uid ? x_strdup(sa->uid) : NULL;
	e->secret = x_strdup(sa->secret);
	e->timer = evtimer_new(r->base, k8s_sa_on_timer, e);
	if (!e->timer)
		abort();
	e->next = r->sas;
	r->sas = e;
	r->stats.service_accounts++;
	log_info("pull_secret_followed", "ns=%s sa=%s secret=%s", e->ns, e->name, e->secret);
	k8s_sa_get_secret(e);
}

static void k8s_refresher_item(void *arg, struct k8s_watch *w, const struct json_doc *d, int tok,
			       bool deleted)
{
	struct k8s_refresher_feed *f = arg;
	struct k8s_refresher *r = f->r;
	struct k8s_refresher_sa sa = { 0 };
	struct k8s_sa_ent *e;
	char err[256];
	int rc = k8s_refresher_sa_parse(d, tok, &sa, err, sizeof(err));

	(void)w;
	if (!sa.ns || !sa.name) {
		log_error("k8s_serviceaccount_invalid", "error=\"%s\"", err);
		goto out;
	}
	e = k8s_sa_find(r, sa.ns, sa.name);
	if (rc != 0)
		log_error("k8s_serviceaccount_invalid", "ns=%s name=%s error=\"%s\"", sa.ns, sa.name, err);
	if (deleted || rc != 0 || !sa.secret) {
		if (e)
			k8s_sa_remove(e, deleted ? "serviceaccount_deleted" : "not_opted_in");
		goto out;
	}
	k8s_sa_follow(r, f, &sa);
out:
	k8s_refresher_sa_free(&sa);
}

/* After a full list, what it did not show is gone. */
static void k8s_refresher_sweep(void *arg, struct k8s_watch *w)
{
	struct k8s_refresher_feed *f = arg;
	struct k8s_sa_ent *e = f->r->sas, *next;
	unsigned gen = k8s_watch_gen(w);

	for (; e; e = next) {
		next = e->next;
		if (e->feed == f && e->seen_gen != gen)
			k8s_sa_remove(e, "serviceaccount_gone");
	}
}

static const struct k8s_watch_ops k8s_refresher_watch_ops = {
	.item = k8s_refresher_item,
	.listed = k8s_refresher_sweep,
};

static void k8s_refresher_feed_init(struct k8s_refresher *r, struct k8s_refresher_feed *f,
				    const char *ns)
{
	struct evbuffer *b = evbuffer_new();
	struct k8s_watch_opts wo = {
		.client = r->client,
		.list_kind = "ServiceAccount",
		.kind = "serviceaccounts",
		.ns = ns,
		.watch_timeout_s = r->watch_timeout_s,
		.backoff_min_ms = r->backoff_min_ms,
		.backoff_max_ms = r->backoff_max_ms,
	};
	char *path;

	if (ns) {
		evbuffer_add_printf(b, "/api/v1/namespaces/");
		k8s_client_escape(b, ns);
		evbuffer_add_printf(b, "/serviceaccounts");
	} else {
		evbuffer_add_printf(b, "/api/v1/serviceaccounts");
	}
	path = k8s_refresher_take(b);
	evbuffer_free(b);
	wo.path = path;
	f->r = r;
	f->w = k8s_watch_new(r->base, &wo, &k8s_refresher_watch_ops, f);
	free(path);
}

static char **k8s_refresher_strv(char *const *v, size_t n)
{
	char **out = x_calloc(n ? n : 1, sizeof(*out));

	for (size_t i = 0; i < n; i++)
		out[i] = x_strdup(v[i]);
	return out;
}

struct k8s_refresher *k8s_refresher_new(struct event_base *base, struct k8s_client *client,
					const struct k8s_refresher_opts *o)
{
	struct k8s_refresher *r = x_new(struct k8s_refresher);
	size_t scopes = o->n_namespaces ? o->n_namespaces : 1;

	r->base = base;
	r->client = client;
	r->public_address = x_strdup(o->public_address);
	r->expiration_s = OG_MAX(o->expiration_s, (int64_t)K8S_REFRESHER_MIN_EXPIRATION_S);
	r->audiences = k8s_refresher_strv(o->audiences, o->n_audiences);
	r->n_audiences = o->n_audiences;
	r->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 1000;
	r->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 60000;
	r->watch_timeout_s = o->watch_timeout_s ? o->watch_timeout_s : 300;
	r->rng = k8s_rand_seed(r);
	r->n_feeds = scopes;
	r->feeds = x_calloc(scopes, sizeof(*r->feeds));
	for (size_t i = 0; i < scopes; i++)
		k8s_refresher_feed_init(r, &r->feeds[i], o->n_namespaces ? o->namespaces[i] : NULL);
	log_info("pull_secrets_started", "namespaces=%zu expiration_s=%lld", o->n_namespaces,
		 (long long)r->expiration_s);
	for (size_t i = 0; i < scopes; i++)
		k8s_watch_start(r->feeds[i].w);
	return r;
}

void k8s_refresher_free(struct k8s_refresher *r)
{
	if (!r)
		return;
	while (r->sas) {
		struct k8s_sa_ent *e = r->sas;
		r->sas = e->next;
		k8s_sa_free(e);
	}
	for (size_t i = 0; i < r->n_feeds; i++)
		k8s_watch_free(r->feeds[i].w);
	for (size_t i = 0; i < r->n_audiences; i++)
		free(r->audiences[i]);
	free(r->audiences);
	free(r->feeds);
	free(r->public_address);
	free(r);
}

void k8s_refresher_get_stats(const struct k8s_refresher *r, struct k8s_refresher_stats *out)
{
	*out = r->stats;
}
