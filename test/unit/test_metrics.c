/* proxy/metrics.c: what a scrape shows after recording, the status-code and
 * method mapping, bucket edges, the bound on connector series, and label
 * escaping. The e2e test (test_ops.py) parses a live scrape with
 * Prometheus' own parser. */
#include "proxy/metrics.h"

#include "auth/connector.h"
#include "proxy/proxy.h"
#include "test/unit/check.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *scrape(void)
{
	struct proxy px;
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	memset(&px, 0, sizeof(px));
	metrics_render(&px, b);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

#define HAS(text, line)                                                          \
	do {                                                                     \
		if (!strstr((text), (line))) {                                   \
			fprintf(stderr, "%s:%d: scrape lacks: %s\n", __FILE__, __LINE__, \
				(line));                                         \
			check_failures++;                                        \
		}                                                                \
	} while (0)

static struct connector *make(const char *ns, const char *name)
{
	struct connector_spec spec = {
		.ns = ns, .name = name, .https = true, .host = "r.example", .port = 443,
		.path_prefix = "", .address = "https://r.example",
	};
	return connector_new(&spec);
}

static void test_counts(void)
{
	struct connector *a = make("team-a", "harbor");
	struct connector *a2 = make("team-a", "harbor"); /* a reload's new object */
	char *s;

	metrics_reset();
	metrics_request_done(a, HTTP_M_GET, 200, 100, 0.0005);
	metrics_request_done(a2, HTTP_M_GET, 200, 50, 0.001);   /* le="0.001" is inclusive */
	metrics_request_done(a, HTTP_M_HEAD, 404, 0, 0.2);
	metrics_request_done(a, HTTP_M_PUT, 418, 0, 400.0);    /* unlisted code, past 300 s */
	metrics_request_done(NULL, HTTP_M_GET, 401, 7, 0.0);
	metrics_request_done(a, (enum http_method)99, 200, 0, 0.0);
	metrics_upstream_response(a, 307);
	metrics_upstream_response(a, 599);
	metrics_count(METRICS_RELOAD_OK);
	s = scrape();
	HAS(s, "# TYPE ocigate_http_requests_total counter\n");
	HAS(s, "ocigate_http_requests_total{connector=\"team-a/harbor\",method=\"GET\",code=\"200\"} 2\n");
	HAS(s, "ocigate_http_requests_total{connector=\"team-a/harbor\",method=\"HEAD\",code=\"404\"} 1\n");
	HAS(s, "ocigate_http_requests_total{connector=\"team-a/harbor\",method=\"PUT\",code=\"4xx\"} 1\n");
	HAS(s, "ocigate_http_requests_total{connector=\"team-a/harbor\",method=\"OTHER\",code=\"200\"} 1\n");
	HAS(s, "ocigate_http_requests_total{connector=\"none\",method=\"GET\",code=\"401\"} 1\n");
	HAS(s, "ocigate_http_request_duration_seconds_bucket{connector=\"team-a/harbor\",le=\"0.001\"} 3\n");
	HAS(s, "ocigate_http_request_duration_seconds_bucket{connector=\"team-a/harbor\",le=\"0.25\"} 4\n");
	HAS(s, "ocigate_http_request_duration_seconds_bucket{connector=\"team-a/harbor\",le=\"300\"} 4\n");
	HAS(s, "ocigate_http_request_duration_seconds_bucket{connector=\"team-a/harbor\",le=\"+Inf\"} 5\n");
	HAS(s, "ocigate_http_request_duration_seconds_count{connector=\"team-a/harbor\"} 5\n");
	HAS(s, "ocigate_http_response_bytes_total{connector=\"team-a/harbor\"} 150\n");
	HAS(s, "ocigate_upstream_requests_total{connector=\"team-a/harbor\",code=\"307\"} 1\n");
	HAS(s, "ocigate_upstream_requests_total{connector=\"team-a/harbor\",code=\"5xx\"} 1\n");
	HAS(s, "ocigate_config_reloads_total{result=\"ok\"} 1\n");
	HAS(s, "ocigate_build_info{version=\"" OCIGATE_VERSION "\"} 1\n");
	CHECK(strstr(s, "_other") == NULL);
	free(s);
	connector_unref(a);
	connector_unref(a2);
}

/* Past METRICS_MAX_CONNECTORS, connectors share one series. */
static void test_bounded(void)
{
	enum { N = METRICS_MAX_CONNECTORS + 10 };
	static struct connector *c[N];
	char name[32], line[128];
	char *s;

	metrics_reset();
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		c[i] = make("ns", name);
		metrics_request_done(c[i], HTTP_M_GET, 200, 1, 0.0);
	}
	s = scrape();
	snprintf(line, sizeof(line), "{connector=\"ns/c%d\",method=\"GET\",code=\"200\"} 1\n",
		 METRICS_MAX_CONNECTORS - 1);
	HAS(s, line);
	snprintf(line, sizeof(line), "ns/c%d\"", METRICS_MAX_CONNECTORS);
	CHECK(strstr(s, line) == NULL);
	HAS(s, "ocigate_http_requests_total{connector=\"_other\",method=\"GET\",code=\"200\"} 10\n");
	free(s);
	for (int i = 0; i < N; i++)
		connector_unref(c[i]);
}

static void test_escaping(void)
{
	struct connector *c = make("a\"b", "c\\d\ne");
	char *s;

	metrics_reset();
	metrics_request_done(c, HTTP_M_GET, 200, 0, 0.0);
	s = scrape();
	HAS(s, "{connector=\"a\\\"b/c\\\\d\\ne\",method=\"GET\",code=\"200\"} 1\n");
	free(s);
	connector_unref(c);
}

int main(void)
{
	test_counts();
	test_bounded();
	test_escaping();
	CHECK_DONE();
}
