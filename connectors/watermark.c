/*
 * watermark.c — a source's event-time watermark (issue 13), for streams declared
 * with WATERMARK FOR ts AS ts - delay.
 *
 * Per partition the source keeps the largest event time it has read; the
 * partition's watermark is that minus the delay, and the stream's watermark is
 * the minimum over its partitions, so a partition that is behind holds the
 * others back, as in Flink. A partition that has delivered nothing for
 * idle_us while caught up (nothing left to read on it) is idle and does not
 * hold the watermark back until it delivers again; when every partition is
 * idle the watermark is the largest of theirs. The watermark never decreases.
 *
 * An event whose time is behind the watermark when it is read is late: its
 * windows may be closed already, so it is dead-lettered with the reason (and so
 * is an event whose time is NULL). What counts as late therefore depends only on
 * each partition's order and on idleness, not on batch boundaries. The
 * per-partition maxima are saved by the engine with the input positions
 * (ss_source_wm_state) and restored when the source is opened again, so a
 * restart in the middle of a window neither re-admits late events nor closes
 * windows early.
 */
#include "conn_int.h"

#include "ss_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ss_source_set_watermark(ss_source_t *s, const ss_source_wm_opts_t *o, char *err, size_t errsz)
{
    conn_wm_t *w = &s->wm;
    conn_wm_close(s);
    int col = o && o->column ? ss_schema_find(s->schema, o->column) : -1;
    if (col < 0 || !ss_coltype_is_time(s->schema->types[col]))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "stream %s: watermark column %s is not a timestamp column",
                         s->stream, o && o->column ? o->column : "?");
    size_t n = (size_t)(s->npart > 0 ? s->npart : 1);
    w->max_us = malloc(n * sizeof *w->max_us);
    w->active_us = malloc(n * sizeof *w->active_us);
    w->idle = calloc(n, 1);
    w->state = malloc(n * sizeof *w->state);
    if (!w->max_us || !w->active_us || !w->idle || !w->state) {
        conn_wm_close(s);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    w->col = col;
    w->delay_us = o->delay_us;
    w->idle_us = o->idle_us;
    int64_t now = ss_clock_us();
    for (int i = 0; i < s->npart; i++) {
        w->max_us[i] = SS_TIME_NONE;
        w->active_us[i] = now;
        for (int k = 0; k < o->nstart; k++)
            if (o->start[k].partition == s->pos[i].partition)
                w->max_us[i] = o->start[k].max_us;
    }
    w->now_us = now;
    w->wm = SS_TIME_NONE;
    ss_source_watermark(s, NULL);
    return SS_OK;
}

void conn_wm_close(ss_source_t *s)
{
    free(s->wm.max_us);
    free(s->wm.active_us);
    free(s->wm.idle);
    free(s->wm.state);
    memset(&s->wm, 0, sizeof s->wm);
    s->wm.col = -1;
}

/* Nothing left to read on partition i as far as the source knows. */
static int caught_up(ss_source_t *s, int i)
{
    if (s->log)
        return s->hi && s->pos[i].offset >= s->hi[i];
    int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID;
    if (!s->rk || rd_kafka_get_watermark_offsets(s->rk, s->topic, s->pos[i].partition, &lo, &hi) ||
        hi == RD_KAFKA_OFFSET_INVALID)
        return 1; /* unknown: time alone decides */
    return s->pos[i].offset >= hi;
}

static int64_t part_wm(const conn_wm_t *w, int i)
{
    return w->max_us[i] == SS_TIME_NONE ? SS_TIME_NONE : w->max_us[i] - w->delay_us;
}

/* min over the partitions that are not idle; the max of all when every one is idle. */
static void combine(ss_source_t *s)
{
    conn_wm_t *w = &s->wm;
    int64_t lo = INT64_MAX, hi = SS_TIME_NONE;
    int active = 0, undefined = 0;
    for (int i = 0; i < s->npart; i++) {
        int64_t p = part_wm(w, i);
        if (p != SS_TIME_NONE && p > hi)
            hi = p;
        if (w->idle[i])
            continue;
        active++;
        if (p == SS_TIME_NONE)
            undefined = 1;
        else if (p < lo)
            lo = p;
    }
    int64_t c = active ? (undefined ? SS_TIME_NONE : lo) : hi;
    if (c != SS_TIME_NONE && (w->wm == SS_TIME_NONE || c > w->wm))
        w->wm = c;
}

static void mark_idle(ss_source_t *s, int64_t now)
{
    conn_wm_t *w = &s->wm;
    for (int i = 0; i < s->npart; i++)
        w->idle[i] = w->idle_us > 0 && now - w->active_us[i] >= w->idle_us && caught_up(s, i);
}

void conn_wm_poll_start(ss_source_t *s)
{
    if (s->wm.col < 0)
        return;
    s->wm.now_us = ss_clock_us();
    mark_idle(s, s->wm.now_us);
    combine(s);
}

int64_t ss_source_watermark(ss_source_t *s, int64_t *next_us)
{
    conn_wm_t *w = &s->wm;
    if (next_us)
        *next_us = SS_TIME_NONE;
    if (w->col < 0)
        return SS_TIME_NONE;
    int64_t now = ss_clock_us();
    mark_idle(s, now);
    combine(s);
    if (next_us && w->idle_us > 0)
        for (int i = 0; i < s->npart; i++) {
            int64_t t = w->active_us[i] + w->idle_us;
            if (!w->idle[i] && (*next_us == SS_TIME_NONE || t < *next_us))
                *next_us = t > now ? t : now + 1000;
        }
    return w->wm;
}

int ss_source_wm_state(ss_source_t *s, const ss_wmark_t **out, int *n)
{
    conn_wm_t *w = &s->wm;
    *out = NULL;
    *n = 0;
    if (w->col < 0)
        return SS_OK;
    for (int i = 0; i < s->npart; i++)
        w->state[i] = (ss_wmark_t){s->pos[i].partition, w->max_us[i]};
    *out = w->state;
    *n = s->npart;
    return SS_OK;
}

static void fmt_time(int64_t us, char *buf, size_t n)
{
    ss_buf_t b = SS_BUF_INIT;
    if (us == SS_TIME_NONE || ss_ts_format(us, 0, 0, &b))
        snprintf(buf, n, "?");
    else
        snprintf(buf, n, "%s", ss_buf_cstr(&b));
    ss_buf_free(&b);
}

int conn_wm_event(ss_source_t *s, const conn_msg_t *m, const ss_zset_t *out, size_t before, char *why,
                  size_t whysz)
{
    conn_wm_t *w = &s->wm;
    if (w->col < 0)
        return 0;
    int i = 0;
    while (i < s->npart && s->pos[i].partition != m->partition)
        i++;
    if (i == s->npart)
        return 0;
    w->active_us[i] = w->now_us;
    if (w->idle[i]) { /* it speaks again: it holds the watermark again (never moving it back) */
        w->idle[i] = 0;
        combine(s);
    }
    int64_t mx = w->max_us[i];
    for (size_t k = before; k < out->n; k++) {
        const ss_value_t *v = &out->e[k].row->v[w->col];
        if (v->t == SS_NULL) {
            snprintf(why, whysz, "event time %s is NULL: the stream's WATERMARK needs it to place the event",
                     s->schema->names[w->col]);
            return 1;
        }
        int64_t t = ss_val_time_us(v);
        if (w->wm != SS_TIME_NONE && t < w->wm) {
            char a[40], b[40];
            fmt_time(t, a, sizeof a);
            fmt_time(w->wm, b, sizeof b);
            snprintf(why, whysz, "late event: %s %s is behind the watermark %s of stream %s (events may be at most "
                     "%.3f s out of order: WATERMARK FOR %s AS %s - %lld µs); its windows may be closed already",
                     s->schema->names[w->col], a, b, s->stream, w->delay_us / 1e6, s->schema->names[w->col],
                     s->schema->names[w->col], (long long)w->delay_us);
            return 1;
        }
        if (mx == SS_TIME_NONE || t > mx)
            mx = t;
    }
    if (mx != w->max_us[i]) {
        w->max_us[i] = mx;
        combine(s);
    }
    return 0;
}
