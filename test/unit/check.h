/* Minimal check macros for ocigate's unit tests: every failed check prints
 * where and what, and the test's exit status is the number of failures. */
#ifndef OCIGATE_TEST_CHECK_H
#define OCIGATE_TEST_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                             \
			check_failures++;                                     \
		}                                                             \
	} while (0)

#define CHECK_INT(a, b)                                                       \
	do {                                                                  \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
		if (check_a_ != check_b_) {                                   \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
				__FILE__, __LINE__, #a, check_a_, #b, check_b_); \
			check_failures++;                                     \
		}                                                             \
	} while (0)

/* Compares a (pointer, length) range with a C string. */
#define CHECK_MEM_STR(p, n, s)                                                \
	do {                                                                  \
		const char *check_p_ = (const char *)(p);                     \
		size_t check_n_ = (size_t)(n);                                \
		const char *check_s_ = (s);                                   \
		if (!check_p_ || check_n_ != strlen(check_s_) ||              \
		    memcmp(check_p_, check_s_, check_n_) != 0) {              \
			fprintf(stderr, "%s:%d: %s is \"%.*s\", expected \"%s\"\n", \
				__FILE__, __LINE__, #p, check_p_ ? (int)check_n_ : 6, \
				check_p_ ? check_p_ : "(null)", check_s_);    \
			check_failures++;                                     \
		}                                                             \
	} while (0)

/* Two C strings; NULL equals only NULL. */
#define CHECK_STR(a, b)                                                       \
	do {                                                                  \
		const char *check_x_ = (a), *check_y_ = (b);                  \
		if (!check_x_ || !check_y_ ? check_x_ != check_y_             \
					   : strcmp(check_x_, check_y_) != 0) { \
			fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", \
				__FILE__, __LINE__, #a,                       \
				check_x_ ? check_x_ : "(null)",               \
				check_y_ ? check_y_ : "(null)");              \
			check_failures++;                                     \
		}                                                             \
	} while (0)

#define CHECK_PREFIX(s, prefix)                                               \
	do {                                                                  \
		const char *check_s_ = (s), *check_p_ = (prefix);             \
		if (!check_s_ || strncmp(check_s_, check_p_, strlen(check_p_)) != 0) { \
			fprintf(stderr, "%s:%d: %s is \"%s\", expected it to start with \"%s\"\n", \
				__FILE__, __LINE__, #s,                       \
				check_s_ ? check_s_ : "(null)", check_p_);    \
			check_failures++;                                     \
		}                                                             \
	} while (0)

/* The whole fixture dir/name (name alone when dir is NULL), NUL-terminated,
 * in a buffer of exactly its size plus the NUL (so ASan sees reads past
 * it). A fixture that cannot be read ends the test with status 2. */
static inline char *check_read_file(const char *dir, const char *name, size_t *len)
{
	char path[1024];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
	f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "cannot open fixture %s\n", path);
		exit(2);
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "cannot read fixture %s\n", path);
		exit(2);
	}
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* Writes n bytes to dir/name (name alone when dir is NULL); a file that
 * cannot be written ends the test with status 2. */
static inline void check_write_file(const char *dir, const char *name, const void *data, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		exit(2);
	}
}

static inline void check_remove_file(const char *dir, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
	remove(path);
}

#define CHECK_DONE()                                                          \
	do {                                                                  \
		if (check_failures)                                           \
			fprintf(stderr, "%d check(s) failed\n", check_failures); \
		return check_failures ? 1 : 0;                                \
	} while (0)

#endif
