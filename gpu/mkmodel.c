/*
 * mkmodel.c — writes GGUF v3 models with random (seeded) weights in the shape of a
 * real model, in any tensor type or in llama.cpp's Q4_K_M / Q5_K_M / Q6_K mixtures, with a
 * synthetic but valid tokenizer: byte-level BPE (256 byte tokens, generated merges up to
 * the vocabulary size, chat/EOS control tokens) under the pre-tokenizer name the shape's
 * family uses ("smollm", "qwen2", "llama-bpe", "gpt-2"), or SentencePiece ("llama" /
 * "default": byte-fallback tokens, scored pieces). Used by tools/mkgguf (benchmark
 * models) and tests. The work a forward pass does does not depend on the weight values,
 * so speed measured on these is real speed.
 */
#include "ss_gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ss_mkmodel_spec_t shapes[] = {
    {"smollm2-135m", "llama", 576, 30, 9, 3, 1536, 49152, 8192, 100000.f, 0, 1, SS_GGML_Q8_0, 1, NULL, "smollm", 0, 0, 0, NULL},
    {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1000000.f, 1, 1, SS_GGML_Q8_0, 1, NULL, "qwen2", 0, 0,
     0, NULL},
    {"llama-3.2-1b", "llama", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.f, 0, 1, SS_GGML_Q8_0, 1, NULL, "llama-bpe",
     0, 0, 0, NULL},
    {"tiny-qwen2", "qwen2", 64, 2, 4, 2, 128, 600, 512, 10000.f, 1, 1, SS_GGML_F32, 1, NULL, "gpt-2", 0, 0, 0, NULL},
    {"tiny-llama", "llama", 64, 2, 4, 4, 160, 600, 512, 10000.f, 0, 0, SS_GGML_F32, 1, NULL, "gpt-2", 0, 0, 0, NULL},
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

int ss_mkmodel_mix_parse(const char *name)
{
    static const struct { const char *n; int m; } k[] = {
        {"q4_k_m", SS_MIX_Q4_K_M}, {"q5_k_m", SS_MIX_Q5_K_M}, {"q6_k", SS_MIX_Q6_K}, {"none", SS_MIX_NONE}};
    for (size_t i = 0; i < SS_ARRAY_LEN(k); i++)
        if (!strcasecmp(name, k[i].n))
            return k[i].m;
    return -1;
}

/* llama.cpp's layers with more bits: the first and last eighth, and every third in between. */
static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* A type whose block does not divide the row length, replaced as llama-quantize does. */
static int fallback(int t, int64_t cols)
{
    if (cols % ss_ggml_block_elems(t) == 0)
        return t;
    switch (t) {
    case SS_GGML_Q4_K: t = SS_GGML_Q5_0; break;
    case SS_GGML_Q5_K: t = SS_GGML_Q5_1; break;
    case SS_GGML_Q6_K: t = SS_GGML_Q8_0; break;
    case SS_GGML_Q2_K: case SS_GGML_Q3_K: case SS_GGML_IQ4_XS: t = SS_GGML_IQ4_NL; break;
    default: break;
    }
    return cols % ss_ggml_block_elems(t) == 0 ? t : SS_GGML_F16;
}

int ss_mkmodel_tensor_type(const ss_mkmodel_spec_t *s, const char *kind, int layer, int64_t cols)
{
    int t = s->type;
    if (s->mix != SS_MIX_NONE) {
        t = s->mix == SS_MIX_Q4_K_M ? SS_GGML_Q4_K : s->mix == SS_MIX_Q5_K_M ? SS_GGML_Q5_K : SS_GGML_Q6_K;
        if (!strcmp(kind, "output.weight") || (s->tied && !strcmp(kind, "token_embd.weight")))
            t = SS_GGML_Q6_K;
        else if ((!strcmp(kind, "attn_v.weight") || !strcmp(kind, "ffn_down.weight")) && layer >= 0 &&
                 more_bits(layer, s->n_layers))
            t = SS_GGML_Q6_K;
    }
    return fallback(t, cols);
}

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
    float *score;  /* SentencePiece: merge priority of each piece */
    int bos, eos, unk;
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

static int vocab_alloc(vocab_t *v, int size, uint64_t **set, size_t *scap, int **wordy)
{
    v->tok = calloc((size_t)size, sizeof *v->tok);
    v->merges = calloc((size_t)size, sizeof *v->merges);
    v->type = calloc((size_t)size, sizeof *v->type);
    v->score = calloc((size_t)size, sizeof *v->score);
    *wordy = calloc((size_t)size, sizeof **wordy);
    *scap = 1024;
    while (*scap < 4 * (size_t)size)
        *scap *= 2;
    *set = calloc(*scap, sizeof **set);
    return v->tok && v->merges && v->type && v->score && *wordy && *set ? 0 : -1;
}

static void add_piece(vocab_t *v, char *text, int type, uint64_t *set, size_t scap)
{
    v->type[v->n] = type;
    v->score[v->n] = 0;
    seen_add(set, scap, text);
    v->tok[v->n++] = text;
}

/* Random word-like merges of pieces in wordy (the space marker only leads a piece) until the
 * vocabulary holds target pieces; SentencePiece scores fall with creation order (earlier
 * merges win, like BPE ranks). */
static void grow_merges(vocab_t *v, int target, int *wordy, int nw, uint64_t *set, size_t scap, uint64_t seed,
                        const char *space, int spm)
{
    uint64_t s = seed ^ 0xabcdef;
    size_t sl = strlen(space);
    for (int tries = 0; v->n < target && tries < 50 * target; tries++) {
        const char *a = v->tok[wordy[rng_next(&s) % (uint64_t)nw]];
        const char *b = v->tok[wordy[rng_next(&s) % (uint64_t)nw]];
        if (!strncmp(b, space, sl) || strlen(a) + strlen(b) > 24)
            continue;
        char *cat = ss_sprintf("%s%s", a, b);
        if (!cat || !seen_add(set, scap, cat)) {
            free(cat);
            continue;
        }
        if (!spm)
            v->merges[v->nm++] = ss_sprintf("%s %s", a, b);
        v->type[v->n] = 1;
        v->score[v->n] = -(float)v->n;
        wordy[nw++] = v->n;
        v->tok[v->n++] = cat;
    }
    while (v->n < target) { /* filler, never produced by merges */
        v->type[v->n] = 1;
        v->score[v->n] = -1e9f;
        v->tok[v->n] = ss_sprintf("<unused%d>", v->n);
        v->n++;
    }
}

static int count_extra(const char *const *extra)
{
    int n = 0;
    while (extra && extra[n])
        n++;
    return n;
}

/* Byte-level BPE: the 256 byte symbols, word-like merges, then the control tokens
 * <|endoftext|> (BOS and EOS), <|im_start|>, <|im_end|> and the extra ones (a chat
 * template's markers). */
static int build_bpe(vocab_t *v, int size, uint64_t seed, const char *const *extra)
{
    int nextra = count_extra(extra), nspecial = 3 + nextra, *wordy = NULL, nw = 0;
    uint64_t *set = NULL;
    size_t scap = 0;
    if (vocab_alloc(v, size, &set, &scap, &wordy) || size - nspecial < 256) {
        free(wordy);
        free(set);
        return -1;
    }
    for (int b = 0; b < 256; b++) {
        if ((b >= 'a' && b <= 'z') || b == ' ')
            wordy[nw++] = v->n;
        add_piece(v, utf8_of(byte_cp(b)), 1, set, scap);
    }
    grow_merges(v, size - nspecial, wordy, nw, set, scap, seed, "\xc4\xa0", 0);
    static const char *sp[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    v->bos = v->eos = v->n;
    for (int i = 0; i < nspecial; i++)
        add_piece(v, ss_strdup(i < 3 ? sp[i] : extra[i - 3]), 3, set, scap);
    v->unk = -1;
    free(wordy);
    free(set);
    return 0;
}

/* SentencePiece: <unk> <s> </s>, the 256 <0xNN> byte-fallback tokens, the space marker U+2581
 * and the letters, then scored word-like pieces, the extra control tokens last. */
static int build_spm(vocab_t *v, int size, uint64_t seed, const char *const *extra)
{
    int nextra = count_extra(extra), *wordy = NULL, nw = 0;
    uint64_t *set = NULL;
    size_t scap = 0;
    if (vocab_alloc(v, size, &set, &scap, &wordy) || size - nextra < 3 + 256 + 64) {
        free(wordy);
        free(set);
        return -1;
    }
    add_piece(v, ss_strdup("<unk>"), 2, set, scap);
    add_piece(v, ss_strdup("<s>"), 3, set, scap);
    add_piece(v, ss_strdup("</s>"), 3, set, scap);
    for (int b = 0; b < 256; b++)
        add_piece(v, ss_sprintf("<0x%02X>", b), 6, set, scap);
    wordy[nw++] = v->n;
    add_piece(v, ss_strdup("\xe2\x96\x81"), 1, set, scap);
    static const char *chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,'";
    for (const char *c = chars; *c; c++) {
        char t[2] = {*c, 0};
        if (*c >= 'a' && *c <= 'z')
            wordy[nw++] = v->n;
        add_piece(v, ss_strdup(t), 1, set, scap);
    }
    grow_merges(v, size - nextra, wordy, nw, set, scap, seed, "\xe2\x96\x81", 1);
    for (int i = 0; i < nextra; i++)
        add_piece(v, ss_strdup(extra[i]), 3, set, scap);
    v->bos = 1;
    v->eos = 2;
    v->unk = 0;
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
    free(v->score);
}

/* ---------------- weights ---------------- */

typedef struct fill {
    uint64_t seed;
    int64_t cols;
    float scale, constant;
    int is_const;
    int qtype;        /* dequantized twin: the values of this type (else -1) */
    uint8_t *scratch; /* its row bytes */
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
    if (f->qtype >= 0 && f->scratch) {
        ss_ggml_from_f32(f->qtype, out, f->scratch, f->cols);
        ss_ggml_to_f32(f->qtype, f->scratch, out, f->cols);
    }
}

typedef struct fills {
    fill_t *f;
    int n, cap;
} fills_t;

static fill_t *new_fill(fills_t *fs, uint64_t seed, int64_t cols, float scale)
{
    fill_t *f = &fs->f[fs->n++];
    *f = (fill_t){seed, cols, scale, 0.f, 0, -1, NULL};
    return f;
}

static void free_fills(fills_t *fs)
{
    for (int i = 0; fs->f && i < fs->n; i++)
        free(fs->f[i].scratch);
    free(fs->f);
}

/* A matrix (rows x cols): its type from the spec's recipe, random values scaled like a real
 * model's; the dequantized twin writes F32 rows holding what that type stores. */
static void add_mat(ss_gguf_writer_t *w, fills_t *fs, const ss_mkmodel_spec_t *s, const char *name, const char *kind,
                    int layer, int64_t rows, int64_t cols)
{
    int64_t ne[2] = {cols, rows};
    int type = ss_mkmodel_tensor_type(s, kind, layer, cols);
    fill_t *f = new_fill(fs, s->seed ^ ss_hash64(name, strlen(name), 0), cols, 1.7f / sqrtf((float)cols));
    if (s->dequantized && type != SS_GGML_F32) {
        f->qtype = type;
        f->scratch = malloc(ss_ggml_row_bytes(type, cols));
        type = SS_GGML_F32;
    }
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

/* llama.cpp's general.file_type of the spec (what llama-quantize would record). */
static int file_type(const ss_mkmodel_spec_t *s)
{
    static const int ft[][2] = {{SS_GGML_F32, 0},  {SS_GGML_F16, 1},   {SS_GGML_Q4_0, 2},    {SS_GGML_Q4_1, 3},
                                {SS_GGML_Q8_0, 7}, {SS_GGML_Q5_0, 8},  {SS_GGML_Q5_1, 9},    {SS_GGML_Q2_K, 10},
                                {SS_GGML_Q3_K, 12}, {SS_GGML_Q4_K, 14}, {SS_GGML_Q5_K, 16},  {SS_GGML_Q6_K, 18},
                                {SS_GGML_IQ4_NL, 25}, {SS_GGML_IQ4_XS, 30}, {SS_GGML_BF16, 32}};
    if (s->dequantized)
        return 0;
    if (s->mix != SS_MIX_NONE)
        return s->mix == SS_MIX_Q4_K_M ? 15 : s->mix == SS_MIX_Q5_K_M ? 17 : 18;
    for (size_t i = 0; i < SS_ARRAY_LEN(ft); i++)
        if (ft[i][0] == s->type)
            return ft[i][1];
    return 0;
}

static void write_meta(ss_gguf_writer_t *w, const ss_mkmodel_spec_t *s, const vocab_t *v)
{
    char k[128];
    const char *a = s->arch;
    ss_gguf_w_str(w, "general.architecture", a);
    ss_gguf_w_str(w, "general.name", s->name);
    ss_gguf_w_u32(w, "general.file_type", (uint32_t)file_type(s));
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
    ss_gguf_w_str(w, "tokenizer.ggml.model", s->spm ? "llama" : "gpt2");
    ss_gguf_w_str(w, "tokenizer.ggml.pre", s->spm ? "default" : s->pre ? s->pre : "gpt-2");
    ss_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok, (size_t)v->n);
    ss_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v->type, (size_t)v->n);
    if (s->spm)
        ss_gguf_w_arr_f32(w, "tokenizer.ggml.scores", v->score, (size_t)v->n);
    else
        ss_gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, (size_t)v->nm);
    ss_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    ss_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->unk >= 0)
        ss_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    ss_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", s->spm);
    if (s->chat_template)
        ss_gguf_w_str(w, "tokenizer.chat_template", s->chat_template);
}

ss_err_t ss_mkmodel_write(const ss_mkmodel_spec_t *s, const char *path, char *err, size_t errsz)
{
    if (s->dim % s->n_heads || s->n_heads % s->n_kv_heads || s->n_layers <= 0 || s->vocab < (s->spm ? 400 : 300))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "model shape '%s' is inconsistent", s->name);
    int bq = s->mix == SS_MIX_NONE ? ss_ggml_block_elems(s->type) : 32;
    if (!bq || s->dim % bq || s->hidden % bq)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "type %s needs dim and ffn multiples of %d",
                         ss_ggml_type_name(s->type), bq);
    vocab_t v;
    memset(&v, 0, sizeof v);
    ss_gguf_writer_t *w = ss_gguf_writer_new();
    fills_t fs = {calloc((size_t)(16 * s->n_layers + 8), sizeof(fill_t)), 0, 16 * s->n_layers + 8};
    if (!w || !fs.f ||
        (s->spm ? build_spm(&v, s->vocab, s->seed, s->special_tokens)
                : build_bpe(&v, s->vocab, s->seed, s->special_tokens))) {
        free_vocab(&v);
        free_fills(&fs);
        ss_gguf_writer_destroy(w);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory building the vocabulary");
    }
    write_meta(w, s, &v);
    int hd = s->dim / s->n_heads, qd = s->n_heads * hd, kvd = s->n_kv_heads * hd;
    uint64_t seed = s->seed;
    add_mat(w, &fs, s, "token_embd.weight", "token_embd.weight", -1, s->vocab, s->dim);
    add_vec(w, &fs, "output_norm.weight", s->dim, 1.f, seed);
    if (!s->tied)
        add_mat(w, &fs, s, "output.weight", "output.weight", -1, s->vocab, s->dim);
    char n[96];
    for (int l = 0; l < s->n_layers; l++) {
#define NM(x) (snprintf(n, sizeof n, "blk.%d." x, l), n)
        add_vec(w, &fs, NM("attn_norm.weight"), s->dim, 1.f, seed);
        add_mat(w, &fs, s, NM("attn_q.weight"), "attn_q.weight", l, qd, s->dim);
        add_mat(w, &fs, s, NM("attn_k.weight"), "attn_k.weight", l, kvd, s->dim);
        add_mat(w, &fs, s, NM("attn_v.weight"), "attn_v.weight", l, kvd, s->dim);
        if (s->qkv_bias) {
            add_vec(w, &fs, NM("attn_q.bias"), qd, 0.f, seed);
            add_vec(w, &fs, NM("attn_k.bias"), kvd, 0.f, seed);
            add_vec(w, &fs, NM("attn_v.bias"), kvd, 0.f, seed);
        }
        add_mat(w, &fs, s, NM("attn_output.weight"), "attn_output.weight", l, s->dim, qd);
        add_vec(w, &fs, NM("ffn_norm.weight"), s->dim, 1.f, seed);
        add_mat(w, &fs, s, NM("ffn_gate.weight"), "ffn_gate.weight", l, s->hidden, s->dim);
        add_mat(w, &fs, s, NM("ffn_up.weight"), "ffn_up.weight", l, s->hidden, s->dim);
        add_mat(w, &fs, s, NM("ffn_down.weight"), "ffn_down.weight", l, s->dim, s->hidden);
#undef NM
    }
    ss_err_t rc = ss_gguf_writer_save(w, path, err, errsz);
    ss_gguf_writer_destroy(w);
    free_vocab(&v);
    free_fills(&fs);
    return rc;
}
