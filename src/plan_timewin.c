/*
 * plan_timewin.c — windows (issue 13): the window table functions in FROM,
 * EMIT ON WINDOW CLOSE, and which operators keep per-window state.
 *
 *   FROM TUMBLE(t, DESCRIPTOR(ts), size [, offset])
 *        HOP(t, DESCRIPTOR(ts), slide, size [, offset])
 *        SESSION(t [PARTITION BY k | (k1, k2)], DESCRIPTOR(ts), gap)
 * reads t through a TIMEWIN node that appends window_start and window_end (of
 * ts's type) to every row — one row per window the row falls in (HOP: size /
 * slide of them). GROUP BY window_start, window_end then aggregates per window,
 * a join on them joins windows, and every semantic operator works per window.
 *
 * Continuous refinement is the default: a window's rows change as its input
 * arrives, late rows included. EMIT ON WINDOW CLOSE puts an EOWC node before the
 * view: each window's changes are held until the watermark passes its end, then
 * emitted once. It needs a window_end (or, for TUMBLE and HOP, window_start)
 * column in the view's output and windows over a stream's WATERMARK column.
 *
 * Window state: after planning a view, every GROUP, SEM_AGG and partitioned
 * SEM_TOPK node whose group key holds a window's end (or start) gets the options
 * window_col (its index in the group columns), window_bound (end|start) and
 * window_size_us, and every inner or left JOIN whose keys pair both sides' window
 * bounds gets window_lcol/window_rcol/window_ladd_us/window_radd_us, so that it
 * drops a window's state once the watermark passes the window's end.
 */
#include "plan_int.h"

#include "ss_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int nomem(ss__pctx_t *x) { return ss_seterr(x->err, x->errsz, SS_ERR_NOMEM, "out of memory"); }

static int errat(ss__pctx_t *x, ss_span_t sp, const char *fmt, const char *a, const char *b)
{
    char msg[320];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC, "%d:%d: %s", sp.line, sp.col, msg);
}

/* A constant interval argument, as µs (> 0, no months). */
static int interval_arg(ss__pctx_t *x, const ss__cctx_t *cc, const ss_ast_expr_t *a, const char *what, int allow_zero,
                        int64_t *us)
{
    ss_expr_t *e = NULL;
    int rc = ss__compile(cc, a, &e);
    if (!rc && e->kind == SS_EX_LIT && e->lit.t == SS_TEXT)
        rc = ss__coerce(cc, a, &e, SS_COL_INTERVAL, what);
    if (!rc && (e->kind != SS_EX_LIT || e->lit.t != SS_IVL))
        rc = errat(x, a->span, "the %s of a window must be a constant interval (INTERVAL '10' MINUTE)%s", what, NULL);
    else if (!rc && e->lit.u.iv.months)
        rc = errat(x, a->span, "the %s of a window cannot be in months or years (their length varies)%s", what, NULL);
    if (!rc) {
        *us = ss_interval_span_us(&e->lit.u.iv);
        if (*us < 0 || (*us == 0 && !allow_zero))
            rc = errat(x, a->span, "the %s of a window must be positive%s", what, NULL);
    }
    ss_expr_free(e);
    return rc;
}

static ss_plan_node_t *find_tvf(ss__pctx_t *x, ss_plan_node_t *in, const char *label)
{
    for (int i = 0; i < x->plan->n; i++) {
        ss_plan_node_t *n = x->plan->nodes[i];
        if (n->kind == SS_PN_TIMEWIN && n->in[0] == in && ss_strcaseeq(n->label, label) && n->view &&
            ss_strcaseeq(n->view, x->view))
            return n;
    }
    return NULL;
}

int ss__plan_tvf(ss__pctx_t *x, const ss_ast_from_t *f, ss_plan_node_t **cur)
{
    const ss_ast_tvf_t *t = f->tvf;
    ss_plan_node_t *in = *cur;
    const char *fn = ss_tvf_name(t->kind);
    int nargs = t->args ? t->args->n : 0;
    int want_lo = t->kind == SS_TVF_HOP ? 3 : 2, want_hi = t->kind == SS_TVF_SESSION ? 2 : want_lo + 1;
    if (nargs < want_lo || nargs > want_hi) {
        char m[200];
        snprintf(m, sizeof m, "%s takes the table, DESCRIPTOR(time column) and %s", fn,
                 t->kind == SS_TVF_TUMBLE ? "the window size [, an offset]"
                 : t->kind == SS_TVF_HOP  ? "the slide and the size [, an offset]"
                                          : "the gap");
        return errat(x, t->span, "%s%s", m, NULL);
    }
    const ss_ast_expr_t *d = t->args->items[0];
    if (d->kind != SS_AX_FUNC || !ss_strcaseeq(d->name, "DESCRIPTOR") || !d->args || d->args->n != 1 ||
        d->args->items[0]->kind != SS_AX_COLUMN || d->args->items[0]->table)
        return errat(x, d->span, "the second argument of %s must be DESCRIPTOR(time column)%s", fn, NULL);
    const ss_ast_expr_t *dc = d->args->items[0];
    int col = ss_schema_find(in->schema, dc->name);
    if (col < 0)
        return errat(x, dc->span, "DESCRIPTOR(%s): no such column in %s", dc->name, in->label);
    if (in->schema->types[col] != SS_COL_TIMESTAMP && in->schema->types[col] != SS_COL_TIMESTAMPTZ)
        return errat(x, dc->span, "DESCRIPTOR(%s): windows need a TIMESTAMP or TIMESTAMPTZ column, not %s", dc->name,
                     ss_coltype_name(in->schema->types[col]));
    if (ss_schema_find(in->schema, "window_start") >= 0 || ss_schema_find(in->schema, "window_end") >= 0)
        return errat(x, f->span, "%s adds the columns window_start and window_end, which %s already has", fn, in->label);
    ss__scope_t sc = {.nrels = 1, .schema = in->schema};
    sc.rels[0] = (ss__rel_t){.name = in->label, .table = in->label, .what = "stream", .off = 0, .n = in->schema->n};
    ss__cctx_t cc = {.scope = &sc, .err = x->err, .errsz = x->errsz};
    int64_t size = 0, slide = 0, offset = 0, gap = 0;
    int rc = SS_OK;
    if (t->kind == SS_TVF_TUMBLE) {
        rc = interval_arg(x, &cc, t->args->items[1], "size", 0, &size);
        slide = size;
        if (!rc && nargs > 2)
            rc = interval_arg(x, &cc, t->args->items[2], "offset", 1, &offset);
    } else if (t->kind == SS_TVF_HOP) {
        rc = interval_arg(x, &cc, t->args->items[1], "slide", 0, &slide);
        if (!rc)
            rc = interval_arg(x, &cc, t->args->items[2], "size", 0, &size);
        if (!rc && nargs > 3)
            rc = interval_arg(x, &cc, t->args->items[3], "offset", 1, &offset);
        if (!rc && size / slide > 1000)
            rc = errat(x, t->args->items[2]->span, "a HOP window this large puts every row in more than 1000 windows "
                       "(size / slide); use a larger slide%s", NULL, NULL);
    } else
        rc = interval_arg(x, &cc, t->args->items[1], "gap", 0, &gap);
    if (rc)
        return rc;
    int *part = NULL;
    for (int i = 0; i < t->npart; i++) {
        int c = ss_schema_find(in->schema, t->part[i]);
        if (c < 0) {
            free(part);
            return errat(x, t->part_spans[i], "PARTITION BY %s: no such column in %s", t->part[i], in->label);
        }
        if (!part && !(part = calloc((size_t)t->npart, sizeof *part)))
            return nomem(x);
        part[i] = c;
    }
    char label[256];
    snprintf(label, sizeof label, "%s(%s, %s, %lld us)", fn, in->label, in->schema->names[col],
             (long long)(t->kind == SS_TVF_SESSION ? gap : size));
    ss_plan_node_t *n = find_tvf(x, in, label);
    if (n) {
        free(part);
        *cur = n;
        return SS_OK;
    }
    if (!(n = ss__new_node(x, SS_PN_TIMEWIN, in, NULL, label)) || !(n->schema = ss_schema_new(in->schema->n + 2)) ||
        !(n->exprs = calloc(1, sizeof *n->exprs)) || !(n->exprs[0] = ss_expr_new(SS_EX_COL))) {
        free(part);
        return nomem(x);
    }
    n->group_cols = part;
    n->ngroup = t->npart;
    n->nexprs = 1;
    n->exprs[0]->col = col;
    n->exprs[0]->type = in->schema->types[col];
    for (int i = 0; i < in->schema->n; i++) {
        if (ss_schema_set(n->schema, i, in->schema->names[i], in->schema->types[i], in->schema->is_key[i]))
            return nomem(x);
        ss_schema_set_typmod(n->schema, i, in->schema->typmod ? in->schema->typmod[i] : -1);
    }
    if (ss_schema_set(n->schema, in->schema->n, "window_start", in->schema->types[col], 0) ||
        ss_schema_set(n->schema, in->schema->n + 1, "window_end", in->schema->types[col], 0))
        return nomem(x);
    static const char *const kinds[] = {"", "tumble", "hop", "session"};
    char v[32];
    rc = ss__opts_add(&n->nopts, &n->opts, "window", kinds[t->kind]);
    snprintf(v, sizeof v, "%lld", (long long)size);
    rc = rc || ss__opts_add(&n->nopts, &n->opts, "size_us", v);
    snprintf(v, sizeof v, "%lld", (long long)slide);
    rc = rc || ss__opts_add(&n->nopts, &n->opts, "slide_us", v);
    snprintf(v, sizeof v, "%lld", (long long)offset);
    rc = rc || ss__opts_add(&n->nopts, &n->opts, "offset_us", v);
    snprintf(v, sizeof v, "%lld", (long long)gap);
    rc = rc || ss__opts_add(&n->nopts, &n->opts, "gap_us", v);
    if (rc)
        return nomem(x);
    *cur = n;
    return SS_OK;
}

/* ---- lineage: which window column an output column comes from ---- */

/* Follows column col of node n back to a TIMEWIN node's window_start (*which = 0) or window_end (1). */
static const ss_plan_node_t *lineage(const ss_plan_node_t *n, int col, int *which, int depth)
{
    while (n && depth++ < 256 && col >= 0) {
        switch (n->kind) {
        case SS_PN_TIMEWIN:
            if (col >= n->in[0]->schema->n) {
                *which = col - n->in[0]->schema->n;
                return n;
            }
            n = n->in[0];
            break;
        case SS_PN_PROJECT:
            if (col >= n->nexprs || n->exprs[col]->kind != SS_EX_COL)
                return NULL;
            col = n->exprs[col]->col;
            n = n->in[0];
            break;
        case SS_PN_FILTER: case SS_PN_TEMPORAL: case SS_PN_TOPK: case SS_PN_DISTINCT: case SS_PN_SEM_FILTER:
        case SS_PN_SEM_MAP: case SS_PN_SEM_TOPK: case SS_PN_EOWC: case SS_PN_VIEW:
            n = n->in[0];
            break;
        case SS_PN_GROUP: case SS_PN_SEM_AGG:
            if (col >= n->ngroup)
                return NULL;
            col = n->group_cols[col];
            n = n->in[0];
            break;
        case SS_PN_JOIN: case SS_PN_SEM_JOIN: {
            int lw = n->in[0]->schema->n;
            if (col < lw)
                n = n->in[0];
            else {
                col -= lw;
                n = n->in[1];
            }
            break;
        }
        default:
            return NULL;
        }
    }
    return NULL;
}

static int64_t opt_i(const ss_plan_node_t *n, const char *k) { return ss_plan_opt_int(n, k, 0); }

/* The SOURCE column a TIMEWIN's time column comes from, and whether it is the stream's watermark. */
static int on_watermark(const ss_plan_node_t *tw, const char **stream, const char **wm_col)
{
    const ss_plan_node_t *n = tw->in[0];
    int col = tw->exprs[0]->col;
    for (int d = 0; n && d < 256; d++) {
        if (n->kind == SS_PN_SOURCE) {
            const char *wm = ss_plan_opt(n, "watermark");
            *stream = n->label;
            *wm_col = wm;
            return wm && ss_strcaseeq(wm, n->schema->names[col]);
        }
        if (n->kind == SS_PN_PROJECT) {
            if (col >= n->nexprs || n->exprs[col]->kind != SS_EX_COL)
                return 0;
            col = n->exprs[col]->col;
        } else if (n->kind == SS_PN_JOIN) {
            int lw = n->in[0]->schema->n;
            if (col >= lw) {
                col -= lw;
                n = n->in[1];
                continue;
            }
        } else if (!(n->kind == SS_PN_FILTER || n->kind == SS_PN_TEMPORAL || n->kind == SS_PN_TIMEWIN ||
                     n->kind == SS_PN_VIEW || n->kind == SS_PN_SEM_FILTER || n->kind == SS_PN_SEM_MAP))
            return 0;
        n = n->in[0];
    }
    return 0;
}

int ss__plan_eowc(ss__pctx_t *x, ss_span_t at, ss_plan_node_t **top)
{
    ss_plan_node_t *in = *top;
    int best = -1, bound = 0;
    const ss_plan_node_t *tw = NULL;
    for (int c = 0; c < in->schema->n; c++) {
        int which = -1;
        const ss_plan_node_t *w = lineage(in, c, &which, 0);
        if (!w || (which == 0 && ss_strcaseeq(ss_plan_opt(w, "window"), "session")))
            continue;
        if (best < 0 || (which == 1 && bound == 0)) {
            best = c;
            bound = which;
            tw = w;
        }
    }
    if (best < 0)
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: EMIT ON WINDOW CLOSE needs the window's end in the view's columns: select window_end "
                         "(or window_start) of a TUMBLE, HOP or SESSION in FROM, and group by it", at.line, at.col);
    const char *stream = "?", *wm = NULL;
    if (!on_watermark(tw, &stream, &wm))
        return ss_seterr(x->err, x->errsz, SS_ERR_SEMANTIC,
                         "%d:%d: EMIT ON WINDOW CLOSE closes a window when the watermark passes its end, but %s%s%s%s "
                         "(the windows are over %s)", at.line, at.col, wm ? "the watermark of stream " : "stream ",
                         stream, wm ? " is on column " : " declares no WATERMARK FOR ... AS ...", wm ? wm : "",
                         tw->in[0]->schema->names[tw->exprs[0]->col]);
    ss_plan_node_t *n = ss__new_node(x, SS_PN_EOWC, in, NULL, "emit on window close");
    if (!n || !(n->schema = ss_schema_copy(in->schema)))
        return nomem(x);
    char v[32];
    snprintf(v, sizeof v, "%d", best);
    int rc = ss__opts_add(&n->nopts, &n->opts, "window_col", v);
    rc = rc || ss__opts_add(&n->nopts, &n->opts, "window_bound", bound ? "end" : "start");
    snprintf(v, sizeof v, "%lld", (long long)opt_i(tw, "size_us"));
    rc = rc || ss__opts_add(&n->nopts, &n->opts, "window_size_us", v);
    if (rc)
        return nomem(x);
    *top = n;
    return SS_OK;
}

/* Window bound of column col of n's input k: the TIMEWIN, which bound (0 start, 1 end); NULL if none. */
static const ss_plan_node_t *bound_of(const ss_plan_node_t *n, int k, int col, int *which)
{
    *which = -1;
    const ss_plan_node_t *w = lineage(n->in[k], col, which, 0);
    if (w && *which == 0 && ss_strcaseeq(ss_plan_opt(w, "window"), "session"))
        return NULL; /* a session's start moves when it merges */
    return w;
}

static int add_i(ss_plan_node_t *n, const char *k, int64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)v);
    return ss__opts_add(&n->nopts, &n->opts, k, s);
}

/* A JOIN whose key pairs a window bound of each side with the same end (q8's windowed join,
 * GROUP JOIN SEM_AGG on a window): window_lcol/window_rcol (input columns) and
 * window_ladd_us/window_radd_us (end = column + add). */
static int mark_join(ss__pctx_t *x, ss_plan_node_t *n)
{
    for (int i = 0; i < n->nkeys; i++) {
        int wl, wr;
        const ss_plan_node_t *tl = bound_of(n, 0, n->lkeys[i], &wl), *tr = bound_of(n, 1, n->rkeys[i], &wr);
        if (!tl || !tr || wl != wr)
            continue;
        int64_t al = wl ? 0 : opt_i(tl, "size_us"), ar = wr ? 0 : opt_i(tr, "size_us");
        if (al != ar)
            continue; /* equal keys would not mean equal ends */
        int rc = add_i(n, "window_lcol", n->lkeys[i]) || add_i(n, "window_rcol", n->rkeys[i]) ||
                 add_i(n, "window_ladd_us", al) || add_i(n, "window_radd_us", ar);
        return rc ? nomem(x) : SS_OK;
    }
    return SS_OK;
}

int ss__mark_window_state(ss__pctx_t *x)
{
    for (int i = 0; i < x->plan->n; i++) {
        ss_plan_node_t *n = x->plan->nodes[i];
        if (!n->view || !ss_strcaseeq(n->view, x->view) || ss_plan_opt(n, "window_col") ||
            ss_plan_opt(n, "window_lcol"))
            continue;
        if (n->kind == SS_PN_JOIN) {
            int rc = n->join_type == SS_JOIN_INNER || n->join_type == SS_JOIN_LEFT ? mark_join(x, n) : SS_OK;
            if (rc)
                return rc;
            continue;
        }
        if (n->kind != SS_PN_GROUP && n->kind != SS_PN_SEM_AGG && n->kind != SS_PN_SEM_TOPK)
            continue;
        int best = -1, bound = 0;
        const ss_plan_node_t *tw = NULL;
        for (int k = 0; k < n->ngroup; k++) {
            int which = -1;
            const ss_plan_node_t *w = bound_of(n, 0, n->group_cols[k], &which);
            if (!w)
                continue;
            if (best < 0 || (which == 1 && bound == 0)) {
                best = k;
                bound = which;
                tw = w;
            }
        }
        if (best < 0)
            continue;
        int rc = add_i(n, "window_col", best);
        rc = rc || ss__opts_add(&n->nopts, &n->opts, "window_bound", bound ? "end" : "start");
        rc = rc || add_i(n, "window_size_us", opt_i(tw, "size_us"));
        if (rc)
            return nomem(x);
    }
    return SS_OK;
}
