/*
 * cli.h — subcommand entry points and the options they share.
 * Each ss_cmd_* takes argv with argv[0] = the command name and returns the
 * process exit status (0 ok, 1 runtime failure, 2 usage error).
 */
#ifndef SS_CLI_H
#define SS_CLI_H

#include "ss_engine.h"

#include <getopt.h>
#include <stdio.h>

#define SS_VERSION "0.1.0"

int ss_cmd_shell(int argc, char **argv);    /* src/cli/shell.c */
int ss_cmd_run(int argc, char **argv);      /* src/cli/cmd_run.c */
int ss_cmd_kafka(int argc, char **argv);    /* src/cli/cmd_kafka.c */
int ss_cmd_log(int argc, char **argv);      /* src/cli/cmd_log.c */
int ss_cmd_generate(int argc, char **argv); /* src/cli/cmd_generate.c */
int ss_cmd_worker(int argc, char **argv);   /* src/cli/cmd_worker.c */
int ss_cmd_serve(int argc, char **argv);    /* src/cli/serve.c */

/* Options most commands accept. Strings point into argv or are defaults (not owned). */
typedef struct ss_cli_common {
    const char *db;      /* --db, default "semstream.db" */
    const char *brokers; /* --brokers, NULL = the durable log beside --db */
    const char *model;   /* --model, default $SEMSTREAM_MODEL or ../shared/models/stories260K.gguf */
} ss_cli_common_t;

/* The whole of a stream, or of a file (NULL if it cannot be opened), as a NUL-terminated
 * malloc'd string; *len = its length. */
char *ss_cli_read_stream(FILE *f, size_t *len);
char *ss_cli_read_file(const char *path, size_t *len);

/* An access token: the first line of the file, trimmed (the worker's --auth-token-file format);
 * warns on stderr when others may read the file. NULL (err set) when missing or empty. */
char *ss_cli_read_token(const char *path, char *err, size_t errsz);
/* 1 for a loopback address (127.x.x.x, ::1, localhost) or NULL (the default). */
int ss_cli_is_loopback(const char *addr);

/* ---- engine options, one parser for run, serve and shell ----
 * --db FILE, --brokers LIST, --model FILE, --batch-size N, --max-latency-ms N,
 * --threads N. A command builds its getopt_long table with ss_cli_longopts
 * (the engine options, then its own), hands every option it gets to
 * ss_cli_engine_opt, and prints ss_cli_engine_help in its usage. */
enum {
    SS_CLI_OPT_DB = 0x1000, /* getopt_long values of the engine options */
    SS_CLI_OPT_BROKERS,
    SS_CLI_OPT_MODEL,
    SS_CLI_OPT_BATCH_SIZE,
    SS_CLI_OPT_MAX_LATENCY,
    SS_CLI_OPT_THREADS,
    SS_CLI_OPT_GROUP,
    SS_CLI_OPT_USER = 0x1100, /* values from here on are free for a command's own options */
};
/* Writes the engine options' entries, then extra's up to its zero entry (extra may
 * be NULL), then a zero entry, into out[0..cap). Returns the number of entries
 * before the zero entry, or -1 when cap is too small. */
int ss_cli_longopts(const struct option *extra, struct option *out, int cap);
/* Applies one option from getopt_long to o. SS_OK: opt is an engine option and
 * arg is valid (strings are not copied: o points into arg). SS_ERR_NOTFOUND: opt
 * is not an engine option (o untouched). SS_ERR_INVALID: a bad value; err says
 * which option and why, e.g. "--batch-size expects an integer >= 1, got 'x'". */
int ss_cli_engine_opt(ss_engine_opts_t *o, int opt, const char *arg, char *err, size_t errsz);
/* The engine options' help lines, as the commands' usage texts print them. */
void ss_cli_engine_help(FILE *f);

#endif
