#include "proxy/challenge.h"

#include <stdio.h>
#include <string.h>

#include "util/ascii.h"
#include "util/url.h"

struct challenge_lexer {
	const char *p, *end;
};

static bool challenge_is_token68_char(char c)
{
	return ascii_is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

static void challenge_skip_ows(struct challenge_lexer *lx)
{
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
		lx->p++;
}

/* Skips blanks and empty list elements (",  ,"). */
static void challenge_skip_separators(struct challenge_lexer *lx)
{
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == ','))
		lx->p++;
}

static struct og_str challenge_token(struct challenge_lexer *lx)
{
	const char *s = lx->p;

	while (lx->p < lx->end && ascii_is_tchar(*lx->p))
		lx->p++;
	return og_str_make(s, (size_t)(lx->p - s));
}

/* Reads a token or quoted-string value into out (NUL-terminated). */
static int challenge_value(struct challenge_lexer *lx, char *out, size_t cap)
{
	size_t n = 0;

	if (lx->p < lx->end && *lx->p == '"') {
		lx->p++;
		while (lx->p < lx->end && *lx->p != '"') {
			char c = *lx->p++;
			if (c == '\\') {
				if (lx->p >= lx->end)
					return -1;
				c = *lx->p++;
			}
			if ((unsigned char)c < 0x20 && c != '\t')
				return -1;
			if (n + 1 >= cap)
				return -1;
			out[n++] = c;
		}
		if (lx->p >= lx->end)
			return -1; /* unterminated */
		lx->p++;
	} else {
		struct og_str t = challenge_token(lx);
		if (t.n == 0 || t.n + 1 > cap)
			return -1;
		memcpy(out, t.p, t.n);
		n = t.n;
	}
	out[n] = '\0';
	return 0;
}

static char *challenge_slot(struct challenge *out, bool bearer, struct og_str name, size_t *cap)
{
	if (!bearer)
		return NULL;
	*cap = CHALLENGE_VALUE_MAX;
	if (og_str_ieq(name, "realm"))
		return out->realm;
	if (og_str_ieq(name, "service"))
		return out->service;
	if (og_str_ieq(name, "scope"))
		return out->scope;
	if (og_str_ieq(name, "error")) {
		*cap = sizeof(out->error);
		return out->error;
	}
	return NULL;
}

/* After a scheme: a token68, or auth-params up to the next scheme. */
static int challenge_params(struct challenge_lexer *lx, struct challenge *out, bool bearer)
{
	char scratch[CHALLENGE_VALUE_MAX];

	for (;;) {
		challenge_skip_separators(lx);
		const char *mark = lx->p;
		struct og_str name = challenge_token(lx);
		if (name.n == 0)
			return lx->p >= lx->end ? 0 : -1;
		challenge_skip_ows(lx);
		if (lx->p >= lx->end || *lx->p != '=') {
			lx->p = mark; /* the next challenge's scheme */
			return 0;
		}
		/* token68 ends in '=' padding: "abc==" with nothing after is one. */
		const char *after_eq = lx->p;
		while (after_eq < lx->end && *after_eq == '=')
			after_eq++;
		if (after_eq - lx->p > 1 || (after_eq - lx->p == 1 && (after_eq >= lx->end ||
									*after_eq == ','))) {
			lx->p = after_eq;
			continue;
		}
		lx->p++;
		challenge_skip_ows(lx);
		size_t cap = sizeof(scratch);
		char *slot = challenge_slot(out, bearer, name, &cap);
		if (challenge_value(lx, slot ? slot : scratch, slot ? cap : sizeof(scratch)) != 0)
			return -1;
	}
}

static void challenge_skip_token68(struct challenge_lexer *lx)
{
	const char *q = lx->p;

	while (q < lx->end && challenge_is_token68_char(*q))
		q++;
	while (q < lx->end && *q == '=')
		q++;
	const char *r = q;
	while (r < lx->end && (*r == ' ' || *r == '\t'))
		r++;
	/* A token68 stands alone: it is followed by a comma or the end. */
	if (q > lx->p && (r >= lx->end || *r == ',') && memchr(lx->p, '=', (size_t)(q - lx->p)) &&
	    *(q - 1) == '=')
		lx->p = r;
}

int challenge_parse(struct og_str value, struct challenge *out)
{
	struct challenge_lexer lx = { value.p, value.p + value.n };

	for (;;) {
		challenge_skip_separators(&lx);
		if (lx.p >= lx.end)
			return 0;
		struct og_str scheme = challenge_token(&lx);
		if (scheme.n == 0)
			return -1;
		bool bearer = og_str_ieq(scheme, "Bearer");
		if (bearer)
			out->bearer = true;
		else if (og_str_ieq(scheme, "Basic"))
			out->basic = true;
		if (lx.p < lx.end && *lx.p != ' ' && *lx.p != '\t' && *lx.p != ',')
			return -1;
		challenge_skip_ows(&lx);
		challenge_skip_token68(&lx);
		if (challenge_params(&lx, out, bearer) != 0)
			return -1;
	}
}

int challenge_check_realm(const char *realm, bool allow_insecure, char *err, size_t cap)
{
	struct url u;

	if (url_parse(og_str_make(realm, strlen(realm)), &u) != 0) {
		snprintf(err, cap, "the registry's token realm is not an absolute http(s) URL");
		return -1;
	}
	bool https = u.https;
	url_free(&u);
	if (!https && !allow_insecure) {
		snprintf(err, cap, "the registry's token realm is plain http (set allow_insecure to "
			 "use it)");
		return -1;
	}
	return 0;
}
