/* Fuzzes the Kubernetes API parsers: the same bytes go in as a TokenReview
 * response, a SubjectAccessReview response, a List of Connectors, a List of
 * Secrets, a watch event line and a Status. Whatever the bytes, nothing may
 * crash, leak or overrun, a failure must say why, and no malformed input may
 * come out "authenticated" or "allowed". */
#include "k8s/api.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* err must be a non-empty C string that starts with prefix. */
static void check_err(const char *err, size_t cap, const char *prefix)
{
	if (!memchr(err, '\0', cap) || !err[0] || strncmp(err, prefix, strlen(prefix)) != 0)
		abort();
}

static void check_str(const char *s)
{
	if (s && memchr(s, '\0', strlen(s) + 1) != s + strlen(s))
		abort();
}

/* Walks every token: iteration must visit each container's children
 * exactly once, and lookups must find every key. */
static void walk_json(const char *text, size_t len)
{
	struct json_doc d;
	char err[200];

	if (json_parse(&d, text, len, 1 << 16, err, sizeof(err)) != 0) {
		check_err(err, sizeof(err), "invalid JSON at offset ");
		if (d.n != 0 || d.toks)
			abort();
		return;
	}
	for (int t = 0; t < d.n; t++) {
		int n = 0;
		switch (json_type(&d, t)) {
		case JSON_OBJECT:
			for (int k = json_object_first(&d, t); k >= 0; k = json_object_next(&d, k)) {
				char *key = json_strdup(&d, k);
				if (key && json_get(&d, t, key) != json_value(&d, k))
					abort(); /* keys are unique */
				free(key);
				n++;
			}
			break;
		case JSON_ARRAY:
			for (int i = json_array_first(&d, t); i >= 0; i = json_next(&d, i))
				n++;
			break;
		case JSON_STRING: {
			ssize_t sl = json_string_len(&d, t);
			char *s = json_strdup(&d, t);
			if (sl < 0 || (s && (ssize_t)strlen(s) != sl) || (s && !json_str_eq(&d, t, s)))
				abort();
			free(s);
			n = -1;
			break;
		}
		default: {
			int64_t v;
			bool b;
			(void)json_int64(&d, t, &v);
			(void)json_bool(&d, t, &b);
			n = -1;
			break;
		}
		}
		if (n != json_len(&d, t))
			abort();
	}
	json_doc_free(&d);
}

static void fuzz_tokenreview(const char *text, size_t len)
{
	char *aud[] = { "ocigate" };
	struct k8s_tokenreview_result r;
	char err[300];

	for (size_t n_aud = 0; n_aud <= 1; n_aud++) {
		memset(err, 'x', sizeof(err));
		if (k8s_tokenreview_parse(text, len, aud, n_aud, &r, err, sizeof(err)) != 0) {
			check_err(err, sizeof(err), "TokenReview response: ");
			if (r.authenticated || r.username || r.groups)
				abort();
			continue;
		}
		if (r.authenticated && (!r.username || !*r.username))
			abort();
		if (r.authenticated && n_aud) {
			bool match = false;
			for (size_t i = 0; i < r.n_audiences; i++)
				match |= strcmp(r.audiences[i], aud[0]) == 0;
			if (!match)
				abort();
		}
		for (size_t i = 0; i < r.n_groups; i++)
			check_str(r.groups[i]);
		for (size_t i = 0; i < r.extra.n; i++)
			for (size_t k = 0; k < r.extra.items[i].n_values; k++)
				check_str(r.extra.items[i].values[k]);
		k8s_tokenreview_result_free(&r);
	}
}

static void fuzz_sar(const char *text, size_t len)
{
	struct k8s_sar_result r;
	char err[300];

	if (k8s_sar_parse(text, len, &r, err, sizeof(err)) != 0) {
		check_err(err, sizeof(err), "SubjectAccessReview response: ");
		if (r.allowed || r.denied || r.reason)
			abort();
		return;
	}
	if (r.allowed && r.denied)
		abort();
	k8s_sar_result_free(&r);
}

static void check_url(const struct url_base *u)
{
	size_t pn = strlen(u->path_prefix);
	if (!u->host[0] || !u->port || !u->text)
		abort();
	if (pn && (u->path_prefix[0] != '/' || u->path_prefix[pn - 1] == '/'))
		abort();
}

static void fuzz_list(const char *text, size_t len, const char *kind)
{
	struct k8s_list l;
	char err[300], prefix[64];

	snprintf(prefix, sizeof(prefix), "%sList response: ", kind);
	if (k8s_list_parse(&l, text, len, kind, err, sizeof(err)) != 0) {
		check_err(err, sizeof(err), prefix);
		return;
	}
	if (!l.resource_version || !*l.resource_version || (l.continue_token && !*l.continue_token))
		abort();
	for (int t = json_array_first(&l.doc, l.items); t >= 0; t = json_next(&l.doc, t)) {
		if (kind[0] == 'C') {
			struct k8s_connector c;
			if (k8s_connector_parse(&l.doc, t, &c, err, sizeof(err)) == 0) {
				check_url(&c.address);
				if (!c.meta.ns || !c.meta.name ||
				    (c.secret_name && !c.secret_namespace))
					abort();
			} else {
				check_err(err, sizeof(err), "Connector");
				if (c.address.host)
					abort();
			}
			k8s_connector_free(&c);
		} else {
			struct k8s_secret s;
			if (k8s_secret_parse(&l.doc, t, &s, err, sizeof(err)) == 0) {
				if (!s.meta.ns || !s.meta.name || (s.ca_pem_len && !s.ca_pem) ||
				    (s.n_ca_keys == 0) != (s.ca_pem == NULL))
					abort();
				check_str(s.username);
				check_str(s.password);
			} else {
				check_err(err, sizeof(err), "Secret");
				if (s.password || s.username || s.ca_pem)
					abort();
			}
			k8s_secret_free(&s);
		}
	}
	k8s_list_free(&l);
}

static void fuzz_watch(const char *text, size_t len)
{
	struct k8s_watch_event ev;
	char err[300];

	if (k8s_watch_event_parse(&ev, text, len, err, sizeof(err)) != 0) {
		check_err(err, sizeof(err), "watch event");
		if (ev.doc.n || ev.resource_version || ev.object != -1)
			abort();
		return;
	}
	if (!json_is_object(&ev.doc, ev.object))
		abort();
	if ((ev.type == K8S_WATCH_ERROR) != (ev.resource_version == NULL))
		abort();
	if (ev.initial_events_end && ev.type != K8S_WATCH_BOOKMARK)
		abort();
	if (ev.type == K8S_WATCH_ADDED || ev.type == K8S_WATCH_MODIFIED || ev.type == K8S_WATCH_DELETED) {
		struct k8s_connector c;
		struct k8s_secret s;
		if (k8s_connector_parse(&ev.doc, ev.object, &c, err, sizeof(err)) == 0)
			check_url(&c.address);
		k8s_connector_free(&c);
		if (k8s_secret_parse(&ev.doc, ev.object, &s, err, sizeof(err)) == 0)
			check_str(s.password);
		k8s_secret_free(&s);
	}
	k8s_watch_event_free(&ev);
}

static void fuzz_status(const char *text, size_t len)
{
	struct k8s_status st;
	char err[300], buf[128];

	if (k8s_status_parse(text, len, &st, err, sizeof(err)) != 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort();
		return;
	}
	if (st.code < 0 || st.code > 999)
		abort();
	k8s_status_format(&st, buf, sizeof(buf));
	for (const char *c = buf; *c; c++)
		if ((unsigned char)*c < 0x20)
			abort(); /* safe for one log line */
	(void)k8s_status_is_expired(&st);
	k8s_status_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;

	walk_json(text, size);
	fuzz_tokenreview(text, size);
	fuzz_sar(text, size);
	fuzz_list(text, size, "Connector");
	fuzz_list(text, size, "Secret");
	fuzz_watch(text, size);
	fuzz_status(text, size);
	return 0;
}
