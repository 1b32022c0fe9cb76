/*
 * sem_extract.c — SEM_EXTRACT('template', 'name TYPE, ...') and SEM_MAP('template',
 * schema => '...'): structured output. One GENERATE per distinct row asks for a JSON
 * object whose shape the request's json_schema fixes: the in-process engine
 * constrains decoding to it token by token (gpu/grammar.c), so the answer always
 * parses and its values have the declared types; an OpenAI-compatible server gets it
 * as response_format {type: json_schema}. SEM_EXTRACT appends one typed column per
 * field (TEXT, INT, REAL, NUMERIC, BOOLEAN; null when the model gives none); SEM_MAP
 * with a schema appends the JSON value as one JSON column. Linear.
 *
 * State: st_<id>_memo(k = canonical encoding of the template's columns, v = the JSON
 * text, refs = live weight), as SEM_MAP: deletes and updates that leave the referenced
 * columns unchanged cost no call. An answer that is not an object of the schema (a
 * server that ignored it) fails the batch naming the row, never a silent NULL.
 */
#include "ss_sem.h"

#include "ss_jschema.h"
#include "ss_json.h"

#include <stdlib.h>
#include <string.h>

typedef struct sem_extract {
    int cols[SS_SEM_MAXCOLS];
    int ncols;
    int max_tokens;
    int json;             /* 1: one JSON column (SEM_MAP with schema) */
    int nout;             /* columns appended */
    char *schema;         /* JSON Schema text sent with every request (owned) */
    ss_buf_t task;        /* the task line: what to extract */
} sem_extract_t;

typedef struct extract_run {
    ss_op_t *op;
    ss_zset_t *out;
} extract_run_t;

static int extract_build(void *ud, const ss_row_t *row, ss_buf_t *prompt, ss_infer_req_t *req)
{
    extract_run_t *r = ud;
    sem_extract_t *x = r->op->impl;
    size_t pre = 0;
    int rc = ss_sem_prompt(prompt, ss_buf_cstr(&x->task), r->op->node->tmpl, row, NULL, " (JSON)", &pre);
    ss_sem_req_generate(req, NULL, pre, x->max_tokens);
    req->stop = NULL; /* the value ends where the schema says */
    req->json_schema = x->schema;
    ss_sem_req_sampling(req, r->op->node, ss_buf_cstr(prompt), prompt->len);
    return rc;
}

static int extract_encode(void *ud, const ss_infer_res_t *res, ss_buf_t *out)
{
    (void)ud;
    const char *t = res->text ? res->text : "";
    return ss_buf_append(out, t, strlen(t));
}

/* The value of field `name` of the JSON object j as a value of column type t (copied into o[i]). */
static int field_value(const char *j, size_t jn, const char *name, ss_coltype_t t, ss_row_t *o, int i, char *err,
                       size_t errsz)
{
    const char *vs = NULL;
    size_t vn = 0;
    if (!ss_jtext_get_key(j, jn, name, strlen(name), &vs, &vn))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "the answer has no field \"%s\"", name);
    const char *ty = ss_jtext_typeof(vs, vn);
    if (!strcmp(ty, "null"))
        return SS_OK; /* the row is NULL there already */
    ss_buf_t txt = SS_BUF_INIT;
    int isnull = 0, rc = ss_jtext_to_text(vs, vn, &txt, &isnull);
    ss_value_t v, cv;
    char *tmp = NULL;
    if (!rc && t == SS_COL_BOOL) {
        if (strcmp(ty, "boolean"))
            rc = ss_seterr(err, errsz, SS_ERR_INVALID, "field \"%s\" is %s, not a boolean", name, ty);
        else
            v = ss_val_int(vs[0] == 't');
    } else if (!rc && (t == SS_COL_INT || t == SS_COL_REAL || t == SS_COL_NUMERIC) && strcmp(ty, "number")) {
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "field \"%s\" is %s, not a number", name, ty);
    } else if (!rc) {
        v = ss_val_text_ref(ss_buf_cstr(&txt), txt.len);
    }
    if (!rc && t != SS_COL_BOOL && t != SS_COL_TEXT) {
        rc = ss_val_coerce(&v, t, &cv, &tmp, err, errsz);
        if (rc)
            ss_errprefix(err, errsz, "field \"%s\"", name);
        else
            v = cv;
    }
    if (!rc)
        rc = ss_row_set(o, i, &v);
    free(tmp);
    ss_buf_free(&txt);
    return rc;
}

static int extract_emit(void *ud, const ss_row_t *row, int64_t w, const char *v, size_t vn, char *err,
                        size_t errsz)
{
    extract_run_t *r = ud;
    sem_extract_t *x = r->op->impl;
    const ss_schema_t *s = r->op->node->schema;
    int n = row->n + x->nout;
    if (!s || s->n != n)
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "sem_extract (node %d): schema has %d columns, row %d + %d",
                         r->op->node->id, s ? s->n : 0, row->n, x->nout);
    ss_buf_t j = SS_BUF_INIT;
    char jerr[160];
    int rc = ss_jtext_compact(v, vn, &j, jerr, sizeof jerr);
    if (rc || strcmp(ss_jtext_typeof(j.data, j.len), "object")) {
        ss_buf_free(&j);
        ss_seterr(err, errsz, SS_ERR_INVALID, "SEM_EXTRACT: the model's answer is not a JSON object of the schema: %.200s",
                  v);
        return ss_op_row_error(r->op, row, err, errsz);
    }
    ss_row_t *o = ss_row_new(n);
    rc = o ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; i < row->n && !rc; i++)
        rc = ss_row_set(o, i, &row->v[i]);
    if (!rc && x->json) {
        ss_value_t jv = ss_val_json_ref(j.data, j.len);
        rc = ss_row_set(o, row->n, &jv);
    }
    for (int i = 0; !x->json && i < x->nout && !rc; i++) {
        rc = field_value(j.data, j.len, s->names[row->n + i], s->types[row->n + i], o, row->n + i, err, errsz);
        if (rc == SS_ERR_INVALID) {
            ss_errprefix(err, errsz, "SEM_EXTRACT: answer %.200s", ss_buf_cstr(&j));
            rc = ss_op_row_error(r->op, row, err, errsz);
        }
    }
    ss_buf_free(&j);
    if (rc) {
        ss_row_free(o);
        return rc;
    }
    r->op->stats.rows_out++;
    return ss_zset_add(r->out, o, w);
}

static int extract_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                         size_t errsz)
{
    sem_extract_t *x = op->impl;
    (void)port;
    extract_run_t run = {op, out};
    ss_sem_pointwise_t pw = {
        .op = op, .ctx = ctx, .cols = x->cols, .ncols = x->ncols, .gc = ss_sem_memo_prune(op->node),
        .build = extract_build, .encode = extract_encode, .emit = extract_emit, .ud = &run,
    };
    return ss_sem_memo_apply(&pw, in, err, errsz);
}

static const char *extract_strategy(const ss_op_t *op)
{
    (void)op;
    return "1 GENERATE constrained to the schema's JSON per inserted row; answers memoised by the template's "
           "columns: 0 calls per delete or unchanged update";
}

static void extract_destroy(ss_op_t *op)
{
    sem_extract_t *x = op->impl;
    if (x) {
        free(x->schema);
        ss_buf_free(&x->task);
    }
    free(x);
    op->impl = NULL;
}

static const ss_op_vtable_t sem_extract_vt = {
    .name = "sem_extract",
    .kind = SS_OPK_LINEAR,
    .init = ss_sem_memo_init,
    .apply = extract_apply,
    .snapshot = NULL,
    .strategy = extract_strategy,
    .destroy = extract_destroy,
};

/* The JSON Schema of the node (its column list, or the JSON Schema given to SEM_MAP) and the
 * task line naming the fields. */
static int extract_schema(const ss_plan_node_t *N, sem_extract_t *x, char *err, size_t errsz)
{
    const char *spec = ss_plan_opt(N, "schema");
    int in = N->in[0] && N->in[0]->schema ? N->in[0]->schema->n : 0;
    if (!spec || !N->schema)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_extract (node %d): needs a schema", N->id);
    ss_jschema_t *s = NULL;
    int rc = SS_OK;
    if (spec[0] == '{') {
        rc = ss_jschema_parse(spec, strlen(spec), &s, err, errsz);
    } else {
        ss_jscol_t *c = NULL;
        int n = 0, off = 0;
        rc = ss_jscols_parse(spec, &c, &n, &off, err, errsz);
        if (!rc && ss_jschema_from_cols(c, n, &s))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        ss_jscols_free(c, n);
    }
    ss_buf_t b = SS_BUF_INIT;
    if (!rc && ss_jschema_write(s, &b))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc && !x->json && (!(s->types & SS_JS_OBJECT) || s->nprops != N->schema->n - in))
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "sem_extract (node %d): %d fields for %d columns", N->id,
                       s->nprops, N->schema->n - in);
    if (!rc) {
        x->schema = ss_buf_take(&b);
        rc = ss_buf_puts(&x->task, "Extract from the input, as one JSON object");
        for (int i = 0; !rc && (s->types & SS_JS_OBJECT) && i < s->nprops; i++)
            rc = ss_buf_printf(&x->task, "%s%s", i ? ", " : " with the fields ", s->names[i]);
        if (!rc)
            rc = ss_buf_puts(&x->task, "; use null for what the input does not say.");
    }
    ss_buf_free(&b);
    ss_jschema_free(s);
    return rc;
}

int ss_op_sem_extract_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (!N->tmpl || N->nin < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_extract (node %d): needs a template and an input", N->id);
    int rc = ss_sem_memo_check(N, err, errsz);
    if (rc)
        return rc;
    sem_extract_t *x = calloc(1, sizeof *x);
    if (!x)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    const char *out = ss_plan_opt(N, "output");
    x->json = out && !strcmp(out, "json");
    x->ncols = ss_sem_tmpl_cols(N, 0, x->cols);
    int64_t mt = ss_plan_opt_int(N, "max_tokens", 256);
    x->max_tokens = mt < 1 ? 1 : mt > 8192 ? 8192 : (int)mt;
    x->nout = N->schema && N->in[0] && N->in[0]->schema ? N->schema->n - N->in[0]->schema->n : 0;
    op->impl = x;
    op->vt = &sem_extract_vt;
    rc = extract_schema(N, x, err, errsz);
    if (rc)
        extract_destroy(op);
    return rc;
}
