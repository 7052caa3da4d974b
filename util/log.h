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

/* Quotes a value for a key=value line when it holds spaces, quotes, '=' or
 * control characters; returns buf. Values longer than cap are cut. */
const char *log_quote(char *buf, size_t cap, const char *p, size_t n);

#define log_debug(ev, ...) do { if (log_enabled(LOG_DEBUG)) log_event(LOG_DEBUG, ev, __VA_ARGS__); } while (0)
#define log_info(ev, ...) log_event(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_event(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_event(LOG_ERROR, ev, __VA_ARGS__)

#endif
