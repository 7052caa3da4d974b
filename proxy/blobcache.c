#include "proxy/blobcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "util/ascii.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BLOBCACHE_MAGIC "OGC1\n"
#define BLOBCACHE_MAX_FIELD 200
#define BLOBCACHE_IOV 64
#define BLOBCACHE_SCAN_BATCH 256

struct blobcache_watch {
	struct blobcache_fill *fill;
	blobcache_watch_fn fn;
	void *arg;
	bool want_data;
	struct blobcache_watch *next, *prev;
};

struct blobcache_fill {
	struct blobcache *bc;
	struct blobcache_key key;
	struct blobcache_fill *next, *prev;
	bool started;
	bool removed;      /* DELETE while in flight: serve, never commit */
	int fd;
	char *tmp_path;
	uint64_t length, written;
	char *content_type, *etag;
	EVP_MD_CTX *sha;
	struct blobcache_watch *watches;
	void (*unwatched_fn)(void *arg); /* the last watch went away */
	void *unwatched_arg;
};

struct blobcache_found {
	struct blobcache_entry *e;
	time_t mtime;
};

/* The index rebuild at open, a batch of files per loop iteration. */
struct blobcache_scan {
	DIR *top, *sub;
	unsigned char origin[BLOBCACHE_ORIGIN_LEN];
	struct blobcache_found *found;
	size_t n, cap;
	struct event *ev;
	struct timespec started;
};

struct blobcache {
	char *dir;
	struct blobcache_opts opts;
	struct blobcache_entry **buckets;
	size_t n_buckets, count;
	struct blobcache_entry *lru_head, *lru_tail;
	uint64_t bytes;    /* committed bodies */
	uint64_t reserved; /* lengths of fills in flight */
	struct blobcache_fill *fills;
	uint64_t tmp_seq;
	bool logged_error[BLOBCACHE_N_ERRORS]; /* once per kind until a fill works */
	struct blobcache_stats stats;
	struct blobcache_scan scan;
	bool scanning;
};

const char *blobcache_error_name(enum blobcache_error e)
{
	static const char *const names[BLOBCACHE_N_ERRORS] = {
		[BLOBCACHE_E_OPEN] = "open", [BLOBCACHE_E_WRITE] = "write",
		[BLOBCACHE_E_DIGEST] = "digest_mismatch", [BLOBCACHE_E_COMMIT] = "commit",
		[BLOBCACHE_E_NO_SPACE] = "no_space",
	};
	return (unsigned)e < BLOBCACHE_N_ERRORS ? names[e] : "?";
}

/* A broken disk would otherwise log once per request: one line per kind of
 * failure until a fill succeeds again; the metric counts every one. */
static void blobcache_error(struct blobcache *bc, enum blobcache_error e, const char *what, int err)
{
	bc->stats.errors[e]++;
	if (bc->logged_error[e] && e != BLOBCACHE_E_DIGEST)
		return;
	bc->logged_error[e] = true;
	log_warn("cache_error", "dir=%s reason=%s what=\"%s\" error=\"%s\"", bc->dir,
		 blobcache_error_name(e), what, err ? strerror(err) : "-");
}

/* ---- keys and paths ---- */

static void blobcache_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int blobcache_unhex(const char *s, size_t n, unsigned char *out)
{
	/* Digests are lower-case hex (names.h); file names too. */
	for (size_t i = 0; i < n; i++) {
		if (!ascii_is_lower_hex(s[2 * i]) || !ascii_is_lower_hex(s[2 * i + 1]))
			return -1;
		out[i] = (unsigned char)(og_hex_value(s[2 * i]) << 4 | og_hex_value(s[2 * i + 1]));
	}
	return 0;
}

int blobcache_key_make(struct blobcache_key *k, const char *origin, struct og_str digest)
{
	unsigned char h[SHA256_DIGEST_LENGTH];

	if (digest.n != 7 + 2 * BLOBCACHE_DIGEST_LEN || memcmp(digest.p, "sha256:", 7) != 0 ||
	    blobcache_unhex(digest.p + 7, BLOBCACHE_DIGEST_LEN, k->digest) != 0)
		return -1;
	SHA256((const unsigned char *)origin, strlen(origin), h);
	memcpy(k->origin, h, BLOBCACHE_ORIGIN_LEN);
	return 0;
}

static void blobcache_path(const struct blobcache *bc, const struct blobcache_key *k, char *out,
			   size_t cap, bool dir_only)
{
	char o[2 * BLOBCACHE_ORIGIN_LEN + 1], d[2 * BLOBCACHE_DIGEST_LEN + 1];

	blobcache_hex(k->origin, BLOBCACHE_ORIGIN_LEN, o);
	blobcache_hex(k->digest, BLOBCACHE_DIGEST_LEN, d);
	if (dir_only)
		snprintf(out, cap, "%s/blobs/%s/sha256", bc->dir, o);
	else
		snprintf(out, cap, "%s/blobs/%s/sha256/%s", bc->dir, o, d);
}

/* ---- index: hash table and LRU list ---- */

static size_t blobcache_bucket(const struct blobcache *bc, const struct blobcache_key *k)
{
	uint64_t h;

	/* The digest is a cryptographic hash already: its bytes spread well. */
	memcpy(&h, k->digest, sizeof(h));
	h ^= (uint64_t)k->origin[0] << 7 ^ (uint64_t)k->origin[1] << 29;
	return (size_t)(h & (bc->n_buckets - 1));
}

static struct blobcache_entry **blobcache_slot(struct blobcache *bc, const struct blobcache_key *k)
{
	struct blobcache_entry **p = &bc->buckets[blobcache_bucket(bc, k)];

	while (*p && memcmp(&(*p)->key, k, sizeof(*k)) != 0)
		p = &(*p)->hnext;
	return p;
}

static void blobcache_lru_unlink(struct blobcache *bc, struct blobcache_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		bc->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		bc->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void blobcache_lru_push(struct blobcache *bc, struct blobcache_entry *e)
{
	e->lru_next = bc->lru_head;
	e->lru_prev = NULL;
	if (bc->lru_head)
		bc->lru_head->lru_prev = e;
	bc->lru_head = e;
	if (!bc->lru_tail)
		bc->lru_tail = e;
}

static void blobcache_grow(struct blobcache *bc)
{
	struct blobcache_entry **old = bc->buckets;
	size_t old_n = bc->n_buckets;

	bc->n_buckets = old_n ? old_n * 2 : 1024;
	bc->buckets = x_calloc(bc->n_buckets, sizeof(*bc->buckets));
	for (size_t i = 0; i < old_n; i++) {
		while (old[i]) {
			struct blobcache_entry *e = old[i];
			size_t b = blobcache_bucket(bc, &e->key);
			old[i] = e->hnext;
			e->hnext = bc->buckets[b];
			bc->buckets[b] = e;
		}
	}
	free(old);
}

static void blobcache_entry_free(struct blobcache_entry *e)
{
	if (!e)
		return;
	free(e->content_type);
	free(e->etag);
	free(e);
}

/* Takes e (replacing an entry with the same key). */
static void blobcache_insert(struct blobcache *bc, struct blobcache_entry *e)
{
	struct blobcache_entry **slot;

	if (bc->count + 1 > bc->n_buckets)
		blobcache_grow(bc);
	slot = blobcache_slot(bc, &e->key);
	if (*slot) {
		struct blobcache_entry *old = *slot;
		*slot = old->hnext;
		blobcache_lru_unlink(bc, old);
		bc->bytes -= old->size;
		bc->count--;
		blobcache_entry_free(old);
		slot = blobcache_slot(bc, &e->key);
	}
	e->hnext = NULL;
	*slot = e;
	blobcache_lru_push(bc, e);
	bc->bytes += e->size;
	bc->count++;
}

/* Forgets e and deletes its file. Readers that opened it keep reading. */
static void blobcache_drop(struct blobcache *bc, struct blobcache_entry *e)
{
	char path[4096];
	struct blobcache_entry **slot = blobcache_slot(bc, &e->key);

	blobcache_path(bc, &e->key, path, sizeof(path), false);
	if (unlink(path) != 0 && errno != ENOENT)
		log_warn("cache_error", "dir=%s reason=unlink path=%s error=\"%s\"", bc->dir, path,
			 strerror(errno));
	*slot = e->hnext;
	blobcache_lru_unlink(bc, e);
	bc->bytes -= e->size;
	bc->count--;
	blobcache_entry_free(e);
}

const struct blobcache_entry *blobcache_lookup(struct blobcache *bc, const struct blobcache_key *k)
{
	struct blobcache_entry *e = *blobcache_slot(bc, k);

	if (e) {
		blobcache_lru_unlink(bc, e);
		blobcache_lru_push(bc, e);
	}
	return e;
}

int blobcache_open_entry(struct blobcache *bc, const struct blobcache_entry *e)
{
	char path[4096];
	int fd;

	blobcache_path(bc, &e->key, path, sizeof(path), false);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		blobcache_drop(bc, (struct blobcache_entry *)e);
	return fd;
}

void blobcache_remove(struct blobcache *bc, const struct blobcache_key *k)
{
	struct blobcache_entry *e = *blobcache_slot(bc, k);
	struct blobcache_fill *f = blobcache_fill_find(bc, k);

	char path[4096];

	if (e) {
		blobcache_drop(bc, e);
	} else {
		/* Not indexed (yet: the scan at open may not have reached it). */
		blobcache_path(bc, k, path, sizeof(path), false);
		(void)unlink(path);
	}
	if (f)
		f->removed = true;
}

/* ---- eviction ---- */

/* Bytes to free so that need more bytes fit under max_size and leave
 * min_free on the file system. */
static uint64_t blobcache_deficit(const struct blobcache *bc, uint64_t need)
{
	uint64_t used = bc->bytes + bc->reserved + need, deficit = 0;
	struct statvfs vfs;

	if (used > bc->opts.max_size)
		deficit = used - bc->opts.max_size;
	if ((bc->opts.min_free_percent || bc->opts.min_free_bytes) && statvfs(bc->dir, &vfs) == 0) {
		uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
		uint64_t want = bc->opts.min_free_bytes + total / 100 * bc->opts.min_free_percent;
		if (avail < want + need)
			deficit = OG_MAX(deficit, want + need - avail);
	}
	return deficit;
}

/* Evicts least recently used entries; false when that cannot make room. */
static bool blobcache_make_room(struct blobcache *bc, uint64_t need)
{
	uint64_t deficit = blobcache_deficit(bc, need);

	while (deficit > 0 && bc->lru_tail) {
		uint64_t n = bc->lru_tail->size + BLOBCACHE_HEAD_LEN;
		bc->stats.evictions++;
		blobcache_drop(bc, bc->lru_tail);
		deficit = n >= deficit ? 0 : deficit - n;
	}
	return deficit == 0;
}

/* ---- the head of a cache file ---- */

static bool blobcache_field_ok(const char *s)
{
	return s && strlen(s) <= BLOBCACHE_MAX_FIELD && !strpbrk(s, "\r\n");
}

static int blobcache_write_head(int fd, const char *ctype, const char *etag)
{
	char head[BLOBCACHE_HEAD_LEN];
	int n;

	memset(head, 0, sizeof(head));
	n = snprintf(head, sizeof(head), BLOBCACHE_MAGIC "%s\n%s\n", ctype, etag ? etag : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	return pwrite(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) ? 0 : -1;
}

/* Parses a head read from disk into e's content type and ETag. */
static int blobcache_parse_head(char *head, struct blobcache_entry *e)
{
	char *ctype, *etag, *end;

	head[BLOBCACHE_HEAD_LEN - 1] = '\0';
	if (strncmp(head, BLOBCACHE_MAGIC, strlen(BLOBCACHE_MAGIC)) != 0)
		return -1;
	ctype = head + strlen(BLOBCACHE_MAGIC);
	etag = strchr(ctype, '\n');
	if (!etag)
		return -1;
	*etag++ = '\0';
	end = strchr(etag, '\n');
	if (!end)
		return -1;
	*end = '\0';
	e->content_type = x_strdup(ctype);
	e->etag = *etag ? x_strdup(etag) : NULL;
	return 0;
}

/* ---- opening: directories, leftovers, the index ---- */

static int blobcache_mkdirs(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* Fills of a previous run that never completed. */
static void blobcache_clean_tmp(struct blobcache *bc)
{
	char path[4096];
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "%s/tmp", bc->dir);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) != 0)
			log_warn("cache_error", "dir=%s reason=clean_tmp name=%s error=\"%s\"", bc->dir,
				 de->d_name, strerror(errno));
	}
	closedir(d);
}

static int blobcache_found_cmp(const void *a, const void *b)
{
	const struct blobcache_found *x = a, *y = b;

	return (x->mtime > y->mtime) - (x->mtime < y->mtime);
}

/* One file of dir/blobs/<origin>/sha256: an entry, or junk to delete. */
static struct blobcache_entry *blobcache_load_file(int dirfd_, const char *name,
						   const unsigned char *origin, time_t *mtime)
{
	char head[BLOBCACHE_HEAD_LEN];
	struct blobcache_entry *e = x_new(struct blobcache_entry);
	struct stat st;
	int fd = -1;

	if (strlen(name) != 2 * BLOBCACHE_DIGEST_LEN ||
	    blobcache_unhex(name, BLOBCACHE_DIGEST_LEN, e->key.digest) != 0)
		goto bad;
	memcpy(e->key.origin, origin, BLOBCACHE_ORIGIN_LEN);
	fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < BLOBCACHE_HEAD_LEN ||
	    pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    blobcache_parse_head(head, e) != 0)
		goto bad;
	e->size = (uint64_t)st.st_size - BLOBCACHE_HEAD_LEN;
	*mtime = st.st_mtime;
	close(fd);
	return e;
bad:
	if (fd >= 0)
		close(fd);
	blobcache_entry_free(e);
	if (unlinkat(dirfd_, name, 0) == 0)
		log_warn("cache_junk_removed", "name=%s", name);
	return NULL;
}

static void blobcache_found_add(struct blobcache_scan *s, struct blobcache_entry *e, time_t mtime)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->found = x_realloc(s->found, s->cap * sizeof(*s->found));
	}
	s->found[s->n++] = (struct blobcache_found){ e, mtime };
}

/* Reads up to budget files of dir/blobs/<origin>/sha256; true at the end. */
static bool blobcache_scan_step(struct blobcache *bc, unsigned budget)
{
	struct blobcache_scan *s = &bc->scan;
	char path[4096];
	struct dirent *de;

	while (budget > 0) {
		if (!s->sub) {
			de = s->top ? readdir(s->top) : NULL;
			if (!de)
				return true;
			if (strlen(de->d_name) != 2 * BLOBCACHE_ORIGIN_LEN ||
			    blobcache_unhex(de->d_name, BLOBCACHE_ORIGIN_LEN, s->origin) != 0)
				continue;
			snprintf(path, sizeof(path), "%s/blobs/%s/sha256", bc->dir, de->d_name);
			s->sub = opendir(path);
			continue;
		}
		de = readdir(s->sub);
		if (!de) {
			closedir(s->sub);
			s->sub = NULL;
			continue;
		}
		if (de->d_name[0] == '.')
			continue;
		budget--;
		time_t mtime = 0;
		struct blobcache_entry *e = blobcache_load_file(dirfd(s->sub), de->d_name, s->origin,
								&mtime);
		if (e)
			blobcache_found_add(s, e, mtime);
	}
	return false;
}

static void blobcache_scan_close(struct blobcache_scan *s)
{
	if (s->sub)
		closedir(s->sub);
	if (s->top)
		closedir(s->top);
	s->sub = NULL;
	s->top = NULL;
}

/* The files found go into the index least recently written first, so
 * eviction after a restart starts with the oldest fills. A fill committed
 * during the scan is replaced by the same bytes found on disk. */
static void blobcache_scan_finish(struct blobcache *bc)
{
	struct blobcache_scan *s = &bc->scan;
	struct timespec now;

	blobcache_scan_close(s);
	if (s->n)
		qsort(s->found, s->n, sizeof(*s->found), blobcache_found_cmp);
	for (size_t i = 0; i < s->n; i++)
		blobcache_insert(bc, s->found[i].e);
	free(s->found);
	s->found = NULL;
	s->n = s->cap = 0;
	bc->scanning = false;
	if (!blobcache_make_room(bc, 0))
		log_warn("cache_over_limit", "dir=%s bytes=%" PRIu64 " reason=min_free", bc->dir,
			 bc->bytes);
	clock_gettime(CLOCK_MONOTONIC, &now);
	log_info("cache_open", "dir=%s entries=%zu bytes=%" PRIu64 " max_size=%" PRIu64
		 " scan_ms=%.0f", bc->dir, bc->count, bc->bytes, bc->opts.max_size,
		 (double)(now.tv_sec - s->started.tv_sec) * 1e3 +
			 (double)(now.tv_nsec - s->started.tv_nsec) / 1e6);
}

/* A zero timer, not event_active: an event activated from its own
 * callback runs again in the same pass, before any I/O. */
static void blobcache_scan_again(struct blobcache *bc)
{
	static const struct timeval now = { 0, 0 };

	evtimer_add(bc->scan.ev, &now);
}

/* A few hundred files per loop iteration: requests are served while a
 * large cache is indexed (they miss until their entry is found). */
static void blobcache_scan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct blobcache *bc = arg;

	(void)fd;
	(void)what;
	if (blobcache_scan_step(bc, BLOBCACHE_SCAN_BATCH))
		blobcache_scan_finish(bc);
	else
		blobcache_scan_again(bc);
}

struct blobcache *blobcache_open(const struct blobcache_opts *o, struct event_base *base,
				 char *err, size_t cap)
{
	struct blobcache *bc;
	char path[4096];

	snprintf(path, sizeof(path), "%s/tmp", o->dir);
	if (blobcache_mkdirs(path) != 0) {
		snprintf(err, cap, "cannot create %s: %s", path, strerror(errno));
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/blobs", o->dir);
	if (blobcache_mkdirs(path) != 0) {
		snprintf(err, cap, "cannot create %s: %s", path, strerror(errno));
		return NULL;
	}
	bc = x_new(struct blobcache);
	bc->dir = x_strdup(o->dir);
	bc->opts = *o;
	bc->opts.dir = bc->dir;
	blobcache_grow(bc);
	blobcache_clean_tmp(bc);
	clock_gettime(CLOCK_MONOTONIC, &bc->scan.started);
	bc->scan.top = opendir(path);
	bc->scanning = true;
	if (base)
		bc->scan.ev = evtimer_new(base, blobcache_scan_cb, bc);
	if (bc->scan.ev) {
		blobcache_scan_again(bc);
		return bc;
	}
	while (!blobcache_scan_step(bc, UINT32_MAX))
		;
	blobcache_scan_finish(bc);
	return bc;
}

bool blobcache_scanning(const struct blobcache *bc)
{
	return bc->scanning;
}

void blobcache_free(struct blobcache *bc)
{
	if (!bc)
		return;
	blobcache_scan_close(&bc->scan);
	for (size_t i = 0; i < bc->scan.n; i++)
		blobcache_entry_free(bc->scan.found[i].e);
	free(bc->scan.found);
	if (bc->scan.ev)
		event_free(bc->scan.ev);
	while (bc->fills)
		blobcache_fill_abort(bc->fills);
	while (bc->lru_head) {
		struct blobcache_entry *e = bc->lru_head;
		bc->lru_head = e->lru_next;
		blobcache_entry_free(e);
	}
	free(bc->buckets);
	free(bc->dir);
	free(bc);
}

/* ---- fills ---- */

struct blobcache_fill *blobcache_fill_find(struct blobcache *bc, const struct blobcache_key *k)
{
	for (struct blobcache_fill *f = bc->fills; f; f = f->next)
		if (memcmp(&f->key, k, sizeof(*k)) == 0)
			return f;
	return NULL;
}

struct blobcache_fill *blobcache_fill_begin(struct blobcache *bc, const struct blobcache_key *k)
{
	struct blobcache_fill *f = x_new(struct blobcache_fill);

	f->bc = bc;
	f->key = *k;
	f->fd = -1;
	f->next = bc->fills;
	if (bc->fills)
		bc->fills->prev = f;
	bc->fills = f;
	return f;
}

/* A fill that is ending leaves the list first, so that a request made
 * from a watcher's callback never joins it. */
static void blobcache_fill_unlink(struct blobcache_fill *f)
{
	struct blobcache *bc = f->bc;

	if (f->prev)
		f->prev->next = f->next;
	else if (bc->fills == f)
		bc->fills = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->next = f->prev = NULL;
}

static void blobcache_fill_free(struct blobcache_fill *f)
{
	struct blobcache *bc = f->bc;

	if (f->started)
		bc->reserved -= f->length;
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp_path) {
		unlink(f->tmp_path); /* after a commit it is gone already */
		free(f->tmp_path);
	}
	EVP_MD_CTX_free(f->sha);
	free(f->content_type);
	free(f->etag);
	free(f);
}

/* Tells every watcher ev and frees the watches (DONE, FAILED) or only
 * those that asked (STARTED goes to all, DATA to those waiting). */
static void blobcache_notify(struct blobcache_fill *f, enum blobcache_event ev)
{
	bool final = ev == BLOBCACHE_EV_DONE || ev == BLOBCACHE_EV_FAILED;
	struct blobcache_watch *w = f->watches, *next;

	if (final)
		f->watches = NULL;
	for (; w; w = next) {
		next = w->next;
		if (ev == BLOBCACHE_EV_DATA && !w->want_data)
			continue;
		w->want_data = false;
		w->fn(w->arg, ev, f->written);
		if (final)
			free(w);
	}
}

int blobcache_fill_start(struct blobcache_fill *f, uint64_t length, const char *content_type,
			 const char *etag)
{
	struct blobcache *bc = f->bc;
	char name[2 * (BLOBCACHE_ORIGIN_LEN + BLOBCACHE_DIGEST_LEN) + 64];
	char path[4096];

	/* Bigger than the whole cache: proxied, not cached, nothing evicted. */
	if (length + BLOBCACHE_HEAD_LEN > bc->opts.max_size)
		return -1;
	if (!blobcache_make_room(bc, length + BLOBCACHE_HEAD_LEN)) {
		blobcache_error(bc, BLOBCACHE_E_NO_SPACE, "evicting for a new fill", 0);
		return -1;
	}
	blobcache_hex(f->key.origin, BLOBCACHE_ORIGIN_LEN, name);
	name[2 * BLOBCACHE_ORIGIN_LEN] = '-';
	blobcache_hex(f->key.digest, BLOBCACHE_DIGEST_LEN, name + 2 * BLOBCACHE_ORIGIN_LEN + 1);
	snprintf(path, sizeof(path), "%s/tmp/%s.%ld.%" PRIu64, bc->dir, name, (long)getpid(),
		 ++bc->tmp_seq);
	f->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		blobcache_error(bc, BLOBCACHE_E_OPEN, path, errno);
		return -1;
	}
	f->tmp_path = x_strdup(path);
	f->content_type = x_strdup(blobcache_field_ok(content_type) ? content_type
								 : "application/octet-stream");
	f->etag = blobcache_field_ok(etag) ? x_strdup(etag) : NULL;
	if (blobcache_write_head(f->fd, f->content_type, f->etag) != 0) {
		blobcache_error(bc, BLOBCACHE_E_WRITE, path, errno);
		return -1;
	}
	f->sha = EVP_MD_CTX_new();
	if (!f->sha || EVP_DigestInit_ex(f->sha, EVP_sha256(), NULL) != 1) {
		blobcache_error(bc, BLOBCACHE_E_OPEN, "sha256 context", 0);
		return -1;
	}
	f->length = length;
	f->started = true;
	bc->reserved += length;
	blobcache_notify(f, BLOBCACHE_EV_STARTED);
	return 0;
}

static int blobcache_write_all(struct blobcache_fill *f, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = pwritev(f->fd, iov, n, (off_t)(BLOBCACHE_HEAD_LEN + f->written));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		f->written += (uint64_t)w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int blobcache_fill_write(struct blobcache_fill *f, struct evbuffer *in, size_t n)
{
	struct evbuffer_iovec vec[BLOBCACHE_IOV];
	struct evbuffer_ptr pos;

	if (f->written + n > f->length) {
		blobcache_error(f->bc, BLOBCACHE_E_DIGEST, "more bytes than Content-Length", 0);
		return -1;
	}
	evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET);
	while (n > 0) {
		int got = evbuffer_peek(in, (ev_ssize_t)n, &pos, vec, BLOBCACHE_IOV);
		struct iovec iov[BLOBCACHE_IOV];
		size_t sum = 0;
		int k = 0;
		for (; k < got && k < BLOBCACHE_IOV && sum < n; k++) {
			iov[k].iov_base = vec[k].iov_base;
			iov[k].iov_len = OG_MIN(vec[k].iov_len, n - sum);
			sum += iov[k].iov_len;
			EVP_DigestUpdate(f->sha, iov[k].iov_base, iov[k].iov_len);
		}
		if (k == 0 || blobcache_write_all(f, iov, k) != 0) {
			blobcache_error(f->bc, BLOBCACHE_E_WRITE, f->tmp_path, errno);
			return -1;
		}
		n -= sum;
		evbuffer_ptr_set(in, &pos, sum, EVBUFFER_PTR_ADD);
	}
	blobcache_notify(f, BLOBCACHE_EV_DATA);
	return 0;
}

static int blobcache_commit(struct blobcache_fill *f)
{
	struct blobcache *bc = f->bc;
	char dir[4096], path[4096];

	blobcache_path(bc, &f->key, dir, sizeof(dir), true);
	blobcache_path(bc, &f->key, path, sizeof(path), false);
	if (blobcache_mkdirs(dir) != 0 || rename(f->tmp_path, path) != 0) {
		blobcache_error(bc, BLOBCACHE_E_COMMIT, path, errno);
		return -1;
	}
	struct blobcache_entry *e = x_new(struct blobcache_entry);
	e->key = f->key;
	e->size = f->length;
	e->content_type = x_strdup(f->content_type);
	e->etag = f->etag ? x_strdup(f->etag) : NULL;
	bc->reserved -= f->length;
	f->started = false;
	blobcache_insert(bc, e);
	memset(bc->logged_error, 0, sizeof(bc->logged_error));
	return 0;
}

int blobcache_fill_finish(struct blobcache_fill *f)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	unsigned int md_len = 0;
	int rc = 0;

	blobcache_fill_unlink(f);
	if (!f->started || f->written != f->length ||
	    EVP_DigestFinal_ex(f->sha, md, &md_len) != 1 || md_len != sizeof(md) ||
	    memcmp(md, f->key.digest, sizeof(md)) != 0) {
		char d[2 * BLOBCACHE_DIGEST_LEN + 1];
		blobcache_hex(f->key.digest, BLOBCACHE_DIGEST_LEN, d);
		blobcache_error(f->bc, BLOBCACHE_E_DIGEST, d, 0);
		rc = -1;
	} else if (!f->removed && blobcache_commit(f) != 0) {
		rc = 1;
	}
	/* Followers read through their own descriptors: a commit renames the
	 * file under them, a failure unlinks it, and they are told which. */
	blobcache_notify(f, rc < 0 ? BLOBCACHE_EV_FAILED : BLOBCACHE_EV_DONE);
	if (rc == 0 && !f->removed)
		(void)blobcache_make_room(f->bc, 0);
	blobcache_fill_free(f);
	return rc;
}

void blobcache_fill_abort(struct blobcache_fill *f)
{
	blobcache_fill_unlink(f);
	blobcache_notify(f, BLOBCACHE_EV_FAILED);
	blobcache_fill_free(f);
}

bool blobcache_fill_started(const struct blobcache_fill *f)
{
	return f->started;
}

uint64_t blobcache_fill_written(const struct blobcache_fill *f)
{
	return f->written;
}

uint64_t blobcache_fill_length(const struct blobcache_fill *f)
{
	return f->length;
}

const char *blobcache_fill_content_type(const struct blobcache_fill *f)
{
	return f->content_type;
}

const char *blobcache_fill_etag(const struct blobcache_fill *f)
{
	return f->etag;
}

void blobcache_fill_on_unwatched(struct blobcache_fill *f, void (*fn)(void *arg), void *arg)
{
	f->unwatched_fn = fn;
	f->unwatched_arg = arg;
}

bool blobcache_fill_watched(const struct blobcache_fill *f)
{
	return f->watches != NULL;
}

int blobcache_fill_open(struct blobcache_fill *f)
{
	return f->tmp_path ? open(f->tmp_path, O_RDONLY | O_CLOEXEC) : -1;
}

/* ---- watches ---- */

struct blobcache_watch *blobcache_watch(struct blobcache_fill *f, blobcache_watch_fn fn, void *arg)
{
	struct blobcache_watch *w = x_new(struct blobcache_watch);

	w->fill = f;
	w->fn = fn;
	w->arg = arg;
	w->next = f->watches;
	if (f->watches)
		f->watches->prev = w;
	f->watches = w;
	return w;
}

void blobcache_watch_want_data(struct blobcache_watch *w)
{
	w->want_data = true;
}

void blobcache_unwatch(struct blobcache_watch *w)
{
	struct blobcache_fill *f;

	if (!w)
		return;
	f = w->fill;
	if (w->prev)
		w->prev->next = w->next;
	else
		f->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
	if (!f->watches && f->unwatched_fn)
		f->unwatched_fn(f->unwatched_arg);
}

/* ---- accounting ---- */

struct blobcache_stats *blobcache_stats(struct blobcache *bc)
{
	return &bc->stats;
}

uint64_t blobcache_bytes(const struct blobcache *bc)
{
	return bc->bytes;
}

size_t blobcache_count(const struct blobcache *bc)
{
	return bc->count;
}

const char *blobcache_dir(const struct blobcache *bc)
{
	return bc->dir;
}
