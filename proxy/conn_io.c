/* A client connection's socket I/O (conn_priv.h): a plain client is read
 * with its own event into reserved input space and written straight to
 * the socket, once per loop round; a TLS client goes through its
 * bufferevent. ARCHITECTURE.md says why libevent's bufferevent is bypassed
 * on the plain path. */
#include <errno.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxy/conn_priv.h"
#include "util/log.h"

/* What one readv of a plain client reserves in its input buffer: 4 KiB
 * for a request head (nearly every head fits; a slow or idle client holds
 * no more), 64 KiB for a request body. libevent rounds a chain up to a
 * power of two with its header included, so the header's room is left
 * out: the allocations are 4 and 64 KiB (below malloc's mmap threshold). */
#define CONN_CHAIN_HEADER_ROOM 128
#define CONN_HEAD_READ (4 * 1024 - CONN_CHAIN_HEADER_ROOM)
#define CONN_BODY_READ (64 * 1024 - CONN_CHAIN_HEADER_ROOM)

static struct event *conn_rd_event(struct conn *c)
{
	return (struct event *)(void *)c->ev_space;
}

static struct event *conn_flush_event(struct conn *c)
{
	return (struct event *)(void *)((char *)c->ev_space + event_get_struct_event_size());
}

/* rd_event is added while reading is wanted and the input is below its
 * limit; a drain of the input (conn_in_changed) can lift the limit. */
static void conn_rd_sync(struct conn *c)
{
	bool add = c->rd_wanted && evbuffer_get_length(bufferevent_get_input(c->bev)) < c->in_limit;

	if (add == c->rd_added)
		return;
	c->rd_added = add;
	if (add)
		event_add(conn_rd_event(c), NULL);
	else
		event_del(conn_rd_event(c));
}

void conn_read_on(struct conn *c)
{
	if (c->client_tls) {
		bufferevent_enable(c->bev, EV_READ);
		return;
	}
	c->rd_wanted = true;
	conn_rd_sync(c);
}

void conn_read_off(struct conn *c)
{
	if (c->client_tls) {
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	c->rd_wanted = false;
	conn_rd_sync(c);
}

void conn_set_read_limit(struct conn *c, size_t limit)
{
	if (c->client_tls) {
		bufferevent_setwatermark(c->bev, EV_READ, 0, limit);
		return;
	}
	c->in_limit = limit;
	conn_rd_sync(c);
}

void conn_resume_read(struct conn *c)
{
	if (c->client_eof || c->out_paused || c->state == CONN_CLOSING || c->state == CONN_CLOSED)
		return;
	conn_read_on(c);
}

static void conn_in_changed(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	(void)in;
	if (info->n_deleted)
		conn_rd_sync(arg);
}

/* One readv into reserved input space, up to room bytes. Returns what
 * readv returned. */
static ssize_t conn_read_socket(struct conn *c, evutil_socket_t fd, size_t room)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	ssize_t n, left;
	size_t most = c->state == CONN_REQUEST_BODY ? CONN_BODY_READ : CONN_HEAD_READ;
	int nv = evbuffer_reserve_space(in, (ev_ssize_t)OG_MIN(room, most), v, 2);

	if (nv <= 0) {
		errno = ENOMEM;
		return -1;
	}
	for (int i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	n = readv(fd, iov, nv);
	if (n <= 0)
		return n; /* errno is readv's; the reservation lapses */
	left = n;
	for (int i = 0; i < nv; i++) {
		v[i].iov_len = OG_MIN(v[i].iov_len, (size_t)left);
		left -= (ssize_t)v[i].iov_len;
	}
	evbuffer_commit_space(in, v, nv);
	return n;
}

/* rd_event's callback: it is added only while there is room in the
 * input, but a callback before this one may have lowered the limit. */
static void conn_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	size_t have = evbuffer_get_length(bufferevent_get_input(c->bev));
	ssize_t n;

	(void)what;
	if (have >= c->in_limit) {
		conn_rd_sync(c);
		return;
	}
	n = conn_read_socket(c, fd, c->in_limit - have);
	if (n > 0) {
		conn_client_read(c->bev, c);
		conn_rd_sync(c); /* the input may have reached its limit */
	} else if (n == 0) {
		c->rd_wanted = false;
		conn_rd_sync(c);
		conn_client_eof(c);
	} else if (errno == ENOMEM) {
		conn_close(c, "out_of_resources");
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		conn_close(c, "client_error");
	}
}

/* Writes a plain client's output straight to the socket. What the socket
 * does not take is left to the bufferevent, with write interest; once it
 * has all gone, write interest is off again (with epoll's change list,
 * proxy.c, an interest switched on and off in one loop round never reaches
 * the kernel). */
static void conn_flush(struct conn *c)
{
	struct evbuffer *out = conn_out(c);

	if (c->client_tls)
		return;
	if (evbuffer_get_length(out) > 0) {
		/* A socket bufferevent keeps its output's start frozen and thaws
		 * it around its own writes; this write is one of those. */
		evbuffer_unfreeze(out, 1);
		(void)evbuffer_write(out, bufferevent_getfd(c->bev));
		evbuffer_freeze(out, 1);
	}
	if (evbuffer_get_length(out) == 0) {
		conn_writes_direct(c);
	} else if (c->write_off) {
		/* A socket error shows on the bufferevent's own write. */
		c->write_off = false;
		bufferevent_enable(c->bev, EV_WRITE);
	}
}

void conn_writes_direct(struct conn *c)
{
	if (c->client_tls || c->write_off)
		return;
	c->write_off = true;
	bufferevent_disable(c->bev, EV_WRITE);
}

/* The flush event: bytes were queued in this loop round while the
 * bufferevent was not writing. After the write, the connection hears
 * what the bufferevent's write callback would have told it. */
static void conn_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	bufferevent_data_cb write_cb = NULL;
	size_t low = 0;

	(void)fd;
	(void)what;
	c->flush_queued = false;
	/* Nothing left: the bufferevent calls its write callback only
	 * after a write of its own. */
	if (!c->write_off || evbuffer_get_length(conn_out(c)) == 0)
		return;
	log_flush();
	conn_flush(c);
	bufferevent_getwatermark(c->bev, EV_WRITE, &low, NULL);
	bufferevent_getcb(c->bev, NULL, &write_cb, NULL, NULL);
	if (c->write_off && write_cb && evbuffer_get_length(conn_out(c)) <= low)
		write_cb(c->bev, c);
}

static void conn_out_changed(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	(void)out;
	if (info->n_added && c->write_off && !c->flush_queued) {
		c->flush_queued = true;
		event_active(conn_flush_event(c), EV_TIMEOUT, 0);
	}
}

/* A plain client's reads (rd_event) and direct writes (write_off) are
 * the conn's own; the bufferevent only writes what the socket did not
 * take at once. */
int conn_start_plain(struct conn *c, evutil_socket_t fd)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	/* Cannot fail: the base and the flags are valid. */
	(void)event_assign(conn_rd_event(c), c->px->base, fd, EV_READ | EV_PERSIST,
			   conn_on_readable, c);
	(void)event_assign(conn_flush_event(c), c->px->base, -1, 0, conn_on_flush, c);
	/* The socket bufferevent freezes the input's end for its own reads,
	 * which never happen here. */
	evbuffer_unfreeze(in, 0);
	/* A new bufferevent has write interest enabled (it adds the event on
	 * the first queued byte); here the flush event writes first. */
	c->write_off = true;
	bufferevent_disable(c->bev, EV_WRITE);
	if (!evbuffer_add_cb(bufferevent_get_output(c->bev), conn_out_changed, c) ||
	    !evbuffer_add_cb(in, conn_in_changed, c))
		return -1;
	return 0;
}

void conn_io_stop(struct conn *c)
{
	conn_read_off(c);
	if (!c->client_tls)
		event_del(conn_flush_event(c));
}
