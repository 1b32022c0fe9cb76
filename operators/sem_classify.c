/*
 * sem_classify.c — SEM_CLASSIFY('template', 'label1', 'label2', ...): appends the label
 * the model finds most likely for the row (TEXT). One CHOOSE request per distinct row
 * scores every label: the prompt runs once, each label's first token is read from its
 * last position, and labels of several tokens are scored by teacher forcing on forks
 * of the prompt's KV (the engine batches them into one further pass); the label with
 * the highest total log-probability wins (ties: the label written first). Never free
 * decoding, so the answer is always one of the labels. Linear.
 *
 * State: st_<id>_memo(k = canonical encoding of the template's columns, v = the label's
 * index, refs = live weight), as SEM_FILTER: deletes and updates that leave the
 * referenced columns unchanged cost no call.
 */
#include "ss_sem.h"

#include "ss_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sem_classify {
    int cols[SS_SEM_MAXCOLS];
    int ncols;
    int nlabels;
    char **labels;        /* owned: the labels as written */
    char **choices;       /* owned: " " + label, what the model is asked to continue with */
    ss_buf_t task;
} sem_classify_t;

typedef struct classify_run {
    ss_op_t *op;
    ss_zset_t *out;
} classify_run_t;

static int classify_build(void *ud, const ss_row_t *row, ss_buf_t *prompt, ss_infer_req_t *req)
{
    classify_run_t *r = ud;
    sem_classify_t *c = r->op->impl;
    size_t pre = 0;
    int rc = ss_sem_prompt(prompt, ss_buf_cstr(&c->task), r->op->node->tmpl, row, NULL, " (one of the labels)", &pre);
    ss_sem_req_choose(req, NULL, pre, (const char *const *)c->choices);
    req->nchoices = c->nlabels;
    return rc;
}

static int classify_encode(void *ud, const ss_infer_res_t *res, ss_buf_t *out)
{
    classify_run_t *r = ud;
    sem_classify_t *c = r->op->impl;
    int best = 0;
    for (int i = 1; res->probs && i < res->nprobs && i < c->nlabels; i++)
        if (res->probs[i] > res->probs[best])
            best = i;
    return ss_buf_printf(out, "%d", best);
}

static int classify_emit(void *ud, const ss_row_t *row, int64_t w, const char *v, size_t vn, char *err,
                         size_t errsz)
{
    classify_run_t *r = ud;
    sem_classify_t *c = r->op->impl;
    (void)vn;
    int i = atoi(v);
    if (i < 0 || i >= c->nlabels)
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "sem_classify (node %d): stored label %d of %d", r->op->node->id,
                         i, c->nlabels);
    ss_row_t *o = ss_row_new(row->n + 1);
    int rc = o ? SS_OK : SS_ERR_NOMEM;
    for (int k = 0; k < row->n && !rc; k++)
        rc = ss_row_set(o, k, &row->v[k]);
    ss_value_t t = ss_val_text_ref(c->labels[i], strlen(c->labels[i]));
    if (!rc)
        rc = ss_row_set(o, row->n, &t);
    if (rc) {
        ss_row_free(o);
        return rc;
    }
    r->op->stats.rows_out++;
    return ss_zset_add(r->out, o, w);
}

static int classify_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                          size_t errsz)
{
    sem_classify_t *c = op->impl;
    (void)port;
    classify_run_t run = {op, out};
    ss_sem_pointwise_t pw = {
        .op = op, .ctx = ctx, .cols = c->cols, .ncols = c->ncols, .gc = ss_sem_memo_prune(op->node),
        .build = classify_build, .encode = classify_encode, .emit = classify_emit, .ud = &run,
    };
    return ss_sem_memo_apply(&pw, in, err, errsz);
}

static const char *classify_strategy(const ss_op_t *op)
{
    (void)op;
    return "1 CHOOSE over the labels per inserted row (one forward pass; labels of several tokens scored on "
           "forks of it); memoised by the template's columns: 0 calls per delete or unchanged update";
}

static void classify_destroy(ss_op_t *op)
{
    sem_classify_t *c = op->impl;
    for (int i = 0; c && i < c->nlabels; i++) {
        free(c->labels[i]);
        free(c->choices[i]);
    }
    if (c) {
        free(c->labels);
        free(c->choices);
        ss_buf_free(&c->task);
    }
    free(c);
    op->impl = NULL;
}

static const ss_op_vtable_t sem_classify_vt = {
    .name = "sem_classify",
    .kind = SS_OPK_LINEAR,
    .init = ss_sem_memo_init,
    .apply = classify_apply,
    .snapshot = NULL,
    .strategy = classify_strategy,
    .destroy = classify_destroy,
};

/* The labels from option labels (a JSON array of strings) and the task line listing them. */
static int load_labels(const ss_plan_node_t *N, sem_classify_t *c, char *err, size_t errsz)
{
    const char *l = ss_plan_opt(N, "labels");
    ss_json_doc_t *d = NULL;
    char jerr[128];
    if (!l || ss_json_parse(l, strlen(l), 0, &d, NULL, jerr, sizeof jerr))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_classify (node %d): needs its labels", N->id);
    const ss_json_t *a = ss_json_root(d);
    int rc = a->t == SS_JSON_ARRAY && a->u.arr.n >= 2 ? SS_OK
             : ss_seterr(err, errsz, SS_ERR_INVALID, "sem_classify (node %d): needs at least two labels", N->id);
    size_t n = rc ? 0 : a->u.arr.n;
    c->labels = calloc(n ? n : 1, sizeof *c->labels);
    c->choices = calloc(n ? n : 1, sizeof *c->choices);
    if (!rc && (!c->labels || !c->choices))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = ss_buf_puts(&c->task, "Answer with the one label that fits the input best, one of:");
    for (size_t i = 0; i < n && !rc; i++) {
        const char *s = ss_json_str(&a->u.arr.items[i]);
        c->labels[i] = ss_strdup(s ? s : "");
        c->choices[i] = ss_sprintf(" %s", s ? s : "");
        c->nlabels = (int)i + 1;
        if (!c->labels[i] || !c->choices[i])
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        else
            rc = ss_buf_printf(&c->task, "%s %s", i ? "," : "", s ? s : "");
    }
    if (!rc)
        rc = ss_buf_putc(&c->task, '.');
    ss_json_free(d);
    return rc;
}

int ss_op_sem_classify_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (!N->tmpl || N->nin < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_classify (node %d): needs a template and an input", N->id);
    int rc = ss_sem_memo_check(N, err, errsz);
    if (rc)
        return rc;
    sem_classify_t *c = calloc(1, sizeof *c);
    if (!c)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    c->ncols = ss_sem_tmpl_cols(N, 0, c->cols);
    op->impl = c;
    op->vt = &sem_classify_vt;
    rc = load_labels(N, c, err, errsz);
    if (rc)
        classify_destroy(op);
    return rc;
}
