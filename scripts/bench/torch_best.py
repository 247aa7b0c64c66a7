"""The reference experiment in PyTorch at its best on a CPU: the IDX files read with
numpy, the whole dataset preloaded as float32 tensors (x / 255, one-hot targets as
float32), batches taken by index from a randperm, the 784-64-32-10 MLP, the user's MSE,
Adam 1e-3 with zero_grad(set_to_none=True), two sanity-check validation batches,
validation on the test set after every epoch, a CSV log and a checkpoint per epoch
(the same work as the Lightning loop); then the test accuracy. Prints a BENCH line.

  /usr/bin/python3 scripts/bench/torch_best.py [--threads 1] [--epochs 3] [--data DIR]
"""
import time

from torch_common import Log, Model, custom_error, custom_loss, fit, load_mnist, parse_args, report

import torch

BATCH = 128


def load(data, prefix):
    x, y = load_mnist(data, prefix)
    return x, torch.eye(10)[y]


def main():
    a = parse_args(__doc__)
    t_load = time.perf_counter()
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    t_load = time.perf_counter() - t_load
    n_train, n_test = xtr.shape[0], xte.shape[0]

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = Log(a.logs, "torch_best")

    def validate(max_batches):
        model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64)
        err_sum = torch.zeros((), dtype=torch.float64)
        with torch.no_grad():
            for i, s in enumerate(range(0, n_test, BATCH)):
                if max_batches is not None and i >= max_batches:
                    break
                x, y = xte[s:s + BATCH], yte[s:s + BATCH]
                y_pred = model(x)
                loss_sum += custom_loss(y_pred, y) * x.shape[0]
                err_sum += custom_error(y_pred, y) * x.shape[0]
                n = s + x.shape[0]
        model.train()
        return loss_sum.item() / n, err_sum.item() / n

    def epoch_batches():  # batches by index from a fresh permutation each epoch
        perm = torch.randperm(n_train)
        for s in range(0, n_train, BATCH):
            idx = perm[s:s + BATCH]
            yield xtr[idx], ytr[idx]

    train_s, val_s, val_losses, t_fit = fit(a, model, opt, epoch_batches, validate, log,
                                            lambda: opt.zero_grad(set_to_none=True))

    t_acc = time.perf_counter()
    model.eval()
    with torch.no_grad():
        correct = sum((model(xte[s:s + BATCH]).argmax(1) == yte[s:s + BATCH].argmax(1)).sum().item()
                      for s in range(0, n_test, BATCH))
    t_acc = time.perf_counter() - t_acc
    report("torch_best", a, train_s, val_s, val_losses, correct / n_test, t_load, t_fit, t_acc, log.file)


if __name__ == "__main__":
    main()
