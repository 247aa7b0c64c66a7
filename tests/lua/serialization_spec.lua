-- ml.save / ml.load: safetensors checkpoints. The reference file was written from
-- PyTorch tensors in the reference writer's layout (scripts/fixtures/safetensors.py).
local ml = require "moonlight"
local F = ml.F
local read_file = require("test_util").read_file
local fx = dofile("tests/fixtures/safetensors.lua")

local tmpdir = os.getenv("TMPDIR") or "/tmp"
local function tmpname(tag)
  return string.format("%s/ml_ser_%s_%d_%d.safetensors", tmpdir, tag, os.time(), math.random(1 << 30))
end

local function close(a, b, tol)
  if type(a) == "table" then
    assert.are.equal(#b, #a)
    for i = 1, #a do close(a[i], b[i], tol) end
  else
    assert.is_true(math.abs(a - b) <= tol, string.format("%.17g vs %.17g", a, b))
  end
end

describe("ml.load", function()
  it("reads a checkpoint written from PyTorch: every dtype, 0-dim and empty tensors, metadata", function()
    local t, meta = ml.load(fx.file)
    assert.are.same(fx.metadata, meta)
    local n = 0
    for name, want in pairs(fx.tensors) do
      n = n + 1
      local got = assert(t[name], name)
      assert.are.equal(want.dtype, got.dtype)
      assert.are.same(want.shape, got:shape())
      if got:numel() > 0 then
        if got:dim() == 0 then close(got:item(), want.values, 0)
        else close(got:double():totable(), want.values, 0) end
      end
    end
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    assert.are.equal(n, count)
  end)

  it("gives a PyTorch model's weights that predict as PyTorch does", function()
    local p = ml.load(fx.file)
    local x = ml.tensor(fx.x)
    local y = F.linear(F.relu(F.linear(x, p["0.weight"], p["0.bias"])), p["2.weight"], p["2.bias"])
    close(y:double():totable(), fx.y, 1e-6)
  end)

  it("reports missing, truncated and corrupt files", function()
    local ok, e = pcall(ml.load, "/nonexistent/m.safetensors")
    assert.is_false(ok)
    assert.truthy(e:find("load: cannot open '/nonexistent/m.safetensors'", 1, true))
    local bytes = read_file(fx.file)
    local function with(content, tag)
      local path = tmpname(tag)
      local f = assert(io.open(path, "wb")); f:write(content); f:close()
      local ok2, err = pcall(ml.load, path)
      os.remove(path)
      assert.is_false(ok2)
      return err
    end
    assert.truthy(with("abc", "short"):find("not a safetensors file", 1, true))
    assert.truthy(with(string.pack("<I8", 1 << 40) .. "{}", "hlen"):find("header length", 1, true))
    assert.truthy(with(bytes:sub(1, #bytes - 4), "trunc"):find("data_offsets outside", 1, true))
    assert.truthy(with(string.pack("<I8", 5) .. "{oops", "json"):find("not a JSON object", 1, true))
    local h = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}'
    assert.truthy(with(string.pack("<I8", #h) .. h .. "\0\0\0\0", "span"):find("spans 4 bytes", 1, true))
    h = '{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}'
    assert.truthy(with(string.pack("<I8", #h) .. h .. "\0\0", "dtype"):find("dtype F16", 1, true))
    assert.has_error(function() ml.load(42) end, "load: path must be a string, got number")
    assert.has_error(function() ml.load(fx.file, {devcie = "cpu"}) end)
  end)
end)

describe("ml.save", function()
  it("round-trips tensors of every dtype, views included, with metadata", function()
    local base = ml.arange(12):view({3, 4})
    local sd = {
      w = base:t(),                                    -- a strided view
      ids = ml.tensor({{1, -2}, {3, 4}}, {dtype = "int64"}),
      m = ml.tensor({1, 0, 1}, {dtype = "uint8"}),
      d = ml.tensor(1.5, {dtype = "float64"}),         -- 0-dim
      e = ml.zeros({0, 2}),
    }
    local path = tmpname("rt")
    ml.save(sd, path, {note = "hi", epoch = 3})
    local back, meta = ml.load(path)
    os.remove(path)
    assert.are.same({note = "hi", epoch = "3"}, meta)
    for k, v in pairs(sd) do
      assert.are.equal(v.dtype, back[k].dtype, k)
      assert.are.same(v:shape(), back[k]:shape(), k)
      assert.are.same(v:totable(), back[k]:totable(), k)
    end
  end)

  it("writes the safetensors layout: LE header length, 8-aligned JSON, raw LE data", function()
    local path = tmpname("layout")
    ml.save({b = ml.tensor({1.5, -2}), a = ml.tensor({7}, {dtype = "int64"})}, path)
    local s = read_file(path)
    os.remove(path)
    local hlen = string.unpack("<I8", s)
    assert.are.equal(0, (8 + hlen) % 8)
    local header = s:sub(9, 8 + hlen)
    assert.truthy(header:find('"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}', 1, true))
    assert.truthy(header:find('"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}', 1, true))
    assert.falsy(header:find("__metadata__", 1, true))
    local data = s:sub(9 + hlen)
    assert.are.equal(string.pack("<i8<f<f", 7, 1.5, -2), data)
  end)

  it("replaces a checkpoint atomically and leaves no temporary file", function()
    local path = tmpname("atomic")
    ml.save({x = ml.ones({2})}, path)
    ml.save({x = ml.zeros({3})}, path)
    assert.are.same({0, 0, 0}, ml.load(path).x:totable())
    -- a failing save leaves the old file as it was
    assert.has_error(function() ml.save({x = ml.ones({2}), y = "no"}, path) end,
                     "save: 'y' is a string, expected a tensor")
    assert.are.same({0, 0, 0}, ml.load(path).x:totable())
    os.remove(path)
    local dir = path:match("^(.*)/")
    local p = io.popen("ls " .. dir)
    local listing = p:read("a")
    p:close()
    assert.falsy(listing:find(path:match("([^/]*)$") .. ".tmp", 1, true))
  end)

  it("checks its arguments", function()
    assert.has_error(function() ml.save(ml.ones({2}), "/tmp/x") end)
    assert.has_error(function() ml.save({[1] = ml.ones({2})}, tmpname("k")) end,
                     "save: tensor names must be strings, got a number key")
    assert.has_error(function() ml.save({x = ml.ones({1})}, tmpname("m"), {k = {}}) end)
    assert.has_error(function() ml.save({__metadata__ = ml.ones({1})}, tmpname("r")) end,
                     "save: '__metadata__' is reserved and cannot name a tensor")
    local ok, e = pcall(ml.save, {x = ml.ones({1})}, "/nonexistent/dir/m.safetensors")
    assert.is_false(ok)
    assert.truthy(e:find("save: cannot create a file next to '/nonexistent/dir/m.safetensors'", 1, true))
  end)
end)
