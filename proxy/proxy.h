/* The proxy's process-wide state: one event loop, one listener, the
 * connections, and the auth backend of the current configuration. */
#ifndef OCIGATE_PROXY_PROXY_H
#define OCIGATE_PROXY_PROXY_H

#include <sys/time.h>

#include "auth/auth.h"
#include "proxy/accept_guard.h"
#include "util/http1.h"
#include "util/common.h"
#include "util/config.h"

struct event_base;
struct evdns_base;
struct evconnlistener;
struct event;
struct conn;
struct k8s_lease;
struct k8s_runtime;
struct admin;
struct tls_listener;
struct blobcache;
struct blobserve_orphan;
struct park;

struct proxy_stats {
	uint64_t accepted;
	uint64_t requests;
	uint64_t upstream_connects;
	uint64_t upstream_reuses;
	uint64_t upstream_stale_retries; /* sent again: the pooled connection was closed */
	uint64_t spliced_bodies;  /* response bodies relayed with splice(2) */
	uint64_t spliced_bytes;
};

struct proxy {
	struct event_base *base;
	struct evdns_base *dns;
	struct config *cfg;
	struct auth_backend *auth;
	/* Kubernetes mode's API client and Connector store (main.c builds it,
	 * the proxy frees it after auth), or NULL in standalone mode. */
	struct k8s_runtime *k8s;
	struct evconnlistener *listener;
	struct accept_guard accept_guard; /* pauses the listener: limit, out of fds */
	struct conn *conns;      /* all live connections, doubly linked */
	size_t n_conns;
	/* Idle plain-TCP clients reduced to their socket (park.c), oldest
	 * first; counted in n_conns too. */
	struct park *parked, *parked_last;
	size_t n_parked;
	struct event *park_timer; /* closes parked connections at idle_timeout */
	struct conn *reap_list;  /* closed, freed from the reap event */
	struct event *reap_ev;
	struct event *log_ev; /* writes the log lines held in a loop round */
	uint64_t next_conn_id;
	/* Bodies relayed through memory now, in either direction, and the
	 * bytes they queue: they share [server] body_memory
	 * (exchange_body_share, exchange_may_queue). */
	size_t body_streams;
	size_t body_queued;
	bool shutting_down;
	struct event *shutdown_timer;
	struct event *sig_events[4];
	/* Parsing scratch: the loop is single-threaded, so one array serves
	 * every head being parsed; parsed headers are copied out. */
	struct http1_header *scratch_headers;
	size_t scratch_cap;
	struct http1_limits req_limits, resp_limits;
	struct timeval header_timeout, idle_timeout, send_timeout;
	/* How long a plain-TCP client is idle before it is parked (the
	 * shorter of PARK_DELAY_MS and idle_timeout), and the rest of
	 * idle_timeout for one that could not be parked then. */
	struct timeval park_delay, idle_after_park;
	struct timeval connect_timeout, read_timeout, pool_idle_timeout;
	char listen_text[128];
	struct proxy_stats stats;
	struct admin *admin;          /* [server] admin_listen, or NULL */
	struct tls_listener *tls;     /* [tls] listen, or NULL */
	/* Leader election, or NULL: for its metrics (main.c owns it). */
	const struct k8s_lease *lease;
	struct blobcache *cache;      /* [cache] dir, or NULL: no blob cache */
	/* Fills whose first client went away while followers read them
	 * (proxy/blobserve.c owns them). */
	struct blobserve_orphan *cache_orphans;
};

/* Creates the loop, DNS, listener and signal handlers for cfg (which the
 * proxy owns from then on). */
OG_WARN_UNUSED int proxy_init(struct proxy *px, struct config *cfg, struct auth_backend *auth);
/* Runs until shutdown completes. Returns the process exit status. */
int proxy_run(struct proxy *px);
void proxy_free(struct proxy *px);

/* Applies the timeouts and limits of px->cfg (at start and on reload). */
void proxy_apply_settings(struct proxy *px);
/* Re-enables accepting when a connection slot is free again. */
void proxy_conn_gone(struct proxy *px);

#endif
