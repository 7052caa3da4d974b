#include "util/config.h"

#include "test/unit/check.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTH "[auth]\ntokens_file = tokens.csv\n"
#define ERR_CAP 2048
#define PATH_CAP 512

static const struct config_parse_opts no_files = {
	.path_for_messages = "t.conf",
	.base_dir = "/etc/ocigate",
	.check_files = false,
};

static bool is_zeroed(const struct config *cfg)
{
	static const struct config zero;
	return memcmp(cfg, &zero, sizeof(zero)) == 0;
}

static int parse_len(const char *text, size_t len, const struct config_parse_opts *opts,
		     struct config *cfg, char *err)
{
	return config_parse_ex(text, len, opts, cfg, err, ERR_CAP);
}

/* Parses text that must load; reports the error at the caller's line. */
static bool parse_ok_at(int line, const char *text, struct config *cfg)
{
	char err[ERR_CAP];

	if (parse_len(text, strlen(text), &no_files, cfg, err) == 0)
		return true;
	fprintf(stderr, "%s:%d: parse failed: %s\n", __FILE__, line, err);
	check_failures++;
	return false;
}

static void expect_error_len_at(int line, const char *text, size_t len,
				const struct config_parse_opts *opts, const char *expected)
{
	struct config cfg;
	char err[ERR_CAP];

	memset(&cfg, 0xa5, sizeof(cfg));
	if (parse_len(text, len, opts, &cfg, err) == 0) {
		fprintf(stderr, "%s:%d: parse succeeded, expected error \"%s\"\n", __FILE__, line,
			expected);
		check_failures++;
		config_free(&cfg);
		return;
	}
	if (strcmp(err, expected) != 0) {
		fprintf(stderr, "%s:%d: error is \"%s\", expected \"%s\"\n", __FILE__, line, err,
			expected);
		check_failures++;
	}
	if (!is_zeroed(&cfg)) {
		fprintf(stderr, "%s:%d: config not zeroed after a failed parse\n", __FILE__, line);
		check_failures++;
	}
}

#define PARSE_OK(text, cfg) parse_ok_at(__LINE__, (text), (cfg))
#define EXPECT_ERROR(text, expected) \
	expect_error_len_at(__LINE__, (text), strlen(text), &no_files, (expected))

/* ---- defaults and the table ---- */

static void test_defaults(void)
{
	struct config cfg;

	if (!PARSE_OK(AUTH, &cfg))
		return;
	CHECK_STR(cfg.path, "t.conf");
	CHECK_STR(cfg.server.listen.host, "127.0.0.1");
	CHECK_INT(cfg.server.listen.port, 5000);
	CHECK_STR(cfg.server.public_address, "127.0.0.1:5000");
	CHECK_INT(cfg.server.max_connections, 10000);
	CHECK_INT(cfg.server.header_timeout_ms, 10000);
	CHECK_INT(cfg.server.idle_timeout_ms, 60000);
	CHECK_INT(cfg.server.send_timeout_ms, 60000);
	CHECK_INT(cfg.server.shutdown_timeout_ms, 30000);
	CHECK_INT(cfg.server.max_header_bytes, 16384);
	CHECK_INT(cfg.server.max_headers, 100);
	CHECK_INT(cfg.server.body_buffer, 262144);
	CHECK_INT(cfg.server.body_memory, 32 * 1048576);
	CHECK_INT(cfg.upstream.connect_timeout_ms, 10000);
	CHECK_INT(cfg.upstream.read_timeout_ms, 60000);
	CHECK_INT(cfg.upstream.pool_max_idle, 64);
	CHECK_INT(cfg.upstream.pool_idle_timeout_ms, 60000);
	CHECK_INT(cfg.upstream.max_response_header_bytes, 65536);
	CHECK_STR(cfg.auth.tokens_file, "/etc/ocigate/tokens.csv");
	CHECK_STR(cfg.auth.realm, "ocigate");
	CHECK_INT(cfg.log.level, CONFIG_LOG_INFO);
	CHECK_INT(cfg.log.access_log, 1);
	CHECK_INT(cfg.n_connectors, 0);
	CHECK(cfg.connectors == NULL);
	config_free(&cfg);
	CHECK(is_zeroed(&cfg));
	config_free(&cfg); /* a zeroed config is fine */
}

static void test_table(void)
{
	size_t n, required = 0;
	const struct config_option *opts = config_options(&n);
	static const char *const sections[] = { "server", "upstream", "auth", "log", "kubernetes",
						"connector", "webhook", "status", "pull_secrets", "tls",
						"cache" };

	CHECK_INT(n, 62);
	for (size_t i = 0; i < n; i++) {
		const struct config_option *o = &opts[i];
		bool known = false;
		for (size_t k = 0; k < OG_ARRAY_LEN(sections); k++)
			known |= strcmp(o->section, sections[k]) == 0;
		if (!known || !o->doc || !*o->doc || (o->type == CFG_ENUM) != (o->enum_words != NULL) ||
		    o->in_connector != (strcmp(o->section, "connector") == 0) ||
		    strspn(o->name, "abcdefghijklmnopqrstuvwxyz_") != strlen(o->name)) {
			fprintf(stderr, "%s:%d: bad table row %s.%s\n", __FILE__, __LINE__,
				o->section, o->name);
			check_failures++;
		}
		if (o->min > o->max) {
			fprintf(stderr, "%s:%d: %s: min > max\n", __FILE__, __LINE__, o->name);
			check_failures++;
		}
		for (size_t k = 0; k < i; k++) {
			if (opts[k].in_connector == o->in_connector && opts[k].offset == o->offset) {
				fprintf(stderr, "%s:%d: %s and %s share an offset\n", __FILE__,
					__LINE__, opts[k].name, o->name);
				check_failures++;
			}
		}
		if (!o->default_value)
			required++;
		CHECK(config_find_option(o->section, o->name) == o);
	}
	CHECK_INT(required, 2);
	CHECK(config_find_option("auth", "tokens_file")->default_value == NULL);
	CHECK(config_find_option("connector", "address")->default_value == NULL);
	CHECK(config_find_option("server", "address") == NULL);
	CHECK(config_find_option("connector", "listen") == NULL);
	CHECK(!config_find_option("server", "listen")->reloadable);
	CHECK(config_find_option("server", "header_timeout")->reloadable);
	CHECK_STR(config_type_name(CFG_DURATION), "duration");
	CHECK_STR(config_type_name(CFG_URL), "url");
	CHECK_STR(config_type_name(CFG_ENUM), "enum");
}

/* ---- one value of one option ---- */

/* "[SECTION]\nKEY = VALUE\n" + AUTH: the value is on line 2. */
static bool parse_value_at(int line, const char *section, const char *key, const char *value,
			   struct config *cfg)
{
	char text[ERR_CAP];

	snprintf(text, sizeof(text), "[%s]\n%s = %s\n" AUTH, section, key, value);
	return parse_ok_at(line, text, cfg);
}

static void value_error_at(int line, const char *section, const char *key, const char *value,
			   const char *expected)
{
	char text[ERR_CAP];

	snprintf(text, sizeof(text), "[%s]\n%s = %s\n" AUTH, section, key, value);
	expect_error_len_at(line, text, strlen(text), &no_files, expected);
}

#define VALUE_OK(sec, key, value, cfg) parse_value_at(__LINE__, (sec), (key), (value), (cfg))
#define VALUE_ERROR(sec, key, value, expected) \
	value_error_at(__LINE__, (sec), (key), (value), (expected))

static void duration_is_at(int line, const char *value, uint64_t ms)
{
	struct config cfg;

	if (!parse_value_at(line, "server", "header_timeout", value, &cfg))
		return;
	if (cfg.server.header_timeout_ms != ms) {
		fprintf(stderr, "%s:%d: header_timeout = %s gave %llu ms, expected %llu\n",
			__FILE__, line, value, (unsigned long long)cfg.server.header_timeout_ms,
			(unsigned long long)ms);
		check_failures++;
	}
	config_free(&cfg);
}
#define DURATION_IS(value, ms) duration_is_at(__LINE__, (value), (ms))

static void test_duration(void)
{
	const char *malformed = "t.conf:2: header_timeout: expected a duration like 10s, 500ms, 2m";
	const char *range = "t.conf:2: header_timeout: must be between 1ms and 24h";
	struct config cfg;

	DURATION_IS("500ms", 500);
	DURATION_IS("1ms", 1);
	DURATION_IS("10s", 10000);
	DURATION_IS("10", 10000);
	DURATION_IS("2m", 120000);
	DURATION_IS("2h", 7200000);
	DURATION_IS("24h", 86400000);
	DURATION_IS("1440m", 86400000);
	DURATION_IS("007s", 7000);
	VALUE_ERROR("server", "header_timeout", "0", range);
	VALUE_ERROR("server", "header_timeout", "0ms", range);
	VALUE_ERROR("server", "header_timeout", "25h", range);
	VALUE_ERROR("server", "header_timeout", "86400001ms", range);
	VALUE_ERROR("server", "header_timeout", "99999999999999999999", range);
	VALUE_ERROR("server", "header_timeout", "18446744073709551615h", range);
	VALUE_ERROR("server", "header_timeout", "10x", malformed);
	VALUE_ERROR("server", "header_timeout", "10S", malformed);
	VALUE_ERROR("server", "header_timeout", "10 s", malformed);
	VALUE_ERROR("server", "header_timeout", "1.5s", malformed);
	VALUE_ERROR("server", "header_timeout", "-1", malformed);
	VALUE_ERROR("server", "header_timeout", "s", malformed);
	VALUE_ERROR("server", "header_timeout", "", malformed);
	VALUE_ERROR("server", "header_timeout", "10sec", malformed);
	/* Only shutdown_timeout may be 0. */
	if (VALUE_OK("server", "shutdown_timeout", "0", &cfg)) {
		CHECK_INT(cfg.server.shutdown_timeout_ms, 0);
		config_free(&cfg);
	}
	VALUE_ERROR("server", "shutdown_timeout", "25h",
		    "t.conf:2: shutdown_timeout: must be at most 24h");
	VALUE_ERROR("upstream", "pool_idle_timeout", "0",
		    "t.conf:2: pool_idle_timeout: must be between 1ms and 24h");
	if (VALUE_OK("upstream", "read_timeout", "90s", &cfg)) {
		CHECK_INT(cfg.upstream.read_timeout_ms, 90000);
		config_free(&cfg);
	}
}

static void size_is_at(int line, const char *key, const char *value, uint64_t bytes)
{
	struct config cfg;
	uint64_t got;

	if (!parse_value_at(line, "server", key, value, &cfg))
		return;
	got = strcmp(key, "body_buffer") == 0   ? cfg.server.body_buffer
	      : strcmp(key, "body_memory") == 0 ? cfg.server.body_memory
						: cfg.server.max_header_bytes;
	if (got != bytes) {
		fprintf(stderr, "%s:%d: %s = %s gave %llu, expected %llu\n", __FILE__, line, key,
			value, (unsigned long long)got, (unsigned long long)bytes);
		check_failures++;
	}
	config_free(&cfg);
}
#define SIZE_IS(key, value, bytes) size_is_at(__LINE__, (key), (value), (bytes))

static void test_size(void)
{
	const char *malformed =
		"t.conf:2: max_header_bytes: expected a size like 65536, 64k, 1m (k, m, g = 1024, 1024^2, 1024^3)";
	const char *range = "t.conf:2: max_header_bytes: must be between 1k and 1m";

	SIZE_IS("body_buffer", "256k", 262144);
	SIZE_IS("body_buffer", "256K", 262144);
	SIZE_IS("body_buffer", "64m", 67108864);
	SIZE_IS("body_buffer", "16384", 16384);
	SIZE_IS("body_memory", "1m", 1048576);
	SIZE_IS("body_memory", "64g", 68719476736ULL);
	SIZE_IS("max_header_bytes", "1m", 1048576);
	SIZE_IS("max_header_bytes", "1M", 1048576);
	SIZE_IS("max_header_bytes", "1k", 1024);
	SIZE_IS("max_header_bytes", "1024", 1024);
	SIZE_IS("max_header_bytes", "1048576", 1048576);
	VALUE_ERROR("server", "max_header_bytes", "1023", range);
	VALUE_ERROR("server", "max_header_bytes", "1025k", range);
	VALUE_ERROR("server", "max_header_bytes", "1g", range);
	VALUE_ERROR("server", "max_header_bytes", "99999999999999999999", range);
	VALUE_ERROR("server", "max_header_bytes", "17179869184g", range);
	VALUE_ERROR("server", "max_header_bytes", "16kb", malformed);
	VALUE_ERROR("server", "max_header_bytes", "16 k", malformed);
	VALUE_ERROR("server", "max_header_bytes", "k", malformed);
	VALUE_ERROR("server", "max_header_bytes", "1t", malformed);
	VALUE_ERROR("server", "max_header_bytes", "", malformed);
	VALUE_ERROR("server", "body_buffer", "1g",
		    "t.conf:2: body_buffer: must be between 16k and 64m");
	VALUE_ERROR("server", "body_memory", "512k",
		    "t.conf:2: body_memory: must be between 1m and 64g");
	VALUE_ERROR("upstream", "max_response_header_bytes", "2m",
		    "t.conf:2: max_response_header_bytes: must be between 1k and 1m");
}

static void test_cache(void)
{
	const char *pct = "t.conf:2: min_free: expected a percentage from 0% to 99% or a size like 5g";
	struct config cfg;

	if (PARSE_OK(AUTH, &cfg)) {
		CHECK(cfg.cache.dir == NULL);
		CHECK_INT(cfg.cache.max_size, 10ULL << 30);
		CHECK_STR(cfg.cache.min_free, "5%");
		CHECK_INT(cfg.cache.min_free_percent, 5);
		CHECK_INT(cfg.cache.min_free_bytes, 0);
		config_free(&cfg);
	}
	if (PARSE_OK("[cache]\ndir = /var/cache/ocigate\nmax_size = 50g\nmin_free = 2g\n" AUTH,
		     &cfg)) {
		CHECK_STR(cfg.cache.dir, "/var/cache/ocigate");
		CHECK_INT(cfg.cache.max_size, 50ULL << 30);
		CHECK_INT(cfg.cache.min_free_percent, 0);
		CHECK_INT(cfg.cache.min_free_bytes, 2ULL << 30);
		config_free(&cfg);
	}
	if (VALUE_OK("cache", "min_free", "0%", &cfg)) {
		CHECK_INT(cfg.cache.min_free_percent, 0);
		CHECK_INT(cfg.cache.min_free_bytes, 0);
		config_free(&cfg);
	}
	VALUE_ERROR("cache", "min_free", "100%", pct);
	VALUE_ERROR("cache", "min_free", "5.5%", pct);
	VALUE_ERROR("cache", "min_free", "%", "t.conf:2: min_free: expected a size like 65536, "
		    "64k, 1m (k, m, g = 1024, 1024^2, 1024^3)");
	VALUE_ERROR("cache", "max_size", "1k", "t.conf:2: max_size: must be between 1m and 1048576g");
	VALUE_ERROR("cache", "dir", "", "t.conf:2: dir: expected a file path");
}

static void test_uint(void)
{
	struct config cfg;
	const char *malformed = "t.conf:2: max_connections: expected a whole number from 1 to 1000000";
	const char *range = "t.conf:2: max_connections: must be between 1 and 1000000";

	if (VALUE_OK("server", "max_connections", "1", &cfg)) {
		CHECK_INT(cfg.server.max_connections, 1);
		config_free(&cfg);
	}
	if (VALUE_OK("server", "max_connections", "1000000", &cfg)) {
		CHECK_INT(cfg.server.max_connections, 1000000);
		config_free(&cfg);
	}
	VALUE_ERROR("server", "max_connections", "0", range);
	VALUE_ERROR("server", "max_connections", "1000001", range);
	VALUE_ERROR("server", "max_connections", "18446744073709551616", range);
	VALUE_ERROR("server", "max_connections", "-5", malformed);
	VALUE_ERROR("server", "max_connections", "+5", malformed);
	VALUE_ERROR("server", "max_connections", "12abc", malformed);
	VALUE_ERROR("server", "max_connections", "0x10", malformed);
	VALUE_ERROR("server", "max_connections", "1k", malformed);
	VALUE_ERROR("server", "max_connections", "", malformed);
	VALUE_ERROR("server", "max_headers", "7", "t.conf:2: max_headers: must be between 8 and 1000");
	if (VALUE_OK("upstream", "pool_max_idle", "0", &cfg)) {
		CHECK_INT(cfg.upstream.pool_max_idle, 0);
		config_free(&cfg);
	}
	VALUE_ERROR("upstream", "pool_max_idle", "1025", "t.conf:2: pool_max_idle: must be at most 1024");
}

static void test_bool_enum(void)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	const char *bad_bool = "t.conf:2: access_log: expected yes/no, true/false, on/off or 1/0";
	struct config cfg;

	for (size_t i = 0; i < OG_ARRAY_LEN(yes); i++) {
		if (VALUE_OK("log", "access_log", no[i], &cfg)) {
			CHECK_INT(cfg.log.access_log, 0);
			config_free(&cfg);
		}
		if (VALUE_OK("log", "access_log", yes[i], &cfg)) {
			CHECK_INT(cfg.log.access_log, 1);
			config_free(&cfg);
		}
	}
	VALUE_ERROR("log", "access_log", "Yes", bad_bool);
	VALUE_ERROR("log", "access_log", "2", bad_bool);
	VALUE_ERROR("log", "access_log", "", bad_bool);
	VALUE_ERROR("log", "access_log", "y", bad_bool);
	for (size_t i = 0; i < OG_ARRAY_LEN(levels); i++) {
		if (VALUE_OK("log", "level", levels[i], &cfg)) {
			CHECK_INT(cfg.log.level, (int)i);
			config_free(&cfg);
		}
	}
	CHECK_INT(CONFIG_LOG_ERROR, 3);
	VALUE_ERROR("log", "level", "verbose",
		    "t.conf:2: level: expected one of debug, info, warn, error");
	VALUE_ERROR("log", "level", "INFO", "t.conf:2: level: expected one of debug, info, warn, error");
}

static void address_is_at(int line, const char *value, const char *host, unsigned port,
			  const char *public_address)
{
	struct config cfg;

	if (!parse_value_at(line, "server", "listen", value, &cfg))
		return;
	if (strcmp(cfg.server.listen.host, host) != 0 || cfg.server.listen.port != port ||
	    strcmp(cfg.server.public_address, public_address) != 0) {
		fprintf(stderr, "%s:%d: listen = %s gave host \"%s\" port %u public \"%s\", expected \"%s\" %u \"%s\"\n",
			__FILE__, line, value, cfg.server.listen.host, cfg.server.listen.port,
			cfg.server.public_address, host, port, public_address);
		check_failures++;
	}
	config_free(&cfg);
}
#define ADDRESS_IS(value, host, port, pub) address_is_at(__LINE__, (value), (host), (port), (pub))

static void test_address(void)
{
	const char *malformed =
		"t.conf:2: listen: expected an address like 127.0.0.1:5000, [::1]:5000 or :5000";
	const char *bad_port = "t.conf:2: listen: port must be a number from 0 to 65535";
	struct config cfg;

	ADDRESS_IS("127.0.0.1:5000", "127.0.0.1", 5000, "127.0.0.1:5000");
	ADDRESS_IS("[::1]:5000", "::1", 5000, "[::1]:5000");
	ADDRESS_IS("[2001:db8::1]:443", "2001:db8::1", 443, "[2001:db8::1]:443");
	ADDRESS_IS(":5000", "", 5000, ":5000");
	ADDRESS_IS("0.0.0.0:0", "0.0.0.0", 0, "0.0.0.0:0");
	ADDRESS_IS("localhost:65535", "localhost", 65535, "localhost:65535");
	ADDRESS_IS("proxy-1.example.com:80", "proxy-1.example.com", 80, "proxy-1.example.com:80");
	VALUE_ERROR("server", "listen", "127.0.0.1:65536", bad_port);
	VALUE_ERROR("server", "listen", "127.0.0.1:", bad_port);
	VALUE_ERROR("server", "listen", "127.0.0.1:-1", bad_port);
	VALUE_ERROR("server", "listen", "127.0.0.1:5x", bad_port);
	VALUE_ERROR("server", "listen", "127.0.0.1:000080", bad_port);
	VALUE_ERROR("server", "listen", "[::1]:", bad_port);
	VALUE_ERROR("server", "listen", "[::1]:99999", bad_port);
	VALUE_ERROR("server", "listen", "127.0.0.1", malformed);
	VALUE_ERROR("server", "listen", "5000", malformed);
	VALUE_ERROR("server", "listen", "[::1]5000", malformed);
	VALUE_ERROR("server", "listen", "[::1", malformed);
	VALUE_ERROR("server", "listen", "::1:5000",
		    "t.conf:2: listen: an IPv6 address needs brackets, like [::1]:5000");
	VALUE_ERROR("server", "listen", "[zz::1]:5000", "t.conf:2: listen: 'zz::1' is not an IPv6 address");
	VALUE_ERROR("server", "listen", "[127.0.0.1]:5000",
		    "t.conf:2: listen: '127.0.0.1' is not an IPv6 address");
	VALUE_ERROR("server", "listen", "bad_host:5000",
		    "t.conf:2: listen: 'bad_host' is not an IP address or host name");
	VALUE_ERROR("server", "listen", "1.2.3.999:80",
		    "t.conf:2: listen: '1.2.3.999' is not an IP address or host name");
	VALUE_ERROR("server", "listen", "-a.example:80",
		    "t.conf:2: listen: '-a.example' is not an IP address or host name");
	VALUE_ERROR("server", "listen", "a..b:80",
		    "t.conf:2: listen: 'a..b' is not an IP address or host name");
	/* An explicit public_address is kept as written. */
	if (PARSE_OK("[server]\nlisten = :5000\npublic_address = proxy.example.com:5000\n" AUTH,
		     &cfg)) {
		CHECK_STR(cfg.server.public_address, "proxy.example.com:5000");
		CHECK_STR(cfg.server.listen.host, "");
		config_free(&cfg);
	}
}

static void url_is_at(int line, const char *value, bool https, const char *host, unsigned port,
		      const char *prefix)
{
	struct config cfg;
	char text[ERR_CAP];
	const struct url_base *u;

	snprintf(text, sizeof(text), AUTH "[connector \"ns/c\"]\naddress = %s\n", value);
	if (!parse_ok_at(line, text, &cfg))
		return;
	u = &cfg.connectors[0].address;
	if (u->https != https || strcmp(u->host, host) != 0 || u->port != port ||
	    strcmp(u->path_prefix, prefix) != 0 || strcmp(u->text, value) != 0) {
		fprintf(stderr, "%s:%d: address = %s gave https=%d host \"%s\" port %u prefix \"%s\" text \"%s\", expected https=%d \"%s\" %u \"%s\"\n",
			__FILE__, line, value, u->https, u->host, u->port, u->path_prefix, u->text,
			https, host, port, prefix);
		check_failures++;
	}
	config_free(&cfg);
}
#define URL_IS(value, https, host, port, prefix) \
	url_is_at(__LINE__, (value), (https), (host), (port), (prefix))

static void url_error_at(int line, const char *value, const char *message)
{
	char text[ERR_CAP], expected[ERR_CAP];

	snprintf(text, sizeof(text), AUTH "[connector \"ns/c\"]\naddress = %s\n", value);
	snprintf(expected, sizeof(expected), "t.conf:4: address: %s", message);
	expect_error_len_at(line, text, strlen(text), &no_files, expected);
}
#define URL_ERROR(value, message) url_error_at(__LINE__, (value), (message))

/* An empty address turns a listener off, where that leaves a way in. */
static void test_listeners(void)
{
	struct config cfg;

	if (PARSE_OK(AUTH "[server]\n", &cfg)) {
		CHECK(!config_address_set(&cfg.server.admin_listen));
		CHECK(!config_address_set(&cfg.tls.listen));
		config_free(&cfg);
	}
	if (PARSE_OK(AUTH "[server]\nadmin_listen = 127.0.0.1:9090\n", &cfg)) {
		CHECK(config_address_set(&cfg.server.admin_listen));
		CHECK_INT(cfg.server.admin_listen.port, 9090);
		config_free(&cfg);
	}
	EXPECT_ERROR(AUTH "[server]\nlisten =\n",
		     "t.conf: [server] listen may only be empty when [tls] listen is set");
	EXPECT_ERROR(AUTH "[tls]\nlisten = :5443\nkey_file = k.pem\n", "t.conf: [tls] listen needs cert_file");
	EXPECT_ERROR(AUTH "[tls]\nlisten = :5443\ncert_file = c.pem\n", "t.conf: [tls] listen needs key_file");
	if (PARSE_OK(AUTH "[server]\nlisten =\n[tls]\nlisten = 127.0.0.1:5443\ncert_file = c.pem\n"
		     "key_file = k.pem\n", &cfg)) {
		CHECK(!config_address_set(&cfg.server.listen));
		CHECK_STR(cfg.server.public_address, "127.0.0.1:5443");
		CHECK_STR(cfg.tls.cert_file, "/etc/ocigate/c.pem");
		config_free(&cfg);
	}
}

static void test_url(void)
{
	const char *not_url = "expected an http:// or https:// URL like https://registry.example.com";

	URL_IS("https://harbor.example.com", true, "harbor.example.com", 443, "");
	URL_IS("http://harbor.example.com", false, "harbor.example.com", 80, "");
	URL_IS("https://harbor.example.com/", true, "harbor.example.com", 443, "");
	URL_IS("https://Harbor.Example.COM:8443", true, "harbor.example.com", 8443, "");
	URL_IS("http://10.0.0.1:5000/v2-mirror/team/", false, "10.0.0.1", 5000, "/v2-mirror/team");
	URL_IS("https://h/a//", true, "h", 443, "/a");
	URL_IS("http://[::1]:5000/x", false, "::1", 5000, "/x");
	URL_IS("https://[2001:db8::2]", true, "2001:db8::2", 443, "");
	URL_IS("HTTPS://registry.local", true, "registry.local", 443, "");
	URL_IS("https://h/%7Euser/a;b=c", true, "h", 443, "/%7Euser/a;b=c");
	URL_ERROR("ftp://harbor.example.com", not_url);
	URL_ERROR("harbor.example.com", not_url);
	URL_ERROR("https:/harbor.example.com", not_url);
	URL_ERROR("", not_url);
	URL_ERROR("https://h?x=1", "a query or fragment is not allowed");
	URL_ERROR("https://h/p?x=1", "a query or fragment is not allowed");
	URL_ERROR("https://h/p#frag", "a query or fragment is not allowed");
	URL_ERROR("https://user:pw@h",
		  "credentials in the URL are not allowed");
	URL_ERROR("https://h:0", "port must be a number from 1 to 65535");
	URL_ERROR("https://h:70000", "port must be a number from 1 to 65535");
	URL_ERROR("https://h:", "port must be a number from 1 to 65535");
	URL_ERROR("https://h:x", "port must be a number from 1 to 65535");
	URL_ERROR("https://[::1]:", "port must be a number from 1 to 65535");
	URL_ERROR("https://", "'' is not a valid host in a URL");
	URL_ERROR("https://:443", "':443' is not a valid host in a URL");
	URL_ERROR("https://bad_host", "'bad_host' is not a valid host in a URL");
	URL_ERROR("https://[::1", "'[::1' is not a valid host in a URL");
	URL_ERROR("https://[::1]x", "'[::1]x' is not a valid host in a URL");
	URL_ERROR("https://[nothex]", "'[nothex]' is not a valid host in a URL");
	URL_ERROR("https://h/a b", "invalid character in the URL path");
	URL_ERROR("https://h/a%zz", "invalid character in the URL path");
	URL_ERROR("https://h/\"x", "invalid character in the URL path");
}

static void test_list(void)
{
	struct config cfg;
	const struct config_list *l;

	if (PARSE_OK(AUTH "[connector \"ns/c\"]\naddress = https://h\nallow = a  b\tsystem:serviceaccounts:ns\n",
		     &cfg)) {
		l = &cfg.connectors[0].allow;
		CHECK_INT(l->n, 3);
		if (l->n == 3) {
			CHECK_STR(l->items[0], "a");
			CHECK_STR(l->items[1], "b");
			CHECK_STR(l->items[2], "system:serviceaccounts:ns");
		}
		config_free(&cfg);
	}
	if (PARSE_OK(AUTH "[connector \"ns/c\"]\naddress = https://h\nallow =\n", &cfg)) {
		CHECK_INT(cfg.connectors[0].allow.n, 0);
		CHECK(cfg.connectors[0].allow.items == NULL);
		config_free(&cfg);
	}
	if (PARSE_OK(AUTH "[connector \"ns/c\"]\naddress = https://h\nallow = \"  only  \"\n", &cfg)) {
		CHECK_INT(cfg.connectors[0].allow.n, 1);
		if (cfg.connectors[0].allow.n == 1)
			CHECK_STR(cfg.connectors[0].allow.items[0], "only");
		config_free(&cfg);
	}
}

/* ---- lexing: quotes, comments, line endings ---- */

static void username_is_at(int line, const char *value_text, const char *expected)
{
	struct config cfg;
	char text[ERR_CAP];

	snprintf(text, sizeof(text), AUTH "[connector \"ns/c\"]\naddress = https://h\nusername =%s\n",
		 value_text);
	if (!parse_ok_at(line, text, &cfg))
		return;
	if (strcmp(cfg.connectors[0].username, expected) != 0) {
		fprintf(stderr, "%s:%d: username =%s gave \"%s\", expected \"%s\"\n", __FILE__, line,
			value_text, cfg.connectors[0].username, expected);
		check_failures++;
	}
	config_free(&cfg);
}
#define USERNAME_IS(value_text, expected) username_is_at(__LINE__, (value_text), (expected))

static void test_quoting_and_comments(void)
{
	struct config cfg;
	char text[ERR_CAP];

	USERNAME_IS(" robot$demo", "robot$demo");
	USERNAME_IS("   robot$demo   ", "robot$demo");
	USERNAME_IS("\trobot$demo\t", "robot$demo");
	USERNAME_IS(" robot$demo ; the robot account", "robot$demo");
	USERNAME_IS(" robot$demo\t# the robot account", "robot$demo");
	USERNAME_IS(" a;b", "a;b");
	USERNAME_IS(" a#b", "a#b");
	USERNAME_IS(" a b c", "a b c");
	USERNAME_IS(" a #b", "a");
	USERNAME_IS(" ; only a comment", "");
	USERNAME_IS(";x", "");
	USERNAME_IS("", "");
	USERNAME_IS(" \"\"", "");
	USERNAME_IS(" \"  spaced  \"", "  spaced  ");
	USERNAME_IS(" \"a ; b # c\"", "a ; b # c");
	USERNAME_IS(" \"say \\\"hi\\\" \\\\ bye\"", "say \"hi\" \\ bye");
	USERNAME_IS(" \"x\" ; comment", "x");
	USERNAME_IS(" \"x\";comment", "x");
	USERNAME_IS(" \"x\"   ", "x");
	USERNAME_IS(" a\"b\"", "a\"b\"");
	USERNAME_IS(" key=value", "key=value");
	USERNAME_IS(" caf\xc3\xa9", "caf\xc3\xa9");

	EXPECT_ERROR(AUTH "[connector \"ns/c\"]\naddress = https://h\nusername = \"x\" y\n",
		     "t.conf:5: unexpected text after the closing quote");
	EXPECT_ERROR(AUTH "[connector \"ns/c\"]\naddress = https://h\nusername = \"open\n",
		     "t.conf:5: missing closing '\"'");
	EXPECT_ERROR(AUTH "[connector \"ns/c\"]\naddress = https://h\nusername = \"a\\nb\"\n",
		     "t.conf:5: only \\\" and \\\\ may follow a backslash in quotes");
	EXPECT_ERROR(AUTH "[connector \"ns/c\"]\naddress = https://h\nusername = \"a\\\"\n",
		     "t.conf:5: missing closing '\"'");

	/* Comments, blank lines, indentation, CRLF, a byte order mark. */
	snprintf(text, sizeof(text), "%s",
		 "\xef\xbb\xbf; leading comment\r\n"
		 "# another\r\n"
		 "\r\n"
		 "   [server]   ; header comment\r\n"
		 "\t  listen = :6000 # inline\r\n"
		 "  ;listen = 1.2.3.4:1\r\n"
		 "[auth] # x\r\n"
		 "tokens_file = \"t ; s.csv\"\r\n");
	if (PARSE_OK(text, &cfg)) {
		CHECK_INT(cfg.server.listen.port, 6000);
		CHECK_STR(cfg.server.listen.host, "");
		CHECK_STR(cfg.auth.tokens_file, "/etc/ocigate/t ; s.csv");
		config_free(&cfg);
	}
	/* No newline at the end of the last line. */
	if (PARSE_OK("[auth]\ntokens_file = /abs/tokens", &cfg)) {
		CHECK_STR(cfg.auth.tokens_file, "/abs/tokens");
		config_free(&cfg);
	}
}

/* ---- every error, with its line ---- */

static void test_errors(void)
{
	char *big;
	size_t n;

	EXPECT_ERROR("[server]\n[bogus]\n", "t.conf:2: unknown section [bogus]");
	EXPECT_ERROR("[Server]\n", "t.conf:1: unknown section [Server]");
	EXPECT_ERROR("[kubernetes]\n[kubernetes]\n",
		     "t.conf:2: duplicate section [kubernetes] (first on line 1)");
	EXPECT_ERROR("[kubernetes \"x\"]\n", "t.conf:1: section [kubernetes] takes no name");
	EXPECT_ERROR("[bogus \"x\"]\n", "t.conf:1: unknown section [bogus]");
	EXPECT_ERROR("[server]\nlisten_addr = :1\n",
		     "t.conf:2: unknown key 'listen_addr' in section [server]");
	EXPECT_ERROR("[server]\nListen = :1\n", "t.conf:2: unknown key 'Listen' in section [server]");
	EXPECT_ERROR("[server]\nmax connections = 1\n",
		     "t.conf:2: unknown key 'max connections' in section [server]");
	EXPECT_ERROR("[upstream]\nlisten = :1\n", "t.conf:2: unknown key 'listen' in section [upstream]");
	EXPECT_ERROR(AUTH "[connector \"a/b\"]\naddress = https://h\nlisten = :1\n",
		     "t.conf:5: unknown key 'listen' in section [connector \"a/b\"]");
	EXPECT_ERROR("[connector \"a/b\"]\naddress = https://h\n[server]\naddress = x\n",
		     "t.conf:4: unknown key 'address' in section [server]");
	EXPECT_ERROR("listen = :5000\n[server]\n", "t.conf:1: key 'listen' outside of any section");
	EXPECT_ERROR("\n\n  x = 1\n", "t.conf:3: key 'x' outside of any section");
	EXPECT_ERROR("[server]\nlisten = :1\nlisten = :2\n",
		     "t.conf:3: duplicate key 'listen' in section [server] (first set on line 2)");
	EXPECT_ERROR(AUTH "[connector \"a/b\"]\naddress = https://h\naddress = https://i\n",
		     "t.conf:5: duplicate key 'address' in section [connector \"a/b\"] (first set on line 4)");
	EXPECT_ERROR("[server]\n[auth]\ntokens_file = t\n[server]\n",
		     "t.conf:4: duplicate section [server] (first on line 1)");
	EXPECT_ERROR(AUTH "[connector \"a/b\"]\naddress = https://h\n[connector \"a/c\"]\naddress = https://h\n[connector \"a/b\"]\n",
		     "t.conf:7: duplicate connector \"a/b\" (first defined on line 3)");
	EXPECT_ERROR("[server\n",
		     "t.conf:1: malformed section header: expected [section] or [connector \"NAMESPACE/NAME\"]");
	EXPECT_ERROR("[]\n",
		     "t.conf:1: malformed section header: expected [section] or [connector \"NAMESPACE/NAME\"]");
	EXPECT_ERROR("[ server]\n",
		     "t.conf:1: malformed section header: expected [section] or [connector \"NAMESPACE/NAME\"]");
	EXPECT_ERROR("[connector a/b]\n",
		     "t.conf:1: malformed section header: expected [section] or [connector \"NAMESPACE/NAME\"]");
	EXPECT_ERROR("[connector \"a/b\"\n",
		     "t.conf:1: malformed section header: expected [section] or [connector \"NAMESPACE/NAME\"]");
	EXPECT_ERROR("[connector \"a/b]\n", "t.conf:1: missing closing '\"'");
	EXPECT_ERROR("[server] x\n", "t.conf:1: unexpected text after the section header");
	EXPECT_ERROR("[server]]\n", "t.conf:1: unexpected text after the section header");
	EXPECT_ERROR("[server \"x\"]\n", "t.conf:1: section [server] takes no name");
	EXPECT_ERROR("[connector]\n",
		     "t.conf:1: section [connector] needs a name: [connector \"NAMESPACE/NAME\"]");
	EXPECT_ERROR("[server]\nlisten\n", "t.conf:2: expected 'key = value' but found no '='");
	EXPECT_ERROR("[server]\nlisten :5000 ; = no\n",
		     "t.conf:2: unknown key 'listen :5000 ;' in section [server]");
	EXPECT_ERROR("[server]\n  = 5\n", "t.conf:2: missing key before '='");
	EXPECT_ERROR("[server]\nheader_timeout = 10x\n" AUTH,
		     "t.conf:2: header_timeout: expected a duration like 10s, 500ms, 2m");
	EXPECT_ERROR("[auth]\ntokens_file =\n", "t.conf:2: tokens_file: expected a file path");
	EXPECT_ERROR("[auth]\ntokens_file = \"\"\n", "t.conf:2: tokens_file: expected a file path");
	EXPECT_ERROR(AUTH "[connector \"a/b\"]\naddress = https://h\nca_file = ; none\n",
		     "t.conf:5: ca_file: expected a file path");

	/* Missing required options: the section's header, or the last line. */
	EXPECT_ERROR("", "t.conf:1: missing required option 'tokens_file' in section [auth]");
	EXPECT_ERROR("[server]\n\n\n", "t.conf:3: missing required option 'tokens_file' in section [auth]");
	EXPECT_ERROR("[server]\n[auth]\nrealm = r\n[log]\nlevel = warn\n",
		     "t.conf:2: missing required option 'tokens_file' in section [auth]");
	EXPECT_ERROR("[auth]\nrealm = r\n", "t.conf:1: missing required option 'tokens_file' in section [auth]");
	EXPECT_ERROR(AUTH "[connector \"a/b\"]\nusername = u\n[log]\n",
		     "t.conf:3: missing required option 'address' in section [connector \"a/b\"]");
	EXPECT_ERROR(AUTH "[connector \"a/b\"]\naddress = https://h\n[connector \"a/c\"]\n",
		     "t.conf:5: missing required option 'address' in section [connector \"a/c\"]");
	/* A later error inside the section comes first: errors are in file order. */
	EXPECT_ERROR(AUTH "[connector \"a/b\"]\nusername = u\nbogus = 1\n",
		     "t.conf:5: unknown key 'bogus' in section [connector \"a/b\"]");

	/* Bytes that have no place in a text file. */
	expect_error_len_at(__LINE__, "[server]\nlisten = a\0b\n", 21, &no_files,
			    "t.conf:2: NUL byte in line");
	expect_error_len_at(__LINE__, "\0", 1, &no_files, "t.conf:1: NUL byte in line");
	EXPECT_ERROR("[server]\nrealm = a\x01z\n", "t.conf:2: control character 0x01 in line");
	EXPECT_ERROR("[server]\r\nlisten = :1\rmax_headers = 9\r\n",
		     "t.conf:2: control character 0x0d in line");
	EXPECT_ERROR("[server]\x7f\n", "t.conf:1: control character 0x7f in line");
	EXPECT_ERROR("[server]\n\x1b[31m\n", "t.conf:2: control character 0x1b in line");

	/* Sizes of lines and of the file. */
	n = CONFIG_MAX_LINE_BYTES + 1;
	big = x_malloc(64 + n + 1);
	strcpy(big, "[server]\n");
	memset(big + 9, '#', n);
	strcpy(big + 9 + n, "\n" AUTH);
	EXPECT_ERROR(big, "t.conf:2: line is longer than 8192 bytes");
	memmove(big + 9, big + 10, strlen(big + 10) + 1); /* exactly 8192: fine */
	{
		struct config cfg;
		if (PARSE_OK(big, &cfg))
			config_free(&cfg);
	}
	/* ... also when the limit is hit by a CRLF line. */
	memmove(big + 9 + CONFIG_MAX_LINE_BYTES + 1, big + 9 + CONFIG_MAX_LINE_BYTES,
		strlen(big + 9 + CONFIG_MAX_LINE_BYTES) + 1);
	big[9 + CONFIG_MAX_LINE_BYTES] = '\r';
	{
		struct config cfg;
		if (PARSE_OK(big, &cfg))
			config_free(&cfg);
	}
	free(big);

	n = CONFIG_MAX_FILE_BYTES;
	big = x_malloc(n + 2);
	memset(big, '\n', n + 1);
	memcpy(big, AUTH, strlen(AUTH));
	for (size_t i = strlen(AUTH); i + 64 < n; i += 64)
		big[i] = '#';
	expect_error_len_at(__LINE__, big, n + 1, &no_files, "t.conf: file is larger than 1048576 bytes");
	{
		struct config cfg;
		char err[ERR_CAP];
		if (parse_len(big, n, &no_files, &cfg, err) != 0) {
			fprintf(stderr, "%s:%d: a file of exactly 1 MiB failed: %s\n", __FILE__,
				__LINE__, err);
			check_failures++;
		} else {
			config_free(&cfg);
		}
	}
	free(big);

	/* No path for messages, and no room for the error at all. */
	{
		struct config cfg;
		char err[ERR_CAP];
		struct config_parse_opts o = { .path_for_messages = NULL, .check_files = false };
		CHECK_INT(config_parse_ex("[x]\n", 4, &o, &cfg, err, sizeof(err)), -1);
		CHECK_STR(err, "config:1: unknown section [x]");
		CHECK_INT(config_parse_ex("[x]\n", 4, &o, &cfg, NULL, 0), -1);
		CHECK_INT(config_parse_ex("[x]\n", 4, &o, &cfg, err, 8), -1);
		CHECK_STR(err, "config:");
		CHECK(is_zeroed(&cfg));
	}
}

/* ---- connectors ---- */

static void test_connector_names(void)
{
	static const char label_rule[] =
		"is not a DNS-1123 label (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)";
	static const char subdomain_rule[] =
		"is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253, starting and ending with a letter or digit)";
	char text[ERR_CAP], expected[ERR_CAP], long_ns[70], long_name[260];
	struct config cfg;

	snprintf(expected, sizeof(expected), "t.conf:1: connector namespace 'Team' %s", label_rule);
	EXPECT_ERROR("[connector \"Team/x\"]\n", expected);
	snprintf(expected, sizeof(expected), "t.conf:1: connector namespace '' %s", label_rule);
	EXPECT_ERROR("[connector \"/x\"]\n", expected);
	snprintf(expected, sizeof(expected), "t.conf:1: connector namespace '-a' %s", label_rule);
	EXPECT_ERROR("[connector \"-a/x\"]\n", expected);
	snprintf(expected, sizeof(expected), "t.conf:1: connector namespace 'a.b' %s", label_rule);
	EXPECT_ERROR("[connector \"a.b/x\"]\n", expected);
	EXPECT_ERROR("[connector \"a\"]\n", "t.conf:1: connector \"a\": expected \"NAMESPACE/NAME\"");
	EXPECT_ERROR("[connector \"\"]\n", "t.conf:1: connector \"\": expected \"NAMESPACE/NAME\"");
	snprintf(expected, sizeof(expected), "t.conf:1: connector name 'B' %s", subdomain_rule);
	EXPECT_ERROR("[connector \"a/B\"]\n", expected);
	snprintf(expected, sizeof(expected), "t.conf:1: connector name '' %s", subdomain_rule);
	EXPECT_ERROR("[connector \"a/\"]\n", expected);
	snprintf(expected, sizeof(expected), "t.conf:1: connector name 'x/y' %s", subdomain_rule);
	EXPECT_ERROR("[connector \"a/x/y\"]\n", expected);
	snprintf(expected, sizeof(expected), "t.conf:1: connector name 'x..y' %s", subdomain_rule);
	EXPECT_ERROR("[connector \"a/x..y\"]\n", expected);
	snprintf(expected, sizeof(expected), "t.conf:1: connector name 'x-' %s", subdomain_rule);
	EXPECT_ERROR("[connector \"a/x-\"]\n", expected);
	snprintf(expected, sizeof(expected), "t.conf:1: connector name 'x_y' %s", subdomain_rule);
	EXPECT_ERROR("[connector \"a/x_y\"]\n", expected);

	/* Boundaries: a 63-character namespace, a 253-character name. */
	memset(long_ns, 'n', 63);
	long_ns[63] = '\0';
	memset(long_name, 'm', 253);
	long_name[253] = '\0';
	long_name[100] = '.';
	snprintf(text, sizeof(text), AUTH "[connector \"%s/%s\"]\naddress = https://h\n", long_ns,
		 long_name);
	if (PARSE_OK(text, &cfg)) {
		CHECK_INT(strlen(cfg.connectors[0].ns), 63);
		CHECK_INT(strlen(cfg.connectors[0].name), 253);
		config_free(&cfg);
	}
	snprintf(text, sizeof(text), AUTH "[connector \"%sn/x\"]\n", long_ns);
	snprintf(expected, sizeof(expected), "t.conf:3: connector namespace '%sn' %s", long_ns,
		 label_rule);
	EXPECT_ERROR(text, expected);
	snprintf(text, sizeof(text), AUTH "[connector \"a/%sm\"]\n", long_name);
	snprintf(expected, sizeof(expected), "t.conf:3: connector name '%sm' %s", long_name,
		 subdomain_rule);
	EXPECT_ERROR(text, expected);
	if (PARSE_OK(AUTH "[connector \"team-a/harbor.prod-1\"]\naddress = https://h\n", &cfg)) {
		CHECK_STR(cfg.connectors[0].ns, "team-a");
		CHECK_STR(cfg.connectors[0].name, "harbor.prod-1");
		config_free(&cfg);
	}
}

static void test_connectors(void)
{
	struct config cfg;
	const struct config_connector *c;
	static const char text[] =
		"[connector \"team-a/harbor\"]\n"
		"address = https://harbor.example.com\n"
		"username = robot$demo\n"
		"password = \" s3cret \"\n"
		"ca_file = certs/ca.pem\n"
		"allow = system:serviceaccount:team-a:default\n"
		"allow_push = ci-bot system:serviceaccounts:ci\n"
		"allow_insecure = yes\n"
		"\n"
		"[connector \"team-b/harbor\"]\n"
		"address = http://10.1.2.3:5000/mirror\n"
		"password_file = /run/secrets/pw\n"
		AUTH
		"[connector \"team-a/quay\"]\n"
		"address = https://quay.io\n";

	if (!PARSE_OK(text, &cfg))
		return;
	CHECK_INT(cfg.n_connectors, 3);
	c = config_find_connector(&cfg, "team-a", "harbor");
	CHECK(c == &cfg.connectors[0]);
	if (c) {
		CHECK_INT(c->line, 1);
		CHECK_STR(c->address.host, "harbor.example.com");
		CHECK_STR(c->username, "robot$demo");
		CHECK_STR(c->password, " s3cret ");
		CHECK_STR(c->password_file, NULL);
		CHECK_STR(c->ca_file, "/etc/ocigate/certs/ca.pem");
		CHECK_INT(c->allow.n, 1);
		CHECK_INT(c->allow_push.n, 2);
		if (c->allow_push.n == 2)
			CHECK_STR(c->allow_push.items[1], "system:serviceaccounts:ci");
		CHECK(c->allow_insecure);
	}
	c = config_find_connector(&cfg, "team-b", "harbor");
	CHECK(c == &cfg.connectors[1]);
	if (c) {
		CHECK_INT(c->line, 10);
		CHECK_STR(c->username, "");
		/* Files are not read when checks are off. */
		CHECK_STR(c->password, "");
		CHECK_STR(c->password_file, "/run/secrets/pw");
		CHECK_STR(c->ca_file, NULL);
		CHECK_INT(c->allow.n, 0);
		CHECK_INT(c->allow_push.n, 0);
		CHECK(!c->allow_insecure);
		CHECK_INT(c->address.port, 5000);
		CHECK_STR(c->address.path_prefix, "/mirror");
	}
	c = config_find_connector(&cfg, "team-a", "quay");
	CHECK(c == &cfg.connectors[2]);
	if (c)
		CHECK_INT(c->line, 15);
	CHECK(config_find_connector(&cfg, "team-a", "nope") == NULL);
	CHECK(config_find_connector(&cfg, "harbor", "team-a") == NULL);
	CHECK(config_find_connector(&cfg, "team-c", "harbor") == NULL);
	config_free(&cfg);

	/* Many connectors: the array grows. */
	{
		char many[16384];
		size_t used = snprintf(many, sizeof(many), AUTH);
		for (int i = 0; i < 40; i++)
			used += (size_t)snprintf(many + used, sizeof(many) - used,
						 "[connector \"ns%d/c\"]\naddress = https://r%d.example\n",
						 i, i);
		if (PARSE_OK(many, &cfg)) {
			CHECK_INT(cfg.n_connectors, 40);
			c = config_find_connector(&cfg, "ns39", "c");
			CHECK(c != NULL);
			if (c)
				CHECK_STR(c->address.host, "r39.example");
			config_free(&cfg);
		}
	}

	EXPECT_ERROR(AUTH "[connector \"a/b\"]\naddress = https://h\npassword = x\npassword_file = pw\n",
		     "t.conf:6: password and password_file are mutually exclusive (password set on line 5)");
	EXPECT_ERROR(AUTH "[connector \"a/b\"]\npassword_file = pw\naddress = https://h\npassword = x\n",
		     "t.conf:6: password and password_file are mutually exclusive (password_file set on line 4)");
	/* ... but each connector has its own. */
	if (PARSE_OK(AUTH "[connector \"a/b\"]\naddress = https://h\npassword = x\n"
			  "[connector \"a/c\"]\naddress = https://h\npassword_file = pw\n",
		     &cfg))
		config_free(&cfg);
}

/* ---- paths and the files they name ---- */

static void test_paths(void)
{
	struct config cfg;
	char err[ERR_CAP];
	const char *text = "[auth]\ntokens_file = sub/tokens.csv\n[connector \"a/b\"]\n"
			   "address = https://h\nca_file = /abs/ca.pem\npassword_file = ../pw\n";
	struct config_parse_opts o = no_files;

	o.base_dir = "/etc/ocigate/";
	if (parse_len(text, strlen(text), &o, &cfg, err) == 0) {
		CHECK_STR(cfg.auth.tokens_file, "/etc/ocigate/sub/tokens.csv");
		CHECK_STR(cfg.connectors[0].ca_file, "/abs/ca.pem");
		CHECK_STR(cfg.connectors[0].password_file, "/etc/ocigate/../pw");
		config_free(&cfg);
	} else {
		fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, err);
		check_failures++;
	}
	o.base_dir = NULL;
	if (parse_len(text, strlen(text), &o, &cfg, err) == 0) {
		CHECK_STR(cfg.auth.tokens_file, "sub/tokens.csv");
		CHECK_STR(cfg.connectors[0].password_file, "../pw");
		config_free(&cfg);
	} else {
		fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, err);
		check_failures++;
	}
}

static void test_files(const char *dir)
{
	struct config_parse_opts o = { .path_for_messages = "t.conf", .base_dir = dir,
				       .check_files = true };
	struct config cfg;
	char err[ERR_CAP], expected[ERR_CAP], text[ERR_CAP];
	char *big;

	check_write_file(dir, "tokens.csv", "tok,alice,1,\"g1,g2\"\n", 20);
	check_write_file(dir, "pw", "s3cret\n", 7);
	check_write_file(dir, "pw-crlf", "p;w d\r\n\r\n", 9);
	check_write_file(dir, "pw-empty", "\n", 1);
	check_write_file(dir, "pw-nul", "a\0b", 3);
	check_write_file(dir, "ca.pem", "-----BEGIN CERTIFICATE-----\n", 28);
	big = x_calloc(1, CONFIG_MAX_PASSWORD_FILE_BYTES + 1);
	memset(big, 'x', CONFIG_MAX_PASSWORD_FILE_BYTES + 1);
	check_write_file(dir, "pw-big", big, CONFIG_MAX_PASSWORD_FILE_BYTES + 1);
	check_write_file(dir, "pw-max", big, CONFIG_MAX_PASSWORD_FILE_BYTES);
	free(big);

	snprintf(text, sizeof(text), "%s",
		 AUTH "[connector \"a/b\"]\naddress = https://h\npassword_file = pw\nca_file = ca.pem\n"
		      "[connector \"a/c\"]\naddress = https://h\npassword_file = pw-crlf\n"
		      "[connector \"a/d\"]\naddress = https://h\npassword_file = pw-max\n");
	if (parse_len(text, strlen(text), &o, &cfg, err) == 0) {
		snprintf(expected, sizeof(expected), "%s/tokens.csv", dir);
		CHECK_STR(cfg.auth.tokens_file, expected);
		CHECK_STR(cfg.connectors[0].password, "s3cret");
		snprintf(expected, sizeof(expected), "%s/pw", dir);
		CHECK_STR(cfg.connectors[0].password_file, expected);
		snprintf(expected, sizeof(expected), "%s/ca.pem", dir);
		CHECK_STR(cfg.connectors[0].ca_file, expected);
		CHECK_STR(cfg.connectors[1].password, "p;w d");
		CHECK_INT(strlen(cfg.connectors[2].password), CONFIG_MAX_PASSWORD_FILE_BYTES);
		config_free(&cfg);
	} else {
		fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, err);
		check_failures++;
	}

	snprintf(expected, sizeof(expected),
		 "t.conf:2: tokens_file: cannot open %s/nope.csv: No such file or directory", dir);
	expect_error_len_at(__LINE__, "[auth]\ntokens_file = nope.csv\n", 30, &o, expected);
	snprintf(expected, sizeof(expected), "t.conf:2: tokens_file: %s/. is not a regular file", dir);
	expect_error_len_at(__LINE__, "[auth]\ntokens_file = .\n", 23, &o, expected);

#define CONNECTOR_FILE_ERROR(line_text, fmt)                                                  \
	do {                                                                                  \
		snprintf(text, sizeof(text), AUTH "[connector \"a/b\"]\naddress = https://h\n%s\n", \
			 line_text);                                                          \
		snprintf(expected, sizeof(expected), fmt, dir);                               \
		expect_error_len_at(__LINE__, text, strlen(text), &o, expected);              \
	} while (0)

	CONNECTOR_FILE_ERROR("password_file = missing",
			     "t.conf:5: password_file: cannot open %s/missing: No such file or directory");
	CONNECTOR_FILE_ERROR("password_file = pw-empty", "t.conf:5: password_file: %s/pw-empty is empty or holds a NUL byte");
	CONNECTOR_FILE_ERROR("password_file = pw-nul", "t.conf:5: password_file: %s/pw-nul is empty or holds a NUL byte");
	CONNECTOR_FILE_ERROR("password_file = pw-big", "t.conf:5: password_file: %s/pw-big is larger than 65536 bytes");
	CONNECTOR_FILE_ERROR("password_file = .", "t.conf:5: password_file: %s/. is not a regular file");
	CONNECTOR_FILE_ERROR("ca_file = missing.pem",
			     "t.conf:5: ca_file: cannot open %s/missing.pem: No such file or directory");
#undef CONNECTOR_FILE_ERROR

	/* config_parse checks files. */
	snprintf(text, sizeof(text), "[auth]\ntokens_file = %s/nope\n", dir);
	if (config_parse(text, strlen(text), "x.conf", NULL, &cfg, err, sizeof(err)) == 0) {
		fprintf(stderr, "%s:%d: config_parse did not check tokens_file\n", __FILE__, __LINE__);
		check_failures++;
		config_free(&cfg);
	}
	CHECK(strncmp(err, "x.conf:2: tokens_file: cannot open ", 35) == 0);

	check_remove_file(dir, "tokens.csv");
	check_remove_file(dir, "pw");
	check_remove_file(dir, "pw-crlf");
	check_remove_file(dir, "pw-empty");
	check_remove_file(dir, "pw-nul");
	check_remove_file(dir, "pw-big");
	check_remove_file(dir, "pw-max");
	check_remove_file(dir, "ca.pem");
}

static void test_load(const char *dir)
{
	struct config cfg;
	char err[ERR_CAP], path[PATH_CAP], expected[ERR_CAP], cwd[PATH_CAP];
	const char *text = "[auth]\ntokens_file = tokens.csv\n[log]\nlevel = debug\n";
	char *big;

	check_write_file(dir, "tokens.csv", "t,u,1\n", 6);
	check_write_file(dir, "ocigate.conf", text, strlen(text));
	snprintf(path, sizeof(path), "%s/ocigate.conf", dir);
	if (config_load(path, &cfg, err, sizeof(err)) == 0) {
		CHECK_STR(cfg.path, path);
		snprintf(expected, sizeof(expected), "%s/tokens.csv", dir);
		CHECK_STR(cfg.auth.tokens_file, expected);
		CHECK_INT(cfg.log.level, CONFIG_LOG_DEBUG);
		config_free(&cfg);
	} else {
		fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, err);
		check_failures++;
	}

	/* A relative config path: its directory is made absolute. */
	if (!getcwd(cwd, sizeof(cwd)) || chdir(dir) != 0 || chdir("..") != 0) {
		fprintf(stderr, "%s:%d: chdir: %s\n", __FILE__, __LINE__, strerror(errno));
		exit(2);
	}
	{
		char rel[PATH_CAP], here[PATH_CAP];
		const char *base = strrchr(dir, '/') + 1;
		snprintf(rel, sizeof(rel), "%s/ocigate.conf", base);
		if (!getcwd(here, sizeof(here)))
			exit(2);
		if (config_load(rel, &cfg, err, sizeof(err)) == 0) {
			snprintf(expected, sizeof(expected), "%s/%s/tokens.csv", here, base);
			CHECK_STR(cfg.auth.tokens_file, expected);
			config_free(&cfg);
		} else {
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, err);
			check_failures++;
		}
		if (chdir(dir) != 0)
			exit(2);
		if (config_load("ocigate.conf", &cfg, err, sizeof(err)) == 0) {
			snprintf(expected, sizeof(expected), "%s/%s/tokens.csv", here, base);
			CHECK_STR(cfg.auth.tokens_file, expected);
			config_free(&cfg);
		} else {
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, err);
			check_failures++;
		}
	}
	if (chdir(cwd) != 0)
		exit(2);

	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	memset(&cfg, 0xa5, sizeof(cfg));
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), -1);
	snprintf(expected, sizeof(expected), "%s: No such file or directory", path);
	CHECK_STR(err, expected);
	CHECK(is_zeroed(&cfg));

	CHECK_INT(config_load(dir, &cfg, err, sizeof(err)), -1);
	snprintf(expected, sizeof(expected), "%s: Is a directory", dir);
	CHECK_STR(err, expected);

	big = x_malloc(CONFIG_MAX_FILE_BYTES + 1);
	memset(big, '\n', CONFIG_MAX_FILE_BYTES + 1);
	check_write_file(dir, "big.conf", big, CONFIG_MAX_FILE_BYTES + 1);
	free(big);
	snprintf(path, sizeof(path), "%s/big.conf", dir);
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), -1);
	snprintf(expected, sizeof(expected), "%s: file is larger than 1048576 bytes", path);
	CHECK_STR(err, expected);

	snprintf(path, sizeof(path), "%s/ocigate.conf", dir);
	check_write_file(dir, "ocigate.conf", "[auth]\ntokens_file = gone.csv\n", 30);
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), -1);
	snprintf(expected, sizeof(expected),
		 "%s:2: tokens_file: cannot open %s/gone.csv: No such file or directory", path, dir);
	CHECK_STR(err, expected);

	check_remove_file(dir, "big.conf");
	check_remove_file(dir, "ocigate.conf");
	check_remove_file(dir, "tokens.csv");
}

/* ---- reload and help ---- */

static void test_reload(void)
{
	struct config a, b;

	if (!PARSE_OK("[server]\nlisten = :5000\nheader_timeout = 5s\n" AUTH
		      "[connector \"a/b\"]\naddress = https://h\n",
		      &a))
		return;
	if (PARSE_OK("[server]\nlisten = :5000\nheader_timeout = 9s\n[auth]\ntokens_file = other\n",
		     &b)) {
		CHECK(config_unreloadable_change(&a, &b) == NULL);
		config_free(&b);
	}
	if (PARSE_OK("[server]\nlisten = :5001\n" AUTH, &b)) {
		CHECK(config_unreloadable_change(&a, &b) == config_find_option("server", "listen"));
		config_free(&b);
	}
	if (PARSE_OK("[server]\nlisten = :5000\nmax_connections = 5\n" AUTH, &b)) {
		CHECK(config_unreloadable_change(&a, &b) ==
		      config_find_option("server", "max_connections"));
		config_free(&b);
	}
	if (PARSE_OK("[server]\nlisten = :5000\npublic_address = p:1\n" AUTH, &b)) {
		CHECK(config_unreloadable_change(&a, &b) ==
		      config_find_option("server", "public_address"));
		config_free(&b);
	}
	if (PARSE_OK("[server]\nlisten = :5000\nshutdown_timeout = 0\n" AUTH, &b)) {
		CHECK(config_unreloadable_change(&a, &b) ==
		      config_find_option("server", "shutdown_timeout"));
		config_free(&b);
	}
	CHECK(config_unreloadable_change(&a, &a) == NULL);
	config_free(&a);
}

/* ---- Kubernetes mode ---- */

static void test_kubernetes(void)
{
	struct config cfg;

	/* Leader election: the holder must give up before anyone may take
	 * over, and retry before it gives up. */
	EXPECT_ERROR("[kubernetes]\nlease_duration = 10s\n",
		     "t.conf:1: renew_deadline must be shorter than lease_duration");
	EXPECT_ERROR("[kubernetes]\nrenew_deadline = 3s\nretry_period = 3s\n",
		     "t.conf:3: retry_period must be shorter than renew_deadline");
	if (PARSE_OK("[kubernetes]\nleader_election = no\nlease_duration = 10s\n", &cfg)) {
		CHECK(!cfg.kubernetes.leader_election);
		config_free(&cfg);
	}
	if (PARSE_OK("[kubernetes]\nlease_namespace = kube-system\nlease_name = x\n"
		     "lease_duration = 4s\nrenew_deadline = 3s\nretry_period = 500ms\n", &cfg)) {
		CHECK_STR(cfg.kubernetes.lease_namespace, "kube-system");
		CHECK_STR(cfg.kubernetes.lease_name, "x");
		CHECK_INT(cfg.kubernetes.retry_period_ms, 500);
		config_free(&cfg);
	}

	/* Standalone: the section's fields keep their defaults, mode off. */
	if (PARSE_OK(AUTH, &cfg)) {
		CHECK(!cfg.kubernetes.enabled);
		CHECK(cfg.kubernetes.kubeconfig == NULL);
		CHECK_INT(cfg.kubernetes.token_cache_ttl_ms, 120000);
		config_free(&cfg);
	}
	/* The bare section: in-cluster, every default; no tokens_file needed. */
	if (PARSE_OK("[kubernetes]\n", &cfg)) {
		CHECK(cfg.kubernetes.enabled);
		CHECK(cfg.kubernetes.kubeconfig == NULL);
		CHECK_STR(cfg.kubernetes.context, "");
		CHECK_INT(cfg.kubernetes.audiences.n, 0);
		CHECK_INT(cfg.kubernetes.namespaces.n, 0);
		CHECK(!cfg.kubernetes.strict_subresource);
		CHECK_INT(cfg.kubernetes.token_cache_ttl_ms, 120000);
		CHECK_INT(cfg.kubernetes.token_cache_negative_ttl_ms, 10000);
		CHECK_INT(cfg.kubernetes.sar_allowed_ttl_ms, 300000);
		CHECK_INT(cfg.kubernetes.sar_denied_ttl_ms, 30000);
		CHECK_INT(cfg.kubernetes.cache_size, 10000);
		CHECK_INT(cfg.kubernetes.api_timeout_ms, 10000);
		CHECK(cfg.kubernetes.leader_election);
		CHECK_STR(cfg.kubernetes.lease_namespace, "");
		CHECK_STR(cfg.kubernetes.lease_name, "ocigate");
		CHECK_INT(cfg.kubernetes.lease_duration_ms, 15000);
		CHECK_INT(cfg.kubernetes.renew_deadline_ms, 10000);
		CHECK_INT(cfg.kubernetes.retry_period_ms, 2000);
		CHECK(cfg.auth.tokens_file == NULL);
		CHECK_STR(cfg.auth.realm, "ocigate");
		CHECK_INT(cfg.n_connectors, 0);
		config_free(&cfg);
	}
	if (PARSE_OK("[auth]\nrealm = r\n[kubernetes]\nkubeconfig = kc/config\ncontext = kind\n"
		     "audiences = ocigate  https://kubernetes.default.svc\nnamespaces = a b c\n"
		     "strict_subresource = yes\ntoken_cache_ttl = 0\ntoken_cache_negative_ttl = 1s\n"
		     "sar_allowed_ttl = 1m\nsar_denied_ttl = 2s\ncache_size = 5\napi_timeout = 500ms\n",
		     &cfg)) {
		CHECK(cfg.kubernetes.enabled);
		CHECK_STR(cfg.kubernetes.kubeconfig, "/etc/ocigate/kc/config");
		CHECK_STR(cfg.kubernetes.context, "kind");
		CHECK_INT(cfg.kubernetes.audiences.n, 2);
		if (cfg.kubernetes.audiences.n == 2)
			CHECK_STR(cfg.kubernetes.audiences.items[1], "https://kubernetes.default.svc");
		CHECK_INT(cfg.kubernetes.namespaces.n, 3);
		CHECK(cfg.kubernetes.strict_subresource);
		CHECK_INT(cfg.kubernetes.token_cache_ttl_ms, 0);
		CHECK_INT(cfg.kubernetes.token_cache_negative_ttl_ms, 1000);
		CHECK_INT(cfg.kubernetes.sar_allowed_ttl_ms, 60000);
		CHECK_INT(cfg.kubernetes.sar_denied_ttl_ms, 2000);
		CHECK_INT(cfg.kubernetes.cache_size, 5);
		CHECK_INT(cfg.kubernetes.api_timeout_ms, 500);
		config_free(&cfg);
	}
	/* What standalone mode configures is refused, naming its line, whether
	 * [kubernetes] comes before or after it. */
	EXPECT_ERROR("[kubernetes]\n" AUTH,
		     "t.conf:3: tokens_file is not used in Kubernetes mode (section [kubernetes] on line 1): client tokens are checked with TokenReview");
	EXPECT_ERROR("[server]\n" AUTH "[log]\n[kubernetes]\n",
		     "t.conf:3: tokens_file is not used in Kubernetes mode (section [kubernetes] on line 5): client tokens are checked with TokenReview");
	EXPECT_ERROR("[kubernetes]\n[connector \"a/b\"]\naddress = https://h\n",
		     "t.conf:2: [connector \"a/b\"] is not allowed in Kubernetes mode (section [kubernetes] on line 1): connectors come from Connector objects");
	EXPECT_ERROR("[connector \"a/b\"]\naddress = https://h\n" AUTH "[kubernetes]\n",
		     "t.conf:1: [connector \"a/b\"] is not allowed in Kubernetes mode (section [kubernetes] on line 5): connectors come from Connector objects");
	EXPECT_ERROR("[kubernetes]\nkubeconfig =\n", "t.conf:2: kubeconfig: expected a file path");
	EXPECT_ERROR("[kubernetes]\ncache_size = 0\n",
		     "t.conf:2: cache_size: must be between 1 and 10000000");
	EXPECT_ERROR("[kubernetes]\napi_timeout = 50ms\n",
		     "t.conf:2: api_timeout: must be between 100ms and 10m");
	EXPECT_ERROR("[kubernetes]\nstrict_subresource = maybe\n",
		     "t.conf:2: strict_subresource: expected yes/no, true/false, on/off or 1/0");
	EXPECT_ERROR("[kubernetes]\ntokens_file = t\n",
		     "t.conf:2: unknown key 'tokens_file' in section [kubernetes]");
	/* Standalone mode still requires tokens_file. */
	EXPECT_ERROR("[auth]\nrealm = r\n[log]\n",
		     "t.conf:1: missing required option 'tokens_file' in section [auth]");
}

static void test_kubernetes_files(const char *dir)
{
	struct config cfg;
	char err[ERR_CAP];
	char expect[ERR_CAP];
	struct config_parse_opts files = { .path_for_messages = "t.conf", .base_dir = dir,
					   .check_files = true };
	const char *text = "[kubernetes]\nkubeconfig = no-such-kubeconfig\n";

	/* With file checks, the kubeconfig must be readable. */
	if (parse_len(text, strlen(text), &files, &cfg, err) == 0) {
		CHECK(!"a missing kubeconfig was accepted");
		config_free(&cfg);
		return;
	}
	snprintf(expect, sizeof(expect),
		 "t.conf:2: kubeconfig: cannot open %s/no-such-kubeconfig: No such file or directory",
		 dir);
	CHECK_STR(err, expect);
}

static void test_kubernetes_reload(void)
{
	struct config a, b;

	if (!PARSE_OK("[kubernetes]\n", &a))
		return;
	if (PARSE_OK("[kubernetes]\nsar_denied_ttl = 1s\n", &b)) {
		CHECK(config_unreloadable_change(&a, &b) ==
		      config_find_option("kubernetes", "sar_denied_ttl"));
		config_free(&b);
	}
	if (PARSE_OK("[kubernetes]\n[log]\nlevel = debug\n", &b)) {
		CHECK(config_unreloadable_change(&a, &b) == NULL);
		config_free(&b);
	}
	config_free(&a);
}

static bool contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle))
		return true;
	fprintf(stderr, "option help lacks \"%s\"\n", needle);
	return false;
}

static void test_print_options(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		CHECK(f != NULL);
		return;
	}
	config_print_options(f);
	fclose(f);
	CHECK(contains(buf, "[server]\n  listen (address, default \"127.0.0.1:5000\", restart needed)\n"
			    "      where runtimes connect (plain HTTP); empty = no plain listener (needs [tls] listen)\n"));
	CHECK(contains(buf, "  max_header_bytes (size 1k..1m, default \"16k\", reloadable)\n"));
	CHECK(contains(buf, "  header_timeout (duration 1ms..24h, default \"10s\", reloadable)\n"));
	CHECK(contains(buf, "  shutdown_timeout (duration 0..24h, default \"30s\", restart needed)\n"));
	CHECK(contains(buf, "  max_connections (uint 1..1000000, default \"10000\", restart needed)\n"));
	CHECK(contains(buf, "[auth]\n  tokens_file (path, required, reloadable)\n"));
	CHECK(contains(buf, "  level (enum debug|info|warn|error, default \"info\", reloadable)\n"));
	CHECK(contains(buf, "[connector \"NAMESPACE/NAME\"] (repeatable)\n  address (url, required, reloadable)\n"));
	CHECK(contains(buf, "  allow (list, default \"\", reloadable)\n"));
	CHECK(contains(buf, "[kubernetes]\n  kubeconfig (path, default \"\", restart needed)\n"));
	CHECK(contains(buf, "  sar_denied_ttl (duration 0..24h, default \"30s\", restart needed)\n"));
	free(buf);
}

int main(void)
{
	char dir[] = "/tmp/test_config.XXXXXX";

	if (!mkdtemp(dir)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return 2;
	}
	test_defaults();
	test_table();
	test_duration();
	test_size();
	test_cache();
	test_uint();
	test_bool_enum();
	test_address();
	test_listeners();
	test_url();
	test_list();
	test_quoting_and_comments();
	test_errors();
	test_connector_names();
	test_connectors();
	test_paths();
	test_files(dir);
	test_load(dir);
	test_reload();
	test_kubernetes();
	test_kubernetes_files(dir);
	test_kubernetes_reload();
	test_print_options();
	rmdir(dir);
	CHECK_DONE();
}
