#include "util/url.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ascii.h"
#include "util/names.h"
#include "util/xalloc.h"

static bool url_has_prefix(struct og_str s, const char *lit)
{
	size_t k = strlen(lit);
	if (s.n < k)
		return false;
	for (size_t i = 0; i < k; i++)
		if (ascii_lower(s.p[i]) != lit[i])
			return false;
	return true;
}

static int url_authority(const char *s, size_t n, struct url *out)
{
	struct names_hostport hp;

	if (memchr(s, '@', n) || names_hostport(og_str_make(s, n), &hp) != 0)
		return -1;
	out->port = hp.has_port ? hp.port : out->https ? 443 : 80;
	out->host = x_strndup(hp.host.p, hp.host.n);
	for (char *c = out->host; *c; c++)
		*c = ascii_lower(*c);
	return 0;
}

int url_parse(struct og_str s, struct url *out)
{
	size_t skip, an, tn;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < s.n; i++)
		if (ascii_is_ctl_or_space(s.p[i]))
			return -1;
	if (url_has_prefix(s, "https://")) {
		out->https = true;
		skip = 8;
	} else if (url_has_prefix(s, "http://")) {
		skip = 7;
	} else {
		return -1;
	}
	for (an = skip; an < s.n && !strchr("/?#", s.p[an]); an++)
		;
	for (tn = an; tn < s.n && s.p[tn] != '#'; tn++)
		;
	if (url_authority(s.p + skip, an - skip, out) != 0)
		return -1;
	/* "https://h?q" asks for "/?q": the path is never empty */
	bool slash = tn == an || s.p[an] != '/';
	out->target = x_malloc(tn - an + slash + 1);
	out->target[0] = '/';
	memcpy(out->target + slash, s.p + an, tn - an);
	out->target[tn - an + slash] = '\0';
	return 0;
}

void url_free(struct url *u)
{
	free(u->host);
	free(u->target);
	memset(u, 0, sizeof(*u));
}

static int url_fail(char *err, size_t cap, const char *fmt, ...) OG_PRINTF(3, 4);
static int url_fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}

/* RFC 3986 pchar plus '/', with well-formed percent escapes. */
static bool url_path_ok(const char *s)
{
	for (; *s; s++) {
		if (*s == '%') {
			if (!ascii_is_hex(s[1]) || !ascii_is_hex(s[2]))
				return false;
			s += 2;
		} else if (!ascii_is_alnum(*s) && !strchr("-._~!$&'()*+,;=:@/", *s)) {
			return false;
		}
	}
	return true;
}

/* Why the authority s (n bytes) is not host[:port]: the host or the port. */
static int url_authority_fail(const char *s, size_t n, char *err, size_t cap)
{
	const char *close = n && s[0] == '[' ? memchr(s, ']', n) : NULL;
	const char *colon = memchr(close ? close : s, ':', n - (size_t)((close ? close : s) - s));
	struct names_hostport hp;

	if (colon && names_hostport(og_str_make(s, (size_t)(colon - s)), &hp) == 0)
		return url_fail(err, cap, "port must be a number from 1 to 65535");
	return url_fail(err, cap, "'%.*s' is not a valid host in a URL", (int)OG_MIN(n, 256), s);
}

int url_base_parse(struct url_base *u, const char *s, size_t n, char *err, size_t err_cap)
{
	struct og_str str = og_str_make(s, n);
	struct url base;
	size_t skip, an, pn;

	memset(u, 0, sizeof(*u));
	if (url_has_prefix(str, "https://"))
		skip = 8;
	else if (url_has_prefix(str, "http://"))
		skip = 7;
	else
		return url_fail(err, err_cap,
				"expected an http:// or https:// URL like https://registry.example.com");
	if (memchr(s, '?', n) || memchr(s, '#', n))
		return url_fail(err, err_cap, "a query or fragment is not allowed");
	for (an = skip; an < n && s[an] != '/'; an++)
		if (s[an] == '@')
			return url_fail(err, err_cap, "credentials in the URL are not allowed");
	for (size_t i = an; i < n; i++)
		if (ascii_is_ctl_or_space(s[i]))
			return url_fail(err, err_cap, "invalid character in the URL path");
	if (url_parse(str, &base) != 0)
		return url_authority_fail(s + skip, an - skip, err, err_cap);
	if (!url_path_ok(base.target)) {
		url_free(&base);
		return url_fail(err, err_cap, "invalid character in the URL path");
	}
	pn = strlen(base.target);
	while (pn && base.target[pn - 1] == '/')
		pn--;
	u->https = base.https;
	u->host = base.host;
	u->port = base.port;
	u->path_prefix = x_strndup(base.target, pn);
	u->text = x_strndup(s, n);
	free(base.target);
	return 0;
}

void url_base_free(struct url_base *u)
{
	free(u->host);
	free(u->path_prefix);
	free(u->text);
	memset(u, 0, sizeof(*u));
}

char *url_host_header(const char *host, uint16_t port, bool https)
{
	bool v6 = strchr(host, ':') != NULL;
	size_t n = strlen(host) + sizeof("[]:65535");
	char *out = x_malloc(n);

	if (port == (https ? 443 : 80))
		snprintf(out, n, v6 ? "[%s]" : "%s", host);
	else
		snprintf(out, n, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
	return out;
}

ssize_t url_encode_component(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (ascii_is_alnum((char)c) || strchr("-._~", c)) {
			if (o + 1 >= cap)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= cap)
				return -1;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= cap)
		return -1;
	out[o] = '\0';
	return (ssize_t)o;
}

static bool url_ref_ok(struct og_str r)
{
	for (size_t i = 0; i < r.n; i++) {
		unsigned char c = (unsigned char)r.p[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

/* RFC 3986 5.2.4 on the path part of t (the query is kept as it is). */
static void url_remove_dot_segments(char *t)
{
	char *q = strchr(t, '?');
	size_t plen = q ? (size_t)(q - t) : strlen(t);
	char *out = x_malloc(plen + 2);
	size_t o = 0, i = 0;

	while (i < plen) {
		size_t e = i + 1;
		while (e < plen && t[e] != '/')
			e++;
		/* t[i] is '/', the segment is t[i+1 .. e) */
		size_t sl = e - i - 1;
		if (sl == 1 && t[i + 1] == '.') {
			if (e == plen)
				out[o++] = '/';
		} else if (sl == 2 && t[i + 1] == '.' && t[i + 2] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			if (e == plen)
				out[o++] = '/';
		} else {
			memcpy(out + o, t + i, e - i);
			o += e - i;
		}
		i = e;
	}
	if (o == 0)
		out[o++] = '/';
	memcpy(t, out, o);
	memmove(t + o, t + plen, strlen(t + plen) + 1);
	free(out);
}

static char *url_join_target(const char *base_target, struct og_str ref)
{
	const char *q = strchr(base_target, '?');
	size_t dir = q ? (size_t)(q - base_target) : strlen(base_target);
	const char *hash = memchr(ref.p, '#', ref.n);

	if (hash)
		ref.n = (size_t)(hash - ref.p);
	if (ref.n && ref.p[0] == '/')
		dir = 0;
	else if (ref.n == 0 || ref.p[0] != '?')
		while (dir > 0 && base_target[dir - 1] != '/')
			dir--;
	char *t = x_malloc(dir + ref.n + 2);
	memcpy(t, base_target, dir);
	memcpy(t + dir, ref.p, ref.n);
	t[dir + ref.n] = '\0';
	if (t[0] == '\0') {
		t[0] = '/';
		t[1] = '\0';
	}
	return t;
}

/* "scheme:" before any '/', '?' or '#' makes ref an absolute URI. */
static bool url_has_scheme(struct og_str r)
{
	for (size_t i = 0; i < r.n; i++) {
		char c = r.p[i];
		if (c == ':')
			return i > 0;
		if (!(ascii_is_alnum(c) || c == '+' || c == '-' || c == '.'))
			return false;
	}
	return false;
}

/* RFC 3986 5.2.2: an absolute or network-path reference has its dot
 * segments removed too, or "https://registry/v2/../x" would pass for a path
 * under /v2/. */
static int url_parse_normalized(struct og_str s, struct url *out)
{
	if (url_parse(s, out) != 0)
		return -1;
	url_remove_dot_segments(out->target);
	return 0;
}

int url_resolve(const struct url *base, struct og_str ref, struct url *out)
{
	memset(out, 0, sizeof(*out));
	if (url_has_scheme(ref))
		return url_parse_normalized(ref, out); /* only http(s) parse */
	if (!url_ref_ok(ref))
		return -1;
	if (ref.n >= 2 && ref.p[0] == '/' && ref.p[1] == '/') {
		char buf[4096];
		int n = snprintf(buf, sizeof(buf), "%s:%.*s", base->https ? "https" : "http",
				 (int)ref.n, ref.p);
		if (n < 0 || (size_t)n >= sizeof(buf))
			return -1;
		return url_parse_normalized(og_str_make(buf, (size_t)n), out);
	}
	out->https = base->https;
	out->host = x_strdup(base->host);
	out->port = base->port;
	out->target = url_join_target(base->target, ref);
	url_remove_dot_segments(out->target);
	return 0;
}

ssize_t url_decode_component(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (n - i < 3)
				return -1;
			int hi = og_hex_value(s[i + 1]), lo = og_hex_value(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	if (cap == 0)
		return -1;
	out[o] = '\0';
	return (ssize_t)o;
}
