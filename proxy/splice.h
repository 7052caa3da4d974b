/* Zero-copy relay of a known number of bytes from one plain TCP socket to
 * another: splice(2) through a pipe, on raw events, outside the
 * bufferevents (libevent 2.1 reads sockets 4 KiB at a time and copies every
 * byte through an evbuffer). Used for response bodies when the upstream and
 * the client are both plain TCP and nothing transforms the bytes. */
#ifndef OCIGATE_PROXY_SPLICE_H
#define OCIGATE_PROXY_SPLICE_H

#include <sys/time.h>

#include "util/common.h"

struct event_base;
struct splice_relay;

/* Called once, when all bytes reached `to` (reason NULL) or the relay
 * failed (reason: upstream_closed, upstream_error, upstream_read_timeout,
 * client_error, send_timeout). The relay may be freed from here. */
typedef void (*splice_done_fn)(void *arg, const char *reason);

/* Starts moving len bytes from `from` to `to`; NULL when no pipe could be
 * made (the caller relays through its buffers instead). Neither socket may
 * have other events armed while the relay runs. */
struct splice_relay *splice_relay_start(struct event_base *base, int from, int to, uint64_t len,
					const struct timeval *read_timeout,
					const struct timeval *write_timeout, splice_done_fn done,
					void *arg);
/* Bytes written to `to` so far. */
uint64_t splice_relay_moved(const struct splice_relay *r);
void splice_relay_free(struct splice_relay *r);

#endif
