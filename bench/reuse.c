/*
 * reuse.c — bench_reuse: LLM_GENERATE REUSE = 'semantic' (issue 17 §4) against regenerating every
 * answer, in the same run, on a question set with labelled equivalences.
 *
 * Question set (built at start from WordNet's noun database, /usr/share/wordnet/data.noun of
 * Debian's wordnet-base): G synsets with at least 3 one-word lemmas, taken two by two among the
 * hyponyms of one hypernym (so that near-misses exist: "What is a violin?" / "What is a viola?");
 * a synset's questions are templates ("What is a %s?", "Define the word %s.", ...) filled with its
 * lemmas, P of them drawn per synset; the label of a question is its synset. The questions arrive
 * one per batch in a seeded random order, over one document (every question retrieves it: the same
 * data), then the document changes once.
 *
 * Runs, each on a fresh operator, state and model (no result cache): REUSE off (the baseline: every
 * answer generated) and REUSE = 'semantic' for each judge, embedder (wink word vectors, the USE
 * sentence encoder) and delta. The judge is what tells an exploration whether the entry's answer
 * would have been right: "text", the engine's default (the generated answer equals the entry's),
 * or "label" (reuse_label = the synset column: the labelled equivalence, as vCache's own
 * benchmarks judge). Reported per run: GENERATE requests, reuses (hit rate = reuses /
 * questions), explorations and their agreement, the engine's estimated error; the label error rate
 * (reuses of an answer to another synset's question / questions, vCache's measure) and the answer
 * error rate (reused answers that differ from the baseline's answer to the same question /
 * questions); after the document change, the GENERATE requests of the revisit and the answer error
 * rate against the baseline after the same change.
 *
 * Usage: bench_reuse [--model PATH] [--groups G] [--per P] [--deltas 0.01,0.05,0.1]
 *                    [--embedders wink,use] [--judges text,label] [--max-tokens M] [--min-obs N]
 *                    [--equiv X] [--seed N]
 *                    [--wordnet DIR] [--out FILE]
 * Writes JSON to --out (default bench/results/reuse.json) and a table to stdout.
 */
#include "ss_bench_util.h"
#include "ss_dispatch.h"
#include "ss_embed.h"
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

#define MAXD 8
#define MAXQ 4096

static struct {
    const char *model, *out, *wordnet, *equiv;
    int groups, per, max_tokens, min_obs;
    uint64_t seed;
    double deltas[MAXD];
    int ndelta;
    const char *emb[4];
    int nemb;
    const char *judge[2];
    int njudge;
} O = {NULL, NULL, "/usr/share/wordnet", NULL, 24, 10, 16, 6, 11, {0.01, 0.05, 0.1}, 3, {"wink", "use"}, 2,
       {"text", "label"}, 2};

static uint64_t rng;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* ------------------------------------------------------------------ the question set */

typedef struct synset {
    char lemma[4][24];
    int nlemma;
    long hyper; /* first hypernym offset, 0 = none */
} synset_t;

typedef struct qset {
    char *q[MAXQ];
    int label[MAXQ];
    int n, ngroups;
    char names[64][24]; /* each group's first lemma */
} qset_t;

static const char *const TEMPLATES[] = {
    "What is a %s?", "Can you tell me what a %s is?", "Define the word %s.", "Explain what %s means.",
    "I would like to know about the %s.", "Describe a %s for me.", "What does the word %s mean?",
    "Tell me about %s.", "Give me the meaning of %s.", "Please explain the %s to me.", "What exactly is a %s?",
    "How would you define %s?"};

static int seen(const qset_t *qs, const char *q)
{
    for (int i = 0; i < qs->n; i++)
        if (!strcmp(qs->q[i], q))
            return 1;
    return 0;
}

/* One data.noun line; 0 = a synset with >= 3 usable lemmas. */
static int parse_synset(char *line, synset_t *s)
{
    memset(s, 0, sizeof *s);
    char *save = NULL, *tok = strtok_r(line, " ", &save);
    if (!tok || line[0] == ' ')
        return 1;
    for (int i = 0; i < 2; i++) /* lex_filenum, ss_type */
        if (!strtok_r(NULL, " ", &save))
            return 1;
    char *w = strtok_r(NULL, " ", &save);
    int nw = w ? (int)strtol(w, NULL, 16) : 0, ok = 1;
    for (int i = 0; i < nw; i++) {
        char *lem = strtok_r(NULL, " ", &save);
        if (!lem || !strtok_r(NULL, " ", &save))
            return 1;
        int good = strlen(lem) >= 3 && strlen(lem) < 16;
        for (char *c = lem; *c && good; c++)
            good = *c >= 'a' && *c <= 'z';
        if (!good)
            ok &= !(lem[0] >= 'A' && lem[0] <= 'Z'); /* proper nouns: not this synset */
        else if (s->nlemma < 4)
            snprintf(s->lemma[s->nlemma++], sizeof s->lemma[0], "%s", lem);
    }
    char *p = strtok_r(NULL, " ", &save);
    int np = p ? atoi(p) : 0;
    for (int i = 0; i < np; i++) {
        char *sym = strtok_r(NULL, " ", &save), *off = strtok_r(NULL, " ", &save);
        strtok_r(NULL, " ", &save);
        strtok_r(NULL, " ", &save);
        if (sym && off && !strcmp(sym, "@") && !s->hyper)
            s->hyper = atol(off);
    }
    return ok && s->nlemma >= 3 && s->hyper ? 0 : 1;
}

static int cmp_hyper(const void *a, const void *b)
{
    const synset_t *x = a, *y = b;
    return (x->hyper > y->hyper) - (x->hyper < y->hyper);
}

static void qset_make(qset_t *qs)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/data.noun", O.wordnet);
    FILE *f = fopen(path, "r");
    if (!f)
        ss_bench_die("cannot read %s (Debian package wordnet-base)", path);
    int cap = 4096, n = 0;
    synset_t *all = malloc(sizeof *all * (size_t)cap);
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        if (n == cap)
            all = realloc(all, sizeof *all * (size_t)(cap *= 2));
        if (!parse_synset(line, &all[n]))
            n++;
    }
    free(line);
    fclose(f);
    qsort(all, (size_t)n, sizeof *all, cmp_hyper);
    /* sibling pairs: runs of one hypernym with >= 2 synsets, in a seeded order */
    int *start = malloc(sizeof(int) * (size_t)n), nruns = 0;
    for (int i = 0; i + 1 < n; i++)
        if (all[i].hyper == all[i + 1].hyper && (i == 0 || all[i - 1].hyper != all[i].hyper))
            start[nruns++] = i;
    rng = O.seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = nruns - 1; i > 0; i--) {
        int j = (int)(rnd() % (unsigned)(i + 1)), t = start[i];
        start[i] = start[j];
        start[j] = t;
    }
    qs->n = qs->ngroups = 0;
    for (int r = 0; r < nruns && qs->ngroups + 1 < O.groups + 1 && qs->ngroups < 64; r++) {
        for (int k = 0; k < 2 && qs->ngroups < O.groups; k++) {
            const synset_t *s = &all[start[r] + k];
            int g = qs->ngroups++;
            snprintf(qs->names[g], sizeof qs->names[g], "%s", s->lemma[0]);
            int nt = (int)SS_ARRAY_LEN(TEMPLATES), nc = s->nlemma * nt, *pick = malloc(sizeof(int) * (size_t)nc);
            for (int i = 0; i < nc; i++)
                pick[i] = i;
            for (int i = nc - 1; i > 0; i--) {
                int j = (int)(rnd() % (unsigned)(i + 1)), t = pick[i];
                pick[i] = pick[j];
                pick[j] = t;
            }
            for (int i = 0, m = 0; i < nc && m < O.per && qs->n < MAXQ; i++) {
                char q[160];
                snprintf(q, sizeof q, TEMPLATES[pick[i] % nt], s->lemma[pick[i] / nt]);
                if (seen(qs, q)) /* a lemma two synsets share: its questions belong to the first */
                    continue;
                qs->q[qs->n] = ss_strdup(q);
                qs->label[qs->n++] = g;
                m++;
            }
            free(pick);
        }
    }
    for (int i = qs->n - 1; i > 0; i--) { /* arrival order */
        int j = (int)(rnd() % (unsigned)(i + 1)), l = qs->label[i];
        char *t = qs->q[i];
        qs->q[i] = qs->q[j];
        qs->label[i] = qs->label[j];
        qs->q[j] = t;
        qs->label[j] = l;
    }
    free(start);
    free(all);
}

/* ------------------------------------------------------------------ one run */

static const char *DOC[2] = {"A dictionary explains what things are in one short sentence.",
                             "A children's dictionary explains what things are in simple words."};

typedef struct counting {
    ss_infer_backend_t base;
    ss_infer_backend_t *inner;
    int64_t gen;
} counting_t;

static int counting_run(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err,
                        size_t errsz)
{
    counting_t *c = (counting_t *)b;
    for (int i = 0; i < n; i++)
        c->gen += reqs[i].kind == SS_INFER_GENERATE;
    return c->inner->run(c->inner, reqs, n, res, err, errsz);
}

static void counting_destroy(ss_infer_backend_t *b)
{
    counting_t *c = (counting_t *)b;
    c->inner->destroy(c->inner);
    free(c->base.model_id);
    free(c);
}

typedef struct run {
    const char *emb; /* NULL: the baseline (REUSE off) */
    const char *judge; /* "text": the engine's answer agreement; "label": the synsets (reuse_label) */
    double delta;
    int64_t gen[2];  /* GENERATE requests: questions, document change */
    char **resp[2];  /* by question: after the questions, after the change */
    int *src[2];     /* by question: the question whose answer it reused (-1: generated) */
    ss_reuse_stats_t st, st2; /* after the questions, after the change */
    int64_t hits, wrong_label, wrong_answer, hits2, wrong_label2, wrong_answer2;
    double sec;
} run_t;

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

static ss_row_t *row2(int64_t id, const char *txt, int lab)
{
    ss_row_t *r = ss_row_new(lab >= 0 ? 3 : 2);
    ss_value_t a = ss_val_int(id), b = ss_val_text_ref(txt, strlen(txt)), c = ss_val_int(lab);
    ss_row_set(r, 0, &a);
    ss_row_set(r, 1, &b);
    if (lab >= 0)
        ss_row_set(r, 2, &c);
    return r;
}

/* The answers (and, with reuse, the sources) by question id (1..n). */
static void read_answers(sqlite3 *db, int n, char **resp, int *src)
{
    sqlite3_stmt *st = NULL;
    const char *sql = src ? "SELECT c.r, c.resp, s.r FROM st_3_ctx c LEFT JOIN st_3_ctx s ON s.seq = c.src WHERE c.w > 0"
                          : "SELECT c.r, c.resp, NULL FROM st_3_ctx c WHERE c.w > 0";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        ss_bench_die("read: %s", sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        ss_row_t *r = NULL, *s = NULL;
        if (ss_row_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &r))
            ss_bench_die("bad row");
        int64_t id = r->v[0].u.i;
        if (id >= 1 && id <= n) {
            resp[id - 1] = ss_strdup((const char *)sqlite3_column_text(st, 1));
            if (src && sqlite3_column_type(st, 2) != SQLITE_NULL &&
                !ss_row_decode(sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2), &s))
                src[id - 1] = (int)s->v[0].u.i - 1;
        }
        ss_row_free(r);
        ss_row_free(s);
    }
    sqlite3_finalize(st);
}

static void run_one(const qset_t *qs, ss_plan_node_t *c, ss_plan_node_t *d, run_t *R)
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
    ss_infer_backend_t *inner = ss_backend_local_new(O.model, 1, err, sizeof err);
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
    ss_embedder_t *emb = NULL;
    ss_embed_opts_t eo = {.kind = R->emb ? R->emb : "wink"};
    if (ss_embedder_open(&eo, &emb, err, sizeof err))
        ss_bench_die("embedder %s: %s (scripts/setup-embeddings.sh)", eo.kind, err);
    ss_op_ctx_t ctx = {.db = db, .disp = disp, .emb = emb};
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_LLM_GENERATE);
    n->id = 3;
    n->nin = 2;
    n->in[0] = c;
    n->in[1] = d;
    n->tmpl = fx_tmpl("Answer the question {q}", c->schema, NULL);
    n->schema = fx_schema("id:i,response:t,docs:t");
    char v[32];
    fx_opt(n, "retrieve", "1");
    snprintf(v, sizeof v, "%d", O.max_tokens);
    fx_opt(n, "max_tokens", v);
    if (R->emb) {
        fx_opt(n, "reuse", "semantic");
        snprintf(v, sizeof v, "%g", R->delta);
        fx_opt(n, "reuse_delta", v);
        snprintf(v, sizeof v, "%d", O.min_obs);
        fx_opt(n, "reuse_min_obs", v);
        if (O.equiv)
            fx_opt(n, "reuse_equiv", O.equiv);
        if (!strcmp(R->judge, "label"))
            fx_opt(n, "reuse_label", "lab");
    }
    ss_op_t *op = NULL;
    if (ss_op_new(n, &op, err, sizeof err) || op->vt->init(op, &ctx, err, sizeof err))
        ss_bench_die("operator: %s", err);
    ss_zset_t z;
    ss_zset_init(&z);
    ss_zset_add(&z, row2(1, DOC[0], -1), 1);
    apply(op, &ctx, 1, &z);
    int64_t t0 = ss_now_ns();
    for (int i = 0; i < qs->n; i++) { /* one question per batch */
        ss_zset_add(&z, row2(i + 1, qs->q[i], qs->label[i]), 1);
        apply(op, &ctx, 0, &z);
    }
    R->sec = (double)(ss_now_ns() - t0) / 1e9;
    R->gen[0] = cb->gen;
    R->resp[0] = calloc((size_t)qs->n, sizeof(char *));
    for (int k = 0; k < 2; k++) {
        R->src[k] = malloc(sizeof(int) * (size_t)qs->n);
        for (int i = 0; i < qs->n; i++)
            R->src[k][i] = -1;
    }
    read_answers(db, qs->n, R->resp[0], R->emb ? R->src[0] : NULL);
    if (R->emb)
        ss_reuse_stats(db, 3, &R->st);
    /* the document changes: every answer is revisited */
    ss_zset_add(&z, row2(1, DOC[0], -1), -1);
    ss_zset_add(&z, row2(1, DOC[1], -1), 1);
    apply(op, &ctx, 1, &z);
    R->gen[1] = cb->gen - R->gen[0];
    R->resp[1] = calloc((size_t)qs->n, sizeof(char *));
    read_answers(db, qs->n, R->resp[1], R->emb ? R->src[1] : NULL);
    if (R->emb) {
        ss_reuse_stats(db, 3, &R->st2);
        ss_buf_t b = SS_BUF_INIT; /* what EXPLAIN VIEW shows */
        ss_llm_generate_describe(db, n, 0, &b);
        fprintf(stderr, "%s", ss_buf_cstr(&b));
        ss_buf_free(&b);
    }
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    ss_plan_node_free(n);
    ss_embedder_destroy(emb);
    ss_dispatch_close(disp);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
}

static void score(const qset_t *qs, const run_t *base, run_t *r)
{
    for (int i = 0; i < qs->n; i++) {
        const char *a = r->resp[0][i] ? r->resp[0][i] : "", *b = base->resp[0][i] ? base->resp[0][i] : "";
        if (r->src[0][i] >= 0) {
            r->hits++;
            r->wrong_label += qs->label[r->src[0][i]] != qs->label[i];
        }
        if (r->src[1][i] >= 0) {
            r->hits2++;
            r->wrong_label2 += qs->label[r->src[1][i]] != qs->label[i];
        }
        r->wrong_answer += strcmp(a, b) != 0;
        a = r->resp[1][i] ? r->resp[1][i] : "";
        b = base->resp[1][i] ? base->resp[1][i] : "";
        r->wrong_answer2 += strcmp(a, b) != 0;
    }
}

/* How often two questions of one synset get the same answer when each is generated: what the
 * engine's agreement check can see with this model. */
static double label_consistency(const qset_t *qs, const run_t *base)
{
    int64_t same = 0, pairs = 0;
    for (int i = 0; i < qs->n; i++)
        for (int j = i + 1; j < qs->n; j++)
            if (qs->label[i] == qs->label[j]) {
                pairs++;
                same += ss_reuse_same_text(base->resp[0][i], base->resp[0][j]);
            }
    return pairs ? (double)same / pairs : 0;
}

static double cross_consistency(const qset_t *qs, const run_t *base)
{
    int64_t same = 0, pairs = 0;
    for (int i = 0; i < qs->n; i++)
        for (int j = i + 1; j < qs->n; j++)
            if (qs->label[i] != qs->label[j]) {
                pairs++;
                same += ss_reuse_same_text(base->resp[0][i], base->resp[0][j]);
            }
    return pairs ? (double)same / pairs : 0;
}

static void parse_list(const char *v, int max, double *d, const char **s, int *n)
{
    char *dup = ss_strdup(v), *save = NULL;
    *n = 0;
    for (char *t = strtok_r(dup, ",", &save); t && *n < max; t = strtok_r(NULL, ",", &save)) {
        if (d)
            d[*n] = strtod(t, NULL);
        else
            s[*n] = ss_strdup(t);
        (*n)++;
    }
    free(dup);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            ss_bench_die("usage: bench_reuse [--model PATH] [--groups G] [--per P] [--deltas 0.01,0.05] [--embedders wink,use] "
                "[--judges text,label] [--max-tokens M] [--min-obs N] [--equiv X] [--seed N] [--wordnet DIR] [--out FILE]");
        if (!strcmp(a, "--model")) O.model = v;
        else if (!strcmp(a, "--groups")) O.groups = SS_MAX(2, SS_MIN(64, atoi(v)));
        else if (!strcmp(a, "--per")) O.per = SS_MAX(1, atoi(v));
        else if (!strcmp(a, "--deltas")) parse_list(v, MAXD, O.deltas, NULL, &O.ndelta);
        else if (!strcmp(a, "--embedders")) parse_list(v, 4, NULL, O.emb, &O.nemb);
        else if (!strcmp(a, "--judges")) parse_list(v, 2, NULL, O.judge, &O.njudge);
        else if (!strcmp(a, "--max-tokens")) O.max_tokens = atoi(v);
        else if (!strcmp(a, "--min-obs")) O.min_obs = atoi(v);
        else if (!strcmp(a, "--equiv")) O.equiv = v;
        else if (!strcmp(a, "--seed")) O.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--wordnet")) O.wordnet = v;
        else if (!strcmp(a, "--out")) O.out = v;
        else ss_bench_die("unknown option %s", a);
        i++;
    }
    static char model[1200], outp[1200];
    if (!O.model) {
        const char *env = getenv("SS_SOURCE_DIR");
        char src[1024];
        snprintf(src, sizeof src, "%s", env ? env : __FILE__);
        char *p = env ? NULL : strstr(src, "/bench/reuse.c");
        if (p)
            *p = 0;
        snprintf(model, sizeof model, "%s/../shared/models/stories260K.gguf", src);
        O.model = model;
    }
    if (!O.out)
        O.out = ss_bench_result_path("reuse.json", outp, sizeof outp);
    (void)fx_memo_rows;
    setenv("OMP_NUM_THREADS", "1", 0);
    qset_t qs;
    qset_make(&qs);
    ss_plan_node_t *c = ss_plan_node_new(SS_PN_SOURCE), *d = ss_plan_node_new(SS_PN_SOURCE);
    c->id = 1;
    c->schema = fx_schema("id:i:key,q:t,lab:i");
    d->id = 2;
    d->schema = fx_schema("did:i:key,body:t");
    int nr = 1 + O.njudge * O.nemb * O.ndelta, k = 1;
    run_t *R = calloc((size_t)nr, sizeof *R);
    for (int j = 0; j < O.njudge; j++)
        for (int e = 0; e < O.nemb; e++)
            for (int x = 0; x < O.ndelta; x++, k++) {
                R[k].judge = O.judge[j];
                R[k].emb = O.emb[e];
                R[k].delta = O.deltas[x];
            }
    for (int i = 0; i < nr; i++) {
        fprintf(stderr, "run %d/%d: %s %s delta %g ...\n", i + 1, nr, R[i].emb ? R[i].emb : "regenerate all",
                R[i].judge ? R[i].judge : "", R[i].delta);
        run_one(&qs, c, d, &R[i]);
    }
    for (int i = 1; i < nr; i++)
        score(&qs, &R[0], &R[i]);
    double same_in = label_consistency(&qs, &R[0]), same_out = cross_consistency(&qs, &R[0]);
    printf("bench_reuse: %d questions in %d WordNet synsets (%d per synset, sibling pairs), stories260K, max_tokens %d, "
           "min_obs %d, one question per batch, then one document change\n",
           qs.n, qs.ngroups, O.per, O.max_tokens, O.min_obs);
    printf("baseline answers: same-synset pairs with equal answers %.3f, other pairs %.3f\n", same_in, same_out);
    printf("%-5s %-6s %5s %5s %5s %6s %7s %5s %6s %7s %7s %7s %7s %7s %7s %7s\n", "judge", "embed", "delta", "gen",
           "hits", "hit_rt", "explore", "agree", "disagr", "est_err", "lab_err", "ans_err", "gen_chg", "lab_chg",
           "err_chg", "time_s");
    FILE *f = fopen(O.out, "w");
    if (!f)
        ss_bench_die("cannot write %s", O.out);
    fprintf(f, "{\"bench\": \"reuse\", \"model\": \"%s\", \"questions\": %d, \"synsets\": %d, \"per_synset\": %d, "
               "\"max_tokens\": %d, \"min_obs\": %d, \"equiv\": \"%s\", \"seed\": %llu, "
               "\"same_synset_equal_answers\": %.4f, \"other_pairs_equal_answers\": %.4f, \"runs\": [",
            O.model, qs.n, qs.ngroups, O.per, O.max_tokens, O.min_obs, O.equiv ? O.equiv : "text",
            (unsigned long long)O.seed, same_in, same_out);
    for (int i = 0; i < nr; i++) {
        run_t *r = &R[i];
        double N = qs.n, reused = r->st.hits + r->st.identical;
        printf("%-5s %-6s %5.3g %5lld %5lld %6.3f %7.0f %5.0f %6.0f %7.4f %7.4f %7.4f %7lld %7.4f %7.4f %7.1f\n",
               r->judge ? r->judge : "-", r->emb ? r->emb : "off", r->delta, (long long)r->gen[0],
               (long long)r->hits, r->hits / N, r->st.explorations, r->st.agreed, r->st.disagreed,
               reused > 0 ? r->st.est_err_sum / reused : 0, r->wrong_label / N, r->wrong_answer / N,
               (long long)r->gen[1], r->wrong_label2 / N, r->wrong_answer2 / N, r->sec);
        fprintf(f,
                "%s{\"judge\": %s%s%s, \"embedder\": %s%s%s, \"delta\": %g, \"generate_requests\": %lld, \"reuses\": %lld, "
                "\"hit_rate\": %.4f, \"explorations\": %.0f, \"agreed\": %.0f, \"disagreed\": %.0f, \"misses\": %.0f, "
                "\"identical\": %.0f, \"entries\": %lld, \"estimated_error\": %.4f, \"label_error_rate\": %.4f, "
                "\"answer_error_rate\": %.4f, \"change_generate_requests\": %lld, \"change_followed\": %.0f, "
                "\"change_answer_error_rate\": %.4f, \"change_reuses\": %lld, \"change_label_error_rate\": %.4f, "
                "\"seconds\": %.3f}",
                i ? ", " : "", r->judge ? "\"" : "", r->judge ? r->judge : "null", r->judge ? "\"" : "",
                r->emb ? "\"" : "", r->emb ? r->emb : "null", r->emb ? "\"" : "", r->delta,
                (long long)r->gen[0], (long long)r->hits, r->hits / N, r->st.explorations, r->st.agreed,
                r->st.disagreed, r->st.misses, r->st.identical, (long long)r->st.entries,
                reused > 0 ? r->st.est_err_sum / reused : 0, r->wrong_label / N, r->wrong_answer / N,
                (long long)r->gen[1], r->st2.followed - r->st.followed, r->wrong_answer2 / N, (long long)r->hits2,
                r->wrong_label2 / N, r->sec);
    }
    fprintf(f, "]}\n");
    fclose(f);
    printf("(gen: GENERATE requests for the questions; hits: reused answers; lab_err: reuses of another synset's "
           "answer / questions; ans_err: answers unequal to the baseline's / questions; gen_chg, lab_chg, err_chg: "
           "the same after the document change; est_err: the engine's own estimate, mean 1 - P(correct) of its "
           "reuses)\nwrote %s\n",
           O.out);
    for (int i = 0; i < nr; i++) {
        for (int k = 0; k < 2; k++) {
            for (int q = 0; q < qs.n; q++)
                free(R[i].resp[k][q]);
            free(R[i].resp[k]);
        }
        free(R[i].src[0]);
        free(R[i].src[1]);
    }
    free(R);
    for (int i = 0; i < qs.n; i++)
        free(qs.q[i]);
    ss_plan_node_free(c);
    ss_plan_node_free(d);
    return 0;
}
