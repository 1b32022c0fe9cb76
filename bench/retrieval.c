/*
 * retrieval.c — retrieval quality and speed of the local embedders ("wink" word vectors, "use"
 * sentence encoder) on the chatbot example (examples/chatbot.sql): every message of
 * examples/conversation_events.jsonl (inserts and updates, 9 questions) ranks the articles of
 * examples/support_docs.jsonl (each document's latest version, 10 articles) by cosine, as
 * LLM_GENERATE's retrieval does, with the texts the operator embeds: the question is the
 * PROMPT's fields (<product>…</product><message>…</message>), a document all its columns as
 * fields (operators/llm_generate.c). The relevant articles of each question are labelled in
 * examples/chatbot_relevant.jsonl. Reports recall@1, recall@3 (the example retrieves 3), MRR and
 * each question's top 3 per embedder; then texts/s of each embedder over the examples' texts
 * (the baseline is wink in the same run), one thread and all threads. Writes
 * bench/results/retrieval.json.
 *
 * usage: bench_retrieval [--examples DIR] [--texts N] [--out FILE]
 */
#include "ss_embed.h"
#include "ss_json.h"
#include "ss_sem.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXQ 32
#define MAXD 32
#define MAXT 4096

typedef struct corpus {
    char *doc_id[MAXD], *doc_text[MAXD];
    int nd;
    char *q_id[MAXQ], *q_text[MAXQ], *q_msg[MAXQ];
    int q_ver[MAXQ], nq;
    char *rel[MAXQ][4];
    int nrel[MAXQ];
    char *bulk[MAXT]; /* the speed workload: every text of the examples */
    int nbulk;
} corpus_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "bench_retrieval: cannot open %s\n", path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) exit(1);
    b[n] = 0;
    fclose(f);
    return b;
}

/* Calls fn(row, op, ctx) for every JSON line of path. */
static void each_line(const char *path, void (*fn)(const ss_json_t *, void *), void *ctx)
{
    char *b = slurp(path), *save = NULL, err[256];
    for (char *l = strtok_r(b, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        ss_json_doc_t *d;
        if (ss_json_parse(l, strlen(l), 0, &d, NULL, err, sizeof err)) {
            fprintf(stderr, "bench_retrieval: %s: %s\n", path, err);
            exit(1);
        }
        fn(ss_json_root(d), ctx);
        ss_json_free(d);
    }
    free(b);
}

static const char *str(const ss_json_t *o, const char *k)
{
    const char *s = ss_json_str(ss_json_get(o, k));
    return s ? s : "";
}

static void bulk_add(corpus_t *c, const char *s)
{
    if (c->nbulk < MAXT && *s) c->bulk[c->nbulk++] = ss_strdup(s);
}

/* A row as the operator renders it: "<col>value</col>\n" per column named. */
static char *fields(const ss_json_t *row, const char *const *cols, int n)
{
    ss_buf_t b = SS_BUF_INIT;
    for (int i = 0; i < n; i++) {
        const char *v = str(row, cols[i]);
        ss_sem_item(&b, cols[i], v, strlen(v));
    }
    char *s = ss_strdup(ss_buf_cstr(&b));
    ss_buf_free(&b);
    return s;
}

static void on_doc(const ss_json_t *line, void *ctx)
{
    corpus_t *c = ctx;
    const ss_json_t *row = ss_json_get(line, "row");
    if (strcmp(str(line, "op"), "delete") == 0) return; /* the article stays labelled: keep its latest text */
    static const char *const cols[] = {"doc_id", "product", "title", "body"};
    int i = 0;
    while (i < c->nd && strcmp(c->doc_id[i], str(row, "doc_id"))) i++;
    if (i == c->nd) c->doc_id[c->nd++] = ss_strdup(str(row, "doc_id"));
    else free(c->doc_text[i]);
    c->doc_text[i] = fields(row, cols, 4);
    bulk_add(c, str(row, "title"));
    bulk_add(c, str(row, "body"));
}

static void on_event(const ss_json_t *line, void *ctx)
{
    corpus_t *c = ctx;
    const ss_json_t *row = ss_json_get(line, "row");
    if (strcmp(str(line, "op"), "delete") == 0 || c->nq >= MAXQ) return;
    static const char *const cols[] = {"product", "message"}; /* the PROMPT's fields */
    int ver = 1;
    for (int i = 0; i < c->nq; i++) ver += !strcmp(c->q_id[i], str(row, "conversation_id"));
    c->q_id[c->nq] = ss_strdup(str(row, "conversation_id"));
    c->q_ver[c->nq] = ver;
    c->q_msg[c->nq] = ss_strdup(str(row, "message"));
    c->q_text[c->nq++] = fields(row, cols, 2);
    bulk_add(c, str(row, "message"));
}

static void on_label(const ss_json_t *line, void *ctx)
{
    corpus_t *c = ctx;
    const ss_json_t *rel = ss_json_get(line, "relevant");
    for (int i = 0; i < c->nq; i++) {
        if (strcmp(c->q_id[i], str(line, "conversation_id")) || c->q_ver[i] != ss_json_get(line, "version")->u.i)
            continue;
        for (size_t k = 0; rel && k < rel->u.arr.n && k < 4; k++) c->rel[i][c->nrel[i]++] = ss_strdup(rel->u.arr.items[k].u.str.s);
    }
}

static void on_paper(const ss_json_t *line, void *ctx)
{
    const ss_json_t *row = ss_json_get(line, "row");
    bulk_add(ctx, str(row, "title"));
    bulk_add(ctx, str(row, "abstract"));
}

typedef struct score {
    double r1, r3, mrr;
    int top[MAXQ][3];
} score_t;

static int is_rel(const corpus_t *c, int q, int d)
{
    for (int k = 0; k < c->nrel[q]; k++)
        if (!strcmp(c->rel[q][k], c->doc_id[d])) return 1;
    return 0;
}

static int evaluate(const char *kind, const corpus_t *c, score_t *s, double *tps1, double *tpsn, double *tpcpu,
                    int ntexts)
{
    ss_embed_opts_t o = {.kind = kind};
    ss_embedder_t *e;
    char err[1024];
    if (ss_embedder_open(&o, &e, err, sizeof err)) {
        fprintf(stderr, "bench_retrieval: %s\n", err);
        return -1;
    }
    int d = e->dim;
    float *dv = malloc(sizeof(float) * d * c->nd), *qv = malloc(sizeof(float) * d * c->nq);
    if (ss_embedder_embed(e, (const char *const *)c->doc_text, c->nd, dv, err, sizeof err) ||
        ss_embedder_embed(e, (const char *const *)c->q_text, c->nq, qv, err, sizeof err)) {
        fprintf(stderr, "bench_retrieval: %s\n", err);
        return -1;
    }
    memset(s, 0, sizeof *s);
    printf("\n%s (%s)\n", kind, e->desc);
    for (int q = 0; q < c->nq; q++) {
        double sim[MAXD];
        int ord[MAXD];
        for (int i = 0; i < c->nd; i++) {
            double x = 0;
            for (int k = 0; k < d; k++) x += (double)qv[q * d + k] * dv[i * d + k];
            sim[i] = x;
            ord[i] = i;
        }
        for (int i = 0; i < c->nd; i++) /* by similarity, ties by document order (stable) */
            for (int j = i + 1; j < c->nd; j++)
                if (sim[ord[j]] > sim[ord[i]]) { int t = ord[i]; ord[i] = ord[j]; ord[j] = t; }
        int h1 = 0, h3 = 0, first = 0;
        for (int r = 0; r < c->nd; r++)
            if (is_rel(c, q, ord[r])) {
                if (r < 1) h1++;
                if (r < 3) h3++;
                if (!first) first = r + 1;
            }
        s->r1 += (double)h1 / c->nrel[q];
        s->r3 += (double)h3 / c->nrel[q];
        s->mrr += first ? 1.0 / first : 0;
        for (int r = 0; r < 3; r++) s->top[q][r] = ord[r];
        printf("  %s v%d %-62.62s top3: %s%s %s%s %s%s\n", c->q_id[q], c->q_ver[q], c->q_msg[q],
               c->doc_id[ord[0]], is_rel(c, q, ord[0]) ? "*" : " ", c->doc_id[ord[1]], is_rel(c, q, ord[1]) ? "*" : " ",
               c->doc_id[ord[2]], is_rel(c, q, ord[2]) ? "*" : " ");
    }
    s->r1 /= c->nq, s->r3 /= c->nq, s->mrr /= c->nq;
    printf("  recall@1 %.3f  recall@3 %.3f  MRR %.3f   (* = labelled relevant)\n", s->r1, s->r3, s->mrr);
    /* speed: ntexts texts cycled from the examples, one thread, then all */
    const char **w = malloc(sizeof(char *) * ntexts);
    for (int i = 0; i < ntexts; i++) w[i] = c->bulk[i % c->nbulk];
    float *out = malloc(sizeof(float) * d * ntexts);
    int maxt = omp_get_max_threads();
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass ? maxt : 1);
        double t0 = now(), c0 = cpu_now();
        if (ss_embedder_embed(e, w, ntexts, out, err, sizeof err)) return -1;
        double tps = ntexts / (now() - t0);
        *(pass ? tpsn : tps1) = tps;
        if (!pass) *tpcpu = ntexts / (cpu_now() - c0);
    }
    omp_set_num_threads(maxt);
    printf("  speed: %.0f texts/s on 1 thread (%.0f per CPU-second), %.0f on %d threads\n", *tps1, *tpcpu, *tpsn, maxt);
    free(w), free(out), free(dv), free(qv);
    ss_embedder_destroy(e);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = "examples", *outp = "bench/results/retrieval.json";
    int ntexts = 2000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--examples") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--texts") && i + 1 < argc) ntexts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) outp = argv[++i];
        else {
            fprintf(stderr, "usage: bench_retrieval [--examples DIR] [--texts N] [--out FILE]\n");
            return 2;
        }
    }
    static corpus_t c;
    char p[4096];
    snprintf(p, sizeof p, "%s/support_docs.jsonl", dir);
    each_line(p, on_doc, &c);
    snprintf(p, sizeof p, "%s/conversation_events.jsonl", dir);
    each_line(p, on_event, &c);
    snprintf(p, sizeof p, "%s/chatbot_relevant.jsonl", dir);
    each_line(p, on_label, &c);
    snprintf(p, sizeof p, "%s/papers.jsonl", dir);
    each_line(p, on_paper, &c);
    for (int q = 0; q < c.nq; q++)
        if (!c.nrel[q]) {
            fprintf(stderr, "bench_retrieval: %s v%d has no label in chatbot_relevant.jsonl\n", c.q_id[q], c.q_ver[q]);
            return 1;
        }
    double avg = 0;
    for (int i = 0; i < c.nbulk; i++) avg += strlen(c.bulk[i]);
    printf("bench_retrieval: %d questions, %d articles; speed over %d texts (mean %.0f bytes) from %d example texts\n",
           c.nq, c.nd, ntexts, avg / c.nbulk, c.nbulk);
    static const char *const kinds[] = {"wink", "use"};
    score_t s[2];
    double t1[2], tn[2], tc[2];
    for (int k = 0; k < 2; k++)
        if (evaluate(kinds[k], &c, &s[k], &t1[k], &tn[k], &tc[k], ntexts)) return 1;
    printf("\nuse vs wink: recall@3 %.3f vs %.3f, MRR %.3f vs %.3f; speed %.4fx of wink (per CPU-second, 1 thread)\n",
           s[1].r3, s[0].r3, s[1].mrr, s[0].mrr, tc[1] / tc[0]);
    FILE *f = fopen(outp, "w");
    if (!f) { fprintf(stderr, "bench_retrieval: cannot write %s\n", outp); return 1; }
    fprintf(f, "{\"bench\": \"retrieval\", \"questions\": %d, \"articles\": %d, \"speed_texts\": %d, \"threads\": %d,\n",
            c.nq, c.nd, ntexts, omp_get_max_threads());
    for (int k = 0; k < 2; k++) {
        fprintf(f, " \"%s\": {\"recall_at_1\": %.4f, \"recall_at_3\": %.4f, \"mrr\": %.4f, \"texts_per_s_1thread\": %.1f, "
                   "\"texts_per_cpu_s\": %.1f, \"texts_per_s_all\": %.1f, \"top3\": {", kinds[k], s[k].r1, s[k].r3,
                s[k].mrr, t1[k], tc[k], tn[k]);
        for (int q = 0; q < c.nq; q++)
            fprintf(f, "%s\"%s v%d\": [\"%s\", \"%s\", \"%s\"]", q ? ", " : "", c.q_id[q], c.q_ver[q],
                    c.doc_id[s[k].top[q][0]], c.doc_id[s[k].top[q][1]], c.doc_id[s[k].top[q][2]]);
        fprintf(f, "}},\n");
    }
    fprintf(f, " \"ratio_use_vs_wink\": {\"recall_at_3\": %.4f, \"mrr\": %.4f, \"speed_per_cpu_s\": %.5f}}\n",
            s[0].r3 > 0 ? s[1].r3 / s[0].r3 : 0, s[0].mrr > 0 ? s[1].mrr / s[0].mrr : 0, tc[1] / tc[0]);
    fclose(f);
    printf("wrote %s\n", outp);
    return 0;
}
