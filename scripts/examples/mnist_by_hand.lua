-- The reference experiment by hand, with no nn, optim or Trainer: the tensor API
-- and autograd only. MNIST with ToTensor + OneHot(10), a 784-64-32-10 MLP with softmax output,
-- the user's MSE loss, Adam (lr 1e-3) written with tensor ops, batch 128, 3
-- epochs, train loss and val_loss (the test set) per epoch.
-- Run: build/moonlight scripts/examples/mnist_by_hand.lua [root]
local ml = require "moonlight"
local data, T = ml.data, ml.data.transforms

local ok, system = pcall(require, "system")
local now = ok and system.monotime or os.clock

local root = arg and arg[1] or "data/mnist"
ml.manual_seed(42)
local tf = {transform = T.ToTensor(), target_transform = T.OneHot(10)}
local train = data.MNIST(root, {train = true, transform = tf.transform, target_transform = tf.target_transform})
local test = data.MNIST(root, {train = false, transform = tf.transform, target_transform = tf.target_transform})
local train_loader = data.DataLoader(train, {batch_size = 128, shuffle = true})
local val_loader = data.DataLoader(test, {batch_size = 128})

-- nn.Linear's initialisation: weight [out, in] and bias [out] ~ U(-1/sqrt(in), 1/sqrt(in))
local function linear(n_in, n_out)
  local bound = 1 / math.sqrt(n_in)
  local w = (ml.rand({n_out, n_in}) * (2 * bound) - bound):detach()
  local b = (ml.rand({n_out}) * (2 * bound) - bound):detach()
  w.requires_grad = true
  b.requires_grad = true
  return {weight = w, bias = b}
end

local layers = {linear(784, 64), linear(64, 32), linear(32, 10)}
local params = {}
for _, l in ipairs(layers) do
  params[#params + 1] = l.weight
  params[#params + 1] = l.bias
end

local function forward(x)
  local h = x:view({x:size(1), 784})
  for i, l in ipairs(layers) do
    h = h:matmul(l.weight:t()) + l.bias
    if i < #layers then h = h:relu() end
  end
  return ml.F.softmax(h, 2)
end

-- the user's custom loss
local function custom_loss(pred, y) return ((pred - y):square()):mean() end

-- torch.optim.Adam(lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8)
local lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
local m, v, step = {}, {}, 0
for i, p in ipairs(params) do
  m[i] = ml.zeros(p:shape())
  v[i] = ml.zeros(p:shape())
end
local function adam_step()
  step = step + 1
  local c1, c2 = 1 - b1 ^ step, 1 - b2 ^ step
  ml.no_grad(function()
    for i, p in ipairs(params) do
      local g = p.grad
      m[i]:copy_(m[i] * b1 + g * (1 - b1))
      v[i]:copy_(v[i] * b2 + g:square() * (1 - b2))
      local denom = (v[i] / c2):sqrt() + eps
      p:add_((m[i] / denom), -lr / c1)
      p.grad = nil
    end
  end)
end

local function evaluate(loader)
  local total, n = 0, 0
  ml.no_grad(function()
    for _, batch in loader:iter() do
      local b = batch[1]:size(1)
      total = total + custom_loss(forward(batch[1]), batch[2]):item() * b
      n = n + b
    end
  end)
  return total / n
end

for epoch = 1, 3 do
  local t0 = now()
  local total, n = 0, 0
  for _, batch in train_loader:iter() do
    local x, y = batch[1], batch[2]
    local loss = custom_loss(forward(x), y)
    loss:backward()
    adam_step()
    total = total + loss:item() * x:size(1)
    n = n + x:size(1)
  end
  local train_time = now() - t0
  local val_loss = evaluate(val_loader)
  print(string.format("epoch %d  train_loss %.6f  val_loss %.6f  (%.2f s)", epoch, total / n, val_loss,
                      train_time))
end
