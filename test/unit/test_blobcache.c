/* proxy/blobcache: keys, fills (verify, commit, mismatch, abort), watchers,
 * LRU eviction by max_size, DELETE, the index rebuilt from the directory,
 * temp files removed at open; and blobserve_parse_range. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/sha.h>

#include "proxy/blobcache.h"
#include "proxy/blobserve.h"
#include "test/unit/check.h"
#include "util/xalloc.h"

static char root[] = "/tmp/test_blobcache.XXXXXX";

static void digest_of(const void *data, size_t n, char out[72])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, n, md);
	strcpy(out, "sha256:");
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

static struct blobcache *open_cache(const char *sub, uint64_t max_size)
{
	char dir[256], err[300] = "";
	struct blobcache_opts o = { .dir = dir, .max_size = max_size };
	struct blobcache *bc;

	snprintf(dir, sizeof(dir), "%s/%s", root, sub);
	bc = blobcache_open(&o, NULL, err, sizeof(err));
	if (!bc)
		fprintf(stderr, "blobcache_open: %s\n", err);
	return bc;
}

/* Runs a whole fill of data under key k (in two writes); returns what
 * blobcache_fill_finish said, or 2 when start failed. */
static int fill(struct blobcache *bc, const struct blobcache_key *k, const void *data, size_t n)
{
	struct blobcache_fill *f = blobcache_fill_begin(bc, k);
	struct evbuffer *b = evbuffer_new();
	int rc;

	if (blobcache_fill_start(f, n, "application/vnd.test", "\"etag\"") != 0) {
		blobcache_fill_abort(f);
		evbuffer_free(b);
		return 2;
	}
	evbuffer_add(b, data, n);
	rc = blobcache_fill_write(f, b, n / 2);
	CHECK_INT(rc, 0);
	evbuffer_drain(b, n / 2);
	rc = blobcache_fill_write(f, b, n - n / 2);
	CHECK_INT(rc, 0);
	evbuffer_free(b);
	return blobcache_fill_finish(f);
}

static void make_key(struct blobcache_key *k, const char *origin, const void *data, size_t n)
{
	char d[72];

	digest_of(data, n, d);
	CHECK_INT(blobcache_key_make(k, origin, og_str_make(d, strlen(d))), 0);
}

static void test_keys(void)
{
	struct blobcache_key a, b;
	const char *d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	CHECK_INT(blobcache_key_make(&a, "https://a:443", og_str_make(d, strlen(d))), 0);
	CHECK_INT(blobcache_key_make(&b, "https://b:443", og_str_make(d, strlen(d))), 0);
	CHECK(memcmp(a.digest, b.digest, sizeof(a.digest)) == 0);
	CHECK(memcmp(a.origin, b.origin, sizeof(a.origin)) != 0);
	CHECK_INT(blobcache_key_make(&a, "o", OG_STR_LIT("sha512:00")), -1);
	CHECK_INT(blobcache_key_make(&a, "o", OG_STR_LIT(
		"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef")), -1);
	CHECK_INT(blobcache_key_make(&a, "o", OG_STR_LIT("sha256:0123")), -1);
}

static void test_fill_hit_and_mismatch(void)
{
	struct blobcache *bc = open_cache("one", 1 << 20);
	char data[5000];
	struct blobcache_key k, other;
	const struct blobcache_entry *e;

	if (!bc)
		return;
	memset(data, 'x', sizeof(data));
	make_key(&k, "https://reg:443", data, sizeof(data));
	CHECK(blobcache_lookup(bc, &k) == NULL);
	CHECK_INT(fill(bc, &k, data, sizeof(data)), 0);
	e = blobcache_lookup(bc, &k);
	CHECK(e != NULL);
	if (e) {
		char buf[5000];
		int fd = blobcache_open_entry(bc, e);
		CHECK_INT(e->size, sizeof(data));
		CHECK_STR(e->content_type, "application/vnd.test");
		CHECK_STR(e->etag, "\"etag\"");
		CHECK(fd >= 0);
		CHECK_INT(pread(fd, buf, sizeof(buf), BLOBCACHE_HEAD_LEN), sizeof(buf));
		CHECK(memcmp(buf, data, sizeof(buf)) == 0);
		close(fd);
	}
	CHECK_INT(blobcache_bytes(bc), sizeof(data));
	/* Same digest from another registry: not a hit. */
	make_key(&other, "https://other:443", data, sizeof(data));
	CHECK(blobcache_lookup(bc, &other) == NULL);

	/* Bytes that do not hash to the key: -1, nothing committed. */
	data[100] ^= 1;
	CHECK_INT(fill(bc, &other, data, sizeof(data)), -1);
	CHECK(blobcache_lookup(bc, &other) == NULL);
	CHECK_INT(blobcache_stats(bc)->errors[BLOBCACHE_E_DIGEST], 1);
	CHECK_INT(blobcache_count(bc), 1);

	/* DELETE */
	blobcache_remove(bc, &k);
	CHECK(blobcache_lookup(bc, &k) == NULL);
	CHECK_INT(blobcache_bytes(bc), 0);
	blobcache_free(bc);
}

static int events[4], last_avail;

static void on_event(void *arg, enum blobcache_event ev, uint64_t available)
{
	(void)arg;
	events[ev]++;
	last_avail = (int)available;
}

static void test_watchers(void)
{
	struct blobcache *bc = open_cache("watch", 1 << 20);
	char data[1000];
	struct blobcache_key k;
	struct evbuffer *b = evbuffer_new();

	if (!bc)
		return;
	memset(data, 'w', sizeof(data));
	make_key(&k, "o", data, sizeof(data));
	struct blobcache_fill *f = blobcache_fill_begin(bc, &k);
	CHECK(blobcache_fill_find(bc, &k) == f);
	struct blobcache_watch *w = blobcache_watch(f, on_event, NULL);
	struct blobcache_watch *gone = blobcache_watch(f, on_event, NULL);
	blobcache_unwatch(gone);
	CHECK_INT(blobcache_fill_start(f, sizeof(data), NULL, NULL), 0);
	CHECK_INT(events[BLOBCACHE_EV_STARTED], 1);
	CHECK_STR(blobcache_fill_content_type(f), "application/octet-stream");
	evbuffer_add(b, data, sizeof(data));
	CHECK_INT(blobcache_fill_write(f, b, 100), 0);
	CHECK_INT(events[BLOBCACHE_EV_DATA], 0); /* not asked for */
	blobcache_watch_want_data(w);
	evbuffer_drain(b, 100);
	CHECK_INT(blobcache_fill_write(f, b, 400), 0);
	CHECK_INT(events[BLOBCACHE_EV_DATA], 1);
	CHECK_INT(last_avail, 500);
	int fd = blobcache_fill_open(f);
	CHECK(fd >= 0);
	evbuffer_drain(b, 400);
	CHECK_INT(blobcache_fill_write(f, b, 500), 0);
	CHECK_INT(events[BLOBCACHE_EV_DATA], 1); /* once per ask */
	CHECK_INT(blobcache_fill_finish(f), 0);
	CHECK_INT(events[BLOBCACHE_EV_DONE], 1);
	CHECK(blobcache_fill_find(bc, &k) == NULL);
	/* The follower's descriptor still reads the whole body after the rename. */
	char buf[1000];
	CHECK_INT(pread(fd, buf, sizeof(buf), BLOBCACHE_HEAD_LEN), sizeof(buf));
	CHECK(memcmp(buf, data, sizeof(buf)) == 0);
	close(fd);

	/* An abort tells FAILED and leaves no temp file. */
	char d2[10] = "abcdefghij";
	make_key(&k, "o", d2, sizeof(d2));
	f = blobcache_fill_begin(bc, &k);
	blobcache_watch(f, on_event, NULL);
	CHECK_INT(blobcache_fill_start(f, sizeof(d2), NULL, NULL), 0);
	blobcache_fill_abort(f);
	CHECK_INT(events[BLOBCACHE_EV_FAILED], 1);
	CHECK(blobcache_lookup(bc, &k) == NULL);
	char tmp[300];
	snprintf(tmp, sizeof(tmp), "%s/watch/tmp", root);
	DIR *dir = opendir(tmp);
	int n = 0;
	for (struct dirent *de; dir && (de = readdir(dir));)
		n += de->d_name[0] != '.';
	if (dir)
		closedir(dir);
	CHECK_INT(n, 0);
	evbuffer_free(b);
	blobcache_free(bc);
}

static int unwatched_calls;

static void on_unwatched(void *arg)
{
	(void)arg;
	unwatched_calls++;
}

/* The hook a fill without its client uses: it runs when the last watch is
 * removed by unwatch, not for earlier ones, and not when a final event
 * frees the watches. */
static void test_unwatched_hook(void)
{
	struct blobcache *bc = open_cache("unwatched", 1 << 20);
	char data[64] = "unwatched";
	struct blobcache_key k;

	if (!bc)
		return;
	make_key(&k, "o", data, sizeof(data));
	struct blobcache_fill *f = blobcache_fill_begin(bc, &k);
	blobcache_fill_on_unwatched(f, on_unwatched, NULL);
	CHECK(!blobcache_fill_watched(f));
	struct blobcache_watch *a = blobcache_watch(f, on_event, NULL);
	struct blobcache_watch *b = blobcache_watch(f, on_event, NULL);
	CHECK(blobcache_fill_watched(f));
	blobcache_unwatch(a);
	CHECK_INT(unwatched_calls, 0);
	CHECK(blobcache_fill_watched(f));
	blobcache_unwatch(b);
	CHECK_INT(unwatched_calls, 1);
	CHECK(!blobcache_fill_watched(f));
	blobcache_watch(f, on_event, NULL);
	blobcache_fill_abort(f);
	CHECK_INT(unwatched_calls, 1);
	blobcache_free(bc);
}

static void test_lru_and_rebuild(void)
{
	/* Room for three 300 KiB bodies (and their heads), not four. */
	struct blobcache *bc = open_cache("lru", 1 << 20);
	static char data[4][300 * 1024];
	struct blobcache_key k[4];

	if (!bc)
		return;
	for (int i = 0; i < 4; i++) {
		memset(data[i], 'a' + i, sizeof(data[i]));
		make_key(&k[i], "https://r:443", data[i], sizeof(data[i]));
	}
	for (int i = 0; i < 3; i++)
		CHECK_INT(fill(bc, &k[i], data[i], sizeof(data[i])), 0);
	CHECK(blobcache_lookup(bc, &k[0]) != NULL); /* 1 is now the oldest */
	CHECK_INT(fill(bc, &k[3], data[3], sizeof(data[3])), 0);
	CHECK(blobcache_lookup(bc, &k[1]) == NULL);
	CHECK(blobcache_lookup(bc, &k[0]) != NULL);
	CHECK(blobcache_lookup(bc, &k[2]) != NULL);
	CHECK(blobcache_lookup(bc, &k[3]) != NULL);
	CHECK_INT(blobcache_stats(bc)->evictions, 1);
	CHECK(blobcache_bytes(bc) <= 1 << 20);
	/* Larger than the whole cache: refused without evicting anything. */
	static char huge[(1 << 20) + 1];
	struct blobcache_key hk;
	make_key(&hk, "https://r:443", huge, sizeof(huge));
	CHECK_INT(fill(bc, &hk, huge, sizeof(huge)), 2);
	CHECK_INT(blobcache_count(bc), 3);
	blobcache_free(bc);

	/* A restart: the index comes back from the files, junk and temp files go. */
	char path[400];
	snprintf(path, sizeof(path), "%s/lru/tmp/leftover", root);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	bc = open_cache("lru", 1 << 20);
	if (!bc)
		return;
	CHECK_INT(blobcache_count(bc), 3);
	CHECK_INT(blobcache_bytes(bc), 3 * sizeof(data[0]));
	const struct blobcache_entry *e = blobcache_lookup(bc, &k[3]);
	CHECK(e && strcmp(e->content_type, "application/vnd.test") == 0);
	CHECK(access(path, F_OK) != 0);
	blobcache_free(bc);

	/* Reopened with a smaller max_size: evicted down to it at start. */
	bc = open_cache("lru", 700 * 1024);
	if (!bc)
		return;
	CHECK_INT(blobcache_count(bc), 2);
	blobcache_free(bc);
}

/* min_free larger than the file system's free space: entries are evicted
 * and a new fill is refused (counted as no_space), whatever max_size. */
static void test_min_free(void)
{
	char dir[256], err[300] = "";
	struct blobcache_opts o = { .dir = dir, .max_size = 1ULL << 40 };
	char data[100];
	struct blobcache_key k1, k2;
	struct blobcache *bc;

	snprintf(dir, sizeof(dir), "%s/minfree", root);
	bc = blobcache_open(&o, NULL, err, sizeof(err));
	if (!bc)
		return;
	memset(data, 'm', sizeof(data));
	make_key(&k1, "o", data, sizeof(data));
	CHECK_INT(fill(bc, &k1, data, sizeof(data)), 0);
	blobcache_free(bc);

	o.min_free_bytes = 1ULL << 62;
	bc = blobcache_open(&o, NULL, err, sizeof(err));
	if (!bc)
		return;
	CHECK_INT(blobcache_count(bc), 0); /* evicted at open */
	data[0] = 'n';
	make_key(&k2, "o", data, sizeof(data));
	CHECK_INT(fill(bc, &k2, data, sizeof(data)), 2);
	CHECK_INT(blobcache_stats(bc)->errors[BLOBCACHE_E_NO_SPACE], 1);
	blobcache_free(bc);
}

/* With an event base the index is rebuilt a batch per loop iteration:
 * lookups miss until the scan has found their file. */
static void test_incremental_scan(void)
{
	char dir[256], sub[400], path[600], err[300] = "";
	struct blobcache_opts o = { .dir = dir, .max_size = 1ULL << 40 };
	struct event_base *base = event_base_new();
	char head[BLOBCACHE_HEAD_LEN] = "OGC1\napplication/octet-stream\n\n";
	struct blobcache_key k;
	int iterations = 0;

	snprintf(dir, sizeof(dir), "%s/scan", root);
	snprintf(sub, sizeof(sub), "%s/blobs/%032d/sha256", dir, 0);
	snprintf(path, sizeof(path), "mkdir -p '%s'", sub);
	CHECK_INT(system(path), 0);
	for (int i = 0; i < 600; i++) {
		char body[16], d[72];
		int n = snprintf(body, sizeof(body), "%d", i);
		digest_of(body, (size_t)n, d);
		snprintf(path, sizeof(path), "%s/%s", sub, d + 7);
		FILE *f = fopen(path, "wb");
		CHECK(f != NULL);
		if (!f)
			break;
		fwrite(head, 1, sizeof(head), f);
		fwrite(body, 1, (size_t)n, f);
		fclose(f);
	}
	struct blobcache *bc = blobcache_open(&o, base, err, sizeof(err));
	CHECK(bc != NULL);
	if (!bc)
		goto out;
	CHECK(blobcache_scanning(bc));
	CHECK_INT(blobcache_count(bc), 0);
	while (blobcache_scanning(bc) && iterations < 100) {
		event_base_loop(base, EVLOOP_ONCE);
		iterations++;
	}
	CHECK(!blobcache_scanning(bc));
	CHECK(iterations >= 3); /* 600 files, 256 per iteration */
	CHECK_INT(blobcache_count(bc), 600);
	memset(&k, 0, sizeof(k));
	CHECK_INT(blobcache_key_make(&k, "x", OG_STR_LIT(
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")), 0);
	CHECK(blobcache_lookup(bc, &k) == NULL);
	blobcache_free(bc);
	/* Freed in the middle of a scan: nothing leaks (ASan). */
	bc = blobcache_open(&o, base, err, sizeof(err));
	if (bc) {
		event_base_loop(base, EVLOOP_ONCE);
		blobcache_free(bc);
	}
out:
	event_base_free(base);
}

static void test_range(void)
{
	uint64_t a = 0, b = 0;

	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=0-9"), 100, &a, &b), 1);
	CHECK_INT(a, 0);
	CHECK_INT(b, 9);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=90-"), 100, &a, &b), 1);
	CHECK_INT(a, 90);
	CHECK_INT(b, 99);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=90-200"), 100, &a, &b), 1);
	CHECK_INT(b, 99);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=-10"), 100, &a, &b), 1);
	CHECK_INT(a, 90);
	CHECK_INT(b, 99);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=-1000"), 100, &a, &b), 1);
	CHECK_INT(a, 0);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=100-"), 100, &a, &b), -1);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=-0"), 100, &a, &b), -1);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=5-1"), 100, &a, &b), 0);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=0-1,5-6"), 100, &a, &b), 0);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("items=0-1"), 100, &a, &b), 0);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=-"), 100, &a, &b), 0);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=1-2x"), 100, &a, &b), 0);
	CHECK_INT(blobserve_parse_range(OG_STR_LIT("bytes=99999999999999999999999-"), 100, &a, &b), 0);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 2;
	}
	test_keys();
	test_fill_hit_and_mismatch();
	test_watchers();
	test_unwatched_hook();
	test_lru_and_rebuild();
	test_min_free();
	test_incremental_scan();
	test_range();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
	CHECK_DONE();
}
