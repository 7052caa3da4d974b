/* Reading JSON (RFC 8259): a strict validator in front of the jsmn tokenizer,
 * and accessors over the resulting tokens.
 *
 * json_parse accepts exactly one JSON value (surrounding whitespace allowed)
 * and refuses everything RFC 8259 does not allow: trailing commas, bare
 * words, leading zeros, control characters or invalid UTF-8 in strings,
 * unknown escapes, lone surrogate escapes, NUL bytes, trailing garbage. It
 * also refuses objects that repeat a key (compared after unescaping), so a
 * lookup can never disagree with another reader about which occurrence
 * counts. Nesting is limited to JSON_MAX_DEPTH; the work is linear in the
 * input (no recursion).
 *
 * Tokens are numbered in document order; 0 is the root. Members of an object
 * are key tokens (strings) each followed by its value. Every accessor takes
 * a token index and treats a negative one as "absent", so lookups chain:
 * json_get(d, json_get(d, 0, "status"), "user"). The document borrows the
 * text: keep it alive and unchanged until json_doc_free. */
#ifndef OCIGATE_UTIL_JSON_H
#define OCIGATE_UTIL_JSON_H

#include <sys/types.h>

#include "util/common.h"

/* Deeper nesting is refused (no Kubernetes object comes close). */
#define JSON_MAX_DEPTH 128
/* Longer texts are refused (token offsets are int). */
#define JSON_MAX_TEXT ((size_t)1 << 30)

enum json_type {
	JSON_NONE, /* what accessors report for an absent token */
	JSON_OBJECT,
	JSON_ARRAY,
	JSON_STRING,
	JSON_NUMBER,
	JSON_TRUE,
	JSON_FALSE,
	JSON_NULL,
};

struct json_tok; /* private to util/json.c */

struct json_doc {
	const char *text;
	size_t len;
	struct json_tok *toks;
	int n;
};

/* Parses text (no NUL terminator needed) into *d. Returns -1 on invalid or
 * truncated JSON, duplicate keys, nesting deeper than JSON_MAX_DEPTH, or
 * more than max_tokens tokens (every string, number, literal, array and
 * object, keys included, is one token); err (if not NULL) then gets a
 * message with the byte offset, and *d is left empty (json_doc_free on it is
 * harmless). */
OG_WARN_UNUSED int json_parse(struct json_doc *d, const char *text, size_t len,
			      size_t max_tokens, char *err, size_t err_cap);
void json_doc_free(struct json_doc *d);
/* Length of the well-formed UTF-8 sequence at p (at most n bytes, n > 0),
 * 0 if it is not one (overlong forms, surrogates, beyond U+10FFFF, truncated). */
size_t json_utf8_len(const unsigned char *p, size_t n);

enum json_type json_type(const struct json_doc *d, int tok);
bool json_is_object(const struct json_doc *d, int tok);
bool json_is_array(const struct json_doc *d, int tok);
bool json_is_string(const struct json_doc *d, int tok);
bool json_is_null(const struct json_doc *d, int tok);
/* The name of a token's type for messages: "object", "string", ...,
 * "nothing" for an absent token. */
const char *json_type_name(const struct json_doc *d, int tok);
/* The token's raw text: strings without their quotes and still escaped. */
struct og_str json_raw(const struct json_doc *d, int tok);
/* Byte offset of the token in the text (for messages), 0 if absent. */
size_t json_offset(const struct json_doc *d, int tok);

/* The value of key in object obj, or -1 when obj is not an object or has no
 * such key. */
int json_get(const struct json_doc *d, int obj, const char *key);
/* json_get along a dotted path ("status.user.username"); keys containing a
 * '.' cannot be reached this way, use json_get. */
int json_path(const struct json_doc *d, int obj, const char *dotted);

/* Number of items of an array or members of an object; -1 for other types. */
int json_len(const struct json_doc *d, int tok);
/* Number of items of an array, -1 if tok is not an array. */
int json_array_len(const struct json_doc *d, int arr);
/* First item of an array, -1 if empty or not an array. */
int json_array_first(const struct json_doc *d, int arr);
/* The next item of the same array after tok (whose subtree is skipped), or
 * -1 after the last one. */
int json_next(const struct json_doc *d, int tok);
/* Object members: the first key token, and the key after key (skipping its
 * value); -1 at the end or when obj is not an object. The value of a key
 * is json_value(d, key). */
int json_object_first(const struct json_doc *d, int obj);
int json_object_next(const struct json_doc *d, int key);
int json_value(const struct json_doc *d, int key);

/* The unescaped string as a new NUL-terminated string, or NULL when tok is
 * not a string or holds "\u0000" (which a C string cannot carry). */
char *json_strdup(const struct json_doc *d, int tok);
/* Unescapes a string token into out (capacity cap, NUL-terminated when it
 * fits). Returns the unescaped length; -1 if tok is not a string, holds
 * "\u0000", or the result plus its NUL does not fit. */
ssize_t json_string(const struct json_doc *d, int tok, char *out, size_t cap);
/* Length of the unescaped string, -1 if tok is not a string. */
ssize_t json_string_len(const struct json_doc *d, int tok);
/* True when tok is a string whose unescaped value equals lit. Allocates
 * nothing. */
bool json_str_eq(const struct json_doc *d, int tok, const char *lit);

/* An integer written without fraction or exponent that fits int64_t. */
bool json_int64(const struct json_doc *d, int tok, int64_t *out);
/* true or false (not "true", not 1). */
bool json_bool(const struct json_doc *d, int tok, bool *out);

#endif
