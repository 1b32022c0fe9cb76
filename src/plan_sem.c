/*
 * plan_sem.c — the planner's semantic-operator helpers: which options each
 * semantic operator understands (names, value checks, suggestions), copying
 * them onto plan nodes (model= checked against the catalog and moved to
 * node->model), and lowering LLM_GENERATE into its node (context/data-source
 * inputs, prompt template, entity key, response/docs output schema).
 */
#include "plan_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ss__pctx_t pctx_t;

static int nomem(pctx_t *x) { return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory"); }

/* The options each semantic operator understands, and the smallest integer value of each
 * integer option (OPT_NUMBER = any number, OPT_TEXT = any text). */
typedef struct opt_spec {
    const char *name;
    long min;
} opt_spec_t;

#define OPT_NUMBER (-1000000L)
#define OPT_TEXT (-2000000L)

static const opt_spec_t *opt_specs(ss_plan_kind_t k, int *n)
{
    static const opt_spec_t common[] = {{"max_tokens", 1}, {"temperature", OPT_NUMBER}, {"memo", OPT_TEXT}};
    static const opt_spec_t filter[] = {{"max_tokens", 1}, {"temperature", OPT_NUMBER}, {"yes_prob", OPT_NUMBER},
                                        {"memo", OPT_TEXT}, {"cascade", OPT_TEXT}};
    static const opt_spec_t join[] = {{"max_tokens", 1}, {"temperature", OPT_NUMBER},
                                      {"join_candidates", 1}, {"threshold", OPT_NUMBER}, {"yes_prob", OPT_NUMBER},
                                      {"memo", OPT_TEXT}, {"cascade", OPT_TEXT}};
    static const opt_spec_t topk[] = {{"max_tokens", 1}, {"temperature", OPT_NUMBER}, {"buffer", 0},
                                      {"memo", OPT_TEXT}, {"partition_by", OPT_TEXT}};
    static const opt_spec_t agg[] = {{"max_tokens", 1}, {"temperature", OPT_NUMBER}, {"fan_in", 2},
                                     {"max_children", 2}, {"memo", OPT_TEXT}};
    static const opt_spec_t gen[] = {{"max_tokens", 1}, {"temperature", OPT_NUMBER}, {"key", OPT_TEXT},
                                     {"retrieve", 0}, {"maintain", OPT_TEXT}, {"tau", OPT_NUMBER},
                                     {"dep_layers", 1}, {"kv_reuse", OPT_TEXT}, {"kv_recompute", OPT_NUMBER},
                                     {"reuse", OPT_TEXT}, {"reuse_delta", OPT_NUMBER}, {"reuse_min_obs", 1},
                                     {"reuse_equiv", OPT_NUMBER}, {"reuse_label", OPT_TEXT}};
    /* semops (issue 15 §2) */
    static const opt_spec_t map[] = {{"max_tokens", 1}, {"temperature", OPT_NUMBER}, {"memo", OPT_TEXT},
                                     {"schema", OPT_TEXT}};
    static const opt_spec_t classify[] = {{"memo", OPT_TEXT}};
    static const opt_spec_t simjoin[] = {{"threshold", OPT_NUMBER}};
    static const opt_spec_t search[] = {{"threshold", OPT_NUMBER}};
    static const opt_spec_t dedup[] = {{"threshold", OPT_NUMBER}, {"yes_prob", OPT_NUMBER}, {"memo", OPT_TEXT}};
    static const opt_spec_t group[] = {{"max_tokens", 1}, {"temperature", OPT_NUMBER}, {"diversity", OPT_NUMBER}};
#define SPEC(a) (*n = (int)SS_ARRAY_LEN(a), a)
    switch (k) {
    case SS_PN_SEM_FILTER: return SPEC(filter);
    case SS_PN_SEM_JOIN: return SPEC(join);
    case SS_PN_SEM_TOPK: return SPEC(topk);
    case SS_PN_SEM_AGG: return SPEC(agg);
    case SS_PN_LLM_GENERATE: return SPEC(gen);
    case SS_PN_SEM_MAP: return SPEC(map);
    case SS_PN_SEM_EXTRACT: return SPEC(map);
    case SS_PN_SEM_CLASSIFY: return SPEC(classify);
    case SS_PN_SEM_SIM_JOIN: return SPEC(simjoin);
    case SS_PN_SEM_SEARCH: return SPEC(search);
    case SS_PN_SEM_DEDUP: return SPEC(dedup);
    case SS_PN_SEM_GROUP: return SPEC(group);
    default: return SPEC(common);
    }
#undef SPEC
}

/* cascade = '...': its settings, and a proxy model that exists. */
static int check_cascade(pctx_t *x, const ss_ast_option_t *op)
{
    char *v = ss__opt_text(op);
    if (!v)
        return nomem(x);
    ss_plan_cascade_t c;
    char why[SS_ERRSZ];
    int rc = ss_plan_cascade_parse(v, &c, why, sizeof why);
    free(v);
    if (rc)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s", op->span.line, op->span.col, why);
    if (c.proxy == SS_CASCADE_MODEL && !ss_catalog_model(x->cat, c.model))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: cascade: unknown proxy model \"%s\" (create it with CREATE MODEL %s WITH (...))",
                         op->span.line, op->span.col, c.model, c.model);
    return SS_OK;
}

/* An option the operator does not know (with a suggestion), or a value of the wrong kind. */
static int check_option(pctx_t *x, ss_plan_kind_t k, const ss_ast_option_t *op)
{
    int n;
    const opt_spec_t *sp = opt_specs(k, &n);
    const char *names[16];
    for (int i = 0; i < n; i++) {
        names[i] = sp[i].name;
        if (!ss_strcaseeq(sp[i].name, op->name))
            continue;
        int isnum = op->value.t == SS_INT || op->value.t == SS_REAL;
        if (ss_strcaseeq(sp[i].name, "memo")) { /* bounded memo tables (operators/sem_prune.c) */
            char *v = ss__opt_text(op);
            int ok = v && (ss_strcaseeq(v, "prune") || ss_strcaseeq(v, "keep"));
            free(v);
            if (ok)
                return SS_OK;
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: option memo must be 'prune' or 'keep'",
                             op->span.line, op->span.col);
        }
        if (ss_strcaseeq(sp[i].name, "cascade")) /* model cascades (src/plan_cascade.c) */
            return check_cascade(x, op);
        if (sp[i].min == OPT_TEXT || (sp[i].min == OPT_NUMBER && isnum))
            return SS_OK;
        if (sp[i].min != OPT_NUMBER && op->value.t == SS_INT && op->value.u.i >= sp[i].min)
            return SS_OK;
        if (sp[i].min == OPT_NUMBER)
            return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: option %s must be a number",
                             op->span.line, op->span.col, sp[i].name);
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: option %s must be an integer >= %ld",
                         op->span.line, op->span.col, sp[i].name, sp[i].min);
    }
    const char *best = ss_suggest(op->name, names, n);
    ss_buf_t all = SS_BUF_INIT;
    for (int i = 0; i < n; i++)
        ss_buf_printf(&all, "%s, ", names[i]);
    int rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: unknown option %s for %s%s%s%s (known: %smodel)",
                       op->span.line, op->span.col, op->name, ss_plan_kind_name(k),
                       best ? " (did you mean " : "", best ? best : "", best ? "?)" : "", ss_buf_cstr(&all));
    ss_buf_free(&all);
    return rc;
}

/* SEM_JOIN: a cascade's proxy scores every pair, so it does not combine with candidate pruning. */
static int check_join_cascade(pctx_t *x, const ss_ast_options_t *o)
{
    const ss_ast_option_t *cas = NULL, *prune = NULL;
    for (int i = 0; o && i < o->n; i++) {
        if (ss_strcaseeq(o->items[i].name, "cascade"))
            cas = &o->items[i];
        else if (ss_strcaseeq(o->items[i].name, "join_candidates") || ss_strcaseeq(o->items[i].name, "threshold"))
            prune = &o->items[i];
    }
    if (!cas || !prune)
        return SS_OK;
    return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                     "%d:%d: SEM_JOIN: cascade cannot be combined with %s (the cascade's proxy scores every pair "
                     "and sends only the uncertain ones to the model)",
                     prune->span.line, prune->span.col, prune->name);
}

int ss__sem_options(pctx_t *x, ss_plan_node_t *n, const ss_ast_options_t *o)
{
    if (n->kind == SS_PN_SEM_JOIN) {
        int rc = check_join_cascade(x, o);
        if (rc)
            return rc;
    }
    for (int i = 0; o && i < o->n; i++) {
        const ss_ast_option_t *op = &o->items[i];
        if (!ss_strcaseeq(op->name, "model")) {
            int rc = check_option(x, n->kind, op);
            if (rc)
                return rc;
        }
        char *v = ss__opt_text(op);
        if (!v)
            return nomem(x);
        if (ss_strcaseeq(op->name, "model")) {
            if (!ss_catalog_model(x->cat, v)) {
                int rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                                   "%d:%d: unknown model \"%s\" (create it with CREATE MODEL %s WITH (...))",
                                   op->span.line, op->span.col, v, v);
                free(v);
                return rc;
            }
            free(n->model);
            n->model = v;
            continue;
        }
        int rc = ss__opts_add(&n->nopts, &n->opts, op->name, v);
        free(v);
        if (rc)
            return nomem(x);
    }
    if (!n->model && x->default_model && !(n->model = ss_strdup(x->default_model)))
        return nomem(x);
    return SS_OK;
}

/* KV_REUSE = 'prefix' | 'chunks' and KV_RECOMPUTE (a fraction, only with 'chunks'). */
static int check_kv_reuse(pctx_t *x, const ss_ast_generate_t *g)
{
    const ss_ast_option_t *ko = ss__opt_find(g->opts, "kv_reuse"), *fo = ss__opt_find(g->opts, "kv_recompute");
    char *kv = ko ? ss__opt_text(ko) : NULL;
    if (ko && !kv)
        return nomem(x);
    int chunks = kv && ss_strcaseeq(kv, "chunks");
    if (kv && !chunks && !ss_strcaseeq(kv, "prefix")) {
        int rc = ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: KV_REUSE must be 'prefix' or 'chunks', not '%s'",
                           ko->span.line, ko->span.col, kv);
        free(kv);
        return rc;
    }
    free(kv);
    if (fo && !chunks)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: KV_RECOMPUTE needs KV_REUSE = 'chunks'",
                         fo->span.line, fo->span.col);
    double f = fo ? (fo->value.t == SS_REAL ? fo->value.u.r : (double)fo->value.u.i) : 0;
    if (fo && ((fo->value.t != SS_INT && fo->value.t != SS_REAL) || f < 0 || f > 1))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: KV_RECOMPUTE must be a number between 0 and 1",
                         fo->span.line, fo->span.col);
    return SS_OK;
}

int ss__plan_generate(pctx_t *x, const ss_ast_generate_t *g, ss_plan_node_t **out)
{
    ss_plan_node_t *ctx = NULL, *data = NULL;
    const char *what = NULL, *dwhat = NULL;
    if (!g->context_stream)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: LLM_GENERATE needs CONTEXT=STREAM(name)",
                         g->span.line, g->span.col);
    int rc = ss__input_node(x, g->context_stream, g->span, &ctx, &what);
    if (!rc && g->data_stream)
        rc = ss__input_node(x, g->data_stream, g->span, &data, &dwhat);
    if (rc)
        return rc;
    ss_plan_node_t *n = ss__new_node(x, SS_PN_LLM_GENERATE, ctx, data, "llm_generate");
    if (!n)
        return nomem(x);
    ss__scope_t sc = {.nrels = 1, .schema = ctx->schema};
    sc.rels[0] = (ss__rel_t){.name = ctx->label, .table = ctx->label, .what = what, .n = ctx->schema->n};
    ss__cctx_t cc = {.scope = &sc, .err = x->err, .errsz = x->errsz};
    ss_span_t psp = g->span; /* the AST keeps no span for the PROMPT literal: point at LLM_GENERATE */
    psp.len = -1;
    if ((rc = ss__template(&cc, g->prompt ? g->prompt : "", psp, 0, &n->tmpl)))
        return rc;
    if ((rc = ss__sem_options(x, n, g->opts)))
        return rc;
    /* output: KEY column(s) of the context (KEY= option, else its KEY columns, else all), response, docs */
    int keys[64], nk = 0;
    const ss_ast_option_t *ko = ss__opt_find(g->opts, "key");
    if (ko) {
        char *kn = ss__opt_text(ko);
        int side, col;
        rc = kn ? ss__resolve_col(&cc, NULL, kn, ko->span, &side, &col) : nomem(x);
        free(kn);
        if (rc)
            return rc;
        keys[nk++] = col;
    } else {
        nk = ss_schema_keys(ctx->schema, keys, 64);
        if (nk == 0)
            for (int i = 0; i < ctx->schema->n && i < 64; i++)
                keys[nk++] = i;
    }
    const ss_ast_option_t *ro = ss__opt_find(g->opts, "retrieve");
    if (ro && (ro->value.t != SS_INT || ro->value.u.i < 0))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: RETRIEVE must be a non-negative integer",
                         ro->span.line, ro->span.col);
    if (ro && ro->value.u.i > 0 && !data)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: RETRIEVE needs DATA_SOURCE=STREAM(name) to retrieve from", ro->span.line, ro->span.col);
    const ss_ast_option_t *mo = ss__opt_find(g->opts, "maintain");
    char *mv = mo ? ss__opt_text(mo) : NULL;
    if (mo && (!mv || !(ss_strcaseeq(mv, "recompute") || ss_strcaseeq(mv, "append") || ss_strcaseeq(mv, "none") ||
                        ss_strcaseeq(mv, "dependency")))) {
        rc = mv ? (int)ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                            "%d:%d: MAINTAIN must be 'recompute', 'dependency', 'append' or 'none', not '%s'",
                            mo->span.line, mo->span.col, mv)
                : nomem(x);
        free(mv);
        return rc;
    }
    int dep = mv && ss_strcaseeq(mv, "dependency");
    free(mv);
    const ss_ast_option_t *to = ss__opt_find(g->opts, "tau");
    if (to && !dep)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: TAU needs MAINTAIN = 'dependency'", to->span.line,
                         to->span.col);
    if (to && ((to->value.t != SS_INT && to->value.t != SS_REAL) ||
               (to->value.t == SS_REAL ? to->value.u.r : (double)to->value.u.i) < 0 ||
               (to->value.t == SS_REAL ? to->value.u.r : (double)to->value.u.i) > 1))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: TAU must be a number between 0 and 1",
                         to->span.line, to->span.col);
    if ((rc = check_kv_reuse(x, g)))
        return rc;
    if (!(n->schema = ss_schema_new(nk + 2)))
        return nomem(x);
    for (int i = 0; i < nk; i++)
        if (ss_schema_set(n->schema, i, ctx->schema->names[keys[i]], ctx->schema->types[keys[i]], 1))
            return nomem(x);
    if (ss_schema_set(n->schema, nk, "response", SS_COL_TEXT, 0) || ss_schema_set(n->schema, nk + 1, "docs", SS_COL_TEXT, 0))
        return nomem(x);
    *out = n;
    return SS_OK;
}

