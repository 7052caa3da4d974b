#include "proxy/listen.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "util/log.h"

static void listen_format_sockaddr(const struct sockaddr *sa, char *buf, size_t cap)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
			sizeof(struct sockaddr_in), host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(buf, cap, "?");
		return;
	}
	snprintf(buf, cap, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

struct evconnlistener *listen_bind(struct event_base *base, const struct config_address *a,
				   const char *what, evconnlistener_cb cb, void *arg, char *text,
				   size_t text_cap)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct evconnlistener *l;
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	char port[8];

	snprintf(port, sizeof(port), "%u", (unsigned)a->port);
	int gai = getaddrinfo(a->host && *a->host ? a->host : NULL, port, &hints, &res);
	if (gai != 0) {
		log_error("listen_failed", "listener=%s addr=%s:%s reason=\"%s\"", what, a->host, port,
			  gai_strerror(gai));
		return NULL;
	}
	l = evconnlistener_new_bind(base, cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
				    LEV_OPT_CLOSE_ON_EXEC, 1024, res->ai_addr, (int)res->ai_addrlen);
	freeaddrinfo(res);
	if (!l) {
		log_error("listen_failed", "listener=%s addr=%s:%s reason=\"%s\"", what, a->host, port,
			  strerror(errno));
		return NULL;
	}
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &blen) == 0)
		listen_format_sockaddr((struct sockaddr *)&bound, text, text_cap);
	else
		snprintf(text, text_cap, "?");
	return l;
}
