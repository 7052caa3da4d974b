/* k8s/api: request bodies and the parsers, over recorded API responses in
 * test/unit/data/k8s (pass that directory as argv[1]; by default it is found
 * next to this source file). */
#include "k8s/api.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "test/unit/check.h"
#include "util/xalloc.h"

static const char *data_dir;

static char *load(const char *name, size_t *len)
{
	return check_read_file(data_dir, name, len);
}

static char *body_text(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = x_malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

/* ---- TokenReview ---- */

static void test_tokenreview_body(void)
{
	struct evbuffer *b = evbuffer_new();
	char *aud[] = { "ocigate", "https://kubernetes.default.svc" };
	char *s;

	k8s_tokenreview_body(b, OG_STR_LIT("eyJ.abc.d-_"), NULL, 0);
	s = body_text(b);
	CHECK_STR(s, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
		     "\"spec\":{\"token\":\"eyJ.abc.d-_\"}}");
	free(s);
	k8s_tokenreview_body(b, OG_STR_LIT("a\"b\\c\n"), aud, 2);
	s = body_text(b);
	CHECK_STR(s, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
		     "\"spec\":{\"token\":\"a\\\"b\\\\c\\u000a\",\"audiences\":[\"ocigate\","
		     "\"https://kubernetes.default.svc\"]}}");
	free(s);
	evbuffer_free(b);
}

static int tokenreview_file(const char *name, char *const *aud, size_t n_aud,
			    struct k8s_tokenreview_result *r, char *err, size_t cap)
{
	size_t len;
	char *text = load(name, &len);
	int ret = k8s_tokenreview_parse(text, len, aud, n_aud, r, err, cap);
	free(text);
	return ret;
}

static void test_tokenreview_ok(void)
{
	struct k8s_tokenreview_result r;
	char *ours[] = { "ocigate" }, *other[] = { "vault", "nats" };
	char err[512] = "";

	CHECK_INT(tokenreview_file("tokenreview_sa.json", ours, 1, &r, err, sizeof(err)), 0);
	CHECK(r.authenticated);
	CHECK_STR(r.username, "system:serviceaccount:team-a:default");
	CHECK_STR(r.uid, "4bd2b1c7-6a55-4f0e-9b7a-0f5d2c0e8a11");
	CHECK_INT(r.n_groups, 3);
	if (r.n_groups == 3) {
		CHECK_STR(r.groups[0], "system:serviceaccounts");
		CHECK_STR(r.groups[1], "system:serviceaccounts:team-a");
		CHECK_STR(r.groups[2], "system:authenticated");
	}
	CHECK_INT(r.extra.n, 5);
	if (r.extra.n == 5) {
		CHECK_STR(r.extra.items[0].key, "authentication.kubernetes.io/credential-id");
		CHECK_INT(r.extra.items[0].n_values, 1);
		CHECK_STR(r.extra.items[0].values[0], "JTI=7c3a1e52-29c2-4a8c-8d43-5f0a1b2c3d4e");
		CHECK_STR(r.extra.items[3].key, "authentication.kubernetes.io/pod-name");
		CHECK_STR(r.extra.items[3].values[0], "app-7d9f8b6c5-x2x4q");
	}
	CHECK_INT(r.n_audiences, 1);
	CHECK_STR(r.audiences[0], "ocigate");
	CHECK(r.error == NULL);
	k8s_tokenreview_result_free(&r);
	CHECK(r.username == NULL && r.n_groups == 0);

	/* asked for other audiences: the reviewer's answer does not cover them */
	CHECK_INT(tokenreview_file("tokenreview_sa.json", other, 2, &r, err, sizeof(err)), 0);
	CHECK(!r.authenticated);
	CHECK_STR(r.error, "the token is not valid for ocigate's audience");
	k8s_tokenreview_result_free(&r);

	/* an API-server-audience token is fine only when we asked for none */
	CHECK_INT(tokenreview_file("tokenreview_api_audience.json", NULL, 0, &r, err, sizeof(err)), 0);
	CHECK(r.authenticated);
	CHECK_STR(r.username, "system:serviceaccount:team-b:builder");
	CHECK_INT(r.extra.n, 0);
	k8s_tokenreview_result_free(&r);
	CHECK_INT(tokenreview_file("tokenreview_api_audience.json", ours, 1, &r, err, sizeof(err)), 0);
	CHECK(!r.authenticated);
	k8s_tokenreview_result_free(&r);

	CHECK_INT(tokenreview_file("tokenreview_unauthenticated.json", NULL, 0, &r, err,
				   sizeof(err)), 0);
	CHECK(!r.authenticated);
	CHECK(r.username == NULL);
	CHECK_STR(r.error, "[invalid bearer token, service account token has expired]");
	k8s_tokenreview_result_free(&r);
}

static void check_tokenreview_bad(int line, const char *name, const char *want)
{
	struct k8s_tokenreview_result r;
	char err[512] = "";
	char *ours[] = { "ocigate" };

	memset(&r, 0x5a, sizeof(r));
	int ret = tokenreview_file(name, ours, 1, &r, err, sizeof(err));
	if (ret != -1 || r.authenticated || strncmp(err, want, strlen(want)) != 0) {
		fprintf(stderr, "%s:%d: %s: ret %d authenticated %d err \"%s\", expected \"%s\"\n",
			__FILE__, line, name, ret, r.authenticated, err, want);
		check_failures++;
	}
	k8s_tokenreview_result_free(&r);
}

static void test_tokenreview_bad(void)
{
#define BAD(name, want) check_tokenreview_bad(__LINE__, name, want)
	BAD("bad_tokenreview_authenticated_string.json",
	    "TokenReview response: status.authenticated is a string, expected a boolean");
	BAD("bad_tokenreview_truncated.json", "TokenReview response: invalid JSON at offset 226: "
					      "unterminated string");
	BAD("bad_tokenreview_no_status.json", "TokenReview response: status is missing");
	BAD("bad_tokenreview_wrong_kind.json",
	    "TokenReview response: kind is \"SubjectAccessReview\", expected \"TokenReview\"");
	BAD("bad_tokenreview_v1beta1.json",
	    "TokenReview response: apiVersion is \"authentication.k8s.io/v1beta1\", expected "
	    "\"authentication.k8s.io/v1\"");
	BAD("bad_tokenreview_no_username.json",
	    "TokenReview response: authenticated without status.user.username");
	BAD("bad_tokenreview_group_number.json",
	    "TokenReview response: status.user.groups[1] is a number, expected a string");
	BAD("bad_tokenreview_extra_string.json",
	    "TokenReview response: status.user.extra[\"scopes\"] is a string, expected an array "
	    "of strings");
	BAD("bad_tokenreview_duplicate.json", "TokenReview response: invalid JSON at offset 94: "
					      "duplicate key \"authenticated\"");
	BAD("status_tokenreview_forbidden.json",
	    "TokenReview response: the API server answered with a Status: 403 Forbidden: "
	    "tokenreviews.authentication.k8s.io is forbidden: User "
	    "\"system:serviceaccount:ocigate:ocigate\" cannot create resource");
	BAD("status_unauthorized.json",
	    "TokenReview response: the API server answered with a Status: 401 Unauthorized: "
	    "Unauthorized");
	BAD("connector_list.json", "TokenReview response: kind is \"ConnectorList\"");
#undef BAD
}

static void check_tokenreview_text(int line, const char *text, size_t len, int want_ret,
				   const char *want_err)
{
	struct k8s_tokenreview_result r;
	char err[512] = "";
	int ret = k8s_tokenreview_parse(text, len, NULL, 0, &r, err, sizeof(err));

	if (ret != want_ret || (ret != 0 && r.authenticated) ||
	    (want_err && strncmp(err, want_err, strlen(want_err)) != 0)) {
		fprintf(stderr, "%s:%d: ret %d err \"%s\", expected %d \"%s\"\n", __FILE__, line,
			ret, err, want_ret, want_err ? want_err : "");
		check_failures++;
	}
	k8s_tokenreview_result_free(&r);
}

/* Generated bodies: many groups, an oversized body, non-objects. */
static void test_tokenreview_generated(void)
{
	size_t cap = 10 << 20, n;
	char *s = x_malloc(cap);

	for (int groups = K8S_API_MAX_GROUPS; groups <= K8S_API_MAX_GROUPS + 1; groups++) {
		n = (size_t)snprintf(s, cap, "{\"kind\":\"TokenReview\",\"apiVersion\":"
				     "\"authentication.k8s.io/v1\",\"status\":{\"authenticated\":"
				     "true,\"user\":{\"username\":\"u\",\"groups\":[");
		for (int i = 0; i < groups; i++)
			n += (size_t)snprintf(s + n, cap - n, "%s\"g%d\"", i ? "," : "", i);
		n += (size_t)snprintf(s + n, cap - n, "]}}}");
		if (groups == K8S_API_MAX_GROUPS)
			check_tokenreview_text(__LINE__, s, n, 0, NULL);
		else
			check_tokenreview_text(__LINE__, s, n, -1,
					       "TokenReview response: status.user.groups has 4097 "
					       "entries, more than the limit of 4096");
	}

	/* a body over 4 MiB is refused before parsing */
	memset(s, ' ', K8S_API_MAX_BODY + 1);
	memcpy(s, "{}", 2);
	check_tokenreview_text(__LINE__, s, K8S_API_MAX_BODY + 1, -1,
			       "TokenReview response: 4194305 bytes is more than the limit of "
			       "4194304");
	check_tokenreview_text(__LINE__, s, K8S_API_MAX_BODY, -1,
			       "TokenReview response: kind is missing, expected \"TokenReview\"");
	/* a million values in a small body: over the token limit */
	n = 0;
	s[n++] = '[';
	for (int i = 0; i < 300000; i++) {
		s[n++] = '0';
		s[n++] = ',';
	}
	s[n - 1] = ']';
	check_tokenreview_text(__LINE__, s, n, -1,
			       "TokenReview response: invalid JSON at offset 0: more than 262144 "
			       "values");
	check_tokenreview_text(__LINE__, "", 0, -1,
			       "TokenReview response: invalid JSON at offset 0: unexpected end");
	check_tokenreview_text(__LINE__, "[]", 2, -1,
			       "TokenReview response: expected a JSON object, got an array");
	check_tokenreview_text(__LINE__, "\"x\"", 3, -1,
			       "TokenReview response: expected a JSON object, got a string");
	check_tokenreview_text(__LINE__, "<html>502 Bad Gateway</html>", 28, -1,
			       "TokenReview response: invalid JSON at offset 0: unexpected character");
	free(s);
}

/* Every strict prefix of a valid response must be refused, never allowed. */
static void test_tokenreview_truncations(void)
{
	size_t len;
	char *text = load("tokenreview_sa.json", &len);
	char err[256];
	char *ours[] = { "ocigate" };
	int accepted = 0;

	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	for (size_t n = 0; n < len; n++) {
		struct k8s_tokenreview_result r;
		char *cut = x_malloc(n + 1);
		memcpy(cut, text, n);
		if (k8s_tokenreview_parse(cut, n, ours, 1, &r, err, sizeof(err)) == 0 ||
		    r.authenticated)
			accepted++;
		k8s_tokenreview_result_free(&r);
		free(cut);
	}
	CHECK_INT(accepted, 0);
	free(text);
}

/* ---- SubjectAccessReview ---- */

static void test_sar_body(void)
{
	struct evbuffer *b = evbuffer_new();
	char *groups[] = { "system:serviceaccounts", "system:authenticated" };
	struct auth_identity id = {
		.refs = 1,
		.user = "system:serviceaccount:team-a:default",
		.uid = "4bd2b1c7",
		.groups = groups,
		.n_groups = 2,
	};
	char *v1[] = { "app-1" }, *v2[] = { "a", "b\"c" };
	struct k8s_user_extra items[] = {
		{ "authentication.kubernetes.io/pod-name", v1, 1 },
		{ "scopes", v2, 2 },
	};
	struct k8s_user_extras extra = { items, 2 };
	struct k8s_resource_attrs ra = {
		.ns = "team-a",
		.verb = "get",
		.group = "connectors.alauda.io",
		.resource = "connectors",
		.name = "harbor",
	};
	char *s;

	k8s_sar_body(b, &id, &extra, &ra);
	s = body_text(b);
	CHECK_STR(s, "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\","
		     "\"spec\":{\"resourceAttributes\":{\"namespace\":\"team-a\",\"verb\":\"get\","
		     "\"group\":\"connectors.alauda.io\",\"resource\":\"connectors\","
		     "\"name\":\"harbor\"},\"user\":\"system:serviceaccount:team-a:default\","
		     "\"uid\":\"4bd2b1c7\",\"groups\":[\"system:serviceaccounts\","
		     "\"system:authenticated\"],\"extra\":{\"authentication.kubernetes.io/pod-name\":"
		     "[\"app-1\"],\"scopes\":[\"a\",\"b\\\"c\"]}}}");
	free(s);

	/* the stricter mode: verb * on connectors/proxy; no uid, groups or extra */
	struct auth_identity bare = { .refs = 1, .user = "alice" };
	struct k8s_resource_attrs proxy = {
		.ns = "team-a",
		.verb = "*",
		.group = "connectors.alauda.io",
		.resource = "connectors",
		.subresource = "proxy",
		.name = "harbor",
		.version = "",
	};
	k8s_sar_body(b, &bare, NULL, &proxy);
	s = body_text(b);
	CHECK_STR(s, "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\","
		     "\"spec\":{\"resourceAttributes\":{\"namespace\":\"team-a\",\"verb\":\"*\","
		     "\"group\":\"connectors.alauda.io\",\"resource\":\"connectors\","
		     "\"subresource\":\"proxy\",\"name\":\"harbor\"},\"user\":\"alice\"}}");
	free(s);
	evbuffer_free(b);
}

static int sar_file(const char *name, struct k8s_sar_result *r, char *err, size_t cap)
{
	size_t len;
	char *text = load(name, &len);
	int ret = k8s_sar_parse(text, len, r, err, cap);
	free(text);
	return ret;
}

static void check_sar_bad(int line, const char *name, const char *want)
{
	struct k8s_sar_result r;
	char err[512] = "";
	int ret = sar_file(name, &r, err, sizeof(err));

	if (ret != -1 || r.allowed || strncmp(err, want, strlen(want)) != 0) {
		fprintf(stderr, "%s:%d: %s: ret %d allowed %d err \"%s\", expected \"%s\"\n",
			__FILE__, line, name, ret, r.allowed, err, want);
		check_failures++;
	}
	k8s_sar_result_free(&r);
}

static void test_sar_parse(void)
{
	struct k8s_sar_result r;
	char err[512] = "";

	CHECK_INT(sar_file("sar_allowed.json", &r, err, sizeof(err)), 0);
	CHECK(r.allowed);
	CHECK(!r.denied);
	CHECK_STR(r.reason, "RBAC: allowed by RoleBinding \"connector-users/team-a\" of ClusterRole "
			    "\"connector-user\" to Group \"system:serviceaccounts:team-a\"");
	CHECK(r.evaluation_error == NULL);
	k8s_sar_result_free(&r);

	CHECK_INT(sar_file("sar_no_opinion.json", &r, err, sizeof(err)), 0);
	CHECK(!r.allowed);
	CHECK(!r.denied);
	CHECK(r.reason == NULL);
	k8s_sar_result_free(&r);

	CHECK_INT(sar_file("sar_denied.json", &r, err, sizeof(err)), 0);
	CHECK(!r.allowed);
	CHECK(r.denied);
	CHECK_STR(r.reason, "denied by webhook policy");
	CHECK_STR(r.evaluation_error, "webhook timed out; using default deny");
	k8s_sar_result_free(&r);

#define BAD(name, want) check_sar_bad(__LINE__, name, want)
	BAD("bad_sar_allowed_string.json",
	    "SubjectAccessReview response: status.allowed is a string, expected a boolean");
	BAD("bad_sar_allowed_one.json",
	    "SubjectAccessReview response: status.allowed is a number, expected a boolean");
	BAD("bad_sar_missing_allowed.json", "SubjectAccessReview response: status.allowed is missing");
	BAD("bad_sar_allowed_and_denied.json",
	    "SubjectAccessReview response: status.allowed and status.denied are both true");
	BAD("tokenreview_sa.json", "SubjectAccessReview response: kind is \"TokenReview\", expected "
				   "\"SubjectAccessReview\"");
	BAD("status_internal_error.json",
	    "SubjectAccessReview response: the API server answered with a Status: 500 "
	    "InternalError: Internal error occurred: etcdserver: request timed out");
#undef BAD

	size_t len;
	char *text = load("sar_allowed.json", &len);
	int accepted = 0;
	while (len && text[len - 1] == '\n')
		len--;
	for (size_t n = 0; n < len; n++) {
		char *cut = x_malloc(n + 1);
		memcpy(cut, text, n);
		if (k8s_sar_parse(cut, n, &r, err, sizeof(err)) == 0 || r.allowed)
			accepted++;
		k8s_sar_result_free(&r);
		free(cut);
	}
	CHECK_INT(accepted, 0);
	free(text);
}

/* ---- Status ---- */

static void check_status(int line, const char *name, int code, const char *reason,
			 bool expired, const char *formatted)
{
	struct k8s_status st;
	char err[256] = "", buf[4096];
	size_t len;
	char *text = load(name, &len);

	if (k8s_status_parse(text, len, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, line, name, err);
		check_failures++;
		free(text);
		return;
	}
	k8s_status_format(&st, buf, sizeof(buf));
	if (st.code != code || !st.reason || strcmp(st.reason, reason) != 0 ||
	    k8s_status_is_expired(&st) != expired || !st.status ||
	    strcmp(st.status, "Failure") != 0 || strncmp(buf, formatted, strlen(formatted)) != 0) {
		fprintf(stderr, "%s:%d: %s: code %d reason %s expired %d format \"%s\"\n", __FILE__,
			line, name, st.code, st.reason ? st.reason : "(null)",
			k8s_status_is_expired(&st), buf);
		check_failures++;
	}
	k8s_status_free(&st);
	free(text);
}

static void test_status(void)
{
	struct k8s_status st;
	char err[256] = "", buf[64];

	check_status(__LINE__, "status_unauthorized.json", 401, "Unauthorized", false,
		     "401 Unauthorized: Unauthorized");
	check_status(__LINE__, "status_tokenreview_forbidden.json", 403, "Forbidden", false,
		     "403 Forbidden: tokenreviews.authentication.k8s.io is forbidden");
	check_status(__LINE__, "status_not_found.json", 404, "NotFound", false,
		     "404 NotFound: connectors.connectors.alauda.io \"harbor\" not found");
	check_status(__LINE__, "status_conflict.json", 409, "Conflict", false,
		     "409 Conflict: Operation cannot be fulfilled");
	check_status(__LINE__, "status_expired.json", 410, "Expired", true,
		     "410 Expired: The provided continue parameter is too old");
	check_status(__LINE__, "status_too_many_requests.json", 429, "TooManyRequests", false,
		     "429 TooManyRequests: Too many requests, please try again later.");
	check_status(__LINE__, "status_internal_error.json", 500, "InternalError", false,
		     "500 InternalError: Internal error occurred");

	const char *gone = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
			   "\"reason\":\"Gone\",\"message\":\"line1\\nline2\"}";
	CHECK_INT(k8s_status_parse(gone, strlen(gone), &st, err, sizeof(err)), 0);
	CHECK_INT(st.code, 0);
	CHECK(k8s_status_is_expired(&st));
	k8s_status_format(&st, buf, sizeof(buf));
	CHECK_STR(buf, "Gone: line1?line2"); /* no newline reaches a log line */
	k8s_status_format(&st, buf, 8);
	CHECK_STR(buf, "Gone: l");
	k8s_status_free(&st);

	const char *ok = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Success\"}";
	CHECK_INT(k8s_status_parse(ok, strlen(ok), &st, err, sizeof(err)), 0);
	CHECK(!k8s_status_is_expired(&st));
	k8s_status_format(&st, buf, sizeof(buf));
	CHECK_STR(buf, "Success");
	k8s_status_free(&st);

	const char *pod = "{\"kind\":\"Pod\",\"apiVersion\":\"v1\"}";
	CHECK_INT(k8s_status_parse(pod, strlen(pod), &st, err, sizeof(err)), -1);
	CHECK_STR(err, "not a Kubernetes Status (kind is not \"Status\")");
	const char *code = "{\"kind\":\"Status\",\"code\":\"403\"}";
	CHECK_INT(k8s_status_parse(code, strlen(code), &st, err, sizeof(err)), -1);
	CHECK_STR(err, "Status: code is not an HTTP status code");
	const char *big = "{\"kind\":\"Status\",\"code\":4030}";
	CHECK_INT(k8s_status_parse(big, strlen(big), &st, err, sizeof(err)), -1);
	const char *msg = "{\"kind\":\"Status\",\"message\":[\"x\"]}";
	CHECK_INT(k8s_status_parse(msg, strlen(msg), &st, err, sizeof(err)), -1);
	CHECK_STR(err, "Status: message is an array, expected a string");
	const char *v2 = "{\"kind\":\"Status\",\"apiVersion\":\"v2\"}";
	CHECK_INT(k8s_status_parse(v2, strlen(v2), &st, err, sizeof(err)), -1);
	CHECK_STR(err, "Status: apiVersion is \"v2\", expected \"v1\"");
	CHECK_INT(k8s_status_parse("Bad Gateway", 11, &st, err, sizeof(err)), -1);
	CHECK_PREFIX(err, "Status: invalid JSON at offset 0");
	CHECK(st.message == NULL && st.code == 0);
}

/* ---- URLs ---- */

static void check_url(int line, const char *s, bool https, const char *host, int port,
		      const char *prefix)
{
	struct url_base u;
	char err[200] = "";

	if (url_base_parse(&u, s, strlen(s), err, sizeof(err)) != 0) {
		fprintf(stderr, "%s:%d: %s refused: %s\n", __FILE__, line, s, err);
		check_failures++;
		return;
	}
	if (u.https != https || strcmp(u.host, host) != 0 || u.port != port ||
	    strcmp(u.path_prefix, prefix) != 0 || strcmp(u.text, s) != 0) {
		fprintf(stderr, "%s:%d: %s -> https %d host %s port %u prefix \"%s\"\n", __FILE__,
			line, s, u.https, u.host, u.port, u.path_prefix);
		check_failures++;
	}
	url_base_free(&u);
}

static void check_url_bad(int line, const char *s, const char *want)
{
	struct url_base u;
	char err[200] = "";

	if (url_base_parse(&u, s, strlen(s), err, sizeof(err)) != -1 || strcmp(err, want) != 0) {
		fprintf(stderr, "%s:%d: %s: err \"%s\", expected \"%s\"\n", __FILE__, line, s, err,
			want);
		check_failures++;
	}
	CHECK(u.host == NULL && u.text == NULL);
}

static void test_url(void)
{
	check_url(__LINE__, "https://harbor.example.com", true, "harbor.example.com", 443, "");
	check_url(__LINE__, "HTTPS://Harbor.Example.COM/", true, "harbor.example.com", 443, "");
	check_url(__LINE__, "http://10.0.0.1:5000", false, "10.0.0.1", 5000, "");
	check_url(__LINE__, "https://[fd00::1]:6443/k8s/clusters/c-x//", true, "fd00::1", 6443,
		  "/k8s/clusters/c-x");
	check_url(__LINE__, "https://h/a%2Fb", true, "h", 443, "/a%2Fb");
	check_url_bad(__LINE__, "ftp://h", "expected an http:// or https:// URL like https://registry.example.com");
	check_url_bad(__LINE__, "harbor.example.com", "expected an http:// or https:// URL like https://registry.example.com");
	check_url_bad(__LINE__, "https://", "'' is not a valid host in a URL");
	check_url_bad(__LINE__, "https://h:0", "port must be a number from 1 to 65535");
	check_url_bad(__LINE__, "https://h:65536", "port must be a number from 1 to 65535");
	check_url_bad(__LINE__, "https://h_x", "'h_x' is not a valid host in a URL");
	check_url_bad(__LINE__, "https://[fd00::1", "'[fd00::1' is not a valid host in a URL");
	check_url_bad(__LINE__, "https://u:p@h", "credentials in the URL are not allowed");
	check_url_bad(__LINE__, "https://h/?a=1", "a query or fragment is not allowed");
	check_url_bad(__LINE__, "https://h/#x", "a query or fragment is not allowed");
	check_url_bad(__LINE__, "https://h/a b", "invalid character in the URL path");
	check_url_bad(__LINE__, "https://h/a\"b", "invalid character in the URL path");
	check_url_bad(__LINE__, "https://h/%zz", "invalid character in the URL path");
}

/* ---- Connectors, Secrets, Lists ---- */

static void test_connector_list(void)
{
	struct k8s_list l;
	struct k8s_connector c;
	char err[512] = "";
	size_t len;
	char *text = load("connector_list.json", &len);
	int t;

	CHECK_INT(k8s_list_parse(&l, text, len, "Connector", err, sizeof(err)), 0);
	CHECK_STR(l.resource_version, "48310");
	CHECK_STR(l.continue_token, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDgzMDAsInN0YXJ0Ijoia3Vi"
				    "ZS1wdWJsaWMvcHVibGljXHUwMDAwIn0");
	CHECK_INT(l.remaining, 7);
	CHECK_INT(l.n_items, 3);

	t = json_array_first(&l.doc, l.items);
	CHECK_INT(k8s_connector_parse(&l.doc, t, &c, err, sizeof(err)), 0);
	CHECK_STR(c.meta.ns, "team-a");
	CHECK_STR(c.meta.name, "harbor");
	CHECK_STR(c.meta.uid, "9d1c2b3a-3333-4333-8333-333333333333");
	CHECK_STR(c.meta.resource_version, "48121");
	CHECK_INT(c.meta.generation, 3);
	CHECK_STR(c.class_name, "oci");
	CHECK(c.address.https);
	CHECK_STR(c.address.host, "harbor.example.com");
	CHECK_INT(c.address.port, 443);
	CHECK_STR(c.address.path_prefix, "");
	CHECK_STR(c.address.text, "https://Harbor.Example.com/");
	CHECK_STR(c.auth_name, "tokenAuth");
	CHECK_STR(c.secret_name, "harbor-secret");
	CHECK_STR(c.secret_namespace, "team-a");
	CHECK(c.ca_secret_name == NULL);
	k8s_connector_free(&c);

	t = json_next(&l.doc, t);
	CHECK_INT(k8s_connector_parse(&l.doc, t, &c, err, sizeof(err)), 0);
	CHECK_STR(c.meta.name, "mirror");
	CHECK(!c.address.https);
	CHECK_STR(c.address.host, "fd00::10");
	CHECK_INT(c.address.port, 5000);
	CHECK_STR(c.address.path_prefix, "/mirror/v2-prefix");
	CHECK_STR(c.auth_name, "basicAuth");
	CHECK_STR(c.secret_name, "mirror-creds");
	CHECK_STR(c.secret_namespace, "ocigate");
	CHECK_STR(c.ca_secret_name, "mirror-ca");
	k8s_connector_free(&c);

	t = json_next(&l.doc, t);
	CHECK_INT(k8s_connector_parse(&l.doc, t, &c, err, sizeof(err)), 0);
	CHECK_STR(c.meta.name, "public");
	CHECK(c.auth_name == NULL && c.secret_name == NULL && c.secret_namespace == NULL);
	CHECK(c.meta.uid != NULL);
	k8s_connector_free(&c);
	CHECK_INT(json_next(&l.doc, t), -1);
	k8s_list_free(&l);
	free(text);

	text = load("connector_list_last.json", &len);
	CHECK_INT(k8s_list_parse(&l, text, len, "Connector", err, sizeof(err)), 0);
	CHECK(l.continue_token == NULL);
	CHECK_INT(l.remaining, -1);
	CHECK_INT(l.n_items, 0);
	CHECK_INT(json_array_first(&l.doc, l.items), -1);
	k8s_list_free(&l);
	free(text);
}

static void test_connector_bad(void)
{
	static const struct {
		const char *name, *class_name, *err;
	} want[] = {
		{ "git", "git", "Connector team-a/git: spec.address: expected an http:// or https:// URL like https://registry.example.com" },
		{ "noaddr", "oci", "Connector team-a/noaddr: spec.address is missing" },
		{ "query", "oci", "Connector team-a/query: spec.address: a query or fragment is not allowed" },
		{ "future", NULL, "Connector team-a/future: apiVersion is \"connectors.alauda.io/v1beta9\", "
				  "expected \"connectors.alauda.io/v1alpha1\"" },
		{ "noref", NULL, "Connector team-a/noref: spec.auth.secretRef.name is missing" },
		{ NULL, NULL, "Connector: metadata.name is missing" },
		{ "gen", NULL, "Connector team-a/gen: metadata.generation is not a non-negative integer" },
		{ "creds", NULL, "Connector team-a/creds: spec.address: credentials in the URL are not allowed" },
	};
	struct k8s_list l;
	char err[512] = "";
	size_t len, i = 0;
	char *text = load("bad_connector_list_address.json", &len);

	CHECK_INT(k8s_list_parse(&l, text, len, "Connector", err, sizeof(err)), 0);
	CHECK_INT(l.n_items, (int)OG_ARRAY_LEN(want));
	for (int t = json_array_first(&l.doc, l.items); t >= 0 && i < OG_ARRAY_LEN(want);
	     t = json_next(&l.doc, t), i++) {
		struct k8s_connector c;
		memset(&c, 0x5a, sizeof(c));
		CHECK_INT(k8s_connector_parse(&l.doc, t, &c, err, sizeof(err)), -1);
		CHECK_STR(err, want[i].err);
		if (want[i].name)
			CHECK_STR(c.meta.name, want[i].name);
		else
			CHECK(c.meta.name == NULL);
		if (want[i].class_name)
			CHECK_STR(c.class_name, want[i].class_name);
		CHECK(c.address.host == NULL && c.secret_name == NULL);
		k8s_connector_free(&c);
	}
	k8s_list_free(&l);
	free(text);

	/* the same document is no SecretList, and a Connector is not a list */
	text = load("connector_list.json", &len);
	CHECK_INT(k8s_list_parse(&l, text, len, "Secret", err, sizeof(err)), -1);
	CHECK_STR(err, "SecretList response: kind is \"ConnectorList\", expected \"SecretList\"");
	CHECK(l.doc.n == 0 && l.items == -1 && l.resource_version == NULL);
	free(text);

	static const struct {
		const char *body, *err;
	} lists[] = {
		{ "{\"kind\":\"ConnectorList\",\"items\":[]}",
		  "ConnectorList response: metadata is missing" },
		{ "{\"kind\":\"ConnectorList\",\"metadata\":{},\"items\":[]}",
		  "ConnectorList response: metadata.resourceVersion is missing" },
		{ "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":{}}",
		  "ConnectorList response: items is an object, expected an array" },
		{ "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[{},\"x\"]}",
		  "ConnectorList response: items[1] is a string, expected an object" },
		{ "{\"metadata\":{\"resourceVersion\":\"1\",\"remainingItemCount\":-1}}",
		  "ConnectorList response: metadata.remainingItemCount is not a count" },
		{ "{\"metadata\":{\"resourceVersion\":1}}",
		  "ConnectorList response: metadata.resourceVersion is a number, expected a string" },
	};
	for (i = 0; i < OG_ARRAY_LEN(lists); i++) {
		CHECK_INT(k8s_list_parse(&l, lists[i].body, strlen(lists[i].body), "Connector", err,
					 sizeof(err)), -1);
		CHECK_STR(err, lists[i].err);
	}
	const char *null_items = "{\"metadata\":{\"resourceVersion\":\"9\"},\"items\":null}";
	CHECK_INT(k8s_list_parse(&l, null_items, strlen(null_items), "Connector", err, sizeof(err)), 0);
	CHECK_INT(l.items, -1);
	CHECK_INT(l.n_items, 0);
	CHECK_INT(json_array_first(&l.doc, l.items), -1);
	k8s_list_free(&l);

	text = load("status_expired.json", &len);
	CHECK_INT(k8s_list_parse(&l, text, len, "Connector", err, sizeof(err)), -1);
	CHECK_PREFIX(err, "ConnectorList response: the API server answered with a Status: 410 "
			  "Expired: The provided continue parameter is too old");
	free(text);
}

static void test_secret_list(void)
{
	static const char ca[] = "-----BEGIN CERTIFICATE-----\nMIIBfakeCAone\n-----END CERTIFICATE-----\n"
				 "-----BEGIN CERTIFICATE-----\nMIIBfakeCAtwo\n-----END CERTIFICATE-----\n";
	struct k8s_list l;
	struct k8s_secret s;
	char err[512] = "";
	size_t len;
	char *text = load("secret_list.json", &len);
	int t;

	CHECK_INT(k8s_list_parse(&l, text, len, "Secret", err, sizeof(err)), 0);
	CHECK_STR(l.resource_version, "47010");
	CHECK_INT(l.n_items, 4);

	t = json_array_first(&l.doc, l.items);
	CHECK_INT(k8s_secret_parse(&l.doc, t, &s, err, sizeof(err)), 0);
	CHECK_STR(s.meta.ns, "team-a");
	CHECK_STR(s.meta.name, "harbor-secret");
	CHECK_STR(s.meta.resource_version, "47001");
	CHECK_STR(s.type, "cpaas.io/distribution-registry-token");
	CHECK_STR(s.username, "robot$demo");
	CHECK_STR(s.password, "s3cr3t:pass");
	CHECK(s.ca_pem == NULL && s.ca_pem_len == 0 && s.n_ca_keys == 0);
	k8s_secret_free(&s);

	t = json_next(&l.doc, t);
	CHECK_INT(k8s_secret_parse(&l.doc, t, &s, err, sizeof(err)), 0);
	CHECK_STR(s.meta.name, "mirror-ca");
	CHECK(s.username == NULL && s.password == NULL);
	CHECK_INT(s.n_ca_keys, 2);
	CHECK_MEM_STR(s.ca_pem, s.ca_pem_len, ca);
	k8s_secret_free(&s);

	t = json_next(&l.doc, t);
	CHECK_INT(k8s_secret_parse(&l.doc, t, &s, err, sizeof(err)), 0);
	CHECK_STR(s.meta.name, "empty");
	CHECK_STR(s.type, "Opaque");
	CHECK(s.username == NULL && s.password == NULL && s.ca_pem == NULL);
	k8s_secret_free(&s);

	t = json_next(&l.doc, t);
	CHECK_INT(k8s_secret_parse(&l.doc, t, &s, err, sizeof(err)), 0);
	CHECK_STR(s.type, "kubernetes.io/dockerconfigjson");
	CHECK(s.username == NULL && s.password == NULL && s.ca_pem == NULL);
	k8s_secret_free(&s);
	k8s_list_free(&l);
	free(text);
}

static void check_secret_bad(int line, const char *file, const char *name, const char *want)
{
	struct json_doc d;
	struct k8s_secret s;
	char err[512] = "";
	size_t len;
	char *text = load(file, &len);

	if (json_parse(&d, text, len, 1000, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, line, file, err);
		check_failures++;
		free(text);
		return;
	}
	int ret = k8s_secret_parse(&d, 0, &s, err, sizeof(err));
	if (ret != -1 || strcmp(err, want) != 0 || !s.meta.name || strcmp(s.meta.name, name) != 0 ||
	    s.password || s.username || s.ca_pem) {
		fprintf(stderr, "%s:%d: %s: ret %d err \"%s\", expected \"%s\"\n", __FILE__, line,
			file, ret, err, want);
		check_failures++;
	}
	k8s_secret_free(&s);
	json_doc_free(&d);
	free(text);
}

static void test_secret_bad(void)
{
	check_secret_bad(__LINE__, "bad_secret_base64.json", "broken",
			 "Secret team-a/broken: data[\"password\"] is not valid base64");
	check_secret_bad(__LINE__, "bad_secret_nul.json", "nul",
			 "Secret team-a/nul: data[\"username\"] contains a NUL byte");
	check_secret_bad(__LINE__, "bad_secret_number.json", "num",
			 "Secret team-a/num: data[\"password\"] is a number, expected a base64 string");
	check_secret_bad(__LINE__, "bad_secret_newline.json", "pad",
			 "Secret team-a/pad: data[\"tls.crt\"] is not valid base64");

	struct json_doc d;
	struct k8s_secret s;
	char err[256];
	const char *cm = "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\","
			 "\"namespace\":\"b\"},\"data\":{}}";
	CHECK_INT(json_parse(&d, cm, strlen(cm), 100, err, sizeof(err)), 0);
	CHECK_INT(k8s_secret_parse(&d, 0, &s, err, sizeof(err)), -1);
	CHECK_STR(err, "Secret b/a: kind is \"ConfigMap\", expected \"Secret\"");
	k8s_secret_free(&s);
	CHECK_INT(k8s_secret_parse(&d, json_get(&d, 0, "kind"), &s, err, sizeof(err)), -1);
	CHECK_STR(err, "Secret: the object is a string, expected an object");
	json_doc_free(&d);

	/* a data value of null (a nil []byte) is an empty value */
	const char *nul = "{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},\"data\":{\"password\":null,"
			  "\"x.pem\":\"\"}}";
	CHECK_INT(json_parse(&d, nul, strlen(nul), 100, err, sizeof(err)), 0);
	CHECK_INT(k8s_secret_parse(&d, 0, &s, err, sizeof(err)), 0);
	CHECK_STR(s.password, "");
	CHECK_INT(s.ca_pem_len, 0);
	CHECK_INT(s.n_ca_keys, 1);
	k8s_secret_free(&s);
	json_doc_free(&d);
}

/* ---- watch events ---- */

static void test_watch(void)
{
	static const struct {
		enum k8s_watch_type type;
		const char *rv;
		bool initial_end;
	} want[] = {
		{ K8S_WATCH_ADDED, "48400", false },
		{ K8S_WATCH_MODIFIED, "48401", false },
		{ K8S_WATCH_BOOKMARK, "48402", true },
		{ K8S_WATCH_DELETED, "48403", false },
		{ K8S_WATCH_BOOKMARK, "48500", false },
		{ K8S_WATCH_ERROR, NULL, false },
	};
	size_t len, i = 0;
	char *text = load("watch_connectors.jsonl", &len);
	char err[512] = "";

	for (char *line = text; line < text + len && i < OG_ARRAY_LEN(want); i++) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		size_t n = nl ? (size_t)(nl - line) + 1 : (size_t)(text + len - line);
		struct k8s_watch_event ev;

		if (k8s_watch_event_parse(&ev, line, n, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s:%d: event %zu: %s\n", __FILE__, __LINE__, i, err);
			check_failures++;
			line += n;
			continue;
		}
		CHECK_INT(ev.type, want[i].type);
		if (want[i].rv)
			CHECK_STR(ev.resource_version, want[i].rv);
		else
			CHECK(ev.resource_version == NULL);
		CHECK_INT(ev.initial_events_end, want[i].initial_end);
		if (ev.type == K8S_WATCH_ADDED || ev.type == K8S_WATCH_DELETED) {
			struct k8s_connector c;
			CHECK_INT(k8s_connector_parse(&ev.doc, ev.object, &c, err, sizeof(err)), 0);
			CHECK_STR(c.meta.name, "harbor");
			CHECK_STR(c.meta.resource_version, want[i].rv);
			k8s_connector_free(&c);
		}
		if (ev.type == K8S_WATCH_ERROR) {
			CHECK_INT(ev.status.code, 410);
			CHECK_STR(ev.status.reason, "Expired");
			CHECK_STR(ev.status.message, "too old resource version: 48000 (48403)");
			CHECK(k8s_status_is_expired(&ev.status));
		}
		k8s_watch_event_free(&ev);
		line += n;
	}
	CHECK_INT(i, OG_ARRAY_LEN(want));
	free(text);
	CHECK_STR(k8s_watch_type_name(K8S_WATCH_BOOKMARK), "BOOKMARK");
}

static void test_watch_bad(void)
{
	static const char *const want[] = {
		"watch event: unknown type \"SYNC\"",
		"watch event ADDED: object is missing",
		"watch event ADDED: object.metadata.resourceVersion is missing",
		"watch event: type is missing",
		"watch event ERROR: not a Kubernetes Status (kind is not \"Status\")",
		"watch event MODIFIED: object is a string, expected an object",
		"watch event: invalid JSON at offset 63: text after the JSON value",
		"watch event: invalid JSON at offset 63: unexpected end of text",
		"watch event: type is a number, expected a string",
		"watch event: expected a JSON object, got an array",
	};
	size_t len, i = 0;
	char *text = load("bad_watch_events.jsonl", &len);
	char err[512] = "";

	for (char *line = text; line < text + len && i < OG_ARRAY_LEN(want); i++) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		size_t n = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
		struct k8s_watch_event ev;

		memset(&ev, 0x5a, sizeof(ev));
		CHECK_INT(k8s_watch_event_parse(&ev, line, n, err, sizeof(err)), -1);
		CHECK_STR(err, want[i]);
		CHECK(ev.doc.n == 0 && ev.resource_version == NULL && ev.object == -1);
		k8s_watch_event_free(&ev);
		line += n + 1;
	}
	CHECK_INT(i, OG_ARRAY_LEN(want));
	free(text);
}

int main(int argc, char **argv)
{
	static char dir[1024];

	if (argc > 1) {
		data_dir = argv[1];
	} else {
		const char *slash = strrchr(__FILE__, '/');
		snprintf(dir, sizeof(dir), "%.*sdata/k8s", slash ? (int)(slash - __FILE__ + 1) : 0,
			 __FILE__);
		data_dir = dir;
	}
	test_tokenreview_body();
	test_tokenreview_ok();
	test_tokenreview_bad();
	test_tokenreview_generated();
	test_tokenreview_truncations();
	test_sar_body();
	test_sar_parse();
	test_status();
	test_url();
	test_connector_list();
	test_connector_bad();
	test_secret_list();
	test_secret_bad();
	test_watch();
	test_watch_bad();
	CHECK_DONE();
}
