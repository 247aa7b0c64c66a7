-- A CNN on MNIST (issue 16): two conv blocks (Conv2d, BatchNorm2d, ReLU,
-- MaxPool2d), then Linear-ReLU-Dropout(0.25)-Linear; Adam 3e-3 with a cosine schedule
-- over the run, batch 64, cross_entropy on class ids. Target: >= 99.0 % test
-- accuracy after 3 epochs (it prints the accuracy after each epoch and a last line
-- "RESULT accuracy=... target=0.990 met=true|false"). The model and the run are
-- cnn_classifier.lua's, shared with fashion_mnist_cnn.lua.
--
--   build/moonlight scripts/examples/mnist_cnn.lua [--epochs 3] [--limit N] [--data data/mnist]
--
-- --limit N trains N batches an epoch (tests/lua/examples_spec.lua runs it short).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "cnn_classifier.lua")({script = "mnist_cnn.lua", dataset = "MNIST",
                                     epochs = 3, data = "data/mnist", target = 0.99}, arg)
