#include "auth/credentials.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "util/ascii.h"
#include "util/base64.h"
#include "util/xalloc.h"

static bool cred_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static struct og_str cred_trim(struct og_str s)
{
	while (s.n > 0 && cred_is_ows(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n > 0 && cred_is_ows(s.p[s.n - 1]))
		s.n--;
	return s;
}

/* token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static bool cred_is_token68(struct og_str s)
{
	size_t i = 0;

	while (i < s.n && (ascii_is_alnum(s.p[i]) ||
			   (s.p[i] && strchr("-._~+/", s.p[i]))))
		i++;
	if (i == 0)
		return false;
	while (i < s.n && s.p[i] == '=')
		i++;
	return i == s.n;
}

static enum cred_result cred_parse_basic(struct og_str cred, char *buf,
					 size_t buf_cap, struct og_str *token)
{
	ssize_t n = base64_decode(cred.p, cred.n, (unsigned char *)buf, buf_cap);

	if (n < 0)
		return CRED_MALFORMED;
	for (ssize_t i = 0; i < n; i++)
		if (ascii_is_ctl((unsigned char)buf[i]))
			return CRED_MALFORMED;
	const char *colon = memchr(buf, ':', (size_t)n);
	if (!colon)
		return CRED_MALFORMED;
	size_t off = (size_t)(colon - buf) + 1;
	size_t len = (size_t)n - off;
	if (len == 0 || len > CRED_TOKEN_MAX)
		return CRED_MALFORMED;
	*token = og_str_make(buf + off, len);
	return CRED_OK;
}

enum cred_result cred_parse_authorization(struct og_str value, char *buf,
					  size_t buf_cap, struct og_str *token)
{
	size_t i = 0;

	*token = og_str_make(NULL, 0);
	value = cred_trim(value);
	if (value.n == 0)
		return CRED_MISSING;
	while (i < value.n && value.p[i] != ' ')
		i++;
	struct og_str scheme = og_str_make(value.p, i);
	for (size_t k = 0; k < scheme.n; k++)
		if (!ascii_is_tchar(scheme.p[k]))
			return CRED_MALFORMED;
	bool basic = og_str_ieq(scheme, "basic");
	if (!basic && !og_str_ieq(scheme, "bearer"))
		return CRED_UNSUPPORTED_SCHEME;
	while (i < value.n && value.p[i] == ' ')
		i++;
	struct og_str cred = og_str_make(value.p + i, value.n - i);
	if (cred.n == 0)
		return CRED_MALFORMED;
	if (basic)
		return cred_parse_basic(cred, buf, buf_cap, token);
	if (cred.n > CRED_TOKEN_MAX || !cred_is_token68(cred))
		return CRED_MALFORMED;
	*token = cred;
	return CRED_OK;
}

struct cred_memo {
	size_t n;       /* the Authorization value, first in text */
	size_t token_n; /* its token, after it */
	unsigned char sha[SHA256_DIGEST_LENGTH];
	char text[];
};

/* OpenSSL 3's one-shot SHA256() looks the algorithm up on every call; the
 * loop is single-threaded, so one fetched digest and context serve all. */
int cred_token_sha256(struct og_str token, unsigned char out[32])
{
	static EVP_MD *md;
	static EVP_MD_CTX *ctx;

	if (!md) {
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
		ctx = EVP_MD_CTX_new();
	}
	if (md && ctx && EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
	    EVP_DigestUpdate(ctx, token.p, token.n) == 1 && EVP_DigestFinal_ex(ctx, out, NULL) == 1)
		return 0;
	return SHA256((const unsigned char *)token.p, token.n, out) ? 0 : -1;
}

/* Equal bytes, in a time that depends on n only; eight bytes at a time
 * (CRYPTO_memcmp takes one per step, 500 instructions for a Basic value). */
static bool cred_same_bytes(const char *a, const char *b, size_t n)
{
	uint64_t diff = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		diff |= x ^ y;
	}
	for (; i < n; i++)
		diff |= (uint64_t)((unsigned char)a[i] ^ (unsigned char)b[i]);
	return diff == 0;
}

static bool cred_memo_holds(const struct cred_memo *m, struct og_str value)
{
	return m && m->n == value.n && cred_same_bytes(m->text, value.p, value.n);
}

enum cred_result cred_parse_remembered(struct cred_memo **memo, struct og_str value, char *buf,
				       size_t buf_cap, struct og_str *token, unsigned char sha[32])
{
	struct cred_memo *m = *memo;
	enum cred_result r;

	if (cred_memo_holds(m, value)) {
		*token = og_str_make(m->text + m->n, m->token_n);
		memcpy(sha, m->sha, sizeof(m->sha));
		return CRED_OK;
	}
	r = cred_parse_authorization(value, buf, buf_cap, token);
	if (r != CRED_OK)
		return r;
	if (cred_token_sha256(*token, sha) != 0)
		return CRED_MALFORMED;
	cred_memo_free(m);
	m = x_malloc(sizeof(*m) + value.n + token->n);
	m->n = value.n;
	m->token_n = token->n;
	memcpy(m->sha, sha, sizeof(m->sha));
	memcpy(m->text, value.p, value.n);
	memcpy(m->text + value.n, token->p, token->n);
	*memo = m;
	return CRED_OK;
}

void cred_memo_free(struct cred_memo *m)
{
	if (!m)
		return;
	OPENSSL_cleanse(m, sizeof(*m) + m->n + m->token_n);
	free(m);
}
