#include "auth/credentials.h"

#include <string.h>

#include "util/ascii.h"
#include "util/base64.h"

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
