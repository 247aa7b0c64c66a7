/* ml_request_stop (issue 17, 3c): the host asks a running Trainer:fit to stop
 * cleanly, from the thread that runs it (a host callback), from a signal handler
 * and from another thread. fit finishes the step, saves its checkpoint, flushes
 * the logger and returns normally; the script goes on. Uses only the public
 * header. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moonlight.h"

/* A small fit that reports each step to the host (ml.host.step(global_step)) and
 * returns what became of it, booleans as 0/1. arg[1]: the directory for logs and
 * checkpoints, arg[2]: max_epochs. */
static const char *const SCRIPT =
    "local dir, epochs = arg[1], tonumber(arg[2])\n"
    "local nn, data = ml.nn, ml.data\n"
    "ml.manual_seed(3)\n"
    "local Net = nn.Module:extend('Net')\n"
    "function Net:init() self.fc = nn.Linear(2, 1) end\n"
    "function Net:training_step(b)\n"
    "  local l = ml.F.mse_loss(self.fc(b[1]), b[2]); self:log('loss', l); return l\n"
    "end\n"
    "function Net:configure_optimizers() return ml.optim.SGD(self:parameters(), {lr = 0.01}) end\n"
    "local report = {on_train_batch_end = function(_, t) ml.host.step(t.global_step) end}\n"
    "local loader = data.DataLoader(data.TensorDataset(ml.randn({16, 2}), ml.randn({16, 1})),\n"
    "                               {batch_size = 4, shuffle = true})\n"
    "local tr = ml.Trainer({max_epochs = epochs, log_every_n_steps = 1, enable_progress_bar = false,\n"
    "  enable_model_summary = false, logger = ml.loggers.CSVLogger(dir, {name = 'run'}),\n"
    "  callbacks = {report, ml.callbacks.ModelCheckpoint({dirpath = dir .. '/ckpt'})}})\n"
    "tr:fit(Net(), loader)\n"
    "-- the script goes on after a stopped fit\n"
    "local saved = tr.interrupted_ckpt_path and ml._sys.kind(tr.interrupted_ckpt_path) == 'file'\n"
    "local csv = tr.logger.metrics_file\n"
    "local rows = ml._sys.kind(csv) and #require('moonlight.history').read(csv).rows or 0\n"
    "return {interrupted = tr.interrupted and 1 or 0, step = tr.global_step, saved = saved and 1 or 0,\n"
    "        rows = rows}\n";

static ml_runtime *the_rt; /* for the signal handler */
static atomic_int steps;   /* the last step the script reported */
static int stop_at;        /* the step the host callback stops at (0: none) */
static int stop_by_signal; /* ... by raising SIGUSR1 rather than calling directly */

static int on_step(ml_runtime *rt, ml_args *a, void *ud) {
    (void)ud;
    double s;
    int st = ml_arg_number(a, 0, &s);
    if (st != ML_OK) return st;
    atomic_store(&steps, (int)s);
    if ((int)s == stop_at) {
        if (stop_by_signal) raise(SIGUSR1);
        else if (ml_request_stop(rt) != ML_OK) return ml_args_error(a, "ml_request_stop failed");
    }
    return ML_OK;
}

static void on_usr1(int sig) {
    (void)sig;
    ml_request_stop(the_rt); /* async-signal-safe: one atomic store */
}

typedef struct result {
    int interrupted, step, rows, saved;
} result;

static ml_runtime *open_rt(void) {
    ml_runtime *rt = ml_open(NULL);
    assert_non_null(rt);
    assert_int_equal(ml_register(rt, "ml.host.step", on_step, NULL), ML_OK);
    return rt;
}

static int field(ml_runtime *rt, const char *path) {
    double v = -1;
    assert_int_equal(ml_get_number(rt, path, &v), ML_OK);
    return (int)v;
}

/* Runs the script in a fresh directory (max_epochs epochs of 4 steps). */
static result fit(ml_runtime *rt, const char *epochs) {
    char dir[] = "/tmp/ml_stop_XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *args[2] = {dir, epochs};
    atomic_store(&steps, 0);
    int st = ml_run_string(rt, SCRIPT, 2, args);
    if (st != ML_OK) fail_msg("%s: %s", ml_status_name(st), ml_last_error(rt));
    result r = {field(rt, "1.interrupted"), field(rt, "1.step"), field(rt, "1.rows"), field(rt, "1.saved")};
    return r;
}

static void test_stop_from_a_callback(void **state) {
    (void)state;
    ml_runtime *rt = open_rt();
    stop_at = 6, stop_by_signal = 0;
    result r = fit(rt, "5");
    /* step 6 finishes, then fit returns: its rows are on disk, its state saved */
    assert_int_equal(r.interrupted, 1);
    assert_int_equal(r.step, 6);
    assert_int_equal(r.rows, 6);
    assert_int_equal(r.saved, 1);
    /* the request is gone with the fit that answered it: the next one runs through */
    stop_at = 0;
    r = fit(rt, "2");
    assert_int_equal(r.interrupted, 0);
    assert_int_equal(r.step, 8);
    assert_int_equal(r.saved, 0);
    ml_close(rt);
}

static void test_stop_from_a_signal_handler(void **state) {
    (void)state;
    ml_runtime *rt = open_rt();
    the_rt = rt;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    stop_at = 3, stop_by_signal = 1;
    result r = fit(rt, "5");
    assert_int_equal(r.interrupted, 1);
    assert_int_equal(r.step, 3);
    assert_int_equal(r.saved, 1);
    sigaction(SIGUSR1, &old, NULL);
    ml_close(rt);
}

static void *stopper(void *arg) {
    ml_runtime *rt = arg;
    /* once the fit is under way */
    while (atomic_load(&steps) < 3) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    ml_request_stop(rt);
    return NULL;
}

static void test_stop_from_another_thread(void **state) {
    (void)state;
    ml_runtime *rt = open_rt();
    stop_at = 0;
    atomic_store(&steps, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stopper, rt), 0);
    /* 2,500 epochs would take a while: the request ends it within a step */
    result r = fit(rt, "2500");
    pthread_join(th, NULL);
    assert_int_equal(r.interrupted, 1);
    assert_true(r.step >= 3 && r.step < 10000);
    assert_int_equal(r.saved, 1);
    ml_close(rt);
}

static void test_pending_request_and_arguments(void **state) {
    (void)state;
    assert_int_equal(ml_request_stop(NULL), ML_ERR_ARG);
    ml_runtime *rt = open_rt();
    /* asked before the fit starts: it stops before its first step */
    stop_at = 0;
    assert_int_equal(ml_request_stop(rt), ML_OK);
    result r = fit(rt, "3");
    assert_int_equal(r.interrupted, 1);
    assert_int_equal(r.step, 0);
    assert_int_equal(r.saved, 1);
    ml_close(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_from_a_callback),
        cmocka_unit_test(test_stop_from_a_signal_handler),
        cmocka_unit_test(test_stop_from_another_thread),
        cmocka_unit_test(test_pending_request_and_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
