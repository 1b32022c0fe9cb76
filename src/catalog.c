/*
 * catalog.c — implements the catalog half of ss_catalog.h: streams, views,
 * models and settings, persisted in the engine's SQLite database (tables
 * ss_streams, ss_views, ss_models, ss_settings) as their defining SQL text and
 * re-parsed with ss_parse() on open. Validates every CREATE before storing it
 * (a view must plan), refuses DROPs that would orphan a view, and hands out
 * creation-order sequence numbers that the planner turns into stable node ids
 * (see plan_int.h). The catalog owns its entries; the sqlite3 handle is borrowed.
 */
#include "plan_int.h"
#include "ss_retention.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Public entries with the sequence number the planner needs; `pub` must stay first. */
typedef struct stream_ent { ss_cat_stream_t pub; int64_t seq; } stream_ent_t;
typedef struct view_ent {
    ss_cat_view_t pub;
    int64_t seq;
    int ncols;
    char **cols; /* output column names, for completion (filled when the view is planned) */
} view_ent_t;
typedef struct model_ent { ss_cat_model_t pub; int64_t seq; } model_ent_t;

struct ss_catalog {
    sqlite3 *db;                  /* borrowed */
    int nstreams, nviews, nmodels, nsettings;
    stream_ent_t **streams;       /* in creation order */
    view_ent_t **views;           /* in creation order (dependencies first) */
    model_ent_t **models;
    ss_plan_opt_t *settings;      /* name (lower-case) = value */
};

static const char *schema_sql =
    "CREATE TABLE IF NOT EXISTS ss_streams(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE, sql TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ss_views(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE, sql TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ss_models(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE, sql TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ss_settings(name TEXT PRIMARY KEY, value TEXT);";

/* ---------------------------------------------------------------- entries */

static void stream_free(stream_ent_t *e)
{
    if (!e)
        return;
    free(e->pub.name);
    ss_schema_free(e->pub.schema);
    free(e->pub.topic);
    free(e->pub.format);
    ss__opts_free(e->pub.nopts, e->pub.opts);
    free(e->pub.sql);
    free(e);
}

static void view_free(view_ent_t *e)
{
    if (!e)
        return;
    free(e->pub.name);
    free(e->pub.sql);
    ss_ast_stmt_free(e->pub.stmt);
    free(e->pub.sink_topic);
    for (int i = 0; i < e->ncols; i++)
        free(e->cols[i]);
    free(e->cols);
    ss__opts_free(e->pub.nopts, e->pub.opts);
    free(e);
}

static void model_free(model_ent_t *e)
{
    if (!e)
        return;
    free(e->pub.name);
    free(e->pub.backend);
    ss__opts_free(e->pub.nopts, e->pub.opts);
    free(e->pub.sql);
    free(e);
}

static int find_stream(const ss_catalog_t *c, const char *name)
{
    for (int i = 0; i < c->nstreams; i++)
        if (ss_strcaseeq(c->streams[i]->pub.name, name))
            return i;
    return -1;
}

static int find_view(const ss_catalog_t *c, const char *name)
{
    for (int i = 0; i < c->nviews; i++)
        if (ss_strcaseeq(c->views[i]->pub.name, name))
            return i;
    return -1;
}

static int find_model(const ss_catalog_t *c, const char *name)
{
    for (int i = 0; i < c->nmodels; i++)
        if (ss_strcaseeq(c->models[i]->pub.name, name))
            return i;
    return -1;
}

static int push(void *arrp, int *n, void *item)
{
    void ***arr = arrp;
    void **p = realloc(*arr, (size_t)(*n + 1) * sizeof *p);
    if (!p)
        return SS_ERR_NOMEM;
    p[(*n)++] = item;
    *arr = p;
    return SS_OK;
}

static void remove_at(void *arrp, int *n, int i)
{
    void **arr = *(void ***)arrp;
    memmove(&arr[i], &arr[i + 1], (size_t)(*n - i - 1) * sizeof *arr);
    (*n)--;
}

/* ---------------------------------------------------------------- validation */

static int is_one_of(const char *s, const char *const *set, int n)
{
    for (int i = 0; i < n; i++)
        if (ss_strcaseeq(s, set[i]))
            return 1;
    return 0;
}

static const ss_span_t *opt_span(const ss_ast_stmt_t *st, const char *name)
{
    const ss_ast_option_t *o = ss__opt_find(st->opts, name);
    return o ? &o->span : &st->name_span;
}

/* WITH (retention = '...') and WITH (partitions = N) of a stream or a view's sink topic. */
static int check_topic_options(const ss_ast_stmt_t *st, int nopts, const ss_plan_opt_t *opts, const char *what,
                               char *err, size_t errsz)
{
    const ss_plan_node_t n = {.nopts = nopts, .opts = (ss_plan_opt_t *)opts};
    const char *ret = ss_plan_opt(&n, "retention"), *parts = ss_plan_opt(&n, "partitions");
    char e2[256];
    int64_t ms, rows;
    if (ret && ss_retention_parse(ret, &ms, &rows, e2, sizeof e2)) {
        const ss_span_t *sp = opt_span(st, "retention");
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: %s %s: %s", sp->line, sp->col, what, st->name, e2);
    }
    if (parts) {
        char *end;
        long v = strtol(parts, &end, 10);
        if (end == parts || *end || v < 1 || v > 1024) {
            const ss_span_t *sp = opt_span(st, "partitions");
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: %s %s: partitions must be a whole number "
                             "1..1024, not '%s'", sp->line, sp->col, what, st->name, parts);
        }
    }
    return SS_OK;
}

/* A view's WITH (retention, partitions) describe its sink topic: valid values, and a sink_topic to apply to. */
static int check_view_options(const ss_ast_stmt_t *st, char *err, size_t errsz)
{
    int nopts = 0;
    ss_plan_opt_t *opts = NULL;
    if (ss__opts_copy(st->opts, &nopts, &opts))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = check_topic_options(st, nopts, opts, "view", err, errsz);
    ss__opts_free(nopts, opts);
    const ss_ast_option_t *r = ss__opt_find(st->opts, "retention");
    if (!r)
        r = ss__opt_find(st->opts, "partitions");
    if (!rc && r && !ss__opt_find(st->opts, "sink_topic"))
        rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: view %s: %s applies to the view's sink topic; give "
                       "WITH (sink_topic = '...') too", r->span.line, r->span.col, st->name, r->name);
    return rc;
}

/* WITH (key = 'a, b') may only name declared columns, and only KEY columns when some are declared. */
static int check_key_option(const ss_ast_stmt_t *st, const ss_schema_t *sc, const char *keys, char *err,
                            size_t errsz)
{
    const ss_span_t *sp = opt_span(st, "key");
    int nkeys = 0;
    for (int i = 0; i < sc->n; i++)
        nkeys += sc->is_key[i];
    char name[128];
    for (const char *p = keys; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (!n)
            break;
        snprintf(name, sizeof name, "%.*s", (int)SS_MIN(n, sizeof name - 1), p);
        p += n;
        int c = ss_schema_find(sc, name);
        if (c < 0)
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: key \"%s\" is not a column of stream %s",
                             sp->line, sp->col, name, st->name);
        if (nkeys && !sc->is_key[c])
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC,
                             "%d:%d: key \"%s\" is not one of the KEY columns declared for stream %s",
                             sp->line, sp->col, name, st->name);
    }
    return SS_OK;
}

/* append_only = true: rows only ever arrive (a delete or an update is refused), so the stream
 * keeps no state; a key (upserts), a TTL (expiry) or a format of changes contradicts it. */
static int check_append_only(const ss_ast_stmt_t *st, const ss_schema_t *sc, int nopts, ss_plan_opt_t *opts,
                             const char *fmt, char *err, size_t errsz)
{
    ss_plan_node_t pn = {.nopts = nopts, .opts = opts};
    if (!ss_plan_opt_bool(&pn, "append_only"))
        return SS_OK;
    int keys[1];
    const char *why = ss_schema_keys(sc, keys, 1) || ss_plan_opt(&pn, "key") ? "a KEY (its messages are upserts)"
                      : ss_plan_opt(&pn, "ttl")                             ? "a ttl (rows expire)"
                      : fmt && !ss_strcaseeq(fmt, "json")                    ? "a format of changes (debezium, upsert)"
                                                                             : NULL;
    if (!why)
        return SS_OK;
    const ss_span_t *sp = opt_span(st, "append_only");
    return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: stream %s: append_only = true cannot be combined with %s",
                     sp->line, sp->col, st->name, why);
}

/* ---- WITH options: every name and value is checked when an object is created ----
 * One table per statement kind. To add an option, add a row (and read it where it acts). */

typedef enum { OPT_ANY, OPT_NONEMPTY, OPT_INT, OPT_BOOL, OPT_DURATION } opt_kind_t;

typedef struct opt_rule {
    const char *name;
    opt_kind_t kind;
    long lo, hi;           /* OPT_INT: the range */
} opt_rule_t;

static const opt_rule_t stream_opts[] = {
    {"topic", OPT_NONEMPTY, 0, 0},    {"format", OPT_ANY, 0, 0},     {"ttl", OPT_DURATION, 0, 0},
    {"ttl_column", OPT_ANY, 0, 0},    {"key", OPT_ANY, 0, 0},        {"partitions", OPT_INT, 1, 1024},
    {"dlq_topic", OPT_NONEMPTY, 0, 0}, {"max_message_bytes", OPT_INT, 1, 1L << 30}, {"retention", OPT_ANY, 0, 0},
    /* checked by catalog_time.c */
    {"timestamp_format", OPT_ANY, 0, 0}, {"watermark_idle_timeout", OPT_ANY, 0, 0},
    {"append_only", OPT_BOOL, 0, 0},
};
/* retention and partitions (of the sink topic) are checked by check_view_options */
static const opt_rule_t view_opts[] = {{"sink_topic", OPT_NONEMPTY, 0, 0}, {"model", OPT_NONEMPTY, 0, 0},
                                      {"retention", OPT_ANY, 0, 0}, {"partitions", OPT_INT, 1, 1024}};
static const opt_rule_t model_opts[] = {
    {"backend", OPT_ANY, 0, 0},         {"path", OPT_NONEMPTY, 0, 0},           {"url", OPT_NONEMPTY, 0, 0},
    {"model", OPT_NONEMPTY, 0, 0},      {"api_key_env", OPT_NONEMPTY, 0, 0},    {"timeout_ms", OPT_INT, 1, 86400000},
    {"max_concurrency", OPT_INT, 1, 100000}, {"threads", OPT_INT, 1, 4096}, {"default", OPT_BOOL, 0, 0},
    /* checked with the model's name by the engine (max_in_flight) and ss_backend_openai_config */
    {"max_in_flight", OPT_ANY, 0, 0},   {"organization", OPT_ANY, 0, 0},        {"project", OPT_ANY, 0, 0},
    {"api", OPT_ANY, 0, 0},             {"rpm", OPT_ANY, 0, 0},                 {"tpm", OPT_ANY, 0, 0},
    {"top_logprobs", OPT_ANY, 0, 0},    {"max_retries", OPT_ANY, 0, 0},         {"prompt_batch", OPT_ANY, 0, 0},
    {"embed_batch", OPT_ANY, 0, 0},
};

static int opt_value_ok(const opt_rule_t *r, const ss_ast_option_t *o, const char *text, char *why, size_t whysz)
{
    int64_t ms;
    char *end;
    long long v;
    switch (r->kind) {
    case OPT_NONEMPTY:
        if (o->stream || !*text)
            return snprintf(why, whysz, "must not be empty"), 0;
        return 1;
    case OPT_INT:
        errno = 0;
        v = strtoll(text, &end, 10);
        if (o->value.t == SS_REAL || end == text || *end || errno || v < r->lo || v > r->hi)
            return snprintf(why, whysz, "must be an integer from %ld to %ld, not '%s'", r->lo, r->hi, text), 0;
        return 1;
    case OPT_BOOL:
        if (!strcmp(text, "1") || !strcmp(text, "0") || ss_strcaseeq(text, "true") || ss_strcaseeq(text, "false"))
            return 1;
        return snprintf(why, whysz, "must be TRUE or FALSE, not '%s'", text), 0;
    case OPT_DURATION:
        if (!ss_parse_duration(text, &ms) && ms > 0)
            return 1;
        return snprintf(why, whysz, "'%s' is not a duration (expected e.g. '30 s', '5 minutes', '1 hour', "
                                    "'2 days', '1 week')", text), 0;
    default:
        return 1;
    }
}

/* Checks every option of st against rules: unknown names (with a suggestion) and bad values. */
static int check_options(const ss_ast_stmt_t *st, const char *what, const opt_rule_t *rules, int n, char *err,
                         size_t errsz)
{
    for (int i = 0; st->opts && i < st->opts->n; i++) {
        const ss_ast_option_t *o = &st->opts->items[i];
        const opt_rule_t *r = NULL;
        const char *names[32];
        for (int k = 0; k < n && k < 32; k++) {
            names[k] = rules[k].name;
            if (ss_strcaseeq(rules[k].name, o->name))
                r = &rules[k];
        }
        if (!r) {
            ss_buf_t all = SS_BUF_INIT;
            for (int k = 0; k < n; k++)
                ss_buf_printf(&all, "%s%s", k ? ", " : "", rules[k].name);
            const char *best = ss_suggest(o->name, names, n < 32 ? n : 32);
            int rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: unknown option \"%s\" for %s%s%s%s (options: %s)",
                               o->span.line, o->span.col, o->name, what, best ? " (did you mean \"" : "",
                               best ? best : "", best ? "\"?)" : "", ss_buf_cstr(&all));
            ss_buf_free(&all);
            return rc;
        }
        char *text = ss__opt_text(o), why[256];
        if (!text)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        int ok = opt_value_ok(r, o, text, why, sizeof why);
        free(text);
        if (!ok)
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: option %s: %s", o->span.line, o->span.col, r->name,
                             why);
    }
    return SS_OK;
}

/* Builds a stream entry from CREATE STREAM; errors carry line:col. */
static int build_stream(const ss_ast_stmt_t *st, stream_ent_t **out, char *err, size_t errsz)
{
    static const char *const formats[] = {"json", "debezium", "upsert"};
    *out = NULL;
    if (st->ncols <= 0)
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: stream %s has no columns",
                         st->name_span.line, st->name_span.col, st->name);
    int nkeys = 0;
    for (int i = 0; i < st->ncols; i++) {
        nkeys += st->cols[i].is_key != 0;
        for (int j = 0; j < i; j++)
            if (ss_strcaseeq(st->cols[i].name, st->cols[j].name))
                return ss_seterr(err, errsz, SS_ERR_SEMANTIC,
                                 "%d:%d: duplicate column \"%s\" in stream %s (first declared at %d:%d)",
                                 st->cols[i].span.line, st->cols[i].span.col, st->cols[i].name,
                                 st->name, st->cols[j].span.line, st->cols[j].span.col);
    }
    stream_ent_t *e = calloc(1, sizeof *e);
    if (!e)
        return SS_ERR_NOMEM;
    int rc = SS_ERR_NOMEM;
    e->pub.name = ss_strdup(st->name);
    e->pub.sql = ss_strdup(st->text ? st->text : "");
    e->pub.schema = ss_schema_new(st->ncols);
    if (!e->pub.name || !e->pub.sql || !e->pub.schema)
        goto fail;
    for (int i = 0; i < st->ncols; i++)
        if (ss_schema_set(e->pub.schema, i, st->cols[i].name, st->cols[i].type, st->cols[i].is_key))
            goto fail;
        else
            ss_schema_set_typmod(e->pub.schema, i, st->cols[i].typmod);
    if (ss__opts_copy(st->opts, &e->pub.nopts, &e->pub.opts))
        goto fail;
    const char *fmt = ss_plan_opt(&(ss_plan_node_t){.nopts = e->pub.nopts, .opts = e->pub.opts}, "format");
    const char *topic = ss_plan_opt(&(ss_plan_node_t){.nopts = e->pub.nopts, .opts = e->pub.opts}, "topic");
    if (fmt && !is_one_of(fmt, formats, 3)) {
        const ss_span_t *sp = opt_span(st, "format");
        rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC,
                       "%d:%d: unknown format '%s' for stream %s (expected json, debezium or upsert)",
                       sp->line, sp->col, fmt, st->name);
        goto fail;
    }
    if (fmt && ss_strcaseeq(fmt, "upsert") && nkeys == 0) {
        const ss_span_t *sp = opt_span(st, "format");
        rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC,
                       "%d:%d: format 'upsert' needs a KEY column in stream %s (a message replaces the row with its key)",
                       sp->line, sp->col, st->name);
        goto fail;
    }
    if (topic && !*topic) {
        const ss_span_t *sp = opt_span(st, "topic");
        rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: empty topic for stream %s", sp->line,
                       sp->col, st->name);
        goto fail;
    }
    const char *ttl_col = ss_plan_opt(&(ss_plan_node_t){.nopts = e->pub.nopts, .opts = e->pub.opts}, "ttl_column");
    if (ttl_col && ss_schema_find(e->pub.schema, ttl_col) < 0) {
        const ss_span_t *sp = opt_span(st, "ttl_column");
        rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: ttl_column \"%s\" is not a column of stream %s",
                       sp->line, sp->col, ttl_col, st->name);
        goto fail;
    }
    if (ttl_col && !ss_plan_opt(&(ss_plan_node_t){.nopts = e->pub.nopts, .opts = e->pub.opts}, "ttl")) {
        const ss_span_t *sp = opt_span(st, "ttl_column");
        rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: ttl_column without ttl in stream %s (add ttl = '...')",
                       sp->line, sp->col, st->name);
        goto fail;
    }
    if ((rc = ss__stream_time(st, e->pub.schema, &e->pub.nopts, &e->pub.opts, err, errsz))) /* catalog_time.c */
        goto fail;
    if ((rc = check_append_only(st, e->pub.schema, e->pub.nopts, e->pub.opts, fmt, err, errsz)))
        goto fail;
    const char *keyopt = ss_plan_opt(&(ss_plan_node_t){.nopts = e->pub.nopts, .opts = e->pub.opts}, "key");
    if (keyopt && (rc = check_key_option(st, e->pub.schema, keyopt, err, errsz)))
        goto fail;
    if ((rc = check_topic_options(st, e->pub.nopts, e->pub.opts, "stream", err, errsz)))
        goto fail;
    rc = SS_ERR_NOMEM;
    e->pub.format = ss_strdup(fmt ? fmt : "json");
    e->pub.topic = ss_strdup(topic ? topic : st->name);
    if (!e->pub.format || !e->pub.topic)
        goto fail;
    for (char *p = e->pub.format; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    *out = e;
    return SS_OK;
fail:
    stream_free(e);
    if (rc == SS_ERR_NOMEM)
        ss_seterr(err, errsz, rc, "out of memory");
    return rc;
}

static int build_model(const ss_ast_stmt_t *st, model_ent_t **out, char *err, size_t errsz)
{
    static const char *const backends[] = {"local", "openai"};
    *out = NULL;
    model_ent_t *e = calloc(1, sizeof *e);
    if (!e)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int rc = SS_ERR_NOMEM;
    e->pub.name = ss_strdup(st->name);
    e->pub.sql = ss_strdup(st->text ? st->text : "");
    if (!e->pub.name || !e->pub.sql || ss__opts_copy(st->opts, &e->pub.nopts, &e->pub.opts))
        goto fail;
    ss_plan_node_t view = {.nopts = e->pub.nopts, .opts = e->pub.opts};
    const char *be = ss_plan_opt(&view, "backend");
    if (!be)
        be = "local";
    if (!is_one_of(be, backends, 2)) {
        const ss_span_t *sp = opt_span(st, "backend");
        rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC,
                       "%d:%d: unknown backend '%s' for model %s (expected local or openai)", sp->line,
                       sp->col, be, st->name);
        goto fail;
    }
    const char *need = ss_strcaseeq(be, "local") ? "path" : "url";
    const char *v = ss_plan_opt(&view, need);
    if (!v || !*v) {
        rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: model %s with backend '%s' needs %s='...'",
                       st->name_span.line, st->name_span.col, st->name, be, need);
        goto fail;
    }
    if (!(e->pub.backend = ss_strdup(be)))
        goto fail;
    for (char *p = e->pub.backend; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    *out = e;
    return SS_OK;
fail:
    model_free(e);
    if (rc == SS_ERR_NOMEM)
        ss_seterr(err, errsz, rc, "out of memory");
    return rc;
}

/* Parses `sql`, which must hold exactly one statement of kind `kind`; *out owned by caller. */
static int parse_one(const char *sql, ss_ast_stmt_kind_t kind, ss_ast_stmt_t **out, char *err,
                     size_t errsz)
{
    ss_ast_script_t *s = NULL;
    *out = NULL;
    int rc = ss_parse(sql, strlen(sql), NULL, &s, err, errsz);
    if (rc)
        return rc;
    if (s->n != 1 || s->stmts[0]->kind != kind) {
        ss_ast_script_free(s);
        return ss_seterr(err, errsz, SS_ERR_INVALID, "stored definition is not one statement of the expected kind");
    }
    *out = s->stmts[0];
    s->stmts[0] = NULL;
    s->n = 0;
    ss_ast_script_free(s);
    return SS_OK;
}

/* Fills a view entry (name, opts, sink topic) from its statement; takes ownership of stmt. */
static int build_view(ss_ast_stmt_t *stmt, view_ent_t **out, char *err, size_t errsz)
{
    view_ent_t *e = calloc(1, sizeof *e);
    *out = NULL;
    if (!e) {
        ss_ast_stmt_free(stmt);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    e->pub.stmt = stmt;
    e->pub.name = ss_strdup(stmt->name);
    e->pub.sql = ss_strdup(stmt->text ? stmt->text : "");
    if (!e->pub.name || !e->pub.sql || ss__opts_copy(stmt->opts, &e->pub.nopts, &e->pub.opts)) {
        view_free(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    const ss_ast_option_t *o = ss__opt_find(stmt->opts, "sink_topic");
    if (o && !(e->pub.sink_topic = ss__opt_text(o))) {
        view_free(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    *out = e;
    return SS_OK;
}

/* Remembers the output column names of every view planned in p (best effort: names are only
 * used for completion, so running out of memory just leaves them out). */
static void remember_cols(ss_catalog_t *c, const ss_plan_t *p)
{
    for (int i = 0; i < p->n; i++) {
        const ss_plan_node_t *n = p->nodes[i];
        int v = n->kind == SS_PN_VIEW ? find_view(c, n->label) : -1;
        if (v < 0 || c->views[v]->cols)
            continue;
        view_ent_t *e = c->views[v];
        if (!(e->cols = calloc((size_t)n->schema->n + 1, sizeof *e->cols)))
            continue;
        for (int k = 0; k < n->schema->n; k++)
            if ((e->cols[e->ncols] = ss_strdup(n->schema->names[k])))
                e->ncols++;
    }
}

/* ---------------------------------------------------------------- SQLite */

static int db_err(sqlite3 *db, char *err, size_t errsz, const char *what)
{
    return ss_seterr(err, errsz, SS_ERR_SQLITE, "catalog: %s: %s", what, sqlite3_errmsg(db));
}

/* INSERTs (name, sql[, created_ms]) into table and returns the new sequence number. */
static int db_insert(ss_catalog_t *c, const char *table, const char *name, const char *sql,
                     int64_t created_ms, int64_t *seq, char *err, size_t errsz)
{
    char q[160];
    if (created_ms >= 0)
        snprintf(q, sizeof q, "INSERT INTO %s(name, sql, created_ms) VALUES(?1, ?2, ?3)", table);
    else
        snprintf(q, sizeof q, "INSERT INTO %s(name, sql) VALUES(?1, ?2)", table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, q, -1, &st, NULL) != SQLITE_OK)
        return db_err(c->db, err, errsz, "insert");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, sql, -1, SQLITE_TRANSIENT);
    if (created_ms >= 0)
        sqlite3_bind_int64(st, 3, created_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_err(c->db, err, errsz, "insert");
    *seq = sqlite3_last_insert_rowid(c->db);
    return SS_OK;
}

static int db_delete(ss_catalog_t *c, const char *table, const char *name, char *err, size_t errsz)
{
    char q[128];
    snprintf(q, sizeof q, "DELETE FROM %s WHERE name = ?1 COLLATE NOCASE", table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, q, -1, &st, NULL) != SQLITE_OK)
        return db_err(c->db, err, errsz, "delete");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SS_OK : db_err(c->db, err, errsz, "delete");
}

/* Loads every row of `table` in sequence order, calling fn for each. */
static int db_load(ss_catalog_t *c, const char *table,
                   int (*fn)(ss_catalog_t *, int64_t, const char *, const char *, int64_t, char *, size_t),
                   char *err, size_t errsz)
{
    char q[128];
    snprintf(q, sizeof q, "SELECT seq, name, sql, %s FROM %s ORDER BY seq",
             strcmp(table, "ss_views") ? "0" : "created_ms", table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, q, -1, &st, NULL) != SQLITE_OK)
        return db_err(c->db, err, errsz, "load");
    int rc = SS_OK, s;
    while (rc == SS_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *sql = (const char *)sqlite3_column_text(st, 2);
        rc = fn(c, sqlite3_column_int64(st, 0), name ? name : "", sql ? sql : "",
                sqlite3_column_int64(st, 3), err, errsz);
        if (rc)
            ss_errprefix(err, errsz, "catalog: %s %s", table + 3, name ? name : "?");
    }
    if (rc == SS_OK && s != SQLITE_DONE)
        rc = db_err(c->db, err, errsz, "load");
    sqlite3_finalize(st);
    return rc;
}

static int load_stream(ss_catalog_t *c, int64_t seq, const char *name, const char *sql, int64_t ms,
                       char *err, size_t errsz)
{
    (void)name, (void)ms;
    ss_ast_stmt_t *stmt = NULL;
    stream_ent_t *e = NULL;
    int rc = parse_one(sql, SS_STMT_CREATE_STREAM, &stmt, err, errsz);
    if (!rc)
        rc = build_stream(stmt, &e, err, errsz);
    ss_ast_stmt_free(stmt);
    if (rc)
        return rc;
    e->seq = seq;
    if (push(&c->streams, &c->nstreams, e)) {
        stream_free(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    return SS_OK;
}

static int load_model(ss_catalog_t *c, int64_t seq, const char *name, const char *sql, int64_t ms,
                      char *err, size_t errsz)
{
    (void)name, (void)ms;
    ss_ast_stmt_t *stmt = NULL;
    model_ent_t *e = NULL;
    int rc = parse_one(sql, SS_STMT_CREATE_MODEL, &stmt, err, errsz);
    if (!rc)
        rc = build_model(stmt, &e, err, errsz);
    ss_ast_stmt_free(stmt);
    if (rc)
        return rc;
    e->seq = seq;
    if (push(&c->models, &c->nmodels, e)) {
        model_free(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    return SS_OK;
}

static int load_view(ss_catalog_t *c, int64_t seq, const char *name, const char *sql, int64_t ms,
                     char *err, size_t errsz)
{
    (void)name;
    ss_ast_stmt_t *stmt = NULL;
    view_ent_t *e = NULL;
    int rc = parse_one(sql, SS_STMT_CREATE_VIEW, &stmt, err, errsz);
    if (!rc)
        rc = build_view(stmt, &e, err, errsz);
    if (rc)
        return rc;
    e->seq = seq;
    e->pub.created_ms = ms;
    if (push(&c->views, &c->nviews, e)) {
        view_free(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    return SS_OK;
}

/* Sets a setting in memory (name lower-cased); value may be NULL. */
static int mem_set(ss_catalog_t *c, const char *name, const char *value)
{
    for (int i = 0; i < c->nsettings; i++)
        if (ss_strcaseeq(c->settings[i].name, name)) {
            char *v = ss_strdup(value);
            if (value && !v)
                return SS_ERR_NOMEM;
            free(c->settings[i].value);
            c->settings[i].value = v;
            return SS_OK;
        }
    return ss__opts_add(&c->nsettings, &c->settings, name, value);
}

static int load_settings(ss_catalog_t *c, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT name, value FROM ss_settings ORDER BY name", -1, &st, NULL))
        return db_err(c->db, err, errsz, "load settings");
    int rc = SS_OK;
    while (rc == SS_OK && sqlite3_step(st) == SQLITE_ROW)
        if (mem_set(c, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1)))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    sqlite3_finalize(st);
    return rc;
}

/* ---------------------------------------------------------------- API */

int ss_catalog_open(sqlite3 *db, ss_catalog_t **out, char *err, size_t errsz)
{
    *out = NULL;
    char *emsg = NULL;
    if (sqlite3_exec(db, schema_sql, NULL, NULL, &emsg) != SQLITE_OK) {
        int rc = ss_seterr(err, errsz, SS_ERR_SQLITE, "catalog: creating tables: %s",
                           emsg ? emsg : sqlite3_errmsg(db));
        sqlite3_free(emsg);
        return rc;
    }
    ss_catalog_t *c = calloc(1, sizeof *c);
    if (!c)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    c->db = db;
    int rc = db_load(c, "ss_streams", load_stream, err, errsz);
    if (!rc)
        rc = db_load(c, "ss_models", load_model, err, errsz);
    if (!rc)
        rc = db_load(c, "ss_views", load_view, err, errsz);
    if (!rc)
        rc = load_settings(c, err, errsz);
    if (rc) {
        ss_catalog_close(c);
        return rc;
    }
    ss_plan_t *p = NULL;
    char perr[SS_ERRSZ];
    if (c->nviews && ss_plan_build(c, &p, perr, sizeof perr) == SS_OK)
        remember_cols(c, p);
    ss_plan_free(p);
    *out = c;
    return SS_OK;
}

void ss_catalog_close(ss_catalog_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nstreams; i++)
        stream_free(c->streams[i]);
    for (int i = 0; i < c->nviews; i++)
        view_free(c->views[i]);
    for (int i = 0; i < c->nmodels; i++)
        model_free(c->models[i]);
    ss__opts_free(c->nsettings, c->settings);
    free(c->streams);
    free(c->views);
    free(c->models);
    free(c);
}

/* Common "already exists" handling; returns -1 to continue, else the result code. */
static int check_exists(const ss_catalog_t *c, const ss_ast_stmt_t *st, const char *what, char *err,
                        size_t errsz)
{
    int is_stream = find_stream(c, st->name) >= 0, is_view = find_view(c, st->name) >= 0;
    int is_model = find_model(c, st->name) >= 0;
    int same = (!strcmp(what, "stream") && is_stream) || (!strcmp(what, "view") && is_view) ||
               (!strcmp(what, "model") && is_model);
    if (same && st->if_not_exists)
        return SS_OK;
    const char *other = is_stream ? "stream" : is_view ? "view" : NULL;
    if (!strcmp(what, "model"))
        other = is_model ? "model" : NULL;
    if (other)
        return ss_seterr(err, errsz, SS_ERR_EXISTS, "%d:%d: %s %s already exists%s",
                         st->name_span.line, st->name_span.col, other, st->name,
                         same ? " (use IF NOT EXISTS to ignore)" : "");
    return -1;
}

int ss_catalog_add_stream(ss_catalog_t *c, const ss_ast_stmt_t *stmt, char *err, size_t errsz)
{
    if (stmt->kind != SS_STMT_CREATE_STREAM)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "not a CREATE STREAM statement");
    int rc = check_exists(c, stmt, "stream", err, errsz);
    if (rc >= 0)
        return rc;
    stream_ent_t *e = NULL;
    if ((rc = check_options(stmt, "CREATE STREAM", stream_opts, (int)SS_ARRAY_LEN(stream_opts), err, errsz)) ||
        (rc = build_stream(stmt, &e, err, errsz)))
        return rc;
    if ((rc = db_insert(c, "ss_streams", e->pub.name, e->pub.sql, -1, &e->seq, err, errsz)) ||
        (rc = push(&c->streams, &c->nstreams, e))) {
        stream_free(e);
        return rc == SS_ERR_NOMEM ? (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory") : rc;
    }
    return SS_OK;
}

int ss_catalog_add_model(ss_catalog_t *c, const ss_ast_stmt_t *stmt, char *err, size_t errsz)
{
    if (stmt->kind != SS_STMT_CREATE_MODEL)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "not a CREATE MODEL statement");
    int rc = check_exists(c, stmt, "model", err, errsz);
    if (rc >= 0)
        return rc;
    model_ent_t *e = NULL;
    if ((rc = check_options(stmt, "CREATE MODEL", model_opts, (int)SS_ARRAY_LEN(model_opts), err, errsz)) ||
        (rc = build_model(stmt, &e, err, errsz)))
        return rc;
    if ((rc = db_insert(c, "ss_models", e->pub.name, e->pub.sql, -1, &e->seq, err, errsz)) ||
        (rc = push(&c->models, &c->nmodels, e))) {
        model_free(e);
        return rc == SS_ERR_NOMEM ? (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory") : rc;
    }
    return SS_OK;
}

/* Does the plan hold an operator that asks a model (not only embeddings)? */
static int plan_asks_model(const ss_plan_t *p)
{
    for (int i = 0; i < p->n; i++) {
        ss_plan_kind_t k = p->nodes[i]->kind;
        if (k == SS_PN_SEM_FILTER || k == SS_PN_SEM_MAP || k == SS_PN_SEM_JOIN || k == SS_PN_SEM_TOPK ||
            k == SS_PN_SEM_AGG || k == SS_PN_LLM_GENERATE || k == SS_PN_SEM_EXTRACT || k == SS_PN_SEM_CLASSIFY ||
            k == SS_PN_SEM_DEDUP || k == SS_PN_SEM_GROUP)
            return 1;
    }
    return 0;
}

/* SET default_model applies when a view is created: a view that asks a model and has no
 * WITH (model = ...) is stored as its statement with that option added (*text: the canonical
 * SQL, ss_ast_stmt_to_sql; NULL when nothing is added), so a later SET changes no existing view. */
static int with_default_model(const ss_catalog_t *c, const ss_ast_stmt_t *stmt, const ss_plan_t *p, char **text,
                              char *err, size_t errsz)
{
    const char *dm = ss_catalog_get(c, "default_model");
    *text = NULL;
    if (!dm || !*dm || ss__opt_find(stmt->opts, "model") || !plan_asks_model(p))
        return SS_OK;
    if (!ss_catalog_model(c, dm))
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC,
                         "%d:%d: view %s would use default_model \"%s\", which is not a model (CREATE MODEL %s "
                         "WITH (...), or SET default_model to another)",
                         stmt->name_span.line, stmt->name_span.col, stmt->name, dm, dm);
    int n = stmt->opts ? stmt->opts->n : 0;
    ss_ast_option_t *items = calloc((size_t)n + 1, sizeof *items);
    if (!items)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        items[i] = stmt->opts->items[i]; /* borrowed for the rendering */
    items[n].name = "model";
    items[n].value = ss_val_text_ref(dm, strlen(dm));
    ss_ast_options_t opts = {.n = n + 1, .cap = n + 1, .items = items};
    ss_ast_stmt_t copy = *stmt;
    copy.opts = &opts;
    ss_buf_t b = SS_BUF_INIT;
    int rc = ss_ast_stmt_to_sql(&copy, &b);
    free(items);
    if (rc) {
        ss_buf_free(&b);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "rendering view %s with default_model", stmt->name);
    }
    *text = ss_buf_take(&b);
    return SS_OK;
}

int ss_catalog_add_view(ss_catalog_t *c, const ss_ast_stmt_t *stmt, char *err, size_t errsz)
{
    if (stmt->kind != SS_STMT_CREATE_VIEW || !stmt->query)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "not a CREATE VIEW statement");
    int rc = check_exists(c, stmt, "view", err, errsz);
    if (rc >= 0)
        return rc;
    if (!stmt->text || !*stmt->text)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "CREATE VIEW %s carries no source text to store",
                         stmt->name);
    if ((rc = check_options(stmt, "CREATE VIEW", view_opts, (int)SS_ARRAY_LEN(view_opts), err, errsz)) ||
        (rc = check_view_options(stmt, err, errsz)))
        return rc;
    ss_plan_t *p = NULL;
    if ((rc = ss__plan_view(c, stmt->query, stmt->name, stmt->opts, &p, err, errsz)))
        return rc;
    /* the catalog keeps its own parse of the text (the caller keeps stmt); a view that asks a
     * model and names none gets the session's default_model written into its statement */
    char *text = NULL;
    if ((rc = with_default_model(c, stmt, p, &text, err, errsz))) {
        ss_plan_free(p);
        return rc;
    }
    ss_ast_stmt_t *own = NULL;
    view_ent_t *e = NULL;
    if ((rc = parse_one(text ? text : stmt->text, SS_STMT_CREATE_VIEW, &own, err, errsz))) {
        ss_errprefix(err, errsz, "re-parsing view %s", stmt->name);
        ss_plan_free(p);
        free(text);
        return rc;
    }
    free(text);
    if ((rc = build_view(own, &e, err, errsz))) {
        ss_plan_free(p);
        return rc;
    }
    e->pub.created_ms = ss_wall_ms();
    if ((rc = db_insert(c, "ss_views", e->pub.name, e->pub.sql, e->pub.created_ms, &e->seq, err, errsz)) ||
        (rc = push(&c->views, &c->nviews, e))) {
        view_free(e);
        ss_plan_free(p);
        return rc == SS_ERR_NOMEM ? (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory") : rc;
    }
    remember_cols(c, p);
    ss_plan_free(p);
    return SS_OK;
}

/* Appends to buf the names of views that read `name` (a stream/view, or a model if is_model). */
static int dependants(const ss_catalog_t *c, const char *name, int is_model, ss_buf_t *buf)
{
    int n = 0;
    for (int i = 0; i < c->nviews; i++) {
        const ss_ast_stmt_t *st = c->views[i]->pub.stmt;
        const char *refs[65];
        int k = is_model ? ss__query_models(st->query, refs, 64) : ss__query_refs(st->query, refs, 64);
        const ss_ast_option_t *vm = is_model ? ss__opt_find(st->opts, "model") : NULL;
        if (vm && vm->value.t == SS_TEXT)
            refs[k++] = vm->value.u.str.s; /* the view's default model */
        for (int j = 0; j < k; j++)
            if (ss_strcaseeq(refs[j], name)) {
                ss_buf_printf(buf, "%s%s", n++ ? ", " : "", c->views[i]->pub.name);
                break;
            }
    }
    return n;
}

int ss_catalog_drop(ss_catalog_t *c, ss_ast_object_t obj, const char *name, int if_exists,
                    char *err, size_t errsz)
{
    static const char *const what[] = {"stream", "view", "model"};
    int i = obj == SS_OBJ_STREAM ? find_stream(c, name) : obj == SS_OBJ_VIEW ? find_view(c, name)
                                                                            : find_model(c, name);
    if (i < 0)
        return if_exists ? SS_OK
                         : ss_seterr(err, errsz, SS_ERR_NOTFOUND, "no %s named %s", what[obj], name);
    ss_buf_t deps = SS_BUF_INIT;
    int n = dependants(c, name, obj == SS_OBJ_MODEL, &deps);
    if (n) {
        int rc = ss_seterr(err, errsz, SS_ERR_INVALID, "cannot drop %s %s: view%s %s read%s it (drop %s first)",
                           what[obj], name, n > 1 ? "s" : "", ss_buf_cstr(&deps), n > 1 ? "" : "s",
                           n > 1 ? "them" : "it");
        ss_buf_free(&deps);
        return rc;
    }
    ss_buf_free(&deps);
    int rc;
    switch (obj) {
    case SS_OBJ_STREAM:
        if ((rc = db_delete(c, "ss_streams", name, err, errsz)))
            return rc;
        stream_free(c->streams[i]);
        remove_at(&c->streams, &c->nstreams, i);
        break;
    case SS_OBJ_VIEW:
        if ((rc = db_delete(c, "ss_views", name, err, errsz)))
            return rc;
        view_free(c->views[i]);
        remove_at(&c->views, &c->nviews, i);
        break;
    default:
        if ((rc = db_delete(c, "ss_models", name, err, errsz)))
            return rc;
        model_free(c->models[i]);
        remove_at(&c->models, &c->nmodels, i);
        break;
    }
    return SS_OK;
}

/* The names SET knows (the engine checks the values of its own: batch_size, ...). */
static const char *const known_settings[] = {"batch_size",   "max_latency_ms", "subscribe_limit",
                                             "subscribe_timeout_ms", "result_format", "embedder",
                                             "default_model"};

int ss_catalog_set(ss_catalog_t *c, const char *name, const char *value, char *err, size_t errsz)
{
    int known = 0;
    for (size_t i = 0; i < SS_ARRAY_LEN(known_settings); i++)
        known |= ss_strcaseeq(name, known_settings[i]);
    if (!known) {
        const char *best = ss_suggest(name, known_settings, (int)SS_ARRAY_LEN(known_settings));
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC,
                         "unknown setting \"%s\"%s%s%s (settings: batch_size, max_latency_ms, subscribe_limit, "
                         "subscribe_timeout_ms, result_format, embedder, default_model)",
                         name, best ? " (did you mean \"" : "", best ? best : "", best ? "\"?)" : "");
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO ss_settings(name, value) VALUES(lower(?1), ?2)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(c->db, err, errsz, "set");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE)
        return db_err(c->db, err, errsz, "set");
    if (mem_set(c, name, value))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return SS_OK;
}

const char *ss_catalog_get(const ss_catalog_t *c, const char *name)
{
    for (int i = 0; i < c->nsettings; i++)
        if (ss_strcaseeq(c->settings[i].name, name))
            return c->settings[i].value;
    return NULL;
}

const ss_cat_stream_t *ss_catalog_stream(const ss_catalog_t *c, const char *name)
{
    int i = find_stream(c, name);
    return i < 0 ? NULL : &c->streams[i]->pub;
}

const ss_cat_view_t *ss_catalog_view(const ss_catalog_t *c, const char *name)
{
    int i = find_view(c, name);
    return i < 0 ? NULL : &c->views[i]->pub;
}

const ss_cat_model_t *ss_catalog_model(const ss_catalog_t *c, const char *name)
{
    int i = find_model(c, name);
    return i < 0 ? NULL : &c->models[i]->pub;
}

int ss_catalog_nstreams(const ss_catalog_t *c) { return c->nstreams; }
int ss_catalog_nviews(const ss_catalog_t *c) { return c->nviews; }
int ss_catalog_nmodels(const ss_catalog_t *c) { return c->nmodels; }

const ss_cat_stream_t *ss_catalog_stream_at(const ss_catalog_t *c, int i)
{
    return i >= 0 && i < c->nstreams ? &c->streams[i]->pub : NULL;
}

const ss_cat_view_t *ss_catalog_view_at(const ss_catalog_t *c, int i)
{
    return i >= 0 && i < c->nviews ? &c->views[i]->pub : NULL;
}

const ss_cat_model_t *ss_catalog_model_at(const ss_catalog_t *c, int i)
{
    return i >= 0 && i < c->nmodels ? &c->models[i]->pub : NULL;
}

static void add_name(const char **arr, int *n, const char *s)
{
    for (int i = 0; i < *n; i++)
        if (ss_strcaseeq(arr[i], s))
            return;
    arr[(*n)++] = s;
}

const char **ss_catalog_names(const ss_catalog_t *c)
{
    int cap = c->nstreams + c->nviews + c->nmodels + 1;
    for (int i = 0; i < c->nstreams; i++)
        cap += c->streams[i]->pub.schema->n;
    for (int i = 0; i < c->nviews; i++)
        cap += c->views[i]->ncols;
    const char **arr = calloc((size_t)cap, sizeof *arr);
    if (!arr)
        return NULL;
    int n = 0;
    for (int i = 0; i < c->nstreams; i++)
        add_name(arr, &n, c->streams[i]->pub.name);
    for (int i = 0; i < c->nviews; i++)
        add_name(arr, &n, c->views[i]->pub.name);
    for (int i = 0; i < c->nmodels; i++)
        add_name(arr, &n, c->models[i]->pub.name);
    for (int i = 0; i < c->nstreams; i++)
        for (int j = 0; j < c->streams[i]->pub.schema->n; j++)
            add_name(arr, &n, c->streams[i]->pub.schema->names[j]);
    for (int i = 0; i < c->nviews; i++)
        for (int j = 0; j < c->views[i]->ncols; j++)
            add_name(arr, &n, c->views[i]->cols[j]);
    arr[n] = NULL;
    return arr;
}

int64_t ss__catalog_seq(const ss_catalog_t *c, ss_ast_object_t obj, const char *name)
{
    int i;
    if (obj == SS_OBJ_STREAM)
        return (i = find_stream(c, name)) < 0 ? 0 : c->streams[i]->seq;
    if (obj == SS_OBJ_VIEW)
        return (i = find_view(c, name)) < 0 ? 0 : c->views[i]->seq;
    return (i = find_model(c, name)) < 0 ? 0 : c->models[i]->seq;
}

int64_t ss__catalog_next_view_seq(const ss_catalog_t *c)
{
    int64_t seq = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT seq FROM sqlite_sequence WHERE name = 'ss_views'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        seq = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    for (int i = 0; i < c->nviews; i++)
        seq = SS_MAX(seq, c->views[i]->seq);
    return seq + 1;
}
