/* Name grammars: see names.h for the rules. */
#include "util/names.h"

#include <arpa/inet.h>
#include <string.h>

#include "util/ascii.h"

static struct og_str names_sub(struct og_str s, size_t from, size_t to)
{
	return og_str_make(s.p + from, to - from);
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? without a length limit */
static bool names_dns_part(struct og_str s)
{
	if (s.n == 0 || !ascii_is_lower_alnum(s.p[0]) || !ascii_is_lower_alnum(s.p[s.n - 1]))
		return false;
	for (size_t i = 0; i < s.n; i++)
		if (!ascii_is_lower_alnum(s.p[i]) && s.p[i] != '-')
			return false;
	return true;
}

bool names_dns1123_label(struct og_str s)
{
	return s.n <= NAMES_LABEL_MAX && names_dns_part(s);
}

/* Kubernetes checks the whole subdomain against one regex and a 253 limit;
 * its dot-separated parts have no 63 limit of their own, so neither here. */
bool names_dns1123_subdomain(struct og_str s)
{
	size_t start = 0;

	if (s.n == 0 || s.n > NAMES_SUBDOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= s.n; i++) {
		if (i < s.n && s.p[i] != '.')
			continue;
		if (!names_dns_part(names_sub(s, start, i)))
			return false;
		start = i + 1;
	}
	return true;
}

/* Skips one separator of a path component at s.p[i]; returns the index after
 * it, or i when s.p[i] is not a separator. */
static size_t names_component_sep(struct og_str s, size_t i)
{
	if (s.p[i] == '.')
		return i + 1;
	if (s.p[i] == '_')
		return (i + 1 < s.n && s.p[i + 1] == '_') ? i + 2 : i + 1;
	while (i < s.n && s.p[i] == '-')
		i++;
	return i;
}

bool names_oci_component(struct og_str s)
{
	size_t i = 0;

	while (i < s.n) {
		size_t run = i;

		while (i < s.n && ascii_is_lower_alnum(s.p[i]))
			i++;
		if (i == run)
			return false;
		if (i == s.n)
			return true;
		size_t next = names_component_sep(s, i);
		if (next == i || next == s.n)
			return false;
		i = next;
	}
	return false;
}

bool names_oci_repository(struct og_str s)
{
	size_t start = 0;

	if (s.n == 0 || s.n > NAMES_REPOSITORY_MAX)
		return false;
	for (size_t i = 0; i <= s.n; i++) {
		if (i < s.n && s.p[i] != '/')
			continue;
		if (!names_oci_component(names_sub(s, start, i)))
			return false;
		start = i + 1;
	}
	return true;
}

bool names_oci_tag(struct og_str s)
{
	if (s.n == 0 || s.n > NAMES_TAG_MAX)
		return false;
	if (!ascii_is_alnum(s.p[0]) && s.p[0] != '_')
		return false;
	for (size_t i = 1; i < s.n; i++) {
		char c = s.p[i];
		if (!ascii_is_alnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

/* [a-z0-9]+([+._-][a-z0-9]+)* */
static bool names_digest_algorithm(struct og_str s)
{
	bool need_alnum = true;

	for (size_t i = 0; i < s.n; i++) {
		char c = s.p[i];
		if (ascii_is_lower_alnum(c))
			need_alnum = false;
		else if (!need_alnum && (c == '+' || c == '.' || c == '_' || c == '-'))
			need_alnum = true;
		else
			return false;
	}
	return !need_alnum;
}

static bool names_lower_hex(struct og_str s, size_t want)
{
	if (s.n != want)
		return false;
	for (size_t i = 0; i < s.n; i++)
		if (!ascii_is_lower_hex(s.p[i]))
			return false;
	return true;
}

bool names_oci_digest(struct og_str s)
{
	const char *colon = s.n ? memchr(s.p, ':', s.n) : NULL;

	if (!colon)
		return false;
	struct og_str alg = names_sub(s, 0, (size_t)(colon - s.p));
	struct og_str enc = names_sub(s, alg.n + 1, s.n);
	if (!names_digest_algorithm(alg) || enc.n == 0)
		return false;
	if (og_str_eq(alg, "sha256"))
		return names_lower_hex(enc, 64);
	if (og_str_eq(alg, "sha512"))
		return names_lower_hex(enc, 128);
	for (size_t i = 0; i < enc.n; i++) {
		char c = enc.p[i];
		if (!ascii_is_alnum(c) && c != '=' && c != '_' && c != '-')
			return false;
	}
	return true;
}

static bool names_inet(int af, struct og_str s)
{
	char buf[64];
	unsigned char addr[16];

	if (s.n == 0 || s.n >= sizeof(buf))
		return false;
	memcpy(buf, s.p, s.n);
	buf[s.n] = '\0';
	return inet_pton(af, buf, addr) == 1;
}

bool names_ipv6(struct og_str s)
{
	return names_inet(AF_INET6, s);
}

static bool names_host_label(struct og_str s)
{
	if (s.n == 0 || s.n > NAMES_LABEL_MAX || s.p[0] == '-' || s.p[s.n - 1] == '-')
		return false;
	for (size_t i = 0; i < s.n; i++)
		if (!ascii_is_alnum(s.p[i]) && s.p[i] != '-')
			return false;
	return true;
}

bool names_host(struct og_str s)
{
	bool numeric = true;
	size_t start = 0;

	if (s.n > 1 && s.p[s.n - 1] == '.')
		s.n--; /* a fully qualified name */
	if (s.n == 0 || s.n > NAMES_SUBDOMAIN_MAX)
		return false;
	for (size_t i = 0; i < s.n; i++)
		if (!ascii_is_digit(s.p[i]) && s.p[i] != '.')
			numeric = false;
	if (numeric) /* no top-level domain is all digits: "1.2.3" is a bad address */
		return names_inet(AF_INET, s);
	for (size_t i = 0; i <= s.n; i++) {
		if (i < s.n && s.p[i] != '.')
			continue;
		if (!names_host_label(names_sub(s, start, i)))
			return false;
		start = i + 1;
	}
	return true;
}

int names_port(struct og_str s, unsigned min, uint16_t *out)
{
	unsigned v = 0;

	if (s.n == 0 || s.n > 5)
		return -1;
	for (size_t i = 0; i < s.n; i++) {
		if (!ascii_is_digit(s.p[i]))
			return -1;
		v = v * 10 + (unsigned)(s.p[i] - '0');
	}
	if (v < min || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

int names_hostport(struct og_str s, struct names_hostport *out)
{
	struct og_str port = { NULL, 0 };

	memset(out, 0, sizeof(*out));
	out->host = s;
	if (s.n && s.p[0] == '[') {
		const char *close = memchr(s.p, ']', s.n);
		size_t after;

		if (!close)
			return -1;
		after = (size_t)(close - s.p) + 1;
		out->host = names_sub(s, 1, after - 1);
		out->ipv6 = true;
		if (!names_ipv6(out->host))
			return -1;
		if (after < s.n) {
			if (s.p[after] != ':')
				return -1;
			port = names_sub(s, after + 1, s.n);
			out->has_port = true;
		}
	} else {
		const char *colon = s.n ? memchr(s.p, ':', s.n) : NULL;

		if (colon) {
			out->host = names_sub(s, 0, (size_t)(colon - s.p));
			port = names_sub(s, out->host.n + 1, s.n);
			out->has_port = true;
		}
		if (!names_host(out->host))
			return -1;
	}
	if (out->has_port && names_port(port, 1, &out->port) != 0)
		return -1;
	return 0;
}
