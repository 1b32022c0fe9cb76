/*
 * ss_infer.h — inference requests and results, and the backend interface.
 *
 * Operators describe what they need from a model as ss_infer_req_t (a prompt
 * plus the kind of answer); a backend (the in-process engine in gpu/, or an
 * OpenAI-compatible HTTP server) answers a batch of them. Requests borrow their
 * strings from the caller; results own theirs (free with ss_infer_res_clear).
 */
#ifndef SS_INFER_H
#define SS_INFER_H

#include "ss_base.h"

#include <stdint.h>

typedef enum ss_infer_kind {
    SS_INFER_CHOOSE,   /* one forward pass: probability of each answer string (e.g. " yes"/" no") */
    SS_INFER_GENERATE, /* decode up to max_tokens (greedy when temperature == 0) */
    SS_INFER_SCORE,    /* expected value over answers "1".."10" (score_min..score_max) */
    SS_INFER_EMBED,    /* pooled hidden state */
} ss_infer_kind_t;

/* One generated token, reported while a GENERATE request decodes (see on_token). */
typedef struct ss_infer_token {
    int id;                     /* vocabulary id */
    const char *text;           /* its text, len bytes (not terminated; may split a UTF-8 character) */
    size_t len;
    float logprob;              /* natural-log probability (when top_logprobs > 0, else 0) */
    int ntop;                   /* alternatives at this position, best first (top_logprobs of them) */
    const char *const *top_text;
    const float *top_logprob;
} ss_infer_token_t;
typedef void (*ss_infer_token_fn)(void *ctx, const ss_infer_token_t *t);

typedef struct ss_infer_req {
    ss_infer_kind_t kind;
    const char *prompt;      /* full prompt text (borrowed) */
    size_t prefix_len;       /* bytes at the start of prompt shared by this operator's requests
                                (instruction + template text): a hint for prefix reuse/grouping */
    size_t system_len;       /* the first system_len bytes of prompt are the system message, the
                                rest the user's turn: a model with a chat template (the in-process
                                engine, a chat completions endpoint) gets them as a system and a user
                                message; otherwise the prompt is used whole (0 = all of it is the
                                user's turn) */
    int raw;                 /* 1: the prompt is the model's input as is, never put in a chat
                                template (the worker's /v1/completions) */
    int nchoices;            /* CHOOSE */
    const char *const *choices; /* CHOOSE: answer strings, borrowed */
    int max_tokens;          /* GENERATE */
    const char *json_schema; /* GENERATE: NULL, or a JSON Schema (src/base/ss_jschema.h subset) the
                                output must match: the in-process engine constrains decoding token
                                by token (gpu/grammar.c), an OpenAI-compatible server gets it as
                                response_format {type: json_schema} (borrowed) */
    float temperature;       /* GENERATE: 0 = greedy */
    uint64_t seed;           /* GENERATE with temperature > 0 */
    const char *stop;        /* GENERATE: stop string or NULL */
    int nstop;               /* GENERATE: further stop strings stops[0..nstop) (borrowed) */
    const char *const *stops;
    int score_min, score_max;/* SCORE: e.g. 1..10 */
    int top_logprobs;        /* GENERATE: if > 0, also return the top-N log-probabilities of the
                                first generated position (OpenAI `logprobs`) */
    /* GENERATE on the in-process engine: called (on the engine's thread) with each token as it
     * is produced, with the top_logprobs alternatives of every position. It observes the answer
     * and is no part of it (not in the cache key); other backends never call it. */
    ss_infer_token_fn on_token;
    void *on_token_ctx;
    /* GENERATE, dependency tracking (LLM_GENERATE MAINTAIN = 'dependency'): when ntrack > 0 the
     * engine records the attention mass each answer token's prediction gives to each of ntrack
     * input chunks, prompt bytes [track_span[2c], track_span[2c+1]), and returns it per sentence
     * in res->dep (ss_infer_dep_t). Only the in-process CPU engine records attention; a backend
     * that cannot fails the request. Part of the cache key. */
    int ntrack;
    const size_t *track_span;  /* [2 * ntrack] borrowed */
    int track_layers;          /* the last track_layers layers are averaged; 0 = the later half */
    /* GENERATE: tokens that start the answer, fed after the prompt by prefill (not decoded) and
     * counted in max_tokens; the answer continues from them. Tokens of the backend's own
     * vocabulary (from an earlier res->dep), so only the in-process engine takes them. Part of the
     * cache key. */
    const int *forced;         /* [nforced] borrowed */
    int nforced;
    /* GENERATE on the in-process engine (streaming prefill, issue 17 §3): compute the KV of the
     * prompt's full KV blocks into the prefix cache and decode nothing (text "", gen_tokens 0),
     * so that a later request whose prompt extends this one prefills only what is new. Part of
     * the cache key (a prefill is never an answer). Only the in-process engine honours it (an
     * OpenAI-compatible server would answer it as a GENERATE), so no operator sends it to others. */
    int prefill_only;
    /* GENERATE on the in-process CPU engine (LLM_GENERATE KV_REUSE = 'chunks', issue 17 §2): the
     * prompt bytes [chunk_span[2c], chunk_span[2c+1]) are retrieved documents whose KV comes from
     * the engine's cache of chunks computed on their own (CacheBlend), re-rotated to where they
     * land; the fraction `recompute` (0..1) of their tokens whose KV deviates most from a full
     * prefill's is recomputed, and every other token is computed. recompute = 1 equals a plain
     * GENERATE; below it the answer approximates one. Part of the cache key; a backend that
     * cannot fails the request. */
    int nchunks;
    const size_t *chunk_span;  /* [2 * nchunks] borrowed */
    float recompute;
} ss_infer_req_t;

typedef struct ss_infer_res {
    int status;        /* SS_OK or an ss_err_t */
    char *error;       /* owned message when status != SS_OK */
    char *text;        /* GENERATE: owned */
    int nprobs;
    float *probs;      /* CHOOSE: owned; normalised over the choices */
    double score;      /* SCORE */
    int dim;
    float *emb;        /* EMBED: owned */
    int prompt_tokens; /* tokens in the prompt (all of them, reused prefix included) */
    int gen_tokens;    /* tokens generated */
    int cached;        /* 1 if answered from the persistent result cache */
    int retry_after_ms;/* failed: the backend's hint when to try again (HTTP Retry-After), 0 = none */
    int ntop;          /* GENERATE with top_logprobs: entries in top_tokens/top_logprobs */
    char **top_tokens; /* owned: decoded text of each of the top tokens */
    float *top_logprobs; /* owned: their natural-log probabilities, best first */
    float *token_logprobs; /* owned, gen_tokens entries: log-probability of each generated token
                              (filled when top_logprobs > 0) */
    unsigned char *dep; /* owned: GENERATE with ntrack > 0, the answer's tokens and per-sentence
                           attention masses, encoded (ss_infer_dep_decode); NULL otherwise */
    int dep_len;
} ss_infer_res_t;

/* The dependency record of a tracked answer (decoded res->dep). The answer's tokens (forced ones
 * first) are cut into sentences: a sentence ends after a token whose text holds '.', '!', '?' or
 * a newline, and at the last token. mass[s * nchunk + c] is the largest, over the tokens of
 * sentence s, of the attention mass that token's prediction gives to chunk c: the attention
 * probabilities on the chunk's positions summed over the chunk, averaged over query heads (so
 * in 0..1: the sum over heads divided by their count) and over the tracked layers. */
typedef struct ss_infer_dep {
    int ntok;       /* answer tokens */
    int *tok;       /* [ntok] vocabulary ids */
    int nsent;
    int *sent_end;  /* [nsent] token index after sentence s (increasing; last = ntok) */
    int nchunk;
    float *mass;    /* [nsent * nchunk] */
} ss_infer_dep_t;

/* Encodes d into a malloc'd blob (*out, *len): "SSD1", then int32 ntok, nsent, nchunk, the
 * tokens, the sentence ends, the float32 masses (little-endian host order). SS_OK or NOMEM. */
int ss_infer_dep_encode(const ss_infer_dep_t *d, unsigned char **out, int *len);
/* Decodes a blob into d (owned arrays; free with ss_infer_dep_free). SS_ERR_INVALID when the
 * blob is not one ss_infer_dep_encode wrote. */
int ss_infer_dep_decode(const void *blob, int len, ss_infer_dep_t *d);
void ss_infer_dep_free(ss_infer_dep_t *d);

/* Result helpers (src/base/infer.c). */
void ss_infer_res_clear(ss_infer_res_t *r); /* frees owned fields, zeroes r */
/* Marks r failed with code and a copy of msg (frees what r owned before). */
void ss_infer_res_fail(ss_infer_res_t *r, int code, const char *msg);
/* Deep copy of src into dst (dst's old contents are not freed). SS_OK or SS_ERR_NOMEM. */
int ss_infer_res_copy(ss_infer_res_t *dst, const ss_infer_res_t *src);
const char *ss_infer_kind_name(ss_infer_kind_t k);

/* Per-operator accounting. */
typedef struct ss_infer_stats {
    int64_t requests;      /* requests submitted */
    int64_t calls;         /* requests that reached a model (not cache, not dedup) */
    int64_t cache_hits;
    int64_t prompt_tokens; /* of calls */
    int64_t gen_tokens;
    int64_t ns;            /* wall time waiting for inference */
} ss_infer_stats_t;

/* A backend answers batches. Implementations: local engine (runtime/backend_local.c),
 * OpenAI-compatible HTTP (runtime/backend_openai.c). */
typedef struct ss_infer_backend ss_infer_backend_t;
struct ss_infer_backend {
    const char *kind;  /* "local", "openai" */
    char *model_id;    /* stable identity for the result cache (name + file hash); owned */
    void *impl;
    int max_concurrent;/* run() calls it takes at once from different threads (0 or 1: one) */
    /* Answers reqs[0..n) into res[0..n) (each res zeroed by the caller). Returns SS_OK if the
     * batch ran (individual failures are in res[i].status), else an error for the batch. */
    int (*run)(ss_infer_backend_t *b, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res,
               char *err, size_t errsz);
    /* Number of tokens of text (for accounting); may be NULL. */
    int (*count_tokens)(ss_infer_backend_t *b, const char *text);
    void (*destroy)(ss_infer_backend_t *b); /* frees impl, model_id and b */
    /* May be NULL. Called from another thread when the process stops: run() calls in
     * progress (and later ones) end soon, what they have not answered failing with
     * SS_ERR_CANCELED, instead of finishing a slow or retried request. */
    void (*cancel)(ss_infer_backend_t *b);
};

#endif
