/*
 * ss_worker.h — the inference worker: an HTTP server speaking the OpenAI API
 * (POST /v1/completions, /v1/chat/completions, /v1/embeddings; GET /v1/models,
 * /health, /metrics) in front of one model backend.
 *
 * - Chat completions render the conversation in the model's own chat template
 *   (gpu/ss_chat.h); both completion endpoints stream (server-sent events) with
 *   "stream": true; embeddings come as floats or base64; stop lists, n, echo
 *   (completions), logprobs as the OpenAI API defines them, and an unknown model
 *   name is a 404 like OpenAI's. Every error response is counted in /metrics.
 * - Requests go through a bounded queue (full: 429 with Retry-After) to one engine
 *   thread. In front of the in-process engine (local/cuda backends) it batches
 *   continuously: requests join the running batch between steps (ss_llm_step),
 *   admitted one request at a time from the call with the fewest running, so a
 *   short call is not held up by a long one; other backends get whole batches.
 * - HTTP runs on a few polling threads (epoll); a call waiting for the engine
 *   holds no thread, idle connections are closed after idle_timeout_s, bodies are
 *   bounded, and every numeric field is range-checked, so /health stays answerable.
 * - With auth_token, every endpoint but /health needs "Authorization: Bearer TOKEN".
 * - With a cache (runtime/worker_cache.c), answers are stored durably before they
 *   are sent, and a request already answered (even one whose client died before
 *   the answer came, e.g. an engine killed with requests in flight) is answered
 *   from it without running the model again.
 *
 * semstream extensions (ignored by other OpenAI servers, used by our backend):
 * a completion request may carry "semstream_choices": [..] (answered with
 * "semstream_probs": [..], exactly the local CHOOSE) or "semstream_score": [lo, hi]
 * (answered with "semstream_score_value"); GET /v1/models says owned_by
 * "semstream" and names the chat template ("semstream_chat_template").
 */
#ifndef SS_WORKER_H
#define SS_WORKER_H

#include "ss_infer.h"

/* A durable store of answers, keyed by the request (implemented above this layer:
 * runtime/worker_cache.c). Called from several threads. */
typedef struct ss_worker_cache {
    void *ctx;
    /* 1 and *res filled (owned, zeroed by the caller) when an answer to req is stored, else 0 */
    int (*get)(void *ctx, const char *model_id, const ss_infer_req_t *req, ss_infer_res_t *res);
    /* stores n answers durably (committed when it returns) */
    int (*put)(void *ctx, const char *model_id, const ss_infer_req_t *const *reqs, const ss_infer_res_t *const *res,
               int n, char *err, size_t errsz);
    void (*close)(void *ctx);
} ss_worker_cache_t;

typedef struct ss_worker_opts {
    const char *host;        /* listen address, default 127.0.0.1 */
    int port;                /* 0 = pick a free port (see ss_worker_port) */
    const char *model_name;  /* name reported by /v1/models and accepted in "model" */
    const char *const *aliases; /* further names accepted in "model" (naliases of them) */
    int naliases;
    int max_queue;           /* calls waiting for the engine before 429 (default 256) */
    int max_batch;           /* requests per backend call, or running at once when batching
                                continuously (default 32) */
    int batch_wait_ms;       /* wait to fill a batch once one request is queued (default 2) */
    size_t max_body;         /* largest request body in bytes (default 1 MiB) */
    int max_tokens_limit;    /* cap on max_tokens (default 2048) */
    int whole_batch;         /* 1: answer whole batches with one backend call (the mode used
                                anyway for backends that are not the in-process engine) */
    int step_tokens;         /* continuous mode: token budget of a step (0 = the model's ubatch) */
    const char *auth_token;  /* NULL: no authentication; else the Bearer token every endpoint
                                but /health requires (copied) */
    int idle_timeout_s;      /* close a connection idle this long (default 30) */
    int max_connections;     /* open connections at once (default 1024) */
    int http_threads;        /* HTTP polling threads (default 4) */
    ss_worker_cache_t *cache;/* durable answers (NULL: none); the worker calls its close when it
                                stops (also when it fails to start) */
} ss_worker_opts_t;

typedef struct ss_worker ss_worker_t;

/* Starts serving; takes ownership of backend and of o->cache (also on failure). */
int ss_worker_start(const ss_worker_opts_t *o, ss_infer_backend_t *backend, ss_worker_t **out, char *err,
                    size_t errsz);
int ss_worker_port(const ss_worker_t *w);
/* Stops accepting, finishes queued requests, frees everything. NULL-safe. */
void ss_worker_stop(ss_worker_t *w);

#endif
