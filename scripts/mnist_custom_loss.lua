-- The reference experiment: the PyTorch Lightning tutorial "custom loss" on MNIST,
-- line for line in Lua. A 784-64-32-10 MLP with a softmax output, one-hot targets,
-- a user-written MSE loss and a logged `error`, Adam (lr 1e-3), batch 128, the test
-- set as validation, 3 epochs, a CSVLogger and a torchinfo summary.
--
--   build/moonlight scripts/mnist_custom_loss.lua [--data data/mnist] [--epochs 3] [--seed N]
--       [--accelerator auto|cpu|cuda] [--limit_batches N (train, validation and test)]
local ml = require "moonlight"
local nn, optim, data = ml.nn, ml.optim, ml.data

local opts = {data = "data/mnist", epochs = 3, seed = nil, logs = "logs", accelerator = "auto",
              limit_batches = nil}
do
  local i = 1
  while arg and arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k or arg[i + 1] == nil then error("usage: mnist_custom_loss.lua [--data DIR] [--epochs N] [--seed N] [--logs DIR] " ..
                                                        "[--accelerator A] [--limit_batches N]") end
    opts[k] = tonumber(arg[i + 1]) or arg[i + 1]
    i = i + 2
  end
end
if opts.seed then ml.manual_seed(opts.seed) end

-- class Onehot: np.eye(10)[y]. The built-in OneHot(10) is the same transform,
-- applied in C to a whole batch.
local Onehot = function() return data.transforms.OneHot(10) end

local train_data = data.MNIST(opts.data, {train = true, transform = data.transforms.ToTensor(),
                                          target_transform = Onehot()})
local test_data = data.MNIST(opts.data, {train = false, transform = data.transforms.ToTensor(),
                                         target_transform = Onehot()})
local train_loader = data.DataLoader(train_data, {batch_size = 128, shuffle = true})
local test_loader = data.DataLoader(test_data, {batch_size = 128})

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

-- the user's own loss and error, from tensor ops: autograd differentiates them
local function custom_loss(y_pred, y_true)
  return ml.mean(ml.square(y_pred - y_true))
end
local function custom_error(y_pred, y_true)
  return ml.abs(ml.mean(y_true - y_pred))
end

local myModel = nn.Module:extend("myModel")
function myModel:init()
  self.layers = Model()
end
function myModel:forward(x) return self.layers(x) end
function myModel:training_step(batch, batch_idx)
  local x, y = batch[1], batch[2]
  local y_pred = self.layers(x)
  local loss = custom_loss(y_pred, y)
  local error = custom_error(y_pred, y)
  self:log_dict({loss = loss, error = error})
  return loss
end
function myModel:validation_step(batch, batch_idx)
  local x, y = batch[1], batch[2]
  local y_pred = self.layers(x)
  local loss = custom_loss(y_pred, y)
  local error = custom_error(y_pred, y)
  self:log_dict({val_loss = loss, val_error = error})
end
function myModel:configure_optimizers()
  return optim.Adam(self:parameters(), {lr = 1e-3})
end

local model = myModel()
local logger = ml.loggers.CSVLogger(opts.logs, {name = "custom_loss_model"})
local trainer = ml.Trainer({max_epochs = opts.epochs, logger = logger, plot = true,
                            accelerator = opts.accelerator, limit_train_batches = opts.limit_batches,
                            limit_val_batches = opts.limit_batches})
trainer:fit(model, train_loader, test_loader)

print(ml.summary(model, {input_size = {8, 1, 28, 28}}))

-- metrics.groupby("epoch").last(), as the tutorial reads metrics.csv with pandas
local history = require "moonlight.history"
local h = history.read(trainer.logger.log_dir .. "/metrics.csv")
print(history.format_table(history.per_epoch(h), h.columns))

-- accuracy on the test set (not logged, so metrics.csv keeps the tutorial's columns)
local acc = ml.metrics.Accuracy({task = "multiclass", num_classes = 10})
model:eval()
ml.no_grad(function()
  for i, batch in test_loader:iter() do
    if opts.limit_batches and i > opts.limit_batches then break end
    acc:update(model(batch[1]:to(trainer.device)):cpu(), batch[2]:argmax(2))
  end
end)
print(string.format("val_accuracy: %.4f", acc:compute():item()))
print("logs: " .. trainer.logger.log_dir .. " (metrics.csv, hparams.yaml, curves.png, checkpoints/)")
