/* Kubernetes mode's auth backend (struct auth_backend_ops):
 *
 *   authenticate  TokenReview, cached by the token's SHA-256: authenticated
 *                 for token_ttl (never past the JWT's exp claim), rejected
 *                 for token_negative_ttl. API failures are never cached.
 *   authorize     SubjectAccessReview for the reviewed user, uid, groups and
 *                 extra, cached per (user, uid, sorted groups, connector,
 *                 verb): allowed for sar_allowed_ttl, denied for
 *                 sar_denied_ttl.
 *                 pull: get    connectors (group connectors.alauda.io) NAME in NS
 *                 push: update connectors                             NAME in NS
 *                 strict_subresource: verb * on connectors/proxy, pull and push.
 *   find_connector  the Connector store; before its first list has arrived,
 *                 a stand-in connector whose `unavailable` makes it a 503.
 *
 * Concurrent misses on one key wait for a single in-flight review. Any API
 * failure (connect error, timeout, an HTTP error, malformed or incomplete
 * JSON) is AUTH_UNAVAILABLE (a 503 with Retry-After for the client) and a
 * logged error: never a 401, never an allow. */
#ifndef OCIGATE_K8S_K8S_AUTH_H
#define OCIGATE_K8S_K8S_AUTH_H

#include "auth/auth.h"
#include "k8s/client.h"
#include "util/common.h"
#include "util/config.h"

struct event_base;
struct evdns_base;
struct evbuffer;

#define K8S_AUTH_TOKENREVIEW_PATH "/apis/authentication.k8s.io/v1/tokenreviews"
#define K8S_AUTH_SAR_PATH "/apis/authorization.k8s.io/v1/subjectaccessreviews"

struct k8s_auth_settings {
	char *const *audiences; /* TokenReview spec.audiences (copied) */
	size_t n_audiences;
	bool strict_subresource;
	uint64_t token_ttl_ms, token_negative_ttl_ms;
	uint64_t sar_allowed_ttl_ms, sar_denied_ttl_ms;
	size_t cache_size; /* entries per cache, >= 1 */
};

/* What the backend needs from the outside world. k8s_auth_new wires the
 * runtime's API client, its Connector store and the clocks; tests pass fakes. */
struct k8s_auth_env {
	void *ctx;
	/* Like k8s_client_post: takes body, never returns NULL, and calls done
	 * later from the loop (never from within post) unless cancelled. */
	struct k8s_request *(*post)(void *ctx, const char *path, struct evbuffer *body,
				    k8s_response_fn done, void *arg);
	void (*cancel)(void *ctx, struct k8s_request *r);
	/* A new reference, or NULL when there is no such (served) connector. */
	struct connector *(*find_connector)(void *ctx, struct og_str ns, struct og_str name);
	/* False until the first full list of connectors has been applied. */
	bool (*synced)(void *ctx);
	uint64_t (*now_ms)(void *ctx); /* monotonic: cache expiry */
	int64_t (*unix_now)(void *ctx); /* wall clock, seconds: JWT exp */
	void (*free)(void *ctx);        /* NULL: nothing to free */
};

/* Builds the backend on an environment (tests). */
struct auth_backend *k8s_auth_new_env(const struct k8s_auth_settings *s,
				      const struct k8s_auth_env *env);

struct k8s_runtime;

/* Kubernetes mode from cfg->kubernetes, on the runtime's API client and
 * Connector store (borrowed: rt outlives the backend). */
struct auth_backend *k8s_auth_new(struct k8s_runtime *rt, const struct config *cfg);

struct k8s_auth_stats {
	uint64_t tokenreviews, tokenreview_failures;
	uint64_t sars, sar_failures;
	uint64_t token_hits, token_misses, token_joins;
	uint64_t sar_hits, sar_misses, sar_joins;
	size_t token_entries, sar_entries;
};

/* b must be a backend made here. */
void k8s_auth_get_stats(struct auth_backend *b, struct k8s_auth_stats *out);

#endif
