-- The run tests/crash/run.sh kills: a small model on a small shuffled dataset with
-- dropout, a checkpoint (top-1 and last) every epoch, a metrics.csv row every step,
-- so that a kill at a random moment often lands in a write. Each run resumes from
-- the last checkpoint when there is one.
--   moonlight train.lua DIR MAX_EPOCHS [fresh]
-- prints the final weights (hex floats) when it gets to the end.
local ml = require "moonlight"
local nn, data = ml.nn, ml.data
local dir, max_epochs, fresh = arg[1], tonumber(arg[2]), arg[3] == "fresh"

ml.manual_seed(7)
local x = ml.randn({32, 4})
local y = x:matmul(ml.tensor({{1}, {-2}, {0.5}, {3}})) + ml.randn({32, 1}) * 0.1
local Net = nn.Module:extend("Net")
function Net:init()
  self.fc1 = nn.Linear(4, 8); self.drop = nn.Dropout(0.1); self.fc2 = nn.Linear(8, 1)
end
function Net:forward(v) return self.fc2(self.drop(self.fc1(v):relu())) end
function Net:training_step(b)
  local loss = ml.F.mse_loss(self(b[1]), b[2])
  self:log("loss", loss)
  return loss
end
function Net:validation_step(b) self:log("val_loss", ml.F.mse_loss(self(b[1]), b[2])) end
function Net:configure_optimizers()
  -- a scheduler too: its state must come back with the rest
  local opt = ml.optim.Adam(self:parameters(), {lr = 1e-2})
  return {{opt}, {ml.optim.lr_scheduler.StepLR(opt, {step_size = 5, gamma = 0.95})}}
end

local ds = data.TensorDataset(x, y)
local train = data.DataLoader(ds, {batch_size = 4, shuffle = true})
local val = data.DataLoader(ds, {batch_size = 16})
local checkpoint = ml.callbacks.ModelCheckpoint({dirpath = dir .. "/ckpt", save_last = true})
local trainer = ml.Trainer({max_epochs = max_epochs, log_every_n_steps = 1, num_sanity_val_steps = 0,
                            enable_progress_bar = false, enable_model_summary = false,
                            logger = ml.loggers.CSVLogger(dir, {name = "logs"}), callbacks = {checkpoint}})
local model = Net()
local resume = not fresh and ml._sys.kind(dir .. "/ckpt/last.safetensors") and "last" or nil
trainer:fit(model, train, val, {ckpt_path = resume})
local out = {}
for _, p in ipairs(model:parameters()) do
  for _, v in ipairs(p:reshape({-1}):totable()) do out[#out + 1] = string.format("%a", v) end
end
print("weights " .. table.concat(out, ","))
