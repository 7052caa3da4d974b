/* Resolving Location values against the request URL, and query
 * component decoding. */
#include <stdlib.h>
#include <string.h>

#include "test/unit/check.h"
#include "util/url.h"

static void resolve(const char *ref, int want_rc, bool https, const char *host, unsigned port,
		    const char *target)
{
	struct url base = { .https = true, .host = (char *)"reg.example.com", .port = 443,
			    .target = (char *)"/v2/a/b/blobs/sha256:abc?x=1" };
	struct url out;
	int rc = url_resolve(&base, og_str_make(ref, strlen(ref)), &out);

	CHECK_INT(rc, want_rc);
	if (rc != 0 || want_rc != 0)
		return;
	CHECK_INT(out.https, https);
	CHECK(strcmp(out.host, host) == 0);
	CHECK_INT(out.port, port);
	if (strcmp(out.target, target) != 0) {
		fprintf(stderr, "resolve(%s): target %s, expected %s\n", ref, out.target, target);
		check_failures++;
	}
	url_free(&out);
}

/* The Host header both clients send: default port left out, IPv6 in brackets. */
static void host_header(const char *host, uint16_t port, bool https, const char *want)
{
	char *h = url_host_header(host, port, https);

	CHECK_STR(h, want);
	free(h);
}

int main(void)
{
	host_header("reg.example.com", 443, true, "reg.example.com");
	host_header("reg.example.com", 80, true, "reg.example.com:80");
	host_header("reg.example.com", 80, false, "reg.example.com");
	host_header("reg.example.com", 5000, false, "reg.example.com:5000");
	host_header("::1", 443, true, "[::1]");
	host_header("::1", 6443, true, "[::1]:6443");
	host_header("fe80::1", 80, false, "[fe80::1]");
	resolve("https://s3.amazonaws.com/bucket/blob?X-Amz-Signature=1", 0, true, "s3.amazonaws.com", 443,
		"/bucket/blob?X-Amz-Signature=1");
	resolve("http://cdn:8080/x", 0, false, "cdn", 8080, "/x");
	resolve("//cdn.example.com/y", 0, true, "cdn.example.com", 443, "/y");
	resolve("/v2/a/b/blobs/uploads/u?_state=s", 0, true, "reg.example.com", 443,
		"/v2/a/b/blobs/uploads/u?_state=s");
	resolve("other", 0, true, "reg.example.com", 443, "/v2/a/b/blobs/other");
	resolve("?y=2", 0, true, "reg.example.com", 443, "/v2/a/b/blobs/sha256:abc?y=2");
	resolve("/p#frag", 0, true, "reg.example.com", 443, "/p");
	resolve("../x", 0, true, "reg.example.com", 443, "/v2/a/b/x");
	resolve("../../../../_blobstore/sha256/ab?s=1", 0, true, "reg.example.com", 443,
		"/_blobstore/sha256/ab?s=1");
	resolve("../../../../../../../x", 0, true, "reg.example.com", 443, "/x");
	resolve("/a/./b/../c/.", 0, true, "reg.example.com", 443, "/a/c/");
	resolve("./y?q=../z", 0, true, "reg.example.com", 443, "/v2/a/b/blobs/y?q=../z");
	/* absolute and network-path references lose their dot segments too */
	resolve("https://reg.example.com/v2/../admin?x=/../y", 0, true, "reg.example.com", 443,
		"/admin?x=/../y");
	resolve("https://reg.example.com/v2/a/./b/../../../../etc", 0, true, "reg.example.com", 443,
		"/etc");
	resolve("//cdn.example.com/a/b/../c/./d", 0, true, "cdn.example.com", 443, "/a/c/d");
	resolve("http://cdn:81/..", 0, false, "cdn", 81, "/");
	resolve("/a b", -1, false, NULL, 0, NULL);
	resolve("ftp://x/y", -1, false, NULL, 0, NULL);
	resolve("https://user:pw@host/", -1, false, NULL, 0, NULL);

	char out[64];
	CHECK_INT(url_decode_component("a%2Fb%3a", 8, out, sizeof(out)), 4);
	CHECK(strcmp(out, "a/b:") == 0);
	CHECK_INT(url_decode_component("a%2", 3, out, sizeof(out)), -1);
	CHECK_INT(url_decode_component("%zz", 3, out, sizeof(out)), -1);
	CHECK_INT(url_decode_component("%00", 3, out, sizeof(out)), -1);
	CHECK_INT(url_decode_component("abcd", 4, out, 4), -1);
	CHECK_DONE();
}
