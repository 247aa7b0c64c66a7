-- GPU benchmark, first version: one MNIST-sized epoch of the reference MLP
-- (784-64-32-10, ReLU, softmax, MSE against one-hot targets, batch 128) with the
-- data already on the device, SGD written with tensor ops (the optimizers and the
-- Trainer come later; this grows with them). Random data of MNIST's shape, so it
-- needs no files.   moonlight scripts/bench/gpu.lua [devices...]   (default: cuda cpu)
local ml = require "moonlight"
local F = ml.F

local function now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("*l"))
  p:close()
  return t
end

local function sync(dev) if dev == "cuda" then ml.cuda.synchronize() end end

local function epoch(dev, n, batch, lr)
  ml.manual_seed(0)
  local x = ml.rand({n, 784}):to(dev)
  local labels = (ml.rand({n, 1}) * 10):long():float()
  local y = labels:eq(ml.arange(10)):float():to(dev) -- one-hot [n, 10]
  local function param(shape, fan_in)
    local bound = 1 / math.sqrt(fan_in)
    return (ml.rand(shape) * (2 * bound) - bound):to(dev):detach():requires_grad_(true)
  end
  local w1, b1 = param({64, 784}, 784), param({64}, 784)
  local w2, b2 = param({32, 64}, 64), param({32}, 64)
  local w3, b3 = param({10, 32}, 32), param({10}, 32)
  local params = {w1, b1, w2, b2, w3, b3}
  local steps = math.ceil(n / batch)
  local function step(i)
    local start = (i - 1) * batch + 1
    local len = math.min(batch, n - start + 1)
    local xb, yb = x:narrow(1, start, len), y:narrow(1, start, len)
    local h = F.relu(F.linear(xb, w1, b1))
    h = F.relu(F.linear(h, w2, b2))
    local p = F.softmax(F.linear(h, w3, b3), -1)
    local loss = ((p - yb) ^ 2):mean()
    loss:backward()
    ml.no_grad(function()
      for _, w in ipairs(params) do
        w:add_(w.grad * -lr)
        w.grad = nil
      end
    end)
    return loss
  end
  step(1) -- warm-up: cuBLAS handle, allocator cache
  sync(dev)
  local t0 = now()
  local loss
  for i = 1, steps do loss = step(i) end
  local last = loss:item() -- waits for the device
  local dt = now() - t0
  return dt, steps, last
end

local devices = {...}
if #devices == 0 then devices = {"cuda", "cpu"} end
for _, dev in ipairs(devices) do
  if dev == "cuda" and not ml.cuda.is_available() then
    print("cuda: SKIPPED (no CUDA device)")
  else
    local dt, steps, loss = epoch(dev, 60000, 128, 0.5)
    print(("%s: one epoch of %d steps (batch 128) in %.1f ms, %.0f steps/s, last loss %.6f%s"):format(
      dev, steps, dt * 1000, steps / dt, loss,
      dev == "cuda" and (", %.1f MiB reserved"):format(ml.cuda.memory_reserved() / 2 ^ 20) or ""))
  end
end
