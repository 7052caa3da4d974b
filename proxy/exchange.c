/* The upstream side of a request: choosing the credential (Basic, or a
 * Bearer token from the registry's token service), sending the request and
 * the client's body, following blob redirects to storage hosts, and relaying
 * the response back with backpressure both ways. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "proxy/conn_priv.h"
#include "proxy/fetch.h"
#include "proxy/metrics.h"
#include "proxy/respond.h"
#include "proxy/token.h"
#include "util/http1_buf.h"
#include "util/log.h"
#include "util/url.h"
#include "util/xalloc.h"

#define EXCHANGE_MAX_HOPS 5
/* Longer than any honest rate limit window; what k8s/client.c caps at too. */
#define EXCHANGE_MAX_RETRY_AFTER 3600

static void exchange_open(struct conn *c);
static void exchange_relay_body(struct conn *c);
static void exchange_authorize_upstream(struct conn *c);

static void exchange_free_secret(char **s)
{
	if (*s) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

/* ---- memory for bodies in flight ------------------------------------------ */

/* The least a body may queue: one TLS record. */
#define EXCHANGE_SHARE_MIN ((size_t)16 * 1024)

/* How much one body relayed through memory may queue now: an equal share
 * of half of body_memory, at most body_buffer. A read may add as much
 * again before the limit is seen (reads are capped at the share), hence
 * the half. */
static size_t exchange_body_share(const struct proxy *px)
{
	const struct config *cfg = px->cfg;
	size_t share = cfg->server.body_memory / 2 / OG_MAX(px->body_streams, (size_t)1);

	return OG_MAX(OG_MIN(share, cfg->server.body_buffer), EXCHANGE_SHARE_MIN);
}

/* Shares are computed for the streams there are now; streams that filled
 * theirs when there were fewer (clients that stopped reading) may hold
 * more. So once all queues together reach body_memory, a stream reads
 * only into an empty queue, and one TLS record at a time: it always gets
 * going again once its client has read what it holds, and the queues grow
 * past body_memory by at most a record or two per stream. Streams that
 * share fairly stay below body_memory and never meet this. */
static bool exchange_over_budget(const struct proxy *px)
{
	return px->body_queued >= px->cfg->server.body_memory;
}

static bool exchange_may_queue(const struct proxy *px, size_t queued, size_t share)
{
	return queued < share && (queued == 0 || !exchange_over_budget(px));
}

/* What the next read of a stream may add. */
static size_t exchange_read_cap(const struct proxy *px, size_t share)
{
	return exchange_over_budget(px) ? EXCHANGE_SHARE_MIN : share;
}

static void exchange_queue_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info,
				   void *arg)
{
	struct conn *c = arg;
	size_t gone = OG_MIN(info->n_deleted, c->ex.queued + info->n_added);

	(void)buf;
	c->ex.queued = c->ex.queued + info->n_added - gone;
	c->px->body_queued = c->px->body_queued + info->n_added - gone;
}

/* watch: where the body queues (the client's output, or the upstream's
 * for a request body); its changes keep px->body_queued. */
static void exchange_stream_begin(struct conn *c, struct evbuffer *watch)
{
	if (c->ex.streaming)
		return;
	c->ex.queue_cb = evbuffer_add_cb(watch, exchange_queue_changed, c);
	if (!c->ex.queue_cb)
		return; /* out of memory: the body goes on with body_buffer alone */
	c->ex.streaming = true;
	c->ex.queue_buf = watch;
	c->ex.queued = evbuffer_get_length(watch);
	c->px->body_queued += c->ex.queued;
	c->px->body_streams++;
}

static void exchange_stream_end(struct conn *c)
{
	if (!c->ex.streaming)
		return;
	evbuffer_remove_cb_entry(c->ex.queue_buf, c->ex.queue_cb);
	c->px->body_queued -= c->ex.queued;
	c->px->body_streams--;
	c->ex.streaming = false;
	c->ex.queue_cb = NULL;
	c->ex.queue_buf = NULL;
	c->ex.queued = 0;
	if (c->ex.up)
		bufferevent_set_max_single_read(c->ex.up->bev, c->px->cfg->server.body_buffer);
}

/* Every upstream connection the exchange holds ends here or in
 * exchange_body_done (given back to the pool). A request body queued in
 * it is gone with it. */
static void exchange_drop_up(struct conn *c, const char *reason)
{
	exchange_stream_end(c);
	upstream_close(c->ex.up, reason);
	c->ex.up = NULL;
}

size_t conn_body_bytes_queued(const struct proxy *px)
{
	size_t n = 0;

	for (const struct conn *c = px->conns; c; c = c->next) {
		if (!c->ex.streaming)
			continue;
		n += evbuffer_get_length(bufferevent_get_input(c->bev)) +
		     evbuffer_get_length(bufferevent_get_output(c->bev));
		if (c->ex.up)
			n += evbuffer_get_length(bufferevent_get_input(c->ex.up->bev)) +
			     evbuffer_get_length(bufferevent_get_output(c->ex.up->bev));
	}
	return n;
}

void exchange_end(struct conn *c)
{
	struct exchange *ex = &c->ex;

	exchange_stream_end(c);
	blobserve_end(c);
	splice_relay_free(ex->splice);
	token_wait_cancel(&ex->token_wait);
	fetch_cancel(ex->probe);
	exchange_drop_up(c, "request_ended");
	exchange_free_secret(&ex->bearer);
	free(ex->target);
	free(ex->scope);
	if (ex->client_paused || ex->req_body_started) {
		conn_set_read_limit(c, c->px->req_limits.max_head_bytes);
		ex->client_paused = ex->req_body_started = false;
		conn_resume_read(c);
	}
	memset(ex, 0, sizeof(*ex));
}

/* An upstream failure before any response byte reached the client. */
static void exchange_fail(struct conn *c, int status, const char *code, const char *why)
{
	char msg[800];

	log_warn("upstream_error", "conn=%" PRIu64 " connector=%s status=%d reason=\"%s\"", c->id,
		 c->connector->id, status, why);
	snprintf(msg, sizeof(msg), "connector %s: %s", c->connector->id, why);
	exchange_drop_up(c, "upstream_error");
	conn_respond_error(c, status, code, msg);
}

/* ---- what goes upstream ------------------------------------------------- */

static bool exchange_adds_library(const struct conn *c)
{
	return c->ex.site->docker_hub && !memchr(c->route.repo.p, '/', c->route.repo.n);
}

/* Finds a query parameter and decodes it into out. */
static bool exchange_query_param(struct og_str q, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = q.p, *end = q.p + q.n;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;
		if ((size_t)(e - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=')
			return url_decode_component(p + nl + 1, (size_t)(e - p - (ptrdiff_t)nl - 1), out, cap) >= 0;
		p = e + 1;
	}
	return false;
}

/* The source of a cross-repository mount, as the upstream names it.
 * Clients name it as they pull it, through the proxy
 * (namespaces/NS/connectors/NAME/REPO): that prefix of this connector is
 * stripped. Returns 1 with the name in out, 0 without a from= parameter,
 * -1 when the source is not a repository of this connector (the mount is
 * then dropped and the registry starts a plain upload). */
static int exchange_mount_source(struct conn *c, char *out, size_t cap)
{
	char from[512], prefix[600];

	if (c->route.kind != ROUTE_BLOB_UPLOAD ||
	    !exchange_query_param(c->route.query, "from", from, sizeof(from)))
		return 0;
	snprintf(prefix, sizeof(prefix), "namespaces/%s/connectors/%s/", c->connector->ns,
		 c->connector->name);
	const char *name = from;
	if (strncmp(from, prefix, strlen(prefix)) == 0)
		name = from + strlen(prefix);
	else if (strncmp(from, "namespaces/", 11) == 0)
		return -1;
	if (!route_valid_repository(og_str_make(name, strlen(name))))
		return -1;
	snprintf(out, cap, "%s", name);
	return 1;
}

/* Scope of the token this request needs (distribution token spec):
 * repository:NAME:pull, or pull,push for writes, plus pull on the source of
 * a cross-repository mount. */
/* A new string of the parts, end to end: built on every request, where
 * snprintf's format parsing costs more than the copying. */
static char *exchange_join(const struct og_str *parts, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += parts[i].n;
	char *s = x_malloc(len + 1), *p = s;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, parts[i].p, parts[i].n);
		p += parts[i].n;
	}
	*p = '\0';
	return s;
}

static struct og_str exchange_library_prefix(const struct conn *c)
{
	return exchange_adds_library(c) ? OG_STR_LIT("library/") : OG_STR_LIT("");
}

static void exchange_build_scope(struct conn *c, int mount, const char *from)
{
	const struct og_str parts[] = {
		OG_STR_LIT("repository:"),
		exchange_library_prefix(c),
		c->route.repo,
		c->verb == AUTH_VERB_PUSH ? OG_STR_LIT(":pull,push") : OG_STR_LIT(":pull"),
		mount > 0 ? OG_STR_LIT(" repository:") : OG_STR_LIT(""),
		og_str_make(from, mount > 0 ? strlen(from) : 0),
		mount > 0 ? OG_STR_LIT(":pull") : OG_STR_LIT(""),
	};

	c->ex.scope = exchange_join(parts, OG_ARRAY_LEN(parts));
}

/* The query with from= set to the upstream name (mount > 0) or without
 * mount= and from= (mount < 0); other parameters byte for byte. */
static void exchange_append_query(struct evbuffer *out, struct og_str q, int mount,
				  const char *from)
{
	const char *p = q.p, *end = q.p + q.n;
	char enc[1600];
	bool first = true;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;
		bool is_from = e - p >= 5 && memcmp(p, "from=", 5) == 0;
		bool is_mount = e - p >= 6 && memcmp(p, "mount=", 6) == 0;
		if (!(mount < 0 && (is_from || is_mount))) {
			evbuffer_add(out, first ? "?" : "&", 1);
			if (is_from && url_encode_component(from, enc, sizeof(enc)) >= 0)
				evbuffer_add_printf(out, "from=%s", enc);
			else
				evbuffer_add(out, p, (size_t)(e - p));
			first = false;
		}
		p = e + 1;
	}
}

static void exchange_build_target(struct conn *c, int mount, const char *from)
{
	const char *rest = c->req.target.p + c->route.upstream_off;
	size_t rest_n = c->req.target.n - c->route.upstream_off;
	struct evbuffer *b;

	if (mount == 0 || c->route.query.n == 0) {
		const struct og_str parts[] = {
			og_str_make(c->connector->path_prefix, strlen(c->connector->path_prefix)),
			OG_STR_LIT("/v2/"),
			exchange_library_prefix(c),
			og_str_make(rest, rest_n),
		};
		c->ex.target = exchange_join(parts, OG_ARRAY_LEN(parts));
		return;
	}
	b = evbuffer_new();
	evbuffer_add_printf(b, "%s/v2/%s%.*s", c->connector->path_prefix,
			    exchange_adds_library(c) ? "library/" : "",
			    (int)(c->route.query.p - 1 - rest), rest);
	exchange_append_query(b, c->route.query, mount, from);
	evbuffer_add(b, "", 1);
	c->ex.target = x_strdup((const char *)evbuffer_pullup(b, -1));
	evbuffer_free(b);
}

/* Field names with their lengths: every header of every request and
 * response is looked up in these. */
struct exchange_name {
	const char *name;
	size_t len;
	bool prefix; /* matches every name that starts with it */
};
#define EXCHANGE_NAME(n) { n, sizeof(n) - 1, false }
#define EXCHANGE_PREFIX(n) { n, sizeof(n) - 1, true }
#define EXCHANGE_NAME_LEN_MAX 31

/* A table of names, indexed by length on first use: a lookup compares
 * only the names of the header's length and the prefixes (it scanned all
 * 17 names for each of a response's ten headers). */
struct exchange_names {
	const struct exchange_name *names;
	size_t n;
	bool indexed;
	uint32_t prefixes;                          /* a bit per prefix entry */
	uint32_t by_len[EXCHANGE_NAME_LEN_MAX + 1]; /* a bit per exact entry */
};
#define EXCHANGE_NAMES(a) { a, OG_ARRAY_LEN(a), false, 0, { 0 } }

static void exchange_names_index(struct exchange_names *t)
{
	assert(t->n <= 32);
	for (size_t i = 0; i < t->n; i++) {
		const struct exchange_name *e = &t->names[i];
		assert(e->len <= EXCHANGE_NAME_LEN_MAX);
		if (e->prefix)
			t->prefixes |= UINT32_C(1) << i;
		else
			t->by_len[e->len] |= UINT32_C(1) << i;
	}
	t->indexed = true;
}

static bool exchange_name_in(struct og_str name, struct exchange_names *t)
{
	if (!t->indexed)
		exchange_names_index(t);
	uint32_t cand = t->prefixes | (name.n <= EXCHANGE_NAME_LEN_MAX ? t->by_len[name.n] : 0);

	while (cand) {
		const struct exchange_name *e = &t->names[__builtin_ctz(cand)];
		cand &= cand - 1;
		if ((e->prefix ? name.n > e->len : name.n == e->len) &&
		    og_mem_ieq(name.p, e->name, e->len))
			return true;
	}
	return false;
}

static const struct exchange_name exchange_request_names[] = {
	EXCHANGE_NAME("Accept"), EXCHANGE_NAME("Range"), EXCHANGE_NAME("If-Range"),
	EXCHANGE_NAME("If-None-Match"), EXCHANGE_NAME("If-Match"), EXCHANGE_NAME("If-Modified-Since"),
	EXCHANGE_NAME("If-Unmodified-Since"), EXCHANGE_NAME("User-Agent"), EXCHANGE_NAME("Content-Type"),
	EXCHANGE_NAME("Content-Range"),
};
static struct exchange_names exchange_forward_request_headers = EXCHANGE_NAMES(exchange_request_names);

static bool exchange_sends_body(const struct conn *c)
{
	return c->ex.hops == 0 && conn_has_body(&c->req);
}

static void exchange_add_framing(struct conn *c, struct http1_head *out)
{
	enum http_method m = c->req.method;

	if (exchange_sends_body(c) && c->req.body == HTTP1_BODY_CHUNKED)
		http1_head_add(out, "Transfer-Encoding: chunked\r\n", 28);
	else if (exchange_sends_body(c))
		http1_head_u64_field(out, "Content-Length", c->req.content_length);
	else if (m == HTTP_M_POST || m == HTTP_M_PUT || m == HTTP_M_PATCH)
		http1_head_add(out, "Content-Length: 0\r\n", 19);
}

/* Only what registries need reaches them: never the client's Authorization,
 * cookies or hop-by-hop fields; credentials only to the registry's origin. */
static void exchange_write_request(struct conn *c, struct evbuffer *to)
{
	const char *auth = c->ex.bearer ? c->ex.bearer : c->connector->authorization;
	struct http1_head out;

	http1_head_begin(&out, to);
	http1_head_add(&out, c->req.method_str.p, c->req.method_str.n);
	http1_head_add(&out, " ", 1);
	http1_head_add(&out, c->ex.target, strlen(c->ex.target));
	http1_head_add(&out, " HTTP/1.1\r\n", 11);
	http1_head_field(&out, "Host", 4, c->ex.pool->host_header, strlen(c->ex.pool->host_header));
	if (c->ex.send_auth && auth)
		http1_head_field(&out, "Authorization", 13, auth, strlen(auth));
	for (size_t i = 0; i < c->req.n_headers; i++) {
		const struct http1_header *h = &c->req.headers[i];
		if (exchange_name_in(h->name, &exchange_forward_request_headers))
			http1_head_field(&out, h->name.p, h->name.n, h->value.p, h->value.n);
	}
	exchange_add_framing(c, &out);
	http1_head_add(&out, "\r\n", 2);
	http1_head_flush(&out);
}

/* ---- the client's request body -------------------------------------------- */

static void exchange_relay_request_body(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out = bufferevent_get_output(c->ex.up->bev);
	uint64_t moved = 0;
	int done;

	if (c->req.body == HTTP1_BODY_CHUNKED) {
		done = http1_buf_dechunk(&c->ex.req_chunk, in, out, true, &moved);
		if (done == 1)
			evbuffer_add(out, "0\r\n\r\n", 5);
	} else {
		size_t n = (size_t)OG_MIN((uint64_t)evbuffer_get_length(in), c->ex.req_left);
		evbuffer_remove_buffer(in, out, n);
		c->ex.req_left -= n;
		done = c->ex.req_left == 0;
	}
	if (done < 0) {
		log_info("bad_request", "conn=%" PRIu64 " peer=%s reason=bad_chunked_request_body",
			 c->id, c->peer);
		conn_close(c, "bad_chunked_request_body");
	} else if (!done && c->client_eof) {
		conn_close(c, "client_closed_mid_request");
	} else if (done) {
		c->ex.req_body_done = true;
		exchange_stream_end(c);
		evtimer_del(c->timer);
		conn_set_read_limit(c, c->px->req_limits.max_head_bytes);
		if (c->state == CONN_REQUEST_BODY)
			conn_set_state(c, CONN_UPSTREAM_HEAD);
	} else {
		if (!exchange_may_queue(c->px, evbuffer_get_length(out), exchange_body_share(c->px))) {
			conn_read_off(c);
			c->ex.client_paused = true;
		}
		/* A client that stops sending its body is dropped after idle_timeout. */
		c->timer_use = CONN_TIMER_IDLE;
		evtimer_add(c->timer, &c->px->idle_timeout);
	}
}

static void exchange_start_request_body(struct conn *c)
{
	size_t body_buffer = c->px->cfg->server.body_buffer;

	exchange_stream_begin(c, bufferevent_get_output(c->ex.up->bev));
	c->ex.req_body_started = true;
	c->ex.req_left = c->req.content_length;
	http1_chunked_init(&c->ex.req_chunk);
	conn_set_state(c, CONN_REQUEST_BODY);
	if (c->req.expect_continue)
		evbuffer_add(conn_out(c), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	conn_set_read_limit(c, exchange_read_cap(c->px, exchange_body_share(c->px)));
	bufferevent_setwatermark(c->ex.up->bev, EV_WRITE, body_buffer / 2, 0);
	exchange_relay_request_body(c);
}

void exchange_client_readable(struct conn *c)
{
	if (c->state == CONN_REQUEST_BODY && !c->ex.req_body_done)
		exchange_relay_request_body(c);
}

static void exchange_up_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t share;

	if (!c->ex.client_paused)
		return;
	share = exchange_body_share(c->px);
	if (!exchange_may_queue(c->px, evbuffer_get_length(bufferevent_get_output(bev)) * 2, share))
		return; /* wait until half of the share is free */
	c->ex.client_paused = false;
	conn_set_read_limit(c, exchange_read_cap(c->px, share));
	conn_resume_read(c);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		exchange_relay_request_body(c);
}

static void exchange_send(struct conn *c)
{
	/* A blob is the long wait and the long body: its connection holds
	 * TLS buffers only while they are in use, from the request on. */
	if (c->route.kind == ROUTE_BLOB && c->req.method == HTTP_M_GET)
		upstream_lean_buffers(c->ex.up);
	exchange_write_request(c, bufferevent_get_output(c->ex.up->bev));
	upstream_write_now(c->ex.up, exchange_sends_body(c));
	c->ex.got_bytes = false;
	if (exchange_sends_body(c))
		exchange_start_request_body(c);
	else
		conn_set_state(c, CONN_UPSTREAM_HEAD);
}

/* ---- the response head ------------------------------------------------------ */

static const struct exchange_name exchange_response_names[] = {
	EXCHANGE_NAME("Content-Type"), EXCHANGE_NAME("Content-Range"), EXCHANGE_NAME("Accept-Ranges"),
	EXCHANGE_NAME("Content-Encoding"), EXCHANGE_NAME("Docker-Content-Digest"),
	EXCHANGE_NAME("Docker-Distribution-Api-Version"), EXCHANGE_NAME("Docker-Upload-UUID"),
	EXCHANGE_NAME("ETag"), EXCHANGE_NAME("Last-Modified"), EXCHANGE_NAME("Cache-Control"),
	EXCHANGE_NAME("Expires"), EXCHANGE_NAME("Date"), EXCHANGE_NAME("Range"), EXCHANGE_NAME("Warning"),
	EXCHANGE_NAME("Docker-RateLimit-Source"), EXCHANGE_PREFIX("OCI-"), EXCHANGE_PREFIX("RateLimit-"),
};

static const struct exchange_name exchange_storage_names[] = {
	EXCHANGE_NAME("Content-Type"), EXCHANGE_NAME("Content-Range"), EXCHANGE_NAME("Accept-Ranges"),
	EXCHANGE_NAME("Content-Encoding"), EXCHANGE_NAME("ETag"), EXCHANGE_NAME("Last-Modified"),
	EXCHANGE_NAME("Cache-Control"), EXCHANGE_NAME("Expires"), EXCHANGE_NAME("Date"),
};

static struct exchange_names exchange_forward_response_headers =
	EXCHANGE_NAMES(exchange_response_names);
static struct exchange_names exchange_storage_response_headers =
	EXCHANGE_NAMES(exchange_storage_names);

static bool exchange_forward_response_header(struct og_str name)
{
	return exchange_name_in(name, &exchange_forward_response_headers);
}

static bool exchange_forward_storage_header(struct og_str name)
{
	return exchange_name_in(name, &exchange_storage_response_headers);
}

static void exchange_add_header(struct http1_head *out, struct og_str name, const char *v, size_t n)
{
	http1_head_field(out, name.p, name.n, v, n);
}

/* Retry-After goes to the client once, as delay-seconds capped at
 * EXCHANGE_MAX_RETRY_AFTER or as a short HTTP-date; anything else from an
 * upstream (huge numbers, floods of the field, junk) is dropped. */
static void exchange_add_retry_after(struct http1_head *out, const struct http1_header *h, bool *done)
{
	struct og_str v = h->value;
	uint64_t n = 0;
	bool digits = v.n > 0;

	if (*done || v.n == 0 || v.n > 40)
		return;
	for (size_t i = 0; i < v.n && digits; i++) {
		digits = v.p[i] >= '0' && v.p[i] <= '9';
		if (digits && n <= EXCHANGE_MAX_RETRY_AFTER)
			n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	*done = true;
	if (digits) {
		http1_head_u64_field(out, "Retry-After", OG_MIN(n, (uint64_t)EXCHANGE_MAX_RETRY_AFTER));
		return;
	}
	for (size_t i = 0; i < v.n; i++) {
		char ch = v.p[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == ' ' || ch == ',' || ch == ':' || ch == '-'))
			return;
	}
	exchange_add_header(out, h->name, v.p, v.n);
}

static void exchange_add_link(struct conn *c, struct http1_head *out, const struct http1_header *h)
{
	char buf[2048];
	ssize_t n = route_rewrite_link(h->value, c->route.ns, c->route.connector, buf, sizeof(buf));

	if (n > 0)
		exchange_add_header(out, h->name, buf, (size_t)n);
}

/* The URL of the current hop, borrowing the pool's and the conn's strings
 * (never url_free it). */
static void exchange_hop_url(const struct conn *c, struct url *u)
{
	u->https = c->ex.pool->https;
	u->host = c->ex.pool->host;
	u->port = c->ex.pool->port;
	u->target = c->ex.target;
}

/* Upload and manifest Locations point into the registry: rewrite them to
 * this connector's proxy path so the client's next request comes back here.
 * Locations elsewhere (another host) go out as they are. */
static void exchange_add_location(struct conn *c, struct http1_head *out, const struct http1_header *h)
{
	struct upstream_pool *reg = upstream_site_registry(c->ex.site);
	struct url base, loc;
	char prefix[600];

	exchange_hop_url(c, &base);
	if (url_resolve(&base, h->value, &loc) != 0)
		return;
	snprintf(prefix, sizeof(prefix), "%s/v2/%s", c->connector->path_prefix,
		 exchange_adds_library(c) ? "library/" : "");
	size_t pl = strlen(prefix);
	if (loc.https != reg->https || loc.port != reg->port || strcmp(loc.host, reg->host) != 0) {
		exchange_add_header(out, h->name, h->value.p, h->value.n);
	} else if (strncmp(loc.target, prefix, pl) == 0) {
		const char *rest = loc.target + pl;
		http1_head_add(out, h->name.p, h->name.n);
		http1_head_add(out, ": /v2/namespaces/", 17);
		http1_head_add(out, c->connector->ns, strlen(c->connector->ns));
		http1_head_add(out, "/connectors/", 12);
		http1_head_add(out, c->connector->name, strlen(c->connector->name));
		http1_head_add(out, "/", 1);
		http1_head_add(out, rest, strlen(rest));
		http1_head_add(out, "\r\n", 2);
	}
	url_free(&loc);
}

static void exchange_write_response_head(struct conn *c, const struct http1_response *resp)
{
	struct http1_head head, *out = &head;
	const struct http1_header *cl = NULL;
	bool have_digest = false;

	bool storage = !c->ex.send_auth, retry_after = false;

	http1_head_begin(out, conn_out(c));
	http1_head_status_line(out, resp->status, respond_reason(resp->status));
	for (size_t i = 0; i < resp->n_headers; i++) {
		const struct http1_header *h = &resp->headers[i];
		if (og_str_ieq(h->name, "Content-Length")) {
			cl = h;
		} else if (og_str_ieq(h->name, "Retry-After")) {
			exchange_add_retry_after(out, h, &retry_after);
		} else if (storage) {
			if (exchange_forward_storage_header(h->name))
				exchange_add_header(out, h->name, h->value.p, h->value.n);
		} else if (og_str_ieq(h->name, "Link")) {
			exchange_add_link(c, out, h);
		} else if (og_str_ieq(h->name, "Location")) {
			exchange_add_location(c, out, h);
		} else if (exchange_forward_response_header(h->name)) {
			have_digest |= og_str_ieq(h->name, "Docker-Content-Digest");
			exchange_add_header(out, h->name, h->value.p, h->value.n);
		}
	}
	if (!have_digest && c->ex.redirect_digest[0])
		http1_head_field(out, "Docker-Content-Digest", 21, c->ex.redirect_digest,
				    strlen(c->ex.redirect_digest));
	c->ex.client_chunked = false;
	if (resp->body == HTTP1_BODY_LENGTH) {
		http1_head_u64_field(out, "Content-Length", resp->content_length);
	} else if (resp->body == HTTP1_BODY_NONE) {
		if (cl)
			exchange_add_header(out, cl->name, cl->value.p, cl->value.n);
	} else if (c->req.version_minor >= 1) {
		c->ex.client_chunked = true;
		http1_head_add(out, "Transfer-Encoding: chunked\r\n", 28);
	} else {
		c->keep_alive = false; /* HTTP/1.0: the end of the body is the close */
	}
	if (!c->keep_alive)
		http1_head_add(out, "Connection: close\r\n", 19);
	http1_head_add(out, "\r\n", 2);
	http1_head_flush(out);
}

static void exchange_on_401(struct conn *c, const struct http1_response *resp)
{
	enum upstream_challenge ch = UPSTREAM_CHALLENGE_NONE;
	char why[300];

	/* The rest of the 401 is not read: the connection cannot carry more. */
	exchange_drop_up(c, "auth_refused");
	/* A storage host's challenge is never learned: it would choose where
	 * the connector's credentials go, for every user of the connector. */
	if (!c->ex.send_auth) {
		snprintf(why, sizeof(why), "the storage host %s answered HTTP %d to a redirected blob request",
			 c->ex.pool->origin, resp->status);
		exchange_fail(c, 502, "UNAVAILABLE", why);
		return;
	}
	if (resp->status == 401)
		ch = upstream_site_learn_challenge(c->ex.site, resp->headers, resp->n_headers, why,
						   sizeof(why));
	if (ch == UPSTREAM_CHALLENGE_REFUSED) {
		exchange_fail(c, 502, "UNAVAILABLE", why);
		return;
	}
	/* A cached token the registry no longer takes is dropped. */
	bool token_refused = ch == UPSTREAM_CHALLENGE_BEARER && c->ex.bearer;
	if (token_refused)
		token_invalidate(c->ex.site->tokens, c->ex.scope);
	if (ch == UPSTREAM_CHALLENGE_BEARER && !c->ex.auth_retried && !c->ex.req_body_started) {
		/* The request goes again, once, with a fresh token. */
		exchange_free_secret(&c->ex.bearer);
		c->ex.auth_retried = true;
		exchange_authorize_upstream(c);
		return;
	}
	if (token_refused) {
		snprintf(why, sizeof(why), "the upstream registry refused the token its token service "
			 "issued for the connector's credentials (HTTP 401)");
	} else if (c->connector->authorization) {
		snprintf(why, sizeof(why), "the upstream registry rejected the connector's credentials "
			 "(HTTP %d)", resp->status);
	} else {
		snprintf(why, sizeof(why), "the upstream registry requires credentials and the connector "
			 "has none (HTTP %d)", resp->status);
	}
	exchange_fail(c, 502, "DENIED", why);
}

static bool exchange_is_redirect(int status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static void exchange_keep_digest(struct conn *c, const struct http1_response *resp)
{
	const struct http1_header *d =
		http1_find_header(resp->headers, resp->n_headers, "Docker-Content-Digest");

	if (d && d->value.n < sizeof(c->ex.redirect_digest) &&
	    route_valid_digest(d->value))
		snprintf(c->ex.redirect_digest, sizeof(c->ex.redirect_digest), "%.*s", (int)d->value.n,
			 d->value.p);
}

/* Blob storage behind a CDN or S3: follow the redirect here, so the client
 * never needs to reach the storage host, and never send it our credentials. */
static void exchange_follow_redirect(struct conn *c, const struct http1_response *resp,
				     struct og_str location)
{
	struct url base, next;
	char err[300];

	exchange_keep_digest(c, resp);
	exchange_hop_url(c, &base);
	if (++c->ex.hops > EXCHANGE_MAX_HOPS) {
		exchange_fail(c, 502, "UNAVAILABLE", "too many redirects from the upstream registry");
		return;
	}
	if (url_resolve(&base, location, &next) != 0) {
		exchange_fail(c, 502, "UNAVAILABLE", "the upstream registry redirected to an invalid URL");
		return;
	}
	if (!next.https && !c->connector->allow_insecure) {
		snprintf(err, sizeof(err), "refusing to follow a redirect to plain http://%s (the "
			 "connector does not allow_insecure)", next.host);
		url_free(&next);
		exchange_fail(c, 502, "UNAVAILABLE", err);
		return;
	}
	struct upstream_pool *pool = upstream_site_pool(c->ex.site, next.https, next.host, next.port,
							err, sizeof(err));
	if (!pool) {
		url_free(&next);
		exchange_fail(c, 502, "UNAVAILABLE", err);
		return;
	}
	exchange_drop_up(c, "redirected");
	log_debug("redirect", "conn=%" PRIu64 " connector=%s hop=%u to=%s", c->id, c->connector->id,
		  c->ex.hops, pool->origin);
	c->ex.pool = pool;
	/* Once off the registry's origin, the storage host chooses the next
	 * hop: a redirect back to the registry must not carry our credential
	 * to a path the storage host picked. */
	c->ex.send_auth = c->ex.send_auth && pool == upstream_site_registry(c->ex.site);
	free(c->ex.target);
	c->ex.target = next.target;
	next.target = NULL;
	url_free(&next);
	exchange_open(c);
}

/* Bodies the kernel can move from socket to socket: both sides plain TCP,
 * the length known, no cache fill, and large enough that a pipe pays off. */
static bool exchange_may_splice(const struct conn *c)
{
	return c->px->cfg->upstream.splice && c->ex.body == HTTP1_BODY_LENGTH &&
	       c->req.method == HTTP_M_GET && !c->ex.client_chunked && !c->client_tls &&
	       !c->ex.pool->https && !c->ex.bs.fill && !c->ex.bs.reading &&
	       c->ex.body_left >= c->px->cfg->server.body_buffer;
}

static void exchange_begin_body(struct conn *c, const struct http1_response *resp)
{
	c->ex.body = resp->body;
	c->ex.keep_alive = resp->keep_alive && (!c->ex.req_body_started || c->ex.req_body_done);
	c->ex.body_left = resp->content_length;
	http1_chunked_init(&c->ex.chunk);
	conn_set_state(c, CONN_STREAM_BODY);
	c->ex.splice_wait = exchange_may_splice(c);
	/* A body that is not all here yet will take reads and waits, and
	 * (unless spliced) a share of body_memory. */
	if (resp->body != HTTP1_BODY_NONE &&
	    (resp->body != HTTP1_BODY_LENGTH ||
	     c->ex.body_left > evbuffer_get_length(bufferevent_get_input(c->ex.up->bev)))) {
		upstream_lean_buffers(c->ex.up);
		if (!c->ex.splice_wait)
			exchange_stream_begin(c, conn_out(c));
	}
}

/* Returns true when the head was forwarded and the body (if any) follows. */
static bool exchange_read_head(struct conn *c)
{
	struct proxy *px = c->px;
	struct evbuffer *in = bufferevent_get_input(c->ex.up->bev);

	for (;;) {
		struct http1_response resp = { .headers = px->scratch_headers };
		enum http1_error err = HTTP1_E_NONE;
		size_t n = OG_MIN(evbuffer_get_length(in), px->resp_limits.max_head_bytes);
		const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
		ssize_t r = http1_parse_response(p, n, &px->resp_limits, c->req.method, &resp, &err);
		char why[200];

		if (r == 0)
			return false;
		if (r < 0 || resp.status == 101) {
			snprintf(why, sizeof(why), "%s sent an invalid response (%s)", c->ex.pool->origin,
				 r < 0 ? http1_error_str(err) : "unexpected upgrade");
			exchange_fail(c, 502, "UNAVAILABLE", why);
			return false;
		}
		if (resp.status < 200) { /* 100 Continue, 103 Early Hints: not for the client */
			evbuffer_drain(in, (size_t)r);
			continue;
		}
		metrics_upstream_response(c->connector, resp.status);
		if (c->state == CONN_REQUEST_BODY)
			c->keep_alive = false; /* answered before the client's body was read */
		if (resp.status == 401 || resp.status == 407) {
			exchange_on_401(c, &resp);
			return false;
		}
		const struct http1_header *loc = http1_find_header(resp.headers, resp.n_headers, "Location");
		if (exchange_is_redirect(resp.status) && loc && c->route.kind == ROUTE_BLOB &&
		    (c->req.method == HTTP_M_GET || c->req.method == HTTP_M_HEAD)) {
			exchange_follow_redirect(c, &resp, loc->value);
			return false;
		}
		c->status = resp.status;
		blobserve_on_head(c, &resp);
		exchange_write_response_head(c, &resp);
		evbuffer_drain(in, (size_t)r);
		exchange_begin_body(c, &resp);
		return true;
	}
}

/* ---- the response body -------------------------------------------------------- */

static void exchange_body_done(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->ex.up->bev);
	bool reusable = c->ex.keep_alive && c->ex.body != HTTP1_BODY_UNTIL_CLOSE &&
			evbuffer_get_length(in) == 0;

	exchange_stream_end(c);
	if (c->ex.client_chunked)
		evbuffer_add(conn_out(c), "0\r\n\r\n", 5);
	if (reusable) {
		upstream_release(c->ex.up);
		c->ex.up = NULL;
	} else if (c->ex.bs.reading) {
		exchange_drop_up(c, "body_done");
	}
	/* A filled body reaches the client from the cache file, at its pace. */
	if (blobserve_client_drained(c))
		return;
	conn_finish_response(c);
}

static void exchange_on_splice_done(void *arg, const char *reason)
{
	struct conn *c = arg;
	uint64_t moved = splice_relay_moved(c->ex.splice);

	splice_relay_free(c->ex.splice);
	c->ex.splice = NULL;
	c->body_bytes += moved;
	c->ex.body_left -= moved;
	c->px->stats.spliced_bytes += moved;
	if (reason) {
		if (strcmp(reason, "send_timeout") == 0 || strcmp(reason, "client_error") == 0) {
			conn_close(c, reason);
			return;
		}
		log_warn("upstream_error", "conn=%" PRIu64 " connector=%s reason=%s body_sent=%" PRIu64,
			 c->id, c->connector->id, reason, c->body_bytes);
		conn_close(c, "upstream_failed_mid_body");
		return;
	}
	c->px->stats.spliced_bodies++;
	conn_resume_read(c);
	exchange_body_done(c);
}

/* Hands both sockets to the splice relay; their bufferevents stay off
 * until it is done. Without a pipe the body goes through the buffers. */
static void exchange_splice_start(struct conn *c)
{
	struct proxy *px = c->px;

	c->ex.splice_wait = false;
	bufferevent_setwatermark(c->bev, EV_WRITE, c->out_low, 0);
	conn_read_off(c);
	conn_writes_direct(c);
	bufferevent_disable(c->ex.up->bev, EV_READ | EV_WRITE);
	c->ex.splice = splice_relay_start(px->base, bufferevent_getfd(c->ex.up->bev),
					  bufferevent_getfd(c->bev), c->ex.body_left, &px->read_timeout,
					  &px->send_timeout, exchange_on_splice_done, c);
	if (c->ex.splice)
		return;
	exchange_stream_begin(c, conn_out(c));
	conn_resume_read(c);
	httpc_enable(c->ex.up->bev, EV_READ | EV_WRITE);
}

/* What the upstream sent with the head is already in the client's output:
 * the splice starts when that has been written (write low watermark 0). */
static void exchange_splice_when_drained(struct conn *c)
{
	bufferevent_disable(c->ex.up->bev, EV_READ);
	if (evbuffer_get_length(conn_out(c)) == 0)
		exchange_splice_start(c);
	else
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

static void exchange_pause_if_full(struct conn *c)
{
	size_t share = exchange_body_share(c->px);

	bufferevent_set_max_single_read(c->ex.up->bev, exchange_read_cap(c->px, share));
	if (!c->ex.bs.reading && !exchange_may_queue(c->px, evbuffer_get_length(conn_out(c)), share)) {
		bufferevent_disable(c->ex.up->bev, EV_READ);
		c->ex.up_paused = true;
	}
}

static void exchange_relay_body(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->ex.up->bev);
	int done = 0;

	switch (c->ex.body) {
	case HTTP1_BODY_NONE:
		done = 1;
		break;
	case HTTP1_BODY_LENGTH: {
		size_t n = (size_t)OG_MIN((uint64_t)evbuffer_get_length(in), c->ex.body_left);
		if (n && c->ex.bs.fill) {
			int rc = blobserve_tee(c, in, n, n == c->ex.body_left);
			if (rc < 0 || c->state != CONN_STREAM_BODY)
				return; /* the client connection was cut */
			if (rc == 0) {
				c->ex.body_left -= n;
				done = c->ex.body_left == 0;
				break;
			}
			/* The disk failed: the body goes on without the cache, once
			 * the client has read what the file holds. */
			if (c->ex.bs.reading) {
				bufferevent_disable(c->ex.up->bev, EV_READ);
				c->ex.up_paused = true;
				return;
			}
		}
		if (n) {
			evbuffer_remove_buffer(in, conn_out(c), n);
			c->ex.body_left -= n;
			c->body_bytes += n;
		}
		done = c->ex.body_left == 0;
		break;
	}
	case HTTP1_BODY_CHUNKED:
		done = http1_buf_dechunk(&c->ex.chunk, in, conn_out(c), c->ex.client_chunked, &c->body_bytes);
		break;
	case HTTP1_BODY_UNTIL_CLOSE: {
		size_t n = evbuffer_get_length(in);
		if (n)
			http1_buf_move(in, conn_out(c), n, c->ex.client_chunked);
		c->body_bytes += n;
		break;
	}
	}
	if (done < 0) {
		log_warn("upstream_error", "conn=%" PRIu64 " connector=%s reason=bad_chunked_body",
			 c->id, c->connector->id);
		conn_close(c, "upstream_bad_chunked_body");
	} else if (done) {
		exchange_body_done(c);
	} else if (c->ex.splice_wait) {
		exchange_splice_when_drained(c);
	} else {
		exchange_pause_if_full(c);
	}
}

void exchange_client_drained(struct conn *c)
{
	size_t share;

	if (c->state == CONN_STREAM_BODY && c->ex.splice_wait) {
		if (evbuffer_get_length(conn_out(c)) == 0)
			exchange_splice_start(c);
		return;
	}
	if (c->state == CONN_STREAM_BODY && blobserve_client_drained(c))
		return;
	if (c->state != CONN_STREAM_BODY || !c->ex.up_paused)
		return;
	share = exchange_body_share(c->px);
	if (!exchange_may_queue(c->px, evbuffer_get_length(conn_out(c)) * 2, share))
		return; /* wait until half of the share is free */
	bufferevent_set_max_single_read(c->ex.up->bev, exchange_read_cap(c->px, share));
	c->ex.up_paused = false;
	httpc_enable(c->ex.up->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->ex.up->bev)) > 0)
		exchange_relay_body(c);
}

/* ---- upstream callbacks ----------------------------------------------------------- */

static void exchange_up_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	c->ex.got_bytes = true;
	if ((c->state == CONN_UPSTREAM_HEAD || c->state == CONN_REQUEST_BODY) && !exchange_read_head(c))
		return;
	if (c->state == CONN_STREAM_BODY)
		exchange_relay_body(c);
}

static void exchange_up_event(struct bufferevent *bev, short events, void *arg);

static void exchange_connect(struct conn *c)
{
	char err[300];

	c->ex.reused = false;
	c->ex.up = upstream_connect(c->ex.pool, exchange_up_read, exchange_up_write, exchange_up_event, c,
				 err, sizeof(err));
	if (!c->ex.up) {
		exchange_fail(c, 502, "UNAVAILABLE", err);
		return;
	}
	c->ex.up->conn_id = c->id;
	conn_set_state(c, CONN_UPSTREAM_CONNECT);
}

static void exchange_open(struct conn *c)
{
	c->ex.up = upstream_take_idle(c->ex.pool);
	if (!c->ex.up) {
		exchange_connect(c);
		return;
	}
	c->ex.reused = true;
	c->ex.up->conn_id = c->id;
	upstream_attach(c->ex.up, exchange_up_read, exchange_up_write, exchange_up_event, c);
	exchange_send(c);
}

static void exchange_failed_before_head(struct conn *c, short events)
{
	char why[400];
	bool timeout = (events & BEV_EVENT_TIMEOUT) != 0;

	/* A pooled connection the registry closed just as we reused it: the
	 * request never reached it. GET, HEAD and DELETE are idempotent (RFC
	 * 9110, 9.2.2) and without a body are safe to send again; a request
	 * with a body is not (its body is gone). */
	if (c->state == CONN_UPSTREAM_HEAD && !c->ex.req_body_started &&
	    httpc_may_retry(c->ex.reused, c->ex.got_bytes, c->ex.retried, events) &&
	    (c->req.method == HTTP_M_GET || c->req.method == HTTP_M_HEAD ||
	     c->req.method == HTTP_M_DELETE)) {
		exchange_drop_up(c, "stale_reused");
		c->px->stats.upstream_stale_retries++;
		c->ex.retried = true;
		exchange_connect(c);
		return;
	}
	upstream_describe_error(c->ex.up, events, why, sizeof(why));
	exchange_fail(c, timeout ? 504 : 502, "UNAVAILABLE", why);
}

static void exchange_up_event(struct bufferevent *bev, short events, void *arg)
{
	struct conn *c = arg;
	char why[400];

	(void)bev;
	if (events & BEV_EVENT_CONNECTED) {
		upstream_attach(c->ex.up, exchange_up_read, exchange_up_write, exchange_up_event, c);
		exchange_send(c);
		return;
	}
	if (c->state == CONN_UPSTREAM_CONNECT || c->state == CONN_UPSTREAM_HEAD ||
	    c->state == CONN_REQUEST_BODY) {
		exchange_failed_before_head(c, events);
		return;
	}
	if (c->state != CONN_STREAM_BODY)
		return;
	if (c->ex.body == HTTP1_BODY_UNTIL_CLOSE && (events & BEV_EVENT_EOF)) {
		exchange_relay_body(c);
		if (c->state == CONN_STREAM_BODY)
			exchange_body_done(c);
		return;
	}
	/* Headers already went out: a short body is the only honest signal. */
	upstream_describe_error(c->ex.up, events, why, sizeof(why));
	log_warn("upstream_error", "conn=%" PRIu64 " connector=%s reason=\"%s\" body_sent=%" PRIu64,
		 c->id, c->connector->id, why, c->body_bytes);
	conn_close(c, "upstream_failed_mid_body");
}

/* ---- choosing the upstream credential ------------------------------------------------ */

static void exchange_on_token(void *arg, const char *authorization, const char *error,
			      enum token_failure failure)
{
	struct conn *c = arg;

	if (!authorization) {
		exchange_fail(c, failure == TOKEN_TIMEOUT ? 504 : 502,
			      failure == TOKEN_REFUSED ? "DENIED" : "UNAVAILABLE", error);
		return;
	}
	exchange_free_secret(&c->ex.bearer);
	c->ex.bearer = x_strdup(authorization);
	exchange_open(c);
}

static void exchange_authorize_upstream(struct conn *c)
{
	if (c->ex.site->auth_mode != UPSTREAM_AUTH_BEARER) {
		exchange_open(c);
		return;
	}
	conn_set_state(c, CONN_UPSTREAM_AUTH);
	token_get(c->ex.site->tokens, &c->ex.token_wait, c->ex.scope, exchange_on_token, c);
}

static void exchange_on_probe(void *arg, const struct fetch_result *r)
{
	struct conn *c = arg;
	char why[400];

	c->ex.probe = NULL;
	if (r->error) {
		snprintf(why, sizeof(why), "%s", r->error);
		exchange_fail(c, r->timeout ? 504 : 502, "UNAVAILABLE", why);
		return;
	}
	if (r->status != 401)
		c->ex.site->auth_mode = UPSTREAM_AUTH_BASIC;
	else if (upstream_site_learn_challenge(c->ex.site, r->headers, r->n_headers, why, sizeof(why)) ==
		 UPSTREAM_CHALLENGE_REFUSED) {
		exchange_fail(c, 502, "UNAVAILABLE", why);
		return;
	}
	exchange_authorize_upstream(c);
}

/* A request body cannot be sent twice, so before the first one goes to a
 * registry whose authentication is unknown, ask /v2/ how it wants to be
 * talked to (what docker and containerd do too). */
static void exchange_probe(struct conn *c)
{
	char target[600];

	snprintf(target, sizeof(target), "%s/v2/", c->connector->path_prefix);
	conn_set_state(c, CONN_UPSTREAM_AUTH);
	c->ex.probe = fetch_get(upstream_site_registry(c->ex.site), target, c->connector->authorization,
			     64 * 1024, exchange_on_probe, c);
}

void exchange_start(struct conn *c)
{
	char err[300];

	if (c->connector->unavailable) {
		snprintf(err, sizeof(err), "connector %s is not usable: %s", c->connector->id,
			 c->connector->unavailable);
		conn_respond_error(c, 503, "UNAVAILABLE", err);
		return;
	}
	if (blobserve_start(c))
		return;
	c->ex.site = upstream_site_get(c->px, c->connector, err, sizeof(err));
	if (!c->ex.site) {
		exchange_fail(c, 502, "UNAVAILABLE", err);
		return;
	}
	char from[512] = "";
	int mount = exchange_mount_source(c, from, sizeof(from));
	exchange_build_scope(c, mount, from);
	exchange_build_target(c, mount, from);
	c->ex.pool = upstream_site_registry(c->ex.site);
	c->ex.send_auth = true;
	if (conn_has_body(&c->req) && c->ex.site->auth_mode == UPSTREAM_AUTH_UNKNOWN)
		exchange_probe(c);
	else
		exchange_authorize_upstream(c);
}
