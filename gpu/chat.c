/*
 * chat.c — implements ss_chat.h: recognising a GGUF's chat template by family and
 * rendering conversations in it, and the model-bound entry points the engine and
 * the worker use (ss_llm_chat_*, ss_llm_req_prompt; ss_llm_chat_format and
 * ss_llm_chat_prompt of ss_llm.h).
 *
 * The engine renders every CHOOSE/GENERATE/SCORE prompt of a chat model in its own
 * template (a system turn of the request's system_len bytes, then a user turn, then
 * the assistant's header) unless the request is raw; generation also stops at the
 * family's end-of-turn token. Base models (no template) and ss_llm_opts_t.raw_prompts
 * get prompts exactly as given. Owns nothing beyond the strings it returns.
 */
#include "ss_chat.h"

#include "llm_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ families */

typedef struct family {
    const char *name;
    const char *need[3];    /* markers that must all be in the template text */
    const char *without;    /* a marker that must not be (Mistral: no <<SYS>>) */
    const char *eot;
    const char *markers[5]; /* special tokens the rendering needs in the vocabulary */
    int answer_space;       /* the assistant's text follows a space */
} family_t;

/* In recognition order: Phi-3 before Zephyr (both use <|user|>). */
static const family_t fam[] = {
    [SS_CHAT_CHATML] = {"chatml", {"<|im_start|>"}, NULL, "<|im_end|>", {"<|im_start|>", "<|im_end|>"}, 0},
    [SS_CHAT_LLAMA3] = {"llama3", {"<|start_header_id|>", "<|eot_id|>"}, NULL, "<|eot_id|>",
                        {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}, 0},
    [SS_CHAT_GEMMA] = {"gemma", {"<start_of_turn>"}, NULL, "<end_of_turn>", {"<start_of_turn>", "<end_of_turn>"}, 0},
    [SS_CHAT_PHI3] = {"phi3", {"<|user|>", "<|end|>"}, NULL, "<|end|>", {"<|user|>", "<|assistant|>", "<|end|>"}, 0},
    [SS_CHAT_ZEPHYR] = {"zephyr", {"<|user|>", "<|assistant|>"}, NULL, NULL, {NULL}, 0}, /* markers are text */
    [SS_CHAT_LLAMA2] = {"llama2", {"[INST]", "<<SYS>>"}, NULL, NULL, {NULL}, 1},
    [SS_CHAT_MISTRAL] = {"mistral", {"[INST]"}, "<<SYS>>", NULL, {NULL}, 1},
};
#define NFAM ((int)(sizeof fam / sizeof fam[0]))

static int has(const char *t, size_t n, const char *s)
{
    size_t l = strlen(s);
    for (size_t i = 0; i + l <= n; i++)
        if (t[i] == s[0] && !memcmp(t + i, s, l))
            return 1;
    return 0;
}

ss_chat_family_t ss_chat_recognise(const char *tmpl, size_t n, char *err, size_t errsz)
{
    if (!tmpl || !n) {
        ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "the model has no chat template (tokenizer.chat_template)");
        return SS_CHAT_NONE;
    }
    for (int f = 0; f < NFAM; f++) {
        int ok = 1;
        for (int k = 0; k < 3 && fam[f].need[k] && ok; k++)
            ok = has(tmpl, n, fam[f].need[k]);
        if (ok && fam[f].without && has(tmpl, n, fam[f].without))
            ok = 0;
        if (ok)
            return (ss_chat_family_t)f;
    }
    char head[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof head; i++)
        head[k++] = (tmpl[i] == '\n' || tmpl[i] == '\r' || tmpl[i] == '\t') ? ' ' : tmpl[i];
    head[k] = 0;
    ss_seterr(err, errsz, SS_ERR_UNSUPPORTED,
              "the model's chat template is not one semstream can render (it renders ChatML, Llama 3, Llama 2, "
              "Mistral, Gemma, Phi-3 and Zephyr templates); it begins \"%s%s\"",
              head, n > k ? "..." : "");
    return SS_CHAT_NONE;
}

const char *ss_chat_name(ss_chat_family_t f) { return (int)f >= 0 && (int)f < NFAM ? fam[f].name : NULL; }
const char *ss_chat_eot(ss_chat_family_t f) { return (int)f >= 0 && (int)f < NFAM ? fam[f].eot : NULL; }
const char *const *ss_chat_markers(ss_chat_family_t f)
{
    static const char *const none[] = {NULL};
    return (int)f >= 0 && (int)f < NFAM ? fam[f].markers : none;
}

/* Templates as real models ship them (abridged to what decides the rendering). */
static const char *const samples[] = {
    [SS_CHAT_CHATML] = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                       "{{ '<|im_start|>system\\nYou are a helpful AI assistant.<|im_end|>\\n' }}{% endif %}"
                       "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
                       "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    [SS_CHAT_LLAMA3] = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                       "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim "
                       "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                       "{{ content }}{% endfor %}{% if add_generation_prompt %}"
                       "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
    [SS_CHAT_GEMMA] = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}"
                      "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
                      "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
                      "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}",
    [SS_CHAT_PHI3] = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + "
                     "message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + "
                     "message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
                     "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
                     "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
    [SS_CHAT_ZEPHYR] = "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + "
                       "message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ '<|system|>\\n' + "
                       "message['content'] + eos_token }}{% elif message['role'] == 'assistant' %}"
                       "{{ '<|assistant|>\\n'  + message['content'] + eos_token }}{% endif %}"
                       "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}{% endfor %}",
    [SS_CHAT_LLAMA2] = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
                       "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
                       "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
                       "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + "
                       "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}"
                       "{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
                       "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == "
                       "'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
    [SS_CHAT_MISTRAL] = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                        "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
                        "{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
};

const char *ss_chat_sample_template(ss_chat_family_t f) { return (int)f >= 0 && (int)f < NFAM ? samples[f] : NULL; }

ss_chat_family_t ss_chat_family_named(const char *name)
{
    for (int f = 0; name && f < NFAM; f++)
        if (!strcmp(name, fam[f].name))
            return (ss_chat_family_t)f;
    return SS_CHAT_NONE;
}

/* ------------------------------------------------------------ default system message */

/* Unescapes a Jinja string literal's body s[0..n) (\n, \t, \\, \', \"); NULL if it is not a plain
 * literal (a quote or an expression inside). */
static char *unescape_literal(const char *s, size_t n)
{
    ss_buf_t b = SS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\'' || c == '"' || c == '{' || c == '}') {
            ss_buf_free(&b);
            return NULL;
        }
        if (c == '\\' && i + 1 < n) {
            char e = s[++i];
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
        }
        ss_buf_putc(&b, c);
    }
    return ss_buf_take(&b);
}

char *ss_chat_default_system(const char *tmpl, size_t n)
{
    static const char open[] = "<|im_start|>system\\n", close[] = "<|im_end|>";
    size_t lo = sizeof open - 1, lc = sizeof close - 1;
    for (size_t i = 0; tmpl && i + lo <= n; i++) {
        if (memcmp(tmpl + i, open, lo))
            continue;
        size_t s = i + lo, e = s;
        while (e + lc <= n && memcmp(tmpl + e, close, lc))
            e++;
        if (e + lc > n)
            return NULL;
        char *lit = e > s ? unescape_literal(tmpl + s, e - s) : NULL;
        if (lit)
            return lit;
    }
    return NULL;
}

/* ------------------------------------------------------------ rendering */

typedef enum { R_SYSTEM, R_USER, R_ASSISTANT } role_t;

static int role_of(const ss_chat_msg_t *m, role_t *r)
{
    const char *s = m->role ? m->role : "";
    if (!strcmp(s, "system") || !strcmp(s, "developer"))
        *r = R_SYSTEM;
    else if (!strcmp(s, "user"))
        *r = R_USER;
    else if (!strcmp(s, "assistant"))
        *r = R_ASSISTANT;
    else
        return -1;
    return 0;
}

/* Appends s[0..n) with leading and trailing white space removed (Jinja's | trim). */
static int put_trim(ss_buf_t *b, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return ss_buf_append(b, s, n);
}

static int put(ss_buf_t *b, const char *s, size_t n) { return ss_buf_append(b, s, n); }

/* Families with one turn per message and a native system role. */
static int render_turns(ss_chat_family_t f, const ss_chat_msg_t *msgs, const role_t *roles, int n, ss_buf_t *out)
{
    static const char *const names[] = {"system", "user", "assistant"};
    int rc = SS_OK;
    for (int i = 0; i < n && !rc; i++) {
        const ss_chat_msg_t *m = &msgs[i];
        const char *rn = names[roles[i]];
        switch (f) {
        case SS_CHAT_CHATML:
            rc = ss_buf_printf(out, "<|im_start|>%s\n", rn);
            if (!rc) rc = put(out, m->content, m->len);
            if (!rc) rc = ss_buf_puts(out, "<|im_end|>\n");
            break;
        case SS_CHAT_LLAMA3:
            rc = ss_buf_printf(out, "<|start_header_id|>%s<|end_header_id|>\n\n", rn);
            if (!rc) rc = put_trim(out, m->content, m->len);
            if (!rc) rc = ss_buf_puts(out, "<|eot_id|>");
            break;
        case SS_CHAT_PHI3:
        case SS_CHAT_ZEPHYR:
            rc = ss_buf_printf(out, "<|%s|>\n", rn);
            if (!rc) rc = put(out, m->content, m->len);
            if (!rc) rc = ss_buf_puts(out, f == SS_CHAT_PHI3 ? "<|end|>\n" : "</s>\n");
            break;
        default:
            return SS_ERR_INTERNAL;
        }
    }
    if (rc)
        return rc;
    switch (f) {
    case SS_CHAT_CHATML: return ss_buf_puts(out, "<|im_start|>assistant\n");
    case SS_CHAT_LLAMA3: return ss_buf_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    default: return ss_buf_puts(out, "<|assistant|>\n");
    }
}

/* Families whose turns must alternate user/assistant, starting with the user; the system message
 * goes into the first user turn (Llama 2 in <<SYS>>, the others as a paragraph before it). */
static int render_alternating(ss_chat_family_t f, const ss_chat_msg_t *msgs, const role_t *roles, int n,
                              ss_buf_t *out, char *err, size_t errsz)
{
    const ss_chat_msg_t *sys = NULL;
    int first = 0, rc = SS_OK;
    if (n > 0 && roles[0] == R_SYSTEM)
        sys = &msgs[0], first = 1;
    for (int i = first, k = 0; i < n; i++, k++)
        if (roles[i] != (k % 2 == 0 ? R_USER : R_ASSISTANT))
            return ss_seterr(err, errsz, SS_ERR_INVALID,
                             "the model's %s chat template needs the conversation to alternate user/assistant/user/... "
                             "after an optional first system message; message %d is a %s message",
                             fam[f].name, i, msgs[i].role);
    if (n - first == 0 || roles[n - 1] != R_USER)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "the conversation must end with a user message");
    for (int i = first; i < n && !rc; i++) {
        const ss_chat_msg_t *m = &msgs[i];
        int with_sys = sys && i == first;
        if (roles[i] == R_USER) {
            if (f == SS_CHAT_GEMMA) {
                rc = ss_buf_puts(out, "<start_of_turn>user\n");
                if (!rc && with_sys) rc = put_trim(out, sys->content, sys->len);
                if (!rc && with_sys) rc = ss_buf_puts(out, "\n\n");
                if (!rc) rc = put_trim(out, m->content, m->len);
                if (!rc) rc = ss_buf_puts(out, "<end_of_turn>\n");
            } else {
                rc = ss_buf_puts(out, i == first ? "[INST] " : (f == SS_CHAT_LLAMA2 ? "<s>[INST] " : "[INST] "));
                if (!rc && with_sys && f == SS_CHAT_LLAMA2) {
                    rc = ss_buf_puts(out, "<<SYS>>\n");
                    if (!rc) rc = put_trim(out, sys->content, sys->len);
                    if (!rc) rc = ss_buf_puts(out, "\n<</SYS>>\n\n");
                } else if (!rc && with_sys) {
                    rc = put_trim(out, sys->content, sys->len);
                    if (!rc) rc = ss_buf_puts(out, "\n\n");
                }
                if (!rc) rc = put_trim(out, m->content, m->len);
                if (!rc) rc = ss_buf_puts(out, " [/INST]");
            }
        } else if (f == SS_CHAT_GEMMA) {
            rc = ss_buf_puts(out, "<start_of_turn>model\n");
            if (!rc) rc = put_trim(out, m->content, m->len);
            if (!rc) rc = ss_buf_puts(out, "<end_of_turn>\n");
        } else {
            rc = ss_buf_putc(out, ' ');
            if (!rc) rc = put_trim(out, m->content, m->len);
            if (!rc) rc = ss_buf_puts(out, f == SS_CHAT_LLAMA2 ? " </s>" : "</s>");
        }
    }
    if (!rc && f == SS_CHAT_GEMMA)
        rc = ss_buf_puts(out, "<start_of_turn>model\n");
    return rc;
}

int ss_chat_render(ss_chat_family_t f, const char *default_system, const ss_chat_msg_t *msgs, int n, ss_buf_t *out,
                   char *err, size_t errsz)
{
    if ((int)f < 0 || (int)f >= NFAM)
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "no chat template to render with");
    if (n <= 0)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "the conversation has no messages");
    ss_chat_msg_t *all = calloc((size_t)n + 1, sizeof *all);
    role_t *roles = calloc((size_t)n + 1, sizeof *roles);
    int rc = all && roles ? SS_OK : ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    int k = 0, nsys = 0;
    for (int i = 0; i < n && !rc; i++) {
        role_t r;
        if (role_of(&msgs[i], &r))
            rc = ss_seterr(err, errsz, SS_ERR_UNSUPPORTED,
                           "message %d has role \"%s\"; the %s chat template renders system, user and assistant "
                           "messages",
                           i, msgs[i].role ? msgs[i].role : "", fam[f].name);
        else if (r == R_SYSTEM && i > 0)
            rc = ss_seterr(err, errsz, SS_ERR_INVALID, "a system message must come first (message %d is one)", i);
        nsys += r == R_SYSTEM;
    }
    if (!rc && !nsys && default_system && *default_system) {
        all[k] = (ss_chat_msg_t){"system", default_system, strlen(default_system)};
        roles[k++] = R_SYSTEM;
    }
    for (int i = 0; i < n && !rc; i++) {
        all[k] = msgs[i];
        if (!all[k].content)
            all[k].content = "", all[k].len = 0;
        role_of(&msgs[i], &roles[k++]);
    }
    if (!rc) {
        size_t at = out->len;
        if (f == SS_CHAT_GEMMA || f == SS_CHAT_LLAMA2 || f == SS_CHAT_MISTRAL)
            rc = render_alternating(f, all, roles, k, out, err, errsz);
        else
            rc = render_turns(f, all, roles, k, out);
        if (rc) {
            out->len = at;
            if (rc == SS_ERR_NOMEM)
                ss_seterr(err, errsz, rc, "out of memory");
        }
    }
    free(all);
    free(roles);
    return rc;
}

int ss_chat_answer(ss_chat_family_t f, const char *answer, ss_buf_t *out)
{
    const char *a = answer ? answer : "";
    while (*a == ' ' || *a == '\t' || *a == '\n')
        a++;
    if ((int)f >= 0 && (int)f < NFAM && fam[f].answer_space && ss_buf_putc(out, ' '))
        return SS_ERR_NOMEM;
    return ss_buf_puts(out, a);
}

/* ------------------------------------------------------------ with a model */

/* Id of the control/user-defined token whose text is s, or -1. */
static int special_id(const tokenizer_t *t, const char *s)
{
    for (int i = 0; i < t->nspecial; i++)
        if (!strcmp(t->text[t->special[i]], s))
            return t->special[i];
    return -1;
}

/* The first marker of family f missing from the vocabulary, or NULL. */
static const char *missing_marker(const ss_llm_t *m, ss_chat_family_t f)
{
    for (const char *const *k = ss_chat_markers(f); *k; k++)
        if (special_id(&m->tok, *k) < 0)
            return *k;
    return NULL;
}

void chat_detect(ss_llm_t *m)
{
    m->chat = -1;
    m->eot = -1;
    ss_gguf_str_t tmpl;
    if (!ss_gguf_get_str(m->g, "tokenizer.chat_template", &tmpl))
        return;
    ss_chat_family_t f = ss_chat_recognise(tmpl.p, tmpl.n, NULL, 0);
    if (f == SS_CHAT_NONE || missing_marker(m, f))
        return; /* unknown template, or its tokens are not in the vocabulary: prompts as given */
    m->chat = (int)f;
    m->eot = ss_chat_eot(f) ? special_id(&m->tok, ss_chat_eot(f)) : -1;
}

ss_chat_family_t ss_llm_chat_family(const ss_llm_t *m) { return m->chat >= 0 ? (ss_chat_family_t)m->chat : SS_CHAT_NONE; }

const char *ss_llm_chat_format(const ss_llm_t *m) { return ss_chat_name(ss_llm_chat_family(m)); }

void ss_llm_chat_explain(const ss_llm_t *m, char *buf, size_t n)
{
    if (!n)
        return;
    buf[0] = 0;
    if (m->chat >= 0)
        return;
    ss_gguf_str_t tmpl;
    if (!ss_gguf_get_str(m->g, "tokenizer.chat_template", &tmpl)) {
        snprintf(buf, n, "the model has no chat template (tokenizer.chat_template); use /v1/completions");
        return;
    }
    ss_chat_family_t f = ss_chat_recognise(tmpl.p, tmpl.n, buf, n);
    const char *miss = f != SS_CHAT_NONE ? missing_marker(m, f) : NULL;
    if (miss)
        snprintf(buf, n, "the model's %s chat template uses %s, which is not a special token of its vocabulary",
                 ss_chat_name(f), miss);
    else if (f != SS_CHAT_NONE)
        snprintf(buf, n, "chat templates are turned off for this model (raw prompts)");
}

static char *default_system(const ss_llm_t *m)
{
    ss_gguf_str_t tmpl;
    if (m->chat != SS_CHAT_CHATML || !ss_gguf_get_str(m->g, "tokenizer.chat_template", &tmpl))
        return NULL;
    return ss_chat_default_system(tmpl.p, tmpl.n);
}

int ss_llm_chat_render(const ss_llm_t *m, const ss_chat_msg_t *msgs, int n, ss_buf_t *out, char *err, size_t errsz)
{
    if (m->chat < 0) {
        char why[SS_ERRSZ];
        ss_llm_chat_explain(m, why, sizeof why);
        return ss_seterr(err, errsz, SS_ERR_UNSUPPORTED, "%s", why);
    }
    char *sys = default_system(m);
    int rc = ss_chat_render((ss_chat_family_t)m->chat, sys, msgs, n, out, err, errsz);
    free(sys);
    return rc;
}

char *ss_llm_req_prompt(const ss_llm_t *m, const ss_infer_req_t *r)
{
    if (m->chat < 0 || r->raw || r->kind == SS_INFER_EMBED)
        return NULL;
    const char *p = r->prompt ? r->prompt : "";
    size_t len = strlen(p), sl = SS_MIN(r->system_len, len);
    ss_chat_msg_t msgs[2];
    int n = 0;
    if (sl)
        msgs[n++] = (ss_chat_msg_t){"system", p, sl};
    msgs[n++] = (ss_chat_msg_t){"user", p + sl, len - sl};
    ss_buf_t b = SS_BUF_INIT;
    if (ss_llm_chat_render(m, msgs, n, &b, NULL, 0) != SS_OK) {
        ss_buf_free(&b);
        return NULL;
    }
    return ss_buf_take(&b);
}

char *ss_llm_chat_prompt(const ss_llm_t *m, const char *prompt)
{
    ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = prompt};
    return ss_llm_req_prompt(m, &r);
}
