/*
 * group.c — a Kafka source that is a member of a consumer group (ss_source_opts_t.group;
 * docs/ARCHITECTURE.md §6.1). Owns the group half of struct ss_source: which partitions are
 * assigned now, the positions as of the engine's last commit (the mark), and the replay
 * range of each newly assigned partition.
 *
 * Assignment is librdkafka's cooperative-sticky: the rebalance callback (served inside
 * rd_kafka_consumer_poll, so only between the engine's polls) gets the partitions that move.
 *  - assigned p: start at the local position L (what the engine committed in its SQLite); when
 *    the offset committed in the group G is further on, [L, G) is a replay: the engine applies
 *    it to its state without publishing (the previous owner published it);
 *  - revoked p: dropped; when the open batch holds messages of p, the batch is tainted and the
 *    engine rewinds every partition to the mark (ss_source_rewind) and reads it again.
 * A batch is either all replay or all new input: a message of the other kind is sought back
 * and read by the next batch.
 */
#include "conn_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_TIMEOUT_MS 10000

static int in_range(const ss_source_t *s, int32_t p) { return p >= 0 && p < s->npart; }

/* The offsets committed in the group for the partitions of l (-1001 where none). */
static void committed(ss_source_t *s, rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_resp_err_t e = rd_kafka_committed(s->rk, l, GROUP_TIMEOUT_MS);
    if (e) {
        ss_log(SS_LOG_WARN, "kafka", "stream %s: group %s: committed offsets of %s: %s", s->stream, s->group,
               s->topic, rd_kafka_err2str(e));
        for (int k = 0; k < l->cnt; k++)
            l->elems[k].offset = RD_KAFKA_OFFSET_INVALID;
    }
}

static void on_assign(ss_source_t *s, rd_kafka_topic_partition_list_t *parts, int cooperative)
{
    rd_kafka_topic_partition_list_t *g = rd_kafka_topic_partition_list_copy(parts);
    committed(s, g);
    for (int k = 0; k < parts->cnt; k++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[k];
        int32_t p = tp->partition;
        if (!in_range(s, p))
            continue;
        int64_t L = s->pos[p].offset, G = g->elems[k].offset;
        s->replay_end[p] = -1;
        if (G >= 0 && (L < 0 || G > L)) {
            s->replay_end[p] = G;
            ss_log(SS_LOG_INFO, "kafka", "stream %s: group %s: partition %d assigned: replaying offsets %s%" PRId64
                   "..%" PRId64 " into the state (published by its previous owner), then reading on",
                   s->stream, s->group, p, L < 0 ? "from the beginning " : "", L < 0 ? 0 : L, G - 1);
        } else if (G >= 0 && L > G) {
            ss_log(SS_LOG_WARN, "kafka", "stream %s: group %s: partition %d: the local state is at offset %" PRId64
                   ", past the group's committed %" PRId64 " (offsets reset?): continuing at %" PRId64,
                   s->stream, s->group, p, L, G, L);
        } else {
            ss_log(SS_LOG_INFO, "kafka", "stream %s: group %s: partition %d assigned at offset %" PRId64, s->stream,
                   s->group, p, L < 0 ? G : L);
        }
        tp->offset = L >= 0 ? L : RD_KAFKA_OFFSET_BEGINNING;
        s->owned[p] = 1;
        s->mark[p] = s->pos[p].offset;
    }
    rd_kafka_topic_partition_list_destroy(g);
    s->assigned_once = 1;
    rd_kafka_error_t *ke = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (cooperative)
        ke = rd_kafka_incremental_assign(s->rk, parts);
    else
        e = rd_kafka_assign(s->rk, parts);
    if (ke) {
        ss_log(SS_LOG_WARN, "kafka", "stream %s: group %s: assign: %s", s->stream, s->group, rd_kafka_error_string(ke));
        rd_kafka_error_destroy(ke);
    } else if (e) {
        ss_log(SS_LOG_WARN, "kafka", "stream %s: group %s: assign: %s", s->stream, s->group, rd_kafka_err2str(e));
    }
}

static void on_revoke(ss_source_t *s, rd_kafka_topic_partition_list_t *parts, int cooperative)
{
    for (int k = 0; k < parts->cnt; k++) {
        int32_t p = parts->elems[k].partition;
        if (!in_range(s, p))
            continue;
        if (s->pos[p].offset != s->mark[p])
            s->tainted = 1; /* the open batch read it: that batch is void */
        ss_log(SS_LOG_INFO, "kafka", "stream %s: group %s: partition %d revoked at offset %" PRId64, s->stream,
               s->group, p, s->mark[p]);
        s->owned[p] = 0;
        s->pos[p].offset = s->mark[p];
        s->replay_end[p] = -1;
    }
    rd_kafka_error_t *ke = NULL;
    if (cooperative)
        ke = rd_kafka_incremental_unassign(s->rk, parts);
    else
        rd_kafka_assign(s->rk, NULL);
    if (ke) {
        ss_log(SS_LOG_WARN, "kafka", "stream %s: group %s: unassign: %s", s->stream, s->group,
               rd_kafka_error_string(ke));
        rd_kafka_error_destroy(ke);
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    ss_source_t *s = opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        on_assign(s, parts, cooperative);
    else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        on_revoke(s, parts, cooperative);
    else {
        ss_log(SS_LOG_WARN, "kafka", "stream %s: group %s: rebalance: %s", s->stream, s->group, rd_kafka_err2str(err));
        on_revoke(s, parts, cooperative);
    }
}

int kgroup_conf(ss_source_t *s, rd_kafka_conf_t *c, char *err, size_t errsz)
{
    const char *settings[][2] = {
        {"group.id", s->group},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"isolation.level", "read_committed"},
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(settings); i++)
        if (kafka_conf_set(c, settings[i][0], settings[i][1], err, errsz))
            return SS_ERR_INVALID;
    rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
    rd_kafka_conf_set_opaque(c, s);
    return SS_OK;
}

int kgroup_start(ss_source_t *s, const ss_offset_t *start, int nstart, char *err, size_t errsz)
{
    s->owned = calloc((size_t)s->npart, 1);
    s->mark = calloc((size_t)s->npart, sizeof *s->mark);
    s->replay_end = calloc((size_t)s->npart, sizeof *s->replay_end);
    if (!s->owned || !s->mark || !s->replay_end)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int p = 0; p < s->npart; p++) {
        s->pos[p].partition = p;
        s->pos[p].offset = RD_KAFKA_OFFSET_INVALID; /* never read here: replay from the beginning */
        for (int i = 0; i < nstart; i++)
            if (start[i].partition == p && start[i].offset >= 0)
                s->pos[p].offset = start[i].offset;
        s->mark[p] = s->pos[p].offset;
        s->replay_end[p] = -1;
    }
    s->batch_mode = -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return ss_seterr(err, errsz, SS_ERR_KAFKA, "subscribe to %s in group %s: %s", s->topic, s->group,
                         rd_kafka_err2str(e));
    ss_log(SS_LOG_INFO, "kafka", "stream %s: joined consumer group %s (cooperative-sticky) for topic %s", s->stream,
           s->group, s->topic);
    return SS_OK;
}

/* Sends partition p back to offset (the next poll reads it again). */
static void seek_to(ss_source_t *s, int32_t p, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->topic, p)->offset = offset >= 0 ? offset : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_error_t *ke = rd_kafka_seek_partitions(s->rk, l, GROUP_TIMEOUT_MS);
    if (ke) {
        ss_log(SS_LOG_WARN, "kafka", "stream %s: seek partition %d to %" PRId64 ": %s", s->stream, p, offset,
               rd_kafka_error_string(ke));
        rd_kafka_error_destroy(ke);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

int kgroup_admit(ss_source_t *s, const rd_kafka_message_t *m)
{
    int32_t p = m->partition;
    if (!in_range(s, p) || !s->owned[p])
        return -1; /* fetched before the partition was revoked */
    if (s->tainted) { /* the batch is void: read nothing more (this message again after the rewind) */
        seek_to(s, p, m->offset);
        return 0;
    }
    int replay = s->replay_end[p] >= 0 && m->offset < s->replay_end[p];
    if (!replay && s->replay_end[p] >= 0)
        s->replay_end[p] = -1; /* caught up with the group */
    if (s->batch_mode < 0)
        s->batch_mode = replay;
    if (s->batch_mode != replay) {
        seek_to(s, p, m->offset);
        return 0;
    }
    return 1;
}

int ss_source_grouped(const ss_source_t *s) { return s && s->group != NULL; }

int ss_source_is_replay(const ss_source_t *s) { return s->group && s->batch_mode == 1; }

int ss_source_rebalanced(const ss_source_t *s) { return s->group && s->tainted; }

void ss_source_mark(ss_source_t *s)
{
    if (!s->group)
        return;
    if (ss_log_get_level() >= SS_LOG_DEBUG)
        for (int p = 0; p < s->npart; p++)
            if (s->pos[p].offset != s->mark[p])
                ss_log(SS_LOG_DEBUG, "group", "%s: %s batch p%d %lld..%lld", s->group,
                       s->batch_mode == 1 ? "replay" : "new", p, (long long)s->mark[p], (long long)s->pos[p].offset);
    for (int p = 0; p < s->npart; p++)
        s->mark[p] = s->pos[p].offset;
    s->batch_mode = -1;
}

void ss_source_rewind(ss_source_t *s)
{
    if (!s->group)
        return;
    for (int p = 0; p < s->npart; p++) { /* every owned one: librdkafka's position may be past the mark */
        if (s->owned[p])
            seek_to(s, p, s->mark[p]);
        s->pos[p].offset = s->mark[p];
    }
    s->batch_mode = -1;
    s->tainted = 0;
}

/* A commit refused because the group is rebalancing (the member's generation is about to change). */
static int rebalancing(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || e == RD_KAFKA_RESP_ERR__STATE;
}

int ss_source_commit_group(ss_source_t *s, char *err, size_t errsz)
{
    if (!s->group)
        return SS_OK;
    /* only what this batch read: a partition still replaying (pos < the group's offset) is not
     * committed, or the group's offset would move back */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(s->npart);
    for (int p = 0; p < s->npart; p++)
        if (s->owned[p] && s->pos[p].offset >= 0 && s->pos[p].offset != s->mark[p])
            rd_kafka_topic_partition_list_add(l, s->topic, p)->offset = s->pos[p].offset;
    rd_kafka_resp_err_t e = l->cnt ? rd_kafka_commit(s->rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (ss_log_get_level() >= SS_LOG_DEBUG)
        for (int k = 0; k < l->cnt; k++)
            ss_log(SS_LOG_DEBUG, "group", "%s: commit p%d=%lld: %s", s->group, (int)l->elems[k].partition,
                   (long long)l->elems[k].offset, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return ss_seterr(err, errsz, rebalancing(e) ? SS_ERR_BUSY : SS_ERR_KAFKA,
                         "stream %s: commit of positions to group %s: %s", s->stream, s->group, rd_kafka_err2str(e));
    return SS_OK;
}

int kgroup_lag_counts(const ss_source_t *s, int32_t p)
{
    if (!s->group)
        return 1;
    return s->assigned_once ? in_range(s, p) && s->owned[p] : 1; /* before the first assignment: all */
}

void kgroup_close(ss_source_t *s)
{
    free(s->owned);
    free(s->mark);
    free(s->replay_end);
    free(s->group);
}
