-- ml.optim.lr_scheduler: torch.optim.lr_scheduler (PyTorch 1.13), each stepping
-- PyTorch's exact sequence of learning rates: the same formulas, in the same
-- order of operations, on the same doubles (tests/lua/lr_scheduler_spec.lua
-- compares every step with PyTorch's, tests/fixtures/lr_scheduler.lua).
--
-- Arguments: the optimizer, then PyTorch's positional arguments in PyTorch's
-- order, or an options table, or both (positional first, options last):
--   StepLR(opt, 30, {gamma = 0.1}) == StepLR(opt, {step_size = 30, gamma = 0.1})
-- A scheduler writes each param group's lr (OneCycleLR and CyclicLR the
-- momentum / beta1 too); step() moves it one epoch (or batch) on; step(epoch)
-- uses the closed form where PyTorch has one (its deprecated epoch argument,
-- which SequentialLR uses at its milestones). state_dict() holds every field
-- but the optimizer (and functions); load_state_dict(s) puts them back.
local core = require "moonlight.core"
local util = require "moonlight.util"
local check_options, fail = util.check_options, util.fail
local is_tensor = core.is_tensor

local lr_scheduler = {}

local function deep_copy(v)
  if type(v) ~= "table" or is_tensor(v) or getmetatable(v) then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deep_copy(x) end
  return c
end

------------------------------------------------------------------------------
-- Arguments
------------------------------------------------------------------------------

-- An options table: a plain table whose [1] is empty (a list of milestones or of
-- lambdas is a positional argument).
local function is_options(v)
  return type(v) == "table" and not is_tensor(v) and getmetatable(v) == nil and v[1] == nil
end

-- parse(fname, positional, spec, ...) -> options: the arguments after the
-- optimizer, PyTorch's positional ones named by `positional` in order, then an
-- optional options table; checked against spec (defaults filled in).
local function parse(fname, positional, spec, ...)
  local n = select("#", ...)
  local args = table.pack(...)
  local opts = {}
  local npos = n
  if n >= 1 and is_options(args[n]) then
    npos = n - 1
    for k, v in pairs(args[n]) do opts[k] = v end
  end
  if npos > #positional then
    fail(fname, "takes at most %d arguments after the optimizer (%s) and an options table, got %d",
         #positional, table.concat(positional, ", "), n)
  end
  for i = 1, npos do
    local name = positional[i]
    if args[i] ~= nil then
      if opts[name] ~= nil then fail(fname, "got '%s' both as an argument and as an option", name) end
      opts[name] = args[i]
    end
  end
  return check_options(fname, opts, spec)
end

local function check_optimizer(fname, opt)
  if type(opt) ~= "table" or type(opt.param_groups) ~= "table" then
    fail(fname, "expected an optimizer, got %s", util.typename(opt))
  end
end

-- a number, or one per param group (PyTorch's _format_param)
local function per_group(fname, name, opt, v)
  if type(v) == "table" then
    if #v ~= #opt.param_groups then
      fail(fname, "expected %d values for %s, got %d", #opt.param_groups, name, #v)
    end
    local c = {}
    for i, x in ipairs(v) do c[i] = x end
    return c
  end
  local c = {}
  for i = 1, #opt.param_groups do c[i] = v end
  return c
end

local function group_lrs(opt)
  local out = {}
  for i, g in ipairs(opt.param_groups) do out[i] = g.lr end
  return out
end

-- Python's bisect_right on a sorted list: how many items are <= x
local function bisect_right(list, x)
  local n = 0
  for _, v in ipairs(list) do if v <= x then n = n + 1 end end
  return n
end

------------------------------------------------------------------------------
-- LRScheduler: the common part (torch.optim.lr_scheduler._LRScheduler)
------------------------------------------------------------------------------

local Scheduler = {}
Scheduler.__index = Scheduler
Scheduler.__name = "LRScheduler"
lr_scheduler.LRScheduler = Scheduler

local function class(name, parent)
  local cls = setmetatable({}, {__index = parent or Scheduler})
  cls.__index = cls
  cls.__name = name
  return cls
end

local function new(cls, opt, o)
  return setmetatable({optimizer = opt, verbose = o.verbose or false}, cls)
end

-- _LRScheduler.__init__: each group's initial_lr (kept when resuming), base_lrs,
-- then the first step (last_epoch -1 -> 0).
local function start(self, last_epoch)
  for i, g in ipairs(self.optimizer.param_groups) do
    if last_epoch == -1 then
      if g.initial_lr == nil then g.initial_lr = g.lr end
    elseif g.initial_lr == nil then
      fail(getmetatable(self).__name,
           "param 'initial_lr' is not specified in param_groups[%d] when resuming an optimizer", i)
    end
  end
  self.base_lrs = {}
  for i, g in ipairs(self.optimizer.param_groups) do self.base_lrs[i] = g.initial_lr end
  self.last_epoch = last_epoch
  self:_initial_step()
  return self
end

function Scheduler:_initial_step()
  self._step_count = 0
  self:step()
end

local function print_lr(self, i, lr, epoch)
  if not self.verbose then return end
  if epoch == nil then
    print(string.format("Adjusting learning rate of group %d to %.4e.", i - 1, lr))
  else
    local e = math.type(epoch) == "integer" and string.format("%05d", epoch) or string.format("%.2f", epoch)
    print(string.format("Epoch %s: adjusting learning rate of group %d to %.4e.", e, i - 1, lr))
  end
end

-- step(): one epoch (or batch) on, the groups' lr from get_lr() (the chainable
-- form); step(epoch): last_epoch = epoch, the closed form where there is one.
function Scheduler:step(epoch)
  self._step_count = self._step_count + 1
  local values
  if epoch == nil then
    self.last_epoch = self.last_epoch + 1
    values = self:get_lr()
  else
    if type(epoch) ~= "number" then
      fail(getmetatable(self).__name, "step(epoch): epoch must be a number, got %s", util.typename(epoch))
    end
    self.last_epoch = epoch
    values = self._get_closed_form_lr and self:_get_closed_form_lr() or self:get_lr()
  end
  for i, g in ipairs(self.optimizer.param_groups) do
    g.lr = values[i]
    print_lr(self, i, values[i], epoch)
  end
  self._last_lr = group_lrs(self.optimizer)
end

-- the learning rates the last step set, one per param group
function Scheduler:get_last_lr()
  local c = {}
  for i, v in ipairs(self._last_lr or {}) do c[i] = v end
  return c
end

-- every field but the optimizer, functions and the classes' own exclusions
function Scheduler:state_dict()
  local skip = self._state_skip or {}
  local s = {}
  for k, v in pairs(self) do
    if k ~= "optimizer" and not skip[k] and type(v) ~= "function" then s[k] = deep_copy(v) end
  end
  return s
end

function Scheduler:load_state_dict(sd)
  if type(sd) ~= "table" then
    fail(getmetatable(self).__name .. ":load_state_dict", "expected a table, got %s", util.typename(sd))
  end
  local skip = self._state_skip or {}
  for k, v in pairs(sd) do
    if k ~= "optimizer" and not skip[k] then self[k] = deep_copy(v) end
  end
end

local function tostring_scheduler(self) return getmetatable(self).__name end
Scheduler.__tostring = tostring_scheduler

------------------------------------------------------------------------------
-- LambdaLR, MultiplicativeLR
------------------------------------------------------------------------------

local function is_callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

local function lambdas(fname, opt, f)
  if f == nil then fail(fname, "lr_lambda is required (a function of the epoch, or one per param group)") end
  local list = {}
  if type(f) == "table" and getmetatable(f) == nil then
    if #f ~= #opt.param_groups then fail(fname, "Expected %d lr_lambdas, but got %d", #opt.param_groups, #f) end
    for i, g in ipairs(f) do list[i] = g end
  else
    for i = 1, #opt.param_groups do list[i] = f end
  end
  for i, g in ipairs(list) do
    if not is_callable(g) then fail(fname, "lr_lambda %d must be a function, got %s", i, util.typename(g)) end
  end
  return list
end

local lambda_spec = {lr_lambda = "function|table", last_epoch = {"integer", -1}, verbose = "boolean"}
local lambda_pos = {"lr_lambda", "last_epoch", "verbose"}

-- LambdaLR(opt, lr_lambda): lr = base_lr * lr_lambda(epoch); lr_lambda a function
-- or one per param group
local LambdaLR = class("LambdaLR")
LambdaLR._state_skip = {lr_lambdas = true}
function lr_scheduler.LambdaLR(opt, ...)
  check_optimizer("LambdaLR", opt)
  local o = parse("LambdaLR", lambda_pos, lambda_spec, ...)
  local self = new(LambdaLR, opt, o)
  self.lr_lambdas = lambdas("LambdaLR", opt, o.lr_lambda)
  return start(self, o.last_epoch)
end

function LambdaLR:get_lr()
  local out = {}
  for i, base in ipairs(self.base_lrs) do out[i] = base * self.lr_lambdas[i](self.last_epoch) end
  return out
end

-- MultiplicativeLR(opt, lr_lambda): lr = lr * lr_lambda(epoch) from epoch 1 on
local MultiplicativeLR = class("MultiplicativeLR")
MultiplicativeLR._state_skip = {lr_lambdas = true}
function lr_scheduler.MultiplicativeLR(opt, ...)
  check_optimizer("MultiplicativeLR", opt)
  local o = parse("MultiplicativeLR", lambda_pos, lambda_spec, ...)
  local self = new(MultiplicativeLR, opt, o)
  self.lr_lambdas = lambdas("MultiplicativeLR", opt, o.lr_lambda)
  return start(self, o.last_epoch)
end

function MultiplicativeLR:get_lr()
  local lrs = group_lrs(self.optimizer)
  if self.last_epoch > 0 then
    for i, lr in ipairs(lrs) do lrs[i] = lr * self.lr_lambdas[i](self.last_epoch) end
  end
  return lrs
end

------------------------------------------------------------------------------
-- StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR
------------------------------------------------------------------------------

-- StepLR(opt, step_size, {gamma = 0.1}): lr * gamma every step_size epochs
local StepLR = class("StepLR")
function lr_scheduler.StepLR(opt, ...)
  check_optimizer("StepLR", opt)
  local o = parse("StepLR", {"step_size", "gamma", "last_epoch", "verbose"},
                  {step_size = "integer", gamma = {"number", 0.1}, last_epoch = {"integer", -1},
                   verbose = "boolean"}, ...)
  if o.step_size == nil or o.step_size < 1 then
    fail("StepLR", "step_size must be a positive integer, got %s", tostring(o.step_size))
  end
  local self = new(StepLR, opt, o)
  self.step_size, self.gamma = o.step_size, o.gamma
  return start(self, o.last_epoch)
end

function StepLR:get_lr()
  local lrs = group_lrs(self.optimizer)
  if self.last_epoch == 0 or self.last_epoch % self.step_size ~= 0 then return lrs end
  for i, lr in ipairs(lrs) do lrs[i] = lr * self.gamma end
  return lrs
end

function StepLR:_get_closed_form_lr()
  local out = {}
  for i, base in ipairs(self.base_lrs) do out[i] = base * self.gamma ^ (self.last_epoch // self.step_size) end
  return out
end

-- MultiStepLR(opt, {30, 80}, {gamma = 0.1}): lr * gamma at each milestone (a
-- milestone given twice multiplies by gamma^2, as PyTorch's Counter)
local MultiStepLR = class("MultiStepLR")
function lr_scheduler.MultiStepLR(opt, ...)
  check_optimizer("MultiStepLR", opt)
  local o = parse("MultiStepLR", {"milestones", "gamma", "last_epoch", "verbose"},
                  {milestones = "table", gamma = {"number", 0.1}, last_epoch = {"integer", -1},
                   verbose = "boolean"}, ...)
  if o.milestones == nil then fail("MultiStepLR", "milestones is required (a list of epochs)") end
  local self = new(MultiStepLR, opt, o)
  self.milestones = {}
  for i, m in ipairs(o.milestones) do
    if math.type(m) ~= "integer" then
      fail("MultiStepLR", "milestones[%d] must be an integer, got %s", i, tostring(m))
    end
    self.milestones[m] = (self.milestones[m] or 0) + 1
  end
  self.gamma = o.gamma
  return start(self, o.last_epoch)
end

function MultiStepLR:get_lr()
  local lrs = group_lrs(self.optimizer)
  local count = self.milestones[self.last_epoch]
  if not count then return lrs end
  for i, lr in ipairs(lrs) do lrs[i] = lr * self.gamma ^ count end
  return lrs
end

function MultiStepLR:_get_closed_form_lr()
  local list = {}
  for m, count in pairs(self.milestones) do for _ = 1, count do list[#list + 1] = m end end
  table.sort(list)
  local k = bisect_right(list, self.last_epoch)
  local out = {}
  for i, base in ipairs(self.base_lrs) do out[i] = base * self.gamma ^ k end
  return out
end

-- ConstantLR(opt, {factor = 1/3, total_iters = 5}): lr * factor until total_iters
local ConstantLR = class("ConstantLR")
function lr_scheduler.ConstantLR(opt, ...)
  check_optimizer("ConstantLR", opt)
  local o = parse("ConstantLR", {"factor", "total_iters", "last_epoch", "verbose"},
                  {factor = {"number", 1.0 / 3}, total_iters = {"integer", 5}, last_epoch = {"integer", -1},
                   verbose = "boolean"}, ...)
  if o.factor > 1.0 or o.factor < 0 then
    fail("ConstantLR", "Constant multiplicative factor expected to be between 0 and 1.")
  end
  local self = new(ConstantLR, opt, o)
  self.factor, self.total_iters = o.factor, o.total_iters
  return start(self, o.last_epoch)
end

function ConstantLR:get_lr()
  local lrs = group_lrs(self.optimizer)
  if self.last_epoch == 0 then
    for i, lr in ipairs(lrs) do lrs[i] = lr * self.factor end
  elseif self.last_epoch == self.total_iters then
    for i, lr in ipairs(lrs) do lrs[i] = lr * (1.0 / self.factor) end
  end
  return lrs
end

function ConstantLR:_get_closed_form_lr()
  local out = {}
  local past = self.last_epoch >= self.total_iters and 1 or 0
  for i, base in ipairs(self.base_lrs) do out[i] = base * (self.factor + past * (1 - self.factor)) end
  return out
end

-- LinearLR(opt, {start_factor = 1/3, end_factor = 1, total_iters = 5}): the factor
-- goes linearly from start_factor to end_factor over total_iters (a warm-up)
local LinearLR = class("LinearLR")
function lr_scheduler.LinearLR(opt, ...)
  check_optimizer("LinearLR", opt)
  local o = parse("LinearLR", {"start_factor", "end_factor", "total_iters", "last_epoch", "verbose"},
                  {start_factor = {"number", 1.0 / 3}, end_factor = {"number", 1.0},
                   total_iters = {"integer", 5}, last_epoch = {"integer", -1}, verbose = "boolean"}, ...)
  if o.start_factor > 1.0 or o.start_factor <= 0 then
    fail("LinearLR", "Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
  end
  if o.end_factor > 1.0 or o.end_factor < 0 then
    fail("LinearLR", "Ending multiplicative factor expected to be between 0 and 1.")
  end
  local self = new(LinearLR, opt, o)
  self.start_factor, self.end_factor, self.total_iters = o.start_factor, o.end_factor, o.total_iters
  return start(self, o.last_epoch)
end

function LinearLR:get_lr()
  local lrs = group_lrs(self.optimizer)
  local s, e, T = self.start_factor, self.end_factor, self.total_iters
  if self.last_epoch == 0 then
    for i, lr in ipairs(lrs) do lrs[i] = lr * s end
    return lrs
  end
  if self.last_epoch > T then return lrs end
  for i, lr in ipairs(lrs) do
    lrs[i] = lr * (1. + (e - s) / (T * s + (self.last_epoch - 1) * (e - s)))
  end
  return lrs
end

function LinearLR:_get_closed_form_lr()
  local out = {}
  local s, e, T = self.start_factor, self.end_factor, self.total_iters
  for i, base in ipairs(self.base_lrs) do
    out[i] = base * (s + (e - s) * math.min(T, self.last_epoch) / T)
  end
  return out
end

-- ExponentialLR(opt, gamma): lr * gamma every epoch
local ExponentialLR = class("ExponentialLR")
function lr_scheduler.ExponentialLR(opt, ...)
  check_optimizer("ExponentialLR", opt)
  local o = parse("ExponentialLR", {"gamma", "last_epoch", "verbose"},
                  {gamma = "number", last_epoch = {"integer", -1}, verbose = "boolean"}, ...)
  if o.gamma == nil then fail("ExponentialLR", "gamma is required") end
  local self = new(ExponentialLR, opt, o)
  self.gamma = o.gamma
  return start(self, o.last_epoch)
end

function ExponentialLR:get_lr()
  local lrs = group_lrs(self.optimizer)
  if self.last_epoch == 0 then return lrs end
  for i, lr in ipairs(lrs) do lrs[i] = lr * self.gamma end
  return lrs
end

function ExponentialLR:_get_closed_form_lr()
  local out = {}
  for i, base in ipairs(self.base_lrs) do out[i] = base * self.gamma ^ self.last_epoch end
  return out
end

-- PolynomialLR(opt, {total_iters = 5, power = 1}): lr decays to 0 at total_iters
local PolynomialLR = class("PolynomialLR")
function lr_scheduler.PolynomialLR(opt, ...)
  check_optimizer("PolynomialLR", opt)
  local o = parse("PolynomialLR", {"total_iters", "power", "last_epoch", "verbose"},
                  {total_iters = {"integer", 5}, power = {"number", 1.0}, last_epoch = {"integer", -1},
                   verbose = "boolean"}, ...)
  local self = new(PolynomialLR, opt, o)
  self.total_iters, self.power = o.total_iters, o.power
  return start(self, o.last_epoch)
end

function PolynomialLR:get_lr()
  local lrs = group_lrs(self.optimizer)
  local e, T = self.last_epoch, self.total_iters
  if e == 0 or e > T then return lrs end
  local decay = ((1.0 - e / T) / (1.0 - (e - 1) / T)) ^ self.power
  for i, lr in ipairs(lrs) do lrs[i] = lr * decay end
  return lrs
end

function PolynomialLR:_get_closed_form_lr()
  local out = {}
  for i, base in ipairs(self.base_lrs) do
    out[i] = base * (1.0 - math.min(self.total_iters, self.last_epoch) / self.total_iters) ^ self.power
  end
  return out
end

------------------------------------------------------------------------------
-- CosineAnnealingLR, CosineAnnealingWarmRestarts
------------------------------------------------------------------------------

-- CosineAnnealingLR(opt, T_max, {eta_min = 0}): half a cosine from the base lr
-- to eta_min over T_max epochs (and back up past it, as PyTorch)
local CosineAnnealingLR = class("CosineAnnealingLR")
function lr_scheduler.CosineAnnealingLR(opt, ...)
  check_optimizer("CosineAnnealingLR", opt)
  local o = parse("CosineAnnealingLR", {"T_max", "eta_min", "last_epoch", "verbose"},
                  {T_max = "number", eta_min = {"number", 0}, last_epoch = {"integer", -1},
                   verbose = "boolean"}, ...)
  if o.T_max == nil or o.T_max <= 0 then
    fail("CosineAnnealingLR", "T_max must be a positive number, got %s", tostring(o.T_max))
  end
  local self = new(CosineAnnealingLR, opt, o)
  self.T_max, self.eta_min = o.T_max, o.eta_min
  return start(self, o.last_epoch)
end

function CosineAnnealingLR:get_lr()
  local lrs, e, T, eta = group_lrs(self.optimizer), self.last_epoch, self.T_max, self.eta_min
  local pi = math.pi
  if e == 0 then return lrs end
  if self._step_count == 1 and e > 0 then
    for i, base in ipairs(self.base_lrs) do
      lrs[i] = eta + (base - eta) * (1 + math.cos((e) * pi / T)) / 2
    end
  elseif (e - 1 - T) % (2 * T) == 0 then
    for i, base in ipairs(self.base_lrs) do
      lrs[i] = lrs[i] + (base - eta) * (1 - math.cos(pi / T)) / 2
    end
  else
    for i, lr in ipairs(lrs) do
      lrs[i] = (1 + math.cos(pi * e / T)) / (1 + math.cos(pi * (e - 1) / T)) * (lr - eta) + eta
    end
  end
  return lrs
end

function CosineAnnealingLR:_get_closed_form_lr()
  local out = {}
  for i, base in ipairs(self.base_lrs) do
    out[i] = self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
  end
  return out
end

-- CosineAnnealingWarmRestarts(opt, T_0, {T_mult = 1, eta_min = 0}): SGDR, a
-- cosine over T_0 epochs, restarted, each period T_mult times the last.
-- step(epoch) takes fractional epochs (epoch + i / iters) as PyTorch's.
local CAWR = class("CosineAnnealingWarmRestarts")
function lr_scheduler.CosineAnnealingWarmRestarts(opt, ...)
  local fname = "CosineAnnealingWarmRestarts"
  check_optimizer(fname, opt)
  local o = parse(fname, {"T_0", "T_mult", "eta_min", "last_epoch", "verbose"},
                  {T_0 = "integer", T_mult = {"integer", 1}, eta_min = {"number", 0},
                   last_epoch = {"integer", -1}, verbose = "boolean"}, ...)
  if o.T_0 == nil or o.T_0 <= 0 then fail(fname, "Expected positive integer T_0, but got %s", tostring(o.T_0)) end
  if o.T_mult < 1 then fail(fname, "Expected integer T_mult >= 1, but got %s", tostring(o.T_mult)) end
  local self = new(CAWR, opt, o)
  self.T_0, self.T_i, self.T_mult, self.eta_min = o.T_0, o.T_0, o.T_mult, o.eta_min
  self.T_cur = o.last_epoch
  return start(self, o.last_epoch)
end

function CAWR:get_lr()
  local out = {}
  for i, base in ipairs(self.base_lrs) do
    out[i] = self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
  end
  return out
end

local function int_pow(b, n)
  local r = 1
  for _ = 1, n do r = r * b end
  return r
end

function CAWR:step(epoch)
  if epoch == nil and self.last_epoch < 0 then epoch = 0 end
  if epoch == nil then
    epoch = self.last_epoch + 1
    self.T_cur = self.T_cur + 1
    if self.T_cur >= self.T_i then
      self.T_cur = self.T_cur - self.T_i
      self.T_i = self.T_i * self.T_mult
    end
  else
    if type(epoch) ~= "number" or epoch < 0 then
      fail("CosineAnnealingWarmRestarts", "Expected non-negative epoch, but got %s", tostring(epoch))
    end
    if epoch >= self.T_0 then
      if self.T_mult == 1 then
        self.T_cur = epoch % self.T_0
      else
        -- Python's int(math.log(x, T_mult)): log(x) / log(T_mult), truncated
        local n = math.floor(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1) / math.log(self.T_mult))
        self.T_cur = epoch - self.T_0 * (int_pow(self.T_mult, n) - 1) / (self.T_mult - 1)
        self.T_i = self.T_0 * int_pow(self.T_mult, n)
      end
    else
      self.T_i = self.T_0
      self.T_cur = epoch
    end
  end
  self.last_epoch = math.floor(epoch)
  local values = self:get_lr()
  for i, g in ipairs(self.optimizer.param_groups) do
    g.lr = values[i]
    print_lr(self, i, values[i], epoch)
  end
  self._last_lr = group_lrs(self.optimizer)
end

------------------------------------------------------------------------------
-- CyclicLR, OneCycleLR (per batch; they cycle the momentum too)
------------------------------------------------------------------------------

-- the momentum a group has: SGD's momentum, Adam's beta1
local function uses_betas(opt) return opt.defaults and opt.defaults.betas ~= nil end
local function has_momentum(opt) return opt.defaults and opt.defaults.momentum ~= nil end

local function set_momentum(g, use_betas, m)
  if use_betas then g.betas = {m, g.betas[2]} else g.momentum = m end
end

-- CyclicLR(opt, base_lr, max_lr, {step_size_up = 2000, step_size_down, mode =
-- "triangular" | "triangular2" | "exp_range", gamma = 1, scale_fn, scale_mode,
-- cycle_momentum = true, base_momentum = 0.8, max_momentum = 0.9})
local CyclicLR = class("CyclicLR")
CyclicLR._state_skip = {scale_fn = true}
function lr_scheduler.CyclicLR(opt, ...)
  local fname = "CyclicLR"
  check_optimizer(fname, opt)
  local o = parse(fname, {"base_lr", "max_lr", "step_size_up", "step_size_down", "mode", "gamma", "scale_fn",
                          "scale_mode", "cycle_momentum", "base_momentum", "max_momentum", "last_epoch",
                          "verbose"},
                  {base_lr = "number|table", max_lr = "number|table", step_size_up = {"number", 2000},
                   step_size_down = "number", mode = {"string", "triangular"}, gamma = {"number", 1.0},
                   scale_fn = "callable", scale_mode = {"string", "cycle"}, cycle_momentum = {"boolean", true},
                   base_momentum = {"number|table", 0.8}, max_momentum = {"number|table", 0.9},
                   last_epoch = {"integer", -1}, verbose = "boolean"}, ...)
  if o.base_lr == nil or o.max_lr == nil then fail(fname, "base_lr and max_lr are required") end
  local self = new(CyclicLR, opt, o)
  local base_lrs = per_group(fname, "base_lr", opt, o.base_lr)
  if o.last_epoch == -1 then
    for i, g in ipairs(opt.param_groups) do g.lr = base_lrs[i] end
  end
  self.max_lrs = per_group(fname, "max_lr", opt, o.max_lr)
  local up = o.step_size_up + 0.0
  local down = o.step_size_down and (o.step_size_down + 0.0) or up
  self.total_size = up + down
  self.step_ratio = up / self.total_size
  if o.scale_fn == nil and o.mode ~= "triangular" and o.mode ~= "triangular2" and o.mode ~= "exp_range" then
    fail(fname, "mode is invalid and scale_fn is None")
  end
  self.mode, self.gamma = o.mode, o.gamma
  if o.scale_fn == nil then
    self.scale_mode = o.mode == "exp_range" and "iterations" or "cycle"
  else
    self.scale_fn, self.scale_mode = o.scale_fn, o.scale_mode
  end
  self.cycle_momentum = o.cycle_momentum
  if o.cycle_momentum then
    if not has_momentum(opt) then
      fail(fname, "optimizer must support momentum with `cycle_momentum` option enabled")
    end
    local bm = per_group(fname, "base_momentum", opt, o.base_momentum)
    if o.last_epoch == -1 then
      for i, g in ipairs(opt.param_groups) do g.momentum = bm[i] end
    end
    self.base_momentums = {}
    for i, g in ipairs(opt.param_groups) do self.base_momentums[i] = g.momentum end
    self.max_momentums = per_group(fname, "max_momentum", opt, o.max_momentum)
  end
  start(self, o.last_epoch)
  self.base_lrs = base_lrs
  return self
end

function CyclicLR:_scale(x)
  if self.scale_fn then return self.scale_fn(x) end
  if self.mode == "triangular" then return 1. end
  if self.mode == "triangular2" then return 1 / (2. ^ (x - 1)) end
  return self.gamma ^ x
end

function CyclicLR:get_lr()
  local cycle = math.floor(1 + self.last_epoch / self.total_size)
  local x = 1. + self.last_epoch / self.total_size - cycle
  local scale_factor
  if x <= self.step_ratio then scale_factor = x / self.step_ratio
  else scale_factor = (x - 1) / (self.step_ratio - 1) end
  local arg = self.scale_mode == "cycle" and cycle or self.last_epoch
  local lrs = {}
  for i, base in ipairs(self.base_lrs) do
    local base_height = (self.max_lrs[i] - base) * scale_factor
    lrs[i] = base + base_height * self:_scale(arg)
  end
  if self.cycle_momentum then
    for i, g in ipairs(self.optimizer.param_groups) do
      local base_height = (self.max_momentums[i] - self.base_momentums[i]) * scale_factor
      g.momentum = self.max_momentums[i] - base_height * self:_scale(arg)
    end
  end
  return lrs
end

-- OneCycleLR(opt, max_lr, {total_steps | epochs + steps_per_epoch, pct_start = 0.3,
-- anneal_strategy = "cos" | "linear", cycle_momentum = true, base_momentum = 0.85,
-- max_momentum = 0.95, div_factor = 25, final_div_factor = 1e4, three_phase = false}):
-- the 1cycle policy, stepped once per batch. With cycle_momentum the momentum
-- (SGD) or beta1 (Adam, AdamW) goes the other way.
local OneCycleLR = class("OneCycleLR")
function lr_scheduler.OneCycleLR(opt, ...)
  local fname = "OneCycleLR"
  check_optimizer(fname, opt)
  local o = parse(fname, {"max_lr", "total_steps", "epochs", "steps_per_epoch", "pct_start", "anneal_strategy",
                          "cycle_momentum", "base_momentum", "max_momentum", "div_factor", "final_div_factor",
                          "three_phase", "last_epoch", "verbose"},
                  {max_lr = "number|table", total_steps = "integer", epochs = "integer", steps_per_epoch = "integer",
                   pct_start = {"number", 0.3}, anneal_strategy = {"string", "cos"},
                   cycle_momentum = {"boolean", true}, base_momentum = {"number|table", 0.85},
                   max_momentum = {"number|table", 0.95}, div_factor = {"number", 25.},
                   final_div_factor = {"number", 1e4}, three_phase = {"boolean", false},
                   last_epoch = {"integer", -1}, verbose = "boolean"}, ...)
  if o.max_lr == nil then fail(fname, "max_lr is required") end
  local self = new(OneCycleLR, opt, o)
  if o.total_steps == nil and o.epochs == nil and o.steps_per_epoch == nil then
    fail(fname, "You must define either total_steps OR (epochs AND steps_per_epoch)")
  elseif o.total_steps ~= nil then
    if o.total_steps <= 0 then fail(fname, "Expected positive integer total_steps, but got %s", tostring(o.total_steps)) end
    self.total_steps = o.total_steps
  else
    if o.epochs == nil or o.epochs <= 0 then
      fail(fname, "Expected positive integer epochs, but got %s", tostring(o.epochs))
    end
    if o.steps_per_epoch == nil or o.steps_per_epoch <= 0 then
      fail(fname, "Expected positive integer steps_per_epoch, but got %s", tostring(o.steps_per_epoch))
    end
    self.total_steps = o.epochs * o.steps_per_epoch
  end
  local pct, total = o.pct_start, self.total_steps
  if o.three_phase then
    self._schedule_phases = {
      {end_step = (pct * total + 0.0) - 1, start_lr = "initial_lr", end_lr = "max_lr",
       start_momentum = "max_momentum", end_momentum = "base_momentum"},
      {end_step = (2 * pct * total + 0.0) - 2, start_lr = "max_lr", end_lr = "initial_lr",
       start_momentum = "base_momentum", end_momentum = "max_momentum"},
      {end_step = total - 1, start_lr = "initial_lr", end_lr = "min_lr",
       start_momentum = "max_momentum", end_momentum = "max_momentum"},
    }
  else
    self._schedule_phases = {
      {end_step = (pct * total + 0.0) - 1, start_lr = "initial_lr", end_lr = "max_lr",
       start_momentum = "max_momentum", end_momentum = "base_momentum"},
      {end_step = total - 1, start_lr = "max_lr", end_lr = "min_lr",
       start_momentum = "base_momentum", end_momentum = "max_momentum"},
    }
  end
  if pct < 0 or pct > 1 then fail(fname, "Expected float between 0 and 1 pct_start, but got %s", tostring(pct)) end
  if o.anneal_strategy ~= "cos" and o.anneal_strategy ~= "linear" then
    fail(fname, "anneal_strategy must by one of 'cos' or 'linear', instead got %s", o.anneal_strategy)
  end
  self.anneal_strategy = o.anneal_strategy
  local max_lrs = per_group(fname, "max_lr", opt, o.max_lr)
  if o.last_epoch == -1 then
    for i, g in ipairs(opt.param_groups) do
      g.initial_lr = max_lrs[i] / o.div_factor
      g.max_lr = max_lrs[i]
      g.min_lr = g.initial_lr / o.final_div_factor
    end
  end
  self.cycle_momentum = o.cycle_momentum
  if o.cycle_momentum then
    if not has_momentum(opt) and not uses_betas(opt) then
      fail(fname, "optimizer must support momentum with `cycle_momentum` option enabled")
    end
    self.use_beta1 = uses_betas(opt)
    local maxm = per_group(fname, "max_momentum", opt, o.max_momentum)
    local basem = per_group(fname, "base_momentum", opt, o.base_momentum)
    if o.last_epoch == -1 then
      for i, g in ipairs(opt.param_groups) do
        set_momentum(g, self.use_beta1, maxm[i])
        g.max_momentum = maxm[i]
        g.base_momentum = basem[i]
      end
    end
  end
  return start(self, o.last_epoch)
end

function OneCycleLR:_anneal(s, e, pct)
  if self.anneal_strategy == "linear" then return (e - s) * pct + s end
  local cos_out = math.cos(math.pi * pct) + 1
  return e + (s - e) / 2.0 * cos_out
end

function OneCycleLR:get_lr()
  local lrs = {}
  local step_num = self.last_epoch
  if step_num > self.total_steps then
    fail("OneCycleLR", "Tried to step %d times. The specified number of total steps is %d",
         step_num + 1, self.total_steps)
  end
  local phases = self._schedule_phases
  for gi, g in ipairs(self.optimizer.param_groups) do
    local start_step = 0
    local lr, momentum
    for i, phase in ipairs(phases) do
      local end_step = phase.end_step
      if step_num <= end_step or i == #phases then
        if end_step == start_step then
          -- PyTorch divides by zero here (ZeroDivisionError)
          fail("OneCycleLR", "phase %d has no steps (total_steps %d, pct_start %s): float division by zero",
               i, self.total_steps, tostring(self._schedule_phases[1].end_step))
        end
        local pct = (step_num - start_step) / (end_step - start_step)
        lr = self:_anneal(g[phase.start_lr], g[phase.end_lr], pct)
        if self.cycle_momentum then
          momentum = self:_anneal(g[phase.start_momentum], g[phase.end_momentum], pct)
        end
        break
      end
      start_step = phase.end_step
    end
    lrs[gi] = lr
    if self.cycle_momentum then set_momentum(g, self.use_beta1, momentum) end
  end
  return lrs
end

------------------------------------------------------------------------------
-- SequentialLR, ChainedScheduler
------------------------------------------------------------------------------

local function sub_states(list)
  local out = {}
  for i, s in ipairs(list) do out[i] = s:state_dict() end
  return out
end

-- SequentialLR(opt, {warmup, cosine}, {5}): the schedulers one after the other,
-- switching at the milestones (each starts afresh at its milestone)
local SequentialLR = class("SequentialLR")
SequentialLR._state_skip = {_schedulers = true}
function lr_scheduler.SequentialLR(opt, ...)
  local fname = "SequentialLR"
  check_optimizer(fname, opt)
  local o = parse(fname, {"schedulers", "milestones", "last_epoch", "verbose"},
                  {schedulers = "table", milestones = "table", last_epoch = {"integer", -1},
                   verbose = "boolean"}, ...)
  if o.schedulers == nil or o.milestones == nil then fail(fname, "schedulers and milestones are required") end
  for i, s in ipairs(o.schedulers) do
    if type(s) ~= "table" or s.optimizer ~= opt then
      fail(fname, "Sequential Schedulers expects all schedulers to belong to the same optimizer, but got "
        .. "schedulers at index %d to be different than the optimizer passed in.", i)
    end
  end
  if #o.milestones ~= #o.schedulers - 1 then
    fail(fname, "Sequential Schedulers expects number of schedulers provided to be one more than the number "
      .. "of milestone points, but got number of schedulers %d and the number of milestones to be equal to %d",
      #o.schedulers, #o.milestones)
  end
  local self = new(SequentialLR, opt, o)
  self._schedulers = {}
  for i, s in ipairs(o.schedulers) do self._schedulers[i] = s end
  self._milestones = {}
  for i, m in ipairs(o.milestones) do self._milestones[i] = m end
  self.last_epoch = o.last_epoch + 1
  -- back to the initial learning rates, the others' first steps undone, and
  -- only the first scheduler's first step taken
  for _, g in ipairs(opt.param_groups) do g.lr = g.initial_lr end
  for _, s in ipairs(self._schedulers) do s.last_epoch = s.last_epoch - 1 end
  self._schedulers[1]:_initial_step()
  self._last_lr = self._schedulers[1]:get_last_lr()
  return self
end

function SequentialLR:step()
  self.last_epoch = self.last_epoch + 1
  local idx = bisect_right(self._milestones, self.last_epoch)
  local s = self._schedulers[idx + 1]
  if idx > 0 and self._milestones[idx] == self.last_epoch then s:step(0) else s:step() end
  self._last_lr = s:get_last_lr()
end

function SequentialLR:state_dict()
  local sd = Scheduler.state_dict(self)
  sd._schedulers = sub_states(self._schedulers)
  return sd
end

function SequentialLR:load_state_dict(sd)
  Scheduler.load_state_dict(self, sd)
  for i, s in ipairs(sd._schedulers or {}) do self._schedulers[i]:load_state_dict(s) end
end

-- ChainedScheduler({s1, s2}): every scheduler steps at each step
local ChainedScheduler = class("ChainedScheduler")
ChainedScheduler._state_skip = {_schedulers = true}
function lr_scheduler.ChainedScheduler(schedulers)
  local fname = "ChainedScheduler"
  if type(schedulers) ~= "table" or #schedulers == 0 then
    fail(fname, "expected a list of schedulers, got %s", util.typename(schedulers))
  end
  for i = 2, #schedulers do
    if schedulers[i].optimizer ~= schedulers[1].optimizer then
      fail(fname, "ChainedScheduler expects all schedulers to belong to the same optimizer, but got "
        .. "schedulers at index 1 and %d to be different", i)
    end
  end
  local self = setmetatable({optimizer = schedulers[1].optimizer, _schedulers = {}}, ChainedScheduler)
  for i, s in ipairs(schedulers) do self._schedulers[i] = s end
  self._last_lr = group_lrs(self.optimizer)
  return self
end

function ChainedScheduler:step()
  for _, s in ipairs(self._schedulers) do s:step() end
  self._last_lr = group_lrs(self.optimizer)
end

ChainedScheduler.state_dict = SequentialLR.state_dict
ChainedScheduler.load_state_dict = SequentialLR.load_state_dict

------------------------------------------------------------------------------
-- ReduceLROnPlateau
------------------------------------------------------------------------------

-- ReduceLROnPlateau(opt, {mode = "min", factor = 0.1, patience = 10, threshold =
-- 1e-4, threshold_mode = "rel", cooldown = 0, min_lr = 0, eps = 1e-8}); step(metric)
-- after each validation: lr * factor once the metric has not improved for more
-- than patience steps.
local ReduceLROnPlateau = setmetatable({}, {__index = Scheduler})
ReduceLROnPlateau.__index = ReduceLROnPlateau
ReduceLROnPlateau.__name = "ReduceLROnPlateau"
ReduceLROnPlateau.__tostring = tostring_scheduler
ReduceLROnPlateau.reduce_on_plateau = true

function lr_scheduler.ReduceLROnPlateau(opt, ...)
  local fname = "ReduceLROnPlateau"
  check_optimizer(fname, opt)
  local o = parse(fname, {"mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps",
                          "verbose"},
                  {mode = {"string", "min"}, factor = {"number", 0.1}, patience = {"integer", 10},
                   threshold = {"number", 1e-4}, threshold_mode = {"string", "rel"}, cooldown = {"integer", 0},
                   min_lr = {"number|table", 0}, eps = {"number", 1e-8}, verbose = "boolean"}, ...)
  if o.factor >= 1.0 then fail(fname, "Factor should be < 1.0.") end
  local self = new(ReduceLROnPlateau, opt, o)
  self.factor = o.factor
  if type(o.min_lr) == "table" then
    if #o.min_lr ~= #opt.param_groups then
      fail(fname, "expected %d min_lrs, got %d", #opt.param_groups, #o.min_lr)
    end
  end
  self.min_lrs = per_group(fname, "min_lr", opt, o.min_lr)
  self.patience, self.cooldown, self.cooldown_counter = o.patience, o.cooldown, 0
  self.eps = o.eps
  self.last_epoch = 0
  self:_init_is_better(o.mode, o.threshold, o.threshold_mode)
  self:_reset()
  self._last_lr = group_lrs(opt)
  return self
end

function ReduceLROnPlateau:_init_is_better(mode, threshold, threshold_mode)
  if mode ~= "min" and mode ~= "max" then fail("ReduceLROnPlateau", "mode %s is unknown!", tostring(mode)) end
  if threshold_mode ~= "rel" and threshold_mode ~= "abs" then
    fail("ReduceLROnPlateau", "threshold mode %s is unknown!", tostring(threshold_mode))
  end
  self.mode_worse = mode == "min" and math.huge or -math.huge
  self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
end

function ReduceLROnPlateau:_reset()
  self.best = self.mode_worse
  self.cooldown_counter = 0
  self.num_bad_epochs = 0
end

function ReduceLROnPlateau:is_better(a, best)
  if self.mode == "min" and self.threshold_mode == "rel" then
    return a < best * (1. - self.threshold)
  elseif self.mode == "min" then
    return a < best - self.threshold
  elseif self.threshold_mode == "rel" then
    return a > best * (self.threshold + 1.)
  end
  return a > best + self.threshold
end

function ReduceLROnPlateau:in_cooldown() return self.cooldown_counter > 0 end

-- step(metric): metric a number or a one-element tensor
function ReduceLROnPlateau:step(metrics, epoch)
  local current = metrics
  if is_tensor(current) then current = current:item() end
  if type(current) ~= "number" then
    fail("ReduceLROnPlateau", "step(metrics) needs the monitored value (a number or a one-element tensor), got %s",
         util.typename(metrics))
  end
  if epoch == nil then epoch = self.last_epoch + 1 end
  self.last_epoch = epoch
  if self:is_better(current, self.best) then
    self.best = current
    self.num_bad_epochs = 0
  else
    self.num_bad_epochs = self.num_bad_epochs + 1
  end
  if self:in_cooldown() then
    self.cooldown_counter = self.cooldown_counter - 1
    self.num_bad_epochs = 0 -- bad epochs in cooldown do not count
  end
  if self.num_bad_epochs > self.patience then
    self:_reduce_lr(epoch)
    self.cooldown_counter = self.cooldown
    self.num_bad_epochs = 0
  end
  self._last_lr = group_lrs(self.optimizer)
end

function ReduceLROnPlateau:_reduce_lr(epoch)
  for i, g in ipairs(self.optimizer.param_groups) do
    local old_lr = g.lr + 0.0
    local new_lr = math.max(old_lr * self.factor, self.min_lrs[i])
    if old_lr - new_lr > self.eps then
      g.lr = new_lr
      if self.verbose then
        local e = math.type(epoch) == "integer" and string.format("%05d", epoch) or string.format("%.2f", epoch)
        print(string.format("Epoch %s: reducing learning rate of group %d to %.4e.", e, i - 1, new_lr))
      end
    end
  end
end

function ReduceLROnPlateau:load_state_dict(sd)
  Scheduler.load_state_dict(self, sd)
  self:_init_is_better(self.mode, self.threshold, self.threshold_mode)
end

return lr_scheduler
