/*
 * scheduler.c — from the catalog to running pipelines.
 *
 * eng_rebuild (after every CREATE/DROP VIEW, and at open): stop every pipeline,
 * plan all views (ss_plan_build), and in one transaction of the statements'
 * connection reconcile the plan with the node registry in the state store:
 * nodes of dropped views lose their state tables, nodes of new views are
 * registered and bootstrapped. Only then, with everything committed, split the
 * plan into pipelines — its connected parts: a view with the views it reads and
 * that read it — and start a thread for each (pipeline.c).
 *
 * Bootstrap: a new view reads its streams through SOURCE nodes of its own, which
 * start at the beginning of their topics and catch up like any input. A new node
 * that reads an existing view is marked in the registry; its pipeline feeds it that
 * view's current contents (the VIEW operator's snapshot) in a first batch, so any
 * model calls that needs wait outside a transaction like all others.
 *
 * A failed rebuild changes nothing that was committed: the registry and every
 * state table stay as they were, and the views stay stopped with plan_error
 * saying why, until the next rebuild succeeds. Only DROP VIEW drops state.
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

static const char *nz(const char *s) { return s ? s : ""; }

int eng_node_index(const ss_engine_t *e, ss_plan_kind_t kind, const char *label)
{
    const ss_plan_t *p = e->plan;
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

eng_pipe_t *eng_pipe_of(ss_engine_t *e, int node)
{
    for (int k = 0; node >= 0 && k < e->npipes; k++)
        for (int j = 0; j < e->pipes[k]->nn; j++)
            if (e->pipes[k]->nodes[j] == node)
                return e->pipes[k];
    return NULL;
}

/* ---- node registry ---- */

/* 1 if the registry holds node n with the same identity (its state is valid). */
static int node_registered(ss_engine_t *e, const ss_plan_node_t *n)
{
    char *kind, *label, *view, err[SS_ERRSZ];
    if (ss_store_node_get(e->store, n->id, &kind, &label, &view, err, sizeof err))
        return 0;
    int same = !strcmp(nz(kind), ss_plan_kind_name(n->kind)) && !strcmp(nz(label), nz(n->label)) &&
               !strcmp(nz(view), nz(n->view));
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

void eng_source_key(const ss_plan_node_t *n, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%s@%d", nz(n->label), n->id);
}

/* Drops registered nodes that the new plan lacks or changed: the state of dropped views. */
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
        if (!rc && kind && !strcmp(kind, ss_plan_kind_name(SS_PN_SOURCE))) {
            char key[256];
            ss_plan_node_t tmp = {.id = ids[i], .label = label};
            eng_source_key(&tmp, key, sizeof key);
            rc = ss_store_clear_offsets(e->store, key, err, errsz);
        }
        free(kind);
        free(label);
        free(view);
    }
    free(ids);
    return rc;
}

static int register_nodes(ss_engine_t *e, char *isnew, char *err, size_t errsz)
{
    const ss_plan_t *p = e->plan;
    int rc = SS_OK;
    for (int i = 0; !rc && i < p->n; i++) {
        const ss_plan_node_t *n = p->nodes[i];
        isnew[i] = !node_registered(e, n);
        if (!isnew[i])
            continue;
        /* leftovers of an earlier node with this id or view name */
        rc = ss_store_node_drop(e->store, n->id, n->kind == SS_PN_VIEW ? n->label : NULL, err, errsz);
        if (!rc && n->kind == SS_PN_SOURCE) {
            char key[256];
            eng_source_key(n, key, sizeof key);
            rc = ss_store_clear_offsets(e->store, key, err, errsz);
        }
        if (!rc)
            rc = ss_store_node_put(e->store, n->id, ss_plan_kind_name(n->kind), n->label, n->view, err, errsz);
    }
    return rc;
}

/* ---- bootstrap of new nodes from the views they read ---- */

/* Marks every new node (but the sources): its pipeline runs it in a first batch of its
 * own, feeding it the contents of the existing views it reads (directly, or through
 * other new nodes) — or an empty delta when there are none, so that a global
 * aggregate's row exists before any input — where model calls wait like any others
 * (pipeline.c), and clears the marks in that batch's commit. A crash before then
 * leaves the marks, and the batch runs again. */
static int mark_bootstrap(ss_engine_t *e, const char *isnew, char *err, size_t errsz)
{
    const ss_plan_t *p = e->plan;
    char *boot = calloc((size_t)p->n + 1, 1);
    if (!boot)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = SS_OK;
    for (int i = 0; !rc && i < p->n; i++) { /* plan order is topological */
        const ss_plan_node_t *n = p->nodes[i];
        if (!isnew[i] || n->kind == SS_PN_SOURCE)
            continue;
        /* every new node runs in the bootstrap batch: those reading existing views are fed their
         * contents, and the others get one empty apply there (a global aggregate's row must exist
         * before any input arrives) */
        boot[i] = 1;
        if (boot[i])
            rc = ss_store_node_set_boot(e->store, n->id, 1, err, errsz);
    }
    free(boot);
    return rc;
}

/* ---- pipelines: connected parts of the plan ---- */

static int uf_find(int *up, int i)
{
    while (up[i] != i)
        i = up[i] = up[up[i]];
    return i;
}

static int make_pipes(ss_engine_t *e, char *err, size_t errsz)
{
    const ss_plan_t *p = e->plan;
    int *up = malloc(sizeof(int) * ((size_t)p->n + 1));
    if (!up)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < p->n; i++)
        up[i] = i;
    for (int i = 0; i < p->n; i++)
        for (int k = 0; k < p->nodes[i]->nin; k++) {
            int j = node_pos(p, p->nodes[i]->in[k]);
            if (j >= 0)
                up[uf_find(up, i)] = uf_find(up, j);
        }
    int rc = SS_OK;
    for (int root = 0; !rc && root < p->n; root++) {
        if (uf_find(up, root) != root)
            continue;
        eng_pipe_t *pp = calloc(1, sizeof *pp);
        eng_pipe_t **ps = realloc(e->pipes, (size_t)(e->npipes + 1) * sizeof *ps);
        if (ps)
            e->pipes = ps;
        if (!pp || !ps || !(pp->nodes = malloc(sizeof(int) * (size_t)p->n))) {
            free(pp);
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        pp->e = e;
        ss_buf_t names = SS_BUF_INIT;
        for (int i = 0; i < p->n; i++) {
            if (uf_find(up, i) != root)
                continue;
            pp->nodes[pp->nn++] = i;
            if (p->nodes[i]->kind == SS_PN_VIEW)
                ss_buf_printf(&names, "%s%s", names.len ? "," : "", p->nodes[i]->label);
        }
        pp->views = ss_buf_take(&names);
        e->pipes[e->npipes++] = pp;
    }
    free(up);
    return rc;
}

/* Keeps the counters of a stopped pipeline's nodes for the pipelines built next. */
static void keep_stats(ss_engine_t *e, eng_pipe_t *p)
{
    for (int j = 0; p->shown && j < p->nn; j++) {
        int id = e->plan->nodes[p->nodes[j]]->id, k = 0;
        while (k < e->nkept && e->kept[k].id != id)
            k++;
        if (k == e->nkept) {
            struct eng_kept *nk = realloc(e->kept, (size_t)(e->nkept + 1) * sizeof *nk);
            if (!nk)
                return;
            e->kept = nk;
            e->nkept++;
        }
        e->kept[k].id = id;
        e->kept[k].s = p->shown[p->nodes[j]];
    }
}

void eng_kept_stats(ss_engine_t *e, int id, ss_op_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < e->nkept; k++)
        if (e->kept[k].id == id)
            *out = e->kept[k].s;
}

void eng_pipes_stop(ss_engine_t *e)
{
    for (int k = 0; k < e->npipes; k++)
        e->pipes[k]->stop = 1;
    for (int k = 0; k < e->npipes; k++) {
        eng_pipe_stop(e->pipes[k]);
        keep_stats(e, e->pipes[k]);
        eng_pipe_free(e->pipes[k]);
    }
    free(e->pipes);
    e->pipes = NULL;
    e->npipes = 0;
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* Semantic joins, retrieval and cascades with proxy=embed compare embeddings: open the
 * embedder the first time a plan has such an operator (SET embedder = 'wink' | 'model' | 'openai'
 * picks the kind; default: the static word vectors, an error when not installed). */
static int ensure_embedder(ss_engine_t *e, char *err, size_t errsz)
{
    const ss_plan_t *p = e->plan;
    int need = 0;
    for (int i = 0; i < p->n; i++)
        need |= p->nodes[i]->kind == SS_PN_SEM_JOIN || p->nodes[i]->kind == SS_PN_LLM_GENERATE ||
                p->nodes[i]->kind == SS_PN_SEM_SIM_JOIN || p->nodes[i]->kind == SS_PN_SEM_SEARCH ||
                p->nodes[i]->kind == SS_PN_SEM_DEDUP || p->nodes[i]->kind == SS_PN_SEM_GROUP ||
                ss_plan_cascade_embeds(p->nodes[i]);
    if (!need || e->emb || !e->disp)
        return SS_OK;
    ss_embed_opts_t o;
    memset(&o, 0, sizeof o);
    o.kind = ss_catalog_get(e->cat, "embedder");
    o.dispatch = e->disp;
    return ss_embedder_open(&o, &e->emb, err, errsz);
}

/* Plans, reconciles the registry and bootstraps, in one transaction. */
static int reconcile(ss_engine_t *e, char *err, size_t errsz)
{
    int rc = ss_plan_build(e->cat, &e->plan, err, errsz);
    if (!rc)
        rc = ensure_embedder(e, err, errsz);
    if (rc)
        return rc;
    char *isnew = calloc((size_t)e->plan->n + 1, 1);
    if (!isnew)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    rc = ss_store_begin(e->store, err, errsz);
    if (!rc)
        rc = drop_stale(e, e->plan, err, errsz);
    if (!rc)
        rc = register_nodes(e, isnew, err, errsz);
    if (!rc)
        rc = mark_bootstrap(e, isnew, err, errsz);
    if (!rc)
        rc = ss_store_commit(e->store, err, errsz);
    else
        ss_store_rollback(e->store);
    free(isnew);
    return rc;
}

/* Every topic the plan reads or publishes to, with its definition's partitions and
 * retention (here, on the statements' thread, which owns the catalog). A transport
 * that cannot do it now (a broker down) does not keep the views from starting: their
 * pipelines retry opening their topics until it can. */
static int create_topics(ss_engine_t *e, char *err, size_t errsz)
{
    (void)err;
    (void)errsz;
    const ss_plan_t *p = e->plan;
    for (int i = 0; i < p->n; i++) {
        const ss_plan_node_t *n = p->nodes[i];
        const char *topic = n->kind == SS_PN_SOURCE ? (ss_plan_opt(n, "topic") ? ss_plan_opt(n, "topic") : n->label)
                            : n->kind == SS_PN_VIEW ? ss_plan_opt(n, "sink_topic")
                                                    : NULL;
        char terr[SS_ERRSZ];
        if (topic && eng_create_topic(e, topic, terr, sizeof terr))
            ss_log(SS_LOG_WARN, "engine", "topic %s: %s (its views retry)", topic, terr);
    }
    return SS_OK;
}

int eng_rebuild(ss_engine_t *e, char *err, size_t errsz)
{
    eng_pipes_stop(e);
    ss_plan_free(e->plan);
    e->plan = NULL;
    e->plan_error[0] = 0;
    int rc = ss_catalog_nviews(e->cat) > 0 ? reconcile(e, err, errsz) : SS_OK;
    if (!rc && e->plan)
        rc = create_topics(e, err, errsz);
    if (!rc && e->plan)
        rc = make_pipes(e, err, errsz);
    if (!rc && e->plan)
        rc = eng_group_check(e, err, errsz); /* --group: views that need an exchange are refused */
    for (int k = 0; !rc && k < e->npipes; k++)
        rc = eng_pipe_start(e->pipes[k], err, errsz);
    if (rc) {
        eng_pipes_stop(e);
        ss_plan_free(e->plan);
        e->plan = NULL;
        snprintf(e->plan_error, sizeof e->plan_error, "%s", err ? err : "failed");
        return rc;
    }
    return SS_OK;
}

/* ---- per-view accounting ---- */

void eng_node_stats(ss_engine_t *e, int i, ss_op_stats_t *out)
{
    memset(out, 0, sizeof *out);
    eng_pipe_t *p = eng_pipe_of(e, i);
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->shown)
        *out = p->shown[i];
    pthread_mutex_unlock(&p->mu);
}

static void add_infer(ss_infer_stats_t *a, const ss_infer_stats_t *b)
{
    a->requests += b->requests;
    a->calls += b->calls;
    a->cache_hits += b->cache_hits;
    a->prompt_tokens += b->prompt_tokens;
    a->gen_tokens += b->gen_tokens;
    a->ns += b->ns;
}

static void pipe_state_text(eng_pipe_t *p, char *out, size_t outsz)
{
    int64_t now = ss_now_ns() / 1000000;
    (void)now;
    switch (p->state) {
    case EP_STARTING: snprintf(out, outsz, "starting"); break;
    case EP_RUNNING: snprintf(out, outsz, "running"); break;
    case EP_CATCHING_UP: snprintf(out, outsz, "catching up"); break;
    case EP_STOPPED: snprintf(out, outsz, "stopped"); break;
    case EP_WAITING: {
        ss_dispatch_model_status_t ms;
        if (p->e->disp && ss_dispatch_model_status(p->e->disp, p->model[0] ? p->model : NULL, &ms) == SS_OK &&
            ms.failing) {
            time_t since = (time_t)(ms.failing_since_ms / 1000);
            struct tm tm;
            char when[32];
            strftime(when, sizeof when, "%H:%M:%S", localtime_r(&since, &tm));
            snprintf(out, outsz, "waiting on model %s: failing since %s: %s; next retry in %.1f s", p->model, when,
                     ms.last_error, SS_MAX(0, ms.next_retry_ms - ss_wall_ms()) / 1000.0);
        } else {
            snprintf(out, outsz, "waiting on model %s", p->model[0] ? p->model : "(default)");
        }
        break;
    }
    case EP_FAILED: {
        time_t since = (time_t)(p->failing_since_ms / 1000);
        struct tm tm;
        char when[32];
        strftime(when, sizeof when, "%H:%M:%S", localtime_r(&since, &tm));
        snprintf(out, outsz, "failed since %s: %s", when, p->error);
        break;
    }
    case EP_FAILING: {
        time_t since = (time_t)(p->failing_since_ms / 1000);
        struct tm tm;
        char when[32];
        strftime(when, sizeof when, "%H:%M:%S", localtime_r(&since, &tm));
        snprintf(out, outsz, "failing since %s: %s; next retry in %.1f s", when, p->error,
                 SS_MAX(0, p->next_retry_ms - ss_wall_ms()) / 1000.0);
        break;
    }
    }
}

void eng_view_status(ss_engine_t *e, const char *view, ss_op_stats_t *out, int64_t *lag, char *state,
                     size_t statesz)
{
    memset(out, 0, sizeof *out);
    *lag = -1;
    snprintf(state, statesz, "%s", e->plan_error[0] ? "not running (see the log)" : "not running");
    const ss_plan_t *p = e->plan;
    int v = eng_node_index(e, SS_PN_VIEW, view);
    eng_pipe_t *pp = eng_pipe_of(e, v);
    if (!p || !pp)
        return;
    pthread_mutex_lock(&pp->mu);
    *lag = pp->lag;
    pipe_state_text(pp, state, statesz);
    for (int j = 0; j < pp->nn; j++) {
        int i = pp->nodes[j];
        const ss_plan_node_t *n = p->nodes[i];
        if (!pp->shown || !n->view || !ss_strcaseeq(n->view, view) || n->kind == SS_PN_SOURCE)
            continue;
        const ss_op_stats_t *s = &pp->shown[i];
        if (n->kind == SS_PN_VIEW && ss_strcaseeq(n->label, view)) {
            out->batches = s->batches;
            out->rows_out = s->rows_out;
        }
        /* deltas entering the view's pipeline: inputs of its nodes that read a stream or another view */
        for (int k = 0; k < n->nin; k++)
            if (n->in[k]->kind == SS_PN_SOURCE ||
                (n->in[k]->kind == SS_PN_VIEW && n->in[k]->view && !ss_strcaseeq(n->in[k]->view, view))) {
                out->rows_in += s->rows_in;
                break;
            }
        add_infer(&out->infer, &s->infer);
    }
    pthread_mutex_unlock(&pp->mu);
}
