/* util/json: the validator, token navigation and string decoding. */
#include "util/json.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test/unit/check.h"
#include "util/xalloc.h"

#define MAXTOK 100000

static int parse_ok(struct json_doc *d, const char *s)
{
	char err[200];
	int r = json_parse(d, s, strlen(s), MAXTOK, err, sizeof(err));
	if (r != 0)
		fprintf(stderr, "unexpected parse failure of %s: %s\n", s, err);
	return r;
}

/* The input must be refused with a message that names the offset. */
static void check_invalid_at(int line, const char *s, size_t len, size_t off)
{
	struct json_doc d;
	char err[200] = "";
	char want[64];

	if (json_parse(&d, s, len, MAXTOK, err, sizeof(err)) == 0) {
		fprintf(stderr, "%s:%d: accepted invalid JSON: %.*s\n", __FILE__, line, (int)len, s);
		check_failures++;
		json_doc_free(&d);
		return;
	}
	snprintf(want, sizeof(want), "invalid JSON at offset %zu: ", off);
	if (strncmp(err, want, strlen(want)) != 0) {
		fprintf(stderr, "%s:%d: for %.*s: error \"%s\", expected prefix \"%s\"\n", __FILE__,
			line, (int)len, s, err, want);
		check_failures++;
	}
	CHECK(d.n == 0 && d.toks == NULL);
}

#define INVALID_AT(s, off) check_invalid_at(__LINE__, s, strlen(s), off)
#define INVALID_LEN_AT(s, n, off) check_invalid_at(__LINE__, s, n, off)

static void check_valid(int line, const char *s, int n_tokens)
{
	struct json_doc d;
	char err[200] = "";

	if (json_parse(&d, s, strlen(s), MAXTOK, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s:%d: refused valid JSON %s: %s\n", __FILE__, line, s, err);
		check_failures++;
		return;
	}
	if (d.n != n_tokens) {
		fprintf(stderr, "%s:%d: %s has %d tokens, expected %d\n", __FILE__, line, s, d.n,
			n_tokens);
		check_failures++;
	}
	json_doc_free(&d);
}

#define VALID(s, n) check_valid(__LINE__, s, n)

static void test_valid(void)
{
	VALID("{}", 1);
	VALID("[]", 1);
	VALID("0", 1);
	VALID("-0", 1);
	VALID("-12.5e+3", 1);
	VALID("1E9", 1);
	VALID("0.0e-0", 1);
	VALID("true", 1);
	VALID("null", 1);
	VALID("\"\"", 1);
	VALID(" \t\r\n{ \"a\" : [ 1 , 2 , { } ] }\n ", 6);
	VALID("{\"a\":{\"b\":{\"c\":null}},\"d\":false}", 9);
	VALID("[[],[[]],{},\"x\",1]", 7);
	VALID("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"", 1);
	VALID("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"", 1);
	VALID("{\"a\":1,\"A\":2,\"b\":{\"a\":3}}", 9);
	VALID("[\"a\",\"a\"]", 3);
	VALID("\"\x7f\"", 1); /* DEL needs no escape in RFC 8259 */
}

static void test_invalid(void)
{
	INVALID_AT("", 0);
	INVALID_AT("   ", 3);
	INVALID_AT("{", 1);
	INVALID_AT("[1,2", 4);
	INVALID_AT("{\"a\":1,}", 7);
	INVALID_AT("[1,]", 3);
	INVALID_AT("[,1]", 1);
	INVALID_AT("{,}", 1);
	INVALID_AT("[1 2]", 3);
	INVALID_AT("{\"a\" 1}", 5);
	INVALID_AT("{\"a\":}", 5);
	INVALID_AT("{\"a\"}", 4);
	INVALID_AT("{1:2}", 1);
	INVALID_AT("{'a':2}", 1);
	INVALID_AT("[}", 1);
	INVALID_AT("{\"a\":1]", 6);
	INVALID_AT("]", 0);
	INVALID_AT("{} {}", 3);
	INVALID_AT("1 2", 2);
	INVALID_AT("01", 1);
	INVALID_AT("-01", 2);
	INVALID_AT("1.", 2);
	INVALID_AT(".5", 0);
	INVALID_AT("+1", 0);
	INVALID_AT("-", 1);
	INVALID_AT("1e", 2);
	INVALID_AT("1e+", 3);
	INVALID_AT("0x10", 1);
	INVALID_AT("NaN", 0);
	INVALID_AT("tru", 0);
	INVALID_AT("truex", 4);
	INVALID_AT("True", 0);
	INVALID_AT("nul", 0);
	INVALID_AT("[undefined]", 1);
	INVALID_AT("\"abc", 4);
	INVALID_AT("\"ab\\", 3);
	INVALID_AT("\"\\x41\"", 2);
	INVALID_AT("\"\\u12G4\"", 2);
	INVALID_AT("\"\\u12\"", 2);
	INVALID_AT("\"\\ud800\"", 7);
	INVALID_AT("\"\\ud800\\u0041\"", 7);
	INVALID_AT("\"\\udc00\"", 7);
	INVALID_AT("\"a\tb\"", 2);
	INVALID_AT("\"a\nb\"", 2);
	INVALID_AT("\"a\x1f\"", 2);
	INVALID_AT("\"\xc0\x80\"", 1);        /* overlong NUL */
	INVALID_AT("\"\xe0\x80\xaf\"", 1);    /* overlong '/' */
	INVALID_AT("\"\xed\xa0\x80\"", 1);    /* encoded surrogate */
	INVALID_AT("\"\xf4\x90\x80\x80\"", 1); /* beyond U+10FFFF */
	INVALID_AT("\"\xf5\x80\x80\x80\"", 1);
	INVALID_AT("\"\xc3\"", 1);
	INVALID_AT("\"\x80\"", 1);
	INVALID_LEN_AT("\"a\0b\"", 5, 2);
	INVALID_LEN_AT("{}\0", 3, 2);
	INVALID_LEN_AT("[1,\0]", 5, 3);
	INVALID_AT("\xef\xbb\xbf{}", 0); /* no BOM (RFC 8259 section 8.1) */
	INVALID_AT("{\"a\":1,\"a\":2}", 7);
	INVALID_AT("{\"a\":1,\"\\u0061\":2}", 7);
	INVALID_AT("{\"b\":{\"x\":1,\"y\":2,\"x\":3}}", 18);
	INVALID_AT("[{\"\\u00e9\":1,\"\xc3\xa9\":2}]", 13);
	INVALID_AT("{\"a\":1 /* c */}", 7);
}

static void test_depth_and_limits(void)
{
	char buf[2 * (JSON_MAX_DEPTH + 2) + 1];
	struct json_doc d;
	char err[200];
	int depth;

	for (depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
		memset(buf, '[', (size_t)depth);
		memset(buf + depth, ']', (size_t)depth);
		int r = json_parse(&d, buf, 2 * (size_t)depth, MAXTOK, err, sizeof(err));
		CHECK_INT(r, depth == JSON_MAX_DEPTH ? 0 : -1);
		if (r == 0) {
			CHECK_INT(d.n, JSON_MAX_DEPTH);
			json_doc_free(&d);
		} else {
			CHECK(strstr(err, "offset 128: nested too deeply") != NULL);
		}
	}

	const char *s = "[1,2,[3,4]]"; /* 6 tokens */
	CHECK_INT(json_parse(&d, s, strlen(s), 6, err, sizeof(err)), 0);
	json_doc_free(&d);
	CHECK_INT(json_parse(&d, s, strlen(s), 5, err, sizeof(err)), -1);
	CHECK(strstr(err, "more than 5 values") != NULL);
	/* error buffers may be tiny or absent */
	CHECK_INT(json_parse(&d, "[", 1, 5, NULL, 0), -1);
	CHECK_INT(json_parse(&d, "[", 1, 5, err, 3), -1);
	CHECK_INT((int)strlen(err), 2);
	/* a length that stops inside the text is honoured */
	CHECK_INT(json_parse(&d, "{}garbage", 2, 5, err, sizeof(err)), 0);
	json_doc_free(&d);
	json_doc_free(&d); /* harmless twice */
}

static void test_navigation(void)
{
	struct json_doc d;
	const char *s = "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,"
			"\"user\":{\"username\":\"system:serviceaccount:ns:sa\","
			"\"groups\":[\"a\",\"b\",[\"skip\",{\"me\":1}],\"c\"]},"
			"\"empty\":[],\"eobj\":{}},\"n\":null,\"k.dot\":1}";

	if (parse_ok(&d, s) != 0) {
		check_failures++;
		return;
	}
	CHECK_INT(json_type(&d, 0), JSON_OBJECT);
	CHECK_INT(json_len(&d, 0), 4);
	int status = json_get(&d, 0, "status");
	CHECK(json_is_object(&d, status));
	CHECK(json_str_eq(&d, json_get(&d, 0, "kind"), "TokenReview"));
	CHECK(!json_str_eq(&d, json_get(&d, 0, "kind"), "TokenRevie"));
	CHECK(!json_str_eq(&d, json_get(&d, 0, "kind"), "TokenReviews"));
	CHECK_INT(json_get(&d, 0, "missing"), -1);
	CHECK_INT(json_get(&d, -1, "kind"), -1);
	CHECK_INT(json_get(&d, json_get(&d, 0, "kind"), "kind"), -1); /* not an object */
	CHECK_INT(json_get(&d, 0, "authenticated"), -1); /* not a deep search */
	CHECK(json_is_null(&d, json_get(&d, 0, "n")));
	CHECK_INT(json_type(&d, json_get(&d, 0, "k.dot")), JSON_NUMBER);
	CHECK_INT(json_path(&d, 0, "k.dot"), -1);

	bool b = false;
	CHECK(json_bool(&d, json_path(&d, 0, "status.authenticated"), &b));
	CHECK(b);
	CHECK(!json_bool(&d, json_path(&d, 0, "status.user"), &b));
	CHECK(json_str_eq(&d, json_path(&d, 0, "status.user.username"),
			  "system:serviceaccount:ns:sa"));
	CHECK_INT(json_path(&d, 0, "status.user.username.x"), -1);
	CHECK_INT(json_path(&d, 0, "status..user"), -1);
	CHECK_INT(json_path(&d, 0, ""), -1);

	int groups = json_path(&d, 0, "status.user.groups");
	CHECK_INT(json_array_len(&d, groups), 4);
	CHECK_INT(json_array_len(&d, status), -1);
	const char *want[] = { "a", "b", NULL, "c" };
	int i = 0;
	for (int t = json_array_first(&d, groups); t >= 0; t = json_next(&d, t), i++) {
		if (i >= 4)
			break;
		if (want[i])
			CHECK(json_str_eq(&d, t, want[i]));
		else
			CHECK_INT(json_array_len(&d, t), 2);
	}
	CHECK_INT(i, 4);
	CHECK_INT(json_array_first(&d, json_path(&d, 0, "status.empty")), -1);
	CHECK_INT(json_array_len(&d, json_path(&d, 0, "status.empty")), 0);
	CHECK_INT(json_object_first(&d, json_path(&d, 0, "status.eobj")), -1);
	CHECK_INT(json_len(&d, json_path(&d, 0, "status.eobj")), 0);
	CHECK_INT(json_len(&d, json_path(&d, 0, "kind")), -1);

	const char *keys[] = { "authenticated", "user", "empty", "eobj" };
	i = 0;
	for (int k = json_object_first(&d, status); k >= 0; k = json_object_next(&d, k), i++)
		if (i < 4)
			CHECK(json_str_eq(&d, k, keys[i]));
	CHECK_INT(i, 4);
	CHECK_INT(json_value(&d, 0), -1);
	CHECK_INT(json_value(&d, json_array_first(&d, groups)), -1); /* array item is no key */
	CHECK_INT(json_object_first(&d, groups), -1);

	CHECK_INT(json_type(&d, d.n), JSON_NONE);
	CHECK_INT(json_type(&d, -5), JSON_NONE);
	CHECK(strcmp(json_type_name(&d, -1), "nothing") == 0);
	CHECK(strcmp(json_type_name(&d, status), "object") == 0);
	CHECK_INT(json_offset(&d, json_get(&d, 0, "kind")), 8);
	json_doc_free(&d);
}

static void test_strings(void)
{
	struct json_doc d;
	char buf[64];
	const char *s = "[\"plain\",\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\",\"\\u00e9\\u20AC\","
			"\"\\ud83d\\ude00\",\"x\\u0000y\",\"\",\"caf\xc3\xa9\"]";

	if (parse_ok(&d, s) != 0) {
		check_failures++;
		return;
	}
	int t = json_array_first(&d, 0);
	char *p = json_strdup(&d, t);
	CHECK(p && strcmp(p, "plain") == 0);
	free(p);
	CHECK_INT(json_string(&d, t, buf, 6), 5);
	CHECK_INT(json_string(&d, t, buf, 5), -1); /* no room for the NUL */

	t = json_next(&d, t);
	p = json_strdup(&d, t);
	CHECK(p && strcmp(p, "a\"b\\c/d\b\f\n\r\t") == 0);
	free(p);
	CHECK_INT(json_string_len(&d, t), 12);
	CHECK(json_str_eq(&d, t, "a\"b\\c/d\b\f\n\r\t"));
	CHECK(!json_str_eq(&d, t, "a\"b\\c/d\b\f\n\r"));
	CHECK(!json_str_eq(&d, t, "a\"b\\c/d\b\f\n\r\tX"));

	t = json_next(&d, t);
	CHECK_INT(json_string(&d, t, buf, sizeof(buf)), 5);
	CHECK(strcmp(buf, "\xc3\xa9\xe2\x82\xac") == 0);
	CHECK(json_str_eq(&d, t, "\xc3\xa9\xe2\x82\xac"));

	t = json_next(&d, t);
	CHECK_INT(json_string(&d, t, buf, sizeof(buf)), 4);
	CHECK(strcmp(buf, "\xf0\x9f\x98\x80") == 0);

	t = json_next(&d, t);
	CHECK(json_strdup(&d, t) == NULL); /* \u0000 */
	CHECK_INT(json_string(&d, t, buf, sizeof(buf)), -1);
	CHECK(!json_str_eq(&d, t, "x"));

	t = json_next(&d, t);
	p = json_strdup(&d, t);
	CHECK(p && *p == '\0');
	free(p);
	CHECK(json_str_eq(&d, t, ""));

	t = json_next(&d, t);
	CHECK(json_str_eq(&d, t, "caf\xc3\xa9"));
	CHECK_INT(json_next(&d, t), -1);

	CHECK(json_strdup(&d, 0) == NULL); /* not a string */
	CHECK_INT(json_string_len(&d, 0), -1);
	CHECK(!json_str_eq(&d, -1, ""));
	json_doc_free(&d);
}

static void test_numbers(void)
{
	struct json_doc d;
	int64_t v = 77;
	bool b;
	const char *s = "[0,-0,9223372036854775807,-9223372036854775808,9223372036854775808,"
			"-9223372036854775809,1.0,1e3,\"5\",true,false,null,-42]";

	if (parse_ok(&d, s) != 0) {
		check_failures++;
		return;
	}
	int t = json_array_first(&d, 0);
	CHECK(json_int64(&d, t, &v) && v == 0);
	t = json_next(&d, t);
	CHECK(json_int64(&d, t, &v) && v == 0);
	t = json_next(&d, t);
	CHECK(json_int64(&d, t, &v) && v == INT64_MAX);
	t = json_next(&d, t);
	CHECK(json_int64(&d, t, &v) && v == INT64_MIN);
	v = 77;
	t = json_next(&d, t);
	CHECK(!json_int64(&d, t, &v));
	t = json_next(&d, t);
	CHECK(!json_int64(&d, t, &v));
	t = json_next(&d, t);
	CHECK(!json_int64(&d, t, &v)); /* 1.0 */
	t = json_next(&d, t);
	CHECK(!json_int64(&d, t, &v)); /* 1e3 */
	t = json_next(&d, t);
	CHECK(!json_int64(&d, t, &v)); /* "5" */
	CHECK(!json_bool(&d, t, &b));
	CHECK_INT(v, 77);
	t = json_next(&d, t);
	CHECK(json_bool(&d, t, &b) && b);
	CHECK(!json_int64(&d, t, &v));
	t = json_next(&d, t);
	CHECK(json_bool(&d, t, &b) && !b);
	t = json_next(&d, t);
	CHECK(!json_bool(&d, t, &b));
	CHECK(json_is_null(&d, t));
	t = json_next(&d, t);
	CHECK(json_int64(&d, t, &v) && v == -42);
	json_doc_free(&d);
}

/* Wide and long inputs must take linear time: jsmn alone is quadratic on
 * these without parent links. */
static void test_large(void)
{
	const size_t items = 200000;
	size_t cap = items * 24 + 16, n = 0;
	char *s = x_malloc(cap);
	struct json_doc d;
	char err[200];
	clock_t t0 = clock();

	s[n++] = '{';
	for (size_t i = 0; i < items; i++)
		n += (size_t)snprintf(s + n, cap - n, "%s\"k%zu\":[1]", i ? "," : "", i);
	s[n++] = '}';
	CHECK_INT(json_parse(&d, s, n, 3 * items + 1, err, sizeof(err)), 0);
	CHECK_INT(d.n, 3 * (int)items + 1);
	CHECK_INT(json_len(&d, 0), (int)items);
	CHECK(json_is_array(&d, json_get(&d, 0, "k199999")));
	json_doc_free(&d);

	/* the same key at both ends */
	n = 0;
	s[n++] = '{';
	for (size_t i = 0; i < items; i++)
		n += (size_t)snprintf(s + n, cap - n, "%s\"k%zu\":1", i ? "," : "", i);
	n += (size_t)snprintf(s + n, cap - n, ",\"k0\":2}");
	CHECK_INT(json_parse(&d, s, n, 3 * items + 3, err, sizeof(err)), -1);
	CHECK(strstr(err, "duplicate key \"k0\"") != NULL);

	n = 0;
	s[n++] = '[';
	for (size_t i = 0; i < items; i++)
		n += (size_t)snprintf(s + n, cap - n, "%s[{}]", i ? "," : "");
	s[n++] = ']';
	CHECK_INT(json_parse(&d, s, n, 2 * items + 1, err, sizeof(err)), 0);
	int count = 0;
	for (int t = json_array_first(&d, 0); t >= 0; t = json_next(&d, t))
		count++;
	CHECK_INT(count, (int)items);
	json_doc_free(&d);
	free(s);
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	if (secs > 5.0) {
		fprintf(stderr, "%s:%d: large documents took %.1f s\n", __FILE__, __LINE__, secs);
		check_failures++;
	}
}

int main(void)
{
	test_valid();
	test_invalid();
	test_depth_and_limits();
	test_navigation();
	test_strings();
	test_numbers();
	test_large();
	CHECK_DONE();
}
