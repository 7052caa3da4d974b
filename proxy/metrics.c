#include "proxy/metrics.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "auth/connector.h"
#include "k8s/lease.h"
#include "proxy/blobcache.h"
#include "proxy/conn.h"
#include "proxy/proxy.h"

#ifndef OCIGATE_VERSION
#define OCIGATE_VERSION "dev"
#endif

/* Slot 0: no connector; the last slot: connectors beyond the limit. */
#define M_SLOTS (METRICS_MAX_CONNECTORS + 2)
#define M_SLOT_NONE 0
#define M_SLOT_OTHER (M_SLOTS - 1)
#define M_METHODS (HTTP_M_OPTIONS + 1)
#define M_NAME_MAX 320 /* "ns/name": a DNS label, '/', a DNS subdomain */

/* Status codes worth a series of their own; any other code is counted
 * under its class ("1xx".."5xx"). */
static const int m_codes[] = {
	200, 201, 202, 204, 206, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 408, 409,
	413, 416, 429, 431, 499, 500, 501, 502, 503, 504,
};
#define M_N_CODES OG_ARRAY_LEN(m_codes)
#define M_CODE_SLOTS (M_N_CODES + 5)

/* Upper bounds in microseconds: integer compares on the hot path. A blob
 * pull can take minutes, so the buckets go that far. */
static const uint64_t m_buckets_us[] = {
	1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
	10000000, 30000000, 60000000, 300000000,
};
#define M_N_BUCKETS OG_ARRAY_LEN(m_buckets_us)

struct m_connector {
	uint64_t requests[M_METHODS][M_CODE_SLOTS];
	uint64_t duration_buckets[M_N_BUCKETS + 1]; /* not cumulative; last = +Inf */
	double duration_sum;
	uint64_t response_bytes;
	uint64_t upstream[M_CODE_SLOTS];
};

static struct {
	struct m_connector slot[M_SLOTS];
	char name[M_SLOTS][M_NAME_MAX];
	unsigned n_named; /* slots 1..n_named carry a connector name */
	bool other_used;
	uint64_t events[METRICS_N_EVENTS];
	uint64_t cache_errors[BLOBCACHE_N_ERRORS]; /* before the cache existed */
} m;

static unsigned metrics_code_slot(int status)
{
	for (size_t i = 0; i < M_N_CODES; i++)
		if (m_codes[i] == status)
			return (unsigned)i;
	if (status >= 100 && status < 600)
		return (unsigned)(M_N_CODES + (size_t)(status / 100 - 1));
	return M_N_CODES + 4; /* not a status: count it as a server error */
}

static void metrics_code_label(unsigned slot, char *buf, size_t cap)
{
	if (slot < M_N_CODES)
		snprintf(buf, cap, "%d", m_codes[slot]);
	else
		snprintf(buf, cap, "%uxx", slot - (unsigned)M_N_CODES + 1);
}

/* A connector object learns its slot once; a reload makes new objects
 * with the same id, which find the same slot by name. */
static unsigned metrics_slot(struct connector *c)
{
	if (!c)
		return M_SLOT_NONE;
	if (c->metrics_slot)
		return c->metrics_slot;
	for (unsigned i = 1; i <= m.n_named; i++) {
		if (strcmp(m.name[i], c->id) == 0) {
			c->metrics_slot = i;
			return i;
		}
	}
	if (m.n_named < METRICS_MAX_CONNECTORS && strlen(c->id) < M_NAME_MAX) {
		unsigned i = ++m.n_named;
		memcpy(m.name[i], c->id, strlen(c->id) + 1);
		c->metrics_slot = i;
		return i;
	}
	c->metrics_slot = M_SLOT_OTHER;
	m.other_used = true;
	return M_SLOT_OTHER;
}

void metrics_request_done(struct connector *c, enum http_method meth, int status,
			  uint64_t response_bytes, double seconds)
{
	struct m_connector *s = &m.slot[metrics_slot(c)];
	uint64_t us = seconds > 0 ? (uint64_t)(seconds * 1e6) : 0;
	size_t b = 0;

	if ((unsigned)meth >= M_METHODS)
		meth = HTTP_M_OTHER;
	s->requests[meth][metrics_code_slot(status)]++;
	while (b < M_N_BUCKETS && us > m_buckets_us[b])
		b++;
	s->duration_buckets[b]++;
	s->duration_sum += seconds;
	s->response_bytes += response_bytes;
}

void metrics_upstream_response(struct connector *c, int status)
{
	m.slot[metrics_slot(c)].upstream[metrics_code_slot(status)]++;
}

void metrics_count(enum metrics_event e)
{
	if (e < METRICS_N_EVENTS)
		m.events[e]++;
}

void metrics_reset(void)
{
	memset(&m, 0, sizeof(m));
}

/* ---- rendering (scrape time only) ---------------------------------------- */

static const char *metrics_slot_name(unsigned i)
{
	if (i == M_SLOT_NONE)
		return "none";
	if (i == M_SLOT_OTHER)
		return "_other";
	return m.name[i];
}

/* Connector ids are DNS names and '/', but a label value must escape
 * '\\', '"' and newlines whatever it holds. */
static void metrics_label_value(struct evbuffer *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(out, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

static void metrics_head(struct evbuffer *out, const char *name, const char *type,
			 const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static bool metrics_slot_used(unsigned i)
{
	return i == M_SLOT_NONE || i <= m.n_named || (i == M_SLOT_OTHER && m.other_used);
}

static void metrics_conn_label(struct evbuffer *out, const char *family, unsigned i)
{
	evbuffer_add_printf(out, "%s{connector=\"", family);
	metrics_label_value(out, metrics_slot_name(i));
	evbuffer_add(out, "\"", 1);
}

static void metrics_render_requests(struct evbuffer *out)
{
	char code[16];

	metrics_head(out, "ocigate_http_requests_total", "counter",
		     "Client requests answered, by connector, method and status code; a request "
		     "cut short counts with the status that went out, 499 if none did.");
	for (unsigned i = 0; i < M_SLOTS; i++) {
		for (unsigned meth = 0; meth < M_METHODS; meth++) {
			for (unsigned k = 0; k < M_CODE_SLOTS; k++) {
				uint64_t v = m.slot[i].requests[meth][k];
				if (!v)
					continue;
				metrics_code_label(k, code, sizeof(code));
				metrics_conn_label(out, "ocigate_http_requests_total", i);
				evbuffer_add_printf(out, ",method=\"%s\",code=\"%s\"} %llu\n",
						    http1_method_name((enum http_method)meth), code,
						    (unsigned long long)v);
			}
		}
	}
}

static void metrics_render_durations(struct evbuffer *out)
{
	static const char fam[] = "ocigate_http_request_duration_seconds";

	metrics_head(out, fam, "histogram",
		     "Time from a complete request head to the end of the response, by connector.");
	for (unsigned i = 0; i < M_SLOTS; i++) {
		const struct m_connector *s = &m.slot[i];
		uint64_t cum = 0;

		if (!metrics_slot_used(i))
			continue;
		for (size_t b = 0; b <= M_N_BUCKETS; b++) {
			cum += s->duration_buckets[b];
			metrics_conn_label(out, "ocigate_http_request_duration_seconds_bucket", i);
			if (b < M_N_BUCKETS)
				evbuffer_add_printf(out, ",le=\"%g\"} %llu\n",
						    (double)m_buckets_us[b] / 1e6, (unsigned long long)cum);
			else
				evbuffer_add_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
		}
		metrics_conn_label(out, "ocigate_http_request_duration_seconds_sum", i);
		evbuffer_add_printf(out, "} %.6f\n", s->duration_sum);
		metrics_conn_label(out, "ocigate_http_request_duration_seconds_count", i);
		evbuffer_add_printf(out, "} %llu\n", (unsigned long long)cum);
	}
}

static void metrics_render_bytes_upstream(struct evbuffer *out)
{
	char code[16];

	metrics_head(out, "ocigate_http_response_bytes_total", "counter",
		     "Response body bytes sent to clients, by connector.");
	for (unsigned i = 0; i < M_SLOTS; i++) {
		if (!metrics_slot_used(i))
			continue;
		metrics_conn_label(out, "ocigate_http_response_bytes_total", i);
		evbuffer_add_printf(out, "} %llu\n", (unsigned long long)m.slot[i].response_bytes);
	}
	metrics_head(out, "ocigate_upstream_requests_total", "counter",
		     "Responses from upstream registries (every hop: token challenges and redirects "
		     "too), by connector and status code.");
	for (unsigned i = 0; i < M_SLOTS; i++) {
		for (unsigned k = 0; k < M_CODE_SLOTS; k++) {
			if (!m.slot[i].upstream[k])
				continue;
			metrics_code_label(k, code, sizeof(code));
			metrics_conn_label(out, "ocigate_upstream_requests_total", i);
			evbuffer_add_printf(out, ",code=\"%s\"} %llu\n", code,
					    (unsigned long long)m.slot[i].upstream[k]);
		}
	}
}

static void metrics_render_auth(const struct proxy *px, struct evbuffer *out)
{
	struct auth_cache_counts cc = { 0 };

	if (px->auth && px->auth->ops->cache_counts)
		px->auth->ops->cache_counts(px->auth, &cc);
	metrics_head(out, "ocigate_auth_cache_requests_total", "counter",
		     "Lookups in the decision caches of Kubernetes mode: token (TokenReview) and "
		     "access (SubjectAccessReview).");
	evbuffer_add_printf(out,
			    "ocigate_auth_cache_requests_total{cache=\"token\",result=\"hit\"} %llu\n"
			    "ocigate_auth_cache_requests_total{cache=\"token\",result=\"miss\"} %llu\n"
			    "ocigate_auth_cache_requests_total{cache=\"access\",result=\"hit\"} %llu\n"
			    "ocigate_auth_cache_requests_total{cache=\"access\",result=\"miss\"} %llu\n",
			    (unsigned long long)cc.token_hits, (unsigned long long)cc.token_misses,
			    (unsigned long long)cc.access_hits, (unsigned long long)cc.access_misses);
}

static void metrics_render_events(struct evbuffer *out)
{
	metrics_head(out, "ocigate_config_reloads_total", "counter",
		     "SIGHUP reloads of the configuration, by result.");
	evbuffer_add_printf(out, "ocigate_config_reloads_total{result=\"ok\"} %llu\n"
			    "ocigate_config_reloads_total{result=\"failed\"} %llu\n",
			    (unsigned long long)m.events[METRICS_RELOAD_OK],
			    (unsigned long long)m.events[METRICS_RELOAD_FAILED]);
	metrics_head(out, "ocigate_tls_certificate_reloads_total", "counter",
		     "Reloads of the [tls] certificate pair, by result (failed keeps the old pair).");
	evbuffer_add_printf(out, "ocigate_tls_certificate_reloads_total{result=\"ok\"} %llu\n"
			    "ocigate_tls_certificate_reloads_total{result=\"failed\"} %llu\n",
			    (unsigned long long)m.events[METRICS_TLS_CERT_RELOAD_OK],
			    (unsigned long long)m.events[METRICS_TLS_CERT_RELOAD_FAILED]);
	metrics_head(out, "ocigate_tls_handshake_failures_total", "counter",
		     "Client connections on the TLS listener that failed before a request.");
	evbuffer_add_printf(out, "ocigate_tls_handshake_failures_total %llu\n",
			    (unsigned long long)m.events[METRICS_TLS_HANDSHAKE_FAILED]);
}

static void metrics_render_process(const struct proxy *px, struct evbuffer *out)
{
	metrics_head(out, "ocigate_connections", "gauge", "Client connections open now.");
	evbuffer_add_printf(out, "ocigate_connections %zu\n", px->n_conns);
	metrics_head(out, "ocigate_parked_connections", "gauge",
		     "Idle client connections parked: reduced to their socket until the client "
		     "sends again (included in ocigate_connections).");
	evbuffer_add_printf(out, "ocigate_parked_connections %zu\n", px->n_parked);
	metrics_head(out, "ocigate_body_streams", "gauge",
		     "Bodies being relayed through memory now, in either direction; they share "
		     "[server] body_memory.");
	evbuffer_add_printf(out, "ocigate_body_streams %zu\n", px->body_streams);
	metrics_head(out, "ocigate_body_bytes_queued", "gauge",
		     "Bytes those bodies hold in ocigate's buffers now.");
	evbuffer_add_printf(out, "ocigate_body_bytes_queued %zu\n", conn_body_bytes_queued(px));
	metrics_head(out, "ocigate_connections_accepted_total", "counter",
		     "Client connections accepted.");
	evbuffer_add_printf(out, "ocigate_connections_accepted_total %llu\n",
			    (unsigned long long)px->stats.accepted);
	metrics_head(out, "ocigate_upstream_connections_total", "counter",
		     "Upstream connections used for a request: new ones, and reused from the pool.");
	evbuffer_add_printf(out, "ocigate_upstream_connections_total{reused=\"no\"} %llu\n"
			    "ocigate_upstream_connections_total{reused=\"yes\"} %llu\n",
			    (unsigned long long)px->stats.upstream_connects,
			    (unsigned long long)px->stats.upstream_reuses);
	metrics_head(out, "ocigate_upstream_stale_retries_total", "counter",
		     "GET, HEAD and DELETE requests sent again on a new upstream connection because the "
		     "registry closed the pooled one they were sent on without answering.");
	evbuffer_add_printf(out, "ocigate_upstream_stale_retries_total %llu\n",
			    (unsigned long long)px->stats.upstream_stale_retries);
	metrics_head(out, "ocigate_spliced_bodies_total", "counter",
		     "Response bodies moved from a plain-HTTP upstream to a plain-HTTP client "
		     "with splice(2), to the end.");
	evbuffer_add_printf(out, "ocigate_spliced_bodies_total %llu\n",
			    (unsigned long long)px->stats.spliced_bodies);
	metrics_head(out, "ocigate_spliced_bytes_total", "counter",
		     "Response body bytes moved with splice(2), without a copy through ocigate.");
	evbuffer_add_printf(out, "ocigate_spliced_bytes_total %llu\n",
			    (unsigned long long)px->stats.spliced_bytes);
	metrics_head(out, "ocigate_ready", "gauge",
		     "1 when /readyz answers 200 (connectors loaded, not shutting down).");
	evbuffer_add_printf(out, "ocigate_ready %d\n",
			    !px->shutting_down && auth_backend_ready(px->auth));
	metrics_head(out, "ocigate_build_info", "gauge", "Always 1; the version as a label.");
	evbuffer_add_printf(out, "ocigate_build_info{version=\"%s\"} 1\n", OCIGATE_VERSION);
}

/* Leader election: who this replica is, whether it leads, how often the
 * Lease moved (one series each: the identity is this process's own). */
static void metrics_render_leader(const struct proxy *px, struct evbuffer *out)
{
	struct k8s_lease_stats st;

	if (!px->lease)
		return;
	k8s_lease_get_stats(px->lease, &st);
	metrics_head(out, "ocigate_leader", "gauge",
		     "1 while this replica holds the Lease (runs the status writer and the "
		     "pull-secret refresher), else 0.");
	evbuffer_add_printf(out, "ocigate_leader{identity=\"");
	metrics_label_value(out, k8s_lease_own_identity(px->lease));
	evbuffer_add_printf(out, "\"} %d\n", k8s_lease_leading(px->lease) ? 1 : 0);
	metrics_head(out, "ocigate_leader_acquired_total", "counter",
		     "Times this replica became the Lease holder.");
	evbuffer_add_printf(out, "ocigate_leader_acquired_total %llu\n",
			    (unsigned long long)st.acquired);
	metrics_head(out, "ocigate_leader_lost_total", "counter",
		     "Times this replica stopped leading without releasing the Lease "
		     "(renew_deadline passed).");
	evbuffer_add_printf(out, "ocigate_leader_lost_total %llu\n", (unsigned long long)st.lost);
	metrics_head(out, "ocigate_lease_transitions", "gauge",
		     "The Lease's leaseTransitions as last read or written by this replica.");
	evbuffer_add_printf(out, "ocigate_lease_transitions %lld\n", (long long)st.transitions);
	metrics_head(out, "ocigate_lease_requests_failed_total", "counter",
		     "Lease requests that failed, by reason (conflict: 409, someone else wrote it).");
	evbuffer_add_printf(out,
			    "ocigate_lease_requests_failed_total{reason=\"conflict\"} %llu\n"
			    "ocigate_lease_requests_failed_total{reason=\"error\"} %llu\n",
			    (unsigned long long)st.conflicts, (unsigned long long)st.failures);
}

void metrics_cache_error(int reason)
{
	if (reason >= 0 && reason < BLOBCACHE_N_ERRORS)
		m.cache_errors[reason]++;
}

/* Rendered whenever [cache] dir is set, also when the directory could not
 * be used (then every series but the errors stays 0). */
static void metrics_render_cache(const struct proxy *px, struct evbuffer *out)
{
	static const struct blobcache_stats none;
	const struct blobcache_stats *st = px->cache ? blobcache_stats(px->cache) : &none;

	if (!px->cfg || !px->cfg->cache.dir || !*px->cfg->cache.dir)
		return;
	metrics_head(out, "ocigate_cache_requests_total", "counter",
		     "Cacheable requests (blobs, manifests by digest): served from a cached file (hit), "
		     "following a fill in flight (follow), or sent upstream (miss).");
	evbuffer_add_printf(out,
			    "ocigate_cache_requests_total{result=\"hit\"} %llu\n"
			    "ocigate_cache_requests_total{result=\"follow\"} %llu\n"
			    "ocigate_cache_requests_total{result=\"miss\"} %llu\n",
			    (unsigned long long)st->hits, (unsigned long long)st->follows,
			    (unsigned long long)st->misses);
	metrics_head(out, "ocigate_cache_bytes", "gauge", "Bytes of bodies in the cache.");
	evbuffer_add_printf(out, "ocigate_cache_bytes %llu\n",
			    (unsigned long long)(px->cache ? blobcache_bytes(px->cache) : 0));
	metrics_head(out, "ocigate_cache_entries", "gauge", "Blobs and manifests in the cache.");
	evbuffer_add_printf(out, "ocigate_cache_entries %llu\n",
			    (unsigned long long)(px->cache ? blobcache_count(px->cache) : 0));
	metrics_head(out, "ocigate_cache_upstream_transfers_saved_total", "counter",
		     "GET bodies served from the cache instead of an upstream transfer.");
	evbuffer_add_printf(out, "ocigate_cache_upstream_transfers_saved_total %llu\n",
			    (unsigned long long)st->saved_transfers);
	metrics_head(out, "ocigate_cache_upstream_bytes_saved_total", "counter",
		     "Body bytes served from the cache instead of upstream.");
	evbuffer_add_printf(out, "ocigate_cache_upstream_bytes_saved_total %llu\n",
			    (unsigned long long)st->saved_bytes);
	metrics_head(out, "ocigate_cache_evictions_total", "counter",
		     "Entries evicted for max_size or min_free.");
	evbuffer_add_printf(out, "ocigate_cache_evictions_total %llu\n",
			    (unsigned long long)st->evictions);
	metrics_head(out, "ocigate_cache_errors_total", "counter",
		     "Cache failures by reason; requests were proxied without the cache (digest_mismatch: "
		     "the client connection was cut).");
	for (int i = 0; i < BLOBCACHE_N_ERRORS; i++)
		evbuffer_add_printf(out, "ocigate_cache_errors_total{reason=\"%s\"} %llu\n",
				    blobcache_error_name((enum blobcache_error)i),
				    (unsigned long long)(st->errors[i] + m.cache_errors[i]));
}

void metrics_render(const struct proxy *px, struct evbuffer *out)
{
	metrics_render_requests(out);
	metrics_render_durations(out);
	metrics_render_bytes_upstream(out);
	metrics_render_auth(px, out);
	metrics_render_events(out);
	metrics_render_process(px, out);
	metrics_render_leader(px, out);
	metrics_render_cache(px, out);
}
