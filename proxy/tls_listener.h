/* The client listener over TLS ([tls] listen): the same connections and
 * request handling as the plain listener, on an OpenSSL bufferevent. The
 * certificate pair is re-read on SIGHUP and when its files change; open
 * connections keep the pair they started with. */
#ifndef OCIGATE_PROXY_TLS_LISTENER_H
#define OCIGATE_PROXY_TLS_LISTENER_H

#include "proxy/proxy.h"

struct tls_listener;

/* Listens when [tls] listen is set (px->tls stays NULL otherwise). */
OG_WARN_UNUSED int tls_listener_start(struct proxy *px);
/* SIGHUP: loads the pair named by px->cfg now, whether or not it changed. */
void tls_listener_reload(struct proxy *px);
/* Stops accepting (graceful shutdown). */
void tls_listener_close(struct proxy *px);
/* A client connection went away: accept again if max_connections paused it. */
void tls_listener_conn_gone(struct proxy *px);
void tls_listener_free(struct tls_listener *t);

#endif
