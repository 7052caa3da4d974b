/* Fuzzes util/url: URLs and Location values from untrusted upstreams and
 * token services. The input is "BASE\nREF": BASE (when it parses, else a
 * fixed blob URL) is the request a redirect answers, REF its Location.
 * Checked: a parsed URL is well formed and parses back to itself once
 * written out; a resolved relative reference keeps the base's origin and
 * has no dot segments left; percent-encoding a component decodes back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/fuzz/fuzz_check.h"
#include "util/url.h"
#include "util/xalloc.h"

static bool fuzz_has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* "scheme://[host]:port/target", which must parse to u again. */
static void fuzz_check_roundtrip(const struct url *u)
{
	bool v6 = strchr(u->host, ':') != NULL;
	size_t n = strlen(u->host) + strlen(u->target) + 32;
	char *s = x_malloc(n);
	struct url again;

	snprintf(s, n, "%s://%s%s%s:%u%s", u->https ? "https" : "http", v6 ? "[" : "", u->host,
		 v6 ? "]" : "", u->port, u->target);
	FUZZ_CHECK(url_parse(og_str_make(s, strlen(s)), &again) == 0);
	FUZZ_CHECK(again.https == u->https && again.port == u->port);
	FUZZ_CHECK(strcmp(again.host, u->host) == 0 && strcmp(again.target, u->target) == 0);
	url_free(&again);
	free(s);
}

static void fuzz_check_url(const struct url *u)
{
	FUZZ_CHECK(u->host && *u->host && u->target);
	FUZZ_CHECK(u->port != 0);
	for (const char *h = u->host; *h; h++)
		FUZZ_CHECK(!(*h >= 'A' && *h <= 'Z'));
	FUZZ_CHECK(u->target[0] == '/');
	FUZZ_CHECK(strchr(u->target, '#') == NULL);
	FUZZ_CHECK(!fuzz_has_ctl(u->host) && !fuzz_has_ctl(u->target));
	fuzz_check_roundtrip(u);
}

/* A relative reference "scheme:..." is absolute; "//host" names another
 * origin too. */
static bool fuzz_is_relative(struct og_str r)
{
	if (r.n >= 2 && r.p[0] == '/' && r.p[1] == '/')
		return false;
	for (size_t i = 0; i < r.n; i++) {
		if (r.p[i] == ':')
			return false;
		if (r.p[i] == '/' || r.p[i] == '?' || r.p[i] == '#')
			return true;
	}
	return true;
}

/* No "." or ".." segment is left in the path (the query may hold any). */
static void fuzz_check_no_dots(const char *t)
{
	size_t plen = strcspn(t, "?");

	for (size_t i = 0; i < plen; i++) {
		if (t[i] != '/')
			continue;
		size_t e = i + 1;
		while (e < plen && t[e] != '/')
			e++;
		FUZZ_CHECK(!(e - i - 1 == 1 && t[i + 1] == '.'));
		FUZZ_CHECK(!(e - i - 1 == 2 && t[i + 1] == '.' && t[i + 2] == '.'));
	}
}

static void fuzz_resolve(const struct url *base, struct og_str ref)
{
	struct url out;

	if (url_resolve(base, ref, &out) != 0) {
		FUZZ_CHECK(out.host == NULL && out.target == NULL);
		return;
	}
	fuzz_check_url(&out);
	if (fuzz_is_relative(ref)) {
		FUZZ_CHECK(out.https == base->https && out.port == base->port);
		FUZZ_CHECK(strcmp(out.host, base->host) == 0);
		fuzz_check_no_dots(out.target);
	}
	url_free(&out);
}

/* Encoding a component and decoding it gives it back; decoding never grows. */
static void fuzz_components(const char *s, size_t n)
{
	char *z = x_strndup(s, n);
	size_t zn = strlen(z);
	char *enc = x_malloc(3 * zn + 1);
	char *dec = x_malloc(n + 1);
	ssize_t en = url_encode_component(z, enc, 3 * zn + 1);

	FUZZ_CHECK(en >= 0 && (size_t)en >= zn);
	FUZZ_CHECK(url_encode_component(z, enc, (size_t)en) == -1);
	FUZZ_CHECK(url_encode_component(z, enc, (size_t)en + 1) == en);
	ssize_t dn = url_decode_component(enc, (size_t)en, dec, n + 1);
	FUZZ_CHECK(dn == (ssize_t)zn && memcmp(dec, z, zn) == 0);
	dn = url_decode_component(s, n, dec, n + 1);
	FUZZ_CHECK(dn <= (ssize_t)n);
	free(dec);
	free(enc);
	free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char fixed[] = "https://reg.example.com:5000/v2/team/app/blobs/sha256:ab?d=1";
	const char *s = (const char *)data;
	const char *nl = size ? memchr(s, '\n', size) : NULL;
	struct og_str first = og_str_make(s, nl ? (size_t)(nl - s) : size);
	struct og_str ref = nl ? og_str_make(nl + 1, size - first.n - 1) : first;
	struct url base, whole;

	if (url_parse(og_str_make(s, size), &whole) == 0) {
		fuzz_check_url(&whole);
		url_free(&whole);
	} else {
		FUZZ_CHECK(whole.host == NULL && whole.target == NULL);
	}
	if (!nl || url_parse(first, &base) != 0)
		FUZZ_CHECK(url_parse(og_str_make(fixed, sizeof(fixed) - 1), &base) == 0);
	fuzz_check_url(&base);
	fuzz_resolve(&base, ref);
	url_free(&base);
	fuzz_components(ref.p, ref.n);
	return 0;
}
