/*
 * isolation.c — does a relational view's latency depend on a semantic view's?
 * (issue 11: "a relational view's latency must not depend on any semantic view's").
 *
 * One engine (in this process, on the durable log) with a relational view
 *   rel: SELECT grp, COUNT(*) FROM events GROUP BY grp
 * whose change latency is measured: a row with a new grp is INSERTed, and the time
 * until rel's change arrives through SUBSCRIBE (ss_engine_sub_next) is one sample;
 * one row every --pace-ms. Three phases, percentiles of each:
 *   A  rel alone;
 *   B  beside sem: SELECT id, txt FROM events WHERE SEM_FILTER(..., model = 'slow'),
 *      'slow' being bench_fixture_slow_server (a FIXTURE: an OpenAI-compatible
 *      server with deterministic answers) answering every request in --delay-ms
 *      (default 3000);
 *   C  the same while that server is down (killed) for --down-s seconds (default
 *      30), then started again on the same port.
 * Then sem must catch up (the time is reported) and equal a from-scratch run: a
 * second engine on a fresh state, fed the same rows, with the same fixture answering
 * without delay. Prints p50/p99 of each phase and the ratios p99(B)/p99(A) and
 * p99(C)/p99(A) (target <= 1.5); writes bench/results/isolation.json.
 *
 * usage: bench_isolation [--samples N] [--pace-ms P] [--delay-ms D] [--down-s S] [--ci]
 *   --ci: a short bounded run for CTest (15 samples per phase, 1.5 s answers, 4 s
 *   down) that fails unless rel never waits for the model (every p99 below the
 *   answer delay) and sem equals the from-scratch run; writes no JSON.
 */
#include "ss_base.h"
#include "ss_bench_util.h"
#include "ss_engine.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fixture {
    pid_t pid;
    int port;
    char url[160];
} fixture_t;

static char g_fixture_bin[1100];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#include "bench_children.h"

/* Starts the fixture server on port (0: any) answering after delay_ms. */
static void fixture_start(fixture_t *f, int port, int delay_ms)
{
    char p[16], d[16];
    snprintf(p, sizeof p, "%d", port);
    snprintf(d, sizeof d, "%d", delay_ms);
    int fd[2];
    if (pipe(fd))
        die("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(g_fixture_bin, g_fixture_bin, "--port", p, "--delay-ms", d, (char *)NULL);
        _exit(127);
    }
    child_add(pid);
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    char line[128] = "";
    for (int tries = 0; tries < 50; tries++) { /* the port may still be held a moment after a stop */
        if (in && fgets(line, sizeof line, in))
            break;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            child_del(pid);
            fclose(in);
            sleep_ms(200);
            fixture_start(f, port, delay_ms);
            return;
        }
    }
    if (in)
        fclose(in);
    line[strcspn(line, "\n")] = 0;
    if (strncmp(line, "http://127.0.0.1:", 17))
        die("%s printed '%s'", g_fixture_bin, line);
    f->pid = pid;
    f->port = atoi(line + 17);
    snprintf(f->url, sizeof f->url, "%s", line);
}

static void fixture_stop(fixture_t *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGKILL); /* down at once: connections refused from now on */
        waitpid(f->pid, NULL, 0);
        child_del(f->pid);
    }
    f->pid = 0;
}

static char *run_sql(ss_engine_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char sql[4096];
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    ss_buf_t out = SS_BUF_INIT;
    char err[SS_ERRSZ] = "";
    if (ss_engine_exec(e, sql, strlen(sql), "bench", &out, err, sizeof err))
        die("%s: %s", sql, err);
    return ss_buf_take(&out);
}

static ss_engine_t *open_engine(const char *dir)
{
    char db[1024], err[SS_ERRSZ];
    snprintf(db, sizeof db, "%s/st.db", dir);
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.max_latency_ms = 20;
    ss_engine_t *e = NULL;
    if (ss_engine_open(&o, &e, err, sizeof err))
        die("%s", err);
    return e;
}

typedef struct run {
    ss_engine_t *e;
    ss_engine_sub_t *sub;
    FILE *rows;      /* every row inserted, as JSON lines (for the from-scratch run) */
    int next_id;
    int pace_ms;
} run_t;

/* Inserts one row with a new group and returns the ms until rel's change arrived. */
static double one_sample(run_t *r)
{
    int id = r->next_id++;
    char want[64], err[SS_ERRSZ];
    snprintf(want, sizeof want, "{\"grp\":%d,", id);
    int64_t t0 = ss_now_ns();
    free(run_sql(r->e, "INSERT INTO events VALUES (%d, %d, 'item number %d of the benchmark');", id, id, id));
    fprintf(r->rows, "{\"id\":%d,\"grp\":%d,\"txt\":\"item number %d of the benchmark\"}\n", id, id, id);
    ss_buf_t got = SS_BUF_INIT;
    double ms = -1;
    while (ms < 0) {
        int rc = ss_engine_sub_next(r->sub, 100, &got, NULL, err, sizeof err);
        if (rc && rc != SS_ERR_TIMEOUT)
            die("SUBSCRIBE rel: %s", err);
        if (strstr(ss_buf_cstr(&got), want))
            ms = (ss_now_ns() - t0) / 1e6;
        else if (ss_now_ns() - t0 > 60000000000LL)
            die("no change of rel for row %d within 60 s", id);
    }
    ss_buf_free(&got);
    return ms;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats {
    int n;
    double p50, p99, max;
} stats_t;

static stats_t summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    stats_t s = {n, 0, 0, 0};
    if (n) {
        s.p50 = v[(n - 1) / 2];
        s.p99 = v[(int)((n - 1) * 0.99 + 0.5)];
        s.max = v[n - 1];
    }
    return s;
}

/* Samples until n taken (n > 0) or secs passed (n = 0). */
static stats_t phase(run_t *r, const char *name, int n, double secs, double *buf, int cap)
{
    int k = 0;
    int64_t t0 = ss_now_ns();
    while (k < cap && (n ? k < n : (ss_now_ns() - t0) / 1e9 < secs)) {
        buf[k++] = one_sample(r);
        sleep_ms(r->pace_ms);
    }
    stats_t s = summarize(buf, k);
    printf("  %-32s %4d samples  p50 %8.1f ms  p99 %8.1f ms  max %8.1f ms\n", name, s.n, s.p50, s.p99, s.max);
    fflush(stdout);
    return s;
}

static char *sem_rows(ss_engine_t *e) { return run_sql(e, "SELECT id, txt FROM sem ORDER BY id;"); }

static const char *SEM_VIEW = "CREATE CONTINUOUS VIEW sem AS SELECT id, txt FROM events WHERE "
                              "SEM_FILTER('Is this text about a benchmark? Text: {txt}', model = 'slow');";

static void define(ss_engine_t *e, const char *url)
{
    free(run_sql(e, "CREATE MODEL slow WITH (backend = 'openai', url = '%s', model = 'fixture', "
                    "max_concurrency = 64, max_in_flight = 256, timeout_ms = 60000);", url));
    free(run_sql(e, "CREATE STREAM events (id INT KEY, grp INT, txt TEXT);"));
}

int main(int argc, char **argv)
{
    g_bench_name = "bench_isolation";
    int samples = 150, pace_ms = 100, delay_ms = 3000, down_s = 30, ci = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--samples") && i + 1 < argc)
            samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pace-ms") && i + 1 < argc)
            pace_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--delay-ms") && i + 1 < argc)
            delay_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--down-s") && i + 1 < argc)
            down_s = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ci"))
            ci = 1;
        else
            die("usage: bench_isolation [--samples N] [--pace-ms P] [--delay-ms D] [--down-s S] [--ci]");
    }
    if (ci) {
        samples = 15;
        delay_ms = 1500;
        down_s = 4;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(g_fixture_bin, sizeof g_fixture_bin, "%s/bench_fixture_slow_server", self);
    if (access(g_fixture_bin, X_OK))
        die("%s not built", g_fixture_bin);
    char tmpl[] = "/tmp/ss_isolation_XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir)
        die("mkdtemp: %s", strerror(errno));
    char path[1200], dir2[1200];
    snprintf(path, sizeof path, "%s/rows.jsonl", dir);
    snprintf(dir2, sizeof dir2, "%s/scratch", dir);
    mkdir(dir2, 0755);

    fixture_t slow = {0};
    fixture_start(&slow, 0, delay_ms);
    printf("bench_isolation: fixture %s answers in %d ms; %d samples per phase, a row every %d ms\n", slow.url,
           delay_ms, samples, pace_ms);
    run_t r = {open_engine(dir), NULL, fopen(path, "w"), 1, pace_ms};
    define(r.e, slow.url);
    free(run_sql(r.e, "CREATE CONTINUOUS VIEW rel AS SELECT grp, COUNT(*) AS n FROM events GROUP BY grp;"));
    char err[SS_ERRSZ];
    if (ss_engine_sub_open(r.e, "rel", 0, &r.sub, err, sizeof err))
        die("%s", err);
    int cap = samples * 4 + down_s * 1000 / SS_MAX(pace_ms, 1) + 100;
    double *buf = malloc(sizeof(double) * (size_t)cap);
    phase(&r, "warm-up", 5, 0, buf, cap);
    stats_t a = phase(&r, "A  rel alone", samples, 0, buf, cap);
    free(run_sql(r.e, "%s", SEM_VIEW));
    phase(&r, "warm-up", 5, 0, buf, cap);
    stats_t b = phase(&r, "B  beside sem (slow model)", samples, 0, buf, cap);
    fixture_stop(&slow);
    char label[64];
    snprintf(label, sizeof label, "C  beside sem (server down %d s)", down_s);
    stats_t c = phase(&r, label, 0, down_s, buf, cap);
    char *show = run_sql(r.e, "SHOW VIEWS;");
    fixture_start(&slow, slow.port, delay_ms);
    int64_t t0 = ss_now_ns();
    if (ss_engine_run_until_idle(r.e, 600000, err, sizeof err))
        die("catching up: %s", err);
    double catch_s = (ss_now_ns() - t0) / 1e9;
    printf("  sem caught up %.1f s after the server came back (%d rows in all)\n", catch_s, r.next_id - 1);
    printf("  SHOW VIEWS while the server was down:\n%s", show);
    fclose(r.rows);
    char *got = sem_rows(r.e);
    ss_engine_sub_close(r.sub);
    ss_engine_close(r.e);
    fixture_stop(&slow);

    /* from scratch: a fresh state fed the same rows, the same answers without delay */
    fixture_t fast = {0};
    fixture_start(&fast, 0, 0);
    ss_engine_t *e2 = open_engine(dir2);
    define(e2, fast.url);
    free(run_sql(e2, "%s", SEM_VIEW));
    int64_t n = 0;
    if (ss_engine_load_jsonl(e2, "events", path, &n, err, sizeof err) ||
        ss_engine_run_until_idle(e2, 600000, err, sizeof err))
        die("from scratch: %s", err);
    char *want = sem_rows(e2);
    ss_engine_close(e2);
    fixture_stop(&fast);
    int equal = !strcmp(got, want);
    const char *rows_line = strrchr(want, '(');
    printf("  sem %s the from-scratch run (%s", equal ? "equals" : "DIFFERS FROM", rows_line ? rows_line + 1 : "?\n");
    if (!equal)
        fprintf(stderr, "--- incremental ---\n%s--- from scratch ---\n%s", got, want);
    double rb = a.p99 > 0 ? b.p99 / a.p99 : 0, rc = a.p99 > 0 ? c.p99 / a.p99 : 0;
    printf("ratio p99(beside slow)/p99(alone) = %.2f, p99(beside down)/p99(alone) = %.2f (target <= 1.5)\n", rb, rc);
    int ok = equal;
    if (ci) {
        ok &= b.p99 < delay_ms && c.p99 < delay_ms;
        if (b.p99 >= delay_ms || c.p99 >= delay_ms)
            fprintf(stderr, "bench_isolation: rel waited for the model (p99 %.0f / %.0f ms, answers take %d ms)\n",
                    b.p99, c.p99, delay_ms);
    } else {
        char out[1200];
        ss_bench_result_path("isolation.json", out, sizeof out);
        FILE *f = fopen(out, "w");
        if (f) {
            fprintf(f, "{\"bench\":\"isolation\",\"samples\":%d,\"pace_ms\":%d,\"delay_ms\":%d,\"down_s\":%d,\n"
                       " \"alone\":{\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f},\n"
                       " \"beside_slow\":{\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f},\n"
                       " \"beside_down\":{\"n\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f},\n"
                       " \"ratio_p99_slow\":%.3f,\"ratio_p99_down\":%.3f,\"target\":1.5,\n"
                       " \"catch_up_s\":%.2f,\"rows\":%d,\"equals_from_scratch\":%s}\n",
                    samples, pace_ms, delay_ms, down_s, a.p50, a.p99, a.max, b.p50, b.p99, b.max, c.n, c.p50, c.p99,
                    c.max, rb, rc, catch_s, r.next_id - 1, equal ? "true" : "false");
            fclose(f);
            printf("wrote %s\n", out);
        }
    }
    free(show);
    free(got);
    free(want);
    free(buf);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return ok ? 0 : 1;
}
