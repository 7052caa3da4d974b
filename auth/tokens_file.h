/* Static bearer tokens in the kube-apiserver --token-auth-file format, for
 * standalone mode: one CSV record per line, `token,user,uid[,"g1,g2,..."]`.
 * Blank lines and lines whose first non-blank byte is '#' are skipped. Only
 * the SHA-256 of each token is kept in memory. */
#ifndef OCIGATE_AUTH_TOKENS_FILE_H
#define OCIGATE_AUTH_TOKENS_FILE_H

#include "util/common.h"

struct token_entry {
	unsigned char token_sha256[32]; /* the raw token is never kept */
	char *user;
	char *uid;
	char **groups; /* n_groups strings */
	size_t n_groups;
};

struct tokens_file {
	struct token_entry *entries; /* sorted by token_sha256 */
	size_t n;
};

/* Parses the whole file contents. Fields are taken verbatim (no trimming);
 * columns after the 4th are ignored; an empty 4th column means no groups.
 * On error returns -1, leaves *out zeroed and writes "line N: what is wrong"
 * into err (capacity err_cap, may be 0); the message never contains a
 * token. */
OG_WARN_UNUSED int tokens_file_parse(const char *data, size_t len,
				     struct tokens_file *out, char *err,
				     size_t err_cap);
/* Reads the file then parses it; error text starts with the path. */
OG_WARN_UNUSED int tokens_file_load(const char *path, struct tokens_file *out,
				    char *err, size_t err_cap);
/* Frees everything tf owns and zeroes it; accepts a zeroed struct. */
void tokens_file_free(struct tokens_file *tf);
/* Looks a token up by its SHA-256 (computed by the caller once per request).
 * Returns NULL when there is no such token. */
const struct token_entry *tokens_file_find(const struct tokens_file *tf,
					   const unsigned char sha256[32]);

#endif
