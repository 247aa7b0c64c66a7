-- A CNN on Fashion-MNIST (issue 16): two conv blocks (Conv2d, BatchNorm2d, ReLU,
-- MaxPool2d), then Linear-ReLU-Dropout(0.25)-Linear; Adam 3e-3 with a cosine schedule
-- over the run, batch 64, cross_entropy on class ids. Target: >= 91 % test
-- accuracy after 6 epochs (it prints the accuracy after each epoch and a last line
-- "RESULT accuracy=... target=0.910 met=true|false"). The model and the run are
-- cnn_classifier.lua's, shared with mnist_cnn.lua.
--
--   build/moonlight scripts/examples/fashion_mnist_cnn.lua [--epochs 6] [--limit N]
--       [--data /usr/share/datasets/fashion-mnist]   (Debian's dataset-fashion-mnist)
--
-- --limit N trains N batches an epoch (tests/lua/examples_spec.lua runs it short).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "cnn_classifier.lua")({script = "fashion_mnist_cnn.lua", dataset = "FashionMNIST",
                                     epochs = 6, data = "/usr/share/datasets/fashion-mnist", target = 0.91}, arg)
