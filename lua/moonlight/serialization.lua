-- ml.save / ml.load: safetensors checkpoints (the format PyTorch and the Hugging
-- Face tools read). The file format is written and read in C (src/safetensors.c).
local core = require "moonlight.core"
local util = require "moonlight.util"

local M = {}

-- ml.save(tensors, path, metadata): tensors is a table name -> tensor, such as
-- m:state_dict(); metadata an optional table of strings (safetensors' __metadata__).
-- Writes a temporary file next to path and renames it over path.
function M.save(tensors, path, metadata)
  if type(path) ~= "string" then
    error("save: path must be a string, got " .. type(path), 2)
  end
  -- the header is JSON: readers (PyTorch's safetensors, Hugging Face) need UTF-8
  for k, v in pairs(metadata or {}) do
    if type(k) == "string" and not utf8.len(k) then
      error("save: a metadata key is not valid UTF-8 (encode binary data, e.g. as hex)", 2)
    end
    if type(v) == "string" and not utf8.len(v) then
      error(("save: metadata '%s' is not valid UTF-8 (encode binary data, e.g. as hex)"):format(tostring(k)), 2)
    end
  end
  core._safetensors_save(tensors, path, metadata)
end

local load_options = {device = {"string", "cpu"}}

-- ml.load(path, {device = "cpu"}) -> tensors, metadata
function M.load(path, opts)
  if type(path) ~= "string" then
    error("load: path must be a string, got " .. type(path), 2)
  end
  local device = util.check_options("load", opts, load_options).device
  local tensors, metadata = core._safetensors_load(path)
  if device ~= "cpu" then
    for name, t in pairs(tensors) do tensors[name] = t:to(device) end
  end
  return tensors, metadata
end

return M
