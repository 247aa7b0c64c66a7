-- The Lua helper layer (lua/moonlight/util.lua): option checking with the C
-- checker's message shape, errors at the user's line, sets, Python's float repr,
-- CSV records (RFC 4180).
local ml = require "moonlight"
local util = require "moonlight.util"
local U = require "test_util"
local err, here, starts_with = U.err, U.here, U.starts_with

describe("util.check_options", function()
  local spec = {lr = "number", name = "string", flag = "boolean", size = "integer",
                shape = "number|table", any = true, cb = "callable", t = "tensor",
                depth = {"integer", 3}, mode = {"string", "min"}}

  it("accepts nil, known names and right types", function()
    assert.are.same({depth = 3, mode = "min"}, util.check_options("f", nil, spec))
    local opts = {lr = 0.1, name = "x", flag = false, size = 2.0, shape = {1}, any = print,
                  cb = setmetatable({}, {__call = print}), t = ml.zeros({1}), depth = 5}
    local out = util.check_options("f", opts, spec)
    assert.are.equal(5, out.depth)
    assert.are.equal("min", out.mode)
    assert.is_nil(opts.mode) -- the caller's table is not written
    local full = {depth = 1, mode = "max"}
    assert.are.equal(full, util.check_options("f", full, spec)) -- nothing to fill: the same table
    local set = util.set_of("a", "b")
    assert.are.same({a = 1}, util.check_options("f", {a = 1}, set))
  end)

  it("names the function, the key and what is accepted", function()
    assert.matches("f: unknown option 'lrr' %(expected one of: any, cb, depth, flag, lr, mode, name, "
                   .. "shape, size, t%)$", err(util.check_options, "f", {lrr = 1}, spec))
    assert.matches("f: option 'lr' must be a number, got string$",
                   err(util.check_options, "f", {lr = "1"}, spec))
    assert.matches("f: option 'size' must be an integer, got number$",
                   err(util.check_options, "f", {size = 1.5}, spec))
    assert.matches("f: option 'shape' must be a number or a table, got boolean$",
                   err(util.check_options, "f", {shape = true}, spec))
    assert.matches("f: option 'name' must be a string, got tensor$",
                   err(util.check_options, "f", {name = ml.zeros({1})}, spec))
    assert.matches("f: option 'cb' must be callable, got table$",
                   err(util.check_options, "f", {cb = {}}, spec))
    assert.matches("f: options must be a table, got number$", err(util.check_options, "f", 3, spec))
    assert.matches("f: options must be a table, got tensor$",
                   err(util.check_options, "f", ml.zeros({1}), spec))
    assert.matches("f: option names must be strings, got number$",
                   err(util.check_options, "f", {0.5}, spec))
    assert.matches("f: unknown param group key 'x' %(expected one of: a%)$",
                   err(util.check_options, "f", {x = 1}, {a = true}, "param group key"))
  end)

  it("gives the same messages as the C checker (src/lua/util.c)", function()
    local x = ml.zeros({2})
    -- strip "file:line: fname: " and compare what follows
    local function tail(e) return (e:gsub("^.-: ", ""):gsub("^[%w_.]+: ", "")) end
    local c = err(ml.F.smooth_l1_loss, x, x, {beta = "x"})
    local lua = err(util.check_options, "smooth_l1_loss", {beta = "x"}, {reduction = "string", beta = "number"})
    assert.matches("smooth_l1_loss: option 'beta' must be a number, got string$", c)
    assert.are.equal(tail(c), tail(lua))
    c = err(ml.F.mse_loss, x, x, {reduction = x})
    assert.matches("mse_loss: option 'reduction' must be a string, got tensor$", c)
    c = err(ml.F.mse_loss, x, x, {zz = 1})
    lua = err(util.check_options, "mse_loss", {zz = 1}, {reduction = "string"})
    assert.matches("mse_loss: unknown option 'zz' %(expected one of: reduction%)$", c)
    assert.are.equal(tail(c), tail(lua))
    c = err(ml.F.mse_loss, x, x, 5)
    lua = err(util.check_options, "mse_loss", 5, {reduction = "string"})
    assert.matches("mse_loss: options must be a table, got number$", c)
    assert.are.equal(tail(c), tail(lua))
    c = err(ml.F.mse_loss, x, x, {1})
    lua = err(util.check_options, "mse_loss", {1}, {reduction = "string"})
    assert.matches("mse_loss: option names must be strings, got number$", c)
    assert.are.equal(tail(c), tail(lua))
    assert.matches("clamp: option 'min' must be a number, got string$", err(function() x:clamp({min = "0"}) end))
    assert.matches("zeros: option 'requires_grad' must be a boolean, got number$",
                   err(ml.zeros, {2}, {requires_grad = 1}))
  end)
end)

describe("errors at the user's line", function()
  local p = ml.zeros({2}, {requires_grad = true})

  it("through a tail call (optim.Adam), a class constructor and a deep check", function()
    local at, e = here(), err(function() ml.optim.Adam({p}, {learning_rate = 1}) end)
    starts_with(at .. " Adam: unknown option 'learning_rate'", e)
    at, e = here(), err(function() ml.optim.Adam({p}, {lr = -1}) end)
    starts_with(at .. " Adam: invalid learning rate: -1", e)
    at, e = here(), err(function() ml.optim.SGD({{params = {p}, lrr = 1}}, {lr = 1}) end)
    starts_with(at .. " SGD: unknown param group key 'lrr'", e)
    at, e = here(), err(function() ml.nn.Linear(2, 3, {bais = false}) end)
    starts_with(at .. " nn.Linear: unknown option 'bais'", e)
    at, e = here(), err(function() ml.nn.Linear(2, 3, {bias = 0}) end)
    starts_with(at .. " nn.Linear: option 'bias' must be a boolean, got number", e)
    local ds = ml.data.TensorDataset(ml.zeros({4, 2}))
    at, e = here(), err(function() ml.data.DataLoader(ds, {bs = 2}) end)
    starts_with(at .. " DataLoader: unknown option 'bs'", e)
    at, e = here(), err(function() ml.loggers.CSVLogger(os.tmpname(), {nmae = "x"}) end)
    starts_with(at .. " CSVLogger: unknown option 'nmae'", e)
    at, e = here(), err(function() ml.callbacks.ModelCheckpoint({monitor = 1}) end)
    starts_with(at .. " ModelCheckpoint: option 'monitor' must be a string, got number", e)
    at, e = here(), err(function() ml.Trainer({max_epoch = 1}) end)
    starts_with(at .. " Trainer: unknown option 'max_epoch'", e)
    at, e = here(), err(function() ml.load("x.safetensors", {devcie = "cpu"}) end)
    starts_with(at .. " load: unknown option 'devcie' (expected one of: device)", e)
    at, e = here(), err(function() ml.load("x.safetensors", {device = 0}) end)
    starts_with(at .. " load: option 'device' must be a string, got number", e)
  end)

  it("from self:log inside a training step run by the Trainer", function()
    local Net = ml.nn.Module:extend("LogNet")
    function Net:init() self.lin = ml.nn.Linear(2, 1) end
    function Net:forward(x) return self.lin(x) end
    local at
    function Net:training_step(batch)
      local loss = self(batch[1]):mean()
      at = here(); self:log("loss", loss, {prog_bar = "yes"})
      return loss
    end
    function Net:configure_optimizers() return ml.optim.SGD(self:parameters(), {lr = 0.1}) end
    local loader = ml.data.DataLoader(ml.data.TensorDataset(ml.zeros({4, 2})), {batch_size = 2})
    local trainer = ml.Trainer({max_epochs = 1, logger = false, enable_checkpointing = false,
                                enable_progress_bar = false, enable_model_summary = false})
    local e = err(function() trainer:fit(Net(), loader) end)
    assert.matches("log: option 'prog_bar' must be a boolean, got string", e, 1, true)
    assert.truthy(e:find(at, 1, true), e)
  end)
end)

describe("util sets", function()
  it("set_of and sorted_keys", function()
    assert.are.same({a = true, b = true}, util.set_of("a", "b"))
    assert.are.same({}, util.set_of())
    assert.are.same({1, 2, "a", "b"}, util.sorted_keys({b = 1, a = 1, [2] = 1, [1] = 1}))
  end)
end)

describe("util.format_number (Python's repr)", function()
  it("writes what Python's repr writes", function()
    -- from python3: repr(v)
    local cases = {
      {0.1, "0.1"}, {1.0, "1.0"}, {-0.0, "-0.0"}, {100.0, "100.0"}, {1e16, "1e+16"},
      {1e15, "1000000000000000.0"}, {1.5e15, "1500000000000000.0"},
      {123456789012345.6, "123456789012345.6"}, {1234567890123456.8, "1234567890123456.8"},
      {1e-05, "1e-05"}, {0.0001, "0.0001"}, {1 / 3, "0.3333333333333333"},
      {2 / 3, "0.6666666666666666"}, {1e300, "1e+300"}, {5e-324, "5e-324"},
      {0.1 + 0.2, "0.30000000000000004"}, {123456789.123, "123456789.123"},
      {9007199254740993.0, "9007199254740992.0"}, {1e22, "1e+22"},
      {1.7976931348623157e308, "1.7976931348623157e+308"}, {2.5e-7, "2.5e-07"},
      {1e16 + 2, "1.0000000000000002e+16"}, {-45953020117616424.0, "-4.5953020117616424e+16"},
      {0.011748, "0.011748"}, {0 / 0, "nan"}, {math.huge, "inf"}, {-math.huge, "-inf"},
      {3, "3"}, {-7, "-7"}, {math.mininteger, tostring(math.mininteger)},
    }
    for _, c in ipairs(cases) do assert.are.equal(c[2], util.format_number(c[1])) end
  end)

  it("reads back as the same double, with at most 17 digits", function()
    math.randomseed(7)
    for _ = 1, 2000 do
      local v = string.unpack("<d", string.pack("<i8", math.random(math.mininteger, math.maxinteger)))
      if v == v and v - v == 0 then
        local s = util.format_number(v)
        assert.are.equal(v, tonumber(s), s)
        local digits = s:gsub("e.*$", ""):gsub("[^%d]", ""):gsub("^0+", "")
        assert.is_true(#digits <= 17, s)
      end
    end
  end)
end)

describe("util CSV (RFC 4180)", function()
  local function records(text)
    local out = {}
    local it = util.csv_records(text)
    while true do
      local cells, line = it()
      if not cells then
        if line then error(line) end
        return out
      end
      out[#out + 1] = {cells = cells, line = line}
    end
  end

  it("quotes only cells that need it, quotes doubled", function()
    assert.are.equal("plain", util.csv_field("plain"))
    assert.are.equal('"a,b"', util.csv_field("a,b"))
    assert.are.equal('"say ""hi"""', util.csv_field('say "hi"'))
    assert.are.equal('"two\nlines"', util.csv_field("two\nlines"))
    assert.are.equal('"cr\r"', util.csv_field("cr\r"))
    assert.are.equal(" spaced ", util.csv_field(" spaced "))
    assert.are.equal('a,"b,c",,"d""e"\n', util.csv_line({"a", "b,c", "", 'd"e'}))
  end)

  it("reads back every cell written", function()
    local rows = {{"loss, \"train\"", "x", ""}, {"a\nb", '"', ",,"}, {"", "", ""}, {"\r\n", "é", "1.5"}}
    local text = ""
    for _, r in ipairs(rows) do text = text .. util.csv_line(r) end
    local got = records(text)
    assert.are.equal(#rows, #got)
    for i, r in ipairs(rows) do assert.are.same(r, got[i].cells) end
    assert.are.same({1, 2, 4, 5}, {got[1].line, got[2].line, got[3].line, got[4].line})
  end)

  it("takes CRLF, blank lines, a missing last newline, and text after a closing quote", function()
    local got = records('a,b\r\n\r\n1,2\n\n"x"y,3')
    assert.are.same({{"a", "b"}, {"1", "2"}, {"xy", "3"}}, {got[1].cells, got[2].cells, got[3].cells})
    assert.are.same({1, 3, 5}, {got[1].line, got[2].line, got[3].line})
    assert.are.same({{"a", ""}}, {records("a,")[1].cells})
  end)

  it("reports an unterminated quote with its line", function()
    assert.matches("line 2: unterminated quoted cell", err(records, 'a,b\n"x,1\n2,3\n'))
  end)
end)
