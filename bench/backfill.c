/*
 * backfill.c — a semantic backfill: how busy does the engine keep its model servers?
 *
 * N rows (default 2,000) of short texts through
 *   SELECT id, SEM_MAP(...) FROM docs WHERE SEM_FILTER(...)
 * on a pool of two `semstream worker` processes serving stories260K
 * (../shared/models), run three times in the same invocation, each on a fresh
 * state and cache and on freshly started workers (their answer caches empty):
 *   old    the synchronous loop as it was before the runtime (the baseline):
 *          ss_engine_opts_t.sync_inference (a pipeline calls the dispatcher
 *          blocking, inside its batch's transaction: a batch's requests go out only
 *          when it runs, the next batch's only after it committed, no read-ahead)
 *          with max_in_flight = 32 = max_batch: one chunk of 32 requests in the
 *          backend at a time, as the old dispatcher sent them;
 *   sync   the same blocking calls with the dispatcher's default capacity (two
 *          chunks at once): what concurrency alone gives;
 *   async  the runtime: the pipeline never waits for a model; it rolls the attempt
 *          back, reads on (its requests going out while earlier ones are in
 *          flight) and attempts again when answers are in.
 * For each: wall time from the load to idle, rows/s, the fraction of that wall
 * time with at least one request in a worker (the dispatcher's busy time,
 * ss_engine_stats_t.busy_ns; target >= 0.9) and the mean number of requests in the
 * workers (request_ns / wall). All must produce the same view. Prints the ratios
 * async/old of rows/s and of the busy fraction; writes bench/results/backfill.json.
 *
 * With --fixture-ms D the pool is two bench_fixture_slow_server processes instead
 * (a FIXTURE: an OpenAI-compatible server answering every request after D ms,
 * concurrent requests side by side, deterministic answers): a remote model whose
 * latency, not this machine's CPU, bounds the backfill; writes
 * bench/results/backfill_fixture.json.
 *
 * usage: bench_backfill [--rows N] [--batch-size B] [--threads T] [--fixture-ms D] [--ci]
 *   --ci: 200 rows; fails unless both views are equal and non-empty; no JSON.
 */
#include "ss_base.h"
#include "ss_bench_util.h"
#include "ss_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_bin[1100], g_fixture_bin[1100];
static int g_fixture_ms = -1; /* >= 0: a pool of two fixture servers answering after this many ms */

#include "bench_children.h"

typedef struct worker {
    pid_t pid;
    int port;
} worker_t;

/* Starts `semstream worker --port 0` and reads the port it printed. */
static void worker_start(worker_t *w, const char *model, int threads)
{
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    int fd[2];
    if (pipe(fd))
        die("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2);
        if (g_fixture_ms >= 0) {
            char d[16];
            snprintf(d, sizeof d, "%d", g_fixture_ms);
            execl(g_fixture_bin, g_fixture_bin, "--port", "0", "--delay-ms", d, (char *)NULL);
        } else
            execl(g_bin, "semstream", "worker", "--port", "0", "--threads", th, "--model", model, (char *)NULL);
        _exit(127);
    }
    child_add(pid);
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    char line[512] = "";
    if (!in || !fgets(line, sizeof line, in))
        die("semstream worker did not start");
    fclose(in);
    const char *at = strstr(line, "http://127.0.0.1:");
    if (!at)
        die("semstream worker printed '%s'", line);
    w->pid = pid;
    w->port = atoi(at + 17);
}

static void worker_stop(worker_t *w)
{
    kill(w->pid, SIGTERM);
    waitpid(w->pid, NULL, 0);
    child_del(w->pid);
}

static char *run_sql(ss_engine_t *e, const char *sql)
{
    ss_buf_t out = SS_BUF_INIT;
    char err[SS_ERRSZ] = "";
    if (ss_engine_exec(e, sql, strlen(sql), "bench", &out, err, sizeof err))
        die("%s: %s", sql, err);
    return ss_buf_take(&out);
}

typedef struct result {
    double secs, busy, rows_s, mean_inflight;
    int64_t calls;
    char *view; /* SELECT * FROM v ORDER BY id */
} result_t;

static const char *const MODES[] = {"old", "sync", "async"};

static void run_mode(const char *dir, const char *rows, int nrows, int mode, int batch, int threads,
                     const char *model, result_t *r)
{
    int sync = mode < 2;
    worker_t w[2];
    worker_start(&w[0], model, threads);
    worker_start(&w[1], model, threads);
    char db[1200], err[SS_ERRSZ], sql[2048];
    snprintf(db, sizeof db, "%s/%s.db", dir, MODES[mode]);
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.batch_size = batch;
    o.sync_inference = sync;
    ss_engine_t *e = NULL;
    if (ss_engine_open(&o, &e, err, sizeof err))
        die("%s", err);
    snprintf(sql, sizeof sql,
             "CREATE MODEL pool WITH (backend = 'openai', url = 'http://127.0.0.1:%d,http://127.0.0.1:%d', "
             "model = '%s', timeout_ms = 120000%s%s);\n"
             "CREATE STREAM docs (id INT KEY, txt TEXT);\n"
             "CREATE CONTINUOUS VIEW v AS SELECT id, SEM_MAP('Tell a story about {txt}', model = 'pool', "
             "max_tokens = 8) AS story FROM docs WHERE SEM_FILTER('Is this about an animal? {txt}', model = 'pool', "
             "yes_prob = 0.15);\n",
             w[0].port, w[1].port, g_fixture_ms >= 0 ? "fixture" : "stories260K",
             /* a remote server takes many requests at once: the HTTP client must not be the bound (default 8) */
             g_fixture_ms >= 0 ? ", max_concurrency = 64" : "", mode == 0 ? ", max_in_flight = 32" : "");
    free(run_sql(e, sql));
    int64_t n = 0;
    int64_t t0 = ss_now_ns();
    ss_engine_stats_t s0;
    ss_engine_get_stats(e, &s0);
    if (ss_engine_load_jsonl(e, "docs", rows, &n, err, sizeof err) || n != nrows)
        die("load: %s", err);
    if (ss_engine_run_until_idle(e, 1800000, err, sizeof err))
        die("%s run: %s", MODES[mode], err);
    int64_t t1 = ss_now_ns();
    ss_engine_stats_t s1;
    ss_engine_get_stats(e, &s1);
    r->secs = (t1 - t0) / 1e9;
    r->busy = (double)(s1.busy_ns - s0.busy_ns) / (double)(t1 - t0);
    r->mean_inflight = (double)(s1.request_ns - s0.request_ns) / (double)(t1 - t0);
    r->rows_s = nrows / r->secs;
    r->calls = s1.llm_calls - s0.llm_calls;
    r->view = run_sql(e, "SELECT id, story FROM v ORDER BY id;");
    ss_engine_close(e);
    worker_stop(&w[0]);
    worker_stop(&w[1]);
    const char *cnt = strrchr(r->view, '(');
    printf("  %-5s %7.2f s  %7.1f rows/s  requests in flight %5.1f%% of the time, %5.1f on average  %lld calls  "
           "view %s", MODES[mode], r->secs, r->rows_s, 100 * r->busy, r->mean_inflight, (long long)r->calls,
           cnt ? cnt : "?\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    g_bench_name = "bench_backfill";
    int nrows = 2000, batch = 0, threads = 1, ci = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            nrows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch-size") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fixture-ms") && i + 1 < argc)
            g_fixture_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ci"))
            ci = 1;
        else
            die("usage: bench_backfill [--rows N] [--batch-size B] [--threads T] [--fixture-ms D] [--ci]");
    }
    if (ci)
        nrows = 200;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(g_bin, sizeof g_bin, "%s/semstream", self);
    snprintf(g_fixture_bin, sizeof g_fixture_bin, "%s/bench_fixture_slow_server", self);
    if (g_fixture_ms >= 0 && access(g_fixture_bin, X_OK))
        die("needs %s", g_fixture_bin);
    const char *model = ss_default_model();
    if (access(g_bin, X_OK) || access(model, R_OK))
        die("needs %s and %s", g_bin, model);
    char tmpl[] = "/tmp/ss_backfill_XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir)
        die("mkdtemp: %s", strerror(errno));
    char rows[1200];
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    FILE *f = fopen(rows, "w");
    static const char *animals[] = {"a cat", "a dog", "the old fox", "a small bird", "the river", "a red car",
                                    "the tall tree", "a fish", "the moon", "a rabbit", "the bakery", "a horse"};
    for (int i = 0; i < nrows; i++)
        fprintf(f, "{\"id\":%d,\"txt\":\"%s number %d who lived near the sea\"}\n", i, animals[i % 12], i);
    fclose(f);
    if (g_fixture_ms >= 0)
        printf("bench_backfill: %d rows through SEM_FILTER + SEM_MAP on two fixture servers answering in %d ms, "
               "batch size %d\n", nrows, g_fixture_ms, batch ? batch : 1024);
    else
        printf("bench_backfill: %d rows through SEM_FILTER + SEM_MAP on two semstream workers (%s, %d thread(s) "
               "each), batch size %d\n", nrows, model, threads, batch ? batch : 1024);
    result_t r[3] = {{0}};
    for (int m = 0; m < 3; m++)
        run_mode(dir, rows, nrows, m, batch, threads, model, &r[m]);
    int equal = !strcmp(r[0].view, r[2].view) && !strcmp(r[1].view, r[2].view);
    int nonempty = !strstr(r[2].view, "(0 rows)");
    printf("  the views are %s\n", equal ? "equal" : "DIFFERENT");
    double rr = r[0].rows_s > 0 ? r[2].rows_s / r[0].rows_s : 0, rb = r[0].busy > 0 ? r[2].busy / r[0].busy : 0;
    printf("ratio async/old: rows/s %.2f, busy fraction %.2f (async busy %.3f, target >= 0.9)\n", rr, rb, r[2].busy);
    if (!ci) {
        char out[1200];
        ss_bench_result_path(g_fixture_ms >= 0 ? "backfill_fixture.json" : "backfill.json", out, sizeof out);
        FILE *j = fopen(out, "w");
        if (j) {
            fprintf(j, "{\"bench\":\"backfill\",\"rows\":%d,\"batch_size\":%d,\"worker_threads\":%d,\"fixture_ms\":%d,\n",
                    nrows, batch ? batch : 1024, threads, g_fixture_ms);
            for (int m = 0; m < 3; m++)
                fprintf(j, " \"%s\":{\"secs\":%.3f,\"rows_per_s\":%.1f,\"busy_fraction\":%.4f,\"mean_in_flight\":%.2f,"
                        "\"calls\":%lld},\n", MODES[m], r[m].secs, r[m].rows_s, r[m].busy, r[m].mean_inflight,
                        (long long)r[m].calls);
            fprintf(j, " \"ratio_rows_per_s_async_old\":%.3f,\"ratio_busy_async_old\":%.3f,\"target_busy\":0.9,"
                    "\"views_equal\":%s}\n", rr, rb, equal ? "true" : "false");
            fclose(j);
            printf("wrote %s\n", out);
        }
    }
    if (!equal)
        fprintf(stderr, "--- old ---\n%s--- sync ---\n%s--- async ---\n%s", r[0].view, r[1].view, r[2].view);
    for (int m = 0; m < 3; m++)
        free(r[m].view);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return equal && nonempty ? 0 : 1;
}
