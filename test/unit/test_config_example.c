/* Cross-checks packaging/ocigate.conf.example (argv[1]) against the option
 * table, so that the documentation cannot drift from the code:
 *  1. every option of the table appears under its section, once, as
 *     "key =" or "; key =";
 *  2. every "key =" or "; key =" line is an option of its section;
 *  3. a commented "; key = value" shows the table's default;
 *  4. the file parses as it is (with and without file checks). */
#include "util/config.h"

#include "test/unit/check.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LINES 2048

struct example_line {
	unsigned line;
	char section[32]; /* "connector" for any [connector "..."] */
	char key[64];
	char value[512]; /* lexed: comment stripped, trimmed, unquoted */
	bool commented;
};

struct example {
	const char *path;
	char *text;
	size_t len;
	struct example_line *lines;
	size_t n;
};

static const char *skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* The value as the config parser sees it, in the simple forms an example
 * uses: trimmed, inline comment removed, one level of quotes removed. */
static void lex_value(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	s = skip_blanks(s);
	if (*s == '"') {
		for (s++; *s && *s != '"' && n + 1 < cap; s++) {
			if (*s == '\\' && s[1])
				s++;
			out[n++] = *s;
		}
		out[n] = '\0';
		return;
	}
	for (size_t i = 0; s[i] && n + 1 < cap; i++) {
		if ((s[i] == ';' || s[i] == '#') && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t'))
			break;
		out[n++] = s[i];
	}
	while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
		n--;
	out[n] = '\0';
}

/* "[server]" -> "server", "[connector \"a/b\"]" -> "connector". */
static void header_section(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	for (s++; *s && *s != ']' && *s != ' ' && *s != '"' && n + 1 < cap; s++)
		out[n++] = *s;
	out[n] = '\0';
}

/* Fills l from an option line ("key =" or "; key ="); false for any other. */
static bool option_line(const char *s, struct example_line *l)
{
	size_t n = 0;

	s = skip_blanks(s);
	l->commented = *s == ';';
	if (l->commented)
		s = skip_blanks(s + 1);
	while ((*s >= 'a' && *s <= 'z') || *s == '_') {
		if (n + 1 < sizeof(l->key))
			l->key[n++] = *s;
		s++;
	}
	l->key[n] = '\0';
	s = skip_blanks(s);
	if (!n || *s != '=')
		return false;
	lex_value(s + 1, l->value, sizeof(l->value));
	return true;
}

/* "[x]", or "; [x]": the example shows [kubernetes] commented out, since
 * that section switches modes and the example is in standalone mode. */
static const char *header_start(const char *s)
{
	s = skip_blanks(s);
	if (*s == ';' && *skip_blanks(s + 1) == '[')
		s = skip_blanks(s + 1);
	return s;
}

static bool is_header(const char *s)
{
	return *header_start(s) == '[';
}

static void scan_example(struct example *ex)
{
	char section[32] = "";
	unsigned line = 0;
	char *copy = x_strdup(ex->text);
	char *next;

	ex->lines = x_calloc(MAX_LINES, sizeof(*ex->lines));
	for (char *s = copy; s; s = next) {
		struct example_line *l = &ex->lines[ex->n];
		next = strchr(s, '\n');
		if (next)
			*next++ = '\0';
		line++;
		if (is_header(s)) {
			header_section(header_start(s), section, sizeof(section));
			continue;
		}
		if (ex->n == MAX_LINES || !option_line(s, l))
			continue;
		l->line = line;
		snprintf(l->section, sizeof(l->section), "%s", section);
		ex->n++;
	}
	free(copy);
}

static void fail(const char *fmt, ...) OG_PRINTF(1, 2);
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	check_failures++;
}

/* 1: every option of the table is shown once under its section. */
static void check_all_options_shown(const struct example *ex)
{
	size_t n;
	const struct config_option *opts = config_options(&n);

	for (size_t i = 0; i < n; i++) {
		unsigned seen = 0, first = 0;
		for (size_t k = 0; k < ex->n; k++) {
			const struct example_line *l = &ex->lines[k];
			if (strcmp(l->section, opts[i].section) != 0 || strcmp(l->key, opts[i].name) != 0)
				continue;
			if (seen++)
				fail("%s:%u: option [%s] %s shown again (first on line %u)", ex->path,
				     l->line, opts[i].section, opts[i].name, first);
			else
				first = l->line;
		}
		if (!seen)
			fail("%s: option [%s] %s is missing from the example (want '%s =' or '; %s =')",
			     ex->path, opts[i].section, opts[i].name, opts[i].name, opts[i].name);
	}
}

/* 2 and 3: every shown key is an option; commented ones show the default. */
static void check_shown_keys(const struct example *ex)
{
	for (size_t k = 0; k < ex->n; k++) {
		const struct example_line *l = &ex->lines[k];
		const struct config_option *opt = config_find_option(l->section, l->key);
		if (!*l->section) {
			fail("%s:%u: '%s =' is outside of any section", ex->path, l->line, l->key);
			continue;
		}
		if (!opt) {
			fail("%s:%u: '%s' is not an option of section [%s]", ex->path, l->line,
			     l->key, l->section);
			continue;
		}
		if (l->commented && opt->default_value && strcmp(l->value, opt->default_value) != 0)
			fail("%s:%u: '; %s = %s' shows \"%s\" but the default is \"%s\"", ex->path,
			     l->line, l->key, l->value, l->value, opt->default_value);
	}
}

static void parse_example(const struct example *ex, const char *base_dir, bool check_files)
{
	struct config_parse_opts opts = {
		.path_for_messages = ex->path,
		.base_dir = base_dir,
		.check_files = check_files,
	};
	struct config cfg;
	char err[1024];

	if (config_parse_ex(ex->text, ex->len, &opts, &cfg, err, sizeof(err)) != 0) {
		fail("the example does not parse (file checks %s): %s", check_files ? "on" : "off",
		     err);
		return;
	}
	/* What the example promises in its comments. */
	CHECK_INT(cfg.n_connectors, 1);
	if (cfg.n_connectors == 1) {
		const struct config_connector *c = config_find_connector(&cfg, "team-a", "harbor");
		CHECK(c != NULL);
		if (c) {
			CHECK(strcmp(c->address.host, "harbor.example.com") == 0);
			CHECK(strcmp(c->username, "robot$demo") == 0);
			CHECK_INT(c->allow.n, 2);
			CHECK(c->ca_file == NULL);
			if (check_files)
				CHECK(strcmp(c->password, "example-password") == 0);
		}
	}
	config_free(&cfg);
}

/* 4: as shipped, and standalone next to the files it names. */
static void check_parses(const struct example *ex)
{
	char dir[] = "/tmp/test_config_example.XXXXXX";
	static const char tokens[] = "token1,alice,uid-1,\"team-a\"\n";
	static const char password[] = "example-password\n";

	parse_example(ex, NULL, false);
	if (!mkdtemp(dir)) {
		fail("mkdtemp: %s", strerror(errno));
		return;
	}
	check_write_file(dir, "tokens.csv", tokens, sizeof(tokens) - 1);
	check_write_file(dir, "harbor.password", password, sizeof(password) - 1);
	parse_example(ex, dir, true);
	check_remove_file(dir, "tokens.csv");
	check_remove_file(dir, "harbor.password");
	rmdir(dir);
}

int main(int argc, char **argv)
{
	struct example ex = { 0 };

	if (argc != 2) {
		fprintf(stderr, "usage: %s packaging/ocigate.conf.example\n", argv[0]);
		return 2;
	}
	ex.path = argv[1];
	ex.text = check_read_file(NULL, ex.path, &ex.len);
	scan_example(&ex);
	if (ex.n == 0)
		fail("%s: no option lines found", ex.path);
	check_all_options_shown(&ex);
	check_shown_keys(&ex);
	check_parses(&ex);
	free(ex.lines);
	free(ex.text);
	CHECK_DONE();
}
