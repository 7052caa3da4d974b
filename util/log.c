#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
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

static size_t log_format_time(char *buf, size_t cap)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, cap - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
	return n;
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	char line[2048];
	char ts[40];
	va_list ap;

	if (!log_enabled(level))
		return;
	log_format_time(ts, sizeof(ts));
	int n = snprintf(line, sizeof(line), "ts=%s level=%s event=%s", ts,
			 log_level_names[level], event);
	if (n < 0)
		return;
	size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (fmt && *fmt && used < sizeof(line) - 2) {
		line[used++] = ' ';
		va_start(ap, fmt);
		int m = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
		va_end(ap);
		if (m > 0)
			used += (size_t)m < sizeof(line) - used ? (size_t)m : sizeof(line) - used - 1;
	}
	line[used++] = '\n';
	/* One write per line keeps lines whole when several processes share stderr. */
	fwrite(line, 1, used, stderr);
	fflush(stderr);
}

static bool log_needs_quotes(const char *p, size_t n)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
			return true;
	}
	return false;
}

const char *log_quote(char *buf, size_t cap, const char *p, size_t n)
{
	size_t o = 0;

	if (cap < 8) {
		if (cap)
			buf[0] = '\0';
		return buf;
	}
	if (!log_needs_quotes(p, n)) {
		size_t k = n < cap - 1 ? n : cap - 1;
		memcpy(buf, p, k);
		buf[k] = '\0';
		return buf;
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
	return buf;
}
