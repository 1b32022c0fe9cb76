/*
 * ss_jschema.h — the subset of JSON Schema that structured output (SEM_EXTRACT,
 * SEM_MAP(..., schema => ...)) understands, as a tree: parsed from a JSON Schema
 * document, or built from a column list 'name TYPE, ...'; rendered back as the
 * canonical JSON Schema text a request carries (ss_infer_req_t.json_schema), which
 * the in-process engine compiles into a token-level grammar (gpu/grammar.c) and an
 * OpenAI-compatible server gets as response_format {type: json_schema}.
 *
 * Supported: "type" (one of object, array, string, integer, number, boolean, null,
 * or a list of them where their JSON forms start differently: e.g. ["string","null"];
 * integer together with number means number), "properties" (emitted in the order
 * written, every one of them), "required", "additionalProperties": false, "items",
 * "enum" / "const" of strings; "description", "title", "$schema" are ignored. Anything
 * else ("pattern", "$ref", "anyOf", ...) is an error naming the keyword and where it is.
 *
 * Ownership: a tree owns all its nodes and strings; ss_jschema_free frees it.
 */
#ifndef SS_JSCHEMA_H
#define SS_JSCHEMA_H

#include "ss_base.h"

/* JSON types a node allows (bit set). */
enum {
    SS_JS_OBJECT = 1,
    SS_JS_ARRAY = 2,
    SS_JS_STRING = 4,
    SS_JS_INTEGER = 8,
    SS_JS_NUMBER = 16,
    SS_JS_BOOLEAN = 32,
    SS_JS_NULL = 64,
};

typedef struct ss_jschema ss_jschema_t;
struct ss_jschema {
    unsigned types;          /* SS_JS_* bits; never 0 */
    int nprops;              /* OBJECT: properties in order */
    char **names;            /* owned: property names (UTF-8) */
    ss_jschema_t **props;    /* owned */
    ss_jschema_t *items;     /* ARRAY: owned; NULL = no items allowed but [] */
    int nenum;               /* STRING restricted to these values (0 = any string) */
    char **enums;            /* owned */
};

/* Parses a JSON Schema document. SS_ERR_INVALID with "where: what" in err
 * (where is a JSON pointer such as /properties/year). */
int ss_jschema_parse(const char *text, size_t n, ss_jschema_t **out, char *err, size_t errsz);
void ss_jschema_free(ss_jschema_t *s); /* NULL-safe */

/* A column of a structured-output schema written as 'name TYPE, ...'. */
typedef struct ss_jscol {
    char *name;   /* owned */
    int type;     /* ss_coltype_t: SS_COL_TEXT, INT, REAL, BOOL or NUMERIC */
    int off;      /* byte offset of the column in the spec (for error positions) */
} ss_jscol_t;

/* Parses 'name TYPE, name TYPE, ...' (types: TEXT/VARCHAR/STRING/CHAR, INT/INTEGER/BIGINT/
 * SMALLINT, REAL/DOUBLE [PRECISION]/FLOAT, NUMERIC/DECIMAL, BOOLEAN/BOOL, each with an optional
 * "(...)" modifier that is ignored; names as SQL identifiers or "quoted", distinct ignoring case).
 * On error *erroff is the byte offset of the problem. Caller frees with ss_jscols_free. */
int ss_jscols_parse(const char *spec, ss_jscol_t **out, int *n, int *erroff, char *err, size_t errsz);
void ss_jscols_free(ss_jscol_t *c, int n);
/* The object schema of those columns: every property required and nullable (a value the
 * model cannot find is null). */
int ss_jschema_from_cols(const ss_jscol_t *c, int n, ss_jschema_t **out);

/* Canonical JSON Schema text of s (compact; objects with "required" listing every
 * property and "additionalProperties": false, as OpenAI's strict mode wants). */
int ss_jschema_write(const ss_jschema_t *s, ss_buf_t *out);

#endif
