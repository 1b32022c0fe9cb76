/*
 * sem_topk_int.h — what sem_topk.c (the SEM_RANK/SEM_SCORE operator: state, partitions, output)
 * and sem_rank_merge.c (SEM_RANK's memoised comparisons and the batched placement of rows in
 * rounds of independent comparisons) share: the operator's settings, rows being ranked and
 * their lists, and one batch's ranking context.
 */
#ifndef SS_SEM_TOPK_INT_H
#define SS_SEM_TOPK_INT_H

#include "ss_sem.h"
#include "ss_winstate.h"

typedef struct sem_topk {
    int rank;      /* 1 = SEM_RANK, 0 = SEM_SCORE */
    int k, buffer;
    int desc;
    int cols[SS_SEM_MAXCOLS];
    int ncols;
    ss_winstate_t ws; /* partitions by window: a closed window's state is dropped (winstate.c) */
} sem_topk_t;

typedef struct titem {
    ss_buf_t r, k;  /* encoded row, encoded projection */
    int64_t w;
} titem_t;

typedef struct tlist {
    titem_t *v;
    int n, cap;
} tlist_t;

typedef struct rank_run {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
    ss_sem_kv_t cmp;
    char *err;
    size_t errsz;
    ss_sem_pairs_t pairs; /* members of st_<id>_cmp's keys (memo='prune') */
    int prune;
    tlist_t gone;         /* projections of the rows removed in this batch */
    const ss_buf_t *part; /* the partition being placed (encoded partition columns) */
} rank_run_t;

/* A vector of pointers to rows being placed (not owning them). */
typedef struct pvec {
    titem_t **v;
    int n, cap;
} pvec_t;

void ss__tk_item_free(titem_t *it);
void ss__tk_list_free(tlist_t *l);
int ss__tk_list_insert(tlist_t *l, int p, titem_t *it); /* at position p, taking its buffers */
void ss__tk_list_take(tlist_t *l, int p, titem_t *out);
int ss__tk_buf_cmp(const ss_buf_t *a, const ss_buf_t *b);
int ss__tk_list_find(const tlist_t *l, const ss_buf_t *r);
int ss__tk_pv_push(pvec_t *p, titem_t *it);
int ss__tk_pv_extend(pvec_t *p, titem_t *const *v, int n);
void ss__tk_pv_free(pvec_t *p);
/* Merges the new rows X into the sorted L keeping the best cap, sorted, in out; the others in
 * rest (sem_rank_merge.c: one dispatcher call per round of comparisons). */
int ss__tk_merge_batch(rank_run_t *R, titem_t **L, int nl, titem_t **X, int nx, int cap, pvec_t *out,
                       pvec_t *rest);

#endif
