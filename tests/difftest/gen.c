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
    static const char *const n[] = {"INT", "REAL", "TEXT", "BOOLEAN"};
    return t < DT_NTYPES ? n[t] : "?";
}

/* ---- values ---- */

static const char *const TEXTS[] = {"a", "b", "A", "ab", "Ab", "", "x y", "it's", "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
                                    "Z\xc3\xbcrich", "a_b", "50%", "\xf0\x9f\x99\x82", "aa", "abc", " a ", "B"};
static const char *const KEYS[] = {"k0", "k1", "k2", "k3", "k4", "k5", "\xce\xba" "6", "K7", "k8", "k9"};
#define NTEXTS ((int)(sizeof TEXTS / sizeof *TEXTS))

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
    ss_value_t v = gen_value(g->rng, t, 0);
    if (t == DT_INT && dt_pct(g->rng, 70))
        v = ss_val_int(dt_int(g->rng, 8) - 2);
    dt_literal(&v, t, out);
}

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

static int g_round(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
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
    static const char *const fns[] = {"COALESCE", "IFNULL", "NULLIF"};
    ss_buf_printf(out, "%s(", fns[dt_int(g->rng, 3)]);
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

static int g_substr(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    (void)t;
    ss_buf_puts(out, dt_pct(g->rng, 50) ? "SUBSTR(" : "SUBSTRING(");
    dt_expr(g, DT_TEXT, depth - 1, out);
    ss_buf_printf(out, ", %d", dt_int(g->rng, 6) - 2);
    if (dt_pct(g->rng, 60))
        ss_buf_printf(out, ", %d", dt_int(g->rng, 5) - 1);
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
    dt_type_t a = (dt_type_t)dt_int(g->rng, 3); /* INT, REAL or TEXT */
    dt_type_t b = a == DT_TEXT ? DT_TEXT : dt_pct(g->rng, 70) ? a : (a == DT_INT ? DT_REAL : DT_INT);
    ss_buf_putc(out, '(');
    dt_expr(g, a, depth - 1, out);
    ss_buf_puts(out, ops[dt_int(g->rng, 8)]);
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

/* An aggregate call (grouped queries, outside other aggregates). */
static int g_agg(dt_gen_t *g, dt_type_t t, int depth, ss_buf_t *out)
{
    if (!g->grouped || g->in_agg)
        return 0;
    int d = depth > 1 ? 1 : 0;
    g->in_agg = 1;
    int c = dt_int(g->rng, 100);
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
    default:
        g->in_agg = 0;
        return 0;
    }
    g->in_agg = 0;
    return 1;
}

#define B(t) (1u << (t))
#define NUM (B(DT_INT) | B(DT_REAL))

/* The expression generators: to test a new expression feature, add an entry here. */
const dt_exprgen_t dt_exprgens[] = {
    {"column", NUM | B(DT_TEXT) | B(DT_BOOL), 0, 40, g_column},
    {"literal", NUM | B(DT_TEXT) | B(DT_BOOL), 0, 8, g_literal},
    {"aggregate", NUM | B(DT_TEXT), 0, 30, g_agg},
    {"arith", NUM, 1, 10, g_arith},
    {"unary -/+", NUM, 1, 2, g_neg},
    {"abs", NUM, 1, 2, g_abs},
    {"round", B(DT_REAL), 1, 3, g_round},
    {"length", B(DT_INT), 1, 2, g_length},
    {"coalesce", NUM | B(DT_TEXT), 1, 3, g_coalesce},
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

/* A relation to read: a stream or an earlier view (NULL when there is none). */
static const dt_rel_t *pick_rel(dt_rng_t *r, const dt_case_t *c, int views_too)
{
    int n = c->nstreams + (views_too ? c->nviews : 0);
    int k = dt_int(r, n);
    return k < c->nstreams ? &c->s[k] : &c->v[k - c->nstreams];
}

static void scope_of(dt_gen_t *g, const dt_rel_t *rel, const char *qual)
{
    for (int i = 0; i < rel->ncols && g->ncols < 24; i++) {
        dt_col_t *c = &g->cols[g->ncols++];
        snprintf(c->sql, sizeof c->sql, "%s%s%s", qual ? qual : "", qual ? "." : "", rel->cols[i]);
        c->type = rel->types[i];
    }
}

static dt_type_t any_type(dt_rng_t *r) { return (dt_type_t)dt_int(r, DT_NTYPES); }

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
    dt_gen_t g = {.rng = r};
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
    dt_gen_t g = {.rng = r};
    int alias = dt_pct(r, 50);
    scope_of(&g, in, alias ? "t" : NULL);
    ss_buf_printf(out, "SELECT %s FROM %s%s", alias ? "t.*" : "*", in->name, alias ? " AS t" : "");
    for (int i = 0; i < in->ncols; i++) {
        memcpy(v->cols[i], in->cols[i], sizeof v->cols[i]);
        v->types[i] = in->types[i];
    }
    v->ncols = in->ncols;
    where(&g, out, 70);
    if (dt_pct(r, 15)) /* ORDER BY without LIMIT: does not change the bag */
        ss_buf_puts(out, " ORDER BY 1 DESC");
    return 1;
}

static int s_distinct(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *in = pick_rel(r, c, 1);
    dt_gen_t g = {.rng = r};
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
        static const dt_type_t at[] = {DT_INT, DT_INT, DT_REAL, DT_TEXT};
        item(g, v, at[dt_int(r, 4)], dt_pct(r, 70) ? 0 : 1, out);
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
    dt_gen_t g = {.rng = r};
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

/* Two relations joined on columns of one type (INNER or LEFT), then a select or a grouping. */
static int s_join(dt_rng_t *r, const dt_case_t *c, dt_rel_t *v, ss_buf_t *out)
{
    const dt_rel_t *a = pick_rel(r, c, 1), *b = pick_rel(r, c, 1);
    if (a == b)
        return 0;
    int ka = dt_int(r, a->ncols), kb = -1;
    for (int t = 0; t < 8 && kb < 0; t++) {
        int x = dt_int(r, b->ncols);
        if (b->types[x] == a->types[ka] || (a->types[ka] <= DT_REAL && b->types[x] <= DT_REAL && dt_pct(r, 30)))
            kb = x;
    }
    if (kb < 0)
        return 0;
    dt_gen_t g = {.rng = r};
    scope_of(&g, a, "x");
    scope_of(&g, b, "y");
    ss_buf_t on = SS_BUF_INIT, w = SS_BUF_INIT, tail = SS_BUF_INIT;
    int left = dt_pct(r, 40);
    static const char *const inner[] = {"JOIN", "INNER JOIN"}, *const outer[] = {"LEFT JOIN", "LEFT OUTER JOIN"};
    ss_buf_printf(&on, " FROM %s %sx %s %s y ON x.%s = y.%s", a->name, dt_pct(r, 50) ? "AS " : "",
                  left ? outer[dt_int(r, 2)] : inner[dt_int(r, 2)], b->name, a->cols[ka], b->cols[kb]);
    if (dt_pct(r, 25)) {
        ss_buf_puts(&on, " AND ");
        dt_expr(&g, DT_BOOL, 1, &on);
    }
    where(&g, &w, 30);
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
    if (!ok)
        return 0;
    ss_buf_puts(out, " ORDER BY ");
    for (int i = 0; i < v->ncols; i++)
        ss_buf_printf(out, "%s%d%s", i ? ", " : "", i + 1, dt_pct(r, 40) ? " DESC" : "");
    ss_buf_printf(out, " LIMIT %d", dt_int(r, 6) + (dt_pct(r, 10) ? 0 : 1));
    return 1;
}

/* The query-shape generators: to test a new query feature, add an entry here. */
const dt_shape_t dt_shapes[] = {
    {"select", 20, s_select},
    {"star", 6, s_star},
    {"distinct", 8, s_distinct},
    {"group", 25, s_group},
    {"join", 20, s_join},
    {"topk", 12, s_topk},
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
        s->types[c] = c == 0 && s->keyed ? (dt_pct(r, 70) ? DT_INT : DT_TEXT) : any_type(r);
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
        if (dt_shapes[k].gen(&r, c, v, &q) && v->ncols > 0) {
            v->sql = ss_buf_take(&q);
            v->shape = dt_shapes[k].name;
            c->nviews++;
        } else {
            memset(v, 0, sizeof *v);
        }
        ss_buf_free(&q);
    }
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
    for (int i = 0; i < c->nviews; i++)
        free(c->v[i].sql);
    for (int i = 0; i < c->nops; i++)
        ss_row_free(c->ops[i].row);
    free(c->ops);
    memset(c, 0, sizeof *c);
}
