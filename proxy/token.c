#include "proxy/token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "proxy/fetch.h"
#include "proxy/upstream.h"
#include "util/json.h"
#include "util/log.h"
#include "util/url.h"
#include "util/xalloc.h"

#define TOKEN_DEFAULT_LIFETIME 60   /* the token spec's default for expires_in */
#define TOKEN_MAX_LIFETIME 86400    /* longer expires_in values are cut to this */
#define TOKEN_MAX_RESPONSE (64 * 1024)
#define TOKEN_MAX_ENTRIES 1024

struct token_wait {
	struct token_entry *entry;
	struct token_wait *next;
	token_done_fn done;
	void *arg;
};

struct token_entry {
	struct token_cache *tc;
	struct token_entry *next;
	char *scope;
	char *authorization;       /* "Bearer ..." or NULL */
	struct timespec usable_until;
	struct fetch *fetch;
	struct token_wait *waiters;
};

struct token_cache {
	struct upstream_site *site;
	struct token_entry *entries;
	unsigned n;
};

static double token_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool token_usable(const struct token_entry *e)
{
	return e->authorization &&
	       token_now() < (double)e->usable_until.tv_sec + (double)e->usable_until.tv_nsec / 1e9;
}

static void token_forget(struct token_entry *e)
{
	if (e->authorization) {
		OPENSSL_cleanse(e->authorization, strlen(e->authorization));
		free(e->authorization);
		e->authorization = NULL;
	}
}

struct token_cache *token_cache_new(struct upstream_site *site)
{
	struct token_cache *tc = x_new(struct token_cache);

	tc->site = site;
	return tc;
}

static void token_entry_free(struct token_entry *e)
{
	while (e->waiters) {
		struct token_wait *w = e->waiters;
		e->waiters = w->next;
		free(w);
	}
	fetch_cancel(e->fetch);
	token_forget(e);
	free(e->scope);
	free(e);
}

void token_cache_free(struct token_cache *tc)
{
	if (!tc)
		return;
	while (tc->entries) {
		struct token_entry *e = tc->entries;
		tc->entries = e->next;
		token_entry_free(e);
	}
	free(tc);
}

/* Drops entries nobody waits for whose token is gone or expired. */
static void token_prune(struct token_cache *tc)
{
	struct token_entry **pp = &tc->entries;

	while (*pp) {
		struct token_entry *e = *pp;
		if (!e->fetch && !e->waiters && !token_usable(e)) {
			*pp = e->next;
			token_entry_free(e);
			tc->n--;
		} else {
			pp = &e->next;
		}
	}
}

static struct token_entry *token_entry_for(struct token_cache *tc, const char *scope)
{
	for (struct token_entry *e = tc->entries; e; e = e->next)
		if (strcmp(e->scope, scope) == 0)
			return e;
	if (tc->n >= TOKEN_MAX_ENTRIES)
		token_prune(tc);
	struct token_entry *e = x_new(struct token_entry);
	e->tc = tc;
	e->scope = x_strdup(scope);
	e->next = tc->entries;
	tc->entries = e;
	tc->n++;
	return e;
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
	/* issued + expires_in must not overflow; a token is re-fetched long
	 * before a day anyway */
	if (expires_in > TOKEN_MAX_LIFETIME)
		expires_in = TOKEN_MAX_LIFETIME;
	int ia = json_get(&d, 0, "issued_at");
	char issued_text[64];
	if (ia >= 0 && json_string(&d, ia, issued_text, sizeof(issued_text)) > 0)
		issued = token_issued_at(issued_text);
	*lifetime = issued >= 0 ? issued + expires_in - (int64_t)now : expires_in;
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

static void token_store(struct token_entry *e, char *token, int64_t lifetime)
{
	/* Renew ahead of expiry so no request goes out with a token that dies
	 * on the way: a tenth of the lifetime, at most 10 s. */
	int64_t margin = lifetime / 10 < 10 ? lifetime / 10 : 10;
	size_t n = strlen(token) + sizeof("Bearer ");
	double until = token_now() + (double)(lifetime - margin);

	token_forget(e);
	e->authorization = x_malloc(n);
	snprintf(e->authorization, n, "Bearer %s", token);
	e->usable_until.tv_sec = (time_t)until;
	e->usable_until.tv_nsec = (long)((until - (double)(time_t)until) * 1e9);
}

/* A waiter's callback may drop the last reference to the connector, which
 * frees this cache: nothing of e is touched once the first one ran. */
static void token_notify(struct token_entry *e, const char *error, enum token_failure failure)
{
	struct token_wait *w = e->waiters;
	char *auth = !error && e->authorization ? x_strdup(e->authorization) : NULL;
	char *why = error ? x_strdup(error) : NULL;

	e->waiters = NULL;
	while (w) {
		struct token_wait *next = w->next;
		w->done(w->arg, auth, why, failure);
		free(w);
		w = next;
	}
	if (auth) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	free(why);
}

static void token_on_fetched(void *arg, const struct fetch_result *r)
{
	struct token_entry *e = arg;
	struct connector *c = e->tc->site->connector;
	char err[300] = "";
	char *token = NULL;
	int64_t lifetime = 0;
	enum token_failure failure = r->timeout ? TOKEN_TIMEOUT : TOKEN_FAILED;

	e->fetch = NULL;
	if (r->error) {
		snprintf(err, sizeof(err), "token service: %s", r->error);
	} else if (r->status == 401 || r->status == 403) {
		failure = TOKEN_REFUSED;
		snprintf(err, sizeof(err), "the token service rejected the connector's credentials "
			 "(HTTP %d)", r->status);
	} else if (r->status != 200) {
		snprintf(err, sizeof(err), "the token service answered HTTP %d", r->status);
	} else if (token_parse_response(r->body, r->body_len, time(NULL), &token, &lifetime, err,
					sizeof(err)) == 0) {
		token_store(e, token, lifetime);
	}
	if (token) {
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	if (err[0])
		log_warn("token_error", "connector=%s scope=\"%s\" reason=\"%s\"", c->id, e->scope, err);
	else
		log_debug("token_fetched", "connector=%s scope=\"%s\" lifetime_s=%lld", c->id, e->scope,
			  (long long)lifetime);
	token_notify(e, err[0] ? err : NULL, failure);
}

/* GET realm?service=S&scope=A&scope=B with the connector's credentials. */
static int token_start_fetch(struct token_entry *e, char *err, size_t cap)
{
	struct upstream_site *s = e->tc->site;
	struct connector *c = s->connector;
	struct url realm;
	char enc[1024];
	char target[4096];
	size_t o;

	if (!s->realm || url_parse(og_str_make(s->realm, strlen(s->realm)), &realm) != 0) {
		snprintf(err, cap, "the registry's token realm is not a valid URL");
		return -1;
	}
	if (!realm.https && !c->allow_insecure) {
		url_free(&realm);
		snprintf(err, cap, "the token service is plain http (set allow_insecure to use it)");
		return -1;
	}
	o = (size_t)snprintf(target, sizeof(target), "%s%c", realm.target,
			     strchr(realm.target, '?') ? '&' : '?');
	if (s->service && url_encode_component(s->service, enc, sizeof(enc)) >= 0)
		o += (size_t)snprintf(target + o, sizeof(target) - o, "service=%s&", enc);
	char *scopes = x_strdup(e->scope), *save = NULL;
	for (char *sc = strtok_r(scopes, " ", &save); sc && o < sizeof(target);
	     sc = strtok_r(NULL, " ", &save))
		if (url_encode_component(sc, enc, sizeof(enc)) >= 0)
			o += (size_t)snprintf(target + o, sizeof(target) - o, "scope=%s&", enc);
	free(scopes);
	if (o >= sizeof(target)) {
		url_free(&realm);
		snprintf(err, cap, "token request too long");
		return -1;
	}
	target[o - 1] = '\0'; /* the last '&' */
	struct upstream_pool *pool = upstream_site_pool(s, realm.https, realm.host, realm.port, err, cap);
	url_free(&realm);
	if (!pool)
		return -1;
	e->fetch = fetch_get(pool, target, c->authorization, TOKEN_MAX_RESPONSE, token_on_fetched, e);
	return 0;
}

struct token_wait *token_get(struct token_cache *tc, const char *scope, token_done_fn done, void *arg)
{
	struct token_entry *e = token_entry_for(tc, scope);
	char err[300];

	if (token_usable(e)) {
		done(arg, e->authorization, NULL, TOKEN_FAILED);
		return NULL;
	}
	token_forget(e);
	if (!e->fetch && token_start_fetch(e, err, sizeof(err)) != 0) {
		done(arg, NULL, err, TOKEN_FAILED);
		return NULL;
	}
	struct token_wait *w = x_new(struct token_wait);
	w->entry = e;
	w->done = done;
	w->arg = arg;
	w->next = e->waiters;
	e->waiters = w;
	return w;
}

void token_wait_cancel(struct token_wait *w)
{
	struct token_wait **pp;

	if (!w)
		return;
	for (pp = &w->entry->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	free(w);
}

void token_invalidate(struct token_cache *tc, const char *scope)
{
	for (struct token_entry *e = tc->entries; e; e = e->next)
		if (strcmp(e->scope, scope) == 0)
			token_forget(e);
}
