/* k8s/client and k8s/store against an in-process fake API server (plain
 * HTTP and TLS) on the same libevent loop: keep-alive, pool cap, gzip,
 * chunked watches, caps, timeouts, cancel, Retry-After, token rotation,
 * and the store's list/watch/410/backoff/secret handling. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <zlib.h>

#include "k8s/client.h"
#include "k8s/store.h"
#include "test/unit/check.h"
#include "test/unit/testcert.h"
#include "util/base64.h"
#include "util/log.h"

static struct event_base *base;
static struct evdns_base *dns;

static long long now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Runs the loop until cond holds or ms pass; a 2 ms tick keeps it moving. */
#define RUN_UNTIL(cond, ms)                                                  \
	do {                                                                 \
		long long run_end_ = now_ms() + (ms);                        \
		while (!(cond) && now_ms() < run_end_)                       \
			event_base_loop(base, EVLOOP_ONCE);                  \
	} while (0)

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what; (void)arg;
}

/* ---- the fake server ---- */

struct sconn;
typedef void (*handler_fn)(struct sconn *sc, const char *method, const char *path,
			   const char *head, const char *body, size_t blen);

struct srv {
	struct evconnlistener *l;
	int port;
	handler_fn h;
	SSL_CTX *tls;
	int conns, open, max_open, reqs;
	char last_head[4096];
	char last_body[4096];
	char last_path[1024];
};

struct sconn {
	struct srv *srv;
	struct bufferevent *bev;
	int nreq;
	bool held;         /* a watch: kept open, fed by the test */
	bool gz;           /* the held watch is gzip */
	z_stream z;
	bool closed;
};

static void sconn_close(struct sconn *sc)
{
	if (sc->closed)
		return;
	sc->closed = true;
	sc->srv->open--;
	if (sc->gz)
		deflateEnd(&sc->z);
	bufferevent_free(sc->bev);
	sc->bev = NULL;
}

static void srv_on_read(struct bufferevent *bev, void *arg)
{
	struct sconn *sc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!sc->closed && !sc->held) {
		struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (p.pos < 0)
			return;
		size_t hl = (size_t)p.pos + 4;
		char *head = malloc(hl + 1);
		evbuffer_copyout(in, head, hl);
		head[hl] = '\0';
		size_t blen = 0;
		char *cl = NULL;
		for (char *q = head; *q && !cl; q++)
			if (strncasecmp(q, "\r\nContent-Length:", 17) == 0)
				cl = q;
		if (cl)
			blen = strtoul(cl + 17, NULL, 10);
		if (evbuffer_get_length(in) < hl + blen) {
			free(head);
			return;
		}
		evbuffer_drain(in, hl);
		char *body = malloc(blen + 1);
		evbuffer_remove(in, body, blen);
		body[blen] = '\0';
		char method[16] = "", path[1024] = "";
		sscanf(head, "%15s %1023s", method, path);
		struct srv *s = sc->srv;
		snprintf(s->last_head, sizeof(s->last_head), "%s", head);
		snprintf(s->last_body, sizeof(s->last_body), "%s", body);
		snprintf(s->last_path, sizeof(s->last_path), "%s", path);
		s->reqs++;
		sc->nreq++;
		s->h(sc, method, path, head, body, blen);
		free(head);
		free(body);
	}
}

static void srv_on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		sconn_close(arg);
}

static struct sconn *all_sconns[256];
static int n_sconns;

static void srv_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
			  void *arg)
{
	struct srv *s = arg;
	struct sconn *sc = calloc(1, sizeof(*sc));
	(void)l; (void)sa; (void)len;
	sc->srv = s;
	if (s->tls)
		sc->bev = bufferevent_openssl_socket_new(base, fd, SSL_new(s->tls),
							 BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	else
		sc->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(sc->bev, srv_on_read, NULL, srv_on_event, sc);
	bufferevent_enable(sc->bev, EV_READ | EV_WRITE);
	s->conns++;
	s->open++;
	if (s->open > s->max_open)
		s->max_open = s->open;
	if (n_sconns < 256)
		all_sconns[n_sconns++] = sc;
}

static void srv_start(struct srv *s, handler_fn h, SSL_CTX *tls)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);

	memset(s, 0, sizeof(*s));
	s->h = h;
	s->tls = tls;
	sin.sin_addr.s_addr = htonl(0x7f000001);
	s->l = evconnlistener_new_bind(base, srv_on_accept, s, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
				       64, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(evconnlistener_get_fd(s->l), (struct sockaddr *)&sin, &sl);
	s->port = ntohs(sin.sin_port);
}

static void srv_stop(struct srv *s)
{
	for (int i = 0; i < n_sconns; i++) {
		if (all_sconns[i]->srv == s) {
			sconn_close(all_sconns[i]);
			free(all_sconns[i]);
			all_sconns[i] = all_sconns[--n_sconns];
			i--;
		}
	}
	evconnlistener_free(s->l);
}

static size_t gzip_buf(const char *in, size_t n, unsigned char *out, size_t cap)
{
	z_stream z = { 0 };
	deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	size_t r = cap - z.avail_out;
	deflateEnd(&z);
	return r;
}

static void out_printf(struct sconn *sc, const char *fmt, ...) OG_PRINTF(2, 3);
static void out_printf(struct sconn *sc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(sc->bev), fmt, ap);
	va_end(ap);
}

/* A response with Content-Length, optionally gzip. */
static void reply(struct sconn *sc, int status, const char *extra, const char *body, bool gz)
{
	size_t n = strlen(body);
	unsigned char *z = NULL;

	if (gz) {
		z = malloc(n + 1024);
		n = gzip_buf(body, n, z, n + 1024);
	}
	out_printf(sc, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%s%sContent-Length: %zu\r\n\r\n",
		   status, extra ? extra : "", gz ? "Content-Encoding: gzip\r\n" : "", n);
	evbuffer_add(bufferevent_get_output(sc->bev), gz ? (const char *)z : body, n);
	free(z);
}

static void watch_begin(struct sconn *sc, bool gz)
{
	sc->held = true;
	out_printf(sc, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sTransfer-Encoding: chunked\r\n\r\n",
		   gz ? "Content-Encoding: gzip\r\n" : "");
	if (gz) {
		sc->gz = true;
		deflateInit2(&sc->z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	}
}

static void watch_send(struct sconn *sc, const char *data, size_t n, bool finish)
{
	unsigned char buf[65536];
	size_t len = n;
	const void *p = data;

	if (sc->gz) {
		sc->z.next_in = (unsigned char *)data;
		sc->z.avail_in = (uInt)n;
		sc->z.next_out = buf;
		sc->z.avail_out = sizeof(buf);
		deflate(&sc->z, finish ? Z_FINISH : Z_SYNC_FLUSH);
		len = sizeof(buf) - sc->z.avail_out;
		p = buf;
	}
	if (len) {
		out_printf(sc, "%zx\r\n", len);
		evbuffer_add(bufferevent_get_output(sc->bev), p, len);
		out_printf(sc, "\r\n");
	}
	if (finish)
		out_printf(sc, "0\r\n\r\n");
}

static void watch_line(struct sconn *sc, const char *line)
{
	watch_send(sc, line, strlen(line), false);
}

/* ---- TLS material made in process ---- */

static EVP_PKEY *tls_key;
static X509 *tls_cert;

static void make_cert(void)
{
	tls_key = EVP_EC_gen("P-256");
	tls_cert = test_self_signed_cert(tls_key, "k8s-test", "IP:127.0.0.1,DNS:kubernetes.default");
}

static char *cert_pem(size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	PEM_write_bio_X509(b, tls_cert);
	*len = (size_t)BIO_get_mem_data(b, &p);
	char *r = malloc(*len);
	memcpy(r, p, *len);
	BIO_free(b);
	return r;
}

/* ---- client tests ---- */

struct result {
	bool done;
	int calls;
	int status;
	char body[8192];
	size_t len;
	char error[256];
	bool timeout;
	unsigned retry_after;
	char lines[16][256];
	int n_lines;
	size_t line_len[16];
	struct k8s_request *req;
	bool cancel_in_line;
};

static void on_done(void *arg, const struct k8s_response *r)
{
	struct result *res = arg;
	res->done = true;
	res->calls++;
	res->status = r->status;
	res->len = r->len;
	snprintf(res->body, sizeof(res->body), "%.*s", (int)r->len, r->body ? r->body : "");
	if (r->body && r->body[r->len] != '\0')
		snprintf(res->body, sizeof(res->body), "NOT NUL TERMINATED");
	snprintf(res->error, sizeof(res->error), "%s", r->error ? r->error : "");
	res->timeout = r->timeout;
	res->retry_after = r->retry_after;
}

static void on_line(void *arg, const char *l, size_t n)
{
	struct result *res = arg;
	if (res->n_lines < 16) {
		snprintf(res->lines[res->n_lines], 256, "%.*s", (int)OG_MIN(n, (size_t)255), l);
		res->line_len[res->n_lines] = n;
		res->n_lines++;
	}
	if (res->cancel_in_line) {
		k8s_request_cancel(res->req);
		k8s_request_cancel(res->req); /* twice: still harmless */
	}
}

static struct sconn *held_watch;
static char big_json[300000];

static void client_handler(struct sconn *sc, const char *method, const char *path, const char *head,
			   const char *body, size_t blen)
{
	(void)head;
	if (strcmp(path, "/plain") == 0) {
		reply(sc, 200, NULL, "{\"a\":1}", false);
	} else if (strcmp(path, "/gzip") == 0) {
		reply(sc, 200, NULL, "{\"compressed\":true}", true);
	} else if (strcmp(path, "/chunked-gzip") == 0) {
		unsigned char z[512];
		size_t n = gzip_buf("{\"chunky\":\"yes\"}", 16, z, sizeof(z));
		out_printf(sc, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
		for (size_t i = 0; i < n; i += 5) {
			size_t k = OG_MIN((size_t)5, n - i);
			out_printf(sc, "%zx;ext=1\r\n", k);
			evbuffer_add(bufferevent_get_output(sc->bev), z + i, k);
			out_printf(sc, "\r\n");
		}
		out_printf(sc, "0\r\n\r\n");
	} else if (strcmp(path, "/big") == 0) {
		reply(sc, 200, NULL, big_json, false);
	} else if (strcmp(path, "/bomb") == 0) {
		reply(sc, 200, NULL, big_json, true);
	} else if (strcmp(path, "/echo") == 0 && strcmp(method, "POST") == 0) {
		char buf[4096];
		snprintf(buf, sizeof(buf), "{\"got\":%.*s}", (int)blen, body);
		reply(sc, 201, NULL, buf, false);
	} else if (strcmp(path, "/slow") == 0) {
		/* never answers */
	} else if (strcmp(path, "/429") == 0) {
		reply(sc, 429, "Retry-After: 7\r\n", "{\"kind\":\"Status\",\"code\":429}", false);
	} else if (strcmp(path, "/malformed") == 0) {
		out_printf(sc, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc");
	} else if (strcmp(path, "/badgzip") == 0) {
		out_printf(sc, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\n0123456789");
	} else if (strcmp(path, "/until-close") == 0) {
		out_printf(sc, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"eof\":1}");
		bufferevent_flush(sc->bev, EV_WRITE, BEV_FINISHED);
		sc->held = true;
		/* closed by the test loop via held_watch */
		held_watch = sc;
	} else if (strcmp(path, "/drop-second") == 0) {
		if (sc->nreq >= 2) {
			sconn_close(sc); /* a stale keep-alive connection */
			return;
		}
		reply(sc, 200, NULL, "{\"n\":1}", false);
	} else if (strncmp(path, "/watch", 6) == 0) {
		watch_begin(sc, strstr(path, "gz") != NULL);
		held_watch = sc;
	} else {
		reply(sc, 404, NULL, "{\"kind\":\"Status\",\"code\":404}", false);
	}
}

static struct k8s_client *new_client(struct srv *s, struct k8s_client_opts *o)
{
	char url[64], err[256] = "";
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s->port);
	o->server = url;
	struct k8s_client *c = k8s_client_new(base, dns, o, err, sizeof(err));
	if (!c)
		fprintf(stderr, "client: %s\n", err);
	return c;
}

static void test_basic_requests(void)
{
	struct srv s;
	struct k8s_client_opts o = { .token = "tok-123", .request_timeout_ms = 300 };
	struct k8s_client_stats st;
	srv_start(&s, client_handler, NULL);
	struct k8s_client *c = new_client(&s, &o);
	CHECK(c != NULL);

	struct result r = { 0 };
	k8s_client_get(c, "/plain", on_done, &r);
	CHECK(!r.done); /* never synchronous */
	RUN_UNTIL(r.done, 2000);
	CHECK_INT(r.status, 200);
	CHECK_MEM_STR(r.body, r.len, "{\"a\":1}");
	CHECK_INT(r.error[0], 0);
	CHECK(strstr(s.last_head, "GET /plain HTTP/1.1\r\n") == s.last_head);
	CHECK(strstr(s.last_head, "\r\nAuthorization: Bearer tok-123\r\n") != NULL);
	CHECK(strstr(s.last_head, "\r\nAccept-Encoding: gzip\r\n") != NULL);
	CHECK(strstr(s.last_head, "\r\nAccept: application/json\r\n") != NULL);
	CHECK(strstr(s.last_head, "\r\nUser-Agent: ocigate/") != NULL);
	char host[64];
	snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
	CHECK(strstr(s.last_head, host) != NULL);

	/* keep-alive: the second request reuses the connection */
	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/gzip", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK_INT(r.status, 200);
	CHECK_MEM_STR(r.body, r.len, "{\"compressed\":true}");
	k8s_client_get_stats(c, &st);
	CHECK_INT(st.connects, 1);
	CHECK_INT(st.reuses, 1);
	CHECK_INT(s.conns, 1);

	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/chunked-gzip", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK_MEM_STR(r.body, r.len, "{\"chunky\":\"yes\"}");

	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "{\"spec\":{\"token\":\"secret\"}}");
	memset(&r, 0, sizeof(r));
	k8s_client_post(c, "/echo", b, on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK_INT(r.status, 201);
	CHECK_MEM_STR(r.body, r.len, "{\"got\":{\"spec\":{\"token\":\"secret\"}}}");
	CHECK(strstr(s.last_head, "POST /echo HTTP/1.1\r\n") == s.last_head);
	CHECK(strstr(s.last_head, "\r\nContent-Type: application/json\r\n") != NULL);

	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/429", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK_INT(r.status, 429);
	CHECK_INT(r.retry_after, 7);

	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/missing", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK_INT(r.status, 404);
	CHECK_MEM_STR(r.body, r.len, "{\"kind\":\"Status\",\"code\":404}");

	/* timeout: the server never answers */
	memset(&r, 0, sizeof(r));
	long long t0 = now_ms();
	k8s_client_get(c, "/slow", on_done, &r);
	RUN_UNTIL(r.done, 3000);
	CHECK(r.done);
	CHECK(r.timeout);
	CHECK_INT(r.status, 0);
	CHECK(now_ms() - t0 >= 250);
	CHECK(now_ms() - t0 < 2000);

	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/malformed", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK_INT(r.status, 0);
	CHECK(strstr(r.error, "bad response") != NULL);

	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/badgzip", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK(strstr(r.error, "gzip") != NULL);
	CHECK_INT(r.len, 0);

	/* a body delimited by the close */
	memset(&r, 0, sizeof(r));
	held_watch = NULL;
	k8s_client_get(c, "/until-close", on_done, &r);
	RUN_UNTIL(held_watch != NULL && evbuffer_get_length(bufferevent_get_output(held_watch->bev)) == 0, 2000);
	RUN_UNTIL(false, 50);
	CHECK(!r.done);
	if (held_watch)
		sconn_close(held_watch);
	RUN_UNTIL(r.done, 2000);
	CHECK_INT(r.status, 200);
	CHECK_MEM_STR(r.body, r.len, "{\"eof\":1}");
	CHECK_INT(r.error[0], 0);

	k8s_client_free(c);
	srv_stop(&s);
}

static void test_caps(void)
{
	struct srv s;
	struct k8s_client_opts o = { .max_get_body = 100000 };
	srv_start(&s, client_handler, NULL);
	memset(big_json, 'x', sizeof(big_json) - 1);
	big_json[0] = '"';
	big_json[sizeof(big_json) - 2] = '"';
	struct k8s_client *c = new_client(&s, &o);
	struct result r = { 0 };

	k8s_client_get(c, "/big", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK(strstr(r.error, "larger than 100000") != NULL);
	CHECK_INT(r.len, 0);

	/* 300 KB of x compress to ~1 KB: the cap is on the inflated size */
	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/bomb", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK(strstr(r.error, "larger than 100000") != NULL);
	k8s_client_free(c);
	srv_stop(&s);
}

static void test_pool_cap_and_cancel(void)
{
	struct srv s;
	struct k8s_client_opts o = { .max_conns = 2, .request_timeout_ms = 500 };
	struct k8s_client_stats st;
	srv_start(&s, client_handler, NULL);
	struct k8s_client *c = new_client(&s, &o);
	struct result r[6];
	memset(r, 0, sizeof(r));

	for (int i = 0; i < 6; i++)
		k8s_client_get(c, "/plain", on_done, &r[i]);
	RUN_UNTIL(r[0].done && r[1].done && r[2].done && r[3].done && r[4].done && r[5].done, 3000);
	for (int i = 0; i < 6; i++)
		CHECK_INT(r[i].status, 200);
	CHECK_INT(s.max_open, 2);
	k8s_client_get_stats(c, &st);
	CHECK_INT(st.connects, 2);
	CHECK_INT(st.idle_conns, 2);

	/* cancel: an active request (stuck) and a queued one */
	struct result a = { 0 }, q1 = { 0 }, q2 = { 0 }, q3 = { 0 };
	struct k8s_request *ra = k8s_client_get(c, "/slow", on_done, &a);
	struct k8s_request *rb = k8s_client_get(c, "/slow", on_done, &q1);
	struct k8s_request *rq = k8s_client_get(c, "/plain", on_done, &q2);
	k8s_client_get(c, "/plain", on_done, &q3);
	RUN_UNTIL(s.reqs >= 8, 2000);
	k8s_client_get_stats(c, &st);
	CHECK_INT(st.queued, 2);
	k8s_request_cancel(rq);
	k8s_request_cancel(ra);
	RUN_UNTIL(q3.done, 2000);
	CHECK_INT(q3.status, 200);
	k8s_request_cancel(rb);
	RUN_UNTIL(false, 700); /* past the request timeout */
	CHECK_INT(a.calls, 0);
	CHECK_INT(q1.calls, 0);
	CHECK_INT(q2.calls, 0);
	CHECK_INT(q3.calls, 1);

	/* a kept-alive connection the server dropped: retried on a new one */
	struct result d1 = { 0 }, d2 = { 0 };
	k8s_client_free(c);
	o.max_conns = 1;
	c = new_client(&s, &o);
	k8s_client_get(c, "/drop-second", on_done, &d1);
	RUN_UNTIL(d1.done, 2000);
	k8s_client_get(c, "/drop-second", on_done, &d2);
	RUN_UNTIL(d2.done, 2000);
	CHECK_INT(d1.status, 200);
	CHECK_INT(d2.status, 200);
	k8s_client_get_stats(c, &st);
	CHECK_INT(st.connects, 2);

	/* connection refused: an error, from the loop */
	srv_stop(&s);
	struct result e = { 0 };
	k8s_client_get(c, "/plain", on_done, &e);
	CHECK(!e.done);
	RUN_UNTIL(e.done, 2000);
	CHECK_INT(e.status, 0);
	CHECK(e.error[0] != 0);
	k8s_client_free(c);
}

static void test_watch(bool gz)
{
	struct srv s;
	struct k8s_client_opts o = { .max_line = 64, .request_timeout_ms = 500, .watch_idle_ms = 300 };
	srv_start(&s, client_handler, NULL);
	struct k8s_client *c = new_client(&s, &o);
	struct result r = { 0 };

	held_watch = NULL;
	r.req = k8s_client_watch(c, gz ? "/watch-gz" : "/watch", on_line, on_done, &r);
	RUN_UNTIL(held_watch != NULL, 2000);
	CHECK(held_watch != NULL);
	if (!held_watch)
		goto out;
	watch_line(held_watch, "{\"type\":\"ADDED\"}\n{\"ty");
	RUN_UNTIL(r.n_lines == 1, 2000);
	watch_line(held_watch, "pe\":\"MODIFIED\"}\n");
	watch_line(held_watch, "\n"); /* an empty line is a line */
	RUN_UNTIL(r.n_lines == 3, 2000);
	CHECK_INT(r.n_lines, 3);
	CHECK_MEM_STR(r.lines[0], r.line_len[0], "{\"type\":\"ADDED\"}");
	CHECK_MEM_STR(r.lines[1], r.line_len[1], "{\"type\":\"MODIFIED\"}");
	CHECK_INT(r.line_len[2], 0);
	CHECK(!r.done);
	/* bookmarks keep it alive past the idle timeout */
	for (int i = 0; i < 4; i++) {
		RUN_UNTIL(false, 150);
		watch_line(held_watch, "{\"type\":\"BOOKMARK\"}\n");
	}
	RUN_UNTIL(r.n_lines == 7, 1000);
	CHECK_INT(r.n_lines, 7);
	CHECK(!r.done);
	watch_send(held_watch, "", 0, true);
	RUN_UNTIL(r.done, 2000);
	CHECK_INT(r.status, 200);
	CHECK_INT(r.error[0], 0);

	/* idle timeout */
	memset(&r, 0, sizeof(r));
	held_watch = NULL;
	r.req = k8s_client_watch(c, gz ? "/watch-gz" : "/watch", on_line, on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK(r.timeout);
	CHECK(r.error[0] != 0);

	/* over-long line */
	memset(&r, 0, sizeof(r));
	held_watch = NULL;
	r.req = k8s_client_watch(c, gz ? "/watch-gz" : "/watch", on_line, on_done, &r);
	RUN_UNTIL(held_watch != NULL, 2000);
	char longline[200];
	memset(longline, 'a', sizeof(longline));
	watch_send(held_watch, longline, sizeof(longline), false);
	RUN_UNTIL(r.done, 2000);
	CHECK(strstr(r.error, "longer than 64") != NULL);
	CHECK_INT(r.n_lines, 0);

	/* cancelled from its own line callback: no more lines, no end */
	memset(&r, 0, sizeof(r));
	held_watch = NULL;
	r.cancel_in_line = true;
	r.req = k8s_client_watch(c, gz ? "/watch-gz" : "/watch", on_line, on_done, &r);
	RUN_UNTIL(held_watch != NULL, 2000);
	watch_line(held_watch, "one\ntwo\nthree\n");
	RUN_UNTIL(r.n_lines >= 1, 2000);
	RUN_UNTIL(false, 100);
	CHECK_INT(r.n_lines, 1);
	CHECK_INT(r.calls, 0);

	/* a non-200 watch reports status and body */
	memset(&r, 0, sizeof(r));
	r.req = k8s_client_watch(c, "/missing", on_line, on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK_INT(r.status, 404);
	CHECK_INT(r.n_lines, 0);
	CHECK_MEM_STR(r.body, r.len, "{\"kind\":\"Status\",\"code\":404}");
out:
	k8s_client_free(c);
	srv_stop(&s);
}

static void test_tls(void)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_use_certificate(sctx, tls_cert);
	SSL_CTX_use_PrivateKey(sctx, tls_key);
	struct srv s;
	srv_start(&s, client_handler, sctx);
	size_t plen;
	char *pem = cert_pem(&plen);
	char url[64], err[256];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", s.port);

	struct k8s_client_opts o = { .server = url, .ca_pem = pem, .ca_pem_len = plen };
	struct k8s_client *c = k8s_client_new(base, dns, &o, err, sizeof(err));
	CHECK(c != NULL);
	struct result r = { 0 };
	k8s_client_get(c, "/gzip", on_done, &r);
	RUN_UNTIL(r.done, 3000);
	CHECK_INT(r.status, 200);
	CHECK_MEM_STR(r.body, r.len, "{\"compressed\":true}");
	k8s_client_free(c);

	/* the name to verify can differ from the address */
	o.tls_server_name = "kubernetes.default";
	c = k8s_client_new(base, dns, &o, err, sizeof(err));
	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/plain", on_done, &r);
	RUN_UNTIL(r.done, 3000);
	CHECK_INT(r.status, 200);
	k8s_client_free(c);

	o.tls_server_name = "other.example";
	c = k8s_client_new(base, dns, &o, err, sizeof(err));
	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/plain", on_done, &r);
	RUN_UNTIL(r.done, 3000);
	CHECK_INT(r.status, 0);
	CHECK(strstr(r.error, "verification failed") != NULL);
	k8s_client_free(c);

	/* system trust only: our self-signed server is refused */
	o.tls_server_name = NULL;
	o.ca_pem = NULL;
	o.ca_pem_len = 0;
	c = k8s_client_new(base, dns, &o, err, sizeof(err));
	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/plain", on_done, &r);
	RUN_UNTIL(r.done, 3000);
	CHECK_INT(r.status, 0);
	CHECK(strstr(r.error, "verification failed") != NULL);
	k8s_client_free(c);

	o.insecure = true;
	c = k8s_client_new(base, dns, &o, err, sizeof(err));
	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/plain", on_done, &r);
	RUN_UNTIL(r.done, 3000);
	CHECK_INT(r.status, 200);
	k8s_client_free(c);

	/* bad options are refused with a reason */
	struct k8s_client_opts bad = { .server = url, .ca_pem = "not a pem", .ca_pem_len = 9 };
	CHECK(k8s_client_new(base, dns, &bad, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "CA") != NULL);
	struct k8s_client_opts bad2 = { .server = "ftp://x" };
	CHECK(k8s_client_new(base, dns, &bad2, err, sizeof(err)) == NULL);
	CHECK(strncmp(err, "server:", 7) == 0);
	struct k8s_client_opts bad3 = { .server = url, .cert_pem = pem, .cert_pem_len = plen };
	CHECK(k8s_client_new(base, dns, &bad3, err, sizeof(err)) == NULL);
	struct k8s_client_opts bad4 = { .server = url, .token = "a b" };
	CHECK(k8s_client_new(base, dns, &bad4, err, sizeof(err)) == NULL);
	struct k8s_client_opts bad5 = { .server = url, .token_file = "/nonexistent/token" };
	CHECK(k8s_client_new(base, dns, &bad5, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "/nonexistent/token") != NULL);

	free(pem);
	srv_stop(&s);
	SSL_CTX_free(sctx);
}

static void test_token_rotation(void)
{
	struct srv s;
	char path[] = "/tmp/k8s_client_tokenXXXXXX";
	int fd = mkstemp(path);
	close(fd);
	check_write_file(NULL, path, "first-token\n", sizeof("first-token\n") - 1);
	struct k8s_client_opts o = { .token_file = path, .token_check_ms = 100 };
	srv_start(&s, client_handler, NULL);
	struct k8s_client *c = new_client(&s, &o);
	struct result r = { 0 };

	k8s_client_get(c, "/plain", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK(strstr(s.last_head, "\r\nAuthorization: Bearer first-token\r\n") != NULL);
	check_write_file(NULL, path, "second-token-longer\n", sizeof("second-token-longer\n") - 1);
	RUN_UNTIL(false, 300);
	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/plain", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK(strstr(s.last_head, "\r\nAuthorization: Bearer second-token-longer\r\n") != NULL);
	/* an unusable file keeps the last good token */
	check_write_file(NULL, path, "\n", sizeof("\n") - 1);
	RUN_UNTIL(false, 300);
	memset(&r, 0, sizeof(r));
	k8s_client_get(c, "/plain", on_done, &r);
	RUN_UNTIL(r.done, 2000);
	CHECK(strstr(s.last_head, "\r\nAuthorization: Bearer second-token-longer\r\n") != NULL);
	struct k8s_client_stats st;
	k8s_client_get_stats(c, &st);
	CHECK_INT(st.token_reloads, 2);
	k8s_client_free(c);
	srv_stop(&s);
	unlink(path);
}

static void test_escape(void)
{
	struct evbuffer *b = evbuffer_new();
	k8s_client_escape(b, "a-Z_0.~ /+=&?%");
	size_t n = evbuffer_get_length(b);
	CHECK_MEM_STR(evbuffer_pullup(b, -1), n, "a-Z_0.~%20%2F%2B%3D%26%3F%25");
	evbuffer_free(b);
}

/* ---- store ---- */

struct model_obj {
	char ns[32], name[32];
	char json[1024];
	bool present;
};

static struct model_obj m_conns[16], m_secrets[16];
static int n_mconns, n_msecrets;
static int list_rv = 100;
static struct sconn *conn_watch, *secret_watch;
static char conn_watch_path[1024], secret_watch_path[1024];
static int fail_conn_lists;   /* next connector lists answer 500 */
static bool watch_410_once;   /* next connector watch answers 410 */
static int secret_gets;
static char last_conn_list_path[1024];

static void model_set(struct model_obj *arr, int *n, const char *ns, const char *name, const char *json)
{
	for (int i = 0; i < *n; i++) {
		if (strcmp(arr[i].ns, ns) == 0 && strcmp(arr[i].name, name) == 0) {
			snprintf(arr[i].json, sizeof(arr[i].json), "%s", json);
			arr[i].present = json != NULL;
			return;
		}
	}
	struct model_obj *o = &arr[(*n)++];
	snprintf(o->ns, sizeof(o->ns), "%s", ns);
	snprintf(o->name, sizeof(o->name), "%s", name);
	snprintf(o->json, sizeof(o->json), "%s", json);
	o->present = true;
}

static void connector_json(char *out, size_t cap, const char *ns, const char *name, const char *cls,
			   const char *addr, const char *secret, const char *ca, int rv)
{
	char auth[128] = "", cas[128] = "";
	if (secret)
		snprintf(auth, sizeof(auth), ",\"auth\":{\"name\":\"basicAuth\",\"secretRef\":{\"name\":\"%s\"}}", secret);
	if (ca)
		snprintf(cas, sizeof(cas), ",\"caCertSecretRef\":{\"name\":\"%s\"}", ca);
	snprintf(out, cap, "{\"apiVersion\":\"connectors.alauda.io/v1alpha1\",\"kind\":\"Connector\","
		 "\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"resourceVersion\":\"%d\",\"generation\":1},"
		 "\"spec\":{\"address\":\"%s\",\"connectorClassName\":\"%s\"%s%s}}",
		 name, ns, rv, addr, cls, auth, cas);
}

static void add_connector(const char *ns, const char *name, const char *cls, const char *addr,
			  const char *secret, const char *ca, int rv)
{
	char j[1024];
	connector_json(j, sizeof(j), ns, name, cls, addr, secret, ca, rv);
	model_set(m_conns, &n_mconns, ns, name, j);
}

static void secret_json(char *out, size_t cap, const char *ns, const char *name, const char *type,
			const char *user, const char *pw, const char *ca, int rv)
{
	char data[600] = "", u[64], p[64], c[400];
	size_t n = 0;
	if (user) {
		base64_encode(user, strlen(user), u);
		n += (size_t)snprintf(data + n, sizeof(data) - n, "%s\"username\":\"%s\"", n ? "," : "", u);
	}
	if (pw) {
		base64_encode(pw, strlen(pw), p);
		n += (size_t)snprintf(data + n, sizeof(data) - n, "%s\"password\":\"%s\"", n ? "," : "", p);
	}
	if (ca) {
		base64_encode(ca, strlen(ca), c);
		n += (size_t)snprintf(data + n, sizeof(data) - n, "%s\"ca.crt\":\"%s\"", n ? "," : "", c);
	}
	snprintf(out, cap, "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"resourceVersion\":\"%d\"},"
		 "\"type\":\"%s\",\"data\":{%s}}", name, ns, rv, type, data);
}

static void add_secret(const char *ns, const char *name, const char *type, const char *user,
		       const char *pw, const char *ca, int rv)
{
	char j[1024];
	secret_json(j, sizeof(j), ns, name, type, user, pw, ca, rv);
	model_set(m_secrets, &n_msecrets, ns, name, j);
}

static void url_decode(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (*s == '%' && s[1] && s[2]) {
			char h[3] = { s[1], s[2], 0 };
			*o++ = (char)strtol(h, NULL, 16);
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Lists one page: the continue token is "idx/<n>=" to exercise escaping. */
static void serve_list(struct sconn *sc, const char *path, struct model_obj *arr, int n, const char *kind)
{
	int limit = 500, start = 0;
	const char *q = strstr(path, "limit=");
	if (q)
		limit = atoi(q + 6);
	q = strstr(path, "continue=");
	if (q) {
		char tok[64];
		snprintf(tok, sizeof(tok), "%s", q + 9);
		char *amp = strchr(tok, '&');
		if (amp)
			*amp = '\0';
		url_decode(tok);
		if (sscanf(tok, "idx/%d=", &start) != 1) {
			reply(sc, 400, NULL, "{\"kind\":\"Status\",\"code\":400}", false);
			return;
		}
	}
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "{\"kind\":\"%sList\",\"apiVersion\":\"v1\",\"items\":[", kind);
	int i = start, shown = 0, idx = 0;
	for (idx = 0; idx < n && shown < limit; idx++) {
		if (!arr[idx].present || idx < start)
			continue;
		evbuffer_add_printf(b, "%s%s", shown ? "," : "", arr[idx].json);
		shown++;
		i = idx + 1;
	}
	bool more = false;
	for (int k = i; k < n; k++)
		more |= arr[k].present;
	if (more)
		evbuffer_add_printf(b, "],\"metadata\":{\"resourceVersion\":\"%d\",\"continue\":\"idx/%d=\"}}", list_rv, i);
	else
		evbuffer_add_printf(b, "],\"metadata\":{\"resourceVersion\":\"%d\"}}", list_rv);
	size_t len = evbuffer_get_length(b);
	char *body = malloc(len + 1);
	evbuffer_remove(b, body, len);
	body[len] = '\0';
	reply(sc, 200, NULL, body, true);
	free(body);
	evbuffer_free(b);
}

static void store_handler(struct sconn *sc, const char *method, const char *path, const char *head,
			  const char *body, size_t blen)
{
	(void)method; (void)head; (void)body; (void)blen;
	bool watch = strstr(path, "watch=1") != NULL;
	static const char conn_prefix[] = "/apis/connectors.alauda.io/v1alpha1/connectors?";
	if (strncmp(path, conn_prefix, strlen(conn_prefix)) == 0) {
		if (watch) {
			if (watch_410_once) {
				watch_410_once = false;
				reply(sc, 410, NULL, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
				      "\"reason\":\"Expired\",\"code\":410}", false);
				return;
			}
			snprintf(conn_watch_path, sizeof(conn_watch_path), "%s", path);
			watch_begin(sc, true);
			conn_watch = sc;
			return;
		}
		snprintf(last_conn_list_path, sizeof(last_conn_list_path), "%s", path);
		if (fail_conn_lists > 0) {
			fail_conn_lists--;
			reply(sc, 500, NULL, "{\"kind\":\"Status\",\"code\":500}", false);
			return;
		}
		serve_list(sc, path, m_conns, n_mconns, "Connector");
	} else if (strncmp(path, "/api/v1/secrets?", 16) == 0) {
		if (watch) {
			snprintf(secret_watch_path, sizeof(secret_watch_path), "%s", path);
			watch_begin(sc, false);
			secret_watch = sc;
			return;
		}
		serve_list(sc, path, m_secrets, n_msecrets, "Secret");
	} else if (strncmp(path, "/api/v1/namespaces/", 19) == 0) {
		char ns[64], name[64];
		secret_gets++;
		if (sscanf(path + 19, "%63[^/]/secrets/%63s", ns, name) == 2) {
			for (int i = 0; i < n_msecrets; i++) {
				if (m_secrets[i].present && strcmp(m_secrets[i].ns, ns) == 0 &&
				    strcmp(m_secrets[i].name, name) == 0) {
					reply(sc, 200, NULL, m_secrets[i].json, false);
					return;
				}
			}
		}
		reply(sc, 404, NULL, "{\"kind\":\"Status\",\"code\":404,\"reason\":\"NotFound\"}", false);
	} else {
		reply(sc, 404, NULL, "{\"kind\":\"Status\",\"code\":404}", false);
	}
}

static struct connector *find(struct k8s_store *st, const char *ns, const char *name)
{
	return k8s_store_find_connector(st, og_str_make(ns, strlen(ns)), og_str_make(name, strlen(name)));
}

typedef bool (*conn_pred)(const struct connector *c, const char *arg);

static bool pred_host(const struct connector *c, const char *arg)
{
	return c && strcmp(c->host, arg) == 0;
}

static bool pred_usable(const struct connector *c, const char *arg)
{
	(void)arg;
	return c && !c->unavailable;
}

static bool pred_gone(const struct connector *c, const char *arg)
{
	(void)arg;
	return !c;
}

/* Runs the loop until the connector satisfies pred (2 s at most); returns
 * the last lookup's reference (or NULL). */
static struct connector *wait_for(struct k8s_store *st, const char *ns, const char *name, conn_pred pred,
				  const char *arg)
{
	long long end = now_ms() + 2000;
	struct connector *c = NULL;

	for (;;) {
		c = k8s_store_find_connector(st, og_str_make(ns, strlen(ns)), og_str_make(name, strlen(name)));
		if (pred(c, arg) || now_ms() >= end)
			return c;
		connector_unref(c);
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static bool has(const char *s, const char *sub)
{
	return s && strstr(s, sub);
}

static void push_event(struct sconn *w, const char *type, const char *obj)
{
	char line[1400];
	snprintf(line, sizeof(line), "{\"type\":\"%s\",\"object\":%s}\n", type, obj);
	watch_line(w, line);
}

static void test_store(void)
{
	struct srv s;
	char url[64], err[256];
	srv_start(&s, store_handler, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
	struct k8s_client_opts co = { .server = url };
	struct k8s_client *c = k8s_client_new(base, dns, &co, err, sizeof(err));
	struct k8s_store_opts so = { .page_size = 2, .backoff_min_ms = 100, .backoff_max_ms = 400 };
	struct k8s_store_stats stats;

	add_connector("team-a", "harbor", "oci", "https://harbor.example.com", "harbor-secret", NULL, 10);
	add_connector("team-a", "git", "git", "https://git.example.com", "git-secret", NULL, 11);
	add_connector("team-a", "bad", "oci", "ftp://x.example.com", NULL, NULL, 12);
	add_connector("team-a", "nosecret", "oci", "https://r.example.com", "missing-secret", NULL, 13);
	add_connector("team-b", "anon", "oci", "http://10.0.0.1:5000/prefix", NULL, NULL, 14);
	add_connector("team-a", "wrongtype", "oci", "https://r.example.com", "opaque-secret", NULL, 15);
	add_connector("team-a", "nopw", "oci", "https://r.example.com", "nopw-secret", "ca-secret", 16);
	add_secret("team-a", "harbor-secret", "cpaas.io/distribution-registry-token", "robot", "pw1", NULL, 20);
	add_secret("team-a", "git-secret", "kubernetes.io/basic-auth", "g", "gp", NULL, 21);
	add_secret("team-a", "unrelated", "Opaque", "x", "y", NULL, 22);
	add_secret("team-a", "opaque-secret", "Opaque", "x", "y", NULL, 23);
	add_secret("team-a", "nopw-secret", "kubernetes.io/basic-auth", "u", NULL, NULL, 24);
	add_secret("team-a", "ca-secret", "Opaque", NULL, NULL, "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n", 25);

	struct k8s_store *st = k8s_store_new(base, c, &so);
	CHECK(!k8s_store_synced(st));
	struct connector *pre = find(st, "team-a", "harbor");
	CHECK(pre != NULL && has(pre->unavailable, "not loaded yet"));
	connector_unref(pre);
	RUN_UNTIL(k8s_store_synced(st) && conn_watch && secret_watch, 3000);
	CHECK(k8s_store_synced(st));
	if (!k8s_store_synced(st) || !conn_watch || !secret_watch)
		goto out;
	k8s_store_get_stats(st, &stats);
	CHECK_INT(stats.connectors, 7);
	CHECK_INT(stats.secrets, 5); /* harbor, missing, opaque, nopw, ca: not git's, not unrelated */
	CHECK_INT(stats.lists, 4 + 3); /* 7 connectors and 6 secrets in pages of 2 */
	CHECK_INT(secret_gets, 0);
	CHECK(has(conn_watch_path, "allowWatchBookmarks=true"));
	CHECK(has(conn_watch_path, "resourceVersion=100"));
	CHECK(has(conn_watch_path, "timeoutSeconds=300"));
	CHECK(has(secret_watch_path, "resourceVersion=100"));

	struct connector *h = find(st, "team-a", "harbor");
	CHECK(h != NULL);
	if (!h)
		goto out;
	CHECK(h->unavailable == NULL);
	CHECK(h->https);
	CHECK(strcmp(h->host, "harbor.example.com") == 0);
	CHECK_INT(h->port, 443);
	CHECK(h->authorization && strcmp(h->authorization, "Basic cm9ib3Q6cHcx") == 0);
	struct connector *h2 = find(st, "team-a", "harbor");
	CHECK(h2 == h); /* cached until something changes */
	connector_unref(h2);

	CHECK(find(st, "team-a", "git") == NULL);
	CHECK(find(st, "team-a", "none") == NULL);
	CHECK(find(st, "team-c", "harbor") == NULL);
	struct connector *x = find(st, "team-a", "bad");
	CHECK(x && has(x->unavailable, "invalid"));
	connector_unref(x);
	x = find(st, "team-a", "nosecret");
	CHECK(x && has(x->unavailable, "missing-secret") && has(x->unavailable, "not found"));
	connector_unref(x);
	x = find(st, "team-b", "anon");
	CHECK(x && !x->unavailable && !x->authorization && !x->https && strcmp(x->host, "10.0.0.1") == 0 &&
	      x->port == 5000 && strcmp(x->path_prefix, "/prefix") == 0);
	connector_unref(x);
	x = find(st, "team-a", "wrongtype");
	CHECK(x && has(x->unavailable, "type Opaque"));
	connector_unref(x);
	x = find(st, "team-a", "nopw");
	CHECK(x && has(x->unavailable, "no key \"password\""));
	connector_unref(x);

	/* a rotated password: a new connector object, the old one intact */
	char j[1024];
	secret_json(j, sizeof(j), "team-a", "harbor-secret", "cpaas.io/distribution-registry-token", "robot",
		    "pw2", NULL, 101);
	model_set(m_secrets, &n_msecrets, "team-a", "harbor-secret", j);
	push_event(secret_watch, "MODIFIED", j);
	struct connector *h3 = NULL;
	for (int i = 0; i < 200 && (!h3 || h3 == h); i++) {
		connector_unref(h3);
		RUN_UNTIL(false, 5);
		h3 = find(st, "team-a", "harbor");
	}
	CHECK(h3 != h);
	CHECK(h3 && strcmp(h3->authorization, "Basic cm9ib3Q6cHcy") == 0);
	CHECK(strcmp(h->authorization, "Basic cm9ib3Q6cHcx") == 0);
	connector_unref(h);
	connector_unref(h3);

	/* an address change */
	connector_json(j, sizeof(j), "team-a", "harbor", "oci", "https://harbor2.example.com:8443/v", "harbor-secret",
		       NULL, 102);
	model_set(m_conns, &n_mconns, "team-a", "harbor", j);
	push_event(conn_watch, "MODIFIED", j);
	x = wait_for(st, "team-a", "harbor", pred_host, "harbor2.example.com");
	CHECK(x && x->port == 8443 && strcmp(x->path_prefix, "/v") == 0 && x->authorization &&
	      strcmp(x->authorization, "Basic cm9ib3Q6cHcy") == 0);
	connector_unref(x);

	/* a new connector naming a Secret the store did not keep: one GET */
	add_secret("team-a", "new-secret", "kubernetes.io/basic-auth", "nu", "np", NULL, 30);
	connector_json(j, sizeof(j), "team-a", "new", "oci", "https://new.example.com", "new-secret", NULL, 103);
	model_set(m_conns, &n_mconns, "team-a", "new", j);
	push_event(conn_watch, "ADDED", j);
	x = wait_for(st, "team-a", "new", pred_usable, NULL);
	CHECK_INT(secret_gets, 1);
	CHECK(x && !x->unavailable && x->authorization && strcmp(x->authorization, "Basic bnU6bnA=") == 0);
	connector_unref(x);

	/* the missing Secret appears */
	secret_json(j, sizeof(j), "team-a", "missing-secret", "kubernetes.io/basic-auth", "m", "mp", NULL, 104);
	push_event(secret_watch, "ADDED", j);
	model_set(m_secrets, &n_msecrets, "team-a", "missing-secret", j);
	x = wait_for(st, "team-a", "nosecret", pred_usable, NULL);
	CHECK(x && !x->unavailable);
	connector_unref(x);

	/* deleted: 404 from then on */
	connector_json(j, sizeof(j), "team-a", "new", "oci", "https://new.example.com", "new-secret", NULL, 105);
	push_event(conn_watch, "DELETED", j);
	model_set(m_conns, &n_mconns, "team-a", "new", NULL);
	x = wait_for(st, "team-a", "new", pred_gone, NULL);
	CHECK(x == NULL);
	k8s_store_get_stats(st, &stats);
	CHECK_INT(stats.secrets, 5); /* new-secret dropped with its connector */

	/* a bookmark moves the resourceVersion */
	push_event(conn_watch, "BOOKMARK", "{\"kind\":\"Connector\",\"apiVersion\":\"connectors.alauda.io/v1alpha1\","
		   "\"metadata\":{\"resourceVersion\":\"150\"}}");
	/* an ERROR 410 event: list again; a connector gone meanwhile is swept */
	model_set(m_conns, &n_mconns, "team-b", "anon", NULL);
	list_rv = 200;
	fail_conn_lists = 1; /* and the first relist fails: backoff */
	struct sconn *old_watch = conn_watch;
	push_event(conn_watch, "ERROR", "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
		   "\"message\":\"too old resource version: 1 (150)\",\"reason\":\"Expired\",\"code\":410}");
	RUN_UNTIL(conn_watch != old_watch, 3000);
	k8s_store_get_stats(st, &stats);
	CHECK_INT(stats.relists, 2);
	CHECK_INT(stats.retries, 1);
	CHECK(stats.last_backoff_ms >= 50 && stats.last_backoff_ms <= 100);
	CHECK(has(conn_watch_path, "resourceVersion=200"));
	CHECK(find(st, "team-b", "anon") == NULL);
	x = find(st, "team-a", "harbor");
	CHECK(x && !x->unavailable);
	connector_unref(x);

	/* the watch ends cleanly; the next one gets HTTP 410: list again */
	old_watch = conn_watch;
	watch_410_once = true;
	list_rv = 300;
	watch_send(conn_watch, "", 0, true);
	RUN_UNTIL(conn_watch != old_watch, 3000);
	k8s_store_get_stats(st, &stats);
	CHECK_INT(stats.relists, 3);
	CHECK(has(conn_watch_path, "resourceVersion=300"));

	/* garbage on the secret watch: watched again from the last RV */
	struct sconn *old_swatch = secret_watch;
	watch_line(secret_watch, "this is not json\n");
	RUN_UNTIL(secret_watch != old_swatch, 3000);
	CHECK(secret_watch != old_swatch);
	CHECK(has(secret_watch_path, "resourceVersion=104"));

out:
	k8s_store_free(st);
	k8s_client_free(c);
	srv_stop(&s);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	if (getenv("K8S_TEST_VERBOSE"))
		log_set_level(LOG_DEBUG);
	base = event_base_new();
	dns = evdns_base_new(base, 0);
	struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = { 0, 2000 };
	event_add(tick, &tv);
	make_cert();

	test_escape();
	test_basic_requests();
	test_caps();
	test_pool_cap_and_cancel();
	test_watch(false);
	test_watch(true);
	test_tls();
	test_token_rotation();
	test_store();

	for (int i = 0; i < n_sconns; i++)
		free(all_sconns[i]);
	event_free(tick);
	evdns_base_free(dns, 0);
	event_base_free(base);
	X509_free(tls_cert);
	EVP_PKEY_free(tls_key);
	CHECK_DONE();
}
