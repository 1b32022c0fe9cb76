/*
 * ss_chat.h — chat templates in C (gpu/chat.c). A GGUF's tokenizer.chat_template is
 * a Jinja program; instead of interpreting Jinja we recognise which of the common
 * families a template belongs to (by its markers) and render conversations as that
 * family's template does with add_generation_prompt = true:
 *
 *   ChatML   <|im_start|>role\n...<|im_end|>\n            (Qwen, SmolLM, many fine-tunes)
 *   Llama 3  <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
 *   Llama 2  [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]
 *   Mistral  [INST] ... [/INST]                          (the system message joins the first user turn)
 *   Gemma    <start_of_turn>user\n...<end_of_turn>\n      (the same; the assistant is "model")
 *   Phi-3    <|user|>\n...<|end|>\n<|assistant|>\n
 *   Zephyr   <|user|>\n...</s>\n<|assistant|>\n
 *
 * The BOS token is left to the tokenizer (the engine adds it). A template of none of
 * these families, a role a family cannot express, or a conversation a template would
 * reject (roles not alternating where the family requires it) is an error that says so.
 */
#ifndef SS_CHAT_H
#define SS_CHAT_H

#include "ss_base.h"
#include "ss_infer.h"

typedef enum ss_chat_family {
    SS_CHAT_NONE = -1,
    SS_CHAT_CHATML,
    SS_CHAT_LLAMA3,
    SS_CHAT_GEMMA,
    SS_CHAT_PHI3,
    SS_CHAT_ZEPHYR,
    SS_CHAT_LLAMA2,
    SS_CHAT_MISTRAL,
} ss_chat_family_t;

typedef struct ss_chat_msg {
    const char *role;    /* "system" (or "developer"), "user", "assistant" */
    const char *content; /* len bytes (borrowed) */
    size_t len;
} ss_chat_msg_t;

/* The family of template text tmpl[0..n); SS_CHAT_NONE (err says why) when none. */
ss_chat_family_t ss_chat_recognise(const char *tmpl, size_t n, char *err, size_t errsz);
const char *ss_chat_name(ss_chat_family_t f); /* "chatml", "llama3", ...; NULL for SS_CHAT_NONE */
/* The end-of-turn token's text ("<|im_end|>"...), or NULL where the family ends turns with EOS. */
const char *ss_chat_eot(ss_chat_family_t f);
/* The special tokens a family's rendering relies on (NULL-terminated); a vocabulary lacking one
 * cannot use the family. */
const char *const *ss_chat_markers(ss_chat_family_t f);
/* The family called name ("chatml", ...), or SS_CHAT_NONE. */
ss_chat_family_t ss_chat_family_named(const char *name);
/* A template of family f as real models ship it (abridged), for tests and tools/mkgguf. */
const char *ss_chat_sample_template(ss_chat_family_t f);
/* A default system message written literally in a ChatML template (e.g. Qwen2.5's "You are
 * Qwen, ..."), used when a conversation has none; malloc'd, or NULL. */
char *ss_chat_default_system(const char *tmpl, size_t n);

/* Appends msgs[0..n) rendered in family f, followed by the assistant's header, to out.
 * default_system (may be NULL) is used when msgs has no system message. */
int ss_chat_render(ss_chat_family_t f, const char *default_system, const ss_chat_msg_t *msgs, int n, ss_buf_t *out,
                   char *err, size_t errsz);

/* A CHOOSE answer as it starts the assistant's turn: leading white space removed, then one space
 * for the families whose assistant text follows a space ([INST] ... [/INST] Yes). Appends to out. */
int ss_chat_answer(ss_chat_family_t f, const char *answer, ss_buf_t *out);

/* ---- with a loaded model (ss_llm.h) ---- */
struct ss_llm;
/* The family the model's prompts are rendered in; SS_CHAT_NONE for a base model, an unrecognised
 * template, a vocabulary without the family's tokens, or ss_llm_opts_t.raw_prompts. */
ss_chat_family_t ss_llm_chat_family(const struct ss_llm *m);
/* Why ss_llm_chat_family is SS_CHAT_NONE, in words (for error messages); "" when it is not. */
void ss_llm_chat_explain(const struct ss_llm *m, char *buf, size_t n);
/* Renders msgs with the model's template (its default system message included); SS_ERR_UNSUPPORTED
 * with the reason when the model has no usable template. */
int ss_llm_chat_render(const struct ss_llm *m, const ss_chat_msg_t *msgs, int n, ss_buf_t *out, char *err,
                       size_t errsz);
/* The text the engine runs for request r: the chat form (a system turn of r->system_len bytes and a
 * user turn) when the model has a chat family and r is neither raw nor EMBED; malloc'd, or NULL
 * meaning r->prompt as is. */
char *ss_llm_req_prompt(const struct ss_llm *m, const ss_infer_req_t *r);

#endif
