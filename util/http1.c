/* Strict HTTP/1.1 message-head parsers and chunked decoder.
 *
 * A head is handled in two passes: the first finds where it ends and rejects
 * bad line endings (so the second can split lines on CR without re-checking),
 * the second checks syntax and then framing semantics. Everything is linear in
 * the bytes looked at and never reads past len. */
#include "util/http1.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

#include "util/ascii.h"

/* RFC 9112 2.2 lets a server skip empty lines before the request-line; a
 * couple cover clients that add CRLF after a body, more is just garbage. */
#define HTTP1_MAX_LEADING_CRLF 2

#define HTTP1_INT63_MAX ((uint64_t)INT64_MAX)

/* ---- character classes (RFC 9110 5.6.2, 5.5) ---- */

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* VCHAR or obs-text */
static bool is_vchar_obs(unsigned char c)
{
	return c >= 0x21 && c != 0x7f;
}

/* field-vchar, SP or HTAB: everything a field value or reason may hold */
static bool is_text(unsigned char c)
{
	return is_ows(c) || is_vchar_obs(c);
}

static bool is_qdtext(unsigned char c)
{
	return is_text(c) && c != '"' && c != '\\';
}

/* Byte classes of a field line, one lookup per byte on the hot path:
 * FIELD_TCHAR = RFC 9110 tchar (names), FIELD_TEXT = field-vchar, SP, HTAB
 * or obs-text (values). The same sets as ascii_is_tchar and is_text. */
enum { FIELD_TCHAR = 1, FIELD_TEXT = 2 };
static const unsigned char field_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2,
	2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* ---- small helpers over og_str ---- */

static size_t skip_ows(struct og_str s, size_t i)
{
	while (i < s.n && is_ows((unsigned char)s.p[i]))
		i++;
	return i;
}

static size_t skip_tchars(struct og_str s, size_t i)
{
	while (i < s.n && (field_class[(unsigned char)s.p[i]] & FIELD_TCHAR))
		i++;
	return i;
}

/* Next non-empty element of a comma-separated list (RFC 9110 5.6.1), OWS
 * trimmed. Quoted strings are not special: callers only use this for lists
 * of tokens. */
static bool list_next(struct og_str v, size_t *pos, struct og_str *elem)
{
	size_t i = *pos;

	while (i < v.n) {
		i = skip_ows(v, i);
		size_t start = i;
		while (i < v.n && v.p[i] != ',')
			i++;
		size_t end = i;
		while (end > start && is_ows((unsigned char)v.p[end - 1]))
			end--;
		if (i < v.n)
			i++;
		if (end > start) {
			*elem = og_str_make(v.p + start, end - start);
			*pos = i;
			return true;
		}
	}
	*pos = i;
	return false;
}

static bool list_has_token(struct og_str v, const char *token)
{
	struct og_str elem;
	size_t pos = 0;

	while (list_next(v, &pos, &elem))
		if (og_str_ieq(elem, token))
			return true;
	return false;
}

/* ---- finding the end of a head ---- */

enum head_scan { HEAD_NEED_MORE, HEAD_FOUND, HEAD_ERROR };

/* Lines whose ends head_find records for the parsers, which would look
 * for each again: nearly every head has fewer. */
#define HEAD_SPAN_LINES 48

struct head_span {
	size_t start; /* first byte of the start line, after skipped CRLFs */
	size_t end;   /* one past the CRLF of the empty line */
	size_t n_cr;  /* the CRs of the first n_cr lines from start */
	size_t cr[HEAD_SPAN_LINES];
	size_t next;  /* the line the parser takes next */
};

/* Every CR must start a CRLF and every LF must end one, so that this parser
 * and whatever sits behind us agree on where lines end. */
static enum head_scan head_find(const char *buf, size_t len, size_t max_head, unsigned max_leading,
				enum http1_error empty_start_err, struct head_span *span,
				enum http1_error *err)
{
	size_t scan = OG_MIN(len, max_head);
	size_t line = 0;
	unsigned leading = 0;
	bool have_start_line = false;

	span->start = 0;
	span->end = 0;
	span->n_cr = 0;
	span->next = 0;
	/* memchr per line rather than a test per byte: heads are scanned on
	 * every request and response. */
	while (line < scan) {
		const char *cr = memchr(buf + line, '\r', scan - line);
		size_t i = cr ? (size_t)(cr - buf) : scan;

		if (memchr(buf + line, '\n', i - line)) {
			*err = HTTP1_E_BARE_CR;
			return HEAD_ERROR;
		}
		if (i + 1 >= scan)
			break;
		if (buf[i + 1] != '\n') {
			*err = HTTP1_E_BARE_CR;
			return HEAD_ERROR;
		}
		if (i > line) {
			have_start_line = true;
			if (span->n_cr < HEAD_SPAN_LINES)
				span->cr[span->n_cr++] = i;
		} else if (have_start_line) {
			span->end = i + 2;
			return HEAD_FOUND;
		} else if (leading < max_leading) {
			leading++;
			span->start = i + 2;
		} else {
			*err = empty_start_err;
			return HEAD_ERROR;
		}
		line = i + 2;
	}
	if (len >= max_head) {
		*err = HTTP1_E_HEAD_TOO_LARGE;
		return HEAD_ERROR;
	}
	return HEAD_NEED_MORE;
}

/* The head was validated by head_find: every line ends in CRLF before
 * span->end, and no line between start and end is empty. */
static struct og_str head_next_line(const char *buf, struct head_span *span, size_t *pos)
{
	const char *p = buf + *pos;
	size_t cr;

	if (span->next < span->n_cr) {
		cr = span->cr[span->next++];
	} else {
		const char *c = memchr(p, '\r', span->end - *pos);
		assert(c != NULL);
		cr = (size_t)(c - buf);
	}
	assert(cr + 1 < span->end && cr >= *pos);
	*pos = cr + 2;
	return og_str_make(p, cr - (size_t)(p - buf));
}

/* ---- start lines ---- */

static const char *const method_names[] = {
	[HTTP_M_OTHER] = "OTHER",     [HTTP_M_GET] = "GET",     [HTTP_M_HEAD] = "HEAD",
	[HTTP_M_POST] = "POST",       [HTTP_M_PUT] = "PUT",     [HTTP_M_PATCH] = "PATCH",
	[HTTP_M_DELETE] = "DELETE",   [HTTP_M_OPTIONS] = "OPTIONS",
};

static enum http_method method_from_str(struct og_str s)
{
	for (size_t m = HTTP_M_OTHER + 1; m < OG_ARRAY_LEN(method_names); m++)
		if (og_str_eq(s, method_names[m]))
			return (enum http_method)m;
	return HTTP_M_OTHER;
}

/* "HTTP/" DIGIT "." DIGIT is the syntax; only 1.0 and 1.1 are supported. */
static int parse_version(struct og_str v, enum http1_error syntax_err, int *minor, enum http1_error *err)
{
	const unsigned char *p = (const unsigned char *)v.p;

	if (v.n != 8 || memcmp(p, "HTTP/", 5) != 0 || !ascii_is_digit(p[5]) || p[6] != '.' || !ascii_is_digit(p[7])) {
		*err = syntax_err;
		return -1;
	}
	if (p[5] != '1' || (p[7] != '0' && p[7] != '1')) {
		*err = HTTP1_E_VERSION;
		return -1;
	}
	*minor = p[7] - '0';
	return 0;
}

static int parse_request_line(struct og_str line, struct http1_request *req, enum http1_error *err)
{
	size_t i = skip_tchars(line, 0);

	if (i == 0 || i == line.n || line.p[i] != ' ')
		goto bad;
	req->method_str = og_str_make(line.p, i);
	req->method = method_from_str(req->method_str);

	size_t start = ++i;
	while (i < line.n && (unsigned char)line.p[i] >= 0x21 && (unsigned char)line.p[i] <= 0x7e)
		i++;
	if (i == start || i == line.n || line.p[i] != ' ')
		goto bad;
	req->target = og_str_make(line.p + start, i - start);
	i++;
	return parse_version(og_str_make(line.p + i, line.n - i), HTTP1_E_REQUEST_LINE, &req->version_minor,
			     err);
bad:
	*err = HTTP1_E_REQUEST_LINE;
	return -1;
}

/* HTTP-version SP 3DIGIT SP reason-phrase, where a missing SP before an
 * empty reason is tolerated (RFC 9112 4 asks clients to be lenient there). */
static int parse_status_line(struct og_str line, struct http1_response *resp, enum http1_error *err)
{
	const unsigned char *p = (const unsigned char *)line.p;

	if (line.n < 8 || (line.n > 8 && p[8] != ' '))
		goto bad;
	if (parse_version(og_str_make(line.p, 8), HTTP1_E_STATUS_LINE, &resp->version_minor, err) < 0)
		return -1;
	if (line.n < 12 || !ascii_is_digit(p[9]) || !ascii_is_digit(p[10]) || !ascii_is_digit(p[11]))
		goto bad;
	resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (resp->status < 100 || resp->status > 599)
		goto bad;
	if (line.n == 12) {
		resp->reason = og_str_make(line.p + 12, 0);
		return 0;
	}
	if (p[12] != ' ')
		goto bad;
	for (size_t i = 13; i < line.n; i++)
		if (!is_text(p[i]))
			goto bad;
	resp->reason = og_str_make(line.p + 13, line.n - 13);
	return 0;
bad:
	*err = HTTP1_E_STATUS_LINE;
	return -1;
}

/* ---- field lines ---- */

static bool field_bytes_ok(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(field_class[p[i]] & FIELD_TEXT))
			return false;
	return true;
}

/* Values are most of a head's bytes: eight at a time, byte by byte only
 * for a word that holds a control byte, DEL or a tab. */
static bool field_value_ok(const unsigned char *p, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t x;

		memcpy(&x, p + i, 8);
		if ((og_word_has_less(x, 0x20) | og_word_has_byte(x, 0x7f)) && !field_bytes_ok(p + i, 8))
			return false;
	}
	return field_bytes_ok(p + i, n - i);
}

static int parse_field_line(struct og_str line, struct http1_header *h, enum http1_error *err)
{
	const unsigned char *p = (const unsigned char *)line.p;
	size_t i, end;

	assert(line.n > 0);
	if (is_ows(p[0])) {
		*err = HTTP1_E_OBS_FOLD;
		return -1;
	}
	i = skip_tchars(line, 0);
	if (i == 0 || i == line.n || p[i] != ':')
		goto bad;
	h->name = og_str_make(line.p, i);

	i = skip_ows(line, i + 1);
	end = line.n;
	while (end > i && is_ows(p[end - 1]))
		end--;
	if (!field_value_ok(p + i, end - i))
		goto bad;
	h->value = og_str_make(line.p + i, end - i);
	return 0;
bad:
	*err = HTTP1_E_HEADER_SYNTAX;
	return -1;
}

static int parse_fields(const char *buf, struct head_span *span, size_t *pos,
			const struct http1_limits *limits, struct http1_header *headers,
			size_t *n_headers, enum http1_error *err)
{
	*n_headers = 0;
	for (;;) {
		if (*pos + 2 == span->end)
			return 0; /* the empty line */
		struct og_str line = head_next_line(buf, span, pos);

		if (*n_headers == limits->max_headers) {
			*err = HTTP1_E_TOO_MANY_HEADERS;
			return -1;
		}
		if (parse_field_line(line, &headers[*n_headers], err) < 0)
			return -1;
		(*n_headers)++;
	}
}

/* ---- framing semantics ---- */

/* 1*DIGIT, or a list of identical ones ("5, 5", RFC 9110 8.6). */
static int parse_content_length(struct og_str v, uint64_t *out)
{
	bool have = false;
	uint64_t first = 0;
	size_t i = 0;

	for (;;) {
		uint64_t n = 0;
		size_t start = i;

		for (; i < v.n && ascii_is_digit((unsigned char)v.p[i]); i++) {
			unsigned d = (unsigned char)v.p[i] - '0';
			if (n > (HTTP1_INT63_MAX - d) / 10)
				return -1;
			n = n * 10 + d;
		}
		if (i == start || (have && n != first))
			return -1;
		first = n;
		have = true;
		i = skip_ows(v, i);
		if (i == v.n)
			break;
		if (v.p[i] != ',')
			return -1;
		i = skip_ows(v, i + 1);
	}
	*out = first;
	return 0;
}

struct te_codings {
	unsigned n_codings;
	unsigned n_chunked;
	bool last_chunked;
};

static size_t skip_quoted_string(struct og_str v, size_t i)
{
	assert(i < v.n && v.p[i] == '"');
	for (i++; i < v.n; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (++i == v.n || !is_text((unsigned char)v.p[i]))
				return 0;
		} else if (!is_qdtext(c)) {
			return 0;
		}
	}
	return 0;
}

/* transfer-parameter = token BWS "=" BWS ( token / quoted-string ); returns
 * the index after it, or 0 when malformed (a parameter never starts at 0). */
static size_t skip_te_param(struct og_str v, size_t i)
{
	size_t start = i;

	i = skip_tchars(v, i);
	if (i == start)
		return 0;
	i = skip_ows(v, i);
	if (i == v.n || v.p[i] != '=')
		return 0;
	i = skip_ows(v, i + 1);
	if (i < v.n && v.p[i] == '"')
		return skip_quoted_string(v, i);
	start = i;
	i = skip_tchars(v, i);
	return i == start ? 0 : i;
}

/* Adds the codings of one Transfer-Encoding field to te. Empty elements are
 * rejected rather than skipped: an empty Transfer-Encoding is a classic
 * smuggling probe. */
static int parse_transfer_encoding(struct og_str v, struct te_codings *te)
{
	size_t i = 0;

	for (;;) {
		size_t start = i;
		i = skip_tchars(v, i);
		if (i == start)
			return -1;
		bool chunked = og_str_ieq(og_str_make(v.p + start, i - start), "chunked");
		i = skip_ows(v, i);
		while (i < v.n && v.p[i] == ';') {
			if (chunked)
				return -1; /* chunked has no parameters */
			i = skip_te_param(v, skip_ows(v, i + 1));
			if (i == 0)
				return -1;
			i = skip_ows(v, i);
		}
		te->n_codings++;
		te->n_chunked += chunked;
		te->last_chunked = chunked;
		if (i == v.n)
			return 0;
		if (v.p[i] != ',')
			return -1;
		i = skip_ows(v, i + 1);
	}
}

/* Host = uri-host [ ":" port ]; checked loosely as the characters those may
 * contain, which keeps spaces, quotes, slashes and '@' out. */
static bool host_value_ok(struct og_str v)
{
	for (size_t i = 0; i < v.n; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if (!ascii_is_alnum((char)c) && (c == '\0' || !strchr("-._~%!$&'()*+,;=:[]", c)))
			return false;
	}
	return true;
}

/* What the fields of a message say about its framing and connection. */
struct framing {
	bool has_cl, bad_cl;
	uint64_t cl;
	bool has_te, bad_te;
	struct te_codings te;
	bool conn_close, conn_keep_alive;
	bool expect_continue;
	size_t n_host;
	bool bad_host;
};

static void framing_add_cl(struct framing *f, struct og_str value)
{
	uint64_t cl = 0;

	if (parse_content_length(value, &cl) < 0 || (f->has_cl && cl != f->cl))
		f->bad_cl = true;
	else
		f->cl = cl;
	f->has_cl = true;
}

static void framing_collect(const struct http1_header *headers, size_t n, struct framing *f)
{
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < n; i++) {
		const struct http1_header *h = &headers[i];

		if (og_str_ieq(h->name, "Content-Length")) {
			framing_add_cl(f, h->value);
		} else if (og_str_ieq(h->name, "Transfer-Encoding")) {
			f->has_te = true;
			if (parse_transfer_encoding(h->value, &f->te) < 0)
				f->bad_te = true;
		} else if (og_str_ieq(h->name, "Connection")) {
			f->conn_close |= list_has_token(h->value, "close");
			f->conn_keep_alive |= list_has_token(h->value, "keep-alive");
		} else if (og_str_ieq(h->name, "Expect")) {
			f->expect_continue |= list_has_token(h->value, "100-continue");
		} else if (og_str_ieq(h->name, "Host")) {
			f->n_host++;
			f->bad_host |= !host_value_ok(h->value);
		}
	}
}

/* Checks shared by requests and responses, in order of how telling they are. */
static int framing_check(const struct framing *f, int version_minor, enum http1_error *err)
{
	if (f->has_cl && f->has_te) {
		*err = HTTP1_E_CL_AND_TE;
		return -1;
	}
	if (f->bad_cl) {
		*err = HTTP1_E_BAD_CONTENT_LENGTH;
		return -1;
	}
	/* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
	 * framing; chunked applied twice is never valid. */
	if (f->has_te && (f->bad_te || version_minor == 0 || f->te.n_chunked > 1)) {
		*err = HTTP1_E_BAD_TRANSFER_ENCODING;
		return -1;
	}
	return 0;
}

static bool framing_keep_alive(const struct framing *f, int version_minor)
{
	if (f->conn_close)
		return false;
	return version_minor == 1 || f->conn_keep_alive;
}

static int request_semantics(struct http1_request *req, enum http1_error *err)
{
	struct framing f;

	framing_collect(req->headers, req->n_headers, &f);
	if (framing_check(&f, req->version_minor, err) < 0)
		return -1;
	/* A server cannot tell where a request body with any other coding ends. */
	if (f.has_te && (f.te.n_codings != 1 || !f.te.last_chunked)) {
		*err = HTTP1_E_BAD_TRANSFER_ENCODING;
		return -1;
	}
	if (f.n_host > 1 || (f.n_host == 0 && req->version_minor == 1) || f.bad_host) {
		*err = HTTP1_E_HOST;
		return -1;
	}
	if (f.has_te) {
		req->body = HTTP1_BODY_CHUNKED;
	} else if (f.has_cl) {
		req->body = HTTP1_BODY_LENGTH;
		req->content_length = f.cl;
	}
	req->keep_alive = framing_keep_alive(&f, req->version_minor);
	req->expect_continue = f.expect_continue && req->version_minor == 1;
	return 0;
}

static bool response_has_body(int status, enum http_method request_method)
{
	return request_method != HTTP_M_HEAD && status >= 200 && status != 204 && status != 304;
}

/* RFC 9112 6.3 */
static int response_semantics(struct http1_response *resp, enum http_method request_method,
			      enum http1_error *err)
{
	struct framing f;

	framing_collect(resp->headers, resp->n_headers, &f);
	if (framing_check(&f, resp->version_minor, err) < 0)
		return -1;
	resp->has_content_length = f.has_cl;
	resp->content_length = f.has_cl ? f.cl : 0;
	if (!response_has_body(resp->status, request_method))
		resp->body = HTTP1_BODY_NONE;
	else if (f.has_te)
		resp->body = f.te.last_chunked ? HTTP1_BODY_CHUNKED : HTTP1_BODY_UNTIL_CLOSE;
	else if (f.has_cl)
		resp->body = HTTP1_BODY_LENGTH;
	else
		resp->body = HTTP1_BODY_UNTIL_CLOSE;
	resp->keep_alive = framing_keep_alive(&f, resp->version_minor) &&
			   resp->body != HTTP1_BODY_UNTIL_CLOSE;
	return 0;
}

/* ---- public head parsers ---- */

static size_t head_limit(const struct http1_limits *limits)
{
	return OG_MIN(limits->max_head_bytes, (size_t)SSIZE_MAX);
}

ssize_t http1_parse_request(const char *buf, size_t len, const struct http1_limits *limits,
			    struct http1_request *req, enum http1_error *err)
{
	struct http1_header *headers = req->headers;
	struct head_span span;
	size_t pos;
	ssize_t ret = -1;

	assert(headers != NULL || limits->max_headers == 0);
	*err = HTTP1_E_NONE;
	switch (head_find(buf, len, head_limit(limits), HTTP1_MAX_LEADING_CRLF, HTTP1_E_REQUEST_LINE, &span,
			  err)) {
	case HEAD_NEED_MORE:
		return 0;
	case HEAD_ERROR:
		return -1;
	case HEAD_FOUND:
		break;
	}

	memset(req, 0, sizeof(*req));
	req->headers = headers;
	pos = span.start;
	if (parse_request_line(head_next_line(buf, &span, &pos), req, err) < 0)
		goto out;
	if (parse_fields(buf, &span, &pos, limits, headers, &req->n_headers, err) < 0)
		goto out;
	if (request_semantics(req, err) < 0)
		goto out;
	assert(pos + 2 == span.end);
	ret = (ssize_t)span.end;
out:
	return ret;
}

ssize_t http1_parse_response(const char *buf, size_t len, const struct http1_limits *limits,
			     enum http_method request_method, struct http1_response *resp,
			     enum http1_error *err)
{
	struct http1_header *headers = resp->headers;
	struct head_span span;
	size_t pos;
	ssize_t ret = -1;

	assert(headers != NULL || limits->max_headers == 0);
	*err = HTTP1_E_NONE;
	switch (head_find(buf, len, head_limit(limits), 0, HTTP1_E_STATUS_LINE, &span, err)) {
	case HEAD_NEED_MORE:
		return 0;
	case HEAD_ERROR:
		return -1;
	case HEAD_FOUND:
		break;
	}

	memset(resp, 0, sizeof(*resp));
	resp->headers = headers;
	pos = span.start;
	if (parse_status_line(head_next_line(buf, &span, &pos), resp, err) < 0)
		goto out;
	if (parse_fields(buf, &span, &pos, limits, headers, &resp->n_headers, err) < 0)
		goto out;
	if (response_semantics(resp, request_method, err) < 0)
		goto out;
	assert(pos + 2 == span.end);
	ret = (ssize_t)span.end;
out:
	return ret;
}

const struct http1_header *http1_find_header(const struct http1_header *headers, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (og_str_ieq(headers[i].name, name))
			return &headers[i];
	return NULL;
}

static bool str_ieq_str(struct og_str a, struct og_str b)
{
	if (a.n != b.n)
		return false;
	for (size_t i = 0; i < a.n; i++) {
		unsigned char x = (unsigned char)a.p[i], y = (unsigned char)b.p[i];
		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return false;
	}
	return true;
}

bool http1_is_hop_by_hop(struct og_str name, const struct http1_header *headers, size_t n)
{
	static const char *const fixed[] = {
		"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
		"te",         "trailer",    "transfer-encoding", "upgrade",
	};

	for (size_t i = 0; i < OG_ARRAY_LEN(fixed); i++)
		if (og_str_ieq(name, fixed[i]))
			return true;
	for (size_t i = 0; i < n; i++) {
		struct og_str elem;
		size_t pos = 0;

		if (!og_str_ieq(headers[i].name, "Connection"))
			continue;
		while (list_next(headers[i].value, &pos, &elem))
			if (str_ieq_str(elem, name))
				return true;
	}
	return false;
}

const char *http1_error_str(enum http1_error err)
{
	switch (err) {
	case HTTP1_E_NONE: return "none";
	case HTTP1_E_HEAD_TOO_LARGE: return "head_too_large";
	case HTTP1_E_TOO_MANY_HEADERS: return "too_many_headers";
	case HTTP1_E_REQUEST_LINE: return "bad_request_line";
	case HTTP1_E_STATUS_LINE: return "bad_status_line";
	case HTTP1_E_VERSION: return "bad_version";
	case HTTP1_E_HEADER_SYNTAX: return "bad_header_syntax";
	case HTTP1_E_OBS_FOLD: return "obs_fold";
	case HTTP1_E_BARE_CR: return "bare_cr";
	case HTTP1_E_CL_AND_TE: return "cl_and_te";
	case HTTP1_E_BAD_CONTENT_LENGTH: return "bad_content_length";
	case HTTP1_E_BAD_TRANSFER_ENCODING: return "bad_transfer_encoding";
	case HTTP1_E_HOST: return "bad_host";
	}
	return "unknown";
}

int http1_error_status(enum http1_error err)
{
	switch (err) {
	case HTTP1_E_NONE:
		return 0;
	case HTTP1_E_HEAD_TOO_LARGE:
	case HTTP1_E_TOO_MANY_HEADERS:
		return 431;
	case HTTP1_E_VERSION:
		return 505;
	case HTTP1_E_BAD_TRANSFER_ENCODING:
		return 501;
	case HTTP1_E_STATUS_LINE:
		return 502;
	default:
		return 400;
	}
}

const char *http1_method_name(enum http_method m)
{
	if ((size_t)m >= OG_ARRAY_LEN(method_names))
		return "OTHER";
	return method_names[m];
}

/* ---- chunked transfer coding (RFC 9112 7.1) ---- */

enum chunk_state {
	CH_SIZE_START,   /* first hex digit of a chunk-size */
	CH_SIZE,         /* more hex digits */
	CH_EXT_NAME_START, /* after ';': BWS, then chunk-ext-name */
	CH_EXT_NAME,
	CH_EXT_NAME_WS,  /* BWS after a name: '=' or ';' must follow */
	CH_EXT_VAL_START, /* after '=': BWS, then token or quoted-string */
	CH_EXT_VAL_TOKEN,
	CH_EXT_QUOTED,
	CH_EXT_QUOTED_ESC,
	CH_EXT_VAL_END,  /* right after a value: ';', BWS or CR */
	CH_EXT_WS,       /* BWS after a size or value: only ';' may follow */
	CH_SIZE_LF,
	CH_DATA,         /* the caller is moving data_left bytes */
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER_START, /* a trailer field line or the final CRLF */
	CH_TRAILER_NAME,
	CH_TRAILER_VALUE,
	CH_TRAILER_LF,
	CH_FINAL_LF,
	CH_DONE,
	CH_ERROR,
};

enum chunk_step { STEP_MORE, STEP_DATA, STEP_DONE, STEP_ERROR };

void http1_chunked_init(struct http1_chunked *dec)
{
	memset(dec, 0, sizeof(*dec));
	dec->state = CH_SIZE_START;
}

static enum chunk_step chunk_size_digit(struct http1_chunked *dec, int d)
{
	/* stay at or below 2^63-1, like Content-Length */
	if (dec->data_left > (HTTP1_INT63_MAX >> 4))
		return STEP_ERROR;
	dec->data_left = (dec->data_left << 4) | (uint64_t)d;
	dec->state = CH_SIZE;
	return STEP_MORE;
}

/* End of a chunk-size line: the chunk's data, or the trailer section. */
static enum chunk_step chunk_size_line_done(struct http1_chunked *dec)
{
	dec->line_len = 0;
	if (dec->data_left == 0) {
		dec->state = CH_TRAILER_START;
		return STEP_MORE;
	}
	dec->state = CH_DATA;
	return STEP_DATA;
}

/* After a complete extension value or a chunk-size. */
static enum chunk_step chunk_after_value(struct http1_chunked *dec, unsigned char c)
{
	if (c == ';')
		dec->state = CH_EXT_NAME_START;
	else if (is_ows(c))
		dec->state = CH_EXT_WS;
	else if (c == '\r')
		dec->state = CH_SIZE_LF;
	else
		return STEP_ERROR;
	return STEP_MORE;
}

static enum chunk_step chunk_ext_step(struct http1_chunked *dec, unsigned char c)
{
	switch ((enum chunk_state)dec->state) {
	case CH_EXT_NAME_START:
		if (is_ows(c))
			return STEP_MORE;
		if (!ascii_is_tchar(c))
			return STEP_ERROR;
		dec->state = CH_EXT_NAME;
		return STEP_MORE;
	case CH_EXT_NAME:
		if (ascii_is_tchar(c))
			return STEP_MORE;
		if (c == '=') {
			dec->state = CH_EXT_VAL_START;
			return STEP_MORE;
		}
		if (is_ows(c)) {
			dec->state = CH_EXT_NAME_WS;
			return STEP_MORE;
		}
		return chunk_after_value(dec, c);
	case CH_EXT_NAME_WS:
		if (c == '=')
			dec->state = CH_EXT_VAL_START;
		else if (c == ';')
			dec->state = CH_EXT_NAME_START;
		else if (!is_ows(c))
			return STEP_ERROR;
		return STEP_MORE;
	case CH_EXT_VAL_START:
		if (is_ows(c))
			return STEP_MORE;
		if (c == '"')
			dec->state = CH_EXT_QUOTED;
		else if (ascii_is_tchar(c))
			dec->state = CH_EXT_VAL_TOKEN;
		else
			return STEP_ERROR;
		return STEP_MORE;
	case CH_EXT_VAL_TOKEN:
		if (ascii_is_tchar(c))
			return STEP_MORE;
		return chunk_after_value(dec, c);
	case CH_EXT_QUOTED:
		if (c == '"')
			dec->state = CH_EXT_VAL_END;
		else if (c == '\\')
			dec->state = CH_EXT_QUOTED_ESC;
		else if (!is_qdtext(c))
			return STEP_ERROR;
		return STEP_MORE;
	case CH_EXT_QUOTED_ESC:
		if (!is_text(c))
			return STEP_ERROR;
		dec->state = CH_EXT_QUOTED;
		return STEP_MORE;
	case CH_EXT_VAL_END:
		return chunk_after_value(dec, c);
	case CH_EXT_WS:
		if (c == ';')
			dec->state = CH_EXT_NAME_START;
		else if (!is_ows(c))
			return STEP_ERROR;
		return STEP_MORE;
	default:
		assert(0 && "not an extension state");
		return STEP_ERROR;
	}
}

/* One byte of a chunk-size line, including its CRLF. */
static enum chunk_step chunk_size_line_step(struct http1_chunked *dec, unsigned char c)
{
	if (dec->state == CH_SIZE_LF)
		return c == '\n' ? chunk_size_line_done(dec) : STEP_ERROR;
	if (c != '\r' && ++dec->line_len > HTTP1_CHUNK_MAX_LINE)
		return STEP_ERROR;

	int d = og_hex_value(c);
	switch ((enum chunk_state)dec->state) {
	case CH_SIZE_START:
		return d < 0 ? STEP_ERROR : chunk_size_digit(dec, d);
	case CH_SIZE:
		if (d >= 0)
			return chunk_size_digit(dec, d);
		return chunk_after_value(dec, c);
	default:
		return chunk_ext_step(dec, c);
	}
}

/* One byte of the trailer section: field lines, then the final CRLF. */
static enum chunk_step chunk_trailer_step(struct http1_chunked *dec, unsigned char c)
{
	if (++dec->trailer_len > HTTP1_CHUNK_MAX_TRAILER)
		return STEP_ERROR;

	switch ((enum chunk_state)dec->state) {
	case CH_TRAILER_START:
		if (c == '\r')
			dec->state = CH_FINAL_LF;
		else if (ascii_is_tchar(c))
			dec->state = CH_TRAILER_NAME;
		else
			return STEP_ERROR; /* includes obs-fold and empty names */
		return STEP_MORE;
	case CH_TRAILER_NAME:
		if (c == ':')
			dec->state = CH_TRAILER_VALUE;
		else if (!ascii_is_tchar(c))
			return STEP_ERROR;
		return STEP_MORE;
	case CH_TRAILER_VALUE:
		if (c == '\r')
			dec->state = CH_TRAILER_LF;
		else if (!is_text(c))
			return STEP_ERROR;
		return STEP_MORE;
	case CH_TRAILER_LF:
		if (c != '\n')
			return STEP_ERROR;
		dec->state = CH_TRAILER_START;
		return STEP_MORE;
	case CH_FINAL_LF:
		if (c != '\n')
			return STEP_ERROR;
		dec->state = CH_DONE;
		return STEP_DONE;
	default:
		assert(0 && "not a trailer state");
		return STEP_ERROR;
	}
}

static enum chunk_step chunk_step(struct http1_chunked *dec, unsigned char c)
{
	switch ((enum chunk_state)dec->state) {
	case CH_DATA_CR:
		if (c != '\r')
			return STEP_ERROR;
		dec->state = CH_DATA_LF;
		return STEP_MORE;
	case CH_DATA_LF:
		if (c != '\n')
			return STEP_ERROR;
		dec->state = CH_SIZE_START;
		dec->data_left = 0;
		return STEP_MORE;
	case CH_TRAILER_START:
	case CH_TRAILER_NAME:
	case CH_TRAILER_VALUE:
	case CH_TRAILER_LF:
	case CH_FINAL_LF:
		return chunk_trailer_step(dec, c);
	case CH_DATA:
	case CH_DONE:
	case CH_ERROR:
		assert(0 && "chunk_step in a state that consumes nothing");
		return STEP_ERROR;
	default:
		return chunk_size_line_step(dec, c);
	}
}

enum http1_chunk_status http1_chunked_parse(struct http1_chunked *dec, const char *buf, size_t len,
					    size_t *consumed)
{
	enum http1_chunk_status status = HTTP1_CHUNK_NEED_MORE;
	size_t i = 0;

	*consumed = 0;
	switch ((enum chunk_state)dec->state) {
	case CH_DATA:
		return HTTP1_CHUNK_DATA;
	case CH_DONE:
		return HTTP1_CHUNK_DONE;
	case CH_ERROR:
		return HTTP1_CHUNK_ERROR;
	default:
		break;
	}
	while (i < len && status == HTTP1_CHUNK_NEED_MORE) {
		switch (chunk_step(dec, (unsigned char)buf[i++])) {
		case STEP_MORE:
			break;
		case STEP_DATA:
			status = HTTP1_CHUNK_DATA;
			break;
		case STEP_DONE:
			status = HTTP1_CHUNK_DONE;
			break;
		case STEP_ERROR:
			dec->state = CH_ERROR;
			status = HTTP1_CHUNK_ERROR;
			break;
		}
	}
	*consumed = i;
	return status;
}

bool http1_chunked_in_data(const struct http1_chunked *dec)
{
	return dec->state == CH_DATA && dec->data_left > 0;
}

void http1_chunked_took(struct http1_chunked *dec, uint64_t n)
{
	assert(dec->state == CH_DATA && n <= dec->data_left);
	dec->data_left -= n;
	if (dec->data_left == 0)
		dec->state = CH_DATA_CR;
}
