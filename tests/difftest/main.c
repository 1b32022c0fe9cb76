/*
 * main.c — the differential tester (tests/difftest/README.md). For each case (gen.c) it opens
 * an engine on the durable embedded log (or, with --kafka, on a Kafka broker that outlives it),
 * runs the case as SQL text through ss_engine_exec —
 * CREATE STREAM, CREATE CONTINUOUS VIEW, then the history as INSERT/DELETE statements, at batch
 * size 1 and/or 1024, closing and reopening the engine in the middle for some cases — and at
 * each checkpoint reads every view with SELECT (result_format 'json') and compares it, as a
 * multiset, with SQLite or (for the views in PostgreSQL's dialect) a PostgreSQL server
 * (SS_DIFFTEST_PG, with-postgres.sh) running the same view SQL over the data the history leaves
 * so far. A mismatch prints the case and writes it as a script that `semstream run` replays.
 *
 *   difftest [--seed S] [--cases N] [--batch 1|1024|both] [--kafka] [--out DIR] [--verbose] [--list]
 *            [--only SHAPE]   (views only from the shapes named SHAPE...: --only time)
 *
 * Exit status: 0 when every comparison matched, 1 on a mismatch, 2 on a setup error.
 */
#include "dt.h"
#include "ss_engine.h"
#include "ss_json.h"
#include "ss_kafka.h"
#include "testutil.h"

#ifdef DT_HAVE_PG
#include <libpq-fe.h>
#endif

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct opts {
    uint64_t seed;
    int cases;
    int batches[2], nbatches;
    const char *out;
    int verbose;
    int kafka;   /* run on the mock Kafka cluster instead of the durable log */
    int list;    /* print the cases' views (oracle, shape, SQL) instead of running them */
} opts_t;

typedef struct tally {
    int64_t cases, runs, compared, skipped, refused, failed, restarts;
    int64_t pg_compared, pg_refused, pg_skipped, nopg; /* the views compared with PostgreSQL */
} tally_t;

static ss_broker_t *g_broker; /* with --kafka: the cluster every engine uses; else NULL (the log) */
static int g_topic_seq;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* DT_DEBUG=1: timings of the phases on stderr. */
static void phase(const char *what, double since)
{
    if (getenv("DT_DEBUG"))
        fprintf(stderr, "%6.1f ms  %s\n", now_ms() - since, what);
}

/* ---- SQL of a case ---- */

static void stream_sql(const dt_rel_t *s, const char *topic, ss_buf_t *out)
{
    ss_buf_printf(out, "CREATE STREAM %s (", s->name);
    for (int c = 0; c < s->ncols; c++)
        ss_buf_printf(out, "%s%s %s%s", c ? ", " : "", s->cols[c], dt_type_sql(s->types[c]),
                      c == 0 && s->keyed ? " KEY" : "");
    ss_buf_printf(out, ") WITH (topic = '%s')", topic);
}

/* The statement of ops [i, *next), *next <= limit: consecutive inserts into one stream share an
 * INSERT. */
static void op_sql(const dt_case_t *c, int i, int limit, int *next, ss_buf_t *out)
{
    const dt_op_t *op = &c->ops[i];
    const dt_rel_t *s = &c->s[op->stream];
    if (op->del) {
        ss_buf_printf(out, "DELETE FROM %s WHERE ", s->name);
        int n = s->keyed ? 1 : s->ncols;
        for (int k = 0; k < n; k++) {
            ss_buf_printf(out, "%s%s", k ? " AND " : "", s->cols[k]);
            if (op->row->v[k].t == SS_NULL)
                ss_buf_puts(out, " IS NULL");
            else {
                ss_buf_puts(out, " = ");
                dt_literal(&op->row->v[k], s->types[k], out);
            }
        }
        *next = i + 1;
        return;
    }
    ss_buf_printf(out, "INSERT INTO %s VALUES ", s->name);
    int j = i;
    for (; j < limit && j - i < 20 && !c->ops[j].del && c->ops[j].stream == op->stream; j++) {
        ss_buf_puts(out, j > i ? ", (" : "(");
        for (int k = 0; k < s->ncols; k++) {
            if (k)
                ss_buf_puts(out, ", ");
            dt_literal(&c->ops[j].row->v[k], s->types[k], out);
        }
        ss_buf_putc(out, ')');
    }
    *next = j;
}

/* ---- the oracle: the data the history leaves, and SQLite over it ---- */

typedef struct table {
    int n, cap;
    ss_row_t **rows;
} table_t;

static void table_apply(table_t *t, const dt_rel_t *s, const dt_op_t *op)
{
    for (int i = 0; i < t->n; i++) {
        int same = s->keyed ? ss_val_cmp(&t->rows[i]->v[0], &op->row->v[0]) == 0
                            : ss_row_cmp(t->rows[i], op->row) == 0;
        if (same) { /* a keyed insert replaces; a delete removes one copy */
            if (s->keyed || op->del) {
                ss_row_free(t->rows[i]);
                t->rows[i] = t->rows[--t->n];
            }
            break;
        }
    }
    if (op->del)
        return; /* a delete of an absent row or key is dropped */
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 32;
        t->rows = realloc(t->rows, (size_t)t->cap * sizeof *t->rows);
    }
    t->rows[t->n++] = ss_row_copy(op->row);
}

static void table_free(table_t *t)
{
    for (int i = 0; i < t->n; i++)
        ss_row_free(t->rows[i]);
    free(t->rows);
    memset(t, 0, sizeof *t);
}

static const char *sqlite_type(dt_type_t t)
{
    return t == DT_INT ? "INTEGER" : t == DT_REAL ? "REAL" : t == DT_BOOL ? "BOOLEAN" : t == DT_NUM ? "NUMERIC" : "TEXT";
}

static void bind_value(sqlite3_stmt *q, int i, const ss_value_t *v)
{
    switch (v->t) {
    case SS_INT: sqlite3_bind_int64(q, i, v->u.i); break;
    case SS_REAL: sqlite3_bind_double(q, i, v->u.r); break;
    case SS_TEXT: sqlite3_bind_text(q, i, v->u.str.s, (int)v->u.str.n, SQLITE_TRANSIENT); break;
    default: sqlite3_bind_null(q, i); break;
    }
}

/* A fresh SQLite database holding the streams' current data and every view as an SQL view. */
static sqlite3 *oracle_open(const dt_case_t *c, table_t *tabs, const int *valid)
{
    sqlite3 *db = NULL;
    sqlite3_open(":memory:", &db);
    sqlite3_exec(db, "PRAGMA case_sensitive_like = ON", NULL, NULL, NULL); /* LIKE as in PostgreSQL */
    for (int i = 0; i < c->nstreams; i++) {
        const dt_rel_t *s = &c->s[i];
        ss_buf_t q = SS_BUF_INIT, ins = SS_BUF_INIT;
        ss_buf_printf(&q, "CREATE TABLE %s (", s->name);
        ss_buf_printf(&ins, "INSERT INTO %s VALUES (", s->name);
        for (int k = 0; k < s->ncols; k++) {
            ss_buf_printf(&q, "%s%s %s", k ? ", " : "", s->cols[k], sqlite_type(s->types[k]));
            ss_buf_printf(&ins, "%s?", k ? ", " : "");
        }
        ss_buf_puts(&q, ")");
        ss_buf_puts(&ins, ")");
        sqlite3_exec(db, ss_buf_cstr(&q), NULL, NULL, NULL);
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(db, ss_buf_cstr(&ins), -1, &st, NULL);
        for (int r = 0; st && r < tabs[i].n; r++) {
            for (int k = 0; k < s->ncols; k++)
                bind_value(st, k + 1, &tabs[i].rows[r]->v[k]);
            sqlite3_step(st);
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
        ss_buf_free(&q);
        ss_buf_free(&ins);
    }
    for (int v = 0; v < c->nviews; v++) {
        if (!valid[v] || c->v[v].pg)
            continue;
        char *q = sqlite3_mprintf("CREATE VIEW %s AS %s", c->v[v].name, c->v[v].sql);
        sqlite3_exec(db, q, NULL, NULL, NULL);
        sqlite3_free(q);
    }
    return db;
}

/* ---- rows and their comparison ---- */

typedef struct rows {
    int n, cap;
    ss_row_t **r;
} rows_t;

static void rows_add(rows_t *x, ss_row_t *r)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 32;
        x->r = realloc(x->r, (size_t)x->cap * sizeof *x->r);
    }
    x->r[x->n++] = r;
}

static void rows_free(rows_t *x)
{
    for (int i = 0; i < x->n; i++)
        ss_row_free(x->r[i]);
    free(x->r);
    memset(x, 0, sizeof *x);
}

static int row_qcmp(const void *a, const void *b) { return ss_row_cmp(*(ss_row_t *const *)a, *(ss_row_t *const *)b); }

/* The oracle's rows of one view; -1 (with the message in err) when SQLite cannot run it. */
static int oracle_rows(sqlite3 *db, const char *view, rows_t *out, char *err, size_t errsz)
{
    char *q = sqlite3_mprintf("SELECT * FROM %s", view);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);
    sqlite3_free(q);
    if (rc != SQLITE_OK) {
        snprintf(err, errsz, "%s", sqlite3_errmsg(db));
        return -1;
    }
    int n = sqlite3_column_count(st);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ss_row_t *r = ss_row_new(n);
        for (int i = 0; i < n; i++) {
            ss_value_t v = ss_val_null();
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER: v = ss_val_int(sqlite3_column_int64(st, i)); break;
            case SQLITE_FLOAT: v = ss_val_real(sqlite3_column_double(st, i)); break;
            case SQLITE_TEXT:
                v = ss_val_text_ref((const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
                break;
            }
            ss_row_set(r, i, &v);
        }
        rows_add(out, r);
    }
    if (rc != SQLITE_DONE)
        snprintf(err, errsz, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Sets column i of r from a JSON value: numbers, strings, booleans (1/0) as such; an array or an
 * object (a JSON column's document) as its compact text. Both oracles' answers go through here
 * too when they are JSON, so documents compare by their compact form. */
static void json_value(const ss_json_t *x, ss_row_t *r, int i)
{
    ss_value_t v = ss_val_null();
    ss_buf_t b = SS_BUF_INIT;
    if (x->t == SS_JSON_INT)
        v = ss_val_int(x->u.i);
    else if (x->t == SS_JSON_REAL)
        v = ss_val_real(x->u.r);
    else if (x->t == SS_JSON_STRING)
        v = ss_val_text_ref(x->u.str.s, x->u.str.n);
    else if (x->t == SS_JSON_BOOL)
        v = ss_val_int(x->u.b ? 1 : 0);
    else if (x->t == SS_JSON_ARRAY || x->t == SS_JSON_OBJECT) {
        ss_json_write(x, &b);
        v = ss_val_text_ref(b.data, b.len);
    }
    ss_row_set(r, i, &v);
    ss_buf_free(&b);
}

/* Rows of the engine's JSON result (a line of column names, then a line per row). */
static int engine_rows(const char *text, rows_t *out, char *err, size_t errsz)
{
    const char *p = text;
    int line = 0;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        ss_json_doc_t *d = NULL;
        if (len && ss_json_parse(p, len, 0, &d, NULL, err, errsz) != SS_OK)
            return -1;
        const ss_json_t *a = d ? ss_json_root(d) : NULL;
        if (a && a->t == SS_JSON_ARRAY && line++ > 0) {
            ss_row_t *r = ss_row_new((int)a->u.arr.n);
            for (size_t i = 0; i < a->u.arr.n; i++) {
                json_value(&a->u.arr.items[i], r, (int)i);
            }
            rows_add(out, r);
        }
        ss_json_free(d);
        p += len + (e != NULL);
    }
    return 0;
}

/* Equal, REALs to a relative 1e-9. An INT and a REAL of equal value match: SQLite types values
 * one by one (COALESCE(int, real) may give either), semstream types columns as PostgreSQL does
 * (that column is REAL); the type rules themselves are checked in tests/check_planner.c. */
static int value_close(const ss_value_t *a, const ss_value_t *b)
{
    int an = a->t == SS_INT || a->t == SS_REAL, bn = b->t == SS_INT || b->t == SS_REAL;
    if (an && bn && (a->t == SS_REAL || b->t == SS_REAL)) {
        double x = a->t == SS_INT ? (double)a->u.i : a->u.r, y = b->t == SS_INT ? (double)b->u.i : b->u.r;
        return x == y || fabs(x - y) <= 1e-9 * fmax(1.0, fmax(fabs(x), fabs(y)));
    }
    return ss_val_cmp(a, b) == 0 && a->t == b->t;
}

/* 1 when the two multisets are equal (REALs within a relative 1e-9). Sorts both. */
static int rows_equal(rows_t *a, rows_t *b)
{
    if (a->n != b->n)
        return 0;
    /* a column where either side has a REAL compares as REALs (see value_close), so that both
     * sides sort alike */
    int ncols = a->n ? a->r[0]->n : 0;
    for (int k = 0; k < ncols; k++) {
        int real = 0;
        for (int i = 0; i < a->n && !real; i++)
            real = (k < a->r[i]->n && a->r[i]->v[k].t == SS_REAL) || (k < b->r[i]->n && b->r[i]->v[k].t == SS_REAL);
        for (int i = 0; real && i < a->n; i++)
            for (int side = 0; side < 2; side++) {
                ss_row_t *r = side ? b->r[i] : a->r[i];
                if (k < r->n && r->v[k].t == SS_INT)
                    r->v[k] = ss_val_real((double)r->v[k].u.i);
            }
    }
    qsort(a->r, (size_t)a->n, sizeof *a->r, row_qcmp);
    qsort(b->r, (size_t)b->n, sizeof *b->r, row_qcmp);
    for (int i = 0; i < a->n; i++) {
        if (a->r[i]->n != b->r[i]->n)
            return 0;
        for (int k = 0; k < a->r[i]->n; k++)
            if (!value_close(&a->r[i]->v[k], &b->r[i]->v[k]))
                return 0;
    }
    return 1;
}

static void rows_print(FILE *f, const char *label, const rows_t *x)
{
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < x->n && i < 30; i++) {
        ss_buf_puts(&b, "    (");
        for (int k = 0; k < x->r[i]->n; k++) {
            if (k)
                ss_buf_puts(&b, ", ");
            const ss_value_t *v = &x->r[i]->v[k];
            if (v->t == SS_TEXT)
                ss_buf_put_json_str(&b, v->u.str.s, v->u.str.n);
            else if (v->t == SS_REAL)
                ss_buf_printf(&b, "%.17gr", v->u.r);
            else
                ss_val_to_text(v, &b);
        }
        ss_buf_puts(&b, ")\n");
    }
    fprintf(f, "  %s (%d rows):\n%s%s", label, x->n, ss_buf_cstr(&b), x->n > 30 ? "    ...\n" : "");
    ss_buf_free(&b);
}

/* ---- the second oracle: PostgreSQL, for the views written in its dialect (dt_rel_t.pg) ---- */

#ifdef DT_HAVE_PG
static PGconn *g_pg; /* SS_DIFFTEST_PG (tests/difftest/with-postgres.sh starts a server); NULL: none */

static int pg_run(const char *sql, char *err, size_t errsz)
{
    PGresult *res = PQexec(g_pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok && err)
        snprintf(err, errsz, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

static const char *pg_type(dt_type_t t)
{
    static const char *const n[] = {"BIGINT", "DOUBLE PRECISION", "TEXT", "BOOLEAN", "NUMERIC", "JSON", "TEXT",
                                    "TIMESTAMP", "DATE", "INTERVAL"};
    return t <= DT_IVL ? n[t] : "TEXT";
}

/* A fresh schema (one per process) holding the streams' current data and the PostgreSQL views
 * among want[]; a view PostgreSQL refuses is cleared from want[] (its message in DT_DEBUG). */
static void pg_load(const dt_case_t *c, table_t *tabs, int *want)
{
    char err[1024];
    ss_buf_t q = SS_BUF_INIT;
    ss_buf_printf(&q, "DROP SCHEMA IF EXISTS dt%d CASCADE; CREATE SCHEMA dt%d; SET search_path = dt%d", (int)getpid(),
                  (int)getpid(), (int)getpid());
    if (pg_run(ss_buf_cstr(&q), err, sizeof err) < 0)
        fprintf(stderr, "difftest: PostgreSQL: %s", err);
    for (int i = 0; i < c->nstreams; i++) {
        const dt_rel_t *s = &c->s[i];
        ss_buf_reset(&q);
        ss_buf_printf(&q, "CREATE TABLE %s (", s->name);
        for (int k = 0; k < s->ncols; k++)
            ss_buf_printf(&q, "%s%s %s", k ? ", " : "", s->cols[k], pg_type(s->types[k]));
        ss_buf_puts(&q, ")");
        if (tabs[i].n)
            ss_buf_printf(&q, "; INSERT INTO %s VALUES ", s->name);
        for (int r = 0; r < tabs[i].n; r++) {
            ss_buf_puts(&q, r ? ", (" : "(");
            for (int k = 0; k < s->ncols; k++) {
                if (k)
                    ss_buf_puts(&q, ", ");
                dt_literal(&tabs[i].rows[r]->v[k], s->types[k], &q);
            }
            ss_buf_putc(&q, ')');
        }
        if (pg_run(ss_buf_cstr(&q), err, sizeof err) < 0)
            fprintf(stderr, "difftest: PostgreSQL: %s\n  %s\n", err, ss_buf_cstr(&q));
    }
    for (int v = 0; v < c->nviews; v++) {
        if (!want[v] || !c->v[v].pg)
            continue;
        ss_buf_reset(&q);
        ss_buf_printf(&q, "CREATE VIEW %s AS %s", c->v[v].name, c->v[v].pgsql);
        if (pg_run(ss_buf_cstr(&q), err, sizeof err) < 0) {
            want[v] = 0;
            if (getenv("DT_DEBUG"))
                fprintf(stderr, "PostgreSQL refused %s: %s", c->v[v].pgsql, err);
        }
    }
    ss_buf_free(&q);
}

/* PostgreSQL's rows of one view, typed by the result's column types; -1 (err) when it fails. */
static int pg_rows(const char *view, rows_t *out, char *err, size_t errsz)
{
    char q[64];
    snprintf(q, sizeof q, "SELECT * FROM %s", view);
    PGresult *res = PQexec(g_pg, q);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errsz, "%s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    int nc = PQnfields(res);
    for (int i = 0; i < PQntuples(res); i++) {
        ss_row_t *r = ss_row_new(nc);
        for (int k = 0; k < nc; k++) {
            if (PQgetisnull(res, i, k))
                continue;
            const char *s = PQgetvalue(res, i, k);
            size_t n = (size_t)PQgetlength(res, i, k);
            ss_value_t v = ss_val_text_ref(s, n);
            switch (PQftype(res, k)) {
            case 16: v = ss_val_int(s[0] == 't'); break;                          /* bool */
            case 20: case 21: case 23: v = ss_val_int(strtoll(s, NULL, 10)); break; /* int8/2/4 */
            case 700: case 701: v = ss_val_real(strtod(s, NULL)); break;          /* float4/8 */
            case 1700: {                                                         /* numeric */
                errno = 0;
                char *end;
                long long x = strtoll(s, &end, 10);
                v = *end || errno ? ss_val_real(strtod(s, NULL)) : ss_val_int(x);
                break;
            }
            case 114: case 3802: { /* json, jsonb: compared by value, as the engine's (json_value) */
                ss_json_doc_t *d = NULL;
                char jerr[128];
                if (ss_json_parse(s, n, 0, &d, NULL, jerr, sizeof jerr) == SS_OK) {
                    json_value(ss_json_root(d), r, k);
                    ss_json_free(d);
                    continue;
                }
                break;
            }
            default: break;
            }
            ss_row_set(r, k, &v);
        }
        rows_add(out, r);
    }
    PQclear(res);
    return 0;
}

static int pg_open(char *err, size_t errsz)
{
    const char *ci = getenv("SS_DIFFTEST_PG");
    if (!ci || !*ci)
        return 0;
    g_pg = PQconnectdb(ci);
    if (PQstatus(g_pg) != CONNECTION_OK) {
        snprintf(err, errsz, "PostgreSQL (%s): %s", ci, PQerrorMessage(g_pg));
        PQfinish(g_pg);
        g_pg = NULL;
        return -1;
    }
    pg_run("SET client_min_messages = warning; SET extra_float_digits = 3", NULL, 0);
    return 0;
}

static void pg_close(void)
{
    if (!g_pg)
        return;
    char q[96];
    snprintf(q, sizeof q, "DROP SCHEMA IF EXISTS dt%d CASCADE", (int)getpid());
    pg_run(q, NULL, 0);
    PQfinish(g_pg);
    g_pg = NULL;
}
#define HAVE_PG() (g_pg != NULL)
#else
#define HAVE_PG() 0
static void pg_load(const dt_case_t *c, table_t *tabs, int *want) { (void)c, (void)tabs, (void)want; }
static int pg_rows(const char *view, rows_t *out, char *err, size_t errsz)
{
    (void)view, (void)out;
    snprintf(err, errsz, "built without libpq");
    return -1;
}
static int pg_open(char *err, size_t errsz)
{
    if (getenv("SS_DIFFTEST_PG") && *getenv("SS_DIFFTEST_PG")) {
        snprintf(err, errsz, "SS_DIFFTEST_PG is set but difftest was built without libpq");
        return -1;
    }
    return 0;
}
static void pg_close(void) {}
#endif

/* ---- driving the engine ---- */

typedef struct run {
    const dt_case_t *c;
    int batch;
    char *dir;
    char topics[DT_MAXSTREAMS][64];
    ss_engine_t *e;
    int valid[DT_MAXVIEWS];    /* views both SQLite and the engine accepted */
    ss_buf_t log;              /* the statements run, as a replayable script */
    ss_buf_t why;              /* what went wrong */
} run_t;

static int engine_open(run_t *r)
{
    char db[1024], mp[1024], err[SS_ERRSZ] = "";
    snprintf(db, sizeof db, "%s/state.db", r->dir);
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.brokers = g_broker ? ss_broker_bootstrap(g_broker) : NULL; /* NULL: the durable log beside the state */
    o.model_path = tu_model_path("stories260K.gguf", mp, sizeof mp);
    o.batch_size = r->batch;
    o.max_latency_ms = 5;
    o.catch_up = 1;
    double t0 = now_ms();
    int orc = ss_engine_open(&o, &r->e, err, sizeof err);
    phase("engine open", t0);
    if (orc != SS_OK) {
        ss_buf_printf(&r->why, "engine open: %s\n", err);
        return -1;
    }
    ss_buf_t out = SS_BUF_INIT;
    int rc = ss_engine_exec(r->e, "SET result_format = 'json'", 26, "difftest", &out, err, sizeof err);
    ss_buf_free(&out);
    if (rc)
        ss_buf_printf(&r->why, "SET result_format: %s\n", err);
    return rc ? -1 : 0;
}

/* Runs one statement; logs it. Returns the engine's code (err filled). */
static int exec(run_t *r, const char *sql, ss_buf_t *out, char *err, size_t errsz)
{
    ss_buf_printf(&r->log, "%s;\n", sql);
    ss_buf_t tmp = SS_BUF_INIT;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = ss_engine_exec(r->e, sql, strlen(sql), "difftest", out ? out : &tmp, err, errsz);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (getenv("DT_DEBUG"))
        fprintf(stderr, "%6.1f ms  %.80s\n", (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6, sql);
    ss_buf_free(&tmp);
    return rc;
}

/* Compares every view with the oracle after `upto` ops. Returns the number of mismatches. */
static int checkpoint(run_t *r, int upto, tally_t *t)
{
    const dt_case_t *c = r->c;
    table_t tabs[DT_MAXSTREAMS] = {{0}};
    for (int i = 0; i < upto; i++)
        table_apply(&tabs[c->ops[i].stream], &c->s[c->ops[i].stream], &c->ops[i]);
    sqlite3 *db = oracle_open(c, tabs, r->valid);
    int bad = 0, pgv[DT_MAXVIEWS] = {0}, npg = 0;
    for (int v = 0; v < c->nviews; v++)
        npg += pgv[v] = r->valid[v] && c->v[v].pg;
    if (npg)
        pg_load(c, tabs, pgv);
    for (int v = 0; v < c->nviews; v++) {
        if (!r->valid[v])
            continue;
        rows_t want = {0}, got = {0};
        char err[SS_ERRSZ] = "", q[64];
        int pg = c->v[v].pg;
        if (pg ? !pgv[v] || pg_rows(c->v[v].name, &want, err, sizeof err) < 0
               : oracle_rows(db, c->v[v].name, &want, err, sizeof err) < 0) {
            /* the oracle cannot answer (e.g. integer overflow in SUM) */
            if (pg)
                t->pg_skipped++;
            else
                t->skipped++;
            if (getenv("DT_DEBUG"))
                fprintf(stderr, "%s could not answer %s: %s\n", pg ? "PostgreSQL" : "SQLite", c->v[v].name, err);
            rows_free(&want);
            continue;
        }
        snprintf(q, sizeof q, "SELECT * FROM %s", c->v[v].name);
        ss_buf_t out = SS_BUF_INIT;
        int rc = exec(r, q, &out, err, sizeof err);
        if (!rc && engine_rows(ss_buf_cstr(&out), &got, err, sizeof err) < 0)
            rc = SS_ERR_INVALID;
        t->compared++;
        t->pg_compared += pg;
        if (rc || !rows_equal(&got, &want)) {
            bad++;
            ss_buf_printf(&r->why, "view %s (%s) after %d of %d deltas: %s\n  CREATE CONTINUOUS VIEW %s AS %s\n",
                          c->v[v].name, c->v[v].shape, upto, c->nops, rc ? err : "rows differ", c->v[v].name,
                          c->v[v].sql);
            if (pg)
                ss_buf_printf(&r->why, "  PostgreSQL's text: %s\n", c->v[v].pgsql);
            if (!rc) {
                char *buf = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&buf, &len);
                rows_print(f, "semstream", &got);
                rows_print(f, pg ? "PostgreSQL" : "SQLite", &want);
                fclose(f);
                ss_buf_puts(&r->why, buf);
                free(buf);
            }
        }
        ss_buf_free(&out);
        rows_free(&want);
        rows_free(&got);
    }
    sqlite3_close(db);
    for (int i = 0; i < DT_MAXSTREAMS; i++)
        table_free(&tabs[i]);
    return bad;
}

/* Creates the case's streams and views. Views SQLite cannot run are dropped from the case; a view
 * SQLite runs but the engine refuses counts as a mismatch. */
static int setup(run_t *r, tally_t *t)
{
    const dt_case_t *c = r->c;
    char err[SS_ERRSZ];
    for (int i = 0; i < c->nstreams; i++) {
        snprintf(r->topics[i], sizeof r->topics[i], "dt%d_%s", ++g_topic_seq, c->s[i].name);
        if (g_broker && ss_broker_create_topic(g_broker, r->topics[i], 1, err, sizeof err) != SS_OK) {
            ss_buf_printf(&r->why, "topic %s: %s\n", r->topics[i], err);
            return -1;
        }
        ss_buf_t q = SS_BUF_INIT;
        stream_sql(&c->s[i], r->topics[i], &q);
        int rc = exec(r, ss_buf_cstr(&q), NULL, err, sizeof err);
        ss_buf_free(&q);
        if (rc) {
            ss_buf_printf(&r->why, "CREATE STREAM %s: %s\n", c->s[i].name, err);
            return -1;
        }
    }
    /* which views SQLite accepts (over the empty tables) */
    int all[DT_MAXVIEWS];
    for (int v = 0; v < DT_MAXVIEWS; v++)
        all[v] = 1;
    table_t none[DT_MAXSTREAMS] = {{0}};
    sqlite3 *db = oracle_open(c, none, all);
    int bad = 0, pgok[DT_MAXVIEWS];
    for (int v = 0; v < DT_MAXVIEWS; v++)
        pgok[v] = 1;
    if (HAVE_PG())
        pg_load(c, none, pgok); /* which views PostgreSQL accepts */
    for (int v = 0; v < c->nviews; v++) {
        if (c->v[v].pg) {
            r->valid[v] = HAVE_PG() && pgok[v];
            if (!HAVE_PG())
                t->nopg++;
            else if (!pgok[v])
                t->pg_refused++;
            if (!r->valid[v])
                continue;
            goto create;
        }
        char *q = sqlite3_mprintf("SELECT * FROM %s", c->v[v].name);
        sqlite3_stmt *st = NULL;
        r->valid[v] = sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK;
        sqlite3_finalize(st);
        sqlite3_free(q);
        for (int u = 0; u < v && r->valid[v]; u++) /* a view over a dropped view goes too */
            if (!r->valid[u] && strstr(c->v[v].sql, c->v[u].name))
                r->valid[v] = 0;
        if (!r->valid[v]) {
            t->refused++;
            if (getenv("DT_DEBUG"))
                fprintf(stderr, "SQLite refused %s: %s\n", c->v[v].sql, sqlite3_errmsg(db));
            continue;
        }
    create:;
        ss_buf_t s = SS_BUF_INIT;
        ss_buf_printf(&s, "CREATE CONTINUOUS VIEW %s AS %s", c->v[v].name, c->v[v].sql);
        int rc = exec(r, ss_buf_cstr(&s), NULL, err, sizeof err);
        ss_buf_free(&s);
        if (rc) {
            r->valid[v] = 0;
            bad++;
            ss_buf_printf(&r->why, "view %s (%s): %s runs it, semstream refused it: %s\n  %s\n", c->v[v].name,
                          c->v[v].shape, c->v[v].pg ? "PostgreSQL" : "SQLite", err, c->v[v].sql);
        }
    }
    sqlite3_close(db);
    return bad;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

/* One case at one batch size. Returns the number of mismatches (-1: setup error). */
static int run_case(const dt_case_t *c, int batch, const opts_t *o, tally_t *t)
{
    run_t r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.batch = batch;
    r.dir = tu_tmpdir();
    int bad = 0;
    if (!r.dir || engine_open(&r) < 0)
        bad = -1;
    ss_buf_printf(&r.log, "-- difftest case %llu, batch size %d\nSET batch_size = %d;\n", (unsigned long long)c->seed,
                  batch, batch);
    if (!bad)
        bad = setup(&r, t);
    int next_check = 0;
    char err[SS_ERRSZ];
    for (int i = 0; bad >= 0 && i <= c->nops;) {
        if (i == c->restart_at && i > 0 && i < c->nops && r.e) {
            ss_buf_puts(&r.log, "-- restart\n");
            double tc = now_ms();
            ss_engine_close(r.e);
            phase("engine close", tc);
            r.e = NULL;
            t->restarts++;
            if (engine_open(&r) < 0) {
                bad = -1;
                break;
            }
        }
        while (next_check < c->ncheck && c->check[next_check] <= i) {
            if (c->check[next_check] == i)
                bad += checkpoint(&r, i, t);
            next_check++;
        }
        if (i == c->nops)
            break;
        /* statements end at the restart point and at checkpoints */
        int limit = c->nops, next = i + 1;
        if (c->restart_at > i)
            limit = c->restart_at;
        for (int k = next_check; k < c->ncheck; k++)
            if (c->check[k] > i && c->check[k] < limit)
                limit = c->check[k];
        ss_buf_t q = SS_BUF_INIT;
        op_sql(c, i, limit, &next, &q);
        if (exec(&r, ss_buf_cstr(&q), NULL, err, sizeof err) != SS_OK) {
            ss_buf_printf(&r.why, "statement failed: %s\n  %s\n", err, ss_buf_cstr(&q));
            bad++;
        }
        ss_buf_free(&q);
        i = next;
    }
    double tc = now_ms();
    ss_engine_close(r.e);
    phase("engine close", tc);
    t->runs++;
    if (bad) {
        t->failed++;
        fprintf(stderr, "MISMATCH case %llu (batch size %d%s):\n%s", (unsigned long long)c->seed, batch,
                c->restart_at > 0 && c->restart_at < c->nops ? ", restarted" : "", ss_buf_cstr(&r.why));
        if (o->out) {
            char path[1200];
            snprintf(path, sizeof path, "%s/difftest-%llu-b%d.sql", o->out, (unsigned long long)c->seed, batch);
            FILE *f = fopen(path, "w");
            if (f) {
                fputs(ss_buf_cstr(&r.log), f);
                fprintf(f, "/* what went wrong:\n%s*/\n", ss_buf_cstr(&r.why));
                fclose(f);
                fprintf(stderr, "  script: %s\n", path);
            }
        }
    } else if (o->verbose) {
        fprintf(stderr, "case %llu batch %d: ok (%d streams, %d views, %d deltas)\n", (unsigned long long)c->seed,
                batch, c->nstreams, c->nviews, c->nops);
    }
    if (r.dir)
        nftw(r.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(r.dir);
    ss_buf_free(&r.log);
    ss_buf_free(&r.why);
    return bad;
}

static int usage(void)
{
    fprintf(stderr, "usage: difftest [--seed S] [--cases N] [--batch 1|1024|both] [--kafka] [--out DIR] [--verbose] [--list] "
                    "[--only SHAPE]\n");
    return 2;
}

int main(int argc, char **argv)
{
    opts_t o = {.seed = 1, .cases = 20, .batches = {1, 1024}, .nbatches = 2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--seed") && v)
            o.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--cases") && v)
            o.cases = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && v) {
            i++;
            if (!strcmp(v, "both"))
                o.nbatches = 2;
            else {
                o.batches[0] = atoi(v);
                o.nbatches = 1;
            }
        } else if (!strcmp(a, "--out") && v)
            o.out = argv[++i];
        else if (!strcmp(a, "--verbose"))
            o.verbose = 1;
        else if (!strcmp(a, "--kafka"))
            o.kafka = 1;
        else if (!strcmp(a, "--list"))
            o.list = 1;
        else if (!strcmp(a, "--only") && v)
            dt_only = argv[++i];
        else
            return usage();
    }
    if (o.list) { /* what the generator makes, e.g. to count features: difftest --list --cases 1000 */
        for (int k = 0; k < o.cases; k++) {
            dt_case_t c;
            dt_case_gen(o.seed + (uint64_t)k, &c);
            for (int v = 0; v < c.nviews; v++)
                printf("%llu %s %s %s\n", (unsigned long long)c.seed, c.v[v].pg ? "postgres" : "sqlite", c.v[v].shape,
                       c.v[v].pg ? c.v[v].pgsql : c.v[v].sql);
            dt_case_free(&c);
        }
        return 0;
    }
    char err[SS_ERRSZ] = "";
    double tb = now_ms();
    int brc = o.kafka ? ss_broker_start(1, &g_broker, err, sizeof err) : SS_OK;
    phase("broker start", tb);
    if (brc != SS_OK) {
        fprintf(stderr, "difftest: broker: %s\n", err);
        return 2;
    }
    if (pg_open(err, sizeof err) < 0) {
        fprintf(stderr, "difftest: %s\n", err);
        return 2;
    }
    if (!HAVE_PG())
        fprintf(stderr, "difftest: no PostgreSQL (SS_DIFFTEST_PG unset; tests/difftest/with-postgres.sh starts one): "
                        "the views in PostgreSQL's dialect are skipped\n");
    tally_t t = {0};
    int64_t t0 = (int64_t)time(NULL);
    int setup_err = 0;
    for (int k = 0; k < o.cases; k++) {
        dt_case_t c;
        dt_case_gen(o.seed + (uint64_t)k, &c);
        t.cases++;
        for (int b = 0; b < o.nbatches; b++)
            if (run_case(&c, o.batches[b], &o, &t) < 0)
                setup_err = 1;
        dt_case_free(&c);
    }
    pg_close();
    tb = now_ms();
    ss_broker_stop(g_broker);
    phase("broker stop", tb);
    printf("difftest: %lld cases from seed %llu, %lld runs (batch sizes", (long long)t.cases,
           (unsigned long long)o.seed, (long long)t.runs);
    for (int b = 0; b < o.nbatches; b++)
        printf(" %d", o.batches[b]);
    printf("), %lld restarts, %lld view comparisons (%lld with PostgreSQL), %lld mismatching runs, %lld views SQLite "
           "refused, %lld PostgreSQL refused, %lld comparisons skipped (SQLite error), %lld (PostgreSQL error), "
           "%lld views skipped (no PostgreSQL), %llds\n",
           (long long)t.restarts, (long long)t.compared, (long long)t.pg_compared, (long long)t.failed,
           (long long)t.refused, (long long)t.pg_refused, (long long)t.skipped, (long long)t.pg_skipped,
           (long long)t.nopg, (long long)((int64_t)time(NULL) - t0));
    printf("difftest-summary cases=%lld runs=%lld restarts=%lld compared=%lld failed=%lld refused=%lld skipped=%lld "
           "pg_compared=%lld pg_refused=%lld pg_skipped=%lld nopg=%lld\n",
           (long long)t.cases, (long long)t.runs, (long long)t.restarts, (long long)t.compared, (long long)t.failed,
           (long long)t.refused, (long long)t.skipped, (long long)t.pg_compared, (long long)t.pg_refused,
           (long long)t.pg_skipped, (long long)t.nopg);
    return setup_err ? 2 : t.failed ? 1 : 0;
}
