#include "proxy/park.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "proxy/conn.h"
#include "util/xalloc.h"

/* One recv takes a whole request head of the default max_header_bytes
 * (16k). A longer head or pipelined burst is not lost: the rebuilt
 * connection reads the rest on the next loop round. */
#define PARK_READ_BYTES (16 * 1024)

struct park {
	struct park *prev, *next; /* px->parked: oldest first */
	struct proxy *px;
	int64_t parked_ms;        /* CLOCK_MONOTONIC */
	struct park_ident who;
	/* The read event, in the same allocation. Its size is libevent's
	 * (event_get_struct_event_size), so it goes last. */
	void *ev[];
};

static struct event *park_event(struct park *p)
{
	return (struct event *)(void *)p->ev;
}

static int64_t park_now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* A connection is parked once it has been idle for PARK_DELAY_MS, so its
 * idle time started that long before. One whose last response took longer
 * to reach the client is parked when it has, and its idle time counts
 * from then (less the delay): a little longer, never shorter. The
 * configuration is read each time, so a reload applies to parked
 * connections too. */
static int64_t park_deadline(const struct proxy *px, const struct park *p)
{
	return p->parked_ms - PARK_DELAY_MS + (int64_t)px->cfg->server.idle_timeout_ms;
}

/* The timer is pending whenever a connection is parked, for no later than
 * the oldest one's deadline; it may fire early (that one was woken), and
 * then re-arms for the new oldest. */
static void park_arm_timer(struct proxy *px, int64_t now_ms)
{
	struct timeval tv;
	int64_t wait;

	if (!px->parked) {
		evtimer_del(px->park_timer);
		return;
	}
	wait = OG_MAX(park_deadline(px, px->parked) - now_ms, 1);
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	evtimer_add(px->park_timer, &tv);
}

static void park_unlink(struct park *p)
{
	struct proxy *px = p->px;

	if (p->prev)
		p->prev->next = p->next;
	else
		px->parked = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		px->parked_last = p->prev;
	px->n_parked--;
}

/* Ends an unlinked parked connection: the socket is closed and its slot
 * in max_connections is free. */
static void park_end(struct park *p, const char *reason)
{
	struct proxy *px = p->px;
	evutil_socket_t fd = event_get_fd(park_event(p));

	conn_log_parked_close(&p->who, reason);
	event_del(park_event(p)); /* before the close: libevent keeps per-fd state */
	evutil_closesocket(fd);
	free(p);
	px->n_conns--;
	proxy_conn_gone(px);
}

static void park_close(struct park *p, const char *reason)
{
	park_unlink(p);
	park_end(p, reason);
}

/* The client sent something, or closed. What it sent goes to a rebuilt
 * connection in this callback, without another loop round. */
static void park_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct park *p = arg;
	struct proxy *px = p->px;
	char buf[PARK_READ_BYTES];
	ssize_t n = recv(fd, buf, OG_MIN(sizeof(buf), px->req_limits.max_head_bytes), 0);

	(void)what;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return; /* woken for nothing: stay parked */
	if (n <= 0) {
		/* The reasons of an idle client that closes or resets. */
		park_close(p, n == 0 ? "client_closed" : "client_error");
		return;
	}
	park_unlink(p);
	if (conn_unpark(px, fd, &p->who, buf, (size_t)n) != 0) {
		park_end(p, "out_of_resources");
		return;
	}
	/* The connection has added its own read event on fd by now:
	 * deleting this one leaves epoll's registration alone. */
	event_del(park_event(p));
	free(p);
}

static void park_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;
	int64_t now = park_now_ms();

	(void)fd;
	(void)what;
	while (px->parked && park_deadline(px, px->parked) <= now)
		park_close(px->parked, "idle_timeout");
	park_arm_timer(px, now);
}

void park_add(struct proxy *px, evutil_socket_t fd, const struct park_ident *who)
{
	struct park *p = x_malloc(sizeof(*p) + event_get_struct_event_size());

	p->px = px;
	p->who = *who;
	p->parked_ms = park_now_ms();
	/* Cannot fail: the base and the flags are valid. */
	(void)event_assign(park_event(p), px->base, fd, EV_READ | EV_PERSIST, park_on_readable, p);
	/* Appending keeps the list in deadline order: every parked
	 * connection has the same idle_timeout. */
	p->next = NULL;
	p->prev = px->parked_last;
	if (px->parked_last)
		px->parked_last->next = p;
	else
		px->parked = p;
	px->parked_last = p;
	px->n_parked++;
	if (event_add(park_event(p), NULL) != 0) {
		park_close(p, "out_of_resources");
		return;
	}
	if (!p->prev)
		park_arm_timer(px, p->parked_ms);
}

void park_close_all(struct proxy *px, const char *reason)
{
	while (px->parked)
		park_close(px->parked, reason);
}

void park_settings_changed(struct proxy *px)
{
	if (px->park_timer && px->parked)
		park_arm_timer(px, park_now_ms());
}

void park_init(struct proxy *px)
{
	px->park_timer = evtimer_new(px->base, park_on_timer, px);
}

void park_free(struct proxy *px)
{
	if (px->park_timer)
		event_free(px->park_timer);
	px->park_timer = NULL;
}
