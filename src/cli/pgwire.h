/*
 * pgwire.h — semstream's PostgreSQL frontend/backend protocol (version 3.0), so
 * that psql, libpq, JDBC, node-postgres and BI tools reach `semstream serve`.
 *
 * Files:
 *   pgwire_msg.c     message framing and decoding: pure functions over bytes (the
 *                    fuzz target), and the encoders of backend messages
 *   pgwire.c         one session: startup, authentication, the simple and extended
 *                    query protocols, COPY out, cursors, errors with SQLSTATE codes
 *   pgwire_sql.c     what the session does with SQL before the engine: statement
 *                    splitting, $n parameters, BEGIN/COMMIT, SET/SHOW of session
 *                    settings, COPY (...) TO STDOUT, DECLARE/FETCH/CLOSE, SQLSTATEs
 *   pgwire_catalog.c pg_catalog and information_schema for psql's \d and drivers:
 *                    an in-memory SQLite database built from the engine's catalog,
 *                    queried under a whitelist (no file, no engine table)
 *   pgwire_scram.c   SCRAM-SHA-256 (RFC 5802/7677) with OpenSSL's libcrypto
 *   pgwire_server.c  the listener: a thread per connection, limits per server and
 *                    per client address, idle and I/O timeouts, cancel requests
 */
#ifndef SS_PGWIRE_H
#define SS_PGWIRE_H

#include "ss_base.h"
#include "ss_engine.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* ---- type OIDs (pg_type) ---- */
#define PG_OID_BOOL 16
#define PG_OID_BYTEA 17
#define PG_OID_CHAR 18
#define PG_OID_NAME 19
#define PG_OID_INT8 20
#define PG_OID_INT2 21
#define PG_OID_INT4 23
#define PG_OID_REGPROC 24
#define PG_OID_TEXT 25
#define PG_OID_OID 26
#define PG_OID_JSON 114
#define PG_OID_FLOAT4 700
#define PG_OID_FLOAT8 701
#define PG_OID_UNKNOWN 705
#define PG_OID_VARCHAR 1043
#define PG_OID_NUMERIC 1700
#define PG_OID_REGCLASS 2205
#define PG_OID_REGTYPE 2206
#define PG_OID_JSONB 3802

/* The PostgreSQL type of a semstream column type, and its typmod (-1 = none). */
uint32_t pg_type_oid(ss_coltype_t t);
int32_t pg_typmod(ss_coltype_t t, int ss_typmod);
int16_t pg_type_len(uint32_t oid); /* pg_type.typlen: -1 variable */

/* ---- decoding frontend messages (pgwire_msg.c): pure, bounds-checked ----
 * Every decoder reads body[0..n) (the message after its type byte and length) and
 * returns SS_OK or SS_ERR_INVALID with err naming what is malformed. Strings point
 * into body (NUL-terminated there); arrays are malloc'd (free with the _free call). */
typedef enum pg_startup_kind { PG_START_STARTUP, PG_START_SSL, PG_START_GSSENC, PG_START_CANCEL } pg_startup_kind_t;

#define PG_MAX_STARTUP 10000 /* bytes of a startup packet (as PostgreSQL) */
#define PG_MAX_PARAMS 65535  /* parameters of a statement */

typedef struct pg_startup {
    pg_startup_kind_t kind;
    uint32_t version;       /* 196608 = 3.0 */
    const char *user, *database, *application_name, *options;
    int npairs;
    const char *keys[64], *values[64]; /* every startup parameter, in order */
    int32_t cancel_pid, cancel_key;
} pg_startup_t;
int pg_decode_startup(const uint8_t *body, size_t n, pg_startup_t *out, char *err, size_t errsz);

typedef struct pg_parse_msg {
    const char *name, *query;
    int nparams;
    uint32_t *types; /* owned */
} pg_parse_msg_t;
int pg_decode_parse(const uint8_t *body, size_t n, pg_parse_msg_t *out, char *err, size_t errsz);
void pg_parse_msg_free(pg_parse_msg_t *m);

typedef struct pg_bind_msg {
    const char *portal, *stmt;
    int nfmts;
    int16_t *fmts;           /* owned: parameter format codes (0 text, 1 binary) */
    int nparams;
    const uint8_t **vals;    /* owned array; values point into body; NULL = SQL NULL */
    int32_t *lens;           /* owned */
    int nrfmts;
    int16_t *rfmts;          /* owned: result format codes */
} pg_bind_msg_t;
int pg_decode_bind(const uint8_t *body, size_t n, pg_bind_msg_t *out, char *err, size_t errsz);
void pg_bind_msg_free(pg_bind_msg_t *m);

/* Describe ('D') and Close ('C'): which ('S' statement or 'P' portal) and the name. */
int pg_decode_target(const uint8_t *body, size_t n, char *which, const char **name, char *err, size_t errsz);
int pg_decode_execute(const uint8_t *body, size_t n, const char **portal, int32_t *max_rows, char *err,
                      size_t errsz);
int pg_decode_query(const uint8_t *body, size_t n, const char **sql, char *err, size_t errsz);
/* SASLInitialResponse: mechanism and its data (may be empty). */
int pg_decode_sasl_initial(const uint8_t *body, size_t n, const char **mech, const uint8_t **data, size_t *len,
                           char *err, size_t errsz);

/* The value of a bound parameter as SQL text for the engine: a quoted literal, a number,
 * NULL, TRUE/FALSE; binary values (int2/4/8, float4/8, bool, text, numeric) decoded. type 0 or
 * unknown: a string literal (typed by its context, as PostgreSQL's unknown). */
int pg_param_sql(uint32_t type, int format, const uint8_t *val, int32_t len, ss_buf_t *out, char *err,
                 size_t errsz);

/* ---- encoding backend messages (pgwire_msg.c) ---- */
void pg_msg_begin(ss_buf_t *b, char type, size_t *start); /* type byte and a length to patch */
void pg_msg_end(ss_buf_t *b, size_t start);
void pg_put_i16(ss_buf_t *b, int16_t v);
void pg_put_i32(ss_buf_t *b, int32_t v);
void pg_put_cstr(ss_buf_t *b, const char *s);
/* A text cell of a column of type oid in format (0 text, 1 binary). SS_ERR_INVALID when the
 * value cannot be encoded in binary for that type. */
int pg_put_cell(ss_buf_t *b, uint32_t oid, int format, const char *text);

/* ---- SCRAM-SHA-256 (pgwire_scram.c) ---- */
#define PG_SCRAM_ITERATIONS 4096
typedef struct pg_scram_key {
    uint8_t stored[32], server[32];
    int set;
} pg_scram_key_t;
/* Derives a verifier from a password with salt (16 bytes). */
int pg_scram_derive(const char *password, const uint8_t salt[16], int iterations, pg_scram_key_t *out);

typedef struct pg_scram {
    const pg_scram_key_t *keys; /* candidates (one per role), derived with the same salt */
    int nkeys;
    const uint8_t *salt;        /* 16 bytes */
    int iterations;
    char cnonce_snonce[256];
    char *client_first_bare;    /* owned */
    char *server_first;         /* owned */
    int matched;                /* index of the key the proof matched, -1 = none */
} pg_scram_t;
/* client-first-message -> server-first-message (out). */
int pg_scram_first(pg_scram_t *s, const uint8_t *msg, size_t n, ss_buf_t *out, char *err, size_t errsz);
/* client-final-message -> server-final-message (out) when a key matches (s->matched set);
 * SS_ERR_DENIED when the proof matches no key. */
int pg_scram_final(pg_scram_t *s, const uint8_t *msg, size_t n, ss_buf_t *out, char *err, size_t errsz);
void pg_scram_free(pg_scram_t *s);

/* ---- SQL helpers (pgwire_sql.c) ---- */
/* The SQLSTATE of an engine error (code and message). */
const char *pg_sqlstate(int code, const char *msg);
/* Replaces $1..$n outside quotes and comments with params[i] (SQL text). map (may be NULL)
 * gets, per byte of out, the byte offset in sql it came from (for error positions). */
int pg_substitute(const char *sql, int nparams, char *const *params, ss_buf_t *out, int **map, char *err,
                  size_t errsz);
/* The highest $n in sql (outside quotes and comments); 0 if none. */
int pg_max_param(const char *sql);

/* ---- the server (pgwire_server.c) ---- */
typedef enum pg_role { PG_ROLE_NONE = 0, PG_ROLE_READ_ONLY, PG_ROLE_READ_WRITE } pg_role_t;

typedef struct pg_server_opts {
    ss_engine_t *engine;          /* borrowed */
    const char *listen;           /* address to bind ("127.0.0.1") */
    int port;                     /* 0 picks a free port */
    const char *rw_token;         /* password of the read-write role; NULL = none */
    const char *ro_token;         /* password of the read-only role; NULL = none */
    int max_connections;          /* at once (default 256) */
    int max_per_client;           /* from one client address (default 64) */
    int idle_timeout_s;           /* a session idle this long is closed (default 600) */
    int io_timeout_s;             /* a message must arrive, and results be taken, within (default 30) */
    int statement_timeout_ms;     /* SELECT time limit (default 0 = none) */
    size_t max_message;           /* largest frontend message (default 16 MiB) */
    volatile sig_atomic_t *stop;  /* borrowed */
} pg_server_opts_t;

typedef struct pg_server pg_server_t;
/* Binds and starts accepting in a thread of its own. *bound_port gets the real port. */
int pg_server_start(const pg_server_opts_t *o, pg_server_t **out, int *bound_port, char *err, size_t errsz);
/* Stops accepting, ends every session (their threads are joined) and frees. NULL-safe. */
void pg_server_stop(pg_server_t *s);

typedef struct pg_server_stats {
    int64_t connections, refused, auth_failures, queries, canceled, timeouts;
    int open;
} pg_server_stats_t;
void pg_server_get_stats(pg_server_t *s, pg_server_stats_t *out);

/* ---- one session (pgwire.c) over a connected socket ---- */
typedef struct pg_session_env {
    ss_engine_t *engine;
    const pg_scram_key_t *keys;   /* [0] read-write, [1] read-only (either may be unset) */
    const uint8_t *salt;
    int auth_required;            /* 0: everyone is read-write (loopback without tokens) */
    int idle_timeout_s, io_timeout_s, statement_timeout_ms;
    size_t max_message;
    volatile sig_atomic_t *stop;
    /* cancel requests: the server registers the session under (pid, key) */
    void *server;
    void (*register_cancel)(void *server, int32_t pid, int32_t key, volatile sig_atomic_t *flag);
    void (*unregister_cancel)(void *server, int32_t pid);
    int (*cancel)(void *server, int32_t pid, int32_t key); /* 1 if a session was signalled */
    void (*count)(void *server, const char *what);          /* "query", "auth_failure", "timeout" ... */
    int32_t pid;                  /* this session's backend "pid" (unique per server) */
} pg_session_env_t;
/* Serves one connection until the client leaves, a timeout, or env->stop. Closes nothing. */
void pg_session_run(const pg_session_env_t *env, int fd, const char *peer);

#endif
