/*
 * check_main.c — the runner shared by every tests/check_<module>.c: builds the
 * module's Suite (SS_SUITE_FN, set by CMake), runs it and prints Check's summary.
 * CK_FORK is honoured; set SS_TEST_FILTER to a test-case name to run only that.
 */
#include <check.h>
#include <stdlib.h>

Suite *SS_SUITE_FN(void);

int main(void)
{
    Suite *s = SS_SUITE_FN();
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, NULL);
    srunner_run(sr, NULL, getenv("SS_TEST_FILTER"), CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
