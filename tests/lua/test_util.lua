-- Small helpers the Lua specs share: a fresh temporary directory, a file's text,
-- the message of an expected error, and checks on a message's text.
-- (tests/tests.cmake puts tests/lua/ on LUA_PATH: `local U = require "test_util"`.)
local ml = require "moonlight"
local assert = require "luassert" -- busted's assert (a required module does not get the spec's)

local M = {}

-- a new empty directory under the system's temporary directory
function M.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(ml._sys.mkdir_p(p))
  return p
end

-- the whole content of the file at path (an error where it cannot be opened)
function M.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- the message of the error that f(...) must raise, as a string
function M.err(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- "spec_file:line:" of the caller's line, as error() writes it
function M.here()
  local info = debug.getinfo(2, "Sl")
  return info.short_src .. ":" .. info.currentline .. ":"
end

-- s contains part (plain text, not a pattern)
function M.has(s, part)
  assert(s:find(part, 1, true), ("expected %q in %q"):format(part, s))
end

function M.starts_with(prefix, s)
  assert(s:sub(1, #prefix) == prefix, ("expected %q to start with %q"):format(s, prefix))
end

return M
