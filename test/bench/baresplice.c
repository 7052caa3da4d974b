/* The benchmark's reference for the TLS blob rows: the least a libevent
 * program must do to relay a plain client to a TLS upstream.  No HTTP, no
 * auth, no routing: every accepted connection gets one verified TLS
 * connection to the upstream and the bytes are moved both ways with
 * evbuffer_add_buffer, reading stopped while the other side has more than
 * HIGH_WATER queued.  ocigate's TLS blob throughput is judged against it
 * ("what libevent + OpenSSL can do here"), so it is kept as plain as a
 * careful user would write it.
 *
 *   bench_baresplice UPSTREAM_IP PORT CA_FILE
 *
 * Listens on 127.0.0.1 on a free port and prints "listening PORT" on
 * standard output; runs until killed. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HIGH_WATER (1024 * 1024)

struct side {
	struct bufferevent *bev;
	struct side *other;
	int closed;
};

static SSL_CTX *ctx;
static struct sockaddr_in upstream;
static const char *upstream_ip;

static void side_free_pair(struct side *s)
{
	struct side *o = s->other;

	bufferevent_free(s->bev);
	bufferevent_free(o->bev);
	free(s < o ? s : o);
}

static void relay_read_cb(struct bufferevent *bev, void *arg);
static void relay_event_cb(struct bufferevent *bev, short what, void *arg);

static void relay_rearm(struct side *s)
{
	bufferevent_setcb(s->bev, relay_read_cb, NULL, relay_event_cb, s);
}

/* bev's output has drained (low watermark 0): when its peer has gone the
 * pair is done, otherwise the peer may read again */
static void relay_write_cb(struct bufferevent *bev, void *arg)
{
	struct side *s = arg;

	(void)bev;
	if (s->other->closed) {
		side_free_pair(s);
		return;
	}
	relay_rearm(s);
	bufferevent_enable(s->other->bev, EV_READ);
}

static void relay_wait_drain(struct side *s)
{
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	bufferevent_setcb(s->bev, relay_read_cb, relay_write_cb, relay_event_cb, s);
}

static void relay_read_cb(struct bufferevent *bev, void *arg)
{
	struct side *s = arg;
	struct bufferevent *to = s->other->bev;
	struct evbuffer *out = bufferevent_get_output(to);

	evbuffer_add_buffer(out, bufferevent_get_input(bev));
	if (evbuffer_get_length(out) >= HIGH_WATER) {
		bufferevent_disable(bev, EV_READ);
		relay_wait_drain(s->other);
	}
}

static void relay_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct side *s = arg;
	struct bufferevent *to = s->other->bev;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		return;
	}
	/* EOF or error: forward what was read, then close both once the
	 * other side's output is written */
	s->closed = 1;
	evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(bev));
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	if (s->other->closed || evbuffer_get_length(bufferevent_get_output(to)) == 0) {
		side_free_pair(s);
		return;
	}
	relay_wait_drain(s->other);
}

static SSL *upstream_ssl(void)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), upstream_ip) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct event_base *base = arg;
	struct side *pair = calloc(2, sizeof(*pair));
	SSL *ssl = upstream_ssl();
	int one = 1;

	(void)l, (void)sa, (void)salen;
	if (!pair || !ssl)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pair[0].bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	pair[1].bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						     BEV_OPT_CLOSE_ON_FREE);
	pair[0].other = &pair[1];
	pair[1].other = &pair[0];
	relay_rearm(&pair[0]);
	relay_rearm(&pair[1]);
	bufferevent_enable(pair[0].bev, EV_READ | EV_WRITE);
	bufferevent_enable(pair[1].bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(pair[1].bev, (struct sockaddr *)&upstream,
				       sizeof(upstream)) != 0) {
		side_free_pair(&pair[0]);
		fprintf(stderr, "baresplice: connect to the upstream failed\n");
	}
	return;
fail:
	fprintf(stderr, "baresplice: out of memory\n");
	if (ssl)
		SSL_free(ssl);
	free(pair);
	evutil_closesocket(fd);
}

static int setup_tls(const char *ca_file)
{
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
		return -1;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in any = {.sin_family = AF_INET};
	struct sockaddr_in bound;
	socklen_t len = sizeof(bound);
	struct evconnlistener *l;
	struct event_base *base;

	if (argc != 4) {
		fprintf(stderr, "usage: %s UPSTREAM_IP PORT CA_FILE\n", argv[0]);
		return 2;
	}
	upstream_ip = argv[1];
	upstream.sin_family = AF_INET;
	upstream.sin_port = htons((unsigned short)atoi(argv[2]));
	any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (inet_pton(AF_INET, argv[1], &upstream.sin_addr) != 1 || setup_tls(argv[3]) != 0) {
		fprintf(stderr, "baresplice: bad upstream address or CA file\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	l = evconnlistener_new_bind(base, accept_cb, base, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
				    512, (struct sockaddr *)&any, sizeof(any));
	if (!l || getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &len) != 0) {
		perror("baresplice: listen");
		return 1;
	}
	printf("listening %d\n", ntohs(bound.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	return 0;
}
