/*
 * decode.c — turns one message of a stream into row events (conn_decode
 * in conn_int.h) for the three input formats:
 *   json      {"col":..,"op":"insert|update|delete|+|-|c|u|d"} or
 *             {"op":..,"row":{..}} or {"op":"update","before":{..},"row":{..}}
 *   debezium  {"before":..,"after":..,"op":"c|r|u|d"}, also inside {"payload":..}
 *   upsert    key = JSON object of key columns (or a scalar for one key column),
 *             value = JSON row, null value (tombstone) = delete
 * Every column is coerced to its declared type; rows follow the schema's column
 * order; columns not given are NULL; key columns must be present and non-null.
 */
#include "conn_int.h"
#include "ss_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OP_INSERT, OP_UPDATE, OP_DELETE } op_t;

/* Converts a JSON value to column type t; *tmp receives memory to free. */
static int json_to_val(const ss_json_t *j, ss_coltype_t t, int typmod, ss_value_t *out, char **tmp, char *err,
                       size_t errsz)
{
    ss_value_t v = ss_val_null();
    *tmp = NULL;
    if (t == SS_COL_JSON && j->t != SS_JSON_NULL) { /* a JSON column keeps any value as compact JSON */
        ss_buf_t b = SS_BUF_INIT;
        if (ss_json_write(j, &b) || ss_buf_putc(&b, 0)) {
            ss_buf_free(&b);
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        }
        size_t n = b.len - 1;
        *tmp = ss_buf_take(&b);
        *out = ss_val_json_ref(*tmp, n);
        return SS_OK;
    }
    switch (j->t) {
    case SS_JSON_NULL: break;
    case SS_JSON_BOOL:
        if (t == SS_COL_TEXT) {
            *out = j->u.b ? ss_val_text_ref("true", 4) : ss_val_text_ref("false", 5);
            return SS_OK;
        }
        if (t != SS_COL_BOOL && t != SS_COL_ANY)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "expected %s, got a boolean", ss_coltype_name(t));
        v = ss_val_int(j->u.b);
        break;
    case SS_JSON_INT: v = ss_val_int(j->u.i); break;
    case SS_JSON_REAL: v = ss_val_real(j->u.r); break;
    case SS_JSON_STRING: v = ss_val_text_ref(j->u.str.s, j->u.str.n); break;
    case SS_JSON_ARRAY:
    case SS_JSON_OBJECT: {
        if (t != SS_COL_TEXT && t != SS_COL_ANY)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "expected %s, got %s", ss_coltype_name(t),
                             ss_json_type_name(j->t));
        ss_buf_t b = SS_BUF_INIT; /* nested JSON is kept as its text */
        if (ss_json_write(j, &b) || ss_buf_putc(&b, 0)) {
            ss_buf_free(&b);
            return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        }
        size_t n = b.len - 1;
        *tmp = ss_buf_take(&b);
        *out = ss_val_text_ref(*tmp, n);
        return SS_OK;
    }
    }
    char *t2 = NULL;
    int rc = ss_val_coerce_tm(&v, t, typmod, out, &t2, err, errsz);
    *tmp = t2;
    return rc;
}

static int set_col(ss_row_t *r, const ss_schema_t *s, int idx, const ss_json_t *j, char *err, size_t errsz)
{
    ss_value_t v;
    char *tmp = NULL, e2[256];
    int rc = json_to_val(j, s->types[idx], s->typmod ? s->typmod[idx] : -1, &v, &tmp, e2, sizeof e2);
    if (!rc)
        rc = ss_row_set(r, idx, &v);
    free(tmp);
    if (rc == SS_ERR_INVALID)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "column \"%s\": %s", s->names[idx], e2);
    if (rc)
        return ss_seterr(err, errsz, rc, "column \"%s\": out of memory", s->names[idx]);
    return SS_OK;
}

/* Fills r's columns from the members of obj that name schema columns. */
static int fill_from_obj(ss_row_t *r, const ss_schema_t *s, const ss_json_t *obj, char *present,
                         char *err, size_t errsz)
{
    int next = 0; /* members usually come in the schema's column order: try the next column first */
    for (size_t i = 0; i < obj->u.obj.n; i++) {
        const char *key = obj->u.obj.m[i].key;
        int idx = next < s->n && s->names[next] && ss_strcaseeq(s->names[next], key) ? next : ss_schema_find(s, key);
        if (idx < 0)
            continue;
        next = idx + 1;
        int rc = set_col(r, s, idx, &obj->u.obj.m[i].val, err, errsz);
        if (rc)
            return rc;
        present[idx] = 1;
    }
    return SS_OK;
}

static int check_keys(const ss_row_t *r, const ss_schema_t *s, const char *present, char *err, size_t errsz)
{
    for (int i = 0; i < s->n; i++) {
        if (!s->is_key[i])
            continue;
        if (!present[i])
            return ss_seterr(err, errsz, SS_ERR_INVALID, "missing key column \"%s\"", s->names[i]);
        if (r->v[i].t == SS_NULL)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "key column \"%s\" is null", s->names[i]);
    }
    return SS_OK;
}

/* A row from a JSON object (plus an optional overlay of key members). */
static int row_from(const ss_schema_t *s, const ss_json_t *obj, const ss_json_t *overlay, const char *what,
                    ss_row_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (obj && obj->t != SS_JSON_OBJECT)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "%s is %s, not an object", what, ss_json_type_name(obj->t));
    ss_row_t *r = ss_row_new(s->n);
    char small[64], *present = s->n < (int)sizeof small ? small : malloc((size_t)s->n + 1);
    if (present)
        memset(present, 0, (size_t)s->n + 1);
    int rc = !r || !present ? ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory") : SS_OK;
    if (!rc && obj)
        rc = fill_from_obj(r, s, obj, present, err, errsz);
    if (!rc && overlay)
        rc = fill_from_obj(r, s, overlay, present, err, errsz);
    if (!rc)
        rc = check_keys(r, s, present, err, errsz);
    if (present != small)
        free(present);
    if (rc) {
        ss_row_free(r);
        return rc;
    }
    *out = r;
    return SS_OK;
}

static int parse_op(const ss_json_t *j, int debezium, op_t *op, char *err, size_t errsz)
{
    static const struct { const char *name; op_t op; int dbz; } ops[] = {
        {"c", OP_INSERT, 1}, {"r", OP_INSERT, 1}, {"u", OP_UPDATE, 1}, {"d", OP_DELETE, 1},
        {"insert", OP_INSERT, 0}, {"+", OP_INSERT, 0}, {"upsert", OP_INSERT, 0},
        {"update", OP_UPDATE, 0}, {"delete", OP_DELETE, 0}, {"-", OP_DELETE, 0},
    };
    if (!j) {
        *op = OP_INSERT;
        if (debezium)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "Debezium envelope without \"op\"");
        return SS_OK;
    }
    const char *s = ss_json_str(j);
    if (!s)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "\"op\" is %s, not a string", ss_json_type_name(j->t));
    for (size_t i = 0; i < SS_ARRAY_LEN(ops); i++)
        if ((debezium ? ops[i].dbz : 1) && ss_strcaseeq(s, ops[i].name)) {
            *op = ops[i].op;
            return SS_OK;
        }
    return ss_seterr(err, errsz, SS_ERR_INVALID, "unsupported op \"%.40s\"", s);
}

static int has_keys(const ss_schema_t *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->is_key[i])
            return 1;
    return 0;
}

static int same_key(const ss_schema_t *s, const ss_row_t *a, const ss_row_t *b)
{
    for (int i = 0; i < s->n; i++)
        if (s->is_key[i] && !ss_val_eq(&a->v[i], &b->v[i]))
            return 0;
    return 1;
}

typedef struct events {
    ss_row_t *row[2];
    int w[2];
    int n;
} events_t;

static void push(events_t *ev, ss_row_t *r, int w)
{
    ev->row[ev->n] = r;
    ev->w[ev->n++] = w;
}

static int decode_json(const ss_schema_t *s, const ss_json_t *root, events_t *ev, char *err, size_t errsz)
{
    op_t op;
    int rc = parse_op(ss_json_get(root, "op"), 0, &op, err, errsz);
    if (rc)
        return rc;
    const ss_json_t *row = ss_json_get(root, "row"), *before = ss_json_get(root, "before");
    if (before && before->t == SS_JSON_NULL)
        before = NULL;
    ss_row_t *r = NULL, *b = NULL;
    if (op == OP_DELETE) { /* the deleted row: "row", else "before", else the message itself */
        rc = row_from(s, row ? row : before ? before : root, NULL, row ? "\"row\"" : "\"before\"", &r, err, errsz);
        if (!rc)
            push(ev, r, -1);
        return rc;
    }
    if ((rc = row_from(s, row ? row : root, NULL, "\"row\"", &r, err, errsz)))
        return rc;
    if (op == OP_UPDATE && before) {
        if ((rc = row_from(s, before, NULL, "\"before\"", &b, err, errsz))) {
            ss_row_free(r);
            return rc;
        }
        push(ev, b, -1);
    }
    push(ev, r, +1);
    return SS_OK;
}

static int decode_debezium(const ss_schema_t *s, const ss_json_t *root, events_t *ev, char *err, size_t errsz)
{
    const ss_json_t *env = root, *payload = ss_json_get(root, "payload");
    if (payload && !ss_json_get(root, "op")) {
        if (payload->t == SS_JSON_NULL)
            return SS_OK; /* schema-wrapped tombstone */
        env = payload;
        if (env->t != SS_JSON_OBJECT)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "\"payload\" is %s, not an object",
                             ss_json_type_name(env->t));
    }
    op_t op;
    int rc = parse_op(ss_json_get(env, "op"), 1, &op, err, errsz);
    if (rc)
        return rc;
    const ss_json_t *before = ss_json_get(env, "before"), *after = ss_json_get(env, "after");
    if (before && before->t == SS_JSON_NULL)
        before = NULL;
    if (after && after->t == SS_JSON_NULL)
        after = NULL;
    ss_row_t *r = NULL, *b = NULL;
    if (op == OP_DELETE) {
        if (!before)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "Debezium delete without \"before\"");
        if (!(rc = row_from(s, before, NULL, "\"before\"", &b, err, errsz)))
            push(ev, b, -1);
        return rc;
    }
    if (!after)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "Debezium %s without \"after\"", op == OP_UPDATE ? "update" : "create");
    if ((rc = row_from(s, after, NULL, "\"after\"", &r, err, errsz)))
        return rc;
    if (op == OP_UPDATE && before) {
        /* keyless: retract the old row explicitly; keyed: only if the key changed */
        int keyed = has_keys(s);
        rc = row_from(s, before, NULL, "\"before\"", &b, err, errsz);
        if (rc && !keyed) {
            ss_row_free(r);
            return rc;
        }
        if (!rc && (!keyed || !same_key(s, b, r)))
            push(ev, b, -1);
        else
            ss_row_free(b);
        rc = SS_OK; /* a keyed update does not need a usable "before" */
    }
    push(ev, r, +1);
    return SS_OK;
}

/* The upsert key as an object: a JSON object, or a scalar (JSON or raw text)
 * wrapped as {"<the key column>": scalar}. *kdoc receives what to free. */
static int upsert_key(const ss_schema_t *s, const void *key, size_t klen, ss_json_doc_t **kdoc,
                      const ss_json_t **kobj, char *err, size_t errsz)
{
    *kdoc = NULL;
    if (!key)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "upsert message without a key");
    int keys[64], nk = ss_schema_keys(s, keys, 64);
    char e2[256];
    ss_json_doc_t *d = NULL;
    int rc = ss_json_parse(key, klen, 0, &d, NULL, e2, sizeof e2);
    if (rc == SS_ERR_NOMEM)
        return ss_seterr(err, errsz, rc, "out of memory");
    if (!rc && ss_json_root(d)->t == SS_JSON_OBJECT) {
        *kdoc = d;
        *kobj = ss_json_root(d);
        return SS_OK;
    }
    if (nk != 1) {
        ss_json_free(d);
        return ss_seterr(err, errsz, SS_ERR_INVALID, rc ? "key is not JSON (%s)" : "key is a %s, not an object",
                         rc ? e2 : ss_json_type_name(ss_json_root(d)->t));
    }
    /* one key column: rebuild {"col": scalar}; raw (non-JSON) keys are text */
    ss_buf_t b = SS_BUF_INIT;
    rc = ss_buf_putc(&b, '{');
    rc = rc ? rc : ss_json_put_str_utf8(&b, s->names[keys[0]], strlen(s->names[keys[0]]));
    rc = rc ? rc : ss_buf_putc(&b, ':');
    rc = rc ? rc : d ? ss_json_write(ss_json_root(d), &b) : ss_json_put_str_utf8(&b, key, klen);
    rc = rc ? rc : ss_buf_putc(&b, '}');
    ss_json_free(d);
    if (!rc)
        rc = ss_json_parse(b.data, b.len, 0, kdoc, NULL, e2, sizeof e2);
    ss_buf_free(&b);
    if (rc)
        return ss_seterr(err, errsz, rc, "key: %s", e2);
    *kobj = ss_json_root(*kdoc);
    return SS_OK;
}

static int decode_upsert(const ss_schema_t *s, const void *key, size_t klen, const ss_json_t *val,
                         events_t *ev, char *err, size_t errsz)
{
    ss_json_doc_t *kdoc = NULL;
    const ss_json_t *kobj = NULL;
    int rc = upsert_key(s, key, klen, &kdoc, &kobj, err, errsz);
    if (rc)
        return rc;
    ss_row_t *r = NULL;
    rc = row_from(s, val, kobj, "value", &r, err, errsz); /* the key's columns win */
    if (!rc)
        push(ev, r, val ? +1 : -1);
    ss_json_free(kdoc);
    return rc;
}

/* The commonest json message, a flat object of plain scalars naming columns and no "op", "row"
 * or "before", decoded without a document: the same row as decode_json (the members are the
 * values ss_json_parse gives). 1 when done (*rc set), 0 when the message needs the full path. */
static int decode_flat(const ss_schema_t *s, const void *val, size_t vlen, ss_zset_t *out, int *rc, char *err,
                       size_t errsz)
{
    enum { FLAT_MAX_MEMBERS = 64, FLAT_MAX_BYTES = 2048 };
    ss_json_member_t m[FLAT_MAX_MEMBERS];
    char buf[FLAT_MAX_BYTES];
    size_t n = 0;
    if (vlen > sizeof buf || ss_json_scan_flat(val, vlen, m, FLAT_MAX_MEMBERS, &n, buf, sizeof buf))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m[i].key, "op") || !strcmp(m[i].key, "row") || !strcmp(m[i].key, "before"))
            return 0;
    ss_json_t obj = {.t = SS_JSON_OBJECT, .u.obj = {m, n}};
    ss_row_t *r = NULL;
    *rc = row_from(s, &obj, NULL, "\"row\"", &r, err, errsz);
    if (!*rc && (*rc = ss_zset_add(out, r, 1)) != SS_OK)
        ss_seterr(err, errsz, *rc, "out of memory");
    return 1;
}

int conn_decode(ss_format_t fmt, const ss_schema_t *schema, const void *key, size_t klen,
                 const void *val, size_t vlen, ss_zset_t *out, char *err, size_t errsz)
{
    events_t ev = {{NULL, NULL}, {0, 0}, 0};
    ss_json_doc_t *doc = NULL;
    char e2[256];
    int rc = SS_OK;
    if (fmt == SS_FMT_JSON && val && decode_flat(schema, val, vlen, out, &rc, err, errsz))
        return rc;
    if (val) {
        rc = ss_json_parse(val, vlen, 0, &doc, NULL, e2, sizeof e2);
        if (rc)
            return ss_seterr(err, errsz, rc, "invalid JSON: %s", e2);
        if (ss_json_root(doc)->t != SS_JSON_OBJECT) {
            rc = ss_seterr(err, errsz, SS_ERR_INVALID, "value is %s, not a JSON object",
                           ss_json_type_name(ss_json_root(doc)->t));
            ss_json_free(doc);
            return rc;
        }
    }
    const ss_json_t *root = ss_json_root(doc);
    switch (fmt) {
    case SS_FMT_JSON:
        if (val)
            rc = decode_json(schema, root, &ev, err, errsz);
        else
            rc = ss_seterr(err, errsz, SS_ERR_INVALID, "null value (tombstone) in json format");
        break;
    case SS_FMT_DEBEZIUM: /* null values are the tombstones Debezium writes after deletes */
        rc = val ? decode_debezium(schema, root, &ev, err, errsz) : SS_OK;
        break;
    case SS_FMT_UPSERT: rc = decode_upsert(schema, key, klen, root, &ev, err, errsz); break;
    default: rc = ss_seterr(err, errsz, SS_ERR_INVALID, "unknown format %d", (int)fmt);
    }
    ss_json_free(doc);
    for (int i = 0; i < ev.n; i++) {
        if (rc)
            ss_row_free(ev.row[i]);
        else if ((rc = ss_zset_add(out, ev.row[i], ev.w[i])) != SS_OK)
            ss_seterr(err, errsz, rc, "out of memory");
    }
    return rc;
}

/* ---- message keys ---- */

int ss_stream_key(const ss_schema_t *schema, const ss_row_t *row, ss_buf_t *out)
{
    int keys[64];
    int nk = ss_schema_keys(schema, keys, 64);
    if (!nk)
        return ss_row_to_json(row, schema, out);
    int rc = ss_buf_putc(out, '{');
    for (int i = 0; i < nk && !rc; i++) {
        const char *n = schema->names[keys[i]];
        if (i)
            rc = ss_buf_putc(out, ',');
        rc = rc ? rc : ss_buf_put_json_str(out, n, strlen(n));
        rc = rc ? rc : ss_buf_putc(out, ':');
        rc = rc ? rc : ss_val_to_json(&row->v[keys[i]], out);
    }
    return rc ? rc : ss_buf_putc(out, '}');
}

int ss_format_key(ss_format_t fmt, const ss_schema_t *schema, const void *val, size_t vlen, ss_buf_t *out,
                  char *err, size_t errsz)
{
    if (!val)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "a tombstone carries no row");
    ss_zset_t z;
    ss_zset_init(&z);
    /* an upsert value is the row itself: read it as a json insert */
    int rc = conn_decode(fmt == SS_FMT_UPSERT ? SS_FMT_JSON : fmt, schema, NULL, 0, val, vlen, &z, err, errsz);
    if (!rc && !z.n)
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "the message has no row");
    if (!rc && ss_stream_key(schema, z.e[z.n - 1].row, out))
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    ss_zset_destroy(&z);
    return rc;
}
