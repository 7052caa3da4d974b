#include "proxy/respond.h"

#include <string.h>

#include <event2/buffer.h>

#include "util/http1_buf.h"
#include "util/json_write.h"

const char *respond_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* Reasons and content types are our constants. */
static void respond_head(struct evbuffer *out, int status, const char *content_type,
			 size_t body_len, const struct respond_opts *o)
{
	static const char api[] = "Docker-Distribution-Api-Version: registry/2.0\r\n";
	struct http1_head h;

	http1_head_begin(&h, out);
	http1_head_status_line(&h, status, respond_reason(status));
	http1_head_field(&h, "Content-Type", 12, content_type, strlen(content_type));
	http1_head_u64_field(&h, "Content-Length", body_len);
	http1_head_add(&h, api, sizeof(api) - 1);
	if (o->realm) {
		http1_head_add(&h, "WWW-Authenticate: Basic realm=\"", 31);
		http1_head_add(&h, o->realm, strlen(o->realm));
		http1_head_add(&h, "\"\r\n", 3);
	}
	if (o->retry_after)
		http1_head_u64_field(&h, "Retry-After", o->retry_after);
	if (o->close)
		http1_head_add(&h, "Connection: close\r\n", 19);
	http1_head_add(&h, "\r\n", 2);
	http1_head_flush(&h);
}

size_t respond_body(struct evbuffer *out, int status, const char *content_type, const char *body,
		    size_t body_len, const struct respond_opts *o)
{
	respond_head(out, status, content_type, body_len, o);
	if (!o->head)
		evbuffer_add(out, body, body_len);
	return body_len;
}

size_t respond_error(struct evbuffer *out, int status, const char *code, const char *message,
		     const char *connector, const struct respond_opts *o)
{
	struct evbuffer *body = evbuffer_new();
	size_t len;

	evbuffer_add_printf(body, "{\"errors\":[{\"code\":\"%s\",\"message\":", code);
	jsonw_string(body, message, strlen(message));
	if (connector) {
		evbuffer_add(body, ",\"detail\":{\"connector\":", 23);
		jsonw_string(body, connector, strlen(connector));
		evbuffer_add(body, "}", 1);
	}
	evbuffer_add(body, "}]}\n", 4);
	len = evbuffer_get_length(body);
	respond_head(out, status, "application/json; charset=utf-8", len, o);
	if (!o->head)
		evbuffer_add_buffer(out, body);
	evbuffer_free(body);
	return len;
}
