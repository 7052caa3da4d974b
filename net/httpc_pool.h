/* Idle keep-alive connections to one peer, shared by the registry side
 * (proxy/upstream.c) and the API-server side (k8s/client.c).
 *
 * A connection whose response was read completely is put back; the pool
 * owns its bufferevent callbacks until it is taken again. While idle, any
 * readable byte or event means the peer closed it (or sent what nobody
 * asked for), and the idle timeout ends it too: either way the pool calls
 * the owner's close function with a short reason. The owner embeds a
 * struct httpc_idle in its connection and keeps its own counters. */
#ifndef OCIGATE_NET_HTTPC_POOL_H
#define OCIGATE_NET_HTTPC_POOL_H

#include <stdbool.h>

#include "util/common.h"

struct bufferevent;
struct timeval;
struct httpc_idle;

/* Ends an idle connection the pool gave up on (the owner frees it). */
typedef void (*httpc_idle_close_fn)(struct httpc_idle *e, const char *reason);

struct httpc_idle {
	struct httpc_pool *pool; /* while idle; NULL while borrowed */
	struct bufferevent *bev; /* while idle */
	struct httpc_idle *next, *prev;
};

struct httpc_pool {
	struct httpc_idle *head; /* most recently put first */
	unsigned n_idle;
	httpc_idle_close_fn close;
};

void httpc_pool_init(struct httpc_pool *p, httpc_idle_close_fn close);

/* Puts e (whose bev carried a complete response) back. Returns -1 with a
 * reason when it cannot be reused: the pool holds max_idle already, or
 * bytes are left in either direction; the caller then closes it. */
OG_WARN_UNUSED int httpc_pool_put(struct httpc_pool *p, struct httpc_idle *e, struct bufferevent *bev,
				  unsigned max_idle, const struct timeval *idle_tv,
				  const char **why);

/* The most recently put idle connection, unlinked, or NULL. It has no
 * callbacks; they and the timeouts are the caller's to set. */
struct httpc_idle *httpc_pool_take(struct httpc_pool *p);

/* Unlinks e if it is idle (before closing it) and clears the pool's
 * callbacks; a no-op otherwise. */
void httpc_pool_remove(struct httpc_idle *e);

#endif
