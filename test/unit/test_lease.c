/* Leader election's pure parts: the Lease JSON both ways, MicroTime, when
 * a Lease counts as held, and where it lives. */
#include "k8s/lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "test/unit/check.h"

static char *take(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static void test_time(void)
{
	char ts[64];
	int64_t us;

	k8s_lease_format_time(1700000000123456LL, ts);
	CHECK_STR(ts, "2023-11-14T22:13:20.123456Z");
	k8s_lease_format_time(1700000000000007LL, ts);
	CHECK_STR(ts, "2023-11-14T22:13:20.000007Z");
	CHECK_INT(k8s_lease_parse_time("2023-11-14T22:13:20.123456Z", &us), 0);
	CHECK_INT(us, 1700000000123456LL);
	CHECK_INT(k8s_lease_parse_time("2023-11-14T22:13:20Z", &us), 0);
	CHECK_INT(us, 1700000000000000LL);
	CHECK_INT(k8s_lease_parse_time("2023-11-14T22:13:20.5Z", &us), 0);
	CHECK_INT(us, 1700000000500000LL);
	CHECK_INT(k8s_lease_parse_time("2023-11-14T22:13:20.123456789Z", &us), 0);
	CHECK_INT(us, 1700000000123456LL);
	CHECK_INT(k8s_lease_parse_time("2023-11-15T00:13:20.000001+02:00", &us), 0);
	CHECK_INT(us, 1700000000000001LL);
	CHECK_INT(k8s_lease_parse_time("2023-11-14 22:13:20Z", &us), -1);
	CHECK_INT(k8s_lease_parse_time("2023-11-14T22:13:20.Z", &us), -1);
	CHECK_INT(k8s_lease_parse_time("", &us), -1);
}

static void test_body(void)
{
	struct evbuffer *b = evbuffer_new();
	struct k8s_lease_record r = { .holder = (char *)"pod-a_0a0b", .duration_s = 15,
				      .acquire_us = 1700000000000000LL,
				      .renew_us = 1700000001500000LL, .transitions = 3 };
	char *s;

	k8s_lease_body(b, "ocigate", "ocigate", &r);
	s = take(b);
	CHECK_STR(s, "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
		     "\"metadata\":{\"name\":\"ocigate\",\"namespace\":\"ocigate\"},"
		     "\"spec\":{\"holderIdentity\":\"pod-a_0a0b\",\"leaseDurationSeconds\":15,"
		     "\"acquireTime\":\"2023-11-14T22:13:20.000000Z\","
		     "\"renewTime\":\"2023-11-14T22:13:21.500000Z\",\"leaseTransitions\":3}}");
	free(s);
	b = evbuffer_new();
	r.resource_version = (char *)"42";
	r.holder = (char *)"";
	r.acquire_us = 0;
	k8s_lease_body(b, "n\"s", "x", &r);
	s = take(b);
	CHECK_STR(s, "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
		     "\"metadata\":{\"name\":\"x\",\"namespace\":\"n\\\"s\",\"resourceVersion\":\"42\"},"
		     "\"spec\":{\"holderIdentity\":\"\",\"leaseDurationSeconds\":15,"
		     "\"renewTime\":\"2023-11-14T22:13:21.500000Z\",\"leaseTransitions\":3}}");
	free(s);
}

static int parse(const char *text, struct k8s_lease_record *r, char *err)
{
	return k8s_lease_parse(text, strlen(text), r, err, 200);
}

static void test_parse(void)
{
	struct k8s_lease_record r;
	char err[200];

	CHECK_INT(parse("{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
			"\"metadata\":{\"name\":\"ocigate\",\"namespace\":\"ocigate\","
			"\"resourceVersion\":\"101\"},\"spec\":{\"holderIdentity\":\"b\","
			"\"leaseDurationSeconds\":15,\"acquireTime\":\"2023-11-14T22:13:20.000000Z\","
			"\"renewTime\":\"2023-11-14T22:13:21.250000Z\",\"leaseTransitions\":2}}",
			&r, err), 0);
	CHECK_STR(r.resource_version, "101");
	CHECK_STR(r.holder, "b");
	CHECK_INT(r.duration_s, 15);
	CHECK_INT(r.acquire_us, 1700000000000000LL);
	CHECK_INT(r.renew_us, 1700000001250000LL);
	CHECK_INT(r.transitions, 2);
	/* held until renewTime + leaseDurationSeconds, not at it */
	CHECK(k8s_lease_held(&r, 1700000016249999LL));
	CHECK(!k8s_lease_held(&r, 1700000016250000LL));
	k8s_lease_record_free(&r);

	/* a released Lease (empty holder) and one with no spec are free */
	CHECK_INT(parse("{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
			"\"metadata\":{\"resourceVersion\":\"7\"},\"spec\":{\"holderIdentity\":\"\","
			"\"leaseDurationSeconds\":1,\"renewTime\":\"2099-01-01T00:00:00.000000Z\"}}",
			&r, err), 0);
	CHECK(!k8s_lease_held(&r, 1700000000000000LL));
	k8s_lease_record_free(&r);
	CHECK_INT(parse("{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
			"\"metadata\":{\"resourceVersion\":\"7\"}}", &r, err), 0);
	CHECK_STR(r.holder, "");
	CHECK(!k8s_lease_held(&r, 0));
	k8s_lease_record_free(&r);

	CHECK_INT(parse("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"code\":409}", &r, err), -1);
	CHECK_STR(err, "Lease: not a coordination.k8s.io/v1 Lease");
	k8s_lease_record_free(&r);
	CHECK_INT(parse("{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
			"\"metadata\":{}}", &r, err), -1);
	CHECK_STR(err, "Lease: metadata.resourceVersion is missing");
	k8s_lease_record_free(&r);
	CHECK_INT(parse("{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
			"\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{\"renewTime\":\"yesterday\"}}",
			&r, err), -1);
	CHECK_STR(err, "Lease: spec.renewTime is not an RFC 3339 time");
	k8s_lease_record_free(&r);
	CHECK_INT(parse("{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
			"\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{\"leaseTransitions\":-1}}",
			&r, err), -1);
	CHECK_STR(err, "Lease: spec.leaseTransitions is not a non-negative integer");
	k8s_lease_record_free(&r);
	CHECK_INT(parse("{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
			"\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{\"holderIdentity\":5}}",
			&r, err), -1);
	k8s_lease_record_free(&r);
	CHECK_INT(parse("not json", &r, err), -1);
	k8s_lease_record_free(&r);
}

static void test_namespace_identity(void)
{
	char dir[] = "/tmp/test_lease.XXXXXX", path[64];
	char *s, *a, *b;
	FILE *f;

	s = k8s_lease_namespace("team-a", NULL, NULL, "/nonexistent");
	CHECK_STR(s, "team-a");
	free(s);
	s = k8s_lease_namespace("", "/nonexistent/kubeconfig", NULL, "/nonexistent");
	CHECK_STR(s, "default");
	free(s);
	s = k8s_lease_namespace("", NULL, NULL, "/nonexistent");
	CHECK_STR(s, "default");
	free(s);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/namespace", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("ocigate\n", f);
		fclose(f);
	}
	s = k8s_lease_namespace(NULL, NULL, "", dir);
	CHECK_STR(s, "ocigate");
	free(s);
	unlink(path);
	/* a kubeconfig: its context's namespace (kubectl's rule) */
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
		      "    server: https://127.0.0.1:6443\nusers:\n- name: u\n  user:\n"
		      "    token: abc\ncontexts:\n- name: x\n  context:\n    cluster: c\n"
		      "    user: u\n    namespace: team-b\ncurrent-context: x\n", f);
		fclose(f);
	}
	s = k8s_lease_namespace("", path, NULL, "/nonexistent");
	CHECK_STR(s, "team-b");
	free(s);
	unlink(path);
	rmdir(dir);

	a = k8s_lease_identity();
	b = k8s_lease_identity();
	CHECK(strcmp(a, b) != 0); /* two processes on one host differ */
	CHECK(strchr(a, '_') != NULL);
	free(a);
	free(b);
}

int main(void)
{
	test_time();
	test_body();
	test_parse();
	test_namespace_identity();
	CHECK_DONE();
}
