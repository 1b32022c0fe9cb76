/*
 * cmd_worker.c — `semstream worker`: loads a model on the CPU or a GPU and
 * serves it over OpenAI-compatible HTTP (gpu/worker.c) until SIGINT/SIGTERM.
 */
#include "cli.h"
#include "ss_llm_cuda.h"
#include "ss_worker.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void usage(FILE *f)
{
    fprintf(f,
            "usage: semstream worker [--model FILE] [--gpu N] [--host ADDR] [--port P] [--threads N]\n"
            "                        [--max-queue N] [--max-batch N] [--batch-wait-ms N] [--max-body BYTES]\n"
            "                        [--step-tokens N] [--whole-batch]\n\n"
            "Serves a GGUF model over OpenAI-compatible HTTP: POST /v1/completions (with logprobs),\n"
            "POST /v1/embeddings, GET /v1/models, /health, /metrics. Concurrent requests are batched\n"
            "continuously into shared forward passes: new requests join the running batch between\n"
            "decode steps. A full queue answers 429 with Retry-After.\n\n"
            "  --model FILE      GGUF model (default $SEMSTREAM_MODEL or ../shared/models/stories260K.gguf)\n"
            "  --gpu N           run on CUDA device N (default: CPU)\n"
            "  --host ADDR       listen address (default 127.0.0.1)\n"
            "  --port P          listen port (default 8090; 0 picks a free one)\n"
            "  --threads N       CPU threads (CPU backend)\n"
            "  --max-queue N     queued requests before 429 (default 256)\n"
            "  --max-batch N     requests running together (default 32)\n"
            "  --batch-wait-ms N when idle, wait to gather concurrent requests (default 2)\n"
            "  --step-tokens N   token budget of a step: decode tokens + prompt chunks (default 512)\n"
            "  --whole-batch     answer whole batches, later requests waiting for all of it (old mode)\n"
            "  --max-body BYTES  largest request body (default 1048576)\n");
}

int ss_cmd_worker(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"gpu", required_argument, 0, 'g'},
        {"host", required_argument, 0, 'H'},  {"port", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 't'}, {"max-queue", required_argument, 0, 'q'},
        {"max-batch", required_argument, 0, 'b'}, {"batch-wait-ms", required_argument, 0, 'w'},
        {"max-body", required_argument, 0, 'B'}, {"step-tokens", required_argument, 0, 's'},
        {"whole-batch", no_argument, 0, 'W'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    ss_worker_opts_t o;
    memset(&o, 0, sizeof o);
    o.port = 8090;
    o.batch_wait_ms = 2;
    const char *model = NULL;
    int gpu = -1, threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'g': gpu = atoi(optarg); break;
        case 'H': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'q': o.max_queue = atoi(optarg); break;
        case 'b': o.max_batch = atoi(optarg); break;
        case 'w': o.batch_wait_ms = atoi(optarg); break;
        case 'B': o.max_body = (size_t)atoll(optarg); break;
        case 's': o.step_tokens = atoi(optarg); break;
        case 'W': o.whole_batch = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "semstream worker: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!model)
        model = ss_default_model();
    char err[SS_ERRSZ] = "";
    ss_infer_backend_t *be = NULL;
    if (gpu >= 0)
        be = ss_backend_cuda_new(model, gpu, err, sizeof err);
    else
        be = ss_backend_local_new(model, threads, err, sizeof err);
    if (!be) {
        fprintf(stderr, "semstream worker: %s\n", err);
        return 1;
    }
    const char *slash = strrchr(model, '/');
    o.model_name = slash ? slash + 1 : model;
    /* block the stop signals in every thread; the main thread waits for them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    ss_worker_t *w;
    if (ss_worker_start(&o, be, &w, err, sizeof err)) {
        fprintf(stderr, "semstream worker: %s\n", err);
        return 1;
    }
    printf("semstream worker: serving %s (%s) on http://%s:%d\n", o.model_name, gpu >= 0 ? "cuda" : "cpu",
           o.host ? o.host : "127.0.0.1", ss_worker_port(w));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "semstream worker: %s received, draining the queue\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ss_worker_stop(w);
    return 0;
}
