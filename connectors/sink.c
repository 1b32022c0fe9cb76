/*
 * sink.c — ss_sink: publishes a view's changelog to a topic. Each delta is
 * grouped by the view's key; within a key, retractions pair with insertions
 * into "update" messages, the rest become "delete"/"insert". Messages are
 * keyed by the key columns as a JSON object (the whole row when the view has
 * no key) and carry a per-view sequence number:
 *   {"view":"v","seq":N,"op":"insert|update|delete","row":{...},"old":{...}}
 * On the log a publish is appended (fsync'd) before it returns; on Kafka it is
 * queued and ss_sink_flush waits for delivery.
 */
#include "conn_int.h"
#include "ss_json.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct ss_sink {
    ss_producer_t *p;
    char *view, *topic;
    ss_schema_t *schema; /* owned copy */
    int *keys;           /* owned; key column indices */
    int nkey;
    char **colpre;       /* owned; per column its JSON prefix: `"name":`, with a leading ',' after column 0 */
    char *head;          /* owned; `{"view":"<view>","seq":` */
};

/* Column i's name as JSON ("c<i>" when unnamed), as ss_row_to_json writes it. */
static int col_prefix(const ss_schema_t *sc, int i, char **out)
{
    char tmp[32];
    const char *name = sc->names[i];
    if (!name) {
        snprintf(tmp, sizeof tmp, "c%d", i);
        name = tmp;
    }
    ss_buf_t b = SS_BUF_INIT;
    int rc = i ? ss_buf_putc(&b, ',') : SS_OK;
    rc = rc ? rc : ss_buf_put_json_str(&b, name, strlen(name));
    rc = rc ? rc : ss_buf_putc(&b, ':');
    *out = rc ? NULL : ss_buf_take(&b);
    ss_buf_free(&b);
    return rc;
}

/* The JSON prefixes written for every message (names escaped once, not per message). */
static int make_prefixes(ss_sink_t *s)
{
    ss_buf_t b = SS_BUF_INIT;
    int rc = ss_buf_puts(&b, "{\"view\":");
    rc = rc ? rc : ss_json_put_str_utf8(&b, s->view, strlen(s->view));
    rc = rc ? rc : ss_buf_puts(&b, ",\"seq\":");
    s->head = rc ? NULL : ss_buf_take(&b);
    ss_buf_free(&b);
    s->colpre = calloc((size_t)s->schema->n + 1, sizeof *s->colpre);
    if (!s->colpre)
        return SS_ERR_NOMEM;
    for (int i = 0; i < s->schema->n && !rc; i++)
        rc = col_prefix(s->schema, i, &s->colpre[i]);
    return rc;
}

/* {"col":value,...}: what ss_row_to_json writes, from the cached prefixes. */
static int row_json(const ss_sink_t *s, const ss_row_t *r, ss_buf_t *out)
{
    if (r->n != s->schema->n)
        return ss_row_to_json(r, s->schema, out);
    int rc = ss_buf_putc(out, '{');
    for (int i = 0; i < r->n && !rc; i++) {
        rc = ss_buf_puts(out, s->colpre[i]);
        rc = rc ? rc : ss_val_to_json(&r->v[i], out);
    }
    return rc ? rc : ss_buf_putc(out, '}');
}

int ss_sink_open(ss_transport_t *t, const char *view, const char *topic, const ss_schema_t *schema,
                 const int *key_cols, int nkey, ss_sink_t **out, char *err, size_t errsz)
{
    *out = NULL;
    if (!t || !view || !topic || !*topic || !schema)
        return ss_seterr(err, errsz, SS_ERR_INVALID, "sink: transport, view, topic and schema are required");
    for (int i = 0; i < nkey; i++)
        if (!key_cols || key_cols[i] < 0 || key_cols[i] >= schema->n)
            return ss_seterr(err, errsz, SS_ERR_INVALID, "sink for view %s: bad key column", view);
    ss_sink_t *s = calloc(1, sizeof *s);
    if (!s)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    s->view = ss_strdup(view);
    s->topic = ss_strdup(topic);
    s->schema = ss_schema_copy(schema);
    s->nkey = nkey > 0 ? nkey : 0;
    s->keys = malloc(sizeof(int) * (size_t)(s->nkey + 1));
    int rc = SS_OK;
    if (!s->view || !s->topic || !s->schema || !s->keys)
        rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    if (!rc) {
        if (s->nkey)
            memcpy(s->keys, key_cols, sizeof(int) * (size_t)s->nkey);
        if (make_prefixes(s))
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    }
    if (!rc) /* one partition unless the topic exists: seq order is the topic's order */
        rc = ss_transport_create_topic(t, topic, NULL, NULL, NULL, err, errsz);
    if (!rc)
        rc = ss_producer_new(t, &s->p, err, errsz);
    char werr[SS_ERRSZ];
    if (!rc && kafka_producer_warm(s->p, topic, 2000, werr, sizeof werr))
        ss_log(SS_LOG_DEBUG, "kafka", "sink for view %s: %s (the first messages wait for a refresh)", view, werr);
    if (rc) {
        ss_errprefix(err, errsz, "sink for view %s", view);
        ss_sink_close(s);
        return rc;
    }
    *out = s;
    return SS_OK;
}

/* ---- grouping a delta by key ---- */
typedef struct item {
    const ss_row_t *row;
    int64_t w;
} item_t;

static int key_cmp(const ss_row_t *a, const ss_row_t *b, const ss_sink_t *s)
{
    if (!s->nkey)
        return ss_row_cmp(a, b);
    return ss_row_cmp_cols(a, s->keys, b, s->keys, s->nkey);
}

static int item_cmp(const void *x, const void *y, void *ctx)
{
    const item_t *a = x, *b = y;
    int c = key_cmp(a->row, b->row, ctx);
    if (c)
        return c;
    if ((a->w < 0) != (b->w < 0)) /* retractions first */
        return a->w < 0 ? -1 : 1;
    return ss_row_cmp(a->row, b->row);
}

static int key_json(const ss_sink_t *s, const ss_row_t *r, ss_buf_t *out)
{
    if (!s->nkey)
        return row_json(s, r, out);
    int rc = ss_buf_putc(out, '{');
    for (int i = 0; i < s->nkey && !rc; i++) {
        const char *name = s->schema->names[s->keys[i]] ? s->schema->names[s->keys[i]] : "?";
        if (i)
            rc = ss_buf_putc(out, ',');
        rc = rc ? rc : ss_json_put_str_utf8(out, name, strlen(name));
        rc = rc ? rc : ss_buf_putc(out, ':');
        rc = rc ? rc : ss_val_to_json(&r->v[s->keys[i]], out);
    }
    return rc ? rc : ss_buf_putc(out, '}');
}

static int emit(ss_sink_t *s, const char *op, const ss_row_t *row, const ss_row_t *old, int64_t *seq,
                ss_buf_t *kb, ss_buf_t *vb, char *err, size_t errsz)
{
    ss_buf_reset(kb);
    ss_buf_reset(vb);
    int rc = key_json(s, row, kb);
    rc = rc ? rc : ss_buf_puts(vb, s->head);
    rc = rc ? rc : ss_buf_put_i64(vb, *seq);
    rc = rc ? rc : ss_buf_puts(vb, ",\"op\":\"");
    rc = rc ? rc : ss_buf_puts(vb, op);
    rc = rc ? rc : ss_buf_puts(vb, "\",\"row\":");
    rc = rc ? rc : row_json(s, row, vb);
    if (!rc && old) {
        rc = ss_buf_puts(vb, ",\"old\":");
        rc = rc ? rc : row_json(s, old, vb);
    }
    rc = rc ? rc : ss_buf_putc(vb, '}');
    if (rc)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    rc = ss_producer_send(s->p, s->topic, kb->data, kb->len, vb->data, vb->len, err, errsz);
    if (!rc)
        (*seq)++;
    return rc;
}

/* Emits one key group items[0..n): retractions first (sorted), then insertions. */
static int emit_group(ss_sink_t *s, const item_t *it, size_t n, int64_t *seq, ss_buf_t *kb, ss_buf_t *vb,
                      char *err, size_t errsz)
{
    size_t ni = 0, nd = 0, di = 0, ii = 0; /* di/ii: item index, with dl/il copies left of it */
    int64_t dl = 0, il = 0;
    while (nd < n && it[nd].w < 0)
        nd++;
    ni = n - nd;
    ii = nd;
    if (nd) dl = -it[0].w;
    if (ni) il = it[nd].w;
    int rc = SS_OK;
    while (!rc && di < nd && ii < n) { /* pair: -old +new => update */
        rc = emit(s, "update", it[ii].row, it[di].row, seq, kb, vb, err, errsz);
        if (--dl == 0 && ++di < nd) dl = -it[di].w;
        if (--il == 0 && ++ii < n) il = it[ii].w;
    }
    for (; !rc && di < nd; dl = ++di < nd ? -it[di].w : 0)
        for (; !rc && dl > 0; dl--)
            rc = emit(s, "delete", it[di].row, NULL, seq, kb, vb, err, errsz);
    for (; !rc && ii < n; il = ++ii < n ? it[ii].w : 0)
        for (; !rc && il > 0; il--)
            rc = emit(s, "insert", it[ii].row, NULL, seq, kb, vb, err, errsz);
    return rc;
}

int ss_sink_publish(ss_sink_t *s, const ss_zset_t *delta, int64_t *seq, char *err, size_t errsz)
{
    if (!delta->n)
        return SS_OK;
    if (!delta->consolidated) { /* pairing needs each row once with its net weight */
        ss_zset_t c;
        ss_zset_init(&c);
        int rc = ss_zset_extend(&c, delta, 1);
        if (!rc)
            rc = ss_zset_consolidate(&c);
        if (!rc)
            rc = c.n ? ss_sink_publish(s, &c, seq, err, errsz) : SS_OK;
        else
            ss_seterr(err, errsz, rc, "out of memory");
        ss_zset_destroy(&c);
        return rc;
    }
    item_t *it = malloc(sizeof *it * delta->n);
    if (!it)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < delta->n; i++)
        if (delta->e[i].w)
            it[n++] = (item_t){delta->e[i].row, delta->e[i].w};
    qsort_r(it, n, sizeof *it, item_cmp, s);
    ss_buf_t kb = SS_BUF_INIT, vb = SS_BUF_INIT;
    int rc = SS_OK;
    for (size_t i = 0; i < n && !rc;) {
        size_t j = i + 1;
        while (j < n && key_cmp(it[i].row, it[j].row, s) == 0)
            j++;
        rc = emit_group(s, it + i, j - i, seq, &kb, &vb, err, errsz);
        i = j;
    }
    ss_buf_free(&kb);
    ss_buf_free(&vb);
    free(it);
    if (!rc && s->p->log) /* the log: durable now */
        rc = ss_producer_flush(s->p, 0, err, errsz);
    if (rc)
        ss_errprefix(err, errsz, "view %s -> topic %s", s->view, s->topic);
    return rc;
}

int ss_sink_flush(ss_sink_t *s, int timeout_ms, char *err, size_t errsz)
{
    int rc = ss_producer_flush(s->p, timeout_ms, err, errsz);
    if (rc)
        ss_errprefix(err, errsz, "view %s -> topic %s", s->view, s->topic);
    return rc;
}

void ss_sink_close(ss_sink_t *s)
{
    if (!s)
        return;
    ss_producer_destroy(s->p);
    for (int i = 0; s->colpre && s->schema && i < s->schema->n; i++)
        free(s->colpre[i]);
    free(s->colpre);
    free(s->head);
    ss_schema_free(s->schema);
    free(s->keys);
    free(s->view);
    free(s->topic);
    free(s);
}
