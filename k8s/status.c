#include "k8s/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "k8s/api.h"
#include "util/json.h"
#include "util/json_write.h"
#include "util/xalloc.h"

enum { COND_SECRET, COND_LIVENESS, COND_AUTH, COND_READY, N_OURS };

static const char *const k8s_status_types[N_OURS] = {
	"SecretReady", "LivenessReady", "AuthReady", "Ready",
};

static bool k8s_status_is_ours(const char *type)
{
	for (size_t i = 0; i < N_OURS; i++)
		if (strcmp(type, k8s_status_types[i]) == 0)
			return true;
	return false;
}

/* ---- reading ---- */

static void k8s_cond_free(struct k8s_condition *c)
{
	free(c->type);
	free(c->status);
	free(c->reason);
	free(c->message);
	free(c->last_transition);
	free(c->raw);
}

void k8s_conn_status_free(struct k8s_conn_status *st)
{
	for (size_t i = 0; i < st->n; i++)
		k8s_cond_free(&st->conds[i]);
	free(st->conds);
	free(st->url);
	memset(st, 0, sizeof(*st));
	st->observed_generation = -1;
}

static char *k8s_status_str(const struct json_doc *d, int tok)
{
	char *s = json_is_string(d, tok) ? json_strdup(d, tok) : NULL;

	return s ? s : x_strdup("");
}

static struct k8s_condition *k8s_status_add(struct k8s_conn_status *st)
{
	st->conds = x_realloc(st->conds, (st->n + 1) * sizeof(*st->conds));
	memset(&st->conds[st->n], 0, sizeof(*st->conds));
	st->conds[st->n].observed_generation = -1;
	return &st->conds[st->n++];
}

static void k8s_status_read_cond(struct k8s_conn_status *st, const struct json_doc *d, int tok)
{
	int type = json_get(d, tok, "type");
	struct k8s_condition *c = k8s_status_add(st);
	char *t = json_is_string(d, type) ? json_strdup(d, type) : NULL;

	if (!t || !json_is_object(d, tok) || !k8s_status_is_ours(t)) {
		struct og_str raw = json_raw(d, tok);
		/* json_raw gives a string without its quotes: write it whole. */
		if (json_is_string(d, tok))
			raw = og_str_make(raw.p - 1, raw.n + 2);
		c->raw = x_strndup(raw.p, raw.n);
		c->type = t ? t : x_strdup("");
		c->status = x_strdup("");
		c->reason = x_strdup("");
		c->message = x_strdup("");
		c->last_transition = x_strdup("");
		return;
	}
	c->type = t;
	c->status = k8s_status_str(d, json_get(d, tok, "status"));
	c->reason = k8s_status_str(d, json_get(d, tok, "reason"));
	c->message = k8s_status_str(d, json_get(d, tok, "message"));
	c->last_transition = k8s_status_str(d, json_get(d, tok, "lastTransitionTime"));
	if (!json_int64(d, json_get(d, tok, "observedGeneration"), &c->observed_generation))
		c->observed_generation = -1;
}

int k8s_conn_status_parse(const char *text, size_t len, struct k8s_conn_status *out, char *err,
			  size_t err_cap)
{
	struct json_doc d = { 0 };
	int conds, url, rc = -1;

	memset(out, 0, sizeof(*out));
	out->observed_generation = -1;
	if (!text)
		return 0;
	if (json_parse(&d, text, len, K8S_API_MAX_TOKENS, err, err_cap) != 0)
		goto out;
	if (!json_is_object(&d, 0)) {
		snprintf(err, err_cap, "status is %s, not an object", json_type_name(&d, 0));
		goto out;
	}
	if (!json_int64(&d, json_get(&d, 0, "observedGeneration"), &out->observed_generation))
		out->observed_generation = -1;
	url = json_path(&d, 0, "proxy.httpAddress.url");
	if (json_is_string(&d, url))
		out->url = json_strdup(&d, url);
	conds = json_get(&d, 0, "conditions");
	if (conds >= 0 && !json_is_array(&d, conds) && !json_is_null(&d, conds)) {
		snprintf(err, err_cap, "status.conditions is %s, not an array",
			 json_type_name(&d, conds));
		goto out;
	}
	for (int it = json_array_first(&d, conds); it >= 0; it = json_next(&d, it))
		k8s_status_read_cond(out, &d, it);
	rc = 0;
out:
	if (rc != 0)
		k8s_conn_status_free(out);
	json_doc_free(&d);
	return rc;
}

/* ---- computing ---- */

struct k8s_cond_value {
	const char *status, *reason;
	char message[1024];
};

static void k8s_cond_set(struct k8s_cond_value *v, const char *status, const char *reason,
			 const char *fmt, ...) OG_PRINTF(4, 5);

static void k8s_cond_set(struct k8s_cond_value *v, const char *status, const char *reason,
			 const char *fmt, ...)
{
	va_list ap;

	v->status = status;
	v->reason = reason;
	va_start(ap, fmt);
	vsnprintf(v->message, sizeof(v->message), fmt, ap);
	va_end(ap);
}

static const char *k8s_msg(const char *m)
{
	return m ? m : "";
}

static void k8s_cond_secret(const struct k8s_status_input *in, struct k8s_cond_value *v)
{
	const char *m = k8s_msg(in->problem_message);

	switch (in->problem) {
	case K8S_STORE_OK:
		if (in->has_secret_ref)
			k8s_cond_set(v, "True", "SecretFound", "the Secret has a username and a password");
		else
			k8s_cond_set(v, "True", "SecretOptional",
				     "no secretRef: the registry is accessed without credentials");
		return;
	case K8S_STORE_NOT_LOADED:
		k8s_cond_set(v, "Unknown", "SecretLoading", "%s", m);
		return;
	case K8S_STORE_INVALID:
		k8s_cond_set(v, "Unknown", "InvalidSpec", "%s", m);
		return;
	case K8S_STORE_SECRET_MISSING:
		k8s_cond_set(v, "False", "SecretNotFound", "%s", m);
		return;
	case K8S_STORE_SECRET_INVALID:
		k8s_cond_set(v, "False", "SecretInvalid", "%s", m);
		return;
	}
	k8s_cond_set(v, "Unknown", "InvalidSpec", "%s", m);
}

/* Liveness and auth cannot be told while the connector cannot be used. */
static bool k8s_cond_blocked(const struct k8s_status_input *in, struct k8s_cond_value *v)
{
	if (in->problem == K8S_STORE_INVALID) {
		k8s_cond_set(v, "Unknown", "InvalidSpec", "%s", k8s_msg(in->problem_message));
		return true;
	}
	if (in->problem != K8S_STORE_OK) {
		k8s_cond_set(v, "Unknown", "SecretNotReady",
			     "the registry is probed once the Secret is ready");
		return true;
	}
	if (in->probe == K8S_PROBE_NONE) {
		k8s_cond_set(v, "Unknown", "NotProbed", "the registry has not been probed yet");
		return true;
	}
	return false;
}

static void k8s_cond_liveness(const struct k8s_status_input *in, struct k8s_cond_value *v)
{
	if (k8s_cond_blocked(in, v))
		return;
	if (in->probe == K8S_PROBE_UNREACHABLE)
		k8s_cond_set(v, "False", "RegistryUnreachable", "GET /v2/: %s", k8s_msg(in->detail));
	else
		k8s_cond_set(v, "True", "RegistryReachable", "GET /v2/ answered HTTP %d",
			     in->http_status);
}

static void k8s_cond_auth(const struct k8s_status_input *in, struct k8s_cond_value *v)
{
	if (k8s_cond_blocked(in, v))
		return;
	switch (in->probe) {
	case K8S_PROBE_OK:
		k8s_cond_set(v, "True", in->has_secret_ref ? "CredentialsAccepted" : "AnonymousAccess",
			     "GET /v2/ answered HTTP 200");
		return;
	case K8S_PROBE_DENIED:
		k8s_cond_set(v, "False", "CredentialsRejected", "%s", k8s_msg(in->detail));
		return;
	case K8S_PROBE_TOKEN_FAILED:
		k8s_cond_set(v, "False", "TokenRequestFailed", "%s", k8s_msg(in->detail));
		return;
	case K8S_PROBE_UNEXPECTED:
		k8s_cond_set(v, "False", "UnexpectedResponse", "%s", k8s_msg(in->detail));
		return;
	case K8S_PROBE_UNREACHABLE:
	case K8S_PROBE_NONE:
		break;
	}
	k8s_cond_set(v, "Unknown", "RegistryUnreachable",
		     "the credentials are checked once the registry answers");
}

/* True when the others are; else the first one that is not, False winning
 * over Unknown, with its reason and message. */
static void k8s_cond_ready(const struct k8s_cond_value *others, struct k8s_cond_value *v)
{
	const struct k8s_cond_value *first = NULL;
	bool any_false = false;

	for (size_t i = 0; i < COND_READY; i++) {
		if (strcmp(others[i].status, "True") == 0)
			continue;
		if (!first)
			first = &others[i];
		any_false |= strcmp(others[i].status, "False") == 0;
	}
	if (!first) {
		/* What `kubectl get connector` shows for a ready one: an empty
		 * REASON column, as in the product. */
		k8s_cond_set(v, "True", "", "%s", "");
		return;
	}
	k8s_cond_set(v, any_false ? "False" : "Unknown", first->reason, "%s", first->message);
}

const struct k8s_condition *k8s_conn_status_find(const struct k8s_conn_status *st,
						 const char *type)
{
	for (size_t i = 0; i < st->n; i++)
		if (!st->conds[i].raw && strcmp(st->conds[i].type, type) == 0)
			return &st->conds[i];
	return NULL;
}

static void k8s_cond_copy_raw(struct k8s_condition *dst, const struct k8s_condition *src)
{
	dst->type = x_strdup(src->type);
	dst->status = x_strdup(src->status);
	dst->reason = x_strdup(src->reason);
	dst->message = x_strdup(src->message);
	dst->last_transition = x_strdup(src->last_transition);
	dst->observed_generation = src->observed_generation;
	dst->raw = x_strdup(src->raw);
}

void k8s_conn_status_compute(const struct k8s_conn_status *cur, const struct k8s_status_input *in,
			     struct k8s_conn_status *out)
{
	struct k8s_cond_value v[N_OURS];

	memset(out, 0, sizeof(*out));
	k8s_cond_secret(in, &v[COND_SECRET]);
	k8s_cond_liveness(in, &v[COND_LIVENESS]);
	k8s_cond_auth(in, &v[COND_AUTH]);
	k8s_cond_ready(v, &v[COND_READY]);
	out->observed_generation = in->generation;
	out->url = x_strdup(in->url);
	for (size_t i = 0; i < N_OURS; i++) {
		const struct k8s_condition *old = k8s_conn_status_find(cur, k8s_status_types[i]);
		struct k8s_condition *c = k8s_status_add(out);
		bool same = old && strcmp(old->status, v[i].status) == 0 && old->last_transition[0];

		c->type = x_strdup(k8s_status_types[i]);
		c->status = x_strdup(v[i].status);
		c->reason = x_strdup(v[i].reason);
		c->message = x_strdup(v[i].message);
		c->last_transition = x_strdup(same ? old->last_transition : in->now);
		c->observed_generation = in->generation;
	}
	for (size_t i = 0; i < cur->n; i++)
		if (cur->conds[i].raw)
			k8s_cond_copy_raw(k8s_status_add(out), &cur->conds[i]);
}

static bool k8s_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool k8s_cond_equal(const struct k8s_condition *a, const struct k8s_condition *b)
{
	if (a->raw || b->raw)
		return k8s_str_eq(a->raw, b->raw);
	return strcmp(a->type, b->type) == 0 && strcmp(a->status, b->status) == 0 &&
	       strcmp(a->reason, b->reason) == 0 && strcmp(a->message, b->message) == 0 &&
	       strcmp(a->last_transition, b->last_transition) == 0 &&
	       a->observed_generation == b->observed_generation;
}

bool k8s_conn_status_equal(const struct k8s_conn_status *a, const struct k8s_conn_status *b)
{
	if (a->observed_generation != b->observed_generation || !k8s_str_eq(a->url, b->url) ||
	    a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!k8s_cond_equal(&a->conds[i], &b->conds[i]))
			return false;
	return true;
}

bool k8s_conn_status_ready(const struct k8s_conn_status *st)
{
	const struct k8s_condition *c = k8s_conn_status_find(st, "Ready");

	return c && strcmp(c->status, "True") == 0;
}

/* ---- writing ---- */

static void k8s_status_jstr(struct evbuffer *out, const char *s)
{
	jsonw_string(out, s, strlen(s));
}

static void k8s_status_write_cond(struct evbuffer *out, const struct k8s_condition *c)
{
	if (c->raw) {
		evbuffer_add(out, c->raw, strlen(c->raw));
		return;
	}
	evbuffer_add_printf(out, "{\"type\":");
	k8s_status_jstr(out, c->type);
	evbuffer_add_printf(out, ",\"status\":");
	k8s_status_jstr(out, c->status);
	if (c->observed_generation >= 0)
		evbuffer_add_printf(out, ",\"observedGeneration\":%lld",
				    (long long)c->observed_generation);
	evbuffer_add_printf(out, ",\"lastTransitionTime\":");
	k8s_status_jstr(out, c->last_transition);
	evbuffer_add_printf(out, ",\"reason\":");
	k8s_status_jstr(out, c->reason);
	evbuffer_add_printf(out, ",\"message\":");
	k8s_status_jstr(out, c->message);
	evbuffer_add(out, "}", 1);
}

void k8s_conn_status_patch(struct evbuffer *out, const struct k8s_conn_status *st,
			   const char *resource_version)
{
	evbuffer_add(out, "{", 1);
	if (resource_version) {
		evbuffer_add_printf(out, "\"metadata\":{\"resourceVersion\":");
		k8s_status_jstr(out, resource_version);
		evbuffer_add_printf(out, "},");
	}
	evbuffer_add_printf(out, "\"status\":{");
	if (st->observed_generation >= 0)
		evbuffer_add_printf(out, "\"observedGeneration\":%lld,",
				    (long long)st->observed_generation);
	evbuffer_add_printf(out, "\"conditions\":[");
	for (size_t i = 0; i < st->n; i++) {
		if (i)
			evbuffer_add(out, ",", 1);
		k8s_status_write_cond(out, &st->conds[i]);
	}
	evbuffer_add(out, "]", 1);
	if (st->url) {
		evbuffer_add_printf(out, ",\"proxy\":{\"httpAddress\":{\"url\":");
		k8s_status_jstr(out, st->url);
		evbuffer_add_printf(out, "}}");
	}
	evbuffer_add_printf(out, "}}");
}

char *k8s_conn_status_url(const char *public_address, const char *ns, const char *name)
{
	size_t n = strlen(public_address) + strlen(ns) + strlen(name) + sizeof("http:///namespaces//connectors/");
	char *url = x_malloc(n);

	snprintf(url, n, "http://%s/namespaces/%s/connectors/%s", public_address, ns, name);
	return url;
}

void k8s_status_time(int64_t unix_seconds, char out[32])
{
	time_t t = (time_t)unix_seconds;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}
