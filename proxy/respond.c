#include "proxy/respond.h"

#include <string.h>

#include <event2/buffer.h>

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

static void respond_head(struct evbuffer *out, int status, const char *content_type,
			 size_t body_len, const struct respond_opts *o)
{
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\n"
			    "Content-Type: %s\r\n"
			    "Content-Length: %zu\r\n"
			    "Docker-Distribution-Api-Version: registry/2.0\r\n",
			    status, respond_reason(status), content_type, body_len);
	if (o->realm)
		evbuffer_add_printf(out, "WWW-Authenticate: Basic realm=\"%s\"\r\n", o->realm);
	if (o->retry_after)
		evbuffer_add_printf(out, "Retry-After: %u\r\n", o->retry_after);
	if (o->close)
		evbuffer_add(out, "Connection: close\r\n", 19);
	evbuffer_add(out, "\r\n", 2);
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
