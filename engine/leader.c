/*
 * leader.c — which process runs the views of a state database.
 *
 * Several processes may open the same --db (a `run`, a `shell` next to it, a
 * `serve`): exactly one of them runs the views, the one that holds an exclusive
 * lock on "<db>.lock" (flock, released by the kernel when the process dies, so a
 * crash never leaves it held). The others are readers: they append to streams
 * (INSERT, DELETE, --load go to the transport, which takes writers from any
 * process), read view tables (SELECT sees what the leader committed), and
 * report each view's lag as what its sources' topics hold past the positions the
 * leader committed. A reader refuses statements that change the views (CREATE,
 * DROP), saying which process runs them; it re-reads the catalog before each
 * statement, so it sees the views the leader creates; and it takes over when the
 * leader goes away (checked before each statement and while it waits).
 */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* Tries to become the leader: 1 if this process now holds the lock, else 0 (and
 * e->leader_pid says who holds it, when it wrote its pid). */
static int try_lock(ss_engine_t *e)
{
    if (e->lock_fd < 0) {
        char *path = ss_sprintf("%s.lock", e->db_path);
        e->lock_fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
        free(path);
        if (e->lock_fd < 0)
            return 1; /* no lock file can be made (read-only place): behave as before, alone */
    }
    if (flock(e->lock_fd, LOCK_EX | LOCK_NB) == 0) {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(e->lock_fd, 0) == 0 && pwrite(e->lock_fd, pid, (size_t)n, 0) == n)
            fsync(e->lock_fd);
        return 1;
    }
    char buf[32] = "";
    ssize_t n = pread(e->lock_fd, buf, sizeof buf - 1, 0);
    e->leader_pid = n > 0 ? atol(buf) : 0;
    return 0;
}

int eng_leader_open(ss_engine_t *e, int run_views)
{
    e->lock_fd = -1;
    if (!run_views) {
        e->reader = 1;
        return SS_OK;
    }
    e->reader = !try_lock(e);
    if (e->reader)
        ss_log(SS_LOG_INFO, "engine", "process %ld runs the views of %s; this one reads them and writes to streams",
               e->leader_pid, e->db_path);
    return SS_OK;
}

void eng_leader_close(ss_engine_t *e)
{
    if (e->lock_fd >= 0)
        close(e->lock_fd); /* releases the lock */
    e->lock_fd = -1;
}

/* A reader whose leader has gone becomes the leader: its views start here. */
int eng_leader_check(ss_engine_t *e, char *err, size_t errsz)
{
    if (!e->reader || !e->may_lead || !try_lock(e))
        return SS_OK;
    e->reader = 0;
    ss_log(SS_LOG_INFO, "engine", "the process that ran the views of %s is gone: this one runs them now",
           e->db_path);
    int rc = eng_catalog_reload(e, err, errsz);
    if (!rc && ss_catalog_nviews(e->cat) > 0 && eng_rebuild(e, err, errsz))
        ss_log(SS_LOG_ERROR, "engine", "starting the views: %s", err);
    return rc;
}

int eng_catalog_reload(ss_engine_t *e, char *err, size_t errsz)
{
    ss_catalog_t *c = NULL;
    int rc = ss_catalog_open(ss_store_db(e->store), &c, err, errsz);
    if (rc)
        return rc;
    ss_catalog_close(e->cat);
    e->cat = c;
    if (!e->reader)
        return SS_OK;
    ss_plan_free(e->plan); /* a reader's plan: schemas and sources for SELECT and lag, no pipelines */
    e->plan = NULL;
    if (ss_catalog_nviews(c) > 0 && ss_plan_build(c, &e->plan, err, errsz)) {
        ss_log(SS_LOG_WARN, "engine", "planning the views: %s", err);
        e->plan = NULL;
    }
    return SS_OK;
}

int eng_reader_refuse(ss_engine_t *e, const char *what, char *err, size_t errsz)
{
    if (!e->reader)
        return SS_OK;
    return ss_seterr(err, errsz, SS_ERR_BUSY, "%s: process %ld runs the views of %s; change them there (this "
                     "process only reads views and writes to streams)", what, e->leader_pid, e->db_path);
}

/* Messages the leader has not applied yet for SOURCE node i: the topic's end minus
 * the committed positions (-1 if the transport cannot tell now). */
static int64_t source_lag(ss_engine_t *e, int i)
{
    const ss_plan_node_t *n = e->plan->nodes[i];
    char key[256], err[SS_ERRSZ];
    eng_source_key(n, key, sizeof key);
    ss_offset_t *offs = NULL;
    int noffs = 0;
    if (ss_store_get_offsets(e->store, key, &offs, &noffs, err, sizeof err))
        return -1;
    ss_source_opts_t o = {0};
    o.transport = e->transport;
    o.stream = n->label;
    o.topic = ss_plan_opt(n, "topic") ? ss_plan_opt(n, "topic") : n->label;
    o.schema = n->schema;
    ss_source_t *src = NULL;
    int64_t lag = -1;
    if (ss_source_open(&o, offs, noffs, &src, err, sizeof err) == SS_OK && ss_source_lag(src, &lag, err, sizeof err))
        lag = -1;
    ss_source_close(src);
    free(offs);
    return lag;
}

int64_t eng_reader_lag(ss_engine_t *e, const char *view)
{
    if (!e->plan)
        return -1;
    int64_t lag = 0;
    for (int i = 0; i < e->plan->n; i++) {
        const ss_plan_node_t *n = e->plan->nodes[i];
        if (n->kind != SS_PN_SOURCE || (view && (!n->view || !ss_strcaseeq(n->view, view))))
            continue;
        int64_t l = source_lag(e, i);
        if (l < 0)
            return -1;
        lag += l;
    }
    return lag;
}
