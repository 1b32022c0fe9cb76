/*
 * serve_fixture.h — `semstream serve` as a child process for the integration tests
 * of its endpoints (check_it_pgwire.c, check_it_access.c): started with --port 0 and
 * --pg-port 0 in a fresh directory, its real ports read from its start-up lines, its
 * log kept in dir/serve.log, stopped with SIGTERM (its exit status checked).
 */
#ifndef SS_SERVE_FIXTURE_H
#define SS_SERVE_FIXTURE_H

#include "ss_base.h"
#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct sv {
    char *dir;
    pid_t pid;
    int http_port, pg_port;
    char db[1024];
} sv_t;

static void sv_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *sv_log(const sv_t *s)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/serve.log", s->dir);
    char *t = tu_read_file(p, NULL);
    return t ? t : strdup("(no log)");
}

/* Exit status of the child within ms, or -1 while it runs. */
static int sv_wait(pid_t pid, int ms)
{
    for (int waited = 0;; waited += 20) {
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (waited >= ms)
            return -1;
        sv_sleep_ms(20);
    }
}

/* Starts serve with extra arguments (NULL-terminated) in dir (made when NULL). With want_ports,
 * waits for the start-up lines and reads the ports; else returns at once. */
static void sv_start_in(sv_t *s, const char *dir, const char *const *extra, int want_ports)
{
    memset(s, 0, sizeof *s);
    s->dir = dir ? strdup(dir) : tu_tmpdir();
    snprintf(s->db, sizeof s->db, "%s/state.db", s->dir);
    char log[1200];
    snprintf(log, sizeof log, "%s/serve.log", s->dir);
    s->pid = fork();
    ck_assert_int_ge(s->pid, 0);
    if (s->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        const char *argv[48] = {"semstream", "serve", "--db", s->db, "--port", "0", "--pg-port", "0",
                                "--max-latency-ms", "20", "--threads", "1"};
        int n = 12;
        for (int i = 0; extra && extra[i] && n < 47; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        execv(SS_BINARY_DIR "/semstream", (char *const *)argv);
        _exit(127);
    }
    if (!want_ports)
        return;
    for (int i = 0; i < 600 && (!s->http_port || !s->pg_port); i++) {
        char *t = sv_log(s);
        const char *h = strstr(t, "SQL over HTTP on http://");
        const char *p = strstr(t, "PostgreSQL protocol on ");
        if (h)
            h = strchr(h + 24, ':');
        if (h)
            s->http_port = atoi(h + 1);
        if (p)
            p = strrchr(p, ':') ? strchr(p + 23, ':') : NULL;
        if (p)
            s->pg_port = atoi(p + 1);
        free(t);
        if (!s->http_port || !s->pg_port) {
            int st = sv_wait(s->pid, 50);
            if (st != -1) {
                char *l = sv_log(s);
                ck_abort_msg("serve exited (%d) before listening:\n%s", st, l);
            }
        }
    }
    if (!s->http_port || !s->pg_port) {
        char *l = sv_log(s);
        ck_abort_msg("serve did not start listening:\n%s", l);
    }
}

__attribute__((unused)) static void sv_start(sv_t *s, const char *const *extra) { sv_start_in(s, NULL, extra, 1); }

/* SIGTERM; asserts a clean exit; removes the directory. */
static void sv_stop(sv_t *s)
{
    kill(s->pid, SIGTERM);
    int st = sv_wait(s->pid, 30000);
    if (st == -1) {
        kill(s->pid, SIGKILL);
        sv_wait(s->pid, 5000);
    }
    char *l = sv_log(s);
    ck_assert_msg(st == 0, "serve exit status %d after SIGTERM:\n%s", st, l);
    free(l);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
    free(s->dir);
    s->dir = NULL;
}

/* Writes text to dir/name with mode 0600; returns the path (malloc'd). */
__attribute__((unused)) static char *sv_file(const char *dir, const char *name, const char *text)
{
    char *p = malloc(1200);
    ck_assert_ptr_nonnull(p);
    snprintf(p, 1200, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(p, 0600);
    return p;
}

#endif
