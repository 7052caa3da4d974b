/* ocigate-credential-provider: a kubelet image credential provider plugin.
 * The kubelet runs it once per image pull that matches the provider's
 * matchImages, with a CredentialProviderRequest on stdin; it prints the
 * CredentialProviderResponse on stdout and exits 0, or prints why not on
 * stderr and exits 1 (2 for a bad command line). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "k8s/credprov.h"
#include "util/xalloc.h"

#ifndef OCIGATE_VERSION
#define OCIGATE_VERSION "dev"
#endif

#define PROG "ocigate-credential-provider"

static void credprov_main_usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " --proxy HOST[:PORT] [options] < CredentialProviderRequest\n"
		"\n"
		"A kubelet image credential provider (credentialprovider.kubelet.k8s.io/v1)\n"
		"for images pulled through ocigate. The kubelet passes the Pod's\n"
		"ServiceAccount token (CredentialProviderConfig tokenAttributes, Kubernetes\n"
		"1.33+); this plugin answers it as the password for the proxy address, so\n"
		"no pull secret is needed. The answer is cached by the kubelet for less\n"
		"than the token has left to live.\n"
		"\n"
		"Options:\n"
		"  --proxy HOST[:PORT]            the address images name ocigate with\n"
		"                                 (server.public_address); required\n"
		"  --max-cache-duration DURATION  longest cacheDuration [1h]\n"
		"  --expiry-margin DURATION       the token must outlive the cache by this [5m]\n"
		"  --no-exp-cache-duration DURATION\n"
		"                                 cacheDuration for a token without exp [5m]\n"
		"  --cache-key-type Registry|Image  [Registry]\n"
		"  -h, --help                     show this help\n"
		"  -V, --version                  show the version\n"
		"\n"
		"DURATION: 90s, 10m, 1h30m or a number of seconds.\n"
		"Exit status: 0 answered, 1 the request was malformed or had no token,\n"
		"2 bad command line.\n");
}

static int credprov_main_duration(const char *flag, const char *value, int64_t *out)
{
	if (k8s_credprov_parse_duration(value, out) < 0) {
		fprintf(stderr, PROG ": %s: '%s' is not a duration (e.g. 90s, 10m, 1h30m)\n",
			flag, value);
		return -1;
	}
	return 0;
}

static int credprov_main_cache_key(const char *value, struct k8s_credprov_opts *o)
{
	if (strcmp(value, "Registry") == 0) {
		o->cache_key = K8S_CREDPROV_KEY_REGISTRY;
		return 0;
	}
	if (strcmp(value, "Image") == 0) {
		o->cache_key = K8S_CREDPROV_KEY_IMAGE;
		return 0;
	}
	fprintf(stderr, PROG ": --cache-key-type must be Registry or Image, not '%s'\n", value);
	return -1;
}

/* Returns 0 to go on, 1 when --help/--version answered, -1 on a bad command line. */
static int credprov_main_args(int argc, char **argv, struct k8s_credprov_opts *o)
{
	static const struct option opts[] = {
		{ "proxy", required_argument, NULL, 'p' },
		{ "max-cache-duration", required_argument, NULL, 'm' },
		{ "expiry-margin", required_argument, NULL, 'e' },
		{ "no-exp-cache-duration", required_argument, NULL, 'n' },
		{ "cache-key-type", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char err[256];
	int ch, rc = 0;

	opterr = 0;
	while (rc == 0 && (ch = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': o->proxy = optarg; break;
		case 'm': rc = credprov_main_duration("--max-cache-duration", optarg, &o->max_cache_s); break;
		case 'e': rc = credprov_main_duration("--expiry-margin", optarg, &o->margin_s); break;
		case 'n': rc = credprov_main_duration("--no-exp-cache-duration", optarg, &o->no_exp_cache_s); break;
		case 'k': rc = credprov_main_cache_key(optarg, o); break;
		case 'h': credprov_main_usage(stdout); return 1;
		case 'V': printf(PROG " %s\n", OCIGATE_VERSION); return 1;
		case ':':
			fprintf(stderr, PROG ": %s needs a value (try --help)\n", argv[optind - 1]);
			return -1;
		default:
			fprintf(stderr, PROG ": unknown option '%s' (try --help)\n", argv[optind - 1]);
			return -1;
		}
	}
	if (rc < 0)
		return -1;
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s' (try --help)\n", argv[optind]);
		return -1;
	}
	if (!o->proxy) {
		fprintf(stderr, PROG ": --proxy HOST[:PORT] is required (try --help)\n");
		return -1;
	}
	if (k8s_credprov_check_proxy(o->proxy, err, sizeof(err)) < 0) {
		fprintf(stderr, PROG ": --proxy %s: %s\n", o->proxy, err);
		return -1;
	}
	return 0;
}

/* Reads all of stdin, up to one byte more than a request may have so that
 * an oversized one is seen as such. */
static char *credprov_main_read_stdin(size_t *len)
{
	size_t cap = K8S_CREDPROV_MAX_REQUEST + 1, n = 0;
	char *buf = x_malloc(cap);

	while (n < cap) {
		size_t got = fread(buf + n, 1, cap - n, stdin);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(stdin)) {
		fprintf(stderr, PROG ": reading stdin: %s\n", strerror(errno));
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static int credprov_main_write(struct evbuffer *out)
{
	size_t n = evbuffer_get_length(out);
	const char *p = (const char *)evbuffer_pullup(out, -1);

	if (fwrite(p, 1, n, stdout) != n || fflush(stdout) != 0) {
		fprintf(stderr, PROG ": writing stdout: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct k8s_credprov_opts o;
	struct evbuffer *out = NULL;
	enum k8s_credprov_result res;
	char err[512];
	char *req = NULL;
	size_t len = 0;
	int rc = 1;

	k8s_credprov_opts_init(&o, NULL);
	switch (credprov_main_args(argc, argv, &o)) {
	case 0: break;
	case 1: return 0;
	default: return 2;
	}
	req = credprov_main_read_stdin(&len);
	if (!req)
		goto out;
	out = evbuffer_new();
	if (!out) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out;
	}
	res = k8s_credprov_respond(&o, req, len, (int64_t)time(NULL), out, err, sizeof(err));
	switch (res) {
	case K8S_CREDPROV_OK:
		break;
	case K8S_CREDPROV_OK_EXPIRED:
		fprintf(stderr, PROG ": warning: the serviceAccountToken has already expired "
			"(is the node's clock right?); answering with cacheDuration 0s\n");
		break;
	case K8S_CREDPROV_MALFORMED:
		fprintf(stderr, PROG ": malformed CredentialProviderRequest: %s\n", err);
		goto out;
	case K8S_CREDPROV_NO_TOKEN:
		fprintf(stderr, PROG ": %s\n", err);
		goto out;
	}
	if (credprov_main_write(out) == 0)
		rc = 0;
out:
	if (out)
		evbuffer_free(out);
	if (req) {
		memset(req, 0, len);
		free(req);
	}
	return rc;
}
