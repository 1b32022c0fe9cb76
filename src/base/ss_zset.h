/*
 * ss_zset.h — values, rows, schemas and Z-sets (DBSP-style delta batches).
 *
 * A Z-set is a bag of rows with integer weights: +1 insert, -1 delete, and an
 * update is -old +new. Rows are immutable once added to a Z-set; a Z-set owns
 * the rows it holds and frees them in ss_zset_destroy/ss_zset_clear.
 * Consolidation sorts by the canonical row order, sums weights of equal rows
 * and drops rows whose weight becomes zero.
 */
#ifndef SS_ZSET_H
#define SS_ZSET_H

#include "ss_base.h"

#include <stdint.h>

typedef enum ss_vtype {
    SS_NULL = 0, /* SQL NULL */
    SS_INT,      /* int64 (BOOLEAN is stored as INT 0/1) */
    SS_REAL,     /* double */
    SS_TEXT,     /* UTF-8 bytes, owned by the row; always NUL-terminated */
    SS_NUM,      /* NUMERIC: canonical decimal text in u.str ("-12.50", ss_decimal.h), owned like TEXT */
    SS_JSON,     /* JSON: compact JSON text in u.str, owned like TEXT */
} ss_vtype_t;

/* 1 for the types whose payload is u.str (owned by the containing row). */
static inline int ss_vtype_has_str(ss_vtype_t t) { return t == SS_TEXT || t == SS_NUM || t == SS_JSON; }

typedef struct ss_value {
    ss_vtype_t t;
    union {
        int64_t i;
        double r;
        struct {
            char *s;   /* owned by the containing row (or by the caller for temporaries) */
            size_t n;  /* byte length, not counting the NUL */
        } str;
    } u;
} ss_value_t;

/* A row: n values in one allocation (text is malloc'd separately and owned). */
typedef struct ss_row {
    int n;
    ss_value_t v[];
} ss_row_t;

/* Column types as declared in SQL (TEXT, INT/INTEGER/BIGINT, REAL/DOUBLE/FLOAT, BOOLEAN). */
typedef enum ss_coltype {
    SS_COL_TEXT = 0,
    SS_COL_INT,
    SS_COL_REAL,
    SS_COL_BOOL,
    SS_COL_ANY, /* expression result of unknown type */
    SS_COL_NUMERIC, /* exact decimal (NUMERIC/DECIMAL[(p,s)]): SS_NUM values */
    SS_COL_JSON,    /* JSON document: SS_JSON values */
} ss_coltype_t;

typedef struct ss_schema {
    int n;
    char **names;          /* owned; column names */
    ss_coltype_t *types;   /* owned */
    int *is_key;           /* owned; 1 for KEY columns */
    int *typmod;           /* owned; NUMERIC(p,s) as ss_typmod_make(p, s), else -1 */
} ss_schema_t;

/* ---- values ---- */
ss_value_t ss_val_null(void);
ss_value_t ss_val_int(int64_t i);
ss_value_t ss_val_real(double r);
/* Borrowed text: the value points at s (no copy). Copy into a row with ss_row_set. */
ss_value_t ss_val_text_ref(const char *s, size_t n);
int ss_val_cmp(const ss_value_t *a, const ss_value_t *b); /* NULL < numbers < text; ints and reals compare numerically */
int ss_val_eq(const ss_value_t *a, const ss_value_t *b);
/* Numeric order of two numbers (INT, REAL, NUMERIC) without ss_val_cmp's tie-breaks: 1.0 = 1.00 = 1. */
int ss_val_cmp_numeric(const ss_value_t *a, const ss_value_t *b);
uint64_t ss_val_hash(const ss_value_t *v, uint64_t seed);
int ss_val_truthy(const ss_value_t *v);   /* SQL truth: non-NULL and non-zero */
/* Appends a readable form (text unquoted) or a JSON form. */
int ss_val_to_text(const ss_value_t *v, ss_buf_t *out);
int ss_val_to_json(const ss_value_t *v, ss_buf_t *out);
/* Coerces an input value (a JSON field, an INSERT value) to the declared column type: the one
 * input rule of every path (docs/SQL.md "Input values"). TEXT takes text (no NUL character),
 * or a number's decimal form; INT takes integers, integral numbers in the 64-bit range and
 * text in integer syntax (blanks around allowed, as PostgreSQL); REAL takes finite numbers and
 * text in decimal syntax (no NaN, infinities or hex); BOOLEAN takes 0/1 and true/false, t/f,
 * yes/no, on/off, 1/0 text. Anything else is SS_ERR_INVALID with a message saying why.
 * Text results are borrowed from v or written to tmp (caller frees tmp). */
int ss_val_coerce(const ss_value_t *v, ss_coltype_t t, ss_value_t *out, char **tmp,
                  char *err, size_t errsz);
/* The same with a typmod (NUMERIC(p,s): rounded to s, overflow is an error; -1 = none). */
int ss_val_coerce_tm(const ss_value_t *v, ss_coltype_t t, int typmod, ss_value_t *out, char **tmp,
                     char *err, size_t errsz);
/* NUMERIC and JSON values whose text is malloc'd s[0..n) (taken by the value's user). */
ss_value_t ss_val_num_ref(const char *s, size_t n);
ss_value_t ss_val_json_ref(const char *s, size_t n);

/* Parses the decimal number at the start of s[0..n): blanks, an optional sign, digits with an
 * optional fraction and exponent (never hex, inf or nan). Returns the offset after it, or 0 (and
 * INT 0) when s starts with no number. An integer in the 64-bit range is INT, anything else REAL
 * (1e999 is infinity). *is_int_syntax (may be NULL) = 1 when it had no fraction or exponent. */
size_t ss_num_parse(const char *s, size_t n, ss_value_t *out, int *is_int_syntax);
/* The shortest decimal form of r that reads back as r ("0.1", "1e+20"); returns its length. */
int ss_real_text(double r, char *buf, size_t n);

/* ---- rows ---- */
ss_row_t *ss_row_new(int n);                      /* all NULL; NULL on OOM */
void ss_row_free(ss_row_t *r);                    /* NULL-safe; frees owned text */
/* Sets column i to a copy of v (text is duplicated). SS_ERR_NOMEM on failure. */
int ss_row_set(ss_row_t *r, int i, const ss_value_t *v);
ss_row_t *ss_row_copy(const ss_row_t *r);
int ss_row_cmp(const ss_row_t *a, const ss_row_t *b);  /* total order: by arity, then columns */
uint64_t ss_row_hash(const ss_row_t *r);
/* Hash / compare of the projection on cols[0..ncols). */
uint64_t ss_row_hash_cols(const ss_row_t *r, const int *cols, int ncols);
int ss_row_cmp_cols(const ss_row_t *a, const int *acols, const ss_row_t *b, const int *bcols, int ncols);
/* Canonical binary encoding (stable: used as SQLite keys and in hashes). */
int ss_row_encode(const ss_row_t *r, ss_buf_t *out);
int ss_row_decode(const void *p, size_t n, ss_row_t **out); /* SS_ERR_INVALID if malformed */
/* JSON object {"col": value, ...} using the schema's names. */
int ss_row_to_json(const ss_row_t *r, const ss_schema_t *s, ss_buf_t *out);

/* ---- schemas ---- */
ss_schema_t *ss_schema_new(int n);                /* names NULL, types TEXT, no keys */
void ss_schema_free(ss_schema_t *s);
ss_schema_t *ss_schema_copy(const ss_schema_t *s);
int ss_schema_set(ss_schema_t *s, int i, const char *name, ss_coltype_t t, int is_key);
void ss_schema_set_typmod(ss_schema_t *s, int i, int typmod);
int ss_schema_find(const ss_schema_t *s, const char *name); /* case-insensitive; -1 if absent */
/* Key column indices into out (at most max); returns count (0 = no key: the whole row is the key). */
int ss_schema_keys(const ss_schema_t *s, int *out, int max);
const char *ss_coltype_name(ss_coltype_t t);

/* ---- Z-sets ---- */
typedef struct ss_zentry {
    ss_row_t *row; /* owned by the Z-set */
    int64_t w;     /* weight; never 0 after consolidation */
} ss_zentry_t;

typedef struct ss_zset {
    ss_zentry_t *e;
    size_t n, cap;
    int consolidated; /* 1 when sorted by row with unique rows and no zero weights */
} ss_zset_t;

void ss_zset_init(ss_zset_t *z);
void ss_zset_clear(ss_zset_t *z);   /* frees rows, keeps capacity */
void ss_zset_destroy(ss_zset_t *z); /* frees everything; z can be re-inited */
/* Adds (row, w). Takes ownership of row, also on failure. w == 0 frees row. */
int ss_zset_add(ss_zset_t *z, ss_row_t *row, int64_t w);
/* Adds a copy of row. */
int ss_zset_add_copy(ss_zset_t *z, const ss_row_t *row, int64_t w);
/* Appends copies of all of src's entries, weights multiplied by mul. */
int ss_zset_extend(ss_zset_t *z, const ss_zset_t *src, int64_t mul);
/* Sort, merge equal rows, drop zero weights. */
int ss_zset_consolidate(ss_zset_t *z);
/* 1 if the consolidated forms are equal (does not modify a or b). */
int ss_zset_equal(const ss_zset_t *a, const ss_zset_t *b);
/* Debug print: one "w\trow-json" per line. */
int ss_zset_dump(const ss_zset_t *z, const ss_schema_t *s, ss_buf_t *out);

#endif
