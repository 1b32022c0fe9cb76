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
 *
 * Intents (§6.5): a batch's sinks publish each key's *net* change over the batch's range, so a
 * batch published but not committed (the group refused its positions, or the process was killed)
 * must be processed again over the same range, or a different range's net change could leave a
 * key as the first attempt published it (a key changed and changed back within the second range
 * publishes nothing). So before publishing, ss_source_intend commits, at the partition's unchanged
 * offset G, the batch's end E as the commit's metadata ("semstream:intent=E"); whoever reads the
 * partition from G next — this member, or the next owner, which finds it at assignment — ends its
 * batches at or before E until it gets there. A batch that ends before E publishes a prefix of
 * the range, and the batches after it the rest, so each key's last published change is still its
 * state at E.
 */
#include "conn_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_TIMEOUT_MS 10000
#define INTENT_META "semstream:intent="

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

/* The intent stored with a committed offset (-1 when none, or already reached). */
static int64_t intent_of(const rd_kafka_topic_partition_t *tp)
{
    size_t n = strlen(INTENT_META);
    if (tp->offset < 0 || !tp->metadata || tp->metadata_size <= n || tp->metadata_size > 40 ||
        memcmp(tp->metadata, INTENT_META, n))
        return -1;
    char buf[48];
    memcpy(buf, (const char *)tp->metadata + n, tp->metadata_size - n);
    buf[tp->metadata_size - n] = 0;
    char *end = NULL;
    long long v = strtoll(buf, &end, 10);
    return end && !*end && v > tp->offset ? (int64_t)v : -1;
}

/* Adds partition p at offset to l, with the intent as metadata when there is one past offset. */
static void add_commit(ss_source_t *s, rd_kafka_topic_partition_list_t *l, int32_t p, int64_t offset)
{
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, s->topic, p);
    tp->offset = offset;
    if (s->intent[p] > offset) {
        char meta[64];
        int n = snprintf(meta, sizeof meta, INTENT_META "%" PRId64, s->intent[p]);
        tp->metadata = malloc((size_t)n); /* freed with the list */
        if (tp->metadata) {
            memcpy(tp->metadata, meta, (size_t)n);
            tp->metadata_size = (size_t)n;
        }
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
        s->intent[p] = L <= G ? intent_of(&g->elems[k]) : -1;
        if (s->intent[p] >= 0)
            ss_log(SS_LOG_INFO, "kafka", "stream %s: group %s: partition %d: offsets %" PRId64 "..%" PRId64
                   " were published but not committed: they are processed again as one range", s->stream, s->group,
                   p, G, s->intent[p] - 1);
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
        s->intent[p] = -1; /* the next owner finds it in the group */
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
    s->intent = calloc((size_t)s->npart, sizeof *s->intent);
    if (!s->owned || !s->mark || !s->replay_end || !s->intent)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (int p = 0; p < s->npart; p++) {
        s->pos[p].partition = p;
        s->pos[p].offset = RD_KAFKA_OFFSET_INVALID; /* never read here: replay from the beginning */
        for (int i = 0; i < nstart; i++)
            if (start[i].partition == p && start[i].offset >= 0)
                s->pos[p].offset = start[i].offset;
        s->mark[p] = s->pos[p].offset;
        s->replay_end[p] = -1;
        s->intent[p] = -1;
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
    if (!replay && s->intent[p] >= 0 && m->offset >= s->intent[p]) {
        if (s->pos[p].offset != s->mark[p]) { /* this batch ends where the published one ended */
            seek_to(s, p, m->offset);
            return 0;
        }
        s->intent[p] = -1; /* reached (the batch before ended there) */
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

int ss_source_intend(ss_source_t *s, char *err, size_t errsz)
{
    if (!s->group)
        return SS_OK;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(s->npart);
    for (int p = 0; p < s->npart; p++) {
        int64_t from = s->mark[p] >= 0 ? s->mark[p] : 0, to = s->pos[p].offset;
        if (!s->owned[p] || to < 0 || to == s->mark[p] || s->intent[p] >= to)
            continue; /* not read, or within an intent already committed */
        int64_t was = s->intent[p];
        s->intent[p] = to;
        add_commit(s, l, p, from);
        s->intent[p] = was; /* set once the group has it */
    }
    rd_kafka_resp_err_t e = l->cnt ? rd_kafka_commit(s->rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int k = 0; !e && k < l->cnt; k++)
        s->intent[l->elems[k].partition] = s->pos[l->elems[k].partition].offset;
    if (ss_log_get_level() >= SS_LOG_DEBUG)
        for (int k = 0; k < l->cnt; k++)
            ss_log(SS_LOG_DEBUG, "group", "%s: intent p%d=%lld..%lld: %s", s->group, (int)l->elems[k].partition,
                   (long long)l->elems[k].offset, (long long)s->pos[l->elems[k].partition].offset,
                   rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return ss_seterr(err, errsz, rebalancing(e) ? SS_ERR_BUSY : SS_ERR_KAFKA,
                         "stream %s: commit of the batch's range to group %s: %s", s->stream, s->group,
                         rd_kafka_err2str(e));
    return SS_OK;
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
            add_commit(s, l, p, s->pos[p].offset); /* an intent past it stays */
    rd_kafka_resp_err_t e = l->cnt ? rd_kafka_commit(s->rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int k = 0; !e && k < l->cnt; k++) {
        int32_t p = l->elems[k].partition;
        if (s->intent[p] >= 0 && s->intent[p] <= s->pos[p].offset)
            s->intent[p] = -1; /* reached */
    }
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
    free(s->intent);
    free(s->group);
}
