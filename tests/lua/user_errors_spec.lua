-- What a new user hits (issue 17, 1g and 1j): integers exact in int64 tensors,
-- creation functions naming themselves, sizes refused before any allocation, a
-- table where a tensor belongs, optim.Adam(model), and errors raised in C
-- through library code naming the user's own line.
local ml = require "moonlight"
local F, nn, optim = ml.F, ml.nn, ml.optim
local U = require "test_util"
local err, here, has, starts_with = U.err, U.here, U.has, U.starts_with

describe("integers in int64 and uint8 tensors", function()
  local big = 9007199254740993 -- 2^53 + 1: not a double

  it("are exact from Lua integers, in ml.tensor and ml.full", function()
    assert.are.equal(big, ml.tensor({big}, {dtype = "int64"})[1]:item())
    assert.are.equal(big, ml.tensor(big, {dtype = "int64"}):item())
    assert.are.same({{big, -big}, {math.maxinteger, math.mininteger}},
                    ml.tensor({{big, -big}, {math.maxinteger, math.mininteger}}, {dtype = "int64"}):totable())
    assert.are.same({big, big}, ml.full({2}, big, {dtype = "int64"}):totable())
    assert.are.equal(math.mininteger, ml.full({1}, math.mininteger, {dtype = "long"})[1]:item())
  end)

  it("stay exact through fill_ and arithmetic with a Lua integer", function()
    local t = ml.zeros({2}, {dtype = "int64"})
    t:fill_(big)
    assert.are.same({big, big}, t:totable())
    assert.are.same({big + 1, big + 1}, (ml.ones({2}, {dtype = "int64"}) + big):totable())
    assert.are.same({1, 0}, (t:eq(big)):long():add(ml.tensor({0, -1}, {dtype = "int64"})):abs():totable())
  end)

  it("sum with wrap-around, as torch's int64 sums, not undefined behaviour", function()
    -- (found by fuzz_safetensors; the sanitizer build reports the overflow)
    local t = ml.tensor({1 << 62, 1 << 62, 1}, {dtype = "int64"})
    assert.are.equal(math.mininteger + 1, t:sum():item())
    assert.are.same({math.mininteger}, ml.tensor({{1 << 62}, {1 << 62}}, {dtype = "int64"}):sum(1):totable())
    assert.are.same({math.mininteger}, ml.tensor({{1 << 62, 1 << 62}}, {dtype = "int64"}):sum(2):totable())
  end)

  it("truncate floats toward zero, as before, and refuse what does not fit", function()
    assert.are.same({1, -1, 0}, ml.tensor({1.9, -1.9, true and 0}, {dtype = "int64"}):totable())
    assert.are.same({2, 255}, ml.tensor({2.7, 255}, {dtype = "uint8"}):totable())
    has(err(ml.tensor, {1, 0 / 0}, {dtype = "int64"}), "tensor: element 2 (nan) cannot be converted to int64")
    has(err(ml.tensor, {math.huge}, {dtype = "int64"}), "tensor: element 1 (inf) cannot be converted to int64")
    has(err(ml.tensor, {1e19}, {dtype = "int64"}), "cannot be converted to int64")
    has(err(ml.tensor, {{1, 300}}, {dtype = "uint8"}), "tensor: element 2 (300) is outside uint8's range 0..255")
    has(err(ml.tensor, {-1}, {dtype = "uint8"}), "outside uint8's range")
    has(err(ml.full, {2}, 256, {dtype = "uint8"}), "full: the value (256) is outside uint8's range 0..255")
    has(err(ml.full, {2}, 0 / 0, {dtype = "int64"}), "full: the value (nan) cannot be converted to int64")
    -- floats as today
    assert.are.equal(0.5, ml.tensor({0.5}):item())
    assert.are.equal(2 ^ 53, ml.tensor({big}, {dtype = "float64"}):item())
  end)
end)

describe("creation functions", function()
  it("name themselves in their errors, at the user's line", function()
    for _, name in ipairs({"zeros", "ones", "rand", "randn"}) do
      local where = here(); local e = err(function() return ml[name]({2, -1}) end)
      starts_with(where, e)
      has(e, name .. ": size -1 of dim 2 in shape [2, -1] is negative")
    end
    local where = here(); local e = err(function() return ml.full({-1}, 7) end)
    starts_with(where, e)
    has(e, "full: size -1 of dim 1 in shape [-1] is negative")
  end)

  it("refuse a size whose count or bytes overflow, or that exceeds memory by far, first", function()
    has(err(ml.zeros, {1 << 40, 1 << 40}), "zeros: shape [1099511627776, 1099511627776] has more "
        .. "elements than a tensor can hold")
    has(err(ml.ones, {1 << 61}, {dtype = "float64"}), "ones: a float64 tensor of shape "
        .. "[2305843009213693952] needs more than 2^63 bytes")
    -- the issue's case: 8015056820827586560 bytes was asked of the allocator
    local e = err(ml.rand, {1 << 20, 1 << 20, 1 << 20, 4})
    has(e, "rand: a float32 tensor of shape [1048576, 1048576, 1048576, 4] needs more than 2^63 bytes")
    e = err(ml.rand, {1 << 20, 1 << 20, 1 << 20, 1})
    has(e, "rand: a float32 tensor of shape [1048576, 1048576, 1048576, 1] needs 4611686018427387904 "
        .. "bytes (4.0 EiB), more than this machine's memory")
    e = err(ml.randn, {1 << 31, 1 << 31})
    has(e, "randn: a float32 tensor of shape [2147483648, 2147483648] needs more than 2^63 bytes")
    e = err(ml.randn, {1 << 21, 1 << 21})
    has(e, "randn: a float32 tensor of shape [2097152, 2097152] needs 17592186044416 bytes (16.0 TiB), "
        .. "more than this machine's memory")
    has(err(ml.arange, 0, 1e30), "arange: start 0, end 1e+30 and step 1 do not give a countable")
    has(err(ml.arange, 0, 0 / 0), "arange:")
    has(err(function() return ml.ones({1, 1}):expand({1 << 40, 1 << 40}) end), "expand: shape")
    has(err(function() return ml.ones({2}):view({1 << 62, 4, -1}) end), "view: shape")
    -- no element, but 2^40 empty tables: found by fuzzing (it hung)
    local empty = ml.zeros({1 << 40, 0})
    has(err(empty.totable, empty), "totable: a tensor of shape [1099511627776, 0] makes more Lua "
        .. "tables and numbers than Lua can index")
    has(tostring(empty), "...")
    assert.are.same({{}, {}}, ml.zeros({2, 0}):totable())
    -- and the library still works
    assert.are.equal(6, ml.ones({2, 3}):sum():item())
  end)
end)

describe("a Lua table where a tensor belongs", function()
  it("is named as one, with the way out", function()
    local t = ml.ones({2})
    local where = here(); local e = err(function() return F.mse_loss({1, 2}, t) end)
    starts_with(where, e)
    has(e, "mse_loss: argument 1 must be a tensor, got table (a Lua table: make it a tensor with ml.tensor(...))")
    has(err(function() return t + {1, 2} end), "add: argument 2 must be a tensor or a number, got table (a Lua table")
    has(err(function() return t:matmul({1, 2}) end), "matmul: argument 2 must be a tensor, got table (a Lua table")
    -- a C function reached through a tail call is found by name
    has(err(function() return nn.Linear(2, 3)({1, 2}) end), "linear: argument 1 must be a tensor, got table")
  end)
end)

describe("optim with a module", function()
  it("says to pass model:parameters()", function()
    local model = nn.Linear(2, 2)
    -- (no tail call: it would take the user's frame off the stack)
    local where = here(); local e = err(function() local o = optim.Adam(model, {lr = 1e-3}); return o end)
    starts_with(where, e)
    has(e, "Adam: params must be an array of tensors, got the module Linear itself: pass model:parameters()")
    has(err(function() return optim.SGD(nn.Sequential(nn.ReLU()), {lr = 0.1}) end),
        "SGD: params must be an array of tensors, got the module Sequential itself")
    -- the right call works
    assert.truthy(optim.Adam(model:parameters()))
  end)
end)

describe("errors raised in C through library code", function()
  it("name the user's line, not the library's", function()
    local x = ml.ones({2})
    local where = here(); local e = err(function() local l = nn.MSELoss({reduction = "bad"})(x, x); return l end)
    starts_with(where, e)
    has(e, "mse_loss: unknown reduction 'bad'")
    assert.falsy(e:find("lua/moonlight/", 1, true))
  end)
end)

describe("ml.save", function()
  local path = (os.getenv("TMPDIR") or "/tmp") .. "/ml_user_errors_" .. math.random(1 << 30) .. ".safetensors"

  it("refuses names and metadata a safetensors reader would refuse, so what it writes loads", function()
    local t = ml.ones({1})
    has(err(ml.save, {["a\xffb"] = t}, path), "save: tensor name 'a\xffb' is not valid UTF-8")
    has(err(ml.save, {["a\0b"] = t}, path), "save: tensor name 'a...' holds a NUL character")
    has(err(ml.save, {x = t}, path, {k = "\xc0\xaf"}), "save: metadata 'k' is not valid UTF-8")
    has(err(ml.save, {x = t}, path, {["\xed\xa0\x80"] = "v"}), "save: a metadata key is not valid UTF-8")
    has(err(ml.save, {x = t}, path, {k = "a\0"}), "save: metadata 'k' holds a NUL character")
    local where = here(); local e = err(function() local r = ml.save({x = t}, 42); return r end)
    starts_with(where, e)
    has(e, "save: path must be a string, got number")
    -- unicode is fine, and reads back
    ml.save({["poids.é"] = t}, path, {["clé"] = "valeur ✓"})
    local back, meta = ml.load(path)
    os.remove(path)
    assert.are.equal(1, back["poids.é"]:item())
    assert.are.equal("valeur ✓", meta["clé"])
  end)
end)
