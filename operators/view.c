/*
 * view.c — SS_PN_VIEW: materialises the integrated input as the SQLite table
 * view_<label>, so that `SELECT ... FROM view_<label>` answers snapshots.
 *
 * Table layout: one real SQLite column per schema column (declared TEXT,
 * INTEGER, REAL, INTEGER for BOOLEAN, or untyped for ANY), then
 *   _mult INTEGER  — multiplicity: how many copies of this row the view holds,
 *   _k    BLOB     — order-preserving key (ss_state_sortkey) of the cluster
 *                    columns: the view's KEY columns, else its first column,
 *   _row  BLOB     — the exact row (ss_row_encode);
 * primary key (_k, _row), WITHOUT ROWID. One B-tree write per changed row (a
 * rowid table keyed by a BLOB writes the table and its automatic index), and
 * rows that arrive in key order (ids, timestamps) append at the right edge of
 * the tree instead of dirtying pages all over it, so a micro-batch's COMMIT
 * writes pages in proportion to the batch, not to the table. _row alone
 * identifies a row; _k is a function of it. Tables of the older layout
 * (rowid, _row BLOB PRIMARY KEY, no _k) keep working.
 * Duplicates are stored once with _mult > 1 (SUM(_mult) is the row count);
 * a row whose multiplicity reaches 0 is deleted (view_change says how).
 * The exact values (INT vs REAL, text that looks numeric) come back from
 * _row; the typed columns are for SQL.
 * The operator passes its consolidated input delta through as output;
 * snapshot() returns the table contents with their multiplicities.
 */
#include "ss_op.h"
#include "ss_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_GET, S_INS, S_UPD, S_DEL, S_SNAP, S_N };

typedef struct view {
    ss_state_t *st;  /* statement cache (tables are not st_-prefixed here) */
    char *table;     /* quoted "view_<label>" */
    char *ins_sql;   /* INSERT OR IGNORE with every column */
    char *get_sql, *upd_sql, *del_sql; /* _mult of one row; its UPDATE; its DELETE */
    int has_k;       /* the table has _k (0: a table of the older layout) */
    int kcols[64];   /* cluster columns encoded into _k */
    int nk;
    ss_buf_t rb, kb; /* scratch: _row and _k of the row being changed */
} view_t;

static const char *decl_type(ss_coltype_t t)
{
    switch (t) {
    case SS_COL_TEXT: case SS_COL_NUMERIC: case SS_COL_JSON: return " TEXT"; /* exact text, no affinity */
    case SS_COL_TIMESTAMP: case SS_COL_TIMESTAMPTZ: case SS_COL_DATE: case SS_COL_INTERVAL:
        return " TEXT"; /* '2024-03-01 12:00:00': ordered like the values, readable in SQL */
    case SS_COL_INT: case SS_COL_BOOL: return " INTEGER";
    case SS_COL_REAL: return " REAL";
    default: return "";
    }
}

/* 1 if table (quoted) has a column named col. */
static int has_column(sqlite3 *db, const char *table, const char *col)
{
    char *sql = sqlite3_mprintf("SELECT 1 FROM pragma_table_info(%Q) WHERE name = %Q", table, col);
    sqlite3_stmt *q = NULL;
    int found = 0;
    if (sql && sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK)
        found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    sqlite3_free(sql);
    return found;
}

/* The table's DDL and the start of its INSERT (column list). */
static int build_sql(view_t *v, const ss_schema_t *sc, ss_buf_t *ddl, ss_buf_t *ins)
{
    int rc = ss_buf_printf(ddl, "CREATE TABLE IF NOT EXISTS %s(", v->table);
    if (!rc)
        rc = ss_buf_printf(ins, "INSERT OR IGNORE INTO %s(", v->table);
    for (int i = 0; i < sc->n && !rc; i++) {
        char def[32];
        const char *cn = sc->names[i];
        if (!cn) {
            snprintf(def, sizeof def, "c%d", i);
            cn = def;
        }
        rc = ss_state_quote_ident(ddl, cn);
        if (!rc)
            rc = ss_buf_printf(ddl, "%s, ", decl_type(sc->types[i]));
        if (!rc)
            rc = ss_state_quote_ident(ins, cn);
        if (!rc)
            rc = ss_buf_puts(ins, ", ");
    }
    if (!rc)
        rc = ss_buf_puts(ddl, "_mult INTEGER NOT NULL, _k BLOB NOT NULL, _row BLOB NOT NULL, "
                              "PRIMARY KEY(_k, _row)) WITHOUT ROWID");
    return rc;
}

/* The rest of the INSERT and the statements on one row, for the table's layout. */
static int finish_sql(view_t *v, int ncols, ss_buf_t *ins, char **get, char **upd, char **del)
{
    int rc = ss_buf_puts(ins, v->has_k ? "_mult, _k, _row) VALUES(" : "_mult, _row) VALUES(");
    for (int i = 0; i < ncols + 2 + v->has_k && !rc; i++)
        rc = ss_buf_printf(ins, "%s?%d", i ? ", " : "", i + 1);
    if (!rc)
        rc = ss_buf_putc(ins, ')');
    const char *w1 = v->has_k ? "_k = ?1 AND _row = ?2" : "_row = ?1";
    const char *w2 = v->has_k ? "_k = ?2 AND _row = ?3" : "_row = ?2";
    *get = ss_sprintf("SELECT _mult FROM %s WHERE %s", v->table, w1);
    *upd = ss_sprintf("UPDATE %s SET _mult = ?1 WHERE %s", v->table, w2);
    *del = ss_sprintf("DELETE FROM %s WHERE %s", v->table, w1);
    return rc || !*get || !*upd || !*del ? SS_ERR_NOMEM : SS_OK;
}

static int view_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    view_t *v = op->impl;
    const ss_plan_node_t *n = op->node;
    if (!n->schema)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "view node %d has no schema", n->id);
    if (!v->st && !(v->st = ss_state_new(ctx->db, n->id, S_N)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    ss_buf_t name = SS_BUF_INIT, ddl = SS_BUF_INIT, ins = SS_BUF_INIT;
    char *raw = ss_sprintf("view_%s", n->label ? n->label : "unnamed");
    int rc = raw ? ss_state_quote_ident(&name, raw) : SS_ERR_NOMEM;
    if (!rc) {
        free(v->table);
        v->table = ss_buf_take(&name);
        rc = build_sql(v, n->schema, &ddl, &ins);
    }
    if (rc) {
        free(raw);
        ss_buf_free(&name);
        ss_buf_free(&ddl);
        ss_buf_free(&ins);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    rc = ss_state_exec(v->st, err, errsz, "%s", ss_buf_cstr(&ddl));
    ss_buf_free(&ddl);
    v->has_k = !rc && has_column(ctx->db, raw, "_k");
    free(raw);
    v->nk = ss_schema_keys(n->schema, v->kcols, (int)SS_ARRAY_LEN(v->kcols));
    if (v->nk == 0 && n->schema->n > 0)
        v->kcols[v->nk++] = 0;
    free(v->get_sql);
    free(v->upd_sql);
    free(v->del_sql);
    v->get_sql = v->upd_sql = v->del_sql = NULL;
    if (!rc && finish_sql(v, n->schema->n, &ins, &v->get_sql, &v->upd_sql, &v->del_sql))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    free(v->ins_sql);
    v->ins_sql = ss_buf_take(&ins);
    return rc;
}

/* Bindings without copies (SQLITE_STATIC): the row and v->kb/v->rb outlive the
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

/* Binds the row's _k and _row (encoded into v->kb, v->rb) from parameter `at` on. */
static void bind_keys(view_t *v, sqlite3_stmt *s, int at)
{
    if (v->has_k)
        bind_blob(s, at++, &v->kb);
    bind_blob(s, at, &v->rb);
}

/* Current multiplicity of the row in v->rb (0 when absent) into *m. */
static int lookup(view_t *v, int64_t *m, int *found, char *err, size_t errsz)
{
    sqlite3_stmt *g = ss_state_stmt(v->st, S_GET, err, errsz, "%s", v->get_sql);
    if (!g)
        return SS_ERR_SQLITE;
    bind_keys(v, g, 1);
    int sr = sqlite3_step(g);
    *found = sr == SQLITE_ROW;
    *m = *found ? sqlite3_column_int64(g, 0) : 0;
    sqlite3_reset(g);
    return sr == SQLITE_ROW || sr == SQLITE_DONE ? SS_OK : ss_state_sqlerr(v->st->db, err, errsz, "view lookup");
}

/* INSERT of a row that is not in the table (OR IGNORE: *inserted = 0 when it is). */
static int insert_new(view_t *v, const ss_row_t *r, int64_t w, int *inserted, char *err, size_t errsz)
{
    sqlite3_stmt *s = ss_state_stmt(v->st, S_INS, err, errsz, "%s", v->ins_sql);
    if (!s)
        return SS_ERR_SQLITE;
    for (int i = 0; i < r->n; i++)
        bind_value(s, i + 1, &r->v[i]);
    sqlite3_bind_int64(s, r->n + 1, w);
    bind_keys(v, s, r->n + 2);
    int rc = ss_state_run(v->st, s, err, errsz);
    *inserted = !rc && sqlite3_changes(v->st->db) > 0;
    return rc;
}

/* Adds w copies of r (w < 0 removes). An addition first tries the INSERT (a new
 * row, the common case: one B-tree search), a removal first looks the row up
 * (it usually exists); then an UPDATE of _mult, or a DELETE when it reaches 0. */
static int view_change(view_t *v, const ss_row_t *r, int64_t w, char *err, size_t errsz)
{
    ss_buf_reset(&v->rb);
    ss_buf_reset(&v->kb);
    int rc = ss_row_encode(r, &v->rb);
    for (int i = 0; i < v->nk && !rc && v->has_k; i++)
        rc = ss_state_sortkey(&v->kb, &r->v[v->kcols[i]], 0);
    if (rc)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "encode row");
    int done = 0, found = 0;
    int64_t m = 0;
    if (w > 0 && (rc = insert_new(v, r, w, &done, err, errsz)))
        return rc;
    if (done)
        return SS_OK;
    if ((rc = lookup(v, &m, &found, err, errsz)))
        return rc;
    if (!found)
        return insert_new(v, r, w, &done, err, errsz);
    sqlite3_stmt *s;
    if (m + w != 0) {
        if (!(s = ss_state_stmt(v->st, S_UPD, err, errsz, "%s", v->upd_sql)))
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(s, 1, m + w);
        bind_keys(v, s, 2);
    } else {
        if (!(s = ss_state_stmt(v->st, S_DEL, err, errsz, "%s", v->del_sql)))
            return SS_ERR_SQLITE;
        bind_keys(v, s, 1);
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
        rc = view_change(v, z.e[i].row, z.e[i].w, err, errsz);
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
    sqlite3_stmt *q = ss_state_stmt(v->st, S_SNAP, err, errsz, "SELECT _row, _mult FROM %s", v->table);
    if (!q)
        return SS_ERR_SQLITE;
    int rc = ss_state_collect_rows(q, 0, 1, 0, out);
    return rc ? ss_seterr(err, errsz, rc, "view %s: bad _row", op->node->label ? op->node->label : "?") : SS_OK;
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
    free(v->ins_sql);
    free(v->get_sql);
    free(v->upd_sql);
    free(v->del_sql);
    ss_buf_free(&v->rb);
    ss_buf_free(&v->kb);
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
