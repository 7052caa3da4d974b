/* The status ocigate writes on a Connector, as pure functions: reading the
 * status an object has, computing the one it should have from what the
 * store knows and what a probe of the registry found, and the JSON merge
 * patch for the status subresource. No I/O; the proxy's status writer
 * (proxy/status.c) does the probing and the API calls.
 *
 * Conditions (metav1.Condition shape: type, status, observedGeneration,
 * lastTransitionTime, reason, message):
 *
 *   SecretReady    the referenced Secret exists with username and password
 *                  (True/SecretOptional when there is no secretRef)
 *   LivenessReady  the registry answered GET /v2/ over verified TLS
 *   AuthReady      GET /v2/ with the connector's credentials (after the
 *                  token flow if the registry asks for it) answered 200
 *   Ready          True only when the three others are
 *
 * lastTransitionTime changes only when a condition's status changes.
 * Conditions of other types that someone else wrote are kept as they are
 * (a merge patch replaces the whole list, so they are written back). */
#ifndef OCIGATE_K8S_STATUS_H
#define OCIGATE_K8S_STATUS_H

#include "k8s/store.h"
#include "util/common.h"

struct evbuffer;

#define K8S_STATUS_CONTENT_TYPE "application/merge-patch+json"

struct k8s_condition {
	char *type;
	char *status;          /* "True", "False", "Unknown" (as read: anything) */
	char *reason;          /* "" when absent */
	char *message;         /* "" when absent */
	char *last_transition; /* RFC 3339; "" when absent */
	int64_t observed_generation; /* -1 when absent */
	char *raw;             /* another writer's condition: its JSON text, written
				* back unchanged; NULL for ours */
};

struct k8s_conn_status {
	int64_t observed_generation; /* -1 when absent */
	struct k8s_condition *conds;
	size_t n;
	char *url;                   /* status.proxy.httpAddress.url, NULL when absent */
};

/* Reads the .status object of a Connector (text may be NULL: no status).
 * Returns -1 with a reason in err when it is not a JSON object or its
 * conditions are not an array; *out is then empty (and must still be freed). */
OG_WARN_UNUSED int k8s_conn_status_parse(const char *text, size_t len, struct k8s_conn_status *out,
					 char *err, size_t err_cap);
void k8s_conn_status_free(struct k8s_conn_status *st);

/* What the registry said to GET /v2/. */
enum k8s_probe_outcome {
	K8S_PROBE_NONE,        /* not probed (the connector cannot be used) */
	K8S_PROBE_OK,          /* 200 */
	K8S_PROBE_UNREACHABLE, /* DNS, connect, TLS, timeout, not HTTP */
	K8S_PROBE_DENIED,      /* 401/403 with the connector's credentials */
	K8S_PROBE_TOKEN_FAILED, /* the token service failed or refused */
	K8S_PROBE_UNEXPECTED,  /* another HTTP status */
};

struct k8s_status_input {
	enum k8s_store_problem problem; /* from the store */
	const char *problem_message;    /* the store's message, or NULL */
	bool has_secret_ref;
	enum k8s_probe_outcome probe;
	int http_status;                /* the registry's last answer, 0 if none */
	const char *detail;             /* what went wrong (error text), or NULL */
	int64_t generation;             /* metadata.generation */
	const char *url;                /* status.proxy.httpAddress.url */
	const char *now;                /* RFC 3339, for transitions */
};

/* The status the object should have, given the one it has (cur). */
void k8s_conn_status_compute(const struct k8s_conn_status *cur, const struct k8s_status_input *in,
			     struct k8s_conn_status *out);
/* Same fields, same conditions in the same order, same times. */
bool k8s_conn_status_equal(const struct k8s_conn_status *a, const struct k8s_conn_status *b);
/* Ready is True in st. */
bool k8s_conn_status_ready(const struct k8s_conn_status *st);
/* The condition of this type, or NULL. */
const struct k8s_condition *k8s_conn_status_find(const struct k8s_conn_status *st,
						 const char *type);

/* The merge patch body: {"metadata":{"resourceVersion":RV},"status":{...}};
 * metadata is left out when resource_version is NULL. With it, the API
 * server refuses the write with 409 Conflict when the object changed since
 * (optimistic concurrency between replicas). */
void k8s_conn_status_patch(struct evbuffer *out, const struct k8s_conn_status *st,
			   const char *resource_version);

/* "http://PUBLIC_ADDRESS/namespaces/NS/connectors/NAME", allocated. */
char *k8s_conn_status_url(const char *public_address, const char *ns, const char *name);
/* Seconds since the epoch as "2006-01-02T15:04:05Z". */
void k8s_status_time(int64_t unix_seconds, char out[32]);

#endif
