/* Base64 (RFC 4648 section 4: standard alphabet, with padding). The decoder
 * is strict so that every accepted input has exactly one encoding. */
#ifndef OCIGATE_UTIL_BASE64_H
#define OCIGATE_UTIL_BASE64_H

#include <sys/types.h>

#include "util/common.h"

/* Length of the encoding of n bytes, without a NUL. */
size_t base64_encoded_len(size_t n);
/* Writes base64_encoded_len(n) characters and a NUL to out; returns the
 * number of characters. */
size_t base64_encode(const void *in, size_t n, char *out);
/* Decodes n characters into out (capacity out_cap) and returns the number of
 * bytes, or -1 if the input is not canonical base64 (bad characters, length
 * not a multiple of 4, misplaced or excess '=', non-zero bits in the padding
 * position) or the result does not fit. */
OG_WARN_UNUSED ssize_t base64_decode(const char *in, size_t n,
				     unsigned char *out, size_t out_cap);

/* Unpadded base64url (RFC 4648 section 5, as JWTs use it, RFC 7515). */
OG_WARN_UNUSED ssize_t base64url_decode(const char *in, size_t n, unsigned char *out, size_t out_cap);

#endif
