#include "k8s/runtime.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "k8s/client.h"
#include "k8s/kubeconfig.h"
#include "k8s/store.h"
#include "util/xalloc.h"

static int k8s_runtime_load_kubeconfig(const struct config *cfg, struct k8s_kubeconfig *kc,
				    char *err, size_t err_cap)
{
	const char *context = cfg->kubernetes.context && *cfg->kubernetes.context ?
				      cfg->kubernetes.context : NULL;

	if (cfg->kubernetes.kubeconfig)
		return k8s_kubeconfig_load(cfg->kubernetes.kubeconfig, context, kc, err, err_cap);
	if (context) {
		snprintf(err, err_cap, "[kubernetes] context = %s needs a kubeconfig", context);
		return -1;
	}
	return k8s_kubeconfig_in_cluster(NULL, kc, err, err_cap);
}

int k8s_runtime_check_config(const struct config *cfg, char *desc, size_t desc_cap, char *err,
			  size_t err_cap)
{
	struct k8s_kubeconfig kc = { 0 };

	if (k8s_runtime_load_kubeconfig(cfg, &kc, err, err_cap) != 0)
		return -1;
	if (kc.in_cluster)
		snprintf(desc, desc_cap, "in-cluster, server %s", kc.server.text);
	else
		snprintf(desc, desc_cap, "kubeconfig %s, context %s, server %s", kc.path,
			 kc.context ? kc.context : "-", kc.server.text);
	k8s_kubeconfig_free(&kc);
	return 0;
}

/* Start-up only: the PEM files a kubeconfig names (small, local). */
static int k8s_runtime_read_pem(const char *what, const char *path, unsigned char **out,
			     size_t *len, char *err, size_t err_cap)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 1 << 20, n;
	unsigned char *buf;

	if (!f) {
		snprintf(err, err_cap, "%s %s: cannot open it", what, path);
		return -1;
	}
	buf = x_malloc(cap + 1);
	n = fread(buf, 1, cap + 1, f);
	fclose(f);
	if (n == 0 || n > cap) {
		snprintf(err, err_cap, "%s %s: %s", what, path, n ? "larger than 1 MiB" : "empty");
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* The PEM bytes the client needs, read from the files a kubeconfig names
 * when it gives no -data. */
struct k8s_runtime_pems {
	unsigned char *ca, *cert, *key;
	size_t ca_len, cert_len, key_len;
};

static void k8s_runtime_pems_free(struct k8s_runtime_pems *p)
{
	if (p->key)
		OPENSSL_cleanse(p->key, p->key_len);
	free(p->ca);
	free(p->cert);
	free(p->key);
}

static int k8s_runtime_client_opts(const struct k8s_kubeconfig *kc, const struct config *cfg,
				struct k8s_runtime_pems *pems, struct k8s_client_opts *o,
				char *err, size_t err_cap)
{
	o->server = kc->server.text;
	o->tls_server_name = kc->tls_server_name;
	o->insecure = kc->insecure_skip_tls_verify;
	o->ca_pem = kc->ca_pem;
	o->ca_pem_len = kc->ca_pem_len;
	if (!kc->ca_pem && kc->ca_file) {
		if (k8s_runtime_read_pem("certificate-authority", kc->ca_file, &pems->ca,
				      &pems->ca_len, err, err_cap) != 0)
			return -1;
		o->ca_pem = pems->ca;
		o->ca_pem_len = pems->ca_len;
	}
	o->cert_pem = kc->client_cert_pem;
	o->cert_pem_len = kc->client_cert_pem_len;
	if (!kc->client_cert_pem && kc->client_cert_file) {
		if (k8s_runtime_read_pem("client-certificate", kc->client_cert_file, &pems->cert,
				      &pems->cert_len, err, err_cap) != 0)
			return -1;
		o->cert_pem = pems->cert;
		o->cert_pem_len = pems->cert_len;
	}
	o->key_pem = kc->client_key_pem;
	o->key_pem_len = kc->client_key_pem_len;
	if (!kc->client_key_pem && kc->client_key_file) {
		if (k8s_runtime_read_pem("client-key", kc->client_key_file, &pems->key,
				      &pems->key_len, err, err_cap) != 0)
			return -1;
		o->key_pem = pems->key;
		o->key_pem_len = pems->key_len;
	}
	o->token_file = kc->token_file;
	o->token = kc->token_file ? NULL : kc->token;
	o->request_timeout_ms = (unsigned)cfg->kubernetes.api_timeout_ms;
	o->connect_timeout_ms = (unsigned)OG_MIN(cfg->kubernetes.api_timeout_ms, 5000);
	return 0;
}

struct k8s_runtime *k8s_runtime_new(struct event_base *base, struct evdns_base *dns,
				    const struct config *cfg, char *err, size_t err_cap)
{
	struct k8s_kubeconfig kc = { 0 };
	struct k8s_runtime_pems pems = { 0 };
	struct k8s_client_opts co = { 0 };
	struct k8s_store_opts so = {
		.namespaces = cfg->kubernetes.namespaces.items,
		.n_namespaces = cfg->kubernetes.namespaces.n,
	};
	struct k8s_runtime *rt = NULL;

	if (k8s_runtime_load_kubeconfig(cfg, &kc, err, err_cap) != 0)
		goto out;
	if (k8s_runtime_client_opts(&kc, cfg, &pems, &co, err, err_cap) != 0)
		goto out;
	struct k8s_client *client = k8s_client_new(base, dns, &co, err, err_cap);
	if (!client)
		goto out;
	rt = x_new(struct k8s_runtime);
	rt->client = client;
	rt->store = k8s_store_new(base, client, &so);
	rt->server = x_strdup(kc.server.text);
	rt->source = x_strdup(kc.in_cluster ? "in-cluster" : kc.path);
out:
	k8s_runtime_pems_free(&pems);
	k8s_kubeconfig_free(&kc);
	return rt;
}

void k8s_runtime_free(struct k8s_runtime *rt)
{
	if (!rt)
		return;
	/* The store's watches run on the client: it goes first. */
	k8s_store_free(rt->store);
	k8s_client_free(rt->client);
	free(rt->server);
	free(rt->source);
	free(rt);
}
