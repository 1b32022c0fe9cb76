/*
 * scheduler.c — the running operator DAG and the micro-batch.
 *
 * Building (eng_pipe_build): plan every view (ss_plan_build), reconcile the plan
 * with the node registry in the state store (nodes whose id/kind/label/view
 * changed lose their state tables), create and init one operator per node, open
 * one Kafka source per SOURCE node at its committed offsets and one sink per
 * VIEW node with a sink topic. Nodes that are new (a view was just created)
 * are bootstrapped in the same transaction that registers them: each edge from
 * an existing node into a new one carries the existing node's integrated
 * contents (its snapshot; for a SOURCE without a snapshot, the raw events of
 * the stream's topic up to the committed offsets), so a new view sees the whole
 * history even when its streams are already consumed by older views.
 *
 * A micro-batch (eng_step): poll every source (up to batch_size messages,
 * waiting at most max_latency_ms), BEGIN, run the nodes in topological order (a
 * SOURCE node consumes its events; a node with two inputs gets port 0 then
 * port 1), store each sink view's delta in the outbox (ss_store.h), store the
 * input offsets, COMMIT, then publish the deltas to the sink topics without
 * waiting. A later batch's transaction, once those messages are delivered
 * (checked without waiting; it waits only when SS_OUTBOX_MAX deltas are
 * outstanding, and when the engine goes idle or closes), removes them from the
 * outbox and advances each view's stored sequence. After a crash the outbox
 * entries still present are re-published with the same sequences before
 * anything else, so sink output is at-least-once, every duplicate repeats a
 * message exactly, and consumers drop duplicates by seq.
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- applying an operator ---- */

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

/* ---- node registry matching ---- */

static const char *nz(const char *s) { return s ? s : ""; }

/* 1 if the registry holds node n with the same identity (its state is valid). */
static int node_registered(ss_engine_t *e, const ss_plan_node_t *n)
{
    char *kind, *label, *view, err[SS_ERRSZ];
    if (ss_store_node_get(e->store, n->id, &kind, &label, &view, err, sizeof err))
        return 0;
    int same = !strcmp(nz(kind), ss_plan_kind_name(n->kind)) && !strcmp(nz(label), nz(n->label)) &&
               (n->kind == SS_PN_SOURCE || !strcmp(nz(view), nz(n->view)));
    free(kind);
    free(label);
    free(view);
    return same;
}

static const ss_plan_node_t *plan_node_by_id(const ss_plan_t *p, int id)
{
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i]->id == id)
            return p->nodes[i];
    return NULL;
}

/* Drops registered nodes that the new plan lacks or changed. */
static int drop_stale(ss_engine_t *e, const ss_plan_t *p, char *err, size_t errsz)
{
    int *ids, n;
    int rc = ss_store_node_ids(e->store, &ids, &n, err, errsz);
    for (int i = 0; !rc && i < n; i++) {
        const ss_plan_node_t *pn = plan_node_by_id(p, ids[i]);
        if (pn && node_registered(e, pn))
            continue;
        char *kind, *label, *view;
        if (ss_store_node_get(e->store, ids[i], &kind, &label, &view, err, errsz))
            continue;
        int is_view = kind && !strcmp(kind, ss_plan_kind_name(SS_PN_VIEW));
        /* a view table is dropped only when no node of the new plan materialises that view */
        int still = is_view && eng_node_index(e, SS_PN_VIEW, label) >= 0;
        rc = ss_store_node_drop(e->store, ids[i], is_view && !still ? label : NULL, err, errsz);
        if (!rc && kind && !strcmp(kind, ss_plan_kind_name(SS_PN_SOURCE)) &&
            eng_node_index(e, SS_PN_SOURCE, label) < 0)
            rc = ss_store_clear_offsets(e->store, label, err, errsz);
        free(kind);
        free(label);
        free(view);
    }
    free(ids);
    return rc;
}

int eng_node_index(const ss_engine_t *e, ss_plan_kind_t kind, const char *label)
{
    const ss_plan_t *p = e->pipe.plan;
    for (int i = 0; p && i < p->n; i++)
        if (p->nodes[i]->kind == kind && p->nodes[i]->label && ss_strcaseeq(p->nodes[i]->label, label))
            return i;
    return -1;
}

static int node_pos(const ss_plan_t *p, const ss_plan_node_t *n)
{
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i] == n)
            return i;
    return -1;
}

/* ---- sources and sinks ---- */

static int open_source(ss_engine_t *e, int i, const ss_offset_t *start, int nstart, ss_source_t **out,
                       char *err, size_t errsz)
{
    const ss_plan_node_t *n = e->pipe.plan->nodes[i];
    const ss_cat_stream_t *cs = ss_catalog_stream(e->cat, n->label);
    if (!cs)
        return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "stream %s is not in the catalog", n->label);
    ss_source_opts_t o = {0};
    o.brokers = e->brokers;
    o.stream = cs->name;
    o.topic = cs->topic ? cs->topic : cs->name;
    if (ss_format_parse(cs->format ? cs->format : "json", &o.format))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "stream %s: unknown format %s", cs->name, cs->format);
    o.schema = cs->schema;
    for (int k = 0; k < cs->nopts; k++) {
        if (!strcmp(cs->opts[k].name, "dlq_topic"))
            o.dlq_topic = cs->opts[k].value;
        else if (!strcmp(cs->opts[k].name, "max_message_bytes"))
            o.max_message_bytes = (size_t)strtoull(cs->opts[k].value, NULL, 10);
    }
    int rc = eng_create_topic(e, o.topic, err, errsz);
    if (!rc)
        rc = ss_source_open(&o, start, nstart, out, err, errsz);
    return rc;
}

static int open_sources(ss_engine_t *e, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    for (int i = 0; i < pp->plan->n; i++) {
        if (pp->plan->nodes[i]->kind != SS_PN_SOURCE)
            continue;
        ss_offset_t *offs;
        int n;
        int rc = ss_store_get_offsets(e->store, pp->plan->nodes[i]->label, &offs, &n, err, errsz);
        if (!rc)
            rc = open_source(e, i, offs, n, &pp->srcs[i], err, errsz);
        free(offs);
        if (rc)
            return rc;
    }
    return SS_OK;
}

static int open_sinks(ss_engine_t *e, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    for (int i = 0; i < pp->plan->n; i++) {
        const ss_plan_node_t *n = pp->plan->nodes[i];
        if (n->kind != SS_PN_VIEW)
            continue;
        int rc = ss_store_get_seq(e->store, n->label, &pp->seq[i], err, errsz);
        if (rc)
            return rc;
        const ss_cat_view_t *cv = ss_catalog_view(e->cat, n->label);
        const char *topic = cv && cv->sink_topic ? cv->sink_topic : ss_plan_opt(n, "sink_topic");
        if (!topic)
            continue;
        int keys[64];
        int nkey = ss_schema_keys(n->schema, keys, 64);
        rc = eng_create_topic(e, topic, err, errsz);
        if (!rc)
            rc = ss_sink_open(e->brokers, n->label, topic, n->schema, nkey ? keys : NULL, nkey, &pp->sinks[i], err,
                              errsz);
        if (rc)
            return rc;
        pp->has_sinks = 1;
    }
    return SS_OK;
}

/* ---- bootstrap of new nodes ---- */

/* Raw events of a stream up to its committed offsets (for a SOURCE whose operator keeps no snapshot). */
static int replay_raw(ss_engine_t *e, int i, ss_zset_t *out, char *err, size_t errsz)
{
    const char *stream = e->pipe.plan->nodes[i]->label;
    ss_offset_t *end;
    int nend;
    int rc = ss_store_get_offsets(e->store, stream, &end, &nend, err, errsz);
    if (rc || nend == 0) {
        free(end);
        return rc;
    }
    ss_source_t *src = NULL;
    rc = open_source(e, i, NULL, 0, &src, err, errsz);
    int64_t deadline = ss_now_ns() + 30LL * 1000000000LL;
    while (!rc) {
        const ss_offset_t *pos;
        int npos;
        ss_source_positions(src, &pos, &npos);
        int64_t remaining = 0;
        for (int k = 0; k < nend; k++) {
            int64_t at = 0;
            for (int j = 0; j < npos; j++)
                if (pos[j].partition == end[k].partition)
                    at = pos[j].offset;
            if (end[k].offset > at)
                remaining += end[k].offset - at;
        }
        if (remaining == 0)
            break;
        if (ss_now_ns() > deadline) {
            rc = ss_seterr(err, errsz, SS_ERR_TIMEOUT, "stream %s: replaying history for a new view: %lld messages "
                           "missing from the topic", stream, (long long)remaining);
            break;
        }
        int got = 0;
        rc = ss_source_poll(src, (int)SS_MIN(remaining, 4096), 100, out, &got, err, errsz);
    }
    ss_source_close(src);
    free(end);
    return rc;
}

/* Integrated contents of existing node i, into e->pipe.outs[i]. */
static int existing_contents(ss_engine_t *e, ss_op_ctx_t *ctx, int i, char *err, size_t errsz)
{
    ss_op_t *op = e->pipe.ops[i];
    int rc = SS_ERR_UNSUPPORTED;
    if (op->vt->snapshot)
        rc = op->vt->snapshot(op, ctx, &e->pipe.outs[i], err, errsz);
    if (rc == SS_ERR_UNSUPPORTED && op->node->kind == SS_PN_SOURCE) {
        ss_zset_clear(&e->pipe.outs[i]);
        rc = replay_raw(e, i, &e->pipe.outs[i], err, errsz);
    } else if (rc == SS_ERR_UNSUPPORTED) {
        rc = ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "node %d (%s) keeps no snapshot to bootstrap a new view from",
                       op->node->id, op->vt->name);
    }
    if (!rc)
        rc = ss_zset_consolidate(&e->pipe.outs[i]);
    return rc;
}

static int stage_views(ss_engine_t *e, char *err, size_t errsz);
static int publish_staged(ss_engine_t *e, char *err, size_t errsz);
static int republish_outbox(ss_engine_t *e, char *err, size_t errsz);

static int bootstrap(ss_engine_t *e, const char *isnew, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    ss_op_ctx_t ctx = {ss_store_db(e->store), e->disp, (struct ss_embedder *)e->emb};
    char *have = calloc((size_t)pp->plan->n + 1, 1);
    if (!have)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = SS_OK;
    for (int i = 0; !rc && i < pp->plan->n; i++) {
        const ss_plan_node_t *n = pp->plan->nodes[i];
        if (!isnew[i] || n->kind == SS_PN_SOURCE)
            continue;
        int applied = 0;
        for (int p = 0; !rc && p < n->nin; p++) {
            int j = node_pos(pp->plan, n->in[p]);
            if (j < 0) {
                rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "node %d: input not in the plan", n->id);
                break;
            }
            if (!isnew[j] && !have[j]) {
                rc = existing_contents(e, &ctx, j, err, errsz);
                have[j] = 1;
            }
            if (!rc && pp->outs[j].n) {
                rc = apply_op(pp->ops[i], &ctx, p, &pp->outs[j], &pp->outs[i], err, errsz);
                applied = 1;
            }
        }
        /* a new node whose inputs are empty still gets one (empty) apply: a global
         * aggregate's row exists from the start, before any input arrives */
        if (!rc && !applied) {
            ss_zset_t none;
            ss_zset_init(&none);
            rc = pp->ops[i]->vt->apply(pp->ops[i], &ctx, 0, &none, &pp->outs[i], err, errsz);
        }
        if (!rc)
            rc = ss_zset_consolidate(&pp->outs[i]);
    }
    /* only new VIEW nodes publish their initial contents (after the commit) */
    for (int i = 0; i < pp->plan->n; i++)
        if (!isnew[i] || pp->plan->nodes[i]->kind != SS_PN_VIEW)
            ss_zset_clear(&pp->outs[i]);
    if (!rc)
        rc = stage_views(e, err, errsz);
    free(have);
    return rc;
}

/* ---- build / free ---- */

void eng_pipe_free(ss_engine_t *e)
{
    eng_pipe_t *pp = &e->pipe;
    int n = pp->plan ? pp->plan->n : 0;
    for (int i = 0; i < n; i++) {
        if (pp->ops)
            ss_op_destroy(pp->ops[i]);
        if (pp->srcs)
            ss_source_close(pp->srcs[i]);
        if (pp->sinks)
            ss_sink_close(pp->sinks[i]);
        if (pp->outs)
            ss_zset_destroy(&pp->outs[i]);
        if (pp->events)
            ss_zset_destroy(&pp->events[i]);
    }
    free(pp->ops);
    free(pp->srcs);
    free(pp->sinks);
    free(pp->outs);
    free(pp->events);
    free(pp->seq);
    ss_plan_free(pp->plan);
    memset(pp, 0, sizeof *pp);
    e->pipe_ok = 0;
}

static int alloc_pipe(eng_pipe_t *pp)
{
    size_t n = (size_t)pp->plan->n + 1;
    pp->ops = calloc(n, sizeof *pp->ops);
    pp->srcs = calloc(n, sizeof *pp->srcs);
    pp->sinks = calloc(n, sizeof *pp->sinks);
    pp->outs = calloc(n, sizeof *pp->outs);
    pp->events = calloc(n, sizeof *pp->events);
    pp->seq = calloc(n, sizeof *pp->seq);
    if (!pp->ops || !pp->srcs || !pp->sinks || !pp->outs || !pp->events || !pp->seq)
        return SS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        ss_zset_init(&pp->outs[i]);
        ss_zset_init(&pp->events[i]);
    }
    return SS_OK;
}

static int register_nodes(ss_engine_t *e, char *isnew, char *err, size_t errsz)
{
    const ss_plan_t *p = e->pipe.plan;
    int rc = SS_OK;
    for (int i = 0; !rc && i < p->n; i++) {
        const ss_plan_node_t *n = p->nodes[i];
        isnew[i] = !node_registered(e, n);
        if (!isnew[i])
            continue;
        /* leftovers of an earlier node with this id or view name */
        rc = ss_store_node_drop(e->store, n->id, n->kind == SS_PN_VIEW ? n->label : NULL, err, errsz);
        if (!rc && n->kind == SS_PN_SOURCE)
            rc = ss_store_clear_offsets(e->store, n->label, err, errsz);
        if (!rc)
            rc = ss_store_node_put(e->store, n->id, ss_plan_kind_name(n->kind), n->label, n->view, err, errsz);
    }
    return rc;
}

static int init_ops(ss_engine_t *e, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    ss_op_ctx_t ctx = {ss_store_db(e->store), e->disp, (struct ss_embedder *)e->emb};
    for (int i = 0; i < pp->plan->n; i++) {
        int rc = ss_op_new(pp->plan->nodes[i], &pp->ops[i], err, errsz);
        if (!rc && pp->ops[i]->vt->init)
            rc = pp->ops[i]->vt->init(pp->ops[i], &ctx, err, errsz);
        if (rc) {
            ss_errprefix(err, errsz, "node %d (%s of view %s)", pp->plan->nodes[i]->id,
                         ss_plan_kind_name(pp->plan->nodes[i]->kind), nz(pp->plan->nodes[i]->view));
            return rc;
        }
    }
    return SS_OK;
}

/* Semantic joins and retrieval compare embeddings: open the embedder the first
 * time a plan has such an operator (SET embedder = 'wink' | 'model' | 'openai'
 * picks the kind; default: the static word vectors when installed, else the model). */
static int ensure_embedder(ss_engine_t *e, char *err, size_t errsz)
{
    const ss_plan_t *p = e->pipe.plan;
    int need = 0;
    for (int i = 0; i < p->n; i++)
        need |= p->nodes[i]->kind == SS_PN_SEM_JOIN || p->nodes[i]->kind == SS_PN_LLM_GENERATE;
    if (!need || e->emb || !ss_embedder_open || !e->disp)
        return SS_OK;
    ss_embed_opts_t o;
    memset(&o, 0, sizeof o);
    o.kind = ss_catalog_get(e->cat, "embedder");
    o.dispatch = e->disp;
    return ss_embedder_open(&o, &e->emb, err, errsz);
}

int eng_pipe_build(ss_engine_t *e, char *err, size_t errsz)
{
    SS_ENG_NEED(ss_plan_build, "the planner", err, errsz);
    SS_ENG_NEED(ss_source_open, "the Kafka connector", err, errsz);
    /* confirm what the running pipeline published, or the new one re-publishes it */
    char serr[SS_ERRSZ];
    if (eng_outbox_settle(e, serr, sizeof serr))
        ss_log(SS_LOG_WARN, "engine", "sink delivery not confirmed before re-planning (re-published): %s", serr);
    eng_pipe_free(e);
    eng_pipe_t *pp = &e->pipe;
    int rc = ss_plan_build(e->cat, &pp->plan, err, errsz);
    if (!rc)
        rc = ensure_embedder(e, err, errsz);
    if (rc) {
        eng_pipe_free(e);
        return rc;
    }
    if (alloc_pipe(pp)) {
        eng_pipe_free(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    char *isnew = calloc((size_t)pp->plan->n + 1, 1);
    if (!isnew) {
        eng_pipe_free(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    int any_new = 0;
    rc = ss_store_begin(e->store, err, errsz);
    if (!rc)
        rc = drop_stale(e, pp->plan, err, errsz);
    if (!rc)
        rc = register_nodes(e, isnew, err, errsz);
    if (!rc)
        rc = init_ops(e, err, errsz);
    int64_t t0 = ss_now_ns();
    if (!rc)
        rc = open_sinks(e, err, errsz);
    int64_t t1 = ss_now_ns();
    e->outbox_pending = 0;
    if (!rc)
        rc = republish_outbox(e, err, errsz);
    for (int i = 0; i < pp->plan->n; i++)
        any_new |= isnew[i] && pp->plan->nodes[i]->kind != SS_PN_SOURCE;
    if (!rc && any_new)
        rc = bootstrap(e, isnew, err, errsz);
    if (!rc)
        rc = ss_store_commit(e->store, err, errsz);
    else
        ss_store_rollback(e->store);
    free(isnew);
    if (!rc)
        rc = publish_staged(e, err, errsz);
    for (int i = 0; i < pp->plan->n; i++)
        ss_zset_clear(&pp->outs[i]);
    int64_t t2 = ss_now_ns();
    if (!rc)
        rc = open_sources(e, err, errsz);
    ss_log(SS_LOG_DEBUG, "engine", "plan of %d nodes: sinks opened in %.1f ms, bootstrap %.1f ms, sources opened in "
           "%.1f ms", pp->plan ? pp->plan->n : 0, (t1 - t0) / 1e6, (t2 - t1) / 1e6, (ss_now_ns() - t2) / 1e6);
    if (rc) {
        eng_pipe_free(e);
        return rc;
    }
    e->pipe_ok = 1;
    return SS_OK;
}

int eng_pipe_ensure(ss_engine_t *e, char *err, size_t errsz)
{
    return e->pipe_ok ? SS_OK : eng_pipe_build(e, err, errsz);
}

/* ---- polling ---- */

static int poll_once(ss_engine_t *e, int i, int timeout_ms, int *total, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    int got_here = 0;
    for (;;) {
        int got = 0;
        int rc = ss_source_poll(pp->srcs[i], e->batch_size - got_here, got_here ? 0 : timeout_ms, &pp->events[i],
                                &got, err, errsz);
        if (rc)
            return rc;
        got_here += got;
        if (got == 0 || got_here >= e->batch_size)
            break;
    }
    *total += got_here;
    return SS_OK;
}

static int poll_sources(ss_engine_t *e, int *total, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    int nsrc = 0, rc = SS_OK;
    for (int i = 0; i < pp->plan->n; i++)
        nsrc += pp->srcs[i] != NULL;
    if (nsrc == 0)
        return SS_OK;
    for (int i = 0; !rc && i < pp->plan->n; i++)
        if (pp->srcs[i])
            rc = poll_once(e, i, 0, total, err, errsz);
    int64_t deadline = ss_now_ns() + (int64_t)e->max_latency_ms * 1000000;
    while (!rc && *total == 0 && ss_now_ns() < deadline && !(e->stop && *e->stop)) {
        int slice = (int)SS_MAX(1, SS_MIN((deadline - ss_now_ns()) / 1000000, 50) / nsrc);
        for (int i = 0; !rc && i < pp->plan->n; i++)
            if (pp->srcs[i])
                rc = poll_once(e, i, slice, total, err, errsz);
    }
    return rc;
}

/* ---- running the DAG ---- */

static int has_ttl(ss_engine_t *e)
{
    eng_pipe_t *pp = &e->pipe;
    for (int i = 0; i < pp->plan->n; i++) {
        if (pp->plan->nodes[i]->kind != SS_PN_SOURCE)
            continue;
        const ss_cat_stream_t *cs = ss_catalog_stream(e->cat, pp->plan->nodes[i]->label);
        for (int k = 0; cs && k < cs->nopts; k++)
            if (!strncmp(cs->opts[k].name, "ttl", 3))
                return 1;
    }
    return 0;
}

static int run_dag(ss_engine_t *e, int tick, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    ss_op_ctx_t ctx = {ss_store_db(e->store), e->disp, (struct ss_embedder *)e->emb};
    for (int i = 0; i < pp->plan->n; i++) {
        const ss_plan_node_t *n = pp->plan->nodes[i];
        ss_op_t *op = pp->ops[i];
        int rc = SS_OK;
        if (n->kind == SS_PN_SOURCE) {
            if (pp->events[i].n || tick)
                rc = apply_op(op, &ctx, 0, &pp->events[i], &pp->outs[i], err, errsz);
        } else {
            for (int p = 0; !rc && p < n->nin; p++) {
                int j = node_pos(pp->plan, n->in[p]);
                if (j >= 0 && pp->outs[j].n)
                    rc = apply_op(op, &ctx, p, &pp->outs[j], &pp->outs[i], err, errsz);
            }
        }
        if (!rc)
            rc = ss_zset_consolidate(&pp->outs[i]);
        if (rc) {
            ss_errprefix(err, errsz, "node %d (%s of view %s)", n->id, op->vt->name, nz(n->view));
            return rc;
        }
    }
    return SS_OK;
}

/* ---- sink outbox ---- */

/* Delta encoding for the outbox: per entry, weight (8 bytes), row length (4), row. */
static int encode_delta(const ss_zset_t *z, ss_buf_t *out)
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

static int decode_delta(const unsigned char *p, size_t n, ss_zset_t *z)
{
    size_t at = 0;
    while (at < n) {
        int64_t w;
        uint32_t len;
        if (n - at < 12)
            return SS_ERR_INVALID;
        memcpy(&w, p + at, 8);
        memcpy(&len, p + at + 8, 4);
        at += 12;
        if (n - at < len)
            return SS_ERR_INVALID;
        ss_row_t *r = NULL;
        int rc = ss_row_decode(p + at, len, &r);
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
static int settle_in_txn(ss_engine_t *e, int block, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    if (!e->outbox_pending)
        return SS_OK;
    for (int i = 0; i < pp->plan->n; i++)
        if (pp->sinks[i]) {
            int rc = ss_sink_flush(pp->sinks[i], block ? 60000 : 0, err, errsz);
            if (rc == SS_ERR_TIMEOUT && !block)
                return SS_OK;
            if (rc)
                return rc;
        }
    int rc = ss_store_outbox_clear(e->store, err, errsz);
    for (int i = 0; !rc && i < pp->plan->n; i++)
        if (pp->sinks[i])
            rc = ss_store_put_seq(e->store, pp->plan->nodes[i]->label, pp->seq[i], err, errsz);
    if (!rc)
        e->outbox_pending = 0;
    return rc;
}

int eng_outbox_settle(ss_engine_t *e, char *err, size_t errsz)
{
    if (!e->outbox_pending || !e->pipe_ok)
        return SS_OK;
    int rc = ss_store_begin(e->store, err, errsz);
    if (!rc)
        rc = settle_in_txn(e, 1, err, errsz);
    if (!rc)
        return ss_store_commit(e->store, err, errsz);
    ss_store_rollback(e->store);
    return rc;
}

/* Inside the batch's transaction: settle earlier batches if they are delivered
 * (waiting only when SS_OUTBOX_MAX batches are outstanding), then store this
 * batch's sink deltas in the outbox. */
#define SS_OUTBOX_MAX 64
static int stage_views(ss_engine_t *e, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    int rc = settle_in_txn(e, e->outbox_pending >= SS_OUTBOX_MAX, err, errsz);
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; !rc && i < pp->plan->n; i++) {
        if (!pp->sinks[i] || !pp->outs[i].n)
            continue;
        ss_buf_reset(&b);
        rc = encode_delta(&pp->outs[i], &b);
        if (!rc)
            rc = ss_store_outbox_add(e->store, pp->plan->nodes[i]->label, pp->seq[i], b.data, b.len, err, errsz);
    }
    ss_buf_free(&b);
    return rc;
}

/* After the commit: publish the staged deltas (delivery is awaited by the next settle). */
static int publish_staged(ss_engine_t *e, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    for (int i = 0; i < pp->plan->n; i++) {
        if (!pp->sinks[i] || !pp->outs[i].n)
            continue;
        e->outbox_pending++;
        int rc = ss_sink_publish(pp->sinks[i], &pp->outs[i], &pp->seq[i], err, errsz);
        if (rc)
            return rc;
    }
    return SS_OK;
}

typedef struct republish {
    ss_engine_t *e;
    int count;
} republish_t;

static int republish_one(void *arg, const char *view, int64_t seq_start, const void *delta, size_t len, char *err,
                         size_t errsz)
{
    republish_t *r = arg;
    int i = eng_node_index(r->e, SS_PN_VIEW, view);
    if (i < 0 || !r->e->pipe.sinks[i])
        return SS_OK; /* the view or its sink is gone */
    if (seq_start != r->e->pipe.seq[i])
        ss_log(SS_LOG_WARN, "engine", "view %s: outbox sequence %lld, expected %lld", view, (long long)seq_start,
               (long long)r->e->pipe.seq[i]);
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = decode_delta(delta, len, &z);
    if (rc)
        rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "view %s: corrupt outbox entry", view);
    if (!rc)
        rc = ss_sink_publish(r->e->pipe.sinks[i], &z, &r->e->pipe.seq[i], err, errsz);
    ss_zset_destroy(&z);
    r->count++;
    return rc;
}

/* At build, inside its transaction: re-publish what a crash may have left undelivered. */
static int republish_outbox(ss_engine_t *e, char *err, size_t errsz)
{
    republish_t r = {e, 0};
    int rc = ss_store_outbox_each(e->store, republish_one, &r, err, errsz);
    if (!rc && r.count) {
        ss_log(SS_LOG_INFO, "engine", "re-published %d undelivered view change batch(es)", r.count);
        e->outbox_pending = 1;
        rc = settle_in_txn(e, 1, err, errsz);
    } else if (!rc) {
        rc = ss_store_outbox_clear(e->store, err, errsz);
    }
    return rc;
}

static int store_offsets(ss_engine_t *e, char *err, size_t errsz)
{
    eng_pipe_t *pp = &e->pipe;
    for (int i = 0; i < pp->plan->n; i++) {
        if (!pp->srcs[i])
            continue;
        const ss_offset_t *pos;
        int npos;
        ss_source_positions(pp->srcs[i], &pos, &npos);
        int rc = ss_store_put_offsets(e->store, pp->plan->nodes[i]->label, pos, npos, err, errsz);
        if (rc)
            return rc;
    }
    return SS_OK;
}

static void print_subscribed(ss_engine_t *e)
{
    if (e->sub_node < 0 || !e->pipe.outs[e->sub_node].n)
        return;
    ss_buf_t b = SS_BUF_INIT;
    const ss_zset_t *z = &e->pipe.outs[e->sub_node];
    ss_zset_dump(z, e->pipe.plan->nodes[e->sub_node]->schema, &b);
    e->sub_changes += (int64_t)z->n;
    if (e->live) {
        fputs(ss_buf_cstr(&b), e->live);
        fflush(e->live);
    } else if (e->sub_out) {
        ss_buf_append(e->sub_out, b.data, b.len);
    }
    ss_buf_free(&b);
}

static void clear_batch(ss_engine_t *e)
{
    eng_pipe_t *pp = &e->pipe;
    for (int i = 0; pp->plan && i < pp->plan->n; i++) {
        ss_zset_clear(&pp->outs[i]);
        ss_zset_clear(&pp->events[i]);
    }
}

#define SS_EMPTY_STEPS_MAX 50

/* 1 if a source has unread messages by its last fetched watermarks (no round trip). */
static int sources_behind(ss_engine_t *e)
{
    eng_pipe_t *pp = &e->pipe;
    for (int i = 0; pp->plan && i < pp->plan->n; i++)
        if (pp->srcs[i] && ss_source_cached_lag(pp->srcs[i]) > 0)
            return 1;
    return 0;
}

int ss_engine_step(ss_engine_t *e, int *nmsgs, char *err, size_t errsz)
{
    if (nmsgs)
        *nmsgs = 0;
    int rc = eng_pipe_ensure(e, err, errsz);
    int total = 0;
    int64_t t_poll = ss_now_ns();
    if (!rc)
        rc = poll_sources(e, &total, err, errsz);
    int64_t now = ss_now_ns();
    int tick = total == 0 && now - e->last_tick_ns > 1000000000LL && has_ttl(e);
    if (!rc && total == 0 && !tick) {
        clear_batch(e);
        /* An empty poll while a source's fetched watermarks show more to read is
         * a fetch hiccup, not idleness: waiting for every outstanding delivery and
         * checkpointing there stalls the stream (hundreds of ms). The idle work
         * runs once the sources are caught up, or after SS_EMPTY_STEPS_MAX empty
         * polls in a row (watermarks that never advance cannot starve it). */
        if (sources_behind(e) && ++e->empty_steps < SS_EMPTY_STEPS_MAX)
            return SS_OK;
        e->empty_steps = 0;
        /* idle: finish the last batch's delivery, then checkpoint the WAL once */
        int64_t t0 = ss_now_ns();
        rc = eng_outbox_settle(e, err, errsz);
        int64_t t1 = ss_now_ns();
        int ck = 0;
        if (!rc && e->wal_dirty) {
            ss_store_checkpoint(e->store);
            e->wal_dirty = 0;
            ck = 1;
        }
        if (ss_log_get_level() >= SS_LOG_DEBUG)
            ss_log(SS_LOG_DEBUG, "engine", "idle step: poll %.1f ms, settle %.1f ms, checkpoint %.1f ms%s",
                   (now - t_poll) / 1e6, (t1 - t0) / 1e6, (ss_now_ns() - t1) / 1e6, ck ? "" : " (none)");
        return rc;
    }
    e->empty_steps = 0;
    if (tick)
        e->last_tick_ns = now;
    if (!rc)
        rc = ss_store_begin(e->store, err, errsz);
    if (!rc)
        rc = run_dag(e, tick, err, errsz);
    int64_t t_dag = ss_now_ns();
    if (!rc)
        rc = stage_views(e, err, errsz);
    int64_t t_stage = ss_now_ns();
    if (!rc)
        rc = store_offsets(e, err, errsz);
    if (!rc)
        rc = ss_store_commit(e->store, err, errsz);
    int64_t t_commit = ss_now_ns();
    if (rc && ss_store_in_txn(e->store)) {
        /* operators' memory may be ahead of the rolled-back tables: rebuild from the store */
        ss_store_rollback(e->store);
        clear_batch(e);
        eng_pipe_free(e);
        return rc;
    }
    if (!rc)
        rc = publish_staged(e, err, errsz);
    if (rc) {
        /* committed, but not all published: the rebuild re-publishes the outbox */
        clear_batch(e);
        eng_pipe_free(e);
        return rc;
    }
    if (ss_log_get_level() >= SS_LOG_DEBUG)
        ss_log(SS_LOG_DEBUG, "engine", "batch %lld: %d messages; poll %.1f ms, operators %.1f ms, outbox %.1f ms, "
               "commit %.1f ms, publish %.1f ms", (long long)e->stats.batches + 1, total, (now - t_poll) / 1e6,
               (t_dag - now) / 1e6, (t_stage - t_dag) / 1e6, (t_commit - t_stage) / 1e6,
               (ss_now_ns() - t_commit) / 1e6);
    e->wal_dirty = 1;
    print_subscribed(e);
    clear_batch(e);
    e->stats.batches++;
    e->stats.messages += total;
    if (nmsgs)
        *nmsgs = total;
    return SS_OK;
}

/* ---- per-view accounting ---- */

static void mark_ancestors(const ss_plan_t *p, int i, char *mark)
{
    if (i < 0 || mark[i])
        return;
    mark[i] = 1;
    for (int k = 0; k < p->nodes[i]->nin; k++)
        mark_ancestors(p, node_pos(p, p->nodes[i]->in[k]), mark);
}

int64_t eng_view_lag(ss_engine_t *e, const char *view)
{
    const ss_plan_t *p = e->pipe.plan;
    int v = eng_node_index(e, SS_PN_VIEW, view);
    if (!p || v < 0)
        return -1;
    char *mark = calloc((size_t)p->n, 1);
    if (!mark)
        return -1;
    mark_ancestors(p, v, mark);
    int64_t lag = 0;
    for (int i = 0; i < p->n; i++) {
        int64_t l = 0;
        char err[SS_ERRSZ];
        if (mark[i] && e->pipe.srcs[i] && ss_source_lag(e->pipe.srcs[i], &l, err, sizeof err) == SS_OK)
            lag += l;
    }
    free(mark);
    return lag;
}

void eng_view_stats(ss_engine_t *e, const char *view, ss_op_stats_t *out)
{
    memset(out, 0, sizeof *out);
    const ss_plan_t *p = e->pipe.plan;
    for (int i = 0; p && i < p->n; i++) {
        const ss_plan_node_t *n = p->nodes[i];
        const ss_op_stats_t *s = &e->pipe.ops[i]->stats;
        if (!n->view || !ss_strcaseeq(n->view, view) || n->kind == SS_PN_SOURCE)
            continue;
        if (n->kind == SS_PN_VIEW && ss_strcaseeq(n->label, view)) {
            out->batches = s->batches;
            out->rows_out = s->rows_out;
        }
        /* deltas entering the view's pipeline: inputs of its nodes that read a stream or another view */
        for (int k = 0; k < n->nin; k++)
            if (n->in[k]->kind == SS_PN_SOURCE || (n->in[k]->kind == SS_PN_VIEW && n->in[k]->view &&
                                                   !ss_strcaseeq(n->in[k]->view, view))) {
                out->rows_in += s->rows_in;
                break;
            }
        out->infer.requests += s->infer.requests;
        out->infer.calls += s->infer.calls;
        out->infer.cache_hits += s->infer.cache_hits;
        out->infer.prompt_tokens += s->infer.prompt_tokens;
        out->infer.gen_tokens += s->infer.gen_tokens;
        out->infer.ns += s->infer.ns;
    }
}
