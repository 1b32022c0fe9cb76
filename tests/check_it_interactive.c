/*
 * check_it_interactive.c — interactive robustness (issue 11, item 6), as a user
 * meets it: `semstream shell` driven through a pseudo-terminal (forkpty), where
 * Ctrl-C at the prompt clears the line (a partial, multi-line statement is
 * dropped, as in psql) and Ctrl-C during a statement cancels it (SUBSCRIBE, and a
 * SELECT waiting for a view whose model answers slowly), 20 times each, after
 * which INSERT and SELECT still work and \q exits 0; and `semstream serve`
 * answering /healthz and other statements while a SUBSCRIBE streams, the stream
 * carrying the changes they make.
 */
#include "ss_base.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIN SS_BINARY_DIR "/semstream"
#define FIXTURE SS_BINARY_DIR "/bench_fixture_slow_server"

/* ---- the shell on a pseudo-terminal ---- */

typedef struct term {
    pid_t pid;
    int fd;
    ss_buf_t seen; /* everything the shell printed, \r\n as it came */
    size_t mark;   /* expect() looks after this */
} term_t;

static void term_start(term_t *t, const char *dir)
{
    memset(t, 0, sizeof *t);
    struct winsize ws = {.ws_row = 40, .ws_col = 200};
    t->pid = forkpty(&t->fd, NULL, NULL, &ws);
    ck_assert_int_ge(t->pid, 0);
    if (t->pid == 0) {
        char db[1024];
        snprintf(db, sizeof db, "%s/st.db", dir);
        setenv("TERM", "dumb", 1);
        setenv("HOME", dir, 1); /* the history file goes there */
        execl(BIN, "semstream", "shell", "--db", db, (char *)NULL);
        _exit(127);
    }
}

/* Reads what the shell printed for up to ms. */
static void term_read(term_t *t, int ms)
{
    int64_t end = ss_now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        int left = (int)((end - ss_now_ns()) / 1000000);
        if (left <= 0)
            return;
        struct pollfd p = {t->fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0)
            return;
        char buf[4096];
        ssize_t n = read(t->fd, buf, sizeof buf);
        if (n <= 0)
            return;
        ss_buf_append(&t->seen, buf, (size_t)n);
    }
}

/* Waits up to ms for `what` to appear after the mark; moves the mark past it. */
static int term_expect(term_t *t, const char *what, int ms)
{
    int64_t end = ss_now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        const char *s = t->seen.len > t->mark ? strstr(ss_buf_cstr(&t->seen) + t->mark, what) : NULL;
        if (s) {
            t->mark = (size_t)(s - t->seen.data) + strlen(what);
            return 1;
        }
        if (ss_now_ns() >= end)
            return 0;
        term_read(t, 50);
    }
}

static void term_send(term_t *t, const char *s)
{
    ck_assert_int_eq(write(t->fd, s, strlen(s)), (ssize_t)strlen(s));
}

#define EXPECT(t, what, ms)                                                                                          \
    ck_assert_msg(term_expect(t, what, ms), "the shell did not print \"%s\"; it printed:\n%s", what,                 \
                  ss_buf_cstr(&(t)->seen) + ((t)->seen.len > 3000 ? (t)->seen.len - 3000 : 0))

START_TEST(test_shell_ctrl_c)
{
    char *dir = tu_tmpdir(), url[128], sql[1024];
    pid_t fx = tu_fixture_start(FIXTURE, 60000, url, sizeof url); /* a model that never answers in time */
    term_t t;
    term_start(&t, dir);
    EXPECT(&t, "semstream> ", 20000);
    snprintf(sql, sizeof sql,
             "CREATE MODEL slow WITH (backend = 'openai', url = '%s', model = 'fixture');\n"
             "CREATE STREAM s (id INT KEY, txt TEXT);\n"
             "CREATE CONTINUOUS VIEW v AS SELECT COUNT(*) AS n FROM s;\n"
             "CREATE CONTINUOUS VIEW sem AS SELECT id FROM s WHERE SEM_FILTER('Is {txt} a fruit?', model = 'slow');\n",
             url);
    term_send(&t, sql);
    EXPECT(&t, "CREATE MODEL", 10000);
    EXPECT(&t, "CREATE VIEW", 10000);
    EXPECT(&t, "CREATE VIEW", 10000);
    EXPECT(&t, "semstream> ", 10000);
    /* at the prompt: the line, or a statement begun on earlier lines, is dropped */
    for (int i = 0; i < 20; i++) {
        term_send(&t, i % 2 ? "SELECT 12" : "SELECT\n");
        if (i % 2 == 0)
            EXPECT(&t, "-> ", 5000);
        tu_sleep_ms(50);
        term_send(&t, "\x03");
        EXPECT(&t, "semstream> ", 5000);
    }
    term_send(&t, "1;\n"); /* had the partial "SELECT" survived, this would run "SELECT 1;" */
    EXPECT(&t, "syntax error", 5000);
    EXPECT(&t, "semstream> ", 5000);
    /* during a statement: SUBSCRIBE runs until Ctrl-C; so does a SELECT waiting for the slow model */
    term_send(&t, "INSERT INTO s VALUES (1, 'apple');\n");
    EXPECT(&t, "INSERT 1", 10000);
    for (int i = 0; i < 20; i++) {
        term_send(&t, i % 2 ? "SUBSCRIBE v;\n" : "SELECT * FROM sem;\n");
        tu_sleep_ms(300);
        term_send(&t, "\x03");
        EXPECT(&t, i % 2 ? "SUBSCRIBE v canceled" : "interrupted", 10000);
        EXPECT(&t, "semstream> ", 5000);
    }
    /* the shell still works, and the views too */
    term_send(&t, "INSERT INTO s VALUES (2, 'stone'), (3, 'pear');\nSELECT n FROM v;\n");
    EXPECT(&t, "INSERT 2", 10000);
    EXPECT(&t, " 3\r\n(1 row)", 15000);
    term_send(&t, "\\q\n");
    int st = 0;
    for (int i = 0; i < 200 && waitpid(t.pid, &st, WNOHANG) == 0; i++)
        term_read(&t, 50);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the shell ended with status %d:\n%s", st,
                  ss_buf_cstr(&t.seen));
    kill(fx, SIGTERM);
    waitpid(fx, NULL, 0);
    close(t.fd);
    ss_buf_free(&t.seen);
    free(dir);
}
END_TEST

/* ---- serve: /healthz and statements while a SUBSCRIBE streams ---- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    ss_buf_append(ud, p, sz * n);
    return sz * n;
}

static long http(int port, const char *path, const char *body, ss_buf_t *out, long timeout_ms)
{
    char u[256];
    snprintf(u, sizeof u, "http://127.0.0.1:%d%s", port, path);
    ss_buf_reset(out);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

typedef struct stream {
    int port;
    pthread_mutex_t mu;
    ss_buf_t got;
    volatile int stop, ended;
} stream_t;

static size_t on_stream(char *p, size_t sz, size_t n, void *ud)
{
    stream_t *s = ud;
    pthread_mutex_lock(&s->mu);
    ss_buf_append(&s->got, p, sz * n);
    pthread_mutex_unlock(&s->mu);
    return s->stop ? 0 : sz * n; /* 0 aborts the transfer: the client goes away */
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return ((stream_t *)ud)->stop;
}

static void *subscriber(void *arg)
{
    stream_t *s = arg;
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/sql", s->port);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "SUBSCRIBE v;");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    s->ended = 1;
    return NULL;
}

static int stream_has(stream_t *s, const char *what, int ms)
{
    for (int waited = 0; waited <= ms; waited += 50) {
        pthread_mutex_lock(&s->mu);
        int ok = strstr(ss_buf_cstr(&s->got), what) != NULL;
        pthread_mutex_unlock(&s->mu);
        if (ok)
            return 1;
        tu_sleep_ms(50);
    }
    return 0;
}

START_TEST(test_serve_subscribe_healthz)
{
    char *dir = tu_tmpdir(), db[1024], portarg[16], log[1100];
    snprintf(db, sizeof db, "%s/st.db", dir);
    snprintf(log, sizeof log, "%s/serve.log", dir);
    int port = tu_free_port();
    snprintf(portarg, sizeof portarg, "%d", port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(BIN, "semstream", "serve", "--db", db, "--port", portarg, (char *)NULL);
        _exit(127);
    }
    ss_buf_t b = SS_BUF_INIT;
    long code = 0;
    for (int i = 0; i < 200 && (code = http(port, "/healthz", NULL, &b, 2000)) != 200; i++)
        tu_sleep_ms(100);
    ck_assert_int_eq(code, 200);
    ck_assert_int_eq(http(port, "/sql", "CREATE STREAM s (id INT KEY); CREATE CONTINUOUS VIEW v AS "
                                        "SELECT id FROM s; INSERT INTO s VALUES (1);", &b, 30000), 200);
    stream_t s = {.port = port};
    pthread_mutex_init(&s.mu, NULL);
    pthread_t th;
    pthread_create(&th, NULL, subscriber, &s);
    ck_assert_msg(stream_has(&s, "{\"id\":1}", 20000), "no snapshot row: %s", ss_buf_cstr(&s.got));
    /* while it streams: /healthz at once, other statements, and their changes reach the stream */
    for (int i = 0; i < 10; i++) {
        int64_t t0 = ss_now_ns();
        ck_assert_int_eq(http(port, "/healthz", NULL, &b, 5000), 200);
        ck_assert_msg(ss_now_ns() - t0 < 2000000000LL, "/healthz took %.1f s", (ss_now_ns() - t0) / 1e9);
        char ins[128];
        snprintf(ins, sizeof ins, "INSERT INTO s VALUES (%d);", 100 + i);
        ck_assert_int_eq(http(port, "/sql", ins, &b, 30000), 200);
        snprintf(ins, sizeof ins, "{\"id\":%d}", 100 + i);
        ck_assert_msg(stream_has(&s, ins, 20000), "change %d not streamed: %s", i, ss_buf_cstr(&s.got));
    }
    ck_assert_int_eq(http(port, "/sql", "SELECT COUNT(*) FROM v;", &b, 30000), 200);
    ck_assert_msg(strstr(ss_buf_cstr(&b), " 11\n"), "%s", ss_buf_cstr(&b));
    ck_assert_int_eq(s.ended, 0);
    s.stop = 1;
    pthread_join(th, NULL);
    ck_assert_int_eq(http(port, "/healthz", NULL, &b, 5000), 200); /* the client went away: serve goes on */
    kill(pid, SIGTERM);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "serve ended with status %d", st);
    ss_buf_free(&b);
    ss_buf_free(&s.got);
    free(dir);
}
END_TEST

Suite *check_it_interactive_suite(void)
{
    Suite *s = suite_create("it_interactive");
    TCase *tc = tcase_create("interactive");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_shell_ctrl_c);
    tcase_add_test(tc, test_serve_subscribe_healthz);
    suite_add_tcase(s, tc);
    return s;
}
