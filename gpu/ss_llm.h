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
} ss_llm_opts_t;

/* Loads path (validated; see ss_gguf.h). opts may be NULL. */
ss_err_t ss_llm_open(const char *path, const ss_llm_opts_t *opts, ss_llm_t **out, char *err, size_t errsz);
void ss_llm_close(ss_llm_t *m);

/* Stable identity: "<file name>:<32 hex digits>" hashed over metadata + tensor infos + size. */
const char *ss_llm_id(const ss_llm_t *m);
const ss_llm_config_t *ss_llm_config(const ss_llm_t *m);
const ss_llm_config_t *ss_ss_llm_config(const ss_llm_t *m); /* same; the name the brief used */

/* Answers reqs[0..n) into res[0..n) (zeroed by the caller; free with ss_infer_res_clear).
 * All requests are batched together and share prompt prefixes. Returns SS_OK if the batch
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
    int64_t prompt_ns;       /* ss_llm_run time spent on prompts (prefill) */
    int64_t decode_ns;       /* ss_llm_run time spent decoding GENERATE tokens */
    int64_t decode_tokens;   /* tokens decoded in that time */
} ss_llm_stats_t;
void ss_llm_stats(const ss_llm_t *m, ss_llm_stats_t *st);

/* ---- the local backend (runtime/backend_local.c) ---- */
/* Opens model_path and wraps it as an ss_infer_backend_t (kind "local", model_id =
 * ss_llm_id). threads 0 = all cores. NULL with err filled on failure. */
ss_infer_backend_t *ss_backend_local_new(const char *model_path, int threads, char *err, size_t errsz);
/* Wraps an opened model as a backend of the given kind ("local", "cuda"); takes ownership of m
 * (closed on failure too). */
ss_infer_backend_t *ss_backend_llm_wrap(ss_llm_t *m, const char *kind, char *err, size_t errsz);

#endif
