/*
 * mkmodel.c — writes GGUF v3 models with random (seeded) weights in the shape of a
 * real model, with a synthetic but valid GPT-2-style byte-level BPE tokenizer
 * (256 byte tokens, generated merges up to the vocabulary size, chat/EOS control
 * tokens). Used by tools/mkgguf (benchmark models) and tests (tiny models for the
 * qwen2 / gpt2 / f16 / bf16 / q8_0 paths). The work a forward pass does does not
 * depend on the weight values, so speed measured on these is real speed.
 */
#include "ss_gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ss_mkmodel_spec_t shapes[] = {
    {"smollm2-135m", "llama", 576, 30, 9, 3, 1536, 49152, 8192, 100000.f, 0, 1, SS_GGML_Q8_0, 1, NULL, NULL},
    {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1000000.f, 1, 1, SS_GGML_Q8_0, 1, NULL, NULL},
    {"llama-3.2-1b", "llama", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.f, 0, 1, SS_GGML_Q8_0, 1, NULL, NULL},
    {"tiny-qwen2", "qwen2", 64, 2, 4, 2, 128, 600, 512, 10000.f, 1, 1, SS_GGML_F32, 1, NULL, NULL},
    {"tiny-llama", "llama", 64, 2, 4, 4, 160, 600, 512, 10000.f, 0, 0, SS_GGML_F32, 1, NULL, NULL},
};

int ss_mkmodel_shape(const char *name, ss_mkmodel_spec_t *out)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(shapes); i++)
        if (!strcmp(shapes[i].name, name)) {
            *out = shapes[i];
            return 1;
        }
    return 0;
}

const char *ss_mkmodel_shape_names(void) { return "smollm2-135m, qwen2.5-0.5b, llama-3.2-1b, tiny-qwen2, tiny-llama"; }

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------- tokenizer ---------------- */

static int byte_cp(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
            n++;
    return 256 + n;
}

static char *utf8_of(int cp)
{
    char b[4] = {0};
    if (cp < 0x80) {
        b[0] = (char)cp;
    } else {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 63));
    }
    return ss_strdup(b);
}

typedef struct vocab {
    char **tok;
    int n;
    char **merges;
    int nm;
    int32_t *type;
    int eos;       /* id of <|endoftext|> (BOS and EOS) */
} vocab_t;

/* Set of piece hashes (open addressing; 0 = empty) to keep pieces unique. */
static int seen_add(uint64_t *set, size_t cap, const char *s)
{
    uint64_t h = ss_hash64(s, strlen(s), 11) | 1;
    for (size_t j = h & (cap - 1);; j = (j + 1) & (cap - 1)) {
        if (set[j] == h)
            return 0;
        if (!set[j]) {
            set[j] = h;
            return 1;
        }
    }
}

/* Word-like merges: pieces of lowercase letters, optionally led by 'Ġ' (a space). */
static int build_vocab(vocab_t *v, int size, uint64_t seed, const char *const *extra)
{
    int nextra = 0;
    while (extra && extra[nextra])
        nextra++;
    int nspecial = 3 + nextra, target = size - nspecial;
    v->tok = calloc((size_t)size, sizeof *v->tok);
    v->merges = calloc((size_t)size, sizeof *v->merges);
    v->type = calloc((size_t)size, sizeof *v->type);
    int *wordy = calloc((size_t)size, sizeof *wordy), nw = 0;
    size_t scap = 1024;
    while (scap < 4 * (size_t)size)
        scap *= 2;
    uint64_t *set = calloc(scap, sizeof *set);
    if (!v->tok || !v->merges || !v->type || !wordy || !set || target < 256) {
        free(wordy);
        free(set);
        return -1;
    }
    for (int b = 0; b < 256; b++) {
        v->tok[v->n] = utf8_of(byte_cp(b));
        v->type[v->n] = 1;
        seen_add(set, scap, v->tok[v->n]);
        if ((b >= 'a' && b <= 'z') || b == ' ')
            wordy[nw++] = v->n;
        v->n++;
    }
    uint64_t s = seed ^ 0xabcdef;
    int tries = 0;
    while (v->n < target && tries < 50 * size) {
        tries++;
        const char *a = v->tok[wordy[rng_next(&s) % (uint64_t)nw]];
        const char *b = v->tok[wordy[rng_next(&s) % (uint64_t)nw]];
        if (!strncmp(b, "\xc4\xa0", 2) || strlen(a) + strlen(b) > 24)
            continue; /* 'Ġ' (space) only leads a piece */
        char *cat = ss_sprintf("%s%s", a, b);
        if (!cat || !seen_add(set, scap, cat)) {
            free(cat);
            continue;
        }
        v->merges[v->nm++] = ss_sprintf("%s %s", a, b);
        v->type[v->n] = 1;
        wordy[nw++] = v->n;
        v->tok[v->n++] = cat;
    }
    while (v->n < target) { /* filler, never produced by merges */
        v->type[v->n] = 1;
        v->tok[v->n] = ss_sprintf("<unused%d>", v->n);
        v->n++;
    }
    static const char *sp[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    v->eos = v->n;
    for (int i = 0; i < nspecial; i++) {
        v->type[v->n] = 3;
        v->tok[v->n++] = ss_strdup(i < 3 ? sp[i] : extra[i - 3]);
    }
    free(wordy);
    free(set);
    return 0;
}

static void free_vocab(vocab_t *v)
{
    for (int i = 0; v->tok && i < v->n; i++)
        free(v->tok[i]);
    for (int i = 0; v->merges && i < v->nm; i++)
        free(v->merges[i]);
    free(v->tok);
    free(v->merges);
    free(v->type);
}

/* ---------------- weights ---------------- */

typedef struct fill {
    uint64_t seed;
    int64_t cols;
    float scale, constant;
    int is_const;
} fill_t;

static void fill_row(void *ctx, int64_t row, float *out)
{
    fill_t *f = ctx;
    if (f->is_const) {
        for (int64_t i = 0; i < f->cols; i++)
            out[i] = f->constant;
        return;
    }
    uint64_t s = f->seed ^ ((uint64_t)row * 0x9e3779b97f4a7c15ull);
    for (int64_t i = 0; i < f->cols; i += 4) {
        uint64_t r = rng_next(&s);
        for (int k = 0; k < 4 && i + k < f->cols; k++)
            out[i + k] = (((float)((r >> (16 * k)) & 0xffff) / 65535.f) * 2.f - 1.f) * f->scale;
    }
}

typedef struct fills {
    fill_t *f;
    int n, cap;
} fills_t;

static fill_t *new_fill(fills_t *fs, uint64_t seed, int64_t cols, float scale)
{
    fill_t *f = &fs->f[fs->n++];
    *f = (fill_t){seed, cols, scale, 0.f, 0};
    return f;
}

static void add_mat(ss_gguf_writer_t *w, fills_t *fs, const char *name, int type, int64_t rows, int64_t cols,
                    uint64_t seed)
{
    int64_t ne[2] = {cols, rows};
    fill_t *f = new_fill(fs, seed ^ ss_hash64(name, strlen(name), 0), cols, 1.7f / sqrtf((float)cols));
    ss_gguf_w_tensor_fn(w, name, type, 2, ne, fill_row, f);
}

static void add_vec(ss_gguf_writer_t *w, fills_t *fs, const char *name, int64_t n, float c, uint64_t seed)
{
    int64_t ne[1] = {n};
    fill_t *f = new_fill(fs, seed ^ ss_hash64(name, strlen(name), 0), n, 0.1f);
    if (c != 0) {
        f->is_const = 1;
        f->constant = c;
    }
    ss_gguf_w_tensor_fn(w, name, SS_GGML_F32, 1, ne, fill_row, f);
}

static void write_meta(ss_gguf_writer_t *w, const ss_mkmodel_spec_t *s, const vocab_t *v)
{
    char k[128];
    const char *a = s->arch;
    ss_gguf_w_str(w, "general.architecture", a);
    ss_gguf_w_str(w, "general.name", s->name);
    ss_gguf_w_u32(w, "general.alignment", 32);
#define KEY(x) (snprintf(k, sizeof k, "%s." x, a), k)
    ss_gguf_w_u32(w, KEY("context_length"), (uint32_t)s->ctx);
    ss_gguf_w_u32(w, KEY("embedding_length"), (uint32_t)s->dim);
    ss_gguf_w_u32(w, KEY("block_count"), (uint32_t)s->n_layers);
    ss_gguf_w_u32(w, KEY("feed_forward_length"), (uint32_t)s->hidden);
    ss_gguf_w_u32(w, KEY("attention.head_count"), (uint32_t)s->n_heads);
    ss_gguf_w_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->n_kv_heads);
    ss_gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    ss_gguf_w_f32(w, KEY("rope.freq_base"), s->rope_base);
    ss_gguf_w_u32(w, KEY("rope.dimension_count"), (uint32_t)(s->dim / s->n_heads));
#undef KEY
    ss_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    ss_gguf_w_str(w, "tokenizer.ggml.pre", "gpt2");
    ss_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok, (size_t)v->n);
    ss_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v->type, (size_t)v->n);
    ss_gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, (size_t)v->nm);
    ss_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->eos);
    ss_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    ss_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 0);
    if (s->chat_template)
        ss_gguf_w_str(w, "tokenizer.chat_template", s->chat_template);
}

ss_err_t ss_mkmodel_write(const ss_mkmodel_spec_t *s, const char *path, char *err, size_t errsz)
{
    if (s->dim % s->n_heads || s->n_heads % s->n_kv_heads || s->n_layers <= 0 || s->vocab < 300)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "model shape '%s' is inconsistent", s->name);
    int bq = ss_ggml_block_elems(s->type);
    if (!bq || s->dim % bq || s->hidden % bq)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "type %s needs dim and ffn multiples of %d",
                         ss_ggml_type_name(s->type), bq);
    vocab_t v;
    memset(&v, 0, sizeof v);
    ss_gguf_writer_t *w = ss_gguf_writer_new();
    fills_t fs = {calloc((size_t)(16 * s->n_layers + 8), sizeof(fill_t)), 0, 16 * s->n_layers + 8};
    if (!w || !fs.f || build_vocab(&v, s->vocab, s->seed, s->special_tokens)) {
        free_vocab(&v);
        free(fs.f);
        ss_gguf_writer_destroy(w);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory building the vocabulary");
    }
    write_meta(w, s, &v);
    int hd = s->dim / s->n_heads, qd = s->n_heads * hd, kvd = s->n_kv_heads * hd;
    uint64_t seed = s->seed;
    add_mat(w, &fs, "token_embd.weight", s->type, s->vocab, s->dim, seed);
    add_vec(w, &fs, "output_norm.weight", s->dim, 1.f, seed);
    if (!s->tied)
        add_mat(w, &fs, "output.weight", s->type, s->vocab, s->dim, seed);
    char n[96];
    for (int l = 0; l < s->n_layers; l++) {
#define NM(x) (snprintf(n, sizeof n, "blk.%d." x, l), n)
        add_vec(w, &fs, NM("attn_norm.weight"), s->dim, 1.f, seed);
        add_mat(w, &fs, NM("attn_q.weight"), s->type, qd, s->dim, seed);
        add_mat(w, &fs, NM("attn_k.weight"), s->type, kvd, s->dim, seed);
        add_mat(w, &fs, NM("attn_v.weight"), s->type, kvd, s->dim, seed);
        if (s->qkv_bias) {
            add_vec(w, &fs, NM("attn_q.bias"), qd, 0.f, seed);
            add_vec(w, &fs, NM("attn_k.bias"), kvd, 0.f, seed);
            add_vec(w, &fs, NM("attn_v.bias"), kvd, 0.f, seed);
        }
        add_mat(w, &fs, NM("attn_output.weight"), s->type, s->dim, qd, seed);
        add_vec(w, &fs, NM("ffn_norm.weight"), s->dim, 1.f, seed);
        add_mat(w, &fs, NM("ffn_gate.weight"), s->type, s->hidden, s->dim, seed);
        add_mat(w, &fs, NM("ffn_up.weight"), s->type, s->hidden, s->dim, seed);
        add_mat(w, &fs, NM("ffn_down.weight"), s->type, s->dim, s->hidden, seed);
#undef NM
    }
    ss_err_t rc = ss_gguf_writer_save(w, path, err, errsz);
    ss_gguf_writer_destroy(w);
    free_vocab(&v);
    free(fs.f);
    return rc;
}
