/* Reading one HTTP/1.1 response from a peer we asked: the head (1xx
 * skipped), then the body framed by Content-Length, chunked encoding or the
 * end of the connection, with a cap on the body and an error that names the
 * peer. Used by proxy/fetch.c (token service, /v2/ probe) and k8s/client.c
 * (every API response, watches included: their body is read here and split
 * into lines there). The response a proxied request streams to a client is
 * not read here: proxy/exchange.c moves it without holding it. */
#ifndef OCIGATE_NET_HTTPC_RESPONSE_H
#define OCIGATE_NET_HTTPC_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/common.h"
#include "util/http1.h"

struct evbuffer;

struct httpc_response {
	/* set by httpc_response_init */
	struct http1_limits limits;
	enum http_method method;
	uint64_t max_body;          /* body bytes as framed; 0: uncapped (the caller caps what it decodes) */
	const char *from;           /* the peer, for messages: "the API server" */
	/* the head, once have_head: headers point into a copy owned here */
	bool have_head;
	struct http1_response head;
	uint64_t received;          /* body bytes so far */
	/* private */
	char *head_copy;
	struct http1_chunked chunked;
};

/* from must outlive r. */
void httpc_response_init(struct httpc_response *r, const struct http1_limits *limits,
			 enum http_method method, uint64_t max_body, const char *from);
/* Forgets what was read, for the same request sent again. */
void httpc_response_reset(struct httpc_response *r);
void httpc_response_free(struct httpc_response *r);

/* Consumes the head from in. Returns 1 when it is there, 0 when more bytes
 * are needed, -1 with a reason in err (malformed head, or a Content-Length
 * above max_body). */
OG_WARN_UNUSED int httpc_response_read_head(struct httpc_response *r, struct evbuffer *in,
					    char *err, size_t cap);

/* Moves body bytes from in to out, without the framing. Returns 1 at the end
 * of the body, 0 when more is needed, -1 with a reason in err (bad chunked
 * framing, more than max_body). */
OG_WARN_UNUSED int httpc_response_read_body(struct httpc_response *r, struct evbuffer *in,
					    struct evbuffer *out, char *err, size_t cap);

/* Head, then body, as far as in allows: 1 when the response is complete,
 * 0 for more, -1 with err. */
OG_WARN_UNUSED int httpc_response_read(struct httpc_response *r, struct evbuffer *in,
				       struct evbuffer *out, char *err, size_t cap);

/* The peer closed the connection: true when that ends the body (no
 * Content-Length, no chunking) rather than cutting it short. */
bool httpc_response_ends_at_close(const struct httpc_response *r);

#endif
