/*
 * base.c — implements ss_base.h: error strings and buffers, ss_buf, string
 * helpers, stable hashing, stderr logging and clocks.
 */
#include "ss_base.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

static const char *err_names[SS_ERR__COUNT] = {
    "ok", "out of memory", "I/O error", "syntax error", "semantic error", "not found",
    "already exists", "invalid input", "unsupported", "SQLite error", "Kafka error",
    "model error", "CUDA error", "HTTP error", "timeout", "busy", "internal error", "pending",
    "canceled", "permission denied",
};

const char *ss_err2str(ss_err_t e)
{
    if ((int)e < 0 || e >= SS_ERR__COUNT)
        return "unknown error";
    return err_names[e];
}

ss_err_t ss_seterr(char *err, size_t errsz, ss_err_t code, const char *fmt, ...)
{
    if (err && errsz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return code;
}

void ss_errprefix(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || !errsz)
        return;
    char pre[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char *old = ss_strdup(err);
    snprintf(err, errsz, "%s: %s", pre, old ? old : "");
    free(old);
}

int ss_buf_reserve(ss_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return SS_OK;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < b->len + extra + 1)
        ncap *= 2;
    char *p = realloc(b->data, ncap);
    if (!p)
        return SS_ERR_NOMEM;
    b->data = p;
    b->cap = ncap;
    return SS_OK;
}

int ss_buf_append(ss_buf_t *b, const void *p, size_t n)
{
    if (ss_buf_reserve(b, n))
        return SS_ERR_NOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return SS_OK;
}

int ss_buf_puts(ss_buf_t *b, const char *s) { return ss_buf_append(b, s, strlen(s)); }
int ss_buf_putc(ss_buf_t *b, char c) { return ss_buf_append(b, &c, 1); }

int ss_buf_vprintf(ss_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return SS_ERR_INVALID;
    if (ss_buf_reserve(b, (size_t)n))
        return SS_ERR_NOMEM;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return SS_OK;
}

int ss_buf_printf(ss_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ss_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* JSON escape of one byte that needs it (quote, backslash, control) into e; returns its length. */
static size_t json_escape(unsigned char c, char *e)
{
    static const char hex[] = "0123456789abcdef";
    e[0] = '\\';
    switch (c) {
    case '"': e[1] = '"'; return 2;
    case '\\': e[1] = '\\'; return 2;
    case '\n': e[1] = 'n'; return 2;
    case '\r': e[1] = 'r'; return 2;
    case '\t': e[1] = 't'; return 2;
    case '\b': e[1] = 'b'; return 2;
    case '\f': e[1] = 'f'; return 2;
    default:
        memcpy(e + 1, "u00", 3);
        e[4] = hex[c >> 4];
        e[5] = hex[c & 15];
        return 6;
    }
}

/* Appends runs of bytes that need no escaping with one copy each. */
int ss_buf_put_json_str(ss_buf_t *b, const char *s, size_t n)
{
    if (ss_buf_reserve(b, n + 2))
        return SS_ERR_NOMEM;
    b->data[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        char e[6];
        size_t k = json_escape(c, e);
        if (ss_buf_append(b, s + run, i - run) || ss_buf_append(b, e, k))
            return SS_ERR_NOMEM;
        run = i + 1;
    }
    if (ss_buf_reserve(b, n - run + 1))
        return SS_ERR_NOMEM;
    memcpy(b->data + b->len, s + run, n - run);
    b->len += n - run;
    b->data[b->len++] = '"';
    b->data[b->len] = 0;
    return SS_OK;
}

int ss_buf_put_i64(ss_buf_t *b, int64_t v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return ss_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

void ss_buf_reset(ss_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

void ss_buf_free(ss_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *ss_buf_take(ss_buf_t *b)
{
    char *p = b->data ? b->data : calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

const char *ss_buf_cstr(const ss_buf_t *b) { return b->data ? b->data : ""; }

char *ss_strdup(const char *s) { return s ? strdup(s) : NULL; }

char *ss_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *ss_sprintf(const char *fmt, ...)
{
    ss_buf_t b = SS_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    int rc = ss_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc) {
        ss_buf_free(&b);
        return NULL;
    }
    return ss_buf_take(&b);
}

/* Optimal-string-alignment distance (edits and adjacent transpositions), ASCII case-insensitive. */
static int edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    int d[65][65];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int v = SS_MIN(d[i - 1][j - 1] + (ca != cb), SS_MIN(d[i - 1][j] + 1, d[i][j - 1] + 1));
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) && tolower((unsigned char)a[i - 2]) == cb)
                v = SS_MIN(v, d[i - 2][j - 2] + 1);
            d[i][j] = v;
        }
    return d[la][lb];
}

const char *ss_suggest(const char *s, const char *const *cands, int ncands)
{
    const char *best = NULL;
    int bestd = 99, limit = SS_MAX(1, (int)strlen(s) / 3);
    for (int i = 0; i < ncands; i++) {
        if (!cands[i])
            continue;
        int d = edit_distance(s, cands[i]);
        if (d < bestd && d <= limit) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}

int ss_strcaseeq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    while (*a && *b) {
        if (*a != *b && tolower((unsigned char)*a) != tolower((unsigned char)*b)) /* same bytes: no lookup */
            return 0;
        a++, b++;
    }
    return *a == *b;
}

/* 64-bit hash: a simple, stable multiply-rotate mix over 8-byte words
 * (wyhash-like constants). Stable across runs: used in persistent cache keys. */
static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

uint64_t ss_hash64(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (n + 1));
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)s[i] << (8 * i);
    return mix64(h ^ w ^ ((uint64_t)n << 56));
}

uint64_t ss_hash_combine(uint64_t a, uint64_t b) { return mix64(a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2))); }

void ss_hash_hex128(const void *p, size_t n, char out[33])
{
    uint64_t a = ss_hash64(p, n, 0x1234567887654321ULL);
    uint64_t b = ss_hash64(p, n, 0x0fedcba987654321ULL);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

static int log_level = -1;

ss_log_level_t ss_log_get_level(void)
{
    if (log_level < 0) {
        const char *e = getenv("SEMSTREAM_LOG");
        log_level = SS_LOG_WARN;
        if (e) {
            if (!strcmp(e, "error")) log_level = SS_LOG_ERROR;
            else if (!strcmp(e, "info")) log_level = SS_LOG_INFO;
            else if (!strcmp(e, "debug")) log_level = SS_LOG_DEBUG;
        }
    }
    return (ss_log_level_t)log_level;
}

void ss_log_set_level(ss_log_level_t lvl) { log_level = (int)lvl; }

void ss_log(ss_log_level_t lvl, const char *module, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if ((int)lvl > (int)ss_log_get_level())
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "semstream[%s] %s: %s\n", names[lvl], module, msg);
}

int64_t ss_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void ss_deadline(struct timespec *ts, clockid_t clock, int64_t ms)
{
    clock_gettime(clock, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int64_t ss_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

const char *ss_default_model(void)
{
    const char *e = getenv("SEMSTREAM_MODEL");
    if (e && *e)
        return e;
    static const char *cands[] = {"../shared/models/stories260K.gguf", "../../shared/models/stories260K.gguf",
                                  "shared/models/stories260K.gguf"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (access(cands[i], R_OK) == 0)
            return cands[i];
    return cands[0];
}

/* "30 s", "5 minutes", "1 hour", "2 days", "1.5h", "250 ms", "1 week"; bare numbers are seconds. */
int ss_parse_duration(const char *s, int64_t *ms)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\'' || *s == '"')
        s++;
    double x = strtod(s, &end);
    if (end == s || x < 0 || !isfinite(x))
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    char unit[16] = {0};
    size_t n = 0;
    while (isalpha((unsigned char)*end) && n < sizeof unit - 1)
        unit[n++] = (char)tolower((unsigned char)*end++);
    while (isspace((unsigned char)*end) || *end == '\'' || *end == '"')
        end++;
    if (*end)
        return -1;
    static const struct { const char *u; double ms; } units[] = {
        {"", 1000}, {"ms", 1}, {"msec", 1}, {"millisecond", 1}, {"milliseconds", 1},
        {"s", 1000}, {"sec", 1000}, {"secs", 1000}, {"second", 1000}, {"seconds", 1000},
        {"m", 60000}, {"min", 60000}, {"mins", 60000}, {"minute", 60000}, {"minutes", 60000},
        {"h", 3600000}, {"hr", 3600000}, {"hrs", 3600000}, {"hour", 3600000}, {"hours", 3600000},
        {"d", 86400000}, {"day", 86400000}, {"days", 86400000},
        {"w", 604800000}, {"week", 604800000}, {"weeks", 604800000},
    };
    for (size_t i = 0; i < SS_ARRAY_LEN(units); i++)
        if (strcmp(unit, units[i].u) == 0) {
            *ms = (int64_t)llround(x * units[i].ms);
            return 0;
        }
    return -1;
}
