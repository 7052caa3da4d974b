/* Fuzzes what the pull-secret refresher reads from the API server: the
 * bytes go in as a TokenRequest response, as an existing Secret, as a
 * ServiceAccount object and as an RFC 3339 time. Whatever the bytes: no
 * crash, leak or overrun; an accepted token is non-empty printable ASCII
 * and goes into a dockerconfigjson that parses back as JSON. */
#include "k8s/refresher.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"
#include "util/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_token(const char *text, size_t n)
{
	struct k8s_refresher_token t;
	struct json_doc d = { 0 };
	char err[256];
	char *cfg;

	if (k8s_refresher_token_parse(text, n, &t, err, sizeof(err)) != 0) {
		if (t.token || strncmp(err, "TokenRequest response: ", 23) != 0)
			abort();
		return;
	}
	if (!t.token || !*t.token)
		abort();
	for (const char *p = t.token; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			abort();
	cfg = k8s_refresher_dockerconfig("og.example:5000", t.token);
	if (json_parse(&d, cfg, strlen(cfg), 64, NULL, 0) != 0)
		abort();
	json_doc_free(&d);
	free(cfg);
	(void)k8s_refresher_delay_ms(1700000000, t.expires_at, (uint64_t)t.expires_at);
	k8s_refresher_token_free(&t);
}

static void fuzz_sa(const char *text, size_t n)
{
	struct json_doc d = { 0 };
	struct k8s_refresher_sa sa;
	char err[256];

	if (json_parse(&d, text, n, 1u << 16, NULL, 0) != 0)
		return;
	if (k8s_refresher_sa_parse(&d, 0, &sa, err, sizeof(err)) == 0) {
		if (!sa.ns || !sa.name || (sa.secret && !k8s_refresher_name_ok(sa.secret)))
			abort();
	} else if (sa.secret) {
		abort();
	}
	k8s_refresher_sa_free(&sa);
	json_doc_free(&d);
}

static void fuzz_secret(const char *text, size_t n)
{
	struct k8s_refresher_secret_info si;
	char err[256];

	if (k8s_refresher_secret_info_parse(text, n, &si, err, sizeof(err)) == 0) {
		if (!si.resource_version || !*si.resource_version)
			abort();
	} else if (si.resource_version || si.owner || si.type) {
		abort();
	}
	k8s_refresher_secret_info_free(&si);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = x_malloc(size + 1);
	int64_t t;

	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_token(s, size);
	fuzz_sa(s, size);
	fuzz_secret(s, size);
	if (k8s_refresher_parse_time(s, &t) == 0 && strlen(s) > 64)
		abort(); /* nothing that long is an RFC 3339 time we accept */
	free(s);
	return 0;
}
