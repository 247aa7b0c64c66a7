local ml = require "moonlight"
local M = ml.metrics
local fixtures = dofile("tests/fixtures/metrics.lua")

local function close(a, b, tol)
  tol = tol or 1e-6
  return math.abs(a - b) <= tol
end

local function by_name(name)
  for _, c in ipairs(fixtures) do if c.name == name then return c end end
  error("no fixture " .. name)
end

describe("metrics against scikit-learn", function()
  for _, name in ipairs({"multiclass_40x4", "multiclass_97x10"}) do
    it(name, function()
      local c = by_name(name)
      local p = ml.tensor(c.scores)
      local t = ml.tensor(c.target, {dtype = "int64"})
      local o = {task = "multiclass", num_classes = c.num_classes}
      assert.is_true(close(M.accuracy(p, t, o):item(), c.accuracy_micro))
      assert.is_true(close(M.accuracy(p, t, {task = "multiclass", num_classes = c.num_classes, average = "macro"}):item(), c.accuracy_macro))
      assert.is_true(close(M.precision(p, t, o):item(), c.precision_micro))
      local macro = {task = "multiclass", num_classes = c.num_classes, average = "macro"}
      assert.is_true(close(M.precision(p, t, macro):item(), c.precision_macro))
      assert.is_true(close(M.recall(p, t, macro):item(), c.recall_macro))
      assert.is_true(close(M.f1_score(p, t, macro):item(), c.f1_macro))
      assert.is_true(close(M.f1_score(p, t, {task = "multiclass", num_classes = c.num_classes, average = "weighted"}):item(), c.f1_weighted))
      assert.is_true(close(M.accuracy(p, t, {task = "multiclass", num_classes = c.num_classes, top_k = 2}):item(), c.top2))
      assert.are.same(c.confusion, M.confusion_matrix(p, t, o):totable())
      assert.is_true(close(M.auroc(p, t, o):item(), c.auroc_macro, 1e-6))
    end)
  end

  it("binary with tied scores", function()
    local c = by_name("binary_ties")
    local p = ml.tensor(c.scores, {dtype = "float64"})
    local t = ml.tensor(c.target, {dtype = "int64"})
    local o = {task = "binary"}
    assert.is_true(close(M.auroc(p, t, o):item(), c.auroc, 1e-6))
    assert.is_true(close(M.accuracy(p, t, o):item(), c.accuracy))
    assert.is_true(close(M.precision(p, t, o):item(), c.precision))
    assert.is_true(close(M.recall(p, t, o):item(), c.recall))
    assert.is_true(close(M.f1_score(p, t, o):item(), c.f1))
  end)
end)

describe("metrics", function()
  it("returns 0-dim tensors", function()
    local a = M.accuracy(ml.tensor({{0.1, 0.9}, {0.8, 0.2}}), ml.tensor({1, 1}, {dtype = "int64"}),
      {task = "multiclass", num_classes = 2})
    assert.are.same({}, a:shape())
    assert.are.equal(0.5, a:item())
  end)

  it("accumulates over batches like one big batch", function()
    local c = by_name("multiclass_97x10")
    local p = ml.tensor(c.scores)
    local t = ml.tensor(c.target, {dtype = "int64"})
    local o = {task = "multiclass", num_classes = 10, average = "macro"}
    local acc, auroc = M.Accuracy(o), M.AUROC({task = "multiclass", num_classes = 10})
    for start = 1, 97, 32 do
      local len = math.min(32, 97 - start + 1)
      acc:update(p:narrow(1, start, len), t:narrow(1, start, len))
      auroc:update(p:narrow(1, start, len), t:narrow(1, start, len))
    end
    assert.is_true(close(acc:compute():item(), c.accuracy_macro))
    assert.is_true(close(auroc:compute():item(), c.auroc_macro, 1e-6))
    acc:reset()
    assert.has_error(function() acc:compute() end)
  end)

  it("mean squared and absolute errors", function()
    local p, t = ml.tensor({1, 2, 3}), ml.tensor({1, 4, 0})
    assert.is_true(close(M.mean_squared_error(p, t):item(), (0 + 4 + 9) / 3))
    assert.is_true(close(M.mean_absolute_error(p, t):item(), 5 / 3))
    local m = M.MeanSquaredError()
    m:update(p:narrow(1, 1, 2), t:narrow(1, 1, 2))
    m:update(p:narrow(1, 3, 1), t:narrow(1, 3, 1))
    assert.is_true(close(m:compute():item(), 13 / 3))
  end)

  it("rejects bad input with clear messages", function()
    local p = ml.tensor({{0.1, 0.9}})
    assert.has_error(function() M.accuracy(p, ml.tensor({1}, {dtype = "int64"})) end,
      'accuracy: task must be "binary" or "multiclass" (as in torchmetrics), got nil')
    local ok, err = pcall(M.accuracy, p, ml.tensor({5}, {dtype = "int64"}), {task = "multiclass", num_classes = 2})
    assert.is_false(ok)
    assert.matches("target holds class 5, outside %[0, 2%)", err)
    ok, err = pcall(M.accuracy, p, ml.tensor({1}), {task = "multiclass", num_classes = 2})
    assert.matches("target must hold integer class ids", err)
    ok, err = pcall(M.accuracy, p, ml.tensor({1}, {dtype = "int64"}), {task = "multiclass", num_classes = 2, averag = "macro"})
    assert.matches("unknown option 'averag'", err)
  end)
end)
