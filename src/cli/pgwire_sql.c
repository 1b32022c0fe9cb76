/*
 * pgwire_sql.c — what the PostgreSQL endpoint does with SQL text before (or
 * instead of) the engine (pgwire.h, pgwire_int.h):
 *   - a small lexer that knows PostgreSQL's quoting (strings, E'' strings, dollar
 *     quotes, quoted identifiers, comments), so nothing inside quotes is touched;
 *   - $n parameters replaced by SQL literals, with a map back to the original
 *     offsets so errors point where the client wrote the parameter;
 *   - the session-level statements PostgreSQL clients send that are not semstream
 *     SQL: BEGIN/COMMIT/ROLLBACK, SET/RESET/SHOW of session settings, DISCARD,
 *     DEALLOCATE, COPY (query) TO STDOUT, DECLARE/FETCH/CLOSE cursors, and
 *     queries of pg_catalog / information_schema (answered by pgwire_catalog.c);
 *   - the SQLSTATE of an engine error.
 */
#include "pgwire_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lexer ---- */

static int ident_start(int c) { return isalpha(c) || c == '_' || c >= 0x80; }
static int ident_char(int c) { return isalnum(c) || c == '_' || c == '$' || c >= 0x80; }

/* Length of a dollar-quote tag at s ("$$" or "$tag$"), 0 if none. */
static size_t dollar_tag(const char *s, size_t n)
{
    if (n < 2 || s[0] != '$')
        return 0;
    size_t i = 1;
    if (i < n && ident_start((unsigned char)s[i]))
        while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_'))
            i++;
    return i < n && s[i] == '$' ? i + 1 : 0;
}

int pg_lex(const char *s, size_t n, pg_tok_t *toks, int max)
{
    int nt = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t st = i;
        pg_tok_kind_t k;
        if (isspace(c)) {
            i++;
            continue;
        }
        if (c == '-' && i + 1 < n && s[i + 1] == '-') {
            while (i < n && s[i] != '\n')
                i++;
            continue;
        }
        if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            int depth = 0;
            do {
                if (i + 1 < n && s[i] == '/' && s[i + 1] == '*')
                    depth++, i += 2;
                else if (i + 1 < n && s[i] == '*' && s[i + 1] == '/')
                    depth--, i += 2;
                else
                    i++;
            } while (i < n && depth > 0);
            continue;
        }
        if (c == '\'' || ((c == 'E' || c == 'e') && i + 1 < n && s[i + 1] == '\'')) {
            int esc = c != '\'';
            i += esc ? 2 : 1;
            while (i < n) {
                if (esc && s[i] == '\\' && i + 1 < n)
                    i += 2;
                else if (s[i] == '\'' && i + 1 < n && s[i + 1] == '\'')
                    i += 2;
                else if (s[i] == '\'')
                    break;
                else
                    i++;
            }
            i = i < n ? i + 1 : n;
            k = PG_TOK_STRING;
        } else if (c == '"') {
            i++;
            while (i < n && !(s[i] == '"' && !(i + 1 < n && s[i + 1] == '"')))
                i += s[i] == '"' ? 2 : 1;
            i = i < n ? i + 1 : n;
            k = PG_TOK_QIDENT;
        } else if (c == '$' && i + 1 < n && isdigit((unsigned char)s[i + 1])) {
            i++;
            while (i < n && isdigit((unsigned char)s[i]))
                i++;
            k = PG_TOK_PARAM;
        } else if (c == '$' && dollar_tag(s + i, n - i)) {
            size_t tl = dollar_tag(s + i, n - i);
            const char *tag = s + i;
            i += tl;
            while (i < n && !(n - i >= tl && !memcmp(s + i, tag, tl)))
                i++;
            i = i < n ? i + tl : n;
            k = PG_TOK_STRING;
        } else if (ident_start(c)) {
            while (i < n && ident_char((unsigned char)s[i]))
                i++;
            k = PG_TOK_IDENT;
        } else if (isdigit(c) || (c == '.' && i + 1 < n && isdigit((unsigned char)s[i + 1]))) {
            while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '.' ||
                             ((s[i] == '+' || s[i] == '-') && (s[i - 1] == 'e' || s[i - 1] == 'E'))))
                i++;
            k = PG_TOK_NUMBER;
        } else if (c == ':' && i + 1 < n && s[i + 1] == ':') {
            i += 2;
            k = PG_TOK_OP;
        } else {
            /* operators: a run of operator characters (PostgreSQL's rule), else one character */
            static const char opch[] = "+-*/<>=~!@#%^&|`?";
            if (strchr(opch, c)) {
                while (i < n && s[i] && strchr(opch, s[i]) &&
                       !(s[i] == '-' && i + 1 < n && s[i + 1] == '-') &&
                       !(s[i] == '/' && i + 1 < n && s[i + 1] == '*'))
                    i++;
                if (i == st)
                    i++;
            } else {
                i++;
            }
            k = PG_TOK_OP;
        }
        if (nt < max)
            toks[nt] = (pg_tok_t){k, st, i - st};
        nt++;
    }
    return nt;
}

int pg_tok_is(const char *s, const pg_tok_t *t, const char *word)
{
    return t->kind == PG_TOK_IDENT && strlen(word) == t->len && !strncasecmp(s + t->start, word, t->len);
}

char *pg_tok_name(const char *s, const pg_tok_t *t)
{
    if (t->kind == PG_TOK_QIDENT) {
        ss_buf_t b = SS_BUF_INIT;
        for (size_t i = t->start + 1; i + 1 < t->start + t->len; i++) {
            ss_buf_putc(&b, s[i]);
            if (s[i] == '"')
                i++;
        }
        return ss_buf_take(&b);
    }
    char *r = ss_strndup(s + t->start, t->len);
    for (char *p = r; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return r;
}

char *pg_tok_string(const char *s, const pg_tok_t *t)
{
    if (t->kind != PG_TOK_STRING)
        return pg_tok_name(s, t);
    ss_buf_t b = SS_BUF_INIT;
    const char *p = s + t->start, *end = s + t->start + t->len;
    if (*p == '$') {
        size_t tl = dollar_tag(p, (size_t)(end - p));
        ss_buf_append(&b, p + tl, t->len >= 2 * tl ? t->len - 2 * tl : 0);
        return ss_buf_take(&b);
    }
    int esc = *p != '\'';
    p += esc ? 2 : 1;
    for (; p < end - 1; p++) {
        if (*p == '\'' && p[1] == '\'')
            p++;
        else if (esc && *p == '\\' && p + 1 < end - 1) {
            p++;
            char c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'r' ? '\r' : *p;
            ss_buf_putc(&b, c);
            continue;
        }
        ss_buf_putc(&b, *p);
    }
    return ss_buf_take(&b);
}

/* ---- statements of a simple query ---- */

int pg_split(const char *sql, size_t n, size_t **starts, size_t **ends)
{
    int nt = pg_lex(sql, n, NULL, 0);
    pg_tok_t *t = calloc((size_t)nt + 1, sizeof *t);
    *starts = calloc((size_t)nt + 2, sizeof **starts);
    *ends = calloc((size_t)nt + 2, sizeof **ends);
    if (!t || !*starts || !*ends) {
        free(t);
        return -1;
    }
    pg_lex(sql, n, t, nt);
    int ns = 0;
    size_t from = 0;
    for (int i = 0; i <= nt; i++) {
        if (i < nt && !(t[i].kind == PG_TOK_OP && t[i].len == 1 && sql[t[i].start] == ';'))
            continue;
        size_t to = i < nt ? t[i].start + 1 : n;
        (*starts)[ns] = from;
        (*ends)[ns] = to;
        ns++;
        from = to;
    }
    free(t);
    /* a trailing piece with only blanks or comments is no statement */
    if (ns > 1 && pg_lex(sql + (*starts)[ns - 1], (*ends)[ns - 1] - (*starts)[ns - 1], NULL, 0) == 0)
        ns--;
    return ns;
}

/* ---- parameters ---- */

int pg_max_param(const char *sql)
{
    size_t n = strlen(sql);
    int nt = pg_lex(sql, n, NULL, 0);
    pg_tok_t *t = calloc((size_t)nt + 1, sizeof *t);
    if (!t)
        return 0;
    pg_lex(sql, n, t, nt);
    int mx = 0;
    for (int i = 0; i < nt; i++)
        if (t[i].kind == PG_TOK_PARAM) {
            long v = strtol(sql + t[i].start + 1, NULL, 10);
            if (v > mx && v <= PG_MAX_PARAMS)
                mx = (int)v;
        }
    free(t);
    return mx;
}

/* Grows the offset map to cover out's bytes [from, to), each mapped to orig (+ k when step). */
static int map_fill(int **m, size_t *cap, size_t from, size_t to, size_t orig, int step)
{
    if (to + 1 > *cap) {
        size_t nc = (to + 1) * 2 + 64;
        int *nm = realloc(*m, nc * sizeof *nm);
        if (!nm)
            return SS_ERR_NOMEM;
        *m = nm;
        *cap = nc;
    }
    for (size_t k = from; k < to; k++)
        (*m)[k] = (int)(orig + (step ? k - from : 0));
    return SS_OK;
}

int pg_substitute(const char *sql, int nparams, char *const *params, ss_buf_t *out, int **map, char *err,
                  size_t errsz)
{
    size_t n = strlen(sql);
    int nt = pg_lex(sql, n, NULL, 0);
    pg_tok_t *t = calloc((size_t)nt + 1, sizeof *t);
    if (!t)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    pg_lex(sql, n, t, nt);
    int *m = NULL;
    size_t mcap = 0, at = 0;
    int rc = ss_buf_reserve(out, n + 1) ? SS_ERR_NOMEM : SS_OK;
    for (int i = 0; i <= nt && !rc; i++) {
        size_t upto = i < nt ? t[i].start : n, before = out->len;
        ss_buf_append(out, sql + at, upto - at);
        if (map)
            rc = map_fill(&m, &mcap, before, out->len, at, 1);
        at = upto;
        if (rc || i == nt || t[i].kind != PG_TOK_PARAM)
            continue;
        long v = strtol(sql + t[i].start + 1, NULL, 10);
        if (v < 1 || v > nparams) {
            rc = ss_seterr(err, errsz, SS_ERR_INVALID, "there is no parameter $%ld (%d bound)", v, nparams);
            break;
        }
        before = out->len;
        ss_buf_putc(out, ' '); /* spaces keep the literal from joining a neighbouring token */
        ss_buf_puts(out, params[v - 1]);
        ss_buf_putc(out, ' ');
        if (map)
            rc = map_fill(&m, &mcap, before, out->len, t[i].start, 0);
        at = t[i].start + t[i].len;
    }
    free(t);
    if (map && !rc)
        rc = map_fill(&m, &mcap, out->len, out->len + 1, n, 0);
    if (!rc && !out->data)
        rc = SS_ERR_NOMEM;
    if (rc) {
        free(m);
        if (rc == SS_ERR_NOMEM)
            ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        return rc;
    }
    if (map)
        *map = m;
    return SS_OK;
}

/* ---- session-level statements ---- */

/* PostgreSQL settings a session keeps for itself (drivers set and read them). */
static const char *const SESSION_PARAMS[] = {
    "application_name", "client_encoding", "datestyle", "extra_float_digits", "search_path", "timezone",
    "time zone", "statement_timeout", "intervalstyle", "lc_messages", "lc_monetary", "lc_numeric", "lc_time",
    "client_min_messages", "bytea_output", "standard_conforming_strings", "default_transaction_isolation",
    "transaction_isolation", "default_transaction_read_only", "transaction_read_only", "idle_in_transaction_session_timeout",
    "lock_timeout", "jit", "geqo", "server_version", "server_version_num", "server_encoding", "integer_datetimes",
    "is_superuser", "session_authorization", "max_identifier_length", "row_security", "work_mem", "cluster",
    "transaction", "session", "names", "role", NULL};

int pg_session_param(const char *name)
{
    for (int i = 0; SESSION_PARAMS[i]; i++)
        if (ss_strcaseeq(name, SESSION_PARAMS[i]))
            return 1;
    return !strncasecmp(name, "pg_", 3);
}

/* Identifiers that mark a query for the catalog (pgwire_catalog.c) rather than the engine. */
static int catalog_word(const char *s, const pg_tok_t *t, const pg_tok_t *next)
{
    if (t->kind != PG_TOK_IDENT)
        return 0;
    static const char *const words[] = {"pg_catalog", "information_schema", NULL};
    static const char *const funcs[] = {"version", "current_database", "current_schema", "current_schemas",
                                        "current_user", "session_user", "current_setting", "set_config",
                                        "pg_backend_pid", "has_table_privilege", "has_schema_privilege",
                                        "inet_server_addr", "inet_server_port", "obj_description",
                                        "col_description", "format_type", "pg_get_userbyid", "current_catalog",
                                        "current_role", NULL};
    for (int i = 0; words[i]; i++)
        if (pg_tok_is(s, t, words[i]))
            return 1;
    if (t->len > 3 && !strncasecmp(s + t->start, "pg_", 3))
        return 1;
    int call = next && next->kind == PG_TOK_OP && next->len == 1 && s[next->start] == '(';
    for (int i = 0; funcs[i]; i++)
        if (pg_tok_is(s, t, funcs[i]) &&
            (call || !strcmp(funcs[i], "current_user") || !strcmp(funcs[i], "session_user") ||
             !strcmp(funcs[i], "current_catalog") || !strcmp(funcs[i], "current_role")))
            return 1;
    return 0;
}

static int is_op(const char *s, const pg_tok_t *t, const char *op)
{
    return t->kind == PG_TOK_OP && t->len == strlen(op) && !strncmp(s + t->start, op, t->len);
}

/* "(" ... matching ")" from tokens[i] (an open parenthesis); index of the ")" or -1. */
static int close_paren(const char *s, const pg_tok_t *t, int nt, int i)
{
    int depth = 0;
    for (int k = i; k < nt; k++) {
        if (is_op(s, &t[k], "("))
            depth++;
        else if (is_op(s, &t[k], ")") && --depth == 0)
            return k;
    }
    return -1;
}

/* An interval like '1s', '500ms', '2 minutes' or a number of milliseconds. -1 if invalid. */
int64_t pg_interval_ms(const char *v)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || x < 0 || x > 1e12)
        return -1;
    while (*end == ' ')
        end++;
    double mul = 1;
    if (!*end || !strcasecmp(end, "ms") || !strncasecmp(end, "millisecond", 11))
        mul = 1;
    else if (!strcasecmp(end, "s") || !strncasecmp(end, "sec", 3))
        mul = 1000;
    else if (!strcasecmp(end, "min") || !strncasecmp(end, "minute", 6))
        mul = 60000;
    else if (!strcasecmp(end, "h") || !strncasecmp(end, "hour", 4))
        mul = 3600000;
    else if (!strcasecmp(end, "us") || !strncasecmp(end, "microsecond", 11))
        mul = 0.001;
    else
        return -1;
    return (int64_t)(x * mul + 0.5);
}

static int cmd_fail(pg_cmd_t *c, const char *s, const pg_tok_t *t, const char *msg)
{
    c->kind = PG_CMD_ERROR;
    c->err_at = t ? (int)t->start : (int)strlen(s);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    return SS_OK;
}

/* SET name { = | TO } value | SET TIME ZONE value | SET SESSION/LOCAL name ... */
static int classify_set(const char *s, const pg_tok_t *t, int nt, pg_cmd_t *c)
{
    int i = 1;
    if (i < nt && (pg_tok_is(s, &t[i], "session") || pg_tok_is(s, &t[i], "local")) && i + 1 < nt &&
        !pg_tok_is(s, &t[i + 1], "characteristics") && !is_op(s, &t[i + 1], "=") && !pg_tok_is(s, &t[i + 1], "to"))
        i++;
    if (i >= nt)
        return cmd_fail(c, s, NULL, "syntax error at end of input");
    if (pg_tok_is(s, &t[i], "time") && i + 1 < nt && pg_tok_is(s, &t[i + 1], "zone")) {
        snprintf(c->name, sizeof c->name, "timezone");
        i += 2;
    } else {
        char *nm = pg_tok_name(s, &t[i]);
        snprintf(c->name, sizeof c->name, "%s", nm ? nm : "");
        free(nm);
        i++;
        /* dotted names (custom settings) */
        while (i + 1 < nt && is_op(s, &t[i], ".")) {
            char *more = pg_tok_name(s, &t[i + 1]);
            size_t l = strlen(c->name);
            snprintf(c->name + l, sizeof c->name - l, ".%s", more ? more : "");
            free(more);
            i += 2;
        }
    }
    if (!pg_session_param(c->name) && !strchr(c->name, '.')) {
        c->kind = PG_CMD_ENGINE; /* semstream's own settings: batch_size, ... */
        return SS_OK;
    }
    c->kind = PG_CMD_SET;
    if (i < nt && (is_op(s, &t[i], "=") || pg_tok_is(s, &t[i], "to")))
        i++;
    ss_buf_t v = SS_BUF_INIT;
    for (; i < nt; i++) {
        if (is_op(s, &t[i], ";"))
            break;
        char *x = pg_tok_string(s, &t[i]);
        if (v.len && !is_op(s, &t[i], ","))
            ss_buf_putc(&v, v.data[v.len - 1] == ',' ? ' ' : ' ');
        ss_buf_puts(&v, x ? x : "");
        free(x);
    }
    snprintf(c->value, sizeof c->value, "%s", ss_buf_cstr(&v));
    ss_buf_free(&v);
    if (ss_strcaseeq(c->value, "default"))
        c->kind = PG_CMD_RESET;
    return SS_OK;
}

static int classify_fetch(const char *s, const pg_tok_t *t, int nt, pg_cmd_t *c)
{
    int i = 1;
    c->kind = PG_CMD_FETCH;
    c->count = 1;
    c->timeout_ms = -1;
    if (i < nt && (pg_tok_is(s, &t[i], "forward") || pg_tok_is(s, &t[i], "next")))
        i++;
    if (i < nt && pg_tok_is(s, &t[i], "all")) {
        c->count = -1;
        i++;
    } else if (i < nt && t[i].kind == PG_TOK_NUMBER) {
        c->count = strtoll(s + t[i].start, NULL, 10);
        if (c->count < 0)
            return cmd_fail(c, s, &t[i], "FETCH count must not be negative");
        i++;
    }
    if (i < nt && (pg_tok_is(s, &t[i], "from") || pg_tok_is(s, &t[i], "in")))
        i++;
    if (i >= nt || (t[i].kind != PG_TOK_IDENT && t[i].kind != PG_TOK_QIDENT))
        return cmd_fail(c, s, i < nt ? &t[i] : NULL, "FETCH expects a cursor name");
    char *nm = pg_tok_name(s, &t[i]);
    snprintf(c->name, sizeof c->name, "%s", nm ? nm : "");
    free(nm);
    i++;
    if (i < nt && pg_tok_is(s, &t[i], "with")) {
        if (i + 1 >= nt || !is_op(s, &t[i + 1], "("))
            return cmd_fail(c, s, &t[i], "FETCH ... WITH expects (timeout = '...')");
        i += 2;
        while (i < nt && !is_op(s, &t[i], ")")) {
            if (pg_tok_is(s, &t[i], "timeout") && i + 2 < nt && is_op(s, &t[i + 1], "=")) {
                char *v = pg_tok_string(s, &t[i + 2]);
                c->timeout_ms = v ? pg_interval_ms(v) : -1;
                free(v);
                if (c->timeout_ms < 0)
                    return cmd_fail(c, s, &t[i + 2], "FETCH timeout must be an interval such as '1s' or '0s'");
                i += 3;
            } else {
                return cmd_fail(c, s, &t[i], "FETCH accepts only the option timeout");
            }
            if (i < nt && is_op(s, &t[i], ","))
                i++;
        }
        i++;
    }
    if (i < nt && !is_op(s, &t[i], ";"))
        return cmd_fail(c, s, &t[i], "syntax error in FETCH");
    return SS_OK;
}

/* COPY ( query ) TO STDOUT [ [WITH] ( FORMAT text|csv [, HEADER [bool]] ) ] */
static int classify_copy(const char *s, const pg_tok_t *t, int nt, pg_cmd_t *c)
{
    if (nt < 2 || !is_op(s, &t[1], "("))
        return cmd_fail(c, s, nt > 1 ? &t[1] : NULL,
                        "COPY supports only COPY (query) TO STDOUT: streams take rows with INSERT");
    int close = close_paren(s, t, nt, 1);
    if (close < 0)
        return cmd_fail(c, s, &t[1], "unbalanced parenthesis in COPY");
    c->kind = PG_CMD_COPY;
    c->inner_at = t[1].start + 1;
    c->inner_len = t[close].start - c->inner_at;
    int i = close + 1;
    if (i + 1 >= nt || !pg_tok_is(s, &t[i], "to") || !pg_tok_is(s, &t[i + 1], "stdout"))
        return cmd_fail(c, s, i < nt ? &t[i] : NULL, "COPY supports only TO STDOUT");
    i += 2;
    if (i < nt && pg_tok_is(s, &t[i], "with"))
        i++;
    if (i < nt && is_op(s, &t[i], "(")) {
        i++;
        while (i < nt && !is_op(s, &t[i], ")")) {
            if (pg_tok_is(s, &t[i], "format") && i + 1 < nt) {
                if (pg_tok_is(s, &t[i + 1], "csv"))
                    c->csv = 1;
                else if (!pg_tok_is(s, &t[i + 1], "text"))
                    return cmd_fail(c, s, &t[i + 1], "COPY supports FORMAT text and csv");
                i += 2;
            } else if (pg_tok_is(s, &t[i], "header")) {
                c->header = 1;
                i++;
                if (i < nt && (pg_tok_is(s, &t[i], "true") || pg_tok_is(s, &t[i], "on")))
                    i++;
                else if (i < nt && (pg_tok_is(s, &t[i], "false") || pg_tok_is(s, &t[i], "off")))
                    c->header = 0, i++;
            } else {
                return cmd_fail(c, s, &t[i], "COPY supports the options FORMAT and HEADER");
            }
            if (i < nt && is_op(s, &t[i], ","))
                i++;
        }
        i++;
    } else if (i < nt && pg_tok_is(s, &t[i], "csv")) {
        c->csv = 1;
        i++;
    }
    if (i < nt && !is_op(s, &t[i], ";"))
        return cmd_fail(c, s, &t[i], "syntax error in COPY");
    return SS_OK;
}

int pg_classify(const char *s, size_t n, pg_cmd_t *c)
{
    memset(c, 0, sizeof *c);
    int nt = pg_lex(s, n, NULL, 0);
    if (nt == 0) {
        c->kind = PG_CMD_EMPTY;
        return SS_OK;
    }
    pg_tok_t *t = calloc((size_t)nt + 1, sizeof *t);
    if (!t)
        return SS_ERR_NOMEM;
    pg_lex(s, n, t, nt);
    if (nt == 1 && is_op(s, &t[0], ";")) {
        c->kind = PG_CMD_EMPTY;
        free(t);
        return SS_OK;
    }
    c->kind = PG_CMD_ENGINE;
    const pg_tok_t *t0 = &t[0];
    int rc = SS_OK;
    if (pg_tok_is(s, t0, "begin") || pg_tok_is(s, t0, "start"))
        c->kind = PG_CMD_BEGIN;
    else if (pg_tok_is(s, t0, "commit") || pg_tok_is(s, t0, "end"))
        c->kind = PG_CMD_COMMIT;
    else if (pg_tok_is(s, t0, "rollback") || pg_tok_is(s, t0, "abort"))
        c->kind = PG_CMD_ROLLBACK;
    else if (pg_tok_is(s, t0, "set"))
        rc = classify_set(s, t, nt, c);
    else if (pg_tok_is(s, t0, "reset") && nt >= 2) {
        c->kind = PG_CMD_RESET;
        char *nm = pg_tok_name(s, &t[1]);
        snprintf(c->name, sizeof c->name, "%s", nm ? nm : "");
        free(nm);
    } else if (pg_tok_is(s, t0, "discard"))
        c->kind = PG_CMD_DISCARD;
    else if (pg_tok_is(s, t0, "deallocate")) {
        c->kind = PG_CMD_DEALLOCATE;
        int i = 1;
        if (i < nt && pg_tok_is(s, &t[i], "prepare"))
            i++;
        char *nm = i < nt ? pg_tok_name(s, &t[i]) : NULL;
        snprintf(c->name, sizeof c->name, "%s", nm ? nm : "all");
        free(nm);
    } else if (pg_tok_is(s, t0, "show") && nt >= 2) {
        char *nm = pg_tok_name(s, &t[1]);
        if (nm && (!strcmp(nm, "streams") || !strcmp(nm, "views") || !strcmp(nm, "models"))) {
            c->kind = PG_CMD_ENGINE;
        } else {
            c->kind = PG_CMD_SHOW;
            if (nm && !strcmp(nm, "transaction") && nt >= 4)
                snprintf(c->name, sizeof c->name, "transaction_isolation");
            else if (nm && !strcmp(nm, "time") && nt >= 3)
                snprintf(c->name, sizeof c->name, "timezone");
            else
                snprintf(c->name, sizeof c->name, "%s", nm ? nm : "");
        }
        free(nm);
    } else if (pg_tok_is(s, t0, "copy"))
        rc = classify_copy(s, t, nt, c);
    else if (pg_tok_is(s, t0, "declare")) {
        /* DECLARE name [BINARY] [NO SCROLL] CURSOR [WITH|WITHOUT HOLD] FOR query */
        int i = 1;
        if (i >= nt || (t[i].kind != PG_TOK_IDENT && t[i].kind != PG_TOK_QIDENT)) {
            rc = cmd_fail(c, s, i < nt ? &t[i] : NULL, "DECLARE expects a cursor name");
        } else {
            char *nm = pg_tok_name(s, &t[i]);
            snprintf(c->name, sizeof c->name, "%s", nm ? nm : "");
            free(nm);
            while (i < nt && !pg_tok_is(s, &t[i], "for"))
                i++;
            if (i + 1 >= nt)
                rc = cmd_fail(c, s, NULL, "DECLARE ... CURSOR expects FOR and a query");
            else {
                c->kind = PG_CMD_DECLARE;
                c->inner_at = t[i + 1].start;
                c->inner_len = n - c->inner_at;
            }
        }
    } else if (pg_tok_is(s, t0, "fetch"))
        rc = classify_fetch(s, t, nt, c);
    else if (pg_tok_is(s, t0, "close")) {
        c->kind = PG_CMD_CLOSE;
        char *nm = nt >= 2 ? pg_tok_name(s, &t[1]) : NULL;
        snprintf(c->name, sizeof c->name, "%s", nm ? nm : "");
        free(nm);
        if (!nm)
            rc = cmd_fail(c, s, NULL, "CLOSE expects a cursor name or ALL");
    } else if (pg_tok_is(s, t0, "subscribe")) {
        c->kind = PG_CMD_SUBSCRIBE;
    } else if (pg_tok_is(s, t0, "listen") || pg_tok_is(s, t0, "unlisten") || pg_tok_is(s, t0, "notify")) {
        c->kind = PG_CMD_IGNORE; /* nothing to notify about */
    } else {
        for (int i = 0; i < nt; i++)
            if (catalog_word(s, &t[i], i + 1 < nt ? &t[i + 1] : NULL)) {
                c->kind = PG_CMD_CATALOG;
                break;
            }
    }
    free(t);
    return rc;
}

/* ---- SQLSTATE ---- */

const char *pg_sqlstate(int code, const char *msg)
{
    msg = msg ? msg : "";
    switch (code) {
    case SS_ERR_PARSE: return "42601"; /* syntax_error */
    case SS_ERR_NOMEM: return "53200"; /* out_of_memory */
    case SS_ERR_IO: return "58030";    /* io_error */
    case SS_ERR_EXISTS: return strstr(msg, "view") || strstr(msg, "stream") ? "42P07" : "42710";
    case SS_ERR_UNSUPPORTED: return "0A000"; /* feature_not_supported */
    case SS_ERR_TIMEOUT:
    case SS_ERR_CANCELED: return "57014"; /* query_canceled */
    case SS_ERR_DENIED: return "42501";   /* insufficient_privilege */
    case SS_ERR_BUSY: return "55006";     /* object_in_use */
    case SS_ERR_MODEL:
    case SS_ERR_HTTP:
    case SS_ERR_KAFKA: return "58000"; /* system_error: an external system failed */
    case SS_ERR_INTERNAL:
    case SS_ERR_SQLITE: return "XX000";
    default: break;
    }
    if (strstr(msg, "division by zero"))
        return "22012";
    if (strstr(msg, "unknown column") || strstr(msg, "no such column") ||
        (strstr(msg, "column") && strstr(msg, "does not exist")))
        return "42703"; /* undefined_column */
    if (strstr(msg, "no such view") || strstr(msg, "no such stream") || strstr(msg, "no view or alias"))
        return "42P01"; /* undefined_table */
    if (strstr(msg, "no such model"))
        return "42704"; /* undefined_object */
    if (strstr(msg, "function") && (strstr(msg, "not available") || strstr(msg, "unknown function") ||
                                    strstr(msg, "does not exist")))
        return "42883"; /* undefined_function */
    if (strstr(msg, "out of range") || strstr(msg, "overflow"))
        return "22003"; /* numeric_value_out_of_range */
    if (strstr(msg, "invalid input syntax") || strstr(msg, "cannot cast") || strstr(msg, "invalid cast"))
        return "22P02"; /* invalid_text_representation */
    if (strstr(msg, "type") && (strstr(msg, "mismatch") || strstr(msg, "cannot compare") || strstr(msg, "expects") ||
                                strstr(msg, "operator")))
        return "42804"; /* datatype_mismatch */
    if (code == SS_ERR_NOTFOUND)
        return "42704";
    if (code == SS_ERR_SEMANTIC)
        return "42000"; /* syntax_error_or_access_rule_violation */
    if (code == SS_ERR_INVALID)
        return "22023"; /* invalid_parameter_value */
    return "XX000";
}
