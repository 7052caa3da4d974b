/* Conventions shared by every module of ocigate. */
#ifndef OCIGATE_UTIL_COMMON_H
#define OCIGATE_UTIL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define OG_WARN_UNUSED __attribute__((warn_unused_result))
#define OG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define OG_NORETURN __attribute__((noreturn))
#else
#define OG_WARN_UNUSED
#define OG_PRINTF(f, a)
#define OG_NORETURN
#endif

#define OG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define OG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define OG_MAX(a, b) ((a) > (b) ? (a) : (b))
/* The struct of type that holds member at ptr (an embedded list link). */
#define OG_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* A byte range that is not NUL-terminated and owned by someone else. */
struct og_str {
	const char *p;
	size_t n;
};

#define OG_STR_LIT(s) ((struct og_str){ (s), sizeof(s) - 1 })

static inline struct og_str og_str_make(const char *p, size_t n)
{
	return (struct og_str){ p, n };
}

/* Case-insensitive ASCII comparison of a range with a C string. Inline:
 * with a literal the length test is a constant compare, which settles
 * nearly every header-name lookup of the hot path without a loop, and the
 * exact compare of a name sent in its usual case is a few word compares. */
static inline bool og_mem_ieq(const char *p, const char *q, size_t n)
{
	if (memcmp(p, q, n) == 0)
		return true;
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)p[i], b = (unsigned char)q[i];
		if (a != b && (a | 0x20) != (b | 0x20))
			return false;
		if (a != b && ((a | 0x20) < 'a' || (a | 0x20) > 'z'))
			return false;
	}
	return true;
}

static inline bool og_str_ieq(struct og_str s, const char *lit)
{
	size_t n = strlen(lit);

	return n == s.n && og_mem_ieq(s.p, lit, n);
}

/* Eight bytes at a time: the high bit of a byte of the result is set where
 * x has a byte below n (n <= 128), and perhaps in bytes above such a one,
 * never when x has none: a test without false negatives, for scanners
 * that look at a word byte by byte only when it may hold one. */
static inline uint64_t og_word_has_less(uint64_t x, unsigned char n)
{
	return (x - 0x0101010101010101ull * n) & ~x & 0x8080808080808080ull;
}

/* The same test for a byte equal to c. */
static inline uint64_t og_word_has_byte(uint64_t x, unsigned char c)
{
	return og_word_has_less(x ^ (0x0101010101010101ull * c), 1);
}

/* The same test for a byte of 0x80 or above. */
static inline uint64_t og_word_has_high(uint64_t x)
{
	return x & 0x8080808080808080ull;
}

/* Exact comparison of a range with a C string. */
static inline bool og_str_eq(struct og_str s, const char *lit)
{
	size_t n = strlen(lit);
	return n == s.n && memcmp(s.p, lit, n) == 0;
}

/* Writes v in decimal (no NUL); returns the number of digits (1 to 20). */
size_t og_u64_text(uint64_t v, char out[20]);

/* The value of a hexadecimal digit, or -1. */
int og_hex_value(char c);
/* Writes code point cp (at most U+10FFFF, not a surrogate) as UTF-8;
 * returns the number of bytes (1 to 4). */
size_t og_utf8_encode(uint32_t cp, char out[4]);

/* Copies the NUL-terminated src into dst[cap] (cap > 0), cut to fit:
 * for messages kept in fixed fields, where a cut one is still useful. */
static inline void og_copy_cut(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

#endif
