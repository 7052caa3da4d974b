#include "util/common.h"

#include <string.h>

static int og_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

bool og_str_ieq(struct og_str s, const char *lit)
{
	size_t n = strlen(lit);
	if (n != s.n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (og_lower((unsigned char)s.p[i]) != og_lower((unsigned char)lit[i]))
			return false;
	return true;
}

bool og_str_eq(struct og_str s, const char *lit)
{
	size_t n = strlen(lit);
	return n == s.n && memcmp(s.p, lit, n) == 0;
}
