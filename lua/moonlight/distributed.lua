-- ml.distributed: torch.distributed's functions over MPI (and NCCL for CUDA
-- tensors), for scripts launched with `mpirun -np N moonlight train.lua`; and
-- ml.strategies.DDPStrategy, the Trainer's data-parallel strategy with options.
--
-- ml.distributed.is_available() (false, why: a build without MPI)
-- is_initialized(), init_process_group({backend}), destroy_process_group()
-- rank(), world_size(), local_rank(), local_world_size()   (ranks are 0-based)
-- all_reduce(t, {op = "sum" | "mean" | "max" | "min"})      in place, returns t
-- broadcast(t, {src = 0})                                    in place, returns t
-- all_gather(t)                                              list of world_size tensors
-- barrier()
--
-- A process that no launcher started is a world of one: rank 0, world size 1,
-- collectives leave tensors as they are. Under a launcher, MPI starts on the
-- first call. src/dist.h has the contract, docs/DISTRIBUTED.md the guide.
local core = require "moonlight.core"
local util = require "moonlight.util"

local distributed = {}
for k, v in pairs(core._distributed) do
  if k:sub(1, 1) ~= "_" then distributed[k] = v end
end

local strategies = {}
distributed.strategies = strategies

local DDPStrategy = {__name = "DDPStrategy"}
DDPStrategy.__index = DDPStrategy
DDPStrategy.__tostring = function(s)
  return string.format("DDPStrategy(bucket_cap_mb=%s)", util.format_number(s.bucket_cap_mb))
end

-- DDPStrategy({bucket_cap_mb = 25, find_unused_parameters = false}): Lightning's
-- strategy object for Trainer{strategy = ...}; "ddp" is DDPStrategy() with its
-- defaults. bucket_cap_mb: the size of a gradient bucket (PyTorch's default 25;
-- the first bucket holds at most 1 MiB). find_unused_parameters is accepted:
-- parameters backward does not reach are always reduced as zeros.
function strategies.DDPStrategy(opts)
  opts = util.check_options("DDPStrategy", opts, {bucket_cap_mb = "number", find_unused_parameters = "boolean",
                                                  process_group_backend = "string"})
  local mb = opts.bucket_cap_mb or 25
  if mb <= 0 then util.fail("DDPStrategy", "bucket_cap_mb must be positive, got %s", tostring(mb)) end
  local backend = opts.process_group_backend
  if backend ~= nil and backend ~= "mpi" and backend ~= "nccl" then
    util.fail("DDPStrategy", "process_group_backend must be \"mpi\" or \"nccl\", got %q", backend)
  end
  return setmetatable({strategy_name = "ddp", bucket_cap_mb = mb,
                       find_unused_parameters = opts.find_unused_parameters or false,
                       process_group_backend = backend}, DDPStrategy)
end

function strategies.is_strategy(s) return getmetatable(s) == DDPStrategy end

return distributed
