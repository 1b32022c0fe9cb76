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
 * EMBED uses /v1/embeddings. One HTTP request per inference request, up to max_concurrency
 * at once (libcurl multi); connection errors, timeouts, 5xx and 429 are retried with
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
} ss_openai_opts_t;

ss_infer_backend_t *ss_backend_openai_open(const ss_openai_opts_t *o, char *err, size_t errsz);

/* The same with defaults for the other options. NULL (and err filled) on failure. */
ss_infer_backend_t *ss_backend_openai_new(const char *url, const char *model, const char *api_key,
                                          int timeout_ms, int max_concurrency, char *err, size_t errsz);

#endif
