-- Checkpoints and inference (issue 18, 1): Model:load_from_checkpoint (the
-- hyperparameters save_hyperparameters kept, the weights, overrides),
-- ModelCheckpoint's best_model_path / best_model_score / best_k_models /
-- kth_best_model_path / last_model_path, trainer:validate / test / predict with
-- ckpt_path = "best" | "last" | a path, and trainer:predict's outputs.
local ml = require "moonlight"
local nn, optim, data = ml.nn, ml.optim, ml.data
local history = require "moonlight.history"
local tmpdir = require("test_util").tmpdir

-- y = x @ w + noise
local function dataset(n, seed)
  ml.manual_seed(seed)
  local x = ml.randn({n, 4})
  local y = x:matmul(ml.tensor({{1}, {-2}, {0.5}, {3}})) + ml.randn({n, 1}) * 0.1
  return data.TensorDataset(x, y)
end

-- init(in_dim, hidden, lr): save_hyperparameters() keeps the three by name
local Net = nn.Module:extend("CkNet")
function Net:init(in_dim, hidden, lr)
  self:save_hyperparameters()
  self.fc1 = nn.Linear(in_dim, hidden)
  self.act = nn.ReLU()
  self.fc2 = nn.Linear(hidden, 1)
end
function Net:forward(x) return self.fc2(self.act(self.fc1(x))) end
function Net:training_step(batch)
  local loss = ml.F.mse_loss(self(batch[1]), batch[2])
  self:log("train_loss", loss)
  return loss
end
function Net:validation_step(batch) self:log("val_loss", ml.F.mse_loss(self(batch[1]), batch[2])) end
function Net:test_step(batch) self:log("test_loss", ml.F.mse_loss(self(batch[1]), batch[2])) end
function Net:configure_optimizers() return optim.SGD(self:parameters(), {lr = self.hparams.lr}) end

-- init(opts): save_hyperparameters(opts) keeps the table
local OptsNet = nn.Module:extend("OptsNet")
function OptsNet:init(opts)
  self:save_hyperparameters(opts)
  self.fc = nn.Linear(opts.in_dim, opts.out_dim)
end
function OptsNet:forward(x) return self.fc(x) end
function OptsNet:training_step(batch) return ml.F.mse_loss(self(batch[1]), batch[2]) end
function OptsNet:configure_optimizers() return optim.Adam(self:parameters(), {lr = 1e-2}) end

local function quiet_trainer(dir, opts)
  local o = {max_epochs = 4, logger = ml.loggers.CSVLogger(dir, {name = "run"}), log_every_n_steps = 1,
             enable_progress_bar = false, enable_model_summary = false, num_sanity_val_steps = 0}
  for k, v in pairs(opts or {}) do o[k] = v end
  return ml.Trainer(o)
end

local function same_tensor(a, b, what)
  assert.are.same(a:shape(), b:shape(), what)
  local d = (a - b):abs():max():item()
  assert.are.equal(0, d, what .. ": max difference " .. d)
end

describe("ModelCheckpoint and load_from_checkpoint", function()
  local dir, trainer, model, cp, val_loader, per_epoch
  setup(function()
    dir = tmpdir()
    ml.manual_seed(1)
    model = Net(4, 8, 0.05)
    cp = ml.callbacks.ModelCheckpoint({monitor = "val_loss", save_top_k = 2, save_last = true,
                                       dirpath = dir .. "/ck", filename = "{epoch}-{val_loss:.4f}"})
    trainer = quiet_trainer(dir, {callbacks = {cp}})
    val_loader = data.DataLoader(dataset(32, 4), {batch_size = 16})
    trainer:fit(model, data.DataLoader(dataset(64, 3), {batch_size = 16, shuffle = true}), val_loader)
    per_epoch = history.per_epoch(history.read(trainer.logger.metrics_file))
  end)

  it("keeps the best k with their scores, the best and the k-th, and the last", function()
    assert.are.equal(4, #per_epoch)
    local scores = {}
    for e = 1, 4 do scores[e] = per_epoch[e].val_loss end
    local sorted = {table.unpack(scores)}
    table.sort(sorted)
    assert.are.equal(sorted[1], cp.best_model_score)
    assert.are.equal(sorted[2], cp.kth_value)
    local n = 0
    for path, score in pairs(cp.best_k_models) do
      n = n + 1
      assert.are.equal("file", ml._sys.kind(path))
      assert.is_true(score == sorted[1] or score == sorted[2])
    end
    assert.are.equal(2, n)
    assert.are.equal(sorted[1], cp.best_k_models[cp.best_model_path])
    assert.are.equal(sorted[2], cp.best_k_models[cp.kth_best_model_path])
    -- the file name carries the epoch and the score
    local best_epoch
    for e = 1, 4 do if scores[e] == sorted[1] then best_epoch = e - 1 end end
    assert.matches("/ck/epoch=" .. best_epoch .. "%-val_loss=%d%.%d%d%d%d%.safetensors$", cp.best_model_path)
    assert.are.equal(dir .. "/ck/last.safetensors", cp.last_model_path)
    assert.are.equal("file", ml._sys.kind(cp.last_model_path))
    -- the two others were removed
    local files = ml._sys.listdir(dir .. "/ck")
    assert.are.equal(3, #files)
  end)

  it("builds the model from its hyperparameters and weights: the same outputs", function()
    local x = ml.randn({5, 4})
    local loaded = Net:load_from_checkpoint(cp.last_model_path)
    assert.are.same({in_dim = 4, hidden = 8, lr = 0.05}, loaded.hparams)
    loaded:eval()
    model:eval()
    same_tensor(loaded(x), model(x), "last checkpoint vs trained model")
    -- overrides replace saved hyperparameters
    local other = Net:load_from_checkpoint(cp.best_model_path, {lr = 0.5})
    assert.are.equal(0.5, other.hparams.lr)
    assert.are.equal(8, other.hparams.hidden)
    -- a structural override that does not fit the weights fails, naming the shapes
    local ok, err = pcall(Net.load_from_checkpoint, Net, cp.best_model_path, {hidden = 3})
    assert.is_false(ok)
    assert.matches("shape", err)
    -- on an instance: Lightning's message
    ok, err = pcall(function() return model:load_from_checkpoint(cp.best_model_path) end)
    assert.is_false(ok)
    assert.matches("cannot be called on an instance", err)
    ok, err = pcall(function() return Net:load_from_checkpoint(dir .. "/nope.safetensors") end)
    assert.matches("load_from_checkpoint: checkpoint '.*nope.safetensors' does not exist", err)
  end)

  it("validate / test with ckpt_path: best, last, a path", function()
    local best_model = Net:load_from_checkpoint(cp.best_model_path)
    local fresh = ml.Trainer({logger = false, enable_progress_bar = false, enable_model_summary = false,
                              enable_checkpointing = false})
    local expected = fresh:validate(best_model, val_loader, {verbose = false}).val_loss
    assert.are.equal(cp.best_model_score, expected)
    -- the trained model's own trainer: its weights replaced by the best checkpoint's
    local m = trainer:validate(model, val_loader, {ckpt_path = "best", verbose = false})
    assert.are.equal(expected, m.val_loss)
    local t = trainer:test(model, val_loader, {ckpt_path = cp.best_model_path, verbose = false})
    assert.are.equal(expected, t.test_loss)
    local last = trainer:validate(model, val_loader, {ckpt_path = "last", verbose = false})
    assert.are.equal(per_epoch[4].val_loss, last.val_loss)
    -- best without a ModelCheckpoint
    local ok, err = pcall(fresh.validate, fresh, model, val_loader, {ckpt_path = "best"})
    assert.is_false(ok)
    assert.matches('validate: ckpt_path="best" is set but `ModelCheckpoint` is not configured', err, 1, true)
  end)

  it("predict: one output per batch, the model's forward, eval mode and no graph", function()
    local loader = data.DataLoader(dataset(37, 9), {batch_size = 16})
    model:train()
    local preds = trainer:predict(model, loader)
    assert.are.equal(3, #preds)
    assert.are.same({16, 1}, preds[1]:shape())
    assert.are.same({5, 1}, preds[3]:shape())
    assert.is_false(preds[1].requires_grad)
    assert.is_true(model.training) -- the mode is put back
    model:eval()
    local i = 0
    for _, batch in loader:iter() do
      i = i + 1
      same_tensor(preds[i], model(batch[1]), "batch " .. i)
    end
    -- from the best checkpoint
    local best = trainer:predict(model, loader, {ckpt_path = "best"})
    local best_model = Net:load_from_checkpoint(cp.best_model_path)
    best_model:eval()
    same_tensor(best[2], best_model(dataset(37, 9).tensors[1]:narrow(1, 17, 16)), "best, batch 2")
    assert.is_nil(trainer:predict(model, loader, {return_predictions = false}))
    -- limit_predict_batches
    local lim = ml.Trainer({logger = false, enable_progress_bar = false, enable_model_summary = false,
                            enable_checkpointing = false, limit_predict_batches = 2})
    assert.are.equal(2, #lim:predict(model, loader))
  end)
end)

describe("save_hyperparameters and load_from_checkpoint with an options table", function()
  it("passes the saved table back to init", function()
    local dir = tmpdir()
    ml.manual_seed(2)
    local m = OptsNet({in_dim = 4, out_dim = 2, note = "a"})
    assert.are.same({in_dim = 4, out_dim = 2, note = "a"}, m.hparams)
    local cp = ml.callbacks.ModelCheckpoint({dirpath = dir})
    local tr = quiet_trainer(dir, {max_epochs = 1, callbacks = {cp}})
    local x = ml.randn({16, 4})
    tr:fit(m, data.DataLoader(data.TensorDataset(x, ml.randn({16, 2})), {batch_size = 8}))
    local loaded = OptsNet:load_from_checkpoint(cp.best_model_path, {note = "b", map_location = "cpu"})
    assert.are.same({in_dim = 4, out_dim = 2, note = "b"}, loaded.hparams)
    same_tensor(loaded(x), m(x), "OptsNet")
    -- hparams.yaml has them too
    local f = assert(io.open(tr.logger.log_dir .. "/hparams.yaml"))
    assert.are.equal("in_dim: 4\nnote: a\nout_dim: 2\n", f:read("a"))
    f:close()
  end)

  it("save_weights_only: no optimizer state, enough to load the model", function()
    local dir = tmpdir()
    ml.manual_seed(3)
    local m = OptsNet({in_dim = 4, out_dim = 1})
    local cp = ml.callbacks.ModelCheckpoint({dirpath = dir, save_weights_only = true})
    local x = ml.randn({8, 4})
    quiet_trainer(dir, {max_epochs = 1, callbacks = {cp}}):fit(m, data.DataLoader(
      data.TensorDataset(x, ml.randn({8, 1})), {batch_size = 4}))
    local ckpt = ml.callbacks.read_checkpoint(cp.best_model_path)
    assert.are.same({}, ckpt.optimizer_states)
    assert.are.equal(2, ckpt.global_step)
    same_tensor(OptsNet:load_from_checkpoint(cp.best_model_path)(x), m(x), "weights only")
  end)

  it("strict = false loads a checkpoint with keys the model lacks", function()
    local dir = tmpdir()
    local Big = nn.Module:extend("Big")
    function Big:init(opts) self:save_hyperparameters(opts); self.fc = nn.Linear(2, 2); self.extra = nn.Linear(2, 1) end
    function Big:training_step(batch) return self.fc(batch[1]):sum() + self.extra(batch[1]):sum() end
    function Big:configure_optimizers() return optim.SGD(self:parameters(), {lr = 0.1}) end
    local cp = ml.callbacks.ModelCheckpoint({dirpath = dir})
    quiet_trainer(dir, {max_epochs = 1, callbacks = {cp}}):fit(Big({}), data.DataLoader(
      data.TensorDataset(ml.ones({2, 2})), {batch_size = 2}))
    local Small = nn.Module:extend("Small")
    function Small:init() self.fc = nn.Linear(2, 2) end
    local ok, err = pcall(Small.load_from_checkpoint, Small, cp.best_model_path)
    assert.is_false(ok)
    assert.matches("extra", err)
    local s = Small:load_from_checkpoint(cp.best_model_path, {strict = false})
    assert.is_not_nil(s.fc)
  end)
end)
