/* What conn.c (requests, lifetime, auth), conn_io.c (the client socket),
 * conn_idle.c (idle wait, parking, timer), conn_accept.c (accept and
 * shutdown) and exchange.c (the upstream side of a request) share about a
 * connection. Not for other modules. */
#ifndef OCIGATE_PROXY_CONN_PRIV_H
#define OCIGATE_PROXY_CONN_PRIV_H

#include <time.h>

#include <event2/bufferevent.h>

#include "auth/auth.h"
#include "proxy/blobserve.h"
#include "proxy/conn.h"
#include "proxy/park.h"
#include "proxy/route.h"
#include "proxy/splice.h"
#include "proxy/token.h"
#include "proxy/upstream.h"

struct cred_memo;
#include "util/http1.h"

struct fetch;

/* The upstream side of one request (exchange.c). exchange_end releases
 * what it holds and zeroes it: every request starts from all-zero. */
struct exchange {
	struct upstream_site *site;
	struct upstream_pool *pool;   /* origin of the current hop */
	char *target;                 /* request-target of the current hop */
	bool send_auth;               /* the registry's own origin: send credentials */
	char *bearer;                 /* "Bearer ..." for this request */
	char *scope;                  /* token scope of this request */
	struct token_wait token_wait;
	struct fetch *probe;
	struct upstream_conn *up;
	unsigned hops;
	bool reused;
	bool got_bytes;
	bool retried;
	bool auth_retried;
	bool keep_alive;              /* the upstream connection may carry another request */
	bool up_paused;
	/* Counted in px->body_streams: the body queues in queue_buf, which
	 * holds queued bytes of px->body_queued (exchange_queue_changed). */
	bool streaming;
	struct evbuffer *queue_buf;
	struct evbuffer_cb_entry *queue_cb;
	size_t queued;
	bool client_chunked;
	enum http1_body body;
	uint64_t body_left;
	struct http1_chunked chunk;
	char redirect_digest[160];
	/* The client's request body (push). */
	bool req_body_started;
	bool req_body_done;
	bool client_paused;
	uint64_t req_left;
	struct http1_chunked req_chunk;
	struct blobserve bs;          /* the blob cache's part of the request */
	/* Plain upstream to plain client: the rest of the body is spliced
	 * (splice.c) once the client's output buffer is empty. */
	bool splice_wait;
	struct splice_relay *splice;
};

/* What the connection's timer is armed for (conn_timer). */
enum conn_timer_use {
	CONN_TIMER_IDLE, /* idle_timeout, or a request body's: expiry closes */
	CONN_TIMER_HEAD, /* header_timeout of the head being read: expiry answers 408 */
	/* The connection became idle after a response; armed for idle_wait
	 * (the park delay) from idle_from (it may fire early: conn_wait_idle).
	 * Expiry parks a plain TCP one (park.h) and frees a TLS one's OpenSSL
	 * buffers; the rest of idle_timeout follows. With an idle_timeout no
	 * longer than the delay, expiry closes. */
	CONN_TIMER_PARK,
};

struct conn {
	struct proxy *px;
	uint64_t id;
	enum conn_state state;
	struct bufferevent *bev;
	struct event *timer;
	enum conn_timer_use timer_use;
	struct timespec accepted_at;
	struct timespec idle_from; /* the end of the last response (conn_wait_idle) */
	char peer[48];
	union park_addr peer_addr;
	struct conn *next, *prev, *reap_next;
	bool in_process;
	bool parked;       /* its socket went to park.c: the reaper frees the rest quietly */
	unsigned n_requests;
	/* Waiting for the client to read its last response before parking:
	 * n_requests then (a request since cancels the wait). */
	unsigned park_after;
	/* Client backpressure: no new request is read while the responses
	 * queued for the client exceed out_low (the write low watermark). */
	size_t out_low;
	bool out_paused;
	/* The client shut down its sending side: answer what it sent, then
	 * close (half-close). */
	bool client_eof;
	bool client_tls; /* accepted on the TLS listener */
	/* A plain client's output is written straight to the socket
	 * (conn_flush): at the end of the loop round in which bytes were
	 * queued (the flush event), or at once when a response is finished.
	 * The bufferevent writes, with write interest, only what the socket
	 * did not take; write_off is set while it does not. */
	bool write_off;
	bool flush_queued; /* the flush event is active */
	/* A plain client is read with its own event (rd_event), not the
	 * bufferevent's: one readv per wakeup into reserved input space, where
	 * libevent 2.1 asks ioctl(FIONREAD) first and reads 4 KiB at most. */
	bool rd_wanted;  /* reading is on (conn_read_on/off) */
	bool rd_added;   /* rd_event is added: wanted, and the input below in_limit */
	size_t in_limit; /* the input's read watermark */

	/* The current request. */
	char *head; /* copy of the request head, then its header array */
	struct http1_request req;
	struct route route;
	enum auth_verb verb;
	struct timespec req_start;
	struct connector *connector;
	struct auth_identity *identity;
	struct auth_pending *pending;
	struct cred_memo *auth_memo; /* the last Authorization value's token hash */
	bool keep_alive;
	int status;
	uint64_t body_bytes;

	struct exchange ex; /* the upstream side of the current request */
	/* The read and flush events of a plain client (their size is
	 * libevent's, so they go last; see conn_alloc). */
	void *ev_space[];
};

/* conn.c: the request cycle and the connection's lifetime. */
void conn_set_state(struct conn *c, enum conn_state to);
void conn_close(struct conn *c, const char *reason);
/* Detaches c from the loop and px->conns; the reaper frees it. */
void conn_retire(struct conn *c);
void conn_link(struct conn *c);
void conn_log_close(uint64_t id, const char *peer, const char *state, const char *reason,
		    unsigned requests, const struct timespec *accepted_at);
double conn_ms_since(const struct timespec *t);
struct evbuffer *conn_out(struct conn *c);
/* Reads and answers the requests in the input while the state allows. */
void conn_process(struct conn *c);
/* The client bufferevent's callbacks (conn_io.c calls the first and
 * conn_client_eof for a plain client's own reads). */
void conn_client_read(struct bufferevent *bev, void *arg);
void conn_client_write(struct bufferevent *bev, void *arg);
void conn_client_event(struct bufferevent *bev, short events, void *arg);
void conn_client_eof(struct conn *c);
/* The response is complete in the client's output buffer (the exchange
 * has given its upstream connection back or closed it). */
void conn_finish_response(struct conn *c);
void conn_respond_error(struct conn *c, int status, const char *code, const char *message);
bool conn_has_body(const struct http1_request *req);

/* conn_io.c */
/* Sets up a plain client's own read and flush events around fd (after its
 * bufferevent exists). Returns -1 when out of memory. */
int conn_start_plain(struct conn *c, evutil_socket_t fd);
void conn_read_on(struct conn *c);
void conn_read_off(struct conn *c);
/* Reads from the client again unless something else keeps reading off
 * (output backpressure, end of the client's stream, closing). */
void conn_resume_read(struct conn *c);
/* The client's input is not read past limit bytes (its read watermark). */
void conn_set_read_limit(struct conn *c, size_t limit);
/* A plain client's output is empty: what is queued next goes out through
 * the flush event, not the bufferevent's write interest. */
void conn_writes_direct(struct conn *c);
/* Turns off the conn's own events (a connection being retired). */
void conn_io_stop(struct conn *c);

/* conn_idle.c */
/* The connection has answered everything it was sent: the idle wait
 * (the park delay) runs from now. */
void conn_wait_idle(struct conn *c);
/* The connection's timer (what it is armed for: timer_use). */
void conn_timer(evutil_socket_t fd, short what, void *arg);

/* exchange.c */
void exchange_start(struct conn *c);
void exchange_client_readable(struct conn *c);
void exchange_client_drained(struct conn *c);
/* Releases everything the exchange holds and resets it (on close or
 * request end). */
void exchange_end(struct conn *c);

#endif
