/* Fuzzes the streaming dechunker (util/http1_buf) the way a connection
 * drives it: the body arrives in pieces and each read is handed over at
 * once. The input is 1 flag byte, 8 piece lengths, then the stream; the
 * stream is fed cut at those lengths (in turn, each 1..256 bytes) and must
 * give what a one-shot decode gives: the same result, data and stopping
 * point. Re-chunked output (out_chunked) must decode to the same data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "test/fuzz/fuzz_check.h"
#include "util/http1_buf.h"

#define FUZZ_N_CUTS 8

struct fuzz_decode {
	int rc;           /* of the last http1_buf_dechunk call */
	uint64_t moved;
	size_t used;      /* stream bytes consumed */
	struct evbuffer *out;
};

static void fuzz_decode_init(struct fuzz_decode *d)
{
	memset(d, 0, sizeof(*d));
	d->out = evbuffer_new();
	FUZZ_CHECK(d->out != NULL);
}

/* Feeds buf[0..len) in pieces of cuts[i % 8] + 1 bytes, each added as its
 * own evbuffer chain; cuts == NULL feeds it whole. */
static void fuzz_decode(const char *buf, size_t len, const uint8_t *cuts, bool out_chunked,
			struct fuzz_decode *d)
{
	struct http1_chunked dec;
	struct evbuffer *in = evbuffer_new();
	size_t fed = 0;

	FUZZ_CHECK(in != NULL);
	http1_chunked_init(&dec);
	for (unsigned i = 0; fed < len; i++) {
		size_t piece = cuts ? (size_t)cuts[i % FUZZ_N_CUTS] + 1 : len;
		piece = OG_MIN(piece, len - fed);
		evbuffer_add(in, buf + fed, piece);
		fed += piece;
		uint64_t before = d->moved;
		d->rc = http1_buf_dechunk(&dec, in, d->out, out_chunked, &d->moved);
		FUZZ_CHECK(d->rc >= -1 && d->rc <= 1);
		FUZZ_CHECK(d->moved >= before && d->moved - before <= piece);
		if (d->rc != 0)
			break;
		FUZZ_CHECK(evbuffer_get_length(in) == 0);
	}
	d->used = fed - evbuffer_get_length(in);
	evbuffer_free(in);
}

static bool fuzz_same_bytes(struct evbuffer *a, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(a);

	if (n != evbuffer_get_length(b))
		return false;
	return n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0;
}

/* Re-chunked output plus a last-chunk decodes to the plain data. */
static void fuzz_check_rechunked(struct fuzz_decode *chunked, struct fuzz_decode *plain)
{
	struct fuzz_decode again;

	evbuffer_add(chunked->out, "0\r\n\r\n", 5);
	size_t n = evbuffer_get_length(chunked->out);
	fuzz_decode_init(&again);
	fuzz_decode((const char *)evbuffer_pullup(chunked->out, -1), n, NULL, false, &again);
	FUZZ_CHECK(again.rc == 1 && again.used == n);
	FUZZ_CHECK(again.moved == plain->moved);
	FUZZ_CHECK(fuzz_same_bytes(again.out, plain->out));
	evbuffer_free(again.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_decode whole, cut;

	if (size < 1 + FUZZ_N_CUTS)
		return 0;
	bool out_chunked = data[0] & 1;
	const uint8_t *cuts = data + 1;
	const char *buf = (const char *)data + 1 + FUZZ_N_CUTS;
	size_t len = size - 1 - FUZZ_N_CUTS;

	fuzz_decode_init(&whole);
	fuzz_decode_init(&cut);
	fuzz_decode(buf, len, NULL, false, &whole);
	fuzz_decode(buf, len, cuts, out_chunked, &cut);
	FUZZ_CHECK(whole.moved == evbuffer_get_length(whole.out));
	FUZZ_CHECK(whole.used <= len && (whole.rc != 0 || whole.used == len));
	/* where the stream is cut changes nothing */
	FUZZ_CHECK(cut.rc == whole.rc && cut.moved == whole.moved);
	if (whole.rc == 1)
		FUZZ_CHECK(cut.used == whole.used);
	if (out_chunked)
		fuzz_check_rechunked(&cut, &whole);
	else
		FUZZ_CHECK(fuzz_same_bytes(cut.out, whole.out));
	evbuffer_free(whole.out);
	evbuffer_free(cut.out);
	return 0;
}
