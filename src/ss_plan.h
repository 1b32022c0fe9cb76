/*
 * ss_plan.h — compiled expressions, templates and the operator DAG the planner
 * produces from the AST. This is the contract between the planner (src/planner.c)
 * and the operators (operators/): each plan node names an operator kind, its
 * inputs, its output schema and its parameters, with columns already resolved to
 * indices. The plan (ss_plan_t) owns its nodes; nodes own their parameters.
 */
#ifndef SS_PLAN_H
#define SS_PLAN_H

#include "ss_ast.h"
#include "ss_zset.h"

/* ---- compiled scalar expressions (columns resolved to indices of the input row) ---- */
typedef enum ss_expr_kind {
    SS_EX_COL,     /* input column `col` */
    SS_EX_LIT,     /* literal `lit` */
    SS_EX_UNARY,   /* op args[0] */
    SS_EX_BINARY,  /* args[0] op args[1] */
    SS_EX_IS_NULL, /* args[0] IS NULL (negate = IS NOT NULL) */
    SS_EX_FUNC,    /* scalar function `func`(args...) : LOWER UPPER LENGTH COALESCE ABS SUBSTR ROUND ... */
    SS_EX_CASE,    /* args = when1, then1, when2, then2, ... [, else] (odd nargs: the last is ELSE) */
    SS_EX_CAST,    /* args[0] converted to `type` (NUMERIC: typmod) */
    SS_EX_IN,      /* args[0] IN (args[1..]); negate = NOT IN */
} ss_expr_kind_t;

typedef struct ss_expr {
    ss_expr_kind_t kind;
    int col;                 /* SS_EX_COL */
    ss_value_t lit;          /* SS_EX_LIT; text owned by the node */
    ss_ast_op_t op;          /* SS_EX_UNARY / SS_EX_BINARY */
    int negate;              /* SS_EX_IS_NULL */
    char *func;              /* SS_EX_FUNC, upper-case; owned */
    int nargs;
    struct ss_expr **args;   /* owned */
    ss_coltype_t type;       /* result type as inferred by the planner (ANY if unknown) */
    int typmod;              /* SS_EX_CAST to NUMERIC(p,s): ss_typmod_make(p, s); else -1 */
    int sline, scol;         /* source position (view text) for run-time errors; 0 if unknown */
} ss_expr_t;

ss_expr_t *ss_expr_new(ss_expr_kind_t kind);
void ss_expr_free(ss_expr_t *e);
ss_expr_t *ss_expr_copy(const ss_expr_t *e);
/* Evaluates e on row. Text results either borrow from row/e or are malloc'd into
 * *owned (caller frees *owned when non-NULL after the call). SQL semantics:
 * NULL propagates; comparisons yield INT 0/1 or NULL; AND/OR three-valued.
 * A row the expression cannot be computed on (division by zero, an invalid
 * cast, a value out of range) gives SS_ERR_INVALID with "line:col: reason";
 * operators report such rows through ss_op_row_error instead of failing. */
int ss_expr_eval(const ss_expr_t *e, const ss_row_t *row, ss_value_t *out, char **owned,
                 char *err, size_t errsz);
/* Readable rendering using the input schema's names (for EXPLAIN). */
int ss_expr_to_sql(const ss_expr_t *e, const ss_schema_t *in, ss_buf_t *out);

/* ---- prompt templates: literal text with {col} references resolved to (side, column) ---- */
typedef struct ss_tmpl_part {
    char *text;    /* literal text, owned; NULL for a column reference */
    int side;      /* input 0 or 1 (SEM_JOIN right side, or pair element B for SEM_RANK) */
    int col;       /* column index in that input */
    char *name;    /* the reference as written, e.g. "abstract" or "p.abstract"; owned */
} ss_tmpl_part_t;

typedef struct ss_template {
    char *src;              /* template text as written; owned */
    int nparts;
    ss_tmpl_part_t *parts;  /* owned */
} ss_template_t;

void ss_template_free(ss_template_t *t);
ss_template_t *ss_template_copy(const ss_template_t *t);
/* Columns (of side `side`) the template reads, deduplicated, into cols (max n); returns count. */
int ss_template_cols(const ss_template_t *t, int side, int *cols, int max);

/* ---- plan nodes ---- */
typedef enum ss_plan_kind {
    SS_PN_SOURCE,       /* a stream: rows decoded from its topic (label = stream name) */
    SS_PN_FILTER,       /* pred */
    SS_PN_PROJECT,      /* exprs -> schema */
    SS_PN_UNION,        /* in[0] + in[1] */
    SS_PN_DISTINCT,     /* weights clamped to 1 */
    SS_PN_JOIN,         /* equi-join on lkeys = rkeys (+ residual pred on the concatenated row) */
    SS_PN_GROUP,        /* group_cols + aggs */
    SS_PN_TOPK,         /* order + limit */
    SS_PN_SEM_FILTER,   /* tmpl over in[0]: keep rows the model answers yes for */
    SS_PN_SEM_MAP,      /* tmpl over in[0]: appends one TEXT column (schema's last) */
    SS_PN_SEM_JOIN,     /* tmpl over (in[0], in[1]): output = concatenated rows where yes */
    SS_PN_SEM_TOPK,     /* sem = SEM_RANK or SEM_SCORE, tmpl, limit, desc */
    SS_PN_SEM_AGG,      /* group_cols + tmpl: output = group cols + one TEXT summary column */
    SS_PN_LLM_GENERATE, /* in[0] = context stream, in[1] = data source; see options */
    SS_PN_VIEW,         /* materialises in[0] as view `label` (table view_<label>) + optional sink */
    SS_PN_SETOP,        /* setop (UNION, EXCEPT, INTERSECT [ALL]; not UNION ALL) of in[0] and in[1] */
    SS_PN_SEMIJOIN,     /* in[0] rows by their matches in in[1] on lkeys = rkeys (+ pred): semi_mode */
    SS_PN_WINDOW,       /* window functions wfns over in[0], PARTITION BY group_cols ORDER BY order */
    /* time (issue 13) */
    SS_PN_TEMPORAL,     /* temporal filter: rows of in[0] valid while NOW() satisfies the bounds (exprs,
                           opts "bound<k>"); maintained as time passes */
    SS_PN_TIMEWIN,      /* window table function over in[0]: opts window = tumble|hop|session, size_us,
                           slide_us, offset_us, gap_us; exprs[0] = the time column; output = input +
                           window_start, window_end (SESSION: group_cols = PARTITION BY) */
    SS_PN_EOWC,         /* EMIT ON WINDOW CLOSE: holds in[0]'s changes of a window (column opt
                           window_end_col) until the watermark passes its end (+ opt close_after_us) */
    /* semops (issue 15 §2; src/plan_semops.c says what each node carries) */
    SS_PN_SEM_EXTRACT,  /* tmpl over in[0]: appends the fields of opt schema, as typed columns (opt
                           output=columns) or as one JSON column (output=json) */
    SS_PN_SEM_CLASSIFY, /* tmpl over in[0]: appends TEXT, one of opt labels (a JSON array) */
    SS_PN_SEM_SIM_JOIN, /* tmpl over (in[0], in[1]): each in[0] row with its `limit` nearest in[1] rows
                           by embedding; output = both rows + similarity REAL */
    SS_PN_SEM_SEARCH,   /* in[0]'s `limit` rows nearest to opt query (tmpl: the columns embedded, NULL =
                           all); output = the row + score REAL */
    SS_PN_SEM_DEDUP,    /* tmpl over in[0]: appends TEXT, the entity (cluster of duplicates) of the row */
    SS_PN_SEM_GROUP,    /* tmpl over in[0]: appends TEXT, one of `limit` groups; sem = SS_SEM_GROUP (named
                           by the model) or SS_SEM_CLUSTER (named by its exemplar) */
} ss_plan_kind_t;

typedef enum ss_agg_fn {
    SS_AGG_COUNT, SS_AGG_SUM, SS_AGG_MIN, SS_AGG_MAX, SS_AGG_AVG,
    SS_AGG_BOOL_AND, SS_AGG_BOOL_OR,       /* over 0/1 values: all / any true (NULLs ignored) */
    SS_AGG_VAR_SAMP, SS_AGG_VAR_POP,       /* from Σx (this aggregate) and Σx² (the next one, */
    SS_AGG_STDDEV_SAMP, SS_AGG_STDDEV_POP, /* an SS_AGG_SUMSQ over the same argument) */
    SS_AGG_SUMSQ,                          /* Σ arg (the planner gives it x * x): a helper column */
    SS_AGG_STRING_AGG,                     /* values in order joined by sep (NULLs skipped) */
    SS_AGG_ARRAY_AGG,                      /* values in order as PostgreSQL's array text {a,b} */
    SS_AGG_JSON_AGG,                       /* values in order as a JSON array [a, b] */
} ss_agg_fn_t;

typedef struct ss_plan_agg {
    ss_agg_fn_t fn;
    ss_expr_t *arg;    /* owned; NULL for COUNT(*) */
    int distinct;      /* COUNT(DISTINCT ..) etc. */
    ss_expr_t *filter; /* owned; FILTER (WHERE ..): only rows where it is true count, or NULL */
    int norder;        /* STRING_AGG / ARRAY_AGG / JSON_AGG (.. ORDER BY ..); else the value's order */
    struct ss_plan_order *order; /* owned */
    char *sep;         /* STRING_AGG's separator; owned */
} ss_plan_agg_t;

/* What a SEMIJOIN emits for an in[0] row l, given m(l) = its matches in in[1] (rows with equal
 * keys that pass pred on l ++ r). With semi_in, the last key pair is `x IN (SELECT y ...)`:
 * the match is 3-valued as SQL says (NULL when x is NULL or the subquery holds a NULL, unless a
 * row equals x or the subquery is empty), and pred must be NULL. */
typedef enum ss_semi_mode {
    SS_SEMI_SEMI = 0, /* l when it matches (EXISTS, IN) */
    SS_SEMI_ANTI,     /* l when it does not (NOT EXISTS; NOT IN: the match is FALSE, not NULL) */
    SS_SEMI_MARK,     /* l ++ [match]: TRUE / FALSE (/ NULL with semi_in) as an INT column */
} ss_semi_mode_t;

/* Window functions. Ranking functions number rows in ORDER BY order (ties in the order keys
 * share a RANK / DENSE_RANK; ROW_NUMBER breaks them by the whole row); aggregates run over the
 * partition (no ORDER BY) or from its start to the current row's last peer (with ORDER BY). */
typedef enum ss_win_fn {
    SS_WIN_ROW_NUMBER, SS_WIN_RANK, SS_WIN_DENSE_RANK,
    SS_WIN_COUNT, SS_WIN_SUM, SS_WIN_AVG, SS_WIN_MIN, SS_WIN_MAX,
} ss_win_fn_t;

typedef struct ss_plan_wfn {
    ss_win_fn_t fn;
    ss_expr_t *arg;  /* owned; NULL for ranking functions and COUNT(*) */
} ss_plan_wfn_t;

typedef struct ss_plan_order {
    ss_expr_t *expr; /* owned (ignored for SEM_TOPK, which orders by the model) */
    int desc;
} ss_plan_order_t;

/* A copied option: name = value (text) — operator-specific settings such as
 * fan_in, join_candidates, threshold, retrieve, maintain, key, sink_topic. */
typedef struct ss_plan_opt {
    char *name;  /* lower-case; owned */
    char *value; /* owned, textual form */
} ss_plan_opt_t;

typedef struct ss_plan_node {
    ss_plan_kind_t kind;
    int id;                       /* unique within the plan; state tables are named st_<id>_* */
    char *label;                  /* stream/view name or a short description; owned */
    char *view;                   /* the view this node was planned for; owned */
    int nin;
    struct ss_plan_node *in[2];   /* inputs; not owned (the plan owns every node) */
    ss_schema_t *schema;          /* output schema; owned */

    ss_expr_t *pred;              /* FILTER; JOIN residual (may be NULL) */
    int nexprs;
    ss_expr_t **exprs;            /* PROJECT: one per output column */
    int nkeys;
    int *lkeys, *rkeys;           /* JOIN: key columns of in[0] and in[1] */
    ss_join_type_t join_type;     /* JOIN */
    int ngroup;
    int *group_cols;              /* GROUP, SEM_AGG: grouping columns of in[0] */
    int naggs;
    ss_plan_agg_t *aggs;          /* GROUP: output = group cols then one column per agg */
    int norder;
    ss_plan_order_t *order;       /* TOPK */
    int64_t limit;                /* TOPK, SEM_TOPK: k (-1 = none); WINDOW: only rows whose first
                                     ranking function is <= limit are kept (-1 = all) */
    int64_t offset;               /* TOPK: rows skipped before the k kept (0 = none) */
    ss_setop_t setop;             /* SETOP */
    ss_semi_mode_t semi_mode;     /* SEMIJOIN */
    int semi_in;                  /* SEMIJOIN: the last key pair is an IN (see ss_semi_mode_t) */
    int nwfns;
    ss_plan_wfn_t *wfns;          /* WINDOW: output = in[0]'s columns, then one per function */
    ss_sem_kind_t sem;            /* SEM_TOPK: SS_SEM_RANK or SS_SEM_SCORE */
    int desc;                     /* SEM_TOPK: 1 = best first (default) */
    ss_template_t *tmpl;          /* SEM_*: the prompt template; LLM_GENERATE: PROMPT as a template */
    char *model;                  /* SEM_*, LLM_GENERATE: model name, NULL = default; owned */
    int nopts;
    ss_plan_opt_t *opts;          /* owned */
} ss_plan_node_t;

/* The whole DAG of every view in the catalog (or of one query for EXPLAIN). */
typedef struct ss_plan {
    int n, cap;
    ss_plan_node_t **nodes;       /* owned, in topological order (inputs before users) */
} ss_plan_t;

ss_plan_node_t *ss_plan_node_new(ss_plan_kind_t kind);
void ss_plan_node_free(ss_plan_node_t *n);
void ss_plan_free(ss_plan_t *p);
const char *ss_plan_kind_name(ss_plan_kind_t k);
const char *ss_plan_opt(const ss_plan_node_t *n, const char *name); /* NULL if unset */
int64_t ss_plan_opt_int(const ss_plan_node_t *n, const char *name, int64_t dflt);
int ss_plan_opt_bool(const ss_plan_node_t *n, const char *name); /* 1 for TRUE or 1, else 0 */
double ss_plan_opt_real(const ss_plan_node_t *n, const char *name, double dflt);

/* ---- cascades: SEM_FILTER's option cascade = '...' (src/plan_cascade.c) ----
 * 'proxy=embed, recall=0.9, precision=0.9, delta=0.2' (docs/QUALITY.md). The operators
 * (operators/sem_cascade.c) read the parsed form; the planner checks the text with it. */
typedef enum ss_cascade_proxy {
    SS_CASCADE_EMBED = 1, /* logistic regression over the rows' embeddings, fitted to the oracle's labels */
    SS_CASCADE_MODEL,     /* a small model's P(yes): proxy=model:NAME (a model of CREATE MODEL) */
    SS_CASCADE_WORDS,     /* naive Bayes over the rows' hashed words, fitted to the oracle's labels */
} ss_cascade_proxy_t;

typedef struct ss_plan_cascade {
    ss_cascade_proxy_t proxy;
    char model[64];       /* SS_CASCADE_MODEL: the proxy model's name */
    double recall;        /* target recall, (0, 1] (default 0.9) */
    double precision;     /* target precision, (0, 1] (default 0.9) */
    double delta;         /* failure probability, (0, 1) (default 0.2) */
    double sample;        /* calibration sample: a count (>= 1) or a fraction of the units (< 1); default 1000 */
    double train;         /* training sample of the trained proxies: count or fraction; default 600 */
    double mix;           /* uniform share of the importance weights, [0, 1] (default 1: a uniform sample) */
    int64_t seed;         /* salt of the sampling hashes (default 0) */
} ss_plan_cascade_t;

/* Parses the text of the cascade option into *o (defaults filled in). On error: SS_ERR_INVALID and
 * "cascade: ..." in err, naming the setting and what it must be. */
int ss_plan_cascade_parse(const char *text, ss_plan_cascade_t *o, char *err, size_t errsz);
/* 1 if node n is a semantic operator with a cascade whose proxy is the embedder (the engine opens
 * it for such plans). */
int ss_plan_cascade_embeds(const ss_plan_node_t *n);

#endif
