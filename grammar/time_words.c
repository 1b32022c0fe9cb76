/*
 * time_words.c — the contextual keywords of the time syntax (issue 13): words
 * that are keywords only where the tokens around them make them one, so that no
 * name is reserved (a column may still be called interval, date or partition).
 *   INTERVAL 'x' [unit]    TIMESTAMP|TIMESTAMPTZ|DATE 'x'    EXTRACT (
 *   WATERMARK FOR          EMIT ON        WITHOUT TIME
 * grammar/parse.c asks ss_time_keyword about each identifier it feeds.
 */
#include "ss_parse_int.h"
#include "ss_time.h"
#include "parser.h"

#include <string.h>
#include <strings.h>

/* Case-insensitive comparison of a token's text with a word (never matches a quoted name). */
static int tok_is(const ss_tok_t *t, const char *w)
{
    size_t n = strlen(w);
    return t && t->z && !t->quoted && (size_t)t->n == n && !strncasecmp(t->z, w, n);
}

int ss_time_keyword(int code, const ss_tok_t *t, int next, const ss_tok_t *nt, int prev, int prev2)
{
    if (code != TK_ID)
        return code;
    if (tok_is(t, "INTERVAL") && next == TK_STRING)
        return TK_INTERVAL;
    if ((tok_is(t, "TIMESTAMP") || tok_is(t, "TIMESTAMPTZ") || tok_is(t, "DATE")) && next == TK_STRING)
        return TK_TYPEDLIT;
    if (prev == TK_STRING && prev2 == TK_INTERVAL && !t->quoted && t->n < 32) {
        char w[32];
        memcpy(w, t->z, (size_t)t->n);
        w[t->n] = 0;
        if (ss_interval_unit_ok(w))
            return TK_IVUNIT;
    }
    if (tok_is(t, "EXTRACT") && next == TK_LP)
        return TK_EXTRACT;
    if (tok_is(t, "WATERMARK") && next == TK_ID && tok_is(nt, "FOR"))
        return TK_WATERMARK;
    if (tok_is(t, "EMIT") && next == TK_ON)
        return TK_EMIT;
    if (tok_is(t, "WITHOUT") && next == TK_ID && tok_is(nt, "TIME"))
        return TK_WITHOUT;
    return code;
}

