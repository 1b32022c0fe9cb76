/*
 * engine.c — the engine's lifecycle and statement execution: opening the state
 * store, catalog, dispatcher and transport (the log or Kafka); running each
 * parsed statement, one at a time from any thread (DDL rebuilds the pipelines,
 * scheduler.c; queries go to engine_query.c, writes to engine_write.c); waiting
 * for the views (until idle / until stopped) with progress at least once a
 * second; settings. See ss_engine.h for the contract.
 */
#include "engine_int.h"


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

static const char *object_name(ss_ast_object_t o)
{
    return o == SS_OBJ_STREAM ? "STREAM" : o == SS_OBJ_VIEW ? "VIEW" : "MODEL";
}

/* Rebuilds the pipelines after a catalog change (scheduler.c). */
static int rebuild(ss_engine_t *e, char *err, size_t errsz)
{
    return eng_rebuild(e, err, errsz);
}

static int exec_create_view(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    int rc = ss_catalog_add_view(e->cat, st, err, errsz);
    if (rc == SS_ERR_EXISTS && st->if_not_exists)
        return ss_buf_puts(out, "CREATE VIEW (exists)\n") ? SS_ERR_NOMEM : SS_OK;
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
    int rc = ss_catalog_add_stream(e->cat, st, err, errsz);
    if (rc == SS_ERR_EXISTS && st->if_not_exists)
        return ss_buf_puts(out, "CREATE STREAM (exists)\n") ? SS_ERR_NOMEM : SS_OK;
    if (rc)
        return rc;
    const ss_cat_stream_t *cs = ss_catalog_stream(e->cat, st->name);
    if (cs && (rc = eng_create_topic(e, cs->topic ? cs->topic : cs->name, err, errsz)))
        return rc;
    return ss_buf_puts(out, "CREATE STREAM\n") ? SS_ERR_NOMEM : SS_OK;
}

static int exec_create_model(ss_engine_t *e, const ss_ast_stmt_t *st, ss_buf_t *out, char *err, size_t errsz)
{
    int rc = ss_catalog_add_model(e->cat, st, err, errsz);
    if (rc == SS_ERR_EXISTS && st->if_not_exists)
        return ss_buf_puts(out, "CREATE MODEL (exists)\n") ? SS_ERR_NOMEM : SS_OK;
    if (rc)
        return rc;
    if ((rc = eng_model_add(e, st->name, err, errsz))) { /* refused or broken: not kept either */
        char derr[SS_ERRSZ];
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

/* Brings the views up to date before a read; a client's wait is bounded by its time limit, after
 * which it reads what is committed (a consistent state, only older). A client's read that arrived
 * before the start of the last catch-up is served by it: a burst of concurrent SELECTs waits for
 * one or two catch-ups, not one each. */
static int catch_up(ss_engine_t *e, const ss_exec_opts_t *xo, int64_t arrived_ns, char *err, size_t errsz)
{
    if (xo && e->idle_from_ns >= arrived_ns)
        return SS_OK;
    int limit = xo && xo->timeout_ms > 0 ? xo->timeout_ms : -1;
    int rc = ss_engine_run_until_idle(e, limit, err, errsz);
    if (rc == SS_ERR_TIMEOUT && limit > 0) {
        ss_log(SS_LOG_DEBUG, "engine", "reading committed views without catching up: %s", err);
        rc = SS_OK;
    }
    return rc;
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
            rc = catch_up(e, xo, arrived_ns, err, errsz);
        e->xo_emitted = 0;
        int skip = xo && xo->describe_only && st->kind != SS_STMT_SELECT && st->kind != SS_STMT_SHOW &&
                   st->kind != SS_STMT_EXPLAIN;
        if (!rc && !skip)
            rc = exec_stmt(e, st, out && !structured ? out : &one, err, errsz);
        if (!reads) /* a later read in this script must see what this statement wrote */
            arrived_ns = ss_now_ns();
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

void ss_engine_get_stats(ss_engine_t *e, ss_engine_stats_t *out)
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
        out->failing += p->state == EP_FAILING;
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
    }
    e->stats = *out;
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
    double dt = (now - e->last_progress_ns) / 1e9;
    int busy = s.lag != 0 || s.in_flight > 0 || s.messages != e->progress_msgs0;
    if (busy || force) {
        char lag[32];
        if (s.lag < 0)
            snprintf(lag, sizeof lag, "unknown");
        else
            snprintf(lag, sizeof lag, "%lld", (long long)s.lag);
        fprintf(stderr, "semstream: %lld messages read (%.0f/s), lag %s, LLM calls %lld (%lld in flight, %lld cache "
                "hits), %d pipeline(s)%s", (long long)s.messages,
                dt > 0 ? (s.messages - e->progress_msgs0) / dt : 0.0, lag, (long long)s.llm_calls,
                (long long)s.in_flight, (long long)s.cache_hits, s.pipelines, s.waiting || s.failing ? ":" : "\n");
        if (s.waiting || s.failing)
            fprintf(stderr, " %d waiting on models, %d failing\n", s.waiting, s.failing);
    }
    e->last_progress_ns = now;
    e->progress_msgs0 = s.messages;
}

/* Asks every pipeline to confirm it has read its inputs to their current ends. */
static uint64_t ask_idle(ss_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    uint64_t gen = ++e->idle_req;
    pthread_mutex_unlock(&e->mu);
    return gen;
}

/* 1 when every pipeline confirmed idle request gen; -1 when one fails in a way that needs
 * the user (err says which and why); else 0. */
static int all_idle(ss_engine_t *e, uint64_t gen, char *err, size_t errsz)
{
    int all = 1;
    for (int k = 0; k < e->npipes; k++) {
        eng_pipe_t *p = e->pipes[k];
        pthread_mutex_lock(&p->mu);
        int ok = p->idle_gen >= gen, fatal = p->state == EP_FAILING && p->fatal;
        if (fatal)
            ss_seterr(err, errsz, SS_ERR_INVALID, "views %s: %s", p->views, p->error);
        pthread_mutex_unlock(&p->mu);
        if (fatal)
            return -1;
        all &= ok;
    }
    return all;
}

static void wait_engine(ss_engine_t *e, int ms)
{
    struct timespec ts;
    ss_deadline(&ts, CLOCK_REALTIME, ms);
    pthread_mutex_lock(&e->mu);
    pthread_cond_timedwait(&e->cv, &e->mu, &ts);
    pthread_mutex_unlock(&e->mu);
}

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
        if (timeout_ms >= 0 && ss_now_ns() - start > (int64_t)timeout_ms * 1000000)
            return ss_seterr(err, errsz, SS_ERR_TIMEOUT, "process %ld had not applied %lld messages of input in time",
                             e->leader_pid, (long long)lag);
        wait_engine(e, 100);
    }
}

int ss_engine_run_until_idle(ss_engine_t *e, int timeout_ms, char *err, size_t errsz)
{
    int rc = ss_engine_do_loads(e, 0, err, errsz);
    if (rc)
        return rc;
    if (e->plan_error[0] && ss_catalog_nviews(e->cat) > 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "the views are not running: %s", e->plan_error);
    if (e->reader)
        return reader_until_idle(e, timeout_ms, err, errsz);
    int64_t start = ss_now_ns();
    uint64_t gen = ask_idle(e);
    e->last_progress_ns = start;
    e->progress_msgs0 = e->stats.messages;
    int waited = 0, idle;
    while ((idle = all_idle(e, gen, err, errsz)) != 1) {
        if (idle < 0)
            return SS_ERR_INVALID;
        if (e->stop && *e->stop)
            return left_behind(e, SS_ERR_CANCELED, "interrupted", err, errsz);
        if (timeout_ms >= 0 && ss_now_ns() - start > (int64_t)timeout_ms * 1000000)
            return left_behind(e, SS_ERR_TIMEOUT, "the views were not caught up in time", err, errsz);
        wait_engine(e, 100);
        waited = 1;
        progress(e, 0);
    }
    if (waited && ss_now_ns() - start > 1000000000LL)
        progress(e, 1);
    e->idle_from_ns = start;
    return SS_OK;
}

int ss_engine_run(ss_engine_t *e, char *err, size_t errsz)
{
    (void)err;
    (void)errsz;
    e->last_progress_ns = ss_now_ns();
    while (!(e->stop && *e->stop)) {
        wait_engine(e, 250);
        if (e->reader && eng_leader_check(e, err, errsz))
            ss_log(SS_LOG_ERROR, "engine", "%s", err);
        progress(e, 0);
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
