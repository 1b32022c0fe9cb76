/*
 * check_cli.c — the engine option parser shared by run, serve and shell
 * (src/cli/cli.c): each option's effect on ss_engine_opts_t, bad values with the
 * option named, options that are not engine options, the getopt_long table
 * merged with a command's own options, and the help lines.
 */
#include "cli.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_engine_opt_values)
{
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    char err[SS_ERRSZ] = "";
    ck_assert_int_eq(ss_cli_engine_opt(&o, SS_CLI_OPT_DB, "x.db", err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_cli_engine_opt(&o, SS_CLI_OPT_BROKERS, "h:9092", err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_cli_engine_opt(&o, SS_CLI_OPT_MODEL, "m.gguf", err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_cli_engine_opt(&o, SS_CLI_OPT_BATCH_SIZE, "8192", err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_cli_engine_opt(&o, SS_CLI_OPT_MAX_LATENCY, "0", err, sizeof err), SS_OK);
    ck_assert_int_eq(ss_cli_engine_opt(&o, SS_CLI_OPT_THREADS, "4", err, sizeof err), SS_OK);
    ck_assert_str_eq(o.db_path, "x.db");
    ck_assert_str_eq(o.brokers, "h:9092");
    ck_assert_str_eq(o.model_path, "m.gguf");
    ck_assert_int_eq(o.batch_size, 8192);
    ck_assert_int_eq(o.max_latency_ms, 0);
    ck_assert_int_eq(o.threads, 4);
}
END_TEST

START_TEST(test_engine_opt_errors)
{
    static const struct {
        int opt;
        const char *arg, *msg;
    } bad[] = {
        {SS_CLI_OPT_BATCH_SIZE, "abc", "--batch-size expects an integer >= 1, got 'abc'"},
        {SS_CLI_OPT_BATCH_SIZE, "0", "--batch-size expects an integer >= 1, got '0'"},
        {SS_CLI_OPT_BATCH_SIZE, "12x", "--batch-size expects an integer >= 1, got '12x'"},
        {SS_CLI_OPT_BATCH_SIZE, "", "--batch-size expects an integer >= 1, got ''"},
        {SS_CLI_OPT_BATCH_SIZE, "99999999999", "--batch-size expects an integer >= 1, got '99999999999'"},
        {SS_CLI_OPT_MAX_LATENCY, "-5", "--max-latency-ms expects an integer >= 0, got '-5'"},
        {SS_CLI_OPT_THREADS, "two", "--threads expects an integer >= 0, got 'two'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ss_engine_opts_t o;
        memset(&o, 0, sizeof o);
        char err[SS_ERRSZ] = "";
        ck_assert_int_eq(ss_cli_engine_opt(&o, bad[i].opt, bad[i].arg, err, sizeof err), SS_ERR_INVALID);
        ck_assert_str_eq(err, bad[i].msg);
        ck_assert_int_eq(o.batch_size + o.max_latency_ms + o.threads, 0); /* untouched */
    }
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    char err[SS_ERRSZ] = "";
    ck_assert_int_eq(ss_cli_engine_opt(&o, 'h', NULL, err, sizeof err), SS_ERR_NOTFOUND);
    ck_assert_int_eq(ss_cli_engine_opt(&o, SS_CLI_OPT_USER, "x", err, sizeof err), SS_ERR_NOTFOUND);
    ck_assert_ptr_null(o.db_path);
}
END_TEST

/* A command's parse loop, as run/serve/shell write it, over a whole argv. */
START_TEST(test_longopts_parse)
{
    enum { O_PORT = SS_CLI_OPT_USER, O_QUIET };
    static const struct option own[] = {
        {"port", 1, 0, O_PORT}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option lo[16];
    ck_assert_int_eq(ss_cli_longopts(own, lo, 16), 10);
    ck_assert_ptr_null(lo[10].name);
    ck_assert_int_eq(ss_cli_longopts(own, lo, 10), -1); /* no room for the zero entry */
    ck_assert_int_eq(ss_cli_longopts(NULL, lo, 16), 7);
    ss_cli_longopts(own, lo, 16);
    char *argv[] = {"serve", "--db", "s.db", "--port", "9000", "script.sql", "--batch-size=64",
                    "--max-latency-ms", "7", "--quiet", "--brokers", "b:1", "--group", "g1", NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1, c, port = 0, quiet = 0;
    ss_engine_opts_t o;
    memset(&o, 0, sizeof o);
    char err[SS_ERRSZ] = "";
    optind = 0; /* glibc: full re-initialisation */
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int rc = ss_cli_engine_opt(&o, c, optarg, err, sizeof err);
        if (rc == SS_OK)
            continue;
        ck_assert_int_eq(rc, SS_ERR_NOTFOUND);
        if (c == O_PORT)
            port = atoi(optarg);
        else if (c == O_QUIET)
            quiet = 1;
        else
            ck_abort_msg("unexpected option %d", c);
    }
    ck_assert_str_eq(o.db_path, "s.db");
    ck_assert_str_eq(o.brokers, "b:1");
    ck_assert_str_eq(o.group, "g1");
    ck_assert_int_eq(o.batch_size, 64);
    ck_assert_int_eq(o.max_latency_ms, 7);
    ck_assert_int_eq(port, 9000);
    ck_assert_int_eq(quiet, 1);
    ck_assert_int_eq(optind, argc - 1); /* getopt moved the operand to the end */
    ck_assert_str_eq(argv[optind], "script.sql");
}
END_TEST

START_TEST(test_engine_help)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ss_cli_engine_help(f);
    fclose(f);
    struct option lo[16];
    int n = ss_cli_longopts(NULL, lo, 16);
    for (int i = 0; i < n; i++) { /* every engine option has its line */
        char want[64];
        snprintf(want, sizeof want, "  --%s ", lo[i].name);
        ck_assert_msg(strstr(text, want) != NULL, "help lacks %s", want);
    }
    ck_assert_ptr_nonnull(strstr(text, "(default 1024)"));
    ck_assert_ptr_nonnull(strstr(text, "(default 100)"));
    free(text);
}
END_TEST

Suite *check_cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("engine_options");
    tcase_add_test(tc, test_engine_opt_values);
    tcase_add_test(tc, test_engine_opt_errors);
    tcase_add_test(tc, test_longopts_parse);
    tcase_add_test(tc, test_engine_help);
    suite_add_tcase(s, tc);
    return s;
}
