-- ml.Trainer: Lightning's training loop, with its names, defaults and output.
--
-- Any nn.Module with training_step(batch, batch_idx) and configure_optimizers()
-- can be fit; validation_step, test_step and the usual hooks are optional. The
-- module side (self:log, self:log_dict, self:save_hyperparameters) is defined in
-- nn.lua; the values it logs are collected here (Results). batch_idx counts from
-- 1 (a Lua position); epochs and steps are numbers stored in logs and count from
-- 0, as Lightning writes them.
local core = require "moonlight.core"
local loggers = require "moonlight.loggers"
local progress = require "moonlight.progress"
local sys = core._sys

local util = require "moonlight.util"
local check_options = util.check_options
local ddp = require "moonlight.ddp"

local trainer_mod = {}

------------------------------------------------------------------------------
-- Logged values: what self:log collects during a loop stage
------------------------------------------------------------------------------

local function to_number(v)
  if type(v) == "number" then return v end
  if type(v) == "boolean" then return v and 1 or 0 end
  if core.is_tensor(v) then
    if v:numel() ~= 1 then
      error(string.format("log: the value must be a number or a one-element tensor, got a tensor of shape [%s]",
        table.concat(v:shape(), ", ")), 0)
    end
    return v:item()
  end
  error("log: the value must be a number or a tensor, got " .. type(v), 0)
end

local function batch_size_of(batch)
  if core.is_tensor(batch) then return batch:dim() > 0 and batch:size(1) or 1 end
  if type(batch) == "table" then
    for _, v in ipairs(batch) do
      local n = batch_size_of(v)
      if n then return n end
    end
    for _, v in pairs(batch) do
      local n = batch_size_of(v)
      if n then return n end
    end
  end
  return nil
end

local Results = {}
Results.__index = Results

local function new_results(stage)
  return setmetatable({stage = stage, order = {}, items = {}}, Results)
end

local log_options = {on_step = "boolean", on_epoch = "boolean", prog_bar = "boolean",
                     logger = "boolean", reduce_fx = "string|function", batch_size = "integer",
                     sync_dist = true, enable_graph = true, add_dataloader_idx = true}

local no_options = setmetatable({}, {__newindex = function() error("no_options is read-only", 2) end})

function Results:log(name, value, opts, batch)
  if opts == nil then opts = no_options else check_options("log", opts, log_options) end
  if type(name) ~= "string" then util.fail("log", "the name must be a string, got %s", util.typename(name)) end
  local training = self.stage == "train"
  local on_step = opts.on_step
  local on_epoch = opts.on_epoch
  if on_step == nil then on_step = training end
  if on_epoch == nil then on_epoch = not training end
  local item = self.items[name]
  if not item then
    item = {name = name, on_step = on_step, on_epoch = on_epoch, prog_bar = opts.prog_bar or false,
            logger = opts.logger ~= false, reduce_fx = opts.reduce_fx or "mean", sync_dist = opts.sync_dist == true,
            sum = 0, weight = 0, count = 0, max = -math.huge, min = math.huge}
    if type(item.reduce_fx) == "string" and not ({mean = 1, sum = 1, max = 1, min = 1})[item.reduce_fx] then
      util.fail("log", "reduce_fx must be \"mean\", \"sum\", \"max\", \"min\" or a function, got %s",
                tostring(item.reduce_fx))
    end
    self.items[name] = item
    self.order[#self.order + 1] = name
  end
  -- the value stays a tensor until it is needed: on a GPU, item() waits for the device
  if core.is_tensor(value) then value = value:detach() else value = to_number(value) end
  -- a distributed run's step value with sync_dist: reduced over the ranks now (the
  -- epoch aggregates below stay local until the epoch's end, as Lightning's)
  if self.dist and item.sync_dist and on_step then
    item.last = ddp.reduce_number(to_number(value), type(item.reduce_fx) == "string" and item.reduce_fx or "mean")
  else
    item.last = value
  end
  item.fresh = true
  if on_epoch then
    local bs = opts.batch_size or batch_size_of(batch) or 1
    local v = to_number(value)
    item.sum = item.sum + v * bs
    item.plain_sum = (item.plain_sum or 0) + v
    item.weight = item.weight + bs
    item.count = item.count + 1
    if v > item.max then item.max = v end
    if v < item.min then item.min = v end
    item.values = item.values or {}
    item.values[#item.values + 1] = v
  end
end

-- (over every rank after a distributed run's sync: item.synced)
function Results:epoch_value(item)
  local a = item.synced or item
  local fx = item.reduce_fx
  if type(fx) == "function" then return to_number(fx(a.values or {})) end
  if fx == "sum" then return a.plain_sum or 0 end
  if fx == "max" then return a.max end
  if fx == "min" then return a.min end
  return a.weight > 0 and a.sum / a.weight or 0
end

local function sync_always() return true end
local function sync_if_asked(item) return item.sync_dist end

-- The step metrics logged since the last call (name -> number), for the logger.
function Results:step_metrics(suffix_both)
  local out = {}
  for _, name in ipairs(self.order) do
    local item = self.items[name]
    if item.on_step and item.fresh and item.logger then
      local key = (suffix_both and item.on_epoch) and (name .. "_step") or name
      out[key] = to_number(item.last)
    end
  end
  return out
end

-- In a distributed run, the aggregates are first reduced over the ranks (a
-- collective: every rank calls this at the same points): every evaluation
-- metric, and training metrics logged with sync_dist = true.
function Results:epoch_metrics(suffix_both)
  if self.dist then ddp.sync_results(self, self.stage == "train" and sync_if_asked or sync_always) end
  local out = {}
  for _, name in ipairs(self.order) do
    local item = self.items[name]
    if item.on_epoch and (item.synced or item).count > 0 then
      local key = (suffix_both and item.on_step) and (name .. "_epoch") or name
      out[key] = self:epoch_value(item)
    end
  end
  return out
end

------------------------------------------------------------------------------
-- The Trainer
------------------------------------------------------------------------------

local Trainer = {}
Trainer.__index = function(self, k)
  -- methods first: they are looked up every step
  local method = Trainer[k]
  if method ~= nil then return method end
  if k == "current_epoch" then return rawget(self, "_epoch") end
  if k == "global_step" then return rawget(self, "_global_step") end
  if k == "log_dir" then
    local lg = rawget(self, "logger")
    return lg and lg.log_dir or rawget(self, "default_root_dir")
  end
  if k == "checkpoint_callback" then -- Lightning's: the first ModelCheckpoint
    for _, cb in ipairs(rawget(self, "callbacks")) do
      if cb._is_model_checkpoint then return cb end
    end
    return nil
  end
  if k == "checkpoint_callbacks" or k == "early_stopping_callbacks" then
    local flag = k == "checkpoint_callbacks" and "_is_model_checkpoint" or "_is_early_stopping"
    local list = {}
    for _, cb in ipairs(rawget(self, "callbacks")) do if cb[flag] then list[#list + 1] = cb end end
    return list
  end
  if k == "early_stopping_callback" then
    for _, cb in ipairs(rawget(self, "callbacks")) do if cb._is_early_stopping then return cb end end
    return nil
  end
  if k == "lr_schedulers" then return rawget(self, "lr_scheduler_configs") end -- the older name
  if k == "loggers" then
    local lg = rawget(self, "logger")
    return lg and {lg} or {}
  end
  return nil
end
Trainer.__name = "Trainer"

-- Every option, with its type (the integer counts are checked by positive_int
-- below); docs/TRAINER.md describes each.
local trainer_options = {
  max_epochs = true, min_epochs = "integer", max_steps = true, min_steps = "integer", max_time = "string|table",
  accelerator = "string", devices = true, logger = "boolean|table", log_every_n_steps = true,
  num_sanity_val_steps = true, check_val_every_n_epoch = true, val_check_interval = "number",
  limit_train_batches = "number", limit_val_batches = "number", limit_test_batches = "number",
  limit_predict_batches = "number", fast_dev_run = "boolean|integer", accumulate_grad_batches = true,
  gradient_clip_val = "number", gradient_clip_algorithm = "string",
  enable_progress_bar = "boolean", enable_model_summary = "boolean", enable_checkpointing = "boolean",
  inference_mode = "boolean", default_root_dir = "string", callbacks = "table",
  seed = "integer", deterministic = true, detect_anomaly = true, precision = true,
  plot = "boolean|string", strategy = "string|table", num_nodes = "integer",
}

trainer_mod._options = trainer_options -- (docs/TRAINER.md lists each; trainer_options_spec checks)

local function positive_int(fname, name, v, allow_minus_one, min)
  if v == nil then return end
  if math.type(v) ~= "integer" or (v < (min or 0) and not (allow_minus_one and v == -1)) then
    error(string.format("%s: %s must be a%s integer%s, got %s", fname, name,
      (min or 0) > 0 and " positive" or " non-negative", allow_minus_one and " (or -1)" or "", tostring(v)), 3)
  end
end

-- Lightning runs checkpoint callbacks last, whatever their place in the list, so
-- that they save what the other callbacks did in the same hook.
local function order_callbacks(list)
  local others, checkpoints = {}, {}
  for _, cb in ipairs(list) do
    local into = cb._is_model_checkpoint and checkpoints or others
    into[#into + 1] = cb
  end
  for i, cb in ipairs(others) do list[i] = cb end
  for i, cb in ipairs(checkpoints) do list[#others + i] = cb end
end

local function cuda_available()
  return core.cuda_is_available and core.cuda_is_available() or false
end

-- val_check_interval: an integer count of training batches, or a fraction of the
-- epoch in [0, 1] (Lightning's; 1.0 by default: at the epoch's end)
local function check_val_check_interval(v)
  if v == nil then return 1.0 end
  if math.type(v) == "integer" then
    if v < 1 then error("Trainer: val_check_interval must be a positive integer or a fraction in (0, 1], got " .. v, 3) end
  elseif v < 0 or v > 1 then
    error(string.format("Trainer: `val_check_interval` should be in the range [0.0, 1.0] (a fraction of the " ..
      "epoch) or an integer number of training batches, but got %s", util.format_number(v)), 3)
  end
  return v
end

function trainer_mod.Trainer(opts)
  opts = check_options("Trainer", opts, trainer_options)
  positive_int("Trainer", "max_epochs", opts.max_epochs, true)
  positive_int("Trainer", "max_steps", opts.max_steps, true)
  positive_int("Trainer", "min_steps", opts.min_steps)
  positive_int("Trainer", "log_every_n_steps", opts.log_every_n_steps)
  positive_int("Trainer", "num_sanity_val_steps", opts.num_sanity_val_steps, true)
  if opts.check_val_every_n_epoch ~= false then
    positive_int("Trainer", "check_val_every_n_epoch", opts.check_val_every_n_epoch, false, 1)
  end
  positive_int("Trainer", "accumulate_grad_batches", opts.accumulate_grad_batches, false, 1)
  local self = setmetatable({}, Trainer)
  self.max_steps = opts.max_steps or -1
  self.min_steps = opts.min_steps
  self.max_time = opts.max_time
  self.max_epochs = opts.max_epochs
  if self.max_epochs == nil then
    self.max_epochs = (self.max_steps == -1 and self.max_time == nil) and 1000 or -1
  end
  self.min_epochs = opts.min_epochs or 0
  self.log_every_n_steps = opts.log_every_n_steps or 50
  self.num_sanity_val_steps = opts.num_sanity_val_steps or 2
  -- false: Lightning's None (validation every val_check_interval batches, across epochs)
  if opts.check_val_every_n_epoch == false then self.check_val_every_n_epoch = nil
  else self.check_val_every_n_epoch = opts.check_val_every_n_epoch or 1 end
  self.val_check_interval = check_val_check_interval(opts.val_check_interval)
  self.limit_train_batches = opts.limit_train_batches
  self.limit_val_batches = opts.limit_val_batches
  self.limit_test_batches = opts.limit_test_batches
  self.limit_predict_batches = opts.limit_predict_batches
  self.accumulate_grad_batches = opts.accumulate_grad_batches or 1
  self.gradient_clip_val = opts.gradient_clip_val
  self.gradient_clip_algorithm = opts.gradient_clip_algorithm or "norm"
  if self.gradient_clip_algorithm ~= "norm" and self.gradient_clip_algorithm ~= "value" then
    error("Trainer: gradient_clip_algorithm must be \"norm\" or \"value\", got " ..
      tostring(self.gradient_clip_algorithm), 2)
  end
  self.enable_progress_bar = opts.enable_progress_bar ~= false
  self.enable_model_summary = opts.enable_model_summary ~= false
  self.enable_checkpointing = opts.enable_checkpointing ~= false
  self.inference_mode = opts.inference_mode ~= false
  self.default_root_dir = opts.default_root_dir or "."
  self.callbacks = {}
  for _, cb in ipairs(opts.callbacks or {}) do self.callbacks[#self.callbacks + 1] = cb end
  self.plot = opts.plot
  self.interrupted = false
  self._hook_cache = {}
  self.callback_metrics = {}
  self.logged_metrics = {}
  self.progress_bar_metrics = {}
  self._epoch = 0
  self._global_step = 0
  self._batches_that_stepped = 0
  self.should_stop = false
  self.optimizers = {}
  self.lr_scheduler_configs = {}

  -- the strategy: one process, or data-parallel over MPI's processes (ddp.lua),
  -- set up before the accelerator (a rank's GPU is chosen before CUDA starts)
  self.global_rank, self.local_rank, self.node_rank, self.world_size = 0, 0, 0, 1
  self.num_nodes, self.num_devices, self.is_global_zero = 1, 1, true
  self._seed = opts.seed
  local strategy = ddp.parse_strategy(opts.strategy, opts.devices, opts.num_nodes)
  self.strategy = strategy or "single_device"
  if strategy then
    ddp.setup(self, strategy, opts.devices, opts.num_nodes, opts.accelerator or "auto")
    self._strategy = strategy
  end

  -- the accelerator
  local acc = opts.accelerator or "auto"
  local gpu = cuda_available()
  if acc == "auto" then
    self.device = gpu and "cuda" or "cpu"
  elseif acc == "cpu" then
    self.device = "cpu"
  elseif acc == "cuda" or acc == "gpu" then
    if not gpu then
      error("Trainer: accelerator=\"" .. acc .. "\" was requested but no CUDA device is available " ..
        "(ml.cuda.is_available() is false); use accelerator=\"auto\" or \"cpu\"", 2)
    end
    self.device = "cuda"
  else
    error("Trainer: unknown accelerator '" .. tostring(acc) .. "' (expected \"auto\", \"cpu\", \"cuda\" or \"gpu\")", 2)
  end
  self.accelerator = acc
  self._gpu_available = gpu

  if opts.seed ~= nil then core.manual_seed(opts.seed) end

  -- the logger: a CSVLogger under default_root_dir by default, false for none
  if opts.logger == nil or opts.logger == true then
    self.logger = loggers.CSVLogger(self.default_root_dir, {name = "lightning_logs"})
  elseif opts.logger == false then
    self.logger = nil
  else
    self.logger = opts.logger
  end

  local callbacks = require "moonlight.callbacks"
  -- a ModelCheckpoint by default, as Lightning
  local has_checkpoint, has_timer = false, false
  for _, cb in ipairs(self.callbacks) do
    if cb._is_model_checkpoint then has_checkpoint = true end
    if cb._is_timer then has_timer = true end
  end
  if self.enable_checkpointing then
    if not has_checkpoint then self.callbacks[#self.callbacks + 1] = callbacks.ModelCheckpoint({}) end
  elseif has_checkpoint then
    error("Trainer: Trainer was configured with `enable_checkpointing=False` but found `ModelCheckpoint` " ..
      "in callbacks list.", 2)
  end
  -- max_time: Lightning's Timer callback, checked after every training step
  if self.max_time ~= nil and not has_timer then
    self.callbacks[#self.callbacks + 1] = callbacks.Timer({duration = self.max_time, interval = "step"})
  end

  -- fast_dev_run: n batches of each loop (1 for true), one epoch, no sanity check,
  -- and nothing written: a logger that drops what it gets, no checkpoints
  local fdr = opts.fast_dev_run
  if fdr == true then fdr = 1 elseif fdr == false or fdr == nil then fdr = 0 end
  if fdr < 0 then
    error(string.format("Trainer: fast_dev_run=%d is not a valid configuration. It should be >= 0.", fdr), 2)
  end
  self.fast_dev_run = fdr == 1 or (fdr > 1 and fdr) or false
  if fdr > 0 then
    self.limit_train_batches, self.limit_val_batches = fdr, fdr
    self.limit_test_batches, self.limit_predict_batches = fdr, fdr
    self.max_steps = fdr
    self.num_sanity_val_steps = 0
    self.max_epochs = 1
    self.val_check_interval = 1.0
    self.check_val_every_n_epoch = 1
    if self.logger then self.logger = loggers.DummyLogger() end
    if self.is_global_zero then
      print(string.format("Running in `fast_dev_run` mode: will run the requested loop using %d batch(es). " ..
        "Logging and checkpointing is suppressed.", fdr))
    end
  end
  -- ranks other than 0 neither log nor show anything (Lightning's rank_zero_only);
  -- they log under rank 0's version directory all the same (checkpoint paths)
  if self._strategy then
    ddp.sync_logger_version(self.logger)
    if not self.is_global_zero then
      self.logger = ddp.rank_zero_logger(self.logger)
      self.enable_progress_bar, self.enable_model_summary = false, false
    end
  end
  order_callbacks(self.callbacks)
  return self
end

------------------------------------------------------------------------------
-- Hooks, in Lightning 2.x's order: each callback's hook(trainer, model, ...), in
-- list order (checkpoint callbacks last), then the module's hook(...). Missing
-- hooks are skipped. The full sequence per entry point is in docs/ARCHITECTURE.md
-- and tests/lua/trainer_hooks_spec.lua.
------------------------------------------------------------------------------

-- Who has hook `name`: {cb1, fn1, cb2, fn2, ..., module = fn or false}, looked up
-- once per entry point (fit, validate, test): a module's __index is a function
-- (its parameters and children), and ten hooks a step made the lookups ~2 % of a
-- reference step. Hooks a module or callback gains in the middle of a fit are seen
-- by the next one.
local function hooks_of(self, model, name)
  local list = rawget(self, "_hook_cache")[name]
  if list == nil then
    list = {}
    for _, cb in ipairs(self.callbacks) do
      local g = cb[name]
      if type(g) == "function" then
        list[#list + 1] = cb
        list[#list + 1] = g
      end
    end
    local f = model[name]
    list.module = type(f) == "function" and f or false
    rawget(self, "_hook_cache")[name] = list
  end
  return list
end

-- The module's hook function, or nil.
local function module_fn(self, model, name) return hooks_of(self, model, name).module or nil end

local function callback_hook(self, model, name, ...)
  local list = hooks_of(self, model, name)
  for i = 1, #list, 2 do list[i + 1](list[i], self, model, ...) end
end

-- The module's hook alone; returns what it returns.
local function module_hook(self, model, name, ...)
  local f = hooks_of(self, model, name).module
  if f then return f(model, ...) end
end

-- Callbacks, then the module; returns the module's result (on_train_batch_start
-- returns -1 to end the epoch).
local function call(self, model, name, ...)
  local list = hooks_of(self, model, name)
  for i = 1, #list, 2 do list[i + 1](list[i], self, model, ...) end
  local f = list.module
  if f then return f(model, ...) end
end

-- (methods too, for callbacks.lua; the loop uses the locals: a Trainer's __index is
-- a function, so a method call costs a call more)
Trainer._call, Trainer._callback_hook, Trainer._module_hook = call, callback_hook, module_hook

local function is_monitoring(cb) return cb._is_model_checkpoint or cb._is_early_stopping end

-- on_train_epoch_end: other callbacks, the module, then the monitoring callbacks
-- (ModelCheckpoint, EarlyStopping), so they see what the module logged there.
function Trainer:_train_epoch_end_hooks(model)
  for _, cb in ipairs(self.callbacks) do
    if not is_monitoring(cb) and type(cb.on_train_epoch_end) == "function" then cb:on_train_epoch_end(self, model) end
  end
  module_hook(self, model, "on_train_epoch_end")
  for _, cb in ipairs(self.callbacks) do
    if is_monitoring(cb) and type(cb.on_train_epoch_end) == "function" then cb:on_train_epoch_end(self, model) end
  end
end

-- What every entry point starts with: configure_callbacks (its callbacks replace
-- the trainer's of the same class), prepare_data, setup(stage).
function Trainer:_setup(model, stage)
  self._hook_cache = {}
  if type(model.configure_callbacks) == "function" then
    local extra = model:configure_callbacks()
    if extra ~= nil then
      if type(extra) ~= "table" then
        error("configure_callbacks must return a list of callbacks, got " .. type(extra), 0)
      end
      if getmetatable(extra) ~= nil or extra[1] == nil and next(extra) ~= nil then extra = {extra} end
      local replaced = {}
      for _, cb in ipairs(extra) do replaced[getmetatable(cb) or cb] = true end
      local kept = {}
      for _, cb in ipairs(self.callbacks) do
        if not replaced[getmetatable(cb) or cb] then kept[#kept + 1] = cb end
      end
      for _, cb in ipairs(extra) do kept[#kept + 1] = cb end
      order_callbacks(kept)
      self.callbacks = kept
      self._hook_cache = {}
    end
  end
  module_hook(self, model, "prepare_data")
  call(self, model, "setup", stage)
end

function Trainer:_teardown(model, stage)
  call(self, model, "teardown", stage)
end

-- on_exception hooks and the logger's finalize after a failure (Lightning's
-- _interrupt); a failure inside them does not hide the first one.
function Trainer:_on_exception(model, err)
  pcall(call, self, model, "on_exception", err)
  if self.logger and self.logger.finalize then pcall(self.logger.finalize, self.logger, "failed") end
end

-- A loader from the module's *_dataloader() hook when none was passed.
local function model_loader(model, hook)
  local f = model[hook]
  if type(f) == "function" then return f(model) end
  return nil
end

local function move_batch(batch, device)
  if core.is_tensor(batch) then
    if batch.device ~= device then return batch:to(device) end
    return batch
  end
  if type(batch) == "table" then
    local out = {}
    for k, v in pairs(batch) do out[k] = move_batch(v, device) end
    return out
  end
  return batch
end

-- on_before_batch_transfer, transfer_batch_to_device (default: every tensor of the
-- batch to the trainer's device), on_after_batch_transfer; dataloader_idx is 1 (a
-- Lua position, as batch_idx).
function Trainer:_transfer(model, batch)
  local f = module_fn(self, model, "on_before_batch_transfer")
  if f then batch = f(model, batch, 1) end
  f = module_fn(self, model, "transfer_batch_to_device")
  if f then batch = f(model, batch, self.device, 1)
  else batch = move_batch(batch, self.device) end
  f = module_fn(self, model, "on_after_batch_transfer")
  if f then batch = f(model, batch, 1) end
  if batch == nil then
    error("the batch is nil after the batch transfer hooks (on_before_batch_transfer, " ..
      "transfer_batch_to_device and on_after_batch_transfer must return the batch)", 0)
  end
  return batch
end

local function limit(n_batches, lim)
  if lim == nil then return n_batches end
  if math.type(lim) == "integer" then return math.min(n_batches, lim) end
  if type(lim) == "number" and lim >= 0 and lim <= 1 then return math.floor(n_batches * lim) end
  error("Trainer: limit_*_batches must be an integer count or a fraction in [0, 1], got " .. tostring(lim), 0)
end

-- Lightning's ModelSummary (the table printed at the start of fit).
local function human_count(n)
  local labels = {" ", "K", "M", "B", "T"}
  local digits = n > 0 and math.floor(math.log(n, 10)) + 1 or 1
  local groups = math.min(math.ceil(digits / 3), #labels)
  local v = n * 10 ^ (-3 * (groups - 1))
  if groups - 1 < 1 or v >= 100 then
    return string.format("%d %s", math.floor(v), labels[groups])
  end
  return string.format("%.1f %s", v, labels[groups])
end
trainer_mod._human_count = human_count

local function count_params(m)
  local total, trainable = 0, 0
  for _, p in ipairs(m:parameters()) do
    total = total + p:numel()
    if p.requires_grad then trainable = trainable + p:numel() end
  end
  -- buffers are not parameters
  return total, trainable
end

local function class_name(m)
  local mt = getmetatable(m)
  return mt and mt.__name or "Module"
end

function trainer_mod.model_summary(model)
  local rows = {}
  for name, child in model:named_children() do
    local total = count_params(child)
    rows[#rows + 1] = {tostring(#rows), name, class_name(child), human_count(total),
                       child.training and "train" or "eval"}
  end
  local headers = {" ", "Name", "Type", "Params", "Mode"}
  local widths = {}
  for c = 1, #headers do
    local w = #headers[c]
    for _, r in ipairs(rows) do w = math.max(w, utf8.len(r[c]) or #r[c]) end
    widths[c] = w
  end
  local function pad(s, w) return s .. string.rep(" ", w - (utf8.len(s) or #s)) end
  local total_width = 3 * #headers
  for _, w in ipairs(widths) do total_width = total_width + w end
  local lines = {}
  local h = {}
  for c = 1, #headers do h[c] = pad(headers[c], widths[c]) end
  lines[#lines + 1] = table.concat(h, " | ")
  lines[#lines + 1] = string.rep("-", total_width)
  for _, r in ipairs(rows) do
    local cells = {}
    for c = 1, #headers do cells[c] = pad(r[c], widths[c]) end
    lines[#lines + 1] = table.concat(cells, " | ")
  end
  lines[#lines + 1] = string.rep("-", total_width)
  local total, trainable = count_params(model)
  local modes = {train = 0, eval = 0}
  local all = model:modules()
  for i = 2, #all do -- the root is not counted, as Lightning
    local mode = all[i].training and "train" or "eval"
    modes[mode] = modes[mode] + 1
  end
  local function stat(v, label) lines[#lines + 1] = pad(v, 10) .. label end
  stat(human_count(trainable), "Trainable params")
  stat(human_count(total - trainable), "Non-trainable params")
  stat(human_count(total), "Total params")
  stat(string.format("%.3f", total * 4 / 1e6), "Total estimated model params size (MB)")
  stat(tostring(modes.train), "Modules in train mode")
  stat(tostring(modes.eval), "Modules in eval mode")
  return table.concat(lines, "\n")
end

-- configure_optimizers' return, in Lightning's forms: an optimizer; a list of
-- optimizers; two lists {{optimizers}, {schedulers}} (the second may be one
-- scheduler); {optimizer = opt, lr_scheduler = scheduler | config, monitor = name};
-- a list of such tables; nil (no optimizer). A scheduler config is
-- {scheduler = s, interval = "epoch" | "step", frequency = 1, monitor = "val_loss",
-- strict = true, name = "my-lr"}. Returns the optimizers and the configs.
local function is_optimizer(o) return type(o) == "table" and type(o.step) == "function" and type(o.zero_grad) == "function" end
local function is_scheduler(s) return type(s) == "table" and type(s.step) == "function" and s.optimizer ~= nil end

local sched_config_keys = {scheduler = true, interval = "string", frequency = "integer", monitor = "string",
                           strict = "boolean", name = "string", reduce_on_plateau = "boolean", opt_idx = true}
local opt_dict_keys = {optimizer = true, lr_scheduler = true, monitor = "string"}

local function scheduler_config(s, monitor)
  local fname = "configure_optimizers"
  local cfg
  if type(s) == "table" and not is_scheduler(s) and s.scheduler ~= nil then
    check_options(fname, s, sched_config_keys, "lr scheduler config key")
    cfg = {scheduler = s.scheduler, interval = s.interval or "epoch", frequency = s.frequency or 1,
           monitor = s.monitor or monitor, strict = s.strict ~= false, name = s.name,
           reduce_on_plateau = s.reduce_on_plateau}
  else
    cfg = {scheduler = s, interval = "epoch", frequency = 1, monitor = monitor, strict = true}
  end
  if not is_scheduler(cfg.scheduler) then
    error(fname .. ": the lr scheduler must be a scheduler (ml.optim.lr_scheduler.*) or a config " ..
      "{scheduler = s, interval = \"epoch\" | \"step\", ...}, got " .. util.typename(cfg.scheduler), 0)
  end
  if cfg.interval ~= "epoch" and cfg.interval ~= "step" then
    error(string.format('%s: the lr scheduler config has interval = "%s": it must be "epoch" or "step"',
      fname, tostring(cfg.interval)), 0)
  end
  if cfg.frequency < 1 then error(fname .. ": the lr scheduler's frequency must be a positive integer", 0) end
  -- a scheduler that steps on a metric (ReduceLROnPlateau): after validation, with
  -- callback_metrics[monitor]
  if cfg.reduce_on_plateau == nil then cfg.reduce_on_plateau = cfg.scheduler.reduce_on_plateau == true end
  if cfg.reduce_on_plateau and not cfg.monitor then
    error(fname .. ": The lr scheduler dict must include a monitor when a `ReduceLROnPlateau` scheduler is " ..
      'used. For example: {optimizer = optimizer, lr_scheduler = {scheduler = scheduler, monitor = "your_loss"}}', 0)
  end
  return cfg
end

local function parse_optimizers(ret)
  local fname = "configure_optimizers"
  local opts, configs = {}, {}
  local function add_dict(d)
    check_options(fname, d, opt_dict_keys, "key")
    opts[#opts + 1] = d.optimizer
    if d.lr_scheduler ~= nil then configs[#configs + 1] = scheduler_config(d.lr_scheduler, d.monitor) end
  end
  if ret == nil then
    print("`LightningModule.configure_optimizers` returned `nil`, this fit will run with no optimizer")
  elseif is_optimizer(ret) then
    opts[1] = ret
  elseif type(ret) == "table" and ret.optimizer ~= nil then
    add_dict(ret)
  elseif type(ret) == "table" and #ret == 2 and type(ret[1]) == "table" and not is_optimizer(ret[1])
         and ret[1].optimizer == nil and (is_optimizer(ret[1][1]) or #ret[1] == 0) then
    for _, o in ipairs(ret[1]) do opts[#opts + 1] = o end
    local sch = ret[2]
    if is_scheduler(sch) or (type(sch) == "table" and sch.scheduler ~= nil) then sch = {sch} end
    for _, s in ipairs(sch) do configs[#configs + 1] = scheduler_config(s) end
  elseif type(ret) == "table" and getmetatable(ret) == nil and ret[1] ~= nil then
    for _, o in ipairs(ret) do
      if type(o) == "table" and not is_optimizer(o) and o.optimizer ~= nil then add_dict(o)
      else opts[#opts + 1] = o end
    end
  else
    error(fname .. ": unknown configuration: return an optimizer, a list of optimizers, " ..
      "{{optimizers}, {schedulers}}, {optimizer = opt, lr_scheduler = sched} or a list of those; got " ..
      util.typename(ret), 0)
  end
  for i, o in ipairs(opts) do
    if not is_optimizer(o) then
      error(fname .. ": item " .. i .. " is not an optimizer (it has no step/zero_grad)", 0)
    end
  end
  local known = {}
  for _, o in ipairs(opts) do known[o] = true end
  for _, c in ipairs(configs) do
    if not known[c.scheduler.optimizer] then
      error(fname .. ": Some schedulers are attached with an optimizer that wasn't returned from " ..
        "`configure_optimizers`.", 0)
    end
  end
  return opts, configs
end

-- "(epoch E, step S)" for a message; made only when one is raised.
local function where_of(self, step_delta)
  return string.format("(epoch %d, step %d)", self._epoch, self._global_step + (step_delta or 0))
end

-- The loss a training_step returned: a scalar tensor, or a table with .loss.
function Trainer:_check_loss(out)
  local loss = out
  if type(out) == "table" and not core.is_tensor(out) then loss = out.loss end
  if core.is_tensor(loss) and loss.requires_grad and loss:numel() == 1 then return loss end
  local where = where_of(self)
  if loss == nil then
    error("training_step returned nothing " .. where .. ": return the loss tensor (or a table with a 'loss' field)", 0)
  end
  if not core.is_tensor(loss) then
    error("training_step must return a tensor, got " .. type(loss) .. " " .. where, 0)
  end
  if loss:numel() ~= 1 then
    error(string.format("training_step returned a loss of shape [%s] %s: the loss must be a scalar (reduce it, e.g. :mean())",
      table.concat(loss:shape(), ", "), where), 0)
  end
  if not loss.requires_grad then
    error("training_step returned a loss that does not require grad " .. where ..
      ": it was computed without the model's parameters or inside ml.no_grad", 0)
  end
  return loss
end

-- step_delta: -1 once the step counter has moved past the step checked
local function check_finite(loss, trainer, step_delta)
  local v = loss:item()
  if v ~= v or v == math.huge or v == -math.huge then
    error(string.format("training_step returned a non-finite loss (%s) %s: training stopped " ..
      "(rows logged so far are kept)", v ~= v and "nan" or tostring(v),
      where_of(trainer, step_delta)), 0)
  end
end

-- Clips the gradients of the optimizer's parameters (the model's when there is
-- no optimizer) to clip, by norm (nn.utils.clip_grad_norm_) or by value
-- (clip_grad_value_): what the module's clip_gradients does and what Lightning's
-- default configure_gradient_clipping calls with the Trainer's
-- gradient_clip_val / gradient_clip_algorithm. Nothing when clip is nil or <= 0.
function Trainer:_clip_gradients(model, optimizer, clip, algorithm)
  if not clip or clip <= 0 then return end
  algorithm = algorithm or "norm"
  if algorithm ~= "norm" and algorithm ~= "value" then
    error("clip_gradients: gradient_clip_algorithm must be \"norm\" or \"value\", got " .. tostring(algorithm), 0)
  end
  local params
  if optimizer and optimizer.param_groups then
    params = {}
    for _, g in ipairs(optimizer.param_groups) do
      for _, p in ipairs(g.params) do params[#params + 1] = p end
    end
  else
    params = model:parameters()
  end
  local utils = require "moonlight.nn_utils"
  if algorithm == "value" then utils.clip_grad_value_(params, clip)
  else utils.clip_grad_norm_(params, clip) end
end

-- metrics name -> number, plus epoch, for a logger row at step
function Trainer:_log_row(metrics, step)
  local any = false
  for k, v in pairs(metrics) do
    self.logged_metrics[k] = v
    any = true
  end
  if not any or not self.logger then return end
  local row = {}
  for k, v in pairs(metrics) do row[k] = v end
  row.epoch = self._epoch
  self.logger:log_metrics(row, step)
end

function Trainer:_update_callback_metrics(metrics, prog_bar_from)
  for k, v in pairs(self.callback_metrics) do
    if type(v) ~= "number" then self.callback_metrics[k] = to_number(v) end
  end
  for k, v in pairs(metrics) do self.callback_metrics[k] = v end
  if prog_bar_from then
    for _, name in ipairs(prog_bar_from.order) do
      local item = prog_bar_from.items[name]
      if item.prog_bar then
        self.progress_bar_metrics[name] = item.on_epoch and item.count > 0 and not item.on_step
          and prog_bar_from:epoch_value(item) or to_number(item.last)
      end
    end
  end
end

function Trainer:_postfix()
  local list = {}
  if self.logger and self.logger.version ~= nil then list[1] = {"v_num", self.logger.version} end
  local names = {}
  for k in pairs(self.progress_bar_metrics) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do list[#list + 1] = {k, self.progress_bar_metrics[k]} end
  return list
end

local function loader_length(loader, what)
  if loader == nil then return 0 end
  if type(loader) ~= "table" or type(loader.iter) ~= "function" then
    error(what .. ": expected a DataLoader (something with :iter()), got " .. type(loader), 0)
  end
  return #loader
end

-- The module's mode (train/eval) of every submodule, to put back after an
-- evaluation (Lightning's _ModuleMode).
local function capture_modes(model)
  local modes = {}
  for i, m in ipairs(model:modules()) do modes[i] = {m, m.training} end
  return modes
end

local function restore_modes(modes)
  for _, e in ipairs(modes) do rawset(e[1], "training", e[2]) end
end

-- The epoch metrics of an evaluation run for the logger (x_epoch for a value
-- logged on step and epoch) and for callback_metrics (x as well).
local function eval_epoch_metrics(results)
  local logged = results:epoch_metrics(true)
  local cm = {}
  for k, v in pairs(logged) do cm[k] = v end
  for name, item in pairs(results.items) do
    if item.on_epoch and item.on_step and item.count > 0 then cm[name] = logged[name .. "_epoch"] end
  end
  return logged, cm
end

-- One pass of validation_step/test_step over max_batches of a loader, with
-- Lightning's hooks; returns the epoch metrics and the result set (nil when the
-- module has no such step or there is no batch to run). log_step: the step its
-- epoch row is logged at (nil: not logged, as in the sanity check); values logged
-- on_step go to the logger after each batch, at the batch's index in the run.
function Trainer:_evaluate(model, loader, stage, max_batches, show_bar, desc, log_step)
  local step_name = stage == "test" and "test_step" or "validation_step"
  local step_fn = model[step_name]
  if type(step_fn) ~= "function" or max_batches <= 0 then return nil end
  local hook = stage == "test" and "test" or "validation"
  local results = new_results(stage)
  results.dist = self._strategy ~= nil
  local prev_results = self._results
  local metrics
  -- the whole loop without autograd, its hooks too (Lightning's run is no_grad)
  core.no_grad(function()
    local modes = capture_modes(model)
    local f = model["on_" .. hook .. "_model_eval"]
    if type(f) == "function" then f(model) else model:eval() end
    self._results = results
    call(self, model, "on_" .. hook .. "_start")
    call(self, model, "on_" .. hook .. "_epoch_start")
    local bar = progress.new(desc, max_batches, {enabled = show_bar and self.enable_progress_bar and sys.isatty(1),
                                                 leave = false})
    local n = 0
    for batch_idx, batch in loader:iter() do
      if n >= max_batches then break end
      n = n + 1
      batch = self:_transfer(model, batch)
      self._current_batch = batch
      call(self, model, "on_" .. hook .. "_batch_start", batch, batch_idx)
      local out = step_fn(model, batch, batch_idx)
      call(self, model, "on_" .. hook .. "_batch_end", out, batch, batch_idx)
      self._current_batch = nil
      if log_step then
        local sm = results:step_metrics(true)
        if next(sm) ~= nil then self:_log_row(sm, n - 1) end
      end
      for _, item in pairs(results.items) do item.fresh = false end
      bar:update(1)
    end
    bar:close()
    -- inside on_*_epoch_end, callback_metrics already hold this epoch's values
    -- (Lightning computes them from the results when they are read)
    local _, cm = eval_epoch_metrics(results)
    self:_update_callback_metrics(cm, results)
    call(self, model, "on_" .. hook .. "_epoch_end")
    -- with what the epoch-end hooks logged
    metrics, cm = eval_epoch_metrics(results)
    self:_update_callback_metrics(cm, results)
    if log_step then self:_log_row(metrics, log_step) end
    call(self, model, "on_" .. hook .. "_end")
    f = model["on_" .. hook .. "_model_train"]
    if type(f) == "function" then f(model) else restore_modes(modes) end
  end)
  self._results = prev_results
  return metrics, results
end

function Trainer:_attach(model)
  if type(model) ~= "table" or type(model.parameters) ~= "function" then
    error("Trainer: expected an nn.Module, got " .. type(model), 0)
  end
  rawset(model, "_trainer", self)
  rawset(model, "trainer", self)
  if self.device ~= "cpu" and model.to then model:to(self.device) end
end

local function print_gpu_line(self)
  if not self.is_global_zero then return end
  -- Lightning names the GPU type only when there is one
  print(string.format("GPU available: %s, used: %s", self._gpu_available and "True (cuda)" or "False",
    self.device == "cuda" and "True" or "False"))
end

-- The values of this step that callbacks see (Lightning's callback_metrics in
-- training: the plain name and, for a value logged on step and on epoch, the
-- name_step too). Tensors stay tensors until a number is needed.
local function step_callback_metrics(cm, results)
  for name, item in pairs(results.items) do
    if item.fresh and item.on_step then
      cm[name] = item.last
      if item.on_epoch then cm[name .. "_step"] = item.last end
    end
  end
end

------------------------------------------------------------------------------
-- Optimization: automatic (Lightning's closure), with gradient accumulation, and
-- manual (self.automatic_optimization = false)
------------------------------------------------------------------------------

-- The training step as Lightning's automatic optimization runs it: a closure that
-- runs training_step, zero_grad (on the first batch of an accumulation window
-- only) and backward of the loss divided by accumulate_grad_batches (so that the
-- gradients of the window add up to those of its mean loss), with their hooks;
-- then, when the optimizer steps, on_before_optimizer_step and gradient
-- clipping; the module's optimizer_step (default: optimizer:step(closure)) runs
-- it. While accumulating, the closure runs alone. n: the batch's position in the
-- epoch. Returns the step's output and the (divided) loss.
function Trainer:_optimization_step(model, batch, batch_idx, n, optimizers, accumulating)
  local opt = optimizers[1]
  local accumulate = self.accumulate_grad_batches
  local first_of_window = (n - 1) % accumulate == 0
  local out, loss
  local function closure()
    out = model:training_step(batch, batch_idx)
    loss = self:_check_loss(out)
    -- on the CPU the check is free; on a GPU it would wait for the device every
    -- step, so it happens when metrics are logged
    if self.device == "cpu" then check_finite(loss, self) end
    if accumulate > 1 then loss = loss / accumulate end
    if opt and first_of_window then
      call(self, model, "on_before_zero_grad", opt)
      local zg = module_fn(self, model, "optimizer_zero_grad")
      if zg then zg(model, self._epoch, batch_idx, opt) else opt:zero_grad() end
    end
    call(self, model, "on_before_backward", loss)
    local bw = module_fn(self, model, "backward")
    -- data-parallel: the gradients are averaged over the ranks during backward,
    -- except while accumulating (PyTorch's no_sync)
    local reducer = not accumulating and self._reducer
    if reducer then
      if bw then ddp.backward(reducer, bw, model, loss) else ddp.backward(reducer, loss.backward, loss) end
    elseif bw then bw(model, loss) else loss:backward() end
    call(self, model, "on_after_backward")
    if accumulating or not opt then return loss end
    call(self, model, "on_before_optimizer_step", opt)
    local cg = module_fn(self, model, "configure_gradient_clipping")
    if cg then cg(model, opt, self.gradient_clip_val, self.gradient_clip_algorithm)
    else self:_clip_gradients(model, opt, self.gradient_clip_val, self.gradient_clip_algorithm) end
    return loss
  end
  if accumulating or not opt then
    closure()
    return out, loss
  end
  local os_hook = module_fn(self, model, "optimizer_step")
  if os_hook then
    os_hook(model, self._epoch, batch_idx, opt, closure)
    if loss == nil then
      error("optimizer_step: the closure was not run: call optimizer:step(optimizer_closure) " ..
        where_of(self), 0)
    end
  else
    -- closure first, then the update: what step(closure) does, with any optimizer
    closure()
    opt:step()
  end
  return out, loss
end

-- A manual optimization step: training_step does it all (self:optimizers(),
-- self:manual_backward(loss), opt:step()). Returns the outputs on_train_batch_end
-- gets (Lightning's ManualResult: the returned table, or {loss = tensor}, its
-- loss detached) and the loss, if any.
function Trainer:_manual_step(model, batch, batch_idx)
  local out = model:training_step(batch, batch_idx)
  local outputs = {}
  if core.is_tensor(out) then
    outputs.loss = out
  elseif type(out) == "table" then
    for k, v in pairs(out) do outputs[k] = v end
  elseif out ~= nil then
    error("In manual optimization, `training_step` must either return a Tensor or have no return " ..
      where_of(self), 0)
  end
  if core.is_tensor(outputs.loss) then outputs.loss = outputs.loss:detach() end
  return outputs, outputs.loss
end

-- The optimizer self:optimizers() returns (Lightning's LightningOptimizer): the
-- optimizer's fields and methods, and a step(closure) that runs the closure,
-- the on_before_optimizer_step hooks, the step, and counts it (global_step, in
-- manual optimization).
local LightningOptimizer = {__name = "LightningOptimizer"}
LightningOptimizer.__index = function(w, k)
  local m = LightningOptimizer[k]
  if m ~= nil then return m end
  local opt = rawget(w, "_optimizer")
  local v = opt[k]
  if type(v) == "function" then
    return function(self, ...)
      if self == w then return v(opt, ...) end
      return v(self, ...)
    end
  end
  return v
end
LightningOptimizer.__tostring = function(w) return "LightningOptimizer(" .. tostring(rawget(w, "_optimizer")) .. ")" end

function LightningOptimizer:step(closure)
  local trainer, model, opt = rawget(self, "_trainer"), rawget(self, "_model"), rawget(self, "_optimizer")
  local result
  if closure ~= nil then
    local mt = getmetatable(closure)
    if type(closure) ~= "function" and not (type(mt) == "table" and mt.__call) then
      util.fail("step", "When `optimizer.step(closure)` is called, the closure should be callable")
    end
    result = core.enable_grad(closure)
  end
  call(trainer, model, "on_before_optimizer_step", opt)
  opt:step()
  if model.automatic_optimization == false then trainer._global_step = trainer._global_step + 1 end
  return result
end

function LightningOptimizer:zero_grad(opts) return rawget(self, "_optimizer"):zero_grad(opts) end

local function wrap_optimizer(trainer, model, opt)
  return setmetatable({_trainer = trainer, _model = model, _optimizer = opt, optimizer = opt}, LightningOptimizer)
end

-- self:optimizers(use_pl_optimizer): the optimizer (LightningOptimizer), or the list
-- of them when there are several
function Trainer:_module_optimizers(model, use_pl_optimizer)
  local list = use_pl_optimizer == false and self.optimizers or rawget(self, "_lightning_optimizers") or {}
  if #list == 1 then return list[1] end
  return list
end

-- self:lr_schedulers(): the scheduler, the list of them, or nil
function Trainer:_module_lr_schedulers()
  local configs = self.lr_scheduler_configs
  if #configs == 0 then return nil end
  if #configs == 1 then return configs[1].scheduler end
  local list = {}
  for i, c in ipairs(configs) do list[i] = c.scheduler end
  return list
end

-- self:manual_backward(loss): backward with its hooks (manual optimization only)
function Trainer:_manual_backward(model, loss)
  if model.automatic_optimization ~= false then
    util.raise("manual_backward: To use manual_backward, please disable automatic optimization: " ..
      "set model property `automatic_optimization` as False")
  end
  call(self, model, "on_before_backward", loss)
  local bw = module_fn(self, model, "backward")
  local reducer = self._reducer
  if reducer then
    if bw then ddp.backward(reducer, bw, model, loss) else ddp.backward(reducer, loss.backward, loss) end
  elseif bw then bw(model, loss) else loss:backward() end
  call(self, model, "on_after_backward")
end

-- Steps one scheduler (or lets the module's lr_scheduler_step do it).
function Trainer:_step_scheduler(model, s, metric)
  local f = module_fn(self, model, "lr_scheduler_step")
  if f then f(model, s.scheduler, metric)
  elseif metric ~= nil then s.scheduler:step(metric)
  else s.scheduler:step() end
end

-- Steps a scheduler that follows a metric (ReduceLROnPlateau) with
-- callback_metrics[monitor]; a missing metric is an error with strict (the
-- default), else a warning and no step.
function Trainer:_step_plateau(model, s)
  local v = self.callback_metrics[s.monitor]
  if v == nil then
    local msg = string.format("ReduceLROnPlateau conditioned on metric %s which is not available", s.monitor)
    if s.strict then
      error(string.format("%s. Available metrics are: [%s]. Condition can be set using `monitor` key in " ..
        "lr scheduler dict", msg, table.concat(util.sorted_keys(self.callback_metrics), ", ")), 0)
    end
    sys.stderr:write(msg .. " but strict is set to `False`. Skipping learning rate update.\n")
    return
  end
  self:_step_scheduler(model, s, to_number(v))
end

------------------------------------------------------------------------------
-- fit
------------------------------------------------------------------------------

-- What a stopped fit says: where it stopped, where its state went.
local function stop_message(self, how)
  local where = string.format("epoch %d, step %d", self._epoch, self._global_step)
  local msg = string.format("fit: %s at %s", how, where)
  if self.interrupted_ckpt_path then
    msg = msg .. string.format("; checkpoint saved to %s (resume with fit(model, ..., {ckpt_path = \"last\"}))",
      self.interrupted_ckpt_path)
  elseif self.interrupted then
    msg = msg .. "; no checkpoint saved (enable_checkpointing is false)"
  end
  return msg
end

-- Marks the fit as stopped on a request, inside an epoch after batches_done of
-- its batches (epoch_rng: the generator state its loader drew its order from).
function Trainer:_stop_requested_at(batches_done, epoch_rng)
  self.interrupted = true
  self._stopped_at = {batches_done = batches_done, epoch_rng = epoch_rng}
end

-- Lightning's _can_stop_early: min_epochs epochs done and min_steps steps taken
function Trainer:_can_stop_early()
  return self._epoch >= self.min_epochs and (self.min_steps == nil or self._global_step >= self.min_steps)
end

-- Whether this epoch validates at all (Lightning's _should_check_val_epoch)
function Trainer:_should_check_val_epoch(val_loader, n_val)
  if not val_loader or n_val <= 0 then return false end
  local every = self.check_val_every_n_epoch
  return every == nil or (self._epoch + 1) % every == 0
end

-- Whether to validate after the n-th batch of the epoch (Lightning's
-- _should_check_val_fx): every val_check_batch batches (of the epoch, or of the
-- whole fit when check_val_every_n_epoch is nil), and when a stop was asked for.
function Trainer:_is_val_check_batch(n)
  if self.should_stop and self:_can_stop_early() then return true end
  local current = self.check_val_every_n_epoch == nil and self._total_batch_idx or n
  return current % self._val_check_batch == 0
end

function Trainer:_run_validation(model, val_loader, n_val)
  local vstart = sys.clock()
  -- Lightning's default hook frees the gradients before validating
  local f = model.on_validation_model_zero_grad
  if type(f) == "function" then f(model) else model:zero_grad() end
  self.validating = true
  self:_evaluate(model, val_loader, "validation", n_val, true, "Validation", self._batches_that_stepped)
  self.validating = false
  self._val_time = (self._val_time or 0) + (sys.clock() - vstart)
end

function Trainer:_run_training_epoch(model, train_loader, n_train, val_loader, n_val)
  local epoch = self._epoch
  local results = new_results("train")
  results.dist = self._strategy ~= nil
  local schedulers = self.lr_scheduler_configs
  local optimizers = self.optimizers
  local automatic = model.automatic_optimization ~= false
  local accumulate = self.accumulate_grad_batches
  self._results = results
  self._val_time = nil
  model:train()
  call(self, model, "on_train_epoch_start")
  local bar = progress.new("Epoch " .. epoch, n_train, {enabled = self.enable_progress_bar})
  bar:set_postfix_fn(function()
    self:_update_callback_metrics({}, results)
    return self:_postfix()
  end)
  local n = 0
  -- a checkpoint saved inside this epoch: the same order again, its batches skipped
  local resume = self._resume_mid_epoch
  self._resume_mid_epoch = nil
  if resume then core.set_rng_state(resume.epoch_rng) end
  local epoch_rng = core.get_rng_state()
  -- a sampler's order changes with the epoch (DistributedSampler), as Lightning sets it
  local sampler = type(train_loader) == "table" and rawget(train_loader, "sampler")
  if type(sampler) == "table" and type(sampler.set_epoch) == "function" then sampler:set_epoch(epoch) end
  -- (any generic-for iterator: a function, or a function with its state)
  local batches, iter_state, iter_ctl = train_loader:iter()
  if resume and resume.batches_done > 0 then
    while n < resume.batches_done do
      local idx = batches(iter_state, iter_ctl)
      if idx == nil then break end
      iter_ctl = idx
      n = n + 1
    end
    -- the generator as it was after those steps (stopped before the epoch began,
    -- it is the state the order was just drawn from: nothing to put back)
    core.set_rng_state(resume.rng)
    bar:update(n)
  end
  local validate_epoch = self:_should_check_val_epoch(val_loader, n_val)
  local stop_req = self._stop_req
  local epoch_start = sys.clock()
  for batch_idx, batch in batches, iter_state, iter_ctl do
    if n >= n_train then break end
    if self.max_steps >= 0 and self._global_step >= self.max_steps then break end
    n = n + 1
    self._total_batch_idx = self._total_batch_idx + 1
    local is_last = n == n_train
    batch = self:_transfer(model, batch)
    self._current_batch = batch
    if call(self, model, "on_train_batch_start", batch, batch_idx) == -1 then
      -- Lightning: the rest of the epoch is skipped
      self._current_batch = nil
      break
    end
    -- Lightning's _should_accumulate: the optimizer steps once accumulate_grad_batches
    -- batches have run, and on the epoch's last batch
    local accumulating = automatic and n % accumulate ~= 0 and not is_last
    local outputs, loss
    if automatic then
      local out
      out, loss = self:_optimization_step(model, batch, batch_idx, n, optimizers, accumulating)
      outputs = {loss = loss:detach()}
      if type(out) == "table" and not core.is_tensor(out) then
        for k, v in pairs(out) do if k ~= "loss" then outputs[k] = v end end
      end
      if not accumulating then
        for _, s in ipairs(schedulers) do
          if s.interval == "step" and not s.reduce_on_plateau and n % s.frequency == 0 then
            self:_step_scheduler(model, s)
          end
        end
      end
      -- epoch schedulers step after the epoch's last batch, before validation and
      -- the checkpoint (Lightning): a checkpoint holds the stepped scheduler
      if is_last then
        for _, s in ipairs(schedulers) do
          if s.interval == "epoch" and not s.reduce_on_plateau and (epoch + 1) % s.frequency == 0 then
            self:_step_scheduler(model, s)
          end
        end
      end
      if not accumulating then self._global_step = self._global_step + 1 end
    else
      outputs, loss = self:_manual_step(model, batch, batch_idx)
    end
    -- on_train_batch_end sees this step's values in callback_metrics
    step_callback_metrics(self.callback_metrics, results)
    call(self, model, "on_train_batch_end", outputs, batch, batch_idx)
    self._current_batch = nil
    step_callback_metrics(self.callback_metrics, results) -- and what the hook logged
    -- a stop (should_stop, a stop request) on any rank stops every rank here, before
    -- anything that depends on it (a validation check) runs
    local stop_now = stop_req and not accumulating and sys.stop_requested(stop_req) or false
    if self._strategy and not accumulating then
      local any = ddp.any({self.should_stop, stop_now})
      self.should_stop, stop_now = any[1], any[2]
    end
    if not accumulating then
      -- Lightning's should_update_logs: every log_every_n_steps steps (and when stopping)
      if (self._batches_that_stepped + 1) % self.log_every_n_steps == 0 or self.should_stop then
        if self.device ~= "cpu" and loss then check_finite(loss, self, -1) end
        self:_log_row(results:step_metrics(true), self._batches_that_stepped)
      end
      for _, item in pairs(results.items) do item.fresh = false end
    end
    bar:update(1)
    -- validation after the step (Lightning's on_advance_end), inside the epoch; a
    -- checkpoint saved there records where the epoch stands, to resume from there
    if validate_epoch and self:_is_val_check_batch(n) then
      self._in_epoch = n < n_train and {batches_done = n, epoch_rng = epoch_rng} or nil
      self:_run_validation(model, val_loader, n_val)
      self._in_epoch = nil
    end
    if automatic and not accumulating then
      for _, s in ipairs(schedulers) do
        if s.interval == "step" and s.reduce_on_plateau and n % s.frequency == 0 then self:_step_plateau(model, s) end
      end
    end
    if not accumulating then self._batches_that_stepped = self._batches_that_stepped + 1 end
    -- a stop request (Ctrl-C, ml_request_stop): this step is done; stop here (at
    -- an optimizer step: accumulated gradients are not saved)
    if stop_now then
      self:_stop_requested_at(n, epoch_rng)
      break
    end
    -- should_stop (EarlyStopping, the Timer of max_time) ends the epoch here
    if self.should_stop and self:_can_stop_early() then break end
  end
  self:_update_callback_metrics({}, results)
  self._train_epoch_time = sys.clock() - epoch_start - (self._val_time or 0)
  if self.interrupted then
    bar:close()
    self._results = nil
    return
  end

  -- the epoch's end: callback_metrics hold the epoch's aggregates before the hooks
  -- run (Lightning), and what the hooks logged after
  self._results = results
  local function epoch_metrics()
    local em = results:epoch_metrics(true)
    local cm = {}
    for k, v in pairs(em) do cm[k] = v end
    for name, item in pairs(results.items) do
      if item.on_epoch and item.on_step and item.count > 0 then cm[name] = em[name .. "_epoch"] end
    end
    self:_update_callback_metrics(cm, results)
    return em
  end
  epoch_metrics()
  self:_train_epoch_end_hooks(model)
  -- schedulers that follow a metric (ReduceLROnPlateau) step after the hooks, when
  -- the epoch ran to its end
  if automatic and n == n_train then
    for _, s in ipairs(schedulers) do
      if s.interval == "epoch" and s.reduce_on_plateau and (epoch + 1) % s.frequency == 0 then
        self:_step_plateau(model, s)
      end
    end
  end
  self:_log_row(epoch_metrics(), self._batches_that_stepped - 1)
  self._results = nil
  bar:set_postfix(self:_postfix())
  bar:close()
end

-- Saves the state of a stopped fit (where the epoch stood, the generator) next to
-- the ModelCheckpoint's checkpoints; none without a ModelCheckpoint.
function Trainer:_save_interrupted(model)
  local cp = self.checkpoint_callback
  if not cp or self.fast_dev_run then return end
  local at = self._stopped_at
  local dir = cp:_dir(self)
  local ok, err = true, nil
  if self.is_global_zero then ok, err = sys.mkdir_p(dir) end
  if not ok then error("fit: cannot save the checkpoint of the stop: " .. err, 0) end
  local callbacks = require "moonlight.callbacks"
  local path = cp:interrupted_path(self)
  callbacks.save_checkpoint(self, model, path, {batches_done = at.batches_done,
                                               epoch_rng_state = callbacks._to_hex(at.epoch_rng)})
  self.interrupted_ckpt_path = path
end

-- Lightning's val_check_batch: validation every this many training batches
local function val_check_batch(self, n_train)
  local v = self.val_check_interval
  if math.type(v) == "integer" then
    if v > n_train and self.check_val_every_n_epoch ~= nil then
      error(string.format("fit: `val_check_interval` (%d) must be less than or equal to the number of the " ..
        "training batches (%d). If you want to disable validation set `limit_val_batches` to 0.0 instead. If " ..
        "you want to validate based on the total training batches, set `check_val_every_n_epoch=false`.",
        v, n_train), 0)
    end
    return v
  end
  return math.max(1, math.floor(n_train * v))
end

function Trainer:_fit(model, train_loader, val_loader, opts)
  local automatic = model.automatic_optimization ~= false
  if not automatic then
    if self.gradient_clip_val and self.gradient_clip_val > 0 then
      error("fit: Automatic gradient clipping is not supported for manual optimization. Remove " ..
        "`Trainer(gradient_clip_val=...)` or switch to automatic optimization.", 0)
    end
    if self.accumulate_grad_batches ~= 1 then
      error("fit: Automatic gradient accumulation is not supported for manual optimization. Remove " ..
        "`Trainer(accumulate_grad_batches=...)` or switch to automatic optimization.", 0)
    end
  end
  self:_setup(model, "fit")
  if train_loader == nil then train_loader = model_loader(model, "train_dataloader") end
  if train_loader == nil then
    error("fit: no training data: pass a DataLoader or define the module's train_dataloader()", 0)
  end
  if val_loader == nil and type(model.validation_step) == "function" then
    val_loader = model_loader(model, "val_dataloader")
  end
  if self._strategy then
    train_loader = ddp.distributed_loader(self, train_loader, true)
    if val_loader then val_loader = ddp.distributed_loader(self, val_loader, false) end
  end
  local n_train_total = loader_length(train_loader, "fit: train_dataloaders")
  local n_val_total = loader_length(val_loader, "fit: val_dataloaders")
  print_gpu_line(self)
  if self.logger then
    self.logger:log_hyperparams(rawget(model, "hparams") or {})
  end
  if self.enable_model_summary then print(trainer_mod.model_summary(model)) end

  local callbacks_mod = require "moonlight.callbacks"
  -- configure_model builds what the checkpoint's weights load into (Lightning 2.x:
  -- configure_model, then the restore, then configure_optimizers)
  module_hook(self, model, "configure_model")
  local ckpt
  -- (a checkpoint rank 0 is still writing is read by no rank: checkpoints are
  -- written before the barrier every rank passes here)
  if opts.ckpt_path and self._strategy then core._distributed.barrier() end
  if opts.ckpt_path then ckpt = callbacks_mod._restore_start(self, model, opts.ckpt_path, "fit") end
  -- every rank starts from rank 0's weights (DDP's broadcast at wrapping time)
  if self._strategy then ddp.broadcast_model(model) end
  local optimizers, configs = parse_optimizers(model:configure_optimizers())
  if automatic and #optimizers > 1 then
    error("fit: Training with multiple optimizers is only supported with manual optimization. Set " ..
      "`self.automatic_optimization = false` and access your optimizers in `training_step` with " ..
      "`local opt1, opt2 = table.unpack(self:optimizers())`.", 0)
  end
  self.optimizers = optimizers
  self.lr_scheduler_configs = configs
  self._lightning_optimizers = {}
  for i, o in ipairs(optimizers) do self._lightning_optimizers[i] = wrap_optimizer(self, model, o) end
  self._total_batch_idx = 0
  self._reducer = self._strategy and ddp.reducer(model, self._strategy) or nil
  if ckpt then callbacks_mod._restore_training(self, ckpt) end

  local n_train = limit(n_train_total, self.limit_train_batches)
  local n_val = val_loader and limit(n_val_total, self.limit_val_batches) or 0
  self.num_training_batches, self.num_val_batches = n_train, n_val
  if n_train > 0 then self._val_check_batch = val_check_batch(self, n_train) end

  call(self, model, "on_fit_start")
  -- sanity check: a few validation batches before training, not logged; the
  -- generator is put back after it (Lightning's isolate_rng) and the metrics it
  -- produced are cleared
  if val_loader and n_val > 0 and self.num_sanity_val_steps ~= 0 and not ckpt then
    local k = self.num_sanity_val_steps == -1 and n_val or math.min(self.num_sanity_val_steps, n_val)
    local rng = core.get_rng_state()
    self.sanity_checking = true
    callback_hook(self, model, "on_sanity_check_start")
    self:_evaluate(model, val_loader, "validation", k, true, "Sanity Checking")
    callback_hook(self, model, "on_sanity_check_end")
    self.sanity_checking = false
    self.callback_metrics, self.logged_metrics, self.progress_bar_metrics = {}, {}, {}
    core.set_rng_state(rng)
  end

  if n_train == 0 then
    if self.is_global_zero then print("`Trainer.fit` stopped: No training batches.") end
  else
    self.training = true
    call(self, model, "on_train_start")
    while not self.should_stop do
      if self.max_epochs >= 0 and self._epoch >= self.max_epochs then break end
      if self.max_steps >= 0 and self._global_step >= self.max_steps then break end
      -- a stop asked for between epochs: before the next one starts (on any rank)
      local asked = self._stop_req and sys.stop_requested(self._stop_req) or false
      if self._strategy then asked = ddp.any({asked})[1] end
      if asked then
        self:_stop_requested_at(0, core.get_rng_state())
        break
      end
      self:_run_training_epoch(model, train_loader, n_train, val_loader, n_val)
      if self.interrupted then break end
      -- Lightning's current_epoch ends as the number of epochs run
      self._epoch = self._epoch + 1
      -- one decision for every rank (EarlyStopping on a rank's own metric)
      if self._strategy then self.should_stop = ddp.any({self.should_stop})[1] end
      -- min_epochs / min_steps not met: training goes on
      if self.should_stop and not self:_can_stop_early() then self.should_stop = false end
    end
    if self.interrupted then self:_save_interrupted(model) end
    call(self, model, "on_train_end")
    self.training = false
  end
  call(self, model, "on_fit_end")
  if self._reducer then self._reducer_stats = self._reducer:stats() end
  self._reducer = nil
  self:_teardown(model, "fit")
  if self.logger and self.logger.finalize then self.logger:finalize("success") end
  if self.plot and self.logger and self.logger.metrics_file and self.is_global_zero then
    local history = require "moonlight.history"
    local path = type(self.plot) == "string" and self.plot or (self.logger.log_dir .. "/curves.png")
    history.plot(self.logger.metrics_file, path)
  end
end

-- A plain table where a loader was expected: the options (fit(model, {ckpt_path = ...})
-- takes the loaders from the module's hooks)
local function is_options_table(t)
  return type(t) == "table" and getmetatable(t) == nil and t.iter == nil and t[1] == nil
end

-- fit(model, train_loader, val_loader, {ckpt_path = path | "last" | "best"}).
-- Without loaders, the module's train_dataloader() / val_dataloader() give them.
--
-- A stop request (the CLI's Ctrl-C, ml_request_stop, Ctrl-C under a stock
-- lua5.4) is polled after every training step and before every epoch: fit then
-- finishes the step, saves interrupted.safetensors beside the ModelCheckpoint's
-- files (resumable mid-epoch: ckpt_path = "last"), runs the end hooks, flushes the
-- logger, sets trainer.interrupted, and then returns (ml_request_stop), raises an
-- error the CLI turns into exit status 130, or hands the SIGINT back to the
-- process's previous handler (stock lua5.4: "interrupted!"; see src/lua/stop.c).
function Trainer:fit(model, train_loader, val_loader, opts)
  if opts == nil and val_loader == nil and is_options_table(train_loader) then
    opts, train_loader = train_loader, nil
  elseif opts == nil and is_options_table(val_loader) then
    opts, val_loader = val_loader, nil
  end
  opts = check_options("fit", opts, {ckpt_path = "string"})
  if type(model) ~= "table" or type(model.training_step) ~= "function" then
    error("fit: the model has no training_step(batch, batch_idx) method", 2)
  end
  if type(model.configure_optimizers) ~= "function" then
    error("fit: the model has no configure_optimizers() method (return e.g. optim.Adam(self:parameters(), {lr = 1e-3}))", 2)
  end
  self:_attach(model)
  self.state = {fn = "fit", stage = "train"}
  self.interrupted = false
  self.interrupted_ckpt_path = nil
  local req, mode = sys.stop_begin()
  self._stop_req = req
  local ok, err = pcall(self._fit, self, model, train_loader, val_loader, opts)
  self._stop_req = nil
  self.state = {fn = "finished"}
  if not ok then
    self:_on_exception(model, err)
    sys.stop_end(req, false)
    -- the other ranks wait in a collective this one will never join
    if self._strategy and self.world_size > 1 then ddp.abort(self, err) end
    error(err, 0)
  end
  if self.interrupted and mode == "signal" then
    -- before the SIGINT goes back to the previous handler, which may end the process
    sys.stderr:write(stop_message(self, "stopped by Ctrl-C (SIGINT)"), "\n")
    sys.stderr:flush()
  end
  local pending = sys.stop_end(req, self.interrupted)
  if pending and mode == "raise" then
    error(self.interrupted and stop_message(self, "stopped by Ctrl-C (SIGINT)") or
      "fit: Ctrl-C came after the last step: training finished and was saved", 0)
  end
  return self.callback_metrics
end

------------------------------------------------------------------------------
-- validate, test, predict
------------------------------------------------------------------------------

local function print_results_table(title, metrics)
  local names = {}
  for k in pairs(metrics) do names[#names + 1] = k end
  table.sort(names)
  if #names == 0 then return end
  local w1 = math.max(#title, 10)
  for _, k in ipairs(names) do w1 = math.max(w1, #k) end
  local w2 = 20
  local line = string.rep("─", w1 + w2 + 7)
  print(line)
  print(string.format("   %-" .. w1 .. "s   %-" .. w2 .. "s", title, "DataLoader 0"))
  print(line)
  for _, k in ipairs(names) do
    print(string.format("   %-" .. w1 .. "s   %-" .. w2 .. "s", k, util.format_number(metrics[k])))
  end
  print(line)
end

local eval_options = {ckpt_path = "string", verbose = "boolean"}

local function run_eval(self, model, loader, stage, opts)
  local fname = stage == "test" and "test" or "validate"
  if opts == nil and is_options_table(loader) then opts, loader = loader, nil end
  opts = check_options(fname, opts, eval_options)
  local step = stage == "test" and "test_step" or "validation_step"
  if type(model) ~= "table" or type(model[step]) ~= "function" then
    error(fname .. ": the model has no " .. step .. "(batch, batch_idx) method", 3)
  end
  self:_attach(model)
  self.state = {fn = fname, stage = stage}
  local ok, metrics = pcall(function()
    self:_setup(model, fname)
    module_hook(self, model, "configure_model")
    if opts.ckpt_path then
      local callbacks_mod = require "moonlight.callbacks"
      if self._strategy then core._distributed.barrier() end
      callbacks_mod._restore_weights(self, model, opts.ckpt_path, fname)
    end
    if loader == nil then loader = model_loader(model, stage == "test" and "test_dataloader" or "val_dataloader") end
    if loader == nil then
      error(fname .. ": no data: pass a DataLoader or define " ..
        (stage == "test" and "test_dataloader()" or "val_dataloader()"), 0)
    end
    if self._strategy then loader = ddp.distributed_loader(self, loader, false) end
    local n = loader_length(loader, fname)
    local lim = stage == "test" and self.limit_test_batches or self.limit_val_batches
    self[stage == "test" and "testing" or "validating"] = true
    local m = self:_evaluate(model, loader, stage, limit(n, lim), true,
      stage == "test" and "Testing" or "Validation", self._batches_that_stepped)
    self[stage == "test" and "testing" or "validating"] = false
    self:_teardown(model, fname)
    return m or {}
  end)
  self.state = {fn = "finished"}
  if not ok then
    self:_on_exception(model, metrics)
    if self._strategy and self.world_size > 1 then ddp.abort(self, metrics) end
    error(metrics, 0)
  end
  if opts.verbose ~= false and self.is_global_zero then print_results_table(stage == "test" and "Test metric" or "Validate metric", metrics) end
  return metrics
end

-- validate(model, loader, {ckpt_path = "best" | "last" | path, verbose = true}):
-- one validation run; returns the logged metrics (name -> number). With ckpt_path
-- the model's weights come from that checkpoint first ("best": the
-- ModelCheckpoint's best_model_path). Without a loader, val_dataloader().
function Trainer:validate(model, loader, opts) return run_eval(self, model, loader, "validation", opts) end

-- test(model, loader, {ckpt_path, verbose}): the same with test_step
function Trainer:test(model, loader, opts) return run_eval(self, model, loader, "test", opts) end

-- The default predict_step: the model on the batch's inputs (the batch itself when
-- it is a tensor, else its first element: datasets give {x, y}).
local function default_predict_step(model, batch)
  if core.is_tensor(batch) then return model(batch) end
  if type(batch) == "table" and batch[1] ~= nil then return model(batch[1]) end
  return model(batch)
end

-- predict(model, loader, {ckpt_path, return_predictions = true}): predict_step
-- (default: the model's forward on the batch's inputs) on every batch, without
-- gradients, the model in eval mode, with Lightning's predict hooks; returns the
-- list of per-batch outputs (nil with return_predictions = false). Without a
-- loader, predict_dataloader().
function Trainer:predict(model, loader, opts)
  if opts == nil and is_options_table(loader) then opts, loader = loader, nil end
  opts = check_options("predict", opts, {ckpt_path = "string", return_predictions = "boolean"})
  if type(model) ~= "table" or type(model.parameters) ~= "function" then
    error("predict: expected an nn.Module, got " .. util.typename(model), 2)
  end
  self:_attach(model)
  self.state = {fn = "predict", stage = "predict"}
  local keep = opts.return_predictions ~= false
  local ok, preds = pcall(function()
    self:_setup(model, "predict")
    module_hook(self, model, "configure_model")
    if opts.ckpt_path then
      local callbacks_mod = require "moonlight.callbacks"
      callbacks_mod._restore_weights(self, model, opts.ckpt_path, "predict")
    end
    if loader == nil then loader = model_loader(model, "predict_dataloader") end
    if loader == nil then error("predict: no data: pass a DataLoader or define predict_dataloader()", 0) end
    local max_batches = limit(loader_length(loader, "predict"), self.limit_predict_batches)
    local out = keep and {} or nil
    if max_batches > 0 then
      self.predicting = true
      self:_predict_loop(model, loader, max_batches, out)
      self.predicting = false
    end
    self:_teardown(model, "predict")
    return out
  end)
  self.state = {fn = "finished"}
  self.predicting = false
  if not ok then
    self:_on_exception(model, preds)
    if self._strategy and self.world_size > 1 then ddp.abort(self, preds) end
    error(preds, 0)
  end
  return preds
end

function Trainer:_predict_loop(model, loader, max_batches, out)
  local step_fn = module_fn(self, model, "predict_step") or default_predict_step
  core.no_grad(function()
    local modes = capture_modes(model)
    local f = model.on_predict_model_eval
    if type(f) == "function" then f(model) else model:eval() end
    model:zero_grad()
    call(self, model, "on_predict_start")
    call(self, model, "on_predict_epoch_start")
    local bar = progress.new("Predicting", max_batches, {enabled = self.enable_progress_bar and sys.isatty(1),
                                                         leave = false})
    local n = 0
    for batch_idx, batch in loader:iter() do
      if n >= max_batches then break end
      n = n + 1
      batch = self:_transfer(model, batch)
      self._current_batch = batch
      call(self, model, "on_predict_batch_start", batch, batch_idx)
      local pred = step_fn(model, batch, batch_idx)
      if out then out[n] = pred end
      call(self, model, "on_predict_batch_end", pred, batch, batch_idx)
      self._current_batch = nil
      bar:update(1)
    end
    bar:close()
    call(self, model, "on_predict_epoch_end")
    call(self, model, "on_predict_end")
    restore_modes(modes)
  end)
end

trainer_mod.Trainer_class = Trainer
return trainer_mod
