/* An asynchronous HTTP/1.1 client for ONE Kubernetes API server, on the
 * proxy's event loop (libevent bufferevents, OpenSSL, evdns).
 *
 * Requests share a small pool of keep-alive connections; each watch has a
 * connection of its own. Every response has a size cap, every request a
 * timeout; gzip bodies are inflated as they arrive, with the cap applied
 * to the inflated size. Callbacks always run from the loop, never from
 * within the call that started the request, so callers do not re-enter.
 *
 * Authentication: a client certificate and/or "Authorization: Bearer"
 * with a static token or a token file. The file (a projected
 * ServiceAccount token that kubelet rotates) is re-read when its mtime,
 * size or inode changes: a timer stat()s it every token_check_ms (60 s by
 * default), and a 401 from the server triggers an early check (at most
 * one per 5 s). That read is synchronous but small (capped at 64 KiB),
 * rare and off the request path. */
#ifndef OCIGATE_K8S_CLIENT_H
#define OCIGATE_K8S_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/common.h"

struct event_base;
struct evdns_base;
struct evbuffer;

struct k8s_client_opts {
	const char *server;           /* "https://host[:port][/prefix]" ("http://" for tests) */
	const char *tls_server_name;  /* SNI and name to verify; NULL: the server's host */
	const void *ca_pem;           /* the only trust for the server; NULL: system store */
	size_t ca_pem_len;
	bool insecure;                /* no certificate verification at all */
	const void *cert_pem, *key_pem; /* client certificate (chain) and key, or NULL */
	size_t cert_pem_len, key_pem_len;
	const char *token;            /* bearer token, or NULL */
	const char *token_file;       /* bearer token file, re-read on rotation, or NULL */
	/* 0 selects the default given in brackets. */
	unsigned max_conns;           /* connections for non-watch requests [4] */
	unsigned connect_timeout_ms;  /* TCP + TLS handshake [5000] */
	unsigned request_timeout_ms;  /* whole request; for a watch, until its head [10000] */
	unsigned watch_idle_ms;       /* a watch with no byte for this long ends [330000] */
	unsigned idle_conn_ms;        /* keep-alive connections are closed after [60000] */
	unsigned token_check_ms;      /* token file mtime check interval [60000] */
	size_t max_body;              /* POST responses, after inflating [K8S_API_MAX_BODY] */
	size_t max_get_body;          /* GET responses (list pages) [K8S_API_MAX_LIST_BODY] */
	size_t max_line;              /* one watch line [K8S_API_MAX_BODY] */
	bool no_gzip;                 /* do not send Accept-Encoding: gzip */
};

struct k8s_response {
	int status;          /* HTTP status; 0 when none was received */
	const char *body;    /* inflated body, NUL-terminated (not for watches) */
	size_t len;
	const char *error;   /* set when the exchange failed (status is then 0,
			      * or the status of a watch that ended badly) */
	bool timeout;        /* the failure was a timeout */
	unsigned retry_after; /* seconds, from Retry-After on 429/503; 0 if none */
};

typedef void (*k8s_response_fn)(void *arg, const struct k8s_response *r);
typedef void (*k8s_line_fn)(void *arg, const char *line, size_t n);

struct k8s_client;
struct k8s_request;

/* Returns NULL with a reason in err when the options cannot be used (bad
 * server URL, CA, client certificate, unreadable token file). dns may be
 * NULL only when the server is an IP address (tests). */
struct k8s_client *k8s_client_new(struct event_base *base, struct evdns_base *dns,
				   const struct k8s_client_opts *o, char *err, size_t cap);
/* Cancels every request without calling its callbacks. */
void k8s_client_free(struct k8s_client *c);

/* path is the request target: "/apis/...?query", already escaped (see
 * k8s_client_escape). json_body is taken (drained and freed). Never return
 * NULL. done runs exactly once unless the request is cancelled first. */
struct k8s_request *k8s_client_post(struct k8s_client *c, const char *path,
				    struct evbuffer *json_body, k8s_response_fn done, void *arg);
/* Like k8s_client_post, sent as PATCH with this Content-Type (e.g.
 * "application/merge-patch+json"). */
struct k8s_request *k8s_client_patch(struct k8s_client *c, const char *path,
				     const char *content_type, struct evbuffer *body,
				     k8s_response_fn done, void *arg);
/* Like k8s_client_post, sent as PUT (an update: the body carries
 * metadata.resourceVersion, so a stale write gets 409 Conflict). */
struct k8s_request *k8s_client_put(struct k8s_client *c, const char *path,
				   struct evbuffer *json_body, k8s_response_fn done, void *arg);
struct k8s_request *k8s_client_get(struct k8s_client *c, const char *path,
				   k8s_response_fn done, void *arg);
/* A watch: if the status is 200, line runs once per complete line of the
 * (inflated) body, without its newline, then end runs once when the
 * stream stops: r->error NULL when the server ended it cleanly, else why.
 * A non-200 status ends it with r->status and r->body set like a GET.
 * A line longer than max_line ends the watch with an error. */
struct k8s_request *k8s_client_watch(struct k8s_client *c, const char *path, k8s_line_fn line,
				     k8s_response_fn end, void *arg);
/* Stops a request; its callbacks will not run. Safe from any callback of
 * this or another request, including this request's own line callback.
 * Must not be called after done/end ran (the handle is gone then); calling
 * it from within done/end of the same request is a no-op. */
void k8s_request_cancel(struct k8s_request *r);

/* Appends s percent-encoded for a query value (RFC 3986 unreserved kept). */
void k8s_client_escape(struct evbuffer *out, const char *s);

/* For tests and metrics. */
struct k8s_client_stats {
	unsigned long connects;  /* connections opened */
	unsigned long reuses;    /* requests sent on a kept-alive connection */
	unsigned long token_reloads;
	unsigned open_conns;
	unsigned idle_conns;
	unsigned queued;         /* requests waiting for a connection */
};
void k8s_client_get_stats(const struct k8s_client *c, struct k8s_client_stats *out);

#endif
