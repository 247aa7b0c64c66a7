-- Sums and means over a leading or middle dim (x as [outer, n, inner] with inner > 1:
-- the kernel adds rows into blocks of accumulators) against the same sums taken over
-- the last dim of the transposed copy, and against float64, for widths around the
-- accumulator block (256) and a parallel-sized input.
local ml = require "moonlight"
local T = ml.testing

describe("reduce over a dim with inner > 1", function()
  for _, shape in ipairs({{1, 128, 64}, {3, 5, 255}, {2, 7, 256}, {2, 9, 257}, {4, 33, 600}, {2, 300, 517}}) do
    it("sum and mean over dims of " .. table.concat(shape, "x"), function()
      ml.manual_seed(#shape + shape[3])
      local x = ml.randn(shape)
      local x64 = x:to("float64")
      for _, d in ipairs({1, 2}) do
        local want = x64:transpose(d, 3):contiguous():sum(3) -- d = 1: [C, B], so turn it back
        if d == 1 then want = want:t() end
        T.assert_close(x:sum(d), want:to("float32"), {rtol = 1e-5, atol = 1e-5})
        T.assert_close(x:mean(d, true), (want / shape[d]):unsqueeze(d):to("float32"),
                       {rtol = 1e-5, atol = 1e-6})
      end
      local xi = (x * 10):to("int64")
      assert.are.same(xi:transpose(1, 3):contiguous():sum(3):t():totable(), xi:sum(1):totable())
    end)
  end
end)
