/*
 * cmd_worker.c — `semstream worker`: loads a model on the CPU or a GPU and
 * serves it over the OpenAI API (gpu/worker.c) until SIGINT/SIGTERM: the listen
 * address (loopback unless --listen), the bearer token, the model's names and the
 * durable answer cache (runtime/worker_cache.c) are set up here.
 */
#include "cli.h"
#include "ss_chat.h"
#include "ss_llm_cuda.h"
#include "ss_worker.h"
#include "ss_worker_cache.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: semstream worker [--model FILE] [--gpu N] [--listen ADDR] [--port P] [--threads N]\n"
            "                        [--served-model-name NAME]... [--auth-token-file FILE]\n"
            "                        [--cache FILE | --no-cache] [--max-queue N] [--max-batch N]\n"
            "                        [--batch-wait-ms N] [--max-body BYTES] [--idle-timeout S]\n"
            "                        [--max-connections N] [--max-tokens-limit N] [--step-tokens N]\n"
            "                        [--whole-batch]\n\n"
            "Serves a GGUF model over the OpenAI API: POST /v1/chat/completions (the model's own chat\n"
            "template), /v1/completions, /v1/embeddings (streaming, logprobs, n, stop lists, base64),\n"
            "GET /v1/models, /health, /metrics. Concurrent requests are batched continuously into shared\n"
            "forward passes. A full queue answers 429 with Retry-After.\n\n"
            "  --model FILE        GGUF model (default $SEMSTREAM_MODEL or ../shared/models/stories260K.gguf)\n"
            "  --gpu N             run on CUDA device N (default: CPU)\n"
            "  --listen ADDR       listen address (default 127.0.0.1); beyond loopback a token is required\n"
            "  --port P            listen port (default 8090; 0 picks a free one)\n"
            "  --threads N         CPU threads (CPU backend)\n"
            "  --served-model-name NAME  the model's name in the API (repeatable; default the file's name,\n"
            "                      which is also accepted with and without .gguf)\n"
            "  --auth-token-file FILE  require \"Authorization: Bearer <token>\" (the file's first line) on\n"
            "                      every endpoint but /health\n"
            "  --cache FILE        durable answer cache (default MODEL.worker-cache beside the model): an\n"
            "                      answer already computed is never computed again, even for a client that\n"
            "                      died before it came\n"
            "  --no-cache          no answer cache\n"
            "  --max-queue N       calls waiting for the engine before 429 (default 256)\n"
            "  --max-batch N       requests running together (default 32)\n"
            "  --batch-wait-ms N   when idle, wait to gather concurrent requests (default 2)\n"
            "  --step-tokens N     token budget of a step: decode tokens + prompt chunks (default 512)\n"
            "  --whole-batch       answer whole batches, later requests waiting for all of it (old mode)\n"
            "  --max-body BYTES    largest request body (default 1048576)\n"
            "  --idle-timeout S    close connections idle this long (default 30)\n"
            "  --max-connections N open connections at once (default 1024)\n"
            "  --max-tokens-limit N  the largest max_tokens a request may ask (default 2048)\n");
}

typedef struct wargs {
    ss_worker_opts_t o;
    const char *model, *token_file, *cache;
    int gpu, threads, no_cache;
    const char *names[16];
    int nnames;
} wargs_t;

static int parse_args(int argc, char **argv, wargs_t *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"gpu", required_argument, 0, 'g'},
        {"host", required_argument, 0, 'H'}, {"listen", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'}, {"threads", required_argument, 0, 't'},
        {"max-queue", required_argument, 0, 'q'}, {"max-batch", required_argument, 0, 'b'},
        {"batch-wait-ms", required_argument, 0, 'w'}, {"max-body", required_argument, 0, 'B'},
        {"step-tokens", required_argument, 0, 's'}, {"whole-batch", no_argument, 0, 'W'},
        {"served-model-name", required_argument, 0, 'n'}, {"auth-token-file", required_argument, 0, 'T'},
        {"cache", required_argument, 0, 'C'}, {"no-cache", no_argument, 0, 'N'},
        {"idle-timeout", required_argument, 0, 'I'}, {"max-connections", required_argument, 0, 'M'},
        {"max-tokens-limit", required_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'g': a->gpu = atoi(optarg); break;
        case 'H': a->o.host = optarg; break;
        case 'p': a->o.port = atoi(optarg); break;
        case 't': a->threads = atoi(optarg); break;
        case 'q': a->o.max_queue = atoi(optarg); break;
        case 'b': a->o.max_batch = atoi(optarg); break;
        case 'w': a->o.batch_wait_ms = atoi(optarg); break;
        case 'B': a->o.max_body = (size_t)atoll(optarg); break;
        case 's': a->o.step_tokens = atoi(optarg); break;
        case 'W': a->o.whole_batch = 1; break;
        case 'n':
            if (a->nnames < (int)SS_ARRAY_LEN(a->names))
                a->names[a->nnames++] = optarg;
            break;
        case 'T': a->token_file = optarg; break;
        case 'C': a->cache = optarg; break;
        case 'N': a->no_cache = 1; break;
        case 'I': a->o.idle_timeout_s = atoi(optarg); break;
        case 'M': a->o.max_connections = atoi(optarg); break;
        case 'L': a->o.max_tokens_limit = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "semstream worker: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (a->o.port < 0 || a->o.port > 65535) {
        fprintf(stderr, "semstream worker: --port must be between 0 and 65535\n");
        return 2;
    }
    return -1;
}

/* The names the model answers to: --served-model-name, else the file name with and without .gguf. */
static void model_names(wargs_t *a, char *stem, size_t n)
{
    const char *slash = strrchr(a->model, '/'), *base = slash ? slash + 1 : a->model;
    snprintf(stem, n, "%s", base);
    size_t l = strlen(stem);
    if (l > 5 && !strcmp(stem + l - 5, ".gguf"))
        stem[l - 5] = 0;
    if (!a->nnames) {
        a->names[a->nnames++] = base;
        if (strcmp(stem, base))
            a->names[a->nnames++] = stem;
    }
    a->o.model_name = a->names[0];
    a->o.aliases = a->names + 1;
    a->o.naliases = a->nnames - 1;
}

/* The answer cache: --cache FILE (an error if it cannot be opened), else MODEL.worker-cache (a
 * warning if it cannot), unless --no-cache. *where names it for the start-up line. */
static int open_cache(wargs_t *a, char *where, size_t n, char *err, size_t errsz)
{
    snprintf(where, n, "none");
    if (a->no_cache)
        return SS_OK;
    char dflt[4096];
    snprintf(dflt, sizeof dflt, "%s.worker-cache", a->model);
    const char *path = a->cache ? a->cache : dflt;
    char cerr[SS_ERRSZ] = "";
    if (ss_worker_cache_open(path, &a->o.cache, cerr, sizeof cerr) != SS_OK) {
        if (a->cache)
            return ss_seterr(err, errsz, SS_ERR_IO, "--cache %s: %s", path, cerr);
        fprintf(stderr, "semstream worker: warning: no answer cache (%s); use --cache FILE or --no-cache\n", cerr);
        return SS_OK;
    }
    snprintf(where, n, "%s", path);
    return SS_OK;
}

int ss_cmd_worker(int argc, char **argv)
{
    wargs_t a;
    memset(&a, 0, sizeof a);
    a.o.port = 8090;
    a.o.batch_wait_ms = 2;
    a.gpu = -1;
    int prc = parse_args(argc, argv, &a);
    if (prc >= 0)
        return prc;
    if (!a.model)
        a.model = ss_default_model();
    if (!a.o.host || !strcmp(a.o.host, "localhost"))
        a.o.host = "127.0.0.1";
    char err[SS_ERRSZ] = "", stem[1024], where[4200];
    char *token = NULL;
    if (a.token_file && !(token = ss_cli_read_token(a.token_file, err, sizeof err))) {
        fprintf(stderr, "semstream worker: %s\n", err);
        return 1;
    }
    if (!ss_cli_is_loopback(a.o.host) && !token) {
        fprintf(stderr, "semstream worker: listening on %s (beyond loopback) needs --auth-token-file: anyone who "
                        "can reach the port could use the model\n", a.o.host);
        return 1;
    }
    a.o.auth_token = token;
    model_names(&a, stem, sizeof stem);
    ss_infer_backend_t *be = a.gpu >= 0 ? ss_backend_cuda_new(a.model, a.gpu, err, sizeof err)
                                        : ss_backend_local_new(a.model, a.threads, err, sizeof err);
    if (!be || open_cache(&a, where, sizeof where, err, sizeof err)) {
        fprintf(stderr, "semstream worker: %s\n", err);
        if (be)
            be->destroy(be);
        free(token);
        return 1;
    }
    ss_llm_t *m = ss_backend_llm_model(be);
    const char *tmpl = m ? ss_llm_chat_format(m) : NULL;
    /* block the stop signals in every thread; the main thread waits for them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    ss_worker_t *w;
    if (ss_worker_start(&a.o, be, &w, err, sizeof err)) {
        fprintf(stderr, "semstream worker: %s\n", err);
        free(token);
        return 1;
    }
    printf("semstream worker: serving %s (%s) on http://%s:%d (chat template: %s; auth: %s; answer cache: %s)\n",
           a.o.model_name, a.gpu >= 0 ? "cuda" : "cpu", a.o.host, ss_worker_port(w), tmpl ? tmpl : "none",
           token ? "bearer token" : "none", where);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "semstream worker: %s received, draining the queue\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ss_worker_stop(w);
    free(token);
    return 0;
}
