/*
 * explain.c — implements ss_explain(): a readable rendering of an operator DAG,
 * one section per view (header with its output schema, key, sink topic and the
 * number of model calls it can make per input change), then one line per
 * operator: id, kind, inputs, parameters (predicates, templates, keys, model,
 * options) and the incremental strategy. The strategy texts live here, static,
 * so EXPLAIN never depends on which operators a build contains.
 */
#include "plan_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How each operator keeps the view up to date, and what a change costs. */
static const char *strategy(const ss_plan_node_t *n)
{
    switch (n->kind) {
    case SS_PN_SOURCE:
        return "decodes messages into insert/update/delete deltas; no state";
    case SS_PN_FILTER:
        return "stateless: each changed row evaluated once";
    case SS_PN_PROJECT:
        return "stateless: each changed row computed once";
    case SS_PN_UNION:
        return "stateless: deltas concatenated";
    case SS_PN_DISTINCT:
        return "keeps a count per row; emits only 0->1 and 1->0 transitions";
    case SS_PN_JOIN:
        return n->nkeys ? "bilinear: both sides indexed on the key; a change probes the other side's index"
                        : "bilinear without an equi-key: every change scans the whole other side";
    case SS_PN_GROUP:
        return "keeps per-group aggregate state; a change emits -old +new for its group only";
    case SS_PN_TOPK:
        return "keeps its input ordered; emits only changes to the first k rows";
    case SS_PN_SEM_FILTER:
        if (ss_plan_opt(n, "cascade"))
            return "cascade: a cheap proxy scores each distinct row (memoised); the model (the oracle) answers "
                   "only for the calibration sample and the rows between two learnt thresholds; a threshold "
                   "change re-decides only the rows between the old and the new threshold; deletes free";
        return "1 yes/no forward pass per distinct inserted row (memoised); deletes and updates that "
               "leave the template's columns unchanged are free";
    case SS_PN_SEM_MAP:
        return "1 generation (up to max_tokens) per distinct inserted row (memoised); deletes and updates "
               "that leave the template's columns unchanged are free";
    case SS_PN_SEM_JOIN:
        if (ss_plan_opt(n, "cascade"))
            return "bilinear cascade: a cheap proxy scores every pair of distinct rows (memoised); the model "
                   "(the oracle) answers only for the calibration sample and the pairs between two learnt "
                   "thresholds; a threshold change re-decides only the pairs between them; deletes free";
        return ss_plan_opt(n, "join_candidates") || ss_plan_opt(n, "threshold")
                   ? "bilinear: a new row is asked (yes/no) only against the join_candidates rows of the other "
                     "side nearest by embedding; pair answers memoised; deletes free"
                   : "bilinear and exhaustive: a new row costs 1 yes/no pass per row of the other side (set "
                     "join_candidates to prune by embedding); pair answers memoised; deletes free";
    case SS_PN_SEM_TOPK:
        return n->sem == SS_SEM_RANK
                   ? "pairwise: an insert costs 1 comparison with the k-th row, plus ceil(log2 k) if it enters "
                     "the top k; a deleted top row is replaced from a sorted buffer; comparisons memoised"
                   : "1 scoring pass per distinct inserted row (memoised); only changes to the top k are "
                     "emitted; deletes free";
    case SS_PN_SEM_AGG:
        return "summary tree per group: an insert, delete or update costs about 1 generation per tree "
               "level (O(log n) with fan_in), not a re-summary of the whole group";
    case SS_PN_LLM_GENERATE: {
        const char *m = ss_plan_opt(n, "maintain"), *ru = ss_plan_opt(n, "reuse");
        if (ru && ss_strcaseeq(ru, "semantic"))
            return "per new or changed context row: retrieve top documents, then reuse the answer of the nearest "
                   "earlier row over the same documents when its learned threshold allows (error rate bounded by "
                   "reuse_delta), else 1 generation; a data-source change regenerates the affected answers and "
                   "reused answers follow their source (an approximation of a fresh run)";
        if (m && ss_strcaseeq(m, "append"))
            return "per new or changed context row: retrieve top documents, 1 generation; a data-source change "
                   "asks the model to revise only the responses whose documents changed (1 call each)";
        if (m && ss_strcaseeq(m, "dependency"))
            return "per new or changed context row: retrieve top documents, 1 generation recording each sentence's "
                   "attention to each document and earlier turn; a change keeps the answer when no sentence "
                   "attended to the changed input above tau, else keeps the sentences before the first that did "
                   "(prefilled as forced tokens) and generates the rest";
        if (m && ss_strcaseeq(m, "none"))
            return "per new or changed context row: retrieve top documents, 1 generation; data-source changes "
                   "leave existing responses as they are (no calls)";
        return "per new or changed context row: retrieve top documents, 1 generation; a data-source change "
               "regenerates only the responses whose retrieved documents changed (the view always equals a "
               "fresh run)";
    }
    case SS_PN_VIEW:
        return "materialised in its view table; each change published to the sink topic (if any)";
    case SS_PN_SETOP:
        switch (n->setop) {
        case SS_SETOP_UNION:
            return "keeps a count per distinct row of each input; emits a row when it first appears in "
                   "either input and retracts it when the last copy goes";
        case SS_SETOP_INTERSECT:
        case SS_SETOP_INTERSECT_ALL:
        case SS_SETOP_EXCEPT:
        case SS_SETOP_EXCEPT_ALL:
            return "keeps a count per distinct row of each input; a change recomputes that row's output "
                   "multiplicity from the two counts and emits the difference";
        default:
            return "";
        }
    case SS_PN_SEMIJOIN:
        if (n->pred)
            return "both inputs indexed on the key; a change on either side rescans the other side's rows of "
                   "that key (the residual condition) and emits only rows whose match flips";
        if (n->semi_in)
            return "both inputs indexed on the key, with per-key counts of the subquery's rows and NULLs; a "
                   "subquery change touches only the rows of its value, or all rows of its key when the "
                   "subquery becomes empty / non-empty or gains / loses its only NULL";
        return "both inputs indexed on the key with per-key match counts; a change emits only rows whose "
               "match flips (first match appears, last one goes)";
    case SS_PN_WINDOW:
        return n->limit >= 0
                   ? "keeps each partition ordered in SQLite; a change re-reads only the first rows of its "
                     "partition (up to the rank limit) and emits the differences"
                   : "keeps each partition ordered in SQLite; a change recomputes its partition's window "
                     "values in one ordered scan and emits the rows whose values changed";
    case SS_PN_TEMPORAL: case SS_PN_TIMEWIN: case SS_PN_EOWC:
        return ss__time_strategy(n); /* plan_temporal.c */
    case SS_PN_SEM_EXTRACT:
        return "1 generation constrained to the schema's JSON per distinct inserted row (memoised); deletes "
               "and updates that leave the template's columns unchanged are free";
    case SS_PN_SEM_CLASSIFY:
        return "1 forward pass scoring every label per distinct inserted row (memoised); deletes and updates "
               "that leave the template's columns unchanged are free";
    case SS_PN_SEM_SIM_JOIN:
        return "embeddings only, no model call: a new left row searches the right side's vector index for its "
               "k nearest; a new right row enters the lists it beats; a deleted right row is replaced by the "
               "next nearest; 1 embedding per new row, deletes free";
    case SS_PN_SEM_SEARCH:
        return "embeddings only, no model call: 1 embedding per new row, scored once against the query; the "
               "k best are kept in SQLite, so a deleted top row is replaced from the scores; deletes free";
    case SS_PN_SEM_DEDUP:
        return "1 embedding per new distinct row; yes/no model calls only for new pairs whose cosine is at least "
               "the threshold (FAISS blocking, memoised); clusters merged with union-find, re-split from the stored "
               "pairs when a member goes (deletes free); entity = the smallest key of the cluster";
    case SS_PN_SEM_GROUP:
        return n->sem == SS_SEM_GROUP
                   ? "1 embedding per new distinct row, assigned to the nearest of k prototypes (a sample chosen "
                     "by hash, so it is the same whatever the arrival order); 1 generation names each prototype "
                     "once (spares named ahead, so deletes are free); rows move only when a prototype enters or leaves"
                   : "1 embedding per new distinct row, assigned to the nearest of k prototypes (a sample chosen "
                     "by hash); no model call; rows move only when a prototype enters or leaves";
    }
    return "";
}

static int is_sem(ss_plan_kind_t k)
{
    return k == SS_PN_SEM_FILTER || k == SS_PN_SEM_MAP || k == SS_PN_SEM_JOIN || k == SS_PN_SEM_TOPK ||
           k == SS_PN_SEM_AGG || k == SS_PN_LLM_GENERATE || k == SS_PN_SEM_EXTRACT || k == SS_PN_SEM_CLASSIFY ||
           k == SS_PN_SEM_SIM_JOIN || k == SS_PN_SEM_SEARCH || k == SS_PN_SEM_DEDUP || k == SS_PN_SEM_GROUP;
}

static void put_quoted(ss_buf_t *b, const char *s)
{
    ss_buf_putc(b, '\'');
    for (; s && *s; s++) {
        if (*s == '\'')
            ss_buf_putc(b, '\'');
        if (*s == '\n')
            ss_buf_puts(b, "\\n");
        else
            ss_buf_putc(b, *s);
    }
    ss_buf_putc(b, '\'');
}

static void put_cols(ss_buf_t *b, const ss_schema_t *s, const int *cols, int n)
{
    for (int i = 0; i < n; i++)
        ss_buf_printf(b, "%s%s", i ? ", " : "", s && cols[i] >= 0 && cols[i] < s->n ? s->names[cols[i]] : "?");
}

static void put_schema(ss_buf_t *b, const ss_schema_t *s)
{
    for (int i = 0; i < s->n; i++)
        ss_buf_printf(b, "%s%s %s%s", i ? ", " : "", s->names[i], ss_coltype_name(s->types[i]),
                      s->is_key[i] ? " KEY" : "");
}

/* A join input's column, qualified by the input's stream/view name when it has one. */
static void put_side_col(ss_buf_t *b, const ss_plan_node_t *in, int col)
{
    const ss_plan_node_t *src = in;
    while (src->kind == SS_PN_FILTER || src->kind == SS_PN_SEM_FILTER)
        src = src->in[0];
    if (src->kind == SS_PN_SOURCE || src->kind == SS_PN_VIEW)
        ss_buf_printf(b, "%s.", src->label);
    ss_buf_puts(b, col >= 0 && col < in->schema->n ? in->schema->names[col] : "?");
}

static const char *wfn_name(ss_win_fn_t f)
{
    static const char *t[] = {"row_number", "rank", "dense_rank", "count", "sum", "avg", "min", "max"};
    return (int)f >= 0 && (size_t)f < SS_ARRAY_LEN(t) ? t[f] : "?";
}

static void put_order_by(ss_buf_t *b, const ss_plan_node_t *n, const ss_schema_t *in0)
{
    for (int i = 0; i < n->norder; i++) {
        ss_buf_puts(b, i ? ", " : "  order by ");
        ss__expr_sql(n->order[i].expr, in0, b);
        ss_buf_puts(b, n->order[i].desc ? " DESC" : " ASC");
    }
}

static const char *agg_name(ss_agg_fn_t f)
{
    static const char *t[] = {"count",      "sum",        "min",         "max",        "avg",
                              "bool_and",   "bool_or",    "var_samp",    "var_pop",    "stddev_samp",
                              "stddev_pop", "sumsq",      "string_agg",  "array_agg",  "json_agg"};
    return (int)f >= 0 && (size_t)f < SS_ARRAY_LEN(t) ? t[f] : "?";
}

/* Parameters of one node, after its kind and inputs. */
static void put_params(ss_buf_t *b, const ss_plan_node_t *n)
{
    const ss_schema_t *in0 = n->nin > 0 ? n->in[0]->schema : NULL;
    switch (n->kind) {
    case SS_PN_SOURCE:
        ss_buf_printf(b, "  stream=%s  topic=%s  format=%s", n->label, ss_plan_opt(n, "topic") ? ss_plan_opt(n, "topic") : n->label,
                      ss_plan_opt(n, "format") ? ss_plan_opt(n, "format") : "json");
        break;
    case SS_PN_FILTER:
        ss_buf_puts(b, "  ");
        ss_buf_puts(b, n->label);
        ss_buf_puts(b, ": ");
        ss__expr_sql(n->pred, in0, b);
        break;
    case SS_PN_PROJECT:
        ss_buf_puts(b, "  ");
        for (int i = 0; i < n->nexprs; i++) {
            if (i)
                ss_buf_puts(b, ", ");
            ss__expr_sql(n->exprs[i], in0, b);
            if (!(n->exprs[i]->kind == SS_EX_COL && in0 && n->exprs[i]->col < in0->n &&
                  ss_strcaseeq(in0->names[n->exprs[i]->col], n->schema->names[i])))
                ss_buf_printf(b, " AS %s", n->schema->names[i]);
        }
        break;
    case SS_PN_JOIN:
    case SS_PN_SEM_JOIN:
        if (n->join_type == SS_JOIN_LEFT)
            ss_buf_puts(b, "  left");
        if (n->join_type == SS_JOIN_CROSS || (n->kind == SS_PN_JOIN && !n->nkeys && !n->pred))
            ss_buf_puts(b, "  cross");
        if (n->nkeys)
            ss_buf_puts(b, "  on ");
        for (int i = 0; i < n->nkeys; i++) {
            ss_buf_puts(b, i ? " AND " : "");
            put_side_col(b, n->in[0], n->lkeys[i]);
            ss_buf_puts(b, " = ");
            put_side_col(b, n->in[1], n->rkeys[i]);
        }
        if (n->pred) {
            ss_buf_puts(b, "  residual: ");
            ss__expr_sql(n->pred, n->schema, b);
        }
        break;
    case SS_PN_GROUP:
        ss_buf_puts(b, "  by (");
        put_cols(b, in0, n->group_cols, n->ngroup);
        ss_buf_puts(b, ")  aggs: ");
        for (int i = 0; i < n->naggs; i++) {
            ss_buf_printf(b, "%s%s(%s", i ? ", " : "", agg_name(n->aggs[i].fn), n->aggs[i].distinct ? "DISTINCT " : "");
            if (n->aggs[i].arg)
                ss__expr_sql(n->aggs[i].arg, in0, b);
            else
                ss_buf_putc(b, '*');
            for (int k = 0; k < n->aggs[i].norder; k++) {
                ss_buf_puts(b, k ? ", " : " ORDER BY ");
                ss__expr_sql(n->aggs[i].order[k].expr, in0, b);
                ss_buf_puts(b, n->aggs[i].order[k].desc ? " DESC" : "");
            }
            ss_buf_putc(b, ')');
            if (n->aggs[i].filter) {
                ss_buf_puts(b, " FILTER (WHERE ");
                ss__expr_sql(n->aggs[i].filter, in0, b);
                ss_buf_putc(b, ')');
            }
        }
        break;
    case SS_PN_TOPK:
        put_order_by(b, n, in0);
        ss_buf_printf(b, "  limit %lld", (long long)n->limit);
        if (n->offset)
            ss_buf_printf(b, "  offset %lld", (long long)n->offset);
        break;
    case SS_PN_SETOP:
        ss_buf_printf(b, "  %s", ss_setop_name(n->setop));
        break;
    case SS_PN_SEMIJOIN: {
        static const char *const mode[] = {"semi", "anti", "mark"};
        ss_buf_printf(b, "  %s%s", mode[n->semi_mode <= SS_SEMI_MARK ? n->semi_mode : 0],
                      n->semi_in ? " (IN, NULL-aware)" : "");
        for (int i = 0; i < n->nkeys; i++) {
            ss_buf_puts(b, i ? " AND " : "  on ");
            put_side_col(b, n->in[0], n->lkeys[i]);
            ss_buf_puts(b, " = ");
            put_side_col(b, n->in[1], n->rkeys[i]);
        }
        if (n->pred) {
            ss_schema_t *both = NULL;
            ss_buf_puts(b, "  residual: ");
            if (in0 && n->in[1]->schema && (both = ss_schema_new(in0->n + n->in[1]->schema->n))) {
                for (int i = 0; i < both->n; i++) { /* the subquery's columns qualified */
                    const ss_schema_t *src = i < in0->n ? in0 : n->in[1]->schema;
                    int j = i < in0->n ? i : i - in0->n;
                    char *nm = i < in0->n ? NULL : ss_sprintf("subquery.%s", src->names[j]);
                    ss_schema_set(both, i, nm ? nm : src->names[j], src->types[j], 0);
                    free(nm);
                }
            }
            ss__expr_sql(n->pred, both, b);
            ss_schema_free(both);
        }
        break;
    }
    case SS_PN_WINDOW:
        ss_buf_puts(b, "  partition by (");
        put_cols(b, in0, n->group_cols, n->ngroup);
        ss_buf_putc(b, ')');
        put_order_by(b, n, in0);
        ss_buf_puts(b, "  functions: ");
        for (int i = 0; i < n->nwfns; i++) {
            ss_buf_printf(b, "%s%s(", i ? ", " : "", wfn_name(n->wfns[i].fn));
            if (n->wfns[i].arg)
                ss__expr_sql(n->wfns[i].arg, in0, b);
            else if (n->wfns[i].fn == SS_WIN_COUNT)
                ss_buf_putc(b, '*');
            ss_buf_printf(b, ") AS %s", n->schema->names[in0 ? in0->n + i : i]);
        }
        if (n->limit >= 0)
            ss_buf_printf(b, "  keep rank <= %lld", (long long)n->limit);
        break;
    case SS_PN_SEM_TOPK:
        ss_buf_printf(b, "  %s  limit %lld  best first", n->sem == SS_SEM_RANK ? "pairwise rank" : "pointwise score",
                      (long long)n->limit);
        break;
    case SS_PN_SEM_AGG:
        ss_buf_puts(b, "  by (");
        put_cols(b, in0, n->group_cols, n->ngroup);
        ss_buf_printf(b, ")  -> %s", n->schema->names[n->schema->n - 1]);
        break;
    case SS_PN_SEM_MAP:
    case SS_PN_SEM_CLASSIFY:
    case SS_PN_SEM_DEDUP:
        ss_buf_printf(b, "  -> %s TEXT", n->schema->names[n->schema->n - 1]);
        break;
    case SS_PN_SEM_GROUP:
        ss_buf_printf(b, "  %s, %lld groups -> %s TEXT", n->sem == SS_SEM_CLUSTER ? "SEM_CLUSTER" : "SEM_GROUP",
                      (long long)n->limit, n->schema->names[n->schema->n - 1]);
        break;
    case SS_PN_SEM_EXTRACT:
        ss_buf_puts(b, "  ->");
        for (int i = in0 ? in0->n : 0; i < n->schema->n; i++) {
            ss_buf_printf(b, "%s %s ", i > (in0 ? in0->n : 0) ? "," : "", n->schema->names[i]);
            ss_type_to_sql(n->schema->types[i], -1, b);
        }
        break;
    case SS_PN_SEM_SIM_JOIN:
    case SS_PN_SEM_SEARCH:
        ss_buf_printf(b, "  %lld nearest by embedding", (long long)n->limit);
        break;
    case SS_PN_LLM_GENERATE:
        ss_buf_printf(b, "  context=%s", n->in[0]->label);
        if (n->nin > 1)
            ss_buf_printf(b, "  data_source=%s", n->in[1]->label);
        if (ss_plan_opt(n, "kv_reuse") && ss_strcaseeq(ss_plan_opt(n, "kv_reuse"), "chunks"))
            ss_buf_printf(b, "  kv_reuse: each document's KV from the engine's chunk cache (computed on its own), "
                          "%g of its tokens recomputed (CacheBlend; CPU engine only; answers approximate a full "
                          "prefill)", ss_plan_opt_real(n, "kv_recompute", 0.15));
        break;
    case SS_PN_VIEW:
        ss_buf_printf(b, "  table=view_%s", n->label);
        if (ss_plan_opt(n, "sink_topic"))
            ss_buf_printf(b, "  sink=%s", ss_plan_opt(n, "sink_topic"));
        break;
    default:
        break;
    }
    if (n->tmpl) {
        ss_buf_puts(b, n->kind == SS_PN_LLM_GENERATE ? "  prompt=" : "  template=");
        put_quoted(b, n->tmpl->src);
    }
    if (is_sem(n->kind))
        ss_buf_printf(b, "  model=%s", n->model ? n->model : "default");
    for (int i = 0; n->kind != SS_PN_SOURCE && n->kind != SS_PN_VIEW && i < n->nopts; i++)
        ss_buf_printf(b, "  %s=%s", n->opts[i].name, n->opts[i].value);
    for (int i = 0; n->kind == SS_PN_SOURCE && i < n->nopts; i++)
        if (strcmp(n->opts[i].name, "topic") && strcmp(n->opts[i].name, "format"))
            ss_buf_printf(b, "  %s=%s", n->opts[i].name, n->opts[i].value);
}

static void put_node(ss_buf_t *b, const ss_plan_node_t *n)
{
    ss_buf_printf(b, "#%d %s", n->id, ss_plan_kind_name(n->kind));
    if (n->nin) {
        ss_buf_puts(b, "  in=");
        for (int i = 0; i < n->nin; i++)
            ss_buf_printf(b, "%s#%d", i ? "," : "", n->in[i]->id);
        if (n->nin == 1 && n->in[0]->kind == SS_PN_VIEW && ss_strcaseeq(n->in[0]->view, n->in[0]->label) &&
            n->view && !ss_strcaseeq(n->view, n->in[0]->label))
            ss_buf_printf(b, " (view %s)", n->in[0]->label);
    }
    put_params(b, n);
    ss_buf_printf(b, "  -- %s\n", strategy(n));
}

int ss_explain_node(const ss_plan_node_t *n, ss_buf_t *out)
{
    put_node(out, n);
    if (out->len && out->data[out->len - 1] == '\n')
        out->data[--out->len] = 0;
    return out->data ? SS_OK : SS_ERR_NOMEM;
}

const char *ss_explain_strategy(const ss_plan_node_t *n) { return strategy(n); }

/* Marks the nodes a view is made of: walks inputs from its VIEW node, stopping at other views. */
static void mark(const ss_plan_node_t *n, const ss_plan_node_t *root, const ss_plan_t *p, char *seen)
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
        mark(n->in[i], root, p, seen);
}

static void put_view(ss_buf_t *b, const ss_plan_t *p, const ss_plan_node_t *v)
{
    char *seen = calloc((size_t)p->n + 1, 1);
    if (!seen)
        return;
    mark(v, v, p, seen);
    int calls = 0, upstream = 0;
    for (int i = 0; i < p->n; i++) {
        if (!seen[i])
            continue;
        calls += is_sem(p->nodes[i]->kind);
        upstream += p->nodes[i]->kind == SS_PN_VIEW && p->nodes[i] != v;
    }
    const char *sink = ss_plan_opt(v, "sink_topic");
    ss_buf_printf(b, "view %s", v->label);
    ss_buf_printf(b, "  sink=%s", sink ? sink : "(none)");
    int keys[64], nk = ss_schema_keys(v->schema, keys, 64);
    ss_buf_puts(b, "  key=(");
    if (nk)
        put_cols(b, v->schema, keys, nk);
    else
        ss_buf_puts(b, "whole row");
    ss_buf_puts(b, ")\n  schema: ");
    put_schema(b, v->schema);
    if (calls) {
        ss_buf_printf(b, "\n  model: %d semantic operator%s (", calls, calls > 1 ? "s" : "");
        int k = 0;
        for (int i = 0; i < p->n; i++)
            if (seen[i] && is_sem(p->nodes[i]->kind))
                ss_buf_printf(b, "%s%s", k++ ? ", " : "", ss_plan_kind_name(p->nodes[i]->kind));
        ss_buf_puts(b, "); cost per change is given by each operator's strategy below; results are cached, so replays and repeated rows are free");
    } else
        ss_buf_puts(b, "\n  model: none (relational operators only)");
    if (upstream)
        ss_buf_printf(b, "\n  reads %d upstream view%s (their cost is listed with them)", upstream, upstream > 1 ? "s" : "");
    ss_buf_putc(b, '\n');
    for (int i = 0; i < p->n; i++)
        if (seen[i] && !(p->nodes[i]->kind == SS_PN_VIEW && p->nodes[i] != v)) {
            ss_buf_puts(b, "  ");
            put_node(b, p->nodes[i]);
        }
    free(seen);
}

int ss_explain(const ss_plan_t *p, const char *only_view, ss_buf_t *out)
{
    int shown = 0;
    for (int i = 0; i < p->n; i++) {
        const ss_plan_node_t *n = p->nodes[i];
        if (n->kind != SS_PN_VIEW || (only_view && !ss_strcaseeq(only_view, n->label)))
            continue;
        if (shown++)
            ss_buf_putc(out, '\n');
        put_view(out, p, n);
    }
    if (only_view && !shown)
        return SS_ERR_NOTFOUND;
    return out->data || !shown ? SS_OK : SS_ERR_NOMEM;
}
