-- The hooks the Trainer calls, in order, compared with Lightning 2.x's (issue 17,
-- 1a): the sequences Lightning's own tests/tests_pytorch/models/test_hooks.py
-- expects for fit (sanity check included), fit resumed from a checkpoint,
-- validate, test and predict, written for Moonlight: batch_idx and dataloader_idx
-- count from 1 (Lua positions), and nn.Module's own methods (train, zero_grad,
-- forward) are not hooks here. And what callback_metrics hold inside the epoch-end
-- hooks: the current epoch's values (it held the previous epoch's, nil at epoch 0).
local ml = require "moonlight"
local nn, optim, data = ml.nn, ml.optim, ml.data
local tmpdir = require("test_util").tmpdir

local CALLBACK_HOOKS = {
  "setup", "teardown", "on_fit_start", "on_fit_end", "on_sanity_check_start", "on_sanity_check_end",
  "on_train_batch_start", "on_train_batch_end", "on_train_epoch_start", "on_train_epoch_end",
  "on_validation_epoch_start", "on_validation_epoch_end", "on_test_epoch_start", "on_test_epoch_end",
  "on_predict_epoch_start", "on_predict_epoch_end", "on_validation_batch_start",
  "on_validation_batch_end", "on_test_batch_start", "on_test_batch_end", "on_predict_batch_start",
  "on_predict_batch_end", "on_train_start", "on_train_end", "on_validation_start",
  "on_validation_end", "on_test_start", "on_test_end", "on_predict_start", "on_predict_end",
  "on_exception", "on_save_checkpoint", "on_load_checkpoint", "on_before_backward",
  "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad",
}

-- the arguments worth recording: a stage, a batch_idx
local function describe_args(name, ...)
  local args = table.pack(...)
  if name == "setup" or name == "teardown" then return "(" .. tostring(args[1]) .. ")" end
  if name:match("_batch_start$") then return "(" .. tostring(args[2]) .. ")" end
  if name:match("_batch_end$") then return "(" .. tostring(args[3]) .. ")" end
  return ""
end

local function hooked_callback(called)
  local cb = setmetatable({}, {__index = ml.callbacks.Callback})
  for _, h in ipairs(CALLBACK_HOOKS) do
    cb[h] = function(_, trainer, model, ...)
      assert(trainer.fit, "a callback hook gets the trainer first")
      assert(model.training_step, "then the module")
      called[#called + 1] = "Callback." .. h .. describe_args(h, ...)
    end
  end
  function cb.state_dict() called[#called + 1] = "Callback.state_dict"; return {foo = true} end
  function cb.load_state_dict(_, st)
    assert.are.same({foo = true}, st)
    called[#called + 1] = "Callback.load_state_dict"
  end
  return cb
end

-- A module with every LightningModule hook, each recording itself and doing what
-- the default does.
local function hooked_model(called, opts)
  opts = opts or {}
  local M = nn.Module:extend("Hooked")
  function M:init() self.fc = nn.Linear(2, 1) end
  function M:forward(x) return self.fc(x) end
  local function rec(name, ...) called[#called + 1] = name .. describe_args(name, ...) end
  function M:training_step(batch, batch_idx)
    rec("training_step")
    local loss = ml.F.mse_loss(self(batch[1]), batch[2])
    self:log("train_loss", loss)
    return loss
  end
  function M:validation_step(batch, batch_idx)
    rec("validation_step")
    self:log("val_loss", ml.F.mse_loss(self(batch[1]), batch[2]))
  end
  function M:test_step(batch, batch_idx)
    rec("test_step")
    self:log("test_loss", ml.F.mse_loss(self(batch[1]), batch[2]))
  end
  function M:predict_step(batch) rec("predict_step"); return self(batch[1]) end
  function M:configure_optimizers()
    rec("configure_optimizers")
    local opt = optim.SGD(self:parameters(), {lr = 0.1})
    return {{opt}, {optim.lr_scheduler.StepLR(opt, {step_size = 1, gamma = 0.5})}}
  end
  local plain = {"on_fit_start", "on_fit_end", "on_train_start", "on_train_end", "on_validation_start",
                 "on_validation_end", "on_test_start", "on_test_end", "on_predict_start", "on_predict_end",
                 "on_train_batch_start", "on_train_batch_end", "on_validation_batch_start",
                 "on_validation_batch_end", "on_test_batch_start", "on_test_batch_end",
                 "on_predict_batch_start", "on_predict_batch_end", "on_train_epoch_start",
                 "on_train_epoch_end", "on_validation_epoch_start", "on_validation_epoch_end",
                 "on_test_epoch_start", "on_test_epoch_end", "on_predict_epoch_start",
                 "on_predict_epoch_end", "on_before_zero_grad", "on_before_backward", "on_after_backward",
                 "on_before_optimizer_step", "configure_model", "prepare_data", "setup", "teardown",
                 "on_save_checkpoint", "on_load_checkpoint", "on_exception"}
  for _, h in ipairs(plain) do M[h] = function(_, ...) rec(h, ...) end end
  function M:configure_callbacks() rec("configure_callbacks"); return {} end
  function M:on_before_batch_transfer(batch, idx)
    assert(idx == 1)
    rec("on_before_batch_transfer")
    return batch
  end
  function M:transfer_batch_to_device(batch, device, idx)
    assert(device == "cpu" and idx == 1)
    rec("transfer_batch_to_device")
    return batch
  end
  function M:on_after_batch_transfer(batch) rec("on_after_batch_transfer"); return batch end
  function M:optimizer_zero_grad(epoch, batch_idx, opt) rec("optimizer_zero_grad"); opt:zero_grad() end
  function M:backward(loss) rec("backward"); loss:backward() end
  function M:configure_gradient_clipping(opt, val, algo)
    rec("configure_gradient_clipping")
    self:clip_gradients(opt, val, algo)
  end
  -- recorded when it returns, as Lightning's test does: the closure runs inside it
  function M:optimizer_step(epoch, batch_idx, opt, closure) opt:step(closure); rec("optimizer_step") end
  function M:lr_scheduler_step(s) rec("lr_scheduler_step"); s:step() end
  for _, stage in ipairs({"validation", "test", "predict"}) do
    M["on_" .. stage .. "_model_eval"] = function(self) rec("on_" .. stage .. "_model_eval"); self:eval() end
  end
  for _, stage in ipairs({"validation", "test"}) do
    M["on_" .. stage .. "_model_train"] = function(self) rec("on_" .. stage .. "_model_train"); self:train() end
  end
  function M:on_validation_model_zero_grad() rec("on_validation_model_zero_grad"); self:zero_grad() end
  if opts.extra then opts.extra(M) end
  return M()
end

local function loader(n)
  ml.manual_seed(n)
  return data.DataLoader(data.TensorDataset(ml.randn({2 * n, 2}), ml.randn({2 * n, 1})), {batch_size = 2})
end

local function both(name, arg) return {"Callback." .. name .. (arg or ""), name .. (arg or "")} end

local function append(list, items)
  for _, v in ipairs(items) do list[#list + 1] = v end
  return list
end

local function transfer() return {"on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer"} end

local function eval_epoch(stage, batches)
  local out = {}
  append(out, both("on_" .. stage .. "_epoch_start"))
  for i = 1, batches do
    append(out, transfer())
    append(out, both("on_" .. stage .. "_batch_start", "(" .. i .. ")"))
    out[#out + 1] = stage == "validation" and "validation_step" or (stage .. "_step")
    append(out, both("on_" .. stage .. "_batch_end", "(" .. i .. ")"))
  end
  append(out, both("on_" .. stage .. "_epoch_end"))
  return out
end

local function eval_run(stage, batches)
  local out = {"on_" .. stage .. "_model_eval"}
  append(out, both("on_" .. stage .. "_start"))
  append(out, eval_epoch(stage, batches))
  append(out, both("on_" .. stage .. "_end"))
  if stage ~= "predict" then out[#out + 1] = "on_" .. stage .. "_model_train" end
  return out
end

local function train_batches(batches)
  local out = {}
  for i = 1, batches do
    append(out, transfer())
    append(out, both("on_train_batch_start", "(" .. i .. ")"))
    out[#out + 1] = "training_step"
    append(out, both("on_before_zero_grad"))
    out[#out + 1] = "optimizer_zero_grad"
    append(out, both("on_before_backward"))
    out[#out + 1] = "backward"
    append(out, both("on_after_backward"))
    append(out, both("on_before_optimizer_step"))
    out[#out + 1] = "configure_gradient_clipping"
    out[#out + 1] = "optimizer_step"
    if i == batches then out[#out + 1] = "lr_scheduler_step" end
    append(out, both("on_train_batch_end", "(" .. i .. ")"))
  end
  return out
end

local function setup(stage)
  return append({"configure_callbacks", "prepare_data"}, both("setup", "(" .. stage .. ")"))
end

local function teardown(stage) return both("teardown", "(" .. stage .. ")") end

local function new_trainer(called, opts)
  opts = opts or {}
  return ml.Trainer({max_epochs = opts.max_epochs or 1, logger = false, enable_progress_bar = false,
                     enable_model_summary = false, default_root_dir = opts.dir or tmpdir(),
                     callbacks = {hooked_callback(called), opts.checkpoint}})
end

local function assert_sequence(expected, called)
  for i = 1, math.max(#expected, #called) do
    if expected[i] ~= called[i] then
      -- the first difference, with the hooks before it
      local from = math.max(1, i - 3)
      error(("hook %d: expected %s, got %s (after %s)"):format(i, tostring(expected[i]), tostring(called[i]),
        table.concat(called, ", ", from, i - 1)), 2)
    end
  end
end

describe("Trainer hooks, in Lightning 2.x's order", function()
  it("fit: setup, the sanity check, training, validation, the checkpoint, the end", function()
    local called = {}
    local model = hooked_model(called)
    local trainer = new_trainer(called)
    trainer:fit(model, loader(2), loader(2))
    local expected = setup("fit")
    append(expected, {"configure_model", "configure_optimizers"})
    append(expected, both("on_fit_start"))
    expected[#expected + 1] = "Callback.on_sanity_check_start"
    append(expected, eval_run("validation", 2))
    expected[#expected + 1] = "Callback.on_sanity_check_end"
    append(expected, both("on_train_start"))
    append(expected, both("on_train_epoch_start"))
    append(expected, train_batches(2))
    expected[#expected + 1] = "on_validation_model_zero_grad"
    append(expected, eval_run("validation", 2))
    append(expected, both("on_train_epoch_end"))
    -- the default ModelCheckpoint saves after the module's on_train_epoch_end
    append(expected, {"Callback.state_dict", "Callback.on_save_checkpoint", "on_save_checkpoint"})
    append(expected, both("on_train_end"))
    append(expected, both("on_fit_end"))
    append(expected, teardown("fit"))
    assert_sequence(expected, called)
  end)

  it("fit resumed from a checkpoint: the checkpoint hooks, no sanity check", function()
    local dir = tmpdir()
    local cp = function() return ml.callbacks.ModelCheckpoint({dirpath = dir, save_last = true}) end
    new_trainer({}, {checkpoint = cp()}):fit(hooked_model({}), loader(2), loader(2))
    local called = {}
    local trainer = new_trainer(called, {max_epochs = 2, checkpoint = cp()})
    trainer:fit(hooked_model(called), loader(2), loader(2), {ckpt_path = "last"})
    local expected = setup("fit")
    -- Lightning 2.x: configure_model builds what the weights load into, then the restore
    append(expected, {"configure_model", "on_load_checkpoint", "Callback.on_load_checkpoint",
                      "Callback.load_state_dict", "configure_optimizers"})
    append(expected, both("on_fit_start"))
    append(expected, both("on_train_start"))
    append(expected, both("on_train_epoch_start"))
    append(expected, train_batches(2))
    expected[#expected + 1] = "on_validation_model_zero_grad"
    append(expected, eval_run("validation", 2))
    append(expected, both("on_train_epoch_end"))
    -- top-1 and last: two saves
    for _ = 1, 2 do append(expected, {"Callback.state_dict", "Callback.on_save_checkpoint", "on_save_checkpoint"}) end
    append(expected, both("on_train_end"))
    append(expected, both("on_fit_end"))
    append(expected, teardown("fit"))
    assert_sequence(expected, called)
  end)

  for _, case in ipairs({{"validate", "validation"}, {"test", "test"}}) do
    local verb, noun = case[1], case[2]
    it(verb .. ": setup, one evaluation, teardown; nothing to run without batches", function()
      for _, batches in ipairs({0, 2}) do
        local called = {}
        local model = hooked_model(called)
        local trainer = new_trainer(called)
        trainer[noun == "test" and "limit_test_batches" or "limit_val_batches"] = batches
        trainer[verb](trainer, model, loader(2))
        local expected = setup(verb)
        expected[#expected + 1] = "configure_model"
        if batches > 0 then append(expected, eval_run(noun, batches)) end
        append(expected, teardown(verb))
        assert_sequence(expected, called)
      end
    end)
  end

  it("predict, when the Trainer has it", function()
    local called = {}
    local trainer = new_trainer(called)
    if type(trainer.predict) ~= "function" then return end -- added by another issue
    trainer:predict(hooked_model(called), loader(2))
    local expected = setup("predict")
    expected[#expected + 1] = "configure_model"
    append(expected, eval_run("predict", 2))
    append(expected, teardown("predict"))
    assert_sequence(expected, called)
  end)

  it("on_exception when a step fails, then the error", function()
    local called = {}
    local model = hooked_model(called, {extra = function(M)
      function M:training_step() error("boom", 0) end
    end})
    local trainer = new_trainer(called)
    local ok, err = pcall(trainer.fit, trainer, model, loader(2))
    assert.is_false(ok)
    assert.are.equal("boom", err)
    assert.are.same({"Callback.on_exception", "on_exception"}, {called[#called - 1], called[#called]})
  end)

  it("takes the loaders from the module's *_dataloader hooks when none are passed", function()
    local called = {}
    local model = hooked_model(called, {extra = function(M)
      function M:train_dataloader() called[#called + 1] = "train_dataloader"; return loader(2) end
      function M:val_dataloader() called[#called + 1] = "val_dataloader"; return loader(1) end
      function M:test_dataloader() called[#called + 1] = "test_dataloader"; return loader(1) end
    end})
    local trainer = new_trainer(called)
    trainer:fit(model)
    assert.are.equal(2, trainer.global_step)
    local seen = {}
    for _, h in ipairs(called) do if h:match("_dataloader$") then seen[#seen + 1] = h end end
    assert.are.same({"train_dataloader", "val_dataloader"}, seen)
    local m = trainer:test(model)
    assert.is_number(m.test_loss)
  end)

  it("ends the epoch when on_train_batch_start returns -1", function()
    local model = hooked_model({}, {extra = function(M)
      function M:on_train_batch_start(_, batch_idx) if batch_idx == 2 then return -1 end end
    end})
    local trainer = new_trainer({})
    trainer:fit(model, loader(3))
    assert.are.equal(1, trainer.global_step)
  end)

  it("lets configure_callbacks replace the trainer's callbacks of the same class", function()
    local dir = tmpdir()
    local mine = ml.callbacks.ModelCheckpoint({dirpath = dir, save_last = true})
    local extra = {on_fit_start = function() end}
    local model = hooked_model({}, {extra = function(M)
      function M:configure_callbacks() return {mine, extra} end
    end})
    local trainer = ml.Trainer({max_epochs = 1, logger = false, enable_progress_bar = false,
                                enable_model_summary = false}) -- with its default ModelCheckpoint
    trainer:fit(model, loader(2))
    assert.are.equal(2, #trainer.callbacks)
    assert.are.equal(extra, trainer.callbacks[1])
    assert.are.equal(mine, trainer.checkpoint_callback)
    assert.are.equal("file", ml._sys.kind(dir .. "/last.safetensors"))
    -- validate and test keep logged_metrics without a logger too
    trainer:validate(model, loader(1))
    assert.is_number(trainer.logged_metrics.val_loss)
  end)

  it("runs checkpoint callbacks last, after the module's on_train_epoch_end", function()
    local order = {}
    local cp = ml.callbacks.ModelCheckpoint({dirpath = tmpdir()})
    local save = cp.on_train_epoch_end
    cp.on_train_epoch_end = function(...) order[#order + 1] = "ModelCheckpoint"; return save(...) end
    local other = {on_train_epoch_end = function() order[#order + 1] = "other" end}
    local model = hooked_model({}, {extra = function(M)
      function M:on_train_epoch_end() order[#order + 1] = "module" end
    end})
    local trainer = ml.Trainer({max_epochs = 1, logger = false, enable_progress_bar = false,
                                enable_model_summary = false, callbacks = {cp, other}})
    assert.are.equal(other, trainer.callbacks[1])
    assert.are.equal(cp, trainer.checkpoint_callback)
    trainer:fit(model, loader(2))
    assert.are.same({"other", "module", "ModelCheckpoint"}, order)
  end)
end)

describe("callback_metrics inside the hooks", function()
  it("hold the current epoch's validation values in on_validation_epoch_end, epoch 0 too", function()
    -- by epoch; "nil" marks a value that was not there
    local seen = {module = {}, callback = {}, sanity = {}}
    local function record(list, trainer)
      local v = trainer.callback_metrics.val_loss
      list[trainer.sanity_checking and (#list + 1) or (trainer.current_epoch + 1)] = v == nil and "nil" or v
    end
    local model = hooked_model({}, {extra = function(M)
      function M:on_validation_epoch_end()
        record(self.trainer.sanity_checking and seen.sanity or seen.module, self.trainer)
      end
    end})
    local cb = {on_validation_epoch_end = function(_, trainer)
      if not trainer.sanity_checking then record(seen.callback, trainer) end
    end}
    local dir = tmpdir()
    local logger = ml.loggers.CSVLogger(dir, {name = "m"})
    local trainer = ml.Trainer({max_epochs = 3, logger = logger, enable_progress_bar = false,
                                enable_model_summary = false, enable_checkpointing = false, callbacks = {cb}})
    trainer:fit(model, loader(3), loader(2))
    local per_epoch = require("moonlight.history").per_epoch(require("moonlight.history").read(logger.metrics_file))
    assert.are.equal(3, #per_epoch)
    for e = 1, 3 do
      -- the logger writes the shortest repr that reads back as the same double
      assert.is_number(seen.module[e], "module hook, epoch " .. (e - 1))
      assert.are.equal(per_epoch[e].val_loss, seen.module[e])
      assert.are.equal(per_epoch[e].val_loss, seen.callback[e])
    end
    -- the sanity check's own value, which is not kept afterwards
    assert.are.equal(1, #seen.sanity)
    assert.is_number(seen.sanity[1])
  end)

  it("hold the training epoch's aggregates in on_train_epoch_end, and this step's in on_train_batch_end", function()
    local seen = {}
    local model = hooked_model({}, {extra = function(M)
      function M:training_step(batch)
        local loss = ml.F.mse_loss(self(batch[1]), batch[2])
        self:log("loss", loss, {on_step = true, on_epoch = true})
        self._last = loss:item()
        return loss
      end
      function M:on_train_batch_end(outputs)
        assert.are.equal(self._last, outputs.loss:item())
        seen[#seen + 1] = {self.trainer.callback_metrics.loss_step, self._last}
      end
      function M:on_train_epoch_end()
        seen.epoch = self.trainer.callback_metrics.loss_epoch
        seen.plain = self.trainer.callback_metrics.loss
      end
    end})
    local trainer = ml.Trainer({max_epochs = 1, logger = false, enable_progress_bar = false,
                                enable_model_summary = false, enable_checkpointing = false})
    trainer:fit(model, loader(2))
    assert.are.equal(2, #seen)
    for _, s in ipairs(seen) do
      assert.is_not_nil(s[1])
      assert.are.equal(s[2], type(s[1]) == "number" and s[1] or s[1]:item())
    end
    assert.is_number(seen.epoch)
    assert.are.equal(seen.epoch, seen.plain)
    assert.are.equal(seen.epoch, trainer.callback_metrics.loss_epoch)
  end)
end)
