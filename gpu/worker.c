/*
 * worker.c — implements ss_worker.h: an OpenAI-compatible HTTP server
 * (libmicrohttpd, a thread per connection) in front of one model backend.
 *
 * Each HTTP request becomes a job of one or more inference requests, queued in
 * a bounded FIFO (full -> 429 + Retry-After). One engine thread takes jobs off
 * the queue (when idle, waiting a moment to gather concurrent ones):
 *  - continuous mode (the in-process engine, gpu/llm_sched.c): the thread loops
 *    { admit queued jobs while fewer than max_batch requests run, ss_llm_step,
 *    signal the jobs whose requests all completed }, so requests join the running
 *    batch between steps and a short one is answered while a long GENERATE decodes;
 *  - whole-batch mode (other backends, or opts.whole_batch): up to max_batch
 *    requests are answered with a single backend call.
 * Either way concurrent clients share forward passes. Shutdown refuses new work
 * (503), drains the queue and the running requests, then stops.
 */
#include "ss_worker.h"

#include "ss_json.h"
#include "ss_llm.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    ss_infer_req_t *reqs;
    ss_infer_res_t *res;
    int n;
    int done;
    int status;        /* SS_OK, or the batch's failure */
    char err[SS_ERRSZ];
    int left;          /* continuous mode: requests submitted to the engine and not completed */
    pthread_cond_t cv;
    struct job *next;
} job_t;

struct ss_worker {
    ss_worker_opts_t o;
    char *model_name;
    ss_infer_backend_t *be;
    struct MHD_Daemon *mhd;
    int port;
    pthread_t batcher;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* signalled when a job is queued or on stop */
    job_t *head, *tail;
    int queued;
    int stopping, batcher_exit;
    ss_llm_t *llm;       /* the engine behind be when batching continuously, else NULL */
    int running;         /* requests admitted to the engine and not completed */
    /* metrics */
    int64_t m_requests, m_rejected, m_errors, m_batches, m_batched_reqs, m_prompt_tok, m_gen_tok, m_busy_ns;
    int64_t m_steps;
    int64_t started_ms;
};

/* ------------------------------------------------------------ queue and batching */

static int enqueue(ss_worker_t *w, job_t *j)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopping || w->queued >= w->o.max_queue) {
        int stopping = w->stopping;
        w->m_rejected++;
        pthread_mutex_unlock(&w->mu);
        return stopping ? SS_ERR_INVALID : SS_ERR_BUSY;
    }
    j->next = NULL;
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->queued++;
    w->m_requests++;
    pthread_cond_signal(&w->cv);
    while (!j->done)
        pthread_cond_wait(&j->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return SS_OK;
}

/* Waits up to batch_wait_ms for more jobs to arrive; called with mu held. */
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

/* Moves the queue's head job to the end of the list first..last; called with mu held. */
static job_t *pop_job(ss_worker_t *w, job_t **first, job_t **last)
{
    job_t *j = w->head;
    w->head = j->next;
    if (!w->head)
        w->tail = NULL;
    w->queued--;
    j->next = NULL;
    if (*last)
        (*last)->next = j;
    else
        *first = j;
    *last = j;
    return j;
}

/* Pops jobs until max_batch requests are collected; called with mu held. */
static job_t *take_batch(ss_worker_t *w, int *nreq)
{
    job_t *first = NULL, *last = NULL;
    *nreq = 0;
    while (w->head && (*nreq == 0 || *nreq + w->head->n <= w->o.max_batch))
        *nreq += pop_job(w, &first, &last)->n;
    return first;
}

static void run_batch(ss_worker_t *w, job_t *jobs, int nreq)
{
    ss_infer_req_t *reqs = calloc((size_t)nreq, sizeof *reqs);
    ss_infer_res_t *res = calloc((size_t)nreq, sizeof *res);
    char err[SS_ERRSZ] = "";
    int rc = (!reqs || !res) ? SS_ERR_NOMEM : SS_OK;
    int k = 0;
    for (job_t *j = jobs; j && !rc; j = j->next)
        for (int i = 0; i < j->n; i++)
            reqs[k++] = j->reqs[i];
    int64_t t0 = ss_now_ns();
    if (!rc)
        rc = w->be->run(w->be, reqs, nreq, res, err, sizeof err);
    int64_t dt = ss_now_ns() - t0;
    pthread_mutex_lock(&w->mu);
    w->m_batches++;
    w->m_batched_reqs += nreq;
    w->m_busy_ns += dt;
    w->running = 0; /* before any job is signalled */
    k = 0;
    for (job_t *j = jobs; j; j = j->next) {
        for (int i = 0; i < j->n; i++, k++)
            if (res) {
                j->res[i] = res[k]; /* ownership of the result's fields moves to the job */
                w->m_prompt_tok += res[k].prompt_tokens;
                w->m_gen_tok += res[k].gen_tokens;
            }
        j->status = rc;
        if (rc)
            snprintf(j->err, sizeof j->err, "%s", err[0] ? err : ss_err2str((ss_err_t)rc));
    }
    for (job_t *j = jobs, *nx; j; j = nx) {
        nx = j->next;
        j->done = 1;
        pthread_cond_signal(&j->cv);
    }
    pthread_mutex_unlock(&w->mu);
    free(reqs);
    free(res);
}

static void *batcher_main(void *arg)
{
    ss_worker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->batcher_exit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head && w->batcher_exit)
            break;
        gather_wait(w); /* give concurrent clients a moment to join this batch */
        int nreq;
        job_t *jobs = take_batch(w, &nreq);
        if (!jobs)
            continue;
        w->running = nreq;
        pthread_mutex_unlock(&w->mu);
        run_batch(w, jobs, nreq);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ------------------------------------------------------------ continuous batching */

/* Engine callback (engine thread, mu not held): one request of job ctx completed. */
static void req_done(void *ctx, ss_infer_res_t *res, int rc)
{
    job_t *j = ctx;
    if (rc && !j->status) {
        j->status = rc;
        snprintf(j->err, sizeof j->err, "%s", res->error ? res->error : ss_err2str((ss_err_t)rc));
    }
    j->left--;
}

/* Pops queued jobs while fewer than max_batch requests would run (a job larger than
 * max_batch runs alone); called with mu held. */
static job_t *admit(ss_worker_t *w)
{
    job_t *first = NULL, *last = NULL;
    int nreq = 0;
    while (w->head && (w->running == 0 || w->running + w->head->n <= w->o.max_batch)) {
        int n = pop_job(w, &first, &last)->n;
        w->running += n;
        nreq += n;
    }
    if (nreq) {
        w->m_batches++;
        w->m_batched_reqs += nreq;
    }
    return first;
}

/* Submits the requests of the admitted jobs (engine thread, mu not held). */
static void submit_jobs(ss_worker_t *w, job_t *jobs)
{
    for (job_t *j = jobs; j; j = j->next)
        for (int i = 0; i < j->n; i++) {
            char err[SS_ERRSZ] = "";
            int rc = ss_llm_submit(w->llm, &j->reqs[i], &j->res[i], req_done, j, err, sizeof err);
            if (rc == SS_OK) {
                j->left++;
            } else if (!j->status) {
                j->status = rc;
                snprintf(j->err, sizeof j->err, "%s", err[0] ? err : ss_err2str((ss_err_t)rc));
            }
        }
}

/* Signals every running job whose requests all completed; called with mu held. */
static void finish_jobs(ss_worker_t *w, job_t **run)
{
    for (job_t **pp = run; *pp;) {
        job_t *j = *pp;
        if (j->left > 0) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        for (int i = 0; i < j->n; i++) {
            w->m_prompt_tok += j->res[i].prompt_tokens;
            w->m_gen_tok += j->res[i].gen_tokens;
        }
        w->running -= j->n;
        j->done = 1;
        pthread_cond_signal(&j->cv);
    }
}

static void *engine_main(void *arg)
{
    ss_worker_t *w = arg;
    job_t *run = NULL, **tail = &run; /* admitted jobs, oldest first */
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !run && !w->batcher_exit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head && !run && w->batcher_exit)
            break;
        if (!run) /* idle: give concurrent clients a moment to join the first step */
            gather_wait(w);
        job_t *adm = admit(w);
        pthread_mutex_unlock(&w->mu);
        submit_jobs(w, adm);
        *tail = adm;
        char err[SS_ERRSZ] = "";
        int64_t t0 = ss_now_ns();
        ss_llm_step(w->llm, w->o.step_tokens, err, sizeof err); /* a failure reaches the jobs via req_done */
        int64_t dt = ss_now_ns() - t0;
        pthread_mutex_lock(&w->mu);
        w->m_steps++;
        w->m_busy_ns += dt;
        finish_jobs(w, &run);
        for (tail = &run; *tail; tail = &(*tail)->next)
            ;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ------------------------------------------------------------ HTTP plumbing */

typedef struct conn {
    ss_buf_t body;
    int too_big;
} conn_t;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, const char *body,
                             size_t len, int retry_after)
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
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned code, const char *type, const char *msg)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, "{\"error\":{\"message\":");
    ss_json_put_str_utf8(&b, msg, strlen(msg));
    ss_buf_printf(&b, ",\"type\":\"%s\",\"code\":%u}}", type, code);
    enum MHD_Result rc = reply(c, code, "application/json", ss_buf_cstr(&b), b.len, code == 429 ? 1 : 0);
    ss_buf_free(&b);
    return rc;
}

static int json_int(const ss_json_t *v, int64_t dflt)
{
    if (!v)
        return (int)dflt;
    if (v->t == SS_JSON_INT)
        return (int)v->u.i;
    if (v->t == SS_JSON_REAL)
        return (int)v->u.r;
    return (int)dflt;
}

static double json_num(const ss_json_t *v, double dflt)
{
    if (!v)
        return dflt;
    if (v->t == SS_JSON_INT)
        return (double)v->u.i;
    if (v->t == SS_JSON_REAL)
        return v->u.r;
    return dflt;
}

/* The prompt(s) of a request: a string or an array of strings. */
static int collect_strings(const ss_json_t *v, const char ***out, int *n, char *err, size_t errsz, const char *what)
{
    *out = NULL;
    *n = 0;
    if (!v)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "missing \"%s\"", what);
    if (v->t == SS_JSON_STRING) {
        *out = malloc(sizeof **out);
        if (!*out)
            return SS_ERR_NOMEM;
        (*out)[0] = v->u.str.s;
        *n = 1;
        return SS_OK;
    }
    if (v->t != SS_JSON_ARRAY || v->u.arr.n == 0 || v->u.arr.n > 4096)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "\"%s\" must be a string or a non-empty array of strings",
                         what);
    *out = calloc(v->u.arr.n, sizeof **out);
    if (!*out)
        return SS_ERR_NOMEM;
    for (size_t i = 0; i < v->u.arr.n; i++) {
        if (v->u.arr.items[i].t != SS_JSON_STRING) {
            free(*out);
            *out = NULL;
            return ss_seterr(err, errsz, SS_ERR_INVALID, "\"%s\"[%zu] is not a string", what, i);
        }
        (*out)[i] = v->u.arr.items[i].u.str.s;
    }
    *n = (int)v->u.arr.n;
    return SS_OK;
}

/* Builds the job's requests from a /v1/completions or /v1/embeddings body. */
typedef struct parsed {
    const char **prompts;
    int n;
    const char **choices; /* semstream_choices */
    int nchoices;
    int embed;
} parsed_t;

static int parse_request(ss_worker_t *w, const ss_json_t *root, int embed, parsed_t *p, ss_infer_req_t **reqs,
                         char *err, size_t errsz)
{
    memset(p, 0, sizeof *p);
    p->embed = embed;
    if (!root || root->t != SS_JSON_OBJECT)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "request body must be a JSON object");
    int rc = collect_strings(ss_json_get(root, embed ? "input" : "prompt"), &p->prompts, &p->n, err, errsz,
                             embed ? "input" : "prompt");
    if (rc)
        return rc;
    ss_infer_req_t base;
    memset(&base, 0, sizeof base);
    base.kind = embed ? SS_INFER_EMBED : SS_INFER_GENERATE;
    if (!embed) {
        base.max_tokens = json_int(ss_json_get(root, "max_tokens"), 16);
        if (base.max_tokens < 0 || base.max_tokens > w->o.max_tokens_limit)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "max_tokens must be between 0 and %d",
                             w->o.max_tokens_limit);
        base.temperature = (float)json_num(ss_json_get(root, "temperature"), 1.0);
        base.seed = (uint64_t)json_int(ss_json_get(root, "seed"), 0);
        const ss_json_t *stop = ss_json_get(root, "stop");
        if (stop && stop->t == SS_JSON_STRING)
            base.stop = stop->u.str.s;
        else if (stop && stop->t == SS_JSON_ARRAY && stop->u.arr.n > 0 && stop->u.arr.items[0].t == SS_JSON_STRING)
            base.stop = stop->u.arr.items[0].u.str.s;
        base.top_logprobs = json_int(ss_json_get(root, "logprobs"), 0);
        if (base.top_logprobs < 0 || base.top_logprobs > 20)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "logprobs must be between 0 and 20");
        const ss_json_t *ch = ss_json_get(root, "semstream_choices");
        const ss_json_t *sc = ss_json_get(root, "semstream_score");
        if (ch) {
            if ((rc = collect_strings(ch, &p->choices, &p->nchoices, err, errsz, "semstream_choices")))
                return rc;
            base.kind = SS_INFER_CHOOSE;
            base.nchoices = p->nchoices;
            base.choices = p->choices;
        } else if (sc) {
            if (sc->t != SS_JSON_ARRAY || sc->u.arr.n != 2)
                return ss_seterr(err, errsz, SS_ERR_INVALID, "semstream_score must be [min, max]");
            base.kind = SS_INFER_SCORE;
            base.score_min = json_int(&sc->u.arr.items[0], 1);
            base.score_max = json_int(&sc->u.arr.items[1], 10);
            if (base.score_min < 0 || base.score_max > 100 || base.score_min >= base.score_max)
                return ss_seterr(err, errsz, SS_ERR_INVALID, "semstream_score range must satisfy 0 <= min < max <= 100");
        }
    }
    *reqs = calloc((size_t)p->n, sizeof **reqs);
    if (!*reqs)
        return SS_ERR_NOMEM;
    for (int i = 0; i < p->n; i++) {
        (*reqs)[i] = base;
        (*reqs)[i].prompt = p->prompts[i];
    }
    return SS_OK;
}

static void render_completion(ss_worker_t *w, const parsed_t *p, const ss_infer_req_t *reqs, ss_infer_res_t *res,
                              ss_buf_t *b)
{
    int64_t ptok = 0, gtok = 0;
    ss_buf_printf(b, "{\"id\":\"cmpl-%llx\",\"object\":\"text_completion\",\"created\":%lld,\"model\":",
                  (unsigned long long)ss_now_ns(), (long long)(ss_wall_ms() / 1000));
    ss_json_put_str_utf8(b, w->model_name, strlen(w->model_name));
    ss_buf_puts(b, ",\"choices\":[");
    for (int i = 0; i < p->n; i++) {
        const ss_infer_res_t *r = &res[i];
        ptok += r->prompt_tokens;
        gtok += r->gen_tokens;
        ss_buf_printf(b, "%s{\"index\":%d,\"text\":", i ? "," : "", i);
        const char *text = r->text ? r->text : "";
        ss_json_put_str_utf8(b, text, strlen(text));
        if (reqs[i].kind == SS_INFER_CHOOSE) {
            ss_buf_puts(b, ",\"semstream_probs\":[");
            for (int k = 0; k < r->nprobs; k++)
                ss_buf_printf(b, "%s%.9g", k ? "," : "", r->probs[k]);
            ss_buf_putc(b, ']');
        } else if (reqs[i].kind == SS_INFER_SCORE)
            ss_buf_printf(b, ",\"semstream_score_value\":%.9g", r->score);
        if (reqs[i].top_logprobs > 0 && r->ntop > 0) {
            ss_buf_puts(b, ",\"logprobs\":{\"top_logprobs\":[{");
            for (int k = 0; k < r->ntop; k++) {
                if (k)
                    ss_buf_putc(b, ',');
                ss_json_put_str_utf8(b, r->top_tokens[k], strlen(r->top_tokens[k]));
                ss_buf_printf(b, ":%.9g", r->top_logprobs[k]);
            }
            ss_buf_puts(b, "}],\"token_logprobs\":[");
            for (int k = 0; k < r->gen_tokens && r->token_logprobs; k++)
                ss_buf_printf(b, "%s%.9g", k ? "," : "", r->token_logprobs[k]);
            ss_buf_puts(b, "]}");
        } else
            ss_buf_puts(b, ",\"logprobs\":null");
        ss_buf_printf(b, ",\"finish_reason\":\"%s\"}",
                      reqs[i].kind == SS_INFER_GENERATE && r->gen_tokens >= reqs[i].max_tokens ? "length" : "stop");
    }
    ss_buf_printf(b, "],\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}}",
                  (long long)ptok, (long long)gtok, (long long)(ptok + gtok));
}

static void render_embeddings(ss_worker_t *w, const parsed_t *p, ss_infer_res_t *res, ss_buf_t *b)
{
    int64_t ptok = 0;
    ss_buf_puts(b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < p->n; i++) {
        ptok += res[i].prompt_tokens;
        ss_buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":[", i ? "," : "", i);
        for (int k = 0; k < res[i].dim; k++)
            ss_buf_printf(b, "%s%.8g", k ? "," : "", res[i].emb[k]);
        ss_buf_puts(b, "]}");
    }
    ss_buf_puts(b, "],\"model\":");
    ss_json_put_str_utf8(b, w->model_name, strlen(w->model_name));
    ss_buf_printf(b, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)ptok,
                  (long long)ptok);
}

static enum MHD_Result serve_inference(ss_worker_t *w, struct MHD_Connection *c, const conn_t *cc, int embed)
{
    char err[SS_ERRSZ] = "";
    ss_json_doc_t *doc = NULL;
    size_t pos;
    if (ss_json_parse(cc->body.data ? cc->body.data : "", cc->body.len, 64, &doc, &pos, err, sizeof err)) {
        char msg[SS_ERRSZ + 32];
        snprintf(msg, sizeof msg, "invalid JSON: %s", err);
        return reply_error(c, 400, "invalid_request_error", msg);
    }
    parsed_t p;
    ss_infer_req_t *reqs = NULL;
    int rc = parse_request(w, ss_json_root(doc), embed, &p, &reqs, err, sizeof err);
    enum MHD_Result out;
    if (rc) {
        out = reply_error(c, 400, "invalid_request_error", err);
        goto done;
    }
    job_t j;
    memset(&j, 0, sizeof j);
    j.reqs = reqs;
    j.n = p.n;
    j.res = calloc((size_t)p.n, sizeof *j.res);
    pthread_cond_init(&j.cv, NULL);
    rc = j.res ? enqueue(w, &j) : SS_ERR_NOMEM;
    if (rc == SS_ERR_BUSY)
        out = reply_error(c, 429, "rate_limit_error", "worker queue is full; retry later");
    else if (rc == SS_ERR_INVALID)
        out = reply_error(c, 503, "server_error", "worker is shutting down");
    else if (rc || j.status) {
        pthread_mutex_lock(&w->mu);
        w->m_errors++;
        pthread_mutex_unlock(&w->mu);
        out = reply_error(c, 500, "server_error", rc ? ss_err2str((ss_err_t)rc) : j.err);
    } else {
        int bad = -1;
        for (int i = 0; i < p.n && bad < 0; i++)
            if (j.res[i].status)
                bad = i;
        if (bad >= 0)
            out = reply_error(c, 400, "invalid_request_error",
                              j.res[bad].error ? j.res[bad].error : ss_err2str((ss_err_t)j.res[bad].status));
        else {
            ss_buf_t b = SS_BUF_INIT;
            if (embed)
                render_embeddings(w, &p, j.res, &b);
            else
                render_completion(w, &p, reqs, j.res, &b);
            out = reply(c, 200, "application/json", ss_buf_cstr(&b), b.len, 0);
            ss_buf_free(&b);
        }
    }
    for (int i = 0; j.res && i < p.n; i++)
        ss_infer_res_clear(&j.res[i]);
    free(j.res);
    pthread_cond_destroy(&j.cv);
done:
    free(reqs);
    free(p.prompts);
    free(p.choices);
    ss_json_free(doc);
    return out;
}

static enum MHD_Result serve_metrics(ss_worker_t *w, struct MHD_Connection *c)
{
    ss_buf_t b = SS_BUF_INIT;
    pthread_mutex_lock(&w->mu);
    ss_buf_printf(&b,
                  "# TYPE semstream_worker_requests_total counter\nsemstream_worker_requests_total %lld\n"
                  "# TYPE semstream_worker_rejected_total counter\nsemstream_worker_rejected_total %lld\n"
                  "# TYPE semstream_worker_errors_total counter\nsemstream_worker_errors_total %lld\n"
                  "# TYPE semstream_worker_batches_total counter\nsemstream_worker_batches_total %lld\n"
                  "# TYPE semstream_worker_batched_requests_total counter\nsemstream_worker_batched_requests_total %lld\n"
                  "# TYPE semstream_worker_prompt_tokens_total counter\nsemstream_worker_prompt_tokens_total %lld\n"
                  "# TYPE semstream_worker_generated_tokens_total counter\nsemstream_worker_generated_tokens_total %lld\n"
                  "# TYPE semstream_worker_busy_seconds_total counter\nsemstream_worker_busy_seconds_total %.6f\n"
                  "# TYPE semstream_worker_queue_depth gauge\nsemstream_worker_queue_depth %d\n"
                  "# TYPE semstream_worker_running_sequences gauge\nsemstream_worker_running_sequences %d\n"
                  "# TYPE semstream_worker_steps_total counter\nsemstream_worker_steps_total %lld\n"
                  "# TYPE semstream_worker_continuous gauge\nsemstream_worker_continuous %d\n",
                  (long long)w->m_requests, (long long)w->m_rejected, (long long)w->m_errors, (long long)w->m_batches,
                  (long long)w->m_batched_reqs, (long long)w->m_prompt_tok, (long long)w->m_gen_tok,
                  w->m_busy_ns / 1e9, w->queued, w->running, (long long)w->m_steps, w->llm != NULL);
    pthread_mutex_unlock(&w->mu);
    enum MHD_Result rc = reply(c, 200, "text/plain; version=0.0.4", ss_buf_cstr(&b), b.len, 0);
    ss_buf_free(&b);
    return rc;
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
    if (*upload_size) {
        if (cc->body.len + *upload_size > w->o.max_body)
            cc->too_big = 1;
        else if (ss_buf_append(&cc->body, upload, *upload_size))
            cc->too_big = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    if (cc->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes", w->o.max_body);
        return reply_error(c, 413, "invalid_request_error", msg);
    }
    if (post && !strcmp(url, "/v1/completions"))
        return serve_inference(w, c, cc, 0);
    if (post && !strcmp(url, "/v1/embeddings"))
        return serve_inference(w, c, cc, 1);
    if (get && !strcmp(url, "/v1/models")) {
        ss_buf_t b = SS_BUF_INIT;
        ss_buf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
        ss_json_put_str_utf8(&b, w->model_name, strlen(w->model_name));
        ss_buf_printf(&b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"semstream\"}]}",
                      (long long)(w->started_ms / 1000));
        enum MHD_Result rc = reply(c, 200, "application/json", ss_buf_cstr(&b), b.len, 0);
        ss_buf_free(&b);
        return rc;
    }
    if (get && !strcmp(url, "/health")) {
        char body[128];
        pthread_mutex_lock(&w->mu);
        int n = snprintf(body, sizeof body, "{\"status\":\"%s\",\"queue\":%d,\"running\":%d}",
                         w->stopping ? "stopping" : "ok", w->queued, w->running);
        pthread_mutex_unlock(&w->mu);
        return reply(c, w->stopping ? 503 : 200, "application/json", body, (size_t)n, 0);
    }
    if (get && !strcmp(url, "/metrics"))
        return serve_metrics(w, c);
    if (!strcmp(url, "/v1/completions") || !strcmp(url, "/v1/embeddings") || !strcmp(url, "/v1/models") ||
        !strcmp(url, "/health") || !strcmp(url, "/metrics"))
        return reply_error(c, 405, "invalid_request_error", "method not allowed");
    return reply_error(c, 404, "invalid_request_error", "no such endpoint");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)c, (void)t;
    conn_t *cc = *con_cls;
    if (cc) {
        ss_buf_free(&cc->body);
        free(cc);
        *con_cls = NULL;
    }
}

/* ------------------------------------------------------------ lifecycle */

int ss_worker_start(const ss_worker_opts_t *o, ss_infer_backend_t *backend, ss_worker_t **out, char *err,
                    size_t errsz)
{
    *out = NULL;
    ss_worker_t *w = calloc(1, sizeof *w);
    if (!w) {
        backend->destroy(backend);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    w->o = *o;
    if (!w->o.host)
        w->o.host = "127.0.0.1";
    if (w->o.max_queue <= 0)
        w->o.max_queue = 256;
    if (w->o.max_batch <= 0)
        w->o.max_batch = 32;
    if (w->o.batch_wait_ms < 0)
        w->o.batch_wait_ms = 0;
    if (!w->o.max_body)
        w->o.max_body = 1 << 20;
    if (w->o.max_tokens_limit <= 0)
        w->o.max_tokens_limit = 2048;
    w->model_name = ss_strdup(o->model_name ? o->model_name : "semstream");
    w->be = backend;
    w->started_ms = ss_wall_ms();
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->llm = w->o.whole_batch ? NULL : ss_backend_llm_model(backend);
    if (pthread_create(&w->batcher, NULL, w->llm ? engine_main : batcher_main, w)) {
        w->batcher_exit = 2; /* no thread to join */
        ss_worker_stop(w);
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "cannot start the batching thread");
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, w->o.host, &sa.sin_addr) != 1) {
        ss_worker_stop(w);
        return ss_seterr(err, errsz, SS_ERR_INVALID, "bad listen address '%s' (an IPv4 address is expected)",
                         o->host);
    }
    w->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                              (uint16_t)o->port, NULL, NULL, handler, w, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_NOTIFY_COMPLETED, completed, w, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)(w->o.max_queue + 64), MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
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
    w->stopping = 1; /* new requests get 503; queued ones are still answered */
    pthread_mutex_unlock(&w->mu);
    if (w->batcher_exit != 2) {
        pthread_mutex_lock(&w->mu);
        w->batcher_exit = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->batcher, NULL); /* drains the queue first */
    }
    if (w->mhd)
        MHD_stop_daemon(w->mhd);
    if (w->be)
        w->be->destroy(w->be);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->model_name);
    free(w);
}
