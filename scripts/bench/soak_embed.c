/* Soak of the embedding API (issue 17): ml_open / run / ml_close, CYCLES times in
 * one process. Each cycle wraps host memory as a tensor, registers a callback,
 * fits a small model with ml.Trainer (a CSVLogger, a checkpoint), reads results
 * back, fails once on purpose, and closes the runtime. The resident set is sampled
 * every EVERY cycles; after WARMUP cycles it must stay within TOLERANCE of its
 * smallest sample. Prints one line per sample and a summary line:
 *
 *   SOAK_EMBED cycles=1000 rss_min_kb=... rss_max_kb=... spread_pct=...
 *              rss_slope_kb_per_100=... seconds=... ok=true
 *
 *   soak_embed [CYCLES=1000] [WARMUP=100] [EVERY=50] [TOLERANCE=0.05] [DIR=/tmp]
 * Built with the project (build/soak_embed); ctest soak.embed runs a short one. */
#define _POSIX_C_SOURCE 200809L
#include <moonlight.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long rss_kb(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * 4; /* 4 KiB pages on x86-64 Linux */
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int on_epoch(ml_runtime *rt, ml_args *a, void *ud) {
    (void)rt;
    (void)ud;
    double loss;
    int st = ml_arg_number(a, 0, &loss);
    if (st != ML_OK) return st;
    if (loss != loss) return ml_args_error(a, "loss is NaN");
    return ml_return_boolean(a, 0);
}

static void release(void *data, void *ctx) {
    (void)ctx;
    free(data);
}

/* the host's x (64 x 3) and a target from it, a 2-epoch fit, results back */
static const char *const SCRIPT =
    "local dir = ...\n"
    "print = function() end -- the Trainer's lines, 1,000 times over\n"
    "local nn, data = ml.nn, ml.data\n"
    "local y = x:matmul(ml.tensor({{1}, {-1}, {2}}))\n"
    "local Net = nn.Module:extend('Net')\n"
    "function Net:init() self.fc = nn.Linear(3, 1) end\n"
    "function Net:training_step(b)\n"
    "  local l = ml.F.mse_loss(self.fc(b[1]), b[2]); self:log('loss', l); return l\n"
    "end\n"
    "function Net:validation_step(b) self:log('val_loss', ml.F.mse_loss(self.fc(b[1]), b[2])) end\n"
    "function Net:configure_optimizers() return ml.optim.Adam(self:parameters(), {lr = 0.05}) end\n"
    "local report = {on_train_epoch_end = function(_, t) host.on_epoch(t.callback_metrics.loss) end}\n"
    "local loader = data.DataLoader(data.TensorDataset(x, y), {batch_size = 16, shuffle = true})\n"
    "local tr = ml.Trainer({max_epochs = 2, log_every_n_steps = 2, enable_progress_bar = false,\n"
    "  enable_model_summary = false, callbacks = {report},\n"
    "  logger = ml.loggers.CSVLogger(dir, {name = 'soak', version = 0})})\n"
    "local m = tr:fit(Net(), loader, loader)\n"
    "return {val_loss = m.val_loss}\n";

int main(int argc, char **argv) {
    int cycles = argc > 1 ? atoi(argv[1]) : 1000;
    int warmup = argc > 2 ? atoi(argv[2]) : 100;
    int every = argc > 3 ? atoi(argv[3]) : 50;
    double tolerance = argc > 4 ? atof(argv[4]) : 0.05;
    const char *base = argc > 5 ? argv[5] : "/tmp";
    if (cycles <= warmup || every <= 0) {
        fprintf(stderr, "usage: soak_embed [CYCLES] [WARMUP] [EVERY] [TOLERANCE] [DIR] (CYCLES > WARMUP)\n");
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/soak_embed_XXXXXX", base);
    if (!mkdtemp(dir)) return perror("soak_embed: mkdtemp"), 1;
    long lo = -1, hi = -1;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int n = 0;
    double start = now();
    for (int c = 1; c <= cycles; c++) {
        ml_options o;
        ml_options_init(&o);
        o.device = "cpu";
        ml_runtime *rt = ml_open(&o);
        if (!rt) return fprintf(stderr, "cycle %d: ml_open: %s\n", c, ml_last_error(NULL)), 1;
        float *xs = malloc(64 * 3 * sizeof *xs);
        for (int i = 0; i < 64 * 3; i++) xs[i] = (float)((i * 37 + c) % 101) / 50.0f - 1.0f;
        int64_t shape[2] = {64, 3};
        ml_tensor *x = ml_tensor_wrap(xs, ML_FLOAT32, 2, shape, release, NULL);
        ml_set_global_tensor(rt, "x", x);
        ml_tensor_release(x);
        ml_register(rt, "host.on_epoch", on_epoch, NULL);
        const char *args[1] = {dir};
        if (ml_run_string(rt, SCRIPT, 1, args) != ML_OK)
            return fprintf(stderr, "cycle %d: %s\n", c, ml_last_error(rt)), 1;
        double v;
        if (ml_get_number(rt, "1.val_loss", &v) != ML_OK || v != v)
            return fprintf(stderr, "cycle %d: no val_loss: %s\n", c, ml_last_error(rt)), 1;
        if (ml_run_string(rt, "error('on purpose')", 0, NULL) != ML_ERR_SCRIPT) return 1;
        ml_close(rt);
        if (c % every == 0) {
            long r = rss_kb();
            printf("cycle %5d  rss %8ld KB\n", c, r);
            fflush(stdout);
            if (c > warmup) {
                if (lo < 0 || r < lo) lo = r;
                if (r > hi) hi = r;
                sx += c, sy += (double)r, sxx += (double)c * c, sxy += (double)c * (double)r, n++;
            }
        }
    }
    double seconds = now() - start;
    if (n < 2) return fprintf(stderr, "soak_embed: fewer than two samples after the warm-up\n"), 2;
    double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx) * 100; /* KB per 100 cycles */
    double spread = (double)(hi - lo) / (double)lo;
    int ok = spread <= tolerance;
    printf("SOAK_EMBED cycles=%d rss_min_kb=%ld rss_max_kb=%ld spread_pct=%.2f rss_slope_kb_per_100=%.2f "
           "seconds=%.1f ok=%s\n",
           cycles, lo, hi, spread * 100, slope, seconds, ok ? "true" : "false");
    /* the logs and checkpoints of the last cycle */
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "soak_embed: could not remove %s\n", dir);
    return ok ? 0 : 1;
}
