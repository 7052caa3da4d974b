/* tls_client_new_ssl: an SSL that cannot be told which name to verify is
 * not handed out (verification would otherwise accept any name the CA
 * signed); connections opened together all resume the cached session,
 * against an in-memory OpenSSL server. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "test/unit/check.h"
#include "test/unit/testcert.h"
#include "util/tls.h"

/* A server context with a throwaway self-signed EC certificate. */
static SSL_CTX *test_server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = key ? test_self_signed_cert(key, "test", "IP:127.0.0.1") : NULL;

	CHECK(ctx && key && cert);
	CHECK(SSL_CTX_use_certificate(ctx, cert) == 1);
	CHECK(SSL_CTX_use_PrivateKey(ctx, key) == 1);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ctx;
}

struct pair {
	SSL *client, *server;
};

static void pair_start(struct pair *p, struct tls_client *t, SSL_CTX *sctx)
{
	BIO *cb, *sb;

	p->client = tls_client_new_ssl(t, "127.0.0.1");
	p->server = SSL_new(sctx);
	CHECK(p->client && p->server);
	CHECK(BIO_new_bio_pair(&cb, 0, &sb, 0) == 1);
	SSL_set_bio(p->client, cb, cb);
	SSL_set_bio(p->server, sb, sb);
	SSL_set_connect_state(p->client);
	SSL_set_accept_state(p->server);
}

/* Runs the handshake, then one byte from the server, which brings the
 * client the server's session tickets (tls.c keeps the latest). */
static void pair_finish(struct pair *p)
{
	char byte;
	int done = 0;

	for (int i = 0; i < 100 && done != 3; i++) {
		if (!(done & 1) && SSL_do_handshake(p->client) == 1)
			done |= 1;
		if (!(done & 2) && SSL_do_handshake(p->server) == 1)
			done |= 2;
	}
	CHECK_INT(done, 3);
	CHECK_INT(SSL_write(p->server, "x", 1), 1);
	CHECK_INT(SSL_read(p->client, &byte, 1), 1);
}

static void pair_free(struct pair *p)
{
	SSL_free(p->client);
	SSL_free(p->server);
}

/* Three connections are opened before any of them has said hello; the
 * first to finish resumes the cached session, and so must the others. */
static void test_burst_resumes(void)
{
	struct tls_client t = { 0 };
	SSL_CTX *sctx = test_server_ctx();
	struct pair first, burst[3];
	char err[200];

	CHECK_INT(tls_client_init(&t, NULL, err, sizeof(err)), 0);
	tls_client_set_insecure(&t);
	pair_start(&first, &t, sctx);
	pair_finish(&first);
	CHECK(!SSL_session_reused(first.client));
	CHECK(t.session != NULL);
	for (int i = 0; i < 3; i++)
		pair_start(&burst[i], &t, sctx);
	for (int i = 0; i < 3; i++) {
		pair_finish(&burst[i]);
		CHECK(SSL_session_reused(burst[i].client));
	}
	pair_free(&first);
	for (int i = 0; i < 3; i++)
		pair_free(&burst[i]);
	tls_client_free(&t);
	SSL_CTX_free(sctx);
}

static void test_names(void)
{
	struct tls_client t = { 0 };
	char err[200];
	char longname[300];
	SSL *ssl;

	CHECK_INT(tls_client_init(&t, NULL, err, sizeof(err)), 0);

	ssl = tls_client_new_ssl(&t, "registry.example.com");
	CHECK(ssl != NULL);
	if (ssl) {
		CHECK(strcmp(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name),
			     "registry.example.com") == 0);
		CHECK(strcmp(SSL_get0_peername(ssl) ? SSL_get0_peername(ssl) :
			     X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0),
			     "registry.example.com") == 0);
		SSL_free(ssl);
	}
	ssl = tls_client_new_ssl(&t, "127.0.0.1");
	CHECK(ssl != NULL);
	SSL_free(ssl);

	/* SNI refuses names over 255 bytes: no SSL, not an unchecked one. */
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK(tls_client_new_ssl(&t, longname) == NULL);

	tls_client_free(&t);
}

int main(void)
{
	test_names();
	test_burst_resumes();
	CHECK_DONE();
}
