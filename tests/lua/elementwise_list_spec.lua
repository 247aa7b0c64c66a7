-- The elementwise op lists (src/backend/elementwise_ops.h) from Lua: every op of
-- the lists is reachable and checked here without a line of its own (gradcheck of
-- every unary op, dtypes of its domain, node names), and the list's own additions:
-- relu keeping NaN (issue 17 item 1f) and floor division (issue 17 item 1h).
local ml = require "moonlight"
local T = ml.testing
local core = require "moonlight.core"

local ops = core._elementwise_ops

local function long(t) return ml.tensor(t, {dtype = "int64"}) end

-- true when every element of the mask m is 1
local function all(m) return m:sum():item() == m:numel() end

describe("the unary op list", function()
  it("names every op, sin and cos among them", function()
    local names = {}
    for _, op in ipairs(ops.unary) do names[op.name] = true end
    for _, n in ipairs({"neg", "exp", "log", "relu", "sigmoid", "tanh", "sin", "cos", "gelu",
                        "silu", "leaky_relu", "elu", "softplus", "isnan", "isinf"}) do
      assert.is_true(names[n], n)
    end
  end)

  for _, op in ipairs(ops.unary) do
    local name = op.name
    describe(name, function()
      it("is a method and a module function with one result", function()
        local x = ml.tensor({0.5, 1.5})
        T.assert_close(x[name](x), ml[name](x))
      end)

      if op.mask then
        it("gives a uint8 mask that does not require grad, for every dtype", function()
          local x = ml.tensor({0.5, 1.5}, {requires_grad = true})
          local m = x[name](x)
          assert.are.equal("uint8", m.dtype)
          assert.is_false(m.requires_grad)
          assert.is_nil(m.grad_fn)
          for _, t in ipairs({long({-3, 0, 4}), ml.tensor({0, 3}, {dtype = "uint8"}),
                              ml.tensor({1, 2}, {dtype = "float64"})}) do
            local r = ml[name](t)
            assert.are.equal("uint8", r.dtype)
            assert.are.same({0, 0}, {r:totable()[1], r:totable()[2]})
          end
        end)
        return
      end

      it("passes gradcheck on positive inputs and on negative ones where defined", function()
        ml.manual_seed(3)
        local pos = (ml.rand({3, 4}, {dtype = "float64"}) * 2 + 0.25):detach()
        pos.requires_grad = true
        assert.is_true(T.gradcheck(function(a) return a[name](a) end, {pos}))
        local neg = (-(ml.rand({3, 4}, {dtype = "float64"}) * 2 + 0.25)):detach()
        local v = neg[name](neg)
        if all(v:eq(v)) then -- defined there (log of a negative is NaN)
          neg.requires_grad = true
          assert.is_true(T.gradcheck(function(a) return a[name](a) end, {neg}))
        end
      end)

      if #op.params > 0 then
        -- other values of the op's numbers than the defaults: each one changes the
        -- result somewhere in [-3, 3], and the gradient follows it
        it("takes its parameters (" .. op.params[1].name .. ", ...) by position and by name",
           function()
          local x = ml.arange(-12, 13, {dtype = "float64"}) / 4
          local by_pos, by_name, defaults = {}, {}, {}
          for i, p in ipairs(op.params) do
            by_pos[i] = p.default + 0.5 * i
            by_name[p.name] = by_pos[i]
            defaults[i] = p.default
          end
          T.assert_close(x[name](x, table.unpack(by_pos)), x[name](x, by_name))
          T.assert_close(x[name](x), x[name](x, table.unpack(defaults)))
          assert.is_true(x[name](x):ne(x[name](x, by_name)):sum():item() > 0,
                         "the parameters change the result")
          local a = (ml.rand({3, 4}, {dtype = "float64"}) * 6 - 3):detach()
          a.requires_grad = true
          assert.is_true(T.gradcheck(function(t) return t[name](t, by_name) end, {a}))
          local ok, err = pcall(x[name], x, {nope = 1})
          assert.is_false(ok)
          assert.matches(name .. ": unknown option 'nope'", err, 1, true)
          ok, err = pcall(x[name], x, "2")
          assert.is_false(ok)
          assert.matches(name .. ": " .. op.params[1].name .. " must be a number, got string", err,
                         1, true)
        end)
      end

      it("records " .. op.node .. " and takes strided inputs and gradients", function()
        local x = ml.tensor({{0.5, 1.25, 2}, {0.75, 1, 1.5}}, {dtype = "float64",
                                                               requires_grad = true})
        local y = x:t()[name](x:t()) -- a transposed input
        assert.are.equal(op.node, y.grad_fn)
        -- the upstream gradient as a broadcast (stride-0) view
        y:backward(ml.tensor({2}, {dtype = "float64"}):expand({3, 2}))
        local x2 = x:detach():clone()
        x2.requires_grad = true
        local y2 = x2[name](x2)
        y2:backward(ml.full({2, 3}, 2, {dtype = "float64"}))
        T.assert_close(x.grad, x2.grad)
      end)

      if op.float_only then
        it("casts an integer input to float32", function()
          local y = ml[name](long({1, 2, 3}))
          assert.are.equal("float32", y.dtype)
          T.assert_close(y, ml[name](ml.tensor({1, 2, 3})))
        end)
      else
        it("computes integers in their dtype", function()
          local x = long({-3, 0, 4})
          local y = ml[name](x)
          assert.are.equal("int64", y.dtype)
          T.assert_close(y:double(), ml[name](x:double()))
          local u = ml.tensor({0, 3, 250}, {dtype = "uint8"})
          assert.are.equal("uint8", ml[name](u).dtype)
        end)
      end
    end)
  end
end)

describe("relu", function()
  -- issue 17 item 1f: relu(NaN) was 0, hiding a diverged model's NaNs
  local nan = 0 / 0
  local function is_nan(v) return v ~= v end

  it("keeps NaN as torch does (t:relu, F.relu, nn.ReLU)", function()
    local x = ml.tensor({nan, -1, 2})
    for _, y in ipairs({x:relu(), ml.F.relu(x), ml.nn.ReLU()(x), ml.relu(x:double())}) do
      local v = y:totable()
      assert.is_true(is_nan(v[1]), "relu(NaN) is NaN")
      assert.are.same({0, 2}, {v[2], v[3]})
    end
  end)

  it("passes the gradient where the output is NaN, as torch's threshold_backward", function()
    local x = ml.tensor({nan, -1, 2}, {requires_grad = true})
    x:relu():backward(ml.tensor({5, 6, 7}))
    assert.are.same({5, 0, 7}, x.grad:totable())
  end)
end)

describe("floor_divide (t // u)", function()
  it("rounds towards -inf, as torch.floor_divide", function()
    assert.are.same({-4, 1, 1}, (ml.tensor({-7, 2, 3}) // 2):totable())
    local q = long({-7, 2, 3}) // 2
    assert.are.equal("int64", q.dtype)
    assert.are.same({-4, 1, 1}, q:totable())
    assert.are.same({-4, -1, 1}, (long({7, 2, -5}) // long({-2, -2, -3})):totable())
    assert.are.same({3, -3}, (7 // long({2, -3})):totable())
    assert.are.same({-4, 1}, ml.floor_divide(long({-7, 2}), 2):totable())
    assert.are.same({-4, 1}, long({-7, 2}):floor_divide(2):totable())
  end)

  it("follows IEEE for a float division by zero and keeps the dtypes' rules", function()
    local v = (ml.tensor({1, -1, 0, 5.5}) // ml.tensor({0, 0, 0, -2})):totable()
    assert.are.equal(math.huge, v[1])
    assert.are.equal(-math.huge, v[2])
    assert.is_true(v[3] ~= v[3])
    assert.are.equal(-3, v[4])
    assert.are.equal("float32", (long({3}) // 2.5).dtype) -- a fractional number lifts it
    T.assert_close(long({7}) // 2.5, {2})
    local u = ml.tensor({7, 200}, {dtype = "uint8"}) // ml.tensor({2, 3}, {dtype = "uint8"})
    assert.are.equal("uint8", u.dtype)
    assert.are.same({3, 66}, u:totable())
  end)

  it("refuses an integer division by zero, naming itself", function()
    local ok, err = pcall(function() return long({1, 2}) // long({1, 0}) end)
    assert.is_false(ok)
    assert.matches("floor_divide: integer division by zero", err)
    ok = pcall(function() return ml.tensor({1, 2}, {dtype = "uint8"}) // 0 end)
    assert.is_false(ok)
  end)

  it("does not wrap-trap at the int64 edge", function()
    local m = long({math.mininteger}) // -1
    assert.are.same({math.mininteger}, m:totable())
  end)

  it("is not differentiable (its result never requires grad)", function()
    local x = ml.tensor({3, 4}, {requires_grad = true})
    local y = x // 2
    assert.is_false(y.requires_grad)
    assert.is_nil(y.grad_fn)
  end)
end)

describe("the CPU loops", function()
  -- ml_cpu_map splits the elements across threads (ML_PAR_MIN and up); every split
  -- must give the same bits as one thread, also for broadcast and strided operands
  it("give the same bits on one thread and on two", function()
    ml.manual_seed(11)
    local a = ml.randn({300, 257})
    local b = ml.randn({257})
    local c = ml.randn({257, 300}):t()
    local function compute()
      return {a + b, a * c, (a - b):exp(), a:relu(), a:sigmoid(), ml.where(a:gt(b), a, c),
              a:clamp(-0.5, 0.5), a ^ 2, a // b, a:eq(c)}
    end
    local n0 = ml.get_num_threads()
    ml.set_num_threads(1)
    local one = compute()
    ml.set_num_threads(2)
    local two = compute()
    ml.set_num_threads(n0)
    for i = 1, #one do
      -- NaN (0 // 0 cannot occur here: b has no zeros) would compare unequal
      assert.is_true(all(one[i]:eq(two[i])), "result " .. i)
    end
  end)
end)
