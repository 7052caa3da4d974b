#include "net/httpc_response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "util/http1_buf.h"
#include "util/xalloc.h"

void httpc_response_init(struct httpc_response *r, const struct http1_limits *limits,
			 enum http_method method, uint64_t max_body, const char *from)
{
	memset(r, 0, sizeof(*r));
	r->limits = *limits;
	r->method = method;
	r->max_body = max_body;
	r->from = from;
	r->head.headers = x_calloc(limits->max_headers, sizeof(*r->head.headers));
	http1_chunked_init(&r->chunked);
}

void httpc_response_reset(struct httpc_response *r)
{
	struct http1_header *headers = r->head.headers;

	free(r->head_copy);
	r->head_copy = NULL;
	memset(&r->head, 0, sizeof(r->head));
	r->head.headers = headers;
	r->have_head = false;
	r->received = 0;
	http1_chunked_init(&r->chunked);
}

void httpc_response_free(struct httpc_response *r)
{
	free(r->head_copy);
	free(r->head.headers);
	r->head_copy = NULL;
	r->head.headers = NULL;
}

/* Keeps the head: the headers point into it for the caller. */
static void httpc_response_keep_head(struct httpc_response *r, const char *p, size_t n)
{
	r->head_copy = x_malloc(n);
	memcpy(r->head_copy, p, n);
	for (size_t i = 0; i < r->head.n_headers; i++) {
		r->head.headers[i].name.p = r->head_copy + (r->head.headers[i].name.p - p);
		r->head.headers[i].value.p = r->head_copy + (r->head.headers[i].value.p - p);
	}
}

static int httpc_response_too_large(const struct httpc_response *r, char *err, size_t cap)
{
	snprintf(err, cap, "response from %s too large (more than %llu bytes)", r->from,
		 (unsigned long long)r->max_body);
	return -1;
}

int httpc_response_read_head(struct httpc_response *r, struct evbuffer *in, char *err, size_t cap)
{
	for (;;) {
		enum http1_error e = HTTP1_E_NONE;
		size_t n = OG_MIN(evbuffer_get_length(in), r->limits.max_head_bytes);
		const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
		ssize_t used = http1_parse_response(p, n, &r->limits, r->method, &r->head, &e);

		if (used < 0) {
			snprintf(err, cap, "bad response from %s: %s", r->from, http1_error_str(e));
			return -1;
		}
		if (used == 0)
			return 0;
		if (r->head.status < 200) {
			evbuffer_drain(in, (size_t)used); /* 100 Continue and friends */
			continue;
		}
		httpc_response_keep_head(r, p, (size_t)used);
		evbuffer_drain(in, (size_t)used);
		r->have_head = true;
		if (r->max_body && r->head.body == HTTP1_BODY_LENGTH &&
		    r->head.content_length > r->max_body)
			return httpc_response_too_large(r, err, cap);
		return 1;
	}
}

int httpc_response_read_body(struct httpc_response *r, struct evbuffer *in, struct evbuffer *out,
			     char *err, size_t cap)
{
	uint64_t moved = 0;
	int rc = 0;

	switch (r->head.body) {
	case HTTP1_BODY_NONE:
		return 1;
	case HTTP1_BODY_LENGTH:
		moved = OG_MIN((uint64_t)evbuffer_get_length(in), r->head.content_length - r->received);
		evbuffer_remove_buffer(in, out, (size_t)moved);
		rc = r->received + moved == r->head.content_length;
		break;
	case HTTP1_BODY_CHUNKED:
		rc = http1_buf_dechunk(&r->chunked, in, out, false, &moved);
		if (rc < 0) {
			snprintf(err, cap, "bad chunked framing from %s", r->from);
			return -1;
		}
		break;
	case HTTP1_BODY_UNTIL_CLOSE:
		moved = evbuffer_get_length(in);
		evbuffer_add_buffer(out, in);
		break;
	}
	r->received += moved;
	if (r->max_body && r->received > r->max_body)
		return httpc_response_too_large(r, err, cap);
	return rc;
}

int httpc_response_read(struct httpc_response *r, struct evbuffer *in, struct evbuffer *out,
			char *err, size_t cap)
{
	if (!r->have_head) {
		int rc = httpc_response_read_head(r, in, err, cap);
		if (rc <= 0)
			return rc;
	}
	return httpc_response_read_body(r, in, out, err, cap);
}

bool httpc_response_ends_at_close(const struct httpc_response *r)
{
	return r->have_head && r->head.body == HTTP1_BODY_UNTIL_CLOSE;
}
