/*
 * log_client.c — producers and sources on the durable embedded log (the log
 * backends of ss_producer and ss_source, ss_connect.h). A producer queues
 * messages and appends them in batches (one fsync'd transaction per batch, per
 * flush, or per sink publish); a source reads each partition from its position
 * with ss_log_read, waking at once for appends of its own process and
 * re-reading every few milliseconds for those of other processes.
 */
#include "conn_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define PEND_MAX_MSGS 16384           /* queued messages that trigger an append */
#define PEND_MAX_BYTES (8u << 20)     /* queued bytes that trigger an append */
#define WAIT_SLICE_MS 10              /* how often a waiting source looks for other processes' appends */

/* ---- producer ---- */

int logprod_open(ss_producer_t *p, char *err, size_t errsz)
{
    return ss_log_open(p->t->addr, &p->log, err, errsz);
}

/* Appends everything queued, all or nothing; on failure it stays queued. */
static int commit(ss_producer_t *p, char *err, size_t errsz)
{
    if (!p->npend)
        return SS_OK;
    ss_log_rec_t *recs = malloc(p->npend * sizeof *recs);
    if (!recs)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < p->npend; i++) {
        const pend_rec_t *q = &p->pend[i];
        recs[i] = (ss_log_rec_t){p->data.data + q->topic_at, -1, q->has_key ? p->data.data + q->key_at : NULL,
                                 q->klen, q->has_val ? p->data.data + q->val_at : NULL, q->vlen};
    }
    int rc = ss_log_append(p->log, recs, p->npend, NULL, err, errsz);
    free(recs);
    if (rc)
        return rc;
    p->npend = 0;
    ss_buf_reset(&p->data);
    conn_log_appended(p->t);
    return SS_OK;
}

/* Copies n bytes into the data buffer; *at = where they start. */
static int stash(ss_producer_t *p, const void *b, size_t n, size_t *at)
{
    *at = p->data.len;
    return n ? ss_buf_append(&p->data, b, n) : SS_OK;
}

int logprod_send(ss_producer_t *p, const char *topic, const void *key, size_t klen, const void *val, size_t vlen,
                 char *err, size_t errsz)
{
    if (!topic || !*topic)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "produce: no topic");
    if (p->npend >= PEND_MAX_MSGS || p->data.len >= PEND_MAX_BYTES) {
        int rc = commit(p, err, errsz);
        if (rc)
            return rc;
    }
    if (p->npend == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        pend_rec_t *q = realloc(p->pend, cap * sizeof *q);
        if (!q)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        p->pend = q;
        p->cap = cap;
    }
    size_t len0 = p->data.len;
    pend_rec_t q = {0};
    int rc = SS_OK;
    if (p->npend && !strcmp(p->data.data + p->last_topic_at, topic))
        q.topic_at = p->last_topic_at;
    else if (!(rc = stash(p, topic, strlen(topic) + 1, &q.topic_at)))
        p->last_topic_at = q.topic_at;
    q.has_key = key != NULL;
    q.has_val = val != NULL;
    q.klen = key ? klen : 0;
    q.vlen = val ? vlen : 0;
    rc = rc ? rc : stash(p, key, q.klen, &q.key_at);
    rc = rc ? rc : stash(p, val, q.vlen, &q.val_at);
    if (rc) {
        p->data.len = len0;
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    p->pend[p->npend++] = q;
    return SS_OK;
}

int logprod_flush(ss_producer_t *p, char *err, size_t errsz) { return commit(p, err, errsz); }

void logprod_close(ss_producer_t *p)
{
    if (!p->log)
        return;
    char err[SS_ERRSZ];
    if (p->npend && commit(p, err, sizeof err))
        ss_log(SS_LOG_ERROR, "log", "producer closed with %zu message(s) not appended: %s", p->npend, err);
    ss_log_close(p->log);
    p->log = NULL;
    free(p->pend);
    ss_buf_free(&p->data);
}

/* ---- source ---- */

int logsrc_open(ss_source_t *s, const ss_offset_t *start, int nstart, char *err, size_t errsz)
{
    int rc = ss_transport_create_topic(s->t, s->topic, NULL, NULL, NULL, err, errsz);
    rc = rc ? rc : ss_log_open(s->t->addr, &s->log, err, errsz);
    if (!rc && (rc = ss_log_topic_get(s->log, s->topic, &s->lt, err, errsz)) == SS_ERR_NOTFOUND)
        rc = ss_seterr(err, errsz, SS_ERR_NOTFOUND, "topic %s vanished from log %s", s->topic, s->t->addr);
    if (rc)
        return rc;
    s->npart = s->lt.partitions;
    s->pos = calloc((size_t)s->npart, sizeof *s->pos);
    s->lo = calloc((size_t)s->npart, sizeof *s->lo);
    s->hi = calloc((size_t)s->npart, sizeof *s->hi);
    if (!s->pos || !s->lo || !s->hi)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if ((rc = ss_log_watermarks(s->log, &s->lt, s->lo, s->hi, err, errsz)))
        return rc;
    for (int i = 0; i < nstart; i++) /* positions in partitions the topic does not have */
        if (start[i].partition >= s->npart && start[i].offset > 0)
            return conn_past_end(s, start[i].partition, start[i].offset, 0, err, errsz);
    for (int p = 0; p < s->npart; p++) {
        int64_t off = -1;
        for (int i = 0; i < nstart; i++)
            if (start[i].partition == p && start[i].offset >= 0)
                off = start[i].offset;
        if (off > s->hi[p])
            return conn_past_end(s, p, off, s->hi[p], err, errsz);
        if (off >= 0 && off < s->lo[p])
            ss_log(SS_LOG_WARN, "log", "stream %s: topic %s partition %d: offsets %" PRId64 "..%" PRId64
                   " were deleted by the topic's retention before they were read; resuming at %" PRId64, s->stream,
                   s->topic, p, off, s->lo[p] - 1, s->lo[p]);
        s->pos[p] = (ss_offset_t){p, off < s->lo[p] ? s->lo[p] : off};
    }
    return SS_OK;
}

typedef struct read_ctx {
    ss_source_t *s;
    ss_zset_t *out;
    int p;
} read_ctx_t;

static int on_msg(void *arg, const ss_log_msg_t *m)
{
    read_ctx_t *c = arg;
    ss_source_t *s = c->s;
    if (m->offset > s->pos[c->p].offset)
        ss_log(SS_LOG_WARN, "log", "stream %s: topic %s partition %d: offsets %" PRId64 "..%" PRId64
               " were deleted by the topic's retention before they were read; continuing at %" PRId64, s->stream,
               s->topic, c->p, s->pos[c->p].offset, m->offset - 1, m->offset);
    conn_msg_t cm = {m->partition, m->offset, m->key, m->klen, m->val, m->vlen};
    conn_source_handle(s, &cm, c->out);
    return 0;
}

/* One pass over the partitions, starting at a rotating one; *got += messages read. */
static int read_round(ss_source_t *s, int max, ss_zset_t *out, int *got, char *err, size_t errsz)
{
    for (int k = 0; k < s->npart && *got < max; k++) {
        int p = (s->rr + k) % s->npart;
        read_ctx_t c = {s, out, p};
        int n = 0;
        int rc = ss_log_read(s->log, s->lt.id, p, s->pos[p].offset, max - *got, on_msg, &c, &n, err, errsz);
        *got += n;
        if (rc)
            return rc;
        if (s->pos[p].offset > s->hi[p])
            s->hi[p] = s->pos[p].offset;
    }
    s->rr = (s->rr + 1) % s->npart;
    return SS_OK;
}

/* Reads the partitions' current ends into s->lo/hi (unchanged on failure). */
static int refresh_marks(ss_source_t *s, char *err, size_t errsz)
{
    int64_t *lo = malloc((size_t)s->npart * sizeof *lo), *hi = malloc((size_t)s->npart * sizeof *hi);
    int rc = lo && hi ? ss_log_watermarks(s->log, &s->lt, lo, hi, err, errsz)
                      : (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc) {
        memcpy(s->lo, lo, (size_t)s->npart * sizeof *lo);
        memcpy(s->hi, hi, (size_t)s->npart * sizeof *hi);
    }
    free(lo);
    free(hi);
    return rc;
}

int logsrc_poll(ss_source_t *s, int max_msgs, int timeout_ms, ss_zset_t *out, int *got, char *err, size_t errsz)
{
    *got = 0;
    if (max_msgs <= 0)
        return SS_OK;
    int64_t deadline = ss_now_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    int rc;
    for (;;) {
        uint64_t gen = conn_log_gen(s->t);
        rc = read_round(s, max_msgs, out, got, err, errsz);
        if (rc || *got)
            break;
        int64_t left = (deadline - ss_now_ns()) / 1000000;
        if (left <= 0 || conn_source_woken(s))
            break;
        conn_log_wait(s->t, gen, (int)SS_MIN(left, WAIT_SLICE_MS));
    }
    char e2[SS_ERRSZ];
    if (!rc)
        refresh_marks(s, e2, sizeof e2); /* for ss_source_cached_lag; best effort */
    return rc;
}

static int64_t lag_of(const ss_source_t *s)
{
    int64_t total = 0;
    for (int p = 0; p < s->npart; p++) {
        int64_t at = s->pos[p].offset < s->lo[p] ? s->lo[p] : s->pos[p].offset;
        if (s->hi[p] > at)
            total += s->hi[p] - at;
    }
    return total;
}

int logsrc_lag(ss_source_t *s, int64_t *lag, char *err, size_t errsz)
{
    int rc = refresh_marks(s, err, errsz);
    if (rc)
        return rc;
    *lag = lag_of(s);
    return SS_OK;
}

int64_t logsrc_cached_lag(ss_source_t *s) { return lag_of(s); }

void logsrc_close(ss_source_t *s)
{
    ss_log_close(s->log);
    s->log = NULL;
    free(s->lo);
    free(s->hi);
}
