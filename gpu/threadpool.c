/*
 * threadpool.c — the engine's worker threads (pthreads). pool_run() splits a job
 * into chunks that participants claim from a shared counter; the caller claims
 * chunks too and returns as soon as every claimed chunk is done. A worker that is
 * slow to wake (a shared, oversubscribed machine) simply finds no work left,
 * instead of stalling everyone at a barrier the way a fork/join region does.
 *
 * The claim counter carries the job's generation in its high 32 bits, so a late
 * worker can never take a chunk of a newer job with an older job's function.
 */
#include "llm_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define POOL_MAX 256

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nworkers;
    uint32_t gen;
    pool_fn fn;
    void *ctx;
    int nchunks, limit;
    _Atomic uint64_t ticket; /* gen << 32 | next chunk */
    _Atomic int done;
    pthread_mutex_t run_mu;  /* one job at a time */
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL, NULL, 0, 0, 0, 0,
       PTHREAD_MUTEX_INITIALIZER};

static void work(uint32_t gen, pool_fn fn, void *ctx, int n, int tid)
{
    for (;;) {
        uint64_t t = atomic_load(&P.ticket);
        if ((uint32_t)(t >> 32) != gen || (int)(t & 0xffffffffu) >= n)
            return;
        if (!atomic_compare_exchange_weak(&P.ticket, &t, t + 1))
            continue;
        fn(ctx, (int)(t & 0xffffffffu), tid);
        atomic_fetch_add(&P.done, 1);
    }
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg; /* participant index = id + 1 */
    uint32_t seen = 0;
    pthread_mutex_lock(&P.mu);
    for (;;) {
        while (P.gen == seen)
            pthread_cond_wait(&P.cv, &P.mu);
        seen = P.gen;
        if (id + 1 >= P.limit)
            continue;
        pool_fn fn = P.fn;
        void *ctx = P.ctx;
        int n = P.nchunks;
        pthread_mutex_unlock(&P.mu);
        work(seen, fn, ctx, n, id + 1);
        pthread_mutex_lock(&P.mu);
    }
    return NULL;
}

static void grow(int want)
{
    want = SS_MIN(want, POOL_MAX);
    pthread_mutex_lock(&P.mu);
    while (P.nworkers < want) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &a, worker, (void *)(intptr_t)P.nworkers);
        pthread_attr_destroy(&a);
        if (rc)
            break; /* fewer helpers: the caller does the rest */
        P.nworkers++;
    }
    pthread_mutex_unlock(&P.mu);
}

void pool_run(int threads, int nchunks, pool_fn fn, void *ctx)
{
    if (nchunks <= 0)
        return;
    if (threads <= 1 || nchunks == 1) {
        for (int c = 0; c < nchunks; c++)
            fn(ctx, c, 0);
        return;
    }
    threads = SS_MIN(threads, POOL_MAX + 1);
    if (P.nworkers < threads - 1)
        grow(threads - 1);
    pthread_mutex_lock(&P.run_mu);
    pthread_mutex_lock(&P.mu);
    uint32_t gen = ++P.gen;
    if (gen == 0) /* workers start with seen = 0 */
        gen = ++P.gen;
    P.fn = fn;
    P.ctx = ctx;
    P.nchunks = nchunks;
    P.limit = threads;
    atomic_store(&P.done, 0);
    atomic_store(&P.ticket, (uint64_t)gen << 32);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    work(gen, fn, ctx, nchunks, 0);
    while (atomic_load(&P.done) < nchunks)
        sched_yield(); /* only chunks already running elsewhere remain */
    pthread_mutex_unlock(&P.run_mu);
}
