#include "proxy/token.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/cache.h"
#include "proxy/fetch.h"
#include "proxy/upstream.h"
#include "util/json.h"
#include "util/log.h"
#include "util/url.h"
#include "util/xalloc.h"

#define TOKEN_DEFAULT_LIFETIME 60   /* the token spec's default for expires_in */
/* Tokens are re-fetched at least this often, whatever expires_in says: a
 * token service's giant or bogus lifetime cannot pin a token forever. */
#define TOKEN_MAX_LIFETIME 3600
#define TOKEN_MAX_RESPONSE (64 * 1024)
#define TOKEN_MAX_ENTRIES 1024
/* After a fetch failed, the site's requests fail at once for this long
 * instead of each starting a fetch: a token service that is down, slow or
 * refusing is asked about once per hold, not once per client request. */
#define TOKEN_FAILURE_HOLD_MS 1000

/* One token request in flight; its flight's waiters are the requests that
 * want the token. */
struct token_fetch {
	struct token_cache *tc;
	struct token_fetch *prev, *next;
	struct auth_flight *flight;
	struct fetch *fetch;
	unsigned char key[AUTH_CACHE_KEY_LEN];
	char *scope; /* for logs */
};

/* What a flight's waiters are woken with. */
struct token_result {
	const char *authorization;
	const char *error;
	enum token_failure failure;
};

/* A bounded LRU of "Bearer ..." values keyed by SHA-256 of (realm, service,
 * scope), so a token from one realm is never handed to another. */
struct token_cache {
	struct upstream_site *site;
	struct auth_cache *cache;
	struct token_fetch *fetches;
	/* Waits started by token_get, run on the next turn by start_ev. */
	struct token_wait *queue, *queue_tail;
	struct event *start_ev;
	bool starting; /* in token_run_queue: a free is deferred to its end */
	bool dead;
	/* The last failed fetch, answered to every request until failed_until. */
	uint64_t failed_until_ms;
	enum token_failure failed_kind;
	char failed_error[300];
};

static uint64_t token_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void token_secret_free(void *p)
{
	char *s = p;

	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static void token_key(const struct upstream_site *s, const char *scope,
		      unsigned char out[AUTH_CACHE_KEY_LEN])
{
	const char *parts[] = { s->realm ? s->realm : "", s->service ? s->service : "", scope };
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned len = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		abort(); /* out of memory, as x_malloc treats it */
	for (size_t i = 0; i < OG_ARRAY_LEN(parts); i++)
		if (EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1) != 1)
			abort();
	if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != AUTH_CACHE_KEY_LEN)
		abort();
	EVP_MD_CTX_free(ctx);
}

static void token_run_queue(evutil_socket_t fd, short what, void *arg);

struct token_cache *token_cache_new(struct upstream_site *site)
{
	struct token_cache *tc = x_new(struct token_cache);

	tc->site = site;
	tc->cache = auth_cache_new(TOKEN_MAX_ENTRIES, token_secret_free);
	tc->start_ev = event_new(site->px->base, -1, 0, token_run_queue, tc);
	if (!tc->start_ev)
		abort(); /* out of memory, as x_malloc treats it */
	return tc;
}

static void token_queue_unlink(struct token_wait *w)
{
	struct token_cache *tc = w->tc;

	if (w->prev)
		w->prev->next = w->next;
	else
		tc->queue = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		tc->queue_tail = w->prev;
	w->next = w->prev = NULL;
}

/* A fetch's owner went away: its waiters are dropped, never woken. */
static void token_wait_abandoned(void *arg)
{
	struct token_wait *w = arg;

	w->waiter = NULL;
	w->tc = NULL;
}

static void token_fetch_unlink(struct token_fetch *tf)
{
	if (tf->prev)
		tf->prev->next = tf->next;
	else
		tf->tc->fetches = tf->next;
	if (tf->next)
		tf->next->prev = tf->prev;
	tf->prev = tf->next = NULL;
}

/* The last of tc: the waits still queued are dropped, never called. */
static void token_cache_destroy(struct token_cache *tc)
{
	while (tc->queue) {
		struct token_wait *w = tc->queue;
		token_queue_unlink(w);
		w->tc = NULL;
	}
	event_free(tc->start_ev);
	free(tc);
}

void token_cache_free(struct token_cache *tc)
{
	if (!tc)
		return;
	/* The fetches go now: their connections belong to the site's pools,
	 * which go right after this. */
	while (tc->fetches) {
		struct token_fetch *tf = tc->fetches;
		token_fetch_unlink(tf);
		fetch_cancel(tf->fetch);
		auth_flight_abandon(tf->flight, token_wait_abandoned);
		free(tf->scope);
		free(tf);
	}
	auth_cache_free(tc->cache);
	tc->cache = NULL;
	/* Freed from a wait's callback (it dropped the last reference to the
	 * connector): token_run_queue finishes the job once it is back. */
	if (tc->starting)
		tc->dead = true;
	else
		token_cache_destroy(tc);
}

static int64_t token_issued_at(const char *text)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);

	if (!rest)
		return -1;
	if (*rest == '.')
		for (rest++; *rest >= '0' && *rest <= '9'; rest++)
			;
	int64_t t = (int64_t)timegm(&tm);
	if (*rest == 'Z' || *rest == 'z')
		return rest[1] ? -1 : t;
	int hh, mm;
	if ((*rest == '+' || *rest == '-') && sscanf(rest + 1, "%2d:%2d", &hh, &mm) == 2 &&
	    strlen(rest) == 6) {
		int64_t off = (int64_t)(hh * 3600 + mm * 60);
		return *rest == '+' ? t - off : t + off;
	}
	return -1;
}

int token_parse_response(const char *body, size_t len, time_t now, char **token, int64_t *lifetime,
			 char *err, size_t cap)
{
	struct json_doc d = { 0 };
	int rc = -1;

	*token = NULL;
	if (json_parse(&d, body, len, 256, NULL, 0) != 0 || !json_is_object(&d, 0)) {
		snprintf(err, cap, "the token service answered with invalid JSON");
		goto out;
	}
	int t = json_get(&d, 0, "token");
	if (t < 0 || !json_is_string(&d, t) || json_string_len(&d, t) == 0)
		t = json_get(&d, 0, "access_token");
	char *tok = t >= 0 ? json_strdup(&d, t) : NULL;
	if (!tok || !*tok || strpbrk(tok, " \t\r\n")) {
		free(tok);
		snprintf(err, cap, "the token service's answer has no usable token");
		goto out;
	}
	int64_t expires_in = TOKEN_DEFAULT_LIFETIME, issued = -1;
	int e = json_get(&d, 0, "expires_in");
	if (e >= 0 && (!json_int64(&d, e, &expires_in) || expires_in < 0)) {
		free(tok);
		snprintf(err, cap, "the token service's expires_in is not a number of seconds");
		goto out;
	}
	if (e >= 0 && expires_in == 0)
		expires_in = TOKEN_DEFAULT_LIFETIME;
	int ia = json_get(&d, 0, "issued_at");
	char issued_text[64];
	if (ia >= 0 && json_string(&d, ia, issued_text, sizeof(issued_text)) > 0)
		issued = token_issued_at(issued_text);
	*lifetime = expires_in;
	/* issued_at in the past shortens the lifetime; one in the future (a
	 * skewed clock) never lengthens it. No sum: expires_in may be huge. */
	if (issued >= 0 && issued < (int64_t)now)
		*lifetime = (int64_t)now - issued >= expires_in ? 0 : expires_in - ((int64_t)now - issued);
	*lifetime = OG_MIN(*lifetime, (int64_t)TOKEN_MAX_LIFETIME);
	if (*lifetime <= 0) {
		OPENSSL_cleanse(tok, strlen(tok));
		free(tok);
		snprintf(err, cap, "the token service returned an already expired token");
		goto out;
	}
	*token = tok;
	rc = 0;
out:
	json_doc_free(&d);
	return rc;
}

/* Renew ahead of expiry so no request goes out with a token that dies on
 * the way: a tenth of the lifetime, at most 10 s. */
static uint64_t token_usable_until_ms(int64_t lifetime)
{
	int64_t margin = lifetime / 10 < 10 ? lifetime / 10 : 10;

	return token_now_ms() + (uint64_t)(lifetime - margin) * 1000;
}

static void token_wake(void *arg, void *result)
{
	struct token_wait *w = arg;
	const struct token_result *r = result;

	w->waiter = NULL;
	w->tc = NULL;
	w->done(w->arg, r->authorization, r->error, r->failure);
}

static void token_hold_failure(struct token_cache *tc, const char *err, enum token_failure kind)
{
	if (!err) {
		tc->failed_until_ms = 0;
		return;
	}
	tc->failed_until_ms = token_now_ms() + TOKEN_FAILURE_HOLD_MS;
	tc->failed_kind = kind;
	snprintf(tc->failed_error, sizeof(tc->failed_error), "%s", err);
}

static void token_on_fetched(void *arg, const struct fetch_result *r)
{
	struct token_fetch *tf = arg;
	struct token_cache *tc = tf->tc;
	struct connector *c = tc->site->connector;
	struct auth_flight *flight = tf->flight;
	char err[300] = "", scope[600];
	char *token = NULL, *auth = NULL;
	int64_t lifetime = 0;
	enum token_failure failure = r->timeout ? TOKEN_TIMEOUT : TOKEN_FAILED;

	if (r->error) {
		snprintf(err, sizeof(err), "token service: %s", r->error);
	} else if (r->status == 401 || r->status == 403) {
		failure = TOKEN_REFUSED;
		snprintf(err, sizeof(err), "the token service rejected the connector's credentials "
			 "(HTTP %d)", r->status);
	} else if (r->status >= 300 && r->status < 400) {
		/* The credentials went to the realm the registry named, and only
		 * there: never to where its answer points. */
		snprintf(err, sizeof(err), "the token service answered HTTP %d (redirects from the "
			 "token service are not followed)", r->status);
	} else if (r->status != 200) {
		snprintf(err, sizeof(err), "the token service answered HTTP %d", r->status);
	} else if (token_parse_response(r->body, r->body_len, time(NULL), &token, &lifetime, err,
					sizeof(err)) == 0) {
		size_t n = strlen(token) + sizeof("Bearer ");
		char *value = x_malloc(n);
		snprintf(value, n, "Bearer %s", token);
		auth = x_strdup(value);
		auth_cache_put(tc->cache, tf->key, value, token_usable_until_ms(lifetime));
	}
	token_secret_free(token);
	log_quote(scope, sizeof(scope), tf->scope, strlen(tf->scope));
	if (err[0])
		log_warn("token_error", "connector=%s scope=%s reason=\"%s\"", c->id, scope, err);
	else
		log_debug("token_fetched", "connector=%s scope=%s lifetime_s=%lld", c->id, scope,
			  (long long)lifetime);
	token_hold_failure(tc, err[0] ? err : NULL, failure);
	token_fetch_unlink(tf);
	free(tf->scope);
	free(tf);
	/* A waiter's callback may drop the last reference to the connector,
	 * which frees tc: nothing of it is touched from here on. */
	struct token_result res = { auth, err[0] ? err : NULL, failure };
	auth_flight_finish(flight, &res);
	token_secret_free(auth);
}

/* realm?service=S&scope=A&scope=B into target. */
static int token_build_target(const struct upstream_site *s, const struct url *realm,
			      const char *scope, char *target, size_t cap, char *err, size_t err_cap)
{
	char enc[1024];
	size_t o = (size_t)snprintf(target, cap, "%s%c", realm->target,
				    strchr(realm->target, '?') ? '&' : '?');

	if (s->service && url_encode_component(s->service, enc, sizeof(enc)) >= 0)
		o += (size_t)snprintf(target + o, cap - o, "service=%s&", enc);
	char *scopes = x_strdup(scope), *save = NULL;
	for (char *sc = strtok_r(scopes, " ", &save); sc && o < cap; sc = strtok_r(NULL, " ", &save))
		if (url_encode_component(sc, enc, sizeof(enc)) >= 0)
			o += (size_t)snprintf(target + o, cap - o, "scope=%s&", enc);
	free(scopes);
	if (o >= cap) {
		snprintf(err, err_cap, "token request too long");
		return -1;
	}
	target[o - 1] = '\0'; /* the last '&' */
	return 0;
}

/* GET realm?... with the connector's credentials, as a new flight for key. */
static struct auth_flight *token_start_fetch(struct token_cache *tc, const char *scope,
					     const unsigned char *key, char *err, size_t cap)
{
	struct upstream_site *s = tc->site;
	struct connector *c = s->connector;
	struct url realm;
	char target[4096];

	if (!s->realm || url_parse(og_str_make(s->realm, strlen(s->realm)), &realm) != 0) {
		snprintf(err, cap, "the registry's token realm is not a valid URL");
		return NULL;
	}
	if (!realm.https && !c->allow_insecure) {
		url_free(&realm);
		snprintf(err, cap, "the token service is plain http (set allow_insecure to use it)");
		return NULL;
	}
	struct upstream_pool *pool = NULL;
	if (token_build_target(s, &realm, scope, target, sizeof(target), err, cap) == 0)
		pool = upstream_site_pool(s, realm.https, realm.host, realm.port, err, cap);
	url_free(&realm);
	if (!pool)
		return NULL;
	struct token_fetch *tf = x_new(struct token_fetch);
	tf->tc = tc;
	tf->scope = x_strdup(scope);
	memcpy(tf->key, key, AUTH_CACHE_KEY_LEN);
	tf->next = tc->fetches;
	if (tc->fetches)
		tc->fetches->prev = tf;
	tc->fetches = tf;
	tf->flight = auth_cache_flight_begin(tc->cache, key, tf);
	tf->fetch = fetch_get(pool, target, c->authorization, TOKEN_MAX_RESPONSE, token_on_fetched, tf);
	return tf->flight;
}

/* A cached token, a fetch to join, or a new fetch. Runs from the event
 * loop, so done may run here. */
static void token_start(struct token_cache *tc, struct token_wait *w)
{
	unsigned char key[AUTH_CACHE_KEY_LEN];
	char err[300];

	token_key(tc->site, w->scope, key);
	const char *auth = auth_cache_get(tc->cache, key, token_now_ms());
	if (auth) {
		w->tc = NULL;
		w->done(w->arg, auth, NULL, TOKEN_FAILED);
		return;
	}
	struct auth_flight *f = auth_cache_flight(tc->cache, key);
	if (!f && token_now_ms() < tc->failed_until_ms) {
		w->tc = NULL;
		w->done(w->arg, NULL, tc->failed_error, tc->failed_kind);
		return;
	}
	if (!f)
		f = token_start_fetch(tc, w->scope, key, err, sizeof(err));
	if (!f) {
		w->tc = NULL;
		w->done(w->arg, NULL, err, TOKEN_FAILED);
		return;
	}
	w->waiter = auth_flight_wait(f, token_wake, w);
}

static void token_run_queue(evutil_socket_t fd, short what, void *arg)
{
	struct token_cache *tc = arg;

	(void)fd;
	(void)what;
	tc->starting = true;
	while (tc->queue && !tc->dead) {
		struct token_wait *w = tc->queue;
		token_queue_unlink(w);
		token_start(tc, w);
	}
	tc->starting = false;
	if (tc->dead)
		token_cache_destroy(tc);
}

void token_get(struct token_cache *tc, struct token_wait *w, const char *scope, token_done_fn done,
	       void *arg)
{
	assert(!w->tc);
	w->tc = tc;
	w->scope = scope;
	w->done = done;
	w->arg = arg;
	w->next = NULL;
	w->prev = tc->queue_tail;
	if (tc->queue_tail)
		tc->queue_tail->next = w;
	else
		tc->queue = w;
	tc->queue_tail = w;
	if (!tc->starting)
		event_active(tc->start_ev, EV_TIMEOUT, 0);
}

void token_wait_cancel(struct token_wait *w)
{
	if (!w || !w->tc)
		return;
	if (w->waiter)
		auth_waiter_cancel(w->waiter);
	else
		token_queue_unlink(w);
	w->waiter = NULL;
	w->tc = NULL;
}

void token_invalidate(struct token_cache *tc, const char *scope)
{
	unsigned char key[AUTH_CACHE_KEY_LEN];

	token_key(tc->site, scope, key);
	auth_cache_remove(tc->cache, key);
}
