-- Per-batch cost of the data loader's transform paths on MNIST (batch 128,
-- shuffled): the fused C gather, a plain Lua function per sample, the same
-- work as Lambda(fn, {batched = true}), and the augmentation transforms.
-- Configurations run in interleaved rounds (load changes on a shared machine hit
-- every one alike); each line is the median of the rounds.
--   build/moonlight scripts/bench/transforms.lua [batches per round] [rounds]
local ml = require "moonlight"
local data, T = ml.data, ml.data.transforms
local clock = require("moonlight.core")._sys.clock

local per_round = tonumber(arg and arg[1]) or 40
local rounds = tonumber(arg and arg[2]) or 7

local function double(x) return x:float() / 255 end
local configs = {
  {"ToTensor() (fused C gather)", T.ToTensor()},
  {"function(x) return x:float() / 255 end", double},
  {"Lambda(same function, {batched = true})", T.Lambda(double, {batched = true})},
  {"Compose{ToTensor(), function(x) return x * 2 end}", T.Compose({T.ToTensor(), function(x) return x * 2 end})},
  {"Compose{ToTensor(), Lambda(x * 2, batched)}", T.Compose({T.ToTensor(), T.Lambda(function(x) return x * 2 end, {batched = true})})},
  {"RandomCrop(28, {padding = 2}) + ToTensor()", T.Compose({T.RandomCrop(28, {padding = 2}), T.ToTensor()})},
  {"RandomHorizontalFlip() + ToTensor()", T.Compose({T.RandomHorizontalFlip(), T.ToTensor()})},
  {"RandomRotation(10) + ToTensor()", T.Compose({T.RandomRotation(10), T.ToTensor()})},
  {"RandomAffine(10, translate, scale) + ToTensor()",
   T.Compose({T.RandomAffine(10, {translate = {0.1, 0.1}, scale = {0.9, 1.1}}), T.ToTensor()})},
  {"ToTensor() + ColorJitter(0.4, 0.4)", T.Compose({T.ToTensor(), T.ColorJitter(0.4, 0.4)})},
}
local times = {}
for r = 1, rounds do
  for k, c in ipairs(configs) do
    local ds = data.MNIST("data/mnist", {train = true, transform = c[2], target_transform = T.OneHot(10)})
    local loader = data.DataLoader(ds, {batch_size = 128, shuffle = true, seed = r})
    local t0, n = clock(), 0
    for i in loader:iter() do
      n = i
      if i >= per_round then break end
    end
    times[k] = times[k] or {}
    times[k][r] = (clock() - t0) / n
  end
end
for k, c in ipairs(configs) do
  table.sort(times[k])
  print(string.format("%-52s %7.3f ms/batch", c[1], times[k][(rounds + 1) // 2] * 1000))
end
