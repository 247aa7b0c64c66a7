/* ml_open / run / ml_close, 100 times in one process: valgrind must find no leak.
 * Each round wraps host memory, registers a callback, trains a few steps with
 * autograd, saves and reloads a checkpoint, and fails once on purpose (a script
 * error and an error from the callback). */
#include <moonlight.h>
#include <stdio.h>
#include <stdlib.h>

static int host_check(ml_runtime *rt, ml_args *a, void *ud) {
    (void)rt;
    (void)ud;
    double v;
    int st = ml_arg_number(a, 0, &v);
    if (st != ML_OK) return st;
    if (v < 0) return ml_args_error(a, "negative: %g", v);
    return ml_return_number(a, v + 1);
}

static void release(void *data, void *ctx) {
    (void)ctx;
    free(data);
}

static const char *script =
    "local ckpt = ...\n"
    "local w = ml.randn({4, 3}); w.requires_grad = true\n"
    "for i = 1, 3 do\n"
    "  local loss = ml.F.linear(x, w, nil):square():mean()\n"
    "  loss:backward()\n"
    "  ml.no_grad(function() w:add_(w.grad, -0.1); w.grad = nil end)\n"
    "end\n"
    "ml.save({w = w}, ckpt, {round = 'x'})\n"
    "local back = ml.load(ckpt)\n"
    "assert((back.w - w):abs():max():item() == 0)\n"
    "assert(not pcall(host.check, -1))\n"
    "return {loss = ml.F.linear(x, w, nil):square():mean(), n = host.check(1)}\n";

int main(int argc, char **argv) {
    const char *ckpt = argc > 1 ? argv[1] : "open_close.safetensors";
    int rounds = argc > 2 ? atoi(argv[2]) : 100;
    for (int r = 0; r < rounds; r++) {
        ml_runtime *rt = ml_open(NULL);
        if (!rt) return fprintf(stderr, "ml_open: %s\n", ml_last_error(NULL)), 1;
        float *data = malloc(8 * 3 * sizeof *data);
        for (int i = 0; i < 24; i++) data[i] = (float)i / 24;
        int64_t shape[2] = {8, 3};
        ml_tensor *x = ml_tensor_wrap(data, ML_FLOAT32, 2, shape, release, NULL);
        ml_set_global_tensor(rt, "x", x);
        ml_tensor_release(x);
        ml_register(rt, "host.check", host_check, NULL);
        const char *args[1] = {ckpt};
        if (ml_run_string(rt, script, 1, args) != ML_OK)
            return fprintf(stderr, "round %d: %s\n", r, ml_last_error(rt)), 1;
        double loss, n;
        if (ml_get_number(rt, "1.loss", &loss) != ML_OK || ml_get_number(rt, "1.n", &n) != ML_OK || n != 2)
            return fprintf(stderr, "round %d: %s\n", r, ml_last_error(rt)), 1;
        if (ml_run_string(rt, "error('on purpose')", 0, NULL) != ML_ERR_SCRIPT) return 1;
        if (ml_run_file(rt, "/nonexistent.lua", 0, NULL) != ML_ERR_IO) return 1;
        ml_close(rt);
    }
    remove(ckpt);
    printf("%d rounds ok\n", rounds);
    return 0;
}
