#include "util/xalloc.h"

#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void xalloc_die(size_t n)
{
	log_flush();
	fprintf(stderr, "level=fatal event=out_of_memory bytes=%zu\n", n);
	abort();
}

void *x_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		xalloc_die(n);
	return p;
}

void *x_calloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		xalloc_die(count * size);
	return p;
}

void *x_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		xalloc_die(n);
	return q;
}

char *x_strndup(const char *s, size_t n)
{
	char *d = x_malloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *x_strdup(const char *s)
{
	return x_strndup(s, strlen(s));
}
