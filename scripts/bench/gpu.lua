-- GPU benchmark on the real stack (scripts/bench/gpu_torch.py does the same steps
-- in PyTorch; scripts/gpu-check.sh prints both and the ratios):
--   1. one epoch (469 steps) of the reference MLP: nn.Sequential 784-64-32-10 with
--      ReLU and Softmax, F.mse_loss against one-hot targets, optim.Adam (lr 1e-3),
--      a shuffling DataLoader (batch 128) with device = "cuda", so each batch is
--      gathered on the device from the uint8 dataset (ToTensor and OneHot fused
--      into the gathers). MNIST from data/mnist when it is there, else IDX files
--      of MNIST's shape with random bytes (the GPU machine has no data files).
--   2. a large MLP: 3 Linear layers 4096 wide, batch 4096, ReLU, MSE, Adam:
--      milliseconds per step, full float32 and TF32 matmuls.
--   3. device memory (ml.cuda.memory_allocated) before and after 10,000 steps of
--      the reference MLP: it must stay flat.
-- Lines "RESULT <name> <value>" are what gpu-check.sh compares.
--   moonlight scripts/bench/gpu.lua [devices...]   (default: cuda cpu; the large
--   MLP and the memory check run on cuda only)
local ml = require "moonlight"
local nn, F, optim, data = ml.nn, ml.F, ml.optim, ml.data
local T = data.transforms
local has_bench, bench = pcall(require, "moonlight.bench") -- the CLI's peers

local now = has_bench and bench.now or function()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("*l"))
  p:close()
  return t
end

local function sync(dev) if dev == "cuda" then ml.cuda.synchronize() end end

local function result(name, value, unit)
  print(("RESULT %s %.4f %s"):format(name, value, unit or "ms"))
end

-- IDX files of MNIST's shape: 4096 random rows, written in a random order
local function synthetic_mnist(dir)
  os.execute("mkdir -p " .. dir)
  local n = 60000
  local function be32(v)
    return string.char(v >> 24 & 255, v >> 16 & 255, v >> 8 & 255, v & 255)
  end
  math.randomseed(7)
  local rows = {}
  for r = 1, 4096 do
    local b = {}
    for j = 1, 784 do b[j] = math.random(0, 255) end
    rows[r] = string.char(table.unpack(b))
  end
  local f = assert(io.open(dir .. "/train-images-idx3-ubyte", "wb"))
  f:write(be32(0x803), be32(n), be32(28), be32(28))
  for _ = 1, n do f:write(rows[math.random(1, 4096)]) end
  f:close()
  local labels = {}
  for i = 1, n do labels[i] = string.char(math.random(0, 9)) end
  f = assert(io.open(dir .. "/train-labels-idx1-ubyte", "wb"))
  f:write(be32(0x801), be32(n), table.concat(labels))
  f:close()
  return dir
end

local function mnist_root()
  local f = io.open("data/mnist/train-images-idx3-ubyte", "rb")
  if f then
    f:close()
    return "data/mnist", "MNIST"
  end
  return synthetic_mnist("build-gpu/bench-mnist"), "random bytes of MNIST's shape"
end

local function reference_model(dev)
  ml.manual_seed(0)
  local m = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                          nn.Linear(32, 10), nn.Softmax(-1))
  return m:to(dev)
end

local function train_step(model, opt, batch)
  opt:zero_grad()
  local loss = F.mse_loss(model(batch[1]), batch[2])
  loss:backward()
  opt:step()
  return loss
end

local root, what = mnist_root()
local train = data.MNIST(root, {train = true, transform = T.ToTensor(), target_transform = T.OneHot(10)})

local function epoch(dev)
  local model = reference_model(dev)
  local opt = optim.Adam(model:parameters(), {lr = 1e-3})
  local loader = data.DataLoader(train, {batch_size = 128, shuffle = true, seed = 1, device = dev})
  -- warm-up: cuBLAS handle, allocator cache, the embedded modules
  for i, b in loader:iter() do
    train_step(model, opt, b)
    if i == 20 then break end
  end
  sync(dev)
  local t0, loss, steps = now(), nil, 0
  for _, b in loader:iter() do
    loss = train_step(model, opt, b)
    steps = steps + 1
  end
  local last = loss:item() -- waits for the device
  local dt = now() - t0
  print(("%s: one epoch of %d steps (batch 128, %s) in %.1f ms, %.0f steps/s, last loss %.6f"):format(
    dev, steps, what, dt * 1000, steps / dt, last))
  result(dev .. "_mlp_epoch_ms", dt * 1000)
  return model, opt, loader
end

local function large_mlp(dev, precision)
  ml.set_float32_matmul_precision(precision)
  ml.manual_seed(1)
  local width, batch = 4096, 4096
  local model = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                              nn.Linear(width, width)):to(dev)
  local opt = optim.Adam(model:parameters(), {lr = 1e-4})
  local x, y = ml.randn({batch, width}):to(dev), ml.randn({batch, width}):to(dev)
  local b = {x, y}
  for _ = 1, 3 do train_step(model, opt, b) end
  sync(dev)
  local n = 20
  local t0 = now()
  local loss
  for _ = 1, n do loss = train_step(model, opt, b) end
  loss:item()
  local ms = (now() - t0) * 1000 / n
  ml.set_float32_matmul_precision("highest")
  print(("%s: large MLP (3 x Linear %d, batch %d, Adam) %.2f ms/step with matmul precision %q"):format(
    dev, width, batch, ms, precision))
  result(dev .. "_large_mlp_step_ms_" .. precision, ms)
end

local function memory_flat(model, opt, loader)
  local function allocated()
    collectgarbage()
    collectgarbage()
    ml.cuda.synchronize()
    return ml.cuda.memory_allocated()
  end
  local steps, target = 0, 10000
  local before
  local t0 = now()
  while steps < target do
    for _, b in loader:iter() do
      train_step(model, opt, b)
      steps = steps + 1
      if steps == 100 then before = allocated() end
      if steps >= target then break end
    end
  end
  local after = allocated()
  local dt = now() - t0
  print(("cuda: memory_allocated %d bytes after 100 steps, %d after %d steps (%s); %.1f s, reserved %.1f MiB"):format(
    before, after, steps, after <= before and "flat" or "GREW", dt, ml.cuda.memory_reserved() / 2 ^ 20))
  result("cuda_memory_growth_bytes", after - before, "bytes")
  return after <= before
end

local devices = {...}
if #devices == 0 then devices = {"cuda", "cpu"} end
local ok = true
for _, dev in ipairs(devices) do
  if dev == "cuda" and not ml.cuda.is_available() then
    print("cuda: SKIPPED (no CUDA device)")
  else
    local model, opt, loader = epoch(dev)
    if dev == "cuda" then
      ok = memory_flat(model, opt, loader) and ok
      large_mlp(dev, "highest")
      large_mlp(dev, "high")
    end
  end
end
os.exit(ok and 0 or 1)
