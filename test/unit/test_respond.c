/* Local responses: exact bytes of OCI error bodies and their heads. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/respond.h"
#include "test/unit/check.h"
#include "util/json_write.h"

static char *drain_all(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void test_json_escape(void)
{
	struct evbuffer *b = evbuffer_new();
	const char in[] = "a\"b\\c\n\x01\xff/\xc3\xa9\xe2\x82";
	jsonw_string(b, in, sizeof(in) - 1);
	char *s = drain_all(b);
	CHECK_MEM_STR(s, strlen(s), "\"a\\\"b\\\\c\\u000a\\u0001\\ufffd/\xc3\xa9\\ufffd\\ufffd\"");
	free(s);
	jsonw_string(b, "", 0);
	s = drain_all(b);
	CHECK_MEM_STR(s, strlen(s), "\"\"");
	free(s);
	evbuffer_free(b);
}

static void test_error_401(void)
{
	struct evbuffer *b = evbuffer_new();
	struct respond_opts o = { .realm = "ocigate" };
	size_t n = respond_error(b, 401, "UNAUTHORIZED", "authentication required", NULL, &o);
	char *s = drain_all(b);
	const char *body = "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}\n";
	CHECK_INT(n, strlen(body));
	CHECK(strncmp(s, "HTTP/1.1 401 Unauthorized\r\n", 27) == 0);
	CHECK(strstr(s, "\r\nWWW-Authenticate: Basic realm=\"ocigate\"\r\n") != NULL);
	CHECK(strstr(s, "\r\nContent-Type: application/json; charset=utf-8\r\n") != NULL);
	CHECK(strstr(s, "\r\nConnection: close\r\n") == NULL);
	const char *sep = strstr(s, "\r\n\r\n");
	CHECK(sep != NULL);
	if (sep)
		CHECK_MEM_STR(sep + 4, strlen(sep + 4), body);
	free(s);
	evbuffer_free(b);
}

static void test_error_head_close_detail(void)
{
	struct evbuffer *b = evbuffer_new();
	struct respond_opts o = { .head = true, .close = true, .retry_after = 5 };
	size_t n = respond_error(b, 503, "UNAVAILABLE", "x \"y\"", "ns/c", &o);
	char *s = drain_all(b);
	const char *body = "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"x \\\"y\\\"\","
			   "\"detail\":{\"connector\":\"ns/c\"}}]}\n";
	CHECK_INT(n, strlen(body));
	CHECK(strstr(s, "\r\nConnection: close\r\n") != NULL);
	CHECK(strstr(s, "\r\nRetry-After: 5\r\n") != NULL);
	char cl[64];
	snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", strlen(body));
	CHECK(strstr(s, cl) != NULL);
	const char *sep = strstr(s, "\r\n\r\n");
	CHECK(sep != NULL && sep[4] == '\0'); /* HEAD: no body */
	free(s);
	evbuffer_free(b);
}

static void test_reasons(void)
{
	CHECK(strcmp(respond_reason(206), "Partial Content") == 0);
	CHECK(strcmp(respond_reason(431), "Request Header Fields Too Large") == 0);
	CHECK(strcmp(respond_reason(599), "Unknown") == 0);
}

int main(void)
{
	test_json_escape();
	test_error_401();
	test_error_head_close_detail();
	test_reasons();
	CHECK_DONE();
}
