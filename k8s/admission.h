/* The image-rewrite admission webhook's decision (admission.k8s.io/v1
 * AdmissionReview of Pods on CREATE), as a pure function: request JSON in,
 * response JSON out; connectors come from a lookup callback.
 *
 * A Pod opts in with the label connectors.cpaas.io/proxy-inject: "true" and
 * names its connector with the annotation connectors.cpaas.io/connector:
 * NS/NAME. Every image of its containers, initContainers and
 * ephemeralContainers whose registry is the connector's (host and port,
 * Docker Hub short names included, see k8s/reference.h) is rewritten to
 * PUBLIC_ADDRESS/namespaces/NS/connectors/NAME/PATH[:TAG][@DIGEST] by a
 * JSONPatch of "replace" operations; other images stay as they are.
 *
 * A Pod without the label (or with another value) is allowed untouched and
 * the lookup is never called. A Pod with the label is refused (allowed:
 * false, status.code and status.message) when injection is disabled, the
 * annotation is missing or malformed, the connector is missing, not of
 * class "oci", or has no usable address, when connectors are not loaded
 * yet (code 503: the controller creating the Pod retries), and when one of
 * its images is not a valid reference (it cannot be told whether the image
 * must be rewritten). */
#ifndef OCIGATE_K8S_ADMISSION_H
#define OCIGATE_K8S_ADMISSION_H

#include "util/common.h"

struct evbuffer;

#define K8S_ADMISSION_LABEL "connectors.cpaas.io/proxy-inject"
#define K8S_ADMISSION_ANNOTATION "connectors.cpaas.io/connector"
#define K8S_ADMISSION_DISABLED_MSG "connector proxy injection is disabled"
/* Values in one review: a Pod with a few hundred containers stays far below. */
#define K8S_ADMISSION_MAX_TOKENS ((size_t)1 << 18)

enum k8s_admission_found {
	K8S_ADMISSION_FOUND,      /* the connector exists (any class) */
	K8S_ADMISSION_MISSING,    /* no such Connector */
	K8S_ADMISSION_NOT_LOADED, /* connectors are not known yet */
};

/* What the lookup reports about NS/NAME. Strings are borrowed: they must
 * stay valid until the lookup's caller returns. */
struct k8s_admission_connector {
	enum k8s_admission_found found;
	const char *class_name; /* spec.connectorClassName, NULL if absent */
	const char *invalid;    /* why its address cannot be used, or NULL */
	bool https;
	const char *host;       /* address host (IPv6 without brackets) */
	uint16_t port;          /* address port (explicit or the scheme's) */
};

typedef void (*k8s_admission_lookup_fn)(void *ctx, const char *ns, const char *name,
					struct k8s_admission_connector *out);

struct k8s_admission_opts {
	bool inject;                 /* false: Pods asking for injection are refused */
	const char *public_address;  /* HOST[:PORT] clients pull from */
	k8s_admission_lookup_fn lookup;
	void *lookup_ctx;
};

/* What k8s_admission_review decided (for logs and tests). */
struct k8s_admission_result {
	bool allowed;
	unsigned patched;  /* images rewritten */
	bool opted_in;     /* the Pod has the label */
	char uid[128];     /* request.uid (cut for logs) */
	char message[512]; /* the rejection message, "" when allowed */
};

/* Reviews one AdmissionReview request (text, len bytes). On success (0)
 * appends the AdmissionReview response to out. Returns -1 when the text is
 * not an AdmissionReview request one can answer (malformed JSON, wrong
 * apiVersion or kind, no request.uid): err says why and the webhook
 * answers 400. */
OG_WARN_UNUSED int k8s_admission_review(const char *text, size_t len,
					const struct k8s_admission_opts *o, struct evbuffer *out,
					struct k8s_admission_result *res, char *err,
					size_t err_cap);

#endif
