/*
 * view.c — SS_PN_VIEW: materialises the integrated input as the SQLite table
 * view_<label>, so that `SELECT ... FROM view_<label>` answers snapshots.
 *
 * Table layout: one real SQLite column per schema column (declared TEXT,
 * INTEGER, REAL, INTEGER for BOOLEAN, or untyped for ANY), then
 *   _mult INTEGER  — multiplicity: how many copies of this row the view holds,
 *   _row  BLOB     — the exact row (ss_row_encode), primary key of the table.
 * Duplicates are stored once with _mult > 1 (SUM(_mult) is the row count);
 * a row whose multiplicity reaches 0 is deleted. The exact values (INT vs REAL,
 * text that looks numeric) come back from _row; the typed columns are for SQL.
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
    char *ins_sql;   /* INSERT with every column */
    ss_buf_t rb;
} view_t;

static const char *decl_type(ss_coltype_t t)
{
    switch (t) {
    case SS_COL_TEXT: return " TEXT";
    case SS_COL_INT: case SS_COL_BOOL: return " INTEGER";
    case SS_COL_REAL: return " REAL";
    default: return "";
    }
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
    free(raw);
    if (!rc)
        rc = ss_buf_printf(&ddl, "CREATE TABLE IF NOT EXISTS %s(", ss_buf_cstr(&name));
    if (!rc)
        rc = ss_buf_printf(&ins, "INSERT INTO %s(", ss_buf_cstr(&name));
    for (int i = 0; i < n->schema->n && !rc; i++) {
        char def[32];
        const char *cn = n->schema->names[i];
        if (!cn) {
            snprintf(def, sizeof def, "c%d", i);
            cn = def;
        }
        rc = ss_state_quote_ident(&ddl, cn);
        if (!rc)
            rc = ss_buf_printf(&ddl, "%s, ", decl_type(n->schema->types[i]));
        if (!rc)
            rc = ss_state_quote_ident(&ins, cn);
        if (!rc)
            rc = ss_buf_puts(&ins, ", ");
    }
    if (!rc)
        rc = ss_buf_puts(&ddl, "_mult INTEGER NOT NULL, _row BLOB PRIMARY KEY)");
    if (!rc)
        rc = ss_buf_puts(&ins, "_mult, _row) VALUES(");
    for (int i = 0; i < n->schema->n + 2 && !rc; i++)
        rc = ss_buf_printf(&ins, "%s?%d", i ? ", " : "", i + 1);
    if (!rc)
        rc = ss_buf_putc(&ins, ')');
    if (rc) {
        ss_buf_free(&name);
        ss_buf_free(&ddl);
        ss_buf_free(&ins);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    free(v->table);
    free(v->ins_sql);
    v->table = ss_buf_take(&name);
    v->ins_sql = ss_buf_take(&ins);
    rc = ss_state_exec(v->st, err, errsz, "%s", ss_buf_cstr(&ddl));
    ss_buf_free(&ddl);
    return rc;
}

static int view_change(view_t *v, const ss_row_t *r, int64_t w, char *err, size_t errsz)
{
    sqlite3_stmt *g = ss_state_stmt(v->st, S_GET, err, errsz, "SELECT _mult FROM %s WHERE _row = ?1", v->table);
    if (!g)
        return SS_ERR_SQLITE;
    int rc = ss_state_bind_row(g, 1, r, &v->rb);
    if (rc)
        return ss_seterr(err, errsz, rc, "encode row");
    int sr = sqlite3_step(g);
    int found = sr == SQLITE_ROW;
    int64_t m = found ? sqlite3_column_int64(g, 0) : 0;
    sqlite3_reset(g);
    if (sr != SQLITE_ROW && sr != SQLITE_DONE)
        return ss_state_sqlerr(v->st->db, err, errsz, "view lookup");
    int64_t nm = m + w;
    sqlite3_stmt *s;
    if (!found) {
        if (!(s = ss_state_stmt(v->st, S_INS, err, errsz, "%s", v->ins_sql)))
            return SS_ERR_SQLITE;
        for (int i = 0; i < r->n; i++)
            ss_state_bind_value(s, i + 1, &r->v[i]);
        sqlite3_bind_int64(s, r->n + 1, nm);
        ss_state_bind_buf(s, r->n + 2, &v->rb);
    } else if (nm != 0) {
        if (!(s = ss_state_stmt(v->st, S_UPD, err, errsz, "UPDATE %s SET _mult = ?1 WHERE _row = ?2", v->table)))
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(s, 1, nm);
        ss_state_bind_buf(s, 2, &v->rb);
    } else {
        if (!(s = ss_state_stmt(v->st, S_DEL, err, errsz, "DELETE FROM %s WHERE _row = ?1", v->table)))
            return SS_ERR_SQLITE;
        ss_state_bind_buf(s, 1, &v->rb);
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
    int rc = SS_OK;
    while (!rc && sqlite3_step(q) == SQLITE_ROW) {
        ss_row_t *r;
        rc = ss_state_column_row(q, 0, &r);
        if (!rc)
            rc = ss_zset_add(out, r, sqlite3_column_int64(q, 1));
    }
    sqlite3_reset(q);
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
    ss_buf_free(&v->rb);
    free(v);
    op->impl = NULL;
}

static const ss_op_vtable_t view_vt = {
    "view", SS_OPK_LINEAR, view_init, view_apply, view_snapshot, view_strategy, view_destroy,
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
