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
