/* The authentication/authorization interface the proxy talks to.
 *
 * Standalone mode (static tokens and connectors from the config file) and
 * Kubernetes mode (TokenReview, SubjectAccessReview, Connector watch) are two
 * implementations of struct auth_backend_ops. Every operation may complete
 * synchronously (the callback runs before the call returns, which then
 * returns NULL) or later on the event loop (the call returns a handle that
 * the caller must cancel if it goes away first). */
#ifndef OCIGATE_AUTH_AUTH_H
#define OCIGATE_AUTH_AUTH_H

#include "auth/connector.h"
#include "util/common.h"

/* Who a token belongs to. Refcounted: caches and requests hold references. */
struct auth_identity {
	unsigned refs;
	char *user;
	char *uid;
	char **groups;
	size_t n_groups;
};

struct auth_identity *auth_identity_new(const char *user, const char *uid,
					char *const *groups, size_t n_groups);
struct auth_identity *auth_identity_ref(struct auth_identity *id);
void auth_identity_unref(struct auth_identity *id);

enum auth_status {
	AUTH_OK,          /* authenticated / allowed */
	AUTH_INVALID,     /* unknown or expired token (401) */
	AUTH_DENIED,      /* authenticated but not allowed (403) */
	AUTH_UNAVAILABLE, /* the decision could not be made now (503, retry) */
};

enum auth_verb { AUTH_VERB_PULL, AUTH_VERB_PUSH };

struct auth_decision {
	enum auth_status status;
	struct auth_identity *identity; /* borrowed, valid during the callback */
	const char *message;            /* for the client, no secrets */
};

typedef void (*auth_done_fn)(void *arg, const struct auth_decision *d);

struct auth_pending;
struct auth_backend;

/* Lookups in a backend's decision caches, for the metrics. */
struct auth_cache_counts {
	uint64_t token_hits, token_misses;   /* authentication (TokenReview) */
	uint64_t access_hits, access_misses; /* authorization (SubjectAccessReview) */
};

struct auth_backend_ops {
	const char *name;
	/* token_sha256 is the SHA-256 of the raw token, computed once by the
	 * caller; implementations cache by it and never keep the token. */
	struct auth_pending *(*authenticate)(struct auth_backend *b, struct og_str token,
					     const unsigned char token_sha256[32],
					     auth_done_fn done, void *arg);
	struct auth_pending *(*authorize)(struct auth_backend *b, struct auth_identity *id,
					  struct connector *c, enum auth_verb verb,
					  auth_done_fn done, void *arg);
	void (*cancel)(struct auth_backend *b, struct auth_pending *p);
	/* Returns a new reference, or NULL when no such connector exists. */
	struct connector *(*find_connector)(struct auth_backend *b, struct og_str ns,
					    struct og_str name);
	/* False while the backend cannot serve yet (Kubernetes mode before the
	 * first list of connectors); NULL means always ready. */
	bool (*ready)(struct auth_backend *b);
	/* Fills the cache counts; NULL for a backend without caches. */
	void (*cache_counts)(struct auth_backend *b, struct auth_cache_counts *out);
	void (*free)(struct auth_backend *b);
};

struct auth_backend {
	const struct auth_backend_ops *ops;
};

static inline void auth_backend_free(struct auth_backend *b)
{
	if (b)
		b->ops->free(b);
}

static inline bool auth_backend_ready(struct auth_backend *b)
{
	return b && (!b->ops->ready || b->ops->ready(b));
}

const char *auth_verb_name(enum auth_verb verb);

/* True when the identity's user name or one of its groups is in the list. */
bool auth_identity_in_list(const struct auth_identity *id, char *const *names, size_t n);

#endif
