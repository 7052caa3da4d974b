/* ocigate: a pull proxy for OCI registries that keeps registry credentials
 * away from the workloads that pull through it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/static_auth.h"
#include "k8s/k8s_auth.h"
#include "k8s/runtime.h"
#include "k8s/lease.h"
#include "k8s/refresher.h"
#include "proxy/proxy.h"
#include "proxy/status.h"
#include "proxy/webhook.h"
#include "util/config.h"
#include "util/log.h"
#include "util/tls_server.h"
#include "util/xalloc.h"

#ifndef OCIGATE_VERSION
#define OCIGATE_VERSION "dev"
#endif

static void main_usage(FILE *f)
{
	fprintf(f,
		"Usage: ocigate --config FILE [--check-config]\n"
		"\n"
		"A reverse proxy in front of private OCI registries: clients pull\n"
		"  HOST:PORT/namespaces/NS/connectors/NAME/REPO:TAG\n"
		"with their own token as the password; ocigate checks the token and the\n"
		"connector's allow list (Kubernetes mode, with a [kubernetes] section:\n"
		"TokenReview and SubjectAccessReview, connectors from Connector objects),\n"
		"then pulls from the connector's registry with credentials the client\n"
		"never sees.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   configuration file (ocigate.conf(5), ocigate --help-config,\n"
		"                      /etc/ocigate/ocigate.conf.example)\n"
		"  -t, --check-config  validate the configuration and the tokens file (Kubernetes\n"
		"                      mode: the kubeconfig or in-cluster files), then exit\n"
		"                      (exit status 0 when valid, 1 with FILE:LINE: message)\n"
		"      --help-config   list every configuration option with its default\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop accepting and let in-flight requests finish\n"
		"(server.shutdown_timeout); a second one exits at once. SIGHUP reloads the\n"
		"configuration, tokens and connectors.\n"
		"Listeners: [server] listen (plain HTTP), [tls] listen (TLS; its certificate\n"
		"is re-read on SIGHUP and when the files change).\n"
		"Health: GET /healthz and /readyz on the client listeners and on\n"
		"[server] admin_listen, which also serves GET /metrics (Prometheus).\n"
		"Under systemd (Type=notify) it reports READY=1, RELOADING=1, STOPPING=1\n"
		"and STATUS= on $NOTIFY_SOCKET.\n");
}

struct main_args {
	const char *config;
	bool check;
};

static int main_parse_args(int argc, char **argv, struct main_args *a)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 't' },
		{ "help-config", no_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:thV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': a->config = optarg; break;
		case 't': a->check = true; break;
		case 'O': config_print_options(stdout); exit(0);
		case 'h': main_usage(stdout); exit(0);
		case 'V': printf("ocigate %s\n", OCIGATE_VERSION); exit(0);
		default: main_usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ocigate: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!a->config) {
		fprintf(stderr, "ocigate: --config FILE is required (try --help)\n");
		return -1;
	}
	return 0;
}

static void main_free_config(struct config *cfg)
{
	config_free(cfg);
	free(cfg);
}

/* --check-config: what start-up would read, without any network. */
static int main_check(const char *path, const struct config *cfg)
{
	struct auth_backend *auth;
	struct tls_server tls;
	char err[1024], desc[1024];

	if (config_address_set(&cfg->tls.listen)) {
		if (tls_server_init(&tls, cfg->tls.cert_file, cfg->tls.key_file, true, err,
				    sizeof(err)) != 0) {
			fprintf(stderr, "%s: [tls]: %s\n", path, err);
			return 1;
		}
		tls_server_free(&tls);
	}

	if (cfg->kubernetes.enabled) {
		if (k8s_runtime_check_config(cfg, desc, sizeof(desc), err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: [kubernetes]: %s\n", path, err);
			return 1;
		}
		printf("%s: configuration OK (Kubernetes mode: %s)\n", path, desc);
		return 0;
	}
	auth = static_auth_new(cfg, err, sizeof(err));
	if (!auth) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%s: configuration OK (%zu connectors)\n", path, cfg->n_connectors);
	auth_backend_free(auth);
	return 0;
}

/* Kubernetes mode writes Connector status unless [status] enabled = no. */
static struct status_writer *main_start_status(struct proxy *px)
{
	const struct config *cfg = px->cfg;
	struct status_settings ss = {
		.probe_interval_ms = cfg->status.probe_interval_ms,
		.public_address = cfg->server.public_address,
	};

	if (!px->k8s || !cfg->status.enabled)
		return NULL;
	return status_writer_new(px, px->k8s->client, px->k8s->store, &ss);
}

/* [pull_secrets] enabled = yes: keep opted-in ServiceAccounts' pull
 * Secrets fresh through the same API client. */
static struct k8s_refresher *main_start_refresher(struct proxy *px)
{
	const struct config *cfg = px->cfg;
	struct k8s_refresher_opts ro = {
		.public_address = cfg->server.public_address,
		.expiration_s = (int64_t)(cfg->pull_secrets.expiration_ms / 1000),
		.audiences = cfg->kubernetes.audiences.items,
		.n_audiences = cfg->kubernetes.audiences.n,
		.namespaces = cfg->kubernetes.namespaces.items,
		.n_namespaces = cfg->kubernetes.namespaces.n,
	};

	if (!px->k8s || !cfg->pull_secrets.enabled)
		return NULL;
	return k8s_refresher_new(px->base, px->k8s->client, &ro);
}

/* The controllers that write to the API: with leader election they run
 * only while this replica holds the Lease. */
struct main_leader {
	struct proxy *px;
	struct status_writer *status;
	struct k8s_refresher *refresher;
	struct k8s_lease *lease;
};

static void main_lead_start(void *arg)
{
	struct main_leader *m = arg;

	m->status = main_start_status(m->px);
	m->refresher = main_start_refresher(m->px);
}

static void main_lead_stop(void *arg)
{
	struct main_leader *m = arg;

	k8s_refresher_free(m->refresher); /* its API requests use px->k8s's client */
	m->refresher = NULL;
	status_writer_free(m->status); /* holds connectors and API requests of px->k8s */
	m->status = NULL;
}

static void main_start_leader(struct main_leader *m, struct proxy *px)
{
	const struct config *cfg = px->cfg;
	char *ns, *identity;
	struct k8s_lease_opts lo = {
		.name = cfg->kubernetes.lease_name,
		.duration_ms = cfg->kubernetes.lease_duration_ms,
		.renew_deadline_ms = cfg->kubernetes.renew_deadline_ms,
		.retry_period_ms = cfg->kubernetes.retry_period_ms,
		.on_start = main_lead_start,
		.on_stop = main_lead_stop,
		.arg = m,
	};

	m->px = px;
	if (!px->k8s || !cfg->kubernetes.leader_election ||
	    (!cfg->status.enabled && !cfg->pull_secrets.enabled)) {
		main_lead_start(m);
		return;
	}
	ns = k8s_lease_namespace(cfg->kubernetes.lease_namespace, cfg->kubernetes.kubeconfig,
				 cfg->kubernetes.context, NULL);
	identity = k8s_lease_identity();
	lo.ns = ns;
	lo.identity = identity;
	m->lease = k8s_lease_new(px->base, px->k8s->client, &lo);
	px->lease = m->lease;
	free(ns);
	free(identity);
}

static void main_on_released(void *arg)
{
	event_base_loopbreak(arg);
}

/* Stops the controllers, then gives the Lease up so that a standby takes
 * over at once; the loop runs again only for that one request (bounded by
 * the API client's request timeout). */
static void main_stop_leader(struct main_leader *m)
{
	main_lead_stop(m);
	if (m->lease && k8s_lease_release(m->lease, main_on_released, m->px->base))
		event_base_dispatch(m->px->base);
	m->px->lease = NULL;
	k8s_lease_free(m->lease);
	m->lease = NULL;
}

/* Standalone mode builds its backend before the loop exists; Kubernetes
 * mode needs the loop (and DNS) for its API client, so the runtime (client
 * and Connector store, shared by the auth backend, the status writer, the
 * refresher, the webhook and the Lease) and the backend on it come after
 * proxy_init, before the loop runs. */
static int main_start(struct proxy *px, const char *path, struct config *cfg)
{
	struct auth_backend *auth = NULL;
	char err[1024];

	if (!cfg->kubernetes.enabled) {
		auth = static_auth_new(cfg, err, sizeof(err));
		if (!auth) {
			fprintf(stderr, "%s\n", err);
			main_free_config(cfg);
			return -1;
		}
	}
	log_set_level((enum log_level)cfg->log.level);
	log_info("starting", "version=%s config=%s mode=%s", OCIGATE_VERSION, path,
		 cfg->kubernetes.enabled ? "kubernetes" : "standalone");
	if (proxy_init(px, cfg, auth) != 0)
		return -1;
	if (auth)
		return 0;
	px->k8s = k8s_runtime_new(px->base, px->dns, cfg, err, sizeof(err));
	if (!px->k8s) {
		fprintf(stderr, "%s: [kubernetes]: %s\n", path, err);
		return -1;
	}
	px->auth = k8s_auth_new(px->k8s, cfg);
	return 0;
}

int main(int argc, char **argv)
{
	struct main_args args = { 0 };
	struct config *cfg = x_new(struct config);
	struct proxy px;
	struct webhook *webhook;
	struct main_leader leader = { 0 };
	char err[1024];
	int rc;

	if (main_parse_args(argc, argv, &args) != 0) {
		free(cfg);
		return 2;
	}
	if (config_load(args.config, cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		main_free_config(cfg);
		return 1;
	}
	if (args.check) {
		rc = main_check(args.config, cfg);
		main_free_config(cfg);
		return rc;
	}
	memset(&px, 0, sizeof(px));
	if (main_start(&px, args.config, cfg) != 0) {
		proxy_free(&px);
		return 1;
	}
	webhook = webhook_start(&px, err, sizeof(err));
	if (!webhook && err[0]) {
		fprintf(stderr, "%s: %s\n", args.config, err);
		proxy_free(&px);
		return 1;
	}
	main_start_leader(&leader, &px);
	rc = proxy_run(&px);
	main_stop_leader(&leader);
	webhook_free(webhook); /* its connections live on px's loop */
	proxy_free(&px);
	return rc;
}
