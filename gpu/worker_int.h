/*
 * worker_int.h — what the worker's two files share: the server and its engine
 * thread (worker.c) and the OpenAI protocol layer (worker_api.c: parsing request
 * bodies into calls, rendering answers, JSON and server-sent events).
 *
 * A call is one HTTP request: nreq inference requests (prompts x n choices), the
 * answers, and what has been seen of each (wreq_t: the tokens reported by the
 * engine as they are produced, for streaming and per-token logprobs). A call is
 * owned jointly by its connection and the engine thread (refs); every field under
 * "progress" is guarded by the worker's mutex.
 */
#ifndef SS_WORKER_INT_H
#define SS_WORKER_INT_H

#include "ss_chat.h"
#include "ss_json.h"
#include "ss_llm.h"
#include "ss_worker.h"

#include <pthread.h>

struct MHD_Connection;

/* One generated token: its bytes in wreq.text, log-probability, and alternatives (ntop entries
 * in wreq.alts from offset alt, each: float logprob, uint32 length, bytes). */
typedef struct wtok {
    size_t off, len;
    float lp;
    int ntop;
    size_t alt;
} wtok_t;

typedef struct call call_t;

/* One inference request of a call (one choice of the answer). */
typedef struct wreq {
    call_t *call;
    ss_buf_t text;   /* the text of the tokens so far */
    wtok_t *tok;
    int ntok, cap;
    ss_buf_t alts;
    int finished;    /* the answer is in call->res[i] */
    int computed;    /* answered by the model (not the cache, not trivially) */
    /* streaming */
    size_t sent;     /* bytes of text sent */
    int sent_tok;    /* tokens sent */
    int opened;      /* first chunk sent */
    int closed;      /* last chunk sent */
} wreq_t;

enum { EP_COMPLETIONS, EP_CHAT, EP_EMBEDDINGS };

struct call {
    ss_worker_t *w;
    int ep;
    /* what was asked (worker_api.c) */
    ss_json_doc_t *doc;   /* the request body; reqs borrow strings from it and from owned */
    char *model;          /* the model name to answer with */
    int nprompt, n, nreq; /* nreq = nprompt * n, request i = prompt i / n, choice i % n */
    ss_infer_req_t *reqs;
    ss_infer_res_t *res;
    wreq_t *wr;
    char **owned;         /* strings made for the requests (rendered conversations) */
    int nowned;
    const char **stops;
    const char **choices;
    int stream, include_usage, echo, base64;
    int seeded;           /* the client gave the seed: sampled answers are reproducible */
    int logprobs;         /* completions: top-N (0..20) when given; chat: 1 when "logprobs": true */
    int logprobs_on;      /* per-token logprobs are to be returned */
    int top_logprobs;     /* chat: alternatives per token */
    char id[48];
    int64_t created;
    int64_t t0_ns;
    /* progress (under the worker's mutex) */
    int next;             /* next request to admit */
    int running;          /* admitted and not finished */
    int left;             /* not finished */
    int status;           /* SS_OK, or what failed the whole call */
    char err[SS_ERRSZ];
    int done;             /* every answer is in (and stored, with a cache) */
    int refs;             /* the connection, and the engine while requests are pending */
    struct MHD_Connection *conn; /* NULL once the client is gone */
    int suspended;        /* its connection waits for the engine */
    call_t *qnext;        /* the queue of calls with requests to admit */
    call_t *wnext;        /* the cache writer's queue */
    /* streaming output */
    ss_buf_t out;         /* server-sent events not yet handed to the connection */
    size_t out_off;
    int out_end;          /* the stream is complete once out is sent */
};

struct ss_worker {
    ss_worker_opts_t o;
    char **names;         /* model names accepted in "model": names[0] is the one reported */
    int nnames;
    char *token;          /* the Bearer token, or NULL */
    ss_infer_backend_t *be;
    ss_llm_t *model;      /* the in-process engine behind be, or NULL */
    int continuous;       /* 1: the engine thread batches continuously (ss_llm_step) */
    struct MHD_Daemon *mhd;
    int port;
    pthread_t engine, writer;
    int have_engine, have_writer;
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* engine: calls queued, or stop */
    pthread_cond_t wcv;   /* writer: finished calls to store, or stop */
    call_t *head, *tail;  /* calls with requests not yet admitted, oldest first */
    int queued;           /* requests waiting to be admitted */
    int qcalls;           /* calls in the queue (at most max_queue) */
    int running;          /* requests admitted to the engine and not finished */
    call_t *whead, *wtail;/* finished calls whose answers the writer stores */
    int stopping, exit_engine, exit_writer;
    int open_calls;       /* calls whose connection has not completed */
    ss_worker_cache_t *cache;
    /* metrics */
    int64_t m_requests, m_rejected, m_errors, m_batches, m_batched_reqs, m_prompt_tok, m_gen_tok, m_busy_ns;
    int64_t m_steps, m_inferences, m_cache_hits, m_cache_puts, m_cache_errors, m_streams, m_auth_fail;
    int64_t m_status[8];  /* error responses by status: 400, 401, 404, 405, 413, 429, 5xx, other 4xx */
    int64_t last_auth_log_ns;
    int64_t started_ms;
};

/* ---- worker_api.c ---- */
/* Parses an endpoint's JSON body into c (c->w, c->ep set; the rest zero). On failure returns an
 * HTTP status (400, 404, ...) with the message in err and, for OpenAI's error object, the
 * offending parameter in *param (static string or NULL) and an error code in *code. */
int wk_parse(call_t *c, const char *body, size_t len, const char **param, const char **code, char *err,
             size_t errsz);
/* Records a token reported by the engine for r; under the worker's mutex. */
void wk_add_token(wreq_t *r, const ss_infer_token_t *t);
/* The whole answer as JSON (non-streaming); every request finished. */
void wk_render(const call_t *c, ss_buf_t *out);
/* Appends the server-sent events that became available since the last call; sets c->out_end
 * when the stream is complete. Called with the worker's mutex held. */
void wk_stream(call_t *c, ss_buf_t *out);
/* The status and message of the first failed request of c (0 if none). */
int wk_failed(const call_t *c, const char **msg);
/* An OpenAI error object. */
void wk_error_json(ss_buf_t *b, const char *msg, const char *type, const char *param, const char *code);
void wk_call_free(call_t *c);

/* ---- worker.c ---- */
/* on_token callback of the calls' GENERATE requests (ctx: the request's wreq_t). */
void wk_token_cb(void *ctx, const ss_infer_token_t *t);

#endif
