-- Optimizers and schedulers in the Trainer (issue 18, 2 and 3): Lightning's
-- configure_optimizers forms and scheduler configs (interval, frequency,
-- monitor, strict, name), ReduceLROnPlateau and OneCycleLR driven by the
-- Trainer, the LearningRateMonitor's names and steps, and manual optimization
-- (automatic_optimization = false, self:optimizers(), self:manual_backward).
local ml = require "moonlight"
local nn, optim, data = ml.nn, ml.optim, ml.data
local S = optim.lr_scheduler
local history = require "moonlight.history"
local tmpdir = require("test_util").tmpdir

local function loader(n, bs)
  ml.manual_seed(n)
  return data.DataLoader(data.TensorDataset(ml.randn({n, 3}), ml.randn({n, 1})), {batch_size = bs or 4})
end

-- a module whose configure_optimizers is given
local function module(configure, extra)
  local M = nn.Module:extend("OptNet")
  function M:init() self.a = nn.Linear(3, 4); self.b = nn.Linear(4, 1) end
  function M:forward(x) return self.b(self.a(x)) end
  function M:training_step(batch) return ml.F.mse_loss(self(batch[1]), batch[2]) end
  function M:validation_step() self:log("val_metric", 1.0) end -- never improves
  M.configure_optimizers = configure
  if extra then extra(M) end
  ml.manual_seed(3)
  return M()
end

local function trainer(opts)
  local o = {max_epochs = 1, logger = false, enable_progress_bar = false, enable_model_summary = false,
             enable_checkpointing = false, num_sanity_val_steps = 0}
  for k, v in pairs(opts or {}) do o[k] = v end
  return ml.Trainer(o)
end

-- the learning rate seen at each training step
local function lr_trace(m)
  local trace = {}
  local prev = m.on_train_batch_start
  m.on_train_batch_start = function(self, ...)
    trace[#trace + 1] = self.trainer.optimizers[1].param_groups[1].lr
    if prev then return prev(self, ...) end
  end
  return trace
end

describe("configure_optimizers", function()
  it("a scheduler config stepped every step, every other step, or every epoch", function()
    for _, case in ipairs({
      {{interval = "step"}, {0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125}},
      -- frequency counts the batches of the epoch (Lightning's batch_idx + 1): 3 a epoch
      {{interval = "step", frequency = 2}, {0.1, 0.1, 0.05, 0.05, 0.05, 0.025}},
      {{}, {0.1, 0.1, 0.1, 0.05, 0.05, 0.05}},
    }) do
      local m = module(function(self)
        local opt = optim.SGD(self:parameters(), {lr = 0.1})
        local cfg = {scheduler = S.StepLR(opt, 1, 0.5)}
        for k, v in pairs(case[1]) do cfg[k] = v end
        return {optimizer = opt, lr_scheduler = cfg}
      end)
      local trace = lr_trace(m)
      trainer({max_epochs = 2}):fit(m, loader(12, 4))
      assert.are.same(case[2], trace)
    end
  end)

  it("takes Lightning's other forms", function()
    local forms = {
      function(self) return optim.SGD(self:parameters(), {lr = 0.1}) end,
      function(self) return {optim.SGD(self:parameters(), {lr = 0.1})} end,
      function(self)
        local o = optim.SGD(self:parameters(), {lr = 0.1})
        return {{o}, {S.ExponentialLR(o, 0.5)}}
      end,
      function(self)
        local o = optim.SGD(self:parameters(), {lr = 0.1})
        return {{o}, S.ExponentialLR(o, 0.5)} -- one scheduler, not in a list
      end,
      function(self)
        local o = optim.SGD(self:parameters(), {lr = 0.1})
        return {{optimizer = o, lr_scheduler = S.ExponentialLR(o, 0.5)}}
      end,
    }
    local expected = {0.1, 0.1, 0.05, 0.05, 0.05}
    for i, f in ipairs(forms) do
      local t = trainer()
      t:fit(module(f), loader(8))
      assert.are.equal(expected[i], t.optimizers[1].param_groups[1].lr, "form " .. i)
      assert.are.equal(2, t.global_step)
    end
    -- nil: no optimizer, the steps still run
    local t = trainer()
    t:fit(module(function() return nil end), loader(8))
    assert.are.equal(2, t.global_step)
  end)

  it("says what is wrong", function()
    local function err(f, opts)
      local ok, e = pcall(function() trainer(opts):fit(module(f), loader(8)) end)
      assert.is_false(ok)
      return e
    end
    assert.matches("configure_optimizers: unknown lr scheduler config key 'intervall'", err(function(self)
      local o = optim.SGD(self:parameters(), {lr = 0.1})
      return {optimizer = o, lr_scheduler = {scheduler = S.StepLR(o, 1), intervall = "step"}}
    end), 1, true)
    assert.matches('interval = "batch": it must be "epoch" or "step"', err(function(self)
      local o = optim.SGD(self:parameters(), {lr = 0.1})
      return {optimizer = o, lr_scheduler = {scheduler = S.StepLR(o, 1), interval = "batch"}}
    end), 1, true)
    assert.matches("must include a monitor when a `ReduceLROnPlateau` scheduler is used", err(function(self)
      local o = optim.SGD(self:parameters(), {lr = 0.1})
      return {{o}, {S.ReduceLROnPlateau(o)}}
    end), 1, true)
    assert.matches("Training with multiple optimizers is only supported with manual optimization", err(function(self)
      return {optim.SGD(self.a:parameters(), {lr = 0.1}), optim.SGD(self.b:parameters(), {lr = 0.1})}
    end), 1, true)
    assert.matches("Some schedulers are attached with an optimizer that wasn't returned", err(function(self)
      local o = optim.SGD(self:parameters(), {lr = 0.1})
      local other = optim.SGD(self:parameters(), {lr = 0.1})
      return {{o}, {S.StepLR(other, 1)}}
    end), 1, true)
  end)
end)

describe("ReduceLROnPlateau and OneCycleLR in the Trainer", function()
  it("ReduceLROnPlateau steps on the monitored metric after each validation", function()
    local m = module(function(self)
      local o = optim.SGD(self:parameters(), {lr = 0.1})
      return {optimizer = o, lr_scheduler = S.ReduceLROnPlateau(o, {patience = 0, factor = 0.5}),
              monitor = "val_metric"}
    end)
    local t = trainer({max_epochs = 4})
    t:fit(m, loader(8), loader(4))
    -- epoch 0 sets the best; 1, 2 and 3 do not improve on it
    assert.are.equal(0.1 * 0.5 * 0.5 * 0.5, t.optimizers[1].param_groups[1].lr)
    -- the same with the metric's values by hand
    local o = optim.SGD({ml.zeros({1}, {requires_grad = true})}, {lr = 0.1})
    local s = S.ReduceLROnPlateau(o, {patience = 0, factor = 0.5})
    for _ = 1, 4 do s:step(1.0) end
    assert.are.equal(o.param_groups[1].lr, t.optimizers[1].param_groups[1].lr)
  end)

  it("a missing monitor: an error, or with strict = false a warning and no step", function()
    local function configure(strict)
      return function(self)
        local o = optim.SGD(self:parameters(), {lr = 0.1})
        return {optimizer = o, lr_scheduler = {scheduler = S.ReduceLROnPlateau(o, {patience = 0}),
                                               monitor = "val_loss", strict = strict}}
      end
    end
    local ok, e = pcall(function() trainer({max_epochs = 2}):fit(module(configure(nil)), loader(8), loader(4)) end)
    assert.is_false(ok)
    assert.matches("ReduceLROnPlateau conditioned on metric val_loss which is not available. Available metrics " ..
                   "are: [val_metric]", e, 1, true)
    local t = trainer({max_epochs = 2})
    t:fit(module(configure(false)), loader(8), loader(4))
    assert.are.equal(0.1, t.optimizers[1].param_groups[1].lr)
  end)

  it("OneCycleLR stepped per batch gives the scheduler's own sequence", function()
    local m = module(function(self)
      local o = optim.SGD(self:parameters(), {lr = 0.1, momentum = 0.9})
      return {optimizer = o, lr_scheduler = {scheduler = S.OneCycleLR(o, {max_lr = 0.05, total_steps = 12}),
                                             interval = "step"}}
    end)
    local trace = lr_trace(m)
    trainer({max_epochs = 3}):fit(m, loader(16, 4))
    local o = optim.SGD({ml.zeros({1}, {requires_grad = true})}, {lr = 0.1, momentum = 0.9})
    local s = S.OneCycleLR(o, {max_lr = 0.05, total_steps = 12})
    local expected = {}
    for i = 1, 12 do
      expected[i] = o.param_groups[1].lr
      if i < 12 then s:step() end
    end
    assert.are.same(expected, trace)
  end)
end)

describe("resuming with schedulers", function()
  it("a resumed fit steps ReduceLROnPlateau and OneCycleLR on from where they were", function()
    local function configure(self)
      local o1 = optim.SGD(self.a:parameters(), {lr = 0.1, momentum = 0.9})
      local o2 = optim.SGD(self.b:parameters(), {lr = 0.1})
      return {{optimizer = o1, lr_scheduler = {scheduler = S.OneCycleLR(o1, {max_lr = 0.05, total_steps = 8}),
                                               interval = "step"}},
              {optimizer = o2, lr_scheduler = S.ReduceLROnPlateau(o2, {patience = 0, factor = 0.5}),
               monitor = "val_metric"}}
    end
    -- two optimizers: manual optimization, stepping the schedulers as Lightning's docs show
    local function extra(M)
      function M:init() self.a = nn.Linear(3, 4); self.b = nn.Linear(4, 1); self.automatic_optimization = false end
      function M:training_step(batch)
        local o1, o2 = table.unpack(self:optimizers())
        local loss = ml.F.mse_loss(self.b(self.a(batch[1])), batch[2])
        o1:zero_grad(); o2:zero_grad()
        self:manual_backward(loss)
        o1:step(); o2:step()
        local s1 = self:lr_schedulers()[1]
        s1:step()
      end
      function M:on_validation_epoch_end()
        if not self.trainer.sanity_checking then self:lr_schedulers()[2]:step(self.trainer.callback_metrics.val_metric) end
      end
    end
    local full = trainer({max_epochs = 4})
    local mf = module(configure, extra)
    full:fit(mf, loader(4, 2), loader(4, 2))
    local dir = tmpdir()
    local cp = function() return ml.callbacks.ModelCheckpoint({dirpath = dir, save_last = true}) end
    local first = ml.Trainer({max_epochs = 2, logger = false, enable_progress_bar = false, enable_model_summary = false,
                              num_sanity_val_steps = 0, callbacks = {cp()}})
    first:fit(module(configure, extra), loader(4, 2), loader(4, 2))
    local resumed = ml.Trainer({max_epochs = 4, logger = false, enable_progress_bar = false,
                                enable_model_summary = false, num_sanity_val_steps = 0, callbacks = {cp()}})
    local mr = module(configure, extra)
    resumed:fit(mr, loader(4, 2), loader(4, 2), {ckpt_path = "last"})
    for i = 1, 2 do
      local a, b = full.optimizers[i].param_groups[1], resumed.optimizers[i].param_groups[1]
      assert.are.equal(a.lr, b.lr, "optimizer " .. i)
      assert.are.equal(a.momentum, b.momentum)
    end
    assert.are.equal(0.1 * 0.125, resumed.optimizers[2].param_groups[1].lr)
    assert.are.equal(full.global_step, resumed.global_step)
    assert.are.equal(0, (mf.a.weight - mr.a.weight):abs():max():item())
  end)
end)

describe("LearningRateMonitor", function()
  local function lr_rows(logger)
    local out = {}
    for _, r in ipairs(history.read(logger.metrics_file).rows) do
      for k, v in pairs(r) do
        if k:match("^lr%-") then
          out[k] = out[k] or {}
          table.insert(out[k], {r.step, v})
        end
      end
    end
    return out
  end

  it("logs lr-SGD at each logged step, before the step, and lr-Adam at each epoch's start", function()
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "lr"})
    local m = module(function(self)
      local o = optim.SGD(self:parameters(), {lr = 0.1})
      return {optimizer = o, lr_scheduler = {scheduler = S.StepLR(o, 1, 0.5), interval = "step"}}
    end)
    local t = trainer({max_epochs = 2, logger = logger, log_every_n_steps = 2,
                       callbacks = {ml.callbacks.LearningRateMonitor()}})
    t:fit(m, loader(12, 4))
    assert.are.same({["lr-SGD"] = {{1, 0.05}, {3, 0.0125}, {5, 0.003125}}}, lr_rows(logger))
    assert.are.equal(0.003125, t.callback_metrics["lr-SGD"])

    local logger2 = ml.loggers.CSVLogger(tmpdir(), {name = "lr"})
    local m2 = module(function(self)
      local o = optim.Adam(self:parameters(), {lr = 0.01})
      return {optimizer = o, lr_scheduler = S.StepLR(o, 1, 0.1)}
    end)
    local lrm = ml.callbacks.LearningRateMonitor({log_momentum = true})
    trainer({max_epochs = 3, logger = logger2, callbacks = {lrm}}):fit(m2, loader(8, 4))
    local rows = lr_rows(logger2)
    assert.are.same({{0, 0.01}, {2, 0.01 * 0.1}, {4, 0.01 * 0.1 * 0.1}}, rows["lr-Adam"])
    assert.are.same({{0, 0.9}, {2, 0.9}, {4, 0.9}}, rows["lr-Adam-momentum"])
    assert.are.same({0.01, 0.01 * 0.1, 0.01 * 0.1 * 0.1}, lrm.lrs["lr-Adam"])
  end)

  it("names param groups, named groups and a scheduler config's name as Lightning", function()
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "lr"})
    local m = module(function(self)
      local o = optim.SGD({{params = self.a:parameters(), lr = 0.1}, {params = self.b:parameters(), lr = 0.2}},
                          {lr = 0.3, momentum = 0.9})
      return o
    end)
    trainer({logger = logger, log_every_n_steps = 1,
             callbacks = {ml.callbacks.LearningRateMonitor({logging_interval = "step", log_momentum = true,
                                                            log_weight_decay = true})}}):fit(m, loader(4, 4))
    local function columns(lg)
      local cols = {}
      for _, c in ipairs(history.read(lg.metrics_file).columns) do
        if c ~= "epoch" and c ~= "step" then cols[#cols + 1] = c end
      end
      return cols
    end
    -- Lightning puts -momentum after the whole name, the group's suffix included
    assert.are.same({"lr-SGD/pg1", "lr-SGD/pg1-momentum", "lr-SGD/pg1-weight_decay", "lr-SGD/pg2",
                     "lr-SGD/pg2-momentum", "lr-SGD/pg2-weight_decay"}, columns(logger))
    -- a named param group, a named scheduler config, a second optimizer of a class
    local logger2 = ml.loggers.CSVLogger(tmpdir(), {name = "lr"})
    local m2 = module(function(self)
      local o1 = optim.Adam({{params = self.a:parameters(), name = "encoder"}}, {lr = 0.1})
      local o2 = optim.Adam(self.b:parameters(), {lr = 0.2})
      local o3 = optim.SGD(self.b:parameters(), {lr = 0.3})
      return {{o1, o2, o3}, {{scheduler = S.StepLR(o3, 1), name = "my-lr"}}}
    end, function(M)
      function M:init() self.a = nn.Linear(3, 4); self.b = nn.Linear(4, 1); self.automatic_optimization = false end
      function M:training_step() end
    end)
    trainer({logger = logger2, log_every_n_steps = 1, callbacks = {ml.callbacks.LearningRateMonitor()}})
      :fit(m2, loader(4, 4))
    assert.are.same({"lr-Adam-1", "lr-Adam/encoder", "my-lr"}, columns(logger2))
    local ok, e = pcall(function()
      trainer({callbacks = {ml.callbacks.LearningRateMonitor()}}):fit(module(function(self)
        return optim.SGD(self:parameters(), {lr = 0.1})
      end), loader(4, 4))
    end)
    assert.is_false(ok)
    assert.matches("Cannot use `LearningRateMonitor` callback with `Trainer` that has no logger", e, 1, true)
  end)
end)

describe("manual optimization", function()
  -- two optimizers, two losses, as a GAN's training_step
  local function gan(opts)
    opts = opts or {}
    return module(function(self)
      local o1 = optim.SGD(self.a:parameters(), {lr = 0.1})
      local o2 = optim.SGD(self.b:parameters(), {lr = 0.05})
      return {{o1, o2}, {S.StepLR(o1, 1, 0.5)}}
    end, function(M)
      function M:init()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(4, 1)
        self.automatic_optimization = false
        self.calls = {}
      end
      function M:training_step(batch)
        local o1, o2 = table.unpack(self:optimizers())
        local loss = ml.F.mse_loss(self.b(self.a(batch[1])), batch[2])
        o1:zero_grad()
        self:manual_backward(loss)
        o1:step()
        local loss2 = self.b(self.a(batch[1]):detach()):square():mean()
        o2:zero_grad()
        self:manual_backward(loss2)
        o2:step()
        if opts.sched then self:lr_schedulers():step() end
        self:log("g_loss", loss)
        return {loss = loss, extra = 7}
      end
      for _, h in ipairs({"on_before_backward", "on_after_backward", "on_before_optimizer_step"}) do
        M[h] = function(self) self.calls[h] = (self.calls[h] or 0) + 1 end
      end
      function M:on_train_batch_end(out)
        assert(out.extra == 7 and not out.loss.requires_grad)
      end
    end)
  end

  it("steps what training_step steps, counts each step, and steps no scheduler by itself", function()
    local m = gan()
    ml.manual_seed(3)
    local ref_a, ref_b = nn.Linear(3, 4), nn.Linear(4, 1)
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "g"})
    local t = trainer({max_epochs = 1, logger = logger, log_every_n_steps = 1})
    local l = loader(8, 4)
    t:fit(m, l)
    assert.are.equal(4, t.global_step) -- two optimizer steps per batch
    assert.are.same({on_before_backward = 4, on_after_backward = 4, on_before_optimizer_step = 4}, m.calls)
    assert.are.equal(0.1, t.optimizers[1].param_groups[1].lr) -- the scheduler was not stepped
    -- the same updates by hand
    local o1, o2 = optim.SGD(ref_a:parameters(), {lr = 0.1}), optim.SGD(ref_b:parameters(), {lr = 0.05})
    for _, batch in l:iter() do
      local loss = ml.F.mse_loss(ref_b(ref_a(batch[1])), batch[2])
      o1:zero_grad(); loss:backward(); o1:step()
      local loss2 = ref_b(ref_a(batch[1]):detach()):square():mean()
      o2:zero_grad(); loss2:backward(); o2:step()
    end
    assert.are.equal(0, (ref_a.weight - m.a.weight):abs():max():item())
    assert.are.equal(0, (ref_b.weight - m.b.weight):abs():max():item())
    -- one row per batch, at the batch count (Lightning logs manual steps per batch)
    local steps = {}
    for _, r in ipairs(history.read(logger.metrics_file).rows) do
      if r.g_loss then steps[#steps + 1] = r.step end
    end
    assert.are.same({0, 1}, steps)
  end)

  it("self:lr_schedulers() steps when the module says so", function()
    local t = trainer({max_epochs = 1})
    t:fit(gan({sched = true}), loader(8, 4))
    assert.are.equal(0.1 * 0.25, t.optimizers[1].param_groups[1].lr)
  end)

  it("refuses automatic clipping and accumulation, and manual_backward in automatic mode", function()
    local ok, e = pcall(function() trainer({gradient_clip_val = 1.0}):fit(gan(), loader(8, 4)) end)
    assert.matches("Automatic gradient clipping is not supported for manual optimization", e, 1, true)
    ok, e = pcall(function() trainer({accumulate_grad_batches = 2}):fit(gan(), loader(8, 4)) end)
    assert.matches("Automatic gradient accumulation is not supported for manual optimization", e, 1, true)
    local m = module(function(self) return optim.SGD(self:parameters(), {lr = 0.1}) end, function(M)
      function M:training_step(batch)
        local loss = ml.F.mse_loss(self(batch[1]), batch[2])
        self:manual_backward(loss)
        return loss
      end
    end)
    ok, e = pcall(function() trainer():fit(m, loader(8, 4)) end)
    assert.is_false(ok)
    assert.matches("To use manual_backward, please disable automatic optimization", e, 1, true)
  end)
end)
