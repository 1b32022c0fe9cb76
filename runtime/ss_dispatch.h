/*
 * ss_dispatch.h — the inference dispatcher every semantic operator calls.
 *
 * Owns the registered model backends and the persistent result cache (a SQLite
 * database of its own, committed the moment each result arrives, so a crash never
 * pays for the same inference twice). ss_dispatch_run answers a batch of requests:
 * cache lookups first, identical requests deduplicated, the rest grouped by shared
 * prefix and sent to the backend in batches; results are stored durably as they
 * arrive and returned in request order. Accounting goes to the caller's stats.
 */
#ifndef SS_DISPATCH_H
#define SS_DISPATCH_H

#include "ss_infer.h"

typedef struct ss_dispatch ss_dispatch_t;

typedef struct ss_dispatch_opts {
    const char *cache_path;  /* SQLite file for the result cache; NULL = no persistent cache */
    int max_batch;           /* requests per backend call (default 32) */
    int use_cache;           /* 1 (default when cache_path is set) */
} ss_dispatch_opts_t;

int ss_dispatch_open(const ss_dispatch_opts_t *opts, ss_dispatch_t **out, char *err, size_t errsz);
void ss_dispatch_close(ss_dispatch_t *d); /* NULL-safe; destroys registered backends */

/* Registers a backend under name; takes ownership of b (also on failure).
 * The first registered model (or one registered with is_default) is the default. */
int ss_dispatch_add_model(ss_dispatch_t *d, const char *name, ss_infer_backend_t *b, int is_default,
                          char *err, size_t errsz);
int ss_dispatch_has_model(ss_dispatch_t *d, const char *name); /* NULL name = default */

/* Answers reqs[0..n) into res[0..n) (zeroed by the caller) with model `model` (NULL = default).
 * Returns SS_OK when every request was answered (res[i].status == SS_OK), else the first error. */
int ss_dispatch_run(ss_dispatch_t *d, const char *model, ss_infer_stats_t *acct,
                    const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err, size_t errsz);

/* Totals across all callers since open. */
void ss_dispatch_totals(ss_dispatch_t *d, ss_infer_stats_t *out);

#endif
