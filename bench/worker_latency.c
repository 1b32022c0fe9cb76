/*
 * worker_latency.c — bench_worker_latency: what a short call waits for at `semstream
 * worker` (gpu/worker.c) over real HTTP, on the same model in one process:
 *
 *   alone:       a 2-token completion on an idle worker (the ceiling);
 *   beside long: the same sent while a call of --prompts prompts x --tokens tokens runs
 *                (continuous batching, admission from the call with the fewest running);
 *   whole-batch: the same in --whole-batch mode (one backend call per batch, later calls
 *                waiting for it: the worker's old mode);
 *   /health:     GET /health alone, and with --idle idle connections open.
 *
 * Prints the medians over --rounds rounds and the ratios (beside long / alone,
 * whole-batch / beside long, /health with idle sockets / alone), and writes
 * bench/results/worker_latency.json.
 *
 *   bench_worker_latency [--model FILE] [--prompts N] [--tokens N] [--rounds R] [--idle N]
 *                        [--threads T] [--out FILE]
 */
#include "ss_llm.h"
#include "ss_worker.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    (void)p, (void)ud;
    return sz * n;
}

/* Seconds a request took (-1 on failure). */
static double timed(int port, const char *path, const char *body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long code = 0;
    int64_t t0 = ss_now_ns();
    int ok = curl_easy_perform(c) == CURLE_OK;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    double s = (double)(ss_now_ns() - t0) / 1e9;
    curl_easy_cleanup(c);
    return ok && code == 200 ? s : -1;
}

static long running(int port)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", port);
    CURL *c = curl_easy_init();
    char buf[256] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    fclose(f);
    const char *p = strstr(buf, "\"running\":");
    return p ? atol(p + 10) : 0;
}

typedef struct longcall {
    int port;
    const char *body;
    double secs;
} longcall_t;

static void *long_main(void *arg)
{
    longcall_t *l = arg;
    l->secs = timed(l->port, "/v1/completions", l->body);
    return NULL;
}

static const char *SHORT = "{\"prompt\":\"Lily\",\"max_tokens\":2,\"temperature\":0}";

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n ? v[n / 2] : -1;
}

/* The short call's latency beside a long call, median over rounds; *longs: the long call's. */
static double beside_long(const char *model, int threads, int whole, const char *big, int rounds, double *longs)
{
    char err[SS_ERRSZ];
    ss_worker_opts_t o = {.model_name = "m", .whole_batch = whole, .max_tokens_limit = 4096};
    ss_worker_t *w = NULL;
    if (ss_worker_start(&o, ss_backend_local_new(model, threads, err, sizeof err), &w, err, sizeof err)) {
        fprintf(stderr, "bench_worker_latency: %s\n", err);
        exit(1);
    }
    int port = ss_worker_port(w);
    double *s = calloc((size_t)rounds, sizeof *s), *l = calloc((size_t)rounds, sizeof *l);
    for (int r = 0; r < rounds; r++) {
        longcall_t lc = {port, big, 0};
        pthread_t th;
        pthread_create(&th, NULL, long_main, &lc);
        for (int i = 0; i < 20000 && running(port) < 8; i++)
            usleep(500);
        s[r] = timed(port, "/v1/completions", SHORT);
        pthread_join(th, NULL);
        l[r] = lc.secs;
    }
    ss_worker_stop(w);
    *longs = median(l, rounds);
    double m = median(s, rounds);
    free(s);
    free(l);
    return m;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"prompts", required_argument, 0, 'p'},
                                         {"tokens", required_argument, 0, 't'}, {"rounds", required_argument, 0, 'r'},
                                         {"idle", required_argument, 0, 'i'},   {"threads", required_argument, 0, 'T'},
                                         {"out", required_argument, 0, 'o'},    {0, 0, 0, 0}};
    const char *model = "../shared/models/stories260K.gguf", *out = "bench/results/worker_latency.json";
    int prompts = 512, tokens = 32, rounds = 3, idle = 330, threads = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompts = atoi(optarg); break;
        case 't': tokens = atoi(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'i': idle = atoi(optarg); break;
        case 'T': threads = atoi(optarg); break;
        case 'o': out = optarg; break;
        default: return 2;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ss_log_set_level(SS_LOG_WARN);
    ss_buf_t big = SS_BUF_INIT;
    ss_buf_puts(&big, "{\"prompt\":[");
    for (int i = 0; i < prompts; i++)
        ss_buf_printf(&big, "%s\"Story %d: once upon a time there was a little girl named Lily who\"", i ? "," : "", i);
    ss_buf_printf(&big, "],\"max_tokens\":%d,\"temperature\":0}", tokens);

    /* alone, and /health alone and beside idle sockets */
    char err[SS_ERRSZ];
    ss_worker_opts_t o = {.model_name = "m"};
    ss_worker_t *w = NULL;
    if (ss_worker_start(&o, ss_backend_local_new(model, threads, err, sizeof err), &w, err, sizeof err)) {
        fprintf(stderr, "bench_worker_latency: %s\n", err);
        return 1;
    }
    int port = ss_worker_port(w);
    double *v = calloc((size_t)(rounds * 5), sizeof *v);
    timed(port, "/v1/completions", SHORT); /* warm */
    for (int r = 0; r < rounds * 5; r++)
        v[r] = timed(port, "/v1/completions", SHORT);
    double alone = median(v, rounds * 5);
    for (int r = 0; r < rounds * 5; r++)
        v[r] = timed(port, "/health", NULL);
    double health = median(v, rounds * 5);
    int *fds = calloc((size_t)idle, sizeof *fds), nopen = 0;
    for (int i = 0; i < idle; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) == 0)
            fds[nopen++] = s;
        else if (s >= 0)
            close(s);
    }
    usleep(100 * 1000);
    for (int r = 0; r < rounds * 5; r++)
        v[r] = timed(port, "/health", NULL);
    double health_idle = median(v, rounds * 5);
    for (int i = 0; i < nopen; i++)
        close(fds[i]);
    ss_worker_stop(w);

    double long_c, long_w;
    double beside = beside_long(model, threads, 0, big.data, rounds, &long_c);
    double whole = beside_long(model, threads, 1, big.data, rounds, &long_w);
    printf("bench_worker_latency: %s, a 2-token call beside a call of %d prompts x %d tokens (%d rounds)\n", model,
           prompts, tokens, rounds);
    printf("  alone (idle worker)        %9.2f ms\n", alone * 1e3);
    printf("  beside the long call       %9.2f ms   (%.1fx alone; the long call took %.0f ms)\n", beside * 1e3,
           beside / alone, long_c * 1e3);
    printf("  whole-batch mode           %9.2f ms   (%.1fx the continuous worker; the long call took %.0f ms)\n",
           whole * 1e3, whole / beside, long_w * 1e3);
    printf("  /health alone              %9.2f ms\n", health * 1e3);
    printf("  /health, %4d idle sockets %9.2f ms   (%.1fx)\n", nopen, health_idle * 1e3, health_idle / health);
    mkdir("bench/results", 0755);
    FILE *f = fopen(out, "w");
    if (f) {
        fprintf(f,
                "{\"bench\":\"worker_latency\",\"model\":\"%s\",\"prompts\":%d,\"tokens\":%d,\"rounds\":%d,"
                "\"short_alone_s\":%.6f,\"short_beside_long_s\":%.6f,\"beside_over_alone\":%.3f,\"long_s\":%.6f,"
                "\"short_whole_batch_s\":%.6f,\"whole_over_continuous\":%.3f,\"long_whole_batch_s\":%.6f,"
                "\"health_s\":%.6f,\"health_idle_s\":%.6f,\"idle_sockets\":%d}\n",
                model, prompts, tokens, rounds, alone, beside, beside / alone, long_c, whole, whole / beside, long_w,
                health, health_idle, nopen);
        fclose(f);
        printf("  wrote %s\n", out);
    }
    free(v);
    free(fds);
    ss_buf_free(&big);
    return 0;
}
