#include "util/config.h"

#include "util/ascii.h"
#include "util/config_priv.h"
#include "util/ini.h"
#include "util/names.h"
#include "util/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const section_names[] = { "server", "upstream", "auth", "log", "connector",
					     "kubernetes", "webhook", "status", "pull_secrets", "tls",
					     "cache" };
#define N_SECTIONS OG_ARRAY_LEN(section_names)
#define SECTION_CONNECTOR 4
#define SECTION_KUBERNETES 5
#define SECTION_WEBHOOK 6

/* What a type parser produces before it replaces the field's old value. */
union config_value {
	char *s;
	struct config_address addr;
	unsigned u;
	size_t size;
	uint64_t ms;
	bool b;
	struct config_list list;
	struct url_base url;
	int e;
};

struct parser {
	const struct config_parse_opts *opts;
	struct config *cfg;
	char *err;
	size_t err_cap;
	unsigned line;
	int section; /* index in section_names, -1 before the first header */
	unsigned section_line[N_SECTIONS];
	unsigned set_line[CONFIG_N_OPTIONS]; /* 0 = not set in the current section */
	size_t conn_cap;
	bool defaults; /* parsing the table's own defaults */
};

/* ---- errors ---- */

static void vfail_at(struct parser *p, unsigned line, const char *fmt, va_list ap)
{
	const char *path = p->opts->path_for_messages ? p->opts->path_for_messages : "config";
	char msg[512];

	if (!p->err || !p->err_cap)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line)
		snprintf(p->err, p->err_cap, "%s:%u: %s", path, line, msg);
	else
		snprintf(p->err, p->err_cap, "%s: %s", path, msg);
}

static int fail_at(struct parser *p, unsigned line, const char *fmt, ...) OG_PRINTF(3, 4);
static int fail_at(struct parser *p, unsigned line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(p, line, fmt, ap);
	va_end(ap);
	return -1;
}

static int fail(struct parser *p, const char *fmt, ...) OG_PRINTF(2, 3);
static int fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(p, p->line, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- numbers ---- */

enum num_scan { NUM_OK, NUM_NONE, NUM_OVERFLOW };

static enum num_scan scan_u64(const char **s, uint64_t *out)
{
	const char *c = *s;
	uint64_t n = 0;

	if (!ascii_is_digit(*c))
		return NUM_NONE;
	for (; ascii_is_digit(*c); c++) {
		unsigned d = (unsigned)(*c - '0');
		if (n > (UINT64_MAX - d) / 10)
			return NUM_OVERFLOW;
		n = n * 10 + d;
	}
	*s = c;
	*out = n;
	return NUM_OK;
}

static bool mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b && a > UINT64_MAX / b)
		return false;
	*out = a * b;
	return true;
}

/* Shortest exact rendering with the largest unit, as a user would write it. */
/* ---- type parsers: each reads a NUL-terminated value into *v ---- */

static int parse_path(struct parser *p, const struct config_option *opt, const char *s,
		      char **out)
{
	const char *dir = p->opts->base_dir;
	size_t dn;

	if (!*s) {
		/* An empty default means "not set"; in the file it is a mistake. */
		if (p->defaults)
			return 0;
		return fail(p, "%s: expected a file path", opt->name);
	}
	if (s[0] == '/' || !dir || !*dir) {
		*out = x_strdup(s);
		return 0;
	}
	dn = strlen(dir);
	if (dir[dn - 1] == '/')
		dn--;
	*out = x_malloc(dn + 1 + strlen(s) + 1);
	memcpy(*out, dir, dn);
	(*out)[dn] = '/';
	strcpy(*out + dn + 1, s);
	return 0;
}

static int parse_address(struct parser *p, const struct config_option *opt, const char *s,
			 struct config_address *out)
{
	const char *host, *port;
	size_t hn;

	if (!*s) { /* that listener is off; check_listeners says where that is allowed */
		memset(out, 0, sizeof(*out));
		return 0;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			goto malformed;
		host = s + 1;
		hn = (size_t)(close - host);
		port = close + 2;
		if (!names_ipv6(og_str_make(host, hn)))
			return fail(p, "%s: '%.*s' is not an IPv6 address", opt->name, (int)hn,
				    host);
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon)
			goto malformed;
		host = s;
		hn = (size_t)(colon - s);
		port = colon + 1;
		if (memchr(host, ':', hn))
			return fail(p, "%s: an IPv6 address needs brackets, like [::1]:5000",
				    opt->name);
		if (hn && !names_host(og_str_make(host, hn)))
			return fail(p, "%s: '%.*s' is not an IP address or host name", opt->name,
				    (int)hn, host);
	}
	if (names_port(og_str_make(port, strlen(port)), 0, &out->port) != 0)
		return fail(p, "%s: port must be a number from 0 to 65535", opt->name);
	out->host = x_strndup(host, hn);
	return 0;
malformed:
	return fail(p, "%s: expected an address like 127.0.0.1:5000, [::1]:5000 or :5000",
		    opt->name);
}

static int fail_range(struct parser *p, const struct config_option *opt)
{
	char lo[32], hi[32];

	config_format_bound(opt, opt->min, lo, sizeof(lo));
	config_format_bound(opt, opt->max, hi, sizeof(hi));
	if (opt->min == 0)
		return fail(p, "%s: must be at most %s", opt->name, hi);
	return fail(p, "%s: must be between %s and %s", opt->name, lo, hi);
}

static int parse_uint(struct parser *p, const struct config_option *opt, const char *s,
		      unsigned *out)
{
	uint64_t n = 0;
	enum num_scan r = scan_u64(&s, &n);

	if (r == NUM_NONE || (r == NUM_OK && *s))
		return fail(p, "%s: expected a whole number from %llu to %llu", opt->name,
			    (unsigned long long)opt->min, (unsigned long long)opt->max);
	if (r == NUM_OVERFLOW || n < opt->min || n > opt->max)
		return fail_range(p, opt);
	*out = (unsigned)n;
	return 0;
}

static bool size_unit(const char *suffix, uint64_t *unit)
{
	static const struct {
		const char *suffix;
		uint64_t unit;
	} units[] = { { "", 1 },     { "k", KIB }, { "K", KIB }, { "m", MIB },
		      { "M", MIB },  { "g", GIB }, { "G", GIB } };

	for (size_t i = 0; i < OG_ARRAY_LEN(units); i++) {
		if (strcmp(suffix, units[i].suffix) == 0) {
			*unit = units[i].unit;
			return true;
		}
	}
	return false;
}

static bool duration_unit(const char *suffix, uint64_t *unit)
{
	static const struct {
		const char *suffix;
		uint64_t unit;
	} units[] = { { "", MS_SECOND },  { "ms", 1 },	      { "s", MS_SECOND },
		      { "m", MS_MINUTE }, { "h", MS_HOUR } };

	for (size_t i = 0; i < OG_ARRAY_LEN(units); i++) {
		if (strcmp(suffix, units[i].suffix) == 0) {
			*unit = units[i].unit;
			return true;
		}
	}
	return false;
}

/* Sizes and durations: a number, a unit suffix, then the row's range. */
static int parse_scaled(struct parser *p, const struct config_option *opt, const char *s,
			uint64_t *out)
{
	uint64_t n = 0, unit = 1;
	enum num_scan r = scan_u64(&s, &n);
	bool unit_ok = opt->type == CFG_SIZE ? size_unit(s, &unit) : duration_unit(s, &unit);

	if (r == NUM_NONE || (r == NUM_OK && !unit_ok)) {
		if (opt->type == CFG_SIZE)
			return fail(p, "%s: expected a size like 65536, 64k, 1m (k, m, g = 1024, 1024^2, 1024^3)",
				    opt->name);
		return fail(p, "%s: expected a duration like 10s, 500ms, 2m", opt->name);
	}
	if (r == NUM_OVERFLOW || !mul_u64(n, unit, &n) || n < opt->min || n > opt->max)
		return fail_range(p, opt);
	*out = n;
	return 0;
}

static int parse_bool(struct parser *p, const struct config_option *opt, const char *s,
		      bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < OG_ARRAY_LEN(yes); i++) {
		if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
			*out = strcmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return fail(p, "%s: expected yes/no, true/false, on/off or 1/0", opt->name);
}

static int parse_enum(struct parser *p, const struct config_option *opt, const char *s, int *out)
{
	char words[256] = "";
	size_t used = 0;

	for (int i = 0; opt->enum_words[i]; i++) {
		if (strcmp(s, opt->enum_words[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	for (int i = 0; opt->enum_words[i] && used < sizeof(words); i++)
		used += (size_t)snprintf(words + used, sizeof(words) - used, "%s%s",
					 i ? ", " : "", opt->enum_words[i]);
	return fail(p, "%s: expected one of %s", opt->name, words);
}

static void parse_list(const char *s, struct config_list *out)
{
	size_t cap = 0;

	for (;;) {
		size_t n = 0;
		while (ascii_is_blank(*s))
			s++;
		if (!*s)
			return;
		while (s[n] && !ascii_is_blank(s[n]))
			n++;
		if (out->n == cap) {
			cap = cap ? cap * 2 : 4;
			out->items = x_realloc(out->items, cap * sizeof(*out->items));
		}
		out->items[out->n++] = x_strndup(s, n);
		s += n;
	}
}

static int parse_url(struct parser *p, const struct config_option *opt, const char *s,
		     struct url_base *out)
{
	char why[300];

	if (url_base_parse(out, s, strlen(s), why, sizeof(why)) != 0)
		return fail(p, "%s: %s", opt->name, why);
	return 0;
}

static int parse_value(struct parser *p, const struct config_option *opt, const char *s,
		       union config_value *v)
{
	memset(v, 0, sizeof(*v));
	switch (opt->type) {
	case CFG_STRING:
		v->s = x_strdup(s);
		return 0;
	case CFG_PATH:
		return parse_path(p, opt, s, &v->s);
	case CFG_ADDRESS:
		return parse_address(p, opt, s, &v->addr);
	case CFG_UINT:
		return parse_uint(p, opt, s, &v->u);
	case CFG_SIZE: {
		uint64_t n;
		if (parse_scaled(p, opt, s, &n) != 0)
			return -1;
		v->size = (size_t)n;
		return 0;
	}
	case CFG_DURATION:
		return parse_scaled(p, opt, s, &v->ms);
	case CFG_BOOL:
		return parse_bool(p, opt, s, &v->b);
	case CFG_LIST:
		parse_list(s, &v->list);
		return 0;
	case CFG_URL:
		if (parse_url(p, opt, s, &v->url) != 0) {
			free(v->url.host);
			return -1;
		}
		return 0;
	case CFG_ENUM:
		return parse_enum(p, opt, s, &v->e);
	}
	assert(!"option type without a parser");
	return -1;
}

/* ---- storing, freeing and comparing fields by type ---- */

/* Through volatile so that the stores survive a free() right after. */
static void wipe_bytes(void *p, size_t n)
{
	volatile unsigned char *c = p;

	while (n--)
		*c++ = 0;
}

static void wipe(char *s)
{
	if (s)
		wipe_bytes(s, strlen(s));
}

static void free_field(enum config_type type, void *field)
{
	switch (type) {
	case CFG_STRING:
	case CFG_PATH:
		free(*(char **)field);
		*(char **)field = NULL;
		break;
	case CFG_ADDRESS: {
		struct config_address *a = field;
		free(a->host);
		memset(a, 0, sizeof(*a));
		break;
	}
	case CFG_LIST: {
		struct config_list *l = field;
		for (size_t i = 0; i < l->n; i++)
			free(l->items[i]);
		free(l->items);
		memset(l, 0, sizeof(*l));
		break;
	}
	case CFG_URL: {
		struct url_base *u = field;
		free(u->host);
		free(u->path_prefix);
		free(u->text);
		memset(u, 0, sizeof(*u));
		break;
	}
	case CFG_UINT:
	case CFG_SIZE:
	case CFG_DURATION:
	case CFG_BOOL:
	case CFG_ENUM:
		break;
	}
}

static void store_field(enum config_type type, void *field, const union config_value *v)
{
	free_field(type, field);
	switch (type) {
	case CFG_STRING:
	case CFG_PATH:
		*(char **)field = v->s;
		break;
	case CFG_ADDRESS:
		*(struct config_address *)field = v->addr;
		break;
	case CFG_UINT:
		*(unsigned *)field = v->u;
		break;
	case CFG_SIZE:
		*(size_t *)field = v->size;
		break;
	case CFG_DURATION:
		*(uint64_t *)field = v->ms;
		break;
	case CFG_BOOL:
		*(bool *)field = v->b;
		break;
	case CFG_LIST:
		*(struct config_list *)field = v->list;
		break;
	case CFG_URL:
		*(struct url_base *)field = v->url;
		break;
	case CFG_ENUM:
		*(int *)field = v->e;
		break;
	}
}

static bool str_equal(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool field_equal(enum config_type type, const void *a, const void *b)
{
	switch (type) {
	case CFG_STRING:
	case CFG_PATH:
		return str_equal(*(char *const *)a, *(char *const *)b);
	case CFG_ADDRESS: {
		const struct config_address *x = a, *y = b;
		return x->port == y->port && str_equal(x->host, y->host);
	}
	case CFG_UINT:
		return *(const unsigned *)a == *(const unsigned *)b;
	case CFG_SIZE:
		return *(const size_t *)a == *(const size_t *)b;
	case CFG_DURATION:
		return *(const uint64_t *)a == *(const uint64_t *)b;
	case CFG_BOOL:
		return *(const bool *)a == *(const bool *)b;
	case CFG_LIST: {
		const struct config_list *x = a, *y = b;
		if (x->n != y->n)
			return false;
		for (size_t i = 0; i < x->n; i++)
			if (strcmp(x->items[i], y->items[i]) != 0)
				return false;
		return true;
	}
	case CFG_URL: {
		const struct url_base *x = a, *y = b;
		return x->https == y->https && x->port == y->port &&
		       str_equal(x->host, y->host) && str_equal(x->path_prefix, y->path_prefix);
	}
	case CFG_ENUM:
		return *(const int *)a == *(const int *)b;
	}
	return false;
}

static void connector_free(struct config_connector *c)
{
	wipe(c->password);
	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++)
		if (config_table[i].in_connector)
			free_field(config_table[i].type, (char *)c + config_table[i].offset);
	free(c->ns);
	free(c->name);
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++)
		if (!config_table[i].in_connector)
			free_field(config_table[i].type, (char *)cfg + config_table[i].offset);
	for (size_t i = 0; i < cfg->n_connectors; i++)
		connector_free(&cfg->connectors[i]);
	free(cfg->connectors);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- files named by the configuration ---- */

static int open_regular(struct parser *p, const struct config_option *opt, const char *path,
			struct stat *st)
{
	/* O_NONBLOCK: a FIFO planted where a file should be must not hang us. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return fail(p, "%s: cannot open %s: %s", opt->name, path, strerror(errno));
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return fail(p, "%s: %s is not a regular file", opt->name, path);
	}
	return fd;
}

static int check_readable(struct parser *p, const struct config_option *opt, const char *path)
{
	struct stat st;
	int fd = open_regular(p, opt, path, &st);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* Reads up to max + 1 bytes into buf (which has room for them), so that a
 * result above max means "too large"; -1 on a read error. */
static ssize_t read_at_most(int fd, char *buf, size_t max)
{
	size_t got = 0;

	while (got <= max) {
		ssize_t r = read(fd, buf + got, max + 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static int read_password_file(struct parser *p, const struct config_option *opt,
			      struct config_connector *c)
{
	struct stat st;
	char *buf = x_malloc(CONFIG_MAX_PASSWORD_FILE_BYTES + 1);
	ssize_t n;
	int rc = -1;
	int fd = open_regular(p, opt, c->password_file, &st);

	if (fd < 0)
		goto out;
	n = read_at_most(fd, buf, CONFIG_MAX_PASSWORD_FILE_BYTES);
	if (n < 0) {
		fail(p, "%s: cannot read %s: %s", opt->name, c->password_file, strerror(errno));
		goto out;
	}
	if (n > CONFIG_MAX_PASSWORD_FILE_BYTES) {
		fail(p, "%s: %s is larger than %d bytes", opt->name, c->password_file,
		     CONFIG_MAX_PASSWORD_FILE_BYTES);
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0 || memchr(buf, '\0', (size_t)n)) {
		fail(p, "%s: %s is empty or holds a NUL byte", opt->name, c->password_file);
		goto out;
	}
	buf[n] = '\0';
	wipe(c->password);
	free(c->password);
	c->password = x_strdup(buf);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	wipe_bytes(buf, CONFIG_MAX_PASSWORD_FILE_BYTES + 1);
	free(buf);
	return rc;
}

/* ---- sections ---- */

static struct config_connector *current_connector(struct parser *p)
{
	assert(p->section == SECTION_CONNECTOR && p->cfg->n_connectors > 0);
	return &p->cfg->connectors[p->cfg->n_connectors - 1];
}

static bool in_section(const struct config_option *opt, int section)
{
	if (section == SECTION_CONNECTOR)
		return opt->in_connector;
	return !opt->in_connector && strcmp(opt->section, section_names[section]) == 0;
}

static void section_label(struct parser *p, char *buf, size_t cap)
{
	if (p->section == SECTION_CONNECTOR) {
		const struct config_connector *c = current_connector(p);
		snprintf(buf, cap, "connector \"%s/%s\"", c->ns, c->name);
	} else {
		snprintf(buf, cap, "%s", section_names[p->section]);
	}
}

static unsigned section_start(struct parser *p)
{
	if (p->section == SECTION_CONNECTOR)
		return current_connector(p)->line;
	return p->section_line[p->section];
}

static void apply_defaults(struct parser *p, bool in_connector, char *base)
{
	p->defaults = true;
	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++) {
		const struct config_option *opt = &config_table[i];
		union config_value v;
		int rc;

		if (opt->in_connector != in_connector || !opt->default_value)
			continue;
		rc = parse_value(p, opt, opt->default_value, &v);
		assert(rc == 0 && "a default in the option table does not parse");
		(void)rc;
		store_field(opt->type, base + opt->offset, &v);
	}
	p->defaults = false;
}

/* Required in standalone mode, refused in Kubernetes mode: which mode a
 * file is in is only known at its end ([kubernetes] may come last). */
static bool is_standalone_only(const struct config_option *opt)
{
	return !opt->in_connector && strcmp(opt->section, "auth") == 0 &&
	       strcmp(opt->name, "tokens_file") == 0;
}

static int end_section(struct parser *p)
{
	char label[512];

	if (p->section < 0)
		return 0;
	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++) {
		if (!in_section(&config_table[i], p->section) || config_table[i].default_value ||
		    p->set_line[i] || is_standalone_only(&config_table[i]))
			continue;
		section_label(p, label, sizeof(label));
		return fail_at(p, section_start(p), "missing required option '%s' in section [%s]",
			       config_table[i].name, label);
	}
	return 0;
}

static int begin_global_section(struct parser *p, int section)
{
	if (p->section_line[section])
		return fail(p, "duplicate section [%s] (first on line %u)", section_names[section],
			    p->section_line[section]);
	p->section_line[section] = p->line;
	p->section = section;
	if (section == SECTION_KUBERNETES)
		p->cfg->kubernetes.enabled = true;
	if (section == SECTION_WEBHOOK)
		p->cfg->webhook.enabled = true;
	return 0;
}

static int begin_connector(struct parser *p, const char *arg)
{
	struct config *cfg = p->cfg;
	struct config_connector *c;
	const char *slash = strchr(arg, '/');
	size_t nsn;

	if (!slash)
		return fail(p, "connector \"%s\": expected \"NAMESPACE/NAME\"", arg);
	nsn = (size_t)(slash - arg);
	if (!names_dns1123_label(og_str_make(arg, nsn)))
		return fail(p, "connector namespace '%.*s' is not a DNS-1123 label (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)",
			    (int)nsn, arg);
	if (!names_dns1123_subdomain(og_str_make(slash + 1, strlen(slash + 1))))
		return fail(p, "connector name '%s' is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253, starting and ending with a letter or digit)",
			    slash + 1);
	for (size_t i = 0; i < cfg->n_connectors; i++) {
		c = &cfg->connectors[i];
		if (strlen(c->ns) == nsn && memcmp(c->ns, arg, nsn) == 0 &&
		    strcmp(c->name, slash + 1) == 0)
			return fail(p, "duplicate connector \"%s\" (first defined on line %u)", arg,
				    c->line);
	}
	if (cfg->n_connectors == p->conn_cap) {
		p->conn_cap = p->conn_cap ? p->conn_cap * 2 : 4;
		cfg->connectors = x_realloc(cfg->connectors, p->conn_cap * sizeof(*c));
	}
	c = &cfg->connectors[cfg->n_connectors++];
	memset(c, 0, sizeof(*c));
	c->ns = x_strndup(arg, nsn);
	c->name = x_strdup(slash + 1);
	c->line = p->line;
	p->section = SECTION_CONNECTOR;
	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++)
		if (config_table[i].in_connector)
			p->set_line[i] = 0;
	apply_defaults(p, true, (char *)c);
	return 0;
}

static int find_section(const char *name)
{
	for (size_t i = 0; i < N_SECTIONS; i++)
		if (strcmp(section_names[i], name) == 0)
			return (int)i;
	return -1;
}

/* ---- ini callbacks ---- */

static int on_section(void *ctx, unsigned line, const char *name, const char *arg)
{
	struct parser *p = ctx;
	int section = find_section(name);

	p->line = line;
	if (section < 0)
		return fail(p, "unknown section [%s]", name);
	if (section == SECTION_CONNECTOR && !arg)
		return fail(p, "section [connector] needs a name: [connector \"NAMESPACE/NAME\"]");
	if (section != SECTION_CONNECTOR && arg)
		return fail(p, "section [%s] takes no name", name);
	if (end_section(p) != 0)
		return -1;
	if (section == SECTION_CONNECTOR)
		return begin_connector(p, arg);
	return begin_global_section(p, section);
}

static const struct config_option *find_in_section(int section, const char *key, size_t n)
{
	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++)
		if (in_section(&config_table[i], section) && strlen(config_table[i].name) == n &&
		    memcmp(config_table[i].name, key, n) == 0)
			return &config_table[i];
	return NULL;
}

static int check_exclusive(struct parser *p, const struct config_option *opt)
{
	static const char *const pair[2] = { "password", "password_file" };

	for (int k = 0; k < 2; k++) {
		const struct config_option *other;
		if (!opt->in_connector || strcmp(opt->name, pair[k]) != 0)
			continue;
		other = config_find_option("connector", pair[1 - k]);
		if (p->set_line[other - config_table])
			return fail(p, "password and password_file are mutually exclusive (%s set on line %u)",
				    other->name, p->set_line[other - config_table]);
	}
	return 0;
}

static int check_files(struct parser *p, const struct config_option *opt, char *base)
{
	/* The cache directory is created at start, not read here. */
	if (!p->opts->check_files || opt->type != CFG_PATH ||
	    (!opt->in_connector && opt->offset == offsetof(struct config, cache.dir)))
		return 0;
	if (opt->in_connector && opt->offset == offsetof(struct config_connector, password_file))
		return read_password_file(p, opt, (struct config_connector *)base);
	return check_readable(p, opt, *(char **)(base + opt->offset));
}

static int set_option(struct parser *p, const char *key, size_t kn, const char *value)
{
	const struct config_option *opt = find_in_section(p->section, key, kn);
	char label[512];
	char *base;
	union config_value v;
	size_t row;

	section_label(p, label, sizeof(label));
	if (!opt)
		return fail(p, "unknown key '%.*s' in section [%s]", (int)kn, key, label);
	row = (size_t)(opt - config_table);
	if (p->set_line[row])
		return fail(p, "duplicate key '%s' in section [%s] (first set on line %u)",
			    opt->name, label, p->set_line[row]);
	if (check_exclusive(p, opt) != 0 || parse_value(p, opt, value, &v) != 0)
		return -1;
	base = opt->in_connector ? (char *)current_connector(p) : (char *)p->cfg;
	store_field(opt->type, base + opt->offset, &v);
	p->set_line[row] = p->line;
	return check_files(p, opt, base);
}

static int on_pair(void *ctx, unsigned line, const char *key, size_t kn, const char *value)
{
	struct parser *p = ctx;

	p->line = line;
	return set_option(p, key, kn, value);
}

static void on_lex_error(void *ctx, unsigned line, const char *msg)
{
	struct parser *p = ctx;

	p->line = line;
	fail(p, "%s", msg);
}

static int parse_lines(struct parser *p, const char *text, size_t len)
{
	const struct ini_reader r = {
		.max_line = CONFIG_MAX_LINE_BYTES,
		.header_syntax = "[section] or [connector \"NAMESPACE/NAME\"]",
		.section = on_section,
		.pair = on_pair,
		.error = on_lex_error,
		.ctx = p,
	};

	if (ini_parse(&r, text, len, &p->line) != 0)
		return -1;
	return end_section(p);
}

/* Required config_table of sections that never appeared; the file's last line is
 * the best place to point at. */
static int check_missing_sections(struct parser *p)
{
	unsigned last = p->line ? p->line : 1;

	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++) {
		const struct config_option *opt = &config_table[i];
		int sec = find_section(opt->section);
		if (opt->in_connector || opt->default_value || p->set_line[i])
			continue;
		if (is_standalone_only(opt) && p->cfg->kubernetes.enabled)
			continue;
		/* A section that is there but lacks the option is to blame. */
		return fail_at(p, sec >= 0 && p->section_line[sec] ? p->section_line[sec] : last,
			       "missing required option '%s' in section [%s]", opt->name,
			       opt->section);
	}
	return 0;
}

/* Kubernetes mode: what standalone mode configures in the file comes from
 * the API server instead, so a leftover is a mistake worth stopping for.
 * The earliest offending line is named. */
static int check_kubernetes_mode(struct parser *p)
{
	const struct config_option *tf = config_find_option("auth", "tokens_file");
	unsigned tf_line = p->set_line[tf - config_table];
	unsigned k8s_line = p->section_line[SECTION_KUBERNETES];
	const struct config_connector *c = p->cfg->n_connectors ? &p->cfg->connectors[0] : NULL;

	if (!p->cfg->kubernetes.enabled)
		return 0;
	if (tf_line && (!c || tf_line < c->line))
		return fail_at(p, tf_line,
			       "tokens_file is not used in Kubernetes mode (section [kubernetes] on line %u): client tokens are checked with TokenReview",
			       k8s_line);
	if (c)
		return fail_at(p, c->line,
			       "[connector \"%s/%s\"] is not allowed in Kubernetes mode (section [kubernetes] on line %u): connectors come from Connector objects",
			       c->ns, c->name, k8s_line);
	return 0;
}

/* Pull Secrets are written through the API server: standalone mode has none. */
static int check_pull_secrets(struct parser *p)
{
	const struct config_option *en = config_find_option("pull_secrets", "enabled");

	if (!p->cfg->pull_secrets.enabled || p->cfg->kubernetes.enabled)
		return 0;
	return fail_at(p, p->set_line[en - config_table],
		       "[pull_secrets] enabled = yes needs Kubernetes mode (a [kubernetes] section)");
}

/* client-go's rule: the holder must give up (renew_deadline) before anyone
 * may take over (lease_duration), and retry at least once before that. */
static int check_lease(struct parser *p)
{
	const struct config_option *rd = config_find_option("kubernetes", "renew_deadline");
	const struct config_option *rp = config_find_option("kubernetes", "retry_period");
	const struct config_option *ld = config_find_option("kubernetes", "lease_duration");
	unsigned line = p->set_line[rd - config_table] ? p->set_line[rd - config_table]
						  : p->section_line[SECTION_KUBERNETES];
	const struct config *c = p->cfg;

	if (!c->kubernetes.enabled || !c->kubernetes.leader_election)
		return 0;
	if (c->kubernetes.renew_deadline_ms >= c->kubernetes.lease_duration_ms)
		return fail_at(p, line, "%s must be shorter than %s", rd->name, ld->name);
	if (c->kubernetes.retry_period_ms >= c->kubernetes.renew_deadline_ms)
		return fail_at(p, p->set_line[rp - config_table] ? p->set_line[rp - config_table] : line,
			       "%s must be shorter than %s", rp->name, rd->name);
	return 0;
}

/* A webhook without its certificate could only fail every API server call. */
static int check_webhook(struct parser *p)
{
	const struct config_option *cert = config_find_option("webhook", "cert_file");
	const struct config_option *key = config_find_option("webhook", "key_file");

	if (!p->cfg->webhook.enabled)
		return 0;
	if (!*p->cfg->webhook.cert_file || !*p->cfg->webhook.key_file)
		return fail_at(p, p->section_line[SECTION_WEBHOOK],
			       "section [webhook] needs %s (the webhook serves HTTPS only)",
			       !*p->cfg->webhook.cert_file ? cert->name : key->name);
	return 0;
}

/* min_free is a share of the file system ("5%") or a size ("5g"). */
static int check_cache(struct parser *p)
{
	const struct config_option *opt = config_find_option("cache", "min_free");
	const struct config_option *max = config_find_option("cache", "max_size");
	struct config *cfg = p->cfg;
	const char *s = cfg->cache.min_free;
	size_t n = strlen(s);
	uint64_t v = 0;

	cfg->cache.min_free_percent = 0;
	cfg->cache.min_free_bytes = 0;
	p->line = p->set_line[opt - config_table];
	if (n > 1 && s[n - 1] == '%') {
		const char *c = s;
		if (scan_u64(&c, &v) != NUM_OK || c != s + n - 1 || v > 99)
			return fail(p, "%s: expected a percentage from 0%% to 99%% or a size like 5g",
				    opt->name);
		cfg->cache.min_free_percent = (unsigned)v;
		return 0;
	}
	struct config_option as_size = *max;
	as_size.name = opt->name;
	as_size.min = 0;
	if (parse_scaled(p, &as_size, s, &v) != 0)
		return -1;
	cfg->cache.min_free_bytes = v;
	return 0;
}

/* An empty address turns a listener off: the client side needs one
 * listener, the webhook and a [tls] listener need theirs. */
static int check_listeners(struct parser *p)
{
	const struct config *cfg = p->cfg;
	bool no_cert = !cfg->tls.cert_file || !*cfg->tls.cert_file;
	bool no_key = !cfg->tls.key_file || !*cfg->tls.key_file;

	if (!config_address_set(&cfg->server.listen) && !config_address_set(&cfg->tls.listen))
		return fail_at(p, 0, "[server] listen may only be empty when [tls] listen is set");
	if (cfg->webhook.enabled && !config_address_set(&cfg->webhook.listen))
		return fail_at(p, p->section_line[SECTION_WEBHOOK], "[webhook] listen must not be empty");
	if (config_address_set(&cfg->tls.listen) && (no_cert || no_key))
		return fail_at(p, 0, "[tls] listen needs %s", no_cert ? "cert_file" : "key_file");
	return 0;
}

/* listen's text: what public_address means when it is not given. */
static char *format_address(const struct config_address *a)
{
	bool v6 = strchr(a->host, ':') != NULL;
	size_t n = strlen(a->host) + sizeof("[]:65535");
	char *s = x_malloc(n);

	snprintf(s, n, "%s%s%s:%u", v6 ? "[" : "", a->host, v6 ? "]" : "", (unsigned)a->port);
	return s;
}

int config_parse_ex(const char *text, size_t len, const struct config_parse_opts *opts,
		    struct config *out, char *err, size_t err_cap)
{
	struct parser p = { .opts = opts, .cfg = out, .err = err, .err_cap = err_cap,
			    .section = -1 };
	int rc = -1;

	assert(opts);
	memset(out, 0, sizeof(*out));
	if (err && err_cap)
		err[0] = '\0';
	if (len > CONFIG_MAX_FILE_BYTES) {
		fail(&p, "file is larger than %d bytes", CONFIG_MAX_FILE_BYTES);
		goto out;
	}
	/* Editors on some systems start UTF-8 files with a byte order mark. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		text += 3;
		len -= 3;
	}
	if (opts->path_for_messages)
		out->path = x_strdup(opts->path_for_messages);
	apply_defaults(&p, false, (char *)out);
	if (parse_lines(&p, text, len) != 0 || check_missing_sections(&p) != 0 ||
	    check_kubernetes_mode(&p) != 0 || check_webhook(&p) != 0 ||
	    check_pull_secrets(&p) != 0 || check_listeners(&p) != 0 ||
	    check_lease(&p) != 0 || check_cache(&p) != 0)
		goto out;
	if (!*out->server.public_address) {
		free(out->server.public_address);
		out->server.public_address = format_address(config_address_set(&out->server.listen) ?
							    &out->server.listen : &out->tls.listen);
	}
	rc = 0;
out:
	if (rc != 0)
		config_free(out);
	return rc;
}

int config_parse(const char *text, size_t len, const char *path_for_messages,
		 const char *base_dir, struct config *out, char *err, size_t err_cap)
{
	struct config_parse_opts opts = {
		.path_for_messages = path_for_messages,
		.base_dir = base_dir,
		.check_files = true,
	};

	return config_parse_ex(text, len, &opts, out, err, err_cap);
}

/* The directory of path, made absolute so that resolved paths survive a
 * chdir. */
static char *absolute_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char cwd[4096];
	char *dir;
	size_t n;

	if (slash == path)
		return x_strdup("/");
	if (slash && path[0] == '/')
		return x_strndup(path, (size_t)(slash - path));
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (!slash)
		return x_strdup(cwd);
	n = strlen(cwd) + 1 + (size_t)(slash - path) + 1;
	dir = x_malloc(n);
	snprintf(dir, n, "%s/%.*s", cwd, (int)(slash - path), path);
	return dir;
}

static void load_fail(char *err, size_t err_cap, const char *path, const char *what)
{
	if (err && err_cap)
		snprintf(err, err_cap, "%s: %s", path, what);
}

int config_load(const char *path, struct config *out, char *err, size_t err_cap)
{
	struct config_parse_opts opts = { .path_for_messages = path, .check_files = true };
	char *text = x_malloc(CONFIG_MAX_FILE_BYTES + 1);
	char *dir = NULL;
	ssize_t n;
	int fd, rc = -1;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		load_fail(err, err_cap, path, strerror(errno));
		goto out;
	}
	n = read_at_most(fd, text, CONFIG_MAX_FILE_BYTES);
	if (n < 0)
		load_fail(err, err_cap, path, strerror(errno));
	close(fd);
	if (n < 0)
		goto out;
	dir = absolute_dir_of(path);
	if (!dir) {
		load_fail(err, err_cap, path, "cannot find the current directory");
		goto out;
	}
	opts.base_dir = dir;
	rc = config_parse_ex(text, (size_t)n, &opts, out, err, err_cap);
out:
	free(dir);
	free(text);
	return rc;
}

/* ---- lookups, reload, help ---- */

const struct config_connector *config_find_connector(const struct config *cfg, const char *ns,
						     const char *name)
{
	for (size_t i = 0; i < cfg->n_connectors; i++)
		if (strcmp(cfg->connectors[i].ns, ns) == 0 &&
		    strcmp(cfg->connectors[i].name, name) == 0)
			return &cfg->connectors[i];
	return NULL;
}

const struct config_option *config_unreloadable_change(const struct config *old_cfg,
							const struct config *new_cfg)
{
	for (size_t i = 0; i < CONFIG_N_OPTIONS; i++) {
		const struct config_option *opt = &config_table[i];
		/* Every connector option is reloadable, so only globals matter. */
		assert(!opt->in_connector || opt->reloadable);
		if (opt->reloadable || opt->in_connector)
			continue;
		if (!field_equal(opt->type, (const char *)old_cfg + opt->offset,
				 (const char *)new_cfg + opt->offset))
			return opt;
	}
	return NULL;
}
