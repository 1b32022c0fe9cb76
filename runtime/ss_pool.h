/*
 * ss_pool.h — a backend that spreads inference over several workers (each an
 * ss_infer_backend_t, normally the openai backend pointed at one
 * `semstream worker`). Requests sharing a prompt prefix go to the same worker
 * (rendezvous hashing of the prefix, so each worker's prefix/KV cache stays
 * warm), unless that worker is much busier than the least busy one; a worker
 * whose calls fail at the transport level is marked down, its requests are
 * retried on the others, and it is tried again after a cooldown that doubles
 * on each failure (up to max_cooldown_ms, times a random 1..1.5) — a worker that
 * comes back is used again. A worker answering 429 (queue full) rests a cooldown
 * while the others take its requests.
 */
#ifndef SS_POOL_H
#define SS_POOL_H

#include "ss_infer.h"

typedef struct ss_pool_opts {
    int imbalance;        /* route away from the preferred worker when it has this many more
                             requests in flight than the least loaded one (default 64) */
    int cooldown_ms;      /* first wait before retrying a failed worker (default 500) */
    int max_cooldown_ms;  /* cap (default 10000) */
    int max_wait_ms;      /* when every worker is down or busy (429), keep trying this long before
                             failing the batch (default 2000; < 0: not at all) */
} ss_pool_opts_t;

/* Takes ownership of the n workers (also on failure). model_id = "pool:" + name. */
ss_infer_backend_t *ss_backend_pool_new(const char *name, ss_infer_backend_t **workers, int n,
                                        const ss_pool_opts_t *o, char *err, size_t errsz);

/* A pool of openai backends, one per URL in a comma-separated list (each URL a worker), each
 * opened with the options of tmpl (its url ignored). */
struct ss_openai_opts;
ss_infer_backend_t *ss_backend_workers_open(const char *urls_csv, const struct ss_openai_opts *tmpl, char *err,
                                            size_t errsz);
/* The same with defaults for the other options. */
ss_infer_backend_t *ss_backend_workers_new(const char *urls_csv, const char *model, const char *api_key,
                                           int timeout_ms, char *err, size_t errsz);

typedef struct ss_pool_worker_stats {
    int64_t requests;   /* requests routed to this worker */
    int64_t failures;   /* transport-level failures */
    int healthy;        /* 1 if currently considered up */
    int inflight;
} ss_pool_worker_stats_t;

/* Per-worker statistics of a pool backend (i < n); SS_ERR_INVALID if b is not a pool. */
int ss_pool_stats(ss_infer_backend_t *b, int i, ss_pool_worker_stats_t *out);

#endif
