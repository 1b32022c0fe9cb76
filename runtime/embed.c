/*
 * embed.c — the sentence embedders of ss_embed.h: "wink" static word vectors
 * (a read-only mmap of wink100.vec, format in tools/vecconv.c, found beside the
 * installation) and the dispatcher-backed "model" / "openai" embedders. The kind
 * is what was asked for (default wink): a missing vector file is an error naming
 * where it was looked for, never a silent switch to another embedder. Owns the
 * mapping and the embedder structs; the dispatcher is borrowed. The "use" sentence encoder
 * itself lives in embed_use.c; this file wraps it as an embedder.
 */
#include "ss_embed.h"

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdio.h>
#include <unistd.h>

void ss_vec_normalize(float *v, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++) s += (double)v[i] * v[i];
    if (s <= 0) return;
    float inv = (float)(1.0 / sqrt(s));
    for (int i = 0; i < dim; i++) v[i] *= inv;
}

int ss_embedder_embed(ss_embedder_t *e, const char *const *texts, int n, float *out, char *err, size_t errsz)
{
    if (n <= 0) return SS_OK;
    return e->embed(e, texts, n, out, err, errsz);
}

void ss_embedder_destroy(ss_embedder_t *e)
{
    if (e) e->destroy(e);
}

/* ======================= wink: static word vectors ======================= */

typedef struct wink {
    void *map;
    size_t size;
    uint32_t count, dim;
    const uint32_t *offs;   /* [count] into strtab */
    const char *strtab;
    uint64_t strtab_size;
    const float *vecs;      /* [count][dim] */
} wink_t;

static const float *wink_lookup(const wink_t *w, const char *word)
{
    uint32_t lo = 0, hi = w->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w->strtab + w->offs[mid], word);
        if (c == 0) return w->vecs + (size_t)mid * w->dim;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Deterministic unit-scale vector for a text with no known word (splitmix64 stream). */
static void hashed_vector(const char *text, float *out, int dim)
{
    uint64_t x = ss_hash64(text, strlen(text), 0x5eed);
    for (int i = 0; i < dim; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        out[i] = (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

static int word_byte(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* Mean of the vectors of the lower-cased word tokens (runs of letters/digits/UTF-8). */
static void wink_one(const wink_t *w, const char *text, float *out)
{
    char tok[128];
    int known = 0;
    memset(out, 0, w->dim * sizeof(float));
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p;) {
        if (!word_byte(*p)) { p++; continue; }
        size_t n = 0;
        for (; word_byte(*p); p++)
            if (n + 1 < sizeof tok) tok[n++] = (char)tolower(*p);
        tok[n] = 0;
        const float *v = wink_lookup(w, tok);
        if (!v) continue;
        for (uint32_t i = 0; i < w->dim; i++) out[i] += v[i];
        known++;
    }
    if (!known) hashed_vector(text ? text : "", out, (int)w->dim);
    ss_vec_normalize(out, (int)w->dim);
}

static int wink_embed(ss_embedder_t *e, const char *const *texts, int n, float *out, char *err, size_t errsz)
{
    (void)err, (void)errsz;
    const wink_t *w = e->impl;
    for (int i = 0; i < n; i++) wink_one(w, texts[i], out + (size_t)i * w->dim);
    return SS_OK;
}

static void wink_destroy(ss_embedder_t *e)
{
    wink_t *w = e->impl;
    if (w && w->map) munmap(w->map, w->size);
    free(w);
    free(e);
}

/* Checks the header and that every table lies inside the file. */
static int wink_layout(wink_t *w, const char *path, char *err, size_t errsz)
{
    const unsigned char *b = w->map;
    if (w->size < 24 || memcmp(b, "SSWVEC01", 8))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "word vectors %s: not a SSWVEC01 file", path);
    memcpy(&w->count, b + 8, 4);
    memcpy(&w->dim, b + 12, 4);
    memcpy(&w->strtab_size, b + 16, 8);
    uint64_t offs_end = 24 + (uint64_t)w->count * 4, str_end = offs_end + w->strtab_size;
    uint64_t vec_start = (str_end + 3) / 4 * 4;
    uint64_t need = vec_start + (uint64_t)w->count * w->dim * 4;
    if (w->count == 0 || w->dim == 0 || w->dim > 65536 || need != w->size || w->strtab_size == 0 ||
        b[str_end - 1] != 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID,
                         "word vectors %s: header says %u words x %u dims, file has %zu bytes (want %llu)",
                         path, w->count, w->dim, w->size, (unsigned long long)need);
    w->offs = (const uint32_t *)(b + 24);
    w->strtab = (const char *)(b + offs_end);
    w->vecs = (const float *)(b + vec_start);
    for (uint32_t i = 0; i < w->count; i++)
        if (w->offs[i] >= w->strtab_size)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "word vectors %s: word %u out of range", path, i);
    return SS_OK;
}

static int wink_open(const char *path, ss_embedder_t **out, char *err, size_t errsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return ss_seterr(err, errsz, SS_ERR_IO, "word vectors %s: %s (run scripts/setup-embeddings.sh)",
                         path, strerror(e));
    }
    wink_t *w = calloc(1, sizeof *w);
    ss_embedder_t *e = calloc(1, sizeof *e);
    if (!w || !e) {
        close(fd);
        free(w);
        free(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "word vectors: out of memory");
    }
    w->size = (size_t)st.st_size;
    w->map = w->size ? mmap(NULL, w->size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    e->kind = "wink";
    e->impl = w;
    e->embed = wink_embed;
    e->destroy = wink_destroy;
    if (w->map == MAP_FAILED) {
        w->map = NULL;
        wink_destroy(e);
        return ss_seterr(err, errsz, SS_ERR_IO, "word vectors %s: cannot map (%zu bytes)", path, (size_t)st.st_size);
    }
    int rc = wink_layout(w, path, err, errsz);
    if (rc != SS_OK) {
        wink_destroy(e);
        return rc;
    }
    e->dim = (int)w->dim;
    *out = e;
    return SS_OK;
}

/* Where a data file (the word vectors, the sentence encoder) is looked for, in order: $ENV, then
 * beside the installation (the directory of the running executable): EXE_DIR/../data (a build
 * directory in the source tree), EXE_DIR/data, EXE_DIR/../share/semstream (an installed tree).
 * Never the current directory. */
static int data_candidates(const char *envname, const char *file, char cand[][4096], int max)
{
    int n = 0;
    const char *env = getenv(envname);
    if (env && *env) {
        snprintf(cand[n++], 4096, "%s", env);
        return n;
    }
    char exe[4096];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l <= 0) return 0;
    exe[l] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    static const char *const rel[] = {"/../data/", "/data/", "/../share/semstream/"};
    for (int i = 0; i < (int)SS_ARRAY_LEN(rel) && n < max; i++) {
        snprintf(cand[n], 4096, "%s%s%s", exe, rel[i], file);
        char real[PATH_MAX];
        if (realpath(cand[n], real) && strlen(real) < 4096) memcpy(cand[n], real, strlen(real) + 1);
        n++;
    }
    return n;
}

static int vector_candidates(char cand[][4096], int max)
{
    return data_candidates("SEMSTREAM_VECTORS", "wink100.vec", cand, max);
}

static const char *first_existing(char cand[][4096], int n, char *found)
{
    for (int i = 0; i < n; i++)
        if (access(cand[i], R_OK) == 0) {
            memcpy(found, cand[i], 4096);
            found[4095] = 0;
            return found;
        }
    return NULL;
}

const char *ss_embed_default_vectors(void)
{
    static __thread char found[4096];
    char cand[4][4096];
    return first_existing(cand, vector_candidates(cand, 4), found);
}

const char *ss_embed_default_use(void)
{
    static __thread char found[4096];
    char cand[4][4096];
    return first_existing(cand, data_candidates("SEMSTREAM_USE", "use.bin", cand, 4), found);
}

/* The error for a data file that is nowhere to be found, naming every place looked at. */
static int data_missing(const char *what, const char *envname, const char *file, const char *other, char *err,
                        size_t errsz)
{
    char cand[4][4096];
    int n = data_candidates(envname, file, cand, 4);
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < n; i++) ss_buf_printf(&b, "%s%s", i ? ", " : "", cand[i]);
    int rc = ss_seterr(err, errsz, SS_ERR_NOTFOUND,
                       "%s not installed (looked at %s): run scripts/setup-embeddings.sh, set %s=FILE, or "
                       "choose another embedder (SET embedder = 'model' or '%s')", what,
                       n ? ss_buf_cstr(&b) : "no place: the executable's path is unknown", envname, other);
    ss_buf_free(&b);
    return rc;
}

static int vectors_missing(char *err, size_t errsz)
{
    return data_missing("embedder wink: the word vectors are", "SEMSTREAM_VECTORS", "wink100.vec", "use", err,
                        errsz);
}

int ss_embed_describe(const char *kind, const char *model, char *buf, size_t n)
{
    if (!kind || !strcmp(kind, "wink")) {
        const char *p = ss_embed_default_vectors();
        if (p) snprintf(buf, n, "wink: averaged static word vectors (100-d), %s", p);
        else snprintf(buf, n, "wink: the word vectors are not installed (run scripts/setup-embeddings.sh)");
        return p ? SS_OK : SS_ERR_NOTFOUND;
    }
    if (!strcmp(kind, "use")) {
        const char *p = ss_embed_default_use();
        if (p) snprintf(buf, n, "use: Universal Sentence Encoder lite (512-d), %s", p);
        else snprintf(buf, n, "use: the sentence encoder is not installed (run scripts/setup-embeddings.sh)");
        return p ? SS_OK : SS_ERR_NOTFOUND;
    }
    if (!strcmp(kind, "model") || !strcmp(kind, "openai")) {
        snprintf(buf, n, "%s: pooled embeddings of model %s", kind, model ? model : "(the default)");
        return SS_OK;
    }
    snprintf(buf, n, "%s: unknown embedder (wink, use, model or openai)", kind);
    return SS_ERR_INVALID;
}

/* ======================= use: the sentence encoder (embed_use.c) ======================= */

static int use_embed(ss_embedder_t *e, const char *const *texts, int n, float *out, char *err, size_t errsz)
{
    return ss_use_embed(e->impl, texts, n, out, err, errsz);
}

static void use_destroy(ss_embedder_t *e)
{
    ss_use_close(e->impl);
    free(e);
}

static int use_open(const char *path, ss_embedder_t **out, char *err, size_t errsz)
{
    ss_embedder_t *e = calloc(1, sizeof *e);
    if (!e) return ss_seterr(err, errsz, SS_ERR_NOMEM, "embedder use: out of memory");
    ss_use_t *u;
    int rc = ss_use_open(path, &u, err, errsz);
    if (rc) {
        free(e);
        return rc;
    }
    *e = (ss_embedder_t){.kind = "use", .dim = ss_use_dim(u), .impl = u, .embed = use_embed, .destroy = use_destroy};
    *out = e;
    return SS_OK;
}

/* ======================= dispatcher-backed: model / openai ======================= */

typedef struct dembed {
    ss_dispatch_t *d;
    char *model;
    ss_infer_stats_t *acct;
} dembed_t;

/* Embeds n texts through the dispatcher; sets *dim from the answers (all must agree). */
static int dispatch_embed(dembed_t *de, const char *const *texts, int n, float *out, int *dim,
                          char *err, size_t errsz)
{
    ss_infer_req_t *q = calloc((size_t)n, sizeof *q);
    ss_infer_res_t *r = calloc((size_t)n, sizeof *r);
    int rc = (q && r) ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "embedder: out of memory");
    for (int i = 0; rc == SS_OK && i < n; i++) {
        q[i].kind = SS_INFER_EMBED;
        q[i].prompt = texts[i] ? texts[i] : "";
    }
    if (rc == SS_OK) rc = ss_dispatch_run(de->d, de->model, de->acct, q, n, r, err, errsz);
    for (int i = 0; rc == SS_OK && i < n; i++) {
        if (*dim == 0) *dim = r[i].dim;
        if (r[i].dim != *dim || !r[i].emb || *dim <= 0) {
            rc = ss_seterr(err, errsz, SS_ERR_MODEL, "embedder: model %s answered %d dims for text %d, expected %d",
                           de->model ? de->model : "(default)", r[i].dim, i, *dim);
            break;
        }
        if (out) {
            memcpy(out + (size_t)i * *dim, r[i].emb, (size_t)*dim * sizeof(float));
            ss_vec_normalize(out + (size_t)i * *dim, *dim);
        }
    }
    for (int i = 0; r && i < n; i++) ss_infer_res_clear(&r[i]);
    free(q);
    free(r);
    return rc;
}

static int dembed_embed(ss_embedder_t *e, const char *const *texts, int n, float *out, char *err, size_t errsz)
{
    int dim = e->dim;
    return dispatch_embed(e->impl, texts, n, out, &dim, err, errsz);
}

static void dembed_destroy(ss_embedder_t *e)
{
    dembed_t *de = e->impl;
    if (de) free(de->model);
    free(de);
    free(e);
}

static int dembed_open(const ss_embed_opts_t *o, const char *kind, ss_embedder_t **out, char *err, size_t errsz)
{
    if (!o->dispatch) return ss_seterr(err, errsz, SS_ERR_INVALID, "embedder %s: needs a dispatcher", kind);
    if (!ss_dispatch_has_model(o->dispatch, o->model))
        return ss_seterr(err, errsz, SS_ERR_NOTFOUND, "embedder %s: no model %s", kind,
                         o->model ? o->model : "registered");
    ss_embedder_t *e = calloc(1, sizeof *e);
    dembed_t *de = calloc(1, sizeof *de);
    if (!e || !de) {
        free(e);
        free(de);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "embedder: out of memory");
    }
    *de = (dembed_t){o->dispatch, ss_strdup(o->model), o->acct};
    *e = (ss_embedder_t){.kind = !strcmp(kind, "openai") ? "openai" : "model", .impl = de,
                         .embed = dembed_embed, .destroy = dembed_destroy};
    /* the dimension comes from one probe embedding (cached like any other) */
    const char *probe = "semstream";
    int rc = dispatch_embed(de, &probe, 1, NULL, &e->dim, err, errsz);
    if (rc != SS_OK) {
        ss_errprefix(err, errsz, "embedder %s", kind);
        dembed_destroy(e);
        return rc;
    }
    *out = e;
    return SS_OK;
}

int ss_embedder_open(const ss_embed_opts_t *o, ss_embedder_t **out, char *err, size_t errsz)
{
    static const ss_embed_opts_t none = {0};
    if (!o) o = &none;
    *out = NULL;
    const char *kind = o->kind ? o->kind : "wink"; /* never another kind in its place: that is chosen */
    int rc;
    if (!strcmp(kind, "wink")) {
        const char *path = o->vec_path ? o->vec_path : ss_embed_default_vectors();
        if (!path) return vectors_missing(err, errsz);
        if ((rc = wink_open(path, out, err, errsz))) return rc;
        snprintf((*out)->desc, sizeof (*out)->desc, "wink: averaged static word vectors (%d-d), %s", (*out)->dim, path);
        return SS_OK;
    }
    if (!strcmp(kind, "model") || !strcmp(kind, "openai")) {
        if ((rc = dembed_open(o, kind, out, err, errsz))) return rc;
        snprintf((*out)->desc, sizeof (*out)->desc, "%s: pooled embeddings of model %s (%d-d)", kind,
                 o->model ? o->model : "(the default)", (*out)->dim);
        return SS_OK;
    }
    if (!strcmp(kind, "use")) {
        const char *path = o->vec_path ? o->vec_path : ss_embed_default_use();
        if (!path)
            return data_missing("embedder use: the sentence encoder is", "SEMSTREAM_USE", "use.bin", "wink",
                                err, errsz);
        if ((rc = use_open(path, out, err, errsz))) return rc;
        snprintf((*out)->desc, sizeof (*out)->desc, "use: Universal Sentence Encoder lite (%d-d), %s", (*out)->dim,
                 path);
        return SS_OK;
    }
    return ss_seterr(err, errsz, SS_ERR_INVALID, "unknown embedder \"%s\" (wink, use, model or openai)", kind);
}
