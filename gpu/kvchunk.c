/*
 * kvchunk.c — the chunk KV cache of KV_REUSE = 'chunks' (issue 17 §2, CacheBlend): a
 * host-memory LRU of the KV of token chunks (retrieved documents) computed on their own, at
 * positions 0..n-1. An entry is found by a 64-bit key (the chunk's tokens hashed with the
 * model's identity and layer shape, see kvblend.c) and verified against its stored tokens.
 * The cache is bounded in bytes: inserting evicts the least recently used entries until the
 * new one fits; an entry larger than the whole bound is not kept (the caller computes it into
 * memory of its own). Owns every entry and its arrays.
 */
#include "llm_internal.h"

#include <stdlib.h>
#include <string.h>

void kvc_init(kvchunk_t *c, size_t cap_bytes)
{
    memset(c, 0, sizeof *c);
    c->cap_bytes = cap_bytes;
}

static void entry_free(kvc_entry_t *e)
{
    free(e->tok);
    free(e->kv);
    free(e);
}

void kvc_clear(kvchunk_t *c)
{
    for (kvc_entry_t *e = c->head, *nx; e; e = nx) {
        nx = e->next;
        entry_free(e);
    }
    free(c->tab);
    c->tab = NULL;
    c->tab_cap = c->n = 0;
    c->head = c->tail = NULL;
    c->bytes = 0;
}

void kvc_free(kvchunk_t *c) { kvc_clear(c); }

static void lru_unlink(kvchunk_t *c, kvc_entry_t *e)
{
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(kvchunk_t *c, kvc_entry_t *e) /* most recently used: the tail */
{
    e->prev = c->tail;
    e->next = NULL;
    if (c->tail) c->tail->next = e; else c->head = e;
    c->tail = e;
}

static kvc_entry_t **slot(kvchunk_t *c, uint64_t key)
{
    return &c->tab[key & (uint64_t)(c->tab_cap - 1)];
}

static void tab_remove(kvchunk_t *c, kvc_entry_t *e)
{
    for (kvc_entry_t **p = slot(c, e->key); *p; p = &(*p)->hnext)
        if (*p == e) {
            *p = e->hnext;
            return;
        }
}

static int tab_grow(kvchunk_t *c)
{
    int nc = c->tab_cap ? 2 * c->tab_cap : 64;
    kvc_entry_t **t = calloc((size_t)nc, sizeof *t);
    if (!t)
        return -1;
    for (kvc_entry_t *e = c->head; e; e = e->next) {
        kvc_entry_t **p = &t[e->key & (uint64_t)(nc - 1)];
        e->hnext = *p;
        *p = e;
    }
    free(c->tab);
    c->tab = t;
    c->tab_cap = nc;
    return 0;
}

static void evict(kvchunk_t *c, kvc_entry_t *e)
{
    lru_unlink(c, e);
    tab_remove(c, e);
    c->bytes -= e->bytes;
    c->n--;
    c->evictions++;
    entry_free(e);
}

kvc_entry_t *kvc_get(kvchunk_t *c, uint64_t key, const int *tok, int n)
{
    for (kvc_entry_t *e = c->tab_cap ? *slot(c, key) : NULL; e; e = e->hnext)
        if (e->key == key && e->n == n && !memcmp(e->tok, tok, (size_t)n * sizeof *tok)) {
            lru_unlink(c, e);
            lru_push(c, e);
            c->hits++;
            return e;
        }
    c->misses++;
    return NULL;
}

size_t kvc_entry_bytes(int n, size_t floats)
{
    return sizeof(kvc_entry_t) + (size_t)n * sizeof(int) + floats * sizeof(float);
}

kvc_entry_t *kvc_put(kvchunk_t *c, uint64_t key, const int *tok, int n, size_t floats)
{
    size_t need = kvc_entry_bytes(n, floats);
    if (need > c->cap_bytes)
        return NULL;
    while (c->head && c->bytes + need > c->cap_bytes)
        evict(c, c->head);
    if ((c->n + 1) * 2 > c->tab_cap && tab_grow(c))
        return NULL;
    kvc_entry_t *e = calloc(1, sizeof *e);
    if (e) {
        e->tok = malloc((size_t)(n ? n : 1) * sizeof *tok);
        e->kv = malloc((floats ? floats : 1) * sizeof(float));
    }
    if (!e || !e->tok || !e->kv) {
        if (e)
            entry_free(e);
        return NULL;
    }
    memcpy(e->tok, tok, (size_t)n * sizeof *tok);
    e->key = key;
    e->n = n;
    e->bytes = need;
    kvc_entry_t **p = slot(c, key);
    e->hnext = *p;
    *p = e;
    lru_push(c, e);
    c->bytes += need;
    c->n++;
    c->inserts++;
    return e;
}

void kvc_drop(kvchunk_t *c, kvc_entry_t *e) { evict(c, e); c->evictions--; }
