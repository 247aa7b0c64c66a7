/* The embedding API's sandbox (issue 17, 5): a runtime opened without io, os and
 * debug (ML_LIB_SAFE) reaches only the directories its host grants; its memory
 * limit counts tensors, on any device; ml_interrupt (from another thread or a
 * signal handler) and the time limit stop a running script, whatever it does to
 * catch the error. Uses only the public header, as a host would. */
#define _DEFAULT_SOURCE /* mkdtemp, symlink, setitimer */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "moonlight.h"

#define TMP_DIR_PREFIX "ml_sandbox_"
#include "tmp_dir.h"

static void run_ok(ml_runtime *rt, const char *code) {
    int st = ml_run_string(rt, code, 0, NULL);
    if (st != ML_OK) fail_msg("%s: %s\n--- in:\n%s", ml_status_name(st), ml_last_error(rt), code);
}

/* Runs code, expecting status and (when given) part of the message. */
static void run_fails(ml_runtime *rt, const char *code, int status, const char *part) {
    int st = ml_run_string(rt, code, 0, NULL);
    if (st != status)
        fail_msg("expected %s, got %s: %s\n--- in:\n%s", ml_status_name(status), ml_status_name(st),
                 ml_last_error(rt), code);
    if (part && !strstr(ml_last_error(rt), part))
        fail_msg("expected '%s' in: %s", part, ml_last_error(rt));
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct interrupter {
    ml_runtime *rt;
    double delay;
};

static void *interrupt_later(void *arg) {
    struct interrupter *it = arg;
    struct timespec ts = {(time_t)it->delay, (long)((it->delay - (double)(time_t)it->delay) * 1e9)};
    nanosleep(&ts, NULL);
    ml_interrupt(it->rt);
    return NULL;
}

/* Runs code while another thread calls ml_interrupt after delay seconds. */
static int run_interrupted(ml_runtime *rt, const char *code, double delay) {
    struct interrupter it = {rt, delay};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, interrupt_later, &it), 0);
    int st = ml_run_string(rt, code, 0, NULL);
    pthread_join(th, NULL);
    return st;
}

/* The acceptance test, as the issue states it: a host opens an ML_LIB_SAFE
 * runtime with a memory limit and no granted directories; ml.save to any path
 * fails, a tensor past the limit fails with ML_ERR_MEMORY, and a busy loop is
 * stopped by ml_interrupt. */
static void test_safe_runtime_holds(void **state) {
    (void)state;
    ml_options o;
    ml_options_init(&o);
    o.libs = ML_LIB_SAFE;
    o.memory_limit = 64u << 20;
    ml_runtime *rt = ml_open(&o);
    assert_non_null(rt);

    char target[128], code[512];
    const char *paths[] = {target, "model.safetensors", "/tmp/ml_sandbox_escape.safetensors",
                           "/dev/null", "../x.safetensors", "/"};
    snprintf(target, sizeof target, "%s/m.safetensors", dir);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        snprintf(code, sizeof code, "ml.save({w = ml.ones({2})}, '%s')", paths[i]);
        run_fails(rt, code, ML_ERR_SCRIPT, "outside the directories this runtime may write (the host granted none)");
    }
    assert_int_equal(access(target, F_OK), -1);
    assert_int_equal(access("/tmp/ml_sandbox_escape.safetensors", F_OK), -1);

    /* 1 GiB of tensor: past the 64 MiB limit */
    run_fails(rt, "local t = ml.zeros({1 << 28})", ML_ERR_MEMORY, "memory limit of 67108864 bytes");
    assert_non_null(strstr(ml_last_error(rt), "zeros: a float32 tensor of shape [268435456]"));

    double t0 = now();
    assert_int_equal(run_interrupted(rt, "while true do end", 0.2), ML_ERR_INTERRUPTED);
    assert_true(now() - t0 < 5);
    assert_non_null(strstr(ml_last_error(rt), "interrupted by the host (ml_interrupt)"));

    /* and it is still usable */
    run_ok(rt, "return ml.ones({4}):sum():item()");
    double v;
    assert_int_equal(ml_get_number(rt, "1", &v), ML_OK);
    assert_true(v == 4);
    ml_close(rt);
}

/* --- files --- */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_granted_directories(void **state) {
    (void)state;
    char in[128], out[128], elsewhere[128], code[2048];
    snprintf(in, sizeof in, "%s/in", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", dir);
    mkdir(in, 0755), mkdir(out, 0755), mkdir(elsewhere, 0755);
    snprintf(code, sizeof code, "%s/script.lua", in);
    write_text(code, "return 42\n");
    snprintf(code, sizeof code, "%s/secret.txt", elsewhere);
    write_text(code, "secret\n");
    /* the ways out a script could try, prepared by someone else */
    snprintf(code, sizeof code, "%s/link", out);
    assert_int_equal(symlink(elsewhere, code), 0);
    char target[256];
    snprintf(target, sizeof target, "%s/new.txt", elsewhere);
    snprintf(code, sizeof code, "%s/dangling", out);
    assert_int_equal(symlink(target, code), 0);
    snprintf(target, sizeof target, "%s/secret.txt", elsewhere);
    snprintf(code, sizeof code, "%s/secret_link", in);
    assert_int_equal(symlink(target, code), 0);

    const char *reads[] = {in, NULL}, *writes[] = {out, NULL};
    ml_options o;
    ml_options_init(&o);
    o.libs = ML_LIB_SAFE;
    o.read_dirs = reads;
    o.write_dirs = writes;
    ml_runtime *rt = ml_open(&o);
    if (!rt) fail_msg("%s", ml_last_error(NULL));
    ml_set_global_string(rt, "IN", in);
    ml_set_global_string(rt, "OUT", out);
    ml_set_global_string(rt, "ELSEWHERE", elsewhere);

    /* saves and loads inside, checkpoints included */
    run_ok(rt, "ml.save({w = ml.arange(6):view({2, 3})}, OUT .. '/m.safetensors')\n"
               "assert(ml.load(OUT .. '/m.safetensors').w:sum():item() == 15)\n"
               "assert(ml._sys.mkdir_p(OUT .. '/sub'))\n"
               "ml.save({w = ml.ones({1})}, OUT .. '/sub/../m2.safetensors')");
    /* a read-only directory, '..', symlinks out and a dangling one */
    run_fails(rt, "ml.save({w = ml.ones({1})}, IN .. '/m.safetensors')", ML_ERR_SCRIPT,
              "outside the directories this runtime may write");
    run_fails(rt, "ml.save({w = ml.ones({1})}, OUT .. '/../elsewhere/m.safetensors')", ML_ERR_SCRIPT,
              "outside the directories this runtime may write");
    run_fails(rt, "ml.save({w = ml.ones({1})}, OUT .. '/link/m.safetensors')", ML_ERR_SCRIPT,
              "outside the directories this runtime may write");
    run_fails(rt, "ml.save({w = ml.ones({1})}, OUT .. '/dangling')", ML_ERR_SCRIPT,
              "leads through a symlink that points nowhere");
    run_fails(rt, "ml.save({w = ml.ones({1})}, OUT .. '/nothere/../../elsewhere/x')", ML_ERR_SCRIPT,
              "follows a directory that does not exist");
    run_fails(rt, "ml.load(IN .. '/secret_link')", ML_ERR_SCRIPT,
              "outside the directories this runtime may read");
    run_fails(rt, "ml.load(ELSEWHERE .. '/secret.txt')", ML_ERR_SCRIPT,
              "outside the directories this runtime may read (" );
    snprintf(target, sizeof target, "%s/new.txt", elsewhere);
    assert_int_equal(access(target, F_OK), -1);
    /* datasets, the file helpers of the Lua half, loadfile and dofile */
    run_fails(rt, "ml.data.read_idx(ELSEWHERE .. '/secret.txt')", ML_ERR_SCRIPT, "read_idx: '");
    run_fails(rt, "ml.data.MNIST(ELSEWHERE)", ML_ERR_SCRIPT, "outside the directories");
    run_ok(rt, "local sys = ml._sys\n"
               "assert(not pcall(sys.open, ELSEWHERE .. '/secret.txt'))\n"
               "assert(not pcall(sys.open, IN .. '/x.txt', 'w'))\n"
               "assert(not pcall(sys.remove, IN .. '/script.lua'))\n"
               "assert(not pcall(sys.rename, IN .. '/script.lua', OUT .. '/s.lua'))\n"
               "assert(not pcall(sys.mkdir_p, ELSEWHERE .. '/d'))\n"
               "assert(not pcall(sys.listdir, ELSEWHERE))\n"
               "assert(not pcall(sys.kind, ELSEWHERE))\n"
               "local f = assert(sys.open(OUT .. '/note.txt', 'w')); f:write('hi'); f:close()\n"
               "assert(sys.open(OUT .. '/note.txt'):read('a') == 'hi')\n"
               "assert(sys.mkdir_p(OUT .. '/a/b'))\n"
               "assert(#sys.listdir(IN) >= 1)\n"
               "assert(dofile(IN .. '/script.lua') == 42)\n"
               "assert(loadfile(IN .. '/script.lua')() == 42)\n"
               "assert(not pcall(dofile, ELSEWHERE .. '/secret.txt'))\n"
               "assert(not pcall(loadfile, ELSEWHERE .. '/secret.txt'))\n"
               "assert(package.searchpath == nil)\n"
               "local ok, e = load(string.dump(function() return 1 end))\n"
               "assert(ok == nil and e:find('binary', 1, true), e)\n"
               "assert(load('return 7')() == 7)");
    /* a CSVLogger works where it may write, and nowhere else */
    run_ok(rt, "local lg = ml.loggers.CSVLogger(OUT, {name = 'run'})\n"
               "lg:log_metrics({loss = 0.5}, 0)\n"
               "lg:finalize()\n"
               "local h = require('moonlight.history').read(lg.metrics_file)\n"
               "assert(h.rows[1].loss == 0.5)");
    run_fails(rt, "ml.loggers.CSVLogger(IN, {name = 'run'}):log_metrics({loss = 1}, 0)", ML_ERR_SCRIPT,
              "outside the directories this runtime may write");
    /* a whole fit: its logger, checkpoints and progress bar, confined */
    run_ok(rt, "local nn, F = ml.nn, ml.F\n"
               "ml.manual_seed(0)\n"
               "local Net = nn.Module:extend('Net')\n"
               "function Net:init() self.fc = nn.Linear(2, 1) end\n"
               "function Net:forward(x) return self.fc(x) end\n"
               "function Net:training_step(batch)\n"
               "  local loss = F.mse_loss(self(batch[1]), batch[2]); self:log('loss', loss); return loss\n"
               "end\n"
               "function Net:configure_optimizers() return ml.optim.SGD(self:parameters(), {lr = 0.1}) end\n"
               "function fit_in(dir)\n"
               "  local x = ml.randn({32, 2})\n"
               "  local loader = ml.data.DataLoader(ml.data.TensorDataset(x, x:sum(2, true)), {batch_size = 8})\n"
               "  local trainer = ml.Trainer({max_epochs = 2, default_root_dir = dir, log_every_n_steps = 1})\n"
               "  trainer:fit(Net(), loader)\n"
               "  return trainer\n"
               "end\n"
               "local trainer = fit_in(OUT)\n"
               "assert(#ml._sys.listdir(trainer.logger.log_dir .. '/checkpoints') == 1)\n"
               "local h = require('moonlight.history').read(trainer.logger.metrics_file)\n"
               "assert(#h.rows == 8, #h.rows)");
    run_fails(rt, "fit_in(IN)", ML_ERR_SCRIPT, "outside the directories this runtime may write");
    ml_close(rt);

    /* a runtime with io, os or debug is not sandboxed: granting directories to it
     * would promise what its libraries break */
    o.libs = ML_LIB_SAFE | ML_LIB_IO;
    assert_null(ml_open(&o));
    assert_int_equal(ml_last_status(NULL), ML_ERR_ARG);
    assert_non_null(strstr(ml_last_error(NULL), "read_dirs / write_dirs confine a sandboxed runtime"));
    o.libs = ML_LIB_SAFE;
    const char *missing[] = {"/nonexistent/dir", NULL};
    o.write_dirs = missing;
    assert_null(ml_open(&o));
    assert_int_equal(ml_last_status(NULL), ML_ERR_ARG);
    assert_non_null(strstr(ml_last_error(NULL), "write_dirs[0] '/nonexistent/dir' cannot be granted"));
    /* an unsandboxed runtime is as before: anywhere */
    rt = ml_open(NULL);
    snprintf(code, sizeof code, "ml.save({w = ml.ones({1})}, '%s/free.safetensors')", elsewhere);
    run_ok(rt, code);
    ml_close(rt);
}

/* --- memory --- */

static void test_memory_limit_counts_tensors(void **state) {
    (void)state;
    ml_options o;
    ml_options_init(&o);
    o.memory_limit = 16u << 20;
    ml_runtime *rt = ml_open(&o);
    assert_non_null(rt);
    /* 10 MiB fits; 10 MiB more does not, and the script may catch it */
    run_ok(rt, "keep = ml.zeros({10 << 18})\n"
               "local ok, e = pcall(ml.ones, {10 << 18})\n"
               "assert(not ok and e:find(\"ones: a float32 tensor of shape [2621440] (10485760 bytes) "
               "would pass the runtime's memory limit of 16777216 bytes\", 1, true), e)");
    run_fails(rt, "local t = keep + 1", ML_ERR_MEMORY, "memory limit");
    run_fails(rt, "local x = ml.randn({1024, 1024}):matmul(ml.randn({1024, 1024}))", ML_ERR_MEMORY,
              "memory limit");
    /* dead tensors do not count once collected: a full collection runs before a
     * tensor is refused */
    run_ok(rt, "keep = nil\n"
               "for i = 1, 20 do local t = ml.zeros({1 << 20}) end\n"
               "for i = 1, 8 do local t = ml.zeros({3 << 20}) end");
    /* the Lua heap and the tensors share the limit */
    run_fails(rt, "keep = ml.zeros({3 << 20}) local s = {} for i = 1, 1e6 do s[i] = {i} end", ML_ERR_MEMORY,
              "not enough memory");
    run_ok(rt, "keep = nil collectgarbage() return 1");
    /* a tensor the host keeps outlives the runtime */
    run_ok(rt, "kept = ml.ones({1000})");
    ml_tensor *kept;
    assert_int_equal(ml_get_tensor(rt, "kept", &kept), ML_OK);
    ml_close(rt);
    assert_int_equal(ml_tensor_numel(kept), 1000);
    ml_tensor_release(kept);
}

/* --- interrupts --- */

static ml_runtime *signal_rt;

static void on_alarm(int sig) {
    (void)sig;
    ml_interrupt(signal_rt);
}

static void test_interrupt_cannot_be_caught(void **state) {
    (void)state;
    ml_options o;
    ml_options_init(&o);
    o.libs = ML_LIB_SAFE;
    ml_runtime *rt = ml_open(&o);
    assert_non_null(rt);
    const char *loops[] = {
        "while true do end",
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function(e) while true do end end) end",
        "while true do pcall(pcall, pcall, function() while true do end end) end",
        "local co = coroutine.wrap(function() while true do end end) while true do pcall(co) end",
        "local co = coroutine.create(function() while true do pcall(function() while true do end end) end end)\n"
        "while true do coroutine.resume(co) end",
        "local co = coroutine.create(function() while true do coroutine.yield() end end)\n"
        "while true do coroutine.resume(co) end",
        "while true do pcall(ml.no_grad, function() while true do end end) end",
        "while true do pcall(ml.zeros, {2}) end",
        "ml._sys.sleep(1e300)",
        "local t = setmetatable({}, {__close = function() while true do end end})\n"
        "do local c <close> = t end",
    };
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
        if (getenv("ML_TEST_VERBOSE")) fprintf(stderr, "loop %zu\n", i);
        double t0 = now();
        int st = run_interrupted(rt, loops[i], 0.1);
        if (st != ML_ERR_INTERRUPTED)
            fail_msg("loop %zu: %s: %s", i, ml_status_name(st), ml_last_error(rt));
        assert_true(now() - t0 < 10);
        run_ok(rt, "return 1");
    }
    /* finalizers run with hooks off: a sandbox allows no __gc, and hides the
     * metatables of its userdata */
    run_fails(rt, "setmetatable({}, {__gc = function() while true do end end})", ML_ERR_SCRIPT,
              "a __gc metamethod is not allowed in a sandboxed runtime");
    run_fails(rt, "setmetatable({}, {__gc = false})", ML_ERR_SCRIPT, "__gc");
    run_ok(rt, "assert(getmetatable(ml.ones({1})) == 'moonlight.Tensor')\n"
               "assert(not pcall(setmetatable, ml.ones({1}), {}))\n"
               "local m = ml.nn.Linear(2, 2); assert(m(ml.ones({1, 2})):numel() == 2)");
    /* from a signal handler */
    signal_rt = rt;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval tv = {{0, 0}, {0, 150000}};
    setitimer(ITIMER_REAL, &tv, NULL);
    run_fails(rt, "while true do end", ML_ERR_INTERRUPTED, "interrupted by the host");
    signal(SIGALRM, SIG_DFL);
    /* an interrupt while nothing runs stops the next call, once */
    assert_int_equal(ml_interrupt(rt), ML_OK);
    run_fails(rt, "return 1", ML_ERR_INTERRUPTED, "interrupted by the host");
    run_ok(rt, "return 1");
    /* a runtime without the sandbox is interruptible too */
    ml_close(rt);
    rt = ml_open(NULL);
    assert_int_equal(run_interrupted(rt, "while true do end", 0.1), ML_ERR_INTERRUPTED);
    ml_close(rt);
    assert_int_equal(ml_interrupt(NULL), ML_ERR_ARG);
}

static void test_time_limit(void **state) {
    (void)state;
    ml_options o;
    ml_options_init(&o);
    o.libs = ML_LIB_SAFE;
    o.time_limit = 0.3;
    ml_runtime *rt = ml_open(&o);
    assert_non_null(rt);
    double t0 = now();
    run_fails(rt, "while true do pcall(function() while true do end end) end", ML_ERR_INTERRUPTED,
              "time limit");
    double took = now() - t0;
    assert_true(took >= 0.25 && took < 5);
    /* each call has its own budget; a quick one is untouched */
    for (int i = 0; i < 3; i++) run_ok(rt, "ml._sys.sleep(0.12) return 1");
    run_fails(rt, "ml._sys.sleep(100)", ML_ERR_INTERRUPTED, "time limit");
    /* a function the host calls is timed too */
    run_ok(rt, "function spin() while true do end end");
    ml_tensor *y = NULL;
    int64_t shape[1] = {1};
    ml_tensor *x = ml_tensor_new(ML_FLOAT32, 1, shape, NULL);
    assert_int_equal(ml_call_tensor(rt, "spin", x, &y), ML_ERR_INTERRUPTED);
    ml_tensor_release(x);
    ml_close(rt);
    o.time_limit = -1;
    assert_null(ml_open(&o));
    assert_int_equal(ml_last_status(NULL), ML_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_runtime_holds),
        cmocka_unit_test(test_granted_directories),
        cmocka_unit_test(test_memory_limit_counts_tensors),
        cmocka_unit_test(test_interrupt_cannot_be_caught),
        cmocka_unit_test(test_time_limit),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
