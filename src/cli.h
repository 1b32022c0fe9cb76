/*
 * cli.h — subcommand entry points and the options they share.
 * Each ss_cmd_* takes argv with argv[0] = the command name and returns the
 * process exit status (0 ok, 1 runtime failure, 2 usage error).
 */
#ifndef SS_CLI_H
#define SS_CLI_H

#include <stdio.h>

#define SS_VERSION "0.1.0"

int ss_cmd_shell(int argc, char **argv);    /* src/shell.c */
int ss_cmd_run(int argc, char **argv);      /* src/cmd_run.c */
int ss_cmd_kafka(int argc, char **argv);    /* connectors/cmd_kafka.c */
int ss_cmd_generate(int argc, char **argv); /* gpu/cmd_generate.c */
int ss_cmd_worker(int argc, char **argv);   /* gpu/worker.c */
int ss_cmd_serve(int argc, char **argv);    /* src/serve.c */

/* Options most commands accept. Strings point into argv or are defaults (not owned). */
typedef struct ss_cli_common {
    const char *db;      /* --db, default "semstream.db" */
    const char *brokers; /* --brokers, NULL = embedded broker */
    const char *model;   /* --model, default $SEMSTREAM_MODEL or ../shared/models/stories260K.gguf */
} ss_cli_common_t;

/* Default model path: $SEMSTREAM_MODEL, else ../shared/models/stories260K.gguf
 * (relative to the working directory, then to the executable's source tree). */
const char *ss_cli_default_model(void);

/* The whole of a stream, or of a file (NULL if it cannot be opened), as a NUL-terminated
 * malloc'd string; *len = its length. */
char *ss_cli_read_stream(FILE *f, size_t *len);
char *ss_cli_read_file(const char *path, size_t *len);

#endif
