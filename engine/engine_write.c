/*
 * engine_write.c — the engine's writes to streams: INSERT INTO stream VALUES and
 * DELETE FROM stream WHERE key = .. become messages in the stream's own format
 * (json: {"op":"insert|delete","row":{..}}; upsert: the row, or a tombstone,
 * keyed by the key columns; debezium: {"op":"c","after":..} / {"op":"d","before":..}),
 * produced to the stream's topic; ss_engine_load_jsonl produces a file's lines
 * as they are. Topics are created on the embedded broker when missing.
 */
#include "engine_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int eng_producer(ss_engine_t *e, ss_producer_t **p, char *err, size_t errsz)
{
    SS_ENG_NEED(ss_producer_new, "the Kafka producer", err, errsz);
    if (!e->prod) {
        int rc = ss_producer_new(e->brokers, &e->prod, err, errsz);
        if (rc)
            return rc;
    }
    *p = e->prod;
    return SS_OK;
}

/* Partitions of a new topic on the embedded broker: WITH (partitions = N) of the
 * stream that uses the topic, else 1 (so that arrival order is total). */
static int topic_partitions(ss_engine_t *e, const char *topic)
{
    for (int i = 0; e->cat && i < ss_catalog_nstreams(e->cat); i++) {
        const ss_cat_stream_t *cs = ss_catalog_stream_at(e->cat, i);
        if (strcmp(cs->topic ? cs->topic : cs->name, topic))
            continue;
        for (int k = 0; k < cs->nopts; k++)
            if (!strcmp(cs->opts[k].name, "partitions")) {
                int n = atoi(cs->opts[k].value);
                return n > 0 && n <= 1024 ? n : 1;
            }
    }
    return 1;
}

int eng_create_topic(ss_engine_t *e, const char *topic, char *err, size_t errsz)
{
    if (!e->broker)
        return SS_OK; /* external cluster: topics are the operator's business (or auto-created) */
    int rc = ss_broker_create_topic(e->broker, topic, topic_partitions(e, topic), err, errsz);
    return rc == SS_ERR_EXISTS ? SS_OK : rc;
}

/* ---- constant expressions of VALUES and WHERE ---- */

static int const_eval(const ss_ast_expr_t *x, ss_value_t *out, char **owned, char *err, size_t errsz)
{
    *owned = NULL;
    if (x->kind == SS_AX_LITERAL) {
        *out = x->lit;
        return SS_OK;
    }
    if (x->kind == SS_AX_UNARY && x->op == SS_OP_NEG && x->left && x->left->kind == SS_AX_LITERAL) {
        if (x->left->lit.t == SS_INT) {
            *out = ss_val_int(-x->left->lit.u.i);
            return SS_OK;
        }
        if (x->left->lit.t == SS_REAL) {
            *out = ss_val_real(-x->left->lit.u.r);
            return SS_OK;
        }
    }
    return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: expected a literal value", x->span.line, x->span.col);
}

static int set_col(const ss_cat_stream_t *cs, ss_row_t *row, int col, const ss_ast_expr_t *x, char *err,
                   size_t errsz)
{
    ss_value_t v, c;
    char *owned, *tmp;
    int rc = const_eval(x, &v, &owned, err, errsz);
    if (rc)
        return rc;
    rc = ss_val_coerce(&v, cs->schema->types[col], &c, &tmp, err, errsz);
    if (rc)
        ss_errprefix(err, errsz, "%d:%d: column %s", x->span.line, x->span.col, cs->schema->names[col]);
    else
        rc = ss_row_set(row, col, &c);
    free(tmp);
    free(owned);
    return rc;
}

/* Message key: the key columns as a JSON object (NULL when the stream has no key). */
static char *key_json(const ss_cat_stream_t *cs, const ss_row_t *row, size_t *len)
{
    int keys[64];
    int nk = ss_schema_keys(cs->schema, keys, 64);
    if (!nk)
        return NULL;
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_putc(&b, '{');
    for (int i = 0; i < nk; i++) {
        if (i)
            ss_buf_putc(&b, ',');
        const char *n = cs->schema->names[keys[i]];
        ss_buf_put_json_str(&b, n, strlen(n));
        ss_buf_putc(&b, ':');
        ss_val_to_json(&row->v[keys[i]], &b);
    }
    ss_buf_putc(&b, '}');
    *len = b.len;
    return ss_buf_take(&b);
}

static int send_row(ss_engine_t *e, const ss_cat_stream_t *cs, const ss_row_t *row, int del, char *err,
                    size_t errsz)
{
    ss_producer_t *p = NULL;
    int rc = eng_producer(e, &p, err, errsz);
    if (rc)
        return rc;
    ss_buf_t v = SS_BUF_INIT, r = SS_BUF_INIT;
    ss_row_to_json(row, cs->schema, &r);
    const char *fmt = cs->format ? cs->format : "json";
    int tombstone = 0;
    if (!strcmp(fmt, "upsert")) {
        if (del)
            tombstone = 1;
        else
            ss_buf_append(&v, r.data, r.len);
    } else if (!strcmp(fmt, "debezium")) {
        ss_buf_printf(&v, "{\"op\":\"%s\",\"%s\":%s}", del ? "d" : "c", del ? "before" : "after", ss_buf_cstr(&r));
    } else {
        ss_buf_printf(&v, "{\"op\":\"%s\",\"row\":%s}", del ? "delete" : "insert", ss_buf_cstr(&r));
    }
    size_t klen = 0;
    char *key = key_json(cs, row, &klen);
    rc = ss_producer_send(p, cs->topic ? cs->topic : cs->name, key, klen, tombstone ? NULL : v.data,
                          tombstone ? 0 : v.len, err, errsz);
    free(key);
    ss_buf_free(&v);
    ss_buf_free(&r);
    return rc;
}

static const ss_cat_stream_t *find_stream(ss_engine_t *e, const ss_ast_stmt_t *st, char *err, size_t errsz)
{
    const ss_cat_stream_t *cs = ss_catalog_stream(e->cat, st->name);
    if (!cs) {
        if (ss_catalog_view(e->cat, st->name))
            ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: %s is a view: write to the streams it reads",
                      st->name_span.line, st->name_span.col, st->name);
        else
            ss_seterr(err, errsz, SS_ERR_NOTFOUND, "%d:%d: no such stream: %s", st->name_span.line,
                      st->name_span.col, st->name);
    }
    return cs;
}

static int flush_writes(ss_engine_t *e, char *err, size_t errsz)
{
    return ss_producer_flush(e->prod, 30000, err, errsz);
}

int eng_insert(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    const ss_cat_stream_t *cs = find_stream(e, st, err, errsz);
    if (!cs)
        return SS_ERR_NOTFOUND;
    int cols[256], ncols = st->insert_cols ? st->ninsert_cols : cs->schema->n;
    if (ncols > 256)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "%d:%d: too many columns", st->span.line, st->span.col);
    for (int i = 0; i < ncols; i++) {
        cols[i] = st->insert_cols ? ss_schema_find(cs->schema, st->insert_cols[i]) : i;
        if (cols[i] < 0)
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: stream %s has no column %s", st->span.line,
                             st->span.col, cs->name, st->insert_cols[i]);
    }
    int rc = eng_create_topic(e, cs->topic ? cs->topic : cs->name, err, errsz);
    for (int r = 0; !rc && r < st->nrows; r++) {
        const ss_ast_expr_list_t *vals = st->rows[r];
        if (vals->n != ncols) {
            const ss_span_t sp = vals->n ? vals->items[0]->span : st->span;
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: %d values for %d columns", sp.line, sp.col, vals->n,
                             ncols);
        }
        ss_row_t *row = ss_row_new(cs->schema->n);
        if (!row)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        for (int i = 0; !rc && i < ncols; i++)
            rc = set_col(cs, row, cols[i], vals->items[i], err, errsz);
        if (!rc)
            rc = send_row(e, cs, row, 0, err, errsz);
        ss_row_free(row);
    }
    if (!rc && st->nrows)
        rc = flush_writes(e, err, errsz);
    if (rc)
        return rc;
    return ss_buf_printf(out, "INSERT %d\n", st->nrows) ? SS_ERR_NOMEM : SS_OK;
}

/* WHERE of DELETE: a conjunction of column = literal and column IS NULL. */
static int where_cols(const ss_cat_stream_t *cs, const ss_ast_expr_t *x, ss_row_t *row, char *set, char *err,
                      size_t errsz)
{
    if (x->kind == SS_AX_BINARY && x->op == SS_OP_AND) {
        int rc = where_cols(cs, x->left, row, set, err, errsz);
        return rc ? rc : where_cols(cs, x->right, row, set, err, errsz);
    }
    if (x->kind == SS_AX_IS_NULL && x->op != SS_OP_NOT && x->left && x->left->kind == SS_AX_COLUMN) {
        int col = ss_schema_find(cs->schema, x->left->name);
        if (col < 0)
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: stream %s has no column %s", x->left->span.line,
                             x->left->span.col, cs->name, x->left->name);
        set[col] = 1; /* the row's value stays NULL */
        return SS_OK;
    }
    if (x->kind == SS_AX_BINARY && x->op == SS_OP_EQ) {
        const ss_ast_expr_t *c = x->left, *v = x->right;
        if (c->kind != SS_AX_COLUMN) {
            c = x->right;
            v = x->left;
        }
        if (c->kind == SS_AX_COLUMN) {
            int col = ss_schema_find(cs->schema, c->name);
            if (col < 0)
                return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: stream %s has no column %s", c->span.line,
                                 c->span.col, cs->name, c->name);
            set[col] = 1;
            return set_col(cs, row, col, v, err, errsz);
        }
    }
    return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED,
                     "%d:%d: DELETE FROM a stream needs WHERE key = value [AND ...] (or column IS NULL)",
                     x->span.line, x->span.col);
}

int eng_delete(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    const ss_cat_stream_t *cs = find_stream(e, st, err, errsz);
    if (!cs)
        return SS_ERR_NOTFOUND;
    if (!st->where)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "%d:%d: DELETE FROM a stream needs WHERE key = value",
                         st->span.line, st->span.col);
    ss_row_t *row = ss_row_new(cs->schema->n);
    char *set = calloc((size_t)cs->schema->n + 1, 1);
    int rc = row && set ? where_cols(cs, st->where, row, set, err, errsz)
                        : (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int keys[64];
    int nk = ss_schema_keys(cs->schema, keys, 64);
    for (int i = 0; !rc && i < (nk ? nk : cs->schema->n); i++) {
        int c = nk ? keys[i] : i;
        if (!set[c])
            rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: DELETE needs %s = value (%s)", st->where->span.line,
                           st->where->span.col, cs->schema->names[c],
                           nk ? "a key column of the stream" : "a stream without a key is matched on every column");
    }
    if (!rc)
        rc = eng_create_topic(e, cs->topic ? cs->topic : cs->name, err, errsz);
    if (!rc)
        rc = send_row(e, cs, row, 1, err, errsz);
    if (!rc)
        rc = flush_writes(e, err, errsz);
    ss_row_free(row);
    free(set);
    if (rc)
        return rc;
    return ss_buf_puts(out, "DELETE 1\n") ? SS_ERR_NOMEM : SS_OK;
}

int ss_engine_load_jsonl(ss_engine_t *e, const char *stream, const char *path, int64_t *n, char *err,
                         size_t errsz)
{
    *n = 0;
    const ss_cat_stream_t *cs = ss_catalog_stream ? ss_catalog_stream(e->cat, stream) : NULL;
    if (!cs)
        return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "--load %s=%s: no such stream", stream, path);
    FILE *f = fopen(path, "r");
    if (!f)
        return ss_seterr(err, errsz, SS_ERR_IO, "--load %s=%s: %s", stream, path, strerror(errno));
    ss_producer_t *p = NULL;
    const char *topic = cs->topic ? cs->topic : cs->name;
    int rc = eng_create_topic(e, topic, err, errsz);
    if (!rc)
        rc = eng_producer(e, &p, err, errsz);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        size_t i = 0;
        while (i < (size_t)len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == (size_t)len)
            continue;
        rc = ss_producer_send(p, topic, NULL, 0, line, (size_t)len, err, errsz);
        if (!rc)
            (*n)++;
    }
    free(line);
    fclose(f);
    if (!rc)
        rc = ss_producer_flush(p, 60000, err, errsz);
    return rc;
}
