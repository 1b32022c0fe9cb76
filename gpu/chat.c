/*
 * chat.c — the chat template's essentials for instruct models. A GGUF's
 * tokenizer.chat_template is a Jinja program; instead of interpreting it we
 * recognise the family it belongs to by its markers (ChatML, Llama 3, Zephyr,
 * Llama 2 [INST], Gemma) and, when the family's special tokens are in the
 * vocabulary, present every CHOOSE/GENERATE/SCORE prompt as one user turn
 * followed by the assistant's header — the form such models were tuned on.
 * Generation also stops at the family's end-of-turn token. Base models (no
 * template) and ss_llm_opts_t.raw_prompts get prompts exactly as given.
 */
#include "llm_internal.h"

#include <string.h>

typedef struct chat_family {
    const char *marker; /* text that identifies the template */
    const char *name;
    const char *pre;    /* before the user's text */
    const char *post;   /* after it: end of turn, then the assistant's header */
    const char *eot;    /* end-of-turn token that ends a generated answer */
} chat_family_t;

static const chat_family_t families[] = {
    {"<|im_start|>", "chatml", "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>"},
    {"<|start_header_id|>", "llama3", "<|start_header_id|>user<|end_header_id|>\n\n",
     "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"},
    {"<start_of_turn>", "gemma", "<start_of_turn>user\n", "<end_of_turn>\n<start_of_turn>model\n",
     "<end_of_turn>"},
    {"<|user|>", "zephyr", "<|user|>\n", "</s>\n<|assistant|>\n", NULL},
    {"[INST]", "llama2", "[INST] ", " [/INST]", NULL},
};

/* Id of the control/user-defined token whose text is s, or -1. */
static int special_id(const tokenizer_t *t, const char *s)
{
    for (int i = 0; i < t->nspecial; i++)
        if (!strcmp(t->text[t->special[i]], s))
            return t->special[i];
    return -1;
}

/* 1 if every <|...|> / <...> marker of text is a special token of the vocabulary. */
static int markers_known(const tokenizer_t *t, const char *text)
{
    for (const char *p = text; (p = strchr(p, '<')) != NULL; p++) {
        const char *e = strchr(p, '>');
        if (!e || (p[1] != '|' && strncmp(p, "<start_of_turn>", 15) && strncmp(p, "<end_of_turn>", 13)))
            continue;
        char tok[64];
        size_t n = (size_t)(e - p + 1);
        if (n >= sizeof tok)
            return 0;
        memcpy(tok, p, n);
        tok[n] = 0;
        if (special_id(t, tok) < 0)
            return 0;
    }
    return 1;
}

void chat_detect(ss_llm_t *m)
{
    m->chat = -1;
    m->eot = -1;
    ss_gguf_str_t tmpl;
    if (!ss_gguf_get_str(m->g, "tokenizer.chat_template", &tmpl))
        return;
    for (int f = 0; f < (int)SS_ARRAY_LEN(families); f++) {
        const chat_family_t *c = &families[f];
        size_t ml = strlen(c->marker);
        int found = 0;
        for (size_t i = 0; !found && i + ml <= tmpl.n; i++)
            found = !memcmp(tmpl.p + i, c->marker, ml);
        if (!found)
            continue;
        if (!markers_known(&m->tok, c->pre) || !markers_known(&m->tok, c->post))
            return; /* a template whose tokens the vocabulary lacks: use prompts as given */
        m->chat = f;
        m->eot = c->eot ? special_id(&m->tok, c->eot) : -1;
        return;
    }
}

const char *ss_llm_chat_format(const ss_llm_t *m) { return m->chat >= 0 ? families[m->chat].name : NULL; }

char *ss_llm_chat_prompt(const ss_llm_t *m, const char *prompt)
{
    if (m->chat < 0)
        return NULL;
    return ss_sprintf("%s%s%s", families[m->chat].pre, prompt ? prompt : "", families[m->chat].post);
}
