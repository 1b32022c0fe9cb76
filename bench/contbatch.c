/*
 * contbatch.c — bench_contbatch: what continuous batching buys short requests that
 * arrive while long ones decode. Closed-loop clients against one engine: L clients
 * each send GENERATE requests of --long-tokens tokens one after the other, S clients
 * each send short CHOOSE requests (think time --think-ms between a reply and the
 * next request). The same workload runs twice in one process, on the same model:
 *
 *   whole-batch: what the worker did before (gpu/worker.c, whole_batch mode): when
 *     idle, take every request that has arrived (up to --max-batch) and answer them
 *     with one ss_llm_run; requests arriving meanwhile wait for the whole batch;
 *   continuous:  submit arrivals between steps (up to --max-batch running) and
 *     ss_llm_step (gpu/llm_sched.c).
 *
 * Prints the short requests' latency (mean, p50, p95) in both modes and the ratio,
 * the long requests' latency and throughput, checks that every request got the
 * same answer in both modes, and writes bench/results/contbatch.json.
 *
 *   bench_contbatch [--model FILE] [--long L] [--short S] [--long-tokens N] [--rounds R]
 *                   [--think-ms T] [--max-batch B] [--threads T] [--gpu N] [--out FILE]
 */
#include "ss_llm.h"
#include "ss_llm_cuda.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct breq {
    ss_infer_req_t req;
    ss_infer_res_t res;
    char prompt[160];
    int is_long;
    int64_t t_arrive, t_done; /* ns since the run started */
    int state;                /* 0 not arrived, 1 waiting, 2 running, 3 done */
} breq_t;

typedef struct bench {
    ss_llm_t *m;
    breq_t *r;       /* [nclients * rounds], client c's round k at c * rounds + k */
    int nclients, rounds, max_batch;
    int64_t think_ns, t0;
    int running, ndone;
} bench_t;

static const char *const yesno[] = {" yes", " no"};
static const char *const names[] = {"Lily", "Tom", "Max", "Sue", "Ben", "Mia", "Sam", "Zoe"};

static int64_t now(const bench_t *b) { return ss_now_ns() - b->t0; }

static void make_reqs(bench_t *b, int nlong, int long_tokens)
{
    for (int c = 0; c < b->nclients; c++)
        for (int k = 0; k < b->rounds; k++) {
            breq_t *q = &b->r[c * b->rounds + k];
            memset(q, 0, sizeof *q);
            q->is_long = c < nlong;
            const char *who = names[(c + k) % 8];
            if (q->is_long) {
                snprintf(q->prompt, sizeof q->prompt, "Once upon a time, %s went to the park. %d", who, k);
                q->req = (ss_infer_req_t){.kind = SS_INFER_GENERATE, .prompt = q->prompt, .max_tokens = long_tokens};
            } else {
                snprintf(q->prompt, sizeof q->prompt, "%s had a red ball number %d. Was %s happy? Answer:", who,
                         c * 100 + k, who);
                q->req = (ss_infer_req_t){.kind = SS_INFER_CHOOSE, .prompt = q->prompt, .nchoices = 2,
                                          .choices = yesno};
            }
        }
}

static void reset(bench_t *b)
{
    for (int i = 0; i < b->nclients * b->rounds; i++) {
        ss_infer_res_clear(&b->r[i].res);
        b->r[i].state = 0;
        b->r[i].t_arrive = b->r[i].t_done = 0;
    }
    for (int c = 0; c < b->nclients; c++) { /* first requests arrive staggered by 0.1 ms */
        b->r[c * b->rounds].state = 1;
        b->r[c * b->rounds].t_arrive = c * 100000;
    }
    b->running = b->ndone = 0;
    ss_llm_cache_clear(b->m);
    b->t0 = ss_now_ns();
}

/* Marks q done now; its client's next request arrives after the think time. */
static void finish(bench_t *b, breq_t *q)
{
    q->t_done = now(b);
    q->state = 3;
    b->ndone++;
    int i = (int)(q - b->r);
    if ((i + 1) % b->rounds) {
        b->r[i + 1].state = 1;
        b->r[i + 1].t_arrive = q->t_done + b->think_ns;
    }
}

/* Waiting requests that have arrived, oldest first, up to cap. */
static int arrived(bench_t *b, breq_t **out, int cap)
{
    int n = 0;
    int64_t t = now(b);
    for (int i = 0; i < b->nclients * b->rounds && n < cap; i++)
        if (b->r[i].state == 1 && b->r[i].t_arrive <= t)
            out[n++] = &b->r[i];
    for (int i = 1; i < n; i++) /* insertion sort by arrival */
        for (int j = i; j > 0 && out[j]->t_arrive < out[j - 1]->t_arrive; j--) {
            breq_t *x = out[j];
            out[j] = out[j - 1];
            out[j - 1] = x;
        }
    return n;
}

static void idle_wait(bench_t *b)
{
    int64_t next = -1;
    for (int i = 0; i < b->nclients * b->rounds; i++)
        if (b->r[i].state == 1 && (next < 0 || b->r[i].t_arrive < next))
            next = b->r[i].t_arrive;
    int64_t d = next - now(b);
    if (next >= 0 && d > 0) {
        struct timespec ts = {(time_t)(d / 1000000000), (long)(d % 1000000000)};
        nanosleep(&ts, NULL);
    }
}

static int run_whole(bench_t *b)
{
    int total = b->nclients * b->rounds;
    breq_t **a = malloc((size_t)total * sizeof *a);
    ss_infer_req_t *reqs = malloc((size_t)total * sizeof *reqs);
    ss_infer_res_t *res = calloc((size_t)total, sizeof *res);
    char err[SS_ERRSZ];
    int rc = 0;
    while (b->ndone < total && !rc) {
        int n = arrived(b, a, b->max_batch);
        if (!n) {
            idle_wait(b);
            continue;
        }
        for (int i = 0; i < n; i++) {
            reqs[i] = a[i]->req;
            memset(&res[i], 0, sizeof res[i]);
            a[i]->state = 2;
        }
        if ((rc = ss_llm_run(b->m, reqs, n, res, err, sizeof err)))
            fprintf(stderr, "bench_contbatch: %s\n", err);
        for (int i = 0; i < n; i++) {
            a[i]->res = res[i];
            finish(b, a[i]);
        }
    }
    free(a);
    free(reqs);
    free(res);
    return rc;
}

/* continuous mode: the callback context is the request; the bench is global to the run */
static bench_t *g_bench;

static void on_step_done(void *ctx, ss_infer_res_t *res, int rc)
{
    (void)res, (void)rc;
    g_bench->running--;
    finish(g_bench, ctx);
}

static int run_continuous(bench_t *b)
{
    int total = b->nclients * b->rounds;
    breq_t **a = malloc((size_t)total * sizeof *a);
    char err[SS_ERRSZ];
    int rc = 0;
    g_bench = b;
    while (b->ndone < total && !rc) {
        int n = arrived(b, a, b->max_batch - b->running);
        for (int i = 0; i < n && !rc; i++) {
            a[i]->state = 2;
            if ((rc = ss_llm_submit(b->m, &a[i]->req, &a[i]->res, on_step_done, a[i], err, sizeof err)))
                fprintf(stderr, "bench_contbatch: %s\n", err);
            else
                b->running++;
        }
        if (!b->running) {
            idle_wait(b);
            continue;
        }
        if (!rc && (rc = ss_llm_step(b->m, 0, err, sizeof err)))
            fprintf(stderr, "bench_contbatch: %s\n", err);
    }
    free(a);
    return rc;
}

typedef struct lat {
    double mean, p50, p95, max; /* ms */
    int n;
} lat_t;

static int cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return a < c ? -1 : a > c;
}

static lat_t latency(const bench_t *b, int want_long)
{
    int total = b->nclients * b->rounds, n = 0;
    double *v = malloc((size_t)total * sizeof *v), s = 0;
    for (int i = 0; i < total; i++)
        if (b->r[i].is_long == want_long) {
            v[n] = (double)(b->r[i].t_done - b->r[i].t_arrive) / 1e6;
            s += v[n++];
        }
    lat_t l = {0, 0, 0, 0, n};
    if (n) {
        qsort(v, (size_t)n, sizeof *v, cmp_d);
        l.mean = s / n;
        l.p50 = v[n / 2];
        l.p95 = v[SS_MIN(n - 1, (int)(0.95 * n))];
        l.max = v[n - 1];
    }
    free(v);
    return l;
}

static int same_res(const ss_infer_res_t *a, const ss_infer_res_t *b)
{
    if (a->status || b->status)
        return 0;
    if (a->text || b->text)
        return a->text && b->text && !strcmp(a->text, b->text);
    return a->nprobs == b->nprobs && !memcmp(a->probs, b->probs, (size_t)a->nprobs * sizeof(float));
}

/* How far apart two answers are: texts that differ, and the largest probability difference. */
static void diff_res(const ss_infer_res_t *a, const ss_infer_res_t *b, int *ntext, double *maxp)
{
    if (a->text || b->text) {
        *ntext += !(a->text && b->text && !strcmp(a->text, b->text));
        return;
    }
    for (int i = 0; i < a->nprobs && i < b->nprobs; i++)
        *maxp = SS_MAX(*maxp, fabs((double)a->probs[i] - b->probs[i]));
}

static void json_lat(FILE *f, const char *k, lat_t l)
{
    fprintf(f, "\"%s\":{\"n\":%d,\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"max_ms\":%.3f}", k, l.n, l.mean,
            l.p50, l.p95, l.max);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"long", required_argument, 0, 'L'},
        {"short", required_argument, 0, 'S'},     {"long-tokens", required_argument, 0, 'n'},
        {"rounds", required_argument, 0, 'r'},    {"think-ms", required_argument, 0, 'k'},
        {"max-batch", required_argument, 0, 'b'}, {"threads", required_argument, 0, 't'},
        {"out", required_argument, 0, 'o'},       {"gpu", required_argument, 0, 'g'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = NULL, *out = "bench/results/contbatch.json";
    int nlong = 4, nshort = 8, long_tokens = 400, rounds = 6, think_ms = 2, max_batch = 32, threads = 1, gpu = -1, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'L': nlong = atoi(optarg); break;
        case 'S': nshort = atoi(optarg); break;
        case 'n': long_tokens = atoi(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'k': think_ms = atoi(optarg); break;
        case 'b': max_batch = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'o': out = optarg; break;
        case 'g': gpu = atoi(optarg); break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: bench_contbatch [--model FILE] [--long L] [--short S] [--long-tokens N] [--rounds R]\n"
                    "                       [--think-ms T] [--max-batch B] [--threads T] [--gpu N] [--out FILE]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (nlong < 0 || nshort <= 0 || rounds <= 0 || max_batch <= 0 || long_tokens <= 0)
        return 2;
    if (!model)
        model = ss_default_model();
    char err[SS_ERRSZ];
    ss_llm_opts_t o = {.threads = threads};
    bench_t b = {.nclients = nlong + nshort, .rounds = rounds, .max_batch = max_batch,
                 .think_ns = (int64_t)think_ms * 1000000};
    if (ss_llm_open(model, &o, &b.m, err, sizeof err) || (gpu >= 0 && ss_llm_use_cuda(b.m, gpu, err, sizeof err))) {
        fprintf(stderr, "bench_contbatch: %s\n", err);
        return 1;
    }
    int total = b.nclients * rounds;
    b.r = calloc((size_t)total, sizeof *b.r);
    make_reqs(&b, nlong, long_tokens);
    printf("bench_contbatch: model %s, %d long clients (GENERATE %d tokens), %d short clients (CHOOSE), "
           "%d requests each, think %d ms, max batch %d, %s\n",
           ss_llm_id(b.m), nlong, long_tokens, nshort, rounds, think_ms, max_batch, gpu >= 0 ? "cuda" : "cpu");
    /* whole-batch first, keep its answers, then continuous */
    ss_infer_res_t *ref = calloc((size_t)total, sizeof *ref);
    reset(&b);
    if (run_whole(&b))
        return 1;
    double wall_w = (double)now(&b) / 1e9;
    lat_t sw = latency(&b, 0), lw = latency(&b, 1);
    for (int i = 0; i < total; i++) {
        ref[i] = b.r[i].res;
        memset(&b.r[i].res, 0, sizeof b.r[i].res);
    }
    ss_llm_stats_t s0, s1;
    ss_llm_stats(b.m, &s0);
    reset(&b);
    if (run_continuous(&b))
        return 1;
    double wall_c = (double)now(&b) / 1e9;
    ss_llm_stats(b.m, &s1);
    lat_t sc = latency(&b, 0), lc = latency(&b, 1);
    int same = 1, ntext = 0, ngen = 0;
    double maxp = 0;
    for (int i = 0; i < total; i++) {
        same &= same_res(&ref[i], &b.r[i].res);
        diff_res(&ref[i], &b.r[i].res, &ntext, &maxp);
        ngen += ref[i].text != NULL;
        ss_infer_res_clear(&ref[i]);
    }
    double r50 = sw.p50 / SS_MAX(sc.p50, 1e-9), rmean = sw.mean / SS_MAX(sc.mean, 1e-9);
    printf("  whole-batch: short CHOOSE latency mean %.2f ms, p50 %.2f, p95 %.2f; long GENERATE mean %.1f ms; "
           "%.3f s for all\n", sw.mean, sw.p50, sw.p95, lw.mean, wall_w);
    printf("  continuous:  short CHOOSE latency mean %.2f ms, p50 %.2f, p95 %.2f; long GENERATE mean %.1f ms; "
           "%.3f s for all (%lld steps)\n", sc.mean, sc.p50, sc.p95, lc.mean, wall_c, (long long)(s1.steps - s0.steps));
    printf("  short-request latency, whole-batch / continuous: p50 %.1fx, mean %.1fx; answers identical: %s\n", r50,
           rmean, same ? "yes" : "NO");
    if (!same) /* on the GPU a row's arithmetic depends on the batch it runs in (GEMV vs GEMM paths) */
        printf("  differences: %d of %d generated texts, largest CHOOSE probability difference %.3g\n", ntext, ngen,
               maxp);
    mkdir("bench", 0755);
    mkdir("bench/results", 0755);
    FILE *f = fopen(out, "w");
    if (f) {
        fprintf(f,
                "{\"bench\":\"contbatch\",\"model\":\"%s\",\"long_clients\":%d,\"short_clients\":%d,"
                "\"long_tokens\":%d,\"rounds\":%d,\"think_ms\":%d,\"max_batch\":%d,\"threads\":%d,\"backend\":\"%s\",",
                ss_llm_id(b.m), nlong, nshort, long_tokens, rounds, think_ms, max_batch, threads,
                gpu >= 0 ? "cuda" : "cpu");
        fprintf(f, "\"whole_batch\":{");
        json_lat(f, "short", sw);
        fputc(',', f);
        json_lat(f, "long", lw);
        fprintf(f, ",\"seconds\":%.4f},\"continuous\":{", wall_w);
        json_lat(f, "short", sc);
        fputc(',', f);
        json_lat(f, "long", lc);
        fprintf(f, ",\"seconds\":%.4f,\"steps\":%lld},", wall_c, (long long)(s1.steps - s0.steps));
        fprintf(f, "\"short_p50_ratio\":%.3f,\"short_mean_ratio\":%.3f,\"identical\":%s}\n", r50, rmean,
                same ? "true" : "false");
        fclose(f);
        printf("  wrote %s\n", out);
    }
    for (int i = 0; i < total; i++)
        ss_infer_res_clear(&b.r[i].res);
    free(ref);
    free(b.r);
    ss_llm_close(b.m);
    return same ? 0 : 1;
}
