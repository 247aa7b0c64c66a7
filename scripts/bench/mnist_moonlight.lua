-- Benchmark variant of the reference experiment (scripts/mnist_custom_loss.lua): the
-- same work through the Trainer (784-64-32-10 MLP, softmax, one-hot targets, the
-- user's MSE and error written with tensor ops, Adam 1e-3, batch 128, the test set as
-- validation after each epoch, a CSVLogger, the default ModelCheckpoint), without the
-- printouts that are not training (summary, per-epoch table, curves.png); then the
-- accuracy on the test set. Prints one machine-readable line at the end:
--
--   BENCH train_s=a,b,c val_s=a,b,c val_loss=... accuracy=... peak_rss=BYTES ...
--
--   build/moonlight scripts/bench/mnist_moonlight.lua [--data DIR] [--epochs N]
--       [--logs DIR] [--seed N] [--limit_train_batches N] [--limit_val_batches N]
local ml = require "moonlight"
local nn, optim, data = ml.nn, ml.optim, ml.data
local clock = ml._sys.clock

local opts = {data = "data/mnist", epochs = 3, logs = "logs/bench", seed = 0}
do
  local i = 1
  while arg and arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k or arg[i + 1] == nil or opts[k] == nil and k ~= "limit_train_batches" and k ~= "limit_val_batches" then
      error("usage: mnist_moonlight.lua [--data DIR] [--epochs N] [--logs DIR] [--seed N] " ..
            "[--limit_train_batches N] [--limit_val_batches N]", 0)
    end
    opts[k] = math.tointeger(tonumber(arg[i + 1])) or tonumber(arg[i + 1]) or arg[i + 1]
    i = i + 2
  end
end
ml.manual_seed(opts.seed)

local t_load = clock()
local T = data.transforms
local train_data = data.MNIST(opts.data, {train = true, transform = T.ToTensor(), target_transform = T.OneHot(10)})
local test_data = data.MNIST(opts.data, {train = false, transform = T.ToTensor(), target_transform = T.OneHot(10)})
local train_loader = data.DataLoader(train_data, {batch_size = 128, shuffle = true})
local test_loader = data.DataLoader(test_data, {batch_size = 128})
t_load = clock() - t_load

local Model = nn.Module:extend("Model")
function Model:init()
  self.flatten = nn.Flatten()
  self.linear1 = nn.Linear(28 * 28, 64)
  self.relu1 = nn.ReLU()
  self.linear2 = nn.Linear(64, 32)
  self.relu2 = nn.ReLU()
  self.linear3 = nn.Linear(32, 10)
  self.softmax = nn.Softmax(2)
end
function Model:forward(x)
  x = self.flatten(x)
  x = self.relu1(self.linear1(x))
  x = self.relu2(self.linear2(x))
  return self.softmax(self.linear3(x))
end

local function custom_loss(y_pred, y_true) return ml.mean(ml.square(y_pred - y_true)) end
local function custom_error(y_pred, y_true) return ml.abs(ml.mean(y_true - y_pred)) end

local myModel = nn.Module:extend("myModel")
function myModel:init() self.layers = Model() end
function myModel:forward(x) return self.layers(x) end
function myModel:training_step(batch)
  local y_pred = self.layers(batch[1])
  local loss = custom_loss(y_pred, batch[2])
  self:log_dict({loss = loss, error = custom_error(y_pred, batch[2])})
  return loss
end
function myModel:validation_step(batch)
  local y_pred = self.layers(batch[1])
  self:log_dict({val_loss = custom_loss(y_pred, batch[2]), val_error = custom_error(y_pred, batch[2])})
end
function myModel:configure_optimizers() return optim.Adam(self:parameters(), {lr = 1e-3}) end

-- per-epoch times: the Trainer measures the training loop and the validation pass
local train_s, val_s, val_loss = {}, {}, {}
local timer = {}
function timer.on_train_epoch_end(_, trainer)
  train_s[#train_s + 1] = trainer._train_epoch_time
  val_s[#val_s + 1] = trainer._val_time or 0
  local vl = trainer.callback_metrics.val_loss
  val_loss[#val_loss + 1] = vl and (ml.is_tensor(vl) and vl:item() or vl) or 0 / 0
end

local model = myModel()
local logger = ml.loggers.CSVLogger(opts.logs, {name = "moonlight"})
local trainer = ml.Trainer({max_epochs = opts.epochs, logger = logger, callbacks = {timer},
                            enable_model_summary = false, limit_train_batches = opts.limit_train_batches,
                            limit_val_batches = opts.limit_val_batches})
local t_fit = clock()
trainer:fit(model, train_loader, test_loader)
t_fit = clock() - t_fit

local t_acc = clock()
local acc = ml.metrics.Accuracy({task = "multiclass", num_classes = 10})
model:eval()
ml.no_grad(function()
  for _, batch in test_loader:iter() do acc:update(model(batch[1]), batch[2]:argmax(2)) end
end)
local accuracy = acc:compute():item()
t_acc = clock() - t_acc

local function list(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = string.format("%.6f", x) end
  return table.concat(s, ",")
end
print(string.format("BENCH impl=moonlight epochs=%d train_s=%s val_s=%s val_losses=%s val_loss=%.9g " ..
                    "accuracy=%.6f load_s=%.6f fit_s=%.6f acc_s=%.6f peak_rss=%d log=%s",
                    #train_s, list(train_s), list(val_s), list(val_loss), val_loss[#val_loss] or 0 / 0,
                    accuracy, t_load, t_fit, t_acc, ml._sys.peak_rss(), logger.log_dir .. "/metrics.csv"))
