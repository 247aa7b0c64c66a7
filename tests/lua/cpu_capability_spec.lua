-- The portable build (issue 14): the CPU kernels are compiled per ISA level and one
-- set is chosen at run time (src/cpu/capability.h); MOONLIGHT_CPU_CAPABILITY forces
-- a lower one, and every level computes the same numbers within float rounding.
local ml = require "moonlight"

local bin = os.getenv("MOONLIGHT_BIN")

local function capability_under(env)
  local p = assert(io.popen(env .. " " .. bin .. " -e 'io.write(ml.backends.cpu.get_cpu_capability())' 2>&1"))
  local out = p:read("a")
  p:close()
  return out
end

describe("ml.backends.cpu.get_cpu_capability", function()
  it("names the level that runs", function()
    local c = ml.backends.cpu.get_cpu_capability()
    assert.is_truthy(({DEFAULT = true, AVX2 = true, AVX512 = true})[c], c)
  end)

  it("is forced down to the portable kernels by MOONLIGHT_CPU_CAPABILITY=default", function()
    assert.are.equal("DEFAULT", capability_under("MOONLIGHT_CPU_CAPABILITY=default"))
  end)

  it("warns about a level that is not one and keeps the best", function()
    local out = capability_under("MOONLIGHT_CPU_CAPABILITY=sse9")
    assert.matches("MOONLIGHT_CPU_CAPABILITY=sse9 is not a level %(expected default, avx2 or avx512%)", out)
    -- (this spec itself may run under a forced level: the best is a fresh process's)
    local best = capability_under("env -u MOONLIGHT_CPU_CAPABILITY")
    assert.matches(best .. "$", out)
  end)

  it("gives the same training numbers at every level, within float rounding", function()
    -- 20 Adam steps of a small MLP with a softmax and a cross entropy, per level
    local script = [[
      ml.manual_seed(3)
      local nn = ml.nn
      local m = nn.Sequential(nn.Linear(40, 33), nn.ReLU(), nn.Linear(33, 10))
      local opt = ml.optim.Adam(m:parameters(), {lr = 1e-2})
      local x, y = ml.randn({64, 40}), (ml.rand({64}) * 10):long()
      local loss
      for _ = 1, 20 do
        opt:zero_grad(); loss = ml.F.cross_entropy(m(x), y); loss:backward(); opt:step()
      end
      io.write(string.format("%.9g", loss:item()))]]
    local values = {}
    for _, level in ipairs({"default", "avx2", "avx512"}) do
      local p = assert(io.popen("MOONLIGHT_CPU_CAPABILITY=" .. level .. " " .. bin .. " -e '" .. script .. "' 2>/dev/null"))
      values[#values + 1] = tonumber(p:read("a"))
      p:close()
    end
    for i = 2, #values do assert.is_true(math.abs(values[i] - values[1]) < 1e-5 * math.abs(values[1]), tostring(values[i])) end
  end)
end)
