/* The connector store of Kubernetes mode: Connector objects
 * (connectors.alauda.io/v1alpha1) and the Secrets they name, kept fresh by
 * list + watch, turned into struct connector for the proxy.
 *
 * Per scope (all namespaces, or each configured namespace) it lists
 * Connectors then Secrets (pages of page_size), then watches both from the
 * lists' resourceVersions with bookmarks and timeoutSeconds, watching
 * again from the last resourceVersion when a watch ends, listing again on
 * 410 Gone (HTTP or ERROR event), and retrying failures with capped
 * exponential backoff and jitter.
 *
 * Memory: every Connector is kept (a few strings each); of the Secrets
 * only those a Connector names are kept (type, username, password, CA
 * PEM). The Secret watch is namespace-wide, so every Secret of the scope
 * passes through the parser, but unreferenced ones are dropped at once.
 * A Secret that becomes referenced later is fetched with one GET; watch
 * events after that keep it fresh. A secretRef to another namespace is
 * refused (the connector is unavailable): it would let whoever may create
 * Connectors in one namespace use credentials of another. */
#ifndef OCIGATE_K8S_STORE_H
#define OCIGATE_K8S_STORE_H

#include "auth/connector.h"
#include "util/common.h"

struct event_base;
struct k8s_client;

struct k8s_store_opts {
	char *const *namespaces;   /* none: all namespaces */
	size_t n_namespaces;
	/* 0 selects the default in brackets. */
	unsigned watch_timeout_s;  /* timeoutSeconds of every watch [300] */
	unsigned backoff_min_ms;   /* first retry delay [500] */
	unsigned backoff_max_ms;   /* cap of the delay [30000] */
	unsigned page_size;        /* list limit [500] */
};

struct k8s_store;

/* Starts listing at once; the client must outlive the store. */
struct k8s_store *k8s_store_new(struct event_base *base, struct k8s_client *client,
				const struct k8s_store_opts *o);
void k8s_store_free(struct k8s_store *s);

/* True once every scope's first lists completed (readiness). */
bool k8s_store_synced(const struct k8s_store *s);

/* A new reference, or NULL when no such "oci" connector exists. The same
 * object is returned until the Connector or one of its Secrets changes, so
 * the proxy's upstream pool and token cache live exactly that long. When
 * the connector cannot be used (its Secret is missing, its address is not
 * an http(s) URL, the store has not synced yet) the result carries an
 * `unavailable` message. */
struct connector *k8s_store_find_connector(struct k8s_store *s, struct og_str ns,
					   struct og_str name);

/* ---- for the status writer ---- */

/* Why an "oci" connector cannot be used. */
enum k8s_store_problem {
	K8S_STORE_OK,
	K8S_STORE_NOT_LOADED,     /* a Secret it names is not loaded yet */
	K8S_STORE_INVALID,        /* the Connector's spec cannot be used */
	K8S_STORE_SECRET_MISSING, /* a Secret it names does not exist */
	K8S_STORE_SECRET_INVALID, /* wrong type, a key missing, another namespace */
};

/* A Connector as the store holds it. Strings are borrowed: valid until the
 * store next changes (copy what outlives the current loop turn). */
struct k8s_store_connector_info {
	const char *ns, *name;
	const char *class_name;       /* NULL if absent */
	const char *resource_version; /* NULL if absent */
	int64_t generation;           /* 0 if absent */
	const char *status_json;      /* the object's .status as JSON text, NULL if absent */
	bool has_secret_ref;          /* spec.auth.secretRef is set */
	enum k8s_store_problem problem; /* "oci" connectors only; others K8S_STORE_OK */
	const char *message;          /* the connector's `unavailable` message, or NULL */
};

/* Returns -1 when there is no such Connector (of any class). */
OG_WARN_UNUSED int k8s_store_connector_info(struct k8s_store *s, const char *ns, const char *name,
					    struct k8s_store_connector_info *out);
typedef void (*k8s_store_connector_fn)(void *arg, const struct k8s_store_connector_info *ci);
/* Every Connector held, any class, in no particular order. fn must not
 * change the store. */
void k8s_store_foreach_connector(struct k8s_store *s, k8s_store_connector_fn fn, void *arg);

enum k8s_store_change {
	K8S_STORE_CONNECTOR_CHANGED, /* added, or its spec or one of its Secrets changed */
	K8S_STORE_CONNECTOR_STATUS,  /* a new resourceVersion that changes nothing it
				      * is built from: status, labels, annotations */
	K8S_STORE_CONNECTOR_DELETED,
	K8S_STORE_RESYNCED,          /* a list completed (ns and name NULL): anything
				      * may have changed */
};

/* Called from within the store's watch handling: it must not call into the
 * store or free it; schedule the work instead. */
typedef void (*k8s_store_listener_fn)(void *arg, enum k8s_store_change what, const char *ns,
				      const char *name);
/* One listener; NULL removes it. */
void k8s_store_set_listener(struct k8s_store *s, k8s_store_listener_fn fn, void *arg);

struct k8s_store_stats {
	unsigned long lists;        /* list requests (pages) sent */
	unsigned long relists;      /* lists started after the first (410, errors) */
	unsigned long watches;      /* watch requests sent */
	unsigned long events;       /* watch events applied */
	unsigned long secret_gets;  /* single-Secret GETs */
	unsigned long retries;      /* backoff delays scheduled */
	unsigned last_backoff_ms;   /* the latest such delay */
	size_t connectors;          /* Connectors held (any class) */
	size_t secrets;             /* referenced Secrets held (loaded or not) */
};
void k8s_store_get_stats(const struct k8s_store *s, struct k8s_store_stats *out);

#endif
