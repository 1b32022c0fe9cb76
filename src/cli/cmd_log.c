/*
 * cmd_log.c — `semstream log`: the durable embedded log from outside the
 * engine. `topics` lists topics with their partitions, offsets and retention;
 * `cat TOPIC` prints messages as JSON lines with partition and offset (what a
 * view published, what INSERT or --load wrote, dead letters); `produce TOPIC`
 * appends stdin's lines (like kcat -P); `retain` applies retention now. The log
 * is "<db>.log" beside the engine's state (--db), or --log PATH.
 */
#include "cli.h"
#include "ss_json.h"
#include "ss_log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: semstream log [--db FILE | --log PATH] COMMAND [options]\n\n"
               "The durable log that holds streams and sink topics when the engine runs without\n"
               "--brokers: \"<db>.log\" beside the state database (default semstream.db.log).\n\n"
               "commands:\n"
               "  topics                       topics, partitions, offsets [low, next) and retention\n"
               "  cat TOPIC [--partition P] [--from OFFSET] [--limit N] [--follow]\n"
               "                               print messages as JSON lines:\n"
               "                               {\"topic\":..,\"partition\":P,\"offset\":N,\"ts_ms\":..,\"key\":..,\"value\":..}\n"
               "                               key and value appear as JSON when they are JSON, else as\n"
               "                               strings; null for no key / a tombstone. Partitions are\n"
               "                               printed one after the other, each in offset order;\n"
               "                               --follow keeps printing new messages until Ctrl-C\n"
               "  produce TOPIC [--key-sep C] [--partition P]\n"
               "                               append stdin's lines (KEY<C>VALUE with --key-sep), durable\n"
               "                               when it exits; a new topic gets 1 partition\n"
               "  retain                       apply every topic's retention now\n");
}

typedef struct cat_opts {
    const char *topic;
    int partition; /* -1: all */
    int64_t from, limit;
    int follow;
} cat_opts_t;

/* Writes bytes as JSON: itself when it parses as JSON, else a string; NULL: null. */
static void put_json_or_string(ss_buf_t *b, const void *p, size_t n)
{
    if (!p) {
        ss_buf_puts(b, "null");
        return;
    }
    ss_json_doc_t *d = NULL;
    char e[64];
    if (n && !ss_json_parse(p, n, 0, &d, NULL, e, sizeof e)) {
        ss_json_write(ss_json_root(d), b);
        ss_json_free(d);
    } else {
        ss_json_put_str_utf8(b, p, n);
    }
}

typedef struct cat_state {
    const cat_opts_t *o;
    int64_t printed;
    int64_t *pos;
} cat_state_t;

static int print_msg(void *arg, const ss_log_msg_t *m)
{
    cat_state_t *c = arg;
    ss_buf_t b = SS_BUF_INIT;
    ss_buf_puts(&b, "{\"topic\":");
    ss_json_put_str_utf8(&b, c->o->topic, strlen(c->o->topic));
    ss_buf_printf(&b, ",\"partition\":%d,\"offset\":%lld,\"ts_ms\":%lld,\"key\":", (int)m->partition,
                  (long long)m->offset, (long long)m->ts_ms);
    put_json_or_string(&b, m->key, m->klen);
    ss_buf_puts(&b, ",\"value\":");
    put_json_or_string(&b, m->val, m->vlen);
    ss_buf_puts(&b, "}\n");
    fwrite(b.data, 1, b.len, stdout);
    ss_buf_free(&b);
    c->pos[m->partition] = m->offset + 1;
    c->printed++;
    return c->o->limit > 0 && c->printed >= c->o->limit ? -1 : 0; /* -1: the limit is reached */
}

static int cmd_cat(ss_log_t *l, const cat_opts_t *o)
{
    char err[SS_ERRSZ];
    ss_log_topic_t t;
    int rc = ss_log_topic_get(l, o->topic, &t, err, sizeof err);
    if (rc == SS_ERR_NOTFOUND) {
        fprintf(stderr, "semstream log: no topic %s in %s ('semstream log topics' lists them)\n", o->topic,
                ss_log_path(l));
        return 1;
    }
    if (!rc && o->partition >= t.partitions) {
        fprintf(stderr, "semstream log: topic %s has %d partition(s)\n", o->topic, t.partitions);
        return 2;
    }
    cat_state_t c = {o, 0, calloc((size_t)t.partitions, sizeof(int64_t))};
    for (int p = 0; !rc && c.pos && p < t.partitions; p++)
        c.pos[p] = o->from;
    for (int pass = 0; !rc && c.pos && !g_stop; pass++) {
        int got = 0;
        for (int p = 0; !rc && p < t.partitions; p++) {
            if (o->partition >= 0 && p != o->partition)
                continue;
            int n = 1;
            while (!rc && n > 0 && !g_stop) {
                rc = ss_log_read(l, t.id, p, c.pos[p], 4096, print_msg, &c, &n, err, sizeof err);
                got += n;
            }
        }
        fflush(stdout);
        if (rc == -1 || !o->follow) /* the limit was reached, or one pass asked for */
            break;
        if (!got) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    free(c.pos);
    if (rc > 0) {
        fprintf(stderr, "semstream log: %s\n", err);
        return 1;
    }
    return 0;
}

static int print_topic(void *arg, const char *name, const ss_log_topic_t *t)
{
    ss_log_t *l = arg;
    int64_t *lo = calloc((size_t)t->partitions, sizeof *lo), *hi = calloc((size_t)t->partitions, sizeof *hi);
    char err[SS_ERRSZ], ret[96] = "forever";
    if (!lo || !hi || ss_log_watermarks(l, t, lo, hi, err, sizeof err)) {
        fprintf(stderr, "semstream log: %s\n", lo && hi ? err : "out of memory");
        free(lo);
        free(hi);
        return -1;
    }
    static const struct { int64_t ms; const char *unit; } units[] = {
        {86400000, "days"}, {3600000, "h"}, {60000, "min"}, {1000, "s"}, {1, "ms"}};
    size_t at = 0;
    for (size_t u = 0; t->retention_ms && u < sizeof units / sizeof units[0]; u++)
        if (t->retention_ms % units[u].ms == 0) {
            at = (size_t)snprintf(ret, sizeof ret, "%lld %s", (long long)(t->retention_ms / units[u].ms),
                                  units[u].unit);
            break;
        }
    if (t->retention_rows)
        snprintf(ret + at, sizeof ret - at, "%s%lld rows", at ? ", " : "", (long long)t->retention_rows);
    int64_t total = 0;
    for (int p = 0; p < t->partitions; p++)
        total += hi[p] - lo[p];
    printf("%s\t%d partition(s)\t%lld message(s)\tretention %s\n", name, t->partitions, (long long)total, ret);
    for (int p = 0; p < t->partitions; p++)
        printf("  partition %d: offsets %lld..%lld\n", p, (long long)lo[p], (long long)hi[p]);
    free(lo);
    free(hi);
    return 0;
}

static int cmd_produce(ss_log_t *l, const char *topic, const char *sep, int partition)
{
    char err[SS_ERRSZ];
    ss_log_rec_t *recs = NULL;
    ss_buf_t data = SS_BUF_INIT;
    size_t *at = NULL, n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int64_t total = 0;
    int rc = SS_OK, eof = 0;
    while (!rc && !eof) {
        /* up to 4096 lines per append: key/value offsets into data, then records */
        n = 0;
        ss_buf_reset(&data);
        while (n < 4096 && !(eof = (len = getline(&line, &lcap, stdin)) < 0)) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = 0;
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                at = realloc(at, cap * 4 * sizeof *at);
                recs = realloc(recs, cap * sizeof *recs);
                if (!at || !recs) {
                    fprintf(stderr, "semstream log: out of memory\n");
                    return 1;
                }
            }
            char *s = sep ? strstr(line, sep) : NULL;
            size_t kl = s ? (size_t)(s - line) : 0, vo = s ? kl + strlen(sep) : 0;
            at[4 * n] = data.len;
            at[4 * n + 1] = s ? kl : (size_t)-1;
            ss_buf_append(&data, line, s ? kl : 0);
            at[4 * n + 2] = data.len;
            at[4 * n + 3] = (size_t)len - vo;
            ss_buf_append(&data, line + vo, (size_t)len - vo);
            n++;
        }
        for (size_t i = 0; i < n; i++)
            recs[i] = (ss_log_rec_t){topic, partition, at[4 * i + 1] == (size_t)-1 ? NULL : data.data + at[4 * i],
                                     at[4 * i + 1] == (size_t)-1 ? 0 : at[4 * i + 1], data.data + at[4 * i + 2],
                                     at[4 * i + 3]};
        rc = ss_log_append(l, recs, n, NULL, err, sizeof err);
        if (!rc)
            total += (int64_t)n;
    }
    free(line);
    free(at);
    free(recs);
    ss_buf_free(&data);
    if (rc) {
        fprintf(stderr, "semstream log: %s (%lld message(s) appended before)\n", err, (long long)total);
        return 1;
    }
    fprintf(stderr, "semstream log: appended %lld message(s) to %s\n", (long long)total, topic);
    return 0;
}

static int parse_i64(const char *s, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo)
        return -1;
    *out = v;
    return 0;
}

int ss_cmd_log(int argc, char **argv)
{
    const char *db = "semstream.db", *path = NULL, *cmd = NULL, *sep = NULL;
    cat_opts_t co = {NULL, -1, 0, 0, 0};
    int64_t v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--db") && next) {
            db = argv[++i];
        } else if (!strcmp(a, "--log") && next) {
            path = argv[++i];
        } else if (!strcmp(a, "--partition") && next && !parse_i64(next, 0, &v) && v < 10000) {
            co.partition = (int)v;
            i++;
        } else if (!strcmp(a, "--from") && next && !parse_i64(next, 0, &v)) {
            co.from = v;
            i++;
        } else if (!strcmp(a, "--limit") && next && !parse_i64(next, 1, &v)) {
            co.limit = v;
            i++;
        } else if (!strcmp(a, "--key-sep") && next && *next) {
            sep = argv[++i];
        } else if (!strcmp(a, "--follow") || !strcmp(a, "-f")) {
            co.follow = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "semstream log: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!cmd) {
            cmd = a;
        } else if (!co.topic) {
            co.topic = a;
        } else {
            fprintf(stderr, "semstream log: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    int needs_topic = cmd && (!strcmp(cmd, "cat") || !strcmp(cmd, "produce"));
    if (!cmd || (needs_topic && !co.topic) ||
        (!needs_topic && strcmp(cmd, "topics") && strcmp(cmd, "retain"))) {
        usage(stderr);
        return 2;
    }
    char *owned = path ? NULL : ss_sprintf("%s.log", db);
    if (!path)
        path = owned;
    if (strcmp(cmd, "produce") && access(path, F_OK)) {
        fprintf(stderr, "semstream log: no log at %s (the engine creates it beside its --db)\n", path);
        free(owned);
        return 1;
    }
    char err[SS_ERRSZ];
    ss_log_t *l = NULL;
    if (ss_log_open(path, &l, err, sizeof err)) {
        fprintf(stderr, "semstream log: %s\n", err);
        free(owned);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = 0;
    if (!strcmp(cmd, "cat")) {
        rc = cmd_cat(l, &co);
    } else if (!strcmp(cmd, "produce")) {
        rc = cmd_produce(l, co.topic, sep, co.partition);
    } else if (!strcmp(cmd, "topics")) {
        int r = ss_log_topics(l, print_topic, l, err, sizeof err);
        if (r > 0)
            fprintf(stderr, "semstream log: %s\n", err);
        rc = r ? 1 : 0;
    } else {
        int64_t deleted = 0;
        rc = ss_log_retain(l, &deleted, err, sizeof err) ? 1 : 0;
        if (!rc)
            printf("deleted %lld message(s)\n", (long long)deleted);
        else
            fprintf(stderr, "semstream log: %s\n", err);
    }
    ss_log_close(l);
    free(owned);
    return rc;
}
