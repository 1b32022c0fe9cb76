/*
 * testutil.h — helpers for the Check suites: paths to the source tree and the
 * shared models, temporary directories, reading and writing files, and the
 * processes integration tests start (shell commands, fixtures, free ports).
 * A helper that cannot do its job (no memory, a file that cannot be written, a
 * fork that fails) prints why and aborts the test: they are for tests only.
 */
#ifndef SS_TESTUTIL_H
#define SS_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Absolute path of the repository root. */
const char *tu_source_dir(void);
/* Path of a file in ../shared/models (e.g. "stories260K.gguf"); static buffer per call site. */
const char *tu_model_path(const char *file, char *buf, size_t bufsz);
/* 1 if the file exists and is readable. */
int tu_exists(const char *path);
/* Makes a fresh temporary directory and returns its path (malloc'd). */
char *tu_tmpdir(void);
/* Reads a whole file (malloc'd, NUL-terminated); NULL on failure. */
char *tu_read_file(const char *path, size_t *len);
/* Writes text to path (created or truncated). */
void tu_write_file(const char *path, const char *text);
/* n JSON lines of orders {"id":i,"cust":"c<i % ncust>","amount":<i % 17>}, i = from..from+n-1. */
void tu_write_orders(const char *path, int from, int n, int ncust);

/* ---- processes ---- */
void tu_sleep_ms(int ms);
/* Runs cmd with sh, stderr joined to stdout; *out (if out) = what it printed (malloc'd).
 * Returns its exit status, or 128 + the signal that ended it. */
int tu_sh(const char *cmd, char **out);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tu_free_port(void);
/* Starts a test server fixture (bench_fixture_slow_server at path) answering after delay_ms;
 * url receives the URL it prints. Returns its pid. */
pid_t tu_fixture_start(const char *path, int delay_ms, char *url, size_t urlsz);
/* Sends sig to pid and reaps it. */
void tu_kill_wait(pid_t pid, int sig);

#endif
