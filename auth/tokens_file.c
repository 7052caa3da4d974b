#include "auth/tokens_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/credentials.h"
#include "util/ascii.h"
#include "util/xalloc.h"

#define TOKENS_FILE_MAX_BYTES (64u << 20)
#define TOKENS_FILE_MAX_COLUMNS 4

/* One parsed record, with the line it came from for duplicate reports. */
struct tokens_item {
	struct token_entry e;
	size_t line;
};

struct tokens_parser {
	size_t line;
	char *err;
	size_t err_cap;
	struct tokens_item *items;
	size_t n, cap;
};

/* A CSV line split into fields; only the first TOKENS_FILE_MAX_COLUMNS are
 * kept, but all are counted. */
struct tokens_fields {
	char *f[TOKENS_FILE_MAX_COLUMNS];
	size_t len[TOKENS_FILE_MAX_COLUMNS];
	size_t n;
};

static void OG_PRINTF(2, 3) tokens_errorf(struct tokens_parser *tp,
					  const char *fmt, ...)
{
	va_list ap;
	int k;

	if (!tp->err || tp->err_cap == 0)
		return;
	k = snprintf(tp->err, tp->err_cap, "line %zu: ", tp->line);
	if (k < 0 || (size_t)k >= tp->err_cap)
		return;
	va_start(ap, fmt);
	vsnprintf(tp->err + k, tp->err_cap - (size_t)k, fmt, ap);
	va_end(ap);
}

/* Fields may hold a token, so they are wiped before they are freed. */
static void tokens_fields_free(struct tokens_fields *fs)
{
	for (size_t i = 0; i < OG_MIN(fs->n, OG_ARRAY_LEN(fs->f)); i++) {
		OPENSSL_cleanse(fs->f[i], fs->len[i]);
		free(fs->f[i]);
		fs->f[i] = NULL;
	}
	fs->n = 0;
}

/* Reads one field starting at line[*pos] into a fresh NUL-terminated buffer,
 * undoing CSV quoting, and leaves *pos on the ',' or at the end. */
static int tokens_read_field(struct tokens_parser *tp, struct og_str line,
			     size_t *pos, char **outp, size_t *outn)
{
	size_t i = *pos, o = 0;
	bool quoted = i < line.n && line.p[i] == '"';
	char *buf = x_malloc(line.n - i + 1);

	if (quoted)
		i++;
	for (;; i++) {
		if (i == line.n) {
			if (quoted) {
				tokens_errorf(tp, "unterminated quoted field");
				goto fail;
			}
			break;
		}
		char c = line.p[i];
		if (!quoted && c == ',')
			break;
		if (ascii_is_ctl(c)) {
			tokens_errorf(tp, "control character in a field");
			goto fail;
		}
		if (c == '"' && !quoted) {
			tokens_errorf(tp, "'\"' inside an unquoted field");
			goto fail;
		}
		if (c == '"' && i + 1 < line.n && line.p[i + 1] == '"') {
			buf[o++] = '"';
			i++;
			continue;
		}
		if (c == '"') {
			i++;
			if (i < line.n && line.p[i] != ',') {
				tokens_errorf(tp, "unexpected character after "
						  "a closing quote");
				goto fail;
			}
			break;
		}
		buf[o++] = c;
	}
	buf[o] = '\0';
	*pos = i;
	*outp = buf;
	*outn = o;
	return 0;
fail:
	OPENSSL_cleanse(buf, o);
	free(buf);
	return -1;
}

static int tokens_split_line(struct tokens_parser *tp, struct og_str line,
			     struct tokens_fields *fs)
{
	size_t pos = 0;

	for (;;) {
		char *f;
		size_t n;
		if (tokens_read_field(tp, line, &pos, &f, &n) < 0)
			return -1;
		if (fs->n < OG_ARRAY_LEN(fs->f)) {
			fs->f[fs->n] = f;
			fs->len[fs->n] = n;
		} else {
			OPENSSL_cleanse(f, n);
			free(f);
		}
		fs->n++;
		if (pos == line.n)
			return 0;
		pos++; /* the ',' */
	}
}

/* The 4th column: comma-separated group names; empty means none. */
static int tokens_split_groups(struct tokens_parser *tp, const char *s,
			       size_t n, struct token_entry *e)
{
	size_t start = 0;

	if (n == 0)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != ',')
			continue;
		if (i == start) {
			tokens_errorf(tp, "empty group name in column 4");
			return -1;
		}
		e->groups = x_realloc(e->groups, (e->n_groups + 1) * sizeof(char *));
		e->groups[e->n_groups++] = x_strndup(s + start, i - start);
		start = i + 1;
	}
	return 0;
}

static void tokens_entry_free(struct token_entry *e)
{
	free(e->user);
	free(e->uid);
	for (size_t i = 0; i < e->n_groups; i++)
		free(e->groups[i]);
	free(e->groups);
	memset(e, 0, sizeof(*e));
}

static int tokens_make_entry(struct tokens_parser *tp, struct tokens_fields *fs,
			     struct token_entry *e)
{
	if (fs->n < 3) {
		tokens_errorf(tp, "expected at least 3 columns (token, user "
				  "name, uid), found %zu", fs->n);
		return -1;
	}
	if (fs->len[0] == 0) {
		tokens_errorf(tp, "empty token");
		return -1;
	}
	if (fs->len[1] == 0) {
		tokens_errorf(tp, "empty user name");
		return -1;
	}
	if (cred_token_sha256(og_str_make(fs->f[0], fs->len[0]), e->token_sha256) < 0) {
		tokens_errorf(tp, "cannot compute SHA-256");
		return -1;
	}
	e->user = x_strndup(fs->f[1], fs->len[1]);
	e->uid = x_strndup(fs->f[2], fs->len[2]);
	if (fs->n > 3 && tokens_split_groups(tp, fs->f[3], fs->len[3], e) < 0)
		return -1;
	return 0;
}

static bool tokens_line_is_skipped(struct og_str line)
{
	for (size_t i = 0; i < line.n; i++) {
		if (line.p[i] == ' ' || line.p[i] == '\t')
			continue;
		return line.p[i] == '#';
	}
	return true;
}

static int tokens_parse_line(struct tokens_parser *tp, struct og_str line)
{
	struct tokens_fields fs = { 0 };
	struct token_entry e = { 0 };
	int ret = -1;

	if (line.n > 0 && line.p[line.n - 1] == '\r')
		line.n--;
	if (tokens_line_is_skipped(line))
		return 0;
	if (tokens_split_line(tp, line, &fs) < 0)
		goto out;
	if (tokens_make_entry(tp, &fs, &e) < 0)
		goto out;
	if (tp->n == tp->cap) {
		tp->cap = tp->cap ? tp->cap * 2 : 16;
		tp->items = x_realloc(tp->items, tp->cap * sizeof(*tp->items));
	}
	tp->items[tp->n].e = e;
	tp->items[tp->n].line = tp->line;
	tp->n++;
	memset(&e, 0, sizeof(e));
	ret = 0;
out:
	tokens_entry_free(&e);
	tokens_fields_free(&fs);
	return ret;
}

static int tokens_item_cmp(const void *a, const void *b)
{
	const struct tokens_item *x = a, *y = b;
	int c = memcmp(x->e.token_sha256, y->e.token_sha256, 32);

	if (c)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Sorts by hash (what lookups need) and reports a token given twice. */
static int tokens_sort_and_check(struct tokens_parser *tp)
{
	if (tp->n > 1)
		qsort(tp->items, tp->n, sizeof(*tp->items), tokens_item_cmp);
	for (size_t i = 1; i < tp->n; i++) {
		if (memcmp(tp->items[i - 1].e.token_sha256,
			   tp->items[i].e.token_sha256, 32) != 0)
			continue;
		tp->line = tp->items[i].line;
		tokens_errorf(tp, "duplicate token (same token as line %zu)",
			      tp->items[i - 1].line);
		return -1;
	}
	return 0;
}

int tokens_file_parse(const char *data, size_t len, struct tokens_file *out,
		      char *err, size_t err_cap)
{
	struct tokens_parser tp = { .err = err, .err_cap = err_cap };
	size_t start = 0;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (err && err_cap)
		err[0] = '\0';
	while (start < len) {
		const char *nl = memchr(data + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - data) : len;
		tp.line++;
		if (tokens_parse_line(&tp, og_str_make(data + start, end - start)) < 0)
			goto out;
		start = end + 1;
	}
	if (tokens_sort_and_check(&tp) < 0)
		goto out;

	out->entries = x_calloc(tp.n, sizeof(*out->entries));
	for (size_t i = 0; i < tp.n; i++)
		out->entries[i] = tp.items[i].e;
	out->n = tp.n;
	tp.n = 0;
	ret = 0;
out:
	for (size_t i = 0; i < tp.n; i++)
		tokens_entry_free(&tp.items[i].e);
	free(tp.items);
	return ret;
}

/* Reads a whole regular file; the buffer is wiped by the caller. */
static int tokens_read_all(const char *path, char **datap, size_t *lenp,
			   char *err, size_t err_cap)
{
	FILE *f = fopen(path, "rb");
	size_t len = 0, cap = 4096;
	char *data = NULL;
	int ret = -1;

	if (!f) {
		snprintf(err, err_cap, "%s: %s", path, strerror(errno));
		return -1;
	}
	data = x_malloc(cap);
	for (;;) {
		size_t got = fread(data + len, 1, cap - len, f);
		len += got;
		if (len < cap)
			break;
		if (cap >= TOKENS_FILE_MAX_BYTES) {
			snprintf(err, err_cap, "%s: larger than %u bytes", path,
				 TOKENS_FILE_MAX_BYTES);
			goto out;
		}
		data = x_realloc(data, cap * 2);
		cap *= 2;
	}
	if (ferror(f)) {
		snprintf(err, err_cap, "%s: read error", path);
		goto out;
	}
	*datap = data;
	*lenp = len;
	data = NULL;
	ret = 0;
out:
	if (data) {
		OPENSSL_cleanse(data, len);
		free(data);
	}
	fclose(f);
	return ret;
}

int tokens_file_load(const char *path, struct tokens_file *out, char *err,
		     size_t err_cap)
{
	char *data = NULL;
	size_t len = 0;
	char msg[256];
	int ret;

	memset(out, 0, sizeof(*out));
	if (tokens_read_all(path, &data, &len, err, err_cap) < 0)
		return -1;
	ret = tokens_file_parse(data, len, out, msg, sizeof(msg));
	if (ret < 0)
		snprintf(err, err_cap, "%s: %s", path, msg);
	OPENSSL_cleanse(data, len);
	free(data);
	return ret;
}

void tokens_file_free(struct tokens_file *tf)
{
	for (size_t i = 0; i < tf->n; i++)
		tokens_entry_free(&tf->entries[i]);
	free(tf->entries);
	tf->entries = NULL;
	tf->n = 0;
}

/* A lower-bound search: the ordering compares hashes only, and the final
 * equality test is constant-time, so nothing depends on the token itself. */
const struct token_entry *tokens_file_find(const struct tokens_file *tf,
					   const unsigned char sha256[32])
{
	size_t lo = 0, hi = tf->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(tf->entries[mid].token_sha256, sha256, 32) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < tf->n && CRYPTO_memcmp(tf->entries[lo].token_sha256, sha256, 32) == 0)
		return &tf->entries[lo];
	return NULL;
}
