/*
 * check_it_access.c — access control and hardening of `semstream serve`, each test
 * reproducing an attack of issue 18 first:
 *   - listeners bind 127.0.0.1 by default (checked in /proc/net/tcp); --listen beyond
 *     loopback without a token refuses to start;
 *   - with tokens: HTTP without one is 401 (logged), pgwire with a wrong password is
 *     28P01, the read-only role may SELECT/SUBSCRIBE but not DROP/INSERT (403 / 42501);
 *   - CREATE MODEL cannot send a server secret anywhere (api_key_env outside the
 *     allow-list, or to a URL outside the allowed prefix) and a listener standing in
 *     for the attacker receives nothing; path='/etc/shadow' is refused without a
 *     byte of the file in the message;
 *   - SELECT reads views only: internal tables, SQLite functions and pragmas refused;
 *   - the statement time limit ends a huge cross join while /healthz answers;
 *   - a 100 MB body is refused before it is read (413), an unannounced one closes
 *     its connection, a 100 MB pgwire message is refused; slow and idle clients are
 *     timed out, connections are bounded per client address, and another client is
 *     served meanwhile;
 *   - Accept: application/json answers JSON, /metrics is Prometheus text.
 */
#include "serve_fixture.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    ss_buf_append(ud, p, sz * n);
    return sz * n;
}

/* An HTTP request; returns the status (0 when nothing answered). */
static long http_req(int port, const char *path, const char *body, const char *token, const char *accept,
                     ss_buf_t *out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    ss_buf_reset(out);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char hdr[256];
    if (token) {
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, hdr);
    }
    if (accept) {
        snprintf(hdr, sizeof hdr, "Accept: %s", accept);
        h = curl_slist_append(h, hdr);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

static PGconn *pg_try(int port, const char *password)
{
    char ci[512];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=someone dbname=semstream connect_timeout=20%s%s", port,
             password ? " password=" : "", password ? password : "");
    return PQconnectdb(ci);
}

static const char *state_of(PGresult *r)
{
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return s ? s : "";
}

/* A TCP connection to 127.0.0.1:port from the given local address (NULL: any). */
static int tcp_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (src) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        inet_pton(AF_INET, src, &a.sin_addr);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 when the peer closed fd within ms (EOF or reset after any bytes it sent). */
static int closed_within(int fd, int ms)
{
    int64_t end = ss_now_ns() + (int64_t)ms * 1000000;
    char buf[4096];
    while (ss_now_ns() < end) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            return 1;
    }
    return 0;
}

/* The local address a listening port is bound to, from /proc/net/tcp (hex, e.g. 0100007F). */
static void bound_address(int port, char *out, size_t n)
{
    snprintf(out, n, "none");
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char local[64];
        unsigned p, st;
        if (sscanf(line, " %*d: %63[0-9A-F]:%x %*s %x", local, &p, &st) == 3 && (int)p == port && st == 0x0A)
            snprintf(out, n, "%s", local);
    }
    fclose(f);
}

START_TEST(test_loopback_by_default)
{
    sv_t s;
    sv_start(&s, NULL);
    char a[64];
    bound_address(s.http_port, a, sizeof a);
    ck_assert_str_eq(a, "0100007F");
    bound_address(s.pg_port, a, sizeof a);
    ck_assert_str_eq(a, "0100007F");
    char *log = sv_log(&s);
    ck_assert_ptr_nonnull(strstr(log, "http://127.0.0.1:"));
    ck_assert_ptr_nonnull(strstr(log, "PostgreSQL protocol on 127.0.0.1:"));
    free(log);
    sv_stop(&s);

    /* beyond loopback without a token: refused at start */
    const char *args[] = {"--listen", "0.0.0.0", NULL};
    sv_start_in(&s, NULL, args, 0);
    int st = sv_wait(s.pid, 20000);
    log = sv_log(&s);
    ck_assert_msg(st == 2 && strstr(log, "--listen 0.0.0.0 reaches beyond this machine: give --auth-token-file"),
                  "status %d:\n%s", st, log);
    free(log);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s.dir);
    ck_assert_int_eq(system(cmd), 0);
    free(s.dir);
}
END_TEST

START_TEST(test_tokens_and_roles)
{
    char *dir = tu_tmpdir();
    char *rw = sv_file(dir, "rw.token", "write-secret-1\n"), *ro = sv_file(dir, "ro.token", "read-secret-2\n");
    const char *args[] = {"--listen", "0.0.0.0", "--auth-token-file", rw, "--read-only-token-file", ro, NULL};
    sv_t s;
    sv_start_in(&s, dir, args, 1);
    char a[64];
    bound_address(s.http_port, a, sizeof a);
    ck_assert_str_eq(a, "00000000");
    ss_buf_t b = SS_BUF_INIT;
    const char *setup = "CREATE STREAM ev (id INT KEY, v INT) WITH (topic='ev', format='json');"
                        "CREATE CONTINUOUS VIEW big AS SELECT id, v FROM ev WHERE v > 15;"
                        "INSERT INTO ev VALUES (1, 10), (2, 20);";
    /* HTTP: no token, a wrong one, the read-only one, the read-write one */
    ck_assert_int_eq(http_req(s.http_port, "/sql", setup, NULL, NULL, &b), 401);
    ck_assert_int_eq(http_req(s.http_port, "/sql", setup, "nope", NULL, &b), 401);
    ck_assert_int_eq(http_req(s.http_port, "/views", NULL, NULL, NULL, &b), 401);
    ck_assert_int_eq(http_req(s.http_port, "/metrics", NULL, NULL, NULL, &b), 401);
    ck_assert_int_eq(http_req(s.http_port, "/healthz", NULL, NULL, NULL, &b), 200);
    ck_assert_int_eq(http_req(s.http_port, "/sql", setup, "read-secret-2", NULL, &b), 403);
    ck_assert_msg(strstr(ss_buf_cstr(&b), "permission denied"), "%s", ss_buf_cstr(&b));
    ck_assert_int_eq(http_req(s.http_port, "/sql", setup, "write-secret-1", NULL, &b), 200);
    long code = http_req(s.http_port, "/sql", "SELECT id, v FROM big;", "read-secret-2", NULL, &b);
    ck_assert_msg(code == 200 && strstr(ss_buf_cstr(&b), " 2  | 20"), "%ld %s", code, ss_buf_cstr(&b));
    ck_assert_int_eq(http_req(s.http_port, "/sql", "DROP VIEW big;", "read-secret-2", NULL, &b), 403);

    /* pgwire: no password, a wrong one, the read-only one, the read-write one */
    PGconn *c = pg_try(s.pg_port, NULL);
    ck_assert_int_ne(PQstatus(c), CONNECTION_OK);
    PQfinish(c);
    c = pg_try(s.pg_port, "guess");
    ck_assert_int_ne(PQstatus(c), CONNECTION_OK);
    ck_assert_msg(strstr(PQerrorMessage(c), "password authentication failed"), "%s", PQerrorMessage(c));
    PQfinish(c);
    c = pg_try(s.pg_port, "read-secret-2");
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SELECT count(*) FROM big");
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    r = PQexec(c, "DROP VIEW big");
    ck_assert_str_eq(state_of(r), "42501");
    PQclear(r);
    r = PQexec(c, "INSERT INTO ev VALUES (3, 30)");
    ck_assert_str_eq(state_of(r), "42501");
    PQclear(r);
    r = PQexec(c, "DECLARE c CURSOR FOR SUBSCRIBE big"); /* reading is allowed */
    ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    c = pg_try(s.pg_port, "write-secret-1");
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    r = PQexec(c, "DROP VIEW big");
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    char *log = sv_log(&s);
    ck_assert_msg(strstr(log, "refused POST /sql from 127.0.0.1: missing or wrong bearer token") &&
                      strstr(log, "authentication of user \"someone\" failed") &&
                      strstr(log, "refused for the read-only role"),
                  "%s", log);
    ck_assert_msg(!strstr(log, "write-secret-1") && !strstr(log, "read-secret-2"), "a token reached the log:\n%s",
                  log);
    free(log);
    ss_buf_free(&b);
    free(rw);
    free(ro);
    sv_stop(&s);
    free(dir);
}
END_TEST

/* A listener standing in for the attacker's server: counts connections. */
typedef struct trap {
    int fd, port;
    volatile int hits, stop;
    pthread_t th;
} trap_t;

static void *trap_main(void *arg)
{
    trap_t *t = arg;
    while (!t->stop) {
        struct pollfd pf = {t->fd, POLLIN, 0};
        if (poll(&pf, 1, 100) > 0) {
            int c = accept(t->fd, NULL, NULL);
            if (c >= 0) {
                t->hits++;
                close(c);
            }
        }
    }
    return NULL;
}

static void trap_start(trap_t *t)
{
    memset(t, 0, sizeof *t);
    t->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(t->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t n = sizeof a;
    getsockname(t->fd, (struct sockaddr *)&a, &n);
    t->port = ntohs(a.sin_port);
    listen(t->fd, 16);
    pthread_create(&t->th, NULL, trap_main, t);
}

START_TEST(test_model_secrets_and_files)
{
    setenv("SOME_SECRET", "hunter2-server-secret", 1);
    setenv("OPENAI_KEY_OK", "allowed-key", 1);
    char *dir = tu_tmpdir();
    char models[1100];
    snprintf(models, sizeof models, "%s/models", dir);
    ck_assert_int_eq(mkdir(models, 0755), 0);
    const char *args[] = {"--allow-key-env", "OPENAI_KEY_OK=https://api.example.com/", "--models-dir", models, NULL};
    sv_t s;
    sv_start_in(&s, dir, args, 1);
    trap_t t;
    trap_start(&t);
    ss_buf_t b = SS_BUF_INIT;
    char sql[512];
    /* the attack: a client's CREATE MODEL names a server secret and its own URL */
    snprintf(sql, sizeof sql, "CREATE MODEL m WITH (backend='openai', url='http://127.0.0.1:%d', "
             "api_key_env='SOME_SECRET');", t.port);
    ck_assert_int_eq(http_req(s.http_port, "/sql", sql, NULL, NULL, &b), 403);
    ck_assert_msg(strstr(ss_buf_cstr(&b), "api_key_env SOME_SECRET is not allowed by this server"), "%s",
                  ss_buf_cstr(&b));
    /* an allowed variable, but to a URL outside its prefix */
    snprintf(sql, sizeof sql, "CREATE MODEL m2 WITH (backend='openai', url='http://127.0.0.1:%d', "
             "api_key_env='OPENAI_KEY_OK');", t.port);
    ck_assert_int_eq(http_req(s.http_port, "/sql", sql, NULL, NULL, &b), 403);
    ck_assert_msg(strstr(ss_buf_cstr(&b), "may only be sent to URLs starting with https://api.example.com/"), "%s",
                  ss_buf_cstr(&b));
    /* neither was kept, and a view cannot use them */
    ck_assert_int_eq(http_req(s.http_port, "/sql", "SHOW MODELS;", NULL, NULL, &b), 200);
    ck_assert_msg(!strstr(ss_buf_cstr(&b), " m ") && !strstr(ss_buf_cstr(&b), "m2"), "%s", ss_buf_cstr(&b));
    /* files: outside the models directory, refused without reading a byte */
    ck_assert_int_eq(http_req(s.http_port, "/sql", "CREATE MODEL f WITH (backend='local', path='/etc/shadow');",
                              NULL, NULL, &b), 403);
    ck_assert_msg(strstr(ss_buf_cstr(&b), "is not a file in the models directory") &&
                      !strstr(ss_buf_cstr(&b), "root") && !strstr(ss_buf_cstr(&b), "0x"),
                  "%s", ss_buf_cstr(&b));
    ck_assert_int_eq(http_req(s.http_port, "/sql", "CREATE MODEL f WITH (backend='local', path='../../etc/passwd');",
                              NULL, NULL, &b), 403);
    sv_sleep_ms(300);
    ck_assert_int_eq(t.hits, 0);
    t.stop = 1;
    pthread_join(t.th, NULL);
    close(t.fd);
    ss_buf_free(&b);
    sv_stop(&s);
    free(dir);
    unsetenv("SOME_SECRET");
    unsetenv("OPENAI_KEY_OK");
}
END_TEST

START_TEST(test_select_reads_views_only)
{
    const char *args[] = {"--statement-timeout-ms", "700", NULL};
    sv_t s;
    sv_start(&s, args);
    ss_buf_t b = SS_BUF_INIT;
    ck_assert_int_eq(http_req(s.http_port, "/sql", "CREATE STREAM ev (id INT KEY, v INT) WITH (topic='ev');"
                              "CREATE MODEL m WITH (backend='local', path='stories260K.gguf');"
                              "CREATE CONTINUOUS VIEW big AS SELECT id, v FROM ev;"
                              "INSERT INTO ev VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8);",
                              NULL, NULL, &b), 200);
    static const char *const attacks[] = {
        "SELECT * FROM ss_models;",
        "SELECT * FROM ss_catalog;",
        "SELECT * FROM sqlite_master;",
        "SELECT * FROM view_big;",
        "SELECT sqlite_version() FROM big;",
        "SELECT load_extension('x') FROM big;",
        "SELECT randomblob(1000000000) FROM big;",
        "SELECT (SELECT group_concat(sql) FROM sqlite_master) FROM big;",
        "SELECT * FROM pragma_table_info('ss_models');",
        "SELECT id FROM big WHERE id IN (SELECT seq FROM ss_models);",
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(attacks); i++) {
        long code = http_req(s.http_port, "/sql", attacks[i], NULL, NULL, &b);
        ck_assert_msg(code == 400 || code == 403, "%s answered %ld: %s", attacks[i], code, ss_buf_cstr(&b));
        ck_assert_msg(!strstr(ss_buf_cstr(&b), "CREATE MODEL") && !strstr(ss_buf_cstr(&b), "stories260K"),
                      "%s leaked: %s", attacks[i], ss_buf_cstr(&b));
    }
    /* the time limit: a 12-way cross join (8^12 rows) ends after 700 ms; /healthz answers meanwhile */
    typedef struct {
        int port;
        long code;
        int64_t ms;
        ss_buf_t b;
    } slow_t;
    slow_t q = {s.http_port, 0, 0, SS_BUF_INIT};
    int64_t t0 = ss_now_ns();
    pid_t kid = fork(); /* the long request in a child: libcurl in two threads needs no setup here */
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        ss_buf_t kb = SS_BUF_INIT;
        long c = http_req(q.port, "/sql", "SELECT count(*) FROM big a, big b, big c, big d, big e, big f, big g, "
                                          "big h, big i, big j, big k, big l;", NULL, NULL, &kb);
        _exit(c == 400 && strstr(ss_buf_cstr(&kb), "statement timeout") ? 0 : 1);
    }
    for (int i = 0; i < 5; i++) {
        int64_t h0 = ss_now_ns();
        ck_assert_int_eq(http_req(s.http_port, "/healthz", NULL, NULL, NULL, &b), 200);
        ck_assert_msg(ss_now_ns() - h0 < 500000000LL, "/healthz took %.2f s", (ss_now_ns() - h0) / 1e9);
        sv_sleep_ms(50);
    }
    int st = sv_wait(kid, 20000);
    q.ms = (ss_now_ns() - t0) / 1000000;
    ck_assert_msg(st == 0, "the cross join was not stopped by the time limit (%d)", st);
    ck_assert_msg(q.ms < 8000, "the time limit took %lld ms", (long long)q.ms);
    ss_buf_free(&q.b);
    ss_buf_free(&b);
    sv_stop(&s);
}
END_TEST

START_TEST(test_big_bodies_slow_and_idle_clients)
{
    char *dir = tu_tmpdir();
    char *rw = sv_file(dir, "rw.token", "tok\n");
    const char *args[] = {"--listen", "0.0.0.0", "--auth-token-file", rw, "--idle-timeout", "2", "--io-timeout", "2",
                          "--max-client-connections", "8", NULL};
    sv_t s;
    sv_start_in(&s, dir, args, 1);
    ss_buf_t b = SS_BUF_INIT;

    /* a 100 MB body announced: 413 at once, without reading it */
    int fd = tcp_from(NULL, s.http_port);
    char req[512];
    snprintf(req, sizeof req, "POST /sql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n"
                              "Content-Length: 104857600\r\n\r\n");
    ck_assert_int_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    char got[1024] = "";
    struct pollfd pf = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&pf, 1, 5000), 1);
    ssize_t n = recv(fd, got, sizeof got - 1, 0);
    ck_assert_msg(n > 0 && strstr(got, " 413 "), "%s", got);
    close(fd);
    /* a body that grows past the limit without a length: the connection is closed */
    fd = tcp_from(NULL, s.http_port);
    snprintf(req, sizeof req, "POST /sql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n");
    send(fd, req, strlen(req), 0);
    static char chunk[65536 + 32];
    int hl = snprintf(chunk, 32, "10000\r\n");
    memset(chunk + hl, 'x', 65536);
    memcpy(chunk + hl + 65536, "\r\n", 2);
    int sent_mb = 0, closed = 0;
    for (int i = 0; i < 1600 && !closed; i++) { /* up to 100 MB */
        if (send(fd, chunk, (size_t)hl + 65538, MSG_NOSIGNAL) < 0)
            closed = 1;
        sent_mb = i / 16;
    }
    ck_assert_msg(closed || closed_within(fd, 3000), "a 100 MB chunked body was read to its end");
    ck_assert_msg(sent_mb < 50, "the server read %d MB before closing", sent_mb);
    close(fd);
    /* pgwire: a 100 MB message is refused */
    fd = tcp_from(NULL, s.pg_port);
    unsigned char startup[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}; /* SSLRequest, to get a reply first */
    send(fd, startup, sizeof startup, 0);
    ck_assert_int_eq(recv(fd, got, 1, 0), 1);
    ck_assert_int_eq(got[0], 'N');
    unsigned char huge[] = {0x06, 0x40, 0x00, 0x00}; /* a startup packet claiming 100 MB */
    send(fd, huge, sizeof huge, 0);
    ck_assert(closed_within(fd, 3000));
    close(fd);

    /* a slow client (a byte a second) is dropped after the io timeout; another is served meanwhile */
    int slow = tcp_from(NULL, s.pg_port);
    unsigned char part[] = {0, 0, 0, 40};
    send(slow, part, 2, 0);
    int64_t t0 = ss_now_ns();
    PGconn *c = pg_try(s.pg_port, "tok");
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PQfinish(c);
    ck_assert_int_eq(http_req(s.http_port, "/healthz", NULL, NULL, NULL, &b), 200);
    int dropped = 0;
    for (int i = 0; i < 8 && !dropped; i++) {
        if (send(slow, part + 2, 1, MSG_NOSIGNAL) < 0)
            dropped = 1;
        dropped = dropped || closed_within(slow, 1000);
    }
    ck_assert_msg(dropped, "a slow pgwire client was never dropped");
    ck_assert_msg(ss_now_ns() - t0 < 7000000000LL, "dropping the slow client took %.1f s", (ss_now_ns() - t0) / 1e9);
    close(slow);

    /* idle sockets: at most 8 from one address; another address is served; idle ones time out */
    int idle[12], nidle = 0;
    for (int i = 0; i < 12; i++)
        if ((idle[nidle] = tcp_from("127.0.0.1", s.http_port)) >= 0)
            nidle++;
    sv_sleep_ms(200);
    int refused = 0;
    for (int i = 0; i < nidle; i++)
        refused += closed_within(idle[i], 50);
    ck_assert_msg(refused >= 3, "only %d of 12 connections from one address were refused (limit 8)", refused);
    int other = tcp_from("127.0.0.2", s.http_port); /* another client address */
    ck_assert_int_ge(other, 0);
    const char get[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    send(other, get, sizeof get - 1, 0);
    pf = (struct pollfd){other, POLLIN, 0};
    ck_assert_int_eq(poll(&pf, 1, 3000), 1);
    n = recv(other, got, sizeof got - 1, 0);
    got[n > 0 ? n : 0] = 0;
    ck_assert_msg(strstr(got, " 200 "), "%s", got);
    close(other);
    int gone = 0;
    for (int i = 0; i < nidle; i++) {
        gone += closed_within(idle[i], 4000);
        close(idle[i]);
    }
    ck_assert_int_eq(gone, nidle);
    ck_assert_int_eq(http_req(s.http_port, "/healthz", NULL, NULL, NULL, &b), 200);

    /* JSON answers and metrics */
    long code = http_req(s.http_port, "/sql", "CREATE STREAM ev (id INT KEY, v REAL, ok BOOLEAN) WITH (topic='ev');"
                         "CREATE CONTINUOUS VIEW w AS SELECT id, v, ok FROM ev; INSERT INTO ev VALUES (1, 0.5, true);"
                         "SELECT id, v, ok FROM w;", "tok", "application/json", &b);
    ck_assert_msg(code == 200 && strstr(ss_buf_cstr(&b), "{\"tag\":\"CREATE STREAM\"}") &&
                      strstr(ss_buf_cstr(&b), "\"columns\":[{\"name\":\"id\",\"type\":\"bigint\"},{\"name\":\"v\","
                                              "\"type\":\"double precision\"},{\"name\":\"ok\",\"type\":\"boolean\"}],"
                                              "\"rows\":[[1,0.5,true]],\"tag\":\"SELECT 1\""),
                  "%ld %s", code, ss_buf_cstr(&b));
    code = http_req(s.http_port, "/sql", "SELECT nope FROM w;", "tok", "application/json", &b);
    ck_assert_msg(code == 400 && strstr(ss_buf_cstr(&b), "\"sqlstate\":\"42703\",\"line\":1,\"col\":8"), "%ld %s",
                  code, ss_buf_cstr(&b));
    code = http_req(s.http_port, "/metrics", NULL, "tok", NULL, &b);
    ck_assert_msg(code == 200 && strstr(ss_buf_cstr(&b), "semstream_view_rows{view=\"w\"} 1") &&
                      strstr(ss_buf_cstr(&b), "semstream_view_state{view=\"w\",state=\"running\"} 1") &&
                      strstr(ss_buf_cstr(&b), "# TYPE semstream_model_call_duration_seconds histogram") &&
                      strstr(ss_buf_cstr(&b), "semstream_http_unauthorized_total") &&
                      strstr(ss_buf_cstr(&b), "semstream_pg_timeouts_total"),
                  "%ld %s", code, ss_buf_cstr(&b));
    ss_buf_free(&b);
    free(rw);
    sv_stop(&s);
    free(dir);
}
END_TEST

Suite *check_it_access_suite(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("it_access");
    TCase *tc = tcase_create("access");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_loopback_by_default);
    tcase_add_test(tc, test_tokens_and_roles);
    tcase_add_test(tc, test_model_secrets_and_files);
    tcase_add_test(tc, test_select_reads_views_only);
    tcase_add_test(tc, test_big_bodies_slow_and_idle_clients);
    suite_add_tcase(s, tc);
    return s;
}
