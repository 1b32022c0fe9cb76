/*
 * quality.c — bench_quality: answer quality against ground truth, and the model calls it
 * costs, on the labelled WordNet workload (tools/wordnet2json; docs/QUALITY.md).
 *
 * For each seed: N noun synsets drawn by a hash of (id, seed) are loaded into a stream, then
 * `steps` churn steps each change `churn` x N rows (a third deletes, a third inserts of new
 * synsets, a third updates that give a row another synset's word, gloss and category). The
 * views run in the real engine (planner, pipelines, dispatcher, the openai backend):
 *   casc   SEM_FILTER('Is {gloss} the definition of an animal?', cascade = '...')
 *   full   the same SEM_FILTER without a cascade (the exhaustive baseline; seed 0 only)
 * After the load and after every step the view's rows are compared with the labels
 * (category = noun.animal): precision, recall, F1; the cascade's oracle calls come from its
 * plan (the state database), the exhaustive view's from EXPLAIN's counters.
 *
 * The oracle: bench_quality_oracle (a FIXTURE that answers from the labels, standing in for a
 * large model that is always right), started here on a free port; --oracle URL uses a real
 * OpenAI-compatible model instead (no other change). The proxy is real: the embedder (wink
 * word vectors) or the words classifier, trained on the oracle's answers.
 *
 *   bench_quality [--n N] [--seeds S] [--seed-from F] [--steps T] [--churn F] [--cascade 'proxy=embed, ...']
 *                 [--category NAME] [--join NA [--join-k K] [--join-cascade TEXT]] [--corpus DIR] [--oracle URL]
 *                 [--model NAME] [--embedder wink|use|model] [--check] [--out FILE]
 * --seed-from F: the seeds are F .. F+S-1 (default 0; a long run split over processes).
 * --embedder: the engine's embedder (SET embedder = ...) for proxy=embed and the pruned join;
 * default the engine's default (wink).
 * --join NA: also "Is {a.word} a kind of {b.word}?" over NA synsets x their hypernyms' words,
 * exhaustive and pruned (join_candidates = K, default 5): calls, and the pruned join's recall of
 * the exhaustive join's matches (the fixture is always right, so those are the true matches), and
 * with a cascade (--join-cascade TEXT, default the SEM_FILTER targets): its oracle calls, recall
 * and precision against those matches.
 * --check: exit 1 unless the targets hold: recall and precision >= their targets in >= 80%
 * of the seeds, the exhaustive view exact, oracle labels <= --max-oracle (default 0.25) of
 * the rows; and each step's oracle calls at most --max-step (default 1.0) x the changed rows.
 */
#include "ss_bench_util.h"
#include "ss_engine.h"
#include "ss_json.h"
#include "ss_plan.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *msg, const char *detail)
{
    fprintf(stderr, "bench_quality: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ the corpus */

typedef struct noun {
    int64_t id;
    char *word, *gloss;
    int animal;   /* in the category asked about */
    int64_t hyper; /* its first direct hypernym (0: none), from closure.jsonl (--join) */
} noun_t;

static noun_t *C;
static int NC;

static void load_corpus(const char *dir, const char *category)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/nouns.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot read the corpus (make it with: wordnet2json --out DIR)", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int capc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        ss_json_doc_t *d = NULL;
        char err[SS_ERRSZ];
        if (ss_json_parse(line, (size_t)n, 0, &d, NULL, err, sizeof err))
            die("bad corpus line", err);
        const ss_json_t *o = ss_json_root(d), *id = ss_json_get(o, "id");
        const char *w = ss_json_str(ss_json_get(o, "word")), *g = ss_json_str(ss_json_get(o, "gloss")),
                   *c = ss_json_str(ss_json_get(o, "category"));
        if (!id || id->t != SS_JSON_INT || !w || !g || !c)
            die("a corpus row needs id, word, gloss, category", path);
        if (NC == capc) {
            capc = capc ? capc * 2 : 8192;
            if (!(C = realloc(C, sizeof *C * (size_t)capc)))
                die("out of memory", NULL);
        }
        C[NC++] = (noun_t){id->u.i, ss_strdup(w), ss_strdup(g), !strcmp(c, category), 0};
        ss_json_free(d);
    }
    free(line);
    fclose(f);
}

/* ------------------------------------------------------------------ the oracle fixture */

static pid_t fixture_pid;

static void fixture_stop(void)
{
    if (fixture_pid > 0) {
        kill(fixture_pid, SIGTERM);
        waitpid(fixture_pid, NULL, 0);
        fixture_pid = 0;
    }
}

/* Starts bench_quality_oracle (beside this executable) and returns its base URL. */
static void fixture_start(const char *self, const char *corpus, char *url, size_t n)
{
    char exe[1024];
    const char *slash = strrchr(self, '/');
    snprintf(exe, sizeof exe, "%.*sbench_quality_oracle", slash ? (int)(slash - self + 1) : 0, self);
    int fd[2];
    if (pipe(fd))
        die("pipe", NULL);
    fixture_pid = fork();
    if (fixture_pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        execl(exe, exe, "--corpus", corpus, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[512] = "";
    if (!f || !fgets(line, sizeof line, f))
        die("the oracle fixture did not start", exe);
    const char *u = strstr(line, "http://");
    if (!u)
        die("unexpected fixture output", line);
    size_t k = strcspn(u, " \n");
    snprintf(url, n, "%.*s/v1", (int)k, u);
    atexit(fixture_stop);
}

/* ------------------------------------------------------------------ one run */

typedef struct opts {
    int n, seeds, seed_from, steps, check, join, join_k;
    double churn, max_oracle, max_step, recall, precision;
    const char *cascade, *corpus, *oracle, *model_name, *out, *category, *join_cascade;
    char ask[256]; /* the SEM_FILTER instruction */
} opts_t;

typedef struct meas {
    double precision, recall, f1;
    int64_t rows, truth, oracle, units_seen;
} meas_t;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static const char *g_embedder; /* --embedder, or NULL for the engine's default */

static char *exec_sql(ss_engine_t *e, const char *sql)
{
    ss_buf_t out = SS_BUF_INIT;
    char err[SS_ERRSZ] = "";
    if (ss_engine_exec(e, sql, strlen(sql), "bench", &out, err, sizeof err))
        die(sql, err);
    return ss_buf_take(&out);
}

static void idle(ss_engine_t *e)
{
    char err[SS_ERRSZ] = "";
    if (ss_engine_run_until_idle(e, 600000, err, sizeof err))
        die("views did not catch up", err);
}

static void put_sql_text(ss_buf_t *b, const char *s)
{
    ss_buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            ss_buf_putc(b, '\'');
        ss_buf_putc(b, *s);
    }
    ss_buf_putc(b, '\'');
}

/* Reads the view's ids (sorted) and scores them against the live rows' labels. */
static void measure(sqlite3 *db, const char *view, const int *live, const int64_t *ids, int nlive, meas_t *m)
{
    memset(m, 0, sizeof *m);
    char q[256];
    snprintf(q, sizeof q, "SELECT id FROM view_%s", view);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        die("cannot read the view", sqlite3_errmsg(db));
    int64_t tp = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        m->rows++;
        for (int i = 0; i < nlive; i++) /* the row's content: the corpus entry live[i] of row ids[i] */
            if (ids[i] == id) {
                tp += C[live[i]].animal;
                break;
            }
    }
    sqlite3_finalize(st);
    for (int i = 0; i < nlive; i++)
        m->truth += C[live[i]].animal;
    m->precision = m->rows ? (double)tp / (double)m->rows : 1;
    m->recall = m->truth ? (double)tp / (double)m->truth : 1;
    m->f1 = m->precision + m->recall > 0 ? 2 * m->precision * m->recall / (m->precision + m->recall) : 0;
}

static int64_t plan_int(sqlite3 *db, const char *col)
{
    char q[256];
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    /* the cascade's plan table: st_<id>_cplan of the view's SEM_FILTER */
    if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE name LIKE 'st_%_cplan'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        char t[128];
        snprintf(t, sizeof t, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        st = NULL;
        snprintf(q, sizeof q, "SELECT %s FROM %s", col, t);
        if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

/* Model requests of a view's operator (kind: "sem_filter", "sem_join"), from EXPLAIN's counters:
 * those that reached the model and those the dispatcher's cache answered (views of one run share
 * it, so the second view asking the same question finds it there). */
static int64_t explain_calls_kind(ss_engine_t *e, const char *view, const char *kind)
{
    char q[128], pat[64];
    snprintf(q, sizeof q, "EXPLAIN VIEW %s;", view);
    snprintf(pat, sizeof pat, "| %s ", kind);
    char *t = exec_sql(e, q), *p = strstr(t, pat);
    int64_t v = -1;
    long long b, ri, ro, calls;
    if (p) {
        char *c = p + strlen(pat); /* the kind's column is padded: skip to its '|' */
        while (*c == ' ')
            c++;
        long long hits = 0; /* requests answered from the dispatcher's cache count too */
        if (sscanf(c, "| %lld | %lld | %lld | %lld | %lld", &b, &ri, &ro, &calls, &hits) >= 4)
            v = calls + hits;
    }
    free(t);
    return v;
}

static int64_t explain_calls(ss_engine_t *e, const char *view) { return explain_calls_kind(e, view, "sem_filter"); }


typedef struct seed_res {
    meas_t load, end, full;
    int64_t step_oracle_max, step_changes, units_seen;
    double step_ratio_max, load_s, churn_s;
    int ok;
    char *explain;
} seed_res_t;

static void run_seed(const opts_t *o, int seed, const char *url, seed_res_t *r)
{
    memset(r, 0, sizeof *r);
    /* the draw: corpus indexes ordered by a hash of (id, seed); the first n are loaded, the
     * rest are the reserve of inserts and updates */
    int *ord = malloc(sizeof(int) * (size_t)NC);
    uint64_t *key = malloc(sizeof(uint64_t) * (size_t)NC);
    for (int i = 0; i < NC; i++) {
        ord[i] = i;
        key[i] = mix64((uint64_t)C[i].id * 0x9e3779b97f4a7c15ULL + (uint64_t)seed + 1);
    }
    /* sort ord by key (insertion into buckets would do; qsort with a global is simpler) */
    for (int gap = NC / 2; gap > 0; gap /= 2) /* shell sort: no global comparator state */
        for (int i = gap; i < NC; i++) {
            int v = ord[i];
            int j = i;
            for (; j >= gap && key[ord[j - gap]] > key[v]; j -= gap)
                ord[j] = ord[j - gap];
            ord[j] = v;
        }
    free(key);
    int n = o->n < NC / 2 ? o->n : NC / 2, reserve = n;
    /* live rows: row id -> corpus index of its current content; ids are the loaded synsets' ids
     * (an update keeps the id and takes another synset's content) */
    int *live = malloc(sizeof(int) * (size_t)(n + o->steps * (int)(o->churn * n + 3) + 16));
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(n + o->steps * (int)(o->churn * n + 3) + 16));
    int nlive = 0;

    char dir[] = "/tmp/bench_quality_XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    char db[1200], sql[4096];
    snprintf(db, sizeof db, "%s/state.db", dir);
    ss_engine_opts_t eo;
    memset(&eo, 0, sizeof eo);
    eo.db_path = db;
    eo.max_latency_ms = 20;
    eo.batch_size = n; /* the load is one batch (a bulk load); the churn steps are batches of their own */
    ss_engine_t *e = NULL;
    char err[SS_ERRSZ] = "";
    if (ss_engine_open(&eo, &e, err, sizeof err))
        die("engine", err);
    if (g_embedder) {
        char set[128];
        snprintf(set, sizeof set, "SET embedder = '%s';", g_embedder);
        free(exec_sql(e, set));
    }
    snprintf(sql, sizeof sql,
             "CREATE MODEL oracle WITH (backend = 'openai', url = '%s', model = '%s');"
             "CREATE STREAM nouns (id INT KEY, word TEXT, gloss TEXT, category TEXT) "
             "WITH (topic = 'nouns', format = 'json');"
             "CREATE CONTINUOUS VIEW casc AS SELECT id, word FROM nouns WHERE SEM_FILTER("
             "'%s', model = oracle, cascade = '%s, seed=%d');",
             url, o->model_name, o->ask, o->cascade, seed);
    free(exec_sql(e, sql));
    if (seed == 0) {
        snprintf(sql, sizeof sql, "CREATE CONTINUOUS VIEW full AS SELECT id, word FROM nouns WHERE SEM_FILTER("
                                  "'%s', model = oracle);", o->ask);
        free(exec_sql(e, sql));
    }
    /* the load, as a JSON-lines file */
    char path[1300];
    snprintf(path, sizeof path, "%s/load.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n; i++) {
        noun_t *c = &C[ord[i]];
        ss_buf_t b = SS_BUF_INIT;
        ss_buf_printf(&b, "{\"id\":%lld,\"word\":", (long long)c->id);
        ss_json_put_str_utf8(&b, c->word, strlen(c->word));
        ss_buf_puts(&b, ",\"gloss\":");
        ss_json_put_str_utf8(&b, c->gloss, strlen(c->gloss));
        ss_buf_puts(&b, ",\"category\":\"x\"}\n"); /* the labels stay out of the stream */
        fputs(ss_buf_cstr(&b), f);
        ss_buf_free(&b);
        live[nlive] = ord[i];
        ids[nlive++] = c->id;
    }
    fclose(f);
    double t0 = now_s();
    int64_t nl = 0;
    if (ss_engine_load_jsonl(e, "nouns", path, &nl, err, sizeof err))
        die("load", err);
    idle(e);
    r->load_s = now_s() - t0;
    sqlite3 *rd = NULL;
    if (sqlite3_open_v2(db, &rd, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        die("cannot read the state", db);
    sqlite3_busy_timeout(rd, 10000);
    measure(rd, "casc", live, ids, nlive, &r->load);
    r->load.oracle = plan_int(rd, "oracle");
    r->units_seen = n;
    /* churn */
    uint64_t rng = mix64((uint64_t)seed + 77);
    t0 = now_s();
    for (int s = 0; s < o->steps; s++) {
        int k = (int)(o->churn * n + 0.5), nd = k / 3, nu = k / 3, ni = k - nd - nu;
        ss_buf_t b = SS_BUF_INIT;
        for (int i = 0; i < nd && nlive > 1; i++) {
            rng = mix64(rng);
            int at = (int)(rng % (uint64_t)nlive);
            ss_buf_printf(&b, "DELETE FROM nouns WHERE id = %lld;", (long long)ids[at]);
            live[at] = live[nlive - 1];
            ids[at] = ids[--nlive];
        }
        for (int i = 0; i < nu + ni && reserve < NC; i++) {
            noun_t *c = &C[ord[reserve]];
            int upd = i < nu;
            int at = nlive;
            if (upd) {
                rng = mix64(rng);
                at = (int)(rng % (uint64_t)nlive);
            }
            int64_t id = upd ? ids[at] : c->id;
            ss_buf_printf(&b, "INSERT INTO nouns VALUES (%lld, ", (long long)id);
            put_sql_text(&b, c->word);
            ss_buf_puts(&b, ", ");
            put_sql_text(&b, c->gloss);
            ss_buf_puts(&b, ", 'x');");
            live[at] = ord[reserve++];
            ids[at] = id;
            if (!upd)
                nlive++;
            r->units_seen++;
        }
        int64_t before = plan_int(rd, "oracle");
        free(exec_sql(e, ss_buf_cstr(&b)));
        ss_buf_free(&b);
        idle(e);
        int64_t calls = plan_int(rd, "oracle") - before;
        r->step_changes = k;
        if (calls > r->step_oracle_max)
            r->step_oracle_max = calls;
        if ((double)calls / (k ? k : 1) > r->step_ratio_max)
            r->step_ratio_max = (double)calls / (k ? k : 1);
    }
    r->churn_s = now_s() - t0;
    measure(rd, "casc", live, ids, nlive, &r->end);
    r->end.oracle = plan_int(rd, "oracle");
    if (seed == 0) {
        measure(rd, "full", live, ids, nlive, &r->full);
        r->full.oracle = explain_calls(e, "full");
    }
    char *ex = exec_sql(e, "EXPLAIN VIEW casc;");
    char *cs = strstr(ex, "cascade of #");
    char *st = cs ? strstr(cs, " node |") : NULL;
    r->explain = cs ? strndup(cs, st ? (size_t)(st - cs) : strlen(cs)) : NULL;
    free(ex);
    sqlite3_close(rd);
    ss_engine_close(e);
    r->ok = r->end.recall >= o->recall && r->end.precision >= o->precision;
    snprintf(sql, sizeof sql, "rm -rf '%s'", dir);
    if (getenv("BENCH_QUALITY_KEEP")) /* for a look at the operator's state */
        printf("kept %s\n", dir);
    else if (system(sql) != 0)
        fprintf(stderr, "bench_quality: could not remove %s\n", dir);
    free(ord);
    free(live);
    free(ids);
}

/* ------------------------------------------------------------------ SEM_JOIN: pruned vs exhaustive */

static int noun_by_id(int64_t id)
{
    int lo = 0, hi = NC - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (C[m].id == id)
            return m;
        if (C[m].id < id)
            lo = m + 1;
        else
            hi = m - 1;
    }
    return -1;
}

static void load_hypernyms(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/closure.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot read the hypernyms (make the corpus with: wordnet2json --out DIR)", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        ss_json_doc_t *d = NULL;
        char err[SS_ERRSZ];
        if (ss_json_parse(line, (size_t)n, 0, &d, NULL, err, sizeof err))
            die("bad closure line", err);
        const ss_json_t *o = ss_json_root(d), *id = ss_json_get(o, "id"), *h = ss_json_get(o, "hypernyms");
        int i = id && id->t == SS_JSON_INT ? noun_by_id(id->u.i) : -1;
        if (i >= 0 && h && h->t == SS_JSON_ARRAY && h->u.arr.n > 0 && h->u.arr.items[0].t == SS_JSON_INT)
            C[i].hyper = h->u.arr.items[0].u.i;
        ss_json_free(d);
    }
    free(line);
    fclose(f);
}

/* The pairs of a join view, as "aid:bid" lines sorted (SQLite orders them). */
static char *join_pairs(sqlite3 *db, const char *view, int64_t *n)
{
    char q[256];
    snprintf(q, sizeof q, "SELECT aid, bid FROM view_%s ORDER BY aid, bid", view);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        die("cannot read the join view", sqlite3_errmsg(db));
    ss_buf_t b = SS_BUF_INIT;
    *n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        ss_buf_printf(&b, "%lld:%lld\n", (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1));
        (*n)++;
    }
    sqlite3_finalize(st);
    return ss_buf_take(&b);
}

/* Words x hypernyms: `na` synsets that have a hypernym on the left, the distinct words of their
 * direct hypernyms on the right; "Is {a.word} a kind of {b.word}?" exhaustively and pruned to the
 * k nearest by embedding. The fixture is always right, so the exhaustive join's rows are the true
 * matches; the pruned join's recall is measured against them. */
/* How many lines of `sub` (sorted "aid:bid" lines) are lines of `all`. */
static int64_t pairs_found(const char *all, const char *sub)
{
    int64_t found = 0;
    ss_buf_t fl = SS_BUF_INIT;
    ss_buf_printf(&fl, "\n%s", all ? all : "");
    for (const char *p = sub; p && *p;) {
        const char *end = strchr(p, '\n');
        char pat[64];
        snprintf(pat, sizeof pat, "\n%.*s\n", (int)(end - p), p);
        found += strstr(ss_buf_cstr(&fl), pat) != NULL;
        p = end + 1;
    }
    ss_buf_free(&fl);
    return found;
}

static void run_join(int na, int k, const char *jcas, const char *url, const char *model, ss_buf_t *json)
{
    char dir[] = "/tmp/bench_quality_join_XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    char db[1200], sql[3072];
    snprintf(db, sizeof db, "%s/state.db", dir);
    ss_engine_opts_t eo;
    memset(&eo, 0, sizeof eo);
    eo.db_path = db;
    eo.max_latency_ms = 20;
    eo.batch_size = 100000;
    ss_engine_t *e = NULL;
    char err[SS_ERRSZ] = "";
    if (ss_engine_open(&eo, &e, err, sizeof err))
        die("engine", err);
    if (g_embedder) {
        char set[128];
        snprintf(set, sizeof set, "SET embedder = '%s';", g_embedder);
        free(exec_sql(e, set));
    }
    snprintf(sql, sizeof sql,
             "CREATE MODEL oracle WITH (backend = 'openai', url = '%s', model = '%s');"
             "CREATE STREAM wa (id INT KEY, word TEXT) WITH (topic = 'wa', format = 'json');"
             "CREATE STREAM wb (id INT KEY, word TEXT) WITH (topic = 'wb', format = 'json');"
             "CREATE CONTINUOUS VIEW jfull AS SELECT a.id AS aid, b.id AS bid FROM wa a SEM_JOIN wb b "
             "ON 'Is {a.word} a kind of {b.word}?' WITH (model = oracle);"
             "CREATE CONTINUOUS VIEW jpruned AS SELECT a.id AS aid, b.id AS bid FROM wa a SEM_JOIN wb b "
             "ON 'Is {a.word} a kind of {b.word}?' WITH (model = oracle, join_candidates = %d);"
             "CREATE CONTINUOUS VIEW jcascade AS SELECT a.id AS aid, b.id AS bid FROM wa a SEM_JOIN wb b "
             "ON 'Is {a.word} a kind of {b.word}?' WITH (model = oracle, cascade = '%s');",
             url, model, k, jcas);
    free(exec_sql(e, sql));
    /* the left side: every 37th synset with a hypernym whose word differs from its own */
    char pa[1300], pb[1300];
    snprintf(pa, sizeof pa, "%s/a.jsonl", dir);
    snprintf(pb, sizeof pb, "%s/b.jsonl", dir);
    FILE *fa = fopen(pa, "w"), *fb = fopen(pb, "w");
    int nleft = 0, nright = 0;
    char *seen = calloc((size_t)NC, 1);
    for (int i = 0; i < NC && nleft < na; i += 37) {
        int h = C[i].hyper ? noun_by_id(C[i].hyper) : -1;
        if (h < 0 || !strcmp(C[h].word, C[i].word))
            continue;
        ss_buf_t b = SS_BUF_INIT;
        ss_buf_printf(&b, "{\"id\":%lld,\"word\":", (long long)C[i].id);
        ss_json_put_str_utf8(&b, C[i].word, strlen(C[i].word));
        ss_buf_puts(&b, "}\n");
        fputs(ss_buf_cstr(&b), fa);
        ss_buf_free(&b);
        nleft++;
        if (seen[h])
            continue;
        seen[h] = 1;
        ss_buf_printf(&b, "{\"id\":%lld,\"word\":", (long long)C[h].id);
        ss_json_put_str_utf8(&b, C[h].word, strlen(C[h].word));
        ss_buf_puts(&b, "}\n");
        fputs(ss_buf_cstr(&b), fb);
        ss_buf_free(&b);
        nright++;
    }
    free(seen);
    fclose(fa);
    fclose(fb);
    int64_t nl = 0;
    double t0 = now_s();
    if (ss_engine_load_jsonl(e, "wb", pb, &nl, err, sizeof err) || ss_engine_load_jsonl(e, "wa", pa, &nl, err, sizeof err))
        die("load", err);
    idle(e);
    double secs = now_s() - t0;
    sqlite3 *rd = NULL;
    if (sqlite3_open_v2(db, &rd, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        die("cannot read the state", db);
    int64_t nfull = 0, npruned = 0;
    char *full = join_pairs(rd, "jfull", &nfull), *pruned = join_pairs(rd, "jpruned", &npruned);
    int64_t found = pairs_found(full, pruned); /* pruned rows that are exhaustive rows */
    int64_t ncas = 0;
    char *cas = join_pairs(rd, "jcascade", &ncas);
    int64_t cfound = pairs_found(full, cas); /* the cascade's rows that are true matches */
    int64_t cfull = explain_calls_kind(e, "jfull", "sem_join"), cpruned = explain_calls_kind(e, "jpruned", "sem_join");
    int64_t ccas = explain_calls_kind(e, "jcascade", "sem_join");
    char *ex = exec_sql(e, "EXPLAIN VIEW jcascade;"), *cl = ex ? strstr(ex, "cascade of") : NULL;
    if (cl) /* the plan EXPLAIN shows: thresholds, samples, estimates */
        printf("%s", cl);
    free(ex);
    double recall = nfull ? (double)found / (double)nfull : 1, ratio = cpruned > 0 ? (double)cfull / (double)cpruned : 0;
    double crec = nfull ? (double)cfound / (double)nfull : 1, cprec = ncas ? (double)cfound / (double)ncas : 1;
    double cratio = ccas > 0 ? (double)cfull / (double)ccas : 0;
    printf("SEM_JOIN words x hypernyms: %d x %d rows; exhaustive %lld calls, %lld true matches; pruned "
           "(join_candidates=%d) %lld calls (%.1fx fewer), recall %.3f of the exhaustive join's matches "
           "(%lld of %lld); %.1fs\n",
           nleft, nright, (long long)cfull, (long long)nfull, k, (long long)cpruned, ratio, recall,
           (long long)found, (long long)nfull, secs);
    printf("SEM_JOIN cascade (%s): %lld oracle calls (%.1fx fewer than exhaustive), %lld rows: recall %.3f, "
           "precision %.3f against the exhaustive join's matches\n",
           jcas, (long long)ccas, cratio, (long long)ncas, crec, cprec);
    ss_buf_printf(json,
                  ",\"join\":{\"left\":%d,\"right\":%d,\"k\":%d,\"exhaustive_calls\":%lld,\"matches\":%lld,"
                  "\"pruned_calls\":%lld,\"call_ratio\":%.2f,\"recall\":%.4f,\"cascade_calls\":%lld,"
                  "\"cascade_call_ratio\":%.2f,\"cascade_recall\":%.4f,\"cascade_precision\":%.4f}",
                  nleft, nright, k, (long long)cfull, (long long)nfull, (long long)cpruned, ratio, recall,
                  (long long)ccas, cratio, crec, cprec);
    free(cas);
    free(full);
    free(pruned);
    sqlite3_close(rd);
    ss_engine_close(e);
    snprintf(sql, sizeof sql, "rm -rf '%s'", dir);
    if (system(sql) != 0)
        fprintf(stderr, "bench_quality: could not remove %s\n", dir);
}

static double arg_num(const char *flag, const char *v)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end)
        die("expected a number after", flag);
    return x;
}

int main(int argc, char **argv)
{
    opts_t o = {.n = 10000, .seeds = 1, .steps = 5, .churn = 0.01, .max_oracle = 0.25, .max_step = 1.0,
                .cascade = "proxy=embed, recall=0.9, precision=0.9, delta=0.2", .model_name = "oracle", .category = "animal", .join_k = 5,
                .join_cascade = "proxy=embed, recall=0.9, precision=0.9, delta=0.2"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--check")) {
            o.check = 1;
            continue;
        }
        if (!v)
            die("usage: bench_quality [--n N] [--seeds S] [--seed-from F] [--steps T] [--churn F] [--cascade TEXT] [--corpus DIR] "
                "[--oracle URL] [--model NAME] [--max-oracle F] [--max-step F] [--check] [--out FILE]",
                NULL);
        i++;
        if (!strcmp(a, "--n"))
            o.n = (int)arg_num(a, v);
        else if (!strcmp(a, "--seeds"))
            o.seeds = (int)arg_num(a, v);
        else if (!strcmp(a, "--seed-from"))
            o.seed_from = (int)arg_num(a, v);
        else if (!strcmp(a, "--steps"))
            o.steps = (int)arg_num(a, v);
        else if (!strcmp(a, "--churn"))
            o.churn = arg_num(a, v);
        else if (!strcmp(a, "--max-oracle"))
            o.max_oracle = arg_num(a, v);
        else if (!strcmp(a, "--max-step"))
            o.max_step = arg_num(a, v);
        else if (!strcmp(a, "--cascade"))
            o.cascade = v;
        else if (!strcmp(a, "--corpus"))
            o.corpus = v;
        else if (!strcmp(a, "--oracle"))
            o.oracle = v;
        else if (!strcmp(a, "--join"))
            o.join = (int)arg_num(a, v);
        else if (!strcmp(a, "--join-cascade"))
            o.join_cascade = v;
        else if (!strcmp(a, "--join-k"))
            o.join_k = (int)arg_num(a, v);
        else if (!strcmp(a, "--category"))
            o.category = v;
        else if (!strcmp(a, "--model"))
            o.model_name = v;
        else if (!strcmp(a, "--out"))
            o.out = v;
        else if (!strcmp(a, "--embedder"))
            g_embedder = v;
        else
            die("unknown option", a);
    }
    ss_plan_cascade_t co;
    char err[SS_ERRSZ];
    if (ss_plan_cascade_parse(o.cascade, &co, err, sizeof err))
        die("--cascade", err);
    o.recall = co.recall;
    o.precision = co.precision;
    char tmpc[] = "/tmp/bench_quality_corpus_XXXXXX";
    int made = !o.corpus;
    if (made) { /* make the corpus with wordnet2json (beside the build) */
        if (!mkdtemp(tmpc))
            die("mkdtemp", NULL);
        char cmd[2048];
        const char *slash = strrchr(argv[0], '/');
        snprintf(cmd, sizeof cmd, "'%.*swordnet2json' --out '%s' > /dev/null", slash ? (int)(slash - argv[0] + 1) : 0,
                 argv[0], tmpc);
        if (system(cmd) != 0)
            die("wordnet2json failed (is the Debian package wordnet-base installed? scripts/setup.sh)", cmd);
        o.corpus = tmpc;
    }
    char cat[64];
    snprintf(cat, sizeof cat, "noun.%s", o.category);
    snprintf(o.ask, sizeof o.ask, "Is {gloss} the definition of %s %s?", strchr("aeiou", o.category[0]) ? "an" : "a",
             o.category);
    load_corpus(o.corpus, cat);
    char url[600];
    if (o.oracle)
        snprintf(url, sizeof url, "%s", o.oracle);
    else
        fixture_start(argv[0], o.corpus, url, sizeof url);
    printf("bench_quality: N=%d, %d seed(s), %d churn steps of %.1f%%, SEM_FILTER('%s') (truth: category %s), "
           "cascade '%s', oracle %s%s\n", o.n, o.seeds, o.steps, o.churn * 100, o.ask, cat, o.cascade, url,
           o.oracle ? "" : " (the labels' fixture)");
    ss_buf_t json = SS_BUF_INIT;
    ss_buf_printf(&json, "{\"bench\":\"quality\",\"embedder\":\"%s\",", g_embedder ? g_embedder : "wink");
    ss_buf_printf(&json, "\"n\":%d,\"steps\":%d,\"churn\":%g,\"category\":\"%s\",\"cascade\":",
                  o.n, o.steps, o.churn, cat);
    ss_json_put_str_utf8(&json, o.cascade, strlen(o.cascade));
    ss_buf_printf(&json, ",\"oracle\":\"%s\",\"seeds\":[", o.oracle ? "url" : "fixture");
    int met = 0, fail = 0;
    double sum_p = 0, sum_r = 0, sum_f = 0, sum_frac = 0, max_frac = 0, max_step = 0;
    for (int s = o.seed_from; s < o.seed_from + o.seeds; s++) {
        seed_res_t r;
        run_seed(&o, s, url, &r);
        double frac = (double)r.end.oracle / (double)r.units_seen;
        met += r.ok;
        sum_p += r.end.precision, sum_r += r.end.recall, sum_f += r.end.f1, sum_frac += frac;
        max_frac = frac > max_frac ? frac : max_frac;
        max_step = r.step_ratio_max > max_step ? r.step_ratio_max : max_step;
        printf("seed %2d: after load P=%.3f R=%.3f (oracle %lld of %d rows); after churn P=%.3f R=%.3f F1=%.3f, "
               "oracle %lld of %lld rows seen (%.1f%%), most oracle calls in a step %lld for %lld changes; "
               "%s; load %.1fs, churn %.1fs\n",
               s, r.load.precision, r.load.recall, (long long)r.load.oracle, o.n, r.end.precision, r.end.recall,
               r.end.f1, (long long)r.end.oracle, (long long)r.units_seen, 100 * frac,
               (long long)r.step_oracle_max, (long long)r.step_changes, r.ok ? "targets met" : "TARGETS MISSED",
               r.load_s, r.churn_s);
        if (s == 0) {
            printf("exhaustive SEM_FILTER: P=%.3f R=%.3f, %lld model calls\n", r.full.precision, r.full.recall,
                   (long long)r.full.oracle);
            if (r.explain)
                printf("EXPLAIN VIEW casc (seed 0):\n%s", r.explain);
            if (r.full.precision < 1 && !o.oracle)
                fail = 1;
        }
        ss_buf_printf(&json,
                      "%s{\"seed\":%d,\"precision\":%.4f,\"recall\":%.4f,\"f1\":%.4f,\"oracle\":%lld,"
                      "\"rows_seen\":%lld,\"oracle_fraction\":%.4f,\"load_precision\":%.4f,\"load_recall\":%.4f,"
                      "\"load_oracle\":%lld,\"step_oracle_max\":%lld,\"step_changes\":%lld,\"met\":%s",
                      s > o.seed_from ? "," : "", s, r.end.precision, r.end.recall, r.end.f1, (long long)r.end.oracle,
                      (long long)r.units_seen, frac, r.load.precision, r.load.recall, (long long)r.load.oracle,
                      (long long)r.step_oracle_max, (long long)r.step_changes, r.ok ? "true" : "false");
        if (s == 0)
            ss_buf_printf(&json, ",\"exhaustive\":{\"precision\":%.4f,\"recall\":%.4f,\"calls\":%lld}",
                          r.full.precision, r.full.recall, (long long)r.full.oracle);
        ss_buf_putc(&json, '}');
        free(r.explain);
    }
    ss_buf_t jj = SS_BUF_INIT;
    if (o.join > 0) {
        load_hypernyms(o.corpus);
        run_join(o.join, o.join_k, o.join_cascade, url, o.model_name, &jj);
    }
    int ns = o.seeds ? o.seeds : 1;
    double share = o.seeds ? (double)met / o.seeds : 1;
    printf("summary: targets met in %d of %d seeds (%.0f%%); mean P=%.3f R=%.3f F1=%.3f; oracle share mean "
           "%.1f%%, max %.1f%% of rows (exhaustive: 100%%, ratio %.2fx fewer calls); most oracle calls per changed "
           "row in a step %.2f\n",
           met, o.seeds, 100 * share, sum_p / ns, sum_r / ns, sum_f / ns, 100 * sum_frac / ns, 100 * max_frac,
           o.seeds * 1.0 / (sum_frac > 0 ? sum_frac : 1), max_step);
    ss_buf_printf(&json,
                  "],\"met_share\":%.4f,\"mean_precision\":%.4f,\"mean_recall\":%.4f,\"mean_oracle_fraction\":%.4f,"
                  "\"max_oracle_fraction\":%.4f,\"max_step_ratio\":%.4f%s}\n",
                  share, sum_p / ns, sum_r / ns, sum_frac / ns, max_frac, max_step, jj.data ? ss_buf_cstr(&jj) : "");
    ss_buf_free(&jj);
    char rpath[1024];
    const char *outp = o.out ? o.out : ss_bench_result_path("quality.json", rpath, sizeof rpath);
    FILE *jf = outp ? fopen(outp, "w") : NULL;
    if (jf) {
        fputs(ss_buf_cstr(&json), jf);
        fclose(jf);
        printf("wrote %s\n", outp);
    }
    ss_buf_free(&json);
    fixture_stop();
    if (made) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpc);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_quality: could not remove %s\n", tmpc);
    }
    if (o.check) {
        if (share < 0.8 || fail || max_frac > o.max_oracle || max_step > o.max_step) {
            printf("check: FAILED (targets met in %.0f%% of seeds, need 80%%; oracle share %.1f%%, limit %.1f%%; "
                   "step ratio %.2f, limit %.2f%s)\n",
                   100 * share, 100 * max_frac, 100 * o.max_oracle, max_step, o.max_step,
                   fail ? "; the exhaustive view is not exact" : "");
            return 1;
        }
        printf("check: passed\n");
    }
    return 0;
}
