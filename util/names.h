/* The name grammars ocigate checks, in one place so that every caller agrees
 * (the webhook must never write an image reference the proxy then refuses):
 *
 *   dns1123 label      [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63    (namespace)
 *   dns1123 subdomain  labels joined by '.', at most 253 in all      (object name)
 *   OCI repository     component ("/" component)*, at most 255
 *   OCI component      [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   OCI tag            [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   OCI digest         algorithm ":" encoded
 *     algorithm        [a-z0-9]+ ( [+._-] [a-z0-9]+ )*
 *     encoded          sha256: exactly 64 lower-case hex; sha512: exactly 128
 *                      lower-case hex; any other algorithm: [A-Za-z0-9=_-]+
 *                      (the OCI image spec lets unregistered algorithms
 *                      through with that grammar; the registry decides
 *                      whether it knows them)
 *   host               DNS name (labels of [A-Za-z0-9] with inner '-', each
 *                      at most 63, at most 253 in all, one trailing '.'
 *                      allowed), or an IPv4 address when it is all digits and
 *                      dots; IPv6 only in brackets, as inet_pton reads it
 *   port               1 to 65535 in decimal, at most 5 digits
 *
 * Pure functions on bytes; nothing here allocates. */
#ifndef OCIGATE_UTIL_NAMES_H
#define OCIGATE_UTIL_NAMES_H

#include "util/common.h"

#define NAMES_LABEL_MAX 63
#define NAMES_SUBDOMAIN_MAX 253
#define NAMES_REPOSITORY_MAX 255
#define NAMES_TAG_MAX 128

bool names_dns1123_label(struct og_str s);
bool names_dns1123_subdomain(struct og_str s);
bool names_oci_component(struct og_str s);
bool names_oci_repository(struct og_str s);
bool names_oci_tag(struct og_str s);
bool names_oci_digest(struct og_str s);

/* A DNS name or an IPv4 address (not IPv6). */
bool names_host(struct og_str s);
/* An IPv6 address without brackets. */
bool names_ipv6(struct og_str s);
/* Decimal port from min (0 or 1) to 65535. */
OG_WARN_UNUSED int names_port(struct og_str s, unsigned min, uint16_t *out);

struct names_hostport {
	struct og_str host; /* IPv6 without brackets; case as written */
	bool ipv6;
	bool has_port;
	uint16_t port; /* 0 when has_port is false */
};

/* host [":" port] with IPv6 in brackets ("[::1]:5000"); port 1-65535. */
OG_WARN_UNUSED int names_hostport(struct og_str s, struct names_hostport *out);

#endif
