/*
 * engine_metrics.c — the engine seen from outside while it runs:
 *   ss_engine_metrics   Prometheus text exposition (serve's GET /metrics): per view
 *                       rows, lag, deltas, model calls, cache hits, tokens, failures,
 *                       state; per model requests in flight and queued, calls,
 *                       failures and a latency histogram of backend calls; totals;
 *   ss_engine_dag_json  a view's operator DAG with per-operator counters (what EXPLAIN
 *                       VIEW prints, as JSON for the web console's graph).
 * Both take the statement lock (the plan may change under DDL) for at most a few
 * seconds: a scrape during a long statement reports that instead of waiting.
 */
#include "engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The statement lock, waiting at most ms. */
static int lock_for(ss_engine_t *e, int ms)
{
    struct timespec ts;
    ss_deadline(&ts, CLOCK_REALTIME, ms); /* pthread_mutex_timedlock's clock */
    return pthread_mutex_timedlock(&e->exec_mu, &ts) == 0;
}

/* A label value with \, " and newlines escaped (Prometheus text format). */
static void put_label(ss_buf_t *b, const char *s)
{
    ss_buf_putc(b, '"');
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            ss_buf_putc(b, '\\');
        if (*s == '\n')
            ss_buf_puts(b, "\\n");
        else
            ss_buf_putc(b, *s);
    }
    ss_buf_putc(b, '"');
}

static void help(ss_buf_t *b, const char *name, const char *type, const char *text)
{
    ss_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

typedef struct view_m {
    const char *name;
    ss_op_stats_t st;
    int64_t lag, rows, failures;
    eng_pipe_state_t state;
    int running;
} view_m_t;

static const char *state_name(eng_pipe_state_t s)
{
    switch (s) {
    case EP_STARTING: return "starting";
    case EP_RUNNING: return "running";
    case EP_CATCHING_UP: return "catching_up";
    case EP_WAITING: return "waiting";
    case EP_FAILING: return "failing";
    case EP_FAILED: return "failed";
    case EP_STOPPED: return "stopped";
    }
    return "stopped";
}

static void view_series(ss_buf_t *b, const view_m_t *v, int n)
{
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"semstream_view_rows", "gauge", "Rows in the view (counting duplicates)."},
        {"semstream_view_lag_messages", "gauge", "Input messages the view has not consumed yet (-1 unknown)."},
        {"semstream_view_deltas_total", "counter", "Delta rows that entered the view's pipeline."},
        {"semstream_view_llm_calls_total", "counter", "Inference requests of the view's operators that reached a "
                                                      "model."},
        {"semstream_view_cache_hits_total", "counter", "Inference requests answered from the result cache."},
        {"semstream_view_prompt_tokens_total", "counter", "Prompt tokens of the view's model calls."},
        {"semstream_view_generated_tokens_total", "counter", "Generated tokens of the view's model calls."},
        {"semstream_view_batches_total", "counter", "Micro-batches committed by the view."},
        {"semstream_view_errors_total", "counter", "Failed attempts of the view's pipeline (retried with backoff)."},
    };
    for (size_t k = 0; k < SS_ARRAY_LEN(m); k++) {
        help(b, m[k].name, m[k].type, m[k].help);
        for (int i = 0; i < n; i++) {
            const view_m_t *x = &v[i];
            int64_t val = k == 0 ? x->rows : k == 1 ? x->lag : k == 2 ? x->st.rows_in : k == 3 ? x->st.infer.calls
                        : k == 4 ? x->st.infer.cache_hits : k == 5 ? x->st.infer.prompt_tokens
                        : k == 6 ? x->st.infer.gen_tokens : k == 7 ? x->st.batches : x->failures;
            ss_buf_printf(b, "%s{view=", m[k].name);
            put_label(b, x->name);
            ss_buf_printf(b, "} %lld\n", (long long)val);
        }
    }
    help(b, "semstream_view_state", "gauge", "1 for the state the view's pipeline is in (running, catching_up, "
         "waiting, failing, failed, starting, stopped).");
    static const eng_pipe_state_t all[] = {EP_STARTING, EP_RUNNING, EP_CATCHING_UP, EP_WAITING, EP_FAILING,
                                           EP_FAILED, EP_STOPPED};
    for (int i = 0; i < n; i++)
        for (size_t s = 0; s < SS_ARRAY_LEN(all); s++) {
            ss_buf_puts(b, "semstream_view_state{view=");
            put_label(b, v[i].name);
            ss_buf_printf(b, ",state=\"%s\"} %d\n", state_name(all[s]),
                          v[i].running ? v[i].state == all[s] : all[s] == EP_STOPPED);
        }
}

static void model_series(ss_engine_t *e, ss_buf_t *b)
{
    if (!e->disp)
        return;
    int n = ss_dispatch_model_count(e->disp);
    ss_dispatch_model_status_t *ms = calloc((size_t)n + 1, sizeof *ms);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    if (!ms || !names) {
        free(ms);
        free(names);
        return;
    }
    for (int i = 0; i < n; i++) {
        names[i] = ss_dispatch_model_name(e->disp, i);
        if (!names[i] || ss_dispatch_model_status(e->disp, names[i], &ms[i]) != SS_OK)
            names[i] = NULL;
    }
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"semstream_model_requests_in_flight", "gauge", "Requests in backend calls now."},
        {"semstream_model_requests_queued", "gauge", "Requests waiting for a worker (including backoff)."},
        {"semstream_model_capacity", "gauge", "Most requests in the backend at once."},
        {"semstream_model_calls_total", "counter", "Requests the model answered."},
        {"semstream_model_failures_total", "counter", "Failed attempts (blocking callers' final failures)."},
        {"semstream_model_failing", "gauge", "1 while the model's last attempt failed."},
    };
    for (size_t k = 0; k < SS_ARRAY_LEN(m); k++) {
        help(b, m[k].name, m[k].type, m[k].help);
        for (int i = 0; i < n; i++) {
            if (!names[i])
                continue;
            int64_t val = k == 0 ? ms[i].inflight : k == 1 ? ms[i].queued : k == 2 ? ms[i].capacity
                        : k == 3 ? ms[i].calls : k == 4 ? ms[i].failures : ms[i].failing;
            ss_buf_printf(b, "%s{model=", m[k].name);
            put_label(b, names[i]);
            ss_buf_printf(b, "} %lld\n", (long long)val);
        }
    }
    help(b, "semstream_model_call_duration_seconds", "histogram",
         "Duration of backend calls (each carries a batch of requests).");
    for (int i = 0; i < n; i++) {
        if (!names[i])
            continue;
        for (int k = 0; k < SS_DISPATCH_LAT_NB; k++) {
            ss_buf_puts(b, "semstream_model_call_duration_seconds_bucket{model=");
            put_label(b, names[i]);
            if (k == SS_DISPATCH_LAT_NB - 1)
                ss_buf_puts(b, ",le=\"+Inf\"}");
            else
                ss_buf_printf(b, ",le=\"%g\"}", ss_dispatch_lat_bounds[k]);
            ss_buf_printf(b, " %lld\n", (long long)ms[i].lat_le[k]);
        }
        ss_buf_puts(b, "semstream_model_call_duration_seconds_sum{model=");
        put_label(b, names[i]);
        ss_buf_printf(b, "} %.6f\nsemstream_model_call_duration_seconds_count{model=", ms[i].lat_sum_s);
        put_label(b, names[i]);
        ss_buf_printf(b, "} %lld\n", (long long)ms[i].lat_count);
    }
    free(ms);
    free(names);
}

static void views_locked(ss_engine_t *e, ss_buf_t *b)
{
    int n = ss_catalog_nviews(e->cat);
    view_m_t *v = calloc((size_t)n + 1, sizeof *v);
    if (!v)
        return;
    for (int i = 0; i < n; i++) {
        v[i].name = ss_catalog_view_at(e->cat, i)->name;
        char state[SS_ERRSZ + 128];
        eng_view_status(e, v[i].name, &v[i].st, &v[i].lag, state, sizeof state);
        if (e->reader)
            v[i].lag = eng_reader_lag(e, v[i].name);
        v[i].rows = eng_view_rows(e, v[i].name);
        eng_pipe_t *p = eng_pipe_of(e, eng_node_index(e, SS_PN_VIEW, v[i].name));
        if (p) {
            pthread_mutex_lock(&p->mu);
            v[i].state = p->state;
            v[i].failures = p->failures;
            v[i].running = 1;
            pthread_mutex_unlock(&p->mu);
        }
    }
    view_series(b, v, n);
    free(v);
}

int ss_engine_metrics(ss_engine_t *e, ss_buf_t *out)
{
    ss_engine_stats_t s;
    int locked = lock_for(e, 2000);
    if (locked) {
        views_locked(e, out);
        ss_engine_get_stats(e, &s);
        pthread_mutex_unlock(&e->exec_mu);
    } else {
        s = e->stats; /* the last totals measured */
    }
    model_series(e, out);
    help(out, "semstream_messages_total", "counter", "Input messages consumed by every view.");
    ss_buf_printf(out, "semstream_messages_total %lld\n", (long long)s.messages);
    help(out, "semstream_batches_total", "counter", "Micro-batches committed.");
    ss_buf_printf(out, "semstream_batches_total %lld\n", (long long)s.batches);
    help(out, "semstream_lag_messages", "gauge", "Input messages not consumed yet, over every view (-1 unknown).");
    ss_buf_printf(out, "semstream_lag_messages %lld\n", (long long)s.lag);
    help(out, "semstream_llm_calls_total", "counter", "Inference requests that reached a model.");
    ss_buf_printf(out, "semstream_llm_calls_total %lld\n", (long long)s.llm_calls);
    help(out, "semstream_cache_hits_total", "counter", "Inference requests answered from the result cache.");
    ss_buf_printf(out, "semstream_cache_hits_total %lld\n", (long long)s.cache_hits);
    help(out, "semstream_pipelines", "gauge", "Pipelines running the views.");
    ss_buf_printf(out, "semstream_pipelines %d\n", s.pipelines);
    help(out, "semstream_metrics_partial", "gauge", "1 when a long statement held the catalog and the per-view "
         "series were left out of this scrape.");
    ss_buf_printf(out, "semstream_metrics_partial %d\n", !locked);
    return out->data ? SS_OK : SS_ERR_NOMEM;
}

/* ---- the DAG as JSON ---- */

/* The nodes a view is made of: from its VIEW node through inputs, stopping at other views
 * (which are included, as the view's inputs), as EXPLAIN VIEW shows them. */
static void mark(const ss_plan_t *p, const ss_plan_node_t *n, const ss_plan_node_t *root, char *seen)
{
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i] == n) {
            if (seen[i])
                return;
            seen[i] = 1;
            break;
        }
    if (n->kind == SS_PN_VIEW && n != root)
        return;
    for (int i = 0; i < n->nin; i++)
        mark(p, n->in[i], root, seen);
}

static void put_json_kv(ss_buf_t *b, const char *k, const char *v)
{
    ss_buf_put_json_str(b, k, strlen(k));
    ss_buf_putc(b, ':');
    if (v)
        ss_buf_put_json_str(b, v, strlen(v));
    else
        ss_buf_puts(b, "null");
}

static void dag_view(ss_engine_t *e, const ss_plan_node_t *v, ss_buf_t *b)
{
    const ss_plan_t *p = e->plan;
    char *seen = calloc((size_t)p->n + 1, 1);
    if (!seen)
        return;
    mark(p, v, v, seen);
    ss_op_stats_t vs;
    int64_t lag;
    char state[SS_ERRSZ + 128];
    eng_view_status(e, v->label, &vs, &lag, state, sizeof state);
    ss_buf_putc(b, '{');
    put_json_kv(b, "view", v->label);
    ss_buf_putc(b, ',');
    put_json_kv(b, "state", state);
    ss_buf_printf(b, ",\"rows\":%lld,\"lag\":%lld,\"nodes\":[", (long long)eng_view_rows(e, v->label),
                  (long long)lag);
    int k = 0;
    for (int i = 0; i < p->n; i++) {
        if (!seen[i])
            continue;
        const ss_plan_node_t *n = p->nodes[i];
        ss_op_stats_t s;
        eng_node_stats(e, i, &s);
        ss_buf_t line = SS_BUF_INIT;
        ss_explain_node(n, &line);
        ss_buf_puts(b, k++ ? ",{" : "{");
        ss_buf_printf(b, "\"id\":%d,", n->id);
        put_json_kv(b, "kind", ss_plan_kind_name(n->kind));
        ss_buf_putc(b, ',');
        put_json_kv(b, "label", n->label);
        ss_buf_putc(b, ',');
        put_json_kv(b, "view", n->view);
        ss_buf_printf(b, ",\"upstream\":%s,\"inputs\":[",
                      n->kind == SS_PN_VIEW && n != v ? "true" : "false");
        if (!(n->kind == SS_PN_VIEW && n != v))
            for (int j = 0; j < n->nin; j++)
                ss_buf_printf(b, "%s%d", j ? "," : "", n->in[j]->id);
        ss_buf_printf(b, "],\"batches\":%lld,\"rows_in\":%lld,\"rows_out\":%lld,\"llm_calls\":%lld,"
                      "\"cache_hits\":%lld,\"tokens\":%lld,",
                      (long long)s.batches, (long long)s.rows_in, (long long)s.rows_out, (long long)s.infer.calls,
                      (long long)s.infer.cache_hits, (long long)(s.infer.prompt_tokens + s.infer.gen_tokens));
        put_json_kv(b, "detail", ss_buf_cstr(&line));
        ss_buf_putc(b, ',');
        put_json_kv(b, "strategy", ss_explain_strategy(n));
        ss_buf_putc(b, '}');
        ss_buf_free(&line);
    }
    ss_buf_puts(b, "]}");
    free(seen);
}

int ss_engine_dag_json(ss_engine_t *e, const char *view, ss_buf_t *out, char *err, size_t errsz)
{
    if (!lock_for(e, 5000))
        return ss_seterr(err, errsz, SS_ERR_BUSY, "a long statement holds the catalog; try again");
    int rc = SS_OK, shown = 0;
    ss_buf_puts(out, "{\"views\":[");
    for (int i = 0; e->plan && i < e->plan->n; i++) {
        const ss_plan_node_t *n = e->plan->nodes[i];
        if (n->kind != SS_PN_VIEW || !n->view || !ss_strcaseeq(n->view, n->label) ||
            (view && !ss_strcaseeq(view, n->label)))
            continue;
        if (shown++)
            ss_buf_putc(out, ',');
        dag_view(e, n, out);
    }
    ss_buf_puts(out, "]}");
    if (view && !shown)
        rc = ss_seterr(err, errsz, SS_ERR_NOTFOUND, "no such view: %s%s%s", view,
                       e->plan_error[0] ? " (the views are not running: " : "", e->plan_error[0] ? ")" : "");
    pthread_mutex_unlock(&e->exec_mu);
    return rc ? rc : out->data ? SS_OK : SS_ERR_NOMEM;
}
