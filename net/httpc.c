#include "net/httpc.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>

#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* TLS connections read ahead: OpenSSL takes a record's header, its body
 * and often the records after it in one read(2), where it took two reads
 * per record. libevent 2.1 stops reading once the record it decrypted is
 * used up (SSL_pending), so records already read ahead would wait for an
 * epoll event that never comes: whenever the input grows, and whenever
 * reading is switched on again (httpc_enable), the bufferevent's read
 * event is made active while OpenSSL holds bytes. A partial record held
 * costs one read that finds nothing more. */
static void httpc_tls_drain(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl && SSL_has_pending(ssl) && (bufferevent_get_enabled(bev) & EV_READ))
		event_active(&bev->ev_read, EV_READ, 1);
}

static void httpc_tls_input_grew(struct evbuffer *in, const struct evbuffer_cb_info *info,
				 void *arg)
{
	(void)in;
	if (info->n_added)
		httpc_tls_drain(arg);
}

void httpc_enable(struct bufferevent *bev, short events)
{
	/* An event already on would only be added again, ~300 instructions
	 * each (a pooled connection went through three per request); its
	 * timeout restarts with bufferevent_set_timeouts, not here. */
	short off = (short)(events & ~bufferevent_get_enabled(bev));

	if (off)
		bufferevent_enable(bev, off);
	if (events & EV_READ)
		httpc_tls_drain(bev);
}

static struct bufferevent *httpc_new_tls_bev(const struct httpc_peer *p, int opts)
{
	SSL *ssl = tls_client_new_ssl(p->tls, p->tls_name);
	struct bufferevent *bev;

	if (!ssl)
		return NULL;
	SSL_set_read_ahead(ssl, 1);
	bev = bufferevent_openssl_socket_new(p->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
	if (!bev)
		return NULL;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	evbuffer_add_cb(bufferevent_get_input(bev), httpc_tls_input_grew, bev);
	return bev;
}

static struct bufferevent *httpc_new_bev(const struct httpc_peer *p, char *err, size_t cap)
{
	int opts = BEV_OPT_CLOSE_ON_FREE | p->bev_options;
	struct bufferevent *bev;

	if (p->tls)
		bev = httpc_new_tls_bev(p, opts);
	else
		bev = bufferevent_socket_new(p->base, -1, opts);
	if (!bev)
		snprintf(err, cap, "cannot create a %sconnection", p->tls ? "TLS " : "");
	return bev;
}

struct bufferevent *httpc_connect(const struct httpc_peer *p, const struct timeval *connect_tv,
				  bufferevent_data_cb read_cb, bufferevent_data_cb write_cb,
				  bufferevent_event_cb event_cb, void *arg, char *err, size_t cap)
{
	struct bufferevent *bev = httpc_new_bev(p, err, cap);

	if (!bev)
		return NULL;
	bufferevent_set_timeouts(bev, connect_tv, connect_tv);
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, arg);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect_hostname(bev, p->dns, AF_UNSPEC, p->host, p->port) != 0) {
		snprintf(err, cap, "cannot connect to %s: %s", p->name,
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		httpc_close(bev);
		return NULL;
	}
	return bev;
}

void httpc_connected(struct bufferevent *bev)
{
	evutil_socket_t fd = bufferevent_getfd(bev);
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void httpc_close(struct bufferevent *bev)
{
	SSL *ssl;

	if (!bev)
		return;
	ssl = bufferevent_openssl_get_ssl(bev);
	if (ssl)
		SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN);
	bufferevent_free(bev);
}

bool httpc_may_retry(bool reused, bool got_bytes, bool retried, short events)
{
	return reused && !got_bytes && !retried && !(events & BEV_EVENT_TIMEOUT);
}

/* OpenSSL 3 reports a TLS peer that closes without close_notify as an
 * error; what the peer did is close the connection. */
static bool httpc_eof_without_close_notify(unsigned long ssl_err)
{
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
	return ssl_err && ERR_GET_LIB(ssl_err) == ERR_LIB_SSL &&
	       ERR_GET_REASON(ssl_err) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
#else
	(void)ssl_err;
	return false;
#endif
}

void httpc_describe_error(const struct httpc_peer *p, struct bufferevent *bev, bool connected,
			  short events, char *buf, size_t cap)
{
	int dns_err = bufferevent_socket_get_dns_error(bev);
	unsigned long ssl_err = p->tls ? bufferevent_get_openssl_error(bev) : 0;
	SSL *ssl = p->tls ? bufferevent_openssl_get_ssl(bev) : NULL;
	int sock_err = EVUTIL_SOCKET_ERROR();

	/* A refused or reset TCP connection under TLS arrives as SSL_ERROR_SYSCALL
	 * (libevent's code) or a system error in OpenSSL's queue: report it as
	 * what it is, not as a TLS failure. */
	if (ssl_err == SSL_ERROR_SYSCALL || (ssl_err && ERR_SYSTEM_ERROR(ssl_err))) {
		if (ssl_err != SSL_ERROR_SYSCALL)
			sock_err = ERR_GET_REASON(ssl_err);
		ssl_err = 0;
	}
	if (events & BEV_EVENT_TIMEOUT) {
		snprintf(buf, cap, "%s %s timed out", p->name, connected ? "response" : "connect");
	} else if (httpc_eof_without_close_notify(ssl_err)) {
		snprintf(buf, cap, "%s closed the connection (without TLS close_notify)", p->name);
	} else if (dns_err) {
		snprintf(buf, cap, "cannot resolve %s: %s", p->host, evutil_gai_strerror(dns_err));
	} else if (ssl_err || (ssl && SSL_get_verify_result(ssl) != X509_V_OK)) {
		char tls[200];
		tls_describe_error(ssl, ssl_err, tls, sizeof(tls));
		snprintf(buf, cap, "%s: %s", p->name, tls);
	} else if (!connected && sock_err) {
		snprintf(buf, cap, "%s unreachable: %s", p->name, evutil_socket_error_to_string(sock_err));
	} else if (events & BEV_EVENT_EOF) {
		snprintf(buf, cap, "%s closed the connection", p->name);
	} else {
		snprintf(buf, cap, "%s %s: %s", p->name, connected ? "connection failed" : "unreachable",
			 sock_err ? evutil_socket_error_to_string(sock_err) : "connection error");
	}
	ERR_clear_error();
}
