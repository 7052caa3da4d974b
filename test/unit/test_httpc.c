/* net/: the bounded response reader and the idle pool shared by the
 * registry and API-server clients. The reader is fed a byte at a time, so
 * every split of head and framing is met; the pool runs on a real loop
 * with socketpairs, the peer doing what a server does to idle
 * connections. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "net/httpc.h"
#include "net/httpc_pool.h"
#include "net/httpc_response.h"
#include "test/unit/check.h"

static const struct http1_limits limits = { 4096, 20 };

/* Feeds text one byte at a time; returns the reader's last result and the
 * body in *body (malloc'd). */
static int feed(struct httpc_response *r, const char *text, char **body, char *err, size_t cap)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	int rc = 0;

	for (size_t i = 0; text[i] && rc == 0; i++) {
		evbuffer_add(in, text + i, 1);
		rc = httpc_response_read(r, in, out, err, cap);
	}
	size_t n = evbuffer_get_length(out);
	*body = malloc(n + 1);
	evbuffer_remove(out, *body, n);
	(*body)[n] = '\0';
	evbuffer_free(in);
	evbuffer_free(out);
	return rc;
}

static void test_read(const char *text, uint64_t max_body, int want_rc, int want_status,
		      const char *want_body, const char *want_err)
{
	struct httpc_response r;
	char err[200] = "", *body;

	httpc_response_init(&r, &limits, HTTP_M_GET, max_body, "the peer");
	int rc = feed(&r, text, &body, err, sizeof(err));
	CHECK_INT(rc, want_rc);
	if (want_status)
		CHECK_INT(r.head.status, want_status);
	if (want_body)
		CHECK_STR(body, want_body);
	if (want_err)
		CHECK_STR(err, want_err);
	free(body);
	httpc_response_free(&r);
}

static void test_reader(void)
{
	test_read("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 100, 1, 200, "hello", NULL);
	test_read("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 100, 1, 204, "", NULL);
	test_read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
		  100, 1, 200, "abcde", NULL);
	test_read("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", 100, -1, 200, NULL,
		  "response from the peer too large (more than 100 bytes)");
	test_read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n",
		  16, -1, 200, NULL, "response from the peer too large (more than 16 bytes)");
	test_read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 100, -1, 200, NULL,
		  "bad chunked framing from the peer");
	test_read("HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", 100, -1, 0, NULL, NULL);
	/* No cap: the caller caps what it decodes (the API client, after gzip). */
	test_read("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789", 0, 1, 200,
		  "01234567890123456789", NULL);

	/* Until close: never complete by itself; the close ends it. */
	struct httpc_response r;
	char err[200], *body;
	httpc_response_init(&r, &limits, HTTP_M_GET, 100, "the peer");
	CHECK(!httpc_response_ends_at_close(&r));
	CHECK_INT(feed(&r, "HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nuntil close", &body, err, sizeof(err)), 0);
	CHECK_STR(body, "until close");
	CHECK(httpc_response_ends_at_close(&r));
	CHECK(!r.head.keep_alive);
	/* The headers outlive the input buffer they came from. */
	const struct http1_header *h = http1_find_header(r.head.headers, r.head.n_headers, "X-A");
	CHECK(h && h->value.n == 1 && h->value.p[0] == 'b');
	free(body);
	/* Reset for a retry: the next response is read from scratch. */
	httpc_response_reset(&r);
	CHECK_INT(feed(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", &body, err, sizeof(err)), 1);
	CHECK_STR(body, "ok");
	CHECK(r.head.keep_alive);
	free(body);
	httpc_response_free(&r);
}

/* ---- the idle pool ---- */

struct idle_conn {
	struct httpc_idle idle;
	struct bufferevent *bev;
	int peer;
	const char *closed; /* the reason the pool gave, or NULL */
};

static struct event_base *base;

static void idle_close(struct httpc_idle *e, const char *reason)
{
	struct idle_conn *c = OG_CONTAINER_OF(e, struct idle_conn, idle);

	c->closed = reason;
	bufferevent_free(c->bev);
	c->bev = NULL;
	event_base_loopbreak(base);
}

static void idle_conn_open(struct idle_conn *c)
{
	int sv[2];

	memset(c, 0, sizeof(*c));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	c->bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	c->peer = sv[1];
}

static void idle_conn_close(struct idle_conn *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	close(c->peer);
}

static void run_loop(void)
{
	struct timeval limit = { 5, 0 };

	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
}

static void test_pool(void)
{
	struct httpc_pool pool;
	struct idle_conn a, b, c;
	struct timeval long_tv = { 60, 0 }, short_tv = { 0, 50000 };
	const char *why = NULL;

	base = event_base_new();
	httpc_pool_init(&pool, idle_close);
	idle_conn_open(&a);
	idle_conn_open(&b);
	idle_conn_open(&c);

	CHECK_INT(httpc_pool_put(&pool, &a.idle, a.bev, 2, &long_tv, &why), 0);
	CHECK_INT(httpc_pool_put(&pool, &b.idle, b.bev, 2, &long_tv, &why), 0);
	CHECK_INT(pool.n_idle, 2);
	CHECK_INT(httpc_pool_put(&pool, &c.idle, c.bev, 2, &long_tv, &why), -1);
	CHECK_STR(why, "pool_full");
	/* Last put, first taken: the connection most likely still open. */
	CHECK(httpc_pool_take(&pool) == &b.idle);
	CHECK_INT(pool.n_idle, 1);

	/* A response's leftover bytes make a connection unusable. */
	struct timeval tick = { 0, 100000 };
	bufferevent_enable(b.bev, EV_READ);
	CHECK_INT(write(b.peer, "x", 1), 1);
	event_base_loopexit(base, &tick);
	event_base_dispatch(base);
	CHECK_INT(evbuffer_get_length(bufferevent_get_input(b.bev)), 1);
	CHECK_INT(httpc_pool_put(&pool, &b.idle, b.bev, 2, &long_tv, &why), -1);
	CHECK_STR(why, "unread_input");
	evbuffer_drain(bufferevent_get_input(b.bev), 1);

	/* The peer closes an idle connection. */
	close(a.peer);
	a.peer = -1;
	run_loop();
	CHECK_STR(a.closed, "idle_closed_by_peer");
	CHECK_INT(pool.n_idle, 0);

	/* The peer sends what nobody asked for. */
	CHECK_INT(httpc_pool_put(&pool, &b.idle, b.bev, 2, &long_tv, &why), 0);
	CHECK_INT(write(b.peer, "HTTP/1.1 408 x\r\n\r\n", 18), 18);
	run_loop();
	CHECK_STR(b.closed, "idle_unexpected_bytes");

	/* Nobody wants it for idle_tv. */
	CHECK_INT(httpc_pool_put(&pool, &c.idle, c.bev, 2, &short_tv, &why), 0);
	run_loop();
	CHECK_STR(c.closed, "idle_timeout");
	CHECK_INT(pool.n_idle, 0);
	CHECK(httpc_pool_take(&pool) == NULL);

	/* Removing a connection that is not idle changes nothing. */
	httpc_pool_remove(&c.idle);
	CHECK_INT(pool.n_idle, 0);

	idle_conn_close(&a);
	idle_conn_close(&b);
	idle_conn_close(&c);
	event_base_free(base);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct enable_case {
	struct bufferevent *bev;
	double timed_out_at;
	short enabled_after;
};

static void enable_case_event(struct bufferevent *bev, short what, void *arg)
{
	struct enable_case *e = arg;

	if (what & BEV_EVENT_TIMEOUT)
		e->timed_out_at = now_s();
	event_base_loopbreak(bufferevent_get_base(bev));
}

static void enable_case_again(evutil_socket_t fd, short what, void *arg)
{
	struct enable_case *e = arg;

	(void)fd;
	(void)what;
	httpc_enable(e->bev, EV_READ | EV_WRITE);
	e->enabled_after = bufferevent_get_enabled(e->bev);
}

/* httpc_enable on a reading connection adds what is not on (write) and
 * leaves the read event, and so its timeout, alone: the 400 ms read
 * timeout fires 400 ms after the first enable, not 400 ms after the
 * second (bufferevent_enable would restart it: 650 ms). */
static void test_enable_keeps_timeout(void)
{
	struct event_base *loop = event_base_new();
	struct enable_case e = { 0 };
	struct timeval read_tv = { 0, 400000 }, again_tv = { 0, 250000 };
	int fds[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
	e.bev = bufferevent_socket_new(loop, fds[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(e.bev, NULL, NULL, enable_case_event, &e);
	bufferevent_set_timeouts(e.bev, &read_tv, NULL);
	bufferevent_disable(e.bev, EV_WRITE);
	double start = now_s();
	httpc_enable(e.bev, EV_READ);
	CHECK_INT(bufferevent_get_enabled(e.bev), EV_READ);
	event_base_once(loop, -1, EV_TIMEOUT, enable_case_again, &e, &again_tv);
	event_base_dispatch(loop);
	CHECK_INT(e.enabled_after, EV_READ | EV_WRITE);
	CHECK(e.timed_out_at > 0);
	CHECK(e.timed_out_at - start >= 0.39);
	CHECK(e.timed_out_at - start < 0.6);
	bufferevent_free(e.bev);
	close(fds[1]);
	event_base_free(loop);
}

int main(void)
{
	test_reader();
	test_pool();
	test_enable_keeps_timeout();
	CHECK_DONE();
}
