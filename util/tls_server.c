#include "util/tls_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>

#include "util/xalloc.h"

static void tls_server_stat(const char *path, struct tls_file_sig *sig)
{
	struct stat st;

	memset(sig, 0, sizeof(*sig));
	if (stat(path, &st) != 0)
		return;
	sig->ok = true;
	sig->dev = st.st_dev;
	sig->ino = st.st_ino;
	sig->size = st.st_size;
	sig->mtime = st.st_mtim;
	sig->ctime = st.st_ctim;
}

static bool tls_server_sig_eq(const struct tls_file_sig *a, const struct tls_file_sig *b)
{
	return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void tls_server_ssl_error(const char *what, char *err, size_t cap)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	snprintf(err, cap, "%s%s%s", what, *buf ? ": " : "", buf);
}

/* Runtimes speak HTTP/1.1 to registries; a client offering only h2 gets no
 * ALPN answer rather than a failed handshake, as nginx does. */
static int tls_server_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			   const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";
	unsigned char *sel = NULL;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *tls_server_load(const struct tls_server *t, char *err, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char what[1024];

	if (!ctx) {
		tls_server_ssl_error("cannot create a TLS context", err, cap);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (t->alpn_http11)
		SSL_CTX_set_alpn_select_cb(ctx, tls_server_alpn, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
		snprintf(what, sizeof(what), "cert_file %s: cannot load a PEM certificate chain",
			 t->cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "key_file %s: cannot load a PEM private key", t->key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, sizeof(what), "key_file %s does not match cert_file %s", t->key_file,
			 t->cert_file);
		goto fail;
	}
	return ctx;
fail:
	tls_server_ssl_error(what, err, cap);
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_server_init(struct tls_server *t, const char *cert_file, const char *key_file,
		    bool alpn_http11, char *err, size_t cap)
{
	memset(t, 0, sizeof(*t));
	t->cert_file = x_strdup(cert_file);
	t->key_file = x_strdup(key_file);
	t->alpn_http11 = alpn_http11;
	tls_server_stat(t->cert_file, &t->cert_sig);
	tls_server_stat(t->key_file, &t->key_sig);
	t->ctx = tls_server_load(t, err, cap);
	if (!t->ctx) {
		tls_server_free(t);
		return -1;
	}
	return 0;
}

static void tls_server_set_path(char **field, const char *path)
{
	if (!path || strcmp(*field, path) == 0)
		return;
	free(*field);
	*field = x_strdup(path);
}

enum tls_server_reload tls_server_reload(struct tls_server *t, const char *cert_file,
					 const char *key_file, bool force, char *err, size_t cap)
{
	struct tls_file_sig cs, ks;
	SSL_CTX *ctx;
	bool same_bad;

	tls_server_set_path(&t->cert_file, cert_file);
	tls_server_set_path(&t->key_file, key_file);
	tls_server_stat(t->cert_file, &cs);
	tls_server_stat(t->key_file, &ks);
	if (!force && tls_server_sig_eq(&cs, &t->cert_sig) && tls_server_sig_eq(&ks, &t->key_sig))
		return TLS_SERVER_UNCHANGED;
	ctx = tls_server_load(t, err, cap);
	if (!ctx) {
		/* A renewal writes two files: one check may see only one of them. */
		same_bad = !force && tls_server_sig_eq(&cs, &t->bad_cert) &&
			   tls_server_sig_eq(&ks, &t->bad_key);
		t->bad_cert = cs;
		t->bad_key = ks;
		return same_bad ? TLS_SERVER_FAILED_AGAIN : TLS_SERVER_FAILED;
	}
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	t->cert_sig = cs;
	t->key_sig = ks;
	return TLS_SERVER_RELOADED;
}

void tls_server_free(struct tls_server *t)
{
	SSL_CTX_free(t->ctx);
	free(t->cert_file);
	free(t->key_file);
	memset(t, 0, sizeof(*t));
}
