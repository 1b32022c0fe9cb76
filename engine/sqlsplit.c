/*
 * sqlsplit.c — splitting SQL text into statements for the front ends (shell,
 * golden-test runner): a statement ends at a ';' outside quotes and comments.
 */
#include "ss_engine.h"

#include <ctype.h>


/* Length of the first complete statement of s (through its ';'), or 0 if s holds
 * no complete statement. Quotes ('..', "..") and comments (-- .., / * .. * /) are
 * skipped. */
size_t ss_sql_stmt_end(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '\'' || c == '"') {
            for (i++; i < n; i++)
                if (s[i] == c) {
                    if (i + 1 < n && s[i + 1] == c)
                        i++;
                    else
                        break;
                }
            i++;
        } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
            while (i < n && s[i] != '\n')
                i++;
        } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            for (i += 2; i + 1 < n && !(s[i] == '*' && s[i + 1] == '/'); i++)
                ;
            i += 2;
        } else if (c == ';') {
            return i + 1;
        } else {
            i++;
        }
    }
    return 0;
}

/* 1 if s holds only whitespace and comments. */
int ss_sql_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (isspace((unsigned char)s[i]))
            continue;
        if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
            while (i < n && s[i] != '\n')
                i++;
            continue;
        }
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
            for (i += 2; i + 1 < n && !(s[i] == '*' && s[i + 1] == '/'); i++)
                ;
            i++;
            continue;
        }
        return 0;
    }
    return 1;
}

