#include "util/http1_buf.h"

#include <string.h>

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

void http1_head_begin(struct http1_head *h, struct evbuffer *out)
{
	h->out = out;
	h->n = 0;
}

void http1_head_flush(struct http1_head *h)
{
	if (h->n)
		evbuffer_add(h->out, h->text, h->n);
	h->n = 0;
}

void http1_head_add(struct http1_head *h, const char *p, size_t n)
{
	if (n > sizeof(h->text) - h->n) {
		http1_head_flush(h);
		if (n > sizeof(h->text)) {
			evbuffer_add(h->out, p, n);
			return;
		}
	}
	memcpy(h->text + h->n, p, n);
	h->n += n;
}

void http1_head_status_line(struct http1_head *h, int status, const char *reason)
{
	char digits[20];

	http1_head_add(h, "HTTP/1.1 ", 9);
	http1_head_add(h, digits, og_u64_text(status > 0 ? (uint64_t)status : 0, digits));
	http1_head_add(h, " ", 1);
	http1_head_add(h, reason, strlen(reason));
	http1_head_add(h, "\r\n", 2);
}

void http1_head_field(struct http1_head *h, const char *name, size_t name_n, const char *value,
		      size_t value_n)
{
	/* Nearly every field fits: two copies instead of four. */
	if (name_n + value_n + 4 <= sizeof(h->text) - h->n) {
		char *p = h->text + h->n;
		memcpy(p, name, name_n);
		p += name_n;
		*p++ = ':';
		*p++ = ' ';
		memcpy(p, value, value_n);
		p += value_n;
		*p++ = '\r';
		*p++ = '\n';
		h->n = (size_t)(p - h->text);
		return;
	}
	http1_head_add(h, name, name_n);
	http1_head_add(h, ": ", 2);
	http1_head_add(h, value, value_n);
	http1_head_add(h, "\r\n", 2);
}

void http1_head_u64_field(struct http1_head *h, const char *name, uint64_t v)
{
	char digits[20];

	http1_head_field(h, name, strlen(name), digits, og_u64_text(v, digits));
}
