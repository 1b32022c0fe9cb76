/*
 * cli.c — helpers shared by the subcommands: reading a script, and the one parser of the engine options (--db, --brokers, --model,
 * --batch-size, --max-latency-ms, --threads) used by run, serve and shell.
 */
#include "cli.h"

#include "ss_base.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *ss_cli_read_stream(FILE *f, size_t *len)
{
    ss_buf_t b = SS_BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        ss_buf_append(&b, tmp, n);
    *len = b.len;
    return ss_buf_take(&b);
}

char *ss_cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = ss_cli_read_stream(f, len);
    fclose(f);
    return s;
}

/* ---- engine options ---- */

static const struct {
    struct option lo;
    const char *help; /* the usage line */
} engine_opts[] = {
    {{"db", 1, 0, SS_CLI_OPT_DB}, "  --db FILE              state database (default ./semstream.db)\n"},
    {{"brokers", 1, 0, SS_CLI_OPT_BROKERS}, "  --brokers LIST         Kafka bootstrap servers (default: the durable log FILE.log beside --db)\n"},
    {{"group", 1, 0, SS_CLI_OPT_GROUP},
     "  --group NAME           with --brokers: share the inputs' partitions with the engines of this consumer\n"
     "                         group (each processes the partitions Kafka assigns it; sinks at-least-once;\n"
     "                         views that need a repartition are refused: see docs/ARCHITECTURE.md 6)\n"},
    {{"model", 1, 0, SS_CLI_OPT_MODEL}, "  --model FILE           default GGUF model, registered as \"local\"\n"},
    {{"batch-size", 1, 0, SS_CLI_OPT_BATCH_SIZE},
     "  --batch-size N         messages per source per micro-batch (default 1024)\n"},
    {{"max-latency-ms", 1, 0, SS_CLI_OPT_MAX_LATENCY},
     "  --max-latency-ms N     longest wait for input in a micro-batch (default 100)\n"},
    {{"threads", 1, 0, SS_CLI_OPT_THREADS}, "  --threads N            inference threads of the local model\n"},
};

int ss_cli_longopts(const struct option *extra, struct option *out, int cap)
{
    int n = 0;
    for (size_t i = 0; i < SS_ARRAY_LEN(engine_opts); i++) {
        if (n >= cap - 1)
            return -1;
        out[n++] = engine_opts[i].lo;
    }
    for (; extra && extra->name; extra++) {
        if (n >= cap - 1)
            return -1;
        out[n++] = *extra;
    }
    if (n >= cap)
        return -1;
    memset(&out[n], 0, sizeof out[n]);
    return n;
}

/* arg as an int >= min, else SS_ERR_INVALID naming the option. */
static int int_arg(const char *name, const char *arg, int min, int *out, char *err, size_t errsz)
{
    char *end = NULL;
    errno = 0;
    long v = arg ? strtol(arg, &end, 10) : 0;
    if (!arg || !*arg || *end || errno || v < min || v > INT_MAX)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "--%s expects an integer >= %d, got '%s'", name, min,
                         arg ? arg : "");
    *out = (int)v;
    return SS_OK;
}

int ss_cli_engine_opt(ss_engine_opts_t *o, int opt, const char *arg, char *err, size_t errsz)
{
    switch (opt) {
    case SS_CLI_OPT_DB: o->db_path = arg; return SS_OK;
    case SS_CLI_OPT_BROKERS: o->brokers = arg; return SS_OK;
    case SS_CLI_OPT_GROUP: o->group = arg; return SS_OK;
    case SS_CLI_OPT_MODEL: o->model_path = arg; return SS_OK;
    case SS_CLI_OPT_BATCH_SIZE: return int_arg("batch-size", arg, 1, &o->batch_size, err, errsz);
    case SS_CLI_OPT_MAX_LATENCY: return int_arg("max-latency-ms", arg, 0, &o->max_latency_ms, err, errsz);
    case SS_CLI_OPT_THREADS: return int_arg("threads", arg, 0, &o->threads, err, errsz);
    default: return SS_ERR_NOTFOUND;
    }
}

void ss_cli_engine_help(FILE *f)
{
    for (size_t i = 0; i < SS_ARRAY_LEN(engine_opts); i++)
        fputs(engine_opts[i].help, f);
}

/* ---- access tokens ---- */

char *ss_cli_read_token(const char *path, char *err, size_t errsz)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        ss_seterr(err, errsz, SS_ERR_IO, "cannot read the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        fprintf(stderr, "semstream: warning: the token file %s is readable by other users\n", path);
    char buf[4097];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    char *s = buf;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t'))
        s[--l] = 0;
    if (!l || n == sizeof buf - 1) {
        ss_seterr(err, errsz, SS_ERR_INVALID, "the token file %s must hold one non-empty line of at most 4096 bytes",
                  path);
        return NULL;
    }
    return ss_strdup(s);
}

int ss_cli_is_loopback(const char *addr)
{
    return !addr || !strncmp(addr, "127.", 4) || !strcmp(addr, "::1") || !strcmp(addr, "localhost") ||
           !strcmp(addr, "[::1]");
}
