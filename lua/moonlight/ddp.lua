-- The Trainer's data-parallel strategy (Trainer{strategy = "ddp", devices = N,
-- num_nodes = M}): what trainer.lua calls at the few places where a distributed
-- fit differs from a single process. One process per device, each with its own
-- Lua runtime, started by `mpirun -np N*M moonlight train.lua`:
--
--   * setup: MPI's world must be devices * num_nodes processes; a CUDA run takes
--     the GPU of its local rank;
--   * the weights (parameters and buffers) are broadcast from rank 0 before
--     configure_optimizers, so every rank starts alike;
--   * every loader gets a DistributedSampler (Lightning's sampler insertion):
--     rank r reads indices[r::world] of each epoch's (seeded) order, padded;
--   * gradients are averaged during backward by the bucketed reducer (src/ddp.c);
--   * rank 0 alone logs, checkpoints, prints the summary and the progress bar;
--   * evaluation metrics, and training metrics logged with sync_dist = true, are
--     reduced over the ranks;
--   * should_stop (EarlyStopping, max_time, a stop request) is one decision for
--     all ranks, reduced after every step;
--   * an error on one rank ends the whole job (MPI_Abort).
-- docs/DISTRIBUTED.md is the guide; docs/ARCHITECTURE.md has the reasons.
local core = require "moonlight.core"
local util = require "moonlight.util"

local ddp = {}

local dist = core._distributed

-- The strategy option: "single_device" (one process), "ddp" / DDPStrategy{...},
-- or nil / "auto": ddp when asked for several devices or nodes (Lightning's
-- choice), or when a launcher started several processes (each would otherwise
-- train alone, into the same log directory); else one process. Returns the
-- strategy object (nil for one process).
function ddp.parse_strategy(s, devices, num_nodes)
  if s == "single_device" then return nil end
  local distributed = require "moonlight.distributed"
  if s == nil or s == "auto" then
    local several = (math.type(devices) == "integer" and devices > 1) or
                    (type(devices) == "table" and #devices > 1) or
                    (math.type(num_nodes) == "integer" and num_nodes > 1) or
                    (dist.is_launched() and dist.world_size() > 1)
    return several and distributed.strategies.DDPStrategy() or nil
  end
  if s == "ddp" then return distributed.strategies.DDPStrategy() end
  if distributed.strategies.is_strategy(s) then return s end
  error("Trainer: unknown strategy " .. (type(s) == "string" and ("'" .. s .. "'") or util.typename(s)) ..
    " (expected \"auto\", \"ddp\" or ml.strategies.DDPStrategy{...})", 3)
end

-- Starts the process group and checks the world against devices * num_nodes.
-- Fills trainer.global_rank, local_rank, world_size, node_rank, num_nodes,
-- num_devices, is_global_zero. accelerator: what the user asked for.
function ddp.setup(trainer, strategy, devices, num_nodes, accelerator)
  local ok, why = dist.is_available()
  if not ok then error("Trainer: strategy = \"ddp\" needs MPI, but " .. why:gsub("^distributed: ", ""), 3) end
  dist.init_process_group({backend = strategy.process_group_backend})
  local world = dist.world_size()
  num_nodes = num_nodes or 1
  if math.type(num_nodes) ~= "integer" or num_nodes < 1 then
    error("Trainer: num_nodes must be a positive integer, got " .. tostring(num_nodes), 3)
  end
  local per_node
  if devices == nil or devices == "auto" or devices == -1 then
    per_node = world // num_nodes
  elseif math.type(devices) == "integer" and devices >= 1 then
    per_node = devices
  elseif type(devices) == "table" then
    per_node = #devices
  else
    error("Trainer: devices must be a positive integer, -1, \"auto\" or a list, got " .. tostring(devices), 3)
  end
  if per_node * num_nodes ~= world then
    error(string.format("Trainer: strategy = \"ddp\" with devices = %d and num_nodes = %d needs %d processes, " ..
      "but this job has %d: launch it with `mpirun -np %d moonlight <script>` (with --hostfile for several " ..
      "machines; docs/DISTRIBUTED.md)", per_node, num_nodes, per_node * num_nodes, world, per_node * num_nodes), 3)
  end
  trainer.world_size = world
  trainer.global_rank = dist.rank()
  trainer.local_rank = dist.local_rank()
  trainer.node_rank = trainer.global_rank // per_node
  trainer.num_nodes = num_nodes
  trainer.num_devices = per_node
  trainer.is_global_zero = trainer.global_rank == 0
  -- a GPU per local rank (modulo the node's GPUs), chosen before CUDA starts
  if accelerator ~= "cpu" and core._cuda._set_device then
    local set_ok, err = pcall(core._cuda._set_device, trainer.local_rank)
    if not set_ok and accelerator ~= "auto" then error(err, 3) end
  end
end

-- A logger that drops everything on ranks other than 0 (Lightning's
-- rank_zero_only methods); fields (version, log_dir, ...) read through.
local RankZeroLogger = {}
RankZeroLogger.__index = function(self, k)
  local f = RankZeroLogger[k]
  if f ~= nil then return f end
  local v = rawget(self, "_inner")[k]
  if type(v) == "function" then return function() end end
  return v
end
RankZeroLogger.__name = "RankZeroLogger"
function RankZeroLogger.log_metrics() end
function RankZeroLogger.log_hyperparams() end
function RankZeroLogger.save() end
function RankZeroLogger.finalize() end

function ddp.rank_zero_logger(logger)
  if logger == nil then return nil end
  return setmetatable({_inner = logger}, RankZeroLogger)
end

-- Every rank's logger writes to rank 0's version directory (a CSVLogger picks the
-- next free version number when made: ranks could disagree).
function ddp.sync_logger_version(logger)
  local inner = logger and (rawget(logger, "_inner") or logger)
  if not inner or type(inner.version) ~= "number" or type(inner._set_version) ~= "function" then return end
  local v = core.tensor({inner.version}, {dtype = "int64"})
  dist.broadcast(v, {src = 0})
  inner:_set_version(v[1]:item())
end

-- The loader with a DistributedSampler (Lightning's _requires_distributed_sampler:
-- a DataLoader made by ml.data without a sampler of its own gets one; shuffle
-- follows the loader's). Anything else is used as it is.
function ddp.distributed_loader(trainer, loader, shuffle)
  if type(loader) ~= "table" or loader.dataset == nil or type(loader._order) ~= "function" then return loader end
  local sampler = rawget(loader, "sampler")
  if sampler ~= nil then return loader end
  local data = require "moonlight.data"
  local copy = {}
  for k, v in pairs(loader) do copy[k] = v end
  copy.sampler = data.DistributedSampler(loader.dataset, {
    num_replicas = trainer.world_size, rank = trainer.global_rank,
    shuffle = shuffle and loader.shuffle or false, seed = trainer._seed or 0})
  copy.shuffle = false
  return setmetatable(copy, getmetatable(loader))
end

-- Rank 0's parameters and buffers everywhere (every tensor of the state dict, in
-- name order: the same order on every rank).
function ddp.broadcast_model(model)
  local sd = model:state_dict()
  for _, name in ipairs(util.sorted_keys(sd)) do dist.broadcast(sd[name], {src = 0}) end
end

-- The gradient reducer over the parameters that require grad.
function ddp.reducer(model, strategy)
  local params = {}
  for _, p in ipairs(model:parameters()) do
    if p.requires_grad then params[#params + 1] = p end
  end
  if #params == 0 then return nil end
  return dist._ddp(params, math.floor(strategy.bucket_cap_mb * 1024 * 1024))
end

-- backward through fn with the reducer armed: the gradients are the averages over
-- ranks when it returns.
function ddp.backward(reducer, fn, ...)
  reducer:prepare()
  local ok, err = pcall(fn, ...)
  reducer:finish(ok)
  if not ok then error(err, 0) end
end

-- flags: a list of booleans; true where any rank has true (one collective).
function ddp.any(flags)
  local v = {}
  for i, f in ipairs(flags) do v[i] = f and 1 or 0 end
  local t = core.tensor(v, {dtype = "int64"})
  dist.all_reduce(t, {op = "max"})
  local out = {}
  for i = 1, #v do out[i] = t[i]:item() ~= 0 end
  return out
end

-- A number's sum (or max, min, mean) over the ranks.
function ddp.reduce_number(v, op)
  local t = core.tensor({v}, {dtype = "float64"})
  dist.all_reduce(t, {op = op})
  return t[1]:item()
end

-- Rank 0's number, on every rank.
function ddp.broadcast_number(v)
  local t = core.tensor({v}, {dtype = "float64"})
  dist.broadcast(t, {src = 0})
  return t[1]:item()
end

-- A Results' epoch aggregates over every rank, for the items that `want(item)`:
-- the weighted mean as sum(value * batch size) / sum(batch size) over all ranks
-- (Lightning's), sums, extremes, and the values of a reduce_fx function in rank
-- order. Stored in item.synced, from the local aggregates each time: calling it
-- again after more values were logged gives the new totals.
function ddp.sync_results(results, want)
  local names = {}
  for _, name in ipairs(results.order) do
    local item = results.items[name]
    if item.on_epoch and want(item) then names[#names + 1] = name end
  end
  table.sort(names)
  -- the ranks must have logged the same names: a count and a checksum of them
  local sum = 0
  for i, name in ipairs(names) do
    for j = 1, #name do sum = (sum * 31 + name:byte(j) + i) % 2147483647 end
  end
  local check = core.tensor({#names, sum, -#names, -sum}, {dtype = "int64"})
  dist.all_reduce(check, {op = "max"})
  local c = check:totable()
  if c[1] ~= -c[3] or c[2] ~= -c[4] then
    error(string.format("ddp: the ranks logged different metrics at the end of an epoch (this rank: %s); " ..
      "every rank must log the same names", table.concat(names, ", ")), 0)
  end
  if #names == 0 then return end
  local sums, maxs, mins = {}, {}, {}
  for i, name in ipairs(names) do
    local item = results.items[name]
    sums[4 * i - 3], sums[4 * i - 2] = item.sum, item.weight
    sums[4 * i - 1], sums[4 * i] = item.plain_sum or 0, item.count
    maxs[i], mins[i] = item.max, -item.min
  end
  local ts = core.tensor(sums, {dtype = "float64"})
  local tm = core.tensor(maxs, {dtype = "float64"})
  local tn = core.tensor(mins, {dtype = "float64"})
  dist.all_reduce(ts, {op = "sum"})
  dist.all_reduce(tm, {op = "max"})
  dist.all_reduce(tn, {op = "max"})
  local s, mx, mn = ts:totable(), tm:totable(), tn:totable()
  for i, name in ipairs(names) do
    local item = results.items[name]
    local synced = {sum = s[4 * i - 3], weight = s[4 * i - 2], plain_sum = s[4 * i - 1], count = s[4 * i],
                    max = mx[i], min = -mn[i]}
    if type(item.reduce_fx) == "function" then
      -- every rank's values, in rank order (padded to the longest list)
      local n = item.values and #item.values or 0
      local longest = math.floor(ddp.reduce_number(n, "max"))
      local mine = {n}
      for k = 1, longest do mine[k + 1] = item.values and item.values[k] or 0 end
      local all = dist.all_gather(core.tensor(mine, {dtype = "float64"}))
      local values = {}
      for _, row in ipairs(all) do
        local r = row:totable()
        for k = 1, math.floor(r[1]) do values[#values + 1] = r[k + 1] end
      end
      synced.values = values
    end
    item.synced = synced
  end
end

-- Ends the job after an error on this rank: the other ranks wait in a collective
-- that will never complete, so they are ended too (MPI_Abort), the message first.
function ddp.abort(trainer, err)
  dist._abort(1, string.format("moonlight (rank %d of %d): %s", trainer.global_rank, trainer.world_size,
    tostring(err)))
end

return ddp
