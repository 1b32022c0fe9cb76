/*
 * jschema.c — implements ss_jschema.h: the JSON Schema subset of structured output,
 * parsed from a document or built from a column list, and written back canonically.
 */
#include "ss_jschema.h"

#include "ss_json.h"
#include "ss_zset.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ss_jschema_free(ss_jschema_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nprops; i++) {
        free(s->names[i]);
        ss_jschema_free(s->props[i]);
    }
    free(s->names);
    free(s->props);
    ss_jschema_free(s->items);
    for (int i = 0; i < s->nenum; i++)
        free(s->enums[i]);
    free(s->enums);
    free(s);
}

/* ---------------------------------------------------------------- parsing */

typedef struct pctx {
    char *err;
    size_t errsz;
    char path[256]; /* JSON pointer of the node being parsed */
} pctx_t;

static int perr(pctx_t *p, const char *fmt, const char *a)
{
    return ss_seterr(p->err, p->errsz, SS_ERR_INVALID, "JSON schema at %s: %s%s", p->path[0] ? p->path : "/", fmt,
                     a ? a : "");
}

static unsigned type_bit(const char *t)
{
    static const struct {
        const char *n;
        unsigned b;
    } map[] = {{"object", SS_JS_OBJECT}, {"array", SS_JS_ARRAY},     {"string", SS_JS_STRING},
               {"integer", SS_JS_INTEGER}, {"number", SS_JS_NUMBER}, {"boolean", SS_JS_BOOLEAN},
               {"null", SS_JS_NULL}};
    for (size_t i = 0; t && i < SS_ARRAY_LEN(map); i++)
        if (!strcmp(map[i].n, t))
            return map[i].b;
    return 0;
}

static int parse_node(pctx_t *p, const ss_json_t *v, ss_jschema_t **out);

static int push_path(pctx_t *p, const char *a, const char *b, size_t *save)
{
    *save = strlen(p->path);
    size_t n = *save;
    int w = snprintf(p->path + n, sizeof p->path - n, "/%s%s%s", a, b ? "/" : "", b ? b : "");
    return w < 0 ? -1 : 0;
}

static int parse_props(pctx_t *p, const ss_json_t *props, ss_jschema_t *s)
{
    if (props->t != SS_JSON_OBJECT)
        return perr(p, "\"properties\" must be an object", NULL);
    size_t n = props->u.obj.n;
    s->names = calloc(n ? n : 1, sizeof *s->names);
    s->props = calloc(n ? n : 1, sizeof *s->props);
    if (!s->names || !s->props)
        return SS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const ss_json_member_t *m = &props->u.obj.m[i];
        for (int j = 0; j < s->nprops; j++)
            if (!strcmp(s->names[j], m->key))
                return perr(p, "property written twice: ", m->key);
        size_t save;
        push_path(p, "properties", m->key, &save);
        int rc = parse_node(p, &m->val, &s->props[s->nprops]);
        p->path[save] = 0;
        if (rc) { /* the failed property's node is not counted yet: free it here */
            ss_jschema_free(s->props[s->nprops]);
            s->props[s->nprops] = NULL;
            return rc;
        }
        if (!(s->names[s->nprops++] = ss_strndup(m->key, m->klen)))
            return SS_ERR_NOMEM;
    }
    return SS_OK;
}

static int parse_enum(pctx_t *p, const ss_json_t *e, int is_const, ss_jschema_t *s)
{
    size_t n = is_const ? 1 : e->t == SS_JSON_ARRAY ? e->u.arr.n : 0;
    if (!is_const && (e->t != SS_JSON_ARRAY || n == 0))
        return perr(p, "\"enum\" must be a non-empty array of strings", NULL);
    s->enums = calloc(n, sizeof *s->enums);
    if (!s->enums)
        return SS_ERR_NOMEM;
    int null_seen = 0;
    for (size_t i = 0; i < n; i++) {
        const ss_json_t *x = is_const ? e : &e->u.arr.items[i];
        if (x->t == SS_JSON_NULL && !is_const) {
            null_seen = 1;
            continue;
        }
        if (x->t != SS_JSON_STRING)
            return perr(p, is_const ? "\"const\" must be a string" : "\"enum\" values must be strings", NULL);
        for (int j = 0; j < s->nenum; j++)
            if (!strcmp(s->enums[j], x->u.str.s))
                return perr(p, "\"enum\" lists a value twice: ", x->u.str.s);
        if (!(s->enums[s->nenum++] = ss_strndup(x->u.str.s, x->u.str.n)))
            return SS_ERR_NOMEM;
    }
    if (!s->nenum)
        return perr(p, "\"enum\" needs a string value", NULL);
    s->types = (s->types ? s->types : SS_JS_STRING) | (null_seen ? SS_JS_NULL : 0);
    if (s->types & ~(unsigned)(SS_JS_STRING | SS_JS_NULL))
        return perr(p, "\"enum\" is supported for strings only", NULL);
    return SS_OK;
}

static int parse_type(pctx_t *p, const ss_json_t *t, unsigned *types)
{
    *types = 0;
    if (t->t == SS_JSON_STRING) {
        if (!(*types = type_bit(t->u.str.s)))
            return perr(p, "unknown type ", t->u.str.s);
        return SS_OK;
    }
    if (t->t != SS_JSON_ARRAY || t->u.arr.n == 0)
        return perr(p, "\"type\" must be a type name or a non-empty list of them", NULL);
    for (size_t i = 0; i < t->u.arr.n; i++) {
        const ss_json_t *x = &t->u.arr.items[i];
        unsigned b = x->t == SS_JSON_STRING ? type_bit(x->u.str.s) : 0;
        if (!b)
            return perr(p, "unknown type in \"type\"", NULL);
        *types |= b;
    }
    return SS_OK;
}

static int parse_node(pctx_t *p, const ss_json_t *v, ss_jschema_t **out)
{
    *out = NULL;
    if (v->t != SS_JSON_OBJECT)
        return perr(p, "a schema must be an object", NULL);
    ss_jschema_t *s = calloc(1, sizeof *s);
    if (!s)
        return SS_ERR_NOMEM;
    *out = s;
    const ss_json_t *t = ss_json_get(v, "type");
    int rc = t ? parse_type(p, t, &s->types) : SS_OK;
    const ss_json_t *en = ss_json_get(v, "enum"), *co = ss_json_get(v, "const");
    if (!rc && (en || co))
        rc = en && co ? perr(p, "\"enum\" and \"const\" together", NULL) : parse_enum(p, en ? en : co, co != NULL, s);
    if (!rc && !s->types)
        s->types = ss_json_get(v, "properties") ? SS_JS_OBJECT : ss_json_get(v, "items") ? SS_JS_ARRAY : 0;
    if (!rc && !s->types)
        rc = perr(p, "\"type\" is missing", NULL);
    for (size_t i = 0; !rc && i < v->u.obj.n; i++) {
        const char *k = v->u.obj.m[i].key;
        const ss_json_t *x = &v->u.obj.m[i].val;
        if (!strcmp(k, "type") || !strcmp(k, "enum") || !strcmp(k, "const") || !strcmp(k, "description") ||
            !strcmp(k, "title") || !strcmp(k, "$schema"))
            continue;
        if (!strcmp(k, "properties")) {
            rc = s->types & SS_JS_OBJECT ? parse_props(p, x, s) : perr(p, "\"properties\" on a non-object", NULL);
        } else if (!strcmp(k, "required")) {
            if (x->t != SS_JSON_ARRAY)
                rc = perr(p, "\"required\" must be an array", NULL);
        } else if (!strcmp(k, "additionalProperties")) {
            if (!(x->t == SS_JSON_BOOL && !x->u.b))
                rc = perr(p, "only \"additionalProperties\": false is supported (every property is listed)", NULL);
        } else if (!strcmp(k, "items")) {
            size_t save;
            push_path(p, "items", NULL, &save);
            rc = s->types & SS_JS_ARRAY ? parse_node(p, x, &s->items) : perr(p, "\"items\" on a non-array", NULL);
            p->path[save] = 0;
        } else {
            rc = perr(p, "unsupported keyword ", k);
        }
    }
    if (!rc && (s->types & SS_JS_OBJECT) && (s->types & SS_JS_ARRAY))
        rc = perr(p, "a value cannot be both an object and an array here", NULL);
    if (!rc && (s->types & SS_JS_ARRAY) && !s->items)
        rc = perr(p, "an array needs \"items\"", NULL);
    return rc;
}

int ss_jschema_parse(const char *text, size_t n, ss_jschema_t **out, char *err, size_t errsz)
{
    *out = NULL;
    ss_json_doc_t *d = NULL;
    char jerr[160];
    if (ss_json_parse(text, n, 64, &d, NULL, jerr, sizeof jerr))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "JSON schema is not valid JSON: %s", jerr);
    pctx_t p = {err, errsz, ""};
    int rc = parse_node(&p, ss_json_root(d), out);
    ss_json_free(d);
    if (rc) {
        if (rc == SS_ERR_NOMEM)
            ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        ss_jschema_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---------------------------------------------------------------- column lists */

void ss_jscols_free(ss_jscol_t *c, int n)
{
    for (int i = 0; c && i < n; i++)
        free(c[i].name);
    free(c);
}

static int col_type(const char *t, size_t n)
{
    static const struct {
        const char *name;
        int type;
    } map[] = {{"TEXT", SS_COL_TEXT},   {"VARCHAR", SS_COL_TEXT},     {"STRING", SS_COL_TEXT},
               {"CHAR", SS_COL_TEXT},   {"INT", SS_COL_INT},          {"INTEGER", SS_COL_INT},
               {"BIGINT", SS_COL_INT},  {"SMALLINT", SS_COL_INT},     {"REAL", SS_COL_REAL},
               {"DOUBLE", SS_COL_REAL}, {"FLOAT", SS_COL_REAL},       {"NUMERIC", SS_COL_NUMERIC},
               {"DECIMAL", SS_COL_NUMERIC}, {"BOOLEAN", SS_COL_BOOL}, {"BOOL", SS_COL_BOOL}};
    for (size_t i = 0; i < SS_ARRAY_LEN(map); i++)
        if (strlen(map[i].name) == n && !strncasecmp(map[i].name, t, n))
            return map[i].type;
    return -1;
}

static const char *skip_ws(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

/* One "name TYPE [(..)]" at *ps; advances *ps past it. */
static int parse_col(const char *spec, const char **ps, ss_jscol_t *c, int *erroff, char *err, size_t errsz)
{
    const char *s = skip_ws(*ps), *name = s;
    size_t nn = 0;
    c->off = (int)(s - spec);
    if (*s == '"') {
        name = ++s;
        while (*s && *s != '"')
            s++;
        nn = (size_t)(s - name);
        if (*s != '"') {
            *erroff = c->off;
            return ss_seterr(err, errsz, SS_ERR_INVALID, "unterminated quoted column name");
        }
        s++;
    } else {
        while (isalnum((unsigned char)*s) || *s == '_' || (unsigned char)*s >= 0x80)
            s++;
        nn = (size_t)(s - name);
    }
    if (nn == 0) {
        *erroff = c->off;
        return ss_seterr(err, errsz, SS_ERR_INVALID, "expected a column name");
    }
    s = skip_ws(s);
    const char *t = s;
    while (isalpha((unsigned char)*s))
        s++;
    int type = col_type(t, (size_t)(s - t));
    if (type >= 0 && type == SS_COL_REAL && (size_t)(s - t) == 6) { /* DOUBLE [PRECISION] */
        const char *q = skip_ws(s);
        if (!strncasecmp(q, "PRECISION", 9) && !isalnum((unsigned char)q[9]))
            s = q + 9;
    }
    if (type < 0) {
        *erroff = (int)(t - spec);
        if (t == s)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "expected a type after the column name");
        return ss_seterr(err, errsz, SS_ERR_INVALID, "unknown type %.*s (TEXT, INT, REAL, NUMERIC or BOOLEAN)",
                         (int)SS_MIN(s - t, 40), t);
    }
    s = skip_ws(s);
    if (*s == '(') {
        while (*s && *s != ')')
            s++;
        if (*s != ')') {
            *erroff = (int)(t - spec);
            return ss_seterr(err, errsz, SS_ERR_INVALID, "unbalanced '(' in the type");
        }
        s = skip_ws(s + 1);
    }
    if (!(c->name = ss_strndup(name, nn)))
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    c->type = type;
    *ps = s;
    return SS_OK;
}

int ss_jscols_parse(const char *spec, ss_jscol_t **out, int *n, int *erroff, char *err, size_t errsz)
{
    *out = NULL;
    *n = 0;
    *erroff = 0;
    int cap = 1;
    for (const char *c = spec; *c; c++)
        cap += *c == ',';
    ss_jscol_t *cols = calloc((size_t)cap, sizeof *cols);
    if (!cols)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    const char *s = spec;
    int rc = SS_OK, k = 0;
    while (!rc) {
        rc = parse_col(spec, &s, &cols[k], erroff, err, errsz);
        if (rc)
            break;
        for (int j = 0; j < k && !rc; j++)
            if (ss_strcaseeq(cols[j].name, cols[k].name)) {
                *erroff = cols[k].off;
                rc = ss_seterr(err, errsz, SS_ERR_INVALID, "column \"%s\" is named twice", cols[k].name);
            }
        k++;
        if (rc || !*s)
            break;
        if (*s != ',' || k == cap) {
            *erroff = (int)(s - spec);
            rc = ss_seterr(err, errsz, SS_ERR_INVALID, "expected ',' or the end of the column list");
            break;
        }
        s++;
    }
    if (rc) {
        ss_jscols_free(cols, k);
        return rc;
    }
    *out = cols;
    *n = k;
    return SS_OK;
}

int ss_jschema_from_cols(const ss_jscol_t *c, int n, ss_jschema_t **out)
{
    *out = NULL;
    ss_jschema_t *s = calloc(1, sizeof *s);
    if (!s)
        return SS_ERR_NOMEM;
    s->types = SS_JS_OBJECT;
    s->names = calloc((size_t)(n ? n : 1), sizeof *s->names);
    s->props = calloc((size_t)(n ? n : 1), sizeof *s->props);
    int rc = s->names && s->props ? SS_OK : SS_ERR_NOMEM;
    for (int i = 0; i < n && !rc; i++) {
        ss_jschema_t *p = calloc(1, sizeof *p);
        s->names[i] = ss_strdup(c[i].name);
        s->props[i] = p;
        s->nprops = i + 1;
        if (!p || !s->names[i]) {
            rc = SS_ERR_NOMEM;
            break;
        }
        unsigned t = c[i].type == SS_COL_INT       ? SS_JS_INTEGER
                     : c[i].type == SS_COL_REAL    ? SS_JS_NUMBER
                     : c[i].type == SS_COL_NUMERIC ? SS_JS_NUMBER
                     : c[i].type == SS_COL_BOOL    ? SS_JS_BOOLEAN
                                                   : SS_JS_STRING;
        p->types = t | SS_JS_NULL;
    }
    if (rc) {
        ss_jschema_free(s);
        return rc;
    }
    *out = s;
    return SS_OK;
}

/* ---------------------------------------------------------------- writing */

static int write_types(const ss_jschema_t *s, ss_buf_t *out)
{
    static const char *const names[] = {"object", "array", "string", "integer", "number", "boolean", "null"};
    int n = 0, rc = SS_OK;
    for (int i = 0; i < 7; i++)
        n += (s->types >> i) & 1;
    rc = ss_buf_puts(out, "\"type\":");
    if (!rc && n > 1)
        rc = ss_buf_putc(out, '[');
    for (int i = 0, k = 0; i < 7 && !rc; i++)
        if ((s->types >> i) & 1)
            rc = ss_buf_printf(out, "%s\"%s\"", k++ ? "," : "", names[i]);
    if (!rc && n > 1)
        rc = ss_buf_putc(out, ']');
    return rc;
}

int ss_jschema_write(const ss_jschema_t *s, ss_buf_t *out)
{
    int rc = ss_buf_putc(out, '{');
    if (!rc)
        rc = write_types(s, out);
    if (!rc && s->nenum) {
        rc = ss_buf_puts(out, ",\"enum\":[");
        for (int i = 0; i < s->nenum && !rc; i++) {
            if (i)
                rc = ss_buf_putc(out, ',');
            if (!rc)
                rc = ss_json_put_str_utf8(out, s->enums[i], strlen(s->enums[i]));
        }
        if (!rc && (s->types & SS_JS_NULL))
            rc = ss_buf_puts(out, ",null");
        if (!rc)
            rc = ss_buf_putc(out, ']');
    }
    if (!rc && (s->types & SS_JS_OBJECT)) {
        rc = ss_buf_puts(out, ",\"properties\":{");
        for (int i = 0; i < s->nprops && !rc; i++) {
            if (i)
                rc = ss_buf_putc(out, ',');
            if (!rc)
                rc = ss_json_put_str_utf8(out, s->names[i], strlen(s->names[i]));
            if (!rc)
                rc = ss_buf_putc(out, ':');
            if (!rc)
                rc = ss_jschema_write(s->props[i], out);
        }
        if (!rc)
            rc = ss_buf_puts(out, "},\"required\":[");
        for (int i = 0; i < s->nprops && !rc; i++) {
            if (i)
                rc = ss_buf_putc(out, ',');
            if (!rc)
                rc = ss_json_put_str_utf8(out, s->names[i], strlen(s->names[i]));
        }
        if (!rc)
            rc = ss_buf_puts(out, "],\"additionalProperties\":false");
    }
    if (!rc && (s->types & SS_JS_ARRAY) && s->items) {
        rc = ss_buf_puts(out, ",\"items\":");
        if (!rc)
            rc = ss_jschema_write(s->items, out);
    }
    return rc ? rc : ss_buf_putc(out, '}');
}
