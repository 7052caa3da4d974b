/* Fuzzes reading a Connector's .status (which anyone allowed to patch
 * connectors/status can write) and what the writer does with it: computing
 * the next status from it, comparing, and writing the patch. Whatever the
 * bytes: no crash, leak or overrun; a parse failure says why and leaves an
 * empty status; the computed status always has our four conditions first;
 * the patch is valid JSON; and computing again from what was written finds
 * nothing to write (the writer cannot loop). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "k8s/status.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ours[] = { "SecretReady", "LivenessReady", "AuthReady", "Ready" };

static void read_status_of_patch(struct evbuffer *b, struct k8s_conn_status *out)
{
	size_t n = evbuffer_get_length(b);
	const char *text = (const char *)evbuffer_pullup(b, (ev_ssize_t)n);
	struct json_doc d;
	struct og_str raw;
	char err[200];

	if (json_parse(&d, text, n, 1 << 20, err, sizeof(err)) != 0)
		abort(); /* the patch must be valid JSON */
	raw = json_raw(&d, json_get(&d, 0, "status"));
	if (k8s_conn_status_parse(raw.p, raw.n, out, err, sizeof(err)) != 0)
		abort();
	json_doc_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct k8s_conn_status cur, next, back, again;
	struct k8s_status_input in = {
		.problem = size ? (enum k8s_store_problem)(data[0] % 5) : K8S_STORE_OK,
		.problem_message = "m",
		.has_secret_ref = size > 1 && (data[1] & 1),
		.probe = size > 2 ? (enum k8s_probe_outcome)(data[2] % 6) : K8S_PROBE_OK,
		.http_status = 200,
		.detail = "d\"\n\\",
		.generation = 7,
		.url = "http://p:1/namespaces/n/connectors/c",
		.now = "2024-01-01T00:00:00Z",
	};
	struct evbuffer *b;
	char err[200];

	err[0] = '\0';
	if (k8s_conn_status_parse((const char *)data, size, &cur, err, sizeof(err)) != 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0] || cur.n || cur.conds || cur.url)
			abort();
	}
	k8s_conn_status_compute(&cur, &in, &next);
	if (next.n < 4)
		abort();
	for (size_t i = 0; i < 4; i++)
		if (strcmp(next.conds[i].type, ours[i]) != 0 || next.conds[i].raw)
			abort();
	b = evbuffer_new();
	k8s_conn_status_patch(b, &next, "1");
	read_status_of_patch(b, &back);
	in.now = "2025-01-01T00:00:00Z";
	k8s_conn_status_compute(&back, &in, &again);
	/* Foreign conditions come back as the server would hold them, maybe
	 * reformatted only by it; here byte for byte. */
	if (!k8s_conn_status_equal(&back, &again))
		abort();
	evbuffer_free(b);
	k8s_conn_status_free(&cur);
	k8s_conn_status_free(&next);
	k8s_conn_status_free(&back);
	k8s_conn_status_free(&again);
	return 0;
}
