/*
 * view_disk.c — disk used per row by view tables and operator state (issue 11: "disk use per view
 * row within 2x of the row's size"). Loads N rows of ~B bytes of text (default 20,000 x 2,000)
 * into a keyed stream through the engine, as a user would (--load's path: JSON lines appended to
 * the stream's topic in the engine's durable log, <db>.log), with two views over it:
 *
 *   CREATE STREAM docs (id INT KEY, body TEXT) WITH (partitions = 16);
 *   CREATE CONTINUOUS VIEW docs_v AS SELECT id, body FROM docs;        -- a view table
 *   CREATE CONTINUOUS VIEW bodies AS SELECT DISTINCT body FROM docs;   -- distinct's row store
 *
 * then measures, with SQLite's dbstat, the pages of each view table and of each operator's state
 * tables (with their indexes; nodes from the registry ss_nodes), and prints bytes per row against
 * the row's own size (8 bytes for the INT, the text's bytes): every ratio must be
 * at most 2. (The bench checks that every row arrived.)
 * Writes JSON to bench/results/view_disk.json.
 *
 * usage: bench_view_disk [--rows N] [--bytes B] [--out FILE] [--dir DIR]
 */
#include "ss_engine.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(ss_engine_t *e, const char *sql, ss_buf_t *out)
{
    char err[SS_ERRSZ] = "";
    ss_buf_t tmp = SS_BUF_INIT;
    int rc = ss_engine_exec(e, sql, strlen(sql), "bench", out ? out : &tmp, err, sizeof err);
    ss_buf_free(&tmp);
    if (rc)
        fprintf(stderr, "bench_view_disk: %s: %s\n", sql, err);
    return rc;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

int main(int argc, char **argv)
{
    int rows = 20000, bytes = 2000;
    const char *outpath = "bench/results/view_disk.json", *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
            bytes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            outpath = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_view_disk [--rows N] [--bytes B] [--out FILE] [--dir DIR]\n");
            return 2;
        }
    }
    char tmpl[] = "/tmp/semstream-bench-XXXXXX";
    if (!dir && !(dir = mkdtemp(tmpl))) {
        perror("mkdtemp");
        return 2;
    }
    char db[1024], jsonl[1024];
    snprintf(db, sizeof db, "%s/state.db", dir);
    snprintf(jsonl, sizeof jsonl, "%s/docs.jsonl", dir);
    /* the rows: distinct bodies of `bytes` printable characters */
    FILE *f = fopen(jsonl, "w");
    if (!f) {
        perror(jsonl);
        return 2;
    }
    uint64_t s = 88172645463325252ULL;
    char *body = malloc((size_t)bytes + 1);
    for (int i = 0; i < rows; i++) {
        for (int k = 0; k < bytes; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            body[k] = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,"[s % 64];
        }
        body[bytes] = 0;
        fprintf(f, "{\"id\":%d,\"body\":\"%s\"}\n", i, body);
    }
    fclose(f);
    free(body);

    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.catch_up = 1;
    ss_engine_t *e = NULL;
    char err[SS_ERRSZ] = "";
    if (ss_engine_open(&o, &e, err, sizeof err) != SS_OK) {
        fprintf(stderr, "bench_view_disk: engine: %s\n", err);
        return 2;
    }
    int rc = run(e, "CREATE STREAM docs (id INT KEY, body TEXT) WITH (partitions = 16)", NULL);
    rc = rc ? rc : run(e, "CREATE CONTINUOUS VIEW docs_v AS SELECT id, body FROM docs", NULL);
    rc = rc ? rc : run(e, "CREATE CONTINUOUS VIEW bodies AS SELECT DISTINCT body FROM docs", NULL);
    /* an INSERT creates the topic with the stream's 16 partitions (--load alone would create one) */
    rc = rc ? rc : run(e, "INSERT INTO docs VALUES (-1, 'x')", NULL);
    rc = rc ? rc : run(e, "DELETE FROM docs WHERE id = -1", NULL);
    int64_t sent = 0;
    if (!rc && (rc = ss_engine_load_jsonl(e, "docs", jsonl, &sent, err, sizeof err)))
        fprintf(stderr, "bench_view_disk: load: %s\n", err);
    if (!rc && (rc = ss_engine_run_until_idle(e, 600000, err, sizeof err)))
        fprintf(stderr, "bench_view_disk: run: %s\n", err);
    ss_engine_close(e);
    if (rc)
        return 1;

    sqlite3 *d = NULL;
    if (sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_view_disk: %s: %s\n", db, sqlite3_errmsg(d));
        return 1;
    }
    int64_t nview = q_int(d, "SELECT COALESCE(SUM(_mult), 0) FROM view_docs_v");
    int64_t ndistinct = q_int(d, "SELECT COALESCE(SUM(_mult), 0) FROM view_bodies");
    double row_bytes = 8.0 + bytes, ratio_max = 0;
    int64_t total = q_int(d, "SELECT SUM(pgsize) FROM dbstat");
    printf("bench_view_disk: %d rows of %d bytes of text (row size %.0f bytes: 8 for the INT + the text); "
           "%lld rows in docs_v, %lld in bodies\n",
           rows, bytes, row_bytes, (long long)nview, (long long)ndistinct);
    FILE *j = fopen(outpath, "w");
    if (j)
        fprintf(j, "{\"bench\":\"view_disk\",\"rows\":%d,\"text_bytes\":%d,\"row_bytes\":%.0f,\"parts\":[", rows,
                bytes, row_bytes);
    /* every table of state: the view tables (with their index) and each node's st_<id>_* tables (with
     * their indexes), attributed through the node registry */
    sqlite3_stmt *q = NULL;
    int k = 0;
    const char *parts_sql =
        "SELECT 'view table ' || label, label, NULL FROM ss_nodes WHERE kind = 'view' UNION ALL "
        "SELECT kind || ' state (node ' || id || ', view ' || view || ')', NULL, id FROM ss_nodes "
        "WHERE kind <> 'view'";
    if (sqlite3_prepare_v2(d, parts_sql, -1, &q, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_view_disk: %s\n", sqlite3_errmsg(d));
        return 1;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *what = (const char *)sqlite3_column_text(q, 0);
        char *sql = sqlite3_column_type(q, 2) == SQLITE_NULL
                        ? sqlite3_mprintf("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN "
                                          "('view_' || %Q, 'vix_' || %Q)",
                                          sqlite3_column_text(q, 1), sqlite3_column_text(q, 1))
                        : sqlite3_mprintf("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE "
                                          "'st\\_%lld\\_%%' ESCAPE '\\' OR name LIKE "
                                          "'sqlite\\_autoindex\\_st\\_%lld\\_%%' ESCAPE '\\'",
                                          (long long)sqlite3_column_int64(q, 2), (long long)sqlite3_column_int64(q, 2));
        int64_t nb = q_int(d, sql);
        sqlite3_free(sql);
        if (nb <= 0)
            continue; /* a node that keeps no state */
        double per = (double)nb / (double)rows, ratio = per / row_bytes;
        ratio_max = ratio > ratio_max ? ratio : ratio_max;
        printf("  %-44s %8.1f MiB  %7.0f bytes/row  ratio %.2f\n", what, (double)nb / 1048576.0, per, ratio);
        if (j)
            fprintf(j, "%s{\"what\":\"%s\",\"bytes\":%lld,\"bytes_per_row\":%.1f,\"ratio\":%.3f}", k++ ? "," : "",
                    what, (long long)nb, per, ratio);
    }
    sqlite3_finalize(q);
    printf("  %-44s %8.1f MiB  %7.0f bytes/row (every table above, the catalog, the outbox)\n", "whole database",
           (double)total / 1048576.0, (double)total / rows);
    printf("bench_view_disk: worst ratio %.2f (target <= 2.00): %s\n", ratio_max, ratio_max <= 2.0 ? "met" : "NOT met");
    if (j) {
        fprintf(j, "],\"database_bytes\":%lld,\"worst_ratio\":%.3f,\"target\":2.0}\n", (long long)total, ratio_max);
        fclose(j);
    }
    sqlite3_close(d);
    int ok = nview == rows && ndistinct == rows && ratio_max <= 2.0;
    if (nview != rows || ndistinct != rows)
        fprintf(stderr, "bench_view_disk: expected %d rows in each view\n", rows);
    return ok ? 0 : 1;
}
