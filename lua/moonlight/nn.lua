-- ml.nn: torch.nn. nn.Module (a class system with ordered registration of
-- parameters, buffers and children), the layers, and one module per loss.
-- Heavy work is one C call per layer (core.linear, core.softmax, ...); this file
-- is bookkeeping.
local core = require "moonlight.core"

local nn = {}
local is_tensor = core.is_tensor

-- tensors made by nn.Parameter (a frozen one still registers as a parameter)
local marked_params = setmetatable({}, {__mode = "k"})

local function shape_str(x)
  if not is_tensor(x) then return type(x) end
  return "[" .. table.concat(x:shape(), ", ") .. "]"
end

local util = require "moonlight.util"
local check_options, set_of = util.check_options, util.set_of

-- Python's repr of a float (shortest round trip; 1.0 keeps its ".0")
local pyfloat = util.format_number

local function pybool(b) return b and "True" or "False" end

-- a 1-based Lua dim as PyTorch prints it (0-based; negative dims are the same)
local function pydim(d) return d > 0 and d - 1 or d end

------------------------------------------------------------------------------
-- nn.Parameter
------------------------------------------------------------------------------

-- A leaf sharing t's data that requires grad (requires_grad = false: a frozen
-- parameter, still registered as one).
function nn.Parameter(t, requires_grad)
  if not is_tensor(t) then
    error(("nn.Parameter: expected a tensor, got %s"):format(type(t)), 2)
  end
  local p = t:detach()
  if requires_grad == nil or requires_grad then p:requires_grad_(true) end
  marked_params[p] = true
  return p
end

local function is_param_value(v)
  return is_tensor(v) and v.is_leaf and (v.requires_grad or marked_params[v] == true)
end

------------------------------------------------------------------------------
-- nn.Module
------------------------------------------------------------------------------

local Module = {}
nn.Module = Module

local function is_module(v) return type(v) == "table" and rawget(v, "_modules") ~= nil end
nn.is_module = is_module

-- nn.utils: clip_grad_norm_, clip_grad_value_ (lua/moonlight/nn_utils.lua)
nn.utils = require "moonlight.nn_utils"

-- the registry of one instance: ordered names plus a map
local function registry() return {names = {}, map = {}} end

local function reg_set(r, name, v)
  if r.map[name] == nil then r.names[#r.names + 1] = name end
  r.map[name] = v
end

local function reg_remove(r, name)
  if r.map[name] == nil then return end
  r.map[name] = nil
  for i, n in ipairs(r.names) do
    if n == name then table.remove(r.names, i) break end
  end
end

local function class_name(self) return getmetatable(self).__name end

-- attribute lookup for what is not a plain field: the class first (methods), then
-- parameters, buffers, children. That is Python's order for an nn.Module (a class
-- attribute is found before Module.__getattr__ looks in _parameters, _buffers,
-- _modules), and it makes the most frequent lookups, methods (self:forward on
-- every call), one step. _params, _buffers and _modules are plain fields of every
-- instance, so reading them triggers no metamethod.
local function make_index(C)
  return function(self, k)
    local v = C[k]
    if v ~= nil then return v end
    v = self._params.map[k]
    if v ~= nil then return v end
    v = self._buffers.map[k]
    if v ~= nil then return v end
    v = self._modules.map[k]
    return v
  end
end

local function module_newindex(self, k, v)
  local params, buffers, modules = rawget(self, "_params"), rawget(self, "_buffers"),
                                   rawget(self, "_modules")
  if type(k) ~= "string" then
    error(("%s: attribute names must be strings, got %s"):format(class_name(self), type(k)), 2)
  end
  if is_module(v) then
    reg_remove(params, k); reg_remove(buffers, k); rawset(self, k, nil)
    reg_set(modules, k, v)
  elseif is_param_value(v) then
    reg_remove(modules, k); reg_remove(buffers, k); rawset(self, k, nil)
    reg_set(params, k, v)
  elseif buffers.map[k] ~= nil and (v == nil or is_tensor(v)) then
    if v == nil then reg_remove(buffers, k) else buffers.map[k] = v end
  elseif params.map[k] ~= nil then
    if v ~= nil then
      error(("%s: cannot assign %s as parameter '%s' (a leaf tensor that requires grad, an "
             .. "nn.Parameter, or nil expected)"):format(class_name(self),
             is_tensor(v) and "a non-leaf tensor" or type(v), k), 2)
    end
    reg_remove(params, k)
  elseif modules.map[k] ~= nil then
    if v ~= nil then
      error(("%s: cannot assign %s as child module '%s' (an nn.Module or nil expected)")
            :format(class_name(self), type(v), k), 2)
    end
    reg_remove(modules, k)
  else
    rawset(self, k, v)
  end
end

local function addindent(s, n)
  local lines = {}
  for line in (s .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  if #lines == 1 then return s end
  local pad = string.rep(" ", n)
  for i = 2, #lines do lines[i] = pad .. lines[i] end
  return table.concat(lines, "\n")
end

-- PyTorch's Module.__repr__
local function module_repr(self)
  local extra = self:extra_repr()
  local extra_lines = {}
  if extra and extra ~= "" then
    for line in (extra .. "\n"):gmatch("(.-)\n") do extra_lines[#extra_lines + 1] = line end
  end
  local child_lines = {}
  local mods = rawget(self, "_modules")
  for _, name in ipairs(mods.names) do
    child_lines[#child_lines + 1] = "(" .. name .. "): " .. addindent(module_repr(mods.map[name]), 2)
  end
  local s = self:_get_name() .. "("
  if #extra_lines + #child_lines > 0 then
    if #extra_lines == 1 and #child_lines == 0 then
      s = s .. extra_lines[1]
    else
      local lines = {}
      for _, l in ipairs(extra_lines) do lines[#lines + 1] = l end
      for _, l in ipairs(child_lines) do lines[#lines + 1] = l end
      s = s .. "\n  " .. table.concat(lines, "\n  ") .. "\n"
    end
  end
  return s .. ")"
end

local function run_hooks_call(self, pre, post, ...)
  local args = table.pack(...)
  if pre then
    for _, h in ipairs(pre) do
      local r = h.fn(self, args)
      if r ~= nil then args = type(r) == "table" and not is_tensor(r) and r or {r, n = 1} end
    end
  end
  local out = table.pack(self:forward(table.unpack(args, 1, args.n or #args)))
  if post then
    for _, h in ipairs(post) do
      local r = h.fn(self, args, out[1])
      if r ~= nil then out = {r, n = 1} end
    end
  end
  return table.unpack(out, 1, out.n)
end

-- m(x): forward, with the forward hooks when any is registered
local function module_call(self, ...)
  if not self._has_hooks then return self:forward(...) end -- a plain field, no lookup
  return run_hooks_call(self, rawget(self, "_forward_pre_hooks"), rawget(self, "_forward_hooks"), ...)
end

local METAMETHODS = {"__newindex", "__call", "__tostring", "__len"}

local function construct(C, ...)
  local self = setmetatable({
    _params = registry(), _buffers = registry(), _modules = registry(),
    _nonpersistent = {}, training = true, _has_hooks = false,
  }, C)
  self:init(...)
  return self
end

-- Module:extend(name): a class. Class(...) makes an instance and calls init(...).
function Module:extend(name)
  if type(name) ~= "string" then
    error(("Module:extend: expected a class name, got %s"):format(type(name)), 2)
  end
  local C = {}
  for _, mm in ipairs(METAMETHODS) do C[mm] = rawget(self, mm) end
  C.__name = name
  C.__index = make_index(C)
  C.super = self
  return setmetatable(C, {__index = self, __call = construct,
                          __tostring = function() return "<class " .. name .. ">" end})
end

Module.__newindex = module_newindex
Module.__call = module_call
Module.__tostring = module_repr
Module.__name = "Module"
Module.__index = make_index(Module)
setmetatable(Module, {__call = construct})

function Module:init() end

function Module:forward()
  error(("%s: forward is not implemented (define %s:forward)"):format(class_name(self),
        class_name(self)), 2)
end

function Module:extra_repr() return "" end
function Module:_get_name() return class_name(self) end

function Module:register_parameter(name, p)
  if p ~= nil and not is_tensor(p) then
    error(("register_parameter: '%s' must be a tensor or nil, got %s"):format(name, type(p)), 2)
  end
  if p == nil then reg_remove(rawget(self, "_params"), name) return end
  if not p.is_leaf then
    error(("register_parameter: '%s' is not a leaf tensor (use :detach())"):format(name), 2)
  end
  marked_params[p] = true
  self[name] = p
end

-- A tensor that is part of the module's state but not trained (running stats,
-- masks). persistent = false keeps it out of state_dict.
function Module:register_buffer(name, t, opts)
  opts = check_options("register_buffer", opts, {persistent = "boolean"})
  if type(name) ~= "string" then error("register_buffer: name must be a string", 2) end
  if t ~= nil and not is_tensor(t) then
    error(("register_buffer: '%s' must be a tensor or nil, got %s"):format(name, type(t)), 2)
  end
  reg_remove(rawget(self, "_params"), name)
  reg_remove(rawget(self, "_modules"), name)
  rawset(self, name, nil)
  if t == nil then reg_remove(rawget(self, "_buffers"), name) return end
  reg_set(rawget(self, "_buffers"), name, t)
  rawget(self, "_nonpersistent")[name] = (opts.persistent == false) or nil
end

function Module:add_module(name, m)
  if not is_module(m) then
    error(("add_module: '%s' must be an nn.Module, got %s"):format(tostring(name), type(m)), 2)
  end
  self[tostring(name)] = m
end
Module.register_module = Module.add_module

-- iterators and arrays -------------------------------------------------------

-- pre-order (self first), each module once
local function walk_modules(self, prefix, out, seen)
  if seen[self] then return end
  seen[self] = true
  out[#out + 1] = {prefix, self}
  local mods = rawget(self, "_modules")
  for _, name in ipairs(mods.names) do
    walk_modules(mods.map[name], prefix == "" and name or prefix .. "." .. name, out, seen)
  end
end

local function list_iter(list)
  local i = 0
  return function()
    i = i + 1
    local e = list[i]
    if e then return e[1], e[2] end
  end
end

function Module:named_modules(prefix)
  local out = {}
  walk_modules(self, prefix or "", out, {})
  return list_iter(out)
end

function Module:modules()
  local out = {}
  for _, m in self:named_modules() do out[#out + 1] = m end
  return out
end

function Module:named_children()
  local mods, out = rawget(self, "_modules"), {}
  for _, name in ipairs(mods.names) do out[#out + 1] = {name, mods.map[name]} end
  return list_iter(out)
end

function Module:children()
  local mods, out = rawget(self, "_modules"), {}
  for _, name in ipairs(mods.names) do out[#out + 1] = mods.map[name] end
  return out
end

local function named_members(self, field, prefix, recurse)
  local out, seen = {}, {}
  local mods = {}
  if recurse == false then mods = {{prefix or "", self}}
  else walk_modules(self, prefix or "", mods, {}) end
  for _, e in ipairs(mods) do
    local reg = rawget(e[2], field)
    for _, name in ipairs(reg.names) do
      local t = reg.map[name]
      if not seen[t] then
        seen[t] = true
        out[#out + 1] = {e[1] == "" and name or e[1] .. "." .. name, t, e[2], name}
      end
    end
  end
  return out
end

-- for name, p in m:named_parameters() do ... end: "layers.linear1.weight", in
-- registration order (a module's own parameters, then its children's)
function Module:named_parameters(prefix, recurse)
  return list_iter(named_members(self, "_params", prefix, recurse))
end

function Module:parameters(recurse)
  local out = {}
  for _, e in ipairs(named_members(self, "_params", "", recurse)) do out[#out + 1] = e[2] end
  return out
end

function Module:named_buffers(prefix, recurse)
  return list_iter(named_members(self, "_buffers", prefix, recurse))
end

function Module:buffers(recurse)
  local out = {}
  for _, e in ipairs(named_members(self, "_buffers", "", recurse)) do out[#out + 1] = e[2] end
  return out
end

-- modes, devices, gradients ---------------------------------------------------

function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawset(m, "training", mode and true or false) end
  return self
end

function Module:eval() return self:train(false) end

function Module:apply(fn)
  for _, m in ipairs(self:children()) do m:apply(fn) end
  fn(self)
  return self
end

-- m:to("cuda") / m:to("float64"): moves every parameter and buffer in place (the
-- same tensors, still leaves that require grad, so optimizers made before keep
-- working), and their gradients with them.
function Module:to(where)
  if type(where) ~= "string" and type(where) ~= "table" then
    error(("%s:to: expected a device or dtype name, got %s"):format(class_name(self), type(where)), 2)
  end
  core.no_grad(function()
    for _, field in ipairs({"_params", "_buffers"}) do
      for _, e in ipairs(named_members(self, field)) do
        local t = e[2]
        local moved = t:to(where)
        if field == "_params" and not (moved.dtype == "float32" or moved.dtype == "float64") then
          error(("%s:to: parameter '%s' cannot become %s"):format(class_name(self), e[1], moved.dtype), 0)
        end
        core._set_data(t, moved)
        local g = t.grad
        if g then core._set_data(g, g:to(where)) end
      end
    end
  end)
  return self
end

function Module:cuda() return self:to("cuda") end
function Module:cpu() return self:to("cpu") end
function Module:float() return self:to("float32") end
function Module:double() return self:to("float64") end

-- zero_grad(): gradients become nil (PyTorch 2's set_to_none default: no pass
-- over memory, and backward hands its fresh gradient over); {set_to_none = false}
-- zeroes them in place instead.
local zero_grad_options = {set_to_none = "boolean"}
function Module:zero_grad(opts)
  opts = check_options("zero_grad", opts, zero_grad_options)
  local none = opts.set_to_none ~= false
  for _, p in ipairs(self:parameters()) do
    if none then p.grad = nil
    else
      local g = p.grad
      if g then g:zero_() end
    end
  end
end

function Module:requires_grad_(on)
  if on == nil then on = true end
  for _, p in ipairs(self:parameters()) do p.requires_grad = on end
  return self
end

-- hooks --------------------------------------------------------------------------

local function add_hook(self, field, fn, fname)
  if type(fn) ~= "function" then
    error(("%s: expected a function, got %s"):format(fname, type(fn)), 3)
  end
  local list = rawget(self, field)
  if not list then list = {}; rawset(self, field, list) end
  local h = {fn = fn}
  list[#list + 1] = h
  rawset(self, "_has_hooks", true)
  return {remove = function()
    local l = rawget(self, field)
    if not l then return end
    for i, x in ipairs(l) do if x == h then table.remove(l, i) break end end
    if #l == 0 then rawset(self, field, nil) end
    rawset(self, "_has_hooks", rawget(self, "_forward_pre_hooks") ~= nil or
                               rawget(self, "_forward_hooks") ~= nil)
  end}
end

-- fn(module, inputs) runs before forward (inputs: a table of the arguments); a
-- non-nil return replaces the inputs. Returns a handle with :remove().
function Module:register_forward_pre_hook(fn)
  return add_hook(self, "_forward_pre_hooks", fn, "register_forward_pre_hook")
end

-- fn(module, inputs, output) runs after forward; a non-nil return replaces output.
function Module:register_forward_hook(fn)
  return add_hook(self, "_forward_hooks", fn, "register_forward_hook")
end

-- state dicts ---------------------------------------------------------------------

-- pairs() visits keys in the given order first, then any key added since
local function ordered(keys, map)
  local pos = {}
  for i, k in ipairs(keys) do pos[k] = i end
  return setmetatable(map, {__pairs = function(t)
    local i, rest = 0, nil
    return function()
      while i < #keys do
        i = i + 1
        local k = keys[i]
        if rawget(t, k) ~= nil then return k, rawget(t, k) end
      end
      repeat
        rest = next(t, rest)
      until rest == nil or not pos[rest]
      if rest ~= nil then return rest, rawget(t, rest) end
    end, t, nil
  end})
end

-- the (name, tensor) entries a state dict holds, in PyTorch's order
local function state_entries(self)
  local out = {}
  local mods = {}
  walk_modules(self, "", mods, {})
  for _, e in ipairs(mods) do
    local prefix, m = e[1], e[2]
    local p = rawget(m, "_params")
    for _, name in ipairs(p.names) do
      out[#out + 1] = {prefix == "" and name or prefix .. "." .. name, p.map[name]}
    end
    local b, np = rawget(m, "_buffers"), rawget(m, "_nonpersistent")
    for _, name in ipairs(b.names) do
      if not np[name] then
        out[#out + 1] = {prefix == "" and name or prefix .. "." .. name, b.map[name]}
      end
    end
  end
  return out
end

-- {["layers.linear1.weight"] = t, ...}: detached tensors sharing the module's data
-- (keys as PyTorch's; pairs() visits them in PyTorch's order).
function Module:state_dict()
  local keys, map = {}, {}
  for _, e in ipairs(state_entries(self)) do
    keys[#keys + 1] = e[1]
    map[e[1]] = e[2]:detach()
  end
  return ordered(keys, map)
end

local function quoted(list)
  local q = {}
  for i, k in ipairs(list) do q[i] = '"' .. k .. '"' end
  return table.concat(q, ", ")
end

-- Copies sd's tensors into the module's. strict (default): a missing or an
-- unexpected key is an error; a shape mismatch always is. Nothing is copied when
-- anything is wrong. Returns {missing_keys = {...}, unexpected_keys = {...}}.
function Module:load_state_dict(sd, opts)
  opts = check_options("load_state_dict", opts, {strict = "boolean"})
  local strict = opts.strict ~= false
  if type(sd) ~= "table" then
    error(("load_state_dict: expected a table of name -> tensor, got %s"):format(type(sd)), 2)
  end
  local entries = state_entries(self)
  local expected, missing, unexpected, errors = {}, {}, {}, {}
  for _, e in ipairs(entries) do
    expected[e[1]] = e[2]
    local v = sd[e[1]]
    if v == nil then missing[#missing + 1] = e[1]
    elseif not is_tensor(v) then
      errors[#errors + 1] = ("%s is a %s, expected a tensor"):format(e[1], type(v))
    elseif table.concat(v:shape(), ",") ~= table.concat(e[2]:shape(), ",") then
      errors[#errors + 1] = ("size mismatch for %s: copying a param with shape %s from "
        .. "checkpoint, the shape in current model is %s"):format(e[1], shape_str(v), shape_str(e[2]))
    end
  end
  for k in next, sd do
    if expected[k] == nil then unexpected[#unexpected + 1] = tostring(k) end
  end
  table.sort(unexpected)
  if strict then
    if #missing > 0 then
      table.insert(errors, 1, "Missing key(s) in state_dict: " .. quoted(missing) .. ".")
    end
    if #unexpected > 0 then
      table.insert(errors, #missing > 0 and 2 or 1,
                   "Unexpected key(s) in state_dict: " .. quoted(unexpected) .. ".")
    end
  end
  if #errors > 0 then
    error(("load_state_dict: Error(s) in loading state_dict for %s:\n\t%s"):format(
          class_name(self), table.concat(errors, "\n\t")), 2)
  end
  core.no_grad(function()
    for _, e in ipairs(entries) do
      local v = sd[e[1]]
      if v ~= nil then
        local dst = e[2]
        if v.device ~= dst.device then v = v:to(dst.device) end
        dst:copy_(v)
      end
    end
  end)
  return {missing_keys = missing, unexpected_keys = unexpected}
end

-- The layer named in an error: "Linear(784 -> 64)" or its repr.
function Module:_short_name() return module_repr(self) end

-- Runs f(x, ...) and restates its error with the layer and the input's shape.
local function guarded(self, f, x, ...)
  local ok, y = pcall(f, x, ...)
  if ok then return y end
  util.raise(("%s got input %s: %s"):format(self:_short_name(), shape_str(x), util.message(y)), 3)
end
nn._guarded = guarded

-- the LightningModule side ----------------------------------------------------------
-- Defined here, with the rest of Module, so that a module can use them before
-- ml.Trainer is loaded (an init that calls save_hyperparameters). The Trainer that
-- runs a step or hook sets the model's private field _trainer; its result set
-- (trainer._results, lua/moonlight/trainer.lua) does the bookkeeping.

-- self:log(name, value, {on_step, on_epoch, prog_bar, logger, reduce_fx, batch_size, ...})
function Module:log(name, value, opts)
  local trainer = rawget(self, "_trainer")
  if not trainer or not trainer._results then
    util.raise("log: self:log can only be called inside a step or hook run by a Trainer")
  end
  trainer._results:log(name, value, opts, trainer._current_batch)
end

-- self:log_dict({name = value, ...}, opts): self:log for each, in name order
function Module:log_dict(t, opts)
  if type(t) ~= "table" or is_tensor(t) then
    util.fail("log_dict", "expected a table of name -> value, got %s", util.typename(t))
  end
  local names = {}
  for k in pairs(t) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do self:log(k, t[k], opts) end
end

-- self:clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm):
-- clips the optimizer's gradients by norm (default) or by value, as the Trainer's
-- gradient_clip_val does; for a configure_gradient_clipping hook of one's own.
function Module:clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
  local trainer = rawget(self, "_trainer")
  if not trainer then
    util.raise("clip_gradients: self:clip_gradients can only be called inside a hook run by a Trainer")
  end
  if gradient_clip_val ~= nil and type(gradient_clip_val) ~= "number" then
    util.fail("clip_gradients", "gradient_clip_val must be a number, got %s", util.typename(gradient_clip_val))
  end
  trainer:_clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)
end

-- self:save_hyperparameters({name = value, ...}): self.hparams, which the
-- Trainer hands to its logger (hparams.yaml) and stores in checkpoints, and
-- Model:load_from_checkpoint builds the model from. Without an argument, inside
-- init: init's own arguments, by name (Lightning's), or, when init takes one
-- table of options, a copy of that table.
function Module:save_hyperparameters(hp)
  if hp ~= nil and (type(hp) ~= "table" or is_tensor(hp)) then
    util.fail("save_hyperparameters", "expected a table of name -> value, got %s", util.typename(hp))
  end
  if hp == nil and debug and debug.getinfo then
    hp = {}
    local info = debug.getinfo(2, "u")
    local names, values = {}, {}
    for i = 1, info and info.nparams or 0 do
      local name, value = debug.getlocal(2, i)
      if name ~= "self" then names[#names + 1], values[#names + 1] = name, value end
    end
    if #names == 1 and type(values[1]) == "table" and getmetatable(values[1]) == nil then
      for k, v in pairs(values[1]) do hp[k] = v end
    else
      for i, name in ipairs(names) do hp[name] = values[i] end
    end
  end
  rawset(self, "hparams", hp or {})
end

-- Model:load_from_checkpoint(path, overrides): a new Model from a Trainer
-- checkpoint: its saved hyperparameters (overrides' values on top; also
-- map_location and strict) passed to init, on_load_checkpoint, then the weights
-- (lua/moonlight/callbacks.lua). A class method: called on the class.
function Module.load_from_checkpoint(cls, path, overrides)
  return require("moonlight.callbacks").load_from_checkpoint(cls, path, overrides)
end

-- Manual optimization (Lightning's): set self.automatic_optimization = false in
-- init; training_step then calls self:optimizers(), opt:zero_grad(),
-- self:manual_backward(loss), opt:step() itself.
Module.automatic_optimization = true

local function running_trainer(self, fname)
  local trainer = rawget(self, "_trainer")
  if not trainer then util.raise(fname .. ": self:" .. fname .. " can only be called inside a hook run by a Trainer") end
  return trainer
end

-- self:optimizers(use_pl_optimizer = true): the optimizer configure_optimizers
-- returned (wrapped: its step runs the hooks and counts global_step), a list when
-- there are several
function Module:optimizers(use_pl_optimizer)
  return running_trainer(self, "optimizers"):_module_optimizers(self, use_pl_optimizer)
end

-- self:lr_schedulers(): the scheduler, a list when there are several, nil for none
function Module:lr_schedulers()
  return running_trainer(self, "lr_schedulers"):_module_lr_schedulers()
end

-- self:manual_backward(loss): loss:backward() with the backward hooks
function Module:manual_backward(loss)
  running_trainer(self, "manual_backward"):_manual_backward(self, loss)
end

------------------------------------------------------------------------------
-- nn.init (the subset the layers use)
------------------------------------------------------------------------------

nn.init = {}

-- fills t in place with U(a, b) drawn from ml's generator
function nn.init.uniform_(t, a, b)
  a, b = a or 0, b or 1
  core.no_grad(function()
    local u = core.rand(t:shape(), {dtype = t.dtype})
    t:copy_(u * (b - a) + a)
  end)
  return t
end

function nn.init.zeros_(t)
  core.no_grad(function() t:zero_() end)
  return t
end

function nn.init.constant_(t, v)
  core.no_grad(function() t:fill_(v) end)
  return t
end

local function fan_in(t)
  local s = t:shape()
  if #s < 2 then error("nn.init: fan in needs a tensor with at least 2 dims", 3) end
  local recept = 1
  for i = 3, #s do recept = recept * s[i] end
  return s[2] * recept
end
nn.init._fan_in = fan_in

-- kaiming_uniform_(t, {a = 0, mode = "fan_in", nonlinearity = "leaky_relu"})
function nn.init.kaiming_uniform_(t, opts)
  opts = check_options("kaiming_uniform_", opts, {a = {"number", 0}, mode = {"string", "fan_in"},
                                                  nonlinearity = {"string", "leaky_relu"}})
  local a, nl = opts.a, opts.nonlinearity
  local gain
  if nl == "leaky_relu" then gain = math.sqrt(2 / (1 + a * a))
  elseif nl == "relu" then gain = math.sqrt(2)
  elseif nl == "linear" or nl == "sigmoid" then gain = 1
  elseif nl == "tanh" then gain = 5 / 3
  else error(("kaiming_uniform_: unsupported nonlinearity '%s'"):format(nl), 2) end
  local fan
  if opts.mode == "fan_in" then fan = fan_in(t)
  else fan = t:shape()[1] * (fan_in(t) // t:shape()[2]) end
  local bound = math.sqrt(3) * gain / math.sqrt(fan)
  return nn.init.uniform_(t, -bound, bound)
end

-- The default bias of a layer m (Linear, the convolutions) whose weight has fan_in
-- inputs, as PyTorch's: a Parameter of n elements drawn from U(+-1 / sqrt(fan_in))
-- (0 where fan_in is 0), of opts.dtype on opts.device; none with opts.bias = false.
function nn.init._default_bias(m, n, fan_in_of_weight, opts)
  if opts.bias == false then
    m:register_parameter("bias", nil)
    return
  end
  local bound = fan_in_of_weight > 0 and 1 / math.sqrt(fan_in_of_weight) or 0
  local b = nn.init.uniform_(core.zeros({n}, {dtype = opts.dtype}), -bound, bound)
  if opts.device then b = b:to(opts.device) end
  m.bias = nn.Parameter(b)
end

------------------------------------------------------------------------------
-- layers
------------------------------------------------------------------------------

local linear = core.linear

-- nn.Linear(in_features, out_features, {bias = true, dtype, device})
local Linear = Module:extend("Linear")
nn.Linear = Linear

local function check_count(fname, what, v)
  if math.type(v) ~= "integer" or v < 0 then
    error(("%s: %s must be a non-negative integer, got %s"):format(fname, what, tostring(v)), 4)
  end
end

function Linear:init(in_features, out_features, opts)
  check_count("nn.Linear", "in_features", in_features)
  check_count("nn.Linear", "out_features", out_features)
  opts = check_options("nn.Linear", opts, {bias = "boolean", dtype = "string", device = "string"})
  self.in_features, self.out_features = in_features, out_features
  -- kaiming_uniform(a = sqrt(5)) on [out, in] is U(-1/sqrt(in), 1/sqrt(in)), as PyTorch
  local w = core.zeros({out_features, in_features}, {dtype = opts.dtype})
  if in_features > 0 then nn.init.kaiming_uniform_(w, {a = math.sqrt(5)}) end
  if opts.device then w = w:to(opts.device) end
  self.weight = nn.Parameter(w)
  nn.init._default_bias(self, out_features, in_features, opts)
end

function Linear:forward(x)
  local params = rawget(self, "_params").map
  local ok, y = pcall(linear, x, params.weight, params.bias)
  if ok then return y end
  util.raise(("Linear(%d -> %d) got input %s: %s"):format(self.in_features, self.out_features,
             shape_str(x), util.message(y)), 2)
end

function Linear:_short_name()
  return ("Linear(%d -> %d)"):format(self.in_features, self.out_features)
end

function Linear:extra_repr()
  return ("in_features=%d, out_features=%d, bias=%s"):format(self.in_features, self.out_features,
         pybool(rawget(self, "_params").map.bias ~= nil))
end

-- activations ----------------------------------------------------------------

local function activation(name, f)
  local C = Module:extend(name)
  function C:forward(x) return guarded(self, f, x) end
  nn[name] = C
  return C
end

activation("ReLU", core.relu)
activation("Sigmoid", core.sigmoid)
activation("Tanh", core.tanh)

function nn.ReLU:init(opts)
  opts = check_options("nn.ReLU", opts, {inplace = "boolean"})
  self.inplace = opts.inplace == true
end
function nn.ReLU:extra_repr() return self.inplace and "inplace=True" or "" end

-- nn.Identity(...): its arguments are ignored, as PyTorch's
local Identity = Module:extend("Identity")
nn.Identity = Identity
function Identity:init() end
function Identity:forward(x) return x end

-- The activations of issue 16 (ml.F's, which the op list computes): PyTorch's
-- constructor arguments, positional or as an options table, and its reprs.
local Fn = require "moonlight.functional"

-- The options of C(a, b): a table, or the numbers/strings in the order of names.
local function module_opts(name, spec, names, a, b)
  if type(a) == "table" then
    if b ~= nil then util.fail("nn." .. name, "options come last, got %s after them", util.typename(b)) end
    return check_options("nn." .. name, a, spec)
  end
  if b ~= nil and not names[2] then
    util.fail("nn." .. name, "takes at most 1 argument, got %s after %s", util.typename(b),
              util.typename(a))
  end
  local o = {}
  if a ~= nil then o[names[1]] = a end
  if b ~= nil then o[names[2]] = b end
  return check_options("nn." .. name, o, spec)
end

local function inplace_repr(self, sep) return self.inplace and sep .. "inplace=True" or "" end

-- nn.GELU(approximate = "none")
local GELU = Module:extend("GELU")
nn.GELU = GELU
function GELU:init(a, b)
  local o = module_opts("GELU", {approximate = {"string", "none"}}, {"approximate"}, a, b)
  if o.approximate ~= "none" and o.approximate ~= "tanh" then
    util.fail("nn.GELU", "approximate must be 'none' or 'tanh', got '%s'", o.approximate)
  end
  self.approximate = o.approximate
end
function GELU:forward(x) return guarded(self, Fn.gelu, x, {approximate = self.approximate}) end
function GELU:extra_repr() return ("approximate='%s'"):format(self.approximate) end

-- nn.SiLU(inplace = false)
local SiLU = Module:extend("SiLU")
nn.SiLU = SiLU
function SiLU:init(a, b)
  self.inplace = module_opts("SiLU", {inplace = "boolean"}, {"inplace"}, a, b).inplace == true
end
function SiLU:forward(x) return guarded(self, Fn.silu, x) end
function SiLU:extra_repr() return inplace_repr(self, "") end

-- nn.LeakyReLU(negative_slope = 0.01, inplace = false)
local LeakyReLU = Module:extend("LeakyReLU")
nn.LeakyReLU = LeakyReLU
function LeakyReLU:init(a, b)
  local o = module_opts("LeakyReLU", {negative_slope = {"number", 0.01}, inplace = "boolean"},
                        {"negative_slope", "inplace"}, a, b)
  self.negative_slope, self.inplace = o.negative_slope, o.inplace == true
end
function LeakyReLU:forward(x) return guarded(self, Fn.leaky_relu, x, self.negative_slope) end
function LeakyReLU:extra_repr()
  return ("negative_slope=%s%s"):format(pyfloat(self.negative_slope), inplace_repr(self, ", "))
end

-- nn.ELU(alpha = 1.0, inplace = false)
local ELU = Module:extend("ELU")
nn.ELU = ELU
function ELU:init(a, b)
  local o = module_opts("ELU", {alpha = {"number", 1.0}, inplace = "boolean"}, {"alpha", "inplace"}, a, b)
  self.alpha, self.inplace = o.alpha, o.inplace == true
end
function ELU:forward(x) return guarded(self, Fn.elu, x, self.alpha) end
function ELU:extra_repr()
  return ("alpha=%s%s"):format(pyfloat(self.alpha), inplace_repr(self, ", "))
end

-- nn.Softplus(beta = 1, threshold = 20)
local Softplus = Module:extend("Softplus")
nn.Softplus = Softplus
function Softplus:init(a, b)
  local o = module_opts("Softplus", {beta = {"number", 1}, threshold = {"number", 20}},
                        {"beta", "threshold"}, a, b)
  self.beta, self.threshold = o.beta, o.threshold
end
function Softplus:forward(x) return guarded(self, Fn.softplus, x, self.beta, self.threshold) end
function Softplus:extra_repr()
  return ("beta=%s, threshold=%s"):format(pyfloat(self.beta), pyfloat(self.threshold))
end

-- nn.Softmax(dim) / nn.LogSoftmax(dim): dim is required (1-based, negative from the end)
local function softmax_class(name, f)
  local C = Module:extend(name)
  function C:init(dim)
    if math.type(dim) ~= "integer" or dim == 0 then
      error(("nn.%s: dim is required, a 1-based (or negative) integer, got %s"):format(name,
            tostring(dim)), 3)
    end
    self.dim = dim
  end
  function C:forward(x) return guarded(self, f, x, self.dim) end
  function C:extra_repr() return ("dim=%d"):format(pydim(self.dim)) end
  nn[name] = C
end
softmax_class("Softmax", core.softmax)
softmax_class("LogSoftmax", core.log_softmax)

-- nn.Flatten(start_dim = 2, end_dim = -1), 1-based dims (PyTorch's 1 and -1)
local Flatten = Module:extend("Flatten")
nn.Flatten = Flatten
function Flatten:init(start_dim, end_dim)
  self.start_dim, self.end_dim = start_dim or 2, end_dim or -1
  for _, d in ipairs({self.start_dim, self.end_dim}) do
    if math.type(d) ~= "integer" or d == 0 then
      error(("nn.Flatten: dims are 1-based (or negative) integers, got %s"):format(tostring(d)), 3)
    end
  end
end
local flatten = core.flatten
function Flatten:forward(x) return guarded(self, flatten, x, self.start_dim, self.end_dim) end
function Flatten:extra_repr()
  return ("start_dim=%d, end_dim=%d"):format(pydim(self.start_dim), pydim(self.end_dim))
end

-- nn.Dropout(p = 0.5): inverted dropout while training (kept elements scaled by
-- 1 / (1 - p), the mask drawn from ml.rand: ml.F.dropout), identity in eval mode
local Dropout = Module:extend("Dropout")
nn.Dropout = Dropout
function Dropout:init(p, opts)
  p = p == nil and 0.5 or p
  if type(p) ~= "number" or p < 0 or p > 1 then
    error(("nn.Dropout: p must be a probability in [0, 1], got %s"):format(tostring(p)), 3)
  end
  opts = check_options("nn.Dropout", opts, {inplace = "boolean"})
  self.p, self.inplace = p, opts.inplace == true
end
function Dropout:forward(x)
  if not self.training or self.p == 0 then return x end
  if not is_tensor(x) then error(("%s got input %s"):format(module_repr(self), type(x)), 2) end
  return guarded(self, Fn.dropout, x, {p = self.p})
end
function Dropout:extra_repr()
  return ("p=%s, inplace=%s"):format(pyfloat(self.p), pybool(self.inplace))
end

-- A container class C whose children are named "0", "1", ... (Sequential,
-- ModuleList): c:append(m) adds the next one, c[i] is the i-th (1-based; -1 the
-- last), #c how many there are.
local function module_list(C)
  function C:append(m)
    if not is_module(m) then error(("%s:append: expected an nn.Module, got %s"):format(C.__name, type(m)), 2) end
    self[tostring(#rawget(self, "_modules").names)] = m
    return self
  end
  local base_index = C.__index
  C.__index = function(self, k)
    if math.type(k) == "integer" then
      local names = rawget(self, "_modules").names
      if k < 0 then k = #names + 1 + k end
      local name = names[k]
      return name and rawget(self, "_modules").map[name] or nil
    end
    return base_index(self, k)
  end
  C.__len = function(self) return #rawget(self, "_modules").names end
end
nn._module_list = module_list

-- nn.Sequential(m1, m2, ...): children named "0", "1", ... as PyTorch's (state
-- dict keys "0.weight" load into torch.nn.Sequential); seq[i] is the i-th (1-based)
local Sequential = Module:extend("Sequential")
nn.Sequential = Sequential
function Sequential:init(...)
  local n = select("#", ...)
  for i = 1, n do
    local m = select(i, ...)
    if not is_module(m) then
      error(("nn.Sequential: argument %d is a %s, expected an nn.Module"):format(i, type(m)), 3)
    end
    self[tostring(i - 1)] = m
  end
end
-- A ReLU followed by a MaxPool2d, both plain (their own classes' forward, no hooks,
-- no indices asked for) and every window holding an input element (a window wholly
-- in the padding is -inf before a ReLU, 0 after), runs the pooling first and the
-- ReLU on its output, a quarter of the size (MaxPool2d(2)): max and ReLU commute
-- (ReLU keeps every order; a NaN wins both ways), so the output, every gradient and
-- the NaN cases are the same bits (nn_cnn_spec checks), and the MNIST CNN's two
-- ReLUs move a quarter of the memory. ml.summary's hooks see the layers in order.
local ReLU = nn.ReLU
local function pool_before_relu(relu, pool)
  return getmetatable(pool) == nn.MaxPool2d and not relu._has_hooks and not pool._has_hooks
    and not pool.return_indices and rawget(relu, "forward") == nil and rawget(pool, "forward") == nil
    and pool:_windows_hold_input()
end

-- A BatchNorm2d followed by a MaxPool2d whose windows tile its input (kernel ==
-- stride, no padding, dilation 1, floor mode), with or without a ReLU between them,
-- all plain, runs as one op (ml._batch_norm_max_pool2d, src/ops/batchnorm.h) that
-- never stores the normalised input: for the MNIST CNN a [128, 16, 28, 28] tensor
-- not written and read back, and a backward that does not write and read back the
-- pooling's mostly-zero gradient of it. The ReLU runs after the pooling, as above.
-- The output and running statistics are the unfused layers' bits; the gradients'
-- sums run in another order (float rounding; nn_cnn_spec checks both).
local function bn_pool_kernel(bn, relu, pool, x)
  if bn._has_hooks or rawget(bn, "forward") ~= nil or not is_tensor(x) or x:dim() ~= 4
      or getmetatable(pool) ~= nn.MaxPool2d or pool._has_hooks or rawget(pool, "forward") ~= nil
      or (relu and (relu._has_hooks or rawget(relu, "forward") ~= nil)) then
    return nil
  end
  local kh, kw = pool:_tiling_kernel()
  -- a window larger than the planes: the unfused MaxPool2d names the error
  if not kh or x:size(3) < kh or x:size(4) < kw or kh > 256 // kw then return nil end
  return kh, kw
end

function Sequential:forward(x, ...)
  local mods = rawget(self, "_modules")
  local names, map = mods.names, mods.map
  local i, n = 1, #names
  while i <= n do
    local m = map[names[i]]
    local mt = getmetatable(m)
    local kh, kw, relu
    if mt == nn.BatchNorm2d and i < n and (i > 1 or select("#", ...) == 0) then
      local nxt = map[names[i + 1]]
      relu = getmetatable(nxt) == ReLU and nxt or nil
      local pool = relu and map[names[i + 2]] or nxt
      if pool then kh, kw = bn_pool_kernel(m, relu, pool, x) end
    end
    if kh then
      x = m:_forward_max_pool(x, kh, kw)
      if relu then x = relu:forward(x) end
      i = i + (relu and 3 or 2)
    elseif mt == ReLU and i < n and (i > 1 or select("#", ...) == 0)
        and pool_before_relu(m, map[names[i + 1]]) then
      x = m:forward(map[names[i + 1]]:forward(x))
      i = i + 2
    else
      if i == 1 then x = m(x, ...) else x = m(x) end
      i = i + 1
    end
  end
  return x
end
module_list(Sequential)

------------------------------------------------------------------------------
-- losses: one module per ml.F loss, same options
------------------------------------------------------------------------------

local F = require "moonlight.functional"

-- opts naming tensors (weight, pos_weight) become buffers, as in PyTorch, so they
-- follow m:to() and appear in state_dict
local tensor_opts = set_of("weight", "pos_weight")

local function loss_class(name, fname, three)
  local C = Module:extend(name)
  function C:init(opts)
    if opts ~= nil and (type(opts) ~= "table" or is_tensor(opts)) then
      error(("nn.%s: options must be a table, got %s"):format(name, type(opts)), 3)
    end
    local plain, has_buffers = {}, false
    for k, v in pairs(opts or {}) do
      if tensor_opts[k] and is_tensor(v) then
        self:register_buffer(k, v)
        has_buffers = true
      else
        plain[k] = v
      end
    end
    self._opts, self._has_buffers = plain, has_buffers
  end
  local function options(self)
    if not self._has_buffers then return self._opts end
    local o = {}
    for k, v in pairs(self._opts) do o[k] = v end
    for bname, b in self:named_buffers(nil, false) do o[bname] = b end
    return o
  end
  local function fn()
    local f = F[fname]
    if not f then error(("nn.%s: ml.F.%s is not available"):format(name, fname), 3) end
    return f
  end
  if three then
    function C:forward(input, target, var) return fn()(input, target, var, options(self)) end
  else
    function C:forward(input, target) return fn()(input, target, options(self)) end
  end
  nn[name] = C
end

loss_class("MSELoss", "mse_loss")
loss_class("L1Loss", "l1_loss")
loss_class("SmoothL1Loss", "smooth_l1_loss")
loss_class("CrossEntropyLoss", "cross_entropy")
loss_class("NLLLoss", "nll_loss")
loss_class("BCELoss", "binary_cross_entropy")
loss_class("BCEWithLogitsLoss", "binary_cross_entropy_with_logits")
loss_class("KLDivLoss", "kl_div")
loss_class("PoissonNLLLoss", "poisson_nll_loss")
loss_class("GaussianNLLLoss", "gaussian_nll_loss", true)

-- convolution, pooling, batch norm (issue 16): lua/moonlight/nn_cnn.lua
require("moonlight.nn_cnn")(nn)
-- normalisation, embeddings, attention (issue 16): LayerNorm, GroupNorm, Embedding,
-- MultiheadAttention, TransformerEncoderLayer, TransformerEncoder, ModuleList
require("moonlight.nn_transformer")(nn)

return nn
