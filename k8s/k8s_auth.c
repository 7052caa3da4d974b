#include "k8s/k8s_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "auth/cache.h"
#include "k8s/api.h"
#include "k8s/runtime.h"
#include "k8s/store.h"
#include "util/json.h"
#include "util/jwt.h"
#include "util/log.h"
#include "util/xalloc.h"

/* A JWT payload larger than this is not worth decoding for its exp. */
/* Buckets of the identity -> TokenReview result index. */
#define ID_BUCKETS 1024

enum review_kind { REVIEW_TOKEN, REVIEW_SAR };

/* A TokenReview result as cached: refcounted because the cache may drop it
 * while a flight is still waking its waiters. */
struct authn {
	unsigned refs;
	struct k8s_auth *ka;
	enum auth_status status;
	struct auth_identity *id;    /* AUTH_OK only */
	struct k8s_user_extras extra; /* handed back to the SubjectAccessReview */
	unsigned char id_digest[SHA256_DIGEST_LENGTH]; /* of user, uid, groups, extra */
	const char *message;
	struct authn *idx_next;      /* in ka->by_identity while id is set */
};

/* A SubjectAccessReview result as cached. */
struct authz {
	unsigned refs;
	enum auth_status status;
	char *message;
};

/* One review in flight; its flight's waiters are the requests. */
struct review {
	struct k8s_auth *ka;
	enum review_kind kind;
	struct auth_flight *flight;
	struct k8s_request *req;
	struct review *prev, *next;
	unsigned char key[AUTH_CACHE_KEY_LEN];
	int64_t jwt_exp;      /* REVIEW_TOKEN: -1 when unknown */
	char *denied_message; /* REVIEW_SAR: what a denial says */
	char *what;           /* REVIEW_SAR: "user/ns/name/verb" for logs */
};

/* What a request waits with (the auth_pending handle the proxy holds). */
struct auth_pending {
	struct auth_waiter *waiter;
	auth_done_fn done;
	void *arg;
	struct auth_identity *id; /* authorize: a reference, for the decision */
};

struct k8s_auth {
	struct auth_backend base;
	struct k8s_auth_env env;
	char **audiences;
	size_t n_audiences;
	bool strict;
	uint64_t token_ttl_ms, token_negative_ttl_ms, sar_allowed_ttl_ms, sar_denied_ttl_ms;
	struct auth_cache *tokens; /* sha256(token) -> struct authn */
	struct auth_cache *sars;   /* sar key -> struct authz */
	struct authn *by_identity[ID_BUCKETS];
	struct review *reviews;
	struct k8s_auth_stats stats;
};

static struct k8s_auth *k8s_auth_of(struct auth_backend *b)
{
	return (struct k8s_auth *)b;
}

/* ---- identities and their TokenReview results ---- */

static size_t k8s_auth_id_bucket(const struct auth_identity *id)
{
	return ((uintptr_t)id >> 4) % ID_BUCKETS;
}

static void k8s_auth_index_add(struct k8s_auth *ka, struct authn *a)
{
	size_t b = k8s_auth_id_bucket(a->id);

	a->idx_next = ka->by_identity[b];
	ka->by_identity[b] = a;
}

static void k8s_auth_index_remove(struct k8s_auth *ka, struct authn *a)
{
	struct authn **pp = &ka->by_identity[k8s_auth_id_bucket(a->id)];

	while (*pp && *pp != a)
		pp = &(*pp)->idx_next;
	if (*pp)
		*pp = a->idx_next;
}

/* The TokenReview result an identity came from, while it is cached. */
static struct authn *k8s_auth_index_find(struct k8s_auth *ka, const struct auth_identity *id)
{
	struct authn *a = ka->by_identity[k8s_auth_id_bucket(id)];

	while (a && a->id != id)
		a = a->idx_next;
	return a;
}

static int k8s_auth_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Bytes to hash: fields separated by NULs, which none of them can hold.
 * A SAR key fits the inline space, so the cached path allocates nothing. */
struct digest_buf {
	char *p;
	size_t n, cap;
	char inline_space[512];
};

static void k8s_auth_digest_init(struct digest_buf *b)
{
	b->p = b->inline_space;
	b->n = 0;
	b->cap = sizeof(b->inline_space);
}

static void k8s_auth_digest_add_bytes(struct digest_buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = OG_MAX(b->cap * 2, b->n + n + 256);
		char *grown = x_malloc(cap);

		memcpy(grown, b->p, b->n);
		if (b->p != b->inline_space)
			free(b->p);
		b->p = grown;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void k8s_auth_digest_add(struct digest_buf *b, const char *s)
{
	k8s_auth_digest_add_bytes(b, s, strlen(s) + 1);
}

static void k8s_auth_digest_end(struct digest_buf *b, unsigned char out[32])
{
	SHA256((const unsigned char *)b->p, b->n, out);
	if (b->p != b->inline_space)
		free(b->p);
}

static int k8s_auth_extra_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct k8s_user_extra *const *)a)->key,
		      (*(const struct k8s_user_extra *const *)b)->key);
}

/* extra is a map: its keys in sorted order; each key's values in order, as
 * the SubjectAccessReview sends them. Counts keep the encoding unambiguous. */
static void k8s_auth_digest_extra(struct digest_buf *b, const struct k8s_user_extras *extra)
{
	size_t n = extra ? extra->n : 0;
	const struct k8s_user_extra **sorted = x_calloc(n ? n : 1, sizeof(*sorted));
	char count[32];

	for (size_t i = 0; i < n; i++)
		sorted[i] = &extra->items[i];
	qsort(sorted, n, sizeof(*sorted), k8s_auth_extra_cmp);
	snprintf(count, sizeof(count), "%zu", n);
	k8s_auth_digest_add(b, count);
	for (size_t i = 0; i < n; i++) {
		k8s_auth_digest_add(b, sorted[i]->key);
		snprintf(count, sizeof(count), "%zu", sorted[i]->n_values);
		k8s_auth_digest_add(b, count);
		for (size_t j = 0; j < sorted[i]->n_values; j++)
			k8s_auth_digest_add(b, sorted[i]->values[j]);
	}
	free(sorted);
}

/* SHA-256 of user, uid, the sorted groups and extra (NULL: none): the
 * subject of a review. Webhook authorizers may decide on extra (a pod
 * name, a node), so two identities that differ only there must not share
 * a cached decision. */
static void k8s_auth_identity_digest(const struct auth_identity *id,
				     const struct k8s_user_extras *extra, unsigned char out[32])
{
	char **sorted = x_calloc(id->n_groups ? id->n_groups : 1, sizeof(*sorted));
	struct digest_buf b;
	char count[32];

	k8s_auth_digest_init(&b);
	memcpy(sorted, id->groups, id->n_groups * sizeof(*sorted));
	qsort(sorted, id->n_groups, sizeof(*sorted), k8s_auth_strcmp_p);
	snprintf(count, sizeof(count), "%zu", id->n_groups);
	k8s_auth_digest_add(&b, id->user);
	k8s_auth_digest_add(&b, id->uid ? id->uid : "");
	k8s_auth_digest_add(&b, count);
	for (size_t i = 0; i < id->n_groups; i++)
		k8s_auth_digest_add(&b, sorted[i]);
	k8s_auth_digest_extra(&b, extra);
	k8s_auth_digest_end(&b, out);
	free(sorted);
}

static struct authn *k8s_authn_new(struct k8s_auth *ka, enum auth_status status,
				   const char *message)
{
	struct authn *a = x_new(struct authn);

	a->refs = 1;
	a->ka = ka;
	a->status = status;
	a->message = message;
	return a;
}

/* Takes the identity fields and extra out of r. */
static struct authn *k8s_authn_from_review(struct k8s_auth *ka,
					   struct k8s_tokenreview_result *r)
{
	struct authn *a = k8s_authn_new(ka, AUTH_OK, NULL);

	a->id = auth_identity_new(r->username, r->uid, r->groups, r->n_groups);
	a->extra = r->extra;
	memset(&r->extra, 0, sizeof(r->extra));
	k8s_auth_identity_digest(a->id, &a->extra, a->id_digest);
	k8s_auth_index_add(ka, a);
	return a;
}

static void k8s_authn_unref(void *p)
{
	struct authn *a = p;

	if (!a || --a->refs > 0)
		return;
	if (a->id) {
		k8s_auth_index_remove(a->ka, a);
		auth_identity_unref(a->id);
	}
	k8s_user_extras_free(&a->extra);
	free(a);
}

static struct authz *k8s_authz_new(enum auth_status status, const char *message)
{
	struct authz *z = x_new(struct authz);

	z->refs = 1;
	z->status = status;
	z->message = message ? x_strdup(message) : NULL;
	return z;
}

static void k8s_authz_unref(void *p)
{
	struct authz *z = p;

	if (!z || --z->refs > 0)
		return;
	free(z->message);
	free(z);
}

/* ---- waiting requests ---- */

static struct auth_pending *k8s_auth_join(struct auth_flight *f, auth_cache_wake_fn wake,
					  struct auth_identity *id, auth_done_fn done, void *arg)
{
	struct auth_pending *p = x_new(struct auth_pending);

	p->id = id ? auth_identity_ref(id) : NULL;
	p->done = done;
	p->arg = arg;
	p->waiter = auth_flight_wait(f, wake, p);
	return p;
}

static void k8s_auth_release_pending(void *arg)
{
	struct auth_pending *p = arg;

	auth_identity_unref(p->id);
	free(p);
}

static void k8s_auth_cancel(struct auth_backend *b, struct auth_pending *p)
{
	(void)b;
	auth_waiter_cancel(p->waiter);
	k8s_auth_release_pending(p);
}

static void k8s_auth_authn_done(auth_done_fn done, void *arg, const struct authn *a)
{
	struct auth_decision d = { .status = a->status, .identity = a->id,
				   .message = a->message };

	done(arg, &d);
}

static void k8s_auth_wake_authn(void *arg, void *result)
{
	struct auth_pending *p = arg;
	auth_done_fn done = p->done;
	void *done_arg = p->arg;

	free(p);
	k8s_auth_authn_done(done, done_arg, result);
}

static void k8s_auth_authz_done(auth_done_fn done, void *arg, struct auth_identity *id,
				const struct authz *z)
{
	struct auth_decision d = { .status = z->status, .identity = id, .message = z->message };

	done(arg, &d);
}

/* ---- reviews in flight ---- */

static struct review *k8s_review_new(struct k8s_auth *ka, enum review_kind kind,
				     const unsigned char key[AUTH_CACHE_KEY_LEN])
{
	struct review *r = x_new(struct review);

	r->ka = ka;
	r->kind = kind;
	r->jwt_exp = -1;
	memcpy(r->key, key, AUTH_CACHE_KEY_LEN);
	r->next = ka->reviews;
	if (ka->reviews)
		ka->reviews->prev = r;
	ka->reviews = r;
	return r;
}

static void k8s_review_free(struct review *r)
{
	struct k8s_auth *ka = r->ka;

	if (r->prev)
		r->prev->next = r->next;
	else
		ka->reviews = r->next;
	if (r->next)
		r->next->prev = r->prev;
	free(r->denied_message);
	free(r->what);
	free(r);
}

static void k8s_auth_key_hex(const unsigned char *key, char out[17])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 8; i++) {
		out[2 * i] = hex[key[i] >> 4];
		out[2 * i + 1] = hex[key[i] & 15];
	}
	out[16] = '\0';
}

/* Why a response is no answer, for the log: "timeout", "connection
 * refused", "HTTP 403: Forbidden: ...". */
static void k8s_auth_failure(const struct k8s_response *resp, char *buf, size_t cap)
{
	struct k8s_status st = { 0 };
	char detail[300];

	if (resp->error || resp->status == 0) {
		snprintf(buf, cap, "%s", resp->timeout ? "timeout" :
					 resp->error ? resp->error : "no response");
		return;
	}
	if (resp->body && k8s_status_parse(resp->body, resp->len, &st, NULL, 0) == 0) {
		k8s_status_format(&st, detail, sizeof(detail));
		snprintf(buf, cap, "HTTP %d: %s", resp->status, detail);
	} else {
		snprintf(buf, cap, "HTTP %d", resp->status);
	}
	k8s_status_free(&st);
}

static bool k8s_auth_created(const struct k8s_response *resp)
{
	return !resp->error && (resp->status == 200 || resp->status == 201) && resp->body;
}

/* How long an authenticated token may be reused: the TTL, cut at exp. */
static uint64_t k8s_auth_positive_ttl(struct k8s_auth *ka, int64_t exp)
{
	int64_t left;

	if (exp < 0)
		return ka->token_ttl_ms;
	left = exp - ka->env.unix_now(ka->env.ctx);
	if (left <= 0)
		return 0;
	if ((uint64_t)left > ka->token_ttl_ms / 1000)
		return ka->token_ttl_ms;
	return OG_MIN(ka->token_ttl_ms, (uint64_t)left * 1000);
}

static const char msg_invalid[] = "invalid or expired token";
static const char msg_authn_unavailable[] =
	"cannot check the token now: the Kubernetes API server did not answer the TokenReview; try again later";
static const char msg_authz_unavailable[] =
	"cannot check access now: the Kubernetes API server did not answer the SubjectAccessReview; try again later";

static struct authn *k8s_auth_tokenreview_result(struct review *rv,
						 const struct k8s_response *resp)
{
	struct k8s_auth *ka = rv->ka;
	struct k8s_tokenreview_result tr = { 0 };
	char why[512], key[17];
	struct authn *a = NULL;

	k8s_auth_key_hex(rv->key, key);
	if (!k8s_auth_created(resp)) {
		k8s_auth_failure(resp, why, sizeof(why));
		log_error("tokenreview_failed", "token_sha256=%s reason=\"%s\"", key, why);
	} else if (k8s_tokenreview_parse(resp->body, resp->len, ka->audiences, ka->n_audiences,
					 &tr, why, sizeof(why)) != 0) {
		log_error("tokenreview_failed", "token_sha256=%s reason=\"%s\"", key, why);
	} else if (!tr.authenticated) {
		log_info("token_rejected", "token_sha256=%s reason=\"%s\"", key,
			 tr.error ? tr.error : "not authenticated");
		a = k8s_authn_new(ka, AUTH_INVALID, msg_invalid);
	} else {
		a = k8s_authn_from_review(ka, &tr);
	}
	k8s_tokenreview_result_free(&tr);
	if (!a) {
		ka->stats.tokenreview_failures++;
		a = k8s_authn_new(ka, AUTH_UNAVAILABLE, msg_authn_unavailable);
	}
	return a;
}

static void k8s_auth_cache_authn(struct k8s_auth *ka, struct review *rv, struct authn *a)
{
	uint64_t ttl;

	if (a->status == AUTH_OK)
		ttl = k8s_auth_positive_ttl(ka, rv->jwt_exp);
	else if (a->status == AUTH_INVALID)
		ttl = ka->token_negative_ttl_ms;
	else
		return; /* an outage is not an answer about the token */
	if (ttl == 0)
		return;
	a->refs++;
	auth_cache_put(ka->tokens, rv->key, a, ka->env.now_ms(ka->env.ctx) + ttl);
}

static void k8s_auth_on_tokenreview(void *arg, const struct k8s_response *resp)
{
	struct review *rv = arg;
	struct authn *a;

	rv->req = NULL;
	a = k8s_auth_tokenreview_result(rv, resp);
	k8s_auth_cache_authn(rv->ka, rv, a);
	auth_flight_finish(rv->flight, a);
	k8s_authn_unref(a);
	k8s_review_free(rv);
}

static struct auth_flight *k8s_auth_start_tokenreview(struct k8s_auth *ka, struct og_str token,
						      const unsigned char *key)
{
	struct review *rv = k8s_review_new(ka, REVIEW_TOKEN, key);
	struct evbuffer *body = evbuffer_new();
	int64_t exp;

	if (!body)
		abort(); /* x_malloc's contract: out of memory is fatal */
	if (jwt_exp(token, &exp) == 0)
		rv->jwt_exp = exp;
	k8s_tokenreview_body(body, token, ka->audiences, ka->n_audiences);
	rv->flight = auth_cache_flight_begin(ka->tokens, key, rv);
	ka->stats.tokenreviews++;
	rv->req = ka->env.post(ka->env.ctx, K8S_AUTH_TOKENREVIEW_PATH, body,
			       k8s_auth_on_tokenreview, rv);
	return rv->flight;
}

static struct auth_pending *k8s_auth_authenticate(struct auth_backend *b, struct og_str token,
						  const unsigned char token_sha256[32],
						  auth_done_fn done, void *arg)
{
	struct k8s_auth *ka = k8s_auth_of(b);
	struct authn *a = auth_cache_get(ka->tokens, token_sha256, ka->env.now_ms(ka->env.ctx));
	struct auth_flight *f;

	if (a) {
		ka->stats.token_hits++;
		k8s_auth_authn_done(done, arg, a);
		return NULL;
	}
	ka->stats.token_misses++;
	f = auth_cache_flight(ka->tokens, token_sha256);
	if (f)
		ka->stats.token_joins++;
	else
		f = k8s_auth_start_tokenreview(ka, token, token_sha256);
	return k8s_auth_join(f, k8s_auth_wake_authn, NULL, done, arg);
}

/* ---- SubjectAccessReview ---- */

struct sar_attrs {
	const char *verb;
	const char *subresource;
};

static struct sar_attrs k8s_auth_sar_attrs(const struct k8s_auth *ka, enum auth_verb verb)
{
	if (ka->strict)
		return (struct sar_attrs){ "*", "proxy" };
	return (struct sar_attrs){ verb == AUTH_VERB_PUSH ? "update" : "get", NULL };
}

static void k8s_auth_sar_key(const unsigned char id_digest[32], const struct connector *c,
			     const struct sar_attrs *at, unsigned char out[32])
{
	struct digest_buf b;

	k8s_auth_digest_init(&b);
	k8s_auth_digest_add_bytes(&b, id_digest, 32);
	k8s_auth_digest_add(&b, c->ns);
	k8s_auth_digest_add(&b, c->name);
	k8s_auth_digest_add(&b, at->verb);
	k8s_auth_digest_add(&b, at->subresource ? at->subresource : "");
	k8s_auth_digest_end(&b, out);
}

static char *k8s_auth_denied_message(const struct auth_identity *id, const struct connector *c,
				     const struct sar_attrs *at)
{
	const char *fmt = "user \"%s\" may not %s connectors.connectors.alauda.io%s \"%s\" in namespace \"%s\"";
	const char *sub = at->subresource ? "/proxy" : "";
	int n = snprintf(NULL, 0, fmt, id->user, at->verb, sub, c->name, c->ns);
	char *s = x_malloc((size_t)n + 1);

	snprintf(s, (size_t)n + 1, fmt, id->user, at->verb, sub, c->name, c->ns);
	return s;
}

static struct authz *k8s_auth_sar_result(struct review *rv, const struct k8s_response *resp)
{
	struct k8s_auth *ka = rv->ka;
	struct k8s_sar_result sr = { 0 };
	char why[512];
	struct authz *z = NULL;

	if (!k8s_auth_created(resp)) {
		k8s_auth_failure(resp, why, sizeof(why));
		log_error("subjectaccessreview_failed", "review=%s reason=\"%s\"", rv->what, why);
	} else if (k8s_sar_parse(resp->body, resp->len, &sr, why, sizeof(why)) != 0) {
		log_error("subjectaccessreview_failed", "review=%s reason=\"%s\"", rv->what, why);
	} else if (sr.allowed) {
		z = k8s_authz_new(AUTH_OK, NULL);
	} else {
		/* What an authorizer says is quoted like any other foreign text. */
		char reason[512], eval[512];
		const char *r = sr.reason ? sr.reason : "", *ev = sr.evaluation_error ?
								  sr.evaluation_error : "";
		log_quote(reason, sizeof(reason), r, strlen(r));
		log_quote(eval, sizeof(eval), ev, strlen(ev));
		log_info("access_denied", "review=%s reason=%s evaluation_error=%s", rv->what, reason,
			 eval);
		z = k8s_authz_new(AUTH_DENIED, rv->denied_message);
	}
	k8s_sar_result_free(&sr);
	if (!z) {
		ka->stats.sar_failures++;
		z = k8s_authz_new(AUTH_UNAVAILABLE, msg_authz_unavailable);
	}
	return z;
}

static void k8s_auth_on_sar(void *arg, const struct k8s_response *resp)
{
	struct review *rv = arg;
	struct k8s_auth *ka = rv->ka;
	struct authz *z;
	uint64_t ttl = 0;

	rv->req = NULL;
	z = k8s_auth_sar_result(rv, resp);
	if (z->status == AUTH_OK)
		ttl = ka->sar_allowed_ttl_ms;
	else if (z->status == AUTH_DENIED)
		ttl = ka->sar_denied_ttl_ms;
	if (ttl) {
		z->refs++;
		auth_cache_put(ka->sars, rv->key, z, ka->env.now_ms(ka->env.ctx) + ttl);
	}
	auth_flight_finish(rv->flight, z);
	k8s_authz_unref(z);
	k8s_review_free(rv);
}

static void k8s_auth_wake_authz(void *arg, void *result)
{
	struct auth_pending *p = arg;
	auth_done_fn done = p->done;
	void *done_arg = p->arg;
	struct auth_identity *id = p->id;

	free(p);
	k8s_auth_authz_done(done, done_arg, id, result);
	auth_identity_unref(id);
}

static struct auth_flight *k8s_auth_start_sar(struct k8s_auth *ka, struct auth_identity *id,
					      const struct connector *c,
					      const struct sar_attrs *at,
					      const unsigned char key[32])
{
	struct review *rv = k8s_review_new(ka, REVIEW_SAR, key);
	struct authn *a = k8s_auth_index_find(ka, id);
	struct evbuffer *body = evbuffer_new();
	struct k8s_resource_attrs ra = {
		.ns = c->ns,
		.verb = at->verb,
		.group = "connectors.alauda.io",
		.resource = "connectors",
		.subresource = at->subresource,
		.name = c->name,
	};
	int n;

	if (!body)
		abort(); /* x_malloc's contract: out of memory is fatal */
	rv->denied_message = k8s_auth_denied_message(id, c, at);
	n = snprintf(NULL, 0, "%s/%s/%s/%s", id->user, c->ns, c->name, at->verb);
	char *what = x_malloc((size_t)n + 1);
	snprintf(what, (size_t)n + 1, "%s/%s/%s/%s", id->user, c->ns, c->name, at->verb);
	/* Quoted once here: user names from TokenReview may hold quotes or
	 * newlines that would forge log fields. */
	rv->what = x_malloc((size_t)n * 4 + 3);
	log_quote(rv->what, (size_t)n * 4 + 3, what, (size_t)n);
	free(what);
	/* An identity whose TokenReview result left the cache has lost its
	 * extra; RBAC does not use extra, webhook authorizers may. */
	k8s_sar_body(body, id, a ? &a->extra : NULL, &ra);
	rv->flight = auth_cache_flight_begin(ka->sars, key, rv);
	ka->stats.sars++;
	rv->req = ka->env.post(ka->env.ctx, K8S_AUTH_SAR_PATH, body, k8s_auth_on_sar, rv);
	return rv->flight;
}

static struct auth_pending *k8s_auth_authorize(struct auth_backend *b, struct auth_identity *id,
					       struct connector *c, enum auth_verb verb,
					       auth_done_fn done, void *arg)
{
	struct k8s_auth *ka = k8s_auth_of(b);
	struct sar_attrs at = k8s_auth_sar_attrs(ka, verb);
	struct authn *a = k8s_auth_index_find(ka, id);
	unsigned char digest[32], key[32];
	struct authz *z;
	struct auth_flight *f;

	if (a)
		memcpy(digest, a->id_digest, sizeof(digest));
	else
		k8s_auth_identity_digest(id, NULL, digest);
	k8s_auth_sar_key(digest, c, &at, key);
	z = auth_cache_get(ka->sars, key, ka->env.now_ms(ka->env.ctx));
	if (z) {
		ka->stats.sar_hits++;
		k8s_auth_authz_done(done, arg, id, z);
		return NULL;
	}
	ka->stats.sar_misses++;
	f = auth_cache_flight(ka->sars, key);
	if (f)
		ka->stats.sar_joins++;
	else
		f = k8s_auth_start_sar(ka, id, c, &at, key);
	return k8s_auth_join(f, k8s_auth_wake_authz, id, done, arg);
}

/* ---- connectors ---- */

static struct connector *k8s_auth_find_connector(struct auth_backend *b, struct og_str ns,
						 struct og_str name)
{
	struct k8s_auth *ka = k8s_auth_of(b);
	char *nss, *names;
	struct connector *c;

	if (ka->env.synced(ka->env.ctx))
		return ka->env.find_connector(ka->env.ctx, ns, name);
	/* Not listed yet: whether it exists is unknown, and a 404 would make
	 * clients give up on an image that is there. */
	nss = x_strndup(ns.p, ns.n);
	names = x_strndup(name.p, name.n);
	struct connector_spec spec = {
		.ns = nss,
		.name = names,
		.https = true,
		.host = "invalid",
		.port = 443,
		.path_prefix = "",
		.address = "",
		.unavailable = "waiting for the first list of connectors from the Kubernetes API server",
	};
	c = connector_new(&spec);
	free(nss);
	free(names);
	return c;
}

/* ---- life cycle ---- */

static void k8s_auth_free(struct auth_backend *b)
{
	struct k8s_auth *ka = k8s_auth_of(b);

	if (!ka)
		return;
	while (ka->reviews) {
		struct review *rv = ka->reviews;
		if (rv->req)
			ka->env.cancel(ka->env.ctx, rv->req);
		auth_flight_abandon(rv->flight, k8s_auth_release_pending);
		k8s_review_free(rv);
	}
	auth_cache_free(ka->tokens);
	auth_cache_free(ka->sars);
	for (size_t i = 0; i < ka->n_audiences; i++)
		free(ka->audiences[i]);
	free(ka->audiences);
	if (ka->env.free)
		ka->env.free(ka->env.ctx);
	free(ka);
}

static bool k8s_auth_ready(struct auth_backend *b)
{
	struct k8s_auth *ka = k8s_auth_of(b);

	return ka->env.synced(ka->env.ctx);
}

static void k8s_auth_cache_counts(struct auth_backend *b, struct auth_cache_counts *out)
{
	struct k8s_auth *ka = k8s_auth_of(b);
	const struct auth_cache_stats *t = auth_cache_stats(ka->tokens);
	const struct auth_cache_stats *a = auth_cache_stats(ka->sars);

	out->token_hits = t->hits;
	out->token_misses = t->misses;
	out->access_hits = a->hits;
	out->access_misses = a->misses;
}

static const struct auth_backend_ops k8s_auth_ops = {
	.name = "kubernetes",
	.authenticate = k8s_auth_authenticate,
	.authorize = k8s_auth_authorize,
	.cancel = k8s_auth_cancel,
	.find_connector = k8s_auth_find_connector,
	.ready = k8s_auth_ready,
	.cache_counts = k8s_auth_cache_counts,
	.free = k8s_auth_free,
};

struct auth_backend *k8s_auth_new_env(const struct k8s_auth_settings *s,
				      const struct k8s_auth_env *env)
{
	struct k8s_auth *ka = x_new(struct k8s_auth);

	ka->base.ops = &k8s_auth_ops;
	ka->env = *env;
	ka->n_audiences = s->n_audiences;
	ka->audiences = x_calloc(s->n_audiences ? s->n_audiences : 1, sizeof(char *));
	for (size_t i = 0; i < s->n_audiences; i++)
		ka->audiences[i] = x_strdup(s->audiences[i]);
	ka->strict = s->strict_subresource;
	ka->token_ttl_ms = s->token_ttl_ms;
	ka->token_negative_ttl_ms = s->token_negative_ttl_ms;
	ka->sar_allowed_ttl_ms = s->sar_allowed_ttl_ms;
	ka->sar_denied_ttl_ms = s->sar_denied_ttl_ms;
	ka->tokens = auth_cache_new(s->cache_size ? s->cache_size : 1, k8s_authn_unref);
	ka->sars = auth_cache_new(s->cache_size ? s->cache_size : 1, k8s_authz_unref);
	return &ka->base;
}

void k8s_auth_get_stats(struct auth_backend *b, struct k8s_auth_stats *out)
{
	struct k8s_auth *ka = k8s_auth_of(b);

	*out = ka->stats;
	out->token_entries = auth_cache_count(ka->tokens);
	out->sar_entries = auth_cache_count(ka->sars);
}

/* ---- the real environment: the runtime's API client and Connector store, clocks ---- */

static struct k8s_request *k8s_auth_world_post(void *ctx, const char *path,
					       struct evbuffer *body, k8s_response_fn done,
					       void *arg)
{
	struct k8s_runtime *rt = ctx;

	return k8s_client_post(rt->client, path, body, done, arg);
}

static void k8s_auth_world_cancel(void *ctx, struct k8s_request *r)
{
	(void)ctx;
	k8s_request_cancel(r);
}

static struct connector *k8s_auth_world_find(void *ctx, struct og_str ns, struct og_str name)
{
	struct k8s_runtime *rt = ctx;

	return k8s_store_find_connector(rt->store, ns, name);
}

static bool k8s_auth_world_synced(void *ctx)
{
	struct k8s_runtime *rt = ctx;

	return k8s_store_synced(rt->store);
}

static uint64_t k8s_auth_world_now_ms(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t k8s_auth_world_unix_now(void *ctx)
{
	(void)ctx;
	return (int64_t)time(NULL);
}

struct auth_backend *k8s_auth_new(struct k8s_runtime *rt, const struct config *cfg)
{
	const struct k8s_auth_settings settings = {
		.audiences = cfg->kubernetes.audiences.items,
		.n_audiences = cfg->kubernetes.audiences.n,
		.strict_subresource = cfg->kubernetes.strict_subresource,
		.token_ttl_ms = cfg->kubernetes.token_cache_ttl_ms,
		.token_negative_ttl_ms = cfg->kubernetes.token_cache_negative_ttl_ms,
		.sar_allowed_ttl_ms = cfg->kubernetes.sar_allowed_ttl_ms,
		.sar_denied_ttl_ms = cfg->kubernetes.sar_denied_ttl_ms,
		.cache_size = cfg->kubernetes.cache_size,
	};
	struct k8s_auth_env env = {
		.ctx = rt,
		.post = k8s_auth_world_post,
		.cancel = k8s_auth_world_cancel,
		.find_connector = k8s_auth_world_find,
		.synced = k8s_auth_world_synced,
		.now_ms = k8s_auth_world_now_ms,
		.unix_now = k8s_auth_world_unix_now,
	};
	struct auth_backend *b = k8s_auth_new_env(&settings, &env);

	log_info("kubernetes_mode", "server=%s config=%s namespaces=%zu strict_subresource=%s",
		 rt->server, rt->source, cfg->kubernetes.namespaces.n,
		 settings.strict_subresource ? "yes" : "no");
	return b;
}
