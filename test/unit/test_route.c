#include "proxy/route.h"

#include <stdlib.h>
#include <string.h>

#include "test/unit/check.h"

#define HEX64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define D256 "sha256:" HEX64
#define HEX128 HEX64 HEX64
#define D512 "sha512:" HEX128
#define PFX "/v2/namespaces/ns/connectors/c/"

struct route_case {
	int line;
	const char *target;
	enum route_error err;
	/* the rest only when err == ROUTE_OK */
	enum route_kind kind;
	const char *ns, *connector, *repo, *ref;
	bool is_digest;
	const char *query;
	const char *upstream; /* "/v2/" + target[upstream_off..] */
};

#define OK(t, k, ns, c, repo, ref, dig, q, up) \
	{ __LINE__, t, ROUTE_OK, k, ns, c, repo, ref, dig, q, up }
#define ERR(t, e) { __LINE__, t, e, ROUTE_BASE, "", "", "", "", false, "", "" }

static const struct route_case route_cases[] = {
	/* the version check */
	OK("/v2/", ROUTE_BASE, "", "", "", "", false, "", "/v2/"),
	OK("/v2", ROUTE_BASE, "", "", "", "", false, "", "/v2/"),
	OK("/v2/?x=1", ROUTE_BASE, "", "", "", "", false, "x=1", "/v2/"),

	/* manifests */
	OK(PFX "library/nginx/manifests/latest", ROUTE_MANIFEST, "ns", "c",
	   "library/nginx", "latest", false, "", "/v2/library/nginx/manifests/latest"),
	OK("/v2/namespaces/team-a/connectors/harbor.example-1/a/b/c/d/manifests/v1.2.3",
	   ROUTE_MANIFEST, "team-a", "harbor.example-1", "a/b/c/d", "v1.2.3", false,
	   "", "/v2/a/b/c/d/manifests/v1.2.3"),
	OK(PFX "oci-connector-demo/manifests/" D256, ROUTE_MANIFEST, "ns", "c",
	   "oci-connector-demo", D256, true, "", "/v2/oci-connector-demo/manifests/" D256),
	OK(PFX "r/manifests/" D512, ROUTE_MANIFEST, "ns", "c", "r", D512, true, "",
	   "/v2/r/manifests/" D512),
	OK(PFX "r/manifests/_Latest.1-x", ROUTE_MANIFEST, "ns", "c", "r",
	   "_Latest.1-x", false, "", "/v2/r/manifests/_Latest.1-x"),
	OK(PFX "my__repo/a.b/c-d---e/f_g/manifests/1", ROUTE_MANIFEST, "ns", "c",
	   "my__repo/a.b/c-d---e/f_g", "1", false, "",
	   "/v2/my__repo/a.b/c-d---e/f_g/manifests/1"),
	/* a query on a manifest is kept but not an error */
	OK(PFX "r/manifests/latest?foo=bar", ROUTE_MANIFEST, "ns", "c", "r",
	   "latest", false, "foo=bar", "/v2/r/manifests/latest?foo=bar"),
	/* repositories whose components look like keywords */
	OK(PFX "a/blobs/manifests/latest", ROUTE_MANIFEST, "ns", "c", "a/blobs",
	   "latest", false, "", "/v2/a/blobs/manifests/latest"),
	OK(PFX "manifests/manifests/manifests", ROUTE_MANIFEST, "ns", "c",
	   "manifests", "manifests", false, "", "/v2/manifests/manifests/manifests"),
	OK(PFX "a/blobs/uploads/x/manifests/latest", ROUTE_MANIFEST, "ns", "c",
	   "a/blobs/uploads/x", "latest", false, "",
	   "/v2/a/blobs/uploads/x/manifests/latest"),
	OK(PFX "a/tags/list/manifests/list", ROUTE_MANIFEST, "ns", "c",
	   "a/tags/list", "list", false, "", "/v2/a/tags/list/manifests/list"),

	/* blobs */
	OK(PFX "library/nginx/blobs/" D256, ROUTE_BLOB, "ns", "c", "library/nginx",
	   D256, true, "", "/v2/library/nginx/blobs/" D256),
	OK(PFX "a/manifests/blobs/" D256, ROUTE_BLOB, "ns", "c", "a/manifests",
	   D256, true, "", "/v2/a/manifests/blobs/" D256),
	OK(PFX "r/blobs/multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
	   ROUTE_BLOB, "ns", "c", "r",
	   "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", true, "",
	   "/v2/r/blobs/multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"),

	/* tags/list */
	OK(PFX "library/nginx/tags/list", ROUTE_TAGS_LIST, "ns", "c",
	   "library/nginx", "", false, "", "/v2/library/nginx/tags/list"),
	OK(PFX "library/nginx/tags/list?n=10&last=v1.0", ROUTE_TAGS_LIST, "ns", "c",
	   "library/nginx", "", false, "n=10&last=v1.0",
	   "/v2/library/nginx/tags/list?n=10&last=v1.0"),
	OK(PFX "r/tags/list?", ROUTE_TAGS_LIST, "ns", "c", "r", "", false, "",
	   "/v2/r/tags/list?"),
	OK(PFX "a/tags/tags/list", ROUTE_TAGS_LIST, "ns", "c", "a/tags", "", false,
	   "", "/v2/a/tags/tags/list"),

	/* referrers */
	OK(PFX "r/referrers/" D256, ROUTE_REFERRERS, "ns", "c", "r", D256, true, "",
	   "/v2/r/referrers/" D256),
	OK(PFX "r/referrers/" D256 "?artifactType=application/vnd.example.sbom%2Bjson",
	   ROUTE_REFERRERS, "ns", "c", "r", D256, true,
	   "artifactType=application/vnd.example.sbom%2Bjson",
	   "/v2/r/referrers/" D256 "?artifactType=application/vnd.example.sbom%2Bjson"),

	/* uploads */
	OK(PFX "library/nginx/blobs/uploads/", ROUTE_BLOB_UPLOAD, "ns", "c",
	   "library/nginx", "", false, "", "/v2/library/nginx/blobs/uploads/"),
	OK(PFX "r/blobs/uploads", ROUTE_BLOB_UPLOAD, "ns", "c", "r", "", false, "",
	   "/v2/r/blobs/uploads"),
	OK(PFX "r/blobs/uploads/3f1c-77a0_b?_state=abc=&digest=" D256,
	   ROUTE_BLOB_UPLOAD, "ns", "c", "r", "3f1c-77a0_b", false,
	   "_state=abc=&digest=" D256,
	   "/v2/r/blobs/uploads/3f1c-77a0_b?_state=abc=&digest=" D256),
	OK(PFX "a/blobs/blobs/uploads/x/y", ROUTE_BLOB_UPLOAD, "ns", "c", "a/blobs",
	   "x/y", false, "", "/v2/a/blobs/blobs/uploads/x/y"),
	OK(PFX "a/blobs/uploads/b/blobs/uploads/", ROUTE_BLOB_UPLOAD, "ns", "c",
	   "a/blobs/uploads/b", "", false, "", "/v2/a/blobs/uploads/b/blobs/uploads/"),

	/* namespace: DNS-1123 label */
	ERR("/v2/namespaces/NS/connectors/c/library/nginx/manifests/latest",
	    ROUTE_E_NAMESPACE),
	ERR("/v2/namespaces/-ns/connectors/c/r/manifests/latest", ROUTE_E_NAMESPACE),
	ERR("/v2/namespaces/ns-/connectors/c/r/manifests/latest", ROUTE_E_NAMESPACE),
	ERR("/v2/namespaces/a.b/connectors/c/r/manifests/latest", ROUTE_E_NAMESPACE),
	ERR("/v2/namespaces/a_b/connectors/c/r/manifests/latest", ROUTE_E_NAMESPACE),
	ERR("/v2/namespaces/a:b/connectors/c/r/manifests/latest", ROUTE_E_NAMESPACE),
	/* namespace is checked before connector and repository */
	ERR("/v2/namespaces/NS/connectors/C/Repo/manifests/-x", ROUTE_E_NAMESPACE),

	/* connector: DNS-1123 subdomain */
	ERR("/v2/namespaces/ns/connectors/Harbor/r/manifests/latest", ROUTE_E_CONNECTOR),
	ERR("/v2/namespaces/ns/connectors/a..b/r/manifests/latest", ROUTE_E_CONNECTOR),
	ERR("/v2/namespaces/ns/connectors/a.-b/r/manifests/latest", ROUTE_E_CONNECTOR),
	ERR("/v2/namespaces/ns/connectors/.a/r/manifests/latest", ROUTE_E_CONNECTOR),
	ERR("/v2/namespaces/ns/connectors/a_b/r/manifests/latest", ROUTE_E_CONNECTOR),
	ERR("/v2/namespaces/ns/connectors/C/Repo/manifests/-x", ROUTE_E_CONNECTOR),

	/* repository: distribution name grammar */
	ERR(PFX "Library/nginx/manifests/latest", ROUTE_E_NAME),
	ERR(PFX "a___b/manifests/latest", ROUTE_E_NAME),
	ERR(PFX "a_-b/manifests/latest", ROUTE_E_NAME),
	ERR(PFX "a..b/manifests/latest", ROUTE_E_NAME),
	ERR(PFX "-a/manifests/latest", ROUTE_E_NAME),
	ERR(PFX "a-/manifests/latest", ROUTE_E_NAME),
	ERR(PFX "a:b/manifests/latest", ROUTE_E_NAME),
	ERR(PFX "a+b/tags/list", ROUTE_E_NAME),
	ERR(PFX "Repo/manifests/-x", ROUTE_E_NAME),
	ERR(PFX "R/blobs/uploads/", ROUTE_E_NAME),

	/* manifest reference */
	ERR(PFX "r/manifests/-latest", ROUTE_E_REFERENCE),
	ERR(PFX "r/manifests/.latest", ROUTE_E_REFERENCE),
	ERR(PFX "r/manifests/la+test", ROUTE_E_REFERENCE),
	/* neither tag nor digest: a manifest that cannot exist (404) */
	ERR(PFX "r/manifests/sha256:abc", ROUTE_E_REFERENCE),
	ERR(PFX "r/manifests/sha256:" HEX64 "0", ROUTE_E_REFERENCE),

	/* blob and referrers digests */
	ERR(PFX "r/blobs/latest", ROUTE_E_DIGEST),
	ERR(PFX "r/blobs/sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
	    ROUTE_E_DIGEST),
	ERR(PFX "r/blobs/SHA256:" HEX64, ROUTE_E_DIGEST),
	ERR(PFX "r/blobs/sha512:" HEX64, ROUTE_E_DIGEST),
	ERR(PFX "r/blobs/md5:", ROUTE_E_DIGEST),
	ERR(PFX "r/blobs/:abc", ROUTE_E_DIGEST),
	ERR(PFX "r/blobs/a++b:abc", ROUTE_E_DIGEST),
	ERR(PFX "r/blobs/sha256:" HEX64 ":x", ROUTE_E_DIGEST),
	ERR(PFX "r/referrers/sha256:short", ROUTE_E_DIGEST),
	ERR(PFX "r/referrers/latest?artifactType=x", ROUTE_E_DIGEST),

	/* path syntax */
	ERR("", ROUTE_E_BAD_PATH),
	ERR("*", ROUTE_E_BAD_PATH),
	ERR("http://proxy/v2/", ROUTE_E_BAD_PATH),
	ERR("v2/", ROUTE_E_BAD_PATH),
	ERR(PFX "library/../nginx/manifests/latest", ROUTE_E_BAD_PATH),
	ERR("/v2/namespaces/ns/connectors/../c/r/manifests/latest", ROUTE_E_BAD_PATH),
	ERR(PFX "library/./nginx/manifests/latest", ROUTE_E_BAD_PATH),
	ERR(PFX "r/manifests/..", ROUTE_E_BAD_PATH),
	ERR("/v2/..", ROUTE_E_BAD_PATH),
	ERR(PFX "library%2Fnginx/manifests/latest", ROUTE_E_BAD_PATH),
	ERR("/v2/namespaces/ns%2Fconnectors/c/r/manifests/latest", ROUTE_E_BAD_PATH),
	ERR("/foo%20bar", ROUTE_E_BAD_PATH),
	ERR(PFX "library//nginx/manifests/latest", ROUTE_E_BAD_PATH),
	ERR("//v2/", ROUTE_E_BAD_PATH),
	ERR("/v2//", ROUTE_E_BAD_PATH),
	ERR(PFX "library\\nginx/manifests/latest", ROUTE_E_BAD_PATH),
	ERR(PFX "r/manifests/latest/", ROUTE_E_BAD_PATH),
	ERR(PFX "r/blobs/", ROUTE_E_BAD_PATH),
	ERR(PFX "r/referrers/", ROUTE_E_BAD_PATH),
	ERR(PFX "library/nginx/", ROUTE_E_BAD_PATH),
	ERR(PFX "r/manifests/lat@est", ROUTE_E_REFERENCE), /* grammar errors name the part */
	ERR(PFX "r/manifests/latest#frag", ROUTE_E_BAD_PATH),
	ERR(PFX "r/manifests/latest~1", ROUTE_E_REFERENCE),
	ERR(PFX "r/tags/list?n=1#x", ROUTE_E_BAD_PATH),
	ERR(PFX "r/tags/list?n=1\x7f", ROUTE_E_BAD_PATH),
	ERR(PFX "r/tags/list?n=\x80", ROUTE_E_BAD_PATH),

	/* not ours */
	ERR("/", ROUTE_E_NOT_FOUND),
	ERR("/favicon.ico", ROUTE_E_NOT_FOUND),
	ERR("/v3/", ROUTE_E_NOT_FOUND),
	ERR("/V2/", ROUTE_E_NOT_FOUND),
	ERR("/v2x", ROUTE_E_NOT_FOUND),
	ERR("/v2/_catalog", ROUTE_E_NOT_FOUND),
	ERR("/v2/library/nginx/manifests/latest", ROUTE_E_NOT_FOUND),
	ERR("/v2/namespaces", ROUTE_E_NOT_FOUND),
	ERR("/v2/namespaces/", ROUTE_E_NOT_FOUND),
	ERR("/v2/namespaces/ns", ROUTE_E_NOT_FOUND),
	ERR("/v2/namespaces/ns/connectors/c", ROUTE_E_NOT_FOUND),
	ERR("/v2/namespaces/ns/connectors/c/", ROUTE_E_NOT_FOUND),
	ERR("/v2/namespaces/ns/connector/c/r/manifests/latest", ROUTE_E_NOT_FOUND),
	ERR("/v2/Namespaces/ns/connectors/c/r/manifests/latest", ROUTE_E_NOT_FOUND),
	ERR(PFX "library/nginx", ROUTE_E_NOT_FOUND),
	ERR(PFX "manifests/latest", ROUTE_E_NOT_FOUND),
	ERR(PFX "tags/list", ROUTE_E_NOT_FOUND),
	ERR(PFX "r/tags/lists", ROUTE_E_NOT_FOUND),
	ERR(PFX "r/tags/list/x", ROUTE_E_NOT_FOUND),
	ERR(PFX "r/Manifests/latest", ROUTE_E_NOT_FOUND),
	ERR(PFX "r/blobs/uploadsx", ROUTE_E_DIGEST),
	ERR(PFX "r/blobs/uploadsx/", ROUTE_E_BAD_PATH),
};

static void route_fail(const struct route_case *c, const char *what,
		      struct og_str got, const char *want)
{
	fprintf(stderr, "test_route.c:%d: \"%s\": %s is \"%.*s\", expected \"%s\"\n",
		c->line, c->target, what, (int)got.n, got.p ? got.p : "", want);
	check_failures++;
}

static void route_check_str(const struct route_case *c, const char *what,
			    struct og_str got, const char *want)
{
	if (!og_str_eq(got, want))
		route_fail(c, what, got, want);
}

static void route_check_case(const struct route_case *c)
{
	struct route r;
	size_t len = strlen(c->target);
	enum route_error e = route_parse(c->target, len, &r);
	char up[1024];

	if (e != c->err) {
		fprintf(stderr, "test_route.c:%d: \"%s\": error %d, expected %d\n",
			c->line, c->target, (int)e, (int)c->err);
		check_failures++;
		return;
	}
	if (e != ROUTE_OK)
		return;
	if (r.kind != c->kind) {
		fprintf(stderr, "test_route.c:%d: \"%s\": kind %d, expected %d\n",
			c->line, c->target, (int)r.kind, (int)c->kind);
		check_failures++;
	}
	route_check_str(c, "ns", r.ns, c->ns);
	route_check_str(c, "connector", r.connector, c->connector);
	route_check_str(c, "repo", r.repo, c->repo);
	route_check_str(c, "ref", r.ref, c->ref);
	route_check_str(c, "query", r.query, c->query);
	if (r.ref_is_digest != c->is_digest) {
		fprintf(stderr, "test_route.c:%d: \"%s\": ref_is_digest %d\n",
			c->line, c->target, (int)r.ref_is_digest);
		check_failures++;
	}
	if (r.upstream_off > len) {
		fprintf(stderr, "test_route.c:%d: upstream_off %zu > %zu\n",
			c->line, r.upstream_off, len);
		check_failures++;
		return;
	}
	int n = snprintf(up, sizeof(up), "/v2/%.*s", (int)(len - r.upstream_off),
			 c->target + r.upstream_off);
	route_check_str(c, "upstream target", og_str_make(up, (size_t)n), c->upstream);
}

static char *repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);

	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

static enum route_error parse_fmt(const char *ns, const char *conn,
				  const char *repo, const char *tail)
{
	char buf[2048];
	struct route r;
	int n = snprintf(buf, sizeof(buf), "/v2/namespaces/%s/connectors/%s/%s/%s",
			 ns, conn, repo, tail);

	return route_parse(buf, (size_t)n, &r);
}

/* Each refused byte at every position of a long path (the path is checked
 * eight bytes at a time), and a path of the allowed bytes around them. */
static void test_refused_bytes_everywhere(void)
{
	const char *base = "/v2/namespaces/ns/connectors/c/library/nginx/manifests/latest";
	size_t n = strlen(base);
	char buf[128];
	struct route r;

	CHECK_INT(route_parse(base, n, &r), ROUTE_OK);
	for (const char *bad = "%\\;#"; *bad; bad++) {
		for (size_t pos = 1; pos < n; pos++) {
			memcpy(buf, base, n);
			buf[pos] = *bad;
			enum route_error e = route_parse(buf, n, &r);
			/* '#' and ';' may end the path at a parser that cuts there;
			 * whatever it says, it must not be OK */
			if (e == ROUTE_OK) {
				fprintf(stderr, "route_parse: '%c' at %zu accepted\n", *bad, pos);
				check_failures++;
			}
		}
	}
}

static void test_lengths(void)
{
	char *s63 = repeat('a', 63), *s64 = repeat('a', 64);
	char *s253 = repeat('b', 253), *s254 = repeat('b', 254);
	char *s255 = repeat('r', 255), *s256 = repeat('r', 256);
	char *t128 = repeat('t', 128), *t129 = repeat('t', 129);
	char tag128[200], tag129[200];

	snprintf(tag128, sizeof(tag128), "manifests/%s", t128);
	snprintf(tag129, sizeof(tag129), "manifests/%s", t129);
	CHECK_INT(parse_fmt(s63, "c", "r", "tags/list"), ROUTE_OK);
	CHECK_INT(parse_fmt(s64, "c", "r", "tags/list"), ROUTE_E_NAMESPACE);
	CHECK_INT(parse_fmt("ns", s253, "r", "tags/list"), ROUTE_OK);
	CHECK_INT(parse_fmt("ns", s254, "r", "tags/list"), ROUTE_E_CONNECTOR);
	CHECK_INT(parse_fmt("ns", "c", s255, "tags/list"), ROUTE_OK);
	CHECK_INT(parse_fmt("ns", "c", s256, "tags/list"), ROUTE_E_NAME);
	CHECK_INT(parse_fmt("ns", "c", "r", tag128), ROUTE_OK);
	CHECK_INT(parse_fmt("ns", "c", "r", tag129), ROUTE_E_REFERENCE);
	/* a subdomain part may exceed 63 as long as the whole fits in 253 */
	CHECK_INT(parse_fmt("ns", s64, "r", "tags/list"), ROUTE_OK);
	free(s63);
	free(s64);
	free(s253);
	free(s254);
	free(s255);
	free(s256);
	free(t128);
	free(t129);
}

static void test_errors(void)
{
	CHECK_INT(route_error_status(ROUTE_E_NOT_FOUND), 404);
	CHECK_INT(route_error_status(ROUTE_E_BAD_PATH), 400);
	CHECK_INT(route_error_status(ROUTE_E_NAMESPACE), 400);
	CHECK_INT(route_error_status(ROUTE_E_CONNECTOR), 400);
	CHECK_INT(route_error_status(ROUTE_E_NAME), 400);
	CHECK_INT(route_error_status(ROUTE_E_REFERENCE), 404);
	CHECK_INT(route_error_status(ROUTE_E_DIGEST), 400);
	CHECK(strcmp(route_error_code(ROUTE_E_NOT_FOUND), "NAME_UNKNOWN") == 0);
	CHECK(strcmp(route_error_code(ROUTE_E_BAD_PATH), "NAME_INVALID") == 0);
	CHECK(strcmp(route_error_code(ROUTE_E_NAMESPACE), "NAME_INVALID") == 0);
	CHECK(strcmp(route_error_code(ROUTE_E_CONNECTOR), "NAME_INVALID") == 0);
	CHECK(strcmp(route_error_code(ROUTE_E_NAME), "NAME_INVALID") == 0);
	CHECK(strcmp(route_error_code(ROUTE_E_REFERENCE), "MANIFEST_UNKNOWN") == 0);
	CHECK(strcmp(route_error_code(ROUTE_E_DIGEST), "DIGEST_INVALID") == 0);
	CHECK(strcmp(route_error_message(ROUTE_E_NOT_FOUND),
		     "no such route: expected /v2/namespaces/NS/connectors/NAME/REPO/...") == 0);
	CHECK(strncmp(route_error_message(ROUTE_E_NAMESPACE), "namespace is not valid", 22) == 0);
	CHECK(strncmp(route_error_message(ROUTE_E_CONNECTOR), "connector name is not valid", 27) == 0);
	CHECK(strncmp(route_error_message(ROUTE_E_NAME), "repository name is not valid", 28) == 0);
	CHECK(strstr(route_error_message(ROUTE_E_NAMESPACE), "DNS-1123 label") != NULL);
	CHECK(strstr(route_error_message(ROUTE_E_CONNECTOR), "DNS-1123 subdomain") != NULL);
	CHECK(strncmp(route_error_message(ROUTE_E_REFERENCE), "manifest unknown", 16) == 0);
	CHECK(strncmp(route_error_message(ROUTE_E_DIGEST), "digest is not valid", 19) == 0);
	CHECK(strncmp(route_error_message(ROUTE_E_BAD_PATH), "request path is not valid", 25) == 0);
}

static void check_link(int line, const char *in, const char *want)
{
	char out[512];
	ssize_t n = route_rewrite_link(og_str_make(in, strlen(in)), OG_STR_LIT("ns"),
				       OG_STR_LIT("my.conn"), out, sizeof(out));

	if (!want) {
		if (n != -1) {
			fprintf(stderr, "test_route.c:%d: link \"%s\" rewritten to \"%s\", expected -1\n",
				line, in, out);
			check_failures++;
		}
		return;
	}
	if (n < 0 || (size_t)n != strlen(want) || strcmp(out, want) != 0) {
		fprintf(stderr, "test_route.c:%d: link \"%s\" -> %zd \"%s\", expected \"%s\"\n",
			line, in, n, n < 0 ? "" : out, want);
		check_failures++;
	}
}

#define LINK(in, want) check_link(__LINE__, in, want)
#define NEWPFX "</v2/namespaces/ns/connectors/my.conn/"

static void test_links(void)
{
	LINK("</v2/library/nginx/tags/list?n=1&last=a>; rel=\"next\"",
	     NEWPFX "library/nginx/tags/list?n=1&last=a>; rel=\"next\"");
	LINK("<https://registry.example.com:5000/v2/library/nginx/tags/list?n=1&last=a>; rel=\"next\"",
	     NEWPFX "library/nginx/tags/list?n=1&last=a>; rel=\"next\"");
	LINK("<http://10.0.0.1/v2/r/tags/list?last=b>;rel=next",
	     NEWPFX "r/tags/list?last=b>;rel=next");
	LINK("<//cdn.example/v2/r/tags/list>; rel=\"next\"",
	     NEWPFX "r/tags/list>; rel=\"next\"");
	LINK("  </v2/r/referrers/" D256 "?artifactType=a%2Fb&n=2>; rel=\"next\"",
	     NEWPFX "r/referrers/" D256 "?artifactType=a%2Fb&n=2>; rel=\"next\"");
	LINK("</v2/r/tags/list>", NEWPFX "r/tags/list>");

	LINK("", NULL);
	LINK("/v2/r/tags/list; rel=\"next\"", NULL);
	LINK("<>; rel=\"next\"", NULL);
	LINK("</v2/>; rel=\"next\"", NULL);
	LINK("</v2>; rel=\"next\"", NULL);
	LINK("</v3/r/tags/list>; rel=\"next\"", NULL);
	LINK("<r/tags/list>; rel=\"next\"", NULL);
	LINK("<https://host>; rel=\"next\"", NULL);
	LINK("<https://host?x=/v2/>; rel=\"next\"", NULL);
	LINK("<ftp:/v2/r/tags/list>; rel=\"next\"", NULL);
	LINK("</v2/r/tags/list; rel=\"next\"", NULL);
	LINK("</v2/r/tags list>; rel=\"next\"", NULL);
	LINK("</v2/r/tags/list\r\nX-Evil: 1>; rel=\"next\"", NULL);
	LINK("</v2/r/tags/list>; rel=\"next\"\r\nX-Evil: 1", NULL);
	LINK("</v2/a/tags/list?n=1>; rel=\"next\", </v2/a/tags/list>; rel=\"first\"", NULL);

	/* capacity: the value plus its NUL must fit */
	const char *in = "</v2/r/tags/list>";
	const char *want = NEWPFX "r/tags/list>";
	size_t wl = strlen(want);
	char out[128];
	memset(out, 'X', sizeof(out));
	CHECK_INT(route_rewrite_link(og_str_make(in, strlen(in)), OG_STR_LIT("ns"),
				     OG_STR_LIT("my.conn"), out, wl), -1);
	CHECK_INT(route_rewrite_link(og_str_make(in, strlen(in)), OG_STR_LIT("ns"),
				     OG_STR_LIT("my.conn"), out, 10), -1);
	CHECK_INT(route_rewrite_link(og_str_make(in, strlen(in)), OG_STR_LIT("ns"),
				     OG_STR_LIT("my.conn"), NULL, 0), -1);
	CHECK_INT(route_rewrite_link(og_str_make(in, strlen(in)), OG_STR_LIT("ns"),
				     OG_STR_LIT("my.conn"), out, wl + 1), (long long)wl);
	CHECK_MEM_STR(out, wl, want);
	CHECK_INT(out[wl], '\0');
	CHECK_INT(out[wl + 1], 'X');
}

/* A rewritten pagination link must route back to the same repository. */
static void test_link_round_trip(void)
{
	const char *in = "<https://r.example/v2/team/app/tags/list?n=50&last=v9>; rel=\"next\"";
	char out[256];
	struct route r;
	ssize_t n = route_rewrite_link(og_str_make(in, strlen(in)), OG_STR_LIT("ns"),
				       OG_STR_LIT("c"), out, sizeof(out));

	CHECK(n > 0);
	if (n <= 0)
		return;
	const char *gt = strchr(out, '>');
	CHECK(gt != NULL);
	if (!gt)
		return;
	CHECK_INT(route_parse(out + 1, (size_t)(gt - out - 1), &r), ROUTE_OK);
	CHECK_INT(r.kind, ROUTE_TAGS_LIST);
	CHECK_MEM_STR(r.repo.p, r.repo.n, "team/app");
	CHECK_MEM_STR(r.query.p, r.query.n, "n=50&last=v9");
	CHECK_MEM_STR(r.ns.p, r.ns.n, "ns");
	CHECK_MEM_STR(r.connector.p, r.connector.n, "c");
}

/* Bytes after len must never be read. */
static void test_not_nul_terminated(void)
{
	const char *full = PFX "r/manifests/latestXYZ";
	struct route r;

	CHECK_INT(route_parse(full, strlen(full) - 3, &r), ROUTE_OK);
	CHECK_MEM_STR(r.ref.p, r.ref.n, "latest");
	CHECK_INT(route_parse(full, 3, &r), ROUTE_OK);
	CHECK_INT(r.kind, ROUTE_BASE);
	CHECK_INT(r.upstream_off, 3);
	CHECK_INT(route_parse(full, 2, &r), ROUTE_E_NOT_FOUND);
}

int main(void)
{
	for (size_t i = 0; i < OG_ARRAY_LEN(route_cases); i++)
		route_check_case(&route_cases[i]);
	test_refused_bytes_everywhere();
	test_lengths();
		test_errors();
	test_links();
	test_link_round_trip();
	test_not_nul_terminated();
	CHECK_DONE();
}
