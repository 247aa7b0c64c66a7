-- The emulated GPU's source rewrite (cmake/cuda_emu.cmake runs it on every
-- kernels/*.cu and *.cuh before g++ compiles them):
--
--   lua5.4 emu/launch_rewrite.lua IN OUT
--
-- Three CUDA constructs are not C++ and no macro can express them:
--   k<<<grid, block[, shmem[, stream]]>>>(args)
--     -> ::ml_emu::launch(::ml_emu::config(grid, block, ...), {"k", __FILE__, __LINE__},
--                         [&](auto &...p) { k(p...); }, args)
--     The lambda keeps the call syntax, so a kernel template still deduces its
--     arguments; ml_emu::launch evaluates args once and runs the lambda in every
--     thread of every block (emu/include/ml_emu/launch.h). An argument that is
--     just NULL becomes nullptr: stored, NULL would be a long, which no longer
--     converts to the kernel's pointer parameter.
--   __shared__ T name[n];
--     -> static T name[n]; [[maybe_unused]] const bool ml_emu_shared_name =
--            ::ml_emu::shared_static(name, sizeof name);
--     one copy per kernel (blocks run one at a time), registered when a thread
--     reaches it so that the emulator counts the block's static shared memory
--     and fills it with garbage at the start of each block, as a GPU leaves it.
--   extern __shared__ T name[];
--     -> T *const name = static_cast<T *>(::ml_emu::shared_dynamic());
--     the launch's dynamic shared memory (inside a function only).
-- Everything else is left byte for byte, on the same lines, and the output starts
-- with #line, so compiler messages and sanitizer reports name the original file
-- and line. Comments and string literals are never rewritten.
local in_path, out_path = arg[1], arg[2]
if not in_path or not out_path then
  io.stderr:write("usage: lua5.4 launch_rewrite.lua IN OUT\n")
  os.exit(2)
end

local function fail(msg)
  io.stderr:write(("%s: %s\n"):format(in_path, msg))
  os.exit(1)
end

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- The line number of byte position pos in s (for error messages).
local function line_of(s, pos)
  local _, n = s:sub(1, pos):gsub("\n", "")
  return n + 1
end

-- A copy of s of the same length in which comments and the insides of string and
-- character literals are blanked, so that searches see code only.
local function code_only(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local two = s:sub(i, i + 1)
    local c = s:sub(i, i)
    if two == "//" then
      local j = (s:find("\n", i, true) or n + 1) - 1
      out[#out + 1] = (" "):rep(j - i + 1)
      i = j + 1
    elseif two == "/*" then
      local _, j = s:find("*/", i + 2, true)
      j = j or n
      out[#out + 1] = (s:sub(i, j):gsub("[^\n]", " "))
      i = j + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n and s:sub(j, j) ~= c do
        if s:sub(j, j) == "\\" then j = j + 1 end
        j = j + 1
      end
      out[#out + 1] = c .. (" "):rep(j - i - 1) .. c
      i = j + 1
    else
      local j = (s:find("[/\"']", i + 1) or n + 1) - 1
      out[#out + 1] = s:sub(i, j)
      i = j + 1
    end
  end
  return table.concat(out)
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- The start of the kernel expression that ends just before position p (the
-- "<<<"): an identifier, possibly qualified, possibly with template arguments.
local function kernel_start(code, p)
  local e = p - 1
  while e > 0 and code:sub(e, e):match("%s") do e = e - 1 end
  if code:sub(e, e) == ">" then -- template arguments: back to the matching "<"
    local depth = 0
    while e > 0 do
      local ch = code:sub(e, e)
      if ch == ">" then depth = depth + 1 elseif ch == "<" then depth = depth - 1 end
      if depth == 0 then break end
      if ch == ";" or ch == "{" or ch == "}" then e = 0 end
      e = e - 1
    end
    if e <= 0 then fail(("line %d: cannot find the kernel's template arguments"):format(line_of(code, p))) end
    e = e - 1
  end
  local s = e
  while s > 0 and code:sub(s, s):match("[%w_:]") do s = s - 1 end
  if s == e then fail(("line %d: no kernel name before <<<"):format(line_of(code, p))) end
  return s + 1
end

-- args with every comma-separated piece that is just NULL made nullptr.
local function null_to_nullptr(args)
  local pieces = {}
  for piece in (args .. ","):gmatch("([^,]*),") do
    pieces[#pieces + 1] = trim(piece) == "NULL" and piece:gsub("NULL", "nullptr") or piece
  end
  return table.concat(pieces, ",")
end

-- Edits {from, to, text} for every launch.
local function launch_edits(src, code, edits)
  local pos = 1
  while true do
    local p = code:find("<<<", pos, true)
    if not p then break end
    local q = code:find(">>>", p + 3, true)
    if not q then fail(("line %d: <<< without >>>"):format(line_of(code, p))) end
    local a = code:find("%S", q + 3)
    local b = a and code:sub(a, a) == "(" and select(2, code:find("^%b()", a))
    if not b then fail(("line %d: no argument list after >>>"):format(line_of(code, p))) end
    local s = kernel_start(code, p)
    local name = trim(src:sub(s, p - 1))
    local args = null_to_nullptr(src:sub(a + 1, b - 1))
    local text = ('::ml_emu::launch(::ml_emu::config(%s), {"%s", __FILE__, __LINE__}, ' ..
                  '[&](auto &...ml_emu_p) { %s(ml_emu_p...); }%s%s)'):format(
      src:sub(p + 3, q - 1), name, name, args:match("%S") and ", " or "", args)
    edits[#edits + 1] = {s, b, text}
    pos = b + 1
  end
end

-- Edits for every __shared__ declaration.
local function shared_edits(src, code, edits)
  local pos = 1
  while true do
    local p, pe = code:find("%f[%w_]__shared__%f[^%w_]", pos)
    if not p then break end
    local semi = code:find(";", pe, true)
    if not semi then fail(("line %d: __shared__ without ;"):format(line_of(code, p))) end
    local decl = trim(src:sub(pe + 1, semi - 1))
    local ext_from = code:sub(1, p - 1):find("%f[%w_]extern%s+$")
    if ext_from then
      local ty, name = decl:match("^(.-)%s*([%a_][%w_]*)%s*%[%s*%]$")
      if not ty then fail(("line %d: extern __shared__ must be T name[]"):format(line_of(code, p))) end
      ty = trim(ty:gsub("__align__%s*%b()", ""))
      edits[#edits + 1] = {ext_from, semi, ("%s *const %s = static_cast<%s *>(::ml_emu::shared_dynamic());")
                           :format(ty, name, ty)}
    else
      if decl:find("=") or decl:gsub("%b<>", ""):gsub("%b[]", ""):find(",") then
        fail(("line %d: one __shared__ variable per declaration, without an initializer")
             :format(line_of(code, p)))
      end
      local name = decl:match("([%a_][%w_]*)%s*%[") or decl:match("([%a_][%w_]*)$")
      edits[#edits + 1] = {p, semi, ("static %s; [[maybe_unused]] const bool ml_emu_shared_%s = " ..
                                     "::ml_emu::shared_static(%s, sizeof %s);"):format(decl, name, name, name)}
    end
    pos = semi + 1
  end
end

local src = read_all(in_path)
local code = code_only(src)
assert(#code == #src)
local edits = {}
launch_edits(src, code, edits)
shared_edits(src, code, edits)
table.sort(edits, function(x, y) return x[1] > y[1] end)
for i = 2, #edits do
  if edits[i][2] >= edits[i - 1][1] then fail("overlapping rewrites at line " .. line_of(src, edits[i][1])) end
end
for _, e in ipairs(edits) do src = src:sub(1, e[1] - 1) .. e[3] .. src:sub(e[2] + 1) end

local abs = in_path:sub(1, 1) == "/" and in_path or (os.getenv("PWD") or ".") .. "/" .. in_path
local out = assert(io.open(out_path, "wb"))
out:write(('#line 1 "%s"\n'):format(abs), src)
out:close()
