/* A host program embedding Moonlight: it makes its own data (a noisy sine), hands
 * it to a Lua training script without copying, lets the script call back into C
 * every epoch, reads the final loss back, and then reloads the saved checkpoint in
 * a fresh runtime and predicts from C.
 *
 *   regress SCRIPT CHECKPOINT      (SCRIPT: scripts/embed/regress.lua)
 *
 * Uses nothing but <moonlight.h>. Exit status 0 when every check passed. */
#include <math.h>
#include <moonlight.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 256
#define MAX_EPOCHS 60

static int failures;
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "regress: check failed: " __VA_ARGS__);            \
            fputc('\n', stderr);                                               \
            failures++;                                                        \
        }                                                                      \
    } while (0)

/* A small generator of our own (the data must not depend on moonlight's). */
static uint64_t lcg = 0x2545F4914F6CDD1DULL;
static double uniform(void) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

/* What the host keeps per epoch (filled by the callback). */
struct history {
    int epochs;
    double loss[MAX_EPOCHS + 1];
};

/* on_epoch(epoch, loss) -> stop? : records the loss; stops once it is tiny. */
static int on_epoch(ml_runtime *rt, ml_args *a, void *ud) {
    (void)rt;
    struct history *h = ud;
    double epoch, loss;
    int st = ml_arg_number(a, 0, &epoch);
    if (st == ML_OK) st = ml_arg_number(a, 1, &loss);
    if (st != ML_OK) return st; /* the script gets "ml.host.on_epoch: argument ..." */
    if (epoch < 1 || epoch > MAX_EPOCHS) return ml_args_error(a, "epoch %g out of range", epoch);
    h->epochs = (int)epoch;
    h->loss[h->epochs] = loss;
    if ((int)epoch % 10 == 0) printf("epoch %3d  loss %.6f\n", (int)epoch, loss);
    return ml_return_boolean(a, loss < 1e-4);
}

static int released;
static void release_host_data(void *data, void *ctx) {
    (void)ctx;
    free(data);
    released++;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SCRIPT CHECKPOINT\n", argv[0]);
        return 2;
    }
    const char *script = argv[1], *ckpt = argv[2];
    float *xs = malloc(N * sizeof *xs), *ys = malloc(N * sizeof *ys);
    if (!xs || !ys) return 1;
    for (int i = 0; i < N; i++) {
        xs[i] = (float)(uniform() * 6.0 - 3.0);
        double noise = (uniform() + uniform() + uniform() - 1.5) * 0.1; /* ~N(0, 0.05^2) */
        ys[i] = (float)(sin(xs[i]) + noise);
    }

    /* the checkpoint's directory is the only one the script may write */
    char ckpt_dir[4096];
    const char *slash = strrchr(ckpt, '/');
    snprintf(ckpt_dir, sizeof ckpt_dir, "%.*s", slash ? (int)(slash - ckpt) : 1, slash ? ckpt : ".");
    if (slash == ckpt) snprintf(ckpt_dir, sizeof ckpt_dir, "/");
    const char *write_dirs[] = {ckpt_dir, NULL};

    ml_options opts;
    ml_options_init(&opts);
    opts.libs = ML_LIB_SAFE;            /* a sandbox: no io, os, debug in the script */
    opts.memory_limit = 64u << 20;      /* the Lua state's memory and the tensors' */
    opts.write_dirs = write_dirs;       /* ml.save may write there, nowhere else */
    opts.time_limit = 600;              /* seconds per call, against a runaway script */
    opts.device = "auto";
    ml_runtime *rt = ml_open(&opts);
    if (!rt) {
        fprintf(stderr, "regress: ml_open: %s\n", ml_last_error(NULL));
        return 1;
    }
    int64_t shape[2] = {N, 1};
    ml_tensor *x = ml_tensor_wrap(xs, ML_FLOAT32, 2, shape, release_host_data, NULL);
    ml_tensor *y = ml_tensor_wrap(ys, ML_FLOAT32, 2, shape, release_host_data, NULL);
    CHECK(x && y, "ml_tensor_wrap: %s", ml_last_error(NULL));
    CHECK(ml_tensor_data(x) == xs, "the wrapped tensor must use the host's memory");
    struct history hist = {0, {0}};
    int st = ml_set_global_tensor(rt, "x", x);
    if (st == ML_OK) st = ml_set_global_tensor(rt, "y", y);
    if (st == ML_OK) st = ml_set_global_number(rt, "epochs", MAX_EPOCHS);
    if (st == ML_OK) st = ml_set_global_number(rt, "batch", 64);
    if (st == ML_OK) st = ml_register(rt, "ml.host.on_epoch", on_epoch, &hist);
    CHECK(st == ML_OK, "setting up the runtime: %s", ml_last_error(rt));

    const char *args[2] = {"train", ckpt};
    st = ml_run_file(rt, script, 2, args);
    if (st != ML_OK) {
        fprintf(stderr, "regress: %s: %s\n", ml_status_name(st), ml_last_error(rt));
        return 1;
    }
    double loss = NAN, epochs = 0;
    CHECK(ml_get_number(rt, "1.loss", &loss) == ML_OK, "%s", ml_last_error(rt));
    CHECK(ml_get_number(rt, "1.epochs", &epochs) == ML_OK, "%s", ml_last_error(rt));
    char device[16] = "?";
    CHECK(ml_get_string(rt, "ml.host.device", device, sizeof device, NULL) == ML_OK, "%s",
          ml_last_error(rt));
    printf("trained %d epochs on %s, final loss %.6f (first epoch %.6f)\n", (int)epochs,
           device, loss, hist.loss[1]);
    CHECK(hist.epochs == (int)epochs && hist.epochs >= 1, "the callback saw %d epochs, the script %g",
          hist.epochs, epochs);
    /* sin has variance ~0.5 over [-3, 3]; the noise 0.0025: the model must have learnt */
    CHECK(loss < 0.02, "final loss %g is not below 0.02", loss);
    CHECK(loss < hist.loss[1] / 5, "final loss %g is not well below the first epoch's %g", loss, hist.loss[1]);

    /* predictions of the trained model, and the loss recomputed in C */
    ml_tensor *pred = NULL;
    st = ml_call_tensor(rt, "predict", x, &pred);
    CHECK(st == ML_OK, "predict: %s", ml_last_error(rt));
    float *p1 = malloc(N * sizeof *p1);
    if (!p1 || !pred) return 1;
    CHECK(ml_tensor_ndim(pred) == 2 && ml_tensor_shape(pred)[0] == N, "predict returned a bad shape");
    CHECK(ml_tensor_read(pred, p1, N * sizeof *p1) == ML_OK, "%s", ml_last_error(NULL));
    double mse = 0;
    for (int i = 0; i < N; i++) mse += ((double)p1[i] - ys[i]) * ((double)p1[i] - ys[i]);
    mse /= N;
    CHECK(fabs(mse - loss) <= 1e-5 * (1 + loss), "MSE computed in C %g, in Lua %g", mse, loss);
    ml_tensor_release(pred);

    ml_tensor_release(x); /* the runtime still holds its references */
    ml_tensor_release(y);
    CHECK(released == 0, "host memory released while the runtime still uses it");
    ml_close(rt);
    CHECK(released == 2, "host memory released %d times after ml_close, expected 2", released);

    /* a fresh runtime: load the checkpoint, predict on a grid from C */
    rt = ml_open(NULL);
    if (!rt) return 1;
    const char *args2[2] = {"predict", ckpt};
    st = ml_run_file(rt, script, 2, args2);
    CHECK(st == ML_OK, "reloading: %s", ml_last_error(rt));
    /* the same inputs again, this time as an owned copy */
    float *xs2 = malloc(N * sizeof *xs2);
    if (!xs2) return 1;
    lcg = 0x2545F4914F6CDD1DULL;
    for (int i = 0; i < N; i++) {
        xs2[i] = (float)(uniform() * 6.0 - 3.0);
        uniform(), uniform(), uniform();
    }
    ml_tensor *x2 = ml_tensor_new(ML_FLOAT32, 2, shape, xs2);
    free(xs2);
    st = ml_call_tensor(rt, "predict", x2, &pred);
    CHECK(st == ML_OK, "predict after reload: %s", ml_last_error(rt));
    if (st == ML_OK) {
        const float *p2 = ml_tensor_data(pred);
        double maxdiff = 0;
        for (int i = 0; i < N; i++) maxdiff = fmax(maxdiff, fabs((double)p2[i] - p1[i]));
        printf("reloaded checkpoint %s: predictions differ by at most %g\n", ckpt, maxdiff);
        CHECK(maxdiff == 0, "the reloaded model predicts differently (max diff %g)", maxdiff);
        ml_tensor_release(pred);
    }
    ml_tensor_release(x2);
    ml_close(rt);
    free(p1);
    if (failures) {
        fprintf(stderr, "regress: %d check(s) failed\n", failures);
        return 1;
    }
    printf("regress: ok\n");
    return 0;
}
