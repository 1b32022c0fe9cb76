/*
 * sem_prune.c — bounded memo tables for the semantic operators (option memo).
 *
 * memo = 'prune' (the default): a memoised decision is kept only while something live
 * needs it — pointwise answers (SEM_FILTER, SEM_MAP, SEM_SCORE) while a row with that
 * projection is live (reference counts, sem_common.c), pairwise answers (SEM_RANK
 * comparisons, SEM_JOIN pair decisions) while both members have a live row, SEM_AGG
 * node texts while some group's tree contains the node. The dispatcher's persistent
 * result cache still holds every answer, so a row that comes back is answered from
 * there (no model call when the cache is on). memo = 'keep': nothing is dropped (the
 * memo alone then avoids asking again, cache or not; it grows with all inputs ever seen).
 *
 * Pair memos: the members of every pair key (layout: uint32 len(a) | a | b, as SEM_RANK
 * and SEM_JOIN build them) are listed in st_<id>_<name>_m(p, s, k) (s 0 = a, 1 = b), so
 * all the pairs of one projection are found by an index range and dropped together.
 */
#include "ss_sem.h"

#include <stdlib.h>
#include <string.h>

int ss_sem_memo_prune(const ss_plan_node_t *n)
{
    const char *v = ss_plan_opt(n, "memo");
    return !v || !ss_strcaseeq(v, "keep");
}

int ss_sem_memo_check(const ss_plan_node_t *n, char *err, size_t errsz)
{
    const char *v = ss_plan_opt(n, "memo");
    if (v && !ss_strcaseeq(v, "keep") && !ss_strcaseeq(v, "prune"))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "%s (node %d): memo must be 'prune' or 'keep', not '%s'",
                         ss_plan_kind_name(n->kind), n->id, v);
    return SS_OK;
}

int ss_sem_pairs_open(ss_sem_pairs_t *pp, sqlite3 *db, int node_id, const char *name, char *err, size_t errsz)
{
    memset(pp, 0, sizeof *pp);
    pp->db = db;
    int rc = ss_sem_exec(db, err, errsz,
                         "CREATE TABLE IF NOT EXISTS st_%d_%s_m(p BLOB, s INTEGER, k BLOB, PRIMARY KEY(p, s, k)) "
                         "WITHOUT ROWID",
                         node_id, name);
    if (!rc)
        rc = ss_sem_prepare(db, &pp->note, err, errsz, "INSERT OR IGNORE INTO st_%d_%s_m(p, s, k) VALUES(?1, ?2, ?3)",
                            node_id, name);
    if (!rc)
        rc = ss_sem_prepare(db, &pp->find, err, errsz, "SELECT s, k FROM st_%d_%s_m WHERE p=?1", node_id, name);
    if (!rc)
        rc = ss_sem_prepare(db, &pp->unnote, err, errsz, "DELETE FROM st_%d_%s_m WHERE p=?1 AND s=?2 AND k=?3",
                            node_id, name);
    if (!rc)
        rc = ss_sem_prepare(db, &pp->del, err, errsz, "DELETE FROM st_%d_%s WHERE k=?1", node_id, name);
    if (rc)
        ss_sem_pairs_close(pp);
    return rc;
}

void ss_sem_pairs_close(ss_sem_pairs_t *pp)
{
    sqlite3_finalize(pp->note);
    sqlite3_finalize(pp->find);
    sqlite3_finalize(pp->unnote);
    sqlite3_finalize(pp->del);
    memset(pp, 0, sizeof *pp);
}

/* Splits a pair key into its members; 0 if it is not one. */
static int split_key(const unsigned char *k, size_t kn, size_t *la)
{
    uint32_t n;
    if (kn < sizeof n)
        return 0;
    memcpy(&n, k, sizeof n);
    *la = n;
    return (size_t)n <= kn - sizeof n;
}

static int step_member(ss_sem_pairs_t *pp, sqlite3_stmt *st, const void *p, size_t pn, int s, const void *k,
                       size_t kn, char *err, size_t errsz)
{
    sqlite3_reset(st);
    sqlite3_bind_blob(st, 1, pn ? p : "", (int)pn, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, s);
    sqlite3_bind_blob(st, 3, k, (int)kn, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(pp->db, err, errsz, "memo members");
    sqlite3_reset(st);
    return rc;
}

int ss_sem_pairs_note(ss_sem_pairs_t *pp, const void *k, size_t kn, char *err, size_t errsz)
{
    const unsigned char *b = k;
    size_t la = 0;
    if (!split_key(b, kn, &la))
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "memo members: not a pair key (%zu bytes)", kn);
    int rc = step_member(pp, pp->note, b + 4, la, 0, k, kn, err, errsz);
    return rc ? rc : step_member(pp, pp->note, b + 4 + la, kn - 4 - la, 1, k, kn, err, errsz);
}

int ss_sem_pairs_drop(ss_sem_pairs_t *pp, int side, const void *p, size_t pn, int64_t *dropped, char *err,
                      size_t errsz)
{
    ss_buf_t keys = SS_BUF_INIT; /* (uint32 length, key) records */
    sqlite3_reset(pp->find);
    sqlite3_bind_blob(pp->find, 1, pn ? p : "", (int)pn, SQLITE_STATIC);
    int rc = SS_OK, s;
    while (!rc && (s = sqlite3_step(pp->find)) == SQLITE_ROW) {
        if (side >= 0 && sqlite3_column_int(pp->find, 0) != side)
            continue;
        uint32_t n = (uint32_t)sqlite3_column_bytes(pp->find, 1);
        rc = ss_buf_append(&keys, &n, sizeof n);
        if (!rc && n)
            rc = ss_buf_append(&keys, sqlite3_column_blob(pp->find, 1), n);
    }
    if (!rc && s != SQLITE_DONE)
        rc = ss_sem_sqlerr(pp->db, err, errsz, "memo members");
    sqlite3_reset(pp->find);
    for (size_t o = 0; !rc && o < keys.len;) {
        uint32_t n;
        memcpy(&n, keys.data + o, sizeof n);
        const unsigned char *k = (const unsigned char *)keys.data + o + sizeof n;
        o += sizeof n + n;
        size_t la = 0;
        if (!split_key(k, n, &la))
            continue;
        rc = step_member(pp, pp->unnote, k + 4, la, 0, k, n, err, errsz);
        if (!rc)
            rc = step_member(pp, pp->unnote, k + 4 + la, n - 4 - la, 1, k, n, err, errsz);
        if (!rc) {
            sqlite3_reset(pp->del);
            sqlite3_bind_blob(pp->del, 1, k, (int)n, SQLITE_STATIC);
            rc = sqlite3_step(pp->del) == SQLITE_DONE ? SS_OK : ss_sem_sqlerr(pp->db, err, errsz, "memo drop");
            sqlite3_reset(pp->del);
        }
        if (!rc && dropped)
            (*dropped)++;
    }
    ss_buf_free(&keys);
    return rc;
}
