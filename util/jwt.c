#include "util/jwt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "util/json.h"
#include "util/xalloc.h"

#define JWT_MAX_PAYLOAD 16384
#define JWT_MAX_TOKENS 1024

static int jwt_json_exp(const struct json_doc *d, int64_t *exp)
{
	int tok = json_get(d, 0, "exp");
	struct og_str raw;
	char buf[64];
	double v;

	if (json_int64(d, tok, exp))
		return *exp >= -(int64_t)1e15 && *exp <= (int64_t)1e15 ? 0 : -1;
	/* NumericDate may have a fraction (RFC 7519 section 2). */
	if (json_type(d, tok) != JSON_NUMBER)
		return -1;
	raw = json_raw(d, tok);
	if (raw.n >= sizeof(buf))
		return -1;
	memcpy(buf, raw.p, raw.n);
	buf[raw.n] = '\0';
	v = strtod(buf, NULL);
	if (!isfinite(v) || v < 0 || v > 1e15)
		return -1;
	*exp = (int64_t)v;
	return 0;
}

int jwt_exp(struct og_str token, int64_t *exp)
{
	const char *dot1 = memchr(token.p, '.', token.n), *dot2;
	unsigned char *payload = NULL;
	struct json_doc d = { 0 };
	ssize_t n;
	int rc = -1;

	if (!dot1)
		return -1;
	dot2 = memchr(dot1 + 1, '.', (size_t)(token.p + token.n - dot1 - 1));
	if (!dot2 || memchr(dot2 + 1, '.', (size_t)(token.p + token.n - dot2 - 1)))
		return -1;
	if ((size_t)(dot2 - dot1 - 1) > JWT_MAX_PAYLOAD * 4 / 3 + 4)
		return -1;
	payload = x_malloc(JWT_MAX_PAYLOAD);
	n = base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, JWT_MAX_PAYLOAD);
	if (n <= 0)
		goto out;
	if (json_parse(&d, (const char *)payload, (size_t)n, JWT_MAX_TOKENS, NULL, 0) != 0)
		goto out;
	if (json_is_object(&d, 0))
		rc = jwt_json_exp(&d, exp);
out:
	json_doc_free(&d);
	free(payload);
	return rc;
}
