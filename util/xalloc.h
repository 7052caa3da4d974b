/* Allocation that never returns NULL: running out of memory aborts, so
 * callers need no error path for it (DESIGN.md: x_new() never returns NULL). */
#ifndef OCIGATE_UTIL_XALLOC_H
#define OCIGATE_UTIL_XALLOC_H

#include <stddef.h>

void *x_malloc(size_t n);
void *x_calloc(size_t count, size_t size);
void *x_realloc(void *p, size_t n);
char *x_strdup(const char *s);
char *x_strndup(const char *s, size_t n);

#define x_new(type) ((type *)x_calloc(1, sizeof(type)))

#endif
