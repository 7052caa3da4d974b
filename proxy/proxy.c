#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "auth/static_auth.h"
#include "k8s/runtime.h"
#include "proxy/admin.h"
#include "proxy/blobcache.h"
#include "proxy/blobserve.h"
#include "proxy/conn.h"
#include "proxy/listen.h"
#include "proxy/metrics.h"
#include "proxy/park.h"
#include "proxy/proxy.h"
#include "proxy/tls_listener.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/xalloc.h"

static void proxy_ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

void proxy_apply_settings(struct proxy *px)
{
	const struct config *cfg = px->cfg;
	size_t cap = OG_MAX(cfg->server.max_headers, 8);

	log_set_level((enum log_level)cfg->log.level);
	px->req_limits.max_head_bytes = cfg->server.max_header_bytes;
	px->req_limits.max_headers = cfg->server.max_headers;
	px->resp_limits.max_head_bytes = cfg->upstream.max_response_header_bytes;
	px->resp_limits.max_headers = cfg->server.max_headers;
	if (cap > px->scratch_cap) {
		px->scratch_headers = x_realloc(px->scratch_headers, cap * sizeof(*px->scratch_headers));
		px->scratch_cap = cap;
	}
	proxy_ms_to_tv(cfg->server.header_timeout_ms, &px->header_timeout);
	proxy_ms_to_tv(cfg->server.idle_timeout_ms, &px->idle_timeout);
	proxy_ms_to_tv(OG_MIN(cfg->server.idle_timeout_ms, (uint64_t)PARK_DELAY_MS), &px->park_delay);
	proxy_ms_to_tv(cfg->server.idle_timeout_ms - OG_MIN(cfg->server.idle_timeout_ms,
							     (uint64_t)PARK_DELAY_MS),
		       &px->idle_after_park);
	proxy_ms_to_tv(cfg->server.send_timeout_ms, &px->send_timeout);
	proxy_ms_to_tv(cfg->upstream.connect_timeout_ms, &px->connect_timeout);
	proxy_ms_to_tv(cfg->upstream.read_timeout_ms, &px->read_timeout);
	proxy_ms_to_tv(cfg->upstream.pool_idle_timeout_ms, &px->pool_idle_timeout);
	park_settings_changed(px);
}

/* ---- listener ---------------------------------------------------------- */

static void proxy_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
			    int len, void *arg)
{
	struct proxy *px = arg;

	(void)l;
	conn_accept(px, fd, addr, len);
	if (px->n_conns >= px->cfg->server.max_connections && !px->accept_guard.full) {
		log_warn("max_connections", "limit=%u", px->cfg->server.max_connections);
		accept_guard_set_full(&px->accept_guard, true);
	}
}

static void proxy_on_accept_error(struct evconnlistener *l, void *arg)
{
	struct proxy *px = arg;

	(void)l;
	accept_guard_on_error(&px->accept_guard, EVUTIL_SOCKET_ERROR());
}

void proxy_conn_gone(struct proxy *px)
{
	if (px->listener && !px->shutting_down) {
		if (px->n_conns < px->cfg->server.max_connections)
			accept_guard_set_full(&px->accept_guard, false);
		accept_guard_slot_freed(&px->accept_guard);
	}
	tls_listener_conn_gone(px);
	if (px->shutting_down && px->n_conns == 0)
		event_base_loopexit(px->base, NULL);
}

/* Descriptors the configuration may need at once: a client socket and an
 * upstream one per connection (token fetches and probes happen while the
 * request's own upstream socket is not open yet), the idle pools of the
 * registries, and a margin for the listener, the loop, DNS and the
 * Kubernetes API. */
static rlim_t proxy_fds_needed(const struct config *cfg)
{
	return 2 * (rlim_t)cfg->server.max_connections +
	       (rlim_t)cfg->n_connectors * cfg->upstream.pool_max_idle + 64;
}

/* The soft limit is often 1024 while the hard one is far higher: take all
 * that is allowed, and say when the configuration still cannot fit (the
 * listener then pauses on EMFILE instead of failing requests). */
static void proxy_raise_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	rlim_t need = proxy_fds_needed(cfg);

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = old;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warn("fd_limit", "limit=%llu needed=%llu max_connections=%u reason=\"the open "
			 "files limit cannot hold max_connections clients and their upstream "
			 "sockets; raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower "
			 "server.max_connections\"", (unsigned long long)rl.rlim_cur,
			 (unsigned long long)need, cfg->server.max_connections);
	else
		log_debug("fd_limit", "limit=%llu needed=%llu", (unsigned long long)rl.rlim_cur,
			  (unsigned long long)need);
}

/* Start-up only: resolving the listen address may block, the loop is not
 * running yet. Without a plain listener ([tls] only), nothing to do. */
static int proxy_listen(struct proxy *px)
{
	const struct config_address *a = &px->cfg->server.listen;

	if (!config_address_set(a))
		return 0;
	px->listener = listen_bind(px->base, a, "plain", proxy_on_accept, px, px->listen_text,
				   sizeof(px->listen_text));
	if (!px->listener)
		return -1;
	evconnlistener_set_error_cb(px->listener, proxy_on_accept_error);
	accept_guard_init(&px->accept_guard, px->base, px->listener, "client");
	log_info("listening", "addr=%s connectors=%zu", px->listen_text, px->cfg->n_connectors);
	return 0;
}

/* The service manager's view (sd_notify): readiness and a status line. */
static void proxy_notify(struct proxy *px, const char *state)
{
	char msg[256];

	if (px->cfg->kubernetes.enabled)
		snprintf(msg, sizeof(msg), "%sSTATUS=serving, connectors from the Kubernetes API\n",
			 state);
	else
		snprintf(msg, sizeof(msg), "%sSTATUS=serving, %zu connectors\n", state,
			 px->cfg->n_connectors);
	if (notify_send(msg) != 0)
		log_warn("notify_failed", "reason=\"%s\"", strerror(errno));
}

/* ---- signals: shutdown and reload ----------------------------------------- */

static void proxy_shutdown_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	(void)fd;
	(void)what;
	log_warn("shutdown_deadline", "open_connections=%zu", px->n_conns);
	conn_close_all(px, "shutdown_deadline");
	event_base_loopexit(px->base, NULL);
}

static void proxy_begin_shutdown(struct proxy *px, int sig)
{
	struct timeval tv;

	if (px->shutting_down) {
		log_warn("shutdown_forced", "signal=%d", sig);
		conn_close_all(px, "shutdown_forced");
		event_base_loopexit(px->base, NULL);
		return;
	}
	px->shutting_down = true;
	log_info("shutdown", "signal=%d open_connections=%zu", sig, px->n_conns);
	if (notify_send("STOPPING=1\nSTATUS=shutting down\n") != 0)
		log_warn("notify_failed", "reason=\"%s\"", strerror(errno));
	accept_guard_free(&px->accept_guard);
	if (px->listener)
		evconnlistener_free(px->listener);
	px->listener = NULL;
	tls_listener_close(px);
	conn_shutdown_all(px);
	proxy_ms_to_tv(px->cfg->server.shutdown_timeout_ms, &tv);
	px->shutdown_timer = evtimer_new(px->base, proxy_shutdown_deadline, px);
	evtimer_add(px->shutdown_timer, &tv);
	if (px->n_conns == 0)
		event_base_loopexit(px->base, NULL);
}

/* Options that need a restart keep their running values. */
static void proxy_keep_static_options(struct proxy *px, struct config *next)
{
	struct config *cur = px->cfg;
	const struct config_option *o = config_unreloadable_change(cur, next);
	char *tmp;

	if (o)
		log_warn("reload_partial", "option=%s.%s reason=\"needs a restart; keeping the "
			 "running value\"", o->section, o->name);
	tmp = next->server.listen.host;
	next->server.listen.host = cur->server.listen.host;
	cur->server.listen.host = tmp;
	tmp = next->server.public_address;
	next->server.public_address = cur->server.public_address;
	cur->server.public_address = tmp;
	next->server.listen.port = cur->server.listen.port;
	next->server.max_connections = cur->server.max_connections;
	next->server.shutdown_timeout_ms = cur->server.shutdown_timeout_ms;
}

static void proxy_reload_config(struct proxy *px)
{
	char err[512];
	struct config *next = x_new(struct config);
	struct auth_backend *auth;

	if (config_load(px->cfg->path, next, err, sizeof(err)) != 0) {
		log_error("reload_failed", "reason=\"%s\"", err);
		metrics_count(METRICS_RELOAD_FAILED);
		config_free(next);
		free(next);
		return;
	}
	if (next->kubernetes.enabled != px->cfg->kubernetes.enabled) {
		log_error("reload_failed", "reason=\"switching between standalone and Kubernetes "
			  "mode needs a restart\"");
		metrics_count(METRICS_RELOAD_FAILED);
		config_free(next);
		free(next);
		return;
	}
	/* Kubernetes mode keeps its backend: it follows the API server by
	 * itself, and requests wait on it (they hold handles into it), so it
	 * cannot be swapped under them. Its options need a restart. */
	auth = next->kubernetes.enabled ? NULL : static_auth_new(next, err, sizeof(err));
	if (!auth && !next->kubernetes.enabled) {
		log_error("reload_failed", "reason=\"%s\"", err);
		metrics_count(METRICS_RELOAD_FAILED);
		config_free(next);
		free(next);
		return;
	}
	proxy_keep_static_options(px, next);
	if (auth) {
		/* In-flight requests hold references to the connectors and
		 * identities they use, so the old backend can go now. */
		auth_backend_free(px->auth);
		px->auth = auth;
	}
	config_free(px->cfg);
	free(px->cfg);
	px->cfg = next;
	proxy_apply_settings(px);
	metrics_count(METRICS_RELOAD_OK);
	log_info("reloaded", "connectors=%zu", next->n_connectors);
}

/* systemd's Type=notify-reload protocol: RELOADING=1 with the monotonic
 * time, then READY=1 whether the new configuration took or not. */
static void proxy_reload(struct proxy *px)
{
	if (notify_reloading("STATUS=reloading\n") != 0)
		log_warn("notify_failed", "reason=\"%s\"", strerror(errno));
	proxy_reload_config(px);
	tls_listener_reload(px);
	proxy_notify(px, "READY=1\n");
}

static void proxy_on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	if (sig == SIGHUP)
		proxy_reload(arg);
	else
		proxy_begin_shutdown(arg, (int)sig);
}

static void proxy_on_reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_reap(arg);
}

/* Log lines are held (log_hold) for the rest of a loop round and written
 * together; a plain client's flush event writes them before its response
 * (conn_io.c), and this event, active from the first held line, writes what
 * no response did. Active events run in the order they were activated,
 * before the loop next waits. */
static void proxy_on_log(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_flush();
}

static void proxy_wake_log(void *arg)
{
	event_active(arg, EV_TIMEOUT, 0);
}

static void proxy_hold_log(struct proxy *px)
{
	px->log_ev = event_new(px->base, -1, 0, proxy_on_log, NULL);
	if (px->log_ev)
		log_hold(proxy_wake_log, px->log_ev);
}

/* A cache directory that cannot be used is not a reason to refuse pulls:
 * ocigate then proxies without a cache. */
static void proxy_open_cache(struct proxy *px)
{
	const struct config *cfg = px->cfg;
	struct blobcache_opts o = {
		.dir = cfg->cache.dir,
		.max_size = cfg->cache.max_size,
		.min_free_percent = cfg->cache.min_free_percent,
		.min_free_bytes = cfg->cache.min_free_bytes,
	};
	char err[600];

	if (!cfg->cache.dir || !*cfg->cache.dir)
		return;
	px->cache = blobcache_open(&o, px->base, err, sizeof(err));
	if (!px->cache) {
		log_warn("cache_disabled", "dir=%s reason=\"%s\"", cfg->cache.dir, err);
		metrics_cache_error(BLOBCACHE_E_OPEN);
	}
}

/* With epoll's change list, an event added and deleted again before the
 * loop next waits costs no epoll_ctl: a response written straight to the
 * client (conn_io.c) then never toggles write interest. Safe here because no
 * descriptor is dup()ed while it is in the loop. */
static struct event_base *proxy_new_base(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	if (!ec)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

int proxy_init(struct proxy *px, struct config *cfg, struct auth_backend *auth)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

	memset(px, 0, sizeof(*px));
	px->cfg = cfg;
	px->auth = auth;
	signal(SIGPIPE, SIG_IGN);
	/* Under a file size limit (RLIMIT_FSIZE), a cache write past it must
	 * fail with EFBIG and degrade to proxying, not kill the process. */
	signal(SIGXFSZ, SIG_IGN);
	px->base = proxy_new_base();
	if (!px->base) {
		log_error("init_failed", "reason=\"cannot create the event loop\"");
		return -1;
	}
	px->dns = evdns_base_new(px->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
					   EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!px->dns)
		px->dns = evdns_base_new(px->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	px->reap_ev = event_new(px->base, -1, 0, proxy_on_reap, px);
	proxy_hold_log(px);
	park_init(px);
	for (size_t i = 0; i < OG_ARRAY_LEN(sigs); i++) {
		px->sig_events[i] = evsignal_new(px->base, sigs[i], proxy_on_signal, px);
		event_add(px->sig_events[i], NULL);
	}
	proxy_apply_settings(px);
	proxy_raise_fd_limit(cfg);
	proxy_open_cache(px);
	if (proxy_listen(px) != 0 || tls_listener_start(px) != 0 || admin_start(px) != 0)
		return -1;
	return 0;
}

int proxy_run(struct proxy *px)
{
	proxy_notify(px, "READY=1\n");
	if (event_base_dispatch(px->base) < 0)
		return 1;
	conn_close_all(px, "exit");
	conn_reap(px);
	log_info("stopped", "requests=%llu connections=%llu upstream_connects=%llu upstream_reuses=%llu",
		 (unsigned long long)px->stats.requests, (unsigned long long)px->stats.accepted,
		 (unsigned long long)px->stats.upstream_connects,
		 (unsigned long long)px->stats.upstream_reuses);
	return 0;
}

void proxy_free(struct proxy *px)
{
	blobserve_shutdown(px); /* upstream connections, before their connectors */
	accept_guard_free(&px->accept_guard);
	if (px->listener)
		evconnlistener_free(px->listener);
	tls_listener_free(px->tls);
	admin_free(px->admin);
	auth_backend_free(px->auth);
	k8s_runtime_free(px->k8s); /* after its users, before the loop */
	blobcache_free(px->cache);
	for (size_t i = 0; i < OG_ARRAY_LEN(px->sig_events); i++)
		if (px->sig_events[i])
			event_free(px->sig_events[i]);
	if (px->shutdown_timer)
		event_free(px->shutdown_timer);
	if (px->reap_ev)
		event_free(px->reap_ev);
	if (px->log_ev) {
		log_hold(NULL, NULL);
		event_free(px->log_ev);
	}
	park_free(px);
	if (px->dns)
		evdns_base_free(px->dns, 0);
	if (px->base)
		event_base_free(px->base);
	free(px->scratch_headers);
	if (px->cfg) {
		config_free(px->cfg);
		free(px->cfg);
	}
	memset(px, 0, sizeof(*px));
}
