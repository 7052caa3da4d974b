/* Conventions shared by every module of ocigate. */
#ifndef OCIGATE_UTIL_COMMON_H
#define OCIGATE_UTIL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Case-insensitive ASCII comparison of a range with a C string. */
bool og_str_ieq(struct og_str s, const char *lit);
/* Exact comparison of a range with a C string. */
bool og_str_eq(struct og_str s, const char *lit);

/* The value of a hexadecimal digit, or -1. */
int og_hex_value(char c);
/* Writes code point cp (at most U+10FFFF, not a surrogate) as UTF-8;
 * returns the number of bytes (1 to 4). */
size_t og_utf8_encode(uint32_t cp, char out[4]);

#endif
