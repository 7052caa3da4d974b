/* Token service responses (distribution token spec): token or
 * access_token, expires_in (default 60 s), issued_at. */
#include <stdlib.h>
#include <string.h>

#include "proxy/token.h"
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

int main(void)
{
	test_bounds();
	test_valid();
	test_invalid();
	CHECK_DONE();
}
