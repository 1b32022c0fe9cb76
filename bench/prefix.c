/*
 * prefix.c — bench_prefix: what prefix reuse buys a semantic operator. N CHOOSE
 * requests (default 1,000) share a ~200-token instruction and differ in a ~50-token
 * row; they run through ss_llm_run in batches, once with prefix reuse disabled
 * (baseline) and once enabled, in the same process. Prints the speed-up and checks
 * that both runs give bit-identical probabilities. Writes bench/results/prefix.json.
 *
 *   bench_prefix [--model FILE] [--n N] [--batch B] [--threads T] [--out FILE]
 */
#include "ss_llm.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *words[] = {"dog", "cat", "ball", "park", "tree", "bird", "girl", "boy", "mom", "sun",
                              "red", "big", "happy", "sad", "little", "toy", "car", "cake", "fish", "box"};

/* Appends sentences until text has at least want tokens. */
static char *grow_text(ss_llm_t *m, const char *start, int want, unsigned seed)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, start);
    unsigned s = seed * 2654435761u + 1;
    while (ss_llm_count_tokens(m, ss_buf_cstr(&b)) < want) {
        s = s * 1103515245u + 12345u;
        const char *a = words[(s >> 8) % 20], *c = words[(s >> 16) % 20], *d = words[(s >> 24) % 20];
        ss_buf_printf(&b, " The %s saw a %s %s and it was fun.", a, c, d);
    }
    return ss_buf_take(&b);
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wall seconds; *cpu gets process CPU seconds (robust on a shared machine). */
static double run(ss_llm_t *m, ss_infer_req_t *r, int n, int batch, ss_infer_res_t *res, double *cpu)
{
    char err[SS_ERRSZ];
    double c0 = cpu_s();
    int64_t t0 = ss_now_ns();
    for (int i = 0; i < n; i += batch) {
        int k = SS_MIN(batch, n - i);
        if (ss_llm_run(m, r + i, k, res + i, err, sizeof err)) {
            fprintf(stderr, "bench_prefix: %s\n", err);
            exit(1);
        }
    }
    *cpu = cpu_s() - c0;
    return (double)(ss_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"n", required_argument, 0, 'n'},
                                         {"batch", required_argument, 0, 'b'}, {"threads", required_argument, 0, 't'},
                                         {"out", required_argument, 0, 'o'},   {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *out = "bench/results/prefix.json";
    int n = 1000, batch = 100, threads = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'n': n = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'o': out = optarg; break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: bench_prefix [--model FILE] [--n N] [--batch B] [--threads T] [--out FILE]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (n <= 0 || batch <= 0)
        return 2;
    if (!model)
        model = ss_default_model();
    char err[SS_ERRSZ];
    ss_llm_opts_t off = {.threads = threads, .no_prefix_cache = 1}, on = {.threads = threads};
    ss_llm_t *ma = NULL, *mb = NULL;
    if (ss_llm_open(model, &off, &ma, err, sizeof err) || ss_llm_open(model, &on, &mb, err, sizeof err)) {
        fprintf(stderr, "bench_prefix: %s\n", err);
        return 1;
    }
    char *instr = grow_text(ma, "Read the story and answer yes or no: is the story happy?", 200, 1);
    int ni = ss_llm_count_tokens(ma, instr);
    char **prompts = calloc((size_t)n, sizeof *prompts);
    ss_infer_req_t *r = calloc((size_t)n, sizeof *r);
    ss_infer_res_t *ra = calloc((size_t)n, sizeof *ra), *rb = calloc((size_t)n, sizeof *rb);
    static const char *const ch[] = {" yes", " no"};
    long total = 0;
    for (int i = 0; i < n; i++) {
        char head[64];
        snprintf(head, sizeof head, "\nStory %d:", i);
        char *row = grow_text(ma, head, 50, (unsigned)i + 7);
        prompts[i] = ss_sprintf("%s%s\nAnswer:", instr, row);
        free(row);
        r[i] = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = prompts[i], .prefix_len = strlen(instr),
                                .nchoices = 2, .choices = ch};
        total += ss_llm_count_tokens(ma, prompts[i]) + 1;
    }
    printf("bench_prefix: model %s, %d CHOOSE requests, instruction %d tokens, %.1f tokens/request, batch %d\n",
           ss_llm_id(ma), n, ni, (double)total / n, batch);
    double ca, cb;
    double ta = run(ma, r, n, batch, ra, &ca);
    double tb = run(mb, r, n, batch, rb, &cb);
    int same = 1;
    for (int i = 0; i < n; i++) {
        same &= ra[i].status == SS_OK && rb[i].status == SS_OK && ra[i].nprobs == rb[i].nprobs &&
                !memcmp(ra[i].probs, rb[i].probs, (size_t)ra[i].nprobs * sizeof(float));
        ss_infer_res_clear(&ra[i]);
        ss_infer_res_clear(&rb[i]);
        free(prompts[i]);
    }
    ss_llm_stats_t sa, sb;
    ss_llm_stats(ma, &sa);
    ss_llm_stats(mb, &sb);
    double ratio = ta / tb;
    printf("  without reuse: %.3f s wall, %.3f s cpu (%.0f req/s, %lld tokens computed)\n", ta, ca, n / ta,
           (long long)sa.tokens_computed);
    printf("  with reuse:    %.3f s wall, %.3f s cpu (%.0f req/s, %lld tokens computed, %lld reused)\n", tb, cb,
           n / tb, (long long)sb.tokens_computed, (long long)sb.tokens_reused);
    printf("  speed-up: %.2fx wall, %.2fx cpu (target >= 3x); results bit-identical: %s\n", ratio, ca / cb,
           same ? "yes" : "NO");
    mkdir("bench", 0755);
    mkdir("bench/results", 0755);
    FILE *f = fopen(out, "w");
    if (f) {
        fprintf(f,
                "{\"bench\":\"prefix\",\"model\":\"%s\",\"n\":%d,\"batch\":%d,\"instruction_tokens\":%d,"
                "\"tokens_per_request\":%.1f,\"seconds_without_reuse\":%.4f,\"seconds_with_reuse\":%.4f,"
                "\"tokens_computed_without\":%lld,\"tokens_computed_with\":%lld,\"tokens_reused\":%lld,"
                "\"cpu_seconds_without_reuse\":%.4f,\"cpu_seconds_with_reuse\":%.4f,"
                "\"speedup\":%.3f,\"speedup_cpu\":%.3f,\"identical\":%s,\"threads\":%d}\n",
                ss_llm_id(ma), n, batch, ni, (double)total / n, ta, tb, (long long)sa.tokens_computed,
                (long long)sb.tokens_computed, (long long)sb.tokens_reused, ca, cb, ratio, ca / cb,
                same ? "true" : "false", threads);
        fclose(f);
        printf("  wrote %s\n", out);
    }
    free(instr);
    free(prompts);
    free(r);
    free(ra);
    free(rb);
    ss_llm_close(ma);
    ss_llm_close(mb);
    return same ? 0 : 1;
}
