/*
 * llm_generate.c — LLM_GENERATE(PROMPT='...', CONTEXT=STREAM(c), DATA_SOURCE=STREAM(d),
 * KEY=session, RETRIEVE=k, MAINTAIN='recompute'|'append'|'none'): a retrieval-augmented
 * conversation view. in[0] is the CONTEXT stream (one row per turn), in[1] the
 * DATA_SOURCE stream (documents; optional).
 *
 * For every context event: embed its turn, retrieve the k documents nearest to it
 * (exact inner-product index over the documents' embeddings), build the prompt —
 * task, PROMPT, the session's earlier turns with their answers, the documents, the
 * new turn, each delimited — and GENERATE the response. Output row: the planner's
 * key columns of the event, response, docs (a JSON array of the documents' keys).
 *
 * Turn order within a session is the order in which each event (identified by the
 * context's KEY columns) first arrived; events of one batch are taken in row order.
 *
 * Deltas:
 *  - a new event: one GENERATE (events of different sessions share one dispatcher call);
 *  - a deleted event: its response is retracted (no call);
 *  - a document inserted, updated or deleted: only the responses whose retrieved set
 *    held it, or whose retrieval it now enters, are revisited. recompute re-retrieves
 *    and regenerates them (the conversation prefix is unchanged, so the engine's prefix
 *    cache reuses its KV); append asks the model to revise its previous answer given the
 *    change; none leaves them alone. A changed response is emitted as -old +new.
 *  - with recompute, a turn whose history changed (an earlier turn of its session was
 *    inserted, deleted or answered differently) is regenerated too, so the view always
 *    equals a from-scratch run over the current data.
 *  - REUSE = 'semantic' (llm_reuse.c): a turn that is not a cache entry may take the answer
 *    of the nearest entry over the same data (the same prompt before the turn) instead of
 *    generating, explore it (generate, and record whether the answers agree), or generate
 *    (no entry: it becomes one). Entries regenerate on a revisit; a reused answer follows its
 *    source while both see the same data, and is decided afresh otherwise.
 *
 * KV_REUSE = 'chunks' (issue 17 §2): each request names its documents' prompt spans as chunks,
 * so the in-process CPU engine takes their KV from its cache of documents computed on their own
 * and recomputes only KV_RECOMPUTE of their tokens (gpu/kvblend.c, CacheBlend); the answer then
 * approximates the full prefill's. 'prefix' (the default) reuses only the common prompt prefix.
 *
 * State: st_<id>_ctx (events: seq, row, weight, session, identity, turn text,
 * embedding, response, docs; reuse: src, entry, ctxh, obs), st_<id>_doc (documents: vid, row, weight, key, text,
 * embedding), st_<id>_ret (seq, vid, sim: what each response retrieved).
 */
#include "ss_sem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEN_TASK "Answer the new turn following the instruction, using the documents and the conversation so far; answer in one line."
#define REVISE_TASK "The documents changed. Revise the previous answer to the new turn given the change; answer in one line."

#define CTXH_SEED 0x63747868 /* "ctxh": the hash of the prompt before the turn (reuse) */

enum { M_RECOMPUTE, M_APPEND, M_NONE, M_DEPENDENCY };
#define REGEN(g) ((g)->mode == M_RECOMPUTE || (g)->mode == M_DEPENDENCY) /* history cascades */

typedef struct gen {
    int sess[SS_SEM_MAXCOLS], nsess;  /* session columns (KEY option) */
    int idk[SS_SEM_MAXCOLS], nidk;    /* event identity: the context's KEY columns (0 = none) */
    int outk[SS_SEM_MAXCOLS], noutk;  /* output key columns (as the planner chose them) */
    int dkey[SS_SEM_MAXCOLS], ndkey;  /* document key columns (0 = row hash) */
    int k;                            /* RETRIEVE */
    int mode;
    int max_tokens;
    double tau;                       /* dependency: attention mass a sentence must reach to depend */
    int dep_layers;                   /* dependency: last layers averaged (0 = the later half) */
    int kv_chunks;                    /* KV_REUSE = 'chunks' */
    double kv_frac;                   /* KV_RECOMPUTE: fraction of the documents' tokens recomputed */
    int reuse;                        /* REUSE = 'semantic' (llm_reuse.c) */
    double reuse_delta;               /* reuse: the error bound */
    int reuse_min_obs;                /* reuse: observations before an entry may be reused */
    double reuse_equiv;               /* reuse: answer cosine that counts as agreeing (> 1: text equality) */
    int reuse_label;                  /* reuse: context column whose equal values say two turns agree (-1) */
    int has_data;
    ss_sem_vidx_t idx;                /* documents */
    int loaded;
} gen_t;

/* ------------------------------------------------------------------ small helpers */

static int blob_eq(const void *a, int an, const void *b, int bn)
{
    return an == bn && (an == 0 || memcmp(a, b, (size_t)an) == 0);
}

static int proj_or_none(const ss_row_t *row, const int *cols, int n, ss_buf_t *out)
{
    if (n == 0) {
        ss_row_t *e = ss_row_new(0);
        int rc = e ? ss_row_encode(e, out) : SS_ERR_NOMEM;
        ss_row_free(e);
        return rc;
    }
    return ss_sem_proj(row, cols, n, out);
}

/* The turn's text: the template's fields of the event, or all its columns if none. */
static int turn_text(ss_op_t *op, const ss_row_t *row, ss_buf_t *out)
{
    int cols[SS_SEM_MAXCOLS];
    if (ss_sem_tmpl_cols(op->node, 0, cols) > 0)
        return ss_sem_fields(out, op->node->tmpl, 0, row, NULL);
    return ss_sem_row_fields(out, op->node->in[0] ? op->node->in[0]->schema : NULL, row);
}

static int doc_key_json(gen_t *g, const ss_row_t *row, ss_buf_t *out)
{
    if (g->ndkey == 1)
        return ss_val_to_json(&row->v[g->dkey[0]], out);
    if (g->ndkey > 1) {
        int rc = ss_buf_putc(out, '[');
        for (int i = 0; i < g->ndkey && !rc; i++) {
            if (i)
                rc = ss_buf_putc(out, ',');
            if (!rc)
                rc = ss_val_to_json(&row->v[g->dkey[i]], out);
        }
        return rc ? rc : ss_buf_putc(out, ']');
    }
    return ss_buf_printf(out, "\"%016llx\"", (unsigned long long)ss_row_hash(row));
}

/* Output row: the event's output key columns, response, docs. */
static int out_row(gen_t *g, const void *r, int rn, const char *resp, const char *docs, ss_row_t **out)
{
    ss_row_t *ev = NULL;
    int rc = ss_row_decode(r, (size_t)rn, &ev);
    if (rc)
        return rc;
    ss_row_t *o = ss_row_new(g->noutk + 2);
    rc = o ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; i < g->noutk && !rc; i++)
        rc = ss_row_set(o, i, &ev->v[g->outk[i]]);
    ss_value_t a = ss_val_text_ref(resp, strlen(resp)), b = ss_val_text_ref(docs, strlen(docs));
    if (!rc)
        rc = ss_row_set(o, g->noutk, &a);
    if (!rc)
        rc = ss_row_set(o, g->noutk + 1, &b);
    ss_row_free(ev);
    if (rc) {
        ss_row_free(o);
        return rc;
    }
    *out = o;
    return SS_OK;
}

static int emit(gen_t *g, ss_op_t *op, const void *r, int rn, const char *resp, const char *docs, int64_t w,
                ss_zset_t *out)
{
    ss_row_t *o = NULL;
    int rc = out_row(g, r, rn, resp, docs, &o);
    if (!rc) {
        op->stats.rows_out++;
        rc = ss_zset_add(out, o, w);
    }
    return rc;
}

/* ------------------------------------------------------------------ documents */

static int load_index(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    gen_t *g = op->impl;
    if (g->loaded)
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT vid, e FROM st_%d_doc WHERE w>0 AND e IS NOT NULL",
                            op->node->id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW)
        rc = ss_sem_vidx_add(&g->idx, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
                             sqlite3_column_bytes(st, 1) / (int)sizeof(float), err, errsz);
    sqlite3_finalize(st);
    g->loaded = !rc;
    return rc;
}

/* ------------------------------------------------------------------ events */

typedef struct ev {
    int64_t seq;
    ss_buf_t sess;
} ev_t;

typedef struct worklist {
    ev_t *v;
    int n, cap;
} worklist_t;

static int work_add(worklist_t *l, int64_t seq, const void *sess, int sn)
{
    for (int i = 0; i < l->n; i++)
        if (l->v[i].seq == seq)
            return SS_OK;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        ev_t *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return SS_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    memset(&l->v[l->n], 0, sizeof l->v[l->n]);
    l->v[l->n].seq = seq;
    int rc = ss_buf_append(&l->v[l->n].sess, sess ? sess : "", (size_t)sn);
    l->n++;
    return rc;
}

static void work_free(worklist_t *l)
{
    for (int i = 0; i < l->n; i++)
        ss_buf_free(&l->v[i].sess);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Adds every event of session sess with seq > after to the work list. */
static int work_add_later(ss_op_t *op, ss_op_ctx_t *ctx, worklist_t *l, const void *sess, int sn, int64_t after,
                          char *err, size_t errsz)
{
    gen_t *g = op->impl;
    if (g->nsess == 0)
        return SS_OK; /* no sessions: no history */
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT seq FROM st_%d_ctx WHERE sess=?1 AND seq>?2 AND w>0",
                            op->node->id);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, sess ? sess : "", sn, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, after);
    while (!rc && sqlite3_step(st) == SQLITE_ROW)
        rc = work_add(l, sqlite3_column_int64(st, 0), sess, sn);
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------ prompts */

typedef struct job {
    int64_t seq;
    ss_buf_t r;          /* event row */
    int64_t w;
    ss_buf_t sess;
    char *old_resp, *old_docs; /* NULL when it had no response yet */
    ss_buf_t prompt;
    size_t pre;
    ss_buf_t docs;       /* JSON array of the retrieved keys */
    int64_t *vids;
    float *sims;
    int nret;
    int revise;          /* append mode: revise old_resp */
    /* dependency mode */
    ss_dep_chunks_t ch;  /* the prompt's chunks */
    void *old_dep, *old_ch; /* the stored record and chunk list of old_resp (blobs), or NULL */
    int old_dep_len, old_ch_len;
    int keep;            /* sentences of old_resp kept (-1: no record, generate it all) */
    const char *why;     /* what decided a cut: "entered", "gone", "changed", "moved" (NULL: none) */
    int *forced, nforced;
    size_t *dspan;       /* KV_REUSE = 'chunks': [2 * nret] prompt bytes of each document */
    size_t turn_at;      /* where the turn starts in the prompt: before it is "the same data" */
    ss_reuse_job_t ru;   /* reuse = 'semantic' (llm_reuse.c) */
} job_t;

static void job_free(job_t *j)
{
    ss_buf_free(&j->r);
    ss_buf_free(&j->sess);
    free(j->old_resp);
    free(j->old_docs);
    ss_buf_free(&j->prompt);
    ss_buf_free(&j->docs);
    free(j->vids);
    free(j->sims);
    ss_dep_chunks_free(&j->ch);
    free(j->old_dep);
    free(j->old_ch);
    free(j->forced);
    free(j->dspan);
    ss_reuse_job_free(&j->ru);
}

/* Appends the conversation before seq in the job's session. */
static int put_history(ss_op_t *op, ss_op_ctx_t *ctx, job_t *j, char *err, size_t errsz)
{
    gen_t *g = op->impl;
    if (g->nsess == 0)
        return SS_OK;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT turn, resp, seq FROM st_%d_ctx WHERE sess=?1 AND seq<?2 AND w>0 ORDER BY seq",
                            op->node->id);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, j->sess.data ? j->sess.data : "", (int)j->sess.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->seq);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        const char *turn = (const char *)sqlite3_column_text(st, 0);
        const char *resp = (const char *)sqlite3_column_text(st, 1);
        size_t a = j->prompt.len;
        rc = ss_buf_printf(&j->prompt, "<turn>\n%s</turn>\n", turn ? turn : "");
        if (!rc)
            rc = ss_sem_item(&j->prompt, "answer", resp ? resp : "", resp ? strlen(resp) : 0);
        if (!rc && g->mode == M_DEPENDENCY) {
            char label[40];
            snprintf(label, sizeof label, "turn:%lld", (long long)sqlite3_column_int64(st, 2));
            rc = ss_dep_chunks_add(&j->ch, label, j->prompt.data, a, j->prompt.len);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Retrieves the job's documents (vids, sims, docs JSON) and appends their texts. */
static int put_docs(ss_op_t *op, ss_op_ctx_t *ctx, job_t *j, const float *q, char *err, size_t errsz)
{
    gen_t *g = op->impl;
    int rc = ss_buf_putc(&j->docs, '[');
    if (g->k > 0 && q && ss_sem_vidx_count(&g->idx) > 0) {
        j->vids = calloc((size_t)g->k, sizeof *j->vids);
        j->sims = calloc((size_t)g->k, sizeof *j->sims);
        j->dspan = calloc((size_t)g->k * 2, sizeof *j->dspan);
        if (!j->vids || !j->sims || !j->dspan)
            return SS_ERR_NOMEM;
        rc = ss_sem_vidx_search(&g->idx, q, g->k, j->vids, j->sims, &j->nret, err, errsz);
    }
    sqlite3_stmt *st = NULL;
    if (!rc && j->nret)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT dkey, txt FROM st_%d_doc WHERE vid=?1", op->node->id);
    for (int i = 0; i < j->nret && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, j->vids[i]);
        if (sqlite3_step(st) != SQLITE_ROW) {
            rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "llm_generate (node %d): document %lld vanished",
                           op->node->id, (long long)j->vids[i]);
            break;
        }
        if (i)
            rc = ss_buf_putc(&j->docs, ',');
        if (!rc)
            rc = ss_buf_puts(&j->docs, (const char *)sqlite3_column_text(st, 0));
        size_t a = j->prompt.len;
        if (!rc)
            rc = ss_buf_printf(&j->prompt, "<doc>\n%s</doc>\n", (const char *)sqlite3_column_text(st, 1));
        j->dspan[2 * i] = a, j->dspan[2 * i + 1] = j->prompt.len;
        if (!rc && g->mode == M_DEPENDENCY) {
            ss_buf_t label = SS_BUF_INIT;
            rc = ss_buf_printf(&label, "doc:%s", (const char *)sqlite3_column_text(st, 0));
            if (!rc)
                rc = ss_dep_chunks_add(&j->ch, ss_buf_cstr(&label), j->prompt.data, a, j->prompt.len);
            ss_buf_free(&label);
        }
    }
    sqlite3_finalize(st);
    return rc ? rc : ss_buf_putc(&j->docs, ']');
}

/* Builds the job's prompt. changes: for append, the changed documents' texts (may be NULL). */
static int build_prompt(ss_op_t *op, ss_op_ctx_t *ctx, job_t *j, const char *turn, const float *q,
                        const char *changes, char *err, size_t errsz)
{
    gen_t *g = op->impl;
    int rc = ss_sem_head(&j->prompt, j->revise ? REVISE_TASK : GEN_TASK, op->node->tmpl);
    if (!rc && g->mode == M_DEPENDENCY)
        rc = ss_dep_chunks_add(&j->ch, "instr", j->prompt.data, 0, j->prompt.len);
    if (!rc)
        rc = ss_buf_puts(&j->prompt, "### Conversation\n");
    if (!rc)
        rc = put_history(op, ctx, j, err, errsz);
    j->pre = j->prompt.len;
    if (!rc)
        rc = ss_buf_puts(&j->prompt, "### Documents\n");
    if (!rc)
        rc = put_docs(op, ctx, j, q, err, errsz);
    size_t ta = j->prompt.len;
    j->turn_at = ta;
    if (!rc)
        rc = ss_buf_printf(&j->prompt, "### Turn\n%s", turn);
    if (!rc && g->mode == M_DEPENDENCY)
        rc = ss_dep_chunks_add(&j->ch, "self", j->prompt.data, ta, j->prompt.len);
    if (!rc && j->revise) {
        rc = ss_buf_puts(&j->prompt, "### Previous answer\n");
        if (!rc)
            rc = ss_sem_item(&j->prompt, "answer", j->old_resp, strlen(j->old_resp));
        if (!rc)
            rc = ss_buf_printf(&j->prompt, "### Change\n%s### Revised answer:", changes ? changes : "");
    } else if (!rc) {
        rc = ss_buf_puts(&j->prompt, "### Answer:");
    }
    return rc;
}

/* ------------------------------------------------------------------ generation rounds */

/* Loads job j for event seq; returns 0 in *ok if the event is gone. */
static int job_load(ss_op_t *op, ss_op_ctx_t *ctx, int64_t seq, job_t *j, int revise, const char *changes, int *ok,
                    char *err, size_t errsz)
{
    memset(j, 0, sizeof *j);
    j->seq = seq;
    *ok = 0;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT r, w, sess, turn, e, resp, docs, dep, chunks, src, entry FROM st_%d_ctx "
                            "WHERE seq=?1 AND w>0",
                            op->node->id);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, seq);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *ok = 1;
        rc = ss_buf_append(&j->r, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        j->w = sqlite3_column_int64(st, 1);
        if (!rc)
            rc = ss_buf_append(&j->sess, sqlite3_column_blob(st, 2) ? sqlite3_column_blob(st, 2) : "",
                               (size_t)sqlite3_column_bytes(st, 2));
        if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
            j->old_resp = ss_strdup((const char *)sqlite3_column_text(st, 5));
            j->old_docs = ss_strdup((const char *)sqlite3_column_text(st, 6));
            j->old_dep_len = sqlite3_column_bytes(st, 7);
            j->old_ch_len = sqlite3_column_bytes(st, 8);
            if (j->old_dep_len > 0 && (j->old_dep = malloc((size_t)j->old_dep_len)))
                memcpy(j->old_dep, sqlite3_column_blob(st, 7), (size_t)j->old_dep_len);
            if (j->old_ch_len > 0 && (j->old_ch = malloc((size_t)j->old_ch_len)))
                memcpy(j->old_ch, sqlite3_column_blob(st, 8), (size_t)j->old_ch_len);
        }
        j->keep = -1;
        j->revise = revise && j->old_resp;
        const float *q = sqlite3_column_bytes(st, 4) ? sqlite3_column_blob(st, 4) : NULL;
        ss_reuse_job_t *u = &j->ru;
        if (((gen_t *)op->impl)->reuse) {
            u->seq = seq;
            u->old_src = sqlite3_column_int64(st, 9);
            u->was_entry = sqlite3_column_int(st, 10) == 1;
            u->turn = ss_strdup((const char *)sqlite3_column_text(st, 3));
            u->dim = sqlite3_column_bytes(st, 4) / (int)sizeof(float);
            if (q && (u->q = malloc((size_t)u->dim * sizeof(float))))
                memcpy(u->q, q, (size_t)u->dim * sizeof(float));
            if (!u->turn || (q && !u->q))
                rc = SS_ERR_NOMEM;
        }
        if (!rc)
            rc = build_prompt(op, ctx, j, (const char *)sqlite3_column_text(st, 3), q, changes, err, errsz);
    }
    sqlite3_finalize(st);
    if (!rc && *ok && ((gen_t *)op->impl)->reuse) { /* the prompt before the turn: "the same data" */
        j->ru.ctxh = ss_hash64(j->prompt.data, j->turn_at, CTXH_SEED);
        j->ru.r = j->r.data;
        j->ru.rlen = j->r.len;
    }
    return rc;
}

/* Dependency mode: the record and chunk list stored with a job's answer (dep = the engine's
 * record, owned by the caller). */
static int store_dep(ss_op_t *op, ss_op_ctx_t *ctx, job_t *j, const void *dep, int dep_len, char *err, size_t errsz)
{
    ss_buf_t chb = SS_BUF_INIT;
    sqlite3_stmt *st = NULL;
    int rc = ss_dep_chunks_encode(&j->ch, &chb);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "UPDATE st_%d_ctx SET dep=?2, chunks=?3 WHERE seq=?1",
                            op->node->id);
    if (!rc) {
        sqlite3_bind_int64(st, 1, j->seq);
        sqlite3_bind_blob(st, 2, dep, dep_len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, chb.data ? chb.data : "", (int)chb.len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "llm_generate dependency record");
    }
    sqlite3_finalize(st);
    ss_buf_free(&chb);
    return rc;
}

/* Adds to the dependency counters kept in st_<id>_depstat (what EXPLAIN VIEW shows). */
static int count_dep(ss_op_t *op, ss_op_ctx_t *ctx, const char *what, int64_t n, char *err, size_t errsz)
{
    return ss_sem_exec(ctx->db, err, errsz,
                       "INSERT INTO st_%d_depstat(k, v) VALUES('%s', %lld) ON CONFLICT(k) DO UPDATE SET v = v + %lld",
                       op->node->id, what, (long long)n, (long long)n);
}

/* The kind of change that decided a cut (ss_dep_keep's cause). */
static const char *why_cut(const ss_dep_chunks_t *old, const ss_dep_chunks_t *now, int cause)
{
    if (cause < 0)
        return NULL;
    if (cause >= old->n)
        return "entered";
    for (int j = 0; j < now->n; j++)
        if (now->id[j] == old->id[cause])
            return now->hash[j] == old->hash[cause] ? "moved" : "changed";
    return "gone";
}

/* Dependency mode: decides how much of the job's previous answer its new prompt leaves valid
 * (j->keep sentences; the forced tokens of a partial keep). No record: generate it all. */
static int plan_dep(ss_op_t *op, job_t *j)
{
    gen_t *g = op->impl;
    j->keep = -1;
    if (!j->old_resp || !j->old_dep || !j->old_ch)
        return SS_OK;
    ss_infer_dep_t d;
    ss_dep_chunks_t old;
    if (ss_infer_dep_decode(j->old_dep, j->old_dep_len, &d))
        return SS_OK; /* unreadable: regenerate */
    int rc = ss_dep_chunks_decode(j->old_ch, j->old_ch_len, &old);
    if (!rc) {
        int cause = -1;
        j->keep = ss_dep_keep(&d, &old, &j->ch, g->tau, &cause);
        j->why = why_cut(&old, &j->ch, cause);
        if (j->keep == d.nsent) { /* kept whole: its record now describes the new chunks */
            ss_infer_dep_t nd;
            rc = ss_dep_remap(&d, &old, &j->ch, &nd);
            unsigned char *blob = NULL;
            int len = 0;
            if (!rc)
                rc = ss_infer_dep_encode(&nd, &blob, &len);
            ss_infer_dep_free(&nd);
            if (!rc) {
                free(j->old_dep);
                j->old_dep = blob;
                j->old_dep_len = len;
            }
        } else if (j->keep > 0) {
            j->nforced = d.sent_end[j->keep - 1];
            j->forced = malloc((size_t)j->nforced * sizeof *j->forced);
            if (j->forced)
                memcpy(j->forced, d.tok, (size_t)j->nforced * sizeof *j->forced);
            else
                rc = SS_ERR_NOMEM;
        }
    }
    ss_dep_chunks_free(&old);
    ss_infer_dep_free(&d);
    return rc == SS_ERR_INVALID ? SS_OK : rc;
}

/* Stores a job's answer and emits the change. *changed = 1 if the response differs. */
static int job_store(ss_op_t *op, ss_op_ctx_t *ctx, job_t *j, const char *resp, int *changed, ss_zset_t *out,
                     char *err, size_t errsz)
{
    gen_t *g = op->impl;
    int id = op->node->id;
    const char *docs = ss_buf_cstr(&j->docs);
    *changed = !j->old_resp || strcmp(j->old_resp, resp) != 0;
    int same = j->old_resp && !*changed && strcmp(j->old_docs, docs) == 0;
    int rc = SS_OK;
    if (!same && j->old_resp)
        rc = emit(g, op, j->r.data, (int)j->r.len, j->old_resp, j->old_docs, -j->w, out);
    if (!rc && !same)
        rc = emit(g, op, j->r.data, (int)j->r.len, resp, docs, j->w, out);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "UPDATE st_%d_ctx SET resp=?2, docs=?3 WHERE seq=?1", id);
    if (!rc) {
        sqlite3_bind_int64(st, 1, j->seq);
        sqlite3_bind_text(st, 2, resp, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, docs, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "llm_generate store");
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz, "DELETE FROM st_%d_ret WHERE seq=%lld", id, (long long)j->seq);
    if (!rc && j->nret)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "INSERT INTO st_%d_ret(seq, vid, sim) VALUES(?1,?2,?3)", id);
    for (int i = 0; i < j->nret && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, j->seq);
        sqlite3_bind_int64(st, 2, j->vids[i]);
        sqlite3_bind_double(st, 3, j->sims[i]);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "llm_generate ret");
    }
    if (j->nret)
        sqlite3_finalize(st);
    return rc;
}

static int ev_cmp(const void *a, const void *b)
{
    const ev_t *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* ------------------------------------------------------------------ semantic reuse */

static ss_reuse_opts_t reuse_opts(const gen_t *g)
{
    return (ss_reuse_opts_t){g->reuse_delta, g->reuse_min_obs, g->reuse_equiv, g->reuse_label};
}

/* The seqs the work list holds (malloc'd; NULL when empty). */
static int64_t *wl_seqs(const worklist_t *wl)
{
    int64_t *v = malloc(sizeof *v * (size_t)(wl->n ? wl->n : 1));
    for (int i = 0; v && i < wl->n; i++)
        v[i] = wl->v[i].seq;
    return v;
}

/* Puts the turns that reused entry seq on the work list: the entry was revisited (they check
 * whether they still follow it), or it is gone (orphan: they are decided afresh; the seq may come
 * back with another turn, which they did not reuse). */
static int reuse_followers(ss_op_t *op, ss_op_ctx_t *ctx, worklist_t *wl, int64_t seq, int orphan, char *err,
                           size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT seq, sess FROM st_%d_ctx WHERE src=?1 AND w>0",
                            op->node->id);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, seq);
    while (!rc && sqlite3_step(st) == SQLITE_ROW)
        rc = work_add(wl, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1));
    sqlite3_finalize(st);
    if (!rc && orphan)
        rc = ss_sem_exec(ctx->db, err, errsz, "UPDATE st_%d_ctx SET src=NULL WHERE src=%lld", op->node->id,
                         (long long)seq);
    return rc;
}

/* After job j's answer is stored: its reuse columns and observation (ss_reuse_record); the turns
 * that reused an entry that was revisited go back on the work list. */
static int reuse_after(ss_op_t *op, ss_op_ctx_t *ctx, worklist_t *wl, job_t *j, const char *resp, char *err,
                       size_t errsz)
{
    gen_t *g = op->impl;
    ss_reuse_opts_t o = reuse_opts(g);
    int rc = ss_reuse_record(op, ctx, &o, &j->ru, resp, err, errsz);
    if (!rc && j->ru.was_entry) /* its followers check whether they still follow it */
        rc = reuse_followers(op, ctx, wl, j->seq, 0, err, errsz);
    return rc;
}

/* Generates every event of the work list: in rounds of one event per session (a turn
 * waits for the earlier turns of its session), one dispatcher call per round. With
 * cascade, a changed answer puts the later turns of its session on the list. */
static int run_work(ss_op_t *op, ss_op_ctx_t *ctx, worklist_t *wl, int revise, const char *const *changes,
                    const int64_t *change_seq, int nchanges, int cascade, ss_zset_t *out, char *err, size_t errsz)
{
    gen_t *g = op->impl;
    int rc = SS_OK;
    while (wl->n && !rc) {
        qsort(wl->v, (size_t)wl->n, sizeof *wl->v, ev_cmp);
        /* this round: the earliest pending event of each session */
        job_t *jobs = calloc((size_t)wl->n, sizeof *jobs);
        char *taken = calloc((size_t)wl->n, 1);
        int nj = 0, ntaken = wl->n;
        if (!jobs || !taken)
            rc = SS_ERR_NOMEM;
        for (int i = 0; i < wl->n && !rc; i++) {
            int dup = 0;
            for (int j = 0; j < i && !dup; j++)
                dup = taken[j] && blob_eq(wl->v[j].sess.data, (int)wl->v[j].sess.len, wl->v[i].sess.data,
                                          (int)wl->v[i].sess.len);
            if (dup && g->nsess)
                continue;
            taken[i] = 1;
            const char *ch = NULL;
            for (int c = 0; c < nchanges; c++)
                if (change_seq[c] == wl->v[i].seq)
                    ch = changes[c];
            int ok = 0;
            rc = job_load(op, ctx, wl->v[i].seq, &jobs[nj], revise, ch, &ok, err, errsz);
            if (ok)
                nj++;
            else
                job_free(&jobs[nj]);
        }
        ss_infer_req_t *reqs = calloc((size_t)(nj ? nj : 1), sizeof *reqs);
        ss_infer_res_t *res = calloc((size_t)(nj ? nj : 1), sizeof *res);
        int *rq = calloc((size_t)(nj ? nj : 1), sizeof *rq); /* job -> request, -1 = no request, -2 = waits */
        int nr = 0, ndefer = 0;
        if (!rc && (!reqs || !res || !rq))
            rc = SS_ERR_NOMEM;
        int wait = 0;
        int64_t *pend = g->reuse ? wl_seqs(wl) : NULL;
        ss_reuse_opts_t ro = reuse_opts(g);
        if (!rc && g->reuse)
            rc = pend ? ss_reuse_entries_pending(ctx->db, op->node->id, pend, wl->n, &wait, err, errsz)
                      : SS_ERR_NOMEM;
        for (int pass = 0; g->reuse && pass < 2 && !rc; pass++) { /* pass 1: all would wait; none does */
            ndefer = 0;
            for (int i = 0; i < nj && !rc; i++) {
                rc = ss_reuse_plan(op, ctx, &ro, pend, wl->n, &jobs[i].ru, pass, wait, err, errsz);
                ndefer += jobs[i].ru.act == SS_REUSE_DEFER;
            }
            if (ndefer < nj)
                break;
        }
        free(pend);
        for (int i = 0; i < nj && !rc; i++) {
            job_t *j = &jobs[i];
            int act = j->ru.act;
            if (g->reuse && act != SS_REUSE_GENERATE && act != SS_REUSE_EXPLORE) {
                rq[i] = act == SS_REUSE_DEFER ? -2 : -1;
                continue;
            }
            if (g->mode == M_DEPENDENCY && (rc = plan_dep(op, j)))
                break;
            if (g->mode == M_DEPENDENCY && j->keep > 0 && !j->forced) {
                rq[i] = -1; /* no sentence depends on what changed: keep the answer */
                continue;
            }
            rq[i] = nr;
            ss_infer_req_t *r = &reqs[nr++];
            ss_sem_req_generate(r, ss_buf_cstr(&j->prompt), j->pre, g->max_tokens);
            ss_sem_req_sampling(r, op->node, ss_buf_cstr(&j->prompt), j->prompt.len);
            if (g->mode == M_DEPENDENCY) {
                r->ntrack = j->ch.n;
                r->track_span = j->ch.span;
                r->track_layers = g->dep_layers;
                r->forced = j->forced;
                r->nforced = j->nforced;
            }
            if (g->kv_chunks && j->nret > 0) {
                r->nchunks = j->nret;
                r->chunk_span = j->dspan;
                r->recompute = (float)g->kv_frac;
            }
        }
        if (!rc)
            rc = ss_sem_run(op, ctx, reqs, nr, res, err, errsz);
        for (int i = 0; i < nj && !rc; i++) {
            job_t *j = &jobs[i];
            if (rq[i] == -2)
                continue; /* waits for the entry it would reuse (re-added below) */
            const ss_infer_res_t *a = rq[i] >= 0 ? &res[rq[i]] : NULL;
            if (a && g->mode == M_DEPENDENCY && !a->dep) {
                rc = ss_seterr(err, errsz, SS_ERR_UNSUPPORTED,
                               "llm_generate (node %d): MAINTAIN = 'dependency' needs the attention of the "
                               "in-process engine's CPU backend; the model's backend returned none",
                               op->node->id);
                break;
            }
            char *resp = a ? ss_sem_gen_text(a) : ss_strdup(g->reuse ? j->ru.cand.resp : j->old_resp);
            int changed = 0;
            rc = resp ? job_store(op, ctx, j, resp, &changed, out, err, errsz) : SS_ERR_NOMEM;
            if (!rc && g->reuse)
                rc = reuse_after(op, ctx, wl, j, resp, err, errsz);
            free(resp);
            if (!rc && g->mode == M_DEPENDENCY)
                rc = store_dep(op, ctx, j, a ? a->dep : j->old_dep, a ? a->dep_len : j->old_dep_len, err, errsz);
            if (!rc && g->mode == M_DEPENDENCY && j->old_resp) /* a revisit: what it cost */
                rc = count_dep(op, ctx, !a ? "kept" : j->nforced ? "shortened" : "regenerated", 1, err, errsz);
            if (!rc && g->mode == M_DEPENDENCY && a && j->nforced)
                rc = count_dep(op, ctx, "forced_tokens", j->nforced, err, errsz);
            if (!rc && g->mode == M_DEPENDENCY && j->why) {
                char k[24];
                snprintf(k, sizeof k, "cut_%s", j->why);
                rc = count_dep(op, ctx, k, 1, err, errsz);
            }
            if (!rc && changed && cascade)
                rc = work_add_later(op, ctx, wl, j->sess.data, (int)j->sess.len, j->seq, err, errsz);
        }
        /* drop this round's events from the list (cascades were appended after them) */
        int m = 0;
        for (int i = 0; i < wl->n; i++) {
            if (taken && i < ntaken && taken[i]) {
                ss_buf_free(&wl->v[i].sess);
                continue;
            }
            wl->v[m++] = wl->v[i];
        }
        wl->n = m;
        for (int i = 0; i < nj && !rc; i++)
            if (rq && rq[i] == -2)
                rc = work_add(wl, jobs[i].seq, jobs[i].sess.data, (int)jobs[i].sess.len);
        for (int i = 0; i < nj; i++)
            job_free(&jobs[i]);
        free(rq);
        free(jobs);
        free(taken);
        free(reqs);
        ss_sem_res_free(res, res ? nr : 0);
    }
    return rc;
}

/* Embeds the live turns that have no embedding yet (one dispatcher call). */
static int embed_turns(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    int id = op->node->id;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT seq, turn FROM st_%d_ctx WHERE e IS NULL AND w>0", id);
    int64_t *seqs = NULL;
    char **texts = NULL;
    int n = 0, cap = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *a = realloc(seqs, (size_t)cap * sizeof *a);
            char **b = realloc(texts, (size_t)cap * sizeof *b);
            if (a) seqs = a;
            if (b) texts = b;
            if (!a || !b) {
                rc = SS_ERR_NOMEM;
                break;
            }
        }
        seqs[n] = sqlite3_column_int64(st, 0);
        texts[n] = ss_strdup((const char *)sqlite3_column_text(st, 1));
        n++;
    }
    sqlite3_finalize(st);
    st = NULL;
    float **embs = NULL;
    int dim = 0;
    if (!rc && n)
        rc = ss_sem_embed(op, ctx, (const char *const *)texts, n, &embs, &dim, err, errsz);
    if (!rc && n)
        rc = ss_sem_prepare(ctx->db, &st, err, errsz, "UPDATE st_%d_ctx SET e=?2 WHERE seq=?1", id);
    for (int i = 0; i < n && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, seqs[i]);
        sqlite3_bind_blob(st, 2, embs[i], (int)(sizeof(float) * (size_t)dim), SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "llm_generate embedding");
    }
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++) {
        free(texts[i]);
        if (embs)
            free(embs[i]);
    }
    free(embs);
    free(texts);
    free(seqs);
    return rc;
}

/* ------------------------------------------------------------------ CONTEXT deltas */

typedef struct gone {
    int64_t seq;
    ss_buf_t idk;
} gone_t;

static int ctx_apply(ss_op_t *op, ss_op_ctx_t *ctx, const ss_zset_t *in, ss_zset_t *out, char *err, size_t errsz)
{
    gen_t *g = op->impl;
    int id = op->node->id, rc = SS_OK;
    worklist_t wl = {0};
    gone_t *gone = calloc(in->n ? in->n : 1, sizeof *gone);
    int ngone = 0;
    sqlite3_stmt *get = NULL, *put = NULL, *setw = NULL;
    rc = gone ? SS_OK : SS_ERR_NOMEM;
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &get, err, errsz,
                            "SELECT seq, w, sess, resp, docs FROM st_%d_ctx WHERE r=?1", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &setw, err, errsz, "UPDATE st_%d_ctx SET w=?2 WHERE seq=?1", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &put, err, errsz,
                            "INSERT INTO st_%d_ctx(seq, r, w, sess, idk, turn) VALUES(?1,?2,?3,?4,?5,?6)", id);
    ss_buf_t r = SS_BUF_INIT, sess = SS_BUF_INIT, idk = SS_BUF_INIT, turn = SS_BUF_INIT;
    /* deletions (and weight changes) first, then new events */
    for (int pass = 0; pass < 2 && !rc; pass++) {
        for (size_t i = 0; i < in->n && !rc; i++) {
            int64_t dw = in->e[i].w;
            if ((pass == 0) != (dw < 0))
                continue;
            const ss_row_t *row = in->e[i].row;
            ss_buf_reset(&r);
            ss_buf_reset(&sess);
            ss_buf_reset(&idk);
            rc = ss_row_encode(row, &r);
            if (!rc) rc = proj_or_none(row, g->sess, g->nsess, &sess);
            if (!rc) rc = proj_or_none(row, g->idk, g->nidk, &idk);
            if (rc)
                break;
            sqlite3_reset(get);
            sqlite3_bind_blob(get, 1, r.data, (int)r.len, SQLITE_STATIC);
            if (sqlite3_step(get) == SQLITE_ROW) {
                int64_t seq = sqlite3_column_int64(get, 0), w = sqlite3_column_int64(get, 1);
                const char *resp = (const char *)sqlite3_column_text(get, 3);
                const char *docs = (const char *)sqlite3_column_text(get, 4);
                if (resp && w > 0) /* the weight of its response follows the event's */
                    rc = emit(g, op, r.data, (int)r.len, resp, docs, w + dw > 0 ? dw : -w, out);
                if (!rc && w + dw > 0) {
                    sqlite3_reset(setw);
                    sqlite3_bind_int64(setw, 1, seq);
                    sqlite3_bind_int64(setw, 2, w + dw);
                    if (sqlite3_step(setw) != SQLITE_DONE)
                        rc = ss_sem_sqlerr(ctx->db, err, errsz, "llm_generate ctx");
                } else if (!rc) { /* the event is gone: retract; later turns lose a history turn */
                    rc = ss_sem_exec(ctx->db, err, errsz,
                                     "DELETE FROM st_%d_ctx WHERE seq=%lld; DELETE FROM st_%d_ret WHERE seq=%lld",
                                     id, (long long)seq, id, (long long)seq);
                    gone[ngone].seq = seq;
                    if (!rc)
                        rc = ss_buf_append(&gone[ngone].idk, idk.data, idk.len);
                    ngone++;
                    if (!rc && REGEN(g))
                        rc = work_add_later(op, ctx, &wl, sess.data, (int)sess.len, seq, err, errsz);
                    if (!rc && g->reuse) /* the turns that reused its answer */
                        rc = reuse_followers(op, ctx, &wl, seq, 1, err, errsz);
                }
                sqlite3_reset(get);
                continue;
            }
            sqlite3_reset(get);
            if (dw < 0)
                continue; /* deleting an event never seen: nothing to retract */
            /* a new event: an update keeps the place of the event it replaces */
            int64_t seq = -1;
            for (int k = 0; k < ngone && g->nidk; k++)
                if (gone[k].seq >= 0 && blob_eq(gone[k].idk.data, (int)gone[k].idk.len, idk.data, (int)idk.len)) {
                    seq = gone[k].seq;
                    gone[k].seq = -1;
                }
            if (seq < 0) {
                sqlite3_stmt *mx = NULL;
                rc = ss_sem_prepare(ctx->db, &mx, err, errsz, "SELECT coalesce(max(seq), 0) + 1 FROM st_%d_ctx", id);
                if (!rc && sqlite3_step(mx) == SQLITE_ROW)
                    seq = sqlite3_column_int64(mx, 0);
                sqlite3_finalize(mx);
            }
            ss_buf_reset(&turn);
            if (!rc)
                rc = turn_text(op, row, &turn);
            sqlite3_reset(put);
            sqlite3_bind_int64(put, 1, seq);
            sqlite3_bind_blob(put, 2, r.data, (int)r.len, SQLITE_STATIC);
            sqlite3_bind_int64(put, 3, dw);
            sqlite3_bind_blob(put, 4, sess.data ? sess.data : "", (int)sess.len, SQLITE_STATIC);
            sqlite3_bind_blob(put, 5, idk.data ? idk.data : "", (int)idk.len, SQLITE_STATIC);
            sqlite3_bind_text(put, 6, ss_buf_cstr(&turn), -1, SQLITE_STATIC);
            if (!rc && sqlite3_step(put) != SQLITE_DONE)
                rc = ss_sem_sqlerr(ctx->db, err, errsz, "llm_generate ctx");
            if (!rc)
                rc = work_add(&wl, seq, sess.data, (int)sess.len);
            if (!rc && REGEN(g)) /* inserted before later turns: their history changed */
                rc = work_add_later(op, ctx, &wl, sess.data, (int)sess.len, seq, err, errsz);
        }
    }
    ss_buf_free(&r);
    ss_buf_free(&sess);
    ss_buf_free(&idk);
    ss_buf_free(&turn);
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    sqlite3_finalize(setw);
    for (int i = 0; i < ngone; i++)
        ss_buf_free(&gone[i].idk);
    free(gone);
    /* embed the turns that have none yet (one call), then generate */
    if (!rc && ((g->k > 0 && g->has_data) || g->reuse))
        rc = embed_turns(op, ctx, err, errsz);
    if (!rc)
        rc = run_work(op, ctx, &wl, 0, NULL, NULL, 0, REGEN(g), out, err, errsz);
    work_free(&wl);
    return rc;
}

/* ------------------------------------------------------------------ DATA_SOURCE deltas */

typedef struct affected {
    int n, cap;
    int64_t *seq;
    ss_buf_t *sess;
    ss_buf_t *change;
} affected_t;

static int aff_add(affected_t *a, int64_t seq, const void *sess, int sn, const char *tag, const char *txt)
{
    int i = 0;
    while (i < a->n && a->seq[i] != seq)
        i++;
    if (i == a->n) {
        if (a->n == a->cap) {
            int cap = a->cap ? a->cap * 2 : 16;
            int64_t *s = realloc(a->seq, (size_t)cap * sizeof *s);
            if (s) a->seq = s;
            ss_buf_t *b = realloc(a->sess, (size_t)cap * sizeof *b);
            if (b) a->sess = b;
            ss_buf_t *c = realloc(a->change, (size_t)cap * sizeof *c);
            if (c) a->change = c;
            if (!s || !b || !c)
                return SS_ERR_NOMEM;
            a->cap = cap;
        }
        a->seq[i] = seq;
        memset(&a->sess[i], 0, sizeof a->sess[i]);
        memset(&a->change[i], 0, sizeof a->change[i]);
        int rc = ss_buf_append(&a->sess[i], sess ? sess : "", (size_t)sn);
        if (rc)
            return rc;
        a->n++;
    }
    return ss_buf_printf(&a->change[i], "<%s>\n%s</%s>\n", tag, txt, tag);
}

static void aff_free(affected_t *a)
{
    for (int i = 0; i < a->n; i++) {
        ss_buf_free(&a->sess[i]);
        ss_buf_free(&a->change[i]);
    }
    free(a->seq);
    free(a->sess);
    free(a->change);
    memset(a, 0, sizeof *a);
}

/* Responses that held document vid. */
static int aff_holders(ss_op_t *op, ss_op_ctx_t *ctx, affected_t *a, int64_t vid, const char *txt, char *err,
                       size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT c.seq, c.sess FROM st_%d_ret t JOIN st_%d_ctx c ON c.seq = t.seq WHERE t.vid=?1 "
                            "AND c.w>0", op->node->id, op->node->id);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, vid);
    while (!rc && sqlite3_step(st) == SQLITE_ROW)
        rc = aff_add(a, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1),
                     "removed", txt);
    sqlite3_finalize(st);
    return rc;
}

/* Responses whose retrieval the new documents enter. */
static int aff_entrants(ss_op_t *op, ss_op_ctx_t *ctx, affected_t *a, float **embs, char **txts, int n, int dim,
                        char *err, size_t errsz)
{
    gen_t *g = op->impl;
    int id = op->node->id;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT c.seq, c.sess, c.e, (SELECT count(*) FROM st_%d_ret t WHERE t.seq = c.seq), "
                            "(SELECT min(sim) FROM st_%d_ret t WHERE t.seq = c.seq) FROM st_%d_ctx c "
                            "WHERE c.w>0 AND c.e IS NOT NULL AND c.resp IS NOT NULL", id, id, id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        const float *q = sqlite3_column_blob(st, 2);
        if (sqlite3_column_bytes(st, 2) != (int)(sizeof(float) * (size_t)dim))
            continue;
        int cnt = sqlite3_column_int(st, 3);
        double worst = sqlite3_column_double(st, 4);
        for (int i = 0; i < n && !rc; i++) {
            float s = 0;
            for (int j = 0; j < dim; j++)
                s += q[j] * embs[i][j];
            if (cnt < g->k || s > worst)
                rc = aff_add(a, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1),
                             "added", txts[i]);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static int doc_apply(ss_op_t *op, ss_op_ctx_t *ctx, const ss_zset_t *in, ss_zset_t *out, char *err, size_t errsz)
{
    gen_t *g = op->impl;
    int id = op->node->id;
    affected_t aff = {0};
    sqlite3_stmt *get = NULL, *put = NULL;
    int rc = ss_sem_prepare(ctx->db, &get, err, errsz, "SELECT vid, w, txt FROM st_%d_doc WHERE r=?1", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &put, err, errsz,
                            "INSERT INTO st_%d_doc(r, w, dkey, txt) VALUES(?1,?2,?3,?4) RETURNING vid", id);
    int64_t *nvid = calloc(in->n ? in->n : 1, sizeof *nvid);
    char **ntxt = calloc(in->n ? in->n : 1, sizeof *ntxt);
    int nnew = 0;
    if (!nvid || !ntxt)
        rc = SS_ERR_NOMEM;
    ss_buf_t r = SS_BUF_INIT, key = SS_BUF_INIT, txt = SS_BUF_INIT;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const ss_row_t *row = in->e[i].row;
        int64_t dw = in->e[i].w;
        ss_buf_reset(&r);
        rc = ss_row_encode(row, &r);
        if (rc)
            break;
        sqlite3_reset(get);
        sqlite3_bind_blob(get, 1, r.data, (int)r.len, SQLITE_STATIC);
        if (sqlite3_step(get) == SQLITE_ROW) {
            int64_t vid = sqlite3_column_int64(get, 0), w = sqlite3_column_int64(get, 1);
            char *t = ss_strdup((const char *)sqlite3_column_text(get, 2));
            sqlite3_reset(get);
            if (w > 0 && w + dw <= 0) { /* the document is gone */
                if (g->mode != M_NONE)
                    rc = aff_holders(op, ctx, &aff, vid, t ? t : "", err, errsz);
                if (!rc)
                    rc = ss_sem_vidx_remove(&g->idx, vid, err, errsz);
                if (!rc)
                    rc = ss_sem_exec(ctx->db, err, errsz, "DELETE FROM st_%d_doc WHERE vid=%lld", id, (long long)vid);
            } else if (!rc) {
                rc = ss_sem_exec(ctx->db, err, errsz, "UPDATE st_%d_doc SET w=w+%lld WHERE vid=%lld", id,
                                 (long long)dw, (long long)vid);
            }
            free(t);
            continue;
        }
        sqlite3_reset(get);
        if (dw < 0)
            continue;
        ss_buf_reset(&key);
        ss_buf_reset(&txt);
        rc = doc_key_json(g, row, &key);
        if (!rc)
            rc = ss_sem_row_fields(&txt, op->node->in[1] ? op->node->in[1]->schema : NULL, row);
        sqlite3_reset(put);
        sqlite3_bind_blob(put, 1, r.data, (int)r.len, SQLITE_STATIC);
        sqlite3_bind_int64(put, 2, dw);
        sqlite3_bind_text(put, 3, ss_buf_cstr(&key), -1, SQLITE_STATIC);
        sqlite3_bind_text(put, 4, ss_buf_cstr(&txt), -1, SQLITE_STATIC);
        if (!rc && sqlite3_step(put) != SQLITE_ROW)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "llm_generate doc");
        if (!rc) {
            nvid[nnew] = sqlite3_column_int64(put, 0);
            ntxt[nnew++] = ss_strdup(ss_buf_cstr(&txt));
        }
        while (sqlite3_step(put) == SQLITE_ROW) {
        }
    }
    ss_buf_free(&r);
    ss_buf_free(&key);
    ss_buf_free(&txt);
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    /* embed the new documents, find the responses they enter, index them */
    float **embs = NULL;
    int dim = 0;
    if (!rc && nnew && g->k > 0)
        rc = ss_sem_embed(op, ctx, (const char *const *)ntxt, nnew, &embs, &dim, err, errsz);
    if (!rc && embs && g->mode != M_NONE)
        rc = aff_entrants(op, ctx, &aff, embs, ntxt, nnew, dim, err, errsz);
    sqlite3_stmt *se = NULL;
    if (!rc && embs)
        rc = ss_sem_prepare(ctx->db, &se, err, errsz, "UPDATE st_%d_doc SET e=?2 WHERE vid=?1", id);
    for (int i = 0; embs && i < nnew && !rc; i++) {
        sqlite3_reset(se);
        sqlite3_bind_int64(se, 1, nvid[i]);
        sqlite3_bind_blob(se, 2, embs[i], (int)(sizeof(float) * (size_t)dim), SQLITE_STATIC);
        if (sqlite3_step(se) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "llm_generate doc embedding");
        if (!rc)
            rc = ss_sem_vidx_add(&g->idx, nvid[i], embs[i], dim, err, errsz);
    }
    sqlite3_finalize(se);
    for (int i = 0; i < nnew; i++) {
        free(ntxt[i]);
        if (embs)
            free(embs[i]);
    }
    free(embs);
    free(ntxt);
    free(nvid);
    /* revisit the affected responses */
    worklist_t wl = {0};
    for (int i = 0; i < aff.n && !rc; i++)
        rc = work_add(&wl, aff.seq[i], aff.sess[i].data, (int)aff.sess[i].len);
    const char **changes = calloc((size_t)(aff.n ? aff.n : 1), sizeof *changes);
    if (!changes)
        rc = SS_ERR_NOMEM;
    for (int i = 0; i < aff.n && changes; i++)
        changes[i] = ss_buf_cstr(&aff.change[i]);
    if (!rc && wl.n)
        rc = run_work(op, ctx, &wl, g->mode == M_APPEND, changes, aff.seq, aff.n, REGEN(g), out, err, errsz);
    free(changes);
    work_free(&wl);
    aff_free(&aff);
    return rc;
}

/* ------------------------------------------------------------------ vtable */

static int gen_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    gen_t *g = op->impl;
    int id = op->node->id;
    int rc = ss_sem_exec(ctx->db, err, errsz,
                       "CREATE TABLE IF NOT EXISTS st_%d_ctx(seq INTEGER PRIMARY KEY, r BLOB UNIQUE, w INTEGER, "
                       "sess BLOB, idk BLOB, turn TEXT, e BLOB, resp TEXT, docs TEXT, dep BLOB, chunks BLOB);"
                       "CREATE INDEX IF NOT EXISTS st_%d_ctx_sess ON st_%d_ctx(sess, seq);"
                       "CREATE TABLE IF NOT EXISTS st_%d_doc(vid INTEGER PRIMARY KEY, r BLOB UNIQUE, w INTEGER, "
                       "dkey TEXT, txt TEXT, e BLOB);"
                       "CREATE TABLE IF NOT EXISTS st_%d_ret(seq INTEGER, vid INTEGER, sim REAL, "
                       "PRIMARY KEY(seq, vid)) WITHOUT ROWID;"
                       "CREATE INDEX IF NOT EXISTS st_%d_ret_vid ON st_%d_ret(vid)",
                       id, id, id, id, id, id, id);
    if (!rc) /* the reuse columns (present whether REUSE is set or not: job_load reads them) */
        rc = ss_reuse_init(ctx->db, id, err, errsz);
    if (!rc && g->mode == M_DEPENDENCY) { /* the answers' dependency records (tables of before lack them) */
        for (int i = 0; i < 2; i++) {
            char *sql = ss_sprintf("ALTER TABLE st_%d_ctx ADD COLUMN %s BLOB", id, i ? "chunks" : "dep");
            if (!sql)
                return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            sqlite3_exec(ctx->db, sql, NULL, NULL, NULL); /* fails harmlessly when present */
            free(sql);
        }
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_depstat(k TEXT PRIMARY KEY, v INTEGER)", id);
    }
    return rc;
}

static int gen_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                     size_t errsz)
{
    if (!in->n)
        return SS_OK;
    op->stats.batches++;
    op->stats.rows_in += (int64_t)in->n;
    int rc = load_index(op, ctx, err, errsz);
    if (!rc)
        rc = port == 0 ? ctx_apply(op, ctx, in, out, err, errsz) : doc_apply(op, ctx, in, out, err, errsz);
    return rc;
}

static int gen_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    gen_t *g = op->impl;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT r, resp, docs, w FROM st_%d_ctx WHERE w>0 AND resp IS NOT NULL", op->node->id);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        ss_row_t *o = NULL;
        rc = out_row(g, sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0), (const char *)sqlite3_column_text(st, 1),
                     (const char *)sqlite3_column_text(st, 2), &o);
        if (!rc)
            rc = ss_zset_add(out, o, sqlite3_column_int64(st, 3));
    }
    sqlite3_finalize(st);
    return rc;
}

static const char *gen_strategy(const ss_op_t *op)
{
    const gen_t *g = op->impl;
    if (g->reuse)
        return g->mode == M_RECOMPUTE
                   ? "1 GENERATE per new turn unless a close turn over the same data was answered (REUSE = "
                     "'semantic': per-entry learned thresholds, error bound reuse_delta); a document change "
                     "regenerates the responses that retrieved it or now would, and reused answers follow their source"
                   : "1 GENERATE per new turn unless a close turn over the same data was answered (REUSE = "
                     "'semantic'); document changes leave history alone";
    return g->mode == M_RECOMPUTE ? "1 GENERATE per new turn; a document change regenerates only the responses "
                                    "that retrieved it or now would (and later turns of their sessions)"
           : g->mode == M_APPEND ? "1 GENERATE per new turn; a document change asks affected responses to revise "
                                   "their previous answer"
                                 : "1 GENERATE per new turn; document changes leave history alone";
}

static void gen_destroy(ss_op_t *op)
{
    gen_t *g = op->impl;
    if (g)
        ss_sem_vidx_free(&g->idx);
    free(g);
    op->impl = NULL;
}

/* The batch was rolled back: the document index may hold its embeddings; reload on next use. */
static void gen_rollback(ss_op_t *op)
{
    gen_t *g = op->impl;
    ss_sem_vidx_free(&g->idx);
    ss_sem_vidx_init(&g->idx);
    g->loaded = 0;
}

static const ss_op_vtable_t llm_generate_vt = {
    .name = "llm_generate",
    .kind = SS_OPK_NONLINEAR,
    .init = gen_init,
    .apply = gen_apply,
    .snapshot = gen_snapshot,
    .strategy = gen_strategy,
    .rollback = gen_rollback,
    .destroy = gen_destroy,
};

int ss_op_llm_generate_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (N->nin < 1 || !N->in[0] || !N->in[0]->schema)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "llm_generate (node %d): needs a CONTEXT input", N->id);
    const ss_schema_t *cs = N->in[0]->schema;
    gen_t *g = calloc(1, sizeof *g);
    if (!g)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    const char *key = ss_plan_opt(N, "key");
    if (key) {
        int c = ss_schema_find(cs, key);
        if (c < 0) {
            free(g);
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "llm_generate (node %d): KEY column \"%s\" not in the context",
                             N->id, key);
        }
        g->sess[g->nsess++] = c;
        g->outk[g->noutk++] = c;
    }
    g->nidk = ss_schema_keys(cs, g->idk, SS_SEM_MAXCOLS);
    if (!key) {
        g->noutk = g->nidk;
        memcpy(g->outk, g->idk, sizeof g->idk);
        if (g->noutk == 0)
            for (int i = 0; i < cs->n && i < SS_SEM_MAXCOLS; i++)
                g->outk[g->noutk++] = i;
    }
    if (N->schema && N->schema->n != g->noutk + 2) {
        int want = g->noutk + 2;
        free(g);
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "llm_generate (node %d): output schema has %d columns, expected %d",
                         N->id, N->schema->n, want);
    }
    g->has_data = N->nin >= 2 && N->in[1] != NULL;
    if (g->has_data && N->in[1]->schema)
        g->ndkey = ss_schema_keys(N->in[1]->schema, g->dkey, SS_SEM_MAXCOLS);
    g->k = g->has_data ? (int)SS_MAX(0, SS_MIN(1000, ss_plan_opt_int(N, "retrieve", 3))) : 0;
    const char *m = ss_plan_opt(N, "maintain");
    g->mode = !m || ss_strcaseeq(m, "recompute") ? M_RECOMPUTE : ss_strcaseeq(m, "append") ? M_APPEND
            : ss_strcaseeq(m, "none") ? M_NONE : ss_strcaseeq(m, "dependency") ? M_DEPENDENCY : -1;
    if (g->mode < 0) {
        free(g);
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC,
                         "llm_generate (node %d): MAINTAIN must be 'recompute', 'dependency', 'append' or 'none', "
                         "not '%s'", N->id, m);
    }
    g->tau = ss_plan_opt_real(N, "tau", 0.05);
    g->dep_layers = (int)SS_MAX(0, ss_plan_opt_int(N, "dep_layers", 0));
    const char *kv = ss_plan_opt(N, "kv_reuse");
    g->kv_chunks = kv && ss_strcaseeq(kv, "chunks");
    g->kv_frac = SS_MAX(0, SS_MIN(1, ss_plan_opt_real(N, "kv_recompute", 0.15)));
    const char *ru = ss_plan_opt(N, "reuse");
    g->reuse = ru && ss_strcaseeq(ru, "semantic");
    if (ru && !g->reuse && !ss_strcaseeq(ru, "none")) {
        free(g);
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "llm_generate (node %d): REUSE must be 'semantic' or 'none', "
                         "not '%s'", N->id, ru);
    }
    if (g->reuse && g->mode != M_RECOMPUTE && g->mode != M_NONE) {
        free(g);
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "llm_generate (node %d): REUSE = 'semantic' needs MAINTAIN = "
                         "'recompute' or 'none' (a reused answer has no attention record or previous answer of its "
                         "own)", N->id);
    }
    g->reuse_delta = ss_plan_opt_real(N, "reuse_delta", SS_REUSE_DELTA);
    g->reuse_min_obs = (int)SS_MAX(1, ss_plan_opt_int(N, "reuse_min_obs", SS_REUSE_MIN_OBS));
    g->reuse_equiv = ss_plan_opt_real(N, "reuse_equiv", 2.0);
    const char *lab = ss_plan_opt(N, "reuse_label");
    g->reuse_label = lab ? ss_schema_find(cs, lab) : -1;
    if (lab && g->reuse_label < 0) {
        free(g);
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "llm_generate (node %d): reuse_label column \"%s\" not in the "
                         "context", N->id, lab);
    }
    if (g->reuse && (g->reuse_delta <= 0 || g->reuse_delta >= 1)) {
        double d = g->reuse_delta;
        free(g);
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "llm_generate (node %d): reuse_delta must be in (0, 1), not %g",
                         N->id, d);
    }
    g->max_tokens = ss_sem_max_tokens(N, 48);
    ss_sem_vidx_init(&g->idx);
    op->impl = g;
    op->vt = &llm_generate_vt;
    return SS_OK;
}

/* ------------------------------------------------------------------ EXPLAIN */

/* One answer's dependency record: per sentence, the mass on each chunk. */
static void describe_answer(ss_buf_t *out, int64_t seq, const void *dep, int dl, const void *chb, int cl)
{
    ss_infer_dep_t d;
    ss_dep_chunks_t c;
    if (ss_infer_dep_decode(dep, dl, &d))
        return;
    if (ss_dep_chunks_decode(chb, cl, &c) || c.n != d.nchunk) {
        ss_infer_dep_free(&d);
        ss_dep_chunks_free(&c);
        return;
    }
    ss_buf_printf(out, "  answer %lld: %d tokens, %d sentences\n", (long long)seq, d.ntok, d.nsent);
    for (int s = 0; s < d.nsent; s++) {
        ss_buf_printf(out, "    sentence %d (tokens %d..%d):", s + 1, s ? d.sent_end[s - 1] : 0, d.sent_end[s] - 1);
        for (int k = 0; k < c.n; k++)
            ss_buf_printf(out, "%s %s %.3f", k ? "," : "", c.label[k], (double)d.mass[(size_t)s * c.n + k]);
        ss_buf_putc(out, '\n');
    }
    ss_infer_dep_free(&d);
    ss_dep_chunks_free(&c);
}

int ss_llm_generate_describe(sqlite3 *db, const ss_plan_node_t *n, int max_answers, ss_buf_t *out)
{
    const char *ru = ss_plan_opt(n, "reuse");
    if (ru && ss_strcaseeq(ru, "semantic"))
        ss_reuse_describe(db, n, out);
    const char *m = ss_plan_opt(n, "maintain");
    if (!m || !ss_strcaseeq(m, "dependency"))
        return SS_OK;
    int64_t v[8] = {0};
    const char *names[8] = {"kept", "shortened", "regenerated", "forced_tokens",
                            "cut_changed", "cut_gone", "cut_moved", "cut_entered"};
    char sql[160];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "SELECT k, v FROM st_%d_depstat", n->id);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int i = 0; i < 8; i++)
                if (!strcmp((const char *)sqlite3_column_text(st, 0), names[i]))
                    v[i] = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    ss_buf_printf(out,
                  "dependency (node %d): tau %g; revisited answers: %lld kept whole, %lld shortened (%lld tokens "
                  "kept as forced prefixes), %lld regenerated; cut by a document or turn changed %lld, gone "
                  "%lld, moved %lld, entered %lld\n",
                  n->id, ss_plan_opt_real(n, "tau", 0.05), (long long)v[0], (long long)v[1], (long long)v[3],
                  (long long)v[2], (long long)v[4], (long long)v[5], (long long)v[6], (long long)v[7]);
    st = NULL;
    snprintf(sql, sizeof sql, "SELECT seq, dep, chunks FROM st_%d_ctx WHERE w>0 AND dep IS NOT NULL ORDER BY seq "
             "LIMIT %d", n->id, max_answers);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW)
            describe_answer(out, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1),
                            sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2));
    sqlite3_finalize(st);
    return SS_OK;
}
