#include "k8s/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "util/base64.h"
#include "util/json_write.h"
#include "util/url.h"
#include "util/xalloc.h"

#define TOKENREVIEW_API "authentication.k8s.io/v1"
#define SAR_API "authorization.k8s.io/v1"
#define CONNECTOR_API "connectors.alauda.io/v1alpha1"
#define INITIAL_EVENTS_END "k8s.io/initial-events-end"

static int k8s_fail(char *err, size_t cap, const char *fmt, ...) OG_PRINTF(3, 4);

static int k8s_fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (err && cap) {
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Secrets must not linger in freed memory; volatile keeps the stores. */
static void k8s_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

static void k8s_free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* A value from the document for an error message: unescaped, cut to fit,
 * control characters replaced, so hostile input cannot forge log lines. */
static const char *k8s_show(const struct json_doc *d, int tok, char *buf, size_t cap)
{
	struct og_str raw = json_raw(d, tok);
	size_t n = OG_MIN(raw.n, cap - 1);

	if (!json_is_string(d, tok) || json_string(d, tok, buf, cap) < 0) {
		memcpy(buf, raw.p, n);
		buf[n] = '\0';
	}
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '"')
			*c = '?';
	return buf;
}

/* ---- reading fields ---- */

static const char *k8s_article(const struct json_doc *d, int tok)
{
	enum json_type t = json_type(d, tok);
	return t == JSON_ARRAY || t == JSON_OBJECT ? "an" : "a";
}

/* Parses a body into d and checks it is an object. */
static int k8s_doc(struct json_doc *d, const char *text, size_t len, size_t max_bytes,
		   size_t max_tokens, const char *what, char *err, size_t cap)
{
	char jerr[160];

	memset(d, 0, sizeof(*d));
	if (len > max_bytes)
		return k8s_fail(err, cap, "%s: %zu bytes is more than the limit of %zu", what, len,
				max_bytes);
	if (json_parse(d, text, len, max_tokens, jerr, sizeof(jerr)) != 0)
		return k8s_fail(err, cap, "%s: %s", what, jerr);
	if (!json_is_object(d, 0)) {
		k8s_fail(err, cap, "%s: expected a JSON object, got %s %s", what, k8s_article(d, 0),
			 json_type_name(d, 0));
		json_doc_free(d);
		return -1;
	}
	return 0;
}

static int k8s_type_error(const struct json_doc *d, int tok, const char *what, const char *field,
			  const char *expected, char *err, size_t cap)
{
	return k8s_fail(err, cap, "%s: %s is %s %s, expected %s", what, field, k8s_article(d, tok),
			json_type_name(d, tok), expected);
}

/* The string at tok into *out; an absent or null value leaves *out NULL. */
static int k8s_string_at(const struct json_doc *d, int tok, const char *what, const char *field,
			 char **out, char *err, size_t cap)
{
	*out = NULL;
	if (tok < 0 || json_is_null(d, tok))
		return 0;
	if (!json_is_string(d, tok))
		return k8s_type_error(d, tok, what, field, "a string", err, cap);
	*out = json_strdup(d, tok);
	if (!*out)
		return k8s_fail(err, cap, "%s: %s contains a NUL character", what, field);
	return 0;
}

static int k8s_string(const struct json_doc *d, int obj, const char *key, const char *what,
		      const char *field, char **out, char *err, size_t cap)
{
	return k8s_string_at(d, json_get(d, obj, key), what, field, out, err, cap);
}

/* Like k8s_string, but absence (or "") is an error. */
static int k8s_required(const struct json_doc *d, int obj, const char *key, const char *what,
			const char *field, char **out, char *err, size_t cap)
{
	if (k8s_string(d, obj, key, what, field, out, err, cap) != 0)
		return -1;
	if (!*out || !**out) {
		free(*out);
		*out = NULL;
		return k8s_fail(err, cap, "%s: %s is missing", what, field);
	}
	return 0;
}

/* An object at key: absent or null gives -1 in *out, other types fail. */
static int k8s_object(const struct json_doc *d, int obj, const char *key, const char *what,
		      const char *field, int *out, char *err, size_t cap)
{
	int t = json_get(d, obj, key);

	*out = -1;
	if (t < 0 || json_is_null(d, t))
		return 0;
	if (!json_is_object(d, t))
		return k8s_type_error(d, t, what, field, "an object", err, cap);
	*out = t;
	return 0;
}

static int k8s_bool(const struct json_doc *d, int obj, const char *key, const char *what,
		    const char *field, bool *out, char *err, size_t cap)
{
	int t = json_get(d, obj, key);

	*out = false;
	if (t < 0)
		return 0;
	if (!json_bool(d, t, out))
		return k8s_type_error(d, t, what, field, "a boolean", err, cap);
	return 0;
}

/* An array of strings (absent or null: none), at most max entries. */
static int k8s_strings_at(const struct json_doc *d, int arr, const char *what, const char *field,
			  size_t max, char ***out, size_t *n, char *err, size_t cap)
{
	*out = NULL;
	*n = 0;
	if (arr < 0 || json_is_null(d, arr))
		return 0;
	if (!json_is_array(d, arr))
		return k8s_type_error(d, arr, what, field, "an array of strings", err, cap);
	if ((size_t)json_array_len(d, arr) > max)
		return k8s_fail(err, cap, "%s: %s has %d entries, more than the limit of %zu", what,
				field, json_array_len(d, arr), max);
	*out = x_calloc((size_t)json_array_len(d, arr) + 1, sizeof(**out));
	for (int t = json_array_first(d, arr); t >= 0; t = json_next(d, t)) {
		char label[96];
		snprintf(label, sizeof(label), "%s[%zu]", field, *n);
		if (!json_is_string(d, t))
			return k8s_type_error(d, t, what, label, "a string", err, cap);
		if (k8s_string_at(d, t, what, label, &(*out)[*n], err, cap) != 0)
			return -1;
		(*n)++;
	}
	return 0;
}

/* kind "Status" instead of the expected object: the request failed. */
static int k8s_status_error(const struct json_doc *d, const char *what, char *err, size_t cap)
{
	struct k8s_status st;
	char buf[512];

	if (k8s_status_from_json(d, 0, &st, buf, sizeof(buf)) != 0)
		return k8s_fail(err, cap, "%s: %s", what, buf);
	k8s_status_format(&st, buf, sizeof(buf));
	k8s_status_free(&st);
	return k8s_fail(err, cap, "%s: the API server answered with a Status: %s", what, buf);
}

/* apiVersion and kind of the object at tok; required says whether they
 * must be present (List items of built-in types leave them out). */
static int k8s_check_kind(const struct json_doc *d, int tok, const char *api_version,
			  const char *kind, bool required, const char *what, char *err, size_t cap)
{
	int k = json_get(d, tok, "kind"), a = json_get(d, tok, "apiVersion");
	char buf[80];

	if (tok == 0 && json_str_eq(d, k, "Status") && strcmp(kind, "Status") != 0)
		return k8s_status_error(d, what, err, cap);
	if (k < 0 && required)
		return k8s_fail(err, cap, "%s: kind is missing, expected \"%s\"", what, kind);
	if (k >= 0 && !json_str_eq(d, k, kind))
		return k8s_fail(err, cap, "%s: kind is \"%s\", expected \"%s\"", what,
				k8s_show(d, k, buf, sizeof(buf)), kind);
	if (a < 0 && required)
		return k8s_fail(err, cap, "%s: apiVersion is missing, expected \"%s\"", what,
				api_version);
	if (a >= 0 && !json_str_eq(d, a, api_version))
		return k8s_fail(err, cap, "%s: apiVersion is \"%s\", expected \"%s\"", what,
				k8s_show(d, a, buf, sizeof(buf)), api_version);
	return 0;
}

/* ---- Status ---- */

int k8s_status_from_json(const struct json_doc *d, int tok, struct k8s_status *out, char *err,
			 size_t err_cap)
{
	const char *what = "Status";
	int64_t code = 0;
	int c;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(d, tok))
		return k8s_type_error(d, tok, what, "the body", "an object", err, err_cap);
	if (!json_str_eq(d, json_get(d, tok, "kind"), "Status"))
		return k8s_fail(err, err_cap, "not a Kubernetes Status (kind is not \"Status\")");
	if (k8s_check_kind(d, tok, "v1", "Status", false, what, err, err_cap) != 0)
		return -1;
	c = json_get(d, tok, "code");
	if (c >= 0 && (!json_int64(d, c, &code) || code < 0 || code > 999)) {
		k8s_fail(err, err_cap, "Status: code is not an HTTP status code");
		return -1;
	}
	out->code = (int)code;
	if (k8s_string(d, tok, "status", what, "status", &out->status, err, err_cap) != 0 ||
	    k8s_string(d, tok, "reason", what, "reason", &out->reason, err, err_cap) != 0 ||
	    k8s_string(d, tok, "message", what, "message", &out->message, err, err_cap) != 0) {
		k8s_status_free(out);
		return -1;
	}
	return 0;
}

int k8s_status_parse(const char *text, size_t len, struct k8s_status *out, char *err,
		     size_t err_cap)
{
	struct json_doc d;
	int ret;

	memset(out, 0, sizeof(*out));
	if (k8s_doc(&d, text, len, K8S_API_MAX_BODY, K8S_API_MAX_TOKENS, "Status", err,
		    err_cap) != 0)
		return -1;
	ret = k8s_status_from_json(&d, 0, out, err, err_cap);
	json_doc_free(&d);
	return ret;
}

void k8s_status_free(struct k8s_status *s)
{
	free(s->status);
	free(s->reason);
	free(s->message);
	memset(s, 0, sizeof(*s));
}

bool k8s_status_is_expired(const struct k8s_status *s)
{
	return s->code == 410 ||
	       (s->reason && (strcmp(s->reason, "Expired") == 0 || strcmp(s->reason, "Gone") == 0));
}

void k8s_status_format(const struct k8s_status *s, char *buf, size_t cap)
{
	size_t n = 0;

	if (!cap)
		return;
	buf[0] = '\0';
	if (s->code)
		n += (size_t)snprintf(buf, cap, "%d", s->code);
	if (s->reason && *s->reason && n < cap)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? " " : "", s->reason);
	if (s->message && *s->message && n < cap)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ": " : "", s->message);
	if (n == 0)
		snprintf(buf, cap, "%s", s->status ? s->status : "(empty Status)");
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

/* ---- TokenReview ---- */

void k8s_user_extras_free(struct k8s_user_extras *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->items[i].key);
		k8s_free_strv(e->items[i].values, e->items[i].n_values);
	}
	free(e->items);
	memset(e, 0, sizeof(*e));
}

static void k8s_json_strings(struct evbuffer *out, char *const *v, size_t n)
{
	evbuffer_add(out, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			evbuffer_add(out, ",", 1);
		jsonw_string(out, v[i], strlen(v[i]));
	}
	evbuffer_add(out, "]", 1);
}

void k8s_tokenreview_body(struct evbuffer *out, struct og_str token, char *const *audiences,
			  size_t n_audiences)
{
	static const char head[] = "{\"apiVersion\":\"" TOKENREVIEW_API "\",\"kind\":\"TokenReview\","
				   "\"spec\":{\"token\":";

	evbuffer_add(out, head, sizeof(head) - 1);
	jsonw_string(out, token.p, token.n);
	if (n_audiences) {
		evbuffer_add(out, ",\"audiences\":", 13);
		k8s_json_strings(out, audiences, n_audiences);
	}
	evbuffer_add(out, "}}", 2);
}

static int k8s_extra_parse(const struct json_doc *d, int user, const char *what,
			   struct k8s_user_extras *out, char *err, size_t cap)
{
	int obj;

	if (k8s_object(d, user, "extra", what, "status.user.extra", &obj, err, cap) != 0)
		return -1;
	if (obj < 0)
		return 0;
	if ((size_t)json_len(d, obj) > K8S_API_MAX_EXTRA_KEYS)
		return k8s_fail(err, cap, "%s: status.user.extra has %d keys, more than the limit of %d",
				what, json_len(d, obj), K8S_API_MAX_EXTRA_KEYS);
	out->items = x_calloc((size_t)json_len(d, obj) + 1, sizeof(*out->items));
	for (int k = json_object_first(d, obj); k >= 0; k = json_object_next(d, k)) {
		struct k8s_user_extra *e = &out->items[out->n++];
		char label[160], kbuf[64];

		snprintf(label, sizeof(label), "status.user.extra[\"%s\"]",
			 k8s_show(d, k, kbuf, sizeof(kbuf)));
		if (k8s_string_at(d, k, what, label, &e->key, err, cap) != 0)
			return -1;
		if (k8s_strings_at(d, json_value(d, k), what, label, K8S_API_MAX_EXTRA_VALUES,
				   &e->values, &e->n_values, err, cap) != 0)
			return -1;
	}
	return 0;
}

static bool k8s_audience_match(char *const *want, size_t n_want, char *const *got, size_t n_got)
{
	for (size_t i = 0; i < n_want; i++)
		for (size_t j = 0; j < n_got; j++)
			if (strcmp(want[i], got[j]) == 0)
				return true;
	return false;
}

static int k8s_tokenreview_status(const struct json_doc *d, int status, const char *what,
				  struct k8s_tokenreview_result *out, char *err, size_t cap)
{
	int user;

	if (k8s_bool(d, status, "authenticated", what, "status.authenticated",
		     &out->authenticated, err, cap) != 0 ||
	    k8s_string(d, status, "error", what, "status.error", &out->error, err, cap) != 0 ||
	    k8s_strings_at(d, json_get(d, status, "audiences"), what, "status.audiences",
			   K8S_API_MAX_AUDIENCES, &out->audiences, &out->n_audiences, err, cap) != 0 ||
	    k8s_object(d, status, "user", what, "status.user", &user, err, cap) != 0)
		return -1;
	if (user >= 0 &&
	    (k8s_string(d, user, "username", what, "status.user.username", &out->username, err,
			cap) != 0 ||
	     k8s_string(d, user, "uid", what, "status.user.uid", &out->uid, err, cap) != 0 ||
	     k8s_strings_at(d, json_get(d, user, "groups"), what, "status.user.groups",
			    K8S_API_MAX_GROUPS, &out->groups, &out->n_groups, err, cap) != 0 ||
	     k8s_extra_parse(d, user, what, &out->extra, err, cap) != 0))
		return -1;
	if (out->authenticated && (!out->username || !*out->username))
		return k8s_fail(err, cap, "%s: authenticated without status.user.username", what);
	return 0;
}

int k8s_tokenreview_parse(const char *text, size_t len, char *const *audiences,
			  size_t n_audiences, struct k8s_tokenreview_result *out, char *err,
			  size_t err_cap)
{
	const char *what = "TokenReview response";
	struct json_doc d;
	int status, ret = -1;

	memset(out, 0, sizeof(*out));
	if (k8s_doc(&d, text, len, K8S_API_MAX_BODY, K8S_API_MAX_TOKENS, what, err, err_cap) != 0)
		return -1;
	if (k8s_check_kind(&d, 0, TOKENREVIEW_API, "TokenReview", true, what, err, err_cap) != 0)
		goto out;
	if (k8s_object(&d, 0, "status", what, "status", &status, err, err_cap) != 0)
		goto out;
	if (status < 0) {
		k8s_fail(err, err_cap, "%s: status is missing", what);
		goto out;
	}
	if (k8s_tokenreview_status(&d, status, what, out, err, err_cap) != 0)
		goto out;
	if (out->authenticated && n_audiences &&
	    !k8s_audience_match(audiences, n_audiences, out->audiences, out->n_audiences)) {
		out->authenticated = false;
		free(out->error);
		out->error = x_strdup("the token is not valid for ocigate's audience");
	}
	ret = 0;
out:
	if (ret != 0)
		k8s_tokenreview_result_free(out);
	json_doc_free(&d);
	return ret;
}

void k8s_tokenreview_result_free(struct k8s_tokenreview_result *r)
{
	free(r->username);
	free(r->uid);
	k8s_free_strv(r->groups, r->n_groups);
	k8s_user_extras_free(&r->extra);
	k8s_free_strv(r->audiences, r->n_audiences);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

/* ---- SubjectAccessReview ---- */

static void k8s_json_field(struct evbuffer *out, bool *first, const char *key, const char *value)
{
	if (!value || !*value)
		return;
	evbuffer_add_printf(out, "%s\"%s\":", *first ? "" : ",", key);
	jsonw_string(out, value, strlen(value));
	*first = false;
}

void k8s_sar_body(struct evbuffer *out, const struct auth_identity *id,
		  const struct k8s_user_extras *extra, const struct k8s_resource_attrs *ra)
{
	static const char head[] = "{\"apiVersion\":\"" SAR_API "\",\"kind\":\"SubjectAccessReview\","
				   "\"spec\":{\"resourceAttributes\":{";
	bool first = true;

	evbuffer_add(out, head, sizeof(head) - 1);
	k8s_json_field(out, &first, "namespace", ra->ns);
	k8s_json_field(out, &first, "verb", ra->verb);
	k8s_json_field(out, &first, "group", ra->group);
	k8s_json_field(out, &first, "version", ra->version);
	k8s_json_field(out, &first, "resource", ra->resource);
	k8s_json_field(out, &first, "subresource", ra->subresource);
	k8s_json_field(out, &first, "name", ra->name);
	evbuffer_add(out, "}", 1);
	first = false;
	k8s_json_field(out, &first, "user", id->user);
	k8s_json_field(out, &first, "uid", id->uid);
	if (id->n_groups) {
		evbuffer_add(out, ",\"groups\":", 10);
		k8s_json_strings(out, id->groups, id->n_groups);
	}
	if (extra && extra->n) {
		evbuffer_add(out, ",\"extra\":{", 10);
		for (size_t i = 0; i < extra->n; i++) {
			if (i)
				evbuffer_add(out, ",", 1);
			jsonw_string(out, extra->items[i].key, strlen(extra->items[i].key));
			evbuffer_add(out, ":", 1);
			k8s_json_strings(out, extra->items[i].values, extra->items[i].n_values);
		}
		evbuffer_add(out, "}", 1);
	}
	evbuffer_add(out, "}}", 2);
}

int k8s_sar_parse(const char *text, size_t len, struct k8s_sar_result *out, char *err,
		  size_t err_cap)
{
	const char *what = "SubjectAccessReview response";
	struct json_doc d;
	int status, ret = -1;

	memset(out, 0, sizeof(*out));
	if (k8s_doc(&d, text, len, K8S_API_MAX_BODY, K8S_API_MAX_TOKENS, what, err, err_cap) != 0)
		return -1;
	if (k8s_check_kind(&d, 0, SAR_API, "SubjectAccessReview", true, what, err, err_cap) != 0 ||
	    k8s_object(&d, 0, "status", what, "status", &status, err, err_cap) != 0)
		goto out;
	if (status < 0) {
		k8s_fail(err, err_cap, "%s: status is missing", what);
		goto out;
	}
	if (json_get(&d, status, "allowed") < 0) {
		k8s_fail(err, err_cap, "%s: status.allowed is missing", what);
		goto out;
	}
	if (k8s_bool(&d, status, "allowed", what, "status.allowed", &out->allowed, err,
		     err_cap) != 0 ||
	    k8s_bool(&d, status, "denied", what, "status.denied", &out->denied, err, err_cap) != 0 ||
	    k8s_string(&d, status, "reason", what, "status.reason", &out->reason, err, err_cap) != 0 ||
	    k8s_string(&d, status, "evaluationError", what, "status.evaluationError",
		       &out->evaluation_error, err, err_cap) != 0)
		goto out;
	if (out->allowed && out->denied) {
		k8s_fail(err, err_cap, "%s: status.allowed and status.denied are both true", what);
		goto out;
	}
	ret = 0;
out:
	if (ret != 0)
		k8s_sar_result_free(out);
	json_doc_free(&d);
	return ret;
}

void k8s_sar_result_free(struct k8s_sar_result *r)
{
	free(r->reason);
	free(r->evaluation_error);
	memset(r, 0, sizeof(*r));
}

/* ---- objects ---- */

static void k8s_meta_free(struct k8s_meta *m)
{
	free(m->ns);
	free(m->name);
	free(m->uid);
	free(m->resource_version);
	memset(m, 0, sizeof(*m));
}

/* Reads metadata of a kind of object and writes "Kind NS/NAME" (or just
 * "Kind" until the name is known) into what, for messages. */
static int k8s_meta_parse(const struct json_doc *d, int obj, const char *kind,
			  struct k8s_meta *out, char *what, size_t what_cap, char *err, size_t cap)
{
	int meta, g;

	snprintf(what, what_cap, "%s", kind);
	if (k8s_object(d, obj, "metadata", what, "metadata", &meta, err, cap) != 0)
		return -1;
	if (meta < 0)
		return k8s_fail(err, cap, "%s: metadata is missing", what);
	if (k8s_required(d, meta, "namespace", what, "metadata.namespace", &out->ns, err, cap) != 0 ||
	    k8s_required(d, meta, "name", what, "metadata.name", &out->name, err, cap) != 0)
		return -1;
	snprintf(what, what_cap, "%s %s/%s", kind, out->ns, out->name);
	for (char *c = what; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	if (k8s_string(d, meta, "uid", what, "metadata.uid", &out->uid, err, cap) != 0 ||
	    k8s_string(d, meta, "resourceVersion", what, "metadata.resourceVersion",
		       &out->resource_version, err, cap) != 0)
		return -1;
	g = json_get(d, meta, "generation");
	if (g >= 0 && (!json_int64(d, g, &out->generation) || out->generation < 0))
		return k8s_fail(err, cap, "%s: metadata.generation is not a non-negative integer",
				what);
	return 0;
}

/* name of the object at key (secretRef, caCertSecretRef); absent: NULL. */
static int k8s_ref_name(const struct json_doc *d, int obj, const char *key, const char *what,
			const char *field, char **name, char *err, size_t cap)
{
	char label[96];
	int ref;

	if (k8s_object(d, obj, key, what, field, &ref, err, cap) != 0)
		return -1;
	if (ref < 0)
		return 0;
	snprintf(label, sizeof(label), "%s.name", field);
	return k8s_required(d, ref, "name", what, label, name, err, cap);
}

static int k8s_connector_spec(const struct json_doc *d, int spec, const char *what,
			      struct k8s_connector *out, char *err, size_t cap)
{
	char *address = NULL, uerr[200];
	int auth, ref;

	if (k8s_required(d, spec, "address", what, "spec.address", &address, err, cap) != 0)
		return -1;
	if (url_base_parse(&out->address, address, strlen(address), uerr, sizeof(uerr)) != 0) {
		k8s_fail(err, cap, "%s: spec.address: %s", what, uerr);
		free(address);
		return -1;
	}
	free(address);
	if (k8s_object(d, spec, "auth", what, "spec.auth", &auth, err, cap) != 0 ||
	    k8s_string(d, auth, "name", what, "spec.auth.name", &out->auth_name, err, cap) != 0 ||
	    k8s_ref_name(d, auth, "secretRef", what, "spec.auth.secretRef", &out->secret_name, err,
			 cap) != 0 ||
	    k8s_ref_name(d, spec, "caCertSecretRef", what, "spec.caCertSecretRef",
			 &out->ca_secret_name, err, cap) != 0)
		return -1;
	if (out->secret_name) {
		ref = json_get(d, auth, "secretRef");
		if (k8s_string(d, ref, "namespace", what, "spec.auth.secretRef.namespace",
			       &out->secret_namespace, err, cap) != 0)
			return -1;
		if (!out->secret_namespace || !*out->secret_namespace) {
			free(out->secret_namespace);
			out->secret_namespace = x_strdup(out->meta.ns);
		}
	}
	return 0;
}

/* Everything after class_name. */
static void k8s_connector_free_spec(struct k8s_connector *c)
{
	url_base_free(&c->address);
	free(c->auth_name);
	free(c->secret_name);
	free(c->secret_namespace);
	free(c->ca_secret_name);
	c->auth_name = c->secret_name = c->secret_namespace = c->ca_secret_name = NULL;
}

int k8s_connector_parse(const struct json_doc *d, int tok, struct k8s_connector *out, char *err,
			size_t err_cap)
{
	char what[300];
	int spec;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(d, tok))
		return k8s_type_error(d, tok, "Connector", "the object", "an object", err, err_cap);
	if (k8s_meta_parse(d, tok, "Connector", &out->meta, what, sizeof(what), err, err_cap) != 0)
		return -1;
	if (k8s_check_kind(d, tok, CONNECTOR_API, "Connector", false, what, err, err_cap) != 0)
		return -1;
	if (k8s_object(d, tok, "spec", what, "spec", &spec, err, err_cap) != 0)
		return -1;
	if (spec < 0)
		return k8s_fail(err, err_cap, "%s: spec is missing", what);
	if (k8s_string(d, spec, "connectorClassName", what, "spec.connectorClassName",
		       &out->class_name, err, err_cap) != 0)
		return -1;
	if (k8s_connector_spec(d, spec, what, out, err, err_cap) != 0) {
		k8s_connector_free_spec(out);
		return -1;
	}
	return 0;
}

void k8s_connector_free(struct k8s_connector *c)
{
	k8s_meta_free(&c->meta);
	free(c->class_name);
	k8s_connector_free_spec(c);
	memset(c, 0, sizeof(*c));
}

/* ---- Secret ---- */

/* Everything but meta. */
static void k8s_secret_free_values(struct k8s_secret *s)
{
	free(s->type);
	if (s->username)
		k8s_wipe(s->username, strlen(s->username));
	free(s->username);
	if (s->password)
		k8s_wipe(s->password, strlen(s->password));
	free(s->password);
	free(s->ca_pem);
	s->type = s->username = s->password = NULL;
	s->ca_pem = NULL;
	s->ca_pem_len = s->n_ca_keys = 0;
}

struct k8s_pem_part {
	char *key;
	unsigned char *data;
	size_t len;
};

static int k8s_pem_part_cmp(const void *a, const void *b)
{
	return strcmp(((const struct k8s_pem_part *)a)->key, ((const struct k8s_pem_part *)b)->key);
}

static bool k8s_has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Decodes data[key] (tok) into a new buffer with a NUL after the bytes. */
static int k8s_secret_value(const struct json_doc *d, int tok, const char *what, const char *key,
			    unsigned char **out, size_t *out_len, char *err, size_t cap)
{
	ssize_t n = json_string_len(d, tok), m;
	char *text;

	*out = NULL;
	*out_len = 0;
	if (json_is_null(d, tok)) {
		*out = x_calloc(1, 1);
		return 0;
	}
	if (n < 0)
		return k8s_fail(err, cap, "%s: data[\"%s\"] is %s %s, expected a base64 string", what,
				key, k8s_article(d, tok), json_type_name(d, tok));
	text = x_malloc((size_t)n + 1);
	*out = x_malloc((size_t)n / 4 * 3 + 1);
	if (json_string(d, tok, text, (size_t)n + 1) != n ||
	    (m = base64_decode(text, (size_t)n, *out, (size_t)n / 4 * 3)) < 0) {
		free(text);
		free(*out);
		*out = NULL;
		return k8s_fail(err, cap, "%s: data[\"%s\"] is not valid base64", what, key);
	}
	free(text);
	(*out)[m] = '\0';
	*out_len = (size_t)m;
	return 0;
}

/* username or password: text for an Authorization header, so no NUL. */
static int k8s_secret_credential(const char *what, const char *key, unsigned char *value,
				 size_t len, char **out, char *err, size_t cap)
{
	if (memchr(value, '\0', len)) {
		k8s_wipe(value, len);
		free(value);
		return k8s_fail(err, cap, "%s: data[\"%s\"] contains a NUL byte", what, key);
	}
	*out = (char *)value;
	return 0;
}

static unsigned char *k8s_concat_pem(struct k8s_pem_part *parts, size_t n, size_t *len)
{
	size_t total = 0, o = 0;
	unsigned char *buf;

	qsort(parts, n, sizeof(*parts), k8s_pem_part_cmp);
	for (size_t i = 0; i < n; i++)
		total += parts[i].len + 1;
	buf = x_malloc(total + 1);
	for (size_t i = 0; i < n; i++) {
		memcpy(buf + o, parts[i].data, parts[i].len);
		o += parts[i].len;
		if (parts[i].len && buf[o - 1] != '\n')
			buf[o++] = '\n';
	}
	buf[o] = '\0';
	*len = o;
	return buf;
}

static int k8s_secret_data(const struct json_doc *d, int data, const char *what,
			   struct k8s_secret *out, char *err, size_t cap)
{
	struct k8s_pem_part *parts = x_calloc((size_t)json_len(d, data) + 1, sizeof(*parts));
	size_t n_parts = 0;
	int ret = -1;

	for (int k = json_object_first(d, data); k >= 0; k = json_object_next(d, k)) {
		char kbuf[128];
		char *key = json_strdup(d, k);
		unsigned char *value;
		size_t len;

		if (!key) {
			k8s_fail(err, cap, "%s: a data key contains a NUL character", what);
			goto out;
		}
		k8s_show(d, k, kbuf, sizeof(kbuf));
		if (k8s_secret_value(d, json_value(d, k), what, kbuf, &value, &len, err, cap) != 0) {
			free(key);
			goto out;
		}
		if (strcmp(key, "username") == 0 || strcmp(key, "password") == 0) {
			char **dst = key[0] == 'u' ? &out->username : &out->password;
			free(key);
			if (k8s_secret_credential(what, kbuf, value, len, dst, err, cap) != 0)
				goto out;
		} else if (k8s_has_suffix(key, ".crt") || k8s_has_suffix(key, ".pem")) {
			parts[n_parts++] = (struct k8s_pem_part){ key, value, len };
		} else {
			/* decoded only to check the whole Secret is well-formed */
			k8s_wipe(value, len);
			free(value);
			free(key);
		}
	}
	if (n_parts) {
		out->ca_pem = k8s_concat_pem(parts, n_parts, &out->ca_pem_len);
		out->n_ca_keys = n_parts;
	}
	ret = 0;
out:
	for (size_t i = 0; i < n_parts; i++) {
		free(parts[i].key);
		free(parts[i].data);
	}
	free(parts);
	return ret;
}

int k8s_secret_parse(const struct json_doc *d, int tok, struct k8s_secret *out, char *err,
		     size_t err_cap)
{
	char what[300];
	int data;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(d, tok))
		return k8s_type_error(d, tok, "Secret", "the object", "an object", err, err_cap);
	if (k8s_meta_parse(d, tok, "Secret", &out->meta, what, sizeof(what), err, err_cap) != 0)
		return -1;
	if (k8s_check_kind(d, tok, "v1", "Secret", false, what, err, err_cap) != 0 ||
	    k8s_string(d, tok, "type", what, "type", &out->type, err, err_cap) != 0 ||
	    k8s_object(d, tok, "data", what, "data", &data, err, err_cap) != 0)
		return -1;
	if (data >= 0 && k8s_secret_data(d, data, what, out, err, err_cap) != 0) {
		/* meta stays: it tells the caller which Secret is broken */
		k8s_secret_free_values(out);
		return -1;
	}
	return 0;
}

void k8s_secret_free(struct k8s_secret *s)
{
	k8s_meta_free(&s->meta);
	k8s_secret_free_values(s);
	memset(s, 0, sizeof(*s));
}

/* ---- lists ---- */

static int k8s_list_items(struct k8s_list *l, const char *what, char *err, size_t cap)
{
	const struct json_doc *d = &l->doc;
	int items = json_get(d, 0, "items"), i = 0;

	l->items = -1;
	if (items < 0 || json_is_null(d, items))
		return 0;
	if (!json_is_array(d, items))
		return k8s_type_error(d, items, what, "items", "an array", err, cap);
	for (int t = json_array_first(d, items); t >= 0; t = json_next(d, t), i++) {
		if (!json_is_object(d, t)) {
			char label[32];
			snprintf(label, sizeof(label), "items[%d]", i);
			return k8s_type_error(d, t, what, label, "an object", err, cap);
		}
	}
	l->items = items;
	l->n_items = i;
	return 0;
}

static int k8s_list_meta(struct k8s_list *l, const char *what, char *err, size_t cap)
{
	const struct json_doc *d = &l->doc;
	int meta, r;

	if (k8s_object(d, 0, "metadata", what, "metadata", &meta, err, cap) != 0)
		return -1;
	if (meta < 0)
		return k8s_fail(err, cap, "%s: metadata is missing", what);
	if (k8s_required(d, meta, "resourceVersion", what, "metadata.resourceVersion",
			 &l->resource_version, err, cap) != 0 ||
	    k8s_string(d, meta, "continue", what, "metadata.continue", &l->continue_token, err,
		       cap) != 0)
		return -1;
	if (l->continue_token && !*l->continue_token) {
		free(l->continue_token);
		l->continue_token = NULL;
	}
	r = json_get(d, meta, "remainingItemCount");
	l->remaining = -1;
	if (r >= 0 && !json_is_null(d, r) && (!json_int64(d, r, &l->remaining) || l->remaining < 0))
		return k8s_fail(err, cap, "%s: metadata.remainingItemCount is not a count", what);
	return 0;
}

/* A List of items names itself ConnectorList etc.; its items carry their
 * own apiVersion, so only the kind is checked here. */
static int k8s_list_kind(const struct json_doc *d, const char *list_kind, const char *what,
			 char *err, size_t cap)
{
	int k = json_get(d, 0, "kind");
	char buf[80];

	if (json_str_eq(d, k, "Status"))
		return k8s_status_error(d, what, err, cap);
	if (k >= 0 && !json_str_eq(d, k, list_kind))
		return k8s_fail(err, cap, "%s: kind is \"%s\", expected \"%s\"", what,
				k8s_show(d, k, buf, sizeof(buf)), list_kind);
	return 0;
}

int k8s_list_parse(struct k8s_list *l, const char *text, size_t len, const char *item_kind,
		   char *err, size_t err_cap)
{
	char what[96], list_kind[80];

	memset(l, 0, sizeof(*l));
	l->items = -1;
	snprintf(list_kind, sizeof(list_kind), "%sList", item_kind);
	snprintf(what, sizeof(what), "%s response", list_kind);
	if (k8s_doc(&l->doc, text, len, K8S_API_MAX_LIST_BODY, K8S_API_MAX_LIST_TOKENS, what, err,
		    err_cap) != 0)
		return -1;
	if (k8s_list_kind(&l->doc, list_kind, what, err, err_cap) != 0 ||
	    k8s_list_meta(l, what, err, err_cap) != 0 || k8s_list_items(l, what, err, err_cap) != 0) {
		k8s_list_free(l);
		return -1;
	}
	return 0;
}

void k8s_list_free(struct k8s_list *l)
{
	json_doc_free(&l->doc);
	free(l->resource_version);
	free(l->continue_token);
	memset(l, 0, sizeof(*l));
	l->items = -1;
}

/* ---- watch events ---- */

static const char *const k8s_watch_names[] = {
	[K8S_WATCH_ADDED] = "ADDED",
	[K8S_WATCH_MODIFIED] = "MODIFIED",
	[K8S_WATCH_DELETED] = "DELETED",
	[K8S_WATCH_BOOKMARK] = "BOOKMARK",
	[K8S_WATCH_ERROR] = "ERROR",
};

const char *k8s_watch_type_name(enum k8s_watch_type t)
{
	if ((size_t)t < OG_ARRAY_LEN(k8s_watch_names))
		return k8s_watch_names[t];
	return "?";
}

static int k8s_watch_type_parse(const struct json_doc *d, int tok, enum k8s_watch_type *out,
				char *err, size_t cap)
{
	char buf[64];

	if (tok < 0)
		return k8s_fail(err, cap, "watch event: type is missing");
	for (size_t i = 0; i < OG_ARRAY_LEN(k8s_watch_names); i++) {
		if (json_str_eq(d, tok, k8s_watch_names[i])) {
			*out = (enum k8s_watch_type)i;
			return 0;
		}
	}
	if (!json_is_string(d, tok))
		return k8s_type_error(d, tok, "watch event", "type", "a string", err, cap);
	return k8s_fail(err, cap, "watch event: unknown type \"%s\"", k8s_show(d, tok, buf, sizeof(buf)));
}

static int k8s_watch_object(struct k8s_watch_event *ev, const char *what, char *err, size_t cap)
{
	const struct json_doc *d = &ev->doc;
	int meta, ann;

	if (k8s_object(d, ev->object, "metadata", what, "object.metadata", &meta, err, cap) != 0 ||
	    k8s_required(d, meta, "resourceVersion", what, "object.metadata.resourceVersion",
			 &ev->resource_version, err, cap) != 0)
		return -1;
	if (ev->type != K8S_WATCH_BOOKMARK)
		return 0;
	if (k8s_object(d, meta, "annotations", what, "object.metadata.annotations", &ann, err,
		       cap) != 0)
		return -1;
	ev->initial_events_end = json_str_eq(d, json_get(d, ann, INITIAL_EVENTS_END), "true");
	return 0;
}

int k8s_watch_event_parse(struct k8s_watch_event *ev, const char *line, size_t len, char *err,
			  size_t err_cap)
{
	char what[64], serr[256];

	memset(ev, 0, sizeof(*ev));
	ev->object = -1;
	if (k8s_doc(&ev->doc, line, len, K8S_API_MAX_BODY, K8S_API_MAX_TOKENS, "watch event", err,
		    err_cap) != 0)
		return -1;
	if (k8s_watch_type_parse(&ev->doc, json_get(&ev->doc, 0, "type"), &ev->type, err,
				 err_cap) != 0)
		goto fail;
	snprintf(what, sizeof(what), "watch event %s", k8s_watch_type_name(ev->type));
	if (k8s_object(&ev->doc, 0, "object", what, "object", &ev->object, err, err_cap) != 0)
		goto fail;
	if (ev->object < 0) {
		k8s_fail(err, err_cap, "%s: object is missing", what);
		goto fail;
	}
	if (ev->type == K8S_WATCH_ERROR) {
		if (k8s_status_from_json(&ev->doc, ev->object, &ev->status, serr, sizeof(serr)) != 0) {
			k8s_fail(err, err_cap, "%s: %s", what, serr);
			goto fail;
		}
		return 0;
	}
	if (k8s_watch_object(ev, what, err, err_cap) != 0)
		goto fail;
	return 0;
fail:
	k8s_watch_event_free(ev);
	return -1;
}

void k8s_watch_event_free(struct k8s_watch_event *ev)
{
	json_doc_free(&ev->doc);
	free(ev->resource_version);
	k8s_status_free(&ev->status);
	memset(ev, 0, sizeof(*ev));
	ev->object = -1;
}
