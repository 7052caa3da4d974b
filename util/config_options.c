/* The option table: every key of ocigate.conf, its type, default, bounds,
 * whether SIGHUP applies it, and its one-line documentation (which
 * `ocigate --help-config` and ocigate.conf(5) print). Parsing and checks are
 * in config.c, the INI syntax in ini.c. */
#include "util/config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "util/config_priv.h"

/* offsetof that refuses to compile when the field's C type is not the one
 * the row's config_type stores into, so the table cannot drift from the
 * struct silently. */
#define FIELD(S, m, T) (offsetof(S, m) + 0 * sizeof(_Generic(((S *)0)->m, T : 1)))
#define G(m, T) FIELD(struct config, m, T)
#define C(m, T) FIELD(struct config_connector, m, T)

static const char *const log_level_words[] = { "debug", "info", "warn", "error", NULL };

const struct config_option config_table[] = {
	{ .section = "server", .name = "listen", .type = CFG_ADDRESS,
	  .default_value = "127.0.0.1:5000", .reloadable = false,
	  .offset = G(server.listen, struct config_address),
	  .doc = "where runtimes connect (plain HTTP); empty = no plain listener (needs [tls] listen)" },
	{ .section = "server", .name = "public_address", .type = CFG_STRING,
	  .default_value = "", .reloadable = false,
	  .offset = G(server.public_address, char *),
	  .doc = "host:port that appears in rewritten images and status URLs (empty = same as listen)" },
	{ .section = "server", .name = "admin_listen", .type = CFG_ADDRESS,
	  .default_value = "", .reloadable = false,
	  .offset = G(server.admin_listen, struct config_address),
	  .doc = "where GET /metrics (Prometheus), /healthz and /readyz are served (plain HTTP); empty = nowhere" },
	{ .section = "server", .name = "max_connections", .type = CFG_UINT,
	  .default_value = "10000", .reloadable = false, .min = 1, .max = 1000000,
	  .offset = G(server.max_connections, unsigned),
	  .doc = "client connections held at once; beyond it new ones wait in the kernel backlog" },
	{ .section = "server", .name = "header_timeout", .type = CFG_DURATION,
	  .default_value = "10s", .reloadable = true, .min = 1, .max = MAX_DURATION_MS,
	  .offset = G(server.header_timeout_ms, uint64_t),
	  .doc = "time to receive a whole request head, from its first byte" },
	{ .section = "server", .name = "idle_timeout", .type = CFG_DURATION,
	  .default_value = "60s", .reloadable = true, .min = 1, .max = MAX_DURATION_MS,
	  .offset = G(server.idle_timeout_ms, uint64_t),
	  .doc = "keep-alive connection with no request in flight" },
	{ .section = "server", .name = "send_timeout", .type = CFG_DURATION,
	  .default_value = "60s", .reloadable = true, .min = 1, .max = MAX_DURATION_MS,
	  .offset = G(server.send_timeout_ms, uint64_t),
	  .doc = "client that accepts no response bytes for this long is dropped" },
	{ .section = "server", .name = "shutdown_timeout", .type = CFG_DURATION,
	  .default_value = "30s", .reloadable = false, .min = 0, .max = MAX_DURATION_MS,
	  .offset = G(server.shutdown_timeout_ms, uint64_t),
	  .doc = "on SIGTERM, how long in-flight requests may finish (0 = close at once)" },
	{ .section = "server", .name = "max_header_bytes", .type = CFG_SIZE,
	  .default_value = "16k", .reloadable = true, .min = KIB, .max = MIB,
	  .offset = G(server.max_header_bytes, size_t),
	  .doc = "request head limit (431 beyond)" },
	{ .section = "server", .name = "max_headers", .type = CFG_UINT,
	  .default_value = "100", .reloadable = true, .min = 8, .max = 1000,
	  .offset = G(server.max_headers, unsigned),
	  .doc = "header fields per request or response" },
	{ .section = "server", .name = "body_buffer", .type = CFG_SIZE,
	  .default_value = "256k", .reloadable = true, .min = 16 * KIB, .max = 64 * MIB,
	  .offset = G(server.body_buffer, size_t),
	  .doc = "bytes queued towards one client before ocigate stops reading from the upstream" },
	{ .section = "server", .name = "body_memory", .type = CFG_SIZE,
	  .default_value = "32m", .reloadable = true, .min = MIB, .max = 64ULL * 1024 * MIB,
	  .offset = G(server.body_memory, size_t),
	  .doc = "bytes all relayed bodies together may hold queued; each gets an equal "
		 "share of half of it (at most body_buffer, at least 16k), and past it bodies "
		 "are read only into empty queues, a TLS record at a time" },

	{ .section = "upstream", .name = "connect_timeout", .type = CFG_DURATION,
	  .default_value = "10s", .reloadable = true, .min = 1, .max = MAX_DURATION_MS,
	  .offset = G(upstream.connect_timeout_ms, uint64_t),
	  .doc = "TCP connect + TLS handshake" },
	{ .section = "upstream", .name = "read_timeout", .type = CFG_DURATION,
	  .default_value = "60s", .reloadable = true, .min = 1, .max = MAX_DURATION_MS,
	  .offset = G(upstream.read_timeout_ms, uint64_t),
	  .doc = "upstream silent for this long (headers or body) is an error" },
	{ .section = "upstream", .name = "pool_max_idle", .type = CFG_UINT,
	  .default_value = "64", .reloadable = true, .min = 0, .max = 1024,
	  .offset = G(upstream.pool_max_idle, unsigned),
	  .doc = "idle keep-alive connections kept per upstream origin of a connector" },
	{ .section = "upstream", .name = "pool_idle_timeout", .type = CFG_DURATION,
	  .default_value = "60s", .reloadable = true, .min = 1, .max = MAX_DURATION_MS,
	  .offset = G(upstream.pool_idle_timeout_ms, uint64_t),
	  .doc = "idle pooled connection lifetime" },
	{ .section = "upstream", .name = "max_response_header_bytes", .type = CFG_SIZE,
	  .default_value = "64k", .reloadable = true, .min = KIB, .max = MIB,
	  .offset = G(upstream.max_response_header_bytes, size_t),
	  .doc = "upstream response head limit" },
	{ .section = "upstream", .name = "splice", .type = CFG_BOOL,
	  .default_value = "yes", .reloadable = true,
	  .offset = G(upstream.splice, bool),
	  .doc = "move large bodies from a plain-HTTP upstream to a plain-HTTP client with splice(2), "
		 "without copying them through user space" },

	{ .section = "auth", .name = "tokens_file", .type = CFG_PATH,
	  .default_value = NULL, .reloadable = true,
	  .offset = G(auth.tokens_file, char *),
	  .doc = "static client tokens, kube-apiserver token file format: token,user,uid,\"group1,group2\"" },
	{ .section = "auth", .name = "realm", .type = CFG_STRING,
	  .default_value = "ocigate", .reloadable = true,
	  .offset = G(auth.realm, char *),
	  .doc = "realm in the WWW-Authenticate challenge" },

	{ .section = "log", .name = "level", .type = CFG_ENUM,
	  .default_value = "info", .reloadable = true, .enum_words = log_level_words,
	  .offset = G(log.level, int),
	  .doc = "least severe level that is logged" },
	{ .section = "log", .name = "access_log", .type = CFG_BOOL,
	  .default_value = "yes", .reloadable = true,
	  .offset = G(log.access_log, bool),
	  .doc = "one line per request" },

	{ .section = "kubernetes", .name = "kubeconfig", .type = CFG_PATH,
	  .default_value = "", .reloadable = false,
	  .offset = G(kubernetes.kubeconfig, char *),
	  .doc = "kubeconfig file for the API server; unset = in-cluster (KUBERNETES_SERVICE_HOST/_PORT and the Pod's ServiceAccount)" },
	{ .section = "kubernetes", .name = "context", .type = CFG_STRING,
	  .default_value = "", .reloadable = false,
	  .offset = G(kubernetes.context, char *),
	  .doc = "kubeconfig context to use (empty = its current-context)" },
	{ .section = "kubernetes", .name = "audiences", .type = CFG_LIST,
	  .default_value = "", .reloadable = false,
	  .offset = G(kubernetes.audiences, struct config_list),
	  .doc = "TokenReview spec.audiences: client tokens must be issued for one of them (empty = the API server's)" },
	{ .section = "kubernetes", .name = "namespaces", .type = CFG_LIST,
	  .default_value = "", .reloadable = false,
	  .offset = G(kubernetes.namespaces, struct config_list),
	  .doc = "namespaces whose Connectors are served (empty = all namespaces)" },
	{ .section = "kubernetes", .name = "strict_subresource", .type = CFG_BOOL,
	  .default_value = "no", .reloadable = false,
	  .offset = G(kubernetes.strict_subresource, bool),
	  .doc = "authorize with verb * on connectors/proxy instead of get on connectors" },
	{ .section = "kubernetes", .name = "token_cache_ttl", .type = CFG_DURATION,
	  .default_value = "2m", .reloadable = false, .min = 0, .max = MAX_DURATION_MS,
	  .offset = G(kubernetes.token_cache_ttl_ms, uint64_t),
	  .doc = "how long an authenticated TokenReview is reused, never past the token's exp (0 = not cached)" },
	{ .section = "kubernetes", .name = "token_cache_negative_ttl", .type = CFG_DURATION,
	  .default_value = "10s", .reloadable = false, .min = 0, .max = MAX_DURATION_MS,
	  .offset = G(kubernetes.token_cache_negative_ttl_ms, uint64_t),
	  .doc = "how long a rejected token is answered 401 without asking again (0 = not cached)" },
	{ .section = "kubernetes", .name = "sar_allowed_ttl", .type = CFG_DURATION,
	  .default_value = "5m", .reloadable = false, .min = 0, .max = MAX_DURATION_MS,
	  .offset = G(kubernetes.sar_allowed_ttl_ms, uint64_t),
	  .doc = "how long an allowed SubjectAccessReview is reused (0 = not cached)" },
	{ .section = "kubernetes", .name = "sar_denied_ttl", .type = CFG_DURATION,
	  .default_value = "30s", .reloadable = false, .min = 0, .max = MAX_DURATION_MS,
	  .offset = G(kubernetes.sar_denied_ttl_ms, uint64_t),
	  .doc = "how long a denied SubjectAccessReview is reused (0 = not cached)" },
	{ .section = "kubernetes", .name = "cache_size", .type = CFG_UINT,
	  .default_value = "10000", .reloadable = false, .min = 1, .max = 10000000,
	  .offset = G(kubernetes.cache_size, unsigned),
	  .doc = "entries of each decision cache (tokens, access reviews); the least recently used go first" },
	{ .section = "kubernetes", .name = "api_timeout", .type = CFG_DURATION,
	  .default_value = "10s", .reloadable = false, .min = 100, .max = 10 * MS_MINUTE,
	  .offset = G(kubernetes.api_timeout_ms, uint64_t),
	  .doc = "one API server request (connect, TLS, answer); a review that takes longer is a 503" },
	{ .section = "kubernetes", .name = "leader_election", .type = CFG_BOOL,
	  .default_value = "yes", .reloadable = false,
	  .offset = G(kubernetes.leader_election, bool),
	  .doc = "run the status writer and the pull-secret refresher only on the replica holding a coordination.k8s.io/v1 Lease (no = on every replica)" },
	{ .section = "kubernetes", .name = "lease_namespace", .type = CFG_STRING,
	  .default_value = "", .reloadable = false,
	  .offset = G(kubernetes.lease_namespace, char *),
	  .doc = "namespace of the Lease (empty = the kubeconfig context's namespace, in-cluster the Pod's, else default)" },
	{ .section = "kubernetes", .name = "lease_name", .type = CFG_STRING,
	  .default_value = "ocigate", .reloadable = false,
	  .offset = G(kubernetes.lease_name, char *),
	  .doc = "name of the Lease; replicas sharing it elect one leader" },
	{ .section = "kubernetes", .name = "lease_duration", .type = CFG_DURATION,
	  .default_value = "15s", .reloadable = false, .min = 1000, .max = 10 * MS_MINUTE,
	  .offset = G(kubernetes.lease_duration_ms, uint64_t),
	  .doc = "how long after its last renew a Lease may be taken over by another replica (leaseDurationSeconds)" },
	{ .section = "kubernetes", .name = "renew_deadline", .type = CFG_DURATION,
	  .default_value = "10s", .reloadable = false, .min = 100, .max = 10 * MS_MINUTE,
	  .offset = G(kubernetes.renew_deadline_ms, uint64_t),
	  .doc = "the holder stops leading when no renew succeeded for this long; shorter than lease_duration" },
	{ .section = "kubernetes", .name = "retry_period", .type = CFG_DURATION,
	  .default_value = "2s", .reloadable = false, .min = 100, .max = 10 * MS_MINUTE,
	  .offset = G(kubernetes.retry_period_ms, uint64_t),
	  .doc = "how often the holder renews and the others try to acquire; shorter than renew_deadline" },

	{ .section = "webhook", .name = "listen", .type = CFG_ADDRESS,
	  .default_value = "0.0.0.0:8443", .reloadable = false,
	  .offset = G(webhook.listen, struct config_address),
	  .doc = "where the admission webhook listens (HTTPS); the webhook runs only when the file has a [webhook] section" },
	{ .section = "webhook", .name = "cert_file", .type = CFG_PATH,
	  .default_value = "", .reloadable = false,
	  .offset = G(webhook.cert_file, char *),
	  .doc = "PEM certificate chain of the webhook, leaf first (required with [webhook]); re-read when the file changes" },
	{ .section = "webhook", .name = "key_file", .type = CFG_PATH,
	  .default_value = "", .reloadable = false,
	  .offset = G(webhook.key_file, char *),
	  .doc = "PEM private key of cert_file (required with [webhook]); re-read when the file changes" },
	{ .section = "webhook", .name = "inject", .type = CFG_BOOL,
	  .default_value = "yes", .reloadable = false,
	  .offset = G(webhook.inject, bool),
	  .doc = "rewrite images of Pods labelled connectors.cpaas.io/proxy-inject=true; no = refuse such Pods" },
	{ .section = "webhook", .name = "max_body", .type = CFG_SIZE,
	  .default_value = "3m", .reloadable = false, .min = 4096, .max = 64 * MIB,
	  .offset = G(webhook.max_body, size_t),
	  .doc = "largest AdmissionReview request body accepted (413 beyond it)" },

	{ .section = "tls", .name = "listen", .type = CFG_ADDRESS,
	  .default_value = "", .reloadable = false,
	  .offset = G(tls.listen, struct config_address),
	  .doc = "where runtimes connect over TLS (1.2 or later, ALPN http/1.1); empty = no TLS listener" },
	{ .section = "tls", .name = "cert_file", .type = CFG_PATH,
	  .default_value = "", .reloadable = true,
	  .offset = G(tls.cert_file, char *),
	  .doc = "PEM certificate chain of the TLS listener, leaf first; re-read on SIGHUP and when the file changes" },
	{ .section = "tls", .name = "key_file", .type = CFG_PATH,
	  .default_value = "", .reloadable = true,
	  .offset = G(tls.key_file, char *),
	  .doc = "PEM private key of cert_file; a pair that does not load keeps the previous one" },

	{ .section = "status", .name = "enabled", .type = CFG_BOOL,
	  .default_value = "yes", .reloadable = false,
	  .offset = G(status.enabled, bool),
	  .doc = "Kubernetes mode: probe every oci Connector's registry and write its status (conditions, proxy URL)" },
	{ .section = "status", .name = "probe_interval", .type = CFG_DURATION,
	  .default_value = "60s", .reloadable = false, .min = 100, .max = MAX_DURATION_MS,
	  .offset = G(status.probe_interval_ms, uint64_t),
	  .doc = "how often each registry is probed (GET /v2/); changes to a Connector or its Secret probe at once, failures back off up to 4x this" },

	{ .section = "pull_secrets", .name = "enabled", .type = CFG_BOOL,
	  .default_value = "no", .reloadable = false,
	  .offset = G(pull_secrets.enabled, bool),
	  .doc = "Kubernetes mode: keep a kubernetes.io/dockerconfigjson Secret per ServiceAccount annotated connectors.cpaas.io/pull-secret fresh with TokenRequest" },
	{ .section = "pull_secrets", .name = "expiration", .type = CFG_DURATION,
	  .default_value = "1h", .reloadable = false, .min = 10 * 60 * 1000, .max = MAX_DURATION_MS,
	  .offset = G(pull_secrets.expiration_ms, uint64_t),
	  .doc = "lifetime asked for each token (TokenRequest expirationSeconds); the Secret is rewritten at 50-80% of the lifetime granted" },

	{ .section = "cache", .name = "dir", .type = CFG_PATH,
	  .default_value = "", .reloadable = false,
	  .offset = G(cache.dir, char *),
	  .doc = "directory of the node-local blob cache (created if missing); unset = no cache" },
	{ .section = "cache", .name = "max_size", .type = CFG_SIZE,
	  .default_value = "10g", .reloadable = false, .min = MIB, .max = 1024 * 1024 * GIB,
	  .offset = G(cache.max_size, size_t),
	  .doc = "cached blobs and manifests beyond this size are evicted, least recently used first" },
	{ .section = "cache", .name = "min_free", .type = CFG_STRING,
	  .default_value = "5%", .reloadable = false,
	  .offset = G(cache.min_free, char *),
	  .doc = "also evict while the cache's file system has less free space than this: N% (0-99) or a size like 5g" },

	{ .section = "connector", .name = "address", .type = CFG_URL,
	  .default_value = NULL, .reloadable = true, .in_connector = true,
	  .offset = C(address, struct url_base),
	  .doc = "upstream registry base URL" },
	{ .section = "connector", .name = "username", .type = CFG_STRING,
	  .default_value = "", .reloadable = true, .in_connector = true,
	  .offset = C(username, char *),
	  .doc = "user name for the upstream registry" },
	{ .section = "connector", .name = "password", .type = CFG_STRING,
	  .default_value = "", .reloadable = true, .in_connector = true,
	  .offset = C(password, char *),
	  .doc = "password for the upstream registry; mutually exclusive with password_file" },
	{ .section = "connector", .name = "password_file", .type = CFG_PATH,
	  .default_value = "", .reloadable = true, .in_connector = true,
	  .offset = C(password_file, char *),
	  .doc = "file whose content (trailing newline stripped) is the password, read at load" },
	{ .section = "connector", .name = "ca_file", .type = CFG_PATH,
	  .default_value = "", .reloadable = true, .in_connector = true,
	  .offset = C(ca_file, char *),
	  .doc = "extra PEM CA certificates trusted for this upstream, besides the system store" },
	{ .section = "connector", .name = "allow", .type = CFG_LIST,
	  .default_value = "", .reloadable = true, .in_connector = true,
	  .offset = C(allow, struct config_list),
	  .doc = "user or group names allowed to pull; empty means nobody" },
	{ .section = "connector", .name = "allow_push", .type = CFG_LIST,
	  .default_value = "", .reloadable = true, .in_connector = true,
	  .offset = C(allow_push, struct config_list),
	  .doc = "user or group names allowed to push and delete; empty means nobody" },
	{ .section = "connector", .name = "allow_insecure", .type = CFG_BOOL,
	  .default_value = "no", .reloadable = true, .in_connector = true,
	  .offset = C(allow_insecure, bool),
	  .doc = "follow redirects to, and fetch tokens from, plain http:// hosts" },
};

_Static_assert(OG_ARRAY_LEN(config_table) == CONFIG_N_OPTIONS,
	       "CONFIG_N_OPTIONS in util/config_priv.h must count the rows of config_table");


const struct config_option *config_options(size_t *n)
{
	*n = CONFIG_N_OPTIONS;
	return config_table;
}

const struct config_option *config_find_option(const char *section, const char *name)
{
	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++)
		if (strcmp(config_table[i].section, section) == 0 && strcmp(config_table[i].name, name) == 0)
			return &config_table[i];
	return NULL;
}

const char *config_type_name(enum config_type type)
{
	static const char *const names[] = {
		[CFG_STRING] = "string", [CFG_PATH] = "path",	  [CFG_ADDRESS] = "address",
		[CFG_UINT] = "uint",	 [CFG_SIZE] = "size",	  [CFG_DURATION] = "duration",
		[CFG_BOOL] = "bool",	 [CFG_LIST] = "list",	  [CFG_URL] = "url",
		[CFG_ENUM] = "enum",
	};
	if ((size_t)type >= OG_ARRAY_LEN(names))
		return "?";
	return names[type];
}

/* ---- the table as text ---- */

static void format_size(uint64_t n, char *buf, size_t cap)
{
	if (n && n % GIB == 0)
		snprintf(buf, cap, "%llug", (unsigned long long)(n / GIB));
	else if (n && n % MIB == 0)
		snprintf(buf, cap, "%llum", (unsigned long long)(n / MIB));
	else if (n && n % KIB == 0)
		snprintf(buf, cap, "%lluk", (unsigned long long)(n / KIB));
	else
		snprintf(buf, cap, "%llu", (unsigned long long)n);
}

static void format_duration(uint64_t ms, char *buf, size_t cap)
{
	if (ms == 0)
		snprintf(buf, cap, "0");
	else if (ms % MS_HOUR == 0)
		snprintf(buf, cap, "%lluh", (unsigned long long)(ms / MS_HOUR));
	else if (ms % MS_MINUTE == 0)
		snprintf(buf, cap, "%llum", (unsigned long long)(ms / MS_MINUTE));
	else if (ms % MS_SECOND == 0)
		snprintf(buf, cap, "%llus", (unsigned long long)(ms / MS_SECOND));
	else
		snprintf(buf, cap, "%llums", (unsigned long long)ms);
}

void config_format_bound(const struct config_option *opt, uint64_t v, char *buf, size_t cap)
{
	if (opt->type == CFG_SIZE)
		format_size(v, buf, cap);
	else if (opt->type == CFG_DURATION)
		format_duration(v, buf, cap);
	else
		snprintf(buf, cap, "%llu", (unsigned long long)v);
}

static void print_type(FILE *f, const struct config_option *opt)
{
	char lo[32], hi[32];

	fputs(config_type_name(opt->type), f);
	if (opt->type == CFG_UINT || opt->type == CFG_SIZE || opt->type == CFG_DURATION) {
		config_format_bound(opt, opt->min, lo, sizeof(lo));
		config_format_bound(opt, opt->max, hi, sizeof(hi));
		fprintf(f, " %s..%s", lo, hi);
	}
	for (int i = 0; opt->type == CFG_ENUM && opt->enum_words[i]; i++)
		fprintf(f, "%c%s", i ? '|' : ' ', opt->enum_words[i]);
}

void config_print_options(FILE *f)
{
	const char *section = "";

	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++) {
		const struct config_option *opt = &config_table[i];
		if (strcmp(section, opt->section) != 0) {
			section = opt->section;
			if (opt->in_connector)
				fprintf(f, "[connector \"NAMESPACE/NAME\"] (repeatable)\n");
			else
				fprintf(f, "[%s]\n", section);
		}
		fprintf(f, "  %s (", opt->name);
		print_type(f, opt);
		if (opt->default_value)
			fprintf(f, ", default \"%s\"", opt->default_value);
		else
			fprintf(f, ", required");
		fprintf(f, ", %s)\n      %s\n", opt->reloadable ? "reloadable" : "restart needed",
			opt->doc);
	}
}
