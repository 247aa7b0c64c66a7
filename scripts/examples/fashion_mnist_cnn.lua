-- A CNN on Fashion-MNIST (issue 16): two conv blocks (Conv2d, BatchNorm2d, ReLU,
-- MaxPool2d), then Linear-ReLU-Dropout-Linear; Adam 2e-3 with a cosine schedule
-- over the run, batch 64, cross_entropy on class ids. Target: >= 91 % test
-- accuracy after 6 epochs (it prints the accuracy after each epoch and a last line
-- "RESULT accuracy=... target=0.910 met=true|false").
--
--   build/moonlight scripts/examples/fashion_mnist_cnn.lua [--epochs 6] [--limit N]
--       [--data /usr/share/datasets/fashion-mnist]   (Debian's dataset-fashion-mnist)
--
-- --limit N trains N batches an epoch (tests/lua/examples_spec.lua runs it short).
local ml = require "moonlight"
local nn, F, optim, data = ml.nn, ml.F, ml.optim, ml.data

local opts = {epochs = 6, limit = 0, data = "/usr/share/datasets/fashion-mnist", target = 0.91, batch = 64}
for i = 1, #arg, 2 do
  local k = arg[i]:match("^%-%-(%w+)$")
  if not k or opts[k] == nil or arg[i + 1] == nil then
    error("usage: fashion_mnist_cnn.lua [--epochs N] [--limit N] [--data DIR] [--target FRACTION] [--batch N]", 0)
  end
  opts[k] = tonumber(arg[i + 1]) or arg[i + 1]
end
ml.manual_seed(0)

local CNN = nn.Module:extend("CNN")
function CNN:init()
  self.features = nn.Sequential(
    nn.Conv2d(1, 16, 3, {padding = 1}), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  -- 16 x 14 x 14
    nn.Conv2d(16, 32, 3, {padding = 1}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2)) -- 32 x 7 x 7
  self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(128, 10))
end
function CNN:forward(x) return self.classifier(self.features(x)) end

local T = data.transforms
local train = data.FashionMNIST(opts.data, {train = true, transform = T.ToTensor()})
local test = data.FashionMNIST(opts.data, {train = false, transform = T.ToTensor()})
local loader = data.DataLoader(train, {batch_size = opts.batch, shuffle = true})
local test_loader = data.DataLoader(test, {batch_size = 1000})

local model = CNN()
print(ml.summary(model, {input_size = {opts.batch, 1, 28, 28}}))
local steps = opts.limit > 0 and math.min(opts.limit, #loader) or #loader
local opt = optim.Adam(model:parameters(), {lr = 2e-3})
local sched = optim.lr_scheduler.CosineAnnealingLR(opt, steps * opts.epochs)

local function accuracy()
  model:eval()
  local correct = 0
  ml.no_grad(function()
    for _, b in test_loader:iter() do correct = correct + model(b[1]):argmax(2):eq(b[2]):sum():item() end
  end)
  model:train()
  return correct / #test
end

local acc = 0
for epoch = 1, opts.epochs do
  local t0, loss_sum, n = ml._sys.clock(), 0, 0
  for i, b in loader:iter() do
    if i > steps then break end
    opt:zero_grad()
    local loss = F.cross_entropy(model(b[1]), b[2])
    loss:backward()
    opt:step()
    sched:step()
    loss_sum, n = loss_sum + loss:item(), n + 1
  end
  acc = accuracy()
  print(string.format("epoch %d  train loss %.4f  test accuracy %.4f  (%.1f s)", epoch, loss_sum / n, acc,
                      ml._sys.clock() - t0))
end
print(string.format("RESULT accuracy=%.4f target=%.3f met=%s", acc, opts.target, tostring(acc >= opts.target)))
