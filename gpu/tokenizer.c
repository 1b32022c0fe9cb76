/*
 * tokenizer.c — tokenizers read from GGUF metadata:
 *   - SentencePiece-style (tokenizer.ggml.model = "llama"): spaces become U+2581,
 *     an optional leading space, greedy merging of the adjacent pair whose merged
 *     piece has the highest score, byte fallback to <0xNN> tokens;
 *   - byte-level BPE ("gpt2"): GPT-2's byte-to-unicode mapping, the pre-tokenization
 *     regex of the family named by tokenizer.ggml.pre (gpt-2, llama-bpe, qwen2, smollm)
 *     over Unicode letter/number/space classes, merges applied by rank.
 * Control and user-defined tokens (BOS/EOS, chat-template markers) found in the
 * text are emitted as single tokens. Owns tokenizer_t and the string map.
 */
#include "llm_internal.h"
#include "unicode_tab.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- string -> int map ---------------- */

struct strmap {
    const char **k;
    int *klen;
    int *v;
    size_t cap, n;
};

static strmap_t *sm_new(size_t n)
{
    strmap_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 16;
    while (m->cap < 2 * n + 16)
        m->cap *= 2;
    m->k = calloc(m->cap, sizeof *m->k);
    m->klen = calloc(m->cap, sizeof *m->klen);
    m->v = calloc(m->cap, sizeof *m->v);
    if (!m->k || !m->klen || !m->v) {
        free(m->k); free(m->klen); free(m->v); free(m);
        return NULL;
    }
    return m;
}

static void sm_free(strmap_t *m)
{
    if (!m)
        return;
    free(m->k); free(m->klen); free(m->v); free(m);
}

/* Keys are borrowed (must outlive the map); first insert of a key wins. */
static void sm_put(strmap_t *m, const char *k, int n, int v)
{
    size_t mask = m->cap - 1;
    for (size_t j = ss_hash64(k, (size_t)n, 7) & mask;; j = (j + 1) & mask) {
        if (!m->k[j]) {
            m->k[j] = k;
            m->klen[j] = n;
            m->v[j] = v;
            m->n++;
            return;
        }
        if (m->klen[j] == n && !memcmp(m->k[j], k, (size_t)n))
            return;
    }
}

static int sm_get(const strmap_t *m, const char *k, int n)
{
    if (!m)
        return -1;
    size_t mask = m->cap - 1;
    for (size_t j = ss_hash64(k, (size_t)n, 7) & mask;; j = (j + 1) & mask) {
        if (!m->k[j])
            return -1;
        if (m->klen[j] == n && !memcmp(m->k[j], k, (size_t)n))
            return m->v[j];
    }
}

/* ---------------- loading ---------------- */

static int utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

/* GPT-2 bytes_to_unicode: codepoint of byte b. */
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

static int put_utf8(char *o, int cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 63));
    o[2] = (char)(0x80 | (cp & 63));
    return 3;
}

static char g_byte_utf8[256][4];
static int g_byte_utf8_len[256];
static int g_cp_byte[512]; /* inverse, -1 where no byte */

static void init_byte_maps_once(void)
{
    for (int i = 0; i < 512; i++)
        g_cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int cp = byte_cp(b);
        g_cp_byte[cp] = b;
        g_byte_utf8_len[b] = put_utf8(g_byte_utf8[b], cp);
    }
}

static void init_byte_maps(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_byte_maps_once);
}

static int cmp_len_desc(const void *a, const void *b, void *t)
{
    const tokenizer_t *k = t;
    return k->len[*(const int *)b] - k->len[*(const int *)a];
}

static ss_err_t load_vocab(tokenizer_t *t, const ss_gguf_t *g, char *err, size_t errsz)
{
    const ss_gguf_kv_t *kv = ss_gguf_find(g, "tokenizer.ggml.tokens");
    if (!kv || kv->type != SS_GGUF_ARRAY || kv->atype != SS_GGUF_STRING || kv->n == 0 || kv->n > (1u << 24))
        return ss_seterr(err, errsz, SS_ERR_MODEL, "metadata tokenizer.ggml.tokens missing or not a string array");
    t->n = (int)kv->n;
    t->text = calloc((size_t)t->n, sizeof *t->text);
    t->len = calloc((size_t)t->n, sizeof *t->len);
    t->score = calloc((size_t)t->n, sizeof *t->score);
    t->type = calloc((size_t)t->n, sizeof *t->type);
    t->vocab = sm_new((size_t)t->n);
    if (!t->text || !t->len || !t->score || !t->type || !t->vocab)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory loading the vocabulary");
    size_t pos = 0;
    for (int i = 0; i < t->n; i++) {
        ss_gguf_str_t s;
        ss_gguf_str_iter(kv, &pos, &s);
        if (s.n > 1024)
            return ss_seterr(err, errsz, SS_ERR_MODEL, "token %d is %llu bytes long", i, (unsigned long long)s.n);
        t->text[i] = ss_strndup(s.p, s.n);
        if (!t->text[i])
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory loading the vocabulary");
        t->len[i] = (int)s.n;
        t->type[i] = 1;
    }
    const ss_gguf_kv_t *sc = ss_gguf_find(g, "tokenizer.ggml.scores");
    const ss_gguf_kv_t *ty = ss_gguf_find(g, "tokenizer.ggml.token_type");
    for (int i = 0; i < t->n; i++) {
        if (sc && sc->type == SS_GGUF_ARRAY && sc->n == kv->n)
            t->score[i] = (float)ss_gguf_arr_f64(sc, (uint64_t)i);
        if (ty && ty->type == SS_GGUF_ARRAY && ty->n == kv->n)
            t->type[i] = (int)ss_gguf_arr_i64(ty, (uint64_t)i);
        sm_put(t->vocab, t->text[i], t->len[i], i);
    }
    return SS_OK;
}

static ss_err_t load_merges(tokenizer_t *t, const ss_gguf_t *g, char *err, size_t errsz)
{
    const ss_gguf_kv_t *kv = ss_gguf_find(g, "tokenizer.ggml.merges");
    if (!kv || kv->type != SS_GGUF_ARRAY || kv->atype != SS_GGUF_STRING)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "gpt2 tokenizer without tokenizer.ggml.merges");
    t->merges = sm_new(kv->n);
    if (!t->merges)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory loading merges");
    size_t pos = 0;
    for (uint64_t i = 0; i < kv->n; i++) {
        ss_gguf_str_t s;
        ss_gguf_str_iter(kv, &pos, &s);
        sm_put(t->merges, s.p, (int)s.n, (int)i); /* points into the mapping */
    }
    return SS_OK;
}

/* tokenizer.ggml.pre: which regex splits the text before BPE (the names llama.cpp's converter
 * writes). Absent or "default" is GPT-2's; "gpt2" is what earlier semstream files wrote. */
static ss_err_t load_pre(tokenizer_t *t, const ss_gguf_t *g, char *err, size_t errsz)
{
    static const struct { const char *name; int pre; } k[] = {
        {"default", PRE_GPT2}, {"gpt-2", PRE_GPT2},    {"gpt2", PRE_GPT2},     {"llama-bpe", PRE_LLAMA3},
        {"llama3", PRE_LLAMA3}, {"llama-v3", PRE_LLAMA3}, {"qwen2", PRE_QWEN2}, {"smollm", PRE_SMOLLM},
    };
    ss_gguf_str_t p;
    t->pre = PRE_GPT2;
    if (!ss_gguf_get_str(g, "tokenizer.ggml.pre", &p))
        return SS_OK;
    for (size_t i = 0; i < SS_ARRAY_LEN(k); i++)
        if (p.n == strlen(k[i].name) && !memcmp(p.p, k[i].name, p.n)) {
            t->pre = k[i].pre;
            return SS_OK;
        }
    return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED,
                     "tokenizer.ggml.pre '%.*s' is not supported (gpt-2, llama-bpe, qwen2, smollm and default are)",
                     (int)SS_MIN(p.n, 40), p.p);
}

static void find_specials(tokenizer_t *t)
{
    t->special = malloc((size_t)t->n * sizeof *t->special);
    if (!t->special)
        return;
    for (int i = 0; i < t->n; i++)
        if ((t->type[i] == 3 || t->type[i] == 4) && t->len[i] > 0)
            t->special[t->nspecial++] = i;
    qsort_r(t->special, (size_t)t->nspecial, sizeof *t->special, cmp_len_desc, t);
}

int tok_load(tokenizer_t *t, const ss_gguf_t *g, char *err, size_t errsz)
{
    memset(t, 0, sizeof *t);
    init_byte_maps();
    ss_gguf_str_t model;
    if (!ss_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return ss_seterr(err, errsz, SS_ERR_MODEL, "metadata tokenizer.ggml.model missing");
    if (model.n == 5 && !memcmp(model.p, "llama", 5))
        t->kind = TOK_SPM;
    else if (model.n == 4 && !memcmp(model.p, "gpt2", 4))
        t->kind = TOK_BPE;
    else
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "tokenizer model '%.*s' is not supported (llama, gpt2 are)",
                         (int)SS_MIN(model.n, 40), model.p);
    ss_err_t rc = load_vocab(t, g, err, errsz);
    if (!rc && t->kind == TOK_BPE)
        rc = load_merges(t, g, err, errsz);
    if (!rc && t->kind == TOK_BPE)
        rc = load_pre(t, g, err, errsz);
    if (rc)
        return rc;
    int64_t v;
    t->bos = ss_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", &v) && v >= 0 && v < t->n ? (int)v : -1;
    t->eos = ss_gguf_get_i64(g, "tokenizer.ggml.eos_token_id", &v) && v >= 0 && v < t->n ? (int)v : -1;
    t->unk = ss_gguf_get_i64(g, "tokenizer.ggml.unknown_token_id", &v) && v >= 0 && v < t->n ? (int)v : -1;
    t->add_space_prefix = ss_gguf_get_i64(g, "tokenizer.ggml.add_space_prefix", &v) ? (int)v : t->kind == TOK_SPM;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_tok[b] = sm_get(t->vocab, name, 6);
    }
    find_specials(t);
    return SS_OK;
}

void tok_free(tokenizer_t *t)
{
    if (t->text)
        for (int i = 0; i < t->n; i++)
            free(t->text[i]);
    free(t->text);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->special);
    sm_free(t->vocab);
    sm_free(t->merges);
    memset(t, 0, sizeof *t);
}

/* ---------------- shared merge loop ---------------- */

/* Symbols are byte ranges [off, off+len) of buf; linked list. */
typedef struct sym {
    int off, len, prev, next;
    float pri; /* priority of merging with next (higher first); -inf if none */
} sym_t;

typedef struct out {
    int **toks;
    int *n, *cap;
} out_t;

static int emit(out_t *o, int id)
{
    if (*o->n == *o->cap) {
        int nc = *o->cap ? 2 * *o->cap : 64;
        int *p = realloc(*o->toks, (size_t)nc * sizeof *p);
        if (!p)
            return -1;
        *o->toks = p;
        *o->cap = nc;
    }
    (*o->toks)[(*o->n)++] = id;
    return 0;
}

#define NOPRI (-1e30f)

/* priority of merging symbols a and b: SPM = score of merged piece, BPE = -rank */
static float pair_pri(const tokenizer_t *t, const char *buf, const sym_t *a, const sym_t *b, char *tmp)
{
    if (t->kind == TOK_SPM) {
        int id = sm_get(t->vocab, buf + a->off, a->len + b->len);
        return id < 0 ? NOPRI : t->score[id];
    }
    if (a->len + b->len + 1 > 512)
        return NOPRI;
    memcpy(tmp, buf + a->off, (size_t)a->len);
    tmp[a->len] = ' ';
    memcpy(tmp + a->len + 1, buf + b->off, (size_t)b->len);
    int r = sm_get(t->merges, tmp, a->len + b->len + 1);
    return r < 0 ? NOPRI : -(float)r;
}

/* Candidate merges in a binary heap: best priority first, leftmost on ties (the order a
 * linear scan would pick); entries whose symbols changed since are skipped when popped. */
typedef struct cand {
    float pri;
    int left, right, len;
} cand_t;

static int cand_before(const cand_t *a, const cand_t *b)
{
    return a->pri > b->pri || (a->pri == b->pri && a->left < b->left);
}

static void heap_push(cand_t *h, int *n, cand_t c)
{
    int i = (*n)++;
    h[i] = c;
    while (i > 0 && cand_before(&h[i], &h[(i - 1) / 2])) {
        cand_t t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static cand_t heap_pop(cand_t *h, int *n)
{
    cand_t top = h[0];
    h[0] = h[--(*n)];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, b = i;
        if (l < *n && cand_before(&h[l], &h[b]))
            b = l;
        if (r < *n && cand_before(&h[r], &h[b]))
            b = r;
        if (b == i)
            break;
        cand_t t = h[i];
        h[i] = h[b];
        h[b] = t;
        i = b;
    }
    return top;
}

static void push_pair(const tokenizer_t *t, const char *buf, sym_t *s, int a, cand_t *h, int *nh, char *tmp)
{
    int b = s[a].next;
    if (b < 0)
        return;
    float p = pair_pri(t, buf, &s[a], &s[b], tmp);
    if (p > NOPRI)
        heap_push(h, nh, (cand_t){p, a, b, s[a].len + s[b].len});
}

static int merge_and_emit(const tokenizer_t *t, const char *buf, int n, out_t *o)
{
    int ns = 0, nh = 0;
    sym_t *s = malloc((size_t)(n + 1) * sizeof *s);
    cand_t *h = malloc((size_t)(3 * n + 2) * sizeof *h); /* <= n initial + 2 per merge */
    char tmp[520];
    if (!s || !h) {
        free(s);
        free(h);
        return -1;
    }
    for (int i = 0; i < n; ns++) {
        int l = SS_MIN(utf8_len((unsigned char)buf[i]), n - i);
        s[ns] = (sym_t){i, l, ns - 1, -1, NOPRI};
        if (ns)
            s[ns - 1].next = ns;
        i += l;
    }
    for (int i = 0; i + 1 < ns; i++)
        push_pair(t, buf, s, i, h, &nh, tmp);
    while (nh > 0) {
        cand_t c = heap_pop(h, &nh);
        if (s[c.left].len == 0 || s[c.left].next != c.right || s[c.right].len == 0 ||
            s[c.left].len + s[c.right].len != c.len)
            continue; /* stale */
        int best = c.left, nx = c.right;
        s[best].len += s[nx].len;
        s[best].next = s[nx].next;
        if (s[nx].next >= 0)
            s[s[nx].next].prev = best;
        s[nx].len = 0;
        push_pair(t, buf, s, best, h, &nh, tmp);
        if (s[best].prev >= 0)
            push_pair(t, buf, s, s[best].prev, h, &nh, tmp);
    }
    int rc = 0;
    for (int i = 0; i >= 0 && i < ns && !rc; i = s[i].next) {
        int id = sm_get(t->vocab, buf + s[i].off, s[i].len);
        if (id >= 0) {
            rc = emit(o, id);
            continue;
        }
        for (int k = 0; k < s[i].len && !rc; k++) { /* byte fallback */
            unsigned char ch = (unsigned char)buf[s[i].off + k];
            int b = t->kind == TOK_SPM ? t->byte_tok[ch]
                                       : sm_get(t->vocab, g_byte_utf8[ch], g_byte_utf8_len[ch]);
            if (b < 0)
                b = t->unk;
            if (b >= 0)
                rc = emit(o, b);
        }
    }
    free(s);
    free(h);
    return rc;
}

/* ---------------- SentencePiece ---------------- */

static int spm_fragment(const tokenizer_t *t, const char *text, size_t n, int prefix, out_t *o)
{
    char *buf = malloc(3 * n + 4);
    if (!buf)
        return -1;
    int k = 0;
    if (prefix) {
        memcpy(buf, "\xe2\x96\x81", 3);
        k = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') {
            memcpy(buf + k, "\xe2\x96\x81", 3);
            k += 3;
        } else {
            buf[k++] = text[i];
        }
    }
    int rc = merge_and_emit(t, buf, k, o);
    free(buf);
    return rc;
}

/* ---------------- byte-level BPE: pre-tokenization ----------------
 * The text is split into pieces by the regex of the family (tokenizer.ggml.pre), each piece
 * then merged on its own. The regexes, as llama.cpp and the Hugging Face tokenizers apply them:
 *   gpt-2     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   llama-bpe (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *             ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+          (Llama 3)
 *   qwen2     the same with \p{N} (one digit per piece)
 *   smollm    \p{N} (every digit alone), then gpt-2 on the rest
 * Each is a hand-written matcher over code points classified with the Unicode tables of
 * unicode_tab.h (letters, numbers, White_Space); invalid UTF-8 bytes count as "other". Every
 * position starts a match (the alternatives cover all classes), so the pieces partition the
 * text. */

enum { C_L = 1, C_N = 2, C_S = 4, C_NL = 8 };

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

static int cp_class(uint32_t cp)
{
    if (cp < 128) {
        if ((cp | 32) >= 'a' && (cp | 32) <= 'z')
            return C_L;
        if (cp >= '0' && cp <= '9')
            return C_N;
        if (cp == '\n' || cp == '\r')
            return C_S | C_NL;
        return cp == ' ' || (cp >= 9 && cp <= 13) ? C_S : 0;
    }
    if (in_ranges(uc_letter, SS_ARRAY_LEN(uc_letter), cp))
        return C_L;
    if (in_ranges(uc_number, SS_ARRAY_LEN(uc_number), cp))
        return C_N;
    return in_ranges(uc_space, SS_ARRAY_LEN(uc_space), cp) ? C_S : 0;
}

/* Decodes UTF-8 into code points with their byte offsets (off[n] = len); a byte that does not
 * start a valid sequence is a code point of its own (class "other"). */
static size_t utf8_decode(const char *s, size_t len, uint32_t *cp, uint32_t *off, uint8_t *cls)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c = u[i];
        int l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = l > 0 && i + (size_t)l <= len;
        for (int k = 1; ok && k < l; k++)
            ok = (u[i + k] & 0xC0) == 0x80;
        if (ok && l > 1) {
            c &= 0x7Fu >> l;
            for (int k = 1; k < l; k++)
                c = (c << 6) | (u[i + k] & 0x3F);
        }
        off[n] = (uint32_t)i;
        cp[n] = c;
        cls[n] = ok ? (uint8_t)cp_class(c) : 0;
        n++;
        i += ok ? (size_t)l : 1;
    }
    off[n] = (uint32_t)len;
    return n;
}

static size_t run(const uint8_t *cls, size_t n, size_t i, int want)
{
    size_t j = i;
    while (j < n && (cls[j] & want))
        j++;
    return j - i;
}

static int other(uint8_t c) { return !(c & (C_L | C_N | C_S)); }

static size_t run_other(const uint8_t *cls, size_t n, size_t i)
{
    size_t j = i;
    while (j < n && other(cls[j]))
        j++;
    return j - i;
}

/* 's 't 're 've 'm 'll 'd (ci: any case) at i: its length, else 0. */
static size_t contraction(const uint32_t *cp, size_t n, size_t i, int ci)
{
    if (cp[i] != '\'' || i + 1 >= n)
        return 0;
    uint32_t a = cp[i + 1], b = i + 2 < n ? cp[i + 2] : 0;
    if (ci && a < 128 && b < 128) {
        a |= (a >= 'A' && a <= 'Z') ? 32 : 0;
        b |= (b >= 'A' && b <= 'Z') ? 32 : 0;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s+(?!\S)|\s+ at i (cls[i] is whitespace). */
static size_t spaces(const uint8_t *cls, size_t n, size_t i)
{
    size_t k = run(cls, n, i, C_S);
    return i + k < n && k > 1 ? k - 1 : k;
}

static size_t m_gpt2(const uint32_t *cp, const uint8_t *cls, size_t n, size_t i)
{
    size_t k = contraction(cp, n, i, 0);
    if (k)
        return k;
    size_t sp = cp[i] == ' ' && i + 1 < n ? 1 : 0;
    uint8_t c = cls[i + sp];
    if (sp && !(c & C_S)) { /* " " then a letter, number or other run */
        if (c & C_L)
            return 1 + run(cls, n, i + 1, C_L);
        if (c & C_N)
            return 1 + run(cls, n, i + 1, C_N);
        return 1 + run_other(cls, n, i + 1);
    }
    c = cls[i];
    if (c & C_L)
        return run(cls, n, i, C_L);
    if (c & C_N)
        return run(cls, n, i, C_N);
    if (other(c))
        return run_other(cls, n, i);
    return spaces(cls, n, i);
}

static size_t m_llama3(const uint32_t *cp, const uint8_t *cls, size_t n, size_t i, int maxdig)
{
    size_t k = contraction(cp, n, i, 1);
    if (k)
        return k;
    uint8_t c = cls[i];
    if (!(c & (C_NL | C_L | C_N)) && i + 1 < n && (cls[i + 1] & C_L)) /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        return 1 + run(cls, n, i + 1, C_L);
    if (c & C_L)
        return run(cls, n, i, C_L);
    if (c & C_N) {
        k = run(cls, n, i, C_N);
        return k < (size_t)maxdig ? k : (size_t)maxdig;
    }
    size_t sp = cp[i] == ' ' && i + 1 < n && other(cls[i + 1]) ? 1 : 0; /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (sp || other(c)) {
        k = sp + run_other(cls, n, i + sp);
        return k + run(cls, n, i + k, C_NL);
    }
    k = run(cls, n, i, C_S); /* \s*[\r\n]+: through the run's last newline */
    for (size_t j = k; j > 0; j--)
        if (cls[i + j - 1] & C_NL)
            return j;
    return spaces(cls, n, i);
}

/* Piece boundaries of text[0..len) for the family: writes the byte offset where each piece
 * ends to ends[] (cap entries) and returns their count, or -1 when out of memory. */
int tok_pretokenize(int pre, const char *text, size_t len, size_t *ends, size_t cap)
{
    uint32_t *cp = malloc((len + 1) * sizeof *cp), *off = malloc((len + 1) * sizeof *off);
    uint8_t *cls = malloc(len + 1);
    if (!cp || !off || !cls) {
        free(cp);
        free(off);
        free(cls);
        return -1;
    }
    size_t n = utf8_decode(text, len, cp, off, cls), np = 0, seg = 0;
    for (size_t i = 0; i < n;) {
        size_t k;
        switch (pre) {
        case PRE_LLAMA3: k = m_llama3(cp, cls, n, i, 3); break;
        case PRE_QWEN2: k = m_llama3(cp, cls, n, i, 1); break;
        case PRE_SMOLLM: { /* digits alone; gpt-2 inside the text between them */
            if (cls[i] & C_N) {
                k = 1;
                break;
            }
            if (seg <= i) /* the end of this run without digits, found once per run */
                for (seg = i; seg < n && !(cls[seg] & C_N);)
                    seg++;
            k = m_gpt2(cp, cls, seg, i);
            break;
        }
        default: k = m_gpt2(cp, cls, n, i); break;
        }
        if (np < cap)
            ends[np] = off[i + k];
        np++;
        i += k;
    }
    free(cp);
    free(off);
    free(cls);
    return (int)np;
}

static int bpe_fragment(const tokenizer_t *t, const char *text, size_t n, out_t *o)
{
    size_t *ends = malloc((n + 1) * sizeof *ends);
    char *buf = malloc(2 * n + 4);
    int np = ends && buf ? tok_pretokenize(t->pre, text, n, ends, n + 1) : -1, rc = np < 0 ? -1 : 0;
    for (int p = 0, start = 0; p < np && !rc; p++) {
        int k = 0;
        for (size_t j = (size_t)start; j < ends[p]; j++) {
            unsigned char c = (unsigned char)text[j];
            memcpy(buf + k, g_byte_utf8[c], (size_t)g_byte_utf8_len[c]);
            k += g_byte_utf8_len[c];
        }
        rc = merge_and_emit(t, buf, k, o);
        start = (int)ends[p];
    }
    free(ends);
    free(buf);
    return rc;
}

/* ---------------- specials + dispatch ---------------- */

static int match_special(const tokenizer_t *t, const char *p, size_t n)
{
    for (int i = 0; i < t->nspecial; i++) {
        int id = t->special[i];
        if ((size_t)t->len[id] <= n && t->text[id][0] == p[0] && !memcmp(t->text[id], p, (size_t)t->len[id]))
            return id;
    }
    return -1;
}

int tok_encode(const tokenizer_t *t, const char *text, size_t n, int cont, int **toks, int *ntok, int *cap)
{
    out_t o = {toks, ntok, cap};
    int first = !cont;
    size_t start = 0;
    for (size_t i = 0; i <= n;) {
        int sp = i < n ? match_special(t, text + i, n - i) : -1;
        if (sp < 0 && i < n) {
            i++;
            continue;
        }
        if (i > start) { /* the text fragment before the special token (or the end) */
            int rc = t->kind == TOK_SPM ? spm_fragment(t, text + start, i - start, first && t->add_space_prefix, &o)
                                        : bpe_fragment(t, text + start, i - start, &o);
            if (rc)
                return -1;
            first = 0;
        }
        if (sp < 0)
            break;
        if (emit(&o, sp))
            return -1;
        i += (size_t)t->len[sp];
        start = i;
    }
    return 0;
}

void tok_decode_piece(const tokenizer_t *t, int id, int prev, ss_buf_t *b)
{
    if (id < 0 || id >= t->n || id == t->bos || id == t->eos)
        return;
    const char *s = t->text[id];
    int n = t->len[id];
    if (t->type[id] == 3 || t->type[id] == 4) {
        ss_buf_append(b, s, (size_t)n);
        return;
    }
    if (t->kind == TOK_SPM) {
        unsigned x;
        if (t->type[id] == 6 && n == 6 && sscanf(s, "<0x%02X>", &x) == 1) {
            char c = (char)x;
            ss_buf_append(b, &c, 1);
            return;
        }
        int lead = prev == t->bos && t->bos >= 0;
        for (int i = 0; i < n;) {
            if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
                if (!(i == 0 && lead && t->add_space_prefix))
                    ss_buf_putc(b, ' ');
                i += 3;
            } else {
                ss_buf_putc(b, s[i++]);
            }
        }
        return;
    }
    for (int i = 0; i < n;) { /* BPE: unicode chars back to bytes */
        unsigned char c = (unsigned char)s[i];
        int l = SS_MIN(utf8_len(c), n - i), cp = c;
        if (l == 2)
            cp = ((c & 0x1f) << 6) | (s[i + 1] & 0x3f);
        else if (l == 3)
            cp = ((c & 0x0f) << 12) | ((s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f);
        if (l <= 3 && cp < 512 && g_cp_byte[cp] >= 0)
            ss_buf_putc(b, (char)g_cp_byte[cp]);
        else
            ss_buf_append(b, s + i, (size_t)l);
        i += l;
    }
}
