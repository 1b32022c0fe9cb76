/*
 * expr_int.h — internals shared by the expression evaluator's files:
 * runtime/expr.c (ss_expr_eval: operators, CASE, IN, comparisons),
 * expr_func.c (scalar functions), expr_num.c (NUMERIC arithmetic and CAST),
 * expr_regex.c (regular expressions through PCRE2). Not used elsewhere.
 */
#ifndef SS_EXPR_INT_H
#define SS_EXPR_INT_H

#include "ss_plan.h"

#define EMSG(code, ...) ss_seterr(err, errsz, code, __VA_ARGS__)

/* A run-time error of e on the current row: "line:col: message" (SS_ERR_INVALID). */
int ss__x_fail(const ss_expr_t *e, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Text form of v: borrowed for text-like values, else malloc'd into *owned. */
int ss__x_text(const ss_value_t *v, const char **s, size_t *n, char **owned);
void ss__x_real_text(double r, char *buf, size_t n);
int ss__x_text_is_num(const ss_value_t *v, ss_value_t *out);
ss_value_t ss__x_num(const ss_value_t *v);      /* text read as its numeric prefix (SQLite) */
double ss__x_numd(const ss_value_t *v);         /* INT, REAL or NUMERIC as a double */
int ss__x_cmp(const ss_value_t *a, const ss_value_t *b);
/* LIKE with an escape character (esc < 0: none) and optional case folding. */
int ss__x_like_esc(const char *p, size_t pn, const char *s, size_t sn, int esc, int fold);
int ss__x_child(const ss_expr_t *e, int i, const ss_row_t *row, ss_value_t *v, char **co, char *err,
                size_t errsz);
/* Sets *out to the malloc'd text s (taken; NULL means out of memory). */
int ss__x_take(ss_value_t *out, char **owned, char *s, size_t n);
int ss__x_take_buf(ss_value_t *out, char **owned, ss_buf_t *b, ss_vtype_t t);
int ss__x_func(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned, char *err, size_t errsz);

/* ---- expr_num.c ---- */
/* a op b when either is NUMERIC (the other INT or NUMERIC): exact, PostgreSQL's scales. */
int ss__x_num_arith(const ss_expr_t *e, ss_ast_op_t op, const ss_value_t *a, const ss_value_t *b,
                    ss_value_t *out, char **owned, char *err, size_t errsz);
/* CAST(v AS e->type [typmod]). */
int ss__x_cast(const ss_expr_t *e, const ss_value_t *v, ss_value_t *out, char **owned, char *err, size_t errsz);
/* Numeric functions on NUMERIC arguments (ABS, SIGN, ROUND, TRUNC, FLOOR, CEIL, MOD). */
int ss__x_num_func(const ss_expr_t *e, const char *f, const ss_value_t *a, int nargs, ss_value_t *out,
                   char **owned, char *err, size_t errsz);

/* ---- expr_regex.c ---- */
/* REGEXP_REPLACE, REGEXP_MATCH, REGEXP_LIKE, REGEXP_SUBSTR (PostgreSQL flavour, PCRE2). */
int ss__x_regex(const ss_expr_t *e, const char *f, const ss_value_t *a, int nargs, ss_value_t *out,
                char **owned, char *err, size_t errsz);

/* ---- expr_time.c ---- */
/* a op b when an operand is a TIMESTAMP, TIMESTAMPTZ, DATE or INTERVAL (typed by the planner). */
int ss__x_time_arith(const ss_expr_t *e, ss_ast_op_t op, const ss_value_t *a, const ss_value_t *b,
                     ss_value_t *out, char *err, size_t errsz);
int ss__x_time_neg(const ss_expr_t *e, const ss_value_t *a, ss_value_t *out, char *err, size_t errsz);
/* CAST(v AS e->type) for the time types. */
int ss__x_time_cast(const ss_expr_t *e, const ss_value_t *v, ss_value_t *out, char *err, size_t errsz);
/* NOW, DATE_TRUNC, EXTRACT, TO_TIMESTAMP, ... (f upper-case; ss__x_is_time_func(f) first). */
int ss__x_is_time_func(const char *f);
int ss__x_time_func(const ss_expr_t *e, const char *f, const ss_row_t *row, ss_value_t *out, char **owned,
                    char *err, size_t errsz);

#endif
