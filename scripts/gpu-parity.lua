-- The CUDA parity cases (tests/lua/cuda_parity.lua) without busted, for a GPU
-- machine that has no Lua packages: `moonlight scripts/gpu-parity.lua`.
-- Prints one line per case, a summary, and exits 1 when a case fails or no GPU.
package.path = "tests/lua/?.lua;" .. package.path
local ml = require "moonlight"
local parity = require "cuda_parity"

if not ml.cuda.is_available() then
  local _, err = pcall(ml.cuda.device_name)
  print("FAIL: no CUDA device: " .. tostring(err))
  os.exit(1)
end
print("device: " .. ml.cuda.device_name())
local failed, t0 = 0, os.clock()
for _, case in ipairs(parity.cases) do
  local msg = parity.check(case)
  if msg then
    failed = failed + 1
    print("FAIL " .. case.name .. ": " .. msg)
  else
    print("ok   " .. case.name)
  end
end
local mem = parity.memory_check()
if mem then failed = failed + 1; print("FAIL allocator: " .. mem) else print("ok   allocator counters and cache") end
print(("%d of %d checks failed (%.1f s CPU)"):format(failed, #parity.cases + 1, os.clock() - t0))
os.exit(failed == 0 and 0 or 1)
