/*
 * plan_fixture.h — builds schemas, templates and node options by hand, for the
 * semantic-operator tests (semops_harness.h) and bench/ivm.c, and counts an operator's
 * memo rows in its state store. Header-only (static functions), needs no test framework.
 */
#ifndef PLAN_FIXTURE_H
#define PLAN_FIXTURE_H

#include "ss_plan.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Schema from "name:type[:key],..." with type t(ext) or i(nt). */
static ss_schema_t *fx_schema(const char *spec)
{
    int n = 1;
    for (const char *c = spec; *c; c++)
        n += *c == ',';
    ss_schema_t *s = ss_schema_new(n);
    char *dup = strdup(spec), *save = NULL;
    int i = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save), i++) {
        char *name = tok, *ty = strchr(tok, ':');
        int key = 0;
        ss_coltype_t t = SS_COL_TEXT;
        if (ty) {
            *ty++ = 0;
            t = *ty == 'i' ? SS_COL_INT : SS_COL_TEXT;
            key = strstr(ty, ":key") != NULL;
        }
        ss_schema_set(s, i, name, t, key);
    }
    free(dup);
    return s;
}

/* Template "text {col} text {b.col}": a "b." prefix (or "B.") refers to side 1; a reference to
 * no column of its side gets col -1. */
static ss_template_t *fx_tmpl(const char *src, const ss_schema_t *s0, const ss_schema_t *s1)
{
    ss_template_t *t = calloc(1, sizeof *t);
    t->src = strdup(src);
    t->parts = calloc(strlen(src) + 1, sizeof *t->parts);
    const char *p = src;
    while (*p) {
        ss_tmpl_part_t *pt = &t->parts[t->nparts++];
        const char *o = strchr(p, '{');
        if (o == p) {
            const char *c = strchr(p, '}');
            pt->name = strndup(p + 1, (size_t)(c - p - 1));
            const char *nm = pt->name;
            pt->side = 0;
            if (s1 && (nm[0] == 'b' || nm[0] == 'B') && nm[1] == '.') {
                pt->side = 1;
                nm += 2;
            }
            pt->col = ss_schema_find(pt->side ? s1 : s0, nm); /* -1: no such column */
            p = c + 1;
        } else {
            size_t n = o ? (size_t)(o - p) : strlen(p);
            pt->text = strndup(p, n);
            p += n;
        }
    }
    return t;
}

static void fx_opt(ss_plan_node_t *n, const char *name, const char *value)
{
    n->opts = realloc(n->opts, sizeof *n->opts * (size_t)(n->nopts + 1));
    n->opts[n->nopts].name = strdup(name);
    n->opts[n->nopts].value = strdup(value);
    n->nopts++;
}

/* Rows in node `id`'s memo tables (answers, pair members, tree memberships). */
static int64_t fx_memo_rows(sqlite3 *db, int id)
{
    static const char *const names[] = {"memo", "cmp", "cmp_m", "pair", "pair_m", "node", "gnode"};
    int64_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char q[128];
        snprintf(q, sizeof q, "SELECT count(*) FROM st_%d_%s", id, names[i]);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            n += sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return n;
}

#endif
