#include "proxy/splice.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/xalloc.h"

/* A larger pipe means fewer wake-ups per MB; 1 MiB is the default
 * /proc/sys/fs/pipe-max-size, so unprivileged processes get it. */
#define SPLICE_PIPE_SIZE (1 << 20)

struct splice_relay {
	struct event *read_ev, *write_ev;
	int from, to;
	int pipe_r, pipe_w;
	size_t pipe_cap;
	size_t in_pipe;
	uint64_t left;  /* still to read from `from` */
	uint64_t moved; /* written to `to` */
	struct timeval read_tv, write_tv;
	splice_done_fn done;
	void *arg;
};

enum splice_wait { SPLICE_BUSY, SPLICE_WAIT, SPLICE_FAILED };

static enum splice_wait splice_fill(struct splice_relay *r, const char **why)
{
	size_t want = (size_t)OG_MIN(r->left, (uint64_t)(r->pipe_cap - r->in_pipe));
	ssize_t n = splice(r->from, NULL, r->pipe_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

	if (n > 0) {
		r->left -= (uint64_t)n;
		r->in_pipe += (size_t)n;
		return SPLICE_BUSY;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return SPLICE_WAIT;
	*why = n == 0 ? "upstream_closed" : "upstream_error";
	return SPLICE_FAILED;
}

static enum splice_wait splice_drain(struct splice_relay *r, const char **why)
{
	ssize_t n = splice(r->pipe_r, NULL, r->to, NULL, r->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

	if (n > 0) {
		r->in_pipe -= (size_t)n;
		r->moved += (uint64_t)n;
		return SPLICE_BUSY;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return SPLICE_WAIT;
	*why = "client_error";
	return SPLICE_FAILED;
}

static void splice_finish(struct splice_relay *r, const char *why)
{
	event_del(r->read_ev);
	event_del(r->write_ev);
	r->done(r->arg, why);
}

/* Moves bytes until both sides would block, then waits for the side that
 * has to move next: the upstream while the pipe has room, the client while
 * the pipe holds bytes. */
static void splice_pump(struct splice_relay *r)
{
	const char *why = NULL;
	bool want_read = false, want_write = false;

	for (;;) {
		enum splice_wait rd = SPLICE_WAIT, wr = SPLICE_WAIT;

		if (r->left > 0 && r->in_pipe < r->pipe_cap)
			rd = splice_fill(r, &why);
		if (rd != SPLICE_FAILED && r->in_pipe > 0)
			wr = splice_drain(r, &why);
		if (rd == SPLICE_FAILED || wr == SPLICE_FAILED) {
			splice_finish(r, why);
			return;
		}
		if (r->left == 0 && r->in_pipe == 0) {
			splice_finish(r, NULL);
			return;
		}
		if (rd != SPLICE_BUSY && wr != SPLICE_BUSY) {
			/* Bytes left in the pipe mean the client would block: the
			 * pipe may be full by its page slots before its bytes, when
			 * a read fails although the upstream has bytes, and waiting
			 * for them too would spin. The client's write makes room. */
			want_write = r->in_pipe > 0;
			want_read = r->left > 0 && !want_write;
			break;
		}
	}
	/* Re-adding a pending event restarts its timeout: the timeouts are
	 * "no progress for this long", as the bufferevents' are. */
	if (want_read)
		event_add(r->read_ev, &r->read_tv);
	else
		event_del(r->read_ev);
	if (want_write)
		event_add(r->write_ev, &r->write_tv);
	else
		event_del(r->write_ev);
}

static void splice_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct splice_relay *r = arg;

	(void)fd;
	if (what & EV_TIMEOUT)
		splice_finish(r, "upstream_read_timeout");
	else
		splice_pump(r);
}

static void splice_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct splice_relay *r = arg;

	(void)fd;
	if (what & EV_TIMEOUT)
		splice_finish(r, "send_timeout");
	else
		splice_pump(r);
}

struct splice_relay *splice_relay_start(struct event_base *base, int from, int to, uint64_t len,
					const struct timeval *read_timeout,
					const struct timeval *write_timeout, splice_done_fn done,
					void *arg)
{
	int fds[2];

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
		return NULL;
	struct splice_relay *r = x_new(struct splice_relay);
	r->pipe_r = fds[0];
	r->pipe_w = fds[1];
	int cap = fcntl(r->pipe_w, F_SETPIPE_SZ, SPLICE_PIPE_SIZE);
	if (cap <= 0)
		cap = fcntl(r->pipe_w, F_GETPIPE_SZ);
	r->pipe_cap = cap > 0 ? (size_t)cap : 65536;
	r->from = from;
	r->to = to;
	r->left = len;
	r->read_tv = *read_timeout;
	r->write_tv = *write_timeout;
	r->done = done;
	r->arg = arg;
	r->read_ev = event_new(base, from, EV_READ, splice_on_read, r);
	r->write_ev = event_new(base, to, EV_WRITE, splice_on_write, r);
	if (!r->read_ev || !r->write_ev) {
		splice_relay_free(r);
		return NULL;
	}
	/* The first pump runs from the loop, so done is never called from
	 * inside splice_relay_start. */
	event_active(r->read_ev, EV_READ, 0);
	return r;
}

uint64_t splice_relay_moved(const struct splice_relay *r)
{
	return r->moved;
}

void splice_relay_free(struct splice_relay *r)
{
	if (!r)
		return;
	if (r->read_ev)
		event_free(r->read_ev);
	if (r->write_ev)
		event_free(r->write_ev);
	close(r->pipe_r);
	close(r->pipe_w);
	free(r);
}
