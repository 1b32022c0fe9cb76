/*
 * mkgguf.c — writes a GGUF v3 model with seeded random weights in the shape of a real
 * model (for benchmarks and tests: speed does not depend on weight values) in any tensor
 * type or in llama.cpp's Q4_K_M / Q5_K_M / Q6_K recipes, with a synthetic tokenizer under
 * a real pre-tokenizer name. Shapes, recipes and writing live in gpu/mkmodel.c.
 *
 *   mkgguf --shape smollm2-135m (--type q8_0 | --mix q4_k_m) --out FILE [--layers N] [--vocab N]
 *          [--seed S] [--pre NAME] [--spm] [--dequantized]
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
    fprintf(f,
            "usage: mkgguf --shape NAME (--type TYPE | --mix MIX) --out FILE [--layers N] [--vocab N] [--seed S]\n"
            "              [--pre NAME] [--spm] [--dequantized]\n"
            "              [--chat-template chatml|llama3|gemma|phi3|zephyr|llama2|mistral]\n"
            "  --type TYPE     every matrix in TYPE: %s\n"
            "  --mix MIX       llama.cpp's recipe: q4_k_m, q5_k_m, q6_k (Q6_K output and attn_v/ffn_down in\n"
            "                  some layers; rows not a multiple of 256 fall back to Q5_0/Q5_1/Q8_0)\n"
            "  --pre NAME      tokenizer.ggml.pre of the byte-level BPE vocabulary: gpt-2, llama-bpe, qwen2,\n"
            "                  smollm (default: the shape's family)\n"
            "  --spm           a SentencePiece vocabulary instead (tokenizer.ggml.model llama, pre default)\n"
            "  --dequantized   every matrix as F32 holding the values its type stores (a reference twin)\n"
            "  --chat-template that family's template as real models ship it, its markers as control tokens\n"
            "shapes: %s\n",
            ss_ggml_type_names(), ss_mkmodel_shape_names());
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"shape", required_argument, 0, 's'}, {"type", required_argument, 0, 't'},
                                         {"mix", required_argument, 0, 'm'},   {"out", required_argument, 0, 'o'},
                                         {"layers", required_argument, 0, 'l'}, {"vocab", required_argument, 0, 'v'},
                                         {"seed", required_argument, 0, 'S'},  {"pre", required_argument, 0, 'p'},
                                         {"spm", no_argument, 0, 'P'},         {"dequantized", no_argument, 0, 'D'},
                                         {"chat-template", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *shape = NULL, *type = NULL, *mix = NULL, *out = NULL, *pre = NULL, *chat = NULL;
    int layers = 0, vocab = 0, spm = 0, deq = 0, c;
    unsigned long long seed = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': shape = optarg; break;
        case 't': type = optarg; break;
        case 'm': mix = optarg; break;
        case 'o': out = optarg; break;
        case 'l': layers = atoi(optarg); break;
        case 'v': vocab = atoi(optarg); break;
        case 'S': seed = strtoull(optarg, NULL, 10); break;
        case 'p': pre = optarg; break;
        case 'P': spm = 1; break;
        case 'D': deq = 1; break;
        case 'c': chat = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    ss_mkmodel_spec_t s;
    if (!shape || !out || !ss_mkmodel_shape(shape, &s)) {
        fprintf(stderr, "mkgguf: %s\n", !shape || !out ? "--shape and --out are required" : "unknown shape");
        usage(stderr);
        return 2;
    }
    if (type && (s.type = ss_ggml_type_parse(type)) < 0) {
        fprintf(stderr, "mkgguf: unknown type '%s' (%s)\n", type, ss_ggml_type_names());
        return 2;
    }
    if (!type)
        s.type = SS_GGML_Q8_0;
    if (mix && (s.mix = ss_mkmodel_mix_parse(mix)) < 0) {
        fprintf(stderr, "mkgguf: unknown mix '%s' (q4_k_m, q5_k_m, q6_k)\n", mix);
        return 2;
    }
    if (type && mix) {
        fprintf(stderr, "mkgguf: --type and --mix exclude each other\n");
        return 2;
    }
    s.seed = seed;
    s.spm = spm;
    s.dequantized = deq;
    if (pre)
        s.pre = pre;
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
    printf("wrote %s: %s-shaped %s%s, %d layers, dim %d, vocab %d, %s tokenizer (pre %s)\n", out, s.name,
           mix ? mix : ss_ggml_type_name(s.type), deq ? " (dequantized to f32)" : "", s.n_layers, s.dim, s.vocab,
           spm ? "SentencePiece" : "byte-level BPE", spm ? "default" : s.pre);
    return 0;
}
