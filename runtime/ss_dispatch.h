/*
 * ss_dispatch.h — the inference dispatcher every semantic operator calls.
 *
 * Owns the registered model backends, a queue and worker threads per model,
 * and the persistent result cache (a SQLite database of its own, committed the
 * moment each result arrives, so a crash never pays for the same inference
 * twice). ss_dispatch_run answers a batch of requests: cache lookups first,
 * identical requests (in the batch, or already queued or running for another
 * caller) folded into one, the rest queued for the model's workers, which send
 * them to the backend in chunks of max_batch with at most max_in_flight
 * requests of the model in the backend at once.
 *
 * Two ways to call it:
 *  - blocking (the default): ss_dispatch_run returns once every request is
 *    answered or has failed; a failure is returned, not retried.
 *  - non-blocking, for the engine's pipelines: a thread bound to a wait group
 *    (ss_dispatch_bind) never waits for a model. ss_dispatch_run answers what
 *    the cache holds, queues the rest, registers them in the wait group and
 *    returns SS_ERR_PENDING. The caller abandons its work (rolls back), waits on
 *    the wait group and runs again: the answers are then in the cache. A
 *    request queued this way that fails is retried with exponential backoff and
 *    jitter (Retry-After as the backend reports it) until it succeeds; the
 *    model's status (ss_dispatch_model_status) says what is failing and since
 *    when. So no model call ever runs inside a caller's transaction, and a
 *    slow or failing model stalls only the callers that wait for it.
 */
#ifndef SS_DISPATCH_H
#define SS_DISPATCH_H

#include "ss_infer.h"

typedef struct ss_dispatch ss_dispatch_t;

typedef struct ss_dispatch_opts {
    const char *cache_path;  /* SQLite file for the result cache; NULL = no persistent cache */
    int max_batch;           /* requests per backend call (default 32) */
    int use_cache;           /* 1 (default when cache_path is set); negative = off */
} ss_dispatch_opts_t;

int ss_dispatch_open(const ss_dispatch_opts_t *opts, ss_dispatch_t **out, char *err, size_t errsz);
/* Stops the workers (a backend call in progress is canceled where the backend can,
 * else finished first; queued requests are dropped: nothing is lost, they were never
 * paid for) and destroys the backends.
 * NULL-safe. No caller may be inside ss_dispatch_run. */
void ss_dispatch_close(ss_dispatch_t *d);

/* Registers a backend under name; takes ownership of b (also on failure).
 * The first registered model (or one registered with is_default) is the default. */
int ss_dispatch_add_model(ss_dispatch_t *d, const char *name, ss_infer_backend_t *b, int is_default,
                          char *err, size_t errsz);
int ss_dispatch_has_model(ss_dispatch_t *d, const char *name); /* NULL name = default */
/* Registers b under name, or replaces the backend of the model registered under it (a model
 * dropped and created again): calls in progress finish on the old backend first, queued
 * requests go to the new one, whose capacity starts at the default. Takes ownership of b. */
int ss_dispatch_replace_model(ss_dispatch_t *d, const char *name, ss_infer_backend_t *b, char *err, size_t errsz);
/* 1 if a request that failed with code would fail again however often it is retried (the
 * request is invalid for the model: SS_ERR_INVALID, UNSUPPORTED, DENIED, PARSE, SEMANTIC). Such a
 * failure is not retried, even for a non-blocking caller: it is the request's result, and the
 * same request asked again fails at once (no new call) until the model is replaced. Other
 * failures (HTTP, timeouts, 429, I/O) are transient: retried with backoff. */
int ss_dispatch_err_final(int code);
/* Sets how many requests of the model may be in the backend at once (>= 1; the default
 * is max_batch for a backend that takes one call at a time, else 2 x max_batch). */
int ss_dispatch_set_capacity(ss_dispatch_t *d, const char *name, int max_in_flight, char *err, size_t errsz);

/* Answers reqs[0..n) into res[0..n) (zeroed by the caller) with model `model` (NULL = default).
 * Blocking: SS_OK when every request was answered, else the first error.
 * Non-blocking (thread bound to a wait group): SS_OK when every request was answered
 * from the cache; SS_ERR_PENDING when some are queued or running (their res[i].status is
 * SS_ERR_PENDING; the others are filled). */
int ss_dispatch_run(ss_dispatch_t *d, const char *model, ss_infer_stats_t *acct,
                    const ss_infer_req_t *reqs, int n, ss_infer_res_t *res, char *err, size_t errsz);

/* Totals across all callers since open: requests and cache_hits of blocking calls,
 * calls/tokens of every request that reached a backend. */
void ss_dispatch_totals(ss_dispatch_t *d, ss_infer_stats_t *out);

/* ---- wait groups: what a non-blocking caller waits for ---- */
typedef struct ss_dispatch_wg ss_dispatch_wg_t;
int ss_dispatch_wg_new(ss_dispatch_t *d, ss_dispatch_wg_t **out, char *err, size_t errsz);
void ss_dispatch_wg_destroy(ss_dispatch_wg_t *wg); /* NULL-safe; unregisters it everywhere */
/* Binds the calling thread to wg (NULL: unbinds; the thread's calls block again). */
void ss_dispatch_bind(ss_dispatch_wg_t *wg);

typedef struct ss_dispatch_wg_status {
    int outstanding;     /* registered requests not answered yet */
    int completed;       /* registered requests answered since the last ss_dispatch_wg_rearm */
    int registered;      /* distinct requests registered since the last rearm */
    char model[64];      /* model of the request registered last ("" if none) */
} ss_dispatch_wg_status_t;
void ss_dispatch_wg_status(ss_dispatch_wg_t *wg, ss_dispatch_wg_status_t *out);
/* Waits until no registered request is outstanding, or at least want_completed have
 * completed since the last rearm, or timeout_ms passes (< 0: no limit). */
void ss_dispatch_wg_wait(ss_dispatch_wg_t *wg, int want_completed, int timeout_ms);
/* Starts counting completions afresh (before a new attempt). Outstanding requests stay. */
void ss_dispatch_wg_rearm(ss_dispatch_wg_t *wg);
/* Forgets which answers this wait group paid for (after its caller committed): later
 * reads of them count as cache hits, not calls. */
void ss_dispatch_wg_forget(ss_dispatch_wg_t *wg);
/* Wakes every waiter of wg (e.g. to stop it); the wait returns at once. */
void ss_dispatch_wg_wake(ss_dispatch_wg_t *wg);

/* Requests queued or in a backend now, over every model. */
int ss_dispatch_in_flight(ss_dispatch_t *d);
/* Wall time since open with at least one request in a backend call (any model): how
 * busy the dispatcher keeps its backends; *request_ns (may be NULL) gets the sum over
 * requests of their time in a backend call (divided by the wall time: the mean number
 * of requests in flight). */
int64_t ss_dispatch_busy_ns(ss_dispatch_t *d, int64_t *request_ns);

/* ---- model status ---- */
#define SS_DISPATCH_LAT_NB 14 /* latency histogram buckets, the last one +Inf */
extern const double ss_dispatch_lat_bounds[SS_DISPATCH_LAT_NB];
typedef struct ss_dispatch_model_status {
    int capacity;            /* max requests in the backend at once */
    int inflight;            /* requests in backend calls now */
    int queued;              /* requests waiting for a worker (including backoff) */
    int failing;             /* 1 while the last attempt failed */
    int64_t failing_since_ms;/* wall clock (ms since the epoch) of the first failure in a row */
    int64_t next_retry_ms;   /* wall clock of the next retry, 0 if none is scheduled */
    char last_error[256];    /* the last failure's message */
    int last_code;           /* and its ss_err_t (SS_ERR_MODEL: the model cannot load or answer this) */
    int64_t calls, failures; /* requests answered / attempts failed since open */
    int64_t busy_ns;         /* wall time with at least one request in the backend, since open */
    /* latency of backend calls (each carries up to max_batch requests), for /metrics:
     * lat_le[i] calls took at most ss_dispatch_lat_bounds[i] seconds (cumulative counts) */
    int64_t lat_le[SS_DISPATCH_LAT_NB];
    int64_t lat_count;       /* backend calls timed */
    double lat_sum_s;        /* their total duration */
} ss_dispatch_model_status_t;
/* SS_ERR_NOTFOUND if no such model (NULL = default). */
int ss_dispatch_model_status(ss_dispatch_t *d, const char *name, ss_dispatch_model_status_t *out);
/* Reports a failure of the model found outside a request (its file cannot be loaded at
 * start, say): its status says failing since now, with msg, until a request succeeds.
 * SS_ERR_NOTFOUND if no such model. */
int ss_dispatch_model_failed(ss_dispatch_t *d, const char *name, const char *msg);
/* The registered models, in registration order: count, and the name of model i (valid while
 * the dispatcher is open; NULL past the end). */
int ss_dispatch_model_count(ss_dispatch_t *d);
const char *ss_dispatch_model_name(ss_dispatch_t *d, int i);

#endif
