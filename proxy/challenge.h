/* WWW-Authenticate challenges from upstream registries (RFC 9110 11.6.1):
 * several challenges per field and several fields, quoted strings with
 * escapes, case-insensitive scheme and parameter names, commas inside
 * quotes. ocigate needs to know whether the registry wants Basic or a
 * Bearer token, and where the token service is. */
#ifndef OCIGATE_PROXY_CHALLENGE_H
#define OCIGATE_PROXY_CHALLENGE_H

#include "util/common.h"

#define CHALLENGE_VALUE_MAX 1024

struct challenge {
	bool basic;
	bool bearer;
	/* Bearer parameters, unescaped; empty when absent. */
	char realm[CHALLENGE_VALUE_MAX];
	char service[CHALLENGE_VALUE_MAX];
	char scope[CHALLENGE_VALUE_MAX];
	char error[64]; /* e.g. "invalid_token", "insufficient_scope" */
};

/* Parses one field value and merges what it offers into out (call once per
 * WWW-Authenticate field, on a zeroed struct). Returns -1 when the value is
 * not valid challenge syntax or a parameter is longer than
 * CHALLENGE_VALUE_MAX; what was parsed before the error is kept. */
OG_WARN_UNUSED int challenge_parse(struct og_str value, struct challenge *out);

/* Whether a Bearer realm may receive the connector's credentials: an
 * absolute https URL (plain http only when allow_insecure). Returns -1 with
 * the reason in err otherwise. */
OG_WARN_UNUSED int challenge_check_realm(const char *realm, bool allow_insecure, char *err,
					 size_t cap);

#endif
