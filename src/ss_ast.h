/*
 * ss_ast.h — the abstract syntax tree of the semstream SQL dialect.
 *
 * Produced by ss_parse() (grammar/parser.y + grammar/lexer.re), consumed by the
 * catalog and the planner. Every node records the source span it came from so
 * that semantic errors can report line:column. Ownership: a node owns all of
 * its children and strings; ss_ast_script_free() frees a whole parse result.
 * Constructors take ownership of their children even when they fail (so the
 * grammar never leaks), and return NULL only on out-of-memory.
 */
#ifndef SS_AST_H
#define SS_AST_H

#include "ss_base.h"
#include "ss_zset.h"

typedef struct ss_span {
    int line;   /* 1-based */
    int col;    /* 1-based, in bytes */
    int off;    /* byte offset of the first character */
    int len;    /* byte length */
} ss_span_t;

/* ---- expressions ---- */
typedef enum ss_ast_expr_kind {
    SS_AX_COLUMN,  /* [table.]name */
    SS_AX_LITERAL, /* lit */
    SS_AX_UNARY,   /* op left */
    SS_AX_BINARY,  /* left op right */
    SS_AX_FUNC,    /* name(args) — COUNT/SUM/MIN/MAX/AVG/LOWER/UPPER/LENGTH/COALESCE/... */
    SS_AX_STAR,    /* '*' or table.* (in select lists and COUNT(*)) */
    SS_AX_IS_NULL, /* left IS [NOT] NULL (op = SS_OP_NOT for IS NOT NULL, else 0) */
    SS_AX_SEM,     /* semantic function: sem + tmpl (+ args for options) */
    SS_AX_CASE,    /* CASE [left] WHEN args[0] THEN args[1] ... [ELSE right] END */
    SS_AX_CAST,    /* CAST(left AS cast_type) or left::cast_type; name = the type as written */
    SS_AX_IN,      /* left [NOT] IN (args...); op = SS_OP_NOT for NOT IN */
    SS_AX_BETWEEN, /* left [NOT] BETWEEN args[0] AND args[1]; op = SS_OP_NOT for NOT BETWEEN */
    SS_AX_ROW,     /* (a, b, ...): a parenthesised list, only meaningful after IN */
    SS_AX_SUBQUERY,  /* (SELECT ...) used as a value: sub */
    SS_AX_EXISTS,    /* EXISTS (SELECT ...): sub (NOT EXISTS is a NOT over it) */
    SS_AX_IN_SELECT, /* left [NOT] IN (SELECT ...): sub; op = SS_OP_NOT for NOT IN, else 0 */
} ss_ast_expr_kind_t;

typedef enum ss_ast_op {
    SS_OP_NONE = 0,
    SS_OP_OR, SS_OP_AND, SS_OP_NOT,
    SS_OP_EQ, SS_OP_NE, SS_OP_LT, SS_OP_LE, SS_OP_GT, SS_OP_GE,
    SS_OP_ADD, SS_OP_SUB, SS_OP_MUL, SS_OP_DIV, SS_OP_MOD,
    SS_OP_CONCAT, SS_OP_LIKE, SS_OP_NEG,
    SS_OP_ILIKE,        /* case-insensitive LIKE; LIKE/ILIKE carry an ESCAPE expression in args[0] */
    SS_OP_DISTINCT,     /* IS DISTINCT FROM */
    SS_OP_NOT_DISTINCT, /* IS NOT DISTINCT FROM */
    SS_OP_JSON_GET,     /* -> (member or element, as JSON) */
    SS_OP_JSON_TEXT,    /* ->> (member or element, as TEXT) */
} ss_ast_op_t;

typedef enum ss_sem_kind {
    SS_SEM_NONE = 0,
    SS_SEM_FILTER, /* SEM_FILTER('template') in WHERE */
    SS_SEM_MAP,    /* SEM_MAP('template') in SELECT */
    SS_SEM_RANK,   /* SEM_RANK('template') in ORDER BY: pairwise comparator */
    SS_SEM_SCORE,  /* SEM_SCORE('template') in ORDER BY: pointwise score */
    SS_SEM_AGG,    /* SEM_AGG('template') aggregate in SELECT */
    /* semops (issue 15): extra positional arguments in args (literals) */
    SS_SEM_EXTRACT,  /* SEM_EXTRACT('template', 'name TYPE, ...'): args[0] = the column list */
    SS_SEM_CLASSIFY, /* SEM_CLASSIFY('template', 'label', ...): args = the labels */
    SS_SEM_DEDUP,    /* SEM_DEDUP('template'): the entity of the row */
    SS_SEM_GROUP,    /* SEM_GROUP('template', k): args[0] = k; a group named by the model */
    SS_SEM_CLUSTER,  /* SEM_CLUSTER('template', k): args[0] = k; a group named by its exemplar */
} ss_sem_kind_t;

typedef struct ss_ast_expr ss_ast_expr_t;
typedef struct ss_ast_select ss_ast_select_t;
typedef struct ss_ast_order ss_ast_order_t;
typedef struct ss_ast_window ss_ast_window_t;

typedef struct ss_ast_expr_list {
    int n, cap;
    ss_ast_expr_t **items; /* owned */
} ss_ast_expr_list_t;

/* An option list: WITH (name = value, ...) and LLM_GENERATE's option=value pairs. */
typedef struct ss_ast_option {
    char *name;        /* owned, lower-cased */
    ss_value_t value;  /* literal; text owned (freed with the list) */
    char *stream;      /* owned; set for name=STREAM(x) (value is NULL then) */
    ss_span_t span;
} ss_ast_option_t;

typedef struct ss_ast_options {
    int n, cap;
    ss_ast_option_t *items; /* owned */
} ss_ast_options_t;

struct ss_ast_expr {
    ss_ast_expr_kind_t kind;
    ss_span_t span;
    ss_ast_op_t op;            /* UNARY, BINARY, IS_NULL */
    char *table;               /* COLUMN/STAR qualifier, or NULL; owned */
    char *name;                /* COLUMN name; FUNC name (upper-cased); owned */
    ss_value_t lit;            /* LITERAL (text owned by the node) */
    ss_sem_kind_t sem;         /* SEM */
    char *tmpl;                /* SEM template text, quotes removed; owned */
    ss_span_t tmpl_span;       /* where the template literal starts (for {col} errors) */
    ss_ast_expr_t *left;       /* UNARY operand, BINARY/IS_NULL left; owned */
    ss_ast_expr_t *right;      /* BINARY right; owned */
    ss_ast_expr_list_t *args;  /* FUNC arguments; owned; NULL for no args */
    ss_ast_options_t *opts;    /* SEM extra options, e.g. SEM_MAP('..', model='m'); owned */
    int distinct;              /* COUNT(DISTINCT x) */
    int lit_bool;              /* LITERAL written TRUE or FALSE (lit is INT 1 / 0) */
    ss_span_t op_span;         /* BINARY: where the operator is (len 0 when unknown) */
    ss_coltype_t cast_type;    /* CAST target */
    int cast_typmod;           /* CAST target's NUMERIC(p,s) (ss_typmod_make), -1 if none */
    char *num_text;            /* numeric literal as written (exact NUMERIC conversion); owned or NULL */
    ss_ast_select_t *sub;      /* SUBQUERY, EXISTS, IN_SELECT: the query; owned */
    int norder;                /* FUNC: ORDER BY inside the call, string_agg(x, ',' ORDER BY y) */
    ss_ast_order_t *order;     /* owned array */
    ss_ast_expr_t *filter;     /* FUNC: aggregate FILTER (WHERE ..); owned or NULL */
    ss_ast_window_t *over;     /* FUNC: window function OVER (...); owned or NULL */
};

/* A window: OVER ([PARTITION BY exprs] [ORDER BY exprs]). */
struct ss_ast_window {
    ss_span_t span;            /* of OVER */
    ss_ast_expr_list_t *partition; /* owned or NULL */
    int norder;
    ss_ast_order_t *order;     /* owned array */
};

/* ---- queries ---- */
typedef struct ss_ast_select_item {
    ss_ast_expr_t *expr; /* owned; SS_AX_STAR for '*' */
    char *alias;         /* owned, or NULL */
    ss_span_t span;
} ss_ast_select_item_t;

typedef enum ss_ast_from_kind {
    SS_FROM_TABLE,    /* name [AS alias] */
    SS_FROM_JOIN,     /* left [INNER|LEFT|RIGHT|FULL|CROSS] JOIN right [ON on | USING (cols)] */
    SS_FROM_SEM_JOIN, /* left SEM_JOIN right ON 'tmpl' [WITH (...)] */
    SS_FROM_SUBQUERY, /* (SELECT ...) [AS alias] */
    SS_FROM_SEM_SIM_JOIN, /* left SEM_SIM_JOIN right ON 'tmpl' LIMIT k [WITH (...)] */
    SS_FROM_SEM_SEARCH,   /* SEM_SEARCH(name, 'query' (in tmpl), k [, opts]) [AS alias] */
} ss_ast_from_kind_t;

/* INNER and LEFT are what the join operator runs; the others are planned from them
 * (RIGHT: LEFT with the sides swapped; FULL: LEFT plus the unmatched right rows;
 * CROSS: INNER without keys). SEMI/ANTI are the planner's subquery joins. */
typedef enum ss_join_type {
    SS_JOIN_INNER = 0, SS_JOIN_LEFT, SS_JOIN_RIGHT, SS_JOIN_FULL, SS_JOIN_CROSS,
} ss_join_type_t;

typedef struct ss_ast_from {
    ss_ast_from_kind_t kind;
    ss_span_t span;
    char *name;                 /* TABLE: stream or view name; owned */
    char *alias;                /* TABLE: alias or NULL; owned */
    struct ss_ast_from *left;   /* JOIN/SEM_JOIN; owned */
    struct ss_ast_from *right;  /* JOIN/SEM_JOIN; owned */
    ss_join_type_t join_type;   /* JOIN */
    ss_ast_expr_t *on;          /* JOIN condition; owned */
    char *tmpl;                 /* SEM_JOIN template; owned */
    ss_span_t tmpl_span;
    ss_ast_options_t *opts;     /* SEM_JOIN WITH (join_candidates=k, threshold=x); owned */
    int nusing;                 /* JOIN ... USING (a, b): the column names; owned */
    char **using_cols;
    ss_span_t *using_spans;     /* owned */
    int natural;                /* NATURAL JOIN: USING every column name both sides have */
    int comma;                  /* CROSS JOIN written as FROM a, b */
    ss_ast_select_t *sub;       /* SUBQUERY; owned */
    int64_t k;                  /* SEM_SIM_JOIN, SEM_SEARCH: LIMIT k */
} ss_ast_from_t;

struct ss_ast_order {
    ss_ast_expr_t *expr; /* owned; may be SS_AX_SEM with SEM_RANK/SEM_SCORE */
    int desc;
};

/* Set operations of a compound SELECT (PostgreSQL semantics: INTERSECT binds tighter). */
typedef enum ss_setop {
    SS_SETOP_NONE = 0,
    SS_SETOP_UNION, SS_SETOP_UNION_ALL,
    SS_SETOP_EXCEPT, SS_SETOP_EXCEPT_ALL,
    SS_SETOP_INTERSECT, SS_SETOP_INTERSECT_ALL,
} ss_setop_t;

/* WITH name [(col, ...)] AS (query) */
typedef struct ss_ast_cte {
    char *name;              /* owned */
    ss_span_t span;
    int ncols;
    char **cols;             /* optional column names; owned */
    ss_ast_select_t *select; /* owned */
} ss_ast_cte_t;

struct ss_ast_select {
    ss_span_t span;
    int ncte;
    ss_ast_cte_t *ctes;            /* WITH list; owned array */
    ss_setop_t setop;              /* != NONE: a compound `left setop right`; the fields from
                                      distinct to having are unused, ORDER BY/LIMIT/OFFSET apply
                                      to the compound's result */
    ss_ast_select_t *left, *right; /* compound operands; owned */
    int distinct;
    int nitems;
    ss_ast_select_item_t *items;   /* owned array */
    ss_ast_from_t *from;           /* owned; NULL if no FROM */
    ss_ast_expr_t *where;          /* owned or NULL */
    ss_ast_expr_list_t *group_by;  /* owned or NULL */
    ss_ast_expr_t *having;         /* owned or NULL */
    int norder;
    ss_ast_order_t *order;         /* owned array */
    int64_t limit;                 /* -1 if none */
    int64_t offset;                /* 0 if none */
};

/* LLM_GENERATE(PROMPT=.., CONTEXT=STREAM(c), DATA_SOURCE=STREAM(d), KEY=col, RETRIEVE=k, MAINTAIN=..) */
typedef struct ss_ast_generate {
    ss_span_t span;
    char *prompt;          /* owned (quotes removed; "..." and '...' both accepted) */
    char *context_stream;  /* owned */
    char *data_stream;     /* owned; NULL if absent */
    ss_ast_options_t *opts;/* every other option (key, retrieve, maintain, model, ...); owned */
} ss_ast_generate_t;

typedef enum ss_ast_query_kind { SS_Q_SELECT, SS_Q_GENERATE } ss_ast_query_kind_t;

typedef struct ss_ast_query {
    ss_ast_query_kind_t kind;
    ss_span_t span;
    ss_ast_select_t *select;     /* SELECT; owned */
    ss_ast_generate_t *generate; /* GENERATE; owned */
} ss_ast_query_t;

/* ---- statements ---- */
typedef enum ss_ast_stmt_kind {
    SS_STMT_CREATE_STREAM, /* name, cols, opts, if_not_exists */
    SS_STMT_CREATE_VIEW,   /* name, opts, query, if_not_exists */
    SS_STMT_CREATE_MODEL,  /* name, opts */
    SS_STMT_SET,           /* name = set_value */
    SS_STMT_DROP,          /* object, name, if_exists */
    SS_STMT_SHOW,          /* object */
    SS_STMT_SELECT,        /* query (snapshot read of a view) */
    SS_STMT_SUBSCRIBE,     /* name, opts (limit, timeout_ms, snapshot) */
    SS_STMT_EXPLAIN,       /* name (EXPLAIN [VIEW] name) or query */
    SS_STMT_INSERT,        /* name, insert_cols (may be NULL), rows */
    SS_STMT_DELETE,        /* name, where */
} ss_ast_stmt_kind_t;

typedef enum ss_ast_object { SS_OBJ_STREAM, SS_OBJ_VIEW, SS_OBJ_MODEL } ss_ast_object_t;

typedef struct ss_ast_coldef {
    char *name;       /* owned */
    ss_coltype_t type;
    int typmod;       /* NUMERIC(p,s) as ss_typmod_make(p, s), -1 if none */
    int is_key;
    ss_span_t span;
} ss_ast_coldef_t;

typedef struct ss_ast_stmt {
    ss_ast_stmt_kind_t kind;
    ss_span_t span;          /* the whole statement */
    char *text;              /* owned: the statement's source text (catalog stores it) */
    char *name;              /* owned */
    ss_span_t name_span;
    int if_exists, if_not_exists;
    int ncols;
    ss_ast_coldef_t *cols;   /* CREATE STREAM; owned array */
    ss_ast_options_t *opts;  /* WITH (...); owned or NULL */
    ss_ast_query_t *query;   /* CREATE VIEW / SELECT / EXPLAIN <query>; owned */
    ss_ast_object_t object;  /* DROP / SHOW */
    ss_value_t set_value;    /* SET (text owned) */
    int ninsert_cols;
    char **insert_cols;      /* INSERT column list; owned; NULL = all columns in order */
    int nrows;
    ss_ast_expr_list_t **rows; /* INSERT VALUES rows; owned */
    ss_ast_expr_t *where;    /* DELETE; owned */
} ss_ast_stmt_t;

typedef struct ss_ast_script {
    int n, cap;
    ss_ast_stmt_t **stmts; /* owned */
} ss_ast_script_t;

/* Parses a whole script (one or more statements separated by ';').
 * On error returns SS_ERR_PARSE/SS_ERR_NOMEM, *out is NULL, and err holds
 *   "line:col: syntax error near \"tok\": expected one of ..." (or similar).
 * `name` (e.g. a file name, or NULL) prefixes the message when given. */
int ss_parse(const char *sql, size_t len, const char *name, ss_ast_script_t **out,
             char *err, size_t errsz);

void ss_ast_script_free(ss_ast_script_t *s);
void ss_ast_stmt_free(ss_ast_stmt_t *s);
void ss_ast_query_free(ss_ast_query_t *q);
void ss_ast_expr_free(ss_ast_expr_t *e);
void ss_ast_options_free(ss_ast_options_t *o);
/* Looks up an option by (case-insensitive) name; NULL if absent. */
const ss_ast_option_t *ss_ast_option_get(const ss_ast_options_t *o, const char *name);
/* Appends a readable SQL rendering of an expression (for EXPLAIN). */
int ss_ast_expr_to_sql(const ss_ast_expr_t *e, ss_buf_t *out);
const char *ss_ast_op_name(ss_ast_op_t op);
const char *ss_sem_kind_name(ss_sem_kind_t k);
/* A SQL type name (INT, VARCHAR, NUMERIC, JSON, ...) as a column type; -1 when unknown. */
int ss_type_from_name(const char *name);
/* The SQL spelling of a type with its typmod: "NUMERIC(10,2)", "DOUBLE PRECISION", "JSON". */
int ss_type_to_sql(ss_coltype_t t, int typmod, ss_buf_t *out);
void ss_ast_select_free(ss_ast_select_t *s);
const char *ss_setop_name(ss_setop_t op); /* "UNION ALL", ... */

/* Template helpers: a template is text with {col} or {alias.col} references.
 * ss_template_refs lists the references in order (each "col" or "alias.col",
 * owned by the caller: free each and the array); returns count or -1 on a
 * malformed template (unbalanced braces), with err describing the position. */
int ss_template_refs(const char *tmpl, char ***refs, char *err, size_t errsz);

/* Added by the parser helper: appends a canonical SQL rendering of a query or
 * a whole statement (keywords upper-case, names quoted only when needed); the
 * result parses back to the same tree. Used by EXPLAIN and the golden tests. */
int ss_ast_query_to_sql(const ss_ast_query_t *q, ss_buf_t *out);
int ss_ast_stmt_to_sql(const ss_ast_stmt_t *s, ss_buf_t *out);

#endif
