-- moonlight: the Lua entry point. The tensor core comes from C (moonlight.core);
-- the libraries on top of it (nn, optim, data, Trainer, ...) load on first use,
-- so `require "moonlight"` stays fast.
local core = require "moonlight.core"

local ml = {}
for k, v in pairs(core) do ml[k] = v end
ml._VERSION = "0.1.0"
ml.version = ml._VERSION

-- ml.cuda: device queries (the CUDA backend fills in the rest when compiled in)
ml.cuda = { is_available = core.cuda_is_available }
for k, v in pairs(core._cuda) do ml.cuda[k] = v end

-- ml.backends.cpu: which compiled set of CPU kernels runs (torch.backends.cpu)
ml.backends = { cpu = { get_cpu_capability = core._sys.cpu_capability } }

-- Submodules, loaded lazily by name: ml.nn -> require "moonlight.nn".
local lazy = {
  nn = "moonlight.nn", F = "moonlight.functional", optim = "moonlight.optim",
  data = "moonlight.data", testing = "moonlight.testing", metrics = "moonlight.metrics",
  loggers = "moonlight.loggers", callbacks = "moonlight.callbacks",
  autograd = "moonlight.autograd",
  distributed = "moonlight.distributed",
}
-- Names that live inside a submodule but are reached from ml directly.
local lazy_fields = {
  Trainer = {"moonlight.trainer", "Trainer"},
  summary = {"moonlight.summary", "summary"},
  save = {"moonlight.serialization", "save"},
  load = {"moonlight.serialization", "load"},
  strategies = {"moonlight.distributed", "strategies"},
}

setmetatable(ml, {
  __index = function(t, k)
    local mod = lazy[k]
    if mod then
      local v = require(mod)
      rawset(t, k, v)
      return v
    end
    local f = lazy_fields[k]
    if f then
      local v = require(f[1])[f[2]]
      rawset(t, k, v)
      return v
    end
    return nil
  end,
})

package.loaded["moonlight"] = ml
return ml
