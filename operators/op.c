/*
 * op.c — the operator factory: maps a plan node's kind to the constructor in
 * the operator's own file. Constructors are referenced weakly so that a build
 * lacking one reports "unsupported" instead of failing to link (the library is
 * linked whole-archive into every executable, so present ones always resolve).
 */
#include "ss_op.h"

#include <stdlib.h>

#define WEAK __attribute__((weak))
WEAK int ss_op_source_init(ss_op_t *, char *, size_t);
WEAK int ss_op_filter_init(ss_op_t *, char *, size_t);
WEAK int ss_op_project_init(ss_op_t *, char *, size_t);
WEAK int ss_op_union_init(ss_op_t *, char *, size_t);
WEAK int ss_op_distinct_init(ss_op_t *, char *, size_t);
WEAK int ss_op_join_init(ss_op_t *, char *, size_t);
WEAK int ss_op_group_init(ss_op_t *, char *, size_t);
WEAK int ss_op_topk_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_filter_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_map_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_join_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_topk_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_agg_init(ss_op_t *, char *, size_t);
WEAK int ss_op_llm_generate_init(ss_op_t *, char *, size_t);
WEAK int ss_op_view_init(ss_op_t *, char *, size_t);
WEAK int ss_op_setop_init(ss_op_t *, char *, size_t);
WEAK int ss_op_semijoin_init(ss_op_t *, char *, size_t);
WEAK int ss_op_window_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_extract_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_classify_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_simjoin_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_search_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_dedup_init(ss_op_t *, char *, size_t);
WEAK int ss_op_sem_group_init(ss_op_t *, char *, size_t);

static ss_op_ctor_fn ctor_for(ss_plan_kind_t k)
{
    switch (k) {
    case SS_PN_SOURCE: return ss_op_source_init;
    case SS_PN_FILTER: return ss_op_filter_init;
    case SS_PN_PROJECT: return ss_op_project_init;
    case SS_PN_UNION: return ss_op_union_init;
    case SS_PN_DISTINCT: return ss_op_distinct_init;
    case SS_PN_JOIN: return ss_op_join_init;
    case SS_PN_GROUP: return ss_op_group_init;
    case SS_PN_TOPK: return ss_op_topk_init;
    case SS_PN_SEM_FILTER: return ss_op_sem_filter_init;
    case SS_PN_SEM_MAP: return ss_op_sem_map_init;
    case SS_PN_SEM_JOIN: return ss_op_sem_join_init;
    case SS_PN_SEM_TOPK: return ss_op_sem_topk_init;
    case SS_PN_SEM_AGG: return ss_op_sem_agg_init;
    case SS_PN_LLM_GENERATE: return ss_op_llm_generate_init;
    case SS_PN_VIEW: return ss_op_view_init;
    case SS_PN_SETOP: return ss_op_setop_init;
    case SS_PN_SEMIJOIN: return ss_op_semijoin_init;
    case SS_PN_WINDOW: return ss_op_window_init;
    case SS_PN_SEM_EXTRACT: return ss_op_sem_extract_init;
    case SS_PN_SEM_CLASSIFY: return ss_op_sem_classify_init;
    case SS_PN_SEM_SIM_JOIN: return ss_op_sem_simjoin_init;
    case SS_PN_SEM_SEARCH: return ss_op_sem_search_init;
    case SS_PN_SEM_DEDUP: return ss_op_sem_dedup_init;
    case SS_PN_SEM_GROUP: return ss_op_sem_group_init;
    }
    return NULL;
}

int ss_op_new(const ss_plan_node_t *node, ss_op_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_op_ctor_fn ctor = ctor_for(node->kind);
    if (!ctor)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "operator %s is not available in this build",
                         ss_plan_kind_name(node->kind));
    ss_op_t *op = calloc(1, sizeof *op);
    if (!op)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    op->node = node;
    int rc = ctor(op, err, errsz);
    if (rc) {
        free(op);
        return rc;
    }
    *out = op;
    return SS_OK;
}

void ss_op_destroy(ss_op_t *op)
{
    if (!op)
        return;
    if (op->vt && op->vt->destroy)
        op->vt->destroy(op);
    free(op);
}

int ss_op_row_error(const ss_op_t *op, const ss_row_t *row, char *err, size_t errsz)
{
    const ss_plan_node_t *n = op->node;
    const ss_schema_t *in = n->nin > 0 && n->in[0] ? n->in[0]->schema : NULL;
    ss_buf_t b = SS_BUF_INIT;
    if (row && (!in || in->n == row->n))
        ss_row_to_json(row, in, &b);
    ss_errprefix(err, errsz, "view %s: row %s", n->view ? n->view : "?", b.len ? ss_buf_cstr(&b) : "?");
    ss_buf_free(&b);
    return SS_ERR_INVALID;
}
