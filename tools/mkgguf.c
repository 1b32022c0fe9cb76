/*
 * mkgguf.c — writes a GGUF v3 model with seeded random weights in the shape of a
 * real model (for benchmarks: speed does not depend on weight values) and a
 * synthetic gpt2-style tokenizer. Shapes and writing live in gpu/mkmodel.c.
 *
 *   mkgguf --shape smollm2-135m --type q8_0 --out FILE [--layers N] [--vocab N] [--seed S]
 *          [--chat-template chatml|llama3|gemma|phi3|zephyr|llama2|mistral]
 *
 * --chat-template writes that family's template as real models ship it (gpu/chat.c)
 * and adds its markers to the vocabulary as control tokens, so the model is a chat
 * model to the engine and the worker (weights are random: its answers mean nothing).
 */
#include "ss_chat.h"
#include "ss_gguf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: mkgguf --shape NAME --type f32|f16|bf16|q8_0|q4_0 --out FILE [--layers N] [--vocab N] [--seed S]\n"
               "              [--chat-template chatml|llama3|gemma|phi3|zephyr|llama2|mistral]\n"
               "shapes: %s\n", ss_mkmodel_shape_names());
}

static int parse_type(const char *s)
{
    static const int types[] = {SS_GGML_F32, SS_GGML_F16, SS_GGML_BF16, SS_GGML_Q8_0, SS_GGML_Q4_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(s, ss_ggml_type_name(types[i])))
            return types[i];
    return -1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"shape", required_argument, 0, 's'}, {"type", required_argument, 0, 't'},
                                         {"out", required_argument, 0, 'o'},   {"layers", required_argument, 0, 'l'},
                                         {"vocab", required_argument, 0, 'v'}, {"seed", required_argument, 0, 'S'},
                                         {"chat-template", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *shape = NULL, *type = "q8_0", *out = NULL, *chat = NULL;
    int layers = 0, vocab = 0, c;
    unsigned long long seed = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': shape = optarg; break;
        case 't': type = optarg; break;
        case 'o': out = optarg; break;
        case 'l': layers = atoi(optarg); break;
        case 'v': vocab = atoi(optarg); break;
        case 'S': seed = strtoull(optarg, NULL, 10); break;
        case 'c': chat = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    ss_mkmodel_spec_t s;
    if (!shape || !out || !ss_mkmodel_shape(shape, &s) || parse_type(type) < 0) {
        usage(stderr);
        return 2;
    }
    s.type = parse_type(type);
    s.seed = seed;
    if (layers > 0)
        s.n_layers = layers;
    if (vocab > 0)
        s.vocab = vocab;
    if (chat) {
        ss_chat_family_t f = ss_chat_family_named(chat);
        if (f == SS_CHAT_NONE) {
            fprintf(stderr, "mkgguf: unknown chat template family '%s'\n", chat);
            return 2;
        }
        s.chat_template = ss_chat_sample_template(f);
        s.special_tokens = ss_chat_markers(f);
    }
    char err[SS_ERRSZ];
    if (ss_mkmodel_write(&s, out, err, sizeof err)) {
        fprintf(stderr, "mkgguf: %s\n", err);
        return 1;
    }
    printf("wrote %s: %s-shaped %s, %d layers, dim %d, vocab %d\n", out, s.name, type, s.n_layers, s.dim, s.vocab);
    return 0;
}
