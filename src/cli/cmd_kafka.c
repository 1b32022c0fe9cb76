/*
 * cmd_kafka.c — `semstream kafka`: an in-memory Kafka endpoint (librdkafka's
 * mock cluster) as a process that other programs (semstream --brokers, kcat,
 * ...) can use for tests and for trying clients. Prints the bootstrap address
 * as the first line of stdout, then serves until SIGTERM or SIGINT and exits 0.
 * It keeps at most ~5 MiB per partition and nothing once it stops; the engine
 * never uses it on its own (without --brokers streams live in the durable log).
 *
 * --port P puts its brokers on ports P, P+1, ... so that tests can stop it and
 * start it again where clients look for it. librdkafka's mock cluster has no such
 * setting (it binds port 0), so while the cluster starts, this file's bind()
 * (which the executable exports in place of libc's) gives its listening sockets
 * those ports; every other bind() of the process passes through unchanged.
 */
#include "cli.h"
#include "ss_kafka.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

/* --port: the next port a listening socket of the mock cluster gets (0: pass through). */
static volatile int g_next_port;

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (g_next_port > 0 && addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in) &&
        ((const struct sockaddr_in *)addr)->sin_port == 0) {
        struct sockaddr_in a = *(const struct sockaddr_in *)addr;
        a.sin_port = htons((uint16_t)g_next_port++);
        int one = 1; /* connections of the previous run may linger in TIME_WAIT */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        return (int)syscall(SYS_bind, fd, (const struct sockaddr *)&a, (socklen_t)sizeof a);
    }
    return (int)syscall(SYS_bind, fd, addr, len);
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: semstream kafka [--brokers-count N] [--port P] [--topic NAME[:PARTITIONS]]...\n\n"
               "Starts an in-memory Kafka-compatible broker (librdkafka's mock cluster) on\n"
               "127.0.0.1, prints its bootstrap address as the first line of stdout and serves\n"
               "until SIGTERM or SIGINT. For tests and for trying Kafka clients (kcat...): it is\n"
               "IN MEMORY ONLY, silently drops the oldest data past ~5 MiB per partition, and\n"
               "loses everything when it stops. Use it with 'semstream run --brokers ADDRESS';\n"
               "without --brokers the engine keeps streams in its durable log instead.\n\n"
               "  --brokers-count N          number of brokers (default 1)\n"
               "  --port P                   the brokers' ports: P, P+1, ... (default: free ones), so that\n"
               "                             it can be stopped and started again at the same address\n"
               "  --topic NAME[:PARTITIONS]  create a topic first (default 1 partition; repeatable)\n"
               "  --help                     this text\n\n"
               "Topics that clients use without creating them are auto-created with 4 partitions.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int create_topics(ss_broker_t *b, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--topic"))
            continue;
        char name[512], err[SS_ERRSZ];
        snprintf(name, sizeof name, "%s", argv[++i]);
        int parts = 1;
        char *colon = strrchr(name, ':');
        if (colon) {
            *colon = 0;
            if (parse_int(colon + 1, 1, 10000, &parts)) {
                fprintf(stderr, "semstream kafka: bad partition count in --topic %s\n", argv[i]);
                return 2;
            }
        }
        if (ss_broker_create_topic(b, name, parts, err, sizeof err)) {
            fprintf(stderr, "semstream kafka: %s\n", err);
            return 1;
        }
    }
    return 0;
}

int ss_cmd_kafka(int argc, char **argv)
{
    int nbrokers = 1, port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--brokers-count") && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 32, &nbrokers)) {
                fprintf(stderr, "semstream kafka: --brokers-count wants 1..32, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 65535, &port)) {
                fprintf(stderr, "semstream kafka: --port wants 1..65535, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--topic") && i + 1 < argc && *argv[i + 1]) {
            i++;
        } else {
            fprintf(stderr, "semstream kafka: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    ss_broker_t *b = NULL;
    char err[SS_ERRSZ];
    g_next_port = port;
    int src = ss_broker_start(nbrokers, &b, err, sizeof err);
    g_next_port = 0;
    if (src == SS_OK && port && strncmp(ss_broker_bootstrap(b), "127.0.0.1:", 10) == 0 &&
        atoi(ss_broker_bootstrap(b) + 10) != port) {
        ss_seterr(err, sizeof err, SS_ERR_IO, "could not listen on port %d (got %s)", port, ss_broker_bootstrap(b));
        ss_broker_stop(b);
        src = SS_ERR_IO;
    }
    if (src) {
        fprintf(stderr, "semstream kafka: %s\n", err);
        return 1;
    }
    int rc = create_topics(b, argc, argv);
    if (rc) {
        ss_broker_stop(b);
        return rc;
    }
    printf("%s\n", ss_broker_bootstrap(b));
    fflush(stdout);
    ss_log(SS_LOG_INFO, "kafka", "embedded broker serving on %s (%d broker%s)", ss_broker_bootstrap(b), nbrokers,
           nbrokers == 1 ? "" : "s");
    while (!stop_requested) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    ss_broker_stop(b);
    return 0;
}
