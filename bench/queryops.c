/*
 * queryops.c — the cost of keeping query structures up to date incrementally,
 * against recomputing them from scratch, in the same run. For each view (a
 * per-group top-3 over a window, NOT IN, a correlated COUNT, a FULL JOIN, a
 * UNION, a STRING_AGG per group) the real planner and operators run on an
 * SQLite file (no Kafka: the SOURCE operators are fed directly): N rows are
 * loaded into two keyed streams, then B batches of K random upserts and deletes
 * are applied, each in one transaction. The baseline is what a system without
 * incremental maintenance does per batch: the same query run by SQLite over
 * plain tables holding the current rows (indexed on the keys). Prints both
 * times per batch and their ratio, writes bench/results/queryops.json.
 *
 *   bench_queryops [--n N] [--batches B] [--k K] [--out FILE]
 */
#include "ss_bench_util.h"
#include "ss_catalog.h"
#include "ss_op.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

typedef struct bview {
    const char *name, *sql;
    const char *base; /* the baseline's SQL where SQLite lacks the syntax (NULL: sql) */
} bview_t;

static const bview_t VIEWS[] = {
    {"top3_per_group", "SELECT g, id, x FROM (SELECT g, id, x, ROW_NUMBER() OVER (PARTITION BY g ORDER BY x DESC, id) "
                       "AS rn FROM a) t WHERE rn <= 3", NULL},
    {"not_in", "SELECT id FROM a WHERE x NOT IN (SELECT x FROM b WHERE y = 0)", NULL},
    {"correlated_count", "SELECT id, (SELECT COUNT(*) FROM b WHERE b.g = a.g) AS n FROM a", NULL},
    {"full_join", "SELECT a.id, b.id AS bid FROM a FULL JOIN b ON a.id = b.x", NULL},
    {"union", "SELECT g, x FROM a UNION SELECT g, x FROM b", NULL},
    {"string_agg", "SELECT g, STRING_AGG(t, ',' ORDER BY id) AS s FROM a GROUP BY g",
     "SELECT g, group_concat(t, ',') FROM (SELECT g, t FROM a ORDER BY g, id) GROUP BY g"},
};

typedef struct pipe {
    sqlite3 *db;
    ss_catalog_t *cat;
    ss_plan_t *plan;
    ss_op_t **ops;
    ss_zset_t *outs;
    ss_op_ctx_t ctx;
} pipe_t;

static int die(const char *what, const char *err)
{
    fprintf(stderr, "bench_queryops: %s: %s\n", what, err);
    exit(1);
}

static void exec_sql(ss_catalog_t *cat, const char *sql)
{
    ss_ast_script_t *sc = NULL;
    char err[SS_ERRSZ] = "";
    if (ss_parse(sql, strlen(sql), NULL, &sc, err, sizeof err))
        die("parse", err);
    for (int i = 0; i < sc->n; i++) {
        const ss_ast_stmt_t *st = sc->stmts[i];
        int rc = st->kind == SS_STMT_CREATE_STREAM ? ss_catalog_add_stream(cat, st, err, sizeof err)
                                                   : ss_catalog_add_view(cat, st, err, sizeof err);
        if (rc)
            die(st->text, err);
    }
    ss_ast_script_free(sc);
}

static void pipe_open(pipe_t *p, const char *path, const char *view)
{
    char err[SS_ERRSZ] = "", *v = ss_sprintf("CREATE VIEW v AS %s", view);
    unlink(path);
    if (sqlite3_open(path, &p->db) != SQLITE_OK)
        die("open", path);
    sqlite3_exec(p->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    p->ctx.db = p->db;
    if (ss_catalog_open(p->db, &p->cat, err, sizeof err))
        die("catalog", err);
    exec_sql(p->cat, "CREATE STREAM a (id INT KEY, g INT, x INT, t TEXT); CREATE STREAM b (id INT KEY, g INT, x INT, y INT);");
    exec_sql(p->cat, v);
    free(v);
    if (ss_plan_build(p->cat, &p->plan, err, sizeof err))
        die("plan", err);
    p->ops = calloc((size_t)p->plan->n, sizeof *p->ops);
    p->outs = calloc((size_t)p->plan->n, sizeof *p->outs);
    for (int i = 0; i < p->plan->n; i++) {
        ss_zset_init(&p->outs[i]);
        if (ss_op_new(p->plan->nodes[i], &p->ops[i], err, sizeof err) ||
            p->ops[i]->vt->init(p->ops[i], &p->ctx, err, sizeof err))
            die("operator", err);
    }
}

static void pipe_close(pipe_t *p)
{
    for (int i = 0; i < p->plan->n; i++) {
        ss_op_destroy(p->ops[i]);
        ss_zset_destroy(&p->outs[i]);
    }
    free(p->ops);
    free(p->outs);
    ss_plan_free(p->plan);
    ss_catalog_close(p->cat);
    sqlite3_close(p->db);
}

static int pos(const ss_plan_t *p, const ss_plan_node_t *n)
{
    for (int i = 0; i < p->n; i++)
        if (p->nodes[i] == n)
            return i;
    return -1;
}

/* One batch: the events of a (ev[0]) and b (ev[1]) through every operator, in one transaction. */
static void pipe_step(pipe_t *p, ss_zset_t ev[2])
{
    char err[SS_ERRSZ] = "";
    sqlite3_exec(p->db, "BEGIN", NULL, NULL, NULL);
    for (int i = 0; i < p->plan->n; i++) {
        const ss_plan_node_t *n = p->plan->nodes[i];
        int rc = SS_OK;
        if (n->kind == SS_PN_SOURCE)
            rc = p->ops[i]->vt->apply(p->ops[i], &p->ctx, 0, &ev[n->label[0] == 'b'], &p->outs[i], err, sizeof err);
        for (int k = 0; n->kind != SS_PN_SOURCE && !rc && k < n->nin; k++) {
            int j = pos(p->plan, n->in[k]);
            if (p->outs[j].n)
                rc = p->ops[i]->vt->apply(p->ops[i], &p->ctx, k, &p->outs[j], &p->outs[i], err, sizeof err);
        }
        if (rc)
            die("apply", err);
        ss_zset_consolidate(&p->outs[i]);
    }
    sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL);
    for (int i = 0; i < p->plan->n; i++)
        ss_zset_clear(&p->outs[i]);
}

static ss_row_t *row4(int64_t a, int64_t b, int64_t c, const char *t, int64_t d)
{
    ss_row_t *r = ss_row_new(4);
    r->v[0] = ss_val_int(a);
    r->v[1] = ss_val_int(b);
    r->v[2] = ss_val_int(c);
    if (t) {
        ss_value_t v = ss_val_text_ref(t, strlen(t));
        ss_row_set(r, 3, &v);
    } else {
        r->v[3] = ss_val_int(d);
    }
    return r;
}

/* The same change in the engine's events and in the baseline's tables. */
static void change(sqlite3 *base, sqlite3_stmt *ins[2], sqlite3_stmt *del[2], ss_zset_t ev[2], int s, int64_t n)
{
    int64_t id = (int64_t)(next() % (uint64_t)n);
    if (next() % 10 < 8) {
        int64_t g = (int64_t)(next() % 100), x = (int64_t)(next() % 1000), y = (int64_t)(next() % 100);
        char t[16];
        snprintf(t, sizeof t, "w%lld", (long long)(next() % 50));
        ss_zset_add(&ev[s], s ? row4(id, g, x, NULL, y) : row4(id, g, x, t, 0), 1);
        sqlite3_bind_int64(ins[s], 1, id);
        sqlite3_bind_int64(ins[s], 2, g);
        sqlite3_bind_int64(ins[s], 3, x);
        if (s)
            sqlite3_bind_int64(ins[s], 4, y);
        else
            sqlite3_bind_text(ins[s], 4, t, -1, SQLITE_TRANSIENT);
        sqlite3_step(ins[s]);
        sqlite3_reset(ins[s]);
    } else {
        ss_row_t *r = ss_row_new(4);
        r->v[0] = ss_val_int(id);
        ss_zset_add(&ev[s], r, -1);
        sqlite3_bind_int64(del[s], 1, id);
        sqlite3_step(del[s]);
        sqlite3_reset(del[s]);
    }
    (void)base;
}

/* The baseline: run the query over the current rows and read every result row. */
static int64_t recompute(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        die("baseline", sqlite3_errmsg(db));
    int64_t rows = 0;
    while (sqlite3_step(q) == SQLITE_ROW)
        rows++;
    sqlite3_finalize(q);
    return rows;
}

int main(int argc, char **argv)
{
    int64_t n = 100000, batches = 200, k = 10;
    const char *outp = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc)
            batches = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--k") && i + 1 < argc)
            k = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            outp = argv[++i];
        else {
            fprintf(stderr, "usage: bench_queryops [--n N] [--batches B] [--k K] [--out FILE]\n");
            return 2;
        }
    }
    char path[] = "/tmp/bench_queryops.db", rpath[1024];
    ss_buf_t json = SS_BUF_INIT;
    ss_buf_printf(&json, "{\"bench\":\"queryops\",\"n\":%lld,\"batches\":%lld,\"k\":%lld,\"views\":[",
                  (long long)n, (long long)batches, (long long)k);
    printf("%-18s %14s %14s %9s\n", "view", "incremental", "recompute", "speedup");
    for (size_t vi = 0; vi < SS_ARRAY_LEN(VIEWS); vi++) {
        pipe_t p;
        memset(&p, 0, sizeof p);
        pipe_open(&p, path, VIEWS[vi].sql);
        sqlite3 *base;
        sqlite3_open(":memory:", &base);
        sqlite3_exec(base, "CREATE TABLE a(id INTEGER PRIMARY KEY, g INTEGER, x INTEGER, t TEXT);"
                           "CREATE TABLE b(id INTEGER PRIMARY KEY, g INTEGER, x INTEGER, y INTEGER);"
                           "CREATE INDEX ag ON a(g); CREATE INDEX bg ON b(g); CREATE INDEX bx ON b(x)",
                     NULL, NULL, NULL);
        sqlite3_stmt *ins[2], *del[2];
        sqlite3_prepare_v2(base, "INSERT OR REPLACE INTO a VALUES(?1, ?2, ?3, ?4)", -1, &ins[0], NULL);
        sqlite3_prepare_v2(base, "INSERT OR REPLACE INTO b VALUES(?1, ?2, ?3, ?4)", -1, &ins[1], NULL);
        sqlite3_prepare_v2(base, "DELETE FROM a WHERE id = ?1", -1, &del[0], NULL);
        sqlite3_prepare_v2(base, "DELETE FROM b WHERE id = ?1", -1, &del[1], NULL);
        rng = 88172645463325252ULL;
        for (int64_t done = 0; done < n; done += 10000) { /* the initial rows, in large batches */
            ss_zset_t ev[2];
            ss_zset_init(&ev[0]);
            ss_zset_init(&ev[1]);
            sqlite3_exec(base, "BEGIN", NULL, NULL, NULL);
            for (int64_t i = done; i < n && i < done + 10000; i++) {
                char t[16];
                snprintf(t, sizeof t, "w%lld", (long long)(i % 50));
                ss_zset_add(&ev[0], row4(i, i % 100, (int64_t)(next() % 1000), t, 0), 1);
                ss_zset_add(&ev[1], row4(i, i % 100, (int64_t)(next() % 1000), NULL, (int64_t)(next() % 100)), 1);
                sqlite3_bind_int64(ins[0], 1, i);
                sqlite3_bind_int64(ins[0], 2, i % 100);
                sqlite3_bind_int64(ins[0], 3, ev[0].e[ev[0].n - 1].row->v[2].u.i);
                sqlite3_bind_text(ins[0], 4, t, -1, SQLITE_TRANSIENT);
                sqlite3_step(ins[0]);
                sqlite3_reset(ins[0]);
                for (int c = 0; c < 4; c++)
                    sqlite3_bind_int64(ins[1], c + 1, ev[1].e[ev[1].n - 1].row->v[c].u.i);
                sqlite3_step(ins[1]);
                sqlite3_reset(ins[1]);
            }
            sqlite3_exec(base, "COMMIT", NULL, NULL, NULL);
            pipe_step(&p, ev);
            ss_zset_destroy(&ev[0]);
            ss_zset_destroy(&ev[1]);
        }
        double t_inc = 0, t_re = 0;
        int64_t rows = 0;
        for (int64_t b = 0; b < batches; b++) {
            ss_zset_t ev[2];
            ss_zset_init(&ev[0]);
            ss_zset_init(&ev[1]);
            for (int64_t i = 0; i < k; i++)
                change(base, ins, del, ev, (int)(next() % 2), n);
            double t0 = now_s();
            pipe_step(&p, ev);
            double t1 = now_s();
            rows = recompute(base, VIEWS[vi].base ? VIEWS[vi].base : VIEWS[vi].sql);
            double t2 = now_s();
            t_inc += t1 - t0;
            t_re += t2 - t1;
            ss_zset_destroy(&ev[0]);
            ss_zset_destroy(&ev[1]);
        }
        double inc = t_inc / (double)batches, re = t_re / (double)batches;
        printf("%-18s %11.3f ms %11.3f ms %8.1fx\n", VIEWS[vi].name, inc * 1e3, re * 1e3, re / inc);
        ss_buf_printf(&json, "%s{\"view\":\"%s\",\"rows\":%lld,\"incremental_ms_per_batch\":%.4f,"
                             "\"recompute_ms_per_batch\":%.4f,\"speedup\":%.2f}",
                      vi ? "," : "", VIEWS[vi].name, (long long)rows, inc * 1e3, re * 1e3, re / inc);
        for (int s = 0; s < 2; s++) {
            sqlite3_finalize(ins[s]);
            sqlite3_finalize(del[s]);
        }
        sqlite3_close(base);
        pipe_close(&p);
    }
    ss_buf_puts(&json, "]}\n");
    const char *o = outp ? outp : ss_bench_result_path("queryops.json", rpath, sizeof rpath);
    FILE *f = fopen(o, "w");
    if (f) {
        fputs(ss_buf_cstr(&json), f);
        fclose(f);
        printf("wrote %s\n", o);
    }
    ss_buf_free(&json);
    unlink(path);
    return 0;
}
