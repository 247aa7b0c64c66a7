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

function callbacks.save_checkpoint(trainer, model, path)
  local ml = require "moonlight"
  local tensors = {}
  for name, t in pairs(model:state_dict()) do tensors["state_dict." .. name] = t end
  local opt_states = {}
  for i, opt in ipairs(trainer.optimizers or {}) do
    opt_states[i] = split_tensors(opt:state_dict(), "optimizer_states." .. (i - 1), tensors)
  end
  local sched_states = {}
  for i, s in ipairs(trainer.lr_schedulers or {}) do
    if s.scheduler.state_dict then sched_states[i] = s.scheduler:state_dict() end
  end
  local cb_states = {}
  for i, cb in ipairs(trainer.callbacks) do
    if cb.state_dict then cb_states[i] = cb:state_dict() end
  end
  local state = {
    epoch = trainer.current_epoch, global_step = trainer.global_step,
    rng_state = to_hex(core.get_rng_state()), optimizer_states = opt_states,
    lr_schedulers = sched_states, callbacks = cb_states,
    hparams = rawget(model, "hparams"),
  }
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

-- Restores model, optimizers, schedulers, callbacks, counters and the generator
-- from a checkpoint, so that training goes on as if it had not stopped.
function callbacks._restore(trainer, model, ckpt_path)
  local path = ckpt_path
  if ckpt_path == "last" then
    local cp
    for _, cb in ipairs(trainer.callbacks) do if cb._is_model_checkpoint then cp = cb end end
    path = cp and cp:last_path(trainer) or nil
    if not path or not sys.kind(path) then
      error("fit: ckpt_path=\"last\" but no last checkpoint was found" .. (path and (" at " .. path) or ""), 0)
    end
  end
  if not sys.kind(path) then error("fit: checkpoint '" .. tostring(path) .. "' does not exist", 0) end
  local tensors, state = callbacks.load_checkpoint(path)
  local sd = {}
  for name, t in pairs(tensors) do
    local key = name:match("^state_dict%.(.+)$")
    if key then sd[key] = t end
  end
  model:load_state_dict(sd)
  for i, opt in ipairs(trainer.optimizers or {}) do
    local st = state.optimizer_states and state.optimizer_states[i]
    if st then opt:load_state_dict(join_tensors(st, tensors)) end
  end
  for i, s in ipairs(trainer.lr_schedulers or {}) do
    local st = state.lr_schedulers and state.lr_schedulers[i]
    if st and s.scheduler.load_state_dict then s.scheduler:load_state_dict(st) end
  end
  for i, cb in ipairs(trainer.callbacks) do
    local st = state.callbacks and state.callbacks[i]
    if st and cb.load_state_dict then cb:load_state_dict(st) end
  end
  -- the checkpoint was taken at the end of its epoch: go on with the next one
  trainer._epoch = state.epoch + 1
  trainer._global_step = state.global_step
  core.set_rng_state(from_hex(state.rng_state))
end

------------------------------------------------------------------------------
-- ModelCheckpoint
------------------------------------------------------------------------------

local ModelCheckpoint = Callback:extend("ModelCheckpoint")
callbacks.ModelCheckpoint = ModelCheckpoint
ModelCheckpoint._is_model_checkpoint = true

local mc_options = {dirpath = "string", filename = "string", monitor = "string", mode = "string",
                    save_top_k = "integer", save_last = "boolean", every_n_epochs = "integer",
                    verbose = "boolean"}

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
  self.best_k = {}          -- {path, score}
  self.best_model_path = ""
  self.best_model_score = nil
  self.last_model_path = ""
end

function ModelCheckpoint:_dir(trainer)
  if self.dirpath then return self.dirpath end
  local root = trainer.logger and trainer.logger.log_dir or trainer.default_root_dir
  return root .. "/checkpoints"
end

function ModelCheckpoint:last_path(trainer) return self:_dir(trainer) .. "/last.safetensors" end

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

function ModelCheckpoint:on_train_epoch_end(trainer, model)
  if trainer.sanity_checking then return end
  if (trainer.current_epoch + 1) % self.every_n_epochs ~= 0 then return end
  local dir = self:_dir(trainer)
  local ok, err = sys.mkdir_p(dir)
  if not ok then error("ModelCheckpoint: " .. err, 0) end
  -- the counters in the file describe the state after this epoch
  local saved_step = trainer.global_step
  local path = dir .. "/" .. self:_format_name(trainer) .. ".safetensors"
  if self.save_top_k ~= 0 then
    if self.monitor then
      local score = trainer.callback_metrics[self.monitor]
      if score == nil then
        error("ModelCheckpoint: monitor='" .. self.monitor .. "' is not among the logged metrics", 0)
      end
      local worst = self.best_k[#self.best_k]
      if self.save_top_k < 0 or #self.best_k < self.save_top_k or better(self.mode, score, worst.score) then
        callbacks.save_checkpoint(trainer, model, path)
        self.best_k[#self.best_k + 1] = {path = path, score = score}
        table.sort(self.best_k, function(a, b) return better(self.mode, a.score, b.score) end)
        while self.save_top_k >= 0 and #self.best_k > self.save_top_k do
          local drop = table.remove(self.best_k)
          sys.remove(drop.path)
        end
        self.best_model_path = self.best_k[1].path
        self.best_model_score = self.best_k[1].score
      end
    else
      -- no monitor: keep the latest save_top_k (1 by default)
      callbacks.save_checkpoint(trainer, model, path)
      self.best_k[#self.best_k + 1] = {path = path, score = saved_step}
      while self.save_top_k >= 0 and #self.best_k > self.save_top_k do
        local drop = table.remove(self.best_k, 1)
        if drop.path ~= path then sys.remove(drop.path) end
      end
      self.best_model_path = path
    end
  end
  if self.save_last then
    callbacks.save_checkpoint(trainer, model, self:last_path(trainer))
    self.last_model_path = self:last_path(trainer)
  end
end

function ModelCheckpoint:state_dict()
  return {best_model_path = self.best_model_path, best_model_score = self.best_model_score,
          best_k = self.best_k, last_model_path = self.last_model_path}
end

function ModelCheckpoint:load_state_dict(s)
  self.best_model_path = s.best_model_path or ""
  self.best_model_score = s.best_model_score
  self.best_k = s.best_k or {}
  self.last_model_path = s.last_model_path or ""
end

------------------------------------------------------------------------------
-- EarlyStopping
------------------------------------------------------------------------------

local EarlyStopping = Callback:extend("EarlyStopping")
callbacks.EarlyStopping = EarlyStopping

function EarlyStopping:init(opts)
  opts = check_options("EarlyStopping", opts, {monitor = "string", patience = "integer", mode = "string",
                                               min_delta = "number", verbose = "boolean",
                                               check_finite = "boolean"})
  if not opts.monitor then error("EarlyStopping: monitor is required (e.g. {monitor = \"val_loss\"})", 3) end
  self.monitor = opts.monitor
  self.patience = opts.patience or 3
  self.mode = opts.mode or "min"
  if self.mode ~= "min" and self.mode ~= "max" then
    error("EarlyStopping: mode must be \"min\" or \"max\", got " .. tostring(self.mode), 3)
  end
  self.min_delta = math.abs(opts.min_delta or 0)
  self.verbose = opts.verbose
  self.wait_count = 0
  self.best_score = nil
  self.stopped_epoch = 0
end

function EarlyStopping:on_train_epoch_end(trainer)
  local v = trainer.callback_metrics[self.monitor]
  if v == nil then
    error("EarlyStopping: monitor='" .. self.monitor .. "' is not among the logged metrics", 0)
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

return callbacks
