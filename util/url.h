/* Absolute http(s) URLs met on the wire: token service realms, redirect
 * targets. A URL is split into what a request needs: the scheme, the
 * origin's host and port, and the request-target (path and query). */
#ifndef OCIGATE_UTIL_URL_H
#define OCIGATE_UTIL_URL_H

#include <sys/types.h>

#include "util/common.h"

struct url {
	bool https;
	char *host;    /* lower-cased; IPv6 without brackets */
	uint16_t port; /* as written, else 80 or 443 */
	char *target;  /* path and query, "/" when the URL has neither; no fragment */
};

/* Parses http(s)://host[:port][/path][?query][#fragment]. Refuses other
 * schemes, credentials in the URL, invalid hosts or ports, and control
 * characters or spaces anywhere. Returns -1 and leaves *out zeroed on
 * error. */
OG_WARN_UNUSED int url_parse(struct og_str s, struct url *out);
/* Accepts a zeroed struct; leaves it zeroed. */
void url_free(struct url *u);
/* A base URL from configuration (registry address, API server):
 * http(s)://host[:port][/prefix], no credentials, query or fragment; the
 * path is RFC 3986 pchar and '/' with well-formed escapes. */
struct url_base {
	bool https;
	char *host;        /* lower-cased; IPv6 without brackets */
	uint16_t port;     /* as written, else 80 or 443 */
	char *path_prefix; /* "" or "/a/b": starts with '/', never ends with '/' */
	char *text;        /* as written */
};

/* Parses with url_parse plus the rules above. On error returns -1 with a
 * reason in err (no prefix: "port must be a number from 1 to 65535") and *u
 * zeroed. */
OG_WARN_UNUSED int url_base_parse(struct url_base *u, const char *s, size_t n, char *err,
				  size_t err_cap);
/* Accepts a zeroed struct; leaves it zeroed. */
void url_base_free(struct url_base *u);
/* The authority a Host header names: "host" or "host:port", the port only
 * when it is not the scheme's default, an IPv6 address in brackets.
 * Allocated (x_malloc). */
char *url_host_header(const char *host, uint16_t port, bool https);
/* Percent-encodes s for a query component (everything but RFC 3986
 * unreserved characters). Returns the length written (NUL-terminated), or -1
 * when it does not fit in cap. */
ssize_t url_encode_component(const char *s, char *out, size_t cap);
/* Resolves ref (absolute URL, "//host/...", "/path?query", or a relative
 * path) against base into out (free with url_free); dot segments ("." and
 * "..") are removed from the path whatever the kind of ref. */
OG_WARN_UNUSED int url_resolve(const struct url *base, struct og_str ref, struct url *out);
/* Decodes %XX escapes into out; -1 on a bad escape, a decoded NUL, or when
 * it does not fit. */
OG_WARN_UNUSED ssize_t url_decode_component(const char *s, size_t n, char *out, size_t cap);

#endif
