/* ocigate: a pull proxy for OCI registries that keeps registry credentials
 * away from the workloads that pull through it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/static_auth.h"
#include "proxy/proxy.h"
#include "util/config.h"
#include "util/log.h"
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
		"connector's allow list, then pulls from the connector's registry with\n"
		"credentials the client never sees.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   configuration file (see packaging/ocigate.conf.example)\n"
		"  -t, --check-config  validate the configuration and the tokens file, then exit\n"
		"                      (exit status 0 when valid, 1 with FILE:LINE: message)\n"
		"      --help-config   list every configuration option with its default\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop accepting and let in-flight requests finish\n"
		"(server.shutdown_timeout); a second one exits at once. SIGHUP reloads the\n"
		"configuration, tokens and connectors.\n"
		"Health: GET /healthz and /readyz on the listen address.\n");
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

int main(int argc, char **argv)
{
	struct main_args args = { 0 };
	struct config *cfg = x_new(struct config);
	struct auth_backend *auth;
	struct proxy px;
	char err[1024];
	int rc;

	if (main_parse_args(argc, argv, &args) != 0)
		return 2;
	if (config_load(args.config, cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		config_free(cfg);
		free(cfg);
		return 1;
	}
	auth = static_auth_new(cfg, err, sizeof(err));
	if (!auth) {
		fprintf(stderr, "%s\n", err);
		config_free(cfg);
		free(cfg);
		return 1;
	}
	if (args.check) {
		printf("%s: configuration OK (%zu connectors)\n", args.config, cfg->n_connectors);
		auth_backend_free(auth);
		config_free(cfg);
		free(cfg);
		return 0;
	}
	log_set_level((enum log_level)cfg->log.level);
	log_info("starting", "version=%s config=%s", OCIGATE_VERSION, args.config);
	if (proxy_init(&px, cfg, auth) != 0) {
		proxy_free(&px);
		return 1;
	}
	rc = proxy_run(&px);
	proxy_free(&px);
	return rc;
}
