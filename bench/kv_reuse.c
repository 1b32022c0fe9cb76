/*
 * kv_reuse.c — bench_kv_reuse: KV reuse beyond the prefix (LLM_GENERATE KV_REUSE = 'chunks',
 * issue 17 §2, CacheBlend) against a full prefill and against prefix reuse, in the same run, on
 * the CPU engine.
 *
 * Workload (seeded): a pool of --pool documents of about L tokens each (sentences of a small
 * story vocabulary, "<doc>...</doc>"); each of --queries prompts is an instruction, k documents
 * drawn from the pool in random order, and a question. For every (k, L) of --chunks x
 * --doc-tokens that fits the model's context (others are reported as skipped), each prompt is
 * prefilled by three engines holding the same model:
 * - full: no reuse at all (the reference);
 * - prefix: the prefix cache, warm from the earlier prompts of the run (their instruction and
 *   any common leading documents);
 * - chunks: the chunk cache, warm with every document of the pool (filled once before, its cost
 *   reported separately), at each --fracs recompute fraction.
 * Reported per mode: prefill work in token-layers / layers (tokens computed, the blended tokens'
 * first layer and the recomputed tokens' later layers; the check layer's K/V projection of every
 * blended token is not counted), time to first token (a call that prefills and computes the
 * first position's logits; wall clock, mean and median over the prompts, and the thread's CPU
 * time, which with one engine thread leaves out waiting for a core on a loaded machine), and
 * fidelity against full (the answer comes from a second call): greedy answers
 * of --max-new tokens equal, the first decoded token equal, and the KL divergence
 * KL(full || mode) of the first decoded position (mean and max).
 *
 * Usage: bench_kv_reuse [--model PATH] [--label TEXT] [--out FILE] [--chunks 2,4,8]
 *                       [--doc-tokens 200,500,1000] [--fracs 0,0.15,0.3,1] [--pool D] [--queries Q]
 *                       [--max-new N] [--threads T] [--seed S]
 * Writes JSON to --out (default bench/results/kv_reuse.json under the source tree).
 */
#include "ss_bench_util.h"
#include "ss_llm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXL 16
static struct {
    const char *model, *label, *out, *chunks, *doc_tokens, *fracs;
    int pool, queries, max_new, threads;
    uint64_t seed;
} O = {NULL, "stories260K", NULL, "2,4,8", "200,500,1000", "0,0.15,0.3,1", 12, 6, 16, 1, 7};

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int list(const char *s, double *out)
{
    int n = 0;
    for (const char *p = s; p && *p && n < MAXL; n++) {
        char *e;
        out[n] = strtod(p, &e);
        if (e == p)
            ss_bench_die("bad list '%s'", s);
        p = *e == ',' ? e + 1 : e;
    }
    return n;
}

static const char *NAMES[] = {"Lily", "Tom", "Sue", "Ben", "Mia", "Max", "Anna", "Sam"};
static const char *THINGS[] = {"ball", "bone", "kite", "box", "hat", "cake", "book", "shell"};
static const char *PLACES[] = {"park", "garden", "house", "tree", "river", "school", "shop", "beach"};
static const char *FEEL[] = {"happy", "sad", "tired", "glad", "proud", "scared"};
#define PICK(a, s) (a[rnd(s) % (sizeof a / sizeof *a)])

static const char *INSTR = "You answer questions about short stories. Read the documents below and answer the "
                           "question in one short sentence, using only what the documents say.\n### Documents\n";

/* Appends tokens of text to t (no BOS). */
static int add_text(ss_llm_t *m, const char *text, int *t, int n, int cap)
{
    int k = ss_llm_tokenize(m, text, 0, t + n, cap - n);
    if (k < 0 || n + k > cap)
        ss_bench_die("tokenizing: out of room");
    return n + k;
}

/* A document of about L tokens (tokenized on its own). */
static int make_doc(ss_llm_t *m, int L, uint64_t *s, int *t, int cap)
{
    char *body = calloc(1, 64);
    size_t len = 0, bcap = 64;
    int n = 0;
    for (;;) {
        char sent[200];
        snprintf(sent, sizeof sent, "%s went to the %s with a %s and felt %s. ", PICK(NAMES, s), PICK(PLACES, s),
                 PICK(THINGS, s), PICK(FEEL, s));
        size_t sl = strlen(sent);
        if (len + sl + 32 > bcap) {
            bcap = 2 * (len + sl + 32);
            body = realloc(body, bcap);
        }
        memcpy(body + len, sent, sl + 1);
        len += sl;
        char *doc = malloc(len + 32);
        snprintf(doc, len + 32, "<doc>\n%s\n</doc>\n", body);
        n = ss_llm_tokenize(m, doc, 0, t, cap);
        free(doc);
        if (n >= L - 12 || n >= cap)
            break;
    }
    free(body);
    if (n > cap)
        ss_bench_die("document too long");
    return n;
}

typedef struct mode_res {
    const char *mode;
    double frac;
    double work, ttft, ttft_med, cpu, kl_mean, kl_max;
    int answers_equal, first_equal, n;
    double *ttfts;
} mode_res_t;

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double kl(const float *p, const float *q, int v)
{
    double mp = -INFINITY, mq = -INFINITY, sp = 0, sq = 0, k = 0;
    for (int i = 0; i < v; i++)
        mp = fmax(mp, p[i]), mq = fmax(mq, q[i]);
    for (int i = 0; i < v; i++)
        sp += exp(p[i] - mp), sq += exp(q[i] - mq);
    for (int i = 0; i < v; i++) {
        double lp = p[i] - mp - log(sp), lq = q[i] - mq - log(sq);
        k += exp(lp) * (lp - lq);
    }
    return fmax(k, 0);
}

/* Prefill work of the stats difference, in token-layers / layers. */
static double work_of(const ss_llm_stats_t *a, const ss_llm_stats_t *b, int layers)
{
    return (double)(b->tokens_computed - a->tokens_computed) +
           ((double)(b->blend_tokens - a->blend_tokens) + (double)(layers - 1) * (b->blend_computed - a->blend_computed)) /
               layers;
}

typedef struct eng {
    ss_llm_t *full, *prefix, *chunks;
} eng_t;

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* One prompt on one engine: time to first token (wall, and this thread's CPU time: with one
 * engine thread every pass runs here, so it does not count waiting for a core on a loaded
 * machine) and prefill work of the prefill alone, then the greedy answer in a second call. */
static void run_one(ss_llm_t *m, const int *t, int n, const int *span, int nch, double frac, float *logits, int *ans,
                    int *nans, double *ttft, double *cpu, double *work)
{
    char err[SS_ERRSZ] = "";
    ss_llm_stats_t a, b;
    int first;
    ss_llm_stats(m, &a);
    double w0 = ss_bench_now_s(), c0 = cpu_s();
    if (ss_llm_chunk_greedy(m, t, n, span, nch, (float)frac, 1, &first, logits, NULL, err, sizeof err) < 0)
        ss_bench_die("prefill: %s", err);
    *cpu = cpu_s() - c0;
    *ttft = ss_bench_now_s() - w0;
    ss_llm_stats(m, &b);
    *work = work_of(&a, &b, ss_llm_config(m)->n_layers); /* max_new 1: no decode step ran */
    *nans = ss_llm_chunk_greedy(m, t, n, span, nch, (float)frac, O.max_new, ans, NULL, NULL, err, sizeof err);
    if (*nans < 0)
        ss_bench_die("generate: %s", err);
}

typedef struct cfg_res {
    int k, L, prompt_tokens, skipped, ctx_need;
    double fill_tokens, fill_ms;
    int nmode;
    mode_res_t mode[MAXL + 2];
} cfg_res_t;

static void run_config(eng_t *E, int k, int L, const double *fr, int nfr, cfg_res_t *R)
{
    ss_llm_t *m = E->full;
    const ss_llm_config_t *g = ss_llm_config(m);
    int v = g->vocab_size, cap = g->ctx_len + 64;
    uint64_t s = O.seed * 1000003 + (uint64_t)k * 131 + (uint64_t)L;
    memset(R, 0, sizeof *R);
    R->k = k, R->L = L;
    int instr[256], ni = add_text(m, INSTR, instr, 0, 256);
    int need = 1 + ni + k * L + 20; /* (decoding stops at the end of the context) */
    R->ctx_need = need;
    if (need > g->ctx_len || k > O.pool) {
        R->skipped = 1;
        printf("  %d chunks x %d tokens: skipped (needs ~%d tokens, the context is %d; pool %d)\n", k, L, need,
               g->ctx_len, O.pool);
        return;
    }
    int **doc = calloc((size_t)O.pool, sizeof *doc), *dn = calloc((size_t)O.pool, sizeof *dn);
    for (int d = 0; d < O.pool; d++) {
        doc[d] = malloc((size_t)(L + 64) * sizeof(int));
        dn[d] = make_doc(m, L, &s, doc[d], L + 64);
    }
    int *t = malloc((size_t)cap * sizeof *t), span[2 * 64], nt;
    /* warm: pack weights everywhere, the instruction into both prefix caches, every document of the
     * pool into the chunk cache (its cost reported apart) */
    ss_llm_stats_t a, b;
    ss_llm_stats(E->chunks, &a);
    double fill = 0;
    for (int d = 0; d < O.pool; d++) {
        nt = 0;
        t[nt++] = g->bos >= 0 ? g->bos : 0;
        memcpy(t + nt, instr, (size_t)ni * sizeof *t), nt += ni;
        span[0] = nt;
        memcpy(t + nt, doc[d], (size_t)dn[d] * sizeof *t), nt += dn[d];
        span[1] = nt;
        nt = add_text(m, "### Question\nWho is in the story?\n### Answer:", t, nt, cap);
        float *lg = malloc((size_t)v * sizeof *lg);
        char err[SS_ERRSZ];
        double t1 = ss_bench_now_s();
        if (ss_llm_chunk_logits(E->chunks, t, nt, span, 1, 0.0f, lg, err, sizeof err))
            ss_bench_die("%s", err);
        fill += ss_bench_now_s() - t1;
        if (d == 0 && (ss_llm_chunk_logits(E->prefix, t, nt, NULL, 0, 0, lg, err, sizeof err) ||
                       ss_llm_chunk_logits(E->full, t, nt, NULL, 0, 0, lg, err, sizeof err)))
            ss_bench_die("%s", err);
        free(lg);
    }
    ss_llm_stats(E->chunks, &b);
    R->fill_tokens = (double)(b.chunk_tokens - a.chunk_tokens) / O.pool;
    R->fill_ms = fill * 1e3 / O.pool;
    R->nmode = 2 + nfr;
    R->mode[0].mode = "full";
    R->mode[1].mode = "prefix";
    for (int f = 0; f < nfr; f++)
        R->mode[2 + f] = (mode_res_t){.mode = "chunks", .frac = fr[f]};
    for (int i = 0; i < R->nmode; i++)
        R->mode[i].ttfts = calloc((size_t)O.queries, sizeof(double));
    float *lf = malloc((size_t)v * sizeof *lf), *lm = malloc((size_t)v * sizeof *lm);
    int *af = malloc((size_t)(O.max_new + 1) * sizeof *af), *am = malloc((size_t)(O.max_new + 1) * sizeof *am);
    long ptok = 0;
    for (int q = 0; q < O.queries; q++) {
        int perm[256];
        for (int d = 0; d < O.pool; d++)
            perm[d] = d;
        for (int i = 0; i < k; i++) { /* k distinct documents in random order */
            int j = i + (int)(rnd(&s) % (uint64_t)(O.pool - i)), x = perm[i];
            perm[i] = perm[j], perm[j] = x;
        }
        nt = 0;
        t[nt++] = g->bos >= 0 ? g->bos : 0;
        memcpy(t + nt, instr, (size_t)ni * sizeof *t), nt += ni;
        for (int i = 0; i < k; i++) {
            span[2 * i] = nt;
            memcpy(t + nt, doc[perm[i]], (size_t)dn[perm[i]] * sizeof *t), nt += dn[perm[i]];
            span[2 * i + 1] = nt;
        }
        char qs[160];
        snprintf(qs, sizeof qs, "### Question\nWhat did %s find at the %s?\n### Answer:", PICK(NAMES, &s),
                 PICK(PLACES, &s));
        nt = add_text(m, qs, t, nt, cap);
        ptok += nt;
        int nf, nm;
        double tt, w, cp;
        run_one(E->full, t, nt, NULL, 0, 0, lf, af, &nf, &tt, &cp, &w);
        R->mode[0].work += w, R->mode[0].ttfts[q] = tt, R->mode[0].cpu += cp;
        R->mode[0].answers_equal++, R->mode[0].first_equal++;
        for (int i = 1; i < R->nmode; i++) {
            mode_res_t *M = &R->mode[i];
            run_one(i == 1 ? E->prefix : E->chunks, t, nt, i == 1 ? NULL : span, i == 1 ? 0 : k, M->frac, lm, am, &nm,
                    &tt, &cp, &w);
            double d = kl(lf, lm, v);
            M->work += w, M->ttfts[q] = tt, M->cpu += cp, M->kl_mean += d, M->kl_max = fmax(M->kl_max, d);
            M->answers_equal += nm == nf && !memcmp(am, af, (size_t)nf * sizeof *af);
            M->first_equal += nm > 0 && nf > 0 && am[0] == af[0];
        }
    }
    R->prompt_tokens = (int)(ptok / O.queries);
    for (int i = 0; i < R->nmode; i++) {
        mode_res_t *M = &R->mode[i];
        M->n = O.queries;
        M->work /= O.queries, M->kl_mean /= O.queries, M->cpu /= O.queries;
        for (int q = 0; q < O.queries; q++)
            M->ttft += M->ttfts[q] / O.queries;
        qsort(M->ttfts, (size_t)O.queries, sizeof(double), dcmp);
        M->ttft_med = M->ttfts[O.queries / 2];
    }
    printf("  %d chunks x %d tokens (prompt ~%d tokens; a document fills the chunk cache once: %.0f tokens, "
           "%.1f ms):\n", k, L, R->prompt_tokens, R->fill_tokens, R->fill_ms);
    printf("    %-14s %12s %8s %12s %9s %11s %9s %9s %10s %10s\n", "mode", "prefill work", "x full", "TTFT mean ms",
           "x faster", "TTFT cpu ms", "x faster", "answers=", "first tok=", "KL mean");
    for (int i = 0; i < R->nmode; i++) {
        mode_res_t *M = &R->mode[i];
        char name[32];
        snprintf(name, sizeof name, i < 2 ? "%s" : "%s %.2f", M->mode, M->frac);
        printf("    %-14s %12.1f %8.3f %12.2f %9.2f %11.2f %9.2f %6d/%-2d %7d/%-2d %10.2e\n", name, M->work,
               M->work / R->mode[0].work, M->ttft * 1e3, R->mode[0].ttft / M->ttft, M->cpu * 1e3,
               R->mode[0].cpu / M->cpu, M->answers_equal, M->n, M->first_equal, M->n, M->kl_mean);
    }
    for (int d = 0; d < O.pool; d++)
        free(doc[d]);
    free(doc), free(dn), free(t), free(lf), free(lm), free(af), free(am);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            ss_bench_die("usage: bench_kv_reuse [--model PATH] [--label TEXT] [--out FILE] [--chunks 2,4,8] "
                "[--doc-tokens 200,500,1000] [--fracs 0,0.15,0.3,1] [--pool D] [--queries Q] [--max-new N] "
                "[--threads T] [--seed S]");
        if (!strcmp(a, "--model")) O.model = v;
        else if (!strcmp(a, "--label")) O.label = v;
        else if (!strcmp(a, "--out")) O.out = v;
        else if (!strcmp(a, "--chunks")) O.chunks = v;
        else if (!strcmp(a, "--doc-tokens")) O.doc_tokens = v;
        else if (!strcmp(a, "--fracs")) O.fracs = v;
        else if (!strcmp(a, "--pool")) O.pool = atoi(v);
        else if (!strcmp(a, "--queries")) O.queries = atoi(v);
        else if (!strcmp(a, "--max-new")) O.max_new = atoi(v);
        else if (!strcmp(a, "--threads")) O.threads = atoi(v);
        else if (!strcmp(a, "--seed")) O.seed = strtoull(v, NULL, 10);
        else ss_bench_die("unknown option %s", a);
        i++;
    }
    if (O.pool < 1 || O.pool > 256 || O.queries < 1 || O.max_new < 1)
        ss_bench_die("--pool 1..256, --queries >= 1, --max-new >= 1");
}

static ss_llm_t *open_model(int no_prefix)
{
    char err[SS_ERRSZ] = "";
    ss_llm_opts_t lo = {.threads = O.threads, .raw_prompts = 1, .no_prefix_cache = no_prefix,
                        .chunk_cache_bytes = (size_t)1 << 30};
    ss_llm_t *m = NULL;
    if (ss_llm_open(O.model, &lo, &m, err, sizeof err))
        ss_bench_die("%s", err);
    return m;
}

static void json_cfg(FILE *f, const cfg_res_t *R)
{
    fprintf(f, "{\"chunks\":%d,\"doc_tokens\":%d,", R->k, R->L);
    if (R->skipped) {
        fprintf(f, "\"skipped\":\"needs about %d tokens\"}", R->ctx_need);
        return;
    }
    fprintf(f, "\"prompt_tokens\":%d,\"chunk_fill_tokens_per_doc\":%.1f,\"chunk_fill_ms_per_doc\":%.3f,\"modes\":[",
            R->prompt_tokens, R->fill_tokens, R->fill_ms);
    for (int i = 0; i < R->nmode; i++) {
        const mode_res_t *M = &R->mode[i];
        fprintf(f, "%s{\"mode\":\"%s\",", i ? "," : "", M->mode);
        if (i >= 2)
            fprintf(f, "\"recompute\":%.3f,", M->frac);
        fprintf(f, "\"prefill_work\":%.1f,\"work_vs_full\":%.4f,\"ttft_mean_ms\":%.3f,\"ttft_median_ms\":%.3f,"
                   "\"ttft_speedup_vs_full\":%.3f,\"ttft_cpu_ms\":%.3f,\"ttft_cpu_speedup_vs_full\":%.3f,"
                   "\"answers_equal\":%d,\"first_token_equal\":%d,\"prompts\":%d,"
                   "\"kl_mean\":%.6g,\"kl_max\":%.6g}",
                M->work, M->work / R->mode[0].work, M->ttft * 1e3, M->ttft_med * 1e3, R->mode[0].ttft / M->ttft,
                M->cpu * 1e3, R->mode[0].cpu / M->cpu, M->answers_equal, M->first_equal, M->n, M->kl_mean, M->kl_max);
    }
    fprintf(f, "]}");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    static char src[1024], model[1200], outp[1200];
    const char *env = getenv("SS_SOURCE_DIR");
    snprintf(src, sizeof src, "%s", env ? env : __FILE__);
    char *p = env ? NULL : strstr(src, "/bench/kv_reuse.c");
    if (p)
        *p = 0;
    if (!O.model) {
        snprintf(model, sizeof model, "%s/../shared/models/stories260K.gguf", src);
        O.model = model;
    }
    if (!O.out) {
        snprintf(outp, sizeof outp, "%s/bench/results/kv_reuse.json", src);
        O.out = outp;
    }
    double ks[MAXL], ls[MAXL], fr[MAXL];
    int nk = list(O.chunks, ks), nl = list(O.doc_tokens, ls), nf = list(O.fracs, fr);
    eng_t E = {open_model(1), open_model(0), open_model(0)};
    const ss_llm_config_t *g = ss_llm_config(E.full);
    printf("bench_kv_reuse: %s (%d layers, context %d), pool %d documents, %d prompts per config, %d-token answers, "
           "%d thread(s)\n", O.label, g->n_layers, g->ctx_len, O.pool, O.queries, O.max_new, O.threads);
    cfg_res_t *R = calloc((size_t)(nk * nl), sizeof *R);
    for (int a = 0; a < nk; a++)
        for (int b = 0; b < nl; b++)
            run_config(&E, (int)ks[a], (int)ls[b], fr, nf, &R[a * nl + b]);
    FILE *f = fopen(O.out, "w");
    if (!f)
        ss_bench_die("cannot write %s", O.out);
    fprintf(f, "{\"bench\":\"kv_reuse\",\"label\":\"%s\",\"model\":\"%s\",\"layers\":%d,\"ctx_len\":%d,\"pool\":%d,"
               "\"queries\":%d,\"max_new\":%d,\"threads\":%d,\"seed\":%llu,\"configs\":[",
            O.label, ss_llm_id(E.full), g->n_layers, g->ctx_len, O.pool, O.queries, O.max_new, O.threads,
            (unsigned long long)O.seed);
    for (int i = 0; i < nk * nl; i++) {
        if (i)
            fputc(',', f);
        json_cfg(f, &R[i]);
        for (int j = 0; j < R[i].nmode; j++)
            free(R[i].mode[j].ttfts);
    }
    fprintf(f, "]}\n");
    fclose(f);
    printf("wrote %s\n", O.out);
    free(R);
    ss_llm_close(E.full);
    ss_llm_close(E.prefix);
    ss_llm_close(E.chunks);
    return 0;
}
