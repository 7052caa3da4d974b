/* A bounded LRU of decisions keyed by 32-byte hashes (SHA-256 of a token,
 * of a (user, uid, groups, connector, verb) tuple...), each entry with its own
 * expiry, plus single-flight: concurrent misses on the same key join one
 * "flight" (one API call) and are all woken with its result.
 *
 * Times are milliseconds on a clock the caller chooses (monotonic in the
 * proxy, a fake one in tests). An entry is valid while now < expires_ms.
 * Nothing here blocks or calls out, except the wake callbacks of
 * auth_flight_finish. */
#ifndef OCIGATE_AUTH_CACHE_H
#define OCIGATE_AUTH_CACHE_H

#include "util/common.h"

#define AUTH_CACHE_KEY_LEN 32

struct auth_cache;
struct auth_flight;
struct auth_waiter;

/* Frees a value the cache owns (on replacement, expiry, eviction, free). */
typedef void (*auth_cache_free_fn)(void *value);
/* Wakes one waiter of a finished flight; result is the one given to
 * auth_flight_finish, borrowed for the duration of the call. */
typedef void (*auth_cache_wake_fn)(void *arg, void *result);

struct auth_cache_stats {
	uint64_t hits, misses, expired, evictions;
	uint64_t flights, joins;
};

/* max_entries >= 1. free_value may be NULL (values not owned). */
struct auth_cache *auth_cache_new(size_t max_entries, auth_cache_free_fn free_value);
/* Frees the entries and any flight still open; its waiters are dropped
 * without being woken (the owner cancels what it started first). */
void auth_cache_free(struct auth_cache *c);

/* The value of a live entry (and marks it most recently used), or NULL. An
 * expired entry is dropped. */
void *auth_cache_get(struct auth_cache *c, const unsigned char key[AUTH_CACHE_KEY_LEN],
		     uint64_t now_ms);
/* Inserts or replaces; the cache owns value from then on. When full, the
 * least recently used entry goes. */
void auth_cache_put(struct auth_cache *c, const unsigned char key[AUTH_CACHE_KEY_LEN],
		    void *value, uint64_t expires_ms);
/* True when an entry was there. */
bool auth_cache_remove(struct auth_cache *c, const unsigned char key[AUTH_CACHE_KEY_LEN]);
void auth_cache_clear(struct auth_cache *c);
size_t auth_cache_count(const struct auth_cache *c);
const struct auth_cache_stats *auth_cache_stats(const struct auth_cache *c);

/* ---- single-flight ---- */

/* The flight in progress for key, or NULL. */
struct auth_flight *auth_cache_flight(struct auth_cache *c,
				      const unsigned char key[AUTH_CACHE_KEY_LEN]);
/* Opens a flight for key; there must be none (check auth_cache_flight).
 * data is the owner's (its API request, say), never touched here. */
struct auth_flight *auth_cache_flight_begin(struct auth_cache *c,
					    const unsigned char key[AUTH_CACHE_KEY_LEN],
					    void *data);
void *auth_flight_data(const struct auth_flight *f);
const unsigned char *auth_flight_key(const struct auth_flight *f);
size_t auth_flight_n_waiters(const struct auth_flight *f);
/* Adds a waiter, woken by auth_flight_finish in the order they joined. */
struct auth_waiter *auth_flight_wait(struct auth_flight *f, auth_cache_wake_fn wake, void *arg);
/* Removes a waiter that has not been woken; it never will be. The flight
 * goes on (its result will still fill the cache). */
void auth_waiter_cancel(struct auth_waiter *w);
/* Closes the flight (a new one for the same key may begin from then on,
 * even from a wake callback) and wakes every waiter with result. A wake
 * callback may cancel waiters not woken yet. f is freed. */
void auth_flight_finish(struct auth_flight *f, void *result);
/* Closes the flight without waking anyone (the owner is going away);
 * release (if not NULL) gets each waiter's arg, to free what it holds. */
void auth_flight_abandon(struct auth_flight *f, void (*release)(void *arg));

#endif
