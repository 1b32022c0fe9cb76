/*
 * sem_agg.c — SEM_AGG('template') [GROUP BY ...]: one summary text per group,
 * computed by a persistent aggregation tree (a Merkle search tree of summaries).
 *
 * Shape. The leaves of a group are its rows ordered by the hash of their key (the
 * input's KEY columns, or the whole row when it has none). Each leaf has a level:
 * how many times fan_in divides a second hash of that key. A level-l node ends at a
 * child whose level is at least l (or when it reaches max_children children, or at
 * the end), as in prolly trees / Merkle search trees: the shape depends only on the
 * group's current contents, never on the order rows arrived in. A chunk of a single
 * child above level 1 is that child (no call). The tree ends at the first level with
 * one node: its text is the group's summary.
 *
 * Nodes. A node's identity is the hash of its children's identities (a leaf's is the
 * hash of its rendered fields); its text is a GENERATE over the template and the
 * children's texts, memoised in st_<id>_node keyed by that identity (kept across
 * restarts). A changed row changes only the identities on its path to the root, so
 * an insert, delete or update costs about one call per level: O(log N) calls, plus a
 * few when a boundary appears or vanishes. Deletion is exact: the tree of the
 * remaining rows is the tree a fresh run would build.
 *
 * State: st_<id>_rows(g, h, r, w) the integrated input per group (g = group columns,
 * h = key hash, r = row), st_<id>_node(k, v) memoised node texts, st_<id>_out(g, v)
 * the emitted summary per group (an update is emitted as -old +new).
 */
#include "ss_sem.h"
#include "ss_winstate.h"

#include <stdlib.h>
#include <string.h>

#define AGG_TASK "Summarize the inputs as the instruction asks; answer in one line."

typedef struct sem_agg {
    int fan_in;
    int max_children;
    int max_tokens;
    int keys[SS_SEM_MAXCOLS];
    int nkeys; /* 0: the whole row is the key */
    ss_winstate_t ws; /* SEM_AGG per window: a closed window's summary is final, its tree freed (winstate.c) */
} sem_agg_t;

typedef struct anode {
    char id[33];  /* Merkle identity (hex) */
    int lvl;      /* boundary level of the node's last leaf */
    char *text;   /* owned: rendered fields (leaf) or summary (inner node) */
    int kid0, nkids; /* children in the previous level (inner nodes) */
    int missing;  /* index into this round's requests + 1, or 0 */
} anode_t;

typedef struct agroup {
    ss_buf_t g;       /* encoded group key */
    anode_t *cur;     /* nodes of the current level */
    int ncur;
    int level;        /* 0 = leaves */
    int done;
    ss_buf_t ids;     /* identities (32 hex chars each) of the inner nodes of the new tree */
} agroup_t;

/* ------------------------------------------------------------------ helpers */

static int key_level(uint64_t h, int fan_in)
{
    uint64_t u = ss_hash_combine(h, 0x5e3a99ULL);
    int l = 0;
    while (l < 40 && u % (uint64_t)fan_in == 0) {
        u /= (uint64_t)fan_in;
        l++;
    }
    return l;
}

static void free_nodes(anode_t *v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i].text);
    free(v);
}

static void free_groups(agroup_t *gs, int n)
{
    for (int i = 0; gs && i < n; i++) {
        ss_buf_free(&gs[i].g);
        ss_buf_free(&gs[i].ids);
        free_nodes(gs[i].cur, gs[i].ncur);
    }
    free(gs);
}

/* Loads the leaves of group g in key order. */
static int load_leaves(ss_op_t *op, ss_op_ctx_t *ctx, agroup_t *G, char *err, size_t errsz)
{
    sem_agg_t *a = op->impl;
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz,
                            "SELECT h, r FROM st_%d_rows WHERE g=?1 AND w>0 ORDER BY h, r", op->node->id);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, G->g.data ? G->g.data : "", (int)G->g.len, SQLITE_STATIC);
    size_t cap = 0;
    ss_buf_t txt = SS_BUF_INIT;
    int s;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        ss_row_t *row = NULL;
        rc = ss_row_decode(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), &row);
        if (rc) {
            ss_seterr(err, errsz, rc, "sem_agg (node %d): bad stored row", op->node->id);
            break;
        }
        if ((size_t)G->ncur == cap) {
            cap = cap ? cap * 2 : 16;
            anode_t *nv = realloc(G->cur, cap * sizeof *nv);
            if (!nv) {
                ss_row_free(row);
                rc = SS_ERR_NOMEM;
                break;
            }
            G->cur = nv;
        }
        anode_t *n = &G->cur[G->ncur];
        memset(n, 0, sizeof *n);
        ss_buf_reset(&txt);
        rc = ss_sem_fields(&txt, op->node->tmpl, 0, row, NULL);
        ss_row_free(row);
        if (rc)
            break;
        n->text = ss_strdup(ss_buf_cstr(&txt));
        if (!n->text) {
            rc = SS_ERR_NOMEM;
            break;
        }
        ss_buf_t idb = SS_BUF_INIT;
        rc = ss_buf_putc(&idb, 'L');
        if (!rc)
            rc = ss_buf_append(&idb, txt.data ? txt.data : "", txt.len);
        if (!rc)
            ss_hash_hex128(idb.data, idb.len, n->id);
        ss_buf_free(&idb);
        n->lvl = key_level((uint64_t)sqlite3_column_int64(st, 0), a->fan_in);
        G->ncur++;
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_agg leaves");
    ss_buf_free(&txt);
    sqlite3_finalize(st);
    return rc;
}

/* Appends the prompt of an inner node whose children are kids[0..n). */
static int node_prompt(ss_op_t *op, const anode_t *kids, int n, int leaves, ss_buf_t *out, size_t *pre)
{
    size_t start = out->len;
    int rc = ss_sem_head(out, AGG_TASK, op->node->tmpl);
    *pre = out->len - start;
    if (!rc)
        rc = ss_buf_puts(out, "### Input\n");
    for (int i = 0; i < n && !rc; i++) {
        if (leaves)
            rc = ss_buf_printf(out, "<row>\n%s</row>\n", kids[i].text);
        else
            rc = ss_sem_item(out, "summary", kids[i].text, strlen(kids[i].text));
    }
    if (!rc)
        rc = ss_buf_puts(out, "### Answer:");
    return rc;
}

/* Builds group G's next level; new nodes absent from the memo get a prompt in prompts[]. */
static int next_level(ss_op_t *op, ss_sem_kv_t *memo, agroup_t *G, ss_buf_t **prompts, size_t **pres,
                      anode_t ***owners, int *nreq, int *capreq, char *err, size_t errsz)
{
    sem_agg_t *a = op->impl;
    int L = G->level + 1;
    anode_t *nx = calloc((size_t)G->ncur, sizeof *nx);
    if (!nx)
        return SS_ERR_NOMEM;
    int nn = 0, rc = SS_OK, s = 0;
    ss_buf_t idb = SS_BUF_INIT, val = SS_BUF_INIT;
    for (int i = 0; i < G->ncur && !rc; i++) {
        int len = i - s + 1;
        if (!(G->cur[i].lvl >= L || len >= a->max_children || i == G->ncur - 1))
            continue;
        anode_t *n = &nx[nn++];
        if (len == 1 && G->level >= 1) { /* pass-through: the child itself */
            *n = G->cur[i];
            G->cur[i].text = NULL;
            n->missing = 0;
            s = i + 1;
            continue;
        }
        n->kid0 = s;
        n->nkids = len;
        n->lvl = G->cur[i].lvl;
        ss_buf_reset(&idb);
        rc = ss_buf_putc(&idb, G->level == 0 ? 'R' : 'S');
        for (int j = s; j <= i && !rc; j++)
            rc = ss_buf_append(&idb, G->cur[j].id, 32);
        if (rc)
            break;
        ss_hash_hex128(idb.data, idb.len, n->id);
        rc = ss_buf_append(&G->ids, n->id, 32);
        int found = 0;
        ss_buf_reset(&val);
        rc = ss_sem_kv_get(memo, n->id, 32, &val, &found, err, errsz);
        if (!rc && found) {
            n->text = ss_strdup(ss_buf_cstr(&val));
            rc = n->text ? SS_OK : SS_ERR_NOMEM;
        } else if (!rc) {
            if (*nreq == *capreq) {
                int cap = *capreq ? *capreq * 2 : 64;
                ss_buf_t *p = realloc(*prompts, (size_t)cap * sizeof *p);
                if (p)
                    *prompts = p;
                size_t *q = realloc(*pres, (size_t)cap * sizeof *q);
                if (q)
                    *pres = q;
                anode_t **o = realloc(*owners, (size_t)cap * sizeof *o);
                if (o)
                    *owners = o;
                if (!p || !q || !o) {
                    rc = SS_ERR_NOMEM;
                    break;
                }
                *capreq = cap;
            }
            ss_buf_t *pb = &(*prompts)[*nreq];
            memset(pb, 0, sizeof *pb);
            rc = node_prompt(op, &G->cur[s], len, G->level == 0, pb, &(*pres)[*nreq]);
            n->missing = ++*nreq;
        }
        s = i + 1;
    }
    ss_buf_free(&idb);
    ss_buf_free(&val);
    if (rc) {
        free_nodes(nx, nn);
        return rc;
    }
    free_nodes(G->cur, G->ncur);
    G->cur = nx;
    G->ncur = nn;
    G->level = L;
    for (int i = 0; i < nn; i++) /* owners point at the new level's nodes */
        if (nx[i].missing)
            (*owners)[nx[i].missing - 1] = &nx[i];
    return SS_OK;
}

/* Builds every group's tree level by level, one dispatcher call per level. */
static int build_trees(ss_op_t *op, ss_op_ctx_t *ctx, ss_sem_kv_t *memo, agroup_t *gs, int ng,
                       char *err, size_t errsz)
{
    sem_agg_t *a = op->impl;
    int rc = SS_OK;
    for (;;) {
        ss_buf_t *prompts = NULL;
        size_t *pres = NULL;
        anode_t **owners = NULL;
        int nreq = 0, capreq = 0, active = 0;
        for (int i = 0; i < ng && !rc; i++) {
            agroup_t *G = &gs[i];
            if (G->done || (G->level >= 1 && G->ncur <= 1) || G->ncur == 0) {
                G->done = 1;
                continue;
            }
            active++;
            rc = next_level(op, memo, G, &prompts, &pres, &owners, &nreq, &capreq, err, errsz);
        }
        ss_infer_req_t *reqs = nreq ? calloc((size_t)nreq, sizeof *reqs) : NULL;
        ss_infer_res_t *res = nreq ? calloc((size_t)nreq, sizeof *res) : NULL;
        if (!rc && nreq && (!reqs || !res))
            rc = SS_ERR_NOMEM;
        for (int i = 0; i < nreq && !rc; i++) {
            ss_sem_req_generate(&reqs[i], ss_buf_cstr(&prompts[i]), pres[i], a->max_tokens);
            ss_sem_req_sampling(&reqs[i], op->node, ss_buf_cstr(&prompts[i]), prompts[i].len);
        }
        if (!rc)
            rc = ss_sem_run(op, ctx, reqs, nreq, res, err, errsz);
        for (int i = 0; i < nreq && !rc; i++) {
            anode_t *n = owners[i];
            n->text = ss_sem_gen_text(&res[i]);
            if (!n->text)
                rc = SS_ERR_NOMEM;
            else
                rc = ss_sem_kv_put(memo, n->id, 32, n->text, strlen(n->text), err, errsz);
            n->missing = 0;
        }
        for (int i = 0; i < nreq; i++)
            ss_buf_free(&prompts[i]);
        free(prompts);
        free(pres);
        free(owners);
        free(reqs);
        ss_sem_res_free(res, nreq);
        if (rc || !active)
            return rc;
    }
}

/* ------------------------------------------------------------------ state */

static int cmp_buf(const void *x, const void *y)
{
    const ss_buf_t *a = x, *b = y;
    size_t n = SS_MIN(a->len, b->len);
    int c = n ? memcmp(a->data, b->data, n) : 0;
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Adds the delta to st_rows and returns the distinct groups it touched. */
static int integrate(ss_op_t *op, ss_op_ctx_t *ctx, const ss_zset_t *in, agroup_t **out, int *nout,
                     char *err, size_t errsz)
{
    sem_agg_t *a = op->impl;
    const ss_plan_node_t *N = op->node;
    sqlite3_stmt *up = NULL, *del = NULL;
    int rc = ss_sem_prepare(ctx->db, &up, err, errsz,
                            "INSERT INTO st_%d_rows(g,h,r,w) VALUES(?1,?2,?3,?4) "
                            "ON CONFLICT(g,h,r) DO UPDATE SET w=w+excluded.w", N->id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &del, err, errsz,
                            "DELETE FROM st_%d_rows WHERE g=?1 AND h=?2 AND r=?3 AND w=0", N->id);
    ss_buf_t *gk = calloc(in->n ? in->n : 1, sizeof *gk);
    if (!rc && !gk)
        rc = SS_ERR_NOMEM;
    ss_buf_t rb = SS_BUF_INIT;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const ss_row_t *row = in->e[i].row;
        rc = ss_sem_proj(row, N->group_cols, N->ngroup, &gk[i]);
        if (N->ngroup == 0 && !rc) { /* no GROUP BY: one group with an empty key */
            ss_buf_reset(&gk[i]);
            ss_row_t *e = ss_row_new(0);
            rc = e ? ss_row_encode(e, &gk[i]) : SS_ERR_NOMEM;
            ss_row_free(e);
        }
        ss_buf_reset(&rb);
        if (!rc)
            rc = ss_row_encode(row, &rb);
        if (rc)
            break;
        if (!rc)
            rc = ss_winstate_note(&a->ws, row, &gk[i], err, errsz);
        if (rc)
            break;
        int64_t h = (int64_t)(a->nkeys ? ss_row_hash_cols(row, a->keys, a->nkeys) : ss_row_hash(row));
        sqlite3_stmt *sts[2] = {up, del};
        for (int k = 0; k < 2 && !rc; k++) {
            sqlite3_reset(sts[k]);
            sqlite3_bind_blob(sts[k], 1, gk[i].data, (int)gk[i].len, SQLITE_STATIC);
            sqlite3_bind_int64(sts[k], 2, h);
            sqlite3_bind_blob(sts[k], 3, rb.data, (int)rb.len, SQLITE_STATIC);
            if (k == 0)
                sqlite3_bind_int64(sts[k], 4, in->e[i].w);
            if (sqlite3_step(sts[k]) != SQLITE_DONE)
                rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_agg rows");
        }
    }
    ss_buf_free(&rb);
    sqlite3_finalize(up);
    sqlite3_finalize(del);
    int ng = 0;
    agroup_t *gs = NULL;
    if (!rc && in->n) {
        qsort(gk, in->n, sizeof *gk, cmp_buf);
        gs = calloc(in->n, sizeof *gs);
        if (!gs)
            rc = SS_ERR_NOMEM;
        for (size_t i = 0; i < in->n && !rc; i++) {
            if (ng && cmp_buf(&gs[ng - 1].g, &gk[i]) == 0)
                continue;
            gs[ng].g = gk[i];
            memset(&gk[i], 0, sizeof gk[i]);
            ng++;
        }
    }
    for (size_t i = 0; gk && i < in->n; i++)
        ss_buf_free(&gk[i]);
    free(gk);
    if (rc) {
        free_groups(gs, ng);
        return rc;
    }
    *out = gs;
    *nout = ng;
    return SS_OK;
}

/* ------------------------------------------------------------------ memo='prune' */

static int cmp_id(const void *x, const void *y) { return memcmp(x, y, 32); }

/* Sorts and deduplicates G's identities in place; returns their count. */
static int sorted_ids(agroup_t *G)
{
    int n = (int)(G->ids.len / 32), m = 0;
    if (n)
        qsort(G->ids.data, (size_t)n, 32, cmp_id);
    for (int i = 0; i < n; i++)
        if (!m || memcmp(G->ids.data + 32 * (m - 1), G->ids.data + 32 * i, 32) != 0)
            memmove(G->ids.data + 32 * m++, G->ids.data + 32 * i, 32);
    G->ids.len = (size_t)m * 32;
    return m;
}

/* The identities in st_<id>_gnode for group g, sorted. */
static int load_ids(ss_op_t *op, ss_op_ctx_t *ctx, const ss_buf_t *g, ss_buf_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT k FROM st_%d_gnode WHERE g=?1 ORDER BY k",
                            op->node->id);
    if (!rc)
        sqlite3_bind_blob(st, 1, g->data ? g->data : "", (int)g->len, SQLITE_STATIC);
    while (!rc && sqlite3_step(st) == SQLITE_ROW)
        if (sqlite3_column_bytes(st, 0) == 32)
            rc = ss_buf_append(out, sqlite3_column_blob(st, 0), 32);
    sqlite3_finalize(st);
    return rc;
}

/* One node entering (dw = +1) or leaving (-1) group g's tree: st_<id>_gnode and the node
 * memo's reference count follow; with gc, a node no tree holds is dropped. */
static int move_id(ss_sem_kv_t *memo, sqlite3_stmt *ins, sqlite3_stmt *del, const ss_buf_t *g, const char *k,
                   int dw, int gc, char *err, size_t errsz)
{
    sqlite3_stmt *st = dw > 0 ? ins : del;
    sqlite3_reset(st);
    sqlite3_bind_blob(st, 1, g->data ? g->data : "", (int)g->len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, k, 32, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(memo->db, err, errsz, "sem_agg gnode");
    sqlite3_reset(st);
    return rc ? rc : ss_sem_kv_ref(memo, k, 32, dw, gc, err, errsz);
}

/* memo='prune': after the touched groups' trees are rebuilt, each node memo entry counts
 * the groups whose tree holds it (st_<id>_gnode lists them); nodes that left every tree
 * are dropped. All entries are counted before any leaves, so a node moving from one
 * group's tree to another's in the same batch is kept. */
static int sync_nodes(ss_op_t *op, ss_op_ctx_t *ctx, ss_sem_kv_t *memo, agroup_t *gs, int ng, char *err,
                      size_t errsz)
{
    sqlite3_stmt *ins = NULL, *del = NULL;
    int id = op->node->id;
    int rc = ss_sem_prepare(ctx->db, &ins, err, errsz, "INSERT OR IGNORE INTO st_%d_gnode(g, k) VALUES(?1, ?2)", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &del, err, errsz, "DELETE FROM st_%d_gnode WHERE g=?1 AND k=?2", id);
    ss_buf_t *old = calloc((size_t)(ng ? ng : 1), sizeof *old);
    if (!rc && !old)
        rc = SS_ERR_NOMEM;
    for (int pass = 0; pass < 2 && !rc; pass++) /* 0: entering nodes, 1: leaving ones */
        for (int i = 0; i < ng && !rc; i++) {
            agroup_t *G = &gs[i];
            if (pass == 0)
                rc = load_ids(op, ctx, &G->g, &old[i], err, errsz);
            int nn = pass == 0 ? sorted_ids(G) : (int)(G->ids.len / 32), no = (int)(old[i].len / 32);
            for (int a = 0, b = 0; (a < nn || b < no) && !rc;) {
                const char *x = a < nn ? G->ids.data + 32 * a : NULL, *y = b < no ? old[i].data + 32 * b : NULL;
                int c = !x ? 1 : !y ? -1 : memcmp(x, y, 32);
                if (c < 0 && pass == 0)
                    rc = move_id(memo, ins, del, &G->g, x, +1, 0, err, errsz);
                else if (c > 0 && pass == 1)
                    rc = move_id(memo, ins, del, &G->g, y, -1, 1, err, errsz);
                a += c <= 0;
                b += c >= 0;
            }
        }
    for (int i = 0; old && i < ng; i++)
        ss_buf_free(&old[i]);
    free(old);
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    return rc;
}

/* Output row: the group's columns then the summary. */
static int out_row(const ss_buf_t *g, const char *text, ss_row_t **out)
{
    ss_row_t *gr = NULL;
    int rc = ss_row_decode(g->data, g->len, &gr);
    if (rc)
        return rc;
    ss_row_t *o = ss_row_new(gr->n + 1);
    rc = o ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; i < gr->n && !rc; i++)
        rc = ss_row_set(o, i, &gr->v[i]);
    ss_value_t t = ss_val_text_ref(text, strlen(text));
    if (!rc)
        rc = ss_row_set(o, gr->n, &t);
    ss_row_free(gr);
    if (rc) {
        ss_row_free(o);
        return rc;
    }
    *out = o;
    return SS_OK;
}

/* Compares each group's new root with what was emitted; emits -old +new. */
static int emit_changes(ss_op_t *op, ss_op_ctx_t *ctx, agroup_t *gs, int ng, ss_zset_t *out,
                        char *err, size_t errsz)
{
    sqlite3_stmt *get = NULL, *put = NULL, *del = NULL;
    int id = op->node->id;
    int rc = ss_sem_prepare(ctx->db, &get, err, errsz, "SELECT v FROM st_%d_out WHERE g=?1", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &put, err, errsz, "INSERT OR REPLACE INTO st_%d_out(g,v) VALUES(?1,?2)", id);
    if (!rc)
        rc = ss_sem_prepare(ctx->db, &del, err, errsz, "DELETE FROM st_%d_out WHERE g=?1", id);
    for (int i = 0; i < ng && !rc; i++) {
        agroup_t *G = &gs[i];
        const char *now = G->ncur == 1 ? G->cur[0].text : NULL;
        char *old = NULL;
        sqlite3_reset(get);
        sqlite3_bind_blob(get, 1, G->g.data, (int)G->g.len, SQLITE_STATIC);
        int s = sqlite3_step(get);
        if (s == SQLITE_ROW)
            old = ss_strdup((const char *)sqlite3_column_text(get, 0));
        else if (s != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_agg out");
        sqlite3_reset(get);
        if (rc || (old && now && strcmp(old, now) == 0) || (!old && !now)) {
            free(old);
            continue;
        }
        ss_row_t *r = NULL;
        if (old && !(rc = out_row(&G->g, old, &r)))
            rc = ss_zset_add(out, r, -1);
        if (!rc && now && !(rc = out_row(&G->g, now, &r)))
            rc = ss_zset_add(out, r, 1);
        free(old);
        op->stats.rows_out += (old != NULL) + (now != NULL);
        sqlite3_stmt *w = now ? put : del;
        sqlite3_reset(w);
        sqlite3_bind_blob(w, 1, G->g.data, (int)G->g.len, SQLITE_STATIC);
        if (now)
            sqlite3_bind_text(w, 2, now, -1, SQLITE_STATIC);
        if (!rc && sqlite3_step(w) != SQLITE_DONE)
            rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_agg out");
        sqlite3_reset(w);
    }
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    sqlite3_finalize(del);
    return rc;
}

/* ------------------------------------------------------------------ vtable */

static int agg_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz)
{
    int id = op->node->id;
    int rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_gnode(g BLOB, k BLOB, PRIMARY KEY(g, k)) WITHOUT ROWID",
                         id);
    if (!rc)
        rc = ss_sem_exec(ctx->db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_rows(g BLOB, h INTEGER, r BLOB, w INTEGER, "
                         "PRIMARY KEY(g,h,r)) WITHOUT ROWID;"
                         "CREATE TABLE IF NOT EXISTS st_%d_out(g BLOB PRIMARY KEY, v TEXT) WITHOUT ROWID",
                         id, id);
    if (!rc)
        rc = ss_sem_kv_create(ctx->db, id, "node", err, errsz);
    return rc ? rc : ss_winstate_init(&((sem_agg_t *)op->impl)->ws, op->node, ctx->db, err, errsz);
}

static int agg_apply(ss_op_t *op, ss_op_ctx_t *ctx, int port, const ss_zset_t *in, ss_zset_t *out,
                     char *err, size_t errsz)
{
    (void)port;
    if (!in->n)
        return SS_OK;
    op->stats.batches++;
    op->stats.rows_in += (int64_t)in->n;
    agroup_t *gs = NULL;
    int ng = 0;
    ss_zset_t open; /* without the rows of windows already closed (their summaries are final) */
    ss_zset_init(&open);
    sem_agg_t *A = op->impl;
    if (A->ws.on && A->ws.closed != SS_TIME_NONE) {
        if (ss_zset_extend(&open, in, 1)) {
            ss_zset_destroy(&open);
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        }
        ss_winstate_filter(&A->ws, op->node->view, &open);
        in = &open;
    }
    int rc = integrate(op, ctx, in, &gs, &ng, err, errsz);
    for (int i = 0; i < ng && !rc; i++)
        rc = load_leaves(op, ctx, &gs[i], err, errsz);
    ss_sem_kv_t memo;
    if (!rc)
        rc = ss_sem_kv_open(&memo, ctx->db, op->node->id, "node", err, errsz);
    if (!rc) {
        rc = build_trees(op, ctx, &memo, gs, ng, err, errsz);
        if (!rc && ss_sem_memo_prune(op->node))
            rc = sync_nodes(op, ctx, &memo, gs, ng, err, errsz);
        ss_sem_kv_close(&memo);
    }
    if (!rc)
        rc = emit_changes(op, ctx, gs, ng, out, err, errsz);
    free_groups(gs, ng);
    ss_zset_destroy(&open);
    return rc;
}

typedef struct drop_arg {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
} drop_arg_t;

/* A closed window's group: its rows, its emitted summary's record and its tree go (the summary
 * stays in the view: final); tree nodes no other group holds are freed (memo='prune'). */
static int drop_group(void *arg, const void *key, size_t n, char *err, size_t errsz)
{
    drop_arg_t *d = arg;
    int id = d->op->node->id;
    ss_buf_t g = {(char *)key, n, n}, ids = SS_BUF_INIT;
    ss_sem_kv_t memo;
    int rc = load_ids(d->op, d->ctx, &g, &ids, err, errsz);
    if (!rc && ids.len && !(rc = ss_sem_kv_open(&memo, d->ctx->db, id, "node", err, errsz))) {
        for (size_t at = 0; !rc && at + 32 <= ids.len; at += 32)
            rc = ss_sem_kv_ref(&memo, ids.data + at, 32, -1, 1, err, errsz);
        ss_sem_kv_close(&memo);
    }
    ss_buf_free(&ids);
    static const char *const tables[] = {"gnode", "rows", "out"};
    for (size_t t = 0; !rc && t < SS_ARRAY_LEN(tables); t++) {
        sqlite3_stmt *st = NULL;
        rc = ss_sem_prepare(d->ctx->db, &st, err, errsz, "DELETE FROM st_%d_%s WHERE g=?1", id, tables[t]);
        if (!rc) {
            sqlite3_bind_blob(st, 1, key, (int)n, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = ss_sem_sqlerr(d->ctx->db, err, errsz, "sem_agg window close");
        }
        sqlite3_finalize(st);
    }
    return rc;
}

static int agg_advance(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, int64_t *due_us, char *err, size_t errsz)
{
    (void)out;
    *due_us = SS_TIME_NONE;
    drop_arg_t d = {op, ctx};
    return ss_winstate_close(&((sem_agg_t *)op->impl)->ws, op->watermark, drop_group, &d, err, errsz);
}

static void agg_rollback(ss_op_t *op) { ss_winstate_rollback(&((sem_agg_t *)op->impl)->ws); }

static int agg_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, ss_zset_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *st = NULL;
    int rc = ss_sem_prepare(ctx->db, &st, err, errsz, "SELECT g, v FROM st_%d_out ORDER BY g", op->node->id);
    int s;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        ss_buf_t g = SS_BUF_INIT;
        ss_row_t *r = NULL;
        rc = ss_buf_append(&g, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        if (!rc)
            rc = out_row(&g, (const char *)sqlite3_column_text(st, 1), &r);
        if (!rc)
            rc = ss_zset_add(out, r, 1);
        ss_buf_free(&g);
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(ctx->db, err, errsz, "sem_agg snapshot");
    sqlite3_finalize(st);
    return rc;
}

static const char *agg_strategy(const ss_op_t *op)
{
    (void)op;
    return "Merkle search tree of summaries per group (content-defined chunks of fan_in); nodes "
           "memoised by the hash of their inputs: O(fan_in log N) calls per changed row";
}

static void agg_destroy(ss_op_t *op)
{
    if (op->impl)
        ss_winstate_free(&((sem_agg_t *)op->impl)->ws);
    free(op->impl);
    op->impl = NULL;
}

static const ss_op_vtable_t sem_agg_vt = {
    .name = "sem_agg",
    .kind = SS_OPK_NONLINEAR,
    .init = agg_init,
    .apply = agg_apply,
    .snapshot = agg_snapshot,
    .strategy = agg_strategy,
    .destroy = agg_destroy,
    .rollback = agg_rollback,
};

int ss_op_sem_agg_init(ss_op_t *op, char *err, size_t errsz)
{
    const ss_plan_node_t *N = op->node;
    if (!N->tmpl || N->nin < 1)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sem_agg (node %d): needs a template and an input", N->id);
    int rc = ss_sem_memo_check(N, err, errsz);
    if (rc)
        return rc;
    sem_agg_t *a = calloc(1, sizeof *a);
    if (!a)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int64_t f = ss_plan_opt_int(N, "fan_in", 4);
    a->fan_in = f < 2 ? 2 : f > 64 ? 64 : (int)f;
    int64_t mc = ss_plan_opt_int(N, "max_children", 4 * a->fan_in);
    a->max_children = mc < 2 ? 2 : mc > 1024 ? 1024 : (int)mc;
    a->max_tokens = ss_sem_max_tokens(N, 48);
    if (N->in[0] && N->in[0]->schema)
        a->nkeys = ss_schema_keys(N->in[0]->schema, a->keys, SS_SEM_MAXCOLS);
    op->impl = a;
    op->vt = &sem_agg_vt;
    op->advance = agg_advance;
    return SS_OK;
}
