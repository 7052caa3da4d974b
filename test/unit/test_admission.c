/* The image-rewrite admission decision (k8s/admission.h) on recorded
 * AdmissionReview requests from test/unit/data/admission (argv[1]; by
 * default found next to this file). Every JSONPatch is applied to the
 * request's Pod here and the resulting images compared exactly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "check.h"
#include "k8s/admission.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/xalloc.h"

#define PUB "ocigate.example.com:5000"
#define PX PUB "/namespaces/team-a/connectors/"
#define D64 "sha256:4b1c5d6e7f80912a3b4c5d6e7f80912a3b4c5d6e7f80912a3b4c5d6e7f80912a"

static const char *data_dir;

/* ---- the fake connector table ---- */

struct fake_lookups {
	unsigned calls;
	char last[300];
};

static void fake_lookup(void *ctx, const char *ns, const char *name,
			struct k8s_admission_connector *out)
{
	static const struct {
		const char *id, *class_name, *host, *invalid;
		unsigned port;
		bool https;
	} table[] = {
		{ "team-a/harbor", "oci", "harbor.example.com", NULL, 443, true },
		{ "team-a/local", "oci", "reg.local", NULL, 5000, false },
		{ "team-a/hub", "oci", "index.docker.io", NULL, 443, true },
		{ "team-a/git", "git", "github.com", NULL, 443, true },
		{ "team-a/broken", "oci", "", "spec.address: not an http(s) URL", 0, true },
	};
	struct fake_lookups *f = ctx;
	char id[300];

	f->calls++;
	snprintf(id, sizeof(id), "%s/%s", ns, name);
	snprintf(f->last, sizeof(f->last), "%s", id);
	memset(out, 0, sizeof(*out));
	out->found = K8S_ADMISSION_MISSING;
	if (strcmp(ns, "loading") == 0) {
		out->found = K8S_ADMISSION_NOT_LOADED;
		return;
	}
	for (size_t i = 0; i < OG_ARRAY_LEN(table); i++) {
		if (strcmp(table[i].id, id) != 0)
			continue;
		out->found = K8S_ADMISSION_FOUND;
		out->class_name = table[i].class_name;
		out->host = table[i].host;
		out->invalid = table[i].invalid;
		out->port = (uint16_t)table[i].port;
		out->https = table[i].https;
	}
}

/* ---- reading files, applying the patch ---- */

static char *read_data(const char *name, size_t *len)
{
	return check_read_file(data_dir, name, len);
}

#define MAX_IMAGES 32

/* The Pod's images in order (containers, initContainers,
 * ephemeralContainers), "-" where a container has none. */
struct images {
	char *list[MAX_IMAGES];
	char *where[MAX_IMAGES]; /* "/spec/containers/0/image" */
	size_t n;
};

static void images_free(struct images *im)
{
	for (size_t i = 0; i < im->n; i++) {
		free(im->list[i]);
		free(im->where[i]);
	}
	im->n = 0;
}

static void images_of_pod(const char *text, size_t len, struct images *im)
{
	static const char *const lists[] = { "containers", "initContainers", "ephemeralContainers" };
	struct json_doc d;
	char err[256];
	int spec;

	im->n = 0;
	if (json_parse(&d, text, len, 1 << 20, err, sizeof(err)) != 0) {
		fprintf(stderr, "request not JSON: %s\n", err);
		exit(2);
	}
	spec = json_path(&d, 0, "request.object.spec");
	for (size_t l = 0; l < OG_ARRAY_LEN(lists); l++) {
		int arr = json_get(&d, spec, lists[l]), idx = 0;

		if (!json_is_array(&d, arr))
			continue;
		for (int it = json_array_first(&d, arr); it >= 0; it = json_next(&d, it), idx++) {
			char where[128];
			char *img = json_strdup(&d, json_get(&d, it, "image"));

			snprintf(where, sizeof(where), "/spec/%s/%d/image", lists[l], idx);
			im->list[im->n] = img ? img : x_strdup("-");
			im->where[im->n] = x_strdup(where);
			im->n++;
		}
	}
	json_doc_free(&d);
}

/* Applies a JSONPatch of "replace" operations on image paths; every path
 * must name an image the Pod has. Returns the number of operations. */
static int apply_patch(const char *b64, struct images *im)
{
	unsigned char patch[16384];
	ssize_t n = base64_decode(b64, strlen(b64), patch, sizeof(patch));
	struct json_doc d;
	char err[256];
	int ops = 0;

	if (n < 0) {
		fprintf(stderr, "%s:%d: patch is not base64\n", __FILE__, __LINE__);
		check_failures++;
		return -1;
	}
	if (json_parse(&d, (const char *)patch, (size_t)n, 4096, err, sizeof(err)) != 0 ||
	    !json_is_array(&d, 0)) {
		fprintf(stderr, "%s:%d: patch is not a JSON array: %.*s\n", __FILE__, __LINE__,
			(int)n, patch);
		check_failures++;
		return -1;
	}
	for (int op = json_array_first(&d, 0); op >= 0; op = json_next(&d, op), ops++) {
		char *path = json_strdup(&d, json_get(&d, op, "path"));
		char *value = json_strdup(&d, json_get(&d, op, "value"));
		bool found = false;

		CHECK(json_str_eq(&d, json_get(&d, op, "op"), "replace"));
		CHECK_INT(json_len(&d, op), 3);
		for (size_t i = 0; path && value && i < im->n; i++) {
			if (strcmp(im->where[i], path) != 0)
				continue;
			CHECK(strcmp(im->list[i], "-") != 0); /* replace needs an existing value */
			free(im->list[i]);
			im->list[i] = value;
			value = NULL;
			found = true;
		}
		if (!found) {
			fprintf(stderr, "%s:%d: patch path %s names no image\n", __FILE__, __LINE__,
				path ? path : "(none)");
			check_failures++;
		}
		free(path);
		free(value);
	}
	json_doc_free(&d);
	return ops;
}

/* ---- the cases ---- */

struct expect {
	const char *file;
	bool inject;
	bool allowed;
	int code;            /* rejections */
	const char *message; /* a substring of status.message */
	unsigned lookups;    /* calls of the lookup */
	const char *uid;
	const char *images[MAX_IMAGES]; /* after the patch; NULL-terminated */
	bool warning;
};

static const struct expect cases[] = {
	{ "rewrite_basic.json", true, true, 0, NULL, 1, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a01",
	  { PX "harbor/oci-connector-demo:v1", "docker.io/library/busybox:1.36" }, false },
	{ "rewrite_all_lists.json", true, true, 0, NULL, 1, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a02",
	  { PX "harbor/team/app@" D64, PX "harbor/team/app:v2@" D64, PX "harbor/tools/migrate",
	    "quay.io/prometheus/busybox:latest", PX "harbor/debug/shell:1" }, false },
	{ "port.json", true, true, 0, NULL, 1, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a03",
	  { PX "local/a/b:1", "reg.local/a/b:1", "reg.local:5001/a/b:1", PX "local/c" }, false },
	{ "dockerhub.json", true, true, 0, NULL, 1, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a04",
	  { PX "hub/library/nginx", PX "hub/library/nginx:1.25", PX "hub/bitnami/redis:7",
	    PX "hub/library/alpine@" D64, PX "hub/x/y:z", "quay.io/a/b", "localhost/nginx" },
	  false },
	{ "no_label.json", true, true, 0, NULL, 0, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a05",
	  { "harbor.example.com/app:v1" }, false },
	/* Untouched even with injection off: only Pods asking for it are refused. */
	{ "no_label.json", false, true, 0, NULL, 0, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a05",
	  { "harbor.example.com/app:v1" }, false },
	{ "label_false.json", true, true, 0, NULL, 0, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a06",
	  { "harbor.example.com/app:v1" }, false },
	{ "annotation_only.json", true, true, 0, NULL, 0, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a07",
	  { "harbor.example.com/app:v1" }, false },
	{ "rewrite_basic.json", false, false, 403, K8S_ADMISSION_DISABLED_MSG, 0,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a01", { NULL }, false },
	{ "label_no_annotation.json", true, false, 400,
	  "label connectors.cpaas.io/proxy-inject=true but no annotation "
	  "connectors.cpaas.io/connector", 0, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a08", { NULL },
	  false },
	{ "annotation_no_slash.json", true, false, 400,
	  "annotation connectors.cpaas.io/connector=\"harbor\" is malformed: expected NAMESPACE/NAME",
	  0, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a09", { NULL }, false },
	{ "annotation_upper.json", true, false, 400, "=\"Team-A/harbor\" is malformed", 0,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a10", { NULL }, false },
	{ "annotation_three.json", true, false, 400, "=\"team-a/harbor/x\" is malformed", 0,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a11", { NULL }, false },
	{ "annotation_number.json", true, false, 400,
	  "annotation connectors.cpaas.io/connector must be a string", 0,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a12", { NULL }, false },
	{ "connector_missing.json", true, false, 404,
	  "connector team-a/nope (annotation connectors.cpaas.io/connector) does not exist", 1,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a13", { NULL }, false },
	{ "connector_not_oci.json", true, false, 403,
	  "connector team-a/git has class \"git\", not \"oci\"", 1,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a14", { NULL }, false },
	{ "connector_invalid.json", true, false, 403,
	  "connector team-a/broken has no usable address: spec.address: not an http(s) URL", 1,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a15", { NULL }, false },
	{ "connectors_loading.json", true, false, 503, "has not loaded the connectors yet", 1,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a16", { NULL }, false },
	{ "image_uppercase.json", true, false, 400,
	  "containers[1].image \"harbor.example.com/Team/App:v1\": invalid reference format: "
	  "repository name must be lowercase", 1, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a17", { NULL },
	  false },
	/* containers[0] is rewritten before containers[1] is refused */
	{ "image_refused_after_rewrite.json", true, false, 400,
	  "containers[1].image \"harbor.example.com/Team/App:v1\": invalid reference format: "
	  "repository name must be lowercase", 1, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a90", { NULL },
	  false },
	{ "image_bad_digest.json", true, false, 400, "bad digest \"sha256:abc\"", 1,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a18", { NULL }, false },
	{ "image_not_string.json", true, false, 400, "containers[0].image is not a string", 1,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a19", { NULL }, false },
	{ "image_absent.json", true, true, 0, NULL, 1, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a20",
	  { "-", PX "harbor/app:v1" }, false },
	{ "no_match.json", true, true, 0, NULL, 1, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a21",
	  { "quay.io/a/b:1", "example.com/harbor.example.com/x" }, true },
	{ "not_pod.json", true, true, 0, NULL, 0, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a22", { NULL },
	  false },
	{ "pod_update.json", true, true, 0, NULL, 0, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a23",
	  { "harbor.example.com/app:v1" }, false },
	{ "object_not_object.json", true, false, 400, "request.object is string, expected a Pod", 0,
	  "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a24", { NULL }, false },
	{ "containers_not_array.json", true, false, 400, "spec.containers is object, expected an array",
	  1, "0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a25", { NULL }, false },
	{ "escaped_uid.json", true, true, 0, NULL, 0, "uid-\"with\"-quotes-\xc3\xa9",
	  { "harbor.example.com/app:v1" }, false },
};

static void check_images(const struct expect *e, const struct images *im)
{
	size_t want = 0;

	while (want < MAX_IMAGES && e->images[want])
		want++;
	if (!e->allowed)
		return;
	if (im->n != want) {
		fprintf(stderr, "%s:%d: %s: %zu images, expected %zu\n", __FILE__, __LINE__, e->file,
			im->n, want);
		check_failures++;
		return;
	}
	for (size_t i = 0; i < want; i++) {
		if (strcmp(im->list[i], e->images[i]) != 0) {
			fprintf(stderr, "%s:%d: %s: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__,
				e->file, im->where[i], im->list[i], e->images[i]);
			check_failures++;
		}
	}
}

static void check_response(const struct expect *e, const char *req, size_t req_len,
			   const char *resp, size_t resp_len, const struct k8s_admission_result *res)
{
	struct json_doc d;
	struct images im;
	char err[256];
	int r;
	char *patch;
	int64_t code = 0;

	if (json_parse(&d, resp, resp_len, 4096, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s:%d: %s: response is not JSON: %s\n", __FILE__, __LINE__, e->file, err);
		check_failures++;
		return;
	}
	r = json_get(&d, 0, "response");
	CHECK(json_str_eq(&d, json_get(&d, 0, "apiVersion"), "admission.k8s.io/v1"));
	CHECK(json_str_eq(&d, json_get(&d, 0, "kind"), "AdmissionReview"));
	if (!json_str_eq(&d, json_get(&d, r, "uid"), e->uid)) {
		fprintf(stderr, "%s:%d: %s: uid not echoed: %.*s\n", __FILE__, __LINE__, e->file,
			(int)resp_len, resp);
		check_failures++;
	}
	CHECK(json_type(&d, json_get(&d, r, "allowed")) == (e->allowed ? JSON_TRUE : JSON_FALSE));
	CHECK_INT(res->allowed, e->allowed);
	images_of_pod(req, req_len, &im);
	patch = json_strdup(&d, json_get(&d, r, "patch"));
	if (!e->allowed) {
		CHECK(json_int64(&d, json_path(&d, r, "status.code"), &code));
		CHECK_INT(code, e->code);
		CHECK(json_str_eq(&d, json_path(&d, r, "status.status"), "Failure"));
		CHECK(patch == NULL);
		CHECK_INT(res->patched, 0); /* the webhook logs it */
		if (!strstr(res->message, e->message)) {
			fprintf(stderr, "%s:%d: %s: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__,
				e->file, res->message, e->message);
			check_failures++;
		}
		CHECK(json_str_eq(&d, json_path(&d, r, "status.message"), res->message));
	} else if (patch) {
		CHECK(json_str_eq(&d, json_get(&d, r, "patchType"), "JSONPatch"));
		CHECK_INT(apply_patch(patch, &im), res->patched);
		CHECK(res->patched > 0);
	} else {
		CHECK_INT(json_get(&d, r, "patchType"), -1);
		CHECK_INT(res->patched, 0);
	}
	CHECK_INT(json_get(&d, r, "warnings") >= 0, e->warning);
	check_images(e, &im);
	images_free(&im);
	free(patch);
	json_doc_free(&d);
}

static void run_case(const struct expect *e)
{
	struct fake_lookups f = { 0 };
	struct k8s_admission_opts o = {
		.inject = e->inject, .public_address = PUB, .lookup = fake_lookup, .lookup_ctx = &f,
	};
	struct k8s_admission_result res;
	struct evbuffer *out = evbuffer_new();
	char err[256] = "";
	size_t len;
	char *req = read_data(e->file, &len);

	if (k8s_admission_review(req, len, &o, out, &res, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s:%d: %s: review failed: %s\n", __FILE__, __LINE__, e->file, err);
		check_failures++;
	} else {
		size_t n = evbuffer_get_length(out);
		char *resp = (char *)evbuffer_pullup(out, -1);

		check_response(e, req, len, resp, n, &res);
	}
	if (f.calls != e->lookups) {
		fprintf(stderr, "%s:%d: %s: %u lookups, expected %u\n", __FILE__, __LINE__, e->file,
			f.calls, e->lookups);
		check_failures++;
	}
	evbuffer_free(out);
	free(req);
}

static void test_cases(void)
{
	for (size_t i = 0; i < OG_ARRAY_LEN(cases); i++)
		run_case(&cases[i]);
}

/* Not an AdmissionReview one can answer: -1 and nothing written. */
static void test_unanswerable(void)
{
	static const char *const files[][2] = {
		{ "bad_not_json.json", "AdmissionReview: " },
		{ "bad_api_version.json", "not an AdmissionReview of apiVersion admission.k8s.io/v1" },
		{ "bad_kind.json", "not an AdmissionReview" },
		{ "bad_no_uid.json", "request.uid is missing" },
		{ "bad_no_request.json", "request is nothing, expected an object" },
		{ "bad_array.json", "not a JSON object" },
		{ "bad_duplicate_key.json", "AdmissionReview: " },
	};

	for (size_t i = 0; i < OG_ARRAY_LEN(files); i++) {
		struct fake_lookups f = { 0 };
		struct k8s_admission_opts o = {
			.inject = true, .public_address = PUB, .lookup = fake_lookup, .lookup_ctx = &f,
		};
		struct k8s_admission_result res;
		struct evbuffer *out = evbuffer_new();
		char err[256] = "";
		size_t len;
		char *req = read_data(files[i][0], &len);

		CHECK_INT(k8s_admission_review(req, len, &o, out, &res, err, sizeof(err)), -1);
		if (!strstr(err, files[i][1])) {
			fprintf(stderr, "%s:%d: %s: error \"%s\" lacks \"%s\"\n", __FILE__, __LINE__,
				files[i][0], err, files[i][1]);
			check_failures++;
		}
		CHECK_INT(evbuffer_get_length(out), 0);
		CHECK_INT(f.calls, 0);
		evbuffer_free(out);
		free(req);
	}
}

/* The exact bytes of a response, once: what the API server decodes. */
static void test_exact_response(void)
{
	struct fake_lookups f = { 0 };
	struct k8s_admission_opts o = {
		.inject = true, .public_address = PUB, .lookup = fake_lookup, .lookup_ctx = &f,
	};
	static const char patch[] =
		"[{\"op\":\"replace\",\"path\":\"/spec/containers/0/image\",\"value\":\""
		PX "harbor/oci-connector-demo:v1\"}]";
	char b64[512], want[1024];
	struct k8s_admission_result res;
	struct evbuffer *out = evbuffer_new();
	char err[256];
	size_t len;
	char *req = read_data("rewrite_basic.json", &len);

	base64_encode(patch, sizeof(patch) - 1, b64);
	snprintf(want, sizeof(want),
		 "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"response\":"
		 "{\"uid\":\"0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a01\",\"allowed\":true,"
		 "\"patchType\":\"JSONPatch\",\"patch\":\"%s\"}}", b64);
	CHECK_INT(k8s_admission_review(req, len, &o, out, &res, err, sizeof(err)), 0);
	CHECK_MEM_STR(evbuffer_pullup(out, -1), evbuffer_get_length(out), want);
	CHECK_INT(res.patched, 1);
	CHECK(res.opted_in);
	free(req);

	evbuffer_drain(out, evbuffer_get_length(out));
	o.inject = false;
	req = read_data("rewrite_basic.json", &len);
	CHECK_INT(k8s_admission_review(req, len, &o, out, &res, err, sizeof(err)), 0);
	CHECK_MEM_STR(evbuffer_pullup(out, -1), evbuffer_get_length(out),
		      "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
		      "\"response\":{\"uid\":\"0df28fbd-5f5f-4f6c-9e3a-6c1b2e3f4a01\",\"allowed\":false,"
		      "\"status\":{\"status\":\"Failure\",\"reason\":\"Forbidden\",\"code\":403,"
		      "\"message\":\"connector proxy injection is disabled\"}}}");
	free(req);
	evbuffer_free(out);
}

/* Every prefix of a valid request is either refused or answered, never a
 * crash; none but the whole text is valid JSON. */
static void test_truncations(void)
{
	struct fake_lookups f = { 0 };
	struct k8s_admission_opts o = {
		.inject = true, .public_address = PUB, .lookup = fake_lookup, .lookup_ctx = &f,
	};
	size_t len;
	char *req = read_data("rewrite_all_lists.json", &len);

	while (len > 0 && (req[len - 1] == '\n' || req[len - 1] == ' '))
		len--;
	for (size_t n = 0; n < len; n++) {
		struct k8s_admission_result res;
		struct evbuffer *out = evbuffer_new();
		char err[256];

		CHECK_INT(k8s_admission_review(req, n, &o, out, &res, err, sizeof(err)), -1);
		evbuffer_free(out);
	}
	CHECK_INT(f.calls, 0);
	free(req);
}

int main(int argc, char **argv)
{
	static char dir[1024];

	if (argc > 1) {
		data_dir = argv[1];
	} else {
		const char *slash = strrchr(__FILE__, '/');
		snprintf(dir, sizeof(dir), "%.*sdata/admission",
			 slash ? (int)(slash - __FILE__ + 1) : 0, __FILE__);
		data_dir = dir;
	}
	test_cases();
	test_unanswerable();
	test_exact_response();
	test_truncations();
	CHECK_DONE();
}
