-- The distributed tests' training run (tests/dist/run.sh): the reference MLP
-- (784-64-32-10, softmax, the tutorial's custom MSE, Adam 1e-3) on the first
-- 5120 MNIST training images, validated on the first 1024 test images.
--
--   moonlight train.lua single OUT [shuffle]   one process, batch 128
--   mpirun -np 2 moonlight train.lua ddp OUT [shuffle]
--                                              strategy "ddp", 64 per rank: the
--                                              same global batches of 128
--   ... train.lua fail OUT                     rank 1 raises at its 3rd step
--
-- With "shuffle", the single process reads each epoch in the order a
-- DistributedSampler of one replica draws (seed 7 + epoch), which is the order
-- whose [r::2] shards the two ranks read: the same global batches again.
-- Writes OUT/weights.safetensors (rank 0), OUT/report_rank<r>.lua (every rank:
-- what it logged, saved and saw) and the logs under OUT/logs.
local ml = require "moonlight"
local nn, F, optim, data = ml.nn, ml.F, ml.optim, ml.data

local mode, out, order = arg[1], arg[2], arg[3]
-- DIST_TEST_ACCELERATOR=cuda: the same on the GPU (scripts/gpu-check.sh), or on the
-- emulated GPU (ctest dist.mpirun_cuda_emu: ranks sharing one device go through
-- host memory)
local accelerator = os.getenv("DIST_TEST_ACCELERATOR") or "cpu"
assert(mode == "single" or mode == "ddp" or mode == "fail", "usage: train.lua single|ddp|fail OUT [shuffle]")
local shuffle = order == "shuffle"
ml.set_num_threads(1)
ml.manual_seed(42)

local mnist = data.MNIST("data/mnist", {train = true})
local test = data.MNIST("data/mnist", {train = false})
local function tensors(ds, n)
  return ds.data:narrow(1, 1, n):float() / 255, F.one_hot(ds.targets:narrow(1, 1, n), 10):float()
end
local train_ds = data.TensorDataset(tensors(mnist, 5120))
local val_ds = data.TensorDataset(tensors(test, 1024))

-- the reference MLP (784-64-32-10, softmax output) of the specs, with the steps below
local Model = dofile("tests/lua/reference_model.lua").Model
local function custom_mse(a, b) return ((a - b) ^ 2):mean() end

local rank = ml.distributed.rank()
local steps = 0
function Model:training_step(batch)
  steps = steps + 1
  if mode == "fail" and rank == 1 and steps == 3 then error("a failure on purpose at step 3") end
  local loss = custom_mse(self(batch[1]), batch[2])
  self:log("train_loss", loss)
  -- reductions over the ranks: rank 0 logs 0, rank 1 logs 1
  self:log("r_mean", rank, {on_step = false, on_epoch = true, sync_dist = true})
  self:log("r_sum", rank, {on_step = false, on_epoch = true, sync_dist = true, reduce_fx = "sum"})
  self:log("r_max", rank, {on_step = false, on_epoch = true, sync_dist = true, reduce_fx = "max"})
  self:log("r_step", rank, {on_step = true, on_epoch = false, sync_dist = true})
  self:log("r_local", rank, {on_step = false, on_epoch = true})
  return loss
end
function Model:validation_step(batch)
  self:log("val_loss", custom_mse(self(batch[1]), batch[2]))
end
function Model:configure_optimizers() return optim.Adam(self:parameters(), {lr = 1e-3}) end

-- counts what reaches the files: the logger's rows and the checkpoints written
local logged, saved = 0, 0
local csv = ml.loggers.CSVLogger(out .. "/logs", {name = "run"})
local counting = setmetatable({log_metrics = function(self, m, step)
  logged = logged + 1
  return csv.log_metrics(csv, m, step)
end}, {__index = csv})
local real_save = ml.save
rawset(ml, "save", function(...) saved = saved + 1 return real_save(...) end)

local per_rank = mode == "single" and 128 or 64
local train_opts = {batch_size = per_rank}
if mode == "single" and shuffle then
  train_opts.sampler = data.DistributedSampler(train_ds, {num_replicas = 1, rank = 0, shuffle = true, seed = 7})
else
  train_opts.shuffle = shuffle
end
local train = data.DataLoader(train_ds, train_opts)
local val = data.DataLoader(val_ds, {batch_size = per_rank})

local model = Model()
-- ranks other than 0 start from other weights: the broadcast must make them equal
if mode ~= "single" and rank ~= 0 then ml.manual_seed(1000 + rank); model = Model() end
local trainer = ml.Trainer({
  max_epochs = 2, strategy = mode ~= "single" and "ddp" or nil, devices = mode ~= "single" and 2 or nil,
  accelerator = accelerator, logger = counting, log_every_n_steps = 10, num_sanity_val_steps = 0,
  enable_progress_bar = false, enable_model_summary = false, seed = mode ~= "single" and 7 or nil,
  callbacks = {ml.callbacks.ModelCheckpoint({dirpath = out .. "/ckpt", save_last = true, monitor = "val_loss",
                                            save_top_k = 2})},
})
trainer:fit(model, train, val)
-- every rank reads the best checkpoint rank 0 wrote
local best = trainer.checkpoint_callback.best_model_path
local restored = trainer:validate(Model(), val, {ckpt_path = "best", verbose = false}).val_loss

if rank == 0 then ml.save(model:state_dict(), out .. "/weights.safetensors") end
local cm = trainer.callback_metrics
local f = assert(io.open(string.format("%s/report_rank%d.lua", out, rank), "w"))
f:write(string.format("return {rank = %d, world = %d, logged = %d, saved = %d, steps = %d, global_step = %d, " ..
  "val_loss = %.17g, r_mean = %.17g, r_sum = %.17g, r_max = %.17g, r_step = %.17g, r_local = %.17g, " ..
  "log_dir = %q, is_global_zero = %s, batches = %d, best = %q, restored = %.17g}\n", rank,
  ml.distributed.world_size(), logged,
  saved - (rank == 0 and 1 or 0), steps, trainer.global_step, cm.val_loss, cm.r_mean, cm.r_sum, cm.r_max,
  cm.r_step, cm.r_local, csv.log_dir, tostring(trainer.is_global_zero), trainer.num_training_batches, best,
  restored))
f:close()
