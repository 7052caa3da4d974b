/* AdmissionReview in, AdmissionReview out: see admission.h. */
#include "k8s/admission.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "k8s/reference.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/json_write.h"
#include "util/xalloc.h"

#define ADM_API_VERSION "admission.k8s.io/v1"
#define ADM_MAX_UID 1024

/* One review in progress. */
struct adm {
	const struct k8s_admission_opts *o;
	struct json_doc d;
	struct k8s_admission_result *res;
	char *uid;
	int pod;            /* token of request.object */
	char ns[64], name[254];
	struct k8s_admission_connector conn;
	char *prefix;       /* PUBLIC_ADDRESS/namespaces/NS/connectors/NAME */
	struct evbuffer *patch;
	unsigned images;    /* images looked at */
	int code;           /* rejection: HTTP code; 0 while allowed */
	const char *reason; /* rejection: metav1.StatusReason */
};

static int adm_reject(struct adm *a, int code, const char *reason, const char *fmt, ...)
	OG_PRINTF(4, 5);

/* Refuses the Pod; always returns -1 so callers can `return adm_reject(...)`. */
static int adm_reject(struct adm *a, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;

	a->code = code;
	a->reason = reason;
	va_start(ap, fmt);
	vsnprintf(a->res->message, sizeof(a->res->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* The envelope: apiVersion, kind, request.uid. Failing here means there is
 * nobody to answer with an AdmissionReview. */
static int adm_envelope(struct adm *a, char *err, size_t cap)
{
	int req = json_get(&a->d, 0, "request");
	int uid = json_get(&a->d, req, "uid");
	ssize_t n;

	if (!json_is_object(&a->d, 0)) {
		snprintf(err, cap, "AdmissionReview: not a JSON object");
		return -1;
	}
	if (!json_str_eq(&a->d, json_get(&a->d, 0, "apiVersion"), ADM_API_VERSION) ||
	    !json_str_eq(&a->d, json_get(&a->d, 0, "kind"), "AdmissionReview")) {
		snprintf(err, cap, "not an AdmissionReview of apiVersion " ADM_API_VERSION);
		return -1;
	}
	if (!json_is_object(&a->d, req)) {
		snprintf(err, cap, "AdmissionReview: request is %s, expected an object",
			 json_type_name(&a->d, req));
		return -1;
	}
	n = json_string_len(&a->d, uid);
	a->uid = n > 0 && n <= ADM_MAX_UID ? json_strdup(&a->d, uid) : NULL;
	if (!a->uid) {
		snprintf(err, cap, "AdmissionReview: request.uid is missing or not a usable string");
		return -1;
	}
	snprintf(a->res->uid, sizeof(a->res->uid), "%s", a->uid);
	return 0;
}

/* Pods on CREATE are what the webhook is for; anything else it was sent by
 * a wider configuration is let through untouched. */
static bool adm_is_pod_create(struct adm *a)
{
	int req = json_get(&a->d, 0, "request");
	int kind = json_get(&a->d, req, "kind");
	int sub = json_get(&a->d, req, "subResource");

	return json_str_eq(&a->d, json_get(&a->d, kind, "group"), "") &&
	       json_str_eq(&a->d, json_get(&a->d, kind, "version"), "v1") &&
	       json_str_eq(&a->d, json_get(&a->d, kind, "kind"), "Pod") &&
	       json_str_eq(&a->d, json_get(&a->d, req, "operation"), "CREATE") &&
	       (sub < 0 || json_str_eq(&a->d, sub, ""));
}

static bool adm_opted_in(struct adm *a)
{
	int labels = json_path(&a->d, a->pod, "metadata.labels");

	return json_str_eq(&a->d, json_get(&a->d, labels, K8S_ADMISSION_LABEL), "true");
}

/* A DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters. */
static bool adm_dns_label(const char *p, size_t n)
{
	if (!n || n > 63 || p[0] == '-' || p[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-'))
			return false;
	return true;
}

/* A DNS-1123 subdomain: labels joined by '.', at most 253 characters. */
static bool adm_dns_subdomain(const char *p, size_t n)
{
	size_t start = 0;

	if (!n || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '.')
			continue;
		if (!adm_dns_label(p + start, i - start))
			return false;
		start = i + 1;
	}
	return true;
}

static int adm_annotation(struct adm *a)
{
	int annotations = json_path(&a->d, a->pod, "metadata.annotations");
	int tok = json_get(&a->d, annotations, K8S_ADMISSION_ANNOTATION);
	char value[512];
	ssize_t n = json_string(&a->d, tok, value, sizeof(value));
	const char *slash = n > 0 ? memchr(value, '/', (size_t)n) : NULL;
	size_t ns_len;

	if (tok < 0)
		return adm_reject(a, 400, "BadRequest",
				  "the Pod has label " K8S_ADMISSION_LABEL "=true but no annotation "
				  K8S_ADMISSION_ANNOTATION " naming its connector as NAMESPACE/NAME");
	if (n < 0) {
		return adm_reject(a, 400, "BadRequest",
				  "annotation " K8S_ADMISSION_ANNOTATION " must be a string "
				  "NAMESPACE/NAME of at most %zu characters", sizeof(value) - 1);
	}
	ns_len = slash ? (size_t)(slash - value) : 0;
	if (!slash || !adm_dns_label(value, ns_len) ||
	    !adm_dns_subdomain(slash + 1, (size_t)n - ns_len - 1)) {
		return adm_reject(a, 400, "BadRequest",
				  "annotation " K8S_ADMISSION_ANNOTATION "=\"%s\" is malformed: expected "
				  "NAMESPACE/NAME of a Connector (lower-case DNS names, e.g. team-a/harbor)",
				  value);
	}
	memcpy(a->ns, value, ns_len);
	a->ns[ns_len] = '\0';
	memcpy(a->name, slash + 1, (size_t)n - ns_len);
	return 0;
}

static int adm_connector(struct adm *a)
{
	const struct k8s_admission_connector *c = &a->conn;
	size_t n;

	a->o->lookup(a->o->lookup_ctx, a->ns, a->name, &a->conn);
	if (c->found == K8S_ADMISSION_NOT_LOADED)
		return adm_reject(a, 503, "ServiceUnavailable",
				  "ocigate has not loaded the connectors yet; retry shortly "
				  "(connector %s/%s)", a->ns, a->name);
	if (c->found != K8S_ADMISSION_FOUND)
		return adm_reject(a, 404, "NotFound",
				  "connector %s/%s (annotation " K8S_ADMISSION_ANNOTATION ") does not exist",
				  a->ns, a->name);
	if (!c->class_name || strcmp(c->class_name, "oci") != 0)
		return adm_reject(a, 403, "Forbidden",
				  "connector %s/%s has class \"%s\", not \"oci\": only oci connectors "
				  "serve images", a->ns, a->name, c->class_name ? c->class_name : "");
	if (c->invalid || !c->host || !*c->host)
		return adm_reject(a, 403, "Forbidden", "connector %s/%s has no usable address: %s",
				  a->ns, a->name, c->invalid ? c->invalid : "no host");
	n = strlen(a->o->public_address) + strlen(a->ns) + strlen(a->name) + 32;
	a->prefix = x_malloc(n);
	snprintf(a->prefix, n, "%s/namespaces/%s/connectors/%s", a->o->public_address, a->ns,
		 a->name);
	return 0;
}

static void adm_add_op(struct adm *a, const char *list, int index, const char *image)
{
	evbuffer_add_printf(a->patch, "%s{\"op\":\"replace\",\"path\":\"/spec/%s/%d/image\",\"value\":",
			    a->res->patched ? "," : "", list, index);
	jsonw_string(a->patch, image, strlen(image));
	evbuffer_add(a->patch, "}", 1);
	a->res->patched++;
}

static int adm_image(struct adm *a, const char *list, int index, int item)
{
	int tok = json_get(&a->d, item, "image");
	struct k8s_reference ref;
	char err[512];
	char *image = NULL, *rewritten = NULL;
	int rc = -1;

	/* No image: workload controllers may fill it in later; nothing to do. */
	if (tok < 0 || json_is_null(&a->d, tok) || json_str_eq(&a->d, tok, ""))
		return 0;
	a->images++;
	image = json_strdup(&a->d, tok);
	if (!image)
		return adm_reject(a, 400, "BadRequest", "%s[%d].image is not a string", list, index);
	if (k8s_reference_parse(image, strlen(image), &ref, err, sizeof(err)) != 0) {
		adm_reject(a, 400, "BadRequest", "%s[%d].image \"%s\": %s", list, index, image, err);
		goto out;
	}
	if (k8s_reference_on_registry(&ref, a->conn.host, a->conn.port, a->conn.https)) {
		rewritten = k8s_reference_rewrite(&ref, a->prefix);
		if (strlen(a->prefix) + 1 + strlen(ref.path) > K8S_REFERENCE_NAME_MAX) {
			adm_reject(a, 400, "BadRequest", "%s[%d].image \"%s\" would be longer than %d "
				   "characters through connector %s/%s", list, index, image,
				   K8S_REFERENCE_NAME_MAX, a->ns, a->name);
			goto out;
		}
		adm_add_op(a, list, index, rewritten);
	}
	rc = 0;
out:
	k8s_reference_free(&ref);
	free(image);
	free(rewritten);
	return rc;
}

static int adm_images(struct adm *a, const char *list)
{
	int spec = json_get(&a->d, a->pod, "spec");
	int arr = json_get(&a->d, spec, list);
	int index = 0;

	if (arr < 0 || json_is_null(&a->d, arr))
		return 0;
	if (!json_is_array(&a->d, arr))
		return adm_reject(a, 400, "BadRequest", "spec.%s is %s, expected an array", list,
				  json_type_name(&a->d, arr));
	for (int it = json_array_first(&a->d, arr); it >= 0; it = json_next(&a->d, it), index++) {
		if (!json_is_object(&a->d, it))
			return adm_reject(a, 400, "BadRequest", "spec.%s[%d] is %s, expected an object",
					  list, index, json_type_name(&a->d, it));
		if (adm_image(a, list, index, it) != 0)
			return -1;
	}
	return 0;
}

static int adm_decide(struct adm *a)
{
	static const char *const lists[] = { "containers", "initContainers", "ephemeralContainers" };
	int req = json_get(&a->d, 0, "request");

	if (!adm_is_pod_create(a))
		return 0;
	a->pod = json_get(&a->d, req, "object");
	if (!json_is_object(&a->d, a->pod))
		return adm_reject(a, 400, "BadRequest", "request.object is %s, expected a Pod",
				  json_type_name(&a->d, a->pod));
	if (!adm_opted_in(a))
		return 0;
	a->res->opted_in = true;
	if (!a->o->inject)
		return adm_reject(a, 403, "Forbidden", K8S_ADMISSION_DISABLED_MSG);
	if (!json_is_object(&a->d, json_get(&a->d, a->pod, "spec")))
		return adm_reject(a, 400, "BadRequest", "the Pod has no spec object");
	if (adm_annotation(a) != 0 || adm_connector(a) != 0)
		return -1;
	for (size_t i = 0; i < OG_ARRAY_LEN(lists); i++)
		if (adm_images(a, lists[i]) != 0)
			return -1;
	return 0;
}

static void adm_write_patch(struct adm *a, struct evbuffer *out)
{
	size_t n = evbuffer_get_length(a->patch) + 2;
	char *json = x_malloc(n + 1);
	char *b64 = x_malloc(base64_encoded_len(n) + 1);

	json[0] = '[';
	evbuffer_copyout(a->patch, json + 1, n - 2);
	json[n - 1] = ']';
	base64_encode(json, n, b64);
	evbuffer_add_printf(out, ",\"patchType\":\"JSONPatch\",\"patch\":\"%s\"", b64);
	free(json);
	free(b64);
}

static void adm_write_warning(struct adm *a, struct evbuffer *out)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "no image of this Pod is from %s%s%s:%u, the registry of "
		 "connector %s/%s: nothing was rewritten", strchr(a->conn.host, ':') ? "[" : "",
		 a->conn.host, strchr(a->conn.host, ':') ? "]" : "", a->conn.port, a->ns, a->name);
	evbuffer_add(out, ",\"warnings\":[", 13);
	jsonw_string(out, msg, strlen(msg));
	evbuffer_add(out, "]", 1);
}

static void adm_write(struct adm *a, struct evbuffer *out)
{
	evbuffer_add_printf(out, "{\"apiVersion\":\"" ADM_API_VERSION "\",\"kind\":\"AdmissionReview\","
			    "\"response\":{\"uid\":");
	jsonw_string(out, a->uid, strlen(a->uid));
	if (a->code) {
		evbuffer_add_printf(out, ",\"allowed\":false,\"status\":{\"status\":\"Failure\","
				    "\"reason\":\"%s\",\"code\":%d,\"message\":", a->reason, a->code);
		jsonw_string(out, a->res->message, strlen(a->res->message));
		evbuffer_add(out, "}}}", 3);
		return;
	}
	evbuffer_add(out, ",\"allowed\":true", 15);
	if (a->res->patched)
		adm_write_patch(a, out);
	else if (a->res->opted_in && a->prefix)
		adm_write_warning(a, out);
	evbuffer_add(out, "}}", 2);
}

int k8s_admission_review(const char *text, size_t len, const struct k8s_admission_opts *o,
			 struct evbuffer *out, struct k8s_admission_result *res, char *err,
			 size_t err_cap)
{
	struct adm a = { .o = o, .res = res, .pod = -1 };
	char jerr[256];
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (json_parse(&a.d, text, len, K8S_ADMISSION_MAX_TOKENS, jerr, sizeof(jerr)) != 0) {
		snprintf(err, err_cap, "AdmissionReview: %s", jerr);
		goto out;
	}
	if (adm_envelope(&a, err, err_cap) != 0)
		goto out;
	a.patch = evbuffer_new();
	if (adm_decide(&a) != 0)
		assert(a.code != 0); /* every refusal goes through adm_reject */
	res->allowed = a.code == 0;
	if (!res->allowed)
		res->patched = 0; /* images before the refused one count for nothing */
	adm_write(&a, out);
	rc = 0;
out:
	if (a.patch)
		evbuffer_free(a.patch);
	free(a.prefix);
	free(a.uid);
	json_doc_free(&a.d);
	return rc;
}
