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

/* A head composed in a local buffer and added to its evbuffer in as few
 * pieces as fit: every add to a bufferevent's output re-arms its write
 * event, and a head is some forty small pieces. Pieces larger than the
 * buffer go straight through, so nothing is ever cut. */
struct http1_head {
	struct evbuffer *out;
	size_t n;
	char text[2048];
};

void http1_head_begin(struct http1_head *h, struct evbuffer *out);
void http1_head_add(struct http1_head *h, const char *p, size_t n);
/* "HTTP/1.1 STATUS REASON\r\n" */
void http1_head_status_line(struct http1_head *h, int status, const char *reason);
/* "NAME: VALUE\r\n" */
void http1_head_field(struct http1_head *h, const char *name, size_t name_n, const char *value,
		      size_t value_n);
/* "NAME: DECIMAL\r\n" */
void http1_head_u64_field(struct http1_head *h, const char *name, uint64_t v);
/* Adds what is still in the buffer; the head's last CRLF is the caller's. */
void http1_head_flush(struct http1_head *h);

#endif
