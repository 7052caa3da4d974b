/* Prometheus metrics. Recording is a few array increments on fixed,
 * preallocated counters (per connector slot, method and status code):
 * nothing is allocated or formatted until /metrics is scraped on the admin
 * listener, which renders the text exposition format 0.0.4. */
#ifndef OCIGATE_PROXY_METRICS_H
#define OCIGATE_PROXY_METRICS_H

#include "util/common.h"
#include "util/http1.h"

struct evbuffer;
struct connector;
struct proxy;

/* Connectors with a series of their own; requests for more connectors than
 * this are counted under connector="_other" (labels stay bounded). */
#define METRICS_MAX_CONNECTORS 255

/* A client request answered: connector may be NULL (health, /v2/, errors
 * before a connector was found). */
void metrics_request_done(struct connector *c, enum http_method m, int status,
			  uint64_t response_bytes, double seconds);
/* A response head (or an error in place of one) from an upstream registry. */
void metrics_upstream_response(struct connector *c, int status);
/* Events without labels worth a counter. */
enum metrics_event {
	METRICS_RELOAD_OK,
	METRICS_RELOAD_FAILED,
	METRICS_TLS_CERT_RELOAD_OK,
	METRICS_TLS_CERT_RELOAD_FAILED,
	METRICS_TLS_HANDSHAKE_FAILED,
	METRICS_N_EVENTS
};
void metrics_count(enum metrics_event e);
/* A blob cache failure before the cache existed (enum blobcache_error). */
void metrics_cache_error(int reason);

/* Appends the whole exposition for px to out. */
void metrics_render(const struct proxy *px, struct evbuffer *out);

/* Forgets every connector slot and count (tests). */
void metrics_reset(void);

#endif
