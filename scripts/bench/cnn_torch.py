"""PyTorch peer of scripts/bench/cnn.lua (issue 16): one training epoch of the MNIST
CNN Conv2d(1,16,3,p1) -> BatchNorm2d -> ReLU -> MaxPool2d(2) -> Conv2d(16,32,3,p1) ->
BatchNorm2d -> ReLU -> MaxPool2d(2) -> Linear(1568,128) -> ReLU -> Dropout ->
Linear(128,10), batch 128, Adam 1e-3, cross_entropy, at its best on a CPU: the IDX
files read with numpy and preloaded as float32 tensors, batches by index from a
randperm; then the test accuracy. Prints one BENCH line (train_peak_rss: the peak
resident size when training ends, before the test pass; peak_rss: the whole run's).

  /usr/bin/python3 scripts/bench/cnn_torch.py [--threads N] [--epochs N] [--limit N] [--data DIR]
"""
import argparse
import resource
import time

from torch_common import load_mnist as load

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 128


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--data", default="data/mnist")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epoch_s, steps = [], 0
    for _ in range(a.epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(xtr.shape[0])
        for i, s in enumerate(range(0, xtr.shape[0], BATCH)):
            if a.limit and i >= a.limit:
                break
            idx = perm[s:s + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            steps += 1
        epoch_s.append(time.perf_counter() - t0)
    train_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model.eval()
    with torch.no_grad():
        correct = sum((model(xte[s:s + 1000]).argmax(1) == yte[s:s + 1000]).sum().item()
                      for s in range(0, xte.shape[0], 1000))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("BENCH impl=torch threads=%d epoch_s=%s steps=%d accuracy=%.4f train_peak_rss=%d peak_rss=%d" % (
        torch.get_num_threads(), ",".join("%.3f" % t for t in epoch_s), steps, correct / xte.shape[0],
        train_rss, rss),
        flush=True)


if __name__ == "__main__":
    main()
