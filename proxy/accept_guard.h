/* Keeps a listener from spinning when accept() fails for want of file
 * descriptors or kernel memory. The listening socket stays readable while
 * the connection waits in the backlog, so libevent would call accept()
 * again at once, forever, logging each failure. The guard turns the
 * listener off instead, tries again after a short delay or as soon as a
 * connection closes, and logs one line per burst of failures.
 *
 * It also carries the owner's own reason to stop accepting (its
 * connection limit): the listener accepts only when neither applies. */
#ifndef OCIGATE_PROXY_ACCEPT_GUARD_H
#define OCIGATE_PROXY_ACCEPT_GUARD_H

#include <time.h>

#include "util/common.h"

struct event;
struct event_base;
struct evconnlistener;

struct accept_guard {
	struct evconnlistener *lev;
	struct event *retry;
	const char *what;      /* names the listener in log lines */
	bool enabled;          /* the listener's current state */
	bool full;             /* the owner's connection limit is reached */
	bool starved;          /* out of descriptors: waiting to retry */
	uint64_t failures;     /* accept() failures not logged yet */
	struct timespec logged_at;
};

/* what must outlive the guard. */
void accept_guard_init(struct accept_guard *g, struct event_base *base, struct evconnlistener *lev,
		       const char *what);
/* From the listener's error callback (which gets the listener's own
 * argument, hence the owner forwards), with EVUTIL_SOCKET_ERROR(). */
void accept_guard_on_error(struct accept_guard *g, int err);
/* Releases the timer; the listener stays the owner's. */
void accept_guard_free(struct accept_guard *g);
/* The owner's connection limit is reached (or no longer). */
void accept_guard_set_full(struct accept_guard *g, bool full);
/* A connection closed, so a descriptor is free: accept again now. */
void accept_guard_slot_freed(struct accept_guard *g);

#endif
