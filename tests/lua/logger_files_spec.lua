-- The CSVLogger's files: metrics.csv per RFC 4180, read back by ml.history (the
-- reader behind `moonlight plot`), and hparams.yaml read back by a real YAML
-- parser: libyaml through Debian's lua-yaml (lyaml), installed by scripts/deps.
local ml = require "moonlight"
local history = require "moonlight.history"
local U = require "test_util"
local tmpdir, read_file = U.tmpdir, U.read_file

local has_lyaml, lyaml = pcall(require, "lyaml")
assert(has_lyaml, "lyaml (Debian's lua-yaml) is needed to read hparams.yaml back: run scripts/deps")

describe("metrics.csv (RFC 4180)", function()
  it("round-trips a metric name with a comma and a quote through the logger and the reader", function()
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "csv"})
    local odd = 'loss, "train"'
    logger:log_metrics({[odd] = 0.5, epoch = 0}, 0)
    logger:log_metrics({[odd] = 0.25, epoch = 0}, 1)
    logger:log_metrics({["val\nacc"] = 1e15, epoch = 0}, 2) -- a new column: the file is rewritten
    logger:log_metrics({[odd] = 0 / 0, ["val\nacc"] = math.huge, epoch = 1}, 3)
    -- Lightning's layout: columns sorted by name, empty cells; quoted where needed
    assert.are.equal(table.concat({
      'epoch,"loss, ""train""",step,"val\nacc"',
      "0,0.5,0,",
      "0,0.25,1,",
      "0,,2,1000000000000000.0",
      "1,nan,3,inf",
    }, "\n") .. "\n", read_file(logger.metrics_file))
    local h = history.read(logger.metrics_file)
    assert.are.same({"epoch", odd, "step", "val\nacc"}, h.columns)
    assert.are.equal(4, #h.rows)
    assert.are.equal(0.5, h.rows[1][odd])
    assert.are.equal(0.25, h.rows[2][odd])
    assert.is_nil(h.rows[3][odd])
    assert.are.equal(1e15, h.rows[3]["val\nacc"])
    local nan = h.rows[4][odd]
    assert.is_true(type(nan) == "number" and nan ~= nan)
    assert.are.equal(math.huge, h.rows[4]["val\nacc"])
    assert.are.same({0, 1, 2, 3}, {h.rows[1].step, h.rows[2].step, h.rows[3].step, h.rows[4].step})
    -- the per-epoch table and the plot read the same file
    local per = history.per_epoch(h)
    assert.are.equal(2, #per)
    assert.matches("NaN", history.format_table(per, h.columns), 1, true)
    local png = logger.log_dir .. "/curves.png"
    history.plot(logger.metrics_file, png)
    assert.are.equal("\137PNG", read_file(png):sub(1, 4))
  end)

  it("reads files written by other CSV writers (CRLF, quoted plain cells) and reports bad ones", function()
    local dir = tmpdir()
    local path = dir .. "/m.csv"
    local f = assert(io.open(path, "wb"))
    f:write('"epoch","a,b",step\r\n0,"1.5",0\r\n\r\n1,,1\r\n')
    f:close()
    local h = history.read(path)
    assert.are.same({"epoch", "a,b", "step"}, h.columns)
    assert.are.same({{epoch = 0, ["a,b"] = 1.5, step = 0}, {epoch = 1, step = 1}}, h.rows)
    f = assert(io.open(path, "wb"))
    f:write('epoch,loss\n0,"0.5\n1,0.25\n')
    f:close()
    local ok, e = pcall(history.read, path)
    assert.is_false(ok)
    assert.matches("history.read: " .. path .. " line 2: unterminated quoted cell", e, 1, true)
    f = assert(io.open(path, "wb"))
    f:write('epoch,loss\n0,"0,5",7\n')
    f:close()
    ok, e = pcall(history.read, path)
    assert.is_false(ok)
    assert.matches("line 2 has 3 cells, the header 2", e, 1, true)
  end)

  it("reads a file up to its last complete row when the writer was killed mid-row", function()
    local path = tmpdir() .. "/m.csv"
    local function read_text(text)
      local f = assert(io.open(path, "wb"))
      f:write(text)
      f:close()
      return history.read(path)
    end
    -- a row cut off: fewer cells than the header and no line break
    local h = read_text("epoch,loss,step\n0,0.5,0\n0,0.25,1\n0,0.1")
    assert.is_true(h.truncated)
    assert.are.same({{epoch = 0, loss = 0.5, step = 0}, {epoch = 0, loss = 0.25, step = 1}}, h.rows)
    h = read_text("epoch,loss,step\n0,0.5,0\n0,")
    assert.is_true(h.truncated)
    assert.are.equal(1, #h.rows)
    -- a whole last row without its newline (a file written by hand) is kept
    h = read_text("epoch,loss,step\n0,0.5,0\n0,0.25,1")
    assert.is_false(h.truncated)
    assert.are.equal(2, #h.rows)
    -- a short row that a line break ends is still an error
    local ok, e = pcall(read_text, "epoch,loss,step\n0,0.5\n0,0.25,1\n")
    assert.is_false(ok)
    assert.matches("line 2 has 2 cells, the header 3", e, 1, true)
  end)

  it("says what is wrong, at the caller's line, when the file cannot be read", function()
    local ok, e = pcall(history.read, "/nonexistent/metrics.csv")
    assert.is_false(ok)
    assert.matches("logger_files_spec.lua:%d+: history.read: cannot open /nonexistent/metrics.csv: No such file", e)
    ok, e = pcall(history.read, 3)
    assert.is_false(ok)
    assert.matches("history.read: expected the path of a metrics.csv, got number", e, 1, true)
  end)
end)

describe("the CSVLogger", function()
  it("keeps no rows in memory: a long run logs in constant memory", function()
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "stream"})
    logger:log_metrics({loss = 1.0, epoch = 0}, 0)
    collectgarbage("collect")
    local before = collectgarbage("count")
    for i = 1, 5000 do logger:log_metrics({loss = 1 / i, epoch = i // 100}, i) end
    collectgarbage("collect")
    local grown_kb = collectgarbage("count") - before
    -- holding the rows took ~600 KB here (issue 17's soak: ~6 KB per 1,000 steps)
    assert.is_true(grown_kb < 64, ("the Lua heap grew by %.0f KB over 5000 rows"):format(grown_kb))
    local h = history.read(logger.metrics_file)
    assert.are.equal(5001, #h.rows)
    assert.are.equal(1 / 5000, h.rows[5001].loss)
  end)

  it("rewrites the file from the file when a column appears, keeping every row", function()
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "cols"})
    logger:log_metrics({b = 1, epoch = 0}, 0)
    logger:log_metrics({b = 2, epoch = 0}, 1)
    logger:log_metrics({a = 3, epoch = 0}, 2)
    logger:log_metrics({c = 4, b = 5, epoch = 1}, 3)
    assert.are.equal("a,b,c,epoch,step\n,1,,0,0\n,2,,0,1\n3,,,0,2\n,5,4,1,3\n", read_file(logger.metrics_file))
    -- no temporary file is left behind
    assert.is_nil(ml._sys.kind(logger.metrics_file .. ".tmp"))
    -- a new logger in the same version directory starts the file afresh
    local again = ml.loggers.CSVLogger(logger.save_dir, {name = "cols", version = 0})
    again:log_metrics({z = 1}, 0)
    assert.are.equal("step,z\n0,1\n", read_file(logger.metrics_file))
  end)
end)

describe("the plot's panels", function()
  local function titles(columns)
    local rows = {{step = 0}}
    for _, c in ipairs(columns) do rows[1][c] = 1.0 end
    local out = {}
    for _, p in ipairs(history.panels({columns = columns, rows = rows})) do
      local labels = {}
      for _, s in ipairs(p.series) do labels[#labels + 1] = s.label end
      out[#out + 1] = p.title .. ": " .. table.concat(labels, " ")
    end
    return out
  end

  it("pair curves by the name after a train_/val_/test_ prefix, as users log them", function()
    assert.are.same({"loss: train_loss val_loss"}, titles({"epoch", "step", "train_loss", "val_loss"}))
    assert.are.same({"acc: train_acc val_acc", "loss: train_loss val_loss"},
      titles({"epoch", "step", "train_acc", "train_loss", "val_acc", "val_loss"}))
    assert.are.same({"error: error val_error", "loss: loss val_loss"},
      titles({"epoch", "error", "loss", "step", "val_error", "val_loss"}))
    assert.are.same({"loss: loss_epoch loss_step test_loss val_loss"},
      titles({"epoch", "loss_epoch", "loss_step", "step", "test_loss", "val_loss"}))
    -- a name that is only a prefix stays itself
    assert.are.same({"train_: train_", "lr-Adam: lr-Adam"}, titles({"train_", "lr-Adam"}))
  end)
end)

-- expected == got, NaN equal to NaN; a float must come back a float
local function same(expected, got, path)
  path = path or "hparams"
  if type(expected) == "table" then
    assert(type(got) == "table", path .. ": expected a table, got " .. tostring(got))
    for k, v in pairs(expected) do same(v, got[k], path .. "[" .. tostring(k) .. "]") end
    for k in pairs(got) do
      assert(expected[k] ~= nil, path .. ": unexpected key " .. tostring(k))
    end
  elseif type(expected) == "number" and expected ~= expected then
    assert(type(got) == "number" and got ~= got, path .. ": expected nan, got " .. tostring(got))
  else
    assert(expected == got, ("%s: expected %q, got %q"):format(path, tostring(expected), tostring(got)))
    if math.type(expected) == "float" then
      assert(math.type(got) == "float", path .. ": expected a float, got " .. tostring(got))
    end
  end
end

local function yaml_of(hparams)
  local logger = ml.loggers.CSVLogger(tmpdir(), {name = "yaml"})
  logger:log_hyperparams(hparams)
  local text = read_file(logger.log_dir .. "/hparams.yaml")
  return text, lyaml.load(text)
end

describe("hparams.yaml", function()
  it("is laid out as Lightning (PyYAML's yaml.dump) writes it", function()
    -- python3 -c 'import yaml; print(yaml.dump({...}), end="")' with PyYAML 6.0
    local text = yaml_of({lr = 0.001, batch_size = 128, name = "custom_loss_model", betas = {0.9, 0.999},
                          layers = {hidden = {64, 32}, act = "relu"}, nested = {{1, 2}, {3}},
                          maps = {{a = 1, b = "x"}, {c = true}}, empty = {}, flag = false,
                          path = "/tmp/a b", small = 1e-05, big = 1e16, bad = 0 / 0, top = math.huge})
    assert.are.equal([[
bad: .nan
batch_size: 128
betas:
- 0.9
- 0.999
big: 1.0e+16
empty: {}
flag: false
layers:
  act: relu
  hidden:
  - 64
  - 32
lr: 0.001
maps:
- a: 1
  b: x
- c: true
name: custom_loss_model
nested:
- - 1
  - 2
- - 3
path: /tmp/a b
small: 1.0e-05
top: .inf
]], text)
    assert.are.equal("{}\n", (yaml_of({})))
  end)

  it("reads back with a YAML parser: strings, numbers, booleans, nested tables", function()
    local strings = {
      "", " ", "a", "relu", "custom_loss_model", "/tmp/a b", "a b", " lead", "trail ", "a  b",
      "1", "1.5", "-1", "+1", ".5", "1e5", "1E5", "0x10", "0o17", "0b101", "1_000", "_1.5", "_0xe",
      ".inf", "-.inf", ".nan", "nan", "inf", "-inf", "NaN", "Infinity",
      "true", "True", "FALSE", "yes", "No", "on", "OFF", "y", "N", "null", "Null", "~",
      "a: b", "a:b", "key:", "a #b", "#c", "- x", "-x", "-", "? q", "?", ":", "[1]", "{a}", "a]",
      "*ref", "&anchor", "!tag", "%dir", "@x", "`x", "|", ">", "'q'", '"dq"', "it's", 'say "hi"',
      "back\\slash", "tab\there", "line\nbreak", "two\n\nbreaks", "cr\rx", "\1\2\27\127",
      "é", "日本語", "\u{85}nel", "\u{a0}nbsp", "\u{feff}bom", "\u{2028}ls", "emoji 😀",
      "12:30", "190:20:30", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "a,b", "x=1", "<<", "=",
      string.rep("long ", 60), "---", "...", "a\t", "\tb",
    }
    local hp = {strings = strings, by_key = {}}
    -- (lyaml takes any "<<" key for a merge key, even a quoted one, which YAML does not)
    for i, s in ipairs(strings) do if s ~= "<<" then hp.by_key[s] = i end end
    hp.numbers = {0, -3, 2 ^ 53, math.maxinteger, math.mininteger, 0.1, 1.0, -0.0, 1e-05, 1e16,
                  1.5e300, 5e-324, 1 / 3, 0 / 0, math.huge, -math.huge, 123456789.123}
    hp.flags = {yes = true, no = false}
    hp.nested = {{1, {2, {3, {}}}}, {a = {b = {c = {"d"}}}}, {{x = 1}, {y = {1, 2}}}}
    hp.sparse = {[1] = "one", [3] = "three"}
    hp[1] = "a number key"
    hp[true] = "a boolean key"
    local text, back = yaml_of(hp)
    local expected = {}
    for k, v in pairs(hp) do expected[k] = v end
    same(expected, back)
    assert.is_nil(text:find("\r", 1, true)) -- line breaks in strings are escaped
    -- (lyaml cuts strings at a NUL, so that one is checked as text)
    assert.matches('nul: "a\\0b"\n', (yaml_of({nul = "a\0b"})), 1, true)
  end)

  it("writes tensors and other objects as their text, bytes that are not UTF-8 as \\xNN", function()
    local t = ml.tensor({1, 2})
    local text, back = yaml_of({t = t, f = print, obj = setmetatable({}, {__tostring = function() return "Obj()" end}),
                                raw = "a\255b"})
    assert.are.equal(tostring(t), back.t)
    assert.are.equal(tostring(print), back.f)
    assert.are.equal("Obj()", back.obj)
    assert.matches('raw: "a\\xFFb"', text, 1, true)
    assert.are.equal("a" .. utf8.char(0xFF) .. "b", back.raw) -- read back as U+00FF
  end)

  it("refuses a table that contains itself", function()
    local cyc = {a = 1}
    cyc.self = cyc
    local logger = ml.loggers.CSVLogger(tmpdir(), {name = "yaml"})
    local ok, e = pcall(logger.log_hyperparams, logger, {model = {cfg = cyc}})
    assert.is_false(ok)
    assert.matches("hparams 'model.cfg.self' holds a table that contains itself", e, 1, true)
  end)
end)
