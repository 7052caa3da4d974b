/* Image reference parsing, host matching and rewriting (k8s/reference.h). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "k8s/reference.h"

struct ok_case {
	const char *in;
	const char *domain, *host;
	unsigned port;
	const char *path, *tag, *digest;
};

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct ok_case ok_cases[] = {
	{ "nginx", "docker.io", "docker.io", 0, "library/nginx", NULL, NULL },
	{ "nginx:1.25", "docker.io", "docker.io", 0, "library/nginx", "1.25", NULL },
	{ "bitnami/redis:7", "docker.io", "docker.io", 0, "bitnami/redis", "7", NULL },
	{ "docker.io/nginx", "docker.io", "docker.io", 0, "library/nginx", NULL, NULL },
	{ "index.docker.io/library/nginx:latest", "docker.io", "index.docker.io", 0,
	  "library/nginx", "latest", NULL },
	{ "harbor.example.com/app:v1", "harbor.example.com", "harbor.example.com", 0, "app", "v1",
	  NULL },
	{ "harbor.example.com:8443/team/app", "harbor.example.com:8443", "harbor.example.com",
	  8443, "team/app", NULL, NULL },
	{ "localhost/app", "localhost", "localhost", 0, "app", NULL, NULL },
	{ "localhost:5000/a/b/c:t", "localhost:5000", "localhost", 5000, "a/b/c", "t", NULL },
	{ "localhost:5000", "docker.io", "docker.io", 0, "library/localhost", "5000", NULL },
	{ "127.0.0.1:5000/app@" D64, "127.0.0.1:5000", "127.0.0.1", 5000, "app", NULL, D64 },
	{ "[::1]:5000/app:v1", "[::1]:5000", "::1", 5000, "app", "v1", NULL },
	{ "[fe80::1]/app", "[fe80::1]", "fe80::1", 0, "app", NULL, NULL },
	{ "Registry.Example.COM/app", "Registry.Example.COM", "registry.example.com", 0, "app",
	  NULL, NULL },
	{ "MyHost/app", "MyHost", "myhost", 0, "app", NULL, NULL },
	{ "reg.io/app:v1@" D64, "reg.io", "reg.io", 0, "app", "v1", D64 },
	{ "reg.io/a.b_c__d---e/f-g", "reg.io", "reg.io", 0, "a.b_c__d---e/f-g", NULL, NULL },
	{ "reg.io/app:V1.2_rc-3", "reg.io", "reg.io", 0, "app", "V1.2_rc-3", NULL },
	{ "reg.io/app:_x", "reg.io", "reg.io", 0, "app", "_x", NULL },
	{ "reg.io/app@sha512:"
	  "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
	  "000000000000000000000000000000000000000000000000", "reg.io", "reg.io", 0, "app", NULL,
	  "sha512:00000000000000000000000000000000000000000000000000000000000000000000000000000000"
	  "000000000000000000000000000000000000000000000000" },
	{ "reg.io/app@multihash+base58:0123456789ABCDEF0123456789abcdef", "reg.io", "reg.io", 0,
	  "app", NULL, "multihash+base58:0123456789ABCDEF0123456789abcdef" },
	{ "my-reg.example.com:443/x", "my-reg.example.com:443", "my-reg.example.com", 443, "x",
	  NULL, NULL },
};

static void check_opt(const char *got, const char *want, const char *what, const char *in)
{
	if ((got == NULL) != (want == NULL) || (got && strcmp(got, want) != 0)) {
		fprintf(stderr, "%s:%d: \"%s\": %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__,
			in, what, got ? got : "(null)", want ? want : "(null)");
		check_failures++;
	}
}

static void test_ok(void)
{
	for (size_t i = 0; i < OG_ARRAY_LEN(ok_cases); i++) {
		const struct ok_case *c = &ok_cases[i];
		struct k8s_reference r;
		char err[256] = "";

		if (k8s_reference_parse(c->in, strlen(c->in), &r, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s:%d: \"%s\" refused: %s\n", __FILE__, __LINE__, c->in, err);
			check_failures++;
			continue;
		}
		check_opt(r.domain, c->domain, "domain", c->in);
		check_opt(r.host, c->host, "host", c->in);
		check_opt(r.path, c->path, "path", c->in);
		check_opt(r.tag, c->tag, "tag", c->in);
		check_opt(r.digest, c->digest, "digest", c->in);
		CHECK_INT(r.port, c->port);
		k8s_reference_free(&r);
	}
}

struct bad_case {
	const char *in;
	const char *err; /* a substring of the message */
};

static const struct bad_case bad_cases[] = {
	{ "", "empty" },
	{ "Nginx", "must be lowercase" },
	{ "reg.io/App", "must be lowercase" },
	{ "reg.io/team/MyApp:v1", "must be lowercase" },
	{ "reg.io/app:", "bad tag" },
	{ "reg.io/app:-x", "bad tag" },
	{ "reg.io/app:a/b", "bad repository path" },
	{ "reg.io/app:v1:v2", "bad repository path" },
	{ "reg.io/app@", "bad digest" },
	{ "reg.io/app@sha256:abc", "bad digest" },
	{ "reg.io/app@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	  "bad digest" },
	{ "reg.io/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
	  "bad digest" },
	{ "reg.io/app@" D64 "@" D64, "bad digest" },
	{ "reg.io/app@SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	  "bad digest" },
	{ "reg.io/app@sha+:0123456789abcdef0123456789abcdef", "bad digest" },
	{ "reg.io//app", "bad repository path" },
	{ "reg.io/app/", "bad repository path" },
	{ "reg.io/", "repository name is empty" },
	{ "reg.io/-app", "bad repository path" },
	{ "reg.io/app-", "bad repository path" },
	{ "reg.io/a___b", "bad repository path" },
	{ "reg.io/a..b", "bad repository path" },
	{ "reg.io/a b", "bad repository path" },
	{ "-reg.io/app", "bad registry host" },
	{ "reg-.io/app", "bad registry host" },
	{ "reg..io/app", "bad registry host" },
	{ "reg.io:/app", "bad registry host" },
	{ "reg.io:0/app", "bad registry host" },
	{ "reg.io:65536/app", "bad registry host" },
	{ "reg.io:12a/app", "bad registry host" },
	{ "reg_x.io/app", "bad registry host" },
	{ "[::1/app", "bad registry host" },
	{ "[zz::1]/app", "bad registry host" },
	{ "[::1]x/app", "bad registry host" },
	{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "image ID" },
	{ "https://reg.io/app", "bad" },
	{ ":tag", "repository name is empty" },
	{ "@" D64, "repository name is empty" },
};

/* A NUL byte (a JSON "\u0000") is no separator in a digest algorithm: the
 * fuzzer found "sha2\0x..." accepted, and the rewritten reference then cut
 * short at the NUL. */
static void test_nul_in_digest(void)
{
	static const char in[] = "reg.io/app@sha2\0x:0123456789abcdef0123456789abcdef";
	struct k8s_reference r;
	char err[256] = "";

	CHECK(k8s_reference_parse(in, sizeof(in) - 1, &r, err, sizeof(err)) == -1);
	CHECK(strstr(err, "bad digest") != NULL);
	k8s_reference_free(&r);
}

static void test_bad(void)
{
	for (size_t i = 0; i < OG_ARRAY_LEN(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct k8s_reference r;
		char err[256] = "";

		if (k8s_reference_parse(c->in, strlen(c->in), &r, err, sizeof(err)) == 0) {
			fprintf(stderr, "%s:%d: \"%s\" accepted (path %s)\n", __FILE__, __LINE__, c->in,
				r.path);
			check_failures++;
		} else if (!strstr(err, c->err)) {
			fprintf(stderr, "%s:%d: \"%s\": message \"%s\" lacks \"%s\"\n", __FILE__,
				__LINE__, c->in, err, c->err);
			check_failures++;
		}
		CHECK(r.path == NULL && r.domain == NULL && r.host == NULL);
		k8s_reference_free(&r);
	}
}

static void test_nul_and_length(void)
{
	struct k8s_reference r;
	char err[256];
	char name[300];

	CHECK_INT(k8s_reference_parse("reg.io/a\0b", 10, &r, err, sizeof(err)), -1);
	k8s_reference_free(&r);
	/* 255 characters in all is the limit, "docker.io/library/" included. */
	memset(name, 'a', sizeof(name));
	name[255 - 18] = '\0';
	CHECK_INT(k8s_reference_parse(name, strlen(name), &r, err, sizeof(err)), 0);
	CHECK_INT(strlen(r.path), 255 - 10);
	k8s_reference_free(&r);
	name[255 - 18] = 'a';
	name[256 - 18] = '\0';
	CHECK_INT(k8s_reference_parse(name, strlen(name), &r, err, sizeof(err)), -1);
	CHECK(strstr(err, "longer than 255") != NULL);
	k8s_reference_free(&r);
	/* Tags of 128 characters are the limit. */
	memcpy(name, "r.io/a:", 7);
	memset(name + 7, 't', 128);
	name[7 + 128] = '\0';
	CHECK_INT(k8s_reference_parse(name, strlen(name), &r, err, sizeof(err)), 0);
	k8s_reference_free(&r);
	name[7 + 128] = 't';
	name[7 + 129] = '\0';
	CHECK_INT(k8s_reference_parse(name, strlen(name), &r, err, sizeof(err)), -1);
	k8s_reference_free(&r);
}

struct match_case {
	const char *image;
	const char *host;
	unsigned port;
	bool https;
	bool match;
};

static const struct match_case match_cases[] = {
	{ "harbor.example.com/app:v1", "harbor.example.com", 443, true, true },
	{ "HARBOR.example.com/app:v1", "harbor.example.com", 443, true, true },
	{ "harbor.example.com:443/app", "harbor.example.com", 443, true, true },
	{ "harbor.example.com:8443/app", "harbor.example.com", 443, true, false },
	{ "harbor.example.com/app", "harbor.example.com", 8443, true, false },
	{ "harbor.example.com:8443/app", "harbor.example.com", 8443, true, true },
	{ "harbor.example.com/app", "harbor.example.com", 80, false, true },
	{ "harbor.example.com/app", "other.example.com", 443, true, false },
	{ "example.com/app", "harbor.example.com", 443, true, false },
	{ "nginx", "docker.io", 443, true, true },
	{ "nginx", "index.docker.io", 443, true, true },
	{ "nginx", "registry-1.docker.io", 443, true, true },
	{ "docker.io/library/nginx", "registry-1.docker.io", 443, true, true },
	{ "index.docker.io/x/y", "docker.io", 443, true, true },
	{ "nginx", "harbor.example.com", 443, true, false },
	{ "localhost:5000/app", "localhost", 5000, false, true },
	{ "127.0.0.1:5000/app", "127.0.0.1", 5000, true, true },
	{ "[::1]:5000/app", "::1", 5000, true, true },
};

static void test_match(void)
{
	for (size_t i = 0; i < OG_ARRAY_LEN(match_cases); i++) {
		const struct match_case *c = &match_cases[i];
		struct k8s_reference r;
		char err[256];

		if (k8s_reference_parse(c->image, strlen(c->image), &r, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s:%d: \"%s\" refused: %s\n", __FILE__, __LINE__, c->image, err);
			check_failures++;
			continue;
		}
		if (k8s_reference_on_registry(&r, c->host, (uint16_t)c->port, c->https) != c->match) {
			fprintf(stderr, "%s:%d: \"%s\" on %s:%u: expected %s\n", __FILE__, __LINE__,
				c->image, c->host, c->port, c->match ? "a match" : "no match");
			check_failures++;
		}
		k8s_reference_free(&r);
	}
}

static void test_rewrite(void)
{
	static const char *const cases[][2] = {
		{ "nginx", "P/namespaces/a/connectors/b/library/nginx" },
		{ "nginx:1", "P/namespaces/a/connectors/b/library/nginx:1" },
		{ "reg.io:5000/x/y:v@" D64, "P/namespaces/a/connectors/b/x/y:v@" D64 },
		{ "reg.io/x@" D64, "P/namespaces/a/connectors/b/x@" D64 },
	};
	char host[32];

	for (size_t i = 0; i < OG_ARRAY_LEN(cases); i++) {
		struct k8s_reference r;
		char err[256], *s;

		CHECK_INT(k8s_reference_parse(cases[i][0], strlen(cases[i][0]), &r, err, sizeof(err)), 0);
		s = k8s_reference_rewrite(&r, "P/namespaces/a/connectors/b");
		CHECK_MEM_STR(s, strlen(s), cases[i][1]);
		free(s);
		k8s_reference_free(&r);
	}
	CHECK_INT(k8s_reference_canonical_host("Index.Docker.IO", host, sizeof(host)), 0);
	CHECK_MEM_STR(host, strlen(host), "docker.io");
	CHECK_INT(k8s_reference_canonical_host("Reg.IO", host, sizeof(host)), 0);
	CHECK_MEM_STR(host, strlen(host), "reg.io");
	CHECK_INT(k8s_reference_canonical_host("0123456789", host, 10), -1);
}

int main(void)
{
	test_ok();
	test_bad();
	test_nul_in_digest();
	test_nul_and_length();
	test_match();
	test_rewrite();
	CHECK_DONE();
}
