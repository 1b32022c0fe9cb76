/*
 * pgwire_server.c — the PostgreSQL listener of `semstream serve --pg-port`
 * (pgwire.h): binds the given address (127.0.0.1 unless --listen says
 * otherwise), accepts in a thread of its own and serves each connection in a
 * thread (pgwire.c). Bounded: at most max_connections sessions at once and
 * max_per_client from one address (more are refused with 53300, as PostgreSQL
 * does when full); sessions time out when idle or slow (pgwire.c). Passwords are
 * kept only as SCRAM verifiers derived at start with a random salt. Cancel
 * requests find their session by (pid, secret key) and set its cancel flag.
 */
#include "pgwire_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
    struct pg_server *srv;
    pg_session_env_t env;
    int fd;
    char peer[64];
    char addr[INET6_ADDRSTRLEN];
    pthread_t th;
    int done;                    /* the session ended (under srv->mu) */
    struct conn *next;
} conn_t;

typedef struct cancel_ent {
    int32_t pid, key;
    volatile sig_atomic_t *flag;
} cancel_ent_t;

struct pg_server {
    pg_server_opts_t o;
    int lfd;
    pthread_t th;
    int started;
    volatile sig_atomic_t stopping;
    pg_scram_key_t keys[2];      /* [0] read-write, [1] read-only */
    uint8_t salt[16];
    int auth_required;
    pthread_mutex_t mu;          /* guards conns, cancels, stats, next_pid */
    conn_t *conns;
    cancel_ent_t *cancels;
    int ncancels, capcancels;
    int32_t next_pid;
    pg_server_stats_t stats;
};

static void reg_cancel(void *server, int32_t pid, int32_t key, volatile sig_atomic_t *flag)
{
    struct pg_server *s = server;
    pthread_mutex_lock(&s->mu);
    if (s->ncancels == s->capcancels) {
        int cap = s->capcancels * 2 + 16;
        cancel_ent_t *c = realloc(s->cancels, (size_t)cap * sizeof *c);
        if (c) {
            s->cancels = c;
            s->capcancels = cap;
        }
    }
    if (s->ncancels < s->capcancels)
        s->cancels[s->ncancels++] = (cancel_ent_t){pid, key, flag};
    pthread_mutex_unlock(&s->mu);
}

static void unreg_cancel(void *server, int32_t pid)
{
    struct pg_server *s = server;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->ncancels; i++)
        if (s->cancels[i].pid == pid) {
            s->cancels[i] = s->cancels[--s->ncancels];
            break;
        }
    pthread_mutex_unlock(&s->mu);
}

static int do_cancel(void *server, int32_t pid, int32_t key)
{
    struct pg_server *s = server;
    int hit = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->ncancels; i++)
        if (s->cancels[i].pid == pid && CRYPTO_memcmp(&s->cancels[i].key, &key, sizeof key) == 0) {
            *s->cancels[i].flag = 1;
            hit = 1;
        }
    pthread_mutex_unlock(&s->mu);
    if (!hit)
        ss_log(SS_LOG_INFO, "pgwire", "cancel request for unknown session %d ignored", (int)pid);
    return hit;
}

static void count(void *server, const char *what)
{
    struct pg_server *s = server;
    pthread_mutex_lock(&s->mu);
    if (!strcmp(what, "query"))
        s->stats.queries++;
    else if (!strcmp(what, "auth_failure"))
        s->stats.auth_failures++;
    else if (!strcmp(what, "canceled"))
        s->stats.canceled++;
    else if (!strcmp(what, "timeout"))
        s->stats.timeouts++;
    pthread_mutex_unlock(&s->mu);
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    pg_session_run(&c->env, c->fd, c->peer);
    pthread_mutex_lock(&c->srv->mu);
    int fd = c->fd;
    c->fd = -1; /* pg_server_stop never touches a descriptor number that may be reused */
    c->done = 1;
    c->srv->stats.open--;
    pthread_mutex_unlock(&c->srv->mu);
    shutdown(fd, SHUT_RDWR);
    close(fd);
    return NULL;
}

/* Joins and frees finished sessions (mu held). */
static void reap(struct pg_server *s)
{
    for (conn_t **pp = &s->conns; *pp;) {
        conn_t *c = *pp;
        if (!c->done) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        pthread_join(c->th, NULL);
        free(c);
    }
}

static void refuse(int fd, const char *sqlstate, const char *msg)
{
    ss_buf_t b = SS_BUF_INIT;
    size_t at;
    pg_msg_begin(&b, 'E', &at);
    ss_buf_putc(&b, 'S');
    pg_put_cstr(&b, "FATAL");
    ss_buf_putc(&b, 'V');
    pg_put_cstr(&b, "FATAL");
    ss_buf_putc(&b, 'C');
    pg_put_cstr(&b, sqlstate);
    ss_buf_putc(&b, 'M');
    pg_put_cstr(&b, msg);
    ss_buf_putc(&b, 0);
    pg_msg_end(&b, at);
    if (b.data && send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        (void)0; /* the client is gone: nothing to tell */
    ss_buf_free(&b);
    close(fd);
}

static void accept_one(struct pg_server *s, int fd, const struct sockaddr_storage *sa)
{
    char addr[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, addr, sizeof addr);
        port = ntohs(a->sin_port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof addr);
        port = ntohs(a->sin6_port);
    }
    pthread_mutex_lock(&s->mu);
    reap(s);
    int total = 0, same = 0;
    for (conn_t *c = s->conns; c; c = c->next) {
        total++;
        same += !strcmp(c->addr, addr);
    }
    s->stats.connections++;
    if (total >= s->o.max_connections || same >= s->o.max_per_client) {
        s->stats.refused++;
        pthread_mutex_unlock(&s->mu);
        ss_log(SS_LOG_WARN, "pgwire", "refused a connection from %s: %s", addr,
               total >= s->o.max_connections ? "the server is full" : "too many connections from this address");
        refuse(fd, "53300", total >= s->o.max_connections ? "sorry, too many clients already"
                                                          : "too many connections from your address");
        return;
    }
    conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        pthread_mutex_unlock(&s->mu);
        refuse(fd, "53200", "out of memory");
        return;
    }
    c->srv = s;
    c->fd = fd;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    snprintf(c->peer, sizeof c->peer, "%s:%d", addr, port);
    c->env = (pg_session_env_t){s->o.engine, s->keys, s->salt, s->auth_required, s->o.idle_timeout_s,
                                s->o.io_timeout_s, s->o.statement_timeout_ms, s->o.max_message, s->o.stop,
                                s, reg_cancel, unreg_cancel, do_cancel, count, ++s->next_pid};
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 2u << 20);
    int prc = pthread_create(&c->th, &at, conn_main, c);
    pthread_attr_destroy(&at);
    if (prc) {
        pthread_mutex_unlock(&s->mu);
        free(c);
        refuse(fd, "53000", "cannot start a session");
        return;
    }
    c->next = s->conns;
    s->conns = c;
    s->stats.open++;
    pthread_mutex_unlock(&s->mu);
}

static void *accept_main(void *arg)
{
    struct pg_server *s = arg;
    while (!s->stopping && !(s->o.stop && *s->o.stop)) {
        struct pollfd pf = {s->lfd, POLLIN, 0};
        if (poll(&pf, 1, 250) <= 0)
            continue;
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept(s->lfd, (struct sockaddr *)&sa, &sl);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                ss_log(SS_LOG_WARN, "pgwire", "out of file descriptors; not accepting for a moment");
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        accept_one(s, fd, &sa);
    }
    return NULL;
}

static int listen_on(struct pg_server *s, int *bound, char *err, size_t errsz)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->o.port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    const char *host = s->o.listen ? s->o.listen : "127.0.0.1";
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "--listen %s: %s", host, gai_strerror(gai));
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return ss_seterr(err, errsz, SS_ERR_IO, "cannot listen on %s port %d: %s", host, s->o.port, strerror(errno));
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *bound = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                            : ((struct sockaddr_in *)&sa)->sin_port);
    s->lfd = fd;
    return SS_OK;
}

int pg_server_start(const pg_server_opts_t *o, pg_server_t **out, int *bound_port, char *err, size_t errsz)
{
    *out = NULL;
    struct pg_server *s = calloc(1, sizeof *s);
    if (!s)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    s->o = *o;
    s->lfd = -1;
    s->next_pid = 1000;
    if (s->o.max_connections <= 0)
        s->o.max_connections = 256;
    if (s->o.max_per_client <= 0)
        s->o.max_per_client = 64;
    if (s->o.idle_timeout_s <= 0)
        s->o.idle_timeout_s = 600;
    if (s->o.io_timeout_s <= 0)
        s->o.io_timeout_s = 30;
    if (!s->o.max_message)
        s->o.max_message = 16u << 20;
    pthread_mutex_init(&s->mu, NULL);
    int rc = RAND_bytes(s->salt, sizeof s->salt) == 1 ? SS_OK
                                                       : ss_seterr(err, errsz, SS_ERR_INTERNAL, "no random bytes");
    if (!rc && o->rw_token)
        rc = pg_scram_derive(o->rw_token, s->salt, PG_SCRAM_ITERATIONS, &s->keys[0]);
    if (!rc && o->ro_token)
        rc = pg_scram_derive(o->ro_token, s->salt, PG_SCRAM_ITERATIONS, &s->keys[1]);
    s->auth_required = o->rw_token || o->ro_token;
    if (!rc)
        rc = listen_on(s, bound_port, err, errsz);
    if (!rc && pthread_create(&s->th, NULL, accept_main, s) != 0)
        rc = ss_seterr(err, errsz, SS_ERR_INTERNAL, "cannot start the pgwire listener");
    if (rc) {
        if (s->lfd >= 0)
            close(s->lfd);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return rc;
    }
    s->started = 1;
    *out = s;
    return SS_OK;
}

void pg_server_stop(pg_server_t *s)
{
    if (!s)
        return;
    s->stopping = 1;
    if (s->started)
        pthread_join(s->th, NULL);
    close(s->lfd);
    /* wake every session: its socket reads fail and it ends */
    pthread_mutex_lock(&s->mu);
    for (conn_t *c = s->conns; c; c = c->next)
        if (!c->done && c->fd >= 0) {
            shutdown(c->fd, SHUT_RDWR);
            for (int i = 0; i < s->ncancels; i++)
                *s->cancels[i].flag = 1;
        }
    pthread_mutex_unlock(&s->mu);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        conn_t *c = s->conns;
        if (c)
            s->conns = c->next;
        pthread_mutex_unlock(&s->mu);
        if (!c)
            break;
        pthread_join(c->th, NULL);
        free(c);
    }
    OPENSSL_cleanse(s->keys, sizeof s->keys);
    free(s->cancels);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void pg_server_get_stats(pg_server_t *s, pg_server_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}
