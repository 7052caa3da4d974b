/* The Connector status writer of Kubernetes mode.
 *
 * For every "oci" Connector in the store it probes the registry (GET /v2/
 * with the connector's credentials through the connector's upstream site,
 * following the registry token flow with an empty scope, which the
 * distribution spec's version check accepts), computes the conditions
 * (k8s/status.h) and PATCHes the status subresource with a JSON merge patch
 * when, and only when, they differ from what the object has.
 *
 * When: once the store has synced, at once for every connector; again
 * every probe_interval (with 10% jitter); at once when a Connector or one
 * of its Secrets changes. A probe that finds the registry unreachable or
 * refusing is repeated with per-connector exponential backoff, starting at
 * min(probe_interval, 5 s) and capped at 4 x probe_interval (at most
 * 10 min). Failed API writes back off from 1 s to 60 s.
 *
 * Several replicas: every patch carries metadata.resourceVersion, so the
 * API server applies it only to the version the writer computed from;
 * on 409 Conflict the writer GETs the object and recomputes from it
 * (usually finding the other replica already wrote the same status, and
 * writing nothing). With leader election (k8s/lease.h, the default) only
 * the Lease holder runs a writer: proxy/main.c creates and frees it. */
#ifndef OCIGATE_PROXY_STATUS_H
#define OCIGATE_PROXY_STATUS_H

#include "proxy/proxy.h"
#include "util/common.h"

struct k8s_client;
struct k8s_store;
struct status_writer;

struct status_settings {
	uint64_t probe_interval_ms;  /* > 0 */
	const char *public_address;  /* host:port of status.proxy.httpAddress.url (copied) */
};

/* Listens to the store (its only listener) and writes through client; both
 * must outlive the writer. */
struct status_writer *status_writer_new(struct proxy *px, struct k8s_client *client,
					struct k8s_store *store, const struct status_settings *s);
/* Cancels every probe and API request. */
void status_writer_free(struct status_writer *w);

struct status_writer_stats {
	uint64_t probes;     /* registry probes started */
	uint64_t patches;    /* status patches sent */
	uint64_t written;    /* ... that the API server accepted */
	uint64_t unchanged;  /* decisions that found nothing to write */
	uint64_t conflicts;  /* 409 answers */
	uint64_t failures;   /* other failed API requests */
	size_t connectors;   /* connectors followed */
};
void status_writer_get_stats(const struct status_writer *w, struct status_writer_stats *out);

#endif
