/*
 * log.c — throughput of the durable embedded log (connectors/log.c) against
 * the ceiling of the same disk measured in the same run:
 *
 *   append  N keyed JSON messages in batches of B, each batch one durable
 *           transaction (ss_log_append), against writing the same bytes
 *           (length-prefixed records) to a preallocated plain file with one
 *           write() and one fdatasync() per batch: the least any durable
 *           append log must do;
 *   single  K appends of one message each (what an INSERT statement costs),
 *           against K write()+fdatasync() of one record;
 *   read    every message back in offset order (ss_log_read), against mapping
 *           the plain file (from the page cache) and walking its records;
 *   decode  every message through ss_source (the engine's view: decoded rows
 *           of id INT KEY, v INT, s TEXT), for reference.
 * Prints each rate, its ratio to the ceiling, the log's size per message, and
 * the peak RSS; writes JSON to bench/results/log.json.
 *
 * usage: bench_log [--n N] [--batch B] [--single K] [--partitions P] [--text-bytes T] [--dir DIR] [--out FILE]
 */
#include "ss_bench_util.h"
#include "ss_connect.h"
#include "ss_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct msgs {
    ss_buf_t data;  /* keys and values */
    size_t *at;     /* per message: key offset, key length, value offset, value length */
    int64_t n;
    size_t bytes;   /* keys + values */
} msgs_t;

static void make_msgs(msgs_t *m, int64_t n, int text_bytes)
{
    static const char *words[] = {"alpha", "brook", "cedar", "delta", "ember", "fjord", "grove", "harbor"};
    memset(m, 0, sizeof *m);
    m->n = n;
    m->at = malloc((size_t)n * 4 * sizeof *m->at);
    for (int64_t i = 0; i < n; i++) {
        size_t k0 = m->data.len;
        ss_buf_printf(&m->data, "{\"id\":%" PRId64 "}", i);
        size_t v0 = m->data.len;
        ss_buf_printf(&m->data, "{\"id\":%" PRId64 ",\"v\":%" PRId64 ",\"s\":\"", i, i % 100);
        uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL + 1;
        while (m->data.len - v0 < (size_t)text_bytes + 20) {
            x ^= x >> 29;
            x *= 0xbf58476d1ce4e5b9ULL;
            ss_buf_printf(&m->data, "%s ", words[(x >> 40) % 8]);
        }
        ss_buf_puts(&m->data, "\"}");
        m->at[4 * i] = k0;
        m->at[4 * i + 1] = v0 - k0;
        m->at[4 * i + 2] = v0;
        m->at[4 * i + 3] = m->data.len - v0;
    }
    m->bytes = m->data.len;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* ---- the ceiling: a plain file of length-prefixed records ---- */

/* Writes count records, batch per write()+fdatasync(), into a file allocated
 * beforehand (as the log's WAL is reused), so that fdatasync flushes data only. */
static double raw_append(const msgs_t *m, const char *path, int64_t batch, int64_t count, char *err, size_t errsz)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    size_t total = 0;
    for (int64_t j = 0; j < count; j++)
        total += 8 + m->at[4 * j + 1] + m->at[4 * j + 3];
    if (fd < 0 || posix_fallocate(fd, 0, (off_t)total) || fsync(fd)) {
        ss_seterr(err, errsz, SS_ERR_IO, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    ss_buf_t b = SS_BUF_INIT;
    off_t at = 0;
    int64_t t0 = ss_now_ns();
    for (int64_t i = 0; i < count; i += batch) {
        ss_buf_reset(&b);
        for (int64_t j = i; j < i + batch && j < count; j++) {
            uint32_t kl = (uint32_t)m->at[4 * j + 1], vl = (uint32_t)m->at[4 * j + 3];
            ss_buf_append(&b, &kl, 4);
            ss_buf_append(&b, m->data.data + m->at[4 * j], kl);
            ss_buf_append(&b, &vl, 4);
            ss_buf_append(&b, m->data.data + m->at[4 * j + 2], vl);
        }
        if (pwrite(fd, b.data, b.len, at) != (ssize_t)b.len || fdatasync(fd)) {
            ss_seterr(err, errsz, SS_ERR_IO, "%s: %s", path, strerror(errno));
            close(fd);
            ss_buf_free(&b);
            return -1;
        }
        at += (off_t)b.len;
    }
    double secs = (ss_now_ns() - t0) / 1e9;
    close(fd);
    ss_buf_free(&b);
    return (double)count / secs;
}

static double raw_read(const char *path, int64_t want, uint64_t *sum)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat st;
    fstat(fd, &st);
    int64_t t0 = ss_now_ns(), n = 0;
    const char *buf = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (buf == MAP_FAILED) {
        close(fd);
        return -1;
    }
    for (size_t at = 0; at + 4 <= (size_t)st.st_size; n++) {
        uint32_t kl, vl;
        memcpy(&kl, buf + at, 4);
        *sum += (unsigned char)buf[at + 4];
        at += 4 + kl;
        memcpy(&vl, buf + at, 4);
        *sum += (unsigned char)buf[at + 4 + vl - 1];
        at += 4 + vl;
    }
    double secs = (ss_now_ns() - t0) / 1e9;
    munmap((void *)buf, (size_t)st.st_size);
    close(fd);
    return n == want ? (double)n / secs : -1;
}

/* ---- the log ---- */

static double log_append(ss_log_t *l, const msgs_t *m, const char *topic, int64_t batch, int64_t count, char *err,
                         size_t errsz)
{
    ss_log_rec_t *r = malloc((size_t)batch * sizeof *r);
    int64_t t0 = ss_now_ns();
    for (int64_t i = 0; i < count; i += batch) {
        size_t k = 0;
        for (int64_t j = i; j < i + batch && j < count; j++)
            r[k++] = (ss_log_rec_t){topic, -1, m->data.data + m->at[4 * j], m->at[4 * j + 1],
                                    m->data.data + m->at[4 * j + 2], m->at[4 * j + 3]};
        if (ss_log_append(l, r, k, NULL, err, errsz)) {
            free(r);
            return -1;
        }
    }
    double secs = (ss_now_ns() - t0) / 1e9;
    free(r);
    return (double)count / secs;
}

static int touch(void *arg, const ss_log_msg_t *m)
{
    uint64_t *sum = arg;
    *sum += ((const unsigned char *)m->key)[0] + ((const unsigned char *)m->val)[m->vlen - 1];
    return 0;
}

static double log_read(ss_log_t *l, const char *topic, int64_t want, uint64_t *sum, char *err, size_t errsz)
{
    ss_log_topic_t t;
    if (ss_log_topic_get(l, topic, &t, err, errsz))
        return -1;
    int64_t t0 = ss_now_ns(), total = 0;
    for (int p = 0; p < t.partitions; p++) {
        int64_t at = 0;
        for (int n = 1; n > 0;) {
            if (ss_log_read(l, t.id, p, at, 4096, touch, sum, &n, err, errsz))
                return -1;
            at += n;
            total += n;
        }
    }
    double secs = (ss_now_ns() - t0) / 1e9;
    return total == want ? (double)total / secs : -1;
}

static double source_read(const char *path, const char *topic, int64_t want, char *err, size_t errsz)
{
    ss_transport_t *t = NULL;
    if (ss_transport_log(path, &t, err, errsz))
        return -1;
    ss_schema_t *sch = ss_schema_new(3);
    ss_schema_set(sch, 0, "id", SS_COL_INT, 1);
    ss_schema_set(sch, 1, "v", SS_COL_INT, 0);
    ss_schema_set(sch, 2, "s", SS_COL_TEXT, 0);
    ss_source_opts_t o = {t, "bench", topic, SS_FMT_JSON, sch, NULL, 0, NULL, 0};
    ss_source_t *s = NULL;
    double rate = -1;
    if (!ss_source_open(&o, NULL, 0, &s, err, errsz)) {
        ss_zset_t z;
        ss_zset_init(&z);
        int64_t got = 0, t0 = ss_now_ns();
        for (int k = 1; k > 0 && got < want;) {
            if (ss_source_poll(s, 4096, 0, &z, &k, err, errsz))
                break;
            got += k;
            ss_zset_clear(&z);
        }
        double secs = (ss_now_ns() - t0) / 1e9;
        ss_source_stats_t st;
        ss_source_get_stats(s, &st);
        if (got == want && st.events == want && st.bad == 0)
            rate = (double)want / secs;
        ss_zset_destroy(&z);
    }
    ss_source_close(s);
    ss_schema_free(sch);
    ss_transport_close(t);
    return rate;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? 0 : (int64_t)st.st_size;
}

int main(int argc, char **argv)
{
    int64_t n = 1000000, batch = 16384, single = 200;
    int parts = 1, text_bytes = 32;
    const char *dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_log: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--n")) n = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--batch")) batch = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--single")) single = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--partitions")) parts = atoi(v);
        else if (!strcmp(a, "--text-bytes")) text_bytes = atoi(v);
        else if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--out")) out = v;
        else {
            fprintf(stderr, "usage: bench_log [--n N] [--batch B] [--single K] [--partitions P] [--text-bytes T] "
                            "[--dir DIR] [--out FILE]\n");
            return 2;
        }
        i++;
    }
    if (n < 1 || batch < 1 || single < 1 || parts < 1) {
        fprintf(stderr, "bench_log: --n, --batch, --single and --partitions must be positive\n");
        return 2;
    }
    char tmpl[] = "/tmp/ss_bench_logXXXXXX", logp[1024], rawp[1024], err[SS_ERRSZ];
    int own_dir = !dir;
    if (!dir && !(dir = mkdtemp(tmpl))) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(logp, sizeof logp, "%s/bench.log", dir);
    snprintf(rawp, sizeof rawp, "%s/bench.raw", dir);
    unlink(logp);
    msgs_t m;
    make_msgs(&m, n, text_bytes);
    printf("bench_log: %" PRId64 " messages, %.1f B each (key + value), batches of %" PRId64 ", %d partition(s), in %s\n",
           n, (double)m.bytes / (double)n, batch, parts, dir);

    ss_log_t *l = NULL;
    ss_topic_opts_t to = {parts, 0, 0, 0};
    int rc = ss_log_open(logp, &l, err, sizeof err) || ss_log_topic_create(l, "bulk", &to, NULL, NULL, err, sizeof err) ||
             ss_log_topic_create(l, "one", NULL, NULL, NULL, err, sizeof err);
    double raw_w = rc ? -1 : raw_append(&m, rawp, batch, n, err, sizeof err);
    double log_w = raw_w > 0 ? log_append(l, &m, "bulk", batch, n, err, sizeof err) : -1;
    uint64_t s1 = 0, s2 = 0;
    double raw_r = log_w > 0 ? raw_read(rawp, n, &s1) : -1;
    double log_r = raw_r > 0 ? log_read(l, "bulk", n, &s2, err, sizeof err) : -1;
    double raw_1 = log_r > 0 ? raw_append(&m, rawp, 1, SS_MIN(single, n), err, sizeof err) : -1;
    double log_1 = raw_1 > 0 ? log_append(l, &m, "one", 1, SS_MIN(single, n), err, sizeof err) : -1;
    ss_log_close(l);
    double src = log_1 > 0 ? source_read(logp, "bulk", n, err, sizeof err) : -1;
    if (src <= 0 || s1 != s2) {
        fprintf(stderr, "bench_log: %s\n", s1 != s2 ? "the log read back other bytes than were written" : err);
        return 1;
    }
    int64_t logbytes = file_size(logp);
    char walp[1100];
    snprintf(walp, sizeof walp, "%s-wal", logp);
    logbytes += file_size(walp);
    double rss = peak_rss_mb();
    printf("append (batches of %" PRId64 ", each fsync'd): log %.0f msg/s, plain file %.0f msg/s: ratio %.2f\n", batch,
           log_w, raw_w, log_w / raw_w);
    printf("append (one message per fsync'd transaction, like INSERT): log %.0f/s, plain file %.0f/s: ratio %.2f\n",
           log_1, raw_1, log_1 / raw_1);
    printf("read (offset order): log %.0f msg/s, plain file %.0f msg/s: ratio %.2f\n", log_r, raw_r, log_r / raw_r);
    printf("decode through ss_source (rows of id INT KEY, v INT, s TEXT): %.0f msg/s\n", src);
    printf("log size: %.1f MB for %.1f MB of keys and values (%.2fx, %.0f B per message); peak RSS %.1f MB\n",
           logbytes / 1e6, m.bytes / 1e6, (double)logbytes / (double)m.bytes, (double)logbytes / (double)n, rss);
    char path[1024];
    const char *op = out ? out : ss_bench_result_path("log.json", path, sizeof path);
    FILE *f = fopen(op, "w");
    if (f) {
        fprintf(f,
                "{\"bench\":\"log\",\"n\":%" PRId64 ",\"batch\":%" PRId64 ",\"partitions\":%d,\"msg_bytes\":%.1f,"
                "\"append_msg_per_s\":%.0f,\"append_ceiling_msg_per_s\":%.0f,\"append_ratio\":%.3f,"
                "\"single_append_per_s\":%.0f,\"single_ceiling_per_s\":%.0f,\"single_ratio\":%.3f,"
                "\"read_msg_per_s\":%.0f,\"read_ceiling_msg_per_s\":%.0f,\"read_ratio\":%.3f,"
                "\"source_decode_msg_per_s\":%.0f,\"log_bytes\":%" PRId64 ",\"payload_bytes\":%zu,"
                "\"peak_rss_mb\":%.1f,\"ceiling\":\"preallocated plain file, same bytes, write+fdatasync per batch\"}\n",
                n, batch, parts, (double)m.bytes / (double)n, log_w, raw_w, log_w / raw_w, log_1, raw_1, log_1 / raw_1,
                log_r, raw_r, log_r / raw_r, src, logbytes, m.bytes, rss);
        fclose(f);
        printf("wrote %s\n", op);
    }
    if (own_dir) {
        unlink(logp);
        unlink(walp);
        char shm[1100];
        snprintf(shm, sizeof shm, "%s-shm", logp);
        unlink(shm);
        unlink(rawp);
        rmdir(dir);
    }
    free(m.at);
    ss_buf_free(&m.data);
    return 0;
}
