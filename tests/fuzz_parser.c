/*
 * fuzz_parser.c — libFuzzer harness for ss_parse (built only with clang; run by
 * scripts/fuzz.sh). Besides "no crash, no leak, no UB", it checks invariants on
 * every successful parse: each statement's recorded text parses again to one
 * statement of the same kind, WHERE expressions rendered by ss_ast_expr_to_sql
 * re-parse to the same rendering, and the canonical SQL of each statement
 * (ss_ast_stmt_to_sql) is a fixed point: it parses and renders to itself.
 */
#include "ss_ast.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int limit_error(const char *err);

static void check_where(const ss_ast_expr_t *w)
{
    ss_buf_t a = SS_BUF_INIT, b = SS_BUF_INIT;
    char err[SS_ERRSZ];
    ss_buf_puts(&a, "SELECT 1 FROM t WHERE ");
    size_t pre = a.len;
    if (ss_ast_expr_to_sql(w, &a))
        abort();
    ss_ast_script_t *s = NULL;
    int rc = ss_parse(a.data, a.len, NULL, &s, err, sizeof err);
    if (rc == SS_OK) {
        if (s->n != 1 || ss_ast_expr_to_sql(s->stmts[0]->query->select->where, &b))
            abort();
        if (strcmp(a.data + pre, b.data)) {
            fprintf(stderr, "round trip differs:\n  %s\n  %s\n", a.data + pre, b.data);
            abort();
        }
    } else if (!limit_error(err)) {
        fprintf(stderr, "rendered WHERE does not parse: %s\n  %s\n", err, a.data);
        abort();
    }
    ss_ast_script_free(s);
    ss_buf_free(&a);
    ss_buf_free(&b);
}

static int limit_error(const char *err)
{
    return strstr(err, "nesting too deep") || strstr(err, "too deeply") || strstr(err, "too complex");
}

static void check_canonical(const ss_ast_stmt_t *st)
{
    ss_buf_t a = SS_BUF_INIT, b = SS_BUF_INIT;
    char err[SS_ERRSZ];
    if (ss_ast_stmt_to_sql(st, &a))
        abort();
    ss_ast_script_t *s = NULL;
    if (ss_parse(a.data, a.len, NULL, &s, err, sizeof err) == SS_OK) {
        if (s->n != 1 || ss_ast_stmt_to_sql(s->stmts[0], &b))
            abort();
        if (strcmp(a.data, b.data)) {
            fprintf(stderr, "canonical SQL is not a fixed point:\n  %s\n  %s\n", a.data, b.data);
            abort();
        }
    } else if (!limit_error(err)) {
        fprintf(stderr, "canonical SQL does not parse: %s\n  %s\n", err, a.data);
        abort();
    }
    ss_ast_script_free(s);
    ss_buf_free(&a);
    ss_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[SS_ERRSZ];
    ss_ast_script_t *s = NULL;
    int rc = ss_parse((const char *)data, size, "fuzz", &s, err, sizeof err);
    if (rc != SS_OK) {
        if (s || !err[0])
            abort();
        return 0;
    }
    for (int i = 0; i < s->n; i++) {
        const ss_ast_stmt_t *st = s->stmts[i];
        ss_ast_script_t *again = NULL;
        if (ss_parse(st->text, strlen(st->text), NULL, &again, err, sizeof err) != SS_OK || again->n != 1 ||
            again->stmts[0]->kind != st->kind) {
            fprintf(stderr, "statement text does not re-parse: [%s]: %s\n", st->text, err);
            abort();
        }
        ss_ast_script_free(again);
        if (st->query && st->query->select && st->query->select->where)
            check_where(st->query->select->where);
        check_canonical(st);
    }
    ss_ast_script_free(s);
    return 0;
}
