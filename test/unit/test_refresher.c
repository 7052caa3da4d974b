/* The pull-secret refresher's pure parts: ServiceAccount and TokenRequest
 * parsing, time parsing, the Secret bodies and the refresh delay. */
#include "k8s/refresher.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "test/unit/check.h"
#include "util/base64.h"
#include "util/json.h"


static char *take(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static int parse_sa(const char *text, struct k8s_refresher_sa *sa, char *err, size_t cap)
{
	struct json_doc d = { 0 };
	int rc;

	if (json_parse(&d, text, strlen(text), 1000, NULL, 0) != 0)
		return -2;
	rc = k8s_refresher_sa_parse(&d, 0, sa, err, cap);
	json_doc_free(&d);
	return rc;
}

static void test_sa(void)
{
	struct k8s_refresher_sa sa;
	char err[256];

	CHECK_INT(parse_sa("{\"kind\":\"ServiceAccount\",\"metadata\":{\"namespace\":\"team\",\"name\":\"builder\","
			   "\"uid\":\"u-1\",\"annotations\":{\"connectors.cpaas.io/pull-secret\":\"og-pull\"}}}",
			   &sa, err, sizeof(err)), 0);
	CHECK_STR(sa.ns, "team");
	CHECK_STR(sa.name, "builder");
	CHECK_STR(sa.uid, "u-1");
	CHECK_STR(sa.secret, "og-pull");
	k8s_refresher_sa_free(&sa);

	/* not opted in: no annotation, other annotations, null annotations */
	CHECK_INT(parse_sa("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\"}}", &sa, err, sizeof(err)), 0);
	CHECK(sa.secret == NULL);
	CHECK(sa.uid == NULL);
	k8s_refresher_sa_free(&sa);
	CHECK_INT(parse_sa("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"annotations\":{\"x\":\"y\"}}}",
			   &sa, err, sizeof(err)), 0);
	CHECK(sa.secret == NULL);
	k8s_refresher_sa_free(&sa);
	CHECK_INT(parse_sa("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"annotations\":null}}",
			   &sa, err, sizeof(err)), 0);
	k8s_refresher_sa_free(&sa);

	/* a bad Secret name: error, but the object is still named */
	CHECK_INT(parse_sa("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"annotations\":"
			   "{\"connectors.cpaas.io/pull-secret\":\"Bad_Name\"}}}", &sa, err, sizeof(err)), -1);
	CHECK_STR(sa.ns, "a");
	CHECK_STR(sa.name, "b");
	CHECK(sa.secret == NULL);
	CHECK(strstr(err, "not a Secret name") != NULL);
	k8s_refresher_sa_free(&sa);
	CHECK_INT(parse_sa("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"annotations\":"
			   "{\"connectors.cpaas.io/pull-secret\":7}}}", &sa, err, sizeof(err)), -1);
	k8s_refresher_sa_free(&sa);

	CHECK_INT(parse_sa("{\"kind\":\"Secret\",\"metadata\":{\"namespace\":\"a\",\"name\":\"b\"}}", &sa, err,
			   sizeof(err)), -1);
	k8s_refresher_sa_free(&sa);
	CHECK_INT(parse_sa("{\"metadata\":{\"name\":\"b\"}}", &sa, err, sizeof(err)), -1);
	k8s_refresher_sa_free(&sa);
	CHECK_INT(parse_sa("{\"metadata\":{\"namespace\":\"\",\"name\":\"b\"}}", &sa, err, sizeof(err)), -1);
	k8s_refresher_sa_free(&sa);
	CHECK_INT(parse_sa("[1]", &sa, err, sizeof(err)), -1);
	k8s_refresher_sa_free(&sa);
	CHECK_INT(parse_sa("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"annotations\":[]}}", &sa, err,
			   sizeof(err)), -1);
	k8s_refresher_sa_free(&sa);
}

static void test_names(void)
{
	CHECK(k8s_refresher_name_ok("a"));
	CHECK(k8s_refresher_name_ok("og-pull.v1"));
	CHECK(k8s_refresher_name_ok("0a"));
	CHECK(!k8s_refresher_name_ok(""));
	CHECK(!k8s_refresher_name_ok("-a"));
	CHECK(!k8s_refresher_name_ok("a-"));
	CHECK(!k8s_refresher_name_ok("a..b"));
	CHECK(!k8s_refresher_name_ok("a.-b"));
	CHECK(!k8s_refresher_name_ok("a-.b"));
	CHECK(!k8s_refresher_name_ok(".a"));
	CHECK(!k8s_refresher_name_ok("a."));
	CHECK(!k8s_refresher_name_ok("A"));
	CHECK(!k8s_refresher_name_ok("a/b"));
	char long_name[300];
	memset(long_name, 'a', 254);
	long_name[254] = '\0';
	CHECK(!k8s_refresher_name_ok(long_name));
	long_name[253] = '\0';
	CHECK(k8s_refresher_name_ok(long_name));
}

static void test_time(void)
{
	int64_t t = -5;

	CHECK_INT(k8s_refresher_parse_time("1970-01-01T00:00:00Z", &t), 0);
	CHECK_INT(t, 0);
	CHECK_INT(k8s_refresher_parse_time("2023-11-14T22:13:20Z", &t), 0);
	CHECK_INT(t, 1700000000);
	CHECK_INT(k8s_refresher_parse_time("2023-11-14T22:13:20.123456Z", &t), 0);
	CHECK_INT(t, 1700000000);
	CHECK_INT(k8s_refresher_parse_time("2023-11-15T00:13:20+02:00", &t), 0);
	CHECK_INT(t, 1700000000);
	CHECK_INT(k8s_refresher_parse_time("2023-11-14T21:43:20-00:30", &t), 0);
	CHECK_INT(t, 1700000000);
	CHECK_INT(k8s_refresher_parse_time("2024-02-29T00:00:00Z", &t), 0);
	CHECK_INT(t, 1709164800);
	CHECK_INT(k8s_refresher_parse_time("2024-13-01T00:00:00Z", &t), -1);
	CHECK_INT(k8s_refresher_parse_time("2024-01-32T00:00:00Z", &t), -1);
	CHECK_INT(k8s_refresher_parse_time("2024-01-01 00:00:00Z", &t), -1);
	CHECK_INT(k8s_refresher_parse_time("2024-01-01T00:00:00", &t), -1);
	CHECK_INT(k8s_refresher_parse_time("2024-01-01T00:00:00Zx", &t), -1);
	CHECK_INT(k8s_refresher_parse_time("2024-01-01T00:00:00.Z", &t), -1);
	CHECK_INT(k8s_refresher_parse_time("2024-01-01T24:00:00Z", &t), -1);
	CHECK_INT(k8s_refresher_parse_time("2024-01-01T00:00:00+0100", &t), -1);
	CHECK_INT(k8s_refresher_parse_time("", &t), -1);
	CHECK_INT(k8s_refresher_parse_time("2023-11-14T22:13:20.123456789Z", &t), 0);
	CHECK_INT(t, 1700000000);
	CHECK_INT(k8s_refresher_parse_time("2023-11-14T22:13:20.1234567890Z", &t), -1);
}

static void test_tokenrequest(void)
{
	struct evbuffer *b = evbuffer_new();
	char *aud[] = { "ocigate", "x\"y" };
	char *s;
	struct k8s_refresher_token tok;
	char err[256];
	const char *ok = "{\"kind\":\"TokenRequest\",\"apiVersion\":\"authentication.k8s.io/v1\","
			 "\"spec\":{\"expirationSeconds\":600},\"status\":{\"token\":\"eyJ.a.b\","
			 "\"expirationTimestamp\":\"2023-11-14T22:13:20Z\"}}";

	k8s_refresher_tokenrequest_body(b, 3600, aud, 2);
	s = take(b);
	CHECK_STR(s, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",\"spec\":"
		     "{\"audiences\":[\"ocigate\",\"x\\\"y\"],\"expirationSeconds\":3600}}");
	free(s);
	b = evbuffer_new();
	k8s_refresher_tokenrequest_body(b, 600, NULL, 0);
	s = take(b);
	CHECK_STR(s, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",\"spec\":"
		     "{\"expirationSeconds\":600}}");
	free(s);

	CHECK_INT(k8s_refresher_token_parse(ok, strlen(ok), &tok, err, sizeof(err)), 0);
	CHECK_STR(tok.token, "eyJ.a.b");
	CHECK_INT(tok.expires_at, 1700000000);
	k8s_refresher_token_free(&tok);
	CHECK(tok.token == NULL);

	static const char *const bad[] = {
		"",
		"{",
		"[]",
		"{\"kind\":\"Status\",\"code\":404}",
		"{\"status\":{\"expirationTimestamp\":\"2023-11-14T22:13:20Z\"}}",
		"{\"status\":{\"token\":\"\",\"expirationTimestamp\":\"2023-11-14T22:13:20Z\"}}",
		"{\"status\":{\"token\":\"a b\",\"expirationTimestamp\":\"2023-11-14T22:13:20Z\"}}",
		"{\"status\":{\"token\":\"a\\nb\",\"expirationTimestamp\":\"2023-11-14T22:13:20Z\"}}",
		"{\"status\":{\"token\":\"ab\"}}",
		"{\"status\":{\"token\":\"ab\",\"expirationTimestamp\":1700000000}}",
		"{\"status\":{\"token\":\"ab\",\"expirationTimestamp\":\"tomorrow\"}}",
		"{\"status\":{\"token\":7,\"expirationTimestamp\":\"2023-11-14T22:13:20Z\"}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (k8s_refresher_token_parse(bad[i], strlen(bad[i]), &tok, err, sizeof(err)) != -1) {
			fprintf(stderr, "%s:%d: accepted %s\n", __FILE__, __LINE__, bad[i]);
			check_failures++;
		}
		CHECK(tok.token == NULL);
		CHECK(strncmp(err, "TokenRequest response: ", 23) == 0);
		k8s_refresher_token_free(&tok);
	}
}

static void test_dockerconfig(void)
{
	char *s = k8s_refresher_dockerconfig("og.example:5000", "tok\"1");

	/* base64("ocigate:tok\"1") */
	CHECK_STR(s, "{\"auths\":{\"og.example:5000\":{\"username\":\"ocigate\",\"password\":\"tok\\\"1\","
		     "\"auth\":\"b2NpZ2F0ZTp0b2siMQ==\"}}}");
	free(s);
}

static void test_secret_bodies(void)
{
	struct evbuffer *b = evbuffer_new();
	char *s, *cfg = k8s_refresher_dockerconfig("og:5000", "T");
	char expected_b64[512];
	char expected[1024];

	base64_encode(cfg, strlen(cfg), expected_b64);
	free(cfg);

	k8s_refresher_secret_body(b, "team", "og-pull", "builder", "og:5000", "T");
	s = take(b);
	snprintf(expected, sizeof(expected),
		 "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"og-pull\",\"namespace\":\"team\","
		 "\"annotations\":{\"connectors.cpaas.io/pull-secret-owner\":\"builder\"}},"
		 "\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":{\".dockerconfigjson\":\"%s\"}}",
		 expected_b64);
	CHECK_STR(s, expected);
	free(s);

	b = evbuffer_new();
	k8s_refresher_secret_patch(b, "42", "builder", "og:5000", "T");
	s = take(b);
	snprintf(expected, sizeof(expected),
		 "{\"metadata\":{\"resourceVersion\":\"42\","
		 "\"annotations\":{\"connectors.cpaas.io/pull-secret-owner\":\"builder\"}},"
		 "\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":{\".dockerconfigjson\":\"%s\"}}",
		 expected_b64);
	CHECK_STR(s, expected);
	free(s);
	CHECK_STR(expected_b64, "eyJhdXRocyI6eyJvZzo1MDAwIjp7InVzZXJuYW1lIjoib2NpZ2F0ZSIsInBhc3N3b3JkIjoiVCIsImF1dGgiOiJiMk5wWjJGMFpUcFUifX19");
}

static void test_secret_info(void)
{
	struct k8s_refresher_secret_info si;
	char err[256];
	const char *own = "{\"kind\":\"Secret\",\"metadata\":{\"name\":\"p\",\"resourceVersion\":\"7\","
			  "\"annotations\":{\"connectors.cpaas.io/pull-secret-owner\":\"builder\"}},"
			  "\"type\":\"kubernetes.io/dockerconfigjson\"}";
	const char *other = "{\"metadata\":{\"name\":\"p\",\"resourceVersion\":\"8\"},\"type\":\"Opaque\"}";
	const char *no_rv = "{\"metadata\":{\"name\":\"p\"}}";
	const char *bad_ann = "{\"metadata\":{\"resourceVersion\":\"8\",\"annotations\":[]}}";

	CHECK_INT(k8s_refresher_secret_info_parse(own, strlen(own), &si, err, sizeof(err)), 0);
	CHECK_STR(si.resource_version, "7");
	CHECK_STR(si.owner, "builder");
	CHECK_STR(si.type, "kubernetes.io/dockerconfigjson");
	k8s_refresher_secret_info_free(&si);
	CHECK_INT(k8s_refresher_secret_info_parse(other, strlen(other), &si, err, sizeof(err)), 0);
	CHECK_STR(si.resource_version, "8");
	CHECK(si.owner == NULL);
	k8s_refresher_secret_info_free(&si);
	CHECK_INT(k8s_refresher_secret_info_parse(no_rv, strlen(no_rv), &si, err, sizeof(err)), -1);
	k8s_refresher_secret_info_free(&si);
	CHECK_INT(k8s_refresher_secret_info_parse(bad_ann, strlen(bad_ann), &si, err, sizeof(err)), -1);
	k8s_refresher_secret_info_free(&si);
	CHECK_INT(k8s_refresher_secret_info_parse("{\"kind\":\"Status\"}", 17, &si, err, sizeof(err)), -1);
	k8s_refresher_secret_info_free(&si);
}

static void test_delay(void)
{
	/* 20 s left: between 10 and 16 s */
	CHECK_INT(k8s_refresher_delay_ms(1000, 1020, 0), 10000);
	CHECK_INT(k8s_refresher_delay_ms(1000, 1020, 300), 16000);
	CHECK_INT(k8s_refresher_delay_ms(1000, 1020, 301), 10000);
	CHECK_INT(k8s_refresher_delay_ms(1000, 1020, 150), 13000);
	/* an hour: 30 to 48 minutes */
	CHECK_INT(k8s_refresher_delay_ms(0, 3600, 0), 1800000);
	CHECK_INT(k8s_refresher_delay_ms(0, 3600, 300), 2880000);
	for (uint64_t r = 0; r < 2000; r += 7) {
		uint64_t d = k8s_refresher_delay_ms(0, 600, r * 2654435761u);
		CHECK(d >= 300000 && d <= 480000);
	}
	/* expired or nearly: never a busy loop */
	CHECK_INT(k8s_refresher_delay_ms(1000, 1000, 5), 1000);
	CHECK_INT(k8s_refresher_delay_ms(1000, 900, 5), 1000);
	CHECK_INT(k8s_refresher_delay_ms(1000, 1001, 0), 1000);
}

int main(void)
{
	test_sa();
	test_names();
	test_time();
	test_tokenrequest();
	test_dockerconfig();
	test_secret_bodies();
	test_secret_info();
	test_delay();
	CHECK_DONE();
}
