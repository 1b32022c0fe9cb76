/*
 * cmd_generate.c — `semstream generate`: loads a GGUF model with the CPU engine and
 * prints the continuation of a prompt (greedy, or seeded temperature sampling).
 * For trying a model; the same code path answers GENERATE requests of views.
 */
#include "cli.h"
#include "ss_llm.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: semstream generate [--model FILE] [--prompt TEXT] [--max-tokens N]\n"
               "                          [--temperature T --seed S] [--stop TEXT] [--threads N] [--stats]\n\n"
               "Prints the model's continuation of the prompt (greedy unless --temperature > 0).\n\n"
               "  --model FILE       GGUF model (default $SEMSTREAM_MODEL or ../shared/models/stories260K.gguf)\n"
               "  --prompt TEXT      prompt (default: empty, i.e. start from BOS)\n"
               "  --max-tokens N     tokens to generate (default 128)\n"
               "  --temperature T    sampling temperature (default 0 = greedy)\n"
               "  --seed S           sampling seed (default 1)\n"
               "  --stop TEXT        stop before this text\n"
               "  --threads N        CPU threads (default: all cores)\n"
               "  --stats            print token counts and speed to stderr\n");
}

int ss_cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"prompt", required_argument, 0, 'p'},
        {"max-tokens", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 't'},
        {"seed", required_argument, 0, 's'},    {"threads", required_argument, 0, 'j'},
        {"stop", required_argument, 0, 'S'},    {"stats", no_argument, 0, 'x'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *model = NULL, *prompt = "", *stop = NULL;
    int maxt = 128, threads = 0, stats = 0, c;
    float temp = 0;
    uint64_t seed = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': maxt = atoi(optarg); break;
        case 't': temp = strtof(optarg, NULL); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'j': threads = atoi(optarg); break;
        case 'S': stop = optarg; break;
        case 'x': stats = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || maxt <= 0 || temp < 0) {
        usage(stderr);
        return 2;
    }
    if (!model)
        model = ss_default_model();
    char err[SS_ERRSZ] = "";
    ss_llm_opts_t o = {.threads = threads};
    ss_llm_t *m = NULL;
    if (ss_llm_open(model, &o, &m, err, sizeof err)) {
        fprintf(stderr, "semstream generate: %s\n", err);
        return 1;
    }
    ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = prompt, .max_tokens = maxt, .temperature = temp,
                        .seed = seed, .stop = stop};
    ss_infer_res_t res;
    memset(&res, 0, sizeof res);
    int64_t t0 = ss_now_ns();
    int rc = ss_llm_run(m, &r, 1, &res, err, sizeof err);
    double s = (double)(ss_now_ns() - t0) / 1e9;
    if (!rc && res.status)
        snprintf(err, sizeof err, "%s", res.error ? res.error : ss_err2str((ss_err_t)res.status));
    if (rc || res.status) {
        fprintf(stderr, "semstream generate: %s\n", err);
        ss_infer_res_clear(&res);
        ss_llm_close(m);
        return 1;
    }
    printf("%s%s\n", prompt, res.text ? res.text : "");
    if (stats)
        fprintf(stderr, "model %s: %d prompt tokens, %d generated in %.3f s (%.1f tok/s)\n", ss_llm_id(m),
                res.prompt_tokens, res.gen_tokens, s, s > 0 ? res.gen_tokens / s : 0.0);
    ss_infer_res_clear(&res);
    ss_llm_close(m);
    return 0;
}
