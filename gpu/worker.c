/*
 * worker.c — implements ss_worker.h: the HTTP server (libmicrohttpd on a few epoll
 * threads), the queue, the engine thread and the cache writer of `semstream worker`.
 * The OpenAI protocol itself (parsing, JSON, server-sent events) is worker_api.c.
 *
 * The life of a call (one HTTP request, worker_int.h):
 *  1. the body is read (at most max_body bytes) and parsed; answers already in the
 *     cache (and trivial ones: max_tokens 0) are filled in at once;
 *  2. the rest go to the queue (full: 429 + Retry-After) and the connection is
 *     suspended: it holds no thread while it waits (a streaming call sends its events
 *     as they come, suspending whenever it has nothing to send);
 *  3. the engine thread admits requests one at a time from the queued call with the
 *     fewest running, while fewer than max_batch run:
 *     - continuous mode (the in-process engine, gpu/llm_sched.c): it loops { admit,
 *       ss_llm_submit, ss_llm_step, resume the connections with news }, so requests
 *       join the running batch between steps and a short call is answered while a
 *       long one decodes;
 *     - whole-batch mode (other backends, or opts.whole_batch): the admitted requests
 *       are answered with one backend call;
 *  4. with a cache, the writer thread stores the finished call's answers durably
 *     (one transaction for all calls finished meanwhile), then the call is done and
 *     its connection resumed to send the answer. A call whose client has gone (an
 *     engine killed with requests in flight) still runs to the end and is stored.
 * Shutdown refuses new calls (503), drains the queue and the running requests, lets
 * the answers go out, then stops. MHD functions are never called with our mutex held.
 */
#include "worker_int.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ calls */

static void call_unref(ss_worker_t *w, call_t *c) /* under mu */
{
    (void)w;
    if (--c->refs == 0)
        wk_call_free(c);
}

/* Answers that are stored and re-used: the same request gets the same answer (greedy, or sampled
 * with the client's seed), and the cache keeps all of it (not per-token logprobs). */
static int cacheable(const call_t *c, const ss_infer_req_t *r)
{
    if (r->kind != SS_INFER_GENERATE)
        return 1;
    return r->top_logprobs == 0 && (r->temperature <= 0 || c->seeded);
}

/* Connections to resume once the mutex is released. */
typedef struct wakes {
    struct MHD_Connection *c[64];
    int n;
} wakes_t;

static void wake_flush(wakes_t *k)
{
    for (int i = 0; i < k->n; i++)
        MHD_resume_connection(k->c[i]);
    k->n = 0;
}

/* Resumes c's connection if it waits and has news; under mu (flushes if the list is full). */
static void wake(ss_worker_t *w, call_t *c, wakes_t *k)
{
    if (!c->suspended || !c->conn)
        return;
    c->suspended = 0;
    if (k->n == (int)SS_ARRAY_LEN(k->c)) {
        pthread_mutex_unlock(&w->mu);
        wake_flush(k);
        pthread_mutex_lock(&w->mu);
    }
    k->c[k->n++] = c->conn;
}

/* Every answer is in (and stored): the engine lets go of the call. Under mu. */
static void call_done(ss_worker_t *w, call_t *c, wakes_t *k)
{
    c->done = 1;
    wake(w, c, k);
    call_unref(w, c);
}

/* The last request of c finished: to the cache writer, or done. Under mu. */
static void call_finished(ss_worker_t *w, call_t *c, wakes_t *k)
{
    int store = 0;
    for (int i = 0; w->cache && i < c->nreq && !store; i++)
        store = c->wr[i].computed && !c->res[i].status && cacheable(c, &c->reqs[i]);
    if (!store) {
        call_done(w, c, k);
        return;
    }
    c->wnext = NULL;
    if (w->wtail)
        w->wtail->wnext = c;
    else
        w->whead = c;
    w->wtail = c;
    pthread_cond_signal(&w->wcv);
}

/* Request i of c has its answer. Under mu. */
static void req_finished(ss_worker_t *w, call_t *c, int i, int admitted, wakes_t *k)
{
    wreq_t *r = &c->wr[i];
    r->finished = 1;
    if (admitted) {
        r->computed = 1;
        c->running--;
        w->running--;
        w->m_inferences++;
        w->m_prompt_tok += c->res[i].prompt_tokens;
        w->m_gen_tok += c->res[i].gen_tokens;
    }
    if (c->stream)
        wake(w, c, k);
    if (--c->left == 0)
        call_finished(w, c, k);
}

/* ------------------------------------------------------------ queue and admission */

/* Adds c (c->left requests to answer) to the queue; 0, 429 (full) or 503 (stopping). Under mu. */
static int enqueue(ss_worker_t *w, call_t *c)
{
    if (w->stopping) {
        w->m_rejected++;
        return 503;
    }
    if (w->qcalls >= w->o.max_queue) { /* calls, so that one call of many prompts shuts no one out */
        w->m_rejected++;
        return 429;
    }
    c->qnext = NULL;
    if (w->tail)
        w->tail->qnext = c;
    else
        w->head = c;
    w->tail = c;
    w->queued += c->left;
    w->qcalls++;
    c->refs++; /* the engine's */
    pthread_cond_signal(&w->cv);
    return 0;
}

static void skip_finished(call_t *c)
{
    while (c->next < c->nreq && c->wr[c->next].finished)
        c->next++;
}

/* The queued call with the fewest requests running (the oldest of equals); NULL if none. */
static call_t *fewest_running(ss_worker_t *w, call_t ***bestp, call_t **bprev)
{
    call_t *best = NULL, *prev = NULL;
    for (call_t **pp = &w->head; *pp; prev = *pp, pp = &(*pp)->qnext)
        if (!best || (*pp)->running < best->running) {
            best = *pp;
            if (bestp)
                *bestp = pp, *bprev = prev;
        }
    return best;
}

/* Admits the next request of the queued call with the fewest requests running (the oldest of
 * equals): a long call cannot keep a short one waiting. Returns its call (*idx: the request) or
 * NULL when nothing is queued. Under mu. */
static call_t *admit_one(ss_worker_t *w, int *idx)
{
    call_t **bestp = NULL, *bprev = NULL;
    call_t *best = fewest_running(w, &bestp, &bprev);
    if (!best)
        return NULL;
    skip_finished(best);
    *idx = best->next++;
    best->running++;
    w->running++;
    w->queued--;
    skip_finished(best);
    if (best->next >= best->nreq) { /* nothing more to admit: off the queue */
        w->qcalls--;
        *bestp = best->qnext;
        if (w->tail == best)
            w->tail = bprev;
    }
    return best;
}

/* Waits up to batch_wait_ms for more calls to arrive; under mu. */
static void gather_wait(ss_worker_t *w)
{
    if (w->o.batch_wait_ms <= 0 || w->queued >= w->o.max_batch)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)w->o.batch_wait_ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

typedef struct adm {
    call_t *c;
    int i;
} adm_t;

/* Admits requests while fewer than max_batch run (at least one); beyond that, one request of each
 * call that has none running yet, up to 2 x max_batch: a call arriving while the batch is full
 * starts at the next step instead of waiting for a running request to finish. Under mu. */
static int admit(ss_worker_t *w, adm_t *a, int cap)
{
    int n = 0;
    for (call_t *next; n < cap && (next = fewest_running(w, NULL, NULL)); n++) {
        int room = w->running < w->o.max_batch || w->running == 0 ||
                   (next->running == 0 && w->running < 2 * w->o.max_batch);
        if (!room)
            break;
        a[n].c = admit_one(w, &a[n].i);
    }
    if (n) {
        w->m_batches++;
        w->m_batched_reqs += n;
    }
    return n;
}

/* ------------------------------------------------------------ the engine thread */

static __thread wakes_t *engine_wakes; /* the engine thread's list, for the callbacks below */

/* ss_llm_step's callback (engine thread, mu not held): a request finished. */
static void req_done(void *ctx, ss_infer_res_t *res, int rc)
{
    (void)res, (void)rc; /* a failure is in res->status / res->error */
    wreq_t *r = ctx;
    call_t *c = r->call;
    ss_worker_t *w = c->w;
    pthread_mutex_lock(&w->mu);
    req_finished(w, c, (int)(r - c->wr), 1, engine_wakes);
    pthread_mutex_unlock(&w->mu);
}

void wk_token_cb(void *ctx, const ss_infer_token_t *t)
{
    wreq_t *r = ctx;
    call_t *c = r->call;
    ss_worker_t *w = c->w;
    pthread_mutex_lock(&w->mu);
    wk_add_token(r, t);
    if (c->stream && engine_wakes)
        wake(w, c, engine_wakes);
    pthread_mutex_unlock(&w->mu);
}

static void *engine_main(void *arg)
{
    ss_worker_t *w = arg;
    int cap = 2 * SS_MAX(w->o.max_batch, 1);
    adm_t *a = calloc((size_t)cap, sizeof *a);
    wakes_t k = {.n = 0};
    engine_wakes = &k;
    if (!a)
        ss_log(SS_LOG_ERROR, "worker", "out of memory starting the engine thread");
    pthread_mutex_lock(&w->mu);
    while (a) {
        while (!w->head && !w->running && !w->exit_engine)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head && !w->running)
            break;
        if (!w->running)
            gather_wait(w); /* idle: give concurrent clients a moment to join the first step */
        int n = admit(w, a, cap);
        pthread_mutex_unlock(&w->mu);
        for (int j = 0; j < n; j++) {
            char err[SS_ERRSZ] = "";
            call_t *c = a[j].c;
            if (ss_llm_submit(w->model, &c->reqs[a[j].i], &c->res[a[j].i], req_done, &c->wr[a[j].i], err,
                              sizeof err) != SS_OK) {
                ss_infer_res_fail(&c->res[a[j].i], SS_ERR_NOMEM, err);
                pthread_mutex_lock(&w->mu);
                req_finished(w, c, a[j].i, 1, &k);
                pthread_mutex_unlock(&w->mu);
            }
        }
        char err[SS_ERRSZ] = "";
        pthread_mutex_lock(&w->mu);
        w->m_steps++; /* counted before: a call answered in this step sees its step counted */
        pthread_mutex_unlock(&w->mu);
        int64_t t0 = ss_now_ns();
        ss_llm_step(w->model, w->o.step_tokens, err, sizeof err); /* failures reach the requests */
        int64_t dt = ss_now_ns() - t0;
        wake_flush(&k);
        pthread_mutex_lock(&w->mu);
        w->m_busy_ns += dt;
    }
    pthread_mutex_unlock(&w->mu);
    wake_flush(&k);
    free(a);
    return NULL;
}

/* Whole-batch mode: the admitted requests in one backend call. */
static void *batch_main(void *arg)
{
    ss_worker_t *w = arg;
    int cap = SS_MAX(w->o.max_batch, 1);
    adm_t *a = calloc((size_t)cap, sizeof *a);
    ss_infer_req_t *reqs = calloc((size_t)cap, sizeof *reqs);
    ss_infer_res_t *res = calloc((size_t)cap, sizeof *res);
    wakes_t k = {.n = 0};
    engine_wakes = &k;
    pthread_mutex_lock(&w->mu);
    for (; a && reqs && res;) {
        while (!w->head && !w->exit_engine)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head)
            break;
        gather_wait(w);
        int n = admit(w, a, cap);
        pthread_mutex_unlock(&w->mu);
        for (int j = 0; j < n; j++) {
            reqs[j] = a[j].c->reqs[a[j].i];
            memset(&res[j], 0, sizeof res[j]);
        }
        char err[SS_ERRSZ] = "";
        int64_t t0 = ss_now_ns();
        int rc = w->be->run(w->be, reqs, n, res, err, sizeof err);
        int64_t dt = ss_now_ns() - t0;
        pthread_mutex_lock(&w->mu);
        w->m_busy_ns += dt;
        for (int j = 0; j < n; j++) {
            call_t *c = a[j].c;
            if (rc)
                ss_infer_res_fail(&res[j], rc, err[0] ? err : ss_err2str((ss_err_t)rc));
            c->res[a[j].i] = res[j]; /* the result's fields move to the call */
            req_finished(w, c, a[j].i, 1, &k);
        }
        pthread_mutex_unlock(&w->mu);
        wake_flush(&k);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    free(a);
    free(reqs);
    free(res);
    return NULL;
}

/* ------------------------------------------------------------ the cache writer */

static void *writer_main(void *arg)
{
    ss_worker_t *w = arg;
    wakes_t k = {.n = 0};
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->whead && !w->exit_writer)
            pthread_cond_wait(&w->wcv, &w->mu);
        if (!w->whead)
            break;
        call_t *list = w->whead;
        w->whead = w->wtail = NULL;
        pthread_mutex_unlock(&w->mu);
        int n = 0;
        for (call_t *c = list; c; c = c->wnext)
            n += c->nreq;
        const ss_infer_req_t **rq = calloc((size_t)n, sizeof *rq);
        const ss_infer_res_t **rs = calloc((size_t)n, sizeof *rs);
        int m = 0;
        for (call_t *c = list; c && rq && rs; c = c->wnext)
            for (int i = 0; i < c->nreq; i++)
                if (c->wr[i].computed && !c->res[i].status && cacheable(c, &c->reqs[i])) {
                    rq[m] = &c->reqs[i];
                    rs[m++] = &c->res[i];
                }
        char err[SS_ERRSZ] = "";
        int rc = rq && rs ? w->cache->put(w->cache->ctx, w->be->model_id, rq, rs, m, err, sizeof err)
                          : SS_ERR_NOMEM;
        if (rc)
            ss_log(SS_LOG_WARN, "worker", "storing %d answers in the cache failed: %s", m,
                   err[0] ? err : ss_err2str((ss_err_t)rc));
        free(rq);
        free(rs);
        pthread_mutex_lock(&w->mu);
        if (rc)
            w->m_cache_errors++;
        else
            w->m_cache_puts += m;
        for (call_t *c = list, *nx; c; c = nx) {
            nx = c->wnext;
            call_done(w, c, &k);
        }
        pthread_mutex_unlock(&w->mu);
        wake_flush(&k);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ------------------------------------------------------------ HTTP plumbing */

typedef struct conn {
    ss_buf_t body;
    int too_big;
    call_t *call;
} conn_t;

static void count_status(ss_worker_t *w, unsigned code)
{
    int k = code == 400 ? 0 : code == 401 ? 1 : code == 404 ? 2 : code == 405 ? 3 : code == 413 ? 4 : code == 429 ? 5
            : code >= 500 ? 6 : 7;
    pthread_mutex_lock(&w->mu);
    w->m_status[k]++;
    w->m_errors++;
    pthread_mutex_unlock(&w->mu);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, const char *body, size_t len,
                             int retry_after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    if (code == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_error(ss_worker_t *w, struct MHD_Connection *c, unsigned code, const char *msg,
                                   const char *param, const char *ecode)
{
    const char *type = code == 401 ? "authentication_error" : code == 429 ? "rate_limit_error"
                       : code >= 500 ? "server_error" : "invalid_request_error";
    ss_buf_t b = SS_BUF_INIT;
    wk_error_json(&b, msg, type, param, ecode);
    count_status(w, code);
    enum MHD_Result rc = reply(c, code, "application/json", ss_buf_cstr(&b), b.len, code == 429 ? 1 : 0);
    ss_buf_free(&b);
    return rc;
}

/* The answer of a finished call. */
static enum MHD_Result reply_call(ss_worker_t *w, struct MHD_Connection *conn, call_t *c)
{
    const char *msg;
    if (c->status)
        return reply_error(w, conn, 500, c->err, NULL, NULL);
    if (wk_failed(c, &msg))
        return reply_error(w, conn, 400, msg, NULL, NULL);
    ss_buf_t b = SS_BUF_INIT;
    wk_render(c, &b);
    enum MHD_Result rc = reply(conn, 200, "application/json", ss_buf_cstr(&b), b.len, 0);
    ss_buf_free(&b);
    return rc;
}

/* Content reader of a streaming answer: the events available, or suspends until there are. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    call_t *c = cls;
    ss_worker_t *w = c->w;
    pthread_mutex_lock(&w->mu);
    if (c->out_off == c->out.len) {
        ss_buf_reset(&c->out);
        c->out_off = 0;
        wk_stream(c, &c->out);
    }
    if (c->out_off < c->out.len) {
        size_t n = SS_MIN(max, c->out.len - c->out_off);
        memcpy(buf, c->out.data + c->out_off, n);
        c->out_off += n;
        pthread_mutex_unlock(&w->mu);
        return (ssize_t)n;
    }
    if (c->out_end) {
        pthread_mutex_unlock(&w->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    c->suspended = 1; /* resumed by the engine when there is news (a resume first cancels it) */
    struct MHD_Connection *conn = c->conn;
    pthread_mutex_unlock(&w->mu);
    MHD_suspend_connection(conn);
    return 0;
}

static enum MHD_Result reply_stream(ss_worker_t *w, struct MHD_Connection *conn, call_t *c)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, c, NULL);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result rc = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    pthread_mutex_lock(&w->mu);
    w->m_streams++;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Waits for the engine (suspended), or answers now when the call is done. */
static enum MHD_Result wait_or_reply(ss_worker_t *w, struct MHD_Connection *conn, call_t *c)
{
    pthread_mutex_lock(&w->mu);
    int done = c->done;
    if (!done)
        c->suspended = 1;
    pthread_mutex_unlock(&w->mu);
    if (done)
        return reply_call(w, conn, c);
    MHD_suspend_connection(conn);
    return MHD_YES;
}

/* Fills what needs no engine: answers in the cache, GENERATE with max_tokens 0. */
static void prefill(ss_worker_t *w, call_t *c)
{
    int hits = 0;
    for (int i = 0; i < c->nreq; i++) {
        const ss_infer_req_t *r = &c->reqs[i];
        if (r->kind == SS_INFER_GENERATE && r->max_tokens == 0) {
            c->res[i].text = ss_strdup("");
            c->res[i].prompt_tokens = w->model ? ss_llm_count_tokens(w->model, r->prompt) : 0;
            c->wr[i].finished = 1;
        } else if (w->cache && cacheable(c, r) && w->cache->get(w->cache->ctx, w->be->model_id, r, &c->res[i]) == 1) {
            c->wr[i].finished = 1;
            hits++;
        }
    }
    c->left = 0;
    for (int i = 0; i < c->nreq; i++)
        c->left += !c->wr[i].finished;
    pthread_mutex_lock(&w->mu);
    w->m_cache_hits += hits;
    pthread_mutex_unlock(&w->mu);
}

static enum MHD_Result start_call(ss_worker_t *w, struct MHD_Connection *conn, conn_t *cc, int ep)
{
    if (cc->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes", w->o.max_body);
        return reply_error(w, conn, 413, msg, NULL, NULL);
    }
    call_t *c = calloc(1, sizeof *c);
    if (!c)
        return reply_error(w, conn, 500, "out of memory", NULL, NULL);
    static uint64_t seq;
    c->w = w;
    c->ep = ep;
    c->refs = 1; /* the connection's */
    c->conn = conn;
    c->t0_ns = ss_now_ns();
    c->created = ss_wall_ms() / 1000;
    snprintf(c->id, sizeof c->id, "%s-%llx%llx", ep == EP_CHAT ? "chatcmpl" : ep == EP_EMBEDDINGS ? "emb" : "cmpl",
             (unsigned long long)c->t0_ns, (unsigned long long)__atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    char err[SS_ERRSZ] = "";
    const char *param, *code;
    int st = wk_parse(c, cc->body.data, cc->body.len, &param, &code, err, sizeof err);
    if (st) {
        enum MHD_Result r = reply_error(w, conn, (unsigned)st, err, param, code);
        wk_call_free(c);
        return r;
    }
    prefill(w, c);
    pthread_mutex_lock(&w->mu);
    int rc = c->left ? enqueue(w, c) : 0;
    if (!rc) {
        w->m_requests++;
        w->open_calls++;
        cc->call = c;
        if (!c->left)
            c->done = 1;
    }
    pthread_mutex_unlock(&w->mu);
    if (rc) {
        wk_call_free(c);
        return reply_error(w, conn, (unsigned)rc,
                           rc == 429 ? "worker queue is full; retry later" : "worker is shutting down", NULL, NULL);
    }
    if (c->stream)
        return reply_stream(w, conn, c);
    return wait_or_reply(w, conn, c);
}

static int auth_ok(const ss_worker_t *w, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h), m = strlen(w->token);
    unsigned diff = (unsigned)(n ^ m); /* constant time over the token */
    for (size_t i = 0; i < m; i++)
        diff |= (unsigned char)w->token[i] ^ (unsigned char)(i < n ? h[i] : 0);
    return diff == 0;
}

static void log_refused(ss_worker_t *w, struct MHD_Connection *c, const char *method, const char *url)
{
    char ip[64] = "?";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, ip, sizeof ip);
    pthread_mutex_lock(&w->mu);
    int64_t now = ss_now_ns(), n = ++w->m_auth_fail;
    int log = now - w->last_auth_log_ns > 1000000000LL;
    if (log)
        w->last_auth_log_ns = now;
    pthread_mutex_unlock(&w->mu);
    if (log) /* at most once a second; the count is in /metrics */
        ss_log(SS_LOG_WARN, "worker", "refused %s %s from %s: missing or wrong bearer token (%lld refused so far)",
               method, url, ip, (long long)n);
}

static enum MHD_Result serve_models(ss_worker_t *w, struct MHD_Connection *c, const char *one)
{
    ss_buf_t b = SS_BUF_INIT;
    const char *tmpl = w->model ? ss_llm_chat_format(w->model) : NULL;
    int found = 0;
    if (!one)
        ss_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < w->nnames; i++) {
        if (one && strcmp(one, w->names[i]))
            continue;
        ss_buf_puts(&b, found++ ? ",{\"id\":" : "{\"id\":");
        ss_json_put_str_utf8(&b, w->names[i], strlen(w->names[i]));
        ss_buf_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"semstream\",\"semstream_chat_template\":",
                      (long long)(w->started_ms / 1000));
        ss_buf_puts(&b, tmpl ? "\"" : "null");
        if (tmpl)
            ss_buf_printf(&b, "%s\"", tmpl);
        if (w->model)
            ss_buf_printf(&b, ",\"context_length\":%d", ss_llm_config(w->model)->ctx_len);
        ss_buf_putc(&b, '}');
        if (one)
            break;
    }
    if (!one)
        ss_buf_puts(&b, "]}");
    enum MHD_Result rc;
    if (one && !found) {
        char msg[SS_ERRSZ];
        snprintf(msg, sizeof msg, "The model '%s' does not exist: this worker serves '%s'", one, w->names[0]);
        rc = reply_error(w, c, 404, msg, "model", "model_not_found");
    } else
        rc = reply(c, 200, "application/json", ss_buf_cstr(&b), b.len, 0);
    ss_buf_free(&b);
    return rc;
}

static enum MHD_Result serve_metrics(ss_worker_t *w, struct MHD_Connection *c)
{
    ss_buf_t b = SS_BUF_INIT;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    static const char *const st[8] = {"400", "401", "404", "405", "413", "429", "5xx", "4xx"};
    pthread_mutex_lock(&w->mu);
    ss_buf_printf(&b,
                  "# TYPE semstream_worker_requests_total counter\nsemstream_worker_requests_total %lld\n"
                  "# TYPE semstream_worker_rejected_total counter\nsemstream_worker_rejected_total %lld\n"
                  "# TYPE semstream_worker_errors_total counter\nsemstream_worker_errors_total %lld\n"
                  "# TYPE semstream_worker_batches_total counter\nsemstream_worker_batches_total %lld\n"
                  "# TYPE semstream_worker_batched_requests_total counter\nsemstream_worker_batched_requests_total %lld\n"
                  "# TYPE semstream_worker_inferences_total counter\nsemstream_worker_inferences_total %lld\n"
                  "# TYPE semstream_worker_prompt_tokens_total counter\nsemstream_worker_prompt_tokens_total %lld\n"
                  "# TYPE semstream_worker_generated_tokens_total counter\nsemstream_worker_generated_tokens_total %lld\n"
                  "# TYPE semstream_worker_busy_seconds_total counter\nsemstream_worker_busy_seconds_total %.6f\n"
                  "# TYPE semstream_worker_queue_depth gauge\nsemstream_worker_queue_depth %d\n"
                  "# TYPE semstream_worker_running_sequences gauge\nsemstream_worker_running_sequences %d\n"
                  "# TYPE semstream_worker_steps_total counter\nsemstream_worker_steps_total %lld\n"
                  "# TYPE semstream_worker_continuous gauge\nsemstream_worker_continuous %d\n"
                  "# TYPE semstream_worker_streams_total counter\nsemstream_worker_streams_total %lld\n"
                  "# TYPE semstream_worker_cache_hits_total counter\nsemstream_worker_cache_hits_total %lld\n"
                  "# TYPE semstream_worker_cache_stored_total counter\nsemstream_worker_cache_stored_total %lld\n"
                  "# TYPE semstream_worker_cache_errors_total counter\nsemstream_worker_cache_errors_total %lld\n"
                  "# TYPE semstream_worker_auth_failures_total counter\nsemstream_worker_auth_failures_total %lld\n"
                  "# TYPE semstream_worker_connections gauge\nsemstream_worker_connections %u\n",
                  (long long)w->m_requests, (long long)w->m_rejected, (long long)w->m_errors, (long long)w->m_batches,
                  (long long)w->m_batched_reqs, (long long)w->m_inferences, (long long)w->m_prompt_tok,
                  (long long)w->m_gen_tok, w->m_busy_ns / 1e9, w->queued, w->running, (long long)w->m_steps,
                  w->continuous, (long long)w->m_streams, (long long)w->m_cache_hits, (long long)w->m_cache_puts,
                  (long long)w->m_cache_errors, (long long)w->m_auth_fail, di ? di->num_connections : 0);
    ss_buf_puts(&b, "# TYPE semstream_worker_error_responses_total counter\n");
    for (int i = 0; i < 8; i++)
        ss_buf_printf(&b, "semstream_worker_error_responses_total{status=\"%s\"} %lld\n", st[i],
                      (long long)w->m_status[i]);
    pthread_mutex_unlock(&w->mu);
    enum MHD_Result rc = reply(c, 200, "text/plain; version=0.0.4", ss_buf_cstr(&b), b.len, 0);
    ss_buf_free(&b);
    return rc;
}

static int endpoint_of(const char *url)
{
    return !strcmp(url, "/v1/completions") ? EP_COMPLETIONS : !strcmp(url, "/v1/chat/completions") ? EP_CHAT
           : !strcmp(url, "/v1/embeddings") ? EP_EMBEDDINGS : -1;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    ss_worker_t *w = cls;
    (void)version;
    conn_t *cc = *con_cls;
    if (!cc) {
        cc = calloc(1, sizeof *cc);
        if (!cc)
            return MHD_NO;
        *con_cls = cc;
        return MHD_YES;
    }
    if (cc->call) /* resumed: the engine has the answer */
        return wait_or_reply(w, c, cc->call);
    if (*upload_size) {
        if (cc->too_big || cc->body.len + *upload_size > w->o.max_body || ss_buf_append(&cc->body, upload, *upload_size))
            cc->too_big = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    int post = !strcmp(method, "POST"), get = !strcmp(method, "GET"), ep = endpoint_of(url);
    if (!strcmp(url, "/health")) { /* open to anyone: liveness probes */
        if (!get)
            return reply_error(w, c, 405, "method not allowed", NULL, NULL);
        char body[160];
        pthread_mutex_lock(&w->mu);
        int n = snprintf(body, sizeof body, "{\"status\":\"%s\",\"queue\":%d,\"running\":%d}",
                         w->stopping ? "stopping" : "ok", w->queued, w->running);
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->mu);
        return reply(c, stopping ? 503 : 200, "application/json", body, (size_t)n, 0);
    }
    if (w->token && !auth_ok(w, c)) {
        log_refused(w, c, method, url);
        return reply_error(w, c, 401, "missing or wrong API key: send Authorization: Bearer <token>", NULL,
                           "invalid_api_key");
    }
    if (ep >= 0 && post)
        return start_call(w, c, cc, ep);
    if (get && !strcmp(url, "/metrics"))
        return serve_metrics(w, c);
    if (get && !strcmp(url, "/v1/models"))
        return serve_models(w, c, NULL);
    if (get && !strncmp(url, "/v1/models/", 11))
        return serve_models(w, c, url + 11);
    if (ep >= 0 || !strcmp(url, "/v1/models") || !strcmp(url, "/metrics"))
        return reply_error(w, c, 405, "method not allowed", NULL, NULL);
    return reply_error(w, c, 404, "no such endpoint", NULL, NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    ss_worker_t *w = cls;
    (void)c, (void)t;
    conn_t *cc = *con_cls;
    if (!cc)
        return;
    if (cc->call) {
        pthread_mutex_lock(&w->mu);
        cc->call->conn = NULL; /* the engine finishes it anyway (and stores it) */
        cc->call->suspended = 0;
        w->open_calls--;
        call_unref(w, cc->call);
        pthread_mutex_unlock(&w->mu);
    }
    ss_buf_free(&cc->body);
    free(cc);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = 0;
    ss_log(SS_LOG_DEBUG, "worker", "http: %s", buf);
}

/* ------------------------------------------------------------ lifecycle */

static int add_name(ss_worker_t *w, const char *name)
{
    for (int i = 0; i < w->nnames; i++)
        if (!strcmp(w->names[i], name))
            return SS_OK;
    char **p = realloc(w->names, (size_t)(w->nnames + 1) * sizeof *p);
    if (!p)
        return SS_ERR_NOMEM;
    w->names = p;
    if (!(w->names[w->nnames] = ss_strdup(name)))
        return SS_ERR_NOMEM;
    w->nnames++;
    return SS_OK;
}

static void set_defaults(ss_worker_t *w)
{
    ss_worker_opts_t *o = &w->o;
    if (!o->host)
        o->host = "127.0.0.1";
    if (o->max_queue <= 0)
        o->max_queue = 256;
    if (o->max_batch <= 0)
        o->max_batch = 32;
    if (o->batch_wait_ms < 0)
        o->batch_wait_ms = 0;
    if (!o->max_body)
        o->max_body = 1 << 20;
    if (o->max_tokens_limit <= 0)
        o->max_tokens_limit = 2048;
    if (o->idle_timeout_s <= 0)
        o->idle_timeout_s = 30;
    if (o->max_connections <= 0)
        o->max_connections = 1024;
    if (o->http_threads <= 0)
        o->http_threads = 4;
}

static int start_threads(ss_worker_t *w)
{
    void *(*fn)(void *) = w->continuous ? engine_main : batch_main;
    if (pthread_create(&w->engine, NULL, fn, w))
        return -1;
    w->have_engine = 1;
    if (w->cache) {
        if (pthread_create(&w->writer, NULL, writer_main, w))
            return -1;
        w->have_writer = 1;
    }
    return 0;
}

int ss_worker_start(const ss_worker_opts_t *o, ss_infer_backend_t *backend, ss_worker_t **out, char *err,
                    size_t errsz)
{
    *out = NULL;
    ss_worker_t *w = calloc(1, sizeof *w);
    if (!w) {
        backend->destroy(backend);
        if (o->cache && o->cache->close)
            o->cache->close(o->cache->ctx);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    w->o = *o;
    set_defaults(w);
    w->be = backend;
    w->cache = o->cache;
    w->started_ms = ss_wall_ms();
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->wcv, NULL);
    w->model = ss_backend_llm_model(backend);
    w->continuous = w->model && !w->o.whole_batch;
    int rc = add_name(w, o->model_name ? o->model_name : "semstream");
    for (int i = 0; !rc && i < o->naliases; i++)
        rc = add_name(w, o->aliases[i]);
    if (!rc && o->auth_token && !(w->token = ss_strdup(o->auth_token)))
        rc = SS_ERR_NOMEM;
    if (rc) {
        ss_worker_stop(w);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    w->o.auth_token = NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, w->o.host, &sa.sin_addr) != 1) {
        ss_worker_stop(w);
        return ss_seterr(err, errsz, SS_ERR_INVALID, "bad listen address '%s' (an IPv4 address is expected)",
                         o->host);
    }
    if (start_threads(w)) {
        ss_worker_stop(w);
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "cannot start the worker's threads");
    }
    w->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                                  MHD_USE_ERROR_LOG,
                              (uint16_t)o->port, NULL, NULL, handler, w, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_NOTIFY_COMPLETED, completed, w, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)w->o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)w->o.idle_timeout_s, MHD_OPTION_THREAD_POOL_SIZE,
                              (unsigned)w->o.http_threads, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                              MHD_OPTION_END);
    if (!w->mhd) {
        ss_worker_stop(w);
        return ss_seterr(err, errsz, SS_ERR_IO, "cannot listen on %s:%d (address in use?)", o->host ? o->host : "127.0.0.1",
                         o->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_BIND_PORT);
    w->port = info ? info->port : o->port;
    *out = w;
    return SS_OK;
}

int ss_worker_port(const ss_worker_t *w) { return w->port; }

void ss_worker_stop(ss_worker_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1; /* new calls get 503; queued ones are still answered */
    w->exit_engine = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->have_engine)
        pthread_join(w->engine, NULL); /* drains the queue and the running requests first */
    pthread_mutex_lock(&w->mu);
    w->exit_writer = 1;
    pthread_cond_broadcast(&w->wcv);
    pthread_mutex_unlock(&w->mu);
    if (w->have_writer)
        pthread_join(w->writer, NULL);
    /* let the answers go out (at most 5 s) */
    for (int i = 0; w->mhd && i < 1000; i++) {
        pthread_mutex_lock(&w->mu);
        int open = w->open_calls;
        pthread_mutex_unlock(&w->mu);
        if (!open)
            break;
        usleep(5000);
    }
    if (w->mhd)
        MHD_stop_daemon(w->mhd);
    if (w->be)
        w->be->destroy(w->be);
    if (w->cache && w->cache->close)
        w->cache->close(w->cache->ctx);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->wcv);
    for (int i = 0; i < w->nnames; i++)
        free(w->names[i]);
    free(w->names);
    free(w->token);
    free(w);
}
