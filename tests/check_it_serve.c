/*
 * check_it_serve.c — `semstream serve` end to end: the built binary is started
 * on a free loopback port with its embedded broker and a fresh state database;
 * SQL is POSTed to /sql (CREATE STREAM, INSERT, CREATE CONTINUOUS VIEW, then a
 * SELECT that must see the view caught up), errors come back as 400 with
 * "request:line:col", GET /healthz and /views answer, unknown paths are 404,
 * SIGTERM ends it with status 0, and a bad engine option is a usage error (2).
 */
#include "ss_base.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *binary(void) { return SS_BINARY_DIR "/semstream"; }

/* A loopback port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t n = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts the binary with args (NULL-terminated, after argv[0]); its output goes to dir/serve.log. */
static pid_t spawn(const char *dir, const char *const *args)
{
    char log[1024];
    snprintf(log, sizeof log, "%s/serve.log", dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        const char *argv[32] = {"semstream"};
        int n = 1;
        for (; args[n - 1] && n < 31; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(binary(), (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to ms for the child to exit; its exit status, or -1 if it is still running. */
static int wait_exit(pid_t pid, int ms)
{
    for (int waited = 0;; waited += 20) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (waited >= ms)
            return -1;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    ss_buf_append(ud, p, sz * n);
    return sz * n;
}

/* GET (body NULL) or POST body to path; returns the HTTP status (0 when nothing answered). */
static long http(int port, const char *path, const char *body, ss_buf_t *out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    ss_buf_reset(out);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
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
    curl_easy_cleanup(c);
    return code;
}

/* The server's log, for failure messages. */
static char *server_log(const char *dir)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/serve.log", dir);
    char *s = tu_read_file(p, NULL);
    return s ? s : strdup("(no log)");
}

static void remove_dir(char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

START_TEST(test_serve_sql)
{
    char *dir = tu_tmpdir();
    char db[1024], port_s[16];
    snprintf(db, sizeof db, "%s/state.db", dir);
    int port = free_port();
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *args[] = {"serve", "--port", port_s, "--db", db, "--max-latency-ms", "20", "--threads", "1", NULL};
    pid_t pid = spawn(dir, args);
    ss_buf_t b = SS_BUF_INIT;
    long code = 0;
    for (int i = 0; i < 300 && code != 200; i++) { /* up to ~30 s to open the broker and the engine */
        if ((code = http(port, "/healthz", NULL, &b)) == 200)
            break;
        ck_assert_msg(wait_exit(pid, 100) == -1, "serve exited early:\n%s", server_log(dir));
    }
    ck_assert_msg(code == 200, "serve did not answer /healthz:\n%s", server_log(dir));
    ck_assert_str_eq(ss_buf_cstr(&b), "ok\n");

    code = http(port, "/sql",
                "CREATE STREAM ev (id INT, v INT) WITH (topic = 'ev', format = 'json');\n"
                "INSERT INTO ev VALUES (1, 10), (2, 20), (3, 30);\n"
                "CREATE CONTINUOUS VIEW big AS SELECT id, v FROM ev WHERE v > 15;\n",
                &b);
    ck_assert_msg(code == 200, "%ld: %s", code, ss_buf_cstr(&b));
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&b), "CREATE STREAM"));
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&b), "INSERT 3"));
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&b), "CREATE VIEW"));

    /* reads catch the view up first: both qualifying rows, not the filtered one */
    code = http(port, "/sql", "SELECT id, v FROM big ORDER BY id;", &b);
    ck_assert_msg(code == 200, "%ld: %s", code, ss_buf_cstr(&b));
    const char *t = ss_buf_cstr(&b);
    ck_assert_msg(strstr(t, " 2  | 20") && strstr(t, " 3  | 30") && strstr(t, "(2 rows)") && !strstr(t, "| 10"),
                  "unexpected SELECT reply:\n%s", t);

    /* errors: 400, "ERROR: request:line:col: ..." */
    code = http(port, "/sql", "SELECT id FROM big;\nSELEC 1;", &b);
    ck_assert_int_eq(code, 400);
    ck_assert_msg(!strncmp(ss_buf_cstr(&b), "ERROR: request:2:1: syntax error near \"SELEC\"", 45), "%s",
                  ss_buf_cstr(&b));
    code = http(port, "/sql", "SELECT nope FROM big;", &b);
    ck_assert_int_eq(code, 400);
    ck_assert_str_eq(ss_buf_cstr(&b), "ERROR: request:1:8: unknown column \"nope\"\n");

    /* a later insert reaches the view; the error left the server usable */
    code = http(port, "/sql", "INSERT INTO ev VALUES (4, 40);\nSELECT COUNT(*) AS n FROM big;", &b);
    ck_assert_msg(code == 200 && strstr(ss_buf_cstr(&b), "\n 3\n(1 row)"), "%ld: %s", code, ss_buf_cstr(&b));

    code = http(port, "/views", NULL, &b);
    ck_assert_int_eq(code, 200);
    ck_assert_ptr_nonnull(strstr(ss_buf_cstr(&b), " big "));
    ck_assert_int_eq(http(port, "/nothing", NULL, &b), 404);

    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    int st = wait_exit(pid, 20000);
    if (st == -1) {
        kill(pid, SIGKILL);
        wait_exit(pid, 5000);
    }
    ck_assert_msg(st == 0, "serve exit status %d after SIGTERM:\n%s", st, server_log(dir));
    ss_buf_free(&b);
    remove_dir(dir);
}
END_TEST

START_TEST(test_serve_bad_option)
{
    char *dir = tu_tmpdir();
    const char *args[] = {"serve", "--batch-size", "lots", NULL};
    pid_t pid = spawn(dir, args);
    int st = wait_exit(pid, 20000);
    char *log = server_log(dir);
    ck_assert_msg(st == 2, "exit status %d:\n%s", st, log);
    ck_assert_ptr_nonnull(strstr(log, "--batch-size expects an integer >= 1, got 'lots'"));
    free(log);
    remove_dir(dir);
}
END_TEST

Suite *check_it_serve_suite(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("it_serve");
    TCase *tc = tcase_create("serve");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_serve_sql);
    tcase_add_test(tc, test_serve_bad_option);
    suite_add_tcase(s, tc);
    return s;
}
