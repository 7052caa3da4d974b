/* Fuzzes proxy/token's reading of a token service response (JSON from an
 * untrusted host). A token is handed out only non-empty and without
 * whitespace (it goes into an Authorization header), with a lifetime that
 * is positive and shrinks with the clock (by at most the time passed) only
 * when issued_at was given; a refusal says why in a fixed message that
 * never quotes the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/fuzz/fuzz_check.h"
#include "proxy/token.h"

/* 2023-11-14T22:13:20Z: issued_at values near it give short lifetimes. */
#define FUZZ_NOW 1700000000
#define FUZZ_LATER 100

struct fuzz_token_run {
	int rc;
	char *token;
	int64_t lifetime;
	char err[256];
};

static void fuzz_token_run(const char *s, size_t n, time_t now, struct fuzz_token_run *r)
{
	memset(r->err, 0, sizeof(r->err));
	r->lifetime = -12345;
	r->rc = token_parse_response(s, n, now, &r->token, &r->lifetime, r->err, sizeof(r->err));
	if (r->rc == 0) {
		FUZZ_CHECK(r->token && r->token[0]);
		FUZZ_CHECK(strpbrk(r->token, " \t\r\n") == NULL);
		FUZZ_CHECK(r->lifetime > 0);
		FUZZ_CHECK(r->err[0] == '\0');
	} else {
		FUZZ_CHECK(r->rc == -1 && r->token == NULL);
		FUZZ_CHECK(strncmp(r->err, "the token service", 17) == 0);
		FUZZ_CHECK(memchr(r->err, '\0', sizeof(r->err)) != NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct fuzz_token_run now, later;
	char small[8];
	char *tok = NULL;
	int64_t lifetime;

	fuzz_token_run(s, size, FUZZ_NOW, &now);
	fuzz_token_run(s, size, FUZZ_NOW + FUZZ_LATER, &later);
	if (now.rc == 0 && later.rc == 0) {
		FUZZ_CHECK(strcmp(now.token, later.token) == 0);
		/* Time shortens a lifetime by at most the time that passed: less
		 * when issued_at lies between the two clocks (a skewed clock,
		 * ignored while in the future). */
		FUZZ_CHECK(later.lifetime <= now.lifetime &&
			   later.lifetime >= now.lifetime - FUZZ_LATER);
	}
	/* time only shortens a lifetime */
	FUZZ_CHECK(!(now.rc != 0 && later.rc == 0));
	/* a short error buffer is cut, not overrun */
	if (token_parse_response(s, size, FUZZ_NOW, &tok, &lifetime, small, sizeof(small)) != 0)
		FUZZ_CHECK(memchr(small, '\0', sizeof(small)) != NULL && tok == NULL);
	free(tok);
	free(now.token);
	free(later.token);
	return 0;
}
