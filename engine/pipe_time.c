/*
 * pipe_time.c — a pipeline's timer and watermarks (issue 13): the one place
 * where time enters a pipeline.
 *
 * Watermarks. A SOURCE node's watermark is its stream's (the connector computes
 * it per partition: connectors/watermark.c); every other node's is the minimum of
 * its inputs' (SS_TIME_NONE, "no watermark", if any input has none). The
 * per-partition state behind a source's watermark is committed with its input
 * positions and handed back when the source is reopened.
 *
 * Timers. Operators whose output changes as time passes (a temporal filter, TTL
 * expiry, window closing) implement ss_op_vtable_t.advance: after the deltas of
 * every batch they are told the batch's clock and their input's watermark, emit
 * what that changed, and say when they must run next (due). The pipeline keeps
 * the earliest due time of its operators and of its sources' idleness (a
 * partition turning idle moves a watermark with no new message); when it passes
 * and no input is waiting, the pipeline runs an empty batch. So rows expire, and
 * windows close, on time — not when the next delta happens to arrive.
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

int eng_time_alloc(eng_pipe_t *p)
{
    size_t n = (size_t)p->e->plan->n + 1;
    p->wm = malloc(n * sizeof *p->wm);
    p->wm_cur = malloc(n * sizeof *p->wm_cur);
    p->due = malloc(n * sizeof *p->due);
    p->due_cur = malloc(n * sizeof *p->due_cur);
    if (!p->wm || !p->wm_cur || !p->due || !p->due_cur)
        return SS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        p->wm[i] = p->wm_cur[i] = p->due[i] = p->due_cur[i] = SS_TIME_NONE;
    p->next_due = SS_TIME_NONE;
    return SS_OK;
}

void eng_time_free(eng_pipe_t *p)
{
    free(p->wm);
    free(p->wm_cur);
    free(p->due);
    free(p->due_cur);
}

void eng_time_reset(eng_pipe_t *p)
{
    for (int j = 0; p->wm && j < p->nn; j++) {
        int i = p->nodes[j];
        p->wm[i] = p->wm_cur[i] = SS_TIME_NONE;
        p->due[i] = p->due_cur[i] = SS_TIME_NONE;
    }
    p->next_due = SS_TIME_NONE;
}

int eng_time_open_source(eng_pipe_t *p, int i, const char *key, char *err, size_t errsz)
{
    const ss_plan_node_t *n = p->e->plan->nodes[i];
    const char *col = ss_plan_opt(n, "watermark");
    if (!col)
        return SS_OK;
    ss_source_wm_opts_t w = {col, ss_plan_opt_int(n, "watermark_delay_us", 0), 0, NULL, 0};
    const char *idle = ss_plan_opt(n, "watermark_idle_timeout");
    char e2[128];
    if (idle && ss_duration_us(idle, &w.idle_us, e2, sizeof e2))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "stream %s: watermark_idle_timeout: %s", n->label, e2);
    ss_wmark_t *start = NULL;
    int rc = ss_store_get_watermarks(p->store, key, &start, &w.nstart, err, errsz);
    w.start = start;
    if (!rc)
        rc = ss_source_set_watermark(p->srcs[i], &w, err, errsz);
    free(start);
    return rc;
}

int eng_time_store(eng_pipe_t *p, int i, const char *key, char *err, size_t errsz)
{
    const ss_wmark_t *w;
    int n;
    if (!p->srcs[i] || ss_source_wm_state(p->srcs[i], &w, &n) || !n)
        return SS_OK;
    return ss_store_put_watermarks(p->store, key, w, n, err, errsz);
}

/* The watermark of node i for this attempt (its inputs come first in plan order). */
static int64_t node_wm(eng_pipe_t *p, int i)
{
    const ss_plan_t *pl = p->e->plan;
    const ss_plan_node_t *n = pl->nodes[i];
    if (n->kind == SS_PN_SOURCE)
        return p->srcs[i] ? ss_source_watermark(p->srcs[i], NULL) : SS_TIME_NONE;
    int64_t wm = SS_TIME_NONE;
    for (int k = 0; k < n->nin; k++) {
        int s = -1;
        for (int q = 0; q < pl->n && s < 0; q++)
            if (pl->nodes[q] == n->in[k])
                s = q;
        int64_t w = s >= 0 ? p->wm_cur[s] : SS_TIME_NONE;
        if (w == SS_TIME_NONE)
            return SS_TIME_NONE;
        wm = k == 0 || w < wm ? w : wm;
    }
    return wm;
}

void eng_time_before(eng_pipe_t *p, int i, int64_t now_us)
{
    ss_op_t *op = p->ops[i];
    p->wm_cur[i] = node_wm(p, i);
    op->now_us = now_us;
    op->watermark = p->wm_cur[i];
}

int eng_time_after(eng_pipe_t *p, int i, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    ss_op_t *op = p->ops[i];
    p->due_cur[i] = SS_TIME_NONE;
    if (!op->advance)
        return SS_OK;
    return op->advance(op, ctx, &p->outs[i], &p->due_cur[i], err, errsz);
}

static void take_min(int64_t *m, int64_t t)
{
    if (t != SS_TIME_NONE && (*m == SS_TIME_NONE || t < *m))
        *m = t;
}

void eng_time_committed(eng_pipe_t *p)
{
    int64_t next = SS_TIME_NONE;
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        p->wm[i] = p->wm_cur[i];
        p->due[i] = p->due_cur[i];
        take_min(&next, p->due[i]);
        int64_t idle_at;
        if (p->srcs[i]) {
            ss_source_watermark(p->srcs[i], &idle_at);
            take_min(&next, idle_at);
        }
    }
    p->next_due = next;
}

int eng_time_tick_due(eng_pipe_t *p)
{
    int64_t now = ss_clock_us();
    if (p->next_due != SS_TIME_NONE && now >= p->next_due)
        return 1;
    for (int j = 0; j < p->nn; j++) { /* a watermark moved with no new message (a partition turned idle) */
        int i = p->nodes[j];
        if (p->srcs[i] && ss_source_watermark(p->srcs[i], NULL) != p->wm[i])
            return 1;
    }
    return 0;
}

int eng_time_poll_ms(eng_pipe_t *p, int max_ms)
{
    if (p->next_due == SS_TIME_NONE)
        return max_ms;
    int64_t left = (p->next_due - ss_clock_us() + 999) / 1000; /* rounded up: wake once it is due */
    return left <= 0 ? 0 : left < max_ms ? (int)left : max_ms;
}
