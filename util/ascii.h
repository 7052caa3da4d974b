/* ASCII character classes, locale-free: the grammars of the wire (HTTP, URLs,
 * OCI names, INI files) are defined on bytes, not on the C locale. */
#ifndef OCIGATE_UTIL_ASCII_H
#define OCIGATE_UTIL_ASCII_H

#include <stdbool.h>

static inline bool ascii_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Space and tab: the blanks of HTTP (OWS) and of INI lines. */
static inline bool ascii_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static inline bool ascii_is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static inline bool ascii_is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || ascii_is_digit(c);
}

static inline bool ascii_is_alnum(char c)
{
	return ascii_is_lower_alnum(c) || ascii_is_upper(c);
}

static inline bool ascii_is_lower_hex(char c)
{
	return ascii_is_digit(c) || (c >= 'a' && c <= 'f');
}

static inline bool ascii_is_hex(char c)
{
	return ascii_is_lower_hex(c) || (c >= 'A' && c <= 'F');
}

static inline char ascii_lower(char c)
{
	return ascii_is_upper(c) ? (char)(c - 'A' + 'a') : c;
}

/* RFC 9110 tchar: the bytes of a token (header names, auth schemes). */
static inline bool ascii_is_tchar(char c)
{
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return true;
	default:
		return ascii_is_alnum(c);
	}
}

/* Control characters and DEL. */
static inline bool ascii_is_ctl(char c)
{
	return (unsigned char)c < 0x20 || c == 0x7f;
}

/* Control characters, space and DEL: never part of a name or URL. */
static inline bool ascii_is_ctl_or_space(char c)
{
	return (unsigned char)c <= 0x20 || c == 0x7f;
}

#endif
