local ml = require "moonlight"
local optim = ml.optim
local fx = dofile("tests/fixtures/optim.lua")

local function flat(t, out)
  out = out or {}
  if type(t) == "table" then for _, v in ipairs(t) do flat(v, out) end
  else out[#out + 1] = t end
  return out
end

local function assert_close(actual, expected, what)
  local a, e = flat(actual), flat(expected)
  assert.are.equal(#e, #a, what .. ": element count")
  for i = 1, #e do
    local tol = 1e-6 + 2e-5 * math.abs(e[i])
    if math.abs(a[i] - e[i]) > tol then
      error(("%s: element %d is %.9g, PyTorch %.9g"):format(what, i, a[i], e[i]), 2)
    end
  end
end

local function fresh_params()
  local ps = {}
  for i, v in ipairs(fx.init) do ps[i] = ml.tensor(v, {requires_grad = true}) end
  return ps
end

local function run(opt, ps, expected, label)
  for k = 1, #fx.grads do
    for i, p in ipairs(ps) do p.grad = ml.tensor(fx.grads[k][i]) end
    opt:step()
    for i, p in ipairs(ps) do
      assert_close(p:totable(), expected[k][i], ("%s step %d param %d"):format(label, k, i))
    end
  end
end

local function label(c)
  local keys = {}
  for k, v in pairs(c.opts) do
    keys[#keys + 1] = k .. "=" .. (type(v) == "table" and "{" .. table.concat(v, ",") .. "}" or tostring(v))
  end
  table.sort(keys)
  return c.optim .. "(" .. table.concat(keys, ", ") .. ")"
end

describe("optim trajectories match PyTorch", function()
  for _, c in ipairs(fx.cases) do
    it(label(c), function()
      local ps = fresh_params()
      run(optim[c.optim](ps, c.opts), ps, c.params, label(c))
    end)
  end

  it("Adam with two param groups, each its own lr", function()
    local ps = fresh_params()
    local opt = optim.Adam({{params = {ps[1]}, lr = fx.groups.group1_lr}, {params = {ps[2]}}},
                           {lr = fx.groups.lr})
    assert.are.equal(fx.groups.group1_lr, opt.param_groups[1].lr)
    assert.are.equal(fx.groups.lr, opt.param_groups[2].lr)
    run(opt, ps, fx.groups.params, "groups")
  end)
end)

describe("optimizer behaviour", function()
  it("skips parameters without a gradient and keeps no state for them", function()
    local a = ml.tensor({1, 2}, {requires_grad = true})
    local b = ml.tensor({3, 4}, {requires_grad = true})
    local opt = optim.SGD({a, b}, {lr = 0.5, momentum = 0.9})
    a.grad = ml.tensor({1, 1})
    opt:step()
    assert.are.same({0.5, 1.5}, a:totable())
    assert.are.same({3, 4}, b:totable())
    assert.is_nil(opt.state[b])
    assert.is_not_nil(opt.state[a].momentum_buffer)
  end)

  it("zero_grad sets gradients to nil by default, zeroes them with set_to_none = false", function()
    local a = ml.tensor({1, 2}, {requires_grad = true})
    local opt = optim.Adam({a})
    a.grad = ml.tensor({1, 1})
    opt:zero_grad()
    assert.is_nil(a.grad)
    a.grad = ml.tensor({1, 1})
    opt:zero_grad({set_to_none = false})
    assert.are.same({0, 0}, a.grad:totable())
  end)

  it("trains a parameter through autograd", function()
    local w = ml.tensor({5.0}, {requires_grad = true})
    local opt = optim.SGD({w}, {lr = 0.1})
    for _ = 1, 50 do
      opt:zero_grad()
      local loss = ((w - 2) ^ 2):sum()
      loss:backward()
      opt:step()
    end
    assert.is_true(math.abs(w:totable()[1] - 2) < 1e-3)
  end)

  it("state_dict / load_state_dict resume the same trajectory", function()
    local c = fx.cases[3] -- Adam amsgrad
    local ps = fresh_params()
    local opt = optim.Adam(ps, c.opts)
    for k = 1, 3 do
      for i, p in ipairs(ps) do p.grad = ml.tensor(fx.grads[k][i]) end
      opt:step()
    end
    local sd = opt:state_dict()
    assert.are.equal(3, sd.state[1].step)
    assert.are.same({1, 2}, sd.param_groups[1].params)
    assert.is_not_nil(sd.state[2].max_exp_avg_sq)
    -- a fresh optimizer over copies of the parameters, loaded from the state dict
    local ps2 = {}
    for i, p in ipairs(ps) do ps2[i] = ml.tensor(p, {requires_grad = true}) end
    local opt2 = optim.Adam(ps2, {lr = 1})
    opt2:load_state_dict(sd)
    assert.are.equal(c.opts.lr, opt2.param_groups[1].lr)
    -- mutating the saved dict afterwards does not touch opt2
    sd.state[1].exp_avg:fill_(100)
    for k = 4, #fx.grads do
      for i, p in ipairs(ps2) do p.grad = ml.tensor(fx.grads[k][i]) end
      opt2:step()
      for i, p in ipairs(ps2) do assert_close(p:totable(), c.params[k][i], "resumed step " .. k) end
    end
  end)

  it("load_state_dict rejects a state dict of another shape", function()
    local opt = optim.Adam(fresh_params())
    local other = optim.Adam({ml.zeros({2}, {requires_grad = true})})
    assert.has_error(function() opt:load_state_dict(other:state_dict()) end)
  end)
end)

describe("optimizer errors", function()
  local p = ml.zeros({2}, {requires_grad = true})
  local function err(f)
    local ok, e = pcall(f)
    assert.is_false(ok)
    return tostring(e)
  end
  it("an empty parameter list", function()
    assert.matches("Adam: optimizer got an empty parameter list", err(function() optim.Adam({}) end), 1, true)
  end)
  it("a non-tensor parameter", function()
    assert.matches("SGD: params[2] is a string, expected a tensor",
                   err(function() optim.SGD({p, "w"}, {lr = 1}) end), 1, true)
    assert.matches("params must be an array", err(function() optim.Adam(p) end), 1, true)
  end)
  it("a negative lr and other bad hyperparameters", function()
    assert.matches("Adam: invalid learning rate: -1", err(function() optim.Adam({p}, {lr = -1}) end), 1, true)
    assert.matches("invalid beta parameter at index 2", err(function() optim.AdamW({p}, {betas = {0.9, 1.0}}) end), 1, true)
    assert.matches("invalid momentum value", err(function() optim.SGD({p}, {lr = 1, momentum = -0.5}) end), 1, true)
    assert.matches("Nesterov momentum requires", err(function() optim.SGD({p}, {lr = 1, nesterov = true}) end), 1, true)
  end)
  it("SGD without lr", function()
    assert.matches("SGD: lr is required", err(function() optim.SGD({p}) end), 1, true)
  end)
  it("unknown option names", function()
    assert.matches("Adam: unknown option 'learning_rate'", err(function() optim.Adam({p}, {learning_rate = 1}) end), 1, true)
    assert.matches("unknown param group key 'momentum'",
                   err(function() optim.Adam({{params = {p}, momentum = 1}}) end), 1, true)
  end)
  it("a parameter in two groups, a non-leaf", function()
    assert.matches("more than one parameter group",
                   err(function() optim.Adam({{params = {p}}, {params = {p}}}) end), 1, true)
    local q = p * 2
    assert.matches("non-leaf", err(function() optim.Adam({q}) end), 1, true)
  end)
  it("a gradient of the wrong shape from the C step", function()
    local w = ml.zeros({3}, {requires_grad = true})
    assert.matches("adam_step", err(function()
      ml._adam_step(w, ml.zeros({4}), ml.zeros({3}), ml.zeros({3}), nil, 1e-3, 0.9, 0.999, 1e-8, 0,
                    false, false, 1)
    end), 1, true)
  end)
end)

describe("lr schedulers match PyTorch", function()
  local function seq(make, n)
    local opt = optim.SGD({ml.zeros({1}, {requires_grad = true})}, {lr = 0.1})
    local sch = make(opt)
    local out = {sch:get_last_lr()[1]}
    for _ = 1, n do
      opt:step()
      sch:step()
      out[#out + 1] = sch:get_last_lr()[1]
      assert.are.equal(out[#out], opt.param_groups[1].lr)
    end
    return out
  end
  it("StepLR", function()
    local s = seq(function(o) return optim.lr_scheduler.StepLR(o, {step_size = 2, gamma = 0.5}) end,
                  #fx.sched.step - 1)
    assert_close(s, fx.sched.step, "StepLR")
    local s2 = seq(function(o) return optim.lr_scheduler.StepLR(o, 2, {gamma = 0.5}) end,
                   #fx.sched.step - 1)
    assert_close(s2, fx.sched.step, "StepLR positional")
  end)
  it("CosineAnnealingLR, past T_max", function()
    local s = seq(function(o) return optim.lr_scheduler.CosineAnnealingLR(o, {T_max = 4, eta_min = 0.001}) end,
                  #fx.sched.cosine - 1)
    assert_close(s, fx.sched.cosine, "CosineAnnealingLR")
  end)
  it("rejects bad arguments", function()
    local opt = optim.SGD({ml.zeros({1}, {requires_grad = true})}, {lr = 0.1})
    assert.has_error(function() optim.lr_scheduler.StepLR(opt, {gamma = 0.5}) end)
    assert.has_error(function() optim.lr_scheduler.StepLR(opt, {step_size = 2, gama = 0.5}) end)
    assert.has_error(function() optim.lr_scheduler.CosineAnnealingLR(opt, {T_max = 0}) end)
  end)
end)
