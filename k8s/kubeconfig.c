#include "k8s/kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/base64.h"
#include "util/json.h"
#include "util/xalloc.h"

/* Nesting of YAML blocks; kubeconfigs use five or six levels. */
#define KC_MAX_DEPTH 64
/* Keys of a mapping and entries of a named list: duplicates are looked
 * for by linear search, so the count is bounded. */
#define KC_MAX_ENTRIES 4096
/* JSON values in a JSON kubeconfig. */
#define KC_MAX_JSON_TOKENS ((size_t)1 << 18)

/* Kubeconfigs hold tokens and private keys: wipe what held them. */
static void kc_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

static void kc_free_secret(char *s)
{
	if (s)
		kc_wipe(s, strlen(s));
	free(s);
}

/* ---- document tree ---- */

enum kc_type { KC_NULL, KC_SCALAR, KC_MAP, KC_SEQ };

struct kc_node {
	enum kc_type type;
	unsigned line;
	bool plain;            /* scalar written without quotes */
	char *str;             /* KC_SCALAR */
	size_t n, cap;         /* KC_MAP: members; KC_SEQ: items */
	char **keys;           /* KC_MAP */
	struct kc_node **vals; /* KC_MAP values, KC_SEQ items */
};

static struct kc_node *kc_node_new(enum kc_type type, unsigned line)
{
	struct kc_node *nd = x_new(struct kc_node);
	nd->type = type;
	nd->line = line;
	return nd;
}

static void kc_node_free(struct kc_node *nd)
{
	if (!nd)
		return;
	kc_free_secret(nd->str);
	for (size_t i = 0; i < nd->n; i++) {
		if (nd->keys)
			free(nd->keys[i]);
		kc_node_free(nd->vals[i]);
	}
	free(nd->keys);
	free(nd->vals);
	free(nd);
}

static void kc_node_add(struct kc_node *nd, char *key, struct kc_node *val)
{
	if (nd->n == nd->cap) {
		nd->cap = nd->cap ? nd->cap * 2 : 4;
		nd->vals = x_realloc(nd->vals, nd->cap * sizeof(*nd->vals));
		if (nd->type == KC_MAP)
			nd->keys = x_realloc(nd->keys, nd->cap * sizeof(*nd->keys));
	}
	if (nd->type == KC_MAP)
		nd->keys[nd->n] = key;
	nd->vals[nd->n++] = val;
}

static struct kc_node *kc_get(const struct kc_node *map, const char *key)
{
	if (!map || map->type != KC_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(map->keys[i], key) == 0)
			return map->vals[i];
	return NULL;
}

/* ---- YAML subset ---- */

struct kc_line {
	const char *p; /* after the indentation, trailing blanks removed */
	size_t n;
	size_t indent;
	unsigned no;
};

struct kc_yaml {
	struct kc_line *lines;
	size_t n, i;
	unsigned depth;
	const char *path;
	char *err;
	size_t cap;
	bool failed;
};

static void kc_yaml_fail(struct kc_yaml *y, unsigned line, const char *fmt, ...) OG_PRINTF(3, 4);

static void kc_yaml_fail(struct kc_yaml *y, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (y->failed)
		return;
	y->failed = true;
	if (!y->err || !y->cap)
		return;
	n = snprintf(y->err, y->cap, "kubeconfig %s:%u: ", y->path, line);
	if (n < 0 || (size_t)n >= y->cap)
		return;
	va_start(ap, fmt);
	vsnprintf(y->err + n, y->cap - (size_t)n, fmt, ap);
	va_end(ap);
}

static bool kc_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Checks one physical line and adds it unless it is blank or a comment. */
static int kc_add_line(struct kc_yaml *y, const char *p, size_t n, unsigned no, size_t *cap,
		       bool *seen)
{
	size_t ind = 0;

	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)p[k];
		if (c == '\r') {
			kc_yaml_fail(y, no, "carriage return inside a line");
			return -1;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			kc_yaml_fail(y, no, "control character 0x%02x", c);
			return -1;
		}
	}
	while (ind < n && p[ind] == ' ')
		ind++;
	while (n > ind && kc_blank(p[n - 1]))
		n--;
	if (ind == n || p[ind] == '#')
		return 0;
	if (p[ind] == '\t') {
		kc_yaml_fail(y, no, "tabs are not allowed in indentation");
		return -1;
	}
	if (ind == 0 && p[0] == '%') {
		kc_yaml_fail(y, no, "directives are not supported");
		return -1;
	}
	if (ind == 0 && n >= 3 && (memcmp(p, "---", 3) == 0 || memcmp(p, "...", 3) == 0) &&
	    (n == 3 || kc_blank(p[3]))) {
		if (p[0] == '-' && !*seen && n == 3)
			return 0; /* an explicit start of the only document */
		kc_yaml_fail(y, no, "only one document without markers after its start is supported");
		return -1;
	}
	if (y->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		y->lines = x_realloc(y->lines, *cap * sizeof(*y->lines));
	}
	y->lines[y->n++] = (struct kc_line){ p + ind, n - ind, ind, no };
	*seen = true;
	return 0;
}

static int kc_split_lines(struct kc_yaml *y, const char *text, size_t len)
{
	size_t pos = 0, cap = 0;
	unsigned no = 0;
	bool seen = false;

	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;

		no++;
		if (n && text[pos + n - 1] == '\r')
			n--;
		if (memchr(text + pos, '\0', n)) {
			kc_yaml_fail(y, no, "NUL byte");
			return -1;
		}
		if (kc_add_line(y, text + pos, n, no, &cap, &seen) != 0)
			return -1;
		pos = end + 1;
	}
	return 0;
}

/* \xXX, \uXXXX or \UXXXXXXXX at p (after the backslash and letter). */
static int kc_hex_escape(const char *p, size_t avail, size_t digits, uint32_t *cp)
{
	*cp = 0;
	if (avail < digits)
		return -1;
	for (size_t k = 0; k < digits; k++) {
		int h = og_hex_value(p[k]);
		if (h < 0)
			return -1;
		*cp = *cp << 4 | (uint32_t)h;
	}
	if (*cp == 0 || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return -1;
	return 0;
}

/* One YAML double-quoted escape at p[*i] (the backslash); appends its
 * UTF-8 to out. */
static int kc_dq_escape(const char *p, size_t n, size_t *i, char *out, size_t *o)
{
	static const char simple_in[] = "\\\"/ntrbfave";
	static const char simple_out[] = "\\\"/\n\t\r\b\f\a\v\x1b";
	const char *s;
	uint32_t cp;
	size_t digits;

	if (*i + 1 >= n)
		return -1;
	char c = p[*i + 1];
	*i += 2;
	if ((s = strchr(simple_in, c)) != NULL && c) {
		out[(*o)++] = simple_out[s - simple_in];
		return 0;
	}
	switch (c) {
	case ' ': out[(*o)++] = ' '; return 0;
	case '\t': out[(*o)++] = '\t'; return 0;
	case '_': cp = 0xa0; break;
	case 'N': cp = 0x85; break;
	case 'L': cp = 0x2028; break;
	case 'P': cp = 0x2029; break;
	case 'x': digits = 2; goto hex;
	case 'u': digits = 4; goto hex;
	case 'U': digits = 8; goto hex;
	default: return -1;
	}
	*o += og_utf8_encode(cp, out + *o);
	return 0;
hex:
	if (kc_hex_escape(p + *i, n - *i, digits, &cp) != 0)
		return -1;
	*i += digits;
	*o += og_utf8_encode(cp, out + *o);
	return 0;
}

/* A quoted scalar at p[0] on one line: its value and the bytes it used. */
static int kc_quoted(struct kc_yaml *y, const char *p, size_t n, unsigned no, char **out,
		     size_t *used)
{
	/* an escape of 2 characters may give 3 bytes (\L is U+2028) */
	char q = p[0], *buf = x_malloc(n * 2 + 1);
	size_t i = 1, o = 0;

	while (i < n) {
		if (p[i] == q) {
			if (q == '\'' && i + 1 < n && p[i + 1] == '\'') {
				buf[o++] = '\'';
				i += 2;
				continue;
			}
			buf[o] = '\0';
			*out = buf;
			*used = i + 1;
			return 0;
		}
		if (q == '"' && p[i] == '\\') {
			if (kc_dq_escape(p, n, &i, buf, &o) != 0) {
				kc_yaml_fail(y, no, "invalid escape in a double-quoted value");
				goto fail;
			}
			continue;
		}
		buf[o++] = p[i++];
	}
	kc_yaml_fail(y, no, "unterminated quoted value (multi-line values are not supported)");
fail:
	kc_wipe(buf, n * 2 + 1);
	free(buf);
	return -1;
}

/* Only a comment (after a blank) may follow a value on its line. */
static bool kc_rest_is_comment(const char *p, size_t n)
{
	size_t k = 0;
	while (k < n && kc_blank(p[k]))
		k++;
	return k == n || (k > 0 && p[k] == '#');
}

static int kc_plain_start(struct kc_yaml *y, const char *p, size_t n, unsigned no)
{
	char c = p[0], next = n > 1 ? p[1] : ' ';

	if (c == '&' || c == '*' || c == '!') {
		kc_yaml_fail(y, no, "anchors, aliases and tags are not supported");
		return -1;
	}
	if (c == '|' || c == '>') {
		kc_yaml_fail(y, no, "block scalars (| and >) are not supported");
		return -1;
	}
	if (c == '{' || c == '[') {
		kc_yaml_fail(y, no, "flow collections other than {} and [] are not supported");
		return -1;
	}
	if (strchr("]},%@`", c) || (strchr("-?:", c) && kc_blank(next))) {
		kc_yaml_fail(y, no, "a value cannot start with '%c' unless it is quoted", c);
		return -1;
	}
	return 0;
}

/* A plain scalar: up to a comment, with no ": " inside. */
static struct kc_node *kc_plain(struct kc_yaml *y, const char *p, size_t n, unsigned no)
{
	size_t end = n;
	struct kc_node *nd;

	if (kc_plain_start(y, p, n, no) != 0)
		return NULL;
	for (size_t k = 1; k < n; k++) {
		if (p[k] == '#' && kc_blank(p[k - 1])) {
			end = k;
			break;
		}
	}
	while (end && kc_blank(p[end - 1]))
		end--;
	for (size_t k = 0; k < end; k++) {
		if (p[k] == ':' && (k + 1 == end || kc_blank(p[k + 1]))) {
			kc_yaml_fail(y, no, "a value containing ': ' must be quoted");
			return NULL;
		}
	}
	nd = kc_node_new(KC_SCALAR, no);
	nd->plain = true;
	nd->str = x_strndup(p, end);
	return nd;
}

/* {} or [] and nothing else. */
static struct kc_node *kc_empty_flow(struct kc_yaml *y, const char *p, size_t n, unsigned no)
{
	char close = p[0] == '{' ? '}' : ']';
	size_t k = 1;

	while (k < n && kc_blank(p[k]))
		k++;
	if (k == n || p[k] != close || !kc_rest_is_comment(p + k + 1, n - k - 1)) {
		kc_yaml_fail(y, no, "flow collections other than {} and [] are not supported");
		return NULL;
	}
	return kc_node_new(p[0] == '{' ? KC_MAP : KC_SEQ, no);
}

/* The value after "key:" or "- " on the same line (n > 0). */
static struct kc_node *kc_inline_value(struct kc_yaml *y, const char *p, size_t n, unsigned no)
{
	struct kc_node *nd;
	size_t used;
	char *s;

	if (p[0] == '#')
		return kc_node_new(KC_NULL, no);
	if (p[0] == '{' || p[0] == '[')
		return kc_empty_flow(y, p, n, no);
	if (p[0] != '"' && p[0] != '\'')
		return kc_plain(y, p, n, no);
	if (kc_quoted(y, p, n, no, &s, &used) != 0)
		return NULL;
	if (!kc_rest_is_comment(p + used, n - used)) {
		kc_free_secret(s);
		kc_yaml_fail(y, no, "unexpected text after a quoted value");
		return NULL;
	}
	nd = kc_node_new(KC_SCALAR, no);
	nd->str = s;
	return nd;
}

static bool kc_is_dash(const struct kc_line *l)
{
	return l->p[0] == '-' && (l->n == 1 || kc_blank(l->p[1]));
}

/* When the line is "key: ..." (or "key:"), returns 1 with the key and the
 * offset of what follows the colon and its blanks; 0 when it is not a
 * mapping entry; -1 on error. */
static int kc_scan_key(struct kc_yaml *y, const struct kc_line *l, char **key, size_t *vpos)
{
	const char *p = l->p;
	size_t n = l->n, k;

	*key = NULL;
	if (p[0] == '?' && (n == 1 || kc_blank(p[1]))) {
		kc_yaml_fail(y, l->no, "complex or empty mapping keys are not supported");
		return -1;
	}
	if (p[0] == '"' || p[0] == '\'') {
		size_t used;
		if (kc_quoted(y, p, n, l->no, key, &used) != 0)
			return -1;
		k = used;
		while (k < n && kc_blank(p[k]))
			k++;
		if (k < n && p[k] == ':' && (k + 1 == n || kc_blank(p[k + 1]))) {
			k++;
			goto value;
		}
		free(*key);
		*key = NULL;
		return 0;
	}
	for (k = 0; k < n; k++) {
		if (p[k] == '#' && k > 0 && kc_blank(p[k - 1]))
			return 0;
		if (p[k] == ':' && (k + 1 == n || kc_blank(p[k + 1])))
			break;
	}
	if (k == n)
		return 0;
	size_t kn = k;
	while (kn && kc_blank(p[kn - 1]))
		kn--;
	if (kn == 0) {
		kc_yaml_fail(y, l->no, "complex or empty mapping keys are not supported");
		return -1;
	}
	if (kc_plain_start(y, p, kn, l->no) != 0)
		return -1;
	*key = x_strndup(p, kn);
	k++;
value:
	while (k < n && kc_blank(p[k]))
		k++;
	*vpos = k;
	return 1;
}

static struct kc_node *kc_block(struct kc_yaml *y, size_t indent);
static struct kc_node *kc_seq(struct kc_yaml *y, size_t indent);

/* What follows "key:" or "-" with nothing after it on the line: a deeper
 * block, a sequence at the same indentation (after a key only), or null. */
static struct kc_node *kc_value_below(struct kc_yaml *y, size_t indent, bool after_key,
				      unsigned no)
{
	if (y->i < y->n && y->lines[y->i].indent > indent)
		return kc_block(y, y->lines[y->i].indent);
	if (after_key && y->i < y->n && y->lines[y->i].indent == indent &&
	    kc_is_dash(&y->lines[y->i]))
		return kc_seq(y, indent);
	return kc_node_new(KC_NULL, no);
}

/* After a value on the key's (or dash's) line, nothing may be nested. */
static int kc_no_continuation(struct kc_yaml *y, size_t indent)
{
	if (y->i < y->n && y->lines[y->i].indent > indent) {
		kc_yaml_fail(y, y->lines[y->i].no,
			     "unexpected indentation (multi-line values are not supported)");
		return -1;
	}
	return 0;
}

static int kc_map_entry(struct kc_yaml *y, struct kc_node *map, size_t indent)
{
	struct kc_line *l = &y->lines[y->i];
	struct kc_node *val;
	size_t vpos;
	char *key;
	int r = kc_scan_key(y, l, &key, &vpos);

	if (r == 0)
		kc_yaml_fail(y, l->no, "expected 'key: value'");
	if (r <= 0)
		return -1;
	if (kc_get(map, key)) {
		kc_yaml_fail(y, l->no, "duplicate key '%s'", key);
		free(key);
		return -1;
	}
	if (map->n == KC_MAX_ENTRIES) {
		kc_yaml_fail(y, l->no, "more than %d keys in one mapping", KC_MAX_ENTRIES);
		free(key);
		return -1;
	}
	y->i++;
	if (vpos == l->n || l->p[vpos] == '#') {
		val = kc_value_below(y, indent, true, l->no);
		if (val)
			val->line = l->no; /* messages point at the key */
	} else {
		val = kc_inline_value(y, l->p + vpos, l->n - vpos, l->no);
		if (val && kc_no_continuation(y, indent) != 0) {
			kc_node_free(val);
			val = NULL;
		}
	}
	if (!val) {
		free(key);
		return -1;
	}
	kc_node_add(map, key, val);
	return 0;
}

static struct kc_node *kc_map(struct kc_yaml *y, size_t indent)
{
	struct kc_node *map = kc_node_new(KC_MAP, y->lines[y->i].no);

	while (y->i < y->n && !y->failed) {
		const struct kc_line *l = &y->lines[y->i];
		if (l->indent < indent)
			break;
		if (l->indent > indent) {
			kc_yaml_fail(y, l->no, "unexpected indentation");
			break;
		}
		if (kc_is_dash(l)) {
			kc_yaml_fail(y, l->no, "a sequence item where a key was expected");
			break;
		}
		if (kc_map_entry(y, map, indent) != 0)
			break;
	}
	if (y->failed) {
		kc_node_free(map);
		return NULL;
	}
	return map;
}

/* The item after "- " on a dash line: the line is re-read from there, so
 * "- name: x" starts a mapping whose keys align with "name". */
static struct kc_node *kc_seq_item(struct kc_yaml *y, size_t indent)
{
	struct kc_line *l = &y->lines[y->i];
	size_t k = 1;
	char *key;
	size_t vpos;
	int r;

	while (k < l->n && kc_blank(l->p[k]))
		k++;
	if (k == l->n || l->p[k] == '#') {
		y->i++;
		return kc_value_below(y, indent, false, l->no);
	}
	if (memchr(l->p, '\t', k)) {
		kc_yaml_fail(y, l->no, "tabs are not allowed in indentation");
		return NULL;
	}
	l->p += k;
	l->n -= k;
	l->indent += k;
	if (kc_is_dash(l))
		return kc_seq(y, l->indent);
	r = kc_scan_key(y, l, &key, &vpos);
	free(key);
	if (r < 0)
		return NULL;
	if (r > 0)
		return kc_map(y, l->indent);
	y->i++;
	struct kc_node *val = kc_inline_value(y, l->p, l->n, l->no);
	if (val && kc_no_continuation(y, indent) != 0) {
		kc_node_free(val);
		return NULL;
	}
	return val;
}

static struct kc_node *kc_seq(struct kc_yaml *y, size_t indent)
{
	struct kc_node *seq = kc_node_new(KC_SEQ, y->lines[y->i].no);

	if (++y->depth > KC_MAX_DEPTH) {
		kc_yaml_fail(y, y->lines[y->i].no, "nested too deeply");
		goto out;
	}
	while (y->i < y->n && !y->failed) {
		const struct kc_line *l = &y->lines[y->i];
		if (l->indent < indent || (l->indent == indent && !kc_is_dash(l)))
			break;
		if (l->indent > indent) {
			kc_yaml_fail(y, l->no, "unexpected indentation");
			break;
		}
		struct kc_node *item = kc_seq_item(y, indent);
		if (!item)
			break;
		kc_node_add(seq, NULL, item);
	}
out:
	y->depth--;
	if (y->failed) {
		kc_node_free(seq);
		return NULL;
	}
	return seq;
}

/* The block that starts at the current line, indented by indent. */
static struct kc_node *kc_block(struct kc_yaml *y, size_t indent)
{
	const struct kc_line *l = &y->lines[y->i];
	struct kc_node *nd = NULL;
	char *key;
	size_t vpos;
	int r;

	if (kc_is_dash(l))
		return kc_seq(y, indent);
	r = kc_scan_key(y, l, &key, &vpos);
	free(key);
	if (r == 0)
		kc_yaml_fail(y, l->no, "expected 'key: value' or '- item'");
	if (r <= 0)
		return NULL;
	if (++y->depth > KC_MAX_DEPTH)
		kc_yaml_fail(y, l->no, "nested too deeply");
	else
		nd = kc_map(y, indent);
	y->depth--;
	return nd;
}

static struct kc_node *kc_parse_yaml(const char *text, size_t len, const char *path, char *err,
				     size_t cap)
{
	struct kc_yaml y = { .path = path, .err = err, .cap = cap };
	struct kc_node *root = NULL;

	if (kc_split_lines(&y, text, len) != 0)
		goto out;
	if (y.n == 0) {
		root = kc_node_new(KC_NULL, 1);
		goto out;
	}
	root = kc_block(&y, y.lines[0].indent);
	if (root && y.i < y.n) {
		kc_yaml_fail(&y, y.lines[y.i].no, "unexpected text at a lower indentation");
		kc_node_free(root);
		root = NULL;
	}
out:
	free(y.lines);
	return root;
}

/* ---- JSON kubeconfigs ---- */

struct kc_json {
	const struct json_doc *d;
	size_t off;    /* lines are counted up to here */
	unsigned line;
	bool nul;
};

static unsigned kc_json_line(struct kc_json *j, int tok)
{
	size_t off = json_offset(j->d, tok);
	for (; j->off < off; j->off++)
		if (j->d->text[j->off] == '\n')
			j->line++;
	return j->line;
}

/* Tokens come in document order and the depth is bounded by the JSON
 * reader, so this recursion is bounded too. */
static struct kc_node *kc_from_json(struct kc_json *j, int tok)
{
	unsigned line = kc_json_line(j, tok);
	struct kc_node *nd;

	switch (json_type(j->d, tok)) {
	case JSON_OBJECT:
		nd = kc_node_new(KC_MAP, line);
		for (int k = json_object_first(j->d, tok); k >= 0; k = json_object_next(j->d, k)) {
			char *key = json_strdup(j->d, k);
			if (!key) {
				j->nul = true;
				key = x_strdup("");
			}
			kc_node_add(nd, key, kc_from_json(j, json_value(j->d, k)));
		}
		return nd;
	case JSON_ARRAY:
		nd = kc_node_new(KC_SEQ, line);
		for (int t = json_array_first(j->d, tok); t >= 0; t = json_next(j->d, t))
			kc_node_add(nd, NULL, kc_from_json(j, t));
		return nd;
	case JSON_STRING:
		nd = kc_node_new(KC_SCALAR, line);
		nd->str = json_strdup(j->d, tok);
		if (!nd->str) {
			j->nul = true;
			nd->str = x_strdup("");
		}
		return nd;
	case JSON_NULL:
	case JSON_NONE:
		return kc_node_new(KC_NULL, line);
	default: {
		struct og_str raw = json_raw(j->d, tok);
		nd = kc_node_new(KC_SCALAR, line);
		nd->plain = true;
		nd->str = x_strndup(raw.p, raw.n);
		return nd;
	}
	}
}

static struct kc_node *kc_parse_json(const char *text, size_t len, const char *path, char *err,
				     size_t cap)
{
	struct json_doc d;
	struct kc_json j = { .d = &d, .line = 1 };
	struct kc_node *root;
	char jerr[160];

	if (json_parse(&d, text, len, KC_MAX_JSON_TOKENS, jerr, sizeof(jerr)) != 0) {
		snprintf(err, cap, "kubeconfig %s: %s", path, jerr);
		return NULL;
	}
	root = kc_from_json(&j, 0);
	json_doc_free(&d);
	if (j.nul) {
		snprintf(err, cap, "kubeconfig %s: a string contains \\u0000", path);
		kc_node_free(root);
		return NULL;
	}
	return root;
}

/* ---- from the tree to the configuration ---- */

struct kc_ctx {
	const char *path;
	char *base_dir; /* "" when names are relative to the current directory */
	char *err;
	size_t cap;
};

static int kc_fail(struct kc_ctx *c, const char *fmt, ...) OG_PRINTF(2, 3);

static int kc_fail(struct kc_ctx *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!c->err || !c->cap)
		return -1;
	n = snprintf(c->err, c->cap, "kubeconfig %s: ", c->path);
	if (n < 0 || (size_t)n >= c->cap)
		return -1;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->cap - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Names from the file in messages, with control characters masked. */
static const char *kc_show(const char *s, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", s);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return buf;
}

static bool kc_is_null(const struct kc_node *nd)
{
	if (!nd || nd->type == KC_NULL)
		return true;
	if (nd->type != KC_SCALAR || !nd->plain)
		return false;
	return !*nd->str || strcmp(nd->str, "~") == 0 || strcmp(nd->str, "null") == 0 ||
	       strcmp(nd->str, "Null") == 0 || strcmp(nd->str, "NULL") == 0;
}

/* map[key] as a string; absent, null or "" leave *out NULL. */
static int kc_str(struct kc_ctx *c, const struct kc_node *map, const char *key, const char *where,
		  char **out)
{
	const struct kc_node *nd = kc_get(map, key);

	*out = NULL;
	if (kc_is_null(nd))
		return 0;
	if (nd->type != KC_SCALAR)
		return kc_fail(c, "%s: %s must be a string (line %u)", where, key, nd->line);
	if (*nd->str)
		*out = x_strdup(nd->str);
	return 0;
}

static int kc_bool(struct kc_ctx *c, const struct kc_node *map, const char *key, const char *where,
		   bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE" };
	static const char *const no[] = { "false", "False", "FALSE" };
	const struct kc_node *nd = kc_get(map, key);

	*out = false;
	if (kc_is_null(nd))
		return 0;
	for (size_t i = 0; nd->type == KC_SCALAR && nd->plain && i < OG_ARRAY_LEN(yes); i++) {
		if (strcmp(nd->str, yes[i]) == 0 || strcmp(nd->str, no[i]) == 0) {
			*out = strcmp(nd->str, yes[i]) == 0;
			return 0;
		}
	}
	return kc_fail(c, "%s: %s must be true or false (line %u)", where, key, nd->line);
}

static char *kc_join(const struct kc_ctx *c, const char *name)
{
	size_t n;
	char *p;

	if (name[0] == '/' || !c->base_dir[0])
		return x_strdup(name);
	n = strlen(c->base_dir) + strlen(name) + 2;
	p = x_malloc(n);
	snprintf(p, n, "%s%s%s", c->base_dir,
		 c->base_dir[strlen(c->base_dir) - 1] == '/' ? "" : "/", name);
	return p;
}

static int kc_path(struct kc_ctx *c, const struct kc_node *map, const char *key,
		   const char *where, char **out)
{
	char *name;

	if (kc_str(c, map, key, where, &name) != 0)
		return -1;
	*out = name ? kc_join(c, name) : NULL;
	free(name);
	return 0;
}

/* map[key] as base64-encoded bytes (the *-data fields). */
static int kc_data(struct kc_ctx *c, const struct kc_node *map, const char *key,
		   const char *where, unsigned char **out, size_t *len)
{
	char *text;
	ssize_t n;
	size_t tn;

	*out = NULL;
	*len = 0;
	if (kc_str(c, map, key, where, &text) != 0)
		return -1;
	if (!text)
		return 0;
	tn = strlen(text);
	*out = x_malloc(tn / 4 * 3 + 1);
	n = base64_decode(text, tn, *out, tn / 4 * 3);
	kc_free_secret(text);
	if (n <= 0) {
		free(*out);
		*out = NULL;
		return kc_fail(c, "%s: %s is not valid base64", where, key);
	}
	(*out)[n] = '\0';
	*len = (size_t)n;
	return 0;
}

/* The entries of list_key ("clusters") are {name: N, entry_key: {...}}.
 * Returns 1 with the entry named name in *out (NULL when it is null), 0 when
 * there is none, -1 on a malformed list. */
static int kc_find_named(struct kc_ctx *c, const struct kc_node *root, const char *list_key,
			 const char *entry_key, const char *name, const struct kc_node **out)
{
	const struct kc_node *list = kc_get(root, list_key);
	int found = 0;
	char buf[128];

	*out = NULL;
	if (kc_is_null(list))
		return 0;
	if (list->type != KC_SEQ)
		return kc_fail(c, "%s must be a list (line %u)", list_key, list->line);
	if (list->n > KC_MAX_ENTRIES)
		return kc_fail(c, "%s: more than %d entries", list_key, KC_MAX_ENTRIES);
	for (size_t i = 0; i < list->n; i++) {
		const struct kc_node *item = list->vals[i], *nm = kc_get(item, "name");
		if (item->type != KC_MAP || !nm || nm->type != KC_SCALAR || !*nm->str)
			return kc_fail(c, "%s: every entry needs a name (line %u)", list_key,
				       item->line);
		for (size_t k = 0; k < i; k++)
			if (strcmp(kc_get(list->vals[k], "name")->str, nm->str) == 0)
				return kc_fail(c, "%s: duplicate name '%s' (line %u)", list_key,
					       kc_show(nm->str, buf, sizeof(buf)), nm->line);
		if (strcmp(nm->str, name) != 0)
			continue;
		const struct kc_node *entry = kc_get(item, entry_key);
		if (!kc_is_null(entry) && entry->type != KC_MAP)
			return kc_fail(c, "%s: %s '%s' must be a mapping (line %u)", list_key,
				       entry_key, kc_show(name, buf, sizeof(buf)), entry->line);
		*out = kc_is_null(entry) ? NULL : entry;
		found = 1;
	}
	return found;
}

static int kc_cluster(struct kc_ctx *c, const struct kc_node *cl, const char *where,
		      struct k8s_kubeconfig *out)
{
	char *server, uerr[200];

	if (kc_get(cl, "proxy-url"))
		return kc_fail(c, "%s: proxy-url is not supported", where);
	if (kc_str(c, cl, "server", where, &server) != 0)
		return -1;
	if (!server)
		return kc_fail(c, "%s: server is missing", where);
	if (k8s_url_parse(&out->server, server, strlen(server), uerr, sizeof(uerr)) != 0) {
		free(server);
		return kc_fail(c, "%s: server: %s", where, uerr);
	}
	free(server);
	if (kc_path(c, cl, "certificate-authority", where, &out->ca_file) != 0 ||
	    kc_data(c, cl, "certificate-authority-data", where, &out->ca_pem,
		    &out->ca_pem_len) != 0 ||
	    kc_bool(c, cl, "insecure-skip-tls-verify", where, &out->insecure_skip_tls_verify) != 0 ||
	    kc_str(c, cl, "tls-server-name", where, &out->tls_server_name) != 0)
		return -1;
	if (out->ca_file && out->ca_pem)
		return kc_fail(c, "%s: certificate-authority and certificate-authority-data are "
				  "both set", where);
	if (out->insecure_skip_tls_verify && (out->ca_file || out->ca_pem))
		return kc_fail(c, "%s: insecure-skip-tls-verify cannot be combined with a "
				  "certificate authority", where);
	return 0;
}

/* Bearer tokens go into an Authorization header: visible ASCII only. */
static bool kc_token_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static int kc_user_unsupported(struct kc_ctx *c, const struct kc_node *u, const char *where)
{
	static const char *const impersonation[] = { "as", "as-uid", "as-groups", "as-user-extra" };

	if (kc_get(u, "exec"))
		return kc_fail(c, "%s: exec (credential plugins) is not supported; use token, "
				  "tokenFile or a client certificate", where);
	if (kc_get(u, "auth-provider"))
		return kc_fail(c, "%s: auth-provider is not supported; use token, tokenFile or a "
				  "client certificate", where);
	if (kc_get(u, "username") || kc_get(u, "password"))
		return kc_fail(c, "%s: username/password (basic authentication) is not supported",
			       where);
	for (size_t i = 0; i < OG_ARRAY_LEN(impersonation); i++)
		if (kc_get(u, impersonation[i]))
			return kc_fail(c, "%s: %s (impersonation) is not supported", where,
				       impersonation[i]);
	return 0;
}

static int kc_user(struct kc_ctx *c, const struct kc_node *u, const char *where,
		   struct k8s_kubeconfig *out)
{
	bool cert, key;

	if (kc_user_unsupported(c, u, where) != 0 ||
	    kc_str(c, u, "token", where, &out->token) != 0 ||
	    kc_path(c, u, "tokenFile", where, &out->token_file) != 0 ||
	    kc_path(c, u, "client-certificate", where, &out->client_cert_file) != 0 ||
	    kc_data(c, u, "client-certificate-data", where, &out->client_cert_pem,
		    &out->client_cert_pem_len) != 0 ||
	    kc_path(c, u, "client-key", where, &out->client_key_file) != 0 ||
	    kc_data(c, u, "client-key-data", where, &out->client_key_pem,
		    &out->client_key_pem_len) != 0)
		return -1;
	if (out->token && !kc_token_ok(out->token))
		return kc_fail(c, "%s: token contains characters that cannot be sent in an "
				  "Authorization header", where);
	if (out->client_cert_file && out->client_cert_pem)
		return kc_fail(c, "%s: client-certificate and client-certificate-data are both set",
			       where);
	if (out->client_key_file && out->client_key_pem)
		return kc_fail(c, "%s: client-key and client-key-data are both set", where);
	cert = out->client_cert_file || out->client_cert_pem;
	key = out->client_key_file || out->client_key_pem;
	if (cert != key)
		return kc_fail(c, "%s: %s is set but %s is not", where,
			       cert ? "a client certificate" : "a client key",
			       cert ? "client-key or client-key-data" :
				      "client-certificate or client-certificate-data");
	return 0;
}

static int kc_check_header(struct kc_ctx *c, const struct kc_node *root)
{
	const struct kc_node *kind = kc_get(root, "kind"), *api = kc_get(root, "apiVersion");

	if (!kc_is_null(kind) && (kind->type != KC_SCALAR || strcmp(kind->str, "Config") != 0))
		return kc_fail(c, "kind must be Config (line %u)", kind->line);
	if (!kc_is_null(api) && (api->type != KC_SCALAR || strcmp(api->str, "v1") != 0))
		return kc_fail(c, "apiVersion must be v1 (line %u)", api->line);
	return 0;
}

/* Selects the context, then its cluster and user. */
static int kc_select(struct kc_ctx *c, const struct kc_node *root, const char *context,
		     struct k8s_kubeconfig *out)
{
	const struct kc_node *ctx, *cl, *u;
	char where[300], buf[128];
	int r;

	if (kc_check_header(c, root) != 0)
		return -1;
	if (context)
		out->context = x_strdup(context);
	else if (kc_str(c, root, "current-context", "config", &out->context) != 0)
		return -1;
	if (!out->context)
		return kc_fail(c, "current-context is not set and no context was given");
	r = kc_find_named(c, root, "contexts", "context", out->context, &ctx);
	if (r < 0)
		return -1;
	snprintf(where, sizeof(where), "context '%s'", kc_show(out->context, buf, sizeof(buf)));
	if (r == 0)
		return kc_fail(c, "%s not found", where);
	if (kc_str(c, ctx, "cluster", where, &out->cluster_name) != 0 ||
	    kc_str(c, ctx, "user", where, &out->user_name) != 0 ||
	    kc_str(c, ctx, "namespace", where, &out->ns) != 0)
		return -1;
	if (!out->cluster_name)
		return kc_fail(c, "%s: cluster is missing", where);
	r = kc_find_named(c, root, "clusters", "cluster", out->cluster_name, &cl);
	if (r <= 0)
		return r < 0 ? -1 : kc_fail(c, "%s: cluster '%s' not found", where,
					    kc_show(out->cluster_name, buf, sizeof(buf)));
	snprintf(where, sizeof(where), "cluster '%s'", kc_show(out->cluster_name, buf, sizeof(buf)));
	if (kc_cluster(c, cl, where, out) != 0)
		return -1;
	if (!out->user_name)
		return 0; /* anonymous */
	r = kc_find_named(c, root, "users", "user", out->user_name, &u);
	snprintf(where, sizeof(where), "context '%s'", kc_show(out->context, buf, sizeof(buf)));
	if (r <= 0)
		return r < 0 ? -1 : kc_fail(c, "%s: user '%s' not found", where,
					    kc_show(out->user_name, buf, sizeof(buf)));
	snprintf(where, sizeof(where), "user '%s'", kc_show(out->user_name, buf, sizeof(buf)));
	return kc_user(c, u, where, out);
}

static char *kc_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return x_strdup("");
	if (slash == path)
		return x_strdup("/");
	return x_strndup(path, (size_t)(slash - path));
}

int k8s_kubeconfig_parse(const char *text, size_t len, const char *path, const char *context,
			 struct k8s_kubeconfig *out, char *err, size_t err_cap)
{
	struct kc_ctx c = { .path = path ? path : "(kubeconfig)", .err = err, .cap = err_cap };
	struct kc_node *root;
	size_t k = 0;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (len > K8S_KUBECONFIG_MAX_BYTES)
		return kc_fail(&c, "larger than %zu bytes", K8S_KUBECONFIG_MAX_BYTES);
	while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\n' || text[k] == '\r'))
		k++;
	if (k < len && text[k] == '{')
		root = kc_parse_json(text, len, c.path, err, err_cap);
	else
		root = kc_parse_yaml(text, len, c.path, err, err_cap);
	if (!root)
		return -1;
	c.base_dir = kc_dirname(path ? path : "");
	if (root->type != KC_MAP)
		kc_fail(&c, "%s", root->type == KC_NULL ? "the file is empty" :
				  "expected a mapping at the top");
	else
		ret = kc_select(&c, root, context, out);
	if (ret == 0)
		out->path = path ? x_strdup(path) : NULL;
	else
		k8s_kubeconfig_free(out);
	kc_node_free(root);
	free(c.base_dir);
	return ret;
}

/* ---- files ---- */

/* Reads a whole file of at most max bytes; errno-style result. */
static int kc_read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), e = 0;
	size_t cap = 4096, n = 0;
	char *buf;

	if (fd < 0)
		return errno;
	buf = x_malloc(cap + 1);
	for (;;) {
		if (n == cap) {
			if (cap > max) {
				e = EFBIG;
				break;
			}
			char *bigger = x_malloc(cap * 2 + 1);
			memcpy(bigger, buf, n);
			kc_wipe(buf, n);
			free(buf);
			buf = bigger;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!e && n > max)
		e = EFBIG;
	if (e) {
		kc_wipe(buf, n);
		free(buf);
		return e;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int kc_readable(struct kc_ctx *c, const char *field, const char *file)
{
	if (file && access(file, R_OK) != 0)
		return kc_fail(c, "%s %s: %s", field, file, strerror(errno));
	return 0;
}

static char *kc_absolute(const char *path)
{
	char cwd[PATH_MAX];
	size_t n;
	char *p;

	if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return x_strdup(path);
	n = strlen(cwd) + strlen(path) + 2;
	p = x_malloc(n);
	snprintf(p, n, "%s/%s", cwd, path);
	return p;
}

int k8s_kubeconfig_load(const char *path, const char *context, struct k8s_kubeconfig *out,
			char *err, size_t err_cap)
{
	char *abs = kc_absolute(path), *text = NULL;
	struct kc_ctx c = { .path = abs, .err = err, .cap = err_cap };
	size_t len = 0;
	int e, ret = -1;

	memset(out, 0, sizeof(*out));
	e = kc_read_file(abs, K8S_KUBECONFIG_MAX_BYTES, &text, &len);
	if (e) {
		kc_fail(&c, "%s", e == EFBIG ? "file too large" : strerror(e));
		goto out;
	}
	if (k8s_kubeconfig_parse(text, len, abs, context, out, err, err_cap) != 0)
		goto out;
	if (kc_readable(&c, "certificate-authority", out->ca_file) != 0 ||
	    kc_readable(&c, "client-certificate", out->client_cert_file) != 0 ||
	    kc_readable(&c, "client-key", out->client_key_file) != 0 ||
	    kc_readable(&c, "tokenFile", out->token_file) != 0) {
		k8s_kubeconfig_free(out);
		goto out;
	}
	ret = 0;
out:
	if (text) {
		kc_wipe(text, len);
		free(text);
	}
	free(abs);
	return ret;
}

static int kc_in_cluster_namespace(const char *sa_dir, struct k8s_kubeconfig *out, char *err,
				   size_t cap)
{
	char path[PATH_MAX], *text;
	size_t len;
	int e;

	snprintf(path, sizeof(path), "%s/namespace", sa_dir);
	e = kc_read_file(path, 1024, &text, &len);
	if (e == ENOENT)
		return 0;
	if (e) {
		snprintf(err, cap, "in-cluster: %s: %s", path, e == EFBIG ? "file too large" :
								      strerror(e));
		return -1;
	}
	while (len && strchr(" \t\r\n", text[len - 1]))
		len--;
	text[len] = '\0';
	if (len && strlen(text) == len)
		out->ns = x_strdup(text);
	free(text);
	return 0;
}

int k8s_kubeconfig_in_cluster(const char *sa_dir, struct k8s_kubeconfig *out, char *err,
			      size_t err_cap)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char url[512], uerr[200], path[PATH_MAX];

	memset(out, 0, sizeof(*out));
	if (!sa_dir)
		sa_dir = K8S_SERVICEACCOUNT_DIR;
	if (!host || !*host || !port || !*port) {
		snprintf(err, err_cap, "in-cluster: KUBERNETES_SERVICE_HOST and "
				       "KUBERNETES_SERVICE_PORT are not set (not running in a Pod?)");
		return -1;
	}
	snprintf(url, sizeof(url), strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		 port);
	if (k8s_url_parse(&out->server, url, strlen(url), uerr, sizeof(uerr)) != 0) {
		snprintf(err, err_cap, "in-cluster: KUBERNETES_SERVICE_HOST/PORT give %s: %s", url,
			 uerr);
		return -1;
	}
	out->in_cluster = true;
	snprintf(path, sizeof(path), "%s/token", sa_dir);
	out->token_file = x_strdup(path);
	snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
	out->ca_file = x_strdup(path);
	const char *files[] = { out->token_file, out->ca_file };
	for (size_t i = 0; i < OG_ARRAY_LEN(files); i++) {
		if (access(files[i], R_OK) != 0) {
			snprintf(err, err_cap, "in-cluster: %s: %s", files[i], strerror(errno));
			k8s_kubeconfig_free(out);
			return -1;
		}
	}
	if (kc_in_cluster_namespace(sa_dir, out, err, err_cap) != 0) {
		k8s_kubeconfig_free(out);
		return -1;
	}
	return 0;
}

int k8s_kubeconfig_read_token(const char *path, char **token, char *err, size_t err_cap)
{
	char *text;
	size_t len, start = 0;
	int e;

	*token = NULL;
	e = kc_read_file(path, K8S_TOKEN_MAX_BYTES, &text, &len);
	if (e) {
		snprintf(err, err_cap, "token file %s: %s", path,
			 e == EFBIG ? "file too large" : strerror(e));
		return -1;
	}
	while (len && strchr(" \t\r\n", text[len - 1]))
		len--;
	while (start < len && strchr(" \t\r\n", text[start]))
		start++;
	text[len] = '\0';
	if (start == len || strlen(text + start) != len - start || !kc_token_ok(text + start)) {
		snprintf(err, err_cap, "token file %s: %s", path,
			 start == len ? "empty" :
					"contains characters that cannot be sent in an "
					"Authorization header");
		kc_wipe(text, len);
		free(text);
		return -1;
	}
	*token = x_strdup(text + start);
	kc_wipe(text, len);
	free(text);
	return 0;
}

void k8s_kubeconfig_free(struct k8s_kubeconfig *kc)
{
	free(kc->path);
	free(kc->context);
	free(kc->cluster_name);
	free(kc->user_name);
	k8s_url_free(&kc->server);
	free(kc->ca_pem);
	free(kc->ca_file);
	free(kc->tls_server_name);
	free(kc->client_cert_pem);
	free(kc->client_cert_file);
	if (kc->client_key_pem)
		kc_wipe(kc->client_key_pem, kc->client_key_pem_len);
	free(kc->client_key_pem);
	free(kc->client_key_file);
	kc_free_secret(kc->token);
	free(kc->token_file);
	free(kc->ns);
	memset(kc, 0, sizeof(*kc));
}
