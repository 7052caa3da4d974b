/* Fuzzes ocigate-credential-provider's input handling: the bytes go in as a
 * CredentialProviderRequest (what the kubelet writes on stdin), as a token
 * for the JWT exp reader, and as a --proxy value and a duration. Whatever
 * the bytes: no crash, leak or overrun; a refused request writes nothing
 * and says why; an answered one is valid JSON whose only auth entry is for
 * the proxy, with the request's token as password and a cacheDuration
 * within the configured bounds. */
#include "k8s/credprov.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "util/json.h"
#include "util/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1700000000
#define FUZZ_PROXY "og.example:5000"

/* "1h0m0s" -> 3600; the response's format, read back. */
static int64_t fuzz_duration_back(const char *s)
{
	int64_t v;

	if (k8s_credprov_parse_duration(s, &v) != 0)
		abort();
	return v;
}

static void fuzz_check_response(const struct k8s_credprov_opts *o, const char *text, size_t len)
{
	struct json_doc d;
	int auth, entry, dur;
	char *token, *cache;

	if (len == 0 || text[len - 1] != '\n')
		abort();
	if (json_parse(&d, text, len, 64, NULL, 0) != 0)
		abort();
	auth = json_get(&d, 0, "auth");
	entry = json_get(&d, auth, FUZZ_PROXY);
	if (json_len(&d, auth) != 1 || !json_is_object(&d, entry))
		abort();
	if (!json_str_eq(&d, json_get(&d, entry, "username"), K8S_CREDPROV_USERNAME))
		abort();
	token = json_strdup(&d, json_get(&d, entry, "password"));
	if (!token || !*token)
		abort();
	for (const char *c = token; *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			abort();
	dur = json_get(&d, 0, "cacheDuration");
	cache = json_strdup(&d, dur);
	if (!cache)
		abort();
	int64_t secs = fuzz_duration_back(cache);
	if (secs < 0 || secs > o->max_cache_s)
		abort();
	int64_t exp;
	if (k8s_credprov_jwt_exp(token, &exp) == 0 && secs > 0 && exp - FUZZ_NOW <= secs)
		abort(); /* cached past the token's life */
	free(cache);
	free(token);
	json_doc_free(&d);
}

static void fuzz_request(const char *text, size_t len)
{
	struct k8s_credprov_opts o;
	struct evbuffer *out = evbuffer_new();
	enum k8s_credprov_result res;
	char err[512];

	k8s_credprov_opts_init(&o, FUZZ_PROXY);
	memset(err, 'x', sizeof(err));
	res = k8s_credprov_respond(&o, text, len, FUZZ_NOW, out, err, sizeof(err));
	switch (res) {
	case K8S_CREDPROV_OK:
	case K8S_CREDPROV_OK_EXPIRED: {
		size_t n = evbuffer_get_length(out);
		fuzz_check_response(&o, (const char *)evbuffer_pullup(out, -1), n);
		break;
	}
	case K8S_CREDPROV_MALFORMED:
	case K8S_CREDPROV_NO_TOKEN:
		if (evbuffer_get_length(out) != 0 || !memchr(err, '\0', sizeof(err)) || !err[0])
			abort();
		break;
	default:
		abort();
	}
	evbuffer_free(out);
}

static void fuzz_strings(const char *text, size_t len)
{
	char *s = x_strndup(text, len), err[256];
	int64_t v;

	if (strlen(s) == len) {
		if (k8s_credprov_jwt_exp(s, &v) == 0 && (v < 0 || v > 1000000000000000LL))
			abort();
		if (k8s_credprov_parse_duration(s, &v) == 0 && (v < 0 || v > (int64_t)10 * 366 * 86400))
			abort();
		if (k8s_credprov_check_proxy(s, err, sizeof(err)) == 0 &&
		    (strchr(s, '/') || strchr(s, '@') || strchr(s, ' ') || !*s))
			abort();
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_request((const char *)data, size);
	fuzz_strings((const char *)data, size);
	return 0;
}
