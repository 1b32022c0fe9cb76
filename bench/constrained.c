/*
 * constrained.c — bench_constrained: what constrained decoding (gpu/grammar.c,
 * GENERATE with json_schema) costs per generated token, against unconstrained
 * greedy decoding of the same prompts by the same engine in the same run.
 *
 * For each model: a batch of prompts is decoded under a JSON schema (greedy); then
 * the same prompts unconstrained with max_tokens set to each constrained answer's
 * token count, so both runs decode the same number of tokens per sequence, with the
 * same batch at every step. The overhead is the ratio of the CPU time per generated
 * token of the two runs (the process's CPU time: what the decoding itself costs,
 * whatever else the machine runs; prompts are cached after the first run, so both
 * runs prefill alike), the median over --reps pairs run in alternating order; the
 * wall time of the decode steps (ss_llm_stats) is reported next to it. One thread
 * by default (--threads): the sampler runs on the engine's thread, so with T
 * threads for the forward pass the wall-time overhead is about T times the CPU one. A first constrained run builds the grammar's token tables (the cost of
 * a new schema, reported apart: "cold"); the measured runs find them built, as every
 * row after the first of a SEM_EXTRACT does. The sampler alone (pick + advance on the
 * run's logits) is also timed, per token, outside the model.
 *
 * Models: the real stories260K (vocabulary 512), and random-weight models in a real
 * model's shape written by gpu/mkmodel.c (vocabulary 49,152 for smollm2-135m): there
 * the model's own argmax is almost never a token the schema allows, so every step
 * scans the vocabulary (the worst case for the sampler).
 *
 *   bench_constrained [--shapes stories260K,smollm2-135m] [--layers N] [--batch B]
 *                     [--reps R] [--threads T] [--dir /tmp] [--out FILE]
 */
#include "llm_internal.h"
#include "ss_bench_util.h"
#include "ss_gguf.h"
#include "ss_jschema.h"
#include "ss_llm.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *SCHEMA_COLS = "name TEXT, age INT, city TEXT, score REAL, member BOOLEAN";

static const char *PROMPTS[] = {
    "### Task\nExtract the fields as JSON.\n### Input\n<txt>Lily is 6 and lives in a small town. She loves cats.</txt>\n### Answer:",
    "### Task\nExtract the fields as JSON.\n### Input\n<txt>Tom found a red ball in the park near the big tree.</txt>\n### Answer:",
    "### Task\nExtract the fields as JSON.\n### Input\n<txt>Once upon a time a bird sang every morning.</txt>\n### Answer:",
    "### Task\nExtract the fields as JSON.\n### Input\n<txt>Sam, 8, won the race and got a gold star.</txt>\n### Answer:",
    "### Task\nExtract the fields as JSON.\n### Input\n<txt>The old man fixed the boat and went fishing.</txt>\n### Answer:",
    "### Task\nExtract the fields as JSON.\n### Input\n<txt>Mia baked a cake for her mom's birthday.</txt>\n### Answer:",
    "### Task\nExtract the fields as JSON.\n### Input\n<txt>A little dog named Max liked to dig holes.</txt>\n### Answer:",
    "### Task\nExtract the fields as JSON.\n### Input\n<txt>Ben and Anna built a sand castle by the sea.</txt>\n### Answer:",
};

typedef struct run {
    double decode_ns, tokens; /* wall time of the decode steps, tokens they decoded */
    double cpu_ns;            /* CPU time of the whole process over the run (prompts are cached) */
} run_t;

static int64_t cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Runs reqs[0..n); returns the decode time and tokens of the run (stats difference). */
static int decode(ss_llm_t *m, ss_infer_req_t *reqs, int n, ss_infer_res_t *res, run_t *r)
{
    ss_llm_stats_t a, b;
    char err[SS_ERRSZ] = "";
    memset(res, 0, sizeof *res * (size_t)n);
    ss_llm_stats(m, &a);
    int64_t c0 = cpu_now_ns();
    if (ss_llm_run(m, reqs, n, res, err, sizeof err)) {
        fprintf(stderr, "bench_constrained: %s\n", err);
        return 1;
    }
    r->cpu_ns = (double)(cpu_now_ns() - c0);
    ss_llm_stats(m, &b);
    for (int i = 0; i < n; i++)
        if (res[i].status) {
            fprintf(stderr, "bench_constrained: request %d: %s\n", i, res[i].error ? res[i].error : "?");
            return 1;
        }
    r->decode_ns = (double)(b.decode_ns - a.decode_ns);
    r->tokens = (double)(b.decode_tokens - a.decode_tokens);
    return 0;
}

/* The sampler alone: replays pick + advance over random logits along the grammar for
 * ntok tokens (restarting at each complete value); ns per token. */
static double sampler_ns(ss_llm_t *m, const char *schema, int ntok)
{
    int v = ss_llm_config(m)->vocab_size;
    float *logits = malloc((size_t)v * sizeof *logits);
    uint64_t s = 42;
    for (int i = 0; i < v; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        logits[i] = (float)((s >> 40) & 0xffff) / 6553.6f;
    }
    gram_seq_t *q = NULL;
    char err[SS_ERRSZ];
    int done = 0, left = 400;
    int64_t t0 = ss_now_ns();
    for (int k = 0; k < ntok; k++) {
        if (!q || done) {
            gram_seq_free(q);
            q = NULL;
            if (gram_seq_new(m, schema, 400, &q, err, sizeof err))
                break;
            left = 400;
        }
        int t = gram_seq_pick(m, q, logits, -1, 0.0f, &s, --left);
        done = t < 0 || gram_seq_advance(m, q, t);
        logits[(unsigned)(t < 0 ? 0 : t) % (unsigned)v] -= 0.5f; /* vary the choices */
    }
    int64_t t1 = ss_now_ns();
    gram_seq_free(q);
    free(logits);
    return (double)(t1 - t0) / ntok;
}

static int bench_model(const char *label, const char *path, int threads, int batch, int reps, ss_buf_t *js,
                       int first, int *within)
{
    ss_llm_opts_t o = {.threads = threads};
    ss_llm_t *m = NULL;
    char err[SS_ERRSZ];
    if (ss_llm_open(path, &o, &m, err, sizeof err)) {
        fprintf(stderr, "bench_constrained: %s\n", err);
        return 1;
    }
    ss_jscol_t *cols = NULL;
    int nc = 0, off = 0;
    ss_jschema_t *sch = NULL;
    ss_buf_t schema = SS_BUF_INIT;
    if (ss_jscols_parse(SCHEMA_COLS, &cols, &nc, &off, err, sizeof err) || ss_jschema_from_cols(cols, nc, &sch) ||
        ss_jschema_write(sch, &schema))
        return 1;
    int n = SS_MIN(batch, (int)SS_ARRAY_LEN(PROMPTS));
    ss_infer_req_t con[8], unc[8];
    ss_infer_res_t res[8];
    for (int i = 0; i < n; i++) {
        con[i] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = PROMPTS[i], .max_tokens = 160,
                                  .json_schema = ss_buf_cstr(&schema)};
        unc[i] = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = PROMPTS[i]};
    }
    run_t cold, rc, ru;
    for (int i = 0; i < n; i++) /* warm-up: the prompts into the prefix cache, the weights into memory */
        unc[i].max_tokens = 2;
    if (decode(m, unc, n, res, &ru))
        return 1;
    for (int i = 0; i < n; i++)
        ss_infer_res_clear(&res[i]);
    if (decode(m, con, n, res, &cold))
        return 1;
    int gen = 0;
    for (int i = 0; i < n; i++) {
        unc[i].max_tokens = res[i].gen_tokens; /* the same number of tokens, unconstrained */
        gen += res[i].gen_tokens;
        if (i == 0)
            printf("  %s: first answer (%d tokens): %s\n", label, res[i].gen_tokens, res[i].text);
        ss_infer_res_clear(&res[i]);
    }
    double *tc = calloc((size_t)reps, sizeof *tc), *tu = calloc((size_t)reps, sizeof *tu);
    double *ratio = calloc((size_t)reps, sizeof *ratio), *cratio = calloc((size_t)reps, sizeof *cratio);
    double *cc = calloc((size_t)reps, sizeof *cc), *cu = calloc((size_t)reps, sizeof *cu);
    for (int r = 0; r < reps; r++) { /* pairs in alternating order; the machine may be shared */
        for (int k = 0; k < 2; k++) {
            int constrained = (k + r) % 2;
            if (decode(m, constrained ? con : unc, n, res, constrained ? &rc : &ru))
                return 1;
            for (int i = 0; i < n; i++) {
                if (!constrained && res[i].gen_tokens != unc[i].max_tokens)
                    unc[i].max_tokens = res[i].gen_tokens; /* stopped at EOS: match it next time */
                ss_infer_res_clear(&res[i]);
            }
        }
        tc[r] = rc.decode_ns / SS_MAX(rc.tokens, 1);
        tu[r] = ru.decode_ns / SS_MAX(ru.tokens, 1);
        ratio[r] = tc[r] / tu[r];
        cc[r] = rc.cpu_ns / SS_MAX(rc.tokens, 1);
        cu[r] = ru.cpu_ns / SS_MAX(ru.tokens, 1);
        cratio[r] = cc[r] / cu[r];
    }
    double mc = median(tc, reps), mu = median(tu, reps), wover = median(ratio, reps) - 1;
    double mcc = median(cc, reps), mcu = median(cu, reps), over = median(cratio, reps) - 1;
    free(ratio);
    free(cratio);
    free(cc);
    free(cu);
    /* CPU time of the first run beyond what a warm run spends on as many tokens: the token tables */
    double cold_s = (cold.cpu_ns - mcc * cold.tokens) / 1e9;
    double samp = sampler_ns(m, ss_buf_cstr(&schema), 4000);
    int v = ss_llm_config(m)->vocab_size;
    *within &= over <= 0.05;
    printf("  %-14s vocab %6d, batch %d, %d tokens per run: CPU time constrained %.3f ms/token, unconstrained "
           "%.3f ms/token: %+.1f%% (target <= +5%%); wall time %.3f vs %.3f ms/token: %+.1f%% (shared machine: "
           "noisy); sampler alone %.1f us/token (%.2f%% of an unconstrained token's CPU time); cold start (token "
           "tables of a new schema): +%.2f s of CPU in the first run\n",
           label, v, n, gen, mcc / 1e6, mcu / 1e6, 100 * over, mc / 1e6, mu / 1e6, 100 * wover, samp / 1e3,
           100 * samp / mcu, SS_MAX(cold_s, 0.0));
    ss_buf_printf(js,
                  "%s{\"model\":\"%s\",\"vocab\":%d,\"batch\":%d,\"tokens_per_run\":%d,\"reps\":%d,"
                  "\"constrained_cpu_ms_per_token\":%.4f,\"unconstrained_cpu_ms_per_token\":%.4f,\"overhead\":%.4f,"
                  "\"constrained_wall_ms_per_token\":%.4f,\"unconstrained_wall_ms_per_token\":%.4f,"
                  "\"wall_overhead\":%.4f,\"sampler_us_per_token\":%.2f,\"cold_first_run_s\":%.3f,\"target\":0.05}",
                  first ? "" : ",", label, v, n, gen, reps, mcc / 1e6, mcu / 1e6, over, mc / 1e6, mu / 1e6, wover,
                  samp / 1e3, SS_MAX(cold_s, 0.0));
    free(tc);
    free(tu);
    ss_buf_free(&schema);
    ss_jschema_free(sch);
    ss_jscols_free(cols, nc);
    ss_llm_close(m);
    return 0;
}

int main(int argc, char **argv)
{
    const char *shapes = "stories260K,smollm2-135m", *dir = "/tmp", *out = NULL;
    int layers = 0, batch = 8, reps = 7, threads = 1;
    static struct option lo[] = {{"shapes", 1, 0, 's'}, {"layers", 1, 0, 'l'}, {"batch", 1, 0, 'b'},
                                 {"reps", 1, 0, 'r'},   {"threads", 1, 0, 't'}, {"dir", 1, 0, 'd'},
                                 {"out", 1, 0, 'o'},    {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 's': shapes = optarg; break;
        case 'l': layers = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'd': dir = optarg; break;
        case 'o': out = optarg; break;
        default:
            fprintf(stderr, "usage: bench_constrained [--shapes a,b] [--layers N] [--batch B] [--reps R] "
                            "[--threads T] [--dir /tmp] [--out FILE]\n");
            return 2;
        }
    }
    if (threads <= 0)
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    reps = reps < 1 ? 1 : reps;
    static char outp[2200];
    if (!out)
        out = ss_bench_source_file(__FILE__, "bench/results/constrained.json", outp, sizeof outp);
    printf("bench_constrained: schema '%s', %d threads, median of %d runs\n", SCHEMA_COLS, threads, reps);
    ss_buf_t js = SS_BUF_INIT;
    ss_buf_printf(&js, "{\"bench\":\"constrained\",\"schema\":\"%s\",\"threads\":%d,\"runs\":[", SCHEMA_COLS, threads);
    char list[256];
    snprintf(list, sizeof list, "%s", shapes);
    int first = 1, fail = 0, within = 1;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char path[1400], err[SS_ERRSZ];
        if (!strcmp(tok, "stories260K")) {
            ss_bench_source_file(__FILE__, "../shared/models/stories260K.gguf", path, sizeof path);
        } else {
            ss_mkmodel_spec_t s;
            if (!ss_mkmodel_shape(tok, &s)) {
                fprintf(stderr, "bench_constrained: unknown shape %s (%s)\n", tok, ss_mkmodel_shape_names());
                return 2;
            }
            if (layers > 0)
                s.n_layers = layers;
            snprintf(path, sizeof path, "%s/semstream-bench-%s-q8_0-%dl.gguf", dir, tok, s.n_layers);
            if (access(path, R_OK) != 0 && ss_mkmodel_write(&s, path, err, sizeof err)) {
                fprintf(stderr, "bench_constrained: %s\n", err);
                return 1;
            }
        }
        fail |= bench_model(tok, path, threads, batch, reps, &js, first, &within);
        first = 0;
    }
    ss_buf_printf(&js, "],\"within_target\":%s}\n", within ? "true" : "false");
    FILE *f = fopen(out, "w");
    if (f) {
        fputs(ss_buf_cstr(&js), f);
        fclose(f);
        printf("  wrote %s\n", out);
    }
    ss_buf_free(&js);
    return fail;
}
