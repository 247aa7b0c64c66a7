-- ml.optim: torch.optim. The optimizers keep their state and param groups here;
-- each step is one fused C pass per parameter group (core._adam_step_multi) or per
-- parameter (core._sgd_step),
-- with PyTorch 1.13's update rules and defaults.
local core = require "moonlight.core"
local util = require "moonlight.util"
local check_options, fail = util.check_options, util.fail

local optim = {}
local is_tensor = core.is_tensor
-- the default of a hyperparameter the user must give (SGD's lr)
local REQUIRED = setmetatable({}, {__tostring = function() return "<required parameter>" end})
optim.required = REQUIRED

local function deep_copy(v)
  if type(v) ~= "table" or is_tensor(v) or getmetatable(v) then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deep_copy(x) end
  return c
end

------------------------------------------------------------------------------
-- Optimizer: the common part
------------------------------------------------------------------------------

local Optimizer = {}
Optimizer.__index = Optimizer
optim.Optimizer = Optimizer

-- params: an array of tensors, or an array of groups {params = {...}, lr = ...}
local function make_groups(fname, params)
  if type(params) ~= "table" or is_tensor(params) then
    fail(fname, "params must be an array of tensors or of param groups, got %s",
         is_tensor(params) and "a tensor" or type(params))
  end
  -- a module has a parameters method (nn.Module's); its own table holds none
  local mt = getmetatable(params)
  if type(params.parameters) == "function" and type(mt) == "table" then
    fail(fname, "params must be an array of tensors, got the module %s itself: pass "
         .. "model:parameters()", tostring(mt.__name or "Module"))
  end
  if #params == 0 then fail(fname, "optimizer got an empty parameter list") end
  if is_tensor(params[1]) then return {{params = params}} end
  return params
end

local function new_optimizer(cls, fname, params, opts, defaults, validate)
  local allowed = {}
  for k in pairs(defaults) do allowed[k] = true end
  opts = check_options(fname, opts, allowed)
  local d = {}
  for k, v in pairs(defaults) do d[k] = v end
  for k, v in pairs(opts) do d[k] = v end
  local self = setmetatable({defaults = d, param_groups = {}, state = {}, _fname = fname,
                             _validate = validate}, cls)
  for _, g in ipairs(make_groups(fname, params)) do self:add_param_group(g) end
  return self
end

-- add_param_group({params = {...}, lr = ...}): the group's own hyperparameters,
-- the optimizer's defaults for the rest
function Optimizer:add_param_group(group)
  local fname = self._fname
  if type(group) ~= "table" or is_tensor(group) then
    fail(fname, "a param group must be a table {params = ..., ...}, got %s", util.typename(group))
  end
  local allowed = {params = true, name = "string"} -- a name: what LearningRateMonitor calls the group
  for k in pairs(self.defaults) do allowed[k] = true end
  check_options(fname, group, allowed, "param group key")
  local ps = group.params
  if is_tensor(ps) then ps = {ps} end
  if type(ps) ~= "table" then
    fail(fname, "param group 'params' must be an array of tensors, got %s", type(ps))
  end
  if #ps == 0 then fail(fname, "optimizer got an empty parameter list") end
  local seen = {}
  for _, g in ipairs(self.param_groups) do for _, p in ipairs(g.params) do seen[p] = true end end
  local list = {}
  for i, p in ipairs(ps) do
    if not is_tensor(p) then
      fail(fname, "params[%d] is a %s, expected a tensor", i, type(p))
    end
    if not p.is_leaf then fail(fname, "params[%d]: can't optimize a non-leaf tensor", i) end
    if p.dtype ~= "float32" and p.dtype ~= "float64" then
      fail(fname, "params[%d] is %s, expected a floating point tensor", i, p.dtype)
    end
    if seen[p] then
      fail(fname, "some parameters appear in more than one parameter group")
    end
    seen[p] = true
    list[i] = p
  end
  local g = {params = list}
  for k, v in pairs(self.defaults) do g[k] = deep_copy(v) end
  for k, v in pairs(group) do if k ~= "params" then g[k] = deep_copy(v) end end
  for k, v in pairs(g) do
    if v == REQUIRED then fail(fname, "%s is required (it has no default)", k) end
  end
  self._validate(fname, g)
  self.param_groups[#self.param_groups + 1] = g
end

-- zero_grad(): gradients become nil (set_to_none, PyTorch 2's default; backward
-- then hands its fresh gradient over with no extra pass); {set_to_none = false}
-- zeroes them in place.
local zero_grad_options = {set_to_none = "boolean"}
function Optimizer:zero_grad(opts)
  if opts ~= nil then check_options("zero_grad", opts, zero_grad_options) end
  local none = not (opts and opts.set_to_none == false)
  for _, g in ipairs(self.param_groups) do
    for _, p in ipairs(g.params) do
      if none then p.grad = nil
      else
        local gr = p.grad
        if gr then gr:zero_() end
      end
    end
  end
end

-- state_dict(): {state = {[i] = {...}}, param_groups = {{..., params = {i, ...}}}},
-- parameters named by their 1-based position across the groups (PyTorch: 0-based
-- ids); state tensors are copies.
function Optimizer:state_dict()
  local idx, n = {}, 0
  local groups = {}
  for gi, g in ipairs(self.param_groups) do
    local pg = {}
    for k, v in pairs(g) do if k ~= "params" then pg[k] = deep_copy(v) end end
    pg.params = {}
    for _, p in ipairs(g.params) do
      n = n + 1
      idx[p] = n
      pg.params[#pg.params + 1] = n
    end
    groups[gi] = pg
  end
  local state = {}
  for p, s in pairs(self.state) do
    local i = idx[p]
    if i then
      local c = {}
      for k, v in pairs(s) do c[k] = is_tensor(v) and v:clone() or deep_copy(v) end
      state[i] = c
    end
  end
  return {state = state, param_groups = groups}
end

function Optimizer:load_state_dict(sd)
  local fname = self._fname .. ":load_state_dict"
  if type(sd) ~= "table" or type(sd.param_groups) ~= "table" or type(sd.state) ~= "table" then
    error(("%s: expected a table {state = ..., param_groups = ...}"):format(fname), 2)
  end
  if #sd.param_groups ~= #self.param_groups then
    error(("%s: loaded state dict has %d parameter groups, the optimizer %d"):format(fname,
          #sd.param_groups, #self.param_groups), 2)
  end
  local by_id = {}
  for gi, g in ipairs(self.param_groups) do
    local sg = sd.param_groups[gi]
    if type(sg.params) ~= "table" or #sg.params ~= #g.params then
      error(("%s: loaded state dict contains a parameter group that doesn't match the size of "
             .. "optimizer's group %d"):format(fname, gi), 2)
    end
    for k, id in ipairs(sg.params) do by_id[id] = g.params[k] end
  end
  for id, s in pairs(sd.state) do
    local p = by_id[id]
    if not p then error(("%s: state for parameter %s, which no group holds"):format(fname, tostring(id)), 2) end
    for k, v in pairs(s) do
      if is_tensor(v) and table.concat(v:shape(), ",") ~= table.concat(p:shape(), ",") then
        error(("%s: state '%s' of parameter %s has shape [%s], the parameter [%s]"):format(fname,
              k, tostring(id), table.concat(v:shape(), ", "), table.concat(p:shape(), ", ")), 2)
      end
    end
  end
  local new_state = {}
  for id, s in pairs(sd.state) do
    local p = by_id[id]
    local c = {}
    for k, v in pairs(s) do
      if is_tensor(v) then
        c[k] = v:to({device = p.device, dtype = p.dtype}):clone()
      else
        c[k] = deep_copy(v)
      end
    end
    new_state[p] = c
  end
  for gi, g in ipairs(self.param_groups) do
    for k, v in pairs(sd.param_groups[gi]) do
      if k ~= "params" then g[k] = deep_copy(v) end
    end
  end
  self.state = new_state
end

local function check_number(fname, what, v, ok)
  if type(v) ~= "number" or not ok(v) then
    fail(fname, "invalid %s: %s", what, tostring(v))
  end
end

local function zeros_like(p) return core.zeros_like(p) end

------------------------------------------------------------------------------
-- Adam / AdamW
------------------------------------------------------------------------------

local function adam_validate(fname, g)
  check_number(fname, "learning rate", g.lr, function(v) return v >= 0 end)
  check_number(fname, "epsilon value", g.eps, function(v) return v >= 0 end)
  check_number(fname, "weight_decay value", g.weight_decay, function(v) return v >= 0 end)
  if type(g.betas) ~= "table" or #g.betas ~= 2 then
    fail(fname, "betas must be a pair {beta1, beta2}, got %s", tostring(g.betas))
  end
  check_number(fname, "beta parameter at index 1", g.betas[1], function(v) return v >= 0 and v < 1 end)
  check_number(fname, "beta parameter at index 2", g.betas[2], function(v) return v >= 0 and v < 1 end)
end

-- One C call per parameter group: the kernel takes the group's parameters as one
-- range split across threads (one fork/join a step, the biases included).
-- The lists handed to C, kept per group from step to step (refilled, not remade).
local scratch = setmetatable({}, {__mode = "k"})

local function group_lists(g)
  local l = scratch[g]
  if not l then
    l = {ps = {}, grads = {}, ms = {}, vs = {}, vmaxs = {}, steps = {}, n = 0}
    scratch[g] = l
  end
  return l
end

local function adam_step(self, decoupled)
  local adam = core._adam_step_multi
  for _, g in ipairs(self.param_groups) do
    local lr, b1, b2, eps, wd = g.lr, g.betas[1], g.betas[2], g.eps, g.weight_decay
    local ams, maximize = g.amsgrad and true or false, g.maximize and true or false
    local l = group_lists(g)
    local ps, grads, ms, vs, vmaxs, steps = l.ps, l.grads, l.ms, l.vs, l.vmaxs, l.steps
    local n = 0
    for _, p in ipairs(g.params) do
      local grad = p.grad
      if grad then
        local s = self.state[p]
        if not s then
          s = {step = 0, exp_avg = zeros_like(p), exp_avg_sq = zeros_like(p)}
          if ams then s.max_exp_avg_sq = zeros_like(p) end
          self.state[p] = s
        end
        if ams and not s.max_exp_avg_sq then s.max_exp_avg_sq = zeros_like(p) end
        s.step = s.step + 1
        n = n + 1
        ps[n], grads[n], ms[n], vs[n], steps[n] = p, grad, s.exp_avg, s.exp_avg_sq, s.step
        vmaxs[n] = ams and s.max_exp_avg_sq or false
      end
    end
    for i = n + 1, l.n do ps[i], grads[i], ms[i], vs[i], vmaxs[i], steps[i] = nil, nil, nil, nil, nil, nil end
    l.n = n
    if n > 0 then
      adam(ps, grads, ms, vs, ams and vmaxs or nil, lr, b1, b2, eps, wd, ams, decoupled, steps, maximize)
    end
    for i = 1, n do grads[i] = nil end -- the gradients are not kept alive by the lists
  end
end

local Adam = setmetatable({}, {__index = Optimizer})
Adam.__index = Adam
Adam.__name = "Adam" -- the class name, as LearningRateMonitor names it (lr-Adam)

-- optim.Adam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0,
--                     amsgrad = false, maximize = false}); weight decay as L2 (added to the gradient)
function optim.Adam(params, opts)
  return new_optimizer(Adam, "Adam", params, opts,
    {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0, amsgrad = false,
     maximize = false}, adam_validate)
end

-- step(closure): closure (optional) re-evaluates the loss and returns it
function Adam:step(closure)
  local loss
  if closure then loss = core.enable_grad(closure) end
  adam_step(self, false)
  return loss
end

local AdamW = setmetatable({}, {__index = Optimizer})
AdamW.__index = AdamW
AdamW.__name = "AdamW"

-- optim.AdamW: Adam with decoupled weight decay (default 0.01): p <- p * (1 - lr * wd)
function optim.AdamW(params, opts)
  return new_optimizer(AdamW, "AdamW", params, opts,
    {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 1e-2, amsgrad = false,
     maximize = false}, adam_validate)
end

function AdamW:step(closure)
  local loss
  if closure then loss = core.enable_grad(closure) end
  adam_step(self, true)
  return loss
end

------------------------------------------------------------------------------
-- SGD
------------------------------------------------------------------------------

local SGD = setmetatable({}, {__index = Optimizer})
SGD.__index = SGD
SGD.__name = "SGD"

local function sgd_validate(fname, g)
  check_number(fname, "learning rate", g.lr, function(v) return v >= 0 end)
  check_number(fname, "momentum value", g.momentum, function(v) return v >= 0 end)
  check_number(fname, "dampening value", g.dampening, function() return true end)
  check_number(fname, "weight_decay value", g.weight_decay, function(v) return v >= 0 end)
  if g.nesterov and (g.momentum <= 0 or g.dampening ~= 0) then
    fail(fname, "Nesterov momentum requires a momentum and zero dampening")
  end
end

-- optim.SGD(params, {lr = (required), momentum = 0, dampening = 0, weight_decay = 0,
--                    nesterov = false, maximize = false})
function optim.SGD(params, opts)
  return new_optimizer(SGD, "SGD", params, opts,
    {lr = REQUIRED, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false},
    sgd_validate)
end

function SGD:step(closure)
  local loss
  if closure then loss = core.enable_grad(closure) end
  local sgd = core._sgd_step
  for _, g in ipairs(self.param_groups) do
    local lr, mom, damp, wd = g.lr, g.momentum, g.dampening, g.weight_decay
    local nesterov, maximize = g.nesterov and true or false, g.maximize and true or false
    for _, p in ipairs(g.params) do
      local grad = p.grad
      if grad then
        local buf, first = nil, false
        if mom ~= 0 then
          local s = self.state[p]
          if not s then s = {}; self.state[p] = s end
          if not s.momentum_buffer then
            s.momentum_buffer = zeros_like(p)
            first = true
          end
          buf = s.momentum_buffer
        end
        sgd(p, grad, buf, lr, mom, damp, wd, nesterov, first, maximize)
      end
    end
  end
  return loss
end

------------------------------------------------------------------------------
-- learning-rate schedulers: torch.optim.lr_scheduler, in lr_scheduler.lua
------------------------------------------------------------------------------

optim.lr_scheduler = require "moonlight.lr_scheduler"

return optim
