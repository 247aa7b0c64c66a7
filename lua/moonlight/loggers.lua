-- ml.loggers: Lightning's CSVLogger.
--
-- Layout: save_dir/name/version_N/{metrics.csv, hparams.yaml}, N the next free
-- number unless given. metrics.csv has every logged key plus epoch and step,
-- columns sorted by name, empty cells where a row lacks a value. Each row reaches
-- the disk as it is logged, appended in one write (a crash loses at most the row
-- being written), and none is kept in memory: a run of any length logs in
-- constant memory. When a row brings a new column, the file is read back and
-- rewritten with the new header under a temporary name, then renamed over it (a
-- crash leaves the old file or the new one, never half of one).
-- Cells are written per RFC 4180, as Python's csv module writes them: a name or a
-- value holding a comma, a double quote or a line break is quoted, its quotes
-- doubled (util.csv_line; ml.history reads them back the same way). Lines end
-- with "\n" (Python's csv writes "\r\n"; both read alike).
-- hparams.yaml is YAML as PyYAML's yaml.dump writes it for Lightning (below).
local core = require "moonlight.core"
local sys = core._sys

local loggers = {}

local util = require "moonlight.util"
local format_number, check_options = util.format_number, util.check_options

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
  local f, err = sys.open(tmp, "w")
  if not f then error("CSVLogger: cannot write " .. path .. ": " .. tostring(err), 0) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then
    sys.remove(tmp)
    error("CSVLogger: cannot write " .. path .. ": " .. tostring(werr), 0)
  end
  local rok, rerr = sys.rename(tmp, path)
  if not rok then error("CSVLogger: " .. rerr, 0) end
end

local CSVLogger = {}
CSVLogger.__index = CSVLogger
CSVLogger.__name = "CSVLogger"

function loggers.CSVLogger(save_dir, opts)
  if type(save_dir) ~= "string" then
    util.fail("CSVLogger", "save_dir must be a string (a directory), got %s", util.typename(save_dir))
  end
  opts = check_options("CSVLogger", opts, {name = "string", version = "integer|string", prefix = "string",
                                           flush_logs_every_n_steps = "integer"})
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
  self._columns = {}      -- sorted column names: all the logger keeps of its rows
  self._column_set = {}
  self._hparams = {}
  return self
end

-- The version (and so log_dir) another process chose: a distributed fit's
-- ranks write under rank 0's (lua/moonlight/ddp.lua).
function CSVLogger:_set_version(v)
  self.version = v
  local vname = type(v) == "string" and v or ("version_" .. v)
  self.log_dir = self.root_dir .. "/" .. vname
  self.metrics_file = self.log_dir .. "/metrics.csv"
  self._dir_ready = nil
end

-- Creates log_dir; a clear error when it cannot be written.
function CSVLogger:_ensure_dir()
  if self._dir_ready then return end
  local ok, err = sys.mkdir_p(self.log_dir)
  if not ok then error("CSVLogger: cannot create log directory: " .. err, 0) end
  local probe = self.log_dir .. "/.write_test"
  local f = sys.open(probe, "w")
  if not f then error("CSVLogger: log directory '" .. self.log_dir .. "' is not writable", 0) end
  f:close()
  sys.remove(probe)
  self._dir_ready = true
end

local function row_line(columns, row)
  local cells = {}
  for i, c in ipairs(columns) do
    local v = row[c]
    cells[i] = v == nil and "" or (type(v) == "number" and format_number(v) or tostring(v))
  end
  return util.csv_line(cells)
end

-- The rows written so far, read back from the file (as records of cells, by
-- the header they were written under) and laid out under the new columns.
local function rewrite_with_columns(path, columns, first)
  local parts = {util.csv_line(columns)}
  if not first then
    local f = sys.open(path, "rb")
    local text = f and f:read("a") or ""
    if f then f:close() end
    local records = util.csv_records(text)
    local header = records()
    if header then
      while true do
        local cells, _, ended = records()
        -- a row cut off by a crash of an earlier writer is left out
        if not cells or (not ended and #cells ~= #header) then break end
        local row = {}
        for i, name in ipairs(header) do row[name] = cells[i] end
        local out = {}
        for i, name in ipairs(columns) do out[i] = row[name] or "" end
        parts[#parts + 1] = util.csv_line(out)
      end
    end
  end
  write_atomically(path, table.concat(parts))
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
  if new_column then
    table.sort(self._columns)
    -- the first row of this logger starts the file afresh (as before: a reused
    -- version directory is overwritten, as Lightning warns it will be)
    rewrite_with_columns(self.metrics_file, self._columns, not self._started)
    self._started = true
  end
  -- one write: a kill leaves the row whole or absent (history.read drops a
  -- torn last line all the same)
  local f, err = sys.open(self.metrics_file, "a")
  if not f then error("CSVLogger: cannot append to " .. self.metrics_file .. ": " .. tostring(err), 0) end
  local ok, werr = f:write(row_line(self._columns, row))
  f:close()
  if not ok then error("CSVLogger: cannot append to " .. self.metrics_file .. ": " .. tostring(werr), 0) end
end

------------------------------------------------------------------------------
-- hparams.yaml
------------------------------------------------------------------------------

-- YAML as PyYAML's yaml.dump writes it for Lightning (save_hparams_to_yaml): block
-- style, keys sorted, mappings nested by two spaces, a sequence under a key not
-- indented ("key:\n- a\n- b"), an empty table as {}. Scalars:
-- - numbers as YAML 1.1 reads them, as PyYAML writes floats: Python's repr with a
--   ".0" before a bare exponent (1.0e-05), .nan, .inf, -.inf;
-- - true / false;
-- - strings plain when they read back as the same string in YAML 1.1 and 1.2
--   (ASCII, starting with a letter or "/", no ": " or " #", not a number, a
--   boolean or null word), else double-quoted with YAML's escapes. Valid UTF-8
--   is kept; a string that is not valid UTF-8 has its bytes >= 0x80 written as
--   \xNN escapes (YAML is Unicode: they read back as U+0080..U+00FF);
-- - tensors, functions and other objects (tables with a metatable) as the string
--   of their tostring(), as Lightning writes what it cannot represent as a repr.

-- words YAML 1.1 resolves to booleans or null (compared in lower case)
local yaml_words = util.set_of("y", "n", "yes", "no", "true", "false", "on", "off", "null",
                               "nan", "inf")

local yaml_escapes = {
  ["\\"] = "\\\\", ['"'] = '\\"', ["\0"] = "\\0", ["\a"] = "\\a", ["\b"] = "\\b",
  ["\t"] = "\\t", ["\n"] = "\\n", ["\v"] = "\\v", ["\f"] = "\\f", ["\r"] = "\\r",
  ["\27"] = "\\e",
}

local function yaml_string(s)
  if s:match("^[%a/][%w_%.%-/ ]*$") and s:sub(-1) ~= " " and not yaml_words[s:lower()]
     and not tonumber((s:gsub("_", ""))) then
    return s
  end
  local out = {}
  if utf8.len(s) then
    for _, c in utf8.codes(s) do
      local ch = utf8.char(c)
      if yaml_escapes[ch] then out[#out + 1] = yaml_escapes[ch]
      elseif c < 0x20 or (c >= 0x7F and c <= 0x9F) then out[#out + 1] = ("\\x%02X"):format(c)
      elseif c == 0x2028 or c == 0x2029 or c == 0xFEFF or c == 0xFFFE or c == 0xFFFF then
        out[#out + 1] = ("\\u%04X"):format(c) -- line and paragraph separators are breaks in YAML 1.1
      else out[#out + 1] = ch end
    end
  else
    for i = 1, #s do
      local ch = s:sub(i, i)
      local b = ch:byte()
      if yaml_escapes[ch] then out[#out + 1] = yaml_escapes[ch]
      elseif b < 0x20 or b >= 0x7F then out[#out + 1] = ("\\x%02X"):format(b)
      else out[#out + 1] = ch end
    end
  end
  return '"' .. table.concat(out) .. '"'
end

local function yaml_number(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return ".nan" end
  if v == math.huge then return ".inf" end
  if v == -math.huge then return "-.inf" end
  local r = format_number(v)
  if not r:find(".", 1, true) then r = r:gsub("e", ".0e", 1) end
  return r
end

local function is_collection(v)
  return type(v) == "table" and getmetatable(v) == nil and next(v) ~= nil
end

local function is_sequence(t)
  local n = #t
  for i = 1, n do if t[i] == nil then return false end end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function yaml_scalar(v)
  local t = type(v)
  if t == "number" then return yaml_number(v) end
  if t == "boolean" then return tostring(v) end
  if t == "string" then return yaml_string(v) end
  if t == "table" and getmetatable(v) == nil then return "{}" end -- an empty table
  return yaml_string(tostring(v))
end

local emit_mapping, emit_sequence

-- a value after "key:" or "- ", the lines of a collection at ind
local function emit_value(v, ind, lines, seen, path)
  if seen[v] then
    error(("CSVLogger: hparams '%s' holds a table that contains itself"):format(path), 0)
  end
  seen[v] = true
  if is_sequence(v) then emit_sequence(v, ind, lines, seen, path)
  else emit_mapping(v, ind, lines, seen, path) end
  seen[v] = nil
end

function emit_mapping(t, ind, lines, seen, path)
  for _, k in ipairs(util.sorted_keys(t)) do
    local v, key = t[k], yaml_scalar(k)
    local p = path == "" and tostring(k) or (path .. "." .. tostring(k))
    if is_collection(v) then
      lines[#lines + 1] = ind .. key .. ":"
      -- a sequence under a key is not indented, a mapping is
      emit_value(v, is_sequence(v) and ind or ind .. "  ", lines, seen, p)
    else
      lines[#lines + 1] = ind .. key .. ": " .. yaml_scalar(v)
    end
  end
end

function emit_sequence(t, ind, lines, seen, path)
  for i = 1, #t do
    local v = t[i]
    if is_collection(v) then
      -- a nested collection starts on the "- " line: "- a: 1\n  b: 2", "- - 1\n  - 2"
      local first = #lines + 1
      emit_value(v, ind .. "  ", lines, seen, path .. "[" .. i .. "]")
      lines[first] = ind .. "- " .. lines[first]:sub(#ind + 3)
    else
      lines[#lines + 1] = ind .. "- " .. yaml_scalar(v)
    end
  end
end

-- yaml(hparams) -> the text of hparams.yaml: a mapping ("{}" when empty)
local function yaml_document(hparams)
  if next(hparams) == nil then return "{}\n" end
  local lines = {}
  emit_mapping(hparams, "", lines, {[hparams] = true}, "")
  return table.concat(lines, "\n") .. "\n"
end

function CSVLogger:log_hyperparams(params)
  for k, v in pairs(params or {}) do self._hparams[k] = v end
  self:save()
end

-- Writes hparams.yaml ("{}" when there are none, as Lightning does).
function CSVLogger:save()
  self:_ensure_dir()
  write_atomically(self.log_dir .. "/hparams.yaml", yaml_document(self._hparams))
end

function CSVLogger:finalize() self:save() end

function CSVLogger:__tostring()
  return string.format("CSVLogger(save_dir=%s, name=%s, version=%s)", self.save_dir, self.name,
    tostring(self.version))
end

------------------------------------------------------------------------------
-- DummyLogger: what fast_dev_run puts in the logger's place (Lightning's)
------------------------------------------------------------------------------

local DummyLogger = {}
DummyLogger.__index = DummyLogger
DummyLogger.__name = "DummyLogger"

-- a logger that takes everything and writes nothing
function loggers.DummyLogger()
  return setmetatable({name = "", version = ""}, DummyLogger)
end

function DummyLogger:log_metrics() end
function DummyLogger:log_hyperparams() end
function DummyLogger:save() end
function DummyLogger:finalize() end
function DummyLogger:__tostring() return "DummyLogger()" end

return loggers
