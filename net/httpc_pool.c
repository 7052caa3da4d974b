#include "net/httpc_pool.h"

#include "net/httpc.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

void httpc_pool_init(struct httpc_pool *p, httpc_idle_close_fn close)
{
	p->head = NULL;
	p->n_idle = 0;
	p->close = close;
}

void httpc_pool_remove(struct httpc_idle *e)
{
	struct httpc_pool *p = e->pool;

	if (!p)
		return;
	if (e->prev)
		e->prev->next = e->next;
	else
		p->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	bufferevent_setcb(e->bev, NULL, NULL, NULL, NULL);
	e->next = e->prev = NULL;
	e->pool = NULL;
	e->bev = NULL;
	p->n_idle--;
}

struct httpc_idle *httpc_pool_take(struct httpc_pool *p)
{
	struct httpc_idle *e = p->head;

	if (e)
		httpc_pool_remove(e);
	return e;
}

static void httpc_idle_end(struct httpc_idle *e, const char *reason)
{
	httpc_idle_close_fn close = e->pool->close;

	httpc_pool_remove(e);
	close(e, reason);
}

/* An idle connection has nothing to say: bytes that arrive on it were not
 * asked for, and it cannot be reused. */
static void httpc_idle_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	httpc_idle_end(arg, "idle_unexpected_bytes");
}

static void httpc_idle_event(struct bufferevent *bev, short events, void *arg)
{
	(void)bev;
	httpc_idle_end(arg, (events & BEV_EVENT_TIMEOUT) ? "idle_timeout" :
			    (events & BEV_EVENT_EOF) ? "idle_closed_by_peer" : "idle_error");
}

int httpc_pool_put(struct httpc_pool *p, struct httpc_idle *e, struct bufferevent *bev,
		   unsigned max_idle, const struct timeval *idle_tv, const char **why)
{
	if (p->n_idle >= max_idle) {
		*why = "pool_full";
		return -1;
	}
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		*why = "unread_input";
		return -1;
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		*why = "unsent_output";
		return -1;
	}
	bufferevent_setcb(bev, httpc_idle_read, NULL, httpc_idle_event, e);
	bufferevent_set_timeouts(bev, idle_tv, NULL);
	httpc_enable(bev, EV_READ);
	e->pool = p;
	e->bev = bev;
	e->prev = NULL;
	e->next = p->head;
	if (p->head)
		p->head->prev = e;
	p->head = e;
	p->n_idle++;
	return 0;
}
