/* The proxy's URL space: which request-targets ocigate serves, how they map
 * to a connector and an upstream repository, and the name grammars of the
 * OCI distribution spec and of Kubernetes object names. Pure functions. */
#ifndef OCIGATE_PROXY_ROUTE_H
#define OCIGATE_PROXY_ROUTE_H

#include <sys/types.h>

#include "util/common.h"
#include "util/names.h"

enum route_kind {
	ROUTE_BASE,
	ROUTE_MANIFEST,
	ROUTE_BLOB,
	ROUTE_TAGS_LIST,
	ROUTE_REFERRERS,
	ROUTE_BLOB_UPLOAD,
};

enum route_error {
	ROUTE_OK = 0,
	ROUTE_E_NOT_FOUND,	/* not one of our paths at all: 404 */
	ROUTE_E_BAD_PATH,	/* escapes, dot or empty segments, bad bytes: 400 */
	ROUTE_E_NAMESPACE,	/* NS is not a DNS-1123 label: 400 */
	ROUTE_E_CONNECTOR,	/* NAME is not a DNS-1123 subdomain: 400 */
	ROUTE_E_NAME,		/* REPO fails the distribution name grammar: 400 */
	ROUTE_E_REFERENCE,	/* manifest REF neither tag nor digest: 404 MANIFEST_UNKNOWN */
	ROUTE_E_DIGEST,		/* blob/referrers DIGEST invalid: 400 */
};

struct route {
	enum route_kind kind;
	struct og_str ns, connector, repo; /* empty for ROUTE_BASE */
	/* tag or digest (MANIFEST), digest (BLOB, REFERRERS), upload id
	 * (BLOB_UPLOAD, may be empty or contain '/'), empty otherwise */
	struct og_str ref;
	bool ref_is_digest;
	/* bytes after '?', without it; empty when none. Kept (and part of the
	 * upstream target) on every route, meaningful only on tags/list,
	 * referrers and uploads. */
	struct og_str query;
	/* The upstream request-target is "/v2/" followed by
	 * target[upstream_off..len) (REPO/... with the query), so the caller can
	 * build it without re-encoding. For ROUTE_BASE upstream_off == len. */
	size_t upstream_off;
};

/* Parses an origin-form request-target (path plus optional query). All
 * og_str fields of out point into target. On error out is unspecified. */
OG_WARN_UNUSED enum route_error route_parse(const char *target, size_t len,
					    struct route *out);

/* HTTP status for a route error: 404 for ROUTE_E_NOT_FOUND and
 * ROUTE_E_REFERENCE (what a registry answers for a manifest that cannot
 * exist), else 400. */
int route_error_status(enum route_error e);
/* OCI distribution error code ("NAME_UNKNOWN", "NAME_INVALID", ...). */
const char *route_error_code(enum route_error e);
/* One human sentence saying what is wrong and what the rule is. */
const char *route_error_message(enum route_error e);

/* The grammars live in util/names.h; these two names stay for the callers
 * in proxy/exchange.c. */
static inline bool route_valid_repository(struct og_str s)
{
	return names_oci_repository(s);
}

static inline bool route_valid_digest(struct og_str s)
{
	return names_oci_digest(s);
}

/* Rewrites the target of a Link header value from upstream (tags/list and
 * referrers pagination, RFC 8288: `<URL>; rel="next"`) so that it points back
 * through the proxy: `</v2/REPO/tags/list?n=1&last=a>; rel="next"` becomes
 * `</v2/namespaces/NS/connectors/NAME/REPO/tags/list?n=1&last=a>; rel="next"`.
 * An absolute URL (`<https://host/v2/...>`) is reduced to its path. Writes the
 * value plus a terminating NUL into out (capacity out_cap) and returns the
 * length without the NUL, or -1 if the value is not a single link of that
 * form, or does not fit (the caller then drops the header). */
OG_WARN_UNUSED ssize_t route_rewrite_link(struct og_str link, struct og_str ns,
					  struct og_str connector, char *out,
					  size_t out_cap);

#endif
