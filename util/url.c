#include "util/url.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define URL_MAX_HOST 253

static bool url_is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char url_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static bool url_has_prefix(struct og_str s, const char *lit)
{
	size_t k = strlen(lit);
	if (s.n < k)
		return false;
	for (size_t i = 0; i < k; i++)
		if (url_lower(s.p[i]) != lit[i])
			return false;
	return true;
}

/* A DNS name or IPv4 address: labels of letters, digits and inner '-'. */
static bool url_is_hostname(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > URL_MAX_HOST + 1)
		return false;
	if (s[n - 1] == '.')
		n--;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (url_is_alnum(s[i]) || (s[i] == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[n - 1] != '-';
}

static bool url_is_ipv6(const char *s, size_t n)
{
	char buf[64];
	unsigned char addr[16];

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, addr) == 1;
}

static bool url_scan_port(const char *s, size_t n, uint16_t *out)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

static int url_authority(const char *s, size_t n, struct url *out)
{
	const char *host = s, *port = NULL;
	size_t hn = n, pn = 0;

	if (memchr(s, '@', n))
		return -1;
	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close || (close + 1 < s + n && close[1] != ':'))
			return -1;
		host = s + 1;
		hn = (size_t)(close - host);
		if (!url_is_ipv6(host, hn))
			return -1;
		if (close + 1 < s + n) {
			port = close + 2;
			pn = (size_t)(s + n - port);
		}
	} else {
		const char *colon = memchr(s, ':', n);
		if (colon) {
			hn = (size_t)(colon - s);
			port = colon + 1;
			pn = (size_t)(s + n - port);
		}
		if (!url_is_hostname(host, hn))
			return -1;
	}
	out->port = out->https ? 443 : 80;
	if (port && !url_scan_port(port, pn, &out->port))
		return -1;
	out->host = x_strndup(host, hn);
	for (char *c = out->host; *c; c++)
		*c = url_lower(*c);
	return 0;
}

int url_parse(struct og_str s, struct url *out)
{
	size_t skip, an, tn;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < s.n; i++)
		if ((unsigned char)s.p[i] <= 0x20 || s.p[i] == 0x7f)
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

ssize_t url_encode_component(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (url_is_alnum((char)c) || strchr("-._~", c)) {
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
		if (!(url_is_alnum(c) || c == '+' || c == '-' || c == '.'))
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
