/* Fuzzes the kubeconfig reader (YAML and JSON, through libyaml) with and without a
 * context name: no crash, leak or overrun; a failure names the file; a
 * success is a usable, self-consistent configuration. */
#include "k8s/kubeconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_config(const struct k8s_kubeconfig *kc)
{
	size_t pn = strlen(kc->server.path_prefix);

	if (!kc->server.host || !kc->server.host[0] || !kc->server.port || !kc->context ||
	    !kc->cluster_name || !kc->path || kc->in_cluster)
		abort();
	if (pn && (kc->server.path_prefix[0] != '/' || kc->server.path_prefix[pn - 1] == '/'))
		abort();
	if ((kc->ca_file && kc->ca_pem) || (kc->insecure_skip_tls_verify && (kc->ca_file || kc->ca_pem)))
		abort();
	if ((kc->ca_pem != NULL) != (kc->ca_pem_len != 0))
		abort();
	if ((kc->client_cert_file || kc->client_cert_pem) != (kc->client_key_file || kc->client_key_pem))
		abort();
	if ((kc->client_cert_file && kc->client_cert_pem) || (kc->client_key_file && kc->client_key_pem))
		abort();
	for (const char *t = kc->token; t && *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			abort();
	if (kc->token && !*kc->token)
		abort();
	if (!kc->user_name && (kc->token || kc->token_file || kc->client_cert_file || kc->client_cert_pem))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const contexts[] = { NULL, "c" };
	const char *path = "fuzz/kubeconfig";

	for (size_t i = 0; i < 2; i++) {
		struct k8s_kubeconfig kc;
		char err[300];

		memset(err, 'x', sizeof(err));
		if (k8s_kubeconfig_parse((const char *)data, size, path, contexts[i], &kc, err,
					 sizeof(err)) == 0) {
			check_config(&kc);
			k8s_kubeconfig_free(&kc);
		} else if (strncmp(err, "kubeconfig fuzz/kubeconfig", 26) != 0 ||
			   !memchr(err, '\0', sizeof(err)) || kc.server.host || kc.token) {
			abort();
		}
	}
	return 0;
}
