/*
 * ss_backends.h — constructors of the remote inference backends (the local engine's
 * constructor lives in gpu/ss_llm.h). Each returns an ss_infer_backend_t that the
 * caller owns until it is handed to ss_dispatch_add_model.
 */
#ifndef SS_BACKENDS_H
#define SS_BACKENDS_H

#include "ss_infer.h"

/* OpenAI-compatible HTTP server (vLLM, llama.cpp server, OpenAI...). CHOOSE and SCORE use
 * POST /v1/completions with max_tokens 1 and top logprobs; GENERATE uses /v1/completions;
 * EMBED uses /v1/embeddings. Requests are grouped into HTTP requests (embed_batch inputs,
 * prompt_batch prompts), up to max_concurrency HTTP requests at once (libcurl multi); connection errors, timeouts, 5xx and 429 are retried with
 * exponential backoff (Retry-After honoured). model_id = "openai:" url ":" model. */
typedef struct ss_openai_opts {
    const char *url;       /* base URL, e.g. "http://127.0.0.1:8000" (a trailing "/v1" is fine) */
    const char *model;     /* model name sent in every request */
    const char *api_key;   /* Bearer token, or NULL */
    int timeout_ms;        /* per HTTP attempt (default 60000) */
    int max_concurrency;   /* HTTP requests in flight at once (default 8) */
    int max_retries;       /* retries after the first attempt (default 4; -1 = none) */
    int backoff_ms;        /* first retry delay, doubled each retry (default 200) */
    int max_backoff_ms;    /* cap on one delay, Retry-After included (default 30000) */
    int top_logprobs;      /* logprobs requested for CHOOSE/SCORE (default 20) */
    int embed_batch;       /* EMBED inputs per /v1/embeddings request, as a JSON array (default 32) */
    int prompt_batch;      /* prompts per /v1/completions request, for requests with equal
                              parameters, as a JSON array (default 1: every server takes that;
                              vLLM and `semstream worker` take arrays) */
    int semstream_ext;     /* 0 = auto (default): when GET /v1/models says owned_by "semstream",
                              CHOOSE/SCORE carry semstream_choices / semstream_score and the worker's
                              exact semstream_probs / semstream_score_value are used; 1 = always;
                              -1 = never (plain OpenAI protocol) */
} ss_openai_opts_t;

ss_infer_backend_t *ss_backend_openai_open(const ss_openai_opts_t *o, char *err, size_t errsz);

/* The same with defaults for the other options. NULL (and err filled) on failure. */
ss_infer_backend_t *ss_backend_openai_new(const char *url, const char *model, const char *api_key,
                                          int timeout_ms, int max_concurrency, char *err, size_t errsz);

#endif
