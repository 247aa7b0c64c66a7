/* The CPU backend's backing off from a busy machine (src/threads.c): regions that
 * keep waiting for their team make the next ones run on the calling thread alone
 * (and OpenBLAS with it, through the thread's OpenMP count) for a while, then the
 * team comes back; a quiet region now and then changes nothing. */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "threads.h"

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void test_backs_off_and_comes_back(void **state) {
    (void)state;
    assert_int_equal(ml_set_num_threads(2), 0);
    assert_int_equal(ml_team_threads(), 2);
    /* regions that waited briefly, or not longer than their own share: no change */
    for (int i = 0; i < 200; i++) ml_team_report(60e-6, 20e-6);
    for (int i = 0; i < 200; i++) ml_team_report(4e-3, 2e-3);
    assert_int_equal(ml_team_threads(), 2);
    /* one region that waited 3 ms for a 20 us share, among good ones: still the team */
    ml_team_report(3e-3 + 20e-6, 20e-6);
    for (int i = 0; i < 200; i++) ml_team_report(25e-6, 20e-6);
    assert_int_equal(ml_team_threads(), 2);
    /* two close together: alone, OpenMP's count with it, the user's count kept */
    ml_team_report(3e-3 + 20e-6, 20e-6);
    ml_team_report(25e-6, 20e-6);
    ml_team_report(3e-3 + 20e-6, 20e-6);
    assert_int_equal(ml_team_threads(), 1);
    assert_int_equal(omp_get_max_threads(), 1);
    assert_int_equal(ml_get_num_threads(), 2);
    /* after the time alone (50 ms the first time) the team is tried again */
    sleep_s(0.08);
    assert_int_equal(ml_team_threads(), 2);
    assert_int_equal(omp_get_max_threads(), 2);
    /* set_num_threads starts afresh */
    ml_team_report(3e-3, 1e-5);
    ml_team_report(3e-3, 1e-5);
    assert_int_equal(ml_team_threads(), 1);
    assert_int_equal(ml_set_num_threads(3), 0);
    assert_int_equal(ml_team_threads(), 3);
    assert_int_equal(ml_get_num_threads(), 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backs_off_and_comes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
