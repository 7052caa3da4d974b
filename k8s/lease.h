/* Leader election through a coordination.k8s.io/v1 Lease, with the
 * semantics of client-go's leaderelection package, so that among several
 * replicas exactly one runs the controllers that write to the API (the
 * Connector status writer, the pull-secret refresher):
 *
 *   - acquire: create the Lease, or update it with the resourceVersion it
 *     was read at when it has no holder, is ours, or has expired
 *     (renewTime + leaseDurationSeconds is in the past); a 409 Conflict
 *     means another replica won the race;
 *   - a new holder sets acquireTime and increments leaseTransitions;
 *   - the holder renews (renewTime) every retry_period; when no renew has
 *     succeeded for renew_deadline (counted from when the last successful
 *     one was sent) it stops leading at once. renew_deadline is shorter
 *     than lease_duration, so it has stopped before anyone else may take
 *     the lease over;
 *   - release: on a clean shutdown the holder writes an empty
 *     holderIdentity, so a standby takes over without waiting.
 *
 * Expiry compares renewTime with this machine's wall clock, as the issue
 * describes; replicas whose clocks differ by more than
 * lease_duration - renew_deadline could overlap.
 *
 * The first part is pure functions over bytes; the elector below runs on
 * the proxy's event loop. */
#ifndef OCIGATE_K8S_LEASE_H
#define OCIGATE_K8S_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/common.h"

struct evbuffer;
struct event_base;
struct k8s_client;

#define K8S_LEASE_API "/apis/coordination.k8s.io/v1"

/* ---- pure helpers ---- */

/* The spec of a Lease and the version it was read at. */
struct k8s_lease_record {
	char *resource_version; /* NULL when absent (a body to create) */
	char *holder;           /* spec.holderIdentity, "" when absent */
	int64_t duration_s;     /* spec.leaseDurationSeconds, 0 when absent */
	int64_t acquire_us;     /* spec.acquireTime, microseconds since the epoch; 0 absent */
	int64_t renew_us;       /* spec.renewTime, likewise */
	int64_t transitions;    /* spec.leaseTransitions, 0 when absent */
};

/* Parses a Lease (a GET, create or update response). Returns -1 with a
 * reason in err when it is not a coordination.k8s.io/v1 Lease with
 * metadata.resourceVersion, or a field has the wrong type or time format.
 * Free *out either way. */
OG_WARN_UNUSED int k8s_lease_parse(const char *text, size_t len, struct k8s_lease_record *out,
				   char *err, size_t err_cap);
void k8s_lease_record_free(struct k8s_lease_record *r);

/* The whole Lease to POST (r->resource_version NULL) or PUT (set):
 * {"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{...},
 *  "spec":{"holderIdentity":...,"leaseDurationSeconds":N,
 *  "acquireTime":...,"renewTime":...,"leaseTransitions":N}}; absent times
 * (0) are left out. */
void k8s_lease_body(struct evbuffer *out, const char *ns, const char *name,
		    const struct k8s_lease_record *r);

/* metav1.MicroTime: "2006-01-02T15:04:05.000000Z" (UTC). */
void k8s_lease_format_time(int64_t unix_us, char out[64]);
/* RFC 3339 with an optional fraction (more than 6 digits are truncated)
 * to microseconds since the epoch. */
OG_WARN_UNUSED int k8s_lease_parse_time(const char *s, int64_t *unix_us);

/* Held by someone (holder non-empty) whose renewTime + duration is not
 * yet past now_us. A record without renewTime or duration is not valid. */
bool k8s_lease_held(const struct k8s_lease_record *r, int64_t now_us);

/* The default identity: "HOSTNAME_RANDOM" (client-go uses the host name
 * and a UUID: two processes on one host must differ). Allocated. */
char *k8s_lease_identity(void);

/* The Lease's namespace: configured if not empty; else, with a kubeconfig
 * (context NULL or "" = its current-context), that context's namespace;
 * else, in-cluster, the Pod's (sa_dir/namespace; sa_dir NULL =
 * K8S_SERVICEACCOUNT_DIR); else "default". Allocated. */
char *k8s_lease_namespace(const char *configured, const char *kubeconfig, const char *context,
			  const char *sa_dir);

/* ---- the elector ---- */

typedef void (*k8s_lease_fn)(void *arg);

struct k8s_lease_opts {
	const char *ns, *name;       /* where the Lease lives (copied) */
	const char *identity;        /* holderIdentity (copied) */
	uint64_t duration_ms;        /* leaseDurationSeconds (rounded up to s) */
	uint64_t renew_deadline_ms;  /* < duration_ms */
	uint64_t retry_period_ms;    /* < renew_deadline_ms */
	k8s_lease_fn on_start;       /* became the holder */
	k8s_lease_fn on_stop;        /* stopped being the holder */
	void *arg;
};

struct k8s_lease;

/* client must outlive the elector. Starts trying at once. */
struct k8s_lease *k8s_lease_new(struct event_base *base, struct k8s_client *client,
				const struct k8s_lease_opts *o);
/* Cancels every request and timer; neither callback runs. */
void k8s_lease_free(struct k8s_lease *l);
bool k8s_lease_leading(const struct k8s_lease *l);

/* Clean shutdown: stops trying; when leading, runs on_stop first and then
 * writes the Lease with an empty holderIdentity. Returns true when that
 * write was sent: done then runs once, later, from the loop, when it was
 * answered or failed. Returns false (done never runs) when there was
 * nothing to give up. */
bool k8s_lease_release(struct k8s_lease *l, k8s_lease_fn done, void *arg);

struct k8s_lease_stats {
	uint64_t acquired;      /* times this replica became the holder */
	uint64_t lost;          /* times it stopped leading without releasing */
	uint64_t renewals;      /* successful renews */
	uint64_t conflicts;     /* 409 answers */
	uint64_t failures;      /* other failed requests */
	int64_t transitions;    /* leaseTransitions last seen */
};
void k8s_lease_get_stats(const struct k8s_lease *l, struct k8s_lease_stats *out);
/* This replica's holderIdentity. */
const char *k8s_lease_own_identity(const struct k8s_lease *l);

#endif
