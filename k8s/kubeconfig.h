/* Where the Kubernetes API server is and how to authenticate to it: from
 * the Pod's ServiceAccount (in-cluster) or from a kubeconfig file.
 *
 * kubeconfig files are read with libyaml (YAML 1.1; JSON is YAML too):
 * block and flow style, every scalar style. Refused, with the file and
 * line: anchors, aliases and tags (kubeconfigs need none, and aliases
 * allow "billion laughs" files), keys that are not strings, duplicate
 * keys, more than one document, NUL characters in values, and nesting
 * deeper than 64. Syntax errors are libyaml's own words with its line.
 * Scalars and libyaml's input buffers are wiped after use; what libyaml's
 * scanner leaves behind when it grows a buffer (realloc) is not. */
#ifndef OCIGATE_K8S_KUBECONFIG_H
#define OCIGATE_K8S_KUBECONFIG_H

#include "k8s/api.h"
#include "util/common.h"

/* Where a Pod finds its ServiceAccount token, ca.crt and namespace. */
#define K8S_SERVICEACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* Larger kubeconfig files are refused. */
#define K8S_KUBECONFIG_MAX_BYTES ((size_t)4 << 20)
/* Larger token files are refused. */
#define K8S_TOKEN_MAX_BYTES ((size_t)64 << 10)

struct k8s_kubeconfig {
	bool in_cluster;
	char *path;         /* the kubeconfig, NULL in-cluster */
	char *context;      /* the context used, NULL in-cluster */
	char *cluster_name; /* NULL in-cluster */
	char *user_name;    /* NULL in-cluster or when the context names no user */

	struct url_base server;

	/* Trust: at most one of ca_pem and ca_file; neither = system store. */
	unsigned char *ca_pem; /* certificate-authority-data, decoded */
	size_t ca_pem_len;
	char *ca_file;         /* certificate-authority, or ca.crt in-cluster */
	bool insecure_skip_tls_verify;
	char *tls_server_name; /* NULL = server.host */

	/* Client certificate: PEM bytes or files (each pair is complete). */
	unsigned char *client_cert_pem;
	size_t client_cert_pem_len;
	char *client_cert_file;
	unsigned char *client_key_pem; /* wiped on free */
	size_t client_key_pem_len;
	char *client_key_file;

	/* Bearer token. token_file, when set, wins: re-read it (with
	 * k8s_kubeconfig_read_token) to follow rotation, as kubelet rotates
	 * projected ServiceAccount tokens. */
	char *token;      /* wiped on free */
	char *token_file;

	char *ns; /* the context's namespace, or the Pod's; NULL if unknown */
};

/* Parses a kubeconfig. path names the file in messages and is the base of
 * relative file names in it (joined to its directory as given). context is
 * the context to use, NULL for current-context. Errors name the file, and the
 * line or the entry and field: "kubeconfig /x/config: user 'admin':
 * client-key-data is not valid base64". Files the config names are not
 * opened. *out is zeroed on error. */
OG_WARN_UNUSED int k8s_kubeconfig_parse(const char *text, size_t len, const char *path,
					const char *context, struct k8s_kubeconfig *out, char *err,
					size_t err_cap);
/* Reads and parses the file (a relative path is taken from the current
 * directory, and so are the relative names inside it) and checks that the
 * files it names are readable. */
OG_WARN_UNUSED int k8s_kubeconfig_load(const char *path, const char *context,
				       struct k8s_kubeconfig *out, char *err, size_t err_cap);
/* The in-cluster configuration: https://$KUBERNETES_SERVICE_HOST:
 * $KUBERNETES_SERVICE_PORT, trusting sa_dir/ca.crt, with the token file
 * sa_dir/token (both must be readable) and the namespace from
 * sa_dir/namespace if present. sa_dir NULL means K8S_SERVICEACCOUNT_DIR. */
OG_WARN_UNUSED int k8s_kubeconfig_in_cluster(const char *sa_dir, struct k8s_kubeconfig *out,
					     char *err, size_t err_cap);
/* Reads a bearer token file: surrounding whitespace is dropped; an empty
 * token or one with bytes that cannot go into an Authorization header
 * (controls, spaces, non-ASCII) is an error. */
OG_WARN_UNUSED int k8s_kubeconfig_read_token(const char *path, char **token, char *err,
					     size_t err_cap);
/* Accepts a zeroed struct; leaves it zeroed. */
void k8s_kubeconfig_free(struct k8s_kubeconfig *kc);

#endif
