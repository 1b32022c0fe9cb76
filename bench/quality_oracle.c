/*
 * quality_oracle.c — bench_quality_oracle: a FIXTURE, not a model. An OpenAI-compatible HTTP
 * server on 127.0.0.1 that answers the semantic operators' questions about the WordNet corpus
 * (tools/wordnet2json) from its labels, so that it is always right. It stands in for a large
 * model that is always right, as the cascade literature measures with (LOTUS, SUPG): bench/quality.c
 * measures call savings and accuracy against ground truth with it, and takes `--oracle URL` for a
 * real model instead.
 *
 * What it knows: every noun synset's gloss, first lemma, lexicographer category and hypernym
 * closure (DIR/nouns.jsonl, DIR/closure.jsonl). What it answers, reading the prompt the operators
 * send (docs/SEMANTIC.md "Prompts": the instruction, then one <name>value</name> field per line):
 *   - yes/no ("### Answer (yes or no):"): the rows are found by their fields whose name ends in
 *     "gloss" (a gloss names one synset), else in "word" (a lemma: any of its synsets). An
 *     instruction saying "kind of" or "type of" asks whether the second row is a hypernym
 *     (transitively) of the first; any other names a category by one of its words ("animal" for
 *     noun.animal, "food", "plant", "artifact", "person", ...: the first such word in the
 *     instruction) and asks whether the row is in it;
 *   - 1..10 scores ("(1 to 10)"): 10 for a row in the instruction's category, else 1;
 *   - generated text: "fixture answer" and the first row's word (LLM_GENERATE's answers are not
 *     what bench/quality measures: its retrieval is).
 * A prompt it cannot label is answered 400 with the reason. Endpoints: POST /v1/chat/completions
 * (logprobs / top_logprobs as OpenAI returns them), POST /v1/completions (the legacy API, arrays
 * of prompts too), GET /v1/models, GET /fixture/stats ({"requests", "yes", "no", "scores",
 * "texts", "errors"}). The openai backend (runtime/backend_openai.c) talks to it as to any server.
 *
 * Usage: bench_quality_oracle --corpus DIR [--port P] [--latency-ms MS]
 * Prints "oracle fixture: listening on http://127.0.0.1:PORT" on stdout once it serves, and runs
 * until SIGTERM or SIGINT.
 */
#include "ss_base.h"
#include "ss_json.h"

#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------------ the labels */

typedef struct syn {
    int64_t id;
    char *word, *gloss, *cat;
    int64_t *anc; /* hypernym closure, sorted */
    int nanc;
} syn_t;

static struct {
    syn_t *s;
    int n;
    int *by_gloss, *by_word; /* indexes of s sorted by gloss / word */
    pthread_mutex_t mu;
    int64_t requests, yes, no, scores, texts, errors;
    int latency_ms;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_quality_oracle: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Calls fn(doc root, line number) for each line of path, a JSON document per line. */
static void each_line(const char *path, void (*fn)(const ss_json_t *, long, void *), void *ud)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("%s: cannot read it (make the corpus with: wordnet2json --out DIR)", path);
    char *line = NULL, err[256];
    size_t cap = 0;
    ssize_t len;
    long no = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        no++;
        ss_json_doc_t *d = NULL;
        if (ss_json_parse(line, (size_t)len, 0, &d, NULL, err, sizeof err))
            die("%s:%ld: %s", path, no, err);
        fn(ss_json_root(d), no, ud);
        ss_json_free(d);
    }
    free(line);
    fclose(f);
}

static void add_noun(const ss_json_t *o, long no, void *ud)
{
    const char *path = ud;
    const ss_json_t *id = ss_json_get(o, "id");
    const char *w = ss_json_str(ss_json_get(o, "word")), *g = ss_json_str(ss_json_get(o, "gloss")),
               *c = ss_json_str(ss_json_get(o, "category"));
    if (!id || id->t != SS_JSON_INT || !w || !g || !c)
        die("%s:%ld: a row needs id (integer), word, gloss and category", path, no);
    static int cap;
    if (L.n == cap) {
        cap = cap ? cap * 2 : 4096;
        if (!(L.s = realloc(L.s, sizeof *L.s * (size_t)cap)))
            die("out of memory");
    }
    L.s[L.n++] = (syn_t){.id = id->u.i, .word = ss_strdup(w), .gloss = ss_strdup(g), .cat = ss_strdup(c)};
}

static int find_id(int64_t id)
{
    int lo = 0, hi = L.n - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (L.s[m].id == id)
            return m;
        if (L.s[m].id < id)
            lo = m + 1;
        else
            hi = m - 1;
    }
    return -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void add_closure(const ss_json_t *o, long no, void *ud)
{
    const char *path = ud;
    const ss_json_t *id = ss_json_get(o, "id"), *a = ss_json_get(o, "ancestors");
    int i = id && id->t == SS_JSON_INT ? find_id(id->u.i) : -1;
    if (i < 0 || !a || a->t != SS_JSON_ARRAY)
        die("%s:%ld: needs the id of a synset of nouns.jsonl and an ancestors array", path, no);
    syn_t *s = &L.s[i];
    s->nanc = (int)a->u.arr.n;
    s->anc = calloc((size_t)(s->nanc ? s->nanc : 1), sizeof *s->anc);
    for (int k = 0; k < s->nanc; k++)
        s->anc[k] = a->u.arr.items[k].u.i;
    qsort(s->anc, (size_t)s->nanc, sizeof *s->anc, cmp_i64);
}

static int cmp_gloss(const void *a, const void *b)
{
    return strcmp(L.s[*(const int *)a].gloss, L.s[*(const int *)b].gloss);
}

static int cmp_word(const void *a, const void *b)
{
    return strcmp(L.s[*(const int *)a].word, L.s[*(const int *)b].word);
}

static int cmp_id(const void *a, const void *b)
{
    const syn_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void load(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/nouns.jsonl", dir);
    each_line(path, add_noun, path);
    if (!L.n)
        die("%s: no synsets", path);
    qsort(L.s, (size_t)L.n, sizeof *L.s, cmp_id);
    snprintf(path, sizeof path, "%s/closure.jsonl", dir);
    each_line(path, add_closure, path);
    L.by_gloss = malloc(sizeof(int) * (size_t)L.n);
    L.by_word = malloc(sizeof(int) * (size_t)L.n);
    for (int i = 0; i < L.n; i++)
        L.by_gloss[i] = L.by_word[i] = i;
    qsort(L.by_gloss, (size_t)L.n, sizeof(int), cmp_gloss);
    qsort(L.by_word, (size_t)L.n, sizeof(int), cmp_word);
}

/* The range [*lo, *hi) of idx (sorted by field) whose field equals key. */
static void equal_range(const int *idx, int by_gloss, const char *key, int *lo, int *hi)
{
    int a = 0, b = L.n;
    while (a < b) {
        int m = (a + b) / 2;
        const syn_t *s = &L.s[idx[m]];
        if (strcmp(by_gloss ? s->gloss : s->word, key) < 0)
            a = m + 1;
        else
            b = m;
    }
    *lo = a;
    b = L.n;
    while (a < b) {
        int m = (a + b) / 2;
        const syn_t *s = &L.s[idx[m]];
        if (strcmp(by_gloss ? s->gloss : s->word, key) <= 0)
            a = m + 1;
        else
            b = m;
    }
    *hi = a;
}

static int has_ancestor(const syn_t *s, int64_t id)
{
    return bsearch(&id, s->anc, (size_t)s->nanc, sizeof *s->anc, cmp_i64) != NULL;
}

/* ------------------------------------------------------------------ reading a prompt */

#define MAXROWS 4
#define MAXSENSES 64

typedef struct prompt {
    char instr[2048];
    int kind;               /* 'y' yes/no, 'a' A/B, 's' score, 'g' generate */
    int nrows;              /* rows found, in field order */
    int sense[MAXROWS][MAXSENSES]; /* candidate synsets of each row */
    int nsense[MAXROWS];
    char prefix[MAXROWS][64];      /* the field names' prefix of each row ("a" of "a.word") */
    char fields[512];       /* the field names seen, for error messages */
} prompt_t;

static void unescape(const char *s, size_t n, ss_buf_t *out)
{
    static const struct {
        const char *ent, *c;
    } E[] = {{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}, {"&#35;", "#"}};
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < SS_ARRAY_LEN(E); k++) {
            size_t l = strlen(E[k].ent);
            if (i + l <= n && !memcmp(s + i, E[k].ent, l)) {
                ss_buf_puts(out, E[k].c);
                i += l;
                break;
            }
        }
        if (k == SS_ARRAY_LEN(E))
            ss_buf_putc(out, s[i++]);
    }
}

static int ends_with(const char *s, size_t n, const char *suf)
{
    size_t l = strlen(suf);
    return n >= l && !strncasecmp(s + n - l, suf, l);
}

/* One "<name>value</name>" line: a row's gloss or word. Fields of one row share the prefix of
 * their name before its last '.' ("a.word", "a.gloss"); a field with another prefix, or naming
 * no synset of the current row's candidates, starts the next row. */
static void read_field(prompt_t *p, const char *line, size_t n)
{
    if (n < 5 || line[0] != '<')
        return;
    const char *gt = memchr(line, '>', n);
    if (!gt)
        return;
    size_t tn = (size_t)(gt - line - 1);
    const char *val = gt + 1, *close = NULL;
    for (const char *c = line + n - 1; c > val; c--)
        if (c[0] == '<' && c[1] == '/') {
            close = c;
            break;
        }
    if (!close)
        return;
    size_t fl = strlen(p->fields);
    snprintf(p->fields + fl, sizeof p->fields - fl, "%s%.*s", fl ? ", " : "", (int)tn, line + 1);
    int gloss = ends_with(line + 1, tn, "gloss"), word = ends_with(line + 1, tn, "word");
    if (!gloss && !word)
        return;
    char prefix[64] = "";
    for (size_t k = tn; k > 0; k--)
        if (line[k] == '.') {
            snprintf(prefix, sizeof prefix, "%.*s", (int)(k - 1), line + 1);
            break;
        }
    ss_buf_t v = SS_BUF_INIT;
    unescape(val, (size_t)(close - val), &v);
    int lo, hi;
    const int *idx = gloss ? L.by_gloss : L.by_word;
    equal_range(idx, gloss, ss_buf_cstr(&v), &lo, &hi);
    ss_buf_free(&v);
    if (lo == hi)
        return;
    int r = p->nrows - 1;
    if (r >= 0 && !strcmp(prefix, p->prefix[r])) { /* the same row: keep the senses both name */
        int kept = 0;
        for (int a = 0; a < p->nsense[r]; a++)
            for (int k = lo; k < hi; k++)
                if (idx[k] == p->sense[r][a]) {
                    p->sense[r][kept++] = p->sense[r][a];
                    break;
                }
        if (kept) {
            p->nsense[r] = kept;
            return;
        }
    }
    if (p->nrows >= MAXROWS)
        return;
    r = p->nrows++;
    snprintf(p->prefix[r], sizeof p->prefix[r], "%s", prefix);
    for (int k = lo; k < hi && p->nsense[r] < MAXSENSES; k++)
        p->sense[r][p->nsense[r]++] = idx[k];
}

static void read_prompt(const char *text, prompt_t *p)
{
    memset(p, 0, sizeof *p);
    const char *in = strstr(text, "### Instruction\n");
    if (in) {
        in += strlen("### Instruction\n");
        const char *e = strstr(in, "\n###");
        size_t n = e ? (size_t)(e - in) : strlen(in);
        snprintf(p->instr, sizeof p->instr, "%.*s", (int)n, in);
    }
    const char *ans = strstr(text, "### Answer");
    p->kind = !ans ? 'g' : !strncmp(ans, "### Answer (yes or no)", 22) ? 'y'
            : !strncmp(ans, "### Answer (1 to 10)", 20)                 ? 's'
            : strstr(text, "A or B")                                     ? 'a'
                                                                         : 'g';
    const char *fields = strstr(text, "### Input\n");
    if (!fields)
        fields = strstr(text, "### Turn\n");
    if (!fields)
        return;
    fields = strchr(fields, '\n') + 1;
    while (*fields && strncmp(fields, "###", 3)) {
        const char *e = strchr(fields, '\n');
        size_t n = e ? (size_t)(e - fields) : strlen(fields);
        read_field(p, fields, n);
        fields += n + (e ? 1 : 0);
    }
}

/* The category the instruction names: noun.X for the first X of WordNet's noun categories
 * that appears in it as a word. NULL if none. */
static const char *instr_category(const char *instr)
{
    static const char *const CATS[] = {"act", "animal", "artifact", "attribute", "body", "cognition",
                                       "communication", "event", "feeling", "food", "group", "location",
                                       "motive", "object", "person", "phenomenon", "plant", "possession",
                                       "process", "quantity", "relation", "shape", "state", "substance",
                                       "time"};
    static char out[SS_ARRAY_LEN(CATS)][32];
    const char *best = NULL;
    size_t bestpos = (size_t)-1;
    for (size_t k = 0; k < SS_ARRAY_LEN(CATS); k++) {
        size_t l = strlen(CATS[k]);
        for (const char *h = instr; (h = strcasestr(h, CATS[k])); h += l) {
            int left = h == instr || !isalpha((unsigned char)h[-1]);
            int right = !isalpha((unsigned char)h[l]) || (h[l] == 's' && !isalpha((unsigned char)h[l + 1]));
            if (left && right && (size_t)(h - instr) < bestpos) {
                bestpos = (size_t)(h - instr);
                snprintf(out[k], sizeof out[k], "noun.%s", CATS[k]);
                best = out[k];
                break;
            }
        }
    }
    return best;
}

/* Answers a yes/no question: 1 yes, 0 no, -1 when it cannot (why in err). */
static int judge_yes(const prompt_t *p, char *err, size_t errsz)
{
    int hyper = strcasestr(p->instr, "kind of") || strcasestr(p->instr, "type of");
    if (hyper) {
        if (p->nrows < 2)
            return snprintf(err, errsz, "a 'kind of' question needs two labelled rows, found %d (fields: %s)",
                            p->nrows, p->fields), -1;
        for (int a = 0; a < p->nsense[0]; a++)
            for (int b = 0; b < p->nsense[1]; b++)
                if (has_ancestor(&L.s[p->sense[0][a]], L.s[p->sense[1][b]].id))
                    return 1;
        return 0;
    }
    const char *cat = instr_category(p->instr);
    if (!cat)
        return snprintf(err, errsz, "the instruction names no WordNet category: %.200s", p->instr), -1;
    if (p->nrows < 1)
        return snprintf(err, errsz, "no labelled row in the input (fields: %s)", p->fields), -1;
    for (int a = 0; a < p->nsense[0]; a++)
        if (!strcmp(L.s[p->sense[0][a]].cat, cat))
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ answers */

typedef struct answer {
    int kind;     /* 'y', 's', 'g' */
    int yes;      /* yes/no */
    int score;    /* 1..10 */
    char text[160];
} answer_t;

static int answer_prompt(const char *text, answer_t *a, char *err, size_t errsz)
{
    prompt_t p;
    read_prompt(text, &p);
    memset(a, 0, sizeof *a);
    a->kind = p.kind;
    if (p.kind == 'y') {
        a->yes = judge_yes(&p, err, errsz);
        return a->yes < 0 ? -1 : 0;
    }
    if (p.kind == 's') {
        const char *cat = instr_category(p.instr);
        if (!cat || p.nrows < 1)
            return snprintf(err, errsz, "cannot score: %s", !cat ? "the instruction names no category"
                                                                  : "no labelled row in the input"), -1;
        a->score = 1;
        for (int k = 0; k < p.nsense[0]; k++)
            if (!strcmp(L.s[p.sense[0][k]].cat, cat))
                a->score = 10;
        return 0;
    }
    if (p.kind == 'a')
        return snprintf(err, errsz, "the fixture does not rank pairs"), -1;
    snprintf(a->text, sizeof a->text, "fixture answer%s%s", p.nrows ? " about " : "",
             p.nrows ? L.s[p.sense[0][0]].word : "");
    return 0;
}

/* The top_logprobs of the first position: the answer, then its alternative. */
static void put_top(ss_buf_t *b, const answer_t *a, int chat)
{
    char t1[16], t2[16];
    double lp1 = -1e-4, lp2 = -9.21;
    if (a->kind == 'y') {
        snprintf(t1, sizeof t1, "%s%s", chat ? "" : " ", a->yes ? "yes" : "no");
        snprintf(t2, sizeof t2, "%s%s", chat ? "" : " ", a->yes ? "no" : "yes");
    } else {
        snprintf(t1, sizeof t1, "%s%d", chat ? "" : " ", a->score);
        snprintf(t2, sizeof t2, "%s%d", chat ? "" : " ", a->score == 10 ? 9 : a->score + 1);
    }
    if (chat)
        ss_buf_printf(b, "[{\"token\":\"%s\",\"logprob\":%g},{\"token\":\"%s\",\"logprob\":%g}]", t1, lp1, t2, lp2);
    else
        ss_buf_printf(b, "{\"%s\":%g,\"%s\":%g}", t1, lp1, t2, lp2);
}

static const char *answer_text(const answer_t *a, char *tmp, size_t n)
{
    if (a->kind == 'y')
        return a->yes ? "yes" : "no";
    if (a->kind == 's')
        return snprintf(tmp, n, "%d", a->score), tmp;
    return a->text;
}

static void count(const answer_t *a)
{
    pthread_mutex_lock(&L.mu);
    L.requests++;
    if (a->kind == 'y')
        *(a->yes ? &L.yes : &L.no) += 1;
    else if (a->kind == 's')
        L.scores++;
    else
        L.texts++;
    pthread_mutex_unlock(&L.mu);
}

static char *error_body(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *error_body(int *status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&L.mu);
    L.errors++;
    pthread_mutex_unlock(&L.mu);
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, "{\"error\":{\"type\":\"invalid_request_error\",\"message\":");
    ss_json_put_str_utf8(&b, msg, strlen(msg));
    ss_buf_puts(&b, "}}");
    *status = 400;
    return ss_buf_take(&b);
}

static char *chat(const ss_json_t *req, int *status)
{
    const ss_json_t *msgs = ss_json_get(req, "messages");
    if (!msgs || msgs->t != SS_JSON_ARRAY || !msgs->u.arr.n)
        return error_body(status, "oracle fixture: messages must be a non-empty array");
    ss_buf_t text = SS_BUF_INIT;
    for (size_t i = 0; i < msgs->u.arr.n; i++) {
        const char *c = ss_json_str(ss_json_get(&msgs->u.arr.items[i], "content"));
        if (c)
            ss_buf_printf(&text, "%s%s", text.len && text.data[text.len - 1] != '\n' ? "\n" : "", c);
    }
    answer_t a;
    char err[1024], tmp[16];
    int rc = answer_prompt(ss_buf_cstr(&text), &a, err, sizeof err);
    ss_buf_free(&text);
    if (rc)
        return error_body(status, "oracle fixture: %s", err);
    count(&a);
    const ss_json_t *lp = ss_json_get(req, "logprobs");
    int want_lp = lp && lp->t == SS_JSON_BOOL && lp->u.b;
    const char *t = answer_text(&a, tmp, sizeof tmp);
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, "{\"id\":\"chatcmpl-fixture\",\"object\":\"chat.completion\",\"created\":0,"
                    "\"model\":\"oracle-fixture\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                    "\"content\":");
    ss_json_put_str_utf8(&b, t, strlen(t));
    ss_buf_puts(&b, "}");
    if (want_lp && a.kind != 'g') {
        ss_buf_puts(&b, ",\"logprobs\":{\"content\":[{\"token\":");
        ss_json_put_str_utf8(&b, t, strlen(t));
        ss_buf_puts(&b, ",\"logprob\":-0.0001,\"top_logprobs\":");
        put_top(&b, &a, 1);
        ss_buf_puts(&b, "}]}");
    }
    ss_buf_puts(&b, ",\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,"
                    "\"total_tokens\":2}}");
    *status = 200;
    return ss_buf_take(&b);
}

static char *legacy(const ss_json_t *req, int *status)
{
    const ss_json_t *pr = ss_json_get(req, "prompt");
    size_t n = pr && pr->t == SS_JSON_ARRAY ? pr->u.arr.n : 1;
    if (!pr || (pr->t != SS_JSON_STRING && pr->t != SS_JSON_ARRAY) || n == 0)
        return error_body(status, "oracle fixture: prompt must be a string or an array of strings");
    const ss_json_t *lp = ss_json_get(req, "logprobs");
    int want_lp = lp && lp->t == SS_JSON_INT && lp->u.i > 0;
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, "{\"id\":\"cmpl-fixture\",\"object\":\"text_completion\",\"created\":0,"
                    "\"model\":\"oracle-fixture\",\"choices\":[");
    for (size_t i = 0; i < n; i++) {
        const char *p = ss_json_str(pr->t == SS_JSON_ARRAY ? &pr->u.arr.items[i] : pr);
        answer_t a;
        char err[1024], tmp[16];
        if (!p || answer_prompt(p, &a, err, sizeof err)) {
            ss_buf_free(&b);
            return error_body(status, "oracle fixture: prompt %zu: %s", i, p ? err : "not a string");
        }
        count(&a);
        char t[200];
        snprintf(t, sizeof t, " %s", answer_text(&a, tmp, sizeof tmp));
        ss_buf_printf(&b, "%s{\"index\":%zu,\"text\":", i ? "," : "", i);
        ss_json_put_str_utf8(&b, t, strlen(t));
        if (want_lp && a.kind != 'g') {
            ss_buf_puts(&b, ",\"logprobs\":{\"tokens\":[");
            ss_json_put_str_utf8(&b, t, strlen(t));
            ss_buf_puts(&b, "],\"top_logprobs\":[");
            put_top(&b, &a, 0);
            ss_buf_puts(&b, "]}");
        }
        ss_buf_puts(&b, ",\"finish_reason\":\"stop\"}");
    }
    ss_buf_printf(&b, "],\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":%zu,\"total_tokens\":%zu}}", n, n,
                  2 * n);
    *status = 200;
    return ss_buf_take(&b);
}

static char *route(const char *method, const char *url, const char *body, size_t len, int *status)
{
    *status = 200;
    if (!strcmp(method, "GET") && !strcmp(url, "/v1/models"))
        return ss_strdup("{\"object\":\"list\",\"data\":[{\"id\":\"oracle-fixture\",\"object\":\"model\","
                         "\"created\":0,\"owned_by\":\"semstream-bench-fixture\"}]}");
    if (!strcmp(method, "GET") && !strcmp(url, "/fixture/stats")) {
        ss_buf_t b = SS_BUF_INIT;
        pthread_mutex_lock(&L.mu);
        ss_buf_printf(&b, "{\"requests\":%lld,\"yes\":%lld,\"no\":%lld,\"scores\":%lld,\"texts\":%lld,\"errors\":%lld}",
                      (long long)L.requests, (long long)L.yes, (long long)L.no, (long long)L.scores,
                      (long long)L.texts, (long long)L.errors);
        pthread_mutex_unlock(&L.mu);
        return ss_buf_take(&b);
    }
    int chat_ep = !strcmp(url, "/v1/chat/completions"), legacy_ep = !strcmp(url, "/v1/completions");
    if (strcmp(method, "POST") || (!chat_ep && !legacy_ep)) {
        *status = 404;
        return ss_strdup("{\"error\":{\"message\":\"oracle fixture: no such endpoint (it answers "
                         "/v1/chat/completions and /v1/completions)\"}}");
    }
    if (L.latency_ms > 0)
        usleep((useconds_t)L.latency_ms * 1000);
    ss_json_doc_t *d = NULL;
    char err[256];
    if (ss_json_parse(body, len, 0, &d, NULL, err, sizeof err))
        return error_body(status, "oracle fixture: bad JSON: %s", err);
    char *out = chat_ep ? chat(ss_json_root(d), status) : legacy(ss_json_root(d), status);
    ss_json_free(d);
    return out;
}

/* ------------------------------------------------------------------ HTTP */

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *up, size_t *upsz, void **con_cls)
{
    (void)cls, (void)version;
    ss_buf_t *b = *con_cls;
    if (!b) {
        *con_cls = calloc(1, sizeof(ss_buf_t));
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*upsz) {
        ss_buf_append(b, up, *upsz);
        *upsz = 0;
        return MHD_YES;
    }
    int status = 200;
    char *text = route(method, url, ss_buf_cstr(b), b->len, &status);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)c, (void)t;
    ss_buf_t *b = *con_cls;
    if (b)
        ss_buf_free(b);
    free(b);
    *con_cls = NULL;
}

static volatile sig_atomic_t stop;
static void on_signal(int s)
{
    (void)s;
    stop = 1;
}

int main(int argc, char **argv)
{
    const char *corpus = NULL;
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--corpus") && i + 1 < argc)
            corpus = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--latency-ms") && i + 1 < argc)
            L.latency_ms = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_quality_oracle --corpus DIR [--port P] [--latency-ms MS]\n"
                            "  a FIXTURE: answers yes/no questions about WordNet's nouns from their labels\n");
            return 2;
        }
    }
    if (!corpus)
        die("--corpus DIR is required (the output of wordnet2json)");
    load(corpus);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                                            NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!d)
        die("cannot listen on 127.0.0.1:%d", port);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("oracle fixture: listening on http://127.0.0.1:%d (%d synsets)\n",
           MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port, L.n);
    fflush(stdout);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
