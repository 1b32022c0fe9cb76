/*
 * agg_list.c — the ordered-list aggregates' element encoding and formatting
 * (STRING_AGG, ARRAY_AGG, JSON_AGG; used by group.c). A group keeps its
 * elements as a counted multiset in SQLite, each keyed by an order-preserving
 * encoding of (the aggregate's ORDER BY values, the value itself) followed by
 * the value's own encoding and that encoding's length: `ORDER BY v` over the
 * keys is the aggregate's order (ties by value, so the result is a function
 * of the group's contents), and the value reads back from the key's end.
 * Retraction is a count decrement; a touched group's result is rebuilt from
 * its elements in one ordered scan.
 */
#include "ss_state.h"

#include <stdlib.h>
#include <string.h>

int ss_state_list_elem(const ss_value_t *v, const ss_value_t *ord, const int *desc, int nord, ss_buf_t *out)
{
    int rc = SS_OK;
    for (int i = 0; i < nord && !rc; i++)
        rc = ss_state_sortkey(out, &ord[i], desc[i]);
    if (!rc)
        rc = ss_state_sortkey(out, v, 0);
    ss_row_t *r = rc ? NULL : ss_row_new(1);
    size_t at = out->len;
    if (!rc && (!r || ss_row_set(r, 0, v)))
        rc = SS_ERR_NOMEM;
    if (!rc)
        rc = ss_row_encode(r, out);
    ss_row_free(r);
    uint32_t len = (uint32_t)(out->len - at);
    return rc ? rc : ss_buf_append(out, &len, sizeof len);
}

/* The value at the end of an element key. */
static int elem_value(const unsigned char *p, size_t n, ss_row_t **out)
{
    uint32_t len;
    if (n < sizeof len)
        return SS_ERR_INVALID;
    memcpy(&len, p + n - sizeof len, sizeof len);
    if (len > n - sizeof len)
        return SS_ERR_INVALID;
    int rc = ss_row_decode(p + n - sizeof len - len, len, out);
    if (!rc && (*out)->n != 1) {
        ss_row_free(*out);
        return SS_ERR_INVALID;
    }
    return rc;
}

/* PostgreSQL's array_out: an element is double-quoted when it is empty, NULL spelled out, or holds
 * a brace, comma, quote, backslash or white space; inside quotes " and \ are backslash-escaped. */
static int put_array_elem(ss_buf_t *b, const ss_value_t *v)
{
    if (v->t == SS_NULL)
        return ss_buf_puts(b, "NULL");
    ss_buf_t t = SS_BUF_INIT;
    int rc = ss_val_to_text(v, &t);
    const char *s = ss_buf_cstr(&t);
    int quote = v->t == SS_TEXT && (t.len == 0 || ss_strcaseeq(s, "NULL"));
    for (size_t i = 0; !rc && i < t.len && !quote; i++)
        quote = strchr("{},\"\\ \t\n\r\v\f", s[i]) != NULL;
    if (!rc && quote)
        rc = ss_buf_putc(b, '"');
    for (size_t i = 0; !rc && i < t.len; i++) {
        if (quote && (s[i] == '"' || s[i] == '\\'))
            rc = ss_buf_putc(b, '\\');
        if (!rc)
            rc = ss_buf_putc(b, s[i]);
    }
    if (!rc && quote)
        rc = ss_buf_putc(b, '"');
    ss_buf_free(&t);
    return rc;
}

int ss_state_list_format(sqlite3_stmt *q, int kind, const char *sep, int distinct, ss_value_t *out, char **owned)
{
    ss_buf_t b = SS_BUF_INIT;
    int rc = SS_OK, any = 0, sr;
    *out = ss_val_null();
    *owned = NULL;
    while (!rc && (sr = sqlite3_step(q)) == SQLITE_ROW) {
        ss_row_t *r = NULL;
        int64_t n = distinct ? 1 : sqlite3_column_int64(q, 1);
        rc = elem_value(sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0), &r);
        for (int64_t k = 0; !rc && k < n; k++) {
            const ss_value_t *v = &r->v[0];
            if (kind == SS_LIST_STRING && v->t == SS_NULL)
                continue; /* string_agg skips NULLs */
            if (any)
                rc = ss_buf_puts(&b, kind == SS_LIST_STRING ? (sep ? sep : "") : ",");
            else
                rc = ss_buf_puts(&b, kind == SS_LIST_ARRAY ? "{" : kind == SS_LIST_JSON ? "[" : "");
            any = 1;
            if (!rc)
                rc = kind == SS_LIST_STRING ? ss_val_to_text(v, &b) : kind == SS_LIST_ARRAY ? put_array_elem(&b, v)
                                                                                            : ss_val_to_json(v, &b);
        }
        ss_row_free(r);
    }
    sqlite3_reset(q);
    if (!rc && any && kind != SS_LIST_STRING)
        rc = ss_buf_puts(&b, kind == SS_LIST_ARRAY ? "}" : "]");
    if (rc || !any) {
        ss_buf_free(&b);
        return rc;
    }
    *out = ss_val_text_ref(ss_buf_cstr(&b), b.len);
    *owned = ss_buf_take(&b);
    out->u.str.s = *owned;
    if (kind == SS_LIST_JSON)
        out->t = SS_JSON; /* compact JSON text, as every JSON value */
    return SS_OK;
}
