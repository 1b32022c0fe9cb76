/*
 * pipe_group.c — what --group asks of a plan (docs/ARCHITECTURE.md §6.2): which operators can
 * run where their input partition lands, and the consumer group of each SOURCE node. The
 * pipeline's side (replay batches, rewinds, the Kafka-first commit) is in pipeline.c.
 *
 * A pipeline runs under --group when it reads one stream and every operator's state is
 * determined by the messages of one input partition: the stream is partitioned by its key, so
 * per-key (SOURCE's upsert) and per-row operators qualify. Operators keyed by anything else
 * need a repartition exchange, and global ones a two-stage plan (designed, not built): they
 * are refused with the view, the operator and the reason, never run silently wrong.
 */
#include "engine_int.h"

#include <stdio.h>

static const char *nz(const char *s) { return s ? s : "?"; }

/* 1: the operator's state and output follow from one input partition's messages. */
static int partition_local(ss_plan_kind_t k)
{
    switch (k) {
    case SS_PN_SOURCE:
    case SS_PN_FILTER:
    case SS_PN_PROJECT:
    case SS_PN_SEM_FILTER:
    case SS_PN_SEM_MAP:
    case SS_PN_SEM_EXTRACT:
    case SS_PN_SEM_CLASSIFY:
    case SS_PN_VIEW:
        return 1;
    default:
        return 0;
    }
}

/* What the operator needs that --group does not build yet. */
static const char *what_needed(const ss_plan_node_t *n)
{
    switch (n->kind) {
    case SS_PN_GROUP:
        return n->ngroup ? "a repartition exchange by its GROUP BY columns (a group's rows come from every "
                           "partition)"
                         : "a two-stage aggregate (a partial per instance, then one final stage on a "
                           "single-partition topic: it is global)";
    case SS_PN_SEM_AGG:
        return n->ngroup ? "a repartition exchange by its GROUP BY columns" : "a two-stage aggregate (it is global)";
    case SS_PN_JOIN:
    case SS_PN_SEMIJOIN:
        return "a repartition exchange of both inputs by the join key (matching rows come from different "
               "partitions)";
    case SS_PN_TOPK:
    case SS_PN_SEM_TOPK:
        return "a two-stage top-k (a partial top-k per instance, then a final one)";
    case SS_PN_DISTINCT:
    case SS_PN_SETOP:
        return "a repartition exchange by the whole row (equal rows come from different partitions)";
    case SS_PN_WINDOW:
    case SS_PN_LLM_GENERATE:
        return "a repartition exchange by its PARTITION BY / session columns";
    default:
        return "an exchange or a single-partition stage (its state spans partitions)";
    }
}

int eng_group_check(const ss_engine_t *e, char *err, size_t errsz)
{
    if (!e->group || !e->plan)
        return SS_OK;
    const ss_plan_t *pl = e->plan;
    for (int k = 0; k < e->npipes; k++) {
        const eng_pipe_t *p = e->pipes[k];
        int nsrc = 0;
        for (int j = 0; j < p->nn; j++) {
            const ss_plan_node_t *n = pl->nodes[p->nodes[j]];
            nsrc += n->kind == SS_PN_SOURCE;
            if (!partition_local(n->kind))
                return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED,
                                 "view %s: %s (node %d) needs %s, which --group does not build yet; under --group "
                                 "only views that work row by row on one stream run (filters, projections, "
                                 "SEM_FILTER, SEM_MAP, SEM_EXTRACT, SEM_CLASSIFY): see docs/ARCHITECTURE.md, "
                                 "section 6", nz(n->view), ss_plan_kind_name(n->kind), n->id, what_needed(n));
        }
        if (nsrc > 1)
            return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED,
                             "views %s read %d streams in one pipeline, which --group does not run yet (each "
                             "stream's partitions are assigned independently; see docs/ARCHITECTURE.md, section 6)",
                             nz(p->views), nsrc);
    }
    return SS_OK;
}

void eng_group_id(const ss_engine_t *e, const ss_plan_node_t *n, char *buf, size_t bufsz)
{
    char key[256];
    eng_source_key(n, key, sizeof key);
    snprintf(buf, bufsz, "%s.%s", e->group ? e->group : "", key);
}
