-- gemm slices big products across threads by hand (src/cpu/matmul.c); the tests
-- run single-threaded, so this spec turns threads on and checks every layout.
local ml = require "moonlight"

local function max_abs_diff(a, b)
  return (a:double() - b:double()):abs():max():item()
end

describe("matmul split across threads", function()
  local saved
  before_each(function() saved = ml.get_num_threads(); ml.set_num_threads(3) end)
  after_each(function() ml.set_num_threads(saved) end)

  -- odd sizes, not multiples of the 16-element slices, above the 4 MFLOP threshold;
  -- the last two with long sums (the first layer's shapes last)
  local shapes = {{131, 203, 97}, {37, 301, 233}, {260, 61, 129}, {40, 1601, 40}, {128, 784, 64}}
  for _, s in ipairs(shapes) do
    local m, k, n = s[1], s[2], s[3]
    it(string.format("[%d, %d] @ [%d, %d] with every transpose", m, k, k, n), function()
      ml.manual_seed(m)
      local a, b = ml.randn({m, k}), ml.randn({k, n})
      local ref = a:double():matmul(b:double())
      -- the same products through transposed views (gemm reads them without a copy)
      local at, bt = a:t():contiguous():t(), b:t():contiguous():t()
      for _, pair in ipairs({{a, b}, {at, b}, {a, bt}, {at, bt}}) do
        assert.is_true(max_abs_diff(pair[1]:matmul(pair[2]), ref) < 1e-3)
      end
      -- linear: x @ w^T + bias, split by rows or by output features
      local w, bias = ml.randn({n, k}), ml.randn({n})
      local y = ml.linear(a, w, bias)
      local yref = a:double():matmul(w:double():t()) + bias:double()
      assert.is_true(max_abs_diff(y, yref) < 1e-3)
    end)
  end

  it("gives gradients that match the single-threaded ones", function()
    ml.manual_seed(5)
    local x = ml.randn({128, 784})
    local w = ml.randn({64, 784}, {requires_grad = true})
    local b = ml.randn({64}, {requires_grad = true})
    ml.linear(x, w, b):square():sum():backward()
    local gw, gb = w.grad, b.grad
    w.grad, b.grad = nil, nil
    ml.set_num_threads(1)
    ml.linear(x, w, b):square():sum():backward()
    assert.is_true(max_abs_diff(gw, w.grad) < 1e-2 * gw:abs():max():item() * 1e-3 + 1e-3)
    assert.is_true(max_abs_diff(gb, b.grad) < 1e-3 * gb:abs():max():item() + 1e-3)
  end)
end)
