/* k8s/k8s_auth against a fake API server and clocks: TokenReview and
 * SubjectAccessReview caching (TTLs, the JWT exp cap, negative results,
 * LRU size), single-flight, cancellation, every kind of API failure being
 * a 503 that is never cached, the SAR attributes, and find_connector while
 * the store has not synced. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/sha.h>

#include "auth/auth.h"
#include "k8s/k8s_auth.h"
#include "test/unit/check.h"
#include "util/jwt.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- the fake world ---- */

struct k8s_request {
	char *path;
	char *body;
	k8s_response_fn done;
	void *arg;
	bool finished, cancelled;
};

#define MAX_REQS 256

struct world {
	struct k8s_request *reqs[MAX_REQS];
	int n_reqs;
	int cancels;
	uint64_t now_ms;
	int64_t unix_now;
	bool synced;
	int finds;
	struct connector *conn; /* what the store has */
};

static struct world W;

static struct k8s_request *fake_post(void *ctx, const char *path, struct evbuffer *body,
				     k8s_response_fn done, void *arg)
{
	struct world *w = ctx;
	struct k8s_request *r = x_new(struct k8s_request);
	size_t n = evbuffer_get_length(body);

	r->path = x_strdup(path);
	r->body = x_malloc(n + 1);
	evbuffer_remove(body, r->body, n);
	r->body[n] = '\0';
	evbuffer_free(body);
	r->done = done;
	r->arg = arg;
	if (w->n_reqs < MAX_REQS)
		w->reqs[w->n_reqs++] = r;
	return r;
}

static void fake_cancel(void *ctx, struct k8s_request *r)
{
	struct world *w = ctx;

	CHECK(!r->finished && !r->cancelled);
	r->cancelled = true;
	w->cancels++;
}

static struct connector *fake_find(void *ctx, struct og_str ns, struct og_str name)
{
	struct world *w = ctx;

	w->finds++;
	if (w->conn && og_str_eq(ns, w->conn->ns) && og_str_eq(name, w->conn->name))
		return connector_ref(w->conn);
	return NULL;
}

static bool fake_synced(void *ctx)
{
	return ((struct world *)ctx)->synced;
}

static uint64_t fake_now_ms(void *ctx)
{
	return ((struct world *)ctx)->now_ms;
}

static int64_t fake_unix_now(void *ctx)
{
	return ((struct world *)ctx)->unix_now;
}

static void world_reset(void)
{
	for (int i = 0; i < W.n_reqs; i++) {
		free(W.reqs[i]->path);
		free(W.reqs[i]->body);
		free(W.reqs[i]);
	}
	connector_unref(W.conn);
	memset(&W, 0, sizeof(W));
	W.now_ms = 1000000;
	W.unix_now = 1700000000;
	W.synced = true;
}

static const struct k8s_auth_settings default_settings = {
	.token_ttl_ms = 120000,
	.token_negative_ttl_ms = 10000,
	.sar_allowed_ttl_ms = 300000,
	.sar_denied_ttl_ms = 30000,
	.cache_size = 100,
};

static struct auth_backend *backend_new(const struct k8s_auth_settings *s)
{
	struct k8s_auth_env env = {
		.ctx = &W,
		.post = fake_post,
		.cancel = fake_cancel,
		.find_connector = fake_find,
		.synced = fake_synced,
		.now_ms = fake_now_ms,
		.unix_now = fake_unix_now,
	};
	return k8s_auth_new_env(s, &env);
}

/* Answers request i. */
static bool have_request(int line, int i)
{
	if (i < W.n_reqs && !W.reqs[i]->finished && !W.reqs[i]->cancelled)
		return true;
	fprintf(stderr, "%s:%d: request %d is not pending (%d made)\n", __FILE__, line, i,
		W.n_reqs);
	check_failures++;
	return false;
}

#define respond(i, status, body) respond_at(__LINE__, i, status, body)
#define respond_error(i, error, timeout) respond_error_at(__LINE__, i, error, timeout)

static void respond_at(int line, int i, int status, const char *body)
{
	struct k8s_request *r;
	struct k8s_response resp = { .status = status, .body = body,
				     .len = body ? strlen(body) : 0 };

	if (!have_request(line, i))
		return;
	r = W.reqs[i];
	r->finished = true;
	r->done(r->arg, &resp);
}

static void respond_error_at(int line, int i, const char *error, bool timeout)
{
	struct k8s_request *r;
	struct k8s_response resp = { .error = error, .timeout = timeout };

	if (!have_request(line, i))
		return;
	r = W.reqs[i];
	r->finished = true;
	r->done(r->arg, &resp);
}

/* ---- what requests get ---- */

struct outcome {
	int calls;
	enum auth_status status;
	char user[128];
	char message[512];
	struct auth_identity *id; /* a reference, like the proxy takes */
	/* Like the proxy: authorize from within the authentication callback. */
	struct auth_backend *then_authorize;
	struct connector *connector;
	struct outcome *authz;
	struct auth_pending *authz_pending;
};

static void on_done(void *arg, const struct auth_decision *d)
{
	struct outcome *o = arg;

	o->calls++;
	o->status = d->status;
	snprintf(o->message, sizeof(o->message), "%s", d->message ? d->message : "");
	snprintf(o->user, sizeof(o->user), "%s", d->identity ? d->identity->user : "");
	if (d->status == AUTH_OK && d->identity && !o->id)
		o->id = auth_identity_ref(d->identity);
	if (o->then_authorize && d->status == AUTH_OK)
		o->authz_pending = o->then_authorize->ops->authorize(
			o->then_authorize, o->id, o->connector, AUTH_VERB_PULL, on_done, o->authz);
}

static void outcome_clear(struct outcome *o)
{
	auth_identity_unref(o->id);
	memset(o, 0, sizeof(*o));
}

static void sha(const char *token, unsigned char out[32])
{
	SHA256((const unsigned char *)token, strlen(token), out);
}

static struct auth_pending *authn(struct auth_backend *b, const char *token, struct outcome *o)
{
	unsigned char h[32];

	sha(token, h);
	return b->ops->authenticate(b, og_str_make(token, strlen(token)), h, on_done, o);
}

static const char tr_ok[] =
	"{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
	"\"status\":{\"authenticated\":true,\"user\":{\"username\":"
	"\"system:serviceaccount:team-a:default\",\"uid\":\"uid-1\",\"groups\":"
	"[\"system:serviceaccounts\",\"system:serviceaccounts:team-a\",\"system:authenticated\"],"
	"\"extra\":{\"authentication.kubernetes.io/pod-name\":[\"pod-1\"]}},"
	"\"audiences\":[\"https://kubernetes.default.svc\"]}}";

static const char tr_ok_reordered_groups[] =
	"{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
	"\"status\":{\"authenticated\":true,\"user\":{\"username\":"
	"\"system:serviceaccount:team-a:default\",\"uid\":\"uid-1\",\"groups\":"
	"[\"system:authenticated\",\"system:serviceaccounts:team-a\",\"system:serviceaccounts\"],"
	"\"extra\":{\"authentication.kubernetes.io/pod-name\":[\"pod-1\"]}}}}";

/* Same subject as tr_ok but another pod: a webhook authorizer may decide
 * otherwise, so the decision is not shared. */
static const char tr_ok_other_pod[] =
	"{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
	"\"status\":{\"authenticated\":true,\"user\":{\"username\":"
	"\"system:serviceaccount:team-a:default\",\"uid\":\"uid-1\",\"groups\":"
	"[\"system:serviceaccounts\",\"system:serviceaccounts:team-a\",\"system:authenticated\"],"
	"\"extra\":{\"authentication.kubernetes.io/pod-name\":[\"pod-2\"]}}}}";

/* tr_ok's extra plus a second key, written first: keys are a map. */
static const char tr_ok_two_keys[] =
	"{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
	"\"status\":{\"authenticated\":true,\"user\":{\"username\":"
	"\"system:serviceaccount:team-a:default\",\"uid\":\"uid-1\",\"groups\":"
	"[\"system:serviceaccounts\",\"system:serviceaccounts:team-a\",\"system:authenticated\"],"
	"\"extra\":{\"a/node\":[\"n1\"],\"authentication.kubernetes.io/pod-name\":[\"pod-1\"]}}}}";

static const char tr_ok_two_keys_reordered[] =
	"{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
	"\"status\":{\"authenticated\":true,\"user\":{\"username\":"
	"\"system:serviceaccount:team-a:default\",\"uid\":\"uid-1\",\"groups\":"
	"[\"system:serviceaccounts\",\"system:serviceaccounts:team-a\",\"system:authenticated\"],"
	"\"extra\":{\"authentication.kubernetes.io/pod-name\":[\"pod-1\"],\"a/node\":[\"n1\"]}}}}";

static const char tr_no[] =
	"{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
	"\"status\":{\"authenticated\":false,\"error\":\"token has expired\"}}";

static const char sar_yes[] =
	"{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\","
	"\"status\":{\"allowed\":true,\"reason\":\"RBAC: allowed by RoleBinding\"}}";

static const char sar_no[] =
	"{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\","
	"\"status\":{\"allowed\":false}}";

static struct connector *connector_make(const char *ns, const char *name)
{
	struct connector_spec spec = {
		.ns = ns, .name = name, .https = true, .host = "registry.example.com",
		.port = 443, .path_prefix = "", .address = "https://registry.example.com",
	};
	return connector_new(&spec);
}

/* A JWT-shaped token whose payload is the given JSON. */
static char *jwt(const char *payload)
{
	size_t n = strlen(payload);
	char *b64 = x_malloc(base64_encoded_len(n) + 1);
	char *tok;
	size_t len = base64_encode(payload, n, b64), o = 0;

	/* base64url without padding */
	for (size_t i = 0; i < len; i++) {
		if (b64[i] == '=')
			break;
		b64[o++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	}
	b64[o] = '\0';
	tok = x_malloc(o + 64);
	snprintf(tok, o + 64, "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", b64);
	free(b64);
	return tok;
}

/* ---- tests ---- */

static void test_jwt_exp(void)
{
	int64_t exp = 0;
	char *t;

	t = jwt("{\"iss\":\"kubernetes\",\"exp\":1700003600,\"sub\":\"x\"}");
	CHECK_INT(jwt_exp(og_str_make(t, strlen(t)), &exp), 0);
	CHECK_INT(exp, 1700003600);
	free(t);
	t = jwt("{\"exp\":1700000123.75}");
	CHECK_INT(jwt_exp(og_str_make(t, strlen(t)), &exp), 0);
	CHECK_INT(exp, 1700000123);
	free(t);
	t = jwt("{\"exp\":\"1700000123\"}");
	CHECK_INT(jwt_exp(og_str_make(t, strlen(t)), &exp), -1);
	free(t);
	t = jwt("{\"nbf\":1}");
	CHECK_INT(jwt_exp(og_str_make(t, strlen(t)), &exp), -1);
	free(t);
	t = jwt("[1,2]");
	CHECK_INT(jwt_exp(og_str_make(t, strlen(t)), &exp), -1);
	free(t);
	t = jwt("{\"exp\":-5}");
	CHECK_INT(jwt_exp(og_str_make(t, strlen(t)), &exp), 0);
	CHECK_INT(exp, -5);
	free(t);
	t = jwt("{\"exp\":1e400}");
	CHECK_INT(jwt_exp(og_str_make(t, strlen(t)), &exp), -1);
	free(t);
	static const char *const bad[] = {
		"", "opaque-static-token", "a.b", "a.b.c.d", "a.!!!.c", "a..c",
		"a.e.c",            /* one base64 character: not a whole byte */
		"a.eyJleHAiOjF9fQ.c", /* {"exp":1}} trailing garbage */
		"a.eyJleHAiOjEsImV4cCI6Mn0.c", /* {"exp":1,"exp":2} duplicate key */
	};
	for (size_t i = 0; i < OG_ARRAY_LEN(bad); i++) {
		if (jwt_exp(og_str_make(bad[i], strlen(bad[i])), &exp) != -1) {
			fprintf(stderr, "%s:%d: \"%s\" read as a JWT\n", __FILE__, __LINE__, bad[i]);
			check_failures++;
		}
	}
	/* Exactly {"exp":1}, unpadded. */
	CHECK_INT(jwt_exp(OG_STR_LIT("a.eyJleHAiOjF9.c"), &exp), 0);
	CHECK_INT(exp, 1);
}

static void test_single_flight_and_cache(void)
{
	struct auth_backend *b;
	struct outcome o[4] = { { 0 } };
	struct auth_pending *p;
	struct k8s_auth_stats st;

	world_reset();
	b = backend_new(&default_settings);
	/* Three concurrent requests with one token, one with another. */
	CHECK(authn(b, "token-a", &o[0]) != NULL);
	CHECK(authn(b, "token-a", &o[1]) != NULL);
	CHECK(authn(b, "token-b", &o[3]) != NULL);
	CHECK(authn(b, "token-a", &o[2]) != NULL);
	CHECK_INT(W.n_reqs, 2);
	CHECK(strcmp(W.reqs[0]->path, "/apis/authentication.k8s.io/v1/tokenreviews") == 0);
	CHECK(strstr(W.reqs[0]->body, "\"token\":\"token-a\"") != NULL);
	CHECK(strstr(W.reqs[0]->body, "audiences") == NULL);
	CHECK_INT(o[0].calls + o[1].calls + o[2].calls, 0);
	respond(0, 201, tr_ok);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(o[i].calls, 1);
		CHECK_INT(o[i].status, AUTH_OK);
		CHECK(strcmp(o[i].user, "system:serviceaccount:team-a:default") == 0);
	}
	CHECK(o[0].id && o[0].id == o[1].id && o[0].id->n_groups == 3);
	CHECK(o[0].id && strcmp(o[0].id->uid, "uid-1") == 0);
	CHECK_INT(o[3].calls, 0);
	/* The cached result answers at once: no request, no handle. */
	outcome_clear(&o[1]);
	W.now_ms += 119999;
	p = authn(b, "token-a", &o[1]);
	CHECK(p == NULL);
	CHECK_INT(o[1].calls, 1);
	CHECK_INT(o[1].status, AUTH_OK);
	CHECK_INT(W.n_reqs, 2);
	/* Two minutes later it is asked again. */
	W.now_ms += 1;
	outcome_clear(&o[1]);
	CHECK(authn(b, "token-a", &o[1]) != NULL);
	CHECK_INT(W.n_reqs, 3);
	respond(2, 200, tr_ok);
	CHECK_INT(o[1].status, AUTH_OK);
	respond(1, 201, tr_no);
	CHECK_INT(o[3].calls, 1);
	CHECK_INT(o[3].status, AUTH_INVALID);
	CHECK(strcmp(o[3].message, "invalid or expired token") == 0);
	k8s_auth_get_stats(b, &st);
	CHECK_INT(st.tokenreviews, 3);
	CHECK_INT(st.token_hits, 1);
	CHECK_INT(st.token_misses, 5);
	CHECK_INT(st.token_joins, 2);
	CHECK_INT(st.token_entries, 2);
	for (int i = 0; i < 4; i++)
		outcome_clear(&o[i]);
	auth_backend_free(b);
}

static void test_negative_ttl(void)
{
	struct auth_backend *b;
	struct outcome o = { 0 };

	world_reset();
	b = backend_new(&default_settings);
	CHECK(authn(b, "bad", &o) != NULL);
	respond(0, 201, tr_no);
	CHECK_INT(o.status, AUTH_INVALID);
	W.now_ms += 9999;
	outcome_clear(&o);
	CHECK(authn(b, "bad", &o) == NULL);
	CHECK_INT(o.calls, 1);
	CHECK_INT(o.status, AUTH_INVALID);
	W.now_ms += 1;
	outcome_clear(&o);
	CHECK(authn(b, "bad", &o) != NULL);
	CHECK_INT(W.n_reqs, 2);
	respond(1, 201, tr_ok); /* the token became valid: no stale 401 */
	CHECK_INT(o.status, AUTH_OK);
	outcome_clear(&o);
	auth_backend_free(b);
}

static void test_exp_cap(void)
{
	struct auth_backend *b;
	struct outcome o = { 0 };
	char payload[128];
	char *t;

	world_reset();
	b = backend_new(&default_settings);
	/* Expires in 30 s: cached for 30 s, not the 2 min TTL. */
	snprintf(payload, sizeof(payload), "{\"exp\":%lld}", (long long)W.unix_now + 30);
	t = jwt(payload);
	CHECK(authn(b, t, &o) != NULL);
	respond(0, 201, tr_ok);
	CHECK_INT(o.status, AUTH_OK);
	W.now_ms += 29999;
	W.unix_now += 29;
	outcome_clear(&o);
	CHECK(authn(b, t, &o) == NULL);
	CHECK_INT(o.status, AUTH_OK);
	W.now_ms += 1;
	W.unix_now += 1;
	outcome_clear(&o);
	CHECK(authn(b, t, &o) != NULL);
	CHECK_INT(W.n_reqs, 2);
	/* Already past exp by our clock (skew): the API server's yes is used
	 * for this request, but not cached. */
	respond(1, 201, tr_ok);
	CHECK_INT(o.status, AUTH_OK);
	outcome_clear(&o);
	CHECK(authn(b, t, &o) != NULL);
	CHECK_INT(W.n_reqs, 3);
	respond(2, 201, tr_no);
	CHECK_INT(o.status, AUTH_INVALID);
	free(t);
	/* Far-off exp: the TTL applies. */
	snprintf(payload, sizeof(payload), "{\"exp\":%lld}", (long long)W.unix_now + 86400);
	t = jwt(payload);
	outcome_clear(&o);
	CHECK(authn(b, t, &o) != NULL);
	respond(3, 201, tr_ok);
	W.now_ms += 119999;
	outcome_clear(&o);
	CHECK(authn(b, t, &o) == NULL);
	W.now_ms += 1;
	outcome_clear(&o);
	CHECK(authn(b, t, &o) != NULL);
	CHECK_INT(W.n_reqs, 5);
	respond(4, 201, tr_ok);
	free(t);
	outcome_clear(&o);
	auth_backend_free(b);
}

/* Every way the API can fail is a 503 for every waiter, and not cached. */
static void test_failures(void)
{
	static const struct {
		int status;
		const char *body;
	} cases[] = {
		{ 500, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"etcd down\",\"reason\":\"InternalError\",\"code\":500}" },
		{ 429, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"TooManyRequests\",\"code\":429}" },
		{ 401, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"Unauthorized\",\"code\":401}" },
		{ 403, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"Forbidden\",\"code\":403}" },
		{ 404, "404 page not found" },
		{ 503, "" },
		{ 201, "{" },
		{ 201, "" },
		{ 201, "null" },
		{ 201, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\"}" },
		{ 201, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true}}" },
		{ 201, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"status\":{\"authenticated\":\"true\",\"user\":{\"username\":\"x\"}}}" },
		{ 201, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{\"username\":\"\"}}}" },
		{ 201, "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"status\":\"Failure\",\"code\":500}" },
		{ 201, "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":true}}" },
	};
	struct auth_backend *b;
	struct outcome o[2] = { { 0 } };
	struct k8s_auth_stats st;
	int n = 0;

	world_reset();
	b = backend_new(&default_settings);
	for (size_t i = 0; i < OG_ARRAY_LEN(cases); i++) {
		CHECK(authn(b, "tok", &o[0]) != NULL);
		CHECK(authn(b, "tok", &o[1]) != NULL);
		CHECK_INT(W.n_reqs, n + 1);
		respond(n++, cases[i].status, cases[i].body);
		for (int k = 0; k < 2; k++) {
			if (o[k].calls != 1 || o[k].status != AUTH_UNAVAILABLE) {
				fprintf(stderr, "%s:%d: case %zu (HTTP %d): calls %d status %d\n",
					__FILE__, __LINE__, i, cases[i].status, o[k].calls,
					(int)o[k].status);
				check_failures++;
			}
			CHECK(strstr(o[k].message, "try again later") != NULL);
			outcome_clear(&o[k]);
		}
	}
	/* Transport failures. */
	CHECK(authn(b, "tok", &o[0]) != NULL);
	respond_error(n++, "connection refused", false);
	CHECK_INT(o[0].status, AUTH_UNAVAILABLE);
	outcome_clear(&o[0]);
	CHECK(authn(b, "tok", &o[0]) != NULL);
	respond_error(n++, "timeout", true);
	CHECK_INT(o[0].status, AUTH_UNAVAILABLE);
	outcome_clear(&o[0]);
	/* Nothing was cached: the API server back, the next request asks. */
	CHECK(authn(b, "tok", &o[0]) != NULL);
	CHECK_INT(W.n_reqs, n + 1);
	respond(n++, 201, tr_ok);
	CHECK_INT(o[0].status, AUTH_OK);
	outcome_clear(&o[0]);
	k8s_auth_get_stats(b, &st);
	CHECK_INT(st.tokenreview_failures, OG_ARRAY_LEN(cases) + 2);
	CHECK_INT(st.token_entries, 1);
	auth_backend_free(b);
}

static void test_cancel(void)
{
	struct auth_backend *b;
	struct outcome o[3] = { { 0 } };
	struct auth_pending *p0, *p1;

	world_reset();
	b = backend_new(&default_settings);
	p0 = authn(b, "t", &o[0]);
	p1 = authn(b, "t", &o[1]);
	CHECK(authn(b, "t", &o[2]) != NULL);
	b->ops->cancel(b, p1);
	respond(0, 201, tr_ok);
	CHECK_INT(o[0].calls, 1);
	CHECK_INT(o[1].calls, 0);
	CHECK_INT(o[2].calls, 1);
	(void)p0;
	/* Everyone gone: the review still fills the cache. */
	p0 = authn(b, "u", &o[1]);
	b->ops->cancel(b, p0);
	CHECK_INT(W.n_reqs, 2);
	respond(1, 201, tr_ok);
	CHECK_INT(o[1].calls, 0);
	CHECK(authn(b, "u", &o[1]) == NULL);
	CHECK_INT(o[1].calls, 1);
	CHECK_INT(W.n_reqs, 2);
	for (int i = 0; i < 3; i++)
		outcome_clear(&o[i]);
	/* Freeing the backend cancels what is in flight, without callbacks. */
	CHECK(authn(b, "v", &o[0]) != NULL);
	W.conn = connector_make("team-a", "harbor");
	auth_backend_free(b);
	CHECK_INT(W.cancels, 1);
	CHECK_INT(o[0].calls, 0);
}

static void test_lru_size(void)
{
	struct k8s_auth_settings s = default_settings;
	struct auth_backend *b;
	struct outcome o = { 0 };

	s.cache_size = 2;
	world_reset();
	b = backend_new(&s);
	for (int i = 0; i < 3; i++) {
		char t[8];
		snprintf(t, sizeof(t), "t%d", i);
		CHECK(authn(b, t, &o) != NULL);
		respond(i, 201, tr_ok);
		outcome_clear(&o);
	}
	CHECK(authn(b, "t2", &o) == NULL);
	outcome_clear(&o);
	CHECK(authn(b, "t1", &o) == NULL);
	outcome_clear(&o);
	CHECK(authn(b, "t0", &o) != NULL); /* the least recently used went */
	respond(3, 201, tr_ok);
	outcome_clear(&o);
	auth_backend_free(b);
}

/* The body of a SubjectAccessReview: the exact attributes. */
static void check_sar_body(int line, const char *body, const char *uid, const char *verb,
			   const char *sub, bool with_extra)
{
	struct json_doc d;
	int ra, spec;
	int before = check_failures;

	if (json_parse(&d, body, strlen(body), 1000, NULL, 0) != 0) {
		fprintf(stderr, "%s:%d: SAR body is not JSON: %s\n", __FILE__, line, body);
		check_failures++;
		return;
	}
	spec = json_get(&d, 0, "spec");
	ra = json_get(&d, spec, "resourceAttributes");
	CHECK(json_str_eq(&d, json_get(&d, 0, "kind"), "SubjectAccessReview"));
	CHECK(json_str_eq(&d, json_get(&d, 0, "apiVersion"), "authorization.k8s.io/v1"));
	CHECK(json_str_eq(&d, json_get(&d, spec, "user"), "system:serviceaccount:team-a:default"));
	CHECK(json_str_eq(&d, json_get(&d, spec, "uid"), uid));
	CHECK_INT(json_array_len(&d, json_get(&d, spec, "groups")), 3);
	CHECK(json_str_eq(&d, json_get(&d, ra, "namespace"), "team-a"));
	CHECK(json_str_eq(&d, json_get(&d, ra, "name"), "harbor"));
	CHECK(json_str_eq(&d, json_get(&d, ra, "group"), "connectors.alauda.io"));
	CHECK(json_str_eq(&d, json_get(&d, ra, "resource"), "connectors"));
	CHECK(json_str_eq(&d, json_get(&d, ra, "verb"), verb));
	if (sub)
		CHECK(json_str_eq(&d, json_get(&d, ra, "subresource"), sub));
	else
		CHECK(json_get(&d, ra, "subresource") < 0);
	if (with_extra) {
		int ex = json_get(&d, json_get(&d, spec, "extra"),
				  "authentication.kubernetes.io/pod-name");
		CHECK(json_str_eq(&d, json_array_first(&d, ex), "pod-1"));
	}
	json_doc_free(&d);
	if (check_failures != before)
		fprintf(stderr, "%s:%d: the checks above failed on this body: %s\n", __FILE__,
			line, body);
}

static struct auth_pending *authz(struct auth_backend *b, struct auth_identity *id,
				  struct connector *c, enum auth_verb verb, struct outcome *o)
{
	return b->ops->authorize(b, id, c, verb, on_done, o);
}

static void test_authorize(void)
{
	struct auth_backend *b;
	struct outcome a = { 0 }, z[3] = { { 0 } };
	struct connector *c = connector_make("team-a", "harbor");
	struct connector *other = connector_make("team-b", "harbor");
	struct k8s_auth_stats st;

	world_reset();
	b = backend_new(&default_settings);
	CHECK(authn(b, "tok", &a) != NULL);
	respond(0, 201, tr_ok);
	if (!a.id) {
		CHECK(a.id != NULL);
		return;
	}
	/* Two concurrent pulls: one review. */
	CHECK(authz(b, a.id, c, AUTH_VERB_PULL, &z[0]) != NULL);
	CHECK(authz(b, a.id, c, AUTH_VERB_PULL, &z[1]) != NULL);
	CHECK_INT(W.n_reqs, 2);
	CHECK(strcmp(W.reqs[1]->path, "/apis/authorization.k8s.io/v1/subjectaccessreviews") == 0);
	check_sar_body(__LINE__, W.reqs[1]->body, "uid-1", "get", NULL, true);
	respond(1, 201, sar_yes);
	CHECK_INT(z[0].calls, 1);
	CHECK_INT(z[0].status, AUTH_OK);
	CHECK_INT(z[1].status, AUTH_OK);
	CHECK(strcmp(z[0].user, "system:serviceaccount:team-a:default") == 0);
	outcome_clear(&z[0]);
	outcome_clear(&z[1]);
	/* Cached for 5 minutes. */
	W.now_ms += 299999;
	CHECK(authz(b, a.id, c, AUTH_VERB_PULL, &z[0]) == NULL);
	CHECK_INT(z[0].status, AUTH_OK);
	CHECK_INT(W.n_reqs, 2);
	outcome_clear(&z[0]);
	/* Push is another question: update on the connector. */
	CHECK(authz(b, a.id, c, AUTH_VERB_PUSH, &z[0]) != NULL);
	CHECK_INT(W.n_reqs, 3);
	check_sar_body(__LINE__, W.reqs[2]->body, "uid-1", "update", NULL, true);
	respond(2, 201, sar_no);
	CHECK_INT(z[0].status, AUTH_DENIED);
	CHECK(strcmp(z[0].message, "user \"system:serviceaccount:team-a:default\" may not update connectors.connectors.alauda.io \"harbor\" in namespace \"team-a\"") == 0);
	outcome_clear(&z[0]);
	/* Another connector: denied, cached 30 s. */
	CHECK(authz(b, a.id, other, AUTH_VERB_PULL, &z[0]) != NULL);
	respond(3, 201, sar_no);
	CHECK_INT(z[0].status, AUTH_DENIED);
	CHECK(strcmp(z[0].message, "user \"system:serviceaccount:team-a:default\" may not get connectors.connectors.alauda.io \"harbor\" in namespace \"team-b\"") == 0);
	outcome_clear(&z[0]);
	W.now_ms += 29999;
	CHECK(authz(b, a.id, other, AUTH_VERB_PULL, &z[0]) == NULL);
	CHECK_INT(z[0].status, AUTH_DENIED);
	CHECK(strstr(z[0].message, "may not get") != NULL);
	outcome_clear(&z[0]);
	W.now_ms += 1;
	CHECK(authz(b, a.id, other, AUTH_VERB_PULL, &z[0]) != NULL);
	CHECK_INT(W.n_reqs, 5);
	respond(4, 201, sar_yes); /* a RoleBinding was added meanwhile */
	CHECK_INT(z[0].status, AUTH_OK);
	outcome_clear(&z[0]);
	/* An API failure is a 503, not a denial, and is not cached. */
	W.now_ms += 300000; /* both connectors' entries expire */
	CHECK(authz(b, a.id, c, AUTH_VERB_PULL, &z[0]) != NULL);
	respond(5, 500, "{}");
	CHECK_INT(z[0].status, AUTH_UNAVAILABLE);
	CHECK(strstr(z[0].message, "SubjectAccessReview") != NULL);
	outcome_clear(&z[0]);
	CHECK(authz(b, a.id, c, AUTH_VERB_PULL, &z[0]) != NULL);
	respond(6, 201, "{\"kind\":\"SubjectAccessReview\"");
	CHECK_INT(z[0].status, AUTH_UNAVAILABLE);
	outcome_clear(&z[0]);
	CHECK(authz(b, a.id, c, AUTH_VERB_PULL, &z[0]) != NULL);
	respond_error(7, "timeout", true);
	CHECK_INT(z[0].status, AUTH_UNAVAILABLE);
	outcome_clear(&z[0]);
	CHECK(authz(b, a.id, c, AUTH_VERB_PULL, &z[0]) != NULL);
	CHECK_INT(W.n_reqs, 9);
	respond(8, 201, "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":\"yes\"}}");
	CHECK_INT(z[0].status, AUTH_UNAVAILABLE);
	outcome_clear(&z[0]);
	k8s_auth_get_stats(b, &st);
	CHECK_INT(st.sars, 8);
	CHECK_INT(st.sar_failures, 4);
	CHECK_INT(st.sar_joins, 1);
	/* A cancelled SAR waiter is never called; the review still caches. */
	struct auth_pending *p = authz(b, a.id, c, AUTH_VERB_PULL, &z[0]);
	CHECK(p != NULL);
	b->ops->cancel(b, p);
	respond(9, 201, sar_yes);
	CHECK_INT(z[0].calls, 0);
	CHECK(authz(b, a.id, c, AUTH_VERB_PULL, &z[0]) == NULL);
	CHECK_INT(z[0].status, AUTH_OK);
	outcome_clear(&z[0]);
	outcome_clear(&a);
	connector_unref(c);
	connector_unref(other);
	auth_backend_free(b);
}

/* The SAR cache key is the subject (user, uid, sorted groups), not the
 * token: another token of the same ServiceAccount reuses the decision,
 * one with a different uid does not. */
static void test_authorize_key(void)
{
	struct auth_backend *b;
	struct outcome a1 = { 0 }, a2 = { 0 }, z = { 0 };
	struct connector *c = connector_make("team-a", "harbor");
	char *groups[] = { "system:serviceaccounts", "system:authenticated",
			   "system:serviceaccounts:team-a" };
	struct auth_identity *loose;

	world_reset();
	b = backend_new(&default_settings);
	CHECK(authn(b, "tok1", &a1) != NULL);
	respond(0, 201, tr_ok);
	CHECK(authn(b, "tok2", &a2) != NULL);
	respond(1, 201, tr_ok_reordered_groups);
	if (!a1.id || !a2.id) {
		CHECK(!"authentication failed");
		return;
	}
	CHECK(authz(b, a1.id, c, AUTH_VERB_PULL, &z) != NULL);
	respond(2, 201, sar_yes);
	outcome_clear(&z);
	CHECK(authz(b, a2.id, c, AUTH_VERB_PULL, &z) == NULL);
	CHECK_INT(z.status, AUTH_OK);
	outcome_clear(&z);
	/* An identity the backend did not make (or whose TokenReview left the
	 * cache) has no extra: its SAR has none, and a decision made with
	 * a1's extra is not its own. Two such identities share one. */
	loose = auth_identity_new("system:serviceaccount:team-a:default", "uid-1", groups, 3);
	CHECK(authz(b, loose, c, AUTH_VERB_PULL, &z) != NULL);
	CHECK_INT(W.n_reqs, 4);
	CHECK(W.n_reqs < 4 || strstr(W.reqs[3]->body, "extra") == NULL);
	respond(3, 201, sar_yes);
	CHECK_INT(z.status, AUTH_OK);
	outcome_clear(&z);
	auth_identity_unref(loose);
	loose = auth_identity_new("system:serviceaccount:team-a:default", "uid-1", groups, 3);
	CHECK(authz(b, loose, c, AUTH_VERB_PULL, &z) == NULL);
	CHECK_INT(z.status, AUTH_OK);
	outcome_clear(&z);
	auth_identity_unref(loose);
	loose = auth_identity_new("system:serviceaccount:team-a:default", "uid-2", groups, 3);
	CHECK(authz(b, loose, c, AUTH_VERB_PULL, &z) != NULL);
	CHECK_INT(W.n_reqs, 5);
	check_sar_body(__LINE__, W.reqs[4]->body, "uid-2", "get", NULL, false);
	CHECK(strstr(W.reqs[4]->body, "\"uid\":\"uid-2\"") != NULL);
	CHECK(strstr(W.reqs[4]->body, "extra") == NULL);
	respond(4, 201, sar_no);
	CHECK_INT(z.status, AUTH_DENIED);
	outcome_clear(&z);
	/* One group fewer: another subject. */
	auth_identity_unref(loose);
	loose = auth_identity_new("system:serviceaccount:team-a:default", "uid-1", groups, 2);
	CHECK(authz(b, loose, c, AUTH_VERB_PULL, &z) != NULL);
	CHECK_INT(W.n_reqs, 6);
	respond(5, 201, sar_yes);
	outcome_clear(&z);
	auth_identity_unref(loose);
	/* Many long groups (more than any inline buffer), in two orders: one
	 * subject. */
	{
		char *many[64], *rev[64];
		struct auth_identity *x, *y;

		for (int i = 0; i < 64; i++) {
			many[i] = x_malloc(48);
			snprintf(many[i], 48, "group-%02d-with-a-rather-long-name", i);
			rev[63 - i] = many[i];
		}
		x = auth_identity_new("u", "uid-9", many, 64);
		y = auth_identity_new("u", "uid-9", rev, 64);
		CHECK(authz(b, x, c, AUTH_VERB_PULL, &z) != NULL);
		CHECK_INT(W.n_reqs, 7);
		respond(6, 201, sar_yes);
		CHECK_INT(z.status, AUTH_OK);
		outcome_clear(&z);
		CHECK(authz(b, y, c, AUTH_VERB_PULL, &z) == NULL);
		CHECK_INT(z.status, AUTH_OK);
		outcome_clear(&z);
		auth_identity_unref(x);
		auth_identity_unref(y);
		for (int i = 0; i < 64; i++)
			free(many[i]);
	}
	outcome_clear(&a1);
	outcome_clear(&a2);
	connector_unref(c);
	auth_backend_free(b);
}

/* The SubjectAccessReview carries the user's extra, so the cached decision
 * is keyed by it too: another pod of the same ServiceAccount gets its own
 * review; the same extra with its keys in another order does not. */
static void test_authorize_key_extra(void)
{
	struct auth_backend *b;
	struct outcome a[4] = { { 0 } }, z = { 0 };
	struct connector *c = connector_make("team-a", "harbor");
	const char *reviews[] = { tr_ok, tr_ok_other_pod, tr_ok_two_keys, tr_ok_two_keys_reordered };
	const char *tokens[] = { "tok-p1", "tok-p2", "tok-k1", "tok-k2" };

	world_reset();
	b = backend_new(&default_settings);
	for (int i = 0; i < 4; i++) {
		CHECK(authn(b, tokens[i], &a[i]) != NULL);
		respond((size_t)i, 201, reviews[i]);
		if (!a[i].id) {
			CHECK(!"authentication failed");
			goto out;
		}
	}
	CHECK(authz(b, a[0].id, c, AUTH_VERB_PULL, &z) != NULL);
	CHECK_INT(W.n_reqs, 5);
	CHECK(strstr(W.reqs[4]->body, "pod-1") != NULL);
	respond(4, 201, sar_yes);
	CHECK_INT(z.status, AUTH_OK);
	outcome_clear(&z);
	/* pod-2: a new review, whose denial is its own */
	CHECK(authz(b, a[1].id, c, AUTH_VERB_PULL, &z) != NULL);
	CHECK_INT(W.n_reqs, 6);
	CHECK(W.n_reqs < 6 || strstr(W.reqs[5]->body, "pod-2") != NULL);
	respond(5, 201, sar_no);
	CHECK_INT(z.status, AUTH_DENIED);
	outcome_clear(&z);
	CHECK(authz(b, a[0].id, c, AUTH_VERB_PULL, &z) == NULL);
	CHECK_INT(z.status, AUTH_OK);
	outcome_clear(&z);
	/* a second key: another subject; the same map in another order: the same */
	CHECK(authz(b, a[2].id, c, AUTH_VERB_PULL, &z) != NULL);
	CHECK_INT(W.n_reqs, 7);
	respond(6, 201, sar_yes);
	outcome_clear(&z);
	CHECK(authz(b, a[3].id, c, AUTH_VERB_PULL, &z) == NULL);
	CHECK_INT(z.status, AUTH_OK);
	outcome_clear(&z);
	CHECK_INT(W.n_reqs, 7);
out:
	for (int i = 0; i < 4; i++)
		outcome_clear(&a[i]);
	connector_unref(c);
	auth_backend_free(b);
}

static void test_strict_and_audiences(void)
{
	char *aud[] = { "ocigate" };
	struct k8s_auth_settings s = default_settings;
	struct auth_backend *b;
	struct outcome a = { 0 }, z = { 0 };
	struct connector *c = connector_make("team-a", "harbor");

	s.strict_subresource = true;
	s.audiences = aud;
	s.n_audiences = 1;
	world_reset();
	b = backend_new(&s);
	CHECK(authn(b, "tok", &a) != NULL);
	CHECK(strstr(W.reqs[0]->body, "\"audiences\":[\"ocigate\"]") != NULL);
	/* The reviewer answered for another audience: not authenticated. */
	respond(0, 201, tr_ok);
	CHECK_INT(a.status, AUTH_INVALID);
	outcome_clear(&a);
	W.now_ms += 10000;
	CHECK(authn(b, "tok", &a) != NULL);
	respond(1, 201,
		"{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
		"\"status\":{\"authenticated\":true,\"user\":{\"username\":"
		"\"system:serviceaccount:team-a:default\",\"uid\":\"uid-1\",\"groups\":"
		"[\"a\",\"b\",\"c\"]},\"audiences\":[\"ocigate\"]}}");
	CHECK_INT(a.status, AUTH_OK);
	if (!a.id) {
		connector_unref(c);
		auth_backend_free(b);
		return;
	}
	CHECK(authz(b, a.id, c, AUTH_VERB_PULL, &z) != NULL);
	check_sar_body(__LINE__, W.reqs[2]->body, "uid-1", "*", "proxy", false);
	respond(2, 201, sar_no);
	CHECK(strcmp(z.message, "user \"system:serviceaccount:team-a:default\" may not * connectors.connectors.alauda.io/proxy \"harbor\" in namespace \"team-a\"") == 0);
	outcome_clear(&z);
	/* Strict mode asks the same question for push. */
	CHECK(authz(b, a.id, c, AUTH_VERB_PUSH, &z) == NULL);
	CHECK_INT(z.status, AUTH_DENIED);
	outcome_clear(&z);
	outcome_clear(&a);
	connector_unref(c);
	auth_backend_free(b);
}

/* Like the proxy: authorize from within the authentication callback, for
 * every waiter of a flight, while other waiters are still to be woken. */
static void test_reentrant(void)
{
	struct auth_backend *b;
	struct outcome a[3] = { { 0 } }, z[3] = { { 0 } };
	struct connector *c = connector_make("team-a", "harbor");

	world_reset();
	b = backend_new(&default_settings);
	for (int i = 0; i < 3; i++) {
		a[i].then_authorize = b;
		a[i].connector = c;
		a[i].authz = &z[i];
		CHECK(authn(b, "tok", &a[i]) != NULL);
	}
	respond(0, 201, tr_ok);
	CHECK_INT(W.n_reqs, 2); /* one SAR for the three */
	CHECK(a[0].authz_pending && a[1].authz_pending && a[2].authz_pending);
	b->ops->cancel(b, a[1].authz_pending);
	respond(1, 201, sar_yes);
	CHECK_INT(z[0].status, AUTH_OK);
	CHECK_INT(z[0].calls, 1);
	CHECK_INT(z[1].calls, 0);
	CHECK_INT(z[2].calls, 1);
	for (int i = 0; i < 3; i++) {
		outcome_clear(&a[i]);
		outcome_clear(&z[i]);
	}
	connector_unref(c);
	auth_backend_free(b);
}

static void test_find_connector(void)
{
	struct auth_backend *b;
	struct connector *c;

	world_reset();
	W.synced = false;
	W.conn = connector_make("team-a", "harbor");
	b = backend_new(&default_settings);
	/* Before the first list: a stand-in that makes the proxy answer 503. */
	c = b->ops->find_connector(b, OG_STR_LIT("team-a"), OG_STR_LIT("nope"));
	CHECK(c != NULL);
	if (c) {
		CHECK(strcmp(c->id, "team-a/nope") == 0);
		CHECK(c->unavailable && strstr(c->unavailable, "first list") != NULL);
		connector_unref(c);
	}
	CHECK_INT(W.finds, 0);
	W.synced = true;
	c = b->ops->find_connector(b, OG_STR_LIT("team-a"), OG_STR_LIT("nope"));
	CHECK(c == NULL);
	c = b->ops->find_connector(b, OG_STR_LIT("team-a"), OG_STR_LIT("harbor"));
	CHECK(c == W.conn);
	CHECK(c && !c->unavailable);
	connector_unref(c);
	CHECK_INT(W.finds, 2);
	auth_backend_free(b);
	world_reset();
}

int main(void)
{
	/* The failures logged on purpose would drown the real ones. */
	log_set_level((enum log_level)(LOG_ERROR + 1));
	test_jwt_exp();
	test_single_flight_and_cache();
	test_negative_ttl();
	test_exp_cap();
	test_failures();
	test_cancel();
	test_lru_size();
	test_authorize();
	test_authorize_key();
	test_authorize_key_extra();
	test_strict_and_audiences();
	test_reentrant();
	test_find_connector();
	world_reset();
	connector_unref(W.conn);
	CHECK_DONE();
}
