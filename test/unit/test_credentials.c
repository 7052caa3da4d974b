#include "auth/credentials.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "test/unit/check.h"
#include "util/base64.h"

/* ---- base64 ---- */

static void check_encode(int line, const char *in, const char *want)
{
	char out[128];
	size_t n = base64_encode(in, strlen(in), out);

	if (n != strlen(want) || strcmp(out, want) != 0 ||
	    base64_encoded_len(strlen(in)) != n) {
		fprintf(stderr, "test_credentials.c:%d: base64(\"%s\") = \"%s\" (%zu), expected \"%s\"\n",
			line, in, out, n, want);
		check_failures++;
	}
}

static void check_decode(int line, const char *in, const char *want)
{
	unsigned char out[128];
	ssize_t n = base64_decode(in, strlen(in), out, sizeof(out));

	if (!want) {
		if (n != -1) {
			fprintf(stderr, "test_credentials.c:%d: decode(\"%s\") = %zd, expected -1\n",
				line, in, n);
			check_failures++;
		}
		return;
	}
	if (n < 0 || (size_t)n != strlen(want) || memcmp(out, want, (size_t)n) != 0) {
		fprintf(stderr, "test_credentials.c:%d: decode(\"%s\") = %zd \"%.*s\", expected \"%s\"\n",
			line, in, n, n < 0 ? 0 : (int)n, (const char *)out, want);
		check_failures++;
	}
}

#define ENC(in, want) check_encode(__LINE__, in, want)
#define DEC(in, want) check_decode(__LINE__, in, want)

static void test_base64_vectors(void)
{
	/* RFC 4648 section 10 */
	ENC("", "");
	ENC("f", "Zg==");
	ENC("fo", "Zm8=");
	ENC("foo", "Zm9v");
	ENC("foob", "Zm9vYg==");
	ENC("fooba", "Zm9vYmE=");
	ENC("foobar", "Zm9vYmFy");
	ENC("u:p?>~", "dTpwPz5+");
	ENC("\xff\xff\xfe", "///+");
	DEC("", "");
	DEC("Zg==", "f");
	DEC("Zm8=", "fo");
	DEC("Zm9v", "foo");
	DEC("Zm9vYg==", "foob");
	DEC("Zm9vYmE=", "fooba");
	DEC("Zm9vYmFy", "foobar");
	DEC("dTpwPz5+", "u:p?>~");
	DEC("///+", "\xff\xff\xfe");

	CHECK_INT(base64_encoded_len(0), 0);
	CHECK_INT(base64_encoded_len(1), 4);
	CHECK_INT(base64_encoded_len(3), 4);
	CHECK_INT(base64_encoded_len(4), 8);
	CHECK_INT(base64_encoded_len(3000), 4000);
}

static void test_base64_invalid(void)
{
	DEC("Zg=", NULL);       /* length not a multiple of 4 */
	DEC("Zg", NULL);
	DEC("Zm9vY", NULL);
	DEC("Z===", NULL);      /* too much padding */
	DEC("====", NULL);
	DEC("Zg==Zg==", NULL);  /* padding in the middle */
	DEC("Zg=a", NULL);
	DEC("=m9v", NULL);
	DEC("Zh==", NULL);      /* non-zero bits under the padding */
	DEC("Zm9=", NULL);
	DEC("Zm-v", NULL);      /* URL-safe alphabet */
	DEC("Zm_v", NULL);
	DEC("Zm9 ", NULL);
	DEC("Zm9v\n", NULL);
	DEC(" Zm9v", NULL);
	DEC("Zm\x80v", NULL);
	CHECK_INT(base64_decode("Zm\0v", 4, (unsigned char[8]){ 0 }, 8), -1);

	/* a prefix of a valid encoding, cut inside a quantum */
	unsigned char big[16];
	CHECK_INT(base64_decode("Zm9vYmFy", 6, big, sizeof(big)), -1);
	CHECK_INT(base64_decode("Zm9vYmFy", 5, big, sizeof(big)), -1);
	CHECK_INT(base64_decode("Zm9vYg==", 7, big, sizeof(big)), -1);
	CHECK_INT(base64_decode("Zm9vYmFy", 4, big, sizeof(big)), 3);

	unsigned char out[4];
	CHECK_INT(base64_decode("Zm9v", 4, out, 2), -1);
	CHECK_INT(base64_decode("Zm9v", 4, out, 3), 3);
	CHECK_INT(base64_decode("Zg==", 4, out, 1), 1);
	CHECK_INT(out[0], 'f');
	CHECK_INT(base64_decode("Zg==", 4, out, 0), -1);
	CHECK_INT(base64_decode("", 0, NULL, 0), 0);
}

static void test_base64_round_trip(void)
{
	unsigned char in[300], back[300];
	char enc[401];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + 3);
	for (size_t n = 0; n <= sizeof(in); n++) {
		size_t e = base64_encode(in, n, enc);
		CHECK_INT(e, base64_encoded_len(n));
		CHECK_INT(enc[e], '\0');
		ssize_t d = base64_decode(enc, e, back, n);
		CHECK_INT(d, (long long)n);
		CHECK(d >= 0 && memcmp(in, back, (size_t)d) == 0);
	}
}

/* ---- credentials ---- */

static char buf[CRED_TOKEN_MAX + 256];

static void check_cred(int line, const char *value, enum cred_result want,
		       const char *want_token)
{
	struct og_str tok;
	enum cred_result r = cred_parse_authorization(og_str_make(value, strlen(value)),
						      buf, sizeof(buf), &tok);

	if (r != want) {
		fprintf(stderr, "test_credentials.c:%d: \"%s\": result %d, expected %d\n",
			line, value, (int)r, (int)want);
		check_failures++;
		return;
	}
	if (want == CRED_OK && !og_str_eq(tok, want_token)) {
		fprintf(stderr, "test_credentials.c:%d: \"%s\": token \"%.*s\", expected \"%s\"\n",
			line, value, (int)tok.n, tok.p ? tok.p : "", want_token);
		check_failures++;
	}
}

/* "Basic " + base64(userpass) */
static void check_basic(int line, const char *prefix, const char *userpass,
			size_t up_len, enum cred_result want, const char *want_token)
{
	size_t pl = strlen(prefix);
	char *v = malloc(pl + base64_encoded_len(up_len) + 1);

	memcpy(v, prefix, pl);
	base64_encode(userpass, up_len, v + pl);
	check_cred(line, v, want, want_token);
	free(v);
}

#define CRED(v, want, tok) check_cred(__LINE__, v, want, tok)
#define BASIC(up, want, tok) check_basic(__LINE__, "Basic ", up, strlen(up), want, tok)

static void test_basic(void)
{
	BASIC("user:tok.en", CRED_OK, "tok.en");
	BASIC(":eyJhbGciOiJSUzI1NiJ9.e30.sig", CRED_OK, "eyJhbGciOiJSUzI1NiJ9.e30.sig");
	BASIC("u:a:b", CRED_OK, "a:b");
	BASIC("u:p\xc3\xa4ss", CRED_OK, "p\xc3\xa4ss");
	BASIC("u:has space", CRED_OK, "has space");
	BASIC("tokenonly", CRED_MALFORMED, NULL);
	BASIC("user:", CRED_MALFORMED, NULL);
	BASIC("", CRED_MALFORMED, NULL);
	BASIC("u:tok\n", CRED_MALFORMED, NULL);
	BASIC("u\x01:tok", CRED_MALFORMED, NULL);
	BASIC("u:t\x7fk", CRED_MALFORMED, NULL);
	check_basic(__LINE__, "Basic ", "u:t\0k", 5, CRED_MALFORMED, NULL);

	/* scheme is case-insensitive; several SP allowed */
	check_basic(__LINE__, "basic ", "u:t", 3, CRED_OK, "t");
	check_basic(__LINE__, "BASIC ", "u:t", 3, CRED_OK, "t");
	check_basic(__LINE__, "bAsIc    ", "u:t", 3, CRED_OK, "t");
	CRED("  Basic dTp0  ", CRED_OK, "t");
	CRED("Basic\tdTp0", CRED_MALFORMED, NULL);
	CRED("Basic dTp0 x", CRED_MALFORMED, NULL);
	CRED("Basic dTp0=", CRED_MALFORMED, NULL);
	CRED("Basic !!!!", CRED_MALFORMED, NULL);
	CRED("Basic", CRED_MALFORMED, NULL);
	CRED("Basic    ", CRED_MALFORMED, NULL);

	/* the decoded bytes must fit the caller's buffer */
	struct og_str tok;
	char small[4];
	CHECK_INT(cred_parse_authorization(OG_STR_LIT("Basic dTp0b2s="), small,
					   sizeof(small), &tok), CRED_MALFORMED);
	char exact[5]; /* "u:tok" */
	CHECK_INT(cred_parse_authorization(OG_STR_LIT("Basic dTp0b2s="), exact,
					   sizeof(exact), &tok), CRED_OK);
	CHECK(tok.p == exact + 2);
	CHECK_MEM_STR(tok.p, tok.n, "tok");
}

static void test_bearer(void)
{
	const char *v = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_~+/==";
	struct og_str tok;

	CHECK_INT(cred_parse_authorization(og_str_make(v, strlen(v)), buf, sizeof(buf),
					   &tok), CRED_OK);
	CHECK(tok.p == v + 7);
	CHECK_MEM_STR(tok.p, tok.n, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_~+/==");

	CRED("bearer abc", CRED_OK, "abc");
	CRED("BEARER   abc==", CRED_OK, "abc==");
	CRED("Bearer abc ", CRED_OK, "abc");
	CRED("Bearer", CRED_MALFORMED, NULL);
	CRED("Bearer ", CRED_MALFORMED, NULL);
	CRED("Bearer a b", CRED_MALFORMED, NULL);
	CRED("Bearer =abc", CRED_MALFORMED, NULL);
	CRED("Bearer abc=d", CRED_MALFORMED, NULL);
	CRED("Bearer a,b", CRED_MALFORMED, NULL);
	CRED("Bearer a\"b", CRED_MALFORMED, NULL);
	CRED("Bearer realm=\"x\"", CRED_MALFORMED, NULL);
	CHECK_INT(cred_parse_authorization(OG_STR_LIT("Bearer a\0b"), buf, sizeof(buf),
					   &tok), CRED_MALFORMED);
}

/* The connection's memo gives the same token and hash as parsing anew,
 * for a repeat only; a different or bad value is parsed on its own. */
static void test_remembered(void)
{
	struct cred_memo *memo = NULL;
	unsigned char sha[32], want[32];
	struct og_str tok;
	const char *alice = "Basic eDp0b2stYWxpY2U=";   /* x:tok-alice */
	const char *bob = "Bearer tok-bob";

	CHECK_INT(cred_parse_remembered(&memo, og_str_make(alice, strlen(alice)), buf, sizeof(buf),
					&tok, want), CRED_OK);
	CHECK_MEM_STR(tok.p, tok.n, "tok-alice");
	SHA256((const unsigned char *)"tok-alice", 9, sha);
	CHECK(memcmp(sha, want, 32) == 0);
	memset(buf, 0, sizeof(buf));
	CHECK_INT(cred_parse_remembered(&memo, og_str_make(alice, strlen(alice)), buf, sizeof(buf),
					&tok, sha), CRED_OK);
	CHECK_MEM_STR(tok.p, tok.n, "tok-alice");
	CHECK(memcmp(sha, want, 32) == 0);
	CHECK_INT(cred_parse_remembered(&memo, og_str_make(bob, strlen(bob)), buf, sizeof(buf),
					&tok, sha), CRED_OK);
	CHECK_MEM_STR(tok.p, tok.n, "tok-bob");
	SHA256((const unsigned char *)"tok-bob", 7, want);
	CHECK(memcmp(sha, want, 32) == 0);
	/* same length as bob's, one byte apart */
	CHECK_INT(cred_parse_remembered(&memo, OG_STR_LIT("Bearer tok-bo!"), buf, sizeof(buf),
					&tok, sha), CRED_MALFORMED);
	CHECK_INT(cred_parse_remembered(&memo, OG_STR_LIT("Bearer tok-boc"), buf, sizeof(buf),
					&tok, sha), CRED_OK);
	CHECK_MEM_STR(tok.p, tok.n, "tok-boc");
	SHA256((const unsigned char *)"tok-boc", 7, want);
	CHECK(memcmp(sha, want, 32) == 0);
	/* one byte apart inside the first and the second eight bytes */
	CHECK_INT(cred_parse_remembered(&memo, OG_STR_LIT("Bearer tok-bob-0123456789"), buf,
					sizeof(buf), &tok, sha), CRED_OK);
	CHECK_INT(cred_parse_remembered(&memo, OG_STR_LIT("Bearer tok-bXb-0123456789"), buf,
					sizeof(buf), &tok, sha), CRED_OK);
	CHECK_MEM_STR(tok.p, tok.n, "tok-bXb-0123456789");
	CHECK_INT(cred_parse_remembered(&memo, OG_STR_LIT("BeXrer tok-bXb-0123456789"), buf,
					sizeof(buf), &tok, sha), CRED_UNSUPPORTED_SCHEME);
	cred_memo_free(memo);
	cred_memo_free(NULL);
}

static void test_other(void)
{
	struct og_str tok;

	CRED("", CRED_MISSING, NULL);
	CRED("   ", CRED_MISSING, NULL);
	CRED(" \t ", CRED_MISSING, NULL);
	CHECK_INT(cred_parse_authorization(og_str_make(NULL, 0), buf, sizeof(buf), &tok),
		  CRED_MISSING);
	CRED("Digest username=\"a\", realm=\"b\"", CRED_UNSUPPORTED_SCHEME, NULL);
	CRED("Negotiate", CRED_UNSUPPORTED_SCHEME, NULL);
	CRED("Basicx dTp0", CRED_UNSUPPORTED_SCHEME, NULL);
	CRED("Bear abc", CRED_UNSUPPORTED_SCHEME, NULL);
	CRED("dTp0", CRED_UNSUPPORTED_SCHEME, NULL);
	CRED("B@sic dTp0", CRED_MALFORMED, NULL);
	CRED("Basic,x dTp0", CRED_MALFORMED, NULL);
}

static void test_long_tokens(void)
{
	size_t big = CRED_TOKEN_MAX + 1;
	char *up = malloc(big + 3);
	char *v = malloc(7 + big + 1);

	/* Bearer: exactly the limit, then one more */
	memcpy(v, "Bearer ", 7);
	memset(v + 7, 'a', big);
	v[7 + CRED_TOKEN_MAX] = '\0';
	struct og_str tok;
	CHECK_INT(cred_parse_authorization(og_str_make(v, strlen(v)), buf, sizeof(buf),
					   &tok), CRED_OK);
	CHECK_INT(tok.n, CRED_TOKEN_MAX);
	v[7 + CRED_TOKEN_MAX] = 'a';
	v[7 + big] = '\0';
	CHECK_INT(cred_parse_authorization(og_str_make(v, strlen(v)), buf, sizeof(buf),
					   &tok), CRED_MALFORMED);

	/* Basic: the same limit on the decoded password */
	memcpy(up, "u:", 2);
	memset(up + 2, 'b', big);
	up[2 + big] = '\0';
	check_basic(__LINE__, "Basic ", up, 2 + big, CRED_MALFORMED, NULL);
	free(up);
	free(v);
}

/* The longest accepted Basic password, checked by length and position. */
static void test_long_basic_ok(void)
{
	char *up = malloc(2 + CRED_TOKEN_MAX);
	char *v = malloc(6 + base64_encoded_len(2 + CRED_TOKEN_MAX) + 1);
	struct og_str tok;

	memcpy(up, "u:", 2);
	memset(up + 2, 'b', CRED_TOKEN_MAX);
	memcpy(v, "Basic ", 6);
	size_t n = 6 + base64_encode(up, 2 + CRED_TOKEN_MAX, v + 6);
	CHECK_INT(cred_parse_authorization(og_str_make(v, n), buf, sizeof(buf), &tok),
		  CRED_OK);
	CHECK_INT(tok.n, CRED_TOKEN_MAX);
	CHECK(tok.p == buf + 2);
	free(up);
	free(v);
}

static void test_base64url(void)
{
	unsigned char out[16];

	CHECK_INT(base64url_decode("aGk", 3, out, sizeof(out)), 2);
	CHECK(memcmp(out, "hi", 2) == 0);
	CHECK_INT(base64url_decode("-_8", 3, out, sizeof(out)), 2);
	CHECK_INT(out[0], 0xfb);
	CHECK_INT(out[1], 0xff);
	CHECK_INT(base64url_decode("+_8", 3, out, sizeof(out)), -1);
	CHECK_INT(base64url_decode("aGk=", 4, out, sizeof(out)), -1);
	CHECK_INT(base64url_decode("aGkxa", 5, out, sizeof(out)), -1);
	CHECK_INT(base64url_decode("aGk", 3, out, 1), -1);
	CHECK_INT(base64url_decode("", 0, out, sizeof(out)), 0);
}

int main(void)
{
	test_base64url();
	test_base64_vectors();
	test_base64_invalid();
	test_base64_round_trip();
	test_basic();
	test_bearer();
	test_other();
	test_remembered();
	test_long_tokens();
	test_long_basic_ok();
	CHECK_DONE();
}
