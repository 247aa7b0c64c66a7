"""Shared by torch_tutorial.py and torch_best.py: the reference MLP, the user's loss and
error, a Lightning-like CSV log and checkpoint, the BENCH line; and by them and
cnn_torch.py: MNIST's IDX files read with numpy. Run with Debian's /usr/bin/python3
(python3-torch 1.13)."""
import argparse
import csv
import os
import resource
import time

T0 = time.perf_counter()  # process start, as near as Python lets us

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def parse_args(doc):
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--data", default="data/mnist", help="folder with the four MNIST IDX files")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--logs", default="logs/bench")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit_train_batches", type=int, default=None)
    p.add_argument("--limit_val_batches", type=int, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    return a


def read_idx(path, offset):
    with open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_mnist(data, prefix):
    """The images of data/<prefix>-images-idx3-ubyte as float32 [N, 1, 28, 28] in
    [0, 1], and the labels as int64 [N]: the whole split, preloaded."""
    x = read_idx(os.path.join(data, prefix + "-images-idx3-ubyte"), 16)
    y = read_idx(os.path.join(data, prefix + "-labels-idx1-ubyte"), 8)
    return (torch.from_numpy(x.copy()).view(-1, 1, 28, 28).float().div_(255),
            torch.from_numpy(y.astype(np.int64)))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear1 = nn.Linear(28 * 28, 64)
        self.relu1 = nn.ReLU()
        self.linear2 = nn.Linear(64, 32)
        self.relu2 = nn.ReLU()
        self.linear3 = nn.Linear(32, 10)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = self.flatten(x)
        x = self.relu1(self.linear1(x))
        x = self.relu2(self.linear2(x))
        return self.softmax(self.linear3(x))


def custom_loss(y_pred, y_true):
    return torch.mean(torch.square(y_pred - y_true))


def custom_error(y_pred, y_true):
    return torch.abs(torch.mean(y_true - y_pred))


class Log:
    """Lightning's CSVLogger + default ModelCheckpoint, by hand: step metrics every
    log_every_n_steps (50) steps, validation means (weighted by batch size) once per
    epoch, metrics.csv written at the end, a checkpoint (model + optimizer state) after
    every epoch replacing the previous one."""

    def __init__(self, root, name):
        n = 0
        while os.path.exists(os.path.join(root, name, "version_%d" % n)):
            n += 1
        self.dir = os.path.join(root, name, "version_%d" % n)
        os.makedirs(os.path.join(self.dir, "checkpoints"))
        with open(os.path.join(self.dir, "hparams.yaml"), "w") as f:
            f.write("{}\n")
        self.rows = []
        self.ckpt = None

    def row(self, **kv):
        self.rows.append(kv)

    def checkpoint(self, model, opt, epoch, step):
        path = os.path.join(self.dir, "checkpoints", "epoch=%d-step=%d.ckpt" % (epoch, step))
        torch.save({"epoch": epoch, "global_step": step, "state_dict": model.state_dict(),
                    "optimizer_states": [opt.state_dict()]}, path)
        if self.ckpt and self.ckpt != path:
            os.remove(self.ckpt)
        self.ckpt = path

    def finalize(self):
        cols = sorted({k for r in self.rows for k in r})
        self.file = os.path.join(self.dir, "metrics.csv")
        with open(self.file, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(self.rows)


LOG_EVERY_N_STEPS = 50


def fit(a, model, opt, epoch_batches, validate, log, zero_grad):
    """Lightning's fit loop by hand, as both PyTorch peers run it: the sanity check
    (2 validation batches), then per epoch the training batches from
    epoch_batches() with a CSV row every LOG_EVERY_N_STEPS steps, validation, a row
    and a checkpoint. zero_grad() clears the gradients as the peer does. Returns
    train_s, val_s, val_losses (per epoch) and the fit's seconds."""
    t_fit = time.perf_counter()
    validate(2)  # Lightning's sanity check
    train_s, val_s, val_losses = [], [], []
    step = 0
    for epoch in range(a.epochs):
        model.train()
        t = time.perf_counter()
        for batch_idx, (x, y) in enumerate(epoch_batches()):
            if a.limit_train_batches is not None and batch_idx >= a.limit_train_batches:
                break
            y_pred = model(x)
            loss = custom_loss(y_pred, y)
            error = custom_error(y_pred, y)
            zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % LOG_EVERY_N_STEPS == 0:
                log.row(epoch=epoch, step=step - 1, loss=loss.item(), error=error.item())
        train_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        vl, ve = validate(a.limit_val_batches)
        val_s.append(time.perf_counter() - t)
        val_losses.append(vl)
        log.row(epoch=epoch, step=step - 1, val_loss=vl, val_error=ve)
        log.checkpoint(model, opt, epoch, step)
    log.finalize()
    return train_s, val_s, val_losses, time.perf_counter() - t_fit


def report(impl, a, train_s, val_s, val_losses, accuracy, load_s, fit_s, acc_s, log):
    def lst(xs):
        return ",".join("%.6f" % x for x in xs)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("BENCH impl=%s threads=%d epochs=%d train_s=%s val_s=%s val_losses=%s val_loss=%.9g "
          "accuracy=%.6f load_s=%.6f fit_s=%.6f acc_s=%.6f import_s=%.6f peak_rss=%d log=%s"
          % (impl, a.threads, len(train_s), lst(train_s), lst(val_s), lst(val_losses),
             val_losses[-1] if val_losses else float("nan"), accuracy, load_s, fit_s, acc_s,
             IMPORT_S, rss, log), flush=True)


IMPORT_S = time.perf_counter() - T0
