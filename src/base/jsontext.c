/*
 * jsontext.c — the SQL JSON type's text helpers (ss_jtext_* in ss_json.h):
 * validation and compaction on input, and the lookups behind ->, ->>,
 * json_typeof, json_array_length and json_extract_path_text, done by scanning
 * compact JSON text so numbers and strings keep their exact spelling.
 */
#include "ss_json.h"

#include <stdlib.h>
#include <string.h>

int ss_jtext_compact(const char *s, size_t n, ss_buf_t *out, char *err, size_t errsz)
{
    ss_json_doc_t *doc = NULL;
    char e2[128];
    int rc = ss_json_parse(s, n, 0, &doc, NULL, e2, sizeof e2);
    ss_json_free(doc);
    if (rc == SS_ERR_NOMEM)
        return ss_seterr(err, errsz, rc, "out of memory");
    if (rc)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "invalid input syntax for type json: %s", e2);
    int in_str = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char c = s[i];
        if (in_str) {
            rc = ss_buf_putc(out, c);
            if (c == '\\' && i + 1 < n)
                rc |= ss_buf_putc(out, s[++i]);
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
            rc = ss_buf_putc(out, c);
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            rc = ss_buf_putc(out, c);
    }
    return rc ? ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory") : SS_OK;
}

/* End of the value starting at p (valid compact JSON). */
static const char *skip(const char *p, const char *end)
{
    if (p >= end)
        return end;
    if (*p == '"') {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\')
                p++;
        return p < end ? p + 1 : end;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = skip(p, end) - 1;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
        }
        return end;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']')
        p++;
    return p;
}

const char *ss_jtext_typeof(const char *s, size_t n)
{
    if (!n)
        return "null";
    switch (s[0]) {
    case '{': return "object";
    case '[': return "array";
    case '"': return "string";
    case 't': case 'f': return "boolean";
    case 'n': return "null";
    default: return "number";
    }
}

static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

static int put_utf8(ss_buf_t *b, unsigned cp)
{
    char t[4];
    int n;
    if (cp < 0x80) { t[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { t[0] = (char)(0xC0 | cp >> 6); t[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | cp >> 12); t[1] = (char)(0x80 | (cp >> 6 & 0x3F)); t[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        t[0] = (char)(0xF0 | cp >> 18); t[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        t[2] = (char)(0x80 | (cp >> 6 & 0x3F)); t[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    return ss_buf_append(b, t, (size_t)n);
}

/* Unescapes the string literal s[0..n) (with its quotes) into out. */
static int unescape(const char *s, size_t n, ss_buf_t *out)
{
    int rc = 0;
    for (size_t i = 1; i + 1 < n && !rc; i++) {
        if (s[i] != '\\') {
            rc = ss_buf_putc(out, s[i]);
            continue;
        }
        char c = s[++i];
        switch (c) {
        case 'b': rc = ss_buf_putc(out, '\b'); break;
        case 'f': rc = ss_buf_putc(out, '\f'); break;
        case 'n': rc = ss_buf_putc(out, '\n'); break;
        case 'r': rc = ss_buf_putc(out, '\r'); break;
        case 't': rc = ss_buf_putc(out, '\t'); break;
        case 'u': {
            unsigned cp = hex4(s + i + 1);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u') {
                unsigned lo = hex4(s + i + 3);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            rc = put_utf8(out, cp);
            break;
        }
        default: rc = ss_buf_putc(out, c); break; /* \" \\ \/ */
        }
    }
    return rc;
}

int ss_jtext_get_key(const char *s, size_t n, const char *key, size_t klen, const char **vs, size_t *vn)
{
    const char *p = s, *end = s + n;
    int found = 0;
    if (!n || *p != '{')
        return 0;
    ss_buf_t kb = SS_BUF_INIT;
    p++;
    while (p < end && *p != '}') {
        const char *k = p, *ke = skip(p, end);
        ss_buf_reset(&kb);
        int simple = memchr(k, '\\', (size_t)(ke - k)) == NULL;
        const char *kt = k + 1;
        size_t kn = (size_t)(ke - k) - 2;
        if (!simple && !unescape(k, (size_t)(ke - k), &kb)) {
            kt = kb.data ? kb.data : "";
            kn = kb.len;
        }
        p = ke + 1; /* ':' */
        const char *ve = skip(p, end);
        if (kn == klen && memcmp(kt, key, klen) == 0) {
            *vs = p;
            *vn = (size_t)(ve - p);
            found = 1;
        }
        p = ve;
        if (p < end && *p == ',')
            p++;
    }
    ss_buf_free(&kb);
    return found;
}

int64_t ss_jtext_array_length(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    if (!n || *p != '[')
        return -1;
    int64_t k = 0;
    p++;
    while (p < end && *p != ']') {
        p = skip(p, end);
        k++;
        if (p < end && *p == ',')
            p++;
    }
    return k;
}

int ss_jtext_get_index(const char *s, size_t n, int64_t idx, const char **vs, size_t *vn)
{
    int64_t len = ss_jtext_array_length(s, n);
    if (len < 0)
        return 0;
    if (idx < 0)
        idx += len;
    if (idx < 0 || idx >= len)
        return 0;
    const char *p = s + 1, *end = s + n;
    for (int64_t k = 0; p < end && *p != ']'; k++) {
        const char *e = skip(p, end);
        if (k == idx) {
            *vs = p;
            *vn = (size_t)(e - p);
            return 1;
        }
        p = e;
        if (p < end && *p == ',')
            p++;
    }
    return 0;
}

int ss_jtext_to_text(const char *s, size_t n, ss_buf_t *out, int *is_null)
{
    *is_null = 0;
    if (n == 4 && !memcmp(s, "null", 4)) {
        *is_null = 1;
        return SS_OK;
    }
    if (n && s[0] == '"')
        return unescape(s, n, out);
    return ss_buf_append(out, s, n);
}
