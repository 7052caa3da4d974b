/* The admission webhook's HTTPS listener ([webhook] section): its own
 * address, certificate and key, on the proxy's event loop.
 *
 *   POST /mutate   Content-Type: application/json, an admission.k8s.io/v1
 *                  AdmissionReview (at most max_body bytes, Content-Length
 *                  or chunked) -> 200 with the AdmissionReview response
 *                  (k8s/admission.h); 400 when the body is not an
 *                  AdmissionReview, 413 too large, 415 not JSON, 404 other
 *                  paths, 405 other methods.
 *   GET /healthz   200 "ok".
 *
 * Connections are kept alive between reviews (the API server reuses them).
 * A request must arrive whole within header_timeout of its first byte; an
 * idle connection is closed after idle_timeout, a peer that takes no bytes
 * for send_timeout too.
 *
 * The certificate and key files are checked every few seconds (a stat, and
 * a read of the two small files when one changed: Secret volumes update by
 * swapping a symlink); a pair that loads and matches serves new
 * connections, a broken one is logged and the previous pair kept. */
#ifndef OCIGATE_PROXY_WEBHOOK_H
#define OCIGATE_PROXY_WEBHOOK_H

#include "k8s/admission.h"
#include "util/common.h"

struct event_base;
struct proxy;
struct webhook;

struct webhook_opts {
	const char *listen_host;  /* "" = all interfaces */
	uint16_t listen_port;     /* 0 = any free port */
	const char *cert_file, *key_file;
	bool inject;
	const char *public_address;
	size_t max_body;
	uint64_t header_timeout_ms, idle_timeout_ms, send_timeout_ms;
	unsigned cert_check_ms;   /* 0 = 2000 */
	k8s_admission_lookup_fn lookup;
	void *lookup_ctx;
};

/* Loads the certificate and binds the listener. Returns NULL with the
 * reason in err. The strings in o are copied. */
struct webhook *webhook_new(struct event_base *base, const struct webhook_opts *o, char *err,
			    size_t err_cap);
/* Closes the listener and every connection. */
void webhook_free(struct webhook *w);
/* The bound port (useful with port 0). */
uint16_t webhook_port(const struct webhook *w);

/* The webhook of px->cfg's [webhook] section, with connectors from the
 * Kubernetes store (Kubernetes mode) or from px->cfg's [connector]
 * sections (standalone mode, following reloads). NULL without a [webhook]
 * section (err empty) or on failure (err says why). */
struct webhook *webhook_start(struct proxy *px, char *err, size_t err_cap);

#endif
