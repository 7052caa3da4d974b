/* The generic INI reader under ocigate.conf: lines of "[section]",
 * "[section \"ARG\"]", "key = value", blank lines and comments (';' or '#'
 * at the start of a line, or after a blank inside an unquoted value, so that
 * "a;b" and "robot#1" need no quotes). Values may be double-quoted with \"
 * and \\ as the only escapes. Tabs are blanks; other control bytes, NUL and
 * over-long lines are errors. What the sections and keys mean is the
 * caller's (util/config.c). */
#ifndef OCIGATE_UTIL_INI_H
#define OCIGATE_UTIL_INI_H

#include "util/common.h"

struct ini_reader {
	size_t max_line;	   /* bytes, without the newline */
	const char *header_syntax; /* named when a header is malformed */
	/* Both return 0, or -1 after reporting their own error. Lines count
	 * from 1; arg is NULL when the header has none. */
	int (*section)(void *ctx, unsigned line, const char *name, const char *arg);
	int (*pair)(void *ctx, unsigned line, const char *key, size_t key_len,
		    const char *value);
	/* A lexical error at line. */
	void (*error)(void *ctx, unsigned line, const char *msg);
	void *ctx;
};

/* Reads text (len bytes, no NUL needed). *lines gets the number of lines
 * read, up to and including a failing one. */
OG_WARN_UNUSED int ini_parse(const struct ini_reader *r, const char *text, size_t len,
			     unsigned *lines);

#endif
