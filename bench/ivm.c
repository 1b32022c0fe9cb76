/*
 * ivm.c — bench_ivm: what incremental maintenance of the semantic operators saves.
 *
 * For each operator: N initial rows, then a churn of single-row deltas (inserts,
 * updates of the template's column, deletes in turn). After each delta it records the
 * model requests and tokens the incremental operator spent, and — in the same run —
 * what a full recompute costs: a fresh operator (empty state, no result cache) run
 * over all current rows. Everything runs through the real dispatcher and the local
 * backend with the given GGUF model (default ../shared/models/stories260K.gguf).
 *
 * SEM_JOIN is measured on a labelled set (left items, and right items of which a third
 * are a left item with one word appended): requests of the pruned join (join_candidates=k,
 * the engine's default embedder: the wink word vectors, found beside the installation; an
 * error when they are not installed) against the exhaustive M x N join, and the recall of the pruned join's output
 * against the exhaustive join's output and against the labels, under three decision rules:
 * the default P(yes) > P(no), a cut-off yes_prob=P, and yes_prob=0 (every candidate pair:
 * the candidate sets themselves). The join's configurations share a dispatcher result
 * cache, so their cost is counted in requests (what the join asks), not backend calls.
 *
 * Usage: bench_ivm [--n N] [--churn F] [--deltas D] [--recompute-every K]
 *                  [--recompute-first 0|1] [--ops a,b]
 *                  [--join-n M] [--join-k k] [--join-yes-prob P] [--model PATH]
 *                  [--threads T] [--out FILE] [--memo prune|keep] [--cache 0|1]
 * --cache 1 gives the incremental operator's dispatcher a result cache, as in the engine
 * (the full recomputes never have one); --memo sets the operators' memo option.
 * ops: filter,map,topk_score,topk_rank,agg,join,extract,classify,search,simjoin,dedup,group,cluster. SEM_SEARCH and
 * SEM_SIM_JOIN ask the model only for embeddings (EMBED requests through the dispatcher here, as
 * the engine does without word vectors): their "calls" are embeddings. SEM_SIM_JOIN's right side
 * is a fixed set of 100 rows loaded before the left side's N rows and churn (counted in the
 * initial load and in every full recompute). SEM_DEDUP, SEM_GROUP and SEM_CLUSTER embed with the
 * engine's default embedder (the wink word vectors, no model call), so their calls are pair checks
 * and group names; SEM_DEDUP's data repeat the words of an earlier row in a third of the inserts
 * (near-duplicates that its blocking lets through).
 * Writes JSON to --out (default bench/results/ivm.json under the source tree when run
 * from the build directory) and a summary table to stdout.
 */
#include "ss_bench_util.h"
#include "ss_dispatch.h"
#include "ss_embed.h"
#include "ss_llm.h"
#include "ss_op.h"
#include "ss_plan.h"
#include "../tests/plan_fixture.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ options */

typedef struct opts {
    int n;
    double churn;
    int deltas;          /* 0: n * churn */
    int every;           /* full recompute after every k-th delta */
    int first;           /* 1: also after the first delta (the default) */
    const char *ops;
    int join_n, join_k;
    double join_yes_prob;
    const char *model;
    int threads;
    const char *out;
    const char *memo; /* the operators' memo option (NULL: their default, prune) */
    int cache;        /* 1: the incremental operator's dispatcher has a result cache (as the engine) */
} opts_t;

static opts_t O = {1000, 0.01, 0, 1, 1, "filter,map,topk_score,topk_rank,agg,join", 50, 5, 0.18,
                   NULL, 1, NULL, NULL, 0};

static int want(const char *op)
{
    const char *p = O.ops;
    size_t n = strlen(op);
    while ((p = strstr(p, op))) {
        if ((p == O.ops || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return 1;
        p += n;
    }
    return 0;
}

/* ------------------------------------------------------------------ engine */

typedef struct env {
    sqlite3 *db;
    ss_dispatch_t *disp;
    ss_embedder_t *emb; /* the word vectors when WINK is set (SEM_DEDUP, SEM_GROUP), else NULL */
    ss_op_ctx_t ctx;
    int64_t batches; /* backend run() invocations (one batched model call each) */
} env_t;

/* A backend that counts the batches its inner backend runs (what a round trip to a
 * model server costs), so the bench can report backend calls next to requests. */
typedef struct counting {
    ss_infer_backend_t base;
    ss_infer_backend_t *inner; /* owned */
    int64_t *batches;          /* borrowed: the env's counter */
} counting_t;

static int counting_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err,
                        size_t errsz)
{
    counting_t *c = (counting_t *)b;
    (*c->batches)++;
    return c->inner->run(c->inner, reqs, n, res, err, errsz);
}

static int counting_tokens(ss_infer_backend_t *b, const char *text)
{
    counting_t *c = (counting_t *)b;
    return c->inner->count_tokens ? c->inner->count_tokens(c->inner, text) : 0;
}

static void counting_destroy(ss_infer_backend_t *b)
{
    counting_t *c = (counting_t *)b;
    c->inner->destroy(c->inner);
    free(c->base.model_id);
    free(c);
}

static ss_infer_backend_t *counting_new(ss_infer_backend_t *inner, int64_t *batches)
{
    counting_t *c = calloc(1, sizeof *c);
    if (!c)
        ss_bench_die("out of memory");
    c->base.kind = inner->kind;
    c->base.model_id = ss_strdup(inner->model_id);
    c->base.run = counting_run;
    c->base.count_tokens = inner->count_tokens ? counting_tokens : NULL;
    c->base.destroy = counting_destroy;
    c->inner = inner;
    c->batches = batches;
    return &c->base;
}

static int WINK; /* 1: operators embed with the engine's default embedder (the wink word vectors) */

/* cache: the dispatcher's result cache file, NULL for none. */
static void env_open_cache(env_t *e, const char *cache)
{
    char err[SS_ERRSZ] = "";
    memset(e, 0, sizeof *e);
    if (sqlite3_open(":memory:", &e->db) != SQLITE_OK)
        ss_bench_die("sqlite open failed");
    sqlite3_exec(e->db, "BEGIN", NULL, NULL, NULL);
    ss_dispatch_opts_t o = {.cache_path = cache, .max_batch = 32, .use_cache = cache != NULL};
    if (ss_dispatch_open(&o, &e->disp, err, sizeof err))
        ss_bench_die("dispatch: %s", err);
    ss_infer_backend_t *b = ss_backend_local_new(O.model, O.threads, err, sizeof err);
    if (!b)
        ss_bench_die("model %s: %s", O.model, err);
    if (ss_dispatch_add_model(e->disp, "default", counting_new(b, &e->batches), 1, err, sizeof err))
        ss_bench_die("add model: %s", err);
    e->ctx.db = e->db;
    e->ctx.disp = e->disp;
    ss_embed_opts_t eo = {.dispatch = e->disp};
    if (WINK && ss_embedder_open(&eo, &e->emb, err, sizeof err))
        ss_bench_die("embedder: %s", err);
    e->ctx.emb = e->emb;
}

static void env_open(env_t *e) { env_open_cache(e, NULL); }

static void env_close(env_t *e)
{
    ss_embedder_destroy(e->emb);
    ss_dispatch_close(e->disp);
    sqlite3_exec(e->db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(e->db);
}

typedef struct cost {
    int64_t requests, calls, tokens;
    int64_t batches; /* backend calls (batches of requests) */
    double sec;
} cost_t;

static ss_op_t *op_new(env_t *e, const ss_plan_node_t *n)
{
    char err[SS_ERRSZ] = "";
    ss_op_t *op = NULL;
    if (ss_op_new(n, &op, err, sizeof err) || op->vt->init(op, &e->ctx, err, sizeof err))
        ss_bench_die("operator: %s", err);
    return op;
}

static cost_t apply(env_t *e, ss_op_t *op, int port, ss_zset_t *in, ss_zset_t *out)
{
    char err[SS_ERRSZ] = "";
    ss_infer_stats_t a = op->stats.infer;
    int64_t b0 = e->batches, t0 = ss_now_ns();
    ss_zset_t tmp;
    ss_zset_init(&tmp);
    ss_zset_consolidate(in);
    if (op->vt->apply(op, &e->ctx, port, in, out ? out : &tmp, err, sizeof err))
        ss_bench_die("apply: %s", err);
    ss_zset_destroy(&tmp);
    ss_infer_stats_t b = op->stats.infer;
    cost_t c = {b.requests - a.requests, b.calls - a.calls,
                (b.prompt_tokens + b.gen_tokens) - (a.prompt_tokens + a.gen_tokens), e->batches - b0,
                (ss_now_ns() - t0) / 1e9};
    return c;
}

/* ------------------------------------------------------------------ plan nodes */

/* ------------------------------------------------------------------ data */

static uint64_t rng = 0x5eed;
static uint32_t rnd(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng >> 33);
}

static const char *WORDS[] = {
    "cat", "dog", "sun", "tree", "ball", "happy", "sad", "red", "big", "small", "park", "boat", "bird",
    "cake", "rain", "star", "girl", "boy", "mom", "toy", "car", "fish", "moon", "book", "flower", "house",
    "friend", "play", "jump", "run", "sing", "smile", "cold", "warm", "blue", "green", "little", "funny"};
#define NWORDS ((int)(sizeof WORDS / sizeof *WORDS))

static char *text(int64_t id, int ver, int nwords)
{
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < nwords; i++)
        ss_buf_printf(&b, "%s%s", i ? " " : "", WORDS[rnd() % NWORDS]);
    ss_buf_printf(&b, " (%lld.%d)", (long long)id, ver);
    return ss_buf_take(&b);
}

#define SPEC "id:i:key,txt:t,grp:t,num:i"

typedef struct data {
    int n, cap;
    int64_t *id;
    char **txt;
    int *ver;
    int64_t next;
} data_t;

static ss_row_t *row_of(const data_t *d, int i)
{
    ss_row_t *r = ss_row_new(4);
    ss_value_t a = ss_val_int(d->id[i]), b = ss_val_text_ref(d->txt[i], strlen(d->txt[i])),
               c = ss_val_text_ref("g", 1), e = ss_val_int(d->ver[i]);
    ss_row_set(r, 0, &a);
    ss_row_set(r, 1, &b);
    ss_row_set(r, 2, &c);
    ss_row_set(r, 3, &e);
    return r;
}

static int DUPS; /* 1: a third of the inserts repeat an existing row's words (near-duplicates, SEM_DEDUP) */

static void data_insert(data_t *d, ss_zset_t *z)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->id = realloc(d->id, sizeof *d->id * (size_t)d->cap);
        d->txt = realloc(d->txt, sizeof *d->txt * (size_t)d->cap);
        d->ver = realloc(d->ver, sizeof *d->ver * (size_t)d->cap);
    }
    int i = d->n++;
    d->id[i] = ++d->next;
    d->ver[i] = 0;
    if (DUPS && i > 0 && rnd() % 3 == 0) { /* the words of row j, this row's own tag */
        const char *w = d->txt[rnd() % (unsigned)i], *tag = strrchr(w, '(');
        ss_buf_t b = SS_BUF_INIT;
        ss_buf_append(&b, w, tag ? (size_t)(tag - w) : strlen(w));
        ss_buf_printf(&b, "(%lld.0)", (long long)d->id[i]);
        d->txt[i] = ss_buf_take(&b);
    } else {
        d->txt[i] = text(d->id[i], 0, 6);
    }
    ss_zset_add(z, row_of(d, i), 1);
}

/* kind 0 insert, 1 update (template column), 2 delete */
static void data_change(data_t *d, int kind, ss_zset_t *z)
{
    if (kind == 0 || d->n == 0) {
        data_insert(d, z);
        return;
    }
    int i = (int)(rnd() % (unsigned)d->n);
    ss_zset_add(z, row_of(d, i), -1);
    if (kind == 2) {
        free(d->txt[i]);
        d->n--;
        d->id[i] = d->id[d->n];
        d->txt[i] = d->txt[d->n];
        d->ver[i] = d->ver[d->n];
        return;
    }
    free(d->txt[i]);
    d->ver[i]++;
    d->txt[i] = text(d->id[i], d->ver[i], 6);
    ss_zset_add(z, row_of(d, i), 1);
}

static void data_all(const data_t *d, ss_zset_t *z)
{
    for (int i = 0; i < d->n; i++)
        ss_zset_add(z, row_of(d, i), 1);
}

static void data_free(data_t *d)
{
    for (int i = 0; i < d->n; i++)
        free(d->txt[i]);
    free(d->id);
    free(d->txt);
    free(d->ver);
}

/* ------------------------------------------------------------------ JSON out */

static ss_buf_t J = SS_BUF_INIT;

static const char *KIND[] = {"insert", "update", "delete"};

/* ------------------------------------------------------------------ unary operators */

typedef struct result {
    const char *name;
    cost_t initial;
    int deltas;
    int64_t inc_calls, inc_tokens;   /* over all deltas */
    int64_t full_calls, full_tokens; /* summed over the deltas followed by a full recompute */
    int64_t per_kind_calls[3], per_kind_n[3];
    int64_t max_insert_calls;
    int measured;
} result_t;

/* Full recompute per delta (mean of the measured ones) x deltas / incremental over all deltas. */
static double ratio(int64_t full, int measured, int deltas, int64_t inc)
{
    if (!measured)
        return 0;
    return inc ? (double)full / measured * deltas / (double)inc : INFINITY;
}

/* A JSON number, or null for an infinite ratio (no incremental call at all). */
static void jnum(ss_buf_t *b, double x)
{
    if (isinf(x) || isnan(x))
        ss_buf_puts(b, "null");
    else
        ss_buf_printf(b, "%.2f", x);
}

static void print_result(const result_t *r)
{
    printf("%-10s initial %5lld calls in %lld backend batches %6.1fs | %3d deltas: incremental %4lld calls %7lld tok (%.2f calls/delta) | "
           "full recompute %7.1f calls %9.0f tok per delta (measured %d times) | %.1fx fewer calls, %.1fx fewer "
           "tokens | calls per insert/update/delete %.2f/%.2f/%.2f\n",
           r->name, (long long)r->initial.calls, (long long)r->initial.batches, r->initial.sec, r->deltas, (long long)r->inc_calls,
           (long long)r->inc_tokens, (double)r->inc_calls / SS_MAX(1, r->deltas),
           r->measured ? (double)r->full_calls / r->measured : 0.0,
           r->measured ? (double)r->full_tokens / r->measured : 0.0, r->measured,
           ratio(r->full_calls, r->measured, r->deltas, r->inc_calls),
           ratio(r->full_tokens, r->measured, r->deltas, r->inc_tokens),
           (double)r->per_kind_calls[0] / SS_MAX(1, r->per_kind_n[0]),
           (double)r->per_kind_calls[1] / SS_MAX(1, r->per_kind_n[1]),
           (double)r->per_kind_calls[2] / SS_MAX(1, r->per_kind_n[2]));
    fflush(stdout);
}

static ss_zset_t *RIGHT; /* SEM_SIM_JOIN: rows applied on port 1 before anything else */

/* The right side of a SEM_SIM_JOIN (nothing for other operators) into op; its cost added to *c. */
static void apply_right(env_t *e, ss_op_t *op, const ss_plan_node_t *node, cost_t *c)
{
    if (node->kind != SS_PN_SEM_SIM_JOIN || !RIGHT)
        return;
    ss_zset_t r;
    ss_zset_init(&r);
    if (ss_zset_extend(&r, RIGHT, 1))
        ss_bench_die("out of memory");
    cost_t x = apply(e, op, 1, &r, NULL);
    ss_zset_destroy(&r);
    c->requests += x.requests;
    c->calls += x.calls;
    c->tokens += x.tokens;
    c->batches += x.batches;
    c->sec += x.sec;
}

/* Runs one unary operator through N rows + churn; appends its JSON object to J. */
static void run_unary(const char *name, ss_plan_node_t *node, int extra_json(ss_buf_t *, result_t *))
{
    env_t e;
    char cache[256];
    snprintf(cache, sizeof cache, "/tmp/bench_ivm_cache_%d.db", (int)getpid());
    unlink(cache);
    env_open_cache(&e, O.cache ? cache : NULL);
    ss_op_t *op = op_new(&e, node);
    data_t d = {0};
    ss_zset_t z;
    ss_zset_init(&z);
    rng = 0x5eed;
    for (int i = 0; i < O.n; i++)
        data_insert(&d, &z);
    result_t r = {.name = name};
    cost_t rightc = {0};
    apply_right(&e, op, node, &rightc);
    r.initial = apply(&e, op, 0, &z, NULL);
    r.initial.calls += rightc.calls;
    r.initial.batches += rightc.batches;
    r.initial.tokens += rightc.tokens;
    r.initial.sec += rightc.sec;
    int D = O.deltas ? O.deltas : (int)SS_MAX(1, lround(O.n * O.churn));
    ss_buf_printf(&J, "%s{\"op\":\"%s\",\"n\":%d,\"initial\":{\"calls\":%lld,\"backend_batches\":%lld,\"tokens\":%lld,"
                      "\"sec\":%.3f},\"deltas\":[",
                  J.len && J.data[J.len - 1] == '}' ? "," : "", name, O.n, (long long)r.initial.calls,
                  (long long)r.initial.batches, (long long)r.initial.tokens, r.initial.sec);
    for (int t = 0; t < D; t++) {
        int kind = t % 3;
        ss_zset_clear(&z);
        data_change(&d, kind, &z);
        cost_t c = apply(&e, op, 0, &z, NULL);
        r.deltas++;
        r.inc_calls += c.calls;
        r.inc_tokens += c.tokens;
        r.per_kind_calls[kind] += c.calls;
        r.per_kind_n[kind]++;
        if (kind == 0)
            r.max_insert_calls = SS_MAX(r.max_insert_calls, c.calls);
        ss_buf_printf(&J, "%s{\"kind\":\"%s\",\"inc_calls\":%lld,\"inc_tokens\":%lld,\"inc_sec\":%.4f", t ? "," : "",
                      KIND[kind], (long long)c.calls, (long long)c.tokens, c.sec);
        if (O.every > 0 && ((O.first ? t % O.every == 0 : (t + 1) % O.every == 0) || t == D - 1)) {
            env_t f;
            env_open(&f);
            ss_op_t *fop = op_new(&f, node);
            ss_zset_t all;
            ss_zset_init(&all);
            data_all(&d, &all);
            cost_t fc = {0};
            apply_right(&f, fop, node, &fc);
            cost_t fl = apply(&f, fop, 0, &all, NULL);
            fc.calls += fl.calls;
            fc.batches += fl.batches;
            fc.tokens += fl.tokens;
            fc.sec += fl.sec;
            ss_zset_destroy(&all);
            ss_op_destroy(fop);
            env_close(&f);
            r.full_calls += fc.calls;
            r.full_tokens += fc.tokens;
            r.measured++;
            ss_buf_printf(&J, ",\"full_calls\":%lld,\"full_backend_batches\":%lld,\"full_tokens\":%lld,"
                              "\"full_sec\":%.3f",
                          (long long)fc.calls, (long long)fc.batches, (long long)fc.tokens, fc.sec);
        }
        ss_buf_putc(&J, '}');
    }
    double rc = ratio(r.full_calls, r.measured, r.deltas, r.inc_calls);
    double rt = ratio(r.full_tokens, r.measured, r.deltas, r.inc_tokens);
    ss_buf_printf(&J, "],\"inc_calls\":%lld,\"inc_tokens\":%lld,\"full_recomputes\":%d,"
                      "\"full_calls_per_delta\":%.2f,\"full_tokens_per_delta\":%.1f,\"ratio_calls\":",
                  (long long)r.inc_calls, (long long)r.inc_tokens, r.measured,
                  r.measured ? (double)r.full_calls / r.measured : 0.0,
                  r.measured ? (double)r.full_tokens / r.measured : 0.0);
    jnum(&J, rc);
    ss_buf_puts(&J, ",\"ratio_tokens\":");
    jnum(&J, rt);
    ss_buf_printf(&J, ",\"calls_per_kind\":{\"insert\":%lld,\"update\":%lld,"
                      "\"delete\":%lld},\"deltas_per_kind\":{\"insert\":%lld,\"update\":%lld,\"delete\":%lld}",
                  (long long)r.per_kind_calls[0],
                  (long long)r.per_kind_calls[1], (long long)r.per_kind_calls[2], (long long)r.per_kind_n[0],
                  (long long)r.per_kind_n[1], (long long)r.per_kind_n[2]);
    int64_t mrows = fx_memo_rows(e.db, node->id);
    ss_buf_printf(&J, ",\"live_rows\":%d,\"memo_rows\":%lld", d.n, (long long)mrows);
    if (extra_json)
        extra_json(&J, &r);
    ss_buf_putc(&J, '}');
    print_result(&r);
    printf("  memo tables: %lld rows for %d live rows (memo=%s)\n", (long long)mrows, d.n, O.memo ? O.memo : "prune");
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    env_close(&e);
    unlink(cache);
    data_free(&d);
}

static ss_plan_node_t *SRC;

static ss_plan_node_t *unary(ss_plan_kind_t kind, const char *t, const char *out_spec)
{
    ss_plan_node_t *n = ss_plan_node_new(kind);
    n->id = 2;
    n->nin = 1;
    n->in[0] = SRC;
    n->tmpl = fx_tmpl(t, SRC->schema, NULL);
    n->schema = fx_schema(out_spec);
    if (O.memo)
        fx_opt(n, "memo", O.memo);
    return n;
}

static int K_RANK = 16;

static int pointwise_json(ss_buf_t *b, result_t *r)
{
    int ok = r->per_kind_calls[0] == r->per_kind_n[0] && r->per_kind_calls[1] == r->per_kind_n[1] &&
             r->per_kind_calls[2] == 0;
    printf("  check: one call per inserted/updated row, none per delete: %s\n", ok ? "yes" : "NO");
    return ss_buf_printf(b, ",\"one_call_per_changed_row\":%s", ok ? "true" : "false");
}

static int rank_json(ss_buf_t *b, result_t *r)
{
    double bound = log2((double)K_RANK) + 1;
    printf("  check: max comparisons per insert %lld <= log2(k)+1 = %.1f: %s\n", (long long)r->max_insert_calls, bound,
           r->max_insert_calls <= bound ? "yes" : "NO");
    return ss_buf_printf(b, ",\"k\":%d,\"max_insert_comparisons\":%lld,\"bound\":%.2f", K_RANK,
                         (long long)r->max_insert_calls, bound);
}

static int agg_json(ss_buf_t *b, result_t *r)
{
    double x = ratio(r->full_calls, r->measured, r->deltas, r->inc_calls);
    printf("  check: >= 50x fewer calls than full recompute: %.1fx %s\n", x, x >= 50 ? "yes" : "NO");
    return ss_buf_printf(b, ",\"fan_in\":4");
}

/* ------------------------------------------------------------------ join */

typedef struct jrun {
    ss_zset_t out;
    int64_t requests; /* the join's model requests (pairs asked; embeddings excluded) */
    int64_t embed_requests;
} jrun_t;

static ss_plan_node_t *JL, *JR;
static ss_zset_t JZL, JZR;
static char JCACHE[256];

/* One join over the labelled set: left rows first, then right rows (each right row is
 * compared with its candidates among the left rows). cand 0 = exhaustive. */
static void join_once(int cand, const char *yes_prob, jrun_t *r)
{
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_SEM_JOIN);
    n->id = 4;
    n->nin = 2;
    n->in[0] = JL;
    n->in[1] = JR;
    n->tmpl = fx_tmpl("Do {name} and {b.name} describe the same thing?", JL->schema, JR->schema);
    n->schema = fx_schema("lid:i,name:t,rid:i,rname:t");
    char k[16];
    snprintf(k, sizeof k, "%d", cand);
    if (cand)
        fx_opt(n, "join_candidates", k);
    if (yes_prob)
        fx_opt(n, "yes_prob", yes_prob);
    env_t e;
    env_open_cache(&e, JCACHE);
    ss_infer_stats_t es = {0};
    ss_embedder_t *emb = NULL;
    char err[SS_ERRSZ] = "";
    ss_embed_opts_t eo = {.dispatch = e.disp, .acct = &es};
    if (cand && ss_embedder_open(&eo, &emb, err, sizeof err))
        ss_bench_die("embedder: %s", err);
    e.ctx.emb = emb;
    ss_op_t *op = op_new(&e, n);
    ss_zset_init(&r->out);
    cost_t a = apply(&e, op, 0, &JZL, &r->out);
    cost_t b = apply(&e, op, 1, &JZR, &r->out);
    ss_zset_consolidate(&r->out);
    r->requests = a.requests + b.requests;
    r->embed_requests = es.requests;
    if (emb && strcmp(emb->kind, "wink") != 0)
        r->embed_requests = es.requests;
    else if (emb)
        r->embed_requests = 0; /* static word vectors: no model */
    ss_op_destroy(op);
    ss_embedder_destroy(emb);
    env_close(&e);
    ss_plan_node_free(n);
}

static int64_t overlap(const ss_zset_t *a, const ss_zset_t *b)
{
    int64_t n = 0;
    for (size_t i = 0, j = 0; i < a->n && j < b->n;) {
        int c = ss_row_cmp(a->e[i].row, b->e[j].row);
        if (c == 0) {
            n++;
            i++;
            j++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    return n;
}

static int64_t labelled(const ss_zset_t *z, const int *label)
{
    int64_t n = 0;
    for (size_t i = 0; i < z->n; i++)
        n += label[z->e[i].row->v[2].u.i] == z->e[i].row->v[0].u.i;
    return n;
}

/* Labelled set: left item i = a random phrase; a third of the right items are a left item
 * with one word appended (label = that left item), the rest fresh phrases. */
static void join_bench(void)
{
    int M = O.join_n, N = O.join_n;
    JL = ss_plan_node_new(SS_PN_SOURCE);
    JR = ss_plan_node_new(SS_PN_SOURCE);
    JL->id = 1;
    JR->id = 3;
    JL->schema = fx_schema("lid:i:key,name:t");
    JR->schema = fx_schema("rid:i:key,name:t");
    snprintf(JCACHE, sizeof JCACHE, "/tmp/bench_ivm_join_%d.db", (int)getpid());
    char **lt = calloc((size_t)M, sizeof *lt), **rt = calloc((size_t)N, sizeof *rt);
    int *label = calloc((size_t)N, sizeof *label);
    rng = 0x10b;
    for (int i = 0; i < M; i++)
        lt[i] = text(i, 0, 5);
    int64_t nlab = 0;
    for (int j = 0; j < N; j++) {
        label[j] = -1;
        if (j % 3 == 0 && j / 3 < M) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s %s", lt[j / 3], WORDS[rnd() % NWORDS]);
            rt[j] = ss_strdup(buf);
            label[j] = j / 3;
            nlab++;
        } else {
            rt[j] = text(100000 + j, 0, 5);
        }
    }
    ss_zset_init(&JZL);
    ss_zset_init(&JZR);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < (s ? N : M); i++) {
            ss_row_t *r = ss_row_new(2);
            const char *t = s ? rt[i] : lt[i];
            ss_value_t a = ss_val_int(i), b = ss_val_text_ref(t, strlen(t));
            ss_row_set(r, 0, &a);
            ss_row_set(r, 1, &b);
            ss_zset_add(s ? &JZR : &JZL, r, 1);
        }
    char yp[32];
    snprintf(yp, sizeof yp, "%g", O.join_yes_prob);
    /* 1: the default decision rule; 2: a calibrated cut-off on P(yes); 3: every candidate */
    const char *rules[3] = {NULL, yp, "0"};
    const char *names[3] = {"P(yes)>P(no)", "P(yes)>=cut", "candidates"};
    ss_buf_printf(&J, "%s{\"op\":\"sem_join\",\"m\":%d,\"n\":%d,\"join_candidates\":%d,\"labelled_pairs\":%lld,"
                      "\"embedder\":\"%s\",\"rules\":[",
                  J.len && J.data[J.len - 1] == '}' ? "," : "", M, N, O.join_k, (long long)nlab,
                  access(ss_embed_default_vectors(), R_OK) == 0 ? "wink" : "model");
    int ok = 0;
    for (int c = 0; c < 3; c++) {
        jrun_t ex, pr;
        join_once(0, rules[c], &ex);
        join_once(O.join_k, rules[c], &pr);
        int64_t both = overlap(&ex.out, &pr.out);
        double recall = ex.out.n ? (double)both / (double)ex.out.n : 1.0;
        double ratio = pr.requests + pr.embed_requests
                           ? (double)ex.requests / (double)(pr.requests + pr.embed_requests) : 0;
        printf("sem_join   %-13s M=N=%d k=%d | exhaustive %lld requests, %zu matches | pruned %lld requests + %lld "
               "embedding requests, %zu matches | %.1fx fewer | recall vs exhaustive %.3f%s | label recall: "
               "exhaustive %.3f, pruned %.3f\n",
               names[c], M, O.join_k, (long long)ex.requests, ex.out.n, (long long)pr.requests,
               (long long)pr.embed_requests, pr.out.n, ratio, recall, ex.out.n ? "" : " (vacuous: no match)",
               (double)labelled(&ex.out, label) / (double)nlab, (double)labelled(&pr.out, label) / (double)nlab);
        if (c < 2 && ex.out.n && ratio >= 10 && recall >= 0.9)
            ok = 1;
        ss_buf_printf(&J,
                      "%s{\"rule\":\"%s\",\"yes_prob\":%s,\"exhaustive_requests\":%lld,\"exhaustive_matches\":%zu,"
                      "\"pruned_requests\":%lld,\"pruned_embedding_requests\":%lld,\"pruned_matches\":%zu,"
                      "\"ratio_calls\":%.2f,\"recall_vs_exhaustive\":%.4f,\"label_recall_exhaustive\":%.4f,"
                      "\"label_recall_pruned\":%.4f}",
                      c ? "," : "", names[c], rules[c] ? rules[c] : "null", (long long)ex.requests, ex.out.n,
                      (long long)pr.requests, (long long)pr.embed_requests, pr.out.n, ratio, recall,
                      (double)labelled(&ex.out, label) / (double)nlab, (double)labelled(&pr.out, label) / (double)nlab);
        ss_zset_destroy(&ex.out);
        ss_zset_destroy(&pr.out);
    }
    ss_buf_puts(&J, "]}");
    printf("  check: >= 10x fewer calls at recall >= 0.9 (with a non-empty exhaustive join): %s\n", ok ? "yes" : "NO");
    unlink(JCACHE);
    for (int i = 0; i < M; i++)
        free(lt[i]);
    for (int j = 0; j < N; j++)
        free(rt[j]);
    free(lt);
    free(rt);
    free(label);
    ss_zset_destroy(&JZL);
    ss_zset_destroy(&JZR);
    ss_plan_node_free(JL);
    ss_plan_node_free(JR);
}

/* SEM_DEDUP, SEM_GROUP, SEM_CLUSTER: deletes never ask the model. */
static int nodelete_json(ss_buf_t *b, result_t *r)
{
    int ok = r->per_kind_calls[2] == 0;
    printf("  check: no call per delete: %s; max calls of an insert %lld\n", ok ? "yes" : "NO",
           (long long)r->max_insert_calls);
    return ss_buf_printf(b, ",\"check_no_call_per_delete\":%s,\"max_insert_calls\":%lld", ok ? "true" : "false",
                         (long long)r->max_insert_calls);
}

/* ------------------------------------------------------------------ main */

/* SEM_SIM_JOIN (k = 3) of the N churning rows against 100 fixed rows. */
static void simjoin_bench(void)
{
    ss_plan_node_t *rs = ss_plan_node_new(SS_PN_SOURCE);
    rs->id = 3;
    rs->schema = fx_schema(SPEC);
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_SEM_SIM_JOIN);
    n->id = 2;
    n->nin = 2;
    n->in[0] = SRC;
    n->in[1] = rs;
    n->limit = 3;
    n->tmpl = fx_tmpl("{txt} is like {b.txt}", SRC->schema, rs->schema);
    n->schema = fx_schema(SPEC "," SPEC ",similarity:r");
    uint64_t keep = rng;
    rng = 0xb0a7;
    data_t d = {0};
    ss_zset_t right;
    ss_zset_init(&right);
    for (int i = 0; i < 100; i++)
        data_insert(&d, &right);
    rng = keep;
    RIGHT = &right;
    run_unary("sem_sim_join", n, pointwise_json);
    RIGHT = NULL;
    ss_zset_destroy(&right);
    data_free(&d);
    ss_plan_node_free(n);
    ss_plan_node_free(rs);
}

int main(int argc, char **argv)
{
    static char model[2200], outp[2200];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            ss_bench_die("%s needs a value", a);
        if (!strcmp(a, "--n")) O.n = atoi(v);
        else if (!strcmp(a, "--churn")) O.churn = atof(v);
        else if (!strcmp(a, "--deltas")) O.deltas = atoi(v);
        else if (!strcmp(a, "--recompute-every")) O.every = atoi(v);
        else if (!strcmp(a, "--recompute-first")) O.first = atoi(v);
        else if (!strcmp(a, "--ops")) O.ops = v;
        else if (!strcmp(a, "--join-n")) O.join_n = atoi(v);
        else if (!strcmp(a, "--join-k")) O.join_k = atoi(v);
        else if (!strcmp(a, "--join-yes-prob")) O.join_yes_prob = atof(v);
        else if (!strcmp(a, "--model")) O.model = v;
        else if (!strcmp(a, "--threads")) O.threads = atoi(v);
        else if (!strcmp(a, "--out")) O.out = v;
        else if (!strcmp(a, "--memo")) O.memo = v;
        else if (!strcmp(a, "--cache")) O.cache = atoi(v);
        else ss_bench_die("usage: bench_ivm [--n N] [--churn F] [--deltas D] [--recompute-every K] [--recompute-first 0|1] "
                 "[--ops a,b] [--join-n M] [--join-k k] [--join-yes-prob P] [--model PATH] [--threads T] [--out FILE] [--memo prune|keep] [--cache 0|1]");
        i++;
    }
    if (!O.model)
        O.model = ss_bench_source_file(__FILE__, "../shared/models/stories260K.gguf", model, sizeof model);
    if (!O.out)
        O.out = ss_bench_source_file(__FILE__, "bench/results/ivm.json", outp, sizeof outp);
    SRC = ss_plan_node_new(SS_PN_SOURCE);
    SRC->id = 1;
    SRC->schema = fx_schema(SPEC);
    int D = O.deltas ? O.deltas : (int)SS_MAX(1, lround(O.n * O.churn));
    ss_buf_printf(&J, "{\"bench\":\"ivm\",\"model\":\"%s\",\"n\":%d,\"churn\":%g,\"deltas\":%d,\"recompute_every\":%d,"
                      "\"recompute_first\":%d,\"operators\":[",
                  strrchr(O.model, '/') ? strrchr(O.model, '/') + 1 : O.model, O.n, O.churn, D, O.every, O.first);
    printf("bench_ivm: model %s, N=%d, %d single-row deltas (insert/update/delete in turn), full recompute after "
           "every %d\n", O.model, O.n, D, O.every);
    fflush(stdout);
    if (want("filter")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_FILTER, "Is this review positive? {txt}", SPEC);
        run_unary("sem_filter", n, pointwise_json);
        ss_plan_node_free(n);
    }
    if (want("map")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_MAP, "Give a short title for {txt}", SPEC ",title:t");
        fx_opt(n, "max_tokens", "8");
        run_unary("sem_map", n, pointwise_json);
        ss_plan_node_free(n);
    }
    if (want("topk_score")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_TOPK, "How happy is {txt}?", SPEC);
        n->sem = SS_SEM_SCORE;
        n->limit = 10;
        run_unary("sem_score", n, pointwise_json);
        ss_plan_node_free(n);
    }
    if (want("topk_rank")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_TOPK, "the happier story: {txt}", SPEC);
        n->sem = SS_SEM_RANK;
        n->limit = K_RANK;
        run_unary("sem_rank", n, rank_json);
        ss_plan_node_free(n);
    }
    if (want("agg")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_AGG, "Summarize the reviews {txt}", "summary:t");
        fx_opt(n, "fan_in", "4");
        fx_opt(n, "max_tokens", "12");
        run_unary("sem_agg", n, agg_json);
        ss_plan_node_free(n);
    }
    if (want("join"))
        join_bench();
    if (want("extract")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_EXTRACT, "Who is in {txt} and how old?", SPEC ",who:t,age:i,happy:i");
        n->schema->types[n->schema->n - 1] = SS_COL_BOOL;
        fx_opt(n, "schema", "who TEXT, age INT, happy BOOLEAN");
        fx_opt(n, "output", "columns");
        fx_opt(n, "max_tokens", "48");
        run_unary("sem_extract", n, pointwise_json);
        ss_plan_node_free(n);
    }
    if (want("classify")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_CLASSIFY, "What is this review like? {txt}", SPEC ",label:t");
        fx_opt(n, "labels", "[\"happy\",\"very sad\",\"about a big red boat\"]");
        run_unary("sem_classify", n, pointwise_json);
        ss_plan_node_free(n);
    }
    if (want("search")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_SEARCH, "{txt}", SPEC ",score:r");
        n->limit = 10;
        fx_opt(n, "query", "a happy dog in the park");
        run_unary("sem_search", n, pointwise_json);
        ss_plan_node_free(n);
    }
    if (want("simjoin"))
        simjoin_bench();
    WINK = 1; /* the operators below embed with the word vectors, as the engine does by default */
    if (want("dedup")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_DEDUP, "The same story? {txt}", SPEC ",entity:t");
        fx_opt(n, "threshold", "0.95");
        DUPS = 1;
        run_unary("sem_dedup", n, nodelete_json);
        DUPS = 0;
        ss_plan_node_free(n);
    }
    if (want("group")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_GROUP, "Topic of {txt}", SPEC ",topic:t");
        n->limit = 8;
        n->sem = SS_SEM_GROUP;
        fx_opt(n, "max_tokens", "6");
        run_unary("sem_group", n, nodelete_json);
        ss_plan_node_free(n);
    }
    if (want("cluster")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_GROUP, "{txt}", SPEC ",topic:t");
        n->limit = 8;
        n->sem = SS_SEM_CLUSTER;
        run_unary("sem_cluster", n, nodelete_json);
        ss_plan_node_free(n);
    }
    WINK = 0;
    ss_buf_puts(&J, "]}\n");
    FILE *f = fopen(O.out, "w");
    if (!f)
        ss_bench_die("cannot write %s", O.out);
    fputs(ss_buf_cstr(&J), f);
    fclose(f);
    printf("wrote %s\n", O.out);
    ss_buf_free(&J);
    ss_plan_node_free(SRC);
    return 0;
}
