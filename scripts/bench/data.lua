-- Benchmark (not a test): one epoch of MNIST batches at batch 128, shuffled,
-- with ToTensor + OneHot(10) gathered in C, and the same with a Lua-function
-- target transform (per-sample calls + stack). Target: <= 30 ms per epoch on the
-- CPU for the first. Run: out/build/moonlight scripts/bench/data.lua [root]
local ml = require "moonlight"
local T = ml.data.transforms

local ok, system = pcall(require, "system")   -- luasystem (installed with busted)
local now = ok and system.monotime or os.clock  -- os.clock counts CPU time of all threads

local root = arg and arg[1] or "data/mnist"
local t0 = now()
local train = ml.data.MNIST(root, {train = true, transform = T.ToTensor(), target_transform = T.OneHot(10)})
print(string.format("load MNIST train (%d samples): %.1f ms", #train, (now() - t0) * 1e3))

local function epochs(loader, n)
  local times = {}
  for e = 1, n do
    local t = now()
    local count = 0
    for _, batch in loader:iter() do count = count + batch[1]:size(1) end
    assert(count == #loader.dataset)
    times[e] = (now() - t) * 1e3
  end
  local first = times[1]
  table.sort(times)
  return first, times[(#times + 1) // 2], times[1]
end

ml.manual_seed(0)
local loader = ml.data.DataLoader(train, {batch_size = 128, shuffle = true})
local first, median, best = epochs(loader, 7)
print(string.format("ToTensor + OneHot, C gather:          first %.1f ms, median %.1f ms, best %.1f ms (%d batches)",
                    first, median, best, #loader))

local eye = ml.eye(10)
local lua_tf = ml.data.MNIST(root, {train = true, transform = T.ToTensor(),
                                    target_transform = function(y) return eye[y + 1] end})
local l2 = ml.data.DataLoader(lua_tf, {batch_size = 128, shuffle = true})
first, median, best = epochs(l2, 5)
print(string.format("ToTensor + Lua function target:       first %.1f ms, median %.1f ms, best %.1f ms",
                    first, median, best))
