local ml = require "moonlight"
local nn, optim, data = ml.nn, ml.optim, ml.data
local history = require "moonlight.history"
local U = require "test_util"
local tmpdir, read_file = U.tmpdir, U.read_file

-- y = x @ w + noise, a small regression problem
local function make_data(n, seed)
  ml.manual_seed(seed or 1)
  local x = ml.randn({n, 4})
  local w = ml.tensor({{1}, {-2}, {0.5}, {3}})
  local y = x:matmul(w) + ml.randn({n, 1}) * 0.1
  return data.TensorDataset(x, y)
end

local Net = nn.Module:extend("Net")
function Net:init(opts)
  opts = opts or {}
  self.fc1 = nn.Linear(4, 16)
  self.act = nn.ReLU()
  self.fc2 = nn.Linear(16, 1)
  self.opts = opts
end
function Net:forward(x) return self.fc2(self.act(self.fc1(x))) end
function Net:training_step(batch, batch_idx)
  local loss = ml.F.mse_loss(self(batch[1]), batch[2])
  if self.opts.nan_at and batch_idx == self.opts.nan_at then loss = loss * (0 / 0) end
  if self.opts.return_nil then return nil end
  self:log("train_loss", loss, {prog_bar = true})
  return loss
end
function Net:validation_step(batch, batch_idx)
  self:log("val_loss", ml.F.mse_loss(self(batch[1]), batch[2]))
end
function Net:test_step(batch, batch_idx)
  self:log("test_loss", ml.F.mse_loss(self(batch[1]), batch[2]))
end
function Net:configure_optimizers()
  local opt = optim.Adam(self:parameters(), {lr = 1e-2})
  if self.opts.sched then return {{opt}, {optim.lr_scheduler.StepLR(opt, {step_size = 1, gamma = 0.5})}} end
  return opt
end

local function fit(opts)
  local dir = opts.dir or tmpdir()
  ml.manual_seed(opts.seed or 7)
  local model = Net(opts.model)
  local train = data.DataLoader(make_data(64, 3), {batch_size = 8, shuffle = true})
  local val = data.DataLoader(make_data(32, 4), {batch_size = 8})
  local logger = ml.loggers.CSVLogger(dir, {name = "exp"})
  local trainer = ml.Trainer({max_epochs = opts.epochs or 3, logger = logger, log_every_n_steps = 4,
                              enable_progress_bar = false, enable_model_summary = false,
                              callbacks = opts.callbacks})
  local metrics = trainer:fit(model, train, val, opts.fit)
  return trainer, model, logger, metrics, dir
end

describe("Trainer", function()
  it("fits, and logs as Lightning's CSVLogger does", function()
    local trainer, _, logger, metrics, dir = fit({})
    assert.are.equal(dir .. "/exp/version_0", logger.log_dir)
    assert.are.equal(0, logger.version)
    assert.are.equal(3, trainer.current_epoch)
    assert.are.equal(24, trainer.global_step)
    local h = history.read(logger.log_dir .. "/metrics.csv")
    assert.are.same({"epoch", "step", "train_loss", "val_loss"}, h.columns)
    -- train rows every 4 steps (step = global_step - 1), a validation row at each epoch's end
    local steps, val_steps = {}, {}
    for _, r in ipairs(h.rows) do
      if r.train_loss then steps[#steps + 1] = r.step end
      if r.val_loss then val_steps[#val_steps + 1] = r.step end
    end
    assert.are.same({3, 7, 11, 15, 19, 23}, steps)
    assert.are.same({7, 15, 23}, val_steps)
    local per_epoch = history.per_epoch(h)
    assert.are.equal(3, #per_epoch)
    assert.is_true(per_epoch[3].val_loss < per_epoch[1].val_loss)
    assert.are.equal(per_epoch[3].val_loss, metrics.val_loss)
    assert.are.equal("{}\n", read_file(logger.log_dir .. "/hparams.yaml"))
    -- a checkpoint of the last epoch, as Lightning's default ModelCheckpoint
    assert.are.equal("file", ml._sys.kind(logger.log_dir .. "/checkpoints/epoch=2-step=24.safetensors"))
    -- the checkpoint's header is JSON in UTF-8, as safetensors readers need
    local f = assert(io.open(logger.log_dir .. "/checkpoints/epoch=2-step=24.safetensors", "rb"))
    local n = string.unpack("<I8", f:read(8))
    local header = f:read(n)
    f:close()
    assert.is_not_nil(utf8.len(header))
    assert.matches('"moonlight.trainer_state"', header)
    assert.has_error(function() ml.save({}, os.tmpname(), {bad = "\255\254"}) end)
    -- the next logger in the same place takes the next version
    assert.are.equal(1, ml.loggers.CSVLogger(dir, {name = "exp"}).version)
  end)

  it("is bit-identical when seeded", function()
    local _, _, _, m1 = fit({seed = 11})
    local _, _, _, m2 = fit({seed = 11})
    assert.are.equal(m1.val_loss, m2.val_loss)
  end)

  it("resumes from a checkpoint to the same numbers", function()
    local _, _, _, full = fit({seed = 5, epochs = 3})
    local dir = tmpdir()
    local cp = ml.callbacks.ModelCheckpoint({save_last = true})
    fit({seed = 5, epochs = 2, dir = dir, callbacks = {cp}})
    local cp2 = ml.callbacks.ModelCheckpoint({save_last = true, dirpath = cp.dirpath or (dir .. "/exp/version_0/checkpoints")})
    local trainer, _, _, resumed = fit({seed = 99, epochs = 3, dir = dir, callbacks = {cp2},
                                        fit = {ckpt_path = dir .. "/exp/version_0/checkpoints/last.safetensors"}})
    assert.are.equal(3, trainer.current_epoch)
    assert.are.equal(full.val_loss, resumed.val_loss)
  end)

  it("resumes with an epoch scheduler to the same numbers (the checkpoint holds the stepped scheduler)", function()
    local full_trainer, _, _, full = fit({seed = 5, epochs = 3, model = {sched = true}})
    local dir = tmpdir()
    local ckdir = dir .. "/ck"
    fit({seed = 5, epochs = 2, dir = dir, model = {sched = true},
         callbacks = {ml.callbacks.ModelCheckpoint({save_last = true, dirpath = ckdir})}})
    local trainer, _, _, resumed = fit({seed = 99, epochs = 3, dir = dir, model = {sched = true},
                                        callbacks = {ml.callbacks.ModelCheckpoint({save_last = true, dirpath = ckdir})},
                                        fit = {ckpt_path = "last"}})
    assert.are.equal(full_trainer.optimizers[1].param_groups[1].lr, trainer.optimizers[1].param_groups[1].lr)
    assert.are.equal(full.val_loss, resumed.val_loss)
  end)

  it("takes any loader whose iter() is a generic-for iterator (a function with its state)", function()
    local ds = make_data(16, 2)
    local loader = setmetatable({iter = function(self)
      return function(st, i)
        if i >= 4 then return nil end
        return i + 1, {ds.tensors[1]:narrow(1, i * 4 + 1, 4), ds.tensors[2]:narrow(1, i * 4 + 1, 4)}
      end, self, 0
    end}, {__len = function() return 4 end})
    local tr = ml.Trainer({max_epochs = 2, logger = false, enable_progress_bar = false,
                           enable_model_summary = false, enable_checkpointing = false})
    tr:fit(Net(), loader)
    assert.are.equal(8, tr.global_step)
  end)

  it("validates and tests, returning the logged metrics", function()
    local trainer, model = fit({epochs = 1})
    local loader = data.DataLoader(make_data(32, 4), {batch_size = 8})
    local v = trainer:validate(model, loader)
    local t = trainer:test(model, loader)
    assert.is_number(v.val_loss)
    assert.is_true(math.abs(v.val_loss - t.test_loss) < 1e-6)
  end)

  it("stops early", function()
    local es = ml.callbacks.EarlyStopping({monitor = "val_loss", patience = 1, mode = "max"})
    local trainer = fit({epochs = 10, callbacks = {es}})
    assert.is_true(trainer.current_epoch < 10)
  end)

  it("stops on a NaN loss, naming the epoch and step, keeping the rows logged", function()
    local dir = tmpdir()
    local ok, err = pcall(fit, {dir = dir, model = {nan_at = 6}, epochs = 2})
    assert.is_false(ok)
    assert.matches("non%-finite loss %(nan%) %(epoch 0, step 5%)", err)
    local h = history.read(dir .. "/exp/version_0/metrics.csv")
    assert.are.equal(1, #h.rows)
  end)

  it("rejects a training_step that returns nothing", function()
    local ok, err = pcall(fit, {model = {return_nil = true}})
    assert.is_false(ok)
    assert.matches("training_step returned nothing %(epoch 0, step 0%)", err)
  end)

  it("rejects unknown options and missing methods", function()
    assert.has_error(function() ml.Trainer({max_epoch = 3}) end)
    local ok, err = pcall(ml.Trainer, {max_epoch = 3})
    assert.matches("Trainer: unknown option 'max_epoch'", err)
    local Bare = nn.Module:extend("Bare")
    function Bare:init() self.fc = nn.Linear(4, 1) end
    function Bare:training_step(batch) return self.fc(batch[1]):mean() end
    local tr = ml.Trainer({logger = false, enable_progress_bar = false, enable_model_summary = false,
                           enable_checkpointing = false})
    ok, err = pcall(tr.fit, tr, Bare(), data.DataLoader(make_data(8), {batch_size = 4}))
    assert.matches("no configure_optimizers", err)
  end)

  it("says when the log directory cannot be written", function()
    local f = io.open(os.tmpname(), "w")
    local blocker = os.tmpname()
    f:close()
    local logger = ml.loggers.CSVLogger(blocker, {name = "x"})
    local ok, err = pcall(function() logger:log_metrics({a = 1}, 0) end)
    assert.is_false(ok)
    assert.matches("CSVLogger: cannot create log directory", err)
  end)

  it("prints Lightning's model summary", function()
    local s = require("moonlight.trainer").model_summary(Net())
    assert.are.equal(table.concat({
      "  | Name | Type   | Params | Mode ",
      "-------------------------------------",
      "0 | fc1  | Linear | 80     | train",
      "1 | act  | ReLU   | 0      | train",
      "2 | fc2  | Linear | 17     | train",
      "-------------------------------------",
      "97        Trainable params",
      "0         Non-trainable params",
      "97        Total params",
      "0.000     Total estimated model params size (MB)",
      "3         Modules in train mode",
      "0         Modules in eval mode"}, "\n"), s)
  end)

  it("honours max_steps, check_val_every_n_epoch and limit_train_batches", function()
    ml.manual_seed(3)
    local model = Net()
    local train = data.DataLoader(make_data(64, 3), {batch_size = 8})
    local val = data.DataLoader(make_data(16, 4), {batch_size = 8})
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "exp"})
    local tr = ml.Trainer({max_epochs = 10, max_steps = 10, logger = logger, log_every_n_steps = 1,
                           check_val_every_n_epoch = 2, enable_progress_bar = false,
                           enable_model_summary = false, enable_checkpointing = false})
    tr:fit(model, train, val)
    assert.are.equal(10, tr.global_step)
    local h = history.read(logger.log_dir .. "/metrics.csv")
    local val_rows = 0
    for _, r in ipairs(h.rows) do if r.val_loss then val_rows = val_rows + 1 end end
    -- not at epoch 0 (check_val_every_n_epoch = 2), and not at epoch 1 either:
    -- max_steps ends it after 2 of its 8 batches, before its validation batch, as
    -- in Lightning ("working as intended", Lightning issue 9855)
    assert.are.equal(0, val_rows)
    local tr2 = ml.Trainer({max_epochs = 2, limit_train_batches = 3, logger = false,
                            enable_progress_bar = false, enable_model_summary = false,
                            enable_checkpointing = false})
    tr2:fit(Net(), train)
    assert.are.equal(6, tr2.global_step)
  end)

  it("clips gradients by norm and steps LR schedulers", function()
    local Clip = nn.Module:extend("Clip")
    function Clip:init() self.w = nn.Parameter(ml.tensor({3.0, 4.0})) end
    function Clip:training_step(batch)
      return (self.w * batch[1]:sum()):sum() -- grad = batch sum, times 1 for each element
    end
    local seen = {}
    function Clip:on_train_batch_end() seen[#seen + 1] = self.w.grad:totable() end
    function Clip:configure_optimizers()
      local opt = optim.SGD(self:parameters(), {lr = 0.1})
      return {{opt}, {optim.lr_scheduler.StepLR(opt, {step_size = 1, gamma = 0.5})}}
    end
    local x = ml.full({4, 1}, 10.0)
    local loader = data.DataLoader(data.TensorDataset(x, x), {batch_size = 4})
    local m = Clip()
    local tr = ml.Trainer({max_epochs = 2, gradient_clip_val = 1.0, logger = false,
                           enable_progress_bar = false, enable_model_summary = false,
                           enable_checkpointing = false})
    tr:fit(m, loader)
    -- the gradient (40, 40) has norm 56.6: clipped to norm 1
    local g = seen[1]
    assert.is_true(math.abs(math.sqrt(g[1] ^ 2 + g[2] ^ 2) - 1) < 1e-4)
    -- two epochs: lr 0.1 then 0.05 after the scheduler's step
    assert.is_true(math.abs(tr.optimizers[1].param_groups[1].lr - 0.025) < 1e-12)
  end)
end)

