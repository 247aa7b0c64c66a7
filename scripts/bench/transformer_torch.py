"""PyTorch's side of scripts/bench/transformer.lua: one nn.TransformerEncoderLayer
(d_model 256, 4 heads, dim_feedforward 2048, dropout 0.1, batch_first, train mode)
forward + backward of out.sum() at batch 32, sequence 128, float32. Times `iters`
steps after `warmup` untimed ones and prints "STEP seconds" per step (the caller
takes medians across the rounds it interleaves with Moonlight's).

  /usr/bin/python3 scripts/bench/transformer_torch.py [--threads 2] [--iters 3] [--warmup 1]
"""
import argparse
import time

import torch

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--iters", type=int, default=3)
p.add_argument("--warmup", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
layer = torch.nn.TransformerEncoderLayer(256, 4, dim_feedforward=2048, dropout=0.1, batch_first=True)
layer.train()
x = torch.randn(32, 128, 256, requires_grad=True)


def step():
    layer.zero_grad(set_to_none=True)
    x.grad = None
    layer(x).sum().backward()


for _ in range(a.warmup):
    step()
for _ in range(a.iters):
    t0 = time.perf_counter()
    step()
    print("STEP %.6f" % (time.perf_counter() - t0), flush=True)
