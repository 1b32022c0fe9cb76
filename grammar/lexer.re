/*
 * lexer.re — the semstream SQL tokenizer (re2c 3.0 input; build/gen/lexer.c).
 *
 * Scans a NUL-terminated copy of the source (the NUL at `end` is the sentinel;
 * a NUL byte before `end` is an unrecognized character). Produces TK_* codes
 * from the Lemon parser (parser.h) and tokens that point into the buffer.
 * Keywords are case-insensitive and looked up in one sorted table, which also
 * gives the display names used by "expected ..." error lists. Strings,
 * "quoted identifiers" and block comments are scanned by hand so that an
 * unterminated one is reported at its opening position.
 */
#include "ss_parse_int.h"
#include "parser.h"

#include <stdio.h>
#include <string.h>

typedef struct keyword {
    const char *name; /* upper case; the table is sorted by name */
    int code;
} keyword_t;

static const keyword_t keywords[] = {
    {"ALL", TK_ALL}, {"AND", TK_AND}, {"AS", TK_AS}, {"ASC", TK_ASC}, {"BETWEEN", TK_BETWEEN},
    {"BY", TK_BY}, {"CASE", TK_CASE}, {"CAST", TK_CAST}, {"CONTINUOUS", TK_CONTINUOUS},
    {"CREATE", TK_CREATE}, {"CROSS", TK_CROSS}, {"DELETE", TK_DELETE}, {"DESC", TK_DESC},
    {"DISTINCT", TK_DISTINCT}, {"DROP", TK_DROP}, {"ELSE", TK_ELSE}, {"END", TK_END},
    {"ESCAPE", TK_ESCAPE}, {"EXCEPT", TK_EXCEPT}, {"EXISTS", TK_EXISTS}, {"EXPLAIN", TK_EXPLAIN},
    {"FALSE", TK_FALSE}, {"FILTER", TK_FILTER}, {"FROM", TK_FROM}, {"FULL", TK_FULL},
    {"GROUP", TK_GROUP}, {"HAVING", TK_HAVING}, {"IF", TK_IF}, {"ILIKE", TK_ILIKE}, {"IN", TK_IN},
    {"INNER", TK_INNER}, {"INSERT", TK_INSERT}, {"INTERSECT", TK_INTERSECT}, {"INTO", TK_INTO},
    {"IS", TK_IS}, {"JOIN", TK_JOIN}, {"KEY", TK_KEY}, {"LEFT", TK_LEFT}, {"LIKE", TK_LIKE},
    {"LIMIT", TK_LIMIT}, {"LLM_GENERATE", TK_LLM_GENERATE}, {"MODEL", TK_MODEL},
    {"MODELS", TK_MODELS}, {"NATURAL", TK_NATURAL}, {"NOT", TK_NOT}, {"NULL", TK_NULL},
    {"OFFSET", TK_OFFSET}, {"ON", TK_ON}, {"OR", TK_OR}, {"ORDER", TK_ORDER}, {"OUTER", TK_OUTER},
    {"OVER", TK_OVER}, {"PARTITION", TK_PARTITION}, {"PRIMARY", TK_PRIMARY},
    {"RECURSIVE", TK_RECURSIVE}, {"RIGHT", TK_RIGHT}, {"SELECT", TK_SELECT},
    {"SEM_AGG", TK_SEM_AGG}, {"SEM_CLASSIFY", TK_SEM_CLASSIFY}, {"SEM_CLUSTER", TK_SEM_CLUSTER},
    {"SEM_DEDUP", TK_SEM_DEDUP}, {"SEM_EXTRACT", TK_SEM_EXTRACT}, {"SEM_FILTER", TK_SEM_FILTER},
    {"SEM_GROUP", TK_SEM_GROUP}, {"SEM_JOIN", TK_SEM_JOIN},
    {"SEM_MAP", TK_SEM_MAP}, {"SEM_RANK", TK_SEM_RANK}, {"SEM_SCORE", TK_SEM_SCORE},
    {"SEM_SEARCH", TK_SEM_SEARCH}, {"SEM_SIM_JOIN", TK_SEM_SIM_JOIN},
    {"SET", TK_SET}, {"SHOW", TK_SHOW}, {"STREAM", TK_STREAM}, {"STREAMS", TK_STREAMS},
    {"SUBSCRIBE", TK_SUBSCRIBE}, {"THEN", TK_THEN}, {"TRUE", TK_TRUE}, {"UNION", TK_UNION},
    {"USING", TK_USING}, {"VALUES", TK_VALUES}, {"VIEW", TK_VIEW}, {"VIEWS", TK_VIEWS},
    {"WHEN", TK_WHEN}, {"WHERE", TK_WHERE}, {"WITH", TK_WITH},
};

/* Compares s[0..n) case-insensitively with the upper-case keyword kw. */
static int kwcmp(const char *s, size_t n, const char *kw)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        if (!kw[i] || c != (unsigned char)kw[i])
            return kw[i] ? (c < (unsigned char)kw[i] ? -1 : 1) : 1;
    }
    return kw[n] ? -1 : 0;
}

static int keyword_code(const char *s, size_t n)
{
    int lo = 0, hi = (int)SS_ARRAY_LEN(keywords) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = kwcmp(s, n, keywords[mid].name);
        if (c == 0)
            return keywords[mid].code;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return 0;
}

int ss_lex_is_keyword(const char *s, size_t n) { return keyword_code(s, n) != 0; }

int ss_lex_is_reserved(const char *s, size_t n)
{
    switch (keyword_code(s, n)) {
    case 0: /* the %fallback list of parser.y: these are names where a name fits */
    case TK_STREAM: case TK_STREAMS: case TK_VIEW: case TK_VIEWS: case TK_MODEL: case TK_MODELS:
    case TK_CONTINUOUS: case TK_KEY: case TK_PRIMARY: case TK_IF: case TK_EXISTS: case TK_ASC:
    case TK_DESC: case TK_SET: case TK_SHOW: case TK_SUBSCRIBE: case TK_EXPLAIN: case TK_ESCAPE:
        return 0;
    /* RIGHT FULL CROSS NATURAL USING OVER PARTITION FILTER RECURSIVE are names except in their
     * context (grammar/parse.c); rendered names quote them so that they never take that role. */
    default:
        return 1;
    }
}

const char *ss_token_name(int code)
{
    switch (code) {
    case 0: return "end of input";
    case TK_ID: return "identifier";
    case TK_STRING: return "string";
    case TK_INTEGER: return "integer";
    case TK_FLOAT: return "number";
    case TK_SEMI: return "';'";
    case TK_LP: return "'('";
    case TK_RP: return "')'";
    case TK_COMMA: return "','";
    case TK_DOT: return "'.'";
    case TK_STAR: return "'*'";
    case TK_PLUS: return "'+'";
    case TK_MINUS: return "'-'";
    case TK_SLASH: return "'/'";
    case TK_REM: return "'%'";
    case TK_CONCAT: return "'||'";
    case TK_EQ: return "'='";
    case TK_NE: return "'!='";
    case TK_LT: return "'<'";
    case TK_LE: return "'<='";
    case TK_GT: return "'>'";
    case TK_GE: return "'>='";
    case TK_DCOLON: return "'::'";
    case TK_ARROW: return "'->'";
    case TK_ARROW2: return "'->>'";
    case TK_FATARROW: return "'=>'";
    default: break;
    }
    for (size_t i = 0; i < SS_ARRAY_LEN(keywords); i++)
        if (keywords[i].code == code)
            return keywords[i].name;
    return NULL; /* internal precedence-only terminals */
}

void ss_lex_init(ss_lexer_t *lx, const char *buf, size_t len)
{
    memset(lx, 0, sizeof *lx);
    lx->buf = lx->cur = lx->line_start = (const unsigned char *)buf;
    lx->end = lx->buf + len;
    lx->line = 1;
}

static int lex_error(ss_lexer_t *lx, const unsigned char *at, const char *msg)
{
    snprintf(lx->msg, sizeof lx->msg, "%s", msg);
    lx->err_line = lx->line;
    lx->err_col = (int)(at - lx->line_start) + 1;
    return -1;
}

/* Scans a quoted token whose opening quote q is at lx->cur - 1; doubled quotes
 * escape. Returns 0, -1 if it is not closed, or -2 with *nul at a NUL byte
 * inside it (statement texts are C strings: NUL bytes are refused everywhere). */
static int scan_quoted(ss_lexer_t *lx, unsigned char q, const unsigned char **nul)
{
    const unsigned char *p = lx->cur;
    for (;;) {
        if (p >= lx->end)
            return -1;
        if (*p == 0) {
            *nul = p;
            return -2;
        }
        if (*p == q) {
            if (p + 1 < lx->end && p[1] == q) {
                p += 2;
                continue;
            }
            lx->cur = p + 1;
            return 0;
        }
        if (*p == '\n') {
            lx->line++;
            lx->line_start = p + 1;
        }
        p++;
    }
}

static int scan_block_comment(ss_lexer_t *lx, const unsigned char **nul)
{
    const unsigned char *p = lx->cur;
    for (; p < lx->end; p++) {
        if (*p == 0) {
            *nul = p;
            return -2;
        }
        if (p + 1 >= lx->end)
            break;
        if (p[0] == '*' && p[1] == '/') {
            lx->cur = p + 2;
            return 0;
        }
        if (*p == '\n') {
            lx->line++;
            lx->line_start = p + 1;
        }
    }
    return -1;
}

static int unrecognized(ss_lexer_t *lx, const unsigned char *at)
{
    char m[64];
    if (*at >= 0x21 && *at < 0x7f)
        snprintf(m, sizeof m, "unrecognized character \"%c\"", *at);
    else
        snprintf(m, sizeof m, "unrecognized character \"\\x%02x\"", *at);
    return lex_error(lx, at, m);
}

int ss_lex(ss_lexer_t *lx, ss_tok_t *t)
{
    const unsigned char *mar = NULL, *tok, *nul = NULL;
    int code;
    (void)mar;
loop:
    tok = lx->cur;
    t->z = (const char *)tok;
    t->line = lx->line;
    t->col = (int)(tok - lx->line_start) + 1;
    t->off = (int)(tok - lx->buf);
    t->quoted = 0;
    t->aux = 0;
    /*!re2c
        re2c:define:YYCTYPE = "unsigned char";
        re2c:define:YYCURSOR = "lx->cur";
        re2c:define:YYMARKER = "mar";
        re2c:yyfill:enable = 0;

        digit = [0-9];
        idstart = [a-zA-Z_\x80-\xff];
        idchar = [a-zA-Z0-9_$\x80-\xff];
        exp = [eE] [+-]? digit+;

        "\x00" {
            if (tok >= lx->end) {
                lx->cur = tok; /* stay at the end */
                t->n = 0;
                return 0;
            }
            return unrecognized(lx, tok);
        }
        [ \t\r\f\v]+ { goto loop; }
        "\n" { lx->line++; lx->line_start = lx->cur; goto loop; }
        "--" [^\n\x00]* { goto loop; }
        "/*" {
            int rc = scan_block_comment(lx, &nul);
            if (rc == -2)
                return unrecognized(lx, nul);
            if (rc) {
                lx->cur = lx->end;
                return lex_error(lx, tok, "unterminated comment");
            }
            goto loop;
        }
        "'" {
            int line = lx->line;
            const unsigned char *ls = lx->line_start;
            int rc = scan_quoted(lx, '\'', &nul);
            if (rc == -2)
                return unrecognized(lx, nul);
            if (rc) {
                lx->line = line;
                lx->line_start = ls;
                return lex_error(lx, tok, "unterminated string");
            }
            code = TK_STRING;
            goto done;
        }
        "\"" {
            int line = lx->line;
            const unsigned char *ls = lx->line_start;
            int rc = scan_quoted(lx, '"', &nul);
            if (rc == -2)
                return unrecognized(lx, nul);
            if (rc) {
                lx->line = line;
                lx->line_start = ls;
                return lex_error(lx, tok, "unterminated quoted identifier");
            }
            t->quoted = 1;
            code = TK_ID;
            goto done;
        }
        idstart idchar* {
            code = keyword_code((const char *)tok, (size_t)(lx->cur - tok));
            if (!code)
                code = TK_ID;
            goto done;
        }
        digit+ { code = TK_INTEGER; goto done; }
        (digit+ "." digit* | "." digit+) exp? | digit+ exp { code = TK_FLOAT; goto done; }
        (digit+ | digit+ "." digit* | "." digit+) exp? [a-zA-Z_$\x80-\xff] idchar* {
            char m[96];
            int n = (int)(lx->cur - tok);
            snprintf(m, sizeof m, "malformed number \"%.*s%s\"", n > 40 ? 37 : n, (const char *)tok,
                     n > 40 ? "..." : "");
            return lex_error(lx, tok, m);
        }
        "(" { code = TK_LP; goto done; }
        ")" { code = TK_RP; goto done; }
        "," { code = TK_COMMA; goto done; }
        ";" { code = TK_SEMI; goto done; }
        "." { code = TK_DOT; goto done; }
        "*" { code = TK_STAR; goto done; }
        "+" { code = TK_PLUS; goto done; }
        "-" { code = TK_MINUS; goto done; }
        "/" { code = TK_SLASH; goto done; }
        "%" { code = TK_REM; goto done; }
        "||" { code = TK_CONCAT; goto done; }
        "::" { code = TK_DCOLON; goto done; }
        "->" { code = TK_ARROW; goto done; }
        "->>" { code = TK_ARROW2; goto done; }
        "=>" { code = TK_FATARROW; goto done; }
        "=" | "==" { code = TK_EQ; goto done; }
        "!=" | "<>" { code = TK_NE; goto done; }
        "<" { code = TK_LT; goto done; }
        "<=" { code = TK_LE; goto done; }
        ">" { code = TK_GT; goto done; }
        ">=" { code = TK_GE; goto done; }
        * { return unrecognized(lx, tok); }
    */
done:
    t->n = (int)(lx->cur - tok);
    return code;
}
