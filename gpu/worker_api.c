/*
 * worker_api.c — the OpenAI protocol of `semstream worker` (worker_int.h): request
 * bodies of /v1/completions, /v1/chat/completions and /v1/embeddings become calls
 * (inference requests with every parameter range-checked, conversations rendered in
 * the model's chat template), and answers become OpenAI JSON: whole responses,
 * server-sent events while tokens are produced, per-token logprobs in the legacy and
 * the chat forms, float or base64 embeddings, OpenAI-shaped errors.
 *
 * Streaming holds back text that could still turn out to be the start of a stop
 * string or an incomplete UTF-8 character, so a stream always concatenates to the
 * text the same request returns without streaming.
 */
#include "worker_int.h"

#include "ss_jschema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_PROMPTS = 4096, MAX_MESSAGES = 4096, MAX_STOPS = 16, MAX_STOP_LEN = 256, MAX_CHOICES = 256, MAX_N = 16,
       MAX_TOP = 20 };

/* ------------------------------------------------------------ field checks */

typedef struct pctx {
    call_t *c;
    const ss_json_t *root;
    const char **param, **code;
    char *err;
    size_t errsz;
} pctx_t;

static int bad(pctx_t *p, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(pctx_t *p, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (p->err && p->errsz)
        vsnprintf(p->err, p->errsz, fmt, ap);
    va_end(ap);
    *p->param = param;
    return 400;
}

static const ss_json_t *field(const pctx_t *p, const char *name)
{
    const ss_json_t *v = ss_json_get(p->root, name);
    return v && v->t == SS_JSON_NULL ? NULL : v; /* null means "not given" */
}

/* An integer field in [lo, hi]: a JSON integer, or a number with no fraction. */
static int get_int(pctx_t *p, const char *name, int64_t lo, int64_t hi, int64_t dflt, int64_t *out)
{
    const ss_json_t *v = field(p, name);
    *out = dflt;
    if (!v)
        return 0;
    double x;
    if (v->t == SS_JSON_INT)
        x = (double)v->u.i;
    else if (v->t == SS_JSON_REAL && v->u.r == floor(v->u.r))
        x = v->u.r;
    else
        return bad(p, name, "'%s' must be an integer between %lld and %lld", name, (long long)lo, (long long)hi);
    if (v->t == SS_JSON_INT ? (v->u.i < lo || v->u.i > hi) : (x < (double)lo || x > (double)hi))
        return bad(p, name, "'%s' must be an integer between %lld and %lld", name, (long long)lo, (long long)hi);
    *out = v->t == SS_JSON_INT ? v->u.i : (int64_t)x;
    return 0;
}

static int get_num(pctx_t *p, const char *name, double lo, double hi, double dflt, double *out)
{
    const ss_json_t *v = field(p, name);
    *out = dflt;
    if (!v)
        return 0;
    double x = v->t == SS_JSON_INT ? (double)v->u.i : v->t == SS_JSON_REAL ? v->u.r : NAN;
    if (!(x >= lo && x <= hi))
        return bad(p, name, "'%s' must be a number between %g and %g", name, lo, hi);
    *out = x;
    return 0;
}

static int get_bool(pctx_t *p, const char *name, int dflt, int *out)
{
    const ss_json_t *v = field(p, name);
    *out = dflt;
    if (!v)
        return 0;
    if (v->t != SS_JSON_BOOL)
        return bad(p, name, "'%s' must be true or false", name);
    *out = v->u.b;
    return 0;
}

/* A string or a non-empty array of at most max strings; *n = 0 when absent. */
static int get_strings(pctx_t *p, const char *name, int max, const char ***out, int *n)
{
    const ss_json_t *v = field(p, name);
    *out = NULL;
    *n = 0;
    if (!v)
        return 0;
    if (v->t == SS_JSON_STRING) {
        if (!(*out = malloc(sizeof **out)))
            return 500;
        (*out)[0] = v->u.str.s;
        *n = 1;
        return 0;
    }
    if (v->t != SS_JSON_ARRAY || v->u.arr.n == 0 || v->u.arr.n > (size_t)max)
        return bad(p, name, "'%s' must be a string or an array of 1 to %d strings", name, max);
    for (size_t i = 0; i < v->u.arr.n; i++)
        if (v->u.arr.items[i].t != SS_JSON_STRING)
            return bad(p, name, "'%s'[%zu] is %s, not a string%s", name, i,
                       ss_json_type_name(v->u.arr.items[i].t),
                       v->u.arr.items[i].t == SS_JSON_INT || v->u.arr.items[i].t == SS_JSON_ARRAY
                           ? " (token ids are not accepted: send text)" : "");
    if (!(*out = calloc(v->u.arr.n, sizeof **out)))
        return 500;
    for (size_t i = 0; i < v->u.arr.n; i++)
        (*out)[i] = v->u.arr.items[i].u.str.s;
    *n = (int)v->u.arr.n;
    return 0;
}

/* Parameters semstream does not implement: an error unless absent or at their default. */
static int unsupported(pctx_t *p)
{
    double x;
    const ss_json_t *v;
    static const char *const pen[] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++)
        if ((v = field(p, pen[i])) && (get_num(p, pen[i], -2, 2, 0, &x) || x != 0))
            return bad(p, pen[i], "'%s' is not supported by semstream worker (only 0)", pen[i]);
    if (get_num(p, "top_p", 0, 1, 1, &x))
        return 400;
    if (x != 1)
        return bad(p, "top_p", "'top_p' is not supported by semstream worker (only 1): use temperature");
    if ((v = field(p, "logit_bias")) && !(v->t == SS_JSON_OBJECT && v->u.obj.n == 0))
        return bad(p, "logit_bias", "'logit_bias' is not supported by semstream worker");
    static const char *const tools[] = {"tools", "functions", "tool_choice", "function_call", "suffix", "audio",
                                        "prediction"};
    for (int i = 0; i < (int)SS_ARRAY_LEN(tools); i++)
        if ((v = field(p, tools[i])) &&
            !((v->t == SS_JSON_ARRAY && v->u.arr.n == 0) || (v->t == SS_JSON_STRING && (!v->u.str.n ||
              !strcmp(v->u.str.s, "none")))))
            return bad(p, tools[i], "'%s' is not supported by semstream worker", tools[i]);
    if ((v = field(p, "response_format"))) {
        const char *t = ss_json_str(ss_json_get(v, "type"));
        if (!t || (strcmp(t, "text") && strcmp(t, "json_schema")))
            return bad(p, "response_format",
                       "'response_format' %s is not supported by semstream worker (text or json_schema)",
                       t ? t : "(no type)");
    }
    return 0;
}

/* ------------------------------------------------------------ building the call */

static char *own(call_t *c, char *s)
{
    char **o = realloc(c->owned, (size_t)(c->nowned + 1) * sizeof *o);
    if (!o || !s) {
        free(s);
        return NULL;
    }
    c->owned = o;
    c->owned[c->nowned++] = s;
    return s;
}

static int model_check(pctx_t *p)
{
    call_t *c = p->c;
    ss_worker_t *w = c->w;
    const ss_json_t *v = field(p, "model");
    if (v && v->t != SS_JSON_STRING)
        return bad(p, "model", "'model' must be a string");
    const char *m = v ? v->u.str.s : w->names[0];
    int ok = 0;
    for (int i = 0; i < w->nnames && !ok; i++)
        ok = !strcmp(m, w->names[i]);
    if (!ok) {
        *p->code = "model_not_found";
        bad(p, "model", "The model '%s' does not exist: this worker serves '%s'%s%s%s", m, w->names[0],
            w->nnames > 1 ? " (also called '" : "", w->nnames > 1 ? w->names[1] : "", w->nnames > 1 ? "')" : "");
        return 404;
    }
    c->model = ss_strdup(m);
    return c->model ? 0 : 500;
}

/* The text of a chat message's content: a string, or the text parts of an array. */
static int message_text(pctx_t *p, int i, const ss_json_t *content, ss_buf_t *b)
{
    if (!content || content->t == SS_JSON_NULL)
        return 0;
    if (content->t == SS_JSON_STRING)
        return ss_buf_append(b, content->u.str.s, content->u.str.n) ? 500 : 0;
    if (content->t != SS_JSON_ARRAY)
        return bad(p, "messages", "messages[%d].content must be a string or an array of parts", i);
    for (size_t k = 0; k < content->u.arr.n; k++) {
        const ss_json_t *part = &content->u.arr.items[k];
        const char *type = ss_json_str(ss_json_get(part, "type")), *text = ss_json_str(ss_json_get(part, "text"));
        if (!type || strcmp(type, "text") || !text)
            return bad(p, "messages", "messages[%d].content[%zu] is a %s part; semstream worker takes text parts only",
                       i, k, type ? type : "(untyped)");
        if ((k && ss_buf_putc(b, '\n')) || ss_buf_puts(b, text))
            return 500;
    }
    return 0;
}

/* The conversation rendered in the model's chat template (owned by the call). */
static int chat_prompt(pctx_t *p, const char **out)
{
    call_t *c = p->c;
    const ss_json_t *msgs = field(p, "messages");
    if (!msgs || msgs->t != SS_JSON_ARRAY || msgs->u.arr.n == 0 || msgs->u.arr.n > MAX_MESSAGES)
        return bad(p, "messages", "'messages' must be an array of 1 to %d messages", MAX_MESSAGES);
    if (!c->w->model)
        return bad(p, NULL, "chat completions need the in-process engine; this worker's backend is %s",
                   c->w->be->kind);
    size_t n = msgs->u.arr.n;
    ss_chat_msg_t *m = calloc(n, sizeof *m);
    ss_buf_t *txt = calloc(n, sizeof *txt);
    int rc = m && txt ? 0 : 500;
    for (size_t i = 0; i < n && !rc; i++) {
        const ss_json_t *e = &msgs->u.arr.items[i];
        const char *role = ss_json_str(ss_json_get(e, "role"));
        if (e->t != SS_JSON_OBJECT || !role) {
            rc = bad(p, "messages", "messages[%zu] must be an object with a \"role\"", i);
            break;
        }
        const ss_json_t *tc = ss_json_get(e, "tool_calls");
        if (tc && !(tc->t == SS_JSON_NULL || (tc->t == SS_JSON_ARRAY && tc->u.arr.n == 0))) {
            rc = bad(p, "messages", "messages[%zu] has tool_calls; semstream worker does not render tools", i);
            break;
        }
        rc = message_text(p, (int)i, ss_json_get(e, "content"), &txt[i]);
        m[i] = (ss_chat_msg_t){role, ss_buf_cstr(&txt[i]), txt[i].len};
    }
    if (!rc) {
        ss_buf_t b = SS_BUF_INIT;
        char err[SS_ERRSZ] = "";
        int r = ss_llm_chat_render(c->w->model, m, (int)n, &b, err, sizeof err);
        if (r == SS_ERR_NOMEM)
            rc = 500;
        else if (r) {
            *p->code = r == SS_ERR_UNSUPPORTED ? "chat_template_unsupported" : NULL;
            rc = bad(p, "messages", "%s", err);
        } else if (!(*out = own(c, ss_buf_take(&b))))
            rc = 500;
        ss_buf_free(&b);
    }
    for (size_t i = 0; txt && i < n; i++)
        ss_buf_free(&txt[i]);
    free(txt);
    free(m);
    return rc;
}

/* The CHOOSE/SCORE extension; sets base->kind. */
static int extension(pctx_t *p, ss_infer_req_t *base, ss_buf_t *adj)
{
    call_t *c = p->c;
    int n, rc = get_strings(p, "semstream_choices", MAX_CHOICES, &c->choices, &n);
    const ss_json_t *sc = field(p, "semstream_score");
    if (rc)
        return rc;
    if (n) {
        base->kind = SS_INFER_CHOOSE;
        base->nchoices = n;
        /* after a rendered conversation an answer starts the assistant's turn, as in the engine */
        ss_chat_family_t f = c->ep == EP_CHAT && c->w->model ? ss_llm_chat_family(c->w->model) : SS_CHAT_NONE;
        for (int i = 0; i < n && f != SS_CHAT_NONE; i++) {
            ss_buf_reset(adj);
            if (ss_chat_answer(f, c->choices[i], adj) || !(c->choices[i] = own(c, ss_buf_take(adj))))
                return 500;
        }
        base->choices = c->choices;
    } else if (sc) {
        if (sc->t != SS_JSON_ARRAY || sc->u.arr.n != 2 || sc->u.arr.items[0].t != SS_JSON_INT ||
            sc->u.arr.items[1].t != SS_JSON_INT || sc->u.arr.items[0].u.i < 0 || sc->u.arr.items[1].u.i > 100 ||
            sc->u.arr.items[0].u.i >= sc->u.arr.items[1].u.i)
            return bad(p, "semstream_score", "semstream_score must be [min, max], integers with 0 <= min < max <= 100");
        base->kind = SS_INFER_SCORE;
        base->score_min = (int)sc->u.arr.items[0].u.i;
        base->score_max = (int)sc->u.arr.items[1].u.i;
    }
    return 0;
}

static uint64_t fresh_seed(void)
{
    static uint64_t counter;
    uint64_t x = (uint64_t)ss_now_ns() ^ (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 0x9e3779b97f4a7c15ull);
    return ss_hash64(&x, sizeof x, 0x5eed) | 1;
}

/* response_format {type: json_schema, json_schema: {name, schema, strict}}: the schema (the subset
 * src/base/jschema.c understands, checked here so that a bad one is a 400 naming the keyword) goes
 * to the engine as base->json_schema, which constrains decoding to it token by token. */
static int json_schema_param(pctx_t *p, ss_infer_req_t *base)
{
    const ss_json_t *rf = field(p, "response_format");
    const char *t = rf ? ss_json_str(ss_json_get(rf, "type")) : NULL;
    if (!t || strcmp(t, "json_schema"))
        return 0;
    const ss_json_t *js = ss_json_get(rf, "json_schema");
    const ss_json_t *sc = js ? ss_json_get(js, "schema") : NULL;
    if (!sc || sc->t != SS_JSON_OBJECT)
        return bad(p, "response_format", "'response_format' json_schema needs {\"json_schema\": {\"name\": ..., "
                                         "\"schema\": {...}}}");
    if (!p->c->w->model)
        return bad(p, "response_format", "'response_format' json_schema needs the in-process engine; this worker's "
                                         "backend is %s", p->c->w->be->kind);
    ss_buf_t b = SS_BUF_INIT;
    if (ss_json_write(sc, &b)) {
        ss_buf_free(&b);
        return 500;
    }
    char msg[256];
    ss_jschema_t *tree = NULL;
    int rc = ss_jschema_parse(b.data, b.len, &tree, msg, sizeof msg);
    ss_jschema_free(tree);
    if (rc) {
        ss_buf_free(&b);
        return bad(p, "response_format", "'response_format' json_schema: %s", msg);
    }
    if (!(base->json_schema = own(p->c, ss_buf_take(&b))))
        return 500;
    return 0;
}

/* The parameters of a completion (either endpoint) into base. */
static int gen_params(pctx_t *p, ss_infer_req_t *base, int64_t *seed, int *has_seed)
{
    call_t *c = p->c;
    ss_worker_t *w = c->w;
    int64_t x = 0;
    double t = 1;
    int rc = unsupported(p);
    int chat = c->ep == EP_CHAT;
    int64_t dflt = chat ? w->o.max_tokens_limit : 16;
    if (!rc) rc = get_int(p, "max_tokens", 0, w->o.max_tokens_limit, dflt, &x);
    if (!rc && chat && field(p, "max_completion_tokens"))
        rc = get_int(p, "max_completion_tokens", 0, w->o.max_tokens_limit, dflt, &x);
    base->max_tokens = (int)x;
    if (!rc) rc = get_num(p, "temperature", 0, 2, 1, &t);
    base->temperature = (float)t;
    if (!rc) rc = get_int(p, "n", 1, MAX_N, 1, &x);
    c->n = (int)x;
    if (!rc && field(p, "best_of") && (get_int(p, "best_of", 1, MAX_N, 1, &x) || x != c->n))
        return bad(p, "best_of", "'best_of' is not supported by semstream worker (only equal to n)");
    if (!rc) rc = get_int(p, "seed", INT64_MIN, INT64_MAX, 0, seed);
    *has_seed = field(p, "seed") != NULL;
    int nstop = 0;
    if (!rc) rc = get_strings(p, "stop", MAX_STOPS, &c->stops, &nstop);
    for (int i = 0; i < nstop && !rc; i++)
        if (strlen(c->stops[i]) > MAX_STOP_LEN)
            rc = bad(p, "stop", "'stop'[%d] is longer than %d bytes", i, MAX_STOP_LEN);
    base->nstop = nstop;
    base->stops = c->stops;
    if (!rc) rc = get_bool(p, "stream", 0, &c->stream);
    const ss_json_t *so = field(p, "stream_options");
    if (!rc && so) {
        const ss_json_t *iu = ss_json_get(so, "include_usage");
        if (so->t != SS_JSON_OBJECT || (iu && iu->t != SS_JSON_BOOL && iu->t != SS_JSON_NULL))
            return bad(p, "stream_options", "'stream_options' must be {\"include_usage\": true|false}");
        c->include_usage = iu && iu->t == SS_JSON_BOOL && iu->u.b;
    }
    if (rc)
        return rc;
    if (chat) {
        int on;
        if ((rc = get_bool(p, "logprobs", 0, &on)) || (rc = get_int(p, "top_logprobs", 0, MAX_TOP, 0, &x)))
            return rc;
        if (x > 0 && !on)
            return bad(p, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        c->logprobs_on = on;
        c->top_logprobs = (int)x;
        base->top_logprobs = on ? SS_MAX((int)x, 1) : 0; /* the chosen token's logprob needs one */
    } else {
        if ((rc = get_int(p, "logprobs", 0, MAX_TOP, 0, &x)) || (rc = get_bool(p, "echo", 0, &c->echo)))
            return rc;
        c->logprobs_on = field(p, "logprobs") != NULL;
        c->logprobs = (int)x;
        base->top_logprobs = c->logprobs_on ? SS_MAX((int)x, 1) : 0;
        if (c->echo && c->logprobs_on)
            return bad(p, "echo", "'echo' with 'logprobs' (log-probabilities of the prompt) is not supported by "
                                  "semstream worker");
    }
    if (c->logprobs_on && !w->model)
        return bad(p, "logprobs", "per-token logprobs need the in-process engine; this worker's backend is %s",
                   w->be->kind);
    return json_schema_param(p, base);
}

static int make_reqs(call_t *c, const ss_infer_req_t *base, const char *const *prompts, int seeded, int64_t seed)
{
    c->nreq = c->nprompt * c->n;
    c->seeded = seeded;
    c->reqs = calloc((size_t)c->nreq, sizeof *c->reqs);
    c->res = calloc((size_t)c->nreq, sizeof *c->res);
    c->wr = calloc((size_t)c->nreq, sizeof *c->wr);
    if (!c->reqs || !c->res || !c->wr)
        return 500;
    for (int i = 0; i < c->nreq; i++) {
        ss_infer_req_t *r = &c->reqs[i];
        *r = *base;
        r->prompt = prompts[i / c->n];
        if (r->kind == SS_INFER_GENERATE) {
            if (r->temperature > 0)
                r->seed = seeded ? (uint64_t)seed + (uint64_t)(i % c->n) : fresh_seed();
            if (c->w->model) { /* tokens as they come: streaming, logprobs, finish reasons */
                r->on_token = wk_token_cb;
                r->on_token_ctx = &c->wr[i];
            }
        }
        c->wr[i].call = c;
    }
    return 0;
}

int wk_parse(call_t *c, const char *body, size_t len, const char **param, const char **code, char *err,
             size_t errsz)
{
    *param = NULL;
    *code = NULL;
    pctx_t p = {c, NULL, param, code, err, errsz};
    size_t at = 0;
    char jerr[SS_ERRSZ];
    if (ss_json_parse(body ? body : "", len, 64, &c->doc, &at, jerr, sizeof jerr))
        return bad(&p, NULL, "invalid JSON: %s", jerr);
    p.root = ss_json_root(c->doc);
    if (!p.root || p.root->t != SS_JSON_OBJECT)
        return bad(&p, NULL, "the request body must be a JSON object");
    int rc = model_check(&p);
    ss_infer_req_t base = {.kind = c->ep == EP_EMBEDDINGS ? SS_INFER_EMBED : SS_INFER_GENERATE, .raw = 1};
    const char **prompts = NULL;
    const char *one = NULL;
    int64_t seed = 0;
    int seeded = 0;
    ss_buf_t adj = SS_BUF_INIT;
    c->n = 1;
    if (rc) {
    } else if (c->ep == EP_EMBEDDINGS) {
        const char *fmt = ss_json_str(field(&p, "encoding_format"));
        int64_t dim;
        if (!(rc = get_strings(&p, "input", MAX_PROMPTS, &prompts, &c->nprompt)) && !c->nprompt)
            rc = bad(&p, "input", "missing 'input'");
        if (!rc && field(&p, "encoding_format") && (!fmt || (strcmp(fmt, "float") && strcmp(fmt, "base64"))))
            rc = bad(&p, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
        c->base64 = fmt && !strcmp(fmt, "base64");
        int mdim = c->w->model ? ss_llm_config(c->w->model)->dim : 0;
        if (!rc && field(&p, "dimensions") && !(rc = get_int(&p, "dimensions", 1, 1 << 20, 0, &dim)) &&
            dim != mdim)
            rc = bad(&p, "dimensions", "'dimensions' is not supported: this model's embeddings have %d", mdim);
    } else {
        rc = gen_params(&p, &base, &seed, &seeded);
        if (!rc && c->ep == EP_CHAT) {
            if (!(rc = chat_prompt(&p, &one)))
                prompts = malloc(sizeof *prompts), c->nprompt = 1;
            if (!rc && !prompts)
                rc = 500;
            if (!rc)
                prompts[0] = one;
        } else if (!rc) {
            if (!(rc = get_strings(&p, "prompt", MAX_PROMPTS, &prompts, &c->nprompt)) && !c->nprompt)
                rc = bad(&p, "prompt", "missing 'prompt'");
        }
        if (!rc)
            rc = extension(&p, &base, &adj);
        if (!rc && (int64_t)c->nprompt * c->n > MAX_PROMPTS)
            rc = bad(&p, "n", "%d prompts x n = %d is more than %d completions in one request", c->nprompt, c->n,
                     MAX_PROMPTS);
    }
    if (!rc)
        rc = make_reqs(c, &base, prompts, seeded, seed);
    ss_buf_free(&adj);
    free(prompts);
    if (rc == 500)
        snprintf(err, errsz, "out of memory");
    return rc;
}

void wk_call_free(call_t *c)
{
    if (!c)
        return;
    for (int i = 0; c->res && i < c->nreq; i++)
        ss_infer_res_clear(&c->res[i]);
    for (int i = 0; c->wr && i < c->nreq; i++) {
        ss_buf_free(&c->wr[i].text);
        ss_buf_free(&c->wr[i].alts);
        free(c->wr[i].tok);
    }
    for (int i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->reqs);
    free(c->res);
    free(c->wr);
    free(c->stops);
    free(c->choices);
    free(c->model);
    ss_buf_free(&c->out);
    ss_json_free(c->doc);
    free(c);
}

/* ------------------------------------------------------------ tokens as they come */

void wk_add_token(wreq_t *r, const ss_infer_token_t *t)
{
    if (r->ntok == r->cap) {
        int nc = r->cap ? 2 * r->cap : 32;
        wtok_t *p = realloc(r->tok, (size_t)nc * sizeof *p);
        if (!p)
            return;
        r->tok = p;
        r->cap = nc;
    }
    wtok_t *k = &r->tok[r->ntok];
    *k = (wtok_t){.off = r->text.len, .len = t->len, .lp = t->logprob, .ntop = t->ntop, .alt = r->alts.len};
    if (ss_buf_append(&r->text, t->text, t->len))
        return;
    for (int j = 0; j < t->ntop; j++) {
        uint32_t n = (uint32_t)strlen(t->top_text[j]);
        ss_buf_append(&r->alts, &t->top_logprob[j], sizeof(float));
        ss_buf_append(&r->alts, &n, sizeof n);
        ss_buf_append(&r->alts, t->top_text[j], n);
    }
    r->ntok++;
}

/* ------------------------------------------------------------ rendering */

void wk_error_json(ss_buf_t *b, const char *msg, const char *type, const char *param, const char *code)
{
    ss_buf_puts(b, "{\"error\":{\"message\":");
    ss_json_put_str_utf8(b, msg, strlen(msg));
    ss_buf_printf(b, ",\"type\":\"%s\",\"param\":", type);
    if (param)
        ss_json_put_str_utf8(b, param, strlen(param));
    else
        ss_buf_puts(b, "null");
    ss_buf_puts(b, ",\"code\":");
    if (code)
        ss_json_put_str_utf8(b, code, strlen(code));
    else
        ss_buf_puts(b, "null");
    ss_buf_puts(b, "}}");
}

int wk_failed(const call_t *c, const char **msg)
{
    for (int i = 0; i < c->nreq; i++)
        if (c->res[i].status) {
            *msg = c->res[i].error ? c->res[i].error : ss_err2str((ss_err_t)c->res[i].status);
            return c->res[i].status;
        }
    return 0;
}

static void put_str(ss_buf_t *b, const char *s, size_t n) { ss_json_put_str_utf8(b, s ? s : "", s ? n : 0); }

static void put_lp(ss_buf_t *b, double lp) { ss_buf_printf(b, "%.9g", isfinite(lp) ? lp : -9999.0); }

/* The final text of request i (what comes back without streaming). */
static const char *final_text(const call_t *c, int i) { return c->res[i].text ? c->res[i].text : ""; }

/* Tokens whose text starts inside the final text: the ones the answer is made of. */
static int kept_tokens(const call_t *c, int i)
{
    const wreq_t *r = &c->wr[i];
    size_t lf = strlen(final_text(c, i));
    int k = 0;
    while (k < r->ntok && (r->tok[k].off < lf || (lf == 0 && r->tok[k].off == 0 && r->tok[k].len == 0)))
        k++;
    return k;
}

static const char *finish_reason(const call_t *c, int i)
{
    const ss_infer_req_t *q = &c->reqs[i];
    const ss_infer_res_t *r = &c->res[i];
    if (q->kind != SS_INFER_GENERATE)
        return "stop";
    if (c->wr[i].ntok && strlen(final_text(c, i)) < c->wr[i].text.len)
        return "stop"; /* a stop string ended it */
    if (r->gen_tokens >= q->max_tokens)
        return "length";
    if (c->w->model && r->prompt_tokens + r->gen_tokens >= ss_llm_config(c->w->model)->ctx_len - 1)
        return "length";
    return "stop";
}

/* The alternatives of token k as OpenAI's legacy object {"tok": lp, ...} or the chat array. */
static void put_alts(ss_buf_t *b, const wreq_t *r, int k, int chat, int limit)
{
    const wtok_t *t = &r->tok[k];
    size_t at = t->alt;
    ss_buf_putc(b, chat ? '[' : '{');
    for (int j = 0; j < t->ntop && j < limit; j++) {
        float lp;
        uint32_t n;
        memcpy(&lp, r->alts.data + at, sizeof lp);
        memcpy(&n, r->alts.data + at + sizeof lp, sizeof n);
        const char *s = r->alts.data + at + sizeof lp + sizeof n;
        at += sizeof lp + sizeof n + n;
        if (j)
            ss_buf_putc(b, ',');
        if (chat) {
            ss_buf_puts(b, "{\"token\":");
            put_str(b, s, n);
            ss_buf_puts(b, ",\"logprob\":");
            put_lp(b, lp);
            ss_buf_puts(b, ",\"bytes\":[");
            for (uint32_t x = 0; x < n; x++)
                ss_buf_printf(b, "%s%u", x ? "," : "", (unsigned char)s[x]);
            ss_buf_puts(b, "]}");
        } else {
            put_str(b, s, n);
            ss_buf_putc(b, ':');
            put_lp(b, lp);
        }
    }
    ss_buf_putc(b, chat ? ']' : '}');
}

/* The logprobs object of tokens [k0, k1) of request i; base: text offset of token k0's text in
 * the choice's text as returned (echo included) minus its offset in the generated text. */
static void put_logprobs(ss_buf_t *b, const call_t *c, int i, int k0, int k1, size_t base)
{
    const wreq_t *r = &c->wr[i];
    if (!c->logprobs_on) {
        ss_buf_puts(b, "null");
        return;
    }
    if (c->ep == EP_CHAT) {
        ss_buf_puts(b, "{\"content\":[");
        for (int k = k0; k < k1; k++) {
            const wtok_t *t = &r->tok[k];
            ss_buf_puts(b, k > k0 ? ",{\"token\":" : "{\"token\":");
            put_str(b, r->text.data + t->off, t->len);
            ss_buf_puts(b, ",\"logprob\":");
            put_lp(b, t->lp);
            ss_buf_puts(b, ",\"bytes\":[");
            for (size_t x = 0; x < t->len; x++)
                ss_buf_printf(b, "%s%u", x ? "," : "", (unsigned char)r->text.data[t->off + x]);
            ss_buf_puts(b, "],\"top_logprobs\":");
            put_alts(b, r, k, 1, c->top_logprobs);
            ss_buf_putc(b, '}');
        }
        ss_buf_puts(b, "],\"refusal\":null}");
        return;
    }
    ss_buf_puts(b, "{\"tokens\":[");
    for (int k = k0; k < k1; k++) {
        if (k > k0)
            ss_buf_putc(b, ',');
        put_str(b, r->text.data + r->tok[k].off, r->tok[k].len);
    }
    ss_buf_puts(b, "],\"token_logprobs\":[");
    for (int k = k0; k < k1; k++) {
        if (k > k0)
            ss_buf_putc(b, ',');
        put_lp(b, r->tok[k].lp);
    }
    ss_buf_puts(b, "],\"top_logprobs\":[");
    for (int k = k0; k < k1; k++) {
        if (k > k0)
            ss_buf_putc(b, ',');
        put_alts(b, r, k, 0, c->logprobs);
    }
    ss_buf_puts(b, "],\"text_offset\":[");
    for (int k = k0; k < k1; k++)
        ss_buf_printf(b, "%s%zu", k > k0 ? "," : "", base + r->tok[k].off);
    ss_buf_puts(b, "]}");
}

static void put_usage(ss_buf_t *b, const call_t *c)
{
    int64_t pt = 0, ct = 0;
    for (int i = 0; i < c->nreq; i++) {
        if (i % c->n == 0)
            pt += c->res[i].prompt_tokens;
        ct += c->res[i].gen_tokens;
    }
    if (c->ep == EP_EMBEDDINGS)
        ss_buf_printf(b, "{\"prompt_tokens\":%lld,\"total_tokens\":%lld}", (long long)pt, (long long)pt);
    else
        ss_buf_printf(b, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}", (long long)pt,
                      (long long)ct, (long long)(pt + ct));
}

static void put_head(ss_buf_t *b, const call_t *c, const char *object)
{
    ss_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", c->id, object,
                  (long long)c->created);
    put_str(b, c->model, strlen(c->model));
}

/* The semstream extension's answer fields of request i. */
static void put_ext(ss_buf_t *b, const call_t *c, int i)
{
    const ss_infer_res_t *r = &c->res[i];
    if (c->reqs[i].kind == SS_INFER_CHOOSE) {
        ss_buf_puts(b, ",\"semstream_probs\":[");
        for (int k = 0; k < r->nprobs; k++)
            ss_buf_printf(b, "%s%.9g", k ? "," : "", r->probs[k]);
        ss_buf_putc(b, ']');
    } else if (c->reqs[i].kind == SS_INFER_SCORE)
        ss_buf_printf(b, ",\"semstream_score_value\":%.9g", r->score);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_base64(ss_buf_t *b, const unsigned char *p, size_t n)
{
    ss_buf_putc(b, '"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {b64[v >> 18 & 63], b64[v >> 12 & 63], i + 1 < n ? b64[v >> 6 & 63] : '=',
                     i + 2 < n ? b64[v & 63] : '='};
        ss_buf_append(b, q, 4);
    }
    ss_buf_putc(b, '"');
}

static void render_embeddings(const call_t *c, ss_buf_t *b)
{
    ss_buf_puts(b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < c->nreq; i++) {
        const ss_infer_res_t *r = &c->res[i];
        ss_buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
        if (c->base64) { /* little-endian float32, as OpenAI sends them */
            unsigned char *raw = malloc((size_t)r->dim * 4 + 1);
            for (int k = 0; raw && k < r->dim; k++) {
                uint32_t u;
                memcpy(&u, &r->emb[k], 4);
                for (int x = 0; x < 4; x++)
                    raw[4 * k + x] = (unsigned char)(u >> (8 * x));
            }
            put_base64(b, raw ? raw : (const unsigned char *)"", raw ? (size_t)r->dim * 4 : 0);
            free(raw);
        } else {
            ss_buf_putc(b, '[');
            for (int k = 0; k < r->dim; k++)
                ss_buf_printf(b, "%s%.8g", k ? "," : "", r->emb[k]);
            ss_buf_putc(b, ']');
        }
        ss_buf_putc(b, '}');
    }
    ss_buf_puts(b, "],\"model\":");
    put_str(b, c->model, strlen(c->model));
    ss_buf_puts(b, ",\"usage\":");
    put_usage(b, c);
    ss_buf_putc(b, '}');
}

void wk_render(const call_t *c, ss_buf_t *b)
{
    if (c->ep == EP_EMBEDDINGS) {
        render_embeddings(c, b);
        return;
    }
    int chat = c->ep == EP_CHAT;
    put_head(b, c, chat ? "chat.completion" : "text_completion");
    ss_buf_puts(b, ",\"choices\":[");
    for (int i = 0; i < c->nreq; i++) {
        const char *text = final_text(c, i), *prompt = c->reqs[i].prompt;
        size_t echo = c->echo ? strlen(prompt) : 0;
        ss_buf_printf(b, "%s{\"index\":%d,", i ? "," : "", i);
        if (chat) {
            ss_buf_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
            put_str(b, text, strlen(text));
            ss_buf_puts(b, ",\"refusal\":null}");
        } else {
            ss_buf_t t = SS_BUF_INIT;
            ss_buf_append(&t, prompt, echo);
            ss_buf_puts(&t, text);
            ss_buf_puts(b, "\"text\":");
            put_str(b, t.data, t.len);
            ss_buf_free(&t);
        }
        put_ext(b, c, i);
        ss_buf_puts(b, ",\"logprobs\":");
        if (c->logprobs_on && c->wr[i].ntok == 0 && c->res[i].ntop > 0 && !chat) {
            /* no per-token report (e.g. the answer came from another path): the first position */
            ss_buf_puts(b, "{\"tokens\":[],\"token_logprobs\":[],\"top_logprobs\":[{");
            for (int k = 0; k < c->res[i].ntop; k++) {
                if (k)
                    ss_buf_putc(b, ',');
                put_str(b, c->res[i].top_tokens[k], strlen(c->res[i].top_tokens[k]));
                ss_buf_putc(b, ':');
                put_lp(b, c->res[i].top_logprobs[k]);
            }
            ss_buf_puts(b, "}],\"text_offset\":[]}");
        } else
            put_logprobs(b, c, i, 0, kept_tokens(c, i), echo);
        ss_buf_printf(b, ",\"finish_reason\":\"%s\"}", finish_reason(c, i));
    }
    ss_buf_puts(b, "],\"usage\":");
    put_usage(b, c);
    if (chat)
        ss_buf_puts(b, ",\"system_fingerprint\":null");
    ss_buf_putc(b, '}');
}

/* ------------------------------------------------------------ streaming */

/* 1 if s[0..n) ends at the end of a whole UTF-8 character. */
static int utf8_whole(const char *s, size_t n)
{
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--, back++;
    if (i == 0)
        return back == 0;
    unsigned char lead = (unsigned char)s[i - 1];
    int need = lead < 0x80 ? 0 : (lead & 0xE0) == 0xC0 ? 1 : (lead & 0xF0) == 0xE0 ? 2 : (lead & 0xF8) == 0xF0 ? 3 : 0;
    return back >= need;
}

/* Bytes of the text so far that can be sent: none of it can become part of a stop string. */
static size_t safe_len(const call_t *c, int i)
{
    const wreq_t *r = &c->wr[i];
    const ss_infer_req_t *q = &c->reqs[i];
    size_t n = r->text.len, safe = n;
    for (int s = 0; s < q->nstop; s++) {
        size_t l = strlen(q->stops[s]);
        const char *hit = r->text.data ? strstr(r->text.data, q->stops[s]) : NULL;
        if (hit && (size_t)(hit - r->text.data) < safe)
            safe = (size_t)(hit - r->text.data);
        if (l > 1 && n - (l - 1) < safe && n >= l - 1)
            safe = n - (l - 1);
        else if (l > 1 && n < l - 1)
            safe = 0;
    }
    return safe;
}

static void chunk_head(ss_buf_t *b, const call_t *c)
{
    ss_buf_puts(b, "data: ");
    put_head(b, c, c->ep == EP_CHAT ? "chat.completion.chunk" : "text_completion");
    ss_buf_puts(b, ",\"choices\":[");
}

static void chunk_tail(ss_buf_t *b, const call_t *c)
{
    ss_buf_puts(b, "]");
    if (c->include_usage)
        ss_buf_puts(b, ",\"usage\":null");
    ss_buf_puts(b, "}\n\n");
}

/* A chunk of request i: text[from..to) with tokens [k0, k1), finish reason or NULL. */
static void put_chunk(ss_buf_t *b, const call_t *c, int i, const char *text, size_t from, size_t to, int k0, int k1,
                      const char *finish)
{
    chunk_head(b, c);
    ss_buf_printf(b, "{\"index\":%d,", i);
    if (c->ep == EP_CHAT) {
        ss_buf_puts(b, "\"delta\":{");
        if (!c->wr[i].opened)
            ss_buf_puts(b, "\"role\":\"assistant\",");
        if (to > from || !finish) {
            ss_buf_puts(b, "\"content\":");
            put_str(b, text + from, to - from);
        } else if (!c->wr[i].opened)
            ss_buf_puts(b, "\"content\":\"\"");
        if (b->data[b->len - 1] == ',')
            b->len--;
        ss_buf_putc(b, '}');
    } else {
        ss_buf_puts(b, "\"text\":");
        put_str(b, text + from, to - from);
    }
    if (finish)
        put_ext(b, c, i);
    ss_buf_puts(b, ",\"logprobs\":");
    if (k1 > k0)
        put_logprobs(b, c, i, k0, k1, 0);
    else
        ss_buf_puts(b, c->logprobs_on ? (c->ep == EP_CHAT ? "{\"content\":[],\"refusal\":null}" :
                                         "{\"tokens\":[],\"token_logprobs\":[],\"top_logprobs\":[],\"text_offset\":[]}")
                                      : "null");
    if (finish)
        ss_buf_printf(b, ",\"finish_reason\":\"%s\"}", finish);
    else
        ss_buf_puts(b, ",\"finish_reason\":null}");
    chunk_tail(b, c);
}

/* The events of request i that became available. */
static void stream_one(call_t *c, int i, ss_buf_t *b)
{
    wreq_t *r = &c->wr[i];
    if (r->closed)
        return;
    if (!r->opened && c->echo) { /* echo: the prompt comes first */
        put_chunk(b, c, i, c->reqs[i].prompt, 0, strlen(c->reqs[i].prompt), 0, 0, NULL);
        r->opened = 1;
    }
    if (!r->finished) {
        size_t safe = safe_len(c, i);
        int k = r->sent_tok, last = -1;
        for (; k < r->ntok && r->tok[k].off + r->tok[k].len <= safe; k++)
            if (utf8_whole(r->text.data, r->tok[k].off + r->tok[k].len))
                last = k;
        if (last >= r->sent_tok || (!r->opened && c->ep == EP_CHAT)) {
            size_t to = last >= 0 ? r->tok[last].off + r->tok[last].len : r->sent;
            put_chunk(b, c, i, r->text.data, r->sent, to, r->sent_tok, last + 1 > r->sent_tok ? last + 1 : r->sent_tok,
                      NULL);
            r->opened = 1;
            r->sent = to;
            if (last >= r->sent_tok)
                r->sent_tok = last + 1;
        }
        return;
    }
    const char *text = final_text(c, i);
    size_t lf = strlen(text);
    int kept = kept_tokens(c, i);
    if (lf > r->sent || kept > r->sent_tok) {
        put_chunk(b, c, i, text, SS_MIN(r->sent, lf), lf, SS_MIN(r->sent_tok, kept), kept, NULL);
        r->opened = 1;
        r->sent = lf;
        r->sent_tok = kept;
    }
    put_chunk(b, c, i, text, lf, lf, 0, 0, finish_reason(c, i));
    r->opened = r->closed = 1;
}

void wk_stream(call_t *c, ss_buf_t *b)
{
    if (c->out_end)
        return;
    if (c->status) { /* the call failed: an error event ends the stream */
        ss_buf_puts(b, "data: ");
        wk_error_json(b, c->err, "server_error", NULL, NULL);
        ss_buf_puts(b, "\n\n");
        c->out_end = 1;
        return;
    }
    const char *msg;
    if (c->done && wk_failed(c, &msg)) {
        ss_buf_puts(b, "data: ");
        wk_error_json(b, msg, "invalid_request_error", NULL, NULL);
        ss_buf_puts(b, "\n\n");
        c->out_end = 1;
        return;
    }
    for (int i = 0; i < c->nreq; i++)
        if (!c->wr[i].finished || c->done) /* a finished one waits for the cache, as the others */
            stream_one(c, i, b);
    if (!c->done)
        return;
    if (c->include_usage) {
        chunk_head(b, c);
        ss_buf_puts(b, "],\"usage\":");
        put_usage(b, c);
        ss_buf_puts(b, "}\n\n");
    }
    ss_buf_puts(b, "data: [DONE]\n\n");
    c->out_end = 1;
}
