/*
 * catalog_time.c — the time parts of CREATE STREAM (issue 13), checked when the
 * stream is created, with line:col:
 *   WITH (timestamp_format = 'iso' | 'epoch_s' | 'epoch_ms' | 'epoch_us')
 *       how a JSON number in a TIMESTAMP/TIMESTAMPTZ/INTERVAL column is read
 *       (stored as the columns' typmod: epoch units per second);
 *   WATERMARK FOR ts AS ts [- INTERVAL '...']
 *       ts must be a TIMESTAMP or TIMESTAMPTZ column, the delay a fixed,
 *       non-negative interval; the stream must be append-only (no KEY, format
 *       json): a watermark promises that older rows no longer arrive, and an
 *       update or a delete would change windows already closed. Recorded as the
 *       stream options watermark (the column) and watermark_delay_us;
 *   WITH (watermark_idle_timeout = '10 s'): a partition with nothing new for that
 *       long stops holding the watermark back (default 10 s; '0 s' = never);
 *   WITH (ttl_column = c): c must be a TIMESTAMP, TIMESTAMPTZ or DATE column.
 */
#include "plan_int.h"

#include "ss_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_IDLE "10 s"

static const ss_span_t *span_of(const ss_ast_stmt_t *st, const char *name)
{
    const ss_ast_option_t *o = ss__opt_find(st->opts, name);
    return o ? &o->span : &st->name_span;
}

static int timestamp_format(const ss_ast_stmt_t *st, ss_schema_t *sc, const char *fmt, char *err, size_t errsz)
{
    static const struct { const char *name; int units; } fmts[] = {
        {"iso", -1}, {"epoch_s", SS_TSMOD_EPOCH_S}, {"epoch_ms", SS_TSMOD_EPOCH_MS}, {"epoch_us", SS_TSMOD_EPOCH_US},
    };
    int units = -2;
    for (size_t i = 0; i < SS_ARRAY_LEN(fmts); i++)
        if (ss_strcaseeq(fmt, fmts[i].name))
            units = fmts[i].units;
    if (units == -2) {
        const ss_span_t *sp = span_of(st, "timestamp_format");
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: unknown timestamp_format '%s' for stream %s (expected "
                         "'iso', 'epoch_s', 'epoch_ms' or 'epoch_us')", sp->line, sp->col, fmt, st->name);
    }
    for (int i = 0; i < sc->n; i++)
        if (sc->types[i] == SS_COL_TIMESTAMP || sc->types[i] == SS_COL_TIMESTAMPTZ || sc->types[i] == SS_COL_INTERVAL)
            ss_schema_set_typmod(sc, i, units);
    return SS_OK;
}

/* The constant interval of a watermark expression (CAST('..' AS INTERVAL)), as µs. */
static int constant_delay(const ss_ast_stmt_t *st, const ss_ast_expr_t *x, int64_t *us, char *err, size_t errsz)
{
    char e2[256];
    ss_interval_t iv;
    if (!x || x->kind != SS_AX_CAST || x->cast_type != SS_COL_INTERVAL || !x->left ||
        x->left->kind != SS_AX_LITERAL || x->left->lit.t != SS_TEXT)
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: the watermark of stream %s must be the column minus a "
                         "constant interval: WATERMARK FOR %s AS %s - INTERVAL '5' SECOND",
                         x ? x->span.line : st->wm_span.line, x ? x->span.col : st->wm_span.col, st->name, st->wm_col,
                         st->wm_col);
    if (ss_interval_parse(x->left->lit.u.str.s, x->left->lit.u.str.n, NULL, &iv, e2, sizeof e2))
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: %s", x->span.line, x->span.col, e2);
    if (iv.months)
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: a watermark delay cannot be in months or years (their "
                         "length varies); give days, hours, minutes or seconds", x->span.line, x->span.col);
    *us = ss_interval_span_us(&iv);
    if (*us < 0)
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: a watermark delay cannot be negative", x->span.line,
                         x->span.col);
    return SS_OK;
}

static int watermark(const ss_ast_stmt_t *st, const ss_schema_t *sc, int nkeys, const char *fmt, int *nopts,
                     ss_plan_opt_t **opts, char *err, size_t errsz)
{
    int c = ss_schema_find(sc, st->wm_col);
    const ss_span_t *sp = &st->wm_span;
    if (c < 0)
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: WATERMARK FOR %s: no such column in stream %s", sp->line,
                         sp->col, st->wm_col, st->name);
    if (sc->types[c] != SS_COL_TIMESTAMP && sc->types[c] != SS_COL_TIMESTAMPTZ)
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: WATERMARK FOR %s: the column is %s; a watermark needs a "
                         "TIMESTAMP or TIMESTAMPTZ column", sp->line, sp->col, st->wm_col, ss_coltype_name(sc->types[c]));
    if (nkeys || (fmt && !ss_strcaseeq(fmt, "json")))
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: stream %s has a WATERMARK, so it must be append-only: %s "
                         "(an update or delete could change windows already closed)", sp->line, sp->col, st->name,
                         nkeys ? "declare no KEY columns" : "use format 'json'");
    int64_t delay = 0;
    const ss_ast_expr_t *x = st->wm_expr;
    if (x && x->kind == SS_AX_BINARY && x->op == SS_OP_SUB && x->left && x->left->kind == SS_AX_COLUMN &&
        !x->left->table && ss_strcaseeq(x->left->name, st->wm_col)) {
        int rc = constant_delay(st, x->right, &delay, err, errsz);
        if (rc)
            return rc;
    } else if (!(x && x->kind == SS_AX_COLUMN && !x->table && ss_strcaseeq(x->name, st->wm_col)))
        return constant_delay(st, NULL, &delay, err, errsz);
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)delay);
    if (ss__opts_add(nopts, opts, "watermark", sc->names[c]) || ss__opts_add(nopts, opts, "watermark_delay_us", buf))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    const char *idle = NULL;
    for (int i = 0; i < *nopts; i++)
        if (ss_strcaseeq((*opts)[i].name, "watermark_idle_timeout"))
            idle = (*opts)[i].value;
    int64_t us;
    char e2[128];
    if (idle && (ss_duration_us(idle, &us, e2, sizeof e2) || us < 0)) {
        const ss_span_t *is = span_of(st, "watermark_idle_timeout");
        return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: watermark_idle_timeout '%s' is not a duration (expected "
                         "e.g. '10 s', '1 minute', or '0 s' for never)", is->line, is->col, idle);
    }
    if (!idle && ss__opts_add(nopts, opts, "watermark_idle_timeout", DEFAULT_IDLE))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return SS_OK;
}

int ss__stream_time(const ss_ast_stmt_t *st, ss_schema_t *sc, int *nopts, ss_plan_opt_t **opts, char *err,
                    size_t errsz)
{
    const char *fmt = NULL, *tsfmt = NULL, *ttl_col = NULL;
    for (int i = 0; i < *nopts; i++) {
        const char *n = (*opts)[i].name;
        if (ss_strcaseeq(n, "format"))
            fmt = (*opts)[i].value;
        else if (ss_strcaseeq(n, "timestamp_format"))
            tsfmt = (*opts)[i].value;
        else if (ss_strcaseeq(n, "ttl_column"))
            ttl_col = (*opts)[i].value;
        else if (ss_strcaseeq(n, "watermark") || ss_strcaseeq(n, "watermark_delay_us")) {
            const ss_span_t *sp = span_of(st, n);
            return ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: option %s is set by WATERMARK FOR col AS ...",
                             sp->line, sp->col, n);
        }
    }
    int rc = tsfmt ? timestamp_format(st, sc, tsfmt, err, errsz) : SS_OK;
    if (!rc && ttl_col) {
        int c = ss_schema_find(sc, ttl_col);
        if (c >= 0 && !ss_coltype_is_time(sc->types[c])) {
            const ss_span_t *sp = span_of(st, "ttl_column");
            rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: ttl_column %s is %s: it must name a TIMESTAMP, "
                           "TIMESTAMPTZ or DATE column (the time each row's TTL counts from)", sp->line, sp->col,
                           ttl_col, ss_coltype_name(sc->types[c]));
        }
    }
    int nkeys = 0;
    for (int i = 0; i < sc->n; i++)
        nkeys += sc->is_key[i] != 0;
    if (!rc && st->wm_col)
        rc = watermark(st, sc, nkeys, fmt, nopts, opts, err, errsz);
    else if (!rc && ss__opt_find(st->opts, "watermark_idle_timeout")) {
        const ss_span_t *sp = span_of(st, "watermark_idle_timeout");
        rc = ss_seterr(err, errsz, SS_ERR_SEMANTIC, "%d:%d: watermark_idle_timeout needs a WATERMARK FOR col AS ... in "
                       "stream %s", sp->line, sp->col, st->name);
    }
    return rc;
}
