/*
 * semops_harness.h — shared by tests/check_semops.c: builds plan nodes and
 * templates by hand, opens a state database and a dispatcher with the real
 * stories260K model behind the local backend, and applies deltas to operators.
 * Header-only (static functions) so that it needs no CMake changes.
 */
#ifndef SEMOPS_HARNESS_H
#define SEMOPS_HARNESS_H

#include "ss_dispatch.h"
#include "ss_op.h"
#include "ss_plan.h"
#include "testutil.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ss_llm.h"
#include "plan_fixture.h"

typedef struct harness {
    sqlite3 *db;
    ss_dispatch_t *disp;
    ss_op_ctx_t ctx;
} harness_t;

static ss_infer_backend_t *h_backend(void)
{
    char buf[1024], err[SS_ERRSZ] = "";
    ss_infer_backend_t *b = ss_backend_local_new(tu_model_path("stories260K.gguf", buf, sizeof buf), 1, err,
                                                 sizeof err);
    ck_assert_msg(b != NULL, "local backend: %s", err);
    return b;
}

static void h_open(harness_t *h)
{
    memset(h, 0, sizeof *h);
    char err[SS_ERRSZ] = "";
    ck_assert_int_eq(sqlite3_open(":memory:", &h->db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    ss_dispatch_opts_t o = {.cache_path = NULL, .max_batch = 32, .use_cache = 0};
    ck_assert_msg(ss_dispatch_open(&o, &h->disp, err, sizeof err) == SS_OK, "dispatch: %s", err);
    ck_assert_msg(ss_dispatch_add_model(h->disp, "default", h_backend(), 1, err, sizeof err) == SS_OK,
                  "add model: %s", err);
    h->ctx.db = h->db;
    h->ctx.disp = h->disp;
}

static void h_close(harness_t *h)
{
    ss_dispatch_close(h->disp);
    sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(h->db);
    memset(h, 0, sizeof *h);
}

/* fx_tmpl, asserting that every {reference} names a column. */
static ss_template_t *h_tmpl(const char *src, const ss_schema_t *s0, const ss_schema_t *s1)
{
    ss_template_t *t = fx_tmpl(src, s0, s1);
    for (int i = 0; i < t->nparts; i++)
        if (t->parts[i].name)
            ck_assert_int_ge(t->parts[i].col, 0);
    return t;
}

static ss_plan_node_t *h_source(int id, const char *spec)
{
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_SOURCE);
    n->id = id;
    n->schema = fx_schema(spec);
    return n;
}

/* Output schema = in0 (+ in1) + extra TEXT columns named in extra ("a,b"; NULL = none). */
static ss_schema_t *h_concat(const ss_schema_t *a, const ss_schema_t *b, const char *extra)
{
    int ne = 0;
    if (extra)
        for (const char *c = extra, *d = extra; d; d = strchr(c, ','), c = d ? d + 1 : c)
            ne++;
    ss_schema_t *s = ss_schema_new(a->n + (b ? b->n : 0) + ne);
    int k = 0;
    for (int i = 0; i < a->n; i++, k++)
        ss_schema_set(s, k, a->names[i], a->types[i], a->is_key[i]);
    for (int i = 0; b && i < b->n; i++, k++)
        ss_schema_set(s, k, b->names[i], b->types[i], 0);
    if (extra) {
        char *dup = strdup(extra), *save = NULL;
        for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save), k++)
            ss_schema_set(s, k, tok, SS_COL_TEXT, 0);
        free(dup);
    }
    return s;
}

static ss_op_t *h_op(harness_t *h, const ss_plan_node_t *n)
{
    char err[SS_ERRSZ] = "";
    ss_op_t *op = NULL;
    ck_assert_msg(ss_op_new(n, &op, err, sizeof err) == SS_OK, "op_new: %s", err);
    ck_assert_msg(op->vt->init(op, &h->ctx, err, sizeof err) == SS_OK, "init: %s", err);
    return op;
}

/* Applies in on port and adds the output to acc (consolidated). Returns calls spent. */
static int64_t h_apply(harness_t *h, ss_op_t *op, int port, ss_zset_t *in, ss_zset_t *acc)
{
    char err[SS_ERRSZ] = "";
    ss_zset_t out;
    ss_zset_init(&out);
    int64_t before = op->stats.infer.requests;
    ss_zset_consolidate(in);
    int rc = op->vt->apply(op, &h->ctx, port, in, &out, err, sizeof err);
    ck_assert_msg(rc == SS_OK, "apply: rc %d %s", rc, err);
    if (acc) {
        ss_zset_extend(acc, &out, 1);
        ss_zset_consolidate(acc);
    }
    ss_zset_destroy(&out);
    return op->stats.infer.requests - before;
}

static ss_row_t *h_row(int n, ...)
{
    /* arguments: for each column a type char 'i' (int64_t) or 't' (const char *) then the value */
    va_list ap;
    va_start(ap, n);
    ss_row_t *r = ss_row_new(n);
    for (int i = 0; i < n; i++) {
        int t = va_arg(ap, int);
        ss_value_t v;
        if (t == 'i') {
            v = ss_val_int(va_arg(ap, int64_t));
        } else {
            const char *s = va_arg(ap, const char *);
            v = s ? ss_val_text_ref(s, strlen(s)) : ss_val_null();
        }
        ss_row_set(r, i, &v);
    }
    va_end(ap);
    return r;
}

static void h_dump(const char *what, const ss_zset_t *z)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_zset_dump(z, NULL, &b);
    fprintf(stderr, "%s:\n%s\n", what, ss_buf_cstr(&b));
    ss_buf_free(&b);
}

#endif
