/* Shared by util/config.c (parsing, checks) and util/config_options.c (the
 * option table); not for other modules. */
#ifndef OCIGATE_UTIL_CONFIG_PRIV_H
#define OCIGATE_UTIL_CONFIG_PRIV_H

#include "util/config.h"

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define MS_SECOND 1000ULL
#define MS_MINUTE (60ULL * MS_SECOND)
#define MS_HOUR (60ULL * MS_MINUTE)
/* Longer timeouts are typos, and a bound keeps timeval arithmetic safe. */
#define MAX_DURATION_MS (24ULL * MS_HOUR)

/* The rows of config_table, as a constant so that per-option arrays can be
 * sized by it; config_options.c asserts it matches. */
#define CONFIG_N_OPTIONS 62

extern const struct config_option config_table[CONFIG_N_OPTIONS];

/* A bound of opt as written in the file ("64m", "30s", "10000"). */
void config_format_bound(const struct config_option *opt, uint64_t v, char *buf, size_t cap);

#endif
