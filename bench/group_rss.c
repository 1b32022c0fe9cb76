/*
 * group_rss.c — memory and throughput of the incremental GROUP BY operator
 * over many distinct keys. Feeds N rows with N distinct keys (default
 * 1,000,000) through SS_PN_GROUP (COUNT(*), SUM(v), MIN(v): MIN keeps a value
 * multiset too) in micro-batches, each in one transaction on a file-backed
 * SQLite state store (WAL), then retracts 10% of the rows. Prints peak RSS and
 * rows/s and writes JSON (with the ratio to the 512 MB budget).
 *
 * usage: bench_group_rss [--keys N] [--batch B] [--cache-mb M] [--out FILE] [--db FILE]
 */
#include "ss_op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define BUDGET_MB 512.0

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

static ss_plan_node_t *group_node(void)
{
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_GROUP);
    n->id = 1;
    n->label = ss_strdup("bench_group");
    n->schema = ss_schema_new(4);
    ss_schema_set(n->schema, 0, "k", SS_COL_INT, 0);
    ss_schema_set(n->schema, 1, "cnt", SS_COL_INT, 0);
    ss_schema_set(n->schema, 2, "sum_v", SS_COL_INT, 0);
    ss_schema_set(n->schema, 3, "min_v", SS_COL_INT, 0);
    n->ngroup = 1;
    n->group_cols = calloc(1, sizeof(int));
    n->naggs = 3;
    n->aggs = calloc(3, sizeof *n->aggs);
    n->aggs[0].fn = SS_AGG_COUNT;
    n->aggs[1].fn = SS_AGG_SUM;
    n->aggs[2].fn = SS_AGG_MIN;
    for (int i = 1; i < 3; i++) {
        n->aggs[i].arg = ss_expr_new(SS_EX_COL);
        n->aggs[i].arg->col = 1;
    }
    return n;
}

static ss_row_t *row_kv(int64_t k)
{
    ss_row_t *r = ss_row_new(2);
    ss_value_t a = ss_val_int(k), b = ss_val_int((k * 7919) % 1000);
    ss_row_set(r, 0, &a);
    ss_row_set(r, 1, &b);
    return r;
}

/* Feeds keys [from, to) with weight w in batches; returns the net number of output rows. */
static int run_phase(ss_op_t *op, ss_op_ctx_t *ctx, int64_t from, int64_t to, int64_t w, int64_t batch,
                     int64_t *net)
{
    char err[SS_ERRSZ];
    for (int64_t b = from; b < to; b += batch) {
        ss_zset_t in, out;
        ss_zset_init(&in);
        ss_zset_init(&out);
        for (int64_t k = b; k < to && k < b + batch; k++)
            ss_zset_add(&in, row_kv(k), w);
        sqlite3_exec(ctx->db, "BEGIN", NULL, NULL, NULL);
        int rc = op->vt->apply(op, ctx, 0, &in, &out, err, sizeof err);
        if (rc) {
            fprintf(stderr, "apply: %s\n", err);
            return rc;
        }
        if (sqlite3_exec(ctx->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            fprintf(stderr, "commit: %s\n", sqlite3_errmsg(ctx->db));
            return 1;
        }
        for (size_t i = 0; i < out.n; i++)
            *net += out.e[i].w;
        ss_zset_destroy(&in);
        ss_zset_destroy(&out);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int64_t keys = 1000000, batch = 10000, cache_mb = 0;
    const char *outpath = "bench/results/group_rss.json";
    char dbpath[256];
    snprintf(dbpath, sizeof dbpath, "/tmp/semstream_group_rss_%d.db", (int)getpid());
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--keys"))
            keys = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            outpath = argv[i + 1];
        else if (!strcmp(argv[i], "--cache-mb"))
            cache_mb = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--db"))
            snprintf(dbpath, sizeof dbpath, "%s", argv[i + 1]);
    }
    if (keys <= 0 || batch <= 0) {
        fprintf(stderr, "usage: %s [--keys N] [--batch B] [--out FILE] [--db FILE]\n", argv[0]);
        return 2;
    }
    unlink(dbpath);
    sqlite3 *db;
    if (sqlite3_open(dbpath, &db) != SQLITE_OK) {
        fprintf(stderr, "open %s: %s\n", dbpath, sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
    if (cache_mb > 0) { /* default: SQLite's own page cache (2 MB) */
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%lld", (long long)cache_mb * 1024);
        sqlite3_exec(db, pragma, NULL, NULL, NULL);
    }
    ss_op_ctx_t ctx = {db, NULL, NULL};
    ss_plan_node_t *n = group_node();
    ss_op_t *op;
    char err[SS_ERRSZ];
    if (ss_op_new(n, &op, err, sizeof err) || op->vt->init(op, &ctx, err, sizeof err)) {
        fprintf(stderr, "init: %s\n", err);
        return 1;
    }
    double rss0 = peak_rss_mb();
    int64_t net = 0, t0 = ss_now_ns();
    if (run_phase(op, &ctx, 0, keys, 1, batch, &net))
        return 1;
    double ins_s = (double)(ss_now_ns() - t0) / 1e9;
    int64_t groups_after_insert = net;
    int64_t ndel = keys / 10, t1 = ss_now_ns();
    if (run_phase(op, &ctx, 0, ndel, -1, batch, &net))
        return 1;
    double del_s = (double)(ss_now_ns() - t1) / 1e9;
    double rss = peak_rss_mb();
    int ok = groups_after_insert == keys && net == keys - ndel;
    printf("group_rss: %lld distinct keys, batch %lld: insert %.2f s (%.0f rows/s), delete %lld rows %.2f s "
           "(%.0f rows/s), peak RSS %.1f MB (%.1f MB before), %.3f of the %.0f MB budget, groups %s\n",
           (long long)keys, (long long)batch, ins_s, (double)keys / ins_s, (long long)ndel, del_s,
           (double)ndel / del_s, rss, rss0, rss / BUDGET_MB, BUDGET_MB, ok ? "correct" : "WRONG");
    FILE *f = fopen(outpath, "w");
    if (f) {
        fprintf(f,
                "{\n  \"bench\": \"group_rss\",\n  \"keys\": %lld,\n  \"batch\": %lld,\n"
                "  \"aggregates\": \"COUNT(*), SUM(v), MIN(v)\",\n  \"state\": \"SQLite file, WAL\",\n"
                "  \"sqlite_cache_mb\": %lld,\n"
                "  \"insert_seconds\": %.3f,\n  \"insert_rows_per_s\": %.0f,\n  \"delete_rows\": %lld,\n"
                "  \"delete_seconds\": %.3f,\n  \"delete_rows_per_s\": %.0f,\n  \"peak_rss_mb\": %.1f,\n"
                "  \"budget_mb\": %.0f,\n  \"rss_budget_ratio\": %.4f,\n  \"groups_correct\": %s\n}\n",
                (long long)keys, (long long)batch, (long long)cache_mb, ins_s, (double)keys / ins_s,
                (long long)ndel, del_s, (double)ndel / del_s, rss, BUDGET_MB, rss / BUDGET_MB, ok ? "true" : "false");
        fclose(f);
    } else
        fprintf(stderr, "cannot write %s\n", outpath);
    ss_op_destroy(op);
    ss_plan_node_free(n);
    sqlite3_close(db);
    unlink(dbpath);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", dbpath);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", dbpath);
    unlink(wal);
    return ok ? 0 : 1;
}
