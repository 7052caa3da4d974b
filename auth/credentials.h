/* The client's Authorization header: `Basic base64(ANY:TOKEN)` (the user
 * name is a placeholder and ignored) or `Bearer TOKEN`, where TOKEN is the
 * workload's ServiceAccount token. */
#ifndef OCIGATE_AUTH_CREDENTIALS_H
#define OCIGATE_AUTH_CREDENTIALS_H

#include "util/common.h"

struct cred_memo;

#define CRED_TOKEN_MAX 8192

enum cred_result {
	CRED_OK,
	CRED_MISSING,		  /* empty value; pass an empty og_str for no header */
	CRED_MALFORMED,		  /* a known scheme with unusable credentials */
	CRED_UNSUPPORTED_SCHEME,  /* neither Basic nor Bearer */
};

/* Extracts the token from an Authorization header value. Scheme names are
 * case-insensitive, one or more SP between scheme and credentials; leading
 * and trailing SP/HTAB around the value are ignored. For Basic the decoded
 * bytes are written into buf (capacity buf_cap; too small is MALFORMED) and
 * the token is the part after the first ':', non-empty, without CTLs. For
 * Bearer the token must be token68 syntax and points into value. A token
 * longer than CRED_TOKEN_MAX bytes is MALFORMED. */
OG_WARN_UNUSED enum cred_result cred_parse_authorization(struct og_str value,
							 char *buf,
							 size_t buf_cap,
							 struct og_str *token);

/* The SHA-256 of a token: the key every lookup of it uses (the tokens
 * file, the TokenReview cache). -1 when OpenSSL cannot compute it. */
OG_WARN_UNUSED int cred_token_sha256(struct og_str token, unsigned char out[32]);

/* cred_parse_authorization, and the SHA-256 of the token into sha. A
 * client sends the same value on every request of a connection, so the
 * connection keeps its last good value with the token and the hash in
 * *memo and a repeat takes them from there (the value is compared in
 * constant time: requests of several clients may share a connection
 * behind a proxy). On a repeat, token points into the memo. */
OG_WARN_UNUSED enum cred_result cred_parse_remembered(struct cred_memo **memo, struct og_str value,
						      char *buf, size_t buf_cap,
						      struct og_str *token,
						      unsigned char sha[32]);
/* Wipes and frees a memo (NULL is fine). */
void cred_memo_free(struct cred_memo *memo);

#endif
