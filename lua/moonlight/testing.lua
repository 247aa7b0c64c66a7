-- ml.testing: torch.testing for Lua specs.
--   assert_close(actual, expected, {rtol =, atol =, equal_nan = false, check_dtype = true, msg =})
--   gradcheck(fn, {inputs...}, {eps = 1e-6, atol = 1e-5, rtol = 1e-3})
--   assert_trajectory(values, "golden/name.csv", {rtol = 1e-5, atol = 1e-6})
--   seeded(fn [, seed = 0]) -> fn's results
-- The comparisons run as tensor ops in C; Lua only looks at the one element it
-- reports. gradcheck perturbs inputs element by element (it is meant for small
-- inputs), reading and writing single elements through core._flat_get/_flat_set.
local core = require "moonlight.core"

local M = {}

-- torch.testing's defaults per dtype
local default_tol = {
  float32 = {1.3e-6, 1e-5},
  float64 = {1e-7, 1e-7},
  int64 = {0, 0},
  uint8 = {0, 0},
}

local check_opts = require("moonlight.util").check_options

local function shape_str(s)
  return "[" .. table.concat(s, ", ") .. "]"
end

-- 1-based position {i, j, ...} of the k-th (1-based) element of shape s
local function position(s, k)
  if #s == 0 then return "" end
  local pos, r = {}, k - 1
  for i = #s, 1, -1 do
    pos[i] = r % s[i] + 1
    r = r // s[i]
  end
  return " at " .. shape_str(pos):gsub("^%[", "{"):gsub("%]$", "}")
end

local function to_tensor(v, like_dtype)
  if core.is_tensor(v) then return v end
  local tv = type(v)
  if tv == "number" or tv == "boolean" or tv == "table" then
    return core.tensor(v, {dtype = like_dtype or "float64"})
  end
  error("assert_close: expected a tensor, a number or a nested table, got " .. tv, 3)
end

local function fmt(x)
  if x ~= x then return "nan" end
  return string.format("%.9g", x)
end

function M.assert_close(actual, expected, opts)
  opts = check_opts("assert_close", opts, {rtol = "number", atol = "number", equal_nan = "boolean",
                                           check_dtype = "boolean", msg = "string"})
  local a_is_t, e_is_t = core.is_tensor(actual), core.is_tensor(expected)
  local a = to_tensor(actual, e_is_t and expected.dtype or nil)
  local e = to_tensor(expected, a_is_t and a.dtype or nil)
  if (opts.rtol == nil) ~= (opts.atol == nil) then
    error("assert_close: give both rtol and atol, or neither", 2)
  end
  local prefix = opts.msg and (opts.msg .. ": ") or ""
  local sa, se = a:shape(), e:shape()
  if shape_str(sa) ~= shape_str(se) then
    error(string.format("%sassert_close: shapes differ: actual %s, expected %s", prefix,
                        shape_str(sa), shape_str(se)), 2)
  end
  if a_is_t and e_is_t and opts.check_dtype ~= false and a.dtype ~= e.dtype then
    error(string.format("%sassert_close: dtypes differ: actual %s, expected %s (pass "
                        .. "check_dtype = false to compare the values)", prefix, a.dtype, e.dtype), 2)
  end
  if a.device ~= e.device then
    error(string.format("%sassert_close: devices differ: actual %s, expected %s", prefix,
                        a.device, e.device), 2)
  end
  local dtol = default_tol[a.dtype] or default_tol.float64
  local rtol, atol = opts.rtol or dtol[1], opts.atol or dtol[2]
  local n = a:numel()
  if n == 0 then return true end
  local msg = core.no_grad(function()
    local ad, ed = a:double(), e:double()
    local diff = (ad - ed):abs()
    local allowed = ed:abs() * rtol + atol
    -- equal values (infinities included) are close; NaN is close to NaN with equal_nan
    local ok = diff:le(allowed) + ad:eq(ed)
    if opts.equal_nan then ok = ok + ad:ne(ad) * ed:ne(ed) end
    local bad = n - ok:gt(0):sum():item()
    if bad == 0 then return nil end
    -- report the largest differences; a NaN counts as an infinite one
    local nan = ad:ne(ad) + ed:ne(ed)
    local d = core.where(ok:gt(0), 0, core.where(nan:gt(0), math.huge, diff))
    local rel = d / ed:abs()
    rel = core.where(ok:gt(0), 0, core.where(rel:ne(rel), math.huge, rel))
    local flat_d, flat_r = d:reshape({-1}), rel:reshape({-1})
    local kd = flat_d:argmax(1):item() + 1
    local kr = flat_r:argmax(1):item() + 1
    local lines = {
      string.format("%sassert_close: tensors are not close!", prefix),
      string.format("  mismatched elements: %d / %d (%.1f%%)", bad, n, 100 * bad / n),
      string.format("  greatest absolute difference: %s%s (up to %s allowed): actual %s, expected %s",
                    fmt(core._flat_get(flat_d, kd)), position(sa, kd), fmt(atol),
                    fmt(core._flat_get(ad:reshape({-1}), kd)), fmt(core._flat_get(ed:reshape({-1}), kd))),
      string.format("  greatest relative difference: %s%s (up to %s allowed)",
                    fmt(core._flat_get(flat_r, kr)), position(sa, kr), fmt(rtol)),
    }
    return table.concat(lines, "\n")
  end)
  if msg then error(msg, 2) end
  return true
end

-- sum(fn(inputs...) * w) as a Lua number, for every output tensor of fn
local function weighted(outs, ws)
  local total = nil
  for i, o in ipairs(outs) do
    local s = (o:double() * ws[i]):sum()
    total = total and total + s or s
  end
  return total
end

local function outputs(fname, ...)
  local r = table.pack(...)
  local outs = {}
  for i = 1, r.n do
    local v = r[i]
    local list = core.is_tensor(v) and {v} or (type(v) == "table" and v or {})
    -- integer outputs (indices, masks) are not differentiable: left out as torch does
    for _, t in ipairs(list) do
      if core.is_tensor(t) and (t.dtype == "float32" or t.dtype == "float64") then
        outs[#outs + 1] = t
      end
    end
  end
  if #outs == 0 then error(fname .. ": the function returned no floating point tensor", 3) end
  return outs
end

local gradcheck_options = {eps = {"number", 1e-6}, atol = {"number", 1e-5}, rtol = {"number", 1e-3}}

function M.gradcheck(fn, inputs, opts)
  opts = check_opts("gradcheck", opts, gradcheck_options)
  local eps, atol, rtol = opts.eps, opts.atol, opts.rtol
  if type(fn) ~= "function" then error("gradcheck: fn must be a function", 2) end
  if core.is_tensor(inputs) then inputs = {inputs} end
  if type(inputs) ~= "table" then error("gradcheck: inputs must be a table of tensors", 2) end
  local checked = {}
  for i, x in ipairs(inputs) do
    if core.is_tensor(x) and x.requires_grad then
      if x.dtype ~= "float64" then
        error(string.format("gradcheck: input %d is %s; gradcheck needs float64 inputs "
                            .. "(finite differences in float32 are too coarse)", i, x.dtype), 2)
      end
      if not x.is_leaf then
        error(string.format("gradcheck: input %d is not a leaf (pass tensors created with "
                            .. "requires_grad = true)", i), 2)
      end
      checked[#checked + 1] = i
    end
  end
  if #checked == 0 then error("gradcheck: no input requires grad", 2) end
  -- random weights for each output, without disturbing the user's generator
  local state = core.get_rng_state()
  local outs = outputs("gradcheck", fn(table.unpack(inputs, 1, #inputs)))
  local ws = {}
  for i, o in ipairs(outs) do
    ws[i] = core.randn(o:shape(), {dtype = "float64"})
  end
  core.set_rng_state(state)
  local saved = {}
  for _, i in ipairs(checked) do
    saved[i] = inputs[i].grad
    inputs[i].grad = nil
  end
  local loss = weighted(outs, ws)
  if loss.requires_grad then loss:backward() end
  local analytic = {}
  for _, i in ipairs(checked) do
    analytic[i] = inputs[i].grad
    inputs[i].grad = saved[i]
  end
  local msg = core.no_grad(function()
    for _, i in ipairs(checked) do
      local x, g = inputs[i], analytic[i]
      local shape = x:shape()
      for k = 1, x:numel() do
        local v = core._flat_get(x, k)
        core._flat_set(x, k, v + eps)
        local fp = weighted(outputs("gradcheck", fn(table.unpack(inputs, 1, #inputs))), ws):item()
        core._flat_set(x, k, v - eps)
        local fm = weighted(outputs("gradcheck", fn(table.unpack(inputs, 1, #inputs))), ws):item()
        core._flat_set(x, k, v)
        local num = (fp - fm) / (2 * eps)
        local ana = g and core._flat_get(g, k) or 0
        if not (math.abs(ana - num) <= atol + rtol * math.abs(num)) then
          return string.format("gradcheck: gradient of input %d%s (element %d of shape %s) "
                               .. "differs: analytical %s, numerical %s (atol %g, rtol %g)%s",
                               i, position(shape, k), k, shape_str(shape), fmt(ana), fmt(num),
                               atol, rtol, g and "" or "; backward never reached this input")
        end
      end
    end
  end)
  if msg then error(msg, 2) end
  return true
end

-- Per-step values as Lua numbers: a list of numbers or 0-dim/one-element
-- tensors, or a 1-D tensor.
local function trajectory_numbers(values)
  if core.is_tensor(values) then
    if values:dim() > 1 then
      error("assert_trajectory: expected a 1-D tensor of per-step values, got shape "
            .. shape_str(values:shape()), 3)
    end
    return values:double():reshape({-1}):totable()
  end
  if type(values) ~= "table" then
    error("assert_trajectory: expected a list of numbers (or a 1-D tensor), got " .. type(values), 3)
  end
  local out = {}
  for i, v in ipairs(values) do
    if core.is_tensor(v) then
      if v:numel() ~= 1 then
        error(string.format("assert_trajectory: step %d is a tensor of shape %s, expected one value",
                            i, shape_str(v:shape())), 3)
      end
      v = v:item()
    end
    if type(v) ~= "number" then
      error(string.format("assert_trajectory: step %d is a %s, expected a number", i, type(v)), 3)
    end
    out[i] = v
  end
  return out
end

local function write_golden(path, nums)
  local sys = core._sys
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then
    local ok, err = sys.mkdir_p(dir)
    if not ok then error("assert_trajectory: cannot create " .. dir .. ": " .. tostring(err), 3) end
  end
  local util = require "moonlight.util"
  local lines = {"step,value"}
  for i, v in ipairs(nums) do lines[#lines + 1] = i .. "," .. util.format_number(v) end
  local tmp = path .. ".tmp"
  local f, err = core._sys.open(tmp, "w")
  if not f then error("assert_trajectory: cannot write " .. path .. ": " .. tostring(err), 3) end
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local ok, rerr = core._sys.rename(tmp, path)
  if not ok then error("assert_trajectory: cannot write " .. path .. ": " .. tostring(rerr), 3) end
end

local function read_golden(path)
  local f = core._sys.open(path, "r")
  if not f then return nil end
  local nums, n = {}, 0
  for line in f:lines() do
    n = n + 1
    if n > 1 and line ~= "" then
      local step, v = line:match("^(%d+),(.*)$")
      local num = v and (tonumber(v) or (v == "nan" and 0 / 0) or (v == "inf" and math.huge)
                         or (v == "-inf" and -math.huge))
      if not step or not num or tonumber(step) ~= #nums + 1 then
        f:close()
        error(string.format("assert_trajectory: %s line %d is not 'step,value' (%q); delete the "
                            .. "file or set MOONLIGHT_UPDATE_GOLDEN=1 to write it again", path, n, line), 3)
      end
      nums[#nums + 1] = num
    end
  end
  f:close()
  return nums
end

local trajectory_options = {rtol = {"number", 1e-5}, atol = {"number", 1e-6}}

-- assert_trajectory(values, path, {rtol, atol}): pins per-step numbers (losses,
-- a metric) to a golden CSV file ("step,value", values as Python's repr writes
-- them, so a double reads back exactly). When the file is absent, or
-- MOONLIGHT_UPDATE_GOLDEN=1 is set, it writes the file and passes; otherwise the
-- values must have as many steps as the file, each within atol + rtol *
-- |expected| (NaN matches NaN), and an error names the first step that differs
-- with both values. Returns true and whether the file was written.
function M.assert_trajectory(values, path, opts)
  opts = check_opts("assert_trajectory", opts, trajectory_options)
  if type(path) ~= "string" or path == "" then
    error("assert_trajectory: expected the golden file's path, got " .. type(path), 2)
  end
  local nums = trajectory_numbers(values)
  local golden = not (os and os.getenv("MOONLIGHT_UPDATE_GOLDEN") == "1") and read_golden(path) or nil
  if not golden then
    write_golden(path, nums)
    return true, true
  end
  local rtol, atol = opts.rtol, opts.atol
  local first, bad = nil, 0
  local n = math.min(#nums, #golden)
  for i = 1, n do
    local a, e = nums[i], golden[i]
    local same = a == e or (a ~= a and e ~= e) or math.abs(a - e) <= atol + rtol * math.abs(e)
    if not same then
      bad = bad + 1
      first = first or i
    end
  end
  if #nums ~= #golden then
    error(string.format("assert_trajectory: %d steps, but %s has %d%s (set MOONLIGHT_UPDATE_GOLDEN=1 "
                        .. "to write it again)", #nums, path, #golden,
                        first and string.format("; step %d already differs", first) or ""), 2)
  end
  if first then
    local a, e = nums[first], golden[first]
    error(string.format("assert_trajectory: step %d of %d differs from %s: actual %s, expected %s "
                        .. "(difference %s, allowed %s = atol %g + rtol %g * |expected|); %d of %d steps "
                        .. "differ (set MOONLIGHT_UPDATE_GOLDEN=1 to accept the new values)",
                        first, #nums, path, fmt(a), fmt(e), fmt(math.abs(a - e)),
                        fmt(atol + rtol * math.abs(e)), atol, rtol, bad, #nums), 2)
  end
  return true, false
end

-- seeded(fn [, seed]): runs fn(...) with ml's generator seeded (default 0) and
-- puts the generator back as it was afterwards, when fn raises too. Returns
-- fn's results.
function M.seeded(fn, seed, ...)
  if type(fn) ~= "function" then error("seeded: expected a function, got " .. type(fn), 2) end
  if seed ~= nil and math.type(seed) ~= "integer" then
    error("seeded: seed must be an integer, got " .. tostring(seed), 2)
  end
  local state = core.get_rng_state()
  core.manual_seed(seed or 0)
  local r = table.pack(pcall(fn, ...))
  core.set_rng_state(state)
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

return M
