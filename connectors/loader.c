/*
 * loader.c — ss_load_jsonl (ss_connect.h): appends a JSON-lines file to a
 * stream's topic, every line keyed by the stream's key (ss_format_key). On the
 * log a load is exactly once: each batch is appended in one transaction with
 * the file position it reached (ss_log_append_marked), so a load that was
 * interrupted (kill -9, full disk) and is started again continues after the
 * last committed line; a full disk waits until space returns. On Kafka the
 * lines are produced and flushed. While it runs it reports its progress at
 * least once a second (o->progress) and stops when *o->stop is set.
 */
#include "conn_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH_LINES 16384
#define BATCH_BYTES (8u << 20)
#define TAIL_BYTES 4096
#define RETRY_MS 1000

typedef struct line_rec {
    size_t key_at, klen, val_at, vlen;
    int has_key;
} line_rec_t;

typedef struct loader {
    ss_transport_t *t;
    const ss_load_opts_t *o;
    FILE *f;
    char path[PATH_MAX];     /* absolute */
    struct stat st;
    ss_log_t *log;           /* the log: own connection */
    ss_producer_t *prod;     /* Kafka */
    line_rec_t *r;           /* the batch */
    size_t n, cap;
    ss_buf_t data, key;
    int64_t bytes, lines;    /* file position and lines after the batch */
    int64_t bytes0, lines0;  /* the same where this call started */
    int64_t tick_ns;         /* the last progress report */
    ss_load_result_t *res;
} loader_t;

/* Reports progress when a second has passed since the last report (or force). */
static void tick(loader_t *L, int force)
{
    if (!L->o->progress)
        return;
    int64_t now = ss_now_ns();
    if (!force && now - L->tick_ns < 1000000000LL)
        return;
    L->tick_ns = now;
    L->o->progress(L->o->progress_ctx, L->lines - L->lines0, L->bytes - L->bytes0, (int64_t)L->st.st_size);
}

static int stopped(const loader_t *L) { return L->o->stop && *L->o->stop; }

/* Hash of the (up to) TAIL_BYTES of the file before offset `at`. */
static int tail_hash(loader_t *L, int64_t at, uint64_t *h, char *err, size_t errsz)
{
    char buf[TAIL_BYTES];
    int64_t from = at > TAIL_BYTES ? at - TAIL_BYTES : 0;
    ssize_t n = pread(fileno(L->f), buf, (size_t)(at - from), from);
    if (n != (ssize_t)(at - from))
        return ss_seterr(err, errsz, SS_ERR_IO, "%s: %s", L->path, n < 0 ? strerror(errno) : "short read");
    *h = ss_hash64(buf, (size_t)n, 0x6c6f6164u);
    return SS_OK;
}

/* On the log: where an earlier load of this file into this topic stopped (0 = from the start). */
static int resume_point(loader_t *L, char *err, size_t errsz)
{
    ss_log_mark_t m;
    int rc = ss_log_mark_get(L->log, L->o->topic, L->path, &m, err, errsz);
    if (rc == SS_ERR_NOTFOUND)
        return SS_OK;
    if (rc)
        return rc;
    uint64_t h = 0;
    int same = m.dev == (int64_t)L->st.st_dev && m.ino == (int64_t)L->st.st_ino && m.bytes <= L->st.st_size &&
               !tail_hash(L, m.bytes, &h, err, errsz) && h == m.tail_hash;
    if (!same) {
        ss_log(SS_LOG_WARN, "load", "stream %s: %s is not the file loaded before (%lld lines): loading it from the "
               "start", L->o->stream, L->path, (long long)m.lines);
        return SS_OK;
    }
    if (fseeko(L->f, (off_t)m.bytes, SEEK_SET))
        return ss_seterr(err, errsz, SS_ERR_IO, "%s: %s", L->path, strerror(errno));
    L->bytes = m.bytes;
    L->lines = m.lines;
    L->res->before = m.lines;
    if (m.bytes > 0)
        ss_log(SS_LOG_INFO, "load", "stream %s: %s: %lld lines were loaded before; %s", L->o->stream, L->path,
               (long long)m.lines, m.bytes == L->st.st_size ? "nothing new" : "loading the rest");
    return SS_OK;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Appends the batch with its file position; waits out a full disk or a long lock. */
static int commit_log(loader_t *L, char *err, size_t errsz)
{
    ss_log_rec_t *recs = malloc((L->n ? L->n : 1) * sizeof *recs);
    if (!recs)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < L->n; i++)
        recs[i] = (ss_log_rec_t){L->o->topic, -1, L->r[i].has_key ? L->data.data + L->r[i].key_at : NULL,
                                 L->r[i].klen, L->data.data + L->r[i].val_at, L->r[i].vlen};
    ss_log_mark_t m = {L->o->topic, L->path, (int64_t)L->st.st_dev, (int64_t)L->st.st_ino, L->bytes, L->lines, 0, 0};
    int rc = tail_hash(L, L->bytes, &m.tail_hash, err, errsz);
    int64_t waited_since = 0;
    while (!rc) {
        rc = ss_log_append_marked(L->log, recs, L->n, NULL, &m, err, errsz);
        if (rc != SS_ERR_BUSY)
            break;
        if (stopped(L)) {
            ss_errprefix(err, errsz, "stream %s: load of %s stopped after %lld lines", L->o->stream, L->path,
                         (long long)(L->lines - (int64_t)L->n));
            break;
        }
        tick(L, 0);
        if (!waited_since) {
            waited_since = ss_now_ns();
            ss_log(SS_LOG_ERROR, "load", "stream %s: load of %s paused after %lld lines: %s; retrying every %d ms "
                   "(nothing of this batch was written)", L->o->stream, L->path,
                   (long long)(L->lines - (int64_t)L->n), err, RETRY_MS);
        }
        sleep_ms(RETRY_MS);
        rc = SS_OK;
    }
    if (!rc && waited_since)
        ss_log(SS_LOG_WARN, "load", "stream %s: load of %s resumed after %.1f s", L->o->stream, L->path,
               (ss_now_ns() - waited_since) / 1e9);
    free(recs);
    if (!rc)
        conn_log_appended(L->t);
    return rc;
}

static int commit_batch(loader_t *L, char *err, size_t errsz)
{
    int rc = SS_OK;
    if (L->log) {
        rc = commit_log(L, err, errsz);
    } else {
        for (size_t i = 0; i < L->n && !rc; i++)
            rc = ss_producer_send(L->prod, L->o->topic, L->r[i].has_key ? L->data.data + L->r[i].key_at : NULL,
                                  L->r[i].klen, L->data.data + L->r[i].val_at, L->r[i].vlen, err, errsz);
    }
    if (!rc) {
        L->res->lines += (int64_t)L->n;
        L->n = 0;
        ss_buf_reset(&L->data);
    }
    return rc;
}

/* Queues one line (len bytes, no newline) with its key. */
static int add_line(loader_t *L, const char *line, size_t len, char *err, size_t errsz)
{
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 1024;
        line_rec_t *r = realloc(L->r, cap * sizeof *r);
        if (!r)
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        L->r = r;
        L->cap = cap;
    }
    line_rec_t *q = &L->r[L->n];
    char why[256];
    ss_buf_reset(&L->key);
    q->has_key = !ss_format_key(L->o->format, L->o->schema, line, len, &L->key, why, sizeof why);
    if (!q->has_key)
        L->res->unkeyed++;
    q->key_at = L->data.len;
    q->klen = q->has_key ? L->key.len : 0;
    int rc = q->has_key && q->klen ? ss_buf_append(&L->data, L->key.data, q->klen) : SS_OK;
    q->val_at = L->data.len;
    q->vlen = len;
    rc = rc ? rc : ss_buf_append(&L->data, line, len);
    if (rc)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    L->n++;
    return SS_OK;
}

static int load_lines(loader_t *L, char *err, size_t errsz)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = SS_OK;
    while (!rc && (len = getline(&line, &cap, L->f)) >= 0) {
        L->bytes += len;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        size_t i = 0;
        while (i < (size_t)len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == (size_t)len)
            continue;
        L->lines++;
        rc = add_line(L, line, (size_t)len, err, errsz);
        if (!rc && (L->n >= BATCH_LINES || L->data.len >= BATCH_BYTES))
            rc = commit_batch(L, err, errsz);
        if (!rc && (L->lines & 255) == 0) {
            tick(L, 0);
            if (stopped(L))
                break; /* what is batched is appended below, with its position */
        }
    }
    if (!rc && ferror(L->f))
        rc = ss_seterr(err, errsz, SS_ERR_IO, "%s: %s", L->path, strerror(errno));
    free(line);
    /* the last batch; on the log also the final position when it ended in blank lines */
    if (!rc && (L->n || (L->log && L->bytes > 0)))
        rc = commit_batch(L, err, errsz);
    return rc;
}

/* Kafka: waits for the produced lines' delivery (up to 120 s), reporting progress. */
static int flush_kafka(loader_t *L, char *err, size_t errsz)
{
    int64_t start = ss_now_ns();
    for (;;) {
        int rc = ss_producer_flush(L->prod, 1000, err, errsz);
        if (rc == SS_ERR_TIMEOUT && stopped(L)) {
            char why[SS_ERRSZ];
            snprintf(why, sizeof why, "%s", err);
            return ss_seterr(err, errsz, SS_ERR_CANCELED, "stopped with lines not delivered yet: %s", why);
        }
        if (rc != SS_ERR_TIMEOUT || ss_now_ns() - start > 120000000000LL)
            return rc;
        tick(L, 1);
    }
}

int ss_load_jsonl(ss_transport_t *t, const ss_load_opts_t *o, ss_load_result_t *res, char *err, size_t errsz)
{
    memset(res, 0, sizeof *res);
    loader_t L = {0};
    L.t = t;
    L.o = o;
    L.res = res;
    if (!realpath(o->path, L.path) || !(L.f = fopen(L.path, "r")))
        return ss_seterr(err, errsz, SS_ERR_IO, "%s: %s", o->path, strerror(errno));
    int rc = fstat(fileno(L.f), &L.st) ? ss_seterr(err, errsz, SS_ERR_IO, "%s: %s", L.path, strerror(errno)) : SS_OK;
    if (!rc && t->kind == SS_TRANSPORT_LOG) {
        rc = ss_log_open(t->addr, &L.log, err, errsz);
        rc = rc ? rc : resume_point(&L, err, errsz);
    } else if (!rc) {
        rc = ss_producer_new(t, &L.prod, err, errsz);
    }
    L.bytes0 = L.bytes;
    L.lines0 = L.lines;
    L.tick_ns = ss_now_ns();
    if (!rc && !(L.log && L.bytes == L.st.st_size && L.bytes > 0))
        rc = load_lines(&L, err, errsz);
    if (!rc && L.prod)
        rc = flush_kafka(&L, err, errsz);
    if (!rc && stopped(&L))
        rc = ss_seterr(err, errsz, SS_ERR_CANCELED, "stopped after %lld of its lines%s",
                       (long long)L.lines, L.log ? " (a later load of the file continues after them)" : "");
    else if (!rc && L.lines > L.lines0)
        tick(&L, 1);
    ss_producer_destroy(L.prod);
    ss_log_close(L.log);
    fclose(L.f);
    free(L.r);
    ss_buf_free(&L.data);
    ss_buf_free(&L.key);
    if (rc)
        ss_errprefix(err, errsz, "loading %s into stream %s", o->path, o->stream ? o->stream : o->topic);
    return rc;
}
