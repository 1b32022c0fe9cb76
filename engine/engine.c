/*
 * engine.c — the engine's lifecycle and statement execution: opening the state
 * store, catalog, dispatcher and transport (the log or Kafka); running each
 * parsed statement, one at a time from any thread (DDL rebuilds the pipelines,
 * scheduler.c; queries go to engine_query.c, writes to engine_write.c); waiting
 * for the views (until idle / until stopped) with progress at least once a
 * second; settings. See ss_engine.h for the contract.
 */
#include "engine_int.h"


#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- open / close ---- */

static int setting_int(const char *v, int dflt)
{
    if (!v || !*v)
        return dflt;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x <= 0 || x > 100000000 ? dflt : (int)x;
}

static int open_dispatch(ss_engine_t *e, char *err, size_t errsz)
{
    ss_dispatch_opts_t o = {0};
    o.cache_path = e->cache_path;
    o.max_batch = 32;
    o.use_cache = 1;
    int rc = ss_dispatch_open(&o, &e->disp, err, errsz);
    if (!rc)
        rc = eng_models_register(e, err, errsz);
    return rc;
}

void eng_block_signals(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

void eng_restore_signals(const sigset_t *old) { pthread_sigmask(SIG_SETMASK, old, NULL); }

static int init_sync(ss_engine_t *e)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE); /* SUBSCRIBE inside a statement re-enters */
    int rc = pthread_mutex_init(&e->exec_mu, &a);
    pthread_mutexattr_destroy(&a);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    return rc ? SS_ERR_NOMEM : SS_OK;
}

static int open_parts(ss_engine_t *e, const ss_engine_opts_t *opts, char *err, size_t errsz)
{
    int rc = ss_store_open(e->db_path, &e->store, err, errsz);
    if (!rc)
        rc = ss_catalog_open(ss_store_db(e->store), &e->cat, err, errsz);
    if (rc)
        return rc;
    e->batch_size = setting_int(ss_catalog_get(e->cat, "batch_size"), 1024);
    e->max_latency_ms = setting_int(ss_catalog_get(e->cat, "max_latency_ms"), 100);
    if (opts->batch_size > 0)
        e->batch_size = opts->batch_size;
    if (opts->max_latency_ms > 0)
        e->max_latency_ms = opts->max_latency_ms;
    e->sub_limit = setting_int(ss_catalog_get(e->cat, "subscribe_limit"), 0);
    e->sub_timeout_ms = setting_int(ss_catalog_get(e->cat, "subscribe_timeout_ms"), 0);
    /* threads made from here on (broker, librdkafka, dispatcher) never take a terminal's signals */
    sigset_t old;
    eng_block_signals(&old);
    rc = eng_transport_open(e, opts->brokers, err, errsz);
    if (!rc)
        rc = open_dispatch(e, err, errsz);
    eng_restore_signals(&old);
    return rc;
}

int ss_engine_open(const ss_engine_opts_t *opts, ss_engine_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (init_sync(e)) {
        free(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    e->stop = opts->stop;
    e->live = opts->live;
    e->progress = opts->progress;
    e->catch_up = opts->catch_up;
    e->threads = opts->threads;
    e->sync_inference = opts->sync_inference;
    if (opts->timeout_ms > 0)
        e->deadline_ns = ss_now_ns() + (int64_t)opts->timeout_ms * 1000000;
    if (opts->group && (!*opts->group || !opts->brokers || !*opts->brokers)) {
        ss_engine_close(e);
        return ss_seterr(err, errsz, SS_ERR_INVALID, opts->group && *opts->group
                         ? "--group %s needs --brokers: a consumer group is Kafka's (the durable log has none)"
                         : "--group needs a name", opts->group);
    }
    e->group = opts->group ? ss_strdup(opts->group) : NULL;
    e->db_path = ss_strdup(opts->db_path ? opts->db_path : "semstream.db");
    e->cache_path = ss_sprintf("%s.cache", e->db_path ? e->db_path : "");
    e->model_path = ss_strdup(opts->model_path ? opts->model_path : ss_default_model());
    int rc = e->db_path && e->cache_path && e->model_path ? SS_OK
                                                          : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = eng_models_policy_init(e, opts, err, errsz); /* before open_parts registers the models */
    if (!rc)
        rc = open_parts(e, opts, err, errsz);
    if (rc) {
        ss_engine_close(e);
        return rc;
    }
    e->may_lead = !opts->views_off;
    eng_leader_open(e, e->may_lead);
    if (e->reader && (rc = eng_catalog_reload(e, err, errsz))) {
        ss_engine_close(e);
        return rc;
    }
    /* Start the views now. A failure here still opens the engine (the views stay
     * stopped, nothing is dropped, SHOW VIEWS and the log say why). */
    if (!e->reader && ss_catalog_nviews(e->cat) > 0) {
        char perr[SS_ERRSZ];
        if (eng_rebuild(e, perr, sizeof perr))
            ss_log(SS_LOG_ERROR, "engine", "starting the views: %s", perr);
    }
    e->last_progress_ns = ss_now_ns();
    *out = e;
    return SS_OK;
}

void ss_engine_close(ss_engine_t *e)
{
    if (!e)
        return;
    eng_pipes_stop(e); /* each confirms its deliveries or leaves them to be re-published */
    eng_subs_close_all(e, NULL); /* readers must close their subscriptions before this returns */
    if (e->prod) {
        char err[SS_ERRSZ];
        ss_producer_flush(e->prod, 5000, err, sizeof err);
        ss_producer_destroy(e->prod);
    }
    if (e->emb)
        ss_embedder_destroy(e->emb); /* before the dispatcher it may borrow */
    if (e->disp)
        ss_dispatch_close(e->disp);
    ss_plan_free(e->plan);
    if (e->cat)
        ss_catalog_close(e->cat);
    ss_store_close(e->store);
    eng_leader_close(e);
    if (e->transport)
        ss_transport_close(e->transport); /* after the pipeline's sources and sinks and the producer */
    free(e->db_path);
    free(e->group);
    free(e->cache_path);
    free(e->model_path);
    for (int i = 0; i < e->nloads; i++) {
        free(e->loads[i].stream);
        free(e->loads[i].path);
    }
    free(e->loads);
    free(e->pipes);
    free(e->kept);
    eng_models_policy_free(e);
    pthread_mutex_destroy(&e->exec_mu);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

/* ---- queued --load files ---- */

int ss_engine_add_load(ss_engine_t *e, const char *stream, const char *path, char *err, size_t errsz)
{
    struct eng_load *l = realloc(e->loads, (size_t)(e->nloads + 1) * sizeof *l);
    if (!l)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    e->loads = l;
    l += e->nloads;
    l->stream = ss_strdup(stream);
    l->path = ss_strdup(path);
    l->done = 0;
    e->nloads++;
    if (!l->stream || !l->path)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return SS_OK;
}

int ss_engine_do_loads(ss_engine_t *e, int must_exist, char *err, size_t errsz)
{
    for (int i = 0; i < e->nloads; i++) {
        struct eng_load *l = &e->loads[i];
        if (l->done)
            continue;
        if (!ss_catalog_stream(e->cat, l->stream)) {
            if (must_exist)
                return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "--load %s=%s: no such stream (the script never "
                                 "creates it)", l->stream, l->path);
            continue;
        }
        int64_t n = 0;
        int rc = ss_engine_load_jsonl(e, l->stream, l->path, &n, err, errsz);
        if (rc)
            return rc;
        l->done = 1;
        __atomic_add_fetch(&e->changes, 1, __ATOMIC_RELEASE);
        ss_log(SS_LOG_INFO, "engine", "loaded %lld messages from %s into stream %s", (long long)n, l->path,
               l->stream);
    }
    return SS_OK;
}

const char *ss_engine_transport(const ss_engine_t *e)
{
    return e->transport ? ss_transport_describe(e->transport) : "none";
}

/* ---- settings ---- */

int ss_engine_set(ss_engine_t *e, const char *name, const char *value, char *err, size_t errsz)
{
    if (ss_strcaseeq(name, "result_format")) {
        if (!ss_strcaseeq(value, "table") && !ss_strcaseeq(value, "json"))
            return ss_seterr(err, errsz, SS_ERR_INVALID, "SET result_format: expected 'table' or 'json', got '%s'",
                             value);
        e->result_json = ss_strcaseeq(value, "json");
        return SS_OK;
    }
    char *end;
    long long v = strtoll(value, &end, 10);
    int numeric = *value && !*end;
    struct {
        const char *name;
        long long min;
    } known[] = {{"batch_size", 1}, {"max_latency_ms", 1}, {"subscribe_limit", 0}, {"subscribe_timeout_ms", 0}};
    for (size_t i = 0; i < SS_ARRAY_LEN(known); i++) {
        if (!ss_strcaseeq(name, known[i].name))
            continue;
        if (!numeric || v < known[i].min || v > 1000000000LL)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "SET %s: expected an integer >= %lld, got '%s'", name,
                             known[i].min, value);
        if (i == 0)
            e->batch_size = (int)v;
        else if (i == 1)
            e->max_latency_ms = (int)v;
        else if (i == 2)
            e->sub_limit = v;
        else
            e->sub_timeout_ms = v;
        return SS_OK;
    }
    return SS_ERR_NOTFOUND;
}

/* ---- statements ---- */

static int has_position(const char *msg, const char *name);
static int catch_up(ss_engine_t *e, const ss_ast_stmt_t *st, const ss_exec_opts_t *xo, int64_t arrived_ns,
                    ss_buf_t *out, char *err, size_t errsz);

static const char *object_name(ss_ast_object_t o)
{
    return o == SS_OBJ_STREAM ? "STREAM" : o == SS_OBJ_VIEW ? "VIEW" : "MODEL";
}

/* Rebuilds the pipelines after a catalog change (scheduler.c). */
static int rebuild(ss_engine_t *e, char *err, size_t errsz)
{
    return eng_rebuild(e, err, errsz);
}

/* Whitespace-insensitive comparison of two statements' text. */
static int same_sql(const char *a, const char *b)
{
    for (;;) {
        while (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r')
            a++;
        while (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')
            b++;
        if (*a == ';' && !a[1])
            a++;
        if (*b == ';' && !b[1])
            b++;
        if (!*a || !*b)
            return !*a && !*b;
        if (*a++ != *b++)
            return 0;
    }
}

/* IF NOT EXISTS on an object that exists: nothing changes, and the result says so (and
 * whether this statement defines it differently). 0 if it does not exist. */
static int exists_notice(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, int *done)
{
    const char *what = NULL, *sql = NULL;
    const ss_cat_stream_t *cs;
    const ss_cat_view_t *cv;
    const ss_cat_model_t *cm;
    *done = 0;
    if (!st->if_not_exists)
        return SS_OK;
    if (st->kind == SS_STMT_CREATE_STREAM && (cs = ss_catalog_stream(e->cat, st->name)))
        what = "stream", sql = cs->sql;
    else if (st->kind == SS_STMT_CREATE_VIEW && (cv = ss_catalog_view(e->cat, st->name)))
        what = "view", sql = cv->sql;
    else if (st->kind == SS_STMT_CREATE_MODEL && (cm = ss_catalog_model(e->cat, st->name)))
        what = "model", sql = cm->sql;
    if (!what)
        return SS_OK;
    *done = 1;
    int differs = sql && st->text && !same_sql(sql, st->text);
    const char *kw = st->kind == SS_STMT_CREATE_STREAM ? "STREAM" : st->kind == SS_STMT_CREATE_VIEW ? "VIEW" : "MODEL";
    int rc = differs ? ss_buf_printf(out, "NOTICE: %s %s already exists, skipping (its definition differs from this "
                                     "statement: DROP %s %s first to change it)\n", what, st->name, kw, st->name)
                     : ss_buf_printf(out, "NOTICE: %s %s already exists, skipping\n", what, st->name);
    if (!rc)
        rc = ss_buf_printf(out, "CREATE %s\n", kw);
    return rc ? SS_ERR_NOMEM : SS_OK;
}

static int exec_create_view(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    int done, rc = exists_notice(e, st, out, &done);
    if (rc || done)
        return rc;
    rc = ss_catalog_add_view(e->cat, st, err, errsz);
    if (rc)
        return rc;
    rc = rebuild(e, err, errsz);
    if (rc) {
        /* keep the catalog consistent with what runs: forget the view again */
        char derr[SS_ERRSZ];
        ss_errprefix(err, errsz, "starting view %s", st->name);
        ss_catalog_drop(e->cat, SS_OBJ_VIEW, st->name, 1, derr, sizeof derr);
        if (rebuild(e, derr, sizeof derr))
            ss_log(SS_LOG_ERROR, "engine", "restarting the other views: %s", derr);
        return rc;
    }
    return ss_buf_puts(out, "CREATE VIEW\n") ? SS_ERR_NOMEM : SS_OK;
}

static int exec_create_stream(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    int done, rc = exists_notice(e, st, out, &done);
    if (rc || done)
        return rc;
    rc = ss_catalog_add_stream(e->cat, st, err, errsz);
    if (rc)
        return rc;
    const ss_cat_stream_t *cs = ss_catalog_stream(e->cat, st->name);
    if (cs && (rc = eng_create_topic(e, cs->topic ? cs->topic : cs->name, err, errsz)))
        return rc;
    return ss_buf_puts(out, "CREATE STREAM\n") ? SS_ERR_NOMEM : SS_OK;
}

/* The position of WITH option name of st (the statement's name when absent). */
static const ss_span_t *opt_span(const ss_ast_stmt_t *st, const char *name)
{
    for (int i = 0; st->opts && i < st->opts->n; i++)
        if (!strcmp(st->opts->items[i].name, name))
            return &st->opts->items[i].span;
    return &st->name_span;
}

static int opt_text(const ss_ast_stmt_t *st, const char *name, ss_buf_t *v)
{
    for (int i = 0; st->opts && i < st->opts->n; i++)
        if (!strcmp(st->opts->items[i].name, name)) {
            ss_val_to_text(&st->opts->items[i].value, v);
            return 1;
        }
    return 0;
}

/* CREATE MODEL: validated, stored, and registered; a local model is loaded now, so a
 * missing or bad file is this statement's error (at the path option). */
static int exec_create_model(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    int done, rc = exists_notice(e, st, out, &done);
    if (rc || done)
        return rc;
    ss_buf_t v = SS_BUF_INIT;
    int cap;
    if (opt_text(st, "max_in_flight", &v) && (rc = eng_model_capacity(ss_buf_cstr(&v), &cap, err, errsz))) {
        const ss_span_t *sp = opt_span(st, "max_in_flight");
        ss_errprefix(err, errsz, "%d:%d: model %s", sp->line, sp->col, st->name);
    }
    ss_buf_free(&v);
    if (!rc)
        rc = ss_catalog_add_model(e->cat, st, err, errsz);
    if (rc)
        return rc;
    if ((rc = eng_model_add(e, st->name, 1, err, errsz))) {
        char derr[SS_ERRSZ];
        const ss_span_t *sp = opt_span(st, "path");
        if (!has_position(err, NULL))
            ss_errprefix(err, errsz, "%d:%d: model %s", sp->line, sp->col, st->name);
        ss_catalog_drop(e->cat, SS_OBJ_MODEL, st->name, 1, derr, sizeof derr);
        return rc;
    }
    return ss_buf_puts(out, "CREATE MODEL\n") ? SS_ERR_NOMEM : SS_OK;
}

static int exec_set(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    ss_buf_t v = SS_BUF_INIT;
    ss_val_to_text(&st->set_value, &v);
    const char *val = ss_buf_cstr(&v);
    int rc = ss_engine_set(e, st->name, val, err, errsz);
    if (rc == SS_ERR_NOTFOUND)
        rc = SS_OK; /* not an engine setting: the catalog keeps it for the operators */
    if (!rc)
        rc = ss_catalog_set(e->cat, st->name, val, err, errsz);
    ss_buf_free(&v);
    if (rc)
        return rc;
    return ss_buf_puts(out, "SET\n") ? SS_ERR_NOMEM : SS_OK;
}

static int exec_drop(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    int existed = st->object == SS_OBJ_VIEW     ? ss_catalog_view(e->cat, st->name) != NULL
                  : st->object == SS_OBJ_STREAM ? ss_catalog_stream(e->cat, st->name) != NULL
                                                : ss_catalog_model(e->cat, st->name) != NULL;
    int rc = ss_catalog_drop(e->cat, st->object, st->name, st->if_exists, err, errsz);
    if (rc)
        return rc;
    if (existed && st->object == SS_OBJ_VIEW) {
        eng_subs_close_all(e, st->name);
        if ((rc = rebuild(e, err, errsz)))
            return rc;
    }
    return ss_buf_printf(out, "DROP %s\n", object_name(st->object)) ? SS_ERR_NOMEM : SS_OK;
}

static int exec_stmt(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    static const char *const ddl[] = {[SS_STMT_CREATE_STREAM] = "CREATE STREAM", [SS_STMT_CREATE_VIEW] = "CREATE VIEW",
                                      [SS_STMT_CREATE_MODEL] = "CREATE MODEL", [SS_STMT_DROP] = "DROP"};
    if ((size_t)st->kind < SS_ARRAY_LEN(ddl) && ddl[st->kind]) {
        int rc = eng_reader_refuse(e, ddl[st->kind], err, errsz);
        if (rc)
            return rc;
    }
    switch (st->kind) {
    case SS_STMT_CREATE_STREAM: return exec_create_stream(e, st, out, err, errsz);
    case SS_STMT_CREATE_VIEW: return exec_create_view(e, st, out, err, errsz);
    case SS_STMT_CREATE_MODEL: return exec_create_model(e, st, out, err, errsz);
    case SS_STMT_SET: return exec_set(e, st, out, err, errsz);
    case SS_STMT_DROP: return exec_drop(e, st, out, err, errsz);
    case SS_STMT_SHOW: return eng_show(e, st, out, err, errsz);
    case SS_STMT_SELECT: return eng_select(e, st, out, err, errsz);
    case SS_STMT_SUBSCRIBE: return eng_subscribe(e, st, out, err, errsz);
    case SS_STMT_EXPLAIN: return eng_explain(e, st, out, err, errsz);
    case SS_STMT_INSERT: return eng_insert(e, st, out, err, errsz);
    case SS_STMT_DELETE: return eng_delete(e, st, out, err, errsz);
    }
    return ss_seterr(err, errsz, SS_ERR_INTERNAL, "unknown statement kind %d", (int)st->kind);
}

/* 1 if msg starts with "[name:]line:col:" already. */
static int has_position(const char *msg, const char *name)
{
    size_t nl = name ? strlen(name) : 0;
    if (nl && !strncmp(msg, name, nl) && msg[nl] == ':')
        msg += nl + 1;
    const char *p = msg;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == msg || *p != ':')
        return 0;
    const char *q = ++p;
    while (*q >= '0' && *q <= '9')
        q++;
    return q > p && *q == ':';
}

/* What a client's options refuse before st runs (SS_OK when allowed). */
static int client_refuses(const ss_exec_opts_t *xo, const ss_ast_stmt_t *st, int nstmts, char *err, size_t errsz)
{
    if (!xo)
        return SS_OK;
    int reads = st->kind == SS_STMT_SELECT || st->kind == SS_STMT_SHOW || st->kind == SS_STMT_EXPLAIN ||
                st->kind == SS_STMT_SUBSCRIBE;
    if (xo->read_only && !reads)
        return ss_seterr(err, errsz, SS_ERR_DENIED, "permission denied: the read-only role may run SELECT, "
                         "SUBSCRIBE, SHOW and EXPLAIN only");
    if (st->kind == SS_STMT_SUBSCRIBE && (xo->rs || (xo->client && nstmts > 1)))
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "SUBSCRIBE streams and must be sent alone (over "
                         "PostgreSQL: COPY (SUBSCRIBE v) TO STDOUT, or DECLARE c CURSOR FOR SUBSCRIBE v and FETCH)");
    return SS_OK;
}

int ss_engine_exec(ss_engine_t *e, const char *sql, size_t len, const char *name, ss_buf_t *out, char *err,
                   size_t errsz)
{
    return ss_engine_exec_ex(e, sql, len, name, NULL, out, err, errsz);
}

int ss_engine_exec_ex(ss_engine_t *e, const char *sql, size_t len, const char *name, const ss_exec_opts_t *xo,
                      ss_buf_t *out, char *err, size_t errsz)
{
    int64_t arrived_ns = ss_now_ns();
    ss_ast_script_t *script = NULL;
    int rc = ss_parse(sql, len, name, &script, err, errsz);
    if (rc)
        return rc;
    pthread_mutex_lock(&e->exec_mu);
    const ss_exec_opts_t *saved_xo = e->xo;
    e->xo = xo;
    int structured = xo && xo->rs;
    ss_buf_t one = SS_BUF_INIT;
    for (int i = 0; !rc && i < script->n; i++) {
        const ss_ast_stmt_t *st = script->stmts[i];
        rc = client_refuses(xo, st, script->n, err, errsz);
        if (!rc)
            rc = eng_leader_check(e, err, errsz);
        if (!rc && e->reader)
            rc = eng_catalog_reload(e, err, errsz); /* the leader may have changed the views */
        if (!rc)
            rc = ss_engine_do_loads(e, 0, err, errsz);
        int reads = st->kind == SS_STMT_SELECT || st->kind == SS_STMT_SHOW || st->kind == SS_STMT_EXPLAIN ||
                    st->kind == SS_STMT_SUBSCRIBE;
        if (!rc && e->catch_up && reads)
            rc = catch_up(e, st, xo, arrived_ns, out && !structured ? out : &one, err, errsz);
        e->xo_emitted = 0;
        int skip = xo && xo->describe_only && st->kind != SS_STMT_SELECT && st->kind != SS_STMT_SHOW &&
                   st->kind != SS_STMT_EXPLAIN;
        if (!rc && !skip)
            rc = exec_stmt(e, st, out && !structured ? out : &one, err, errsz);
        if (!reads) /* a later read in this script must see what this statement wrote */
            arrived_ns = ss_now_ns();
        if (!rc && !reads) /* input written or a model changed: a failed pipeline tries again */
            __atomic_add_fetch(&e->changes, 1, __ATOMIC_RELEASE);
        if (!rc && structured) {
            rc = eng_result_finish(e, st, one.data, one.len, err, errsz);
            ss_buf_reset(&one);
        }
        /* every message says where: [name:]line:col: */
        if (rc && err && !has_position(err, name))
            ss_errprefix(err, errsz, "%s%s%d:%d", name ? name : "", name ? ":" : "", st->span.line, st->span.col);
        else if (rc && err && name && strncmp(err, name, strlen(name)) != 0) {
            char *m = ss_sprintf("%s:%s", name, err);
            if (m)
                snprintf(err, errsz, "%s", m);
            free(m);
        }
        if (!out && one.len) {
            fputs(ss_buf_cstr(&one), e->live ? e->live : stdout);
            fflush(e->live ? e->live : stdout);
            ss_buf_reset(&one);
        }
    }
    ss_buf_free(&one);
    if (!rc)
        rc = ss_engine_do_loads(e, 0, err, errsz);
    e->xo = saved_xo;
    pthread_mutex_unlock(&e->exec_mu);
    ss_ast_script_free(script);
    return rc;
}

/* ---- waiting for the views ---- */

static void stats_locked(ss_engine_t *e, ss_engine_stats_t *out);

void ss_engine_get_stats(ss_engine_t *e, ss_engine_stats_t *out)
{
    /* the pipelines array changes when a statement rebuilds it: read it under exec_mu */
    pthread_mutex_lock(&e->exec_mu);
    stats_locked(e, out);
    pthread_mutex_unlock(&e->exec_mu);
}

static void stats_locked(ss_engine_t *e, ss_engine_stats_t *out)
{
    memset(out, 0, sizeof *out);
    int64_t lag = 0;
    int lag_known = 1;
    for (int k = 0; k < e->npipes; k++) {
        eng_pipe_t *p = e->pipes[k];
        pthread_mutex_lock(&p->mu);
        out->batches += p->batches;
        out->messages += p->messages;
        if (p->lag < 0)
            lag_known = 0;
        else
            lag += p->lag;
        out->waiting += p->state == EP_WAITING;
        out->failing += p->state == EP_FAILING || p->state == EP_FAILED;
        for (int j = 0; p->shown && j < p->nn; j++)
            out->cache_hits += p->shown[p->nodes[j]].infer.cache_hits;
        pthread_mutex_unlock(&p->mu);
    }
    out->pipelines = e->npipes;
    out->lag = lag_known ? lag : -1;
    if (e->disp) {
        ss_infer_stats_t t;
        ss_dispatch_totals(e->disp, &t);
        out->llm_calls = t.calls;
        out->cache_hits += t.cache_hits;
        out->in_flight = ss_dispatch_in_flight(e->disp);
        out->busy_ns = ss_dispatch_busy_ns(e->disp, &out->request_ns);
    }
    e->stats = *out;
}

/* The views' part of a progress line (no newline); updates the rate's base. */
static void stats_text(ss_engine_t *e, int64_t now, char *out, size_t outsz)
{
    ss_engine_stats_t s;
    ss_engine_get_stats(e, &s);
    double dt = (now - e->last_progress_ns) / 1e9;
    char lag[32];
    if (s.lag < 0)
        snprintf(lag, sizeof lag, "unknown");
    else
        snprintf(lag, sizeof lag, "%lld", (long long)s.lag);
    int n = snprintf(out, outsz, "%lld messages read (%.0f/s), lag %s, LLM calls %lld (%lld in flight, %lld cache "
                     "hits), %d pipeline(s)", (long long)s.messages,
                     dt > 0 ? (s.messages - e->progress_msgs0) / dt : 0.0, lag, (long long)s.llm_calls,
                     (long long)s.in_flight, (long long)s.cache_hits, s.pipelines);
    if ((s.waiting || s.failing) && n > 0 && (size_t)n < outsz)
        snprintf(out + n, outsz - (size_t)n, ": %d waiting on models, %d failing", s.waiting, s.failing);
    e->last_progress_ns = now;
    e->progress_msgs0 = s.messages;
}

/* One progress line on stderr, at most once a second, while there is work. */
static void progress(ss_engine_t *e, int force)
{
    if (!e->progress)
        return;
    int64_t now = ss_now_ns();
    if (!force && now - e->last_progress_ns < 1000000000LL)
        return;
    ss_engine_stats_t s;
    ss_engine_get_stats(e, &s);
    int busy = s.lag > 0 || s.in_flight > 0 || s.messages != e->progress_msgs0; /* (failures are logged) */
    char line[512];
    stats_text(e, now, line, sizeof line);
    if (busy || force)
        fprintf(stderr, "semstream: %s\n", line);
}

void eng_load_progress(void *ctx, int64_t lines, int64_t bytes, int64_t size)
{
    eng_load_progress_t *lp = ctx;
    int64_t now = ss_now_ns();
    if ((lp->e->stop && *lp->e->stop) || (lp->e->deadline_ns && now >= lp->e->deadline_ns))
        lp->e->load_stop = 1;
    if (!lp->e->progress)
        return;
    double secs = (now - lp->start_ns) / 1e9;
    char views[512] = "";
    if (lp->e->npipes)
        stats_text(lp->e, now, views, sizeof views);
    fprintf(stderr, "semstream: --load %s=%s: %lld lines (%.0f/s, %.0f%% of the file)%s%s\n", lp->stream, lp->path,
            (long long)lines, secs > 0 ? lines / secs : 0.0, size > 0 ? 100.0 * (double)bytes / (double)size : 100.0,
            views[0] ? "; views: " : "", views);
}

/* Asks the pipelines (those sel marks; NULL: all) to confirm they have read their inputs to
 * their current ends, waking those that wait for input so that they answer at once. */
static uint64_t ask_idle(ss_engine_t *e, const char *sel)
{
    pthread_mutex_lock(&e->mu);
    uint64_t gen = ++e->idle_req;
    pthread_mutex_unlock(&e->mu);
    for (int k = 0; k < e->npipes; k++)
        if (!sel || sel[k])
            eng_pipe_wake(e->pipes[k]);
    return gen;
}

/* The engine's event count (commits, confirmations, state changes): wait_engine's "seen". */
static uint64_t engine_events(ss_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    uint64_t n = e->events;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* A pipeline stuck for this long during a statement's catch-up is reported, not awaited. */
#define STUCK_GRACE_NS (3LL * 1000000000LL)

/* Model failures that retrying will not mend: it cannot load, or cannot answer this. */
static int model_needs_user(int code)
{
    return code == SS_ERR_MODEL || code == SS_ERR_INVALID || code == SS_ERR_UNSUPPORTED;
}

/* 1 if pipeline p is stuck: failing, or waiting for a model that fails; why says how and
 * *fatal whether it needs the user. */
static int pipe_stuck(ss_engine_t *e, eng_pipe_t *p, int *fatal, char *why, size_t whysz)
{
    char model[sizeof p->model];
    pthread_mutex_lock(&p->mu);
    eng_pipe_state_t st = p->state;
    int pf = p->fatal;
    memcpy(model, p->model, sizeof model);
    if (st == EP_FAILING || st == EP_FAILED)
        snprintf(why, whysz, "%s", p->error);
    pthread_mutex_unlock(&p->mu);
    *fatal = 0;
    if (st == EP_FAILING || st == EP_FAILED) {
        *fatal = pf || st == EP_FAILED;
        return 1;
    }
    ss_dispatch_model_status_t ms;
    if (st != EP_WAITING || !e->disp || ss_dispatch_model_status(e->disp, model[0] ? model : NULL, &ms) != SS_OK ||
        !ms.failing)
        return 0;
    snprintf(why, whysz, "waiting on model %s, which fails: %s", model[0] ? model : "(default)", ms.last_error);
    *fatal = model_needs_user(ms.last_code);
    return 1;
}

/* What a wait for idleness covers (NULL sel: every pipeline) and, for a statement's
 * catch-up, where stuck pipelines are reported (notes; NULL: they are awaited). */
typedef struct idle_wait {
    uint64_t gen;
    char *sel;             /* [npipes] (NULL: all); a stuck one reported is taken out */
    int64_t *stuck_since;  /* [npipes]: when each was first seen stuck in this wait, 0 = not */
    ss_buf_t *notes;
    int note_fatal;        /* with notes: a failure that needs the user is noted too, not an error */
} idle_wait_t;

/* 1 when every pipeline waited for confirmed idle request w->gen (or, with notes, has been
 * stuck for STUCK_GRACE_NS: a NOTICE says so); -1 when one needs the user (err says which
 * and why); else 0. */
static int all_idle(ss_engine_t *e, idle_wait_t *w, char *err, size_t errsz)
{
    int all = 1;
    for (int k = 0; k < e->npipes; k++) {
        eng_pipe_t *p = e->pipes[k];
        if (w->sel && !w->sel[k])
            continue;
        pthread_mutex_lock(&p->mu);
        int ok = p->idle_gen >= w->gen;
        int64_t lag = p->lag;
        pthread_mutex_unlock(&p->mu);
        if (ok)
            continue;
        char why[SS_ERRSZ];
        int fatal = 0, stuck = pipe_stuck(e, p, &fatal, why, sizeof why);
        if (stuck && fatal && !(w->notes && w->note_fatal && w->sel)) {
            ss_seterr(err, errsz, SS_ERR_INVALID, "views %s: %s", p->views, why);
            return -1;
        }
        if (stuck && w->notes && w->sel) {
            int64_t now = ss_now_ns();
            if (!w->stuck_since[k])
                w->stuck_since[k] = now;
            if (now - w->stuck_since[k] >= STUCK_GRACE_NS || fatal) {
                char lagt[32] = "unknown";
                if (lag >= 0)
                    snprintf(lagt, sizeof lagt, "%lld", (long long)lag);
                ss_buf_printf(w->notes, "NOTICE: views %s are behind (lag %s): %s\n", p->views, lagt, why);
                w->sel[k] = 0; /* reported, no longer awaited */
                continue;
            }
        } else if (w->stuck_since) {
            w->stuck_since[k] = 0;
        }
        all = 0;
    }
    return all;
}

/* Waits up to ms for a pipeline event after the count seen (one that came since is not missed). */
static void wait_engine_since(ss_engine_t *e, uint64_t seen, int ms)
{
    struct timespec ts;
    ss_deadline(&ts, CLOCK_REALTIME, ms);
    pthread_mutex_lock(&e->mu);
    while (e->events == seen && pthread_cond_timedwait(&e->cv, &e->mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&e->mu);
}

static void wait_engine(ss_engine_t *e, int ms) { wait_engine_since(e, engine_events(e), ms); }

static int left_behind(ss_engine_t *e, ss_err_t code, const char *what, char *err, size_t errsz)
{
    ss_engine_stats_t s;
    ss_engine_get_stats(e, &s);
    char lag[64];
    if (s.lag < 0)
        snprintf(lag, sizeof lag, "an unknown amount of");
    else
        snprintf(lag, sizeof lag, "%lld messages of", (long long)s.lag);
    return ss_seterr(err, errsz, code, "%s with %s input not yet applied (%lld LLM requests in flight%s)", what, lag,
                     (long long)s.in_flight, s.failing ? "; some views are failing: SHOW VIEWS says why" : "");
}

/* A reader waits for the leader to apply what the topics hold now (or takes over). */
static int reader_until_idle(ss_engine_t *e, int timeout_ms, char *err, size_t errsz)
{
    int64_t start = ss_now_ns();
    for (;;) {
        int rc = eng_leader_check(e, err, errsz);
        if (rc || !e->reader)
            return rc ? rc : ss_engine_run_until_idle(e, timeout_ms, err, errsz);
        int64_t lag = eng_reader_lag(e, NULL);
        if (lag == 0)
            return SS_OK;
        if (e->stop && *e->stop)
            return ss_seterr(err, errsz, SS_ERR_CANCELED, "interrupted with %lld messages of input not yet applied "
                             "by process %ld", (long long)lag, e->leader_pid);
        if ((timeout_ms >= 0 && ss_now_ns() - start > (int64_t)timeout_ms * 1000000) ||
            (e->deadline_ns && ss_now_ns() >= e->deadline_ns))
            return ss_seterr(err, errsz, SS_ERR_TIMEOUT, "process %ld had not applied %lld messages of input in time",
                             e->leader_pid, (long long)lag);
        wait_engine(e, 100);
    }
}

/* Waits until the pipelines w covers have applied their inputs as of the call. */
static int wait_idle(ss_engine_t *e, idle_wait_t *w, int timeout_ms, char *err, size_t errsz)
{
    int64_t start = ss_now_ns();
    w->gen = ask_idle(e, w->sel);
    e->last_progress_ns = start;
    e->progress_msgs0 = e->stats.messages;
    int waited = 0, idle;
    uint64_t seen = engine_events(e);
    while ((idle = all_idle(e, w, err, errsz)) != 1) {
        if (idle < 0)
            return SS_ERR_INVALID;
        if (e->stop && *e->stop)
            return left_behind(e, SS_ERR_CANCELED, "interrupted", err, errsz);
        if (timeout_ms >= 0 && ss_now_ns() - start > (int64_t)timeout_ms * 1000000)
            return left_behind(e, SS_ERR_TIMEOUT, "the views were not caught up in time", err, errsz);
        if (e->deadline_ns && ss_now_ns() >= e->deadline_ns)
            return left_behind(e, SS_ERR_TIMEOUT, "timed out (--timeout-ms)", err, errsz);
        wait_engine_since(e, seen, 100);
        seen = engine_events(e);
        waited = 1;
        progress(e, 0);
    }
    if (waited && ss_now_ns() - start > 1000000000LL)
        progress(e, 1);
    if (!w->sel) /* every view is caught up as of start (a selective wait says nothing of the others) */
        e->idle_from_ns = start;
    return SS_OK;
}

int ss_engine_run_until_idle(ss_engine_t *e, int timeout_ms, char *err, size_t errsz)
{
    pthread_mutex_lock(&e->exec_mu); /* no statement rebuilds the pipelines meanwhile */
    int rc = ss_engine_do_loads(e, 0, err, errsz);
    if (!rc && e->plan_error[0] && ss_catalog_nviews(e->cat) > 0)
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "the views are not running: %s", e->plan_error);
    else if (!rc && e->reader)
        rc = reader_until_idle(e, timeout_ms, err, errsz);
    else if (!rc) {
        idle_wait_t w = {0};
        rc = wait_idle(e, &w, timeout_ms, err, errsz);
    }
    pthread_mutex_unlock(&e->exec_mu);
    return rc;
}

/* 1 if text mentions name as a word (case-insensitive): an over-approximation of what a
 * statement reads, which never misses a view it names. */
static int mentions(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; n && (p = strcasestr(p, name)); p++) {
        int before = p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_');
        int after = isalnum((unsigned char)p[n]) || p[n] == '_';
        if (!before && !after)
            return 1;
    }
    return 0;
}

/* 1 if pipeline p runs a view that text mentions. */
static int pipe_mentioned(const eng_pipe_t *p, const char *text)
{
    const char *v = p->views;
    while (v && *v) {
        const char *c = strchr(v, ',');
        size_t n = c ? (size_t)(c - v) : strlen(v);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)SS_MIN(n, sizeof name - 1), v);
        if (mentions(text, name))
            return 1;
        v = c ? c + 1 : NULL;
    }
    return 0;
}

/* Waits until the pipelines of the views st names (every view for SHOW) have applied their
 * inputs as of now, at most limit ms (-1: no limit). One stuck for a few seconds (failing,
 * or waiting for a failing model) is not awaited: a NOTICE in out says which and why. A
 * failure that needs the user is an error. */
static int catch_up_wait(ss_engine_t *e, const ss_ast_stmt_t *st, int limit, ss_buf_t *out, char *err, size_t errsz)
{
    int rc = ss_engine_do_loads(e, 0, err, errsz);
    if (rc || !e->catch_up)
        return rc;
    if (e->plan_error[0] && ss_catalog_nviews(e->cat) > 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "the views are not running: %s", e->plan_error);
    if (e->reader)
        return reader_until_idle(e, limit, err, errsz);
    char *sel = calloc((size_t)e->npipes + 1, 1);
    int64_t *since = calloc((size_t)e->npipes + 1, sizeof *since);
    int any = 0;
    for (int k = 0; sel && k < e->npipes; k++)
        any |= sel[k] = (char)(st->kind == SS_STMT_SHOW || !st->text || pipe_mentioned(e->pipes[k], st->text));
    /* SHOW and EXPLAIN report every failure; SELECT and SUBSCRIBE fail on one that needs the user */
    idle_wait_t w = {0, sel, since, out, st->kind == SS_STMT_SHOW || st->kind == SS_STMT_EXPLAIN};
    if (!sel || !since)
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    else if (any)
        rc = wait_idle(e, &w, limit, err, errsz);
    free(sel);
    free(since);
    return rc;
}

/* Before a statement that reads views (scripts, the shell, clients): catch_up_wait. A
 * client's wait is bounded by its time limit, after which it reads what is committed (a
 * consistent state, only older); a client's read that arrived before the start of the
 * last catch-up of every view is served by it: a burst of concurrent SELECTs waits for one
 * or two catch-ups, not one each. */
static int catch_up(ss_engine_t *e, const ss_ast_stmt_t *st, const ss_exec_opts_t *xo, int64_t arrived_ns,
                    ss_buf_t *out, char *err, size_t errsz)
{
    if (xo && e->idle_from_ns >= arrived_ns)
        return SS_OK;
    int limit = xo && xo->timeout_ms > 0 ? xo->timeout_ms : -1;
    int rc = catch_up_wait(e, st, limit, out, err, errsz);
    if (rc == SS_ERR_TIMEOUT && limit > 0) {
        ss_log(SS_LOG_DEBUG, "engine", "reading committed views without catching up: %s", err);
        rc = SS_OK;
    }
    return rc;
}

int ss_engine_run(ss_engine_t *e, char *err, size_t errsz)
{
    e->last_progress_ns = ss_now_ns();
    while (!(e->stop && *e->stop)) {
        wait_engine(e, 250);
        /* statements may run in other threads (serve): take turns with them, never wait for one */
        if (pthread_mutex_trylock(&e->exec_mu))
            continue;
        if (e->reader && eng_leader_check(e, err, errsz))
            ss_log(SS_LOG_ERROR, "engine", "%s", err);
        progress(e, 0);
        pthread_mutex_unlock(&e->exec_mu);
    }
    return SS_OK;
}

/* ---- completion names ---- */

static const char *KEYWORDS[] = {
    "CREATE", "STREAM", "CONTINUOUS", "VIEW", "MODEL", "AS", "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING",
    "ORDER", "LIMIT", "DISTINCT", "JOIN", "LEFT", "INNER", "ON", "AND", "OR", "NOT", "NULL", "IS", "LIKE", "WITH",
    "KEY", "TEXT", "INT", "INTEGER", "BIGINT", "REAL", "DOUBLE", "BOOLEAN", "DROP", "SHOW", "STREAMS", "VIEWS",
    "MODELS", "SET", "SUBSCRIBE", "EXPLAIN", "INSERT", "INTO", "VALUES", "DELETE", "IF", "EXISTS", "ASC", "DESC",
    "COUNT", "SUM", "MIN", "MAX", "AVG", "SEM_FILTER", "SEM_MAP", "SEM_JOIN", "SEM_RANK", "SEM_SCORE", "SEM_AGG",
    "LLM_GENERATE", NULL};

const char **ss_engine_names(ss_engine_t *e)
{
    const char **cat = e->cat ? ss_catalog_names(e->cat) : NULL;
    size_t nc = 0, nk = SS_ARRAY_LEN(KEYWORDS) - 1;
    while (cat && cat[nc])
        nc++;
    const char **all = calloc(nk + nc + 1, sizeof *all);
    if (all) {
        memcpy(all, KEYWORDS, nk * sizeof *all);
        if (nc)
            memcpy(all + nk, cat, nc * sizeof *all);
    }
    free(cat);
    return all;
}
