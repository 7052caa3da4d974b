/* Logging: one line per event on stderr, key=value pairs, never a token.
 * The caller formats the pairs; this module adds time, level and event. */
#ifndef OCIGATE_UTIL_LOG_H
#define OCIGATE_UTIL_LOG_H

#include "util/common.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
/* Writes "ts=... level=... event=EVENT " followed by the formatted pairs. */
void log_event(enum log_level level, const char *event, const char *fmt, ...) OG_PRINTF(3, 4);

/* A line built piece by piece, for the lines written per request (the
 * access log), where printf's format parsing is the main cost. Values are
 * written as given: the caller quotes what may need it (log_line_quoted).
 * A line longer than the buffer is cut. */
struct log_line {
	size_t n;
	char buf[2048];
};

void log_line_begin(struct log_line *l, enum log_level level, const char *event);
void log_line_raw(struct log_line *l, const char *p, size_t n);
/* The key is a string literal: " key=" is put together at compile time. */
#define LOG_LINE_KEY(key) " " key "=", sizeof(" " key "=") - 1
/* " key=value" */
#define log_line_str(l, key, value) log_line_str_((l), LOG_LINE_KEY(key), (value))
/* " key=value", value quoted as log_quote does and cut at max bytes. */
#define log_line_quoted(l, key, p, n, max) log_line_quoted_((l), LOG_LINE_KEY(key), (p), (n), (max))
#define log_line_u64(l, key, v) log_line_u64_((l), LOG_LINE_KEY(key), (v))
/* " key=V.V": v with one decimal, negative as 0 */
#define log_line_tenths(l, key, v) log_line_tenths_((l), LOG_LINE_KEY(key), (v))
void log_line_str_(struct log_line *l, const char *key_eq, size_t key_n, const char *value);
void log_line_quoted_(struct log_line *l, const char *key_eq, size_t key_n, const char *p,
		      size_t n, size_t max);
void log_line_u64_(struct log_line *l, const char *key_eq, size_t key_n, uint64_t v);
void log_line_tenths_(struct log_line *l, const char *key_eq, size_t key_n, double v);
/* Adds the newline and writes the line. */
void log_line_end(struct log_line *l);

/* Holding: a busy loop would pay a write(2) per line, most of them access
 * lines. While held, lines are kept (up to PIPE_BUF bytes, whole lines
 * only) and wake(arg) is called when the first one is kept; the caller
 * then calls log_flush, at the latest before it sends the response a line
 * tells of. log_hold(NULL, NULL) writes what is kept and stops holding;
 * what is kept at exit() is written then. */
void log_hold(void (*wake)(void *), void *arg);
void log_flush(void);

/* Quotes a value for a key=value line when it holds spaces, quotes, '=' or
 * control characters; returns buf. Values longer than cap are cut. */
const char *log_quote(char *buf, size_t cap, const char *p, size_t n);

#define log_debug(ev, ...) do { if (log_enabled(LOG_DEBUG)) log_event(LOG_DEBUG, ev, __VA_ARGS__); } while (0)
#define log_info(ev, ...) log_event(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_event(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_event(LOG_ERROR, ev, __VA_ARGS__)

#endif
