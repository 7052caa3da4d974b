/* INI lexing: see ini.h for the syntax. */
#include "util/ini.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ascii.h"
#include "util/xalloc.h"

struct ini_state {
	const struct ini_reader *r;
	unsigned line;
};

static int ini_fail(struct ini_state *st, const char *fmt, ...) OG_PRINTF(2, 3);
static int ini_fail(struct ini_state *st, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st->r->error(st->r->ctx, st->line, msg);
	return -1;
}

static bool ini_starts_comment(const char *s, size_t i, size_t start)
{
	return (s[i] == ';' || s[i] == '#') && (i == start || ascii_is_blank(s[i - 1]));
}

/* s[*i] is the opening quote. On success *i is just past the closing one. */
static int ini_lex_quoted(struct ini_state *st, const char *s, size_t n, size_t *i, char **out)
{
	char *buf = x_malloc(n + 1);
	size_t o = 0;

	for (size_t k = *i + 1; k < n; k++) {
		if (s[k] == '"') {
			buf[o] = '\0';
			*out = buf;
			*i = k + 1;
			return 0;
		}
		if (s[k] == '\\') {
			if (k + 1 >= n || (s[k + 1] != '"' && s[k + 1] != '\\')) {
				free(buf);
				return ini_fail(st, "only \\\" and \\\\ may follow a backslash in quotes");
			}
			k++;
		}
		buf[o++] = s[k];
	}
	free(buf);
	return ini_fail(st, "missing closing '\"'");
}

/* Nothing but blanks and a comment may follow a header or a quoted value. */
static bool ini_only_comment_left(const char *s, size_t n, size_t i)
{
	while (i < n && ascii_is_blank(s[i]))
		i++;
	return i == n || s[i] == ';' || s[i] == '#';
}

static int ini_lex_value(struct ini_state *st, const char *s, size_t n, char **out)
{
	size_t i = 0, start, end;

	while (i < n && ascii_is_blank(s[i]))
		i++;
	if (i < n && s[i] == '"') {
		if (ini_lex_quoted(st, s, n, &i, out) != 0)
			return -1;
		if (!ini_only_comment_left(s, n, i)) {
			free(*out);
			return ini_fail(st, "unexpected text after the closing quote");
		}
		return 0;
	}
	start = i;
	for (end = start; end < n && !ini_starts_comment(s, end, start); end++)
		;
	while (end > start && ascii_is_blank(s[end - 1]))
		end--;
	*out = x_strndup(s + start, end - start);
	return 0;
}

static int ini_header(struct ini_state *st, const char *s, size_t n)
{
	size_t i = 1, name_end;
	char *name = NULL, *arg = NULL;
	int rc = -1;

	while (i < n && s[i] != ']' && s[i] != '"' && !ascii_is_blank(s[i]))
		i++;
	name_end = i;
	while (i < n && ascii_is_blank(s[i]))
		i++;
	if (i < n && s[i] == '"' && ini_lex_quoted(st, s, n, &i, &arg) != 0)
		goto out;
	while (i < n && ascii_is_blank(s[i]))
		i++;
	if (name_end == 1 || i == n || s[i] != ']') {
		ini_fail(st, "malformed section header: expected %s", st->r->header_syntax);
		goto out;
	}
	if (!ini_only_comment_left(s, n, i + 1)) {
		ini_fail(st, "unexpected text after the section header");
		goto out;
	}
	name = x_strndup(s + 1, name_end - 1);
	rc = st->r->section(st->r->ctx, st->line, name, arg);
out:
	free(name);
	free(arg);
	return rc;
}

static int ini_assignment(struct ini_state *st, const char *s, size_t n, bool in_section)
{
	const char *eq = memchr(s, '=', n);
	size_t kn;
	char *value;
	int rc;

	if (!eq)
		return ini_fail(st, "expected 'key = value' but found no '='");
	kn = (size_t)(eq - s);
	while (kn && ascii_is_blank(s[kn - 1]))
		kn--;
	if (!kn)
		return ini_fail(st, "missing key before '='");
	if (!in_section)
		return ini_fail(st, "key '%.*s' outside of any section", (int)kn, s);
	if (ini_lex_value(st, eq + 1, n - (size_t)(eq + 1 - s), &value) != 0)
		return -1;
	rc = st->r->pair(st->r->ctx, st->line, s, kn, value);
	free(value);
	return rc;
}

static int ini_check_bytes(struct ini_state *st, const char *s, size_t n)
{
	if (n > st->r->max_line)
		return ini_fail(st, "line is longer than %zu bytes", st->r->max_line);
	if (memchr(s, '\0', n))
		return ini_fail(st, "NUL byte in line");
	for (size_t i = 0; i < n; i++)
		if (ascii_is_ctl(s[i]) && s[i] != '\t')
			return ini_fail(st, "control character 0x%02x in line", (unsigned char)s[i]);
	return 0;
}

/* *in_section becomes true at the first header. */
static int ini_line(struct ini_state *st, const char *s, size_t n, bool *in_section)
{
	size_t i = 0;

	if (n && s[n - 1] == '\r')
		n--;
	if (ini_check_bytes(st, s, n) != 0)
		return -1;
	while (i < n && ascii_is_blank(s[i]))
		i++;
	if (i == n || s[i] == ';' || s[i] == '#')
		return 0;
	if (s[i] == '[') {
		*in_section = true;
		return ini_header(st, s + i, n - i);
	}
	return ini_assignment(st, s + i, n - i, *in_section);
}

int ini_parse(const struct ini_reader *r, const char *text, size_t len, unsigned *lines)
{
	struct ini_state st = { r, 0 };
	bool in_section = false;
	size_t pos = 0;
	int rc = 0;

	while (pos < len && rc == 0) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;

		st.line++;
		rc = ini_line(&st, text + pos, end - pos, &in_section);
		pos = end + 1;
	}
	*lines = st.line;
	return rc;
}
