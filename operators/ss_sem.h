/*
 * ss_sem.h — what the semantic operators (sem_filter.c, sem_map.c, sem_join.c,
 * sem_topk.c, sem_agg.c, llm_generate.c) share, implemented in sem_common.c:
 *
 *  - prompt rendering: a fixed task line, the view's template (trusted text,
 *    references shown as {name}), then the row's referenced fields, each inside
 *    <name>...</name> with '<', '>', '&' and '#' escaped, so no row text can close
 *    its field, open a new section or end the instruction early;
 *  - request builders (CHOOSE " yes"/" no", GENERATE greedy to a newline, SCORE)
 *    and one call into the dispatcher per delta batch, accounted to the operator;
 *  - memo tables: SQLite key/value tables st_<node id>_<name>(k, v, refs) keyed by
 *    the canonical encoding of what a decision depends on (the projection of the
 *    template's columns), with a reference count so deletes retract exactly;
 *  - bounded memos (sem_prune.c): option memo = 'prune' | 'keep', and the member index
 *    of pair memo keys that lets SEM_RANK / SEM_JOIN drop a projection's pairs;
 *  - embeddings (through the dispatcher's EMBED requests) and a small exact
 *    in-memory vector index for candidate pruning and retrieval;
 *  - items (sem_items.c): the distinct projections of the rows of SEM_DEDUP and SEM_GROUP,
 *    each embedded once, with a row store and the emission of rows whose label changed.
 *
 * Nothing here owns operator state beyond what each object's comment says.
 */
#ifndef SS_SEM_H
#define SS_SEM_H

#include "ss_op.h"

#include <sqlite3.h>

#define SS_SEM_MAXCOLS 64

/* ---- prompt rendering ---- */

/* Appends text with the field delimiters escaped ('<' '>' '&' '#' become entities). */
int ss_sem_escape(ss_buf_t *out, const char *s, size_t n);
/* Appends "### Task\n<task>\n### Instruction\n<template with {name} references>\n".
 * This part is shared by every request of the operator (the prefix). */
int ss_sem_head(ss_buf_t *out, const char *task, const ss_template_t *t);
/* Appends "<name>value</name>\n" for each distinct column of `side` that t references,
 * in template order; `label` (may be NULL) prefixes each tag name, e.g. "A." */
int ss_sem_fields(ss_buf_t *out, const ss_template_t *t, int side, const ss_row_t *row,
                  const char *label);
/* Appends "<name>value</name>\n" for every column of row (names from schema, "cN" if absent). */
int ss_sem_row_fields(ss_buf_t *out, const ss_schema_t *s, const ss_row_t *row);
/* Appends one delimited item "<tag>escaped text</tag>\n". */
int ss_sem_item(ss_buf_t *out, const char *tag, const char *text, size_t n);
/* Full prompt for a one-row (or one-pair: rows[1]) decision:
 * head + "### Input\n" + fields + "### Answer" + answer_hint + ":". prefix_len gets the
 * length of the head. rows[1] may be NULL. */
int ss_sem_prompt(ss_buf_t *out, const char *task, const ss_template_t *t, const ss_row_t *r0,
                  const ss_row_t *r1, const char *answer_hint, size_t *prefix_len);

/* ---- requests ----
 * The builders mark the head (prefix_len bytes: task and instruction) as the system message
 * (ss_infer_req_t.system_len): a model with a chat template gets the head as its system turn
 * and the input as the user's turn; a base model gets the prompt whole, as before. */
extern const char *const ss_sem_yesno[2]; /* " yes", " no" */
extern const char *const ss_sem_ab[2];    /* " A", " B" */
void ss_sem_req_choose(ss_infer_req_t *r, const char *prompt, size_t prefix_len,
                       const char *const *choices);
void ss_sem_req_generate(ss_infer_req_t *r, const char *prompt, size_t prefix_len, int max_tokens);
/* Applies the node's temperature option to a GENERATE request (0 = greedy, the default);
 * the seed is a hash of the prompt, so a sampled answer is still reproducible. */
void ss_sem_req_sampling(ss_infer_req_t *r, const ss_plan_node_t *n, const char *prompt, size_t len);
void ss_sem_req_score(ss_infer_req_t *r, const char *prompt, size_t prefix_len);
/* 1 when the first choice is strictly more likely than the second. */
int ss_sem_first(const ss_infer_res_t *r);
/* A yes/no decision: with yes_prob < 0, P(yes) > P(no); else P(yes) >= yes_prob (a calibrated
 * cut-off, node option yes_prob). */
int ss_sem_yes(const ss_infer_res_t *r, double yes_prob);
/* The node's yes_prob option, -1 when unset. */
double ss_sem_yes_prob(const ss_plan_node_t *n);
/* Generated text with surrounding white space removed, as a new string (malloc'd). */
char *ss_sem_gen_text(const ss_infer_res_t *r);
/* Sends reqs[0..n) to the dispatcher in one call, accounted to op->stats.infer.
 * res is zeroed here; the caller frees with ss_sem_res_free. n == 0 is a no-op. */
int ss_sem_run(ss_op_t *op, ss_op_ctx_t *ctx, const ss_infer_req_t *reqs, int n, ss_infer_res_t *res,
               char *err, size_t errsz);
void ss_sem_res_free(ss_infer_res_t *res, int n); /* clears each, frees the array */

/* Max-tokens option for generated text (option max_tokens), default dflt. */
int ss_sem_max_tokens(const ss_plan_node_t *n, int dflt);

/* ---- keys ---- */
/* Canonical encoding of the projection of row on cols[0..n) (n == 0: the whole row). */
int ss_sem_proj(const ss_row_t *row, const int *cols, int n, ss_buf_t *out);
/* Columns of `side` the template references; returns count. */
int ss_sem_tmpl_cols(const ss_plan_node_t *n, int side, int *cols);

/* ---- a set of byte strings (dedup of a batch's keys): open addressing over 64-bit hashes ---- */
typedef struct ss_sem_set {
    size_t cap;          /* power of two */
    int *idx;            /* owned; -1 = empty */
    uint64_t *h;         /* owned */
} ss_sem_set_t;

int ss_sem_set_init(ss_sem_set_t *s, size_t n); /* room for n keys */
void ss_sem_set_free(ss_sem_set_t *s);
/* Looks key k up among the keys added so far (keys[i] is the key of index i); returns the
 * index holding an equal key, or adds idx and returns -1. */
int ss_sem_set_add(ss_sem_set_t *s, const ss_buf_t *const *keys, const ss_buf_t *k, int idx);

/* ---- SQL helpers ---- */
int ss_sem_exec(sqlite3 *db, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int ss_sem_prepare(sqlite3 *db, sqlite3_stmt **st, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int ss_sem_sqlerr(sqlite3 *db, char *err, size_t errsz, const char *what);

/* ---- memo: st_<id>_<name>(k BLOB PRIMARY KEY, v BLOB, refs INTEGER) ---- */
typedef struct ss_sem_kv {
    sqlite3 *db;           /* borrowed */
    sqlite3_stmt *get, *put, *ref, *gc; /* owned; finalized by close */
} ss_sem_kv_t;

int ss_sem_kv_create(sqlite3 *db, int node_id, const char *name, char *err, size_t errsz);
int ss_sem_kv_open(ss_sem_kv_t *kv, sqlite3 *db, int node_id, const char *name, char *err,
                   size_t errsz);
void ss_sem_kv_close(ss_sem_kv_t *kv);
/* *found = 0 if absent; else v gets the value appended (NUL-terminated). */
int ss_sem_kv_get(ss_sem_kv_t *kv, const void *k, size_t kn, ss_buf_t *v, int *found, char *err,
                  size_t errsz);
int ss_sem_kv_put(ss_sem_kv_t *kv, const void *k, size_t kn, const void *v, size_t vn, char *err,
                  size_t errsz);
/* refs += dw; with gc, the entry is removed when refs drops to 0 or below. */
int ss_sem_kv_ref(ss_sem_kv_t *kv, const void *k, size_t kn, int64_t dw, int gc, char *err,
                  size_t errsz);

/* ---- bounded memos (sem_prune.c): option memo = 'prune' (default) | 'keep' ---- */
int ss_sem_memo_prune(const ss_plan_node_t *n);                     /* 1 = prune */
int ss_sem_memo_check(const ss_plan_node_t *n, char *err, size_t errsz); /* a valid value? */

/* The members of pair memo keys (uint32 len(a) | a | b): st_<id>_<name>_m(p, s, k). */
typedef struct ss_sem_pairs {
    sqlite3 *db;                                 /* borrowed */
    sqlite3_stmt *note, *find, *unnote, *del;    /* owned; finalized by close */
} ss_sem_pairs_t;

/* Creates the members table if needed and prepares its statements. */
int ss_sem_pairs_open(ss_sem_pairs_t *pp, sqlite3 *db, int node_id, const char *name, char *err,
                      size_t errsz);
void ss_sem_pairs_close(ss_sem_pairs_t *pp);
/* Records the two members of pair key k (call with every new memo entry). */
int ss_sem_pairs_note(ss_sem_pairs_t *pp, const void *k, size_t kn, char *err, size_t errsz);
/* Drops every memo entry whose member `side` (0 = a, 1 = b, -1 = either) is p, with its
 * member rows; *dropped (may be NULL) counts them. */
int ss_sem_pairs_drop(ss_sem_pairs_t *pp, int side, const void *p, size_t pn, int64_t *dropped, char *err,
                      size_t errsz);

/* ---- pointwise maintenance (SEM_FILTER, SEM_MAP, SEM_SCORE) ----
 * For every entry of `in`, the memo key is the projection of cols; the distinct keys
 * missing from the memo are asked of the model in one dispatcher call (the request is
 * built by `build` from the entry's row), their answers stored with `encode`; then
 * `emit` sees every entry with its memoised value, and the memo's refs follow the
 * weights (entries reaching zero refs are dropped, so a delete costs no call and an
 * update that leaves cols unchanged reuses the stored answer). */
typedef struct ss_sem_pointwise {
    ss_op_t *op;
    ss_op_ctx_t *ctx;
    ss_sem_kv_t *kv;
    const int *cols;
    int ncols;
    int gc; /* drop memo entries at zero refs */
    /* Appends the prompt of row to prompt; fills req (prompt pointer set by the caller). */
    int (*build)(void *ud, const ss_row_t *row, ss_buf_t *prompt, ss_infer_req_t *req);
    /* Appends the stored form of an answer to out. */
    int (*encode)(void *ud, const ss_infer_res_t *res, ss_buf_t *out);
    /* Called per entry with its memoised value. */
    int (*emit)(void *ud, const ss_row_t *row, int64_t w, const char *v, size_t vn, char *err,
                size_t errsz);
    void *ud;
} ss_sem_pointwise_t;

int ss_sem_pointwise_apply(ss_sem_pointwise_t *pw, const ss_zset_t *in, char *err, size_t errsz);

/* Row-at-a-time operators (SEM_FILTER, SEM_MAP) whose answers live in the memo table "memo":
 * init creates it; apply counts the batch, opens the memo, runs pw over in (pw->kv is set here)
 * and closes it; free_impl is their destroy. */
int ss_sem_memo_init(ss_op_t *op, ss_op_ctx_t *ctx, char *err, size_t errsz);
int ss_sem_memo_apply(ss_sem_pointwise_t *pw, const ss_zset_t *in, char *err, size_t errsz);
void ss_sem_free_impl(ss_op_t *op);

/* ---- embeddings and a vector index (FAISS flat inner product, runtime/ss_vindex.h) ---- */
/* Embeds texts[0..n): with ctx->emb through that embedder, else through the dispatcher
 * (EMBED requests, one call, accounted to the operator). out[i] is a malloc'd
 * L2-normalised vector of *dim floats (caller frees each and the array). */
int ss_sem_embed(ss_op_t *op, ss_op_ctx_t *ctx, const char *const *texts, int n, float ***out,
                 int *dim, char *err, size_t errsz);

struct ss_vindex;
typedef struct ss_sem_vidx {
    struct ss_vindex *v; /* owned; created by the first add */
    int dim;
} ss_sem_vidx_t;

void ss_sem_vidx_init(ss_sem_vidx_t *x);
void ss_sem_vidx_free(ss_sem_vidx_t *x);
int64_t ss_sem_vidx_count(const ss_sem_vidx_t *x);
int ss_sem_vidx_add(ss_sem_vidx_t *x, int64_t id, const float *v, int dim, char *err, size_t errsz);
int ss_sem_vidx_remove(ss_sem_vidx_t *x, int64_t id, char *err, size_t errsz);
/* The k ids most similar to q (best first) into ids/sims; *found = how many. */
int ss_sem_vidx_search(ss_sem_vidx_t *x, const float *q, int k, int64_t *ids, float *sims, int *found,
                       char *err, size_t errsz);

/* ---- embedding-only operators (sem_vec.c): SEM_SIM_JOIN, SEM_SEARCH, SEM_DEDUP, SEM_GROUP ---- */
/* The text embedded for a row: the values of the template's columns of `side` in template order
 * (every column of the row when t is NULL), one per line; NULL is an empty line. */
int ss_sem_vec_text(const ss_template_t *t, int side, const ss_row_t *row, ss_buf_t *out);
/* The score of two L2-normalised vectors: their dot product summed in double in index order, so
 * the same two vectors score the same in any run (FAISS's float scores are only used to find
 * candidates). */
double ss_sem_cos(const float *a, const float *b, int dim);

/* A scored candidate: tie = what breaks equal scores (smaller first; the row's encoding). */
typedef struct ss_sem_hit {
    int64_t id;
    double s;
    ss_buf_t tie;
} ss_sem_hit_t;
void ss_sem_hits_free(ss_sem_hit_t *h, int n); /* frees each tie and the array */
/* Sorts best first: higher s, then smaller tie. */
void ss_sem_hits_sort(ss_sem_hit_t *h, int n);
/* The k best ids of x for query q, exactly: FAISS proposes candidates, exact(ud, id, &s, tie)
 * scores each (tie: appended), and the search widens until no vector left out could beat the
 * k-th (its FAISS score, within float error, is below the k-th exact score). *out (malloc'd,
 * best first) holds min(k, count) hits. */
int ss_sem_vidx_topk(ss_sem_vidx_t *x, const float *q, int dim, int k,
                     int (*exact)(void *ud, int64_t id, double *s, ss_buf_t *tie), void *ud, ss_sem_hit_t **out,
                     int *n, char *err, size_t errsz);
/* Loads an index from SQLite: every (vid, embedding) the query (one parameterless SELECT of two
 * columns) returns. */
int ss_sem_vidx_load(ss_sem_vidx_t *x, sqlite3 *db, const char *sql, char *err, size_t errsz);

/* ---- LLM_GENERATE MAINTAIN = 'dependency' (llm_dep.c) ---- */
/* The input chunks of an answer's prompt: a label hash (which input: "instr", "turn:<seq>",
 * "doc:<key>", "self") and a hash of its text; span = its prompt bytes (only while the request
 * is built; not encoded). */
typedef struct ss_dep_chunks {
    int n, cap;
    uint64_t *id;
    uint64_t *hash;
    size_t *span;   /* [2n] */
    char **label;   /* [n] owned */
} ss_dep_chunks_t;
/* Appends the chunk labelled label covering prompt[a, b). */
int ss_dep_chunks_add(ss_dep_chunks_t *c, const char *label, const char *prompt, size_t a, size_t b);
void ss_dep_chunks_free(ss_dep_chunks_t *c);
/* Appends each chunk (id, hash: 8 bytes each; label: uint32 length + bytes) to out; decode reads
 * them back (owned arrays; SS_ERR_INVALID for a blob encode did not write). */
int ss_dep_chunks_encode(const ss_dep_chunks_t *c, ss_buf_t *out);
int ss_dep_chunks_decode(const void *p, int len, ss_dep_chunks_t *c);
/* How many leading sentences of an answer stay valid when its chunks go from old (the record d
 * was measured on; d->nchunk == old->n) to now: a chunk changed (same label, other text) or gone
 * invalidates from the first sentence whose mass on it is >= tau, and so does a chunk whose
 * order among the common chunks changed (from the first one out of place on); a chunk that entered (a label
 * old lacks) invalidates everything. d->nsent = keep all (no regeneration), 0 = regenerate all
 * (also for a record that does not match old). *cause (may be NULL): the chunk that decided it (an
 * index in old, old->n + an index in now for an entrant, -1 when nothing did). */
int ss_dep_keep(const ss_infer_dep_t *d, const ss_dep_chunks_t *old, const ss_dep_chunks_t *now, double tau,
                int *cause);
/* d's record re-indexed on the chunks of now (an answer kept whole: its masses follow their
 * labels; a label old lacks gets 0). out is owned (ss_infer_dep_free). */
int ss_dep_remap(const ss_infer_dep_t *d, const ss_dep_chunks_t *old, const ss_dep_chunks_t *now,
                 ss_infer_dep_t *out);

/* ---- LLM_GENERATE REUSE = 'semantic' (llm_reuse.c; vCache's per-entry thresholds) ---- */
#define SS_REUSE_DELTA 0.05   /* default error bound delta (option reuse_delta) */
#define SS_REUSE_MIN_OBS 6    /* default observations before an entry may be reused (reuse_min_obs) */
#define SS_REUSE_MAX_OBS 256  /* observations kept per entry (the oldest go first) */
/* The posterior of P(ok | s) = L(s; t, gamma) over a (t, gamma) grid given an entry's observations. */
typedef struct ss_reuse_fit {
    int n;          /* observations */
    int ok;         /* 0: fewer than min_obs: always explore */
    double t_map, gamma; /* the posterior mode */
    double t_mean, var_t; /* t's posterior mean and variance */
    double cdf[201]; /* t's marginal posterior CDF on t = i / 200 */
} ss_reuse_fit_t;
/* obs = n pairs (s, ok in {0, 1}) as floats. */
void ss_reuse_fit(const float *obs, int n, int min_obs, ss_reuse_fit_t *f);
double ss_reuse_sigmoid(double s, double t, double gamma);
/* The smallest grid t whose posterior CDF reaches p. */
double ss_reuse_t_quantile(const ss_reuse_fit_t *f, double p);
/* The probability of exploring a turn at similarity s that keeps P(wrong reuse) <= delta (1 when
 * !f->ok, or when the fit's point estimate of P(ok | s) is below 1/2). */
double ss_reuse_explore_p(const ss_reuse_fit_t *f, double s, double delta);
/* A uniform [0, 1) draw determined by the turn, the entry and its observation count. */
double ss_reuse_uniform(const char *turn, int64_t entry, int nobs);
/* Whether two answers agree as texts (case and runs of white space ignored). */
int ss_reuse_same_text(const char *a, const char *b);
/* The reuse columns of st_<id>_ctx (added to tables of before) and st_<id>_reusestat. */
int ss_reuse_init(sqlite3 *db, int id, char *err, size_t errsz);
/* Adds v to counter what of st_<id>_reusestat. */
int ss_reuse_count(sqlite3 *db, int id, const char *what, double v, char *err, size_t errsz);
/* The cache entry nearest to embedding q among the live entries with context hash ctxh other than
 * self: seq 0 when none. Owned strings and observations (ss_reuse_cand_free). */
typedef struct ss_reuse_cand {
    int64_t seq;
    double sim;
    char *resp, *turn;
    float *obs; /* nobs pairs */
    int nobs;
} ss_reuse_cand_t;
int ss_reuse_nearest(sqlite3 *db, int id, uint64_t ctxh, int64_t self, const float *q, int dim,
                     ss_reuse_cand_t *out, char *err, size_t errsz);
void ss_reuse_cand_free(ss_reuse_cand_t *c);
/* Appends the observation (s, ok) to entry's. */
int ss_reuse_observe(sqlite3 *db, int id, int64_t entry, double s, int ok, char *err, size_t errsz);
/* One turn's decision (llm_generate.c fills the turn; ss_reuse_plan decides; ss_reuse_record
 * stores the outcome once the answer is stored). */
typedef struct ss_reuse_opts {
    double delta;  /* reuse_delta */
    int min_obs;   /* reuse_min_obs */
    double equiv;  /* reuse_equiv: answer cosine that agrees (> 1: text equality) */
    int label;     /* reuse_label: context column (-1: none) */
} ss_reuse_opts_t;
enum { SS_REUSE_GENERATE, SS_REUSE_EXPLORE, SS_REUSE_REUSE, SS_REUSE_DEFER };
typedef struct ss_reuse_job {
    int64_t seq;
    uint64_t ctxh;        /* hash of the prompt before the turn: "the same data" */
    char *turn;           /* owned */
    float *q;             /* owned embedding (dim floats), or NULL */
    int dim;
    const void *r;        /* the turn's row encoding (borrowed) */
    size_t rlen;
    int64_t old_src;      /* the answer it reused (0: generated) */
    int was_entry;        /* it is a cache entry */
    int act;              /* SS_REUSE_*: the decision */
    ss_reuse_cand_t cand; /* the entry reused or explored */
} ss_reuse_job_t;
void ss_reuse_job_free(ss_reuse_job_t *j);
/* *any = 1 when one of the seqs (the work list) is a live cache entry. */
int ss_reuse_entries_pending(sqlite3 *db, int id, const int64_t *seqs, int n, int *any, char *err, size_t errsz);
/* Decides j->act: an entry regenerates; another turn follows its source, reuses or explores the
 * nearest entry over the same data, or generates (none). It waits (SS_REUSE_DEFER) for an entry
 * among pend[0..npend) or, with wait, for any entry the work list holds, unless nodefer. */
int ss_reuse_plan(ss_op_t *op, ss_op_ctx_t *ctx, const ss_reuse_opts_t *o, const int64_t *pend, int npend,
                  ss_reuse_job_t *j, int nodefer, int wait, char *err, size_t errsz);
/* After j's answer resp is stored: an exploration's observation (and whether the turn becomes an
 * entry), the turn's src, entry and ctxh. */
int ss_reuse_record(ss_op_t *op, ss_op_ctx_t *ctx, const ss_reuse_opts_t *o, const ss_reuse_job_t *j,
                    const char *resp, char *err, size_t errsz);
/* The counters of a node's reuse (decisions since the view was created). */
typedef struct ss_reuse_stats {
    double hits, identical, followed, misses, explorations, agreed, disagreed, est_err_sum;
    int64_t entries, observations;
} ss_reuse_stats_t;
int ss_reuse_stats(sqlite3 *db, int id, ss_reuse_stats_t *s);
/* EXPLAIN VIEW's line for a node with REUSE = 'semantic'. */
void ss_reuse_describe(sqlite3 *db, const ss_plan_node_t *n, ss_buf_t *out);

/* EXPLAIN VIEW of an LLM_GENERATE node with REUSE = 'semantic' (its counters, ss_reuse_describe)
 * or MAINTAIN = 'dependency' (llm_generate.c): its
 * counters (answers kept whole, shortened, regenerated on revisits) and, for up to max_answers
 * live answers, the attention mass of each sentence on each chunk of its prompt. Nothing for
 * other nodes. Reads the node's committed state. */
int ss_llm_generate_describe(sqlite3 *db, const ss_plan_node_t *n, int max_answers, ss_buf_t *out);

/* ---- items: the distinct projections of the rows of SEM_DEDUP / SEM_GROUP (sem_items.c) ----
 * Tables st_<id>_item(pid, h, p, n, t, e, g, lab) and st_<id>_row(rid, h, r, w, pid). */
typedef struct ss_sem_row_chg {
    ss_buf_t r;          /* the row's encoding (owned) */
    int64_t rid, pid;    /* its row record and item */
    int64_t w0, w1;      /* weight before and after the batch */
} ss_sem_row_chg_t;

typedef struct ss_sem_item_chg {
    int64_t pid;
    int64_t n0, n1, dn;  /* live weight before and after, and the change */
    int fresh;           /* created by this batch (embedded by it) */
} ss_sem_item_chg_t;

typedef struct ss_sem_items_batch {
    ss_sem_row_chg_t *rows; /* owned; one per distinct row of the batch */
    int nrows;
    ss_sem_item_chg_t *items; /* owned; one per item the batch touched */
    int nitems;
} ss_sem_items_batch_t;

int ss_sem_items_create(sqlite3 *db, int id, char *err, size_t errsz);
/* Integrates in (the items are the projections on cols[0..ncols), all columns when 0) and embeds
 * the new items' texts in one call. b is filled here; free it with ss_sem_items_batch_free. */
int ss_sem_items_apply(ss_op_t *op, ss_op_ctx_t *ctx, const int *cols, int ncols, const ss_zset_t *in,
                       ss_sem_items_batch_t *b, char *err, size_t errsz);
void ss_sem_items_batch_free(ss_sem_items_batch_t *b);
/* Drops the items whose weight reached 0 (call at the end of the batch). */
int ss_sem_items_gc(sqlite3 *db, int id, char *err, size_t errsz);
/* The stored embedding of item pid (*v malloc'd, *dim floats). *st: the statement, prepared on
 * first use and kept for the next calls (the caller finalizes it). */
int ss_sem_items_vec(sqlite3 *db, int id, sqlite3_stmt **st, int64_t pid, float **v, int *dim, char *err,
                     size_t errsz);
/* Emits row r ++ lab with weight w (no-op at w = 0). */
int ss_sem_emit_label(const void *r, size_t rn, const char *lab, int64_t w, ss_zset_t *out);
/* For each of items pids[0..n) whose label changed from oldlab[i] to newlab[i] (NULL: skip),
 * emits -(row, old) +(row, new) for its stored rows that the batch b did not change (the caller
 * emits those from their change records). */
int ss_sem_items_relabel(ss_op_t *op, ss_op_ctx_t *ctx, const ss_sem_items_batch_t *b, const int64_t *pids,
                         const char *const *oldlab, const char *const *newlab, int n, ss_zset_t *out, char *err,
                         size_t errsz);
/* Every live row with its label, labsql being an SQL expression over the item (alias i). */
int ss_sem_items_snapshot(ss_op_t *op, ss_op_ctx_t *ctx, const char *labsql, ss_zset_t *out, char *err,
                          size_t errsz);

#endif
