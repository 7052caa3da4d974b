#include "k8s/credprov.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "util/ascii.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/jwt.h"
#include "util/names.h"
#include "util/json_write.h"
#include "util/xalloc.h"

/* A request has a handful of fields and annotations; this is generous. */
#define CREDPROV_MAX_TOKENS 4096
/* A JWT payload larger than this is not a ServiceAccount token's. */
/* Durations beyond ten years are a typo. */
#define CREDPROV_MAX_DURATION ((int64_t)10 * 366 * 86400)

void k8s_credprov_opts_init(struct k8s_credprov_opts *o, const char *proxy)
{
	memset(o, 0, sizeof(*o));
	o->proxy = proxy;
	o->max_cache_s = K8S_CREDPROV_DEFAULT_MAX_CACHE;
	o->margin_s = K8S_CREDPROV_DEFAULT_MARGIN;
	o->no_exp_cache_s = K8S_CREDPROV_DEFAULT_NO_EXP_CACHE;
	o->cache_key = K8S_CREDPROV_KEY_REGISTRY;
}

/* ---- --proxy ---- */

/* A DNS name or dotted IPv4 address (util/names.h) in lower case and
 * without the trailing dot, as image references name it. */
static int credprov_check_name(const char *p, size_t n, char *err, size_t err_cap)
{
	struct og_str s = og_str_make(p, n);

	if (n == 0) {
		snprintf(err, err_cap, "the host is empty");
		return -1;
	}
	if (p[n - 1] == '.' || !names_host(s)) {
		snprintf(err, err_cap, "'%.*s' is not a host name", (int)n, p);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (ascii_is_upper(p[i])) {
			snprintf(err, err_cap,
				 "'%.*s' must be written in lower case, as image references name it",
				 (int)n, p);
			return -1;
		}
	}
	return 0;
}

static int credprov_check_ipv6(const char *p, size_t n, char *err, size_t err_cap)
{
	if (!names_ipv6(og_str_make(p, n))) {
		snprintf(err, err_cap, "the bracketed host is not an IPv6 address");
		return -1;
	}
	return 0;
}

static int credprov_check_port(const char *p, size_t n, char *err, size_t err_cap)
{
	uint16_t port;

	if (names_port(og_str_make(p, n), 1, &port) != 0) {
		snprintf(err, err_cap, "the port must be a number from 1 to 65535");
		return -1;
	}
	return 0;
}

int k8s_credprov_check_proxy(const char *proxy, char *err, size_t err_cap)
{
	size_t n = strlen(proxy);
	const char *colon;

	if (n == 0 || n > K8S_CREDPROV_MAX_PROXY) {
		snprintf(err, err_cap, "the proxy address must be HOST or HOST:PORT (1 to %d characters)",
			 K8S_CREDPROV_MAX_PROXY);
		return -1;
	}
	if (strchr(proxy, '/') || strchr(proxy, '@')) {
		snprintf(err, err_cap,
			 "the proxy address must be HOST or HOST:PORT, without scheme, user or path");
		return -1;
	}
	if (proxy[0] == '[') {
		const char *close = strchr(proxy, ']');
		if (!close) {
			snprintf(err, err_cap, "the IPv6 address has no closing ']'");
			return -1;
		}
		if (credprov_check_ipv6(proxy + 1, (size_t)(close - proxy - 1), err, err_cap) < 0)
			return -1;
		if (close[1] == '\0')
			return 0;
		if (close[1] != ':') {
			snprintf(err, err_cap, "only ':PORT' may follow the IPv6 address");
			return -1;
		}
		return credprov_check_port(close + 2, strlen(close + 2), err, err_cap);
	}
	colon = strchr(proxy, ':');
	if (!colon)
		return credprov_check_name(proxy, n, err, err_cap);
	if (credprov_check_name(proxy, (size_t)(colon - proxy), err, err_cap) < 0)
		return -1;
	return credprov_check_port(colon + 1, strlen(colon + 1), err, err_cap);
}

/* ---- durations ---- */

static int64_t credprov_unit_seconds(char c)
{
	switch (c) {
	case 'h':
		return 3600;
	case 'm':
		return 60;
	case 's':
		return 1;
	default:
		return -1;
	}
}

int k8s_credprov_parse_duration(const char *s, int64_t *seconds)
{
	int64_t total = 0;
	const char *p = s;

	if (!*p)
		return -1;
	while (*p) {
		int64_t v = 0, unit;
		const char *start = p;

		while (ascii_is_digit(*p)) {
			if (v > CREDPROV_MAX_DURATION)
				return -1;
			v = v * 10 + (*p - '0');
			p++;
		}
		if (p == start)
			return -1;
		if (*p == '\0' && start == s) {
			unit = 1; /* a bare number: seconds */
		} else {
			unit = credprov_unit_seconds(*p);
			if (unit < 0)
				return -1;
			p++;
		}
		if (v > CREDPROV_MAX_DURATION / unit)
			return -1;
		total += v * unit;
		if (total > CREDPROV_MAX_DURATION)
			return -1;
	}
	*seconds = total;
	return 0;
}

void k8s_credprov_format_duration(struct evbuffer *out, int64_t seconds)
{
	int64_t h = seconds / 3600, m = seconds % 3600 / 60, s = seconds % 60;

	if (h)
		evbuffer_add_printf(out, "%" PRId64 "h%" PRId64 "m%" PRId64 "s", h, m, s);
	else if (m)
		evbuffer_add_printf(out, "%" PRId64 "m%" PRId64 "s", m, s);
	else
		evbuffer_add_printf(out, "%" PRId64 "s", s);
}

int64_t k8s_credprov_cache_seconds(const struct k8s_credprov_opts *o, int64_t exp, int64_t now)
{
	int64_t left;

	if (exp < 0)
		return OG_MAX(OG_MIN(o->no_exp_cache_s, o->max_cache_s), 0);
	if (exp - now <= o->margin_s)
		return 0;
	left = exp - now - o->margin_s;
	return OG_MAX(OG_MIN(left, o->max_cache_s), 0);
}

/* ---- the token's exp claim (util/jwt: the plugin links only util/) ---- */

/* Unpadded base64url (RFC 7515 section 2) to padded standard base64, for
 * base64_decode. Returns the new string, NULL if it cannot be base64url. */
/* A negative exp is long past: 0 keeps -1 free to mean "no exp". */
int k8s_credprov_jwt_exp(const char *token, int64_t *exp)
{
	if (jwt_exp(og_str_make(token, strlen(token)), exp) != 0)
		return -1;
	if (*exp < 0)
		*exp = 0;
	return 0;
}

/* ---- the request ---- */

static int credprov_check_header(const struct json_doc *d, char *err, size_t err_cap)
{
	int api = json_get(d, 0, "apiVersion"), kind = json_get(d, 0, "kind");

	if (!json_is_string(d, api)) {
		snprintf(err, err_cap, "apiVersion is missing or not a string (want %s)",
			 K8S_CREDPROV_API_VERSION);
		return -1;
	}
	if (!json_str_eq(d, api, K8S_CREDPROV_API_VERSION)) {
		struct og_str raw = json_raw(d, api);
		snprintf(err, err_cap, "apiVersion \"%.*s\" is not supported (want %s)",
			 (int)OG_MIN(raw.n, 80), raw.p, K8S_CREDPROV_API_VERSION);
		return -1;
	}
	if (!json_str_eq(d, kind, "CredentialProviderRequest")) {
		snprintf(err, err_cap, "kind is not CredentialProviderRequest");
		return -1;
	}
	return 0;
}

static int credprov_check_image(const struct json_doc *d, char *err, size_t err_cap)
{
	int image = json_get(d, 0, "image");

	if (!json_is_string(d, image) || json_string_len(d, image) <= 0) {
		snprintf(err, err_cap, "image is missing, empty or not a string");
		return -1;
	}
	return 0;
}

/* Not used, but a request whose annotations are not a string map is not
 * one the kubelet wrote. */
static int credprov_check_annotations(const struct json_doc *d, char *err, size_t err_cap)
{
	int ann = json_get(d, 0, "serviceAccountAnnotations");

	if (ann < 0 || json_is_null(d, ann))
		return 0;
	if (!json_is_object(d, ann)) {
		snprintf(err, err_cap, "serviceAccountAnnotations must be an object (got %s)",
			 json_type_name(d, ann));
		return -1;
	}
	for (int k = json_object_first(d, ann); k >= 0; k = json_object_next(d, k)) {
		if (!json_is_string(d, json_value(d, k))) {
			snprintf(err, err_cap, "serviceAccountAnnotations values must be strings (got %s)",
				 json_type_name(d, json_value(d, k)));
			return -1;
		}
	}
	return 0;
}

/* Copies the token into a new string; NULL with a message when it is
 * missing or unusable. */
static char *credprov_token(const struct json_doc *d, enum k8s_credprov_result *why, char *err,
			    size_t err_cap)
{
	int tok = json_get(d, 0, "serviceAccountToken");
	ssize_t n;
	char *token;

	*why = K8S_CREDPROV_MALFORMED;
	if (tok >= 0 && !json_is_null(d, tok) && !json_is_string(d, tok)) {
		snprintf(err, err_cap, "serviceAccountToken must be a string (got %s)",
			 json_type_name(d, tok));
		return NULL;
	}
	n = json_string_len(d, tok);
	if (n <= 0) {
		*why = K8S_CREDPROV_NO_TOKEN;
		snprintf(err, err_cap,
			 "the request has no serviceAccountToken: give this provider tokenAttributes "
			 "(serviceAccountTokenAudience, requireServiceAccount: true) in the kubelet's "
			 "CredentialProviderConfig (Kubernetes 1.33+, feature "
			 "KubeletServiceAccountTokenForCredentialProviders)");
		return NULL;
	}
	if ((size_t)n > K8S_CREDPROV_MAX_TOKEN) {
		snprintf(err, err_cap, "serviceAccountToken is longer than %zu bytes",
			 K8S_CREDPROV_MAX_TOKEN);
		return NULL;
	}
	token = json_strdup(d, tok);
	if (!token) {
		snprintf(err, err_cap, "serviceAccountToken holds a NUL character");
		return NULL;
	}
	for (const char *c = token; *c; c++) {
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
			snprintf(err, err_cap,
				 "serviceAccountToken holds a space, control or non-ASCII character");
			free(token);
			return NULL;
		}
	}
	return token;
}

static void credprov_write_response(const struct k8s_credprov_opts *o, const char *token,
				    int64_t cache_s, struct evbuffer *out)
{
	const char *key_type = o->cache_key == K8S_CREDPROV_KEY_IMAGE ? "Image" : "Registry";

	evbuffer_add_printf(out, "{\"apiVersion\":\"%s\",\"kind\":\"CredentialProviderResponse\","
			    "\"cacheKeyType\":\"%s\",\"cacheDuration\":\"",
			    K8S_CREDPROV_API_VERSION, key_type);
	k8s_credprov_format_duration(out, cache_s);
	evbuffer_add_printf(out, "\",\"auth\":{");
	jsonw_string(out, o->proxy, strlen(o->proxy));
	evbuffer_add_printf(out, ":{\"username\":\"%s\",\"password\":", K8S_CREDPROV_USERNAME);
	jsonw_string(out, token, strlen(token));
	evbuffer_add_printf(out, "}}}\n");
}

enum k8s_credprov_result k8s_credprov_respond(const struct k8s_credprov_opts *o, const char *req,
					      size_t len, int64_t now, struct evbuffer *out,
					      char *err, size_t err_cap)
{
	enum k8s_credprov_result res = K8S_CREDPROV_MALFORMED;
	struct json_doc d = { 0 };
	char jerr[160];
	char *token = NULL;
	int64_t exp = -1;

	if (len > K8S_CREDPROV_MAX_REQUEST) {
		snprintf(err, err_cap, "the request is larger than %zu bytes",
			 K8S_CREDPROV_MAX_REQUEST);
		goto out;
	}
	if (len == 0) {
		snprintf(err, err_cap, "the request is empty (expected a CredentialProviderRequest "
			 "on stdin)");
		goto out;
	}
	if (json_parse(&d, req, len, CREDPROV_MAX_TOKENS, jerr, sizeof(jerr)) != 0) {
		snprintf(err, err_cap, "the request is not JSON: %s", jerr);
		goto out;
	}
	if (!json_is_object(&d, 0)) {
		snprintf(err, err_cap, "the request must be a JSON object (got %s)",
			 json_type_name(&d, 0));
		goto out;
	}
	if (credprov_check_header(&d, err, err_cap) < 0 || credprov_check_image(&d, err, err_cap) < 0 ||
	    credprov_check_annotations(&d, err, err_cap) < 0)
		goto out;
	token = credprov_token(&d, &res, err, err_cap);
	if (!token)
		goto out;
	if (k8s_credprov_jwt_exp(token, &exp) < 0)
		exp = -1;
	res = exp >= 0 && exp <= now ? K8S_CREDPROV_OK_EXPIRED : K8S_CREDPROV_OK;
	credprov_write_response(o, token, k8s_credprov_cache_seconds(o, exp, now), out);
out:
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
	json_doc_free(&d);
	return res;
}
