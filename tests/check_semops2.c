/*
 * check_semops2.c — tests of the semantic operators of issue 15 §2 (operators/
 * sem_extract.c, sem_classify.c, sem_search.c, sem_simjoin.c, sem_dedup.c,
 * sem_group.c) on the real stories260K model through the real dispatcher: random
 * sequences of inserts, updates and deletes whose integrated output must equal the
 * same operator run from scratch on the final data (fresh state and dispatcher), with
 * the number of model requests of every delta asserted; snapshots equal to the
 * integrated output; restarts over the same database and rollbacks of a batch (what
 * the engine does when an answer is pending) leave the same result.
 *
 * Embeddings come from the word-vector embedder (data/wink100.vec, a pure function of
 * the text) when it is installed, else from the model through the dispatcher.
 */
#include <stdarg.h>

#include "semops_harness.h"
#include "llm_internal.h"
#include "ss_embed.h"
#include "ss_json.h"
#include "ss_sem.h"

#include <math.h>
#include <unistd.h>

/* ------------------------------------------------------------ random data */

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static const char *WORDS[] = {"cat", "dog", "sun", "tree", "ball", "happy", "sad", "red", "big",
                              "small", "park", "boat", "bird", "cake", "rain", "star"};

/* A text: three words, unique to (id, version) when uniq, else drawn from a small set (so that
 * rows repeat each other's text: duplicates for SEM_DEDUP, shared projections for the memos). */
static char *mktext(int64_t id, int ver, int uniq)
{
    char b[160];
    if (uniq)
        snprintf(b, sizeof b, "%s %s %s %lld.%d", WORDS[rnd() % 16], WORDS[rnd() % 16], WORDS[rnd() % 16],
                 (long long)id, ver);
    else
        snprintf(b, sizeof b, "the %s %s", WORDS[rnd() % 6], WORDS[6 + rnd() % 4]);
    return strdup(b);
}

#define MAXR 512
typedef struct data {
    int n, uniq;
    int64_t id[MAXR];
    char *txt[MAXR];
    int64_t num[MAXR];
} data_t;

#define DATA_SPEC "id:i:key,txt:t,num:i"

static ss_row_t *data_row(const data_t *d, int i)
{
    return h_row(3, 'i', d->id[i], 't', d->txt[i], 'i', d->num[i]);
}

static void data_free(data_t *d)
{
    for (int i = 0; i < d->n; i++)
        free(d->txt[i]);
    d->n = 0;
}

enum { OP_INSERT, OP_UPD_TEXT, OP_UPD_OTHER, OP_DELETE };

static int data_step(data_t *d, ss_zset_t *z, int64_t *next_id)
{
    int r = (int)(rnd() % 10);
    int kind = d->n < 3 || r < 4 ? OP_INSERT : r < 6 ? OP_UPD_TEXT : r < 8 ? OP_UPD_OTHER : OP_DELETE;
    if (kind == OP_INSERT && d->n == MAXR)
        kind = OP_DELETE;
    if (kind == OP_INSERT) {
        int i = d->n++;
        d->id[i] = (*next_id)++;
        d->txt[i] = mktext(d->id[i], 0, d->uniq);
        d->num[i] = rnd() % 100;
        ss_zset_add(z, data_row(d, i), 1);
        return kind;
    }
    int i = (int)(rnd() % (unsigned)d->n);
    ss_zset_add(z, data_row(d, i), -1);
    if (kind == OP_DELETE) {
        free(d->txt[i]);
        d->n--;
        d->id[i] = d->id[d->n];
        d->txt[i] = d->txt[d->n];
        d->num[i] = d->num[d->n];
        return kind;
    }
    if (kind == OP_UPD_TEXT) {
        free(d->txt[i]);
        d->txt[i] = mktext(d->id[i], (int)(rnd() % 1000) + 1, d->uniq);
    } else {
        d->num[i] += 1000;
    }
    ss_zset_add(z, data_row(d, i), 1);
    return kind;
}

static void data_all(const data_t *d, ss_zset_t *z)
{
    for (int i = 0; i < d->n; i++)
        ss_zset_add(z, data_row(d, i), 1);
}

static void assert_same(ss_zset_t *inc, ss_zset_t *scr)
{
    ss_zset_consolidate(inc);
    ss_zset_consolidate(scr);
    if (!ss_zset_equal(inc, scr)) {
        h_dump("incremental", inc);
        h_dump("from scratch", scr);
    }
    ck_assert(ss_zset_equal(inc, scr));
}

static void assert_snapshot(harness_t *h, ss_op_t *op, ss_zset_t *acc)
{
    ss_zset_t snap;
    ss_zset_init(&snap);
    char err[SS_ERRSZ] = "";
    ck_assert_msg(op->vt->snapshot(op, &h->ctx, &snap, err, sizeof err) == SS_OK, "snapshot: %s", err);
    assert_same(acc, &snap);
    ss_zset_destroy(&snap);
}

/* The embedder: word vectors when installed (deterministic), else the model's pooled state. */
static ss_embedder_t *open_embedder(harness_t *h)
{
    char path[1024], err[SS_ERRSZ] = "";
    snprintf(path, sizeof path, "%s/data/wink100.vec", tu_source_dir());
    ss_embed_opts_t o = {.kind = tu_exists(path) ? "wink" : "model", .vec_path = path, .dispatch = h->disp};
    ss_embedder_t *e = NULL;
    ck_assert_msg(ss_embedder_open(&o, &e, err, sizeof err) == SS_OK, "embedder: %s", err);
    h->ctx.emb = e;
    return e;
}

static ss_plan_node_t *unary(int kind, int id, ss_plan_node_t *src, const char *tmpl, const char *extra_cols)
{
    ss_plan_node_t *n = ss_plan_node_new((ss_plan_kind_t)kind);
    n->id = id;
    n->nin = 1;
    n->in[0] = src;
    n->tmpl = tmpl ? h_tmpl(tmpl, src->schema, NULL) : NULL;
    if (extra_cols) {
        char spec[256];
        snprintf(spec, sizeof spec, "%s,%s", DATA_SPEC, extra_cols);
        n->schema = fx_schema(spec);
    } else {
        n->schema = ss_schema_copy(src->schema);
    }
    return n;
}

/* Runs node from scratch over z (port 0) in a fresh database and dispatcher. */
static void scratch(const ss_plan_node_t *node, ss_zset_t *z, ss_zset_t *out, int64_t *calls, int embed)
{
    harness_t h;
    h_open(&h);
    ss_embedder_t *e = embed ? open_embedder(&h) : NULL;
    ss_op_t *op = h_op(&h, node);
    int64_t c = h_apply(&h, op, 0, z, out);
    if (calls)
        *calls = c;
    ss_op_destroy(op);
    ss_embedder_destroy(e);
    h_close(&h);
}

/* Generic driver: steps random single-row deltas through a unary operator; each delta's requests
 * must satisfy expect(kind, calls); then the result must equal a run from scratch, and the
 * snapshot (if any) the integrated output. Halfway the operator is destroyed and opened again
 * over the same database (a restart), and one delta is applied, rolled back (as when an answer
 * is pending) and applied again. */
typedef int (*expect_fn)(int kind, int64_t calls);

static void unary_equiv(ss_plan_node_t *n, uint64_t seed, int steps, int uniq, int embed, expect_fn expect,
                        void (*check_row)(const ss_row_t *row, int64_t w))
{
    rng_state = seed;
    harness_t h;
    h_open(&h);
    ss_embedder_t *e = embed ? open_embedder(&h) : NULL;
    ss_op_t *op = h_op(&h, n);
    data_t d = {.uniq = uniq};
    int64_t next = 1;
    ss_zset_t acc, z;
    ss_zset_init(&acc);
    ss_zset_init(&z);
    char err[SS_ERRSZ] = "";
    for (int s = 0; s < steps; s++) {
        ss_zset_clear(&z);
        int k = data_step(&d, &z, &next);
        if (s == steps / 2) { /* restart: a new operator over the same state */
            ss_op_destroy(op);
            op = h_op(&h, n);
        }
        if (s == steps / 3) { /* rollback: the batch is applied, abandoned and applied again */
            ss_zset_t junk;
            ss_zset_init(&junk);
            ck_assert_int_eq(sqlite3_exec(h.db, "SAVEPOINT sp", NULL, NULL, NULL), SQLITE_OK);
            ck_assert_msg(op->vt->apply(op, &h.ctx, 0, &z, &junk, err, sizeof err) == SS_OK, "%s", err);
            ck_assert_int_eq(sqlite3_exec(h.db, "ROLLBACK TO sp; RELEASE sp", NULL, NULL, NULL), SQLITE_OK);
            if (op->vt->rollback)
                op->vt->rollback(op);
            ss_zset_destroy(&junk);
        }
        int64_t calls = h_apply(&h, op, 0, &z, &acc);
        if (expect)
            ck_assert_msg(expect(k, calls), "step %d (kind %d): %lld requests", s, k, (long long)calls);
    }
    for (size_t i = 0; check_row && i < acc.n; i++)
        check_row(acc.e[i].row, acc.e[i].w);
    ck_assert_int_le(fx_memo_rows(h.db, n->id), d.n); /* memos bounded by the live rows (memo=prune) */
    ss_zset_t scr;
    ss_zset_init(&scr);
    ss_zset_clear(&z);
    data_all(&d, &z);
    scratch(n, &z, &scr, NULL, embed);
    assert_same(&acc, &scr);
    if (op->vt->snapshot)
        assert_snapshot(&h, op, &acc);
    ss_zset_destroy(&scr);
    ss_zset_destroy(&acc);
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    ss_embedder_destroy(e);
    h_close(&h);
    data_free(&d);
}

static int pointwise_calls(int kind, int64_t calls)
{
    return calls == ((kind == OP_INSERT || kind == OP_UPD_TEXT) ? 1 : 0);
}

/* Texts repeat: a new row may find its answer memoised (0), never more than 1. */
static int pointwise_calls_le(int kind, int64_t calls)
{
    return (kind == OP_INSERT || kind == OP_UPD_TEXT) ? calls <= 1 : calls == 0;
}

static int no_calls(int kind, int64_t calls)
{
    (void)kind;
    return calls == 0;
}

/* ------------------------------------------------------------ SEM_EXTRACT */

static void extract_row(const ss_row_t *row, int64_t w)
{
    ck_assert_int_gt(w, 0);
    ck_assert_int_eq(row->n, 3 + 3);
    ck_assert(row->v[3].t == SS_TEXT || row->v[3].t == SS_NULL);
    ck_assert(row->v[4].t == SS_INT || row->v[4].t == SS_NULL);
    ck_assert(row->v[5].t == SS_INT || row->v[5].t == SS_NULL); /* BOOLEAN is INT 0/1 */
    if (row->v[5].t == SS_INT)
        ck_assert(row->v[5].u.i == 0 || row->v[5].u.i == 1);
}

START_TEST(test_extract_equiv)
{
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    ss_plan_node_t *n = unary(SS_PN_SEM_EXTRACT, 2, src, "Who is in {txt} and how old?", "who:t,age:i,happy:i");
    n->schema->types[4] = SS_COL_INT;
    n->schema->types[5] = SS_COL_BOOL;
    fx_opt(n, "schema", "who TEXT, age INT, happy BOOLEAN");
    fx_opt(n, "output", "columns");
    fx_opt(n, "max_tokens", "64");
    unary_equiv(n, 5, 40, 1, 0, pointwise_calls, extract_row);
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

static void json_row(const ss_row_t *row, int64_t w)
{
    ck_assert_int_gt(w, 0);
    ck_assert_int_eq(row->v[3].t, SS_JSON);
    ss_json_doc_t *d = NULL;
    char err[128];
    ck_assert_int_eq(ss_json_parse(row->v[3].u.str.s, row->v[3].u.str.n, 0, &d, NULL, err, sizeof err), SS_OK);
    const ss_json_t *k = ss_json_get(ss_json_root(d), "kind");
    ck_assert_ptr_nonnull(k);
    ck_assert(k->t == SS_JSON_STRING && (!strcmp(k->u.str.s, "cat") || !strcmp(k->u.str.s, "dog")));
    ck_assert_int_eq(ss_json_get(ss_json_root(d), "tags")->t, SS_JSON_ARRAY);
    ss_json_free(d);
}

START_TEST(test_map_schema_equiv)
{
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    ss_plan_node_t *n = unary(SS_PN_SEM_EXTRACT, 2, src, "Describe {txt}", "info:t");
    n->schema->types[3] = SS_COL_JSON;
    fx_opt(n, "schema", "{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"cat\",\"dog\"]},"
                        "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}");
    fx_opt(n, "output", "json");
    fx_opt(n, "max_tokens", "80");
    unary_equiv(n, 6, 30, 1, 0, pointwise_calls, json_row);
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

/* ------------------------------------------------------------ SEM_CLASSIFY */

static void classify_row(const ss_row_t *row, int64_t w)
{
    ck_assert_int_gt(w, 0);
    ck_assert_int_eq(row->v[3].t, SS_TEXT);
    const char *l = row->v[3].u.str.s;
    ck_assert_msg(!strcmp(l, "happy") || !strcmp(l, "very sad") || !strcmp(l, "about a big red boat"), "%s", l);
}

START_TEST(test_classify_equiv)
{
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    ss_plan_node_t *n = unary(SS_PN_SEM_CLASSIFY, 2, src, "What is {txt} like?", "label:t");
    fx_opt(n, "labels", "[\"happy\",\"very sad\",\"about a big red boat\"]");
    unary_equiv(n, 8, 50, 0, 0, pointwise_calls_le, classify_row);
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

/* One request scores every label, multi-token ones included, and the label chosen is the one the
 * model gives the highest total log-probability: compared with asking the engine each label's
 * log-probability by teacher forcing, one label at a time. */
START_TEST(test_classify_scores)
{
    char buf[1024], err[SS_ERRSZ] = "";
    ss_llm_t *m = NULL;
    ss_llm_opts_t o = {.threads = 1};
    ck_assert_int_eq(ss_llm_open(tu_model_path("stories260K.gguf", buf, sizeof buf), &o, &m, err, sizeof err), SS_OK);
    const char *labels[] = {" happy", " very sad", " about a big red boat", " sun"};
    const char *prompt = "Once upon a time there was a little girl. She was";
    ss_infer_req_t r = {.kind = SS_INFER_CHOOSE, .prompt = prompt, .nchoices = 4, .choices = labels};
    ss_infer_res_t res;
    memset(&res, 0, sizeof res);
    ck_assert_int_eq(ss_llm_run(m, &r, 1, &res, err, sizeof err), SS_OK);
    ck_assert_int_eq(res.nprobs, 4);
    /* reference: log P(label | prompt) = sum over its tokens of log-softmax at each position */
    int vocab = ss_llm_config(m)->vocab_size;
    double lp[4];
    float *logits = malloc((size_t)vocab * sizeof *logits);
    int ptok[512], np = ss_llm_tokenize(m, prompt, 1, ptok, 512);
    for (int c = 0; c < 4; c++) {
        /* the label's tokens as the engine encodes an answer: a continuation of the prompt */
        int *ltok = NULL, nl = 0, lcap = 0;
        ck_assert_int_eq(tok_encode(&m->tok, labels[c], strlen(labels[c]), 1, &ltok, &nl, &lcap), 0);
        ck_assert_int_gt(nl, 0);
        int seq[700];
        memcpy(seq, ptok, (size_t)np * sizeof *seq);
        lp[c] = 0;
        for (int k = 0; k < nl; k++) {
            const int *one = seq;
            int len = np + k;
            ck_assert_int_eq(ss_llm_last_logits(m, 1, &one, &len, logits, err, sizeof err), SS_OK);
            double mx = logits[0], s = 0;
            for (int i = 1; i < vocab; i++)
                mx = logits[i] > mx ? logits[i] : mx;
            for (int i = 0; i < vocab; i++)
                s += exp(logits[i] - mx);
            lp[c] += logits[ltok[k]] - mx - log(s);
            seq[np + k] = ltok[k];
        }
        if (c == 2)
            ck_assert_int_gt(nl, 2); /* a label of several tokens */
        free(ltok);
    }
    int best = 0, rbest = 0;
    for (int c = 1; c < 4; c++) {
        best = lp[c] > lp[best] ? c : best;
        rbest = res.probs[c] > res.probs[rbest] ? c : rbest;
    }
    ck_assert_int_eq(best, rbest);
    double z = 0;
    for (int c = 0; c < 4; c++)
        z += exp(lp[c] - lp[best]);
    for (int c = 0; c < 4; c++) /* the engine's probabilities are the normalised label likelihoods */
        ck_assert_msg(fabs(res.probs[c] - exp(lp[c] - lp[best]) / z) < 2e-3, "label %d: %g vs %g", c, res.probs[c],
                      exp(lp[c] - lp[best]) / z);
    free(logits);
    ss_infer_res_clear(&res);
    ss_llm_close(m);
}
END_TEST

/* ------------------------------------------------------------ SEM_SEARCH */

START_TEST(test_search_equiv)
{
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    ss_plan_node_t *n = unary(SS_PN_SEM_SEARCH, 2, src, "{txt}", "score:t");
    n->schema->types[3] = SS_COL_REAL;
    n->limit = 4;
    fx_opt(n, "query", "a happy dog in the park");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/wink100.vec", tu_source_dir());
    unary_equiv(n, 9, 80, 1, 1, tu_exists(path) ? no_calls : NULL, NULL);
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

/* A row deleted from the top and a new row entering it in the same batch: the new row is stored
 * under the deleted row's id (SQLite reuses the largest rowid). The top must still retract the
 * deleted row and emit the new one (it once compared its old and new top by id only, so the view
 * kept the deleted row: issue 11's intermittent check_it_semops failure, which needed the batches
 * of the engine to fall this way). */
START_TEST(test_search_reused_id)
{
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    ss_plan_node_t *n = unary(SS_PN_SEM_SEARCH, 2, src, "{txt}", "score:t");
    n->schema->types[3] = SS_COL_REAL;
    n->limit = 2;
    fx_opt(n, "query", "a happy dog in the park");
    harness_t h;
    h_open(&h);
    ss_embedder_t *e = open_embedder(&h);
    ss_op_t *op = h_op(&h, n);
    ss_zset_t acc, z;
    ss_zset_init(&acc);
    ss_zset_init(&z);
    ss_zset_add(&z, h_row(3, 'i', (int64_t)1, 't', "cat sun", 'i', (int64_t)0), 1);
    ss_zset_add(&z, h_row(3, 'i', (int64_t)2, 't', "tree ball", 'i', (int64_t)0), 1);
    h_apply(&h, op, 0, &z, &acc);
    ss_zset_clear(&z);
    ss_zset_add(&z, h_row(3, 'i', (int64_t)3, 't', "happy dog park", 'i', (int64_t)0), 1); /* the largest id */
    h_apply(&h, op, 0, &z, &acc);
    ss_zset_clear(&z);
    ss_zset_add(&z, h_row(3, 'i', (int64_t)3, 't', "happy dog park", 'i', (int64_t)0), -1);
    ss_zset_add(&z, h_row(3, 'i', (int64_t)4, 't', "a happy dog in a park", 'i', (int64_t)0), 1);
    h_apply(&h, op, 0, &z, &acc);
    ss_zset_t all, scr;
    ss_zset_init(&all);
    ss_zset_init(&scr);
    ss_zset_add(&all, h_row(3, 'i', (int64_t)1, 't', "cat sun", 'i', (int64_t)0), 1);
    ss_zset_add(&all, h_row(3, 'i', (int64_t)2, 't', "tree ball", 'i', (int64_t)0), 1);
    ss_zset_add(&all, h_row(3, 'i', (int64_t)4, 't', "a happy dog in a park", 'i', (int64_t)0), 1);
    scratch(n, &all, &scr, NULL, 1);
    int has4 = 0;
    for (size_t i = 0; i < acc.n; i++) {
        ck_assert_msg(acc.e[i].row->v[0].u.i != 3, "the deleted row 3 is still in the top");
        has4 |= acc.e[i].row->v[0].u.i == 4 && acc.e[i].w == 1;
    }
    ck_assert_msg(has4, "the new row 4 did not enter the top");
    assert_same(&acc, &scr);
    assert_snapshot(&h, op, &acc);
    ss_zset_destroy(&acc);
    ss_zset_destroy(&z);
    ss_zset_destroy(&all);
    ss_zset_destroy(&scr);
    ss_op_destroy(op);
    ss_embedder_destroy(e);
    h_close(&h);
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

/* ------------------------------------------------------------ SEM_SIM_JOIN */

static void simjoin_case(uint64_t seed, int k, int steps, int uniq)
{
    rng_state = seed;
    ss_plan_node_t *a = h_source(1, DATA_SPEC), *b = h_source(2, DATA_SPEC);
    ss_plan_node_t *n = ss_plan_node_new(SS_PN_SEM_SIM_JOIN);
    n->id = 5;
    n->nin = 2;
    n->in[0] = a;
    n->in[1] = b;
    n->limit = k;
    n->tmpl = h_tmpl("{txt} is like {b.txt}", a->schema, b->schema);
    n->schema = h_concat(a->schema, b->schema, "similarity");
    harness_t h;
    h_open(&h);
    ss_embedder_t *e = open_embedder(&h);
    ss_op_t *op = h_op(&h, n);
    data_t d[2] = {{.uniq = uniq}, {.uniq = uniq}};
    int64_t next[2] = {1, 1000};
    ss_zset_t acc, z;
    ss_zset_init(&acc);
    ss_zset_init(&z);
    for (int s = 0; s < steps; s++) {
        int side = (int)(rnd() % 2);
        ss_zset_clear(&z);
        data_step(&d[side], &z, &next[side]);
        if (s % 10 == 3) /* a second change in the same batch */
            data_step(&d[side], &z, &next[side]);
        if (s == steps / 2) {
            ss_op_destroy(op);
            op = h_op(&h, n);
        }
        int64_t calls = h_apply(&h, op, side, &z, &acc);
        if (!strcmp(e->kind, "wink"))
            ck_assert_int_eq(calls, 0); /* no model call at all */
        /* every left row has min(k, live right rows) pairs */
        int64_t pairs = 0;
        for (size_t i = 0; i < acc.n; i++)
            pairs += acc.e[i].w;
        ck_assert_int_eq(pairs, (int64_t)d[0].n * SS_MIN(k, d[1].n));
    }
    /* from scratch, both orders of the sides */
    for (int order = 0; order < 2; order++) {
        harness_t h2;
        h_open(&h2);
        ss_embedder_t *e2 = open_embedder(&h2);
        ss_op_t *op2 = h_op(&h2, n);
        ss_zset_t scr, z0, z1;
        ss_zset_init(&scr);
        ss_zset_init(&z0);
        ss_zset_init(&z1);
        data_all(&d[0], &z0);
        data_all(&d[1], &z1);
        h_apply(&h2, op2, order, order ? &z1 : &z0, &scr);
        h_apply(&h2, op2, 1 - order, order ? &z0 : &z1, &scr);
        assert_same(&acc, &scr);
        ss_op_destroy(op2);
        ss_embedder_destroy(e2);
        h_close(&h2);
        ss_zset_destroy(&scr);
        ss_zset_destroy(&z0);
        ss_zset_destroy(&z1);
    }
    assert_snapshot(&h, op, &acc);
    ss_zset_destroy(&acc);
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    ss_embedder_destroy(e);
    h_close(&h);
    data_free(&d[0]);
    data_free(&d[1]);
    ss_plan_node_free(n);
    ss_plan_node_free(a);
    ss_plan_node_free(b);
}

START_TEST(test_simjoin_equiv) { simjoin_case(21, 3, 80, 1); }
END_TEST

START_TEST(test_simjoin_ties) { simjoin_case(23, 2, 60, 0); } /* repeated texts: equal scores */
END_TEST


/* ------------------------------------------------------------ SEM_DEDUP */

#define DEDUP_T 0.8

/* The word-vector embedding of a text (normalised), malloc'd. */
static float *embed_text(ss_embedder_t *e, const char *t)
{
    float *v = malloc(sizeof(float) * (size_t)e->dim);
    char err[SS_ERRSZ] = "";
    const char *texts[1] = {t};
    ck_assert_msg(ss_embedder_embed(e, texts, 1, v, err, sizeof err) == SS_OK, "embed: %s", err);
    return v;
}

/* The distinct texts of d. */
static int distinct_texts(const data_t *d, const char **out)
{
    int n = 0;
    for (int i = 0; i < d->n; i++) {
        int seen = 0;
        for (int j = 0; j < n && !seen; j++)
            seen = !strcmp(out[j], d->txt[i]);
        if (!seen)
            out[n++] = d->txt[i];
    }
    return n;
}

/* Model requests a batch must make: one per candidate pair (cosine >= threshold) between a text
 * that became live in it and any text live after it, each pair once (no memo survives a text's
 * last row with memo = 'prune', and the result cache is off). */
static int64_t dedup_expected(ss_embedder_t *e, const data_t *before, const data_t *after)
{
    const char *tb[MAXR], *ta[MAXR];
    int nb = distinct_texts(before, tb), na = distinct_texts(after, ta);
    int64_t n = 0;
    for (int i = 0; i < na; i++) {
        int fresh_i = 1;
        for (int j = 0; j < nb && fresh_i; j++)
            fresh_i = strcmp(ta[i], tb[j]) != 0;
        float *vi = embed_text(e, ta[i]);
        for (int j = i + 1; j < na; j++) {
            int fresh_j = 1;
            for (int k = 0; k < nb && fresh_j; k++)
                fresh_j = strcmp(ta[j], tb[k]) != 0;
            if (!fresh_i && !fresh_j)
                continue;
            float *vj = embed_text(e, ta[j]);
            n += ss_sem_cos(vi, vj, e->dim) >= DEDUP_T;
            free(vj);
        }
        free(vi);
    }
    return n;
}

static void data_copy(data_t *dst, const data_t *src)
{
    *dst = *src;
    for (int i = 0; i < src->n; i++)
        dst->txt[i] = strdup(src->txt[i]);
}

/* Independent reference of the clustering: union-find in the test over the pairs of live texts
 * that score >= threshold and that the model answered yes (read from the operator's memo, which
 * must hold every such pair), the entity being the smallest id of the cluster. */
static void dedup_reference(harness_t *h, int node, ss_embedder_t *e, const data_t *d, const int *cols, int ncols,
                            ss_zset_t *acc)
{
    const char *t[MAXR];
    int n = distinct_texts(d, t), up[MAXR];
    for (int i = 0; i < n; i++)
        up[i] = i;
    char err[SS_ERRSZ] = "";
    ss_sem_kv_t kv;
    ck_assert_int_eq(ss_sem_kv_open(&kv, h->db, node, "pair", err, sizeof err), SS_OK);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            float *a = embed_text(e, t[i]), *b = embed_text(e, t[j]);
            double c = ss_sem_cos(a, b, e->dim);
            free(a);
            free(b);
            if (c < DEDUP_T)
                continue;
            ss_row_t *ra = h_row(3, 'i', (int64_t)0, 't', t[i], 'i', (int64_t)0);
            ss_row_t *rb = h_row(3, 'i', (int64_t)0, 't', t[j], 'i', (int64_t)0);
            ss_buf_t pa = SS_BUF_INIT, pb = SS_BUF_INIT, key = SS_BUF_INIT, v = SS_BUF_INIT;
            ss_sem_proj(ra, cols, ncols, &pa);
            ss_sem_proj(rb, cols, ncols, &pb);
            size_t m = SS_MIN(pa.len, pb.len);
            int cmp = memcmp(pa.data, pb.data, m);
            int swap = (cmp ? cmp : (pa.len > pb.len) - (pa.len < pb.len)) > 0;
            ss_buf_t *x = swap ? &pb : &pa, *y = swap ? &pa : &pb;
            uint32_t lx = (uint32_t)x->len;
            ss_buf_append(&key, &lx, sizeof lx);
            ss_buf_append(&key, x->data, x->len);
            ss_buf_append(&key, y->data, y->len);
            int found = 0;
            ck_assert_int_eq(ss_sem_kv_get(&kv, key.data, key.len, &v, &found, err, sizeof err), SS_OK);
            ck_assert_msg(found, "pair '%s' / '%s' (cosine %.3f) is not in the memo", t[i], t[j], c);
            if (v.data[0] == '1') {
                int ri = i, rj = j;
                while (up[ri] != ri)
                    ri = up[ri];
                while (up[rj] != rj)
                    rj = up[rj];
                up[ri > rj ? ri : rj] = ri < rj ? ri : rj;
            }
            ss_buf_free(&pa);
            ss_buf_free(&pb);
            ss_buf_free(&key);
            ss_buf_free(&v);
            ss_row_free(ra);
            ss_row_free(rb);
        }
    ss_sem_kv_close(&kv);
    int64_t minid[MAXR];
    for (int i = 0; i < n; i++)
        minid[i] = INT64_MAX;
    int root[MAXR];
    for (int r = 0; r < d->n; r++) {
        int i = 0;
        while (strcmp(t[i], d->txt[r]))
            i++;
        while (up[i] != i)
            i = up[i];
        root[r] = i;
        minid[i] = SS_MIN(minid[i], d->id[r]);
    }
    ss_zset_t ref;
    ss_zset_init(&ref);
    for (int r = 0; r < d->n; r++) {
        char lab[32];
        snprintf(lab, sizeof lab, "%lld", (long long)minid[root[r]]);
        ss_zset_add(&ref, h_row(4, 'i', d->id[r], 't', d->txt[r], 'i', d->num[r], 't', lab), 1);
    }
    assert_same(acc, &ref);
    ss_zset_destroy(&ref);
}

static ss_plan_node_t *dedup_node(ss_plan_node_t *src)
{
    ss_plan_node_t *n = unary(SS_PN_SEM_DEDUP, 7, src, "Same thing: {txt}", "entity:t");
    char t[32];
    snprintf(t, sizeof t, "%g", DEDUP_T);
    fx_opt(n, "threshold", t);
    return n;
}

START_TEST(test_dedup_equiv)
{
    rng_state = 31;
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    ss_plan_node_t *n = dedup_node(src);
    int cols[SS_SEM_MAXCOLS], ncols = ss_sem_tmpl_cols(n, 0, cols);
    harness_t h;
    h_open(&h);
    ss_embedder_t *e = open_embedder(&h);
    ck_assert_str_eq(e->kind, "wink");
    ss_op_t *op = h_op(&h, n);
    data_t d = {.uniq = 0}, before;
    int64_t next = 1, total = 0;
    ss_zset_t acc, z;
    ss_zset_init(&acc);
    ss_zset_init(&z);
    char err[SS_ERRSZ] = "";
    const int steps = 70;
    for (int s = 0; s < steps; s++) {
        ss_zset_clear(&z);
        data_copy(&before, &d);
        int k = data_step(&d, &z, &next);
        if (s % 9 == 4) /* two changes in one batch */
            data_step(&d, &z, &next);
        if (s == steps / 2) { /* restart */
            ss_op_destroy(op);
            op = h_op(&h, n);
        }
        if (s == steps / 3) { /* rollback */
            ss_zset_t junk;
            ss_zset_init(&junk);
            ck_assert_int_eq(sqlite3_exec(h.db, "SAVEPOINT sp", NULL, NULL, NULL), SQLITE_OK);
            ck_assert_msg(op->vt->apply(op, &h.ctx, 0, &z, &junk, err, sizeof err) == SS_OK, "%s", err);
            ck_assert_int_eq(sqlite3_exec(h.db, "ROLLBACK TO sp; RELEASE sp", NULL, NULL, NULL), SQLITE_OK);
            op->vt->rollback(op);
            ss_zset_destroy(&junk);
        }
        int64_t want = dedup_expected(e, &before, &d);
        int64_t calls = h_apply(&h, op, 0, &z, &acc);
        ck_assert_msg(calls == want, "step %d (kind %d): %lld requests, expected %lld", s, k, (long long)calls,
                      (long long)want);
        if (k == OP_DELETE && s % 9 != 4)
            ck_assert_int_eq(calls, 0);
        total += calls;
        data_free(&before);
        if (s % 10 == 9)
            dedup_reference(&h, n->id, e, &d, cols, ncols, &acc);
    }
    ck_assert_int_gt(total, 10); /* the blocking lets pairs through: the model decided */
    dedup_reference(&h, n->id, e, &d, cols, ncols, &acc);
    ss_zset_t scr;
    ss_zset_init(&scr);
    ss_zset_clear(&z);
    data_all(&d, &z);
    scratch(n, &z, &scr, NULL, 1);
    assert_same(&acc, &scr);
    assert_snapshot(&h, op, &acc);
    ss_zset_destroy(&scr);
    ss_zset_destroy(&acc);
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    ss_embedder_destroy(e);
    h_close(&h);
    data_free(&d);
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

/* The memo key of texts a and b (the operator's layout: the smaller projection first). */
static void dedup_put(harness_t *h, int node, const int *cols, int ncols, const char *a, const char *b, int yes)
{
    ss_row_t *ra = h_row(3, 'i', (int64_t)0, 't', a, 'i', (int64_t)0), *rb = h_row(3, 'i', (int64_t)0, 't', b, 'i', (int64_t)0);
    ss_buf_t pa = SS_BUF_INIT, pb = SS_BUF_INIT, key = SS_BUF_INIT;
    ss_sem_proj(ra, cols, ncols, &pa);
    ss_sem_proj(rb, cols, ncols, &pb);
    size_t m = SS_MIN(pa.len, pb.len);
    int cmp = memcmp(pa.data, pb.data, m);
    int swap = (cmp ? cmp : (pa.len > pb.len) - (pa.len < pb.len)) > 0;
    ss_buf_t *x = swap ? &pb : &pa, *y = swap ? &pa : &pb;
    uint32_t lx = (uint32_t)x->len;
    ss_buf_append(&key, &lx, sizeof lx);
    ss_buf_append(&key, x->data, x->len);
    ss_buf_append(&key, y->data, y->len);
    char err[SS_ERRSZ] = "";
    ss_sem_kv_t kv;
    ck_assert_int_eq(ss_sem_kv_open(&kv, h->db, node, "pair", err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_sem_kv_put(&kv, key.data, key.len, yes ? "1" : "0", 1, err, sizeof err), SS_OK);
    ss_sem_kv_close(&kv);
    ss_buf_free(&pa);
    ss_buf_free(&pb);
    ss_buf_free(&key);
    ss_row_free(ra);
    ss_row_free(rb);
}

/* The entity of the row with id in the integrated output (NULL if absent). */
static const char *entity_of(const ss_zset_t *acc, int64_t id)
{
    for (size_t i = 0; i < acc->n; i++)
        if (acc->e[i].w > 0 && acc->e[i].row->v[0].u.i == id)
            return acc->e[i].row->v[3].u.str.s;
    return NULL;
}

/* A chain a - b - c (a and c not duplicates): one cluster; deleting b splits it without a model
 * call, from the stored decisions; b coming back joins it again; a smaller key renames it. The
 * decisions are stored ahead (memo = 'keep'), so the model is never asked. */
START_TEST(test_dedup_split)
{
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    ss_plan_node_t *n = unary(SS_PN_SEM_DEDUP, 7, src, "Same thing: {txt}", "entity:t");
    fx_opt(n, "threshold", "-1"); /* every pair is a candidate */
    fx_opt(n, "memo", "keep");
    int cols[SS_SEM_MAXCOLS], ncols = ss_sem_tmpl_cols(n, 0, cols);
    harness_t h;
    h_open(&h);
    ss_embedder_t *e = open_embedder(&h);
    ss_op_t *op = h_op(&h, n);
    const char *A = "the red boat", *B = "the big red boat", *C = "the big boat";
    dedup_put(&h, n->id, cols, ncols, A, B, 1);
    dedup_put(&h, n->id, cols, ncols, B, C, 1);
    dedup_put(&h, n->id, cols, ncols, A, C, 0);
    ss_zset_t acc, z;
    ss_zset_init(&acc);
    ss_zset_init(&z);
    ss_zset_add(&z, h_row(3, 'i', (int64_t)5, 't', A, 'i', (int64_t)0), 1);
    ss_zset_add(&z, h_row(3, 'i', (int64_t)6, 't', B, 'i', (int64_t)0), 1);
    ss_zset_add(&z, h_row(3, 'i', (int64_t)7, 't', C, 'i', (int64_t)0), 1);
    ss_zset_add(&z, h_row(3, 'i', (int64_t)8, 't', C, 'i', (int64_t)0), 1); /* same text: same item */
    ck_assert_int_eq(h_apply(&h, op, 0, &z, &acc), 0);
    for (int64_t id = 5; id <= 8; id++)
        ck_assert_str_eq(entity_of(&acc, id), "5");
    ss_zset_clear(&z); /* delete b: a | c, 8 */
    ss_zset_add(&z, h_row(3, 'i', (int64_t)6, 't', B, 'i', (int64_t)0), -1);
    ss_zset_t out;
    ss_zset_init(&out);
    ck_assert_int_eq(h_apply(&h, op, 0, &z, &out), 0);
    ck_assert_int_eq(out.n, 5); /* -b, and c's two rows move: -old +new each */
    ss_zset_extend(&acc, &out, 1);
    ss_zset_consolidate(&acc);
    ck_assert_str_eq(entity_of(&acc, 5), "5");
    ck_assert_str_eq(entity_of(&acc, 7), "7");
    ck_assert_str_eq(entity_of(&acc, 8), "7");
    ck_assert_ptr_null(entity_of(&acc, 6));
    ss_zset_clear(&z); /* b again, with a smaller key: everything joins it */
    ss_zset_add(&z, h_row(3, 'i', (int64_t)2, 't', B, 'i', (int64_t)0), 1);
    ck_assert_int_eq(h_apply(&h, op, 0, &z, &acc), 0);
    for (int64_t id = 5; id <= 8; id++)
        if (id != 6)
            ck_assert_str_eq(entity_of(&acc, id), "2");
    ck_assert_str_eq(entity_of(&acc, 2), "2");
    ss_zset_clear(&z); /* deleting one of c's two rows changes nothing else */
    ss_zset_add(&z, h_row(3, 'i', (int64_t)8, 't', C, 'i', (int64_t)0), -1);
    ss_zset_clear(&out);
    ck_assert_int_eq(h_apply(&h, op, 0, &z, &out), 0);
    ck_assert_int_eq(out.n, 1);
    ss_zset_extend(&acc, &out, 1);
    ss_zset_consolidate(&acc);
    assert_snapshot(&h, op, &acc);
    ss_zset_destroy(&out);
    ss_zset_destroy(&acc);
    ss_zset_destroy(&z);
    ss_op_destroy(op);
    ss_embedder_destroy(e);
    h_close(&h);
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

/* ------------------------------------------------------------ SEM_GROUP / SEM_CLUSTER */

static int group_k;
static char *group_labels[64];
static int group_nlabels;

static void group_row(const ss_row_t *row, int64_t w)
{
    ck_assert_int_gt(w, 0);
    ck_assert_int_eq(row->v[3].t, SS_TEXT);
    int seen = 0;
    for (int i = 0; i < group_nlabels && !seen; i++)
        seen = !strcmp(group_labels[i], row->v[3].u.str.s);
    if (!seen) {
        ck_assert_int_lt(group_nlabels, 64);
        group_labels[group_nlabels++] = strdup(row->v[3].u.str.s);
    }
    ck_assert_int_le(group_nlabels, group_k); /* at most k groups */
}

static void group_labels_free(void)
{
    for (int i = 0; i < group_nlabels; i++)
        free(group_labels[i]);
    group_nlabels = 0;
}

/* Names: a delete never asks the model here (spares are named ahead); a batch that adds items
 * names at most the new prototypes and spares. */
static int64_t group_total;
static int group_calls(int kind, int64_t calls)
{
    group_total += calls;
    return kind == OP_DELETE ? calls == 0 : calls <= 2 * group_k;
}

static ss_plan_node_t *group_node(ss_plan_node_t *src, int cluster, int k)
{
    ss_plan_node_t *n = unary(SS_PN_SEM_GROUP, 8, src, "Topic of {txt}", "grp:t");
    n->limit = k;
    n->sem = cluster ? SS_SEM_CLUSTER : SS_SEM_GROUP;
    return n;
}

START_TEST(test_group_equiv)
{
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    group_k = 3;
    ss_plan_node_t *n = group_node(src, 0, group_k);
    group_total = 0;
    unary_equiv(n, 41, 70, 1, 1, group_calls, group_row);
    ck_assert_int_ge(group_total, 2 * group_k); /* the model named the prototypes (and spares) */
    ck_assert_int_le(group_total, 35); /* far fewer than one name per insert */
    group_labels_free();
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

START_TEST(test_cluster_equiv)
{
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    group_k = 4;
    ss_plan_node_t *n = group_node(src, 1, group_k);
    fx_opt(n, "diversity", "0.9");
    unary_equiv(n, 43, 80, 0, 1, no_calls, group_row); /* repeated texts: items shared by rows */
    group_labels_free();
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

/* Stability: after a load, an insert that does not change the prototypes emits exactly its own
 * row, and a delete of a non-prototype exactly its own retraction; an update of a column outside
 * the template moves nothing (-old +new of that row). */
START_TEST(test_group_stable)
{
    rng_state = 47;
    ss_plan_node_t *src = h_source(1, DATA_SPEC);
    ss_plan_node_t *n = group_node(src, 1, 4);
    harness_t h;
    h_open(&h);
    ss_embedder_t *e = open_embedder(&h);
    ss_op_t *op = h_op(&h, n);
    data_t d = {.uniq = 1};
    int64_t next = 1;
    ss_zset_t z, out;
    ss_zset_init(&z);
    ss_zset_init(&out);
    for (int i = 0; i < 60; i++) {
        d.id[d.n] = next++;
        d.txt[d.n] = mktext(d.id[d.n], 0, 1);
        d.num[d.n] = 0;
        ss_zset_add(&z, data_row(&d, d.n++), 1);
    }
    h_apply(&h, op, 0, &z, NULL);
    int quiet = 0;
    for (int s = 0; s < 40; s++) {
        char before[512] = "", after[512] = "";
        sqlite3_stmt *st = NULL;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                ss_zset_clear(&z);
                ss_zset_clear(&out);
                data_step(&d, &z, &next);
                ss_zset_consolidate(&z);
                char err[SS_ERRSZ] = "";
                ck_assert_int_eq(op->vt->apply(op, &h.ctx, 0, &z, &out, err, sizeof err), SS_OK);
                ss_zset_consolidate(&out);
            }
            char *buf = pass ? after : before;
            ck_assert_int_eq(sqlite3_prepare_v2(h.db, "SELECT group_concat(pid) FROM (SELECT pid FROM st_8_proto "
                                                      "ORDER BY pid)", -1, &st, NULL), SQLITE_OK);
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                snprintf(buf, 512, "%s", sqlite3_column_text(st, 0));
            sqlite3_finalize(st);
        }
        if (!strcmp(before, after)) { /* prototypes unchanged: only the changed rows move */
            ck_assert_int_le(out.n, z.n);
            quiet++;
        }
    }
    ck_assert_int_gt(quiet, 25);
    ss_zset_destroy(&z);
    ss_zset_destroy(&out);
    ss_op_destroy(op);
    ss_embedder_destroy(e);
    h_close(&h);
    data_free(&d);
    ss_plan_node_free(n);
    ss_plan_node_free(src);
}
END_TEST

Suite *check_semops2_suite(void)
{
    Suite *s = suite_create("semops2");
    TCase *tc = tcase_create("semops2");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_extract_equiv);
    tcase_add_test(tc, test_map_schema_equiv);
    tcase_add_test(tc, test_classify_equiv);
    tcase_add_test(tc, test_classify_scores);
    tcase_add_test(tc, test_search_equiv);
    tcase_add_test(tc, test_search_reused_id);
    tcase_add_test(tc, test_simjoin_equiv);
    tcase_add_test(tc, test_simjoin_ties);
    suite_add_tcase(s, tc);
    TCase *dd = tcase_create("dedup"); /* SS_TEST_FILTER=dedup runs these alone */
    tcase_set_timeout(dd, 600);
    tcase_add_test(dd, test_dedup_split);
    tcase_add_test(dd, test_dedup_equiv);
    suite_add_tcase(s, dd);
    TCase *gr = tcase_create("group");
    tcase_set_timeout(gr, 600);
    tcase_add_test(gr, test_group_stable);
    tcase_add_test(gr, test_cluster_equiv);
    tcase_add_test(gr, test_group_equiv);
    suite_add_tcase(s, gr);
    return s;
}
