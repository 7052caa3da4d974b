/* Moving HTTP/1.1 bodies between evbuffers: the chunked decoder of
 * util/http1 driven over buffer chains without copying the data. */
#ifndef OCIGATE_UTIL_HTTP1_BUF_H
#define OCIGATE_UTIL_HTTP1_BUF_H

#include "util/http1.h"

struct evbuffer;

/* Moves n bytes from in to out, framed as one chunk when chunked. */
void http1_buf_move(struct evbuffer *in, struct evbuffer *out, size_t n, bool chunked);

/* Consumes chunked framing from in and moves the data to out (re-chunked
 * when out_chunked). Returns 1 at the end of the body, 0 when more input is
 * needed, -1 on bad framing; *moved counts the data bytes moved. */
OG_WARN_UNUSED int http1_buf_dechunk(struct http1_chunked *dec, struct evbuffer *in,
				     struct evbuffer *out, bool out_chunked, uint64_t *moved);

#endif
