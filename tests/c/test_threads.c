/* The CPU backend's backing off from a busy machine (src/threads.c): regions that
 * keep waiting for their team make the next ones run on the calling thread alone
 * for a while, then the team comes back; a quiet region now and then changes
 * nothing. OpenBLAS is called with the thread's OpenMP count at 1. And the choice
 * between the team and one thread by timed windows (ml_team_trial_next). */
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
    /* two close together: alone, the user's count kept */
    ml_team_report(3e-3 + 20e-6, 20e-6);
    ml_team_report(25e-6, 20e-6);
    ml_team_report(3e-3 + 20e-6, 20e-6);
    assert_int_equal(ml_team_threads(), 1);
    assert_int_equal(ml_get_num_threads(), 2);
    /* after the time alone (50 ms the first time) the team is tried again */
    sleep_s(0.08);
    assert_int_equal(ml_team_threads(), 2);
    /* set_num_threads starts afresh */
    ml_team_report(3e-3, 1e-5);
    ml_team_report(3e-3, 1e-5);
    assert_int_equal(ml_team_threads(), 1);
    assert_int_equal(ml_set_num_threads(3), 0);
    assert_int_equal(ml_team_threads(), 3);
    assert_int_equal(ml_get_num_threads(), 3);
}

/* OpenBLAS calls run with the thread's OpenMP count at 1, restored after. */
static void test_blas_runs_alone(void **state) {
    (void)state;
    omp_set_num_threads(2);
    const int saved = ml_blas_enter();
    assert_int_equal(omp_get_max_threads(), 1);
    ml_blas_leave(saved);
    assert_int_equal(omp_get_max_threads(), 2);
}

/* windows fed to the decision; returns how many of them ran alone */
static int feed(ml_team_trial *t, int windows, double team_s, double alone_s, int *next) {
    int alone = 0;
    for (int i = 0; i < windows; i++) {
        alone += *next;
        *next = ml_team_trial_next(t, *next, *next ? alone_s : team_s);
    }
    return alone;
}

static void test_trial_picks_the_faster(void **state) {
    (void)state;
    ml_team_trial t = {{0, 0}, 0, 0, 0};
    int next = 0;
    /* quiet: the team is 1.5x faster; one window in 32 tries one thread */
    int alone = feed(&t, 320, 20e-6, 30e-6, &next);
    assert_int_equal(t.choice, 0);
    assert_true(alone >= 8 && alone <= 12);
    /* a busy spell: one thread 25 % faster; taken at the next trial */
    feed(&t, 40, 40e-6, 30e-6, &next);
    assert_int_equal(t.choice, 1);
    /* 10 % faster is not enough to leave the team */
    ml_team_trial u = {{0, 0}, 0, 0, 0};
    next = 0;
    feed(&u, 100, 33e-6, 30e-6, &next);
    assert_int_equal(u.choice, 0);
    /* quiet again: the team is back within a few windows (tried every 4) */
    next = t.choice;
    feed(&t, 12, 20e-6, 30e-6, &next);
    assert_int_equal(t.choice, 0);
    /* a window with a pause in it changes neither estimate */
    const double e0 = t.est[0], e1 = t.est[1];
    assert_int_equal(ml_team_trial_next(&t, 0, 1e-3), t.choice);
    assert_true(t.est[0] == e0 && t.est[1] == e1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backs_off_and_comes_back),
        cmocka_unit_test(test_blas_runs_alone),
        cmocka_unit_test(test_trial_picks_the_faster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
