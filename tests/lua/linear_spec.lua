-- ml.linear reads its operands in place (frame views, no tensor structs) and, with
-- a bias, fills the output rows with it before adding the product (src/ops/matmul.c):
-- every input layout and row count against a float64 reference, the degenerate
-- sizes, and the gradients.
local ml = require "moonlight"

local function max_abs_diff(a, b)
  return (a:double() - b:double()):abs():max():item()
end

local function reference(x, w, b)
  local in_f = w:shape()[2]
  local xs = x:shape()
  local lead = {}
  for i = 1, #xs - 1 do lead[i] = xs[i] end
  local y = x:double():reshape({-1, in_f}):matmul(w:double():t())
  if b then y = y + b:double() end
  lead[#lead + 1] = w:shape()[1]
  return y:reshape(lead)
end

describe("linear", function()
  ml.manual_seed(11)
  -- rows 1, 2, 37 (the bias fill doubles 1, 2, 4, ... rows: odd counts end part way)
  for _, s in ipairs({{{1, 5}, 3}, {{2, 5}, 3}, {{37, 13}, 10}, {{128, 32}, 10}, {{2, 5, 7}, 4}, {{7}, 3}}) do
    local xshape, out_f = s[1], s[2]
    local in_f = xshape[#xshape]
    it(("x %s, %d outputs, with and without bias, every layout"):format(table.concat(xshape, "x"), out_f), function()
      local x, w, b = ml.randn(xshape), ml.randn({out_f, in_f}), ml.randn({out_f})
      local wt = w:t():contiguous():t() -- the same weight as a transposed view
      local xs = {x}
      if #xshape == 2 then xs[2] = x:t():contiguous():t() end -- non-contiguous input
      for _, xx in ipairs(xs) do
        for _, ww in ipairs({w, wt}) do
          local y = ml.linear(xx, ww, b)
          assert.are.same(reference(x, w, b):shape(), y:shape())
          assert.is_true(max_abs_diff(y, reference(x, w, b)) < 1e-4)
          assert.is_true(max_abs_diff(ml.linear(xx, ww), reference(x, w)) < 1e-4)
        end
      end
    end)
  end

  it("with no input features gives the bias in every row (torch)", function()
    local y = ml.linear(ml.zeros({3, 0}), ml.zeros({2, 0}), ml.tensor({1, 2}))
    assert.are.same({{1, 2}, {1, 2}, {1, 2}}, y:totable())
    assert.are.same({{0, 0}, {0, 0}, {0, 0}}, ml.linear(ml.zeros({3, 0}), ml.zeros({2, 0})):totable())
    assert.are.same({0, 2}, ml.linear(ml.zeros({0, 4}), ml.zeros({2, 4}), ml.ones({2})):shape())
  end)

  it("gives float64 gradients that pass gradcheck", function()
    local x = ml.randn({5, 4}, {dtype = "float64", requires_grad = true})
    local w = ml.randn({3, 4}, {dtype = "float64", requires_grad = true})
    local b = ml.randn({3}, {dtype = "float64", requires_grad = true})
    assert.is_true(ml.testing.gradcheck(function(xx, ww, bb) return ml.linear(xx, ww, bb) end, {x, w, b}))
    local x3 = ml.randn({2, 3, 4}, {dtype = "float64", requires_grad = true})
    assert.is_true(ml.testing.gradcheck(function(xx, ww, bb) return ml.linear(xx, ww, bb) end, {x3, w, b}))
  end)
end)
