/* Fuzzes the request-facing parsers that need no event loop: route_parse,
 * route_rewrite_link, cred_parse_authorization (and base64 under it) and
 * tokens_file_parse. Every input goes through all of them, and each result
 * is checked against invariants; a violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/credentials.h"
#include "auth/tokens_file.h"
#include "proxy/route.h"
#include "util/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                     \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",      \
				__FILE__, __LINE__, #cond);                   \
			abort();                                              \
		}                                                             \
	} while (0)

static bool fuzz_inside(struct og_str s, const char *p, size_t n)
{
	return s.p >= p && s.p + s.n <= p + n;
}

static bool fuzz_has_ctl(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] == 0x7f)
			return true;
	return false;
}

static bool fuzz_same(struct og_str a, struct og_str b)
{
	return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

static void fuzz_check_route_ok(const char *p, size_t n, const struct route *r)
{
	FUZZ_ASSERT(r->upstream_off <= n);
	FUZZ_ASSERT(fuzz_inside(r->query, p, n));
	FUZZ_ASSERT(!memchr(p, '%', r->query.n ? (size_t)(r->query.p - p) : n));
	if (r->kind == ROUTE_BASE) {
		FUZZ_ASSERT(r->upstream_off == n);
		FUZZ_ASSERT(r->ns.n == 0 && r->connector.n == 0 && r->repo.n == 0);
		return;
	}
	FUZZ_ASSERT(n > 15 && memcmp(p, "/v2/namespaces/", 15) == 0);
	FUZZ_ASSERT(fuzz_inside(r->ns, p, n) && fuzz_inside(r->connector, p, n));
	FUZZ_ASSERT(fuzz_inside(r->repo, p, n) && fuzz_inside(r->ref, p, n));
	FUZZ_ASSERT(names_dns1123_label(r->ns));
	FUZZ_ASSERT(names_dns1123_subdomain(r->connector));
	FUZZ_ASSERT(names_oci_repository(r->repo));
	FUZZ_ASSERT(r->repo.p == p + r->upstream_off);
	switch (r->kind) {
	case ROUTE_MANIFEST:
		FUZZ_ASSERT(r->ref_is_digest ? names_oci_digest(r->ref) :
					       names_oci_tag(r->ref));
		break;
	case ROUTE_BLOB:
	case ROUTE_REFERRERS:
		FUZZ_ASSERT(r->ref_is_digest && names_oci_digest(r->ref));
		break;
	case ROUTE_TAGS_LIST:
		FUZZ_ASSERT(r->ref.n == 0 && !r->ref_is_digest);
		break;
	default:
		FUZZ_ASSERT(!r->ref_is_digest);
		break;
	}
}

/* Rebuilding the target from the parsed parts must parse the same way. */
static void fuzz_check_route_rebuild(const char *p, size_t n, const struct route *r)
{
	size_t tail = n - r->upstream_off;
	size_t cap = 32 + r->ns.n + r->connector.n + tail;
	char *b = malloc(cap);
	struct route r2;

	int k = snprintf(b, cap, "/v2/namespaces/%.*s/connectors/%.*s/",
			 (int)r->ns.n, r->ns.p, (int)r->connector.n, r->connector.p);
	FUZZ_ASSERT(k > 0 && (size_t)k + tail <= cap);
	memcpy(b + k, p + r->upstream_off, tail);
	FUZZ_ASSERT(route_parse(b, (size_t)k + tail, &r2) == ROUTE_OK);
	FUZZ_ASSERT(r2.kind == r->kind && r2.ref_is_digest == r->ref_is_digest);
	FUZZ_ASSERT(fuzz_same(r2.repo, r->repo) && fuzz_same(r2.ref, r->ref));
	FUZZ_ASSERT(fuzz_same(r2.query, r->query));
	free(b);
}

static void fuzz_route_parse(const char *p, size_t n)
{
	struct route r;
	enum route_error e = route_parse(p, n, &r);

	FUZZ_ASSERT(route_error_code(e) && route_error_message(e));
	if (e != ROUTE_OK) {
		int st = route_error_status(e);
		FUZZ_ASSERT(st == 400 || st == 404);
		FUZZ_ASSERT(strlen(route_error_code(e)) > 0);
		return;
	}
	fuzz_check_route_ok(p, n, &r);
	if (r.kind != ROUTE_BASE)
		fuzz_check_route_rebuild(p, n, &r);
}

static void fuzz_rewrite_link(const char *p, size_t n)
{
	static const char pfx[] = "</v2/namespaces/ns/connectors/c.d/";
	size_t cap = n + 64;
	char *out = malloc(cap);
	ssize_t len = route_rewrite_link(og_str_make(p, n), OG_STR_LIT("ns"),
					 OG_STR_LIT("c.d"), out, cap);

	if (len >= 0) {
		size_t l = (size_t)len;
		FUZZ_ASSERT(l < cap && out[l] == '\0');
		FUZZ_ASSERT(l >= sizeof(pfx) - 1 && memcmp(out, pfx, sizeof(pfx) - 1) == 0);
		FUZZ_ASSERT(memchr(out, '\r', l) == NULL && memchr(out, '\n', l) == NULL);
		FUZZ_ASSERT(memchr(out + 1, '<', l - 1) == NULL);
		/* the exact size works, one less does not */
		char *exact = malloc(l + 1);
		FUZZ_ASSERT(route_rewrite_link(og_str_make(p, n), OG_STR_LIT("ns"),
					       OG_STR_LIT("c.d"), exact, l + 1) == len);
		FUZZ_ASSERT(memcmp(exact, out, l + 1) == 0);
		FUZZ_ASSERT(route_rewrite_link(og_str_make(p, n), OG_STR_LIT("ns"),
					       OG_STR_LIT("c.d"), exact, l) == -1);
		free(exact);
	} else {
		FUZZ_ASSERT(len == -1);
	}
	free(out);
}

static void fuzz_credentials(const char *p, size_t n)
{
	char buf[CRED_TOKEN_MAX + 512];
	struct og_str tok;
	enum cred_result r = cred_parse_authorization(og_str_make(p, n), buf,
						      sizeof(buf), &tok);

	FUZZ_ASSERT(r == CRED_OK || r == CRED_MISSING || r == CRED_MALFORMED ||
		    r == CRED_UNSUPPORTED_SCHEME);
	if (r != CRED_OK)
		return;
	FUZZ_ASSERT(tok.n > 0 && tok.n <= CRED_TOKEN_MAX);
	FUZZ_ASSERT(fuzz_inside(tok, p, n) || fuzz_inside(tok, buf, sizeof(buf)));
	FUZZ_ASSERT(!fuzz_has_ctl(tok.p, tok.n));
}

/* Strict decoding means decode-then-encode gives back the input. */
static void fuzz_base64(const char *p, size_t n)
{
	unsigned char *dec = malloc(n + 1);
	char *enc = malloc(base64_encoded_len(n) + 1);
	ssize_t d = base64_decode(p, n, dec, n);

	if (d >= 0) {
		size_t e = base64_encode(dec, (size_t)d, enc);
		FUZZ_ASSERT(e == n && memcmp(enc, p, n) == 0);
	}
	size_t e = base64_encode(p, n, enc);
	FUZZ_ASSERT(e == base64_encoded_len(n) && enc[e] == '\0');
	d = base64_decode(enc, e, dec, n);
	FUZZ_ASSERT(d == (ssize_t)n && memcmp(dec, p, n) == 0);
	free(dec);
	free(enc);
}

static void fuzz_tokens_file(const char *p, size_t n)
{
	struct tokens_file tf;
	char err[128];

	if (tokens_file_parse(p, n, &tf, err, sizeof(err)) < 0) {
		FUZZ_ASSERT(tf.entries == NULL && tf.n == 0);
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_ASSERT(strncmp(err, "line ", 5) == 0);
		return;
	}
	for (size_t i = 0; i < tf.n; i++) {
		const struct token_entry *e = &tf.entries[i];
		FUZZ_ASSERT(tokens_file_find(&tf, e->token_sha256) == e);
		FUZZ_ASSERT(e->user && e->user[0] && e->uid);
		for (size_t g = 0; g < e->n_groups; g++)
			FUZZ_ASSERT(e->groups[g] && e->groups[g][0]);
	}
	tokens_file_free(&tf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so reading past the end is caught */
	char *p = malloc(size ? size : 1);

	if (size)
		memcpy(p, data, size);
	fuzz_route_parse(p, size);
	fuzz_rewrite_link(p, size);
	fuzz_credentials(p, size);
	fuzz_base64(p, size);
	fuzz_tokens_file(p, size);
	free(p);
	return 0;
}
