/* TLS material made in process for unit tests that run a TLS server. */
#ifndef OCIGATE_TEST_UNIT_TESTCERT_H
#define OCIGATE_TEST_UNIT_TESTCERT_H

#include <openssl/evp.h>
#include <openssl/x509v3.h>

/* A self-signed CA:TRUE certificate for key (valid from a minute ago for
 * an hour), named cn, with subjectAltName san (e.g. "IP:127.0.0.1"). */
static inline X509 *test_self_signed_cert(EVP_PKEY *key, const char *cn, const char *san)
{
	X509 *cert = X509_new();
	X509_NAME *nm = X509_get_subject_name(cert);
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 42);
	X509_gmtime_adj(X509_getm_notBefore(cert), -60);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(cert, nm);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(cert, key, EVP_sha256());
	return cert;
}

#endif
