-- ml.cat / ml.stack: shapes, dtype promotion, gradients (also through the tree
-- of nodes a join of more than four differentiable tensors becomes), errors.
local ml = require "moonlight"

describe("cat and stack", function()
  it("joins along a 1-based dim", function()
    local a, b = ml.tensor({{1, 2}, {3, 4}}), ml.tensor({{5, 6}})
    assert.are.same({{1, 2}, {3, 4}, {5, 6}}, ml.cat({a, b}):totable())
    assert.are.same({{1, 2, 5}, {3, 4, 6}}, ml.cat({a, b:t()}, 2):totable())
    assert.are.same({2, 2, 2}, ml.stack({a, a}):shape())
    assert.are.same({{1, 1}, {2, 2}}, ml.stack({ml.tensor({1, 2}), ml.tensor({1, 2})}, -1):totable())
    assert.are.same({{1, 2}, {3, 4}}, ml.stack({a[1], a[2]}, 1):totable())
  end)

  it("promotes dtypes", function()
    local i = ml.tensor({1, 2}, {dtype = "int64"})
    local u = ml.tensor({3}, {dtype = "uint8"})
    assert.are.equal("int64", ml.cat({u, i}).dtype)
    assert.are.equal("float32", ml.cat({i, ml.tensor({0.5})}).dtype)
    assert.are.same({1, 2, 0.5}, ml.cat({i, ml.tensor({0.5})}):totable())
  end)

  it("hands each input its slice of the gradient", function()
    local a = ml.tensor({{1, 2}, {3, 4}}, {requires_grad = true})
    local b = ml.tensor({{5, 6}}, {requires_grad = true})
    local w = ml.tensor({{1, 2}, {3, 4}, {5, 6}})
    ;(ml.cat({a, b}) * w):sum():backward()
    assert.are.same({{1, 2}, {3, 4}}, a.grad:totable())
    assert.are.same({{5, 6}}, b.grad:totable())
  end)

  it("differentiates a stack of many tensors", function()
    local xs, n = {}, 11
    for i = 1, n do xs[i] = ml.full({3}, i, {requires_grad = true}) end
    local s = ml.stack(xs, 1)
    assert.are.same({n, 3}, s:shape())
    local w = ml.arange(n * 3):view({n, 3})
    ;(s * w):sum():backward()
    for i = 1, n do
      assert.are.same({3 * (i - 1), 3 * (i - 1) + 1, 3 * (i - 1) + 2}, xs[i].grad:totable())
    end
    local c = ml.cat(xs)
    assert.are.same({n * 3}, c:shape())
    assert.are.equal(3 * n * (n + 1) / 2, c:sum():item())
  end)

  it("names the shapes when they do not fit", function()
    assert.has_error(function() ml.stack({ml.zeros({2}), ml.zeros({3})}) end,
      "stack: expects each tensor to be equal size, but got [2] at entry 1 and [3] at entry 2")
    assert.has_error(function() ml.cat({ml.zeros({2, 3}), ml.zeros({2, 4})}) end,
      "cat: sizes of tensors must match except in dim 1: got [2, 3] at entry 1 and [2, 4] at entry 2")
    assert.has_error(function() ml.cat({}) end, "cat: expected a non-empty list of tensors")
    assert.has_error(function() ml.cat({ml.zeros({2}), 3}) end,
      "cat: entry 2 of the list is number, expected a tensor")
  end)
end)
