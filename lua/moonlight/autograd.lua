-- ml.autograd: user-defined differentiable ops, as torch.autograd.Function.
--
--   local Cube = ml.autograd.Function:extend("Cube")
--   function Cube.forward(ctx, x, k)        -- runs with grad mode off
--     ctx:save_for_backward(x)
--     ctx.k = k                             -- anything that is not a tensor
--     return x ^ k
--   end
--   function Cube.backward(ctx, g)          -- one gradient per forward result
--     local x = ctx.saved_tensors[1]
--     return g * ctx.k * x ^ (ctx.k - 1), nil   -- one per forward argument
--   end
--   local y = Cube.apply(x, 3)              -- y.grad_fn == "CubeBackward"
--
-- Gradients: backward gets one value per forward result (a tensor for every
-- floating point tensor result, zeros where backward never reached it unless
-- ctx:set_materialize_grads(false); nil for the others) and returns one per
-- forward argument (a tensor or nil; trailing nils may be left out). A gradient
-- of another dtype is cast to its input's; one of a broadcast shape is summed
-- down to it (torch's engine does both). ctx.needs_input_grad[i] says whether
-- argument i needs a gradient. The node calling backward is made in C
-- (src/lua/autograd_function.c); an error in backward is a Lua error from the
-- backward() call, prefixed with "Cube.backward: ".
--
-- What ctx holds lives until backward has run (or the outputs are collected).
-- Keep tensors with ctx:save_for_backward; the outputs the caller gets are not
-- the tensors forward returned (they are new tensors over the same data that
-- carry the node), so ctx cannot hold the node alive in a cycle.
local core = require "moonlight.core"
local util = require "moonlight.util"

local is_tensor = core.is_tensor
local fail = util.fail

local autograd = {
  no_grad = core.no_grad, enable_grad = core.enable_grad,
  is_grad_enabled = core.is_grad_enabled, set_grad_enabled = core.set_grad_enabled,
}

-- the ctx handed to forward and backward
local Ctx = {}
Ctx.__index = Ctx
Ctx.__name = "FunctionCtx"

local function check_tensors(fname, ...)
  local n = select("#", ...)
  for i = 1, n do
    local v = select(i, ...)
    if v ~= nil and not is_tensor(v) then
      fail(fname, "argument %d is a %s; expected tensors (or nil)", i, util.typename(v))
    end
  end
end

-- ctx:save_for_backward(a, b, ...): read back as ctx.saved_tensors[1], [2], ...
function Ctx:save_for_backward(...)
  check_tensors("save_for_backward", ...)
  self.saved_tensors = table.pack(...)
end

-- ctx:mark_non_differentiable(t, ...): these results get no gradient (their
-- gradient in backward is zeros, or nil without materialized grads)
function Ctx:mark_non_differentiable(...)
  check_tensors("mark_non_differentiable", ...)
  self._non_differentiable = self._non_differentiable or {}
  for i = 1, select("#", ...) do
    local t = select(i, ...)
    if t ~= nil then self._non_differentiable[t] = true end
  end
end

-- ctx:set_materialize_grads(false): backward gets nil for results that no
-- gradient reached, instead of zeros
function Ctx:set_materialize_grads(value)
  if type(value) ~= "boolean" then
    fail("set_materialize_grads", "expected a boolean, got %s", util.typename(value))
  end
  self._materialize = value
end

local Function = {__name = "Function"}
autograd.Function = Function

function Function.forward(ctx, ...)
  error(string.format("%s.forward is not implemented", ctx._fn), 2)
end

function Function.backward(ctx, ...)
  error(string.format("%s.backward is not implemented", ctx._fn), 2)
end

-- Cube.apply(...): runs forward (grad mode off) and, when an argument requires
-- grad and grad mode is on, records the node whose backward is Cube.backward.
local function apply(cls, ...)
  local args = table.pack(...)
  local grad_on = core.is_grad_enabled()
  local needs, any = {}, false
  for i = 1, args.n do
    local a = args[i]
    local need = grad_on and is_tensor(a) and a.requires_grad or false
    needs[i] = need
    any = any or need
  end
  local ctx = setmetatable({needs_input_grad = needs, saved_tensors = {n = 0}, _fn = cls.__name,
                            _materialize = true}, Ctx)
  local results = table.pack(core.no_grad(cls.forward, ctx, ...))
  if not any then return table.unpack(results, 1, results.n) end
  local out = core._function_attach(cls.__name, function(...) return cls.backward(ctx, ...) end,
                                    args, results, ctx._non_differentiable, ctx._materialize)
  return table.unpack(out, 1, out.n)
end

-- Function:extend(name): a new Function class; define name.forward and
-- name.backward (functions of ctx, as torch's static methods), call name.apply.
function Function:extend(name)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    fail("Function:extend", "expected a name (letters, digits, _), got %s",
         type(name) == "string" and string.format("%q", name) or util.typename(name))
  end
  local cls = setmetatable({__name = name}, {
    __index = self,
    __tostring = function() return "autograd.Function " .. name end,
  })
  cls.apply = function(...) return apply(cls, ...) end
  return cls
end

return autograd
