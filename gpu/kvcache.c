/*
 * kvcache.c — bookkeeping of KV blocks (the memory lives in the backend): reference
 * counts, a free list, and the prefix table. A full block is identified by the
 * chain hash of every token from position 0 to its end, so a block can only be
 * reused by a sequence whose whole prefix is identical (verified against the
 * stored tokens and parent hash, not just the hash). Unreferenced registered
 * blocks stay reusable in an LRU list until max_cached is exceeded.
 */
#include "llm_internal.h"

#include <stdlib.h>
#include <string.h>

void kv_init(kvcache_t *c, int max_cached)
{
    memset(c, 0, sizeof *c);
    c->lru_head = c->lru_tail = -1;
    c->max_cached = max_cached;
}

void kv_free(kvcache_t *c)
{
    free(c->b);
    free(c->freelist);
    free(c->tab_key);
    free(c->tab_val);
    memset(c, 0, sizeof *c);
}

uint64_t kv_chain(uint64_t parent, const int *toks)
{
    uint64_t h = ss_hash64(toks, KV_BLOCK * sizeof(int), parent ^ 0x9e3779b97f4a7c15ull);
    return h < 2 ? h + 2 : h; /* 0 and 1 mark empty and deleted table slots */
}

/* ---- hash table (open addressing, linear probing; key 0 = empty, 1 = deleted) ---- */

static int tab_grow(kvcache_t *c)
{
    int live = 0;
    for (int i = 0; i < c->tab_cap; i++)
        live += c->tab_key[i] > 1;
    int nc = !c->tab_cap ? 1024 : live * 4 >= c->tab_cap ? 2 * c->tab_cap : c->tab_cap;
    uint64_t *k = calloc((size_t)nc, sizeof *k);
    int *v = calloc((size_t)nc, sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    for (int i = 0; i < c->tab_cap; i++)
        if (c->tab_key[i] > 1) {
            size_t j = c->tab_key[i] & (size_t)(nc - 1);
            while (k[j])
                j = (j + 1) & (size_t)(nc - 1);
            k[j] = c->tab_key[i];
            v[j] = c->tab_val[i];
        }
    free(c->tab_key);
    free(c->tab_val);
    c->tab_n = live;
    c->tab_key = k;
    c->tab_val = v;
    c->tab_cap = nc;
    return 0;
}

static int tab_find(const kvcache_t *c, uint64_t h)
{
    if (!c->tab_cap)
        return -1;
    size_t mask = (size_t)c->tab_cap - 1;
    for (size_t j = h & mask;; j = (j + 1) & mask) {
        if (c->tab_key[j] == 0)
            return -1;
        if (c->tab_key[j] == h)
            return (int)j;
    }
}

static void tab_del(kvcache_t *c, uint64_t h)
{
    int j = tab_find(c, h);
    if (j >= 0)
        c->tab_key[j] = 1; /* tombstone */
}

static int tab_put(kvcache_t *c, uint64_t h, int id)
{
    if ((c->tab_n + 1) * 2 > c->tab_cap && tab_grow(c))
        return -1;
    size_t mask = (size_t)c->tab_cap - 1;
    size_t j = h & mask;
    while (c->tab_key[j] > 1)
        j = (j + 1) & mask;
    c->tab_key[j] = h;
    c->tab_val[j] = id;
    c->tab_n++; /* tombstones count too: the table is rebuilt when it fills */
    return 0;
}

/* ---- LRU list of unreferenced cached blocks ---- */

static void lru_unlink(kvcache_t *c, int id)
{
    kvblock_t *b = &c->b[id];
    if (b->prev >= 0) c->b[b->prev].next = b->next; else c->lru_head = b->next;
    if (b->next >= 0) c->b[b->next].prev = b->prev; else c->lru_tail = b->prev;
    b->prev = b->next = -1;
    c->nlru--;
}

static void lru_push(kvcache_t *c, int id)
{
    kvblock_t *b = &c->b[id];
    b->prev = c->lru_tail;
    b->next = -1;
    if (c->lru_tail >= 0) c->b[c->lru_tail].next = id; else c->lru_head = id;
    c->lru_tail = id;
    c->nlru++;
}

static void uncache(kvcache_t *c, int id)
{
    kvblock_t *b = &c->b[id];
    tab_del(c, b->hash);
    b->cached = 0;
}

static int push_free(kvcache_t *c, int id)
{
    c->freelist[c->nfree++] = id; /* freelist has room for every block */
    return 0;
}

int kv_alloc(kvcache_t *c)
{
    int id;
    if (c->nfree) {
        id = c->freelist[--c->nfree];
    } else if (c->nlru > 0 && c->nlru >= c->max_cached) {
        id = c->lru_head; /* evict the least recently used reusable block */
        lru_unlink(c, id);
        uncache(c, id);
    } else {
        if (c->nb == c->cap) {
            int nc = c->cap ? 2 * c->cap : 256;
            kvblock_t *b = realloc(c->b, (size_t)nc * sizeof *b);
            int *f = realloc(c->freelist, (size_t)nc * sizeof *f);
            if (b) c->b = b;
            if (f) c->freelist = f;
            if (!b || !f)
                return -1;
            c->cap = nc;
        }
        id = c->nb++;
    }
    kvblock_t *b = &c->b[id];
    memset(b, 0, sizeof *b);
    b->prev = b->next = -1;
    b->ref = 1;
    return id;
}

void kv_release(kvcache_t *c, int id)
{
    kvblock_t *b = &c->b[id];
    if (--b->ref > 0)
        return;
    if (b->cached && c->max_cached > 0) {
        lru_push(c, id);
        while (c->nlru > c->max_cached) { /* over budget: drop the oldest */
            int o = c->lru_head;
            lru_unlink(c, o);
            uncache(c, o);
            push_free(c, o);
        }
    } else {
        if (b->cached)
            uncache(c, id);
        push_free(c, id);
    }
}

void kv_ref(kvcache_t *c, int id)
{
    if (c->b[id].ref++ == 0 && c->b[id].cached)
        lru_unlink(c, id);
}

int kv_lookup(kvcache_t *c, uint64_t h, uint64_t parent, const int *toks)
{
    int j = tab_find(c, h);
    if (j < 0)
        return -1;
    int id = c->tab_val[j];
    kvblock_t *b = &c->b[id];
    if (b->parent != parent || memcmp(b->tokens, toks, sizeof b->tokens))
        return -1; /* 64-bit collision: treat as a miss */
    if (b->ref++ == 0)
        lru_unlink(c, id);
    return id;
}

void kv_register(kvcache_t *c, int id, uint64_t h, uint64_t parent, const int *toks)
{
    kvblock_t *b = &c->b[id];
    if (b->cached || tab_find(c, h) >= 0)
        return; /* an identical block is already registered */
    if (tab_put(c, h, id))
        return; /* no memory: simply not reusable */
    b->cached = 1;
    b->hash = h;
    b->parent = parent;
    memcpy(b->tokens, toks, sizeof b->tokens);
}

void kv_clear(kvcache_t *c)
{
    while (c->lru_head >= 0) {
        int o = c->lru_head;
        lru_unlink(c, o);
        uncache(c, o);
        push_free(c, o);
    }
}
