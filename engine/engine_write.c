/*
 * engine_write.c — the engine's transport and its writes to streams: opening
 * the transport (the durable log beside the state, or Kafka), creating topics
 * with the partitions and retention their stream or view declares, INSERT INTO
 * stream VALUES and DELETE FROM stream WHERE key = .. as messages in the
 * stream's own format (json: {"op":"insert|delete","row":{..}}; upsert: the
 * row, or a tombstone; debezium: {"op":"c","after":..} / {"op":"d","before":..}),
 * and ss_engine_load_jsonl, which produces a file's lines as they are. Every
 * message is keyed by the stream's key (ss_stream_key: the key columns, or the
 * whole row of a keyless stream), so one key's history stays in one partition,
 * in order. A write is acknowledged once it is durable on the transport.
 */
#include "engine_int.h"
#include "ss_retention.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int eng_transport_open(ss_engine_t *e, const char *brokers, char *err, size_t errsz)
{
    int rc;
    if (brokers && *brokers) {
        rc = ss_transport_kafka(brokers, &e->transport, err, errsz);
    } else {
        char *path = ss_sprintf("%s.log", e->db_path);
        rc = path ? ss_transport_log(path, &e->transport, err, errsz)
                  : (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        free(path);
    }
    if (rc)
        return rc;
    ss_log(SS_LOG_INFO, "engine", "streams and sinks on %s", ss_transport_describe(e->transport));
    if (e->progress)
        fprintf(stderr, "semstream: streams and sinks on %s\n", ss_transport_describe(e->transport));
    if (e->group) {
        /* docs/ARCHITECTURE.md §6.5: which delivery mode is in force */
#define GROUP_MODE "consumer group %s: this engine processes the partitions the group assigns it; sinks are " \
                   "at-least-once, not exactly-once: a batch published and then refused by the group or killed " \
                   "is published again over the same range, so a sink folded by key is exact and a repeat is " \
                   "a repeat (docs/ARCHITECTURE.md 6.5)"
        ss_log(SS_LOG_WARN, "engine", GROUP_MODE, e->group); /* shown at the default level */
#undef GROUP_MODE
    }
    return SS_OK;
}

int eng_producer(ss_engine_t *e, ss_producer_t **p, char *err, size_t errsz)
{
    if (!e->prod) {
        int rc = ss_producer_new(e->transport, &e->prod, err, errsz);
        if (rc)
            return rc;
    }
    *p = e->prod;
    return SS_OK;
}

static const char *opt_value(int nopts, const ss_plan_opt_t *opts, const char *name)
{
    for (int k = 0; k < nopts; k++)
        if (!strcmp(opts[k].name, name))
            return opts[k].value;
    return NULL;
}

/* A topic's partitions and retention from the options of the stream or view sink
 * that names it (the last one found wins); *view = the view publishing to it. */
static int topic_opts(ss_engine_t *e, const char *topic, ss_topic_opts_t *o, const char **view, char *err,
                      size_t errsz)
{
    memset(o, 0, sizeof *o);
    *view = NULL;
    int nopts = 0;
    const ss_plan_opt_t *opts = NULL;
    for (int i = 0; e->cat && i < ss_catalog_nstreams(e->cat); i++) {
        const ss_cat_stream_t *cs = ss_catalog_stream_at(e->cat, i);
        if (!strcmp(cs->topic ? cs->topic : cs->name, topic)) {
            nopts = cs->nopts;
            opts = cs->opts;
        }
    }
    for (int i = 0; e->cat && i < ss_catalog_nviews(e->cat); i++) {
        const ss_cat_view_t *cv = ss_catalog_view_at(e->cat, i);
        if (cv->sink_topic && !strcmp(cv->sink_topic, topic)) {
            nopts = cv->nopts;
            opts = cv->opts;
            *view = cv->name;
        }
    }
    const char *parts = opt_value(nopts, opts, "partitions"), *ret = opt_value(nopts, opts, "retention");
    o->partitions = parts ? atoi(parts) : 1;
    if (o->partitions < 1 || o->partitions > 1024)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "topic %s: partitions '%s' out of range 1..1024", topic, parts);
    o->set_retention = opts != NULL; /* a definition names the topic: its retention (none = keep all) holds */
    if (ret && ss_retention_parse(ret, &o->retention_ms, &o->retention_rows, err, errsz)) {
        ss_errprefix(err, errsz, "topic %s", topic);
        return SS_ERR_INVALID;
    }
    return SS_OK;
}

int eng_create_topic(ss_engine_t *e, const char *topic, char *err, size_t errsz)
{
    ss_topic_opts_t o;
    const char *view = NULL;
    int rc = topic_opts(e, topic, &o, &view, err, errsz);
    int first = 0, parts = 0;
    if (!rc)
        rc = ss_transport_create_topic(e->transport, topic, &o, &parts, &first, err, errsz);
    if (rc)
        return rc;
    if (first && parts != o.partitions)
        ss_log(SS_LOG_WARN, "engine", "topic %s has %d partition(s), not the %d its definition asks for (an existing "
               "topic keeps its partitions)", topic, parts, o.partitions);
    if (first && view) {
        ss_log(SS_LOG_INFO, "engine", "view %s publishes its changes to topic %s on %s", view, topic,
               ss_transport_describe(e->transport));
        if (e->progress)
            fprintf(stderr, "semstream: view %s publishes its changes to topic %s\n", view, topic);
    }
    return SS_OK;
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
    ss_buf_t key = SS_BUF_INIT;
    if (ss_stream_key(cs->schema, row, &key))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    else
        rc = ss_producer_send(p, cs->topic ? cs->topic : cs->name, key.data, key.len, tombstone ? NULL : v.data,
                              tombstone ? 0 : v.len, err, errsz);
    ss_buf_free(&key);
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

/* Makes a statement's messages durable; when that (or producing them) failed,
 * drops what is still queued so that a later statement does not write it. */
static int finish_writes(ss_engine_t *e, int rc, char *err, size_t errsz)
{
    if (!rc && e->prod)
        rc = ss_producer_flush(e->prod, 30000, err, errsz);
    if (rc && e->prod)
        ss_producer_discard(e->prod);
    return rc;
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
        if (vals->n != ncols) { /* nothing of the statement is written: finish_writes drops what is queued */
            const ss_span_t sp = vals->n ? vals->items[0]->span : st->span;
            rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: %d values for %d columns", sp.line, sp.col, vals->n,
                           ncols);
            break;
        }
        ss_row_t *row = ss_row_new(cs->schema->n);
        if (!row) {
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        for (int i = 0; !rc && i < ncols; i++)
            rc = set_col(cs, row, cols[i], vals->items[i], err, errsz);
        if (!rc)
            rc = send_row(e, cs, row, 0, err, errsz);
        ss_row_free(row);
    }
    rc = finish_writes(e, rc, err, errsz);
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
    if (ss_plan_opt_bool(&(ss_plan_node_t){.nopts = cs->nopts, .opts = cs->opts}, "append_only"))
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "%d:%d: stream %s is append_only: its rows cannot be deleted",
                         st->span.line, st->span.col, cs->name);
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
    rc = finish_writes(e, rc, err, errsz);
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
    const ss_cat_stream_t *cs = ss_catalog_stream(e->cat, stream);
    if (!cs)
        return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "--load %s=%s: no such stream", stream, path);
    /* the loader stops on load_stop, which its progress calls set on Ctrl-C or at the deadline */
    e->load_stop = (e->stop && *e->stop) || (e->deadline_ns && ss_now_ns() >= e->deadline_ns);
    eng_load_progress_t lp = {e, stream, path, ss_now_ns()};
    ss_load_opts_t o = {cs->name, cs->topic ? cs->topic : cs->name, path, SS_FMT_JSON, cs->schema, &e->load_stop,
                        eng_load_progress, &lp};
    if (ss_format_parse(cs->format ? cs->format : "json", &o.format))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "stream %s: unknown format %s", cs->name, cs->format);
    ss_load_result_t r;
    int rc = eng_create_topic(e, o.topic, err, errsz);
    if (!rc)
        rc = ss_load_jsonl(e->transport, &o, &r, err, errsz);
    if (rc == SS_ERR_CANCELED && !(e->stop && *e->stop) && e->deadline_ns) {
        ss_errprefix(err, errsz, "timed out (--timeout-ms)");
        rc = SS_ERR_TIMEOUT;
    }
    if (rc)
        return rc;
    *n = r.lines;
    if (r.before)
        ss_log(SS_LOG_INFO, "engine", "--load %s=%s: %lld lines were loaded by an earlier run; %lld more now",
               stream, path, (long long)r.before, (long long)r.lines);
    if (r.unkeyed)
        ss_log(SS_LOG_WARN, "engine", "--load %s=%s: %lld line(s) do not decode as rows of %s; they go to its "
               "dead-letter topic", stream, path, (long long)r.unkeyed, cs->name);
    return SS_OK;
}
