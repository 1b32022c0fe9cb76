/*
 * sem_common.c — implements ss_sem.h: prompt rendering with delimited fields,
 * request builders, the one-call-per-batch bridge to the dispatcher, SQLite memo
 * tables with reference counts, pointwise (per-row) maintenance shared by
 * SEM_FILTER / SEM_MAP / SEM_SCORE, embeddings and an exact vector index.
 */
#include "ss_sem.h"

#include "ss_dispatch.h"
#include "ss_embed.h"
#include "ss_vindex.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ss_sem_yesno[2] = {" yes", " no"};
const char *const ss_sem_ab[2] = {" A", " B"};

/* ---------------------------------------------------------------- prompts */

int ss_sem_escape(ss_buf_t *out, const char *s, size_t n)
{
    int rc = SS_OK;
    size_t run = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *ent = NULL;
        switch (s[i]) {
        case '<': ent = "&lt;"; break;
        case '>': ent = "&gt;"; break;
        case '&': ent = "&amp;"; break;
        case '#': ent = "&#35;"; break;
        case '\0': ent = " "; break;
        default: break;
        }
        if (!ent)
            continue;
        rc = ss_buf_append(out, s + run, i - run);
        if (!rc)
            rc = ss_buf_puts(out, ent);
        run = i + 1;
    }
    if (!rc)
        rc = ss_buf_append(out, s + run, n - run);
    return rc;
}

int ss_sem_head(ss_buf_t *out, const char *task, const ss_template_t *t)
{
    int rc = ss_buf_printf(out, "### Task\n%s\n### Instruction\n", task);
    for (int i = 0; t && i < t->nparts && !rc; i++) {
        const ss_tmpl_part_t *p = &t->parts[i];
        rc = p->text ? ss_sem_escape(out, p->text, strlen(p->text))
                     : ss_buf_printf(out, "{%s}", p->name ? p->name : "?");
    }
    return rc ? rc : ss_buf_putc(out, '\n');
}

/* A tag name: the reference's name with anything but [A-Za-z0-9._] replaced by '_'. */
static int put_tag(ss_buf_t *out, const char *label, const char *name)
{
    int rc = label ? ss_buf_puts(out, label) : SS_OK;
    for (const char *c = name ? name : "field"; *c && !rc; c++)
        rc = ss_buf_putc(out, (isalnum((unsigned char)*c) || *c == '.' || *c == '_') ? *c : '_');
    return rc;
}

static int put_field(ss_buf_t *out, const char *label, const char *name, const ss_value_t *v)
{
    ss_buf_t txt = SS_BUF_INIT;
    int rc = ss_buf_putc(out, '<');
    if (!rc) rc = put_tag(out, label, name);
    if (!rc) rc = ss_buf_putc(out, '>');
    if (!rc) rc = v->t == SS_NULL ? ss_buf_puts(&txt, "NULL") : ss_val_to_text(v, &txt);
    if (!rc) rc = ss_sem_escape(out, ss_buf_cstr(&txt), txt.len);
    if (!rc) rc = ss_buf_puts(out, "</");
    if (!rc) rc = put_tag(out, label, name);
    if (!rc) rc = ss_buf_puts(out, ">\n");
    ss_buf_free(&txt);
    return rc;
}

int ss_sem_fields(ss_buf_t *out, const ss_template_t *t, int side, const ss_row_t *row,
                  const char *label)
{
    int cols[SS_SEM_MAXCOLS];
    int n = ss_template_cols(t, side, cols, SS_SEM_MAXCOLS);
    for (int j = 0; j < n; j++) {
        const char *name = NULL;
        for (int i = 0; i < t->nparts && !name; i++)
            if (!t->parts[i].text && t->parts[i].side == side && t->parts[i].col == cols[j])
                name = t->parts[i].name;
        if (cols[j] < 0 || cols[j] >= row->n)
            continue;
        int rc = put_field(out, label, name, &row->v[cols[j]]);
        if (rc)
            return rc;
    }
    return SS_OK;
}

int ss_sem_row_fields(ss_buf_t *out, const ss_schema_t *s, const ss_row_t *row)
{
    for (int i = 0; i < row->n; i++) {
        char tmp[16];
        const char *name = s && i < s->n && s->names[i] ? s->names[i] : NULL;
        if (!name) {
            snprintf(tmp, sizeof tmp, "c%d", i);
            name = tmp;
        }
        int rc = put_field(out, NULL, name, &row->v[i]);
        if (rc)
            return rc;
    }
    return SS_OK;
}

int ss_sem_item(ss_buf_t *out, const char *tag, const char *text, size_t n)
{
    int rc = ss_buf_printf(out, "<%s>", tag);
    if (!rc) rc = ss_sem_escape(out, text, n);
    if (!rc) rc = ss_buf_printf(out, "</%s>\n", tag);
    return rc;
}

int ss_sem_prompt(ss_buf_t *out, const char *task, const ss_template_t *t, const ss_row_t *r0,
                  const ss_row_t *r1, const char *answer_hint, size_t *prefix_len)
{
    size_t start = out->len;
    int rc = ss_sem_head(out, task, t);
    if (prefix_len)
        *prefix_len = out->len - start;
    if (!rc) rc = ss_buf_puts(out, "### Input\n");
    if (!rc && r0) rc = ss_sem_fields(out, t, 0, r0, NULL);
    if (!rc && r1) rc = ss_sem_fields(out, t, 1, r1, NULL);
    if (!rc) rc = ss_buf_printf(out, "### Answer%s:", answer_hint ? answer_hint : "");
    return rc;
}

/* ---------------------------------------------------------------- requests */

void ss_sem_req_choose(ss_infer_req_t *r, const char *prompt, size_t prefix_len,
                       const char *const *choices)
{
    memset(r, 0, sizeof *r);
    r->kind = SS_INFER_CHOOSE;
    r->prompt = prompt;
    r->prefix_len = prefix_len;
    r->system_len = prefix_len; /* the head: a system message for a chat model */
    r->nchoices = 2;
    r->choices = choices;
}

void ss_sem_req_generate(ss_infer_req_t *r, const char *prompt, size_t prefix_len, int max_tokens)
{
    memset(r, 0, sizeof *r);
    r->kind = SS_INFER_GENERATE;
    r->prompt = prompt;
    r->prefix_len = prefix_len;
    r->system_len = prefix_len; /* the head: a system message for a chat model */
    r->max_tokens = max_tokens;
    r->temperature = 0.0f;
    r->stop = "\n";
}

void ss_sem_req_sampling(ss_infer_req_t *r, const ss_plan_node_t *n, const char *prompt, size_t len)
{
    double t = ss_plan_opt_real(n, "temperature", 0.0);
    r->temperature = t > 0 ? (float)t : 0.0f;
    r->seed = t > 0 ? ss_hash64(prompt, len, 0x7e3d) : 0;
}

void ss_sem_req_score(ss_infer_req_t *r, const char *prompt, size_t prefix_len)
{
    memset(r, 0, sizeof *r);
    r->kind = SS_INFER_SCORE;
    r->prompt = prompt;
    r->prefix_len = prefix_len;
    r->system_len = prefix_len; /* the head: a system message for a chat model */
    r->score_min = 1;
    r->score_max = 10;
}

int ss_sem_first(const ss_infer_res_t *r)
{
    return r->nprobs >= 2 && r->probs && r->probs[0] > r->probs[1];
}

int ss_sem_yes(const ss_infer_res_t *r, double yes_prob)
{
    if (yes_prob < 0)
        return ss_sem_first(r);
    return r->nprobs >= 1 && r->probs && r->probs[0] >= yes_prob;
}

double ss_sem_yes_prob(const ss_plan_node_t *n)
{
    double p = ss_plan_opt_real(n, "yes_prob", -1.0);
    return p < 0 ? -1.0 : p > 1 ? 1.0 : p;
}

char *ss_sem_gen_text(const ss_infer_res_t *r)
{
    const char *s = r->text ? r->text : "";
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    return ss_strndup(s, n);
}

int ss_sem_run(ss_op_t *op, ss_op_ctx_t *ctx, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res,
               char *err, size_t errsz)
{
    if (n <= 0)
        return SS_OK;
    memset(res, 0, sizeof *res * (size_t)n);
    if (!ctx || !ctx->disp)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "%s (node %d): no model is configured",
                         op->vt ? op->vt->name : "semantic operator", op->node->id);
    int rc = ss_dispatch_run(ctx->disp, op->node->model, &op->stats.infer, reqs, n, res, err, errsz);
    if (rc)
        ss_errprefix(err, errsz, "%s (node %d)", op->vt->name, op->node->id);
    return rc;
}

void ss_sem_res_free(ss_infer_res_t *res, int n)
{
    if (!res)
        return;
    for (int i = 0; i < n; i++)
        ss_infer_res_clear(&res[i]);
    free(res);
}

int ss_sem_max_tokens(const ss_plan_node_t *n, int dflt)
{
    int64_t v = ss_plan_opt_int(n, "max_tokens", dflt);
    return v < 1 ? 1 : v > 512 ? 512 : (int)v;
}

/* ---------------------------------------------------------------- keys */

int ss_sem_proj(const ss_row_t *row, const int *cols, int n, ss_buf_t *out)
{
    if (n == 0)
        return ss_row_encode(row, out);
    ss_row_t *p = ss_row_new(n);
    if (!p)
        return SS_ERR_NOMEM;
    int rc = SS_OK;
    for (int i = 0; i < n && !rc; i++)
        if (cols[i] >= 0 && cols[i] < row->n)
            rc = ss_row_set(p, i, &row->v[cols[i]]);
    if (!rc)
        rc = ss_row_encode(p, out);
    ss_row_free(p);
    return rc;
}

int ss_sem_tmpl_cols(const ss_plan_node_t *n, int side, int *cols)
{
    return n->tmpl ? ss_template_cols(n->tmpl, side, cols, SS_SEM_MAXCOLS) : 0;
}

/* ---------------------------------------------------------------- key sets */

int ss_sem_set_init(ss_sem_set_t *s, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    s->cap = cap;
    s->idx = malloc(cap * sizeof *s->idx);
    s->h = malloc(cap * sizeof *s->h);
    if (!s->idx || !s->h) {
        ss_sem_set_free(s);
        return SS_ERR_NOMEM;
    }
    for (size_t i = 0; i < cap; i++)
        s->idx[i] = -1;
    return SS_OK;
}

void ss_sem_set_free(ss_sem_set_t *s)
{
    free(s->idx);
    free(s->h);
    memset(s, 0, sizeof *s);
}

int ss_sem_set_add(ss_sem_set_t *s, const ss_buf_t *const *keys, const ss_buf_t *k, int idx)
{
    uint64_t h = ss_hash64(k->data ? k->data : "", k->len, 0x5e7);
    size_t m = s->cap - 1;
    for (size_t p = h & m;; p = (p + 1) & m) {
        if (s->idx[p] < 0) {
            s->idx[p] = idx;
            s->h[p] = h;
            return -1;
        }
        const ss_buf_t *o = keys[s->idx[p]];
        if (s->h[p] == h && o->len == k->len && (k->len == 0 || memcmp(o->data, k->data, k->len) == 0))
            return s->idx[p];
    }
}

/* ---------------------------------------------------------------- SQL */

int ss_sem_sqlerr(sqlite3 *db, char *err, size_t errsz, const char *what)
{
    return ss_seterr(err, errsz, SS_ERR_SQLITE, "%s: %s", what, sqlite3_errmsg(db));
}

int ss_sem_exec(sqlite3 *db, char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    if (!sql)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    int out = SS_OK;
    if (rc != SQLITE_OK)
        out = ss_seterr(err, errsz, SS_ERR_SQLITE, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    sqlite3_free(sql);
    return out;
}

int ss_sem_prepare(sqlite3 *db, sqlite3_stmt **st, char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    if (!sql)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    int out = SS_OK;
    if (rc != SQLITE_OK)
        out = ss_seterr(err, errsz, SS_ERR_SQLITE, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_free(sql);
    return out;
}

/* ---------------------------------------------------------------- memo */

int ss_sem_kv_create(sqlite3 *db, int node_id, const char *name, char *err, size_t errsz)
{
    return ss_sem_exec(db, err, errsz,
                       "CREATE TABLE IF NOT EXISTS st_%d_%s(k BLOB PRIMARY KEY, v BLOB, "
                       "refs INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
                       node_id, name);
}

int ss_sem_kv_open(ss_sem_kv_t *kv, sqlite3 *db, int node_id, const char *name, char *err,
                   size_t errsz)
{
    memset(kv, 0, sizeof *kv);
    kv->db = db;
    int rc = ss_sem_prepare(db, &kv->get, err, errsz, "SELECT v FROM st_%d_%s WHERE k=?1", node_id, name);
    if (!rc)
        rc = ss_sem_prepare(db, &kv->put, err, errsz,
                            "INSERT INTO st_%d_%s(k,v) VALUES(?1,?2) ON CONFLICT(k) DO UPDATE SET v=excluded.v",
                            node_id, name);
    if (!rc)
        rc = ss_sem_prepare(db, &kv->ref, err, errsz, "UPDATE st_%d_%s SET refs=refs+?2 WHERE k=?1",
                            node_id, name);
    if (!rc)
        rc = ss_sem_prepare(db, &kv->gc, err, errsz, "DELETE FROM st_%d_%s WHERE k=?1 AND refs<=0",
                            node_id, name);
    if (rc)
        ss_sem_kv_close(kv);
    return rc;
}

void ss_sem_kv_close(ss_sem_kv_t *kv)
{
    sqlite3_finalize(kv->get);
    sqlite3_finalize(kv->put);
    sqlite3_finalize(kv->ref);
    sqlite3_finalize(kv->gc);
    memset(kv, 0, sizeof *kv);
}

int ss_sem_kv_get(ss_sem_kv_t *kv, const void *k, size_t kn, ss_buf_t *v, int *found, char *err,
                  size_t errsz)
{
    sqlite3_reset(kv->get);
    sqlite3_bind_blob(kv->get, 1, k, (int)kn, SQLITE_STATIC);
    int rc = sqlite3_step(kv->get);
    *found = 0;
    int out = SS_OK;
    if (rc == SQLITE_ROW) {
        *found = 1;
        const void *p = sqlite3_column_blob(kv->get, 0);
        int n = sqlite3_column_bytes(kv->get, 0);
        out = ss_buf_append(v, p ? p : "", (size_t)n);
        if (!out)
            out = ss_buf_reserve(v, 1);
        if (!out)
            v->data[v->len] = 0;
    } else if (rc != SQLITE_DONE) {
        out = ss_sem_sqlerr(kv->db, err, errsz, "memo lookup");
    }
    sqlite3_reset(kv->get);
    return out;
}

int ss_sem_kv_put(ss_sem_kv_t *kv, const void *k, size_t kn, const void *v, size_t vn, char *err,
                  size_t errsz)
{
    sqlite3_reset(kv->put);
    sqlite3_bind_blob(kv->put, 1, k, (int)kn, SQLITE_STATIC);
    sqlite3_bind_blob(kv->put, 2, vn ? v : "", (int)vn, SQLITE_STATIC);
    int rc = sqlite3_step(kv->put) == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(kv->db, err, errsz, "memo store");
    sqlite3_reset(kv->put);
    return rc;
}

int ss_sem_kv_ref(ss_sem_kv_t *kv, const void *k, size_t kn, int64_t dw, int gc, char *err,
                  size_t errsz)
{
    sqlite3_reset(kv->ref);
    sqlite3_bind_blob(kv->ref, 1, k, (int)kn, SQLITE_STATIC);
    sqlite3_bind_int64(kv->ref, 2, dw);
    int rc = sqlite3_step(kv->ref) == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(kv->db, err, errsz, "memo refs");
    sqlite3_reset(kv->ref);
    if (!rc && gc && dw < 0) {
        sqlite3_reset(kv->gc);
        sqlite3_bind_blob(kv->gc, 1, k, (int)kn, SQLITE_STATIC);
        rc = sqlite3_step(kv->gc) == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(kv->db, err, errsz, "memo gc");
        sqlite3_reset(kv->gc);
    }
    return rc;
}

/* ---------------------------------------------------------------- pointwise */

typedef struct pw_miss {
    size_t entry;    /* index in `in` of the first entry with this key */
    ss_buf_t key;
    ss_buf_t prompt;
} pw_miss_t;

/* Asks the model for every distinct key of `in` absent from the memo; stores answers. */
static int pw_fill(ss_sem_pointwise_t *pw, const ss_zset_t *in, char *err, size_t errsz)
{
    pw_miss_t *miss = calloc(in->n ? in->n : 1, sizeof *miss);
    ss_infer_req_t *reqs = calloc(in->n ? in->n : 1, sizeof *reqs);
    ss_infer_res_t *res = calloc(in->n ? in->n : 1, sizeof *res);
    const ss_buf_t **mkeys = calloc(in->n ? in->n : 1, sizeof *mkeys);
    int nmiss = 0, rc = (miss && reqs && res && mkeys) ? SS_OK : SS_ERR_NOMEM;
    ss_sem_set_t seen = {0};
    if (!rc)
        rc = ss_sem_set_init(&seen, in->n);
    ss_buf_t key = SS_BUF_INIT, val = SS_BUF_INIT;
    for (size_t i = 0; i < in->n && !rc; i++) {
        ss_buf_reset(&key);
        ss_buf_reset(&val);
        int found = 0;
        rc = ss_sem_proj(in->e[i].row, pw->cols, pw->ncols, &key);
        if (!rc)
            rc = ss_sem_kv_get(pw->kv, key.data, key.len, &val, &found, err, errsz);
        if (rc || found)
            continue;
        pw_miss_t *m = &miss[nmiss];
        rc = ss_buf_append(&m->key, key.data, key.len);
        mkeys[nmiss] = &m->key;
        if (rc || ss_sem_set_add(&seen, mkeys, &m->key, nmiss) >= 0) {
            ss_buf_free(&m->key);
            continue;
        }
        m->entry = i;
        if (!rc)
            rc = pw->build(pw->ud, in->e[i].row, &m->prompt, &reqs[nmiss]);
        nmiss++;
    }
    for (int i = 0; i < nmiss && !rc; i++)
        reqs[i].prompt = ss_buf_cstr(&miss[i].prompt);
    if (!rc)
        rc = ss_sem_run(pw->op, pw->ctx, reqs, nmiss, res, err, errsz);
    for (int i = 0; i < nmiss && !rc; i++) {
        ss_buf_reset(&val);
        rc = pw->encode(pw->ud, &res[i], &val);
        if (!rc)
            rc = ss_sem_kv_put(pw->kv, miss[i].key.data, miss[i].key.len, val.data, val.len, err, errsz);
    }
    for (int i = 0; i < nmiss; i++) {
        ss_buf_free(&miss[i].key);
        ss_buf_free(&miss[i].prompt);
        ss_infer_res_clear(&res[i]);
    }
    free(miss);
    free(mkeys);
    free(reqs);
    free(res);
    ss_sem_set_free(&seen);
    ss_buf_free(&key);
    ss_buf_free(&val);
    return rc;
}

int ss_sem_pointwise_apply(ss_sem_pointwise_t *pw, const ss_zset_t *in, char *err, size_t errsz)
{
    int rc = pw_fill(pw, in, err, errsz);
    ss_buf_t key = SS_BUF_INIT, val = SS_BUF_INIT;
    /* emit every entry first (all answers are present), then move the refs */
    for (size_t i = 0; i < in->n && !rc; i++) {
        int found = 0;
        ss_buf_reset(&key);
        ss_buf_reset(&val);
        rc = ss_sem_proj(in->e[i].row, pw->cols, pw->ncols, &key);
        if (!rc)
            rc = ss_sem_kv_get(pw->kv, key.data, key.len, &val, &found, err, errsz);
        if (!rc && !found)
            rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "memo entry vanished");
        if (!rc)
            rc = pw->emit(pw->ud, in->e[i].row, in->e[i].w, ss_buf_cstr(&val), val.len, err, errsz);
    }
    for (size_t i = 0; i < in->n && !rc; i++)
        if (in->e[i].w > 0) {
            ss_buf_reset(&key);
            rc = ss_sem_proj(in->e[i].row, pw->cols, pw->ncols, &key);
            if (!rc)
                rc = ss_sem_kv_ref(pw->kv, key.data, key.len, in->e[i].w, 0, err, errsz);
        }
    for (size_t i = 0; i < in->n && !rc; i++)
        if (in->e[i].w < 0) {
            ss_buf_reset(&key);
            rc = ss_sem_proj(in->e[i].row, pw->cols, pw->ncols, &key);
            if (!rc)
                rc = ss_sem_kv_ref(pw->kv, key.data, key.len, in->e[i].w, pw->gc, err, errsz);
        }
    ss_buf_free(&key);
    ss_buf_free(&val);
    return rc;
}

/* ---------------------------------------------------------------- embeddings */

/* Through an embedder (its vectors are already normalised). */
static int embed_with(ss_embedder_t *e, const char *const *texts, int n, float ***out, int *dim, char *err,
                      size_t errsz)
{
    float *flat = malloc(sizeof(float) * (size_t)n * (size_t)e->dim);
    float **vecs = calloc((size_t)n, sizeof *vecs);
    int rc = flat && vecs ? ss_embedder_embed(e, texts, n, flat, err, errsz) : SS_ERR_NOMEM;
    for (int i = 0; i < n && !rc; i++) {
        vecs[i] = malloc(sizeof(float) * (size_t)e->dim);
        if (!vecs[i])
            rc = SS_ERR_NOMEM;
        else
            memcpy(vecs[i], flat + (size_t)i * (size_t)e->dim, sizeof(float) * (size_t)e->dim);
    }
    free(flat);
    if (rc) {
        for (int i = 0; vecs && i < n; i++)
            free(vecs[i]);
        free(vecs);
        return rc;
    }
    *dim = e->dim;
    *out = vecs;
    return SS_OK;
}

int ss_sem_embed(ss_op_t *op, ss_op_ctx_t *ctx, const char *const *texts, int n, float ***out,
                 int *dim, char *err, size_t errsz)
{
    *out = NULL;
    if (n <= 0)
        return SS_OK;
    if (ctx && ctx->emb)
        return embed_with(ctx->emb, texts, n, out, dim, err, errsz);
    ss_infer_req_t *reqs = calloc((size_t)n, sizeof *reqs);
    ss_infer_res_t *res = calloc((size_t)n, sizeof *res);
    float **vecs = calloc((size_t)n, sizeof *vecs);
    int rc = (reqs && res && vecs) ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; i < n && !rc; i++) {
        reqs[i].kind = SS_INFER_EMBED;
        reqs[i].prompt = texts[i];
    }
    if (!rc)
        rc = ss_sem_run(op, ctx, reqs, n, res, err, errsz);
    for (int i = 0; i < n && !rc; i++) {
        if (!res[i].emb || res[i].dim <= 0 || (i && res[i].dim != *dim)) {
            rc = ss_seterr(err, errsz, SS_ERR_MODEL, "%s (node %d): embedding missing or of odd size",
                           op->vt->name, op->node->id);
            break;
        }
        *dim = res[i].dim;
        vecs[i] = malloc(sizeof(float) * (size_t)*dim);
        if (!vecs[i]) {
            rc = SS_ERR_NOMEM;
            break;
        }
        double s = 0;
        for (int j = 0; j < *dim; j++)
            s += (double)res[i].emb[j] * res[i].emb[j];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int j = 0; j < *dim; j++)
            vecs[i][j] = res[i].emb[j] * inv;
    }
    for (int i = 0; i < n && res; i++)
        ss_infer_res_clear(&res[i]);
    free(res);
    free(reqs);
    if (rc) {
        for (int i = 0; i < n && vecs; i++)
            free(vecs[i]);
        free(vecs);
        return rc;
    }
    *out = vecs;
    return SS_OK;
}

/* ---------------------------------------------------------------- vector index */

void ss_sem_vidx_init(ss_sem_vidx_t *x) { memset(x, 0, sizeof *x); }

void ss_sem_vidx_free(ss_sem_vidx_t *x)
{
    ss_vindex_destroy(x->v);
    memset(x, 0, sizeof *x);
}

int64_t ss_sem_vidx_count(const ss_sem_vidx_t *x) { return x->v ? ss_vindex_count(x->v) : 0; }

int ss_sem_vidx_add(ss_sem_vidx_t *x, int64_t id, const float *v, int dim, char *err, size_t errsz)
{
    if (!x->v) {
        int rc = ss_vindex_new(dim, "flat", 0, &x->v, err, errsz);
        if (rc)
            return rc;
        x->dim = dim;
    }
    if (dim != x->dim)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "vector of %d dimensions in an index of %d", dim, x->dim);
    return ss_vindex_add(x->v, &id, v, 1, err, errsz);
}

int ss_sem_vidx_remove(ss_sem_vidx_t *x, int64_t id, char *err, size_t errsz)
{
    return x->v ? ss_vindex_remove(x->v, &id, 1, NULL, err, errsz) : SS_OK;
}

int ss_sem_vidx_search(ss_sem_vidx_t *x, const float *q, int k, int64_t *ids, float *sims, int *found,
                       char *err, size_t errsz)
{
    *found = 0;
    if (!x->v || k <= 0 || ss_vindex_count(x->v) == 0)
        return SS_OK;
    return ss_vindex_search(x->v, q, k, ids, sims, found, err, errsz);
}

int ss_sem_memo_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    return ss_sem_kv_create(ctx->db, op->node->id, "memo", err, errsz);
}

int ss_sem_memo_apply(ss_sem_pointwise_t *pw, const ss_zset_t *in, char *err, size_t errsz)
{
    if (!in->n)
        return SS_OK;
    pw->op->stats.batches++;
    pw->op->stats.rows_in += (int64_t)in->n;
    ss_sem_kv_t kv;
    int rc = ss_sem_kv_open(&kv, pw->ctx->db, pw->op->node->id, "memo", err, errsz);
    if (rc)
        return rc;
    pw->kv = &kv;
    rc = ss_sem_pointwise_apply(pw, in, err, errsz);
    ss_sem_kv_close(&kv);
    pw->kv = NULL;
    return rc;
}

void ss_sem_free_impl(ss_op_t *op)
{
    free(op->impl);
    op->impl = NULL;
}
