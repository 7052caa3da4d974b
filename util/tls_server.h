/* A TLS server certificate pair that can be replaced while serving: the
 * files are re-read when they change (a Secret volume swaps a symlink, an
 * editor renames, certbot rewrites) or when asked (SIGHUP). A pair that
 * does not load keeps the previous one. Connections already open keep the
 * context they started with (each SSL holds a reference). */
#ifndef OCIGATE_UTIL_TLS_SERVER_H
#define OCIGATE_UTIL_TLS_SERVER_H

#include <sys/types.h>
#include <time.h>

#include <openssl/ssl.h>

#include "util/common.h"

/* What identifies a version of a file: inode and times all count. */
struct tls_file_sig {
	bool ok;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct tls_server {
	SSL_CTX *ctx;                        /* the pair in use */
	char *cert_file, *key_file;
	bool alpn_http11;                    /* answer ALPN with http/1.1 */
	struct tls_file_sig cert_sig, key_sig; /* of the pair in ctx */
	struct tls_file_sig bad_cert, bad_key; /* of a pair that failed, reported once */
};

enum tls_server_reload {
	TLS_SERVER_UNCHANGED, /* same files: nothing done */
	TLS_SERVER_RELOADED,  /* the new pair is in use */
	TLS_SERVER_FAILED,    /* the new pair did not load (err says why); the old one stays */
	TLS_SERVER_FAILED_AGAIN, /* the same broken files as last time: nothing new to report */
};

/* TLS 1.2 or later, no renegotiation. Returns -1 with a reason in err. */
OG_WARN_UNUSED int tls_server_init(struct tls_server *t, const char *cert_file,
				   const char *key_file, bool alpn_http11, char *err, size_t cap);
/* Loads the pair when its files changed since the pair in use (always with
 * force). New paths (NULL = keep) apply from this call on. */
enum tls_server_reload tls_server_reload(struct tls_server *t, const char *cert_file,
					 const char *key_file, bool force, char *err, size_t cap);
void tls_server_free(struct tls_server *t);

#endif
