#include "util/json.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ascii.h"
#include "util/xalloc.h"

/* jsmn on its own accepts non-JSON and, without parent links, takes
 * quadratic time on wide documents; json_scan below validates first, so
 * jsmn only ever sees well-formed input. */
#define JSMN_STATIC
#define JSMN_PARENT_LINKS
#include <jsmn.h>

struct json_tok {
	int start;    /* strings: just after the opening quote */
	int end;      /* strings: at the closing quote */
	int parent;   /* enclosing array or object, -1 for the root */
	int next;     /* next token in the same container, -1 after the last */
	int size;     /* arrays: items; objects: members */
	unsigned char type;  /* enum json_type */
	bool escaped; /* strings: contain a backslash */
};

static void json_fail(char *err, size_t cap, size_t off, const char *fmt, ...) OG_PRINTF(4, 5);

static void json_fail(char *err, size_t cap, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !cap)
		return;
	n = snprintf(err, cap, "invalid JSON at offset %zu: ", off);
	if (n < 0 || (size_t)n >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ---- validation ---- */

struct json_scan {
	const char *s;
	size_t len, pos;
	size_t n_tokens;
	const char *why; /* set on failure, with pos at the offending byte */
};

static bool json_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Four hex digits at p (the caller checked they are in bounds). */
static int json_hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int h = og_hex_value(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

static int json_scan_fail(struct json_scan *sc, const char *why)
{
	sc->why = why;
	return -1;
}

size_t json_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* An escape after the backslash at sc->pos; leaves pos after it. */
static int json_scan_escape(struct json_scan *sc)
{
	const char *s = sc->s;
	int cu;

	if (sc->pos + 1 >= sc->len)
		return json_scan_fail(sc, "unterminated string");
	sc->pos++;
	if (strchr("\"\\/bfnrt", s[sc->pos]) && s[sc->pos] != '\0') {
		sc->pos++;
		return 0;
	}
	if (s[sc->pos] != 'u')
		return json_scan_fail(sc, "invalid escape in string");
	if (sc->len - sc->pos < 5 || (cu = json_hex4(s + sc->pos + 1)) < 0)
		return json_scan_fail(sc, "invalid \\u escape in string");
	sc->pos += 5;
	if (cu >= 0xdc00 && cu <= 0xdfff)
		return json_scan_fail(sc, "unpaired surrogate in string");
	if (cu >= 0xd800 && cu <= 0xdbff) {
		int lo;
		if (sc->len - sc->pos < 6 || s[sc->pos] != '\\' || s[sc->pos + 1] != 'u' ||
		    (lo = json_hex4(s + sc->pos + 2)) < 0xdc00 || lo > 0xdfff)
			return json_scan_fail(sc, "unpaired surrogate in string");
		sc->pos += 6;
	}
	return 0;
}

static int json_scan_string(struct json_scan *sc)
{
	const unsigned char *s = (const unsigned char *)sc->s;

	sc->pos++; /* the opening quote */
	while (sc->pos < sc->len) {
		unsigned char c = s[sc->pos];
		if (c == '"') {
			sc->pos++;
			return 0;
		}
		if (c < 0x20)
			return json_scan_fail(sc, "control character in string");
		if (c == '\\') {
			if (json_scan_escape(sc) < 0)
				return -1;
			continue;
		}
		size_t n = json_utf8_len(s + sc->pos, sc->len - sc->pos);
		if (n == 0)
			return json_scan_fail(sc, "invalid UTF-8 in string");
		sc->pos += n;
	}
	return json_scan_fail(sc, "unterminated string");
}

static size_t json_scan_digits(struct json_scan *sc)
{
	size_t start = sc->pos;
	while (sc->pos < sc->len && ascii_is_digit(sc->s[sc->pos]))
		sc->pos++;
	return sc->pos - start;
}

static int json_scan_number(struct json_scan *sc)
{
	const char *s = sc->s;

	if (s[sc->pos] == '-')
		sc->pos++;
	if (sc->pos < sc->len && s[sc->pos] == '0')
		sc->pos++;
	else if (json_scan_digits(sc) == 0)
		return json_scan_fail(sc, "invalid number");
	if (sc->pos < sc->len && s[sc->pos] == '.') {
		sc->pos++;
		if (json_scan_digits(sc) == 0)
			return json_scan_fail(sc, "invalid number");
	}
	if (sc->pos < sc->len && (s[sc->pos] == 'e' || s[sc->pos] == 'E')) {
		sc->pos++;
		if (sc->pos < sc->len && (s[sc->pos] == '+' || s[sc->pos] == '-'))
			sc->pos++;
		if (json_scan_digits(sc) == 0)
			return json_scan_fail(sc, "invalid number");
	}
	return 0;
}

static int json_scan_literal(struct json_scan *sc)
{
	static const char *const words[] = { "true", "false", "null" };

	for (size_t i = 0; i < OG_ARRAY_LEN(words); i++) {
		size_t n = strlen(words[i]);
		if (sc->len - sc->pos >= n && memcmp(sc->s + sc->pos, words[i], n) == 0) {
			sc->pos += n;
			return 0;
		}
	}
	return json_scan_fail(sc, "unexpected character");
}

/* A scalar value at sc->pos. */
static int json_scan_scalar(struct json_scan *sc)
{
	char c = sc->s[sc->pos];

	sc->n_tokens++;
	if (c == '"')
		return json_scan_string(sc);
	if (c == '-' || ascii_is_digit(c))
		return json_scan_number(sc);
	return json_scan_literal(sc);
}

enum json_scan_state {
	SCAN_VALUE,          /* a value must come */
	SCAN_VALUE_OR_CLOSE, /* just after '[' */
	SCAN_KEY,            /* after ',' in an object */
	SCAN_KEY_OR_CLOSE,   /* just after '{' */
	SCAN_COLON,
	SCAN_COMMA_OR_CLOSE, /* after a value inside a container */
	SCAN_DONE,           /* after the top-level value */
};

/* Checks that sc->s is exactly one JSON value and counts its tokens. */
static int json_scan_document(struct json_scan *sc)
{
	char stack[JSON_MAX_DEPTH]; /* '{' or '[' of each open container */
	int depth = 0;
	enum json_scan_state st = SCAN_VALUE;

	for (;;) {
		while (sc->pos < sc->len && json_is_ws(sc->s[sc->pos]))
			sc->pos++;
		if (sc->pos == sc->len) {
			if (st == SCAN_DONE)
				return 0;
			return json_scan_fail(sc, "unexpected end of text");
		}
		char c = sc->s[sc->pos];
		bool closed = false;

		switch (st) {
		case SCAN_DONE:
			return json_scan_fail(sc, "text after the JSON value");
		case SCAN_COLON:
			if (c != ':')
				return json_scan_fail(sc, "expected ':'");
			sc->pos++;
			st = SCAN_VALUE;
			continue;
		case SCAN_KEY_OR_CLOSE:
		case SCAN_KEY:
			if (c == '}' && st == SCAN_KEY_OR_CLOSE) {
				closed = true;
				break;
			}
			if (c != '"')
				return json_scan_fail(sc, "expected a string key");
			if (json_scan_scalar(sc) < 0)
				return -1;
			st = SCAN_COLON;
			continue;
		case SCAN_COMMA_OR_CLOSE:
			if (c == ',') {
				sc->pos++;
				st = stack[depth - 1] == '{' ? SCAN_KEY : SCAN_VALUE;
				continue;
			}
			if (c != (stack[depth - 1] == '{' ? '}' : ']'))
				return json_scan_fail(sc, "expected ',' or the end of the container");
			closed = true;
			break;
		case SCAN_VALUE_OR_CLOSE:
		case SCAN_VALUE:
			if (c == ']' && st == SCAN_VALUE_OR_CLOSE) {
				closed = true;
				break;
			}
			if (c == '{' || c == '[') {
				if (depth == JSON_MAX_DEPTH)
					return json_scan_fail(sc, "nested too deeply");
				stack[depth++] = c;
				sc->n_tokens++;
				sc->pos++;
				st = c == '{' ? SCAN_KEY_OR_CLOSE : SCAN_VALUE_OR_CLOSE;
				continue;
			}
			if (json_scan_scalar(sc) < 0)
				return -1;
			break;
		}
		if (closed) {
			depth--;
			sc->pos++;
		}
		st = depth == 0 ? SCAN_DONE : SCAN_COMMA_OR_CLOSE;
	}
}

/* ---- unescaping ---- */

/* The code point of the escape at p[*i] (a backslash) in validated text;
 * advances *i past it. */
static uint32_t json_escape_cp(const char *p, size_t *i)
{
	char c = p[*i + 1];
	uint32_t cp;

	*i += 2;
	switch (c) {
	case 'b': return '\b';
	case 'f': return '\f';
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	case 'u': break;
	default: return (uint32_t)(unsigned char)c;
	}
	cp = (uint32_t)json_hex4(p + *i);
	*i += 4;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		uint32_t lo = (uint32_t)json_hex4(p + *i + 2);
		*i += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	return cp;
}

/* Decodes the next unit of validated string content p[*i..n): a raw byte,
 * or the UTF-8 encoding of an escape, into out; returns its length. */
static size_t json_unescape_next(const char *p, size_t *i, char out[4])
{
	if (p[*i] != '\\') {
		out[0] = p[(*i)++];
		return 1;
	}
	return og_utf8_encode(json_escape_cp(p, i), out);
}

/* ---- duplicate keys ---- */

struct json_key {
	struct og_str raw;
	int tok;
};

/* Orders keys by their unescaped bytes. */
static int json_key_cmp(const void *a, const void *b)
{
	const struct og_str *x = &((const struct json_key *)a)->raw;
	const struct og_str *y = &((const struct json_key *)b)->raw;
	size_t i = 0, j = 0, xn = 0, yn = 0, xo = 0, yo = 0;
	char xb[4], yb[4];

	for (;;) {
		if (xo == xn) {
			if (i == x->n)
				return (j == y->n && yo == yn) ? 0 : -1;
			xn = json_unescape_next(x->p, &i, xb);
			xo = 0;
		}
		if (yo == yn) {
			if (j == y->n)
				return 1;
			yn = json_unescape_next(y->p, &j, yb);
			yo = 0;
		}
		if (xb[xo] != yb[yo])
			return (unsigned char)xb[xo] < (unsigned char)yb[yo] ? -1 : 1;
		xo++;
		yo++;
	}
}

static int json_check_duplicates(struct json_doc *d, char *err, size_t cap)
{
	struct json_key *keys = NULL;
	size_t keys_cap = 0;
	int ret = 0;

	for (int t = 0; t < d->n && ret == 0; t++) {
		size_t n = 0;
		if (d->toks[t].type != JSON_OBJECT || d->toks[t].size < 2)
			continue;
		if ((size_t)d->toks[t].size > keys_cap) {
			keys_cap = (size_t)d->toks[t].size;
			keys = x_realloc(keys, keys_cap * sizeof(*keys));
		}
		for (int k = json_object_first(d, t); k >= 0; k = json_object_next(d, k)) {
			keys[n].raw = json_raw(d, k);
			keys[n++].tok = k;
		}
		qsort(keys, n, sizeof(*keys), json_key_cmp);
		for (size_t i = 1; i < n; i++) {
			if (json_key_cmp(&keys[i - 1], &keys[i]) == 0) {
				int later = OG_MAX(keys[i - 1].tok, keys[i].tok);
				json_fail(err, cap, json_offset(d, later), "duplicate key \"%.*s\"",
					  (int)OG_MIN(keys[i].raw.n, 64), keys[i].raw.p);
				ret = -1;
				break;
			}
		}
	}
	free(keys);
	return ret;
}

/* ---- tokens ---- */

static enum json_type json_primitive_type(char c)
{
	switch (c) {
	case 't': return JSON_TRUE;
	case 'f': return JSON_FALSE;
	case 'n': return JSON_NULL;
	default: return JSON_NUMBER;
	}
}

/* Our tokens from jsmn's: values of object members get the object as
 * parent (jsmn hangs them under their key), and siblings get linked. */
static void json_convert(struct json_doc *d, const jsmntok_t *jt)
{
	int *last = x_malloc((size_t)d->n * sizeof(*last));

	for (int i = 0; i < d->n; i++) {
		struct json_tok *t = &d->toks[i];
		int parent = jt[i].parent;

		if (parent >= 0 && jt[parent].type == JSMN_STRING)
			parent = jt[parent].parent;
		t->start = jt[i].start;
		t->end = jt[i].end;
		t->parent = parent;
		t->next = -1;
		t->size = 0;
		last[i] = -1;
		switch (jt[i].type) {
		case JSMN_OBJECT:
			t->type = JSON_OBJECT;
			t->size = jt[i].size;
			break;
		case JSMN_ARRAY:
			t->type = JSON_ARRAY;
			t->size = jt[i].size;
			break;
		case JSMN_STRING:
			t->type = JSON_STRING;
			t->escaped = memchr(d->text + t->start, '\\',
					    (size_t)(t->end - t->start)) != NULL;
			break;
		default:
			t->type = (unsigned char)json_primitive_type(d->text[t->start]);
			break;
		}
		if (parent >= 0) {
			if (last[parent] >= 0)
				d->toks[last[parent]].next = i;
			last[parent] = i;
		}
	}
	free(last);
}

int json_parse(struct json_doc *d, const char *text, size_t len, size_t max_tokens, char *err,
	       size_t err_cap)
{
	struct json_scan sc = { .s = text, .len = len };
	jsmntok_t *jt = NULL;
	jsmn_parser p;
	int r, ret = -1;

	memset(d, 0, sizeof(*d));
	if (len > JSON_MAX_TEXT) {
		json_fail(err, err_cap, 0, "text longer than %zu bytes", JSON_MAX_TEXT);
		return -1;
	}
	if (json_scan_document(&sc) < 0) {
		json_fail(err, err_cap, sc.pos, "%s", sc.why);
		return -1;
	}
	if (sc.n_tokens > max_tokens || sc.n_tokens > INT_MAX) {
		json_fail(err, err_cap, 0, "more than %zu values", max_tokens);
		return -1;
	}
	jt = x_malloc(sc.n_tokens * sizeof(*jt));
	jsmn_init(&p);
	r = jsmn_parse(&p, text, len, jt, (unsigned)sc.n_tokens);
	if (r < 0 || (size_t)r != sc.n_tokens) {
		/* jsmn disagrees with the validator: refuse rather than guess */
		json_fail(err, err_cap, 0, "tokenizer error %d", r);
		goto out;
	}
	d->text = text;
	d->len = len;
	d->n = r;
	d->toks = x_calloc((size_t)r, sizeof(*d->toks));
	json_convert(d, jt);
	if (json_check_duplicates(d, err, err_cap) < 0) {
		json_doc_free(d);
		goto out;
	}
	ret = 0;
out:
	free(jt);
	return ret;
}

void json_doc_free(struct json_doc *d)
{
	free(d->toks);
	memset(d, 0, sizeof(*d));
}

/* ---- accessors ---- */

static const struct json_tok *json_tok_at(const struct json_doc *d, int tok)
{
	if (tok < 0 || tok >= d->n)
		return NULL;
	return &d->toks[tok];
}

enum json_type json_type(const struct json_doc *d, int tok)
{
	const struct json_tok *t = json_tok_at(d, tok);
	return t ? (enum json_type)t->type : JSON_NONE;
}

bool json_is_object(const struct json_doc *d, int tok)
{
	return json_type(d, tok) == JSON_OBJECT;
}

bool json_is_array(const struct json_doc *d, int tok)
{
	return json_type(d, tok) == JSON_ARRAY;
}

bool json_is_string(const struct json_doc *d, int tok)
{
	return json_type(d, tok) == JSON_STRING;
}

bool json_is_null(const struct json_doc *d, int tok)
{
	return json_type(d, tok) == JSON_NULL;
}

const char *json_type_name(const struct json_doc *d, int tok)
{
	switch (json_type(d, tok)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_NUMBER: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	case JSON_NONE: break;
	}
	return "nothing";
}

struct og_str json_raw(const struct json_doc *d, int tok)
{
	const struct json_tok *t = json_tok_at(d, tok);
	if (!t)
		return og_str_make("", 0);
	return og_str_make(d->text + t->start, (size_t)(t->end - t->start));
}

size_t json_offset(const struct json_doc *d, int tok)
{
	const struct json_tok *t = json_tok_at(d, tok);
	if (!t)
		return 0;
	return (size_t)t->start - (t->type == JSON_STRING);
}

int json_get(const struct json_doc *d, int obj, const char *key)
{
	for (int k = json_object_first(d, obj); k >= 0; k = json_object_next(d, k))
		if (json_str_eq(d, k, key))
			return json_value(d, k);
	return -1;
}

int json_path(const struct json_doc *d, int obj, const char *dotted)
{
	char key[256];

	while (obj >= 0) {
		size_t n = strcspn(dotted, ".");
		if (n >= sizeof(key))
			return -1;
		memcpy(key, dotted, n);
		key[n] = '\0';
		obj = json_get(d, obj, key);
		if (dotted[n] == '\0')
			return obj;
		dotted += n + 1;
	}
	return -1;
}

int json_len(const struct json_doc *d, int tok)
{
	enum json_type t = json_type(d, tok);
	if (t != JSON_OBJECT && t != JSON_ARRAY)
		return -1;
	return d->toks[tok].size;
}

int json_array_len(const struct json_doc *d, int arr)
{
	return json_is_array(d, arr) ? d->toks[arr].size : -1;
}

int json_array_first(const struct json_doc *d, int arr)
{
	return json_array_len(d, arr) > 0 ? arr + 1 : -1;
}

int json_next(const struct json_doc *d, int tok)
{
	const struct json_tok *t = json_tok_at(d, tok);
	return t ? t->next : -1;
}

int json_object_first(const struct json_doc *d, int obj)
{
	return json_is_object(d, obj) && d->toks[obj].size > 0 ? obj + 1 : -1;
}

int json_value(const struct json_doc *d, int key)
{
	const struct json_tok *t = json_tok_at(d, key);
	if (!t || t->parent < 0 || d->toks[t->parent].type != JSON_OBJECT)
		return -1;
	return t->next;
}

int json_object_next(const struct json_doc *d, int key)
{
	return json_next(d, json_value(d, key));
}

ssize_t json_string_len(const struct json_doc *d, int tok)
{
	struct og_str raw;
	size_t i = 0, n = 0;
	char buf[4];

	if (!json_is_string(d, tok))
		return -1;
	raw = json_raw(d, tok);
	if (!d->toks[tok].escaped)
		return (ssize_t)raw.n;
	while (i < raw.n)
		n += json_unescape_next(raw.p, &i, buf);
	return (ssize_t)n;
}

ssize_t json_string(const struct json_doc *d, int tok, char *out, size_t cap)
{
	struct og_str raw;
	size_t i = 0, n = 0;
	char buf[4];

	if (!json_is_string(d, tok))
		return -1;
	raw = json_raw(d, tok);
	while (i < raw.n) {
		size_t k = json_unescape_next(raw.p, &i, buf);
		if (k == 1 && buf[0] == '\0')
			return -1;
		if (n + k >= cap)
			return -1;
		memcpy(out + n, buf, k);
		n += k;
	}
	if (n >= cap)
		return -1;
	out[n] = '\0';
	return (ssize_t)n;
}

char *json_strdup(const struct json_doc *d, int tok)
{
	ssize_t n = json_string_len(d, tok);
	char *s;

	if (n < 0)
		return NULL;
	s = x_malloc((size_t)n + 1);
	if (json_string(d, tok, s, (size_t)n + 1) != n) {
		free(s);
		return NULL;
	}
	return s;
}

bool json_str_eq(const struct json_doc *d, int tok, const char *lit)
{
	struct og_str raw;
	size_t i = 0, n = 0, litn = strlen(lit);
	char buf[4];

	if (!json_is_string(d, tok))
		return false;
	raw = json_raw(d, tok);
	if (!d->toks[tok].escaped)
		return raw.n == litn && memcmp(raw.p, lit, litn) == 0;
	while (i < raw.n) {
		size_t k = json_unescape_next(raw.p, &i, buf);
		if (n + k > litn || memcmp(lit + n, buf, k) != 0)
			return false;
		n += k;
	}
	return n == litn;
}

bool json_int64(const struct json_doc *d, int tok, int64_t *out)
{
	struct og_str raw = json_raw(d, tok);
	bool neg;
	uint64_t v = 0, limit;
	size_t i = 0;

	if (json_type(d, tok) != JSON_NUMBER)
		return false;
	neg = raw.p[0] == '-';
	i = neg;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < raw.n; i++) {
		if (!ascii_is_digit(raw.p[i]))
			return false; /* fraction or exponent */
		unsigned digit = (unsigned)(raw.p[i] - '0');
		if (v > (limit - digit) / 10)
			return false;
		v = v * 10 + digit;
	}
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return true;
}

bool json_bool(const struct json_doc *d, int tok, bool *out)
{
	enum json_type t = json_type(d, tok);
	if (t != JSON_TRUE && t != JSON_FALSE)
		return false;
	*out = t == JSON_TRUE;
	return true;
}
