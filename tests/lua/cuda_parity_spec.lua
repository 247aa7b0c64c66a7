-- CUDA backend: parity of every CUDA op with the CPU (cases in cuda_parity.lua),
-- and the ml.cuda functions. Without a GPU every parity test is reported pending
-- ("SKIPPED: no CUDA device"), never passed.
local ml = require "moonlight"
local parity = require "cuda_parity"

local available = ml.cuda.is_available()
if not available then print("SKIPPED: no CUDA device (" .. #parity.cases .. " parity tests pending)") end

describe("ml.cuda", function()
  it("answers is_available with a boolean", function()
    assert.is_boolean(ml.cuda.is_available())
  end)

  it("raises 'not available' from every query without a device", function()
    if available then pending("a CUDA device is present") end
    for _, name in ipairs({"device_name", "memory_allocated", "memory_reserved", "synchronize",
                           "empty_cache"}) do
      local ok, err = pcall(ml.cuda[name])
      assert.is_false(ok)
      assert.matches("cuda%." .. name .. ": CUDA is not available", err)
    end
    local ok, err = pcall(function() return ml.zeros({2}):cuda() end)
    assert.is_false(ok)
    assert.matches("cuda", err)
  end)

  it("sets and reads the float32 matmul precision", function()
    ml.set_float32_matmul_precision("high")
    assert.are.equal("high", ml.get_float32_matmul_precision())
    ml.set_float32_matmul_precision("highest")
    assert.are.equal("highest", ml.get_float32_matmul_precision())
    assert.has_error(function() ml.set_float32_matmul_precision("fast") end,
                     "set_float32_matmul_precision: unknown precision 'fast' (expected \"highest\", \"high\" or \"medium\")")
  end)

  it("reports the device and counts allocator bytes", function()
    if not available then pending("SKIPPED: no CUDA device") end
    assert.is_string(ml.cuda.device_name())
    local msg = parity.memory_check()
    assert(msg == nil, msg)
  end)

  it("switches matmul to TF32 and back", function()
    if not available then pending("SKIPPED: no CUDA device") end
    ml.manual_seed(3)
    local a, b = ml.randn({256, 512}), ml.randn({512, 128})
    local ref = a:matmul(b)
    ml.set_float32_matmul_precision("high")
    local tf = a:cuda():matmul(b:cuda()):cpu()
    ml.set_float32_matmul_precision("highest")
    local full = a:cuda():matmul(b:cuda()):cpu()
    local function maxdiff(x) return (x - ref):abs():max():item() end
    assert.is_true(maxdiff(full) < 1e-3)
    assert.is_true(maxdiff(tf) < 0.5)
  end)
end)

describe("cuda parity harness (runs without a GPU)", function()
  it("runs every case on the CPU", function()
    for _, case in ipairs(parity.cases) do
      local ok, err = pcall(parity.run, case, "cpu")
      assert(ok, case.name .. ": " .. tostring(err))
    end
  end)

  it("flags values, NaNs, shapes and integers that differ", function()
    local a = ml.tensor({1, 2, 3})
    assert.is_nil(parity.compare("x", a, a:clone(), 1e-5, 1e-5))
    assert.matches("1 of 3 elements beyond", parity.compare("x", a + ml.tensor({0, 0, 1e-3}), a, 1e-5, 1e-5))
    assert.matches("NaN", parity.compare("x", ml.tensor({0 / 0, 2, 3}), a, 1e-5, 1e-5))
    assert.matches("shape", parity.compare("x", ml.tensor({{1, 2, 3}}), a, 1e-5, 1e-5))
    assert.matches("1 of 3 elements differ", parity.compare("x", ml.tensor({1, 2, 4}, {dtype = "int64"}),
                                                            ml.tensor({1, 2, 3}, {dtype = "int64"}), 0, 0))
  end)
end)

describe("cuda parity", function()
  for _, case in ipairs(parity.cases) do
    it(case.name, function()
      if not available then pending("SKIPPED: no CUDA device") end
      local msg = parity.check(case)
      assert(msg == nil, case.name .. ": " .. tostring(msg))
    end)
  end
end)
