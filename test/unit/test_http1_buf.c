/* Chunked bodies moved between evbuffers, fed in pieces that split the
 * framing anywhere (a size line split across reads once crashed this). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "test/unit/check.h"
#include "util/http1_buf.h"

/* Feeds body in pieces of `step` bytes; returns the decoded data. */
static char *dechunk_in_steps(const char *body, size_t len, size_t step, int *rc_out, size_t *out_len)
{
	struct http1_chunked dec;
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	uint64_t moved = 0;
	int rc = 0;

	http1_chunked_init(&dec);
	for (size_t off = 0; off < len && rc == 0; off += step) {
		evbuffer_add(in, body + off, OG_MIN(step, len - off));
		rc = http1_buf_dechunk(&dec, in, out, false, &moved);
	}
	*rc_out = rc;
	*out_len = evbuffer_get_length(out);
	CHECK_INT(moved, *out_len);
	char *s = malloc(*out_len + 1);
	evbuffer_remove(out, s, *out_len);
	s[*out_len] = '\0';
	evbuffer_free(in);
	evbuffer_free(out);
	return s;
}

static void test_split_everywhere(void)
{
	char body[600], want[300];
	size_t n = 0, w = 0;

	n += (size_t)snprintf(body + n, sizeof(body) - n, "5\r\nhello\r\nff\r\n");
	for (int i = 0; i < 255; i++)
		body[n++] = want[w + (size_t)i] = (char)('a' + i % 26);
	memcpy(want, "hello", 5);
	for (int i = 0; i < 255; i++)
		want[5 + i] = (char)('a' + i % 26);
	w = 260;
	n += (size_t)snprintf(body + n, sizeof(body) - n, "\r\n0\r\nTrailer: x\r\n\r\n");
	for (size_t step = 1; step <= n; step++) {
		int rc;
		size_t got;
		char *s = dechunk_in_steps(body, n, step, &rc, &got);
		if (rc != 1 || got != w || memcmp(s, want, w) != 0) {
			fprintf(stderr, "step %zu: rc %d, %zu bytes\n", step, rc, got);
			check_failures++;
		}
		free(s);
	}
}

static void test_rechunk_and_errors(void)
{
	struct http1_chunked dec;
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	uint64_t moved = 0;

	http1_chunked_init(&dec);
	evbuffer_add(in, "3\r\nabc\r\n0\r\n\r\nNEXT", 17);
	CHECK_INT(http1_buf_dechunk(&dec, in, out, true, &moved), 1);
	CHECK_INT(moved, 3);
	CHECK_INT(evbuffer_get_length(in), 4); /* the next message stays */
	char got[32] = { 0 };
	evbuffer_remove(out, got, sizeof(got) - 1);
	CHECK(strcmp(got, "3\r\nabc\r\n") == 0);

	http1_chunked_init(&dec);
	evbuffer_drain(in, evbuffer_get_length(in));
	evbuffer_add(in, "zz\r\n", 4);
	CHECK_INT(http1_buf_dechunk(&dec, in, out, false, &moved), -1);
	evbuffer_free(in);
	evbuffer_free(out);
}

/* A head built in the 2 KiB staging buffer comes out byte for byte: fields
 * that fit, one that does not fit what is left, one larger than the
 * buffer, numbers. */
static void test_head_builder(void)
{
	struct evbuffer *out = evbuffer_new();
	struct http1_head h;
	char *big = malloc(3000), *mid = malloc(1500), *want = malloc(8192);
	size_t n;

	memset(big, 'b', 3000);
	memset(mid, 'm', 1500);
	http1_head_begin(&h, out);
	http1_head_status_line(&h, 404, "Not Found");
	http1_head_field(&h, "A", 1, "1", 1);
	http1_head_field(&h, "Mid", 3, mid, 1000);
	http1_head_field(&h, "Mid2", 4, mid, 1500);   /* does not fit the rest */
	http1_head_field(&h, "Big", 3, big, 3000);    /* larger than the buffer */
	http1_head_u64_field(&h, "Content-Length", 18446744073709551615ull);
	http1_head_add(&h, "\r\n", 2);
	http1_head_flush(&h);
	n = (size_t)snprintf(want, 8192, "HTTP/1.1 404 Not Found\r\nA: 1\r\nMid: %.*s\r\n"
			     "Mid2: %.*s\r\nBig: %.*s\r\nContent-Length: 18446744073709551615\r\n\r\n",
			     1000, mid, 1500, mid, 3000, big);
	CHECK_INT(evbuffer_get_length(out), n);
	if (evbuffer_get_length(out) == n)
		CHECK(memcmp(evbuffer_pullup(out, -1), want, n) == 0);
	evbuffer_free(out);
	free(big);
	free(mid);
	free(want);
}

int main(void)
{
	test_head_builder();
	test_split_everywhere();
	test_rechunk_and_errors();
	CHECK_DONE();
}
