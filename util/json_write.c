#include "util/json_write.h"

#include "util/json.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

static bool jsonw_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* Bytes that go out as they are: printable ASCII other than the two that
 * need escaping, and whole well-formed UTF-8 sequences. */
static size_t jsonw_run(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			if (!jsonw_plain(c))
				break;
			i++;
			continue;
		}
		size_t len = json_utf8_len((const unsigned char *)s + i, n - i);
		if (len == 0)
			break;
		i += len;
	}
	return i;
}

void jsonw_string(struct evbuffer *out, const char *s, size_t n)
{
	size_t i = 0;

	evbuffer_add(out, "\"", 1);
	while (i < n) {
		size_t run = jsonw_run(s + i, n - i);
		if (run)
			evbuffer_add(out, s + i, run);
		i += run;
		if (i >= n)
			break;
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			evbuffer_add(out, esc, 2);
		} else if (c < 0x80) {
			evbuffer_add_printf(out, "\\u%04x", c);
		} else {
			/* Not UTF-8: the replacement character keeps the output valid. */
			evbuffer_add(out, "\\ufffd", 6);
		}
		i++;
	}
	evbuffer_add(out, "\"", 1);
}
