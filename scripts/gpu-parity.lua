-- The CUDA parity cases (tests/lua/cuda_parity.lua) without busted, for a GPU
-- machine that has no Lua packages:
--   moonlight scripts/gpu-parity.lua [--every N]
-- Prints one line per case ("ok   name" or "FAIL name: why"), the first failure
-- again at the end, and a summary; exits 1 when a case fails or there is no GPU.
-- --every N runs every N-th case only (the subset scripts/gpu-check.sh runs under
-- compute-sanitizer, which slows kernels down a hundredfold).
-- After a failure the CUDA context is checked: a sticky error (an illegal address,
-- a launch failure) fails every later call, so the run stops there and says so.
package.path = "tests/lua/?.lua;" .. package.path
local ml = require "moonlight"
local parity = require "cuda_parity"

local every = 1
if arg[1] == "--every" then every = math.tointeger(tonumber(arg[2])) or 1 end

if not ml.cuda.is_available() then
  local _, err = pcall(ml.cuda.device_name)
  print("FAIL: no CUDA device: " .. tostring(err))
  os.exit(1)
end
print("device: " .. ml.cuda.device_name())
local failed, run, first, sticky, t0 = 0, 0, nil, false, os.clock()
local function fail(msg)
  failed = failed + 1
  first = first or msg
  print("FAIL " .. msg)
end
for i, case in ipairs(parity.cases) do
  if (i - 1) % every == 0 then
    run = run + 1
    local msg = parity.check(case)
    if msg then
      fail(case.name .. ": " .. msg)
      local ok, err = pcall(ml.cuda.synchronize)
      if not ok then
        print("STICKY: the CUDA context is broken after this case (" .. tostring(err) ..
              "); the remaining cases would only repeat it")
        sticky = true
        break
      end
    else
      print("ok   " .. case.name)
    end
  end
end
if every == 1 and not sticky then
  run = run + 1
  local mem = parity.memory_check()
  if mem then fail("allocator: " .. mem) else print("ok   allocator counters and cache") end
end
if first then print("FIRST FAILURE " .. first) end
print(("%d of %d checks failed (%.1f s CPU)"):format(failed, run, os.clock() - t0))
os.exit(failed == 0 and 0 or 1)
