/*
 * serve_int.h — what `semstream serve`'s files share:
 *   serve.c          options, access control set-up, the listeners' start and stop
 *   serve_http.c     the HTTP endpoint (libmicrohttpd): SQL as text or JSON,
 *                    SUBSCRIBE streams, /metrics, the console API, bearer tokens
 *   console.c        the web console's files, built into the binary
 *                    (the files of src/cli/console/, embedded at build time)
 */
#ifndef SS_SERVE_INT_H
#define SS_SERVE_INT_H

#include "pgwire.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct serve {
    ss_engine_t *e;
    size_t max_body;             /* largest POST body */
    char *rw_token, *ro_token;   /* owned; NULL = none */
    int auth_required;           /* a token is needed (any was given) */
    int statement_timeout_ms;
    volatile sig_atomic_t *stop;
    pg_server_t *pg;             /* NULL without --pg-port */
    pthread_mutex_t mu;          /* guards the counters */
    int64_t http_requests, http_unauthorized, http_denied;
    int64_t last_auth_log_ns;
} serve_t;

struct MHD_Daemon;
/* Starts the HTTP endpoint on addr:port (port 0 picks one; *bound gets it). */
int serve_http_start(serve_t *s, const char *addr, int port, int idle_timeout_s, int max_connections,
                     int max_per_client, struct MHD_Daemon **out, int *bound, char *err, size_t errsz);

/* console.c */
typedef struct ss_asset {
    const char *path;            /* "/console/app.js" */
    const char *mime;
    const unsigned char *data;
    size_t len;
} ss_asset_t;
const ss_asset_t *ss_console_asset(const char *path); /* NULL if none */

#endif
