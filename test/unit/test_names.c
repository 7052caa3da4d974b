/* One table of name rules (util/names.h), run through the grammar itself and
 * through both of its users: the proxy's routes (proxy/route.c) and the
 * image references the webhook and credential provider read
 * (k8s/reference.c). A row that one of them reads differently fails here. */
#include "util/names.h"

#include <stdio.h>
#include <string.h>

#include "k8s/reference.h"
#include "proxy/route.h"
#include "test/unit/check.h"

#define HEX64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HEX128 HEX64 HEX64
#define UPPER64 "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
#define PFX "/v2/namespaces/ns/connectors/c/"

enum kind { LABEL, SUBDOMAIN, REPO, TAG, DIGEST, HOST, HOSTPORT };

struct name_case {
	int line;
	enum kind kind;
	const char *s;
	bool ok;
};

#define YES(k, s) { __LINE__, k, s, true }
#define NO(k, s) { __LINE__, k, s, false }

static const struct name_case cases[] = {
	YES(LABEL, "a"), YES(LABEL, "0"), YES(LABEL, "kube-public"), YES(LABEL, "a--b"),
	NO(LABEL, ""), NO(LABEL, "a.b"), NO(LABEL, "A"), NO(LABEL, "-"), NO(LABEL, "a-"),

	YES(SUBDOMAIN, "harbor"), YES(SUBDOMAIN, "harbor.example.com"), YES(SUBDOMAIN, "a-1.b-2"),
	NO(SUBDOMAIN, ""), NO(SUBDOMAIN, "a."), NO(SUBDOMAIN, "."), NO(SUBDOMAIN, "a-.b"),
	NO(SUBDOMAIN, "a/b"), NO(SUBDOMAIN, "A.b"),

	YES(REPO, "a"), YES(REPO, "library/nginx"), YES(REPO, "a.b_c__d-e--f/g"),
	YES(REPO, "a---b"),
	NO(REPO, ""), NO(REPO, "a/"), NO(REPO, "/a"), NO(REPO, "a//b"), NO(REPO, "a."),
	NO(REPO, "a._b"), NO(REPO, "a___b"), NO(REPO, "_a"), NO(REPO, "Nginx"), NO(REPO, "a+b"),

	YES(TAG, "latest"), YES(TAG, "_"), YES(TAG, "V1.0_rc-2"),
	YES(TAG, "t23456789012345678901234567890123456789012345678901234567890123"
		 "45678901234567890123456789012345678901234567890123456789012345678"),
	NO(TAG, ""), NO(TAG, "-a"), NO(TAG, ".a"), NO(TAG, "la+test"), NO(TAG, "latest~1"),
	NO(TAG, "t23456789012345678901234567890123456789012345678901234567890123"
		"456789012345678901234567890123456789012345678901234567890123456789"),

	YES(DIGEST, "sha256:" HEX64), YES(DIGEST, "sha512:" HEX128),
	/* unregistered algorithms: the generic encoded grammar */
	YES(DIGEST, "sha384:AbC=_-"), YES(DIGEST, "a.b+c_d-e:x"), YES(DIGEST, "1sha:abc"),
	YES(DIGEST, "multihash+base58:0123456789ABCDEF"),
	NO(DIGEST, "sha256"), NO(DIGEST, "sha256:"), NO(DIGEST, ":" HEX64),
	NO(DIGEST, "sha256:abc"), NO(DIGEST, "sha256:" HEX64 "0"), NO(DIGEST, "sha256:" HEX128),
	NO(DIGEST, "sha256:" UPPER64), NO(DIGEST, "SHA256:" HEX64), NO(DIGEST, "Sha256:" HEX64),
	NO(DIGEST, "sha512:" HEX64), NO(DIGEST, "a-:x"), NO(DIGEST, "a++b:x"),
	NO(DIGEST, "sha384:a+b"), NO(DIGEST, "sha256:" HEX64 ":x"),

	YES(HOST, "registry.example.com"), YES(HOST, "Registry.Example.COM"), YES(HOST, "h"),
	YES(HOST, "10.0.0.1"), YES(HOST, "example.com."), YES(HOST, "a-b.c"),
	NO(HOST, ""), NO(HOST, "bad_host"), NO(HOST, "-a.b"), NO(HOST, "a-.b"), NO(HOST, "a..b"),
	NO(HOST, "999.1.1.1"), NO(HOST, "1.2.3"), NO(HOST, "::1"), NO(HOST, "."),
	NO(HOST, "l234567890123456789012345678901234567890123456789012345678901234.com"),

	YES(HOSTPORT, "h"), YES(HOSTPORT, "h:1"), YES(HOSTPORT, "h:65535"), YES(HOSTPORT, "[::1]"),
	YES(HOSTPORT, "[fd00::1]:6443"), YES(HOSTPORT, "127.0.0.1:5000"),
	NO(HOSTPORT, "h:0"), NO(HOSTPORT, "h:65536"), NO(HOSTPORT, "h:"), NO(HOSTPORT, "h:x"),
	NO(HOSTPORT, "h:000443"), NO(HOSTPORT, "::1"), NO(HOSTPORT, "[::1"), NO(HOSTPORT, "[::1]x"),
	NO(HOSTPORT, "[nothex]"), NO(HOSTPORT, "[::1]:"), NO(HOSTPORT, ":443"),
};

static bool grammar(const struct name_case *c)
{
	struct og_str s = og_str_make(c->s, strlen(c->s));
	struct names_hostport hp;

	switch (c->kind) {
	case LABEL:
		return names_dns1123_label(s);
	case SUBDOMAIN:
		return names_dns1123_subdomain(s);
	case REPO:
		return names_oci_repository(s);
	case TAG:
		return names_oci_tag(s);
	case DIGEST:
		return names_oci_digest(s);
	case HOST:
		return names_host(s);
	case HOSTPORT:
		return names_hostport(s, &hp) == 0;
	}
	return false;
}

/* What the proxy answers for the name in its place in a request-target. */
static bool via_route(const struct name_case *c)
{
	static const char *const fmt[] = {
		[LABEL] = "/v2/namespaces/%s/connectors/c/r/tags/list",
		[SUBDOMAIN] = "/v2/namespaces/ns/connectors/%s/r/tags/list",
		[REPO] = PFX "%s/tags/list",
		[TAG] = PFX "r/manifests/%s",
		[DIGEST] = PFX "r/blobs/%s",
	};
	char target[1024];
	struct route rt;

	snprintf(target, sizeof(target), fmt[c->kind], c->s);
	return route_parse(target, strlen(target), &rt) == ROUTE_OK;
}

/* What the webhook and credential provider read in an image reference. */
static bool via_reference(const struct name_case *c)
{
	static const char *const fmt[] = {
		[REPO] = "reg.io/%s", [TAG] = "reg.io/r:%s", [DIGEST] = "reg.io/r@%s",
		[HOSTPORT] = "%s/r",
	};
	char ref[1024], err[300];
	struct k8s_reference r;
	int rc;

	snprintf(ref, sizeof(ref), fmt[c->kind], c->s);
	rc = k8s_reference_parse(ref, strlen(ref), &r, err, sizeof(err));
	k8s_reference_free(&r);
	return rc == 0;
}

static void check_one(const struct name_case *c, const char *who, bool got)
{
	if (got == c->ok)
		return;
	fprintf(stderr, "test_names.c:%d: %s \"%s\": %s, expected %s\n", c->line, who, c->s,
		got ? "accepted" : "refused", c->ok ? "accepted" : "refused");
	check_failures++;
}

int main(void)
{
	for (size_t i = 0; i < OG_ARRAY_LEN(cases); i++) {
		const struct name_case *c = &cases[i];

		check_one(c, "grammar", grammar(c));
		if (c->kind <= DIGEST && c->s[0] && !strchr(c->s, '/'))
			check_one(c, "route", via_route(c));
		if (c->kind == REPO || c->kind == TAG || c->kind == DIGEST)
			check_one(c, "reference", via_reference(c));
		/* a reference only reads host[:port] as one when it has a dot,
		 * a colon or is "localhost"; "h" would be a Docker Hub path */
		if (c->kind == HOSTPORT && c->s[0] && (strchr(c->s, '.') || strchr(c->s, ':')))
			check_one(c, "reference", via_reference(c));
	}
	/* a manifest reference that is neither tag nor digest: 404 */
	struct route rt;
	const char *t = PFX "r/manifests/sha256:abc";
	CHECK_INT(route_parse(t, strlen(t), &rt), ROUTE_E_REFERENCE);
	CHECK_INT(route_error_status(ROUTE_E_REFERENCE), 404);
	CHECK_STR(route_error_code(ROUTE_E_REFERENCE), "MANIFEST_UNKNOWN");
	t = PFX "r/manifests/" "SHA256:" HEX64;
	CHECK_INT(route_parse(t, strlen(t), &rt), ROUTE_E_REFERENCE);
	if (check_failures)
		fprintf(stderr, "%d check(s) failed\n", check_failures);
	return check_failures ? 1 : 0;
}
