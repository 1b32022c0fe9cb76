/*
 * log_restart.c — the acceptance run of the durable log: N JSON rows (default
 * 1,000,000: inserts, and deletes of every tenth row's neighbour) through
 * `semstream run --load` on the default log into a COUNT(*) view and a GROUP BY
 * view, first uninterrupted (the baseline), then with `kill -9` at random
 * moments (during the load and during the processing) and the same command
 * started again each time, until an --until-idle run completes. Both runs must
 * end with exact counts (checked against the input) and the log holding every
 * line once. Prints rows/s of each (the killed run's wall time includes the
 * restarts and the work lost to them), their ratio, and the peak RSS of the
 * largest semstream process; writes JSON to bench/results/log_restart.json.
 *
 * usage: bench_log_restart [--n N] [--kills K] [--seed S] [--bin PATH] [--out FILE]
 *   (run from the repository root or the build directory; --bin defaults to
 *    ./semstream or build/semstream)
 */
#include "ss_bench_util.h"
#include "ss_log.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NGRP 7

static const char *SCRIPT =
    "CREATE STREAM IF NOT EXISTS events (id INT KEY, grp INT, v INT) WITH (partitions = 4);\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS cnt AS SELECT COUNT(*) AS n FROM events;\n"
    "CREATE CONTINUOUS VIEW IF NOT EXISTS per_grp WITH (sink_topic = 'out_grp') AS\n"
    "    SELECT grp, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY grp;\n";

typedef struct expect {
    long long n, gn[NGRP], gt[NGRP];
} expect_t;

static void write_rows(const char *path, int64_t n, expect_t *x)
{
    FILE *f = fopen(path, "w");
    char *present = calloc((size_t)n, 1);
    memset(x, 0, sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        if (i % 10 == 9) {
            fprintf(f, "{\"op\":\"delete\",\"id\":%lld}\n", (long long)(i - 5));
            present[i - 5] = 0;
        } else {
            fprintf(f, "{\"id\":%lld,\"grp\":%d,\"v\":%d}\n", (long long)i, (int)(i % NGRP), (int)(i % 100));
            present[i] = 1;
        }
    }
    fclose(f);
    for (int64_t i = 0; i < n; i++)
        if (present[i]) {
            x->n++;
            x->gn[i % NGRP]++;
            x->gt[i % NGRP] += i % 100;
        }
    free(present);
}

static pid_t spawn(const char *bin, const char *const *args)
{
    fflush(stdout); /* or the child's freopen writes our buffered lines again */
    pid_t pid = fork();
    if (pid == 0) {
        FILE *null = freopen("/dev/null", "w", stdout);
        (void)null;
        execv(bin, (char *const *)args);
        _exit(127);
    }
    return pid;
}

/* Waits for pid; *rss_mb = max(*rss_mb, its peak RSS). Returns the exit code, 128+signal if killed. */
static int reap(pid_t pid, double *rss_mb)
{
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    wait4(pid, &st, 0, &ru);
    if (ru.ru_maxrss / 1024.0 > *rss_mb)
        *rss_mb = ru.ru_maxrss / 1024.0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 1 if the views in db equal x. */
static int check(const char *db, const expect_t *x, char *why, size_t n)
{
    sqlite3 *h = NULL;
    int ok = sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK;
    sqlite3_stmt *st = NULL;
    long long cnt = -1, gn[NGRP] = {0}, gt[NGRP] = {0};
    if (ok && sqlite3_prepare_v2(h, "SELECT n FROM view_cnt", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        cnt = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (ok && sqlite3_prepare_v2(h, "SELECT grp, n, total FROM view_per_grp", -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW) {
            int g = sqlite3_column_int(st, 0);
            if (g >= 0 && g < NGRP) {
                gn[g] = sqlite3_column_int64(st, 1);
                gt[g] = sqlite3_column_int64(st, 2);
            }
        }
    sqlite3_finalize(st);
    sqlite3_close(h);
    if (cnt != x->n) {
        snprintf(why, n, "COUNT(*) = %lld, expected %lld", cnt, x->n);
        return 0;
    }
    for (int g = 0; g < NGRP; g++)
        if (gn[g] != x->gn[g] || gt[g] != x->gt[g]) {
            snprintf(why, n, "group %d: %lld rows, total %lld; expected %lld, %lld", g, gn[g], gt[g], x->gn[g], x->gt[g]);
            return 0;
        }
    return 1;
}

static int64_t log_lines(const char *logp)
{
    char err[SS_ERRSZ];
    ss_log_t *l = NULL;
    ss_log_topic_t t;
    int64_t lo[16], hi[16], n = 0;
    if (ss_log_open(logp, &l, err, sizeof err))
        return -1;
    if (!ss_log_topic_get(l, "events", &t, err, sizeof err) && t.partitions <= 16 &&
        !ss_log_watermarks(l, &t, lo, hi, err, sizeof err))
        for (int p = 0; p < t.partitions; p++)
            n += hi[p] - lo[p];
    ss_log_close(l);
    return n;
}

typedef struct result {
    double secs, rss_mb;
    int kills;
} result_t;

/* One complete run in dir: kills first (0 for the baseline), then --until-idle. */
static int run_once(const char *bin, const char *dir, const char *rows, int kills, int64_t n, const expect_t *x,
                    result_t *r)
{
    char script[1024], db[1024], logp[1100], load[1200], why[256];
    snprintf(script, sizeof script, "%s/views.sql", dir);
    snprintf(db, sizeof db, "%s/state.db", dir);
    snprintf(logp, sizeof logp, "%s.log", db);
    snprintf(load, sizeof load, "events=%s", rows);
    FILE *f = fopen(script, "w");
    fputs(SCRIPT, f);
    fclose(f);
    const char *args[] = {"semstream", "run", script, "--db", db, "--load", load, "--quiet", NULL};
    const char *fin[] = {"semstream", "run", script, "--db", db, "--load", load, "--until-idle", "--quiet", NULL};
    memset(r, 0, sizeof *r);
    int64_t t0 = ss_now_ns();
    for (int k = 0; k < kills; k++) {
        pid_t pid = spawn(bin, args);
        /* spread the kills over the load (first ones) and the processing */
        sleep_ms(100 + rand() % (k < kills / 3 ? 1500 : 6000));
        kill(pid, SIGKILL);
        reap(pid, &r->rss_mb);
        r->kills++;
        printf("  kill %d: %lld lines in the log\n", k + 1, (long long)log_lines(logp));
        fflush(stdout);
    }
    int rc = reap(spawn(bin, fin), &r->rss_mb);
    r->secs = (ss_now_ns() - t0) / 1e9;
    if (rc) {
        fprintf(stderr, "bench_log_restart: the final run exited with %d\n", rc);
        return 1;
    }
    if (log_lines(logp) != n) {
        fprintf(stderr, "bench_log_restart: the log holds %lld lines, not %lld\n", (long long)log_lines(logp),
                (long long)n);
        return 1;
    }
    if (!check(db, x, why, sizeof why)) {
        fprintf(stderr, "bench_log_restart: wrong views: %s\n", why);
        return 1;
    }
    return 0;
}

static void rm_rf(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_log_restart: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    int64_t n = 1000000;
    int kills = 8;
    unsigned seed = (unsigned)time(NULL);
    const char *bin = NULL, *out = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n")) n = strtoll(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--kills")) kills = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--bin")) bin = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else break;
    }
    if (argc % 2 == 0 || n < 10 || kills < 0) {
        fprintf(stderr, "usage: bench_log_restart [--n N] [--kills K] [--seed S] [--bin PATH] [--out FILE]\n");
        return 2;
    }
    if (!bin)
        bin = access("./semstream", X_OK) == 0 ? "./semstream" : "build/semstream";
    if (access(bin, X_OK)) {
        fprintf(stderr, "bench_log_restart: no semstream binary at %s (--bin)\n", bin);
        return 1;
    }
    srand(seed);
    char tmpl[] = "/tmp/ss_bench_restartXXXXXX", rows[1100], d1[1100], d2[1100];
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(rows, sizeof rows, "%s/rows.jsonl", tmpl);
    snprintf(d1, sizeof d1, "%s/plain", tmpl);
    snprintf(d2, sizeof d2, "%s/killed", tmpl);
    mkdir(d1, 0755);
    mkdir(d2, 0755);
    expect_t x;
    write_rows(rows, n, &x);
    printf("bench_log_restart: %lld rows (%lld remain after the deletes), seed %u\n", (long long)n, x.n, seed);
    result_t base, killed;
    printf("uninterrupted:\n");
    int rc = run_once(bin, d1, rows, 0, n, &x, &base);
    printf("  %.1f s, %.0f rows/s, peak RSS %.1f MB, exact counts\n", base.secs, n / base.secs, base.rss_mb);
    printf("with %d kill -9:\n", kills);
    rc = rc ? rc : run_once(bin, d2, rows, kills, n, &x, &killed);
    if (rc) {
        fprintf(stderr, "bench_log_restart: failed; files kept in %s\n", tmpl);
        return 1;
    }
    printf("  %.1f s, %.0f rows/s, peak RSS %.1f MB, exact counts, the log holds each line once\n", killed.secs,
           n / killed.secs, killed.rss_mb);
    printf("rows/s with kills / uninterrupted: %.2f\n", base.secs / killed.secs);
    char path[1024];
    const char *op = out ? out : ss_bench_result_path("log_restart.json", path, sizeof path);
    FILE *f = fopen(op, "w");
    if (f) {
        fprintf(f,
                "{\"bench\":\"log_restart\",\"rows\":%lld,\"kills\":%d,\"seed\":%u,\"plain_secs\":%.2f,"
                "\"plain_rows_per_s\":%.0f,\"plain_peak_rss_mb\":%.1f,\"killed_secs\":%.2f,"
                "\"killed_rows_per_s\":%.0f,\"killed_peak_rss_mb\":%.1f,\"ratio\":%.3f,\"exact\":true}\n",
                (long long)n, kills, seed, base.secs, n / base.secs, base.rss_mb, killed.secs, n / killed.secs,
                killed.rss_mb, base.secs / killed.secs);
        fclose(f);
        printf("wrote %s\n", op);
    }
    rm_rf(tmpl);
    return 0;
}
