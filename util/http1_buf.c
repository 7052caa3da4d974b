#include "util/http1_buf.h"

#include <event2/buffer.h>

/* Framing lines are examined in windows of this size; data never is. */
#define HTTP1_BUF_WINDOW 8192

void http1_buf_move(struct evbuffer *in, struct evbuffer *out, size_t n, bool chunked)
{
	if (chunked)
		evbuffer_add_printf(out, "%zx\r\n", n);
	evbuffer_remove_buffer(in, out, n);
	if (chunked)
		evbuffer_add(out, "\r\n", 2);
}

int http1_buf_dechunk(struct http1_chunked *dec, struct evbuffer *in, struct evbuffer *out,
		      bool out_chunked, uint64_t *moved)
{
	while (evbuffer_get_length(in) > 0) {
		size_t avail = evbuffer_get_length(in);
		if (http1_chunked_in_data(dec)) {
			size_t n = (size_t)OG_MIN((uint64_t)avail, dec->data_left);
			http1_buf_move(in, out, n, out_chunked);
			http1_chunked_took(dec, n);
			*moved += n;
			continue;
		}
		size_t win = OG_MIN(avail, (size_t)HTTP1_BUF_WINDOW);
		const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)win);
		size_t used = 0;
		enum http1_chunk_status st = http1_chunked_parse(dec, p, win, &used);
		evbuffer_drain(in, used);
		if (st == HTTP1_CHUNK_ERROR)
			return -1;
		if (st == HTTP1_CHUNK_DONE)
			return 1;
	}
	return 0;
}
