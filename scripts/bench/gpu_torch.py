"""The steps of scripts/bench/gpu.lua in PyTorch (the reference numbers for the
GPU benchmark; scripts/gpu-check.sh prints both and the ratios):

  1. one epoch (469 steps) of the reference MLP (784-64-32-10, ReLU, Softmax,
     F.mse_loss on one-hot targets, Adam lr 1e-3, batch 128), the uint8 dataset
     resident on the device and each shuffled batch gathered there (x / 255,
     one_hot) as moonlight's DataLoader does with device = "cuda";
  2. a large MLP: 3 Linear layers 4096 wide, batch 4096, ReLU, MSE, Adam, ms per
     step with full float32 and with TF32 matmuls;
  3. torch.cuda.memory_allocated before and after 10,000 reference steps.

Prints lines "RESULT <name> <value> <unit>".   python3 scripts/bench/gpu_torch.py
"""
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def result(name, value, unit="ms"):
    print(f"RESULT {name} {value:.4f} {unit}", flush=True)


def reference_model(dev):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                         nn.Linear(32, 10), nn.Softmax(-1)).to(dev)


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    return loss


def mnist_like(dev):
    g = torch.Generator().manual_seed(7)
    images = torch.randint(0, 256, (60000, 28, 28), dtype=torch.uint8, generator=g).to(dev)
    labels = torch.randint(0, 10, (60000,), generator=g).to(dev)
    return images, labels


def batches(images, labels, batch, dev):
    """One shuffled epoch: indices drawn on the host and gathered on the device."""
    perm = torch.randperm(images.shape[0])
    for s in range(0, images.shape[0], batch):
        idx = perm[s:s + batch].to(dev, non_blocking=True)
        x = (images[idx].float() / 255).unsqueeze(1)
        y = F.one_hot(labels[idx], 10).float()
        yield x, y


def epoch(dev, images, labels):
    model = reference_model(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for i, (x, y) in enumerate(batches(images, labels, 128, dev)):
        train_step(model, opt, x, y)
        if i == 19:
            break
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    steps = 0
    for x, y in batches(images, labels, 128, dev):
        loss = train_step(model, opt, x, y)
        steps += 1
    last = loss.item()
    dt = time.perf_counter() - t0
    print(f"torch {dev}: one epoch of {steps} steps (batch 128) in {dt * 1000:.1f} ms, "
          f"{steps / dt:.0f} steps/s, last loss {last:.6f}", flush=True)
    result("torch_mlp_epoch_ms", dt * 1000)
    return model, opt


def memory_flat(dev, model, opt, images, labels):
    steps, target, before = 0, 10000, None
    t0 = time.perf_counter()
    while steps < target:
        for x, y in batches(images, labels, 128, dev):
            train_step(model, opt, x, y)
            steps += 1
            if steps == 100:
                torch.cuda.synchronize()
                before = torch.cuda.memory_allocated()
            if steps >= target:
                break
    torch.cuda.synchronize()
    after = torch.cuda.memory_allocated()
    print(f"torch cuda: memory_allocated {before} bytes after 100 steps, {after} after {steps} "
          f"steps; {time.perf_counter() - t0:.1f} s", flush=True)
    result("torch_memory_growth_bytes", after - before, "bytes")


def large_mlp(dev, precision):
    torch.set_float32_matmul_precision(precision)
    torch.manual_seed(1)
    width, batch = 4096, 4096
    model = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, width)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.randn(batch, width, device=dev), torch.randn(batch, width, device=dev)
    for _ in range(3):
        train_step(model, opt, x, y)
    torch.cuda.synchronize()
    n = 20
    t0 = time.perf_counter()
    for _ in range(n):
        loss = train_step(model, opt, x, y)
    loss.item()
    ms = (time.perf_counter() - t0) * 1000 / n
    torch.set_float32_matmul_precision("highest")
    print(f"torch {dev}: large MLP (3 x Linear {width}, batch {batch}, Adam) {ms:.2f} ms/step "
          f"with matmul precision \"{precision}\"", flush=True)
    result(f"torch_large_mlp_step_ms_{precision}", ms)


def main():
    if not torch.cuda.is_available():
        print("torch: SKIPPED (no CUDA device)")
        return 0
    dev = "cuda"
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}", flush=True)
    images, labels = mnist_like(dev)
    model, opt = epoch(dev, images, labels)
    memory_flat(dev, model, opt, images, labels)
    large_mlp(dev, "highest")
    large_mlp(dev, "high")
    return 0


if __name__ == "__main__":
    sys.exit(main())
