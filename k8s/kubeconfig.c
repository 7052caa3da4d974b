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

#include <yaml.h>

#include "util/base64.h"
#include "util/xalloc.h"

/* Nesting of YAML blocks; kubeconfigs use five or six levels. */
#define KC_MAX_DEPTH 64
/* Keys of a mapping and entries of a named list: duplicates are looked
 * for by linear search, so the count is bounded. */
#define KC_MAX_ENTRIES 4096

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

/* ---- YAML (and JSON, which is YAML) through libyaml ---- */

/* Builds the tree from libyaml's events with an explicit stack. */
struct kc_yaml {
	yaml_parser_t parser;
	const char *text, *path;
	size_t len;
	char *err;
	size_t cap;
	bool failed;
	unsigned docs;
	struct kc_node *root;
	struct kc_node *stack[KC_MAX_DEPTH];
	char *key[KC_MAX_DEPTH];       /* a mapping's key waiting for its value */
	unsigned key_line[KC_MAX_DEPTH];
	unsigned depth;
};

static int kc_yaml_fail(struct kc_yaml *y, unsigned line, const char *fmt, ...) OG_PRINTF(3, 4);

static int kc_yaml_fail(struct kc_yaml *y, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (y->failed)
		return -1;
	y->failed = true;
	if (!y->err || !y->cap)
		return -1;
	n = snprintf(y->err, y->cap, "kubeconfig %s:%u: ", y->path, line);
	if (n < 0 || (size_t)n >= y->cap)
		return -1;
	va_start(ap, fmt);
	vsnprintf(y->err + n, y->cap - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* The line of a byte offset (reader errors come with an offset only). */
static unsigned kc_line_at(const struct kc_yaml *y, size_t off)
{
	unsigned line = 1;

	for (size_t i = 0; i < off && i < y->len; i++)
		line += y->text[i] == '\n';
	return line;
}

/* True when line (from 1) starts with blanks and dashes among which is a
 * tab: libyaml then says "found character that cannot start any token",
 * which does not tell the reader what is wrong. */
static bool kc_tab_indented(const struct kc_yaml *y, unsigned line)
{
	size_t i = 0;

	for (unsigned l = 1; l < line && i < y->len; i++)
		l += y->text[i] == '\n';
	for (; i < y->len && (y->text[i] == ' ' || y->text[i] == '-' || y->text[i] == '\t'); i++)
		if (y->text[i] == '\t')
			return true;
	return false;
}

static int kc_yaml_syntax_error(struct kc_yaml *y)
{
	const yaml_parser_t *p = &y->parser;
	const char *problem = p->problem ? p->problem : "cannot be parsed";
	unsigned line = (unsigned)p->problem_mark.line + 1;

	if (p->error == YAML_READER_ERROR) {
		if (p->problem_value >= 0)
			return kc_yaml_fail(y, kc_line_at(y, p->problem_offset), "%s (0x%02x)",
					    problem, (unsigned)p->problem_value);
		return kc_yaml_fail(y, kc_line_at(y, p->problem_offset), "%s", problem);
	}
	if (p->error == YAML_SCANNER_ERROR && kc_tab_indented(y, line))
		return kc_yaml_fail(y, line, "tabs are not allowed in indentation");
	if (p->context)
		return kc_yaml_fail(y, line, "%s (%s at line %u)", problem, p->context,
				    (unsigned)p->context_mark.line + 1);
	return kc_yaml_fail(y, line, "%s", problem);
}

/* Anchors and aliases make one node stand in several places (and "billion
 * laughs" documents); tags change what a scalar means. kubeconfigs need
 * neither. */
static bool kc_event_decorated(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return true;
	case YAML_SCALAR_EVENT:
		return ev->data.scalar.anchor || ev->data.scalar.tag;
	case YAML_SEQUENCE_START_EVENT:
		return ev->data.sequence_start.anchor || ev->data.sequence_start.tag;
	case YAML_MAPPING_START_EVENT:
		return ev->data.mapping_start.anchor || ev->data.mapping_start.tag;
	default:
		return false;
	}
}

static struct kc_node *kc_scalar_node(struct kc_yaml *y, const yaml_event_t *ev, unsigned line)
{
	const char *v = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	struct kc_node *nd;

	if (memchr(v, '\0', n)) {
		kc_yaml_fail(y, line, "a value contains a NUL character");
		return NULL;
	}
	nd = kc_node_new(KC_SCALAR, line);
	nd->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	nd->str = x_strndup(v, n);
	return nd;
}

/* A scalar in key position of the mapping on top: kept until its value. */
static int kc_take_key(struct kc_yaml *y, struct kc_node *map, struct kc_node *nd)
{
	unsigned d = y->depth - 1;

	if (nd->type != KC_SCALAR || (nd->plain && !*nd->str)) {
		kc_yaml_fail(y, nd->line, "complex or empty mapping keys are not supported");
		goto fail;
	}
	if (kc_get(map, nd->str)) {
		kc_yaml_fail(y, nd->line, "duplicate key '%s'", nd->str);
		goto fail;
	}
	if (map->n == KC_MAX_ENTRIES) {
		kc_yaml_fail(y, nd->line, "more than %d keys in one mapping", KC_MAX_ENTRIES);
		goto fail;
	}
	y->key[d] = nd->str;
	y->key_line[d] = nd->line;
	nd->str = NULL;
	kc_node_free(nd);
	return 0;
fail:
	kc_node_free(nd);
	return -1;
}

/* Puts a new node where it belongs: the root, a sequence item, a key, or
 * a key's value (which takes the key's line: messages point at the key). */
static int kc_place(struct kc_yaml *y, struct kc_node *nd)
{
	struct kc_node *top;
	unsigned d;

	if (!y->depth) {
		y->root = nd;
		return 0;
	}
	d = y->depth - 1;
	top = y->stack[d];
	if (top->type == KC_SEQ) {
		if (top->n == KC_MAX_ENTRIES) {
			kc_yaml_fail(y, nd->line, "more than %d items in one sequence", KC_MAX_ENTRIES);
			kc_node_free(nd);
			return -1;
		}
		kc_node_add(top, NULL, nd);
		return 0;
	}
	if (!y->key[d])
		return kc_take_key(y, top, nd);
	nd->line = y->key_line[d];
	kc_node_add(top, y->key[d], nd);
	y->key[d] = NULL;
	return 0;
}

static int kc_push(struct kc_yaml *y, enum kc_type type, unsigned line)
{
	struct kc_node *nd = kc_node_new(type, line);
	bool is_key = y->depth && y->stack[y->depth - 1]->type == KC_MAP && !y->key[y->depth - 1];

	if (is_key || y->depth == KC_MAX_DEPTH) {
		kc_node_free(nd);
		return kc_yaml_fail(y, line, "%s", is_key ? "complex or empty mapping keys are not supported"
							  : "nested too deeply");
	}
	if (kc_place(y, nd) != 0)
		return -1;
	y->stack[y->depth] = nd;
	y->key[y->depth] = NULL;
	y->depth++;
	return 0;
}

/* One event; returns 1 at the end of the stream. */
static int kc_yaml_event(struct kc_yaml *y, const yaml_event_t *ev)
{
	unsigned line = (unsigned)ev->start_mark.line + 1;
	struct kc_node *nd;

	if (kc_event_decorated(ev))
		return kc_yaml_fail(y, line, "anchors, aliases and tags are not supported");
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (y->docs++)
			return kc_yaml_fail(y, line, "only one document is supported");
		return 0;
	case YAML_SCALAR_EVENT:
		nd = kc_scalar_node(y, ev, line);
		return nd ? kc_place(y, nd) : -1;
	case YAML_SEQUENCE_START_EVENT:
		return kc_push(y, KC_SEQ, line);
	case YAML_MAPPING_START_EVENT:
		return kc_push(y, KC_MAP, line);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		y->depth--;
		return 0;
	case YAML_STREAM_END_EVENT:
		return 1;
	default:
		return 0;
	}
}

/* libyaml keeps copies of the text (tokens, passwords) in its own
 * buffers: wipe them before they are freed. What its scanner copied while
 * growing a scalar (realloc) is beyond reach. */
static void kc_yaml_wipe_parser(yaml_parser_t *p)
{
	if (p->buffer.start)
		kc_wipe(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
	if (p->raw_buffer.start)
		kc_wipe(p->raw_buffer.start, (size_t)(p->raw_buffer.end - p->raw_buffer.start));
	for (yaml_token_t *t = p->tokens.head; t && t != p->tokens.tail; t++)
		if (t->type == YAML_SCALAR_TOKEN && t->data.scalar.value)
			kc_wipe(t->data.scalar.value, t->data.scalar.length);
}

static void kc_yaml_done(struct kc_yaml *y)
{
	while (y->depth) {
		y->depth--;
		free(y->key[y->depth]);
	}
	if (y->failed) {
		kc_node_free(y->root);
		y->root = NULL;
	}
	kc_yaml_wipe_parser(&y->parser);
	yaml_parser_delete(&y->parser);
}

static struct kc_node *kc_parse_yaml(const char *text, size_t len, const char *path, char *err,
				     size_t cap)
{
	struct kc_yaml y = { .text = text, .len = len, .path = path, .err = err, .cap = cap };
	yaml_event_t ev;
	int r = 0;

	if (!yaml_parser_initialize(&y.parser))
		abort(); /* out of memory, like x_malloc */
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)text, len);
	while (r == 0) {
		if (!yaml_parser_parse(&y.parser, &ev)) {
			kc_yaml_syntax_error(&y);
			break;
		}
		r = kc_yaml_event(&y, &ev);
		if (ev.type == YAML_SCALAR_EVENT)
			kc_wipe(ev.data.scalar.value, ev.data.scalar.length);
		yaml_event_delete(&ev);
	}
	kc_yaml_done(&y);
	if (!y.failed && !y.root)
		y.root = kc_node_new(KC_NULL, 1);
	return y.root;
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
	if (url_base_parse(&out->server, server, strlen(server), uerr, sizeof(uerr)) != 0) {
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
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (len > K8S_KUBECONFIG_MAX_BYTES)
		return kc_fail(&c, "larger than %zu bytes", K8S_KUBECONFIG_MAX_BYTES);
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
	if (url_base_parse(&out->server, url, strlen(url), uerr, sizeof(uerr)) != 0) {
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
	url_base_free(&kc->server);
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
