/*
 * gen_expr.c — the expression generators (dt.h: dt_exprgens, dt_expr): typed expressions over a
 * view's visible columns, aggregates in grouped queries, and the PostgreSQL-only forms (ILIKE,
 * CAST, string/math functions, NUMERIC, JSON, STRING_AGG ...) drawn only in views compared with
 * PostgreSQL (dt_gen_t.pg). Forms where semstream, SQLite and PostgreSQL disagree are not drawn
 * (tests/difftest/README.md lists them).
 */
#include "dt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B(t) (1u << (t))
#define NUM (B(DT_INT) | B(DT_REAL))

/* ---- expressions ---- */

static void lit(dt_gen_t *g, dt_type_t t, ss_buf_t *out)
{
    if (t == DT_NUM || t == DT_JSON) { /* a typed literal: a bare 1.5 is NUMERIC in PostgreSQL only */
        ss_value_t v = dt_value(g->rng, t, 0);
        const char *tn = t == DT_NUM ? "NUMERIC" : "JSON";
        int cast = dt_pct(g->rng, 50);
        ss_buf_puts(out, cast ? "CAST(" : "(");
        dt_literal(&v, t, out);
        ss_buf_printf(out, cast ? " AS %s)" : ")::%s", tn);
        return;
    }
    ss_value_t v = dt_value(g->rng, t, 0);
    if (t == DT_INT && dt_pct(g->rng, 70))
        v = ss_val_int(dt_int(g->rng, 8) - 2);
    dt_literal(&v, t, out);
}

static dt_type_t cmp_type(dt_gen_t *g);

/* A column (or, outside aggregates of a grouped query, a GROUP BY expression) of type t. */
int dt_column(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
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
void dt_order_key(dt_gen_t *g, const char *expr, ss_buf_t *out)
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
        dt_order_key(g, ss_buf_cstr(&arg), out);
        ss_buf_putc(out, ')');
        break;
    }
    case DT_ARR: {
        int distinct = dt_pct(g->rng, 20);
        dt_expr(g, dt_pct(g->rng, 50) ? DT_INT : DT_TEXT, d, &arg);
        if (arg.data[0] == '\'')
            ss_buf_puts(&arg, "::TEXT");
        ss_buf_printf(out, "ARRAY_AGG(%s%s ORDER BY ", distinct ? "DISTINCT " : "", ss_buf_cstr(&arg));
        dt_order_key(g, ss_buf_cstr(&arg), out);
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
    if (!dt_column(g, DT_JSON, 0, &j)) {
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
    {"column", NUM | B(DT_TEXT) | B(DT_BOOL) | B(DT_NUM), 0, 40, dt_column},
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
