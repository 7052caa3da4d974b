/* Image references: see reference.h for the grammar. */
#include "k8s/reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ascii.h"
#include "util/names.h"
#include "util/xalloc.h"

#define REF_HUB "docker.io"

static bool ref_has_upper(struct og_str s)
{
	for (size_t i = 0; i < s.n; i++)
		if (ascii_is_upper(s.p[i]))
			return true;
	return false;
}

static const char *ref_memchr(struct og_str s, char c)
{
	return s.n ? memchr(s.p, c, s.n) : NULL;
}

static int ref_check_path(struct og_str path, char *err, size_t cap)
{
	size_t start = 0;

	if (ref_has_upper(path)) {
		snprintf(err, cap, "invalid reference format: repository name must be lowercase");
		return -1;
	}
	for (size_t i = 0; i <= path.n; i++) {
		if (i < path.n && path.p[i] != '/')
			continue;
		if (!names_oci_component(og_str_make(path.p + start, i - start))) {
			snprintf(err, cap, "invalid reference format: bad repository path component \"%.*s\"",
				 (int)OG_MIN(i - start, 128), path.p + start);
			return -1;
		}
		start = i + 1;
	}
	return 0;
}

/* domain = host [":" port]; fills r->host (lower-cased) and r->port. */
static int ref_parse_domain(struct og_str d, struct k8s_reference *r, char *err, size_t cap)
{
	struct names_hostport hp;

	if (names_hostport(d, &hp) != 0) {
		snprintf(err, cap, "invalid reference format: bad registry host \"%.*s\"",
			 (int)OG_MIN(d.n, 255), d.p);
		return -1;
	}
	r->port = hp.port;
	r->host = x_strndup(hp.host.p, hp.host.n);
	for (char *p = r->host; *p; p++)
		*p = ascii_lower(*p);
	return 0;
}

static int ref_check_tag(struct og_str t, char *err, size_t cap)
{
	if (names_oci_tag(t))
		return 0;
	snprintf(err, cap, "invalid reference format: bad tag \"%.*s\"", (int)OG_MIN(t.n, 140), t.p);
	return -1;
}

/* The digest grammar of the proxy's routes (util/names.h), so that a
 * reference the webhook writes is one the proxy then serves. */
static int ref_check_digest(struct og_str d, char *err, size_t cap)
{
	if (names_oci_digest(d))
		return 0;
	snprintf(err, cap, "invalid reference format: bad digest \"%.*s\"", (int)OG_MIN(d.n, 200),
		 d.p);
	return -1;
}

static bool ref_is_hex64(struct og_str s)
{
	if (s.n != 64)
		return false;
	for (size_t i = 0; i < s.n; i++)
		if (!ascii_is_lower_hex(s.p[i]))
			return false;
	return true;
}

/* Whether the first component of a name is a registry host. */
static bool ref_first_is_domain(struct og_str first)
{
	return ref_memchr(first, '.') || ref_memchr(first, ':') || og_str_eq(first, "localhost") ||
	       ref_has_upper(first);
}

/* Splits "name[:tag][@digest]"; the tag is after the last ':' that
 * follows the last '/'. */
static void ref_split(struct og_str s, struct og_str *name, struct og_str *tag,
		      struct og_str *digest)
{
	const char *at = ref_memchr(s, '@');
	size_t slash = 0;

	*digest = og_str_make(NULL, 0);
	*tag = og_str_make(NULL, 0);
	if (at) {
		*digest = og_str_make(at + 1, s.n - (size_t)(at - s.p) - 1);
		s.n = (size_t)(at - s.p);
	}
	for (size_t i = 0; i < s.n; i++)
		if (s.p[i] == '/')
			slash = i + 1;
	for (size_t i = s.n; i > slash; i--) {
		if (s.p[i - 1] == ':') {
			*tag = og_str_make(s.p + i, s.n - i);
			s.n = i - 1;
			break;
		}
	}
	*name = s;
}

static int ref_parse_name(struct og_str name, struct k8s_reference *r, char *err, size_t cap)
{
	const char *slash = ref_memchr(name, '/');
	struct og_str first, path = name;
	size_t len;

	if (slash) {
		first = og_str_make(name.p, (size_t)(slash - name.p));
		if (ref_first_is_domain(first)) {
			if (ref_parse_domain(first, r, err, cap) != 0)
				return -1;
			path = og_str_make(slash + 1, name.n - first.n - 1);
			r->domain = x_strndup(first.p, first.n);
		}
	}
	if (!r->domain) {
		if (ref_is_hex64(name)) {
			snprintf(err, cap, "invalid repository name \"%.*s\": a 64-character hex string "
				 "reads as an image ID", (int)name.n, name.p);
			return -1;
		}
		r->domain = x_strdup(REF_HUB);
		r->host = x_strdup(REF_HUB);
	}
	if (!path.n) {
		snprintf(err, cap, "invalid reference format: repository name is empty");
		return -1;
	}
	if (ref_check_path(path, err, cap) != 0)
		return -1;
	if (strcmp(r->domain, "index.docker.io") == 0) {
		free(r->domain);
		r->domain = x_strdup(REF_HUB);
	}
	len = strlen(r->domain) + 1 + path.n;
	if (strcmp(r->domain, REF_HUB) == 0 && !ref_memchr(path, '/')) {
		r->path = x_malloc(path.n + 9);
		memcpy(r->path, "library/", 8);
		memcpy(r->path + 8, path.p, path.n);
		r->path[path.n + 8] = '\0';
		len += 8;
	} else {
		r->path = x_strndup(path.p, path.n);
	}
	if (len > K8S_REFERENCE_NAME_MAX) {
		snprintf(err, cap, "invalid reference format: repository name longer than %d characters",
			 K8S_REFERENCE_NAME_MAX);
		return -1;
	}
	return 0;
}

int k8s_reference_parse(const char *s, size_t n, struct k8s_reference *out, char *err,
			size_t err_cap)
{
	struct og_str name, tag, digest;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!n) {
		snprintf(err, err_cap, "invalid reference format: empty");
		goto out;
	}
	ref_split(og_str_make(s, n), &name, &tag, &digest);
	if (tag.p && ref_check_tag(tag, err, err_cap) != 0)
		goto out;
	if (digest.p && ref_check_digest(digest, err, err_cap) != 0)
		goto out;
	if (ref_parse_name(name, out, err, err_cap) != 0)
		goto out;
	if (tag.p)
		out->tag = x_strndup(tag.p, tag.n);
	if (digest.p)
		out->digest = x_strndup(digest.p, digest.n);
	rc = 0;
out:
	if (rc != 0)
		k8s_reference_free(out);
	return rc;
}

void k8s_reference_free(struct k8s_reference *r)
{
	free(r->domain);
	free(r->host);
	free(r->path);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

int k8s_reference_canonical_host(const char *host, char *out, size_t cap)
{
	size_t n = strlen(host);

	if (n + 1 > cap)
		return -1;
	for (size_t i = 0; i <= n; i++)
		out[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] - 'A' + 'a') : host[i];
	if (strcmp(out, "index.docker.io") == 0 || strcmp(out, "registry-1.docker.io") == 0) {
		if (cap < sizeof(REF_HUB))
			return -1;
		memcpy(out, REF_HUB, sizeof(REF_HUB));
	}
	return 0;
}

bool k8s_reference_on_registry(const struct k8s_reference *r, const char *host, uint16_t port,
			       bool https)
{
	char a[256], b[256];
	uint16_t want = r->port ? r->port : (https ? 443 : 80);

	if (k8s_reference_canonical_host(r->host, a, sizeof(a)) != 0 ||
	    k8s_reference_canonical_host(host, b, sizeof(b)) != 0)
		return false;
	return strcmp(a, b) == 0 && want == port;
}

char *k8s_reference_rewrite(const struct k8s_reference *r, const char *prefix)
{
	size_t n = strlen(prefix) + 1 + strlen(r->path) + 1 +
		   (r->tag ? strlen(r->tag) + 1 : 0) + (r->digest ? strlen(r->digest) + 1 : 0);
	char *s = x_malloc(n);

	snprintf(s, n, "%s/%s%s%s%s%s", prefix, r->path, r->tag ? ":" : "", r->tag ? r->tag : "",
		 r->digest ? "@" : "", r->digest ? r->digest : "");
	return s;
}
