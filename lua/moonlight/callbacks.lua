-- ml.callbacks: Lightning's ModelCheckpoint and EarlyStopping, and the Callback
-- base class (any table with hook methods works as a callback too).
--
-- Checkpoints are safetensors files: the model's state dict under "state_dict.",
-- the optimizers' tensors under "optimizer_states.<i>.", and the rest (epoch, step,
-- generator state, optimizer scalars, callback state, hyper-parameters) as a Lua
-- literal in the header's metadata ("moonlight.trainer_state"). They are written
-- under a temporary name and renamed (ml.save does that), so a crash mid-save never
-- leaves a corrupt checkpoint.
local core = require "moonlight.core"
local util = require "moonlight.util"
local sys = core._sys
local check_options = util.check_options

local callbacks = {}

local Callback = {}
Callback.__index = Callback
callbacks.Callback = Callback

function Callback:extend(name)
  local cls = setmetatable({}, {__index = self, __call = function(c, ...)
    local o = setmetatable({}, c)
    if o.init then o:init(...) end
    return o
  end})
  cls.__index = cls
  cls.__name = name
  return cls
end

------------------------------------------------------------------------------
-- Serialising trainer state: tensors go into the file, the rest into metadata
------------------------------------------------------------------------------

local function serialize(v, out)
  local t = type(v)
  if t == "number" then
    if math.type(v) == "integer" then out[#out + 1] = tostring(v)
    elseif v ~= v then out[#out + 1] = "(0/0)"
    elseif v == math.huge then out[#out + 1] = "math.huge"
    elseif v == -math.huge then out[#out + 1] = "-math.huge"
    else out[#out + 1] = util.format_number(v) end -- a Lua numeral too, read back exactly
  elseif t == "string" then out[#out + 1] = string.format("%q", v)
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "table" then
    out[#out + 1] = "{"
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      out[#out + 1] = "["
      serialize(k, out)
      out[#out + 1] = "]="
      serialize(v[k], out)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = "nil"
  end
end

-- the generator state is raw bytes; the header is JSON and must stay UTF-8
local function to_hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
local function from_hex(h) return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end

local function to_literal(v)
  local out = {}
  serialize(v, out)
  return table.concat(out)
end

local function from_literal(s)
  local f, err = load("return " .. s, "=checkpoint metadata", "t", {math = {huge = math.huge}})
  if not f then error("checkpoint: corrupt trainer state: " .. err, 0) end
  return f()
end

-- Splits a nested table into tensors (flat names under prefix) and a skeleton
-- where each tensor is replaced by {__tensor = name}.
local function split_tensors(v, prefix, tensors)
  if core.is_tensor(v) then
    tensors[prefix] = v
    return {__tensor = prefix}
  end
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = split_tensors(x, prefix .. "." .. tostring(k), tensors) end
  return out
end

local function join_tensors(v, tensors)
  if type(v) ~= "table" then return v end
  if v.__tensor then
    local t = tensors[v.__tensor]
    if not t then error("checkpoint: tensor '" .. v.__tensor .. "' is missing from the file", 0) end
    return t
  end
  local out = {}
  for k, x in pairs(v) do out[k] = join_tensors(x, tensors) end
  return out
end

-- save_checkpoint(trainer, model, path, extra): the checkpoint as Lightning builds
-- it (a table: state_dict, optimizer_states, lr_schedulers, callbacks, epoch,
-- global_step, hparams, and the generator state; extra's fields on top), handed
-- to every callback's on_save_checkpoint(trainer, model, checkpoint) and then to
-- the module's on_save_checkpoint(checkpoint), which may add fields (tensors
-- too); then written. Tensors go into the file under their path (state_dict.<name>,
-- optimizer_states.<i>.<...>, checkpoint.<key>.<...>), the rest into the literal.
-- weights_only (ModelCheckpoint's save_weights_only): no optimizer or scheduler state.
function callbacks.save_checkpoint(trainer, model, path, extra, weights_only)
  local ml = require "moonlight"
  local opt_states = {}
  local sched_states = {}
  if not weights_only then
    for i, opt in ipairs(trainer.optimizers or {}) do opt_states[i] = opt:state_dict() end
    for i, s in ipairs(trainer.lr_scheduler_configs or {}) do
      if s.scheduler.state_dict then sched_states[i] = s.scheduler:state_dict() end
    end
  end
  local cb_states = {}
  for i, cb in ipairs(trainer.callbacks) do
    if type(cb.state_dict) == "function" then cb_states[i] = cb:state_dict() end
  end
  local ckpt = {
    epoch = trainer.current_epoch, global_step = trainer.global_step,
    batches_that_stepped = trainer._batches_that_stepped, total_batch_idx = trainer._total_batch_idx,
    rng_state = to_hex(core.get_rng_state()), state_dict = model:state_dict(),
    optimizer_states = opt_states, lr_schedulers = sched_states, callbacks = cb_states,
    hparams = rawget(model, "hparams"),
  }
  -- saved inside an epoch (after a validation that val_check_interval runs mid-epoch):
  -- where the epoch stands, so that a resumed fit goes on from there
  local at = rawget(trainer, "_in_epoch")
  if at and not (extra and extra.batches_done) then
    ckpt.batches_done, ckpt.epoch_rng_state = at.batches_done, to_hex(at.epoch_rng)
  end
  for k, v in pairs(extra or {}) do ckpt[k] = v end
  for _, cb in ipairs(trainer.callbacks) do
    if type(cb.on_save_checkpoint) == "function" then cb:on_save_checkpoint(trainer, model, ckpt) end
  end
  if type(model.on_save_checkpoint) == "function" then model:on_save_checkpoint(ckpt) end

  local tensors, state = {}, {}
  for name, t in pairs(ckpt.state_dict or {}) do tensors["state_dict." .. name] = t end
  for k, v in pairs(ckpt) do
    if k == "optimizer_states" then
      local list = {}
      for i, st in ipairs(v) do list[i] = split_tensors(st, "optimizer_states." .. (i - 1), tensors) end
      state[k] = list
    elseif k ~= "state_dict" then
      state[k] = split_tensors(v, "checkpoint." .. tostring(k), tensors)
    end
  end
  -- a distributed fit's checkpoint is written by rank 0 alone (every rank built
  -- it: the hooks ran everywhere, as Lightning's)
  if trainer.is_global_zero == false then return end
  -- tensors on a device are written from host copies
  for k, t in pairs(tensors) do
    if t.device ~= "cpu" then tensors[k] = t:cpu() end
  end
  ml.save(tensors, path, {["moonlight.trainer_state"] = to_literal(state), format = "moonlight"})
end

function callbacks.load_checkpoint(path)
  local ml = require "moonlight"
  local tensors, meta = ml.load(path)
  local literal = meta and meta["moonlight.trainer_state"]
  if not literal then
    error("checkpoint: '" .. path .. "' has no trainer state (was it written by ModelCheckpoint?)", 0)
  end
  return tensors, from_literal(literal)
end

-- read_checkpoint(path) -> the checkpoint as Lightning's table: state_dict (name ->
-- tensor, the "state_dict." prefix gone), optimizer_states, lr_schedulers,
-- callbacks, epoch, global_step, hparams (also as hyper_parameters, Lightning's
-- key), and what on_save_checkpoint hooks added.
function callbacks.read_checkpoint(path)
  local tensors, state = callbacks.load_checkpoint(path)
  local ckpt = join_tensors(state, tensors)
  local sd = {}
  for name, t in pairs(tensors) do
    local key = name:match("^state_dict%.(.+)$")
    if key then sd[key] = t end
  end
  ckpt.state_dict = sd
  if ckpt.hparams ~= nil and ckpt.hyper_parameters == nil then ckpt.hyper_parameters = ckpt.hparams end
  return ckpt
end

local function warn(msg) sys.stderr:write(msg, "\n") end

-- The path ckpt_path names, or nil (a warning) when "last" finds nothing:
-- "last" is the newest of the ModelCheckpoint's last.safetensors and
-- interrupted.safetensors (what a stopped fit saved), as Lightning's "last" is
-- the newest of its candidates; "best" is the ModelCheckpoint's best_model_path.
local function resolve_ckpt_path(trainer, ckpt_path, fname)
  local cp = trainer.checkpoint_callback
  if ckpt_path == "best" then
    if not cp then
      error(('%s: ckpt_path="best" is set but `ModelCheckpoint` is not configured.'):format(fname), 0)
    end
    if (cp.best_model_path or "") == "" then
      error(('%s: ckpt_path="best" is set but `ModelCheckpoint` has not saved a best checkpoint yet ' ..
        '(fit first, or pass a path)'):format(fname), 0)
    end
    return cp.best_model_path
  end
  if ckpt_path ~= "last" then
    if not sys.kind(ckpt_path) then error(fname .. ": checkpoint '" .. tostring(ckpt_path) .. "' does not exist", 0) end
    return ckpt_path
  end
  local best, best_time
  local candidates = {}
  if cp then
    candidates = {cp:last_path(trainer), cp:interrupted_path(trainer)}
    if (cp.last_model_path or "") ~= "" then candidates[#candidates + 1] = cp.last_model_path end
  end
  for _, p in ipairs(candidates) do
    local t = sys.mtime(p)
    if t and (not best_time or t > best_time) then best, best_time = p, t end
  end
  if not best then
    warn(('%s(ckpt_path="last") is set, but there is no last checkpoint available%s. No checkpoint will be ' ..
      'loaded. HINT: Set `ModelCheckpoint({save_last = true})`.'):format(fname,
      cp and (" in " .. cp:_dir(trainer)) or " (no ModelCheckpoint)"))
    return nil
  end
  return best
end

-- Restoring, in Lightning's order. First (after configure_model, before
-- configure_optimizers) the file, the module's on_load_checkpoint(checkpoint),
-- its weights, then the callbacks' on_load_checkpoint(trainer, model, checkpoint)
-- and load_state_dict(state). Returns the checkpoint table for
-- _restore_training, nil when "last" found nothing.
function callbacks._restore_start(trainer, model, ckpt_path, fname)
  local path = resolve_ckpt_path(trainer, ckpt_path, fname or "fit")
  if not path then return nil end
  print("Restoring states from the checkpoint path at " .. path)
  local ckpt = callbacks.read_checkpoint(path)
  if type(model.on_load_checkpoint) == "function" then model:on_load_checkpoint(ckpt) end
  model:load_state_dict(ckpt.state_dict)
  for _, cb in ipairs(trainer.callbacks) do
    if type(cb.on_load_checkpoint) == "function" then cb:on_load_checkpoint(trainer, model, ckpt) end
  end
  for i, cb in ipairs(trainer.callbacks) do
    local st = ckpt.callbacks and ckpt.callbacks[i]
    if st and type(cb.load_state_dict) == "function" then cb:load_state_dict(st) end
  end
  ckpt.path = path
  return ckpt
end

-- validate / test / predict with ckpt_path: the module's on_load_checkpoint and
-- its weights only (Lightning restores nothing else outside fit).
function callbacks._restore_weights(trainer, model, ckpt_path, fname)
  local path = resolve_ckpt_path(trainer, ckpt_path, fname)
  if not path then return nil end
  print("Restoring states from the checkpoint path at " .. path)
  local ckpt = callbacks.read_checkpoint(path)
  if type(model.on_load_checkpoint) == "function" then model:on_load_checkpoint(ckpt) end
  model:load_state_dict(ckpt.state_dict)
  print("Loaded model weights from the checkpoint at " .. path)
  return ckpt
end

-- Then (after configure_optimizers) the optimizers, schedulers, counters and the
-- generator, so that training goes on as if it had not stopped.
function callbacks._restore_training(trainer, ckpt)
  for i, opt in ipairs(trainer.optimizers or {}) do
    local st = ckpt.optimizer_states and ckpt.optimizer_states[i]
    if st then opt:load_state_dict(st) end
  end
  for i, s in ipairs(trainer.lr_scheduler_configs or {}) do
    local st = ckpt.lr_schedulers and ckpt.lr_schedulers[i]
    if st and s.scheduler.load_state_dict then s.scheduler:load_state_dict(st) end
  end
  trainer._global_step = ckpt.global_step
  trainer._batches_that_stepped = ckpt.batches_that_stepped or ckpt.global_step
  trainer._total_batch_idx = ckpt.total_batch_idx or 0
  if ckpt.batches_done then
    -- saved inside an epoch (a stopped fit): that epoch again, its first
    -- batches_done batches drawn in the same order and skipped
    trainer._epoch = ckpt.epoch
    trainer._resume_mid_epoch = {batches_done = ckpt.batches_done,
                                 epoch_rng = from_hex(ckpt.epoch_rng_state),
                                 rng = from_hex(ckpt.rng_state)}
  else
    -- saved at the end of its epoch: go on with the next one
    trainer._epoch = ckpt.epoch + 1
  end
  core.set_rng_state(from_hex(ckpt.rng_state))
end

------------------------------------------------------------------------------
-- Model:load_from_checkpoint(path, overrides)
------------------------------------------------------------------------------

-- The names of a Lua function's parameters (nil without the debug library)
local function param_names(f)
  if not (debug and debug.getinfo and debug.getlocal) or type(f) ~= "function" then return nil end
  local info = debug.getinfo(f, "u")
  local names = {}
  for i = 1, info.nparams do names[i] = debug.getlocal(f, i) end
  return names, info.isvararg
end

-- Builds cls from hyperparameters the way save_hyperparameters took them: when
-- init's parameters (after self) are named by keys of hp, by name, in order
-- (init(self, hidden, lr)); else hp itself as the one argument (init(self, opts)).
local function construct(cls, hp)
  local names = param_names(cls.init)
  if names then
    local args, named = {}, false
    for i = 2, #names do
      if hp[names[i]] ~= nil then named = true end
      args[i - 1] = hp[names[i]]
    end
    if named then return cls(table.unpack(args, 1, #names - 1)) end
  end
  return cls(hp)
end

local load_options = {map_location = "string", strict = "boolean"}

-- Model:load_from_checkpoint(path, overrides): a new Model built from the
-- hyperparameters its checkpoint holds (save_hyperparameters), with overrides'
-- values on top, its on_load_checkpoint(checkpoint) called, then its weights
-- loaded (strict). overrides may also hold map_location (a device to move the
-- model to) and strict (false: missing/unexpected keys allowed), as Lightning's
-- keyword arguments. The model is returned in train mode, as constructed.
function callbacks.load_from_checkpoint(cls, path, overrides)
  local fname = "load_from_checkpoint"
  if type(cls) == "string" then
    util.fail(fname, "call it on the class with a colon: Model:load_from_checkpoint(path)")
  end
  if type(cls) ~= "table" or rawget(cls, "_modules") ~= nil then
    util.fail(fname, "The classmethod `load_from_checkpoint` cannot be called on an instance. Please call it " ..
      "on the class type (Model:load_from_checkpoint(path)) and make sure the return value is used.")
  end
  if type(path) ~= "string" then util.fail(fname, "expected a checkpoint path, got %s", util.typename(path)) end
  if overrides ~= nil and (type(overrides) ~= "table" or core.is_tensor(overrides)) then
    util.fail(fname, "overrides must be a table of name -> value, got %s", util.typename(overrides))
  end
  if not sys.kind(path) then util.fail(fname, "checkpoint '%s' does not exist", path) end
  local opts, hp_over = {}, {}
  for k, v in pairs(overrides or {}) do
    if load_options[k] then opts[k] = v else hp_over[k] = v end
  end
  check_options(fname, opts, load_options)
  local ckpt = callbacks.read_checkpoint(path)
  local hp = {}
  for k, v in pairs(ckpt.hparams or {}) do hp[k] = v end
  for k, v in pairs(hp_over) do hp[k] = v end
  local model = construct(cls, hp)
  if type(model.on_load_checkpoint) == "function" then model:on_load_checkpoint(ckpt) end
  model:load_state_dict(ckpt.state_dict, {strict = opts.strict ~= false})
  if opts.map_location then model:to(opts.map_location) end
  return model
end

callbacks._to_hex = to_hex
callbacks._to_literal, callbacks._from_literal = to_literal, from_literal

------------------------------------------------------------------------------
-- ModelCheckpoint
------------------------------------------------------------------------------

local ModelCheckpoint = Callback:extend("ModelCheckpoint")
callbacks.ModelCheckpoint = ModelCheckpoint
ModelCheckpoint._is_model_checkpoint = true

local mc_options = {dirpath = "string", filename = "string", monitor = "string", mode = "string",
                    save_top_k = "integer", save_last = "boolean", every_n_epochs = "integer",
                    verbose = "boolean", save_on_train_epoch_end = "boolean", save_weights_only = "boolean"}

-- ModelCheckpoint({dirpath, filename = "{epoch}-{step}", monitor, mode = "min",
-- save_top_k = 1, save_last, every_n_epochs = 1, save_on_train_epoch_end}). After
-- a fit, best_model_path / best_model_score (the monitored value of the best
-- checkpoint), best_k_models (path -> score of those kept), kth_best_model_path /
-- kth_value (the worst of them) and last_model_path are Lightning's.
function ModelCheckpoint:init(opts)
  opts = check_options("ModelCheckpoint", opts, mc_options)
  self.dirpath = opts.dirpath
  self.filename = opts.filename
  self.monitor = opts.monitor
  self.mode = opts.mode or "min"
  if self.mode ~= "min" and self.mode ~= "max" then
    error("ModelCheckpoint: mode must be \"min\" or \"max\", got " .. tostring(self.mode), 3)
  end
  self.save_top_k = opts.save_top_k == nil and 1 or opts.save_top_k
  self.save_last = opts.save_last
  self.every_n_epochs = opts.every_n_epochs or 1
  self.verbose = opts.verbose
  self.save_on_train_epoch_end = opts.save_on_train_epoch_end
  self.save_weights_only = opts.save_weights_only or false
  self.best_k = {}          -- {path, score}, best first
  self.best_k_models = {}   -- path -> score
  self.best_model_path = ""
  self.best_model_score = nil
  self.kth_best_model_path = ""
  self.kth_value = nil
  self.current_score = nil
  self.last_model_path = ""
end

function ModelCheckpoint:_dir(trainer)
  if self.dirpath then return self.dirpath end
  local root = trainer.logger and trainer.logger.log_dir or trainer.default_root_dir
  return root .. "/checkpoints"
end

function ModelCheckpoint:last_path(trainer) return self:_dir(trainer) .. "/last.safetensors" end
-- where a fit that was asked to stop (Ctrl-C, ml_request_stop) saves its state
function ModelCheckpoint:interrupted_path(trainer) return self:_dir(trainer) .. "/interrupted.safetensors" end

-- "epoch={epoch}-step={step}" by default; {name} fields come from the metrics
function ModelCheckpoint:_format_name(trainer)
  local pattern = self.filename or "{epoch}-{step}"
  local values = {epoch = trainer.current_epoch, step = trainer.global_step}
  for k, v in pairs(trainer.callback_metrics) do values[k] = v end
  local name = pattern:gsub("{([%w_/%.%-]+)(:?[^}]*)}", function(key, fmt)
    local v = values[key]
    if v == nil then return key .. "=nan" end
    if fmt ~= "" then
      local f = fmt:sub(2)
      if f:match("f$") then return key .. "=" .. string.format("%" .. f, v) end
    end
    return key .. "=" .. tostring(v)
  end)
  return name
end

local function better(mode, a, b)
  if b == nil then return true end
  if mode == "min" then return a < b end
  return a > b
end

-- Lightning's _should_skip_saving_checkpoint: nothing under fast_dev_run, outside
-- fit, in the sanity check, or twice at the same step
function ModelCheckpoint:_should_skip(trainer)
  return trainer.fast_dev_run or (trainer.state and trainer.state.fn ~= "fit") or trainer.sanity_checking
    or self._last_global_step_saved == trainer.global_step
end

-- Lightning's _should_save_on_train_epoch_end: at the training epoch's end unless
-- validation runs several times an epoch (val_check_interval) or not every epoch
-- (check_val_every_n_epoch ~= 1); then after validation
function ModelCheckpoint:_should_save_on_train_epoch_end(trainer)
  if self.save_on_train_epoch_end ~= nil then return self.save_on_train_epoch_end end
  if trainer.check_val_every_n_epoch ~= 1 then return false end
  if (trainer.num_val_batches or 0) == 0 then return true end
  return trainer.val_check_interval == 1.0
end

function ModelCheckpoint:_save_model(trainer, model, path)
  callbacks.save_checkpoint(trainer, model, path, nil, self.save_weights_only)
  self._last_global_step_saved = trainer.global_step
end

-- Files are made and removed by rank 0 alone in a distributed fit.
local function mkdir_p(trainer, dir)
  if trainer.is_global_zero == false then return true end
  return sys.mkdir_p(dir)
end

local function remove(trainer, path)
  if trainer.is_global_zero ~= false then sys.remove(path) end
end

function ModelCheckpoint:_update_best()
  self.best_k_models = {}
  for _, e in ipairs(self.best_k) do self.best_k_models[e.path] = e.score end
  local first, last = self.best_k[1], self.best_k[#self.best_k]
  self.best_model_path = first and first.path or ""
  self.kth_best_model_path = last and last.path or ""
  if self.monitor then
    self.best_model_score = first and first.score
    self.kth_value = last and last.score
  end
end

function ModelCheckpoint:_save_topk(trainer, model)
  if self.save_top_k == 0 then return end
  local dir = self:_dir(trainer)
  local ok, err = mkdir_p(trainer, dir)
  if not ok then error("ModelCheckpoint: " .. err, 0) end
  local path = dir .. "/" .. self:_format_name(trainer) .. ".safetensors"
  if self.monitor then
    local score = trainer.callback_metrics[self.monitor]
    if score == nil then
      error("ModelCheckpoint: monitor='" .. self.monitor .. "' is not among the logged metrics", 0)
    end
    if core.is_tensor(score) then score = score:item() end
    -- every rank keeps rank 0's decisions (a metric logged without sync_dist differs
    -- between ranks): the same best_model_path everywhere
    if rawget(trainer, "_strategy") then score = require("moonlight.ddp").broadcast_number(score) end
    self.current_score = score
    local worst = self.best_k[#self.best_k]
    if self.save_top_k < 0 or #self.best_k < self.save_top_k or better(self.mode, score, worst.score) then
      self:_save_model(trainer, model, path)
      for i = #self.best_k, 1, -1 do -- a file saved again under the same name
        if self.best_k[i].path == path then table.remove(self.best_k, i) end
      end
      self.best_k[#self.best_k + 1] = {path = path, score = score}
      table.sort(self.best_k, function(a, b) return better(self.mode, a.score, b.score) end)
      while self.save_top_k >= 0 and #self.best_k > self.save_top_k do
        local drop = table.remove(self.best_k)
        if drop.path ~= path then remove(trainer, drop.path) end
      end
      if self.verbose then
        print(string.format("Epoch %d, global step %d: %s reached %s (best %s), saving model to %s",
          trainer.current_epoch, trainer.global_step, self.monitor, util.format_number(score),
          util.format_number(self.best_k[1].score), path))
      end
    elseif self.verbose then
      print(string.format("Epoch %d, global step %d: %s was not in top %d", trainer.current_epoch,
        trainer.global_step, self.monitor, self.save_top_k))
    end
  else
    -- no monitor: keep the latest save_top_k (1 by default)
    self:_save_model(trainer, model, path)
    for i = #self.best_k, 1, -1 do
      if self.best_k[i].path == path then table.remove(self.best_k, i) end
    end
    table.insert(self.best_k, 1, {path = path, score = trainer.global_step})
    while self.save_top_k >= 0 and #self.best_k > self.save_top_k do
      local drop = table.remove(self.best_k)
      if drop.path ~= path then remove(trainer, drop.path) end
    end
  end
  self:_update_best()
end

function ModelCheckpoint:_save_last(trainer, model)
  if not self.save_last then return end
  local dir = self:_dir(trainer)
  local ok, err = mkdir_p(trainer, dir)
  if not ok then error("ModelCheckpoint: " .. err, 0) end
  self:_save_model(trainer, model, self:last_path(trainer))
  self.last_model_path = self:last_path(trainer)
end

function ModelCheckpoint:_save_all(trainer, model)
  if (trainer.current_epoch + 1) % self.every_n_epochs == 0 then self:_save_topk(trainer, model) end
  self:_save_last(trainer, model)
end

function ModelCheckpoint:on_train_epoch_end(trainer, model)
  if self:_should_skip(trainer) or not self:_should_save_on_train_epoch_end(trainer) then return end
  self:_save_all(trainer, model)
end

function ModelCheckpoint:on_validation_end(trainer, model)
  if self:_should_skip(trainer) or self:_should_save_on_train_epoch_end(trainer) then return end
  self:_save_all(trainer, model)
end

function ModelCheckpoint:state_dict()
  return {best_model_path = self.best_model_path, best_model_score = self.best_model_score,
          best_k = self.best_k, last_model_path = self.last_model_path, current_score = self.current_score,
          dirpath = self.dirpath}
end

function ModelCheckpoint:load_state_dict(s)
  self.best_model_score = s.best_model_score
  self.best_k = s.best_k or {}
  self.last_model_path = s.last_model_path or ""
  self.current_score = s.current_score
  self:_update_best()
  if s.best_model_path and s.best_model_path ~= "" then self.best_model_path = s.best_model_path end
end

------------------------------------------------------------------------------
-- EarlyStopping
------------------------------------------------------------------------------

local EarlyStopping = Callback:extend("EarlyStopping")
callbacks.EarlyStopping = EarlyStopping
-- a monitoring callback: its on_train_epoch_end runs after the module's (Lightning)
EarlyStopping._is_early_stopping = true

function EarlyStopping:init(opts)
  opts = check_options("EarlyStopping", opts, {monitor = "string", patience = "integer", mode = "string",
                                               min_delta = "number", verbose = "boolean",
                                               check_finite = "boolean", check_on_train_epoch_end = "boolean"})
  if not opts.monitor then error("EarlyStopping: monitor is required (e.g. {monitor = \"val_loss\"})", 3) end
  self.monitor = opts.monitor
  self.patience = opts.patience or 3
  self.mode = opts.mode or "min"
  if self.mode ~= "min" and self.mode ~= "max" then
    error("EarlyStopping: mode must be \"min\" or \"max\", got " .. tostring(self.mode), 3)
  end
  self.min_delta = math.abs(opts.min_delta or 0)
  self.verbose = opts.verbose
  self.check_on_train_epoch_end = opts.check_on_train_epoch_end
  self.check_finite = opts.check_finite ~= false
  self.wait_count = 0
  self.best_score = nil
  self.stopped_epoch = 0
end

-- Lightning's: checked at the training epoch's end when validation runs once an
-- epoch, else after each validation (val_check_interval, check_val_every_n_epoch)
function EarlyStopping:_check_on_train_epoch_end(trainer)
  if self.check_on_train_epoch_end ~= nil then return self.check_on_train_epoch_end end
  return trainer.val_check_interval == 1.0 and trainer.check_val_every_n_epoch == 1
end

function EarlyStopping:on_train_epoch_end(trainer)
  if trainer.sanity_checking or not self:_check_on_train_epoch_end(trainer) then return end
  self:_run_early_stopping_check(trainer)
end

function EarlyStopping:on_validation_end(trainer)
  if trainer.sanity_checking or (trainer.state and trainer.state.fn ~= "fit")
     or self:_check_on_train_epoch_end(trainer) then
    return
  end
  self:_run_early_stopping_check(trainer)
end

function EarlyStopping:_run_early_stopping_check(trainer)
  local v = trainer.callback_metrics[self.monitor]
  if v == nil then
    error("EarlyStopping: monitor='" .. self.monitor .. "' is not among the logged metrics", 0)
  end
  if core.is_tensor(v) then v = v:item() end
  -- check_finite (default true): a NaN or infinite metric stops at once (Lightning)
  if self.check_finite and (v ~= v or v == math.huge or v == -math.huge) then
    trainer.should_stop = true
    self.stopped_epoch = trainer.current_epoch
    if self.verbose then
      print(string.format("Monitored metric %s = %s is not finite. Previous best value was %s. Signaling " ..
        "Trainer to stop.", self.monitor, tostring(v), tostring(self.best_score)))
    end
    return
  end
  local improved
  if self.best_score == nil then improved = true
  elseif self.mode == "min" then improved = v < self.best_score - self.min_delta
  else improved = v > self.best_score + self.min_delta end
  if improved then
    self.best_score = v
    self.wait_count = 0
  else
    self.wait_count = self.wait_count + 1
    if self.wait_count >= self.patience then
      trainer.should_stop = true
      self.stopped_epoch = trainer.current_epoch
      if self.verbose then
        print(string.format("Monitored metric %s did not improve in the last %d records. Best score: %s. Signaling Trainer to stop.",
          self.monitor, self.wait_count, tostring(self.best_score)))
      end
    end
  end
end

function EarlyStopping:state_dict()
  return {wait_count = self.wait_count, best_score = self.best_score, stopped_epoch = self.stopped_epoch}
end

function EarlyStopping:load_state_dict(s)
  self.wait_count = s.wait_count or 0
  self.best_score = s.best_score
  self.stopped_epoch = s.stopped_epoch or 0
end

------------------------------------------------------------------------------
-- Timer (Trainer{max_time = ...} adds one)
------------------------------------------------------------------------------

local Timer = Callback:extend("Timer")
callbacks.Timer = Timer
Timer._is_timer = true

local duration_units = {weeks = 604800, days = 86400, hours = 3600, minutes = 60, seconds = 1,
                        milliseconds = 0.001}

-- seconds from "DD:HH:MM:SS" or {days =, hours =, minutes =, seconds =} (Python's
-- timedelta keywords), or a number of seconds
local function parse_duration(fname, d)
  if type(d) == "number" then return d end
  if type(d) == "string" then
    local dd, hh, mm, ss = d:match("^%s*(%d+):(%d+):(%d+):(%d+)%s*$")
    if not dd then
      util.fail(fname, "the duration must be \"DD:HH:MM:SS\" (days, hours, minutes, seconds), got \"%s\"", d)
    end
    return tonumber(dd) * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
  end
  if type(d) == "table" then
    local spec = {}
    for k in pairs(duration_units) do spec[k] = "number" end
    check_options(fname, d, spec, "duration key")
    local s = 0
    for k, v in pairs(d) do s = s + v * duration_units[k] end
    return s
  end
  util.fail(fname, "the duration must be a \"DD:HH:MM:SS\" string or a table {days, hours, minutes, seconds}, got %s",
            util.typename(d))
end

-- Timer({duration = "00:12:00:00" | {hours = 12}, interval = "step" | "epoch",
-- verbose = true}): stops training once its time (training time, across resumed
-- runs: the elapsed time is in the checkpoint) is spent, checked after every step
-- or epoch. time_elapsed(), time_remaining(), start_time(), end_time().
function Timer:init(opts)
  opts = check_options("Timer", opts, {duration = "string|table|number", interval = "string", verbose = "boolean"})
  self._duration = opts.duration ~= nil and parse_duration("Timer", opts.duration) or nil
  self._interval = opts.interval or "step"
  if self._interval ~= "step" and self._interval ~= "epoch" then
    util.fail("Timer", "Unsupported parameter value Timer(interval=%s). Possible choices are: step, epoch",
              tostring(self._interval))
  end
  self._verbose = opts.verbose ~= false
  self._start, self._end, self._offset = {}, {}, 0
end

function Timer:start_time(stage) return self._start[stage or "train"] end
function Timer:end_time(stage) return self._end[stage or "train"] end

-- seconds spent in a stage ("train", the default; "validate"; "test")
function Timer:time_elapsed(stage)
  stage = stage or "train"
  local start, stop = self._start[stage], self._end[stage]
  local offset = stage == "train" and self._offset or 0
  if start == nil then return offset end
  if stop == nil then return sys.clock() - start + offset end
  return stop - start + offset
end

function Timer:time_remaining(stage)
  if self._duration then return self._duration - self:time_elapsed(stage) end
end

function Timer:on_train_start() self._start.train = sys.clock() end
function Timer:on_train_end() self._end.train = sys.clock() end
function Timer:on_validation_start() self._start.validate = sys.clock() end
function Timer:on_validation_end() self._end.validate = sys.clock() end
function Timer:on_test_start() self._start.test = sys.clock() end
function Timer:on_test_end() self._end.test = sys.clock() end

function Timer:_check_time_remaining(trainer)
  local stop = self:time_elapsed() >= self._duration
  if stop and not trainer.should_stop and self._verbose then
    local e = math.floor(self:time_elapsed())
    print(string.format("Time limit reached. Elapsed time is %d:%02d:%02d. Signaling Trainer to stop.",
      e // 3600, e // 60 % 60, e % 60))
  end
  trainer.should_stop = trainer.should_stop or stop
end

-- a state whose time is already spent stops at once
function Timer:on_fit_start(trainer)
  if self._duration then self:_check_time_remaining(trainer) end
end

function Timer:on_train_batch_end(trainer)
  if self._interval == "step" and self._duration then self:_check_time_remaining(trainer) end
end

function Timer:on_train_epoch_end(trainer)
  if self._interval == "epoch" and self._duration then self:_check_time_remaining(trainer) end
end

function Timer:state_dict()
  return {time_elapsed = {train = self:time_elapsed("train"), validate = self:time_elapsed("validate"),
                          test = self:time_elapsed("test")}}
end

function Timer:load_state_dict(s)
  self._offset = (s.time_elapsed or {}).train or 0
end

------------------------------------------------------------------------------
-- LearningRateMonitor
------------------------------------------------------------------------------

local LearningRateMonitor = Callback:extend("LearningRateMonitor")
callbacks.LearningRateMonitor = LearningRateMonitor

-- LearningRateMonitor({logging_interval = nil | "step" | "epoch", log_momentum =
-- false, log_weight_decay = false}): logs each optimizer's learning rates to the
-- Trainer's logger under Lightning's names: "lr-Adam", "lr-SGD" (a scheduler
-- config's name instead when it has one), "lr-Adam-1" for a second Adam, and
-- "lr-Adam/pg1", "lr-Adam/pg2" (or the param group's name) with several param
-- groups; "-momentum" and "-weight_decay" after those. With logging_interval nil
-- each scheduler's values are logged at its own interval (step schedulers every
-- log_every_n_steps steps, epoch ones at each epoch's start); optimizers without
-- a scheduler with the step ones.
function LearningRateMonitor:init(opts)
  opts = check_options("LearningRateMonitor", opts, {logging_interval = "string", log_momentum = "boolean",
                                                     log_weight_decay = "boolean"})
  local li = opts.logging_interval
  if li ~= nil and li ~= "step" and li ~= "epoch" then
    util.fail("LearningRateMonitor", "logging_interval should be `step` or `epoch` or `None`.")
  end
  self.logging_interval = li
  self.log_momentum = opts.log_momentum or false
  self.log_weight_decay = opts.log_weight_decay or false
  self.lrs = {}
  self.last_momentum_values = {}
  self.last_weight_decay_values = {}
end

local function optimizer_class(opt)
  local mt = getmetatable(opt)
  return mt and mt.__name or "Optimizer"
end

-- Lightning's names: one list per optimizer, one name per param group
local function names_for(opt, name, seen_types, count_type)
  local cls = optimizer_class(opt)
  if count_type then seen_types[cls] = (seen_types[cls] or 0) + 1 end
  local groups = opt.param_groups
  local seen_pg = {}
  for i, g in ipairs(groups) do
    local pg = g.name or ("pg" .. i)
    if seen_pg[pg] then
      error(string.format("LearningRateMonitor: A single `Optimizer` cannot have multiple parameter groups with " ..
        "identical `name` values. %s has duplicated parameter group names {'%s'}", name, pg), 0)
    end
    seen_pg[pg] = true
  end
  local count = seen_types[cls]
  if count and count > 1 then name = name .. "-" .. (count - 1) end
  local list = {}
  for i, g in ipairs(groups) do
    if #groups > 1 then list[i] = name .. "/" .. (g.name or ("pg" .. i))
    elseif g.name then list[i] = name .. "/" .. g.name
    else list[i] = name end
  end
  return list
end

-- {{optimizer, names, interval}, ...}: the schedulers' optimizers, then those left
function LearningRateMonitor:_find_names(trainer)
  local out, seen, seen_types = {}, {}, {}
  for _, cfg in ipairs(trainer.lr_scheduler_configs or {}) do
    local opt = cfg.scheduler.optimizer
    seen[opt] = true
    local name = cfg.name or ("lr-" .. optimizer_class(opt))
    out[#out + 1] = {opt, names_for(opt, name, seen_types, cfg.name == nil), cfg.interval}
  end
  for _, opt in ipairs(trainer.optimizers or {}) do
    if not seen[opt] then
      seen[opt] = true
      out[#out + 1] = {opt, names_for(opt, "lr-" .. optimizer_class(opt), seen_types, true), nil}
    end
  end
  return out
end

function LearningRateMonitor:on_train_start(trainer)
  if not trainer.logger then
    error("LearningRateMonitor: Cannot use `LearningRateMonitor` callback with `Trainer` that has no logger.", 0)
  end
  for _, e in ipairs(self:_find_names(trainer)) do
    for _, name in ipairs(e[2]) do self.lrs[name] = self.lrs[name] or {} end
  end
end

-- the values to log now: interval "step", "epoch" or "any"
function LearningRateMonitor:_extract_stats(trainer, interval)
  local stats = {}
  for _, e in ipairs(self:_find_names(trainer)) do
    local opt, names, sched_interval = e[1], e[2], e[3]
    -- an optimizer without a scheduler is logged with every call (Lightning)
    if sched_interval == nil or interval == "any" or interval == sched_interval then
      local betas = opt.defaults and opt.defaults.betas ~= nil
      for i, g in ipairs(opt.param_groups) do
        local name = names[i]
        stats[name] = g.lr
        self.lrs[name] = self.lrs[name] or {}
        table.insert(self.lrs[name], g.lr)
        if self.log_momentum then
          local m = betas and g.betas[1] or g.momentum or 0
          stats[name .. "-momentum"] = m
          self.last_momentum_values[name .. "-momentum"] = m
        end
        if self.log_weight_decay then
          stats[name .. "-weight_decay"] = g.weight_decay
          self.last_weight_decay_values[name .. "-weight_decay"] = g.weight_decay
        end
      end
    end
  end
  for k, v in pairs(stats) do trainer.callback_metrics[k] = v end
  return stats
end

function LearningRateMonitor:on_train_batch_start(trainer)
  -- Lightning's should_update_logs: the steps whose rows are logged
  if not ((trainer._batches_that_stepped + 1) % trainer.log_every_n_steps == 0 or trainer.should_stop) then return end
  if self.logging_interval == "epoch" then return end
  local stats = self:_extract_stats(trainer, self.logging_interval == nil and "step" or "any")
  if next(stats) ~= nil then trainer.logger:log_metrics(stats, trainer._batches_that_stepped) end
end

function LearningRateMonitor:on_train_epoch_start(trainer)
  if self.logging_interval == "step" then return end
  local stats = self:_extract_stats(trainer, self.logging_interval == nil and "epoch" or "any")
  if next(stats) ~= nil then trainer.logger:log_metrics(stats, trainer._batches_that_stepped) end
end

return callbacks
