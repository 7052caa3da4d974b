/* The blob cache on the request path (proxy/blobcache.h is the store):
 * hits served from the file, requests following a fill in flight, the tee
 * of a miss into a fill, and DELETE dropping the cached copy. exchange.c
 * calls these hooks; everything else about a request stays there. */
#ifndef OCIGATE_PROXY_BLOBSERVE_H
#define OCIGATE_PROXY_BLOBSERVE_H

#include "proxy/blobcache.h"
#include "util/http1.h"

struct conn;
struct proxy;
struct evbuffer;

/* Per request, inside struct exchange; all-zero at the start. */
struct blobserve {
	bool bypass;                   /* go upstream, never the cache */
	struct blobcache_fill *fill;   /* this request's upstream body fills it */
	struct blobcache_fill *followed; /* the fill it follows, until DONE/FAILED */
	struct blobcache_watch *watch;
	bool head_sent;                /* a follower's response head went out */
	bool reading;                  /* fd is open on a cache file */
	int fd;
	/* Plain clients: one sendfile segment over the body's part of the
	 * file (a dup of fd), which every queued range refers to. */
	struct evbuffer_file_segment *seg;
	uint64_t seg_from;             /* the body offset seg starts at */
	uint64_t pos, end;             /* body offsets still to send */
	size_t queue;                  /* file bytes kept queued for the client */
	uint64_t avail;                /* what a follower may read so far */
	bool fill_done;                /* the followed fill was verified */
	/* The fill failed on disk: this client reads the file up to end, then
	 * hands the body back to the upstream (handed_back). */
	bool degraded;
	bool handed_back;
};

/* Called first by exchange_start after auth: true when the request was
 * taken over (a hit, or waiting for / following a fill). Otherwise the
 * request goes upstream, perhaps as the fill of its key. */
bool blobserve_start(struct conn *c);
/* The upstream's response head of a request that fills. */
void blobserve_on_head(struct conn *c, const struct http1_response *resp);
/* The first n bytes of in are body bytes of a fill (last when they end
 * it): written to the file and drained (0); the client reads them from the
 * file. -1 when the client connection was cut (the bytes did not match the
 * digest): the caller returns at once. 1 when the disk failed: the fill is
 * gone, in is untouched, and the body goes on without the cache; while
 * the request still reads the file's part (bs.reading) the caller pauses
 * the upstream until blobserve_client_drained hands the body back. */
OG_WARN_UNUSED int blobserve_tee(struct conn *c, struct evbuffer *in, size_t n, bool last);
/* The client took bytes (or a filled body is complete): true when the
 * cache file serves (or served) this request's body; false when it does
 * not, or has just handed the rest of the body back to the upstream. */
bool blobserve_client_drained(struct conn *c);
/* Releases what the request holds (from exchange_end). A fill whose
 * client goes away while followers read it is not dropped: the fill takes
 * the upstream connection and carries on alone until it ends or its last
 * follower leaves. */
void blobserve_end(struct conn *c);
/* Ends the fills that carry on alone (at exit, before the connectors and
 * the cache are freed). */
void blobserve_shutdown(struct proxy *px);

/* One Range header value against a body of size bytes: 0 when it is not a
 * single byte range (the whole body is sent, as RFC 9110 allows), 1 with
 * the inclusive range in *from..*to, -1 when unsatisfiable (416). */
OG_WARN_UNUSED int blobserve_parse_range(struct og_str v, uint64_t size, uint64_t *from,
					 uint64_t *to);

#endif
