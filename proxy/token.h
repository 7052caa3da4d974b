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
struct auth_waiter;

enum token_failure {
	TOKEN_FAILED,   /* the token service failed or answered garbage (502) */
	TOKEN_TIMEOUT,  /* it did not answer in time (504) */
	TOKEN_REFUSED,  /* it refused the connector's credentials (502 DENIED) */
};

/* authorization is "Bearer ..." on success (valid during the call); on
 * failure it is NULL, error says why and failure what kind it was. */
typedef void (*token_done_fn)(void *arg, const char *authorization, const char *error,
			      enum token_failure failure);

/* One caller's wait for a token. It lives in the caller (zeroed before its
 * first use, reusable after done ran or the wait was cancelled), so a
 * cached token costs no allocation. The fields are token.c's. */
struct token_wait {
	struct token_cache *tc;         /* set while queued or waiting */
	struct token_wait *next, *prev; /* in tc's queue of waits to start */
	struct auth_waiter *waiter;     /* joined to a token fetch */
	const char *scope;
	token_done_fn done;
	void *arg;
};

struct token_cache *token_cache_new(struct upstream_site *site);
void token_cache_free(struct token_cache *tc);

/* scope is space-separated ("repository:a:pull repository:b:pull") and
 * borrowed until done runs or the wait is cancelled. done always runs
 * later, from the event loop (a cached token on the next turn, like
 * fetch_get), never before token_get returns. w must be idle. */
void token_get(struct token_cache *tc, struct token_wait *w, const char *scope, token_done_fn done,
	       void *arg);
/* Stops a wait; done will not run. An idle wait is left alone. */
void token_wait_cancel(struct token_wait *w);
/* The registry refused this token: never hand it out again. */
void token_invalidate(struct token_cache *tc, const char *scope);

/* Reads a token service response (token or access_token, expires_in,
 * issued_at). *lifetime is what is left of the token at now, in seconds.
 * Returns -1 with a reason in err (never containing the token). */
OG_WARN_UNUSED int token_parse_response(const char *body, size_t len, time_t now, char **token,
					int64_t *lifetime, char *err, size_t cap);

#endif
