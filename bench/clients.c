/*
 * clients.c — how `semstream serve` answers many clients at once: 200 SELECTs
 * arriving together over the PostgreSQL protocol (libpq, each on its own
 * connection opened beforehand) and over HTTP (libcurl, a thread each), with
 * /healthz probed while they run. The baseline, measured in the same run, is
 * one client sending the same SELECT 200 times in a row: the ratio of the
 * burst's median latency to the lone client's says how much waiting the burst
 * adds (a server serving one statement at a time with a catch-up each would be
 * near 100x). Starts the built binary (BUILD/semstream) on free ports, writes
 * bench/results/clients.json.
 *
 *   bench_clients [--clients N] [--rows R] [--out FILE]
 */
#include "ss_base.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <libgen.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_http, g_pg;

static double now_ms(void) { return ss_now_ns() / 1e6; }

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static size_t sink(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static long http(const char *path, const char *body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_http, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

static PGconn *pg(void)
{
    char ci[128];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=bench dbname=semstream", g_pg);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_clients: %s", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

static const char *Q = "SELECT g, COUNT(*) AS n, SUM(v) AS s FROM w GROUP BY g ORDER BY g";

typedef struct job {
    PGconn *c;
    pthread_barrier_t *go;
    double ms;
    int ok;
} job_t;

static void *pg_one(void *arg)
{
    job_t *j = arg;
    pthread_barrier_wait(j->go);
    double t = now_ms();
    PGresult *r = PQexec(j->c, Q);
    j->ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    j->ms = now_ms() - t;
    PQclear(r);
    return NULL;
}

static void *http_one(void *arg)
{
    job_t *j = arg;
    pthread_barrier_wait(j->go);
    double t = now_ms();
    j->ok = http("/sql", Q) == 200;
    j->ms = now_ms() - t;
    return NULL;
}

typedef struct probe {
    volatile int stop;
    double worst;
    int n;
} probe_t;

static void *probe_health(void *arg)
{
    probe_t *p = arg;
    while (!p->stop) {
        double t = now_ms();
        if (http("/healthz", NULL) == 200) {
            p->worst = SS_MAX(p->worst, now_ms() - t);
            p->n++;
        }
        usleep(20000);
    }
    return NULL;
}

/* The burst: n clients at once; returns p50 (p99, wall into *p99, *wall). */
static double burst(int n, int use_pg, PGconn **conns, double *p99, double *wall, double *health)
{
    job_t *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n + 1);
    probe_t pr = {0, 0, 0};
    pthread_t pt;
    pthread_create(&pt, NULL, probe_health, &pr);
    for (int i = 0; i < n; i++) {
        jobs[i] = (job_t){use_pg ? conns[i] : NULL, &go, 0, 0};
        pthread_create(&th[i], NULL, use_pg ? pg_one : http_one, &jobs[i]);
    }
    double t0 = now_ms();
    pthread_barrier_wait(&go);
    double *lat = calloc((size_t)n, sizeof *lat);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        lat[i] = jobs[i].ms;
        ok += jobs[i].ok;
    }
    *wall = now_ms() - t0;
    pr.stop = 1;
    pthread_join(pt, NULL);
    *health = pr.worst;
    if (ok != n)
        fprintf(stderr, "bench_clients: %d of %d requests failed\n", n - ok, n);
    double p50 = pct(lat, n, 0.5);
    *p99 = pct(lat, n, 0.99);
    free(lat);
    free(jobs);
    free(th);
    pthread_barrier_destroy(&go);
    return p50;
}

int main(int argc, char **argv)
{
    int n = 200, rows = 10000;
    const char *out = "bench/results/clients.json";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--clients"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows"))
            rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
    }
    char self[PATH_MAX], bin[PATH_MAX + 16], dir[] = "/tmp/semstream-bench-clients-XXXXXX";
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    self[l > 0 ? l : 0] = 0;
    snprintf(bin, sizeof bin, "%s/semstream", dirname(self));
    if (!mkdtemp(dir))
        return 1;
    char db[128], log[128];
    snprintf(db, sizeof db, "%s/state.db", dir);
    snprintf(log, sizeof log, "%s/serve.log", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, "semstream", "serve", "--db", db, "--port", "0", "--pg-port", "0", "--max-connections", "1000",
              "--max-client-connections", "1000", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600 && (!g_http || !g_pg); i++) {
        usleep(50000);
        char *t = NULL;
        FILE *f = fopen(log, "r");
        if (f) {
            t = calloc(1, 65536);
            if (fread(t, 1, 65535, f) == 0)
                t[0] = 0;
            fclose(f);
        }
        const char *h = t ? strstr(t, "http://127.0.0.1:") : NULL, *p = t ? strstr(t, "PostgreSQL protocol on ") : NULL;
        if (h)
            g_http = atoi(h + 17);
        if (p && (p = strchr(p + 23, ':')))
            g_pg = atoi(p + 1);
        free(t);
    }
    if (!g_http || !g_pg) {
        fprintf(stderr, "bench_clients: serve did not start (see %s)\n", log);
        kill(pid, SIGTERM);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    PGconn *c = pg();
    PQclear(PQexec(c, "CREATE STREAM ev (id INT KEY, g INT, v INT) WITH (topic = 'ev', format = 'json')"));
    PQclear(PQexec(c, "CREATE CONTINUOUS VIEW w AS SELECT id, g, v FROM ev"));
    ss_buf_t ins = SS_BUF_INIT;
    for (int i = 0; i < rows; i += 1000) {
        ss_buf_reset(&ins);
        ss_buf_puts(&ins, "INSERT INTO ev VALUES ");
        for (int k = i; k < i + 1000 && k < rows; k++)
            ss_buf_printf(&ins, "%s(%d, %d, %d)", k > i ? ", " : "", k, k % 50, k % 7);
        PQclear(PQexec(c, ss_buf_cstr(&ins)));
    }
    ss_buf_free(&ins);
    PQclear(PQexec(c, Q)); /* warm: caught up */
    /* the baseline: one client, n SELECTs in a row */
    double *lone = calloc((size_t)n, sizeof *lone);
    for (int i = 0; i < n; i++) {
        double t = now_ms();
        PQclear(PQexec(c, Q));
        lone[i] = now_ms() - t;
    }
    double base = pct(lone, n, 0.5);
    PGconn **conns = calloc((size_t)n, sizeof *conns);
    for (int i = 0; i < n; i++)
        conns[i] = pg();
    double pg99, pgwall, pgh, h99, hwall, hh;
    double pg50 = burst(n, 1, conns, &pg99, &pgwall, &pgh);
    double h50 = burst(n, 0, NULL, &h99, &hwall, &hh);
    for (int i = 0; i < n; i++)
        PQfinish(conns[i]);
    PQfinish(c);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    printf("bench_clients: %d clients at once, a GROUP BY over %d rows\n", n, rows);
    printf("  one client in a row (baseline): p50 %.2f ms\n", base);
    printf("  pgwire burst: p50 %.1f ms, p99 %.1f ms, all done in %.0f ms; /healthz worst %.1f ms; ratio p50/baseline "
           "%.1f\n", pg50, pg99, pgwall, pgh, pg50 / base);
    printf("  HTTP burst:   p50 %.1f ms, p99 %.1f ms, all done in %.0f ms; /healthz worst %.1f ms; ratio p50/baseline "
           "%.1f\n", h50, h99, hwall, hh, h50 / base);
    FILE *f = fopen(out, "w");
    if (f) {
        fprintf(f, "{\"bench\":\"clients\",\"clients\":%d,\"rows\":%d,\"baseline_p50_ms\":%.3f,"
                   "\"pgwire\":{\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"wall_ms\":%.1f,\"healthz_worst_ms\":%.2f,"
                   "\"ratio_p50\":%.2f},\"http\":{\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"wall_ms\":%.1f,"
                   "\"healthz_worst_ms\":%.2f,\"ratio_p50\":%.2f}}\n",
                n, rows, base, pg50, pg99, pgwall, pgh, pg50 / base, h50, h99, hwall, hh, h50 / base);
        fclose(f);
    }
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    free(lone);
    free(conns);
    return 0;
}
