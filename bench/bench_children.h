/*
 * bench_children.h — the server processes a benchmark starts (workers, fixture servers),
 * tracked so that a failure (bench_die) or Ctrl-C/SIGTERM (bench_on_signal) never leaves
 * one behind: ctest would wait for it. Header-only: every .c file in bench/ is its own program.
 */
#ifndef SS_BENCH_CHILDREN_H
#define SS_BENCH_CHILDREN_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static const char *g_bench_name = "bench";
static pid_t g_children[8];
static int g_nchildren;

static void child_add(pid_t pid)
{
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i] <= 0) {
            g_children[i] = pid;
            return;
        }
    if (g_nchildren < (int)(sizeof g_children / sizeof g_children[0]))
        g_children[g_nchildren++] = pid;
}

static void child_del(pid_t pid)
{
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i] == pid)
            g_children[i] = 0;
}

static void children_kill(void)
{
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i] > 0)
            kill(g_children[i], SIGKILL);
}

/* Ctrl-C or SIGTERM: the servers go too. */
static void on_signal(int sig)
{
    children_kill();
    _exit(128 + sig);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", g_bench_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    children_kill();
    exit(1);
}

#endif
