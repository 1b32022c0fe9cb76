/*
 * gen.c — the differential tester's generators (dt.h): values, schemas, delta histories, and
 * the two extension tables, dt_exprgens (typed expressions) and dt_shapes (view queries).
 * Everything is drawn from a seeded RNG, so a case number reproduces its case exactly.
 * Generated SQL stays inside what docs/SQL.md lists and inside the semantics semstream shares
 * with its oracle (SQLite): expressions are typed (no TEXT compared with INT), ORDER BY ...
 * LIMIT orders by every output column (ties between different rows cannot be told apart),
 * REALs are small multiples of 1/8 so that sums are exact in any order.
 */
#include "dt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t dt_next(dt_rng_t *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

int dt_int(dt_rng_t *r, int n) { return n <= 1 ? 0 : (int)(dt_next(r) % (uint64_t)n); }
int dt_pct(dt_rng_t *r, int p) { return dt_int(r, 100) < p; }

const char *dt_type_sql(dt_type_t t)
{
    static const char *const n[] = {"INT", "REAL", "TEXT", "BOOLEAN", "NUMERIC", "JSON", "TEXT"};
    return t <= DT_ARR ? n[t] : "?";
}

/* ---- values ---- */

static const char *const TEXTS[] = {"a", "b", "A", "ab", "Ab", "", "x y", "it's", "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
                                    "Z\xc3\xbcrich", "a_b", "50%", "\xf0\x9f\x99\x82", "aa", "abc", " a ", "B"};
static const char *const KEYS[] = {"k0", "k1", "k2", "k3", "k4", "k5", "\xce\xba" "6", "K7", "k8", "k9"};
#define NTEXTS ((int)(sizeof TEXTS / sizeof *TEXTS))
/* NUMERIC column values: canonical decimals (ss_decimal.h), some beyond a double's 15 digits */
static const char *const NUMS[] = {"0", "1", "-1", "0.1", "0.2", "1.5", "-2.25", "10", "3.125", "-0.5",
                                   "12345678.9", "0.333", "99.99", "-7", "123456789012.5"};
/* JSON column values: compact documents with keys n (integer), s (text), c (an array, never JSON
 * null: json_array_length of a scalar is an error), d (an object) */
static const char *const JSONS[] = {"{\"n\":1,\"s\":\"a\",\"c\":[1,2,3],\"d\":{\"e\":\"x\"}}",
                                    "{\"n\":-4,\"s\":\"\xc3\xa9t\xc3\xa9\",\"c\":[]}",
                                    "{\"n\":null,\"s\":null,\"d\":{\"e\":null}}",
                                    "{\"s\":\"b c\",\"c\":[\"x\",null,{\"k\":2}],\"d\":{}}",
                                    "{\"n\":7,\"c\":[[1],[2,3]],\"d\":{\"e\":[1,2]}}",
                                    "{}",
                                    "{\"n\":0,\"s\":\"\xe6\x97\xa5\",\"d\":{\"e\":\"\xf0\x9f\x99\x82\"}}",
                                    "{\"n\":12,\"s\":\"it's\",\"c\":[true,false]}"};

static ss_value_t gen_value(dt_rng_t *r, dt_type_t t, int nullable)
{
    if (nullable && dt_pct(r, 10))
        return ss_val_null();
    switch (t) {
    case DT_INT:
        if (dt_pct(r, 80))
            return ss_val_int(dt_int(r, 16) - 3);
        if (dt_pct(r, 90))
            return ss_val_int(dt_int(r, 2001) - 1000);
        /* large, but a product of four stays inside 64 bits (overflow is an error, as in PostgreSQL) */
        return ss_val_int(dt_int(r, 20001) - 10000);
    case DT_REAL:
        return ss_val_real((double)(dt_int(r, 801) - 400) / 8.0);
    case DT_TEXT: {
        const char *s = TEXTS[dt_int(r, NTEXTS)];
        return ss_val_text_ref(s, strlen(s));
    }
    case DT_BOOL:
        return ss_val_int(dt_int(r, 2));
    case DT_NUM: {
        const char *s = NUMS[dt_int(r, (int)(sizeof NUMS / sizeof *NUMS))];
        return ss_val_num_ref(s, strlen(s));
    }
    case DT_JSON: {
        const char *s = JSONS[dt_int(r, (int)(sizeof JSONS / sizeof *JSONS))];
        return ss_val_json_ref(s, strlen(s));
    }
    default:
        return ss_val_null();
    }
}

static ss_value_t gen_key(dt_rng_t *r, dt_type_t t)
{
    if (t == DT_TEXT) {
        const char *s = KEYS[dt_int(r, (int)(sizeof KEYS / sizeof *KEYS))];
        return ss_val_text_ref(s, strlen(s));
    }
    return ss_val_int(dt_int(r, 14));
}

void dt_literal(const ss_value_t *v, dt_type_t t, ss_buf_t *out)
{
    switch (v->t) {
    case SS_NULL: ss_buf_puts(out, "NULL"); return;
    case SS_INT:
        if (t == DT_BOOL)
            ss_buf_puts(out, v->u.i ? "TRUE" : "FALSE");
        else if (t == DT_REAL)
            ss_buf_printf(out, "%lld.0", (long long)v->u.i);
        else
            ss_buf_printf(out, "%lld", (long long)v->u.i);
        return;
    case SS_REAL: {
        char b[64];
        snprintf(b, sizeof b, "%.17g", v->u.r);
        if (!strpbrk(b, ".e"))
            strcat(b, ".0");
        ss_buf_puts(out, b);
        return;
    }
    case SS_NUM: /* its digits */
        ss_buf_append(out, v->u.str.s, v->u.str.n);
        return;
    case SS_JSON:
    case SS_TEXT:
        ss_buf_putc(out, '\'');
        for (size_t i = 0; i < v->u.str.n; i++) {
            if (v->u.str.s[i] == '\'')
                ss_buf_putc(out, '\'');
            ss_buf_putc(out, v->u.str.s[i]);
        }
        ss_buf_putc(out, '\'');
        return;
    }
}

/* ---- expressions ---- */

static void lit(dt_gen_t *g, dt_type_t t, ss_buf_t *out)
{
    if (t == DT_NUM || t == DT_JSON) { /* a typed literal: a bare 1.5 is NUMERIC in PostgreSQL only */
        ss_value_t v = gen_value(g->rng, t, 0);
        const char *tn = t == DT_NUM ? "NUMERIC" : "JSON";
        int cast = dt_pct(g->rng, 50);
        ss_buf_puts(out, cast ? "CAST(" : "(");
        dt_literal(&v, t, out);
        ss_buf_printf(out, cast ? " AS %s)" : ")::%s", tn);
        return;
    }
    ss_value_t v = gen_value(g->rng, t, 0);
    if (t == DT_INT && dt_pct(g->rng, 70))
        v = ss_val_int(dt_int(g->rng, 8) - 2);
    dt_literal(&v, t, out);
}

static dt_type_t cmp_type(dt_gen_t *g);

/* A column (or, outside aggregates of a grouped query, a GROUP BY expression) of type t. */
static int g_column(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)depth;
    const dt_col_t *cand[24];
    int n = 0;
    int from_group = g->grouped && !g->in_agg;
    const dt_col_t *src = from_group ? g->group : g->cols;
    int nsrc = from_group ? g->ngroup : g->ncols;
    for (int i = 0; i < nsrc; i++)
        if (src[i].type == t || (t == DT_REAL && src[i].type == DT_INT && dt_pct(g->rng, 20)))
            cand[n++] = &src[i];
    if (!n)
        return 0;
    const dt_col_t *c = cand[dt_int(g->rng, n)];
    ss_buf_printf(out, from_group && strpbrk(c->sql, " (") ? "(%s)" : "%s", c->sql);
    return 1;
}

static int g_literal(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)depth;
    if (dt_pct(g->rng, 4)) {
        ss_buf_puts(out, "NULL");
        return 1;
    }
    lit(g, t, out);
    return 1;
}

/* + - * / and % (INT only). A divisor is wrapped in NULLIF(d, 0): division by zero is an error in
 * semstream (as in PostgreSQL) and NULL in SQLite, NULL in both this way. */
static int g_arith(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    static const char *const ops[] = {" + ", " - ", " * ", " / ", " % "};
    int op = dt_int(g->rng, t == DT_INT ? 5 : 4);
    ss_buf_putc(out, '(');
    dt_expr(g, t, depth - 1, out);
    ss_buf_puts(out, ops[op]);
    if (op >= 3)
        ss_buf_puts(out, "NULLIF(");
    dt_expr(g, t == DT_REAL && op < 3 && dt_pct(g->rng, 30) ? DT_INT : t, depth - 1, out);
    if (op >= 3)
        ss_buf_puts(out, ", 0)");
    ss_buf_putc(out, ')');
    return 1;
}

static int g_neg(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    ss_buf_puts(out, dt_pct(g->rng, 80) ? "(- " : "(+ ");
    dt_expr(g, t, depth - 1, out);
    ss_buf_putc(out, ')');
    return 1;
}

static int g_fn1(dt_gen_t *g, const char *fn, dt_type_t at, int depth, ss_buf_t *out)
{
    ss_buf_printf(out, "%s(", fn);
    dt_expr(g, at, depth - 1, out);
    ss_buf_putc(out, ')');
    return 1;
}

static int g_abs(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out) { return g_fn1(g, "ABS", t, depth, out); }

/* ROUND of a REAL (PostgreSQL: NUMERIC only, g_mathfn; its round(double) rounds ties to even) */
static int g_round(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    if (g->pg)
        return 0;
    ss_buf_puts(out, "ROUND(");
    dt_expr(g, DT_REAL, depth - 1, out);
    if (dt_pct(g->rng, 70))
        ss_buf_printf(out, ", %d", dt_int(g->rng, 3));
    ss_buf_putc(out, ')');
    return 1;
}

static int g_length(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    return g_fn1(g, "LENGTH", DT_TEXT, depth, out);
}

static int g_coalesce(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    static const char *const fns[] = {"COALESCE", "NULLIF", "IFNULL"}; /* PostgreSQL has no IFNULL */
    ss_buf_printf(out, "%s(", fns[dt_int(g->rng, g->pg ? 2 : 3)]);
    dt_expr(g, t, depth - 1, out);
    ss_buf_puts(out, ", ");
    dt_expr(g, t, depth - 1, out);
    ss_buf_putc(out, ')');
    return 1;
}

static int g_case(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    return g_fn1(g, dt_pct(g->rng, 50) ? "LOWER" : "UPPER", DT_TEXT, depth, out);
}

/* SUBSTR/SUBSTRING(s, start [, count]): semstream follows PostgreSQL (a start before 1 counts
 * positions before the string, a negative count is an error); SQLite counts a negative start
 * from the end, so its views start at 0 or later. */
static int g_substr(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    ss_buf_puts(out, dt_pct(g->rng, 50) ? "SUBSTR(" : "SUBSTRING(");
    dt_expr(g, DT_TEXT, depth - 1, out);
    ss_buf_printf(out, ", %d", g->pg ? dt_int(g->rng, 6) - 2 : dt_int(g->rng, 4));
    if (dt_pct(g->rng, 60))
        ss_buf_printf(out, ", %d", dt_int(g->rng, 4));
    ss_buf_putc(out, ')');
    return 1;
}

static int g_trim(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    static const char *const fns[] = {"TRIM", "LTRIM", "RTRIM"};
    ss_buf_printf(out, "%s(", fns[dt_int(g->rng, 3)]);
    dt_expr(g, DT_TEXT, depth - 1, out);
    if (dt_pct(g->rng, 40))
        ss_buf_puts(out, dt_pct(g->rng, 50) ? ", 'a'" : ", 'ab '");
    ss_buf_putc(out, ')');
    return 1;
}

static int g_replace(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    ss_buf_puts(out, "REPLACE(");
    dt_expr(g, DT_TEXT, depth - 1, out);
    ss_buf_puts(out, dt_pct(g->rng, 50) ? ", 'a', 'xy')" : ", 'b', '')");
    return 1;
}

static int g_concat(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    ss_buf_putc(out, '(');
    dt_expr(g, DT_TEXT, depth - 1, out);
    ss_buf_puts(out, " || ");
    dt_expr(g, dt_pct(g->rng, 80) ? DT_TEXT : DT_INT, depth - 1, out);
    ss_buf_putc(out, ')');
    return 1;
}

static int g_compare(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    static const char *const ops[] = {" = ", " <> ", " < ", " <= ", " > ", " >= ", " != ", " == "};
    dt_type_t a = cmp_type(g); /* INT, REAL or TEXT (or NUMERIC) */
    dt_type_t b = a == DT_TEXT ? DT_TEXT : dt_pct(g->rng, 70) ? a : (a == DT_INT ? DT_REAL : DT_INT);
    ss_buf_putc(out, '(');
    dt_expr(g, a, depth - 1, out);
    ss_buf_puts(out, ops[dt_int(g->rng, g->pg ? 7 : 8)]); /* PostgreSQL has no == */
    dt_expr(g, b, depth - 1, out);
    ss_buf_putc(out, ')');
    return 1;
}

static int g_logic(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    ss_buf_putc(out, '(');
    dt_expr(g, t, depth - 1, out);
    ss_buf_puts(out, dt_pct(g->rng, 50) ? " AND " : " OR ");
    dt_expr(g, t, depth - 1, out);
    ss_buf_putc(out, ')');
    return 1;
}

static int g_not(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    ss_buf_puts(out, "(NOT ");
    dt_expr(g, t, depth - 1, out);
    ss_buf_putc(out, ')');
    return 1;
}

static int g_isnull(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    ss_buf_putc(out, '(');
    dt_expr(g, (dt_type_t)dt_int(g->rng, DT_NTYPES), depth - 1, out);
    ss_buf_puts(out, dt_pct(g->rng, 50) ? " IS NULL)" : " IS NOT NULL)");
    return 1;
}

static int g_like(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    static const char *const pats[] = {"'a%'", "'%b'", "'_'", "'%'", "'A_'", "'%\xc3\xa9%'", "'\xe6\x97\xa5%'",
                                       "'%a%b%'", "''", "'x y'"};
    ss_buf_putc(out, '(');
    dt_expr(g, DT_TEXT, depth - 1, out);
    ss_buf_printf(out, "%s%s)", dt_pct(g->rng, 25) ? " NOT LIKE " : " LIKE ", pats[dt_int(g->rng, 10)]);
    return 1;
}

/* FILTER (WHERE cond) after an aggregate, sometimes. */
static void agg_filter(dt_gen_t *g, ss_buf_t *out)
{
    if (!dt_pct(g->rng, 15))
        return;
    ss_buf_puts(out, " FILTER (WHERE ");
    dt_expr(g, DT_BOOL, 1, out);
    ss_buf_putc(out, ')');
}

/* An ORDER BY key inside an aggregate or a window: "expr [DESC]<marker>" (dt_sql). */
static void order_key(dt_gen_t *g, const char *expr, ss_buf_t *out)
{
    int desc = dt_pct(g->rng, 40);
    ss_buf_printf(out, "%s%s%c", expr, desc ? " DESC" : "", desc ? DT_DESC_END : DT_ASC_END);
}

/* PostgreSQL's aggregates SQLite lacks: STRING_AGG, ARRAY_AGG, BOOL_AND/BOOL_OR/EVERY, the
 * variances and standard deviations, and the NUMERIC ones. The list aggregates always say ORDER
 * BY their argument (without it PostgreSQL's order is unspecified). */
static int g_agg_pg(dt_gen_t *g, dt_type_t t, int d, ss_buf_t *out)
{
    ss_buf_t arg = SS_BUF_INIT;
    int ok = 1;
    switch (t) {
    case DT_REAL: {
        static const char *const fns[] = {"STDDEV(", "STDDEV_SAMP(", "STDDEV_POP(", "VARIANCE(", "VAR_SAMP(", "VAR_POP("};
        ss_buf_puts(out, fns[dt_int(g->rng, 6)]);
        dt_expr(g, dt_pct(g->rng, 50) ? DT_INT : DT_REAL, d, out);
        ss_buf_putc(out, ')');
        break;
    }
    case DT_TEXT: {
        int distinct = dt_pct(g->rng, 20);
        dt_expr(g, DT_TEXT, d, &arg);
        if (arg.data[0] == '\'') /* a string literal has no type of its own in PostgreSQL */
            ss_buf_puts(&arg, "::TEXT");
        ss_buf_printf(out, "STRING_AGG(%s%s, %s ORDER BY ", distinct ? "DISTINCT " : "", ss_buf_cstr(&arg),
                      dt_pct(g->rng, 50) ? "','" : "' | '");
        order_key(g, ss_buf_cstr(&arg), out);
        ss_buf_putc(out, ')');
        break;
    }
    case DT_ARR: {
        int distinct = dt_pct(g->rng, 20);
        dt_expr(g, dt_pct(g->rng, 50) ? DT_INT : DT_TEXT, d, &arg);
        if (arg.data[0] == '\'')
            ss_buf_puts(&arg, "::TEXT");
        ss_buf_printf(out, "ARRAY_AGG(%s%s ORDER BY ", distinct ? "DISTINCT " : "", ss_buf_cstr(&arg));
        order_key(g, ss_buf_cstr(&arg), out);
        ss_buf_putc(out, ')');
        break;
    }
    case DT_BOOL: {
        static const char *const fns[] = {"BOOL_AND(", "BOOL_OR(", "EVERY("};
        ss_buf_puts(out, fns[dt_int(g->rng, 3)]);
        dt_expr(g, DT_BOOL, d, out);
        ss_buf_putc(out, ')');
        break;
    }
    case DT_NUM: {
        static const char *const fns[] = {"SUM(", "MIN(", "MAX(", "SUM(DISTINCT "};
        ss_buf_puts(out, fns[dt_int(g->rng, 4)]);
        dt_expr(g, DT_NUM, d, out);
        ss_buf_putc(out, ')');
        break;
    }
    default: ok = 0; break;
    }
    ss_buf_free(&arg);
    return ok;
}

/* An aggregate call (grouped queries, outside other aggregates). */
static int g_agg(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    if (!g->grouped || g->in_agg)
        return 0;
    int d = depth > 1 ? 1 : 0;
    g->in_agg = 1;
    int c = dt_int(g->rng, 100), ok = 1;
    if (g->pg && (t == DT_BOOL || t == DT_NUM || t == DT_ARR || (t == DT_REAL && c < 30) || (t == DT_TEXT && c < 40))) {
        ok = g_agg_pg(g, t, d, out);
    } else {
        switch (t) {
        case DT_INT:
            if (c < 25)
                ss_buf_puts(out, "COUNT(*)");
            else if (c < 45) {
                ss_buf_puts(out, dt_pct(g->rng, 30) ? "COUNT(DISTINCT " : "COUNT(");
                dt_expr(g, (dt_type_t)dt_int(g->rng, DT_NTYPES), d, out);
                ss_buf_putc(out, ')');
            } else {
                static const char *const fns[] = {"SUM(", "MIN(", "MAX(", "SUM(DISTINCT "};
                ss_buf_puts(out, fns[dt_int(g->rng, 4)]);
                dt_expr(g, DT_INT, d, out);
                ss_buf_putc(out, ')');
            }
            break;
        case DT_REAL: {
            static const char *const fns[] = {"AVG(", "SUM(", "MIN(", "MAX(", "AVG(DISTINCT "};
            int f = dt_int(g->rng, 5);
            ss_buf_puts(out, fns[f]);
            dt_expr(g, f == 0 || f == 4 ? (dt_type_t)dt_int(g->rng, 2) : DT_REAL, d, out);
            ss_buf_putc(out, ')');
            break;
        }
        case DT_TEXT:
            ss_buf_puts(out, dt_pct(g->rng, 50) ? "MIN(" : "MAX(");
            dt_expr(g, DT_TEXT, d, out);
            ss_buf_putc(out, ')');
            break;
        default: ok = 0; break;
        }
    }
    if (ok)
        agg_filter(g, out);
    g->in_agg = 0;
    return ok;
}

#define B(t) (1u << (t))
#define NUM (B(DT_INT) | B(DT_REAL))

/* ---- expressions both oracles share: CASE, IN, BETWEEN, IS DISTINCT FROM, LIKE ... ESCAPE ---- */

/* A comparable type for an operand: INT, REAL, TEXT (and NUMERIC for PostgreSQL). */
static dt_type_t cmp_type(dt_gen_t *g)
{
    if (g->pg && dt_pct(g->rng, 12))
        return DT_NUM;
    return (dt_type_t)dt_int(g->rng, 3);
}

/* CASE WHEN c THEN x [WHEN ...] [ELSE y] END, or the simple form CASE x WHEN a THEN ... END. */
static int g_casewhen(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    int n = 1 + dt_int(g->rng, 2);
    if (dt_pct(g->rng, 30)) {
        dt_type_t kt = dt_pct(g->rng, 50) ? DT_INT : DT_TEXT;
        ss_buf_puts(out, "CASE ");
        dt_expr(g, kt, depth - 1, out);
        for (int i = 0; i < n; i++) {
            ss_buf_puts(out, " WHEN ");
            lit(g, kt, out);
            ss_buf_puts(out, " THEN ");
            dt_expr(g, t, depth - 1, out);
        }
    } else {
        ss_buf_puts(out, "CASE");
        for (int i = 0; i < n; i++) {
            ss_buf_puts(out, " WHEN ");
            dt_expr(g, DT_BOOL, depth - 1, out);
            ss_buf_puts(out, " THEN ");
            dt_expr(g, t, depth - 1, out);
        }
    }
    if (dt_pct(g->rng, 70)) {
        ss_buf_puts(out, " ELSE ");
        dt_expr(g, t, depth - 1, out);
    }
    ss_buf_puts(out, " END");
    return 1;
}

/* x [NOT] IN (a, b, ...): literals, sometimes a column or a NULL among them. */
static int g_inlist(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    dt_type_t a = cmp_type(g);
    ss_buf_putc(out, '(');
    dt_expr(g, a, depth - 1, out);
    ss_buf_puts(out, dt_pct(g->rng, 30) ? " NOT IN (" : " IN (");
    int n = 1 + dt_int(g->rng, 4);
    for (int i = 0; i < n; i++) {
        if (i)
            ss_buf_puts(out, ", ");
        if (dt_pct(g->rng, 8))
            ss_buf_puts(out, "NULL");
        else if (dt_pct(g->rng, 20))
            dt_expr(g, a, 0, out);
        else
            lit(g, a, out);
    }
    ss_buf_puts(out, "))");
    return 1;
}

static int g_between(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    dt_type_t a = cmp_type(g);
    ss_buf_putc(out, '(');
    dt_expr(g, a, depth - 1, out);
    ss_buf_puts(out, dt_pct(g->rng, 25) ? " NOT BETWEEN " : " BETWEEN ");
    dt_expr(g, a, depth - 1, out);
    ss_buf_puts(out, " AND ");
    dt_expr(g, a, depth - 1, out);
    ss_buf_putc(out, ')');
    return 1;
}

static int g_distinctfrom(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    dt_type_t a = g->pg && dt_pct(g->rng, 20) ? DT_BOOL : cmp_type(g);
    ss_buf_putc(out, '(');
    dt_expr(g, a, depth - 1, out);
    ss_buf_puts(out, dt_pct(g->rng, 50) ? " IS DISTINCT FROM " : " IS NOT DISTINCT FROM ");
    dt_expr(g, a, depth - 1, out);
    ss_buf_putc(out, ')');
    return 1;
}

/* LIKE with an ESCAPE character: the data has '_' and '%' in it ("a_b", "50%"). */
static int g_likeescape(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    static const char *const pats[] = {"'a!_%' ESCAPE '!'", "'%!%' ESCAPE '!'", "'50!%' ESCAPE '!'",
                                       "'%#_b' ESCAPE '#'", "'a_b' ESCAPE '!'", "'!a%' ESCAPE '!'"};
    ss_buf_putc(out, '(');
    dt_expr(g, DT_TEXT, depth - 1, out);
    ss_buf_printf(out, "%s%s)", dt_pct(g->rng, 25) ? " NOT LIKE " : " LIKE ", pats[dt_int(g->rng, 6)]);
    return 1;
}

/* ---- PostgreSQL only: ILIKE, CAST/::, functions SQLite lacks or defines otherwise, NUMERIC, JSON ---- */

static int g_ilike(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    if (!g->pg)
        return 0;
    /* ILIKE folds ASCII case in semstream; the patterns' letters are ASCII */
    static const char *const pats[] = {"'A%'", "'%B'", "'_'", "'%a%'", "'ab'", "'x Y'", "'%\xc3\xa9%'", "'z%'"};
    ss_buf_putc(out, '(');
    dt_expr(g, DT_TEXT, depth - 1, out);
    ss_buf_printf(out, "%s%s)", dt_pct(g->rng, 25) ? " NOT ILIKE " : " ILIKE ", pats[dt_int(g->rng, 8)]);
    return 1;
}

/* CAST(x AS type) or x::type, between types where the cast cannot fail on the generated data. */
static int g_cast(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    if (!g->pg)
        return 0;
    dt_type_t from;
    const char *to;
    switch (t) {
    case DT_INT: /* REAL -> INT rounds half to even in both; NUMERIC -> INT half away from zero */
        from = dt_pct(g->rng, 40) ? DT_REAL : dt_pct(g->rng, 50) ? DT_NUM : DT_BOOL;
        to = from == DT_BOOL ? "INT" : "BIGINT"; /* PostgreSQL's INT is 32-bit; bool casts to int only */
        break;
    case DT_REAL: from = dt_pct(g->rng, 50) ? DT_INT : DT_NUM; to = "DOUBLE PRECISION"; break;
    case DT_TEXT: from = dt_pct(g->rng, 50) ? DT_INT : dt_pct(g->rng, 60) ? DT_BOOL : DT_NUM; to = "TEXT"; break;
    case DT_NUM:
        from = dt_pct(g->rng, 50) ? DT_INT : DT_REAL;
        to = dt_pct(g->rng, 30) ? "NUMERIC(12,2)" : dt_pct(g->rng, 20) ? "DECIMAL" : "NUMERIC";
        break;
    default: return 0;
    }
    if (dt_pct(g->rng, 50)) {
        ss_buf_puts(out, "CAST(");
        dt_expr(g, from, depth - 1, out);
        ss_buf_printf(out, " AS %s)", to);
    } else {
        ss_buf_putc(out, '(');
        dt_expr(g, from, depth - 1, out);
        ss_buf_printf(out, ")::%s", to);
    }
    return 1;
}

/* GREATEST / LEAST (NULLs ignored in both semstream and PostgreSQL; SQLite's max() differs). */
static int g_greatest(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    if (!g->pg)
        return 0;
    ss_buf_puts(out, dt_pct(g->rng, 50) ? "GREATEST(" : "LEAST(");
    int n = 2 + dt_int(g->rng, 2);
    for (int i = 0; i < n; i++) {
        if (i)
            ss_buf_puts(out, ", ");
        dt_expr(g, t, depth - 1, out);
    }
    ss_buf_putc(out, ')');
    return 1;
}

/* String functions of PostgreSQL (docs/SQL.md "Functions"). */
static int g_strfn(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    if (!g->pg)
        return 0;
    int d = depth - 1;
    switch (dt_int(g->rng, 10)) {
    case 0:
        ss_buf_puts(out, "CONCAT(");
        dt_expr(g, DT_TEXT, d, out);
        ss_buf_puts(out, ", ");
        dt_expr(g, dt_pct(g->rng, 50) ? DT_INT : DT_TEXT, d, out);
        if (dt_pct(g->rng, 40)) {
            ss_buf_puts(out, ", ");
            dt_expr(g, DT_TEXT, d, out);
        }
        break;
    case 1:
        ss_buf_puts(out, dt_pct(g->rng, 50) ? "CONCAT_WS('-', " : "CONCAT_WS(', ', ");
        dt_expr(g, DT_TEXT, d, out);
        ss_buf_puts(out, ", ");
        dt_expr(g, DT_TEXT, d, out);
        break;
    case 2:
        ss_buf_puts(out, dt_pct(g->rng, 50) ? "LEFT(" : "RIGHT(");
        dt_expr(g, DT_TEXT, d, out);
        ss_buf_printf(out, ", %d", dt_int(g->rng, 7) - 2);
        break;
    case 3:
        ss_buf_puts(out, dt_pct(g->rng, 50) ? "LPAD(" : "RPAD(");
        dt_expr(g, DT_TEXT, d, out);
        ss_buf_printf(out, ", %d", dt_int(g->rng, 7));
        if (dt_pct(g->rng, 60))
            ss_buf_puts(out, dt_pct(g->rng, 50) ? ", '*'" : ", 'xy'");
        break;
    case 4:
        ss_buf_puts(out, "SPLIT_PART(");
        dt_expr(g, DT_TEXT, d, out);
        ss_buf_printf(out, ", %s, %d", dt_pct(g->rng, 50) ? "' '" : "'b'", dt_pct(g->rng, 50) ? 1 + dt_int(g->rng, 2) : -1 - dt_int(g->rng, 2));
        break;
    case 5:
        ss_buf_puts(out, "REVERSE(");
        dt_expr(g, DT_TEXT, d, out);
        break;
    case 6:
        ss_buf_puts(out, "REPEAT(");
        dt_expr(g, DT_TEXT, d, out);
        ss_buf_printf(out, ", %d", dt_int(g->rng, 4));
        break;
    case 7:
        ss_buf_puts(out, "regexp_replace(");
        dt_expr(g, DT_TEXT, d, out);
        ss_buf_puts(out, dt_pct(g->rng, 50) ? ", '[ab]', 'X', 'g'" : ", '(a)(b)?', '<\\1>'");
        break;
    case 8:
        ss_buf_puts(out, "BTRIM(");
        dt_expr(g, DT_TEXT, d, out);
        ss_buf_puts(out, ", ' a'");
        break;
    default:
        ss_buf_puts(out, "SUBSTRING(");
        dt_expr(g, DT_TEXT, d, out);
        ss_buf_printf(out, ", %d, %d", 1 + dt_int(g->rng, 3), dt_int(g->rng, 4));
        break;
    }
    ss_buf_putc(out, ')');
    return 1;
}

/* INT-valued string functions: POSITION, STRPOS, CHAR_LENGTH. */
static int g_strpos(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    if (!g->pg)
        return 0;
    static const char *const subs[] = {"'a'", "'b'", "''", "'\xc3\xa9'", "' '"};
    int k = dt_int(g->rng, 3);
    if (k == 0) {
        ss_buf_printf(out, "POSITION(%s IN ", subs[dt_int(g->rng, 5)]);
        dt_expr(g, DT_TEXT, depth - 1, out);
        ss_buf_putc(out, ')');
    } else if (k == 1) {
        ss_buf_puts(out, "STRPOS(");
        dt_expr(g, DT_TEXT, depth - 1, out);
        ss_buf_printf(out, ", %s)", subs[dt_int(g->rng, 5)]);
    } else {
        ss_buf_puts(out, "CHAR_LENGTH(");
        dt_expr(g, DT_TEXT, depth - 1, out);
        ss_buf_putc(out, ')');
    }
    return 1;
}

/* Math functions: FLOOR, CEIL, TRUNC, SIGN, POWER, SQRT (of ABS), MOD. */
static int g_mathfn(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    if (!g->pg)
        return 0;
    int d = depth - 1;
    if (t == DT_INT) {
        if (dt_pct(g->rng, 50)) {
            ss_buf_puts(out, "MOD(");
            dt_expr(g, DT_INT, d, out);
            ss_buf_puts(out, ", NULLIF(");
            dt_expr(g, DT_INT, d, out);
            ss_buf_puts(out, ", 0))");
        } else {
            ss_buf_puts(out, "SIGN(");
            dt_expr(g, DT_INT, d, out);
            ss_buf_putc(out, ')');
        }
        return 1;
    }
    if (t == DT_NUM) {
        static const char *const fns[] = {"FLOOR(", "CEIL(", "TRUNC(", "ABS(", "ROUND("};
        int f = dt_int(g->rng, 5);
        ss_buf_puts(out, fns[f]);
        dt_expr(g, DT_NUM, d, out);
        if (f >= 2 && f != 3 && dt_pct(g->rng, 60))
            ss_buf_printf(out, ", %d", dt_int(g->rng, 4));
        ss_buf_putc(out, ')');
        return 1;
    }
    if (t != DT_REAL)
        return 0;
    switch (dt_int(g->rng, 5)) {
    case 0: ss_buf_puts(out, "FLOOR("); dt_expr(g, DT_REAL, d, out); break;
    case 1: ss_buf_puts(out, dt_pct(g->rng, 50) ? "CEIL(" : "CEILING("); dt_expr(g, DT_REAL, d, out); break;
    case 2: ss_buf_puts(out, "TRUNC("); dt_expr(g, DT_REAL, d, out); break;
    case 3:
        ss_buf_puts(out, dt_pct(g->rng, 50) ? "POWER(" : "POW(");
        dt_expr(g, DT_REAL, d, out);
        ss_buf_printf(out, ", %d", dt_int(g->rng, 4));
        break;
    default: ss_buf_puts(out, "SQRT(ABS("); dt_expr(g, DT_REAL, d, out); ss_buf_putc(out, ')'); break;
    }
    ss_buf_putc(out, ')');
    return 1;
}

/* NUMERIC arithmetic: + - * and / (exact decimals, PostgreSQL's result scales). */
static int g_numarith(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    if (!g->pg)
        return 0;
    static const char *const ops[] = {" + ", " - ", " * ", " / "};
    int op = dt_int(g->rng, 4);
    ss_buf_putc(out, '(');
    dt_expr(g, DT_NUM, depth - 1, out);
    ss_buf_puts(out, ops[op]);
    if (op == 3)
        ss_buf_puts(out, "NULLIF(");
    if (dt_pct(g->rng, 25)) /* an INT or a decimal literal mixes into NUMERIC */
        dt_expr(g, DT_INT, depth - 1, out);
    else if (dt_pct(g->rng, 15))
        ss_buf_puts(out, dt_pct(g->rng, 50) ? "0.1" : "2.50");
    else
        dt_expr(g, DT_NUM, depth - 1, out);
    if (op == 3)
        ss_buf_puts(out, ", 0)");
    ss_buf_putc(out, ')');
    return 1;
}

/* JSON: ->, ->> and the json functions on a JSON column (TEXT or INT results). */
static int g_json(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)depth;
    if (!g->pg)
        return 0;
    ss_buf_t j = SS_BUF_INIT;
    if (!g_column(g, DT_JSON, 0, &j)) {
        ss_buf_free(&j);
        return 0;
    }
    const char *c = ss_buf_cstr(&j);
    if (t == DT_TEXT) {
        switch (dt_int(g->rng, 6)) {
        case 0: ss_buf_printf(out, "(%s->>'s')", c); break;
        case 1: ss_buf_printf(out, "(%s->'d'->>'e')", c); break;
        case 2: ss_buf_printf(out, "(%s->'c'->>%d)", c, dt_int(g->rng, 4) - 1); break;
        case 3: ss_buf_printf(out, "json_typeof(%s->'%c')", c, "nscd"[dt_int(g->rng, 4)]); break;
        case 4: ss_buf_printf(out, "json_extract_path_text(%s, 'd', 'e')", c); break;
        default: ss_buf_printf(out, "(%s->>'n')", c); break;
        }
    } else if (t == DT_INT) {
        if (dt_pct(g->rng, 50))
            ss_buf_printf(out, "json_array_length(%s->'c')", c);
        else
            ss_buf_printf(out, "(%s->>'n')::BIGINT", c);
    } else {
        ss_buf_free(&j);
        return 0;
    }
    ss_buf_free(&j);
    return 1;
}


/* The expression generators: to test a new expression feature, add an entry here. */
const dt_exprgen_t dt_exprgens[] = {
    {"column", NUM | B(DT_TEXT) | B(DT_BOOL) | B(DT_NUM), 0, 40, g_column},
    {"literal", NUM | B(DT_TEXT) | B(DT_BOOL) | B(DT_NUM), 0, 8, g_literal},
    {"aggregate", NUM | B(DT_TEXT) | B(DT_BOOL) | B(DT_NUM) | B(DT_ARR), 0, 30, g_agg},
    {"arith", NUM, 1, 10, g_arith},
    {"unary -/+", NUM | B(DT_NUM), 1, 2, g_neg},
    {"abs", NUM | B(DT_NUM), 1, 2, g_abs},
    {"round", B(DT_REAL), 1, 3, g_round},
    {"length", B(DT_INT), 1, 2, g_length},
    {"coalesce", NUM | B(DT_TEXT) | B(DT_NUM), 1, 3, g_coalesce},
    {"lower/upper", B(DT_TEXT), 1, 3, g_case},
    {"substr", B(DT_TEXT), 1, 2, g_substr},
    {"trim", B(DT_TEXT), 1, 2, g_trim},
    {"replace", B(DT_TEXT), 1, 1, g_replace},
    {"concat", B(DT_TEXT), 1, 3, g_concat},
    {"compare", B(DT_BOOL), 1, 12, g_compare},
    {"and/or", B(DT_BOOL), 1, 4, g_logic},
    {"not", B(DT_BOOL), 1, 2, g_not},
    {"is null", B(DT_BOOL), 1, 2, g_isnull},
    {"like", B(DT_BOOL), 1, 3, g_like},
    {"case", NUM | B(DT_TEXT) | B(DT_BOOL) | B(DT_NUM), 1, 4, g_casewhen},
    {"in list", B(DT_BOOL), 1, 3, g_inlist},
    {"between", B(DT_BOOL), 1, 2, g_between},
    {"distinct from", B(DT_BOOL), 1, 2, g_distinctfrom},
    {"like escape", B(DT_BOOL), 1, 1, g_likeescape},
    /* PostgreSQL only (each returns 0 in a view compared with SQLite) */
    {"ilike", B(DT_BOOL), 1, 2, g_ilike},
    {"cast", NUM | B(DT_TEXT) | B(DT_NUM), 1, 4, g_cast},
    {"greatest/least", NUM | B(DT_TEXT) | B(DT_NUM), 1, 2, g_greatest},
    {"string functions", B(DT_TEXT), 1, 10, g_strfn},
    {"position/strpos", B(DT_INT), 1, 3, g_strpos},
    {"math functions", NUM | B(DT_NUM), 1, 4, g_mathfn},
    {"numeric arith", B(DT_NUM), 1, 6, g_numarith},
    {"json", B(DT_INT) | B(DT_TEXT), 0, 8, g_json},
};
const int dt_nexprgens = (int)(sizeof dt_exprgens / sizeof *dt_exprgens);

void dt_expr(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    int total = 0;
    for (int i = 0; i < dt_nexprgens; i++)
        if ((dt_exprgens[i].types & B(t)) && (depth > 0 || !dt_exprgens[i].composite))
            total += dt_exprgens[i].weight;
    for (int tries = 0; tries < 8 && total > 0; tries++) {
        int x = dt_int(g->rng, total);
        for (int i = 0; i < dt_nexprgens; i++) {
            const dt_exprgen_t *e = &dt_exprgens[i];
            if (!(e->types & B(t)) || (depth == 0 && e->composite))
                continue;
            if (x >= e->weight) {
                x -= e->weight;
                continue;
            }
            size_t at = out->len;
            if (e->gen(g, t, depth, out))
                return;
            out->len = at;
            break;
        }
    }
    lit(g, t, out);
}

/* ---- query shapes ---- */

/* The dialect of the view being generated (dt_rel_t.pg): set by dt_case_gen around each shape. */
static int g_pgmode;

/* A relation to read: a stream or an earlier view of the same dialect. */
static const dt_rel_t *pick_rel(dt_rng_t *r, const dt_case_t *c, int views_too)
{
    const dt_rel_t *cand[DT_MAXSTREAMS + DT_MAXVIEWS];
    int n = 0;
    for (int i = 0; i < c->nstreams; i++)
        cand[n++] = &c->s[i];
    for (int i = 0; views_too && i < c->nviews; i++)
        if (c->v[i].pg == g_pgmode)
            cand[n++] = &c->v[i];
    return cand[dt_int(r, n)];
}

static int plain_type(dt_type_t t);
static int usable(dt_type_t t);

/* 1 when a relation has a column only PostgreSQL can read (NUMERIC, JSON, an array). */
static int has_pg_cols(const dt_rel_t *rel)
{
    for (int i = 0; i < rel->ncols; i++)
        if (rel->types[i] >= DT_NTYPES)
            return 1;
    return 0;
}

/* A column type the current view may use: SQLite's views see only the four basic types. */
static int usable(dt_type_t t) { return g_pgmode ? plain_type(t) : t < DT_NTYPES; }

static void scope_of(dt_gen_t *g, const dt_rel_t *rel, const char *qual)
{
    for (int i = 0; i < rel->ncols && g->ncols < 24; i++) {
        if (!g_pgmode && rel->types[i] >= DT_NTYPES)
            continue; /* SQLite's tables have no NUMERIC or JSON */
        dt_col_t *c = &g->cols[g->ncols++];
        snprintf(c->sql, sizeof c->sql, "%s%s%s", qual ? qual : "", qual ? "." : "", rel->cols[i]);
        c->type = rel->types[i];
    }
}

static dt_type_t any_type(dt_rng_t *r)
{
    if (g_pgmode && dt_pct(r, 10))
        return DT_NUM;
    return (dt_type_t)dt_int(r, DT_NTYPES);
}

/* Names output column i "<view>c<i>" (no input column has that name, so no alias can be
 * mistaken for one) and writes " AS name". */
static void alias(dt_rel_t *v, int i, dt_type_t t, ss_buf_t *out)
{
    char nm[40];
    snprintf(nm, sizeof nm, "%.8sc%d", v->name, i);
    memcpy(v->cols[i], nm, sizeof v->cols[i] - 1);
    v->cols[i][sizeof v->cols[i] - 1] = 0;
    v->types[i] = t;
    ss_buf_printf(out, " AS %s", v->cols[i]);
}

/* Output column i: "expr AS <view>c<i>". */
static void item(dt_gen_t *g, dt_rel_t *v, dt_type_t t, int depth, ss_buf_t *out)
{
    int i = v->ncols++;
    if (i)
        ss_buf_puts(out, ", ");
    dt_expr(g, t, depth, out);
    alias(v, i, t, out);
}

static void where(dt_gen_t *g, ss_buf_t *out, int pct)
{
    if (!dt_pct(g->rng, pct))
        return;
    ss_buf_puts(out, " WHERE ");
    dt_expr(g, DT_BOOL, 2, out);
}

static int s_select(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    dt_gen_t g = {.rng = r, .pg = g_pgmode};
    scope_of(&g, in, NULL);
    ss_buf_puts(out, "SELECT ");
    int n = 1 + dt_int(r, 4);
    for (int i = 0; i < n; i++)
        item(&g, v, any_type(r), dt_pct(r, 50) ? 0 : 2, out);
    ss_buf_printf(out, " FROM %s", in->name);
    where(&g, out, 60);
    return 1;
}

/* SELECT * (or alias.*) FROM a relation: the output columns keep the input's names. */
static int s_star(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    if (!g_pgmode && has_pg_cols(in)) /* SQLite cannot read NUMERIC or JSON */
        return 0;
    dt_gen_t g = {.rng = r, .pg = g_pgmode};
    int alias = dt_pct(r, 50);
    scope_of(&g, in, alias ? "t" : NULL);
    ss_buf_printf(out, "SELECT %s FROM %s%s", alias ? "t.*" : "*", in->name, alias ? " AS t" : "");
    for (int i = 0; i < in->ncols; i++) {
        memcpy(v->cols[i], in->cols[i], sizeof v->cols[i]);
        v->types[i] = in->types[i];
    }
    v->ncols = in->ncols;
    where(&g, out, 70);
    if (dt_pct(r, 15) && plain_type(in->types[0])) /* ORDER BY without LIMIT: does not change the bag */
        ss_buf_puts(out, " ORDER BY 1 DESC");
    return 1;
}

static int s_distinct(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    dt_gen_t g = {.rng = r, .pg = g_pgmode};
    scope_of(&g, in, NULL);
    ss_buf_puts(out, "SELECT DISTINCT ");
    int n = 1 + dt_int(r, 3);
    for (int i = 0; i < n; i++)
        item(&g, v, any_type(r), dt_pct(r, 60) ? 0 : 1, out);
    ss_buf_printf(out, " FROM %s", in->name);
    where(&g, out, 40);
    return 1;
}

static int is_literal(const char *e)
{
    /* SQLite folds (- 1) and (+ -2) to a position too */
    if ((!strncmp(e, "(- ", 3) || !strncmp(e, "(+ ", 3)) && ((e[3] >= '0' && e[3] <= '9') || e[3] == '-'))
        return 1;
    return !*e || strchr("0123456789-'", *e) || !strncmp(e, "TRUE", 4) || !strncmp(e, "FALSE", 5) ||
           !strncmp(e, "NULL", 4);
}

/* GROUP BY 1-2 keys (columns or expressions) with aggregates; HAVING sometimes. */
static int grouped(dt_rng_t *r, dt_gen_t *g, dt_rel_t *v, int nkeys, ss_buf_t *out, ss_buf_t *tail)
{
    for (int k = 0; k < nkeys; k++) {
        dt_col_t *gc = &g->group[g->ngroup++];
        ss_buf_t e = SS_BUF_INIT;
        dt_type_t t = any_type(r);
        /* a column or an expression, never a bare literal (GROUP BY 2 would be a position) */
        if (dt_pct(r, 70) || !g_column(g, t, 0, &e)) {
            for (int tries = 0; tries < 10; tries++) {
                ss_buf_reset(&e);
                dt_expr(g, t, dt_pct(r, 70) ? 0 : 1, &e);
                if (!is_literal(ss_buf_cstr(&e)))
                    break;
            }
        }
        if (is_literal(ss_buf_cstr(&e))) {
            g->ngroup--;
            ss_buf_free(&e);
            continue;
        }
        snprintf(gc->sql, sizeof gc->sql, "%s", ss_buf_cstr(&e));
        gc->type = t;
        if (e.len >= sizeof gc->sql) { /* too long to keep: a plain literal-free column instead */
            g->ngroup--;
            ss_buf_free(&e);
            return 0;
        }
        ss_buf_free(&e);
    }
    g->grouped = 1;
    ss_buf_puts(out, "SELECT ");
    for (int k = 0; k < g->ngroup; k++) {
        int i = v->ncols++;
        ss_buf_printf(out, "%s%s", i ? ", " : "", g->group[k].sql);
        alias(v, i, g->group[k].type, out);
    }
    int na = 1 + dt_int(r, 3);
    for (int a = 0; a < na; a++) {
        static const dt_type_t at[] = {DT_INT, DT_INT, DT_REAL, DT_TEXT, DT_BOOL, DT_NUM, DT_ARR};
        item(g, v, at[dt_int(r, g->pg ? 7 : 4)], dt_pct(r, 70) ? 0 : 1, out);
    }
    if (g->ngroup) {
        ss_buf_puts(tail, " GROUP BY ");
        for (int k = 0; k < g->ngroup; k++)
            ss_buf_printf(tail, "%s%s", k ? ", " : "", g->group[k].sql);
    }
    if (g->ngroup && dt_pct(r, 30)) {
        ss_buf_puts(tail, " HAVING ");
        dt_expr(g, DT_BOOL, 2, tail);
    }
    return 1;
}

static int s_group(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    dt_gen_t g = {.rng = r, .pg = g_pgmode};
    scope_of(&g, in, NULL);
    ss_buf_t tail = SS_BUF_INIT, w = SS_BUF_INIT;
    g.grouped = 0;
    where(&g, &w, 40); /* WHERE sees input columns */
    int ok = grouped(r, &g, v, dt_pct(r, 20) ? 0 : 1 + dt_int(r, 2), out, &tail);
    if (ok)
        ss_buf_printf(out, " FROM %s%s%s", in->name, ss_buf_cstr(&w), ss_buf_cstr(&tail));
    ss_buf_free(&tail);
    ss_buf_free(&w);
    return ok;
}

/* ---- shapes over query structures: set operations, subqueries, FROM (SELECT), WITH, windows ---- */

/* A type every oracle can compare and order (no JSON or arrays). */
static int plain_type(dt_type_t t) { return t < DT_JSON; }

/* SELECT e1, ..., en FROM rel [WHERE ...] for the given column types (a set operation's operand). */
static void operand(dt_rng_t *r, const dt_rel_t *in, dt_rel_t *v, const dt_type_t *ts, int n, ss_buf_t *out)
{
    dt_gen_t g = {.rng = r, .pg = g_pgmode};
    scope_of(&g, in, NULL);
    ss_buf_puts(out, "SELECT ");
    for (int i = 0; i < n; i++) {
        if (v) {
            item(&g, v, ts[i], dt_pct(r, 60) ? 0 : 1, out);
        } else {
            ss_buf_puts(out, i ? ", " : "");
            dt_expr(&g, ts[i], dt_pct(r, 60) ? 0 : 1, out);
        }
    }
    ss_buf_printf(out, " FROM %s", in->name);
    where(&g, out, 40);
}

/* ORDER BY every output column (each ASC or DESC, with its NULLs marker) [LIMIT k] [OFFSET m]. */
static int order_limit(dt_rng_t *r, const dt_rel_t *v, ss_buf_t *out)
{
    for (int i = 0; i < v->ncols; i++)
        if (!plain_type(v->types[i]))
            return 0;
    ss_buf_puts(out, " ORDER BY ");
    for (int i = 0; i < v->ncols; i++) {
        int desc = dt_pct(r, 40);
        ss_buf_printf(out, "%s%d%s%c", i ? ", " : "", i + 1, desc ? " DESC" : "", desc ? DT_DESC_END : DT_ASC_END);
    }
    if (dt_pct(r, 92))
        ss_buf_printf(out, " LIMIT %d", dt_int(r, 6) + (dt_pct(r, 10) ? 0 : 1));
    if (dt_pct(r, 30))
        ss_buf_printf(out, " OFFSET %d", dt_int(r, 4));
    return 1;
}

/* a UNION [ALL] b, a EXCEPT [ALL] b, a INTERSECT [ALL] b (sometimes a third operand, sometimes ORDER
 * BY ... LIMIT over the whole). SQLite has no EXCEPT ALL / INTERSECT ALL and applies every
 * operator left to right (PostgreSQL binds INTERSECT tighter), so a view compared with SQLite
 * never puts INTERSECT after another operator. */
static int s_setop(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    static const char *const ops[] = {" UNION ", " UNION ALL ", " EXCEPT ", " INTERSECT ", " EXCEPT ALL ",
                                      " INTERSECT ALL "};
    dt_type_t ts[3];
    int n = 1 + dt_int(r, 3);
    for (int i = 0; i < n; i++)
        ts[i] = any_type(r);
    operand(r, pick_rel(r, c, 1), v, ts, n, out);
    int nops = dt_pct(r, 25) ? 2 : 1, prev = -1;
    for (int k = 0; k < nops; k++) {
        int op = dt_int(r, g_pgmode ? 6 : 4);
        if (!g_pgmode && k > 0 && op == 3 && prev != 3)
            op = 0;
        prev = op;
        ss_buf_puts(out, ops[op]);
        operand(r, pick_rel(r, c, 1), NULL, ts, n, out);
    }
    if (dt_pct(r, 15))
        order_limit(r, v, out);
    return 1;
}

/* The columns of two relations with a comparable pair: *ka in a, *kb in b (-1 when none). */
static void key_pair(dt_rng_t *r, const dt_rel_t *a, const dt_rel_t *b, int *ka, int *kb)
{
    *kb = -1;
    *ka = dt_int(r, a->ncols);
    if (!usable(a->types[*ka]))
        return;
    for (int t = 0; t < 8 && *kb < 0; t++) {
        int x = dt_int(r, b->ncols);
        if (b->types[x] == a->types[*ka] || (a->types[*ka] <= DT_REAL && b->types[x] <= DT_REAL && dt_pct(r, 30)))
            *kb = x;
    }
}

/* Subqueries in expressions: [NOT] EXISTS (correlated), [NOT] IN (SELECT ...), scalar subqueries
 * (an aggregate, correlated or not) in WHERE and in the select list. */
static int s_subquery(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *a = pick_rel(r, c, 1), *b = pick_rel(r, c, 1);
    int ka, kb;
    key_pair(r, a, b, &ka, &kb);
    if (kb < 0)
        return 0;
    dt_gen_t g = {.rng = r, .pg = g_pgmode}, gi = {.rng = r, .pg = g_pgmode};
    scope_of(&g, a, "o");
    scope_of(&gi, b, "i");
    ss_buf_t sub = SS_BUF_INIT, inner_where = SS_BUF_INIT;
    if (dt_pct(r, 40)) { /* a condition on the inner row alone */
        ss_buf_puts(&inner_where, " AND ");
        dt_expr(&gi, DT_BOOL, 1, &inner_where);
    }
    int kind = dt_int(r, 5), in_select = dt_pct(r, 30);
    if (a->types[ka] == DT_BOOL && (kind == 2 || kind == 3)) /* no MAX(boolean), no boolean <> count */
        kind = 0;
    switch (kind) {
    case 0: /* [NOT] EXISTS, correlated on the key pair */
        ss_buf_printf(&sub, "%sEXISTS (SELECT 1 FROM %s AS i WHERE i.%s = o.%s%s)", dt_pct(r, 35) ? "NOT " : "",
                      b->name, b->cols[kb], a->cols[ka], ss_buf_cstr(&inner_where));
        break;
    case 1: /* [NOT] IN, uncorrelated */
        ss_buf_printf(&sub, "(o.%s %sIN (SELECT i.%s FROM %s AS i WHERE TRUE%s))", a->cols[ka], dt_pct(r, 35) ? "NOT " : "",
                      b->cols[kb], b->name, ss_buf_cstr(&inner_where));
        break;
    case 2: { /* a correlated scalar aggregate compared with an outer column */
        static const char *const fns[] = {"COUNT(*)", "MAX(i.%s)", "MIN(i.%s)", "COUNT(i.%s)"};
        char fn[64];
        snprintf(fn, sizeof fn, fns[dt_int(r, 4)], b->cols[kb]);
        if (a->types[ka] == DT_TEXT && !strncmp(fn, "COUNT", 5))
            snprintf(fn, sizeof fn, "MAX(i.%s)", b->cols[kb]);
        ss_buf_printf(&sub, "(o.%s %s (SELECT %s FROM %s AS i WHERE i.%s = o.%s%s))", a->cols[ka],
                      dt_pct(r, 50) ? "<=" : "<>", fn, b->name, b->cols[kb], a->cols[ka], ss_buf_cstr(&inner_where));
        break;
    }
    case 3: /* an uncorrelated scalar aggregate */
        ss_buf_printf(&sub, "(o.%s %s (SELECT %s(i.%s) FROM %s AS i WHERE TRUE%s))", a->cols[ka], dt_pct(r, 50) ? ">=" : "=",
                      dt_pct(r, 50) ? "MAX" : "MIN", b->cols[kb], b->name, ss_buf_cstr(&inner_where));
        break;
    default: /* a correlated COUNT as a value */
        in_select = 1;
        ss_buf_printf(&sub, "(SELECT COUNT(*) FROM %s AS i WHERE i.%s = o.%s%s)", b->name, b->cols[kb], a->cols[ka],
                      ss_buf_cstr(&inner_where));
        break;
    }
    ss_buf_puts(out, "SELECT ");
    int n = 1 + dt_int(r, 3);
    for (int i = 0; i < n; i++)
        item(&g, v, any_type(r), dt_pct(r, 60) ? 0 : 1, out);
    if (in_select) {
        int i = v->ncols++;
        ss_buf_printf(out, ", %s", ss_buf_cstr(&sub));
        alias(v, i, kind == 4 ? DT_INT : DT_BOOL, out);
        ss_buf_printf(out, " FROM %s AS o", a->name);
        where(&g, out, 30);
    } else {
        ss_buf_printf(out, " FROM %s AS o WHERE %s", a->name, ss_buf_cstr(&sub));
        if (dt_pct(r, 30)) {
            ss_buf_puts(out, dt_pct(r, 50) ? " AND " : " OR ");
            dt_expr(&g, DT_BOOL, 1, out);
        }
    }
    ss_buf_free(&sub);
    ss_buf_free(&inner_where);
    return 1;
}

/* A select or a grouping over one relation in scope g, FROM from_sql. */
static int body_over(dt_rng_t *r, dt_gen_t *g, dt_rel_t *v, const char *from_sql, ss_buf_t *out)
{
    if (dt_pct(r, 40)) {
        ss_buf_t tail = SS_BUF_INIT, w = SS_BUF_INIT;
        where(g, &w, 40);
        int ok = grouped(r, g, v, dt_pct(r, 20) ? 0 : 1 + dt_int(r, 2), out, &tail);
        if (ok)
            ss_buf_printf(out, " FROM %s%s%s", from_sql, ss_buf_cstr(&w), ss_buf_cstr(&tail));
        ss_buf_free(&tail);
        ss_buf_free(&w);
        return ok;
    }
    ss_buf_puts(out, "SELECT ");
    int n = 1 + dt_int(r, 3);
    for (int i = 0; i < n; i++)
        item(g, v, any_type(r), dt_pct(r, 50) ? 0 : 1, out);
    ss_buf_printf(out, " FROM %s", from_sql);
    where(g, out, 50);
    return 1;
}

static int s_select(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);
static int s_group(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);
static int s_distinct(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out);

/* FROM (SELECT ...) AS q, or WITH q [(columns)] AS (SELECT ...): an inner query of another shape,
 * then a select or a grouping over it (a WITH query is sometimes read twice, joined to itself). */
static int s_derived(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    dt_rel_t q;
    memset(&q, 0, sizeof q);
    snprintf(q.name, sizeof q.name, "q");
    ss_buf_t inner = SS_BUF_INIT, from = SS_BUF_INIT;
    int k = dt_int(r, 4);
    int ok = k == 0 ? s_group(r, c, &q, &inner) : k == 1 ? s_distinct(r, c, &q, &inner)
           : k == 2 ? s_setop(r, c, &q, &inner) : s_select(r, c, &q, &inner);
    if (!ok || !q.ncols) {
        ss_buf_free(&inner);
        return 0;
    }
    int with = dt_pct(r, 50), collist = with && dt_pct(r, 40), self = with && dt_pct(r, 25);
    if (collist)
        for (int i = 0; i < q.ncols; i++)
            snprintf(q.cols[i], sizeof q.cols[i], "w%d", i);
    dt_gen_t g = {.rng = r, .pg = g_pgmode};
    if (with) {
        ss_buf_puts(out, "WITH q");
        for (int i = 0; collist && i < q.ncols; i++)
            ss_buf_printf(out, "%s%s", i ? ", " : " (", q.cols[i]);
        ss_buf_printf(out, "%s AS (%s) ", collist ? ")" : "", ss_buf_cstr(&inner));
        int kk = dt_int(r, q.ncols);
        if (self && usable(q.types[kk])) {
            scope_of(&g, &q, "x");
            scope_of(&g, &q, "y");
            ss_buf_printf(&from, "q AS x JOIN q AS y ON x.%s = y.%s", q.cols[kk], q.cols[kk]);
        } else {
            scope_of(&g, &q, NULL);
            ss_buf_puts(&from, "q");
        }
    } else {
        int qual = dt_pct(r, 50);
        scope_of(&g, &q, qual ? "q" : NULL);
        ss_buf_printf(&from, "(%s) AS q", ss_buf_cstr(&inner));
    }
    ok = body_over(r, &g, v, ss_buf_cstr(&from), out);
    ss_buf_free(&inner);
    ss_buf_free(&from);
    return ok;
}

/* Window functions: ROW_NUMBER/RANK/DENSE_RANK or a windowed aggregate OVER (PARTITION BY ..
 * ORDER BY ..); or a per-partition top-N: a FROM subquery numbering rows, filtered on the number.
 * ROW_NUMBER orders by every (orderable) column of the input, so that the numbers do not depend
 * on how ties are broken. */
static int s_window(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    dt_gen_t g = {.rng = r, .pg = g_pgmode};
    scope_of(&g, in, NULL);
    int part = -1;
    for (int t = 0; t < 3 && part < 0; t++) {
        int x = dt_int(r, in->ncols);
        if (usable(in->types[x]) && dt_pct(r, 75))
            part = x;
    }
    ss_buf_t keys = SS_BUF_INIT, fn = SS_BUF_INIT;
    int kind = dt_int(r, 100), rownum = kind < 35 || kind >= 85, nkeys = 0;
    dt_type_t wt = DT_INT;
    if (rownum) {
        ss_buf_puts(&fn, "ROW_NUMBER()");
        for (int i = 0; i < in->ncols; i++)
            if (usable(in->types[i])) {
                ss_buf_puts(&keys, nkeys++ ? ", " : "");
                order_key(&g, in->cols[i], &keys);
            }
    } else {
        int x = dt_int(r, in->ncols);
        if (kind < 60)
            ss_buf_puts(&fn, dt_pct(r, 50) ? "RANK()" : "DENSE_RANK()");
        else if (in->types[x] <= DT_REAL && dt_pct(r, 70)) {
            static const char *const fns[] = {"SUM", "MIN", "MAX", "COUNT", "AVG"};
            int f = dt_int(r, 5);
            ss_buf_printf(&fn, "%s(%s)", fns[f], in->cols[x]);
            wt = f == 4 ? DT_REAL : f == 3 ? DT_INT : in->types[x];
        } else
            ss_buf_puts(&fn, "COUNT(*)");
        if (kind < 60 || dt_pct(r, 60))
            for (int t = 0; t < 2; t++) {
                int y = dt_int(r, in->ncols);
                if (usable(in->types[y]) && (t == 0 || dt_pct(r, 40))) {
                    ss_buf_puts(&keys, nkeys++ ? ", " : "");
                    order_key(&g, in->cols[y], &keys);
                }
            }
    }
    if (!nkeys && kind < 85 && (rownum || kind < 60)) { /* a ranking needs something to order by */
        ss_buf_free(&keys);
        ss_buf_free(&fn);
        return 0;
    }
    ss_buf_t over = SS_BUF_INIT;
    ss_buf_puts(&over, " OVER (");
    if (part >= 0)
        ss_buf_printf(&over, "PARTITION BY %s%s", in->cols[part], nkeys ? " " : "");
    if (nkeys)
        ss_buf_printf(&over, "ORDER BY %s", ss_buf_cstr(&keys));
    ss_buf_putc(&over, ')');
    int topn = (rownum && kind >= 85) || (!rownum && kind < 60 && dt_pct(r, 40));
    int n = 1 + dt_int(r, 3);
    if (topn) {
        /* SELECT cols [, rn] FROM (SELECT cols, ROW_NUMBER() OVER (...) AS rn FROM in) AS t WHERE rn <= N */
        dt_gen_t go = {.rng = r, .pg = g_pgmode};
        scope_of(&go, in, "t");
        ss_buf_puts(out, "SELECT ");
        for (int i = 0; i < n; i++)
            item(&go, v, any_type(r), dt_pct(r, 60) ? 0 : 1, out);
        if (dt_pct(r, 50)) {
            int i = v->ncols++;
            ss_buf_puts(out, ", t.rn");
            alias(v, i, DT_INT, out);
        }
        ss_buf_puts(out, " FROM (SELECT ");
        for (int i = 0; i < in->ncols; i++)
            ss_buf_printf(out, "%s, ", in->cols[i]);
        static const char *const cmp[] = {"<= %d", "< %d", "= %d"};
        ss_buf_printf(out, "%s%s AS rn FROM %s) AS t WHERE t.rn ", ss_buf_cstr(&fn), ss_buf_cstr(&over), in->name);
        ss_buf_printf(out, cmp[dt_int(r, 3)], 1 + dt_int(r, 3));
    } else {
        ss_buf_puts(out, "SELECT ");
        for (int i = 0; i < n; i++)
            item(&g, v, any_type(r), 0, out);
        int i = v->ncols++;
        ss_buf_printf(out, ", %s%s", ss_buf_cstr(&fn), ss_buf_cstr(&over));
        alias(v, i, wt, out);
        ss_buf_printf(out, " FROM %s", in->name);
        where(&g, out, 30);
    }
    ss_buf_free(&over);
    ss_buf_free(&keys);
    ss_buf_free(&fn);
    return 1;
}

/* Two relations joined: [INNER], LEFT, RIGHT, FULL [OUTER] JOIN ... ON equal columns (with a
 * residual condition sometimes), a self join USING (column), CROSS JOIN, or FROM a, b WHERE
 * a.x = b.y; then a select or a grouping. */
static int s_join(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *a = pick_rel(r, c, 1), *b = pick_rel(r, c, 1);
    int using = a == b;
    int ka, kb;
    if (using) {
        ka = kb = dt_int(r, a->ncols);
        if (!usable(a->types[ka]))
            return 0;
    } else {
        key_pair(r, a, b, &ka, &kb);
        if (kb < 0)
            return 0;
    }
    dt_gen_t g = {.rng = r, .pg = g_pgmode};
    if (using && g.ncols < 24) { /* the joined column, unqualified */
        snprintf(g.cols[g.ncols].sql, sizeof g.cols[g.ncols].sql, "%s", a->cols[ka]);
        g.cols[g.ncols++].type = a->types[ka];
    }
    scope_of(&g, a, "x");
    scope_of(&g, b, "y");
    ss_buf_t on = SS_BUF_INIT, w = SS_BUF_INIT, tail = SS_BUF_INIT;
    int jt = dt_int(r, 100);
    static const char *const inner[] = {"JOIN", "INNER JOIN"}, *const left[] = {"LEFT JOIN", "LEFT OUTER JOIN"},
                             *const right[] = {"RIGHT JOIN", "RIGHT OUTER JOIN"}, *const full[] = {"FULL JOIN", "FULL OUTER JOIN"};
    const char *join = jt < 40 ? inner[dt_int(r, 2)] : jt < 60 ? left[dt_int(r, 2)] : jt < 72 ? right[dt_int(r, 2)]
                     : jt < 84 ? full[dt_int(r, 2)] : NULL;
    const char *as = dt_pct(r, 50) ? "AS " : "";
    if (using) {
        ss_buf_printf(&on, " FROM %s %sx %s %s y USING (%s)", a->name, as, join ? join : "JOIN", b->name, a->cols[ka]);
    } else if (join) {
        ss_buf_printf(&on, " FROM %s %sx %s %s y ON x.%s = y.%s", a->name, as, join, b->name, a->cols[ka], b->cols[kb]);
        if (dt_pct(r, 25)) {
            ss_buf_puts(&on, " AND ");
            dt_expr(&g, DT_BOOL, 1, &on);
        }
    } else if (jt < 92) { /* a cross join: a WHERE keeps it small most of the time */
        ss_buf_printf(&on, " FROM %s %sx CROSS JOIN %s y", a->name, as, b->name);
    } else {
        ss_buf_printf(&on, " FROM %s %sx, %s y WHERE x.%s = y.%s", a->name, as, b->name, a->cols[ka], b->cols[kb]);
    }
    int has_where = strstr(ss_buf_cstr(&on), " WHERE ") != NULL;
    if (has_where && dt_pct(r, 30)) {
        ss_buf_puts(&w, " AND ");
        dt_expr(&g, DT_BOOL, 2, &w);
    } else if (!has_where)
        where(&g, &w, !join && !using ? 80 : 30);
    int ok = 1;
    if (dt_pct(r, 35))
        ok = grouped(r, &g, v, 1 + dt_int(r, 2), out, &tail);
    else {
        ss_buf_puts(out, "SELECT ");
        int n = 1 + dt_int(r, 4);
        for (int i = 0; i < n; i++)
            item(&g, v, any_type(r), dt_pct(r, 60) ? 0 : 1, out);
    }
    if (ok)
        ss_buf_printf(out, "%s%s%s", ss_buf_cstr(&on), ss_buf_cstr(&w), ss_buf_cstr(&tail));
    ss_buf_free(&on);
    ss_buf_free(&w);
    ss_buf_free(&tail);
    return ok;
}

/* ORDER BY every output column (each ASC or DESC) LIMIT k, over a select or a grouping. */
static int s_topk(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    int ok = dt_pct(r, 30) ? s_group(r, c, v, out) : s_select(r, c, v, out);
    return ok && order_limit(r, v, out);
}

/* The query-shape generators: to test a new query feature, add an entry here. */
const dt_shape_t dt_shapes[] = {
    {"select", 20, s_select},
    {"star", 6, s_star},
    {"distinct", 8, s_distinct},
    {"group", 25, s_group},
    {"join", 20, s_join},
    {"topk", 12, s_topk},
    {"setop", 10, s_setop},
    {"subquery", 12, s_subquery},
    {"derived", 10, s_derived},
    {"window", 12, s_window},
};
const int dt_nshapes = (int)(sizeof dt_shapes / sizeof *dt_shapes);

/* ---- schemas and histories ---- */

static void gen_stream(dt_rng_t *r, int i, dt_rel_t *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "s%d", i);
    s->keyed = dt_pct(r, 60);
    s->ncols = 2 + dt_int(r, 4);
    for (int c = 0; c < s->ncols; c++) {
        snprintf(s->cols[c], sizeof s->cols[c], "%c%d", "abc"[i], c);
        s->types[c] = c == 0 && s->keyed ? (dt_pct(r, 70) ? DT_INT : DT_TEXT)
                      : dt_pct(r, 7) ? DT_NUM : dt_pct(r, 9) ? DT_JSON : any_type(r);
    }
}

static ss_row_t *gen_row(dt_rng_t *r, const dt_rel_t *s)
{
    ss_row_t *row = ss_row_new(s->ncols);
    for (int c = 0; c < s->ncols; c++) {
        ss_value_t v = c == 0 && s->keyed ? gen_key(r, s->types[0]) : gen_value(r, s->types[c], 1);
        ss_row_set(row, c, &v);
    }
    return row;
}

static void push_op(dt_case_t *c, int *cap, int stream, int del, ss_row_t *row)
{
    if (c->nops == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        c->ops = realloc(c->ops, (size_t)*cap * sizeof *c->ops);
    }
    c->ops[c->nops++] = (dt_op_t){stream, del, row};
}

/* The live rows of each stream while the history is drawn (to pick rows to update/delete). */
typedef struct live {
    int n, cap;
    ss_row_t **rows;
} live_t;

static void live_del(live_t *l, int i)
{
    ss_row_free(l->rows[i]);
    l->rows[i] = l->rows[--l->n];
}

static int live_find_key(const live_t *l, const ss_value_t *k)
{
    for (int i = 0; i < l->n; i++)
        if (ss_val_cmp(&l->rows[i]->v[0], k) == 0)
            return i;
    return -1;
}

static void live_add(live_t *l, ss_row_t *r)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->rows = realloc(l->rows, (size_t)l->cap * sizeof *l->rows);
    }
    l->rows[l->n++] = r;
}

static void gen_history(dt_rng_t *r, dt_case_t *c)
{
    live_t live[DT_MAXSTREAMS] = {{0}};
    int cap = 0, n = 10 + dt_int(r, 110);
    for (int k = 0; k < n; k++) {
        int si = dt_int(r, c->nstreams);
        dt_rel_t *s = &c->s[si];
        live_t *l = &live[si];
        int x = dt_int(r, 100);
        if (s->keyed) {
            if (x < 55 || !l->n) { /* insert or update (upsert) */
                ss_row_t *row = gen_row(r, s);
                int at = live_find_key(l, &row->v[0]);
                if (at >= 0)
                    live_del(l, at);
                live_add(l, ss_row_copy(row));
                push_op(c, &cap, si, 0, row);
            } else if (x < 70) { /* key change: the row moves to another key */
                int at = dt_int(r, l->n);
                ss_row_t *old = l->rows[at], *nw = ss_row_copy(old);
                ss_value_t nk = gen_key(r, s->types[0]);
                ss_row_set(nw, 0, &nk);
                push_op(c, &cap, si, 1, ss_row_copy(old));
                live_del(l, at);
                int other = live_find_key(l, &nw->v[0]);
                if (other >= 0)
                    live_del(l, other);
                live_add(l, ss_row_copy(nw));
                push_op(c, &cap, si, 0, nw);
            } else if (x < 90) { /* delete a present key */
                int at = dt_int(r, l->n);
                push_op(c, &cap, si, 1, ss_row_copy(l->rows[at]));
                live_del(l, at);
            } else { /* delete a key that may be absent */
                ss_row_t *row = gen_row(r, s);
                int at = live_find_key(l, &row->v[0]);
                if (at >= 0)
                    live_del(l, at);
                push_op(c, &cap, si, 1, row);
            }
        } else {
            if (x < 55 || !l->n) {
                ss_row_t *row = gen_row(r, s);
                live_add(l, ss_row_copy(row));
                push_op(c, &cap, si, 0, row);
            } else if (x < 70) { /* a duplicate */
                ss_row_t *row = ss_row_copy(l->rows[dt_int(r, l->n)]);
                live_add(l, ss_row_copy(row));
                push_op(c, &cap, si, 0, row);
            } else if (x < 90) {
                int at = dt_int(r, l->n);
                push_op(c, &cap, si, 1, ss_row_copy(l->rows[at]));
                live_del(l, at);
            } else { /* a delete of a row that is (most likely) not there */
                ss_row_t *row = gen_row(r, s);
                for (int i = 0; i < l->n; i++)
                    if (ss_row_cmp(l->rows[i], row) == 0) {
                        live_del(l, i);
                        break;
                    }
                push_op(c, &cap, si, 1, row);
            }
        }
    }
    for (int i = 0; i < DT_MAXSTREAMS; i++) {
        while (live[i].n)
            live_del(&live[i], 0);
        free(live[i].rows);
    }
}

int dt_case_gen(uint64_t seed, dt_case_t *c)
{
    memset(c, 0, sizeof *c);
    c->seed = seed;
    dt_rng_t r = {seed * 0x9E3779B97F4A7C15ULL + 0x1234567};
    for (int i = 0; i < 4; i++)
        dt_next(&r);
    c->nstreams = 1 + dt_int(&r, DT_MAXSTREAMS);
    for (int i = 0; i < c->nstreams; i++)
        gen_stream(&r, i, &c->s[i]);
    int nv = 2 + dt_int(&r, DT_MAXVIEWS - 1);
    int total = 0;
    for (int i = 0; i < dt_nshapes; i++)
        total += dt_shapes[i].weight;
    for (int tries = 0; c->nviews < nv && tries < 50; tries++) {
        int x = dt_int(&r, total), k = 0;
        while (x >= dt_shapes[k].weight)
            x -= dt_shapes[k++].weight;
        dt_rel_t *v = &c->v[c->nviews];
        memset(v, 0, sizeof *v);
        snprintf(v->name, sizeof v->name, "v%d", c->nviews);
        ss_buf_t q = SS_BUF_INIT;
        g_pgmode = v->pg = dt_pct(&r, 50); /* compared with PostgreSQL or with SQLite */
        if (dt_shapes[k].gen(&r, c, v, &q) && v->ncols > 0) {
            ss_buf_t a = SS_BUF_INIT, b = SS_BUF_INIT;
            dt_sql(ss_buf_cstr(&q), 0, &a);
            dt_sql(ss_buf_cstr(&q), 1, &b);
            v->sql = ss_buf_take(&a);
            v->pgsql = ss_buf_take(&b);
            ss_buf_free(&a);
            ss_buf_free(&b);
            v->shape = dt_shapes[k].name;
            c->nviews++;
        } else {
            memset(v, 0, sizeof *v);
        }
        ss_buf_free(&q);
    }
    g_pgmode = 0;
    gen_history(&r, c);
    c->ncheck = 0;
    if (c->nops > 10 && dt_pct(&r, 50))
        c->check[c->ncheck++] = c->nops / 2;
    c->check[c->ncheck++] = c->nops;
    c->restart_at = dt_pct(&r, 30) ? dt_int(&r, c->nops + 1) : -1;
    return 0;
}

void dt_case_free(dt_case_t *c)
{
    for (int i = 0; i < c->nviews; i++) {
        free(c->v[i].sql);
        free(c->v[i].pgsql);
    }
    for (int i = 0; i < c->nops; i++)
        ss_row_free(c->ops[i].row);
    free(c->ops);
    memset(c, 0, sizeof *c);
}

void dt_sql(const char *q, int for_pg, ss_buf_t *out)
{
    for (const char *p = q; *p; p++) {
        if (*p == DT_ASC_END || *p == DT_DESC_END) {
            if (for_pg)
                ss_buf_puts(out, *p == DT_ASC_END ? " NULLS FIRST" : " NULLS LAST");
        } else {
            ss_buf_putc(out, *p);
        }
    }
}
