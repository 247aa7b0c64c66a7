-- The Lua half's helper layer: what every file of it shares, so that each thing is
-- done one way.
--
-- - errors raised at the user's line (the first caller outside lua/moonlight/);
-- - option tables checked: unknown names, types, defaults, with the message shape
--   of the C checker (src/lua/util.c): "fname: unknown option 'k' (expected one
--   of: a, b)", "fname: option 'k' must be a number, got string";
-- - sets;
-- - numbers written as Python's repr writes them;
-- - CSV records (RFC 4180), written by the CSVLogger and read by ml.history.
local core = require "moonlight.core"
local is_tensor = core.is_tensor

local util = {}

------------------------------------------------------------------------------
-- Errors at the user's line
------------------------------------------------------------------------------

-- A sandboxed state (ML_LIB_SAFE) has no debug library: there the C core walks
-- the stack instead (core._sys.raise, the same rule as raise below).
local getinfo = debug and debug.getinfo
local c_raise = core._sys.raise
local lib_prefix = getinfo and getinfo(1, "S").source:match("^(@.*/)[^/]*$")

-- util.raise(msg, level): error(msg) pointing at the first Lua function on the
-- stack that is not part of the library (C functions are skipped too), so that
-- a check reached through any number of library calls, tail calls included,
-- names the user's line. level (default 2: the caller of the function calling
-- raise) serves when no such frame is found or there is no debug library.
function util.raise(msg, level)
  local lv = (level or 2) + 1
  if not getinfo then c_raise(msg) end
  if lib_prefix then
    local k = 2
    while true do
      local info = getinfo(k, "S")
      if not info then break end
      if info.what ~= "C" and info.source:sub(1, #lib_prefix) ~= lib_prefix then
        lv = k
        break
      end
      k = k + 1
    end
  end
  error(msg, lv)
end
local raise = util.raise

-- util.call_c(f, ...): f(...) for a function of moonlight.core called from the
-- library, its error raised again at the user's line (the C error names the
-- library's line that called f; that position is dropped). All of f's results.
local function pass_or_raise(ok, ...)
  if ok then return ... end
  local msg = tostring((...))
  if lib_prefix then
    local lib = lib_prefix:sub(2) -- a chunk's position is written without the "@"
    if msg:sub(1, #lib) == lib then msg = msg:gsub("^[^:]*:%d+: ", "", 1) end
  end
  raise(msg, 3)
end
function util.call_c(f, ...) return pass_or_raise(pcall(f, ...)) end

-- util.message(e): an error's text without the "chunk:line: " position Lua put in
-- front, for a library function that restates an error it caught (a layer naming
-- itself and its input) and raises it again at the user's line.
function util.message(e)
  return (tostring(e):gsub("^[^:\n]*:%d+: ", "", 1))
end

-- util.fail(fname, fmt, ...): raise("fname: " .. fmt:format(...)) at the user's line.
function util.fail(fname, fmt, ...)
  raise(fname .. ": " .. string.format(fmt, ...), 3)
end

-- The type name an error message shows: tensors are "tensor", not "userdata".
function util.typename(v)
  if is_tensor(v) then return "tensor" end
  return type(v)
end
local typename = util.typename

------------------------------------------------------------------------------
-- Sets
------------------------------------------------------------------------------

-- set_of("a", "b") -> {a = true, b = true}
function util.set_of(...)
  local s = {}
  for i = 1, select("#", ...) do s[select(i, ...)] = true end
  return s
end

-- The keys of a table, sorted (numbers before strings, each in their order).
function util.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return keys
end

------------------------------------------------------------------------------
-- Option tables
------------------------------------------------------------------------------

-- What a type name in a spec accepts, and how a message names it.
local kinds = {
  number = {function(v) return type(v) == "number" end, "a number"},
  integer = {function(v) return math.type(v) == "integer" or (type(v) == "number" and v % 1 == 0) end,
             "an integer"},
  boolean = {function(v) return type(v) == "boolean" end, "a boolean"},
  string = {function(v) return type(v) == "string" end, "a string"},
  table = {function(v) return type(v) == "table" end, "a table"},
  ["function"] = {function(v) return type(v) == "function" end, "a function"},
  tensor = {is_tensor, "a tensor"},
  callable = {function(v)
    if type(v) == "function" then return true end
    local mt = getmetatable(v)
    return type(mt) == "table" and mt.__call ~= nil
  end, "callable"},
}

-- "number|table" -> {kinds.number, kinds.table}, parsed once per type string
local alternatives = {}
local function kinds_of(types)
  local list = alternatives[types]
  if not list then
    list = {}
    for name in types:gmatch("[^|]+") do
      local kind = kinds[name]
      if not kind then error("util.check_options: unknown type '" .. name .. "' in a spec", 4) end
      list[#list + 1] = kind
    end
    alternatives[types] = list
  end
  return list
end

-- true when v is of one of the types; else false and "a number or a table"
local function check_type(v, types)
  local list = kinds_of(types)
  for i = 1, #list do
    if list[i][1](v) then return true end
  end
  local names = {}
  for i, kind in ipairs(list) do names[i] = kind[2] end
  if #names == 1 then return false, names[1] end
  return false, table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
end

-- spec -> {{name, default}, ...} (false when it has no defaults), cached
local defaults_cache = setmetatable({}, {__mode = "k"})
local function defaults_of(spec)
  local d = defaults_cache[spec]
  if d == nil then
    d = {}
    for name, e in pairs(spec) do
      if type(e) == "table" and e[2] ~= nil then d[#d + 1] = {name, e[2]} end
    end
    if #d == 0 then d = false end
    defaults_cache[spec] = d
  end
  return d
end

-- check_options(fname, opts, spec[, what]) -> the options, defaults filled in.
--
-- opts: nil (no options) or a table of name = value. spec: name -> true (any
-- value) | "type" | {"type" or false, default}; a type is number, integer,
-- boolean, string, table, function, tensor, callable, or several joined by "|".
-- A set {name = true, ...} is a spec. Unknown names, names that are not strings
-- and values of the wrong type are errors at the user's line that name fname,
-- the key and what is accepted. what names the keys in messages ("option", or
-- e.g. "param group key"). The result is opts itself when no default is missing,
-- else a copy with the defaults (the caller's table is never written).
function util.check_options(fname, opts, spec, what)
  what = what or "option"
  if opts == nil then opts = {} end
  if type(opts) ~= "table" or is_tensor(opts) then
    raise(("%s: %ss must be a table, got %s"):format(fname, what, typename(opts)), 3)
  end
  for k, v in pairs(opts) do
    if type(k) ~= "string" then
      raise(("%s: %s names must be strings, got %s"):format(fname, what, type(k)), 3)
    end
    local e = spec[k]
    if e == nil then
      local names = util.sorted_keys(spec)
      raise(("%s: unknown %s '%s' (expected one of: %s)"):format(fname, what, k,
            table.concat(names, ", ")), 3)
    end
    local types = e
    if type(e) == "table" then types = e[1] end
    if type(types) == "string" then
      local ok, expected = check_type(v, types)
      if not ok then
        raise(("%s: %s '%s' must be %s, got %s"):format(fname, what, k, expected, typename(v)), 3)
      end
    end
  end
  local defaults = defaults_of(spec)
  if defaults then
    local out = opts
    for _, d in ipairs(defaults) do
      if opts[d[1]] == nil then
        if out == opts then
          out = {}
          for k, v in pairs(opts) do out[k] = v end
        end
        out[d[1]] = d[2]
      end
    end
    return out
  end
  return opts
end

------------------------------------------------------------------------------
-- Numbers
------------------------------------------------------------------------------

-- format_number(v): v as Python's repr writes it. Integers as they are; floats
-- with the fewest digits that read back as the same double ("0.1", not
-- "0.10000000000000001"), a ".0" on whole numbers below 1e16, exponents from 1e16
-- and below 1e-4 ("1e+16", "1e-05"), and "nan", "inf", "-inf". The CSVLogger's
-- cells, hparams.yaml's numbers and the modules' reprs all come from here.
function util.format_number(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  if v == math.floor(v) and math.abs(v) < 1e16 then return string.format("%.1f", v) end
  -- 15 digits are exact for a double whose shortest form has at most 15 (%g drops
  -- trailing zeros); a subnormal has fewer significant bits, so try from 1
  for digits = math.abs(v) < 2.2250738585072014e-308 and 1 or 15, 16 do
    local s = string.format("%." .. digits .. "g", v)
    if tonumber(s) == v then return s end
  end
  -- 17 digits: %.17g would write 1e16..1e17 without an exponent, Python with one
  return string.format(math.abs(v) >= 1e16 and "%.16e" or "%.17g", v)
end

------------------------------------------------------------------------------
-- CSV (RFC 4180)
------------------------------------------------------------------------------

-- csv_field(s): s as a CSV cell: quoted, with its quotes doubled, when it holds a
-- comma, a double quote, a carriage return or a line feed (Python's csv module,
-- QUOTE_MINIMAL); as it is otherwise.
function util.csv_field(s)
  if s:find('[,"\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- csv_line(cells): one record, cells already strings, ended by "\n".
function util.csv_line(cells)
  local out = {}
  for i, c in ipairs(cells) do out[i] = util.csv_field(c) end
  return table.concat(out, ",") .. "\n"
end

-- csv_records(text) -> iterator of (cells, line, ended): every record of a CSV
-- text, as an array of strings, with the line its record starts on and whether a
-- line break ends it (false for a last record cut off by the end of the text: a
-- writer killed mid-row, or a file written without a final newline). Quoted
-- cells may hold commas, doubled quotes and line breaks; records end with "\n" or
-- "\r\n"; blank lines are skipped. As Python's csv reader, characters after a
-- closing quote up to the next comma belong to the cell. An unterminated quote
-- is an error: nil, "line N: unterminated quoted cell" is returned in place of
-- the cells.
function util.csv_records(text)
  local pos, line, n = 1, 1, #text
  return function()
    while pos <= n do
      local c = text:sub(pos, pos)
      if c == "\n" then pos, line = pos + 1, line + 1
      elseif c == "\r" and text:sub(pos + 1, pos + 1) == "\n" then pos, line = pos + 2, line + 1
      else break end
    end
    if pos > n then return nil end
    local start_line = line
    local cells, cell = {}, {}
    while true do
      if text:sub(pos, pos) == '"' then
        pos = pos + 1
        while true do
          local q = text:find('"', pos, true)
          if not q then
            pos = n + 1
            return nil, ("line %d: unterminated quoted cell"):format(start_line)
          end
          local piece = text:sub(pos, q - 1)
          local _, breaks = piece:gsub("\n", "")
          line = line + breaks
          cell[#cell + 1] = piece
          if text:sub(q + 1, q + 1) == '"' then
            cell[#cell + 1] = '"'
            pos = q + 2
          else
            pos = q + 1
            break
          end
        end
      end
      -- unquoted text (or what follows a closing quote) up to the cell's end
      local e = text:find("[,\r\n]", pos)
      while e and text:sub(e, e) == "\r" and text:sub(e + 1, e + 1) ~= "\n" do
        e = text:find("[,\r\n]", e + 1)
      end
      cell[#cell + 1] = text:sub(pos, (e or n + 1) - 1)
      cells[#cells + 1] = table.concat(cell)
      cell = {}
      if not e then
        pos = n + 1
        return cells, start_line, false
      end
      local sep = text:sub(e, e)
      if sep == "," then
        pos = e + 1
      else
        pos = e + (sep == "\r" and 2 or 1)
        line = line + 1
        return cells, start_line, true
      end
    end
  end
end

return util
