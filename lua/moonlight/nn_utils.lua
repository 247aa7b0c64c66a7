-- ml.nn.utils: torch.nn.utils' gradient clipping.
--
--   local total = nn.utils.clip_grad_norm_(model:parameters(), 1.0, {norm_type = 2})
--   nn.utils.clip_grad_value_(model:parameters(), 0.5)
--
-- PyTorch 1.13's formulas: the total norm is the norm of the parameters' own
-- gradient norms (float32, as PyTorch's), every gradient is multiplied by
-- min(1, max_norm / (total + 1e-6)); parameters without a gradient are skipped.
local core = require "moonlight.core"
local util = require "moonlight.util"
local fail, check_options = util.fail, util.check_options
local is_tensor = core.is_tensor

local utils = {}

-- the parameters as a list: a tensor, or an array of tensors
local function param_list(fname, params)
  if is_tensor(params) then return {params} end
  if type(params) ~= "table" then
    fail(fname, "parameters must be a tensor or an array of tensors, got %s", util.typename(params))
  end
  for i, p in ipairs(params) do
    if not is_tensor(p) then fail(fname, "parameters[%d] is a %s, expected a tensor", i, util.typename(p)) end
  end
  return params
end

-- a double rounded to float32, as the float32 tensors PyTorch computes in
local function f32(x) return (string.unpack("f", string.pack("f", x))) end

local norm_options = {norm_type = "number|string", error_if_nonfinite = "boolean", foreach = true}

-- clip_grad_norm_(parameters, max_norm, {norm_type = 2, error_if_nonfinite = false})
-- (or norm_type as the third argument, as PyTorch's positional one; "inf" or
-- math.huge for the max norm): scales the gradients in place so that their total
-- norm is at most max_norm. Returns the total norm before clipping, a 0-dim
-- float32 tensor.
function utils.clip_grad_norm_(parameters, max_norm, opts)
  local fname = "clip_grad_norm_"
  if type(opts) == "number" or type(opts) == "string" then opts = {norm_type = opts} end
  opts = check_options(fname, opts, norm_options)
  local list = param_list(fname, parameters)
  if type(max_norm) ~= "number" then fail(fname, "max_norm must be a number, got %s", util.typename(max_norm)) end
  local p = opts.norm_type or 2.0
  if p == "inf" then p = math.huge end
  if type(p) ~= "number" or p <= 0 then
    fail(fname, "norm_type must be a positive number or \"inf\", got %s", tostring(opts.norm_type))
  end
  local grads = {}
  for _, t in ipairs(list) do
    if t.grad then grads[#grads + 1] = t.grad end
  end
  if #grads == 0 then return core.tensor(0.0) end
  local total
  core.no_grad(function()
    if p == math.huge then
      total = 0
      for _, g in ipairs(grads) do
        local m = g:abs():max():item()
        if m ~= m or m > total then total = m end
        if m ~= m then break end
      end
      total = f32(total)
    else
      local acc = 0.0
      for _, g in ipairs(grads) do
        local n
        if p == 2 then n = math.sqrt(g:double():square():sum():item())
        elseif p == 1 then n = g:double():abs():sum():item()
        else n = ((g:double():abs() ^ p):sum():item()) ^ (1 / p) end
        n = f32(n)
        acc = acc + (p == 2 and n * n or p == 1 and n or n ^ p)
      end
      total = f32(p == 2 and math.sqrt(acc) or p == 1 and acc or acc ^ (1 / p))
    end
  end)
  local finite = total == total and total ~= math.huge
  if opts.error_if_nonfinite and not finite then
    fail(fname, "The total norm of order %s for gradients from `parameters` is non-finite, so it cannot be "
      .. "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
      .. "`error_if_nonfinite=False`", util.format_number(p + 0.0))
  end
  local coef = f32(f32(max_norm) / f32(total + f32(1e-6)))
  if coef ~= coef or coef < 1 then -- a coefficient of 1 leaves them as they are
    core.no_grad(function()
      for _, g in ipairs(grads) do g:copy_(g * coef) end
    end)
  end
  return core.tensor(total)
end

-- clip_grad_value_(parameters, clip_value): clamps every gradient to
-- [-clip_value, clip_value] in place.
function utils.clip_grad_value_(parameters, clip_value)
  local fname = "clip_grad_value_"
  local list = param_list(fname, parameters)
  if type(clip_value) ~= "number" then
    fail(fname, "clip_value must be a number, got %s", util.typename(clip_value))
  end
  core.no_grad(function()
    for _, t in ipairs(list) do
      local g = t.grad
      if g then g:copy_(g:clamp(-clip_value, clip_value)) end
    end
  end)
end

return utils
