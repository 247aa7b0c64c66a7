-- Small helpers the Lua half shares: option tables checked as every binding
-- checks them (an unknown name is an error that lists the known ones).
local core = require "moonlight.core"

local util = {}

-- check_options(fname, opts, allowed) -> opts (or {} for nil). allowed is a set
-- {name = true, ...}. Errors point at the caller of the function that checks.
function util.check_options(fname, opts, allowed, level)
  level = level or 3
  if opts == nil then return {} end
  if type(opts) ~= "table" or core.is_tensor(opts) then
    error(("%s: options must be a table, got %s"):format(fname, type(opts)), level)
  end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      error(("%s: unknown option '%s' (expected one of: %s)"):format(fname, tostring(k),
            table.concat(names, ", ")), level)
    end
  end
  return opts
end

function util.set_of(...)
  local s = {}
  for _, k in ipairs({...}) do s[k] = true end
  return s
end

return util
