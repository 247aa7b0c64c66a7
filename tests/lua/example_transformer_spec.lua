-- scripts/examples/transformer_sort.lua, shortened: 150 training steps must take
-- the held-out loss from ln 30 = 3.4 (guessing) below 1.5 (the full run's target,
-- >= 97 % of sequences sorted exactly, is the script's own check), and a missed
-- target must fail the script.
local bin = os.getenv("MOONLIGHT_BIN") or "build/moonlight"

local function run(args)
  local p = io.popen(bin .. " scripts/examples/transformer_sort.lua " .. args .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

describe("the Transformer example", function()
  it("learns to sort in a shortened run", function()
    local ok, out = run("--steps 150 --min-accuracy 0 --max-loss 1.5")
    assert(ok, out)
    local loss = tonumber(out:match("held%-out: loss (%S+),"))
    assert(loss and loss < 1.5, out)
    assert.matches("target reached", out, 1, true)
  end)

  it("fails when its target is missed", function()
    local ok, out = run("--steps 2 --min-accuracy 0.99 --max-loss 0.01")
    assert.is_falsy(ok)
    assert.matches("target missed", out, 1, true)
  end)
end)
