/*
 * model.c — opening a model: reads the config from GGUF metadata (llama / qwen2),
 * binds the weight tensors with shape checks, loads the tokenizer, computes the
 * model's stable id and starts the backend. Owns ss_llm_open/close and the small
 * accessors of ss_llm.h.
 */
#include "llm_internal.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int meta_i(const ss_gguf_t *g, const char *arch, const char *k, int64_t *v)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return ss_gguf_get_i64(g, key, v);
}

static int meta_f(const ss_gguf_t *g, const char *arch, const char *k, double *v)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return ss_gguf_get_f64(g, key, v);
}

static ss_err_t load_config(ss_llm_t *m, char *err, size_t errsz)
{
    ss_llm_config_t *c = &m->cfg;
    ss_gguf_str_t a;
    if (!ss_gguf_get_str(m->g, "general.architecture", &a))
        return ss_seterr(err, errsz, SS_ERR_MODEL, "metadata general.architecture missing");
    snprintf(c->arch, sizeof c->arch, "%.*s", (int)SS_MIN(a.n, 15), a.p);
    if (strcmp(c->arch, "llama") && strcmp(c->arch, "qwen2"))
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "architecture '%s' is not supported (llama, qwen2 are)", c->arch);
    int64_t v;
    double f;
    static const char *req[] = {"embedding_length", "block_count", "feed_forward_length", "attention.head_count"};
    int64_t vals[4];
    for (int i = 0; i < 4; i++) {
        if (!meta_i(m->g, c->arch, req[i], &vals[i]) || vals[i] <= 0 || vals[i] > (1 << 20))
            return ss_seterr(err, errsz, SS_ERR_MODEL, "metadata %s.%s missing or out of range", c->arch, req[i]);
    }
    c->dim = (int)vals[0];
    c->n_layers = (int)vals[1];
    c->hidden_dim = (int)vals[2];
    c->n_heads = (int)vals[3];
    c->n_kv_heads = meta_i(m->g, c->arch, "attention.head_count_kv", &v) ? (int)v : c->n_heads;
    if (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads || c->dim % c->n_heads)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "bad head counts: %d heads, %d kv heads, dim %d", c->n_heads,
                         c->n_kv_heads, c->dim);
    c->head_dim = c->dim / c->n_heads;
    if (meta_i(m->g, c->arch, "attention.key_length", &v) && v != c->head_dim)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "key_length %lld != dim/heads %d", (long long)v, c->head_dim);
    c->ctx_len = meta_i(m->g, c->arch, "context_length", &v) && v > 0 ? (int)SS_MIN(v, 1 << 20) : 2048;
    c->rope_dim = meta_i(m->g, c->arch, "rope.dimension_count", &v) ? (int)v : c->head_dim;
    if (c->rope_dim <= 0 || c->rope_dim > c->head_dim || c->rope_dim % 2)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "rope.dimension_count %d out of range", c->rope_dim);
    c->rope_base = meta_f(m->g, c->arch, "rope.freq_base", &f) ? (float)f : 10000.f;
    c->norm_eps = meta_f(m->g, c->arch, "attention.layer_norm_rms_epsilon", &f) ? (float)f : 1e-5f;
    c->rope_neox = !strcmp(c->arch, "qwen2");
    return SS_OK;
}

static ss_err_t bind(ss_llm_t *m, wmat_t *w, const char *name, int rows, int cols, int optional, char *err,
                     size_t errsz)
{
    const ss_gguf_tensor_t *t = ss_gguf_tensor(m->g, name);
    memset(w, 0, sizeof *w);
    if (!t)
        return optional ? SS_OK : ss_seterr(err, errsz, SS_ERR_MODEL, "tensor '%s' missing", name);
    if (t->ndim != 2 || t->ne[0] != cols || t->ne[1] != rows)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "tensor '%s' has shape [%lld,%lld], expected [%d,%d]", name,
                         (long long)t->ne[0], (long long)t->ne[1], cols, rows);
    w->data = t->data;
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = ss_ggml_row_bytes(t->type, cols);
    return SS_OK;
}

/* 1-D f32 copy of a vector tensor (norm weights, biases). */
static ss_err_t vec(ss_llm_t *m, float **out, const char *name, int n, int optional, char *err, size_t errsz)
{
    *out = NULL;
    const ss_gguf_tensor_t *t = ss_gguf_tensor(m->g, name);
    if (!t)
        return optional ? SS_OK : ss_seterr(err, errsz, SS_ERR_MODEL, "tensor '%s' missing", name);
    if (t->nelem != n || t->ne[0] != n)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "tensor '%s' has %lld elements, expected %d", name,
                         (long long)t->nelem, n);
    *out = malloc((size_t)n * sizeof(float));
    if (!*out)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    ss_ggml_to_f32(t->type, t->data, *out, n);
    return SS_OK;
}

static ss_err_t load_layer(ss_llm_t *m, int l, char *err, size_t errsz)
{
    const ss_llm_config_t *c = &m->cfg;
    layer_w_t *L = &m->w.layers[l];
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    char n[96];
    ss_err_t rc;
#define NM(s) (snprintf(n, sizeof n, "blk.%d." s, l), n)
    if ((rc = vec(m, &L->attn_norm, NM("attn_norm.weight"), c->dim, 0, err, errsz)) ||
        (rc = bind(m, &L->wq, NM("attn_q.weight"), qd, c->dim, 0, err, errsz)) ||
        (rc = bind(m, &L->wk, NM("attn_k.weight"), kvd, c->dim, 0, err, errsz)) ||
        (rc = bind(m, &L->wv, NM("attn_v.weight"), kvd, c->dim, 0, err, errsz)) ||
        (rc = bind(m, &L->wo, NM("attn_output.weight"), c->dim, qd, 0, err, errsz)) ||
        (rc = vec(m, &L->bq, NM("attn_q.bias"), qd, 1, err, errsz)) ||
        (rc = vec(m, &L->bk, NM("attn_k.bias"), kvd, 1, err, errsz)) ||
        (rc = vec(m, &L->bv, NM("attn_v.bias"), kvd, 1, err, errsz)) ||
        (rc = vec(m, &L->ffn_norm, NM("ffn_norm.weight"), c->dim, 0, err, errsz)) ||
        (rc = bind(m, &L->w_gate, NM("ffn_gate.weight"), c->hidden_dim, c->dim, 0, err, errsz)) ||
        (rc = bind(m, &L->w_up, NM("ffn_up.weight"), c->hidden_dim, c->dim, 0, err, errsz)) ||
        (rc = bind(m, &L->w_down, NM("ffn_down.weight"), c->dim, c->hidden_dim, 0, err, errsz)))
        return rc;
#undef NM
    if (L->bq || L->bk || L->bv)
        m->cfg.qkv_bias = 1;
    return SS_OK;
}

static ss_err_t load_weights(ss_llm_t *m, char *err, size_t errsz)
{
    ss_llm_config_t *c = &m->cfg;
    const ss_gguf_tensor_t *te = ss_gguf_tensor(m->g, "token_embd.weight");
    if (!te || te->ndim != 2)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "tensor 'token_embd.weight' missing or not 2-D");
    c->vocab_size = (int)te->ne[1];
    ss_err_t rc = bind(m, &m->w.tok_embd, "token_embd.weight", c->vocab_size, c->dim, 0, err, errsz);
    if (rc || (rc = vec(m, &m->w.out_norm, "output_norm.weight", c->dim, 0, err, errsz)) ||
        (rc = bind(m, &m->w.output, "output.weight", c->vocab_size, c->dim, 1, err, errsz)))
        return rc;
    if (!m->w.output.data) {
        m->w.output = m->w.tok_embd;
        c->tied = 1;
    }
    m->w.layers = calloc((size_t)c->n_layers, sizeof *m->w.layers);
    if (!m->w.layers)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->n_layers; l++)
        if ((rc = load_layer(m, l, err, errsz)))
            return rc;
    c->wtype = m->w.layers[0].wq.type;
    return SS_OK;
}

static void make_id(ss_llm_t *m, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_append(&b, m->g->base, m->g->header_bytes);
    ss_buf_printf(&b, "|%zu", m->g->size);
    char hex[33];
    ss_hash_hex128(b.data ? b.data : "", b.len, hex);
    ss_buf_free(&b);
    m->id = ss_sprintf("%s:%s", base, hex);
}

static int ncores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

ss_err_t ss_llm_open(const char *path, const ss_llm_opts_t *opts, ss_llm_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_llm_t *m = calloc(1, sizeof *m);
    if (!m)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    ss_llm_opts_t o = opts ? *opts : (ss_llm_opts_t){0};
    m->threads = o.threads > 0 ? o.threads : ncores();
    m->ubatch = o.ubatch > 0 ? o.ubatch : 512;
    m->prefix_on = !o.no_prefix_cache;
    m->cur_lse = NAN;
    m->cur_argmax = -1;
    ss_err_t rc = ss_gguf_open(path, &m->g, err, errsz); /* its messages name the path already */
    if (rc) {
        ss_llm_close(m);
        return rc;
    }
    if ((rc = load_config(m, err, errsz)) == SS_OK && (rc = load_weights(m, err, errsz)) == SS_OK)
        rc = tok_load(&m->tok, m->g, err, errsz);
    if (!rc) {
        m->cfg.bos = m->tok.bos;
        m->cfg.eos = m->tok.eos;
        int64_t v;
        m->cfg.add_bos = ss_gguf_get_i64(m->g, "tokenizer.ggml.add_bos_token", &v) ? (int)v
                                                                                   : m->tok.kind == TOK_SPM;
        if (m->cfg.bos < 0)
            m->cfg.add_bos = 0;
        if (m->tok.n < m->cfg.vocab_size)
            rc = ss_seterr(err, errsz, SS_ERR_MODEL, "tokenizer has %d tokens but the embedding has %d rows",
                           m->tok.n, m->cfg.vocab_size);
        m->chat = m->eot = -1;
        if (!o.raw_prompts)
            chat_detect(m);
    }
    if (!rc) {
        make_id(m, path);
        size_t cb = o.cache_bytes ? o.cache_bytes : ((size_t)256 << 20);
        size_t bb = (size_t)m->cfg.n_layers * 2 * KV_BLOCK * m->cfg.n_kv_heads * m->cfg.head_dim * sizeof(float);
        kv_init(&m->kv, (int)SS_MIN(cb / bb + 1, 1 << 24));
        kvc_init(&m->chunks, o.chunk_cache_bytes ? o.chunk_cache_bytes : ((size_t)256 << 20));
        m->be = &ss_llm_cpu_backend;
        rc = m->be->upload(m, &m->be_ctx, err, errsz);
    }
    if (rc) {
        ss_errprefix(err, errsz, "%s", path);
        ss_llm_close(m);
        return rc;
    }
    *out = m;
    return SS_OK;
}

void ss_llm_close(ss_llm_t *m)
{
    if (!m)
        return;
    sched_free(m); /* requests still in flight are completed with an error */
    eng_free(m);
    gram_cache_free(m);
    if (m->be && m->be_ctx)
        m->be->destroy(m->be_ctx);
    kv_free(&m->kv);
    kvc_free(&m->chunks);
    if (m->w.layers)
        for (int l = 0; l < m->cfg.n_layers; l++) {
            layer_w_t *L = &m->w.layers[l];
            free(L->attn_norm);
            free(L->ffn_norm);
            free(L->bq);
            free(L->bk);
            free(L->bv);
        }
    free(m->w.layers);
    free(m->w.out_norm);
    tok_free(&m->tok);
    ss_gguf_close(m->g);
    free(m->id);
    free(m);
}

const char *ss_llm_id(const ss_llm_t *m) { return m->id; }
const ss_llm_config_t *ss_llm_config(const ss_llm_t *m) { return &m->cfg; }
const ss_llm_config_t *ss_ss_llm_config(const ss_llm_t *m) { return &m->cfg; }
void ss_llm_set_threads(ss_llm_t *m, int threads) { m->threads = threads > 0 ? threads : ncores(); }

void ss_llm_set_prefix_cache(ss_llm_t *m, int on)
{
    m->prefix_on = on != 0;
    if (!on)
        kv_clear(&m->kv);
}

void ss_llm_cache_clear(ss_llm_t *m) { kv_clear(&m->kv); }

void ss_llm_stats(const ss_llm_t *m, ss_llm_stats_t *st)
{
    *st = m->st;
    st->kv_blocks = m->kv.nb;
    st->chunk_hits = m->chunks.hits;
    st->chunk_misses = m->chunks.misses;
    st->chunk_evictions = m->chunks.evictions;
    st->chunk_bytes = (int64_t)m->chunks.bytes;
}
