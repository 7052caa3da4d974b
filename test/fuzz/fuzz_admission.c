/* Fuzzes the admission webhook's decision and the image reference parser:
 * the same bytes go in as an AdmissionReview and as an image reference.
 * Nothing may crash, leak or overrun; an answered review must be valid JSON
 * echoing a uid, with a decodable JSONPatch whose every value is an image
 * reference through the proxy; a parsed reference must survive rewriting
 * and parsing again unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "k8s/admission.h"
#include "k8s/reference.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_PUB "proxy.example.com:5000"

static void fz_lookup(void *ctx, const char *ns, const char *name,
		      struct k8s_admission_connector *out)
{
	unsigned *calls = ctx;

	(*calls)++;
	memset(out, 0, sizeof(*out));
	if (strlen(ns) > 63 || strlen(name) > 253 || !*ns || !*name)
		abort(); /* the annotation was checked first */
	out->found = name[0] == 'm' ? K8S_ADMISSION_MISSING : K8S_ADMISSION_FOUND;
	out->class_name = name[0] == 'g' ? "git" : "oci";
	out->https = true;
	out->host = name[0] == 'h' ? "docker.io" : "harbor.example.com";
	out->port = 443;
}

static void fz_reference(const char *s, size_t n)
{
	struct k8s_reference r, again;
	char err[512];
	char *re, *want;
	size_t wn;

	if (k8s_reference_parse(s, n, &r, err, sizeof(err)) != 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0] || r.path || r.host)
			abort();
		k8s_reference_free(&r);
		return;
	}
	if (!r.host || !*r.host || !r.path || !*r.path || !r.domain)
		abort();
	for (const char *p = r.path; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort();
	re = k8s_reference_rewrite(&r, "p.io/namespaces/a/connectors/b");
	if (strlen("p.io/namespaces/a/connectors/b/") + strlen(r.path) <= K8S_REFERENCE_NAME_MAX) {
		if (k8s_reference_parse(re, strlen(re), &again, err, sizeof(err)) != 0)
			abort();
		wn = strlen(r.path) + 32;
		want = x_malloc(wn);
		snprintf(want, wn, "namespaces/a/connectors/b/%s", r.path);
		if (strcmp(again.path, want) != 0 || strcmp(again.host, "p.io") != 0 ||
		    (r.tag == NULL) != (again.tag == NULL) || (r.tag && strcmp(r.tag, again.tag)) ||
		    (r.digest == NULL) != (again.digest == NULL) ||
		    (r.digest && strcmp(r.digest, again.digest)))
			abort();
		free(want);
		k8s_reference_free(&again);
	}
	free(re);
	k8s_reference_free(&r);
}

static void fz_check_patch(const struct json_doc *d, int r, unsigned patched)
{
	char *b64 = json_strdup(d, json_get(d, r, "patch"));
	size_t cap = b64 ? strlen(b64) : 0;
	unsigned char *bytes = x_malloc(cap + 1);
	ssize_t n = b64 ? base64_decode(b64, cap, bytes, cap + 1) : -1;
	struct json_doc p;
	char err[200];
	unsigned ops = 0;

	if (!patched) {
		if (b64)
			abort();
		goto out;
	}
	if (n < 0 || json_parse(&p, (const char *)bytes, (size_t)n, 1 << 20, err, sizeof(err)) != 0)
		abort();
	for (int op = json_array_first(&p, 0); op >= 0; op = json_next(&p, op), ops++) {
		char *v = json_strdup(&p, json_get(&p, op, "value"));
		struct k8s_reference ref;

		if (!v || strncmp(v, FZ_PUB "/namespaces/", strlen(FZ_PUB "/namespaces/")) != 0 ||
		    k8s_reference_parse(v, strlen(v), &ref, err, sizeof(err)) != 0)
			abort();
		k8s_reference_free(&ref);
		free(v);
	}
	if (ops != patched)
		abort();
	json_doc_free(&p);
out:
	free(bytes);
	free(b64);
}

static void fz_review(const char *s, size_t n, bool inject)
{
	unsigned calls = 0;
	struct k8s_admission_opts o = {
		.inject = inject, .public_address = FZ_PUB, .lookup = fz_lookup, .lookup_ctx = &calls,
	};
	struct k8s_admission_result res;
	struct evbuffer *out = evbuffer_new();
	struct json_doc d;
	char err[512];
	int r;

	if (k8s_admission_review(s, n, &o, out, &res, err, sizeof(err)) != 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0] || evbuffer_get_length(out) || calls)
			abort();
		goto out;
	}
	if (calls > 1 || (!res.opted_in && calls) || (!inject && calls))
		abort();
	if (json_parse(&d, (const char *)evbuffer_pullup(out, -1), evbuffer_get_length(out), 1 << 16,
		       err, sizeof(err)) != 0)
		abort();
	r = json_get(&d, 0, "response");
	if (json_string_len(&d, json_get(&d, r, "uid")) <= 0)
		abort();
	if (json_type(&d, json_get(&d, r, "allowed")) != (res.allowed ? JSON_TRUE : JSON_FALSE))
		abort();
	if (!res.allowed && (!res.message[0] || res.patched))
		abort();
	fz_check_patch(&d, r, res.allowed ? res.patched : 0);
	json_doc_free(&d);
out:
	evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *nl = size ? memchr(s, '\n', size) : NULL;

	fz_review(s, size, true);
	fz_review(s, size, false);
	fz_reference(s, nl ? (size_t)(nl - s) : size);
	return 0;
}
