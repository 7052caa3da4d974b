/* Kubernetes API objects ocigate writes and reads, as JSON (shapes of the
 * Kubernetes v1.30 API reference):
 *
 *   TokenReview          authentication.k8s.io/v1  (request body, response)
 *   SubjectAccessReview  authorization.k8s.io/v1   (request body, response)
 *   Connector            connectors.alauda.io/v1alpha1
 *   Secret, Status       v1
 *   Lists (metadata.resourceVersion, metadata.continue, items[]) and watch
 *   events ({"type":..., "object":...}, one per line).
 *
 * Pure functions over bytes: no I/O. Every parser fails closed: malformed
 * input gives -1 and a message in err ("TokenReview response: ..."), never an
 * "authenticated" or "allowed" result. A response that is a Status (the
 * body of any failed request) is reported with its code, reason and
 * message. Strings in results are NUL-terminated copies; a value holding
 * "\u0000" is refused. */
#ifndef OCIGATE_K8S_API_H
#define OCIGATE_K8S_API_H

#include <sys/types.h>

#include "auth/auth.h"
#include "util/common.h"
#include "util/json.h"
#include "util/url.h"

struct evbuffer;

/* Bodies larger than this are refused: responses, single objects, watch
 * event lines. No Kubernetes object is this big (etcd stores at most
 * ~1.5 MiB). */
#define K8S_API_MAX_BODY ((size_t)4 << 20)
/* List pages: request them with limit=500 or so and follow continue. */
#define K8S_API_MAX_LIST_BODY ((size_t)32 << 20)
/* JSON values in one body (list pages: K8S_API_MAX_LIST_TOKENS). */
#define K8S_API_MAX_TOKENS ((size_t)1 << 18)
#define K8S_API_MAX_LIST_TOKENS ((size_t)1 << 20)
/* Groups of a user, keys of user.extra, values per key, audiences. */
#define K8S_API_MAX_GROUPS 4096
#define K8S_API_MAX_EXTRA_KEYS 256
#define K8S_API_MAX_EXTRA_VALUES 1024
#define K8S_API_MAX_AUDIENCES 256

/* ---- Status ---- */

struct k8s_status {
	int code;        /* HTTP status code the Status carries, 0 if absent */
	char *status;    /* "Success" or "Failure", NULL if absent */
	char *reason;    /* "Expired", "Forbidden", ...; NULL if absent */
	char *message;   /* NULL if absent */
};

/* Parses an error body (401/403/404/409/410/429/500...): a Status object.
 * Returns -1 when the body is not one. */
OG_WARN_UNUSED int k8s_status_parse(const char *text, size_t len, struct k8s_status *out,
				    char *err, size_t err_cap);
/* The same from a token of a parsed document (a watch ERROR's object). */
OG_WARN_UNUSED int k8s_status_from_json(const struct json_doc *d, int tok,
					struct k8s_status *out, char *err, size_t err_cap);
void k8s_status_free(struct k8s_status *s);
/* 410 Gone / reason Expired: the resourceVersion is too old, list again. */
bool k8s_status_is_expired(const struct k8s_status *s);
/* "403 Forbidden: message" (parts that are absent are left out). */
void k8s_status_format(const struct k8s_status *s, char *buf, size_t cap);

/* ---- TokenReview ---- */

/* One key of UserInfo.extra (map[string][]string). */
struct k8s_user_extra {
	char *key;
	char **values;
	size_t n_values;
};

/* UserInfo.extra as TokenReview returned it. auth_identity cannot carry it,
 * so the caller keeps it next to the identity and hands it back to
 * k8s_sar_body: authorizers may depend on it (e.g. a ServiceAccount
 * token's authentication.kubernetes.io/pod-name). */
struct k8s_user_extras {
	struct k8s_user_extra *items; /* in the order of the response */
	size_t n;
};

void k8s_user_extras_free(struct k8s_user_extras *e);

/* {"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview",
 *  "spec":{"token":"...","audiences":[...]}}; audiences are left out when
 * n_audiences is 0. The body holds the token: wipe it after sending. */
void k8s_tokenreview_body(struct evbuffer *out, struct og_str token, char *const *audiences,
			  size_t n_audiences);

struct k8s_tokenreview_result {
	bool authenticated;
	char *username; /* never NULL or empty when authenticated */
	char *uid;      /* NULL if absent */
	char **groups;
	size_t n_groups;
	struct k8s_user_extras extra;
	char **audiences; /* status.audiences */
	size_t n_audiences;
	char *error;      /* status.error, NULL if absent */
};

/* Parses a TokenReview response. audiences are the ones the request asked
 * for: when there are any, a token is authenticated only if status.audiences
 * names one of them (otherwise the reviewer is not audience-aware and the
 * token was only checked against the API server's audience);
 * authenticated is then false and error says why. Returns -1 (and never
 * authenticated) when the response is not a well-formed TokenReview or is a
 * Status. *out must be freed either way. */
OG_WARN_UNUSED int k8s_tokenreview_parse(const char *text, size_t len, char *const *audiences,
					 size_t n_audiences, struct k8s_tokenreview_result *out,
					 char *err, size_t err_cap);
void k8s_tokenreview_result_free(struct k8s_tokenreview_result *r);

/* ---- SubjectAccessReview ---- */

/* spec.resourceAttributes; NULL or empty fields are left out. */
struct k8s_resource_attrs {
	const char *ns;
	const char *verb;
	const char *group;
	const char *version;
	const char *resource;
	const char *subresource;
	const char *name;
};

/* {"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview",
 *  "spec":{"resourceAttributes":{...},"user":...,"uid":...,"groups":[...],
 *  "extra":{...}}}; extra may be NULL. */
void k8s_sar_body(struct evbuffer *out, const struct auth_identity *id,
		  const struct k8s_user_extras *extra, const struct k8s_resource_attrs *ra);

struct k8s_sar_result {
	bool allowed;
	bool denied;            /* explicitly denied (not just "no opinion") */
	char *reason;           /* NULL if absent */
	char *evaluation_error; /* NULL if absent */
};

/* Parses a SubjectAccessReview response; allowed is true only for a
 * well-formed response with status.allowed exactly true and denied not
 * true. Returns -1 (allowed false) otherwise. Free *out either way. */
OG_WARN_UNUSED int k8s_sar_parse(const char *text, size_t len, struct k8s_sar_result *out,
				 char *err, size_t err_cap);
void k8s_sar_result_free(struct k8s_sar_result *r);

/* ---- objects ---- */

struct k8s_meta {
	char *ns;               /* metadata.namespace */
	char *name;
	char *uid;              /* NULL if absent */
	char *resource_version; /* NULL if absent */
	int64_t generation;     /* 0 if absent */
};

/* The connectors.alauda.io/v1alpha1 Connector at token tok (a List item or
 * a watch event's object). */
struct k8s_connector {
	struct k8s_meta meta;
	char *class_name;       /* spec.connectorClassName, NULL if absent */
	struct url_base address; /* spec.address */
	char *auth_name;        /* spec.auth.name, NULL if absent */
	char *secret_name;      /* spec.auth.secretRef.name, NULL: no credentials */
	char *secret_namespace; /* spec.auth.secretRef.namespace, else meta.ns */
	char *ca_secret_name;   /* spec.caCertSecretRef.name, NULL if absent */
};

/* apiVersion and kind are checked when present (List items of built-in
 * types omit them). metadata.namespace, metadata.name and spec.address are
 * required. On error, meta and then class_name stay filled as far as they
 * could be read, so the caller can still tell which object is broken (and
 * whether it is an "oci" connector at all). Free *out either way. */
OG_WARN_UNUSED int k8s_connector_parse(const struct json_doc *d, int tok,
				       struct k8s_connector *out, char *err, size_t err_cap);
void k8s_connector_free(struct k8s_connector *c);

/* A v1 Secret, keeping only what ocigate uses. Values are decoded from
 * data (base64); stringData never comes back from the API server. */
struct k8s_secret {
	struct k8s_meta meta;
	char *type;            /* NULL if absent */
	char *username;        /* data.username, NULL if absent */
	char *password;        /* data.password, NULL if absent; wiped on free */
	unsigned char *ca_pem; /* data keys ending in .crt or .pem, sorted by key, */
	size_t ca_pem_len;     /* each ending in a newline; NULL/0 if none */
	size_t n_ca_keys;
};

/* Invalid base64 in any data value, or a NUL byte in username or password,
 * is an error. Same partial-result contract as k8s_connector_parse. */
OG_WARN_UNUSED int k8s_secret_parse(const struct json_doc *d, int tok, struct k8s_secret *out,
				    char *err, size_t err_cap);
void k8s_secret_free(struct k8s_secret *s);

/* ---- lists and watches ---- */

/* A List page. The document borrows text: keep it until k8s_list_free.
 * Walk the items with json_array_first(&l->doc, l->items) and json_next. */
struct k8s_list {
	struct json_doc doc;
	char *resource_version; /* metadata.resourceVersion: start the watch here */
	char *continue_token;   /* metadata.continue, NULL on the last page */
	int items;              /* token of the items array, -1 when null or absent */
	int n_items;
	int64_t remaining;      /* metadata.remainingItemCount, -1 if absent */
};

/* item_kind ("Connector", "Secret"): when the list has a kind it must be
 * item_kind + "List". Every item must be an object. */
OG_WARN_UNUSED int k8s_list_parse(struct k8s_list *l, const char *text, size_t len,
				  const char *item_kind, char *err, size_t err_cap);
void k8s_list_free(struct k8s_list *l);

enum k8s_watch_type {
	K8S_WATCH_ADDED,
	K8S_WATCH_MODIFIED,
	K8S_WATCH_DELETED,
	K8S_WATCH_BOOKMARK,
	K8S_WATCH_ERROR,
};

/* One watch event. The document borrows the line: keep it until
 * k8s_watch_event_free. */
struct k8s_watch_event {
	enum k8s_watch_type type;
	struct json_doc doc;
	int object;               /* token of "object" */
	char *resource_version;   /* the object's metadata.resourceVersion; NULL for ERROR */
	bool initial_events_end;  /* BOOKMARK annotated k8s.io/initial-events-end: "true" */
	struct k8s_status status; /* ERROR: the Status in object */
};

/* Parses one line of a watch stream (a trailing newline is fine). An ERROR
 * event parses successfully (0) with status filled: the caller decides
 * (k8s_status_is_expired: list again). ADDED, MODIFIED, DELETED and BOOKMARK
 * need object.metadata.resourceVersion. */
OG_WARN_UNUSED int k8s_watch_event_parse(struct k8s_watch_event *ev, const char *line, size_t len,
					 char *err, size_t err_cap);
void k8s_watch_event_free(struct k8s_watch_event *ev);
const char *k8s_watch_type_name(enum k8s_watch_type t);

#endif
