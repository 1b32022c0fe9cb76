/*
 * view.c — SS_PN_VIEW: materialises the integrated input as the SQLite table
 * view_<label>, so that `SELECT ... FROM view_<label>` answers snapshots.
 *
 * Table layout (a rowid table: each row stored once, never inside a key):
 *   _id   INTEGER PRIMARY KEY
 *   one real SQLite column per schema column, with the user's name (declared
 *         TEXT, INTEGER, REAL, INTEGER for BOOLEAN, or untyped for ANY),
 *   _mult INTEGER — multiplicity: how many copies of this row the view holds,
 *   _k    BLOB    — order-preserving key (ss_state_sortkey) of the cluster
 *                   columns (the view's KEY columns, else its first column),
 *                   cut to SS_VIEW_KMAX bytes,
 *   _h    INTEGER — hash of the exact row (ss_state_row_hash),
 *   _x    BLOB    — the exact row (ss_row_encode), only when the typed columns
 *                   would not give it back (an INT in a REAL column, text in an
 *                   INTEGER one...); NULL otherwise,
 * and the index vix_<label> on (_k, _h), through which a changed row is found
 * (rows that arrive in key order append at the index's right edge). A row
 * therefore costs its own size plus some 40 bytes, however large it is.
 * The internal names (_id, _mult, _k, _h, _x) give way to user columns of the
 * same name: ss_view_internal() appends '_' until a name is free, so a view
 * may have a column called "_mult" or "i" (readers use the same function).
 * Duplicates are stored once with _mult > 1 (SUM(_mult) is the row count); a
 * row whose multiplicity reaches 0 is deleted. Tables of the layouts before
 * this one are refused with a message (drop and re-create the view).
 * The operator passes its consolidated input delta through as output;
 * snapshot() returns the table contents with their multiplicities.
 *
 * Seen filter: a Bloom filter over the _h of every row the table may hold
 * (built from the table at the first change, then fed by every insert). A row
 * whose hash it has never seen cannot be in the table, so an insertion of it
 * skips the lookup. It only ever errs towards "maybe present" (a stale bit after
 * a delete or a rolled-back batch costs one lookup, never a wrong answer), and
 * is rebuilt from the table, twice as large, when it holds more hashes than it
 * was sized for (16 bits per hash, 4 probes: ~0.2% false positives).
 */
#include "ss_op.h"
#include "ss_state.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SS_VIEW_KMAX 24 /* bytes of the cluster key kept in _k */

enum { S_FIND, S_INS, S_UPD, S_DEL, S_SNAP, S_N };
enum { I_ID, I_MULT, I_K, I_H, I_X, I_N }; /* internal columns */

static const char *const internal_base[I_N] = {"_id", "_mult", "_k", "_h", "_x"};

typedef struct view {
    ss_state_t *st;  /* statement cache (tables are not st_-prefixed here) */
    char *table;     /* quoted "view_<label>" */
    char *sql[S_N];  /* find, insert, update, delete, snapshot */
    int kcols[64];   /* cluster columns encoded into _k */
    int nk;
    ss_buf_t rb, kb, cb; /* scratch: _row of the row being changed, its _k, a candidate's encoding */
    uint64_t *seen;      /* the seen filter (see above); NULL until the first change */
    size_t seen_bits;    /* a power of two */
    size_t seen_n;       /* hashes added since it was built */
} view_t;

enum { SEEN_BITS_PER_HASH = 16, SEEN_PROBES = 4, SEEN_MIN_BITS = 1 << 16 };

const char *ss_view_internal(const ss_schema_t *s, const char *base, char *buf, size_t n)
{
    snprintf(buf, n, "%s", base);
    for (;;) {
        int taken = 0;
        for (int i = 0; s && i < s->n && !taken; i++)
            taken = s->names[i] && ss_strcaseeq(s->names[i], buf);
        size_t len = strlen(buf);
        if (!taken || len + 2 > n)
            return buf;
        buf[len] = '_';
        buf[len + 1] = 0;
    }
}

static const char *decl_type(ss_coltype_t t)
{
    switch (t) {
    case SS_COL_TEXT: return " TEXT";
    /* exact text with TEXT affinity (the name contains "TEXT"); readers tell them apart by the
     * declared type (engine_query.c prints them as JSON numbers / documents) */
    case SS_COL_NUMERIC: return " NUMERIC_TEXT";
    case SS_COL_JSON: return " JSON_TEXT";
    case SS_COL_TIMESTAMP: case SS_COL_TIMESTAMPTZ: case SS_COL_DATE: case SS_COL_INTERVAL:
        return " TEXT"; /* '2024-03-01 12:00:00': readable in SQL; the exact value in _x */
    case SS_COL_INT: case SS_COL_BOOL: return " INTEGER";
    case SS_COL_REAL: return " REAL";
    default: return "";
    }
}

/* 1 when the typed column gives v back exactly (SQLite's affinity would not convert it). */
static int exact_in_column(const ss_value_t *v, ss_coltype_t t)
{
    switch (v->t) {
    case SS_NULL: return 1;
    case SS_TEXT: return t == SS_COL_TEXT || t == SS_COL_ANY;
    case SS_INT: return t == SS_COL_INT || t == SS_COL_BOOL || t == SS_COL_ANY;
    case SS_REAL: return (t == SS_COL_REAL || t == SS_COL_ANY) && isfinite(v->u.r);
    case SS_NUM: case SS_JSON: return 0; /* their text in the column; the exact value in _x */
    case SS_TS: case SS_TSTZ: case SS_DATE: case SS_IVL: return 0; /* likewise */
    }
    return 0;
}

static int put_internal(ss_buf_t *b, const ss_schema_t *sc, int which)
{
    char nm[64];
    return ss_state_quote_ident(b, ss_view_internal(sc, internal_base[which], nm, sizeof nm));
}

static int put_user(ss_buf_t *b, const ss_schema_t *sc, int i)
{
    char def[32];
    const char *cn = sc->names[i];
    if (!cn) {
        snprintf(def, sizeof def, "c%d", i);
        cn = def;
    }
    return ss_state_quote_ident(b, cn);
}

/* The table's and the index's DDL. */
static int build_ddl(view_t *v, const ss_schema_t *sc, const char *label, ss_buf_t *ddl)
{
    int rc = ss_buf_printf(ddl, "CREATE TABLE IF NOT EXISTS %s(", v->table);
    rc = rc ? rc : put_internal(ddl, sc, I_ID);
    rc = rc ? rc : ss_buf_puts(ddl, " INTEGER PRIMARY KEY, ");
    for (int i = 0; i < sc->n && !rc; i++) {
        rc = put_user(ddl, sc, i);
        if (!rc)
            rc = ss_buf_printf(ddl, "%s, ", decl_type(sc->types[i]));
    }
    static const char *const decl[I_N] = {"", " INTEGER NOT NULL, ", " BLOB NOT NULL, ", " INTEGER NOT NULL, ", " BLOB);"};
    for (int k = I_MULT; k < I_N && !rc; k++) {
        rc = put_internal(ddl, sc, k);
        if (!rc)
            rc = ss_buf_puts(ddl, decl[k]);
    }
    char *ix = ss_sprintf("vix_%s", label);
    rc = rc || !ix ? SS_ERR_NOMEM : ss_buf_puts(ddl, "CREATE INDEX IF NOT EXISTS ");
    rc = rc ? rc : ss_state_quote_ident(ddl, ix);
    rc = rc ? rc : ss_buf_printf(ddl, " ON %s(", v->table);
    rc = rc ? rc : put_internal(ddl, sc, I_K);
    rc = rc ? rc : ss_buf_puts(ddl, ", ");
    rc = rc ? rc : put_internal(ddl, sc, I_H);
    rc = rc ? rc : ss_buf_puts(ddl, ")");
    free(ix);
    return rc;
}

/* The statements on one row: find, insert, update, delete and the snapshot. */
static int build_dml(view_t *v, const ss_schema_t *sc)
{
    ss_buf_t b[S_N] = {SS_BUF_INIT, SS_BUF_INIT, SS_BUF_INIT, SS_BUF_INIT, SS_BUF_INIT};
    int rc = SS_OK;
    /* SELECT _id, _mult, _x, cols... (find and snapshot read the same columns) */
    for (int q = 0; q < 2 && !rc; q++) {
        ss_buf_t *o = &b[q ? S_SNAP : S_FIND];
        rc = ss_buf_puts(o, "SELECT ");
        rc = rc ? rc : put_internal(o, sc, I_ID);
        rc = rc ? rc : ss_buf_puts(o, ", ");
        rc = rc ? rc : put_internal(o, sc, I_MULT);
        rc = rc ? rc : ss_buf_puts(o, ", ");
        rc = rc ? rc : put_internal(o, sc, I_X);
        for (int i = 0; i < sc->n && !rc; i++) {
            rc = ss_buf_puts(o, ", ");
            rc = rc ? rc : put_user(o, sc, i);
        }
        rc = rc ? rc : ss_buf_printf(o, " FROM %s", v->table);
    }
    rc = rc ? rc : ss_buf_puts(&b[S_FIND], " WHERE ");
    rc = rc ? rc : put_internal(&b[S_FIND], sc, I_K);
    rc = rc ? rc : ss_buf_puts(&b[S_FIND], " = ?1 AND ");
    rc = rc ? rc : put_internal(&b[S_FIND], sc, I_H);
    rc = rc ? rc : ss_buf_puts(&b[S_FIND], " = ?2");
    /* INSERT INTO t(cols..., _mult, _k, _h, _x) VALUES(?1..) */
    rc = rc ? rc : ss_buf_printf(&b[S_INS], "INSERT INTO %s(", v->table);
    for (int i = 0; i < sc->n && !rc; i++) {
        rc = put_user(&b[S_INS], sc, i);
        rc = rc ? rc : ss_buf_puts(&b[S_INS], ", ");
    }
    for (int k = I_MULT; k < I_N && !rc; k++) {
        rc = put_internal(&b[S_INS], sc, k);
        rc = rc ? rc : ss_buf_puts(&b[S_INS], k + 1 < I_N ? ", " : ") VALUES(");
    }
    for (int i = 0; i < sc->n + 4 && !rc; i++)
        rc = ss_buf_printf(&b[S_INS], "%s?%d", i ? ", " : "", i + 1);
    rc = rc ? rc : ss_buf_putc(&b[S_INS], ')');
    rc = rc ? rc : ss_buf_printf(&b[S_UPD], "UPDATE %s SET ", v->table);
    rc = rc ? rc : put_internal(&b[S_UPD], sc, I_MULT);
    rc = rc ? rc : ss_buf_puts(&b[S_UPD], " = ?1 WHERE ");
    rc = rc ? rc : put_internal(&b[S_UPD], sc, I_ID);
    rc = rc ? rc : ss_buf_puts(&b[S_UPD], " = ?2");
    rc = rc ? rc : ss_buf_printf(&b[S_DEL], "DELETE FROM %s WHERE ", v->table);
    rc = rc ? rc : put_internal(&b[S_DEL], sc, I_ID);
    rc = rc ? rc : ss_buf_puts(&b[S_DEL], " = ?1");
    for (int q = 0; q < S_N; q++) {
        free(v->sql[q]);
        v->sql[q] = rc ? NULL : ss_buf_take(&b[q]);
        ss_buf_free(&b[q]);
    }
    return rc;
}

/* 1 if the table exists in a layout of an older semstream (no _h column). */
static int old_layout(sqlite3 *db, const char *raw, const ss_schema_t *sc)
{
    char nm[64];
    char *sql = sqlite3_mprintf("SELECT count(*), sum(name = %Q) FROM pragma_table_info(%Q)",
                                ss_view_internal(sc, internal_base[I_H], nm, sizeof nm), raw);
    sqlite3_stmt *q = NULL;
    int old = 0;
    if (sql && sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        old = sqlite3_column_int(q, 0) > 0 && sqlite3_column_int(q, 1) == 0;
    sqlite3_finalize(q);
    sqlite3_free(sql);
    return old;
}

static int view_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    view_t *v = op->impl;
    const ss_plan_node_t *n = op->node;
    if (!n->schema)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "view node %d has no schema", n->id);
    if (!v->st && !(v->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    const char *label = n->label ? n->label : "unnamed";
    ss_buf_t name = SS_BUF_INIT, ddl = SS_BUF_INIT;
    char *raw = ss_sprintf("view_%s", label);
    int rc = raw ? ss_state_quote_ident(&name, raw) : SS_ERR_NOMEM;
    if (!rc) {
        free(v->table);
        v->table = ss_buf_take(&name);
        rc = build_ddl(v, n->schema, label, &ddl);
    }
    if (!rc)
        rc = build_dml(v, n->schema);
    ss_buf_free(&name);
    if (rc) {
        free(raw);
        ss_buf_free(&ddl);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    if (old_layout(ctx->db, raw, n->schema))
        rc = ss_seterr(err, errsz, SS_ERR_UNSUPPORTED,
                       "view %s: its table was written by an older semstream in a storage format this one "
                       "does not read; drop and re-create the view",
                       label);
    else
        rc = ss_state_exec(v->st, err, errsz, "%s", ss_buf_cstr(&ddl));
    free(raw);
    ss_buf_free(&ddl);
    v->nk = ss_schema_keys(n->schema, v->kcols, (int)SS_ARRAY_LEN(v->kcols));
    if (v->nk == 0 && n->schema->n > 0)
        v->kcols[v->nk++] = 0;
    return rc;
}

/* Bindings without copies (SQLITE_STATIC): the row and v's buffers outlive the
 * step, and ss_state_stmt clears the bindings before a statement's next use. */
static void bind_blob(sqlite3_stmt *s, int idx, const ss_buf_t *b)
{
    sqlite3_bind_blob(s, idx, b->len ? b->data : "", (int)b->len, SQLITE_STATIC);
}

static void bind_value(sqlite3_stmt *s, int idx, const ss_value_t *v)
{
    if (v->t == SS_TEXT)
        sqlite3_bind_text(s, idx, v->u.str.s ? v->u.str.s : "", (int)v->u.str.n, SQLITE_STATIC);
    else
        ss_state_bind_value(s, idx, v);
}

/* The row of a result row of the find/snapshot statements (_id, _mult, _x, cols...). */
static int column_row(sqlite3_stmt *q, int ncols, ss_row_t **out)
{
    if (sqlite3_column_type(q, 2) != SQLITE_NULL)
        return ss_state_column_row(q, 2, out);
    ss_row_t *r = ss_row_new(ncols);
    if (!r)
        return SS_ERR_NOMEM;
    for (int i = 0; i < ncols; i++) {
        ss_value_t x = ss_state_column_value(q, 3 + i);
        if (ss_row_set(r, i, &x)) {
            ss_row_free(r);
            return SS_ERR_NOMEM;
        }
    }
    *out = r;
    return SS_OK;
}

/* Finds the row encoded in v->rb (hash h): *id and *m, or *id = 0. */
static int lookup(view_t *v, int ncols, int64_t h, int64_t *id, int64_t *m, char *err, size_t errsz)
{
    sqlite3_stmt *q = ss_state_stmt(v->st, S_FIND, err, errsz, "%s", v->sql[S_FIND]);
    if (!q)
        return SS_ERR_SQLITE;
    bind_blob(q, 1, &v->kb);
    sqlite3_bind_int64(q, 2, h);
    *id = 0;
    *m = 0;
    int sr, rc = SS_OK;
    while (!rc && !*id && (sr = sqlite3_step(q)) == SQLITE_ROW) {
        ss_row_t *c = NULL;
        rc = column_row(q, ncols, &c);
        ss_buf_reset(&v->cb);
        if (!rc)
            rc = ss_row_encode(c, &v->cb);
        ss_row_free(c);
        if (!rc && v->cb.len == v->rb.len && memcmp(v->cb.data, v->rb.data, v->rb.len) == 0) {
            *id = sqlite3_column_int64(q, 0);
            *m = sqlite3_column_int64(q, 1);
        }
    }
    if (*id)
        sr = SQLITE_DONE;
    sqlite3_reset(q);
    if (rc)
        return ss_seterr(err, errsz, rc, "view lookup: bad row");
    return sr == SQLITE_DONE ? SS_OK : ss_state_sqlerr(v->st->db, err, errsz, "view lookup");
}

static int insert_row(view_t *v, const ss_schema_t *sc, const ss_row_t *r, int64_t w, int64_t h, char *err,
                      size_t errsz)
{
    sqlite3_stmt *s = ss_state_stmt(v->st, S_INS, err, errsz, "%s", v->sql[S_INS]);
    if (!s)
        return SS_ERR_SQLITE;
    int exact = 1;
    for (int i = 0; i < r->n; i++) {
        bind_value(s, i + 1, &r->v[i]);
        exact &= exact_in_column(&r->v[i], sc->types[i]);
    }
    sqlite3_bind_int64(s, r->n + 1, w);
    bind_blob(s, r->n + 2, &v->kb);
    sqlite3_bind_int64(s, r->n + 3, h);
    if (!exact)
        bind_blob(s, r->n + 4, &v->rb);
    return ss_state_run(v->st, s, err, errsz);
}

static void seen_add(view_t *v, uint64_t h)
{
    uint64_t a = h, b = (h >> 32 | h << 32) | 1, m = v->seen_bits - 1;
    for (int i = 0; i < SEEN_PROBES; i++, a += b)
        v->seen[(a & m) >> 6] |= 1ULL << (a & 63);
    v->seen_n++;
}

/* 0 when no row of hash h was ever added (the row cannot be in the table). */
static int seen_maybe(const view_t *v, uint64_t h)
{
    uint64_t a = h, b = (h >> 32 | h << 32) | 1, m = v->seen_bits - 1;
    for (int i = 0; i < SEEN_PROBES; i++, a += b)
        if (!(v->seen[(a & m) >> 6] & 1ULL << (a & 63)))
            return 0;
    return 1;
}

/* (Re)builds the seen filter from the table, sized for twice its rows (or more). */
static int seen_build(view_t *v, const ss_schema_t *sc, char *err, size_t errsz)
{
    char nm[64];
    const char *hcol = ss_view_internal(sc, internal_base[I_H], nm, sizeof nm);
    char *q = sqlite3_mprintf("SELECT \"%w\" FROM %s", hcol, v->table);
    sqlite3_stmt *st = NULL;
    if (!q || sqlite3_prepare_v2(v->st->db, q, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_free(q);
        return ss_state_sqlerr(v->st->db, err, errsz, "view seen filter");
    }
    sqlite3_free(q);
    /* one pass: the hashes first (the filter's size depends on how many there are) */
    uint64_t *hs = NULL;
    size_t rows = 0, cap = 0;
    int sr;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows == cap) {
            uint64_t *nh = realloc(hs, (cap = cap ? 2 * cap : 4096) * sizeof *hs);
            if (!nh)
                break;
            hs = nh;
        }
        hs[rows++] = (uint64_t)sqlite3_column_int64(st, 0);
    }
    if (sr != SQLITE_DONE) {
        int rc;
        if (sr == SQLITE_ROW)
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "view seen filter: out of memory");
        else
            rc = ss_state_sqlerr(v->st->db, err, errsz, "view seen filter");
        sqlite3_finalize(st);
        free(hs);
        return rc;
    }
    sqlite3_finalize(st);
    size_t bits = SEEN_MIN_BITS;
    while (bits / SEEN_BITS_PER_HASH < rows * 2 + 1024)
        bits *= 2;
    uint64_t *f = calloc(bits / 64, sizeof *f);
    if (!f) {
        free(hs);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "view seen filter: out of memory");
    }
    free(v->seen);
    v->seen = f;
    v->seen_bits = bits;
    v->seen_n = 0;
    for (size_t i = 0; i < rows; i++)
        seen_add(v, hs[i]);
    free(hs);
    return SS_OK;
}

/* Adds w copies of r (w < 0 removes): finds the row, then an INSERT, an UPDATE of _mult, or a
 * DELETE when it reaches 0. */
static int view_change(view_t *v, const ss_schema_t *sc, const ss_row_t *r, int64_t w, char *err, size_t errsz)
{
    ss_buf_reset(&v->rb);
    ss_buf_reset(&v->kb);
    int rc = ss_row_encode(r, &v->rb);
    for (int i = 0; i < v->nk && !rc; i++)
        rc = ss_state_sortkey(&v->kb, &r->v[v->kcols[i]], 0);
    if (rc)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "encode row");
    if (v->kb.len > SS_VIEW_KMAX)
        v->kb.len = SS_VIEW_KMAX;
    int64_t h = ss_state_row_hash(v->rb.data, v->rb.len), id = 0, m = 0;
    if (!v->seen || v->seen_n > v->seen_bits / SEEN_BITS_PER_HASH)
        if ((rc = seen_build(v, sc, err, errsz)))
            return rc;
    if (w > 0 && !seen_maybe(v, (uint64_t)h)) { /* never seen: cannot be in the table */
        seen_add(v, (uint64_t)h);
        return insert_row(v, sc, r, w, h, err, errsz);
    }
    if ((rc = lookup(v, sc->n, h, &id, &m, err, errsz)))
        return rc;
    if (!id) {
        seen_add(v, (uint64_t)h);
        return insert_row(v, sc, r, w, h, err, errsz);
    }
    sqlite3_stmt *s;
    if (m + w != 0) {
        if (!(s = ss_state_stmt(v->st, S_UPD, err, errsz, "%s", v->sql[S_UPD])))
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(s, 1, m + w);
        sqlite3_bind_int64(s, 2, id);
    } else {
        if (!(s = ss_state_stmt(v->st, S_DEL, err, errsz, "%s", v->sql[S_DEL])))
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(s, 1, id);
    }
    return ss_state_run(v->st, s, err, errsz);
}

static int view_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                      char *err, size_t errsz)
{
    (void)ctx;
    (void)port;
    view_t *v = op->impl;
    ss_zset_t z;
    ss_zset_init(&z);
    int rc = ss_state_zset_consolidated(in, &z);
    for (size_t i = 0; i < z.n && !rc; i++) {
        if (z.e[i].row->n != op->node->schema->n) {
            rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "row has %d columns, view has %d", z.e[i].row->n,
                           op->node->schema->n);
            break;
        }
        rc = view_change(v, op->node->schema, z.e[i].row, z.e[i].w, err, errsz);
    }
    if (!rc)
        rc = ss_state_zset_move(out, &z);
    ss_zset_destroy(&z);
    if (rc)
        ss_errprefix(err, errsz, "view %s", op->node->label ? op->node->label : "?");
    return rc;
}

static int view_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    (void)ctx;
    view_t *v = op->impl;
    sqlite3_stmt *q = ss_state_stmt(v->st, S_SNAP, err, errsz, "%s", v->sql[S_SNAP]);
    if (!q)
        return SS_ERR_SQLITE;
    int rc = SS_OK;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        ss_row_t *r = NULL;
        rc = column_row(q, op->node->schema->n, &r);
        if (!rc)
            rc = ss_zset_add(out, r, sqlite3_column_int64(q, 1));
    }
    sqlite3_reset(q);
    return rc ? ss_seterr(err, errsz, rc, "view %s: bad row", op->node->label ? op->node->label : "?") : SS_OK;
}

static const char *view_strategy(const ss_op_t *op)
{
    (void)op;
    return "materialised in SQLite table view_<name> (one row per distinct tuple, _mult = copies)";
}

static void view_destroy(ss_op_t *op)
{
    view_t *v = op->impl;
    if (!v)
        return;
    ss_state_destroy(v->st);
    free(v->table);
    for (int i = 0; i < S_N; i++)
        free(v->sql[i]);
    ss_buf_free(&v->rb);
    ss_buf_free(&v->kb);
    ss_buf_free(&v->cb);
    free(v->seen);
    free(v);
    op->impl = NULL;
}

static const ss_op_vtable_t view_vt = {
    "view", SS_OPK_LINEAR, view_init, view_apply, view_snapshot, view_strategy, view_destroy, NULL,
};

int ss_op_view_init(ss_op_t *op, char *err, size_t errsz)
{
    view_t *v = calloc(1, sizeof *v);
    if (!v)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->vt = &view_vt;
    op->impl = v;
    return SS_OK;
}
