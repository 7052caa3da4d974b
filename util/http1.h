/* Strict HTTP/1.1 message-head parsers and chunked decoder (RFC 9112).
 *
 * Pure functions over bytes: no allocation, no I/O, no global state. The
 * results point into the caller's buffer, which must outlive them. Strictness
 * is deliberate: this code sits between clients and registries, so anything
 * two implementations could frame differently is rejected. */
#ifndef OCIGATE_UTIL_HTTP1_H
#define OCIGATE_UTIL_HTTP1_H

#include "util/common.h"

#include <sys/types.h> /* ssize_t */

enum http_method {
	HTTP_M_OTHER = 0,
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_PATCH,
	HTTP_M_DELETE,
	HTTP_M_OPTIONS,
};

enum http1_body {
	HTTP1_BODY_NONE,
	HTTP1_BODY_LENGTH,
	HTTP1_BODY_CHUNKED,
	HTTP1_BODY_UNTIL_CLOSE,
};

enum http1_error {
	HTTP1_E_NONE = 0,
	HTTP1_E_HEAD_TOO_LARGE,    /* head longer than limits->max_head_bytes (431 for requests) */
	HTTP1_E_TOO_MANY_HEADERS,  /* more than limits->max_headers fields (431) */
	HTTP1_E_REQUEST_LINE,      /* malformed request line (400) */
	HTTP1_E_STATUS_LINE,       /* malformed status line */
	HTTP1_E_VERSION,           /* not HTTP/1.0 or HTTP/1.1 (505 for requests) */
	HTTP1_E_HEADER_SYNTAX,     /* bad field name, space before colon, control char in value ... (400) */
	HTTP1_E_OBS_FOLD,          /* obsolete line folding (400) */
	HTTP1_E_BARE_CR,           /* CR not followed by LF, or bare LF line ending (400) */
	HTTP1_E_CL_AND_TE,         /* both Content-Length and Transfer-Encoding (400) */
	HTTP1_E_BAD_CONTENT_LENGTH,/* not 1*DIGIT, overflow, or differing duplicates (400) */
	HTTP1_E_BAD_TRANSFER_ENCODING, /* anything but a final "chunked" (501 for requests) */
	HTTP1_E_HOST,              /* HTTP/1.1 request without Host, several Host fields, or an invalid Host value (400) */
};

struct http1_limits {
	size_t max_head_bytes; /* whole head including the request/status line and final CRLFCRLF */
	size_t max_headers;    /* capacity of the headers array the caller passes */
};

struct http1_header {
	struct og_str name;  /* as received (case preserved) */
	struct og_str value; /* leading/trailing OWS trimmed */
};

struct http1_request {
	enum http_method method;
	struct og_str method_str;
	struct og_str target;       /* request-target as received */
	int version_minor;          /* 0 or 1 */
	struct http1_header *headers; /* caller sets this to an array of limits->max_headers entries before parsing */
	size_t n_headers;
	enum http1_body body;       /* NONE, LENGTH or CHUNKED for requests (never UNTIL_CLOSE) */
	uint64_t content_length;    /* the Content-Length value when one was sent (body == LENGTH), else 0 */
	bool keep_alive;            /* HTTP/1.1 default true unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive" */
	bool expect_continue;       /* "Expect: 100-continue" in an HTTP/1.1 request (ignored for 1.0, RFC 9110 10.1.1) */
};

struct http1_response {
	int status;                 /* 100..599 */
	struct og_str reason;
	int version_minor;
	struct http1_header *headers; /* caller-provided, as above */
	size_t n_headers;
	enum http1_body body;       /* per RFC 9112 section 6.3, given the request method */
	uint64_t content_length;    /* the Content-Length value when one was sent (also for HEAD/204/304, where body == NONE), else 0 */
	bool has_content_length;    /* a valid Content-Length field was present */
	bool keep_alive;            /* false when "Connection: close", HTTP/1.0 without keep-alive, or body == UNTIL_CLOSE */
};

/* Parse a complete request head at the start of buf. Returns the number of
 * bytes of the head (through the empty line, including up to 2 skipped
 * leading CRLFs) when complete, 0 when more bytes are needed (and
 * len < max_head_bytes), or -1 with *err set. When len >= max_head_bytes and
 * no complete head is found, that is HTTP1_E_HEAD_TOO_LARGE. Line-ending
 * errors (bare CR/LF) are reported as soon as they are seen, other errors
 * once the head is complete. *req is only meaningful when the return is > 0. */
OG_WARN_UNUSED ssize_t http1_parse_request(const char *buf, size_t len, const struct http1_limits *limits,
					   struct http1_request *req, enum http1_error *err);

/* Same for a response head. request_method tells whether the response can
 * have a body: responses to HEAD, and 1xx/204/304 responses, never do. */
OG_WARN_UNUSED ssize_t http1_parse_response(const char *buf, size_t len, const struct http1_limits *limits,
					    enum http_method request_method, struct http1_response *resp,
					    enum http1_error *err);

/* First field with this name (case-insensitive), or NULL. */
const struct http1_header *http1_find_header(const struct http1_header *headers, size_t n, const char *name);

/* True for hop-by-hop fields a proxy must not forward: Connection, Keep-Alive,
 * Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
 * Transfer-Encoding, Upgrade, plus any field named in a Connection header of
 * this message (headers/n are the message's fields). */
bool http1_is_hop_by_hop(struct og_str name, const struct http1_header *headers, size_t n);

const char *http1_error_str(enum http1_error err);  /* short snake_case reason for logs, e.g. "bare_cr" */
/* HTTP status to answer a client with: 400, 431, 501, 505; 502 for
 * HTTP1_E_STATUS_LINE (only upstream responses have status lines); 0 for
 * HTTP1_E_NONE. */
int http1_error_status(enum http1_error err);
const char *http1_method_name(enum http_method m);  /* "GET", ... "OTHER" */

/* Chunked transfer coding decoder (RFC 9112 section 7.1). */
enum http1_chunk_status {
	HTTP1_CHUNK_NEED_MORE,
	HTTP1_CHUNK_DATA,
	HTTP1_CHUNK_DONE,
	HTTP1_CHUNK_ERROR,
};

#define HTTP1_CHUNK_MAX_LINE 4096     /* longest chunk-size line (with extensions), without CRLF */
#define HTTP1_CHUNK_MAX_TRAILER 16384 /* longest trailer section, with its CRLFs */

struct http1_chunked {
	unsigned state;       /* private */
	uint64_t data_left;   /* bytes of chunk data that follow in the stream when parse returned DATA */
	size_t line_len;      /* private: length of the current framing line, for the limit */
	size_t trailer_len;   /* private */
};

void http1_chunked_init(struct http1_chunked *dec);
/* Consume framing bytes (chunk-size lines with optional extensions, the CRLF
 * after chunk data, the last-chunk, trailer fields, the final CRLF) from
 * buf[0..len). *consumed is set to how many bytes were consumed. Returns DATA
 * when the next bytes in the stream are chunk data: the caller moves up to
 * dec->data_left bytes itself and reports them with http1_chunked_took(), then
 * calls parse again with the following bytes (calling parse while data_left
 * is still non-zero returns DATA again and consumes nothing). NEED_MORE when
 * all of buf was consumed without reaching data or the end. DONE when the
 * whole body, including trailers, has been consumed (*consumed stops right
 * after it; bytes after it belong to the next message). ERROR on invalid
 * framing: non-hex size, size above 2^63-1, missing CRLF after data, bare
 * CR/LF, whitespace not followed by an extension, control characters,
 * framing line longer than HTTP1_CHUNK_MAX_LINE bytes, malformed trailer field
 * or trailer section longer than HTTP1_CHUNK_MAX_TRAILER bytes. DONE and ERROR
 * are sticky. */
OG_WARN_UNUSED enum http1_chunk_status http1_chunked_parse(struct http1_chunked *dec, const char *buf, size_t len,
							   size_t *consumed);
/* Report n bytes of chunk data moved by the caller; n <= dec->data_left. */
void http1_chunked_took(struct http1_chunked *dec, uint64_t n);
/* True when the next bytes in the stream are chunk data (dec->data_left of
 * them). data_left alone does not tell: it also holds a chunk size while
 * its line is still being read. */
bool http1_chunked_in_data(const struct http1_chunked *dec);

#endif
