#include "k8s/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "k8s/api.h"
#include "k8s/client.h"
#include "k8s/watch.h"
#include "util/log.h"
#include "util/xalloc.h"

#define K8S_CONNECTORS_API "/apis/connectors.alauda.io/v1alpha1"
#define K8S_SECRET_TYPE_TOKEN "cpaas.io/distribution-registry-token"
#define K8S_SECRET_TYPE_BASIC "kubernetes.io/basic-auth"
/* namespace (63) + '/' + name (253), with room to spare */
#define K8S_MAX_KEY 512

/* ---- a small string-keyed hash table ---- */

struct k8s_hnode {
	struct k8s_hnode *next;
	uint32_t hash;
	char *key; /* "ns/name" */
};

struct k8s_table {
	struct k8s_hnode **b;
	size_t nb, n;
};

static uint32_t k8s_hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 16777619u;
	return h;
}

static struct k8s_hnode *k8s_table_find(const struct k8s_table *t, const char *key, size_t n)
{
	uint32_t h = k8s_hash(key, n);

	if (!t->nb)
		return NULL;
	for (struct k8s_hnode *e = t->b[h & (t->nb - 1)]; e; e = e->next)
		if (e->hash == h && strlen(e->key) == n && memcmp(e->key, key, n) == 0)
			return e;
	return NULL;
}

static void k8s_table_insert(struct k8s_table *t, struct k8s_hnode *e)
{
	if (t->n >= t->nb) {
		size_t nb = t->nb ? t->nb * 2 : 16;
		struct k8s_hnode **b = x_calloc(nb, sizeof(*b));
		for (size_t i = 0; i < t->nb; i++) {
			while (t->b[i]) {
				struct k8s_hnode *x = t->b[i];
				t->b[i] = x->next;
				x->next = b[x->hash & (nb - 1)];
				b[x->hash & (nb - 1)] = x;
			}
		}
		free(t->b);
		t->b = b;
		t->nb = nb;
	}
	e->hash = k8s_hash(e->key, strlen(e->key));
	e->next = t->b[e->hash & (t->nb - 1)];
	t->b[e->hash & (t->nb - 1)] = e;
	t->n++;
}

static void k8s_table_remove(struct k8s_table *t, struct k8s_hnode *e)
{
	struct k8s_hnode **pp = &t->b[e->hash & (t->nb - 1)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	t->n--;
}

static char *k8s_key(const char *ns, const char *name)
{
	size_t n = strlen(ns) + strlen(name) + 2;
	char *k = x_malloc(n);

	snprintf(k, n, "%s/%s", ns, name);
	return k;
}

/* ---- state ---- */

struct k8s_store;
struct k8s_feed;

struct k8s_fetch {
	struct k8s_store *s;
	struct k8s_sec_ent *ent;
	struct k8s_request *req;
	struct event *timer;
	unsigned failures;
};

/* A Secret some Connector names; loaded when its data is known. */
struct k8s_sec_ent {
	struct k8s_hnode h;
	char *ns, *name;
	unsigned refs;
	bool loaded;
	unsigned seen_gen;
	char *rv, *type, *username, *password;
	unsigned char *ca_pem;
	size_t ca_pem_len, n_ca_keys;
	struct k8s_fetch *fetch;
};

struct k8s_conn_ent {
	struct k8s_hnode h;
	struct k8s_feed *feed;
	unsigned seen_gen;
	char *ns, *name, *class_name, *rv;
	char *invalid;              /* why the object cannot be used, or NULL */
	struct url_base url;
	char *secret_ns, *secret_name, *ca_secret_name;
	int64_t generation;
	char *status_json;          /* the object's .status as JSON text, or NULL */
	struct connector *built;
	enum k8s_store_problem problem; /* of built */
};

/* One list+watch: Connectors or Secrets of one scope. */
struct k8s_feed {
	struct k8s_store *s;
	bool secrets;
	char *ns;          /* NULL: all namespaces */
	struct k8s_watch *w;
	struct k8s_feed *secret_feed; /* of a Connector feed: started after its first list */
};

struct k8s_store {
	struct event_base *base;
	struct k8s_client *client;
	struct k8s_store_opts o;
	struct k8s_feed *feeds; /* connector feed, secret feed, per scope */
	size_t n_feeds;
	struct k8s_table conns, secrets;
	uint64_t rng;                 /* the Secret GETs' backoff */
	struct k8s_watch_stats wstats; /* all feeds', and the GETs' retries */
	unsigned long secret_gets;
	k8s_store_listener_fn listener;
	void *listener_arg;
};

static void k8s_fetch_start(struct k8s_store *s, struct k8s_sec_ent *e);

static bool k8s_feed_covers(const struct k8s_feed *f, const char *ns)
{
	return !f->ns || strcmp(f->ns, ns) == 0;
}

static struct k8s_feed *k8s_secret_feed_for(struct k8s_store *s, const char *ns)
{
	for (size_t i = 0; i < s->n_feeds; i++)
		if (s->feeds[i].secrets && k8s_feed_covers(&s->feeds[i], ns))
			return &s->feeds[i];
	return NULL;
}

static void k8s_notify(struct k8s_store *s, enum k8s_store_change what, const char *ns,
		       const char *name)
{
	if (s->listener)
		s->listener(s->listener_arg, what, ns, name);
}

/* ---- secrets ---- */

static void k8s_sec_clear(struct k8s_sec_ent *e)
{
	if (e->password) {
		OPENSSL_cleanse(e->password, strlen(e->password));
		free(e->password);
	}
	free(e->rv);
	free(e->type);
	free(e->username);
	free(e->ca_pem);
	e->rv = e->type = e->username = e->password = NULL;
	e->ca_pem = NULL;
	e->ca_pem_len = e->n_ca_keys = 0;
	e->loaded = false;
}

static void k8s_fetch_free(struct k8s_fetch *ft)
{
	if (!ft)
		return;
	k8s_request_cancel(ft->req);
	event_free(ft->timer);
	ft->ent->fetch = NULL;
	free(ft);
}

static void k8s_sec_free(struct k8s_sec_ent *e)
{
	k8s_fetch_free(e->fetch);
	k8s_sec_clear(e);
	free(e->h.key);
	free(e->ns);
	free(e->name);
	free(e);
}

/* Connectors that use this Secret get a fresh struct connector. */
static void k8s_invalidate_users(struct k8s_store *s, const struct k8s_sec_ent *e)
{
	for (size_t i = 0; i < s->conns.nb; i++) {
		for (struct k8s_hnode *h = s->conns.b[i]; h; h = h->next) {
			struct k8s_conn_ent *c = (struct k8s_conn_ent *)h;
			if (!c->built || !c->secret_ns || strcmp(c->ns, e->ns) != 0)
				continue;
			if ((c->secret_name && strcmp(c->secret_name, e->name) == 0) ||
			    (c->ca_secret_name && strcmp(c->ca_secret_name, e->name) == 0)) {
				connector_unref(c->built);
				c->built = NULL;
				k8s_notify(s, K8S_STORE_CONNECTOR_CHANGED, c->ns, c->name);
			}
		}
	}
}

static void k8s_sec_acquire(struct k8s_store *s, const char *ns, const char *name)
{
	char *key = k8s_key(ns, name);
	struct k8s_sec_ent *e = (struct k8s_sec_ent *)k8s_table_find(&s->secrets, key, strlen(key));
	struct k8s_feed *f;

	if (e) {
		free(key);
		e->refs++;
		return;
	}
	e = x_new(struct k8s_sec_ent);
	e->h.key = key;
	e->ns = x_strdup(ns);
	e->name = x_strdup(name);
	e->refs = 1;
	k8s_table_insert(&s->secrets, &e->h);
	/* Once the Secret list has begun, it may already be past this one. */
	f = k8s_secret_feed_for(s, ns);
	if (f && k8s_watch_started(f->w))
		k8s_fetch_start(s, e);
}

static void k8s_sec_release(struct k8s_store *s, const char *ns, const char *name)
{
	char key[K8S_MAX_KEY];
	int n = snprintf(key, sizeof(key), "%s/%s", ns, name);
	struct k8s_sec_ent *e;

	if (n < 0 || (size_t)n >= sizeof(key))
		return;
	e = (struct k8s_sec_ent *)k8s_table_find(&s->secrets, key, (size_t)n);
	if (!e || --e->refs > 0)
		return;
	k8s_table_remove(&s->secrets, &e->h);
	k8s_sec_free(e);
}

/* Applies a parsed Secret to its entry; returns true when it changed. */
static bool k8s_sec_apply(struct k8s_sec_ent *e, struct k8s_secret *sec, unsigned gen)
{
	e->seen_gen = gen;
	if (e->loaded && e->rv && sec->meta.resource_version &&
	    strcmp(e->rv, sec->meta.resource_version) == 0)
		return false;
	k8s_sec_clear(e);
	e->loaded = true;
	e->rv = sec->meta.resource_version ? x_strdup(sec->meta.resource_version) : NULL;
	e->type = sec->type;
	e->username = sec->username;
	e->password = sec->password;
	e->ca_pem = sec->ca_pem;
	e->ca_pem_len = sec->ca_pem_len;
	e->n_ca_keys = sec->n_ca_keys;
	sec->type = sec->username = sec->password = NULL;
	sec->ca_pem = NULL;
	return true;
}

static void k8s_sec_unload(struct k8s_store *s, struct k8s_sec_ent *e)
{
	if (!e->loaded)
		return;
	k8s_sec_clear(e);
	log_info("k8s_secret_deleted", "ns=%s name=%s", e->ns, e->name);
	k8s_invalidate_users(s, e);
}

/* A Secret from a list, an event or a GET: kept only when referenced. */
static void k8s_secret_item(struct k8s_store *s, struct k8s_feed *f, const struct json_doc *d, int tok,
			    bool deleted)
{
	char key[K8S_MAX_KEY];
	ssize_t nl = json_string(d, json_path(d, tok, "metadata.namespace"), key, sizeof(key));
	ssize_t nn;
	struct k8s_sec_ent *e;
	struct k8s_secret sec = { 0 };
	unsigned gen = f ? k8s_watch_gen(f->w) : 0;
	char err[256];

	if (nl <= 0 || (size_t)nl + 2 >= sizeof(key))
		return;
	key[nl] = '/';
	nn = json_string(d, json_path(d, tok, "metadata.name"), key + nl + 1,
			 sizeof(key) - (size_t)nl - 1);
	if (nn <= 0)
		return;
	e = (struct k8s_sec_ent *)k8s_table_find(&s->secrets, key, (size_t)nl + 1 + (size_t)nn);
	if (!e)
		return; /* nobody uses it: not kept */
	if (deleted) {
		e->seen_gen = gen;
		k8s_sec_unload(s, e);
		return;
	}
	if (k8s_secret_parse(d, tok, &sec, err, sizeof(err)) != 0) {
		log_error("k8s_secret_invalid", "ns=%s name=%s error=\"%s\"", e->ns, e->name, err);
		e->seen_gen = gen;
		k8s_sec_unload(s, e);
	} else if (k8s_sec_apply(e, &sec, gen)) {
		log_info("k8s_secret_updated", "ns=%s name=%s rv=%s", e->ns, e->name,
			 e->rv ? e->rv : "");
		k8s_invalidate_users(s, e);
	}
	k8s_secret_free(&sec);
}

/* ---- single Secret GET ---- */

static void k8s_fetch_send(struct k8s_fetch *ft);

static void k8s_fetch_retry(struct k8s_fetch *ft, unsigned retry_after_s)
{
	struct k8s_store *s = ft->s;
	unsigned ms = k8s_backoff_ms(&s->rng, s->o.backoff_min_ms, s->o.backoff_max_ms,
				     &ft->failures, retry_after_s);
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	s->wstats.retries++;
	s->wstats.last_backoff_ms = ms;
	evtimer_add(ft->timer, &tv);
}

static void k8s_fetch_on_response(void *arg, const struct k8s_response *r)
{
	struct k8s_fetch *ft = arg;
	struct k8s_store *s = ft->s;
	struct k8s_sec_ent *e = ft->ent;
	struct k8s_feed *f = k8s_secret_feed_for(s, e->ns);
	struct json_doc d = { 0 };
	char err[256];

	ft->req = NULL;
	if (r->status == 404) {
		log_warn("k8s_secret_missing", "ns=%s name=%s", e->ns, e->name);
		k8s_fetch_free(ft);
		k8s_invalidate_users(s, e);
		return;
	}
	if (r->status == 200 && json_parse(&d, r->body, r->len, K8S_API_MAX_TOKENS, err, sizeof(err)) == 0) {
		/* A watch event that arrived meanwhile is newer: keep it. */
		if (!e->loaded)
			k8s_secret_item(s, f, &d, 0, false);
		json_doc_free(&d);
		k8s_fetch_free(ft);
		k8s_invalidate_users(s, e);
		return;
	}
	if (r->status == 200)
		log_error("k8s_secret_get_failed", "ns=%s name=%s error=\"%s\"", e->ns, e->name, err);
	else
		log_error("k8s_secret_get_failed", "ns=%s name=%s status=%d error=\"%s\"", e->ns,
			  e->name, r->status, r->error ? r->error : "");
	k8s_fetch_retry(ft, r->retry_after);
}

static void k8s_fetch_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	k8s_fetch_send(arg);
}

static void k8s_fetch_send(struct k8s_fetch *ft)
{
	struct evbuffer *p = evbuffer_new();
	struct k8s_sec_ent *e = ft->ent;
	char *path;
	size_t n;

	evbuffer_add_printf(p, "/api/v1/namespaces/");
	k8s_client_escape(p, e->ns);
	evbuffer_add_printf(p, "/secrets/");
	k8s_client_escape(p, e->name);
	n = evbuffer_get_length(p);
	path = x_malloc(n + 1);
	evbuffer_remove(p, path, n);
	path[n] = '\0';
	evbuffer_free(p);
	ft->s->secret_gets++;
	ft->req = k8s_client_get(ft->s->client, path, k8s_fetch_on_response, ft);
	free(path);
}

static void k8s_fetch_start(struct k8s_store *s, struct k8s_sec_ent *e)
{
	struct k8s_fetch *ft;

	if (e->fetch)
		return;
	ft = x_new(struct k8s_fetch);
	ft->s = s;
	ft->ent = e;
	ft->timer = evtimer_new(s->base, k8s_fetch_on_timer, ft);
	if (!ft->timer)
		abort();
	e->fetch = ft;
	k8s_fetch_send(ft);
}

/* ---- connectors ---- */

static bool k8s_conn_is_oci(const struct k8s_conn_ent *c)
{
	return c->class_name && strcmp(c->class_name, "oci") == 0;
}

/* Only "oci" connectors' Secrets are kept: other classes' credentials are
 * none of ocigate's business. */
static void k8s_conn_refs(struct k8s_store *s, struct k8s_conn_ent *c, bool acquire)
{
	if (!k8s_conn_is_oci(c) || !c->secret_ns || strcmp(c->secret_ns, c->ns) != 0)
		return; /* a cross-namespace ref is refused anyway, see store.h */
	if (c->secret_name)
		(acquire ? k8s_sec_acquire : k8s_sec_release)(s, c->ns, c->secret_name);
	if (c->ca_secret_name)
		(acquire ? k8s_sec_acquire : k8s_sec_release)(s, c->ns, c->ca_secret_name);
}

static void k8s_conn_clear(struct k8s_store *s, struct k8s_conn_ent *c)
{
	k8s_conn_refs(s, c, false);
	connector_unref(c->built);
	c->built = NULL;
	free(c->class_name);
	free(c->rv);
	free(c->invalid);
	free(c->status_json);
	free(c->secret_ns);
	free(c->secret_name);
	free(c->ca_secret_name);
	url_base_free(&c->url);
	c->class_name = c->rv = c->invalid = c->secret_ns = c->secret_name = NULL;
	c->ca_secret_name = c->status_json = NULL;
}

static void k8s_conn_free(struct k8s_store *s, struct k8s_conn_ent *c)
{
	k8s_conn_clear(s, c);
	free(c->h.key);
	free(c->ns);
	free(c->name);
	free(c);
}

static void k8s_conn_remove(struct k8s_store *s, struct k8s_conn_ent *c)
{
	log_info("connector_deleted", "ns=%s name=%s", c->ns, c->name);
	k8s_table_remove(&s->conns, &c->h);
	k8s_notify(s, K8S_STORE_CONNECTOR_DELETED, c->ns, c->name);
	k8s_conn_free(s, c);
}

/* Takes what the entry keeps from a parsed Connector. */
static void k8s_conn_fill(struct k8s_store *s, struct k8s_conn_ent *c, struct k8s_connector *kc,
			  const char *invalid, const char *status_json)
{
	c->class_name = kc->class_name;
	kc->class_name = NULL;
	c->rv = kc->meta.resource_version ? x_strdup(kc->meta.resource_version) : NULL;
	c->generation = kc->meta.generation;
	c->status_json = status_json ? x_strdup(status_json) : NULL;
	if (invalid) {
		c->invalid = x_strdup(invalid);
	} else {
		c->url = kc->address;
		memset(&kc->address, 0, sizeof(kc->address));
		c->secret_name = kc->secret_name;
		kc->secret_name = NULL;
		c->secret_ns = x_strdup(kc->secret_namespace ? kc->secret_namespace : c->ns);
		c->ca_secret_name = kc->ca_secret_name;
		kc->ca_secret_name = NULL;
	}
	k8s_conn_refs(s, c, true);
}

static char *k8s_status_text(const struct json_doc *d, int tok)
{
	int st = json_get(d, tok, "status");
	struct og_str raw;

	if (!json_is_object(d, st))
		return NULL;
	raw = json_raw(d, st);
	return x_strndup(raw.p, raw.n);
}

static bool k8s_str_same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* True when a new version of the object changes nothing the connector is
 * built from (only its status, labels or annotations moved). */
static bool k8s_conn_same_spec(const struct k8s_conn_ent *c, const struct k8s_connector *kc,
			       const char *invalid)
{
	if (!k8s_str_same(c->class_name, kc->class_name) || !k8s_str_same(c->invalid, invalid))
		return false;
	if (invalid)
		return true;
	return k8s_str_same(c->url.text, kc->address.text) &&
	       k8s_str_same(c->secret_name, kc->secret_name) &&
	       k8s_str_same(c->secret_ns, kc->secret_namespace ? kc->secret_namespace : c->ns) &&
	       k8s_str_same(c->ca_secret_name, kc->ca_secret_name);
}

static void k8s_conn_touch(struct k8s_conn_ent *c, const struct k8s_connector *kc,
			   const char *status_json)
{
	free(c->rv);
	free(c->status_json);
	c->rv = kc->meta.resource_version ? x_strdup(kc->meta.resource_version) : NULL;
	c->status_json = status_json ? x_strdup(status_json) : NULL;
	c->generation = kc->meta.generation;
}

static void k8s_connector_item(struct k8s_store *s, struct k8s_feed *f, const struct json_doc *d, int tok,
			       bool deleted)
{
	struct k8s_connector kc = { 0 };
	struct k8s_conn_ent *c;
	char err[256], key[K8S_MAX_KEY];
	int rc = k8s_connector_parse(d, tok, &kc, err, sizeof(err));
	char *status_json = NULL;
	int n;

	if (!kc.meta.ns || !kc.meta.name) {
		log_error("connector_invalid", "error=\"%s\"", rc ? err : "no name");
		goto out;
	}
	n = snprintf(key, sizeof(key), "%s/%s", kc.meta.ns, kc.meta.name);
	if (n < 0 || (size_t)n >= sizeof(key))
		goto out;
	c = (struct k8s_conn_ent *)k8s_table_find(&s->conns, key, (size_t)n);
	if (deleted) {
		if (c)
			k8s_conn_remove(s, c);
		goto out;
	}
	if (rc != 0)
		log_error("connector_invalid", "ns=%s name=%s error=\"%s\"", kc.meta.ns, kc.meta.name, err);
	status_json = k8s_status_text(d, tok);
	if (c) {
		c->seen_gen = k8s_watch_gen(f->w);
		if (c->rv && kc.meta.resource_version && strcmp(c->rv, kc.meta.resource_version) == 0)
			goto out;
		if (k8s_conn_same_spec(c, &kc, rc ? err : NULL)) {
			/* A status write or a label: the connector, its pool
			 * and its tokens stay. */
			k8s_conn_touch(c, &kc, status_json);
			k8s_notify(s, K8S_STORE_CONNECTOR_STATUS, c->ns, c->name);
			goto out;
		}
		/* The new references first, so that a Secret both versions
		 * use is never dropped and fetched again. */
		struct k8s_conn_ent prev = *c;
		c->class_name = c->rv = c->invalid = c->secret_ns = c->secret_name = NULL;
		c->ca_secret_name = NULL;
		memset(&c->url, 0, sizeof(c->url));
		c->built = NULL;
		c->status_json = NULL;
		k8s_conn_fill(s, c, &kc, rc ? err : NULL, status_json);
		k8s_conn_clear(s, &prev);
		log_info("connector_updated", "ns=%s name=%s class=%s generation=%lld", c->ns, c->name,
			 c->class_name ? c->class_name : "", (long long)c->generation);
		k8s_notify(s, K8S_STORE_CONNECTOR_CHANGED, c->ns, c->name);
		goto out;
	}
	c = x_new(struct k8s_conn_ent);
	c->feed = f;
	c->seen_gen = k8s_watch_gen(f->w);
	c->ns = x_strdup(kc.meta.ns);
	c->name = x_strdup(kc.meta.name);
	c->h.key = x_strdup(key);
	k8s_table_insert(&s->conns, &c->h);
	k8s_conn_fill(s, c, &kc, rc ? err : NULL, status_json);
	log_info("connector_added", "ns=%s name=%s class=%s generation=%lld", c->ns, c->name,
		 c->class_name ? c->class_name : "", (long long)c->generation);
	k8s_notify(s, K8S_STORE_CONNECTOR_CHANGED, c->ns, c->name);
out:
	free(status_json);
	k8s_connector_free(&kc);
}

/* After a complete list: whatever the list did not mention is gone. */
static void k8s_feed_sweep(struct k8s_store *s, struct k8s_feed *f)
{
	struct k8s_table *t = f->secrets ? &s->secrets : &s->conns;
	unsigned gen = k8s_watch_gen(f->w);

	for (size_t i = 0; i < t->nb; i++) {
		struct k8s_hnode *h = t->b[i];
		while (h) {
			struct k8s_hnode *next = h->next;
			if (f->secrets) {
				struct k8s_sec_ent *e = (struct k8s_sec_ent *)h;
				if (e->loaded && e->seen_gen != gen && k8s_feed_covers(f, e->ns))
					k8s_sec_unload(s, e);
			} else {
				struct k8s_conn_ent *c = (struct k8s_conn_ent *)h;
				/* Removing may free secret entries, never connectors:
				 * next stays valid. */
				if (c->feed == f && c->seen_gen != gen)
					k8s_conn_remove(s, c);
			}
			h = next;
		}
	}
}

/* ---- list and watch (k8s/watch.c) ---- */

static void k8s_feed_item(void *arg, struct k8s_watch *w, const struct json_doc *d, int tok,
			  bool deleted)
{
	struct k8s_feed *f = arg;

	(void)w;
	if (f->secrets)
		k8s_secret_item(f->s, f, d, tok, deleted);
	else
		k8s_connector_item(f->s, f, d, tok, deleted);
}

static void k8s_feed_listed(void *arg, struct k8s_watch *w)
{
	struct k8s_feed *f = arg;

	(void)w;
	k8s_feed_sweep(f->s, f);
	if (f->secret_feed)
		k8s_watch_start(f->secret_feed->w);
	k8s_notify(f->s, K8S_STORE_RESYNCED, NULL, NULL);
}

static const struct k8s_watch_ops k8s_feed_ops = {
	.item = k8s_feed_item,
	.listed = k8s_feed_listed,
};

/* ---- the store ---- */

static void k8s_feed_init(struct k8s_store *s, struct k8s_feed *f, bool secrets, const char *ns)
{
	char buf[512];
	struct k8s_watch_opts wo = {
		.client = s->client,
		.list_kind = secrets ? "Secret" : "Connector",
		.kind = secrets ? "secrets" : "connectors",
		.ns = ns,
		.watch_timeout_s = s->o.watch_timeout_s,
		.backoff_min_ms = s->o.backoff_min_ms,
		.backoff_max_ms = s->o.backoff_max_ms,
		.page_size = s->o.page_size,
		.stats = &s->wstats,
	};

	f->s = s;
	f->secrets = secrets;
	f->ns = ns ? x_strdup(ns) : NULL;
	if (secrets && ns)
		snprintf(buf, sizeof(buf), "/api/v1/namespaces/%s/secrets", ns);
	else if (secrets)
		snprintf(buf, sizeof(buf), "/api/v1/secrets");
	else if (ns)
		snprintf(buf, sizeof(buf), K8S_CONNECTORS_API "/namespaces/%s/connectors", ns);
	else
		snprintf(buf, sizeof(buf), K8S_CONNECTORS_API "/connectors");
	wo.path = buf;
	f->w = k8s_watch_new(s->base, &wo, &k8s_feed_ops, f);
}

struct k8s_store *k8s_store_new(struct event_base *base, struct k8s_client *client,
				const struct k8s_store_opts *o)
{
	struct k8s_store *s = x_new(struct k8s_store);
	size_t scopes = o->n_namespaces ? o->n_namespaces : 1;

	s->base = base;
	s->client = client;
	s->o = *o;
	s->o.namespaces = NULL;
	if (!s->o.watch_timeout_s)
		s->o.watch_timeout_s = 300;
	if (!s->o.backoff_min_ms)
		s->o.backoff_min_ms = 500;
	if (!s->o.backoff_max_ms)
		s->o.backoff_max_ms = 30000;
	if (!s->o.page_size)
		s->o.page_size = 500;
	s->rng = k8s_rand_seed(s);
	s->n_feeds = 2 * scopes;
	s->feeds = x_calloc(s->n_feeds, sizeof(*s->feeds));
	for (size_t i = 0; i < scopes; i++) {
		const char *ns = o->n_namespaces ? o->namespaces[i] : NULL;
		k8s_feed_init(s, &s->feeds[2 * i], false, ns);
		k8s_feed_init(s, &s->feeds[2 * i + 1], true, ns);
		s->feeds[2 * i].secret_feed = &s->feeds[2 * i + 1];
	}
	for (size_t i = 0; i < scopes; i++)
		k8s_watch_start(s->feeds[2 * i].w);
	return s;
}

void k8s_store_free(struct k8s_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_feeds; i++) {
		k8s_watch_free(s->feeds[i].w);
		s->feeds[i].w = NULL;
	}
	for (size_t i = 0; i < s->conns.nb; i++) {
		while (s->conns.b[i]) {
			struct k8s_conn_ent *c = (struct k8s_conn_ent *)s->conns.b[i];
			k8s_table_remove(&s->conns, &c->h);
			k8s_conn_free(s, c);
		}
	}
	for (size_t i = 0; i < s->secrets.nb; i++) {
		while (s->secrets.b[i]) {
			struct k8s_sec_ent *e = (struct k8s_sec_ent *)s->secrets.b[i];
			k8s_table_remove(&s->secrets, &e->h);
			k8s_sec_free(e);
		}
	}
	for (size_t i = 0; i < s->n_feeds; i++)
		free(s->feeds[i].ns);
	free(s->feeds);
	free(s->conns.b);
	free(s->secrets.b);
	free(s);
}

bool k8s_store_synced(const struct k8s_store *s)
{
	for (size_t i = 0; i < s->n_feeds; i++)
		if (!k8s_watch_synced(s->feeds[i].w))
			return false;
	return true;
}

/* ---- building connectors ---- */

static struct connector *k8s_unavailable(const char *ns, const char *name, const char *address,
					 const char *msg)
{
	struct connector_spec spec = {
		.ns = ns, .name = name, .host = "", .address = address ? address : "",
		.path_prefix = "", .unavailable = msg,
	};
	return connector_new(&spec);
}

/* The Secret named by a connector, or NULL with why in msg. */
static struct k8s_sec_ent *k8s_conn_secret(struct k8s_store *s, const struct k8s_conn_ent *c,
					   const char *name, const char *what,
					   enum k8s_store_problem *problem, char *msg, size_t cap)
{
	char key[K8S_MAX_KEY];
	int n = snprintf(key, sizeof(key), "%s/%s", c->ns, name);
	struct k8s_sec_ent *e = NULL;
	struct k8s_feed *f = k8s_secret_feed_for(s, c->ns);

	if (n > 0 && (size_t)n < sizeof(key))
		e = (struct k8s_sec_ent *)k8s_table_find(&s->secrets, key, (size_t)n);
	if (e && e->loaded)
		return e;
	if ((e && e->fetch) || !f || !k8s_watch_synced(f->w)) {
		snprintf(msg, cap, "connector %s/%s: %s Secret %s is not loaded yet", c->ns, c->name,
			 what, name);
		*problem = K8S_STORE_NOT_LOADED;
	} else {
		snprintf(msg, cap, "connector %s/%s: %s Secret %s/%s not found", c->ns, c->name, what,
			 c->ns, name);
		*problem = K8S_STORE_SECRET_MISSING;
	}
	return NULL;
}

static bool k8s_auth_type_ok(const char *type)
{
	return type && (strcmp(type, K8S_SECRET_TYPE_TOKEN) == 0 ||
			strcmp(type, K8S_SECRET_TYPE_BASIC) == 0);
}

static struct connector *k8s_conn_build(struct k8s_store *s, struct k8s_conn_ent *c)
{
	char msg[512];
	struct k8s_sec_ent *auth = NULL, *ca = NULL;
	struct connector_spec spec = { 0 };

	if (c->invalid) {
		snprintf(msg, sizeof(msg), "connector %s/%s is invalid: %s", c->ns, c->name, c->invalid);
		c->problem = K8S_STORE_INVALID;
		return k8s_unavailable(c->ns, c->name, NULL, msg);
	}
	if (c->secret_name && strcmp(c->secret_ns, c->ns) != 0) {
		snprintf(msg, sizeof(msg), "connector %s/%s: secretRef to namespace %s is not allowed",
			 c->ns, c->name, c->secret_ns);
		c->problem = K8S_STORE_SECRET_INVALID;
		return k8s_unavailable(c->ns, c->name, c->url.text, msg);
	}
	if (c->secret_name) {
		auth = k8s_conn_secret(s, c, c->secret_name, "auth", &c->problem, msg, sizeof(msg));
		if (!auth)
			return k8s_unavailable(c->ns, c->name, c->url.text, msg);
		if (!k8s_auth_type_ok(auth->type)) {
			snprintf(msg, sizeof(msg), "connector %s/%s: Secret %s/%s has type %s, expected "
				 K8S_SECRET_TYPE_TOKEN " or " K8S_SECRET_TYPE_BASIC, c->ns, c->name,
				 auth->ns, auth->name, auth->type ? auth->type : "(none)");
			c->problem = K8S_STORE_SECRET_INVALID;
			return k8s_unavailable(c->ns, c->name, c->url.text, msg);
		}
		if (!auth->username || !auth->password) {
			snprintf(msg, sizeof(msg), "connector %s/%s: Secret %s/%s has no key \"%s\"", c->ns,
				 c->name, auth->ns, auth->name, auth->username ? "password" : "username");
			c->problem = K8S_STORE_SECRET_INVALID;
			return k8s_unavailable(c->ns, c->name, c->url.text, msg);
		}
	}
	if (c->ca_secret_name) {
		ca = k8s_conn_secret(s, c, c->ca_secret_name, "CA", &c->problem, msg, sizeof(msg));
		if (!ca)
			return k8s_unavailable(c->ns, c->name, c->url.text, msg);
		if (!ca->n_ca_keys) {
			snprintf(msg, sizeof(msg), "connector %s/%s: Secret %s/%s has no key ending in .crt or .pem",
				 c->ns, c->name, ca->ns, ca->name);
			c->problem = K8S_STORE_SECRET_INVALID;
			return k8s_unavailable(c->ns, c->name, c->url.text, msg);
		}
	}
	c->problem = K8S_STORE_OK;
	spec.ns = c->ns;
	spec.name = c->name;
	spec.https = c->url.https;
	spec.host = c->url.host;
	spec.port = c->url.port;
	spec.path_prefix = c->url.path_prefix;
	spec.address = c->url.text;
	spec.username = auth ? auth->username : NULL;
	spec.password = auth ? auth->password : NULL;
	spec.ca_pem = ca ? ca->ca_pem : NULL;
	spec.ca_pem_len = ca ? ca->ca_pem_len : 0;
	return connector_new(&spec);
}

struct connector *k8s_store_find_connector(struct k8s_store *s, struct og_str ns, struct og_str name)
{
	char key[K8S_MAX_KEY];
	struct k8s_conn_ent *c;
	bool synced = true;

	if (ns.n + name.n + 2 > sizeof(key) || !ns.n || !name.n)
		return NULL;
	memcpy(key, ns.p, ns.n);
	key[ns.n] = '/';
	memcpy(key + ns.n + 1, name.p, name.n);
	key[ns.n + 1 + name.n] = '\0';
	c = (struct k8s_conn_ent *)k8s_table_find(&s->conns, key, ns.n + 1 + name.n);
	if (!c) {
		for (size_t i = 0; i < s->n_feeds; i += 2) {
			const char *fns = s->feeds[i].ns;
			if (!fns || (strlen(fns) == ns.n && memcmp(fns, ns.p, ns.n) == 0))
				synced = k8s_watch_synced(s->feeds[i].w);
		}
		if (synced)
			return NULL;
		/* Not known yet is not "does not exist": 503, not 404. */
		key[ns.n] = '\0';
		return k8s_unavailable(key, key + ns.n + 1, NULL, "connectors are not loaded yet");
	}
	if (!k8s_conn_is_oci(c))
		return NULL;
	if (!c->built)
		c->built = k8s_conn_build(s, c);
	return connector_ref(c->built);
}

void k8s_store_get_stats(const struct k8s_store *s, struct k8s_store_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->lists = s->wstats.lists;
	out->relists = s->wstats.relists;
	out->watches = s->wstats.watches;
	out->events = s->wstats.events;
	out->retries = s->wstats.retries;
	out->last_backoff_ms = s->wstats.last_backoff_ms;
	out->secret_gets = s->secret_gets;
	out->connectors = s->conns.n;
	out->secrets = s->secrets.n;
}

void k8s_store_set_listener(struct k8s_store *s, k8s_store_listener_fn fn, void *arg)
{
	s->listener = fn;
	s->listener_arg = arg;
}

static void k8s_store_fill_info(struct k8s_store *s, struct k8s_conn_ent *c,
				struct k8s_store_connector_info *out)
{
	memset(out, 0, sizeof(*out));
	out->ns = c->ns;
	out->name = c->name;
	out->class_name = c->class_name;
	out->resource_version = c->rv;
	out->generation = c->generation;
	out->status_json = c->status_json;
	out->has_secret_ref = c->secret_name != NULL;
	out->problem = K8S_STORE_OK;
	if (!k8s_conn_is_oci(c))
		return;
	if (!c->built)
		c->built = k8s_conn_build(s, c);
	out->problem = c->problem;
	out->message = c->built->unavailable;
}

int k8s_store_connector_info(struct k8s_store *s, const char *ns, const char *name,
			     struct k8s_store_connector_info *out)
{
	char key[K8S_MAX_KEY];
	int n = snprintf(key, sizeof(key), "%s/%s", ns, name);
	struct k8s_conn_ent *c = NULL;

	if (n > 0 && (size_t)n < sizeof(key))
		c = (struct k8s_conn_ent *)k8s_table_find(&s->conns, key, (size_t)n);
	if (!c)
		return -1;
	k8s_store_fill_info(s, c, out);
	return 0;
}

void k8s_store_foreach_connector(struct k8s_store *s, k8s_store_connector_fn fn, void *arg)
{
	struct k8s_store_connector_info info;

	for (size_t i = 0; i < s->conns.nb; i++) {
		for (struct k8s_hnode *h = s->conns.b[i]; h; h = h->next) {
			k8s_store_fill_info(s, (struct k8s_conn_ent *)h, &info);
			fn(arg, &info);
		}
	}
}
