/*
 * ss_worker_cache.h — the durable answer store of `semstream worker`
 * (ss_worker_cache_t of gpu/ss_worker.h) on the persistent result cache
 * (ss_cache.h): one SQLite file, keyed by ss_infer_key(model identity, request),
 * every put committed and fsync'd before the worker sends the answer.
 */
#ifndef SS_WORKER_CACHE_H
#define SS_WORKER_CACHE_H

#include "ss_worker.h"

/* Opens (creating if needed) the cache at path; *out is freed by its close (ss_worker_stop
 * calls it). */
int ss_worker_cache_open(const char *path, ss_worker_cache_t **out, char *err, size_t errsz);

#endif
