/*
 * pgwire.c — one PostgreSQL protocol session (pgwire.h) over a connected socket:
 *   - startup: SSL/GSSENC requests declined ('N'), cancel requests passed to the
 *     server, protocol 3.x (a newer minor is negotiated down), the user required;
 *   - authentication: SCRAM-SHA-256 when the server requires a password; the
 *     verifier that matches gives the role (read-write or read-only); failures
 *     are answered with 28P01, logged and counted;
 *   - the simple query protocol (several statements, each with its results, the
 *     first error ending the query) and the extended protocol (Parse, Bind,
 *     Describe, Execute with a row limit and PortalSuspended, Close, Sync, Flush;
 *     after an error everything up to Sync is skipped);
 *   - transaction status as PostgreSQL reports it (semstream statements commit at
 *     once; a failed block refuses statements until ROLLBACK);
 *   - limits: a frontend message larger than max_message is refused, a message must
 *     arrive within io_timeout once it started, a session idle longer than
 *     idle_timeout is closed (57P05), results a client does not take within
 *     io_timeout close the connection.
 * Statements themselves are run by pgwire_exec.c.
 */
#include "pgwire_int.h"

#include <errno.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLUSH_AT (64 * 1024)

/* ---- output ---- */

static int write_all(pg_sess_t *s, const char *p, size_t n)
{
    int64_t deadline = ss_now_ns() + (int64_t)s->env->io_timeout_s * 1000000000LL;
    while (n > 0 && !s->dead) {
        ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            deadline = ss_now_ns() + (int64_t)s->env->io_timeout_s * 1000000000LL;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            s->dead = 1;
            break;
        }
        int64_t left = (deadline - ss_now_ns()) / 1000000;
        if (left <= 0) {
            ss_log(SS_LOG_WARN, "pgwire", "%s: client took no results for %d s; closing", s->peer,
                   s->env->io_timeout_s);
            if (s->env->count)
                s->env->count(s->env->server, "timeout");
            s->dead = 1;
            break;
        }
        struct pollfd pf = {s->fd, POLLOUT, 0};
        poll(&pf, 1, (int)SS_MIN(left, 1000));
    }
    return s->dead ? SS_ERR_IO : SS_OK;
}

int pg_flush(pg_sess_t *s)
{
    if (!s->out.len)
        return s->dead ? SS_ERR_IO : SS_OK;
    int rc = write_all(s, s->out.data, s->out.len);
    ss_buf_reset(&s->out);
    return rc;
}

int pg_maybe_flush(pg_sess_t *s)
{
    return s->out.len >= FLUSH_AT ? pg_flush(s) : (s->dead ? SS_ERR_IO : SS_OK);
}

int pg_client_gone(pg_sess_t *s)
{
    if (s->dead)
        return 1;
    struct pollfd pf = {s->fd, POLLIN | POLLRDHUP, 0};
    if (poll(&pf, 1, 0) <= 0)
        return 0;
    if (pf.revents & (POLLHUP | POLLERR | POLLRDHUP)) {
        s->dead = 1;
        return 1;
    }
    char c;
    ssize_t r = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0) {
        s->dead = 1;
        return 1;
    }
    return 0;
}

static void send_simple(pg_sess_t *s, char type)
{
    size_t at;
    pg_msg_begin(&s->out, type, &at);
    pg_msg_end(&s->out, at);
}

static void send_auth(pg_sess_t *s, int32_t code, const void *data, size_t n)
{
    size_t at;
    pg_msg_begin(&s->out, 'R', &at);
    pg_put_i32(&s->out, code);
    if (n)
        ss_buf_append(&s->out, data, n);
    pg_msg_end(&s->out, at);
}

void pg_send_param_status(pg_sess_t *s, const char *name, const char *value)
{
    size_t at;
    pg_msg_begin(&s->out, 'S', &at);
    pg_put_cstr(&s->out, name);
    pg_put_cstr(&s->out, value);
    pg_msg_end(&s->out, at);
}

void pg_send_complete(pg_sess_t *s, const char *tag)
{
    size_t at;
    pg_msg_begin(&s->out, 'C', &at);
    pg_put_cstr(&s->out, tag);
    pg_msg_end(&s->out, at);
}

static void send_fields(pg_sess_t *s, char type, const char *severity, const char *sqlstate, const char *msg,
                        int position, const char *hint)
{
    size_t at;
    pg_msg_begin(&s->out, type, &at);
    ss_buf_putc(&s->out, 'S');
    pg_put_cstr(&s->out, severity);
    ss_buf_putc(&s->out, 'V');
    pg_put_cstr(&s->out, severity);
    ss_buf_putc(&s->out, 'C');
    pg_put_cstr(&s->out, sqlstate);
    ss_buf_putc(&s->out, 'M');
    pg_put_cstr(&s->out, msg);
    if (hint) {
        ss_buf_putc(&s->out, 'H');
        pg_put_cstr(&s->out, hint);
    }
    if (position > 0) {
        char p[16];
        snprintf(p, sizeof p, "%d", position);
        ss_buf_putc(&s->out, 'P');
        pg_put_cstr(&s->out, p);
    }
    ss_buf_putc(&s->out, 0);
    pg_msg_end(&s->out, at);
}

void pg_send_notice(pg_sess_t *s, const char *sqlstate, const char *msg)
{
    send_fields(s, 'N', "WARNING", sqlstate, msg, 0, NULL);
}

static void send_fatal(pg_sess_t *s, const char *sqlstate, const char *msg)
{
    send_fields(s, 'E', "FATAL", sqlstate, msg, 0, NULL);
    pg_flush(s);
}

/* The character position (1-based, as PostgreSQL counts) of byte offset pos of text. */
static int char_position(const char *text, int pos)
{
    if (!text || pos < 0)
        return 0;
    int chars = 0;
    for (int i = 0; i < pos && text[i]; i++)
        chars += ((unsigned char)text[i] & 0xC0) != 0x80;
    return chars + 1;
}

static void send_error(pg_sess_t *s, const pg_errinfo_t *ei, const char *text)
{
    const char *state = ei->sqlstate ? ei->sqlstate : pg_sqlstate(ei->code, ei->msg);
    const char *hint = NULL;
    if (!strcmp(state, "42501") && s->role == PG_ROLE_READ_ONLY)
        hint = "connect with the read-write password to change streams, views or models";
    send_fields(s, 'E', "ERROR", state, ei->msg, ei->pos >= 0 ? char_position(text, ei->pos) : 0, hint);
}

void pg_send_rowdesc(pg_sess_t *s, const pg_col_t *cols, int n, const int16_t *fmts, int nfmts)
{
    size_t at;
    pg_msg_begin(&s->out, 'T', &at);
    pg_put_i16(&s->out, (int16_t)n);
    for (int i = 0; i < n; i++) {
        pg_put_cstr(&s->out, cols[i].name ? cols[i].name : "?column?");
        pg_put_i32(&s->out, 0);
        pg_put_i16(&s->out, 0);
        pg_put_i32(&s->out, (int32_t)cols[i].oid);
        pg_put_i16(&s->out, pg_type_len(cols[i].oid));
        pg_put_i32(&s->out, cols[i].typmod);
        pg_put_i16(&s->out, nfmts == 0 ? 0 : nfmts == 1 ? fmts[0] : i < nfmts ? fmts[i] : 0);
    }
    pg_msg_end(&s->out, at);
}

int pg_send_datarow(pg_sess_t *s, const pg_col_t *cols, int n, const char *const *cells, const int16_t *fmts,
                    int nfmts)
{
    size_t at;
    pg_msg_begin(&s->out, 'D', &at);
    pg_put_i16(&s->out, (int16_t)n);
    for (int i = 0; i < n; i++) {
        int f = nfmts == 0 ? 0 : nfmts == 1 ? fmts[0] : i < nfmts ? fmts[i] : 0;
        if (pg_put_cell(&s->out, cols[i].oid, f, cells[i]) != SS_OK) {
            s->out.len = at - 1; /* drop the partial row */
            return SS_ERR_INVALID;
        }
    }
    pg_msg_end(&s->out, at);
    return s->out.data ? pg_maybe_flush(s) : SS_ERR_NOMEM;
}

static void send_ready(pg_sess_t *s)
{
    size_t at;
    pg_msg_begin(&s->out, 'Z', &at);
    ss_buf_putc(&s->out, s->txn);
    pg_msg_end(&s->out, at);
}

/* ---- input ---- */

/* Reads exactly n bytes. idle_ms: the wait for the first byte (< 0: io timeout); then the rest
 * must come within the io timeout. SS_ERR_TIMEOUT when the first byte did not come. */
static int read_full(pg_sess_t *s, uint8_t *p, size_t n, int idle_ms)
{
    int64_t now = ss_now_ns();
    int64_t deadline = now + (int64_t)(idle_ms >= 0 ? idle_ms : s->env->io_timeout_s * 1000) * 1000000LL;
    size_t got = 0;
    while (got < n) {
        if (s->env->stop && *s->env->stop)
            return SS_ERR_CANCELED;
        int64_t left = (deadline - ss_now_ns()) / 1000000;
        if (left <= 0)
            return got == 0 && idle_ms >= 0 ? SS_ERR_TIMEOUT : SS_ERR_IO;
        struct pollfd pf = {s->fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)SS_MIN(left, 500));
        if (pr < 0 && errno != EINTR)
            return SS_ERR_IO;
        if (pr <= 0)
            continue;
        ssize_t r = recv(s->fd, p + got, n - got, MSG_DONTWAIT);
        if (r == 0)
            return SS_ERR_IO;
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            return SS_ERR_IO;
        }
        if (got == 0)
            deadline = ss_now_ns() + (int64_t)s->env->io_timeout_s * 1000000000LL; /* the rest: io timeout */
        got += (size_t)r;
    }
    return SS_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One message: type and body (malloc'd). SS_ERR_TIMEOUT: idle too long. */
static int read_msg(pg_sess_t *s, int idle_ms, char *type, uint8_t **body, size_t *n)
{
    uint8_t hdr[5];
    *body = NULL;
    int rc = read_full(s, hdr, 1, idle_ms);
    if (rc)
        return rc;
    if ((rc = read_full(s, hdr + 1, 4, -1)))
        return rc;
    uint32_t len = be32(hdr + 1);
    if (len < 4 || len - 4 > s->env->max_message) {
        char m[160];
        snprintf(m, sizeof m, "message of %u bytes is larger than this server accepts (%zu)", len,
                 s->env->max_message);
        send_fatal(s, "54000", m);
        return SS_ERR_INVALID;
    }
    *type = (char)hdr[0];
    *n = len - 4;
    *body = malloc(*n + 1);
    if (!*body)
        return SS_ERR_NOMEM;
    (*body)[*n] = 0;
    if ((rc = read_full(s, *body, *n, -1))) {
        free(*body);
        *body = NULL;
    }
    return rc;
}

/* ---- settings ---- */

const char *pg_setting_get(const pg_settings_t *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (ss_strcaseeq(st->names[i], name))
            return st->values[i];
    static const char *const dflt[][2] = {
        {"server_version", "15.0 (semstream)"}, {"server_version_num", "150000"}, {"server_encoding", "UTF8"},
        {"client_encoding", "UTF8"}, {"datestyle", "ISO, MDY"}, {"timezone", "UTC"}, {"intervalstyle", "postgres"},
        {"integer_datetimes", "on"}, {"standard_conforming_strings", "on"}, {"is_superuser", "off"},
        {"transaction_isolation", "read committed"}, {"default_transaction_isolation", "read committed"},
        {"search_path", "\"$user\", public"}, {"extra_float_digits", "1"}, {"max_identifier_length", "63"},
        {"application_name", ""}, {"lc_messages", "C"}, {"client_min_messages", "notice"},
        {"statement_timeout", "0"}, {"transaction_read_only", "off"}, {"default_transaction_read_only", "off"},
        {"bytea_output", "hex"}, {"lc_collate", "C"}, {"lc_ctype", "C"}, {"lc_numeric", "C"}, {"lc_time", "C"}};
    for (size_t i = 0; i < SS_ARRAY_LEN(dflt); i++)
        if (ss_strcaseeq(dflt[i][0], name))
            return dflt[i][1];
    return NULL;
}

static void setting_put(pg_settings_t *st, const char *name, const char *value)
{
    for (int i = 0; i < st->n; i++)
        if (ss_strcaseeq(st->names[i], name)) {
            char *v = ss_strdup(value);
            if (v) {
                free(st->values[i]);
                st->values[i] = v;
            }
            return;
        }
    if (st->n >= (int)SS_ARRAY_LEN(st->names))
        return;
    st->names[st->n] = ss_strdup(name);
    st->values[st->n] = ss_strdup(value);
    if (st->names[st->n] && st->values[st->n])
        st->n++;
}

/* ---- startup and authentication ---- */

static int read_startup(pg_sess_t *s, pg_startup_t *st, uint8_t **body)
{
    for (int tries = 0; tries < 3; tries++) {
        uint8_t hdr[4];
        int rc = read_full(s, hdr, 4, s->env->io_timeout_s * 1000);
        if (rc)
            return rc;
        uint32_t len = be32(hdr);
        if (len < 8 || len > PG_MAX_STARTUP) {
            send_fatal(s, "08P01", "invalid length of startup packet");
            return SS_ERR_INVALID;
        }
        free(*body);
        *body = malloc(len - 4 + 1);
        if (!*body)
            return SS_ERR_NOMEM;
        (*body)[len - 4] = 0;
        if ((rc = read_full(s, *body, len - 4, -1)))
            return rc;
        char err[SS_ERRSZ];
        if ((rc = pg_decode_startup(*body, len - 4, st, err, sizeof err))) {
            send_fatal(s, rc == SS_ERR_UNSUPPORTED ? "0A000" : "08P01", err);
            return rc;
        }
        if (st->kind == PG_START_SSL || st->kind == PG_START_GSSENC) {
            ss_buf_putc(&s->out, 'N'); /* no TLS here: the client continues in the clear or gives up */
            if (pg_flush(s))
                return SS_ERR_IO;
            continue;
        }
        return SS_OK;
    }
    send_fatal(s, "08P01", "too many encryption requests");
    return SS_ERR_INVALID;
}

static void auth_failed(pg_sess_t *s, const char *user, const char *why)
{
    ss_log(SS_LOG_WARN, "pgwire", "%s: authentication of user \"%s\" failed: %s", s->peer, user, why);
    if (s->env->count)
        s->env->count(s->env->server, "auth_failure");
    char m[256];
    snprintf(m, sizeof m, "password authentication failed for user \"%s\"", user);
    send_fatal(s, "28P01", m);
}

/* Reads a 'p' message (SASL response). */
static int read_sasl(pg_sess_t *s, uint8_t **body, size_t *n)
{
    char type;
    int rc = read_msg(s, s->env->io_timeout_s * 1000, &type, body, n);
    if (!rc && type != 'p') {
        free(*body);
        *body = NULL;
        send_fatal(s, "08P01", "expected a SASL response message");
        return SS_ERR_INVALID;
    }
    return rc;
}

static int authenticate(pg_sess_t *s, const char *user)
{
    if (!s->env->auth_required) {
        s->role = PG_ROLE_READ_WRITE;
        send_auth(s, 0, NULL, 0);
        return SS_OK;
    }
    send_auth(s, 10, "SCRAM-SHA-256\0", 15);
    if (pg_flush(s))
        return SS_ERR_IO;
    uint8_t *body = NULL;
    size_t n = 0;
    int rc = read_sasl(s, &body, &n);
    if (rc)
        return rc;
    const char *mech;
    const uint8_t *data;
    size_t dl;
    char err[SS_ERRSZ];
    pg_scram_t sc = {s->env->keys, 2, s->env->salt, PG_SCRAM_ITERATIONS, "", NULL, NULL, -1};
    ss_buf_t reply = SS_BUF_INIT;
    rc = pg_decode_sasl_initial(body, n, &mech, &data, &dl, err, sizeof err);
    if (!rc && strcmp(mech, "SCRAM-SHA-256"))
        rc = ss_seterr(err, sizeof err, SS_ERR_INVALID, "SASL mechanism %s is not supported (SCRAM-SHA-256 is)",
                       mech);
    if (!rc)
        rc = pg_scram_first(&sc, data, dl, &reply, err, sizeof err);
    free(body);
    body = NULL;
    if (!rc) {
        send_auth(s, 11, reply.data, reply.len);
        ss_buf_reset(&reply);
        rc = pg_flush(s) ? SS_ERR_IO : read_sasl(s, &body, &n);
        if (!rc)
            rc = pg_scram_final(&sc, body, n, &reply, err, sizeof err);
    }
    free(body);
    if (rc && rc != SS_ERR_IO && rc != SS_ERR_TIMEOUT)
        auth_failed(s, user, err);
    if (!rc) {
        s->role = sc.matched == 0 ? PG_ROLE_READ_WRITE : PG_ROLE_READ_ONLY;
        send_auth(s, 12, reply.data, reply.len);
        send_auth(s, 0, NULL, 0);
    }
    ss_buf_free(&reply);
    pg_scram_free(&sc);
    return rc;
}

static void greet(pg_sess_t *s, const pg_startup_t *st)
{
    static const char *const reported[] = {"server_version", "server_encoding", "client_encoding", "DateStyle",
                                           "TimeZone", "IntervalStyle", "integer_datetimes",
                                           "standard_conforming_strings", "is_superuser", "application_name"};
    for (int i = 0; i < st->npairs; i++)
        if (strcmp(st->keys[i], "user") && strcmp(st->keys[i], "database") && strcmp(st->keys[i], "options") &&
            strncmp(st->keys[i], "_pq_.", 5) && strcmp(st->keys[i], "replication"))
            setting_put(&s->set, st->keys[i], st->values[i]);
    for (size_t i = 0; i < SS_ARRAY_LEN(reported); i++)
        pg_send_param_status(s, reported[i], pg_setting_get(&s->set, reported[i]));
    pg_send_param_status(s, "session_authorization", s->set.user ? s->set.user : "");
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)s->env->pid);
    setting_put(&s->set, "_pid", pid); /* pg_backend_pid() */
    size_t at;
    pg_msg_begin(&s->out, 'K', &at);
    pg_put_i32(&s->out, s->env->pid);
    pg_put_i32(&s->out, s->key);
    pg_msg_end(&s->out, at);
}

/* ---- the simple query protocol ---- */

static void simple_query(pg_sess_t *s, const char *sql, size_t n)
{
    size_t *starts = NULL, *ends = NULL;
    int ns = pg_split(sql, n, &starts, &ends);
    if (ns < 0) {
        pg_errinfo_t ei = {SS_ERR_NOMEM, "out of memory", -1, NULL};
        send_error(s, &ei, sql);
    }
    int any = 0;
    for (int i = 0; i < ns && !s->dead; i++) {
        pg_wire_sink_t w;
        pg_wire_sink_init(&w, s, 1, NULL, 0);
        char *one = ss_strndup(sql + starts[i], ends[i] - starts[i]);
        pg_errinfo_t ei = {0, "", -1, NULL};
        int rc = one ? pg_exec_one(s, one, ends[i] - starts[i], &w.rs, 0, &ei) : SS_ERR_NOMEM;
        pg_wire_sink_free(&w);
        free(one);
        if (rc == PG_EMPTY_STATEMENT)
            continue;
        any = 1;
        if (rc) {
            if (rc == SS_ERR_NOMEM && !ei.msg[0])
                snprintf(ei.msg, sizeof ei.msg, "out of memory");
            if (ei.pos >= 0)
                ei.pos += (int)starts[i];
            send_error(s, &ei, sql);
            if (s->txn == 'T')
                s->txn = 'E';
            break;
        }
    }
    if (!any && ns >= 0)
        send_simple(s, 'I'); /* EmptyQueryResponse */
    free(starts);
    free(ends);
}

/* ---- the extended query protocol ---- */

static pg_stmt_t **find_stmt(pg_sess_t *s, const char *name)
{
    pg_stmt_t **pp = &s->stmts;
    while (*pp && strcmp((*pp)->name, name))
        pp = &(*pp)->next;
    return pp;
}

static pg_portal_t **find_portal(pg_sess_t *s, const char *name)
{
    pg_portal_t **pp = &s->portals;
    while (*pp && strcmp((*pp)->name, name))
        pp = &(*pp)->next;
    return pp;
}

static void stmt_free(pg_stmt_t *st)
{
    if (!st)
        return;
    free(st->name);
    free(st->sql);
    free(st->types);
    free(st);
}

static void portal_free(pg_portal_t *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->sql);
    free(p->map);
    free(p->orig);
    free(p->fmts);
    pg_result_clear(&p->res);
    free(p);
}

static void drop_portals(pg_sess_t *s)
{
    while (s->portals) {
        pg_portal_t *p = s->portals;
        s->portals = p->next;
        portal_free(p);
    }
}

static int ext_fail(pg_sess_t *s, int code, const char *sqlstate, const char *msg, const char *text, int pos)
{
    pg_errinfo_t ei = {code, "", pos, sqlstate};
    snprintf(ei.msg, sizeof ei.msg, "%s", msg);
    send_error(s, &ei, text);
    if (s->txn == 'T')
        s->txn = 'E';
    return -1;
}

static int on_parse(pg_sess_t *s, const uint8_t *body, size_t n)
{
    pg_parse_msg_t m;
    char err[SS_ERRSZ];
    if (pg_decode_parse(body, n, &m, err, sizeof err))
        return ext_fail(s, SS_ERR_INVALID, "08P01", err, NULL, -1);
    size_t *starts = NULL, *ends = NULL;
    int ns = pg_split(m.query, strlen(m.query), &starts, &ends);
    free(starts);
    free(ends);
    if (ns > 1) {
        pg_parse_msg_free(&m);
        return ext_fail(s, SS_ERR_PARSE, "42601", "cannot insert multiple commands into a prepared statement",
                        NULL, -1);
    }
    pg_stmt_t **pp = find_stmt(s, m.name);
    if (*pp && m.name[0]) {
        char msg[200];
        snprintf(msg, sizeof msg, "prepared statement \"%s\" already exists", m.name);
        pg_parse_msg_free(&m);
        return ext_fail(s, SS_ERR_EXISTS, "42P05", msg, NULL, -1);
    }
    pg_stmt_t *st = calloc(1, sizeof *st);
    if (!st || !(st->name = ss_strdup(m.name)) || !(st->sql = ss_strdup(m.query))) {
        stmt_free(st);
        pg_parse_msg_free(&m);
        return ext_fail(s, SS_ERR_NOMEM, "53200", "out of memory", NULL, -1);
    }
    st->nparams = SS_MAX(m.nparams, pg_max_param(m.query));
    st->types = calloc((size_t)st->nparams + 1, sizeof *st->types);
    for (int i = 0; st->types && i < m.nparams; i++)
        st->types[i] = m.types[i];
    pg_parse_msg_free(&m);
    if (*pp) { /* the unnamed statement is replaced */
        pg_stmt_t *old = *pp;
        st->next = old->next;
        stmt_free(old);
        *pp = st;
    } else {
        st->next = s->stmts;
        s->stmts = st;
    }
    send_simple(s, '1');
    return 0;
}

static int on_bind(pg_sess_t *s, const uint8_t *body, size_t n)
{
    pg_bind_msg_t m;
    char err[SS_ERRSZ];
    if (pg_decode_bind(body, n, &m, err, sizeof err))
        return ext_fail(s, SS_ERR_INVALID, "08P01", err, NULL, -1);
    pg_stmt_t *st = *find_stmt(s, m.stmt);
    if (!st) {
        char msg[200];
        snprintf(msg, sizeof msg, "prepared statement \"%s\" does not exist", m.stmt);
        pg_bind_msg_free(&m);
        return ext_fail(s, SS_ERR_NOTFOUND, "26000", msg, NULL, -1);
    }
    if (m.nparams != st->nparams) {
        char msg[200];
        snprintf(msg, sizeof msg, "bind message supplies %d parameters, but prepared statement \"%s\" requires %d",
                 m.nparams, st->name, st->nparams);
        pg_bind_msg_free(&m);
        return ext_fail(s, SS_ERR_INVALID, "08P01", msg, NULL, -1);
    }
    char **vals = calloc((size_t)m.nparams + 1, sizeof *vals);
    int rc = vals ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; !rc && i < m.nparams; i++) {
        ss_buf_t b = SS_BUF_INIT;
        int f = m.nfmts == 0 ? 0 : m.nfmts == 1 ? m.fmts[0] : m.fmts[i];
        rc = pg_param_sql(st->types[i], f, m.vals[i], m.lens[i], &b, err, sizeof err);
        if (rc)
            ss_errprefix(err, sizeof err, "parameter $%d", i + 1);
        vals[i] = ss_buf_take(&b);
    }
    pg_portal_t *p = rc ? NULL : calloc(1, sizeof *p);
    ss_buf_t sql = SS_BUF_INIT;
    if (!rc && !p)
        rc = SS_ERR_NOMEM;
    if (!rc)
        rc = pg_substitute(st->sql, m.nparams, vals, &sql, &p->map, err, sizeof err);
    for (int i = 0; vals && i < m.nparams; i++)
        free(vals[i]);
    free(vals);
    if (!rc && (!(p->name = ss_strdup(m.portal)) || !(p->orig = ss_strdup(st->sql))))
        rc = SS_ERR_NOMEM;
    if (!rc && m.nrfmts > 0) {
        if (!(p->fmts = calloc((size_t)m.nrfmts, sizeof *p->fmts)))
            rc = SS_ERR_NOMEM;
        else {
            memcpy(p->fmts, m.rfmts, (size_t)m.nrfmts * sizeof *p->fmts);
            p->nfmts = m.nrfmts;
        }
    }
    pg_bind_msg_free(&m);
    if (rc) {
        ss_buf_free(&sql);
        portal_free(p);
        return ext_fail(s, rc, rc == SS_ERR_NOMEM ? "53200" : rc == SS_ERR_UNSUPPORTED ? "0A000" : "22P02",
                        rc == SS_ERR_NOMEM ? "out of memory" : err, NULL, -1);
    }
    p->sql = ss_buf_take(&sql);
    p->direct = pg_is_direct(s, p->sql);
    pg_portal_t **pp = find_portal(s, p->name);
    if (*pp) {
        pg_portal_t *old = *pp;
        p->next = old->next;
        portal_free(old);
        *pp = p;
    } else {
        p->next = s->portals;
        s->portals = p;
    }
    send_simple(s, '2');
    return 0;
}

/* Runs a buffered portal's statement once, keeping its rows. */
static int portal_run(pg_sess_t *s, pg_portal_t *p)
{
    if (p->ran || p->direct)
        return 0;
    p->ran = 1;
    pg_collect_sink_t c;
    pg_collect_sink_init(&c, &p->res);
    pg_errinfo_t ei = {0, "", -1, NULL};
    s->cancel = 0;
    int rc = pg_exec_one(s, p->sql, strlen(p->sql), &c.rs, 1, &ei);
    if (rc == PG_EMPTY_STATEMENT) {
        snprintf(p->res.tag, sizeof p->res.tag, "%s", "");
        p->res.has_cols = 0;
        return 0;
    }
    if (rc) {
        if (ei.pos >= 0 && p->map)
            ei.pos = p->map[SS_MIN((size_t)ei.pos, strlen(p->sql))];
        send_error(s, &ei, p->orig);
        if (s->txn == 'T')
            s->txn = 'E';
        return -1;
    }
    return 0;
}

static void send_nodata_or_desc(pg_sess_t *s, const pg_result_t *r, const int16_t *fmts, int nfmts)
{
    if (r->has_cols)
        pg_send_rowdesc(s, r->cols, r->ncols, fmts, nfmts);
    else
        send_simple(s, 'n');
}

static int on_describe(pg_sess_t *s, const uint8_t *body, size_t n)
{
    char which;
    const char *name;
    char err[SS_ERRSZ];
    if (pg_decode_target(body, n, &which, &name, err, sizeof err))
        return ext_fail(s, SS_ERR_INVALID, "08P01", err, NULL, -1);
    if (which == 'S') {
        pg_stmt_t *st = *find_stmt(s, name);
        if (!st) {
            char msg[200];
            snprintf(msg, sizeof msg, "prepared statement \"%s\" does not exist", name);
            return ext_fail(s, SS_ERR_NOTFOUND, "26000", msg, NULL, -1);
        }
        size_t at;
        pg_msg_begin(&s->out, 't', &at);
        pg_put_i16(&s->out, (int16_t)st->nparams);
        for (int i = 0; i < st->nparams; i++)
            pg_put_i32(&s->out, (int32_t)(st->types[i] ? st->types[i] : PG_OID_TEXT));
        pg_msg_end(&s->out, at);
        pg_result_t r;
        memset(&r, 0, sizeof r);
        pg_errinfo_t ei = {0, "", -1, NULL};
        if (pg_describe(s, st->sql, &r, &ei)) {
            pg_result_clear(&r);
            s->out.len = at - 1; /* no ParameterDescription either: the error replaces it */
            send_error(s, &ei, st->sql);
            if (s->txn == 'T')
                s->txn = 'E';
            return -1;
        }
        send_nodata_or_desc(s, &r, NULL, 0);
        pg_result_clear(&r);
        return 0;
    }
    pg_portal_t *p = *find_portal(s, name);
    if (!p) {
        char msg[200];
        snprintf(msg, sizeof msg, "portal \"%s\" does not exist", name);
        return ext_fail(s, SS_ERR_NOTFOUND, "34000", msg, NULL, -1);
    }
    if (p->direct) {
        pg_result_t r;
        memset(&r, 0, sizeof r);
        pg_errinfo_t ei = {0, "", -1, NULL};
        if (pg_describe(s, p->sql, &r, &ei)) {
            pg_result_clear(&r);
            if (ei.pos >= 0 && p->map)
                ei.pos = p->map[SS_MIN((size_t)ei.pos, strlen(p->sql))];
            send_error(s, &ei, p->orig);
            return -1;
        }
        send_nodata_or_desc(s, &r, p->fmts, p->nfmts);
        pg_result_clear(&r);
        return 0;
    }
    if (portal_run(s, p))
        return -1;
    send_nodata_or_desc(s, &p->res, p->fmts, p->nfmts);
    return 0;
}

static int on_execute(pg_sess_t *s, const uint8_t *body, size_t n)
{
    const char *name;
    int32_t max_rows;
    char err[SS_ERRSZ];
    if (pg_decode_execute(body, n, &name, &max_rows, err, sizeof err))
        return ext_fail(s, SS_ERR_INVALID, "08P01", err, NULL, -1);
    pg_portal_t *p = *find_portal(s, name);
    if (!p) {
        char msg[200];
        snprintf(msg, sizeof msg, "portal \"%s\" does not exist", name);
        return ext_fail(s, SS_ERR_NOTFOUND, "34000", msg, NULL, -1);
    }
    if (s->txn == 'E')
        return ext_fail(s, SS_ERR_INVALID, "25P02",
                        "current transaction is aborted, commands ignored until end of transaction block", NULL, -1);
    if (p->direct) {
        pg_wire_sink_t w;
        pg_wire_sink_init(&w, s, 0, p->fmts, p->nfmts);
        pg_errinfo_t ei = {0, "", -1, NULL};
        s->cancel = 0;
        int rc = pg_exec_one(s, p->sql, strlen(p->sql), &w.rs, 1, &ei);
        pg_wire_sink_free(&w);
        if (rc && rc != PG_EMPTY_STATEMENT) {
            if (ei.pos >= 0 && p->map)
                ei.pos = p->map[SS_MIN((size_t)ei.pos, strlen(p->sql))];
            send_error(s, &ei, p->orig);
            if (s->txn == 'T')
                s->txn = 'E';
            return -1;
        }
        if (rc == PG_EMPTY_STATEMENT)
            send_simple(s, 'I');
        return 0;
    }
    if (portal_run(s, p))
        return -1;
    pg_result_t *r = &p->res;
    if (!r->tag[0] && !r->has_cols) {
        send_simple(s, 'I');
        return 0;
    }
    int64_t sent = 0;
    while (r->at < r->nrows && (max_rows <= 0 || sent < max_rows) && !s->dead) {
        if (pg_send_datarow(s, r->cols, r->ncols, (const char *const *)r->cells + r->at * r->ncols, p->fmts,
                            p->nfmts)) {
            if (s->dead)
                return -1;
            return ext_fail(s, SS_ERR_INVALID, "22P03", "a value cannot be sent in binary format for its type",
                            NULL, -1);
        }
        r->at++;
        sent++;
    }
    if (r->at < r->nrows) {
        send_simple(s, 's'); /* PortalSuspended */
        return 0;
    }
    if (r->has_cols && !strncmp(r->tag, "SELECT", 6)) {
        char tag[64];
        snprintf(tag, sizeof tag, "SELECT %lld", (long long)sent);
        pg_send_complete(s, tag);
    } else {
        pg_send_complete(s, r->tag);
    }
    return 0;
}

static int on_close(pg_sess_t *s, const uint8_t *body, size_t n)
{
    char which;
    const char *name;
    char err[SS_ERRSZ];
    if (pg_decode_target(body, n, &which, &name, err, sizeof err))
        return ext_fail(s, SS_ERR_INVALID, "08P01", err, NULL, -1);
    if (which == 'S') {
        pg_stmt_t **pp = find_stmt(s, name);
        if (*pp) {
            pg_stmt_t *st = *pp;
            *pp = st->next;
            stmt_free(st);
        }
    } else {
        pg_portal_t **pp = find_portal(s, name);
        if (*pp) {
            pg_portal_t *p = *pp;
            *pp = p->next;
            portal_free(p);
        }
    }
    send_simple(s, '3');
    return 0;
}

/* DEALLOCATE and DISCARD (pgwire_exec.c calls back through these) */
int pg_deallocate(pg_sess_t *s, const char *name)
{
    if (ss_strcaseeq(name, "all")) {
        while (s->stmts) {
            pg_stmt_t *st = s->stmts;
            s->stmts = st->next;
            stmt_free(st);
        }
        return SS_OK;
    }
    pg_stmt_t **pp = find_stmt(s, name);
    if (!*pp)
        return SS_ERR_NOTFOUND;
    pg_stmt_t *st = *pp;
    *pp = st->next;
    stmt_free(st);
    return SS_OK;
}

void pg_settings_reset(pg_sess_t *s, const char *name)
{
    pg_settings_t *st = &s->set;
    for (int i = 0; i < st->n; i++)
        if (!name || ss_strcaseeq(st->names[i], name)) {
            free(st->names[i]);
            free(st->values[i]);
            st->names[i] = st->names[st->n - 1];
            st->values[i] = st->values[st->n - 1];
            st->n--;
            i--;
        }
}

void pg_settings_set(pg_sess_t *s, const char *name, const char *value) { setting_put(&s->set, name, value); }

/* ---- the session ---- */

static void session_free(pg_sess_t *s)
{
    pg_cursor_close_all(s);
    drop_portals(s);
    pg_deallocate(s, "all");
    pg_settings_reset(s, NULL);
    ss_buf_free(&s->out);
}

static int dispatch(pg_sess_t *s, char type, const uint8_t *body, size_t n, int *skip)
{
    if (*skip && type != 'S' && type != 'X')
        return 0; /* after an error, the extended protocol skips to Sync */
    char err[SS_ERRSZ];
    switch (type) {
    case 'Q': {
        const char *sql;
        if (pg_decode_query(body, n, &sql, err, sizeof err)) {
            send_fatal(s, "08P01", err);
            return -1;
        }
        drop_portals(s); /* a simple query ends the unnamed portal */
        s->cancel = 0;
        simple_query(s, sql, strlen(sql));
        send_ready(s);
        return pg_flush(s) ? -1 : 0;
    }
    case 'P': *skip = on_parse(s, body, n) != 0; return 0;
    case 'B': *skip = on_bind(s, body, n) != 0; return 0;
    case 'D': *skip = on_describe(s, body, n) != 0; return 0;
    case 'E': *skip = on_execute(s, body, n) != 0; return s->dead ? -1 : 0;
    case 'C': *skip = on_close(s, body, n) != 0; return 0;
    case 'H': return pg_flush(s) ? -1 : 0;
    case 'S':
        *skip = 0;
        if (s->txn == 'I')
            drop_portals(s); /* portals live until the end of the (implicit) transaction */
        send_ready(s);
        return pg_flush(s) ? -1 : 0;
    case 'X': return -1;
    case 'F':
        *skip = ext_fail(s, SS_ERR_UNSUPPORTED, "0A000", "the function call protocol is not supported", NULL, -1) != 0;
        return 0;
    case 'd': case 'c': case 'f': return 0; /* stray COPY data outside COPY IN: ignored, as PostgreSQL does */
    default: {
        char m[80];
        snprintf(m, sizeof m, "invalid frontend message type %d", (unsigned char)type);
        send_fatal(s, "08P01", m);
        return -1;
    }
    }
}

void pg_session_run(const pg_session_env_t *env, int fd, const char *peer)
{
    pg_sess_t s;
    memset(&s, 0, sizeof s);
    s.env = env;
    s.fd = fd;
    s.txn = 'I';
    snprintf(s.peer, sizeof s.peer, "%s", peer ? peer : "?");
    s.timeout_ms = env->statement_timeout_ms;
    if (RAND_bytes((unsigned char *)&s.key, sizeof s.key) != 1)
        s.key = (int32_t)(ss_now_ns() ^ (int64_t)(intptr_t)&s);
    pg_startup_t st;
    uint8_t *sbody = NULL;
    int rc = read_startup(&s, &st, &sbody);
    if (!rc && st.kind == PG_START_CANCEL) {
        if (env->cancel && env->cancel(env->server, st.cancel_pid, st.cancel_key) && env->count)
            env->count(env->server, "canceled");
        free(sbody);
        return;
    }
    if (!rc && !st.user) {
        send_fatal(&s, "28000", "no PostgreSQL user name specified in startup packet");
        rc = SS_ERR_INVALID;
    }
    char user[64] = "";
    if (!rc) {
        snprintf(user, sizeof user, "%s", st.user);
        s.set.user = user;
        s.set.database = st.database ? st.database : user;
    }
    if (!rc && (st.version & 0xffff) != 0) { /* a newer 3.x: say we speak 3.0 (and no _pq_ options) */
        size_t at;
        pg_msg_begin(&s.out, 'v', &at);
        pg_put_i32(&s.out, 0);
        int nopt = 0;
        for (int i = 0; i < st.npairs; i++)
            nopt += !strncmp(st.keys[i], "_pq_.", 5);
        pg_put_i32(&s.out, nopt);
        for (int i = 0; i < st.npairs; i++)
            if (!strncmp(st.keys[i], "_pq_.", 5))
                pg_put_cstr(&s.out, st.keys[i]);
        pg_msg_end(&s.out, at);
    }
    if (!rc)
        rc = authenticate(&s, user);
    if (!rc) {
        greet(&s, &st);
        if (env->register_cancel)
            env->register_cancel(env->server, env->pid, s.key, &s.cancel);
        send_ready(&s);
        rc = pg_flush(&s);
    }
    char dbname[64];
    snprintf(dbname, sizeof dbname, "%s", s.set.database ? s.set.database : "");
    s.set.database = dbname;
    free(sbody);
    int skip = 0;
    while (!rc && !s.dead && !(env->stop && *env->stop)) {
        char type;
        uint8_t *body = NULL;
        size_t n = 0;
        int mrc = read_msg(&s, env->idle_timeout_s * 1000, &type, &body, &n);
        if (mrc == SS_ERR_TIMEOUT) {
            ss_log(SS_LOG_INFO, "pgwire", "%s: idle for %d s; closing the session", s.peer, env->idle_timeout_s);
            if (env->count)
                env->count(env->server, "timeout");
            send_fatal(&s, "57P05", "terminating connection due to idle-session timeout");
            break;
        }
        if (mrc == SS_ERR_CANCELED) {
            send_fatal(&s, "57P01", "terminating connection: the server is shutting down");
            break;
        }
        if (mrc)
            break;
        if (env->count && (type == 'Q' || type == 'E'))
            env->count(env->server, "query");
        int d = dispatch(&s, type, body, n, &skip);
        free(body);
        if (d)
            break;
    }
    if (env->unregister_cancel && s.set.user)
        env->unregister_cancel(env->server, env->pid);
    session_free(&s);
}
