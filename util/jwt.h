/* Reading a JWT's exp claim (RFC 7519) without verifying anything: only
 * to bound how long something derived from the token may be reused. */
#ifndef OCIGATE_UTIL_JWT_H
#define OCIGATE_UTIL_JWT_H

#include "util/common.h"

/* exp of a compact JWS (header.payload.signature, unpadded base64url),
 * truncated to whole seconds (a negative one is simply long past). Returns
 * -1 when the token is not a JWT or has no usable exp (not a number,
 * beyond +-1e15). */
OG_WARN_UNUSED int jwt_exp(struct og_str token, int64_t *exp);

#endif
