-- softmax / log_softmax over rows of every length (the float32 kernels take rows in
-- 16-lane chunks with a masked tail): values and gradients against the float64
-- path, and torch's edge cases (a NaN makes its row NaN, a row of -inf gives NaN,
-- huge and tiny logits stay finite).
local ml = require "moonlight"
local T = ml.testing

local function is_nan(v) return v ~= v end

describe("softmax rows", function()
  for _, n in ipairs({1, 2, 10, 15, 16, 17, 31, 32, 33, 100, 1000}) do
    it("matches float64 for rows of " .. n, function()
      ml.manual_seed(n)
      local x = ml.randn({7, n}) * 4
      local g = ml.randn({7, n})
      for _, fn in ipairs({"softmax", "log_softmax"}) do
        local x32 = x:detach():requires_grad_()
        local x64 = x:to("float64"):requires_grad_()
        local y32, y64 = ml.F[fn](x32, 2), ml.F[fn](x64, 2)
        T.assert_close(y32, y64:to("float32"), {rtol = 1e-5, atol = 1e-6})
        y32:backward(g)
        y64:backward(g:to("float64"))
        T.assert_close(x32.grad, x64.grad:to("float32"), {rtol = 1e-4, atol = 1e-6})
      end
    end)
  end

  it("keeps torch's edge cases", function()
    local inf = math.huge
    local x = ml.tensor({{0, 0 / 0, 1}, {-inf, -inf, -inf}, {1e30, 0, -1e30}, {-inf, 0, 0}})
    local y = x:softmax(2):totable()
    for k = 1, 3 do assert.is_true(is_nan(y[1][k])) end
    for k = 1, 3 do assert.is_true(is_nan(y[2][k])) end
    T.assert_close(ml.tensor(y[3]), {1, 0, 0})
    T.assert_close(ml.tensor(y[4]), {0, 0.5, 0.5})
    local l = x:log_softmax(2):totable()
    assert.is_true(is_nan(l[1][2]))
    assert.are.equal(-inf, l[4][1])
    T.assert_close(ml.tensor({l[4][2], l[4][3]}), {-math.log(2), -math.log(2)})
  end)

  -- issue 17e: log_softmax is (x - max) - log(sum), as torch; x - (max + log(sum))
  -- gave -1.0986328 for three logits of 1000 (torch: -1.0986123)
  it("keeps log_softmax exact for large logits", function()
    for _, off in ipairs({1000, 10000, -10000}) do
      local want = -math.log(3)
      for _, x in ipairs({ml.full({3}, off), ml.full({4, 3}, off), ml.full({2, 3, 2}, off)}) do
        local dim = x:dim() == 3 and 2 or x:dim()
        local got = x:log_softmax(dim):view({-1}):totable()
        for _, v in ipairs(got) do
          assert.is_true(math.abs(v - want) < 2e-7, string.format("%d: %.9g", off, v))
        end
      end
    end
  end)
end)
