/* The node-local blob cache ([cache] dir): a content-addressed store of
 * blobs and manifests-by-digest on disk, its in-memory index with LRU
 * eviction by max_size and min_free, and the fills in flight (single
 * flight: one upstream transfer per key, others follow the growing file).
 *
 * Tenancy: the key is (connector and its registry origin, digest). A hit
 * is only possible through the connector whose credential fetched the
 * bytes from that registry; who may use that connector is decided by auth
 * on every request, before the cache is asked.
 *
 * Layout: DIR/blobs/<origin-hash>/sha256/<hex> (a BLOBCACHE_HEAD_LEN byte
 * head with the content type and ETag, then the body), DIR/tmp for fills.
 * Nothing here blocks for long: file calls are local syscalls on the loop,
 * the directory scan runs once at open. */
#ifndef OCIGATE_PROXY_BLOBCACHE_H
#define OCIGATE_PROXY_BLOBCACHE_H

#include <sys/types.h>

#include "util/common.h"

struct evbuffer;
struct event_base;

/* The body of a cache file starts here; the head before it is padding
 * after the content type and ETag lines. */
#define BLOBCACHE_HEAD_LEN 512
#define BLOBCACHE_ORIGIN_LEN 16
#define BLOBCACHE_DIGEST_LEN 32

struct blobcache;
struct blobcache_fill;
struct blobcache_watch;

struct blobcache_key {
	unsigned char origin[BLOBCACHE_ORIGIN_LEN]; /* truncated SHA-256 of the origin URL */
	unsigned char digest[BLOBCACHE_DIGEST_LEN]; /* the sha256 digest itself */
};

struct blobcache_entry {
	struct blobcache_key key;
	uint64_t size; /* body bytes */
	char *content_type;
	char *etag;    /* as the registry sent it, or NULL */
	struct blobcache_entry *hnext;
	struct blobcache_entry *lru_prev, *lru_next; /* head = most recently used */
};

struct blobcache_opts {
	const char *dir;
	uint64_t max_size;
	unsigned min_free_percent;
	uint64_t min_free_bytes;
};

enum blobcache_error {
	BLOBCACHE_E_OPEN,     /* a temp file could not be created (read-only dir...) */
	BLOBCACHE_E_WRITE,    /* writing a fill failed (disk full...) */
	BLOBCACHE_E_DIGEST,   /* the bytes did not match the digest or length */
	BLOBCACHE_E_COMMIT,   /* rename into place failed */
	BLOBCACHE_E_NO_SPACE, /* eviction could not make room */
	BLOBCACHE_N_ERRORS
};

struct blobcache_stats {
	uint64_t hits, misses, follows;
	uint64_t saved_transfers; /* GET bodies served without an upstream transfer */
	uint64_t saved_bytes;     /* bytes served from the cache instead of upstream */
	uint64_t evictions;
	uint64_t errors[BLOBCACHE_N_ERRORS];
};

const char *blobcache_error_name(enum blobcache_error e);

/* Opens (creating) dir, empties dir/tmp and rebuilds the index from
 * dir/blobs: with base, a batch of files per loop iteration (lookups miss
 * until their entry is found); without, before returning. Returns NULL with
 * err set when the directory cannot be used at all (the proxy then runs
 * without a cache). */
struct blobcache *blobcache_open(const struct blobcache_opts *o, struct event_base *base,
				 char *err, size_t cap);
/* The index is still being rebuilt. */
bool blobcache_scanning(const struct blobcache *bc);
void blobcache_free(struct blobcache *bc);

/* The key of digest ("sha256:<64 hex>") fetched from origin (any string
 * naming where it came from: proxy/blobserve.c gives the connector and its
 * registry's scheme, host, port and path prefix). -1 for other algorithms. */
OG_WARN_UNUSED int blobcache_key_make(struct blobcache_key *k, const char *origin,
				      struct og_str digest);

/* A committed entry (now the most recently used), or NULL. */
const struct blobcache_entry *blobcache_lookup(struct blobcache *bc, const struct blobcache_key *k);
/* Opens an entry's file for reading; -1 (and the entry is dropped) when it
 * is gone from the disk. */
OG_WARN_UNUSED int blobcache_open_entry(struct blobcache *bc, const struct blobcache_entry *e);
/* Drops the cached copy of k (DELETE through ocigate); a fill in flight for
 * it still serves its followers but is not committed. */
void blobcache_remove(struct blobcache *bc, const struct blobcache_key *k);

/* ---- fills (single flight) ---- */

/* The fill in flight for k, or NULL. */
struct blobcache_fill *blobcache_fill_find(struct blobcache *bc, const struct blobcache_key *k);
/* Registers a fill for k (there must be none) before the upstream answers,
 * so that concurrent requests wait for it. */
struct blobcache_fill *blobcache_fill_begin(struct blobcache *bc, const struct blobcache_key *k);
/* The upstream answered 200 with length bytes: makes room and creates the
 * temp file. -1 when it cannot (counted; the fill is then aborted). */
OG_WARN_UNUSED int blobcache_fill_start(struct blobcache_fill *f, uint64_t length,
					const char *content_type, const char *etag);
/* Appends the first n bytes of in (not drained) to the file and the hash.
 * -1 on a write error (counted; the caller aborts). */
OG_WARN_UNUSED int blobcache_fill_write(struct blobcache_fill *f, struct evbuffer *in, size_t n);
/* All bytes written: 0 when they match the digest and were committed (or
 * the copy had been removed meanwhile), -1 on a mismatch (the bytes must
 * not reach anyone as a complete body), 1 when they matched but could not
 * be committed. Followers are told; f is freed in every case. */
OG_WARN_UNUSED int blobcache_fill_finish(struct blobcache_fill *f);
/* The fill ends without a commit (upstream error, client gone, not a 200);
 * followers are told, f is freed. */
void blobcache_fill_abort(struct blobcache_fill *f);
bool blobcache_fill_started(const struct blobcache_fill *f);
uint64_t blobcache_fill_written(const struct blobcache_fill *f);
uint64_t blobcache_fill_length(const struct blobcache_fill *f);
const char *blobcache_fill_content_type(const struct blobcache_fill *f);
const char *blobcache_fill_etag(const struct blobcache_fill *f);
/* fn(arg) runs when the last watch of f is removed by blobcache_unwatch
 * (not when a final event frees them): a fill that no client started
 * any more asks whether anyone still wants it. fn must not end the fill
 * from inside the call (it may run while the fill notifies). */
void blobcache_fill_on_unwatched(struct blobcache_fill *f, void (*fn)(void *arg), void *arg);
bool blobcache_fill_watched(const struct blobcache_fill *f);
/* A new descriptor on the fill's file (after start), or -1. */
int blobcache_fill_open(struct blobcache_fill *f);

enum blobcache_event {
	BLOBCACHE_EV_STARTED, /* length and headers known, the file exists */
	BLOBCACHE_EV_DATA,    /* more bytes are in the file */
	BLOBCACHE_EV_DONE,    /* every byte is in the file and verified */
	BLOBCACHE_EV_FAILED,  /* the fill ended without verified bytes */
};
/* available: body bytes in the file so far. After DONE and FAILED the watch
 * is freed by the cache (the callback must forget it, not unwatch it). */
typedef void (*blobcache_watch_fn)(void *arg, enum blobcache_event ev, uint64_t available);

struct blobcache_watch *blobcache_watch(struct blobcache_fill *f, blobcache_watch_fn fn, void *arg);
/* DATA events are delivered only after this was called, once per call:
 * followers ask when they have caught up with the file. */
void blobcache_watch_want_data(struct blobcache_watch *w);
void blobcache_unwatch(struct blobcache_watch *w);

/* ---- accounting ---- */

struct blobcache_stats *blobcache_stats(struct blobcache *bc);
uint64_t blobcache_bytes(const struct blobcache *bc);
size_t blobcache_count(const struct blobcache *bc);
const char *blobcache_dir(const struct blobcache *bc);

#endif
