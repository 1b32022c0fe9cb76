/*
 * testutil.c — implements testutil.h.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A helper's failure ends the test (Check reports the signal with the message above it). */
static void die(const char *what, const char *arg)
{
    fprintf(stderr, "testutil: %s %s\n", what, arg ? arg : "");
    abort();
}

const char *tu_source_dir(void)
{
    const char *e = getenv("SS_SOURCE_DIR");
    return e && *e ? e : SS_SOURCE_DIR;
}

const char *tu_model_path(const char *file, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%s/../shared/models/%s", tu_source_dir(), file);
    return buf;
}

int tu_exists(const char *path) { return access(path, R_OK) == 0; }

char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/semstream-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return p;
}

void tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write", path);
    fputs(text, f);
    if (fclose(f))
        die("cannot write", path);
}

void tu_write_orders(const char *path, int from, int n, int ncust)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write", path);
    for (int i = from; i < from + n; i++)
        fprintf(f, "{\"id\":%d,\"cust\":\"c%d\",\"amount\":%d}\n", i, i % ncust, i % 17);
    if (fclose(f))
        die("cannot write", path);
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int tu_sh(const char *cmd, char **out)
{
    size_t len = strlen(cmd) + 16;
    char *full = malloc(len);
    if (!full)
        die("out of memory for", cmd);
    snprintf(full, len, "( %s ) 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    if (!p)
        die("cannot run", cmd);
    size_t n = 0, cap = 4096;
    char *b = malloc(cap);
    for (size_t got; b && (got = fread(b + n, 1, cap - n - 1, p)) > 0;) {
        n += got;
        if (cap - n < 2048) {
            char *nb = realloc(b, cap *= 2);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    if (!b)
        die("out of memory for the output of", cmd);
    b[n] = 0;
    int st = pclose(p);
    if (out)
        *out = b;
    else
        free(b);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("cannot bind a port on", "127.0.0.1");
    socklen_t n = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &n);
    close(fd);
    return ntohs(a.sin_port);
}

pid_t tu_fixture_start(const char *path, int delay_ms, char *url, size_t urlsz)
{
    char d[16];
    snprintf(d, sizeof d, "%d", delay_ms);
    int fd[2];
    if (pipe(fd))
        die("cannot make a pipe for", path);
    pid_t pid = fork();
    if (pid < 0)
        die("cannot fork for", path);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(path, path, "--delay-ms", d, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    if (!f || !fgets(url, (int)urlsz, f))
        die("the fixture did not start:", path);
    fclose(f);
    url[strcspn(url, "\n")] = 0;
    return pid;
}

void tu_kill_wait(pid_t pid, int sig)
{
    kill(pid, sig);
    waitpid(pid, NULL, 0);
}
