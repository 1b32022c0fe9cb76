/*
 * bench_util.c — implements ss_bench_util.h: fills a topic with synthetic JSON
 * rows through ss_producer (on either transport), and places benchmark results.
 */
#include "ss_bench_util.h"
#include "ss_connect.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int ss_bench_fill_topic(ss_transport_t *t, const char *topic, int64_t n, int text_bytes,
                        char *err, size_t errsz)
{
    static const char *words[] = {"alpha", "brook", "cedar", "delta", "ember", "fjord", "grove", "harbor",
                                  "island", "juniper", "kelp", "lumen", "meadow", "nectar", "orbit", "prairie"};
    if (text_bytes <= 0)
        text_bytes = 32;
    ss_producer_t *p = NULL;
    int rc = ss_producer_new(t, &p, err, errsz);
    if (rc)
        return rc;
    ss_buf_t k = SS_BUF_INIT, v = SS_BUF_INIT;
    for (int64_t i = 0; i < n && !rc; i++) {
        ss_buf_reset(&k);
        ss_buf_reset(&v);
        rc = ss_buf_printf(&k, "{\"id\":%" PRId64 "}", i);
        rc = rc ? rc : ss_buf_printf(&v, "{\"id\":%" PRId64 ",\"v\":%" PRId64 ",\"s\":\"", i, i % 100);
        size_t start = v.len;
        uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL + 1;
        while (!rc && v.len - start < (size_t)text_bytes) {
            x ^= x >> 29;
            x *= 0xbf58476d1ce4e5b9ULL;
            rc = ss_buf_printf(&v, "%s%s", v.len > start ? " " : "", words[(x >> 40) % 16]);
        }
        rc = rc ? rc : ss_buf_puts(&v, "\"}");
        if (rc)
            rc = ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
        else
            rc = ss_producer_send(p, topic, k.data, k.len, v.data, v.len, err, errsz);
    }
    if (!rc)
        rc = ss_producer_flush(p, 120000, err, errsz);
    ss_buf_free(&k);
    ss_buf_free(&v);
    ss_producer_destroy(p);
    return rc;
}

const char *ss_bench_result_path(const char *file, char *buf, size_t bufsz)
{
    struct stat st;
    if (stat("bench", &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(buf, bufsz, "bench/results/%s", file);
    else if (stat("../bench", &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(buf, bufsz, "../bench/results/%s", file);
    else
        snprintf(buf, bufsz, "%s", file);
    return buf;
}

const char *ss_bench_source_file(const char *this_file, const char *rel, char *buf, size_t bufsz)
{
    const char *env = getenv("SS_SOURCE_DIR");
    if (env && *env) {
        snprintf(buf, bufsz, "%s/%s", env, rel);
        return buf;
    }
    const char *b = NULL; /* the last "/bench/" of the path */
    for (const char *q = this_file; q && (q = strstr(q, "/bench/")); q++)
        b = q;
    if (b)
        snprintf(buf, bufsz, "%.*s/%s", (int)(b - this_file), this_file, rel);
    else
        snprintf(buf, bufsz, "./%s", rel);
    return buf;
}

void ss_bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

double ss_bench_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}
