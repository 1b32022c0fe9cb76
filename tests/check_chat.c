/*
 * check_chat.c — chat templates (gpu/chat.c) and the request fields that came with
 * them: each family recognised from a template as real models ship it and rendered
 * exactly as that template renders a conversation; the errors for templates, roles
 * and orders it cannot render; the engine's chat form of a request with a system
 * part (and the answers of a CHOOSE starting the assistant's turn); stop lists and
 * per-token reports in the engine; and the cache key of the new request fields.
 */
#include "ss_cache.h"
#include "ss_chat.h"
#include "ss_gguf.h"
#include "ss_llm.h"
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ss_chat_family_t recognise(const char *t, char *err, size_t n) { return ss_chat_recognise(t, strlen(t), err, n); }

START_TEST(test_recognise)
{
    static const char *names[] = {"chatml", "llama3", "gemma", "phi3", "zephyr", "llama2", "mistral"};
    char err[SS_ERRSZ];
    for (int f = 0; f < (int)SS_ARRAY_LEN(names); f++) {
        ss_chat_family_t fam = ss_chat_family_named(names[f]);
        ck_assert_int_eq(fam, f);
        ck_assert_int_eq(recognise(ss_chat_sample_template(fam), err, sizeof err), fam);
        ck_assert_str_eq(ss_chat_name(fam), names[f]);
    }
    ck_assert_int_eq(recognise("{{ messages[0]['content'] }}<|turn|>", err, sizeof err), SS_CHAT_NONE);
    ck_assert_msg(strstr(err, "not one semstream can render") && strstr(err, "it begins \"{{ messages[0]['content']"),
                  "%s", err);
    ck_assert_int_eq(ss_chat_recognise(NULL, 0, err, sizeof err), SS_CHAT_NONE);
    ck_assert_msg(strstr(err, "no chat template"), "%s", err);
    ck_assert_int_eq(ss_chat_family_named("vicuna"), SS_CHAT_NONE);
    ck_assert_str_eq(ss_chat_eot(SS_CHAT_LLAMA3), "<|eot_id|>");
    ck_assert_ptr_null(ss_chat_eot(SS_CHAT_LLAMA2));
}
END_TEST

static char *render(ss_chat_family_t f, const char *sys, const ss_chat_msg_t *m, int n, int *rc, char *err, size_t errsz)
{
    ss_buf_t b = SS_BUF_INIT;
    *rc = ss_chat_render(f, sys, m, n, &b, err, errsz);
    return ss_buf_take(&b);
}

#define MSG(r, c) {r, c, sizeof(c) - 1}

START_TEST(test_render_families)
{
    const ss_chat_msg_t conv[] = {MSG("system", "Be brief."), MSG("user", "Hi "), MSG("assistant", " Hello!"),
                                  MSG("user", "Is it?")};
    struct { ss_chat_family_t f; const char *want; } t[] = {
        {SS_CHAT_CHATML, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi <|im_end|>\n"
                         "<|im_start|>assistant\n Hello!<|im_end|>\n<|im_start|>user\nIs it?<|im_end|>\n"
                         "<|im_start|>assistant\n"},
        {SS_CHAT_LLAMA3, "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nIs it?<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n"},
        {SS_CHAT_GEMMA, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
                        "<start_of_turn>user\nIs it?<end_of_turn>\n<start_of_turn>model\n"},
        {SS_CHAT_PHI3, "<|system|>\nBe brief.<|end|>\n<|user|>\nHi <|end|>\n<|assistant|>\n Hello!<|end|>\n"
                       "<|user|>\nIs it?<|end|>\n<|assistant|>\n"},
        {SS_CHAT_ZEPHYR, "<|system|>\nBe brief.</s>\n<|user|>\nHi </s>\n<|assistant|>\n Hello!</s>\n"
                         "<|user|>\nIs it?</s>\n<|assistant|>\n"},
        {SS_CHAT_LLAMA2, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Is it? [/INST]"},
        {SS_CHAT_MISTRAL, "[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] Is it? [/INST]"},
    };
    char err[SS_ERRSZ];
    for (size_t i = 0; i < SS_ARRAY_LEN(t); i++) {
        int rc;
        char *got = render(t[i].f, NULL, conv, 4, &rc, err, sizeof err);
        ck_assert_msg(rc == SS_OK, "%s: %s", ss_chat_name(t[i].f), err);
        ck_assert_msg(!strcmp(got, t[i].want), "%s:\n got  %s\n want %s", ss_chat_name(t[i].f), got, t[i].want);
        free(got);
    }
    /* a default system message only when the conversation has none */
    const ss_chat_msg_t one[] = {MSG("user", "Hi")};
    int rc;
    char *got = render(SS_CHAT_CHATML, "You are kind.", one, 1, &rc, err, sizeof err);
    ck_assert_str_eq(got, "<|im_start|>system\nYou are kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                          "<|im_start|>assistant\n");
    free(got);
    got = render(SS_CHAT_CHATML, "You are kind.", conv, 2, &rc, err, sizeof err);
    ck_assert_ptr_null(strstr(got, "kind"));
    free(got);
}
END_TEST

START_TEST(test_render_errors)
{
    char err[SS_ERRSZ];
    int rc;
    const ss_chat_msg_t two_users[] = {MSG("user", "a"), MSG("user", "b")};
    free(render(SS_CHAT_GEMMA, NULL, two_users, 2, &rc, err, sizeof err));
    ck_assert_int_eq(rc, SS_ERR_INVALID);
    ck_assert_msg(strstr(err, "gemma chat template needs the conversation to alternate") && strstr(err, "message 1"),
                  "%s", err);
    const ss_chat_msg_t tool[] = {MSG("user", "a"), MSG("tool", "{}")};
    free(render(SS_CHAT_CHATML, NULL, tool, 2, &rc, err, sizeof err));
    ck_assert_int_eq(rc, SS_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(err, "message 1 has role \"tool\""), "%s", err);
    const ss_chat_msg_t late_sys[] = {MSG("user", "a"), MSG("system", "b")};
    free(render(SS_CHAT_LLAMA3, NULL, late_sys, 2, &rc, err, sizeof err));
    ck_assert_int_eq(rc, SS_ERR_INVALID);
    ck_assert_msg(strstr(err, "system message must come first"), "%s", err);
    const ss_chat_msg_t ends_assistant[] = {MSG("user", "a"), MSG("assistant", "b")};
    free(render(SS_CHAT_LLAMA2, NULL, ends_assistant, 2, &rc, err, sizeof err));
    ck_assert_msg(rc == SS_ERR_INVALID && strstr(err, "end with a user message"), "%s", err);
    free(render(SS_CHAT_CHATML, NULL, NULL, 0, &rc, err, sizeof err));
    ck_assert_int_eq(rc, SS_ERR_INVALID);
    const ss_chat_msg_t one[] = {MSG("user", "a")};
    free(render(SS_CHAT_NONE, NULL, one, 1, &rc, err, sizeof err));
    ck_assert_int_eq(rc, SS_ERR_UNSUPPORTED);
}
END_TEST

START_TEST(test_default_system)
{
    char *s = ss_chat_default_system(ss_chat_sample_template(SS_CHAT_CHATML),
                                     strlen(ss_chat_sample_template(SS_CHAT_CHATML)));
    ck_assert_str_eq(s, "You are a helpful AI assistant.");
    free(s);
    /* Qwen2.5's: the tools branch opens a system turn with an expression first; the literal wins */
    const char *qwen = "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}"
                       "{{- messages[0]['content'] }}{%- endif %}{%- else %}{%- if messages[0]['role'] == 'system' %}"
                       "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}"
                       "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                       "assistant.<|im_end|>\\n' }}{%- endif %}{%- endif %}";
    s = ss_chat_default_system(qwen, strlen(qwen));
    ck_assert_str_eq(s, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    free(s);
    const char *none = "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'}}";
    ck_assert_ptr_null(ss_chat_default_system(none, strlen(none)));
}
END_TEST

START_TEST(test_answer_form)
{
    ss_buf_t b = SS_BUF_INIT;
    ss_chat_answer(SS_CHAT_CHATML, " yes", &b);
    ck_assert_str_eq(ss_buf_cstr(&b), "yes");
    ss_buf_reset(&b);
    ss_chat_answer(SS_CHAT_LLAMA2, "\n yes", &b);
    ck_assert_str_eq(ss_buf_cstr(&b), " yes");
    ss_buf_free(&b);
}
END_TEST

/* ---- with a model ---- */

static ss_llm_t *open_chat_model(ss_chat_family_t f, char *path, size_t n)
{
    char *dir = tu_tmpdir(), err[SS_ERRSZ] = "";
    snprintf(path, n, "%s/chat.gguf", dir);
    free(dir);
    ss_mkmodel_spec_t spec;
    ck_assert(ss_mkmodel_shape("tiny-qwen2", &spec));
    spec.chat_template = ss_chat_sample_template(f);
    spec.special_tokens = ss_chat_markers(f);
    ck_assert_msg(ss_mkmodel_write(&spec, path, err, sizeof err) == SS_OK, "%s", err);
    ss_llm_opts_t o = {.threads = 1};
    ss_llm_t *m = NULL;
    ck_assert_msg(ss_llm_open(path, &o, &m, err, sizeof err) == SS_OK, "%s", err);
    return m;
}

START_TEST(test_engine_chat_form)
{
    char path[1024], err[SS_ERRSZ] = "";
    ss_llm_t *m = open_chat_model(SS_CHAT_LLAMA3, path, sizeof path);
    ck_assert_int_eq(ss_llm_chat_family(m), SS_CHAT_LLAMA3);
    const char *prompt = "### Task\nDecide.\n### Input\nIt rains.\n### Answer:";
    ss_infer_req_t r = {.kind = SS_INFER_CHOOSE, .prompt = prompt, .system_len = 17};
    char *p = ss_llm_req_prompt(m, &r);
    ck_assert_str_eq(p, "<|start_header_id|>system<|end_header_id|>\n\n### Task\nDecide.<|eot_id|>"
                        "<|start_header_id|>user<|end_header_id|>\n\n### Input\nIt rains.\n### Answer:<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\n");
    /* the same CHOOSE, raw over that rendering with the answers as they start the turn */
    static const char *yn[] = {" yes", " no"}, *yn_turn[] = {"yes", "no"};
    ss_infer_req_t q[2] = {{.kind = SS_INFER_CHOOSE, .prompt = prompt, .system_len = 17, .nchoices = 2, .choices = yn},
                           {.kind = SS_INFER_CHOOSE, .prompt = p, .raw = 1, .nchoices = 2, .choices = yn_turn}};
    ss_infer_res_t res[2] = {{0}};
    ck_assert_msg(ss_llm_run(m, q, 2, res, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(res[0].status, SS_OK);
    ck_assert_int_eq(res[0].prompt_tokens, res[1].prompt_tokens);
    ck_assert_float_eq(res[0].probs[0], res[1].probs[0]);
    ck_assert_float_eq(res[0].probs[1], res[1].probs[1]);
    ss_infer_res_clear(&res[0]);
    ss_infer_res_clear(&res[1]);
    free(p);
    /* raw and EMBED are never wrapped */
    r.raw = 1;
    ck_assert_ptr_null(ss_llm_req_prompt(m, &r));
    r.raw = 0;
    r.kind = SS_INFER_EMBED;
    ck_assert_ptr_null(ss_llm_req_prompt(m, &r));
    char why[SS_ERRSZ];
    ss_llm_chat_explain(m, why, sizeof why);
    ck_assert_str_eq(why, "");
    ss_llm_close(m);
    unlink(path);
    /* a model without a template says so */
    char sp[1024];
    ss_llm_t *s = NULL;
    ck_assert(ss_llm_open(tu_model_path("stories260K.gguf", sp, sizeof sp), NULL, &s, err, sizeof err) == SS_OK);
    ss_llm_chat_explain(s, why, sizeof why);
    ck_assert_msg(strstr(why, "no chat template"), "%s", why);
    ss_buf_t b = SS_BUF_INIT;
    ss_chat_msg_t one = {"user", "hi", 2};
    ck_assert_int_eq(ss_llm_chat_render(s, &one, 1, &b, err, sizeof err), SS_ERR_UNSUPPORTED);
    ss_buf_free(&b);
    ss_llm_close(s);
}
END_TEST

typedef struct seen {
    ss_buf_t text;
    int n;
    int sorted; /* every token's alternatives best first, the chosen one the best (greedy) */
} seen_t;

static void on_tok(void *ctx, const ss_infer_token_t *t)
{
    seen_t *s = ctx;
    ss_buf_append(&s->text, t->text, t->len);
    s->n++;
    for (int j = 1; j < t->ntop; j++)
        if (t->top_logprob[j] > t->top_logprob[j - 1])
            s->sorted = 0;
    if (t->ntop && fabsf(t->top_logprob[0] - t->logprob) > 1e-6f)
        s->sorted = 0;
}

START_TEST(test_stops_and_tokens)
{
    char sp[1024], err[SS_ERRSZ] = "";
    ss_llm_t *m = NULL;
    ck_assert(ss_llm_open(tu_model_path("stories260K.gguf", sp, sizeof sp), NULL, &m, err, sizeof err) == SS_OK);
    seen_t s = {SS_BUF_INIT, 0, 1};
    ss_infer_req_t g = {.kind = SS_INFER_GENERATE, .prompt = "Once upon a time", .max_tokens = 40,
                        .top_logprobs = 3, .on_token = on_tok, .on_token_ctx = &s};
    ss_infer_res_t r = {0};
    ck_assert_msg(ss_llm_run(m, &g, 1, &r, err, sizeof err) == SS_OK, "%s", err);
    ck_assert_int_eq(s.n, r.gen_tokens);
    ck_assert_str_eq(ss_buf_cstr(&s.text), r.text); /* the reports add up to the answer */
    ck_assert(s.sorted);
    /* stops: the earliest of several ends the text */
    const char *full = r.text;
    const char *w1 = strstr(full + 5, " ") ? " " : NULL;
    ck_assert_ptr_nonnull(w1);
    char late[8], early[8];
    snprintf(late, sizeof late, "%.3s", full + strlen(full) - 6); /* from near the end */
    snprintf(early, sizeof early, "%.3s", full + 8);
    const char *stops[] = {late, early};
    ss_infer_req_t g2 = {.kind = SS_INFER_GENERATE, .prompt = "Once upon a time", .max_tokens = 40, .nstop = 2,
                         .stops = stops};
    ss_infer_res_t r2 = {0};
    ck_assert(ss_llm_run(m, &g2, 1, &r2, err, sizeof err) == SS_OK);
    ck_assert_int_eq((int)strlen(r2.text), (int)(strstr(full, early) - full));
    ck_assert(!strncmp(r2.text, full, strlen(r2.text)));
    ss_infer_res_clear(&r);
    ss_infer_res_clear(&r2);
    ss_buf_free(&s.text);
    ss_llm_close(m);
}
END_TEST

START_TEST(test_cache_key_fields)
{
    ss_infer_req_t a = {.kind = SS_INFER_GENERATE, .prompt = "p", .max_tokens = 8};
    ss_buf_t e = SS_BUF_INIT;
    ck_assert_int_eq(ss_infer_encode(&e, "m1", &a), SS_OK);
    ck_assert_str_eq(ss_buf_cstr(&e), "ssk1M2:m1K1P1:pT8,0X-"); /* as before the new fields */
    ss_buf_free(&e);
    char ka[33], kb[33];
    ss_infer_key("m", &a, ka);
    ss_infer_req_t b = a;
    b.system_len = 1;
    ss_infer_key("m", &b, kb);
    ck_assert_str_ne(ka, kb);
    b = a;
    b.raw = 1;
    ss_infer_key("m", &b, kb);
    ck_assert_str_ne(ka, kb);
    b = a;
    b.on_token = NULL, b.on_token_ctx = &b; /* an observer is no part of the answer */
    ss_infer_key("m", &b, kb);
    ck_assert_str_eq(ka, kb);
    /* stop lists are sets */
    const char *s1[] = {"A", "B", "A", ""}, *s2[] = {"B", "A"}, *s3[] = {"B"};
    ss_infer_req_t x = a, y = a, z = a;
    x.stop = "A", x.nstop = 4, x.stops = s1;
    y.stop = "A", y.nstop = 2, y.stops = s2;
    z.stop = "A", z.nstop = 1, z.stops = s3;
    char kx[33], ky[33], kz[33];
    ss_infer_key("m", &x, kx);
    ss_infer_key("m", &y, ky);
    ss_infer_key("m", &z, kz);
    ck_assert_str_eq(kx, ky);
    ck_assert_str_eq(kx, kz);
    z.nstop = 0;
    ss_infer_key("m", &z, kz);
    ck_assert_str_ne(kx, kz);
    /* EMBED ignores the chat fields */
    ss_infer_req_t e1 = {.kind = SS_INFER_EMBED, .prompt = "p"}, e2 = e1;
    e2.system_len = 1, e2.raw = 1;
    ss_infer_key("m", &e1, ka);
    ss_infer_key("m", &e2, kb);
    ck_assert_str_eq(ka, kb);
}
END_TEST

Suite *check_chat_suite(void)
{
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("templates");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_recognise);
    tcase_add_test(tc, test_render_families);
    tcase_add_test(tc, test_render_errors);
    tcase_add_test(tc, test_default_system);
    tcase_add_test(tc, test_answer_form);
    tcase_add_test(tc, test_engine_chat_form);
    tcase_add_test(tc, test_stops_and_tokens);
    tcase_add_test(tc, test_cache_key_fields);
    suite_add_tcase(s, tc);
    return s;
}
