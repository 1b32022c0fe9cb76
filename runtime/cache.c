/*
 * cache.c — the persistent inference result cache (ss_cache.h): one SQLite file
 * of its own, WAL mode, synchronous=FULL, one table of results keyed by the hex
 * request key. Owns its connection, prepared statements and a mutex.
 *
 * Why FULL and not NORMAL: in WAL mode NORMAL survives a process crash but may
 * lose the last commits on power loss; FULL fsyncs the WAL on every commit. A
 * commit happens once per backend chunk, which took milliseconds to seconds of
 * model time, so the fsync is noise next to the inference it protects.
 */
#include "ss_cache.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

struct ss_cache {
    sqlite3 *db;
    sqlite3_stmt *get, *put, *count;
    pthread_mutex_t mu;
};

static const char *SCHEMA =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS ss_infer_cache("
    "  key TEXT PRIMARY KEY,"         /* ss_infer_key(): hex digest of the canonical request */
    "  kind INTEGER NOT NULL,"        /* ss_infer_kind_t */
    "  model_id TEXT NOT NULL,"       /* backend identity (name + file hash / url + model) */
    "  text TEXT,"                    /* GENERATE */
    "  probs BLOB,"                   /* CHOOSE: float32[nprobs] */
    "  score REAL,"                   /* SCORE */
    "  emb BLOB,"                     /* EMBED: float32[dim] */
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  gen_tokens INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"  /* wall clock when stored */
    "  top BLOB,"                     /* GENERATE top_logprobs: ntop x (float32 lp, uint32 len, bytes) */
    "  token_logprobs BLOB,"          /* GENERATE top_logprobs: float32[gen_tokens] */
    "  dep BLOB"                      /* GENERATE with dependency tracking: ss_infer_dep_encode */
    ") WITHOUT ROWID;";

/* Columns added after the first release of the table: added to older files on open. */
static const char *const LATE_COLUMNS[] = {"top BLOB", "token_logprobs BLOB", "dep BLOB"};

static int sqlerr(ss_cache_t *c, char *err, size_t errsz, const char *what)
{
    return ss_seterr(err, errsz, SS_ERR_SQLITE, "result cache: %s: %s", what,
                     c && c->db ? sqlite3_errmsg(c->db) : "out of memory");
}

int ss_cache_open(const char *path, ss_cache_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_cache_t *c = calloc(1, sizeof *c);
    if (!c) return ss_seterr(err, errsz, SS_ERR_NOMEM, "result cache: out of memory");
    pthread_mutex_init(&c->mu, NULL);
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                             SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        ss_seterr(err, errsz, SS_ERR_SQLITE, "result cache %s: %s", path,
                  c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        ss_cache_close(c);
        return SS_ERR_SQLITE;
    }
    sqlite3_busy_timeout(c->db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(c->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        ss_seterr(err, errsz, SS_ERR_SQLITE, "result cache %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        ss_cache_close(c);
        return SS_ERR_SQLITE;
    }
    for (size_t i = 0; i < SS_ARRAY_LEN(LATE_COLUMNS); i++) {
        char *sql = ss_sprintf("ALTER TABLE ss_infer_cache ADD COLUMN %s", LATE_COLUMNS[i]);
        sqlite3_exec(c->db, sql, NULL, NULL, NULL); /* fails harmlessly when present */
        free(sql);
    }
    if (sqlite3_prepare_v2(c->db, "SELECT kind, text, probs, score, emb, prompt_tokens, gen_tokens,"
                           " top, token_logprobs, dep FROM ss_infer_cache WHERE key = ?1", -1, &c->get, NULL) ||
        sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO ss_infer_cache(key, kind, model_id, text,"
                           " probs, score, emb, prompt_tokens, gen_tokens, created_ms, top, token_logprobs, dep)"
                           " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)", -1, &c->put, NULL) ||
        sqlite3_prepare_v2(c->db, "SELECT count(*) FROM ss_infer_cache", -1, &c->count, NULL)) {
        sqlerr(c, err, errsz, "prepare");
        ss_cache_close(c);
        return SS_ERR_SQLITE;
    }
    *out = c;
    return SS_OK;
}

void ss_cache_close(ss_cache_t *c)
{
    if (!c) return;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->put);
    sqlite3_finalize(c->count);
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static float *blob_floats(sqlite3_stmt *st, int col, int *n)
{
    int bytes = sqlite3_column_bytes(st, col);
    const void *p = sqlite3_column_blob(st, col);
    *n = bytes / (int)sizeof(float);
    if (!p || *n == 0) return NULL;
    float *v = malloc((size_t)*n * sizeof(float));
    if (v) memcpy(v, p, (size_t)*n * sizeof(float));
    return v;
}

/* top blob <-> ntop/top_tokens/top_logprobs */
static int encode_top(const ss_infer_res_t *r, ss_buf_t *b)
{
    for (int i = 0; i < r->ntop; i++) {
        const char *t = r->top_tokens && r->top_tokens[i] ? r->top_tokens[i] : "";
        uint32_t n = (uint32_t)strlen(t);
        if (ss_buf_append(b, &r->top_logprobs[i], 4) || ss_buf_append(b, &n, 4) || ss_buf_append(b, t, n))
            return SS_ERR_NOMEM;
    }
    return SS_OK;
}

static int decode_top(const unsigned char *p, int len, ss_infer_res_t *r)
{
    int n = 0;
    for (int off = 0; off + 8 <= len; n++) {
        uint32_t l;
        memcpy(&l, p + off + 4, 4);
        if (l > (uint32_t)(len - off - 8)) return SS_ERR_INVALID;
        off += 8 + (int)l;
    }
    if (n == 0) return SS_OK;
    r->top_tokens = calloc((size_t)n, sizeof(char *));
    r->top_logprobs = calloc((size_t)n, sizeof(float));
    if (!r->top_tokens || !r->top_logprobs) return SS_ERR_NOMEM;
    r->ntop = n;
    for (int i = 0, off = 0; i < n; i++) {
        uint32_t l;
        memcpy(&r->top_logprobs[i], p + off, 4);
        memcpy(&l, p + off + 4, 4);
        if (!(r->top_tokens[i] = ss_strndup((const char *)p + off + 8, l))) return SS_ERR_NOMEM;
        off += 8 + (int)l;
    }
    return SS_OK;
}

static int read_row(sqlite3_stmt *st, ss_infer_res_t *res)
{
    ss_infer_res_t r = {0};
    const unsigned char *t = sqlite3_column_text(st, 1);
    if (t) r.text = ss_strdup((const char *)t);
    r.probs = blob_floats(st, 2, &r.nprobs);
    r.score = sqlite3_column_double(st, 3);
    r.emb = blob_floats(st, 4, &r.dim);
    r.prompt_tokens = sqlite3_column_int(st, 5);
    r.gen_tokens = sqlite3_column_int(st, 6);
    r.cached = 1;
    int ntl = 0, bad = decode_top(sqlite3_column_blob(st, 7), sqlite3_column_bytes(st, 7), &r) != SS_OK;
    r.token_logprobs = blob_floats(st, 8, &ntl);
    if (r.token_logprobs && ntl != r.gen_tokens) bad = 1; /* copies assume gen_tokens entries */
    int dl = sqlite3_column_bytes(st, 9);
    if (dl > 0) { /* the dependency record, as the engine encoded it */
        r.dep = malloc((size_t)dl);
        if (r.dep) memcpy(r.dep, sqlite3_column_blob(st, 9), (size_t)dl), r.dep_len = dl;
        else bad = 1;
    }
    if (bad || (t && !r.text) || (r.nprobs && !r.probs) || (r.dim && !r.emb)) {
        ss_infer_res_clear(&r);
        return SS_ERR_NOMEM;
    }
    *res = r;
    return SS_OK;
}

/* One lookup; c->mu held. */
static int get_locked(ss_cache_t *c, const char *key, ss_infer_res_t *res, int *found, char *err, size_t errsz)
{
    *found = 0;
    sqlite3_reset(c->get);
    sqlite3_bind_text(c->get, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(c->get), out = SS_OK;
    if (rc == SQLITE_ROW) {
        out = read_row(c->get, res);
        if (out == SS_OK) *found = 1;
        else ss_seterr(err, errsz, out, "result cache: out of memory");
    } else if (rc != SQLITE_DONE) {
        out = sqlerr(c, err, errsz, "get");
    }
    sqlite3_reset(c->get);
    sqlite3_clear_bindings(c->get);
    return out;
}

int ss_cache_get(ss_cache_t *c, const char *key, ss_infer_res_t *res, int *found, char *err,
                 size_t errsz)
{
    ss_infer_res_t *rp = res;
    return ss_cache_get_many(c, &key, 1, &rp, found, err, errsz);
}

int ss_cache_get_many(ss_cache_t *c, const char *const *keys, int n, ss_infer_res_t *const *res, int *found,
                      char *err, size_t errsz)
{
    int out = SS_OK;
    pthread_mutex_lock(&c->mu);
    /* one read transaction: the WAL read lock is taken once, not once per key */
    int txn = n > 1 && sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    for (int i = 0; i < n; i++) found[i] = 0;
    for (int i = 0; i < n && out == SS_OK; i++) out = get_locked(c, keys[i], res[i], &found[i], err, errsz);
    if (txn) sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&c->mu);
    return out;
}

static int put_one(ss_cache_t *c, const char *model_id, const ss_cache_entry_t *e, int64_t now, ss_buf_t *top)
{
    const ss_infer_res_t *r = e->res;
    sqlite3_stmt *st = c->put;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, e->key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)e->kind);
    sqlite3_bind_text(st, 3, model_id ? model_id : "", -1, SQLITE_STATIC);
    if (r->text) sqlite3_bind_text(st, 4, r->text, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 4);
    if (r->probs && r->nprobs > 0)
        sqlite3_bind_blob(st, 5, r->probs, r->nprobs * (int)sizeof(float), SQLITE_STATIC);
    else sqlite3_bind_null(st, 5);
    sqlite3_bind_double(st, 6, r->score);
    if (r->emb && r->dim > 0) sqlite3_bind_blob(st, 7, r->emb, r->dim * (int)sizeof(float), SQLITE_STATIC);
    else sqlite3_bind_null(st, 7);
    sqlite3_bind_int(st, 8, r->prompt_tokens);
    sqlite3_bind_int(st, 9, r->gen_tokens);
    sqlite3_bind_int64(st, 10, now);
    ss_buf_reset(top);
    if (r->ntop > 0 && r->top_logprobs && encode_top(r, top) != SS_OK) return SS_ERR_NOMEM;
    if (top->len) sqlite3_bind_blob(st, 11, top->data, (int)top->len, SQLITE_STATIC);
    else sqlite3_bind_null(st, 11);
    if (r->token_logprobs && r->gen_tokens > 0)
        sqlite3_bind_blob(st, 12, r->token_logprobs, r->gen_tokens * (int)sizeof(float), SQLITE_STATIC);
    else sqlite3_bind_null(st, 12);
    if (r->dep && r->dep_len > 0) sqlite3_bind_blob(st, 13, r->dep, r->dep_len, SQLITE_STATIC);
    else sqlite3_bind_null(st, 13);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SS_OK : SS_ERR_SQLITE;
}

int ss_cache_put(ss_cache_t *c, const char *model_id, const ss_cache_entry_t *e, int n, char *err,
                 size_t errsz)
{
    int out = SS_OK;
    int64_t now = ss_wall_ms();
    ss_buf_t top = SS_BUF_INIT;
    pthread_mutex_lock(&c->mu);
    if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        out = sqlerr(c, err, errsz, "begin");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (e[i].res->status != SS_OK) continue;
        if (put_one(c, model_id, &e[i], now, &top) != SS_OK) {
            out = sqlerr(c, err, errsz, "put");
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            goto done;
        }
    }
    if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        out = sqlerr(c, err, errsz, "commit");
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
done:
    pthread_mutex_unlock(&c->mu);
    ss_buf_free(&top);
    return out;
}

int64_t ss_cache_count(ss_cache_t *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t n = -1;
    sqlite3_reset(c->count);
    if (sqlite3_step(c->count) == SQLITE_ROW) n = sqlite3_column_int64(c->count, 0);
    sqlite3_reset(c->count);
    pthread_mutex_unlock(&c->mu);
    return n;
}
