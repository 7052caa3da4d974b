/* Binding a listening socket for one of the proxy's listeners (client
 * plain and TLS, admin). */
#ifndef OCIGATE_PROXY_LISTEN_H
#define OCIGATE_PROXY_LISTEN_H

#include <event2/listener.h>

#include "util/config.h"

/* Start-up only: resolving the address may block, the loop is not running
 * yet. text gets the bound address ("127.0.0.1:41234"). NULL with a line
 * logged (event=listen_failed, name=what) on failure. */
struct evconnlistener *listen_bind(struct event_base *base, const struct config_address *a,
				   const char *what, evconnlistener_cb cb, void *arg, char *text,
				   size_t text_cap);

#endif
