#include "proxy/blobserve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "proxy/conn_priv.h"
#include "proxy/respond.h"
#include "util/log.h"
#include "util/xalloc.h"

/* File bytes queued per step: sendfile moves them without copying, so a
 * large step costs nothing; it only bounds how much a TLS client maps. */
#define BLOBSERVE_CHUNK (8u << 20)

/* ---- which requests the cache may answer ---- */

static bool blobserve_conditional(const struct conn *c)
{
	static const char *const names[] = { "If-None-Match", "If-Match", "If-Modified-Since",
					     "If-Unmodified-Since", "If-Range" };

	for (size_t i = 0; i < OG_ARRAY_LEN(names); i++)
		if (http1_find_header(c->req.headers, c->req.n_headers, names[i]))
			return true;
	return false;
}

/* Blobs, and manifests by digest: content that a digest names. Tags can
 * move, so they are never cached. */
static bool blobserve_by_digest(const struct conn *c)
{
	return c->route.kind == ROUTE_BLOB ||
	       (c->route.kind == ROUTE_MANIFEST && c->route.ref_is_digest);
}

/* The key: the connector, its registry's origin (scheme, host, port, path
 * prefix) and the digest. A copy is only ever served through the
 * connector whose credential fetched it: another connector, even on the
 * same registry, may hold a credential that cannot read that repository,
 * and a digest is no secret. */
static int blobserve_key(const struct conn *c, struct blobcache_key *k)
{
	const struct connector *cn = c->connector;
	char origin[1400];

	snprintf(origin, sizeof(origin), "%s\n%s://%s:%u%s", cn->id, cn->https ? "https" : "http",
		 cn->host, (unsigned)cn->port, cn->path_prefix);
	return blobcache_key_make(k, origin, c->route.ref);
}

/* ---- Range (RFC 9110 14.1.2), one range of a known length ---- */

static bool blobserve_number(const char **p, const char *end, uint64_t *out)
{
	uint64_t n = 0;
	const char *s = *p;

	if (s == end || *s < '0' || *s > '9')
		return false;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = n;
	return true;
}

int blobserve_parse_range(struct og_str v, uint64_t size, uint64_t *from, uint64_t *to)
{
	const char *p = v.p, *end = v.p + v.n;
	uint64_t a = 0, b = 0;
	bool has_a, has_b;

	if (v.n < 6 || memcmp(p, "bytes=", 6) != 0 || memchr(p, ',', v.n))
		return 0;
	p += 6;
	has_a = blobserve_number(&p, end, &a);
	if (p == end || *p != '-')
		return 0;
	p++;
	has_b = blobserve_number(&p, end, &b);
	if (p != end || (!has_a && !has_b) || (has_a && has_b && b < a))
		return 0;
	if (!has_a) { /* the last b bytes */
		if (b == 0 || size == 0)
			return -1;
		*from = b >= size ? 0 : size - b;
		*to = size - 1;
		return 1;
	}
	if (a >= size)
		return -1;
	*from = a;
	*to = has_b && b < size ? b : size - 1;
	return 1;
}

/* ---- answering from a cache file ---- */

static void blobserve_write_head(struct conn *c, int status, uint64_t length, uint64_t size,
				 uint64_t from, const char *ctype, const char *etag)
{
	struct evbuffer *out = conn_out(c);

	c->status = status;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, respond_reason(status));
	evbuffer_add_printf(out, "Content-Type: %s\r\n", ctype);
	evbuffer_add_printf(out, "Docker-Content-Digest: %.*s\r\n", (int)c->route.ref.n,
			    c->route.ref.p);
	if (etag)
		evbuffer_add_printf(out, "ETag: %s\r\n", etag);
	else
		evbuffer_add_printf(out, "ETag: \"%.*s\"\r\n", (int)c->route.ref.n, c->route.ref.p);
	evbuffer_add_printf(out, "Accept-Ranges: bytes\r\nDocker-Distribution-Api-Version: registry/2.0\r\n");
	if (status == 206)
		evbuffer_add_printf(out, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n",
				    from, from + length - 1, size);
	else if (status == 416)
		evbuffer_add_printf(out, "Content-Range: bytes */%" PRIu64 "\r\n", size);
	evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", length);
	if (!c->keep_alive)
		evbuffer_add(out, "Connection: close\r\n", 19);
	evbuffer_add(out, "\r\n", 2);
}

static void blobserve_stop_reading(struct conn *c)
{
	struct blobserve *b = &c->ex.bs;

	if (!b->reading)
		return;
	close(b->fd);
	if (b->seg)
		evbuffer_file_segment_free(b->seg); /* queued ranges keep theirs */
	b->seg = NULL;
	b->reading = false;
	bufferevent_set_max_single_write(c->bev, c->px->cfg->server.body_buffer);
	bufferevent_setwatermark(c->bev, EV_WRITE, c->out_low, 0);
}

/* A segment over file bytes [from, from + n) of the body, on its own
 * descriptor; NULL with errno set. */
static struct evbuffer_file_segment *blobserve_segment(int fd, uint64_t from, uint64_t n)
{
	int dfd = dup(fd);
	struct evbuffer_file_segment *seg =
		dfd < 0 ? NULL
			: evbuffer_file_segment_new(dfd, (ev_off_t)(BLOBCACHE_HEAD_LEN + from),
						    (ev_off_t)n, EVBUF_FS_CLOSE_ON_FREE);

	if (!seg && dfd >= 0) {
		close(dfd);
		errno = ENOMEM;
	}
	return seg;
}

/* Queues body bytes [pos, pos + n) from the file: a range of the
 * response's segment for a plain client, a segment of their own (mapped
 * or read for TLS) otherwise. */
static int blobserve_queue(struct conn *c, uint64_t n)
{
	struct blobserve *b = &c->ex.bs;
	struct evbuffer *out = conn_out(c);
	struct evbuffer_file_segment *seg = b->seg;
	int rc;

	if (seg)
		return evbuffer_add_file_segment(out, seg, (ev_off_t)(b->pos - b->seg_from),
						 (ev_off_t)n);
	seg = blobserve_segment(b->fd, b->pos, n);
	if (!seg)
		return -1;
	rc = evbuffer_add_file_segment(out, seg, 0, (ev_off_t)n);
	evbuffer_file_segment_free(seg); /* the buffer holds its own reference */
	return rc;
}

/* Queues file bytes while the client's output is below b->queue. A
 * follower never gets the last byte before the fill is verified, so a bad
 * upstream body is never complete-looking for anyone. Every queued range
 * is a chain, written by one sendfile: while the client still has bytes
 * queued, bytes that trickle in from a fill wait until there is a step's
 * worth (an eighth of the queue) rather than becoming a chain each. */
static void blobserve_pump(struct conn *c)
{
	struct blobserve *b = &c->ex.bs;
	struct evbuffer *out = conn_out(c);
	uint64_t limit = b->end;

	if (b->fill || b->followed || b->watch)
		limit = OG_MIN(b->avail, b->end > 0 ? b->end - 1 : 0);
	while (b->pos < limit && evbuffer_get_length(out) < b->queue) {
		uint64_t n = OG_MIN(limit - b->pos, (uint64_t)BLOBSERVE_CHUNK);
		if (n < b->queue / 8 && b->pos + n < b->end && evbuffer_get_length(out) > 0)
			break;
		if (blobserve_queue(c, n) != 0) {
			log_warn("cache_error", "conn=%" PRIu64 " reason=read error=\"%s\"", c->id,
				 strerror(errno));
			conn_close(c, "cache_read_failed");
			return;
		}
		b->pos += n;
		c->body_bytes += n;
	}
	if (b->pos == b->end) {
		blobserve_stop_reading(c);
		if (b->degraded) {
			b->handed_back = true; /* the rest comes from the upstream */
			return;
		}
		conn_finish_response(c);
	} else if (b->watch && b->pos >= limit) {
		blobcache_watch_want_data(b->watch);
	}
}

static void blobserve_read_from(struct conn *c, int fd, uint64_t from, uint64_t length)
{
	struct blobserve *b = &c->ex.bs;

	b->fd = fd;
	b->reading = true;
	b->pos = from;
	b->end = from + length;
	/* File bytes cost no memory to queue, and body_buffer-sized writes
	 * would cost a loop iteration per 256 KiB of sendfile. */
	bufferevent_set_max_single_write(c->bev, BLOBSERVE_CHUNK);
	if (bufferevent_openssl_get_ssl(c->bev)) {
		b->queue = c->px->cfg->server.body_buffer; /* mapped: keep it small */
		return;
	}
	/* sendfile: refill while a whole step is still queued, so the output
	 * never runs dry between two refills; a dry output costs two epoll_ctl
	 * (write interest off, on again) per step. */
	b->queue = 2 * (size_t)BLOBSERVE_CHUNK;
	bufferevent_setwatermark(c->bev, EV_WRITE, BLOBSERVE_CHUNK, 0);
	/* One descriptor for the whole response, whatever the number of
	 * ranges queued; without it, a segment per range. */
	b->seg = blobserve_segment(fd, from, length);
	b->seg_from = from;
}

static void blobserve_begin_body(struct conn *c, int fd, uint64_t from, uint64_t length)
{
	blobserve_read_from(c, fd, from, length);
	conn_set_state(c, CONN_STREAM_BODY);
	blobserve_pump(c);
}

static bool blobserve_hit(struct conn *c, const struct blobcache_entry *e)
{
	struct blobcache_stats *st = blobcache_stats(c->px->cache);
	const struct http1_header *range =
		http1_find_header(c->req.headers, c->req.n_headers, "Range");
	uint64_t from = 0, to = e->size ? e->size - 1 : 0, length = e->size;
	int r = range ? blobserve_parse_range(range->value, e->size, &from, &to) : 0;
	int fd = blobcache_open_entry(c->px->cache, e);

	if (fd < 0)
		return false; /* gone from the disk: the entry was dropped, go upstream */
	st->hits++;
	conn_set_state(c, CONN_UPSTREAM_HEAD);
	if (r < 0) {
		close(fd);
		blobserve_write_head(c, 416, 0, e->size, 0, e->content_type, e->etag);
		conn_finish_response(c);
		return true;
	}
	if (r > 0)
		length = to - from + 1;
	blobserve_write_head(c, r > 0 ? 206 : 200, length, e->size, from, e->content_type, e->etag);
	if (c->req.method == HTTP_M_HEAD || length == 0) {
		close(fd);
		conn_finish_response(c);
		return true;
	}
	st->saved_transfers++;
	st->saved_bytes += length;
	blobserve_begin_body(c, fd, from, length);
	return true;
}

/* ---- following a fill ---- */

/* The fill's response head is known: a HEAD, a Range or a whole GET is
 * answered as a hit would be, the body read from the growing file. */
static void blobserve_follow_started(struct conn *c)
{
	struct blobserve *b = &c->ex.bs;
	struct blobcache_fill *f = b->followed;
	uint64_t size = blobcache_fill_length(f), from = 0, to = size ? size - 1 : 0;
	const struct http1_header *range =
		http1_find_header(c->req.headers, c->req.n_headers, "Range");
	int r = range ? blobserve_parse_range(range->value, size, &from, &to) : 0;
	uint64_t length = r > 0 ? to - from + 1 : size;
	bool body = c->req.method == HTTP_M_GET && r >= 0 && length > 0;
	int fd = body ? blobcache_fill_open(f) : -1;

	if (body && fd < 0) {
		/* Nothing was sent yet: the request can still go upstream. */
		blobcache_unwatch(b->watch);
		b->watch = NULL;
		b->followed = NULL;
		b->bypass = true;
		exchange_start(c);
		return;
	}
	b->head_sent = true;
	blobserve_write_head(c, r < 0 ? 416 : r > 0 ? 206 : 200, r < 0 ? 0 : length, size, from,
			     blobcache_fill_content_type(f), blobcache_fill_etag(f));
	if (!body) {
		conn_finish_response(c); /* exchange_end unwatches */
		return;
	}
	blobcache_stats(c->px->cache)->saved_transfers++;
	blobcache_stats(c->px->cache)->saved_bytes += length;
	blobserve_begin_body(c, fd, from, length);
}

static void blobserve_on_fill(void *arg, enum blobcache_event ev, uint64_t available)
{
	struct conn *c = arg;
	struct blobserve *b = &c->ex.bs;

	switch (ev) {
	case BLOBCACHE_EV_STARTED:
		b->avail = available;
		blobserve_follow_started(c);
		break;
	case BLOBCACHE_EV_DATA:
		b->avail = available;
		blobserve_pump(c);
		break;
	case BLOBCACHE_EV_DONE:
		b->watch = NULL; /* freed by the cache */
		b->followed = NULL;
		b->avail = available;
		b->fill_done = true;
		if (b->reading)
			blobserve_pump(c);
		break;
	case BLOBCACHE_EV_FAILED:
		b->watch = NULL;
		b->followed = NULL;
		if (b->head_sent) {
			/* Headers went out: a short body is the only honest signal. */
			conn_close(c, "cache_fill_failed");
			break;
		}
		b->bypass = true;
		exchange_start(c);
		break;
	}
}

static void blobserve_follow(struct conn *c, struct blobcache_fill *f)
{
	struct blobserve *b = &c->ex.bs;

	blobcache_stats(c->px->cache)->follows++;
	b->followed = f;
	b->watch = blobcache_watch(f, blobserve_on_fill, c);
	conn_set_state(c, CONN_UPSTREAM_HEAD);
	if (blobcache_fill_started(f)) /* the bytes so far are in the file */
		blobserve_on_fill(c, BLOBCACHE_EV_STARTED, blobcache_fill_written(f));
}

/* ---- the hooks ---- */

bool blobserve_start(struct conn *c)
{
	struct blobcache *bc = c->px->cache;
	struct blobserve *b = &c->ex.bs;
	struct blobcache_key k;
	bool read = c->req.method == HTTP_M_GET || c->req.method == HTTP_M_HEAD;

	if (!bc || b->bypass || !blobserve_by_digest(c) || blobserve_key(c, &k) != 0)
		return false;
	if (c->req.method == HTTP_M_DELETE) {
		blobcache_remove(bc, &k);
		return false;
	}
	if (!read || blobserve_conditional(c))
		return false;
	const struct blobcache_entry *e = blobcache_lookup(bc, &k);
	if (e && blobserve_hit(c, e))
		return true;
	bool ranged = http1_find_header(c->req.headers, c->req.n_headers, "Range") != NULL;
	struct blobcache_fill *f = blobcache_fill_find(bc, &k);
	if (f) { /* GET, HEAD and Range alike wait for its head, then read it */
		blobserve_follow(c, f);
		return true;
	}
	blobcache_stats(bc)->misses++;
	if (!f && !ranged && c->req.method == HTTP_M_GET)
		b->fill = blobcache_fill_begin(bc, &k);
	return false;
}

static const char *blobserve_header(const struct http1_response *resp, const char *name, char *buf,
				    size_t cap)
{
	const struct http1_header *h = http1_find_header(resp->headers, resp->n_headers, name);

	if (!h || h->value.n >= cap)
		return NULL;
	memcpy(buf, h->value.p, h->value.n);
	buf[h->value.n] = '\0';
	return buf;
}

void blobserve_on_head(struct conn *c, const struct http1_response *resp)
{
	struct blobserve *b = &c->ex.bs;
	char ctype[256], etag[256];

	if (!b->fill)
		return;
	struct blobcache_fill *f = b->fill;
	/* An encoded body is not the bytes the digest names: proxied as it
	 * is, never cached (and never cut for not matching). */
	const struct http1_header *enc =
		http1_find_header(resp->headers, resp->n_headers, "Content-Encoding");
	bool identity = !enc || og_str_ieq(enc->value, "identity");
	int fd = -1;
	if (resp->status == 200 && resp->body == HTTP1_BODY_LENGTH && resp->content_length > 0 &&
	    identity &&
	    blobcache_fill_start(f, resp->content_length,
				 blobserve_header(resp, "Content-Type", ctype, sizeof(ctype)),
				 blobserve_header(resp, "ETag", etag, sizeof(etag))) == 0 &&
	    (fd = blobcache_fill_open(f)) >= 0) {
		/* This client reads the file like a follower: the upstream is
		 * paced by the disk, not by whichever client came first. */
		blobserve_read_from(c, fd, 0, resp->content_length);
		return;
	}
	b->fill = NULL;
	blobcache_fill_abort(f);
}

/* A disk failure mid-fill: the fill is gone (its followers were cut:
 * they are ahead of the file or will be, and have headers), but this
 * client keeps its body: the file up to in_file, then the upstream. */
static int blobserve_degrade(struct conn *c, uint64_t in_file)
{
	struct blobserve *b = &c->ex.bs;

	log_warn("cache_fill_degraded", "conn=%" PRIu64 " connector=%s digest=%.*s in_file=%" PRIu64
		 " sent=%" PRIu64, c->id, c->connector->id, (int)c->route.ref.n, c->route.ref.p,
		 in_file, b->pos);
	b->degraded = true;
	b->end = in_file;
	b->avail = in_file;
	blobserve_pump(c);
	return 1;
}

int blobserve_tee(struct conn *c, struct evbuffer *in, size_t n, bool last)
{
	struct blobserve *b = &c->ex.bs;
	struct blobcache_fill *f = b->fill;

	uint64_t in_file = blobcache_fill_written(f);

	if (blobcache_fill_write(f, in, n) != 0) {
		/* in still starts at in_file (a partial write moved nothing): the
		 * client reads the file that far, then the upstream's bytes. */
		b->fill = NULL;
		blobcache_fill_abort(f);
		return blobserve_degrade(c, in_file);
	}
	evbuffer_drain(in, n);
	b->avail = blobcache_fill_written(f);
	if (!last) {
		blobserve_pump(c);
		return 0;
	}
	b->fill = NULL;
	b->avail = b->end;
	/* The rest goes out from exchange_body_done (blobserve_client_drained). */
	if (blobcache_fill_finish(f) >= 0)
		return 0;
	log_warn("upstream_error", "conn=%" PRIu64 " connector=%s reason=digest_mismatch digest=%.*s",
		 c->id, c->connector->id, (int)c->route.ref.n, c->route.ref.p);
	conn_close(c, "upstream_digest_mismatch");
	return -1;
}

bool blobserve_client_drained(struct conn *c)
{
	if (!c->ex.bs.reading)
		return false;
	blobserve_pump(c);
	return !c->ex.bs.handed_back;
}

/* ---- a fill without its client ---- */

/* A fill whose first client left while followers read its file: it owns
 * the upstream connection, the fill (and through it the temp file and the
 * hash) and a reference on the connector (which keeps the upstream's site
 * alive). It ends in blobserve_orphan_end only: when the body is complete,
 * the upstream fails, the disk fails, or no follower is left. */
struct blobserve_orphan {
	struct proxy *px;
	struct connector *connector;
	uint64_t conn_id; /* the client that started it, for logs */
	struct upstream_conn *up;
	struct blobcache_fill *fill;
	uint64_t body_left;
	bool keep_alive;
	struct event *kick; /* deferred work: never end a fill inside its notify */
	struct blobserve_orphan *next, *prev;
};

static void blobserve_orphan_end(struct blobserve_orphan *o, const char *reason, bool reusable)
{
	struct proxy *px = o->px;

	log_info("cache_fill_end", "conn=%" PRIu64 " connector=%s reason=%s", o->conn_id,
		 o->connector->id, reason);
	if (o->fill)
		blobcache_fill_abort(o->fill); /* followers that still read are cut */
	if (reusable)
		upstream_release(o->up);
	else
		upstream_close(o->up, reason);
	if (o->prev)
		o->prev->next = o->next;
	else
		px->cache_orphans = o->next;
	if (o->next)
		o->next->prev = o->prev;
	event_free(o->kick);
	connector_unref(o->connector);
	free(o);
}

static void blobserve_orphan_feed(struct blobserve_orphan *o)
{
	struct evbuffer *in = bufferevent_get_input(o->up->bev);
	size_t n = (size_t)OG_MIN((uint64_t)evbuffer_get_length(in), o->body_left);
	struct blobcache_fill *f = o->fill;

	if (n == 0)
		return;
	if (blobcache_fill_write(f, in, n) != 0) {
		blobserve_orphan_end(o, "cache_write_failed", false);
		return;
	}
	evbuffer_drain(in, n);
	o->body_left -= n;
	if (o->body_left > 0)
		return;
	o->fill = NULL;
	if (blobcache_fill_finish(f) < 0) {
		log_warn("upstream_error", "conn=%" PRIu64 " connector=%s reason=digest_mismatch",
			 o->conn_id, o->connector->id);
		blobserve_orphan_end(o, "upstream_digest_mismatch", false);
		return;
	}
	blobserve_orphan_end(o, "done", o->keep_alive && evbuffer_get_length(in) == 0);
}

static void blobserve_orphan_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	blobserve_orphan_feed(arg);
}

static void blobserve_orphan_event(struct bufferevent *bev, short events, void *arg)
{
	struct blobserve_orphan *o = arg;
	char why[400];

	(void)bev;
	upstream_describe_error(o->up, events, why, sizeof(why));
	log_warn("upstream_error", "conn=%" PRIu64 " connector=%s reason=\"%s\" left=%" PRIu64,
		 o->conn_id, o->connector->id, why, o->body_left);
	blobserve_orphan_end(o, "upstream_failed_mid_body", false);
}

/* Nobody wants the rest of the body any more: the fill is dropped rather
 * than carried on for no one (see the README's cache section). */
static void blobserve_orphan_kick(evutil_socket_t fd, short what, void *arg)
{
	struct blobserve_orphan *o = arg;

	(void)fd;
	(void)what;
	if (!blobcache_fill_watched(o->fill))
		blobserve_orphan_end(o, "no_client_left", false);
	else
		blobserve_orphan_feed(o);
}

static void blobserve_orphan_unwatched(void *arg)
{
	struct blobserve_orphan *o = arg;

	event_active(o->kick, EV_TIMEOUT, 0);
}

/* The fill's client is going away: true when the fill carries on with
 * the upstream connection (taken from the exchange). */
static bool blobserve_orphan_adopt(struct conn *c)
{
	struct blobcache_fill *f = c->ex.bs.fill;
	struct blobserve_orphan *o;

	if (c->state != CONN_STREAM_BODY || !c->ex.up || c->ex.body != HTTP1_BODY_LENGTH ||
	    !blobcache_fill_started(f) || !blobcache_fill_watched(f) ||
	    blobcache_fill_written(f) >= blobcache_fill_length(f))
		return false;
	o = x_new(struct blobserve_orphan);
	o->px = c->px;
	o->connector = connector_ref(c->connector);
	o->conn_id = c->id;
	o->up = c->ex.up;
	c->ex.up = NULL;
	o->fill = f;
	/* Not c->ex.body_left: a client cut inside blobserve_tee has not
	 * counted the bytes just written. The file knows. */
	o->body_left = blobcache_fill_length(f) - blobcache_fill_written(f);
	o->keep_alive = c->ex.keep_alive;
	o->kick = event_new(c->px->base, -1, 0, blobserve_orphan_kick, o);
	o->next = c->px->cache_orphans;
	if (o->next)
		o->next->prev = o;
	c->px->cache_orphans = o;
	blobcache_fill_on_unwatched(f, blobserve_orphan_unwatched, o);
	upstream_attach(o->up, blobserve_orphan_read, NULL, blobserve_orphan_event, o);
	log_info("cache_fill_alone", "conn=%" PRIu64 " connector=%s digest=%.*s written=%" PRIu64
		 " length=%" PRIu64, c->id, c->connector->id, (int)c->route.ref.n, c->route.ref.p,
		 blobcache_fill_written(f), blobcache_fill_length(f));
	/* Bytes already read from the upstream go to the file from the loop. */
	event_active(o->kick, EV_TIMEOUT, 0);
	return true;
}

void blobserve_shutdown(struct proxy *px)
{
	while (px->cache_orphans)
		blobserve_orphan_end(px->cache_orphans, "exit", false);
}

void blobserve_end(struct conn *c)
{
	struct blobserve *b = &c->ex.bs;

	if (b->fill && !blobserve_orphan_adopt(c))
		blobcache_fill_abort(b->fill);
	b->fill = NULL;
	blobcache_unwatch(b->watch);
	b->watch = NULL;
	b->followed = NULL;
	blobserve_stop_reading(c);
}
