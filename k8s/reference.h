/* Container image references, as the distribution reference grammar
 * (github.com/distribution/reference) and the container runtimes read them:
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] path
 *   domain     := host [ ":" port ]        host: DNS name, IPv4, or [IPv6]
 *   path       := component ( "/" component )*
 *
 * host, port, component, tag and digest are the rules of util/names.h, the
 * same the proxy's routes check: a digest is the OCI one (lower-case
 * algorithm, sha256 with exactly 64 and sha512 with exactly 128 lower-case
 * hex digits), so an upper-case algorithm or hex, or a short sha256, is
 * refused here rather than written into a pod the proxy would then refuse.
 *
 * The first component is the registry host when it contains '.' or ':',
 * is "localhost", or has an upper-case letter; otherwise the image is on
 * Docker Hub: the domain is "docker.io" and a one-component path gets
 * "library/" (nginx -> docker.io/library/nginx). "index.docker.io" is the
 * same as "docker.io". Upper case in the path is refused, as is a path
 * that is a 64-character hex string (it reads as an image ID). A name
 * longer than 255 characters is refused. Tag and digest may both be given;
 * the digest then decides what is pulled. */
#ifndef OCIGATE_K8S_REFERENCE_H
#define OCIGATE_K8S_REFERENCE_H

#include "util/common.h"

#define K8S_REFERENCE_NAME_MAX 255
#define K8S_REFERENCE_TAG_MAX 128

struct k8s_reference {
	char *domain;  /* normalized: "docker.io" for Hub images, else as written */
	char *host;    /* domain without port, lower-cased, IPv6 without brackets */
	uint16_t port; /* 0 when the reference names no port */
	char *path;    /* repository path, "library/" added for Hub short names */
	char *tag;     /* NULL when absent */
	char *digest;  /* NULL when absent */
};

/* Parses s (n bytes, no NUL needed). On error returns -1 with a message in
 * err ("invalid reference format: repository name must be lowercase") and
 * *out zeroed; free *out either way. */
OG_WARN_UNUSED int k8s_reference_parse(const char *s, size_t n, struct k8s_reference *out,
				       char *err, size_t err_cap);
void k8s_reference_free(struct k8s_reference *r);

/* Canonical registry host: the Docker Hub names (docker.io, index.docker.io,
 * registry-1.docker.io) become "docker.io"; others are lower-cased. Writes a
 * NUL-terminated string to out; -1 when it does not fit. */
OG_WARN_UNUSED int k8s_reference_canonical_host(const char *host, char *out, size_t cap);

/* True when the image is served by the registry at host:port. A reference
 * without a port means the registry's standard one: 443, or 80 for a
 * plain-http registry (https false). Hosts compare by their canonical
 * form, so Docker Hub short names match a docker.io connector. */
bool k8s_reference_on_registry(const struct k8s_reference *r, const char *host, uint16_t port,
			       bool https);

/* "PREFIX/PATH[:TAG][@DIGEST]" as a new string. */
char *k8s_reference_rewrite(const struct k8s_reference *r, const char *prefix);

#endif
