/*
 * gen.c — the differential tester's cases (dt.h): values, schemas, delta histories, and a case's
 * views drawn from the two extension tables, dt_exprgens (typed expressions, gen_expr.c) and
 * dt_shapes (view queries, gen_shape.c), each in SQLite's or PostgreSQL's dialect.
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
    static const char *const n[] = {"INT", "REAL", "TEXT", "BOOLEAN", "NUMERIC", "JSON", "TEXT",
                                    "TIMESTAMP", "DATE", "INTERVAL"};
    return t <= DT_IVL ? n[t] : "?";
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

ss_value_t dt_value(dt_rng_t *r, dt_type_t t, int nullable)
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
    case DT_TS: case DT_DATE:
        return dt_time_value(r, t);
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
    case SS_TS: case SS_TSTZ: case SS_DATE: case SS_IVL: /* their text, quoted: no quote inside */
        ss_buf_putc(out, '\'');
        ss_val_to_text(v, out);
        ss_buf_putc(out, '\'');
        return;
    }
}

/* ---- schemas and histories ---- */

const char *dt_only;

static int only_time(void) { return dt_only && !strncmp(dt_only, "time", 4); }

static void gen_stream(dt_rng_t *r, int i, dt_rel_t *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "s%d", i);
    s->keyed = dt_pct(r, 60);
    s->ncols = 2 + dt_int(r, 4);
    for (int c = 0; c < s->ncols; c++) {
        snprintf(s->cols[c], sizeof s->cols[c], "%c%d", "abc"[i], c);
        s->types[c] = c == 0 && s->keyed ? (dt_pct(r, 70) ? DT_INT : DT_TEXT)
                      : dt_pct(r, 7) ? DT_NUM : dt_pct(r, 9) ? DT_JSON : dt_pct(r, 14) ? DT_TS
                      : dt_pct(r, 6) ? DT_DATE : dt_any_type(r);
    }
    if (only_time() && s->ncols > 1)
        s->types[s->ncols - 1] = DT_TS;
}

static ss_row_t *gen_row(dt_rng_t *r, const dt_rel_t *s)
{
    ss_row_t *row = ss_row_new(s->ncols);
    for (int c = 0; c < s->ncols; c++) {
        ss_value_t v = c == 0 && s->keyed ? gen_key(r, s->types[0]) : dt_value(r, s->types[c], 1);
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
    int total = 0, weight[64];
    for (int i = 0; i < dt_nshapes && i < 64; i++) {
        weight[i] = dt_only && strncmp(dt_shapes[i].name, dt_only, strlen(dt_only)) ? 0 : dt_shapes[i].weight;
        total += weight[i];
    }
    for (int tries = 0; total && c->nviews < nv && tries < 50; tries++) {
        int x = dt_int(&r, total), k = 0;
        while (x >= weight[k])
            x -= weight[k++];
        dt_rel_t *v = &c->v[c->nviews];
        memset(v, 0, sizeof *v);
        snprintf(v->name, sizeof v->name, "v%d", c->nviews);
        ss_buf_t q = SS_BUF_INIT;
        dt_pgmode = v->pg = dt_pct(&r, 50) || only_time(); /* compared with PostgreSQL or with SQLite */
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
    dt_pgmode = 0;
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
    int skip = 0;
    for (const char *p = q; *p; p++) {
        if (*p == DT_SS_ONLY || *p == DT_PG_ONLY) {
            skip = (*p == DT_PG_ONLY) != for_pg;
        } else if (*p == DT_ALT_END) {
            skip = 0;
        } else if (skip) {
        } else if (*p == DT_ASC_END || *p == DT_DESC_END) {
            if (for_pg)
                ss_buf_puts(out, *p == DT_ASC_END ? " NULLS FIRST" : " NULLS LAST");
        } else {
            ss_buf_putc(out, *p);
        }
    }
}
