/* accept_guard: a listener out of descriptors stops accepting, comes back
 * after its retry delay or when a connection closes, and logs one line per
 * burst; the owner's connection limit pauses it too. Real sockets on
 * 127.0.0.1, a real event loop. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "proxy/accept_guard.h"
#include "test/unit/check.h"

static int accepted;

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *a, int n,
		      void *arg)
{
	(void)l;
	(void)a;
	(void)n;
	(void)arg;
	accepted++;
	close(fd);
}

static int connect_to(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct event_base *base, int ms)
{
	struct timeval tv = { 0, ms * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

int main(void)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct evconnlistener *lev = evconnlistener_new_bind(
		base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
		(struct sockaddr *)&sin, sizeof(sin));
	struct accept_guard g;
	struct sockaddr_in bound;
	socklen_t bl = sizeof(bound);
	int fds[4];

	CHECK(lev != NULL);
	getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&bound, &bl);
	uint16_t port = ntohs(bound.sin_port);
	accept_guard_init(&g, base, lev, "test");

	/* Accepting normally. */
	fds[0] = connect_to(port);
	run_for(base, 50);
	CHECK_INT(accepted, 1);

	/* Out of descriptors: paused, nothing accepted before the retry. */
	accept_guard_on_error(&g, EMFILE);
	CHECK(g.starved && !g.enabled);
	fds[1] = connect_to(port);
	run_for(base, 30);
	CHECK_INT(accepted, 1);
	/* ... then the retry timer accepts it. */
	run_for(base, 200);
	CHECK_INT(accepted, 2);
	CHECK(!g.starved && g.enabled);

	/* A closed connection resumes at once, without waiting for the timer. */
	accept_guard_on_error(&g, ENFILE);
	fds[2] = connect_to(port);
	accept_guard_slot_freed(&g);
	CHECK(!g.starved && g.enabled);
	run_for(base, 30);
	CHECK_INT(accepted, 3);

	/* One log line per burst: the failures after the first are counted
	 * for the next line, not logged. */
	for (int i = 0; i < 1000; i++)
		accept_guard_on_error(&g, EMFILE);
	CHECK_INT(g.failures, 1001); /* the ENFILE above, then these */
	accept_guard_slot_freed(&g);

	/* The owner's limit pauses it whatever the descriptors say. */
	accept_guard_set_full(&g, true);
	fds[3] = connect_to(port);
	accept_guard_slot_freed(&g);
	run_for(base, 150);
	CHECK_INT(accepted, 3);
	accept_guard_set_full(&g, false);
	run_for(base, 30);
	CHECK_INT(accepted, 4);

	/* Errors that are not about resources do not pause. */
	accept_guard_on_error(&g, EPERM);
	CHECK(g.enabled && !g.starved);

	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	accept_guard_free(&g);
	evconnlistener_free(lev);
	event_base_free(base);
	CHECK_DONE();
}
