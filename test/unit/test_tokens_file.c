#include "auth/tokens_file.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "test/unit/check.h"

static void sha256(const char *s, size_t n, unsigned char out[32])
{
	unsigned int len = 0;

	if (EVP_Digest(s, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
		abort();
}

static const struct token_entry *find(const struct tokens_file *tf, const char *token)
{
	unsigned char h[32];

	sha256(token, strlen(token), h);
	return tokens_file_find(tf, h);
}

static int parse(const char *data, struct tokens_file *tf, char *err, size_t cap)
{
	return tokens_file_parse(data, strlen(data), tf, err, cap);
}

static void test_simple(void)
{
	struct tokens_file tf;
	char err[256];

	CHECK_INT(parse("abc,alice,uid-1\n", &tf, err, sizeof(err)), 0);
	CHECK_INT(tf.n, 1);
	const struct token_entry *e = find(&tf, "abc");
	CHECK(e == &tf.entries[0]);
	if (e) {
		CHECK(strcmp(e->user, "alice") == 0);
		CHECK(strcmp(e->uid, "uid-1") == 0);
		CHECK_INT(e->n_groups, 0);
		/* SHA-256("abc"), FIPS 180-2 appendix B.1 */
		static const unsigned char want[32] = {
			0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
			0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
			0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
		};
		CHECK(memcmp(e->token_sha256, want, 32) == 0);
	}
	CHECK(find(&tf, "abd") == NULL);
	CHECK(find(&tf, "") == NULL);
	CHECK(find(&tf, "abc\n") == NULL);
	tokens_file_free(&tf);
	CHECK(tf.entries == NULL);
	CHECK_INT(tf.n, 0);
	tokens_file_free(&tf); /* a zeroed struct is fine */
}

static void test_groups(void)
{
	struct tokens_file tf;
	char err[256];
	const char *data =
		"t1,bob,u1,\"system:serviceaccounts,system:serviceaccounts:ns,dev\"\n"
		"t2,carol,u2,solo\n"
		"t3,dave,u3,\n"
		"t4,erin,u4,\"\"\n"
		"t5,frank,u5,g1,extra,columns\n"
		"\"t\"\"6\",\"last, first\",\"u\"\"6\",\"a\"\"b\"\n"
		"t7,gina,\n";

	CHECK_INT(parse(data, &tf, err, sizeof(err)), 0);
	CHECK_INT(tf.n, 7);
	const struct token_entry *e = find(&tf, "t1");
	CHECK(e != NULL);
	if (e) {
		CHECK(strcmp(e->user, "bob") == 0);
		CHECK_INT(e->n_groups, 3);
		if (e->n_groups == 3) {
			CHECK(strcmp(e->groups[0], "system:serviceaccounts") == 0);
			CHECK(strcmp(e->groups[1], "system:serviceaccounts:ns") == 0);
			CHECK(strcmp(e->groups[2], "dev") == 0);
		}
	}
	e = find(&tf, "t2");
	CHECK(e && e->n_groups == 1 && strcmp(e->groups[0], "solo") == 0);
	e = find(&tf, "t3");
	CHECK(e && e->n_groups == 0 && strcmp(e->user, "dave") == 0);
	e = find(&tf, "t4");
	CHECK(e && e->n_groups == 0);
	e = find(&tf, "t5");
	CHECK(e && e->n_groups == 1 && strcmp(e->groups[0], "g1") == 0);
	e = find(&tf, "t\"6");
	CHECK(e != NULL);
	if (e) {
		CHECK(strcmp(e->user, "last, first") == 0);
		CHECK(strcmp(e->uid, "u\"6") == 0);
		CHECK(e->n_groups == 1 && strcmp(e->groups[0], "a\"b") == 0);
	}
	e = find(&tf, "t7");
	CHECK(e && strcmp(e->uid, "") == 0 && e->n_groups == 0);
	CHECK(find(&tf, "\"t\"\"6\"") == NULL);
	tokens_file_free(&tf);
}

static void test_comments_blank_crlf(void)
{
	struct tokens_file tf;
	char err[256];
	const char *data =
		"# static tokens\r\n"
		"\r\n"
		"   \n"
		"\t# indented comment,with,commas\n"
		"a,u1,id1\r\n"
		"\n"
		"b,u2,id2,\"g1,g2\"\r\n"
		"c,u3,id3"; /* no final newline */

	CHECK_INT(parse(data, &tf, err, sizeof(err)), 0);
	CHECK_INT(tf.n, 3);
	const struct token_entry *e = find(&tf, "a");
	CHECK(e && strcmp(e->user, "u1") == 0 && strcmp(e->uid, "id1") == 0);
	e = find(&tf, "b");
	CHECK(e && strcmp(e->uid, "id2") == 0 && e->n_groups == 2 &&
	      strcmp(e->groups[1], "g2") == 0);
	e = find(&tf, "c");
	CHECK(e && strcmp(e->uid, "id3") == 0);
	tokens_file_free(&tf);

	CHECK_INT(parse("", &tf, err, sizeof(err)), 0);
	CHECK_INT(tf.n, 0);
	CHECK(find(&tf, "a") == NULL);
	tokens_file_free(&tf);
	CHECK_INT(parse("# nothing\n\n", &tf, err, sizeof(err)), 0);
	CHECK_INT(tf.n, 0);
	tokens_file_free(&tf);
	/* fields are verbatim: a space is part of the token */
	CHECK_INT(parse(" a ,u,id\n", &tf, err, sizeof(err)), 0);
	CHECK(find(&tf, " a ") != NULL);
	CHECK(find(&tf, "a") == NULL);
	tokens_file_free(&tf);
}

static void check_error(int line, const char *data, size_t len, const char *want)
{
	struct tokens_file tf = { (struct token_entry *)&tf, 99 };
	char err[256];

	memset(err, 'X', sizeof(err));
	int r = tokens_file_parse(data, len, &tf, err, sizeof(err));
	if (r != -1 || strcmp(err, want) != 0 || tf.entries != NULL || tf.n != 0) {
		fprintf(stderr, "test_tokens_file.c:%d: result %d, error \"%.*s\", expected \"%s\"\n",
			line, r, (int)strnlen(err, sizeof(err)), err, want);
		check_failures++;
	}
	if (strstr(err, "SECRET")) {
		fprintf(stderr, "test_tokens_file.c:%d: token in error message \"%s\"\n",
			line, err);
		check_failures++;
	}
	tokens_file_free(&tf);
}

#define ERR(data, want) check_error(__LINE__, data, strlen(data), want)

static void test_errors(void)
{
	ERR("SECRET,u\n", "line 1: expected at least 3 columns (token, user name, uid), found 2");
	ERR("SECRET\n", "line 1: expected at least 3 columns (token, user name, uid), found 1");
	ERR("# c\n\na,u,1\nSECRET,u\n",
	    "line 4: expected at least 3 columns (token, user name, uid), found 2");
	ERR(",u,id\n", "line 1: empty token");
	ERR("\"\",u,id\n", "line 1: empty token");
	ERR("SECRET,,id\n", "line 1: empty user name");
	ERR("SECRET1,u,1\nb,v,2\r\nSECRET1,w,3\n",
	    "line 3: duplicate token (same token as line 1)");
	ERR("a,u,1\nSECRET,v,2\nc,w,3\nSECRET,x,4\nSECRET,y,5\n",
	    "line 4: duplicate token (same token as line 2)");
	ERR("SECRET,u,id,\"g1,g2\n", "line 1: unterminated quoted field");
	ERR("\"SECRET,u,id\n", "line 1: unterminated quoted field");
	ERR("a,u,1\n\"SECRET\nmore\",u,id\n", "line 2: unterminated quoted field");
	ERR("SECRET,u\"x,id\n", "line 1: '\"' inside an unquoted field");
	ERR("SEC\"RET,u,id\n", "line 1: '\"' inside an unquoted field");
	ERR("\"SECRET\"x,u,id\n", "line 1: unexpected character after a closing quote");
	ERR("SECRET,\"u\" ,id\n", "line 1: unexpected character after a closing quote");
	ERR("SECRET\x01,u,id\n", "line 1: control character in a field");
	ERR("SECRET\r,u,id\n", "line 1: control character in a field");
	ERR("SECRET,u,id\t\n", "line 1: control character in a field");
	ERR("SECRET,u,id,\"a,,b\"\n", "line 1: empty group name in column 4");
	ERR("SECRET,u,id,\"a,\"\n", "line 1: empty group name in column 4");
	ERR("SECRET,u,id,\",a\"\n", "line 1: empty group name in column 4");
	check_error(__LINE__, "a,u,1\nSE\0RET,u,id\n", 18, "line 2: control character in a field");

	/* a small buffer truncates, a missing one is allowed */
	struct tokens_file tf;
	char small[8];
	CHECK_INT(parse(",u,id\n", &tf, small, sizeof(small)), -1);
	CHECK(strcmp(small, "line 1:") == 0);
	CHECK_INT(parse(",u,id\n", &tf, NULL, 0), -1);
	CHECK_INT(parse("t,u,id\n", &tf, NULL, 0), 0);
	tokens_file_free(&tf);
}

static void test_many(void)
{
	char *data = malloc(500 * 48);
	size_t len = 0;
	struct tokens_file tf;
	char err[256];

	for (int i = 0; i < 500; i++)
		len += (size_t)sprintf(data + len, "token-%d,user-%d,uid-%d,g%d\n", i, i, i, i % 7);
	CHECK_INT(tokens_file_parse(data, len, &tf, err, sizeof(err)), 0);
	CHECK_INT(tf.n, 500);
	for (size_t i = 1; i < tf.n; i++)
		CHECK(memcmp(tf.entries[i - 1].token_sha256, tf.entries[i].token_sha256, 32) < 0);
	for (int i = 0; i < 500; i++) {
		char tok[32], user[32], group[8];
		snprintf(tok, sizeof(tok), "token-%d", i);
		snprintf(user, sizeof(user), "user-%d", i);
		snprintf(group, sizeof(group), "g%d", i % 7);
		const struct token_entry *e = find(&tf, tok);
		if (!e || strcmp(e->user, user) != 0 || e->n_groups != 1 ||
		    strcmp(e->groups[0], group) != 0) {
			fprintf(stderr, "test_tokens_file.c:%d: %s not found or wrong\n",
				__LINE__, tok);
			check_failures++;
		}
	}
	CHECK(find(&tf, "token-500") == NULL);
	CHECK(find(&tf, "token-") == NULL);
	tokens_file_free(&tf);
	free(data);
}

static void test_load(void)
{
	char path[] = "/tmp/ocigate-test-tokens-XXXXXX";
	int fd = mkstemp(path);
	struct tokens_file tf;
	char err[512], want[512];

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	const char *good = "# test\nabc,alice,1,\"g1,g2\"\n";
	CHECK_INT(write(fd, good, strlen(good)), (long long)strlen(good));
	CHECK_INT(tokens_file_load(path, &tf, err, sizeof(err)), 0);
	CHECK_INT(tf.n, 1);
	const struct token_entry *e = find(&tf, "abc");
	CHECK(e && strcmp(e->user, "alice") == 0 && e->n_groups == 2);
	tokens_file_free(&tf);

	const char *bad = "SECRET,bob,2\n";
	CHECK_INT(write(fd, bad, strlen(bad)), (long long)strlen(bad));
	CHECK_INT(write(fd, ",x,3\n", 5), 5);
	close(fd);
	CHECK_INT(tokens_file_load(path, &tf, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: line 4: empty token", path);
	CHECK(strcmp(err, want) == 0);
	CHECK(tf.entries == NULL && tf.n == 0);
	unlink(path);

	CHECK_INT(tokens_file_load(path, &tf, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	CHECK(strcmp(err, want) == 0);
	CHECK_INT(tokens_file_load("/", &tf, err, sizeof(err)), -1);
	CHECK(strncmp(err, "/: ", 3) == 0);
}

int main(void)
{
	test_simple();
	test_groups();
	test_comments_blank_crlf();
	test_errors();
	test_many();
	test_load();
	CHECK_DONE();
}
