/*
 * pgwire_int.h — internals shared by the pgwire_*.c files (see pgwire.h for the
 * file list): the SQL lexer, session-level commands, the catalog database.
 */
#ifndef SS_PGWIRE_INT_H
#define SS_PGWIRE_INT_H

#include "pgwire.h"

#include <sqlite3.h>
#include <strings.h>

/* ---- lexer (pgwire_sql.c) ---- */
typedef enum pg_tok_kind { PG_TOK_IDENT, PG_TOK_QIDENT, PG_TOK_STRING, PG_TOK_NUMBER, PG_TOK_PARAM, PG_TOK_OP } pg_tok_kind_t;
typedef struct pg_tok {
    pg_tok_kind_t kind;
    size_t start, len; /* bytes of the SQL text */
} pg_tok_t;
/* Tokens of s[0..n) into toks (at most max); returns how many there are (may exceed max). */
int pg_lex(const char *s, size_t n, pg_tok_t *toks, int max);
int pg_tok_is(const char *s, const pg_tok_t *t, const char *word); /* an identifier, any case */
char *pg_tok_name(const char *s, const pg_tok_t *t);   /* identifier (lower-cased unless quoted); malloc'd */
char *pg_tok_string(const char *s, const pg_tok_t *t); /* a string literal's value (else the name); malloc'd */
int64_t pg_interval_ms(const char *v);                 /* '1s', '250ms', '2 min', 100; -1 if invalid */
int pg_session_param(const char *name);                /* a setting the session keeps (not the engine's) */
/* Statement boundaries of a simple query (top-level ';'): *starts, *ends malloc'd; returns the
 * number of statements (-1 out of memory). A trailing piece of blanks or comments is none. */
int pg_split(const char *sql, size_t n, size_t **starts, size_t **ends);

/* ---- session-level commands (pgwire_sql.c) ---- */
typedef enum pg_cmd_kind {
    PG_CMD_ENGINE,     /* semstream SQL: the engine runs it */
    PG_CMD_EMPTY,
    PG_CMD_BEGIN, PG_CMD_COMMIT, PG_CMD_ROLLBACK,
    PG_CMD_SET, PG_CMD_RESET, PG_CMD_SHOW, PG_CMD_DISCARD, PG_CMD_DEALLOCATE,
    PG_CMD_COPY,       /* COPY (inner) TO STDOUT */
    PG_CMD_DECLARE,    /* DECLARE name CURSOR FOR inner */
    PG_CMD_FETCH, PG_CMD_CLOSE,
    PG_CMD_SUBSCRIBE,  /* SUBSCRIBE v ... (streamed as rows) */
    PG_CMD_CATALOG,    /* reads pg_catalog / information_schema or asks version() and the like */
    PG_CMD_IGNORE,     /* LISTEN/UNLISTEN/NOTIFY: accepted, nothing happens */
    PG_CMD_ERROR,      /* malformed session command: msg, err_at */
} pg_cmd_kind_t;

typedef struct pg_cmd {
    pg_cmd_kind_t kind;
    char name[128];          /* SET/SHOW/RESET setting; DECLARE/FETCH/CLOSE cursor; DEALLOCATE */
    char value[512];         /* SET value */
    size_t inner_at, inner_len; /* COPY/DECLARE: the inner query */
    int csv, header;         /* COPY options */
    int64_t count;           /* FETCH: rows (-1 = ALL) */
    int64_t timeout_ms;      /* FETCH WITH (timeout): -1 = wait for at least one row */
    char msg[256];           /* PG_CMD_ERROR */
    int err_at;
} pg_cmd_t;
int pg_classify(const char *s, size_t n, pg_cmd_t *out);

/* ---- the catalog database (pgwire_catalog.c) ---- */
/* Runs a query of pg_catalog / information_schema against a database built from the engine's
 * streams and views, with the session's settings for current_setting() and SHOW. Results go to
 * rs (as the engine's do). The query may read only the catalog tables and call only listed
 * functions; it is stopped after timeout_ms. */
typedef struct pg_settings pg_settings_t;
int pg_catalog_query(ss_engine_t *e, const pg_settings_t *set, const char *sql, const ss_engine_rs_t *rs,
                     int timeout_ms, volatile sig_atomic_t *cancel, char *err, size_t errsz);

/* Session settings (pgwire.c): name -> value, in order of first SET. */
struct pg_settings {
    int n;
    char *names[64], *values[64];
    const char *user, *database;
};
const char *pg_setting_get(const pg_settings_t *s, const char *name); /* NULL if unknown */

/* ---- a session (pgwire.c: protocol; pgwire_exec.c: statements) ---- */
typedef struct pg_col {
    char *name;
    uint32_t oid;
    int32_t typmod;
    ss_coltype_t t;
} pg_col_t;

/* Rows kept for a portal or a cursor. */
typedef struct pg_result {
    int ncols;
    pg_col_t *cols;          /* owned */
    int has_cols;            /* the statement returns rows (else NoData) */
    char **cells;            /* owned: nrows * ncols, NULL = SQL NULL */
    int64_t nrows, cap, at;  /* at: the next row to send */
    char tag[64];
} pg_result_t;
void pg_result_clear(pg_result_t *r);
int pg_result_set_cols(pg_result_t *r, int n, const char *const *names, const ss_coltype_t *types);
int pg_result_add(pg_result_t *r, int n, const char *const *cells);

typedef struct pg_stmt {
    char *name, *sql;        /* owned */
    int nparams;
    uint32_t *types;         /* owned: nparams (0 = unspecified) */
    struct pg_stmt *next;
} pg_stmt_t;

typedef struct pg_portal {
    char *name;              /* owned */
    char *sql;               /* owned: parameters substituted */
    int *map;                /* owned: byte of sql -> byte of the statement's text */
    char *orig;              /* owned: the statement's text (error positions) */
    int16_t *fmts;           /* owned: result formats */
    int nfmts;
    int direct;              /* SUBSCRIBE, COPY, FETCH: streamed at Execute, never buffered */
    int ran;                 /* buffered: res holds the rows */
    pg_result_t res;
    struct pg_portal *next;
} pg_portal_t;

typedef struct pg_cursor {
    char *name;              /* owned */
    ss_engine_sub_t *sub;    /* SUBSCRIBE cursors; NULL for a SELECT's rows */
    int nv;                  /* SUBSCRIBE: the view's columns */
    char **vnames;
    ss_coltype_t *vtypes;
    pg_result_t res;         /* SELECT: its rows; SUBSCRIBE: rows arrived, not fetched yet */
    struct pg_cursor *next;
} pg_cursor_t;

typedef struct pg_sess {
    const pg_session_env_t *env;
    int fd;
    char peer[64];
    ss_buf_t out;            /* backend messages not written yet */
    pg_role_t role;
    char txn;                /* 'I' idle, 'T' in a transaction block, 'E' failed block */
    pg_stmt_t *stmts;
    pg_portal_t *portals;
    pg_cursor_t *cursors;
    pg_settings_t set;
    volatile sig_atomic_t cancel;
    int32_t key;
    int dead;                /* the connection is gone or broken */
    int timeout_ms;          /* statement time limit in effect */
} pg_sess_t;

/* What went wrong with a statement: the engine's code and text, where (a byte offset of
 * the client's text, -1 = nowhere in particular), and its SQLSTATE. */
typedef struct pg_errinfo {
    int code;
    char msg[SS_ERRSZ];
    int pos;
    const char *sqlstate;    /* NULL: from code and msg */
} pg_errinfo_t;

/* pgwire.c: backend messages */
int pg_flush(pg_sess_t *s);
int pg_maybe_flush(pg_sess_t *s); /* flushes past 64 KiB */
void pg_send_rowdesc(pg_sess_t *s, const pg_col_t *cols, int n, const int16_t *fmts, int nfmts);
int pg_send_datarow(pg_sess_t *s, const pg_col_t *cols, int n, const char *const *cells, const int16_t *fmts,
                    int nfmts);
void pg_send_complete(pg_sess_t *s, const char *tag);
void pg_send_notice(pg_sess_t *s, const char *sqlstate, const char *msg);
void pg_send_param_status(pg_sess_t *s, const char *name, const char *value);
/* 1 when the client closed its end (polled without waiting). */
int pg_client_gone(pg_sess_t *s);

#define PG_EMPTY_STATEMENT 1000 /* pg_exec_one: the statement was empty (only comments) */

/* pgwire.c: session state used by statements */
int pg_deallocate(pg_sess_t *s, const char *name);           /* "all" drops every statement */
void pg_settings_reset(pg_sess_t *s, const char *name);      /* NULL: every setting */
void pg_settings_set(pg_sess_t *s, const char *name, const char *value);

/* pgwire_exec.c: one statement of the client's text, already split. sql[0..len) (NUL-terminated
 * at len) is at byte base of the text the client sent, or maps through map when parameters were
 * substituted. rs receives the results (RowDescription when the sink sends it, rows, tag). */
int pg_exec_one(pg_sess_t *s, const char *sql, size_t len, const ss_engine_rs_t *rs, int extended,
                pg_errinfo_t *ei);
/* Result sinks: straight to the wire (send_desc: RowDescription first, as the simple protocol
 * does; fmts: result formats), or into a pg_result_t. */
typedef struct pg_wire_sink {
    ss_engine_rs_t rs;
    pg_sess_t *s;
    int send_desc;
    const int16_t *fmts;
    int nfmts;
    pg_result_t cols;        /* columns of the running statement */
    int64_t rows;
} pg_wire_sink_t;
void pg_wire_sink_init(pg_wire_sink_t *w, pg_sess_t *s, int send_desc, const int16_t *fmts, int nfmts);
void pg_wire_sink_free(pg_wire_sink_t *w);
typedef struct pg_collect_sink {
    ss_engine_rs_t rs;
    pg_result_t *res;
} pg_collect_sink_t;
void pg_collect_sink_init(pg_collect_sink_t *c, pg_result_t *res);
/* The columns a statement would return, without running it (Describe): SELECT planned only,
 * SHOW/EXPLAIN/catalog run, SUBSCRIBE/FETCH from the view or cursor; has_cols 0 for the rest. */
int pg_describe(pg_sess_t *s, const char *sql, pg_result_t *res, pg_errinfo_t *ei);
/* Whether the statement streams at Execute (SUBSCRIBE, COPY, FETCH of a SUBSCRIBE cursor). */
int pg_is_direct(pg_sess_t *s, const char *sql);
void pg_cursor_close_all(pg_sess_t *s);

#endif
