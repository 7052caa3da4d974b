/* auth/cache: TTL, LRU order and eviction, replacement, single-flight. */
#include <stdlib.h>
#include <string.h>

#include "auth/cache.h"
#include "test/unit/check.h"
#include "util/xalloc.h"

static int freed_values;

static void free_int(void *v)
{
	freed_values++;
	free(v);
}

static int *int_new(int v)
{
	int *p = x_malloc(sizeof(*p));
	*p = v;
	return p;
}

/* Distinct keys; the first bytes differ so they spread over buckets, and
 * key_collide makes keys that share a bucket (same first 8 bytes). */
static void key_of(unsigned char k[AUTH_CACHE_KEY_LEN], int i)
{
	memset(k, 0, AUTH_CACHE_KEY_LEN);
	memcpy(k, &i, sizeof(i));
	k[31] = 0x5a;
}

static void key_collide(unsigned char k[AUTH_CACHE_KEY_LEN], int i)
{
	memset(k, 0x11, AUTH_CACHE_KEY_LEN);
	memcpy(k + 16, &i, sizeof(i));
}

static int get_int(struct auth_cache *c, int i, uint64_t now)
{
	unsigned char k[AUTH_CACHE_KEY_LEN];
	int *v;

	key_of(k, i);
	v = auth_cache_get(c, k, now);
	return v ? *v : -1;
}

static void put_int(struct auth_cache *c, int i, int value, uint64_t expires)
{
	unsigned char k[AUTH_CACHE_KEY_LEN];

	key_of(k, i);
	auth_cache_put(c, k, int_new(value), expires);
}

static void test_ttl(void)
{
	struct auth_cache *c = auth_cache_new(10, free_int);

	freed_values = 0;
	put_int(c, 1, 100, 1000);
	CHECK_INT(get_int(c, 1, 0), 100);
	CHECK_INT(get_int(c, 1, 999), 100);
	/* Valid while now < expires: at the expiry it is gone, and freed. */
	CHECK_INT(get_int(c, 1, 1000), -1);
	CHECK_INT(freed_values, 1);
	CHECK_INT(auth_cache_count(c), 0);
	CHECK_INT(get_int(c, 1, 0), -1);
	CHECK_INT(auth_cache_stats(c)->expired, 1);
	CHECK_INT(auth_cache_stats(c)->hits, 2);
	CHECK_INT(auth_cache_stats(c)->misses, 2);
	auth_cache_free(c);
}

static void test_replace(void)
{
	struct auth_cache *c = auth_cache_new(10, free_int);

	freed_values = 0;
	put_int(c, 7, 1, 100);
	put_int(c, 7, 2, 5000);
	CHECK_INT(freed_values, 1);
	CHECK_INT(auth_cache_count(c), 1);
	/* The replacement carries its own expiry. */
	CHECK_INT(get_int(c, 7, 200), 2);
	auth_cache_free(c);
	CHECK_INT(freed_values, 2);
}

static void test_lru_eviction(void)
{
	struct auth_cache *c = auth_cache_new(3, free_int);

	freed_values = 0;
	put_int(c, 1, 10, 1000);
	put_int(c, 2, 20, 1000);
	put_int(c, 3, 30, 1000);
	/* Touch 1: now 2 is the least recently used. */
	CHECK_INT(get_int(c, 1, 0), 10);
	put_int(c, 4, 40, 1000);
	CHECK_INT(auth_cache_count(c), 3);
	CHECK_INT(freed_values, 1);
	CHECK_INT(get_int(c, 2, 0), -1);
	CHECK_INT(get_int(c, 1, 0), 10);
	CHECK_INT(get_int(c, 3, 0), 30);
	CHECK_INT(get_int(c, 4, 0), 40);
	/* Order now 4,3,1 from most recent: 1 is next to go. */
	put_int(c, 5, 50, 1000);
	CHECK_INT(get_int(c, 1, 0), -1);
	CHECK_INT(get_int(c, 3, 0), 30);
	CHECK_INT(auth_cache_stats(c)->evictions, 2);
	/* Replacing an entry refreshes its recency and evicts nothing. */
	put_int(c, 4, 41, 1000);
	CHECK_INT(auth_cache_stats(c)->evictions, 2);
	put_int(c, 6, 60, 1000); /* evicts 5 (order 4,3,5) */
	CHECK_INT(get_int(c, 5, 0), -1);
	CHECK_INT(get_int(c, 4, 0), 41);
	auth_cache_free(c);
}

static void test_size_one_and_remove(void)
{
	struct auth_cache *c = auth_cache_new(1, free_int);
	unsigned char k[AUTH_CACHE_KEY_LEN];

	put_int(c, 1, 1, 10);
	put_int(c, 2, 2, 10);
	CHECK_INT(auth_cache_count(c), 1);
	CHECK_INT(get_int(c, 1, 0), -1);
	CHECK_INT(get_int(c, 2, 0), 2);
	key_of(k, 2);
	CHECK(auth_cache_remove(c, k));
	CHECK(!auth_cache_remove(c, k));
	CHECK_INT(auth_cache_count(c), 0);
	auth_cache_free(c);
}

static void test_collisions(void)
{
	struct auth_cache *c = auth_cache_new(1000, free_int);
	unsigned char k[AUTH_CACHE_KEY_LEN];
	int *v;

	for (int i = 0; i < 50; i++) {
		key_collide(k, i);
		auth_cache_put(c, k, int_new(i * 3), 100);
	}
	CHECK_INT(auth_cache_count(c), 50);
	for (int i = 0; i < 50; i++) {
		key_collide(k, i);
		v = auth_cache_get(c, k, 1);
		CHECK(v && *v == i * 3);
	}
	/* Remove one from the middle of the chain; the others stay reachable. */
	key_collide(k, 25);
	CHECK(auth_cache_remove(c, k));
	CHECK(auth_cache_get(c, k, 1) == NULL);
	key_collide(k, 26);
	v = auth_cache_get(c, k, 1);
	CHECK(v && *v == 78);
	key_collide(k, 0);
	v = auth_cache_get(c, k, 1);
	CHECK(v && *v == 0);
	auth_cache_clear(c);
	CHECK_INT(auth_cache_count(c), 0);
	auth_cache_free(c);
}

static void test_many(void)
{
	struct auth_cache *c = auth_cache_new(1000, free_int);
	int missing = 0;

	freed_values = 0;
	for (int i = 0; i < 5000; i++)
		put_int(c, i, i, 10);
	CHECK_INT(auth_cache_count(c), 1000);
	CHECK_INT(freed_values, 4000);
	for (int i = 0; i < 4000; i++)
		missing += get_int(c, i, 0) == -1;
	CHECK_INT(missing, 4000);
	for (int i = 4000; i < 5000; i++)
		CHECK_INT(get_int(c, i, 0), i);
	auth_cache_free(c);
	CHECK_INT(freed_values, 5000);
}

/* ---- single-flight ---- */

struct wake_log {
	int calls[8];
	int results[8];
	int n;
	struct auth_waiter *cancel_on_wake; /* cancelled by the first wake */
	struct auth_cache *cache;           /* begin a new flight on wake */
	int key;
	struct auth_flight *new_flight;
};

struct waker {
	struct wake_log *log;
	int id;
};

static void on_wake(void *arg, void *result)
{
	struct waker *w = arg;
	struct wake_log *l = w->log;

	l->calls[l->n] = w->id;
	l->results[l->n] = *(int *)result;
	l->n++;
	if (l->cancel_on_wake) {
		auth_waiter_cancel(l->cancel_on_wake);
		l->cancel_on_wake = NULL;
	}
	if (l->cache) {
		unsigned char k[AUTH_CACHE_KEY_LEN];
		key_of(k, l->key);
		/* The finished flight is closed: a new one can begin. */
		if (!auth_cache_flight(l->cache, k))
			l->new_flight = auth_cache_flight_begin(l->cache, k, NULL);
		l->cache = NULL;
	}
}

static void test_flight_basic(void)
{
	struct auth_cache *c = auth_cache_new(10, free_int);
	unsigned char k[AUTH_CACHE_KEY_LEN], k2[AUTH_CACHE_KEY_LEN];
	struct wake_log log = { .n = 0 };
	struct waker w[4] = { { &log, 1 }, { &log, 2 }, { &log, 3 }, { &log, 4 } };
	int data = 0, result = 42;
	struct auth_flight *f;

	key_of(k, 1);
	key_of(k2, 2);
	CHECK(auth_cache_flight(c, k) == NULL);
	f = auth_cache_flight_begin(c, k, &data);
	CHECK(auth_cache_flight(c, k) == f);
	CHECK(auth_cache_flight(c, k2) == NULL);
	CHECK(auth_flight_data(f) == &data);
	CHECK(memcmp(auth_flight_key(f), k, AUTH_CACHE_KEY_LEN) == 0);
	auth_flight_wait(f, on_wake, &w[0]);
	struct auth_waiter *w2 = auth_flight_wait(f, on_wake, &w[1]);
	auth_flight_wait(f, on_wake, &w[2]);
	auth_flight_wait(f, on_wake, &w[3]);
	CHECK_INT(auth_flight_n_waiters(f), 4);
	CHECK_INT(auth_cache_stats(c)->joins, 3);
	auth_waiter_cancel(w2);
	CHECK_INT(auth_flight_n_waiters(f), 3);
	auth_flight_finish(f, &result);
	CHECK_INT(log.n, 3);
	CHECK_INT(log.calls[0], 1);
	CHECK_INT(log.calls[1], 3);
	CHECK_INT(log.calls[2], 4);
	CHECK_INT(log.results[2], 42);
	CHECK(auth_cache_flight(c, k) == NULL);
	CHECK_INT(auth_cache_stats(c)->flights, 1);
	auth_cache_free(c);
}

static void test_flight_reentrant(void)
{
	struct auth_cache *c = auth_cache_new(10, free_int);
	unsigned char k[AUTH_CACHE_KEY_LEN];
	struct wake_log log = { .n = 0 };
	struct waker w[3] = { { &log, 1 }, { &log, 2 }, { &log, 3 } };
	int result = 7;
	struct auth_flight *f;

	key_of(k, 9);
	f = auth_cache_flight_begin(c, k, NULL);
	auth_flight_wait(f, on_wake, &w[0]);
	log.cancel_on_wake = auth_flight_wait(f, on_wake, &w[1]);
	auth_flight_wait(f, on_wake, &w[2]);
	log.cache = c;
	log.key = 9;
	auth_flight_finish(f, &result);
	/* The first wake cancelled the second waiter and opened a new flight. */
	CHECK_INT(log.n, 2);
	CHECK_INT(log.calls[0], 1);
	CHECK_INT(log.calls[1], 3);
	CHECK(log.new_flight != NULL);
	CHECK(auth_cache_flight(c, k) == log.new_flight);
	/* Freeing the cache abandons the open flight and its waiters. */
	auth_flight_wait(log.new_flight, on_wake, &w[0]);
	auth_cache_free(c);
	CHECK_INT(log.n, 2);
}

static int released;

static void release_waker(void *arg)
{
	struct waker *w = arg;
	released += w->id;
}

static void test_flight_abandon(void)
{
	struct auth_cache *c = auth_cache_new(10, NULL);
	unsigned char k[AUTH_CACHE_KEY_LEN];
	struct wake_log log = { .n = 0 };
	struct waker w = { &log, 1 };
	struct auth_flight *f;

	key_collide(k, 1);
	f = auth_cache_flight_begin(c, k, NULL);
	auth_flight_wait(f, on_wake, &w);
	/* Another flight in the same bucket survives the abandon. */
	unsigned char k2[AUTH_CACHE_KEY_LEN];
	key_collide(k2, 2);
	struct auth_flight *f2 = auth_cache_flight_begin(c, k2, NULL);
	auth_flight_abandon(f, release_waker);
	CHECK_INT(log.n, 0);
	CHECK_INT(released, 1);
	CHECK(auth_cache_flight(c, k) == NULL);
	CHECK(auth_cache_flight(c, k2) == f2);
	auth_cache_free(c);
}

int main(void)
{
	test_ttl();
	test_replace();
	test_lru_eviction();
	test_size_one_and_remove();
	test_collisions();
	test_many();
	test_flight_basic();
	test_flight_reentrant();
	test_flight_abandon();
	CHECK_DONE();
}
