/* tls_client_new_ssl: an SSL that cannot be told which name to verify is
 * not handed out (verification would otherwise accept any name the CA
 * signed). */
#include <string.h>

#include "test/unit/check.h"
#include "util/tls.h"

int main(void)
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
	CHECK_DONE();
}
