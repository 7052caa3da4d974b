#include "proxy/route.h"

#include <string.h>

#include "util/ascii.h"
#include "util/names.h"

/* Escapes and alternative separators are refused outright so that nothing
 * can change what a later hop sees as a segment; any other byte outside the
 * grammar is left to the component checks, which name the part that is wrong. */
static bool route_is_path_byte(char c)
{
	return c != '%' && c != '\\' && c != ';' && c != '#';
}

/* Eight bytes at a time: every request's path is checked. */
static bool route_path_bytes_ok(struct og_str path)
{
	size_t i = 0;

	for (; i + 8 <= path.n; i += 8) {
		uint64_t x;

		memcpy(&x, path.p + i, 8);
		if (!(og_word_has_byte(x, '%') | og_word_has_byte(x, '\\') | og_word_has_byte(x, ';') |
		      og_word_has_byte(x, '#')))
			continue;
		for (size_t k = i; k < i + 8; k++)
			if (!route_is_path_byte(path.p[k]))
				return false;
	}
	for (; i < path.n; i++)
		if (!route_is_path_byte(path.p[i]))
			return false;
	return true;
}

static struct og_str route_sub(struct og_str s, size_t from, size_t to)
{
	return og_str_make(s.p + from, to - from);
}

static const char *route_memrchr(const char *p, size_t n, char c)
{
	while (n > 0) {
		n--;
		if (p[n] == c)
			return p + n;
	}
	return NULL;
}

/* Last occurrence of needle in s, or -1. */
static ssize_t route_rfind(struct og_str s, const char *needle)
{
	size_t m = strlen(needle);

	if (m > s.n)
		return -1;
	for (size_t i = s.n - m + 1; i-- > 0;)
		if (memcmp(s.p + i, needle, m) == 0)
			return (ssize_t)i;
	return -1;
}

static bool route_ends_with(struct og_str s, const char *suffix)
{
	size_t m = strlen(suffix);

	return s.n >= m && memcmp(s.p + s.n - m, suffix, m) == 0;
}

/* Bytes, dot segments and empty segments. A final empty segment (trailing
 * slash) is left for the caller: it is legal after "/v2" and "blobs/uploads". */
static bool route_path_lexically_ok(struct og_str path)
{
	if (!route_path_bytes_ok(route_sub(path, OG_MIN(path.n, (size_t)1), path.n)))
		return false;
	for (size_t start = 1; start <= path.n;) {
		const char *slash = memchr(path.p + start, '/', path.n - start);
		size_t end = slash ? (size_t)(slash - path.p) : path.n;
		struct og_str seg = route_sub(path, start, end);

		if (seg.n == 0 && end < path.n)
			return false;
		if (og_str_eq(seg, ".") || og_str_eq(seg, ".."))
			return false;
		start = end + 1;
	}
	return true;
}

static bool route_query_ok(struct og_str q)
{
	for (size_t i = 0; i < q.n; i++) {
		unsigned char c = (unsigned char)q.p[i];
		if (c <= 0x20 || c >= 0x7f || c == '#')
			return false;
	}
	return true;
}

/* Takes the next segment of *rest (up to '/' or the end) into *seg; returns
 * false if there was no '/' after it. */
static bool route_next_segment(struct og_str *rest, struct og_str *seg)
{
	const char *slash = memchr(rest->p, '/', rest->n);

	if (!slash) {
		*seg = *rest;
		return false;
	}
	*seg = route_sub(*rest, 0, (size_t)(slash - rest->p));
	*rest = route_sub(*rest, seg->n + 1, rest->n);
	return true;
}

/* The kind of a ".../KEYWORD/REF" route, if kw is one of those keywords. */
static bool route_keyword_kind(struct og_str kw, enum route_kind *kind)
{
	static const struct {
		const char *kw;
		enum route_kind kind;
	} table[] = {
		{ "manifests", ROUTE_MANIFEST },
		{ "blobs", ROUTE_BLOB },
		{ "referrers", ROUTE_REFERRERS },
	};

	for (size_t i = 0; i < OG_ARRAY_LEN(table); i++) {
		if (og_str_eq(kw, table[i].kw)) {
			*kind = table[i].kind;
			return true;
		}
	}
	return false;
}

/* Splits the part after "connectors/NAME/" by its final shape. Does not
 * validate the repository or the reference. */
static enum route_error route_split_shape(struct og_str r, struct route *out)
{
	if (route_ends_with(r, "/tags/list") && r.n > 10) {
		out->kind = ROUTE_TAGS_LIST;
		out->repo = route_sub(r, 0, r.n - 10);
		return ROUTE_OK;
	}

	const char *s1 = route_memrchr(r.p, r.n, '/');
	const char *s2 = s1 ? route_memrchr(r.p, (size_t)(s1 - r.p), '/') : NULL;
	if (s2) {
		struct og_str last = route_sub(r, (size_t)(s1 - r.p) + 1, r.n);
		struct og_str kw = route_sub(r, (size_t)(s2 - r.p) + 1,
					     (size_t)(s1 - r.p));
		out->repo = route_sub(r, 0, (size_t)(s2 - r.p));
		out->ref = last;
		if (og_str_eq(kw, "blobs") && og_str_eq(last, "uploads")) {
			out->kind = ROUTE_BLOB_UPLOAD;
			out->ref = route_sub(r, r.n, r.n);
			return ROUTE_OK;
		}
		if (route_keyword_kind(kw, &out->kind))
			return last.n ? ROUTE_OK : ROUTE_E_BAD_PATH;
	}

	/* upload ids are opaque and may contain '/', so they come last */
	ssize_t up = route_rfind(r, "/blobs/uploads/");
	if (up > 0) {
		out->kind = ROUTE_BLOB_UPLOAD;
		out->repo = route_sub(r, 0, (size_t)up);
		out->ref = route_sub(r, (size_t)up + 15, r.n);
		return ROUTE_OK;
	}
	if (route_ends_with(r, "/"))
		return ROUTE_E_BAD_PATH;
	return ROUTE_E_NOT_FOUND;
}

static enum route_error route_validate(struct route *rt)
{
	if (!names_dns1123_label(rt->ns))
		return ROUTE_E_NAMESPACE;
	if (!names_dns1123_subdomain(rt->connector))
		return ROUTE_E_CONNECTOR;
	if (!names_oci_repository(rt->repo))
		return ROUTE_E_NAME;
	switch (rt->kind) {
	case ROUTE_MANIFEST:
		/* a tag never contains ':'; a reference that is neither a tag
		 * nor a digest names a manifest that cannot exist */
		rt->ref_is_digest = memchr(rt->ref.p, ':', rt->ref.n) != NULL;
		if (rt->ref_is_digest ? names_oci_digest(rt->ref) : names_oci_tag(rt->ref))
			return ROUTE_OK;
		return ROUTE_E_REFERENCE;
	case ROUTE_BLOB:
	case ROUTE_REFERRERS:
		rt->ref_is_digest = true;
		return names_oci_digest(rt->ref) ? ROUTE_OK : ROUTE_E_DIGEST;
	default:
		return ROUTE_OK;
	}
}

/* path is "/v2/..." with at least one byte after the slash. */
static enum route_error route_parse_v2(const char *target, struct og_str path,
				       struct route *out)
{
	struct og_str rest = route_sub(path, 4, path.n);
	struct og_str seg;

	if (!route_next_segment(&rest, &seg) || !og_str_eq(seg, "namespaces"))
		return ROUTE_E_NOT_FOUND;
	if (!route_next_segment(&rest, &out->ns))
		return ROUTE_E_NOT_FOUND;
	if (!route_next_segment(&rest, &seg) || !og_str_eq(seg, "connectors"))
		return ROUTE_E_NOT_FOUND;
	if (!route_next_segment(&rest, &out->connector) || rest.n == 0)
		return ROUTE_E_NOT_FOUND;

	out->upstream_off = (size_t)(rest.p - target);
	enum route_error e = route_split_shape(rest, out);
	if (e != ROUTE_OK)
		return e;
	return route_validate(out);
}

enum route_error route_parse(const char *target, size_t len, struct route *out)
{
	memset(out, 0, sizeof(*out));
	out->ns = out->connector = out->repo = out->ref = out->query =
		og_str_make(target, 0);
	if (len == 0 || target[0] != '/')
		return ROUTE_E_BAD_PATH;

	const char *qmark = memchr(target, '?', len);
	struct og_str path = og_str_make(target, qmark ? (size_t)(qmark - target) : len);
	if (qmark)
		out->query = og_str_make(qmark + 1, len - path.n - 1);
	if (!route_path_lexically_ok(path) || !route_query_ok(out->query))
		return ROUTE_E_BAD_PATH;

	if (og_str_eq(path, "/v2") || og_str_eq(path, "/v2/")) {
		out->kind = ROUTE_BASE;
		out->upstream_off = len;
		return ROUTE_OK;
	}
	if (path.n <= 4 || memcmp(path.p, "/v2/", 4) != 0)
		return ROUTE_E_NOT_FOUND;
	return route_parse_v2(target, path, out);
}

int route_error_status(enum route_error e)
{
	switch (e) {
	case ROUTE_OK:
		return 200;
	case ROUTE_E_NOT_FOUND:
	case ROUTE_E_REFERENCE:
		return 404;
	default:
		return 400;
	}
}

const char *route_error_code(enum route_error e)
{
	switch (e) {
	case ROUTE_OK:
		return "";
	case ROUTE_E_NOT_FOUND:
		return "NAME_UNKNOWN";
	case ROUTE_E_REFERENCE:
		return "MANIFEST_UNKNOWN";
	case ROUTE_E_DIGEST:
		return "DIGEST_INVALID";
	default:
		return "NAME_INVALID";
	}
}

const char *route_error_message(enum route_error e)
{
	switch (e) {
	case ROUTE_OK:
		return "";
	case ROUTE_E_NOT_FOUND:
		return "no such route: expected "
		       "/v2/namespaces/NS/connectors/NAME/REPO/...";
	case ROUTE_E_BAD_PATH:
		return "request path is not valid: percent-escapes, backslashes, "
		       "empty, \".\" and \"..\" segments and characters outside "
		       "the registry name grammar are not allowed";
	case ROUTE_E_NAMESPACE:
		return "namespace is not valid: it must be a DNS-1123 label "
		       "(at most 63 characters of [a-z0-9-], starting and "
		       "ending with a letter or digit)";
	case ROUTE_E_CONNECTOR:
		return "connector name is not valid: it must be a DNS-1123 "
		       "subdomain (at most 253 characters of [a-z0-9.-], each "
		       "dot-separated part starting and ending with a letter or "
		       "digit)";
	case ROUTE_E_NAME:
		return "repository name is not valid: it must be components of "
		       "[a-z0-9] separated by '/', with '.', '_', '__' or '-' "
		       "only between letters or digits, at most 255 characters";
	case ROUTE_E_REFERENCE:
		return "manifest unknown: the reference is neither a tag "
		       "([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}) nor a digest "
		       "(algorithm:encoded, sha256: with 64 lowercase hex digits)";
	case ROUTE_E_DIGEST:
		return "digest is not valid: it must be algorithm:encoded, e.g. "
		       "sha256: followed by 64 lowercase hex digits";
	}
	return "invalid request";
}

static bool route_link_byte_ok(char c)
{
	unsigned char u = (unsigned char)c;

	return u > 0x20 && u < 0x7f && c != '<' && c != '>';
}

/* Reduces an absolute or network-path URI to its path and query. */
static bool route_link_path(struct og_str url, struct og_str *path)
{
	size_t i = 0;

	if (url.n >= 2 && url.p[0] == '/' && url.p[1] == '/') {
		i = 2;
	} else if (url.n > 0 && url.p[0] != '/') {
		while (i < url.n && (ascii_is_alnum(url.p[i]) || url.p[i] == '+' ||
				     url.p[i] == '-' || url.p[i] == '.'))
			i++;
		if (i == 0 || url.n - i < 3 || memcmp(url.p + i, "://", 3) != 0)
			return false;
		i += 3;
	}
	if (i > 0) {
		while (i < url.n && url.p[i] != '/' && url.p[i] != '?' &&
		       url.p[i] != '#')
			i++;
	}
	*path = route_sub(url, i, url.n);
	return path->n > 4 && memcmp(path->p, "/v2/", 4) == 0;
}

static bool route_append(char *out, size_t cap, size_t *pos, struct og_str s)
{
	if (cap - *pos < s.n)
		return false;
	memcpy(out + *pos, s.p, s.n);
	*pos += s.n;
	return true;
}

ssize_t route_rewrite_link(struct og_str link, struct og_str ns,
			   struct og_str connector, char *out, size_t out_cap)
{
	size_t i = 0, pos = 0;
	struct og_str path;

	while (i < link.n && (link.p[i] == ' ' || link.p[i] == '\t'))
		i++;
	if (i == link.n || link.p[i] != '<')
		return -1;
	const char *gt = memchr(link.p + i, '>', link.n - i);
	if (!gt)
		return -1;
	struct og_str url = route_sub(link, i + 1, (size_t)(gt - link.p));
	struct og_str tail = route_sub(link, url.n + i + 2, link.n);
	for (size_t k = 0; k < url.n; k++)
		if (!route_link_byte_ok(url.p[k]))
			return -1;
	/* a second link would keep pointing at upstream, so refuse it */
	for (size_t k = 0; k < tail.n; k++) {
		unsigned char u = (unsigned char)tail.p[k];
		if (tail.p[k] == '<' || (u < 0x20 && u != '\t') || u == 0x7f)
			return -1;
	}
	if (!route_link_path(url, &path))
		return -1;

	bool ok = route_append(out, out_cap, &pos, OG_STR_LIT("</v2/namespaces/")) &&
		  route_append(out, out_cap, &pos, ns) &&
		  route_append(out, out_cap, &pos, OG_STR_LIT("/connectors/")) &&
		  route_append(out, out_cap, &pos, connector) &&
		  route_append(out, out_cap, &pos, OG_STR_LIT("/")) &&
		  route_append(out, out_cap, &pos, route_sub(path, 4, path.n)) &&
		  route_append(out, out_cap, &pos, OG_STR_LIT(">")) &&
		  route_append(out, out_cap, &pos, tail) && pos < out_cap;
	if (!ok)
		return -1;
	out[pos] = '\0';
	return (ssize_t)pos;
}
