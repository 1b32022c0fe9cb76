/*
 * pipeline.c — one pipeline's thread (engine_int.h, struct eng_pipe).
 *
 * The thread owns a SQLite connection of its own, one operator per node of its
 * part of the plan, a source per SOURCE node (opened at the positions committed
 * in ss_offsets) and a sink per VIEW node with a sink topic. It is bound to a
 * dispatcher wait group, so no model call ever blocks it.
 *
 * A batch: poll the sources (up to batch_size messages, waiting at most
 * max_latency_ms; a statement's idle request wakes the poll, eng_pipe_wake, and while
 * one is pending a poll waits at most PIPE_ASKED_POLL_MS), then attempt it: BEGIN, run
 * the nodes in plan order, and
 *  - if some answers are not in the cache yet (SS_ERR_PENDING: the dispatcher
 *    queued them), ROLLBACK, let the operators forget what they changed in
 *    memory, restore their counters, and wait for answers; while it waits it
 *    reads more input into the same batch (up to max_pending_rows: beyond that
 *    it stops reading, never drops) and attempts again when half of the awaited
 *    answers are in or when new input has waited 200 ms, so the requests of new
 *    rows are issued while earlier ones are in flight;
 *  - else stage each sink view's delta in the outbox, store the input positions,
 *    COMMIT (state, view tables, outbox and positions together, after all of the
 *    batch's answers are in), then publish to the sinks and to subscribers.
 * Any other failure (broker, disk, a bug) rolls back, closes everything and
 * starts again from the committed state after an exponential backoff; it is
 * logged when it starts, every 30 s while it lasts, and when it ends.
 */
#include "engine_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PIPE_BACKOFF_FIRST_MS 250
#define PIPE_BACKOFF_MAX_MS 30000
#define PIPE_RERUN_INPUT_NS (200LL * 1000000LL)
/* A batch waiting for answers reads more input for at most this long (and at most
 * 10 x batch_size rows); then it waits for its own answers only, so it commits about one
 * model latency later however fast input arrives (rows read meanwhile would keep it
 * waiting for ever when input comes faster than answers). */
#define PIPE_GROW_NS (1000LL * 1000000LL)
/* Inputs whose ends cannot be read for this long while idle (a broker gone) are a failure. */
#define PIPE_UNREACHABLE_NS (2000LL * 1000000LL)
#define SS_OUTBOX_MAX 64
/* How long a poll waits for input while a statement waits for the pipeline's idle confirmation. */
#define PIPE_ASKED_POLL_MS 5
/* A failed pipeline (EP_FAILED) looks again this often for input of other processes. */
#define PIPE_FAILED_RECHECK_MS 60000

static const char *nz(const char *s) { return s ? s : ""; }

/* ---- status ---- */

static void notify_engine(ss_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    e->events++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void set_state(eng_pipe_t *p, eng_pipe_state_t st, const char *model)
{
    pthread_mutex_lock(&p->mu);
    p->state = st;
    if (model)
        snprintf(p->model, sizeof p->model, "%s", model);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Sleeps up to ms, returning early when the pipeline is asked to stop. */
static void pipe_sleep(eng_pipe_t *p, int64_t ms)
{
    struct timespec ts;
    ss_deadline(&ts, CLOCK_REALTIME, ms);
    pthread_mutex_lock(&p->mu);
    while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&p->mu);
}

static void publish_stats(eng_pipe_t *p);

/* ---- opening and closing what the thread owns ---- */

static int alloc_arrays(eng_pipe_t *p)
{
    size_t n = (size_t)p->e->plan->n + 1;
    p->ops = calloc(n, sizeof *p->ops);
    p->saved = calloc(n, sizeof *p->saved);
    p->srcs = calloc(n, sizeof *p->srcs);
    p->sinks = calloc(n, sizeof *p->sinks);
    p->outs = calloc(n, sizeof *p->outs);
    p->events = calloc(n, sizeof *p->events);
    p->seq = calloc(n, sizeof *p->seq);
    p->boot = calloc(n, 1);
    if (!p->ops || !p->saved || !p->srcs || !p->sinks || !p->outs || !p->events || !p->seq || !p->boot ||
        eng_time_alloc(p))
        return SS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        ss_zset_init(&p->outs[i]);
        ss_zset_init(&p->events[i]);
    }
    return SS_OK;
}

static void clear_batch(eng_pipe_t *p)
{
    for (int j = 0; p->outs && j < p->nn; j++) {
        ss_zset_clear(&p->outs[p->nodes[j]]);
        ss_zset_clear(&p->events[p->nodes[j]]);
    }
    p->batch_open = 0;
    p->batch_rows = 0;
    p->wait_start_ns = 0;
}

/* Closes sources, sinks, operators and the connection; the open batch is forgotten
 * (nothing of it was committed: the sources re-read it). */
static void close_io(eng_pipe_t *p)
{
    clear_batch(p);
    for (int j = 0; p->ops && j < p->nn; j++) {
        int i = p->nodes[j];
        pthread_mutex_lock(&p->mu); /* eng_pipe_wake reads srcs under mu */
        ss_source_t *src = p->srcs[i];
        p->srcs[i] = NULL;
        pthread_mutex_unlock(&p->mu);
        ss_source_close(src);
        ss_sink_close(p->sinks[i]);
        p->sinks[i] = NULL;
        pthread_mutex_lock(&p->mu);
        if (p->ops[i] && p->base) {
            publish_stats(p);
            p->base[i] = p->shown[i];
        }
        ss_op_destroy(p->ops[i]);
        p->ops[i] = NULL;
        pthread_mutex_unlock(&p->mu);
    }
    ss_store_close(p->store);
    p->store = NULL;
    p->opened = 0;
    p->outbox_pending = 0;
    eng_time_reset(p);
}

static ss_op_ctx_t op_ctx(eng_pipe_t *p)
{
    ss_op_ctx_t c = {ss_store_db(p->store), p->e->disp, (struct ss_embedder *)p->e->emb};
    return c;
}

static int open_ops(eng_pipe_t *p, char *err, size_t errsz)
{
    ss_op_ctx_t ctx = op_ctx(p);
    int rc = ss_store_begin(p->store, err, errsz);
    for (int j = 0; !rc && j < p->nn; j++) {
        int i = p->nodes[j];
        ss_op_t *op = NULL;
        rc = ss_op_new(p->e->plan->nodes[i], &op, err, errsz);
        if (!rc && op->vt->init)
            rc = op->vt->init(op, &ctx, err, errsz);
        pthread_mutex_lock(&p->mu);
        p->ops[i] = op;
        pthread_mutex_unlock(&p->mu);
        if (rc)
            ss_errprefix(err, errsz, "node %d (%s of view %s)", p->e->plan->nodes[i]->id,
                         ss_plan_kind_name(p->e->plan->nodes[i]->kind), nz(p->e->plan->nodes[i]->view));
    }
    if (!rc)
        return ss_store_commit(p->store, err, errsz);
    ss_store_rollback(p->store);
    return rc;
}

static int open_source(eng_pipe_t *p, int i, char *err, size_t errsz)
{
    const ss_plan_node_t *n = p->e->plan->nodes[i];
    ss_source_opts_t o = {0};
    o.transport = p->e->transport;
    o.stream = n->label;
    o.topic = ss_plan_opt(n, "topic") ? ss_plan_opt(n, "topic") : n->label;
    const char *fmt = ss_plan_opt(n, "format");
    if (ss_format_parse(fmt ? fmt : "json", &o.format))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "stream %s: unknown format %s", n->label, nz(fmt));
    o.schema = n->schema;
    o.dlq_topic = ss_plan_opt(n, "dlq_topic");
    o.append_only = ss_plan_opt_bool(n, "append_only");
    const char *mb = ss_plan_opt(n, "max_message_bytes");
    if (mb)
        o.max_message_bytes = (size_t)strtoull(mb, NULL, 10);
    char key[256], group[512];
    eng_source_key(n, key, sizeof key);
    if (p->e->group) {
        eng_group_id(p->e, n, group, sizeof group);
        o.group = group;
    }
    ss_offset_t *offs = NULL;
    int noffs = 0;
    ss_source_t *src = NULL;
    int rc = ss_store_get_offsets(p->store, key, &offs, &noffs, err, errsz);
    if (!rc)
        rc = ss_source_open(&o, offs, noffs, &src, err, errsz);
    pthread_mutex_lock(&p->mu); /* eng_pipe_wake reads srcs under mu */
    p->srcs[i] = src;
    pthread_mutex_unlock(&p->mu);
    if (!rc)
        rc = eng_time_open_source(p, i, key, err, errsz); /* WATERMARK FOR ... */
    free(offs);
    if (rc)
        ss_errprefix(err, errsz, "stream %s (topic %s)", n->label, o.topic);
    return rc;
}

static int open_sink(eng_pipe_t *p, int i, char *err, size_t errsz)
{
    const ss_plan_node_t *n = p->e->plan->nodes[i];
    int rc = ss_store_get_seq(p->store, n->label, &p->seq[i], err, errsz);
    const char *topic = ss_plan_opt(n, "sink_topic");
    if (rc || !topic)
        return rc;
    int keys[64];
    int nkey = ss_schema_keys(n->schema, keys, 64);
    rc = ss_sink_open(p->e->transport, n->label, topic, n->schema, nkey ? keys : NULL, nkey, &p->sinks[i], err, errsz);
    if (rc)
        ss_errprefix(err, errsz, "view %s: sink topic %s", n->label, topic);
    return rc;
}

static int republish_outbox(eng_pipe_t *p, char *err, size_t errsz);

static int pipe_open(eng_pipe_t *p, char *err, size_t errsz)
{
    if (p->state != EP_FAILING && p->state != EP_FAILED) /* a retry stays so until it succeeds (note_success) */
        set_state(p, EP_STARTING, NULL);
    p->lag_fail_ns = 0;
    int rc = ss_store_open(p->e->db_path, &p->store, err, errsz);
    if (!rc && p->disk_full) /* give the WAL's space back before trying again */
        ss_store_checkpoint(p->store, 1);
    if (!rc)
        rc = open_ops(p, err, errsz);
    p->booting = 0;
    for (int j = 0; !rc && j < p->nn; j++) {
        int i = p->nodes[j];
        p->boot[i] = (char)ss_store_node_boot(p->store, p->e->plan->nodes[i]->id);
        p->booting |= p->boot[i];
    }
    for (int j = 0; !rc && j < p->nn; j++)
        if (p->e->plan->nodes[p->nodes[j]]->kind == SS_PN_VIEW)
            rc = open_sink(p, p->nodes[j], err, errsz);
    if (!rc)
        rc = republish_outbox(p, err, errsz);
    for (int j = 0; !rc && j < p->nn; j++)
        if (p->e->plan->nodes[p->nodes[j]]->kind == SS_PN_SOURCE)
            rc = open_source(p, p->nodes[j], err, errsz);
    if (rc) {
        close_io(p);
        return rc;
    }
    p->opened = 1;
    return SS_OK;
}

/* ---- the sink outbox ---- */

/* Delta encoding for the outbox: per entry, weight (8 bytes), row length (4), row. */
int eng_encode_delta(const ss_zset_t *z, ss_buf_t *out)
{
    int rc = SS_OK;
    for (size_t i = 0; !rc && i < z->n; i++) {
        size_t at = out->len;
        uint32_t len = 0;
        rc = ss_buf_append(out, &z->e[i].w, 8);
        if (!rc)
            rc = ss_buf_append(out, &len, 4);
        if (!rc)
            rc = ss_row_encode(z->e[i].row, out); /* in place; its length patched in after */
        if (!rc) {
            len = (uint32_t)(out->len - at - 12);
            memcpy(out->data + at + 8, &len, 4);
        }
    }
    return rc;
}

static int decode_delta(const unsigned char *b, size_t n, ss_zset_t *z)
{
    size_t at = 0;
    while (at < n) {
        int64_t w;
        uint32_t len;
        if (n - at < 12)
            return SS_ERR_INVALID;
        memcpy(&w, b + at, 8);
        memcpy(&len, b + at + 8, 4);
        at += 12;
        if (n - at < len)
            return SS_ERR_INVALID;
        ss_row_t *r = NULL;
        int rc = ss_row_decode(b + at, len, &r);
        if (!rc)
            rc = ss_zset_add(z, r, w);
        if (rc)
            return rc;
        at += len;
    }
    return SS_OK;
}

/* Inside a transaction: once every message published since the last settle is
 * delivered (block: wait for that; else only check), forgets them and records
 * each sink view's next sequence. Not yet delivered and !block: leaves them. */
static int settle_in_txn(eng_pipe_t *p, int block, char *err, size_t errsz)
{
    if (!p->outbox_pending)
        return SS_OK;
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        if (!p->sinks[i])
            continue;
        int rc = ss_sink_flush(p->sinks[i], block ? 60000 : 0, err, errsz);
        if (rc == SS_ERR_TIMEOUT && !block)
            return SS_OK;
        if (rc)
            return rc;
    }
    int rc = SS_OK;
    for (int j = 0; !rc && j < p->nn; j++) {
        int i = p->nodes[j];
        if (!p->sinks[i])
            continue;
        rc = ss_store_outbox_clear(p->store, p->e->plan->nodes[i]->label, err, errsz);
        if (!rc)
            rc = ss_store_put_seq(p->store, p->e->plan->nodes[i]->label, p->seq[i], err, errsz);
    }
    if (!rc)
        p->outbox_pending = 0;
    return rc;
}

static int settle(eng_pipe_t *p, char *err, size_t errsz)
{
    if (!p->outbox_pending)
        return SS_OK;
    int rc = ss_store_begin(p->store, err, errsz);
    if (!rc)
        rc = settle_in_txn(p, 1, err, errsz);
    if (!rc)
        return ss_store_commit(p->store, err, errsz);
    ss_store_rollback(p->store);
    return rc;
}

/* Inside the batch's transaction: settle earlier batches if they are delivered
 * (waiting only when SS_OUTBOX_MAX batches are outstanding), then store this
 * batch's sink deltas in the outbox. */
static int stage_views(eng_pipe_t *p, char *err, size_t errsz)
{
    int rc = settle_in_txn(p, p->outbox_pending >= SS_OUTBOX_MAX, err, errsz);
    ss_buf_t b = SS_BUF_INIT;
    for (int j = 0; !rc && j < p->nn; j++) {
        int i = p->nodes[j];
        if (!p->sinks[i] || !p->outs[i].n)
            continue;
        ss_buf_reset(&b);
        rc = eng_encode_delta(&p->outs[i], &b);
        if (!rc)
            rc = ss_store_outbox_add(p->store, p->e->plan->nodes[i]->label, p->seq[i], b.data, b.len, err, errsz);
    }
    ss_buf_free(&b);
    return rc;
}

/* After the commit: publish the staged deltas (delivery is awaited by the next settle). */
static int publish_staged(eng_pipe_t *p, char *err, size_t errsz)
{
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        if (!p->sinks[i] || !p->outs[i].n)
            continue;
        p->outbox_pending++;
        int rc = ss_sink_publish(p->sinks[i], &p->outs[i], &p->seq[i], err, errsz);
        if (rc)
            return rc;
    }
    return SS_OK;
}

typedef struct republish {
    eng_pipe_t *p;
    int i, count;
} republish_t;

static int republish_one(void *arg, const char *view, int64_t seq_start, const void *delta, size_t len, char *err,
                         size_t errsz)
{
    republish_t *r = arg;
    eng_pipe_t *p = r->p;
    if (seq_start != p->seq[r->i])
        ss_log(SS_LOG_WARN, "engine", "view %s: outbox sequence %lld, expected %lld", view, (long long)seq_start,
               (long long)p->seq[r->i]);
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = decode_delta(delta, len, &z);
    if (rc)
        rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "view %s: corrupt outbox entry", view);
    if (!rc)
        rc = ss_sink_publish(p->sinks[r->i], &z, &p->seq[r->i], err, errsz);
    ss_zset_destroy(&z);
    r->count++;
    return rc;
}

/* At open: re-publish what a crash (or the bootstrap of a new view) left undelivered. */
static int republish_outbox(eng_pipe_t *p, char *err, size_t errsz)
{
    int rc = ss_store_begin(p->store, err, errsz);
    int count = 0;
    for (int j = 0; !rc && j < p->nn; j++) {
        int i = p->nodes[j];
        const ss_plan_node_t *n = p->e->plan->nodes[i];
        if (n->kind != SS_PN_VIEW)
            continue;
        if (!p->sinks[i]) {
            rc = ss_store_outbox_clear(p->store, n->label, err, errsz); /* the view has no sink (any more) */
            continue;
        }
        republish_t r = {p, i, 0};
        rc = ss_store_outbox_each(p->store, n->label, republish_one, &r, err, errsz);
        count += r.count;
    }
    if (!rc && count) {
        ss_log(SS_LOG_INFO, "engine", "views %s: re-published %d undelivered change batch(es)", p->views, count);
        p->outbox_pending = 1;
        rc = settle_in_txn(p, 1, err, errsz);
    }
    if (!rc)
        return ss_store_commit(p->store, err, errsz);
    ss_store_rollback(p->store);
    return rc;
}

static int store_offsets(eng_pipe_t *p, char *err, size_t errsz)
{
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        if (!p->srcs[i])
            continue;
        const ss_offset_t *pos;
        int npos;
        ss_source_positions(p->srcs[i], &pos, &npos);
        char key[256];
        eng_source_key(p->e->plan->nodes[i], key, sizeof key);
        int rc = ss_store_put_offsets(p->store, key, pos, npos, err, errsz);
        if (!rc)
            rc = eng_time_store(p, i, key, err, errsz);
        if (rc)
            return rc;
    }
    return SS_OK;
}

/* ---- input ---- */

/* --group: a partition the open batch read from was revoked, or the group refused the batch's
 * positions. Nothing of the batch is committed here, so it is dropped and every source goes back
 * to its last committed positions (a revoked partition's new owner reads it from the group's
 * committed offset). */
static void drop_batch(eng_pipe_t *p)
{
    ss_log(SS_LOG_INFO, "engine", "views %s: group %s rebalanced: the open batch (%lld message(s), not committed "
           "here) is read again", p->views, p->e->group, (long long)p->batch_rows);
    clear_batch(p);
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        ss_zset_clear(&p->outs[i]);
        if (p->srcs[i])
            ss_source_rewind(p->srcs[i]);
    }
    if (p->wg)
        ss_dispatch_wg_forget(p->wg);
}

/* Polls up to max messages in all from the sources, waiting at most timeout_ms for the first. */
static int poll_sources(eng_pipe_t *p, int max, int timeout_ms, int *got, char *err, size_t errsz)
{
    *got = 0;
    int nsrc = 0;
    for (int j = 0; j < p->nn; j++)
        nsrc += p->srcs[p->nodes[j]] != NULL;
    if (nsrc == 0 || max <= 0)
        return SS_OK;
    int64_t deadline = ss_now_ns() + (int64_t)timeout_ms * 1000000;
    int first = 1;
    while (*got < max && !p->stop) {
        int before = *got;
        int slice = first ? 0 : (int)SS_MAX(1, SS_MIN((deadline - ss_now_ns()) / 1000000, 50) / nsrc);
        for (int j = 0; j < p->nn && *got < max; j++) {
            int i = p->nodes[j];
            if (!p->srcs[i])
                continue;
            int n = 0;
            int rc = ss_source_poll(p->srcs[i], max - *got, slice, &p->events[i], &n, err, errsz);
            if (rc)
                return rc;
            *got += n;
            if (ss_source_rebalanced(p->srcs[i])) { /* --group: a partition of the open batch moved */
                drop_batch(p);
                *got = 0;
                return SS_OK;
            }
        }
        first = 0;
        if (__atomic_exchange_n(&p->wake, 0, __ATOMIC_ACQ_REL))
            break; /* a statement waits for this pipeline's answer (eng_pipe_wake) */
        if (*got > 0 && *got == before)
            break; /* something read, and the sources have nothing more right now */
        if (*got == 0 && ss_now_ns() >= deadline)
            break;
    }
    return SS_OK;
}

/* Input not consumed yet, summed over the sources (-1 if a source cannot tell: err says why). */
static int64_t measure_lag(eng_pipe_t *p, char *err, size_t errsz)
{
    int64_t lag = 0;
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        int64_t l = 0;
        if (!p->srcs[i])
            continue;
        if (ss_source_lag(p->srcs[i], &l, err, errsz) != SS_OK)
            return -1;
        lag += l;
    }
    return lag;
}

static void update_lag(eng_pipe_t *p, int force)
{
    int64_t now = ss_now_ns();
    if (!force && now - p->last_lag_ns < 500000000LL)
        return;
    p->last_lag_ns = now;
    int64_t lag = measure_lag(p, p->lag_error, sizeof p->lag_error);
    if (lag < 0 && !p->lag_fail_ns)
        p->lag_fail_ns = now; /* the inputs cannot be reached: idle_work reports it if it lasts */
    else if (lag >= 0)
        p->lag_fail_ns = 0;
    if (lag >= 0 && p->batch_open)
        lag += p->batch_rows; /* read into the open batch, not applied yet */
    pthread_mutex_lock(&p->mu);
    p->lag = lag;
    if (p->state == EP_RUNNING || p->state == EP_CATCHING_UP || p->state == EP_STARTING)
        p->state = lag == 0 ? EP_RUNNING : EP_CATCHING_UP;
    pthread_mutex_unlock(&p->mu);
}

/* ---- running the nodes ---- */

/* Runs op->vt->apply and keeps the operator's batch/row counters for operators
 * that do not maintain them themselves. */
static int apply_op(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out, char *err,
                    size_t errsz)
{
    int64_t batches = op->stats.batches;
    size_t before = out->n;
    int rc = op->vt->apply(op, ctx, port, in, out, err, errsz);
    if (!rc && op->stats.batches == batches && in->n) {
        op->stats.batches++;
        op->stats.rows_in += (int64_t)in->n;
        op->stats.rows_out += (int64_t)(out->n - SS_MIN(before, out->n));
    }
    return rc;
}

static int node_pos(const ss_plan_t *pl, const ss_plan_node_t *n)
{
    for (int i = 0; i < pl->n; i++)
        if (pl->nodes[i] == n)
            return i;
    return -1;
}

/* The bootstrap batch: only the marked nodes run, fed the snapshots of the existing
 * nodes they read and the outputs of marked nodes before them. */
static int run_boot(eng_pipe_t *p, char *err, size_t errsz)
{
    const ss_plan_t *pl = p->e->plan;
    ss_op_ctx_t ctx = op_ctx(p);
    ss_zset_t snap;
    ss_zset_init(&snap);
    int rc = SS_OK;
    for (int j = 0; !rc && j < p->nn; j++) {
        int i = p->nodes[j];
        const ss_plan_node_t *n = pl->nodes[i];
        if (!p->boot[i])
            continue;
        int applied = 0;
        for (int k = 0; !rc && k < n->nin; k++) {
            int s = node_pos(pl, n->in[k]);
            if (s < 0)
                continue;
            if (p->boot[s]) {
                if (p->outs[s].n) {
                    rc = apply_op(p->ops[i], &ctx, k, &p->outs[s], &p->outs[i], err, errsz);
                    applied = 1;
                }
                continue;
            }
            if (pl->nodes[s]->kind != SS_PN_VIEW)
                continue; /* a new view's own sources start at the beginning of their topics, and
                             its nodes fed by them only (a join's or UNION's other side) follow */
            ss_zset_clear(&snap);
            if (p->e->group) {
                rc = ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "a new view cannot be fed view %s under --group "
                               "(this instance holds only its partitions' rows): start the group with it defined",
                               nz(pl->nodes[s]->label));
                break;
            }
            if (!p->ops[s]->vt->snapshot)
                rc = ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "node %d (%s) keeps no snapshot to bootstrap a new "
                               "view from", pl->nodes[s]->id, p->ops[s]->vt->name);
            if (!rc)
                rc = p->ops[s]->vt->snapshot(p->ops[s], &ctx, &snap, err, errsz);
            if (!rc)
                rc = ss_zset_consolidate(&snap);
            if (!rc && snap.n) {
                rc = apply_op(p->ops[i], &ctx, k, &snap, &p->outs[i], err, errsz);
                applied = 1;
            }
        }
        if (!rc && !applied) { /* no input yet: one empty apply (a global aggregate's row) */
            ss_zset_clear(&snap);
            rc = p->ops[i]->vt->apply(p->ops[i], &ctx, 0, &snap, &p->outs[i], err, errsz);
        }
        if (!rc)
            rc = ss_zset_consolidate(&p->outs[i]);
        if (!rc)
            rc = ss_store_node_set_boot(p->store, n->id, 0, err, errsz);
        if (rc && rc != SS_ERR_PENDING)
            ss_errprefix(err, errsz, "bootstrapping node %d (%s of view %s)", n->id, p->ops[i]->vt->name,
                         nz(n->view));
    }
    ss_zset_destroy(&snap);
    return rc;
}

static int run_nodes(eng_pipe_t *p, int tick, char *err, size_t errsz)
{
    if (p->booting)
        return run_boot(p, err, errsz);
    const ss_plan_t *pl = p->e->plan;
    ss_op_ctx_t ctx = op_ctx(p);
    int64_t now_us = ss_clock_us(); /* one clock for the whole batch */
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        const ss_plan_node_t *n = pl->nodes[i];
        ss_op_t *op = p->ops[i];
        int rc = SS_OK;
        eng_time_before(p, i, now_us);
        if (n->kind == SS_PN_SOURCE) {
            if (p->events[i].n || tick)
                rc = apply_op(op, &ctx, 0, &p->events[i], &p->outs[i], err, errsz);
        } else {
            for (int k = 0; !rc && k < n->nin; k++) {
                int s = node_pos(pl, n->in[k]);
                if (s >= 0 && p->outs[s].n)
                    rc = apply_op(op, &ctx, k, &p->outs[s], &p->outs[i], err, errsz);
            }
        }
        if (!rc)
            rc = eng_time_after(p, i, &ctx, err, errsz); /* what time changed (pipe_time.c) */
        if (!rc)
            rc = ss_zset_consolidate(&p->outs[i]);
        if (rc) {
            if (rc != SS_ERR_PENDING)
                ss_errprefix(err, errsz, "node %d (%s of view %s)", n->id, op->vt->name, nz(n->view));
            return rc;
        }
    }
    return SS_OK;
}

/* Undoes an attempt that did not commit: the tables (rollback), the operators' memory
 * and counters, and the outputs; the batch's events stay for the next attempt. */
static void undo_attempt(eng_pipe_t *p)
{
    ss_store_rollback(p->store);
    pthread_mutex_lock(&p->mu);
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        if (p->ops[i]->vt->rollback)
            p->ops[i]->vt->rollback(p->ops[i]);
        p->ops[i]->stats = p->saved[i];
        ss_zset_clear(&p->outs[i]);
    }
    pthread_mutex_unlock(&p->mu);
}

/* The open batch waits for answers: returns when it is worth attempting again. */
static void wait_answers(eng_pipe_t *p)
{
    ss_engine_t *e = p->e;
    ss_dispatch_wg_status_t ws;
    ss_dispatch_wg_status(p->wg, &ws);
    set_state(p, EP_WAITING, ws.model);
    int want = SS_MAX(1, ws.outstanding / 2);
    int64_t max_pending = (int64_t)e->batch_size * 10;
    int new_input = 0;
    while (!p->stop) {
        ss_dispatch_wg_wait(p->wg, want, 100);
        ss_dispatch_wg_status(p->wg, &ws);
        if (ws.outstanding == 0 || ws.completed >= want)
            break;
        /* read on while waiting, so the next rows' requests go out now (bounded: backpressure) */
        if (p->batch_rows < max_pending && ss_now_ns() - p->wait_start_ns < PIPE_GROW_NS) {
            int got = 0;
            char err[SS_ERRSZ];
            if (poll_sources(p, (int)SS_MIN(max_pending - p->batch_rows, e->batch_size), 0, &got, err, sizeof err))
                break; /* the attempt will meet the failure and handle it */
            if (!p->batch_open)
                break; /* dropped (--group rebalance): the next step polls afresh */
            p->batch_rows += got;
            new_input |= got > 0;
        }
        if (new_input && ss_now_ns() - p->attempt_ns >= PIPE_RERUN_INPUT_NS)
            break;
        update_lag(p, 0);
    }
    ss_dispatch_wg_rearm(p->wg);
}

/* Counters SHOW VIEWS and EXPLAIN read: those of operators closed earlier plus the
 * current ones, as of the last commit (p->mu held). */
static void publish_stats(eng_pipe_t *p)
{
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        ss_op_stats_t s = p->base[i];
        if (p->ops[i]) {
            const ss_op_stats_t *o = &p->ops[i]->stats;
            s.batches += o->batches;
            s.rows_in += o->rows_in;
            s.rows_out += o->rows_out;
            s.infer.requests += o->infer.requests;
            s.infer.calls += o->infer.calls;
            s.infer.cache_hits += o->infer.cache_hits;
            s.infer.prompt_tokens += o->infer.prompt_tokens;
            s.infer.gen_tokens += o->infer.gen_tokens;
            s.infer.ns += o->infer.ns;
        }
        p->shown[i] = s;
    }
}

static void commit_done(eng_pipe_t *p)
{
    if (p->booting) {
        p->booting = 0;
        for (int j = 0; j < p->nn; j++)
            p->boot[p->nodes[j]] = 0;
    }
    pthread_mutex_lock(&p->mu);
    p->batches++;
    p->messages += p->batch_rows;
    if (p->state == EP_WAITING || p->state == EP_STARTING)
        p->state = EP_CATCHING_UP;
    publish_stats(p);
    pthread_mutex_unlock(&p->mu);
    ss_dispatch_wg_forget(p->wg);
    p->wal_dirty = 1;
    /* a long catch-up never idles: checkpoint now and then, or the WAL grows with all of it */
    if (ss_now_ns() - p->checkpoint_ns > 2000000000LL) {
        ss_store_checkpoint(p->store, 0);
        p->checkpoint_ns = ss_now_ns();
    }
    notify_engine(p->e);
}

/* The committed changes of the pipeline's views go to their subscribers (commit_mu held). */
static void publish_subs(eng_pipe_t *p)
{
    for (int j = 0; j < p->nn; j++) {
        int i = p->nodes[j];
        const ss_plan_node_t *n = p->e->plan->nodes[i];
        if (n->kind == SS_PN_VIEW && p->outs[i].n)
            eng_subs_publish(p->e, n->label, &p->outs[i], n->schema);
    }
}

/* --group, a batch of new input: each sink view's delta is published and delivered (no
 * outbox: the group's committed offsets, not the local state, say what was published), and its
 * next sequence stored in the open transaction. */
static int publish_delivered(eng_pipe_t *p, char *err, size_t errsz)
{
    int rc = SS_OK;
    for (int j = 0; !rc && j < p->nn; j++) {
        int i = p->nodes[j];
        if (!p->sinks[i] || !p->outs[i].n)
            continue;
        rc = ss_sink_publish(p->sinks[i], &p->outs[i], &p->seq[i], err, errsz);
        if (!rc)
            rc = ss_sink_flush(p->sinks[i], 60000, err, errsz);
        if (!rc)
            rc = ss_store_put_seq(p->store, p->e->plan->nodes[i]->label, p->seq[i], err, errsz);
    }
    return rc;
}

/* --group (docs/ARCHITECTURE.md §6.1, §6.5): Kafka first, then SQLite. A batch of new input
 * commits its range to the group (ss_source_intend), is delivered to the sinks and its positions
 * committed to the group before the state and the local positions commit, so the local position
 * never passes the group's; a replay batch (messages the previous owner published) only brings
 * the state and the local positions on. *redo = 1 (SS_OK) when the group refused the range or the
 * positions (it is rebalancing): the caller rolls the batch back and reads it again, or its new
 * owner does, over the same range, so each key's changes are published again the same
 * (at-least-once). */
static int commit_grouped(eng_pipe_t *p, int *redo, char *err, size_t errsz)
{
    int replay = 0;
    *redo = 0;
    for (int j = 0; j < p->nn; j++)
        replay |= p->srcs[p->nodes[j]] && ss_source_is_replay(p->srcs[p->nodes[j]]);
    int rc = store_offsets(p, err, errsz);
    int publishes = 0;
    for (int j = 0; j < p->nn; j++)
        publishes |= p->sinks[p->nodes[j]] && p->outs[p->nodes[j]].n;
    for (int j = 0; !rc && !replay && publishes && j < p->nn; j++)
        if (p->srcs[p->nodes[j]]) /* where the batch ends, before any of it is published */
            rc = ss_source_intend(p->srcs[p->nodes[j]], err, errsz);
    if (!rc && !replay)
        rc = publish_delivered(p, err, errsz);
    for (int j = 0; !rc && !replay && j < p->nn; j++)
        if (p->srcs[p->nodes[j]])
            rc = ss_source_commit_group(p->srcs[p->nodes[j]], err, errsz);
    if (rc == SS_ERR_BUSY) {
        ss_log(SS_LOG_INFO, "engine", "views %s: %s: the batch is read again", p->views, err);
        *redo = 1;
        return SS_OK;
    }
    if (rc)
        return rc;
    pthread_mutex_lock(&p->commit_mu);
    rc = ss_store_commit(p->store, err, errsz);
    if (!rc)
        publish_subs(p); /* the local view changed (a replay too) */
    pthread_mutex_unlock(&p->commit_mu);
    for (int j = 0; !rc && j < p->nn; j++)
        if (p->srcs[p->nodes[j]])
            ss_source_mark(p->srcs[p->nodes[j]]);
    return rc;
}

/* One attempt at the open batch. SS_OK also when it must wait for answers (done here). */
static int attempt(eng_pipe_t *p, int tick, char *err, size_t errsz)
{
    for (int j = 0; j < p->nn; j++)
        p->saved[p->nodes[j]] = p->ops[p->nodes[j]]->stats;
    p->attempt_ns = ss_now_ns();
    int rc = ss_store_begin(p->store, err, errsz);
    if (!rc)
        rc = run_nodes(p, tick, err, errsz);
    if (rc == SS_ERR_PENDING) {
        if (!p->wait_start_ns)
            p->wait_start_ns = p->attempt_ns; /* the batch's first wait */
        undo_attempt(p);
        wait_answers(p);
        return SS_OK;
    }
    if (p->e->group) {
        int redo = 0;
        if (!rc)
            rc = commit_grouped(p, &redo, err, errsz);
        if (rc || redo) {
            undo_attempt(p);
            if (redo)
                drop_batch(p);
            return rc;
        }
        commit_done(p);
        eng_time_committed(p);
        clear_batch(p);
        return SS_OK;
    }
    if (!rc)
        rc = stage_views(p, err, errsz);
    if (!rc)
        rc = store_offsets(p, err, errsz);
    if (!rc) {
        /* a subscription opened now sees either the state before this commit and then
         * its delta, or the state after it: never both, never neither (subscribe.c) */
        pthread_mutex_lock(&p->commit_mu);
        rc = ss_store_commit(p->store, err, errsz);
        if (!rc)
            publish_subs(p);
        pthread_mutex_unlock(&p->commit_mu);
    }
    if (rc) {
        undo_attempt(p);
        return rc;
    }
    commit_done(p);
    eng_time_committed(p);
    rc = publish_staged(p, err, errsz);
    clear_batch(p);
    return rc;
}

/* Nothing to read: confirm deliveries, checkpoint, measure the lag, confirm idleness. */
static int idle_work(eng_pipe_t *p, char *err, size_t errsz)
{
    int rc = settle(p, err, errsz);
    if (rc)
        return rc;
    ss_engine_t *e = p->e;
    pthread_mutex_lock(&e->mu);
    uint64_t want = e->idle_req;
    pthread_mutex_unlock(&e->mu);
    int asked = want != p->idle_gen;
    update_lag(p, asked); /* measured after the request: input written before it counts */
    /* a broker gone while nothing arrives shows only here: a failure, logged and retried */
    if (p->lag_fail_ns && ss_now_ns() - p->lag_fail_ns >= PIPE_UNREACHABLE_NS)
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "inputs unreachable for %.0f s: %s",
                         (ss_now_ns() - p->lag_fail_ns) / 1e9, p->lag_error);
    if (asked && p->lag == 0) {
        pthread_mutex_lock(&p->mu);
        p->idle_gen = want;
        pthread_mutex_unlock(&p->mu);
        notify_engine(e);
    }
    if (p->wal_dirty) { /* after the confirmation: a statement waiting for it need not wait for this */
        ss_store_checkpoint(p->store, 0);
        p->wal_dirty = 0;
        p->checkpoint_ns = ss_now_ns();
    }
    return SS_OK;
}

/* 1 if a statement asked for an idle confirmation this pipeline has not given yet. */
static int idle_asked(eng_pipe_t *p)
{
    pthread_mutex_lock(&p->e->mu);
    uint64_t want = p->e->idle_req;
    pthread_mutex_unlock(&p->e->mu);
    pthread_mutex_lock(&p->mu);
    int asked = want != p->idle_gen;
    pthread_mutex_unlock(&p->mu);
    return asked;
}

static int pipe_step(eng_pipe_t *p, char *err, size_t errsz)
{
    ss_engine_t *e = p->e;
    int tick = 0;
    if (!p->batch_open && p->booting) { /* new nodes are fed the views they read first */
        p->batch_open = 1;
        p->batch_rows = 0;
    }
    if (!p->batch_open) {
        int got = 0, wait_ms = eng_time_poll_ms(p, e->max_latency_ms);
        if (idle_asked(p)) /* a statement waits: answer within milliseconds, not max_latency_ms */
            wait_ms = SS_MIN(wait_ms, PIPE_ASKED_POLL_MS);
        int rc = poll_sources(p, e->batch_size, wait_ms, &got, err, errsz);
        if (rc)
            return rc;
        tick = got == 0 && eng_time_tick_due(p); /* a timer is due: an empty batch (pipe_time.c) */
        if (got == 0 && !tick)
            return idle_work(p, err, errsz);
        p->batch_open = 1;
        p->batch_rows = got;
        update_lag(p, 0);
    }
    return attempt(p, tick, err, errsz);
}

/* ---- the thread ---- */

static int64_t backoff_ms(int64_t prev)
{
    int64_t b = prev ? SS_MIN(prev * 2, PIPE_BACKOFF_MAX_MS) : PIPE_BACKOFF_FIRST_MS;
    return b / 2 + (int64_t)((uint64_t)ss_now_ns() % (uint64_t)(b / 2 + 1));
}

/* Failures that retrying alone will not mend (bad definitions or data, a topic reset
 * under saved positions, a bug): `run --until-idle` reports them instead of waiting. */
static int needs_user(int rc)
{
    return rc == SS_ERR_INVALID || rc == SS_ERR_SEMANTIC || rc == SS_ERR_NOTFOUND || rc == SS_ERR_PARSE ||
           rc == SS_ERR_UNSUPPORTED || rc == SS_ERR_INTERNAL;
}

/* A failed pipeline waits until something it may depend on changed (input written, a model
 * created or dropped: e->changes; a view created or dropped rebuilds every pipeline) or, for
 * input written by other processes, PIPE_FAILED_RECHECK_MS pass; or until it is stopped. */
static void wait_for_change(eng_pipe_t *p)
{
    uint64_t seen = __atomic_load_n(&p->e->changes, __ATOMIC_ACQUIRE);
    int64_t until = ss_now_ns() + PIPE_FAILED_RECHECK_MS * 1000000LL;
    while (!p->stop && ss_now_ns() < until && __atomic_load_n(&p->e->changes, __ATOMIC_ACQUIRE) == seen)
        pipe_sleep(p, 200);
}

/* A failure that needs the user: the state says what and where, logged once; no retry on a timer. */
static void note_failed(eng_pipe_t *p, const char *err)
{
    pthread_mutex_lock(&p->mu);
    int first = p->state != EP_FAILED || strcmp(p->error, err) != 0;
    if (p->state != EP_FAILED)
        p->failing_since_ms = ss_wall_ms();
    p->state = EP_FAILED;
    p->failures++;
    p->fatal = 1;
    snprintf(p->error, sizeof p->error, "%s", err);
    p->next_retry_ms = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (first)
        ss_log(SS_LOG_ERROR, "engine", "views %s failed: %s; tried again when input is written, a model is created "
               "or dropped, or the view is created again", p->views, err);
    notify_engine(p->e);
    wait_for_change(p);
}

static void note_failure(eng_pipe_t *p, int rc, const char *err)
{
    if (needs_user(rc)) {
        note_failed(p, err);
        return;
    }
    int64_t wait = backoff_ms(p->backoff_ms);
    p->backoff_ms = SS_MAX(wait, p->backoff_ms ? p->backoff_ms * 2 : PIPE_BACKOFF_FIRST_MS);
    p->backoff_ms = SS_MIN(p->backoff_ms, PIPE_BACKOFF_MAX_MS);
    int64_t now = ss_now_ns();
    pthread_mutex_lock(&p->mu);
    int first = p->state != EP_FAILING;
    if (first) {
        p->failing_since_ms = ss_wall_ms();
        p->fail_log_ns = now;
    }
    p->state = EP_FAILING;
    p->failures++;
    p->fatal = needs_user(rc);
    snprintf(p->error, sizeof p->error, "%s", err);
    p->next_retry_ms = ss_wall_ms() + wait;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (first)
        ss_log(SS_LOG_ERROR, "engine", "views %s: %s; retrying in %.1f s", p->views, err, wait / 1000.0);
    else if (now - p->fail_log_ns >= 30000000000LL) {
        p->fail_log_ns = now;
        ss_log(SS_LOG_ERROR, "engine", "views %s still failing after %.0f s: %s; next retry in %.1f s", p->views,
               (ss_wall_ms() - p->failing_since_ms) / 1000.0, err, wait / 1000.0);
    }
    notify_engine(p->e);
    pipe_sleep(p, wait);
}

static void note_success(eng_pipe_t *p)
{
    if (p->state != EP_FAILING && p->state != EP_FAILED)
        return;
    /* at the level of the failure it ends, so whoever saw that sees this */
    ss_log(SS_LOG_WARN, "engine", "views %s running again after %.1f s", p->views,
           (ss_wall_ms() - p->failing_since_ms) / 1000.0);
    p->backoff_ms = 0;
    p->fatal = 0;
    set_state(p, EP_CATCHING_UP, NULL);
    update_lag(p, 1);
}

static void *pipe_main(void *arg)
{
    eng_pipe_t *p = arg;
    if (!p->e->sync_inference) /* (sync_inference: the old blocking calls, for comparison) */
        ss_dispatch_bind(p->wg);
    char err[SS_ERRSZ];
    while (!p->stop) {
        err[0] = 0;
        int rc = p->opened ? SS_OK : pipe_open(p, err, sizeof err);
        if (!rc)
            rc = pipe_step(p, err, sizeof err);
        if (rc && !p->stop) {
            if (p->store && ss_store_in_txn(p->store))
                undo_attempt(p);
            close_io(p); /* start again from what is committed */
            p->disk_full = strstr(err, "disk is full") != NULL || strstr(err, "disk full") != NULL;
            note_failure(p, rc, err[0] ? err : ss_err2str((ss_err_t)rc));
        } else if (!rc && p->opened) {
            note_success(p);
        }
    }
    if (p->store && ss_store_in_txn(p->store))
        undo_attempt(p);
    if (p->opened) { /* deliveries of committed batches: confirmed now, or re-published at the next start */
        char serr[SS_ERRSZ];
        if (settle(p, serr, sizeof serr))
            ss_log(SS_LOG_WARN, "engine", "views %s: sink delivery not confirmed at stop (re-published at the "
                   "next start): %s", p->views, serr);
    }
    close_io(p);
    ss_dispatch_bind(NULL);
    set_state(p, EP_STOPPED, NULL);
    return NULL;
}

int eng_pipe_start(eng_pipe_t *p, char *err, size_t errsz)
{
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->commit_mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->inited = 1;
    p->lag = -1;
    p->state = EP_STARTING;
    size_t n = (size_t)p->e->plan->n + 1;
    int rc = alloc_arrays(p) || !(p->base = calloc(n, sizeof *p->base)) || !(p->shown = calloc(n, sizeof *p->shown))
                 ? ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory")
                 : SS_OK;
    for (int j = 0; !rc && j < p->nn; j++) { /* counters survive rebuilds */
        int i = p->nodes[j];
        eng_kept_stats(p->e, p->e->plan->nodes[i]->id, &p->base[i]);
        p->shown[i] = p->base[i];
    }
    if (!rc && p->e->disp)
        rc = ss_dispatch_wg_new(p->e->disp, &p->wg, err, errsz);
    if (rc)
        return rc;
    sigset_t old;
    eng_block_signals(&old);
    int trc = pthread_create(&p->th, NULL, pipe_main, p);
    eng_restore_signals(&old);
    if (trc)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "views %s: cannot start a thread: %s", p->views, strerror(trc));
    p->started = 1;
    return SS_OK;
}

void eng_pipe_stop(eng_pipe_t *p)
{
    if (!p || !p->started)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->wg)
        ss_dispatch_wg_wake(p->wg);
    pthread_join(p->th, NULL);
    p->started = 0;
}

void eng_pipe_wake(eng_pipe_t *p)
{
    if (!p || !p->started)
        return;
    __atomic_store_n(&p->wake, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&p->mu);
    for (int j = 0; p->srcs && j < p->nn; j++)
        ss_source_wake(p->srcs[p->nodes[j]]);
    pthread_mutex_unlock(&p->mu);
}

void eng_pipe_free(eng_pipe_t *p)
{
    if (!p)
        return;
    if (p->ops)
        close_io(p);
    for (int i = 0; p->outs && i < p->e->plan->n + 1; i++) {
        ss_zset_destroy(&p->outs[i]);
        ss_zset_destroy(&p->events[i]);
    }
    ss_dispatch_wg_destroy(p->wg);
    free(p->ops);
    free(p->saved);
    free(p->base);
    free(p->shown);
    free(p->srcs);
    free(p->sinks);
    free(p->outs);
    free(p->events);
    free(p->seq);
    free(p->boot);
    eng_time_free(p);
    free(p->nodes);
    free(p->views);
    if (p->inited) {
        pthread_mutex_destroy(&p->mu);
        pthread_mutex_destroy(&p->commit_mu);
        pthread_cond_destroy(&p->cv);
    }
    free(p);
}
