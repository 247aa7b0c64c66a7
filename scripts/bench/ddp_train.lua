-- One training epoch for scripts/bench/ddp.sh (MNIST, global batch 128, no
-- validation): `moonlight ddp_train.lua single [mlp|cnn]` or
-- `mpirun -np N moonlight ddp_train.lua ddp [mlp|cnn]`.
--   mlp: the reference experiment (784-64-32-10 MLP, softmax, custom MSE, Adam 1e-3);
--   cnn: the layers issue's MNIST CNN (scripts/bench/cnn.lua's model: two
--        Conv2d-BatchNorm2d-ReLU-MaxPool2d blocks, Linear-ReLU-Dropout-Linear,
--        cross_entropy, Adam 1e-3).
-- Prints, on rank 0,
-- "BENCH mode=... model=... world=N threads=T epoch_s=... step_ms=... wait_ms=..."
-- (epoch_s: the training epoch as the Trainer times it; wait_ms: the time per
-- step the gradient reducer waited for its all-reduces after backward).
local ml = require "moonlight"
local nn, F, optim, data = ml.nn, ml.F, ml.optim, ml.data
local mode = arg[1] or "single"
local which = arg[2] or "mlp"
if which ~= "mlp" and which ~= "cnn" then error("ddp_train.lua: model must be mlp or cnn, got " .. which, 0) end
local ddp = mode == "ddp"
local world = ddp and ml.distributed.world_size() or 1
ml.manual_seed(42)
local tf = data.transforms
local train = data.MNIST("data/mnist", {train = true, transform = tf.ToTensor(),
                                        target_transform = which == "mlp" and tf.OneHot(10) or nil})

-- the reference MLP (784-64-32-10, softmax output) of the specs, with the steps below
local Model = dofile("tests/lua/reference_model.lua").Model
function Model:training_step(batch)
  local loss = ((self(batch[1]) - batch[2]) ^ 2):mean()
  self:log("train_loss", loss)
  return loss
end
function Model:configure_optimizers() return optim.Adam(self:parameters(), {lr = 1e-3}) end

local CNN = nn.Module:extend("CNN")
function CNN:init()
  self.features = nn.Sequential(
    nn.Conv2d(1, 16, 3, {padding = 1}), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, {padding = 1}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
  self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(128, 10))
end
function CNN:forward(x) return self.classifier(self.features(x)) end
function CNN:training_step(batch)
  local loss = F.cross_entropy(self(batch[1]), batch[2])
  self:log("train_loss", loss)
  return loss
end
CNN.configure_optimizers = Model.configure_optimizers

local model = which == "mlp" and Model() or CNN()
local trainer = ml.Trainer({max_epochs = 1, strategy = ddp and "ddp" or nil, accelerator = "cpu", logger = false,
                            enable_checkpointing = false, enable_progress_bar = false,
                            enable_model_summary = false})
trainer:fit(model, data.DataLoader(train, {batch_size = 128 // world, shuffle = true}))
local steps = trainer.global_step
local wait = trainer._reducer_stats and trainer._reducer_stats.wait_s or 0
if not ddp or ml.distributed.rank() == 0 then
  print(string.format("BENCH mode=%s model=%s world=%d threads=%d epoch_s=%.4f step_ms=%.4f wait_ms=%.4f loss=%.5f",
    mode, which, world, ml.get_num_threads(), trainer._train_epoch_time, 1000 * trainer._train_epoch_time / steps,
    1000 * wait / steps, trainer.callback_metrics.train_loss))
end
