-- Adam's kernel lays a parameter group end to end and splits it across threads
-- (src/cpu/optim.c); the tests run single-threaded, so this spec turns threads on
-- and checks that every split gives exactly the one-thread trajectory, for Adam,
-- AdamW and amsgrad, over parameters of odd sizes that shares cut through.
local ml = require "moonlight"

local sizes = {{201, 199}, {7}, {20001}, {1}, {64, 784}, {3, 5}}

local function trajectory(threads, opts, ctor)
  ml.set_num_threads(threads)
  ml.manual_seed(7)
  local params = {}
  for i, s in ipairs(sizes) do params[i] = ml.randn(s, {requires_grad = true}) end
  local opt = ml.optim[ctor](params, opts)
  for step = 1, 3 do
    for i, p in ipairs(params) do
      -- a parameter without a gradient in step 2 keeps its own step count
      if not (i == 2 and step == 2) then p.grad = ml.randn(sizes[i]) else p.grad = nil end
    end
    opt:step()
  end
  return params
end

describe("Adam split across threads", function()
  local saved
  before_each(function() saved = ml.get_num_threads() end)
  after_each(function() ml.set_num_threads(saved) end)

  for _, case in ipairs({{"Adam", {lr = 1e-2}}, {"AdamW", {lr = 1e-2, weight_decay = 0.1}},
                         {"Adam", {lr = 1e-2, amsgrad = true, weight_decay = 0.01}},
                         {"Adam", {lr = 1e-2, maximize = true}}}) do
    it(case[1] .. " with " .. (next(case[2], "lr") or "defaults") .. ": the same numbers on 1, 2 and 3 threads", function()
      local one = trajectory(1, case[2], case[1])
      for _, nt in ipairs({2, 3}) do
        local many = trajectory(nt, case[2], case[1])
        for i = 1, #sizes do
          assert.are.equal(0, (one[i]:detach() - many[i]:detach()):abs():max():item())
        end
      end
    end)
  end

  it("rejects lists of different lengths", function()
    local p = ml.zeros({3})
    local ok, err = pcall(ml._adam_step_multi, {p}, {p, p}, {p}, {p}, nil, 1e-3, 0.9, 0.999,
                          1e-8, 0, false, false, {1})
    assert.is_false(ok)
    assert.matches("adam_step: 1 parameters but 2 entries in list 2", err)
  end)

  it("names a parameter whose state does not match", function()
    local ok, err = pcall(ml._adam_step_multi, {ml.zeros({3}), ml.zeros({2})},
                          {ml.zeros({3}), ml.zeros({2})}, {ml.zeros({3}), ml.zeros({4})},
                          {ml.zeros({3}), ml.zeros({2})}, nil, 1e-3, 0.9, 0.999, 1e-8, 0,
                          false, false, {1, 1})
    assert.is_false(ok)
    assert.matches("adam_step: exp_avg has shape %[4%], the parameter %[2%]", err)
  end)
end)
