/* The admin listener ([server] admin_listen): GET /metrics (Prometheus
 * text format 0.0.4), /healthz and /readyz, for the operator's monitoring
 * only; the client listeners never serve /metrics. One request per
 * connection, plain HTTP. */
#ifndef OCIGATE_PROXY_ADMIN_H
#define OCIGATE_PROXY_ADMIN_H

#include "proxy/proxy.h"

struct admin;

/* Listens when admin_listen is set (px->admin stays NULL otherwise). */
OG_WARN_UNUSED int admin_start(struct proxy *px);
/* Stops listening and closes its connections (at shutdown, before the loop ends). */
void admin_free(struct admin *a);

/* The answer to GET target if it is /healthz or /readyz: the status (200
 * or 503) and a text body; 0 for any other target. */
int admin_health(const struct proxy *px, struct og_str target, const char **body);

#endif
