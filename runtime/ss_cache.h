/*
 * ss_cache.h — the persistent inference result cache and the result helpers the
 * dispatcher builds on.
 *
 * The cache is a SQLite database of its own (never the engine's state DB, which
 * holds a long write transaction per micro-batch), in WAL mode with
 * synchronous=FULL: every put is committed and fsync'd before it returns, so a
 * result that has arrived is never paid for twice, even after a power loss.
 * Rows are keyed by ss_infer_key(): a 128-bit hex digest of the canonical
 * encoding of (model_id, kind, prompt, choices, decoding parameters).
 * A cache handle is safe to use from several threads (it has its own mutex).
 */
#ifndef SS_CACHE_H
#define SS_CACHE_H

#include "ss_infer.h"

#include <stdint.h>

/* ---- the cache key (runtime/infer_key.c) ---- */

/* Appends the canonical encoding of (model_id, request) to b: only the fields that
 * decide the answer for the request's kind (e.g. seed only when temperature > 0). */
int ss_infer_encode(ss_buf_t *b, const char *model_id, const ss_infer_req_t *r);
/* The cache key: ss_hash_hex128 of ss_infer_encode. SS_OK or SS_ERR_NOMEM. */
int ss_infer_key(const char *model_id, const ss_infer_req_t *r, char out[33]);

/* ---- the cache (runtime/cache.c) ---- */
typedef struct ss_cache ss_cache_t;

/* One result to store: key from ss_infer_key, kind of the request, result (borrowed). */
typedef struct ss_cache_entry {
    const char *key;
    ss_infer_kind_t kind;
    const ss_infer_res_t *res;
} ss_cache_entry_t;

/* Opens (creating if needed) the cache database at path. */
int ss_cache_open(const char *path, ss_cache_t **out, char *err, size_t errsz);
void ss_cache_close(ss_cache_t *c); /* NULL-safe */

/* Looks key up. On a hit fills *res (owned fields allocated, res->cached = 1) and sets
 * *found = 1; on a miss leaves *res untouched and sets *found = 0. */
int ss_cache_get(ss_cache_t *c, const char *key, ss_infer_res_t *res, int *found, char *err,
                 size_t errsz);
/* The same for n keys in one read transaction: found[i], *res[i] filled on hits. Stops at
 * the first error (the found[] of later keys stay 0). */
int ss_cache_get_many(ss_cache_t *c, const char *const *keys, int n, ss_infer_res_t *const *res, int *found,
                      char *err, size_t errsz);
/* Stores n results of model model_id in one transaction, committed durably before
 * returning. Entries whose res->status != SS_OK are skipped. Existing keys are replaced. */
int ss_cache_put(ss_cache_t *c, const char *model_id, const ss_cache_entry_t *e, int n, char *err,
                 size_t errsz);
/* Number of stored results (-1 on error). */
int64_t ss_cache_count(ss_cache_t *c);

#endif
