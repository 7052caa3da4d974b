/* Unit tests for proxy/http1: head parsers, helpers, chunked decoder. */
#include "util/http1.h"

#include "test/unit/check.h"

#include <stdlib.h>

#define MAX_HDRS 32

static struct http1_header hdrs[MAX_HDRS];
static const struct http1_limits def_limits = { 8192, MAX_HDRS };

static ssize_t req_parse_n(const char *s, size_t n, const struct http1_limits *lim, struct http1_request *req,
			   enum http1_error *err)
{
	memset(req, 0xa5, sizeof(*req));
	req->headers = hdrs;
	return http1_parse_request(s, n, lim, req, err);
}

static ssize_t req_parse(const char *s, struct http1_request *req, enum http1_error *err)
{
	return req_parse_n(s, strlen(s), &def_limits, req, err);
}

static ssize_t resp_parse_n(const char *s, size_t n, enum http_method m, struct http1_response *resp,
			    enum http1_error *err)
{
	memset(resp, 0xa5, sizeof(*resp));
	resp->headers = hdrs;
	return http1_parse_response(s, n, &def_limits, m, resp, err);
}

static ssize_t resp_parse(const char *s, enum http_method m, struct http1_response *resp, enum http1_error *err)
{
	return resp_parse_n(s, strlen(s), m, resp, err);
}

/* A request that must be rejected with exactly this error. */
#define REQ_REJECT(s, e)                                                  \
	do {                                                              \
		struct http1_request r_;                                  \
		enum http1_error e_ = HTTP1_E_NONE;                       \
		CHECK_INT(req_parse((s), &r_, &e_), -1);                  \
		CHECK_INT(e_, (e));                                       \
	} while (0)

/* Same for a string literal that contains NUL bytes. */
#define REQ_REJECT_LIT(s, e)                                              \
	do {                                                              \
		struct http1_request r_;                                  \
		enum http1_error e_ = HTTP1_E_NONE;                       \
		CHECK_INT(req_parse_n((s), sizeof(s) - 1, &def_limits, &r_, &e_), -1); \
		CHECK_INT(e_, (e));                                       \
	} while (0)

#define RESP_REJECT(s, m, e)                                              \
	do {                                                              \
		struct http1_response r_;                                 \
		enum http1_error e_ = HTTP1_E_NONE;                       \
		CHECK_INT(resp_parse((s), (m), &r_, &e_), -1);            \
		CHECK_INT(e_, (e));                                       \
	} while (0)

/* A request that must parse completely; leaves the result in *r. */
#define REQ_OK(s, r)                                                      \
	do {                                                              \
		enum http1_error e_ = HTTP1_E_NONE;                       \
		CHECK_INT(req_parse((s), (r), &e_), strlen(s));           \
		CHECK_INT(e_, HTTP1_E_NONE);                              \
	} while (0)

#define RESP_OK(s, m, r)                                                  \
	do {                                                              \
		enum http1_error e_ = HTTP1_E_NONE;                       \
		CHECK_INT(resp_parse((s), (m), (r), &e_), strlen(s));     \
		CHECK_INT(e_, HTTP1_E_NONE);                              \
	} while (0)

static void test_request_basic(void)
{
	struct http1_request r;
	const char *s = "GET /v2/library/alpine/manifests/3.19 HTTP/1.1\r\n"
			"Host: registry.example:5000\r\n"
			"User-Agent: containerd/1.7\r\n"
			"Accept:application/vnd.oci.image.index.v1+json  \t\r\n"
			"X-Empty:\r\n"
			"X-Obs: caf\xc3\xa9 \x80\xff\r\n"
			"\r\n";

	REQ_OK(s, &r);
	CHECK_INT(r.method, HTTP_M_GET);
	CHECK_MEM_STR(r.method_str.p, r.method_str.n, "GET");
	CHECK_MEM_STR(r.target.p, r.target.n, "/v2/library/alpine/manifests/3.19");
	CHECK_INT(r.version_minor, 1);
	CHECK_INT(r.n_headers, 5);
	CHECK(r.headers == hdrs);
	CHECK_MEM_STR(hdrs[0].name.p, hdrs[0].name.n, "Host");
	CHECK_MEM_STR(hdrs[0].value.p, hdrs[0].value.n, "registry.example:5000");
	CHECK_MEM_STR(hdrs[1].name.p, hdrs[1].name.n, "User-Agent");
	CHECK_MEM_STR(hdrs[1].value.p, hdrs[1].value.n, "containerd/1.7");
	CHECK_MEM_STR(hdrs[2].name.p, hdrs[2].name.n, "Accept");
	CHECK_MEM_STR(hdrs[2].value.p, hdrs[2].value.n, "application/vnd.oci.image.index.v1+json");
	CHECK_MEM_STR(hdrs[3].name.p, hdrs[3].name.n, "X-Empty");
	CHECK_INT(hdrs[3].value.n, 0);
	CHECK_MEM_STR(hdrs[4].value.p, hdrs[4].value.n, "caf\xc3\xa9 \x80\xff");
	CHECK_INT(r.body, HTTP1_BODY_NONE);
	CHECK_INT(r.content_length, 0);
	CHECK(r.keep_alive);
	CHECK(!r.expect_continue);

	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX:  \t v a \t \r\n\r\n", &r);
	CHECK_MEM_STR(hdrs[1].value.p, hdrs[1].value.n, "v a");
}

static void test_request_methods(void)
{
	static const struct {
		const char *line;
		enum http_method m;
	} cases[] = {
		{ "GET", HTTP_M_GET },         { "HEAD", HTTP_M_HEAD },     { "POST", HTTP_M_POST },
		{ "PUT", HTTP_M_PUT },         { "PATCH", HTTP_M_PATCH },   { "DELETE", HTTP_M_DELETE },
		{ "OPTIONS", HTTP_M_OPTIONS }, { "get", HTTP_M_OTHER },     { "CONNECT", HTTP_M_OTHER },
		{ "GETX", HTTP_M_OTHER },      { "M-SEARCH", HTTP_M_OTHER }, { "G", HTTP_M_OTHER },
	};
	char buf[128];

	for (size_t i = 0; i < OG_ARRAY_LEN(cases); i++) {
		struct http1_request r;
		snprintf(buf, sizeof(buf), "%s * HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].line);
		REQ_OK(buf, &r);
		CHECK_INT(r.method, cases[i].m);
		CHECK_MEM_STR(r.method_str.p, r.method_str.n, cases[i].line);
		CHECK_MEM_STR(r.target.p, r.target.n, "*");
	}
	CHECK(strcmp(http1_method_name(HTTP_M_GET), "GET") == 0);
	CHECK(strcmp(http1_method_name(HTTP_M_OPTIONS), "OPTIONS") == 0);
	CHECK(strcmp(http1_method_name(HTTP_M_DELETE), "DELETE") == 0);
	CHECK(strcmp(http1_method_name(HTTP_M_OTHER), "OTHER") == 0);
	CHECK(strcmp(http1_method_name((enum http_method)99), "OTHER") == 0);
}

static void test_request_bodies(void)
{
	struct http1_request r;

	REQ_OK("PUT /v2/a/blobs/uploads/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 1234\r\n\r\n", &r);
	CHECK_INT(r.method, HTTP_M_PUT);
	CHECK_INT(r.body, HTTP1_BODY_LENGTH);
	CHECK_INT(r.content_length, 1234);

	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &r);
	CHECK_INT(r.body, HTTP1_BODY_LENGTH);
	CHECK_INT(r.content_length, 0);

	REQ_OK("PATCH / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &r);
	CHECK_INT(r.body, HTTP1_BODY_CHUNKED);
	REQ_OK("PATCH / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  ChUnKeD \r\n\r\n", &r);
	CHECK_INT(r.body, HTTP1_BODY_CHUNKED);

	/* duplicates and lists of equal values are one value */
	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", &r);
	CHECK_INT(r.body, HTTP1_BODY_LENGTH);
	CHECK_INT(r.content_length, 5);
	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", &r);
	CHECK_INT(r.content_length, 5);
	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 ,5,\t5\r\n\r\n", &r);
	CHECK_INT(r.content_length, 5);
	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", &r);
	CHECK_INT(r.content_length, 7);
	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", &r);
	CHECK(r.content_length == 9223372036854775807ull);

	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &r);
	CHECK(r.expect_continue);
	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n", &r);
	CHECK(r.expect_continue);
	REQ_OK("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &r);
	CHECK(!r.expect_continue);
	REQ_OK("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", &r);
	CHECK(!r.expect_continue);
}

static void test_request_connection(void)
{
	struct http1_request r;

	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &r);
	CHECK(!r.keep_alive);
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", &r);
	CHECK(!r.keep_alive);
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-foo\r\nConnection: ,close,\r\n\r\n", &r);
	CHECK(!r.keep_alive);
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, xclose\r\n\r\n", &r);
	CHECK(r.keep_alive);
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", &r);
	CHECK(r.keep_alive);

	REQ_OK("GET / HTTP/1.0\r\n\r\n", &r);
	CHECK_INT(r.version_minor, 0);
	CHECK(!r.keep_alive);
	REQ_OK("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
	CHECK(r.keep_alive);
	REQ_OK("GET / HTTP/1.0\r\nConnection: upgrade, Keep-Alive\r\n\r\n", &r);
	CHECK(r.keep_alive);
	REQ_OK("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &r);
	CHECK(!r.keep_alive);
}

static void test_request_framing_position(void)
{
	struct http1_request r;
	enum http1_error err;
	const char *head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	char buf[256];

	/* bytes after the head belong to the body or the next request */
	snprintf(buf, sizeof(buf), "%sGET /next HTTP/1.1\r\n", head);
	CHECK_INT(req_parse(buf, &r, &err), strlen(head));

	/* leading empty lines are skipped but counted */
	snprintf(buf, sizeof(buf), "\r\n%s", head);
	CHECK_INT(req_parse(buf, &r, &err), strlen(head) + 2);
	CHECK_MEM_STR(r.target.p, r.target.n, "/");
	snprintf(buf, sizeof(buf), "\r\n\r\n%s", head);
	CHECK_INT(req_parse(buf, &r, &err), strlen(head) + 4);
	snprintf(buf, sizeof(buf), "\r\n\r\n\r\n%s", head);
	REQ_REJECT(buf, HTTP1_E_REQUEST_LINE);
	CHECK_INT(req_parse("\r\n", &r, &err), 0);
	CHECK_INT(req_parse("\r\n\r", &r, &err), 0);
	REQ_REJECT("\n", HTTP1_E_BARE_CR);
	REQ_REJECT("\r\nGET / HTTP/1.1\nHost: a\r\n\r\n", HTTP1_E_BARE_CR);
}

static void test_incremental(void)
{
	const char *heads[] = {
		"GET /v2/ HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\n\r\n",
		"\r\nPUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
	};

	for (size_t h = 0; h < OG_ARRAY_LEN(heads); h++) {
		size_t n = strlen(heads[h]);
		struct http1_request r;
		enum http1_error err;

		for (size_t i = 0; i < n; i++) {
			/* a copy of exactly i bytes, so ASan sees any over-read */
			char *p = malloc(i ? i : 1);
			memcpy(p, heads[h], i);
			err = HTTP1_E_NONE;
			CHECK_INT(req_parse_n(p, i, &def_limits, &r, &err), 0);
			CHECK_INT(err, HTTP1_E_NONE);
			free(p);
		}
		CHECK_INT(req_parse_n(heads[h], n, &def_limits, &r, &err), n);
	}

	const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
	for (size_t i = 0; i < strlen(resp); i++) {
		struct http1_response r;
		enum http1_error err = HTTP1_E_NONE;
		char *p = malloc(i ? i : 1);
		memcpy(p, resp, i);
		CHECK_INT(resp_parse_n(p, i, HTTP_M_GET, &r, &err), 0);
		CHECK_INT(err, HTTP1_E_NONE);
		free(p);
	}
}

static void test_request_line_errors(void)
{
	REQ_REJECT("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET /\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET / http/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET / HTTP/10.0\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET / HTTP/1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT_LIT("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_REQUEST_LINE);
	REQ_REJECT("GET / HTTP/1.1\r\n\r\n\r\n", HTTP1_E_HOST);
	REQ_REJECT("\r\n\r\n\r\n", HTTP1_E_REQUEST_LINE);

	REQ_REJECT("GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTP1_E_VERSION);
	REQ_REJECT("GET / HTTP/1.2\r\nHost: a\r\n\r\n", HTTP1_E_VERSION);
	REQ_REJECT("GET / HTTP/0.9\r\nHost: a\r\n\r\n", HTTP1_E_VERSION);
}

static void test_field_errors(void)
{
	REQ_REJECT("GET / HTTP/1.1\r\nHost : a\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX\x80: b\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX(: b\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b[0m\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT_LIT("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", HTTP1_E_HEADER_SYNTAX);
	REQ_REJECT_LIT("GET / HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n", HTTP1_E_HEADER_SYNTAX);

	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", HTTP1_E_OBS_FOLD);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", HTTP1_E_OBS_FOLD);
	REQ_REJECT("GET / HTTP/1.1\r\n Host: a\r\n\r\n", HTTP1_E_OBS_FOLD);

	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", HTTP1_E_BARE_CR);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n", HTTP1_E_BARE_CR);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", HTTP1_E_BARE_CR);
	REQ_REJECT("GET / HTTP/1.1\nHost: a\r\n\r\n", HTTP1_E_BARE_CR);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\n\n", HTTP1_E_BARE_CR);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\n\n", HTTP1_E_BARE_CR);
	REQ_REJECT("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_BARE_CR);
	/* line-ending errors are reported before the head is complete */
	REQ_REJECT("GET / HTTP/1.1\nHo", HTTP1_E_BARE_CR);
	REQ_REJECT("GET / HTTP/1.1\r\nX: a\rb", HTTP1_E_BARE_CR);
}

/* Field values are checked eight bytes at a time: every byte value at every
 * position of a 24-byte value (three words and their tails) must get the
 * same verdict as the grammar (field-vchar, SP, HTAB, obs-text). */
static void test_field_value_bytes(void)
{
	for (int b = 0; b < 256; b++) {
		bool allowed = b == '\t' || b == ' ' || (b >= 0x21 && b != 0x7f);
		if (b == '\r' || b == '\n')
			continue; /* line ends: tested above */
		for (size_t pos = 1; pos < 23; pos++) {
			char value[25], msg[600];
			struct http1_request r;
			enum http1_error e = HTTP1_E_NONE;

			memset(value, 'v', 24);
			value[24] = '\0';
			value[pos] = (char)b;
			int n = snprintf(msg, sizeof(msg), "GET / HTTP/1.1\r\nHost: a\r\nX: ");
			memcpy(msg + n, value, 24);
			n += 24;
			n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\r\n\r\n");
			ssize_t got = req_parse_n(msg, (size_t)n, &def_limits, &r, &e);
			if (allowed) {
				CHECK_INT(got, n);
				CHECK_INT(r.headers[1].value.n, 24);
			} else {
				CHECK_INT(got, -1);
				CHECK_INT(e, HTTP1_E_HEADER_SYNTAX);
			}
		}
	}
}

static void test_content_length_errors(void)
{
	static const char *const bad[] = {
		"abc", "-5", "+5", "5 5", "5, 6", "", "5,", ",5", "5,,5", "0x5", "5.0", "1e3", "\"5\"",
		"9223372036854775808", "18446744073709551616", "99999999999999999999999999",
	};
	char buf[256];

	for (size_t i = 0; i < OG_ARRAY_LEN(bad); i++) {
		snprintf(buf, sizeof(buf), "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", bad[i]);
		REQ_REJECT(buf, HTTP1_E_BAD_CONTENT_LENGTH);
	}
	REQ_REJECT("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		   HTTP1_E_BAD_CONTENT_LENGTH);
	REQ_REJECT("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 6\r\n\r\n",
		   HTTP1_E_BAD_CONTENT_LENGTH);
	REQ_REJECT("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\nContent-Length: 0\r\n\r\n",
		   HTTP1_E_BAD_CONTENT_LENGTH);
}

static void test_transfer_encoding_errors(void)
{
	static const char *const bad[] = {
		"gzip, chunked", "chunked, gzip", "identity", "gzip", "chunked, chunked", "", ", chunked",
		"chunked,", "chunked;x=1", "chunked chunked", "chunk", "\"chunked\"", "x-chunked",
	};
	char buf[256];

	for (size_t i = 0; i < OG_ARRAY_LEN(bad); i++) {
		snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: %s\r\n\r\n", bad[i]);
		REQ_REJECT(buf, HTTP1_E_BAD_TRANSFER_ENCODING);
	}
	REQ_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		   HTTP1_E_BAD_TRANSFER_ENCODING);
	REQ_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
		   HTTP1_E_BAD_TRANSFER_ENCODING);
	REQ_REJECT("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_E_BAD_TRANSFER_ENCODING);

	REQ_REJECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		   HTTP1_E_CL_AND_TE);
	REQ_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		   HTTP1_E_CL_AND_TE);
	REQ_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: x\r\n\r\n",
		   HTTP1_E_CL_AND_TE);
	REQ_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 0\r\n\r\n",
		   HTTP1_E_CL_AND_TE);
}

static void test_host(void)
{
	struct http1_request r;

	REQ_REJECT("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", HTTP1_E_HOST);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HTTP1_E_HOST);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", HTTP1_E_HOST);
	REQ_REJECT("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", HTTP1_E_HOST);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP1_E_HOST);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", HTTP1_E_HOST);
	REQ_REJECT("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HTTP1_E_HOST);
	REQ_OK("GET / HTTP/1.1\r\nhOsT: [::1]:5000\r\n\r\n", &r);
	REQ_OK("GET / HTTP/1.1\r\nHost:\r\n\r\n", &r);
	REQ_OK("GET / HTTP/1.0\r\n\r\n", &r);
	REQ_OK("GET / HTTP/1.0\r\nHost: x.example\r\n\r\n", &r);
}

/* More lines than the parser's record of line ends (48): the rest are
 * found as before, each name and value in its place. */
static size_t many_lines_head(char *head, size_t cap, const char *first)
{
	size_t n = (size_t)snprintf(head, cap, "%s\r\n", first);

	for (int i = 0; i < 70; i++)
		n += (size_t)snprintf(head + n, cap - n, "H%d: v%d\r\n", i, i);
	return n + (size_t)snprintf(head + n, cap - n, "\r\n");
}

static void test_many_lines(void)
{
	static struct http1_header many[100];
	struct http1_limits lim = { 65536, 100 };
	struct http1_request r = { .headers = many };
	struct http1_response resp = { .headers = many };
	enum http1_error err;
	char head[4096], want[16];
	size_t n = many_lines_head(head, sizeof(head), "GET / HTTP/1.1\r\nHost: a");

	CHECK_INT(http1_parse_request(head, n, &lim, &r, &err), (ssize_t)n);
	CHECK_INT(r.n_headers, 71);
	for (int i = 0; i < 70 && r.n_headers == 71; i++) {
		snprintf(want, sizeof(want), "H%d", i);
		CHECK_MEM_STR(r.headers[i + 1].name.p, r.headers[i + 1].name.n, want);
		snprintf(want, sizeof(want), "v%d", i);
		CHECK_MEM_STR(r.headers[i + 1].value.p, r.headers[i + 1].value.n, want);
	}
	n = many_lines_head(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: 0");
	CHECK_INT(http1_parse_response(head, n, &lim, HTTP_M_GET, &resp, &err), (ssize_t)n);
	CHECK_INT(resp.n_headers, 71);
	CHECK_MEM_STR(resp.headers[70].name.p, resp.headers[70].name.n, "H69");
	CHECK_MEM_STR(resp.headers[70].value.p, resp.headers[70].value.n, "v69");
}

static void test_limits(void)
{
	struct http1_request r;
	enum http1_error err;
	struct http1_limits lim = { 8192, 3 };
	const char *three = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n";
	const char *four = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n";

	CHECK_INT(req_parse_n(three, strlen(three), &lim, &r, &err), strlen(three));
	CHECK_INT(r.n_headers, 3);
	CHECK_INT(req_parse_n(four, strlen(four), &lim, &r, &err), -1);
	CHECK_INT(err, HTTP1_E_TOO_MANY_HEADERS);
	lim.max_headers = 0;
	CHECK_INT(req_parse_n("GET / HTTP/1.0\r\n\r\n", 18, &lim, &r, &err), 18);
	CHECK_INT(req_parse_n(three, strlen(three), &lim, &r, &err), -1);
	CHECK_INT(err, HTTP1_E_TOO_MANY_HEADERS);

	/* the head is exactly len(three) bytes: that size fits, one less does not */
	size_t n = strlen(three);
	lim.max_headers = MAX_HDRS;
	lim.max_head_bytes = n;
	CHECK_INT(req_parse_n(three, n, &lim, &r, &err), n);
	lim.max_head_bytes = n - 1;
	CHECK_INT(req_parse_n(three, n, &lim, &r, &err), -1);
	CHECK_INT(err, HTTP1_E_HEAD_TOO_LARGE);
	/* incomplete: need more below the limit, too large at or above it */
	CHECK_INT(req_parse_n(three, n - 2, &lim, &r, &err), 0);
	CHECK_INT(req_parse_n(three, n - 1, &lim, &r, &err), -1);
	CHECK_INT(err, HTTP1_E_HEAD_TOO_LARGE);

	char *big = malloc(20000);
	memcpy(big, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 29);
	memset(big + 29, 'a', 20000 - 29);
	CHECK_INT(req_parse_n(big, 20000, &def_limits, &r, &err), -1);
	CHECK_INT(err, HTTP1_E_HEAD_TOO_LARGE);
	CHECK_INT(req_parse_n(big, 8191, &def_limits, &r, &err), 0);
	free(big);
}

static void test_response_basic(void)
{
	struct http1_response r;

	RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nDocker-Content-Digest: sha256:ab\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.status, 200);
	CHECK_MEM_STR(r.reason.p, r.reason.n, "OK");
	CHECK_INT(r.version_minor, 1);
	CHECK_INT(r.n_headers, 2);
	CHECK_MEM_STR(hdrs[1].name.p, hdrs[1].name.n, "Docker-Content-Digest");
	CHECK_MEM_STR(hdrs[1].value.p, hdrs[1].value.n, "sha256:ab");
	CHECK_INT(r.body, HTTP1_BODY_LENGTH);
	CHECK_INT(r.content_length, 12);
	CHECK(r.has_content_length);
	CHECK(r.keep_alive);

	RESP_OK("HTTP/1.1 404 Not  Found \x80\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.status, 404);
	CHECK_MEM_STR(r.reason.p, r.reason.n, "Not  Found \x80");
	CHECK_INT(r.body, HTTP1_BODY_LENGTH);
	CHECK_INT(r.content_length, 0);

	RESP_OK("HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.status, 200);
	CHECK_INT(r.reason.n, 0);
	RESP_OK("HTTP/1.1 307\r\nLocation: https://s3/x\r\nContent-Length: 1\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.status, 307);
	CHECK_INT(r.reason.n, 0);

	/* HEAD: metadata only, never a body */
	RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 5242880\r\n\r\n", HTTP_M_HEAD, &r);
	CHECK_INT(r.body, HTTP1_BODY_NONE);
	CHECK_INT(r.content_length, 5242880);
	CHECK(r.has_content_length);
	CHECK(r.keep_alive);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_HEAD, &r);
	CHECK_INT(r.body, HTTP1_BODY_NONE);
	RESP_OK("HTTP/1.1 200 OK\r\n\r\n", HTTP_M_HEAD, &r);
	CHECK_INT(r.body, HTTP1_BODY_NONE);
	CHECK(r.keep_alive);
	CHECK(!r.has_content_length);

	RESP_OK("HTTP/1.1 204 No Content\r\n\r\n", HTTP_M_DELETE, &r);
	CHECK_INT(r.body, HTTP1_BODY_NONE);
	CHECK(r.keep_alive);
	RESP_OK("HTTP/1.1 304 Not Modified\r\nContent-Length: 77\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_NONE);
	CHECK_INT(r.content_length, 77);
	RESP_OK("HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_PUT, &r);
	CHECK_INT(r.status, 100);
	CHECK_INT(r.body, HTTP1_BODY_NONE);
	RESP_OK("HTTP/1.1 199 x\r\n\r\n", HTTP_M_PUT, &r);
	CHECK_INT(r.body, HTTP1_BODY_NONE);
	RESP_OK("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", HTTP_M_PATCH, &r);
	CHECK_INT(r.body, HTTP1_BODY_LENGTH);
	RESP_OK("HTTP/1.1 599 x\r\nContent-Length: 0\r\n\r\n", HTTP_M_OTHER, &r);
	CHECK_INT(r.status, 599);
}

static void test_response_framing(void)
{
	struct http1_response r;

	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_CHUNKED);
	CHECK(r.keep_alive);
	CHECK(!r.has_content_length);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_CHUNKED);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_CHUNKED);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: x;a=b ;c=\"d,e\", chunked\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_CHUNKED);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: x; a = \"q\\\"\\\\\", chunked\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_CHUNKED);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_UNTIL_CLOSE);
	CHECK(!r.keep_alive);
	RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_UNTIL_CLOSE);
	CHECK(!r.keep_alive);

	RESP_OK("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_UNTIL_CLOSE);
	CHECK(!r.keep_alive);

	RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.body, HTTP1_BODY_LENGTH);
	CHECK(!r.keep_alive);
	RESP_OK("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.version_minor, 0);
	CHECK(!r.keep_alive);
	RESP_OK("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", HTTP_M_GET, &r);
	CHECK(r.keep_alive);
	RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\nContent-Length: 4\r\n\r\n", HTTP_M_GET, &r);
	CHECK_INT(r.content_length, 4);

	RESP_REJECT("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_CL_AND_TE);
	RESP_REJECT("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_HEAD,
		    HTTP1_E_CL_AND_TE);
	RESP_REJECT("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_CONTENT_LENGTH);
	RESP_REJECT("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_CONTENT_LENGTH);
	RESP_REJECT("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_TRANSFER_ENCODING);
	RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_TRANSFER_ENCODING);
	RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_TRANSFER_ENCODING);
	RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: x;a=\"b\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_TRANSFER_ENCODING);
	RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: x;a\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_TRANSFER_ENCODING);
	RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: x;=b, chunked\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_TRANSFER_ENCODING);
	RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: x;a=b c, chunked\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_TRANSFER_ENCODING);
	RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: x;a=\"\\\r\n\r\n", HTTP_M_GET,
		    HTTP1_E_BAD_TRANSFER_ENCODING);
	RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n", HTTP_M_GET, HTTP1_E_BAD_TRANSFER_ENCODING);
	RESP_REJECT("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", HTTP_M_GET, HTTP1_E_OBS_FOLD);
	RESP_REJECT("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", HTTP_M_GET, HTTP1_E_HEADER_SYNTAX);
	RESP_REJECT("HTTP/1.1 200 OK\r\nX: a\r\r\n\r\n", HTTP_M_GET, HTTP1_E_BARE_CR);
	RESP_REJECT("HTTP/1.1 200 OK\n\n", HTTP_M_GET, HTTP1_E_BARE_CR);
}

static void test_status_line_errors(void)
{
	static const char *const bad[] = {
		"HTTP/1.1 20 OK",   "HTTP/1.1 2000 OK", "HTTP/1.1 099 x",  "HTTP/1.1 600 x", "HTTP/1.1  200 OK",
		"HTTP/1.1 200OK",   "HTTP/1.1 2x0 OK",  "HTTP/2 200",      "ICY 200 OK",     "HTTP/1.1",
		"HTTP/1.1 ",        "http/1.1 200 OK",  "HTTP/1.1 200 a\x01", "HTTP/1.1 200 a\x7f", "HTTP/1.10 200 OK",
		"HTTP/1.1\t200 OK", " HTTP/1.1 200 OK",
	};
	char buf[128];

	for (size_t i = 0; i < OG_ARRAY_LEN(bad); i++) {
		snprintf(buf, sizeof(buf), "%s\r\nContent-Length: 0\r\n\r\n", bad[i]);
		RESP_REJECT(buf, HTTP_M_GET, HTTP1_E_STATUS_LINE);
	}
	RESP_REJECT("\r\nHTTP/1.1 200 OK\r\n\r\n", HTTP_M_GET, HTTP1_E_STATUS_LINE);
	RESP_REJECT("HTTP/2.0 200 OK\r\n\r\n", HTTP_M_GET, HTTP1_E_VERSION);
	RESP_REJECT("HTTP/1.2 200 OK\r\n\r\n", HTTP_M_GET, HTTP1_E_VERSION);
	RESP_REJECT("HTTP/0.9 200 OK\r\n\r\n", HTTP_M_GET, HTTP1_E_VERSION);
}

static void test_find_header(void)
{
	struct http1_request r;

	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n", &r);
	const struct http1_header *h = http1_find_header(r.headers, r.n_headers, "X-DUP");
	CHECK(h == &hdrs[1]);
	CHECK(http1_find_header(r.headers, r.n_headers, "host") == &hdrs[0]);
	CHECK(http1_find_header(r.headers, r.n_headers, "X-Du") == NULL);
	CHECK(http1_find_header(r.headers, r.n_headers, "X-Dupe") == NULL);
	CHECK(http1_find_header(r.headers, 0, "host") == NULL);
}

static void test_hop_by_hop(void)
{
	static const char *const fixed[] = {
		"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "proxy-authorization",
		"TE",         "Trailer",    "TRANSFER-ENCODING", "Upgrade",
	};
	struct http1_request r;

	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n"
	       "Connection: ,  x-baz ,\r\nContent-Length: 0\r\n\r\n",
	       &r);
	for (size_t i = 0; i < OG_ARRAY_LEN(fixed); i++) {
		CHECK(http1_is_hop_by_hop(og_str_make(fixed[i], strlen(fixed[i])), NULL, 0));
		CHECK(http1_is_hop_by_hop(og_str_make(fixed[i], strlen(fixed[i])), r.headers, r.n_headers));
	}
	CHECK(http1_is_hop_by_hop(OG_STR_LIT("X-Foo"), r.headers, r.n_headers));
	CHECK(http1_is_hop_by_hop(OG_STR_LIT("x-foo"), r.headers, r.n_headers));
	CHECK(http1_is_hop_by_hop(OG_STR_LIT("X-BAZ"), r.headers, r.n_headers));
	CHECK(http1_is_hop_by_hop(OG_STR_LIT("close"), r.headers, r.n_headers));
	CHECK(!http1_is_hop_by_hop(OG_STR_LIT("X-Foo"), NULL, 0));
	CHECK(!http1_is_hop_by_hop(OG_STR_LIT("X-Fo"), r.headers, r.n_headers));
	CHECK(!http1_is_hop_by_hop(OG_STR_LIT("X-Bar"), r.headers, r.n_headers));
	CHECK(!http1_is_hop_by_hop(OG_STR_LIT("Host"), r.headers, r.n_headers));
	CHECK(!http1_is_hop_by_hop(OG_STR_LIT("Content-Length"), r.headers, r.n_headers));
	CHECK(!http1_is_hop_by_hop(OG_STR_LIT("Authorization"), r.headers, r.n_headers));
	CHECK(!http1_is_hop_by_hop(OG_STR_LIT("Trailers"), r.headers, r.n_headers));
	CHECK(!http1_is_hop_by_hop(OG_STR_LIT("T"), r.headers, r.n_headers));
}

static void test_error_strings(void)
{
	static const struct {
		enum http1_error e;
		const char *str;
		int status;
	} cases[] = {
		{ HTTP1_E_NONE, "none", 0 },
		{ HTTP1_E_HEAD_TOO_LARGE, "head_too_large", 431 },
		{ HTTP1_E_TOO_MANY_HEADERS, "too_many_headers", 431 },
		{ HTTP1_E_REQUEST_LINE, "bad_request_line", 400 },
		{ HTTP1_E_STATUS_LINE, "bad_status_line", 502 },
		{ HTTP1_E_VERSION, "bad_version", 505 },
		{ HTTP1_E_HEADER_SYNTAX, "bad_header_syntax", 400 },
		{ HTTP1_E_OBS_FOLD, "obs_fold", 400 },
		{ HTTP1_E_BARE_CR, "bare_cr", 400 },
		{ HTTP1_E_CL_AND_TE, "cl_and_te", 400 },
		{ HTTP1_E_BAD_CONTENT_LENGTH, "bad_content_length", 400 },
		{ HTTP1_E_BAD_TRANSFER_ENCODING, "bad_transfer_encoding", 501 },
		{ HTTP1_E_HOST, "bad_host", 400 },
	};

	for (size_t i = 0; i < OG_ARRAY_LEN(cases); i++) {
		CHECK_MEM_STR(http1_error_str(cases[i].e), strlen(http1_error_str(cases[i].e)), cases[i].str);
		CHECK_INT(http1_error_status(cases[i].e), cases[i].status);
	}
}

/* ---- chunked ---- */

struct chunk_run {
	enum http1_chunk_status status;
	size_t pos;      /* stream bytes used, framing and data */
	char data[8192];
	size_t data_len;
};

/* Drives the decoder like the connection code does, offering at most step
 * bytes per call and moving data itself. */
static void chunk_run(const char *s, size_t len, size_t step, struct chunk_run *run)
{
	struct http1_chunked dec;

	http1_chunked_init(&dec);
	memset(run, 0, sizeof(*run));
	for (;;) {
		size_t avail = OG_MIN(step, len - run->pos), consumed = 12345;
		enum http1_chunk_status st = http1_chunked_parse(&dec, s + run->pos, avail, &consumed);

		if (consumed > avail) {
			fprintf(stderr, "consumed %zu > %zu\n", consumed, avail);
			check_failures++;
			run->status = HTTP1_CHUNK_ERROR;
			return;
		}
		run->pos += consumed;
		run->status = st;
		if (st == HTTP1_CHUNK_DATA) {
			size_t take = OG_MIN(OG_MIN(step, len - run->pos), dec.data_left);
			if (take == 0)
				return; /* stream ends inside chunk data */
			if (run->data_len + take <= sizeof(run->data))
				memcpy(run->data + run->data_len, s + run->pos, take);
			run->data_len += take;
			run->pos += take;
			http1_chunked_took(&dec, take);
			continue;
		}
		if (st != HTTP1_CHUNK_NEED_MORE || run->pos == len)
			return;
	}
}

/* Runs the stream whole and byte by byte; both must agree. */
#define CHUNK_EXPECT(s, n, want_status, want_pos, want_data)                      \
	do {                                                                      \
		static const size_t steps_[] = { (size_t)-1, 1, 2, 3, 7 };        \
		struct chunk_run run_;                                            \
		for (size_t k_ = 0; k_ < OG_ARRAY_LEN(steps_); k_++) {            \
			chunk_run((s), (n), steps_[k_], &run_);                   \
			CHECK_INT(run_.status, (want_status));                    \
			CHECK_INT(run_.pos, (want_pos));                          \
			CHECK_MEM_STR(run_.data, run_.data_len, (want_data));     \
		}                                                                 \
	} while (0)

#define CHUNK_OK(s, data) CHUNK_EXPECT((s), strlen(s), HTTP1_CHUNK_DONE, strlen(s), (data))

/* Errors are reached at the same byte whatever the step: check only that. */
#define CHUNK_BAD(s)                                                              \
	do {                                                                      \
		static const size_t steps_[] = { (size_t)-1, 1, 3 };              \
		struct chunk_run run_;                                            \
		for (size_t k_ = 0; k_ < OG_ARRAY_LEN(steps_); k_++) {            \
			chunk_run((s), strlen(s), steps_[k_], &run_);             \
			CHECK_INT(run_.status, HTTP1_CHUNK_ERROR);                \
		}                                                                 \
	} while (0)

static void test_chunked_valid(void)
{
	CHUNK_OK("5\r\nhello\r\n0\r\n\r\n", "hello");
	CHUNK_OK("0\r\n\r\n", "");
	CHUNK_OK("5\r\nhello\r\n6\r\n world\r\n1\r\n!\r\n0\r\n\r\n", "hello world!");
	CHUNK_OK("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij");
	CHUNK_OK("0000b\r\nhello world\r\n000\r\n\r\n", "hello world");
	CHUNK_OK("1F\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n", "0123456789abcdef0123456789abcde");
	/* data is opaque: CR, LF and NUL-free framing lookalikes pass through */
	CHUNK_OK("6\r\n\r\n0\r\n\r\r\n0\r\n\r\n", "\r\n0\r\n\r");

	/* extensions */
	CHUNK_OK("5;foo=bar\r\nhello\r\n0;last\r\n\r\n", "hello");
	CHUNK_OK("5 ; a = b ;c;d=\"q\\\"x;y\"\r\nhello\r\n0\r\n\r\n", "hello");
	CHUNK_OK("5\t;a\t=\t\"\"\r\nhello\r\n0\r\n\r\n", "hello");
	CHUNK_OK("5;a ;b \t; c\r\nhello\r\n0\r\n\r\n", "hello");
	CHUNK_OK("5;a=\"\x80\"\r\nhello\r\n0\r\n\r\n", "hello");

	/* trailers */
	CHUNK_OK("5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\nZ:  1 2\t\r\n\r\n", "hello");
	CHUNK_OK("0\r\nDocker-Content-Digest: sha256:00\r\n\r\n", "");
}

static void test_chunked_errors(void)
{
	CHUNK_BAD("g\r\n");
	CHUNK_BAD("\r\n");
	CHUNK_BAD("-1\r\n");
	CHUNK_BAD("+1\r\nx\r\n0\r\n\r\n");
	CHUNK_BAD("0x5\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD(" 5\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5 \r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5\t\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5\rhello\r\n0\r\n\r\n");
	CHUNK_BAD("5\r\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("8000000000000000\r\n");
	CHUNK_BAD("10000000000000000\r\n");
	CHUNK_BAD("ffffffffffffffffff\r\n");
	/* missing or wrong CRLF after data */
	CHUNK_BAD("5\r\nhelloX\r\n0\r\n\r\n");
	CHUNK_BAD("5\r\nhello\n0\r\n\r\n");
	CHUNK_BAD("5\r\nhello\r0\r\n\r\n");
	CHUNK_BAD("5\r\nhello0\r\n\r\n");
	CHUNK_BAD("3\r\nhello\r\n0\r\n\r\n");
	/* extensions */
	CHUNK_BAD("5;\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a b\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a \r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=b \r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\"x\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=b=c\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5;(\r\nhello\r\n0\r\n\r\n");
	CHUNK_BAD("5x\r\nhello\r\n0\r\n\r\n");
	/* trailers and the end */
	CHUNK_BAD("0\r\n X: a\r\n\r\n");
	CHUNK_BAD("0\r\nX : a\r\n\r\n");
	CHUNK_BAD("0\r\nX a\r\n\r\n");
	CHUNK_BAD("0\r\n: a\r\n\r\n");
	CHUNK_BAD("0\r\nX: a\rb\r\n\r\n");
	CHUNK_BAD("0\r\nX: a\nY: b\r\n\r\n");
	CHUNK_BAD("0\r\nX: a\x01\r\n\r\n");
	CHUNK_BAD("0\r\n\rX");
	CHUNK_BAD("0\r\n\n");
	CHUNK_BAD("0\r\nX: a\r\n\n");
}

static void test_chunked_limits(void)
{
	size_t n = 8 + HTTP1_CHUNK_MAX_TRAILER * 2;
	char *s = malloc(n + 64);
	struct chunk_run *run = malloc(sizeof(*run));

	/* size line of exactly the limit, then one byte more */
	memcpy(s, "1;", 2);
	memset(s + 2, 'a', HTTP1_CHUNK_MAX_LINE - 2);
	memcpy(s + HTTP1_CHUNK_MAX_LINE, "\r\nx\r\n0\r\n\r\n", 11);
	chunk_run(s, HTTP1_CHUNK_MAX_LINE + 10, (size_t)-1, run);
	CHECK_INT(run->status, HTTP1_CHUNK_DONE);
	CHECK_MEM_STR(run->data, run->data_len, "x");
	memset(s + 2, 'a', HTTP1_CHUNK_MAX_LINE - 1);
	memcpy(s + HTTP1_CHUNK_MAX_LINE + 1, "\r\nx\r\n0\r\n\r\n", 11);
	chunk_run(s, HTTP1_CHUNK_MAX_LINE + 11, (size_t)-1, run);
	CHECK_INT(run->status, HTTP1_CHUNK_ERROR);

	/* leading zeros count towards the line limit, not the value */
	memset(s, '0', 4000);
	memcpy(s + 4000, "1\r\nx\r\n0\r\n\r\n", 12);
	chunk_run(s, 4011, 1, run);
	CHECK_INT(run->status, HTTP1_CHUNK_DONE);
	CHECK_INT(run->pos, 4011);
	memset(s, '0', 5000);
	chunk_run(s, 5000, (size_t)-1, run);
	CHECK_INT(run->status, HTTP1_CHUNK_ERROR);

	/* trailer section: exactly the limit passes, one byte more fails */
	size_t t = HTTP1_CHUNK_MAX_TRAILER; /* includes every CRLF of the section */
	memcpy(s, "0\r\nX: ", 6);
	memset(s + 6, 'v', t - 3 - 4);
	memcpy(s + 3 + t - 4, "\r\n\r\n", 4);
	chunk_run(s, 3 + t, (size_t)-1, run);
	CHECK_INT(run->status, HTTP1_CHUNK_DONE);
	CHECK_INT(run->pos, 3 + t);
	memset(s + 6, 'v', t - 3 - 3);
	memcpy(s + 3 + t - 3, "\r\n\r\n", 4);
	chunk_run(s, 4 + t, (size_t)-1, run);
	CHECK_INT(run->status, HTTP1_CHUNK_ERROR);

	/* the largest size is accepted and its data expected */
	struct http1_chunked dec;
	size_t consumed;
	http1_chunked_init(&dec);
	CHECK_INT(http1_chunked_parse(&dec, "7fffffffffffffff\r\nab", 20, &consumed), HTTP1_CHUNK_DATA);
	CHECK_INT(consumed, 18);
	CHECK(dec.data_left == 0x7fffffffffffffffull);
	http1_chunked_init(&dec);
	CHECK_INT(http1_chunked_parse(&dec, "7FFFFFFFFFFFFFFF\r\n", 18, &consumed), HTTP1_CHUNK_DATA);
	CHECK(dec.data_left == 0x7fffffffffffffffull);

	free(run);
	free(s);
}

static void test_chunked_api(void)
{
	struct http1_chunked dec;
	size_t consumed;
	const char *s = "5;x=y\r\nhelloworld";

	http1_chunked_init(&dec);
	CHECK_INT(http1_chunked_parse(&dec, s, 0, &consumed), HTTP1_CHUNK_NEED_MORE);
	CHECK_INT(consumed, 0);
	CHECK_INT(http1_chunked_parse(&dec, s, 6, &consumed), HTTP1_CHUNK_NEED_MORE);
	CHECK_INT(consumed, 6);
	CHECK_INT(http1_chunked_parse(&dec, s + 6, strlen(s) - 6, &consumed), HTTP1_CHUNK_DATA);
	CHECK_INT(consumed, 1);
	CHECK_INT(dec.data_left, 5);
	/* asking again before moving data changes nothing */
	CHECK_INT(http1_chunked_parse(&dec, "xx", 2, &consumed), HTTP1_CHUNK_DATA);
	CHECK_INT(consumed, 0);
	CHECK_INT(dec.data_left, 5);
	http1_chunked_took(&dec, 2);
	CHECK_INT(dec.data_left, 3);
	CHECK_INT(http1_chunked_parse(&dec, "llo", 3, &consumed), HTTP1_CHUNK_DATA);
	CHECK_INT(consumed, 0);
	http1_chunked_took(&dec, 3);
	CHECK_INT(dec.data_left, 0);
	CHECK_INT(http1_chunked_parse(&dec, "world", 5, &consumed), HTTP1_CHUNK_ERROR);
	CHECK_INT(http1_chunked_parse(&dec, "\r\n0\r\n\r\n", 7, &consumed), HTTP1_CHUNK_ERROR);
	CHECK_INT(consumed, 0);

	/* bytes after the end belong to the next message */
	const char *t = "2\r\nab\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n";
	CHUNK_EXPECT(t, strlen(t), HTTP1_CHUNK_DONE, strlen("2\r\nab\r\n0\r\nT: 1\r\n\r\n"), "ab");
	http1_chunked_init(&dec);
	CHECK_INT(http1_chunked_parse(&dec, "0\r\n\r\nGET", 8, &consumed), HTTP1_CHUNK_DONE);
	CHECK_INT(consumed, 5);
	CHECK_INT(http1_chunked_parse(&dec, "GET", 3, &consumed), HTTP1_CHUNK_DONE);
	CHECK_INT(consumed, 0);

	/* a stream cut short is NEED_MORE wherever it stops */
	const char *full = "5;a=\"b\"\r\nhello\r\n0\r\nX: y\r\n\r\n";
	for (size_t i = 0; i < strlen(full); i++) {
		struct chunk_run run;
		chunk_run(full, i, (size_t)-1, &run);
		if (run.status != HTTP1_CHUNK_NEED_MORE && run.status != HTTP1_CHUNK_DATA) {
			fprintf(stderr, "%s:%d: prefix %zu: status %d\n", __FILE__, __LINE__, i, (int)run.status);
			check_failures++;
		}
		CHECK_INT(run.pos, i);
	}
}

int main(void)
{
	test_request_basic();
	test_request_methods();
	test_request_bodies();
	test_request_connection();
	test_request_framing_position();
	test_incremental();
	test_request_line_errors();
	test_field_errors();
	test_field_value_bytes();
	test_content_length_errors();
	test_transfer_encoding_errors();
	test_host();
	test_limits();
	test_many_lines();
	test_response_basic();
	test_response_framing();
	test_status_line_errors();
	test_find_header();
	test_hop_by_hop();
	test_error_strings();
	test_chunked_valid();
	test_chunked_errors();
	test_chunked_limits();
	test_chunked_api();
	CHECK_DONE();
}
