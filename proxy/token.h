/* Upstream registry tokens (the distribution token flow): fetched from the
 * registry's token service with the connector's credentials, cached per
 * (realm, service, scope) until shortly before they expire (an hour at
 * most), in a bounded LRU, one fetch at a time per key. Tokens never leave the proxy: not to clients, not to logs. */
#ifndef OCIGATE_PROXY_TOKEN_H
#define OCIGATE_PROXY_TOKEN_H

#include <time.h>

#include "util/common.h"

struct upstream_site;
struct token_cache;
struct token_wait;

enum token_failure {
	TOKEN_FAILED,   /* the token service failed or answered garbage (502) */
	TOKEN_TIMEOUT,  /* it did not answer in time (504) */
	TOKEN_REFUSED,  /* it refused the connector's credentials (502 DENIED) */
};

/* authorization is "Bearer ..." on success (valid during the call); on
 * failure it is NULL, error says why and failure what kind it was. */
typedef void (*token_done_fn)(void *arg, const char *authorization, const char *error,
			      enum token_failure failure);

struct token_cache *token_cache_new(struct upstream_site *site);
void token_cache_free(struct token_cache *tc);

/* scope is space-separated ("repository:a:pull repository:b:pull"). With a
 * usable cached token, done runs before this returns and NULL is returned;
 * otherwise the caller waits (cancel with token_wait_cancel). */
struct token_wait *token_get(struct token_cache *tc, const char *scope, token_done_fn done, void *arg);
void token_wait_cancel(struct token_wait *w);
/* The registry refused this token: never hand it out again. */
void token_invalidate(struct token_cache *tc, const char *scope);

/* Reads a token service response (token or access_token, expires_in,
 * issued_at). *lifetime is what is left of the token at now, in seconds.
 * Returns -1 with a reason in err (never containing the token). */
OG_WARN_UNUSED int token_parse_response(const char *body, size_t len, time_t now, char **token,
					int64_t *lifetime, char *err, size_t cap);

#endif
