/* One Kubernetes list + watch loop, shared by the Connector store and the
 * pull-secret refresher: they only say what to do with each object.
 *
 * k8s_watch_start lists the collection in pages (limit/continue), then
 * watches it from the list's resourceVersion with bookmarks and
 * timeoutSeconds. Every event (bookmarks too) moves the resourceVersion
 * on; a watch that ends is opened again from it. 410 Gone (the HTTP status
 * or an ERROR event with code 410) lists again at once; other failures
 * wait a capped exponential backoff with equal jitter (Retry-After is
 * honoured), then watch again from the last resourceVersion, or list
 * again when the list failed. A watch that delivered nothing and ended
 * within 10 s counts as a failure, so a server that closes every watch
 * at once is not hammered.
 *
 * Failures are logged as k8s_watch_failed with kind=, ns=, op= (list or
 * watch), status= and error=; the first complete list as k8s_synced. */
#ifndef OCIGATE_K8S_WATCH_H
#define OCIGATE_K8S_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "k8s/client.h"
#include "util/common.h"
#include "util/json.h"

struct event_base;

struct k8s_watch;

struct k8s_watch_ops {
	/* An object of a list page or of an ADDED/MODIFIED/DELETED event (tok
	 * is its token in d). */
	void (*item)(void *arg, struct k8s_watch *w, const struct json_doc *d, int tok,
		     bool deleted);
	/* A complete list was applied: whatever it did not show (objects not
	 * seen since k8s_watch_gen changed) is gone. The watch is already
	 * open again and k8s_watch_synced is true. May be NULL. */
	void (*listed)(void *arg, struct k8s_watch *w);
};

/* What the API-server side would be for tests: the defaults are
 * k8s_client_get, k8s_client_watch and k8s_request_cancel. Same rules as
 * those (never NULL, callbacks later from the loop). */
struct k8s_watch_transport {
	struct k8s_request *(*get)(void *ctx, const char *path, k8s_response_fn done, void *arg);
	struct k8s_request *(*watch)(void *ctx, const char *path, k8s_line_fn line,
				     k8s_response_fn end, void *arg);
	void (*cancel)(void *ctx, struct k8s_request *r);
	void *ctx;
};

/* Counters; several watches may share one (the store adds its own GETs'
 * retries to it). */
struct k8s_watch_stats {
	unsigned long lists;      /* list requests (pages) sent */
	unsigned long relists;    /* lists started after the first (410, errors) */
	unsigned long watches;    /* watch requests sent */
	unsigned long events;     /* watch events applied, bookmarks included */
	unsigned long retries;    /* backoff delays scheduled */
	unsigned last_backoff_ms; /* the latest such delay */
};

struct k8s_watch_opts {
	struct k8s_client *client;  /* unless transport is set; must outlive the watch */
	const struct k8s_watch_transport *transport; /* tests; NULL: client */
	const char *path;           /* the collection, escaped, without a query (copied) */
	const char *list_kind;      /* the list's items' kind, e.g. "Connector" */
	const char *kind;           /* for the logs, e.g. "connectors" */
	const char *ns;             /* for the logs; NULL: "*" (all namespaces) */
	/* 0 selects the default in brackets. */
	unsigned watch_timeout_s;   /* timeoutSeconds of every watch [300] */
	unsigned backoff_min_ms;    /* first retry delay [500] */
	unsigned backoff_max_ms;    /* cap of the delay [30000] */
	unsigned page_size;         /* list limit [500] */
	struct k8s_watch_stats *stats; /* NULL: the watch's own */
};

/* Does nothing until k8s_watch_start. */
struct k8s_watch *k8s_watch_new(struct event_base *base, const struct k8s_watch_opts *o,
				const struct k8s_watch_ops *ops, void *arg);
/* Cancels the request or timer under way; no callback runs after. */
void k8s_watch_free(struct k8s_watch *w);

/* Starts the first list; later calls do nothing. */
void k8s_watch_start(struct k8s_watch *w);
bool k8s_watch_started(const struct k8s_watch *w);
/* True once a complete list has been applied (readiness); stays true. */
bool k8s_watch_synced(const struct k8s_watch *w);
/* Bumped when each list starts: items mark themselves seen with it so
 * that `listed` can sweep the rest. */
unsigned k8s_watch_gen(const struct k8s_watch *w);
const struct k8s_watch_stats *k8s_watch_get_stats(const struct k8s_watch *w);

/* ---- helpers for the users' own retries ---- */

/* A seed that differs between processes and objects. */
uint64_t k8s_rand_seed(const void *salt);
/* xorshift64; *state must not be 0. */
uint64_t k8s_rand_next(uint64_t *state);
/* min_ms << *failures capped at max_ms, then equal jitter (half fixed,
 * half random) so that replicas spread out, then at least retry_after_s.
 * Increments *failures. */
unsigned k8s_backoff_ms(uint64_t *rng, unsigned min_ms, unsigned max_ms, unsigned *failures,
			unsigned retry_after_s);

#endif
