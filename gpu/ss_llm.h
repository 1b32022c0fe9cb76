/*
 * ss_llm.h — the in-process inference engine: loads a GGUF Llama-family model
 * (architectures llama and qwen2; f32/f16/bf16/q8_0/q4_0/q4_k weights), tokenizes
 * with the tokenizer stored in the file, and answers batches of ss_infer_req_t
 * (CHOOSE / GENERATE / SCORE / EMBED) with batched forward passes over a block KV
 * cache whose full blocks are shared between sequences through a prefix cache.
 *
 * Layout follows llama2.c / calm: config (ss_llm_config_t), weights and run state
 * (llm_internal.h), a backend vtable (CPU here, the oracle; CUDA can plug in).
 * An ss_llm_t is not thread-safe: one caller at a time (it uses its own threads).
 */
#ifndef SS_LLM_H
#define SS_LLM_H

#include "ss_base.h"
#include "ss_infer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ss_llm ss_llm_t;

typedef struct ss_llm_config {
    char arch[16];     /* "llama" or "qwen2" */
    int dim;           /* embedding width */
    int n_layers;
    int n_heads;       /* query heads */
    int n_kv_heads;    /* key/value heads (GQA when < n_heads) */
    int head_dim;      /* dim / n_heads */
    int hidden_dim;    /* feed-forward width */
    int vocab_size;
    int ctx_len;       /* context length from metadata */
    int rope_dim;      /* rotated dimensions per head */
    int rope_neox;     /* 1: rotate (i, i+rope_dim/2) pairs (qwen2); 0: adjacent pairs (llama) */
    float rope_base;
    float norm_eps;
    int qkv_bias;      /* Q/K/V projections have biases (qwen2) */
    int tied;          /* output projection is token_embd */
    int wtype;         /* type of the attention/ffn weights (ss_ggml_type_t) */
    int bos, eos;      /* special token ids (-1 when absent) */
    int add_bos;       /* prompts start with BOS */
} ss_llm_config_t;

typedef struct ss_llm_opts {
    int threads;         /* 0 = all cores */
    size_t cache_bytes;  /* KV kept for prefix reuse after sequences finish; 0 = 256 MiB */
    int no_prefix_cache; /* 1: never reuse KV between sequences (baseline) */
    int ubatch;          /* max tokens per forward pass; 0 = 512 */
    int raw_prompts;     /* 1: never wrap prompts in the model's chat template */
    size_t chunk_cache_bytes; /* host memory for the KV of chunks computed on their own
                                 (KV_REUSE = 'chunks'); 0 = 256 MiB */
} ss_llm_opts_t;

/* Loads path (validated; see ss_gguf.h). opts may be NULL. */
ss_err_t ss_llm_open(const char *path, const ss_llm_opts_t *opts, ss_llm_t **out, char *err, size_t errsz);
void ss_llm_close(ss_llm_t *m);

/* Stable identity: "<file name>:<32 hex digits>" hashed over metadata + tensor infos + size. */
const char *ss_llm_id(const ss_llm_t *m);
const ss_llm_config_t *ss_llm_config(const ss_llm_t *m);
const ss_llm_config_t *ss_ss_llm_config(const ss_llm_t *m); /* same; the name the brief used */

/* Answers reqs[0..n) into res[0..n) (zeroed by the caller; free with ss_infer_res_clear).
 * All requests are batched together and share prompt prefixes (it is ss_llm_submit of each
 * and ss_llm_step with no token budget until all are done, see below). Returns SS_OK if the batch
 * ran (per-request failures are in res[i].status) or an error for the whole batch. */
int ss_llm_run(ss_llm_t *m, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err, size_t errsz);

/* ---- chat templates ---- */
/* The chat family recognised in tokenizer.chat_template ("chatml", "llama3", "gemma", "zephyr",
 * "llama2"), or NULL when prompts are used as given (base model, unknown template, raw_prompts). */
const char *ss_llm_chat_format(const ss_llm_t *m);
/* prompt as one user turn followed by the assistant's header (malloc'd), or NULL without a chat
 * format. CHOOSE, GENERATE and SCORE requests are wrapped so; EMBED is not. */
char *ss_llm_chat_prompt(const ss_llm_t *m, const char *prompt);

/* ---- tokenizer ---- */
/* Tokens of text (no BOS); special-token strings (e.g. "<|im_start|>") become single tokens. */
int ss_llm_count_tokens(ss_llm_t *m, const char *text);
/* Writes up to cap tokens of text to out (BOS first if add_bos); returns the full count,
 * which may exceed cap, or -1 on allocation failure. */
int ss_llm_tokenize(ss_llm_t *m, const char *text, int add_bos, int *out, int cap);
/* Decodes tokens to text (malloc'd, caller frees); special tokens decode to their text
 * except BOS/EOS which decode to nothing. */
char *ss_llm_detokenize(ss_llm_t *m, const int *toks, int n);
const char *ss_llm_token_text(ss_llm_t *m, int id); /* raw vocabulary entry */

/* ---- lower level, for tests and benchmarks ---- */
/* Greedy continuation of prompt tokens: writes up to max_new tokens to out (stops after EOS,
 * which is included). Returns the count or -1 with err filled. */
int ss_llm_greedy(ss_llm_t *m, const int *prompt, int n, int max_new, int *out, char *err, size_t errsz);
/* Logits after the last token of each of nseq token sequences, computed in one batch:
 * logits[s * vocab ...]. */
ss_err_t ss_llm_last_logits(ss_llm_t *m, int nseq, const int *const *toks, const int *ntoks, float *logits,
                            char *err, size_t errsz);
void ss_llm_set_threads(ss_llm_t *m, int threads);
void ss_llm_set_prefix_cache(ss_llm_t *m, int on); /* also drops cached blocks when off */
void ss_llm_cache_clear(ss_llm_t *m);              /* forget all reusable KV blocks */

typedef struct ss_llm_stats {
    int64_t tokens_computed; /* tokens run through the model */
    int64_t tokens_reused;   /* prompt tokens whose KV came from the prefix cache */
    int64_t forward_calls;   /* backend forward passes */
    int64_t kv_blocks;       /* KV blocks allocated now */
    int64_t prompt_ns;       /* time of steps that prefilled prompts (prefill; with continuous
                                batching it includes the decode tokens that shared those steps) */
    int64_t decode_ns;       /* time of steps that only decoded GENERATE tokens */
    int64_t decode_tokens;   /* tokens decoded in that time */
    int64_t steps;           /* scheduling steps run (ss_llm_step; ss_llm_run steps too) */
    /* KV_REUSE = 'chunks' (blended prefills, CacheBlend): */
    int64_t blend_tokens;    /* prompt tokens prefilled by blending (all run the first layer) */
    int64_t blend_computed;  /* of those, tokens computed in the later layers (the rest kept the
                                chunk cache's KV); neither is in tokens_computed */
    int64_t chunk_tokens;    /* tokens computed to fill the chunk cache (also in tokens_computed) */
    int64_t chunk_hits, chunk_misses, chunk_evictions;
    int64_t chunk_bytes;     /* chunk cache use now */
} ss_llm_stats_t;
void ss_llm_stats(const ss_llm_t *m, ss_llm_stats_t *st);

/* KV reuse beyond the prefix (KV_REUSE = 'chunks', CPU backend): logits after the last token of
 * toks[0..n) (vocab floats), where the chunks [span[2c], span[2c+1]) (token positions,
 * increasing, disjoint, before the last token) take their KV from the chunk cache — computed on
 * their own and kept there on a miss — re-rotated to where they land, and the fraction frac of
 * their tokens whose KV deviates most from a full prefill's at the second layer is recomputed
 * (CacheBlend). Tokens outside the chunks are always computed; frac = 1 equals a full prefill bit
 * for bit. The prompt's leading blocks come from the prefix cache as usual. */
ss_err_t ss_llm_chunk_logits(ss_llm_t *m, const int *toks, int n, const int *span, int nchunk, float frac,
                             float *logits, char *err, size_t errsz);
/* The same prefill (a plain one when nchunk = 0), then greedy decoding of up to max_new tokens
 * into out (stops after EOS / end of turn, included); logits (may be NULL): the first decoded
 * position's; first_ns (may be NULL): nanoseconds from the call to those logits (time to first
 * token). Returns the count or -1 with err filled. */
int ss_llm_chunk_greedy(ss_llm_t *m, const int *toks, int n, const int *span, int nchunk, float frac, int max_new,
                        int *out, float *logits, int64_t *first_ns, char *err, size_t errsz);
void ss_llm_chunk_cache_clear(ss_llm_t *m); /* forget every cached chunk */

/* ---- the local backend (runtime/backend_local.c) ---- */
/* Opens model_path and wraps it as an ss_infer_backend_t (kind "local", model_id =
 * ss_llm_id). threads 0 = all cores. NULL with err filled on failure. */
ss_infer_backend_t *ss_backend_local_new(const char *model_path, int threads, char *err, size_t errsz);
/* Wraps an opened model as a backend of the given kind ("local", "cuda"); takes ownership of m
 * (closed on failure too). */
ss_infer_backend_t *ss_backend_llm_wrap(ss_llm_t *m, const char *kind, char *err, size_t errsz);

/* ---- continuous batching (llm_sched.c) ---- */
/* Like everything on an ss_llm_t, submit and step from one thread at a time (the worker's
 * engine thread does both). */
/* Called once for every submitted request when it is finished: rc is SS_OK when the request
 * ran (its own failure, if any, is in res->status / res->error, as with ss_llm_run), or the
 * error of the step that failed every request in flight (then res->status = rc too). Called
 * from ss_llm_step (or ss_llm_close for requests still in flight), never from ss_llm_submit;
 * it may submit new requests. */
typedef void (*ss_llm_done_fn)(void *ctx, ss_infer_res_t *res, int rc);

/* Queues req to be answered into res (zeroed by the caller; filled before done is called).
 * req and its strings are borrowed until done is called. The prompt is tokenized now; the
 * request joins the running batch at the next ss_llm_step. done may be NULL. Returns SS_OK,
 * or SS_ERR_NOMEM with nothing queued. */
ss_err_t ss_llm_submit(ss_llm_t *m, const ss_infer_req_t *req, ss_infer_res_t *res, ss_llm_done_fn done, void *ctx,
                       char *err, size_t errsz);
/* One scheduling step: one forward pass (split into ubatches when larger) over one new token
 * of every decoding GENERATE sequence plus the prompts of waiting requests in submission
 * order, as far as max_tokens allows (0 = opts.ubatch; < 0 = no limit). A prompt larger than
 * what is left is prefilled in block-aligned chunks over several steps. Then CHOOSE/SCORE
 * answers of several tokens are scored on forks of their finished prompts (a second pass),
 * and finished requests are completed. Returns SS_OK, or the error that failed the step (every
 * request in flight is then completed with it). Results equal ss_llm_run's of each request
 * alone (bit for bit on the CPU backend; EMBED up to float summation order). */
ss_err_t ss_llm_step(ss_llm_t *m, int max_tokens, char *err, size_t errsz);
int ss_llm_inflight(const ss_llm_t *m); /* requests submitted and not yet completed */
int ss_llm_decoding(const ss_llm_t *m); /* of those, GENERATE requests past their prompt */

/* The model behind a backend made by ss_backend_llm_wrap (ss_backend_local_new,
 * ss_backend_cuda_new), still owned by the backend; NULL for any other backend. */
ss_llm_t *ss_backend_llm_model(ss_infer_backend_t *b);

/* The engine's f32 matrix kernel (fgemm.c, the best ISA of this CPU) for other models' layers:
 * out[b*rows + r] = W row r . x_b for r < rows, b < nb, W rows x cols row-major, x nb rows of
 * cols floats. Single-threaded (the caller parallelises); a pair's sum does not depend on nb. */
void ss_fgemm_f32(const float *w, int rows, int cols, const float *x, int nb, float *out);

#endif
