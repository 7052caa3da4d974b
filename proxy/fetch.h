/* Small requests ocigate makes on its own behalf (token service, the /v2/
 * probe): one GET over an upstream pool, the whole response read into
 * memory up to a bound. */
#ifndef OCIGATE_PROXY_FETCH_H
#define OCIGATE_PROXY_FETCH_H

#include "proxy/upstream.h"
#include "util/http1.h"

struct fetch;

struct fetch_result {
	int status;                    /* 0 when no response was received */
	bool timeout;
	const struct http1_header *headers;
	size_t n_headers;
	const char *body;              /* NUL-terminated */
	size_t body_len;
	const char *error;             /* why there is no response, or NULL */
};

typedef void (*fetch_done_fn)(void *arg, const struct fetch_result *r);

/* GET target (origin-form, with query) from pool's origin, sending
 * authorization when not NULL. done runs exactly once, later on the loop,
 * unless the fetch is cancelled first. */
struct fetch *fetch_get(struct upstream_pool *pool, const char *target, const char *authorization,
			size_t max_body, fetch_done_fn done, void *arg);
void fetch_cancel(struct fetch *f);

#endif
