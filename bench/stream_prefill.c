/*
 * stream_prefill.c — bench_stream_prefill: time to first token after the last piece of a
 * context that arrives in pieces (issue 17 §3, the Stream2LLM crawler pattern), with streaming
 * prefill against waiting for the whole context, in the same run, on the CPU engine.
 *
 * Workload (seeded): a context of about --tokens tokens (sentences of a small story vocabulary)
 * cut into --pieces pieces arriving every --interval-ms; the prompt is "Context: <text so far>
 * Question: ... Answer:".
 * - append trace: each piece extends the text;
 * - edit trace: the same pieces, then --edits in-place edits (a word replaced at a random
 *   position of the text), one per interval; the answer is asked after the last one.
 * With streaming, every arrival but the last issues a prefill-only request (ss_infer_req_t
 * .prefill_only) for the prompt as built so far, so the engine's prefix cache holds its KV; the
 * last arrival submits the GENERATE. Without, the GENERATE of the final prompt runs on an empty
 * prefix cache (what waiting for the whole context costs). Reported per trace: time to first
 * token (from the arrival of the last piece to the first token's callback; fastest of --reps
 * rounds), the final request's prompt tokens computed and reused (engine counters), the longest
 * prefill of an arrival (it must fit the interval), and whether the greedy answers are equal.
 *
 * Usage: bench_stream_prefill [--model PATH] [--tokens N] [--pieces P] [--interval-ms MS]
 *                             [--edits E] [--max-tokens M] [--threads T] [--reps R] [--seed S]
 *                             [--label TEXT] [--out FILE]
 * Writes JSON to --out (default bench/results/stream_prefill.json under the source tree).
 */
#include "ss_bench_util.h"
#include "ss_llm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
    const char *model, *label, *out;
    int tokens, pieces, interval_ms, edits, max_tokens, threads, reps;
    uint64_t seed;
} O = {NULL, "stories260K", NULL, 1500, 15, 700, 4, 16, 1, 3, 7};

static void sleep_until(double t)
{
    double d = t - ss_bench_now_s();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static const char *WORDS[] = {"the", "little", "girl", "boy", "dog", "cat", "park", "ball", "tree", "happy",
                              "sad", "big", "small", "red", "blue", "played", "saw", "found", "went", "home",
                              "mom", "friend", "sun", "bird", "garden", "toy", "box", "jumped", "ran", "smiled"};
#define NWORD ((int)(sizeof WORDS / sizeof *WORDS))

/* the whole context, and the byte offsets where the pieces end */
typedef struct trace {
    char *text;
    size_t *cut; /* [pieces] */
    int npieces;
} trace_t;

static void trace_make(ss_llm_t *m, trace_t *t)
{
    uint64_t s = O.seed;
    size_t cap = 1 << 16, len = 0;
    t->text = malloc(cap);
    if (!t->text)
        ss_bench_die("out of memory");
    t->text[0] = 0;
    while (ss_llm_count_tokens(m, t->text) < O.tokens) {
        int n = 5 + (int)(rnd(&s) % 8);
        for (int i = 0; i < n && len + 32 < cap; i++) {
            const char *w = WORDS[rnd(&s) % NWORD];
            len += (size_t)snprintf(t->text + len, cap - len, "%s%c%s", i ? " " : "",
                                    i ? w[0] : w[0] - 'a' + 'A', w + 1);
        }
        len += (size_t)snprintf(t->text + len, cap - len, ". ");
        if (len + 64 >= cap)
            ss_bench_die("--tokens too large");
    }
    t->npieces = O.pieces;
    t->cut = malloc((size_t)O.pieces * sizeof *t->cut);
    if (!t->cut)
        ss_bench_die("out of memory");
    for (int p = 0; p < O.pieces; p++) { /* equal byte shares, each ending after a space */
        size_t c = p == O.pieces - 1 ? len : len * (size_t)(p + 1) / (size_t)O.pieces;
        while (c < len && t->text[c - 1] != ' ')
            c++;
        t->cut[p] = c;
    }
}

/* the prompt over text[0..n) (malloc'd) */
static char *prompt_of(const char *text, size_t n)
{
    const char *q = "\nQuestion: What did the girl find?\nAnswer:";
    size_t len = n + strlen(q) + 16;
    char *p = malloc(len);
    if (!p)
        ss_bench_die("out of memory");
    snprintf(p, len, "Context: %.*s%s", (int)n, text, q);
    return p;
}

/* one word of text replaced by another of the same vocabulary (in place; lengths may differ) */
static char *edit_text(const char *text, uint64_t *s)
{
    size_t len = strlen(text), at = (size_t)(rnd(s) % len);
    while (at > 0 && text[at - 1] != ' ')
        at--;
    size_t end = at;
    while (end < len && text[end] != ' ' && text[end] != '.')
        end++;
    const char *w = WORDS[rnd(s) % NWORD];
    char *o = malloc(len + strlen(w) + 1);
    if (!o)
        ss_bench_die("out of memory");
    snprintf(o, len + strlen(w) + 1, "%.*s%s%s", (int)at, text, w, text + end);
    return o;
}

typedef struct run_res {
    double ttft, max_prefill;
    int64_t computed, reused;
    int prompt_tokens;
    char *answer;
} run_res_t;

typedef struct gen_ctx {
    double first;
    int done;
} gen_ctx_t;

static void on_tok(void *ctx, const ss_infer_token_t *t)
{
    gen_ctx_t *g = ctx;
    (void)t;
    if (g->first == 0)
        g->first = ss_bench_now_s();
}

static void on_done(void *ctx, ss_infer_res_t *res, int rc)
{
    (void)res, (void)rc;
    ((gen_ctx_t *)ctx)->done = 1;
}

static void prefill(ss_llm_t *m, const char *prompt, double *worst)
{
    char err[SS_ERRSZ] = "";
    double t0 = ss_bench_now_s();
    ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = prompt, .raw = 1, .prefill_only = 1};
    ss_infer_res_t res = {0};
    if (ss_llm_run(m, &r, 1, &res, err, sizeof err) || res.status)
        ss_bench_die("prefill: %s %s", err, res.error ? res.error : "");
    ss_infer_res_clear(&res);
    double d = ss_bench_now_s() - t0;
    if (d > *worst)
        *worst = d;
}

/* The final request, submitted at t0 (the arrival of the last piece). */
static void answer(ss_llm_t *m, const char *prompt, double t0, run_res_t *out)
{
    char err[SS_ERRSZ] = "";
    gen_ctx_t g = {0};
    ss_llm_stats_t a, b;
    ss_llm_stats(m, &a);
    ss_infer_req_t r = {.kind = SS_INFER_GENERATE, .prompt = prompt, .raw = 1, .max_tokens = O.max_tokens,
                        .on_token = on_tok, .on_token_ctx = &g};
    ss_infer_res_t res = {0};
    if (ss_llm_submit(m, &r, &res, on_done, &g, err, sizeof err))
        ss_bench_die("submit: %s", err);
    while (!g.done) {
        if (ss_llm_step(m, 0, err, sizeof err))
            ss_bench_die("step: %s", err);
        if (g.first && !out->ttft) { /* the prompt is computed: count only its work */
            ss_llm_stats(m, &b);
            out->ttft = g.first - t0;
            out->computed = b.tokens_computed - a.tokens_computed;
            out->reused = b.tokens_reused - a.tokens_reused;
        }
    }
    if (res.status)
        ss_bench_die("answer: %s", res.error);
    out->prompt_tokens = res.prompt_tokens;
    out->answer = res.text;
    res.text = NULL;
    ss_infer_res_clear(&res);
}

/* One trace: the arrivals (texts[0..n)), with or without streaming prefill. */
static void run_trace(ss_llm_t *m, char **texts, int n, int stream, run_res_t *out)
{
    memset(out, 0, sizeof *out);
    ss_llm_cache_clear(m);
    double start = ss_bench_now_s();
    for (int k = 0; k < n - 1; k++) {
        if (!stream)
            continue; /* waiting for the whole context: nothing to do before the last piece */
        sleep_until(start + (double)k * O.interval_ms / 1000.0);
        prefill(m, texts[k], &out->max_prefill);
    }
    if (stream)
        sleep_until(start + (double)(n - 1) * O.interval_ms / 1000.0);
    answer(m, texts[n - 1], ss_bench_now_s(), out);
}

typedef struct cmp {
    const char *name;
    int arrivals;
    run_res_t with, without; /* fastest TTFT of the rounds; counters are the same in every round */
    int same, differ; /* rounds whose answers differed */
} cmp_t;

static void keep_best(run_res_t *best, run_res_t *r, int first)
{
    if (first || r->ttft < best->ttft) {
        double mp = best->max_prefill > r->max_prefill ? best->max_prefill : r->max_prefill;
        free(best->answer);
        *best = *r;
        best->max_prefill = mp;
    } else {
        if (r->max_prefill > best->max_prefill)
            best->max_prefill = r->max_prefill;
        free(r->answer);
    }
}

static void compare(ss_llm_t *m, const char *name, char **texts, int n, cmp_t *c)
{
    memset(c, 0, sizeof *c);
    c->name = name;
    c->arrivals = n;
    for (int rep = 0; rep < O.reps; rep++) {
        run_res_t w, wo;
        run_trace(m, texts, n, 0, &wo); /* the baseline first in each round */
        run_trace(m, texts, n, 1, &w);
        c->differ += strcmp(w.answer, wo.answer) != 0; /* greedy on the same prompt: must not happen */
        keep_best(&c->without, &wo, rep == 0);
        keep_best(&c->with, &w, rep == 0);
    }
    c->same = !c->differ;
    printf("%-7s arrivals %2d  prompt %5d tok | without: TTFT %8.1f ms, computed %5lld | with: TTFT %7.1f ms, "
           "computed %4lld, reused %5lld, longest arrival prefill %6.1f ms | %.1fx | answers %s\n",
           name, n, c->with.prompt_tokens, c->without.ttft * 1e3, (long long)c->without.computed, c->with.ttft * 1e3,
           (long long)c->with.computed, (long long)c->with.reused, c->with.max_prefill * 1e3,
           c->without.ttft / c->with.ttft, c->same ? "equal" : "DIFFER");
}

static void json_run(FILE *f, const char *k, const run_res_t *r)
{
    fprintf(f, "\"%s\":{\"ttft_ms\":%.3f,\"final_tokens_computed\":%lld,\"final_tokens_reused\":%lld,"
               "\"longest_arrival_prefill_ms\":%.3f}",
            k, r->ttft * 1e3, (long long)r->computed, (long long)r->reused, r->max_prefill * 1e3);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            ss_bench_die("usage: bench_stream_prefill [--model PATH] [--tokens N] [--pieces P] [--interval-ms MS] [--edits E] "
                "[--max-tokens M] [--threads T] [--reps R] [--seed S] [--label TEXT] [--out FILE]");
        if (!strcmp(a, "--model")) O.model = v;
        else if (!strcmp(a, "--tokens")) O.tokens = atoi(v);
        else if (!strcmp(a, "--pieces")) O.pieces = atoi(v);
        else if (!strcmp(a, "--interval-ms")) O.interval_ms = atoi(v);
        else if (!strcmp(a, "--edits")) O.edits = atoi(v);
        else if (!strcmp(a, "--max-tokens")) O.max_tokens = atoi(v);
        else if (!strcmp(a, "--threads")) O.threads = atoi(v);
        else if (!strcmp(a, "--reps")) O.reps = atoi(v) > 0 ? atoi(v) : 1;
        else if (!strcmp(a, "--seed")) O.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--label")) O.label = v;
        else if (!strcmp(a, "--out")) O.out = v;
        else ss_bench_die("unknown option %s", a);
        i++;
    }
    if (O.tokens < 16 || O.pieces < 2 || O.interval_ms < 0 || O.edits < 1 || O.max_tokens < 1)
        ss_bench_die("--tokens >= 16, --pieces >= 2, --edits >= 1, --max-tokens >= 1");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    static char model[1200], outp[1200];
    if (!O.model)
        O.model = ss_bench_source_file(__FILE__, "../shared/models/stories260K.gguf", model, sizeof model);
    if (!O.out)
        O.out = ss_bench_source_file(__FILE__, "bench/results/stream_prefill.json", outp, sizeof outp);
    char err[SS_ERRSZ] = "";
    ss_llm_opts_t lo = {.threads = O.threads, .raw_prompts = 1};
    ss_llm_t *m = NULL;
    if (ss_llm_open(O.model, &lo, &m, err, sizeof err))
        ss_bench_die("%s", err);
    int room = ss_llm_config(m)->ctx_len - O.max_tokens - 64; /* the question and the edits' growth */
    if (O.tokens > room) {
        printf("note: context capped at %d tokens (the model's context is %d)\n", room, ss_llm_config(m)->ctx_len);
        O.tokens = room;
    }
    trace_t t;
    trace_make(m, &t);
    int na = t.npieces, ne = t.npieces + O.edits;
    char **app = calloc((size_t)na, sizeof *app), **ed = calloc((size_t)ne, sizeof *ed);
    if (!app || !ed)
        ss_bench_die("out of memory");
    for (int k = 0; k < na; k++)
        app[k] = ed[k] = prompt_of(t.text, t.cut[k]);
    uint64_t s = O.seed * 31 + 1;
    char *cur = strdup(t.text);
    for (int e = 0; e < O.edits; e++) {
        char *nx = edit_text(cur, &s);
        free(cur);
        cur = nx;
        ed[na + e] = prompt_of(cur, strlen(cur));
    }
    free(cur);
    printf("bench_stream_prefill: %s, context %d tokens in %d pieces every %d ms, %d in-place edits, max_tokens %d, "
           "%d thread(s), fastest of %d rounds\n",
           O.label, ss_llm_count_tokens(m, t.text), na, O.interval_ms, O.edits, O.max_tokens, O.threads, O.reps);
    cmp_t c[2];
    compare(m, "append", app, na, &c[0]);
    compare(m, "edit", ed, ne, &c[1]);
    FILE *f = fopen(O.out, "w");
    if (!f)
        ss_bench_die("cannot write %s", O.out);
    fprintf(f, "{\"bench\":\"stream_prefill\",\"label\":\"%s\",\"model\":\"%s\",\"context_tokens\":%d,\"pieces\":%d,"
               "\"interval_ms\":%d,\"edits\":%d,\"max_tokens\":%d,\"threads\":%d,\"reps\":%d,\"traces\":[",
            O.label, ss_llm_id(m), ss_llm_count_tokens(m, t.text), na, O.interval_ms, O.edits, O.max_tokens,
            O.threads, O.reps);
    for (int i = 0; i < 2; i++) {
        fprintf(f, "%s{\"trace\":\"%s\",\"arrivals\":%d,\"prompt_tokens\":%d,", i ? "," : "", c[i].name,
                c[i].arrivals, c[i].with.prompt_tokens);
        json_run(f, "without", &c[i].without);
        fputc(',', f);
        json_run(f, "with", &c[i].with);
        fprintf(f, ",\"ttft_ratio\":%.3f,\"answers_equal\":%s}", c[i].without.ttft / c[i].with.ttft,
                c[i].same ? "true" : "false");
    }
    fprintf(f, "]}\n");
    fclose(f);
    printf("wrote %s\n", O.out);
    for (int i = 0; i < 2; i++) {
        free(c[i].with.answer);
        free(c[i].without.answer);
    }
    for (int k = 0; k < ne; k++)
        free(ed[k]); /* app[k] == ed[k] for the pieces */
    free(app);
    free(ed);
    free(t.text);
    free(t.cut);
    ss_llm_close(m);
    return 0;
}
