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
 * SEM_JOIN is measured on a labelled set (left items and right items of which some are
 * perturbed copies of left ones): calls of the pruned join (join_candidates=k) against
 * the exhaustive M x N join, and the recall of the pruned join's output against the
 * exhaustive join's output (and, for information, against the labels).
 *
 * Usage: bench_ivm [--n N] [--churn F] [--deltas D] [--recompute-every K] [--ops a,b]
 *                  [--join-n M] [--join-k k] [--model PATH] [--threads T] [--out FILE]
 * Writes JSON to --out (default bench/results/ivm.json under the source tree when run
 * from the build directory) and a summary table to stdout.
 */
#include "ss_dispatch.h"
#include "ss_llm.h"
#include "ss_op.h"
#include "ss_plan.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ options */

typedef struct opts {
    int n;
    double churn;
    int deltas;          /* 0: n * churn */
    int every;           /* full recompute after every k-th delta */
    const char *ops;
    int join_n, join_k;
    const char *model;
    int threads;
    const char *out;
} opts_t;

static opts_t O = {1000, 0.01, 0, 1, "filter,map,topk_score,topk_rank,agg,join", 200, 10,
                   NULL, 1, NULL};

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

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ------------------------------------------------------------------ engine */

typedef struct env {
    sqlite3 *db;
    ss_dispatch_t *disp;
    ss_op_ctx_t ctx;
} env_t;

static void env_open(env_t *e)
{
    char err[SS_ERRSZ] = "";
    memset(e, 0, sizeof *e);
    if (sqlite3_open(":memory:", &e->db) != SQLITE_OK)
        die("sqlite open failed");
    sqlite3_exec(e->db, "BEGIN", NULL, NULL, NULL);
    ss_dispatch_opts_t o = {.cache_path = NULL, .max_batch = 32, .use_cache = 0};
    if (ss_dispatch_open(&o, &e->disp, err, sizeof err))
        die("dispatch: %s", err);
    ss_infer_backend_t *b = ss_backend_local_new(O.model, O.threads, err, sizeof err);
    if (!b)
        die("model %s: %s", O.model, err);
    if (ss_dispatch_add_model(e->disp, "default", b, 1, err, sizeof err))
        die("add model: %s", err);
    e->ctx.db = e->db;
    e->ctx.disp = e->disp;
}

static void env_close(env_t *e)
{
    ss_dispatch_close(e->disp);
    sqlite3_exec(e->db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(e->db);
}

typedef struct cost {
    int64_t requests, calls, tokens;
    double sec;
} cost_t;

static ss_op_t *op_new(env_t *e, const ss_plan_node_t *n)
{
    char err[SS_ERRSZ] = "";
    ss_op_t *op = NULL;
    if (ss_op_new(n, &op, err, sizeof err) || op->vt->init(op, &e->ctx, err, sizeof err))
        die("operator: %s", err);
    return op;
}

static cost_t apply(env_t *e, ss_op_t *op, int port, ss_zset_t *in, ss_zset_t *out)
{
    char err[SS_ERRSZ] = "";
    ss_infer_stats_t a = op->stats.infer;
    int64_t t0 = ss_now_ns();
    ss_zset_t tmp;
    ss_zset_init(&tmp);
    ss_zset_consolidate(in);
    if (op->vt->apply(op, &e->ctx, port, in, out ? out : &tmp, err, sizeof err))
        die("apply: %s", err);
    ss_zset_destroy(&tmp);
    ss_infer_stats_t b = op->stats.infer;
    cost_t c = {b.requests - a.requests, b.calls - a.calls,
                (b.prompt_tokens + b.gen_tokens) - (a.prompt_tokens + a.gen_tokens), (ss_now_ns() - t0) / 1e9};
    return c;
}

/* ------------------------------------------------------------------ plan nodes */

static ss_schema_t *schema(const char *spec)
{
    int n = 1;
    for (const char *c = spec; *c; c++)
        n += *c == ',';
    ss_schema_t *s = ss_schema_new(n);
    char *dup = ss_strdup(spec), *save = NULL;
    int i = 0;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save), i++) {
        char *ty = strchr(t, ':');
        int key = 0;
        ss_coltype_t ct = SS_COL_TEXT;
        if (ty) {
            *ty++ = 0;
            ct = *ty == 'i' ? SS_COL_INT : SS_COL_TEXT;
            key = strstr(ty, ":key") != NULL;
        }
        ss_schema_set(s, i, t, ct, key);
    }
    free(dup);
    return s;
}

/* Template with {col} (side 0) and {b.col} (side 1) references. */
static ss_template_t *tmpl(const char *src, const ss_schema_t *s0, const ss_schema_t *s1)
{
    ss_template_t *t = calloc(1, sizeof *t);
    t->src = ss_strdup(src);
    t->parts = calloc(strlen(src) + 1, sizeof *t->parts);
    const char *p = src;
    while (*p) {
        ss_tmpl_part_t *pt = &t->parts[t->nparts++];
        const char *o = strchr(p, '{');
        if (o == p) {
            const char *c = strchr(p, '}');
            pt->name = ss_strndup(p + 1, (size_t)(c - p - 1));
            const char *nm = pt->name;
            if (s1 && nm[0] == 'b' && nm[1] == '.') {
                pt->side = 1;
                nm += 2;
            }
            pt->col = ss_schema_find(pt->side ? s1 : s0, nm);
            p = c + 1;
        } else {
            size_t n = o ? (size_t)(o - p) : strlen(p);
            pt->text = ss_strndup(p, n);
            p += n;
        }
    }
    return t;
}

static void opt(ss_plan_node_t *n, const char *name, const char *value)
{
    n->opts = realloc(n->opts, sizeof *n->opts * (size_t)(n->nopts + 1));
    n->opts[n->nopts].name = ss_strdup(name);
    n->opts[n->nopts].value = ss_strdup(value);
    n->nopts++;
}

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
    d->txt[i] = text(d->id[i], 0, 6);
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
    printf("%-10s initial %5lld calls %6.1fs | %3d deltas: incremental %4lld calls %7lld tok (%.2f calls/delta) | "
           "full recompute %7.1f calls %9.0f tok per delta (measured %d times) | %.1fx fewer calls, %.1fx fewer "
           "tokens | calls per insert/update/delete %.2f/%.2f/%.2f\n",
           r->name, (long long)r->initial.calls, r->initial.sec, r->deltas, (long long)r->inc_calls,
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

/* Runs one unary operator through N rows + churn; appends its JSON object to J. */
static void run_unary(const char *name, ss_plan_node_t *node, int extra_json(ss_buf_t *, result_t *))
{
    env_t e;
    env_open(&e);
    ss_op_t *op = op_new(&e, node);
    data_t d = {0};
    ss_zset_t z;
    ss_zset_init(&z);
    rng = 0x5eed;
    for (int i = 0; i < O.n; i++)
        data_insert(&d, &z);
    result_t r = {.name = name};
    r.initial = apply(&e, op, 0, &z, NULL);
    int D = O.deltas ? O.deltas : (int)SS_MAX(1, lround(O.n * O.churn));
    ss_buf_printf(&J, "%s{\"op\":\"%s\",\"n\":%d,\"initial\":{\"calls\":%lld,\"tokens\":%lld,\"sec\":%.3f},\"deltas\":[",
                  J.len && J.data[J.len - 1] == '}' ? "," : "", name, O.n, (long long)r.initial.calls,
                  (long long)r.initial.tokens, r.initial.sec);
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
        if (O.every > 0 && (t % O.every == 0 || t == D - 1)) {
            env_t f;
            env_open(&f);
            ss_op_t *fop = op_new(&f, node);
            ss_zset_t all;
            ss_zset_init(&all);
            data_all(&d, &all);
            cost_t fc = apply(&f, fop, 0, &all, NULL);
            ss_zset_destroy(&all);
            ss_op_destroy(fop);
            env_close(&f);
            r.full_calls += fc.calls;
            r.full_tokens += fc.tokens;
            r.measured++;
            ss_buf_printf(&J, ",\"full_calls\":%lld,\"full_tokens\":%lld,\"full_sec\":%.3f", (long long)fc.calls,
                          (long long)fc.tokens, fc.sec);
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
    if (extra_json)
        extra_json(&J, &r);
    ss_buf_putc(&J, '}');
    print_result(&r);
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    env_close(&e);
    data_free(&d);
}

static ss_plan_node_t *SRC;

static ss_plan_node_t *unary(ss_plan_kind_t kind, const char *t, const char *out_spec)
{
    ss_plan_node_t *n = ss_plan_node_new(kind);
    n->id = 2;
    n->nin = 1;
    n->in[0] = SRC;
    n->tmpl = tmpl(t, SRC->schema, NULL);
    n->schema = schema(out_spec);
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

/* Labelled set: left item i = a random phrase; right items are, for a third of the left
 * items, a perturbed copy (one word changed, reordered), else fresh phrases. */
static void join_bench(void)
{
    int M = O.join_n, N = O.join_n;
    ss_plan_node_t *L = ss_plan_node_new(SS_PN_SOURCE), *R = ss_plan_node_new(SS_PN_SOURCE);
    L->id = 1;
    R->id = 3;
    L->schema = schema("lid:i:key,name:t");
    R->schema = schema("rid:i:key,name:t");
    char **lt = calloc((size_t)M, sizeof *lt), **rt = calloc((size_t)N, sizeof *rt);
    int *label = calloc((size_t)N, sizeof *label);
    rng = 0x10b;
    for (int i = 0; i < M; i++)
        lt[i] = text(i, 0, 5);
    for (int j = 0; j < N; j++) {
        label[j] = -1;
        if (j % 3 == 0 && j / 3 < M) {
            int i = j / 3;
            char buf[256];
            snprintf(buf, sizeof buf, "%s %s", lt[i], WORDS[rnd() % NWORDS]);
            rt[j] = ss_strdup(buf);
            label[j] = i;
        } else {
            rt[j] = text(100000 + j, 0, 5);
        }
    }
    ss_zset_t zl, zr;
    ss_zset_init(&zl);
    ss_zset_init(&zr);
    for (int i = 0; i < M; i++) {
        ss_row_t *r = ss_row_new(2);
        ss_value_t a = ss_val_int(i), b = ss_val_text_ref(lt[i], strlen(lt[i]));
        ss_row_set(r, 0, &a);
        ss_row_set(r, 1, &b);
        ss_zset_add(&zl, r, 1);
    }
    for (int j = 0; j < N; j++) {
        ss_row_t *r = ss_row_new(2);
        ss_value_t a = ss_val_int(j), b = ss_val_text_ref(rt[j], strlen(rt[j]));
        ss_row_set(r, 0, &a);
        ss_row_set(r, 1, &b);
        ss_zset_add(&zr, r, 1);
    }
    ss_zset_t out[2];
    cost_t cost[2];
    for (int pruned = 0; pruned < 2; pruned++) {
        ss_plan_node_t *n = ss_plan_node_new(SS_PN_SEM_JOIN);
        n->id = 4;
        n->nin = 2;
        n->in[0] = L;
        n->in[1] = R;
        n->tmpl = tmpl("Do {name} and {b.name} describe the same thing?", L->schema, R->schema);
        n->schema = schema("lid:i,name:t,rid:i,rname:t");
        if (pruned) {
            char k[16];
            snprintf(k, sizeof k, "%d", O.join_k);
            opt(n, "join_candidates", k);
        }
        env_t e;
        env_open(&e);
        ss_op_t *op = op_new(&e, n);
        ss_zset_init(&out[pruned]);
        cost_t a = apply(&e, op, 0, &zl, &out[pruned]);
        cost_t b = apply(&e, op, 1, &zr, &out[pruned]);
        ss_zset_consolidate(&out[pruned]);
        cost[pruned] = (cost_t){a.requests + b.requests, a.calls + b.calls, a.tokens + b.tokens, a.sec + b.sec};
        ss_op_destroy(op);
        env_close(&e);
        ss_plan_node_free(n);
    }
    /* recall of the pruned output against the exhaustive output, and both against labels */
    int64_t both = 0, lab_ex = 0, lab_pr = 0, nlab = 0;
    for (int j = 0; j < N; j++)
        nlab += label[j] >= 0;
    for (size_t i = 0; i < out[0].n; i++) {
        const ss_row_t *r = out[0].e[i].row;
        int found = 0;
        for (size_t k = 0; k < out[1].n && !found; k++)
            found = ss_row_cmp(r, out[1].e[k].row) == 0;
        both += found;
        lab_ex += label[r->v[2].u.i] == r->v[0].u.i;
    }
    for (size_t k = 0; k < out[1].n; k++)
        lab_pr += label[out[1].e[k].row->v[2].u.i] == out[1].e[k].row->v[0].u.i;
    double recall = out[0].n ? (double)both / (double)out[0].n : 1.0;
    double ratio = cost[1].requests ? (double)cost[0].requests / (double)cost[1].requests : 0;
    printf("%-12s M=N=%d k=%d | exhaustive %lld calls, %zu matches | pruned %lld requests (%lld pair calls + %d "
           "embeddings), %zu matches | %.1fx fewer | recall vs exhaustive %.3f | label recall: exhaustive %.3f, "
           "pruned %.3f\n",
           "sem_join", M, O.join_k, (long long)cost[0].calls, out[0].n, (long long)cost[1].requests,
           (long long)(cost[1].requests - M - N), M + N, out[1].n, ratio, recall,
           nlab ? (double)lab_ex / (double)nlab : 0.0, nlab ? (double)lab_pr / (double)nlab : 0.0);
    printf("  check: >= 10x fewer calls at recall >= 0.9: %s\n", ratio >= 10 && recall >= 0.9 ? "yes" : "NO");
    ss_buf_printf(&J,
                  "%s{\"op\":\"sem_join\",\"m\":%d,\"n\":%d,\"join_candidates\":%d,\"exhaustive_calls\":%lld,"
                  "\"exhaustive_tokens\":%lld,\"exhaustive_matches\":%zu,\"pruned_requests\":%lld,"
                  "\"pruned_calls\":%lld,\"pruned_tokens\":%lld,\"pruned_matches\":%zu,\"ratio_calls\":%.2f,"
                  "\"recall_vs_exhaustive\":%.4f,\"labelled_pairs\":%lld,\"label_recall_exhaustive\":%.4f,"
                  "\"label_recall_pruned\":%.4f}",
                  J.len && J.data[J.len - 1] == '}' ? "," : "", M, N, O.join_k, (long long)cost[0].calls,
                  (long long)cost[0].tokens, out[0].n, (long long)cost[1].requests, (long long)cost[1].calls,
                  (long long)cost[1].tokens, out[1].n, ratio, recall, (long long)nlab,
                  nlab ? (double)lab_ex / (double)nlab : 0.0, nlab ? (double)lab_pr / (double)nlab : 0.0);
    for (int i = 0; i < M; i++)
        free(lt[i]);
    for (int j = 0; j < N; j++)
        free(rt[j]);
    free(lt);
    free(rt);
    free(label);
    ss_zset_destroy(&zl);
    ss_zset_destroy(&zr);
    ss_zset_destroy(&out[0]);
    ss_zset_destroy(&out[1]);
    ss_plan_node_free(L);
    ss_plan_node_free(R);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    static char model[2200], outp[2200];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("%s needs a value", a);
        if (!strcmp(a, "--n")) O.n = atoi(v);
        else if (!strcmp(a, "--churn")) O.churn = atof(v);
        else if (!strcmp(a, "--deltas")) O.deltas = atoi(v);
        else if (!strcmp(a, "--recompute-every")) O.every = atoi(v);
        else if (!strcmp(a, "--ops")) O.ops = v;
        else if (!strcmp(a, "--join-n")) O.join_n = atoi(v);
        else if (!strcmp(a, "--join-k")) O.join_k = atoi(v);
        else if (!strcmp(a, "--model")) O.model = v;
        else if (!strcmp(a, "--threads")) O.threads = atoi(v);
        else if (!strcmp(a, "--out")) O.out = v;
        else die("usage: bench_ivm [--n N] [--churn F] [--deltas D] [--recompute-every K] [--ops a,b] "
                 "[--join-n M] [--join-k k] [--model PATH] [--threads T] [--out FILE]");
        i++;
    }
    static char srcdir[1024];
    const char *src = getenv("SS_SOURCE_DIR");
    if (!src) { /* this file is <source>/bench/ivm.c */
        snprintf(srcdir, sizeof srcdir, "%s", __FILE__);
        char *p = strstr(srcdir, "/bench/ivm.c");
        if (p)
            *p = 0;
        else
            snprintf(srcdir, sizeof srcdir, ".");
        src = srcdir;
    }
    if (!O.model) {
        snprintf(model, sizeof model, "%s/../shared/models/stories260K.gguf", src);
        O.model = model;
    }
    if (!O.out) {
        snprintf(outp, sizeof outp, "%s/bench/results/ivm.json", src);
        O.out = outp;
    }
    SRC = ss_plan_node_new(SS_PN_SOURCE);
    SRC->id = 1;
    SRC->schema = schema(SPEC);
    int D = O.deltas ? O.deltas : (int)SS_MAX(1, lround(O.n * O.churn));
    ss_buf_printf(&J, "{\"bench\":\"ivm\",\"model\":\"%s\",\"n\":%d,\"churn\":%g,\"deltas\":%d,\"recompute_every\":%d,"
                      "\"operators\":[",
                  strrchr(O.model, '/') ? strrchr(O.model, '/') + 1 : O.model, O.n, O.churn, D, O.every);
    printf("bench_ivm: model %s, N=%d, %d single-row deltas (insert/update/delete in turn), full recompute after "
           "every %d\n", O.model, O.n, D, O.every);
    if (want("filter")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_FILTER, "Is this review positive? {txt}", SPEC);
        run_unary("sem_filter", n, pointwise_json);
        ss_plan_node_free(n);
    }
    if (want("map")) {
        ss_plan_node_t *n = unary(SS_PN_SEM_MAP, "Give a short title for {txt}", SPEC ",title:t");
        opt(n, "max_tokens", "8");
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
        opt(n, "fan_in", "4");
        opt(n, "max_tokens", "12");
        run_unary("sem_agg", n, agg_json);
        ss_plan_node_free(n);
    }
    if (want("join"))
        join_bench();
    ss_buf_puts(&J, "]}\n");
    FILE *f = fopen(O.out, "w");
    if (!f)
        die("cannot write %s", O.out);
    fputs(ss_buf_cstr(&J), f);
    fclose(f);
    printf("wrote %s\n", O.out);
    ss_buf_free(&J);
    ss_plan_node_free(SRC);
    return 0;
}
