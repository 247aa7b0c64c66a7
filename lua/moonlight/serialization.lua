-- ml.save / ml.load: safetensors checkpoints (the format PyTorch and the Hugging
-- Face tools read). The file format is written and read in C (src/safetensors.c).
local core = require "moonlight.core"
local util = require "moonlight.util"

local M = {}

-- ml.save(tensors, path, metadata): tensors is a table name -> tensor, such as
-- m:state_dict(); metadata an optional table of strings (safetensors' __metadata__).
-- Writes a temporary file next to path and renames it over path.
function M.save(tensors, path, metadata)
  if type(path) ~= "string" then util.fail("save", "path must be a string, got %s", util.typename(path)) end
  -- names and metadata must be UTF-8 (the header is JSON): checked in C, which
  -- does not need the utf8 library a runtime may not have opened
  core._safetensors_save(tensors, path, metadata)
end

local load_options = {device = {"string", "cpu"}}

-- ml.load(path, {device = "cpu"}) -> tensors, metadata
function M.load(path, opts)
  if type(path) ~= "string" then util.fail("load", "path must be a string, got %s", util.typename(path)) end
  local device = util.check_options("load", opts, load_options).device
  local tensors, metadata = core._safetensors_load(path)
  if device ~= "cpu" then
    for name, t in pairs(tensors) do tensors[name] = t:to(device) end
  end
  return tensors, metadata
end

return M
