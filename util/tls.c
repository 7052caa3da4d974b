#include "util/tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static int tls_session_ex_index = -1;

/* OpenSSL hands new sessions (TLS 1.3 tickets arrive after the handshake)
 * to this callback; keeping the latest lets the next connection resume. */
static int tls_on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_client *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_session_ex_index);

	if (!t)
		return 0;
	if (t->session)
		SSL_SESSION_free(t->session);
	t->session = sess;
	return 1;
}

static int tls_client_setup(struct tls_client *t, bool system_trust, char *err, size_t err_cap)
{
	memset(t, 0, sizeof(*t));
	if (tls_session_ex_index < 0)
		tls_session_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx) {
		snprintf(err, err_cap, "cannot create a TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_alpn_protos(t->ctx, (const unsigned char *)"\x08http/1.1", 9);
	if (system_trust && SSL_CTX_set_default_verify_paths(t->ctx) != 1)
		ERR_clear_error();
	return 0;
}

static void tls_client_setup_sessions(struct tls_client *t)
{
	SSL_CTX_set_ex_data(t->ctx, tls_session_ex_index, t);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(t->ctx, tls_on_new_session);
}

static void tls_openssl_reason(char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();

	snprintf(buf, cap, "%s", e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) :
		 "unknown error");
	ERR_clear_error();
}

int tls_client_init(struct tls_client *t, const char *ca_file, char *err, size_t err_cap)
{
	if (tls_client_setup(t, true, err, err_cap) != 0)
		return -1;
	if (ca_file && SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
		unsigned long e = ERR_get_error();
		snprintf(err, err_cap, "cannot load ca_file %s: %s", ca_file,
			 e ? ERR_reason_error_string(e) : "unknown error");
		ERR_clear_error();
		SSL_CTX_free(t->ctx);
		t->ctx = NULL;
		return -1;
	}
	tls_client_setup_sessions(t);
	return 0;
}

/* Adds every certificate of a PEM blob to the store; returns how many, or
 * -1 when a block is not a certificate. */
static int tls_add_pem_certs(X509_STORE *store, const void *pem, size_t len)
{
	BIO *bio;
	int n = 0;

	if (len > INT_MAX)
		return -1;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return -1;
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x)
			break;
		if (X509_STORE_add_cert(store, x) != 1) {
			X509_free(x);
			n = -1;
			break;
		}
		X509_free(x);
		n++;
	}
	BIO_free(bio);
	if (n >= 0) {
		unsigned long e = ERR_peek_last_error();
		/* Running out of blocks is how the loop ends; anything else
		 * is a damaged certificate. */
		if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
			return -1;
		ERR_clear_error();
	}
	return n;
}

int tls_client_init_pem(struct tls_client *t, const void *ca_pem, size_t len, bool only_pem,
			char *err, size_t err_cap)
{
	char why[160];
	int n;

	if (tls_client_setup(t, !only_pem, err, err_cap) != 0)
		return -1;
	n = tls_add_pem_certs(SSL_CTX_get_cert_store(t->ctx), ca_pem, len);
	if (n <= 0) {
		if (n < 0)
			tls_openssl_reason(why, sizeof(why));
		else
			snprintf(why, sizeof(why), "no PEM certificate found");
		snprintf(err, err_cap, "cannot load CA certificates: %s", why);
		SSL_CTX_free(t->ctx);
		t->ctx = NULL;
		return -1;
	}
	tls_client_setup_sessions(t);
	return 0;
}

int tls_client_use_cert_pem(struct tls_client *t, const void *cert_pem, size_t cert_len,
			    const void *key_pem, size_t key_len, char *err, size_t err_cap)
{
	char why[160];
	BIO *bio = NULL;
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	int rc = -1;

	if (cert_len > INT_MAX || key_len > INT_MAX) {
		snprintf(err, err_cap, "client certificate or key too large");
		return -1;
	}
	bio = BIO_new_mem_buf(cert_pem, (int)cert_len);
	leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	if (!leaf) {
		tls_openssl_reason(why, sizeof(why));
		snprintf(err, err_cap, "cannot read the client certificate: %s", why);
		goto out;
	}
	if (SSL_CTX_use_certificate(t->ctx, leaf) != 1) {
		tls_openssl_reason(why, sizeof(why));
		snprintf(err, err_cap, "cannot use the client certificate: %s", why);
		goto out;
	}
	for (;;) {
		X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!ca)
			break;
		if (SSL_CTX_add0_chain_cert(t->ctx, ca) != 1) {
			X509_free(ca);
			tls_openssl_reason(why, sizeof(why));
			snprintf(err, err_cap, "cannot use the client certificate chain: %s", why);
			goto out;
		}
	}
	ERR_clear_error();
	BIO_free(bio);
	bio = BIO_new_mem_buf(key_pem, (int)key_len);
	key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	if (!key) {
		tls_openssl_reason(why, sizeof(why));
		snprintf(err, err_cap, "cannot read the client key: %s", why);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(t->ctx, key) != 1 || SSL_CTX_check_private_key(t->ctx) != 1) {
		tls_openssl_reason(why, sizeof(why));
		snprintf(err, err_cap, "the client key does not match the certificate: %s", why);
		goto out;
	}
	rc = 0;
out:
	X509_free(leaf);
	EVP_PKEY_free(key);
	BIO_free(bio);
	return rc;
}

void tls_client_set_insecure(struct tls_client *t)
{
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
}

void tls_client_free(struct tls_client *t)
{
	if (t->session)
		SSL_SESSION_free(t->session);
	if (t->ctx)
		SSL_CTX_free(t->ctx);
	t->session = NULL;
	t->ctx = NULL;
}

static bool tls_is_ip_literal(const char *host)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Once a connection has resumed a TLS 1.3 session, OpenSSL marks it used
 * (its advice: a ticket once). Connections opened together, before the
 * next ticket arrives, then made full handshakes, a signature each on the
 * registry's CPU: 143 of 500 in a burst, the rest resumed. Each connection
 * gets a copy of the session to mark instead. Offering one ticket more
 * than once lets an observer link these connections to each other, which
 * their source address does already; no early data is ever sent, so
 * nothing can be replayed. */
static void tls_client_offer_session(struct tls_client *t, SSL *ssl)
{
	SSL_SESSION *copy;

	if (!t->session || !SSL_SESSION_is_resumable(t->session))
		return;
	copy = SSL_SESSION_dup(t->session);
	if (!copy)
		return; /* out of memory: a full handshake */
	SSL_set_session(ssl, copy);
	SSL_SESSION_free(copy);
}

SSL *tls_client_new_ssl(struct tls_client *t, const char *host)
{
	SSL *ssl = SSL_new(t->ctx);

	if (!ssl)
		return NULL;
	/* Without the name (or address) to check, verification would accept
	 * any certificate of the CA: fail the connection instead. */
	int ok = tls_is_ip_literal(host) ?
		 X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) :
		 SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
	if (ok != 1) {
		SSL_free(ssl);
		return NULL;
	}
	tls_client_offer_session(t, ssl);
	return ssl;
}

void tls_describe_error(SSL *ssl, unsigned long err, char *buf, size_t cap)
{
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (vr != X509_V_OK)
		snprintf(buf, cap, "TLS certificate verification failed: %s",
			 X509_verify_cert_error_string(vr));
	else if (err)
		snprintf(buf, cap, "TLS error: %s", ERR_reason_error_string(err) ?
			 ERR_reason_error_string(err) : "unknown");
	else
		snprintf(buf, cap, "TLS connection failed");
}
