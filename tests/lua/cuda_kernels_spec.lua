-- CUDA kernels' own cases beyond the CPU parity (cuda_parity.lua): values fixed by
-- PyTorch where the two backends once agreed on a wrong answer or differed, and
-- how kernels are launched. Runs on any CUDA device; in CI on the emulated GPU
-- (ctest -L cuda-emu, tests/emu.cmake), which also traces the launches
-- (MOONLIGHT_EMU_TRACE). Without a device every case is pending.
local ml = require "moonlight"

local available = ml.cuda.is_available()
local function need_device()
  if not available then pending("SKIPPED: no CUDA device") end
end

local function cuda(values, dtype) return ml.tensor(values, {device = "cuda", dtype = dtype}) end
local function is_nan(t) return t:item() ~= t:item() end
local nan, inf = 0 / 0, math.huge

describe("cuda logsumexp", function()
  it("gives NaN for a row with a NaN, as torch (the block combine once dropped it)", function()
    need_device()
    assert.is_true(is_nan(cuda({nan, 1, 2}):logsumexp(1)))
    assert.is_true(is_nan(cuda({1, nan, -inf}):logsumexp(1)))
    assert.is_true(is_nan(cuda({nan, nan}):logsumexp(1)))
    assert.is_true(is_nan(cuda({inf, nan}):logsumexp(1)))
    assert.is_true(is_nan(cuda({-inf, nan}):logsumexp(1)))
    assert.are.equal(inf, cuda({inf, inf}):logsumexp(1):item())
    assert.are.equal(-inf, cuda({-inf, -inf}):logsumexp(1):item())
  end)

  it("gives NaN for a NaN in a long row, in a column and in float64", function()
    need_device()
    local long = ml.zeros({300001})
    long[123457] = nan
    assert.is_true(is_nan(long:cuda():logsumexp(1)))
    local cols = ml.zeros({5, 3})
    cols[4][2] = nan
    local r = cols:cuda():logsumexp(1):cpu():totable()
    assert.is_true(r[1] == r[1] and r[2] ~= r[2] and r[3] == r[3])
    assert.is_true(is_nan(cuda({nan, 1, 2}, "float64"):logsumexp(1)))
  end)
end)

describe("cuda casts to integers", function()
  -- torch 1.13 on x86: float -> int64 truncates, NaN and values out of range give
  -- INT64_MIN (cvttsd2si); float -> uint8 goes through int64 and keeps the low 8 bits
  local x = {nan, inf, -inf, 1e20, -1e20, 300.7, -1.5, 255.9, 256, -0.5, 511, -257, 1e10}
  local as_long = {math.mininteger, math.mininteger, math.mininteger, math.mininteger,
                   math.mininteger, 300, -1, 255, 256, 0, 511, -257, 10000000000}
  local as_byte = {0, 0, 0, 0, 0, 44, 255, 255, 0, 0, 255, 255, 0}

  it("match torch's CPU for NaN and out-of-range floats", function()
    need_device()
    for _, dt in ipairs({"float32", "float64"}) do
      local t = cuda(x, dt)
      assert.are.same(as_long, t:long():cpu():totable())
      assert.are.same(as_byte, t:byte():cpu():totable())
    end
    assert.are.same({1, 255}, cuda({3000000001, -3000000001}, "float64"):byte():cpu():totable())
  end)
end)

describe("cuda products with an inner size of 0", function()
  it("give zeros, plus the bias for linear", function()
    need_device()
    local y = ml.F.linear(ml.zeros({3, 0}, {device = "cuda"}), ml.zeros({2, 0}, {device = "cuda"}),
                          cuda({1, 2}))
    assert.are.same({{1, 2}, {1, 2}, {1, 2}}, y:cpu():totable())
    local p = ml.full({2, 0}, 5, {device = "cuda"}):matmul(ml.full({0, 3}, 5, {device = "cuda"}))
    assert.are.same({{0, 0, 0}, {0, 0, 0}}, p:cpu():totable())
  end)
end)

-- The launches an op made, from the emulator's trace (nil without one).
local trace_path = os.getenv("MOONLIGHT_EMU_TRACE")
local function launches_of(fn)
  local f = io.open(trace_path, "a+")
  local start = f:seek("end")
  f:close()
  fn()
  ml.cuda.synchronize()
  f = io.open(trace_path, "r")
  f:seek("set", start)
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

describe("cuda whole-tensor reductions", function()
  it("spread a long tensor over several blocks, with the same result each time", function()
    need_device()
    if not trace_path then pending("needs the emulated GPU's trace (MOONLIGHT_EMU_TRACE)") end
    local x = ml.randn({1 << 18}):cuda()
    local first
    local lines = launches_of(function() first = x:sum():item() end)
    local blocks = 0
    for _, l in ipairs(lines) do
      local gx, gy, gz = l:match(" grid (%d+),(%d+),(%d+) ")
      if l:find("kernel k_partial", 1, true) then blocks = blocks + gx * gy * gz end
    end
    assert.is_true(blocks >= 16, "a 2^18-element sum ran on " .. blocks .. " partial blocks")
    for _ = 1, 3 do assert.are.equal(first, x:sum():item()) end
    assert.is_true(math.abs(first - x:cpu():sum():item()) < 1e-2)
  end)
end)
