/*
 * log.c — the durable embedded log's storage (ss_log.h): one SQLite file with
 * topics, partitions and dense per-partition offsets; appends in one fsync'd
 * transaction each, serialised across processes by SQLite's write lock; reads
 * as range scans of the clustered (topic, partition, offset) key; explicit
 * retention by age or row count applied by appenders.
 */
#include "ss_log.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_APP_ID 0x73736c67 /* "sslg" */
#define LOG_VERSION 1
#define LOG_PAGE_SIZE 16384
#define LOG_BUSY_MS 30000
#define RETAIN_TIME_EVERY_NS 1000000000LL

static const char *SCHEMA_SQL =
    "CREATE TABLE log_topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, partitions INTEGER NOT NULL,"
    " retention_ms INTEGER NOT NULL DEFAULT 0, retention_rows INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE log_parts(topic INTEGER NOT NULL, partition INTEGER NOT NULL, low INTEGER NOT NULL,"
    " next INTEGER NOT NULL, PRIMARY KEY(topic, partition)) WITHOUT ROWID;"
    "CREATE TABLE log_msgs(topic INTEGER NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL, key BLOB, value BLOB, PRIMARY KEY(topic, partition, offset)) WITHOUT ROWID;"
    "CREATE TABLE log_loads(topic TEXT NOT NULL, path TEXT NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
    " bytes INTEGER NOT NULL, lines INTEGER NOT NULL, tail_hash INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY(topic, path));";

enum {
    ST_TOPIC_GET, ST_TOPIC_INS, ST_TOPIC_RET, ST_PART_INS, ST_PARTS, ST_PART_SET, ST_MSG_INS, ST_READ, ST_DEL,
    ST_FIRST_TS, ST_TOPICS, ST_MARK_GET, ST_MARK_PUT, ST__COUNT
};

static const char *STMT_SQL[ST__COUNT] = {
    "SELECT id, partitions, retention_ms, retention_rows, created_ms FROM log_topics WHERE name = ?1",
    "INSERT INTO log_topics(name, partitions, retention_ms, retention_rows, created_ms) VALUES(?1, ?2, ?3, ?4, ?5)",
    "UPDATE log_topics SET retention_ms = ?2, retention_rows = ?3 WHERE id = ?1",
    "INSERT INTO log_parts(topic, partition, low, next) VALUES(?1, ?2, 0, 0)",
    "SELECT partition, low, next FROM log_parts WHERE topic = ?1",
    "UPDATE log_parts SET low = ?3, next = ?4 WHERE topic = ?1 AND partition = ?2",
    "INSERT INTO log_msgs(topic, partition, offset, ts_ms, key, value) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    "SELECT offset, ts_ms, key, value FROM log_msgs WHERE topic = ?1 AND partition = ?2 AND offset >= ?3"
    " ORDER BY offset LIMIT ?4",
    "DELETE FROM log_msgs WHERE topic = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4",
    "SELECT offset FROM log_msgs WHERE topic = ?1 AND partition = ?2 AND offset >= ?3 AND ts_ms >= ?4"
    " ORDER BY offset LIMIT 1",
    "SELECT name, id, partitions, retention_ms, retention_rows, created_ms FROM log_topics ORDER BY name",
    "SELECT dev, ino, bytes, lines, tail_hash, updated_ms FROM log_loads WHERE topic = ?1 AND path = ?2",
    "INSERT OR REPLACE INTO log_loads(topic, path, dev, ino, bytes, lines, tail_hash, updated_ms)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
};

/* When this connection last applied a topic's time retention. */
typedef struct retained {
    int64_t topic_id, at_ns;
} retained_t;

struct ss_log {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST__COUNT]; /* prepared on first use */
    uint32_t rr;                 /* round robin for keyless messages */
    retained_t *ret;             /* time retention bookkeeping */
    int nret;
};

/* ---- errors ---- */

/* Maps the connection's last error: a full disk and a lock held too long are
 * SS_ERR_BUSY (retry later), the rest SS_ERR_SQLITE / SS_ERR_IO. */
static int log_err(ss_log_t *l, int src, char *err, size_t errsz, const char *what)
{
    int code = src & 0xff;
    const char *msg = l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(src);
    if (code == SQLITE_FULL)
        return ss_seterr(err, errsz, SS_ERR_BUSY, "log %s: %s: disk full (%s)", l->path, what, msg);
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return ss_seterr(err, errsz, SS_ERR_BUSY, "log %s: %s: locked by another process (%s)", l->path, what, msg);
    if (code == SQLITE_IOERR || code == SQLITE_CANTOPEN || code == SQLITE_READONLY)
        return ss_seterr(err, errsz, SS_ERR_IO, "log %s: %s: %s", l->path, what, msg);
    return ss_seterr(err, errsz, SS_ERR_SQLITE, "log %s: %s: %s", l->path, what, msg);
}

static int exec(ss_log_t *l, const char *sql, char *err, size_t errsz)
{
    int rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? SS_OK : log_err(l, rc, err, errsz, sql);
}

static sqlite3_stmt *stmt(ss_log_t *l, int which, char *err, size_t errsz)
{
    if (!l->st[which]) {
        int rc = sqlite3_prepare_v3(l->db, STMT_SQL[which], -1, SQLITE_PREPARE_PERSISTENT, &l->st[which], NULL);
        if (rc != SQLITE_OK) {
            log_err(l, rc, err, errsz, "prepare");
            return NULL;
        }
    }
    sqlite3_reset(l->st[which]);
    sqlite3_clear_bindings(l->st[which]);
    return l->st[which];
}

/* Steps a statement that returns no rows. */
static int step_done(ss_log_t *l, sqlite3_stmt *s, char *err, size_t errsz, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SS_OK : log_err(l, rc, err, errsz, what);
}

/* ---- open / close ---- */

/* Inside BEGIN IMMEDIATE: a new file gets the schema; an existing one must be a log of our version. */
static int check_or_create(ss_log_t *l, char *err, size_t errsz)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(l->db,
                                "SELECT (SELECT count(*) FROM sqlite_master), (SELECT application_id FROM "
                                "pragma_application_id), (SELECT user_version FROM pragma_user_version)",
                                -1, &s, NULL);
    if (rc != SQLITE_OK)
        return log_err(l, rc, err, errsz, "open");
    rc = sqlite3_step(s);
    int64_t ntables = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    int64_t app = rc == SQLITE_ROW ? sqlite3_column_int64(s, 1) : 0;
    int64_t ver = rc == SQLITE_ROW ? sqlite3_column_int64(s, 2) : 0;
    sqlite3_finalize(s);
    if (ntables < 0)
        return log_err(l, rc, err, errsz, "open");
    if (ntables == 0) {
        char sql[128];
        int r = exec(l, SCHEMA_SQL, err, errsz);
        snprintf(sql, sizeof sql, "PRAGMA application_id=%d; PRAGMA user_version=%d;", LOG_APP_ID, LOG_VERSION);
        return r ? r : exec(l, sql, err, errsz);
    }
    if (app != LOG_APP_ID)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "%s is not a semstream log (another SQLite database)", l->path);
    if (ver != LOG_VERSION)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "log %s has format version %lld; this build reads version %d",
                         l->path, (long long)ver, LOG_VERSION);
    return SS_OK;
}

int ss_log_open(const char *path, ss_log_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_log_t *l = calloc(1, sizeof *l);
    if (!l || !(l->path = ss_strdup(path))) {
        free(l);
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    int src = sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    int rc = src == SQLITE_OK ? SS_OK : log_err(l, src, err, errsz, "open");
    if (!rc) {
        sqlite3_busy_timeout(l->db, LOG_BUSY_MS);
        /* page size first (it only applies to a new file), then WAL: appends and reads
         * from several processes at once; FULL: a commit is on disk when it returns.
         * A small page cache keeps the footprint of each connection bounded; a
         * checkpoint every 4 MB of WAL (truncated to 16 MB at most) keeps the disk
         * used close to the log's own size. */
        char sql[256];
        snprintf(sql, sizeof sql,
                 "PRAGMA page_size=%d; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-8192;"
                 "PRAGMA wal_autocheckpoint=256; PRAGMA journal_size_limit=16777216; PRAGMA secure_delete=FAST;",
                 LOG_PAGE_SIZE);
        rc = exec(l, sql, err, errsz);
    }
    if (!rc && !(rc = exec(l, "BEGIN IMMEDIATE", err, errsz))) {
        rc = check_or_create(l, err, errsz);
        if (!rc)
            rc = exec(l, "COMMIT", err, errsz);
        if (rc)
            sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (rc) {
        ss_log_close(l);
        return rc;
    }
    *out = l;
    return SS_OK;
}

void ss_log_close(ss_log_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(l->st[i]);
    if (l->db)
        sqlite3_close_v2(l->db);
    free(l->ret);
    free(l->path);
    free(l);
}

const char *ss_log_path(const ss_log_t *l) { return l->path; }

void ss_log_set_busy_ms(ss_log_t *l, int ms) { sqlite3_busy_timeout(l->db, ms); }

/* ---- topics ---- */

static void topic_from(sqlite3_stmt *s, int c, ss_log_topic_t *t)
{
    t->id = sqlite3_column_int64(s, c);
    t->partitions = sqlite3_column_int(s, c + 1);
    t->retention_ms = sqlite3_column_int64(s, c + 2);
    t->retention_rows = sqlite3_column_int64(s, c + 3);
    t->created_ms = sqlite3_column_int64(s, c + 4);
}

int ss_log_topic_get(ss_log_t *l, const char *name, ss_log_topic_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *s = stmt(l, ST_TOPIC_GET, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        topic_from(s, 0, out);
        sqlite3_reset(s);
        return SS_OK;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SS_ERR_NOTFOUND : log_err(l, rc, err, errsz, "topic lookup");
}

/* Inside a write transaction: creates the topic when missing. */
static int topic_create_locked(ss_log_t *l, const char *name, const ss_topic_opts_t *o, int *created,
                               ss_log_topic_t *t, char *err, size_t errsz)
{
    int rc = ss_log_topic_get(l, name, t, err, errsz);
    if (rc != SS_ERR_NOTFOUND)
        return rc;
    int parts = o && o->partitions > 0 ? o->partitions : 1;
    sqlite3_stmt *s = stmt(l, ST_TOPIC_INS, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, parts);
    sqlite3_bind_int64(s, 3, o && o->set_retention ? o->retention_ms : 0);
    sqlite3_bind_int64(s, 4, o && o->set_retention ? o->retention_rows : 0);
    sqlite3_bind_int64(s, 5, ss_wall_ms());
    if ((rc = step_done(l, s, err, errsz, "create topic")))
        return rc;
    int64_t id = sqlite3_last_insert_rowid(l->db);
    for (int p = 0; p < parts && !rc; p++) {
        if (!(s = stmt(l, ST_PART_INS, err, errsz)))
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int(s, 2, p);
        rc = step_done(l, s, err, errsz, "create topic");
    }
    if (!rc)
        rc = ss_log_topic_get(l, name, t, err, errsz);
    if (!rc && created)
        *created = 1;
    return rc;
}

int ss_log_topic_create(ss_log_t *l, const char *name, const ss_topic_opts_t *opts, int *created, ss_log_topic_t *out,
                        char *err, size_t errsz)
{
    if (created)
        *created = 0;
    if (!name || !*name)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "log %s: empty topic name", l->path);
    if (opts && (opts->partitions < 0 || opts->partitions > 10000))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "topic %s: %d partitions out of range 1..10000", name,
                         opts->partitions);
    if (opts && opts->set_retention && (opts->retention_ms < 0 || opts->retention_rows < 0))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "topic %s: negative retention", name);
    ss_log_topic_t t;
    int rc = ss_log_topic_get(l, name, &t, err, errsz);
    int need_write = rc == SS_ERR_NOTFOUND ||
                     (!rc && opts && opts->set_retention &&
                      (t.retention_ms != opts->retention_ms || t.retention_rows != opts->retention_rows));
    if (rc && rc != SS_ERR_NOTFOUND)
        return rc;
    if (need_write) {
        if ((rc = exec(l, "BEGIN IMMEDIATE", err, errsz)))
            return rc;
        rc = topic_create_locked(l, name, opts, created, &t, err, errsz);
        if (!rc && opts && opts->set_retention) {
            sqlite3_stmt *s = stmt(l, ST_TOPIC_RET, err, errsz);
            rc = s ? SS_OK : SS_ERR_SQLITE;
            if (s) {
                sqlite3_bind_int64(s, 1, t.id);
                sqlite3_bind_int64(s, 2, opts->retention_ms);
                sqlite3_bind_int64(s, 3, opts->retention_rows);
                rc = step_done(l, s, err, errsz, "set retention");
                t.retention_ms = opts->retention_ms;
                t.retention_rows = opts->retention_rows;
            }
        }
        rc = rc ? rc : exec(l, "COMMIT", err, errsz);
        if (rc) {
            sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
            if (created)
                *created = 0;
            return rc;
        }
    }
    if (out)
        *out = t;
    return SS_OK;
}

int ss_log_topics(ss_log_t *l, ss_log_topic_fn fn, void *arg, char *err, size_t errsz)
{
    sqlite3_stmt *s = stmt(l, ST_TOPICS, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        ss_log_topic_t t;
        topic_from(s, 1, &t);
        stop = fn(arg, (const char *)sqlite3_column_text(s, 0), &t);
    }
    sqlite3_reset(s);
    if (stop)
        return stop;
    return rc == SQLITE_DONE ? SS_OK : log_err(l, rc, err, errsz, "list topics");
}

int ss_log_watermarks(ss_log_t *l, const ss_log_topic_t *t, int64_t *low, int64_t *next, char *err, size_t errsz)
{
    for (int p = 0; p < t->partitions; p++)
        low[p] = next[p] = 0;
    sqlite3_stmt *s = stmt(l, ST_PARTS, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(s, 1, t->id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int p = sqlite3_column_int(s, 0);
        if (p >= 0 && p < t->partitions) {
            low[p] = sqlite3_column_int64(s, 1);
            next[p] = sqlite3_column_int64(s, 2);
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SS_OK : log_err(l, rc, err, errsz, "watermarks");
}

/* ---- partitioning ---- */

int ss_log_partition_for(const void *key, size_t klen, int n)
{
    /* murmur2 as in Kafka's Java clients (Utils.murmur2), seed 0x9747b28c */
    const uint32_t m = 0x5bd1e995;
    const unsigned char *d = key;
    uint32_t h = 0x9747b28cu ^ (uint32_t)klen;
    size_t n4 = klen / 4;
    for (size_t i = 0; i < n4; i++) {
        uint32_t k = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 | (uint32_t)d[4 * i + 2] << 16 |
                     (uint32_t)d[4 * i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    const unsigned char *t = d + 4 * n4;
    switch (klen & 3) {
    case 3: h ^= (uint32_t)t[2] << 16; /* fall through */
    case 2: h ^= (uint32_t)t[1] << 8;  /* fall through */
    case 1:
        h ^= t[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return n > 1 ? (int)((h & 0x7fffffffu) % (uint32_t)n) : 0;
}

/* ---- append ---- */

/* A topic touched by one append: its partitions' offsets as of this transaction. */
typedef struct app_topic {
    const char *name;
    ss_log_topic_t t;
    int64_t *low, *next;
    char *touched;
} app_topic_t;

typedef struct append {
    app_topic_t *tp;
    int n, cap;
} append_t;

static void append_free(append_t *a)
{
    for (int i = 0; i < a->n; i++) {
        free(a->tp[i].low);
        free(a->tp[i].next);
        free(a->tp[i].touched);
    }
    free(a->tp);
}

static int app_topic(ss_log_t *l, append_t *a, const char *name, app_topic_t **out, char *err, size_t errsz)
{
    for (int i = a->n - 1; i >= 0; i--)
        if (a->tp[i].name == name || !strcmp(a->tp[i].name, name)) {
            *out = &a->tp[i];
            return SS_OK;
        }
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 4;
        app_topic_t *tp = realloc(a->tp, (size_t)cap * sizeof *tp);
        if (!tp)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        a->tp = tp;
        a->cap = cap;
    }
    app_topic_t *t = &a->tp[a->n];
    memset(t, 0, sizeof *t);
    t->name = name;
    int rc = topic_create_locked(l, name, NULL, NULL, &t->t, err, errsz);
    if (rc)
        return rc;
    size_t np = (size_t)t->t.partitions;
    t->low = calloc(np, sizeof *t->low);
    t->next = calloc(np, sizeof *t->next);
    t->touched = calloc(np, 1);
    a->n++;
    if (!t->low || !t->next || !t->touched)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    *out = t;
    return ss_log_watermarks(l, &t->t, t->low, t->next, err, errsz);
}

static int insert_msg(ss_log_t *l, const app_topic_t *t, int p, int64_t off, int64_t ts, const ss_log_rec_t *r,
                      char *err, size_t errsz)
{
    sqlite3_stmt *s = stmt(l, ST_MSG_INS, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(s, 1, t->t.id);
    sqlite3_bind_int(s, 2, p);
    sqlite3_bind_int64(s, 3, off);
    sqlite3_bind_int64(s, 4, ts);
    if (r->key)
        sqlite3_bind_blob64(s, 5, r->klen ? r->key : "", r->klen, SQLITE_STATIC);
    if (r->val)
        sqlite3_bind_blob64(s, 6, r->vlen ? r->val : "", r->vlen, SQLITE_STATIC);
    return step_done(l, s, err, errsz, "append");
}

/* Deletes offsets [low, upto) of a partition and moves its low mark. */
static int delete_below(ss_log_t *l, const ss_log_topic_t *t, int p, int64_t *low, int64_t upto, char *err,
                        size_t errsz)
{
    if (upto <= *low)
        return SS_OK;
    sqlite3_stmt *s = stmt(l, ST_DEL, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(s, 1, t->id);
    sqlite3_bind_int(s, 2, p);
    sqlite3_bind_int64(s, 3, *low);
    sqlite3_bind_int64(s, 4, upto);
    int rc = step_done(l, s, err, errsz, "retention");
    if (!rc)
        *low = upto;
    return rc;
}

/* The first offset >= low of a partition appended at or after cutoff_ms (next when none). */
static int first_since(ss_log_t *l, const ss_log_topic_t *t, int p, int64_t low, int64_t next, int64_t cutoff_ms,
                       int64_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *s = stmt(l, ST_FIRST_TS, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(s, 1, t->id);
    sqlite3_bind_int(s, 2, p);
    sqlite3_bind_int64(s, 3, low);
    sqlite3_bind_int64(s, 4, cutoff_ms);
    int rc = sqlite3_step(s);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : next;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SS_OK : log_err(l, rc, err, errsz, "retention");
}

/* 1 if this connection should apply the topic's time retention now (at most once a second). */
static int time_retention_due(ss_log_t *l, int64_t topic_id, int64_t now_ns)
{
    for (int i = 0; i < l->nret; i++)
        if (l->ret[i].topic_id == topic_id)
            return now_ns - l->ret[i].at_ns >= RETAIN_TIME_EVERY_NS;
    return 1;
}

static void time_retention_done(ss_log_t *l, int64_t topic_id, int64_t now_ns)
{
    for (int i = 0; i < l->nret; i++)
        if (l->ret[i].topic_id == topic_id) {
            l->ret[i].at_ns = now_ns;
            return;
        }
    retained_t *r = realloc(l->ret, (size_t)(l->nret + 1) * sizeof *r);
    if (!r)
        return; /* forgetting only means retention runs again sooner */
    l->ret = r;
    l->ret[l->nret++] = (retained_t){topic_id, now_ns};
}

/* Inside the append's transaction: retention of one topic (rows on touched
 * partitions, time on all when due), marking partitions whose low moved. */
static int retain_topic(ss_log_t *l, app_topic_t *t, int64_t now_ns, int64_t *deleted, char *err, size_t errsz)
{
    int rc = SS_OK;
    int do_time = t->t.retention_ms > 0 && time_retention_due(l, t->t.id, now_ns);
    int64_t cutoff = ss_wall_ms() - t->t.retention_ms;
    for (int p = 0; !rc && p < t->t.partitions; p++) {
        int64_t upto = t->low[p];
        if (t->t.retention_rows > 0 && t->touched[p] && t->next[p] - t->low[p] > t->t.retention_rows)
            upto = t->next[p] - t->t.retention_rows;
        if (do_time && t->next[p] > t->low[p]) {
            int64_t first;
            rc = first_since(l, &t->t, p, t->low[p], t->next[p], cutoff, &first, err, errsz);
            if (!rc && first > upto)
                upto = first;
        }
        if (!rc && upto > t->low[p]) {
            if (deleted)
                *deleted += upto - t->low[p];
            rc = delete_below(l, &t->t, p, &t->low[p], upto, err, errsz);
            t->touched[p] = 1;
        }
    }
    return rc;
}

static int store_parts(ss_log_t *l, const app_topic_t *t, char *err, size_t errsz)
{
    for (int p = 0; p < t->t.partitions; p++) {
        if (!t->touched[p])
            continue;
        sqlite3_stmt *s = stmt(l, ST_PART_SET, err, errsz);
        if (!s)
            return SS_ERR_SQLITE;
        sqlite3_bind_int64(s, 1, t->t.id);
        sqlite3_bind_int(s, 2, p);
        sqlite3_bind_int64(s, 3, t->low[p]);
        sqlite3_bind_int64(s, 4, t->next[p]);
        int rc = step_done(l, s, err, errsz, "append");
        if (rc)
            return rc;
    }
    return SS_OK;
}

static int pick_partition(ss_log_t *l, const app_topic_t *t, const ss_log_rec_t *r, int *p, char *err, size_t errsz)
{
    int n = t->t.partitions;
    if (r->partition >= 0) {
        if (r->partition >= n)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "topic %s has %d partition(s), not %d", t->name, n,
                             (int)r->partition + 1);
        *p = r->partition;
    } else if (r->key) {
        *p = ss_log_partition_for(r->key, r->klen, n);
    } else {
        *p = (int)(l->rr++ % (uint32_t)n);
    }
    return SS_OK;
}

/* The inserts, retention and partition marks of one append (inside its transaction). */
static int append_locked(ss_log_t *l, append_t *a, const ss_log_rec_t *recs, size_t n, ss_offset_t *where,
                         char *err, size_t errsz)
{
    int64_t ts = ss_wall_ms(), now = ss_now_ns();
    int rc = SS_OK;
    app_topic_t *t = NULL;
    for (size_t i = 0; !rc && i < n; i++) {
        const ss_log_rec_t *r = &recs[i];
        if (!r->topic || !*r->topic)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "log %s: append without a topic", l->path);
        if (!t || (t->name != r->topic && strcmp(t->name, r->topic)))
            rc = app_topic(l, a, r->topic, &t, err, errsz);
        int p = 0;
        rc = rc ? rc : pick_partition(l, t, r, &p, err, errsz);
        if (!rc)
            rc = insert_msg(l, t, p, t->next[p], ts, r, err, errsz);
        if (!rc) {
            if (where)
                where[i] = (ss_offset_t){p, t->next[p]};
            t->next[p]++;
            t->touched[p] = 1;
        }
    }
    for (int i = 0; !rc && i < a->n; i++) {
        if (a->tp[i].t.retention_ms > 0 || a->tp[i].t.retention_rows > 0)
            rc = retain_topic(l, &a->tp[i], now, NULL, err, errsz);
        if (!rc)
            rc = store_parts(l, &a->tp[i], err, errsz);
    }
    return rc;
}

static int mark_put(ss_log_t *l, const ss_log_mark_t *m, char *err, size_t errsz)
{
    sqlite3_stmt *s = stmt(l, ST_MARK_PUT, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_text(s, 1, m->topic, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, m->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, m->dev);
    sqlite3_bind_int64(s, 4, m->ino);
    sqlite3_bind_int64(s, 5, m->bytes);
    sqlite3_bind_int64(s, 6, m->lines);
    sqlite3_bind_int64(s, 7, (int64_t)m->tail_hash);
    sqlite3_bind_int64(s, 8, ss_wall_ms());
    return step_done(l, s, err, errsz, "load mark");
}

int ss_log_mark_get(ss_log_t *l, const char *topic, const char *path, ss_log_mark_t *out, char *err, size_t errsz)
{
    sqlite3_stmt *s = stmt(l, ST_MARK_GET, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_text(s, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->topic = topic;
        out->path = path;
        out->dev = sqlite3_column_int64(s, 0);
        out->ino = sqlite3_column_int64(s, 1);
        out->bytes = sqlite3_column_int64(s, 2);
        out->lines = sqlite3_column_int64(s, 3);
        out->tail_hash = (uint64_t)sqlite3_column_int64(s, 4);
        out->updated_ms = sqlite3_column_int64(s, 5);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return SS_OK;
    return rc == SQLITE_DONE ? SS_ERR_NOTFOUND : log_err(l, rc, err, errsz, "load mark");
}

int ss_log_append(ss_log_t *l, const ss_log_rec_t *recs, size_t n, ss_offset_t *where, char *err, size_t errsz)
{
    return ss_log_append_marked(l, recs, n, where, NULL, err, errsz);
}

int ss_log_append_marked(ss_log_t *l, const ss_log_rec_t *recs, size_t n, ss_offset_t *where,
                         const ss_log_mark_t *mark, char *err, size_t errsz)
{
    if (!n && !mark)
        return SS_OK;
    int rc = exec(l, "BEGIN IMMEDIATE", err, errsz);
    if (rc)
        return rc;
    append_t a = {0};
    rc = append_locked(l, &a, recs, n, where, err, errsz);
    if (!rc && mark)
        rc = mark_put(l, mark, err, errsz);
    if (!rc)
        rc = exec(l, "COMMIT", err, errsz);
    if (rc)
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    else
        for (int i = 0; i < a.n; i++)
            if (a.tp[i].t.retention_ms > 0)
                time_retention_done(l, a.tp[i].t.id, ss_now_ns());
    append_free(&a);
    return rc;
}

/* ---- read ---- */

int ss_log_read(ss_log_t *l, int64_t topic_id, int partition, int64_t from, int max, ss_log_msg_fn fn, void *arg,
                int *n, char *err, size_t errsz)
{
    if (n)
        *n = 0;
    if (max <= 0)
        return SS_OK;
    sqlite3_stmt *s = stmt(l, ST_READ, err, errsz);
    if (!s)
        return SS_ERR_SQLITE;
    sqlite3_bind_int64(s, 1, topic_id);
    sqlite3_bind_int(s, 2, partition);
    sqlite3_bind_int64(s, 3, from);
    sqlite3_bind_int(s, 4, max);
    int rc, stop = 0, got = 0;
    while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        ss_log_msg_t m;
        m.partition = partition;
        m.offset = sqlite3_column_int64(s, 0);
        m.ts_ms = sqlite3_column_int64(s, 1);
        m.key = sqlite3_column_type(s, 2) == SQLITE_NULL ? NULL : sqlite3_column_blob(s, 2);
        m.klen = (size_t)sqlite3_column_bytes(s, 2);
        if (!m.key && sqlite3_column_type(s, 2) != SQLITE_NULL)
            m.key = ""; /* an empty key is a key */
        m.val = sqlite3_column_type(s, 3) == SQLITE_NULL ? NULL : sqlite3_column_blob(s, 3);
        m.vlen = (size_t)sqlite3_column_bytes(s, 3);
        if (!m.val && sqlite3_column_type(s, 3) != SQLITE_NULL)
            m.val = "";
        got++;
        stop = fn(arg, &m);
    }
    sqlite3_reset(s);
    if (n)
        *n = got;
    if (stop)
        return stop;
    return rc == SQLITE_DONE ? SS_OK : log_err(l, rc, err, errsz, "read");
}

/* ---- retention on demand ---- */

typedef struct retain_all {
    ss_log_t *l;
    append_t a;
    int64_t deleted;
    int rc;
    char *err;
    size_t errsz;
} retain_all_t;

static int retain_one(void *arg, const char *name, const ss_log_topic_t *t)
{
    retain_all_t *r = arg;
    if (!t->retention_ms && !t->retention_rows)
        return 0;
    app_topic_t *at = NULL;
    /* the name is only valid during the callback: resolve (copies nothing) and apply at once */
    r->rc = app_topic(r->l, &r->a, name, &at, r->err, r->errsz);
    if (!r->rc) {
        memset(at->touched, 1, (size_t)at->t.partitions); /* row retention on every partition */
        r->rc = retain_topic(r->l, at, ss_now_ns() + RETAIN_TIME_EVERY_NS * 1000, &r->deleted, r->err, r->errsz);
    }
    if (!r->rc)
        r->rc = store_parts(r->l, at, r->err, r->errsz);
    if (at)
        at->name = ""; /* never matched again by name */
    return r->rc ? 1 : 0;
}

int ss_log_retain(ss_log_t *l, int64_t *deleted, char *err, size_t errsz)
{
    if (deleted)
        *deleted = 0;
    int rc = exec(l, "BEGIN IMMEDIATE", err, errsz);
    if (rc)
        return rc;
    retain_all_t r = {l, {0}, 0, SS_OK, err, errsz};
    /* forget when time retention last ran: this call applies it regardless */
    free(l->ret);
    l->ret = NULL;
    l->nret = 0;
    rc = ss_log_topics(l, retain_one, &r, err, errsz);
    if (rc == 1)
        rc = r.rc;
    if (!rc)
        rc = exec(l, "COMMIT", err, errsz);
    if (rc)
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    else if (deleted)
        *deleted = r.deleted;
    append_free(&r.a);
    return rc;
}
