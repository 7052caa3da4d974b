/* Fuzz harness for proxy/http1: the same bytes go to the request parser, the
 * response parser (first byte picks the request method) and the chunked
 * decoder, and the results are checked against invariants that hold for any
 * input. Invariant failures abort, so both libFuzzer and fuzz_main.c report
 * them. */
#include "test/fuzz/fuzz_check.h"
#include "util/http1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small limits, so that short inputs reach the limit paths too. */
#define FUZZ_MAX_HEAD 2048
#define FUZZ_MAX_HEADERS 16

static const struct http1_limits fuzz_limits = { FUZZ_MAX_HEAD, FUZZ_MAX_HEADERS };

static bool fuzz_inside(struct og_str s, const char *buf, size_t len)
{
	return s.p != NULL && s.p >= buf && s.n <= len && (size_t)(s.p - buf) <= len - s.n;
}

static void fuzz_check_headers(const struct http1_header *h, size_t n, const char *buf, size_t len)
{
	FUZZ_CHECK(n <= FUZZ_MAX_HEADERS);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(fuzz_inside(h[i].name, buf, len));
		FUZZ_CHECK(fuzz_inside(h[i].value, buf, len));
		FUZZ_CHECK(h[i].name.n > 0);
		FUZZ_CHECK(memchr(h[i].name.p, ':', h[i].name.n) == NULL);
		FUZZ_CHECK(memchr(h[i].value.p, '\r', h[i].value.n) == NULL);
		FUZZ_CHECK(memchr(h[i].value.p, '\n', h[i].value.n) == NULL);
		FUZZ_CHECK(memchr(h[i].value.p, '\0', h[i].value.n) == NULL);
		if (h[i].value.n > 0) {
			char first = h[i].value.p[0], last = h[i].value.p[h[i].value.n - 1];
			FUZZ_CHECK(first != ' ' && first != '\t' && last != ' ' && last != '\t');
		}
		/* exercise the lookups on whatever was parsed */
		FUZZ_CHECK(http1_find_header(h, n, "host") == http1_find_header(h, n, "HOST"));
		(void)http1_is_hop_by_hop(h[i].name, h, n);
	}
}

/* Checks that lie in the shape of any parse result. */
static void fuzz_check_result(ssize_t ret, enum http1_error err, const char *buf, size_t len)
{
	FUZZ_CHECK(ret >= -1);
	FUZZ_CHECK(ret == -1 ? err != HTTP1_E_NONE : err == HTTP1_E_NONE);
	FUZZ_CHECK(http1_error_str(err) != NULL);
	FUZZ_CHECK(err == HTTP1_E_NONE || http1_error_status(err) >= 400);
	if (ret == 0)
		FUZZ_CHECK(len < FUZZ_MAX_HEAD);
	if (ret > 0) {
		FUZZ_CHECK((size_t)ret <= len && (size_t)ret <= FUZZ_MAX_HEAD);
		FUZZ_CHECK(ret >= 4 && memcmp(buf + ret - 4, "\r\n\r\n", 4) == 0);
	}
}

/* A complete head is found again at exactly its length, and one byte less
 * is never complete; the prefix is a fresh allocation so that ASan sees any
 * read past it. */
typedef ssize_t (*fuzz_parse_fn)(const char *buf, size_t len, void *ctx, enum http1_error *err);

static void fuzz_check_prefixes(fuzz_parse_fn parse, void *ctx, const char *buf, ssize_t ret)
{
	enum http1_error err;
	char *copy = malloc((size_t)ret);

	FUZZ_CHECK(copy != NULL);
	memcpy(copy, buf, (size_t)ret);
	FUZZ_CHECK(parse(copy, (size_t)ret, ctx, &err) == ret);
	FUZZ_CHECK(parse(copy, (size_t)ret - 1, ctx, &err) == 0);
	free(copy);
}

static ssize_t fuzz_parse_request(const char *buf, size_t len, void *ctx, enum http1_error *err)
{
	struct http1_request *req = ctx;
	return http1_parse_request(buf, len, &fuzz_limits, req, err);
}

static void fuzz_request(const char *buf, size_t len)
{
	struct http1_header headers[FUZZ_MAX_HEADERS];
	struct http1_request req = { .headers = headers };
	enum http1_error err = HTTP1_E_NONE;
	ssize_t ret = http1_parse_request(buf, len, &fuzz_limits, &req, &err);

	fuzz_check_result(ret, err, buf, len);
	if (ret <= 0)
		return;
	FUZZ_CHECK(req.headers == headers);
	FUZZ_CHECK(fuzz_inside(req.method_str, buf, (size_t)ret) && req.method_str.n > 0);
	FUZZ_CHECK(fuzz_inside(req.target, buf, (size_t)ret) && req.target.n > 0);
	FUZZ_CHECK(req.method == HTTP_M_OTHER || og_str_eq(req.method_str, http1_method_name(req.method)));
	FUZZ_CHECK(req.version_minor == 0 || req.version_minor == 1);
	FUZZ_CHECK(req.body != HTTP1_BODY_UNTIL_CLOSE);
	FUZZ_CHECK(req.body == HTTP1_BODY_LENGTH || req.content_length == 0);
	FUZZ_CHECK(req.content_length <= (uint64_t)INT64_MAX);
	FUZZ_CHECK(req.body != HTTP1_BODY_CHUNKED || req.version_minor == 1);
	FUZZ_CHECK(!req.expect_continue || req.version_minor == 1);
	FUZZ_CHECK(req.version_minor == 0 || http1_find_header(headers, req.n_headers, "host") != NULL);
	fuzz_check_headers(headers, req.n_headers, buf, (size_t)ret);
	fuzz_check_prefixes(fuzz_parse_request, &req, buf, ret);
}

struct fuzz_resp_ctx {
	struct http1_response *resp;
	enum http_method method;
};

static ssize_t fuzz_parse_response(const char *buf, size_t len, void *ctx, enum http1_error *err)
{
	struct fuzz_resp_ctx *c = ctx;
	return http1_parse_response(buf, len, &fuzz_limits, c->method, c->resp, err);
}

static void fuzz_response(enum http_method method, const char *buf, size_t len)
{
	struct http1_header headers[FUZZ_MAX_HEADERS];
	struct http1_response resp = { .headers = headers };
	struct fuzz_resp_ctx ctx = { &resp, method };
	enum http1_error err = HTTP1_E_NONE;
	ssize_t ret = http1_parse_response(buf, len, &fuzz_limits, method, &resp, &err);

	fuzz_check_result(ret, err, buf, len);
	if (ret <= 0)
		return;
	FUZZ_CHECK(resp.headers == headers);
	FUZZ_CHECK(resp.status >= 100 && resp.status <= 599);
	FUZZ_CHECK(fuzz_inside(resp.reason, buf, (size_t)ret));
	FUZZ_CHECK(resp.version_minor == 0 || resp.version_minor == 1);
	bool no_body = method == HTTP_M_HEAD || resp.status < 200 || resp.status == 204 || resp.status == 304;
	FUZZ_CHECK(!no_body || resp.body == HTTP1_BODY_NONE);
	FUZZ_CHECK(no_body || resp.body != HTTP1_BODY_NONE);
	FUZZ_CHECK(resp.body != HTTP1_BODY_UNTIL_CLOSE || !resp.keep_alive);
	FUZZ_CHECK(resp.has_content_length || resp.content_length == 0);
	FUZZ_CHECK(resp.body != HTTP1_BODY_LENGTH || resp.has_content_length);
	FUZZ_CHECK(resp.content_length <= (uint64_t)INT64_MAX);
	fuzz_check_headers(headers, resp.n_headers, buf, (size_t)ret);
	fuzz_check_prefixes(fuzz_parse_response, &ctx, buf, ret);
}

struct fuzz_chunk_run {
	enum http1_chunk_status status;
	size_t pos;          /* stream bytes used: framing and data */
	uint64_t data_len;
	uint64_t data_hash;  /* FNV-1a over the data bytes, to compare runs */
};

/* Drives the decoder like the connection code: offer at most step bytes,
 * move data itself, report it with took(). */
static void fuzz_chunk_run(const char *buf, size_t len, size_t step, struct fuzz_chunk_run *run)
{
	struct http1_chunked dec;

	http1_chunked_init(&dec);
	memset(run, 0, sizeof(*run));
	run->data_hash = 14695981039346656037ull;
	for (;;) {
		size_t avail = OG_MIN(step, len - run->pos), consumed = (size_t)-1;
		enum http1_chunk_status st = http1_chunked_parse(&dec, buf + run->pos, avail, &consumed);

		FUZZ_CHECK(consumed <= avail);
		FUZZ_CHECK(st != HTTP1_CHUNK_NEED_MORE || consumed == avail);
		run->pos += consumed;
		run->status = st;
		if (st == HTTP1_CHUNK_DATA) {
			FUZZ_CHECK(dec.data_left > 0 && dec.data_left <= (uint64_t)INT64_MAX);
			size_t take = (size_t)OG_MIN((uint64_t)OG_MIN(step, len - run->pos), dec.data_left);
			if (take == 0)
				return;
			for (size_t i = 0; i < take; i++) {
				run->data_hash ^= (unsigned char)buf[run->pos + i];
				run->data_hash *= 1099511628211ull;
			}
			run->data_len += take;
			run->pos += take;
			http1_chunked_took(&dec, take);
			continue;
		}
		if (st != HTTP1_CHUNK_NEED_MORE || run->pos == len)
			break;
	}
	if (run->status == HTTP1_CHUNK_DONE || run->status == HTTP1_CHUNK_ERROR) {
		/* both are final */
		size_t consumed = (size_t)-1;
		FUZZ_CHECK(http1_chunked_parse(&dec, buf, len, &consumed) == run->status && consumed == 0);
	}
}

static void fuzz_chunked(const char *buf, size_t len, size_t step)
{
	struct fuzz_chunk_run whole, bytewise, stepped;

	fuzz_chunk_run(buf, len, (size_t)-1, &whole);
	fuzz_chunk_run(buf, len, 1, &bytewise);
	fuzz_chunk_run(buf, len, step, &stepped);
	FUZZ_CHECK(whole.status != HTTP1_CHUNK_DONE || whole.pos >= 5);
	/* how the stream is cut must not change anything: the decoder's state
	 * depends only on the bytes, and errors stop at the same byte */
	FUZZ_CHECK(bytewise.status == whole.status && stepped.status == whole.status);
	FUZZ_CHECK(bytewise.pos == whole.pos && stepped.pos == whole.pos);
	FUZZ_CHECK(bytewise.data_len == whole.data_len && stepped.data_len == whole.data_len);
	FUZZ_CHECK(bytewise.data_hash == whole.data_hash && stepped.data_hash == whole.data_hash);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;

	fuzz_request(buf, size);
	if (size > 0) {
		fuzz_response((enum http_method)(data[0] % (HTTP_M_OPTIONS + 1)), buf + 1, size - 1);
		fuzz_chunked(buf + 1, size - 1, (size_t)(data[0] % 13) + 1);
	}
	fuzz_chunked(buf, size, 7);
	return 0;
}
