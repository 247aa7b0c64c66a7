-- ml.optim.lr_scheduler against PyTorch 1.13: every param group's learning rate
-- (and the momentum / beta1 that OneCycleLR and CyclicLR cycle) after
-- construction and after each step, for several options of each scheduler
-- (tests/fixtures/lr_scheduler.lua, written by scripts/fixtures/gen_lr_scheduler.py).
-- The formulas are PyTorch's in PyTorch's order of operations, so the doubles
-- are the same: compared exactly. Then state_dict/load_state_dict mid-sequence,
-- the argument forms, and the errors.
local ml = require "moonlight"
local optim = ml.optim
local S = optim.lr_scheduler
local cases = dofile("tests/fixtures/lr_scheduler.lua")

-- the generator's named lambdas
local LAMBDAS = {
  exp95 = function(e) return 0.95 ^ e end,
  inv = function(e) return 1 / (e + 1) end,
  floor3 = function(e) return e // 3 end,
  const09 = function() return 0.9 end,
  dec = function(e) return 1 - 0.01 * e end,
}

local OPTIMIZERS = {
  sgd1 = function(ps) return optim.SGD({ps[1]}, {lr = 0.1, momentum = 0.9}) end,
  sgd2 = function(ps)
    return optim.SGD({{params = {ps[1]}, lr = 0.1}, {params = {ps[2]}, lr = 0.02}}, {lr = 0.05, momentum = 0.9})
  end,
  adam1 = function(ps) return optim.Adam({ps[1]}, {lr = 1e-3}) end,
  adam2 = function(ps) return optim.Adam({{params = {ps[1]}, lr = 1e-3}, {params = {ps[2]}, lr = 3e-4}}) end,
}

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function make(name, opt, opts, lam)
  local o = copy(opts)
  if lam then
    if type(lam) == "table" then
      o.lr_lambda = {}
      for i, n in ipairs(lam) do o.lr_lambda[i] = LAMBDAS[n] end
    else
      o.lr_lambda = LAMBDAS[lam]
    end
  end
  return S[name](opt, o)
end

local function build(case)
  local ps = {ml.zeros({2}, {requires_grad = true}), ml.zeros({3}, {requires_grad = true})}
  local opt = OPTIMIZERS[case.optim](ps)
  local sch
  if case.sub then
    local subs = {}
    for i, s in ipairs(case.sub) do subs[i] = make(s[1], opt, s[2]) end
    if case.name == "SequentialLR" then sch = S.SequentialLR(opt, subs, case.opts.milestones)
    else sch = S.ChainedScheduler(subs) end
  else
    sch = make(case.name, opt, case.opts, case.lambda)
  end
  return opt, sch, ps
end

local function momentum_of(opt, g) return opt.defaults.betas and g.betas[1] or g.momentum end

local function check(case, opt, k, label)
  for gi, g in ipairs(opt.param_groups) do
    local want = case.lr[k][gi]
    if g.lr ~= want then
      error(("%s: after %d steps, group %d's lr is %.17g, PyTorch's %.17g"):format(label, k - 1, gi, g.lr, want), 3)
    end
    if case.momentum then
      local m = momentum_of(opt, g)
      if m ~= case.momentum[k][gi] then
        error(("%s: after %d steps, group %d's momentum is %.17g, PyTorch's %.17g"):format(label, k - 1, gi, m,
          case.momentum[k][gi]), 3)
      end
    end
  end
end

local function step(case, sch, i)
  if case.metrics then sch:step(case.metrics[i])
  elseif case.epochs then sch:step(case.epochs[i])
  else sch:step() end
end

local function label_of(case)
  local keys = {}
  for k in pairs(case.opts) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = case.opts[k]
    parts[#parts + 1] = k .. "=" .. (type(v) == "table" and "{" .. table.concat(v, ",") .. "}" or tostring(v))
  end
  local extra = case.lambda and (" " .. (type(case.lambda) == "table" and table.concat(case.lambda, ",") or case.lambda)) or ""
  if case.sub then
    local names = {}
    for i, s in ipairs(case.sub) do names[i] = s[1] end
    extra = " [" .. table.concat(names, ", ") .. "]"
  end
  if case.epochs then extra = extra .. " step(epoch)" end
  return ("%s(%s)%s on %s"):format(case.name, table.concat(parts, ", "), extra, case.optim)
end

describe("lr schedulers step PyTorch 1.13's exact sequences", function()
  for _, case in ipairs(cases) do
    local label = label_of(case)
    it(label, function()
      local opt, sch = build(case)
      check(case, opt, 1, label)
      for i = 1, case.steps do
        opt:step()
        step(case, sch, i)
        check(case, opt, i + 1, label)
        local last = sch:get_last_lr()
        for gi, g in ipairs(opt.param_groups) do assert.are.equal(g.lr, last[gi]) end
      end
    end)
  end
end)

describe("lr scheduler state", function()
  -- stop halfway, save the scheduler's and optimizer's state, rebuild both from
  -- scratch, load, and go on: the rest of the sequence is PyTorch's still
  for _, case in ipairs(cases) do
    if case.steps >= 4 then
      local label = label_of(case)
      it("resumes from state_dict(): " .. label, function()
        local half = case.steps // 2
        local opt, sch = build(case)
        for i = 1, half do opt:step(); step(case, sch, i) end
        -- through the checkpoint's serialiser: what a Trainer checkpoint holds
        local callbacks = require "moonlight.callbacks"
        local sd = callbacks._from_literal(callbacks._to_literal(sch:state_dict()))
        local osd = opt:state_dict()
        local opt2, sch2 = build(case)
        opt2:load_state_dict(osd)
        sch2:load_state_dict(sd)
        check(case, opt2, half + 1, label .. " (restored)")
        for i = half + 1, case.steps do
          opt2:step()
          step(case, sch2, i)
          check(case, opt2, i + 1, label .. " (restored)")
        end
      end)
    end
  end
end)

describe("lr scheduler arguments", function()
  local function fresh(lr)
    return optim.SGD({ml.zeros({1}, {requires_grad = true})}, {lr = lr or 0.1, momentum = 0.9})
  end
  local function lrs(opt, sch, n, metric)
    local out = {opt.param_groups[1].lr}
    for i = 1, n do
      if metric then sch:step(metric[i]) else sch:step() end
      out[#out + 1] = opt.param_groups[1].lr
    end
    return out
  end

  it("take PyTorch's positional order, an options table, or both", function()
    local a, b, c = fresh(), fresh(), fresh()
    local s1 = S.StepLR(a, 2, 0.5)
    local s2 = S.StepLR(b, {step_size = 2, gamma = 0.5})
    local s3 = S.StepLR(c, 2, {gamma = 0.5})
    local expected = {0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125}
    assert.are.same(expected, lrs(a, s1, 6))
    assert.are.same(expected, lrs(b, s2, 6))
    assert.are.same(expected, lrs(c, s3, 6))
    local d, e = fresh(), fresh()
    assert.are.same(lrs(d, S.MultiStepLR(d, {2, 4}, {gamma = 0.5}), 6),
                    lrs(e, S.MultiStepLR(e, {milestones = {2, 4}, gamma = 0.5}), 6))
    local f, g = fresh(), fresh()
    assert.are.same(lrs(f, S.OneCycleLR(f, 0.1, 10), 9), lrs(g, S.OneCycleLR(g, {max_lr = 0.1, total_steps = 10}), 9))
    local h, k = fresh(), fresh()
    local m = {1, 1, 1, 1, 1}
    assert.are.same(lrs(h, S.ReduceLROnPlateau(h, "max", 0.5, 1), 5, m),
                    lrs(k, S.ReduceLROnPlateau(k, {mode = "max", factor = 0.5, patience = 1}), 5, m))
  end)

  it("ReduceLROnPlateau takes a one-element tensor as the metric", function()
    local a, b = fresh(), fresh()
    local s1, s2 = S.ReduceLROnPlateau(a, {patience = 0}), S.ReduceLROnPlateau(b, {patience = 0})
    for _ = 1, 3 do
      s1:step(ml.tensor(2.0))
      s2:step(2.0)
    end
    assert.are.equal(b.param_groups[1].lr, a.param_groups[1].lr)
    assert.are.equal(0.1 * 0.1 * 0.1, a.param_groups[1].lr)
  end)

  it("say what is wrong", function()
    local function err(f)
      local ok, e = pcall(f)
      assert.is_false(ok)
      return e
    end
    local opt = fresh()
    assert.matches("StepLR: step_size must be a positive integer", err(function() S.StepLR(opt, {gamma = 0.5}) end), 1, true)
    assert.matches("StepLR: unknown option 'gama'", err(function() S.StepLR(opt, {step_size = 2, gama = 0.5}) end), 1, true)
    assert.matches("lr_scheduler_spec.lua:%d+:", err(function() S.StepLR(opt, {step_size = 2, gama = 0.5}) end))
    assert.matches("CosineAnnealingLR: T_max must be a positive number",
                   err(function() S.CosineAnnealingLR(opt, {T_max = 0}) end), 1, true)
    assert.matches("ReduceLROnPlateau: Factor should be < 1.0.",
                   err(function() S.ReduceLROnPlateau(opt, {factor = 1.5}) end), 1, true)
    assert.matches("ReduceLROnPlateau: mode avg is unknown!",
                   err(function() S.ReduceLROnPlateau(opt, {mode = "avg"}) end), 1, true)
    assert.matches("ReduceLROnPlateau: step(metrics) needs the monitored value",
                   err(function() S.ReduceLROnPlateau(opt):step() end), 1, true)
    assert.matches("OneCycleLR: You must define either total_steps OR (epochs AND steps_per_epoch)",
                   err(function() S.OneCycleLR(opt, {max_lr = 0.1}) end), 1, true)
    assert.matches("OneCycleLR: Tried to step 5 times. The specified number of total steps is 3", err(function()
      -- as PyTorch, the step after the last one still works (pct > 1), the next fails
      local s = S.OneCycleLR(fresh(), {max_lr = 0.1, total_steps = 3, pct_start = 0.5})
      for _ = 1, 4 do s:step() end
    end), 1, true)
    assert.matches("OneCycleLR: optimizer must support momentum", err(function()
      S.OneCycleLR({param_groups = {{lr = 1}}, defaults = {}}, {max_lr = 0.1, total_steps = 5})
    end), 1, true)
    assert.matches("SequentialLR: Sequential Schedulers expects number of schedulers provided to be one more",
                   err(function()
                     local o = fresh()
                     S.SequentialLR(o, {S.LinearLR(o), S.ExponentialLR(o, 0.9)}, {2, 4})
                   end), 1, true)
    assert.matches("LambdaLR: Expected 1 lr_lambdas, but got 2",
                   err(function() S.LambdaLR(fresh(), {LAMBDAS.inv, LAMBDAS.inv}) end), 1, true)
    assert.matches("ExponentialLR: expected an optimizer, got number", err(function() S.ExponentialLR(3, 0.9) end),
                   1, true)
  end)
end)
