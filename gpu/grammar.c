/*
 * grammar.c — constrained decoding (ss_grammar.h): a JSON schema compiled into a
 * deterministic byte automaton, and the token-level sampler the engine's GENERATE
 * requests use when json_schema is set (hooked into gpu/llm_run.c by gram_seq_*).
 *
 * Compilation works backwards in continuation-passing style: compile(node, k)
 * builds states that read one value of the node and end in state k, and returns the
 * entry state. Alternatives (a union of types, a number ending where the next value
 * starts, an optional space) are epsilon edges, resolved once at the end by merging
 * the transitions of each state's epsilon closure; two targets for one byte would
 * need a subset construction and are reported as an ambiguous schema instead (the
 * JSON forms of the supported types all start differently, so this does not happen
 * for valid input).
 *
 * Token level, per model (struct gram_cache, owned by the ss_llm_t): every token's
 * bytes as it decodes mid-text; per compiled schema, the state each token leads to
 * from each state reached so far (a row of vocab entries, computed on first visit
 * and kept, up to GRAM_ROW_BYTES per schema), and dtok[s], the fewest tokens to a
 * complete value using one-byte tokens. A token may be picked in state s only if it
 * leads to a state s' with dtok[s'] <= the tokens left after it, so the value can
 * always be closed within max_tokens. Greedy decoding first tries the model's own
 * argmax (one row lookup); only when the grammar rejects it does it scan the
 * vocabulary for the best allowed token.
 */
#include "llm_internal.h"
#include "ss_grammar.h"
#include "ss_json.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GRAM_MAX_STATES 100000
#define GRAM_INT_DIGITS 18          /* |integer| < 10^18 fits in int64 */
#define GRAM_ROW_BYTES (64u << 20)  /* token rows kept per schema and model */
#define GRAM_CACHE_SCHEMAS 8

struct ss_gram {
    int n;               /* states */
    int start;
    int32_t *t;          /* n * 256 transitions, -1 = none */
    unsigned char *acc;  /* n: accepting */
    unsigned char *fin;  /* n: accepting without outgoing transitions */
    int32_t *dist;       /* n: fewest bytes to an accepting state */
};

/* ================================================================ building */

typedef struct builder {
    int n, cap;
    int32_t *t;
    unsigned char *acc;
    int neps, epscap;
    int32_t (*eps)[2];
    char *err;
    size_t errsz;
    int rc;
} builder_t;

static int b_new(builder_t *b)
{
    if (b->rc)
        return 0;
    if (b->n >= GRAM_MAX_STATES) {
        b->rc = ss_seterr(b->err, b->errsz, SS_ERR_INVALID, "JSON schema too large (more than %d grammar states)",
                          GRAM_MAX_STATES);
        return 0;
    }
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 64;
        int32_t *t = realloc(b->t, (size_t)cap * 256 * sizeof *t);
        unsigned char *a = t ? realloc(b->acc, (size_t)cap) : NULL;
        if (t)
            b->t = t;
        if (!a) {
            b->rc = ss_seterr(b->err, b->errsz, SS_ERR_NOMEM, "out of memory");
            return 0;
        }
        b->acc = a;
        b->cap = cap;
    }
    int s = b->n++;
    for (int i = 0; i < 256; i++)
        b->t[(size_t)s * 256 + i] = -1;
    b->acc[s] = 0;
    return s;
}

static void b_edge(builder_t *b, int s, int lo, int hi, int to)
{
    if (b->rc)
        return;
    for (int c = lo; c <= hi; c++)
        b->t[(size_t)s * 256 + c] = to;
}

static void b_eps(builder_t *b, int s, int to)
{
    if (b->rc)
        return;
    if (b->neps == b->epscap) {
        int cap = b->epscap ? b->epscap * 2 : 64;
        int32_t(*e)[2] = realloc(b->eps, (size_t)cap * sizeof *e);
        if (!e) {
            b->rc = ss_seterr(b->err, b->errsz, SS_ERR_NOMEM, "out of memory");
            return;
        }
        b->eps = e;
        b->epscap = cap;
    }
    b->eps[b->neps][0] = s;
    b->eps[b->neps][1] = to;
    b->neps++;
}

/* States reading the bytes of s[0..n) and ending in k; returns the entry. */
static int b_lit(builder_t *b, const char *s, size_t n, int k)
{
    int next = k;
    for (size_t i = n; i-- > 0;) {
        int st = b_new(b);
        b_edge(b, st, (unsigned char)s[i], (unsigned char)s[i], next);
        next = st;
    }
    return next;
}

/* An optional space before whatever k reads. */
static int b_ows(builder_t *b, int k)
{
    int w = b_new(b);
    b_edge(b, w, ' ', ' ', k);
    b_eps(b, w, k);
    return w;
}

/* Adds the bytes of s[0..n) to the trie rooted at root, the last one leading to k. */
static void b_trie(builder_t *b, int root, const char *s, size_t n, int k)
{
    int cur = root;
    for (size_t i = 0; i < n && !b->rc; i++) {
        unsigned char c = (unsigned char)s[i];
        int32_t *slot = &b->t[(size_t)cur * 256 + c];
        if (i + 1 == n) {
            if (*slot >= 0 && *slot != k)
                b->rc = ss_seterr(b->err, b->errsz, SS_ERR_INVALID, "JSON schema: an enum value is a prefix of another");
            else
                *slot = k;
        } else if (*slot >= 0) {
            cur = *slot;
        } else {
            int nx = b_new(b);
            if (b->rc)
                return;
            b->t[(size_t)cur * 256 + c] = nx; /* b_new may have moved b->t */
            cur = nx;
        }
    }
}

/* A JSON string: "..." with UTF-8 checked byte by byte and simple escapes (no \u). */
static int b_string(builder_t *b, int k)
{
    int q0 = b_new(b), in = b_new(b), esc = b_new(b), c1 = b_new(b), c2 = b_new(b), c3 = b_new(b);
    int e0 = b_new(b), ed = b_new(b), f0 = b_new(b), f4 = b_new(b);
    b_edge(b, q0, '"', '"', in);
    b_edge(b, in, 0x20, 0x7f, in);
    b_edge(b, in, '"', '"', k);
    b_edge(b, in, '\\', '\\', esc);
    b_edge(b, in, 0xc2, 0xdf, c1);
    b_edge(b, in, 0xe0, 0xe0, e0);
    b_edge(b, in, 0xe1, 0xec, c2);
    b_edge(b, in, 0xed, 0xed, ed);
    b_edge(b, in, 0xee, 0xef, c2);
    b_edge(b, in, 0xf0, 0xf0, f0);
    b_edge(b, in, 0xf1, 0xf3, c3);
    b_edge(b, in, 0xf4, 0xf4, f4);
    b_edge(b, c1, 0x80, 0xbf, in);
    b_edge(b, c2, 0x80, 0xbf, c1);
    b_edge(b, c3, 0x80, 0xbf, c2);
    b_edge(b, e0, 0xa0, 0xbf, c1);
    b_edge(b, ed, 0x80, 0x9f, c1);
    b_edge(b, f0, 0x90, 0xbf, c2);
    b_edge(b, f4, 0x80, 0x8f, c2);
    static const char escs[] = "\"\\/bfnrt";
    for (const char *e = escs; *e; e++)
        b_edge(b, esc, (unsigned char)*e, (unsigned char)*e, in);
    return q0;
}

/* -?(0|[1-9][0-9]*) with at most GRAM_INT_DIGITS digits, or a JSON number of at most as many
 * integer digits and two exponent digits. */
static int b_number(builder_t *b, int integer, int k)
{
    int s0 = b_new(b), s1 = b_new(b), z = b_new(b);
    b_edge(b, s0, '-', '-', s1);
    b_edge(b, s0, '0', '0', z);
    b_edge(b, s1, '0', '0', z);
    b_eps(b, z, k);
    int f0 = -1, e0 = -1;
    if (!integer) {
        f0 = b_new(b);
        int f1 = b_new(b);
        e0 = b_new(b);
        int e1 = b_new(b), x = b_new(b), x2 = b_new(b);
        b_edge(b, z, '.', '.', f0);
        b_edge(b, z, 'e', 'e', e0);
        b_edge(b, z, 'E', 'E', e0);
        b_edge(b, f0, '0', '9', f1);
        b_edge(b, f1, '0', '9', f1);
        b_edge(b, f1, 'e', 'e', e0);
        b_edge(b, f1, 'E', 'E', e0);
        b_eps(b, f1, k);
        b_edge(b, e0, '+', '+', e1);
        b_edge(b, e0, '-', '-', e1);
        b_edge(b, e0, '0', '9', x); /* at most two exponent digits */
        b_edge(b, e1, '0', '9', x);
        b_edge(b, x, '0', '9', x2);
        b_eps(b, x, k);
        b_eps(b, x2, k);
    }
    /* the integer part: at most GRAM_INT_DIGITS digits (so a number stays finite: < 10^117) */
    int prev = -1; /* digits 2..18 first, backwards, then the first */
    for (int i = GRAM_INT_DIGITS; i >= 1; i--) {
        int d = b_new(b);
        if (prev >= 0)
            b_edge(b, d, '0', '9', prev);
        if (!integer) {
            b_edge(b, d, '.', '.', f0);
            b_edge(b, d, 'e', 'e', e0);
            b_edge(b, d, 'E', 'E', e0);
        }
        b_eps(b, d, k);
        prev = d;
    }
    b_edge(b, s0, '1', '9', prev);
    b_edge(b, s1, '1', '9', prev);
    return s0;
}

static int b_value(builder_t *b, const ss_jschema_t *s, int k, int depth);

static int b_object(builder_t *b, const ss_jschema_t *s, int k, int depth)
{
    ss_buf_t lit = SS_BUF_INIT;
    int next = b_lit(b, "}", 1, k);
    for (int i = s->nprops - 1; i >= 0 && !b->rc; i--) {
        int v = b_ows(b, b_value(b, s->props[i], next, depth + 1));
        ss_buf_reset(&lit);
        if (ss_json_put_str_utf8(&lit, s->names[i], strlen(s->names[i])) || ss_buf_putc(&lit, ':')) {
            b->rc = ss_seterr(b->err, b->errsz, SS_ERR_NOMEM, "out of memory");
            break;
        }
        next = b_lit(b, lit.data, lit.len, v);
        if (i > 0)
            next = b_lit(b, ",", 1, b_ows(b, next));
    }
    ss_buf_free(&lit);
    return b_lit(b, "{", 1, next);
}

static int b_array(builder_t *b, const ss_jschema_t *s, int k, int depth)
{
    int after = b_new(b); /* after an item: ',' another or ']' */
    int item = b_value(b, s->items, after, depth + 1);
    int more = b_ows(b, item);
    b_edge(b, after, ',', ',', more);
    b_edge(b, after, ']', ']', k);
    int open = b_new(b);
    b_edge(b, open, ']', ']', k);
    b_eps(b, open, item);
    return b_lit(b, "[", 1, open);
}

static int b_value(builder_t *b, const ss_jschema_t *s, int k, int depth)
{
    if (depth > 32) {
        if (!b->rc)
            b->rc = ss_seterr(b->err, b->errsz, SS_ERR_INVALID, "JSON schema nests too deeply (more than 32 levels)");
        return 0;
    }
    int u = b_new(b);
    unsigned t = s->types;
    if (t & SS_JS_OBJECT)
        b_eps(b, u, b_object(b, s, k, depth));
    if (t & SS_JS_ARRAY)
        b_eps(b, u, b_array(b, s, k, depth));
    if ((t & SS_JS_STRING) && !s->nenum)
        b_eps(b, u, b_string(b, k));
    if ((t & SS_JS_STRING) && s->nenum) {
        int root = b_new(b);
        ss_buf_t lit = SS_BUF_INIT;
        for (int i = 0; i < s->nenum && !b->rc; i++) {
            ss_buf_reset(&lit);
            if (ss_json_put_str_utf8(&lit, s->enums[i], strlen(s->enums[i])))
                b->rc = ss_seterr(b->err, b->errsz, SS_ERR_NOMEM, "out of memory");
            else
                b_trie(b, root, lit.data, lit.len, k);
        }
        ss_buf_free(&lit);
        b_eps(b, u, root);
    }
    if (t & (SS_JS_INTEGER | SS_JS_NUMBER))
        b_eps(b, u, b_number(b, !(t & SS_JS_NUMBER), k));
    if (t & (SS_JS_BOOLEAN | SS_JS_NULL)) {
        int root = b_new(b);
        if (t & SS_JS_BOOLEAN) {
            b_trie(b, root, "true", 4, k);
            b_trie(b, root, "false", 5, k);
        }
        if (t & SS_JS_NULL)
            b_trie(b, root, "null", 4, k);
        b_eps(b, u, root);
    }
    return u;
}

/* Resolves epsilon edges: each state takes the transitions and acceptance of its closure. */
static int b_finish(builder_t *b, ss_gram_t *g)
{
    int n = b->n;
    int *head = malloc((size_t)(n + 1) * sizeof *head), *to = malloc((size_t)(b->neps + 1) * sizeof *to);
    int *stack = malloc((size_t)(n + 1) * sizeof *stack), *mark = calloc((size_t)n + 1, sizeof *mark);
    g->t = malloc((size_t)n * 256 * sizeof *g->t);
    g->acc = calloc((size_t)n, 1);
    g->fin = calloc((size_t)n, 1);
    g->dist = malloc((size_t)n * sizeof *g->dist);
    int rc = head && to && stack && mark && g->t && g->acc && g->fin && g->dist
                 ? SS_OK
                 : ss_seterr(b->err, b->errsz, SS_ERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i <= n; i++)
        head[i] = 0;
    for (int e = 0; !rc && e < b->neps; e++)
        head[b->eps[e][0] + 1]++;
    for (int i = 0; !rc && i < n; i++)
        head[i + 1] += head[i];
    for (int e = 0, *fill = mark; !rc && e < b->neps; e++) /* counting sort of the edges by source */
        to[head[b->eps[e][0]] + fill[b->eps[e][0]]++] = b->eps[e][1];
    for (int i = 0; !rc && i < n; i++)
        mark[i] = 0;
    for (int s = 0; !rc && s < n; s++) {
        int32_t *row = &g->t[(size_t)s * 256];
        memcpy(row, &b->t[(size_t)s * 256], 256 * sizeof *row);
        g->acc[s] = b->acc[s];
        int sp = 0, stamp = s + 1;
        mark[s] = stamp;
        stack[sp++] = s;
        while (sp && !rc) {
            int x = stack[--sp];
            if (x != s) {
                g->acc[s] |= b->acc[x];
                const int32_t *xr = &b->t[(size_t)x * 256];
                for (int c = 0; c < 256; c++) {
                    if (xr[c] < 0)
                        continue;
                    if (row[c] >= 0 && row[c] != xr[c])
                        rc = ss_seterr(b->err, b->errsz, SS_ERR_INVALID,
                                       "JSON schema is ambiguous: two values may start with '%c' at one place", c);
                    row[c] = xr[c];
                }
            }
            for (int e = head[x]; e < head[x + 1]; e++)
                if (mark[to[e]] != stamp) {
                    mark[to[e]] = stamp;
                    stack[sp++] = to[e];
                }
        }
    }
    for (int s = 0; !rc && s < n; s++) {
        int any = 0;
        for (int c = 0; c < 256 && !any; c++)
            any = g->t[(size_t)s * 256 + c] >= 0;
        g->fin[s] = g->acc[s] && !any;
    }
    free(head);
    free(to);
    free(stack);
    free(mark);
    return rc;
}

/* dist[s] = fewest bytes from s to an accepting state, over the bytes allowed[c] (all if
 * NULL): a backward breadth-first search from the accepting states over the distinct
 * (source, target) edges. */
static int gram_distances(const ss_gram_t *g, const unsigned char *allowed, int32_t *dist)
{
    int n = g->n, rc = SS_OK;
    int *q = malloc((size_t)n * sizeof *q), *rhead = calloc((size_t)n + 1, sizeof *rhead);
    int *stamp = calloc((size_t)n, sizeof *stamp), *fill = calloc((size_t)n, sizeof *fill), *radj = NULL;
    if (!q || !rhead || !stamp || !fill)
        rc = SS_ERR_NOMEM;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        for (int i = 0; i < n; i++)
            stamp[i] = 0;
        for (int s = 0; s < n; s++)
            for (int c = 0; c < 256; c++) {
                int to = g->t[(size_t)s * 256 + c];
                if (to < 0 || (allowed && !allowed[c]) || stamp[to] == s + 1)
                    continue;
                stamp[to] = s + 1;
                if (pass == 0)
                    rhead[to + 1]++;
                else
                    radj[rhead[to] + fill[to]++] = s;
            }
        if (pass == 0) {
            for (int i = 0; i < n; i++)
                rhead[i + 1] += rhead[i];
            if (!(radj = malloc(((size_t)rhead[n] + 1) * sizeof *radj)))
                rc = SS_ERR_NOMEM;
        }
    }
    int qh = 0, qt = 0;
    for (int s = 0; s < n && !rc; s++) {
        dist[s] = g->acc[s] ? 0 : INT32_MAX;
        if (g->acc[s])
            q[qt++] = s;
    }
    while (!rc && qh < qt) {
        int x = q[qh++];
        for (int e = rhead[x]; e < rhead[x + 1]; e++) {
            int p = radj[e];
            if (dist[p] == INT32_MAX) {
                dist[p] = dist[x] + 1;
                q[qt++] = p;
            }
        }
    }
    free(q);
    free(rhead);
    free(radj);
    free(stamp);
    free(fill);
    return rc;
}

int ss_gram_compile(const ss_jschema_t *s, ss_gram_t **out, char *err, size_t errsz)
{
    *out = NULL;
    builder_t b = {.err = err, .errsz = errsz};
    int acc = b_new(&b);
    if (!b.rc)
        b.acc[acc] = 1;
    int start = b_value(&b, s, acc, 0);
    ss_gram_t *g = calloc(1, sizeof *g);
    int rc = b.rc ? b.rc : g ? (int)SS_OK : (int)ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc) {
        g->n = b.n;
        g->start = start;
        rc = b_finish(&b, g);
    }
    if (!rc && gram_distances(g, NULL, g->dist))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc && g->dist[g->start] == INT32_MAX)
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "JSON schema admits no value");
    free(b.t);
    free(b.acc);
    free(b.eps);
    if (rc) {
        ss_gram_free(g);
        return rc;
    }
    *out = g;
    return SS_OK;
}

int ss_gram_compile_text(const char *schema, size_t n, ss_gram_t **out, char *err, size_t errsz)
{
    ss_jschema_t *s = NULL;
    *out = NULL;
    int rc = ss_jschema_parse(schema, n, &s, err, errsz);
    if (!rc)
        rc = ss_gram_compile(s, out, err, errsz);
    ss_jschema_free(s);
    return rc;
}

void ss_gram_free(ss_gram_t *g)
{
    if (!g)
        return;
    free(g->t);
    free(g->acc);
    free(g->fin);
    free(g->dist);
    free(g);
}

int ss_gram_nstates(const ss_gram_t *g) { return g->n; }
int ss_gram_start(const ss_gram_t *g) { return g->start; }
int ss_gram_accepting(const ss_gram_t *g, int s) { return s >= 0 && s < g->n && g->acc[s]; }
int ss_gram_final(const ss_gram_t *g, int s) { return s >= 0 && s < g->n && g->fin[s]; }
int ss_gram_dist(const ss_gram_t *g, int s) { return s >= 0 && s < g->n ? g->dist[s] : INT32_MAX; }

int ss_gram_step(const ss_gram_t *g, int s, unsigned char b)
{
    return s >= 0 && s < g->n ? g->t[(size_t)s * 256 + b] : -1;
}

int ss_gram_accepts(const ss_gram_t *g, const char *s, size_t n)
{
    int st = g->start;
    for (size_t i = 0; i < n && st >= 0; i++)
        st = ss_gram_step(g, st, (unsigned char)s[i]);
    return ss_gram_accepting(g, st);
}

/* ================================================================ tokens */

/* One compiled schema and what the model's vocabulary does in it. */
typedef struct gram_entry {
    char *schema;         /* the request's json_schema text (the key) */
    ss_gram_t *g;
    int32_t *dtok;        /* fewest tokens to a complete value, one-byte tokens only */
    int32_t **rows;       /* per state: next state of every token, or NULL until visited */
    int32_t **allow;      /* per visited state with few allowed tokens (<= vocab / 8): their ids */
    int *nallow;          /* entries of allow[s]; -1: state not visited or many allowed */
    size_t row_bytes;     /* kept in rows */
    int32_t *scratch;     /* a row when the cache is full */
    uint64_t used;        /* LRU stamp */
} gram_entry_t;

struct gram_cache {
    int vocab;
    int *off;             /* token i's bytes: bytes[off[i] .. off[i+1]) (empty: never allowed) */
    unsigned char *bytes;
    gram_entry_t ent[GRAM_CACHE_SCHEMAS];
    int nent;
    uint64_t clock;
};

struct gram_seq {
    gram_entry_t *e;      /* borrowed from the model's cache */
    int state;
};

static void entry_clear(gram_entry_t *e)
{
    free(e->schema);
    free(e->dtok);
    for (int s = 0; e->rows && e->g && s < e->g->n; s++)
        free(e->rows[s]);
    for (int s = 0; e->allow && e->g && s < e->g->n; s++)
        free(e->allow[s]);
    free(e->allow);
    free(e->nallow);
    ss_gram_free(e->g);
    free(e->rows);
    free(e->scratch);
    memset(e, 0, sizeof *e);
}

void gram_cache_free(ss_llm_t *m)
{
    struct gram_cache *c = m->gram;
    if (!c)
        return;
    for (int i = 0; i < c->nent; i++)
        entry_clear(&c->ent[i]);
    free(c->off);
    free(c->bytes);
    free(c);
    m->gram = NULL;
}

/* Every token's bytes as they decode in the middle of a text (BOS, EOS, control and unknown
 * tokens get none: the grammar never picks them). */
static int cache_open(ss_llm_t *m)
{
    if (m->gram)
        return SS_OK;
    struct gram_cache *c = calloc(1, sizeof *c);
    int v = m->cfg.vocab_size;
    ss_buf_t all = SS_BUF_INIT;
    if (!c || !(c->off = malloc((size_t)(v + 1) * sizeof *c->off))) {
        free(c);
        return SS_ERR_NOMEM;
    }
    c->vocab = v;
    int rc = SS_OK;
    for (int i = 0; i < v && !rc; i++) {
        c->off[i] = (int)all.len;
        int ty = i < m->tok.n ? m->tok.type[i] : 2;
        if (i >= m->tok.n || i == m->cfg.bos || i == m->cfg.eos || i == m->eot || ty == 2 || ty == 3 || ty == 4)
            continue;
        tok_decode_piece(&m->tok, i, -1, &all);
        if (all.len > (size_t)INT32_MAX / 2)
            rc = SS_ERR_NOMEM;
    }
    c->off[v] = (int)all.len;
    c->bytes = (unsigned char *)ss_buf_take(&all);
    if (rc) {
        free(c->off);
        free(c->bytes);
        free(c);
        return rc;
    }
    m->gram = c;
    return SS_OK;
}

static int entry_open(ss_llm_t *m, const char *schema, gram_entry_t **out, char *err, size_t errsz)
{
    struct gram_cache *c = m->gram;
    c->clock++;
    for (int i = 0; i < c->nent; i++)
        if (!strcmp(c->ent[i].schema, schema)) {
            c->ent[i].used = c->clock;
            *out = &c->ent[i];
            return SS_OK;
        }
    ss_gram_t *g = NULL;
    int rc = ss_gram_compile_text(schema, strlen(schema), &g, err, errsz);
    if (rc)
        return rc;
    int slot = c->nent < GRAM_CACHE_SCHEMAS ? c->nent++ : 0;
    for (int i = 0; c->nent == GRAM_CACHE_SCHEMAS && i < c->nent; i++)
        if (c->ent[i].used < c->ent[slot].used)
            slot = i;
    gram_entry_t *e = &c->ent[slot];
    if (e->g)
        entry_clear(e);
    e->g = g;
    e->used = c->clock;
    e->schema = ss_strdup(schema);
    e->dtok = malloc((size_t)g->n * sizeof *e->dtok);
    e->rows = calloc((size_t)g->n, sizeof *e->rows);
    e->allow = calloc((size_t)g->n, sizeof *e->allow);
    e->nallow = malloc((size_t)g->n * sizeof *e->nallow);
    for (int i = 0; e->nallow && i < g->n; i++)
        e->nallow[i] = -1;
    unsigned char one[256] = {0}; /* bytes the vocabulary can write as a token of their own */
    for (int i = 0; i < c->vocab; i++)
        if (c->off[i + 1] - c->off[i] == 1)
            one[c->bytes[c->off[i]]] = 1;
    if (!e->schema || !e->dtok || !e->rows || !e->allow || !e->nallow || gram_distances(g, one, e->dtok)) {
        entry_clear(e);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    *out = e;
    return SS_OK;
}

/* The state every token leads to from state s (-1: rejected). */
static const int32_t *entry_row(const struct gram_cache *c, gram_entry_t *e, int s)
{
    if (e->rows[s])
        return e->rows[s];
    size_t bytes = (size_t)c->vocab * sizeof(int32_t);
    int32_t *row = NULL;
    if (e->row_bytes + bytes <= GRAM_ROW_BYTES && (row = malloc(bytes))) {
        e->rows[s] = row;
        e->row_bytes += bytes;
    } else if (!e->scratch && !(e->scratch = malloc(bytes))) {
        return NULL;
    } else {
        row = e->scratch;
    }
    const int32_t *t = e->g->t;
    int nal = 0;
    for (int i = 0; i < c->vocab; i++) {
        int st = c->off[i] == c->off[i + 1] ? -1 : s;
        for (int j = c->off[i]; j < c->off[i + 1] && st >= 0; j++)
            st = t[(size_t)st * 256 + c->bytes[j]];
        row[i] = st;
        nal += st >= 0;
    }
    /* a state that allows few tokens keeps their list: picking scans it instead of the vocabulary */
    if (row != e->scratch && nal <= c->vocab / 8 && (e->allow[s] = malloc(((size_t)nal + 1) * sizeof(int32_t)))) {
        for (int i = 0, k = 0; i < c->vocab; i++)
            if (row[i] >= 0)
                e->allow[s][k++] = i;
        e->nallow[s] = nal;
    }
    return row;
}

int gram_seq_new(ss_llm_t *m, const char *schema, int max_tokens, gram_seq_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (cache_open(m))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    gram_entry_t *e = NULL;
    int rc = entry_open(m, schema, &e, err, errsz);
    if (rc)
        return rc;
    int need = e->dtok[e->g->start];
    if (need == INT32_MAX)
        return ss_seterr(err, errsz, SS_ERR_MODEL, "the model's vocabulary cannot write a value of the JSON schema");
    if (need > max_tokens)
        return ss_seterr(err, errsz, SS_ERR_INVALID,
                         "max_tokens %d is too small for the JSON schema: its shortest value takes %d tokens",
                         max_tokens, need);
    gram_seq_t *q = calloc(1, sizeof *q);
    if (!q)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    q->e = e;
    q->state = e->g->start;
    *out = q;
    return SS_OK;
}

void gram_seq_free(gram_seq_t *q) { free(q); }

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int gram_seq_pick(ss_llm_t *m, gram_seq_t *q, const float *logits, int argmax, float temp, uint64_t *rng, int left)
{
    struct gram_cache *c = m->gram;
    gram_entry_t *e = q->e;
    const int32_t *row = entry_row(c, e, q->state);
    if (!row)
        return -1;
    const int32_t *dtok = e->dtok;
    int end_ok = e->g->acc[q->state]; /* EOS / end of turn may end a complete value */
#define ALLOWED(t) ((row[t] >= 0 && dtok[row[t]] <= left) || (end_ok && ((t) == m->cfg.eos || (t) == m->eot)))
    int v = c->vocab;
    if (temp <= 0) {
        if (argmax >= 0 && argmax < v && ALLOWED(argmax))
            return argmax; /* the model's own choice fits: one lookup */
        int best = -1;
        float bv = -INFINITY;
        if (e->nallow[q->state] >= 0) { /* few tokens allowed here: scan their list */
            const int32_t *al = e->allow[q->state];
            for (int k = 0; k < e->nallow[q->state]; k++) {
                int t = al[k];
                if ((logits[t] > bv || best < 0) && dtok[row[t]] <= left) {
                    best = t;
                    bv = logits[t];
                }
            }
            if (end_ok) /* EOS ends a complete value */
                for (int k = 0; k < 2; k++) {
                    int t = k ? m->eot : m->cfg.eos;
                    if (t >= 0 && t < v && (logits[t] > bv || best < 0)) {
                        best = t;
                        bv = logits[t];
                    }
                }
            return best;
        }
        /* the argmax scan the unconstrained decoder does anyway, asking the grammar only about a
         * token that would beat the best allowed one so far */
        for (int t = 0; t < v; t++)
            if ((logits[t] > bv || best < 0) && ALLOWED(t)) {
                best = t;
                bv = logits[t];
            }
        return best;
    }
    float mx = -INFINITY;
    for (int t = 0; t < v; t++)
        if (ALLOWED(t) && logits[t] > mx)
            mx = logits[t];
    if (mx == -INFINITY)
        return -1;
    double sum = 0;
    for (int t = 0; t < v; t++)
        if (ALLOWED(t))
            sum += exp((double)(logits[t] - mx) / temp);
    double r = (double)(mix(rng) >> 11) / 9007199254740992.0 * sum, acc = 0;
    int last = -1;
    for (int t = 0; t < v; t++)
        if (ALLOWED(t)) {
            acc += exp((double)(logits[t] - mx) / temp);
            last = t;
            if (acc > r)
                return t;
        }
#undef ALLOWED
    return last;
}

int gram_seq_advance(ss_llm_t *m, gram_seq_t *q, int tok)
{
    struct gram_cache *c = m->gram;
    if (tok < 0 || tok >= c->vocab)
        return 1;
    int s = q->state;
    for (int j = c->off[tok]; j < c->off[tok + 1] && s >= 0; j++)
        s = q->e->g->t[(size_t)s * 256 + c->bytes[j]];
    q->state = s;
    return s < 0 || q->e->g->fin[s];
}

int gram_seq_done(const gram_seq_t *q) { return q->state >= 0 && q->e->g->acc[q->state]; }
