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
