/* Writing JSON text: string escaping per RFC 8259. */
#ifndef OCIGATE_UTIL_JSON_WRITE_H
#define OCIGATE_UTIL_JSON_WRITE_H

#include "util/common.h"

struct evbuffer;

/* Appends s as a quoted JSON string: well-formed UTF-8 as it is, control
 * characters escaped, bytes that are not UTF-8 as U+FFFD, so the output is
 * always valid JSON. */
void jsonw_string(struct evbuffer *out, const char *s, size_t n);

#endif
