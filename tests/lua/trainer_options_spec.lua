-- Trainer options (issue 18, 3): accumulate_grad_batches (4 micro-batches of 32
-- give the weights of one batch of 128), val_check_interval (a count or a
-- fraction; check_val_every_n_epoch = false), fast_dev_run (nothing written),
-- max_time (the Timer), min_steps, enable_checkpointing / enable_model_summary /
-- enable_progress_bar, self:log's column names (x_step / x_epoch, reduce_fx,
-- on_step in validation).
local ml = require "moonlight"
local nn, optim, data = ml.nn, ml.optim, ml.data
local history = require "moonlight.history"
local tmpdir = require("test_util").tmpdir

local function dataset(n, seed)
  ml.manual_seed(seed)
  local x = ml.randn({n, 6})
  local y = x:matmul(ml.randn({6, 3})) + ml.randn({n, 3}) * 0.1
  return data.TensorDataset(x, y)
end

local Reg = nn.Module:extend("Reg")
function Reg:init(opts)
  self.opts = opts or {}
  self.fc1 = nn.Linear(6, 16)
  self.act = nn.Tanh()
  self.fc2 = nn.Linear(16, 3)
end
function Reg:forward(x) return self.fc2(self.act(self.fc1(x))) end
function Reg:training_step(batch)
  if self.opts.slow then -- a step that takes its time, for max_time
    local t = ml._sys.clock()
    while ml._sys.clock() - t < self.opts.slow do end
  end
  local loss = ml.F.mse_loss(self(batch[1]), batch[2])
  self:log("train_loss", loss, self.opts.log_opts)
  return loss
end
function Reg:validation_step(batch) self:log("val_loss", ml.F.mse_loss(self(batch[1]), batch[2])) end
function Reg:configure_optimizers()
  if self.opts.adam then return optim.Adam(self:parameters(), {lr = 1e-2}) end
  return optim.SGD(self:parameters(), {lr = 0.1, momentum = 0.9})
end

local function trainer(opts)
  local o = {max_epochs = 1, logger = false, enable_progress_bar = false, enable_model_summary = false,
             enable_checkpointing = false, num_sanity_val_steps = 0}
  for k, v in pairs(opts or {}) do o[k] = v end
  return ml.Trainer(o)
end

local function max_diff(m1, m2)
  local d = 0
  local p2 = m2:parameters()
  for i, p in ipairs(m1:parameters()) do d = math.max(d, (p - p2[i]):abs():max():item()) end
  return d
end

describe("accumulate_grad_batches", function()
  for _, adam in ipairs({false, true}) do
    it("4 micro-batches of 32 give the weights of one batch of 128 (" .. (adam and "Adam" or "SGD") .. ")", function()
      local ds = dataset(128, 1)
      ml.manual_seed(5)
      local one = Reg({adam = adam})
      ml.manual_seed(5)
      local four = Reg({adam = adam})
      assert.are.equal(0, max_diff(one, four))
      local t1 = trainer()
      t1:fit(one, data.DataLoader(ds, {batch_size = 128}))
      local t4 = trainer({accumulate_grad_batches = 4})
      t4:fit(four, data.DataLoader(ds, {batch_size = 32}))
      assert.are.equal(1, t1.global_step)
      assert.are.equal(1, t4.global_step)
      local d = max_diff(one, four)
      assert.is_true(d < 1e-6, "max weight difference " .. d)
      -- and both moved
      ml.manual_seed(5)
      assert.is_true(max_diff(Reg({adam = adam}), four) > 1e-3)
    end)
  end

  it("several optimizer steps: the same as batches of 128, epoch after epoch", function()
    local ds = dataset(512, 2)
    ml.manual_seed(6)
    local a = Reg()
    ml.manual_seed(6)
    local b = Reg()
    trainer({max_epochs = 2}):fit(a, data.DataLoader(ds, {batch_size = 128}))
    local t = trainer({max_epochs = 2, accumulate_grad_batches = 4})
    t:fit(b, data.DataLoader(ds, {batch_size = 32}))
    assert.are.equal(8, t.global_step)
    local d = max_diff(a, b)
    assert.is_true(d < 1e-5, "max weight difference " .. d)
  end)

  it("steps on the epoch's last batch when the window is not full, zero_grad once a window", function()
    local ds = dataset(5 * 8, 3)
    local calls = {zero = 0, step = 0}
    ml.manual_seed(7)
    local m = Reg()
    function m:on_before_zero_grad() calls.zero = calls.zero + 1 end
    function m:on_before_optimizer_step() calls.step = calls.step + 1 end
    local seen = {}
    function m:on_train_batch_end(outputs) seen[#seen + 1] = outputs.loss end
    local t = trainer({accumulate_grad_batches = 2})
    t:fit(m, data.DataLoader(ds, {batch_size = 8}))
    assert.are.equal(3, t.global_step) -- after batches 2, 4 and 5
    assert.are.same({zero = 3, step = 3}, calls)
    -- the loss on_train_batch_end gets is divided by accumulate_grad_batches, as Lightning's
    assert.are.equal(5, #seen)
    ml.manual_seed(7)
    local ref = Reg()
    local loss = ml.F.mse_loss(ref(ds.tensors[1]:narrow(1, 1, 8)), ds.tensors[2]:narrow(1, 1, 8))
    assert.is_false(seen[1].requires_grad)
    assert.are.equal((loss / 2):item(), seen[1]:item())
  end)

  it("rejects a bad count", function()
    local ok, err = pcall(ml.Trainer, {accumulate_grad_batches = 0})
    assert.is_false(ok)
    assert.matches("Trainer: accumulate_grad_batches must be a positive integer, got 0", err, 1, true)
  end)
end)

-- the steps at which validation rows were logged
local function val_steps(logger)
  local out = {}
  for _, r in ipairs(history.read(logger.metrics_file).rows) do
    if r.val_loss then out[#out + 1] = r.step end
  end
  return out
end

describe("val_check_interval", function()
  local train = data.DataLoader(dataset(64, 4), {batch_size = 8})   -- 8 batches
  local val = data.DataLoader(dataset(16, 5), {batch_size = 8})

  local function run(opts)
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "v"})
    local o = {logger = logger}
    for k, v in pairs(opts) do o[k] = v end
    local t = trainer(o)
    ml.manual_seed(1)
    t:fit(Reg(), train, val)
    return val_steps(logger), t
  end

  it("a fraction of the epoch", function()
    assert.are.same({1, 3, 5, 7, 9, 11, 13, 15}, (run({max_epochs = 2, val_check_interval = 0.25})))
    -- int(8 * 0.3) = 2 as well; 0.5 -> every 4
    assert.are.same({3, 7}, (run({val_check_interval = 0.5})))
  end)

  it("a count of batches; with check_val_every_n_epoch = false, across epochs", function()
    assert.are.same({2, 5, 10, 13}, (run({max_epochs = 2, val_check_interval = 3})))
    assert.are.same({4, 9, 14}, (run({max_epochs = 2, val_check_interval = 5, check_val_every_n_epoch = false})))
    local ok, err = pcall(run, {val_check_interval = 9})
    assert.is_false(ok)
    assert.matches("`val_check_interval` (9) must be less than or equal to the number of the training batches (8)",
                   err, 1, true)
    ok, err = pcall(ml.Trainer, {val_check_interval = 1.5})
    assert.matches("should be in the range [0.0, 1.0]", err, 1, true)
  end)

  it("checkpoints after each validation then (Lightning)", function()
    local dir = tmpdir()
    local cp = ml.callbacks.ModelCheckpoint({dirpath = dir, monitor = "val_loss", save_top_k = -1})
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "v"})
    local t = ml.Trainer({max_epochs = 1, logger = logger, enable_progress_bar = false, enable_model_summary = false,
                          num_sanity_val_steps = 0, val_check_interval = 0.5, callbacks = {cp}})
    t:fit(Reg(), train, val)
    local n = 0
    for _ in pairs(cp.best_k_models) do n = n + 1 end
    assert.are.equal(2, n)
    assert.are.equal("file", ml._sys.kind(dir .. "/epoch=0-step=4.safetensors"))
    assert.are.equal("file", ml._sys.kind(dir .. "/epoch=0-step=8.safetensors"))
  end)
end)

describe("a checkpoint saved by a validation inside the epoch", function()
  it("resumes the epoch where it stood: the uninterrupted run's weights", function()
    local train = data.DataLoader(dataset(64, 4), {batch_size = 8, shuffle = true})
    local val = data.DataLoader(dataset(16, 5), {batch_size = 8})
    local function run(max_epochs, dir, ckpt_path)
      ml.manual_seed(11)
      local m = Reg()
      local t = ml.Trainer({max_epochs = max_epochs, logger = false, enable_progress_bar = false,
                            enable_model_summary = false, num_sanity_val_steps = 0, val_check_interval = 0.5,
                            callbacks = {ml.callbacks.ModelCheckpoint({dirpath = dir, save_top_k = -1})}})
      t:fit(m, train, val, ckpt_path and {ckpt_path = ckpt_path} or nil)
      return m, t
    end
    local full, tf = run(2, tmpdir())
    local dir = tmpdir()
    run(1, dir)
    -- epoch 0, after its 4th batch of 8
    local resumed, tr = run(2, tmpdir(), dir .. "/epoch=0-step=4.safetensors")
    assert.are.equal(tf.global_step, tr.global_step)
    assert.are.equal(0, max_diff(full, resumed))
  end)
end)

describe("fast_dev_run", function()
  it("runs n batches of training and validation, one epoch, and writes nothing", function()
    for _, case in ipairs({{true, 1}, {3, 3}}) do
      local dir = tmpdir()
      local calls = {train = 0, val = 0}
      local m = Reg()
      function m:on_train_batch_end() calls.train = calls.train + 1 end
      function m:on_validation_batch_end() calls.val = calls.val + 1 end
      local t = ml.Trainer({fast_dev_run = case[1], default_root_dir = dir, max_epochs = 5,
                            enable_progress_bar = false, enable_model_summary = false})
      t:fit(m, data.DataLoader(dataset(64, 4), {batch_size = 8}), data.DataLoader(dataset(40, 5), {batch_size = 8}))
      assert.are.same({train = case[2], val = case[2]}, calls)
      assert.are.equal(case[2], t.global_step)
      assert.are.equal(1, t.current_epoch)
      assert.are.same({}, ml._sys.listdir(dir)) -- no logs, no checkpoints
      assert.is_number(t.callback_metrics.val_loss)
    end
    local ok, err = pcall(ml.Trainer, {fast_dev_run = -1})
    assert.is_false(ok)
    assert.matches("fast_dev_run=-1 is not a valid configuration. It should be >= 0.", err, 1, true)
  end)
end)

describe("max_time", function()
  it("stops training once the time is spent, after validating", function()
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "t"})
    local t = trainer({max_epochs = 50, max_time = {seconds = 0.06}, logger = logger})
    local m = Reg({slow = 0.02})
    t:fit(m, data.DataLoader(dataset(64, 4), {batch_size = 8}), data.DataLoader(dataset(16, 5), {batch_size = 8}))
    assert.is_true(t.should_stop)
    -- each step takes 0.02 s at least: the third one ends past 0.06 s, whatever the load
    assert.is_true(t.global_step >= 1 and t.global_step <= 3, "stopped after " .. t.global_step .. " steps")
    assert.are.equal(1, t.current_epoch) -- the first epoch, ended early, counts (Lightning)
    -- the validation Lightning runs when a stop is asked for
    assert.are.same({t.global_step - 1}, val_steps(logger))
    local timer
    for _, cb in ipairs(t.callbacks) do if cb._is_timer then timer = cb end end
    assert.is_true(timer:time_elapsed() >= 0.06)
  end)

  it("takes \"DD:HH:MM:SS\" and Python's timedelta fields", function()
    local T = ml.callbacks.Timer
    assert.are.equal(93784, T({duration = "01:02:03:04"})._duration)
    assert.are.equal(5400.5, T({duration = {hours = 1, minutes = 30, milliseconds = 500}})._duration)
    local ok, err = pcall(T, {duration = "1:2:3"})
    assert.matches("the duration must be \"DD:HH:MM:SS\"", err, 1, true)
    ok, err = pcall(T, {duration = {hour = 1}})
    assert.matches("unknown duration key 'hour'", err, 1, true)
    -- no epoch limit by default with max_time
    assert.are.equal(-1, ml.Trainer({max_time = "00:00:01:00", logger = false}).max_epochs)
  end)

  it("EarlyStopping stops at once on a non-finite metric (check_finite)", function()
    local m = Reg()
    function m:validation_step() self:log("val_loss", self.trainer.current_epoch == 1 and 0 / 0 or 1.0) end
    local t = trainer({max_epochs = 10, callbacks = {ml.callbacks.EarlyStopping({monitor = "val_loss", patience = 5})}})
    t:fit(m, data.DataLoader(dataset(16, 4), {batch_size = 8}), data.DataLoader(dataset(8, 5), {batch_size = 8}))
    assert.are.equal(2, t.current_epoch)
  end)

  it("min_steps and min_epochs hold a stop back", function()
    local t = trainer({max_epochs = 3, min_steps = 10})
    local m = Reg()
    function m:on_train_batch_end() self.trainer.should_stop = true end
    t:fit(m, data.DataLoader(dataset(64, 4), {batch_size = 8}))
    assert.are.equal(10, t.global_step)
  end)
end)

describe("enable_*", function()
  local bin = os.getenv("MOONLIGHT_BIN") or "build/moonlight"
  local function run_script(text)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    local p = io.popen(bin .. " " .. path .. " 2>&1")
    local out = p:read("a")
    p:close()
    os.remove(path)
    return out
  end
  local script = [[
local ml = require "moonlight"
local M = ml.nn.Module:extend("M")
function M:init() self.fc = ml.nn.Linear(2, 1) end
function M:training_step(b) return self.fc(b[1]):pow(2):mean() end
function M:configure_optimizers() return ml.optim.SGD(self:parameters(), {lr = 0.1}) end
local dir = os.tmpname(); os.remove(dir)
local t = ml.Trainer({max_epochs = 1, default_root_dir = dir, logger = false, %s})
t:fit(M(), ml.data.DataLoader(ml.data.TensorDataset(ml.ones({4, 2})), {batch_size = 2}))
print("checkpoints", ml._sys.kind(dir .. "/checkpoints/epoch=0-step=2.safetensors"))
]]

  it("show or hide the summary and the progress bar, save or not", function()
    local out = run_script(script:format(""))
    assert.matches("Trainable params", out, 1, true)
    assert.matches("Epoch 0", out, 1, true)
    assert.matches("checkpoints\tfile", out, 1, true)
    out = run_script(script:format("enable_model_summary = false, enable_progress_bar = false, " ..
                                   "enable_checkpointing = false"))
    assert.is_nil(out:find("Trainable params", 1, true))
    assert.is_nil(out:find("Epoch 0", 1, true))
    assert.matches("checkpoints\tnil", out, 1, true)
  end)

  it("enable_checkpointing = false with a ModelCheckpoint is an error", function()
    local ok, err = pcall(ml.Trainer, {enable_checkpointing = false, callbacks = {ml.callbacks.ModelCheckpoint()}})
    assert.is_false(ok)
    assert.matches("Trainer was configured with `enable_checkpointing=False` but found `ModelCheckpoint`", err, 1, true)
  end)
end)

describe("self:log column names", function()
  it("x_step and x_epoch for a value logged on step and epoch; reduce_fx; on_step in validation", function()
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "l"})
    local m = Reg({log_opts = {on_step = true, on_epoch = true, reduce_fx = "max", sync_dist = true}})
    local steps = {}
    function m:validation_step(batch)
      local loss = ml.F.mse_loss(self(batch[1]), batch[2])
      self:log("val_loss", loss, {on_step = true, on_epoch = true})
      self:log("val_sum", loss, {reduce_fx = "sum"})
    end
    function m:on_train_batch_end(out) steps[#steps + 1] = self.trainer.callback_metrics.train_loss_step end
    local t = trainer({max_epochs = 1, logger = logger, log_every_n_steps = 1})
    t:fit(m, data.DataLoader(dataset(32, 4), {batch_size = 8}), data.DataLoader(dataset(24, 5), {batch_size = 8}))
    local h = history.read(logger.metrics_file)
    assert.are.same({"epoch", "step", "train_loss_epoch", "train_loss_step", "val_loss_epoch", "val_loss_step",
                     "val_sum"}, h.columns)
    local train_steps, val_step_rows, max_step = {}, {}, -math.huge
    for _, r in ipairs(h.rows) do
      if r.train_loss_step then
        train_steps[#train_steps + 1] = r.step
        max_step = math.max(max_step, r.train_loss_step)
      end
      if r.val_loss_step then val_step_rows[#val_step_rows + 1] = r.step end
    end
    assert.are.same({0, 1, 2, 3}, train_steps)
    -- Lightning logs validation's step values at the batch's index in the run
    assert.are.same({0, 1, 2}, val_step_rows)
    local per_epoch = history.per_epoch(h)
    assert.are.equal(max_step, per_epoch[1].train_loss_epoch) -- reduce_fx = "max"
    assert.are.equal(t.callback_metrics.train_loss_epoch, per_epoch[1].train_loss_epoch)
    assert.are.equal(t.callback_metrics.train_loss, t.callback_metrics.train_loss_epoch)
    assert.is_number(per_epoch[1].val_loss_epoch)
    assert.are.equal(t.callback_metrics.val_loss, per_epoch[1].val_loss_epoch)
    -- the sum over the 3 batches is 3 times their mean (equal batches)
    assert.is_true(math.abs(per_epoch[1].val_sum - 3 * per_epoch[1].val_loss_epoch) < 1e-5)
  end)
end)

describe("docs/TRAINER.md", function()
  local f = assert(io.open("docs/TRAINER.md"))
  local doc = f:read("a")
  f:close()
  it("describes every Trainer option", function()
    for name in pairs(require("moonlight.trainer")._options) do
      assert.is_truthy(doc:find("`" .. name .. "`", 1, true), "option " .. name .. " is not in docs/TRAINER.md")
    end
  end)
  it("names every callback, logger and scheduler", function()
    for name, v in pairs(ml.callbacks) do
      if type(v) == "table" and name:match("^%u") then
        assert.is_truthy(doc:find(name, 1, true), "callback " .. name)
      end
    end
    for name in pairs(ml.loggers) do assert.is_truthy(doc:find(name, 1, true), "logger " .. name) end
    for name, v in pairs(ml.optim.lr_scheduler) do
      if type(v) == "function" then assert.is_truthy(doc:find("`" .. name .. "(", 1, true), "scheduler " .. name) end
    end
  end)
end)
