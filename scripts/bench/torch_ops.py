"""PyTorch's side of the op-level benchmarks: the same cases as ops.lua (matmul at the
reference MLP's shapes, elementwise on 16M floats), losses.lua (losses forward and
forward+backward) and adam.lua (one Adam step over the MLP's parameters), printed as
"ROW key value unit" lines with the same keys. Median of `runs` timed runs.

  /usr/bin/python3 scripts/bench/torch_ops.py [--threads 1] [--quick]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--quick", action="store_true")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
RUNS = 3 if a.quick else 7
now = time.perf_counter


def per_call(fn, reps):
    fn()
    times = []
    for _ in range(RUNS):
        t0 = now()
        for _ in range(reps):
            fn()
        times.append((now() - t0) / reps)
    return statistics.median(times)


def row(key, value, unit):
    print("ROW\t%s\t%.6g\t%s" % (key, value, unit), flush=True)


with torch.no_grad():
    B = 128
    for fin, fout in ((784, 64), (64, 32), (32, 10)):
        x, w, b = torch.randn(B, fin), torch.randn(fout, fin), torch.randn(fout)
        flops = 2 * B * fin * fout
        reps = max(1, int(2e8 // flops))
        row("matmul.linear_bias.%dx%d" % (fin, fout), flops / per_call(lambda: F.linear(x, w, b), reps) / 1e9,
            "GFLOP/s")
        row("matmul.linear.%dx%d" % (fin, fout), flops / per_call(lambda: F.linear(x, w), reps) / 1e9, "GFLOP/s")
    g, w, x = torch.randn(B, 64), torch.randn(64, 784), torch.randn(B, 784)
    flops = 2 * B * 64 * 784
    reps = max(1, int(2e8 // flops))
    row("matmul.grad_input.784x64", flops / per_call(lambda: g.matmul(w), reps) / 1e9, "GFLOP/s")
    gt = g.t()
    row("matmul.grad_weight.784x64", flops / per_call(lambda: gt.matmul(x), reps) / 1e9, "GFLOP/s")

    n = 16 * 1024 * 1024
    nbytes = 4 * n
    u, v = torch.randn(n), torch.randn(n)
    for name, moved, fn in (("add", 3, lambda: u + v), ("mul", 3, lambda: u * v),
                            ("relu", 2, lambda: u.relu()), ("exp", 2, lambda: u.exp())):
        row("elementwise." + name, moved * nbytes / per_call(fn, 3) / 1e9, "GB/s")

for n, c in ((128, 10), (4096, 1000)):
    iters = 30 if n * c > 100000 else 3000
    if a.quick:
        iters //= 10
    x = torch.randn(n, c, requires_grad=True)
    target_mse = torch.randn(n, c)
    target_ce = torch.tensor([(i * 7) % c for i in range(1, n + 1)], dtype=torch.int64)
    xd = x.detach()
    sh = "%dx%d" % (n, c)

    def fb(loss_fn):
        def f():
            x.grad = None
            loss_fn().backward()
        return f

    def fwd(loss_fn):
        def f():
            with torch.no_grad():
                return loss_fn()
        return f

    def ce(): return F.cross_entropy(x, target_ce)
    def mse(): return F.mse_loss(x, target_mse)
    def custom(): return torch.mean(torch.square(x - target_mse))
    def ce_f(): return F.cross_entropy(xd, target_ce)
    def mse_f(): return F.mse_loss(xd, target_mse)
    def three(): return xd.exp(), xd * 2, xd + xd

    row("loss.cross_entropy.fwd." + sh, per_call(fwd(ce_f), iters), "s")
    row("loss.cross_entropy.fwdbwd." + sh, per_call(fb(ce), iters), "s")
    row("loss.mse_loss.fwd." + sh, per_call(fwd(mse_f), iters), "s")
    row("loss.mse_loss.fwdbwd." + sh, per_call(fb(mse), iters), "s")
    row("loss.custom_mse.fwdbwd." + sh, per_call(fb(custom), iters), "s")
    row("loss.three_ops." + sh, per_call(three, iters), "s")

params = []
for s in ((64, 784), (64,), (32, 64), (32,), (10, 32), (10,)):
    t = torch.randn(*s, requires_grad=True)
    t.grad = torch.randn(*s) * 1e-2
    params.append(t)
opt = torch.optim.Adam(params, lr=1e-3)
row("adam.step", per_call(opt.step, 200 if a.quick else 1000), "s")
