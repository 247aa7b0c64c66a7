"""The reference experiment in PyTorch as the Lightning tutorial writes it, Lightning's
loop done by hand (Lightning is not installed): torchvision's MNIST with ToTensor and
a one-hot target_transform (np.eye(10)[y], float64 as the tutorial's), a
DataLoader(batch_size=128, shuffle=True), the 784-64-32-10 MLP, the user's MSE, Adam
1e-3, two sanity-check validation batches, validation on the test set after every
epoch, a CSV log and a checkpoint per epoch; then the test accuracy. Prints a BENCH line.

  /usr/bin/python3 scripts/bench/torch_tutorial.py [--threads 1] [--epochs 3] [--data DIR]
"""
import os
import shutil
import tempfile
import time

from torch_common import T0, Log, Model, custom_error, custom_loss, fit, parse_args, report

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST



class Onehot(object):
    def __call__(self, sample):
        return np.eye(10)[sample]


def main():
    a = parse_args(__doc__)
    t_load = time.perf_counter()
    # torchvision wants root/MNIST/raw/<the four files>; link them into a temp dir
    root = tempfile.mkdtemp(prefix="bench_mnist_")
    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw)
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        os.symlink(os.path.abspath(os.path.join(a.data, f)), os.path.join(raw, f))
    train_data = MNIST(root, train=True, download=False, transform=transforms.ToTensor(),
                       target_transform=Onehot())
    test_data = MNIST(root, train=False, download=False, transform=transforms.ToTensor(),
                      target_transform=Onehot())
    train_loader = DataLoader(train_data, batch_size=128, shuffle=True)
    test_loader = DataLoader(test_data, batch_size=128)
    t_load = time.perf_counter() - t_load

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    log = Log(a.logs, "torch_tutorial")

    def validate(max_batches):
        model.eval()
        loss_sum, err_sum, n = 0.0, 0.0, 0
        with torch.no_grad():
            for i, (x, y) in enumerate(test_loader):
                if max_batches is not None and i >= max_batches:
                    break
                y_pred = model(x)
                bs = x.shape[0]
                loss_sum += custom_loss(y_pred, y).item() * bs
                err_sum += custom_error(y_pred, y).item() * bs
                n += bs
        model.train()
        return loss_sum / n, err_sum / n

    def epoch_batches():
        return train_loader

    train_s, val_s, val_losses, t_fit = fit(a, model, opt, epoch_batches, validate, log,
                                            opt.zero_grad)

    t_acc = time.perf_counter()
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += (model(x).argmax(1) == y.argmax(1)).sum().item()
            total += x.shape[0]
    t_acc = time.perf_counter() - t_acc
    shutil.rmtree(root)
    report("torch_tutorial", a, train_s, val_s, val_losses, correct / total, t_load, t_fit, t_acc,
           log.file)


if __name__ == "__main__":
    main()
