/* Token service responses (distribution token spec): token or
 * access_token, expires_in (default 60 s), issued_at; and token_get's
 * promise to call back only from the event loop. */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "proxy/token.h"
#include "proxy/upstream.h"
#include "test/unit/check.h"

/* 2026-01-01T00:00:00Z */
#define T0 ((time_t)1767225600)

static int parse(const char *body, time_t now, char **tok, int64_t *life, char *err)
{
	return token_parse_response(body, strlen(body), now, tok, life, err, 200);
}

static void test_valid(void)
{
	char *tok = NULL, err[200];
	int64_t life = 0;

	CHECK_INT(parse("{\"token\":\"abc.def\",\"expires_in\":300,\"issued_at\":\"2026-01-01T00:00:00Z\"}",
			T0 + 100, &tok, &life, err), 0);
	CHECK(tok && strcmp(tok, "abc.def") == 0);
	CHECK_INT(life, 200);
	free(tok);

	/* access_token (OAuth form), no issued_at: the whole lifetime. */
	CHECK_INT(parse("{\"access_token\":\"xyz\",\"expires_in\":120}", T0, &tok, &life, err), 0);
	CHECK(tok && strcmp(tok, "xyz") == 0);
	CHECK_INT(life, 120);
	free(tok);

	/* Both: token wins; no expires_in: 60 s. */
	CHECK_INT(parse("{\"token\":\"t1\",\"access_token\":\"t2\"}", T0, &tok, &life, err), 0);
	CHECK(tok && strcmp(tok, "t1") == 0);
	CHECK_INT(life, 60);
	free(tok);

	/* Fractional seconds and a zone offset in issued_at. */
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":3600,\"issued_at\":\"2026-01-01T01:00:00.123456+01:00\"}",
			T0 + 600, &tok, &life, err), 0);
	CHECK_INT(life, 3000);
	free(tok);

	/* A huge expires_in with issued_at: no overflow (found by fuzz_token:
	 * issued_at + expires_in overflowed), the lifetime is capped. */
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":9223372036854775807,"
			"\"issued_at\":\"2026-01-01T00:00:00Z\"}", T0 + 100, &tok, &life, err), 0);
	CHECK_INT(life, 3600);
	free(tok);
}

static void test_invalid(void)
{
	char *tok = (char *)1, err[200];
	int64_t life;

	CHECK_INT(parse("not json", T0, &tok, &life, err), -1);
	CHECK(tok == NULL);
	CHECK(strstr(err, "invalid JSON") != NULL);
	CHECK_INT(parse("{\"expires_in\":60}", T0, &tok, &life, err), -1);
	CHECK(strstr(err, "no usable token") != NULL);
	CHECK_INT(parse("{\"token\":\"\"}", T0, &tok, &life, err), -1);
	CHECK_INT(parse("{\"token\":\"a b\"}", T0, &tok, &life, err), -1);
	CHECK_INT(parse("{\"token\":7}", T0, &tok, &life, err), -1);
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":\"60\"}", T0, &tok, &life, err), -1);
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":-5}", T0, &tok, &life, err), -1);
	CHECK_INT(parse("[\"token\"]", T0, &tok, &life, err), -1);
	/* Already expired: issued an hour ago for 60 s. */
	CHECK_INT(parse("{\"token\":\"secret-value\",\"expires_in\":60,\"issued_at\":\"2026-01-01T00:00:00Z\"}",
			T0 + 3600, &tok, &life, err), -1);
	CHECK(strstr(err, "already expired") != NULL);
	CHECK(strstr(err, "secret-value") == NULL);
	CHECK(tok == NULL);
}

/* Lifetimes are bounded whatever the token service says: an hour at most,
 * never lengthened by an issued_at in the future, no overflow on giant
 * numbers. */
static void test_bounds(void)
{
	char *tok = NULL, err[200];
	int64_t life = 0;

	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":86400000}", T0, &tok, &life, err), 0);
	CHECK_INT(life, 3600);
	free(tok);
	tok = NULL;
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":9223372036854775807,"
			"\"issued_at\":\"2026-01-01T00:00:00Z\"}", T0 + 10, &tok, &life, err), 0);
	CHECK_INT(life, 3600);
	free(tok);
	tok = NULL;
	/* issued "tomorrow" (a skewed clock): no longer than expires_in */
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":300,\"issued_at\":\"2026-01-02T00:00:00Z\"}",
			T0, &tok, &life, err), 0);
	CHECK_INT(life, 300);
	free(tok);
	tok = NULL;
	/* issued in year 9999: the same */
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":300,\"issued_at\":\"9999-12-31T23:59:59Z\"}",
			T0, &tok, &life, err), 0);
	CHECK_INT(life, 300);
	free(tok);
	tok = NULL;
	/* beyond int64, negative, fractional: refused, not wrapped */
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":99999999999999999999999}", T0, &tok, &life,
			err), -1);
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":-9223372036854775808}", T0, &tok, &life,
			err), -1);
	CHECK_INT(parse("{\"token\":\"t\",\"expires_in\":1e300}", T0, &tok, &life, err), -1);
	CHECK(tok == NULL);
}

/* ---- token_get: always later, from the loop ---- */

struct waiter {
	struct token_wait w;
	int calls;
	bool had_error;
	struct connector *drop;    /* unref'd from the callback (frees the cache) */
	struct token_cache *again; /* token_get again from the callback */
};

static void on_token(void *arg, const char *authorization, const char *error,
		     enum token_failure failure)
{
	struct waiter *w = arg;

	(void)failure;
	w->calls++;
	w->had_error = !authorization && error && *error;
	if (w->drop) {
		connector_unref(w->drop);
		w->drop = NULL;
	}
	if (w->again) {
		struct token_cache *tc = w->again;
		w->again = NULL;
		token_get(tc, &w->w, "repository:a:pull", on_token, w);
	}
}

static void run_loop(struct event_base *base)
{
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

/* A Bearer site whose realm is unusable: every fetch fails at once, which
 * token_get must still report from the loop, not from inside the call. */
static struct connector *bearer_connector(struct proxy *px, struct upstream_site **site)
{
	struct connector_spec spec = {
		.ns = "ns", .name = "c", .host = "127.0.0.1", .port = 5000,
		.path_prefix = "", .address = "http://127.0.0.1:5000",
	};
	struct connector *c = connector_new(&spec);
	char err[200];

	*site = upstream_site_get(px, c, err, sizeof(err));
	CHECK(*site != NULL);
	(*site)->auth_mode = UPSTREAM_AUTH_BEARER;
	return c;
}

static void test_async(void)
{
	struct proxy px = { 0 };
	struct upstream_site *site;
	struct waiter a = { 0 }, b = { 0 }, c = { 0 };

	px.base = event_base_new();
	struct connector *conn = bearer_connector(&px, &site);

	token_get(site->tokens, &a.w, "repository:a:pull", on_token, &a);
	CHECK_INT(a.calls, 0); /* not from within token_get, even for an immediate failure */
	token_get(site->tokens, &b.w, "repository:a:pull", on_token, &b);
	token_wait_cancel(&b.w);
	token_wait_cancel(&b.w); /* idle: nothing */
	run_loop(px.base);
	CHECK_INT(a.calls, 1);
	CHECK(a.had_error);
	CHECK_INT(b.calls, 0);

	/* The wait is reusable, also from its own callback. */
	a.calls = 0;
	a.again = site->tokens;
	token_get(site->tokens, &a.w, "repository:a:pull", on_token, &a);
	run_loop(px.base);
	CHECK_INT(a.calls, 2);

	/* A callback that drops the last reference to the connector frees the
	 * cache: the waits queued behind it are dropped, never called. */
	a.calls = 0;
	a.drop = conn;
	token_get(site->tokens, &a.w, "repository:a:pull", on_token, &a);
	token_get(site->tokens, &c.w, "repository:b:pull", on_token, &c);
	run_loop(px.base);
	CHECK_INT(a.calls, 1);
	CHECK_INT(c.calls, 0);
	event_base_free(px.base);
}

int main(void)
{
	test_async();
	test_bounds();
	test_valid();
	test_invalid();
	CHECK_DONE();
}
