/*
 * idle_select.c — how long a statement that reads views waits on an idle engine (issue 11: a lone
 * SELECT took ~100 ms because idle pipelines noticed its catch-up request only when their wait
 * for input ended). In one process, on the default log, with two views in two pipelines:
 *
 *   CREATE STREAM ev (id INT KEY, g INT, v INT);
 *   CREATE CONTINUOUS VIEW w AS SELECT g, COUNT(*) AS n, SUM(v) AS s FROM ev GROUP BY g;
 *   CREATE CONTINUOUS VIEW x AS SELECT id, v FROM ev WHERE v > 3;
 *
 * it times, N times each: INSERT one row then SELECT from w (the SELECT must see the row: the
 * bench checks the count), and a lone SELECT with nothing new. The ceiling, measured in the same
 * run, is the same query read straight from the view table with SQLite (what a SELECT costs with
 * no catch-up at all); the ratios say how much the catch-up adds. The engine runs with its
 * default max_latency_ms (100 ms) unless --max-latency-ms is given.
 * Writes JSON to bench/results/idle_select.json.
 *
 * usage: bench_idle_select [--n N] [--max-latency-ms MS] [--out FILE]
 */
#include "ss_engine.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(ss_engine_t *e, const char *sql, ss_buf_t *out)
{
    char err[SS_ERRSZ] = "";
    ss_buf_t tmp = SS_BUF_INIT;
    int rc = ss_engine_exec(e, sql, strlen(sql), "bench", out ? out : &tmp, err, sizeof err);
    ss_buf_free(&tmp);
    if (rc)
        fprintf(stderr, "bench_idle_select: %s: %s\n", sql, err);
    return rc;
}

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

static double ms_since(int64_t t0) { return (ss_now_ns() - t0) / 1e6; }

/* The ceiling: the query read straight from the view table (no engine, no catch-up). */
static double raw_select_ms(const char *db, int n)
{
    sqlite3 *c = NULL;
    double *v = calloc((size_t)n, sizeof *v), p50 = -1;
    if (v && sqlite3_open_v2(db, &c, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        for (int i = 0; i < n; i++) {
            int64_t t0 = ss_now_ns();
            sqlite3_stmt *q = NULL;
            if (sqlite3_prepare_v2(c, "SELECT * FROM view_w ORDER BY 1", -1, &q, NULL) == SQLITE_OK)
                while (sqlite3_step(q) == SQLITE_ROW)
                    ;
            sqlite3_finalize(q);
            v[i] = ms_since(t0);
        }
        p50 = pct(v, n, 0.5);
    }
    sqlite3_close(c);
    free(v);
    return p50;
}

int main(int argc, char **argv)
{
    int n = 50, max_latency = 0;
    const char *outpath = "bench/results/idle_select.json";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-latency-ms"))
            max_latency = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            outpath = argv[i + 1];
    }
    if (n < 1)
        n = 1;
    char dir[] = "/tmp/semstream-bench-idle-XXXXXX", db[128];
    if (!mkdtemp(dir))
        return 1;
    snprintf(db, sizeof db, "%s/state.db", dir);
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.catch_up = 1;
    o.max_latency_ms = max_latency;
    ss_engine_t *e = NULL;
    char err[SS_ERRSZ] = "";
    if (ss_engine_open(&o, &e, err, sizeof err)) {
        fprintf(stderr, "bench_idle_select: %s\n", err);
        return 1;
    }
    int rc = run(e, "CREATE STREAM ev (id INT KEY, g INT, v INT) WITH (topic = 'ev', format = 'json')", NULL);
    rc = rc ? rc : run(e, "CREATE CONTINUOUS VIEW w AS SELECT g, COUNT(*) AS n, SUM(v) AS s FROM ev GROUP BY g", NULL);
    rc = rc ? rc : run(e, "CREATE CONTINUOUS VIEW x AS SELECT id, v FROM ev WHERE v > 3", NULL);
    rc = rc ? rc : run(e, "SELECT * FROM w", NULL); /* warm */
    double *ins = calloc((size_t)n, sizeof *ins), *sel = calloc((size_t)n, sizeof *sel);
    double *lone = calloc((size_t)n, sizeof *lone);
    ss_buf_t out = SS_BUF_INIT;
    char sql[160];
    for (int i = 0; !rc && i < n; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO ev VALUES (%d, 1, %d)", i, i % 7);
        int64_t t0 = ss_now_ns();
        rc = run(e, sql, NULL);
        ins[i] = ms_since(t0);
        ss_buf_reset(&out);
        t0 = ss_now_ns();
        rc = rc ? rc : run(e, "SELECT n FROM w WHERE g = 1", &out);
        sel[i] = ms_since(t0);
        char want[32];
        snprintf(want, sizeof want, " %d\n", i + 1);
        if (!rc && !strstr(ss_buf_cstr(&out), want)) {
            fprintf(stderr, "bench_idle_select: after %d inserts the SELECT read:\n%s", i + 1, ss_buf_cstr(&out));
            rc = 1;
        }
    }
    for (int i = 0; !rc && i < n; i++) {
        int64_t t0 = ss_now_ns();
        rc = run(e, "SELECT * FROM w ORDER BY 1", NULL);
        lone[i] = ms_since(t0);
    }
    ss_buf_free(&out);
    ss_engine_close(e);
    if (rc)
        return 1;
    double raw = raw_select_ms(db, n);
    double i50 = pct(ins, n, 0.5), s50 = pct(sel, n, 0.5), s99 = pct(sel, n, 0.99);
    double l50 = pct(lone, n, 0.5), l99 = pct(lone, n, 0.99);
    printf("bench_idle_select: %d x (INSERT one row, then SELECT), max_latency_ms %d%s\n", n,
           max_latency ? max_latency : 100, max_latency ? "" : " (the default)");
    printf("  INSERT: p50 %.2f ms\n", i50);
    printf("  SELECT after the INSERT: p50 %.2f ms, p99 %.2f ms\n", s50, s99);
    printf("  lone SELECT (nothing new): p50 %.2f ms, p99 %.2f ms\n", l50, l99);
    printf("  ceiling, the view table read with SQLite: p50 %.3f ms; ratio SELECT-after-INSERT / ceiling %.1f\n", raw,
           raw > 0 ? s50 / raw : 0);
    FILE *f = fopen(outpath, "w");
    if (f) {
        fprintf(f, "{\"bench\":\"idle_select\",\"n\":%d,\"max_latency_ms\":%d,\"insert_p50_ms\":%.3f,"
                   "\"select_after_insert_p50_ms\":%.3f,\"select_after_insert_p99_ms\":%.3f,"
                   "\"lone_select_p50_ms\":%.3f,\"lone_select_p99_ms\":%.3f,\"ceiling_p50_ms\":%.4f,"
                   "\"ratio_p50\":%.2f}\n",
                n, max_latency ? max_latency : 100, i50, s50, s99, l50, l99, raw, raw > 0 ? s50 / raw : 0);
        fclose(f);
    }
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    free(ins);
    free(sel);
    free(lone);
    return system(cmd) != 0;
}
