/*
 * memory.c — bench_memory: what LLM_GENERATE MAINTAIN = 'dependency' (issue 17 §1) saves against
 * full recompute, and how far its answers drift from recompute's, on the CPU engine.
 *
 * Workload (seeded): D documents, S sessions of T turns each asking about them (RETRIEVE k, a
 * session's earlier turns in the prompt), then E document edits applied one delta at a time:
 * a word changed in one sentence (50%), a document rewritten (20%), deleted (15%), or a new one
 * inserted (15%). The same workload runs, each on a fresh operator, model and state (no result
 * cache), under MAINTAIN = 'recompute' (the baseline) and 'dependency' at every TAU given. For
 * the edit phase it reports the revisits kept whole / shortened / regenerated, the GENERATE
 * requests, the tokens decoded, prefilled as forced prefixes, and run through the model (the
 * engine's count, prompt tokens reused from its prefix cache excluded), and the wall time; and,
 * after every edit, compares every answer of the view with the recompute run's at the same step:
 * exact-match rate and token-level edit distance (Levenshtein over the model's tokens; mean, and
 * mean divided by the longer answer's length).
 *
 * Everything goes through the real operator, dispatcher and local backend (the embeddings
 * used for retrieval are the model's EMBED answers, as the engine does without word vectors).
 *
 * Usage: bench_memory [--model PATH] [--docs D] [--sessions S] [--turns T] [--edits E]
 *                     [--retrieve k] [--max-tokens M] [--taus 0,0.02,...] [--seed N]
 *                     [--threads T] [--reps R] [--explain N] [--label TEXT] [--out FILE]
 * --explain N prints, for every dependency run, what EXPLAIN VIEW shows: the counters and the
 * per-sentence attention masses of the first N answers.
 * Each configuration runs R times (default 3) in rounds, the baseline first in each round; the
 * time reported is its fastest round (the machine is shared: the minimum is the least disturbed).
 * Writes JSON to --out (default bench/results/memory.json under the source tree) and a table to
 * stdout.
 */
#include "ss_bench_util.h"
#include "ss_dispatch.h"
#include "ss_llm.h"
#include "ss_op.h"
#include "ss_plan.h"
#include "ss_sem.h"
#include "../tests/plan_fixture.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXTAU 8
#define MAXDOC 256

static struct {
    const char *model, *out, *label;
    int docs, sessions, turns, edits, retrieve, max_tokens, threads, reps, explain;
    uint64_t seed;
    double taus[MAXTAU];
    int ntau;
} O = {NULL, NULL, "stories260K", 12, 6, 2, 30, 3, 48, 1, 3, 0, 7, {0, 0.02, 0.05, 0.1, 0.2}, 5};

static uint64_t rng;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* ------------------------------------------------------------------ workload */

static const char *NAMES[] = {"Lily", "Tom", "Sue", "Ben", "Mia", "Max", "Anna", "Sam"};
static const char *COLORS[] = {"red", "blue", "green", "yellow", "big", "little", "pink", "shiny"};
static const char *THINGS[] = {"ball", "dog", "cat", "car", "kite", "box", "bird", "toy"};
static const char *PLACES[] = {"park", "garden", "house", "forest", "school", "sea", "tree", "room"};
#define PICK(a) a[rnd() % (sizeof a / sizeof *a)]

typedef struct doc {
    int64_t id;
    char words[3][16]; /* color, thing, place: what an edit changes */
    const char *name;
} doc_t;

typedef struct edit {
    int kind; /* 0 word, 1 rewrite, 2 delete, 3 insert */
    int at;   /* document index */
    doc_t d;  /* the new version (word, rewrite, insert) */
} edit_t;

static void doc_rand(doc_t *d, int64_t id)
{
    d->id = id;
    d->name = PICK(NAMES);
    snprintf(d->words[0], 16, "%s", PICK(COLORS));
    snprintf(d->words[1], 16, "%s", PICK(THINGS));
    snprintf(d->words[2], 16, "%s", PICK(PLACES));
}

static ss_row_t *doc_row(const doc_t *d)
{
    char body[256];
    snprintf(body, sizeof body, "%s had a %s %s. It was in the %s. %s liked to play with it every day.", d->name,
             d->words[0], d->words[1], d->words[2], d->name);
    ss_row_t *r = ss_row_new(2);
    ss_value_t a = ss_val_int(d->id), b = ss_val_text_ref(body, strlen(body));
    ss_row_set(r, 0, &a);
    ss_row_set(r, 1, &b);
    return r;
}

static ss_row_t *turn_row(int64_t id, int sess, int k)
{
    char s[16], q[128];
    snprintf(s, sizeof s, "s%d", sess);
    int i = (int)((id * 7 + k) % 8);
    snprintf(q, sizeof q, "What did %s do with the %s?", NAMES[i], THINGS[(i + k) % 8]);
    ss_row_t *r = ss_row_new(3);
    ss_value_t a = ss_val_int(id), b = ss_val_text_ref(s, strlen(s)), c = ss_val_text_ref(q, strlen(q));
    ss_row_set(r, 0, &a);
    ss_row_set(r, 1, &b);
    ss_row_set(r, 2, &c);
    return r;
}

typedef struct workload {
    doc_t docs[MAXDOC];
    int ndocs;
    edit_t *edits;
} workload_t;

static void workload_make(workload_t *w)
{
    rng = O.seed * 0x9e3779b97f4a7c15ull + 1;
    w->ndocs = O.docs;
    for (int i = 0; i < w->ndocs; i++)
        doc_rand(&w->docs[i], i + 1);
    w->edits = calloc((size_t)O.edits, sizeof *w->edits);
    doc_t live[MAXDOC];
    int nlive = w->ndocs;
    int64_t next = w->ndocs + 1;
    memcpy(live, w->docs, sizeof(doc_t) * (size_t)nlive);
    for (int e = 0; e < O.edits; e++) {
        edit_t *x = &w->edits[e];
        unsigned r = rnd() % 20;
        x->kind = nlive < 3 ? 3 : r < 10 ? 0 : r < 14 ? 1 : r < 17 ? 2 : 3;
        if (nlive >= MAXDOC)
            x->kind = 2;
        x->at = nlive ? (int)(rnd() % (unsigned)nlive) : 0;
        if (x->kind == 0) {
            x->d = live[x->at];
            int wi = (int)(rnd() % 3);
            const char *const *bank = wi == 0 ? COLORS : wi == 1 ? THINGS : PLACES;
            snprintf(x->d.words[wi], 16, "%s", bank[rnd() % 8]);
            live[x->at] = x->d;
        } else if (x->kind == 1) {
            doc_rand(&x->d, live[x->at].id);
            live[x->at] = x->d;
        } else if (x->kind == 2) {
            x->d = live[x->at];
            memmove(&live[x->at], &live[x->at + 1], sizeof(doc_t) * (size_t)(nlive - x->at - 1));
            nlive--;
        } else {
            doc_rand(&x->d, next++);
            x->at = nlive;
            live[nlive++] = x->d;
        }
    }
}

/* ------------------------------------------------------------------ one configuration */

/* Counts what the model was asked: GENERATE requests, forced tokens, tokens decoded. */
typedef struct counting {
    ss_infer_backend_t base;
    ss_infer_backend_t *inner;
    int64_t gen_reqs, forced, decoded, prompt;
} counting_t;

static int counting_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err,
                        size_t errsz)
{
    counting_t *c = (counting_t *)b;
    int rc = c->inner->run(c->inner, reqs, n, res, err, errsz);
    for (int i = 0; i < n; i++)
        if (reqs[i].kind == SS_INFER_GENERATE) {
            c->gen_reqs++;
            c->forced += reqs[i].nforced;
            c->decoded += res[i].gen_tokens;
            c->prompt += res[i].prompt_tokens;
        }
    return rc;
}

static void counting_destroy(ss_infer_backend_t *b)
{
    counting_t *c = (counting_t *)b;
    c->inner->destroy(c->inner);
    free(c->base.model_id);
    free(c);
}

typedef struct result {
    const char *mode;
    double tau;
    int64_t kept, shortened, regenerated, gen_reqs, forced, decoded, computed;
    int64_t cut[4]; /* what decided the cuts: changed, gone, moved, entered */
    double sec;
    char ***resp; /* [edit][turn] the view's answers after each edit */
    double exact, edit_mean, edit_norm; /* against recompute */
} result_t;

static int64_t depstat(sqlite3 *db, const char *k)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT v FROM st_3_depstat WHERE k = '%s'", k);
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, ss_zset_t *in)
{
    char err[SS_ERRSZ] = "";
    ss_zset_t out;
    ss_zset_init(&out);
    ss_zset_consolidate(in);
    if (op->vt->apply(op, ctx, port, in, &out, err, sizeof err))
        ss_bench_die("apply: %s", err);
    ss_zset_destroy(&out);
    ss_zset_clear(in);
}

/* The view's answers by turn id (ids 1..nturns). */
static void view_answers(ss_op_t *op, ss_op_ctx_t *ctx, int nturns, char **out)
{
    char err[SS_ERRSZ] = "";
    sqlite3_stmt *st = NULL;
    (void)op, (void)err;
    if (sqlite3_prepare_v2(ctx->db, "SELECT r, resp FROM st_3_ctx WHERE w > 0", -1, &st, NULL) != SQLITE_OK)
        ss_bench_die("read view: %s", sqlite3_errmsg(ctx->db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        ss_row_t *r = NULL;
        if (ss_row_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &r))
            ss_bench_die("bad row");
        int64_t id = r->v[0].u.i;
        if (id >= 1 && id <= nturns)
            out[id - 1] = ss_strdup((const char *)sqlite3_column_text(st, 1));
        ss_row_free(r);
    }
    sqlite3_finalize(st);
}

static ss_plan_node_t *gen_node(ss_plan_node_t *c, ss_plan_node_t *d, const char *mode, double tau)
{
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_LLM_GENERATE);
    n->id = 3;
    n->nin = 2;
    n->in[0] = c;
    n->in[1] = d;
    n->tmpl = fx_tmpl("Answer the question {q}", c->schema, NULL);
    n->schema = fx_schema("sess:t,response:t,docs:t");
    char v[32];
    fx_opt(n, "key", "sess");
    snprintf(v, sizeof v, "%d", O.retrieve);
    fx_opt(n, "retrieve", v);
    fx_opt(n, "maintain", mode);
    snprintf(v, sizeof v, "%d", O.max_tokens);
    fx_opt(n, "max_tokens", v);
    snprintf(v, sizeof v, "%g", tau);
    fx_opt(n, "tau", v);
    return n;
}

static void run_config(const workload_t *w, ss_plan_node_t *c, ss_plan_node_t *d, result_t *res)
{
    char err[SS_ERRSZ] = "";
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        ss_bench_die("sqlite");
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    ss_dispatch_t *disp = NULL;
    ss_dispatch_opts_t o = {.max_batch = 32, .use_cache = -1};
    if (ss_dispatch_open(&o, &disp, err, sizeof err))
        ss_bench_die("dispatch: %s", err);
    ss_infer_backend_t *inner = ss_backend_local_new(O.model, O.threads, err, sizeof err);
    if (!inner)
        ss_bench_die("model %s: %s", O.model, err);
    counting_t *cb = calloc(1, sizeof *cb);
    cb->base.kind = inner->kind;
    cb->base.model_id = ss_strdup(inner->model_id);
    cb->base.run = counting_run;
    cb->base.destroy = counting_destroy;
    cb->inner = inner;
    if (ss_dispatch_add_model(disp, "default", &cb->base, 1, err, sizeof err))
        ss_bench_die("add model: %s", err);
    ss_llm_t *m = ss_backend_llm_model(inner);
    ss_op_ctx_t ctx = {0};
    ctx.db = db;
    ctx.disp = disp;
    ss_plan_node_t *n = gen_node(c, d, res->mode, res->tau);
    ss_op_t *op = NULL;
    if (ss_op_new(n, &op, err, sizeof err) || op->vt->init(op, &ctx, err, sizeof err))
        ss_bench_die("operator: %s", err);
    /* load: documents, then the sessions' turns round by round */
    ss_zset_t z;
    ss_zset_init(&z);
    for (int i = 0; i < w->ndocs; i++)
        ss_zset_add(&z, doc_row(&w->docs[i]), 1);
    apply(op, &ctx, 1, &z);
    int nturns = O.sessions * O.turns;
    for (int k = 0; k < O.turns; k++) {
        for (int s = 0; s < O.sessions; s++)
            ss_zset_add(&z, turn_row((int64_t)k * O.sessions + s + 1, s, k), 1);
        apply(op, &ctx, 0, &z);
    }
    /* edits, one delta each */
    doc_t live[MAXDOC];
    int nlive = w->ndocs;
    memcpy(live, w->docs, sizeof(doc_t) * (size_t)nlive);
    int64_t g0 = cb->gen_reqs, f0 = cb->forced, d0 = cb->decoded;
    ss_llm_stats_t st0, st1;
    ss_llm_stats(m, &st0);
    res->resp = calloc((size_t)O.edits, sizeof *res->resp);
    double sec = 0;
    for (int e = 0; e < O.edits; e++) {
        const edit_t *x = &w->edits[e];
        if (x->kind <= 2)
            ss_zset_add(&z, doc_row(&live[x->at]), -1);
        if (x->kind != 2)
            ss_zset_add(&z, doc_row(&x->d), 1);
        if (x->kind <= 1)
            live[x->at] = x->d;
        else if (x->kind == 2) {
            memmove(&live[x->at], &live[x->at + 1], sizeof(doc_t) * (size_t)(nlive - x->at - 1));
            nlive--;
        } else {
            live[nlive++] = x->d;
        }
        int64_t t0 = ss_now_ns();
        apply(op, &ctx, 1, &z);
        sec += (double)(ss_now_ns() - t0) / 1e9;
        res->resp[e] = calloc((size_t)nturns, sizeof(char *));
        view_answers(op, &ctx, nturns, res->resp[e]);
    }
    ss_llm_stats(m, &st1);
    res->sec = sec;
    res->gen_reqs = cb->gen_reqs - g0;
    res->forced = cb->forced - f0;
    res->decoded = cb->decoded - d0;
    res->computed = st1.tokens_computed - st0.tokens_computed;
    res->kept = depstat(db, "kept");
    res->shortened = depstat(db, "shortened");
    res->regenerated = depstat(db, "regenerated");
    static const char *const why[4] = {"cut_changed", "cut_gone", "cut_moved", "cut_entered"};
    for (int i = 0; i < 4; i++)
        res->cut[i] = depstat(db, why[i]);
    if (O.explain && !strcmp(res->mode, "dependency")) { /* what EXPLAIN VIEW shows of it */
        ss_buf_t b = SS_BUF_INIT;
        ss_llm_generate_describe(db, n, O.explain, &b);
        fprintf(stderr, "%s", ss_buf_cstr(&b));
        ss_buf_free(&b);
    }
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    ss_plan_node_free(n);
    ss_dispatch_close(disp);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
}

/* ------------------------------------------------------------------ fidelity */

static int lev(const int *a, int na, const int *b, int nb)
{
    int *row = malloc(sizeof(int) * (size_t)(nb + 1));
    for (int j = 0; j <= nb; j++)
        row[j] = j;
    for (int i = 1; i <= na; i++) {
        int prev = row[0];
        row[0] = i;
        for (int j = 1; j <= nb; j++) {
            int cur = row[j];
            int sub = prev + (a[i - 1] != b[j - 1]);
            row[j] = SS_MIN(SS_MIN(row[j] + 1, row[j - 1] + 1), sub);
            prev = cur;
        }
    }
    int r = row[nb];
    free(row);
    return r;
}

static void fidelity(ss_llm_t *m, const result_t *base, result_t *r)
{
    int nturns = O.sessions * O.turns, n = 0, same = 0;
    double dist = 0, norm = 0;
    int *ta = malloc(4096 * sizeof(int)), *tb = malloc(4096 * sizeof(int));
    for (int e = 0; e < O.edits; e++)
        for (int t = 0; t < nturns; t++) {
            const char *a = base->resp[e][t] ? base->resp[e][t] : "", *b = r->resp[e][t] ? r->resp[e][t] : "";
            n++;
            if (!strcmp(a, b)) {
                same++;
                continue;
            }
            int na = SS_MIN(4096, ss_llm_tokenize(m, a, 0, ta, 4096));
            int nb = SS_MIN(4096, ss_llm_tokenize(m, b, 0, tb, 4096));
            int l = lev(ta, na, tb, nb);
            dist += l;
            norm += (double)l / SS_MAX(1, SS_MAX(na, nb));
        }
    free(ta);
    free(tb);
    r->exact = n ? (double)same / n : 1;
    r->edit_mean = n ? dist / n : 0;
    r->edit_norm = n ? norm / n : 0;
}

/* ------------------------------------------------------------------ main */

static void parse_taus(const char *s)
{
    O.ntau = 0;
    for (const char *p = s; *p && O.ntau < MAXTAU;) {
        char *end;
        O.taus[O.ntau++] = strtod(p, &end);
        p = *end == ',' ? end + 1 : end + strlen(end);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            ss_bench_die("usage: bench_memory [--model PATH] [--docs D] [--sessions S] [--turns T] [--edits E] [--retrieve k] "
                "[--max-tokens M] [--taus 0,0.05,...] [--seed N] [--threads T] [--reps R] [--explain N] [--label TEXT] "
                "[--out FILE]");
        if (!strcmp(a, "--model")) O.model = v;
        else if (!strcmp(a, "--docs")) O.docs = SS_MIN(MAXDOC / 2, atoi(v));
        else if (!strcmp(a, "--sessions")) O.sessions = atoi(v);
        else if (!strcmp(a, "--turns")) O.turns = atoi(v);
        else if (!strcmp(a, "--edits")) O.edits = atoi(v);
        else if (!strcmp(a, "--retrieve")) O.retrieve = atoi(v);
        else if (!strcmp(a, "--max-tokens")) O.max_tokens = atoi(v);
        else if (!strcmp(a, "--taus")) parse_taus(v);
        else if (!strcmp(a, "--seed")) O.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--threads")) O.threads = atoi(v);
        else if (!strcmp(a, "--reps")) O.reps = SS_MAX(1, atoi(v));
        else if (!strcmp(a, "--explain")) O.explain = atoi(v);
        else if (!strcmp(a, "--label")) O.label = v;
        else if (!strcmp(a, "--out")) O.out = v;
        else ss_bench_die("unknown option %s", a);
        i++;
    }
    static char model[1200], outp[1200];
    if (!O.model)
        O.model = ss_bench_source_file(__FILE__, "../shared/models/stories260K.gguf", model, sizeof model);
    if (!O.out)
        O.out = ss_bench_source_file(__FILE__, "bench/results/memory.json", outp, sizeof outp);
    if (O.docs < 1 || O.sessions < 1 || O.turns < 1 || O.edits < 1 || O.max_tokens < 1)
        ss_bench_die("--docs, --sessions, --turns, --edits and --max-tokens must be positive");
    (void)fx_memo_rows; /* plan_fixture.h's, for other benches */
    /* FAISS's OpenMP threads spin between the retrieval searches; on a shared machine that
     * steals the engine's cores at random (measured: +/-50% on the edit phase). One thread, unless
     * the caller says otherwise. */
    setenv("OMP_NUM_THREADS", "1", 0);
    workload_t w;
    workload_make(&w);
    ss_plan_node_t *c = ss_plan_node_new(SS_PN_SOURCE), *d = ss_plan_node_new(SS_PN_SOURCE);
    c->id = 1;
    c->schema = fx_schema("id:i:key,sess:t,q:t");
    d->id = 2;
    d->schema = fx_schema("did:i:key,body:t");
    int nr = 1 + O.ntau;
    result_t *R = calloc((size_t)nr, sizeof *R);
    R[0].mode = "recompute";
    for (int i = 0; i < O.ntau; i++) {
        R[i + 1].mode = "dependency";
        R[i + 1].tau = O.taus[i];
    }
    /* rounds over all configurations (the baseline first in each); the time kept is each
     * configuration's fastest round, the counts and answers are the same in every round */
    for (int rep = 0; rep < O.reps; rep++)
        for (int i = 0; i < nr; i++) {
            fprintf(stderr, "round %d: %s tau %g ...\n", rep + 1, R[i].mode, R[i].tau);
            result_t x = R[i];
            x.resp = NULL;
            run_config(&w, c, d, &x);
            if (rep == 0) {
                R[i] = x;
                continue;
            }
            R[i].sec = SS_MIN(R[i].sec, x.sec);
            for (int e = 0; e < O.edits; e++) {
                for (int t = 0; t < O.sessions * O.turns; t++)
                    free(x.resp[e][t]);
                free(x.resp[e]);
            }
            free(x.resp);
        }
    char err[SS_ERRSZ];
    ss_llm_t *m = NULL;
    if (ss_llm_open(O.model, NULL, &m, err, sizeof err))
        ss_bench_die("model: %s", err);
    for (int i = 0; i < nr; i++)
        fidelity(m, &R[0], &R[i]);
    ss_llm_close(m);
    /* table + JSON */
    printf("bench_memory (%s): %d docs, %d sessions x %d turns, %d edits, retrieve %d, max_tokens %d\n", O.label,
           O.docs, O.sessions, O.turns, O.edits, O.retrieve, O.max_tokens);
    printf("%-10s %5s %6s %6s %6s %6s %8s %7s %8s %8s %7s %6s %7s\n", "mode", "tau", "kept", "short", "regen",
           "gen", "decoded", "forced", "computed", "time_s", "speedup", "exact", "edit_n");
    FILE *f = fopen(O.out, "w");
    if (!f)
        ss_bench_die("cannot write %s", O.out);
    fprintf(f, "{\"bench\": \"memory\", \"label\": \"%s\", \"model\": \"%s\", \"docs\": %d, \"sessions\": %d, "
               "\"turns\": %d, \"edits\": %d, \"retrieve\": %d, \"max_tokens\": %d, \"seed\": %llu, \"reps\": %d, "
               "\"threads\": %d, \"runs\": [",
            O.label, O.model, O.docs, O.sessions, O.turns, O.edits, O.retrieve, O.max_tokens,
            (unsigned long long)O.seed, O.reps, O.threads);
    for (int i = 0; i < nr; i++) {
        result_t *r = &R[i];
        double speed = r->sec > 0 ? R[0].sec / r->sec : 0;
        printf("%-10s %5.3g %6lld %6lld %6lld %6lld %8lld %7lld %8lld %8.2f %6.2fx %6.3f %7.4f\n", r->mode, r->tau,
               (long long)r->kept, (long long)r->shortened, (long long)r->regenerated, (long long)r->gen_reqs,
               (long long)r->decoded, (long long)r->forced, (long long)r->computed, r->sec, speed, r->exact,
               r->edit_norm);
        fprintf(f,
                "%s{\"mode\": \"%s\", \"tau\": %g, \"kept\": %lld, \"shortened\": %lld, \"regenerated\": %lld, "
                "\"generate_requests\": %lld, \"tokens_decoded\": %lld, \"tokens_forced\": %lld, "
                "\"tokens_computed\": %lld, \"edit_seconds\": %.4f, \"speedup_vs_recompute\": %.3f, "
                "\"exact_match\": %.4f, \"token_edit_distance\": %.4f, \"token_edit_distance_norm\": %.4f, "
                "\"cut_by\": {\"changed\": %lld, \"gone\": %lld, \"moved\": %lld, \"entered\": %lld}}",
                i ? ", " : "", r->mode, r->tau, (long long)r->kept, (long long)r->shortened,
                (long long)r->regenerated, (long long)r->gen_reqs, (long long)r->decoded, (long long)r->forced,
                (long long)r->computed, r->sec, speed, r->exact, r->edit_mean, r->edit_norm, (long long)r->cut[0],
                (long long)r->cut[1], (long long)r->cut[2], (long long)r->cut[3]);
    }
    fprintf(f, "]}\n");
    fclose(f);
    for (int i = 1; i < nr; i++)
        printf("tau %g: cuts decided by a chunk changed %lld, gone %lld, moved %lld, entered %lld\n", R[i].tau,
               (long long)R[i].cut[0], (long long)R[i].cut[1], (long long)R[i].cut[2], (long long)R[i].cut[3]);
    printf("(kept/short/regen: revisited answers; gen: GENERATE requests; decoded, forced (prefilled answer "
           "prefixes), computed (all tokens through the model): edit phase only; exact, edit_n: fidelity of every "
           "answer after every edit against recompute)\nwrote %s\n",
           O.out);
    for (int i = 0; i < nr; i++) {
        for (int e = 0; R[i].resp && e < O.edits; e++) {
            for (int t = 0; t < O.sessions * O.turns; t++)
                free(R[i].resp[e][t]);
            free(R[i].resp[e]);
        }
        free(R[i].resp);
    }
    free(R);
    free(w.edits);
    ss_plan_node_free(c);
    ss_plan_node_free(d);
    return 0;
}
