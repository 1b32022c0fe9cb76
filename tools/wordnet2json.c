/*
 * wordnet2json.c — turns WordNet's noun database (the Debian package wordnet-base:
 * /usr/share/wordnet/data.noun) into the labelled corpus of bench/quality.c: JSON delta
 * files that `semstream run --load` and the benchmark read.
 *
 *   OUT/nouns.jsonl    one insert per noun synset (82,115):
 *                      {"id": <synset offset>, "word": "first lemma", "gloss": "definition",
 *                       "category": "noun.animal"}
 *                      word: the first lemma, underscores as spaces; gloss: the definition
 *                      without the example sentences (the text up to the first `; "`);
 *                      category: the lexicographer file (WordNet's lexnames, fixed since 1.5).
 *   OUT/closure.jsonl  per synset its hypernyms (pointers @ and @i) and their transitive
 *                      closure, the ground truth of "is {a.word} a kind of {b.word}?":
 *                      {"id": N, "hypernyms": [direct...], "ancestors": [closure, nearest first]}
 *
 * A synset whose definition repeats an earlier one's is written with " (<lemma>)" appended
 * to the gloss (the first lemma), so that a gloss names one synset: the oracle fixture
 * (bench/quality_oracle.c) finds a row's labels by its gloss. The tool prints how many.
 *
 * Usage: wordnet2json [--wordnet DIR] --out DIR
 * Data: WordNet 3.0 (Princeton University), under the WordNet licence (free use with
 * attribution); nothing of it is kept in this repository.
 */
#include "ss_base.h"
#include "ss_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* WordNet's lexicographer files (lexnames(5WN)), indexed by lex_filenum. */
static const char *const LEXNAMES[] = {
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl"};
#define NLEX ((int)(sizeof LEXNAMES / sizeof *LEXNAMES))

typedef struct synset {
    long off;
    int lex;
    char *word, *gloss;
    long *hyp; /* direct hypernyms (offsets) */
    int nhyp;
} synset_t;

typedef struct corpus {
    synset_t *s;
    int n, cap;
} corpus_t;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "wordnet2json: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Next blank-separated field of *p (advanced past it); NULL at the end or at '|'. */
static char *field(char **p)
{
    char *s = *p;
    while (*s == ' ')
        s++;
    if (!*s || *s == '|')
        return NULL;
    char *e = s;
    while (*e && *e != ' ')
        e++;
    if (*e)
        *e++ = 0;
    *p = e;
    return s;
}

/* The definition: gloss text up to the first `; "` (the examples), trimmed. */
static char *definition(const char *g)
{
    while (*g == ' ')
        g++;
    const char *e = strstr(g, "; \"");
    size_t n = e ? (size_t)(e - g) : strlen(g);
    while (n && (g[n - 1] == ' ' || g[n - 1] == '\n' || g[n - 1] == '\r' || g[n - 1] == ';'))
        n--;
    return ss_strndup(g, n);
}

/* Parses one data.noun line into s; 0 = a synset, 1 = not one (the licence header). */
static int parse_line(char *line, const char *path, long lineno, synset_t *s)
{
    memset(s, 0, sizeof *s);
    if (line[0] == ' ')
        return 1;
    char *bar = strstr(line, " | ");
    if (!bar)
        die("%s:%ld: no gloss separator ' | '", path, lineno);
    *bar = 0;
    char *p = line, *f;
    char *off = field(&p), *lex = field(&p), *type = field(&p), *wcnt = field(&p);
    if (!off || !lex || !type || !wcnt)
        die("%s:%ld: truncated synset header", path, lineno);
    s->off = strtol(off, NULL, 10);
    s->lex = (int)strtol(lex, NULL, 10);
    if (s->lex < 0 || s->lex >= NLEX)
        die("%s:%ld: lexicographer file number out of range", path, lineno);
    long nw = strtol(wcnt, NULL, 16);
    for (long i = 0; i < nw; i++) {
        char *w = field(&p), *id = field(&p);
        if (!w || !id)
            die("%s:%ld: truncated word list", path, lineno);
        if (i == 0) {
            s->word = ss_strdup(w);
            for (char *c = s->word; *c; c++)
                if (*c == '_')
                    *c = ' ';
        }
    }
    if (!(f = field(&p)))
        die("%s:%ld: no pointer count", path, lineno);
    long np = strtol(f, NULL, 10);
    s->hyp = calloc((size_t)(np ? np : 1), sizeof *s->hyp);
    for (long i = 0; i < np; i++) {
        char *sym = field(&p), *to = field(&p), *pos = field(&p), *st = field(&p);
        if (!sym || !to || !pos || !st)
            die("%s:%ld: truncated pointer list", path, lineno);
        if ((!strcmp(sym, "@") || !strcmp(sym, "@i")) && !strcmp(pos, "n"))
            s->hyp[s->nhyp++] = strtol(to, NULL, 10);
    }
    s->gloss = definition(bar + 3);
    return 0;
}

static void load(const char *path, corpus_t *c)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("%s: %s (install the Debian package wordnet-base: scripts/setup.sh)", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        synset_t s;
        if (parse_line(line, path, lineno, &s))
            continue;
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 4096;
            c->s = realloc(c->s, sizeof *c->s * (size_t)c->cap);
            if (!c->s)
                die("out of memory");
        }
        c->s[c->n++] = s;
    }
    free(line);
    fclose(f);
}

/* Index of the synset at offset off (the file is sorted by offset), -1 if none. */
static int find(const corpus_t *c, long off)
{
    int lo = 0, hi = c->n - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (c->s[m].off == off)
            return m;
        if (c->s[m].off < off)
            lo = m + 1;
        else
            hi = m - 1;
    }
    return -1;
}

/* Glosses made unique: a repeated definition gets " (lemma)" appended. */
typedef struct gent {
    const char *g;
    int i;
} gent_t;

static int gcmp(const void *a, const void *b)
{
    const gent_t *x = a, *y = b;
    int r = strcmp(x->g, y->g);
    return r ? r : x->i - y->i;
}

static int unique_glosses(corpus_t *c)
{
    gent_t *e = malloc(sizeof *e * (size_t)c->n);
    for (int i = 0; i < c->n; i++)
        e[i] = (gent_t){c->s[i].gloss, i};
    qsort(e, (size_t)c->n, sizeof *e, gcmp);
    int changed = 0;
    for (int i = 1; i < c->n; i++) /* mark the repeats first: e[] points at the old texts */
        if (strcmp(e[i].g, e[i - 1].g) == 0)
            e[changed++].i = -1 - e[i].i;
    for (int k = 0; k < changed; k++) {
        synset_t *s = &c->s[-1 - e[k].i];
        ss_buf_t b = SS_BUF_INIT;
        ss_buf_printf(&b, "%s (%s)", s->gloss, s->word);
        free(s->gloss);
        s->gloss = ss_buf_take(&b);
    }
    free(e);
    return changed;
}

static FILE *out_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        die("%s: %s", path, strerror(errno));
    return f;
}

static void write_nouns(const corpus_t *c, const char *dir)
{
    FILE *f = out_file(dir, "nouns.jsonl");
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < c->n; i++) {
        const synset_t *s = &c->s[i];
        ss_buf_reset(&b);
        ss_buf_printf(&b, "{\"id\":%ld,\"word\":", s->off);
        ss_json_put_str_utf8(&b, s->word, strlen(s->word));
        ss_buf_puts(&b, ",\"gloss\":");
        ss_json_put_str_utf8(&b, s->gloss, strlen(s->gloss));
        ss_buf_printf(&b, ",\"category\":\"%s\"}\n", LEXNAMES[s->lex]);
        fwrite(b.data, 1, b.len, f);
    }
    ss_buf_free(&b);
    if (fclose(f))
        die("%s/nouns.jsonl: write failed", dir);
}

/* Breadth-first over hypernym pointers from synset i: ancestors nearest first, each once. */
static int closure(const corpus_t *c, int i, int *queue, unsigned char *seen)
{
    int head = 0, tail = 0;
    queue[tail++] = i;
    seen[i] = 1;
    while (head < tail) {
        const synset_t *s = &c->s[queue[head++]];
        for (int h = 0; h < s->nhyp; h++) {
            int j = find(c, s->hyp[h]);
            if (j >= 0 && !seen[j]) {
                seen[j] = 1;
                queue[tail++] = j;
            }
        }
    }
    for (int k = 0; k < tail; k++)
        seen[queue[k]] = 0;
    return tail; /* queue[0] is i itself */
}

static void write_closure(const corpus_t *c, const char *dir)
{
    FILE *f = out_file(dir, "closure.jsonl");
    int *queue = malloc(sizeof *queue * (size_t)c->n);
    unsigned char *seen = calloc((size_t)c->n, 1);
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < c->n; i++) {
        const synset_t *s = &c->s[i];
        ss_buf_reset(&b);
        ss_buf_printf(&b, "{\"id\":%ld,\"hypernyms\":[", s->off);
        for (int h = 0; h < s->nhyp; h++)
            ss_buf_printf(&b, "%s%ld", h ? "," : "", s->hyp[h]);
        ss_buf_puts(&b, "],\"ancestors\":[");
        int n = closure(c, i, queue, seen);
        for (int k = 1; k < n; k++)
            ss_buf_printf(&b, "%s%ld", k > 1 ? "," : "", c->s[queue[k]].off);
        ss_buf_puts(&b, "]}\n");
        fwrite(b.data, 1, b.len, f);
    }
    ss_buf_free(&b);
    free(queue);
    free(seen);
    if (fclose(f))
        die("%s/closure.jsonl: write failed", dir);
}

int main(int argc, char **argv)
{
    const char *wn = "/usr/share/wordnet", *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--wordnet") && i + 1 < argc)
            wn = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else {
            fprintf(stderr, "usage: wordnet2json [--wordnet DIR] --out DIR\n"
                            "  writes DIR/nouns.jsonl ({id, word, gloss, category} per noun synset) and\n"
                            "  DIR/closure.jsonl ({id, hypernyms, ancestors}) from DIR/data.noun of WordNet\n");
            return 2;
        }
    }
    if (!out)
        die("--out DIR is required");
    mkdir(out, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/data.noun", wn);
    corpus_t c = {0};
    load(path, &c);
    if (c.n == 0)
        die("%s: no synsets", path);
    int dup = unique_glosses(&c);
    write_nouns(&c, out);
    write_closure(&c, out);
    int cats[NLEX] = {0};
    for (int i = 0; i < c.n; i++)
        cats[c.s[i].lex]++;
    printf("wordnet2json: %d noun synsets from %s (%d repeated definitions made unique) -> %s/nouns.jsonl, "
           "%s/closure.jsonl\n",
           c.n, path, dup, out, out);
    for (int i = 0; i < NLEX; i++)
        if (cats[i])
            printf("  %-20s %6d\n", LEXNAMES[i], cats[i]);
    return 0;
}
