/*
 * plan_int.h — internal interface shared by the catalog (catalog.c), the planner
 * (planner.c, plan_expr.c) and EXPLAIN (explain.c). Not a contract with other
 * modules: everything here may change with the planner.
 *
 * Node ids: a SOURCE node's id is its stream's catalog sequence number (1..999);
 * the nodes of a view get 1000 * (the view's catalog sequence number) + i, where
 * i counts the view's nodes in construction order (its VIEW node last). Sequence
 * numbers come from SQLite AUTOINCREMENT and are never reused, so ids (and the
 * operator state tables st_<id>_* named after them) are stable across restarts,
 * across adding views, and a dropped-then-recreated view never inherits state.
 */
#ifndef SS_PLAN_INT_H
#define SS_PLAN_INT_H

#include "ss_catalog.h"

#define SS_PLAN_IDS_PER_VIEW 1000

/* Catalog sequence number of a stream or view (creation order, never reused); 0 if absent. */
int64_t ss__catalog_seq(const ss_catalog_t *c, ss_ast_object_t obj, const char *name);
/* The sequence number the next view would get (for planning a view not yet stored). */
int64_t ss__catalog_next_view_seq(const ss_catalog_t *c);

/* ---- AST helpers implemented in plan_expr.c ---- */
/* Textual form of an option value: the literal, or the stream name for name=STREAM(x). malloc'd. */
char *ss__opt_text(const ss_ast_option_t *o);
const ss_ast_option_t *ss__opt_find(const ss_ast_options_t *o, const char *name);
/* Appends a copy of every option of `o` to the option array (name lower-cased). */
int ss__opts_copy(const ss_ast_options_t *o, int *n, ss_plan_opt_t **opts);
int ss__opts_add(int *n, ss_plan_opt_t **opts, const char *name, const char *value);
void ss__opts_free(int n, ss_plan_opt_t *opts);
/* Names of the streams and views a query reads (deduplicated, borrowed from the AST). */
int ss__query_refs(const ss_ast_query_t *q, const char **out, int max);
/* Model names a query's semantic operators name with model='..' (borrowed). */
int ss__query_models(const ss_ast_query_t *q, const char **out, int max);


/* ---- name resolution and expression compilation (plan_expr.c) ---- */

/* One FROM item visible in the current row: columns [off, off+n) of the row. */
typedef struct ss__rel {
    const char *name;   /* alias, or the stream/view name (borrowed) */
    const char *table;  /* the stream/view name (borrowed) */
    const char *what;   /* "stream" or "view" */
    int off, n;
    int side;           /* 0 = left/only input, 1 = right input of a SEM_JOIN */
} ss__rel_t;

#define SS__MAX_RELS 16

/* Expressions an operator below has computed into the row: subquery predicates (semijoin
 * marks), scalar subqueries, window functions. Searched by AST pointer; a use compiles to a
 * copy of expr (a column, or e.g. NOT col / COALESCE(col, 0)). */
typedef struct ss__premap {
    int n;
    const ss_ast_expr_t *ast[32];
    ss_expr_t *expr[32];              /* owned */
    const struct ss__premap *next;
} ss__premap_t;

typedef struct ss__scope ss__scope_t;

struct ss__scope {
    int nrels;
    ss__rel_t rels[SS__MAX_RELS];
    /* JOIN ... USING / NATURAL: an unqualified name of a joined column means merged[i].col (the
     * left copy, the right one for RIGHT JOIN, their COALESCE for FULL JOIN); `*` lists the
     * merged columns first and leaves out the hidden copies. */
    int nmerged;
    struct { const char *name; int col; } merged[32];
    int nhidden;
    int hidden[64];
    const ss_schema_t *schema;  /* the row these rels index (side 0; for two-sided scopes see side_off) */
    const ss_schema_t *side_schema[2]; /* SEM_JOIN: schema of each side (NULL when one-sided) */
    const ss__premap_t *pre;    /* expressions computed into this row (not used for grouped rows) */
    const ss__scope_t *outer;   /* a correlated subquery's enclosing row: names not found here are
                                   looked up there (its columns come first in the row) */
};

/* Aggregate mapping used once rows are grouped: group columns and aggregate calls. */
typedef struct ss__agg_ref {
    const ss_ast_expr_t *ast; /* the call as written (first occurrence) */
    char *key;                /* canonical text, for deduplication; owned */
    ss_coltype_t type;        /* result type, once the grouping node exists */
    int out_col;              /* its column in the grouped row, once the grouping node exists */
} ss__agg_ref_t;

typedef struct ss__grouping {
    int ngroup;
    int *group_in;            /* input column of each group column; borrowed */
    char **group_key;         /* GROUP BY expression (canonical text) of each group column, NULL for
                                 plain columns; borrowed, may be NULL */
    ss_coltype_t *group_type; /* type of each group column; borrowed (with group_key) */
    int naggs;
    ss__agg_ref_t *aggs;      /* output column = ngroup + index */
} ss__grouping_t;


/* Compiler context: where to put errors and how to treat columns/aggregates/SEM_MAP. */
typedef struct ss__cctx {
    const ss__scope_t *scope;     /* names of the input row */
    const ss__grouping_t *grp;    /* non-NULL: compile against the grouped output */
    int nsem;                     /* SEM_MAP results available as columns */
    const ss_ast_expr_t **sem_ast;
    int *sem_col;
    const ss_coltype_t *sem_type; /* their types (NULL: all TEXT) */
    const ss__premap_t *pre;      /* precomputed expressions (may be NULL) */
    char *err;
    size_t errsz;
} ss__cctx_t;

/* Resolves [table.]name in the scope: *side and *col (index within the side's row). */
int ss__resolve_col(const ss__cctx_t *cc, const char *table, const char *name, ss_span_t sp,
                    int *side, int *col);
int ss__compile(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t **out);
/* A condition of `what` (WHERE, HAVING, ON, AND...) must be BOOLEAN (or NULL): else an error at sp. */
int ss__check_bool(const ss__cctx_t *cc, const ss_expr_t *e, const char *what, ss_span_t sp);
int ss__is_agg_name(const char *fn);
/* Canonical text of an AST expression (deduplicating aggregates); malloc'd. */
char *ss__ast_key(const ss_ast_expr_t *a);
/* Resolves a template's {col}/{alias.col} references against the scope. span = the
 * template literal's span (errors point inside it). need_side: bit i = must reference side i. */
int ss__template(const ss__cctx_t *cc, const char *tmpl, ss_span_t span, int need_side,
                 ss_template_t **out);
/* ---- types (plan_typing.c) ---- */
int ss__is_num_type(ss_coltype_t t);
int ss__is_unknown_lit(const ss_expr_t *e);
/* PostgreSQL's common type of two types (INT < NUMERIC < REAL; ANY adapts); -1 if none. */
int ss__common_type(ss_coltype_t a, ss_coltype_t b, ss_coltype_t *out);
/* Makes *e (compiled from a) of type t: converts literals at plan time, wraps implicit casts;
 * an error names `what` and a's position. */
int ss__coerce(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t **e, ss_coltype_t t, const char *what);
int ss__resolve_common(const ss__cctx_t *cc, ss_expr_t **es, const ss_ast_expr_t *const *asts, int n,
                       const char *what, ss_coltype_t *out);
/* A comparison node over l and r (takes both, also on failure). */
int ss__compare(const ss__cctx_t *cc, ss_ast_op_t op, const ss_ast_expr_t *la, ss_expr_t *l,
                const ss_ast_expr_t *ra, ss_expr_t *r, ss_expr_t **out);
int ss__compile_case(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
int ss__compile_cast(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
int ss__compile_in(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
int ss__compile_between(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);
int ss__compile_func(const ss__cctx_t *cc, const ss_ast_expr_t *a, ss_expr_t *e);

/* Renders a compiled expression with the names of schema (EXPLAIN). */
int ss__expr_sql(const ss_expr_t *e, const ss_schema_t *in, ss_buf_t *out);


/* ---- lowering (planner.c, plan_sem.c) ---- */

/* Per-SELECT planner state: WHERE conjuncts pushed below a join (each to the FROM item it
 * reads only), and the FROM items already planned (pushdown looks at them before the joins). */
typedef struct ss__selstate {
    int npush;
    const ss_ast_expr_t *push[64];
    const char *push_to[64];
    int pushed[64];
    /* WHERE conjuncts a.x = b.y across two FROM items: keys of the inner join that meets them */
    int nkeyc;
    const ss_ast_expr_t *keyc[64];
    const char *keyc_leaf[64][2];
    int keyc_used[64];
    int nleaf;
    const ss_ast_from_t *leaf[SS__MAX_RELS];
    ss_plan_node_t *leaf_node[SS__MAX_RELS];
    const char *leaf_what[SS__MAX_RELS];
} ss__selstate_t;

/* Planner context of one view (planner.c, plan_sem.c). */
typedef struct ss__pctx {
    const ss_catalog_t *cat;
    ss_plan_t *plan;
    const char *view;           /* the view being planned */
    int64_t id_base;            /* SS_PLAN_IDS_PER_VIEW * view sequence number */
    int nlocal;
    const char *default_model;  /* the view's WITH (model=...) */
    int depth;                  /* views planned on demand (view-on-view) */
    int names_free;             /* planning a set operation's right operand: its column names are
                                 * not the view's, so they may repeat (SELECT a, a) */
    ss__selstate_t sel;         /* of the SELECT being planned (saved around nested ones) */
    /* WITH queries in scope, outermost first; a lookup sees the first nvis entries */
    int ncte, nvis;
    struct ss__cte_ref {
        const ss_ast_cte_t *cte;
        ss_plan_node_t *node;   /* planned on first use */
        int busy;               /* being planned (a reference now is a recursion) */
    } ctes[64];
    char *err;
    size_t errsz;
} ss__pctx_t;

/* Creates a node of the current view and appends it to the plan (which owns it); NULL on OOM. */
ss_plan_node_t *ss__new_node(ss__pctx_t *x, ss_plan_kind_t k, ss_plan_node_t *in0, ss_plan_node_t *in1,
                             const char *label);
/* The SOURCE node of a stream (shared) or the VIEW node of a view (planned on demand). */
int ss__input_node(ss__pctx_t *x, const char *name, ss_span_t sp, ss_plan_node_t **out, const char **what);
/* Checks a semantic operator's options and copies them onto n (model= to n->model). */
int ss__sem_options(ss__pctx_t *x, ss_plan_node_t *n, const ss_ast_options_t *o);
/* ss_plan_query with the view's WITH options (default model, sink topic) taken into account. */
int ss__plan_view(const ss_catalog_t *c, const ss_ast_query_t *q, const char *name,
                  const ss_ast_options_t *opts, ss_plan_t **out, char *err, size_t errsz);
/* ---- FROM (plan_from.c) ---- */
/* Plans the FROM clause: its items (streams, views, WITH queries, subqueries), the WHERE
 * conjuncts pushed below its joins (ss__plan_pushdown first), and the joins. */
int ss__plan_from(ss__pctx_t *x, const ss_ast_from_t *f, ss__scope_t *sc, ss_plan_node_t **out);
/* Decides which WHERE conjuncts of s filter a FROM item early or become join keys. */
int ss__plan_pushdown(ss__pctx_t *x, const ss_ast_select_t *s);
/* 1 if the WHERE conjunct e was planned below the joins (pushed down or a join key). */
int ss__is_pushed(const ss__pctx_t *x, const ss_ast_expr_t *e);
/* Columns of a then b (keys: both sides' when both have keys). */
ss_schema_t *ss__concat_schema(const ss_schema_t *a, const ss_schema_t *b);
/* The AND-ed terms of e into out[0..max); *n counts them all (more than max: too many). */
void ss__flatten_and(const ss_ast_expr_t *e, const ss_ast_expr_t **out, int *n, int max);
/* The error for n terms where at most max fit (SS_OK when n <= max). */
int ss__too_many_terms(ss__pctx_t *x, const ss_ast_expr_t *e, int n, int max);
/* a AND b (either may be NULL); takes both; NULL on OOM. */
ss_expr_t *ss__and_of(ss_expr_t *a, ss_expr_t *b);
int ss__push_int(int **arr, int n, int v);

/* ---- query structure (plan_query.c) ---- */
/* A whole SELECT: its WITH list, a compound (UNION / EXCEPT / INTERSECT) or a plain SELECT
 * (ss__plan_select), and the compound's ORDER BY / LIMIT / OFFSET. */
int ss__plan_query(ss__pctx_t *x, const ss_ast_select_t *s, ss_plan_node_t **out);
/* A nested SELECT (FROM subquery, WITH query, subquery expression): ss__plan_query with the
 * current SELECT's state saved. */
int ss__plan_subquery(ss__pctx_t *x, const ss_ast_select_t *s, ss_plan_node_t **out);
/* The node of WITH query `name` when one is in scope (*found = 1), planned on first use. */
int ss__cte_node(ss__pctx_t *x, const char *name, ss_span_t sp, ss_plan_node_t **out, int *found);
/* A plain SELECT (planner.c): FROM, WHERE (ss__plan_conditions), then ss__plan_select_items. */
int ss__plan_select(ss__pctx_t *x, const ss_ast_select_t *s, ss_plan_node_t **out);
/* What follows WHERE: the SELECT list, GROUP BY, HAVING, ORDER BY / LIMIT, DISTINCT, over *cur
 * (whose names are sc). s->from and s->where are not looked at. */
int ss__plan_select_items(ss__pctx_t *x, const ss_ast_select_t *s, ss__scope_t *sc, ss_plan_node_t **cur);
/* WHERE conjuncts cj[0..ncj) over *cur: the subquery predicates (ss__plan_subqueries), then one
 * FILTER of the ordinary ones (those pushed below joins skipped), then one SEM_FILTER each.
 * pm receives the expressions computed into the row; sc->pre is pointed at it. */
int ss__plan_conditions(ss__pctx_t *x, const ss_ast_expr_t **cj, int ncj, ss__scope_t *sc, ss_plan_node_t **cur,
                        ss__premap_t *pm);

/* ---- aggregate calls (plan_agg.c) ---- */
/* The aggregate function of a name (COUNT, SUM, .., STRING_AGG), or -1. */
int ss__agg_fn(const char *name);
/* 1 if the call needs a helper aggregate after it (VAR/STDDEV: Σx²). */
int ss__agg_needs_helper(const ss_ast_expr_t *a);
/* Fills pa (and helper, for VAR/STDDEV) from the call a over scope sc; *type = result type. */
int ss__plan_agg(ss__pctx_t *x, const ss_ast_expr_t *a, const ss__scope_t *sc, ss_plan_agg_t *pa,
                 ss_plan_agg_t *helper, ss_coltype_t *type);

/* ---- window functions (plan_window.c) ---- */
/* 1 if e (not inside subqueries) calls a window function. */
int ss__has_window(const ss_ast_expr_t *e);
/* The window functions of the SELECT items as columns of *cur: one WINDOW node per distinct
 * OVER (...), recorded in pm. */
int ss__plan_windows(ss__pctx_t *x, const ss_ast_expr_t *const *items, int n, ss__scope_t *sc,
                     ss_plan_node_t **cur, ss__premap_t *pm);
/* WHERE rn <= N (< N, = N) on a column that a FROM subquery's WINDOW node ranks first: that
 * node keeps only the first N ranks (the filter stays). leaf = the subquery's node. */
void ss__window_pushdown(ss__pctx_t *x, ss_plan_node_t *leaf, const ss__scope_t *sc, const ss_ast_expr_t *e);

/* ---- subqueries in expressions (plan_subquery.c) ---- */
/* Plans the subquery expressions of the conjuncts cj[0..*ncj) over *cur: a top-level EXISTS,
 * NOT EXISTS, [NOT] IN (SELECT ..) filters the row with a semi / anti join and is removed from
 * cj; any other EXISTS / IN becomes a MARK semijoin column and a (SELECT ..) a scalar column,
 * recorded in pm for the compiler. */
int ss__plan_subqueries(ss__pctx_t *x, const ss_ast_expr_t **cj, int *ncj, ss__scope_t *sc, ss_plan_node_t **cur,
                        ss__premap_t *pm);
/* The subquery expressions inside e (SELECT list items) as columns of *cur, recorded in pm. */
int ss__plan_expr_subqueries(ss__pctx_t *x, const ss_ast_expr_t *e, ss__scope_t *sc, ss_plan_node_t **cur,
                             ss__premap_t *pm);
/* e compiled in scope sc as a column of *cur: a plain column as it is, anything else appended by
 * a PROJECT named label (so that an operator can key on it); sc->schema follows *cur. */
int ss__expr_column(ss__pctx_t *x, const ss_ast_expr_t *e, ss__scope_t *sc, ss_plan_node_t **cur,
                    const char *label, int *col, ss_coltype_t *type);
/* 1 if e contains a subquery expression. */
int ss__has_subquery(const ss_ast_expr_t *e);
void ss__premap_clear(ss__premap_t *pm);
/* A node of kind k with in's schema (filters, top-k). */
ss_plan_node_t *ss__node_like(ss__pctx_t *x, ss_plan_kind_t k, ss_plan_node_t *in, const char *label);

/* LLM_GENERATE(...) as one node. */
int ss__plan_generate(ss__pctx_t *x, const ss_ast_generate_t *g, ss_plan_node_t **out);

/* ---- semantic operators of issue 15 (plan_semops.c) ---- */
struct ss_jscol;
/* SEM calls that append a column to the row (SEM_MAP, SEM_EXTRACT, SEM_CLASSIFY, SEM_DEDUP,
 * SEM_GROUP, SEM_CLUSTER), and those of them GROUP BY accepts (all but SEM_EXTRACT). */
int ss__sem_appends(ss_sem_kind_t k);
int ss__sem_groupable(ss_sem_kind_t k);
/* The columns of SEM_EXTRACT e (its 'name TYPE, ...' argument); free with ss_jscols_free. */
int ss__extract_cols(ss__pctx_t *x, const ss_ast_expr_t *e, struct ss_jscol **cols, int *n);
/* Plans the node of appending call m over *cur (its column named name); *col = the first column it
 * appends, *type that column's type. */
int ss__plan_sem_append(ss__pctx_t *x, const ss_ast_expr_t *m, const char *name, const ss__scope_t *sc,
                        ss_plan_node_t **cur, int *col, ss_coltype_t *type);
/* SEM_SEARCH(f->name, 'query', k) over in (the view's node). */
int ss__plan_sem_search(ss__pctx_t *x, const ss_ast_from_t *f, ss_plan_node_t *in, ss_plan_node_t **out);

#endif
