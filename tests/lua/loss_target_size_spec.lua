-- mse_loss, l1_loss and smooth_l1_loss broadcast an input against a target of
-- another size, as torch does; an input [N, 1] against a target [N] then gives an
-- [N, N] loss (the classic regression bug). Like torch they warn, on stderr, once
-- per call site (the user's line, also through nn.MSELoss & co.); in strict mode
-- (ml.set_strict_shapes(true), or ML_STRICT_SHAPES=1) it is an error.
local ml = require "moonlight"
local F = ml.F

local bin = os.getenv("MOONLIGHT_BIN") or "build/moonlight"

-- runs a script with the CLI; returns its stderr, its stdout and its exit status
local function run(text, env)
  local script, errf = os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(text)
  f:close()
  local p = io.popen(("%s %s %s 2>%s; echo \"rc=$?\""):format(env or "", bin, script, errf))
  local out = p:read("a")
  p:close()
  local ef = assert(io.open(errf))
  local err = ef:read("a")
  ef:close()
  os.remove(script)
  os.remove(errf)
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return err, out:gsub("rc=%d+%s*$", ""), rc, script
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

local SCRIPT = [[
local ml = require "moonlight"
local F = ml.F
local x, y = ml.randn({4, 1}), ml.randn({4})
for _ = 1, 3 do F.mse_loss(x, y) end
F.l1_loss(x, y)
local crit = ml.nn.SmoothL1Loss()
crit(x, y)
F.mse_loss(x, x)
F.mse_loss(y, y)
print(F.mse_loss(x, y, {reduction = "none"}):shape()[2])
]]

local WARNING = "warning: %s: Using a target size %%(%%[4%%]%%) that is different to the input " ..
                "size %%(%%[4, 1%%]%%)%%. This will likely lead to incorrect results due to " ..
                "broadcasting%%. Please ensure they have the same size%%."

describe("a target size that differs from the input's", function()
  it("warns on stderr once per call site, at the user's line, and still broadcasts as torch", function()
    local err, out, rc, script = run(SCRIPT)
    assert.are.equal(0, rc, err)
    assert.are.equal("4\n", out) -- [4, 1] against [4]: [4, 4], as torch
    assert.are.equal(4, count(err, "warning:"), err) -- lines 4, 5, 7 and 10
    local src = script:gsub("%p", "%%%0")
    assert.matches(src .. ":4: " .. WARNING:format("mse_loss"), err)
    assert.matches(src .. ":5: " .. WARNING:format("l1_loss"), err)
    -- through nn.SmoothL1Loss: the user's line, not lua/moonlight/nn.lua's
    assert.matches(src .. ":7: " .. WARNING:format("smooth_l1_loss"), err)
    assert.matches(src .. ":10: " .. WARNING:format("mse_loss"), err)
    assert.is_nil(err:find("moonlight/nn.lua", 1, true))
  end)

  it("is an error in strict mode (ml.set_strict_shapes)", function()
    local x, y = ml.randn({4, 1}), ml.randn({4})
    assert.is_false(ml.get_strict_shapes())
    assert.is_false(ml.set_strict_shapes(true))
    local ok, err = pcall(F.mse_loss, x, y)
    ml.set_strict_shapes(false)
    assert.is_false(ok)
    assert.matches("mse_loss: target size %[4%] is different to the input size %[4, 1%]", err)
    -- same shapes are fine either way, and the other losses are not concerned
    ml.set_strict_shapes(true)
    local l = F.mse_loss(x, x)
    local k = F.kl_div(ml.randn({4, 3}), ml.rand({3}))
    ml.set_strict_shapes(false)
    assert.are.equal(0, l:item())
    assert.are.same({}, k:shape())
    assert.has_error(function() ml.set_strict_shapes("yes") end)
  end)

  it("is an error in strict mode from ML_STRICT_SHAPES=1, naming the user's line", function()
    local err, _, rc, script = run(SCRIPT, "ML_STRICT_SHAPES=1")
    assert.are_not.equal(0, rc)
    local src = script:gsub("%p", "%%%0")
    assert.matches(src .. ":4: mse_loss: target size %[4%] is different to the input size %[4, 1%]", err)
    assert.are.equal(0, count(err, "warning:"), err)
  end)
end)
