/*
 * ss_backends.h — constructors of the remote inference backends (the local engine's
 * constructor lives in gpu/ss_llm.h). Each returns an ss_infer_backend_t that the
 * caller owns until it is handed to ss_dispatch_add_model.
 */
#ifndef SS_BACKENDS_H
#define SS_BACKENDS_H

#include "ss_infer.h"

/* OpenAI-compatible HTTP server (OpenAI and other hosted APIs, vLLM, llama.cpp server,
 * `semstream worker`...). Every request is one HTTP request (EMBED and legacy prompts may be
 * grouped as JSON arrays):
 *   - CHOOSE/SCORE: one generated token with the top logprobs of its position (chat:
 *     "logprobs": true, "top_logprobs": k; legacy: "logprobs": k), k within the provider's
 *     limit (20 for chat, 5 for the legacy API unless the server is a semstream worker; a
 *     server refusing k gets a smaller one). Where a server gives no logprobs at all, the
 *     answer is constrained instead: asked for one of the answers in words, and parsed;
 *   - GENERATE: the chat or legacy completion; EMBED: /v1/embeddings.
 * The API: "chat" (/v1/chat/completions: the request's system_len bytes as a system message,
 * the rest as the user's), "completions" (/v1/completions: the prompt whole), or "auto": a
 * semstream worker says which in GET /v1/models; other servers get chat, and legacy from then
 * on when they answer that the model is not a chat model. Up to max_concurrency HTTP requests
 * at once (libcurl multi), within rpm requests and tpm tokens per minute (token buckets);
 * connection errors, timeouts, 5xx and 429 are retried with exponential backoff and jitter (a
 * Retry-After header wins when larger). model_id = "openai:" url ":" model. */
typedef enum ss_openai_api {
    SS_OPENAI_API_AUTO = 0,
    SS_OPENAI_API_CHAT,
    SS_OPENAI_API_COMPLETIONS,
} ss_openai_api_t;

typedef struct ss_openai_opts {
    const char *url;       /* base URL, e.g. "http://127.0.0.1:8000" (a trailing "/v1" is fine) */
    const char *model;     /* model name sent in every request */
    const char *api_key;   /* Bearer token, or NULL */
    const char *organization; /* OpenAI-Organization header, or NULL */
    const char *project;   /* OpenAI-Project header, or NULL */
    ss_openai_api_t api;   /* default auto */
    int timeout_ms;        /* per HTTP attempt (default 60000) */
    int max_concurrency;   /* HTTP requests in flight at once (default 8) */
    int max_retries;       /* retries after the first attempt (default 4; -1 = none) */
    int backoff_ms;        /* first retry delay, doubled each retry, times 1..1.5 (jitter)
                              (default 200) */
    int max_backoff_ms;    /* cap on one delay, Retry-After included (default 30000) */
    int top_logprobs;      /* logprobs asked for CHOOSE/SCORE (default: 20 on chat, 5 on the legacy
                              API, 20 with a semstream worker) */
    int embed_batch;       /* EMBED inputs per /v1/embeddings request, as a JSON array (default 32) */
    int prompt_batch;      /* legacy API: prompts per /v1/completions request, for requests with equal
                              parameters, as a JSON array (default 1: every server takes that;
                              vLLM and `semstream worker` take arrays) */
    int rpm;               /* requests per minute for this model (0 = no limit) */
    int tpm;               /* tokens per minute (prompt bytes / 4 + max_tokens; 0 = no limit) */
    int semstream_ext;     /* 0 = auto (default): when GET /v1/models says owned_by "semstream",
                              CHOOSE/SCORE carry semstream_choices / semstream_score and the worker's
                              exact semstream_probs / semstream_score_value are used; 1 = always;
                              -1 = never (plain OpenAI protocol) */
} ss_openai_opts_t;

ss_infer_backend_t *ss_backend_openai_open(const ss_openai_opts_t *o, char *err, size_t errsz);

/* The same with defaults for the other options. NULL (and err filled) on failure. */
ss_infer_backend_t *ss_backend_openai_new(const char *url, const char *model, const char *api_key,
                                          int timeout_ms, int max_concurrency, char *err, size_t errsz);

/* A CREATE MODEL ... WITH (backend = 'openai', ...) definition: get(ctx, option) gives each
 * option's text or NULL. Options: url (a comma-separated list makes a pool of workers),
 * model (default: name), api_key_env (the variable holding the key), organization, project,
 * api ('auto', 'chat', 'completions'), timeout_ms, max_concurrency, max_retries, top_logprobs,
 * rpm, tpm, prompt_batch, embed_batch. A value out of range is an error naming the option. */
ss_infer_backend_t *ss_backend_openai_config(const char *name, const char *(*get)(void *ctx, const char *opt),
                                             void *ctx, char *err, size_t errsz);

#endif
