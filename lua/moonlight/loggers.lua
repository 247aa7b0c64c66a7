-- ml.loggers: Lightning's CSVLogger.
--
-- Layout: save_dir/name/version_N/{metrics.csv, hparams.yaml}, N the next free
-- number unless given. metrics.csv has every logged key plus epoch and step,
-- columns sorted by name, empty cells where a row lacks a value. Each row reaches
-- the disk as it is logged (a crash loses at most the row being written); when a
-- row brings a new column the file is rewritten under a temporary name and renamed.
local core = require "moonlight.core"
local sys = core._sys

local loggers = {}

-- The shortest decimal that reads back as the same double, like Python's repr.
local function format_number(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%.1f", v) end
  for digits = 15, 17 do
    local s = string.format("%." .. digits .. "g", v)
    if tonumber(s) == v then return s end
  end
  return string.format("%.17g", v)
end
loggers._format_number = format_number

local check_options = require("moonlight.util").check_options

local function next_version(root)
  local names = sys.listdir(root)
  if not names then return 0 end
  local best = -1
  for _, n in ipairs(names) do
    local v = n:match("^version_(%d+)$")
    if v and sys.kind(root .. "/" .. n) == "directory" then best = math.max(best, tonumber(v)) end
  end
  return best + 1
end

local function write_atomically(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then error("CSVLogger: cannot write " .. path .. ": " .. tostring(err), 0) end
  f:write(text)
  f:close()
  local ok, rerr = sys.rename(tmp, path)
  if not ok then error("CSVLogger: " .. rerr, 0) end
end

local CSVLogger = {}
CSVLogger.__index = CSVLogger
CSVLogger.__name = "CSVLogger"

function loggers.CSVLogger(save_dir, opts)
  opts = opts or {}
  if type(save_dir) ~= "string" then
    error("CSVLogger: save_dir must be a string (a directory), got " .. type(save_dir), 2)
  end
  check_options("CSVLogger", opts, {name = true, version = true, prefix = true,
                                    flush_logs_every_n_steps = true})
  local self = setmetatable({}, CSVLogger)
  self.save_dir = save_dir
  self.name = opts.name == nil and "lightning_logs" or opts.name
  self.root_dir = self.name ~= "" and (save_dir .. "/" .. self.name) or save_dir
  if opts.version == nil then
    self.version = next_version(self.root_dir)
  else
    self.version = opts.version
  end
  local vname = type(self.version) == "string" and self.version or ("version_" .. self.version)
  self.log_dir = self.root_dir .. "/" .. vname
  self.metrics_file = self.log_dir .. "/metrics.csv"
  self.prefix = opts.prefix or ""
  self._columns = {}      -- sorted column names
  self._column_set = {}
  self._rows = {}         -- every row so far, to rewrite when columns change
  self._hparams = {}
  return self
end

-- Creates log_dir; a clear error when it cannot be written.
function CSVLogger:_ensure_dir()
  if self._dir_ready then return end
  local ok, err = sys.mkdir_p(self.log_dir)
  if not ok then error("CSVLogger: cannot create log directory: " .. err, 0) end
  local probe = self.log_dir .. "/.write_test"
  local f = io.open(probe, "w")
  if not f then error("CSVLogger: log directory '" .. self.log_dir .. "' is not writable", 0) end
  f:close()
  os.remove(probe)
  self._dir_ready = true
end

local function row_line(columns, row)
  local cells = {}
  for i, c in ipairs(columns) do
    local v = row[c]
    cells[i] = v == nil and "" or (type(v) == "number" and format_number(v) or tostring(v))
  end
  return table.concat(cells, ",") .. "\n"
end

-- log_metrics({name = number, ...}, step): one row of metrics.csv.
function CSVLogger:log_metrics(metrics, step)
  self:_ensure_dir()
  local row = {}
  local new_column = false
  for k, v in pairs(metrics) do
    local key = self.prefix ~= "" and (self.prefix .. "-" .. k) or k
    if type(v) ~= "number" then
      if type(v) == "userdata" and v.item then v = v:item() else v = tonumber(v) end
    end
    row[key] = v
    if not self._column_set[key] then
      self._column_set[key] = true
      self._columns[#self._columns + 1] = key
      new_column = true
    end
  end
  if step ~= nil then
    row.step = step
    if not self._column_set.step then
      self._column_set.step = true
      self._columns[#self._columns + 1] = "step"
      new_column = true
    end
  end
  self._rows[#self._rows + 1] = row
  if new_column then
    table.sort(self._columns)
    local parts = {table.concat(self._columns, ",") .. "\n"}
    for _, r in ipairs(self._rows) do parts[#parts + 1] = row_line(self._columns, r) end
    write_atomically(self.metrics_file, table.concat(parts))
  else
    local f, err = io.open(self.metrics_file, "a")
    if not f then error("CSVLogger: cannot append to " .. self.metrics_file .. ": " .. tostring(err), 0) end
    f:write(row_line(self._columns, row))
    f:close()
  end
end

local function yaml_value(v)
  if type(v) == "number" then return format_number(v) end
  if type(v) == "boolean" then return tostring(v) end
  if type(v) == "string" then
    if v:match("^[%w_%.%-/]+$") and not tonumber(v) and v ~= "true" and v ~= "false" then return v end
    return string.format("%q", v)
  end
  return string.format("%q", tostring(v))
end

function CSVLogger:log_hyperparams(params)
  for k, v in pairs(params or {}) do self._hparams[k] = v end
  self:save()
end

-- Writes hparams.yaml ("{}" when there are none, as Lightning does).
function CSVLogger:save()
  self:_ensure_dir()
  local keys = {}
  for k in pairs(self._hparams) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local lines = {}
  for _, k in ipairs(keys) do
    local v = self._hparams[k]
    if type(v) == "table" then
      lines[#lines + 1] = k .. ":"
      for _, item in ipairs(v) do lines[#lines + 1] = "- " .. yaml_value(item) end
    else
      lines[#lines + 1] = k .. ": " .. yaml_value(v)
    end
  end
  write_atomically(self.log_dir .. "/hparams.yaml", #lines == 0 and "{}\n" or table.concat(lines, "\n") .. "\n")
end

function CSVLogger:finalize() self:save() end

function CSVLogger:__tostring()
  return string.format("CSVLogger(save_dir=%s, name=%s, version=%s)", self.save_dir, self.name,
    tostring(self.version))
end

return loggers
