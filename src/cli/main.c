/*
 * main.c — the `semstream` binary: dispatches to a subcommand. Each subcommand
 * lives with the module it belongs to (ss_cmd_* in src/cli.h) and parses its own
 * options; common options (--db, --brokers, --model) are shared through cli.c.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#define WEAK __attribute__((weak))
WEAK int ss_cmd_shell(int argc, char **argv);
WEAK int ss_cmd_run(int argc, char **argv);
WEAK int ss_cmd_kafka(int argc, char **argv);
WEAK int ss_cmd_log(int argc, char **argv);
WEAK int ss_cmd_generate(int argc, char **argv);
WEAK int ss_cmd_worker(int argc, char **argv);
WEAK int ss_cmd_serve(int argc, char **argv);
WEAK int ss_cmd_explain(int argc, char **argv);

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} subcmd_t;

static const subcmd_t cmds[] = {
    {"shell", NULL, "interactive SQL shell (streams in the durable log beside --db unless --brokers)"},
    {"run", NULL, "run a SQL script, then keep its views up to date (--until-idle to stop when caught up)"},
    {"log", NULL, "read and write the durable log: topics, cat TOPIC (JSON lines), produce TOPIC"},
    {"kafka", NULL, "an in-memory Kafka endpoint for tests and clients such as kcat (never used implicitly)"},
    {"generate", NULL, "generate text with a GGUF model (for trying a model)"},
    {"worker", NULL, "serve a model over OpenAI-compatible HTTP (GPU worker)"},
    {"serve", NULL, "run views and accept SQL over HTTP"},
};

static int (*fn_for(const char *name))(int, char **)
{
    if (!strcmp(name, "shell")) return ss_cmd_shell;
    if (!strcmp(name, "run")) return ss_cmd_run;
    if (!strcmp(name, "kafka")) return ss_cmd_kafka;
    if (!strcmp(name, "log")) return ss_cmd_log;
    if (!strcmp(name, "generate")) return ss_cmd_generate;
    if (!strcmp(name, "worker")) return ss_cmd_worker;
    if (!strcmp(name, "serve")) return ss_cmd_serve;
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: semstream [--version] [--help] <command> [options]\n\n"
               "semstream keeps LLM-derived SQL views up to date as data changes.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int (*fn)(int, char **) = fn_for(cmds[i].name);
        fprintf(f, "  %-9s %s%s\n", cmds[i].name, cmds[i].summary, fn ? "" : " [not in this build]");
    }
    fprintf(f, "\ncommon options (where they apply):\n"
               "  --db FILE        SQLite state file (default ./semstream.db)\n"
               "  --brokers LIST   Kafka bootstrap servers (default: the durable log FILE.log\n"
               "                   beside --db)\n"
               "  --model FILE     default GGUF model (default $SEMSTREAM_MODEL, else\n"
               "                   ../shared/models/stories260K.gguf)\n"
               "\n'semstream <command> --help' describes a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("semstream %s\n", SS_VERSION);
        return 0;
    }
    int (*fn)(int, char **) = fn_for(argv[1]);
    if (!fn) {
        int known = 0;
        for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
            known |= !strcmp(cmds[i].name, argv[1]);
        fprintf(stderr, "semstream: %s '%s'\n", known ? "this build lacks the command" : "unknown command", argv[1]);
        usage(stderr);
        return 2;
    }
    return fn(argc - 1, argv + 1);
}
