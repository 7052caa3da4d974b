#include "util/log.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level log_min_level = LOG_INFO;

static const char *const log_level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
	log_min_level = level;
}

bool log_enabled(enum log_level level)
{
	return level >= log_min_level;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ". The part up to the seconds is formatted
 * once per second: the access log writes a line per request. */
static size_t log_format_time(char *buf, size_t cap)
{
	static char sec_text[32];
	static size_t sec_len;
	static time_t sec_of_text = -1;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	if (tv.tv_sec != sec_of_text) {
		struct tm tm;

		gmtime_r(&tv.tv_sec, &tm);
		sec_len = strftime(sec_text, sizeof(sec_text), "%Y-%m-%dT%H:%M:%S", &tm);
		sec_of_text = tv.tv_sec;
	}
	if (cap < sec_len + 6)
		return 0;
	unsigned ms = (unsigned)(tv.tv_usec / 1000);
	memcpy(buf, sec_text, sec_len);
	buf[sec_len] = '.';
	buf[sec_len + 1] = (char)('0' + ms / 100);
	buf[sec_len + 2] = (char)('0' + ms / 10 % 10);
	buf[sec_len + 3] = (char)('0' + ms % 10);
	buf[sec_len + 4] = 'Z';
	buf[sec_len + 5] = '\0';
	return sec_len + 5;
}

/* Held lines (log_hold). PIPE_BUF bytes at most: a write of up to that
 * much to a pipe is never interleaved with another process's. */
static struct {
	void (*wake)(void *);
	void *arg;
	size_t n;
	char buf[PIPE_BUF];
} log_held;

_Static_assert(sizeof(((struct log_line *)0)->buf) <= PIPE_BUF, "any line fits a held batch");

static void log_write_now(const char *p, size_t n)
{
	fwrite(p, 1, n, stderr);
	fflush(stderr);
}

void log_flush(void)
{
	if (log_held.n == 0)
		return;
	log_write_now(log_held.buf, log_held.n);
	log_held.n = 0;
}

void log_hold(void (*wake)(void *), void *arg)
{
	static bool at_exit;

	log_flush();
	log_held.wake = wake;
	log_held.arg = arg;
	if (wake && !at_exit)
		at_exit = atexit(log_flush) == 0;
}

/* One write per line (or per held batch of whole lines) keeps lines whole
 * when several processes share stderr. */
static void log_write(const char *line, size_t n)
{
	if (!log_held.wake) {
		log_write_now(line, n);
		return;
	}
	if (log_held.n + n > sizeof(log_held.buf))
		log_flush();
	memcpy(log_held.buf + log_held.n, line, n);
	if (log_held.n == 0)
		log_held.wake(log_held.arg);
	log_held.n += n;
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	struct log_line l;
	va_list ap;

	if (!log_enabled(level))
		return;
	log_line_begin(&l, level, event);
	if (fmt && *fmt && l.n + 2 < sizeof(l.buf)) {
		l.buf[l.n++] = ' ';
		/* vsnprintf's NUL takes the newline's place */
		size_t room = sizeof(l.buf) - l.n;
		va_start(ap, fmt);
		int m = vsnprintf(l.buf + l.n, room, fmt, ap);
		va_end(ap);
		if (m > 0)
			l.n += OG_MIN((size_t)m, room - 1);
	}
	log_line_end(&l);
}

void log_line_begin(struct log_line *l, enum log_level level, const char *event)
{
	l->n = 0;
	log_line_raw(l, "ts=", 3);
	l->n += log_format_time(l->buf + l->n, sizeof(l->buf) - 1 - l->n);
	log_line_raw(l, " level=", 7);
	log_line_raw(l, log_level_names[level], strlen(log_level_names[level]));
	log_line_raw(l, " event=", 7);
	log_line_raw(l, event, strlen(event));
}

void log_line_raw(struct log_line *l, const char *p, size_t n)
{
	size_t room = sizeof(l->buf) - 1 - l->n; /* the last byte is for the newline */

	if (n > room)
		n = room;
	memcpy(l->buf + l->n, p, n);
	l->n += n;
}

void log_line_str_(struct log_line *l, const char *key_eq, size_t key_n, const char *value)
{
	log_line_raw(l, key_eq, key_n);
	log_line_raw(l, value, strlen(value));
}

static size_t log_quote_len(char *buf, size_t cap, const char *p, size_t n);

void log_line_quoted_(struct log_line *l, const char *key_eq, size_t key_n, const char *p,
		      size_t n, size_t max)
{
	log_line_raw(l, key_eq, key_n);
	/* Quoted straight into the line; the newline's byte takes the NUL. */
	size_t cap = OG_MIN(OG_MIN(max, (size_t)1024), sizeof(l->buf) - l->n);
	l->n += log_quote_len(l->buf + l->n, cap, p, n);
}

void log_line_u64_(struct log_line *l, const char *key_eq, size_t key_n, uint64_t v)
{
	char digits[20];
	size_t n = og_u64_text(v, digits);

	log_line_raw(l, key_eq, key_n);
	log_line_raw(l, digits, n);
}

void log_line_tenths_(struct log_line *l, const char *key_eq, size_t key_n, double v)
{
	uint64_t t = v > 0 ? (uint64_t)(v * 10 + 0.5) : 0;
	char frac[2] = { '.', (char)('0' + t % 10) };

	log_line_u64_(l, key_eq, key_n, t / 10);
	log_line_raw(l, frac, 2);
}

void log_line_end(struct log_line *l)
{
	l->buf[l->n++] = '\n';
	log_write(l->buf, l->n);
}

static bool log_byte_needs_quotes(unsigned char c)
{
	return c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f;
}

/* Eight bytes at a time (paths and user names are most of an access
 * line), byte by byte only for a word that may hold one to quote. */
static bool log_needs_quotes(const char *p, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return true;
	for (; i + 8 <= n; i += 8) {
		uint64_t x;

		memcpy(&x, p + i, 8);
		if (!(og_word_has_less(x, 0x21) | og_word_has_high(x) | og_word_has_byte(x, '"') |
		      og_word_has_byte(x, '=') | og_word_has_byte(x, '\\') | og_word_has_byte(x, 0x7f)))
			continue;
		for (size_t k = i; k < i + 8; k++)
			if (log_byte_needs_quotes((unsigned char)p[k]))
				return true;
	}
	for (; i < n; i++)
		if (log_byte_needs_quotes((unsigned char)p[i]))
			return true;
	return false;
}

/* log_quote, returning the length written (without the NUL). */
static size_t log_quote_len(char *buf, size_t cap, const char *p, size_t n)
{
	size_t o = 0;

	if (cap < 8) {
		if (cap)
			buf[0] = '\0';
		return 0;
	}
	if (!log_needs_quotes(p, n)) {
		size_t k = n < cap - 1 ? n : cap - 1;
		memcpy(buf, p, k);
		buf[k] = '\0';
		return k;
	}
	buf[o++] = '"';
	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < ' ' || c >= 0x7f) {
			o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return o;
}

const char *log_quote(char *buf, size_t cap, const char *p, size_t n)
{
	log_quote_len(buf, cap, p, n);
	return buf;
}
