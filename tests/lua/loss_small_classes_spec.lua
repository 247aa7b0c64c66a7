-- float32 cross_entropy with fewer than 32 classes takes its own CPU kernels (16
-- rows per vector). Checked here against the same data in float64 (the general
-- kernels) far tighter than the PyTorch fixtures' 1e-4: values and gradients to
-- float32 rounding, on every block/tail shape, with ignore_index, weights, every
-- reduction, grad_out of "none", rows enough for the threaded loop, bad ids and NaN.
local ml = require "moonlight"
local F = ml.F

-- Float32 itself limits the gradient to about an ulp of the logits (x - lse is
-- taken in float32, in the general kernels too), so gradients are compared with an
-- absolute tolerance scaled by the largest gradient; losses (summed in double) to
-- 1e-6.
local close = require("loss_fixture_check").close
local LOSS_TOL, GRAD_TOL = 1e-6, 2e-6

local function ids(n, c, ignore, every)
  local t = {}
  for i = 1, n do t[i] = (i * 7 + 3) % c end
  if ignore then for i = 1, n, every do t[i] = ignore end end
  return ml.tensor(t, {dtype = "int64"})
end

-- loss and input gradient in float32 and in float64 from the same numbers
local function both(x32, target, opts, grad_out)
  local out = {}
  for _, dt in ipairs({"float32", "float64"}) do
    local x = x32:to(dt):detach():requires_grad_(true)
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = ml.is_tensor(v) and v:to(dt) or v end
    local l = F.cross_entropy(x, target, o)
    if grad_out then l:backward(grad_out:to(dt)) else l:backward() end
    out[dt] = {l = l:detach(), g = x.grad}
  end
  return out.float32, out.float64
end

describe("cross_entropy with few classes (float32 CPU kernels)", function()
  ml.manual_seed(7)
  for _, shape in ipairs({{1, 10}, {15, 10}, {16, 10}, {17, 10}, {128, 10}, {37, 1}, {33, 31},
                          {50, 16}, {40, 32}}) do
    local n, c = shape[1], shape[2]
    local x = ml.randn(shape) * 4
    for _, red in ipairs({"mean", "sum", "none"}) do
      it(("[%d, %d] %s"):format(n, c, red), function()
        local g = red == "none" and ml.randn({n}) or nil
        local a, b = both(x, ids(n, c), {reduction = red}, g)
        close(a.l, b.l, "loss", LOSS_TOL)
        close(a.g, b.g, "grad", GRAD_TOL)
      end)
      it(("[%d, %d] %s, ignore_index hit, weight"):format(n, c, red), function()
        local g = red == "none" and ml.randn({n}) or nil
        local w = ml.rand({c}) + 0.5
        local a, b = both(x, ids(n, c, 2 % c, 5), {reduction = red, ignore_index = 2 % c, weight = w}, g)
        close(a.l, b.l, "loss", LOSS_TOL)
        close(a.g, b.g, "grad", GRAD_TOL)
      end)
      it(("[%d, %d] %s, label smoothing"):format(n, c, red), function()
        local g = red == "none" and ml.randn({n}) or nil
        local a, b = both(x, ids(n, c, -100, 3), {reduction = red, label_smoothing = 0.2}, g)
        close(a.l, b.l, "loss", LOSS_TOL)
        close(a.g, b.g, "grad", GRAD_TOL)
      end)
    end
  end

  it("splits many rows across threads like one thread", function()
    local x = ml.randn({5000, 10}) * 3
    local t = ids(5000, 10, -100, 11)
    local a, b = both(x, t, {})
    close(a.l, b.l, "loss", LOSS_TOL)
    close(a.g, b.g, "grad", GRAD_TOL)
    local threads = ml.get_num_threads()
    ml.set_num_threads(2)
    local a2 = both(x, t, {})
    ml.set_num_threads(threads)
    close(a2.l, a.l, "loss, 2 threads", 1e-12)
    close(a2.g, a.g, "grad, 2 threads", 0)
  end)

  it("keeps large logits finite and far-apart rows apart", function()
    -- rows whose ranges are 2000 apart in one block of 16: each row's own max
    local x = ml.tensor({{1000, 999, 998, 0, 0, 0, 0, 0, 0, 0}, {-1000, -1001, -1000, -1000, -1000, -1000, -1000, -1000, -1000, -1000}})
    local a, b = both(x, ml.tensor({1, 0}, {dtype = "int64"}), {reduction = "none"}, ml.ones({2}))
    close(a.l, b.l, "loss", LOSS_TOL)
    close(a.g, b.g, "grad", 3e-4) -- an ulp of 1000 in float32 is 6e-5
  end)

  it("equals the general float32 kernels (class dim not last)", function()
    -- [n, c, 2] with both columns equal takes the general code on the same numbers
    for _, shape in ipairs({{37, 10}, {16, 31}, {5, 1}}) do
      local n, c = shape[1], shape[2]
      local x = ml.randn(shape) * 3
      local t = ids(n, c, -100, 4)
      local w = ml.rand({c}) + 0.5
      for _, red in ipairs({"mean", "none"}) do
        local xs = x:detach():requires_grad_(true)
        local xg = x:unsqueeze(3):expand({n, c, 2}):contiguous():requires_grad_(true)
        local tg = t:unsqueeze(2):expand({n, 2}):contiguous()
        local ls = F.cross_entropy(xs, t, {reduction = red, weight = w})
        local lg = F.cross_entropy(xg, tg, {reduction = red, weight = w})
        if red == "none" then
          ls:backward(ml.ones({n}))
          lg:backward(ml.ones({n, 2}))
          close(ls, lg:select(2, 1), "loss none", 1e-6)
        else
          ls:backward()
          lg:backward()
          close(ls, lg, "loss", 1e-6)
        end
        close(xs.grad, xg.grad:select(3, 1) * (red == "mean" and 2 or 1), "grad", 1e-6)
      end
    end
  end)

  it("gives NaN for a row with NaN, 0 for an ignored one", function()
    local x = ml.randn({20, 10})
    local v = x:totable()
    v[3][4] = 0 / 0
    v[18][1] = 0 / 0
    x = ml.tensor(v)
    local t = ids(20, 10)
    local tv = t:totable()
    tv[18] = -100
    t = ml.tensor(tv, {dtype = "int64"})
    local a = both(x, t, {reduction = "none"}, ml.ones({20}))
    local l, g = a.l:totable(), a.g:totable()
    assert.is_true(l[3] ~= l[3])
    assert.are.equal(0, l[18])
    for k = 1, 10 do
      assert.is_true(g[3][k] ~= g[3][k])
      assert.are.equal(0, g[18][k])
    end
    for i = 1, 20 do
      if i ~= 3 and i ~= 18 then assert.is_true(l[i] == l[i] and l[i] > 0) end
    end
  end)

  it("names the first bad class id", function()
    local t = ids(40, 10)
    local tv = t:totable()
    tv[20], tv[35] = 12, -3
    assert.has_error(function() F.cross_entropy(ml.randn({40, 10}), ml.tensor(tv, {dtype = "int64"})) end,
      "cross_entropy: target class id 12 is out of range: expected 0 <= id < 10 (the number of classes) or ignore_index (-100)")
  end)
end)
