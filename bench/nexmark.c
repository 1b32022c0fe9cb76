/*
 * nexmark.c — the Nexmark benchmark (issue 13): a deterministic generator of
 * persons, auctions and bids (the proportions 1:3:46, hot sellers, auctions
 * and bidders, prices 10^(6u) cents and the event-time progression of the
 * Beam/Flink Nexmark generator, seeded), written to the default durable log
 * (topics person, auction, bid; event time as epoch ms), and the queries the
 * language expresses, each a continuous view over the three streams:
 *
 *   q0 pass-through          q1 currency map          q2 filter
 *   q3 person x auction      q4 avg closing price per category (join + max + avg)
 *   q5 hot items (HOP + max) q7 highest bid per TUMBLE window
 *   q8 new users (windowed join)  q9 winning bids (ROW_NUMBER)  q20 bid x auction filter
 *
 * Every query's view is checked against a reference computed independently:
 * SQLite over the same generated events (windows by integer arithmetic on the
 * epoch ms), compared on the row count and sums of its columns.
 *
 * Speed: each view is created over the full log and run until idle; events/s
 * = all generated events / wall seconds, and per core = events / CPU seconds of
 * the process (all its threads). The baseline measured in the same run is a
 * plain scan of the same log (ss_log_read of every message, no decoding): no
 * consumer of the log can be faster, so ratio = view rate / scan rate <= 1.
 * The published per-core figures of Flink 1.13 (8 task managers) are printed
 * beside ours for reference.
 *
 * The streams are declared append_only (Nexmark's events are never deleted or
 * updated; Flink's and RisingWave's Nexmark sources are append-only too), so
 * their sources keep no state; --append-only 0 declares them as plain keyless
 * streams, whose sources count every row's copies in SQLite to check deletes.
 *
 *   bench_nexmark [--n EVENTS] [--seed S] [--queries q0,q1,...] [--batch-size K] [--out FILE]
 *                 [--append-only 1|0]
 */
#include "ss_bench_util.h"
#include "ss_engine.h"
#include "ss_log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the generator ---- */

enum { PERSON_P = 1, AUCTION_P = 3, BID_P = 46, TOTAL_P = 50 };
enum { FIRST_PERSON = 1000, FIRST_AUCTION = 1000, FIRST_CATEGORY = 10, NUM_CATEGORIES = 5 };
enum { HOT_SELLER_RATIO = 4, HOT_AUCTION_RATIO = 2, HOT_BIDDER_RATIO = 4, IN_FLIGHT_AUCTIONS = 100,
       ACTIVE_PEOPLE = 1000 };
#define BASE_TIME_MS 1700000000000LL /* 2023-11-14T22:13:20Z */
#define EVENT_RATE 10000             /* events per second of event time (Nexmark's default) */

static const char *const STATES[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
static const char *const CITIES[] = {"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend",
                                     "Redmond", "Seattle", "Kent", "Cheyenne"};
static const char *const FIRST[] = {"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter",
                                    "Walter"};
static const char *const LAST[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"};
static const char *const CHANNELS[] = {"Google", "Facebook", "Baidu", "Apple"};

typedef struct rng { uint64_t s; } rng_t;
static uint64_t rnext(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static int64_t rint_(rng_t *r, int64_t n) { return n <= 1 ? 0 : (int64_t)(rnext(r) % (uint64_t)n); }
static double runit(rng_t *r) { return (double)(rnext(r) >> 11) / 9007199254740992.0; }
static int64_t next_price(rng_t *r) { return (int64_t)llround(pow(10.0, runit(r) * 6.0) * 100.0); }

/* The last person / auction id (0-based) created at or before event i (Beam's lastBase0*Id). */
static int64_t last_person(int64_t i)
{
    int64_t epoch = i / TOTAL_P, off = i % TOTAL_P;
    if (off >= PERSON_P)
        off = PERSON_P - 1;
    return epoch * PERSON_P + off;
}
static int64_t last_auction(int64_t i)
{
    int64_t epoch = i / TOTAL_P, off = i % TOTAL_P;
    if (off < PERSON_P) {
        epoch--;
        off = AUCTION_P - 1;
    } else if (off >= PERSON_P + AUCTION_P)
        off = AUCTION_P - 1;
    else
        off -= PERSON_P;
    return epoch < 0 ? 0 : epoch * AUCTION_P + off;
}
static int64_t recent_person(rng_t *r, int64_t i)
{
    int64_t last = last_person(i);
    return last - rint_(r, last + 1 < ACTIVE_PEOPLE ? last + 1 : ACTIVE_PEOPLE);
}
static int64_t recent_auction(rng_t *r, int64_t i)
{
    int64_t last = last_auction(i);
    return last - rint_(r, last + 1 < IN_FLIGHT_AUCTIONS ? last + 1 : IN_FLIGHT_AUCTIONS);
}

typedef struct event {
    int kind; /* 0 person, 1 auction, 2 bid */
    int64_t ts;
    int64_t id, seller, category, initial, reserve, expires; /* person: id; auction: all */
    int64_t auction, bidder, price;                          /* bid */
    char name[48], city[24], state[4], item[24], channel[12];
} event_t;

static void gen_event(rng_t *r, int64_t i, event_t *e)
{
    memset(e, 0, sizeof *e);
    e->ts = BASE_TIME_MS + i * 1000 / EVENT_RATE;
    int64_t off = i % TOTAL_P;
    if (off < PERSON_P) {
        e->kind = 0;
        e->id = FIRST_PERSON + last_person(i);
        snprintf(e->name, sizeof e->name, "%s %s", FIRST[rint_(r, 11)], LAST[rint_(r, 9)]);
        snprintf(e->city, sizeof e->city, "%s", CITIES[rint_(r, 10)]);
        snprintf(e->state, sizeof e->state, "%s", STATES[rint_(r, 6)]);
    } else if (off < PERSON_P + AUCTION_P) {
        e->kind = 1;
        e->id = FIRST_AUCTION + last_auction(i);
        e->seller = FIRST_PERSON + (rint_(r, HOT_SELLER_RATIO) > 0 ? last_person(i) / HOT_SELLER_RATIO * HOT_SELLER_RATIO
                                                                   : recent_person(r, i));
        e->category = FIRST_CATEGORY + rint_(r, NUM_CATEGORIES);
        e->initial = next_price(r);
        e->reserve = e->initial + next_price(r);
        e->expires = e->ts + 1000 + rint_(r, 19000); /* open 1-20 s of event time */
        snprintf(e->item, sizeof e->item, "item%" PRId64, rint_(r, 100000));
    } else {
        e->kind = 2;
        e->auction = FIRST_AUCTION + (rint_(r, HOT_AUCTION_RATIO) > 0
                                          ? last_auction(i) / HOT_AUCTION_RATIO * HOT_AUCTION_RATIO
                                          : recent_auction(r, i));
        e->bidder = FIRST_PERSON + (rint_(r, HOT_BIDDER_RATIO) > 0 ? last_person(i) / HOT_BIDDER_RATIO * HOT_BIDDER_RATIO
                                                                   : recent_person(r, i));
        e->price = next_price(r);
        snprintf(e->channel, sizeof e->channel, "%s", CHANNELS[rint_(r, 4)]);
    }
}

static void event_json(const event_t *e, ss_buf_t *b)
{
    ss_buf_reset(b);
    if (e->kind == 0)
        ss_buf_printf(b, "{\"id\":%" PRId64 ",\"name\":\"%s\",\"city\":\"%s\",\"state\":\"%s\",\"date_time\":%" PRId64 "}",
                      e->id, e->name, e->city, e->state, e->ts);
    else if (e->kind == 1)
        ss_buf_printf(b, "{\"id\":%" PRId64 ",\"item_name\":\"%s\",\"initial_bid\":%" PRId64 ",\"reserve\":%" PRId64
                         ",\"date_time\":%" PRId64 ",\"expires\":%" PRId64 ",\"seller\":%" PRId64 ",\"category\":%" PRId64 "}",
                      e->id, e->item, e->initial, e->reserve, e->ts, e->expires, e->seller, e->category);
    else
        ss_buf_printf(b, "{\"auction\":%" PRId64 ",\"bidder\":%" PRId64 ",\"price\":%" PRId64 ",\"channel\":\"%s\","
                         "\"date_time\":%" PRId64 "}",
                      e->auction, e->bidder, e->price, e->channel, e->ts);
}

/* ---- the reference: SQLite over the same events ---- */

static int ref_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "bench: reference: %s: %s\n", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return 1;
    }
    return 0;
}

static int ref_add(sqlite3_stmt *const *ins, const event_t *e)
{
    sqlite3_stmt *s = ins[e->kind];
    if (e->kind == 0) {
        sqlite3_bind_int64(s, 1, e->id);
        sqlite3_bind_text(s, 2, e->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, e->city, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, e->state, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, e->ts);
    } else if (e->kind == 1) {
        int64_t v[] = {e->id, e->initial, e->reserve, e->ts, e->expires, e->seller, e->category};
        for (int k = 0; k < 7; k++)
            sqlite3_bind_int64(s, k + 1, v[k]);
        sqlite3_bind_text(s, 8, e->item, -1, SQLITE_STATIC);
    } else {
        int64_t v[] = {e->auction, e->bidder, e->price, e->ts};
        for (int k = 0; k < 4; k++)
            sqlite3_bind_int64(s, k + 1, v[k]);
        sqlite3_bind_text(s, 5, e->channel, -1, SQLITE_STATIC);
    }
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : 1;
    sqlite3_reset(s);
    return rc;
}

/* ---- the queries ---- */

typedef struct query {
    const char *name;
    const char *view;  /* the body of CREATE VIEW <name> AS ... */
    const char *ref;   /* the same result over the reference tables (times in epoch ms) */
    const char *check; /* aggregates over the result: "SELECT ... FROM %s" (view name or "(ref)") */
    double flink;      /* published Flink 1.13 events/s per core, 0 = none */
} query_t;

#define W10 "INTERVAL '10' SECOND"
static const query_t QUERIES[] = {
    {"q0", "SELECT auction, bidder, price, date_time FROM bid", "SELECT auction, bidder, price, date_time FROM bid",
     "SELECT COUNT(*) AS n, SUM(auction) AS a, SUM(bidder) AS b, SUM(price) AS p FROM %s", 155000},
    {"q1", "SELECT auction, bidder, price * 0.908 AS price, date_time FROM bid",
     "SELECT auction, bidder, price * 0.908 AS price, date_time FROM bid",
     "SELECT COUNT(*) AS n, SUM(auction) AS a, SUM(price) AS p FROM %s", 0},
    {"q2", "SELECT auction, price FROM bid WHERE auction % 123 = 0",
     "SELECT auction, price FROM bid WHERE auction % 123 = 0",
     "SELECT COUNT(*) AS n, SUM(auction) AS a, SUM(price) AS p FROM %s", 0},
    {"q3", "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id "
           "WHERE a.category = 10 AND p.state IN ('OR', 'ID', 'CA')",
     "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id "
     "WHERE a.category = 10 AND p.state IN ('OR', 'ID', 'CA')",
     "SELECT COUNT(*) AS n, SUM(id) AS a, COUNT(DISTINCT name) AS d FROM %s", 0},
    {"q4", "SELECT category, AVG(final) AS avgp FROM (SELECT a.id, a.category, MAX(b.price) AS final "
           "FROM auction a JOIN bid b ON a.id = b.auction WHERE b.date_time BETWEEN a.date_time AND a.expires "
           "GROUP BY a.id, a.category) w GROUP BY category",
     "SELECT category, AVG(final) AS avgp FROM (SELECT a.id, a.category, MAX(b.price) AS final "
     "FROM auction a JOIN bid b ON a.id = b.auction WHERE b.date_time BETWEEN a.date_time AND a.expires "
     "GROUP BY a.id, a.category) w GROUP BY category",
     "SELECT COUNT(*) AS n, SUM(category) AS c, SUM(avgp) AS s FROM %s", 34000},
    {"q5", "WITH c AS (SELECT auction, window_start AS ws, COUNT(*) AS num FROM HOP(bid, DESCRIPTOR(date_time), "
           "INTERVAL '2' SECOND, " W10 ") GROUP BY auction, window_start) "
           "SELECT c.auction, c.num, c.ws FROM c JOIN (SELECT ws, MAX(num) AS mx FROM c GROUP BY ws) m "
           "ON c.ws = m.ws AND c.num = m.mx",
     "WITH h AS (SELECT auction, date_time - date_time % 2000 - j * 2000 AS ws FROM bid, "
     "(SELECT 0 AS j UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4)), "
     "c AS (SELECT auction, ws, COUNT(*) AS num FROM h GROUP BY auction, ws) "
     "SELECT c.auction, c.num, c.ws FROM c JOIN (SELECT ws, MAX(num) AS mx FROM c GROUP BY ws) m "
     "ON c.ws = m.ws AND c.num = m.mx",
     "SELECT COUNT(*) AS n, SUM(auction) AS a, SUM(num) AS c FROM %s", 0},
    {"q7", "SELECT b.auction, b.price, b.bidder FROM bid b JOIN (SELECT MAX(price) AS maxprice, window_start AS ws, "
           "window_end AS we FROM TUMBLE(bid, DESCRIPTOR(date_time), " W10 ") GROUP BY window_start, window_end) m "
           "ON b.price = m.maxprice AND b.date_time >= m.ws AND b.date_time < m.we",
     "SELECT b.auction, b.price, b.bidder FROM bid b JOIN (SELECT MAX(price) AS maxprice, "
     "date_time - date_time % 10000 AS ws FROM bid GROUP BY ws) m "
     "ON b.price = m.maxprice AND b.date_time >= m.ws AND b.date_time < m.ws + 10000",
     "SELECT COUNT(*) AS n, SUM(auction) AS a, SUM(price) AS p, SUM(bidder) AS b FROM %s", 12300},
    {"q8", "SELECT p.id, p.name FROM (SELECT id, name, window_start AS ws FROM TUMBLE(person, DESCRIPTOR(date_time), "
           W10 ") GROUP BY id, name, window_start) p JOIN (SELECT seller, window_start AS ws FROM "
           "TUMBLE(auction, DESCRIPTOR(date_time), " W10 ") GROUP BY seller, window_start) a "
           "ON p.id = a.seller AND p.ws = a.ws",
     "SELECT p.id, p.name FROM (SELECT id, name, date_time - date_time % 10000 AS ws FROM person "
     "GROUP BY id, name, ws) p JOIN (SELECT seller, date_time - date_time % 10000 AS ws FROM auction "
     "GROUP BY seller, ws) a ON p.id = a.seller AND p.ws = a.ws",
     "SELECT COUNT(*) AS n, SUM(id) AS a FROM %s", 0},
    {"q9", "SELECT auction, bidder, price FROM (SELECT b.auction, b.bidder, b.price, ROW_NUMBER() OVER "
           "(PARTITION BY a.id ORDER BY b.price DESC, b.date_time) AS rn FROM auction a JOIN bid b "
           "ON a.id = b.auction WHERE b.date_time BETWEEN a.date_time AND a.expires) w WHERE rn = 1",
     "SELECT auction, bidder, price FROM (SELECT b.auction, b.bidder, b.price, ROW_NUMBER() OVER "
     "(PARTITION BY a.id ORDER BY b.price DESC, b.date_time) AS rn FROM auction a JOIN bid b "
     "ON a.id = b.auction WHERE b.date_time BETWEEN a.date_time AND a.expires) w WHERE rn = 1",
     "SELECT COUNT(*) AS n, SUM(auction) AS a, SUM(bidder) AS b, SUM(price) AS p FROM %s", 14200},
    {"q20", "SELECT b.auction, b.bidder, b.price, b.channel, a.item_name, a.category FROM bid b "
            "JOIN auction a ON b.auction = a.id WHERE a.category = 10",
     "SELECT b.auction, b.bidder, b.price, b.channel, a.item_name, a.category FROM bid b "
     "JOIN auction a ON b.auction = a.id WHERE a.category = 10",
     "SELECT COUNT(*) AS n, SUM(auction) AS a, SUM(price) AS p FROM %s", 19000},
};

/* Parses the first row "[1,2.5,...]" after the header line of a result_format json answer. */
static int parse_row(const char *s, double *v, int max)
{
    const char *p = strchr(s, '\n');
    if (!p || !(p = strchr(p, '[')))
        return -1;
    int n = 0;
    p++;
    while (*p && *p != ']' && n < max) {
        char *end;
        v[n] = strtod(p, &end);
        if (end == p) {
            if (!strncmp(p, "null", 4)) {
                v[n] = 0;
                end = (char *)p + 4;
            } else
                return -1;
        }
        n++;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return n;
}

static int ref_check(sqlite3 *db, const query_t *q, double *v, int max)
{
    char body[4096], sql[8192];
    snprintf(body, sizeof body, "(%s)", q->ref);
    snprintf(sql, sizeof sql, q->check, body);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
        fprintf(stderr, "bench: reference %s: %s\n", q->name, sqlite3_errmsg(db));
        sqlite3_finalize(s);
        return -1;
    }
    int n = sqlite3_column_count(s);
    for (int i = 0; i < n && i < max; i++)
        v[i] = sqlite3_column_double(s, i);
    sqlite3_finalize(s);
    return n;
}

static double cpu_secs(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- the baseline: a plain scan of the log ---- */

static int count_msg(void *arg, const ss_log_msg_t *m)
{
    int64_t *bytes = arg;
    *bytes += (int64_t)m->vlen;
    return 0;
}

static double log_scan(const char *path, int64_t *msgs, char *err, size_t errsz)
{
    ss_log_t *l = NULL;
    if (ss_log_open(path, &l, err, errsz))
        return -1;
    int64_t t0 = ss_now_ns(), bytes = 0;
    *msgs = 0;
    const char *topics[] = {"person", "auction", "bid"};
    for (int k = 0; k < 3; k++) {
        ss_log_topic_t t;
        if (ss_log_topic_get(l, topics[k], &t, err, errsz))
            break;
        for (int p = 0; p < t.partitions; p++) {
            int64_t from = 0;
            for (;;) {
                int got = 0;
                if (ss_log_read(l, t.id, p, from, 65536, count_msg, &bytes, &got, err, errsz)) {
                    ss_log_close(l);
                    return -1;
                }
                if (!got)
                    break;
                from += got;
                *msgs += got;
            }
        }
    }
    double s = (double)(ss_now_ns() - t0) / 1e9;
    ss_log_close(l);
    return s;
}

/* ---- main ---- */

static int gen_all(const char *logpath, sqlite3 *ref, int64_t n, uint64_t seed, char *err, size_t errsz)
{
    ss_log_t *l = NULL;
    if (ss_log_open(logpath, &l, err, errsz))
        return 1;
    sqlite3_stmt *ins[3] = {0};
    const char *isql[3] = {"INSERT INTO person VALUES(?1,?2,?3,?4,?5)",
                           "INSERT INTO auction(id, initial_bid, reserve, date_time, expires, seller, category, "
                           "item_name) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
                           "INSERT INTO bid VALUES(?1,?2,?3,?4,?5)"};
    if (ref_exec(ref, "CREATE TABLE person(id INT, name TEXT, city TEXT, state TEXT, date_time INT);"
                      "CREATE TABLE auction(id INT, item_name TEXT, initial_bid INT, reserve INT, date_time INT, "
                      "expires INT, seller INT, category INT);"
                      "CREATE TABLE bid(auction INT, bidder INT, price INT, date_time INT, channel TEXT);"
                      "BEGIN"))
        return 1;
    for (int k = 0; k < 3; k++)
        if (sqlite3_prepare_v2(ref, isql[k], -1, &ins[k], NULL) != SQLITE_OK)
            return ss_seterr(err, errsz, SS_ERR_SQLITE, "reference: %s", sqlite3_errmsg(ref)), 1;
    const char *topics[] = {"person", "auction", "bid"};
    enum { CHUNK = 20000 };
    ss_log_rec_t *recs = calloc(CHUNK, sizeof *recs);
    ss_buf_t *bufs = calloc(CHUNK, sizeof *bufs);
    rng_t r = {seed};
    int rc = !recs || !bufs;
    for (int64_t i = 0; i < n && !rc;) {
        int m = 0;
        for (; m < CHUNK && i < n; m++, i++) {
            event_t e;
            gen_event(&r, i, &e);
            event_json(&e, &bufs[m]);
            recs[m] = (ss_log_rec_t){.topic = topics[e.kind], .partition = 0, .val = bufs[m].data, .vlen = bufs[m].len};
            rc = ref_add(ins, &e);
            if (rc)
                break;
        }
        if (!rc)
            rc = ss_log_append(l, recs, (size_t)m, NULL, err, errsz) != SS_OK;
    }
    for (int k = 0; k < CHUNK && bufs; k++)
        ss_buf_free(&bufs[k]);
    free(bufs);
    free(recs);
    for (int k = 0; k < 3; k++)
        sqlite3_finalize(ins[k]);
    ss_log_close(l);
    return rc || ref_exec(ref, "COMMIT");
}

int main(int argc, char **argv)
{
    int64_t n = 1000000;
    uint64_t seed = 42;
    int batch = 8192, append_only = 1;
    const char *outp = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--queries") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--batch-size") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            outp = argv[++i];
        else if (!strcmp(argv[i], "--append-only") && i + 1 < argc)
            append_only = atoi(argv[++i]) != 0;
        else {
            fprintf(stderr, "usage: bench_nexmark [--n EVENTS] [--seed S] [--queries q0,q1,...] [--batch-size K] "
                            "[--out FILE] [--append-only 1|0]\n");
            return 2;
        }
    }
    char dir[] = "/tmp/ss_nexmarkXXXXXX", db[64], logp[80], err[SS_ERRSZ];
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(db, sizeof db, "%s/state.db", dir);
    snprintf(logp, sizeof logp, "%s.log", db);
    sqlite3 *ref = NULL;
    sqlite3_open(":memory:", &ref);
    int64_t t0 = ss_now_ns();
    if (gen_all(logp, ref, n, seed, err, sizeof err)) {
        fprintf(stderr, "bench: generating: %s\n", err);
        return 1;
    }
    printf("nexmark: %" PRId64 " events (seed %" PRIu64 ") generated into %s in %.1f s\n", n, seed, logp,
           (double)(ss_now_ns() - t0) / 1e9);
    int64_t scanned = 0;
    double scan = log_scan(logp, &scanned, err, sizeof err);
    if (scan <= 0 || scanned != n) {
        fprintf(stderr, "bench: log scan: %s (%" PRId64 " of %" PRId64 ")\n", err, scanned, n);
        return 1;
    }
    double scan_rate = (double)n / scan;
    printf("baseline: plain scan of the log: %.0f events/s\n", scan_rate);

    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    o.db_path = db;
    o.batch_size = batch;
    o.max_latency_ms = 5;
    ss_engine_t *e = NULL;
    ss_buf_t out = SS_BUF_INIT;
    const char *ao = append_only ? ", append_only = true" : "";
    char ddl[2048];
    snprintf(ddl, sizeof ddl,
             "CREATE STREAM person (id INT, name TEXT, city TEXT, state TEXT, date_time TIMESTAMP, "
             "WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) WITH (timestamp_format = 'epoch_ms'%s);"
             "CREATE STREAM auction (id INT, item_name TEXT, initial_bid INT, reserve INT, date_time TIMESTAMP, "
             "expires TIMESTAMP, seller INT, category INT, WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) "
             "WITH (timestamp_format = 'epoch_ms'%s);"
             "CREATE STREAM bid (auction INT, bidder INT, price INT, channel TEXT, date_time TIMESTAMP, "
             "WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) WITH (timestamp_format = 'epoch_ms'%s);"
             "SET result_format = 'json';",
             ao, ao, ao);
    if (ss_engine_open(&o, &e, err, sizeof err) || ss_engine_exec(e, ddl, strlen(ddl), "nexmark", &out, err, sizeof err)) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    char pbuf[256];
    const char *path = outp ? outp : ss_bench_result_path("nexmark.json", pbuf, sizeof pbuf);
    ss_buf_t js = SS_BUF_INIT;
    time_t now = time(NULL);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    ss_buf_printf(&js, "{\"bench\":\"nexmark\",\"n\":%" PRId64 ",\"seed\":%" PRIu64 ",\"batch_size\":%d,\"append_only\":%s,"
                       "\"baseline\":\"plain scan of the log (ss_log_read, no decoding)\",\"baseline_events_per_s\":%.0f,"
                       "\"cpus\":%ld,\"date\":\"%s\",\"queries\":[",
                  n, seed, batch, append_only ? "true" : "false", scan_rate, sysconf(_SC_NPROCESSORS_ONLN), ts);
    int failed = 0, ran = 0;
    printf("%-4s %12s %14s %8s %14s %10s  %s\n", "q", "events/s", "per core", "ratio", "Flink/core", "rows",
           "check vs SQLite");
    for (size_t qi = 0; qi < sizeof QUERIES / sizeof *QUERIES; qi++) {
        const query_t *q = &QUERIES[qi];
        if (only) {
            char pat[16];
            snprintf(pat, sizeof pat, ",%s,", q->name);
            char lst[256];
            snprintf(lst, sizeof lst, ",%s,", only);
            if (!strstr(lst, pat))
                continue;
        }
        char sql[8192];
        snprintf(sql, sizeof sql, "CREATE CONTINUOUS VIEW %s AS %s;", q->name, q->view);
        double c0 = cpu_secs();
        int64_t w0 = ss_now_ns();
        ss_buf_reset(&out);
        int rc = ss_engine_exec(e, sql, strlen(sql), q->name, &out, err, sizeof err);
        if (!rc)
            rc = ss_engine_run_until_idle(e, 3600000, err, sizeof err);
        double secs = (double)(ss_now_ns() - w0) / 1e9, cpu = cpu_secs() - c0;
        double got[8] = {0}, want[8] = {0};
        int ng = -1, nw = -1;
        if (!rc) {
            snprintf(sql, sizeof sql, q->check, q->name);
            strcat(sql, ";");
            ss_buf_reset(&out);
            rc = ss_engine_exec(e, sql, strlen(sql), q->name, &out, err, sizeof err);
            ng = rc ? -1 : parse_row(ss_buf_cstr(&out), got, 8);
            nw = ref_check(ref, q, want, 8);
        }
        int ok = !rc && ng > 0 && ng == nw;
        for (int k = 0; ok && k < ng; k++)
            ok = fabs(got[k] - want[k]) <= 1e-9 * fmax(1.0, fabs(want[k]));
        ran++;
        failed += !ok;
        double rate = (double)n / secs, per_core = (double)n / (cpu > 0 ? cpu : secs);
        char chk[256] = "";
        size_t cl = 0;
        for (int k = 0; k < ng && cl < sizeof chk - 40; k++)
            cl += (size_t)snprintf(chk + cl, sizeof chk - cl, "%s%.17g", k ? "," : "", got[k]);
        if (rc)
            printf("%-4s FAILED: %s\n", q->name, err);
        else {
            char fl[32] = "-";
            if (q->flink > 0)
                snprintf(fl, sizeof fl, "%.0f (%.2fx)", q->flink, per_core / q->flink);
            printf("%-4s %12.0f %14.0f %8.3f %14s %10.0f  %s [%s]\n", q->name, rate, per_core, rate / scan_rate, fl,
                   got[0], ok ? "matches" : "MISMATCH", chk);
            if (!ok) {
                printf("     reference:");
                for (int k = 0; k < nw; k++)
                    printf(" %.17g", want[k]);
                printf("\n");
            }
        }
        fflush(stdout);
        ss_buf_printf(&js, "%s{\"query\":\"%s\",\"ok\":%s,\"wall_s\":%.3f,\"cpu_s\":%.3f,\"events_per_s\":%.0f,"
                           "\"events_per_cpu_s\":%.0f,\"ratio_to_log_scan\":%.4f,\"flink_per_core\":%.0f,\"rows\":%.0f,"
                           "\"check\":\"%s\"}",
                      ran > 1 ? "," : "", q->name, ok ? "true" : "false", secs, cpu, rate, per_core, rate / scan_rate,
                      q->flink, got[0], chk);
        snprintf(sql, sizeof sql, "DROP VIEW %s;", q->name);
        ss_buf_reset(&out);
        if (!rc && ss_engine_exec(e, sql, strlen(sql), q->name, &out, err, sizeof err))
            fprintf(stderr, "bench: %s\n", err);
    }
    ss_buf_printf(&js, "],\"failed\":%d}\n", failed);
    ss_engine_close(e);
    sqlite3_close(ref);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(ss_buf_cstr(&js), f);
        fclose(f);
        printf("wrote %s\n", path);
    }
    ss_buf_free(&js);
    ss_buf_free(&out);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    printf("%d of %d queries match the reference\n", ran - failed, ran);
    return failed ? 1 : 0;
}
