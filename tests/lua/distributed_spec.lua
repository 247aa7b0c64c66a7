-- ml.distributed in one process (a world of one), DistributedSampler's order
-- (PyTorch's), the DataLoader's sampler option and the Trainer's strategy
-- checks. The runs across processes are tests/dist/run.sh (ctest dist.mpirun).
local ml = require "moonlight"
local data = ml.data
local d = ml.distributed

local function list(t) return t:totable() end

describe("ml.distributed in a process no launcher started", function()
  it("is a world of one: rank 0 of 1, collectives leave tensors as they are", function()
    assert.is_false(d.is_launched())
    assert.are.equal(0, d.rank())
    assert.are.equal(1, d.world_size())
    assert.are.equal(0, d.local_rank())
    assert.are.equal(1, d.local_world_size())
    local t = ml.tensor({1.5, -2})
    assert.are.equal(t, d.all_reduce(t, {op = "mean"}))
    assert.are.same({1.5, -2}, list(t))
    d.broadcast(t, {src = 0})
    assert.are.same({1.5, -2}, list(t))
    local g = d.all_gather(t)
    assert.are.equal(1, #g)
    assert.are.same({1.5, -2}, list(g[1]))
    g[1][1] = 7 -- a copy
    assert.are.equal(1.5, t[1]:item())
    d.barrier()
  end)

  it("names the function and what was expected in its errors", function()
    local t = ml.tensor({1})
    assert.has_error(function() d.all_reduce(t, {op = "avg"}) end,
      "distributed.all_reduce: unknown op 'avg' (expected \"sum\", \"mean\", \"max\" or \"min\")")
    assert.has_error(function() d.broadcast(t, {src = 1}) end,
      "distributed.broadcast: broadcast: src must be a rank between 0 and 0, got 1")
    assert.has_error(function() d.all_reduce(t, {opp = "sum"}) end)
    assert.has_error(function() d.init_process_group({backend = "gloo"}) end,
      "distributed.init_process_group: unknown backend 'gloo' (expected \"mpi\" or \"nccl\")")
  end)

  it("says whether this build has MPI, and why not", function()
    local ok, why = d.is_available()
    if ok then
      assert.is_nil(why)
      assert.is_truthy(d.mpi_version():find("MPI"))
    else
      assert.is_truthy(why:find("libopenmpi%-dev"))
    end
  end)
end)

describe("DistributedSampler", function()
  local ds = data.TensorDataset(ml.arange(10):view({10, 1}))

  it("gives rank r indices[r::world] of the order, padded from its start (PyTorch's)", function()
    local expect = {{0, 3, 6, 9}, {1, 4, 7, 0}, {2, 5, 8, 1}}
    for r = 0, 2 do
      local s = data.DistributedSampler(ds, {num_replicas = 3, rank = r, shuffle = false})
      assert.are.equal(4, #s)
      assert.are.same(expect[r + 1], list(s:order()))
    end
  end)

  it("drops the tail with drop_last", function()
    local expect = {{0, 3, 6}, {1, 4, 7}, {2, 5, 8}}
    for r = 0, 2 do
      local s = data.DistributedSampler(ds, {num_replicas = 3, rank = r, shuffle = false, drop_last = true})
      assert.are.equal(3, #s)
      assert.are.same(expect[r + 1], list(s:order()))
    end
  end)

  it("shuffles with seed + epoch, the same on every rank, ml's generator untouched", function()
    local function shards(epoch)
      local all = {}
      for r = 0, 1 do
        local s = data.DistributedSampler(ds, {num_replicas = 2, rank = r, seed = 3})
        s:set_epoch(epoch)
        all[r + 1] = list(s:order())
      end
      return all
    end
    ml.manual_seed(1)
    local before = ml.rand({1}):item()
    ml.manual_seed(1)
    local e0, e0again, e1 = shards(0), shards(0), shards(1)
    assert.are.equal(before, ml.rand({1}):item())
    assert.are.same(e0, e0again)
    assert.are_not.same(e0, e1)
    -- the shards interleave back into one permutation of 0..9
    local seen = {}
    for k = 1, 5 do
      for r = 1, 2 do seen[#seen + 1] = e0[r][k] end
    end
    local sorted = {table.unpack(seen)}
    table.sort(sorted)
    assert.are.same({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, sorted)
    -- the order of one replica is that permutation itself
    local one = data.DistributedSampler(ds, {num_replicas = 1, rank = 0, seed = 3})
    assert.are.same(seen, list(one:order()))
  end)

  it("checks its rank", function()
    assert.has_error(function() data.DistributedSampler(ds, {num_replicas = 2, rank = 2}) end)
  end)

  it("drives a DataLoader: its length and its batches", function()
    local s = data.DistributedSampler(ds, {num_replicas = 3, rank = 1, shuffle = false})
    local loader = data.DataLoader(ds, {batch_size = 3, sampler = s})
    assert.are.equal(2, #loader)
    local got = {}
    for _, batch in loader:iter() do
      for _, v in ipairs(batch[1]:view({-1}):totable()) do got[#got + 1] = v end
    end
    assert.are.same({1, 4, 7, 0}, got)
    assert.has_error(function() data.DataLoader(ds, {sampler = s, shuffle = true}) end,
      "DataLoader: sampler option is mutually exclusive with shuffle")
  end)
end)

describe("Trainer{strategy}", function()
  it("refuses a world that is not devices * num_nodes, saying how to launch", function()
    if not d.is_available() then return end
    local ok, err = pcall(ml.Trainer, {strategy = "ddp", devices = 2, logger = false,
                                       enable_checkpointing = false})
    assert.is_false(ok)
    assert.is_truthy(err:find("needs 2 processes, but this job has 1: launch it with `mpirun %-np 2", 1))
    -- "auto" (the default) picks ddp for several devices, as Lightning
    ok, err = pcall(ml.Trainer, {devices = 2, num_nodes = 2, logger = false, enable_checkpointing = false})
    assert.is_false(ok)
    assert.is_truthy(err:find("needs 4 processes", 1, true))
    local alone = ml.Trainer({devices = 2, strategy = "single_device", logger = false, enable_checkpointing = false})
    assert.are.equal("single_device", alone.strategy)
  end)

  it("rejects unknown strategies and bad DDPStrategy options", function()
    assert.has_error(function() ml.Trainer({strategy = "fsdp"}) end)
    assert.has_error(function() ml.strategies.DDPStrategy({bucket_cap_mb = 0}) end)
    assert.are.equal("DDPStrategy(bucket_cap_mb=25)", tostring(ml.strategies.DDPStrategy()))
  end)

  it("trains in a world of one as one process does", function()
    if not d.is_available() then return end
    local function run(strategy)
      ml.manual_seed(5)
      local x, y = ml.randn({64, 4}), ml.randn({64, 1})
      local M = ml.nn.Module:extend("M")
      function M:init() self.fc = ml.nn.Linear(4, 1) end
      function M:forward(v) return self.fc(v) end
      function M:training_step(b) return ml.F.mse_loss(self(b[1]), b[2]) end
      function M:configure_optimizers() return ml.optim.SGD(self:parameters(), {lr = 0.1}) end
      local m = M()
      local t = ml.Trainer({max_epochs = 2, strategy = strategy, devices = 1, logger = false,
                            enable_checkpointing = false, enable_progress_bar = false,
                            enable_model_summary = false, accelerator = "cpu"})
      t:fit(m, data.DataLoader(data.TensorDataset(x, y), {batch_size = 16}))
      return m.fc.weight:totable(), t
    end
    local w1 = run(nil)
    local w2, t2 = run(ml.strategies.DDPStrategy({bucket_cap_mb = 1}))
    assert.are.same(w1, w2)
    assert.are.equal(1, t2.world_size)
    assert.is_true(t2.is_global_zero)
  end)
end)
