/* Minimal check macros for ocigate's unit tests: every failed check prints
 * where and what, and the test's exit status is the number of failures. */
#ifndef OCIGATE_TEST_CHECK_H
#define OCIGATE_TEST_CHECK_H

#include <stdio.h>
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

#define CHECK_DONE()                                                          \
	do {                                                                  \
		if (check_failures)                                           \
			fprintf(stderr, "%d check(s) failed\n", check_failures); \
		return check_failures ? 1 : 0;                                \
	} while (0)

#endif
