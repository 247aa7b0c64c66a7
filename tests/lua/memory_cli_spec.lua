-- Memory stays flat under the CLI too, whose Lua state runs the generational
-- collector stepped by tensor bytes (src/lua/util.c), and under a script that
-- switches the collector back to incremental mode: 3000 steps of a small MLP trained
-- by hand, each step's batch kept for 100 steps (as a script that keeps recent
-- batches or outputs does: such tensors live through minor collections, become old
-- and need the periodic full collection once dead), RSS read from /proc/self/statm
-- inside the script.
local bin = os.getenv("MOONLIGHT_BIN") or "build/moonlight"
local sanitized = (os.getenv("LD_PRELOAD") or ""):match("asan") ~= nil

local script = [[
local ml = require "moonlight"
local mode = arg[1]
if mode ~= "default" then collectgarbage(mode) end
local function rss_mb()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("n", "n")
  f:close()
  return resident * 4096 / 2 ^ 20
end
ml.manual_seed(1)
local function param(...) local p = ml.randn({...}) * 0.1; p.requires_grad = true; return p end
local w1, b1, w2, b2 = param(64, 196), param(64), param(10, 64), param(10)
local params = {w1, b1, w2, b2}
local steps, at500, first, loss = tonumber(arg[2]), nil, nil, nil
local recent = {}
for step = 1, steps do
  local x, y = ml.randn({32, 196}), ml.rand({32, 10})
  recent[step % 100] = x
  local h = ml.linear(x, w1, b1):relu()
  loss = ((ml.linear(h, w2, b2):softmax(2) - y) ^ 2):mean()
  loss:backward()
  ml.no_grad(function()
    for _, p in ipairs(params) do p:add_(p.grad, -0.5); p.grad = nil end
  end)
  if step == 1 then first = loss:item() end
  if step == 500 then at500 = rss_mb() end
end
print(string.format("growth=%.2f", rss_mb() - (at500 or rss_mb())))
]]

-- Runs text as a script under the CLI with args; returns the growth it printed.
local function growth_of(text, args)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local p = io.popen(string.format("%s %s %s 2>&1", bin, path, args))
  local out = p:read("a")
  p:close()
  os.remove(path)
  local growth = tonumber(out:match("growth=(%-?[%d.]+)"))
  assert.is_not_nil(growth, out)
  return growth
end

describe("memory under the CLI", function()
  for _, mode in ipairs({"default", "incremental", "generational"}) do
    it("stays flat over 3000 steps (" .. mode .. " collector)", function()
      local growth = growth_of(script, string.format("%s %d", mode, sanitized and 600 or 3000))
      if not sanitized then
        assert.is_true(growth < 20, string.format("RSS grew by %.1f MB between step 500 and the end", growth))
      end
    end)
  end
end)

-- A chain of large layers (32 MiB each) after a loop at small sizes: before each
-- large tensor the CLI's collect hook runs a full collection (src/lua/util.c), so
-- the layer's input from two layers back, dead since, comes back to the
-- allocator's cache in time: about two activations resident, not four (the
-- collection after each output is handed to Lua comes one layer too early).
local chain = [[
local ml = require "moonlight"
for _ = 1, 50 do local a = ml.randn({256, 1024}); local b = a * 2; local _ = b:relu() end
local base = ml._sys.peak_rss()
ml.no_grad(function()
  for _ = 1, 4 do
    local x = ml.randn({8, 1024, 1024})
    for _ = 1, 6 do x = (x * 1.01):relu() end
  end
end)
print(string.format("growth=%.1f", (ml._sys.peak_rss() - base) / 2 ^ 20))
]]

describe("large tensors under the CLI", function()
  it("a chain of 32 MiB layers keeps about two of them resident", function()
    local growth = growth_of(chain, "")
    if not sanitized then
      assert.is_true(growth < 112, string.format("peak RSS grew by %.1f MiB (3.5 activations)", growth))
    end
  end)
end)
