-- The reference experiment, shortened, for the determinism test: a seeded run of
-- the tutorial's model (tests/lua/reference_model.lua) over `steps` shuffled
-- training batches and one full validation, logging every 10 steps; writes
-- metrics.csv under LOGS/ and the final weights to LOGS/weights.safetensors.
--
--   moonlight tests/determinism/reference_run.lua LOGS [STEPS]
package.path = "tests/lua/?.lua;" .. package.path
local ml = require "moonlight"
local data, optim = ml.data, ml.optim

local logs, steps = assert(arg[1], "usage: reference_run.lua LOGS [STEPS]"), tonumber(arg[2] or 300)
ml.manual_seed(7)
local tf, onehot = data.transforms.ToTensor(), data.transforms.OneHot(10)
local train = data.MNIST("data/mnist", {train = true, transform = tf, target_transform = onehot})
local test = data.MNIST("data/mnist", {train = false, transform = tf, target_transform = onehot})

local myModel = require("reference_model").myModel
function myModel:training_step(batch)
  local y_pred = self.layers(batch[1])
  local loss = ml.mean(ml.square(y_pred - batch[2]))
  self:log_dict({loss = loss, error = ml.abs(ml.mean(batch[2] - y_pred))})
  return loss
end
function myModel:validation_step(batch)
  local y_pred = self.layers(batch[1])
  self:log_dict({val_loss = ml.mean(ml.square(y_pred - batch[2])),
                 val_error = ml.abs(ml.mean(batch[2] - y_pred))})
end
function myModel:configure_optimizers() return optim.Adam(self:parameters(), {lr = 1e-3}) end

local model = myModel()
local trainer = ml.Trainer({max_epochs = 1, limit_train_batches = steps, log_every_n_steps = 10,
                            logger = ml.loggers.CSVLogger(logs, {name = "run", version = 0}),
                            enable_progress_bar = false, enable_model_summary = false,
                            enable_checkpointing = false})
trainer:fit(model, data.DataLoader(train, {batch_size = 128, shuffle = true}),
            data.DataLoader(test, {batch_size = 128}))
ml.save(model:state_dict(), logs .. "/weights.safetensors")
