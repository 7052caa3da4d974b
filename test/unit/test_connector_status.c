/* Connector status: conditions from what the store and a probe found,
 * lastTransitionTime kept across unchanged statuses, the exact merge patch,
 * reading back what was written, and other writers' conditions kept. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "k8s/status.h"
#include "test/unit/check.h"
#include "util/json.h"
#include "util/xalloc.h"

#define T0 "2024-05-01T10:00:00Z"
#define T1 "2024-05-01T10:05:00Z"
#define URL "http://ocigate.example.com:30500/namespaces/team-a/connectors/harbor"

static const struct k8s_status_input base_input = {
	.problem = K8S_STORE_OK,
	.has_secret_ref = true,
	.probe = K8S_PROBE_OK,
	.http_status = 200,
	.generation = 3,
	.url = URL,
	.now = T0,
};

/* The patch body as text. */
static char *patch_text(const struct k8s_conn_status *st, const char *rv)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	k8s_conn_status_patch(b, st, rv);
	n = evbuffer_get_length(b);
	s = x_malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

/* What the API server would hold after the patch: its "status". */
static void read_back(const struct k8s_conn_status *st, struct k8s_conn_status *out)
{
	char *body = patch_text(st, "7");
	struct json_doc d = { 0 };
	char err[200];
	struct og_str raw;

	CHECK_INT(json_parse(&d, body, strlen(body), 10000, err, sizeof(err)), 0);
	raw = json_raw(&d, json_get(&d, 0, "status"));
	CHECK_INT(k8s_conn_status_parse(raw.p, raw.n, out, err, sizeof(err)), 0);
	json_doc_free(&d);
	free(body);
}

static void check_cond(const struct k8s_conn_status *st, const char *type, const char *status,
		       const char *reason, const char *message, const char *ltt, int line)
{
	const struct k8s_condition *c = k8s_conn_status_find(st, type);

	if (!c) {
		fprintf(stderr, "%s:%d: no condition %s\n", __FILE__, line, type);
		check_failures++;
		return;
	}
	if (strcmp(c->status, status) || strcmp(c->reason, reason) ||
	    (message && strcmp(c->message, message)) || strcmp(c->last_transition, ltt)) {
		fprintf(stderr, "%s:%d: %s is %s/%s/\"%s\"/%s, expected %s/%s/\"%s\"/%s\n", __FILE__,
			line, type, c->status, c->reason, c->message, c->last_transition, status,
			reason, message ? message : "*", ltt);
		check_failures++;
	}
}

#define COND(st, type, status, reason, message, ltt) \
	check_cond(st, type, status, reason, message, ltt, __LINE__)

static void test_url_and_time(void)
{
	char *u = k8s_conn_status_url("192.168.1.5:31567", "oci-connector-demo", "harbor");
	char t[32];

	CHECK_STR(u, "http://192.168.1.5:31567/namespaces/oci-connector-demo/connectors/harbor");
	free(u);
	k8s_status_time(0, t);
	CHECK_STR(t, "1970-01-01T00:00:00Z");
	k8s_status_time(1714557600, t);
	CHECK_STR(t, T0);
}

static void test_missing_secret(void)
{
	struct k8s_conn_status cur, st;
	struct k8s_status_input in = base_input;

	CHECK_INT(k8s_conn_status_parse(NULL, 0, &cur, NULL, 0), 0);
	in.problem = K8S_STORE_SECRET_MISSING;
	in.problem_message = "connector team-a/harbor: auth Secret team-a/harbor-secret not found";
	in.probe = K8S_PROBE_NONE;
	in.http_status = 0;
	k8s_conn_status_compute(&cur, &in, &st);
	CHECK_INT(st.n, 4);
	CHECK_INT(st.observed_generation, 3);
	CHECK_STR(st.url, URL);
	CHECK_STR(st.conds[0].type, "SecretReady");
	CHECK_STR(st.conds[3].type, "Ready");
	COND(&st, "SecretReady", "False", "SecretNotFound",
	     "connector team-a/harbor: auth Secret team-a/harbor-secret not found", T0);
	COND(&st, "LivenessReady", "Unknown", "SecretNotReady",
	     "the registry is probed once the Secret is ready", T0);
	COND(&st, "AuthReady", "Unknown", "SecretNotReady", NULL, T0);
	COND(&st, "Ready", "False", "SecretNotFound",
	     "connector team-a/harbor: auth Secret team-a/harbor-secret not found", T0);
	CHECK(!k8s_conn_status_ready(&st));
	for (size_t i = 0; i < st.n; i++)
		CHECK_INT(st.conds[i].observed_generation, 3);
	CHECK(!k8s_conn_status_equal(&cur, &st));
	k8s_conn_status_free(&cur);
	k8s_conn_status_free(&st);
}

static void test_patch_body_exact(void)
{
	struct k8s_conn_status cur, st;
	struct k8s_status_input in = base_input;
	char *body;

	CHECK_INT(k8s_conn_status_parse(NULL, 0, &cur, NULL, 0), 0);
	in.has_secret_ref = false;
	k8s_conn_status_compute(&cur, &in, &st);
	body = patch_text(&st, "12345");
	CHECK_STR(body,
		"{\"metadata\":{\"resourceVersion\":\"12345\"},\"status\":{\"observedGeneration\":3,"
		"\"conditions\":["
		"{\"type\":\"SecretReady\",\"status\":\"True\",\"observedGeneration\":3,"
		"\"lastTransitionTime\":\"" T0 "\",\"reason\":\"SecretOptional\","
		"\"message\":\"no secretRef: the registry is accessed without credentials\"},"
		"{\"type\":\"LivenessReady\",\"status\":\"True\",\"observedGeneration\":3,"
		"\"lastTransitionTime\":\"" T0 "\",\"reason\":\"RegistryReachable\","
		"\"message\":\"GET /v2/ answered HTTP 200\"},"
		"{\"type\":\"AuthReady\",\"status\":\"True\",\"observedGeneration\":3,"
		"\"lastTransitionTime\":\"" T0 "\",\"reason\":\"AnonymousAccess\","
		"\"message\":\"GET /v2/ answered HTTP 200\"},"
		"{\"type\":\"Ready\",\"status\":\"True\",\"observedGeneration\":3,"
		"\"lastTransitionTime\":\"" T0 "\",\"reason\":\"\",\"message\":\"\"}],"
		"\"proxy\":{\"httpAddress\":{\"url\":\"" URL "\"}}}}");
	free(body);
	/* Without a resourceVersion there is no precondition. */
	body = patch_text(&st, NULL);
	CHECK(strncmp(body, "{\"status\":{\"observedGeneration\":3,", 34) == 0);
	free(body);
	CHECK(k8s_conn_status_ready(&st));
	k8s_conn_status_free(&cur);
	k8s_conn_status_free(&st);
}

/* Escaping in messages: quotes, backslashes, control characters. */
static void test_patch_escapes(void)
{
	struct k8s_conn_status cur, st, back;
	struct k8s_status_input in = base_input;

	CHECK_INT(k8s_conn_status_parse(NULL, 0, &cur, NULL, 0), 0);
	in.probe = K8S_PROBE_UNREACHABLE;
	in.http_status = 0;
	in.detail = "TLS: \"bad\" cert\\chain\n";
	k8s_conn_status_compute(&cur, &in, &st);
	read_back(&st, &back);
	COND(&back, "LivenessReady", "False", "RegistryUnreachable",
	     "GET /v2/: TLS: \"bad\" cert\\chain\n", T0);
	CHECK(k8s_conn_status_equal(&st, &back));
	k8s_conn_status_free(&cur);
	k8s_conn_status_free(&st);
	k8s_conn_status_free(&back);
}

/* The sequence of the issue: secret missing, then added, then the
 * registry down, then up again; an unchanged probe writes nothing. */
static void test_transitions(void)
{
	struct k8s_conn_status cur, st, again;
	struct k8s_status_input in = base_input;

	CHECK_INT(k8s_conn_status_parse(NULL, 0, &cur, NULL, 0), 0);
	in.problem = K8S_STORE_SECRET_MISSING;
	in.problem_message = "missing";
	in.probe = K8S_PROBE_NONE;
	k8s_conn_status_compute(&cur, &in, &st);
	k8s_conn_status_free(&cur);
	read_back(&st, &cur);
	k8s_conn_status_free(&st);

	/* the same a minute later: equal, nothing to write */
	in.now = T1;
	k8s_conn_status_compute(&cur, &in, &again);
	CHECK(k8s_conn_status_equal(&cur, &again));
	COND(&again, "SecretReady", "False", "SecretNotFound", "missing", T0);
	k8s_conn_status_free(&again);

	/* the secret is added: everything True, new times */
	in = base_input;
	in.now = T1;
	k8s_conn_status_compute(&cur, &in, &st);
	CHECK(!k8s_conn_status_equal(&cur, &st));
	COND(&st, "SecretReady", "True", "SecretFound", "the Secret has a username and a password", T1);
	COND(&st, "LivenessReady", "True", "RegistryReachable", "GET /v2/ answered HTTP 200", T1);
	COND(&st, "AuthReady", "True", "CredentialsAccepted", "GET /v2/ answered HTTP 200", T1);
	COND(&st, "Ready", "True", "", "", T1);
	k8s_conn_status_free(&cur);
	read_back(&st, &cur);
	k8s_conn_status_free(&st);

	/* registry down: SecretReady keeps its time */
	in.now = "2024-05-01T11:00:00Z";
	in.probe = K8S_PROBE_UNREACHABLE;
	in.http_status = 0;
	in.detail = "connect to https://reg:443: Connection refused";
	k8s_conn_status_compute(&cur, &in, &st);
	COND(&st, "SecretReady", "True", "SecretFound", NULL, T1);
	COND(&st, "LivenessReady", "False", "RegistryUnreachable",
	     "GET /v2/: connect to https://reg:443: Connection refused", "2024-05-01T11:00:00Z");
	COND(&st, "AuthReady", "Unknown", "RegistryUnreachable", NULL, "2024-05-01T11:00:00Z");
	COND(&st, "Ready", "False", "RegistryUnreachable",
	     "GET /v2/: connect to https://reg:443: Connection refused", "2024-05-01T11:00:00Z");
	k8s_conn_status_free(&cur);
	read_back(&st, &cur);
	k8s_conn_status_free(&st);

	/* a different error, same statuses: the message changes, times do not */
	in.now = "2024-05-01T11:01:00Z";
	in.detail = "connect to https://reg:443: timed out";
	k8s_conn_status_compute(&cur, &in, &st);
	CHECK(!k8s_conn_status_equal(&cur, &st));
	COND(&st, "LivenessReady", "False", "RegistryUnreachable",
	     "GET /v2/: connect to https://reg:443: timed out", "2024-05-01T11:00:00Z");
	k8s_conn_status_free(&st);

	/* up again */
	in.now = "2024-05-01T11:02:00Z";
	in.probe = K8S_PROBE_OK;
	in.http_status = 200;
	in.detail = "";
	k8s_conn_status_compute(&cur, &in, &st);
	COND(&st, "LivenessReady", "True", "RegistryReachable", NULL, "2024-05-01T11:02:00Z");
	COND(&st, "AuthReady", "True", "CredentialsAccepted", NULL, "2024-05-01T11:02:00Z");
	COND(&st, "Ready", "True", "", "", "2024-05-01T11:02:00Z");
	COND(&st, "SecretReady", "True", "SecretFound", NULL, T1);
	k8s_conn_status_free(&st);

	/* a new generation alone is a change */
	in.generation = 4;
	in.now = "2024-05-01T11:00:00Z";
	in.probe = K8S_PROBE_UNREACHABLE;
	in.http_status = 0;
	in.detail = "connect to https://reg:443: Connection refused";
	k8s_conn_status_compute(&cur, &in, &st);
	CHECK(!k8s_conn_status_equal(&cur, &st));
	CHECK_INT(st.observed_generation, 4);
	CHECK_INT(st.conds[1].observed_generation, 4);
	k8s_conn_status_free(&st);
	k8s_conn_status_free(&cur);
}

static void test_auth_outcomes(void)
{
	struct k8s_conn_status cur, st;
	struct k8s_status_input in = base_input;

	CHECK_INT(k8s_conn_status_parse(NULL, 0, &cur, NULL, 0), 0);
	in.probe = K8S_PROBE_DENIED;
	in.http_status = 401;
	in.detail = "GET /v2/ answered HTTP 401 to the connector's credentials";
	k8s_conn_status_compute(&cur, &in, &st);
	COND(&st, "LivenessReady", "True", "RegistryReachable", "GET /v2/ answered HTTP 401", T0);
	COND(&st, "AuthReady", "False", "CredentialsRejected",
	     "GET /v2/ answered HTTP 401 to the connector's credentials", T0);
	COND(&st, "Ready", "False", "CredentialsRejected", NULL, T0);
	k8s_conn_status_free(&st);

	in.probe = K8S_PROBE_TOKEN_FAILED;
	in.detail = "registry token request failed: the token service answered HTTP 500";
	k8s_conn_status_compute(&cur, &in, &st);
	COND(&st, "AuthReady", "False", "TokenRequestFailed",
	     "registry token request failed: the token service answered HTTP 500", T0);
	COND(&st, "Ready", "False", "TokenRequestFailed", NULL, T0);
	k8s_conn_status_free(&st);

	in.probe = K8S_PROBE_UNEXPECTED;
	in.http_status = 404;
	in.detail = "GET /v2/ answered HTTP 404";
	k8s_conn_status_compute(&cur, &in, &st);
	COND(&st, "LivenessReady", "True", "RegistryReachable", "GET /v2/ answered HTTP 404", T0);
	COND(&st, "AuthReady", "False", "UnexpectedResponse", "GET /v2/ answered HTTP 404", T0);
	k8s_conn_status_free(&st);

	in.problem = K8S_STORE_SECRET_INVALID;
	in.problem_message = "connector team-a/harbor: Secret team-a/s has no key \"password\"";
	in.probe = K8S_PROBE_NONE;
	k8s_conn_status_compute(&cur, &in, &st);
	COND(&st, "SecretReady", "False", "SecretInvalid",
	     "connector team-a/harbor: Secret team-a/s has no key \"password\"", T0);
	COND(&st, "Ready", "False", "SecretInvalid", NULL, T0);
	k8s_conn_status_free(&st);

	/* Only Unknowns: Ready is Unknown too. */
	in.problem = K8S_STORE_NOT_LOADED;
	in.problem_message = "not loaded yet";
	k8s_conn_status_compute(&cur, &in, &st);
	COND(&st, "SecretReady", "Unknown", "SecretLoading", "not loaded yet", T0);
	COND(&st, "Ready", "Unknown", "SecretLoading", "not loaded yet", T0);
	k8s_conn_status_free(&st);

	in.problem = K8S_STORE_INVALID;
	in.problem_message = "connector team-a/harbor is invalid: spec.address: not a URL";
	k8s_conn_status_compute(&cur, &in, &st);
	COND(&st, "SecretReady", "Unknown", "InvalidSpec", in.problem_message, T0);
	COND(&st, "LivenessReady", "Unknown", "InvalidSpec", in.problem_message, T0);
	COND(&st, "Ready", "Unknown", "InvalidSpec", in.problem_message, T0);
	k8s_conn_status_free(&st);
	k8s_conn_status_free(&cur);
}

/* A condition someone else owns stays, byte for byte; ours replace older
 * copies of ours; other status fields are not in the patch at all. */
static void test_foreign_conditions(void)
{
	static const char status[] =
		"{\"observedGeneration\":2,\"phase\":\"x\",\"conditions\":["
		"{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"2020-01-01T00:00:00Z\","
		"\"reason\":\"Old\",\"message\":\"m\"},"
		"{\"type\":\"Mirrored\",\"status\":\"True\",\"reason\":\"Sync\",\"extra\":[1,2]},"
		"\"junk\"]}";
	struct k8s_conn_status cur, st;
	struct k8s_status_input in = base_input;
	char *body;

	CHECK_INT(k8s_conn_status_parse(status, strlen(status), &cur, NULL, 0), 0);
	CHECK_INT(cur.n, 3);
	CHECK_INT(cur.observed_generation, 2);
	CHECK(cur.url == NULL);
	k8s_conn_status_compute(&cur, &in, &st);
	CHECK_INT(st.n, 6);
	COND(&st, "Ready", "True", "", "", "2020-01-01T00:00:00Z"); /* no transition */
	body = patch_text(&st, NULL);
	CHECK(strstr(body, ",{\"type\":\"Mirrored\",\"status\":\"True\",\"reason\":\"Sync\","
			   "\"extra\":[1,2]},\"junk\"]") != NULL);
	CHECK(strstr(body, "phase") == NULL);
	CHECK(strstr(body, "\"reason\":\"Old\"") == NULL);
	free(body);
	k8s_conn_status_free(&st);
	k8s_conn_status_free(&cur);
}

static void test_parse_errors(void)
{
	struct k8s_conn_status st;
	char err[200];

	CHECK_INT(k8s_conn_status_parse("[]", 2, &st, err, sizeof(err)), -1);
	CHECK_STR(err, "status is array, not an object");
	CHECK_INT(st.n, 0);
	k8s_conn_status_free(&st);
	CHECK_INT(k8s_conn_status_parse("{\"conditions\":{}}", 17, &st, err, sizeof(err)), -1);
	CHECK_STR(err, "status.conditions is object, not an array");
	k8s_conn_status_free(&st);
	CHECK_INT(k8s_conn_status_parse("{\"conditions\":", 14, &st, err, sizeof(err)), -1);
	k8s_conn_status_free(&st);
	CHECK_INT(k8s_conn_status_parse("{\"conditions\":null}", 19, &st, err, sizeof(err)), 0);
	CHECK_INT(st.n, 0);
	CHECK_INT(st.observed_generation, -1);
	k8s_conn_status_free(&st);
	/* Fields of the wrong type read as absent: a rewrite follows. */
	static const char odd[] = "{\"observedGeneration\":\"2\",\"proxy\":{\"httpAddress\":{\"url\":5}},"
				  "\"conditions\":[{\"type\":\"Ready\",\"status\":true}]}";
	CHECK_INT(k8s_conn_status_parse(odd, strlen(odd), &st, err, sizeof(err)), 0);
	CHECK_INT(st.observed_generation, -1);
	CHECK(st.url == NULL);
	CHECK_INT(st.n, 1);
	CHECK_STR(st.conds[0].status, "");
	CHECK_STR(st.conds[0].last_transition, "");
	k8s_conn_status_free(&st);
}

/* A condition with the same status but no lastTransitionTime gets now. */
static void test_missing_time(void)
{
	static const char status[] =
		"{\"conditions\":[{\"type\":\"SecretReady\",\"status\":\"True\",\"reason\":\"SecretFound\"}]}";
	struct k8s_conn_status cur, st;
	struct k8s_status_input in = base_input;

	CHECK_INT(k8s_conn_status_parse(status, strlen(status), &cur, NULL, 0), 0);
	k8s_conn_status_compute(&cur, &in, &st);
	COND(&st, "SecretReady", "True", "SecretFound", NULL, T0);
	k8s_conn_status_free(&st);
	k8s_conn_status_free(&cur);
}

int main(void)
{
	test_url_and_time();
	test_missing_secret();
	test_patch_body_exact();
	test_patch_escapes();
	test_transitions();
	test_auth_outcomes();
	test_foreign_conditions();
	test_parse_errors();
	test_missing_time();
	CHECK_DONE();
}
