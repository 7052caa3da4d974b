#include "util/json_write.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

static bool jsonw_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

void jsonw_string(struct evbuffer *out, const char *s, size_t n)
{
	size_t i = 0;

	evbuffer_add(out, "\"", 1);
	while (i < n) {
		size_t run = i;
		while (run < n && jsonw_plain((unsigned char)s[run]))
			run++;
		if (run > i)
			evbuffer_add(out, s + i, run - i);
		if (run >= n)
			break;
		unsigned char c = (unsigned char)s[run];
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			evbuffer_add(out, esc, 2);
		} else {
			/* Non-ASCII bytes are escaped one by one: messages are ASCII,
			 * and this keeps arbitrary input from producing bad UTF-8. */
			evbuffer_add_printf(out, "\\u%04x", c);
		}
		i = run + 1;
	}
	evbuffer_add(out, "\"", 1);
}
