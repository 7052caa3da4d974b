/* Unit tests of k8s/credprov: recorded CredentialProviderRequest /
 * CredentialProviderResponse pairs from test/unit/data/credprov (the
 * directory is the first argument), bad requests, and the helpers
 * (durations, --proxy, cacheDuration arithmetic).
 *
 * Recorded files: NAME.request.json + NAME.response.json (the exact output
 * at RECORDED_NOW with default options), NAME.bad.json (a request that must
 * be refused; the expected result and message are in the table below). */
#include "k8s/credprov.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "test/unit/check.h"
#include "util/json.h"
#include "util/xalloc.h"

/* The clock of the recorded requests: their tokens' exp claims are relative
 * to it. */
#define RECORDED_NOW 1700000000
#define PROXY "ocigate.example.com:5000"

static const char *data_dir;

static char *read_file(const char *name, size_t *len)
{
	return check_read_file(data_dir, name, len);
}

/* Runs k8s_credprov_respond on text; returns the output as a new string. */
static char *respond(const struct k8s_credprov_opts *o, const char *text, size_t len, int64_t now,
		     enum k8s_credprov_result *res, char *err, size_t err_cap)
{
	struct evbuffer *out = evbuffer_new();
	size_t n;
	char *s;

	err[0] = '\0';
	*res = k8s_credprov_respond(o, text, len, now, out, err, err_cap);
	n = evbuffer_get_length(out);
	s = x_malloc(n + 1);
	evbuffer_remove(out, s, n);
	s[n] = '\0';
	evbuffer_free(out);
	return s;
}

/* ---- recorded pairs ---- */

struct pair_case {
	const char *name;
	enum k8s_credprov_result res;
};

static const struct pair_case pairs[] = {
	{ "hour", K8S_CREDPROV_OK },
	{ "day_capped", K8S_CREDPROV_OK },
	{ "short", K8S_CREDPROV_OK },
	{ "within_margin", K8S_CREDPROV_OK },
	{ "expired", K8S_CREDPROV_OK_EXPIRED },
	{ "fraction_exp", K8S_CREDPROV_OK },
	{ "no_exp", K8S_CREDPROV_OK },
	{ "opaque_token", K8S_CREDPROV_OK },
	{ "no_annotations", K8S_CREDPROV_OK },
	{ "null_annotations", K8S_CREDPROV_OK },
	{ "unknown_field", K8S_CREDPROV_OK },
};

static void test_pair(const struct pair_case *c)
{
	struct k8s_credprov_opts o;
	enum k8s_credprov_result res;
	char name[256], err[512];
	size_t req_len = 0, want_len = 0;
	char *req, *want, *got;

	k8s_credprov_opts_init(&o, PROXY);
	snprintf(name, sizeof(name), "%s.request.json", c->name);
	req = read_file(name, &req_len);
	snprintf(name, sizeof(name), "%s.response.json", c->name);
	want = read_file(name, &want_len);
	if (!req || !want)
		goto out;
	got = respond(&o, req, req_len, RECORDED_NOW, &res, err, sizeof(err));
	if ((int)res != (int)c->res)
		fprintf(stderr, "case %s: %s\n", c->name, err);
	CHECK_INT(res, c->res);
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "case %s:\n got  %s want %s", c->name, got, want);
		check_failures++;
	}
	free(got);
out:
	free(req);
	free(want);
}

/* ---- bad requests ---- */

struct bad_case {
	const char *name;
	enum k8s_credprov_result res;
	const char *err; /* the message starts with this */
};

static const struct bad_case bads[] = {
	{ "missing_token", K8S_CREDPROV_NO_TOKEN,
	  "the request has no serviceAccountToken: give this provider tokenAttributes" },
	{ "empty_token", K8S_CREDPROV_NO_TOKEN, "the request has no serviceAccountToken" },
	{ "null_token", K8S_CREDPROV_NO_TOKEN, "the request has no serviceAccountToken" },
	{ "token_number", K8S_CREDPROV_MALFORMED, "serviceAccountToken must be a string (got number)" },
	{ "token_space", K8S_CREDPROV_MALFORMED,
	  "serviceAccountToken holds a space, control or non-ASCII character" },
	{ "token_newline", K8S_CREDPROV_MALFORMED,
	  "serviceAccountToken holds a space, control or non-ASCII character" },
	{ "token_nul", K8S_CREDPROV_MALFORMED, "serviceAccountToken holds a NUL character" },
	{ "v1beta1", K8S_CREDPROV_MALFORMED,
	  "apiVersion \"credentialprovider.kubelet.k8s.io/v1beta1\" is not supported (want "
	  "credentialprovider.kubelet.k8s.io/v1)" },
	{ "no_api_version", K8S_CREDPROV_MALFORMED, "apiVersion is missing or not a string" },
	{ "wrong_kind", K8S_CREDPROV_MALFORMED, "kind is not CredentialProviderRequest" },
	{ "no_image", K8S_CREDPROV_MALFORMED, "image is missing, empty or not a string" },
	{ "empty_image", K8S_CREDPROV_MALFORMED, "image is missing, empty or not a string" },
	{ "annotations_array", K8S_CREDPROV_MALFORMED,
	  "serviceAccountAnnotations must be an object (got array)" },
	{ "annotation_number", K8S_CREDPROV_MALFORMED,
	  "serviceAccountAnnotations values must be strings (got number)" },
	{ "not_json", K8S_CREDPROV_MALFORMED, "the request is not JSON: " },
	{ "truncated", K8S_CREDPROV_MALFORMED, "the request is not JSON: " },
	{ "array", K8S_CREDPROV_MALFORMED, "the request must be a JSON object (got array)" },
	{ "trailing_garbage", K8S_CREDPROV_MALFORMED, "the request is not JSON: " },
	{ "duplicate_token", K8S_CREDPROV_MALFORMED, "the request is not JSON: " },
	{ "empty", K8S_CREDPROV_MALFORMED, "the request is empty" },
};

static void test_bad(const struct bad_case *c)
{
	struct k8s_credprov_opts o;
	enum k8s_credprov_result res;
	char name[256], err[512];
	size_t len = 0;
	char *req, *got;

	k8s_credprov_opts_init(&o, PROXY);
	snprintf(name, sizeof(name), "%s.bad.json", c->name);
	req = read_file(name, &len);
	if (!req)
		return;
	got = respond(&o, req, len, RECORDED_NOW, &res, err, sizeof(err));
	CHECK_INT(res, c->res);
	CHECK_INT(strlen(got), 0); /* nothing written */
	if (strncmp(err, c->err, strlen(c->err)) != 0) {
		fprintf(stderr, "case %s: error \"%s\", expected it to start with \"%s\"\n",
			c->name, err, c->err);
		check_failures++;
	}
	free(got);
	free(req);
}

/* Every recorded file belongs to a case above: none is silently skipped. */
static bool known_file(const char *f)
{
	char name[256];

	for (size_t i = 0; i < OG_ARRAY_LEN(pairs); i++) {
		snprintf(name, sizeof(name), "%s.request.json", pairs[i].name);
		if (strcmp(f, name) == 0)
			return true;
		snprintf(name, sizeof(name), "%s.response.json", pairs[i].name);
		if (strcmp(f, name) == 0)
			return true;
	}
	for (size_t i = 0; i < OG_ARRAY_LEN(bads); i++) {
		snprintf(name, sizeof(name), "%s.bad.json", bads[i].name);
		if (strcmp(f, name) == 0)
			return true;
	}
	return false;
}

static void test_all_files_used(void)
{
	DIR *dir = opendir(data_dir);
	struct dirent *de;
	int n = 0;

	CHECK(dir != NULL);
	if (!dir)
		return;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		if (!known_file(de->d_name)) {
			fprintf(stderr, "%s/%s is not a case of test_credprov.c\n", data_dir, de->d_name);
			check_failures++;
		}
	}
	closedir(dir);
	CHECK_INT(n, 2 * OG_ARRAY_LEN(pairs) + OG_ARRAY_LEN(bads));
}

/* ---- options ---- */

static const char *const hour_token =
	"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDM2MDB9.c2ln"; /* exp 1700003600 */

static char *respond_token(const struct k8s_credprov_opts *o, const char *token, int64_t now,
			   enum k8s_credprov_result *res)
{
	char req[1024], err[512];

	snprintf(req, sizeof(req),
		 "{\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\","
		 "\"kind\":\"CredentialProviderRequest\",\"image\":\"x/y\","
		 "\"serviceAccountToken\":\"%s\"}", token);
	return respond(o, req, strlen(req), now, res, err, sizeof(err));
}

static void test_options(void)
{
	struct k8s_credprov_opts o;
	enum k8s_credprov_result res;
	char *got;

	k8s_credprov_opts_init(&o, "[fd00::1]:5000");
	o.cache_key = K8S_CREDPROV_KEY_IMAGE;
	o.max_cache_s = 600;
	o.margin_s = 60;
	got = respond_token(&o, hour_token, RECORDED_NOW, &res);
	CHECK_INT(res, K8S_CREDPROV_OK);
	CHECK(strcmp(got, "{\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\","
			  "\"kind\":\"CredentialProviderResponse\",\"cacheKeyType\":\"Image\","
			  "\"cacheDuration\":\"10m0s\",\"auth\":{\"[fd00::1]:5000\":{"
			  "\"username\":\"ocigate\",\"password\":"
			  "\"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDM2MDB9.c2ln\"}}}\n") == 0);
	free(got);

	/* the clock moves on: the cache shrinks with the token's life */
	got = respond_token(&o, hour_token, RECORDED_NOW + 3300, &res);
	CHECK_INT(res, K8S_CREDPROV_OK);
	CHECK(strstr(got, "\"cacheDuration\":\"4m0s\"") != NULL);
	free(got);
	got = respond_token(&o, hour_token, RECORDED_NOW + 3600, &res);
	CHECK_INT(res, K8S_CREDPROV_OK_EXPIRED);
	CHECK(strstr(got, "\"cacheDuration\":\"0s\"") != NULL);
	free(got);

	/* a token that JSON must escape comes out escaped, valid JSON */
	k8s_credprov_opts_init(&o, "og");
	got = respond_token(&o, "a\\\"b\\\\c", RECORDED_NOW, &res);
	CHECK_INT(res, K8S_CREDPROV_OK);
	{
		struct json_doc d;
		CHECK_INT(json_parse(&d, got, strlen(got), 100, NULL, 0), 0);
		CHECK(json_str_eq(&d, json_get(&d, json_get(&d, json_get(&d, 0, "auth"), "og"),
					       "password"), "a\"b\\c"));
		json_doc_free(&d);
	}
	free(got);

	/* larger than the limit: refused before parsing */
	{
		size_t n = K8S_CREDPROV_MAX_REQUEST + 1;
		char *big = x_malloc(n), err[512];
		memset(big, ' ', n);
		got = respond(&o, big, n, RECORDED_NOW, &res, err, sizeof(err));
		CHECK_INT(res, K8S_CREDPROV_MALFORMED);
		CHECK(strcmp(err, "the request is larger than 1048576 bytes") == 0);
		CHECK_INT(strlen(got), 0);
		free(got);
		free(big);
	}
	/* a token longer than a ServiceAccount token can be */
	{
		char *tok = x_malloc(K8S_CREDPROV_MAX_TOKEN + 2), err[512];
		char *req = x_malloc(K8S_CREDPROV_MAX_TOKEN + 300);
		memset(tok, 'a', K8S_CREDPROV_MAX_TOKEN + 1);
		tok[K8S_CREDPROV_MAX_TOKEN + 1] = '\0';
		snprintf(req, K8S_CREDPROV_MAX_TOKEN + 300,
			 "{\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\","
			 "\"kind\":\"CredentialProviderRequest\",\"image\":\"x/y\","
			 "\"serviceAccountToken\":\"%s\"}", tok);
		got = respond(&o, req, strlen(req), RECORDED_NOW, &res, err, sizeof(err));
		CHECK_INT(res, K8S_CREDPROV_MALFORMED);
		CHECK(strcmp(err, "serviceAccountToken is longer than 16384 bytes") == 0);
		free(got);
		free(req);
		free(tok);
	}
}

/* ---- helpers ---- */

static void check_duration(const char *s, int rc, int64_t want)
{
	int64_t v = -7;
	int got = k8s_credprov_parse_duration(s, &v);

	if (got != rc || (rc == 0 && v != want)) {
		fprintf(stderr, "%s:%d: parse_duration(\"%s\") = %d, %lld; expected %d, %lld\n",
			__FILE__, __LINE__, s, got, (long long)v, rc, (long long)want);
		check_failures++;
	}
}

static void test_parse_duration(void)
{
	check_duration("0", 0, 0);
	check_duration("0s", 0, 0);
	check_duration("600", 0, 600);
	check_duration("90s", 0, 90);
	check_duration("10m", 0, 600);
	check_duration("1h", 0, 3600);
	check_duration("1h30m", 0, 5400);
	check_duration("1h0m0s", 0, 3600);
	check_duration("2m3s", 0, 123);
	check_duration("87840h", 0, 87840LL * 3600); /* ten years of 366 days */
	check_duration("87841h", -1, 0);
	check_duration("99999999999999999999", -1, 0);
	check_duration("", -1, 0);
	check_duration("h", -1, 0);
	check_duration("-1s", -1, 0);
	check_duration("1.5h", -1, 0);
	check_duration("10ms", -1, 0);
	check_duration("1d", -1, 0);
	check_duration("10 m", -1, 0);
	check_duration("1h30", -1, 0); /* a bare number only alone */
	check_duration("5x", -1, 0);
}

static void check_format(int64_t s, const char *want)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;

	k8s_credprov_format_duration(b, s);
	n = evbuffer_get_length(b);
	CHECK_MEM_STR(evbuffer_pullup(b, -1), n, want);
	evbuffer_free(b);
}

static void test_format_duration(void)
{
	check_format(0, "0s");
	check_format(59, "59s");
	check_format(60, "1m0s");
	check_format(3599, "59m59s");
	check_format(3600, "1h0m0s");
	check_format(3661, "1h1m1s");
	check_format(90000, "25h0m0s");
}

static void check_proxy(const char *p, const char *err_want)
{
	char err[256] = "";
	int rc = k8s_credprov_check_proxy(p, err, sizeof(err));

	if (!err_want) {
		if (rc != 0) {
			fprintf(stderr, "%s:%d: check_proxy(\"%s\") refused: %s\n", __FILE__, __LINE__,
				p, err);
			check_failures++;
		}
		return;
	}
	if (rc != -1 || strcmp(err, err_want) != 0) {
		fprintf(stderr, "%s:%d: check_proxy(\"%s\") = %d \"%s\"; expected -1 \"%s\"\n",
			__FILE__, __LINE__, p, rc, err, err_want);
		check_failures++;
	}
}

static void test_check_proxy(void)
{
	const char *bad_port = "the port must be a number from 1 to 65535";

	check_proxy("ocigate.example.com:5000", NULL);
	check_proxy("ocigate.example.com", NULL);
	check_proxy("ocigate", NULL);
	check_proxy("127.0.0.1:443", NULL);
	check_proxy("[::1]:5000", NULL);
	check_proxy("[fd00::1]", NULL);
	check_proxy("a-b.c1:65535", NULL);
	check_proxy("", "the proxy address must be HOST or HOST:PORT (1 to 300 characters)");
	check_proxy("https://og:5000",
		    "the proxy address must be HOST or HOST:PORT, without scheme, user or path");
	check_proxy("og:5000/namespaces",
		    "the proxy address must be HOST or HOST:PORT, without scheme, user or path");
	check_proxy("u@og", "the proxy address must be HOST or HOST:PORT, without scheme, user or path");
	check_proxy("og:0", bad_port);
	check_proxy("og:65536", bad_port);
	check_proxy("og:", bad_port);
	check_proxy("og:50a", bad_port);
	check_proxy("og:1:2", bad_port);
	check_proxy(":5000", "the host is empty");
	check_proxy("Og.example", "'Og.example' must be written in lower case, as image references name it");
	check_proxy("og..example", "'og..example' is not a host name");
	check_proxy("og.example.", "'og.example.' is not a host name");
	check_proxy("-og", "'-og' is not a host name");
	check_proxy("og-", "'og-' is not a host name");
	check_proxy("og_x", "'og_x' is not a host name");
	check_proxy("[::1", "the IPv6 address has no closing ']'");
	check_proxy("[]:5000", "the bracketed host is not an IPv6 address");
	check_proxy("[og]:5000", "the bracketed host is not an IPv6 address");
	check_proxy("[::1]5000", "only ':PORT' may follow the IPv6 address");
	check_proxy("[::1]:0", bad_port);
}

static void check_exp(const char *payload_b64url, int rc, int64_t want)
{
	char token[1024];
	int64_t exp = -7;
	int got;

	snprintf(token, sizeof(token), "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", payload_b64url);
	got = k8s_credprov_jwt_exp(token, &exp);
	if (got != rc || (rc == 0 && exp != want)) {
		fprintf(stderr, "%s:%d: jwt_exp(%s) = %d, %lld; expected %d, %lld\n", __FILE__,
			__LINE__, payload_b64url, got, (long long)exp, rc, (long long)want);
		check_failures++;
	}
}

static void test_jwt_exp(void)
{
	int64_t exp = -7;

	check_exp("eyJleHAiOjE3MDAwMDM2MDB9", 0, 1700003600);         /* {"exp":1700003600} */
	check_exp("eyJleHAiOjE3MDAwMDAwMDAuNX0", 0, 1700000000);      /* {"exp":1700000000.5} */
	check_exp("eyJleHAiOjB9", 0, 0);                              /* {"exp":0} */
	check_exp("eyJleHAiOi0xfQ", 0, 0);                            /* {"exp":-1}: long past */
	check_exp("eyJleHAiOiIxNzAwMDAwMDAwIn0", -1, 0);              /* {"exp":"1700000000"} */
	check_exp("eyJleHAiOjFlMTZ9", -1, 0);                         /* {"exp":1e16} */
	check_exp("eyJzdWIiOiJ4In0", -1, 0);                          /* {"sub":"x"} */
	check_exp("WyJleHAiXQ", -1, 0);                               /* ["exp"] */
	check_exp("eyJleHAiOjE3MDAwMDM2MDB9==", -1, 0);               /* padding is not base64url */
	check_exp("eyJleHAiOjE3MDAwMDM2MDB+", -1, 0);                 /* '+' is not base64url */
	check_exp("eyJleHAiOjE3MDAwMDM2MDB", -1, 0);                  /* cut: not JSON */
	check_exp("", -1, 0);
	/* {"a":"\uFFFF","exp":5} in UTF-8: base64url writes it with '-' and '_' */
	check_exp("eyJhIjoi77-_IiwiZXhwIjo1fQ", 0, 5);
	CHECK_INT(k8s_credprov_jwt_exp("opaque", &exp), -1);
	CHECK_INT(k8s_credprov_jwt_exp("a.b", &exp), -1);
	CHECK_INT(k8s_credprov_jwt_exp("a.eyJleHAiOjB9.c.d", &exp), -1);
	CHECK_INT(exp, -7);
}

static void test_cache_seconds(void)
{
	struct k8s_credprov_opts o;

	k8s_credprov_opts_init(&o, PROXY);
	CHECK_INT(o.max_cache_s, 3600);
	CHECK_INT(o.margin_s, 300);
	CHECK_INT(o.no_exp_cache_s, 300);
	CHECK_INT(k8s_credprov_cache_seconds(&o, 1000 + 3600, 1000), 3300);
	CHECK_INT(k8s_credprov_cache_seconds(&o, 1000 + 7200, 1000), 3600);
	CHECK_INT(k8s_credprov_cache_seconds(&o, 1000 + 301, 1000), 1);
	CHECK_INT(k8s_credprov_cache_seconds(&o, 1000 + 300, 1000), 0);
	CHECK_INT(k8s_credprov_cache_seconds(&o, 1000, 1000), 0);
	CHECK_INT(k8s_credprov_cache_seconds(&o, 0, 1000), 0);
	CHECK_INT(k8s_credprov_cache_seconds(&o, -1, 1000), 300);
	o.max_cache_s = 60;
	CHECK_INT(k8s_credprov_cache_seconds(&o, -1, 1000), 60);
	o.max_cache_s = 0;
	CHECK_INT(k8s_credprov_cache_seconds(&o, 1000 + 3600, 1000), 0);
	o.max_cache_s = 3600;
	o.margin_s = 0;
	CHECK_INT(k8s_credprov_cache_seconds(&o, 1000 + 10, 1000), 10);
	/* exp claims up to 1e15 (what k8s_auth_jwt_exp accepts) do not overflow */
	CHECK_INT(k8s_credprov_cache_seconds(&o, 1000000000000000LL, 1000), 3600);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DATA_DIR (test/unit/data/credprov)\n", argv[0]);
		return 2;
	}
	data_dir = argv[1];
	for (size_t i = 0; i < OG_ARRAY_LEN(pairs); i++)
		test_pair(&pairs[i]);
	for (size_t i = 0; i < OG_ARRAY_LEN(bads); i++)
		test_bad(&bads[i]);
	test_all_files_used();
	test_options();
	test_parse_duration();
	test_format_duration();
	test_check_proxy();
	test_cache_seconds();
	test_jwt_exp();
	CHECK_DONE();
}
