#include "proxy/accept_guard.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "util/log.h"

/* Long enough that a process out of descriptors spends no CPU on retries,
 * short enough that a descriptor freed outside our connections (an
 * upstream or API socket) is used soon. */
static const struct timeval accept_guard_retry_tv = { 0, 100 * 1000 };
/* At most one accept_error line per listener in this many seconds. */
#define ACCEPT_GUARD_LOG_INTERVAL_S 10

static void accept_guard_apply(struct accept_guard *g)
{
	bool want = !g->full && !g->starved;

	if (!g->lev || want == g->enabled)
		return;
	if (want)
		evconnlistener_enable(g->lev);
	else
		evconnlistener_disable(g->lev);
	g->enabled = want;
}

static bool accept_guard_out_of_resources(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void accept_guard_log(struct accept_guard *g, int err, bool starved)
{
	struct timespec now;

	g->failures++;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (g->logged_at.tv_sec != 0 &&
	    now.tv_sec - g->logged_at.tv_sec < ACCEPT_GUARD_LOG_INTERVAL_S)
		return;
	log_error("accept_error", "listener=%s reason=\"%s\" failures=%" PRIu64 " action=%s", g->what,
		  strerror(err), g->failures, starved ? "pause_accepting" : "none");
	g->failures = 0;
	g->logged_at = now;
}

void accept_guard_on_error(struct accept_guard *g, int err)
{
	bool starved = accept_guard_out_of_resources(err);

	accept_guard_log(g, err, starved);
	if (!starved)
		return;
	g->starved = true;
	accept_guard_apply(g);
	evtimer_add(g->retry, &accept_guard_retry_tv);
}

static void accept_guard_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct accept_guard *g = arg;

	(void)fd;
	(void)what;
	g->starved = false;
	accept_guard_apply(g);
}

void accept_guard_init(struct accept_guard *g, struct event_base *base, struct evconnlistener *lev,
		       const char *what)
{
	memset(g, 0, sizeof(*g));
	g->lev = lev;
	g->what = what;
	g->enabled = true;
	g->retry = evtimer_new(base, accept_guard_on_retry, g);
}

void accept_guard_free(struct accept_guard *g)
{
	if (g->retry)
		event_free(g->retry);
	g->retry = NULL;
	g->lev = NULL;
}

void accept_guard_set_full(struct accept_guard *g, bool full)
{
	g->full = full;
	accept_guard_apply(g);
}

void accept_guard_slot_freed(struct accept_guard *g)
{
	if (!g->starved)
		return;
	evtimer_del(g->retry);
	g->starved = false;
	accept_guard_apply(g);
}
