-- Benchmark (issue 16): one training epoch of the MNIST CNN
--   Conv2d(1,16,3,padding 1) -> BatchNorm2d -> ReLU -> MaxPool2d(2) -> Conv2d(16,32,3,padding 1)
--   -> BatchNorm2d -> ReLU -> MaxPool2d(2) -> Linear(1568,128) -> ReLU -> Dropout -> Linear(128,10)
-- batch 128, Adam 1e-3, cross_entropy, a plain training loop over a shuffled
-- DataLoader; then the test accuracy. Its PyTorch peer is scripts/bench/cnn_torch.py
-- (the same model, data pipeline and loop). Prints one machine-readable line:
--
--   BENCH impl=moonlight epoch_s=... steps=... accuracy=... train_peak_rss=BYTES peak_rss=BYTES
--
-- (train_peak_rss: the peak resident size when training ends, before the test
-- pass at batch 1000; peak_rss: the whole run's)
--
--   build/moonlight scripts/bench/cnn.lua [--data DIR] [--epochs N] [--limit N] [--seed N] [--test 0|1]
-- (--limit N: N steps an epoch; --test 0: no test pass, for profiles)
local ml = require "moonlight"
local nn, F, optim, data = ml.nn, ml.F, ml.optim, ml.data
local clock = ml._sys.clock

local opts = {data = "data/mnist", epochs = 1, limit = 0, seed = 0, test = 1}
do
  local i = 1
  while arg and arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k or opts[k] == nil or arg[i + 1] == nil then
      error("usage: cnn.lua [--data DIR] [--epochs N] [--limit N] [--seed N] [--test 0|1]", 0)
    end
    opts[k] = math.tointeger(tonumber(arg[i + 1])) or arg[i + 1]
    i = i + 2
  end
end
ml.manual_seed(opts.seed)

local CNN = nn.Module:extend("CNN")
function CNN:init()
  self.features = nn.Sequential(
    nn.Conv2d(1, 16, 3, {padding = 1}), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, {padding = 1}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
  self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(128, 10))
end
function CNN:forward(x) return self.classifier(self.features(x)) end

local T = data.transforms
local train = data.MNIST(opts.data, {train = true, transform = T.ToTensor()})
local test = data.MNIST(opts.data, {train = false, transform = T.ToTensor()})
local loader = data.DataLoader(train, {batch_size = 128, shuffle = true})
local test_loader = data.DataLoader(test, {batch_size = 1000})

local model = CNN()
local opt = optim.Adam(model:parameters(), {lr = 1e-3})
local epoch_s, steps = {}, 0
for _ = 1, opts.epochs do
  model:train()
  local t0 = clock()
  for i, batch in loader:iter() do
    if opts.limit > 0 and i > opts.limit then break end
    opt:zero_grad()
    local loss = F.cross_entropy(model(batch[1]), batch[2])
    loss:backward()
    opt:step()
    steps = steps + 1
  end
  epoch_s[#epoch_s + 1] = clock() - t0
end

local train_peak_rss = ml._sys.peak_rss()
model:eval()
local correct, total = 0, 0
ml.no_grad(function()
  if opts.test == 0 then return end
  for _, batch in test_loader:iter() do
    correct = correct + model(batch[1]):argmax(2):eq(batch[2]):sum():item()
    total = total + batch[2]:numel()
  end
end)
local s = {}
for i, t in ipairs(epoch_s) do s[i] = string.format("%.3f", t) end
print(string.format("BENCH impl=moonlight epoch_s=%s steps=%d accuracy=%.4f train_peak_rss=%d peak_rss=%d",
                    table.concat(s, ","), steps, total > 0 and correct / total or 0 / 0, train_peak_rss,
                    ml._sys.peak_rss()))
