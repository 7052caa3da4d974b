#include "auth/cache.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* Flights are few (distinct keys missing at the same moment), so a fixed
 * table is enough; entries get one bucket per entry at most. */
#define FLIGHT_BUCKETS 256

struct entry {
	unsigned char key[AUTH_CACHE_KEY_LEN];
	struct entry *hnext;
	struct entry *prev, *next; /* LRU: head is the most recently used */
	void *value;
	uint64_t expires_ms;
};

struct auth_waiter {
	struct auth_waiter *prev, *next;
	struct auth_flight *flight;
	auth_cache_wake_fn wake;
	void *arg;
};

struct auth_flight {
	unsigned char key[AUTH_CACHE_KEY_LEN];
	struct auth_flight *hnext;
	struct auth_cache *cache; /* NULL once finished or abandoned */
	void *data;
	struct auth_waiter *head, *tail;
	size_t n_waiters;
};

struct auth_cache {
	size_t max_entries, n_entries;
	struct entry **buckets;
	size_t mask;
	struct entry *lru_head, *lru_tail;
	struct auth_flight *flights[FLIGHT_BUCKETS];
	auth_cache_free_fn free_value;
	struct auth_cache_stats stats;
};

/* Keys are cryptographic hashes: any of their bytes are uniform already. */
static size_t cache_hash(const unsigned char *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return (size_t)h;
}

struct auth_cache *auth_cache_new(size_t max_entries, auth_cache_free_fn free_value)
{
	struct auth_cache *c = x_new(struct auth_cache);
	size_t n = 16;

	assert(max_entries >= 1);
	while (n < max_entries && n < ((size_t)1 << 30))
		n <<= 1;
	c->max_entries = max_entries;
	c->buckets = x_calloc(n, sizeof(*c->buckets));
	c->mask = n - 1;
	c->free_value = free_value;
	return c;
}

static struct entry **cache_slot(struct auth_cache *c, const unsigned char *key)
{
	struct entry **pp = &c->buckets[cache_hash(key) & c->mask];

	while (*pp && memcmp((*pp)->key, key, AUTH_CACHE_KEY_LEN) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void lru_unlink(struct auth_cache *c, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->lru_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->lru_tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct auth_cache *c, struct entry *e)
{
	e->prev = NULL;
	e->next = c->lru_head;
	if (c->lru_head)
		c->lru_head->prev = e;
	c->lru_head = e;
	if (!c->lru_tail)
		c->lru_tail = e;
}

static void cache_free_value(struct auth_cache *c, void *value)
{
	if (c->free_value && value)
		c->free_value(value);
}

/* *slot points at e in its bucket chain. */
static void cache_drop(struct auth_cache *c, struct entry **slot)
{
	struct entry *e = *slot;

	*slot = e->hnext;
	lru_unlink(c, e);
	c->n_entries--;
	cache_free_value(c, e->value);
	free(e);
}

void *auth_cache_get(struct auth_cache *c, const unsigned char key[AUTH_CACHE_KEY_LEN],
		     uint64_t now_ms)
{
	struct entry **slot = cache_slot(c, key);
	struct entry *e = *slot;

	if (!e) {
		c->stats.misses++;
		return NULL;
	}
	if (now_ms >= e->expires_ms) {
		c->stats.expired++;
		c->stats.misses++;
		cache_drop(c, slot);
		return NULL;
	}
	c->stats.hits++;
	if (c->lru_head != e) {
		lru_unlink(c, e);
		lru_push_front(c, e);
	}
	return e->value;
}

static void cache_evict_lru(struct auth_cache *c)
{
	struct entry *victim = c->lru_tail;

	assert(victim);
	c->stats.evictions++;
	cache_drop(c, cache_slot(c, victim->key));
}

void auth_cache_put(struct auth_cache *c, const unsigned char key[AUTH_CACHE_KEY_LEN],
		    void *value, uint64_t expires_ms)
{
	struct entry **slot = cache_slot(c, key);
	struct entry *e = *slot;

	if (e) {
		/* Replace in place: the value changes, the slot does not. */
		cache_free_value(c, e->value);
		e->value = value;
		e->expires_ms = expires_ms;
		lru_unlink(c, e);
		lru_push_front(c, e);
		return;
	}
	if (c->n_entries >= c->max_entries) {
		cache_evict_lru(c);
		slot = cache_slot(c, key);
	}
	e = x_new(struct entry);
	memcpy(e->key, key, AUTH_CACHE_KEY_LEN);
	e->value = value;
	e->expires_ms = expires_ms;
	*slot = e;
	lru_push_front(c, e);
	c->n_entries++;
}

bool auth_cache_remove(struct auth_cache *c, const unsigned char key[AUTH_CACHE_KEY_LEN])
{
	struct entry **slot = cache_slot(c, key);

	if (!*slot)
		return false;
	cache_drop(c, slot);
	return true;
}

void auth_cache_clear(struct auth_cache *c)
{
	while (c->lru_head)
		cache_drop(c, cache_slot(c, c->lru_head->key));
}

size_t auth_cache_count(const struct auth_cache *c)
{
	return c->n_entries;
}

const struct auth_cache_stats *auth_cache_stats(const struct auth_cache *c)
{
	return &c->stats;
}

/* ---- single-flight ---- */

static struct auth_flight **flight_slot(struct auth_cache *c, const unsigned char *key)
{
	struct auth_flight **pp = &c->flights[cache_hash(key) % FLIGHT_BUCKETS];

	while (*pp && memcmp((*pp)->key, key, AUTH_CACHE_KEY_LEN) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

struct auth_flight *auth_cache_flight(struct auth_cache *c,
				      const unsigned char key[AUTH_CACHE_KEY_LEN])
{
	return *flight_slot(c, key);
}

struct auth_flight *auth_cache_flight_begin(struct auth_cache *c,
					    const unsigned char key[AUTH_CACHE_KEY_LEN],
					    void *data)
{
	struct auth_flight **slot = flight_slot(c, key);
	struct auth_flight *f;

	assert(!*slot && "a flight for this key is already open");
	f = x_new(struct auth_flight);
	memcpy(f->key, key, AUTH_CACHE_KEY_LEN);
	f->cache = c;
	f->data = data;
	*slot = f;
	c->stats.flights++;
	return f;
}

void *auth_flight_data(const struct auth_flight *f)
{
	return f->data;
}

const unsigned char *auth_flight_key(const struct auth_flight *f)
{
	return f->key;
}

size_t auth_flight_n_waiters(const struct auth_flight *f)
{
	return f->n_waiters;
}

struct auth_waiter *auth_flight_wait(struct auth_flight *f, auth_cache_wake_fn wake, void *arg)
{
	struct auth_waiter *w = x_new(struct auth_waiter);

	assert(f->cache && "waiting on a finished flight");
	w->flight = f;
	w->wake = wake;
	w->arg = arg;
	w->prev = f->tail;
	if (f->tail)
		f->tail->next = w;
	else
		f->head = w;
	f->tail = w;
	if (f->n_waiters++)
		f->cache->stats.joins++;
	return w;
}

static void waiter_unlink(struct auth_waiter *w)
{
	struct auth_flight *f = w->flight;

	if (w->prev)
		w->prev->next = w->next;
	else
		f->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		f->tail = w->prev;
	f->n_waiters--;
}

void auth_waiter_cancel(struct auth_waiter *w)
{
	waiter_unlink(w);
	free(w);
}

/* Takes f out of its cache's table so that a new flight may begin. */
static void flight_close(struct auth_flight *f)
{
	struct auth_flight **slot;

	assert(f->cache && "flight closed twice");
	slot = flight_slot(f->cache, f->key);
	assert(*slot == f);
	*slot = f->hnext;
	f->cache = NULL;
}

void auth_flight_finish(struct auth_flight *f, void *result)
{
	flight_close(f);
	/* Pop before waking: a callback may cancel the waiters after it. */
	while (f->head) {
		struct auth_waiter *w = f->head;
		auth_cache_wake_fn wake = w->wake;
		void *arg = w->arg;

		waiter_unlink(w);
		free(w);
		wake(arg, result);
	}
	free(f);
}

void auth_flight_abandon(struct auth_flight *f, void (*release)(void *arg))
{
	flight_close(f);
	while (f->head) {
		void *arg = f->head->arg;

		auth_waiter_cancel(f->head);
		if (release)
			release(arg);
	}
	free(f);
}

void auth_cache_free(struct auth_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < FLIGHT_BUCKETS; i++)
		while (c->flights[i])
			auth_flight_abandon(c->flights[i], NULL);
	auth_cache_clear(c);
	free(c->buckets);
	free(c);
}
