/* TLS client contexts for upstream registries: system trust plus an optional
 * per-connector CA file, peer verification, SNI, session resumption. */
#ifndef OCIGATE_UTIL_TLS_H
#define OCIGATE_UTIL_TLS_H

#include <openssl/ssl.h>

#include "util/common.h"

struct tls_client {
	SSL_CTX *ctx;
	SSL_SESSION *session; /* most recent resumable session */
};

/* Builds a context trusting the system store and ca_file (may be NULL).
 * Returns -1 with a reason in err. */
OG_WARN_UNUSED int tls_client_init(struct tls_client *t, const char *ca_file, char *err, size_t err_cap);
/* Same, with the extra trust given as PEM certificates in memory (a CA
 * from a Kubernetes Secret). With only_pem, the system store is not
 * trusted: a kubeconfig's certificate-authority is the only trust for its
 * API server. At least one certificate is required. */
OG_WARN_UNUSED int tls_client_init_pem(struct tls_client *t, const void *ca_pem, size_t len,
				       bool only_pem, char *err, size_t err_cap);
/* Presents a client certificate (PEM chain, leaf first) with its private
 * key (PEM) in every handshake. */
OG_WARN_UNUSED int tls_client_use_cert_pem(struct tls_client *t, const void *cert_pem,
					   size_t cert_len, const void *key_pem, size_t key_len,
					   char *err, size_t err_cap);
/* Turns peer verification off (kubeconfig insecure-skip-tls-verify). */
void tls_client_set_insecure(struct tls_client *t);
void tls_client_free(struct tls_client *t);
/* A new SSL for host, verifying its certificate name or IP address and
 * offering the cached session; NULL when it cannot be created or the name
 * to verify cannot be set. */
SSL *tls_client_new_ssl(struct tls_client *t, const char *host);
/* Describes why a handshake or TLS read failed, for a client-facing message. */
void tls_describe_error(SSL *ssl, unsigned long err, char *buf, size_t cap);

#endif
