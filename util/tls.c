#include "util/tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
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

int tls_client_init(struct tls_client *t, const char *ca_file, char *err, size_t err_cap)
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
	SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_protos(t->ctx, (const unsigned char *)"\x08http/1.1", 9);
	if (SSL_CTX_set_default_verify_paths(t->ctx) != 1)
		ERR_clear_error();
	if (ca_file && SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
		unsigned long e = ERR_get_error();
		snprintf(err, err_cap, "cannot load ca_file %s: %s", ca_file,
			 e ? ERR_reason_error_string(e) : "unknown error");
		ERR_clear_error();
		SSL_CTX_free(t->ctx);
		t->ctx = NULL;
		return -1;
	}
	SSL_CTX_set_ex_data(t->ctx, tls_session_ex_index, t);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(t->ctx, tls_on_new_session);
	return 0;
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

SSL *tls_client_new_ssl(struct tls_client *t, const char *host)
{
	SSL *ssl = SSL_new(t->ctx);

	if (!ssl)
		return NULL;
	if (tls_is_ip_literal(host)) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	} else {
		SSL_set_tlsext_host_name(ssl, host);
		SSL_set1_host(ssl, host);
	}
	if (t->session && SSL_SESSION_is_resumable(t->session))
		SSL_set_session(ssl, t->session);
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
