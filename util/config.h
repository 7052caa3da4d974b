/* ocigate's configuration file: one INI-style file whose
 * every option is a row of one table (config_options(), util/config_options.c;
 * the INI syntax is util/ini.c). That table drives
 * parsing, defaults, `ocigate --check-config`, the printed option help and
 * the cross-check of packaging/ocigate.conf.example, so an option cannot be
 * added in one place and forgotten in another.
 *
 * Two modes: standalone (the default: [auth] tokens_file and [connector]
 * sections) and Kubernetes (the file has a [kubernetes] section: clients
 * are checked with TokenReview and SubjectAccessReview, connectors come
 * from Connector objects, so tokens_file and [connector] are refused). */
#ifndef OCIGATE_UTIL_CONFIG_H
#define OCIGATE_UTIL_CONFIG_H

#include "util/common.h"
#include "util/url.h"

#include <stdio.h>

/* Inputs beyond these are refused rather than truncated. */
#define CONFIG_MAX_FILE_BYTES (1024 * 1024)
#define CONFIG_MAX_LINE_BYTES 8192
/* A password_file larger than this is certainly not a password. */
#define CONFIG_MAX_PASSWORD_FILE_BYTES 65536

enum config_type {
	CFG_STRING,   /* any text, may be empty */
	CFG_PATH,     /* non-empty; relative to the config file's directory */
	CFG_ADDRESS,  /* HOST:PORT, [IPv6]:PORT or :PORT; port 0-65535 */
	CFG_UINT,     /* decimal, min..max from the table */
	CFG_SIZE,     /* bytes; k, m, g (either case) are powers of 1024 */
	CFG_DURATION, /* ms, s, m, h; a bare number is seconds; stored in ms */
	CFG_BOOL,     /* yes/no, true/false, on/off, 1/0 */
	CFG_LIST,     /* words separated by blanks */
	CFG_URL,      /* http(s)://host[:port][/path-prefix] */
	CFG_ENUM,     /* one of the row's enum_words, stored as its index */
};

/* Values of [log] level, indexes of its enum_words. */
enum config_log_level {
	CONFIG_LOG_DEBUG,
	CONFIG_LOG_INFO,
	CONFIG_LOG_WARN,
	CONFIG_LOG_ERROR,
};

struct config_address {
	char *host;    /* IP literal (IPv6 without brackets) or name; "" = all interfaces */
	uint16_t port; /* 0 = any free port */
};

/* An address option left empty: that listener is off. */
static inline bool config_address_set(const struct config_address *a)
{
	return a->host != NULL;
}


struct config_list {
	char **items;
	size_t n;
};

struct config_connector {
	char *ns, *name;
	struct url_base address;
	char *username;
	char *password;      /* from password_file when that was given and files were checked */
	char *password_file; /* absolute path (if base_dir was) or NULL */
	char *ca_file;       /* absolute path (if base_dir was) or NULL */
	struct config_list allow;
	struct config_list allow_push;
	bool allow_insecure;
	unsigned line;       /* line of its section header */
};

struct config {
	char *path; /* the config file, or the name given for messages; may be NULL */
	struct {
		struct config_address listen;
		char *public_address; /* never empty after parsing: listen's text by default */
		struct config_address admin_listen; /* off when not config_address_set */
		unsigned max_connections;
		uint64_t header_timeout_ms, idle_timeout_ms, send_timeout_ms, shutdown_timeout_ms;
		size_t max_header_bytes;
		unsigned max_headers;
		size_t body_buffer;
		size_t body_memory;
	} server;
	struct {
		uint64_t connect_timeout_ms, read_timeout_ms;
		unsigned pool_max_idle;
		uint64_t pool_idle_timeout_ms;
		size_t max_response_header_bytes;
		bool splice;
	} upstream;
	struct {
		char *tokens_file;
		char *realm;
	} auth;
	struct {
		int level; /* enum config_log_level */
		bool access_log;
	} log;
	struct {
		bool enabled;     /* the file has a [kubernetes] section */
		char *kubeconfig; /* absolute path (if base_dir was), NULL = in-cluster */
		char *context;    /* "" = the kubeconfig's current-context */
		struct config_list audiences;  /* TokenReview spec.audiences */
		struct config_list namespaces; /* watched; empty = all */
		bool strict_subresource;       /* SAR on connectors/proxy, verb "*" */
		uint64_t token_cache_ttl_ms, token_cache_negative_ttl_ms;
		uint64_t sar_allowed_ttl_ms, sar_denied_ttl_ms;
		unsigned cache_size;
		uint64_t api_timeout_ms;
		bool leader_election;          /* status writer, refresher: Lease holder only */
		char *lease_namespace;         /* "" = the Pod's namespace, else "default" */
		char *lease_name;
		uint64_t lease_duration_ms, renew_deadline_ms, retry_period_ms;
	} kubernetes;
	struct {
		bool enabled;      /* the file has a [webhook] section */
		struct config_address listen;
		char *cert_file;   /* PEM chain, leaf first; re-read when it changes */
		char *key_file;
		bool inject;       /* false: Pods asking for injection are refused */
		size_t max_body;   /* largest AdmissionReview accepted */
	} webhook;
	struct {
		struct config_address listen; /* off when not config_address_set */
		char *cert_file;              /* PEM chain, leaf first */
		char *key_file;
	} tls;
	struct {
		bool enabled;               /* Kubernetes mode: write Connector status */
		uint64_t probe_interval_ms;
	} status;
	struct {
		bool enabled;               /* Kubernetes mode: keep opted-in pull Secrets fresh */
		uint64_t expiration_ms;     /* TokenRequest expirationSeconds, >= 10m */
	} pull_secrets;
	struct {
		char *dir;                  /* NULL or "": no blob cache */
		size_t max_size;            /* bytes of cached bodies, LRU beyond */
		char *min_free;             /* "N%" of the file system, or a size */
		/* min_free parsed (not table rows): one of them is non-zero. */
		unsigned min_free_percent;
		uint64_t min_free_bytes;
	} cache;
	struct config_connector *connectors;
	size_t n_connectors;
};

/* One row of THE table. min/max apply to uint (the number), size (bytes)
 * and duration (milliseconds; min 0 is what allows a zero duration). */
struct config_option {
	const char *section;       /* "server", ..., "kubernetes" or "connector" */
	const char *name;
	enum config_type type;
	const char *default_value; /* NULL = required */
	bool reloadable;           /* applied on SIGHUP without a restart */
	uint64_t min, max;
	const char *const *enum_words; /* NULL-terminated, CFG_ENUM only */
	size_t offset;             /* in struct config, or struct config_connector if in_connector */
	bool in_connector;
	const char *doc;
};

struct config_parse_opts {
	const char *path_for_messages; /* prefix of error messages; NULL = "config" */
	const char *base_dir;          /* relative paths are joined to it; NULL = keep them relative */
	bool check_files;              /* tokens_file, kubeconfig and ca_file must be readable,
					* password_file is read */
};

const struct config_option *config_options(size_t *n);
/* The row for section ("connector" for connector options) and name, or NULL. */
const struct config_option *config_find_option(const char *section, const char *name);
const char *config_type_name(enum config_type type);

/* Reads and parses the file, checking the files it names; relative paths are
 * resolved against the file's directory made absolute. *out is overwritten,
 * not freed: on SIGHUP, load into a fresh struct and swap. On error, err gets
 * "PATH:LINE: message" ("PATH: message" when no line is to blame) and *out is
 * left zeroed. */
OG_WARN_UNUSED int config_load(const char *path, struct config *out, char *err, size_t err_cap);
/* config_parse_ex with check_files on. */
OG_WARN_UNUSED int config_parse(const char *text, size_t len, const char *path_for_messages,
				const char *base_dir, struct config *out, char *err,
				size_t err_cap);
/* text needs no NUL terminator. Same error contract as config_load. */
OG_WARN_UNUSED int config_parse_ex(const char *text, size_t len,
				   const struct config_parse_opts *opts, struct config *out,
				   char *err, size_t err_cap);
/* Accepts a zeroed struct; leaves it zeroed. Passwords are wiped. */
void config_free(struct config *cfg);

/* The table as help text: section, key, type, range, default, reloadable, doc. */
void config_print_options(FILE *f);

const struct config_connector *config_find_connector(const struct config *cfg, const char *ns,
						     const char *name);

/* The first option that differs between two configs but cannot be applied
 * without a restart, or NULL when a reload can apply new_cfg in full. */
const struct config_option *config_unreloadable_change(const struct config *old_cfg,
							const struct config *new_cfg);

#endif
