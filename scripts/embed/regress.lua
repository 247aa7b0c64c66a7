-- The Lua half of scripts/embed/regress.c: a small MLP (1-32-32-1, as
-- nn.Sequential(Linear, ReLU, Linear, ReLU, Linear) would name it) regressing the
-- host's data, trained with a hand-written Adam. The host provides:
--   x, y              float32 tensors [N, 1] over the host's own memory (zero-copy)
--   ml.host.on_epoch  a C function called as on_epoch(epoch, loss); true stops early
--   epochs, batch     numbers
-- Usage: `... regress.lua train CHECKPOINT` trains, saves the weights and returns
-- {loss = ..., epochs = ...}; `... regress.lua predict CHECKPOINT` only loads them.
-- Both define the global predict(x).
local ml = require "moonlight"
local F = ml.F
local mode, checkpoint = ...
assert(mode == "train" or mode == "predict", "regress.lua: mode must be train or predict")
assert(type(checkpoint) == "string", "regress.lua: a checkpoint path is needed")

local names = {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
local params = {}

-- PyTorch's nn.Linear init: weight and bias uniform in +-1/sqrt(fan_in)
local function linear_params(i, fan_in, fan_out)
  local bound = 1 / math.sqrt(fan_in)
  local w = ml.rand({fan_out, fan_in}) * (2 * bound) - bound
  local b = ml.rand({fan_out}) * (2 * bound) - bound
  w.requires_grad = true
  b.requires_grad = true
  params[names[i]], params[names[i + 1]] = w, b
end

local function forward(x)
  local p = params
  local h = F.relu(F.linear(x, p["0.weight"], p["0.bias"]))
  h = F.relu(F.linear(h, p["2.weight"], p["2.bias"]))
  return F.linear(h, p["4.weight"], p["4.bias"])
end

function predict(x)
  return ml.no_grad(forward, x)
end

if mode == "predict" then
  params = ml.load(checkpoint)
  for _, n in ipairs(names) do
    assert(params[n], "regress.lua: the checkpoint has no " .. n)
  end
  return
end

ml.manual_seed(0)
linear_params(1, 1, 32)
linear_params(3, 32, 32)
linear_params(5, 32, 1)

-- Adam (lr 1e-2, betas 0.9 / 0.999, eps 1e-8), as torch.optim.Adam computes it
local lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
local m, v, step = {}, {}, 0
for _, n in ipairs(names) do
  m[n] = ml.zeros_like(params[n])
  v[n] = ml.zeros_like(params[n])
end
local function adam_step()
  step = step + 1
  local c1, c2 = 1 - b1 ^ step, 1 - b2 ^ step
  ml.no_grad(function()
    for _, n in ipairs(names) do
      local p = params[n]
      local g = p.grad
      m[n] = m[n] * b1 + g * (1 - b1)
      v[n] = v[n] * b2 + g:square() * (1 - b2)
      p:add_((m[n] / c1) / ((v[n] / c2):sqrt() + eps), -lr)
      p.grad = nil
    end
  end)
end

local n = x:size(1)
local batch = math.tointeger(batch) or 64
local ran = 0
for epoch = 1, math.tointeger(epochs) or 50 do
  local sum = 0
  for start = 1, n, batch do
    local len = math.min(batch, n - start + 1)
    local xb, yb = x:narrow(1, start, len), y:narrow(1, start, len)
    local loss = (forward(xb) - yb):square():mean()   -- MSE, written by hand
    loss:backward()
    adam_step()
    sum = sum + loss:item() * len
  end
  ran = epoch
  if ml.host.on_epoch(epoch, sum / n) then break end
end

ml.save(params, checkpoint, {format = "pt", epochs = tostring(ran)})
local final = ml.no_grad(function() return (forward(x) - y):square():mean() end)
return {loss = final, epochs = ran}
