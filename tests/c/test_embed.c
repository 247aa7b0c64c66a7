/* The embedding API (include/moonlight.h): runtimes, scripts, globals and results,
 * zero-copy tensors, host callbacks, bad input at the C boundary, memory limits,
 * and two runtimes training in two threads. Uses only the public header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "moonlight.h"

static ml_runtime *open_default(void) {
    ml_runtime *rt = ml_open(NULL);
    assert_non_null(rt);
    return rt;
}

static void run_ok(ml_runtime *rt, const char *code) {
    int st = ml_run_string(rt, code, 0, NULL);
    if (st != ML_OK) fail_msg("%s: %s", ml_status_name(st), ml_last_error(rt));
}

static void test_open_run_results(void **state) {
    (void)state;
    assert_string_equal(ml_version(), "0.1.0");
    ml_runtime *rt = open_default();
    assert_non_null(ml_lua_state(rt));
    const char *args[2] = {"alpha", "7"};
    assert_int_equal(ml_run_string(rt, "local a, b = ...\n"
                                       "assert(arg[1] == a and arg[2] == b)\n"
                                       "return tonumber(b) * 2, a, {loss = ml.tensor(2.5), n = {3, 4}}",
                                   2, args),
                     ML_OK);
    assert_string_equal(ml_last_error(rt), "");
    assert_int_equal(ml_result_count(rt), 3);
    double v = 0;
    assert_int_equal(ml_get_number(rt, "1", &v), ML_OK);
    assert_true(v == 14);
    char buf[16];
    size_t len = 0;
    assert_int_equal(ml_get_string(rt, "2", buf, sizeof buf, &len), ML_OK);
    assert_string_equal(buf, "alpha");
    assert_int_equal(len, 5);
    assert_int_equal(ml_get_number(rt, "3.loss", &v), ML_OK); /* a 0-dim tensor reads as a number */
    assert_true(v == 2.5);
    assert_int_equal(ml_get_number(rt, "3.n.2", &v), ML_OK);
    assert_true(v == 4);
    assert_int_equal(ml_get_number(rt, "4", &v), ML_ERR_NOT_FOUND);
    assert_non_null(strstr(ml_last_error(rt), "returned 3 values"));
    /* the device the runtime chose is visible to scripts */
    assert_int_equal(ml_get_string(rt, "ml.host.device", buf, sizeof buf, NULL), ML_OK);
    assert_true(strcmp(buf, "cpu") == 0 || strcmp(buf, "cuda") == 0);
    /* a failed run forgets the previous results */
    assert_int_equal(ml_run_string(rt, "error('boom')", 0, NULL), ML_ERR_SCRIPT);
    assert_int_equal(ml_result_count(rt), 0);
    ml_close(rt);
    ml_close(NULL);
}

static void test_globals(void **state) {
    (void)state;
    ml_runtime *rt = open_default();
    assert_int_equal(ml_set_global_number(rt, "cfg.lr", 0.125), ML_OK);
    assert_int_equal(ml_set_global_string(rt, "cfg.name", "mlp"), ML_OK);
    assert_int_equal(ml_set_global_number(rt, "count", 3), ML_OK);
    run_ok(rt, "assert(cfg.lr == 0.125 and cfg.name == 'mlp' and count == 3)\n"
               "result = {loss = cfg.lr * 2, list = {10, 20}, t = ml.ones({2, 3})}");
    double v;
    assert_int_equal(ml_get_number(rt, "result.loss", &v), ML_OK);
    assert_true(v == 0.25);
    assert_int_equal(ml_get_number(rt, "result.list.2", &v), ML_OK);
    assert_true(v == 20);
    ml_tensor *t = NULL;
    assert_int_equal(ml_get_tensor(rt, "result.t", &t), ML_OK);
    assert_int_equal(ml_tensor_ndim(t), 2);
    assert_int_equal(ml_tensor_shape(t)[1], 3);
    assert_int_equal(ml_tensor_type(t), ML_FLOAT32);
    assert_string_equal(ml_tensor_device(t), "cpu");
    const float *p = ml_tensor_data(t);
    assert_non_null(p);
    assert_true(p[5] == 1.0f);
    ml_tensor_release(t);
    /* wrong types, missing names, bad paths */
    assert_int_equal(ml_get_number(rt, "cfg.name", &v), ML_ERR_TYPE);
    assert_non_null(strstr(ml_last_error(rt), "'cfg.name' is a string"));
    assert_int_equal(ml_get_number(rt, "result.t", &v), ML_ERR_TYPE); /* 6 elements */
    assert_int_equal(ml_get_number(rt, "nope", &v), ML_ERR_NOT_FOUND);
    assert_int_equal(ml_get_number(rt, "nope.deeper", &v), ML_ERR_NOT_FOUND);
    assert_int_equal(ml_get_number(rt, "count.x", &v), ML_ERR_TYPE);
    assert_int_equal(ml_get_tensor(rt, "cfg.lr", &t), ML_ERR_TYPE);
    assert_null(t);
    assert_int_equal(ml_get_number(rt, "a..b", &v), ML_ERR_ARG);
    assert_int_equal(ml_get_number(rt, "", &v), ML_ERR_ARG);
    assert_int_equal(ml_get_number(rt, NULL, &v), ML_ERR_ARG);
    assert_int_equal(ml_get_number(rt, "count", NULL), ML_ERR_ARG);
    assert_int_equal(ml_set_global_number(rt, "1.x", 1), ML_ERR_ARG);
    assert_int_equal(ml_set_global_number(rt, "count.x", 1), ML_ERR_TYPE);
    char small[3];
    size_t len = 0;
    assert_int_equal(ml_get_string(rt, "cfg.name", small, sizeof small, &len), ML_ERR_ARG);
    assert_int_equal(len, 3);
    ml_close(rt);
}

struct seen {
    int n;
    char keys[8][16];
    double values[8];
};

static int collect(const char *key, double value, void *ud) {
    struct seen *s = ud;
    snprintf(s->keys[s->n], sizeof s->keys[0], "%s", key);
    s->values[s->n++] = value;
    return 0;
}

static void test_metrics_table(void **state) {
    (void)state;
    ml_runtime *rt = open_default();
    run_ok(rt, "return {val_loss = ml.tensor(0.5), acc = 0.75, name = 'x', [2] = 3, t = ml.ones({2})}");
    struct seen s = {0};
    assert_int_equal(ml_get_numbers(rt, "1", collect, &s), ML_OK);
    assert_int_equal(s.n, 3); /* the string and the 2-element tensor are not numbers */
    assert_string_equal(s.keys[0], "2");
    assert_true(s.values[0] == 3);
    assert_string_equal(s.keys[1], "acc");
    assert_true(s.values[1] == 0.75);
    assert_string_equal(s.keys[2], "val_loss");
    assert_true(s.values[2] == 0.5);
    assert_int_equal(ml_get_numbers(rt, "ml.host.device", collect, &s), ML_ERR_TYPE);
    assert_int_equal(ml_get_numbers(rt, "1", NULL, NULL), ML_ERR_ARG);
    ml_close(rt);
}

static int released;
static void on_release(void *data, void *ctx) {
    assert_ptr_equal(data, ctx);
    released++;
}

static void test_zero_copy(void **state) {
    (void)state;
    float host[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    released = 0;
    ml_tensor *x = ml_tensor_wrap(host, ML_FLOAT32, 2, shape, on_release, host);
    assert_non_null(x);
    assert_ptr_equal(ml_tensor_data(x), host);
    assert_int_equal(ml_tensor_numel(x), 6);
    ml_runtime *rt = open_default();
    assert_int_equal(ml_set_global_tensor(rt, "data.x", x), ML_OK);
    ml_tensor_release(x); /* the runtime holds its own reference */
    run_ok(rt, "local x = data.x\n"
               "assert(x:sum():item() == 21)\n"
               "x:add_(10)           -- writes the host's memory\n"
               "xt = x:t()           -- a strided view\n"
               "return x:sum()");
    assert_true(host[0] == 11 && host[5] == 16);
    double v;
    assert_int_equal(ml_get_number(rt, "1", &v), ML_OK);
    assert_true(v == 81);
    ml_tensor *xt = NULL;
    assert_int_equal(ml_get_tensor(rt, "xt", &xt), ML_OK);
    assert_null(ml_tensor_data(xt)); /* not contiguous */
    assert_non_null(strstr(ml_last_error(NULL), "ml_tensor_read"));
    float out[6];
    assert_int_equal(ml_tensor_read(xt, out, sizeof out), ML_OK);
    float want[6] = {11, 14, 12, 15, 13, 16};
    for (int i = 0; i < 6; i++) assert_true(out[i] == want[i]);
    assert_int_equal(ml_tensor_read(xt, out, 5 * sizeof(float)), ML_ERR_ARG);
    assert_non_null(strstr(ml_last_error(NULL), "[3, 2]"));
    assert_int_equal(ml_tensor_read(xt, NULL, sizeof out), ML_ERR_ARG);
    assert_int_equal(released, 0);
    ml_close(rt);
    assert_int_equal(released, 0); /* xt still shares the memory */
    ml_tensor_release(xt);
    assert_int_equal(released, 1);

    /* an owned copy, integers, items */
    int64_t ids[3] = {4, 0, 9};
    int64_t n3 = 3;
    ml_tensor *t = ml_tensor_new(ML_INT64, 1, &n3, ids);
    ids[0] = 100;
    assert_int_equal(((int64_t *)ml_tensor_data(t))[0], 4);
    assert_int_equal(ml_tensor_item(t, &v), ML_ERR_ARG);
    ml_tensor_release(t);
    ml_tensor *z = ml_tensor_new(ML_FLOAT64, 0, NULL, NULL);
    assert_int_equal(ml_tensor_item(z, &v), ML_OK);
    assert_true(v == 0);
    ml_tensor_release(z);
}

static void test_bad_tensors(void **state) {
    (void)state;
    int64_t shape[2] = {2, 3}, neg[1] = {-1};
    float data[6] = {0};
    assert_null(ml_tensor_wrap(NULL, ML_FLOAT32, 2, shape, NULL, NULL));
    assert_int_equal(ml_last_status(NULL), ML_ERR_ARG);
    assert_non_null(strstr(ml_last_error(NULL), "data is NULL"));
    assert_null(ml_tensor_wrap(data, (ml_type)9, 2, shape, NULL, NULL));
    assert_non_null(strstr(ml_last_error(NULL), "unknown type 9"));
    assert_null(ml_tensor_wrap(data, ML_FLOAT32, 9, shape, NULL, NULL));
    assert_null(ml_tensor_wrap(data, ML_FLOAT32, 2, NULL, NULL, NULL));
    assert_null(ml_tensor_wrap(data, ML_FLOAT32, 1, neg, NULL, NULL));
    assert_non_null(strstr(ml_last_error(NULL), "negative size -1"));
    assert_null(ml_tensor_new((ml_type)-1, 1, shape, NULL));
    assert_int_equal(ml_tensor_ndim(NULL), -1);
    assert_null(ml_tensor_shape(NULL));
    assert_null(ml_tensor_data(NULL));
    assert_int_equal(ml_tensor_read(NULL, data, 4), ML_ERR_ARG);
    ml_tensor_release(NULL);
    /* an empty tensor needs no data */
    int64_t zero[1] = {0};
    ml_tensor *e = ml_tensor_wrap(NULL, ML_FLOAT32, 1, zero, NULL, NULL);
    assert_non_null(e);
    assert_int_equal(ml_tensor_read(e, NULL, 0), ML_OK);
    ml_tensor_release(e);

    ml_runtime *rt = open_default();
    assert_int_equal(ml_set_global_tensor(rt, "x", NULL), ML_ERR_ARG);
    assert_int_equal(ml_set_global_tensor(NULL, "x", e), ML_ERR_ARG);
    assert_int_equal(ml_run_string(NULL, "return 1", 0, NULL), ML_ERR_ARG);
    assert_int_equal(ml_run_string(rt, NULL, 0, NULL), ML_ERR_ARG);
    assert_int_equal(ml_run_string(rt, "return 1", 2, NULL), ML_ERR_ARG);
    const char *holes[2] = {"a", NULL};
    assert_int_equal(ml_run_string(rt, "return 1", 2, holes), ML_ERR_ARG);
    assert_int_equal(ml_run_file(rt, NULL, 0, NULL), ML_ERR_ARG);
    assert_int_equal(ml_register(rt, "f", NULL, NULL), ML_ERR_ARG);
    assert_int_equal(ml_get_tensor(rt, "x", NULL), ML_ERR_ARG);
    assert_null(ml_lua_state(NULL));

    /* calling Lua with wrong shapes / wrong functions */
    run_ok(rt, "w = ml.ones({3, 4})\n"
               "function predict(x) return x:matmul(w) end\n"
               "function number() return 1 end\n"
               "notfn = 3");
    ml_tensor *x = ml_tensor_wrap(data, ML_FLOAT32, 2, shape, NULL, NULL); /* [2, 3] */
    ml_tensor *y = NULL;
    assert_int_equal(ml_call_tensor(rt, "predict", x, &y), ML_OK);
    assert_int_equal(ml_tensor_shape(y)[1], 4);
    ml_tensor_release(y);
    int64_t bad[2] = {3, 2};
    ml_tensor *xb = ml_tensor_wrap(data, ML_FLOAT32, 2, bad, NULL, NULL);
    assert_int_equal(ml_call_tensor(rt, "predict", xb, &y), ML_ERR_SCRIPT);
    assert_null(y);
    assert_non_null(strstr(ml_last_error(rt), "matmul"));
    assert_non_null(strstr(ml_last_error(rt), "[3, 2]"));
    assert_non_null(strstr(ml_last_error(rt), "stack traceback"));
    assert_int_equal(ml_call_tensor(rt, "number", x, &y), ML_ERR_TYPE);
    assert_non_null(strstr(ml_last_error(rt), "ml_call_tensor"));
    assert_int_equal(ml_call_tensor(rt, "notfn", x, &y), ML_ERR_TYPE);
    assert_int_equal(ml_call_tensor(rt, "missing", x, &y), ML_ERR_NOT_FOUND);
    assert_int_equal(ml_call_tensor(rt, "predict", NULL, &y), ML_ERR_ARG);
    assert_int_equal(ml_call_tensor(rt, "predict", x, NULL), ML_ERR_ARG);
    ml_tensor *two[2] = {x, x}, *outs[2] = {NULL, NULL};
    assert_int_equal(ml_call_tensors(rt, "predict", 1, two, 2, outs), ML_ERR_TYPE);
    assert_null(outs[0]);
    ml_tensor_release(x);
    ml_tensor_release(xb);
    ml_close(rt);
}

static void test_script_errors(void **state) {
    (void)state;
    ml_runtime *rt = open_default();
    assert_int_equal(ml_run_string(rt, "local x = = 1", 0, NULL), ML_ERR_SCRIPT);
    assert_int_equal(ml_last_status(rt), ML_ERR_SCRIPT);
    assert_non_null(strstr(ml_last_error(rt), "unexpected symbol"));
    assert_int_equal(ml_run_string(rt, "local function f() error('deep failure') end\nf()", 0, NULL),
                     ML_ERR_SCRIPT);
    assert_non_null(strstr(ml_last_error(rt), "deep failure"));
    assert_non_null(strstr(ml_last_error(rt), "stack traceback"));
    assert_non_null(strstr(ml_last_error(rt), "in local 'f'"));
    assert_int_equal(ml_run_string(rt, "error(setmetatable({}, {__tostring = function() return 'obj' end}))",
                                   0, NULL), ML_ERR_SCRIPT);
    assert_non_null(strstr(ml_last_error(rt), "obj"));
    assert_int_equal(ml_run_string(rt, "ml.softmax(ml.ones({2, 2}))", 0, NULL), ML_ERR_SCRIPT);
    assert_non_null(strstr(ml_last_error(rt), "softmax"));
    assert_int_equal(ml_run_file(rt, "/nonexistent/train.lua", 0, NULL), ML_ERR_IO);
    assert_non_null(strstr(ml_last_error(rt), "/nonexistent/train.lua"));
    /* still usable */
    run_ok(rt, "return 1");
    assert_string_equal(ml_last_error(rt), "");
    ml_close(rt);
}

static void test_memory_limit(void **state) {
    (void)state;
    ml_options o;
    ml_options_init(&o);
    o.memory_limit = 4u << 20;
    ml_runtime *rt = ml_open(&o);
    assert_non_null(rt);
    assert_int_equal(ml_run_string(rt, "local t = {} for i = 1, 1e7 do t[i] = {i} end", 0, NULL),
                     ML_ERR_MEMORY);
    assert_non_null(strstr(ml_last_error(rt), "not enough memory"));
    /* a script that catches the error itself sees Lua's message */
    run_ok(rt, "local ok, e = pcall(function() return string.rep('x', 8 << 20) end)\n"
               "assert(not ok and e == 'not enough memory', tostring(e))");
    /* the runtime stays usable, with moonlight working */
    run_ok(rt, "return ml.ones({4}):sum():item() + 1");
    double v;
    assert_int_equal(ml_get_number(rt, "1", &v), ML_OK);
    assert_true(v == 5);
    ml_close(rt);
    /* a limit too small to load moonlight at all */
    o.memory_limit = 16u << 10;
    assert_null(ml_open(&o));
    assert_int_equal(ml_last_status(NULL), ML_ERR_MEMORY);
    assert_non_null(strstr(ml_last_error(NULL), "not enough memory"));
}

static void test_options(void **state) {
    (void)state;
    ml_options o;
    ml_options_init(&o);
    o.libs = ML_LIB_SAFE;
    ml_runtime *rt = ml_open(&o);
    assert_non_null(rt);
    run_ok(rt, "assert(io == nil and os == nil and debug == nil)\n"
               "assert(string and math and table and ml.tensor)\n"
               "local m = require 'moonlight'; assert(m == ml)\n"
               "assert(require('moonlight.serialization').save)\n"
               "assert(package.loadlib == nil and package.cpath == '' and #package.searchers == 1)\n"
               "assert(not pcall(require, 'busted'))");
    ml_close(rt);
    rt = open_default();
    run_ok(rt, "assert(io and os and debug and package.loadlib)");
    ml_close(rt);
    o.libs = 1u << 20;
    assert_null(ml_open(&o));
    assert_int_equal(ml_last_status(NULL), ML_ERR_ARG);
    ml_options_init(&o);
    o.device = "tpu";
    assert_null(ml_open(&o));
    assert_non_null(strstr(ml_last_error(NULL), "unknown device 'tpu'"));
    o.device = "cpu";
    rt = ml_open(&o);
    char dev[8];
    assert_int_equal(ml_get_string(rt, "ml.host.device", dev, sizeof dev, NULL), ML_OK);
    assert_string_equal(dev, "cpu");
    ml_close(rt);
    o.device = "cuda";
    rt = ml_open(&o);
    if (rt) {
        ml_close(rt);
    } else {
        assert_int_equal(ml_last_status(NULL), ML_ERR_DEVICE);
        assert_non_null(strstr(ml_last_error(NULL), "cuda"));
    }
}

/* --- host callbacks --- */

static int host_add(ml_runtime *rt, ml_args *a, void *ud) {
    int *calls = ud;
    (*calls)++;
    double x, y;
    int st = ml_arg_number(a, 0, &x);
    if (st == ML_OK) st = ml_arg_number(a, 1, &y);
    if (st != ML_OK) return st;
    if (x < 0) return ml_args_error(a, "x must be >= 0, got %g", x);
    /* calling back into the runtime from inside is allowed */
    double bias = 0;
    if (ml_get_number(rt, "bias", &bias) != ML_OK) bias = 0;
    ml_return_number(a, x + y + bias);
    ml_return_string(a, "sum");
    return ML_OK;
}

static int host_scale(ml_runtime *rt, ml_args *a, void *ud) {
    (void)rt;
    (void)ud;
    ml_tensor *t;
    const char *how;
    if (ml_args_count(a) != 2) return ml_args_error(a, "expected 2 arguments, got %d", ml_args_count(a));
    assert_int_equal(ml_arg_kind(a, 0), ML_VALUE_TENSOR);
    assert_int_equal(ml_arg_kind(a, 1), ML_VALUE_STRING);
    assert_int_equal(ml_arg_kind(a, 2), ML_VALUE_NONE);
    int st = ml_arg_tensor(a, 0, &t);
    if (st == ML_OK) st = ml_arg_string(a, 1, &how);
    if (st != ML_OK) return st;
    int64_t n = ml_tensor_numel(t);
    ml_tensor *out = ml_tensor_new(ML_FLOAT32, ml_tensor_ndim(t), ml_tensor_shape(t), NULL);
    float *o = ml_tensor_data(out);
    const float *in = ml_tensor_data(t);
    for (int64_t i = 0; i < n; i++) o[i] = strcmp(how, "double") == 0 ? 2 * in[i] : in[i];
    ml_return_tensor(a, out);
    ml_tensor_release(out);
    ml_return_boolean(a, 1);
    return ML_OK;
}

static void test_callbacks(void **state) {
    (void)state;
    ml_runtime *rt = open_default();
    int calls = 0;
    assert_int_equal(ml_register(rt, "host.add", host_add, &calls), ML_OK);
    assert_int_equal(ml_register(rt, "ml.host.scale", host_scale, NULL), ML_OK);
    run_ok(rt, "bias = 0.5\n"
               "local s, name = host.add(1, ml.tensor(2))\n"
               "assert(s == 3.5 and name == 'sum', tostring(s))\n"
               "local ok, e = pcall(host.add, 'one', 2)\n"
               "assert(not ok and e:find('host.add: argument 1 must be a number, got string', 1, true), e)\n"
               "ok, e = pcall(host.add, -1, 2)\n"
               "assert(not ok and e:find('host.add: x must be >= 0, got -1', 1, true), e)\n"
               "ok, e = pcall(host.add, 1)\n"
               "assert(not ok and e:find('argument 2 must be a number, got nothing', 1, true), e)\n"
               "local t, flag = ml.host.scale(ml.tensor({1, 2, 3}), 'double')\n"
               "assert(flag == true and t:sum():item() == 12)\n"
               "ok, e = pcall(ml.host.scale, 1)\n"
               "assert(not ok and e:find('expected 2 arguments, got 1', 1, true), e)\n"
               "-- from inside a coroutine too\n"
               "local co = coroutine.wrap(function() return host.add(2, 2) end)\n"
               "assert(co() == 4.5)");
    assert_int_equal(calls, 5);
    /* an error the script does not catch comes back with the callback's name */
    assert_int_equal(ml_run_string(rt, "host.add(-2, 0)", 0, NULL), ML_ERR_SCRIPT);
    assert_non_null(strstr(ml_last_error(rt), "host.add: x must be >= 0, got -2"));
    ml_close(rt);
}

/* --- runtimes are independent: generator, grad mode, threads --- */

static void test_independent_runtimes(void **state) {
    (void)state;
    ml_runtime *a = open_default(), *b = open_default();
    run_ok(a, "ml.manual_seed(1); ml.set_grad_enabled(false)");
    run_ok(b, "ml.manual_seed(2)");
    run_ok(a, "return ml.rand({1}):item(), ml.is_grad_enabled()");
    double ra, rb;
    assert_int_equal(ml_get_number(a, "1", &ra), ML_OK);
    run_ok(b, "return ml.rand({1}):item(), ml.is_grad_enabled()");
    assert_int_equal(ml_get_number(b, "1", &rb), ML_OK);
    run_ok(b, "assert(ml.is_grad_enabled() == true)");
    ml_runtime *c = open_default();
    run_ok(c, "ml.manual_seed(1); return ml.rand({1}):item()");
    double rc;
    assert_int_equal(ml_get_number(c, "1", &rc), ML_OK);
    assert_true(ra == rc);
    assert_true(ra != rb);
    run_ok(a, "assert(ml.is_grad_enabled() == false)");
    ml_close(a);
    ml_close(b);
    ml_close(c);
}

static const char *train_script =
    "ml.manual_seed(7)\n"
    "local x = ml.randn({128, 16})\n"
    "local y = (x:matmul(ml.randn({16, 1})) + 0.1 * ml.randn({128, 1})):tanh()\n"
    "local function param(...) local p = ml.randn({...}) * 0.3; p.requires_grad = true; return p end\n"
    "local w1, b1, w2, b2 = param(32, 16), param(32), param(1, 32), param(1)\n"
    "local loss\n"
    "for step = 1, 1000 do\n"
    "  loss = (ml.F.linear(ml.F.relu(ml.F.linear(x, w1, b1)), w2, b2) - y):square():mean()\n"
    "  loss:backward()\n"
    "  ml.no_grad(function()\n"
    "    for _, p in ipairs({w1, b1, w2, b2}) do p:add_(p.grad, -0.05); p.grad = nil end\n"
    "  end)\n"
    "  -- the other runtime's thread draws from its own generator meanwhile\n"
    "  if step % 50 == 0 then ml.rand({1}) end\n"
    "end\n"
    "return {loss = loss, check = ml.rand({1}):item()}\n";

struct job {
    double loss, check;
    int status;
    char err[256];
};

static void *train_thread(void *p) {
    struct job *j = p;
    ml_runtime *rt = ml_open(NULL);
    if (!rt) {
        j->status = ML_ERR_MEMORY;
        return NULL;
    }
    j->status = ml_run_string(rt, train_script, 0, NULL);
    if (j->status == ML_OK) j->status = ml_get_number(rt, "1.loss", &j->loss);
    if (j->status == ML_OK) j->status = ml_get_number(rt, "1.check", &j->check);
    snprintf(j->err, sizeof j->err, "%s", ml_last_error(rt));
    ml_close(rt);
    return NULL;
}

static void test_two_threads_train(void **state) {
    (void)state;
    struct job single;
    memset(&single, 0, sizeof single);
    train_thread(&single);
    assert_int_equal(single.status, ML_OK);
    assert_true(single.loss < 0.5);
    struct job jobs[2];
    memset(jobs, 0, sizeof jobs);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, train_thread, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        if (jobs[i].status != ML_OK) fail_msg("thread %d: %s", i, jobs[i].err);
        assert_true(jobs[i].loss == single.loss);
        assert_true(jobs[i].check == single.check);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_run_results),  cmocka_unit_test(test_globals),
        cmocka_unit_test(test_metrics_table),     cmocka_unit_test(test_zero_copy),
        cmocka_unit_test(test_bad_tensors),       cmocka_unit_test(test_script_errors),
        cmocka_unit_test(test_memory_limit),      cmocka_unit_test(test_options),
        cmocka_unit_test(test_callbacks),         cmocka_unit_test(test_independent_runtimes),
        cmocka_unit_test(test_two_threads_train),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
