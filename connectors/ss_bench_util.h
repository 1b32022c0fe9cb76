/*
 * ss_bench_util.h — helpers for benchmarks and tests that need a topic full of
 * synthetic rows.
 */
#ifndef SS_BENCH_UTIL_H
#define SS_BENCH_UTIL_H

#include "ss_connect.h"

#include <stddef.h>
#include <stdint.h>

/* Produces n messages to topic, message i having key {"id":i} and value
 * {"id":i,"v":i%100,"s":"<text>"} where <text> is at least text_bytes bytes of
 * lowercase words (text_bytes <= 0: 32). Waits until all are delivered.
 * Usable with the json and upsert formats (schema id INT KEY, v INT, s TEXT). */
int ss_bench_fill_topic(ss_transport_t *t, const char *topic, int64_t n, int text_bytes,
                        char *err, size_t errsz);

/* Where a benchmark writes its JSON: bench/results/<file> when run from the repository root,
 * ../bench/results/<file> from a build directory, else <file>. Fills buf and returns it. */
const char *ss_bench_result_path(const char *file, char *buf, size_t bufsz);

/* A file of the source tree, for benchmarks that are run from anywhere: <source>/<rel>, where
 * <source> is $SS_SOURCE_DIR, else the folder above bench/ in this_file (the benchmark's
 * __FILE__), else ".". Fills buf and returns it. */
/* Prints the message (printf format) and a newline to stderr and exits with status 1: a
 * benchmark's fatal error. */
void ss_bench_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Seconds on the monotonic clock. */
double ss_bench_now_s(void);

const char *ss_bench_source_file(const char *this_file, const char *rel, char *buf, size_t bufsz);

#endif
