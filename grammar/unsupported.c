/*
 * unsupported.c — names SQL that semstream does not support yet, so that a syntax error caused by
 * it says "CASE is not supported" instead of "expected one of ...". When the parser (or the
 * lexer) fails, parse.c hands over the tokens of the statement up to the failing one and the
 * token after it; the first pair that matches a row of the table below decides the message and
 * its position. A row matches a token whose text equals `tok` (ASCII case-insensitive) when the
 * next token satisfies `next`: NULL = anything, "#" = a number, "~X" = anything but X, else
 * that text. Only statements that fail to parse are looked at, so a column named "offset" is
 * never blamed for a statement that parses.
 *
 * A feature that becomes supported is removed from the table (its row, nothing else).
 */
#include "ss_parse_int.h"

#include <string.h>

typedef struct unsupported {
    const char *tok;
    const char *next;
    const char *what; /* "<what> is not supported" */
} unsupported_t;

static const unsupported_t unsupported[] = {
    {"SIMILAR", "TO", "SIMILAR TO"},
    {"INTERVAL", NULL, "INTERVAL"},
    {"LATERAL", NULL, "LATERAL"},
    {"GROUPING", "SETS", "GROUPING SETS"},
    {"FETCH", "FIRST", "FETCH FIRST (use LIMIT)"},
    {"FETCH", "NEXT", "FETCH NEXT (use LIMIT)"},
    {"ROWS", "BETWEEN", "a window frame (ROWS BETWEEN)"},
    {"RANGE", "BETWEEN", "a window frame (RANGE BETWEEN)"},
    {"GROUPS", "BETWEEN", "a window frame (GROUPS BETWEEN)"},
    {"OVER", "~(", "a named window (OVER name)"},
};

static int tok_is(const ss_tok_t *t, const char *s)
{
    size_t n = strlen(s);
    if (!t || !t->z || (size_t)t->n != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char a = t->z[i], b = s[i];
        if (a >= 'a' && a <= 'z')
            a = (char)(a - 32);
        if (a != b)
            return 0;
    }
    return 1;
}

static int next_ok(const char *want, const ss_tok_t *next)
{
    if (!want)
        return 1;
    if (!next || !next->z || next->n == 0)
        return 0;
    if (!strcmp(want, "#"))
        return next->z[0] >= '0' && next->z[0] <= '9';
    if (want[0] == '~')
        return !tok_is(next, want + 1);
    return tok_is(next, want);
}

const char *ss_unsupported_find(const ss_tok_t *toks, int n, int *at)
{
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof unsupported / sizeof *unsupported; k++)
            if (tok_is(&toks[i], unsupported[k].tok) && next_ok(unsupported[k].next, i + 1 < n ? &toks[i + 1] : NULL)) {
                *at = i;
                return unsupported[k].what;
            }
    return NULL;
}
