/*
 * ss_json.h — a small strict JSON (RFC 8259) parser into a read-only DOM, and
 * helpers to look values up and write them back out.
 *
 * A parsed document owns every node and string in one arena, freed at once by
 * ss_json_free. Strings are decoded (escapes, \uXXXX with surrogate pairs) to
 * UTF-8, NUL-terminated, and may contain NUL bytes (use .n). Input must be
 * valid UTF-8; errors name the byte offset where parsing stopped. Nesting is
 * limited (default SS_JSON_MAX_DEPTH) so hostile input cannot exhaust the stack.
 * Numbers without fraction or exponent that fit in int64 are SS_JSON_INT,
 * others SS_JSON_REAL; non-finite numbers (1e999) are rejected.
 */
#ifndef SS_JSON_H
#define SS_JSON_H

#include "ss_base.h"

#include <stddef.h>
#include <stdint.h>

#define SS_JSON_MAX_DEPTH 256

typedef enum ss_json_type {
    SS_JSON_NULL = 0,
    SS_JSON_BOOL,
    SS_JSON_INT,
    SS_JSON_REAL,
    SS_JSON_STRING,
    SS_JSON_ARRAY,
    SS_JSON_OBJECT,
} ss_json_type_t;

typedef struct ss_json ss_json_t;
typedef struct ss_json_member ss_json_member_t;

struct ss_json {
    ss_json_type_t t;
    union {
        int b;       /* BOOL: 0 or 1 */
        int64_t i;   /* INT */
        double r;    /* REAL */
        struct {
            const char *s; /* NUL-terminated UTF-8, owned by the document */
            size_t n;      /* byte length */
        } str;
        struct {
            const ss_json_t *items; /* n values, owned by the document */
            size_t n;
        } arr;
        struct {
            const ss_json_member_t *m; /* n members in input order */
            size_t n;
        } obj;
    } u;
};

struct ss_json_member {
    const char *key; /* NUL-terminated UTF-8, owned by the document */
    size_t klen;
    ss_json_t val;
};

typedef struct ss_json_doc ss_json_doc_t;

/* Parses text[0..len) (need not be NUL-terminated). On error returns
 * SS_ERR_INVALID (or SS_ERR_NOMEM), sets *out = NULL, writes
 * "byte N: what" into err and, if errpos is non-NULL, N into *errpos.
 * max_depth <= 0 means SS_JSON_MAX_DEPTH. */
int ss_json_parse(const char *text, size_t len, int max_depth, ss_json_doc_t **out,
                  size_t *errpos, char *err, size_t errsz);
const ss_json_t *ss_json_root(const ss_json_doc_t *d);
/* A flat object {"key": scalar, ...} read without a document: its members in input
 * order into m[0..*n), keys and string values copied NUL-terminated into buf (bufsz >= len
 * always suffices), values exactly as ss_json_parse gives them. Returns SS_ERR_UNSUPPORTED,
 * not an error message, for anything else: nested objects or arrays, strings with escapes,
 * control or non-ASCII bytes, more than cap members, or invalid JSON; the caller then parses
 * the text with ss_json_parse (which says what is wrong with it). */
int ss_json_scan_flat(const char *text, size_t len, ss_json_member_t *m, size_t cap, size_t *n, char *buf,
                      size_t bufsz);
void ss_json_free(ss_json_doc_t *d); /* NULL-safe */

/* Object member by exact key (the last one when keys repeat); NULL if v is
 * not an object or has no such key. _ci compares ASCII case-insensitively. */
const ss_json_t *ss_json_get(const ss_json_t *v, const char *key);
const ss_json_t *ss_json_get_ci(const ss_json_t *v, const char *key);
/* String contents, or NULL if v is NULL or not a string. */
const char *ss_json_str(const ss_json_t *v);
const char *ss_json_type_name(ss_json_type_t t);

/* Appends v as compact JSON (reals with %.17g; non-finite never occur). */
int ss_json_write(const ss_json_t *v, ss_buf_t *out);
/* Appends s[0..n) as a JSON string literal, replacing invalid UTF-8 bytes with
 * U+FFFD so that the output is always valid JSON (ss_buf_put_json_str copies
 * bytes as they are). */
int ss_json_put_str_utf8(ss_buf_t *out, const char *s, size_t n);
/* 1 if s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int ss_json_utf8_valid(const char *s, size_t n);

/* ---- JSON as text (the SQL JSON type, src/base/jsontext.c) ----
 * A JSON value of the SQL JSON type is its compact text: numbers keep their
 * digits as written, strings their escapes. The helpers below work on such
 * text (valid JSON, as ss_jtext_compact produced it) without building a DOM. */

/* Validates s[0..n) as one JSON document and appends it without insignificant
 * blanks. SS_ERR_INVALID "invalid input syntax for type json: ..." otherwise. */
int ss_jtext_compact(const char *s, size_t n, ss_buf_t *out, char *err, size_t errsz);
/* The type of the value at s: "object", "array", "string", "number", "boolean", "null". */
const char *ss_jtext_typeof(const char *s, size_t n);
/* Object member `key` (the last one when keys repeat) / array element idx (negative counts
 * from the end): 1 and *vs, *vn = the member's text, 0 when absent or s is not an object/array. */
int ss_jtext_get_key(const char *s, size_t n, const char *key, size_t klen, const char **vs, size_t *vn);
int ss_jtext_get_index(const char *s, size_t n, int64_t idx, const char **vs, size_t *vn);
/* Elements of an array, or -1 when s is not one. */
int64_t ss_jtext_array_length(const char *s, size_t n);
/* The text of a value as ->> gives it: a string unescaped, other values as written; *is_null
 * for JSON null. Appends to out. */
int ss_jtext_to_text(const char *s, size_t n, ss_buf_t *out, int *is_null);

#endif
