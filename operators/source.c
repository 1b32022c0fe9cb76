/*
 * source.c — SS_PN_SOURCE: key-by / upsert normalisation of a stream's row
 * events, plus optional TTL expiry. Input entries are events in arrival order
 * (never consolidated first): weight > 0 = upsert, < 0 = delete.
 *
 * Keyed streams (schema columns with is_key) keep the current row per key in
 * st_<id>_rows(k = encoded key, row, ts): upsert of an absent key emits +new, of
 * a present key with a different row -old +new, of an identical row nothing;
 * delete (only the key columns of the event matter) emits -old when present.
 * Unkeyed streams are multisets: an insert adds one copy of the row, a delete
 * removes one copy when there is one and is dropped otherwise (exactly as a
 * delete of an absent key), so no negative count ever leaves the source. The
 * live copies are counted in st_<id>_cnt under each row's 128-bit hash
 * (ss_state_hcount: one small record and one statement per event; the rows
 * themselves are not kept, so such a source has no snapshot — its history is
 * its topic); with a TTL, one state row per live instance instead,
 * st_<id>_inst(id, k = row hash, row, ts), each with its own time. An
 * append_only stream (WITH (append_only = true), no key, no TTL) keeps nothing:
 * its rows pass through, and a delete (which its connector dead-letters before
 * it gets here) is an error.
 *
 * TTL (options ttl = '30 s' | '5 minutes' | '1 hour' | '2 days' ..., ttl_column =
 * a TIMESTAMP, TIMESTAMPTZ or DATE column; absent = arrival time): on every
 * apply and when time passes (advance: the engine runs an empty batch when the
 * oldest row is due), rows whose time is older than now - ttl are retracted and
 * removed from state. Rows whose time column is
 * NULL or unparseable never expire. The output of one apply is consolidated.
 */
#include "ss_op.h"
#include "ss_state.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_GET, S_PUT, S_DEL, S_EXP_SEL, S_EXP_DEL, S_INS, S_FIND, S_DEL_ID, S_SNAP, S_NEXT, S_CNT, S_N = S_CNT + 3 };

typedef struct source {
    ss_state_t *st;
    int nkeys;
    int *keys;        /* key column indices */
    int64_t ttl_ms;   /* 0 = no TTL */
    int ttl_col;      /* -1 = arrival time */
    int append_only;  /* rows only arrive: nothing is kept */
    ss_buf_t kb, rb;  /* scratch encodings */
    char strategy[160];
} source_t;

/* ---- durations and timestamps ---- */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

/* ISO-8601: YYYY-MM-DD[(T| )hh:mm[:ss[.frac]]][Z|(+|-)hh[:]mm] -> ms since the epoch. */
static int parse_iso(const char *s, int64_t *ms)
{
    int Y, M, D, h = 0, mi = 0, sec = 0;
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' || digits(&p, 2, &D))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31)
        return -1;
    double frac = 0;
    int64_t off = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec))
                return -1;
            if (*p == '.' || *p == ',') {
                char *e;
                frac = strtod(p, &e);
                if (*p == ',')
                    frac = 0;
                p = e;
            }
        }
        if (*p == 'Z' || *p == 'z')
            p++;
        else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (digits(&p, 2, &oh))
                return -1;
            if (*p == ':')
                p++;
            if (isdigit((unsigned char)*p) && digits(&p, 2, &om))
                return -1;
            off = sign * (int64_t)(oh * 60 + om) * 60000;
        }
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return -1;
    int64_t t = days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + sec;
    *ms = t * 1000 + (int64_t)llround(frac * 1000) - off;
    return 0;
}

/* A TIMESTAMP/TIMESTAMPTZ/DATE value's ms since the epoch (ttl_column is typed: the catalog
 * refuses other types); epoch numbers and ISO text only in rows of older definitions. */
static int value_ms(const ss_value_t *v, int64_t *ms)
{
    double x;
    if (ss_vtype_is_time(v->t)) {
        int64_t us = ss_val_time_us(v);
        *ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
        return 0;
    }
    if (v->t == SS_INT)
        x = (double)v->u.i;
    else if (v->t == SS_REAL)
        x = v->u.r;
    else if (v->t == SS_TEXT) {
        char *end;
        x = strtod(v->u.str.s, &end);
        if (end == v->u.str.s || *end)
            return parse_iso(v->u.str.s, ms);
    } else
        return -1;
    if (!isfinite(x))
        return -1;
    *ms = fabs(x) >= 1e11 ? (int64_t)x : (int64_t)llround(x * 1000);
    return 0;
}

/* ---- lifecycle ---- */

static int source_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    source_t *s = op->impl;
    const ss_plan_node_t *n = op->node;
    if (!n->schema)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "source node %d has no schema", n->id);
    if (!s->st && !(s->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    free(s->keys);
    s->keys = calloc((size_t)n->schema->n + 1, sizeof *s->keys);
    if (!s->keys)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    s->nkeys = ss_schema_keys(n->schema, s->keys, n->schema->n);
    s->ttl_ms = 0;
    s->ttl_col = -1;
    const char *ttl = ss_plan_opt(n, "ttl"), *col = ss_plan_opt(n, "ttl_column");
    if (ttl && (ss_parse_duration(ttl, &s->ttl_ms) || s->ttl_ms <= 0))
        return ss_seterr(err, errsz, SS_ERR_INVALID,
                         "source %s: bad ttl '%s' (expected e.g. '30 s', '5 minutes', '1 hour', '2 days')",
                         n->label ? n->label : "?", ttl);
    if (col && *col) {
        if (!ttl)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "source %s: ttl_column without ttl",
                             n->label ? n->label : "?");
        s->ttl_col = ss_schema_find(n->schema, col);
        if (s->ttl_col < 0)
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "source %s: ttl_column '%s' is not a column",
                             n->label ? n->label : "?", col);
    }
    s->append_only = ss_plan_opt_bool(n, "append_only") && !s->nkeys && !s->ttl_ms;
    snprintf(s->strategy, sizeof s->strategy, "%s%s%s",
             s->append_only ? "append-only: rows pass through, nothing kept, deletes refused"
             : s->nkeys ? "upsert by key: current row per key in SQLite, emits -old +new"
                      : "multiset (no key): live copies counted per row hash in SQLite, deletes of absent rows "
                        "dropped",
             s->ttl_ms ? ", TTL " : "", s->ttl_ms ? ttl : "");
    const char *p = s->st->prefix;
    if (s->append_only)
        return SS_OK;
    if (s->nkeys)
        return ss_state_exec(s->st, err, errsz,
                             "CREATE TABLE IF NOT EXISTS %s_rows(k BLOB PRIMARY KEY, row BLOB NOT NULL, ts INTEGER);"
                             "CREATE INDEX IF NOT EXISTS %s_rows_ts ON %s_rows(ts) WHERE ts IS NOT NULL;",
                             p, p, p);
    if (s->ttl_ms)
        return ss_state_exec(s->st, err, errsz,
                             "CREATE TABLE IF NOT EXISTS %s_inst(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, "
                             "row BLOB NOT NULL, ts INTEGER);"
                             "CREATE INDEX IF NOT EXISTS %s_inst_k ON %s_inst(k);"
                             "CREATE INDEX IF NOT EXISTS %s_inst_ts ON %s_inst(ts) WHERE ts IS NOT NULL;",
                             p, p, p, p, p);
    return ss_state_hcount_create(s->st, "cnt", err, errsz);
}

static int bind_ts(source_t *s, sqlite3_stmt *st, int idx, const ss_row_t *r, int64_t now)
{
    int64_t ms = now;
    if (s->ttl_col >= 0 && (s->ttl_col >= r->n || value_ms(&r->v[s->ttl_col], &ms)))
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_int64(st, idx, ms);
}

/* One keyed event. */
static int keyed_event(ss_op_t *op, const ss_row_t *r, int64_t w, int64_t now, ss_zset_t *d, char *err,
                       size_t errsz)
{
    source_t *s = op->impl;
    const char *p = s->st->prefix;
    ss_buf_reset(&s->kb);
    int rc = ss_state_encode_cols(r, s->keys, s->nkeys, 0, &s->kb, NULL);
    if (rc)
        return ss_seterr(err, errsz, rc, "row has %d columns, key needs more", r->n);
    sqlite3_stmt *g = ss_state_stmt(s->st, S_GET, err, errsz, "SELECT row FROM %s_rows WHERE k = ?1", p);
    if (!g)
        return SS_ERR_SQLITE;
    ss_state_bind_buf(g, 1, &s->kb);
    ss_row_t *old = NULL;
    int sr = sqlite3_step(g);
    if (sr == SQLITE_ROW)
        rc = ss_state_column_row(g, 0, &old);
    else if (sr != SQLITE_DONE)
        rc = ss_state_sqlerr(s->st->db, err, errsz, "source lookup");
    sqlite3_reset(g);
    if (rc)
        return rc;
    if (w < 0) {
        if (!old)
            return SS_OK;
        sqlite3_stmt *x = ss_state_stmt(s->st, S_DEL, err, errsz, "DELETE FROM %s_rows WHERE k = ?1", p);
        if (!x)
            rc = SS_ERR_SQLITE;
        if (!rc) {
            ss_state_bind_buf(x, 1, &s->kb);
            rc = ss_state_run(s->st, x, err, errsz);
        }
        if (!rc)
            rc = ss_zset_add(d, old, -1);
        else
            ss_row_free(old);
        return rc;
    }
    sqlite3_stmt *u = ss_state_stmt(s->st, S_PUT, err, errsz,
                                    "INSERT OR REPLACE INTO %s_rows(k, row, ts) VALUES(?1, ?2, ?3)", p);
    if (!u) {
        ss_row_free(old);
        return SS_ERR_SQLITE;
    }
    ss_state_bind_buf(u, 1, &s->kb);
    ss_state_bind_row(u, 2, r, &s->rb);
    bind_ts(s, u, 3, r, now);
    rc = ss_state_run(s->st, u, err, errsz);
    if (!rc && (!old || ss_row_cmp(old, r) != 0)) {
        if (old) {
            rc = ss_zset_add(d, old, -1);
            old = NULL;
        }
        if (!rc)
            rc = ss_zset_add_copy(d, r, 1);
    }
    ss_row_free(old);
    return rc;
}

/* One unkeyed event when a TTL is set (instances are tracked). */
static int unkeyed_event(ss_op_t *op, const ss_row_t *r, int64_t w, int64_t now, ss_zset_t *d, char *err,
                         size_t errsz)
{
    source_t *s = op->impl;
    const char *p = s->st->prefix;
    ss_buf_reset(&s->kb);
    int rc = ss_row_encode(r, &s->kb);
    int64_t h = ss_state_row_hash(s->kb.data, s->kb.len);
    for (int64_t i = 0; !rc && i < (w < 0 ? -w : w); i++) {
        if (w > 0) {
            sqlite3_stmt *x = ss_state_stmt(s->st, S_INS, err, errsz,
                                            "INSERT INTO %s_inst(k, row, ts) VALUES(?1, ?2, ?3)", p);
            if (!x)
                return SS_ERR_SQLITE;
            sqlite3_bind_int64(x, 1, h);
            ss_state_bind_buf(x, 2, &s->kb);
            bind_ts(s, x, 3, r, now);
            rc = ss_state_run(s->st, x, err, errsz);
            if (!rc)
                rc = ss_zset_add_copy(d, r, 1);
            continue;
        }
        sqlite3_stmt *f = ss_state_stmt(s->st, S_FIND, err, errsz,
                                        "SELECT id, row FROM %s_inst WHERE k = ?1 ORDER BY id", p);
        if (!f)
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(f, 1, h);
        int sr;
        int64_t id = -1;
        while (id < 0 && (sr = sqlite3_step(f)) == SQLITE_ROW)
            if ((size_t)sqlite3_column_bytes(f, 1) == s->kb.len &&
                memcmp(sqlite3_column_blob(f, 1), s->kb.data, s->kb.len) == 0)
                id = sqlite3_column_int64(f, 0);
        if (id >= 0)
            sr = SQLITE_ROW;
        sqlite3_reset(f);
        if (sr != SQLITE_ROW && sr != SQLITE_DONE)
            return ss_state_sqlerr(s->st->db, err, errsz, "source lookup");
        if (id < 0)
            break; /* deleting an absent row: nothing to retract */
        sqlite3_stmt *x = ss_state_stmt(s->st, S_DEL_ID, err, errsz, "DELETE FROM %s_inst WHERE id = ?1", p);
        if (!x)
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(x, 1, id);
        rc = ss_state_run(s->st, x, err, errsz);
        if (!rc)
            rc = ss_zset_add_copy(d, r, -1);
    }
    return rc;
}

/* One unkeyed event without a TTL: counted copies; a delete removes at most the copies there are. */
static int counted_event(ss_op_t *op, const ss_row_t *r, int64_t w, ss_zset_t *d, char *err, size_t errsz)
{
    source_t *s = op->impl;
    int64_t o = 0, n = 0;
    ss_buf_reset(&s->kb);
    if (ss_state_cluster_key(r, &s->kb))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (w > 0) { /* an insert: the count only grows (it is never negative), nothing to read back */
        int rc = ss_state_hcount_add(s->st, S_CNT, "cnt", &s->kb, r, w, NULL, NULL, err, errsz);
        return rc ? rc : ss_zset_add_copy(d, r, w);
    }
    int rc = ss_state_hcount_add(s->st, S_CNT, "cnt", &s->kb, r, w, &o, &n, err, errsz);
    if (!rc && n < 0) /* more deletes than copies: the surplus is dropped */
        rc = ss_state_hcount_add(s->st, S_CNT, "cnt", &s->kb, r, -n, NULL, NULL, err, errsz);
    if (!rc)
        rc = ss_zset_add_copy(d, r, n < 0 ? -o : w);
    return rc;
}

/* Retracts and forgets every row older than now - ttl. */
static int expire(ss_op_t *op, int64_t now, ss_zset_t *d, char *err, size_t errsz)
{
    source_t *s = op->impl;
    const char *tbl = s->nkeys ? "rows" : "inst", *p = s->st->prefix;
    int64_t cutoff = now - s->ttl_ms;
    sqlite3_stmt *q = ss_state_stmt(s->st, S_EXP_SEL, err, errsz, "SELECT row FROM %s_%s WHERE ts < ?1", p, tbl);
    if (!q)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(q, 1, cutoff);
    int rc = ss_state_collect_rows(q, 0, -1, -1, d); /* expired rows leave as deletes */
    if (rc)
        return ss_seterr(err, errsz, rc, "bad state row");
    sqlite3_stmt *x = ss_state_stmt(s->st, S_EXP_DEL, err, errsz, "DELETE FROM %s_%s WHERE ts < ?1", p, tbl);
    if (!x)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(x, 1, cutoff);
    return ss_state_run(s->st, x, err, errsz);
}

/* Time passed (op->advance): expires what is due, and says when the next row is (the oldest
 * time in state + ttl), so rows leave on time, not at the next delta (engine/pipe_time.c). */
static int source_advance(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, int64_t *due_us, char *err, size_t errsz)
{
    (void)ctx;
    source_t *s = op->impl;
    *due_us = SS_TIME_NONE;
    if (!s->ttl_ms)
        return SS_OK;
    ss_zset_t d;
    ss_zset_init(&d);
    int rc = expire(op, op->now_us / 1000, &d, err, errsz);
    if (!rc)
        rc = ss_state_zset_move(out, &d);
    ss_zset_destroy(&d);
    sqlite3_stmt *q = rc ? NULL : ss_state_stmt(s->st, S_NEXT, err, errsz, "SELECT min(ts) FROM %s_%s", s->st->prefix,
                                                 s->nkeys ? "rows" : "inst");
    if (!rc && !q)
        rc = SS_ERR_SQLITE;
    if (!rc && sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
        *due_us = (sqlite3_column_int64(q, 0) + s->ttl_ms) * 1000 + 1000; /* expires once strictly older */
    if (q)
        sqlite3_reset(q);
    if (rc)
        ss_errprefix(err, errsz, "source %s (node %d): TTL", op->node->label ? op->node->label : "?", op->node->id);
    return rc;
}

static int source_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                        char *err, size_t errsz)
{
    (void)ctx;
    (void)port;
    source_t *s = op->impl;
    int64_t now = ss_state_now_ms();
    ss_zset_t d;
    ss_zset_init(&d);
    int rc = SS_OK;
    for (size_t i = 0; i < in->n && !rc; i++) {
        if (in->e[i].w == 0)
            continue;
        if (s->append_only)
            rc = in->e[i].w > 0 ? ss_zset_add_copy(&d, in->e[i].row, in->e[i].w)
                                : (int)ss_seterr(err, errsz, SS_ERR_INVALID, "a delete in an append_only stream");
        else if (s->nkeys)
            rc = keyed_event(op, in->e[i].row, in->e[i].w, now, &d, err, errsz);
        else if (s->ttl_ms)
            rc = unkeyed_event(op, in->e[i].row, in->e[i].w, now, &d, err, errsz);
        else
            rc = counted_event(op, in->e[i].row, in->e[i].w, &d, err, errsz);
    }
    if (!rc && s->ttl_ms)
        rc = expire(op, now, &d, err, errsz);
    if (!rc)
        rc = ss_zset_consolidate(&d);
    if (!rc)
        rc = ss_state_zset_move(out, &d);
    ss_zset_destroy(&d);
    if (rc)
        ss_errprefix(err, errsz, "source %s (node %d)", op->node->label ? op->node->label : "?", op->node->id);
    return rc;
}

static int source_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    source_t *s = op->impl;
    if (s->append_only)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "source %s is append_only and keeps no rows: its history is "
                         "its topic", op->node->label ? op->node->label : "?");
    if (!s->nkeys && !s->ttl_ms) /* counts under row hashes, not the rows: the history is the topic */
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "source %s keeps counts of its rows, not the rows (no key, "
                         "no ttl): its history is its topic", op->node->label ? op->node->label : "?");
    sqlite3_stmt *q = ss_state_stmt(s->st, S_SNAP, err, errsz, "SELECT row FROM %s_%s", s->st->prefix,
                                    s->nkeys ? "rows" : "inst");
    if (!q)
        return SS_ERR_SQLITE;
    int rc = ss_state_collect_rows(q, 0, -1, 1, out);
    return rc ? ss_seterr(err, errsz, rc, "source (node %d): bad state row", op->node->id) : SS_OK;
}

static const char *source_strategy(const ss_op_t *op)
{
    const source_t *s = op->impl;
    return s->strategy[0] ? s->strategy : "upsert normalisation";
}

static void source_destroy(ss_op_t *op)
{
    source_t *s = op->impl;
    if (!s)
        return;
    ss_state_destroy(s->st);
    free(s->keys);
    ss_buf_free(&s->kb);
    ss_buf_free(&s->rb);
    free(s);
    op->impl = NULL;
}

static const ss_op_vtable_t source_vt = {
    "source", SS_OPK_NONLINEAR, source_init, source_apply, source_snapshot, source_strategy, source_destroy, NULL,
};

int ss_op_source_init(ss_op_t *op, char *err, size_t errsz)
{
    source_t *s = calloc(1, sizeof *s);
    if (!s)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    s->ttl_col = -1;
    op->vt = &source_vt;
    op->impl = s;
    op->advance = source_advance;
    return SS_OK;
}
