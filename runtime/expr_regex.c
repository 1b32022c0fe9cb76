/*
 * expr_regex.c — regular expressions in SQL through PCRE2 (Debian's
 * libpcre2-dev): regexp_replace(s, pattern, replacement [, flags]),
 * regexp_match(s, pattern [, flags]) (the capture groups as a JSON array, or
 * NULL), regexp_like(s, pattern [, flags]) and regexp_substr(s, pattern).
 * Flags as in PostgreSQL: g (every match), i (case-insensitive), n/m
 * (newline-sensitive), s, x; replacements use \1..\9 and \& like PostgreSQL.
 * Compiled patterns are cached per thread (the last few patterns); a thread's
 * cache is freed when the thread ends (pipelines come and go with rebuilds).
 */
#include "expr_int.h"

#include "ss_json.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CACHE 8

typedef struct rx_entry {
    char *pat;
    size_t n;
    uint32_t opts;
    pcre2_code *code;
} rx_entry_t;

typedef struct rx_cache {
    rx_entry_t e[CACHE];
    int next;
} rx_cache_t;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *arg)
{
    rx_cache_t *c = arg;
    for (int i = 0; c && i < CACHE; i++) {
        pcre2_code_free(c->e[i].code);
        free(c->e[i].pat);
    }
    free(c);
}

static void cache_key_init(void) { pthread_key_create(&cache_key, cache_free); }

/* This thread's cache (NULL when out of memory: then nothing is cached). */
static rx_cache_t *thread_cache(void)
{
    pthread_once(&cache_once, cache_key_init);
    rx_cache_t *c = pthread_getspecific(cache_key);
    if (!c && (c = calloc(1, sizeof *c)) && pthread_setspecific(cache_key, c)) {
        free(c);
        c = NULL;
    }
    return c;
}

static pcre2_code *compile(const ss_expr_t *e, const char *p, size_t n, uint32_t opts, pcre2_code **owned,
                           char *err, size_t errsz)
{
    *owned = NULL;
    rx_cache_t *tc = thread_cache();
    rx_entry_t *cache = tc ? tc->e : NULL;
    for (int i = 0; cache && i < CACHE; i++)
        if (cache[i].code && cache[i].opts == opts && cache[i].n == n && !memcmp(cache[i].pat, p, n))
            return cache[i].code;
    int ec;
    PCRE2_SIZE eoff;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)p, n, opts | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eoff, NULL);
    if (!c) {
        PCRE2_UCHAR msg[200];
        pcre2_get_error_message(ec, msg, sizeof msg);
        ss__x_fail(e, err, errsz, "invalid regular expression: %s at offset %zu", (const char *)msg, (size_t)eoff);
        return NULL;
    }
    if (!tc) { /* uncached: the caller frees it */
        *owned = c;
        return c;
    }
    rx_entry_t *slot = &cache[tc->next];
    tc->next = (tc->next + 1) % CACHE;
    pcre2_code_free(slot->code);
    free(slot->pat);
    slot->pat = ss_strndup(p, n);
    slot->n = n;
    slot->opts = opts;
    slot->code = c;
    if (!slot->pat) {
        *owned = c;
        slot->code = NULL;
    }
    return c;
}

/* PostgreSQL flag letters to PCRE2 options; *global for g. -1 on an unknown flag. */
static int flags_of(const ss_expr_t *e, const char *f, size_t n, uint32_t *opts, int *global, char *err, size_t errsz)
{
    *opts = 0;
    *global = 0;
    for (size_t i = 0; i < n; i++) {
        switch (f[i]) {
        case 'g': *global = 1; break;
        case 'i': *opts |= PCRE2_CASELESS; break;
        case 'c': *opts &= ~(uint32_t)PCRE2_CASELESS; break;
        case 'n': case 'm': *opts |= PCRE2_MULTILINE; break;
        case 's': *opts |= PCRE2_DOTALL; break;
        case 'x': *opts |= PCRE2_EXTENDED; break;
        default: return ss__x_fail(e, err, errsz, "invalid regular expression option: \"%c\"", f[i]);
        }
    }
    if (!(*opts & PCRE2_MULTILINE))
        *opts |= PCRE2_DOTALL; /* PostgreSQL: . matches a newline unless n */
    return SS_OK;
}

/* Appends the replacement with \1..\9 and \& substituted. */
static int put_replacement(ss_buf_t *b, const char *r, size_t rn, const char *s, const PCRE2_SIZE *ov, int nov)
{
    int rc = 0;
    for (size_t i = 0; i < rn && !rc; i++) {
        if (r[i] == '\\' && i + 1 < rn && ((r[i + 1] >= '1' && r[i + 1] <= '9') || r[i + 1] == '&')) {
            int g = r[i + 1] == '&' ? 0 : r[i + 1] - '0';
            if (g < nov && ov[2 * g] != PCRE2_UNSET)
                rc = ss_buf_append(b, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
            i++;
        } else if (r[i] == '\\' && i + 1 < rn && r[i + 1] == '\\') {
            rc = ss_buf_putc(b, '\\');
            i++;
        } else
            rc = ss_buf_putc(b, r[i]);
    }
    return rc;
}

int ss__x_regex(const ss_expr_t *e, const char *f, const ss_value_t *a, int nargs, ss_value_t *out,
                char **owned, char *err, size_t errsz)
{
    const char *s, *p, *r = "", *fl = "";
    size_t sn, pn, rn = 0, fn = 0;
    char *t[4] = {0};
    int rc = ss__x_text(&a[0], &s, &sn, &t[0]);
    if (!rc)
        rc = ss__x_text(&a[1], &p, &pn, &t[1]);
    int replace = !strcmp(f, "REGEXP_REPLACE");
    if (!rc && replace)
        rc = ss__x_text(&a[2], &r, &rn, &t[2]);
    int fi = replace ? 3 : 2;
    if (!rc && nargs > fi)
        rc = ss__x_text(&a[fi], &fl, &fn, &t[3]);
    uint32_t opts = 0;
    int global = 0;
    if (!rc)
        rc = flags_of(e, fl, fn, &opts, &global, err, errsz);
    pcre2_code *uncached = NULL;
    pcre2_code *code = rc ? NULL : compile(e, p, pn, opts, &uncached, err, errsz);
    pcre2_match_data *md = code ? pcre2_match_data_create_from_pattern(code, NULL) : NULL;
    if (!rc && !code)
        rc = SS_ERR_INVALID;
    else if (!rc && !md)
        rc = EMSG(SS_ERR_NOMEM, "out of memory");
    ss_buf_t b = SS_BUF_INIT;
    if (!rc) {
        PCRE2_SIZE start = 0;
        int m = pcre2_match(code, (PCRE2_SPTR)s, sn, 0, 0, md, NULL);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (m < PCRE2_ERROR_NOMATCH)
            rc = ss__x_fail(e, err, errsz, "regular expression failed (PCRE2 error %d)", m);
        else if (!strcmp(f, "REGEXP_LIKE"))
            *out = ss_val_int(m > 0);
        else if (!strcmp(f, "REGEXP_SUBSTR")) {
            if (m > 0 && !(rc = ss_buf_append(&b, s + ov[0], ov[1] - ov[0])))
                rc = ss__x_take_buf(out, owned, &b, SS_TEXT);
        } else if (!strcmp(f, "REGEXP_MATCH")) {
            if (m > 0) { /* groups (or the whole match without groups) as a JSON array of strings */
                int first = m > 1 ? 1 : 0, last = m > 1 ? m - 1 : 0;
                rc = ss_buf_putc(&b, '[');
                for (int g = first; g <= last && !rc; g++) {
                    if (g > first)
                        rc = ss_buf_putc(&b, ',');
                    if (!rc && ov[2 * g] == PCRE2_UNSET)
                        rc = ss_buf_puts(&b, "null");
                    else if (!rc)
                        rc = ss_json_put_str_utf8(&b, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
                }
                if (!rc && !(rc = ss_buf_putc(&b, ']')))
                    rc = ss__x_take_buf(out, owned, &b, SS_JSON);
            }
        } else { /* REGEXP_REPLACE */
            while (!rc && m > 0) {
                rc = ss_buf_append(&b, s + start, ov[0] - start);
                if (!rc)
                    rc = put_replacement(&b, r, rn, s, ov, m);
                start = ov[1];
                if (!global)
                    break;
                if (ov[1] == ov[0]) { /* empty match: copy one character and go on */
                    if (start >= sn)
                        break;
                    size_t k = start + 1;
                    while (k < sn && ((unsigned char)s[k] & 0xC0) == 0x80)
                        k++;
                    rc = ss_buf_append(&b, s + start, k - start);
                    start = k;
                }
                m = pcre2_match(code, (PCRE2_SPTR)s, sn, start, 0, md, NULL);
                if (m < PCRE2_ERROR_NOMATCH)
                    rc = ss__x_fail(e, err, errsz, "regular expression failed (PCRE2 error %d)", m);
            }
            if (!rc)
                rc = ss_buf_append(&b, s + start, sn - start);
            if (!rc)
                rc = ss__x_take_buf(out, owned, &b, SS_TEXT);
        }
    }
    ss_buf_free(&b);
    pcre2_match_data_free(md);
    pcre2_code_free(uncached);
    for (int i = 0; i < 4; i++)
        free(t[i]);
    return rc;
}
