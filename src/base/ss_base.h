/*
 * ss_base.h — the few things every semstream module uses: the error enum and
 * error-buffer helpers, a growable string buffer, 64-bit hashing, logging and
 * monotonic time. Nothing here allocates behind the caller's back except
 * ss_buf_*, whose memory belongs to the buffer until ss_buf_free/ss_buf_take.
 */
#ifndef SS_BASE_H
#define SS_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Every fallible call returns an ss_err_t (0 = success) and, where it crosses a
 * module boundary, fills a caller-owned `char *err, size_t errsz` with a
 * readable message saying what went wrong and where. */
typedef enum ss_err {
    SS_OK = 0,
    SS_ERR_NOMEM,       /* allocation failed */
    SS_ERR_IO,          /* file or socket I/O */
    SS_ERR_PARSE,       /* SQL syntax error (message carries line:column) */
    SS_ERR_SEMANTIC,    /* SQL is well formed but means nothing (unknown column...) */
    SS_ERR_NOTFOUND,    /* named object does not exist */
    SS_ERR_EXISTS,      /* named object already exists */
    SS_ERR_INVALID,     /* bad argument or bad input data */
    SS_ERR_UNSUPPORTED, /* valid but not implemented by this build/backend */
    SS_ERR_SQLITE,      /* SQLite failed; message keeps sqlite3_errmsg() */
    SS_ERR_KAFKA,       /* librdkafka failed; message keeps rd_kafka_err2str() */
    SS_ERR_MODEL,       /* model file invalid or inference failed */
    SS_ERR_CUDA,        /* CUDA runtime error; message keeps cudaGetErrorString() */
    SS_ERR_HTTP,        /* HTTP transport or protocol error */
    SS_ERR_TIMEOUT,     /* a deadline passed */
    SS_ERR_BUSY,        /* resource temporarily unavailable; retry later */
    SS_ERR_INTERNAL,    /* a bug: an invariant did not hold */
    SS_ERR_PENDING,     /* answers are on their way: abandon the attempt, wait, run again */
    SS_ERR_CANCELED,    /* stopped on request (Ctrl-C, SIGTERM) before it finished */
    SS_ERR_DENIED,      /* not allowed: the client's role or the server's policy forbids it */
    SS_ERR__COUNT
} ss_err_t;

const char *ss_err2str(ss_err_t e);

/* Formats into err (if non-NULL) and returns code, so callers can write
 *   return ss_seterr(err, errsz, SS_ERR_INVALID, "bad %s", what); */
ss_err_t ss_seterr(char *err, size_t errsz, ss_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefixes an existing message in err with "fmt: " (for adding context). */
void ss_errprefix(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SS_ERRSZ 512

/* ---- growable byte/string buffer; always NUL-terminated when len > 0 ---- */
typedef struct ss_buf {
    char *data;   /* owned; NULL until first append */
    size_t len;
    size_t cap;
} ss_buf_t;

#define SS_BUF_INIT {NULL, 0, 0}
int ss_buf_reserve(ss_buf_t *b, size_t extra);            /* SS_OK or SS_ERR_NOMEM */
int ss_buf_append(ss_buf_t *b, const void *p, size_t n);
int ss_buf_puts(ss_buf_t *b, const char *s);
int ss_buf_putc(ss_buf_t *b, char c);
int ss_buf_printf(ss_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ss_buf_vprintf(ss_buf_t *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal (with quotes and escapes). */
int ss_buf_put_json_str(ss_buf_t *b, const char *s, size_t n);
void ss_buf_reset(ss_buf_t *b);                            /* len = 0, keeps memory */
void ss_buf_free(ss_buf_t *b);
char *ss_buf_take(ss_buf_t *b);  /* returns data (caller frees), leaves b empty; never NULL */
const char *ss_buf_cstr(const ss_buf_t *b); /* "" when empty */

/* ---- strings ---- */
char *ss_strdup(const char *s);                 /* NULL-safe */
char *ss_strndup(const char *s, size_t n);
char *ss_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* malloc'd */
int ss_strcaseeq(const char *a, const char *b); /* 1 if equal ignoring ASCII case */
/* The candidate closest to s (edit distance, ASCII case-insensitive) when it is close enough to be
 * a likely misspelling (at most a third of s's length), else NULL: "did you mean ...?" */
const char *ss_suggest(const char *s, const char *const *cands, int ncands);

/* ---- hashing: 64-bit, stable across runs and machines (used in persistent keys) ---- */
uint64_t ss_hash64(const void *p, size_t n, uint64_t seed);
uint64_t ss_hash_combine(uint64_t a, uint64_t b);
/* 32 lowercase hex digits of a 128-bit digest of p (two independent 64-bit hashes). */
void ss_hash_hex128(const void *p, size_t n, char out[33]);

/* Default model path: $SEMSTREAM_MODEL, else ../shared/models/stories260K.gguf
 * (relative to the working directory, then one and no levels up). */
const char *ss_default_model(void);

/* ---- logging to stderr; level from SEMSTREAM_LOG=error|warn|info|debug ---- */
typedef enum { SS_LOG_ERROR = 0, SS_LOG_WARN, SS_LOG_INFO, SS_LOG_DEBUG } ss_log_level_t;
void ss_log(ss_log_level_t lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ss_log_set_level(ss_log_level_t lvl);
ss_log_level_t ss_log_get_level(void);

/* ---- time ---- */
/* A duration: "30 s", "5 minutes", "1 hour", "2 days", "1.5h", "250 ms", "1 week" (a bare number is
 * seconds; the text may be quoted). 0 and *ms on success, -1 when it is not one. */
int ss_parse_duration(const char *s, int64_t *ms);
int64_t ss_now_ns(void);  /* CLOCK_MONOTONIC */
int64_t ss_wall_ms(void); /* CLOCK_REALTIME, ms since the epoch */
/* The absolute time ms milliseconds from now on clock (CLOCK_REALTIME for a default
 * pthread_cond_timedwait, CLOCK_MONOTONIC for a condition variable set to it). */
void ss_deadline(struct timespec *ts, clockid_t clock, int64_t ms);

#define SS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SS_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Appends v in decimal (what "%lld" prints, without printf). SS_OK or SS_ERR_NOMEM. */
int ss_buf_put_i64(ss_buf_t *b, int64_t v);

#endif
