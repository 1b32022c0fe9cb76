/*
 * ss_worker.h — the inference worker: an HTTP server speaking the
 * OpenAI-compatible endpoints the dispatcher's `openai` backend uses
 * (/v1/completions with logprobs, /v1/embeddings, /v1/models, /health,
 * /metrics), in front of one model backend. Requests go through a bounded queue
 * to an engine thread; a full queue answers 429 with Retry-After. In front of the
 * in-process engine (local/cuda backends) that thread batches continuously: new
 * requests join the running batch between steps (ss_llm_step), so a short request
 * is not held up by a long GENERATE; other backends get whole batches.
 *
 * semstream extensions (ignored by other OpenAI servers, used by our backend):
 * a completion request may carry "semstream_choices": [..] (answered with
 * "semstream_probs": [..], exactly the local CHOOSE) or "semstream_score": [lo, hi]
 * (answered with "semstream_score_value"); see docs/WORKER.md.
 */
#ifndef SS_WORKER_H
#define SS_WORKER_H

#include "ss_infer.h"

typedef struct ss_worker_opts {
    const char *host;        /* listen address, default 127.0.0.1 */
    int port;                /* 0 = pick a free port (see ss_worker_port) */
    const char *model_name;  /* name reported by /v1/models */
    int max_queue;           /* queued requests before 429 (default 256) */
    int max_batch;           /* requests per backend call, or running at once when batching
                                continuously (default 32) */
    int batch_wait_ms;       /* wait to fill a batch once one request is queued (default 2) */
    size_t max_body;         /* largest request body in bytes (default 1 MiB) */
    int max_tokens_limit;    /* cap on max_tokens (default 2048) */
    int whole_batch;         /* 1: answer whole batches with one backend call (the mode used
                                anyway for backends that are not the in-process engine) */
    int step_tokens;         /* continuous mode: token budget of a step (0 = the model's ubatch) */
} ss_worker_opts_t;

typedef struct ss_worker ss_worker_t;

/* Starts serving; takes ownership of backend (also on failure). */
int ss_worker_start(const ss_worker_opts_t *o, ss_infer_backend_t *backend, ss_worker_t **out, char *err,
                    size_t errsz);
int ss_worker_port(const ss_worker_t *w);
/* Stops accepting, finishes queued requests, frees everything. NULL-safe. */
void ss_worker_stop(ss_worker_t *w);

#endif
