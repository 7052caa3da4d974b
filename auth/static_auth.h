/* Standalone mode: client tokens from a kube-apiserver style token file and
 * connectors with allow lists, both from the config file. */
#ifndef OCIGATE_AUTH_STATIC_AUTH_H
#define OCIGATE_AUTH_STATIC_AUTH_H

#include "auth/auth.h"
#include "util/config.h"

/* Loads the tokens file and builds the connectors of cfg. Returns NULL with
 * a message in err when the tokens file cannot be used. */
struct auth_backend *static_auth_new(const struct config *cfg, char *err, size_t err_cap);

#endif
