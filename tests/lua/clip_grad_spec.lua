-- ml.nn.utils.clip_grad_norm_ / clip_grad_value_ against PyTorch 1.13's
-- torch.nn.utils (tests/fixtures/clip_grad.lua, written by
-- scripts/fixtures/gen_clip_grad.py): the total norm returned and the gradients
-- after, for several max_norm and norm_type, a parameter without a gradient,
-- and error_if_nonfinite.
local ml = require "moonlight"
local utils = ml.nn.utils
local fx = dofile("tests/fixtures/clip_grad.lua")

local function params(missing)
  local ps = {}
  for i, g in ipairs(fx.grads) do
    ps[i] = ml.zeros(g.shape, {requires_grad = true})
    if not (missing and i == 3) then ps[i].grad = ml.tensor(g.data) end
  end
  return ps
end

local function close(a, b, what)
  local d = math.abs(a - b)
  if d > 1e-6 + 1e-5 * math.abs(b) then error(("%s: %.9g, PyTorch %.9g"):format(what, a, b), 2) end
end

local function flat(t, out)
  out = out or {}
  if type(t) == "table" then for _, v in ipairs(t) do flat(v, out) end else out[#out + 1] = t end
  return out
end

local function same_grads(ps, expected, label)
  for i, p in ipairs(ps) do
    if expected[i] == false then
      assert.is_nil(p.grad, label .. ": param " .. i .. " keeps no gradient")
    else
      local a, e = flat(p.grad:totable()), flat(expected[i].data)
      assert.are.equal(#e, #a)
      for k = 1, #e do close(a[k], e[k], ("%s: param %d element %d"):format(label, i, k)) end
    end
  end
end

describe("nn.utils.clip_grad_norm_", function()
  for _, c in ipairs(fx.cases) do
    if c.kind == "norm" then
      local label = ("max_norm %s, norm_type %s%s"):format(c.max_norm, c.norm_type, c.missing and ", a missing grad" or "")
      it("matches PyTorch: " .. label, function()
        local ps = params(c.missing)
        local total = utils.clip_grad_norm_(ps, c.max_norm, {norm_type = c.norm_type})
        assert.are.same({}, total:shape())
        assert.are.equal("float32", total.dtype)
        close(total:item(), c.total, label .. ": total norm")
        same_grads(ps, c.grads, label)
      end)
    end
  end

  it("takes norm_type as the third argument, a single tensor, and math.huge for inf", function()
    local ps = params()
    local a = utils.clip_grad_norm_(ps, 1.0, 1.0):item()
    local qs = params()
    local b = utils.clip_grad_norm_(qs, 1.0, {norm_type = 1}):item()
    assert.are.equal(a, b)
    local w = ml.zeros({2}, {requires_grad = true})
    w.grad = ml.tensor({3.0, 4.0})
    assert.are.equal(5.0, utils.clip_grad_norm_(w, 10.0):item())
    assert.are.same({3.0, 4.0}, w.grad:totable()) -- below max_norm: untouched
    assert.are.equal(4.0, utils.clip_grad_norm_(w, 10.0, math.huge):item())
    assert.are.equal(0.0, utils.clip_grad_norm_({ml.zeros({1}, {requires_grad = true})}, 1.0):item())
  end)

  it("raises on a non-finite norm with error_if_nonfinite, else scales by it", function()
    local w = ml.zeros({2}, {requires_grad = true})
    w.grad = ml.tensor({0 / 0, 1.0})
    local ok, e = pcall(utils.clip_grad_norm_, {w}, 1.0, {error_if_nonfinite = true})
    assert.is_false(ok)
    assert.matches("clip_grad_norm_: The total norm of order 2.0 for gradients from `parameters` is non-finite", e, 1, true)
    local total = utils.clip_grad_norm_({w}, 1.0)
    assert.is_true(total:item() ~= total:item())
    ok, e = pcall(utils.clip_grad_norm_, {w}, 1.0, {norm_typ = 2})
    assert.matches("clip_grad_norm_: unknown option 'norm_typ'", e, 1, true)
    ok, e = pcall(utils.clip_grad_norm_, {w, 3}, 1.0)
    assert.matches("clip_grad_norm_: parameters[2] is a number, expected a tensor", e, 1, true)
  end)
end)

describe("nn.utils.clip_grad_value_", function()
  for _, c in ipairs(fx.cases) do
    if c.kind == "value" then
      it("matches PyTorch: clip_value " .. c.clip_value, function()
        local ps = params()
        assert.is_nil(utils.clip_grad_value_(ps, c.clip_value))
        same_grads(ps, c.grads, "clip_value " .. c.clip_value)
      end)
    end
  end
end)
