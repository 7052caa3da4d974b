/* The pull-secret refresher: an optional controller mode for clusters whose
 * kubelets cannot pass ServiceAccount tokens to a credential provider
 * (KEP-4412). For every ServiceAccount annotated
 *
 *   connectors.cpaas.io/pull-secret: SECRET_NAME
 *
 * in the watched namespaces it asks the TokenRequest API
 * (serviceaccounts/token) for a bounded token of that ServiceAccount and
 * writes it, as the password of PUBLIC_ADDRESS, into a
 * kubernetes.io/dockerconfigjson Secret SECRET_NAME of the same namespace,
 * then does it again at 50-80% of the token's lifetime (as the API server
 * reports it in status.expirationTimestamp, which may be shorter than
 * asked for).
 *
 * The Secret carries the annotation connectors.cpaas.io/pull-secret-owner:
 * SA_NAME. A Secret that exists without it (or naming another
 * ServiceAccount) is never touched: that is logged as a conflict and tried
 * again later. Updates are merge patches with metadata.resourceVersion, so
 * a concurrent writer (another replica) makes the API server answer 409,
 * and the refresher reads the Secret again and retries.
 *
 * A DELETED ServiceAccount, a removed annotation or a 404 from TokenRequest
 * stops the refresh for that ServiceAccount. The Secret is left as it is:
 * its token expires on its own.
 *
 * The first half of this header is pure functions (unit-tested, fuzzed);
 * the controller below runs on the proxy's event loop. */
#ifndef OCIGATE_K8S_REFRESHER_H
#define OCIGATE_K8S_REFRESHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/common.h"
#include "util/json.h"

struct evbuffer;
struct event_base;
struct k8s_client;

#define K8S_REFRESHER_ANNOTATION "connectors.cpaas.io/pull-secret"
#define K8S_REFRESHER_OWNER_ANNOTATION "connectors.cpaas.io/pull-secret-owner"
#define K8S_REFRESHER_SECRET_TYPE "kubernetes.io/dockerconfigjson"
#define K8S_REFRESHER_USERNAME "ocigate"
/* The API server refuses expirationSeconds below 600. */
#define K8S_REFRESHER_MIN_EXPIRATION_S 600

/* ---- pure helpers ---- */

/* What the refresher needs of a v1 ServiceAccount. */
struct k8s_refresher_sa {
	char *ns, *name;
	char *uid;    /* NULL if absent */
	char *secret; /* the annotation's value; NULL: not opted in */
};

/* Parses the ServiceAccount at token tok (a List item or a watch event's
 * object). metadata.namespace and metadata.name are required; an
 * annotation whose value is not a DNS-1123 subdomain is an error (err
 * says so) with ns and name still filled. Free *out either way. */
OG_WARN_UNUSED int k8s_refresher_sa_parse(const struct json_doc *d, int tok,
					  struct k8s_refresher_sa *out, char *err, size_t err_cap);
void k8s_refresher_sa_free(struct k8s_refresher_sa *sa);

/* A Secret name: a DNS-1123 subdomain (at most 253, lower case). */
bool k8s_refresher_name_ok(const char *s);

/* {"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest",
 *  "spec":{"audiences":[...],"expirationSeconds":N}}; audiences are left
 * out when there are none (the API server's own then). */
void k8s_refresher_tokenrequest_body(struct evbuffer *out, int64_t expiration_s,
				     char *const *audiences, size_t n_audiences);

struct k8s_refresher_token {
	char *token;        /* wiped on free */
	int64_t expires_at; /* status.expirationTimestamp, seconds since the epoch */
};

/* Parses a TokenRequest response: status.token (non-empty, printable
 * ASCII) and status.expirationTimestamp (RFC 3339) are required. Free
 * *out either way. */
OG_WARN_UNUSED int k8s_refresher_token_parse(const char *text, size_t len,
					     struct k8s_refresher_token *out, char *err,
					     size_t err_cap);
void k8s_refresher_token_free(struct k8s_refresher_token *t);

/* RFC 3339 ("2006-01-02T15:04:05Z", fraction and numeric offset allowed)
 * to seconds since the epoch. */
OG_WARN_UNUSED int k8s_refresher_parse_time(const char *s, int64_t *out);

/* The .dockerconfigjson value (before base64):
 * {"auths":{"ADDR":{"username":"ocigate","password":TOKEN,"auth":B64}}}
 * where B64 is base64("ocigate:" TOKEN). Allocated; wipe it after use. */
char *k8s_refresher_dockerconfig(const char *public_address, const char *token);

/* The whole Secret to POST (create). */
void k8s_refresher_secret_body(struct evbuffer *out, const char *ns, const char *name,
			       const char *owner, const char *public_address, const char *token);
/* The merge patch for an existing Secret: metadata.resourceVersion (the
 * precondition), the owner annotation, type and data. */
void k8s_refresher_secret_patch(struct evbuffer *out, const char *resource_version,
				const char *owner, const char *public_address, const char *token);

/* What an existing Secret says about who owns it. */
struct k8s_refresher_secret_info {
	char *resource_version; /* required */
	char *owner;            /* the owner annotation, NULL if absent */
	char *type;             /* NULL if absent */
};
OG_WARN_UNUSED int k8s_refresher_secret_info_parse(const char *text, size_t len,
						   struct k8s_refresher_secret_info *out,
						   char *err, size_t err_cap);
void k8s_refresher_secret_info_free(struct k8s_refresher_secret_info *s);

/* Milliseconds from now until the token is to be replaced: at a point
 * between 50% and 80% of its remaining lifetime chosen by rnd (any
 * value), at least 1000 ms. A token already expired: 1000. */
uint64_t k8s_refresher_delay_ms(int64_t now, int64_t expires_at, uint64_t rnd);

/* ---- the controller ---- */

struct k8s_refresher_opts {
	const char *public_address;   /* registry host in the Secret (copied) */
	int64_t expiration_s;         /* requested lifetime, >= K8S_REFRESHER_MIN_EXPIRATION_S */
	char *const *audiences;       /* copied; may be empty */
	size_t n_audiences;
	char *const *namespaces;      /* copied; empty: all namespaces */
	size_t n_namespaces;
	unsigned backoff_min_ms;      /* [1000] */
	unsigned backoff_max_ms;      /* [60000] */
	unsigned watch_timeout_s;     /* [300] */
};

struct k8s_refresher;

/* client must outlive the refresher. Starts listing at once. */
struct k8s_refresher *k8s_refresher_new(struct event_base *base, struct k8s_client *client,
					const struct k8s_refresher_opts *o);
/* Cancels every request and timer. */
void k8s_refresher_free(struct k8s_refresher *r);

struct k8s_refresher_stats {
	uint64_t token_requests;  /* TokenRequests sent */
	uint64_t secrets_written; /* creates and patches the API server accepted */
	uint64_t conflicts;       /* 409 answers and Secrets owned by someone else */
	uint64_t failures;        /* other failed requests */
	size_t service_accounts;  /* opted-in ServiceAccounts followed */
};
void k8s_refresher_get_stats(const struct k8s_refresher *r, struct k8s_refresher_stats *out);

#endif
