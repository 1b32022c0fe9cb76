/*
 * subscribe.c — subscriptions to a view's changes (ss_engine.h, ss_engine_sub_*).
 *
 * The engine keeps a list of subscriptions (e->subs, under e->mu). After each
 * commit a pipeline hands every changed view's delta, rendered as text, to the
 * subscriptions of that view (eng_subs_publish); a reader takes what arrived
 * with ss_engine_sub_next. Opening takes the view's pipeline's commit lock around
 * registering and reading the snapshot, so a reader gets the view's rows as of
 * some commit and then exactly the changes after it. A reader that falls more
 * than SUB_MAX_BYTES behind is closed with an error instead of slowing the
 * pipeline or growing without bound.
 */
#include "engine_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUB_MAX_BYTES (64u << 20)

struct eng_sub {
    ss_engine_t *e;
    char *view;           /* owned */
    ss_buf_t q;           /* rendered changes not read yet */
    int64_t nq;           /* rows in q */
    int closed;           /* SS_ERR_NOTFOUND (dropped) or SS_ERR_BUSY (too slow); 0 = open */
    pthread_cond_t cv;    /* with e->mu */
    eng_sub_t *next;
};

struct ss_engine_sub {
    eng_sub_t *s;
};

void eng_subs_publish(ss_engine_t *e, const char *view, const ss_zset_t *delta, const ss_schema_t *schema)
{
    pthread_mutex_lock(&e->mu);
    ss_buf_t txt = SS_BUF_INIT;
    for (eng_sub_t *s = e->subs; s; s = s->next) {
        if (s->closed || !ss_strcaseeq(s->view, view))
            continue;
        if (!txt.len)
            ss_zset_dump(delta, schema, &txt);
        if (s->q.len + txt.len > SUB_MAX_BYTES) {
            s->closed = SS_ERR_BUSY;
            ss_log(SS_LOG_WARN, "engine", "SUBSCRIBE %s: the reader fell %u MiB behind; closed", view,
                   SUB_MAX_BYTES >> 20);
        } else if (ss_buf_append(&s->q, txt.data, txt.len) == SS_OK) {
            s->nq += (int64_t)delta->n;
        }
        pthread_cond_broadcast(&s->cv);
    }
    ss_buf_free(&txt);
    pthread_mutex_unlock(&e->mu);
}

void eng_subs_close_all(ss_engine_t *e, const char *view)
{
    pthread_mutex_lock(&e->mu);
    for (eng_sub_t *s = e->subs; s; s = s->next)
        if (!view || ss_strcaseeq(s->view, view)) {
            s->closed = SS_ERR_NOTFOUND;
            pthread_cond_broadcast(&s->cv);
        }
    pthread_mutex_unlock(&e->mu);
}

/* 1 when the view's table is committed (a new view's pipeline creates it in its first batch). */
static int view_table_exists(ss_store_t *st, const char *label)
{
    sqlite3_stmt *q = NULL;
    char *name = ss_sprintf("view_%s", label ? label : "unnamed");
    int yes = name && sqlite3_prepare_v2(ss_store_db(st), "SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                         "name = ?1", -1, &q, NULL) == SQLITE_OK &&
              sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    free(name);
    return yes;
}

/* The view's rows (as insertions) through a connection and operator of its own. A view whose
 * table its pipeline has not committed yet has none: they come as changes when it commits (the
 * subscription is registered under the commit lock first). Creating the table here instead
 * waited for the SQLite write lock held by that pipeline's open batch, which waits for the
 * commit lock we hold ("database is locked" after 5 s). */
static int snapshot(ss_engine_t *e, int node, ss_buf_t *out, int64_t *rows, char *err, size_t errsz)
{
    ss_store_t *st = NULL;
    ss_op_t *op = NULL;
    ss_zset_t z;
    ss_zset_init(&z);
    *rows = 0;
    int rc = ss_store_open(e->db_path, &st, err, errsz);
    ss_op_ctx_t ctx = {st ? ss_store_db(st) : NULL, e->disp, (struct ss_embedder *)e->emb};
    if (!rc && !view_table_exists(st, e->plan->nodes[node]->label)) {
        ss_store_close(st);
        return SS_OK;
    }
    if (!rc)
        rc = ss_op_new(e->plan->nodes[node], &op, err, errsz);
    if (!rc && op->vt->init)
        rc = op->vt->init(op, &ctx, err, errsz);
    if (!rc && !op->vt->snapshot)
        rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "view operator keeps no snapshot");
    if (!rc)
        rc = op->vt->snapshot(op, &ctx, &z, err, errsz);
    if (!rc)
        rc = ss_zset_consolidate(&z);
    if (!rc) {
        ss_zset_dump(&z, e->plan->nodes[node]->schema, out);
        *rows = (int64_t)z.n;
    }
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    ss_store_close(st);
    return rc;
}

int ss_engine_sub_open(ss_engine_t *e, const char *view, int with_snapshot, ss_engine_sub_t **out, char *err,
                       size_t errsz)
{
    *out = NULL;
    pthread_mutex_lock(&e->exec_mu); /* the plan and pipelines stay as they are meanwhile */
    int node = eng_node_index(e, SS_PN_VIEW, view);
    if (node < 0) {
        pthread_mutex_unlock(&e->exec_mu);
        return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "no such view: %s%s%s", view,
                         e->plan_error[0] ? " (the views are not running: " : "",
                         e->plan_error[0] ? e->plan_error : "");
    }
    ss_engine_sub_t *h = calloc(1, sizeof *h);
    eng_sub_t *s = calloc(1, sizeof *s);
    if (!h || !s || !(s->view = ss_strdup(e->plan->nodes[node]->label))) {
        free(h);
        free(s);
        pthread_mutex_unlock(&e->exec_mu);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    s->e = e;
    pthread_cond_init(&s->cv, NULL);
    h->s = s;
    eng_pipe_t *p = eng_pipe_of(e, node);
    if (p)
        pthread_mutex_lock(&p->commit_mu);
    pthread_mutex_lock(&e->mu);
    s->next = e->subs;
    e->subs = s;
    pthread_mutex_unlock(&e->mu);
    int rc = SS_OK;
    if (with_snapshot) {
        ss_buf_t snap = SS_BUF_INIT;
        int64_t rows = 0;
        rc = snapshot(e, node, &snap, &rows, err, errsz);
        pthread_mutex_lock(&e->mu);
        if (!rc && snap.len) { /* before anything published after it */
            ss_buf_t q = s->q;
            s->q = snap;
            ss_buf_append(&s->q, q.data, q.len);
            ss_buf_free(&q);
            s->nq += rows;
        } else {
            ss_buf_free(&snap);
        }
        pthread_mutex_unlock(&e->mu);
    }
    if (p)
        pthread_mutex_unlock(&p->commit_mu);
    pthread_mutex_unlock(&e->exec_mu);
    if (rc) {
        ss_engine_sub_close(h);
        return rc;
    }
    *out = h;
    return SS_OK;
}

int ss_engine_sub_next(ss_engine_sub_t *h, int timeout_ms, ss_buf_t *out, int64_t *changes, char *err, size_t errsz)
{
    eng_sub_t *s = h->s;
    ss_engine_t *e = s->e;
    if (changes)
        *changes = 0;
    struct timespec ts;
    ss_deadline(&ts, CLOCK_REALTIME, timeout_ms);
    pthread_mutex_lock(&e->mu);
    while (!s->q.len && !s->closed && timeout_ms > 0)
        if (pthread_cond_timedwait(&s->cv, &e->mu, &ts) == ETIMEDOUT)
            break;
    int rc = SS_OK;
    if (s->q.len) {
        rc = ss_buf_append(out, s->q.data, s->q.len);
        if (changes)
            *changes = s->nq;
        ss_buf_reset(&s->q);
        s->nq = 0;
    } else if (s->closed == SS_ERR_NOTFOUND) {
        rc = ss_seterr(err, errsz, SS_ERR_NOTFOUND, "view %s was dropped", s->view);
    } else if (s->closed) {
        rc = ss_seterr(err, errsz, SS_ERR_BUSY, "SUBSCRIBE %s: the reader fell more than %u MiB behind the view",
                       s->view, SUB_MAX_BYTES >> 20);
    } else {
        rc = SS_ERR_TIMEOUT;
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void ss_engine_sub_close(ss_engine_sub_t *h)
{
    if (!h)
        return;
    eng_sub_t *s = h->s;
    ss_engine_t *e = s->e;
    pthread_mutex_lock(&e->mu);
    for (eng_sub_t **pp = &e->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&e->mu);
    pthread_cond_destroy(&s->cv);
    ss_buf_free(&s->q);
    free(s->view);
    free(s);
    free(h);
}
