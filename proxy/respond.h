/* Responses ocigate makes itself: OCI error bodies, the version check,
 * health answers. Each writes a whole response into out. */
#ifndef OCIGATE_PROXY_RESPOND_H
#define OCIGATE_PROXY_RESPOND_H

#include "util/common.h"

struct evbuffer;

struct respond_opts {
	bool head;          /* HEAD request: headers only */
	bool close;         /* add Connection: close */
	const char *realm;  /* add a Basic challenge (401) */
	unsigned retry_after; /* seconds, 0 = none */
};

const char *respond_reason(int status);

/* {"errors":[{"code":CODE,"message":MESSAGE,"detail":{"connector":...}}]};
 * connector may be NULL. Returns the body length. */
size_t respond_error(struct evbuffer *out, int status, const char *code, const char *message,
		     const char *connector, const struct respond_opts *o);

/* A JSON or text body with the given content type. Returns the body length. */
size_t respond_body(struct evbuffer *out, int status, const char *content_type, const char *body,
		    size_t body_len, const struct respond_opts *o);

#endif
